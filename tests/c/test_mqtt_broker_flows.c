/* The broker's finer flows: the persistence hooks and a restart through
 * store.load, message expiry, topic aliases, the client's maximum packet
 * size and receive maximum, QoS 2 duplicate suppression, resend with DUP,
 * injected messages and the observer, and paho-mqtt clients (3.1.1, 5.0). */
#include "broker_harness.h"
#include "certgen.h"

/* ------------------------------------------------------ an in-memory store */
#define NREC 64
struct rec_msg {
  bool live;
  char cid[32];
  uint16_t id;
  int state;
  char topic[32], payload[32];
  uint8_t qos;
};
struct mem_store {
  char ret_topic[8][32], ret_payload[8][32];
  int nret;
  char sess[8][32];
  uint32_t sess_exp[8];
  int nsess;
  char sub_cid[8][32], sub_filter[8][32];
  uint8_t sub_opts[8];
  int nsub;
  struct rec_msg msgs[NREC];
  int nmsgs;
  int loads;
};

static bool s_retain(void *arg, struct cm_str topic, const struct cm_mqtt_broker_msg *m) {
  struct mem_store *st = arg;
  int i;
  for (i = 0; i < st->nret; i++)
    if (strlen(st->ret_topic[i]) == topic.len && memcmp(st->ret_topic[i], topic.buf, topic.len) == 0)
      break;
  if (i == st->nret) {
    if (m == NULL || st->nret == 8) return true;
    st->nret++;
  }
  cpy(st->ret_topic[i], 32, topic);
  if (m == NULL) st->ret_topic[i][0] = '\0';
  else cpy(st->ret_payload[i], 32, m->payload);
  return true;
}
static void s_session(void *arg, struct cm_str id, uint32_t exp) {
  struct mem_store *st = arg;
  for (int i = 0; i < st->nsess; i++)
    if (strlen(st->sess[i]) == id.len && memcmp(st->sess[i], id.buf, id.len) == 0) {
      st->sess_exp[i] = exp;
      return;
    }
  if (st->nsess == 8) return;
  cpy(st->sess[st->nsess], 32, id);
  st->sess_exp[st->nsess++] = exp;
}
static void s_sub(void *arg, struct cm_str id, struct cm_str f, uint8_t opts, uint32_t sub_id) {
  struct mem_store *st = arg;
  (void)sub_id;
  if (st->nsub == 8) return;
  cpy(st->sub_cid[st->nsub], 32, id);
  cpy(st->sub_filter[st->nsub], 32, f);
  st->sub_opts[st->nsub++] = opts;
}
static bool s_held(void *arg, struct cm_str cid, uint16_t id, int state,
                   const struct cm_mqtt_broker_msg *m) {
  struct mem_store *st = arg;
  if (st->nmsgs == NREC) return true;
  struct rec_msg *r = &st->msgs[st->nmsgs++];
  r->live = true;
  cpy(r->cid, 32, cid);
  r->id = id;
  r->state = state;
  cpy(r->topic, 32, m->topic);
  cpy(r->payload, 32, m->payload);
  r->qos = m->qos;
  return true;
}
static struct rec_msg *s_find(struct mem_store *st, struct cm_str cid, uint16_t id) {
  for (int i = 0; i < st->nmsgs; i++) {
    struct rec_msg *r = &st->msgs[i];
    if (r->live && r->id == id && strlen(r->cid) == cid.len && memcmp(r->cid, cid.buf, cid.len) == 0)
      return r;
  }
  return NULL;
}
static void s_state(void *arg, struct cm_str cid, uint16_t id, int state) {
  struct rec_msg *r = s_find(arg, cid, id);
  if (r != NULL) r->state = state;
}
static void s_done(void *arg, struct cm_str cid, uint16_t id) {
  struct rec_msg *r = s_find(arg, cid, id);
  if (r != NULL) r->live = false;
}
static bool s_load(void *arg, struct cm_mqtt_broker *b) {
  struct mem_store *st = arg;
  st->loads++;
  for (int i = 0; i < st->nret; i++) {
    if (st->ret_topic[i][0] == '\0') continue;
    struct cm_mqtt_broker_msg m = {.topic = cm_str_c(st->ret_topic[i]),
                                   .payload = cm_str_c(st->ret_payload[i]), .retain = true};
    if (cm_mqtt_broker_restore_retained(b, &m) != 0) return false;
  }
  for (int i = 0; i < st->nsess; i++)
    if (cm_mqtt_broker_restore_session(b, cm_str_c(st->sess[i]), st->sess_exp[i]) != 0) return false;
  for (int i = 0; i < st->nsub; i++)
    if (cm_mqtt_broker_restore_sub(b, cm_str_c(st->sub_cid[i]), cm_str_c(st->sub_filter[i]),
                                    st->sub_opts[i], 0) != 0)
      return false;
  for (int i = 0; i < st->nmsgs; i++) {
    struct rec_msg *r = &st->msgs[i];
    if (!r->live) continue;
    struct cm_mqtt_broker_msg m = {.topic = cm_str_c(r->topic), .payload = cm_str_c(r->payload),
                                   .qos = r->qos};
    if (cm_mqtt_broker_restore_msg(b, cm_str_c(r->cid), r->id, r->state, &m) != 0) return false;
  }
  return true;
}

