/* The MQTT broker (cm_mqtt_broker) against real clients: mosquitto_pub and
 * mosquitto_sub (3.1, 3.1.1, 5.0), our own C client (5.0 details), and raw
 * TCP peers that break the protocol. */
#include "broker_harness.h"

/* ------------------------------------------------------------------ tests */

/* 3.1, 3.1.1 and 5.0 clients (mosquitto) on one listener, to each other. */
static void versions_interoperate(void **state) {
  (void)state;
  struct bk k;
  bk_start(&k, NULL);
  char port[16];
  snprintf(port, sizeof(port), "%u", k.port);
  struct proc s31, s5;
  const char *a31[] = {"mosquitto_sub", "-h", "127.0.0.1", "-p", port, "-V", "mqttv31", "-t", "x/+",
                       "-q", "1", "-v", "-C", "3", "-W", "10", NULL};
  const char *a5[] = {"mosquitto_sub", "-h", "127.0.0.1", "-p", port, "-V", "mqttv5", "-t", "x/#",
                      "-q", "2", "-v", "-C", "3", "-W", "10", NULL};
  proc_start(&s31, a31);
  proc_start(&s5, a5);
  wait_subs(&k, 2);
  const char *vers[] = {"mqttv31", "mqttv311", "mqttv5"};
  for (int i = 0; i < 3; i++) {
    char topic[16], msg[32];
    snprintf(topic, sizeof(topic), "x/%d", i);
    snprintf(msg, sizeof(msg), "from-%s", vers[i]);
    const char *ap[] = {"mosquitto_pub", "-h", "127.0.0.1", "-p", port, "-V", vers[i], "-t",
                        topic, "-m", msg, "-q", i == 0 ? "0" : i == 1 ? "1" : "2", NULL};
    int st;
    peer_run_polling(&k.mgr, ap, &st);
    assert_int_equal(st, 0);
  }
  assert_int_equal(proc_end(&k, &s31), 0);
  assert_int_equal(proc_end(&k, &s5), 0);
  for (int i = 0; i < 3; i++) {
    char line[64];
    snprintf(line, sizeof(line), "x/%d from-%s", i, vers[i]);
    assert_non_null(strstr(s31.out, line));
    assert_non_null(strstr(s5.out, line));
  }
  assert_true(bk_stats(&k).msgs_received >= 3);
  bk_stop(&k);
}

/* Retained: set, replace, clear; retain handling 0/1/2; retain as published. */
static void retained_messages(void **state) {
  (void)state;
  struct bk k;
  struct cm_mqtt_broker_opts bo = {.allow_anonymous = true, .no_sys = true};
  bk_start(&k, &bo);
  struct cli p, s;
  cli_connect(&k, &p, "pub", 5, true);
  cli_pub(&p, "r/a", "one", 1, true);
  cli_pub(&p, "r/a", "two", 1, true); /* replaces */
  cli_pub(&p, "r/b", "bee", 0, true);
  cli_pub(&p, "r/b", "", 0, true);    /* clears */
  cli_pub(&p, "r/c", "live", 0, false);
  poll_ms(&k, 200);
  assert_int_equal(bk_stats(&k).retained, 1); /* r/a */
  cli_connect(&k, &s, "sub", 5, true);
  cli_sub(&k, &s, "r/#", 1, 0);
  assert_true(cli_wait(&k, &s, 1));
  poll_ms(&k, 100);
  assert_int_equal(s.n, 1);
  assert_string_equal(s.m[0].topic, "r/a");
  assert_string_equal(s.m[0].payload, "two");
  assert_true(s.m[0].retain);
  /* Retain handling 1: again only for a new subscription; 2: never. */
  cli_sub(&k, &s, "r/#", 1 | 1 << 4, 0);
  cli_sub(&k, &s, "r/+", 1 | 2 << 4, 0);
  poll_ms(&k, 100);
  assert_int_equal(s.n, 1);
  cli_sub(&k, &s, "r/a", 1 | 1 << 4, 0); /* new: sent */
  assert_true(cli_wait(&k, &s, 2));
  /* Live retained publishes: RETAIN cleared unless retain as published. */
  struct cli s2;
  cli_connect(&k, &s2, "sub2", 5, true);
  cli_sub(&k, &s2, "q/1", 0 | 2 << 4, 0);
  cli_sub(&k, &s2, "q/2", 0 | CM_MQTT_SUB_RETAIN_AS_PUBLISHED | 2 << 4, 0);
  cli_pub(&p, "q/1", "x", 0, true);
  cli_pub(&p, "q/2", "y", 0, true);
  assert_true(cli_wait(&k, &s2, 2));
  assert_false(s2.m[0].retain);
  assert_true(s2.m[1].retain);
  cli_drop(&k, &p);
  cli_drop(&k, &s);
  cli_drop(&k, &s2);
  bk_stop(&k);
}

