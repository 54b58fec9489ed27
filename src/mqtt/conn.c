/*
 * The MQTT protocol handler shared by client and server connections: turns
 * the bytes received (from c->recv, or from WebSocket binary messages) into
 * MQTT_CMD / MQTT_MSG events, runs the QoS flows on both sides, keeps the
 * in-flight window, resolves topic aliases, and runs keepalive and
 * deadlines on one timer per connection, embedded in its state and armed
 * lazily (no per-turn walk, no periodic tick).  The peer breaking the protocol
 * gets a v5 DISCONNECT with the reason code (when one can be sent), the
 * application an ERROR, and the connection closes.
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt/internal.h"
#include "ws/internal.h"


struct cm__mqtt *cm__mqtt_of(const struct cm_conn *c) {
  if (c == NULL) return NULL;
  struct cm__mqtt *st = NULL;
  if (c->pfn == cm__mqtt_pfn) st = c->pfn_data;
  else st = cm__ws_upper_data(c, cm__mqtt_pfn);
  return st != NULL && st->kind == CM__MQTT_KIND ? st : NULL;
}

bool cm_mqtt_is(const struct cm_conn *c) { return cm__mqtt_of(c) != NULL; }

uint8_t cm_mqtt_version(const struct cm_conn *c) {
  struct cm__mqtt *st = cm__mqtt_of(c);
  return st == NULL ? 0 : st->version;
}

/* ----------------------------------------------------------- sending */

bool cm__mqtt_tx(struct cm__mqtt *st, const void *p, size_t n) {
  struct cm_conn *c = st->c;
  bool ok;
  if (!st->over_ws) {
    ok = cm_send(c, p, n) == 0;
  } else if (!st->ws_open) {
    ok = cm_buf_append(&st->ws->pending, p, n) == 0;
  } else {
    ok = cm_ws_send(c, p, n, CM_WS_OP_BINARY) >= 0;
  }
  if (ok) st->last_tx_ms = cm_millis();
  return ok;
}

/* One encoding buffer per thread rather than per connection: a packet is
 * encoded and copied into the connection's output before anything else
 * runs, and 10,000 idle connections then carry no buffer each. */
static _Thread_local struct cm_buf scratch;

struct cm_buf *cm__mqtt_scratch(void) {
  scratch.len = scratch.off = 0;
  return &scratch;
}

void cm__mqtt_scratch_done(struct cm_buf *b) {
  if (b->cap > 65536) cm_buf_free(b);
}

int cm__mqtt_tx_error(const struct cm_conn *c) {
  if (c->is_closing || c->is_draining) return CM_ECLOSED;
  return c->mgr->send_limit != 0 ? CM_ETOOBIG : CM_ENOMEM;
}

int cm__mqtt_send_rc(struct cm__mqtt *st, struct cm_mqtt_packet *m) {
  if (m->version == 0) m->version = st->version == 0 ? 4 : st->version;
  struct cm_buf *out = cm__mqtt_scratch();
  int rc = CM_EINVAL;
  if (cm_mqtt_encode(out, m) == 0)
    rc = cm__mqtt_tx(st, cm_buf_data(out), out->len) ? 0 : cm__mqtt_tx_error(st->c);
  cm__mqtt_scratch_done(out);
  return rc;
}

bool cm__mqtt_send_pkt(struct cm__mqtt *st, struct cm_mqtt_packet *m) {
  return cm__mqtt_send_rc(st, m) == 0;
}

static bool send_ack(struct cm__mqtt *st, int cmd, uint16_t id, uint8_t reason) {
  struct cm_mqtt_packet m = {0};
  m.cmd = (uint8_t)cmd;
  m.id = id;
  m.reason = reason;
  return cm__mqtt_send_pkt(st, &m);
}

/* The PUBLISH of o as this connection needs it (v5): a topic alias of this
 * connection in place of the name, and the Message Expiry Interval that
 * is left (3.3.2.3.3).  pkt itself keeps the full topic, so a resend on
 * another connection carries it.  Sends pkt as is when nothing changes. */