/* Everything a restart needs reaches the store, and load brings it back. */
static void persistence_hooks(void **state) {
  (void)state;
  static struct mem_store ms;
  memset(&ms, 0, sizeof(ms));
  struct cm_mqtt_broker_opts o = {.allow_anonymous = true, .no_sys = true};
  o.store = (struct cm_mqtt_broker_store){.arg = &ms, .retain = s_retain, .session_save = s_session,
                                          .sub_add = s_sub, .msg_held = s_held,
                                          .msg_state = s_state, .msg_done = s_done, .load = s_load};
  struct bk k;
  bk_start(&k, &o);
  assert_int_equal(ms.loads, 1);
  struct cli s, p;
  cli_connect(&k, &s, "durable", 4, false);
  cli_sub(&k, &s, "d/#", 2, 0);
  cli_drop(&k, &s);
  cli_connect(&k, &p, "pub", 5, true);
  cli_pub(&p, "d/1", "kept-1", 1, false);
  cli_pub(&p, "d/2", "kept-2", 2, false);
  cli_pub(&p, "d/r", "sticky", 0, true);
  poll_ms(&k, 200);
  cli_drop(&k, &p);
  assert_int_equal(ms.nsess, 1);
  assert_int_equal(ms.nsub, 1);
  assert_int_equal(ms.nmsgs, 2);
  assert_int_equal(ms.nret, 1);
  bk_stop(&k); /* "restart" */
  bk_start(&k, &o);
  assert_int_equal(ms.loads, 2);
  assert_int_equal(bk_stats(&k).retained, 1);
  assert_int_equal(bk_stats(&k).queued, 2);
  cli_connect(&k, &s, "durable", 4, false);
  assert_true(s.session_present);
  assert_true(cli_wait(&k, &s, 2));
  assert_string_equal(s.m[0].payload, "kept-1");
  assert_string_equal(s.m[1].payload, "kept-2");
  poll_ms(&k, 200);
  for (int i = 0; i < ms.nmsgs; i++) assert_false(ms.msgs[i].live); /* acked: done */
  /* The restored subscription routes new messages too. */
  cli_connect(&k, &p, "pub", 5, true);
  cli_pub(&p, "d/3", "new", 1, false);
  assert_true(cli_wait(&k, &s, 3));
  cli_drop(&k, &s);
  cli_drop(&k, &p);
  bk_stop(&k);
}

/* Message expiry: an expired queued message is dropped; a live one
 * arrives with what is left of its interval. */