/* QoS 0/1/2 end to end at min(publish, subscription) QoS. */
static void qos_levels(void **state) {
  (void)state;
  struct bk k;
  bk_start(&k, NULL);
  struct cli p, s0, s2;
  cli_connect(&k, &p, "pub", 5, true);
  cli_connect(&k, &s0, "s0", 4, true);
  cli_connect(&k, &s2, "s2", 5, true);
  cli_sub(&k, &s0, "t", 0, 0);
  cli_sub(&k, &s2, "t", 2, 0);
  cli_pub(&p, "t", "q0", 0, false);
  cli_pub(&p, "t", "q1", 1, false);
  cli_pub(&p, "t", "q2", 2, false);
  assert_true(cli_wait(&k, &s0, 3));
  assert_true(cli_wait(&k, &s2, 3));
  for (int i = 0; i < 3; i++) {
    assert_int_equal(s0.m[i].qos, 0);
    assert_int_equal(s2.m[i].qos, i);
    char want[4];
    snprintf(want, sizeof(want), "q%d", i);
    assert_string_equal(s2.m[i].payload, want);
  }
  poll_ms(&k, 100);
  assert_int_equal(bk_stats(&k).queued, 0); /* every flow completed */
  cli_drop(&k, &p);
  cli_drop(&k, &s0);
  cli_drop(&k, &s2);
  bk_stop(&k);
}

/* Persistent sessions: offline QoS 1/2 queued, delivered on return with
 * session present; QoS 0 not queued; clean start discards. */
static void persistent_session(void **state) {
  (void)state;
  struct bk k;
  bk_start(&k, NULL);
  struct cli p, s;
  struct cm_mqtt_prop exp = {.id = CM_MQTT_PROP_SESSION_EXPIRY_INTERVAL, .iv = 60};
  struct cm_mqtt_opts o = {0};
  o.client_id = cm_str_c("keeper");
  o.version = 5;
  o.clean = true;
  o.props = &exp;
  o.num_props = 1;
  cli_connect_opts(&k, &s, &o);
  assert_true(s.open);
  cli_sub(&k, &s, "p/#", 2, 0);
  cli_drop(&k, &s);
  cli_connect(&k, &p, "pub", 4, true);
  cli_pub(&p, "p/1", "a", 1, false);
  cli_pub(&p, "p/2", "b", 2, false);
  cli_pub(&p, "p/3", "c", 0, false);
  poll_ms(&k, 200);
  assert_int_equal(bk_stats(&k).queued, 2);
  assert_int_equal(bk_stats(&k).clients_disconnected, 1);
  o.clean = false;
  cli_connect_opts(&k, &s, &o);
  assert_true(s.open);
  assert_true(s.session_present);
  assert_true(cli_wait(&k, &s, 2));
  poll_ms(&k, 100);
  assert_int_equal(s.n, 2);
  assert_string_equal(s.m[0].payload, "a");
  assert_string_equal(s.m[1].payload, "b");
  assert_int_equal(s.m[1].qos, 2);
  cli_drop(&k, &s);
  /* 3.1.1 clean session 0: kept without expiry. */
  cli_connect(&k, &s, "v3keep", 4, false);
  cli_sub(&k, &s, "v3/t", 1, 0);
  cli_drop(&k, &s);
  cli_pub(&p, "v3/t", "later", 1, false);
  poll_ms(&k, 100);
  cli_connect(&k, &s, "v3keep", 4, false);
  assert_true(s.session_present);
  assert_true(cli_wait(&k, &s, 1));
  assert_string_equal(s.m[0].payload, "later");
  cli_drop(&k, &s);
  cli_connect(&k, &s, "v3keep", 4, true); /* clean: gone */
  assert_false(s.session_present);
  cli_drop(&k, &s);
  cli_drop(&k, &p);
  bk_stop(&k);
}

