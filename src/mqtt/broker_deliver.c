/*
 * Delivery: a published message is matched once against the tree, then
 * encoded once per variant (protocol 3.1.1 or 5, QoS, retain flag) and the
 * same bytes are appended to every subscriber's output (the core writes
 * each connection once per poll turn).  QoS 1/2 copies are held in the
 * subscriber's session (the template with its packet id patched in) until
 * acknowledged; offline persistent sessions hold them until the client
 * returns.  Slow subscribers (output above the high-water mark) lose QoS 0
 * and queue QoS 1/2 up to their bound.
 */
#include <stdlib.h>
#include <string.h>

#include "mqtt/broker.h"

/* Builds the v5 property block of a delivery into out (raw, no length):
 * the publisher's properties with Message Expiry Interval set to what is
 * left, plus subscription identifiers. */
static bool build_props(struct cm_buf *out, const struct cm_mqtt_broker_msg *m, const uint32_t *ids,
                        uint32_t nids) {
  out->len = out->off = 0;
  struct cm_mqtt_prop p;
  size_t pos = 0;
  while (cm_mqtt_prop_next(m->props, &pos, &p)) {
    if (p.id == CM_MQTT_PROP_MESSAGE_EXPIRY_INTERVAL || p.id == CM_MQTT_PROP_TOPIC_ALIAS ||
        p.id == CM_MQTT_PROP_SUBSCRIPTION_IDENTIFIER)
      continue;
    if (cm__mqtt_props_raw(out, &p, 1) != 0) return false;
  }
  if (m->expiry_s != 0) {
    struct cm_mqtt_prop e = {.id = CM_MQTT_PROP_MESSAGE_EXPIRY_INTERVAL, .iv = m->expiry_s};
    if (cm__mqtt_props_raw(out, &e, 1) != 0) return false;
  }
  for (uint32_t i = 0; i < nids; i++) {
    struct cm_mqtt_prop s = {.id = CM_MQTT_PROP_SUBSCRIPTION_IDENTIFIER, .iv = ids[i]};
    if (cm__mqtt_props_raw(out, &s, 1) != 0) return false;
  }
  return true;
}

bool cm__bd_encode(struct cm_mqtt_broker *b, struct cm_buf *out, uint8_t v,
                   const struct cm_mqtt_broker_msg *m, uint8_t qos, bool retain, uint16_t id,
                   const uint32_t *ids, uint32_t nids) {
  struct cm_mqtt_packet pkt = {0};
  pkt.cmd = CM_MQTT_CMD_PUBLISH;
  pkt.version = v == 5 ? 5 : 4;
  pkt.qos = qos;
  pkt.retain = retain;
  pkt.id = qos > 0 ? (id != 0 ? id : 1) : 0;
  pkt.topic = m->topic;
  pkt.payload = m->payload;
  if (v == 5) {
    if (m->expiry_s == 0 && nids == 0) {
      pkt.props = m->props;
    } else {
      if (!build_props(&b->props, m, ids, nids)) return false;
      pkt.props = cm_str_n((const char *)cm_buf_data(&b->props), b->props.len);
    }
  }
  out->len = out->off = 0;
  return cm_mqtt_encode(out, &pkt) == 0;
}

/* Where the packet id sits in an encoded PUBLISH. */
static size_t id_offset(const uint8_t *pkt, size_t len, size_t topic_len) {
  uint32_t rem;
  int used = cm_mqtt_varint_decode(pkt + 1, len - 1, &rem);
  return 1 + (size_t)(used > 0 ? used : 1) + 2 + topic_len;
}

static void report_held(struct cm_mqtt_broker *b, struct bsess *s, uint16_t id, int state,
                        const struct cm_mqtt_broker_msg *m) {
  const struct cm_mqtt_broker_store *st = &b->o.store;
  if (s->persistent && !b->loading && st->msg_held != NULL) {
    cm__bstore_dirty(b);
    cm__bstore_result(b, st->msg_held(st->arg, cm_str_n(s->id, s->id_len), id, state, m),
                      "a held message");
  }
}

void cm__bd_kick(struct bclient *cl, uint8_t reason, const char *why) {
  struct cm_conn *c = cl->c;
  if (c->is_closing || c->is_draining) return;
  cl->reason = reason;
  cl->why = why;
  if (cl->version == 5) {
    cm_mqtt_disconnect_reason(c, reason, NULL, 0);
  } else {
    cm_drain(c);
  }
}

/* Sends (or holds) one encoded PUBLISH for session s.  False when it was
 * neither sent nor held (dropped). */