static void message_expiry(void **state) {
  (void)state;
  struct bk k;
  bk_start(&k, NULL);
  struct cli s, p;
  struct cm_mqtt_prop exp = {.id = CM_MQTT_PROP_SESSION_EXPIRY_INTERVAL, .iv = 60};
  struct cm_mqtt_opts o = {.client_id = cm_str_c("late"), .version = 5, .clean = true,
                           .props = &exp, .num_props = 1};
  cli_connect_opts(&k, &s, &o);
  cli_sub(&k, &s, "e/#", 1, 0);
  cli_drop(&k, &s);
  cli_connect(&k, &p, "pub", 5, true);
  struct cm_mqtt_prop e1 = {.id = CM_MQTT_PROP_MESSAGE_EXPIRY_INTERVAL, .iv = 1};
  struct cm_mqtt_prop e60 = {.id = CM_MQTT_PROP_MESSAGE_EXPIRY_INTERVAL, .iv = 60};
  struct cm_mqtt_pub_opts po = {.topic = cm_str_c("e/short"), .message = cm_str_c("gone"), .qos = 1,
                                .props = &e1, .num_props = 1};
  assert_true(cm_mqtt_publish(p.c, &po) > 0);
  po.topic = cm_str_c("e/long");
  po.message = cm_str_c("here");
  po.props = &e60;
  assert_true(cm_mqtt_publish(p.c, &po) > 0);
  poll_ms(&k, 2100);
  o.clean = false;
  cli_connect_opts(&k, &s, &o);
  assert_true(cli_wait(&k, &s, 1));
  poll_ms(&k, 100);
  assert_int_equal(s.n, 1);
  assert_string_equal(s.m[0].payload, "here");
  cli_drop(&k, &s);
  cli_drop(&k, &p);
  bk_stop(&k);
}

/* A client's topic aliases are resolved and not passed on. */
static void topic_aliases(void **state) {
  (void)state;
  struct bk k;
  bk_start(&k, NULL);
  struct cli s, p;
  cli_connect(&k, &s, "s", 5, true);
  cli_connect(&k, &p, "p", 5, true);
  cli_sub(&k, &s, "long/topic/name", 0, 0);
  struct cm_mqtt_pub_opts po = {.topic = cm_str_c("long/topic/name"), .message = cm_str_c("1"),
                                .topic_alias = true};
  assert_true(cm_mqtt_publish(p.c, &po) >= 0);
  po.message = cm_str_c("2");
  assert_true(cm_mqtt_publish(p.c, &po) >= 0); /* by alias only */
  assert_true(cli_wait(&k, &s, 2));
  assert_string_equal(s.m[1].topic, "long/topic/name");
  assert_string_equal(s.m[1].payload, "2");
  cli_drop(&k, &s);
  cli_drop(&k, &p);
  bk_stop(&k);
}

/* A raw v5 client with Receive Maximum rm and Maximum Packet Size mps. */
static int raw_v5(struct bk *k, const char *id, bool clean, uint16_t rm, uint32_t mps, uint32_t sexp) {
  uint8_t pkt[128];
  size_t n = 0;
  uint8_t props[32];
  size_t np = 0;
  props[np++] = 0x21;
  props[np++] = (uint8_t)(rm >> 8);
  props[np++] = (uint8_t)rm;
  props[np++] = 0x27;
  for (int i = 3; i >= 0; i--) props[np++] = (uint8_t)(mps >> (8 * i));
  props[np++] = 0x11;
  for (int i = 3; i >= 0; i--) props[np++] = (uint8_t)(sexp >> (8 * i));
  size_t idl = strlen(id);
  size_t rem = 10 + 1 + np + 2 + idl;
  pkt[n++] = 0x10;
  pkt[n++] = (uint8_t)rem;
  const uint8_t vh[] = {0, 4, 'M', 'Q', 'T', 'T', 5, (uint8_t)(clean ? 0x02 : 0), 0, 0};
  memcpy(pkt + n, vh, sizeof(vh));
  n += sizeof(vh);
  pkt[n++] = (uint8_t)np;
  memcpy(pkt + n, props, np);
  n += np;
  pkt[n++] = 0;
  pkt[n++] = (uint8_t)idl;
  memcpy(pkt + n, id, idl);
  n += idl;
  int fd = raw_connect(k->port);
  raw_send(fd, pkt, n);
  uint8_t buf[128];
  bool eof;
  /* Exactly the CONNACK: what follows (resent messages) is the caller's. */
  size_t got = raw_read(k, fd, buf, 2, &eof, 2);
  assert_true(got == 2 && buf[0] == 0x20);
  got = raw_read(k, fd, buf + 2, buf[1], &eof, buf[1]);
  assert_int_equal(got, buf[1]);
  return fd;
}

