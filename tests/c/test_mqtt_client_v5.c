/* MQTT 5.0 client extras end to end: topic aliases on QoS 1 and 2 (against
 * mosquitto, which takes them, and on the wire of scripted peers, including
 * the resend after a reconnect), Message Expiry counted down while our
 * messages wait and expired ones dropped, and enhanced authentication (AUTH
 * challenges, re-authentication, protocol errors) against scripted peers on
 * real sockets. */
#include <stdio.h>
#include <stdlib.h>

#include "peerproc.h"
#include "testutil.h"

static unsigned broker_port;
static pid_t broker_pid;
static char scratch[64];
static const char *const scratch_files[] = {"mosquitto.conf", "mosquitto.log"};

static int start_broker(void **state) {
  (void)state;
  char exe[256];
  if (peer_find_exe("mosquitto", exe, sizeof(exe)) == NULL) {
    fprintf(stderr, "test_mqtt_client_v5: mosquitto not installed (scripts/deps.sh installs it)\n");
    return -1;
  }
  snprintf(scratch, sizeof(scratch), "/tmp/cm-test-mqtt5-XXXXXX");
  if (mkdtemp(scratch) == NULL) return -1;
  unsigned port = peer_free_port();
  char conf[300], log[300];
  snprintf(conf, sizeof(conf), "%s/mosquitto.conf", scratch);
  snprintf(log, sizeof(log), "%s/mosquitto.log", scratch);
  FILE *f = fopen(conf, "w");
  if (f == NULL || port == 0) return -1;
  /* max_topic_alias: the Topic Alias Maximum mosquitto announces (and
   * enforces: an alias above it is a protocol error there). */
  fprintf(f, "allow_anonymous true\npersistence false\nuser root\nmax_topic_alias 3\n"
             "listener %u 127.0.0.1\n", port);
  fclose(f);
  char *argv[] = {exe, "-c", conf, NULL};
  broker_pid = peer_spawn(argv, log);
  if (!peer_wait_tcp_listening(port, broker_pid, 5000)) {
    fprintf(stderr, "test_mqtt_client_v5: mosquitto did not start (see %s)\n", log);
    peer_stop(broker_pid);
    return -1;
  }
  broker_port = port;
  return 0;
}

static int stop_broker(void **state) {
  (void)state;
  peer_stop(broker_pid);
  if (scratch[0] != '\0') peer_rm_dir(scratch, scratch_files, 2);
  return 0;
}

/* ------------------------------------------------------------ recorder */
#define MAX_MSGS 32

struct rec {
  bool opened, closed;
  char error[256];
  int nerrors;
  int cmds[16];
  char payloads[MAX_MSGS][64];
  size_t lens[MAX_MSGS];
  int nmsgs;
  struct cm_conn *c;
  /* enhanced authentication: the challenge data seen, answered with
   * "re:" + data */
  char challenges[4][32];
  int nchallenges;
  int auth_ok; /* AUTH 0x00 received */
};

static void handler(struct cm_conn *c, int ev, void *ev_data) {
  struct rec *r = c->fn_data;
  if (r == NULL || c->is_listening) return;
  struct cm_mqtt_msg *mm = ev_data;
  switch (ev) {
    case CM_EV_MQTT_OPEN:
      r->opened = true;
      break;
    case CM_EV_MQTT_CMD:
      r->cmds[mm->cmd & 15]++;
      if (mm->cmd == CM_MQTT_CMD_AUTH && mm->ack == CM_MQTT_RC_SUCCESS) r->auth_ok++;
      if (mm->cmd == CM_MQTT_CMD_AUTH && mm->ack == CM_MQTT_RC_CONTINUE_AUTHENTICATION) {
        struct cm_mqtt_prop p;
        char *slot = r->challenges[r->nchallenges++ & 3];
        snprintf(slot, 32, "?");
        if (cm_mqtt_prop_find(mm->props, CM_MQTT_PROP_AUTHENTICATION_DATA, &p))
          snprintf(slot, 32, "%.*s", (int)p.val.len, p.val.buf);
        char answer[40];
        snprintf(answer, sizeof(answer), "re:%s", slot);
        assert_int_equal(cm_mqtt_auth(c, CM_MQTT_RC_CONTINUE_AUTHENTICATION, cm_str_n("", 0),
                                      cm_str_c(answer), NULL, 0),
                         0);
      }
      break;
    case CM_EV_MQTT_MSG:
      if (r->nmsgs < MAX_MSGS) {
        size_t n = mm->data.len < 64 ? mm->data.len : 64;
        memcpy(r->payloads[r->nmsgs], mm->data.buf, n);
        r->lens[r->nmsgs] = mm->data.len;
      }
      r->nmsgs++;
      break;
    case CM_EV_ERROR:
      snprintf(r->error, sizeof(r->error), "%s", (const char *)ev_data);
      r->nerrors++;
      break;
    case CM_EV_CLOSE:
      r->closed = true;
      break;
    default:
      break;
  }
}