static bool send_to(struct cm_mqtt_broker *b, struct bsess *s, const uint8_t *pkt, size_t len,
                    uint8_t qos, const struct cm_mqtt_broker_msg *m) {
  struct bclient *cl = s->client;
  struct cm__mqtt *st = cl != NULL ? cm__mqtt_of(cl->c) : NULL;
  if (st != NULL && (cl->c->is_closing || cl->c->is_draining)) st = NULL;
  if (st != NULL && st->peer_max_packet != 0 && len > st->peer_max_packet) {
    b->st.msgs_dropped++; /* 3.1.2.25: never above the client's maximum */
    return false;
  }
  bool full = st != NULL && cm_conn_send_full(cl->c);
  if (full && b->o.slow_policy == CM_MQTT_SLOW_DISCONNECT) {
    b->st.msgs_dropped++;
    cm__bd_kick(cl, CM_MQTT_RC_QUOTA_EXCEEDED, "slow subscriber");
    return false;
  }
  if (qos == 0) {
    if (st == NULL) return false; /* QoS 0 is not queued for offline clients */
    if (full) {
      b->st.msgs_dropped++;
      return false;
    }
    if (!cm__mqtt_tx(st, pkt, len)) return false;
    b->st.msgs_sent++;
    return true;
  }
  if (cl == NULL && !s->persistent) return false;
  struct cm_mqtt_session *ms = s->ms;
  if (ms->count >= b->o.max_queued) {
    b->st.msgs_dropped++;
    if (st != NULL) cm__bd_kick(cl, CM_MQTT_RC_QUOTA_EXCEEDED, "too many messages queued");
    return false;
  }
  uint16_t id = cm__mqtt_session_id(ms);
  struct cm__mqtt_out *o = id != 0 ? cm__mqtt_session_add(ms, id, qos, pkt, len) : NULL;
  if (o == NULL) {
    b->st.msgs_dropped++;
    return false;
  }
  size_t off = id_offset(o->pkt, o->len, m->topic.len);
  o->pkt[off] = (uint8_t)(id >> 8);
  o->pkt[off + 1] = (uint8_t)id;
  o->pkt[0] = (uint8_t)(o->pkt[0] & ~0x08);
  if (m->expiry_s != 0) o->expire_ms = cm_millis() + (uint64_t)m->expiry_s * 1000;
  b->st.queued++;
  report_held(b, s, id, CM_MQTT_HELD_QUEUED, m);
  if (st == NULL) return true;
  if (full) {
    cl->slow = true;
    return true;
  }
  if (ms->inflight < st->window) {
    size_t before = ms->inflight;
    cm__mqtt_pump(st);
    b->st.msgs_sent += ms->inflight - before;
  }
  return true;
}

/* The glue of a v5 client that gets a QoS 0 message now and takes topic
 * aliases from us, else NULL.  QoS 1/2 copies are held and may be resent
 * on another connection, so they always carry the topic name. */
static struct cm__mqtt *alias_glue(struct bsess *s, uint8_t qos) {
  struct bclient *cl = s->client;
  if (qos != 0 || cl == NULL || cl->version != 5) return NULL;
  struct cm__mqtt *st = cm__mqtt_of(cl->c);
  return st != NULL && st->peer_alias_max > 0 && !cl->c->is_closing && !cl->c->is_draining ? st
                                                                                            : NULL;
}

/* Encodes m as a v5 QoS 0 PUBLISH with topic alias `alias` (the topic name
 * too when first) into out. */
static bool encode_aliased(struct cm_mqtt_broker *b, struct cm_buf *out,
                           const struct cm_mqtt_broker_msg *m, bool retain, uint16_t alias,
                           bool first, const uint32_t *ids, uint32_t nids) {
  if (!build_props(&b->props, m, ids, nids)) return false;
  struct cm_mqtt_prop a = {.id = CM_MQTT_PROP_TOPIC_ALIAS, .iv = alias};
  if (cm__mqtt_props_raw(&b->props, &a, 1) != 0) return false;
  struct cm_mqtt_packet pkt = {0};
  pkt.cmd = CM_MQTT_CMD_PUBLISH;
  pkt.version = 5;
  pkt.retain = retain;
  pkt.topic = first ? m->topic : cm_str_n("", 0);
  pkt.payload = m->payload;
  pkt.props = cm_str_n((const char *)cm_buf_data(&b->props), b->props.len);
  out->len = out->off = 0;
  return cm_mqtt_encode(out, &pkt) == 0;
}

void cm__bd_deliver_one(struct cm_mqtt_broker *b, struct bsess *s, const struct cm_mqtt_broker_msg *m,
                        uint8_t qos, bool retain, const uint32_t *ids, uint32_t nids) {
  uint8_t v = s->client != NULL ? s->client->version : s->held_version;
  struct cm__mqtt *st = alias_glue(s, qos);
  bool first = false;
  uint16_t alias = st != NULL ? cm__mqtt_alias_for(st, m->topic, &first) : 0;
  bool ok = alias != 0 ? encode_aliased(b, &b->enc, m, retain, alias, first, ids, nids)
                       : cm__bd_encode(b, &b->enc, v, m, qos, retain, 1, ids, nids);
  ok = ok && send_to(b, s, cm_buf_data(&b->enc), b->enc.len, qos, m);
  if (!ok && first) cm__mqtt_alias_forget(st, alias);
}