static void raw_sub(struct bk *k, int fd, const char *filter, uint8_t qos) {
  uint8_t pkt[64];
  size_t fl = strlen(filter);
  size_t n = 0;
  pkt[n++] = 0x82;
  pkt[n++] = (uint8_t)(2 + 1 + 2 + fl + 1);
  pkt[n++] = 0;
  pkt[n++] = 9;
  pkt[n++] = 0; /* no properties */
  pkt[n++] = 0;
  pkt[n++] = (uint8_t)fl;
  memcpy(pkt + n, filter, fl);
  n += fl;
  pkt[n++] = qos;
  raw_send(fd, pkt, n);
  uint8_t buf[64];
  bool eof;
  size_t got = raw_read(k, fd, buf, sizeof(buf), &eof, 6);
  assert_true(got >= 6 && buf[0] == 0x90);
}

/* Counts PUBLISH packets in a byte stream; *dups: how many with DUP. */
static int count_publishes(const uint8_t *p, size_t n, int *dups, uint16_t *first_id) {
  int count = 0;
  size_t pos = 0;
  *dups = 0;
  while (pos + 2 <= n) {
    uint32_t rem;
    int used = cm_mqtt_varint_decode(p + pos + 1, n - pos - 1, &rem);
    if (used <= 0 || pos + 1 + (size_t)used + rem > n) break;
    if ((p[pos] >> 4) == CM_MQTT_CMD_PUBLISH) {
      if (count == 0 && first_id != NULL) {
        size_t t = pos + 1 + (size_t)used;
        size_t tl = (size_t)p[t] << 8 | p[t + 1];
        *first_id = (uint16_t)(p[t + 2 + tl] << 8 | p[t + 3 + tl]);
      }
      count++;
      if (p[pos] & 0x08) (*dups)++;
    }
    pos += 1 + (size_t)used + rem;
  }
  return count;
}

/* The in-flight window follows the client's Receive Maximum; a packet
 * above its Maximum Packet Size is not sent to it; unacknowledged ones
 * come again with DUP after a reconnect. */
static void window_size_and_resend(void **state) {
  (void)state;
  struct bk k;
  bk_start(&k, NULL);
  int fd = raw_v5(&k, "narrow", true, 2, 200, 60);
  raw_sub(&k, fd, "w", 1);
  struct cli p;
  cli_connect(&k, &p, "p", 5, true);
  char big[300];
  memset(big, 'B', sizeof(big) - 1);
  big[sizeof(big) - 1] = '\0';
  cli_pub(&p, "w", big, 1, false); /* too large for it: dropped */
  for (int i = 0; i < 5; i++) cli_pub(&p, "w", "m", 1, false);
  uint8_t buf[4096];
  bool eof;
  poll_ms(&k, 300);
  size_t n = raw_read(&k, fd, buf, sizeof(buf), &eof, 0 + 1);
  n += raw_read(&k, fd, buf + n, sizeof(buf) - n, &eof, 0 + 1);
  int dups;
  uint16_t id = 0;
  assert_int_equal(count_publishes(buf, n, &dups, &id), 2); /* the window */
  assert_int_equal(dups, 0);
  assert_true(bk_stats(&k).msgs_dropped >= 1);
  close(fd); /* gone without acks */
  poll_ms(&k, 100);
  fd = raw_v5(&k, "narrow", false, 2, 200, 60);
  poll_ms(&k, 200);
  n = raw_read(&k, fd, buf, sizeof(buf), &eof, 1);
  assert_int_equal(count_publishes(buf, n, &dups, &id), 2);
  assert_int_equal(dups, 2);
  /* PUBACK the first: the window moves on by one. */
  uint8_t ack[] = {0x40, 2, (uint8_t)(id >> 8), (uint8_t)id};
  raw_send(fd, ack, sizeof(ack));
  n = raw_read(&k, fd, buf, sizeof(buf), &eof, 1);
  assert_int_equal(count_publishes(buf, n, &dups, NULL), 1);
  assert_int_equal(dups, 0);
  close(fd);
  cli_drop(&k, &p);
  bk_stop(&k);
}

