/* MQTT connections end to end: our client against a real mosquitto (3.1.1
 * and 5.0, QoS 0/1/2, retained messages, wills, keepalive, persistent
 * sessions), against scripted TCP peers that misbehave, and our low-level
 * server (cm_mqtt_listen, and MQTT over our own WebSocket server) driven by
 * our client. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>

#include "certgen.h"
#include "peerproc.h"
#include "testutil.h"

static unsigned broker_port, tls_port;
static pid_t broker_pid;
static char scratch[64];
static const char *const scratch_files[] = {"mosquitto.conf", "mosquitto.log", "ca.pem",
                                            "server.pem", "server.key"};
static struct test_cert ca, leaf;

static void write_file(const char *dir, const char *name, const char *text) {
  char path[300];
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  if (f != NULL) {
    fputs(text, f);
    fclose(f);
  }
}

static int start_broker(void **state) {
  (void)state;
  char exe[256];
  if (peer_find_exe("mosquitto", exe, sizeof(exe)) == NULL) {
    fprintf(stderr, "test_mqtt_client: mosquitto not installed (scripts/deps.sh installs it)\n");
    return -1;
  }
  snprintf(scratch, sizeof(scratch), "/tmp/cm-test-mqtt-XXXXXX");
  if (mkdtemp(scratch) == NULL) return -1;
  unsigned port = peer_free_port(), tport = peer_free_port();
  char conf[300], log[300];
  snprintf(conf, sizeof(conf), "%s/mosquitto.conf", scratch);
  snprintf(log, sizeof(log), "%s/mosquitto.log", scratch);
  const long day = 86400;
  ca = certgen(true, "MQTT Test CA", NULL, true, -day, day);
  leaf = certgen(true, "localhost", &ca, false, -day, day);
  write_file(scratch, "ca.pem", ca.cert_pem);
  char *chain = certgen_concat(leaf.cert_pem, ca.cert_pem); /* the whole chain */
  write_file(scratch, "server.pem", chain);
  free(chain);
  write_file(scratch, "server.key", leaf.key_pem);
  FILE *f = fopen(conf, "w");
  if (f == NULL || port == 0 || tport == 0 || tport == port) return -1;
  fprintf(f,
          /* user root: as root, mosquitto would otherwise switch to its own
           * user, which cannot read the key in our 0700 scratch directory. */
          "per_listener_settings false\nallow_anonymous true\npersistence false\nuser root\n"
          "listener %u 127.0.0.1\n"
          "listener %u 127.0.0.1\ncafile %s/ca.pem\ncertfile %s/server.pem\nkeyfile %s/server.key\n",
          port, tport, scratch, scratch, scratch);
  fclose(f);
  char *argv[] = {exe, "-c", conf, NULL};
  broker_pid = peer_spawn(argv, log);
  if (!peer_wait_tcp_listening(port, broker_pid, 5000)) {
    fprintf(stderr, "test_mqtt_client: mosquitto did not start (see %s)\n", log);
    peer_stop(broker_pid);
    return -1;
  }
  (void)peer_wait_tcp_listening(tport, broker_pid, 5000); /* the TLS tests say if it is not */
  broker_port = port;
  tls_port = tport;
  return 0;
}

static int stop_broker(void **state) {
  (void)state;
  peer_stop(broker_pid);
  if (scratch[0] != '\0') peer_rm_dir(scratch, scratch_files, 5);
  certgen_free(&leaf);
  certgen_free(&ca);
  return 0;
}

/* ------------------------------------------------------------ recorder */
#define MAX_MSGS 16

struct got_msg {
  char topic[128];
  uint8_t *data;
  size_t len;
  uint8_t qos;
  bool retain, dup;
  bool by_alias; /* the packet carried no topic name, only an alias */
  uint16_t id;
};

/* What one connection saw. */
struct rec {
  bool opened, closed;
  int open_code;
  char error[256];
  int nerrors;
  int cmds[16];        /* packets received, by type */
  uint8_t last_ack[16];/* ack field of the last packet of each type */
  bool session_present;
  struct got_msg msgs[MAX_MSGS];
  int nmsgs;
  struct cm_conn *c;
  bool answer_server;  /* act as a tiny broker (server side tests) */
};

static void rec_free(struct rec *r) {
  for (int i = 0; i < r->nmsgs && i < MAX_MSGS; i++) free(r->msgs[i].data);
  memset(r, 0, sizeof(*r));
}

