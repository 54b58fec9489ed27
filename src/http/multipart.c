/*
 * multipart/form-data bodies (RFC 7578 over RFC 2046):
 *
 *   --BOUNDARY CRLF headers CRLF CRLF data CRLF --BOUNDARY ... --BOUNDARY--
 *
 * The boundary is read from the body's first line, so the body alone is
 * enough (no Content-Type needed).  Each call parses one part and returns
 * where the next delimiter starts.
 */
#include <string.h>

#include "cymongoose.h"
#include "http/chars.h"

#define MAX_BOUNDARY 200 /* RFC 2046 allows 70; be generous, but bounded */

static size_t none(struct cm_http_part *part) {
  if (part != NULL) {
    struct cm_http_part zero = {{NULL, 0}, {NULL, 0}, {NULL, 0}};
    *part = zero;
  }
  return 0;
}

static bool starts_with_nocase(const char *p, size_t len, const char *prefix) {
  size_t n = strlen(prefix);
  if (len < n) return false;
  for (size_t i = 0; i < n; i++) {
    if (cm__http_lower((unsigned char) p[i]) != (unsigned char) prefix[i]) return false;
  }
  return true;
}

size_t cm_http_parse_multipart(struct cm_str body, size_t offset, struct cm_http_part *part) {
  const char *b = body.buf;
  size_t len = body.len;
  none(part);
  if (b == NULL || len < 4 || b[0] != '-' || b[1] != '-') return 0;
  const char *eol = memmem(b, len < MAX_BOUNDARY + 4 ? len : MAX_BOUNDARY + 4, "\r\n", 2);
  if (eol == NULL || eol == b + 2) return 0;
  size_t blen = (size_t) (eol - b); /* "--" + boundary */

  /* the delimiter at offset */
  if (offset > len || len - offset < blen + 2 || memcmp(b + offset, b, blen) != 0) return 0;
  size_t i = offset + blen;
  if (b[i] == '-' && b[i + 1] == '-') return 0; /* close-delimiter: no more parts */
  if (b[i] != '\r' || b[i + 1] != '\n') return 0;
  i += 2;

  /* part headers, up to an empty line */
  struct cm_str disposition = {NULL, 0};
  for (;;) {
    const char *le = memmem(b + i, len - i, "\r\n", 2);
    if (le == NULL) return 0;
    size_t line_len = (size_t) (le - (b + i));
    if (line_len == 0) {
      i += 2;
      break;
    }
    if (starts_with_nocase(b + i, line_len, "content-disposition:")) {
      const char *v = b + i + 20, *ve = le;
      while (v < ve && cm__http_is_ows((unsigned char) *v)) v++;
      while (ve > v && cm__http_is_ows((unsigned char) ve[-1])) ve--;
      disposition = cm_str_n(v, (size_t) (ve - v));
    }
    i += line_len + 2;
  }

  /* data, up to CRLF before the next delimiter */
  const char *p = b + i, *end = b + len;
  const char *found = NULL;
  while (p < end) {
    const char *crlf = memmem(p, (size_t) (end - p), "\r\n", 2);
    if (crlf == NULL) break;
    if ((size_t) (end - crlf) >= blen + 2 && memcmp(crlf + 2, b, blen) == 0) {
      found = crlf;
      break;
    }
    p = crlf + 1;
  }
  if (found == NULL) return 0;
  if (part != NULL) {
    part->name = cm_http_get_header_var(disposition, cm_str_c("name"));
    part->filename = cm_http_get_header_var(disposition, cm_str_c("filename"));
    part->body = cm_str_n(b + i, (size_t) (found - (b + i)));
  }
  return (size_t) (found + 2 - b);
}