static bool send_rewritten(struct cm__mqtt *st, struct cm__mqtt_out *o, bool dup) {
  struct cm_mqtt_packet m;
  if (cm_mqtt_parse(o->pkt, o->len, 5, CM_MQTT_MAX_PACKET, &m) <= 0)
    return cm__mqtt_tx(st, o->pkt, o->len);
  uint32_t left = o->expiry_s;
  if ((o->flags & CM__OUT_F_EXPIRY) && o->expire_ms != 0) {
    uint64_t now = cm_millis();
    left = now >= o->expire_ms ? 1 : (uint32_t)((o->expire_ms - now + 999) / 1000);
  }
  /* An alias with the name costs 3 bytes: not when that passes the peer's
   * Maximum Packet Size (pkt itself was checked against it). */
  bool first = false, room = st->peer_max_packet == 0 || o->len + 3 <= st->peer_max_packet;
  uint16_t alias = (o->flags & CM__OUT_F_ALIAS) && !dup && room
                       ? cm__mqtt_alias_for(st, m.topic, &first)
                       : 0;
  if (alias == 0 && left == o->expiry_s) return cm__mqtt_tx(st, o->pkt, o->len);
  /* The other properties byte for byte, then the two we set. */
  struct cm_buf pb = {0};
  struct cm_mqtt_prop p;
  size_t pos = 0, at = 0;
  bool ok = true;
  while (ok && cm_mqtt_prop_next(m.props, &pos, &p)) {
    if (p.id != CM_MQTT_PROP_MESSAGE_EXPIRY_INTERVAL)
      ok = cm_buf_append(&pb, m.props.buf + at, pos - at) == 0;
    at = pos;
  }
  struct cm_mqtt_prop add[2] = {{.id = CM_MQTT_PROP_MESSAGE_EXPIRY_INTERVAL, .iv = left},
                                {.id = CM_MQTT_PROP_TOPIC_ALIAS, .iv = alias}};
  size_t from = o->expiry_s != 0 ? 0 : 1, to = alias != 0 ? 2 : 1;
  if (ok) ok = cm__mqtt_props_raw(&pb, add + from, to - from) == 0;
  if (ok) {
    m.props = cm_str_n((const char *)cm_buf_data(&pb), pb.len);
    if (alias != 0 && !first) m.topic = cm_str_n("", 0);
    m.dup = dup || m.dup;
    ok = cm__mqtt_send_pkt(st, &m);
  }
  cm_buf_free(&pb);
  if (!ok && first) cm__mqtt_alias_forget(st, alias); /* the peer never learnt it */
  return ok;
}

bool cm__mqtt_send_out(struct cm__mqtt *st, struct cm__mqtt_out *o, bool dup) {
  if (o->state == CM__OUT_RELEASED) return send_ack(st, CM_MQTT_CMD_PUBREL, o->id, 0);
  if (dup) o->pkt[0] = (uint8_t)(o->pkt[0] | 0x08);
  if (st->version == 5 && o->flags != 0) return send_rewritten(st, o, dup);
  return cm__mqtt_tx(st, o->pkt, o->len);
}

bool cm__mqtt_out_expired(struct cm__mqtt *st, struct cm__mqtt_out *o, uint64_t now) {
  if (!(o->flags & CM__OUT_F_EXPIRY) || o->expire_ms == 0 || now < o->expire_ms) return false;
  if (o->state == CM__OUT_RELEASED) return false; /* delivered: PUBREL still due */
  struct cm_mqtt_packet m;
  struct cm_str topic = cm_str_n("?", 1);
  if (cm_mqtt_parse(o->pkt, o->len, 5, CM_MQTT_MAX_PACKET, &m) > 0) topic = m.topic;
  CM_INFO("conn %lu: MQTT: message %u to %.*s expired after %lu s %s; dropped", st->c->id,
          (unsigned)o->id, (int)topic.len, topic.buf, (unsigned long)o->expiry_s,
          o->state == CM__OUT_QUEUED ? "in the queue" : "unacknowledged");
  st->sess->expired++;
  cm__mqtt_session_remove(st->sess, o);
  return true;
}

void cm__mqtt_pump(struct cm__mqtt *st) {
  struct cm_mqtt_session *s = st->sess;
  if (!st->connected || st->c->is_closing || st->c->is_draining) return;
  struct cm__mqtt_out *prev = NULL, *next;
  uint64_t now = 0;
  for (struct cm__mqtt_out *o = s->head; o != NULL && s->inflight < st->window;
       prev = o, o = next) {
    next = o->next;
    if (o->state != CM__OUT_QUEUED) continue;
    if (o->flags & CM__OUT_F_EXPIRY) {
      if (now == 0) now = cm_millis();
      if (cm__mqtt_out_expired(st, o, now)) {
        o = prev; /* removed: prev stays */
        continue;
      }
    }
    if (st->prepare != NULL && (o = st->prepare(st->prepare_arg, st, o, prev)) == NULL) {
      o = prev; /* removed: prev stays */
      continue;
    }
    if (!cm__mqtt_send_out(st, o, false)) return;
    o->state = CM__OUT_PUBLISHED;
    s->inflight++;
  }
}