/* Polls for at least ms (a lower bound: expiry tests wait past a deadline). */
static void poll_for(struct cm_mgr *mgr, int ms) {
  uint64_t end = cm_millis() + (uint64_t)ms;
  while (cm_millis() < end) cm_mgr_poll(mgr, 10);
}

/* ------------------------------------------------------ scripted peers */

/* A raw TCP server: answers the client's first bytes (its CONNECT) with
 * reply, records the rest. */
struct script {
  const uint8_t *reply;
  size_t reply_len;
  uint8_t got[8192];
  size_t got_len;
  bool replied, peer_closed;
  struct cm_conn *conn;
};

static void script_fn(struct cm_conn *c, int ev, void *ev_data) {
  (void)ev_data;
  struct script *s = c->fn_data;
  if (c->is_listening) return;
  if (ev == CM_EV_READ) {
    size_t n = c->recv.len;
    if (n > sizeof(s->got) - s->got_len) n = sizeof(s->got) - s->got_len;
    memcpy(s->got + s->got_len, cm_buf_data(&c->recv), n);
    s->got_len += n;
    cm_recv_consume(c, c->recv.len);
    s->conn = c;
    if (!s->replied) {
      s->replied = true;
      cm_send(c, s->reply, s->reply_len);
    }
  } else if (ev == CM_EV_CLOSE) {
    s->peer_closed = true;
  }
}

/* The n-th (from 0) PUBLISH the peer received, parsed (views into s->got). */
static bool nth_publish(const struct script *s, int n, struct cm_mqtt_packet *out) {
  size_t pos = 0;
  while (pos < s->got_len) {
    int r = cm_mqtt_parse(s->got + pos, s->got_len - pos, 5, 0, out);
    if (r <= 0) return false;
    if (out->cmd == CM_MQTT_CMD_PUBLISH && n-- == 0) return true;
    pos += (size_t)r;
  }
  return false;
}

static int count_publishes(const struct script *s) {
  struct cm_mqtt_packet m;
  int n = 0;
  while (nth_publish(s, n, &m)) n++;
  return n;
}

static bool payload_is(const struct cm_mqtt_packet *m, const char *want) {
  return m->payload.len == strlen(want) && memcmp(m->payload.buf, want, m->payload.len) == 0;
}

static bool topic_is(const struct cm_mqtt_packet *m, const char *want) {
  return m->topic.len == strlen(want) && memcmp(m->topic.buf, want, m->topic.len) == 0;
}

/* The Topic Alias a PUBLISH carries, 0 when none. */
static uint32_t alias_of(const struct cm_mqtt_packet *m) {
  struct cm_mqtt_prop p;
  return cm_mqtt_prop_find(m->props, CM_MQTT_PROP_TOPIC_ALIAS, &p) ? p.iv : 0;
}

static uint32_t expiry_of(const struct cm_mqtt_packet *m) {
  struct cm_mqtt_prop p;
  return cm_mqtt_prop_find(m->props, CM_MQTT_PROP_MESSAGE_EXPIRY_INTERVAL, &p) ? p.iv : 0;
}

static int publish(struct cm_conn *c, const char *topic, const char *msg, uint8_t qos, bool alias,
                   uint32_t expiry) {
  struct cm_mqtt_prop p = {.id = CM_MQTT_PROP_MESSAGE_EXPIRY_INTERVAL, .iv = expiry};
  struct cm_mqtt_pub_opts o = {.topic = cm_str_c(topic), .message = cm_str_c(msg), .qos = qos,
                               .topic_alias = alias, .props = &p, .num_props = expiry != 0};
  return cm_mqtt_publish(c, &o);
}

/* ---------------------------------------------------------- topic aliases */

