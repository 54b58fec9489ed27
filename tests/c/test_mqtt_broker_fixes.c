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

/* ------------------------------------------------------------ store */
/* A store that counts what it is told and fails on demand (a full disk). */
static struct {
  int held, commits, held_at_commit[16];
  bool fail_held, fail_commit, fail_incoming;
} fs;

static bool fs_held(void *arg, struct cm_str cid, uint16_t id, int state,
                    const struct cm_mqtt_broker_msg *m) {
  (void)arg, (void)cid, (void)id, (void)state, (void)m;
  if (fs.fail_held) return false;
  fs.held++;
  return true;
}
static bool fs_incoming(void *arg, struct cm_str cid, uint16_t id, bool on) {
  (void)arg, (void)cid, (void)id;
  return !(on && fs.fail_incoming);
}
static bool fs_commit(void *arg) {
  (void)arg;
  if (fs.commits < 16) fs.held_at_commit[fs.commits] = fs.held;
  fs.commits++;
  return !fs.fail_commit;
}

static void fs_start(struct bk *k) {
  memset(&fs, 0, sizeof(fs));
  struct cm_mqtt_broker_opts o = {.allow_anonymous = true, .no_sys = true};
  o.store = (struct cm_mqtt_broker_store){.msg_held = fs_held, .incoming = fs_incoming,
                                          .commit = fs_commit};
  bk_start(k, &o);
  /* Three persistent subscribers, offline: a QoS 1 message for them is
   * three msg_held records. */
  for (int i = 0; i < 3; i++) {
    char id[16];
    snprintf(id, sizeof(id), "sub%d", i);
    struct cli c;
    cli_connect(k, &c, id, 4, false);
    cli_sub(k, &c, "d/#", 2, 0);
    cli_drop(k, &c);
  }
}

/* v5: a record that did not make it gets PUBACK/PUBREC 0x80. */
static void store_failure_refuses_v5(void **state) {
  (void)state;
  struct bk k;
  fs_start(&k);
  struct cli p;
  /* A persistent session: its QoS 2 packet ids are records too. */
  struct cm_mqtt_prop exp = {.id = CM_MQTT_PROP_SESSION_EXPIRY_INTERVAL, .iv = 60};
  struct cm_mqtt_opts mo = {.client_id = cm_str_c("pub5"), .version = 5, .clean = true,
                            .props = &exp, .num_props = 1};
  cli_connect_opts(&k, &p, &mo);
  assert_true(p.open);
  fs.fail_held = true;
  cli_pub(&p, "d/1", "lost", 1, false);
  assert_true(poll_for(&k, &p.got_puback));
  assert_int_equal(p.puback_reason, CM_MQTT_RC_UNSPECIFIED);
  /* A failed commit (fdatasync) too. */
  fs.fail_held = false;
  fs.fail_commit = true;
  p.got_puback = false;
  cli_pub(&p, "d/2", "unsynced", 1, false);
  assert_true(poll_for(&k, &p.got_puback));
  assert_int_equal(p.puback_reason, CM_MQTT_RC_UNSPECIFIED);
  /* QoS 2 whose packet id cannot be recorded: PUBREC 0x80, not routed. */
  fs.fail_commit = false;
  fs.fail_incoming = true;
  int held = fs.held;
  p.got_puback = false;
  cli_pub(&p, "d/3", "q2", 2, false);
  assert_true(poll_for(&k, &p.got_puback));
  assert_int_equal(p.puback_reason, CM_MQTT_RC_UNSPECIFIED);
  assert_int_equal(fs.held, held);
  /* Healthy again: acknowledged. */
  fs.fail_incoming = false;
  p.got_puback = false;
  cli_pub(&p, "d/4", "kept", 1, false);
  assert_true(poll_for(&k, &p.got_puback));
  assert_true(p.puback_reason < 0x80);
  cli_drop(&k, &p);
  bk_stop(&k);
}