/* ------------------------------------------------------------ failing */

/* The peer broke the protocol (or went silent): DISCONNECT with the reason
 * on 5.0, ERROR, close.  Input is ignored from here on. */
static void fail(struct cm__mqtt *st, int code, const char *why) {
  struct cm_conn *c = st->c;
  if (st->failed || c->is_closing) return;
  st->failed = true;
  char msg[200];
  snprintf(msg, sizeof(msg), "MQTT: %s (0x%02x)%s%s", cm_mqtt_reason_str(5, 0, code), code,
           why != NULL ? ": " : "", why != NULL ? why : "");
  CM_DEBUG("conn %lu: %s", c->id, msg);
  if (st->version == 5 && (st->connected || !st->is_server)) {
    send_ack(st, CM_MQTT_CMD_DISCONNECT, 0, (uint8_t)code);
  } else if (st->is_server && !st->connected && code == CM_MQTT_RC_UNSUPPORTED_VERSION) {
    /* 3.1.2.2: answer an unknown level with CONNACK 0x01, then close. */
    struct cm_mqtt_packet m = {0};
    m.cmd = CM_MQTT_CMD_CONNACK;
    m.version = 4;
    m.reason = CM_MQTT_CONNACK_V3_BAD_VERSION;
    cm__mqtt_send_pkt(st, &m);
  }
  cm_call(c, CM_EV_ERROR, msg);
  cm_drain(c);
}

/* ----------------------------------------------------------- receiving */

/* Resolves (and learns) a v5 topic alias of a PUBLISH received. */
static bool resolve_alias(struct cm__mqtt *st, struct cm_mqtt_packet *m, struct cm_str *topic) {
  struct cm_mqtt_prop p;
  *topic = m->topic;
  if (st->version != 5 || !cm_mqtt_prop_find(m->props, CM_MQTT_PROP_TOPIC_ALIAS, &p)) return true;
  if (p.iv > st->our_alias_max) {
    fail(st, CM_MQTT_RC_TOPIC_ALIAS_INVALID, "topic alias above our Topic Alias Maximum");
    return false;
  }
  if (st->alias_in == NULL) {
    st->alias_in = calloc((size_t)st->our_alias_max + 1, sizeof(char *));
    if (st->alias_in == NULL) {
      fail(st, CM_MQTT_RC_IMPLEMENTATION_SPECIFIC, "out of memory");
      return false;
    }
  }
  char **slot = &st->alias_in[p.iv];
  if (m->topic.len > 0) {
    char *copy = malloc(m->topic.len + 1);
    if (copy == NULL) {
      fail(st, CM_MQTT_RC_IMPLEMENTATION_SPECIFIC, "out of memory");
      return false;
    }
    memcpy(copy, m->topic.buf, m->topic.len);
    copy[m->topic.len] = '\0';
    free(*slot);
    *slot = copy;
  } else if (*slot == NULL) {
    fail(st, CM_MQTT_RC_PROTOCOL_ERROR, "unknown topic alias");
    return false;
  } else {
    *topic = cm_str_c(*slot);
  }
  return true;
}

bool cm__mqtt_set_auth_method(struct cm__mqtt *st, struct cm_str method) {
  char *copy = malloc(method.len + 1);
  if (copy == NULL) return false;
  memcpy(copy, method.buf, method.len);
  copy[method.len] = '\0';
  free(st->auth_method);
  st->auth_method = copy;
  return true;
}

/* 4.12: an AUTH packet the client may receive: only when its CONNECT
 * started enhanced authentication, with the same method, 0x18 (continue)
 * while an exchange runs (before CONNACK or after our re-authentication
 * request), 0x00 (success) to end a re-authentication.  The application
 * answers a challenge from its MQTT_CMD handler with cm_mqtt_auth(). */