/* QoS 1 and 2 with topic aliases through mosquitto (Topic Alias Maximum 3
 * in its CONNACK): more topics than aliases, each message arrives once at
 * a subscriber with its exact payload and topic, and mosquitto, which
 * refuses an unknown or out-of-range alias with a DISCONNECT, stays happy. */
static void aliases_on_qos1_and_qos2_through_mosquitto(void **state) {
  (void)state;
  struct cm_mgr mgr;
  struct rec sub = {0}, pub = {0};
  assert_int_equal(cm_mgr_init(&mgr), 0);
  char url[64], filter[64];
  snprintf(url, sizeof(url), "mqtt://127.0.0.1:%u", broker_port);
  char base[32];
  cm_random_str(base, 8);
  base[8] = '\0';
  snprintf(filter, sizeof(filter), "cm5/%s/#", base);
  struct cm_mqtt_opts o = {.version = 5, .clean = true};
  sub.c = cm_mqtt_connect(&mgr, url, &o, handler, &sub);
  pub.c = cm_mqtt_connect(&mgr, url, &o, handler, &pub);
  assert_true(wait_for(&mgr, &sub.opened, 5000));
  assert_true(wait_for(&mgr, &pub.opened, 5000));
  assert_true(cm_mqtt_sub(sub.c, cm_str_c(filter), 2) > 0);
  assert_true(wait_count(&mgr, &sub.cmds[CM_MQTT_CMD_SUBACK], 1, 5000));
  /* 5 topics over 3 aliases, 4 rounds, QoS alternating 1 and 2. */
  int sent = 0;
  for (int round = 0; round < 4; round++) {
    for (int t = 0; t < 5; t++) {
      char topic[48], msg[64];
      snprintf(topic, sizeof(topic), "cm5/%s/t%d", base, t);
      snprintf(msg, sizeof(msg), "%s\x01\xff-%d-%d", topic, round, t);
      assert_true(publish(pub.c, topic, msg, (uint8_t)(1 + (sent & 1)), true, 0) > 0);
      sent++;
    }
  }
  assert_true(wait_count(&mgr, &sub.nmsgs, sent, 10000));
  poll_for(&mgr, 100);
  assert_int_equal(sub.nmsgs, sent);
  for (int round = 0; round < 4; round++) {
    for (int t = 0; t < 5; t++) {
      char want[64];
      snprintf(want, sizeof(want), "cm5/%s/t%d\x01\xff-%d-%d", base, t, round, t);
      int seen = 0;
      for (int i = 0; i < sub.nmsgs; i++)
        if (sub.lens[i] == strlen(want) && memcmp(sub.payloads[i], want, sub.lens[i]) == 0) seen++;
      assert_int_equal(seen, 1);
    }
  }
  assert_int_equal(pub.cmds[CM_MQTT_CMD_PUBACK], sent / 2);
  assert_int_equal(pub.cmds[CM_MQTT_CMD_PUBCOMP], sent / 2);
  assert_int_equal(pub.nerrors, 0);
  assert_int_equal(sub.nerrors, 0);
  assert_false(pub.closed);
  cm_mgr_free(&mgr);
}

/* On the wire: aliases are given as held messages go out (name and alias
 * the first time, alias alone then, the name alone once all are taken);
 * after a reconnect the unacknowledged ones go again with DUP and their
 * full topic, no alias, and the new connection starts its own aliases. */
