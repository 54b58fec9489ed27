/*
 * libFuzzer harness for the MQTT protocol glue over real loopback sockets.
 * Byte 0 picks the role and the version; the rest is what the peer sends.
 * Server role: a raw client sends the input to a small broker on
 * cm_mqtt_listen() (it answers CONNECT, SUBSCRIBE, PINGREQ and echoes
 * every message back with its QoS and a topic alias), then its FIN.
 * Client role: a raw server sends the input once it has read the CONNECT,
 * then closes; our client publishes with each QoS (topic alias, message
 * expiry) when it opens and on every message, and with byte 0 bit 2 does
 * enhanced authentication (answers every AUTH, re-authenticates).  Either way our side must end the connection without
 * crashing, leaking or hanging (a hang aborts).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cymongoose.h"
#include "raw_peer.h"

static struct cm_mgr mgr;
static uint16_t broker_port, rogue_port;
static const uint8_t *input;
static size_t input_len;

static void broker_fn(struct cm_conn *c, int ev, void *ev_data) {
  if (ev == CM_EV_MQTT_CMD) {
    struct cm_mqtt_msg *mm = ev_data;
    struct cm_mqtt_prop am = {.id = CM_MQTT_PROP_TOPIC_ALIAS_MAXIMUM, .iv = 3};
    uint8_t codes[8], opt;
    size_t n = 0, pos = 0;
    switch (mm->cmd) {
      case CM_MQTT_CMD_CONNECT: cm_mqtt_send_connack(c, 0, false, &am, 1); break;
      case CM_MQTT_CMD_SUBSCRIBE:
        while (n < 8 && cm_mqtt_list_next(mm->pkt, &pos, NULL, &opt)) codes[n++] = opt & 3;
        cm_mqtt_send_suback(c, mm->id, codes, n, NULL, 0);
        break;
      case CM_MQTT_CMD_UNSUBSCRIBE: cm_mqtt_send_unsuback(c, mm->id, NULL, 0, NULL, 0); break;
      case CM_MQTT_CMD_PINGREQ: cm_mqtt_pong(c); break;
      default: break;
    }
  } else if (ev == CM_EV_MQTT_MSG) {
    struct cm_mqtt_msg *mm = ev_data;
    struct cm_mqtt_pub_opts po = {.topic = mm->topic, .message = mm->data, .qos = mm->qos,
                                  .topic_alias = true};
    cm_mqtt_publish(c, &po);
  }
}

/* Raw server for the client role: the input after the CONNECT, then close. */
static void rogue_fn(struct cm_conn *c, int ev, void *ev_data) {
  (void)ev_data;
  if (ev != CM_EV_READ || c->is_listening) return;
  cm_recv_consume(c, c->recv.len);
  if (c->is_draining) return;
  cm_send(c, input, input_len);
  cm_drain(c);
}

static void client_fn(struct cm_conn *c, int ev, void *ev_data) {
  if (ev == CM_EV_MQTT_OPEN || ev == CM_EV_MQTT_MSG) {
    /* Held messages with an alias and an expiry: rewritten as they leave. */
    struct cm_mqtt_prop ex = {.id = CM_MQTT_PROP_MESSAGE_EXPIRY_INTERVAL, .iv = 5};
    for (int q = 0; q <= 2; q++) {
      struct cm_mqtt_pub_opts po = {.topic = cm_str_c("f/z"), .message = cm_str_c("x"),
                                    .qos = (uint8_t)q, .topic_alias = true, .props = &ex,
                                    .num_props = 1};
      cm_mqtt_publish(c, &po);
    }
    cm_mqtt_sub(c, cm_str_c("f/#"), 2);
  } else if (ev == CM_EV_MQTT_CMD) {
    /* Enhanced authentication: answer every challenge, re-authenticate
     * once connected. */
    struct cm_mqtt_msg *mm = ev_data;
    if (mm->cmd == CM_MQTT_CMD_AUTH)
      cm_mqtt_auth(c, CM_MQTT_RC_CONTINUE_AUTHENTICATION, cm_str_n("", 0), cm_str_c("r"), NULL, 0);
    if (mm->cmd == CM_MQTT_CMD_CONNACK)
      cm_mqtt_auth(c, CM_MQTT_RC_REAUTHENTICATE, cm_str_n("", 0), cm_str_c("a"), NULL, 0);
  }
}

static void init(void) {
  if (cm_mgr_init(&mgr) != 0) abort();
  struct cm_mqtt_limits lim = {.max_packet_size = 4096, .max_queued = 16, .max_incoming = 8};
  struct cm_conn *l = cm_mqtt_listen_opts(&mgr, "mqtt://127.0.0.1:0", &lim, broker_fn, NULL);
  struct cm_conn *r = cm_listen(&mgr, "tcp://127.0.0.1:0", rogue_fn, NULL);
  if (l == NULL || r == NULL) abort();
  broker_port = l->loc.port;
  rogue_port = r->loc.port;
}

static void run_server_role(const uint8_t *data, size_t len) {
  fuzz_play_raw(&mgr, 2, broker_port, NULL, 0, data, len);
}

static void run_client_role(const uint8_t *data, size_t len, uint8_t version, bool auth) {
  input = data;
  input_len = len;
  char url[64];
  snprintf(url, sizeof(url), "mqtt://127.0.0.1:%u", rogue_port);
  struct cm_mqtt_prop am = {.id = CM_MQTT_PROP_TOPIC_ALIAS_MAXIMUM, .iv = 3};
  struct cm_mqtt_opts o = {.version = version, .clean = true, .props = &am, .num_props = 1};
  o.limits = (struct cm_mqtt_limits){.max_packet_size = 4096, .max_queued = 16, .max_incoming = 8};
  if (auth) o.auth_method = cm_str_c("F"); /* AUTH from the peer is expected */
  if (cm_mqtt_connect(&mgr, url, &o, client_fn, NULL) == NULL) abort();
  fuzz_settle(&mgr, 2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static bool ready;
  if (!ready) {
    init();
    ready = true;
  }
  if (size < 1 || size > 70000) return 0;
  if (data[0] & 2) {
    run_client_role(data + 1, size - 1, (data[0] & 1) ? 5 : 4, (data[0] & 4) != 0);
  } else {
    run_server_role(data + 1, size - 1);
  }
  return 0;
}
