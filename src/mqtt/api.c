/*
 * What applications send on an MQTT connection (either side): publish,
 * subscribe, unsubscribe, ping, disconnect, acks and raw packets.
 */
#include <stdlib.h>
#include <string.h>

#include "mqtt/internal.h"

/* The connection's state when it can send at all. */
static struct cm__mqtt *sendable(struct cm_conn *c) {
  struct cm__mqtt *st = cm__mqtt_of(c);
  if (st == NULL || c->is_closing || c->is_draining || st->failed) return NULL;
  return st;
}

/* Why sendable(c) said no. */
static int unsendable(const struct cm_conn *c) {
  return c == NULL || cm__mqtt_of((struct cm_conn *)c) == NULL ? CM_EINVAL : CM_ECLOSED;
}

uint16_t cm__mqtt_alias_for(struct cm__mqtt *st, struct cm_str topic, bool *first) {
  if (st->peer_alias_max == 0) return 0;
  if (st->alias_out == NULL) {
    st->alias_out = calloc((size_t)st->peer_alias_max + 1, sizeof(char *));
    if (st->alias_out == NULL) return 0;
  }
  for (uint16_t i = 1; i <= st->peer_alias_max; i++) {
    char *t = st->alias_out[i];
    if (t == NULL) {
      t = malloc(topic.len + 1);
      if (t == NULL) return 0;
      memcpy(t, topic.buf, topic.len);
      t[topic.len] = '\0';
      st->alias_out[i] = t;
      *first = true;
      return i;
    }
    if (strlen(t) == topic.len && memcmp(t, topic.buf, topic.len) == 0) {
      *first = false;
      return i;
    }
  }
  return 0; /* all taken: send names */
}

void cm__mqtt_alias_forget(struct cm__mqtt *st, uint16_t alias) {
  if (st->alias_out == NULL || alias == 0 || alias > st->peer_alias_max) return;
  free(st->alias_out[alias]);
  st->alias_out[alias] = NULL;
}

int cm_mqtt_publish(struct cm_conn *c, const struct cm_mqtt_pub_opts *o) {
  struct cm__mqtt *st = sendable(c);
  if (st == NULL) return unsendable(c);
  if (o == NULL || o->qos > 2 || !cm_mqtt_topic_valid(o->topic)) return CM_EINVAL;
  /* 3.2.2.3.4, 3.2.2.3.5: what the server said it does not take. */
  if (o->qos > st->peer_max_qos || (o->retain && st->peer_no_retain)) return CM_EINVAL;
  struct cm_mqtt_session *s = st->sess;
  if (o->qos > 0 && (s->count - s->inflight >= st->lim.max_queued || s->count >= 65535))
    return CM_EAGAIN;
  struct cm_mqtt_packet m = {0};
  struct cm_buf pb = {0};
  struct cm_buf *out = cm__mqtt_scratch();
  struct cm__mqtt_out *held;
  bool first = false; /* alias assigned by this call, told to the peer now */
  uint16_t alias = 0;
  int rc = CM_EINVAL;
  m.cmd = CM_MQTT_CMD_PUBLISH;
  m.version = st->version == 0 ? 4 : st->version;
  m.qos = o->qos;
  m.retain = o->retain;
  m.topic = o->topic;
  m.payload = o->message;
  if (m.version == 5) {
    if (cm__mqtt_props_raw(&pb, o->props, o->num_props) != 0) goto done;
    /* QoS 0 takes its alias now; a held message when it goes out
     * (cm__mqtt_send_out), so aliases follow the order on the wire. */
    alias = o->topic_alias && o->qos == 0 ? cm__mqtt_alias_for(st, o->topic, &first) : 0;
    if (alias != 0) {
      struct cm_mqtt_prop p = {.id = CM_MQTT_PROP_TOPIC_ALIAS, .iv = alias};
      if (cm__mqtt_props_raw(&pb, &p, 1) != 0) goto done;
      if (!first) m.topic = cm_str_n("", 0);
    }
    m.props = cm_str_n((const char *)cm_buf_data(&pb), pb.len);
  }
  if (o->qos > 0) m.id = cm__mqtt_session_id(s);
  if (cm_mqtt_encode(out, &m) != 0) goto done;
  if (st->peer_max_packet != 0 && out->len > st->peer_max_packet) {
    rc = CM_ETOOBIG;
    goto done;
  }
  if (o->qos == 0) {
    rc = cm__mqtt_tx(st, cm_buf_data(out), out->len) ? 0 : cm__mqtt_tx_error(c);
  } else if ((held = cm__mqtt_session_add(s, m.id, o->qos, cm_buf_data(out), out->len)) != NULL) {
    if (m.version == 5) {
      if (o->topic_alias) held->flags |= CM__OUT_F_ALIAS;
      struct cm_mqtt_prop p;
      if (cm_mqtt_prop_find(m.props, CM_MQTT_PROP_MESSAGE_EXPIRY_INTERVAL, &p) && p.iv != 0) {
        held->flags |= CM__OUT_F_EXPIRY;
        held->expiry_s = p.iv;
        held->expire_ms = cm_millis() + (uint64_t)p.iv * 1000;
      }
    }
    rc = m.id;
    cm__mqtt_pump(st);
  } else {
    rc = CM_ENOMEM;
  }
done:
  if (rc < 0 && first) cm__mqtt_alias_forget(st, alias); /* the peer never learnt it */
  cm_buf_free(&pb);
  cm__mqtt_scratch_done(out);
  return rc;
}

