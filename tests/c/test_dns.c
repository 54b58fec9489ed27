/* Resolver tests.  Every query goes to a server this test runs on
 * 127.0.0.1: dnsmasq (real answers, NXDOMAIN) or a scripted responder in
 * the test's own event loop (SERVFAIL, silence, truncation).  Every manager
 * is given its server before the first lookup, so nothing ever reaches the
 * servers named in /etc/resolv.conf. */
#include <stdio.h>
#include <stdlib.h>

#include "peerproc.h"
#include "testutil.h"

static unsigned dnsmasq_port;
static pid_t dnsmasq_pid;
static char scratch[64];
static const char *const scratch_files[] = {"dnsmasq.conf", "dnsmasq.log", "hosts"};

/* ---- dnsmasq */

static int start_dnsmasq(void **state) {
  (void)state;
  char exe[256];
  if (peer_find_exe("dnsmasq", exe, sizeof(exe)) == NULL) {
    fprintf(stderr, "test_dns: dnsmasq not installed: tests that need it are skipped\n");
    return 0;
  }
  snprintf(scratch, sizeof(scratch), "/tmp/cm-test-dns-XXXXXX");
  if (mkdtemp(scratch) == NULL) return -1;
  unsigned port = peer_free_port();
  char conf[300], log[300];
  snprintf(conf, sizeof(conf), "%s/dnsmasq.conf", scratch);
  snprintf(log, sizeof(log), "%s/dnsmasq.log", scratch);
  FILE *f = fopen(conf, "w");
  if (f == NULL || port == 0) return -1;
  fprintf(f,
          "no-resolv\nno-hosts\nport=%u\nlisten-address=127.0.0.1\nbind-interfaces\n"
          "local=/test/\nhost-record=host.test,127.0.0.5,::5\nhost-record=v6.test,::1\n"
          "cname=alias.test,host.test\ntxt-record=textonly.test,hello\nuser=root\npid-file=\n",
          port);
  fclose(f);
  char *argv[] = {exe, "--keep-in-foreground", "-C", conf, NULL};
  dnsmasq_pid = peer_spawn(argv, log);
  if (dnsmasq_pid < 0 || !peer_wait_udp_bound(port, dnsmasq_pid, 5000)) {
    fprintf(stderr, "test_dns: dnsmasq did not start (see %s)\n", log);
    peer_stop(dnsmasq_pid);
    dnsmasq_pid = 0;
    return -1;
  }
  dnsmasq_port = port;
  return 0;
}

static int stop_dnsmasq(void **state) {
  (void)state;
  peer_stop(dnsmasq_pid);
  if (scratch[0] != '\0') peer_rm_dir(scratch, scratch_files, 3);
  return 0;
}

static void need_dnsmasq(void) {
  if (dnsmasq_port == 0) skip();
}

static void use_dnsmasq(struct cm_mgr *mgr) {
  char spec[64];
  snprintf(spec, sizeof(spec), "udp://127.0.0.1:%u", dnsmasq_port);
  assert_int_equal(cm_mgr_set_dns(mgr, spec), 0);
}

/* ---- scripted responder: answers A queries with 127.0.0.9 or misbehaves */

enum { ANSWER, SERVFAIL, SILENT, TRUNCATE };

struct responder {
  int mode;
  int udp_queries, tcp_queries;
  struct cm_conn *udp, *tcp;
};