static void aliases_on_the_wire_and_on_resend(void **state) {
  (void)state;
  static const uint8_t connack_ta2[] = {0x20, 0x06, 0x00, 0x00, 0x03, 0x22, 0x00, 0x02};
  static const uint8_t resume_ta2[] = {0x20, 0x06, 0x01, 0x00, 0x03, 0x22, 0x00, 0x02};
  struct cm_mgr mgr;
  assert_int_equal(cm_mgr_init(&mgr), 0);
  struct script s1 = {.reply = connack_ta2, .reply_len = sizeof(connack_ta2)};
  struct script s2 = {.reply = resume_ta2, .reply_len = sizeof(resume_ta2)};
  struct cm_conn *l1 = cm_listen(&mgr, "tcp://127.0.0.1:0", script_fn, &s1);
  struct cm_conn *l2 = cm_listen(&mgr, "tcp://127.0.0.1:0", script_fn, &s2);
  assert_non_null(l1);
  assert_non_null(l2);
  struct cm_mqtt_session *sess = cm_mqtt_session_new(NULL);
  struct cm_mqtt_opts o = {.version = 5, .client_id = cm_str_c("aliaser"), .session = sess};
  char url[64];
  snprintf(url, sizeof(url), "mqtt://127.0.0.1:%u", l1->loc.port);
  struct rec r1 = {0}, r2 = {0};
  r1.c = cm_mqtt_connect(&mgr, url, &o, handler, &r1);
  /* Published before the CONNACK: they wait, and get aliases as they leave. */
  assert_true(publish(r1.c, "t/a", "p1", 1, true, 0) > 0);
  assert_true(wait_for(&mgr, &r1.opened, 5000));
  assert_true(publish(r1.c, "t/a", "p2", 2, true, 0) > 0);
  assert_true(publish(r1.c, "t/b", "p3", 1, true, 0) > 0);
  assert_true(publish(r1.c, "t/c", "p4", 2, true, 0) > 0);
  assert_true(publish(r1.c, "t/b", "p5", 1, false, 0) > 0); /* no alias asked */
  assert_int_equal(publish(r1.c, "t/b", "p6", 0, true, 0), 0); /* QoS 0 shares them */
  for (int i = 0; i < 100 && count_publishes(&s1) < 6; i++) cm_mgr_poll(&mgr, 10);
  struct {
    const char *topic, *payload;
    uint32_t alias;
  } want1[] = {{"t/a", "p1", 1}, {"", "p2", 1},    {"t/b", "p3", 2},
               {"t/c", "p4", 0}, {"t/b", "p5", 0}, {"", "p6", 2}};
  struct cm_mqtt_packet m;
  for (int i = 0; i < 6; i++) {
    assert_true(nth_publish(&s1, i, &m));
    assert_true(payload_is(&m, want1[i].payload));
    assert_true(topic_is(&m, want1[i].topic));
    assert_int_equal(alias_of(&m), want1[i].alias);
    assert_false(m.dup);
  }
  cm_close(r1.c);
  assert_true(wait_for(&mgr, &r1.closed, 5000));
  assert_int_equal(cm_mqtt_session_pending(sess), 5);

  snprintf(url, sizeof(url), "mqtt://127.0.0.1:%u", l2->loc.port);
  r2.c = cm_mqtt_connect(&mgr, url, &o, handler, &r2);
  assert_true(wait_for(&mgr, &r2.opened, 5000));
  assert_true(publish(r2.c, "t/c", "p7", 1, true, 0) > 0);
  for (int i = 0; i < 100 && count_publishes(&s2) < 6; i++) cm_mgr_poll(&mgr, 10);
  assert_int_equal(count_publishes(&s2), 6);
  const char *topics2[] = {"t/a", "t/a", "t/b", "t/c", "t/b"};
  for (int i = 0; i < 5; i++) {
    assert_true(nth_publish(&s2, i, &m));
    assert_true(m.dup);
    assert_true(topic_is(&m, topics2[i]));
    assert_int_equal(alias_of(&m), 0);
    assert_true(payload_is(&m, want1[i].payload));
  }
  assert_true(nth_publish(&s2, 5, &m)); /* new on this connection: alias 1 */
  assert_false(m.dup);
  assert_true(topic_is(&m, "t/c"));
  assert_int_equal(alias_of(&m), 1);
  assert_true(payload_is(&m, "p7"));
  assert_int_equal(r1.nerrors + r2.nerrors, 0);
  cm_close(r2.c);
  assert_true(wait_for(&mgr, &r2.closed, 5000));
  cm_mgr_free(&mgr);
  cm_mqtt_session_free(sess);
}

/* --------------------------------------------------------- message expiry */

/* A window of 1 (Receive Maximum 1) keeps messages queued: the one whose
 * Message Expiry ran out meanwhile is dropped unsent, the next goes out
 * with the seconds left; after a reconnect an unacknowledged message goes
 * again with what is left then, and a queued one that expired is dropped. */
