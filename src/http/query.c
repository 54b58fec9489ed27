/* Percent-decoding and form variables (a=1&b=2). */
#include <limits.h>
#include <string.h>

#include "cymongoose.h"
#include "http/chars.h"

int cm_url_decode(const char *src, size_t src_len, char *dst, size_t dst_len, bool is_form) {
  if (dst == NULL || dst_len == 0 || dst_len > INT_MAX) return -1;
  size_t j = 0;
  for (size_t i = 0; i < src_len; i++) {
    unsigned char c = (unsigned char) src[i];
    if (c == '%') {
      if (src_len - i < 3) return -1;
      int hi = cm__http_hex((unsigned char) src[i + 1]), lo = cm__http_hex((unsigned char) src[i + 2]);
      if (hi < 0 || lo < 0) return -1;
      c = (unsigned char) (hi << 4 | lo);
      i += 2;
    } else if (c == '+' && is_form) {
      c = ' ';
    }
    if (j + 1 >= dst_len) return -1; /* keep room for the NUL */
    dst[j++] = (char) c;
  }
  dst[j] = '\0';
  return (int) j;
}

int cm_http_get_var(struct cm_str buf, const char *name, char *dst, size_t dst_len) {
  size_t n = strlen(name);
  if (dst != NULL && dst_len > 0) dst[0] = '\0';
  if (buf.buf == NULL || n == 0) return -1;
  const char *p = buf.buf, *end = buf.buf + buf.len;
  while (p < end) {
    const char *amp = memchr(p, '&', (size_t) (end - p));
    const char *stop = amp != NULL ? amp : end;
    const char *eq = memchr(p, '=', (size_t) (stop - p));
    const char *key_end = eq != NULL ? eq : stop;
    if ((size_t) (key_end - p) == n) {
      bool same = true;
      for (size_t k = 0; k < n && same; k++) {
        same = cm__http_lower((unsigned char) p[k]) == cm__http_lower((unsigned char) name[k]);
      }
      if (same) {
        const char *v = eq != NULL ? eq + 1 : stop;
        int r = cm_url_decode(v, (size_t) (stop - v), dst, dst_len, true);
        return r < 0 ? -2 : r;
      }
    }
    if (amp == NULL) break;
    p = amp + 1;
  }
  return -1;
}