static bool acl_read(struct cm_mqtt_broker *b, struct bsess *s, struct cm_str topic) {
  if (b->o.acl_check == NULL) return true;
  struct cm_mqtt_client_info who = {0};
  if (s->client != NULL) {
    cm__bc_info(s->client, &who);
  } else {
    who.client_id = cm_str_n(s->id, s->id_len);
    who.version = s->held_version;
  }
  return b->o.acl_check(b->o.acl_arg, &who, topic, CM_MQTT_ACL_READ);
}

int cm__bd_route(struct cm_mqtt_broker *b, const struct cm_mqtt_broker_msg *m,
                 const struct bsess *from) {
  cm__bt_match(b, m->topic, from);
  /* Templates by [qos][v5][retain], valid for this message only. */
  struct cm_buf *tpl[3][2][2] = {{{NULL}}};
  uint16_t al_num = 0; /* what b->aenc holds for this message: alias, */
  bool al_first = false, al_retain = false; /* name sent, retain flag */
  int n = 0;
  for (size_t i = 0; i < b->rv_len; i++) {
    struct brcpt *r = &b->rv[i];
    struct bsess *s = r->sess;
    if (s->client == NULL && !s->persistent) continue;
    if (!acl_read(b, s, m->topic)) continue;
    uint8_t q = m->qos < r->qos ? m->qos : r->qos;
    bool retain = r->rap && m->retain;
    uint8_t v = s->client != NULL ? s->client->version : s->held_version;
    n++;
    if (r->nids > 0 && v == 5) {
      cm__bd_deliver_one(b, s, m, q, retain, r->ids, r->nids);
      continue;
    }
    struct cm__mqtt *ast = alias_glue(s, q);
    bool first = false;
    uint16_t alias = ast != NULL ? cm__mqtt_alias_for(ast, m->topic, &first) : 0;
    if (alias != 0) {
      /* Clients that gave this topic the same alias get the same bytes:
       * the last aliased encoding is kept for the next one. */
      bool ok = alias == al_num && first == al_first && retain == al_retain;
      if (!ok) {
        ok = encode_aliased(b, &b->aenc, m, retain, alias, first, NULL, 0);
        al_num = ok ? alias : 0, al_first = first, al_retain = retain;
      }
      /* A name that never went out gives no alias: the next message would
       * carry an alias the client cannot resolve. */
      if (!(ok && send_to(b, s, cm_buf_data(&b->aenc), b->aenc.len, q, m)) && first)
        cm__mqtt_alias_forget(ast, alias);
      continue;
    }
    struct cm_buf **t = &tpl[q][v == 5][retain];
    if (*t == NULL) {
      struct cm_buf *buf = &b->tpl[q][v == 5][retain];
      if (!cm__bd_encode(b, buf, v, m, q, retain, 1, NULL, 0)) continue;
      *t = buf;
    }
    send_to(b, s, cm_buf_data(*t), (*t)->len, q, m);
  }
  /* Templates of a large message are not kept between messages. */
  if (b->aenc.cap > 65536) cm_buf_free(&b->aenc);
  for (int q = 0; q < 3; q++)
    for (int v = 0; v < 2; v++)
      for (int r = 0; r < 2; r++)
        if (b->tpl[q][v][r].cap > 65536) cm_buf_free(&b->tpl[q][v][r]);
  return n;
}

/* Forgets a held message that will never be delivered (expired, too large
 * for the client, not re-encodable): counted as dropped, and the store
 * hears of it. */
static void drop_held(struct cm_mqtt_broker *b, struct bsess *s, struct cm__mqtt_out *o) {
  uint16_t id = o->id;
  cm__mqtt_session_remove(s->ms, o);
  b->st.msgs_dropped++;
  b->st.queued--;
  if (s->persistent && b->o.store.msg_done != NULL) {
    cm__bstore_dirty(b);
    b->o.store.msg_done(b->o.store.arg, cm_str_n(s->id, s->id_len), id);
  }
}

/* Re-encodes a held message for version v, with what is left of its
 * expiry; returns the replacement (linked in place of o) or NULL when it
 * expired or cannot be encoded (then it is gone). */