/* Builds the reply to query q (header + one question). */
static size_t dns_reply(const uint8_t *q, size_t qlen, uint8_t *out, size_t cap, int mode,
                        bool over_tcp) {
  if (qlen < 12 || cap < qlen + 16) return 0;
  size_t i = 12;
  while (i < qlen && q[i] != 0) i += (size_t)q[i] + 1;
  if (i + 5 > qlen) return 0;
  size_t qend = i + 5;
  uint16_t qtype = (uint16_t)(q[i + 1] << 8 | q[i + 2]);
  memcpy(out, q, qend);
  bool answer = mode != SERVFAIL && qtype == 1 && (mode != TRUNCATE || over_tcp);
  out[2] = (uint8_t)(0x80 | (q[2] & 0x79) | (mode == TRUNCATE && !over_tcp ? 0x02 : 0)); /* QR, opcode, RD, TC */
  out[3] = (uint8_t)(0x80 | (mode == SERVFAIL ? 2 : 0)); /* RA, rcode */
  out[4] = 0, out[5] = 1;
  out[6] = 0, out[7] = answer ? 1 : 0;
  memset(out + 8, 0, 4);
  size_t n = qend;
  if (answer) {
    const uint8_t rr[] = {0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 9};
    memcpy(out + n, rr, sizeof(rr));
    n += sizeof(rr);
  }
  return n;
}

static void responder_udp_fn(struct cm_conn *c, int ev, void *ev_data) {
  (void)ev_data;
  struct responder *r = c->fn_data;
  if (ev != CM_EV_READ) return;
  r->udp_queries++;
  uint8_t out[600];
  size_t n = dns_reply(cm_buf_data(&c->recv), c->recv.len, out, sizeof(out), r->mode, false);
  if (n > 0 && r->mode != SILENT) cm_send(c, out, n);
  cm_recv_consume(c, c->recv.len);
}

static void responder_tcp_fn(struct cm_conn *c, int ev, void *ev_data) {
  (void)ev_data;
  struct responder *r = c->fn_data;
  if (ev != CM_EV_READ) return;
  while (c->recv.len >= 2) {
    const uint8_t *p = cm_buf_data(&c->recv);
    size_t len = (size_t)(p[0] << 8 | p[1]);
    if (c->recv.len < len + 2) break;
    r->tcp_queries++;
    uint8_t out[602];
    size_t n = dns_reply(p + 2, len, out + 2, sizeof(out) - 2, r->mode, true);
    out[0] = (uint8_t)(n >> 8), out[1] = (uint8_t)n;
    if (n > 0 && r->mode != SILENT) cm_send(c, out, n + 2);
    cm_recv_consume(c, len + 2);
  }
}

/* Starts the responder on ip ("127.0.0.1" or "[::1]") and makes it mgr's
 * only DNS server. */
static void start_responder_on(struct cm_mgr *mgr, struct responder *r, int mode, const char *ip) {
  memset(r, 0, sizeof(*r));
  r->mode = mode;
  char url[64];
  /* The TCP side needs the UDP side's port, which TCP may have in use:
   * then try another. */
  for (int attempt = 0; attempt < 50 && r->tcp == NULL; attempt++) {
    if (r->udp != NULL) cm_close(r->udp);
    snprintf(url, sizeof(url), "udp://%s:0", ip);
    r->udp = cm_listen(mgr, url, responder_udp_fn, r);
    assert_non_null(r->udp);
    snprintf(url, sizeof(url), "tcp://%s:%u", ip, r->udp->loc.port);
    r->tcp = cm_listen(mgr, url, responder_tcp_fn, r);
  }
  assert_non_null(r->tcp);
  snprintf(url, sizeof(url), "udp://%s:%u", ip, r->udp->loc.port);
  assert_int_equal(cm_mgr_set_dns(mgr, url), 0);
}

static void start_responder(struct cm_mgr *mgr, struct responder *r, int mode) {
  start_responder_on(mgr, r, mode, "127.0.0.1");
}

/* ---- a client that records its events */

struct client {
  int events[16];
  int nevents;
  int resolved, connected, errors, closed;
  char error[256];
};

static void client_fn(struct cm_conn *c, int ev, void *ev_data) {
  (void)c;
  struct client *cl = c->fn_data;
  if (ev == CM_EV_POLL || ev == CM_EV_WRITE || ev == CM_EV_READ) return;
  if (cl->nevents < 16) cl->events[cl->nevents++] = ev;
  if (ev == CM_EV_RESOLVE) cl->resolved++;
  if (ev == CM_EV_CONNECT) cl->connected++;
  if (ev == CM_EV_CLOSE) cl->closed++;
  if (ev == CM_EV_ERROR) {
    cl->errors++;
    snprintf(cl->error, sizeof(cl->error), "%s", (const char *)ev_data);
  }
}