/* 3.1.1: no acknowledgement at all (the client sends it again). */
static void store_failure_unacked_v4(void **state) {
  (void)state;
  struct bk k;
  fs_start(&k);
  int fd = raw_connect(k.port);
  /* clean_session 0: a persistent session, whose QoS 2 ids are records */
  static const uint8_t connect[] = {0x10, 15, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x00, 0, 0,
                                    0, 3, 'p', 'u', 'b'};
  raw_send(fd, connect, sizeof(connect));
  uint8_t buf[64];
  bool eof;
  assert_int_equal(raw_read(&k, fd, buf, sizeof(buf), &eof, 4), 4); /* CONNACK */
  assert_int_equal(buf[0], 0x20);
  assert_int_equal(buf[3], 0);
  /* PUBLISH QoS 1 id 1 to d/1 while the disk is full, then id 2 after. */
  uint8_t pub[] = {0x32, 8, 0, 3, 'd', '/', '1', 0, 1, 'x'};
  fs.fail_held = true;
  raw_send(fd, pub, sizeof(pub));
  poll_ms(&k, 50);
  fs.fail_held = false;
  pub[8] = 2;
  raw_send(fd, pub, sizeof(pub));
  /* QoS 2 id 3 with the disk full: no PUBREC; sent again (DUP) later, it
   * is a new message, not a duplicate to drop. */
  uint8_t pub2[] = {0x34, 8, 0, 3, 'd', '/', '2', 0, 3, 'y'};
  fs.fail_incoming = true;
  raw_send(fd, pub2, sizeof(pub2));
  poll_ms(&k, 50);
  fs.fail_incoming = false;
  int held = fs.held;
  pub2[0] |= 0x08;
  raw_send(fd, pub2, sizeof(pub2));
  size_t n = raw_read(&k, fd, buf, sizeof(buf), &eof, 8);
  assert_int_equal(n, 8); /* exactly PUBACK 2, then PUBREC 3 */
  static const uint8_t want[] = {0x40, 2, 0, 2, 0x50, 2, 0, 3};
  assert_memory_equal(buf, want, sizeof(want));
  assert_int_equal(fs.held, held + 3); /* the resent QoS 2 reached all three */
  close(fd);
  bk_stop(&k);
}

/* commit: once per acknowledged packet, after all its records. */
static void store_commit_once_per_ack(void **state) {
  (void)state;
  struct bk k;
  fs_start(&k);
  struct cli p;
  cli_connect(&k, &p, "pubc", 5, true);
  int commits = fs.commits, held = fs.held;
  cli_pub(&p, "d/x", "fan out", 1, false);
  assert_true(poll_for(&k, &p.got_puback));
  assert_true(p.puback_reason < 0x80);
  assert_int_equal(fs.held, held + 3);
  assert_int_equal(fs.commits, commits + 1);
  assert_int_equal(fs.held_at_commit[commits], held + 3);
  /* Nothing recorded (QoS 0): no commit. */
  cli_pub(&p, "d/x", "qos0", 0, false);
  p.got_puback = false;
  cli_pub(&p, "nobody", "q1", 1, false);
  assert_true(poll_for(&k, &p.got_puback));
  assert_int_equal(fs.commits, commits + 1);
  cli_drop(&k, &p);
  bk_stop(&k);
}

/* ------------------------------------------------- queued behind the window */
/* A raw v5 client "e1" subscribed to e/x at QoS 1 that acknowledges only
 * when told: Receive Maximum 1, Maximum Packet Size max_packet (0: none),
 * session expiry 60 s when persistent. */
