/* Percent-encoding (RFC 3986) and form variables
 * (application/x-www-form-urlencoded, as in the WHATWG URL standard). */
#include <string.h>

#include "cymongoose.h"

static bool unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

size_t cm_url_encode(const char *s, size_t n, char *buf, size_t len) {
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
  return o;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Decodes the byte at s[*i] (of n), advancing *i past it. */
static char decode_one(const char *s, size_t n, size_t *i, bool plus_is_space) {
  char c = s[*i];
  if (c == '%' && n - *i >= 3) {
    int hi = hexval(s[*i + 1]), lo = hexval(s[*i + 2]);
    if (hi >= 0 && lo >= 0) {
      *i += 3;
      return (char)(hi * 16 + lo);
    }
  }
  (*i)++;
  return c == '+' && plus_is_space ? ' ' : c;
}

/* Lenient percent-decoding (bad escapes kept); -1 when buf is too small.
 * cm_url_decode in http.h is the strict one. */
static long decode_lenient(const char *s, size_t n, char *buf, size_t len, bool plus_is_space) {
  size_t i = 0, o = 0;
  while (i < n) {
    char c = decode_one(s, n, &i, plus_is_space);
    if (o >= len) return -1;
    buf[o++] = c;
  }
  return (long)o;
}

/* Is the decoded form of s[0..n) equal to name? */
static bool decoded_equals(const char *s, size_t n, const char *name, size_t namelen) {
  size_t i = 0, k = 0;
  while (i < n) {
    char c = decode_one(s, n, &i, true);
    if (k >= namelen || name[k] != c) return false;
    k++;
  }
  return k == namelen;
}

long cm_http_var(struct cm_str buf, const char *name, char *dst, size_t dstlen) {
  size_t namelen = strlen(name), pos = 0;
  const char *s = buf.buf;
  if (s == NULL) return -1;
  while (pos <= buf.len) {
    const char *amp = memchr(s + pos, '&', buf.len - pos);
    size_t pair_end = amp == NULL ? buf.len : (size_t)(amp - s);
    const char *eq = memchr(s + pos, '=', pair_end - pos);
    size_t name_end = eq == NULL ? pair_end : (size_t)(eq - s);
    if (pair_end > pos && decoded_equals(s + pos, name_end - pos, name, namelen)) {
      size_t vstart = eq == NULL ? pair_end : name_end + 1;
      long n = decode_lenient(s + vstart, pair_end - vstart, dst, dstlen, true);
      return n < 0 ? -2 : n;
    }
    if (amp == NULL) break;
    pos = pair_end + 1;
  }
  return -1;
}