static void poll_until(struct cm_mgr *mgr, const int *flag, int max_ms) {
  uint64_t end = cm_millis() + (uint64_t)max_ms;
  while (!*flag && cm_millis() < end) cm_mgr_poll(mgr, 10);
}

static void poll_for(struct cm_mgr *mgr, int ms) {
  uint64_t end = cm_millis() + (uint64_t)ms;
  while (cm_millis() < end) cm_mgr_poll(mgr, 10);
}

static void nop_fn(struct cm_conn *c, int ev, void *ev_data) {
  (void)c, (void)ev, (void)ev_data;
}

/* Server side that counts the bytes it receives (fn_data: size_t *). */
static void count_fn(struct cm_conn *c, int ev, void *ev_data) {
  (void)ev_data;
  if (ev == CM_EV_READ) {
    *(size_t *)c->fn_data += c->recv.len;
    cm_recv_consume(c, c->recv.len);
  }
}

/* ---- tests against dnsmasq */

static void connect_by_name_resolves_before_connect(void **state) {
  (void)state;
  need_dnsmasq();
  struct cm_mgr mgr;
  assert_int_equal(cm_mgr_init(&mgr), 0);
  use_dnsmasq(&mgr);
  size_t received = 0;
  struct cm_conn *l = cm_listen(&mgr, "tcp://127.0.0.5:0", count_fn, &received);
  assert_non_null(l);
  const char *names[] = {"host.test", "alias.test"}; /* A record, then CNAME to it */
  for (int k = 0; k < 2; k++) {
    struct client cl = {0};
    char url[128];
    snprintf(url, sizeof(url), "tcp://%s:%u", names[k], l->loc.port);
    struct cm_conn *c = cm_connect(&mgr, url, client_fn, &cl);
    assert_non_null(c);
    assert_true(c->is_resolving);
    assert_int_equal(cl.resolved, 0); /* never inside cm_connect */
    assert_true(cm_send(c, "hello", 5) == 0); /* queued until connected */
    poll_until(&mgr, &cl.connected, 3000);
    assert_int_equal(cl.errors, 0);
    assert_int_equal(cl.connected, 1);
    assert_int_equal(cl.events[0], CM_EV_OPEN);
    assert_int_equal(cl.events[1], CM_EV_RESOLVE);
    assert_int_equal(cl.events[2], CM_EV_CONNECT);
    assert_false(c->is_resolving);
    assert_false(c->rem.is_ip6);
    assert_memory_equal(c->rem.ip, ((uint8_t[]){127, 0, 0, 5}), 4);
    assert_int_equal(c->rem.port, l->loc.port);
    size_t want = 5 * (size_t)(k + 1);
    for (int i = 0; i < 200 && received < want; i++) cm_mgr_poll(&mgr, 10);
    assert_int_equal(received, want);
    cm_close(c);
    poll_until(&mgr, &cl.closed, 1000);
  }
  cm_mgr_free(&mgr);
}

static void ipv6_only_name_connects_over_ipv6(void **state) {
  (void)state;
  need_dnsmasq();
  struct cm_mgr mgr;
  assert_int_equal(cm_mgr_init(&mgr), 0);
  use_dnsmasq(&mgr);
  struct cm_conn *l = cm_listen(&mgr, "tcp://[::1]:0", nop_fn, NULL);
  assert_non_null(l);
  struct client cl = {0};
  char url[128];
  snprintf(url, sizeof(url), "tcp://v6.test:%u", l->loc.port);
  struct cm_conn *c = cm_connect(&mgr, url, client_fn, &cl);
  poll_until(&mgr, &cl.connected, 3000);
  assert_int_equal(cl.errors, 0);
  assert_int_equal(cl.connected, 1);
  assert_true(c->rem.is_ip6);
  assert_int_equal(c->rem.ip[15], 1);
  cm_mgr_free(&mgr);
}