/* A QoS 2 PUBLISH sent twice (DUP) before PUBREL is delivered once. */
static void qos2_duplicates(void **state) {
  (void)state;
  struct bk k;
  bk_start(&k, NULL);
  struct cli s;
  cli_connect(&k, &s, "s", 4, true);
  cli_sub(&k, &s, "q2", 2, 0);
  int fd = raw_v5(&k, "dupper", true, 10, 1000, 0);
  static const uint8_t pub[] = {0x34, 8, 0, 2, 'q', '2', 0, 5, 0, 'x'};
  static const uint8_t dup[] = {0x3C, 8, 0, 2, 'q', '2', 0, 5, 0, 'x'};
  static const uint8_t rel[] = {0x62, 2, 0, 5};
  raw_send(fd, pub, sizeof(pub));
  raw_send(fd, dup, sizeof(dup));
  uint8_t buf[64];
  bool eof;
  raw_read(&k, fd, buf, sizeof(buf), &eof, 8);
  raw_send(fd, rel, sizeof(rel));
  size_t n = raw_read(&k, fd, buf, sizeof(buf), &eof, 4);
  assert_true(n >= 4 && buf[0] == 0x70); /* PUBCOMP */
  poll_ms(&k, 200);
  assert_int_equal(s.n, 1);
  close(fd);
  cli_drop(&k, &s);
  bk_stop(&k);
}

/* Injection (the bridge's way in) and the per-message observer. */
static int observed;
static const void *last_origin;
static void observer(void *arg, const struct cm_mqtt_broker_msg *m,
                     const struct cm_mqtt_client_info *from, const void *origin) {
  (void)arg;
  (void)m;
  (void)from;
  observed++;
  last_origin = origin;
}

static void inject_and_observe(void **state) {
  (void)state;
  struct bk k;
  struct cm_mqtt_broker_opts o = {.allow_anonymous = true, .on_message = observer};
  bk_start(&k, &o);
  struct cli s;
  cli_connect(&k, &s, "s", 5, true);
  cli_sub(&k, &s, "in/#", 1, 0);
  static int tag;
  struct cm_mqtt_broker_msg m = {.topic = cm_str_c("in/x"), .payload = cm_str_c("injected"), .qos = 1};
  assert_int_equal(cm_mqtt_broker_publish(k.b, &m, &tag), 1);
  assert_int_equal(observed, 1);
  assert_ptr_equal(last_origin, &tag);
  assert_true(cli_wait(&k, &s, 1));
  assert_string_equal(s.m[0].payload, "injected");
  m.topic = cm_str_c("in/+");
  assert_int_equal(cm_mqtt_broker_publish(k.b, &m, NULL), CM_EINVAL);
  cli_pub(&s, "in/y", "own", 0, false);
  assert_true(cli_wait(&k, &s, 2));
  assert_int_equal(observed, 2);
  assert_null(last_origin);
  cli_drop(&k, &s);
  bk_stop(&k);
}

/* paho-mqtt clients (3.1.1 subscriber, 5.0 publisher with properties). */
static void paho_clients(void **state) {
  (void)state;
  struct bk k;
  bk_start(&k, NULL);
  char port[16];
  snprintf(port, sizeof(port), "%u", k.port);
  static const char script[] =
      "import sys, time\n"
      "import paho.mqtt.client as mqtt\n"
      "from paho.mqtt.properties import Properties\n"
      "from paho.mqtt.packettypes import PacketTypes\n"
      "port = int(sys.argv[1])\n"
      "got = []\n"
      "sub = mqtt.Client(client_id='paho-sub', protocol=mqtt.MQTTv311)\n"
      "sub.on_message = lambda c, u, m: got.append((m.topic, m.payload, m.qos))\n"
      "sub.connect('127.0.0.1', port)\n"
      "sub.subscribe('paho/#', qos=2)\n"
      "sub.loop_start()\n"
      "time.sleep(0.5)\n"
      "pub = mqtt.Client(client_id='paho-pub', protocol=mqtt.MQTTv5)\n"
      "resp = []\n"
      "pub.on_message = lambda c, u, m: resp.append(m)\n"
      "pub.connect('127.0.0.1', port)\n"
      "pub.subscribe('paho/#', options=mqtt.SubscribeOptions(qos=1))\n"
      "pub.loop_start()\n"
      "time.sleep(0.3)\n"
      "props = Properties(PacketTypes.PUBLISH)\n"
      "props.ResponseTopic = 'reply/here'\n"
      "props.CorrelationData = b'corr'\n"
      "props.UserProperty = ('who', 'paho')\n"
      "for q in (0, 1, 2):\n"
      "    pub.publish('paho/t', b'q%d' % q, qos=q, properties=props).wait_for_publish()\n"
      "time.sleep(1.0)\n"
      "ok = sorted(p for _, p, _ in got) == [b'q0', b'q1', b'q2']\n"
      "m = resp[0] if resp else None\n"
      "ok = ok and m is not None and m.properties.ResponseTopic == 'reply/here'\n"
      "ok = ok and m.properties.CorrelationData == b'corr'\n"
      "ok = ok and ('who', 'paho') in m.properties.UserProperty\n"
      "print('PAHO-OK' if ok else 'PAHO-FAIL %r %r' % (got, m and m.properties))\n"
      "sub.disconnect(); pub.disconnect()\n";
  const char *argv[] = {"/usr/bin/python3", "-c", script, port, NULL};
  int st;
  const char *out = peer_run_polling(&k.mgr, argv, &st);
  if (strstr(out, "PAHO-OK") == NULL) fprintf(stderr, "%s\n", out);
  assert_non_null(strstr(out, "PAHO-OK"));
  bk_stop(&k);
}