static void expiry_counts_down_and_drops(void **state) {
  (void)state;
  static const uint8_t connack_rm1[] = {0x20, 0x09, 0x00, 0x00, 0x06, 0x21, 0x00, 0x01, 0x22, 0x00, 0x02};
  static const uint8_t resume[] = {0x20, 0x03, 0x01, 0x00, 0x00};
  struct cm_mgr mgr;
  assert_int_equal(cm_mgr_init(&mgr), 0);
  struct script s1 = {.reply = connack_rm1, .reply_len = sizeof(connack_rm1)};
  struct script s2 = {.reply = resume, .reply_len = sizeof(resume)};
  struct cm_conn *l1 = cm_listen(&mgr, "tcp://127.0.0.1:0", script_fn, &s1);
  struct cm_conn *l2 = cm_listen(&mgr, "tcp://127.0.0.1:0", script_fn, &s2);
  struct cm_mqtt_session *sess = cm_mqtt_session_new(NULL);
  struct cm_mqtt_opts o = {.version = 5, .client_id = cm_str_c("expirer"), .session = sess};
  char url[64];
  snprintf(url, sizeof(url), "mqtt://127.0.0.1:%u", l1->loc.port);
  struct rec r1 = {0}, r2 = {0};
  r1.c = cm_mqtt_connect(&mgr, url, &o, handler, &r1);
  assert_true(wait_for(&mgr, &r1.opened, 5000));
  int id1 = publish(r1.c, "e/1", "m1", 1, false, 0);   /* in flight, never expires */
  assert_true(publish(r1.c, "e/2", "m2", 1, false, 1) > 0);  /* queued, 1 s */
  assert_true(publish(r1.c, "e/3", "m3", 2, true, 10) > 0);  /* queued, 10 s */
  assert_true(publish(r1.c, "e/4", "m4", 1, false, 2) > 0);  /* queued, 2 s */
  poll_for(&mgr, 1100); /* m2 runs out */
  assert_int_equal(count_publishes(&s1), 1);
  uint8_t puback[] = {0x40, 0x02, (uint8_t)(id1 >> 8), (uint8_t)id1};
  assert_non_null(s1.conn);
  cm_send(s1.conn, puback, sizeof(puback));
  for (int i = 0; i < 100 && count_publishes(&s1) < 2; i++) cm_mgr_poll(&mgr, 10);
  poll_for(&mgr, 50);
  struct cm_mqtt_packet m;
  assert_int_equal(count_publishes(&s1), 2); /* m1, m3; m2 never */
  assert_true(nth_publish(&s1, 1, &m));
  assert_true(payload_is(&m, "m3"));
  assert_true(expiry_of(&m) >= 1 && expiry_of(&m) <= 9);
  assert_int_equal(alias_of(&m), 1); /* an alias too: both rewrites at once */
  assert_int_equal(cm_mqtt_session_expired(sess), 1);
  assert_int_equal(cm_mqtt_session_pending(sess), 2); /* m3 in flight, m4 queued */
  cm_close(r1.c);
  assert_true(wait_for(&mgr, &r1.closed, 5000));
  poll_for(&mgr, 1100); /* m4 runs out too, >= 2.2 s after it was published */

  snprintf(url, sizeof(url), "mqtt://127.0.0.1:%u", l2->loc.port);
  r2.c = cm_mqtt_connect(&mgr, url, &o, handler, &r2);
  assert_true(wait_for(&mgr, &r2.opened, 5000));
  poll_for(&mgr, 100);
  assert_int_equal(count_publishes(&s2), 1);
  assert_true(nth_publish(&s2, 0, &m));
  assert_true(payload_is(&m, "m3"));
  assert_true(m.dup);
  assert_true(topic_is(&m, "e/3"));
  assert_int_equal(alias_of(&m), 0);
  assert_true(expiry_of(&m) >= 1 && expiry_of(&m) <= 8);
  assert_int_equal(cm_mqtt_session_expired(sess), 2);
  assert_int_equal(cm_mqtt_session_pending(sess), 1);
  cm_close(r2.c);
  assert_true(wait_for(&mgr, &r2.closed, 5000));
  cm_mgr_free(&mgr);
  cm_mqtt_session_free(sess);
}

/* ------------------------------------------------- enhanced authentication */

/* A scripted server for method "TEST-CR": answers CONNECT with a challenge
 * (AUTH 0x18 "c1"), expects "re:c1", then CONNACK; a client AUTH 0x19
 * gets a second challenge "c2", and "re:c2" gets AUTH 0x00. */
struct auth_peer {
  uint8_t step;
  char seen[4][32]; /* data the client sent: CONNECT, answers, re-auth */
  int nseen;
  char error[64];
  struct cm_buf in;
};