static void unknown_name_gives_nxdomain_error(void **state) {
  (void)state;
  need_dnsmasq();
  struct cm_mgr mgr;
  assert_int_equal(cm_mgr_init(&mgr), 0);
  use_dnsmasq(&mgr);
  struct client cl = {0};
  cm_connect(&mgr, "tcp://missing.test:80", client_fn, &cl);
  poll_until(&mgr, &cl.closed, 5000);
  assert_int_equal(cl.closed, 1);
  assert_int_equal(cl.errors, 1);
  assert_int_equal(cl.resolved, 0);
  assert_int_equal(cl.connected, 0);
  assert_non_null(strstr(cl.error, "missing.test"));
  assert_non_null(strstr(cl.error, "NXDOMAIN"));
  /* A name that exists but has no A or AAAA record. */
  struct client cl2 = {0};
  cm_connect(&mgr, "tcp://textonly.test:80", client_fn, &cl2);
  poll_until(&mgr, &cl2.closed, 5000);
  assert_int_equal(cl2.errors, 1);
  assert_non_null(strstr(cl2.error, "no address records"));
  cm_mgr_free(&mgr);
}

static void server_from_environment(void **state) {
  (void)state;
  need_dnsmasq();
  char spec[64];
  snprintf(spec, sizeof(spec), "udp://127.0.0.1:%u", dnsmasq_port);
  setenv("CM_DNS_SERVER", spec, 1);
  struct cm_mgr mgr;
  assert_int_equal(cm_mgr_init(&mgr), 0);
  struct cm_conn *l = cm_listen(&mgr, "tcp://127.0.0.5:0", nop_fn, NULL);
  struct client cl = {0};
  char url[128];
  snprintf(url, sizeof(url), "tcp://host.test:%u", l->loc.port);
  cm_connect(&mgr, url, client_fn, &cl);
  poll_until(&mgr, &cl.connected, 3000);
  assert_int_equal(cl.errors, 0);
  assert_int_equal(cl.connected, 1);
  cm_mgr_free(&mgr);
  unsetenv("CM_DNS_SERVER");
}

static void many_lookups_at_once(void **state) {
  (void)state;
  need_dnsmasq();
  enum { N = 64 };
  struct cm_mgr mgr;
  assert_int_equal(cm_mgr_init(&mgr), 0);
  use_dnsmasq(&mgr);
  struct cm_conn *l = cm_listen(&mgr, "tcp://127.0.0.5:0", nop_fn, NULL);
  static struct client cls[N];
  memset(cls, 0, sizeof(cls));
  char url[128];
  for (int i = 0; i < N; i++) {
    snprintf(url, sizeof(url), "tcp://%s:%u", i % 2 ? "host.test" : "alias.test", l->loc.port);
    assert_non_null(cm_connect(&mgr, url, client_fn, &cls[i]));
  }
  int all = 0;
  uint64_t end = cm_millis() + 5000;
  while (!all && cm_millis() < end) {
    cm_mgr_poll(&mgr, 10);
    all = 1;
    for (int i = 0; i < N; i++) all &= cls[i].connected == 1 || cls[i].errors > 0;
  }
  for (int i = 0; i < N; i++) {
    assert_int_equal(cls[i].errors, 0);
    assert_int_equal(cls[i].connected, 1);
  }
  cm_mgr_free(&mgr);
}

static void close_before_answer_is_safe(void **state) {
  (void)state;
  need_dnsmasq();
  struct cm_mgr mgr;
  assert_int_equal(cm_mgr_init(&mgr), 0);
  use_dnsmasq(&mgr);
  struct client cl = {0};
  struct cm_conn *c = cm_connect(&mgr, "tcp://host.test:9", client_fn, &cl);
  cm_close(c);
  poll_for(&mgr, 300); /* the answer arrives for a connection that is gone */
  assert_int_equal(cl.closed, 1);
  assert_int_equal(cl.resolved, 0);
  assert_int_equal(cl.errors, 0);
  assert_int_equal(cl.events[cl.nevents - 1], CM_EV_CLOSE);
  cm_mgr_free(&mgr);
}