static bool auth_ok(struct cm__mqtt *st, const struct cm_mqtt_packet *m) {
  struct cm_mqtt_prop p;
  const char *why = NULL;
  if (st->auth_method == NULL) {
    why = "AUTH without an Authentication Method in CONNECT";
  } else if (!cm_mqtt_prop_find(m->props, CM_MQTT_PROP_AUTHENTICATION_METHOD, &p) ||
             p.val.len != strlen(st->auth_method) ||
             memcmp(p.val.buf, st->auth_method, p.val.len) != 0) {
    why = "AUTH with another Authentication Method than CONNECT's";
  } else if (st->is_server) {
    if (m->reason != CM_MQTT_RC_CONTINUE_AUTHENTICATION && m->reason != CM_MQTT_RC_REAUTHENTICATE)
      why = "AUTH reason code not 0x18 or 0x19";
  } else if (m->reason == CM_MQTT_RC_CONTINUE_AUTHENTICATION) {
    if (st->connected && !st->reauth) why = "AUTH 0x18 outside an authentication exchange";
  } else if (m->reason == CM_MQTT_RC_SUCCESS) {
    if (!st->reauth) why = "AUTH 0x00 without a re-authentication";
    st->reauth = false;
  } else {
    why = "AUTH reason code not 0x00 or 0x18";
  }
  if (why == NULL) return true;
  fail(st, CM_MQTT_RC_PROTOCOL_ERROR, why);
  return false;
}

/* Which packets each side may receive. */
static bool allowed(const struct cm__mqtt *st, uint8_t cmd) {
  static const uint16_t to_client =
      1u << CM_MQTT_CMD_CONNACK | 1u << CM_MQTT_CMD_PUBLISH | 1u << CM_MQTT_CMD_PUBACK |
      1u << CM_MQTT_CMD_PUBREC | 1u << CM_MQTT_CMD_PUBREL | 1u << CM_MQTT_CMD_PUBCOMP |
      1u << CM_MQTT_CMD_SUBACK | 1u << CM_MQTT_CMD_UNSUBACK | 1u << CM_MQTT_CMD_PINGRESP |
      1u << CM_MQTT_CMD_DISCONNECT | 1u << CM_MQTT_CMD_AUTH;
  static const uint16_t to_server =
      1u << CM_MQTT_CMD_CONNECT | 1u << CM_MQTT_CMD_PUBLISH | 1u << CM_MQTT_CMD_PUBACK |
      1u << CM_MQTT_CMD_PUBREC | 1u << CM_MQTT_CMD_PUBREL | 1u << CM_MQTT_CMD_PUBCOMP |
      1u << CM_MQTT_CMD_SUBSCRIBE | 1u << CM_MQTT_CMD_UNSUBSCRIBE | 1u << CM_MQTT_CMD_PINGREQ |
      1u << CM_MQTT_CMD_DISCONNECT | 1u << CM_MQTT_CMD_AUTH;
  return ((st->is_server ? to_server : to_client) >> cmd & 1) != 0;
}

static void on_publish(struct cm__mqtt *st, struct cm_mqtt_msg *mm) {
  struct cm_mqtt_session *s = st->sess;
  struct cm_conn *c = st->c;
  bool deliver = true;
  if (mm->qos == 2) {
    if (cm__mqtt_id_test(s->ids_in, mm->id)) {
      deliver = false; /* a duplicate of one not yet released */
    } else if (s->nin >= st->lim.max_incoming) {
      fail(st, CM_MQTT_RC_RECEIVE_MAXIMUM_EXCEEDED, "too many QoS 2 messages awaiting PUBREL");
      return;
    } else if (!cm__mqtt_id_set(&s->ids_in, mm->id, true)) {
      fail(st, CM_MQTT_RC_IMPLEMENTATION_SPECIFIC, "out of memory");
      return;
    } else {
      s->nin++;
    }
  }
  st->pub_reason = 0;
  st->pub_no_ack = false;
  if (deliver) cm_call(c, CM_EV_MQTT_MSG, mm);
  uint8_t rc = st->pub_reason; /* the handler's verdict (a broker's ACL) */
  bool no_ack = st->pub_no_ack;
  st->pub_reason = 0;
  st->pub_no_ack = false;
  if (c->is_closing) return;
  if (mm->qos == 2 && deliver && (rc >= 0x80 || no_ack)) {
    /* A refused QoS 2 message ends its flow with the PUBREC (4.3.3); one
     * left unacknowledged comes again and must not pass for a duplicate. */
    cm__mqtt_id_set(&s->ids_in, mm->id, false);
    s->nin--;
  }
  if (no_ack) return;
  if (mm->qos == 1) send_ack(st, CM_MQTT_CMD_PUBACK, mm->id, rc);
  if (mm->qos == 2) send_ack(st, CM_MQTT_CMD_PUBREC, mm->id, rc);
}