/* mqtts:// and wss:// with client certificates: the verified certificate
 * reaches authenticate, which admits the client without a user name. */
static char seen_cn[64];
static int cert_auth(void *arg, const struct cm_mqtt_client_info *who, struct cm_str pw, bool has) {
  (void)arg;
  (void)pw;
  (void)has;
  cpy(seen_cn, sizeof(seen_cn), who->cert_cn);
  return who->cert_cn.len == 8 && memcmp(who->cert_cn.buf, "device-1", 8) == 0
             ? 0
             : CM_MQTT_RC_NOT_AUTHORIZED;
}

static void tls_client_certificates(void **state) {
  (void)state;
  const long day = 86400;
  struct test_cert ca = certgen(true, "Broker CA", NULL, true, -day, day);
  struct test_cert srv = certgen(true, "127.0.0.1", &ca, false, -day, day);
  char *chain = certgen_concat(srv.cert_pem, ca.cert_pem);
  struct test_cert dev = certgen(true, "device-1", &ca, false, -day, day);
  struct bk k;
  struct cm_mqtt_broker_opts o = {.authenticate = cert_auth};
  bk_start(&k, &o);
  struct cm_tls_opts so = {.ca = cm_str_c(ca.cert_pem), .cert = cm_str_c(chain),
                           .key = cm_str_c(srv.key_pem)};
  struct cm_conn *l1 = cm_mqtt_broker_listen(k.b, "mqtts://127.0.0.1:0", &so);
  struct cm_conn *l2 = cm_mqtt_broker_listen(k.b, "wss://127.0.0.1:0/mqtt", &so);
  assert_non_null(l1);
  assert_non_null(l2);
  assert_null(cm_mqtt_broker_listen(k.b, "mqtts://127.0.0.1:0", NULL)); /* TLS needs options */
  struct cm_tls_opts co = {.ca = cm_str_c(ca.cert_pem), .cert = cm_str_c(dev.cert_pem),
                           .key = cm_str_c(dev.key_pem), .name = cm_str_c("127.0.0.1")};
  char url[2][80];
  snprintf(url[0], sizeof(url[0]), "mqtts://127.0.0.1:%u", l1->loc.port);
  snprintf(url[1], sizeof(url[1]), "wss://127.0.0.1:%u/mqtt", l2->loc.port);
  struct cli c[2];
  for (int i = 0; i < 2; i++) {
    memset(&c[i], 0, sizeof(c[i]));
    struct cm_mqtt_opts mo = {.client_id = cm_str_c(i == 0 ? "tls" : "wss"), .version = 5,
                              .clean = true, .tls = &co};
    c[i].c = cm_mqtt_connect(&k.mgr, url[i], &mo, cli_fn, &c[i]);
    assert_non_null(c[i].c);
    assert_true(poll_for(&k, &c[i].open));
  }
  assert_string_equal(seen_cn, "device-1");
  cli_sub(&k, &c[1], "secure", 1, 0);
  cli_pub(&c[0], "secure", "over tls", 1, false);
  assert_true(cli_wait(&k, &c[1], 1));
  assert_string_equal(c[1].m[0].payload, "over tls");
  /* Without a certificate (and without a user name): anonymous, refused. */
  struct cli anon;
  memset(&anon, 0, sizeof(anon));
  struct cm_tls_opts no_cert = {.ca = cm_str_c(ca.cert_pem), .name = cm_str_c("127.0.0.1")};
  struct cm_mqtt_opts mo = {.client_id = cm_str_c("anon"), .version = 5, .clean = true,
                            .tls = &no_cert};
  anon.c = cm_mqtt_connect(&k.mgr, url[0], &mo, cli_fn, &anon);
  poll_for(&k, &anon.closed);
  assert_false(anon.open);
  cli_drop(&k, &c[0]);
  cli_drop(&k, &c[1]);
  bk_stop(&k);
  certgen_free(&dev);
  certgen_free(&srv);
  certgen_free(&ca);
  free(chain);
}