/* The same client id again: the old connection gets DISCONNECT 0x8E. */
static void session_takeover(void **state) {
  (void)state;
  struct bk k;
  bk_start(&k, NULL);
  struct cli a, b2;
  cli_connect(&k, &a, "twin", 5, true);
  cli_connect(&k, &b2, "twin", 5, true);
  assert_true(poll_for(&k, &a.closed));
  assert_true(a.got_disc);
  assert_int_equal(a.disc_reason, CM_MQTT_RC_SESSION_TAKEN_OVER);
  assert_false(b2.closed);
  assert_int_equal(bk_stats(&k).clients_connected, 1);
  cli_drop(&k, &b2);
  bk_stop(&k);
}

/* Wills: sent when the connection drops; not after DISCONNECT; with a v5
 * will delay, not sent when the client comes back in time. */
static void wills(void **state) {
  (void)state;
  struct bk k;
  bk_start(&k, NULL);
  struct cli w, s;
  cli_connect(&k, &s, "watcher", 5, true);
  cli_sub(&k, &s, "will/#", 1, 0);
  struct cm_mqtt_opts o = {0};
  o.client_id = cm_str_c("dying");
  o.version = 4;
  o.clean = true;
  o.will_topic = cm_str_c("will/a");
  o.will_message = cm_str_c("gone");
  o.will_qos = 1;
  cli_connect_opts(&k, &w, &o);
  assert_true(w.open);
  cli_drop(&k, &w); /* no DISCONNECT */
  assert_true(cli_wait(&k, &s, 1));
  assert_string_equal(s.m[0].payload, "gone");
  cli_connect_opts(&k, &w, &o);
  cm_mqtt_disconnect(w.c); /* normal: no will */
  poll_for(&k, &w.closed);
  poll_ms(&k, 200);
  assert_int_equal(s.n, 1);
  /* v5 will delay 1 s with a session of 60 s: back in time, no will. */
  struct cm_mqtt_prop delay = {.id = CM_MQTT_PROP_WILL_DELAY_INTERVAL, .iv = 1};
  struct cm_mqtt_prop exp = {.id = CM_MQTT_PROP_SESSION_EXPIRY_INTERVAL, .iv = 60};
  o.version = 5;
  o.will_topic = cm_str_c("will/b");
  o.will_props = &delay;
  o.num_will_props = 1;
  o.props = &exp;
  o.num_props = 1;
  o.clean = false;
  cli_connect_opts(&k, &w, &o);
  cli_drop(&k, &w);
  cli_connect_opts(&k, &w, &o);
  poll_ms(&k, 1500);
  assert_int_equal(s.n, 1);
  /* Dropped and not back: the will comes after the delay. */
  cli_drop(&k, &w);
  poll_ms(&k, 200);
  assert_int_equal(s.n, 1);
  assert_true(cli_wait(&k, &s, 2));
  assert_string_equal(s.m[1].topic, "will/b");
  cli_drop(&k, &s);
  bk_stop(&k);
}

