/* TLS over loopback: echo inside one manager (RSA, ECDSA chain, listener
 * options, trustme certificates), every failure as a clear ERROR (wrong CA,
 * wrong name, expired, garbage PEM, protocol mismatch, handshake timeout,
 * missing client certificate), 64 MiB each way, backpressure without
 * stranded data, automatic client TLS, and openssl s_server / s_client as
 * peers. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"
#include "certgen.h"

/* ---- certificates shared by the tests (made once in setup) */

static struct test_cert rsa_ca, rsa_leaf, other_ca, expired_leaf;
static struct test_cert ec_root, ec_mid, ec_leaf, client_leaf;
static char *ec_chain; /* ec_leaf then ec_mid */
static char tmpdir[64];

static void write_file(const char *name, const char *data) {
  char path[256];
  snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(data, f);
  fclose(f);
}

static char *read_file(const char *name) {
  char path[256];
  snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
  FILE *f = fopen(path, "r");
  if (f == NULL) return NULL;
  char *buf = calloc(1, 65536);
  size_t n = fread(buf, 1, 65535, f);
  buf[n] = '\0';
  fclose(f);
  return buf;
}

static int setup(void **state) {
  (void)state;
  const long day = 86400;
  rsa_ca = certgen(false, "Test RSA CA", NULL, true, -day, 30 * day);
  rsa_leaf = certgen(false, "localhost", &rsa_ca, false, -day, 30 * day);
  other_ca = certgen(true, "Some Other CA", NULL, true, -day, 30 * day);
  expired_leaf = certgen(true, "localhost", &rsa_ca, false, -3 * day, -day);
  ec_root = certgen(true, "Test EC Root", NULL, true, -day, 30 * day);
  ec_mid = certgen(true, "Test EC Intermediate", &ec_root, true, -day, 30 * day);
  ec_leaf = certgen(true, "localhost", &ec_mid, false, -day, 30 * day);
  client_leaf = certgen(true, "client", &rsa_ca, false, -day, 30 * day);
  ec_chain = certgen_concat(ec_leaf.cert_pem, ec_mid.cert_pem);
  snprintf(tmpdir, sizeof(tmpdir), "/tmp/cm_tls_XXXXXX");
  if (mkdtemp(tmpdir) == NULL) return -1;
  write_file("ca.pem", rsa_ca.cert_pem);
  write_file("cert.pem", rsa_leaf.cert_pem);
  write_file("key.pem", rsa_leaf.key_pem);
  signal(SIGPIPE, SIG_IGN);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  struct test_cert *all[] = {&rsa_ca, &rsa_leaf, &other_ca, &expired_leaf,
                             &ec_root, &ec_mid, &ec_leaf, &client_leaf};
  for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) certgen_free(all[i]);
  free(ec_chain);
  char cmd[128];
  snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
  return system(cmd) == 0 ? 0 : -1;
}

/* ---- one side of a connection */

struct side {
  struct cm_tls_opts opts; /* server: tls_init on ACCEPT; client: on OPEN */
  bool use_opts;
  int init_rc;
  bool echo;               /* send back what is read */
  const char *greeting;    /* client: sent on TLS_HS */
  size_t expect;           /* client: close after this many bytes */
  int hs, errors, closed, accepted, tls_on_open;
  char error[300];
  struct cm_buf got;
};

static void side_fn(struct cm_conn *c, int ev, void *ev_data) {
  struct side *s = c->fn_data;
  if (s == NULL || c->is_listening) return;
  switch (ev) {
    case CM_EV_OPEN:
      s->tls_on_open = c->is_tls;
      if (c->is_client && s->use_opts) s->init_rc = cm_tls_init(c, &s->opts);
      break;
    case CM_EV_ACCEPT:
      s->accepted++;
      if (s->use_opts) s->init_rc = cm_tls_init(c, &s->opts);
      break;
    case CM_EV_TLS_HS:
      assert_true(c->is_tls);
      assert_false(c->is_tls_hs);
      s->hs++;
      if (s->greeting != NULL) cm_send(c, s->greeting, strlen(s->greeting));
      break;
    case CM_EV_READ:
      if (s->echo) cm_send(c, cm_buf_data(&c->recv), c->recv.len);
      cm_buf_append(&s->got, cm_buf_data(&c->recv), c->recv.len);
      cm_recv_consume(c, c->recv.len);
      if (s->expect > 0 && s->got.len >= s->expect) cm_close(c);
      break;
    case CM_EV_ERROR:
      s->errors++;
      if (s->errors == 1) snprintf(s->error, sizeof(s->error), "%s", (const char *)ev_data);
      break;
    case CM_EV_CLOSE:
      s->closed++;
      break;
  }
}

static void side_free(struct side *s) {
  cm_buf_free(&s->got);
}

static struct cm_str S(const char *s) {
  return cm_str_c(s);
}

static char *url_of(const struct cm_conn *l, const char *scheme, const char *host, char *buf,
                    size_t len) {
  snprintf(buf, len, "%s://%s:%u", scheme, host, l->loc.port);
  return buf;
}

/* Polls until both sides closed (or a bound on polls). */
static void run_until_closed(struct cm_mgr *mgr, struct side *a, struct side *b) {
  for (int i = 0; i < 1000 && (a->closed == 0 || (b != NULL && b->closed == 0)); i++)
    cm_mgr_poll(mgr, 10);
}

/* A server with sopts and a client with copts on one manager; the client
 * sends a greeting on TLS_HS and waits for its echo. */