static int raw_v5_sub(struct bk *k, uint32_t max_packet, bool clean, bool subscribe) {
  int fd = raw_connect(k->port);
  uint8_t c[64] = {0x10, 0, 0, 4, 'M', 'Q', 'T', 'T', 5, clean ? 0x02 : 0x00, 0, 0, 0};
  size_t n = 13, props = 12;
  c[n++] = 0x21, c[n++] = 0, c[n++] = 1;                             /* receive maximum 1 */
  c[n++] = 0x11, c[n++] = 0, c[n++] = 0, c[n++] = 0, c[n++] = 60;   /* session expiry */
  if (max_packet != 0) {
    c[n++] = 0x27, c[n++] = (uint8_t)(max_packet >> 24), c[n++] = (uint8_t)(max_packet >> 16);
    c[n++] = (uint8_t)(max_packet >> 8), c[n++] = (uint8_t)max_packet;
  }
  c[props] = (uint8_t)(n - props - 1);
  c[n++] = 0, c[n++] = 2, c[n++] = 'e', c[n++] = '1';
  c[1] = (uint8_t)(n - 2);
  raw_send(fd, c, n);
  uint8_t buf[256];
  bool eof;
  size_t got = raw_read(k, fd, buf, 2, &eof, 2); /* exactly the CONNACK */
  assert_true(got == 2 && buf[0] == 0x20);
  size_t want = 2 + buf[1];
  while (got < want && !eof) got += raw_read(k, fd, buf + got, want - got, &eof, want - got);
  assert_int_equal(buf[3], 0);
  if (subscribe) {
    static const uint8_t sub[] = {0x82, 9, 0, 1, 0, 0, 3, 'e', '/', 'x', 0x01};
    raw_send(fd, sub, sizeof(sub));
    assert_int_equal(raw_read(k, fd, buf, 6, &eof, 6), 6); /* SUBACK */
    assert_int_equal(buf[0], 0x90);
  }
  return fd;
}

/* Reads one PUBLISH (v5, QoS 1); returns its payload's first byte and the
 * packet id and Message Expiry Interval (0: none) it carries. */
static char raw_publish(struct bk *k, int fd, uint16_t *id, uint32_t *expiry) {
  uint8_t buf[512];
  bool eof;
  size_t got = raw_read(k, fd, buf, 2, &eof, 2);
  assert_int_equal(got, 2);
  assert_int_equal(buf[0] & 0xF0, 0x30);
  size_t rem = buf[1], used = 2;
  if (buf[1] & 0x80) { /* two-byte length */
    assert_int_equal(raw_read(k, fd, buf + 2, 1, &eof, 1), 1);
    rem = (buf[1] & 0x7F) | (size_t)buf[2] << 7;
    used = 3;
  }
  got = 0;
  while (got < rem && !eof) got += raw_read(k, fd, buf + used + got, rem - got, &eof, rem - got);
  assert_int_equal(got, rem);
  const uint8_t *p = buf + used;
  size_t tl = (size_t)p[0] << 8 | p[1];
  p += 2 + tl;
  *id = (uint16_t)(p[0] << 8 | p[1]);
  p += 2;
  size_t pl = *p++, end = (size_t)(p - buf) + pl;
  *expiry = 0;
  for (size_t i = (size_t)(p - buf); i < end;) {
    if (buf[i] == 0x02) *expiry = (uint32_t)buf[i + 1] << 24 | (uint32_t)buf[i + 2] << 16 |
                                  (uint32_t)buf[i + 3] << 8 | buf[i + 4];
    i += buf[i] == 0x02 ? 5 : buf[i] == 0x0B ? 2 : 1; /* expiry or subscription id */
  }
  return (char)buf[end];
}

static void puback(int fd, uint16_t id) {
  uint8_t a[] = {0x40, 2, (uint8_t)(id >> 8), (uint8_t)id};
  raw_send(fd, a, sizeof(a));
}

static void inject(struct bk *k, const char *payload, uint32_t expiry_s) {
  struct cm_mqtt_broker_msg m = {.topic = cm_str_c("e/x"), .payload = cm_str_c(payload),
                                 .qos = 1, .expiry_s = expiry_s};
  assert_int_equal(cm_mqtt_broker_publish(k->b, &m, NULL), 1);
}

/* A message that expires while it waits behind the window is not sent;
 * one that waited carries what is left of its interval. */
static void queued_expiry(void **state) {
  (void)state;
  struct bk k;
  bk_start(&k, NULL);
  int fd = raw_v5_sub(&k, 0, true, true);
  uint16_t id;
  uint32_t exp;
  inject(&k, "A", 0);
  assert_int_equal(raw_publish(&k, fd, &id, &exp), 'A'); /* in flight, not acked */
  inject(&k, "B", 1);  /* expires while it waits */
  inject(&k, "C", 60);
  inject(&k, "D", 0);
  poll_ms(&k, 1300);
  puback(fd, id);
  assert_int_equal(raw_publish(&k, fd, &id, &exp), 'C');
  assert_true(exp >= 1 && exp < 60); /* 60 minus the wait (rounded up) */
  puback(fd, id);
  assert_int_equal(raw_publish(&k, fd, &id, &exp), 'D');
  assert_int_equal(exp, 0);
  puback(fd, id);
  assert_int_equal(bk_stats(&k).msgs_dropped, 1);
  poll_ms(&k, 50);
  assert_int_equal(bk_stats(&k).queued, 0);
  close(fd);
  bk_stop(&k);
}