/* $SYS statistics; '#' and '+' at the first level do not match '$' topics. */
static void sys_topics(void **state) {
  (void)state;
  struct bk k;
  struct cm_mqtt_broker_opts o = {.allow_anonymous = true, .sys_interval_ms = 100};
  bk_start(&k, &o);
  struct cli s, all;
  cli_connect(&k, &s, "sys", 5, true);
  cli_connect(&k, &all, "all", 5, true);
  cli_sub(&k, &all, "#", 0, 0);
  cli_sub(&k, &all, "+/broker/uptime", 0, 0);
  cli_sub(&k, &s, "$SYS/broker/clients/connected", 0, 0);
  /* The retained value may predate the clients; the next update counts them. */
  assert_true(cli_wait(&k, &s, 2));
  assert_string_equal(s.m[1].payload, "2");
  poll_ms(&k, 300);
  for (int i = 0; i < all.n; i++) assert_true(all.m[i].topic[0] != '$');
  cli_drop(&k, &s);
  cli_drop(&k, &all);
  bk_stop(&k);
}

/* v5: shared subscriptions round-robin, no local, subscription ids, user
 * properties passed through, assigned client identifier. */
static void v5_features(void **state) {
  (void)state;
  struct bk k;
  bk_start(&k, NULL);
  struct cli a, b2, me, anon;
  cli_connect(&k, &a, "a", 5, true);
  cli_connect(&k, &b2, "b", 5, true);
  cli_connect(&k, &me, "me", 5, true);
  cli_sub(&k, &a, "$share/g/job/+", 1, 0);
  cli_sub(&k, &b2, "$share/g/job/+", 1, 0);
  for (int i = 0; i < 4; i++) cli_pub(&me, "job/x", "work", 1, false);
  assert_true(cli_wait(&k, &a, 2));
  assert_true(cli_wait(&k, &b2, 2));
  poll_ms(&k, 100);
  assert_int_equal(a.n + b2.n, 4);
  cli_sub(&k, &me, "mine", CM_MQTT_SUB_NO_LOCAL, 0);
  cli_sub(&k, &a, "ids/#", 0, 7);
  cli_pub(&me, "mine", "echo?", 0, false);
  struct cm_mqtt_prop up = {.id = CM_MQTT_PROP_USER_PROPERTY, .key = cm_str_c("k"),
                            .val = cm_str_c("v")};
  struct cm_mqtt_pub_opts po = {.topic = cm_str_c("ids/1"), .message = cm_str_c("m"), .props = &up,
                                .num_props = 1};
  assert_true(cm_mqtt_publish(me.c, &po) >= 0);
  assert_true(cli_wait(&k, &a, 3));
  assert_int_equal(a.m[2].sub_id, 7);
  assert_string_equal(a.m[2].user_prop, "k=v");
  poll_ms(&k, 100);
  assert_int_equal(me.n, 0);
  struct cm_mqtt_opts o = {.version = 5, .clean = true};
  cli_connect_opts(&k, &anon, &o);
  assert_true(anon.open);
  /* The client library generates an id when none is given; an empty one
   * goes out only from raw clients (below). */
  cli_drop(&k, &a);
  cli_drop(&k, &b2);
  cli_drop(&k, &me);
  cli_drop(&k, &anon);
  /* Raw CONNECT with an empty id: CONNACK carries the assigned one. */
  static const uint8_t empty_id[] = {0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 0, 0, 0, 0};
  int fd = raw_connect(k.port);
  raw_send(fd, empty_id, sizeof(empty_id));
  uint8_t buf[256];
  bool eof;
  size_t n = raw_read(&k, fd, buf, sizeof(buf), &eof, 5);
  assert_true(n >= 5);
  assert_int_equal(buf[0], 0x20);
  assert_int_equal(buf[3], 0); /* success */
  assert_non_null(memmem(buf, n, "cm-", 3));
  close(fd);
  bk_stop(&k);
}