static void run_pair(struct side *srv, struct side *cli, const char *url_host) {
  struct cm_mgr mgr;
  char url[128];
  assert_int_equal(cm_mgr_init(&mgr), 0);
  srv->echo = true;
  struct cm_conn *l = cm_listen(&mgr, "tcp://127.0.0.1:0", side_fn, srv);
  assert_non_null(l);
  if (cli->greeting == NULL) cli->greeting = "hello over TLS";
  cli->expect = strlen(cli->greeting);
  assert_non_null(cm_connect(&mgr, url_of(l, "tcp", url_host, url, sizeof(url)), side_fn, cli));
  run_until_closed(&mgr, cli, srv->accepted > 0 ? srv : NULL);
  for (int i = 0; i < 20; i++) cm_mgr_poll(&mgr, 5); /* let the server see the end */
  cm_mgr_free(&mgr);
}

static void assert_contains(const char *s, const char *part) {
  if (strstr(s, part) == NULL) fail_msg("\"%s\" does not contain \"%s\"", s, part);
}

/* ---- tests */

static void echo_rsa_on_accept(void **state) {
  (void)state;
  struct side srv = {.use_opts = true,
                     .opts = {.cert = S(rsa_leaf.cert_pem), .key = S(rsa_leaf.key_pem)}};
  struct side cli = {.use_opts = true, .opts = {.ca = S(rsa_ca.cert_pem), .name = S("localhost")}};
  run_pair(&srv, &cli, "127.0.0.1");
  assert_int_equal(srv.init_rc, 0);
  assert_int_equal(cli.init_rc, 0);
  assert_int_equal(cli.errors, 0);
  assert_int_equal(srv.errors, 0);
  assert_int_equal(cli.hs, 1);
  assert_int_equal(srv.hs, 1);
  assert_int_equal(cli.got.len, strlen("hello over TLS"));
  assert_memory_equal(cli.got.ptr, "hello over TLS", cli.got.len);
  side_free(&srv);
  side_free(&cli);
}

/* Over IPv6, the peer's address verified against the certificate's IP SAN. */
static void echo_ipv6_verified_by_ip(void **state) {
  (void)state;
  struct cm_mgr mgr;
  char url[128], err[300];
  assert_int_equal(cm_mgr_init(&mgr), 0);
  struct side srv = {.echo = true};
  struct side cli = {.greeting = "six", .expect = 3};
  struct cm_conn *l = cm_listen(&mgr, "tcp://[::1]:0", side_fn, &srv);
  if (l == NULL) skip(); /* no IPv6 loopback here */
  struct cm_tls_opts so = {.cert = S(rsa_leaf.cert_pem), .key = S(rsa_leaf.key_pem)};
  assert_int_equal(cm_tls_listen_opts(l, &so, err, sizeof(err)), 0);
  struct cm_conn *c = cm_connect(&mgr, url_of(l, "tcp", "[::1]", url, sizeof(url)), side_fn, &cli);
  struct cm_tls_opts co = {.ca = S(rsa_ca.cert_pem)};
  assert_int_equal(cm_tls_init(c, &co), 0);
  for (int i = 0; i < 500 && !cli.closed; i++) cm_mgr_poll(&mgr, 10);
  assert_int_equal(cli.errors, 0);
  assert_int_equal(cli.got.len, 3);
  cm_mgr_free(&mgr);
  side_free(&srv);
  side_free(&cli);
}

/* Key and certificate in one PEM text, key not given separately. */
static void combined_pem(void **state) {
  (void)state;
  char *both = certgen_concat(rsa_leaf.key_pem, rsa_leaf.cert_pem);
  struct side srv = {.use_opts = true, .opts = {.cert = S(both)}};
  struct side cli = {.use_opts = true, .opts = {.ca = S(rsa_ca.cert_pem), .name = S("localhost")}};
  run_pair(&srv, &cli, "127.0.0.1");
  assert_int_equal(srv.errors, 0);
  assert_int_equal(cli.errors, 0);
  assert_int_equal(cli.got.len, strlen("hello over TLS"));
  side_free(&srv);
  side_free(&cli);
  free(both);
}

/* ECDSA leaf + intermediate as the chain, client trusting only the root,
 * options on the listener (no handler involved), verification by IP. */
static void echo_ecdsa_chain_listener_opts(void **state) {
  (void)state;
  struct cm_mgr mgr;
  char url[128], err[300] = "";
  assert_int_equal(cm_mgr_init(&mgr), 0);
  struct side srv = {.echo = true};
  struct side cli = {.greeting = "chain of trust", .expect = 14};
  struct cm_conn *l = cm_listen(&mgr, "tcp://127.0.0.1:0", side_fn, &srv);
  assert_non_null(l);
  struct cm_tls_opts so = {.cert = S(ec_chain), .key = S(ec_leaf.key_pem)};
  assert_int_equal(cm_tls_listen_opts(l, &so, err, sizeof(err)), 0);
  assert_true(l->is_tls);
  struct cm_conn *c = cm_connect(&mgr, url_of(l, "tcp", "127.0.0.1", url, sizeof(url)), side_fn, &cli);
  assert_non_null(c);
  assert_false(c->is_tls);
  struct cm_tls_opts co = {.ca = S(ec_root.cert_pem)}; /* no name: the peer's IP is checked */
  assert_int_equal(cm_tls_init(c, &co), 0);
  assert_true(c->is_tls);
  run_until_closed(&mgr, &cli, NULL);
  assert_int_equal(cli.errors, 0);
  assert_int_equal(srv.errors, 0);
  assert_int_equal(srv.tls_on_open, 1);
  assert_int_equal(cli.hs, 1);
  assert_int_equal(srv.hs, 1);
  assert_int_equal(cli.got.len, 14);
  assert_memory_equal(cli.got.ptr, "chain of trust", 14);
  cm_mgr_free(&mgr);
  side_free(&srv);
  side_free(&cli);
}

