/*
 * Close frame payloads (RFC 6455 5.5.1, 7.4): a 2-byte big-endian status
 * code followed by a UTF-8 reason, or nothing at all.
 */
#include <string.h>

#include "cymongoose.h"

bool cm_ws_close_code_valid(unsigned code) {
  /* 1004 is reserved; 1005, 1006 and 1015 are stand-ins for "no frame" /
   * "no code" and must never be on the wire; 1012-1014 were registered
   * with IANA after the RFC; 1016-2999 are unassigned (reserved for the
   * protocol); 3000-3999 are for libraries and 4000-4999 for applications. */
  if (code >= 1000 && code <= 1003) return true;
  if (code >= 1007 && code <= 1014) return true;
  return code >= 3000 && code <= 4999;
}

int cm_ws_parse_close(const uint8_t *p, size_t n, uint16_t *code, const char **reason,
                      size_t *reason_len) {
  const char *r = "";
  size_t rlen = 0;
  uint16_t c = CM_WS_CLOSE_NO_STATUS;
  if (n == 1) return CM_WS_E_CLOSE_LENGTH;
  if (n >= 2) {
    c = (uint16_t)(p[0] << 8 | p[1]);
    if (!cm_ws_close_code_valid(c)) return CM_WS_E_CLOSE_CODE;
    r = (const char *)p + 2;
    rlen = n - 2;
    if (!cm_utf8_valid(p + 2, rlen)) return CM_WS_E_UTF8;
  }
  if (code != NULL) *code = c;
  if (reason != NULL) *reason = r;
  if (reason_len != NULL) *reason_len = rlen;
  return 0;
}

size_t cm_ws_close_payload(uint8_t out[CM_WS_MAX_CONTROL_PAYLOAD], unsigned code,
                           const char *reason, size_t reason_len) {
  if (code == 0) return 0;
  out[0] = (uint8_t)(code >> 8);
  out[1] = (uint8_t)code;
  if (reason == NULL) reason_len = 0;
  size_t room = CM_WS_MAX_CONTROL_PAYLOAD - 2;
  if (reason_len > room) reason_len = room;
  reason_len = cm_utf8_valid_prefix((const uint8_t *)reason, reason_len);
  if (reason_len > 0) memcpy(out + 2, reason, reason_len);
  return 2 + reason_len;
}
