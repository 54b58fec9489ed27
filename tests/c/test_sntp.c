/* SNTP: the pure codec, the client against chronyd on 127.0.0.1, and the
 * client against a scripted 48-byte responder for the replies a real server
 * rarely sends (kiss-o'-death, unsynchronised, forged, truncated). */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "peerproc.h"
#include "testutil.h"

static unsigned chrony_port;
static pid_t chrony_pid;
static char scratch[64];
static const char *const scratch_files[] = {"chrony.conf", "chrony.log", "chronyd.pid",
                                            "drift"};

static int start_chrony(void **state) {
  (void)state;
  char exe[256];
  if (peer_find_exe("chronyd", exe, sizeof(exe)) == NULL) {
    fprintf(stderr, "test_sntp: chronyd not installed: tests that need it are skipped\n");
    return 0;
  }
  snprintf(scratch, sizeof(scratch), "/tmp/cm-test-sntp-XXXXXX");
  if (mkdtemp(scratch) == NULL) return -1;
  unsigned port = peer_free_port();
  char conf[300], log[300];
  snprintf(conf, sizeof(conf), "%s/chrony.conf", scratch);
  snprintf(log, sizeof(log), "%s/chrony.log", scratch);
  FILE *f = fopen(conf, "w");
  if (f == NULL || port == 0) return -1;
  /* "user root": chronyd would otherwise try to switch to _chrony. */
  fprintf(f,
          "port %u\nbindaddress 127.0.0.1\ncmdport 0\nlocal stratum 8\nallow 127.0.0.1\n"
          "pidfile %s/chronyd.pid\ndriftfile %s/drift\nuser root\n",
          port, scratch, scratch);
  fclose(f);
  /* -x: never touch the system clock. */
  char *argv[] = {exe, "-d", "-x", "-f", conf, NULL};
  chrony_pid = peer_spawn(argv, log);
  if (chrony_pid < 0 || !peer_wait_udp_bound(port, chrony_pid, 5000)) {
    fprintf(stderr, "test_sntp: chronyd did not start (see %s)\n", log);
    peer_stop(chrony_pid);
    chrony_pid = 0;
    return -1;
  }
  chrony_port = port;
  return 0;
}

static int stop_chrony(void **state) {
  (void)state;
  peer_stop(chrony_pid);
  if (scratch[0] != '\0') peer_rm_dir(scratch, scratch_files, 4);
  return 0;
}

static int64_t realtime_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void put64(uint8_t *p, uint64_t v) {
  for (int i = 7; i >= 0; i--, v >>= 8) p[i] = (uint8_t)v;
}

static uint64_t get64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = v << 8 | p[i];
  return v;
}

/* NTP timestamp (era 0) of a Unix time in ms. */
static uint64_t ntp_of_unix_ms(int64_t ms) {
  uint64_t secs = (uint64_t)(ms / 1000) + CM_SNTP_UNIX_OFFSET;
  uint64_t frac = ((uint64_t)(ms % 1000) << 32) / 1000;
  return secs << 32 | frac;
}

/* A valid server reply to a request with transmit timestamp origin. */
static void make_reply(uint8_t *p, uint64_t origin, int64_t server_ms) {
  memset(p, 0, CM_SNTP_PACKET_LEN);
  p[0] = (0 << 6) | (4 << 3) | 4;
  p[1] = 2;
  memcpy(p + 12, "GPS\0", 4);
  put64(p + 24, origin);
  put64(p + 32, ntp_of_unix_ms(server_ms));
  put64(p + 40, ntp_of_unix_ms(server_ms));
}

/* ---- codec */

static void codec_request_layout(void **state) {
  (void)state;
  uint8_t p[CM_SNTP_PACKET_LEN + 4];
  memset(p, 0xee, sizeof(p));
  assert_int_equal(cm_sntp_build_request(p, 47, 1), CM_ENOSPC);
  assert_int_equal(cm_sntp_build_request(p, sizeof(p), 0x0123456789abcdefULL), 48);
  assert_int_equal(p[0], 0x23); /* LI 0, version 4, mode 3 */
  for (int i = 1; i < 40; i++) assert_int_equal(p[i], 0);
  assert_true(get64(p + 40) == 0x0123456789abcdefULL);
  assert_int_equal(p[48], 0xee); /* nothing written past the packet */
}