/* The same options on many connections share one cached context. */
static void many_connections_reuse_context(void **state) {
  (void)state;
  struct cm_mgr mgr;
  char url[128];
  assert_int_equal(cm_mgr_init(&mgr), 0);
  struct side srv = {.echo = true, .use_opts = true,
                     .opts = {.cert = S(rsa_leaf.cert_pem), .key = S(rsa_leaf.key_pem)}};
  struct cm_conn *l = cm_listen(&mgr, "tcp://127.0.0.1:0", side_fn, &srv);
  assert_non_null(l);
  enum { N = 20 };
  struct side cli[N];
  memset(cli, 0, sizeof(cli));
  for (int i = 0; i < N; i++) {
    cli[i] = (struct side){.use_opts = true, .greeting = "x", .expect = 1,
                           .opts = {.ca = S(rsa_ca.cert_pem), .name = S("localhost")}};
    assert_non_null(cm_connect(&mgr, url_of(l, "tcp", "127.0.0.1", url, sizeof(url)), side_fn, &cli[i]));
  }
  for (int k = 0; k < 1000; k++) {
    int done = 0;
    for (int i = 0; i < N; i++) done += cli[i].closed;
    if (done == N) break;
    cm_mgr_poll(&mgr, 10);
  }
  for (int i = 0; i < N; i++) {
    assert_int_equal(cli[i].errors, 0);
    assert_int_equal(cli[i].hs, 1);
    assert_int_equal(cli[i].got.len, 1);
    side_free(&cli[i]);
  }
  assert_int_equal(srv.hs, N);
  cm_mgr_free(&mgr);
  side_free(&srv);
}

static void wrong_ca_is_an_error_on_both_sides(void **state) {
  (void)state;
  struct side srv = {.use_opts = true,
                     .opts = {.cert = S(rsa_leaf.cert_pem), .key = S(rsa_leaf.key_pem)}};
  struct side cli = {.use_opts = true, .opts = {.ca = S(other_ca.cert_pem), .name = S("localhost")}};
  run_pair(&srv, &cli, "127.0.0.1");
  assert_int_equal(cli.errors, 1);
  assert_int_equal(cli.hs, 0);
  assert_contains(cli.error, "TLS handshake failed: certificate verify failed");
  assert_contains(cli.error, "unable to get local issuer certificate");
  assert_int_equal(srv.errors, 1); /* the client's alert reached the server */
  assert_contains(srv.error, "unknown ca");
  assert_int_equal(cli.got.len, 0);
  side_free(&srv);
  side_free(&cli);
}

static void wrong_name_is_an_error(void **state) {
  (void)state;
  struct side srv = {.use_opts = true,
                     .opts = {.cert = S(rsa_leaf.cert_pem), .key = S(rsa_leaf.key_pem)}};
  struct side cli = {.use_opts = true, .opts = {.ca = S(rsa_ca.cert_pem), .name = S("example.com")}};
  run_pair(&srv, &cli, "127.0.0.1");
  assert_int_equal(cli.errors, 1);
  assert_contains(cli.error, "hostname mismatch");
  side_free(&srv);
  side_free(&cli);
  /* An IP the certificate does not list. */
  struct side srv2 = {.use_opts = true,
                      .opts = {.cert = S(rsa_leaf.cert_pem), .key = S(rsa_leaf.key_pem)}};
  struct side cli2 = {.use_opts = true, .opts = {.ca = S(rsa_ca.cert_pem), .name = S("10.1.2.3")}};
  run_pair(&srv2, &cli2, "127.0.0.1");
  assert_int_equal(cli2.errors, 1);
  assert_contains(cli2.error, "IP address mismatch");
  side_free(&srv2);
  side_free(&cli2);
}

static void expired_certificate_is_an_error(void **state) {
  (void)state;
  struct side srv = {.use_opts = true,
                     .opts = {.cert = S(expired_leaf.cert_pem), .key = S(expired_leaf.key_pem)}};
  struct side cli = {.use_opts = true, .opts = {.ca = S(rsa_ca.cert_pem), .name = S("localhost")}};
  run_pair(&srv, &cli, "127.0.0.1");
  assert_int_equal(cli.errors, 1);
  assert_contains(cli.error, "certificate has expired");
  side_free(&srv);
  side_free(&cli);
}