static struct cm__mqtt_out *reencode(struct cm_mqtt_broker *b, struct bsess *s,
                                     struct cm__mqtt_out *o, struct cm__mqtt_out *prev, uint8_t v,
                                     uint64_t now) {
  struct cm_mqtt_session *ms = s->ms;
  struct cm_mqtt_packet pkt;
  uint8_t from_v = s->held_version == 5 ? 5 : 4;
  struct cm_mqtt_broker_msg m = {0};
  bool ok = cm_mqtt_parse(o->pkt, o->len, from_v, 0, &pkt) > 0;
  if (ok) {
    m.topic = pkt.topic;
    m.payload = pkt.payload;
    m.props = pkt.props;
    m.qos = pkt.qos;
    if (o->expire_ms != 0) m.expiry_s = (uint32_t)((o->expire_ms - now + 999) / 1000);
    ok = cm__bd_encode(b, &b->enc2, v, &m, pkt.qos, pkt.retain, o->id, NULL, 0);
  }
  struct cm__mqtt_out *n = ok ? malloc(sizeof(*n) + b->enc2.len) : NULL;
  if (n == NULL) {
    drop_held(b, s, o);
    return NULL;
  }
  *n = *o;
  n->len = b->enc2.len;
  memcpy(n->pkt, cm_buf_data(&b->enc2), n->len);
  if (o->pkt[0] & 0x08) n->pkt[0] = (uint8_t)(n->pkt[0] | 0x08);
  if (prev != NULL) prev->next = n;
  else ms->head = n;
  if (ms->tail == o) ms->tail = n;
  free(o);
  return n;
}

struct cm__mqtt_out *cm__bd_prepare(void *arg, struct cm__mqtt *st, struct cm__mqtt_out *o,
                                   struct cm__mqtt_out *prev) {
  struct bclient *cl = arg;
  struct bsess *s = cl->sess;
  struct cm_mqtt_broker *b = cl->b;
  if (s == NULL || st->sess != s->ms) return o; /* taken over: its own state */
  uint64_t now = cm_millis();
  if (o->expire_ms != 0) {
    if (now >= o->expire_ms) {
      drop_held(b, s, o); /* expired while it waited for the window */
      return NULL;
    }
    /* 3.3.2.3.3: the interval it carries is what is left. */
    if (cl->version == 5 && (o = reencode(b, s, o, prev, cl->version, now)) == NULL) return NULL;
  }
  if (st->peer_max_packet != 0 && o->len > st->peer_max_packet) {
    drop_held(b, s, o); /* 3.1.2.25: never above the client's maximum */
    return NULL;
  }
  /* It goes out now: queued -> sent is a record, so that a restart after
   * it resends it with DUP (4.4) instead of as a new message. */
  if (s->persistent && !b->loading && b->o.store.msg_state != NULL) {
    cm__bstore_dirty(b);
    b->o.store.msg_state(b->o.store.arg, cm_str_n(s->id, s->id_len), o->id, CM_MQTT_HELD_SENT);
  }
  return o;
}

void cm__bd_resume(struct cm_mqtt_broker *b, struct bclient *cl, bool resend) {
  struct bsess *s = cl->sess;
  struct cm__mqtt *st = cm__mqtt_of(cl->c);
  if (s == NULL || st == NULL) return;
  struct cm_mqtt_session *ms = s->ms;
  uint64_t now = cm_millis();
  bool other_version = (s->held_version == 5) != (cl->version == 5);
  struct cm__mqtt_out *prev = NULL;
  for (struct cm__mqtt_out *o = ms->head, *next; o != NULL; o = next) {
    next = o->next;
    if (o->state == CM__OUT_QUEUED && o->expire_ms != 0 && now >= o->expire_ms) {
      drop_held(b, s, o); /* expired while held */
      continue;
    }
    if (o->state != CM__OUT_RELEASED && (other_version || (o->expire_ms != 0 && cl->version == 5))) {
      o = reencode(b, s, o, prev, cl->version, now);
      if (o == NULL) continue;
    }
    prev = o;
  }
  s->held_version = cl->version;
  if (resend) {
    /* 4.4: unacknowledged PUBLISH again with DUP, PUBRELs again, in order. */
    for (struct cm__mqtt_out *o = ms->head, *next; o != NULL; o = next) {
      next = o->next;
      if (o->state == CM__OUT_QUEUED) continue;
      if (o->state == CM__OUT_RELEASED) {
        cm_mqtt_send_ack(cl->c, CM_MQTT_CMD_PUBREL, o->id, 0);
      } else if (st->peer_max_packet != 0 && o->len > st->peer_max_packet) {
        drop_held(b, s, o); /* 3.1.2.25: the returning client allows less */
      } else {
        o->pkt[0] = (uint8_t)(o->pkt[0] | 0x08);
        if (cm__mqtt_tx(st, o->pkt, o->len)) b->st.msgs_sent++;
      }
    }
  }
  cm__mqtt_pump(st);
}