static void codec_accepts_valid_reply(void **state) {
  (void)state;
  uint8_t p[CM_SNTP_PACKET_LEN];
  int64_t t = 1795695462418; /* 2026-11-26 */
  make_reply(p, 42, t);
  struct cm_sntp_reply r;
  assert_int_equal(cm_sntp_parse_reply(p, sizeof(p), 42, &r), 48);
  assert_true(r.transmit_ms == t || r.transmit_ms == t - 1); /* fraction rounding */
  assert_int_equal(r.stratum, 2);
  assert_int_equal(r.version, 4);
  /* Extension fields / MAC after the header are ignored. */
  uint8_t big[CM_SNTP_PACKET_LEN + 20] = {0};
  memcpy(big, p, sizeof(p));
  assert_int_equal(cm_sntp_parse_reply(big, sizeof(big), 42, &r), 48);
  /* Truncated: need the whole header. */
  assert_int_equal(cm_sntp_parse_reply(p, 47, 42, &r), 0);
  assert_int_equal(cm_sntp_parse_reply(p, 0, 42, &r), 0);
}

static void codec_refuses_bad_replies(void **state) {
  (void)state;
  uint8_t p[CM_SNTP_PACKET_LEN];
  struct cm_sntp_reply r;
  int64_t t = 1795695462000;
  make_reply(p, 7, t);
  assert_int_equal(cm_sntp_parse_reply(p, 48, 8, &r), CM_SNTP_ERR_ORIGIN);
  make_reply(p, 7, t);
  p[0] = (4 << 3) | 3; /* a client request echoed back */
  assert_int_equal(cm_sntp_parse_reply(p, 48, 7, &r), CM_SNTP_ERR_MODE);
  make_reply(p, 7, t);
  p[0] = (7 << 3) | 4;
  assert_int_equal(cm_sntp_parse_reply(p, 48, 7, &r), CM_SNTP_ERR_VERSION);
  make_reply(p, 7, t);
  p[1] = 0;
  memcpy(p + 12, "RATE", 4);
  assert_int_equal(cm_sntp_parse_reply(p, 48, 7, &r), CM_SNTP_ERR_KOD);
  assert_string_equal(r.kiss, "RATE");
  make_reply(p, 7, t);
  p[1] = 16;
  assert_int_equal(cm_sntp_parse_reply(p, 48, 7, &r), CM_SNTP_ERR_STRATUM);
  make_reply(p, 7, t);
  p[0] = (3 << 6) | (4 << 3) | 4;
  assert_int_equal(cm_sntp_parse_reply(p, 48, 7, &r), CM_SNTP_ERR_UNSYNC);
  make_reply(p, 7, t);
  memset(p + 40, 0, 8);
  assert_int_equal(cm_sntp_parse_reply(p, 48, 7, &r), CM_SNTP_ERR_TIME);
  for (int e = CM_SNTP_ERR_TIME; e <= 0; e++) assert_non_null(cm_sntp_strerror(e));
}

static void codec_era_rollover(void **state) {
  (void)state;
  /* NTP era 0 starts 1900; 1970 is 2208988800 s in. */
  assert_true(cm_sntp_to_unix_ms((uint64_t)CM_SNTP_UNIX_OFFSET << 32) == 0);
  assert_true(cm_sntp_to_unix_ms(((uint64_t)CM_SNTP_UNIX_OFFSET << 32) | 0x80000000u) == 500);
  /* Era 0 ends 2036-02-07T06:28:16Z = 2085978496 Unix; small seconds
   * values belong to era 1. */
  assert_true(cm_sntp_to_unix_ms(0) == 2085978496000LL);
  assert_true(cm_sntp_to_unix_ms((uint64_t)100 << 32) == 2085978596000LL);
}

/* ---- client helpers */

struct sntp_client {
  int times, errors, closed, connected;
  int64_t last_ms;
  char error[256];
};

static void sntp_fn(struct cm_conn *c, int ev, void *ev_data) {
  struct sntp_client *s = c->fn_data;
  if (ev == CM_EV_SNTP_TIME) {
    s->times++;
    s->last_ms = *(int64_t *)ev_data;
  } else if (ev == CM_EV_ERROR) {
    s->errors++;
    snprintf(s->error, sizeof(s->error), "%s", (const char *)ev_data);
  } else if (ev == CM_EV_CONNECT) {
    s->connected++;
  } else if (ev == CM_EV_CLOSE) {
    s->closed++;
  }
}

