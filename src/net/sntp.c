/*
 * SNTP client glue: a UDP connection whose protocol handler sends requests
 * built by sntp_codec.c and turns valid replies into CM_EV_SNTP_TIME.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "core/internal.h"

#define SNTP_DEFAULT_PORT 123

struct sntp_state {
  uint64_t token;      /* transmit timestamp of the request in flight */
  uint64_t old_token;  /* of the request before it: its late reply is ignored */
  uint64_t sent_ms;    /* cm_millis() when the request left */
  bool waiting;        /* a request is unanswered */
};

static void sntp_pfn(struct cm_conn *c, int ev, void *ev_data);

static uint64_t random_token(void) {
  uint64_t v = 0;
  if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != (ssize_t)sizeof(v)) {
    /* No entropy yet (early boot): still unpredictable enough for matching
     * replies to requests, which is all the token is for here. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    v ^= ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)ts.tv_nsec ^ (uint64_t)(uintptr_t)&v;
  }
  return v == 0 ? 1 : v; /* 0 would read as "no timestamp" */
}

static int send_request(struct cm_conn *c, struct sntp_state *s) {
  uint8_t pkt[CM_SNTP_PACKET_LEN];
  uint64_t token = random_token();
  cm_sntp_build_request(pkt, sizeof(pkt), token);
  int rc = cm_send(c, pkt, sizeof(pkt));
  if (rc != 0) return rc;
  if (s->waiting) s->old_token = s->token;
  s->token = token;
  s->sent_ms = cm_millis();
  s->waiting = true;
  return 0;
}

static uint64_t origin_of(const uint8_t *buf) {
  uint64_t v = 0;
  for (int i = 24; i < 32; i++) v = (v << 8) | buf[i];
  return v;
}

static void on_reply(struct cm_conn *c, struct sntp_state *s) {
  const uint8_t *buf = cm_buf_data(&c->recv);
  size_t len = c->recv.len;
  if (!s->waiting) return; /* unsolicited or duplicate: nothing to match */
  struct cm_sntp_reply r;
  int rc = cm_sntp_parse_reply(buf, len, s->token, &r);
  if (rc == CM_SNTP_ERR_ORIGIN && len >= CM_SNTP_PACKET_LEN && s->old_token != 0 &&
      origin_of(buf) == s->old_token)
    return; /* the late answer to a request that was replaced */
  if (rc == CM_SNTP_ERR_KOD) {
    s->waiting = false;
    cm_error(c, "SNTP: kiss-o'-death from the server, code %s", r.kiss);
    return;
  }
  if (rc <= 0) {
    s->waiting = false;
    cm_error(c, "SNTP: bad reply: %s", cm_sntp_strerror(rc));
    return;
  }
  s->waiting = false;
  s->old_token = 0;
  /* Round trip minus the server's hold time; half of it is the time the
   * reply spent in flight (assuming symmetric paths). */
  int64_t rtt = (int64_t)(cm_millis() - s->sent_ms);
  int64_t delay = rtt - (r.transmit_ms - r.receive_ms);
  if (delay < 0) delay = 0;
  int64_t epoch_ms = r.transmit_ms + delay / 2;
  cm_call(c, CM_EV_SNTP_TIME, &epoch_ms);
}

static void sntp_pfn(struct cm_conn *c, int ev, void *ev_data) {
  (void)ev_data;
  struct sntp_state *s = c->pfn_data;
  if (s == NULL) return;
  if (ev == CM_EV_CONNECT) {
    int rc = send_request(c, s);
    if (rc != 0) cm_error(c, "SNTP: cannot send the request: %s", cm_strerror(rc));
  } else if (ev == CM_EV_READ) {
    on_reply(c, s);
  } else if (ev == CM_EV_CLOSE) {
    free(s);
    c->pfn_data = NULL;
  }
}

struct cm_conn *cm_sntp_connect(struct cm_mgr *mgr, const char *url, cm_event_fn fn,
                                void *fn_data) {
  struct cm_str host = cm_url_host(url);
  uint16_t port = cm_url_port(url);
  if (host.len == 0 || host.len > 255) {
    errno = EINVAL;
    CM_ERROR("sntp_connect %s: need a host", url);
    return NULL;
  }
  if (port == 0) port = SNTP_DEFAULT_PORT;
  char udp_url[300];
  bool v6 = memchr(host.buf, ':', host.len) != NULL;
  snprintf(udp_url, sizeof(udp_url), v6 ? "udp://[%.*s]:%u" : "udp://%.*s:%u", (int)host.len,
           host.buf, port);
  struct sntp_state *s = calloc(1, sizeof(*s));
  if (s == NULL) return NULL;
  struct cm_conn *c = cm_connect(mgr, udp_url, fn, fn_data);
  if (c == NULL) {
    free(s);
    return NULL;
  }
  c->pfn = sntp_pfn;
  c->pfn_data = s;
  return c;
}

int cm_sntp_request(struct cm_conn *c) {
  if (c == NULL || c->pfn != sntp_pfn || c->pfn_data == NULL) return CM_EINVAL;
  if (c->is_closing) return CM_ECLOSED;
  /* Not connected yet: CONNECT sends one anyway. */
  if (c->is_resolving || c->is_connecting || c->fd < 0) return 0;
  return send_request(c, c->pfn_data);
}