/* Acks of our own messages, and PUBREL of the peer's. */
static void on_ack(struct cm__mqtt *st, const struct cm_mqtt_packet *m) {
  struct cm_mqtt_session *s = st->sess;
  struct cm__mqtt_out *o;
  switch (m->cmd) {
    case CM_MQTT_CMD_PUBACK:
      o = cm__mqtt_session_find(s, m->id, CM__OUT_PUBLISHED);
      if (o != NULL && o->qos == 1) cm__mqtt_session_remove(s, o);
      break;
    case CM_MQTT_CMD_PUBREC:
      o = cm__mqtt_session_find(s, m->id, CM__OUT_PUBLISHED);
      if (o == NULL || o->qos != 2) {
        send_ack(st, CM_MQTT_CMD_PUBREL, m->id, st->version == 5 ? CM_MQTT_RC_PACKET_ID_NOT_FOUND : 0);
      } else if (m->reason >= 0x80) {
        cm__mqtt_session_remove(s, o); /* refused: the flow ends here (4.3.3) */
      } else {
        o->state = CM__OUT_RELEASED;
        send_ack(st, CM_MQTT_CMD_PUBREL, m->id, 0);
      }
      break;
    case CM_MQTT_CMD_PUBCOMP:
      o = cm__mqtt_session_find(s, m->id, CM__OUT_RELEASED);
      if (o != NULL) cm__mqtt_session_remove(s, o);
      break;
    case CM_MQTT_CMD_PUBREL: {
      bool known = cm__mqtt_id_test(s->ids_in, m->id);
      if (known) {
        cm__mqtt_id_set(&s->ids_in, m->id, false);
        s->nin--;
      }
      send_ack(st, CM_MQTT_CMD_PUBCOMP, m->id,
               known || st->version != 5 ? 0 : CM_MQTT_RC_PACKET_ID_NOT_FOUND);
      return;
    }
    default:
      return;
  }
  cm__mqtt_pump(st);
}

static void on_disconnect(struct cm__mqtt *st, const struct cm_mqtt_packet *m) {
  struct cm_conn *c = st->c;
  st->failed = true; /* nothing more is read */
  if (!st->is_server && m->reason >= 0x80) {
    char msg[200];
    snprintf(msg, sizeof(msg), "MQTT: the server disconnected: %s (0x%02x)",
             cm_mqtt_reason_str(5, CM_MQTT_CMD_DISCONNECT, m->reason), m->reason);
    cm_call(c, CM_EV_ERROR, msg);
  }
  cm_drain(c);
}

static void handle(struct cm__mqtt *st, struct cm_mqtt_packet *m, const uint8_t *raw) {
  struct cm_conn *c = st->c;
  if (!allowed(st, m->cmd)) {
    fail(st, CM_MQTT_RC_PROTOCOL_ERROR, "packet type not allowed in this direction");
    return;
  }
  bool first = st->is_server ? m->cmd == CM_MQTT_CMD_CONNECT : m->cmd == CM_MQTT_CMD_CONNACK;
  /* 4.12: enhanced authentication exchanges AUTH before the CONNACK. */
  bool early_auth = m->cmd == CM_MQTT_CMD_AUTH && !st->is_server;
  if (first == st->connected && !early_auth) {
    fail(st, CM_MQTT_RC_PROTOCOL_ERROR,
         first ? "a second CONNECT or CONNACK" : "packet before CONNECT/CONNACK");
    return;
  }
  if (m->cmd == CM_MQTT_CMD_AUTH && !auth_ok(st, m)) return;
  struct cm_mqtt_msg mm = {0};
  mm.topic = m->topic;
  if (m->cmd == CM_MQTT_CMD_PUBLISH && !resolve_alias(st, m, &mm.topic)) return;
  mm.data = m->payload;
  mm.dgram = cm_str_n((const char *)raw, m->len);
  mm.props = m->props;
  mm.id = m->id;
  mm.cmd = m->cmd;
  mm.qos = m->qos;
  mm.ack = m->reason;
  mm.retain = m->retain;
  mm.dup = m->dup;
  mm.session_present = m->session_present;
  mm.version = m->cmd == CM_MQTT_CMD_CONNECT ? m->version : st->version;
  mm.pkt = m;
  if (m->cmd == CM_MQTT_CMD_CONNECT) {
    mm.topic = mm.data = cm_str_n("", 0); /* no message in a CONNECT */
    /* Set up first: the handler answers with CONNACK in this version, and
     * what its properties announce (Server Keep Alive...) wins. */
    cm__mqtt_server_connect(st, m);
    struct cm_mqtt_prop p;
    if (m->version == 5 && cm_mqtt_prop_find(m->props, CM_MQTT_PROP_AUTHENTICATION_METHOD, &p) &&
        !cm__mqtt_set_auth_method(st, p.val)) {
      fail(st, CM_MQTT_RC_IMPLEMENTATION_SPECIFIC, "out of memory");
      return;
    }
  }
  cm_call(c, CM_EV_MQTT_CMD, &mm);
  if (c->is_closing) return;
  switch (m->cmd) {
    case CM_MQTT_CMD_CONNACK:
      cm__mqtt_client_connack(st, m);
      break;
    case CM_MQTT_CMD_PUBLISH:
      on_publish(st, &mm);
      break;
    case CM_MQTT_CMD_PUBACK:
    case CM_MQTT_CMD_PUBREC:
    case CM_MQTT_CMD_PUBREL:
    case CM_MQTT_CMD_PUBCOMP:
      on_ack(st, m);
      break;
    case CM_MQTT_CMD_PINGRESP:
      st->ping_out = false;
      break;
    case CM_MQTT_CMD_DISCONNECT:
      on_disconnect(st, m);
      break;
    default:
      break;
  }
}