/* Sessions expire: v5 after their interval, 3.1.1 clean_session=0 ones
 * after the configured cap; the store hears of it. */
static int deleted;
static void s_delete(void *arg, struct cm_str id) {
  (void)arg;
  (void)id;
  deleted++;
}

static void session_expiry(void **state) {
  (void)state;
  struct bk k;
  struct cm_mqtt_broker_opts o = {.allow_anonymous = true, .max_session_expiry_s = 1};
  o.store.session_delete = s_delete;
  bk_start(&k, &o);
  struct cli c;
  struct cm_mqtt_prop exp = {.id = CM_MQTT_PROP_SESSION_EXPIRY_INTERVAL, .iv = 3600};
  struct cm_mqtt_opts mo = {.client_id = cm_str_c("v5s"), .version = 5, .clean = true,
                            .props = &exp, .num_props = 1};
  cli_connect_opts(&k, &c, &mo); /* capped to 1 s */
  cli_drop(&k, &c);
  cli_connect(&k, &c, "v3s", 4, false);
  cli_drop(&k, &c);
  assert_int_equal(bk_stats(&k).clients_disconnected, 2);
  poll_ms(&k, 1500);
  assert_int_equal(bk_stats(&k).clients_disconnected, 0);
  assert_int_equal(deleted, 2);
  mo.clean = false;
  cli_connect_opts(&k, &c, &mo);
  assert_false(c.session_present);
  cli_drop(&k, &c);
  bk_stop(&k);
}

/* Retained and queued messages stay within their configured bounds. */
static void storage_bounds(void **state) {
  (void)state;
  struct bk k;
  struct cm_mqtt_broker_opts o = {.allow_anonymous = true, .no_sys = true, .max_retained = 2,
                                  .max_queued = 3};
  bk_start(&k, &o);
  const char *t[] = {"r/1", "r/2", "r/3"};
  for (int i = 0; i < 3; i++) {
    struct cm_mqtt_broker_msg m = {.topic = cm_str_c(t[i]), .payload = cm_str_c("v"), .retain = true};
    assert_int_equal(cm_mqtt_broker_publish(k.b, &m, NULL), 0);
  }
  assert_int_equal(bk_stats(&k).retained, 2);
  struct cli c;
  cli_connect(&k, &c, "slowpoke", 4, false);
  cli_sub(&k, &c, "q", 1, 0);
  cli_drop(&k, &c);
  for (int i = 0; i < 5; i++) {
    struct cm_mqtt_broker_msg m = {.topic = cm_str_c("q"), .payload = cm_str_c("x"), .qos = 1};
    cm_mqtt_broker_publish(k.b, &m, NULL);
  }
  assert_int_equal(bk_stats(&k).queued, 3);
  assert_int_equal(bk_stats(&k).msgs_dropped, 2);
  cli_connect(&k, &c, "slowpoke", 4, false);
  assert_true(cli_wait(&k, &c, 3));
  poll_ms(&k, 100);
  assert_int_equal(c.n, 3);
  cli_drop(&k, &c);
  bk_stop(&k);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(persistence_hooks),     cmocka_unit_test(message_expiry),
      cmocka_unit_test(topic_aliases),         cmocka_unit_test(window_size_and_resend),
      cmocka_unit_test(qos2_duplicates),       cmocka_unit_test(inject_and_observe),
      cmocka_unit_test(paho_clients),          cmocka_unit_test(tls_client_certificates),
      cmocka_unit_test(session_expiry),        cmocka_unit_test(storage_bounds),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