static void handler(struct cm_conn *c, int ev, void *ev_data) {
  struct rec *r = c->fn_data;
  if (r == NULL || c->is_listening) return;
  switch (ev) {
    case CM_EV_MQTT_OPEN:
      r->opened = true;
      r->open_code = *(int *)ev_data;
      break;
    case CM_EV_MQTT_CMD: {
      struct cm_mqtt_msg *mm = ev_data;
      r->cmds[mm->cmd & 15]++;
      r->last_ack[mm->cmd & 15] = mm->ack;
      if (mm->cmd == CM_MQTT_CMD_CONNACK) r->session_present = mm->session_present;
      break;
    }
    case CM_EV_MQTT_MSG: {
      struct cm_mqtt_msg *mm = ev_data;
      if (r->nmsgs < MAX_MSGS) {
        struct got_msg *g = &r->msgs[r->nmsgs];
        snprintf(g->topic, sizeof(g->topic), "%.*s", (int)mm->topic.len, mm->topic.buf);
        g->data = malloc(mm->data.len + 1);
        memcpy(g->data, mm->data.buf, mm->data.len);
        g->len = mm->data.len;
        g->qos = mm->qos;
        g->retain = mm->retain;
        g->dup = mm->dup;
        g->id = mm->id;
        g->by_alias = mm->pkt->topic.len == 0;
      }
      r->nmsgs++;
      break;
    }
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

static void broker_url(char *buf, size_t len) {
  snprintf(buf, len, "mqtt://127.0.0.1:%u", broker_port);
}

static struct cm_conn *connect_v(struct cm_mgr *mgr, struct rec *r, uint8_t version,
                                 struct cm_mqtt_opts *o) {
  char url[64];
  broker_url(url, sizeof(url));
  struct cm_mqtt_opts def = {0};
  if (o == NULL) o = &def;
  o->version = version;
  if (o->client_id.len == 0 && o->session == NULL) o->clean = true;
  r->c = cm_mqtt_connect(mgr, url, o, handler, r);
  assert_non_null(r->c);
  assert_true(wait_for(mgr, &r->opened, 5000));
  assert_int_equal(r->open_code, 0);
  return r->c;
}

static void unique_topic(char *buf, size_t len, const char *what) {
  char rnd[9];
  cm_random_str(rnd, 8);
  rnd[8] = '\0';
  snprintf(buf, len, "cmtest/%s/%s", what, rnd);
}

/* ------------------------------------------------------- against mosquitto */

static void connects_v4_and_v5(void **state) {
  (void)state;
  for (uint8_t v = 4; v <= 5; v++) {
    struct cm_mgr mgr;
    struct rec r = {0};
    assert_int_equal(cm_mgr_init(&mgr), 0);
    connect_v(&mgr, &r, v, NULL);
    assert_int_equal(r.cmds[CM_MQTT_CMD_CONNACK], 1);
    assert_int_equal(cm_mqtt_version(r.c), v);
    assert_true(cm_mqtt_disconnect(r.c) == 0);
    assert_true(wait_for(&mgr, &r.closed, 5000));
    assert_int_equal(r.nerrors, 0);
    cm_mgr_free(&mgr);
    rec_free(&r);
  }
}

/* mqtts:// against mosquitto's TLS listener: our CA trusted, the host name
 * checked; a client that does not trust the CA gets a TLS ERROR. */
static void tls_round_trip(void **state) {
  (void)state;
  struct cm_mgr mgr;
  struct rec r = {0}, bad = {0};
  assert_int_equal(cm_mgr_init(&mgr), 0);
  char url[64];
  snprintf(url, sizeof(url), "mqtts://localhost:%u", tls_port);
  struct cm_tls_opts tls = {.ca = cm_str_c(ca.cert_pem)};
  struct cm_mqtt_opts o = {.clean = true, .version = 5, .tls = &tls};
  r.c = cm_mqtt_connect(&mgr, url, &o, handler, &r);
  assert_non_null(r.c);
  assert_true(wait_for(&mgr, &r.opened, 5000));
  assert_true(r.c->is_tls);
  char topic[64];
  unique_topic(topic, sizeof(topic), "tls");
  assert_true(cm_mqtt_sub(r.c, cm_str_c(topic), 1) > 0);
  assert_true(cm_mqtt_pub(r.c, cm_str_c(topic), cm_str_c("secret"), 1, false) > 0);
  assert_true(wait_count(&mgr, &r.nmsgs, 1, 5000));
  assert_int_equal(r.msgs[0].len, 6);
  assert_memory_equal(r.msgs[0].data, "secret", 6);
  struct cm_mqtt_opts o2 = {.clean = true}; /* system CA store: untrusted */
  bad.c = cm_mqtt_connect(&mgr, url, &o2, handler, &bad);
  if (!wait_for(&mgr, &bad.closed, 5000)) fail_msg("errors %d: %s", bad.nerrors, bad.error);
  assert_false(bad.opened);
  assert_int_equal(bad.nerrors, 1); /* and closed at once, not at the CONNACK deadline */
  /* Bad options: the ERROR comes from the loop, not from inside the call. */
  struct rec pem = {0};
  struct cm_tls_opts junk = {.ca = cm_str_c("not a certificate")};
  struct cm_mqtt_opts o3 = {.clean = true, .tls = &junk};
  pem.c = cm_mqtt_connect(&mgr, url, &o3, handler, &pem);
  assert_non_null(pem.c);
  assert_int_equal(pem.nerrors, 0);
  assert_true(wait_for(&mgr, &pem.closed, 5000));
  assert_true(pem.nerrors >= 1);
  cm_mgr_free(&mgr);
  rec_free(&r);
  rec_free(&bad);
  rec_free(&pem);
}

/* One client subscribes to its own topic and publishes binary payloads
 * (every byte value, empty, 256 KiB) with each QoS; every message comes
 * back exactly once and every flow completes. */
static void qos_round_trips(void **state) {
  (void)state;
  size_t big_len = 256 * 1024;
  uint8_t *big = malloc(big_len);
  for (size_t i = 0; i < big_len; i++) big[i] = (uint8_t)(i * 7 + i / 251);
  uint8_t all[256];
  for (int i = 0; i < 256; i++) all[i] = (uint8_t)i;
  struct cm_str payloads[3] = {cm_str_n((const char *)all, sizeof(all)), cm_str_n("", 0),
                               cm_str_n((const char *)big, big_len)};
  for (uint8_t v = 4; v <= 5; v++) {
    for (int qos = 0; qos <= 2; qos++) {
      struct cm_mgr mgr;
      struct rec r = {0};
      assert_int_equal(cm_mgr_init(&mgr), 0);
      connect_v(&mgr, &r, v, NULL);
      char topic[64];
      unique_topic(topic, sizeof(topic), "qos");
      int sid = cm_mqtt_sub(r.c, cm_str_c(topic), 2);
      assert_true(sid > 0);
      assert_true(wait_count(&mgr, &r.cmds[CM_MQTT_CMD_SUBACK], 1, 5000));
      assert_int_equal(r.last_ack[CM_MQTT_CMD_SUBACK], 2);
      for (int i = 0; i < 3; i++) {
        int id = cm_mqtt_pub(r.c, cm_str_c(topic), payloads[i], qos, false);
        assert_true(qos == 0 ? id == 0 : id > 0);
      }
      assert_true(wait_count(&mgr, &r.nmsgs, 3, 10000));
      for (int i = 0; i < 3; i++) {
        assert_string_equal(r.msgs[i].topic, topic);
        assert_int_equal(r.msgs[i].len, payloads[i].len);
        if (payloads[i].len > 0) assert_memory_equal(r.msgs[i].data, payloads[i].buf, payloads[i].len);
        assert_int_equal(r.msgs[i].qos, qos);
        assert_false(r.msgs[i].dup);
      }
      /* Our flows finished: acks arrived for every message. */
      if (qos == 1) assert_true(wait_count(&mgr, &r.cmds[CM_MQTT_CMD_PUBACK], 3, 5000));
      if (qos == 2) assert_true(wait_count(&mgr, &r.cmds[CM_MQTT_CMD_PUBCOMP], 3, 5000));
      if (qos == 2) assert_true(wait_count(&mgr, &r.cmds[CM_MQTT_CMD_PUBREL], 3, 5000)); /* the broker's side */
      for (int i = 0; i < 20; i++) cm_mgr_poll(&mgr, 5);
      assert_int_equal(r.nmsgs, 3); /* no duplicates */
      assert_int_equal(r.nerrors, 0);
      cm_mqtt_disconnect(r.c);
      assert_true(wait_for(&mgr, &r.closed, 5000));
      cm_mgr_free(&mgr);
      rec_free(&r);
    }
  }
  free(big);
}

static void retained_message_on_subscribe(void **state) {
  (void)state;
  for (uint8_t v = 4; v <= 5; v++) {
    struct cm_mgr mgr;
    struct rec a = {0}, b = {0};
    assert_int_equal(cm_mgr_init(&mgr), 0);
    char topic[64];
    unique_topic(topic, sizeof(topic), "retain");
    connect_v(&mgr, &a, v, NULL);
    assert_true(cm_mqtt_pub(a.c, cm_str_c(topic), cm_str_c("kept"), 1, true) > 0);
    assert_true(wait_count(&mgr, &a.cmds[CM_MQTT_CMD_PUBACK], 1, 5000));
    connect_v(&mgr, &b, v, NULL);
    assert_true(cm_mqtt_sub(b.c, cm_str_c(topic), 1) > 0);
    assert_true(wait_count(&mgr, &b.nmsgs, 1, 5000));
    assert_true(b.msgs[0].retain);
    assert_int_equal(b.msgs[0].len, 4);
    assert_memory_equal(b.msgs[0].data, "kept", 4);
    /* Clear it. */
    cm_mqtt_pub(a.c, cm_str_c(topic), cm_str_n("", 0), 1, true);
    assert_true(wait_count(&mgr, &a.cmds[CM_MQTT_CMD_PUBACK], 2, 5000));
    cm_mgr_free(&mgr);
    rec_free(&a);
    rec_free(&b);
  }
}

static void will_on_dropped_connection(void **state) {
  (void)state;
  for (uint8_t v = 4; v <= 5; v++) {
    struct cm_mgr mgr;
    struct rec a = {0}, b = {0};
    assert_int_equal(cm_mgr_init(&mgr), 0);
    char topic[64];
    unique_topic(topic, sizeof(topic), "will");
    connect_v(&mgr, &b, v, NULL);
    assert_true(cm_mqtt_sub(b.c, cm_str_c(topic), 1) > 0);
    assert_true(wait_count(&mgr, &b.cmds[CM_MQTT_CMD_SUBACK], 1, 5000));
    struct cm_mqtt_prop wp[] = {{.id = CM_MQTT_PROP_CONTENT_TYPE, .val = cm_str_c("text/plain")}};
    struct cm_mqtt_opts o = {0};
    o.will_topic = cm_str_c(topic);
    o.will_message = cm_str_c("gone");
    o.will_qos = 1;
    if (v == 5) {
      o.will_props = wp;
      o.num_will_props = 1;
    }
    connect_v(&mgr, &a, v, &o);
    cm_close(a.c); /* no DISCONNECT: the broker publishes the will */
    assert_true(wait_count(&mgr, &b.nmsgs, 1, 5000));
    assert_string_equal(b.msgs[0].topic, topic);
    assert_int_equal(b.msgs[0].len, 4);
    assert_memory_equal(b.msgs[0].data, "gone", 4);
    cm_mgr_free(&mgr);
    rec_free(&a);
    rec_free(&b);
  }
}

static void keepalive_pings_when_idle(void **state) {
  (void)state;
  struct cm_mgr mgr;
  struct rec r = {0};
  assert_int_equal(cm_mgr_init(&mgr), 0);
  struct cm_mqtt_opts o = {0};
  o.keepalive = 1;
  connect_v(&mgr, &r, 4, &o);
  assert_true(wait_count(&mgr, &r.cmds[CM_MQTT_CMD_PINGRESP], 2, 5000));
  assert_false(r.closed);
  assert_int_equal(r.nerrors, 0);
  cm_mgr_free(&mgr);
  rec_free(&r);
}

/* Subscribe with a persistent session, go away, messages are published
 * meanwhile, come back with the same id: they arrive. */
static void persistent_session_redelivers(void **state) {
  (void)state;
  for (uint8_t v = 4; v <= 5; v++) {
    struct cm_mgr mgr;
    struct rec s1 = {0}, s2 = {0}, p = {0};
    assert_int_equal(cm_mgr_init(&mgr), 0);
    char topic[64], id[32];
    unique_topic(topic, sizeof(topic), "persist");
    snprintf(id, sizeof(id), "cmtest-p%u-%u", (unsigned)v, (unsigned)getpid());
    struct cm_mqtt_session *sess = cm_mqtt_session_new(NULL);
    struct cm_mqtt_prop expiry = {.id = CM_MQTT_PROP_SESSION_EXPIRY_INTERVAL, .iv = 60};
    struct cm_mqtt_opts o = {0};
    o.client_id = cm_str_c(id);
    /* 3.1.1 keeps a session only without clean session; 5.0 keeps it
     * for the Session Expiry Interval even with clean start. */
    o.clean = v == 5;
    o.session = sess;
    if (v == 5) {
      o.props = &expiry;
      o.num_props = 1;
    }
    connect_v(&mgr, &s1, v, &o);
    assert_true(cm_mqtt_sub(s1.c, cm_str_c(topic), 1) > 0);
    assert_true(wait_count(&mgr, &s1.cmds[CM_MQTT_CMD_SUBACK], 1, 5000));
    cm_mqtt_disconnect(s1.c);
    assert_true(wait_for(&mgr, &s1.closed, 5000));

    connect_v(&mgr, &p, v, NULL);
    for (int i = 0; i < 3; i++) {
      char msg[8];
      snprintf(msg, sizeof(msg), "m%d", i);
      assert_true(cm_mqtt_pub(p.c, cm_str_c(topic), cm_str_c(msg), 1, false) > 0);
    }
    assert_true(wait_count(&mgr, &p.cmds[CM_MQTT_CMD_PUBACK], 3, 5000));

    o.clean = false; /* ... and come back to it */
    connect_v(&mgr, &s2, v, &o);
    assert_true(s2.session_present);
    assert_true(wait_count(&mgr, &s2.nmsgs, 3, 5000));
    for (int i = 0; i < 3; i++) {
      char msg[8];
      snprintf(msg, sizeof(msg), "m%d", i);
      assert_int_equal(s2.msgs[i].len, 2);
      assert_memory_equal(s2.msgs[i].data, msg, 2);
    }
    cm_mqtt_disconnect(s2.c);
    assert_true(wait_for(&mgr, &s2.closed, 5000));
    cm_mgr_free(&mgr);
    cm_mqtt_session_free(sess);
    rec_free(&s1);
    rec_free(&s2);
    rec_free(&p);
  }
}

/* v5 extras through the broker: user properties, response topic,
 * correlation data and a subscription identifier reach the subscriber;
 * topic aliases go out when the broker allows them. */
static void v5_properties_round_trip(void **state) {
  (void)state;
  struct cm_mgr mgr;
  struct rec r = {0};
  assert_int_equal(cm_mgr_init(&mgr), 0);
  struct cm_mqtt_prop cp[] = {{.id = CM_MQTT_PROP_TOPIC_ALIAS_MAXIMUM, .iv = 10}};
  struct cm_mqtt_opts o = {0};
  o.props = cp;
  o.num_props = 1;
  connect_v(&mgr, &r, 5, &o);
  char topic[64];
  unique_topic(topic, sizeof(topic), "props");
  struct cm_mqtt_sub_opts so = {.topic = cm_str_c(topic), .qos = 1};
  assert_true(cm_mqtt_subscribe(r.c, &so, 1, 42, NULL, 0) > 0);
  assert_true(wait_count(&mgr, &r.cmds[CM_MQTT_CMD_SUBACK], 1, 5000));
  struct cm_mqtt_prop pp[] = {
      {.id = CM_MQTT_PROP_USER_PROPERTY, .key = cm_str_c("k"), .val = cm_str_c("v")},
      {.id = CM_MQTT_PROP_RESPONSE_TOPIC, .val = cm_str_c("reply/here")},
      {.id = CM_MQTT_PROP_CORRELATION_DATA, .val = cm_str_n("\x00\x01", 2)},
      {.id = CM_MQTT_PROP_MESSAGE_EXPIRY_INTERVAL, .iv = 30},
  };
  struct cm_mqtt_pub_opts po = {.topic = cm_str_c(topic), .message = cm_str_c("hello"), .qos = 1,
                                .props = pp, .num_props = 4};
  assert_true(cm_mqtt_publish(r.c, &po) > 0);
  po.qos = 0;
  po.topic_alias = true;
  assert_int_equal(cm_mqtt_publish(r.c, &po), 0);
  assert_int_equal(cm_mqtt_publish(r.c, &po), 0); /* by alias alone */
  assert_true(wait_count(&mgr, &r.nmsgs, 3, 5000));
  for (int i = 0; i < 3; i++) assert_string_equal(r.msgs[i].topic, topic);
  assert_int_equal(r.nerrors, 0);
  cm_mgr_free(&mgr);
  rec_free(&r);
}

/* A capture of the last message's properties, checked in the handler. */
static int props_seen;
static void props_handler(struct cm_conn *c, int ev, void *ev_data) {
  if (ev == CM_EV_MQTT_MSG) {
    struct cm_mqtt_msg *mm = ev_data;
    struct cm_mqtt_prop p;
    int ok = 0;
    if (cm_mqtt_prop_find(mm->props, CM_MQTT_PROP_USER_PROPERTY, &p) && p.key.len == 1 && p.key.buf[0] == 'k') ok++;
    if (cm_mqtt_prop_find(mm->props, CM_MQTT_PROP_RESPONSE_TOPIC, &p) && p.val.len == 10) ok++;
    if (cm_mqtt_prop_find(mm->props, CM_MQTT_PROP_CORRELATION_DATA, &p) && p.val.len == 2) ok++;
    if (cm_mqtt_prop_find(mm->props, CM_MQTT_PROP_SUBSCRIPTION_IDENTIFIER, &p) && p.iv == 42) ok++;
    if (ok == 4) props_seen++;
  }
  handler(c, ev, ev_data);
}

static void v5_properties_reach_the_handler(void **state) {
  (void)state;
  struct cm_mgr mgr;
  struct rec r = {0};
  assert_int_equal(cm_mgr_init(&mgr), 0);
  char url[64];
  broker_url(url, sizeof(url));
  struct cm_mqtt_opts o = {.version = 5, .clean = true};
  r.c = cm_mqtt_connect(&mgr, url, &o, props_handler, &r);
  assert_true(wait_for(&mgr, &r.opened, 5000));
  char topic[64];
  unique_topic(topic, sizeof(topic), "props2");
  struct cm_mqtt_sub_opts so = {.topic = cm_str_c(topic), .qos = 1};
  assert_true(cm_mqtt_subscribe(r.c, &so, 1, 42, NULL, 0) > 0);
  assert_true(wait_count(&mgr, &r.cmds[CM_MQTT_CMD_SUBACK], 1, 5000));
  struct cm_mqtt_prop pp[] = {
      {.id = CM_MQTT_PROP_USER_PROPERTY, .key = cm_str_c("k"), .val = cm_str_c("v")},
      {.id = CM_MQTT_PROP_RESPONSE_TOPIC, .val = cm_str_c("reply/here")},
      {.id = CM_MQTT_PROP_CORRELATION_DATA, .val = cm_str_n("\x00\x01", 2)},
  };
  struct cm_mqtt_pub_opts po = {.topic = cm_str_c(topic), .message = cm_str_c("x"), .qos = 1,
                                .props = pp, .num_props = 3};
  props_seen = 0;
  assert_true(cm_mqtt_publish(r.c, &po) > 0);
  assert_true(wait_count(&mgr, &r.nmsgs, 1, 5000));
  assert_int_equal(props_seen, 1);
  cm_mgr_free(&mgr);
  rec_free(&r);
}

/* ------------------------------------------------------ scripted peers */

/* A raw TCP server that answers the first bytes it gets (a CONNECT) with a
 * script, and records everything the client sends. */
struct script {
  const uint8_t *reply;
  size_t reply_len;
  uint8_t got[4096];
  size_t got_len;
  bool replied;
  bool peer_closed;
  struct cm_conn *conn; /* the server side, once it has read */
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

/* Our client (version v, max packet size maxp) against a peer that sends
 * reply after the CONNECT; returns the ERROR text. */
static void run_script(uint8_t v, uint32_t maxp, const void *reply, size_t len, struct rec *r,
                       struct script *s) {
  struct cm_mgr mgr;
  assert_int_equal(cm_mgr_init(&mgr), 0);
  memset(s, 0, sizeof(*s));
  s->reply = reply;
  s->reply_len = len;
  struct cm_conn *l = cm_listen(&mgr, "tcp://127.0.0.1:0", script_fn, s);
  assert_non_null(l);
  char url[64];
  snprintf(url, sizeof(url), "mqtt://127.0.0.1:%u", l->loc.port);
  struct cm_mqtt_opts o = {.version = v, .clean = true};
  o.limits.max_packet_size = maxp;
  r->c = cm_mqtt_connect(&mgr, url, &o, handler, r);
  assert_non_null(r->c);
  assert_true(wait_for(&mgr, &r->closed, 5000));
  for (int i = 0; i < 10; i++) cm_mgr_poll(&mgr, 5);
  cm_mgr_free(&mgr);
}

static const uint8_t connack_v4[] = {0x20, 0x02, 0x00, 0x00};
static const uint8_t connack_v5[] = {0x20, 0x03, 0x00, 0x00, 0x00};

static void malformed_input_gives_error_and_close(void **state) {
  (void)state;
  struct {
    const char *name;
    uint8_t bytes[64];
    size_t len;
    uint32_t maxp;
    const char *want; /* in the ERROR text */
    uint8_t reason;   /* v5 DISCONNECT reason expected */
    uint8_t b5[16];   /* the v5 form when it differs */
    size_t len5;
  } cases[] = {
      {"bad remaining length", {0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01}, 6, 0, "(0x81)", 0x81, {0}, 0},
      {"invalid UTF-8 topic", {0x30, 0x05, 0x00, 0x02, 0xC0, 0xAF, 'x'}, 7, 0, "(0x81)", 0x81, {0}, 0},
      {"NUL in topic", {0x30, 0x05, 0x00, 0x02, 'a', 0x00, 'x'}, 7, 0, "(0x81)", 0x81, {0}, 0},
      {"wildcard in PUBLISH topic", {0x30, 0x05, 0x00, 0x02, 'a', '#', 'x'}, 7, 0, "(0x90)", 0x90, {0}, 0},
      {"oversized packet", {0x30, 0x80, 0x08, 0x00, 0x01, 'a'}, 6, 512, "(0x95)", 0x95, {0}, 0},
      {"reserved type 0", {0x00, 0x00}, 2, 0, "(0x81)", 0x81, {0}, 0},
      {"SUBSCRIBE to a client", {0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 'a', 0x00}, 8, 0, "(0x82)", 0x82,
       {0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 'a', 0x00}, 9},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    for (uint8_t v = 4; v <= 5; v++) {
      uint8_t reply[80];
      const uint8_t *ack = v == 5 ? connack_v5 : connack_v4;
      size_t cl = v == 5 ? sizeof(connack_v5) : sizeof(connack_v4);
      memcpy(reply, ack, cl);
      memcpy(reply + cl, cases[i].bytes, cases[i].len);
      struct rec r = {0};
      struct script s;
      size_t n = cl + cases[i].len;
      if (v == 5 && cases[i].len5 > 0) {
        memcpy(reply + cl, cases[i].b5, cases[i].len5);
        n = cl + cases[i].len5;
      }
      if (v == 5 && reply[cl] == 0x30 && cases[i].maxp == 0 && reply[cl + 1] == 0x05) {
        /* A v5 PUBLISH (2-byte topic, 1-byte payload) carries a property
         * length after the topic: an empty block. */
        reply[cl + 1] = 0x06;
        memmove(reply + cl + 7, reply + cl + 6, 1);
        reply[cl + 6] = 0x00;
        n++;
      }
      run_script(v, cases[i].maxp, reply, n, &r, &s);
      if (strstr(r.error, cases[i].want) == NULL)
        fail_msg("%s (v%u): ERROR \"%s\", wanted %s", cases[i].name, v, r.error, cases[i].want);
      assert_true(r.opened);
      assert_true(r.closed);
      assert_true(s.peer_closed);
      if (v == 5) {
        /* The last thing the client sent: DISCONNECT with the reason. */
        assert_true(s.got_len >= 3);
        assert_int_equal(s.got[s.got_len - 3], 0xE0);
        assert_int_equal(s.got[s.got_len - 1], cases[i].reason);
      }
      rec_free(&r);
    }
  }
}

static void refusal_is_a_readable_error(void **state) {
  (void)state;
  static const uint8_t refuse_v4[] = {0x20, 0x02, 0x00, 0x05};
  static const uint8_t refuse_v5[] = {0x20, 0x03, 0x00, 0x87, 0x00};
  struct rec r = {0};
  struct script s;
  run_script(4, 0, refuse_v4, sizeof(refuse_v4), &r, &s);
  assert_false(r.opened);
  assert_string_equal(r.error, "MQTT: connection refused: not authorized (0x05)");
  rec_free(&r);
  run_script(5, 0, refuse_v5, sizeof(refuse_v5), &r, &s);
  assert_false(r.opened);
  assert_string_equal(r.error, "MQTT: connection refused: not authorized (0x87)");
  rec_free(&r);
}

/* Unacknowledged QoS 1 and 2 messages go out again with DUP when the
 * session is resumed (the first peer never acks; the second says "session
 * present"). */
static void resend_with_dup_on_resumed_session(void **state) {
  (void)state;
  static const uint8_t resume_v4[] = {0x20, 0x02, 0x01, 0x00};
  struct cm_mgr mgr;
  assert_int_equal(cm_mgr_init(&mgr), 0);
  struct script s1 = {.reply = connack_v4, .reply_len = sizeof(connack_v4)};
  struct script s2 = {.reply = resume_v4, .reply_len = sizeof(resume_v4)};
  struct cm_conn *l1 = cm_listen(&mgr, "tcp://127.0.0.1:0", script_fn, &s1);
  struct cm_conn *l2 = cm_listen(&mgr, "tcp://127.0.0.1:0", script_fn, &s2);
  struct cm_mqtt_session *sess = cm_mqtt_session_new(NULL);
  struct cm_mqtt_opts o = {.client_id = cm_str_c("resender"), .session = sess};
  char url[64];
  snprintf(url, sizeof(url), "mqtt://127.0.0.1:%u", l1->loc.port);
  struct rec r1 = {0}, r2 = {0};
  r1.c = cm_mqtt_connect(&mgr, url, &o, handler, &r1);
  assert_true(wait_for(&mgr, &r1.opened, 5000));
  int id1 = cm_mqtt_pub(r1.c, cm_str_c("a/b"), cm_str_c("one"), 1, false);
  int id2 = cm_mqtt_pub(r1.c, cm_str_c("a/b"), cm_str_c("two"), 2, false);
  assert_true(id1 > 0 && id2 > 0 && id1 != id2);
  for (int i = 0; i < 20; i++) cm_mgr_poll(&mgr, 5);
  cm_close(r1.c);
  assert_true(wait_for(&mgr, &r1.closed, 5000));
  assert_int_equal(cm_mqtt_session_pending(sess), 2);
  /* The same session object cannot be used twice at once, but now it is free. */
  snprintf(url, sizeof(url), "mqtt://127.0.0.1:%u", l2->loc.port);
  r2.c = cm_mqtt_connect(&mgr, url, &o, handler, &r2);
  assert_true(wait_for(&mgr, &r2.opened, 5000));
  for (int i = 0; i < 20; i++) cm_mgr_poll(&mgr, 5);
  /* s2 got: CONNECT, then PUBLISH QoS 1 with DUP (0x3A), PUBLISH QoS 2
   * with DUP (0x3C), each with its original id. */
  size_t pos = 0;
  int seen = 0;
  while (pos < s2.got_len) {
    struct cm_mqtt_packet m;
    int n = cm_mqtt_parse(s2.got + pos, s2.got_len - pos, 4, 0, &m);
    assert_true(n > 0);
    if (m.cmd == CM_MQTT_CMD_CONNECT) {
      assert_false(m.clean);
      assert_true(m.client_id.len == 8 && memcmp(m.client_id.buf, "resender", 8) == 0);
    }
    if (m.cmd == CM_MQTT_CMD_PUBLISH) {
      assert_true(m.dup);
      assert_int_equal(m.id, seen == 0 ? id1 : id2);
      assert_int_equal(m.qos, seen == 0 ? 1 : 2);
      seen++;
    }
    pos += (size_t)n;
  }
  assert_int_equal(seen, 2);
  cm_close(r2.c);
  assert_true(wait_for(&mgr, &r2.closed, 5000));
  cm_mgr_free(&mgr);
  cm_mqtt_session_free(sess);
  rec_free(&r1);
  rec_free(&r2);
}

/* Packets of a type in what a scripted peer received. */
static int count_sent(const struct script *s, uint8_t version, int cmd, uint8_t first_byte) {
  size_t pos = 0;
  int n = 0;
  while (pos < s->got_len) {
    struct cm_mqtt_packet m;
    int r = cm_mqtt_parse(s->got + pos, s->got_len - pos, version, 0, &m);
    if (r <= 0) break;
    if (m.cmd == cmd && (first_byte == 0 || s->got[pos] == first_byte)) n++;
    pos += (size_t)r;
  }
  return n;
}

static void poll_a_while(struct cm_mgr *mgr) {
  for (int i = 0; i < 30; i++) cm_mgr_poll(mgr, 5);
}

/* The broker's Receive Maximum bounds what is in flight; the rest waits
 * and goes out, in order, as acks free slots. */
static void inflight_window_follows_receive_maximum(void **state) {
  (void)state;
  static const uint8_t connack_rm2[] = {0x20, 0x06, 0x00, 0x00, 0x03, 0x21, 0x00, 0x02};
  struct cm_mgr mgr;
  assert_int_equal(cm_mgr_init(&mgr), 0);
  struct script s = {.reply = connack_rm2, .reply_len = sizeof(connack_rm2)};
  struct cm_conn *l = cm_listen(&mgr, "tcp://127.0.0.1:0", script_fn, &s);
  char url[64];
  snprintf(url, sizeof(url), "mqtt://127.0.0.1:%u", l->loc.port);
  struct rec r = {0};
  struct cm_mqtt_opts o = {.version = 5, .clean = true};
  o.limits.max_queued = 3;
  r.c = cm_mqtt_connect(&mgr, url, &o, handler, &r);
  int ids[5];
  for (int i = 0; i < 5; i++) ids[i] = cm_mqtt_pub(r.c, cm_str_c("w/x"), cm_str_c("m"), 1, false);
  /* Before CONNACK all wait: 3 queued, then the queue is full. */
  assert_true(ids[0] > 0 && ids[1] > 0 && ids[2] > 0);
  assert_int_equal(ids[3], CM_EAGAIN);
  assert_true(wait_for(&mgr, &r.opened, 5000));
  poll_a_while(&mgr);
  assert_int_equal(count_sent(&s, 5, CM_MQTT_CMD_PUBLISH, 0), 2);
  ids[3] = cm_mqtt_pub(r.c, cm_str_c("w/x"), cm_str_c("m"), 1, false);
  assert_true(ids[3] > 0);
  uint8_t puback[] = {0x40, 0x02, 0x00, (uint8_t)ids[0]};
  cm_send(s.conn, puback, sizeof(puback));
  poll_a_while(&mgr);
  assert_int_equal(count_sent(&s, 5, CM_MQTT_CMD_PUBLISH, 0), 3);
  puback[3] = (uint8_t)ids[1];
  cm_send(s.conn, puback, sizeof(puback));
  poll_a_while(&mgr);
  assert_int_equal(count_sent(&s, 5, CM_MQTT_CMD_PUBLISH, 0), 4);
  assert_int_equal(r.nerrors, 0);
  cm_mgr_free(&mgr);
  rec_free(&r);
}

/* A QoS 2 message sent again before PUBREL is acknowledged but delivered
 * once; after PUBREL the same id is a new message. */
static void qos2_duplicates_are_suppressed(void **state) {
  (void)state;
  static const uint8_t script[] = {
      0x20, 0x02, 0x00, 0x00,                               /* CONNACK */
      0x34, 0x06, 0x00, 0x01, 'q', 0x00, 0x05, '1',        /* PUBLISH QoS 2 id 5 */
      0x3C, 0x06, 0x00, 0x01, 'q', 0x00, 0x05, '1',        /* again, DUP */
      0x62, 0x02, 0x00, 0x05,                               /* PUBREL 5 */
      0x34, 0x06, 0x00, 0x01, 'q', 0x00, 0x05, '2',        /* a new message, id 5 */
  };
  struct cm_mgr mgr;
  assert_int_equal(cm_mgr_init(&mgr), 0);
  struct script s = {.reply = script, .reply_len = sizeof(script)};
  struct cm_conn *l = cm_listen(&mgr, "tcp://127.0.0.1:0", script_fn, &s);
  char url[64];
  snprintf(url, sizeof(url), "mqtt://127.0.0.1:%u", l->loc.port);
  struct rec r = {0};
  struct cm_mqtt_opts o = {.clean = true};
  r.c = cm_mqtt_connect(&mgr, url, &o, handler, &r);
  assert_true(wait_for(&mgr, &r.opened, 5000));
  poll_a_while(&mgr);
  assert_int_equal(r.nmsgs, 2);
  assert_memory_equal(r.msgs[0].data, "1", 1);
  assert_memory_equal(r.msgs[1].data, "2", 1);
  assert_int_equal(r.cmds[CM_MQTT_CMD_PUBLISH], 3);
  assert_int_equal(count_sent(&s, 4, CM_MQTT_CMD_PUBREC, 0), 3);
  assert_int_equal(count_sent(&s, 4, CM_MQTT_CMD_PUBCOMP, 0), 1);
  assert_int_equal(r.nerrors, 0);
  cm_mgr_free(&mgr);
  rec_free(&r);
}

/* A server that accepts but never answers PINGREQ: ERROR after the
 * keepalive period; one that never sends CONNACK: ERROR at the deadline. */
static void silent_peers_time_out(void **state) {
  (void)state;
  for (int which = 0; which < 2; which++) {
    struct cm_mgr mgr;
    assert_int_equal(cm_mgr_init(&mgr), 0);
    struct script s = {.reply = connack_v4, .reply_len = which == 0 ? sizeof(connack_v4) : 0};
    struct cm_conn *l = cm_listen(&mgr, "tcp://127.0.0.1:0", script_fn, &s);
    char url[64];
    snprintf(url, sizeof(url), "mqtt://127.0.0.1:%u", l->loc.port);
    struct rec r = {0};
    struct cm_mqtt_opts o = {.clean = true, .keepalive = 1};
    o.limits.connect_timeout_ms = 300;
    r.c = cm_mqtt_connect(&mgr, url, &o, handler, &r);
    assert_true(wait_for(&mgr, &r.closed, 5000));
    if (which == 0) {
      assert_true(r.opened);
      assert_non_null(strstr(r.error, "no PINGRESP"));
      assert_true(count_sent(&s, 4, CM_MQTT_CMD_PINGREQ, 0) >= 1);
    } else {
      assert_false(r.opened);
      assert_string_equal(r.error, "MQTT: no CONNACK in time");
    }
    cm_mgr_free(&mgr);
    rec_free(&r);
  }
}

/* --------------------------------------------------- our own server side */

/* A tiny broker on cm_mqtt_listen, the original's low-level pattern:
 * answers CONNECT, SUBSCRIBE and PINGREQ, echoes every PUBLISH back to the
 * same connection. */
static void tiny_broker(struct cm_conn *c, int ev, void *ev_data) {
  if (ev == CM_EV_MQTT_CMD) {
    struct cm_mqtt_msg *mm = ev_data;
    if (mm->cmd == CM_MQTT_CMD_CONNECT) {
      struct cm_mqtt_prop am = {.id = CM_MQTT_PROP_TOPIC_ALIAS_MAXIMUM, .iv = 5};
      cm_mqtt_send_connack(c, 0, false, &am, 1);
    }
    if (mm->cmd == CM_MQTT_CMD_SUBSCRIBE) {
      uint8_t codes[8];
      size_t n = 0, pos = 0;
      uint8_t opt;
      while (n < 8 && cm_mqtt_list_next(mm->pkt, &pos, NULL, &opt)) codes[n++] = opt & 3;
      cm_mqtt_send_suback(c, mm->id, codes, n, NULL, 0);
    }
    if (mm->cmd == CM_MQTT_CMD_PINGREQ) cm_mqtt_pong(c);
  } else if (ev == CM_EV_MQTT_MSG) {
    struct cm_mqtt_msg *mm = ev_data;
    /* Topic aliases towards the client where it allows them (QoS 0). */
    struct cm_mqtt_pub_opts po = {.topic = mm->topic, .message = mm->data, .qos = mm->qos,
                                  .topic_alias = true};
    cm_mqtt_publish(c, &po);
  }
  struct rec *r = c->fn_data;
  if (r != NULL && !c->is_listening) handler(c, ev, ev_data);
}

static void ws_front(struct cm_conn *c, int ev, void *ev_data) {
  if (ev == CM_EV_HTTP_MSG) {
    if (cm_ws_upgrade(c, ev_data, "Sec-WebSocket-Protocol: mqtt\r\n") == 0) {
      assert_true(cm_mqtt_serve(c, NULL) == 0);
      c->fn = tiny_broker;
    }
  }
}

static void server_round_trip(const char *scheme, uint8_t v) {
  struct cm_mgr mgr;
  assert_int_equal(cm_mgr_init(&mgr), 0);
  struct rec srv = {0};
  struct cm_conn *l;
  char url[80];
  if (strcmp(scheme, "ws") == 0) {
    l = cm_http_listen(&mgr, "http://127.0.0.1:0", ws_front, &srv, NULL);
    assert_non_null(l);
    snprintf(url, sizeof(url), "ws://127.0.0.1:%u/mqtt", l->loc.port);
  } else {
    l = cm_mqtt_listen(&mgr, "mqtt://127.0.0.1:0", tiny_broker, &srv);
    assert_non_null(l);
    snprintf(url, sizeof(url), "mqtt://127.0.0.1:%u", l->loc.port);
  }
  struct rec r = {0};
  struct cm_mqtt_prop am = {.id = CM_MQTT_PROP_TOPIC_ALIAS_MAXIMUM, .iv = 5};
  struct cm_mqtt_opts o = {.version = v, .clean = true, .keepalive = 1, .props = &am,
                           .num_props = v == 5 ? 1 : 0};
  r.c = cm_mqtt_connect(&mgr, url, &o, handler, &r);
  assert_non_null(r.c);
  assert_true(wait_for(&mgr, &r.opened, 5000));
  assert_true(cm_mqtt_sub(r.c, cm_str_c("echo/#"), 2) > 0);
  assert_true(wait_count(&mgr, &r.cmds[CM_MQTT_CMD_SUBACK], 1, 5000));
  /* Several packets: over WebSocket they are sent one per message, but
   * the 70000-byte one crosses the frame size of nothing: fine. */
  uint8_t *big = malloc(70000);
  for (int i = 0; i < 70000; i++) big[i] = (uint8_t)i;
  assert_true(cm_mqtt_pub(r.c, cm_str_c("echo/a"), cm_str_c("q0"), 0, false) == 0);
  assert_true(cm_mqtt_pub(r.c, cm_str_c("echo/b"), cm_str_c("q1"), 1, false) > 0);
  assert_true(cm_mqtt_pub(r.c, cm_str_c("echo/c"), cm_str_n((const char *)big, 70000), 2, false) > 0);
  assert_true(wait_count(&mgr, &r.nmsgs, 3, 5000));
  assert_string_equal(r.msgs[0].topic, "echo/a");
  assert_string_equal(r.msgs[1].topic, "echo/b");
  assert_int_equal(r.msgs[1].qos, 1);
  assert_int_equal(r.msgs[2].len, 70000);
  assert_memory_equal(r.msgs[2].data, big, 70000);
  assert_int_equal(r.msgs[2].qos, 2);
  /* Topic aliases both ways (5.0): the name goes once, then the alias;
   * both handlers see the name every time. */
  struct cm_mqtt_pub_opts po = {.topic = cm_str_c("echo/alias"), .message = cm_str_c("x"),
                                .topic_alias = true};
  assert_int_equal(cm_mqtt_publish(r.c, &po), 0);
  assert_int_equal(cm_mqtt_publish(r.c, &po), 0);
  assert_true(wait_count(&mgr, &r.nmsgs, 5, 5000));
  assert_string_equal(r.msgs[3].topic, "echo/alias");
  assert_string_equal(r.msgs[4].topic, "echo/alias");
  assert_string_equal(srv.msgs[4].topic, "echo/alias");
  assert_false(r.msgs[3].by_alias);
  assert_false(srv.msgs[3].by_alias);
  assert_int_equal(r.msgs[4].by_alias, v == 5);
  assert_int_equal(srv.msgs[4].by_alias, v == 5);
  /* Both sides' flows complete. */
  assert_true(wait_count(&mgr, &r.cmds[CM_MQTT_CMD_PUBCOMP], 1, 5000));
  assert_true(wait_count(&mgr, &srv.cmds[CM_MQTT_CMD_PUBCOMP], 1, 5000));
  assert_int_equal(srv.cmds[CM_MQTT_CMD_CONNECT], 1);
  /* Keepalive through our server: PINGREQ answered by the application. */
  assert_true(wait_count(&mgr, &r.cmds[CM_MQTT_CMD_PINGRESP], 1, 5000));
  assert_int_equal(r.nerrors, 0);
  assert_int_equal(srv.nerrors, 0);
  cm_mqtt_disconnect(r.c);
  assert_true(wait_for(&mgr, &r.closed, 5000));
  assert_true(wait_for(&mgr, &srv.closed, 5000));
  free(big);
  cm_mgr_free(&mgr);
  rec_free(&r);
  rec_free(&srv);
}

/* A raw WebSocket client talks MQTT to our server in odd framing: the
 * CONNECT split over three messages, then SUBSCRIBE and PINGREQ in one. */
struct raw_ws {
  struct script s;
  bool open;
};

static void raw_ws_fn(struct cm_conn *c, int ev, void *ev_data) {
  struct raw_ws *w = c->fn_data;
  if (ev == CM_EV_WS_OPEN) {
    static const uint8_t connect[] = {0x10, 0x0d, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04,
                                      0x02, 0x00, 0x3c, 0x00, 0x01, 'x'};
    static const uint8_t sub_ping[] = {0x82, 0x06, 0x00, 0x07, 0x00, 0x01, 'a', 0x01, 0xC0, 0x00};
    cm_ws_send(c, connect, 1, CM_WS_OP_BINARY);
    cm_ws_send(c, connect + 1, 5, CM_WS_OP_BINARY);
    cm_ws_send(c, connect + 6, sizeof(connect) - 6, CM_WS_OP_BINARY);
    cm_ws_send(c, sub_ping, sizeof(sub_ping), CM_WS_OP_BINARY);
    w->open = true;
  } else if (ev == CM_EV_WS_MSG) {
    struct cm_ws_msg *m = ev_data;
    memcpy(w->s.got + w->s.got_len, m->data.buf, m->data.len);
    w->s.got_len += m->data.len;
  }
}

static void websocket_framing_is_free(void **state) {
  (void)state;
  struct cm_mgr mgr;
  assert_int_equal(cm_mgr_init(&mgr), 0);
  struct rec srv = {0};
  struct cm_conn *l = cm_http_listen(&mgr, "http://127.0.0.1:0", ws_front, &srv, NULL);
  char url[80];
  snprintf(url, sizeof(url), "ws://127.0.0.1:%u/mqtt", l->loc.port);
  struct raw_ws w = {0};
  assert_non_null(cm_ws_connect(&mgr, url, raw_ws_fn, &w, "Sec-WebSocket-Protocol: mqtt\r\n"));
  assert_true(wait_count(&mgr, &srv.cmds[CM_MQTT_CMD_PINGREQ], 1, 5000));
  poll_a_while(&mgr);
  assert_int_equal(srv.cmds[CM_MQTT_CMD_CONNECT], 1);
  assert_int_equal(srv.cmds[CM_MQTT_CMD_SUBSCRIBE], 1);
  assert_int_equal(count_sent(&w.s, 4, CM_MQTT_CMD_CONNACK, 0), 1);
  assert_int_equal(count_sent(&w.s, 4, CM_MQTT_CMD_SUBACK, 0), 1);
  assert_int_equal(count_sent(&w.s, 4, CM_MQTT_CMD_PINGRESP, 0), 1);
  assert_int_equal(srv.nerrors, 0);
  cm_mgr_free(&mgr);
  rec_free(&srv);
}

static void listener_round_trip(void **state) {
  (void)state;
  server_round_trip("mqtt", 4);
  server_round_trip("mqtt", 5);
}

static void websocket_round_trip(void **state) {
  (void)state;
  server_round_trip("ws", 4);
  server_round_trip("ws", 5);
}

/* A raw client sends bad packets to cm_mqtt_listen: the server connection
 * gets a clear ERROR and closes; the listener lives on. */
static void raw_fn(struct cm_conn *c, int ev, void *ev_data) {
  (void)ev_data;
  struct script *s = c->fn_data;
  if (ev == CM_EV_READ) {
    size_t n = c->recv.len;
    if (n > sizeof(s->got) - s->got_len) n = sizeof(s->got) - s->got_len;
    memcpy(s->got + s->got_len, cm_buf_data(&c->recv), n);
    s->got_len += n;
    cm_recv_consume(c, c->recv.len);
  } else if (ev == CM_EV_CLOSE) {
    s->peer_closed = true;
  }
}

static void server_refuses_malformed(void **state) {
  (void)state;
  static const uint8_t connect_v5[] = {0x10, 0x0e, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05,
                                       0x02, 0x00, 0x3c, 0x00, 0x00, 0x01, 'x'};
  static const uint8_t connect_v5_ka1[] = {0x10, 0x0e, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05,
                                           0x02, 0x00, 0x01, 0x00, 0x00, 0x01, 'x'};
  static const uint8_t connect_v9[] = {0x10, 0x0d, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x09,
                                       0x02, 0x00, 0x3c, 0x00, 0x01, 'x'};
  struct {
    const uint8_t *pre;
    size_t pre_len;
    uint8_t bytes[16];
    size_t len;
    const char *want;
  } cases[] = {
      {connect_v5, sizeof(connect_v5), {0x30, 0x05, 0x00, 0x01, '+', 0x00, 'x'}, 7, "(0x90)"},
      {connect_v5, sizeof(connect_v5), {0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01}, 6, "(0x81)"},
      {NULL, 0, {0x30, 0x03, 0x00, 0x01, 'a'}, 5, "(0x82)"}, /* before CONNECT */
      {connect_v9, sizeof(connect_v9), {0}, 0, "(0x84)"},
      /* keepalive 1 s, then silence: dropped after 1.5 s */
      {connect_v5_ka1, sizeof(connect_v5_ka1), {0}, 0, "keep alive timeout (0x8d)"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    struct cm_mgr mgr;
    assert_int_equal(cm_mgr_init(&mgr), 0);
    struct rec srv = {0};
    struct cm_conn *l = cm_mqtt_listen(&mgr, "mqtt://127.0.0.1:0", tiny_broker, &srv);
    char url[64];
    snprintf(url, sizeof(url), "tcp://127.0.0.1:%u", l->loc.port);
    struct script s = {0};
    struct cm_conn *c = cm_connect(&mgr, url, raw_fn, &s);
    if (cases[i].pre != NULL) cm_send(c, cases[i].pre, cases[i].pre_len);
    if (cases[i].len > 0) cm_send(c, cases[i].bytes, cases[i].len);
    assert_true(wait_for(&mgr, &s.peer_closed, 5000));
    if (strstr(srv.error, cases[i].want) == NULL)
      fail_msg("case %zu: ERROR \"%s\", wanted %s", i, srv.error, cases[i].want);
    assert_true(srv.closed);
    if (i == 3) {
      /* Unknown level: CONNACK 0x01 before closing (3.1.2.2). */
      assert_true(s.got_len == 4 && s.got[0] == 0x20 && s.got[3] == 0x01);
    }
    if (i == 4) {
      /* CONNACK, then DISCONNECT 0x8D. */
      assert_int_equal(count_sent(&s, 5, CM_MQTT_CMD_CONNACK, 0), 1);
      assert_true(s.got_len >= 3 && s.got[s.got_len - 3] == 0xE0 && s.got[s.got_len - 1] == 0x8D);
    }
    assert_false(l->is_closing);
    cm_mgr_free(&mgr);
    rec_free(&srv);
  }
}

/* A client that sends many packets at once to a server whose output mark
 * is tiny: parsing pauses whenever the replies reach the mark and goes on
 * as they are written; every ping is answered, none is lost or stalls. */
static void server_output_mark_pauses_and_resumes(void **state) {
  (void)state;
  enum { PINGS = 1000 };
  struct cm_mgr mgr;
  assert_int_equal(cm_mgr_init(&mgr), 0);
  mgr.send_hwm = 16;
  struct rec srv = {0};
  struct cm_conn *l = cm_mqtt_listen(&mgr, "mqtt://127.0.0.1:0", tiny_broker, &srv);
  char url[64];
  snprintf(url, sizeof(url), "tcp://127.0.0.1:%u", l->loc.port);
  static const uint8_t connect[] = {0x10, 0x0d, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04,
                                    0x02, 0x00, 0x3c, 0x00, 0x01, 'x'};
  static uint8_t pings[2 * PINGS];
  for (int i = 0; i < PINGS; i++) pings[2 * i] = 0xC0, pings[2 * i + 1] = 0x00;
  struct script s = {0};
  struct cm_conn *c = cm_connect(&mgr, url, raw_fn, &s);
  cm_send(c, connect, sizeof(connect));
  cm_send(c, pings, sizeof(pings));
  assert_true(wait_count(&mgr, &srv.cmds[CM_MQTT_CMD_PINGREQ], PINGS, 5000));
  uint64_t end = cm_millis() + 5000;
  while (s.got_len < 4 + 2 * PINGS && cm_millis() < end) cm_mgr_poll(&mgr, 10);
  assert_int_equal(count_sent(&s, 4, CM_MQTT_CMD_PINGRESP, 0), PINGS);
  assert_int_equal(srv.nerrors, 0);
  cm_mgr_free(&mgr);
  rec_free(&srv);
}

static void api_misuse_is_refused(void **state) {
  (void)state;
  struct cm_mgr mgr;
  assert_int_equal(cm_mgr_init(&mgr), 0);
  struct cm_conn *l = cm_listen(&mgr, "tcp://127.0.0.1:0", NULL, NULL);
  assert_int_equal(cm_mqtt_pub(l, cm_str_c("a"), cm_str_c("b"), 0, false), CM_EINVAL);
  assert_int_equal(cm_mqtt_sub(l, cm_str_c("a"), 0), CM_EINVAL);
  assert_int_equal(cm_mqtt_ping(l), CM_EINVAL);
  assert_int_equal(cm_mqtt_disconnect(l), CM_EINVAL);
  assert_false(cm_mqtt_is(l));
  struct cm_mqtt_opts bad = {.version = 3};
  assert_null(cm_mqtt_connect(&mgr, "mqtt://127.0.0.1:1", &bad, NULL, NULL));
  struct rec r = {0};
  struct cm_mqtt_opts o = {.clean = true};
  r.c = cm_mqtt_connect(&mgr, "mqtt://127.0.0.1:1", &o, handler, &r);
  assert_non_null(r.c);
  assert_int_equal(cm_mqtt_pub(r.c, cm_str_c("a/+"), cm_str_c("b"), 0, false), CM_EINVAL);
  assert_int_equal(cm_mqtt_pub(r.c, cm_str_c(""), cm_str_c("b"), 0, false), CM_EINVAL);
  assert_int_equal(cm_mqtt_pub(r.c, cm_str_c("a"), cm_str_c("b"), 3, false), CM_EINVAL);
  assert_int_equal(cm_mqtt_sub(r.c, cm_str_c("a/#/b"), 0), CM_EINVAL);
  assert_false(r.closed); /* nothing synchronous */
  assert_true(wait_for(&mgr, &r.closed, 5000)); /* connection refused */
  assert_true(r.nerrors >= 1);
  cm_mgr_free(&mgr);
  rec_free(&r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(connects_v4_and_v5),
      cmocka_unit_test(qos_round_trips),
      cmocka_unit_test(tls_round_trip),
      cmocka_unit_test(retained_message_on_subscribe),
      cmocka_unit_test(will_on_dropped_connection),
      cmocka_unit_test(keepalive_pings_when_idle),
      cmocka_unit_test(persistent_session_redelivers),
      cmocka_unit_test(v5_properties_round_trip),
      cmocka_unit_test(v5_properties_reach_the_handler),
      cmocka_unit_test(malformed_input_gives_error_and_close),
      cmocka_unit_test(refusal_is_a_readable_error),
      cmocka_unit_test(resend_with_dup_on_resumed_session),
      cmocka_unit_test(inflight_window_follows_receive_maximum),
      cmocka_unit_test(qos2_duplicates_are_suppressed),
      cmocka_unit_test(silent_peers_time_out),
      cmocka_unit_test(listener_round_trip),
      cmocka_unit_test(websocket_round_trip),
      cmocka_unit_test(websocket_framing_is_free),
      cmocka_unit_test(server_refuses_malformed),
      cmocka_unit_test(server_output_mark_pauses_and_resumes),
      cmocka_unit_test(api_misuse_is_refused),
  };
  return cmocka_run_group_tests_name("mqtt_client", tests, start_broker, stop_broker);
}