int cm_mqtt_pub(struct cm_conn *c, struct cm_str topic, struct cm_str message, int qos, bool retain) {
  if (qos < 0 || qos > 2) return CM_EINVAL;
  struct cm_mqtt_pub_opts o = {0};
  o.topic = topic;
  o.message = message;
  o.qos = (uint8_t)qos;
  o.retain = retain;
  return cm_mqtt_publish(c, &o);
}

/* SUBSCRIBE / UNSUBSCRIBE with a fresh packet id. */
static int send_filters(struct cm__mqtt *st, int cmd, struct cm_buf *list, uint32_t sub_id,
                        const struct cm_mqtt_prop *props, size_t num_props) {
  struct cm_mqtt_packet m = {0};
  struct cm_buf pb = {0};
  int rc = CM_EINVAL;
  m.cmd = (uint8_t)cmd;
  m.version = st->version == 0 ? 4 : st->version;
  m.id = cm__mqtt_session_id(st->sess);
  m.payload = cm_str_n((const char *)cm_buf_data(list), list->len);
  if (m.version == 5) {
    if (sub_id != 0) {
      struct cm_mqtt_prop p = {.id = CM_MQTT_PROP_SUBSCRIPTION_IDENTIFIER, .iv = sub_id};
      if (sub_id > CM_MQTT_MAX_REMAINING || cm__mqtt_props_raw(&pb, &p, 1) != 0) goto done;
    }
    if (cm__mqtt_props_raw(&pb, props, num_props) != 0) goto done;
    m.props = cm_str_n((const char *)cm_buf_data(&pb), pb.len);
  }
  rc = cm__mqtt_send_rc(st, &m);
  if (rc == 0) rc = m.id;
done:
  cm_buf_free(&pb);
  return rc;
}

int cm_mqtt_subscribe(struct cm_conn *c, const struct cm_mqtt_sub_opts *subs, size_t n,
                      uint32_t sub_id, const struct cm_mqtt_prop *props, size_t num_props) {
  struct cm__mqtt *st = sendable(c);
  if (st == NULL) return unsendable(c);
  if (subs == NULL || n == 0) return CM_EINVAL;
  struct cm_buf list = {0};
  int rc = CM_EINVAL;
  for (size_t i = 0; i < n; i++) {
    const struct cm_mqtt_sub_opts *s = &subs[i];
    if (!cm_mqtt_filter_valid(s->topic) || s->qos > 2 || s->retain_handling > 2) goto done;
    uint8_t opt = s->qos;
    if (st->version == 5) {
      opt = (uint8_t)(opt | (s->no_local ? CM_MQTT_SUB_NO_LOCAL : 0) |
                      (s->retain_as_published ? CM_MQTT_SUB_RETAIN_AS_PUBLISHED : 0) |
                      s->retain_handling << CM_MQTT_SUB_RETAIN_HANDLING_SHIFT);
    }
    if (cm_mqtt_list_append(&list, CM_MQTT_CMD_SUBSCRIBE, s->topic, opt) != 0) goto done;
  }
  rc = send_filters(st, CM_MQTT_CMD_SUBSCRIBE, &list, sub_id, props, num_props);
done:
  cm_buf_free(&list);
  return rc;
}

int cm_mqtt_sub(struct cm_conn *c, struct cm_str topic, int qos) {
  if (qos < 0 || qos > 2) return CM_EINVAL;
  struct cm_mqtt_sub_opts s = {0};
  s.topic = topic;
  s.qos = (uint8_t)qos;
  return cm_mqtt_subscribe(c, &s, 1, 0, NULL, 0);
}

int cm_mqtt_unsubscribe(struct cm_conn *c, const struct cm_str *topics, size_t n,
                        const struct cm_mqtt_prop *props, size_t num_props) {
  struct cm__mqtt *st = sendable(c);
  if (st == NULL) return unsendable(c);
  if (topics == NULL || n == 0) return CM_EINVAL;
  struct cm_buf list = {0};
  int rc = CM_EINVAL;
  for (size_t i = 0; i < n; i++) {
    if (!cm_mqtt_filter_valid(topics[i]) ||
        cm_mqtt_list_append(&list, CM_MQTT_CMD_UNSUBSCRIBE, topics[i], 0) != 0)
      goto done;
  }
  rc = send_filters(st, CM_MQTT_CMD_UNSUBSCRIBE, &list, 0, props, num_props);
done:
  cm_buf_free(&list);
  return rc;
}

