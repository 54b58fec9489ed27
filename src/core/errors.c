/* cm_strerror(): one message for every error code of the public API. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "cymongoose.h"
#include "core/internal.h"

const char *cm_strerror(int code) {
  switch (code) {
    case 0: return "success";
    case CM_ECLOSED: return "connection is closing";
    case CM_ETOOBIG: return "limit exceeded";
    case CM_EPARSE: return "malformed input";
    case CM_EPARTIAL: return "incomplete input";
    default: break;
  }
  if (code < 0 && code > -4096) {
    /* strerrordesc_np() returns a static string and, unlike strerror(),
     * is thread-safe; NULL for numbers it does not know. */
    const char *s = strerrordesc_np(-code);
    if (s != NULL) return s;
  }
  return "unknown error";
}

const char *cm__errstr(int err, char *buf, size_t len) {
  snprintf(buf, len, "%s", cm_strerror(-err));
  if (len > 0) buf[0] = (char)tolower((unsigned char)buf[0]);
  return buf;
}