static void poll_until(struct cm_mgr *mgr, const int *flag, int target, int max_ms) {
  uint64_t end = cm_millis() + (uint64_t)max_ms;
  while (*flag < target && cm_millis() < end) cm_mgr_poll(mgr, 10);
}

static void poll_for(struct cm_mgr *mgr, int ms) {
  uint64_t end = cm_millis() + (uint64_t)ms;
  while (cm_millis() < end) cm_mgr_poll(mgr, 10);
}

/* ---- against chronyd */

static void chrony_gives_time_and_answers_again(void **state) {
  (void)state;
  if (chrony_port == 0) skip();
  struct cm_mgr mgr;
  assert_int_equal(cm_mgr_init(&mgr), 0);
  assert_int_equal(cm_mgr_set_dns(&mgr, "udp://127.0.0.1:9"), 0); /* never used */
  const char *forms[] = {"udp://127.0.0.1:%u", "sntp://127.0.0.1:%u"};
  for (int k = 0; k < 2; k++) {
    char url[64];
    snprintf(url, sizeof(url), forms[k], chrony_port);
    struct sntp_client s = {0};
    struct cm_conn *c = cm_sntp_connect(&mgr, url, sntp_fn, &s);
    assert_non_null(c);
    assert_true(c->is_udp);
    poll_until(&mgr, &s.times, 1, 3000);
    assert_int_equal(s.errors, 0);
    assert_int_equal(s.times, 1);
    /* chronyd serves this machine's clock: the same within a few seconds. */
    int64_t diff = s.last_ms - realtime_ms();
    assert_true(diff > -5000 && diff < 5000);
    assert_true(cm_sntp_request(c) == 0);
    poll_until(&mgr, &s.times, 2, 3000);
    assert_int_equal(s.times, 2);
    assert_int_equal(s.errors, 0);
    cm_close(c);
    poll_until(&mgr, &s.closed, 1, 1000);
  }
  cm_mgr_free(&mgr);
}

/* ---- against a scripted responder */

enum { GOOD, KOD, LEAP3, STRATUM16, FORGED_ORIGIN, CLIENT_MODE, SHORT, TWICE };

struct responder {
  int mode, requests;
  int64_t server_ms;
};

static void responder_fn(struct cm_conn *c, int ev, void *ev_data) {
  (void)ev_data;
  struct responder *r = c->fn_data;
  if (ev != CM_EV_READ) return;
  const uint8_t *q = cm_buf_data(&c->recv);
  if (c->recv.len >= CM_SNTP_PACKET_LEN && (q[0] & 7) == 3) {
    r->requests++;
    uint8_t p[CM_SNTP_PACKET_LEN];
    uint64_t origin = get64(q + 40);
    make_reply(p, origin, r->server_ms);
    size_t len = sizeof(p);
    switch (r->mode) {
      case KOD: p[1] = 0, memcpy(p + 12, "DENY", 4); break;
      case LEAP3: p[0] = (uint8_t)(p[0] | 0xc0); break;
      case STRATUM16: p[1] = 16; break;
      case FORGED_ORIGIN: put64(p + 24, origin ^ 1); break;
      case CLIENT_MODE: p[0] = (uint8_t)((p[0] & ~7) | 3); break;
      case SHORT: len = 40; break;
      default: break;
    }
    cm_send(c, p, len);
    if (r->mode == TWICE) cm_send(c, p, len);
  }
  cm_recv_consume(c, c->recv.len);
}

static struct cm_conn *start_responder(struct cm_mgr *mgr, struct responder *r, int mode) {
  memset(r, 0, sizeof(*r));
  r->mode = mode;
  r->server_ms = 1900000000123LL; /* 2030-03-17, far from this clock */
  struct cm_conn *l = cm_listen(mgr, "udp://127.0.0.1:0", responder_fn, r);
  assert_non_null(l);
  return l;
}

