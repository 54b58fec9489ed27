/*
 * SNTP packets (RFC 4330, RFC 5905 section 7.3): building a client request
 * and validating a server's reply.  Pure: no I/O, no allocation, no clock.
 *
 * Layout of the 48-byte header (all fields big-endian):
 *   0: LI(2) VN(3) Mode(3)   1: stratum   2: poll   3: precision
 *   4: root delay   8: root dispersion   12: reference id
 *   16: reference ts   24: origin ts   32: receive ts   40: transmit ts
 */
#include "cymongoose.h"

enum { MODE_CLIENT = 3, MODE_SERVER = 4, VERSION = 4 };
enum { OFF_REFID = 12, OFF_ORIGIN = 24, OFF_RECEIVE = 32, OFF_TRANSMIT = 40 };

static uint64_t get64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
  return v;
}

static void put64(uint8_t *p, uint64_t v) {
  for (int i = 7; i >= 0; i--) {
    p[i] = (uint8_t)(v & 0xff);
    v >>= 8;
  }
}

long cm_sntp_build_request(uint8_t *out, size_t len, uint64_t transmit_ts) {
  if (out == NULL || len < CM_SNTP_PACKET_LEN) return CM_ENOSPC;
  for (size_t i = 0; i < CM_SNTP_PACKET_LEN; i++) out[i] = 0;
  out[0] = (uint8_t)((0 << 6) | (VERSION << 3) | MODE_CLIENT);
  put64(out + OFF_TRANSMIT, transmit_ts);
  return CM_SNTP_PACKET_LEN;
}

int64_t cm_sntp_to_unix_ms(uint64_t ntp_ts) {
  uint64_t secs = ntp_ts >> 32;
  uint64_t frac = ntp_ts & 0xffffffffu;
  /* Era 0 ends in 2036; a clear top bit means the counter has wrapped. */
  if ((secs & 0x80000000u) == 0) secs += 1ULL << 32;
  int64_t unix_secs = (int64_t)secs - (int64_t)CM_SNTP_UNIX_OFFSET;
  return unix_secs * 1000 + (int64_t)((frac * 1000 + 0x80000000u) >> 32); /* rounded */
}

int cm_sntp_parse_reply(const uint8_t *buf, size_t len, uint64_t expected_origin,
                        struct cm_sntp_reply *r) {
  if (buf == NULL || len < CM_SNTP_PACKET_LEN) return 0;
  uint8_t leap = (uint8_t)(buf[0] >> 6), version = (uint8_t)((buf[0] >> 3) & 7);
  uint8_t mode = (uint8_t)(buf[0] & 7), stratum = buf[1];
  r->leap = leap;
  r->version = version;
  r->stratum = stratum;
  r->kiss[0] = '\0';
  r->receive_ms = r->transmit_ms = 0;
  if (mode != MODE_SERVER) return CM_SNTP_ERR_MODE;
  if (version < 1 || version > 4) return CM_SNTP_ERR_VERSION;
  /* Checked before anything is believed: a reply not matching our request
   * is stray or forged, kiss-o'-death included (RFC 5905 section 7.4). */
  if (get64(buf + OFF_ORIGIN) != expected_origin) return CM_SNTP_ERR_ORIGIN;
  if (stratum == 0) {
    for (int i = 0; i < 4; i++) {
      uint8_t ch = buf[OFF_REFID + i];
      r->kiss[i] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
    }
    r->kiss[4] = '\0';
    return CM_SNTP_ERR_KOD;
  }
  if (stratum > 15) return CM_SNTP_ERR_STRATUM;
  if (leap == 3) return CM_SNTP_ERR_UNSYNC;
  uint64_t tx = get64(buf + OFF_TRANSMIT);
  if (tx == 0) return CM_SNTP_ERR_TIME;
  uint64_t rx = get64(buf + OFF_RECEIVE);
  r->transmit_ms = cm_sntp_to_unix_ms(tx);
  r->receive_ms = rx == 0 ? r->transmit_ms : cm_sntp_to_unix_ms(rx);
  return CM_SNTP_PACKET_LEN;
}

const char *cm_sntp_strerror(int err) {
  switch (err) {
    case 0: return "truncated reply (shorter than 48 bytes)";
    case CM_SNTP_ERR_MODE: return "not a server reply (mode is not 4)";
    case CM_SNTP_ERR_VERSION: return "unsupported NTP version";
    case CM_SNTP_ERR_ORIGIN: return "origin timestamp does not match our request";
    case CM_SNTP_ERR_KOD: return "kiss-o'-death from the server";
    case CM_SNTP_ERR_STRATUM: return "stratum out of range (server unsynchronised)";
    case CM_SNTP_ERR_UNSYNC: return "server clock not synchronised (leap indicator 3)";
    case CM_SNTP_ERR_TIME: return "reply carries no transmit time";
    default: return err > 0 ? "ok" : "invalid reply";
  }
}
