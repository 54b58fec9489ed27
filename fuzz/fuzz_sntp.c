/* Fuzzes the SNTP reply parser: any bytes, any length, with the expected
 * origin either taken from the packet itself (so validation goes past the
 * origin check) or from the input's last 8 bytes.  The parser must never
 * read past the buffer and must return 0, 48 or a CM_SNTP_ERR_* code. */
#include <stdlib.h>
#include <string.h>

#include "cymongoose.h"

static uint64_t get64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = v << 8 | p[i];
  return v;
}

static void check(const uint8_t *data, size_t size, uint64_t origin) {
  struct cm_sntp_reply r;
  int rc = cm_sntp_parse_reply(data, size, origin, &r);
  if (rc != 0 && rc != CM_SNTP_PACKET_LEN && (rc > 0 || rc < CM_SNTP_ERR_TIME)) abort();
  if (rc == 0 && size >= CM_SNTP_PACKET_LEN) abort();
  if (rc == CM_SNTP_PACKET_LEN && (r.stratum == 0 || r.stratum > 15 || r.leap == 3)) abort();
  if (rc == CM_SNTP_ERR_KOD && strlen(r.kiss) != 4) abort();
  (void)cm_sntp_strerror(rc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  check(data, size, size >= 32 ? get64(data + 24) : 0);
  if (size >= 8) check(data, size - 8, get64(data + size - 8));
  uint8_t req[CM_SNTP_PACKET_LEN];
  if (cm_sntp_build_request(req, sizeof(req), size >= 8 ? get64(data) : 1) != (long)sizeof(req)) abort();
  (void)cm_sntp_to_unix_ms(size >= 8 ? get64(data) : 0);
  return 0;
}