static void scripted_good_reply_and_duplicates(void **state) {
  (void)state;
  struct cm_mgr mgr;
  assert_int_equal(cm_mgr_init(&mgr), 0);
  struct responder r;
  struct cm_conn *l = start_responder(&mgr, &r, TWICE);
  char url[64];
  snprintf(url, sizeof(url), "udp://127.0.0.1:%u", l->loc.port);
  struct sntp_client s = {0};
  struct cm_conn *c = cm_sntp_connect(&mgr, url, sntp_fn, &s);
  /* Asked before the connection exists: still one request on connect. */
  assert_true(cm_sntp_request(c) == 0);
  poll_until(&mgr, &s.times, 1, 3000);
  poll_for(&mgr, 100); /* the duplicate reply arrives and is ignored */
  assert_int_equal(r.requests, 1);
  assert_int_equal(s.times, 1);
  assert_int_equal(s.errors, 0);
  /* The server's time, plus at most half a (loopback) round trip. */
  assert_true(s.last_ms >= r.server_ms - 1 && s.last_ms < r.server_ms + 1000); /* -1: rounding */
  cm_mgr_free(&mgr);
}

static void server_by_host_name(void **state) {
  (void)state;
  struct cm_mgr mgr;
  assert_int_equal(cm_mgr_init(&mgr), 0);
  /* The name comes from a hosts file; the DNS server is never asked. */
  assert_int_equal(cm_mgr_set_dns(&mgr, "udp://127.0.0.1:9"), 0);
  char path[128];
  snprintf(path, sizeof(path), "/tmp/cm-test-sntp-hosts-%d", (int)getpid());
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fprintf(f, "127.0.0.1 ntp.example\n");
  fclose(f);
  setenv("CARES_HOSTS", path, 1);
  struct responder r;
  struct cm_conn *l = start_responder(&mgr, &r, GOOD);
  char url[64];
  snprintf(url, sizeof(url), "sntp://ntp.example:%u", l->loc.port);
  struct sntp_client s = {0};
  struct cm_conn *c = cm_sntp_connect(&mgr, url, sntp_fn, &s);
  assert_true(c->is_resolving);
  poll_until(&mgr, &s.times, 1, 3000);
  unsetenv("CARES_HOSTS");
  unlink(path);
  assert_int_equal(s.errors, 0);
  assert_int_equal(s.times, 1);
  assert_int_equal(c->rem.port, l->loc.port);
  cm_mgr_free(&mgr);
}

static void scripted_bad_replies_give_errors(void **state) {
  (void)state;
  struct {
    int mode;
    const char *expect;
  } cases[] = {
      {KOD, "DENY"},
      {LEAP3, "not synchronised"},
      {STRATUM16, "stratum"},
      {FORGED_ORIGIN, "origin"},
      {CLIENT_MODE, "mode"},
      {SHORT, "truncated"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    struct cm_mgr mgr;
    assert_int_equal(cm_mgr_init(&mgr), 0);
    struct responder r;
    struct cm_conn *l = start_responder(&mgr, &r, cases[i].mode);
    char url[64];
    snprintf(url, sizeof(url), "udp://127.0.0.1:%u", l->loc.port);
    struct sntp_client s = {0};
    assert_non_null(cm_sntp_connect(&mgr, url, sntp_fn, &s));
    poll_until(&mgr, &s.closed, 1, 3000);
    assert_int_equal(s.times, 0);
    assert_int_equal(s.errors, 1);
    if (strstr(s.error, cases[i].expect) == NULL)
      fail_msg("case %zu: '%s' lacks '%s'", i, s.error, cases[i].expect);
    assert_non_null(strstr(s.error, "SNTP"));
    cm_mgr_free(&mgr);
  }
}

static void request_on_other_connections_is_refused(void **state) {
  (void)state;
  struct cm_mgr mgr;
  assert_int_equal(cm_mgr_init(&mgr), 0);
  struct cm_conn *l = cm_listen(&mgr, "udp://127.0.0.1:0", NULL, NULL);
  assert_true(cm_sntp_request(l) != 0);
  assert_true(cm_sntp_request(NULL) != 0);
  assert_null(cm_sntp_connect(&mgr, "udp://:123", NULL, NULL));
  cm_mgr_free(&mgr);
}

int main(void) {
  unsetenv("CM_DNS_SERVER");
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(codec_request_layout),
      cmocka_unit_test(codec_accepts_valid_reply),
      cmocka_unit_test(codec_refuses_bad_replies),
      cmocka_unit_test(codec_era_rollover),
      cmocka_unit_test(chrony_gives_time_and_answers_again),
      cmocka_unit_test(scripted_good_reply_and_duplicates),
      cmocka_unit_test(server_by_host_name),
      cmocka_unit_test(scripted_bad_replies_give_errors),
      cmocka_unit_test(request_on_other_connections_is_refused),
  };
  return cmocka_run_group_tests_name("sntp", tests, start_chrony, stop_chrony);
}