/* ---- tests against the scripted responder */

static void hosts_file_needs_no_server(void **state) {
  (void)state;
  struct cm_mgr mgr;
  assert_int_equal(cm_mgr_init(&mgr), 0);
  struct responder r;
  start_responder(&mgr, &r, SILENT);
  /* "localhost" from /etc/hosts, through c-ares (cm_resolve does not use
   * the numeric shortcut of cm_connect). */
  struct client cl = {0};
  struct cm_conn *u = cm_listen(&mgr, "udp://127.0.0.1:0", client_fn, &cl);
  assert_true(cm_resolve(u, "udp://localhost:4242") == 0);
  poll_until(&mgr, &cl.resolved, 2000);
  assert_int_equal(cl.errors, 0);
  assert_int_equal(cl.resolved, 1);
  assert_memory_equal(u->rem.ip, ((uint8_t[]){127, 0, 0, 1}), 4);
  assert_int_equal(u->rem.port, 4242);
  /* Another hosts file named by CARES_HOSTS. */
  char path[300];
  snprintf(path, sizeof(path), "/tmp/cm-test-hosts-%d", (int)getpid());
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fprintf(f, "127.0.0.7 fromhosts.example\n");
  fclose(f);
  setenv("CARES_HOSTS", path, 1);
  struct cm_conn *l = cm_listen(&mgr, "tcp://127.0.0.7:0", nop_fn, NULL);
  struct client cl2 = {0};
  char url[128];
  snprintf(url, sizeof(url), "tcp://fromhosts.example:%u", l->loc.port);
  cm_connect(&mgr, url, client_fn, &cl2);
  poll_until(&mgr, &cl2.connected, 2000);
  unsetenv("CARES_HOSTS");
  unlink(path);
  assert_int_equal(cl2.errors, 0);
  assert_int_equal(cl2.connected, 1);
  assert_int_equal(r.udp_queries, 0);
  cm_mgr_free(&mgr);
}

static void numeric_resolve_is_delivered_from_poll(void **state) {
  (void)state;
  struct cm_mgr mgr;
  assert_int_equal(cm_mgr_init(&mgr), 0);
  struct responder r;
  start_responder(&mgr, &r, SILENT);
  struct client cl = {0};
  struct cm_conn *u = cm_listen(&mgr, "udp://127.0.0.1:0", client_fn, &cl);
  assert_true(cm_resolve(u, "udp://[::2]:77") == 0);
  assert_int_equal(cl.resolved, 0);
  poll_until(&mgr, &cl.resolved, 1000);
  assert_int_equal(cl.resolved, 1);
  assert_true(u->rem.is_ip6);
  assert_int_equal(u->rem.ip[15], 2);
  assert_int_equal(u->rem.port, 77);
  assert_true(cm_resolve(u, "tcp://:80") != 0); /* no host */
  assert_int_equal(r.udp_queries, 0);
  cm_mgr_free(&mgr);
}

static void servfail_gives_error(void **state) {
  (void)state;
  struct cm_mgr mgr;
  assert_int_equal(cm_mgr_init(&mgr), 0);
  struct responder r;
  start_responder(&mgr, &r, SERVFAIL);
  struct client cl = {0};
  cm_connect(&mgr, "tcp://broken.example:80", client_fn, &cl);
  poll_until(&mgr, &cl.closed, 5000);
  assert_int_equal(cl.errors, 1);
  assert_non_null(strstr(cl.error, "SERVFAIL"));
  assert_true(r.udp_queries >= 1);
  cm_mgr_free(&mgr);
}