int cm_mqtt_unsub(struct cm_conn *c, struct cm_str topic) {
  return cm_mqtt_unsubscribe(c, &topic, 1, NULL, 0);
}

static int send_simple(struct cm_conn *c, int cmd) {
  struct cm__mqtt *st = sendable(c);
  if (st == NULL) return unsendable(c);
  struct cm_mqtt_packet m = {0};
  m.cmd = (uint8_t)cmd;
  return cm__mqtt_send_rc(st, &m);
}

int cm_mqtt_ping(struct cm_conn *c) { return send_simple(c, CM_MQTT_CMD_PINGREQ); }
int cm_mqtt_pong(struct cm_conn *c) { return send_simple(c, CM_MQTT_CMD_PINGRESP); }

int cm_mqtt_disconnect(struct cm_conn *c) { return cm_mqtt_disconnect_reason(c, 0, NULL, 0); }

int cm_mqtt_disconnect_reason(struct cm_conn *c, uint8_t reason, const struct cm_mqtt_prop *props,
                              size_t num_props) {
  struct cm__mqtt *st = sendable(c);
  if (st == NULL) return unsendable(c);
  struct cm_mqtt_packet m = {0};
  struct cm_buf pb = {0};
  m.cmd = CM_MQTT_CMD_DISCONNECT;
  m.reason = reason;
  if (st->version == 5) {
    if (cm__mqtt_props_raw(&pb, props, num_props) != 0) return CM_EINVAL;
    m.props = cm_str_n((const char *)cm_buf_data(&pb), pb.len);
  }
  int rc = cm__mqtt_send_rc(st, &m);
  cm_buf_free(&pb);
  st->failed = true; /* read nothing more */
  if (st->over_ws) {
    cm_ws_close(c, CM_WS_CLOSE_NORMAL, NULL);
  } else {
    cm_drain(c);
  }
  return rc;
}

int cm_mqtt_send_ack(struct cm_conn *c, int cmd, uint16_t id, uint8_t reason) {
  if (cmd < CM_MQTT_CMD_PUBACK || cmd > CM_MQTT_CMD_PUBCOMP || id == 0) return CM_EINVAL;
  struct cm__mqtt *st = sendable(c);
  if (st == NULL) return unsendable(c);
  struct cm_mqtt_packet m = {0};
  m.cmd = (uint8_t)cmd;
  m.id = id;
  m.reason = reason;
  return cm__mqtt_send_rc(st, &m);
}

int cm_mqtt_send(struct cm_conn *c, const struct cm_mqtt_packet *pm) {
  struct cm__mqtt *st = sendable(c);
  if (st == NULL) return unsendable(c);
  if (pm == NULL) return CM_EINVAL;
  struct cm_mqtt_packet m = *pm;
  return cm__mqtt_send_rc(st, &m);
}

int cm_mqtt_auth(struct cm_conn *c, uint8_t reason, struct cm_str method, struct cm_str data,
                 const struct cm_mqtt_prop *props, size_t num_props) {
  struct cm__mqtt *st = sendable(c);
  if (st == NULL) return unsendable(c);
  if (st->version != 5) return CM_EINVAL;
  if (method.len == 0 && st->auth_method != NULL) method = cm_str_c(st->auth_method);
  if (method.len == 0 || !cm_mqtt_str_valid(method) || data.len > 65535) return CM_EINVAL;
  /* 4.12: a client continues (0x18) or starts a re-authentication (0x19,
   * once connected); a server continues or ends one with success (0x00). */
  bool ok = st->is_server ? reason == CM_MQTT_RC_CONTINUE_AUTHENTICATION || reason == 0
                          : reason == CM_MQTT_RC_CONTINUE_AUTHENTICATION ||
                                (reason == CM_MQTT_RC_REAUTHENTICATE && st->connected);
  if (!ok) return CM_EINVAL;
  struct cm_mqtt_prop ap[2] = {{.id = CM_MQTT_PROP_AUTHENTICATION_METHOD, .val = method},
                               {.id = CM_MQTT_PROP_AUTHENTICATION_DATA, .val = data}};
  struct cm_mqtt_packet m = {0};
  struct cm_buf pb = {0};
  int rc = CM_ENOMEM;
  m.cmd = CM_MQTT_CMD_AUTH;
  m.reason = reason;
  if (cm__mqtt_props_raw(&pb, ap, data.len > 0 ? 2 : 1) != 0 ||
      cm__mqtt_props_raw(&pb, props, num_props) != 0) {
    rc = CM_EINVAL; /* an unknown property id (or no memory) */
    goto done;
  }
  m.props = cm_str_n((const char *)cm_buf_data(&pb), pb.len);
  const char *why;
  if (cm_mqtt_props_check(m.props, CM_MQTT_CMD_AUTH, &why) != 0) {
    rc = CM_EINVAL;
    goto done;
  }
  rc = cm__mqtt_send_rc(st, &m);
  if (rc == 0 && reason == CM_MQTT_RC_REAUTHENTICATE) st->reauth = true;
done:
  cm_buf_free(&pb);
  return rc;
}