/* Parses and handles every whole packet in the input, until the queued
 * output reaches its mark (cm_conn_send_full): a peer that floods
 * PUBLISHes or pings and never reads the acks must not grow our send
 * buffer without bound.  The WRITE that brings it below the mark goes on. */
static void process(struct cm__mqtt *st) {
  struct cm_conn *c = st->c;
  st->held = false;
  while (!c->is_closing && !c->is_draining && !st->failed) {
    struct cm_buf *in = st->over_ws ? &st->ws->rx : &c->recv;
    if (in->len == 0) break;
    if (cm_conn_send_full(c)) {
      st->held = true;
      break;
    }
    struct cm_mqtt_packet m;
    const uint8_t *buf = cm_buf_data(in);
    uint8_t version = st->version == 5 ? 5 : 4;
    int r = cm_mqtt_parse(buf, in->len, version, st->lim.max_packet_size, &m);
    if (r < 0) {
      fail(st, -r, m.error);
      break;
    }
    if (r == 0) {
      /* Let c->recv grow to hold the whole packet (the parser has checked
       * its size against the limit once the header was complete). */
      uint32_t rem;
      int used = in->len > 1 ? cm_mqtt_varint_decode(buf + 1, in->len - 1, &rem) : 0;
      size_t need = used > 0 ? 1 + (size_t)used + rem : 0;
      if (!st->over_ws && need > c->recv_limit) {
        c->recv_limit = need;
        cm_recv_consume(c, 0);
      }
      break;
    }
    st->last_rx_ms = cm_millis();
    handle(st, &m, buf);
    if (st->over_ws) {
      cm_buf_consume(&st->ws->rx, (size_t)r);
    } else {
      cm_recv_consume(c, (size_t)r);
      if (c->recv_limit != st->base_recv_limit && c->recv.len < st->base_recv_limit) {
        c->recv_limit = st->base_recv_limit;
        cm_buf_trim(&c->recv);
        cm_recv_consume(c, 0);
      }
    }
  }
  if (st->failed || c->is_closing || c->is_draining) {
    if (st->over_ws) cm_buf_free(&st->ws->rx);
    else cm_recv_consume(c, c->recv.len);
  }
}

/* --------------------------------------------------------------- timer */

/* The next moment something is due: the CONNECT/CONNACK deadline, the
 * PINGREQ (client: a keepalive after the last packet sent), the PINGRESP
 * deadline, or (server) 1.5 keepalives after the last packet received
 * (3.1.2.10).  0: nothing. */
static uint64_t next_deadline(const struct cm__mqtt *st) {
  if (!st->connected) return st->deadline_ms;
  if (st->keepalive_ms == 0) return 0;
  if (st->is_server) return st->last_rx_ms + st->keepalive_ms + st->keepalive_ms / 2;
  if (st->ping_out) return st->ping_ms + st->keepalive_ms;
  return st->last_tx_ms + st->keepalive_ms;
}

static void on_timer(void *arg);

/* Drops the timer (never from its own callback: the manager still reads
 * it when that returns). */
static void drop_timer(struct cm__mqtt *st) {
  if (st->timer == NULL) return;
  cm__timer_unschedule(st->c->mgr, st->timer);
  free(st->timer);
  st->timer = NULL;
}

/* Schedules the timer for deadline d, allocating it; false when out of
 * memory. */