static void ipv6_server(void **state) {
  (void)state;
  struct cm_mgr mgr;
  assert_int_equal(cm_mgr_init(&mgr), 0);
  struct responder r;
  start_responder_on(&mgr, &r, ANSWER, "[::1]");
  struct client cl = {0};
  struct cm_conn *u = cm_listen(&mgr, "udp://127.0.0.1:0", client_fn, &cl);
  assert_true(cm_resolve(u, "udp://v6server.example:53") == 0);
  poll_until(&mgr, &cl.resolved, 3000);
  assert_int_equal(cl.errors, 0);
  assert_int_equal(cl.resolved, 1);
  assert_memory_equal(u->rem.ip, ((uint8_t[]){127, 0, 0, 9}), 4);
  assert_true(r.udp_queries >= 1);
  cm_mgr_free(&mgr);
}

static void silence_times_out(void **state) {
  (void)state;
  struct cm_mgr mgr;
  assert_int_equal(cm_mgr_init(&mgr), 0);
  struct responder r;
  start_responder(&mgr, &r, SILENT);
  cm_mgr_set_dns_timeout(&mgr, 300);
  struct client cl = {0};
  cm_connect(&mgr, "tcp://slow.example:80", client_fn, &cl);
  poll_until(&mgr, &cl.closed, 5000);
  assert_int_equal(cl.errors, 1);
  assert_non_null(strstr(cl.error, "timed out"));
  assert_non_null(strstr(cl.error, "slow.example"));
  assert_true(r.udp_queries >= 1);
  cm_mgr_free(&mgr);
}

static void truncated_answer_retries_over_tcp(void **state) {
  (void)state;
  struct cm_mgr mgr;
  assert_int_equal(cm_mgr_init(&mgr), 0);
  struct responder r;
  start_responder(&mgr, &r, TRUNCATE);
  struct cm_conn *l = cm_listen(&mgr, "tcp://127.0.0.9:0", nop_fn, NULL);
  struct client cl = {0};
  char url[128];
  snprintf(url, sizeof(url), "tcp://big.example:%u", l->loc.port);
  struct cm_conn *c = cm_connect(&mgr, url, client_fn, &cl);
  poll_until(&mgr, &cl.connected, 5000);
  assert_int_equal(cl.errors, 0);
  assert_int_equal(cl.connected, 1);
  assert_true(r.tcp_queries >= 1);
  assert_memory_equal(c->rem.ip, ((uint8_t[]){127, 0, 0, 9}), 4);
  cm_mgr_free(&mgr);
}

static void cancel_keeps_connection_quiet(void **state) {
  (void)state;
  struct cm_mgr mgr;
  assert_int_equal(cm_mgr_init(&mgr), 0);
  struct responder r;
  start_responder(&mgr, &r, SILENT);
  cm_mgr_set_dns_timeout(&mgr, 200);
  struct client cl = {0};
  struct cm_conn *c = cm_connect(&mgr, "tcp://never.example:80", client_fn, &cl);
  cm_mgr_poll(&mgr, 0);
  cm_resolve_cancel(c);
  assert_false(c->is_resolving);
  poll_for(&mgr, 500); /* past the timeout: still no event */
  assert_int_equal(cl.errors, 0);
  assert_int_equal(cl.resolved, 0);
  assert_int_equal(cl.closed, 0);
  assert_non_null(cm_conn_by_id(&mgr, c->id));
  cm_close(c);
  poll_until(&mgr, &cl.closed, 1000);
  assert_int_equal(cl.closed, 1);
  cm_mgr_free(&mgr);
}