static void auth_send(struct cm_conn *c, int cmd, uint8_t reason, const char *data) {
  struct cm_mqtt_prop p[2] = {{.id = CM_MQTT_PROP_AUTHENTICATION_METHOD, .val = cm_str_c("TEST-CR")},
                              {.id = CM_MQTT_PROP_AUTHENTICATION_DATA, .val = cm_str_c(data)}};
  struct cm_buf pb = {0}, out = {0};
  assert_int_equal(cm_mqtt_props_encode(&pb, p, data[0] != '\0' ? 2 : 1), 0);
  uint32_t skip;
  int n = cm_mqtt_varint_decode(cm_buf_data(&pb), pb.len, &skip);
  struct cm_mqtt_packet m = {.cmd = (uint8_t)cmd, .version = 5, .reason = reason};
  m.props = cm_str_n((const char *)cm_buf_data(&pb) + n, pb.len - (size_t)n);
  assert_int_equal(cm_mqtt_encode(&out, &m), 0);
  cm_send(c, cm_buf_data(&out), out.len);
  cm_buf_free(&pb);
  cm_buf_free(&out);
}

static void auth_peer_fn(struct cm_conn *c, int ev, void *ev_data) {
  (void)ev_data;
  struct auth_peer *a = c->fn_data;
  if (c->is_listening || ev != CM_EV_READ) return;
  cm_buf_append(&a->in, cm_buf_data(&c->recv), c->recv.len);
  cm_recv_consume(c, c->recv.len);
  for (;;) {
    struct cm_mqtt_packet m;
    int r = cm_mqtt_parse(cm_buf_data(&a->in), a->in.len, 5, 0, &m);
    if (r <= 0) break;
    struct cm_mqtt_prop p;
    char data[32] = "";
    if (cm_mqtt_prop_find(m.props, CM_MQTT_PROP_AUTHENTICATION_DATA, &p))
      snprintf(data, sizeof(data), "%.*s", (int)p.val.len, p.val.buf);
    bool method = cm_mqtt_prop_find(m.props, CM_MQTT_PROP_AUTHENTICATION_METHOD, &p) &&
                  p.val.len == 7 && memcmp(p.val.buf, "TEST-CR", 7) == 0;
    if (m.cmd == CM_MQTT_CMD_CONNECT || m.cmd == CM_MQTT_CMD_AUTH) {
      snprintf(a->seen[a->nseen++ & 3], 32, "%u:%s", m.reason, data);
      if (!method) snprintf(a->error, sizeof(a->error), "no method in packet %u", m.cmd);
    }
    if (m.cmd == CM_MQTT_CMD_CONNECT) {
      auth_send(c, CM_MQTT_CMD_AUTH, CM_MQTT_RC_CONTINUE_AUTHENTICATION, "c1");
    } else if (m.cmd == CM_MQTT_CMD_AUTH && strcmp(data, "re:c1") == 0) {
      auth_send(c, CM_MQTT_CMD_CONNACK, 0, "");
    } else if (m.cmd == CM_MQTT_CMD_AUTH && m.reason == CM_MQTT_RC_REAUTHENTICATE) {
      auth_send(c, CM_MQTT_CMD_AUTH, CM_MQTT_RC_CONTINUE_AUTHENTICATION, "c2");
    } else if (m.cmd == CM_MQTT_CMD_AUTH && strcmp(data, "re:c2") == 0) {
      auth_send(c, CM_MQTT_CMD_AUTH, 0, "");
    }
    cm_buf_consume(&a->in, (size_t)r);
  }
}