/* Bad input is refused with the right reason and harms no one else. */
static void protocol_violations(void **state) {
  (void)state;
  struct bk k;
  bk_start(&k, NULL);
  struct cli good, watch;
  cli_connect(&k, &good, "good", 5, true);
  cli_connect(&k, &watch, "watch", 4, true);
  cli_sub(&k, &watch, "ok", 0, 0);
  uint8_t buf[256];
  bool eof;
  /* PUBLISH before CONNECT: closed. */
  int fd = raw_connect(k.port);
  static const uint8_t pub[] = {0x30, 5, 0, 1, 'a', 'h', 'i'};
  raw_send(fd, pub, sizeof(pub));
  raw_read(&k, fd, buf, sizeof(buf), &eof, 0);
  assert_true(eof);
  close(fd);
  /* A second CONNECT: v5 DISCONNECT 0x82. */
  fd = raw_connect(k.port);
  raw_send(fd, CONNECT_V5, sizeof(CONNECT_V5));
  size_t n = raw_read(&k, fd, buf, sizeof(buf), &eof, 3);
  assert_true(n >= 3 && buf[0] == 0x20);
  raw_send(fd, CONNECT_V5, sizeof(CONNECT_V5));
  n = raw_read(&k, fd, buf, sizeof(buf), &eof, 0);
  assert_true(eof);
  assert_true(n >= 3 && buf[0] == 0xE0 && buf[2] == CM_MQTT_RC_PROTOCOL_ERROR);
  close(fd);
  /* A wildcard in a PUBLISH topic: 0x90. */
  fd = raw_connect(k.port);
  raw_send(fd, CONNECT_V5, sizeof(CONNECT_V5));
  raw_read(&k, fd, buf, sizeof(buf), &eof, 3);
  static const uint8_t wild[] = {0x30, 6, 0, 3, 'a', '/', '#', 0};
  raw_send(fd, wild, sizeof(wild));
  n = raw_read(&k, fd, buf, sizeof(buf), &eof, 0);
  assert_true(n >= 3 && buf[0] == 0xE0 && buf[2] == CM_MQTT_RC_TOPIC_NAME_INVALID);
  close(fd);
  /* Invalid UTF-8 in a topic: 0x81. */
  fd = raw_connect(k.port);
  raw_send(fd, CONNECT_V5, sizeof(CONNECT_V5));
  raw_read(&k, fd, buf, sizeof(buf), &eof, 3);
  static const uint8_t bad[] = {0x30, 6, 0, 3, 'a', 0xC0, 0x80, 0};
  raw_send(fd, bad, sizeof(bad));
  n = raw_read(&k, fd, buf, sizeof(buf), &eof, 0);
  assert_true(n >= 3 && buf[0] == 0xE0 && buf[2] == CM_MQTT_RC_MALFORMED);
  close(fd);
  /* Unsupported level on 3.1.1 framing: CONNACK 0x01. */
  fd = raw_connect(k.port);
  static const uint8_t lvl9[] = {0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 9, 0x02, 0, 0, 0, 1, 'z'};
  raw_send(fd, lvl9, sizeof(lvl9));
  n = raw_read(&k, fd, buf, sizeof(buf), &eof, 0);
  assert_true(n >= 4 && buf[0] == 0x20 && buf[3] == 1);
  close(fd);
  /* The others never noticed. */
  cli_pub(&good, "ok", "still", 0, false);
  assert_true(cli_wait(&k, &watch, 1));
  assert_false(good.closed);
  assert_int_equal(bk_stats(&k).clients_connected, 2);
  cli_drop(&k, &good);
  cli_drop(&k, &watch);
  bk_stop(&k);
}

/* Keepalive: 1.5 periods of silence end the connection (v5 0x8D). */
static void keepalive_enforced(void **state) {
  (void)state;
  struct bk k;
  bk_start(&k, NULL);
  int fd = raw_connect(k.port);
  uint8_t c[sizeof(CONNECT_V5)];
  memcpy(c, CONNECT_V5, sizeof(c));
  c[11] = 1; /* keepalive 1 s */
  raw_send(fd, c, sizeof(c));
  uint8_t buf[256];
  bool eof;
  size_t n = raw_read(&k, fd, buf, sizeof(buf), &eof, 0);
  assert_true(eof);
  assert_true(n >= 4 + 3);
  size_t connack = 2 + buf[1];
  assert_int_equal(buf[connack], 0xE0);
  assert_int_equal(buf[connack + 2], CM_MQTT_RC_KEEP_ALIVE_TIMEOUT);
  close(fd);
  bk_stop(&k);
}

