/* Percent-encoding (RFC 3986) and form variables
 * (application/x-www-form-urlencoded, as in the WHATWG URL standard). */
#include <limits.h>
#include <string.h>

#include "cymongoose.h"
#include "util/hex.h"

static bool unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

long cm_url_encode(const char *s, size_t n, char *buf, size_t len) {
  static const char hex[] = "0123456789ABCDEF";
  size_t o = 0;
  bool fits = true; /* stays true while every escape so far was written whole */
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    size_t w = unreserved(c) ? 1 : 3;
    if (fits && o + w < len) {
      if (w == 1) {
        buf[o] = (char)c;
      } else {
        buf[o] = '%', buf[o + 1] = hex[c >> 4], buf[o + 2] = hex[c & 15];
      }
      buf[o + w] = '\0';
    } else if (fits) {
      fits = false;
      if (len > 0) buf[o] = '\0';
    }
    o += w;
  }
  if (n == 0 && len > 0) buf[0] = '\0';
  if (buf == NULL) return (long)o; /* measuring */
  return fits && o < len ? (long)o : CM_ENOSPC;
}

/* Decodes the byte at s[*i] (of n), advancing *i past it: %XX is the byte
 * it names, '+' a space when plus_is_space.  A '%' not followed by two hex
 * digits is kept as it is when lenient (the form-urlencoded parser of the
 * WHATWG URL standard), else it makes the result -1. */
static int decode_one(const char *s, size_t n, size_t *i, bool plus_is_space, bool lenient) {
  unsigned char c = (unsigned char)s[*i];
  if (c == '%') {
    int hi = n - *i >= 3 ? cm__hex_digit((unsigned char)s[*i + 1]) : -1;
    int lo = hi >= 0 ? cm__hex_digit((unsigned char)s[*i + 2]) : -1;
    if (hi >= 0 && lo >= 0) {
      *i += 3;
      return hi * 16 + lo;
    }
    if (!lenient) return -1;
  }
  (*i)++;
  return c == '+' && plus_is_space ? ' ' : c;
}

long cm_url_decode(const char *src, size_t src_len, char *dst, size_t dst_len, bool is_form) {
  if (dst == NULL || dst_len == 0) return CM_ENOSPC;
  size_t i = 0, j = 0;
  while (i < src_len) {
    int c = decode_one(src, src_len, &i, is_form, false);
    if (c < 0) return CM_EINVAL;
    if (j + 1 >= dst_len) return CM_ENOSPC; /* keep room for the NUL */
    dst[j++] = (char)c;
  }
  dst[j] = '\0';
  return (long)j;
}

/* Lenient form decoding of s[0..n) into buf; -1 when buf is too small. */
static long decode_form(const char *s, size_t n, char *buf, size_t len) {
  size_t i = 0, o = 0;
  while (i < n) {
    int c = decode_one(s, n, &i, true, true);
    if (o >= len) return -1;
    buf[o++] = (char)c;
  }
  return (long)o;
}

static unsigned char ascii_lower(unsigned char c) {
  return c >= 'A' && c <= 'Z' ? (unsigned char)(c | 0x20) : c;
}

/* Is the decoded form of s[0..n) equal to name (ASCII letters in either
 * case when fold_case)? */
static bool decoded_equals(const char *s, size_t n, const char *name, size_t namelen,
                           bool fold_case) {
  size_t i = 0, k = 0;
  while (i < n) {
    unsigned char c = (unsigned char)decode_one(s, n, &i, true, true);
    if (k >= namelen) return false;
    unsigned char want = (unsigned char)name[k++];
    if (fold_case ? ascii_lower(c) != ascii_lower(want) : c != want) return false;
  }
  return k == namelen;
}

/* The one form-variable lookup behind cm_http_var and cm_http_get_var. */
static long form_var(struct cm_str buf, const char *name, char *dst, size_t dstlen,
                     bool fold_case) {
  size_t namelen = strlen(name), pos = 0;
  const char *s = buf.buf;
  if (s == NULL) return CM_ENOENT;
  while (pos <= buf.len) {
    const char *amp = memchr(s + pos, '&', buf.len - pos);
    size_t pair_end = amp == NULL ? buf.len : (size_t)(amp - s);
    const char *eq = memchr(s + pos, '=', pair_end - pos);
    size_t name_end = eq == NULL ? pair_end : (size_t)(eq - s);
    if (pair_end > pos && decoded_equals(s + pos, name_end - pos, name, namelen, fold_case)) {
      size_t vstart = eq == NULL ? pair_end : name_end + 1;
      long n = decode_form(s + vstart, pair_end - vstart, dst, dstlen);
      return n < 0 ? CM_ENOSPC : n;
    }
    if (amp == NULL) break;
    pos = pair_end + 1;
  }
  return CM_ENOENT;
}

long cm_http_var(struct cm_str buf, const char *name, char *dst, size_t dstlen) {
  return form_var(buf, name, dst, dstlen, false);
}

long cm_http_get_var(struct cm_str buf, const char *name, char *dst, size_t dst_len) {
  if (dst == NULL || dst_len == 0) return CM_ENOSPC;
  dst[0] = '\0';
  if (name[0] == '\0') return CM_ENOENT;
  long n = form_var(buf, name, dst, dst_len - 1, true);
  if (n >= 0) dst[n] = '\0';
  return n;
}