static bool schedule(struct cm__mqtt *st, uint64_t d) {
  if (st->timer == NULL) {
    st->timer = calloc(1, sizeof(*st->timer));
    if (st->timer == NULL) return false;
    cm__timer_init(st->timer, on_timer, st);
  }
  return cm__timer_schedule(st->c->mgr, st->timer, d);
}

/* Schedules the timer for the next deadline when that is earlier than the
 * one scheduled.  Traffic only moves deadlines later, so it never needs to
 * touch the timer: one that fires early schedules itself again.  Without a
 * deadline (or with a sweeping owner, once connected) the timer goes.  Out
 * of memory fails the connection: a deadline that cannot fire is not
 * enforced. */
static void arm(struct cm__mqtt *st) {
  uint64_t d = next_deadline(st);
  if (d == 0 || (st->swept && st->connected)) {
    drop_timer(st);
  } else if (st->timer == NULL || !cm__timer_scheduled(st->c->mgr, st->timer) ||
             d < st->timer->expire_ms) {
    if (!schedule(st, d)) fail(st, CM_MQTT_RC_IMPLEMENTATION_SPECIFIC, "out of memory");
  }
}

static void on_timer(void *arg) {
  struct cm__mqtt *st = arg;
  struct cm_conn *c = st->c;
  if (c->is_closing || st->failed) return;
  uint64_t d = next_deadline(st);
  if (d == 0) return;
  if (cm_millis() < d) {
    cm__timer_schedule(c->mgr, st->timer, d); /* allocated: it is running */
    return;
  }
  /* Act in the flush step (POLL to the protocol handler), outside this
   * timer's callback: handlers run there, and this state holds the timer. */
  st->timer_due = true;
  cm__conn_want_poll(c);
}

/* A deadline passed (from POLL): ping, or fail the connection. */
static void deadline_passed(struct cm__mqtt *st) {
  struct cm_conn *c = st->c;
  st->timer_due = false;
  if (c->is_closing || st->failed) return;
  uint64_t now = cm_millis(), d = next_deadline(st);
  if (d == 0) return;
  if (now < d) {
    arm(st);
  } else if (!st->connected) {
    st->failed = true;
    cm_error(c, st->is_server ? "MQTT: no CONNECT in time" : "MQTT: no CONNACK in time");
  } else if (st->is_server) {
    fail(st, CM_MQTT_RC_KEEP_ALIVE_TIMEOUT, "nothing received within 1.5 keepalive periods");
  } else if (st->ping_out) {
    st->failed = true;
    cm_error(c, "MQTT: no PINGRESP within the keepalive period (%llu ms)",
             (unsigned long long)st->keepalive_ms);
  } else {
    if (cm_mqtt_ping(c) == 0) {
      st->ping_out = true;
      st->ping_ms = now;
    }
    arm(st);
  }
}

void cm__mqtt_set_keepalive(struct cm__mqtt *st, uint64_t ms) {
  st->keepalive_ms = ms;
  arm(st);
}

void cm__mqtt_use_sweep(struct cm__mqtt *st) {
  st->swept = true;
  arm(st);
}

void cm__mqtt_sweep(struct cm__mqtt *st, uint64_t now) {
  struct cm_conn *c = st->c;
  if (st->timer_due || c->is_closing || st->failed) return;
  uint64_t d = next_deadline(st);
  if (d == 0 || now < d) return;
  st->timer_due = true;
  cm__conn_want_poll(c);
}

/* ------------------------------------------------------------ life cycle */

struct cm__mqtt *cm__mqtt_new(struct cm_conn *c, const struct cm_mqtt_limits *lim,
                              struct cm_mqtt_session *sess) {
  struct cm__mqtt *st = calloc(1, sizeof(*st));
  if (st == NULL) return NULL;
  st->kind = CM__MQTT_KIND;
  st->c = c;
  if (lim != NULL) st->lim = *lim;
  cm__mqtt_limits_resolve(&st->lim);
  if (sess == NULL) {
    sess = cm__mqtt_session_new_server(); /* clients always bring theirs */
    if (sess == NULL) {
      free(st);
      return NULL;
    }
    st->own_session = true;
  }
  sess->in_use = true;
  st->sess = sess;
  st->window = (uint16_t)st->lim.max_inflight;
  st->peer_max_qos = 2;
  st->last_rx_ms = st->last_tx_ms = cm_millis();
  st->deadline_ms = st->last_rx_ms + st->lim.connect_timeout_ms;
  if (!schedule(st, st->deadline_ms)) { /* out of memory */
    cm__mqtt_free(st);
    return NULL;
  }
  return st;
}