static void garbage_pem_is_an_error(void **state) {
  (void)state;
  const char *garbage = "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n";
  struct side srv = {.use_opts = true, .opts = {.cert = S(garbage), .key = S(rsa_leaf.key_pem)}};
  struct side cli = {.use_opts = true, .opts = {.ca = S(rsa_ca.cert_pem), .name = S("localhost")}};
  run_pair(&srv, &cli, "127.0.0.1");
  assert_int_equal(srv.init_rc, CM_EINVAL);
  assert_int_equal(srv.errors, 1);
  assert_contains(srv.error, "TLS: bad certificate PEM");
  assert_int_equal(cli.errors, 1); /* the server hung up during the handshake */
  assert_contains(cli.error, "TLS handshake failed");
  side_free(&srv);
  side_free(&cli);

  /* Key of another certificate; no certificate at all; bad CA. */
  struct {
    struct cm_tls_opts o;
    bool server;
    const char *want;
  } cases[] = {
      {{.cert = S(rsa_leaf.cert_pem), .key = S(ec_leaf.key_pem)}, true, "does not match"},
      {{.cert = S(rsa_leaf.cert_pem), .key = S("junk")}, true, "bad private key PEM"},
      {{.key = S(rsa_leaf.key_pem)}, true, "needs a certificate"},
      {{.ca = S("garbage")}, false, "bad CA PEM"},
      {{.cert = S(""), .ca = S(garbage)}, false, "bad CA PEM"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    struct cm_mgr mgr;
    char err[300] = "";
    assert_int_equal(cm_mgr_init(&mgr), 0);
    struct cm_conn *l = cm_listen(&mgr, "tcp://127.0.0.1:0", NULL, NULL);
    if (cases[i].server) {
      assert_int_equal(cm_tls_listen_opts(l, &cases[i].o, err, sizeof(err)), CM_EINVAL);
      assert_true(l->is_tls); /* refusing TLS: children fail, nothing in the clear */
      assert_contains(err, cases[i].want);
      char why[300] = "";
      assert_int_equal(cm_tls_check_opts(&mgr, true, &cases[i].o, why, sizeof(why)), CM_EINVAL);
      assert_contains(why, cases[i].want);
    } else {
      struct side one = {0};
      char url[128];
      struct cm_conn *c = cm_connect(&mgr, url_of(l, "tcp", "127.0.0.1", url, sizeof(url)), side_fn, &one);
      assert_int_equal(cm_tls_init(c, &cases[i].o), CM_EINVAL);
      assert_int_equal(one.errors, 0); /* never from inside the call */
      cm_mgr_poll(&mgr, 0);             /* the next flush delivers it */
      assert_int_equal(one.errors, 1);
      assert_contains(one.error, cases[i].want);
      assert_int_equal(one.closed, 1);
      cm_mgr_free(&mgr);
      side_free(&one);
      continue;
    }
    cm_mgr_free(&mgr);
  }
}

/* Mutual TLS: a server with ca= requires a client certificate. */
static void client_certificates(void **state) {
  (void)state;
  struct side srv = {.use_opts = true,
                     .opts = {.cert = S(rsa_leaf.cert_pem), .key = S(rsa_leaf.key_pem),
                              .ca = S(rsa_ca.cert_pem)}};
  struct side cli = {.use_opts = true, .opts = {.ca = S(rsa_ca.cert_pem), .name = S("localhost")}};
  run_pair(&srv, &cli, "127.0.0.1");
  assert_int_equal(srv.errors, 1);
  assert_contains(srv.error, "peer did not return a certificate");
  assert_int_equal(cli.got.len, 0);
  side_free(&srv);
  side_free(&cli);

  struct side srv2 = srv, cli2 = cli;
  memset(&srv2.got, 0, sizeof(srv2.got));
  srv2.errors = srv2.hs = srv2.closed = srv2.accepted = 0;
  memset(&cli2, 0, sizeof(cli2));
  cli2.use_opts = true;
  cli2.opts = (struct cm_tls_opts){.ca = S(rsa_ca.cert_pem), .name = S("localhost"),
                                   .cert = S(client_leaf.cert_pem), .key = S(client_leaf.key_pem)};
  run_pair(&srv2, &cli2, "127.0.0.1");
  assert_int_equal(srv2.errors, 0);
  assert_int_equal(cli2.errors, 0);
  assert_int_equal(cli2.got.len, strlen("hello over TLS"));
  side_free(&srv2);
  side_free(&cli2);
}

/* A peer that never speaks TLS runs into the handshake deadline. */
static void handshake_timeout(void **state) {
  (void)state;
  struct cm_mgr mgr;
  char url[128];
  assert_int_equal(cm_mgr_init(&mgr), 0);
  mgr.tls_hs_timeout_ms = 150;
  /* Server side: a plain client that connects and stays silent. */
  struct side srv = {.use_opts = true,
                     .opts = {.cert = S(rsa_leaf.cert_pem), .key = S(rsa_leaf.key_pem)}};
  struct cm_conn *l = cm_listen(&mgr, "tcp://127.0.0.1:0", side_fn, &srv);
  struct side quiet = {0};
  assert_non_null(cm_connect(&mgr, url_of(l, "tcp", "127.0.0.1", url, sizeof(url)), side_fn, &quiet));
  /* Client side: a plain server that never answers the ClientHello; the
   * timeout in the options wins over the manager's. */
  struct side plain = {0};
  struct cm_conn *pl = cm_listen(&mgr, "tcp://127.0.0.1:0", side_fn, &plain);
  struct side cli = {.use_opts = true,
                     .opts = {.ca = S(rsa_ca.cert_pem), .name = S("localhost"), .hs_timeout_ms = 250}};
  assert_non_null(cm_connect(&mgr, url_of(pl, "tcp", "127.0.0.1", url, sizeof(url)), side_fn, &cli));
  for (int i = 0; i < 300 && (srv.closed == 0 || cli.closed == 0); i++) cm_mgr_poll(&mgr, 10);
  assert_int_equal(srv.errors, 1);
  assert_string_equal(srv.error, "TLS handshake timed out after 150 ms");
  assert_int_equal(cli.errors, 1);
  assert_string_equal(cli.error, "TLS handshake timed out after 250 ms");
  cm_mgr_free(&mgr);
  side_free(&srv);
  side_free(&quiet);
  side_free(&plain);
  side_free(&cli);
}

/* ---- 64 MiB each way */

#define BIG (64u * 1024 * 1024)

static uint8_t pattern(size_t i) {
  return (uint8_t)((i * 2654435761u) >> 13);
}

struct big {
  size_t sent, received, mismatches;
  int hs, errors, closed;
  char error[300];
};

static void big_top_up(struct cm_conn *c, struct big *b) {
  uint8_t chunk[65536];
  while (b->sent < BIG && c->send.len < 1024 * 1024) {
    size_t n = BIG - b->sent < sizeof(chunk) ? BIG - b->sent : sizeof(chunk);
    for (size_t i = 0; i < n; i++) chunk[i] = pattern(b->sent + i);
    if (cm_send(c, chunk, n) != 0) break;
    b->sent += n;
  }
}

static void big_client_fn(struct cm_conn *c, int ev, void *ev_data) {
  struct big *b = c->fn_data;
  if (ev == CM_EV_TLS_HS) b->hs++;
  if ((ev == CM_EV_TLS_HS || ev == CM_EV_WRITE || ev == CM_EV_POLL) && b->hs > 0) big_top_up(c, b);
  if (ev == CM_EV_READ) {
    const uint8_t *p = cm_buf_data(&c->recv);
    for (size_t i = 0; i < c->recv.len; i++)
      if (p[i] != pattern(b->received + i)) b->mismatches++;
    b->received += c->recv.len;
    cm_recv_consume(c, c->recv.len);
    if (b->received >= BIG) cm_close(c);
  }
  if (ev == CM_EV_ERROR) {
    b->errors++;
    snprintf(b->error, sizeof(b->error), "%s", (const char *)ev_data);
  }
  if (ev == CM_EV_CLOSE) b->closed = 1;
}

/* Echoes, but stops reading while 4 MiB wait to go out (backpressure). */
static void big_server_fn(struct cm_conn *c, int ev, void *ev_data) {
  (void)ev_data;
  size_t *echoed = c->fn_data;
  if (c->is_listening) return;
  if (ev == CM_EV_ACCEPT) {
    struct cm_tls_opts o = {.cert = S(ec_chain), .key = S(ec_leaf.key_pem)};
    cm_tls_init(c, &o);
  }
  if (ev == CM_EV_READ || ev == CM_EV_WRITE) {
    size_t room = c->send.len < 4 * 1024 * 1024 ? 4 * 1024 * 1024 - c->send.len : 0;
    size_t n = c->recv.len < room ? c->recv.len : room;
    if (n > 0 && cm_send(c, cm_buf_data(&c->recv), n) == 0) {
      cm_recv_consume(c, n);
      *echoed += n;
    }
  }
}

static void transfer_64mib_both_ways(void **state) {
  (void)state;
  struct cm_mgr mgr;
  char url[128];
  assert_int_equal(cm_mgr_init(&mgr), 0);
  size_t echoed = 0;
  struct cm_conn *l = cm_listen(&mgr, "tcp://127.0.0.1:0", big_server_fn, &echoed);
  struct big b = {0};
  struct cm_conn *c = cm_connect(&mgr, url_of(l, "tcp", "127.0.0.1", url, sizeof(url)), big_client_fn, &b);
  struct cm_tls_opts o = {.ca = S(ec_root.cert_pem), .name = S("localhost")};
  assert_int_equal(cm_tls_init(c, &o), 0);
  for (int i = 0; i < 200000 && !b.closed; i++) cm_mgr_poll(&mgr, 10);
  assert_int_equal(b.errors, 0);
  assert_int_equal(b.sent, BIG);
  assert_int_equal(echoed, BIG);
  assert_int_equal(b.received, BIG);
  assert_int_equal(b.mismatches, 0);
  cm_mgr_free(&mgr);
}

/* A reader that keeps recv full: everything OpenSSL decrypted must still
 * arrive, and reading resumes once the handler consumes. */
struct slow {
  struct cm_buf got;
  int closed, errors;
};

static void slow_reader_fn(struct cm_conn *c, int ev, void *ev_data) {
  (void)ev_data;
  struct slow *s = c->fn_data;
  if (ev == CM_EV_POLL && c->recv.len > 0) {
    size_t n = c->recv.len < 3000 ? c->recv.len : 3000; /* a little per poll */
    cm_buf_append(&s->got, cm_buf_data(&c->recv), n);
    cm_recv_consume(c, n);
  }
  if (ev == CM_EV_ERROR) s->errors++;
  if (ev == CM_EV_CLOSE) {
    cm_buf_append(&s->got, cm_buf_data(&c->recv), c->recv.len);
    s->closed = 1;
  }
}

static void blast_fn(struct cm_conn *c, int ev, void *ev_data) {
  (void)ev_data;
  if (c->is_listening) return;
  if (ev == CM_EV_TLS_HS) {
    uint8_t buf[300000];
    for (size_t i = 0; i < sizeof(buf); i++) buf[i] = pattern(i);
    cm_send(c, buf, sizeof(buf));
    cm_drain(c); /* close_notify follows the data */
  }
}

static void slow_reader_loses_nothing(void **state) {
  (void)state;
  struct cm_mgr mgr;
  char url[128], err[300];
  assert_int_equal(cm_mgr_init(&mgr), 0);
  struct cm_conn *l = cm_listen(&mgr, "tcp://127.0.0.1:0", blast_fn, NULL);
  struct cm_tls_opts so = {.cert = S(rsa_leaf.cert_pem), .key = S(rsa_leaf.key_pem)};
  assert_int_equal(cm_tls_listen_opts(l, &so, err, sizeof(err)), 0);
  struct slow s = {0};
  struct cm_conn *c = cm_connect(&mgr, url_of(l, "tcp", "127.0.0.1", url, sizeof(url)), slow_reader_fn, &s);
  c->recv_limit = 4096;
  struct cm_tls_opts co = {.ca = S(rsa_ca.cert_pem)};
  assert_int_equal(cm_tls_init(c, &co), 0);
  for (int i = 0; i < 5000 && !s.closed; i++) cm_mgr_poll(&mgr, 1);
  assert_int_equal(s.errors, 0);
  assert_int_equal(s.got.len, 300000);
  for (size_t i = 0; i < s.got.len; i++)
    if (s.got.ptr[i] != pattern(i)) fail_msg("byte %zu differs", i);
  cm_buf_free(&s.got);
  cm_mgr_free(&mgr);
}

/* "tls://" (like https, wss, mqtts) turns TLS on by itself with the system
 * store: our private CA is unknown there until SSL_CERT_FILE names it. */
static void automatic_client_tls(void **state) {
  (void)state;
  char url[128], path[256];
  for (int trusted = 0; trusted < 2; trusted++) {
    struct cm_mgr mgr;
    assert_int_equal(cm_mgr_init(&mgr), 0);
    snprintf(path, sizeof(path), "%s/ca.pem", tmpdir);
    if (trusted) setenv("SSL_CERT_FILE", path, 1);
    struct side srv = {.echo = true, .use_opts = true,
                       .opts = {.cert = S(rsa_leaf.cert_pem), .key = S(rsa_leaf.key_pem)}};
    struct side cli = {.greeting = "auto", .expect = 4};
    struct cm_conn *l = cm_listen(&mgr, "tcp://127.0.0.1:0", side_fn, &srv);
    struct cm_conn *c = cm_connect(&mgr, url_of(l, "tls", "localhost", url, sizeof(url)), side_fn, &cli);
    assert_true(c->is_tls);
    for (int i = 0; i < 500 && !cli.closed; i++) cm_mgr_poll(&mgr, 10);
    if (trusted) {
      assert_int_equal(cli.errors, 0);
      assert_int_equal(cli.hs, 1);
      assert_int_equal(cli.got.len, 4);
    } else {
      assert_int_equal(cli.errors, 1);
      assert_contains(cli.error, "unable to get local issuer certificate");
    }
    unsetenv("SSL_CERT_FILE");
    cm_mgr_free(&mgr);
    side_free(&srv);
    side_free(&cli);
  }
  /* cm_tls_free before the connect completes: plain bytes after all. */
  struct cm_mgr mgr;
  assert_int_equal(cm_mgr_init(&mgr), 0);
  struct side srv = {.echo = true};
  struct side cli = {.greeting = NULL, .expect = 5};
  struct cm_conn *l = cm_listen(&mgr, "tcp://127.0.0.1:0", side_fn, &srv);
  struct cm_conn *c = cm_connect(&mgr, url_of(l, "https", "127.0.0.1", url, sizeof(url)), side_fn, &cli);
  assert_true(c->is_tls);
  cm_tls_free(c);
  assert_false(c->is_tls);
  cm_send(c, "plain", 5);
  for (int i = 0; i < 500 && !cli.closed; i++) cm_mgr_poll(&mgr, 10);
  assert_int_equal(cli.got.len, 5);
  cm_mgr_free(&mgr);
  side_free(&srv);
  side_free(&cli);
}

/* cm_tls_init after the handshake began is refused without harm. */
static void init_twice(void **state) {
  (void)state;
  struct cm_mgr mgr;
  char url[128];
  assert_int_equal(cm_mgr_init(&mgr), 0);
  struct side srv = {.echo = true, .use_opts = true,
                     .opts = {.cert = S(rsa_leaf.cert_pem), .key = S(rsa_leaf.key_pem)}};
  struct side cli = {.greeting = "again", .expect = 5};
  struct cm_conn *l = cm_listen(&mgr, "tcp://127.0.0.1:0", side_fn, &srv);
  struct cm_conn *c = cm_connect(&mgr, url_of(l, "tcp", "127.0.0.1", url, sizeof(url)), side_fn, &cli);
  struct cm_tls_opts co = {.ca = S(rsa_ca.cert_pem)};
  assert_int_equal(cm_tls_init(c, &co), 0);
  assert_int_equal(cm_tls_init(c, &co), 0); /* not started yet: replaced */
  for (int i = 0; i < 500 && cli.hs == 0; i++) cm_mgr_poll(&mgr, 10);
  assert_int_equal(cli.hs, 1);
  assert_int_equal(cm_tls_init(c, &co), CM_EALREADY);
  assert_int_equal(cm_tls_init(l, &co), CM_EINVAL);
  for (int i = 0; i < 500 && !cli.closed; i++) cm_mgr_poll(&mgr, 10);
  assert_int_equal(cli.errors, 0);
  assert_int_equal(cli.got.len, 5);
  cm_mgr_free(&mgr);
  side_free(&srv);
  side_free(&cli);
}

static void plain_http_fn(struct cm_conn *c, int ev, void *ev_data) {
  (void)ev_data;
  if (ev == CM_EV_CONNECT) cm_printf(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
}

/* Plaintext where TLS is expected, both ways round. */
static void plaintext_peers(void **state) {
  (void)state;
  struct cm_mgr mgr;
  char url[128];
  assert_int_equal(cm_mgr_init(&mgr), 0);
  struct side srv = {.use_opts = true,
                     .opts = {.cert = S(rsa_leaf.cert_pem), .key = S(rsa_leaf.key_pem)}};
  struct cm_conn *l = cm_listen(&mgr, "tcp://127.0.0.1:0", side_fn, &srv);
  assert_non_null(cm_connect(&mgr, url_of(l, "tcp", "127.0.0.1", url, sizeof(url)), plain_http_fn, NULL));
  /* A TLS client whose ClientHello comes back to it from a plain echo server. */
  struct side echo = {.echo = true};
  struct cm_conn *pl = cm_listen(&mgr, "tcp://127.0.0.1:0", side_fn, &echo);
  struct side cli = {.use_opts = true, .opts = {.ca = S(rsa_ca.cert_pem)}};
  assert_non_null(cm_connect(&mgr, url_of(pl, "tcp", "127.0.0.1", url, sizeof(url)), side_fn, &cli));
  for (int i = 0; i < 500 && (srv.errors == 0 || cli.errors == 0); i++) cm_mgr_poll(&mgr, 10);
  assert_int_equal(srv.errors, 1);
  assert_string_equal(srv.error, "TLS handshake failed: http request");
  assert_int_equal(cli.errors, 1);
  assert_contains(cli.error, "TLS handshake failed: ");
  cm_mgr_free(&mgr);
  side_free(&srv);
  side_free(&echo);
  side_free(&cli);
}

/* Bytes queued before the handshake finishes wait for it, on both sides. */
static void early_data_waits_for_handshake(void **state) {
  (void)state;
  struct cm_mgr mgr;
  char url[128], err[300];
  assert_int_equal(cm_mgr_init(&mgr), 0);
  struct side srv = {0};
  struct side cli = {.expect = 5};
  struct cm_conn *l = cm_listen(&mgr, "tcp://127.0.0.1:0", side_fn, &srv);
  struct cm_tls_opts so = {.cert = S(rsa_leaf.cert_pem), .key = S(rsa_leaf.key_pem)};
  assert_int_equal(cm_tls_listen_opts(l, &so, err, sizeof(err)), 0);
  struct cm_conn *c = cm_connect(&mgr, url_of(l, "tcp", "127.0.0.1", url, sizeof(url)), side_fn, &cli);
  struct cm_tls_opts co = {.ca = S(rsa_ca.cert_pem)};
  assert_int_equal(cm_tls_init(c, &co), 0);
  assert_true(cm_send(c, "early", 5) == 0); /* before the TCP connect, even */
  for (int i = 0; i < 500 && srv.got.len < 5; i++) cm_mgr_poll(&mgr, 10);
  assert_int_equal(srv.got.len, 5);
  assert_memory_equal(srv.got.ptr, "early", 5);
  /* The server's child queues its answer, then the client gets it. */
  for (struct cm_conn *x = mgr.conns; x != NULL; x = x->next)
    if (x->is_accepted) cm_send(x, "later", 5);
  for (int i = 0; i < 500 && !cli.closed; i++) cm_mgr_poll(&mgr, 10);
  assert_int_equal(cli.errors, 0);
  assert_int_equal(cli.got.len, 5);
  assert_memory_equal(cli.got.ptr, "later", 5);
  cm_mgr_free(&mgr);
  side_free(&srv);
  side_free(&cli);
}

/* Certificates from python3-trustme, as the Python tests use them. */
static void trustme_certificates(void **state) {
  (void)state;
  char cmd[256];
  snprintf(cmd, sizeof(cmd), "/usr/bin/python3 -m trustme -q -d %s -i localhost 127.0.0.1 ::1 2>/dev/null", tmpdir);
  if (system(cmd) != 0) {
    snprintf(cmd, sizeof(cmd), "/usr/bin/python3 -m trustme -d %s -i localhost 127.0.0.1 ::1 >/dev/null 2>&1", tmpdir);
    if (system(cmd) != 0) skip();
  }
  char *ca = read_file("client.pem"), *cert = read_file("server.pem"), *key = read_file("server.key");
  assert_non_null(ca);
  assert_non_null(cert);
  assert_non_null(key);
  struct side srv = {.use_opts = true, .opts = {.cert = S(cert), .key = S(key)}};
  struct side cli = {.use_opts = true, .opts = {.ca = S(ca), .name = S("localhost")}};
  run_pair(&srv, &cli, "127.0.0.1");
  assert_int_equal(cli.errors, 0);
  assert_int_equal(cli.got.len, strlen("hello over TLS"));
  side_free(&srv);
  side_free(&cli);
  free(ca);
  free(cert);
  free(key);
}

/* ---- openssl s_server / s_client as peers */

struct child {
  pid_t pid;
  int in, out; /* its stdin (we write), its stdout (we read) */
};

static struct child spawn(char *const argv[]) {
  int in[2], out[2];
  assert_int_equal(pipe(in), 0);
  assert_int_equal(pipe(out), 0);
  struct child ch = {.pid = fork()};
  assert_true(ch.pid >= 0);
  if (ch.pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 2);
    close(in[1]);
    close(out[0]);
    execvp(argv[0], argv);
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  ch.in = in[1];
  ch.out = out[0];
  fcntl(ch.out, F_SETFL, O_NONBLOCK);
  return ch;
}

static void reap(struct child *ch) {
  kill(ch->pid, SIGTERM);
  waitpid(ch->pid, NULL, 0);
  close(ch->in);
  close(ch->out);
}

static uint16_t free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof(sa);
  bind(fd, (struct sockaddr *)&sa, sizeof(sa));
  getsockname(fd, (struct sockaddr *)&sa, &len);
  close(fd);
  return ntohs(sa.sin_port);
}

static void our_client_against_s_server(void **state) {
  (void)state;
  char acc[64], cert[256], key[256], url[128];
  uint16_t port = free_port();
  snprintf(acc, sizeof(acc), "127.0.0.1:%u", port);
  snprintf(cert, sizeof(cert), "%s/cert.pem", tmpdir);
  snprintf(key, sizeof(key), "%s/key.pem", tmpdir);
  char *argv[] = {"openssl", "s_server", "-accept", acc, "-cert", cert, "-key", key, "-www", "-quiet", NULL};
  struct child ch = spawn(argv);
  struct side cli = {0};
  for (int attempt = 0; attempt < 100; attempt++) {
    struct cm_mgr mgr;
    assert_int_equal(cm_mgr_init(&mgr), 0);
    side_free(&cli);
    memset(&cli, 0, sizeof(cli));
    cli.use_opts = true;
    cli.opts = (struct cm_tls_opts){.ca = S(rsa_ca.cert_pem)}; /* name: from the URL */
    cli.greeting = "GET / HTTP/1.0\r\n\r\n";
    snprintf(url, sizeof(url), "https://localhost:%u", port);
    assert_non_null(cm_connect(&mgr, url, side_fn, &cli));
    for (int i = 0; i < 500 && !cli.closed; i++) cm_mgr_poll(&mgr, 10);
    cm_mgr_free(&mgr);
    if (cli.hs > 0 || strstr(cli.error, "refused") == NULL) break;
    usleep(50000); /* s_server is still starting */
  }
  reap(&ch);
  assert_int_equal(cli.errors, 0);
  assert_int_equal(cli.hs, 1);
  cm_buf_append(&cli.got, "", 1);
  assert_contains((const char *)cli.got.ptr, "HTTP/1.0 200 ok");
  assert_contains((const char *)cli.got.ptr, "TLSv1.3");
  side_free(&cli);
}

/* Runs s_client with extra arguments against an echo server of ours and
 * polls until its stdout shows `want` (or the server side failed). */
static void s_client_session(const char *const *extra, const char *want, struct side *srv,
                             char *out, size_t outlen) {
  struct cm_mgr mgr;
  char connect[64], ca[256];
  assert_int_equal(cm_mgr_init(&mgr), 0);
  struct cm_conn *l = cm_listen(&mgr, "tcp://127.0.0.1:0", side_fn, srv);
  struct cm_tls_opts so = {.cert = S(rsa_leaf.cert_pem), .key = S(rsa_leaf.key_pem)};
  char err[300];
  assert_int_equal(cm_tls_listen_opts(l, &so, err, sizeof(err)), 0);
  snprintf(connect, sizeof(connect), "127.0.0.1:%u", l->loc.port);
  snprintf(ca, sizeof(ca), "%s/ca.pem", tmpdir);
  char *argv[32] = {"openssl", "s_client", "-connect", connect, "-CAfile", ca, "-quiet", NULL};
  int n = 7;
  for (int i = 0; extra[i] != NULL; i++) argv[n++] = (char *)extra[i];
  argv[n] = NULL;
  struct child ch = spawn(argv);
  const char *line = "ping from s_client\n";
  if (write(ch.in, line, strlen(line)) < 0) fail_msg("write: %s", strerror(errno));
  size_t got = 0;
  out[0] = '\0';
  for (int i = 0; i < 1000 && strstr(out, want) == NULL && srv->errors == 0; i++) {
    cm_mgr_poll(&mgr, 10);
    ssize_t r = read(ch.out, out + got, outlen - 1 - got);
    if (r > 0) got += (size_t)r;
    out[got] = '\0';
  }
  for (int i = 0; i < 20; i++) cm_mgr_poll(&mgr, 5);
  reap(&ch);
  cm_mgr_free(&mgr);
}

static void s_client_against_our_server(void **state) {
  (void)state;
  char out[4096];
  struct side srv = {.echo = true};
  const char *extra[] = {"-servername", "localhost", "-verify_return_error", "-verify_hostname",
                         "localhost", NULL};
  s_client_session(extra, "ping from s_client", &srv, out, sizeof(out));
  assert_int_equal(srv.errors, 0);
  assert_int_equal(srv.hs, 1);
  assert_contains(out, "ping from s_client");
  side_free(&srv);

  /* TLS 1.2 with an ECDHE AEAD suite works too. */
  struct side srv12 = {.echo = true};
  const char *tls12[] = {"-tls1_2", "-servername", "localhost", NULL};
  s_client_session(tls12, "ping from s_client", &srv12, out, sizeof(out));
  assert_int_equal(srv12.errors, 0);
  assert_int_equal(srv12.hs, 1);
  side_free(&srv12);
}

/* Old protocol versions and weak suites are refused with OpenSSL's reason. */
static void protocol_mismatch(void **state) {
  (void)state;
  char out[4096];
  struct side srv = {.echo = true};
  const char *tls11[] = {"-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0", NULL};
  s_client_session(tls11, "never shown", &srv, out, sizeof(out));
  assert_int_equal(srv.errors, 1);
  assert_int_equal(srv.hs, 0);
  assert_contains(srv.error, "TLS handshake failed: unsupported protocol");
  side_free(&srv);

  struct side weak = {.echo = true};
  const char *cbc[] = {"-tls1_2", "-cipher", "AES128-SHA", NULL};
  s_client_session(cbc, "never shown", &weak, out, sizeof(out));
  assert_int_equal(weak.errors, 1);
  assert_contains(weak.error, "no shared cipher");
  side_free(&weak);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(echo_rsa_on_accept),
      cmocka_unit_test(combined_pem),
      cmocka_unit_test(echo_ipv6_verified_by_ip),
      cmocka_unit_test(echo_ecdsa_chain_listener_opts),
      cmocka_unit_test(many_connections_reuse_context),
      cmocka_unit_test(wrong_ca_is_an_error_on_both_sides),
      cmocka_unit_test(wrong_name_is_an_error),
      cmocka_unit_test(expired_certificate_is_an_error),
      cmocka_unit_test(garbage_pem_is_an_error),
      cmocka_unit_test(client_certificates),
      cmocka_unit_test(handshake_timeout),
      cmocka_unit_test(transfer_64mib_both_ways),
      cmocka_unit_test(slow_reader_loses_nothing),
      cmocka_unit_test(automatic_client_tls),
      cmocka_unit_test(init_twice),
      cmocka_unit_test(early_data_waits_for_handshake),
      cmocka_unit_test(plaintext_peers),
      cmocka_unit_test(trustme_certificates),
      cmocka_unit_test(our_client_against_s_server),
      cmocka_unit_test(s_client_against_our_server),
      cmocka_unit_test(protocol_mismatch),
  };
  return cmocka_run_group_tests_name("tls", tests, setup, teardown);
}