static void free_manager_with_lookups_pending(void **state) {
  (void)state;
  for (int k = 0; k < 2; k++) {
    struct cm_mgr mgr;
    assert_int_equal(cm_mgr_init(&mgr), 0);
    struct responder r;
    start_responder(&mgr, &r, k == 0 ? SILENT : TRUNCATE);
    struct client cl[3];
    memset(cl, 0, sizeof(cl));
    for (int i = 0; i < 3; i++) cm_connect(&mgr, "tcp://pending.example:80", client_fn, &cl[i]);
    for (int i = 0; i < 5; i++) cm_mgr_poll(&mgr, 5); /* queries (and TCP) in flight */
    cm_mgr_free(&mgr);
    for (int i = 0; i < 3; i++) {
      assert_int_equal(cl[i].closed, 1);
      assert_int_equal(cl[i].errors, 0);
    }
  }
}

static void reconfiguring_fails_pending_lookups_cleanly(void **state) {
  (void)state;
  struct cm_mgr mgr;
  assert_int_equal(cm_mgr_init(&mgr), 0);
  struct responder r;
  start_responder(&mgr, &r, SILENT);
  struct client cl = {0};
  cm_connect(&mgr, "tcp://moving.example:80", client_fn, &cl);
  cm_mgr_poll(&mgr, 0);
  char spec[64];
  snprintf(spec, sizeof(spec), "udp://127.0.0.1:%u", r.udp->loc.port);
  assert_int_equal(cm_mgr_set_dns(&mgr, spec), 0);
  poll_until(&mgr, &cl.closed, 2000);
  assert_int_equal(cl.errors, 1);
  assert_non_null(strstr(cl.error, "reset"));
  cm_mgr_free(&mgr);
}

static void server_list_is_validated(void **state) {
  (void)state;
  struct cm_mgr mgr;
  assert_int_equal(cm_mgr_init(&mgr), 0);
  const char *bad[] = {"udp://example.com:53", "tcp://127.0.0.1:53", "127.0.0.1:0",
                       "localhost", "udp://127.0.0.1:53/x", ",", "1.2.3.4:99999"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    assert_int_equal(cm_mgr_set_dns(&mgr, bad[i]), CM_EINVAL);
  assert_int_equal(cm_mgr_set_dns(&mgr, "udp://127.0.0.1:5353, [::1]:53,10.1.2.3"), 0);
  assert_int_equal(cm_mgr_set_dns(&mgr, "udp://[::1]"), 0);
  cm_mgr_free(&mgr);
  /* A malformed CM_DNS_SERVER is an error, not a reason to use resolv.conf. */
  setenv("CM_DNS_SERVER", "not a server", 1);
  assert_int_equal(cm_mgr_init(&mgr), 0);
  struct client cl = {0};
  cm_connect(&mgr, "tcp://any.example:80", client_fn, &cl);
  poll_until(&mgr, &cl.closed, 1000);
  unsetenv("CM_DNS_SERVER");
  assert_int_equal(cl.errors, 1);
  assert_non_null(strstr(cl.error, "CM_DNS_SERVER"));
  cm_mgr_free(&mgr);
}

int main(void) {
  /* Nothing in this program may use resolv.conf's servers. */
  unsetenv("CM_DNS_SERVER");
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(connect_by_name_resolves_before_connect),
      cmocka_unit_test(ipv6_only_name_connects_over_ipv6),
      cmocka_unit_test(unknown_name_gives_nxdomain_error),
      cmocka_unit_test(server_from_environment),
      cmocka_unit_test(many_lookups_at_once),
      cmocka_unit_test(close_before_answer_is_safe),
      cmocka_unit_test(hosts_file_needs_no_server),
      cmocka_unit_test(numeric_resolve_is_delivered_from_poll),
      cmocka_unit_test(servfail_gives_error),
      cmocka_unit_test(ipv6_server),
      cmocka_unit_test(silence_times_out),
      cmocka_unit_test(truncated_answer_retries_over_tcp),
      cmocka_unit_test(cancel_keeps_connection_quiet),
      cmocka_unit_test(free_manager_with_lookups_pending),
      cmocka_unit_test(reconfiguring_fails_pending_lookups_cleanly),
      cmocka_unit_test(server_list_is_validated),
  };
  return cmocka_run_group_tests_name("dns", tests, start_dnsmasq, stop_dnsmasq);
}