static void enhanced_auth_and_reauth(void **state) {
  (void)state;
  struct cm_mgr mgr;
  assert_int_equal(cm_mgr_init(&mgr), 0);
  struct auth_peer a = {0};
  struct cm_conn *l = cm_listen(&mgr, "tcp://127.0.0.1:0", auth_peer_fn, &a);
  assert_non_null(l);
  char url[64];
  snprintf(url, sizeof(url), "mqtt://127.0.0.1:%u", l->loc.port);
  struct cm_mqtt_opts o = {.version = 5, .clean = true, .auth_method = cm_str_c("TEST-CR"),
                           .auth_data = cm_str_c("hello")};
  struct rec r = {0};
  r.c = cm_mqtt_connect(&mgr, url, &o, handler, &r);
  assert_non_null(r.c);
  assert_true(wait_for(&mgr, &r.opened, 5000));
  assert_int_equal(r.nchallenges, 1);
  assert_string_equal(r.challenges[0], "c1");
  /* Re-authentication: 0x19, the server's challenge, our answer, 0x00. */
  assert_int_equal(cm_mqtt_auth(r.c, CM_MQTT_RC_REAUTHENTICATE, cm_str_n("", 0), cm_str_c("again"),
                                NULL, 0),
                   0);
  assert_true(wait_count(&mgr, &r.auth_ok, 1, 5000));
  assert_int_equal(r.nchallenges, 2);
  assert_string_equal(r.challenges[1], "c2");
  assert_int_equal(a.nseen, 4);
  assert_string_equal(a.seen[0], "0:hello");
  assert_string_equal(a.seen[1], "24:re:c1");
  assert_string_equal(a.seen[2], "25:again");
  assert_string_equal(a.seen[3], "24:re:c2");
  assert_string_equal(a.error, "");
  assert_int_equal(r.nerrors, 0);
  /* What the API refuses: 0x00 from a client, 0x19 on 3.1.1... */
  assert_int_equal(cm_mqtt_auth(r.c, 0, cm_str_n("", 0), cm_str_n("", 0), NULL, 0), CM_EINVAL);
  assert_int_equal(cm_mqtt_auth(r.c, 0x83, cm_str_n("", 0), cm_str_n("", 0), NULL, 0), CM_EINVAL);
  cm_close(r.c);
  assert_true(wait_for(&mgr, &r.closed, 5000));
  cm_buf_free(&a.in);
  cm_mgr_free(&mgr);
}

/* AUTH that breaks 4.12: to a client that asked for no enhanced
 * authentication, with another method, or 0x00 without a re-authentication:
 * DISCONNECT 0x82, ERROR, close. */
static void auth_protocol_errors(void **state) {
  (void)state;
  static const uint8_t auth_x[] = {0xF0, 0x06, 0x18, 0x04, 0x15, 0x00, 0x01, 'X'};
  static const uint8_t auth_ok_m[] = {0x20, 0x03, 0x00, 0x00, 0x00, /* CONNACK, then: */
                                      0xF0, 0x06, 0x00, 0x04, 0x15, 0x00, 0x01, 'M'};
  struct {
    const uint8_t *reply;
    size_t len;
    const char *method;
    const char *want;
  } cases[] = {
      {auth_x, sizeof(auth_x), "", "without an Authentication Method in CONNECT"},
      {auth_x, sizeof(auth_x), "M", "another Authentication Method"},
      {auth_ok_m, sizeof(auth_ok_m), "M", "AUTH 0x00 without a re-authentication"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    struct cm_mgr mgr;
    assert_int_equal(cm_mgr_init(&mgr), 0);
    struct script s = {.reply = cases[i].reply, .reply_len = cases[i].len};
    struct cm_conn *l = cm_listen(&mgr, "tcp://127.0.0.1:0", script_fn, &s);
    char url[64];
    snprintf(url, sizeof(url), "mqtt://127.0.0.1:%u", l->loc.port);
    struct cm_mqtt_opts o = {.version = 5, .clean = true, .auth_method = cm_str_c(cases[i].method)};
    struct rec r = {0};
    r.c = cm_mqtt_connect(&mgr, url, &o, handler, &r);
    assert_true(wait_for(&mgr, &r.closed, 5000));
    for (int k = 0; k < 10; k++) cm_mgr_poll(&mgr, 5);
    if (strstr(r.error, cases[i].want) == NULL || strstr(r.error, "(0x82)") == NULL)
      fail_msg("case %zu: ERROR \"%s\"", i, r.error);
    assert_int_equal(r.cmds[CM_MQTT_CMD_AUTH], 0); /* never reached the handler */
    assert_true(s.got_len >= 3);
    assert_int_equal(s.got[s.got_len - 3], 0xE0); /* DISCONNECT 0x82 last */
    assert_int_equal(s.got[s.got_len - 1], 0x82);
    cm_mgr_free(&mgr);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(aliases_on_qos1_and_qos2_through_mosquitto),
      cmocka_unit_test(aliases_on_the_wire_and_on_resend),
      cmocka_unit_test(expiry_counts_down_and_drops),
      cmocka_unit_test(enhanced_auth_and_reauth),
      cmocka_unit_test(auth_protocol_errors),
  };
  return cmocka_run_group_tests_name("mqtt_client_v5", tests, start_broker, stop_broker);
}
