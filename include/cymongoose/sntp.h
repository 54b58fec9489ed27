/*
 * cymongoose: SNTP client (RFC 4330) and its pure codec.
 * Included by cymongoose.h.
 */
#ifndef CYMONGOOSE_SNTP_H
#define CYMONGOOSE_SNTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default) /* exported: see cymongoose.h */

struct cm_conn;
struct cm_mgr;

/* ------------------------------------------------------------- client */

/*
 * Opens a UDP connection to the SNTP server in url ("udp://host:port",
 * "sntp://host", or just "host"; port 123 when absent; host names are
 * resolved, RESOLVE comes before CONNECT) and sends a request as soon as it
 * is connected.  Each valid reply delivers CM_EV_SNTP_TIME with an
 * int64_t *epoch_ms (milliseconds since 1970, corrected by half the
 * round-trip delay).  A reply that fails validation (wrong mode, origin
 * timestamp not ours, unsynchronised server, stratum out of range,
 * kiss-o'-death) delivers CM_EV_ERROR with the reason and closes the
 * connection.  There is no built-in retry: call cm_sntp_request() again, or
 * close, if no answer comes in time.  Returns the connection (OPEN already
 * delivered) or NULL with errno set, like cm_connect().
 */
struct cm_conn *cm_sntp_connect(struct cm_mgr *mgr, const char *url, cm_event_fn fn,
                                void *fn_data);

/*
 * Sends a new request on a connection made by cm_sntp_connect(); a request
 * still unanswered is forgotten (its late reply is ignored).  Before the
 * connection is established the request is sent when it is.  Returns 0;
 * CM_EINVAL when c is not an SNTP connection; CM_ECLOSED when it is
 * closing; cm_send()'s code when the datagram could not be sent.
 */
int cm_sntp_request(struct cm_conn *c);

/* -------------------------------------------------------------- codec */

#define CM_SNTP_PACKET_LEN 48
/* Seconds from 1900-01-01 (NTP era 0) to 1970-01-01. */
#define CM_SNTP_UNIX_OFFSET 2208988800ULL

/* Why a reply was refused (negative results of cm_sntp_parse_reply). */
enum {
  CM_SNTP_ERR_MODE = -1,    /* not a server (mode 4) reply */
  CM_SNTP_ERR_VERSION = -2, /* version not 1..4 */
  CM_SNTP_ERR_ORIGIN = -3,  /* origin timestamp is not our transmit timestamp */
  CM_SNTP_ERR_KOD = -4,     /* kiss-o'-death (stratum 0); kiss code in the reply */
  CM_SNTP_ERR_STRATUM = -5, /* stratum above 15 */
  CM_SNTP_ERR_UNSYNC = -6,  /* leap indicator 3: server clock not synchronised */
  CM_SNTP_ERR_TIME = -7     /* zero transmit timestamp */
};

/* What a valid reply says.  Times are Unix epoch milliseconds. */
struct cm_sntp_reply {
  int64_t receive_ms;  /* when the server got the request */
  int64_t transmit_ms; /* when the server sent the reply */
  uint8_t leap;        /* leap indicator 0..2 */
  uint8_t version;
  uint8_t stratum;     /* 1..15, or 0 for kiss-o'-death */
  char kiss[5];        /* kiss code ("RATE", "DENY", ...) when stratum is 0 */
};

/*
 * Writes a 48-byte client request (version 4, mode 3) into out, with
 * transmit_ts as the transmit timestamp.  The caller passes a random
 * 64-bit value there (RFC 9109: a random transmit timestamp tells nothing
 * about the local clock and makes replies hard to forge) and keeps it to
 * check the reply.  Returns CM_SNTP_PACKET_LEN, or CM_ENOSPC when len is
 * too small (or out is NULL).
 */
long cm_sntp_build_request(uint8_t *out, size_t len, uint64_t transmit_ts);

/*
 * Validates the reply in buf[0..len) to the request whose transmit
 * timestamp was expected_origin and fills *r.  Pure: reads at most
 * CM_SNTP_PACKET_LEN bytes of buf (extension fields are ignored).
 * Returns CM_SNTP_PACKET_LEN on success, 0 when len < 48 (truncated),
 * or a negative CM_SNTP_ERR_*; for CM_SNTP_ERR_KOD r->kiss holds the code.
 */
int cm_sntp_parse_reply(const uint8_t *buf, size_t len, uint64_t expected_origin,
                        struct cm_sntp_reply *r);

/* Converts a 64-bit NTP timestamp to Unix milliseconds.  Seconds below
 * 2^31 are taken as NTP era 1 (from 2036), per RFC 4330 section 3. */
int64_t cm_sntp_to_unix_ms(uint64_t ntp_ts);

/* A static English message for a CM_SNTP_ERR_* code. */
const char *cm_sntp_strerror(int err);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif

#endif
