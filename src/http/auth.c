/* Basic credentials of a request (RFC 7617). */
#include <string.h>
#include <strings.h>

#include "cymongoose.h"

bool cm_http_basic_creds(struct cm_http_msg *hm, char *user, size_t ulen, char *pass, size_t plen) {
  struct cm_str *v = cm_http_get_header(hm, "Authorization");
  if (v == NULL || v->len < 6 || strncasecmp(v->buf, "Basic ", 6) != 0) return false;
  const char *p = v->buf + 6, *end = v->buf + v->len;
  while (p < end && *p == ' ') p++; /* the scheme may be followed by more spaces */
  char decoded[512];
  long n = cm_base64_decode(p, (size_t) (end - p), decoded, sizeof(decoded));
  if (n < 0) return false;
  const char *colon = memchr(decoded, ':', (size_t) n);
  if (colon == NULL) return false;
  size_t un = (size_t) (colon - decoded), pn = (size_t) n - un - 1;
  if (un >= ulen || pn >= plen) return false;
  /* NUL and other controls are not allowed in either part (RFC 7617 2). */
  for (long i = 0; i < n; i++)
    if ((unsigned char) decoded[i] < 0x20 || decoded[i] == 0x7f) return false;
  memcpy(user, decoded, un);
  user[un] = '\0';
  memcpy(pass, colon + 1, pn);
  pass[pn] = '\0';
  return true;
}