/* Authentication and ACL hooks. */
static int auth_fn(void *arg, const struct cm_mqtt_client_info *who, struct cm_str pw, bool has) {
  (void)arg;
  bool ok = who->username.len == 5 && memcmp(who->username.buf, "alice", 5) == 0 && has &&
            pw.len == 6 && memcmp(pw.buf, "secret", 6) == 0;
  return ok ? 0 : CM_MQTT_RC_BAD_USERNAME_OR_PASSWORD;
}
static bool acl_fn(void *arg, const struct cm_mqtt_client_info *who, struct cm_str topic, int access) {
  (void)arg;
  (void)who;
  bool secret = topic.len >= 6 && memcmp(topic.buf, "secret", 6) == 0;
  return !(secret && access != CM_MQTT_ACL_READ);
}

static void auth_and_acl(void **state) {
  (void)state;
  struct bk k;
  bk_start(&k, &(struct cm_mqtt_broker_opts){0}); /* anonymous off by default */
  struct cli c;
  struct cm_mqtt_opts o = {.client_id = cm_str_c("x"), .version = 5, .clean = true};
  cli_connect_opts(&k, &c, &o);
  assert_false(c.open);
  assert_int_equal(c.connack, CM_MQTT_RC_NOT_AUTHORIZED);
  o.version = 4;
  cli_connect_opts(&k, &c, &o);
  assert_int_equal(c.connack, CM_MQTT_CONNACK_V3_NOT_AUTHORIZED);
  bk_stop(&k);
  struct cm_mqtt_broker_opts bo = {.authenticate = auth_fn, .acl_check = acl_fn};
  bk_start(&k, &bo);
  o.version = 5;
  o.user = cm_str_c("alice");
  o.pass = cm_str_c("wrong");
  cli_connect_opts(&k, &c, &o);
  assert_int_equal(c.connack, CM_MQTT_RC_BAD_USERNAME_OR_PASSWORD);
  o.pass = cm_str_c("secret");
  cli_connect_opts(&k, &c, &o);
  assert_true(c.open);
  cli_sub(&k, &c, "secret/x", 0, 0);
  assert_int_equal(c.suback[0], CM_MQTT_RC_NOT_AUTHORIZED);
  cli_sub(&k, &c, "public", 0, 0);
  assert_int_equal(c.suback[0], 0);
  cli_pub(&c, "secret/x", "no", 1, false);
  assert_true(poll_for(&k, &c.got_puback));
  assert_int_equal(c.puback_reason, CM_MQTT_RC_NOT_AUTHORIZED);
  c.got_puback = false;
  cli_pub(&c, "public", "yes", 1, false);
  assert_true(poll_for(&k, &c.got_puback));
  assert_int_equal(c.puback_reason, 0);
  assert_true(cli_wait(&k, &c, 1));
  cli_drop(&k, &c);
  bk_stop(&k);
}

/* A subscriber that never reads: QoS 0 to it is dropped, the others get
 * everything, and the broker holds a bounded amount for it. */
static void slow_subscriber(void **state) {
  (void)state;
  struct bk k;
  struct cm_mqtt_broker_opts o = {.allow_anonymous = true, .send_hwm = 64 * 1024};
  bk_start(&k, &o);
  int fd = raw_connect(k.port);
  int small = 4096;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
  raw_send(fd, CONNECT_V5, sizeof(CONNECT_V5));
  uint8_t buf[256];
  bool eof;
  raw_read(&k, fd, buf, sizeof(buf), &eof, 3);
  static const uint8_t sub[] = {0x82, 7, 0, 1, 0, 0, 1, 'f', 0};
  raw_send(fd, sub, sizeof(sub));
  raw_read(&k, fd, buf, sizeof(buf), &eof, 5);
  struct cli p, fast;
  cli_connect(&k, &p, "p", 5, true);
  cli_connect(&k, &fast, "fast", 5, true);
  cli_sub(&k, &fast, "f", 0, 0);
  char payload[1024];
  memset(payload, 'z', sizeof(payload) - 1);
  payload[sizeof(payload) - 1] = '\0';
  size_t max_send = 0;
  for (int round = 0; round < 400 && bk_stats(&k).msgs_dropped == 0; round++) {
    for (int i = 0; i < 50; i++) cli_pub(&p, "f", payload, 0, false);
    cm_mgr_poll(&k.mgr, 5);
    for (struct cm_conn *c = k.mgr.conns; c != NULL; c = c->next)
      if (c->is_accepted && c->send.len > max_send) max_send = c->send.len;
  }
  for (int i = 0; i < 400 && fast.n < MAXMSG; i++) cm_mgr_poll(&k.mgr, 5);
  assert_true(fast.n == MAXMSG); /* its record is full: it got at least that many */
  assert_true(bk_stats(&k).msgs_dropped > 0);
  assert_true(max_send < 64 * 1024 + 4 * 1024 + 64 * 1024);
  close(fd);
  cli_drop(&k, &p);
  cli_drop(&k, &fast);
  bk_stop(&k);
}