void cm__mqtt_free(struct cm__mqtt *st) {
  if (st == NULL) return;
  drop_timer(st);
  if (st->own_session) cm_mqtt_session_free(st->sess);
  else st->sess->in_use = false;
  for (size_t i = 0; st->alias_in != NULL && i <= st->our_alias_max; i++) free(st->alias_in[i]);
  for (size_t i = 0; st->alias_out != NULL && i <= st->peer_alias_max; i++) free(st->alias_out[i]);
  free(st->alias_in);
  free(st->alias_out);
  if (st->ws != NULL) {
    cm_buf_free(&st->ws->rx);
    cm_buf_free(&st->ws->pending);
    free(st->ws);
  }
  free(st->tls);
  free(st->auth_method);
  free(st);
}

bool cm__mqtt_attach(struct cm_conn *c, struct cm__mqtt *st, bool over_ws) {
  st->over_ws = over_ws;
  if (over_ws) {
    if (st->ws == NULL && (st->ws = calloc(1, sizeof(*st->ws))) == NULL) return false;
    st->ws_open = c->is_websocket;
    return cm__ws_set_upper(c, cm__mqtt_pfn, st);
  }
  if (c->recv_limit < 4096) c->recv_limit = 4096;
  st->base_recv_limit = c->recv_limit;
  c->pfn = cm__mqtt_pfn;
  c->pfn_data = st;
  return true;
}

/* Over WebSocket: a binary message carries MQTT bytes (any split). */
static void ws_message(struct cm__mqtt *st, const struct cm_ws_msg *wm) {
  if (st->failed) return;
  if (CM_WS_MSG_OP(wm->flags) != CM_WS_OP_BINARY) {
    fail(st, CM_MQTT_RC_MALFORMED, "MQTT over WebSocket in a text message");
    return;
  }
  if (st->ws->rx.len + wm->data.len > (size_t)st->lim.max_packet_size * 2 + 65536) {
    fail(st, CM_MQTT_RC_PACKET_TOO_LARGE, "too many bytes buffered");
    return;
  }
  if (cm_buf_append(&st->ws->rx, wm->data.buf, wm->data.len) != 0) {
    fail(st, CM_MQTT_RC_IMPLEMENTATION_SPECIFIC, "out of memory");
    return;
  }
  process(st);
}

void cm__mqtt_pfn(struct cm_conn *c, int ev, void *ev_data) {
  struct cm__mqtt *st = cm__mqtt_of(c);
  if (st == NULL) {
    /* A listener's options (server.c), or state already gone. */
    cm__mqtt_listener_pfn(c, ev, ev_data);
    return;
  }
  switch (ev) {
    case CM_EV_READ:
      if (!st->over_ws) process(st);
      /* A client waits for answers: acknowledge what arrived at once.  A
       * broker with Nagle on (mosquitto's default) holds the PUBLISH it
       * forwards behind a PUBACK until that PUBACK is acknowledged, so a
       * delayed ACK would stall every QoS 1 round trip by ~40 ms.  Linux
       * clears TCP_QUICKACK by itself, hence after every read; not when we
       * have bytes to send anyway (written at the end of this poll turn,
       * they carry the ACK), which saves a syscall per read under load. */
      if (c->is_client && c->fd >= 0 && c->send.len == 0) {
        int one = 1;
        (void)setsockopt(c->fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
      }
      break;
    case CM_EV_CONNECT:
      if (st->tls != NULL) {
        /* Here, not inside cm_mqtt_connect(): bad options give an ERROR,
         * which a public call must not deliver synchronously. */
        struct cm_tls_opts *t = st->tls;
        st->tls = NULL;
        cm_tls_init(c, t);
        free(t);
      }
      break;
    case CM_EV_WRITE:
      if (st->held && !cm_conn_send_full(c)) process(st);
      break;
    case CM_EV_POLL:
      if (st->timer_due) deadline_passed(st);
      break;
    case CM_EV_WS_OPEN:
      st->ws_open = true;
      if (st->ws->pending.len > 0) {
        cm_ws_send(c, cm_buf_data(&st->ws->pending), st->ws->pending.len, CM_WS_OP_BINARY);
        cm_buf_free(&st->ws->pending);
      }
      break;
    case CM_EV_WS_MSG:
      ws_message(st, ev_data);
      break;
    case CM_EV_CLOSE:
      if (!st->over_ws) {
        c->pfn = NULL;
        c->pfn_data = NULL;
      }
      cm__mqtt_free(st);
      break;
    default:
      break;
  }
}