/* Held for an offline session, a message larger than the Maximum Packet
 * Size the client announces when it returns is dropped, not sent. */
static void queued_max_packet(void **state) {
  (void)state;
  struct bk k;
  bk_start(&k, NULL);
  int fd = raw_v5_sub(&k, 0, true, true);
  close(fd);
  poll_ms(&k, 50);
  char big[201];
  memset(big, 'L', 200);
  big[200] = '\0';
  inject(&k, big, 0);
  inject(&k, "S", 0);
  fd = raw_v5_sub(&k, 100, false, false);
  uint16_t id;
  uint32_t exp;
  assert_int_equal(raw_publish(&k, fd, &id, &exp), 'S');
  puback(fd, id);
  poll_ms(&k, 50);
  assert_int_equal(bk_stats(&k).msgs_dropped, 1);
  assert_int_equal(bk_stats(&k).queued, 0);
  close(fd);
  bk_stop(&k);
}

/* ------------------------------------------------------------ keepalive */
/* Keepalive deadlines (checked by the broker's sweep, no timer per
 * client): an idle client is dropped past 1.5 periods, a live one
 * (pinging) is not, however long. */
static void keepalive_idle_and_live(void **state) {
  (void)state;
  struct bk k;
  bk_start(&k, NULL);
  int fd[2];
  for (int i = 0; i < 2; i++) {
    fd[i] = raw_connect(k.port);
    uint8_t c[sizeof(CONNECT_V5)];
    memcpy(c, CONNECT_V5, sizeof(c));
    c[11] = 1; /* keepalive 1 s */
    c[17] = (uint8_t)('a' + i); /* client ids "raa" (idle), "rab" (live) */
    raw_send(fd[i], c, sizeof(c));
  }
  uint8_t buf[64];
  size_t idle_len = 0, live_pongs = 0;
  bool idle_eof = false, live_eof = false;
  static const uint8_t ping[] = {0xC0, 0};
  /* 3 s: the idle client goes after 1.5 s; the live one pings every
   * 0.4 s and stays. */
  for (int round = 0; round < 10; round++) {
    raw_send(fd[1], ping, sizeof(ping));
    uint64_t end = cm_millis() + 300;
    while (cm_millis() < end) {
      cm_mgr_poll(&k.mgr, 5);
      ssize_t r = read(fd[0], buf + idle_len, sizeof(buf) - idle_len);
      if (r == 0) idle_eof = true;
      if (r > 0) idle_len += (size_t)r;
      uint8_t lb[64];
      r = read(fd[1], lb, sizeof(lb));
      if (r == 0) live_eof = true;
      for (ssize_t j = 0; j + 1 < r; j++)
        if (lb[j] == 0xD0 && lb[j + 1] == 0) live_pongs++;
    }
  }
  assert_true(idle_eof);
  size_t connack = 2 + buf[1];
  assert_true(idle_len >= connack + 3);
  assert_int_equal(buf[connack], 0xE0); /* DISCONNECT keep alive timeout */
  assert_int_equal(buf[connack + 2], CM_MQTT_RC_KEEP_ALIVE_TIMEOUT);
  assert_false(live_eof);
  assert_true(live_pongs >= 5);
  assert_int_equal(bk_stats(&k).clients_connected, 1);
  close(fd[0]);
  close(fd[1]);
  bk_stop(&k);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(cert_cn_never_cut),
      cmocka_unit_test(takeover_keeps_client_id),
      cmocka_unit_test(unknown_schemes_refused),
      cmocka_unit_test(store_failure_refuses_v5),
      cmocka_unit_test(store_failure_unacked_v4),
      cmocka_unit_test(store_commit_once_per_ack),
      cmocka_unit_test(queued_expiry),
      cmocka_unit_test(queued_max_packet),
      cmocka_unit_test(keepalive_idle_and_live),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