/* Limits: max connections, max packet size (0x95). */
static void limits(void **state) {
  (void)state;
  struct bk k;
  struct cm_mqtt_broker_opts o = {.allow_anonymous = true, .max_connections = 1,
                                  .max_packet_size = 128};
  bk_start(&k, &o);
  struct cli a, b2;
  cli_connect(&k, &a, "one", 5, true);
  struct cm_mqtt_opts co = {.client_id = cm_str_c("two"), .version = 5, .clean = true};
  cli_connect_opts(&k, &b2, &co);
  assert_false(b2.open);
  assert_int_equal(b2.connack, CM_MQTT_RC_QUOTA_EXCEEDED);
  char big[200];
  memset(big, 'b', sizeof(big) - 1);
  big[sizeof(big) - 1] = '\0';
  /* Our client honours the announced maximum: a raw packet instead. */
  assert_int_equal(cm_mqtt_pub(a.c, cm_str_c("t"), cm_str_c(big), 0, false), CM_ETOOBIG);
  uint8_t raw[220] = {0x30, 0xD0, 0x01, 0, 1, 't'};
  cm_send(a.c, raw, 3 + 0xD0);
  assert_true(poll_for(&k, &a.closed));
  assert_int_equal(bk_stats(&k).clients_connected, 0);
  bk_stop(&k);
}

/* MQTT over WebSocket (ws://) with our client, beside mqtt://. */
static void websocket_listener(void **state) {
  (void)state;
  struct bk k;
  bk_start(&k, NULL);
  struct cm_conn *l = cm_mqtt_broker_listen(k.b, "ws://127.0.0.1:0/mqtt", NULL);
  assert_non_null(l);
  char url[80];
  snprintf(url, sizeof(url), "ws://127.0.0.1:%u/mqtt", l->loc.port);
  struct cli w, t;
  memset(&w, 0, sizeof(w));
  struct cm_mqtt_opts o = {.client_id = cm_str_c("ws"), .version = 5, .clean = true};
  w.c = cm_mqtt_connect(&k.mgr, url, &o, cli_fn, &w);
  assert_non_null(w.c);
  assert_true(poll_for(&k, &w.open));
  cli_connect(&k, &t, "tcp", 4, true);
  cli_sub(&k, &w, "over/ws", 1, 0);
  cli_pub(&t, "over/ws", "hello", 1, false);
  assert_true(cli_wait(&k, &w, 1));
  assert_string_equal(w.m[0].payload, "hello");
  cli_drop(&k, &w);
  cli_drop(&k, &t);
  bk_stop(&k);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(versions_interoperate), cmocka_unit_test(retained_messages),
      cmocka_unit_test(qos_levels),            cmocka_unit_test(persistent_session),
      cmocka_unit_test(session_takeover),      cmocka_unit_test(wills),
      cmocka_unit_test(sys_topics),            cmocka_unit_test(v5_features),
      cmocka_unit_test(protocol_violations),   cmocka_unit_test(keepalive_enforced),
      cmocka_unit_test(auth_and_acl),          cmocka_unit_test(slow_subscriber),
      cmocka_unit_test(limits),                cmocka_unit_test(websocket_listener),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
