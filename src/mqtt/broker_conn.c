/*
 * The broker's side of each client connection: the glue (conn.c) parses,
 * runs the QoS flows and keepalive; this handler answers CONNECT (limits,
 * authentication, sessions, takeover, will), SUBSCRIBE/UNSUBSCRIBE, PINGREQ
 * and DISCONNECT, routes PUBLISHes, reports to the store, and logs each
 * client's arrival and departure with the reason.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt/broker.h"

/* Reads and writes below this many bytes leave no buffer behind. */
#define SMALL_IO 512

void cm__bc_info(const struct bclient *cl, struct cm_mqtt_client_info *who) {
  memset(who, 0, sizeof(*who));
  if (cl->sess != NULL) who->client_id = cm_str_n(cl->sess->id, cl->sess->id_len);
  if (cl->username != NULL) who->username = cm_str_c(cl->username);
  if (cl->cert != NULL) {
    who->cert_subject = cm_str_c(cl->cert);
    who->cert_cn = cm_str_c(cl->cert + who->cert_subject.len + 1);
  }
  who->version = cl->version;
  who->conn_id = cl->c->id;
  who->addr = &cl->c->rem;
}

static const char *ip_of(const struct cm_conn *c, char *buf, size_t len) {
  return cm_addr_ip_str(&c->rem, buf, len);
}

/* The 3.1.1 CONNACK return code closest to a v5 reason code. */
static uint8_t v3_code(int rc) {
  switch (rc) {
    case CM_MQTT_RC_UNSUPPORTED_VERSION: return CM_MQTT_CONNACK_V3_BAD_VERSION;
    case CM_MQTT_RC_CLIENT_ID_NOT_VALID: return CM_MQTT_CONNACK_V3_ID_REJECTED;
    case CM_MQTT_RC_BAD_USERNAME_OR_PASSWORD: return CM_MQTT_CONNACK_V3_BAD_CREDENTIALS;
    case CM_MQTT_RC_SERVER_UNAVAILABLE:
    case CM_MQTT_RC_SERVER_BUSY:
    case CM_MQTT_RC_QUOTA_EXCEEDED:
    case CM_MQTT_RC_SERVER_SHUTTING_DOWN: return CM_MQTT_CONNACK_V3_UNAVAILABLE;
    default: return CM_MQTT_CONNACK_V3_NOT_AUTHORIZED;
  }
}

static void refuse(struct cm_mqtt_broker *b, struct cm_conn *c, const struct cm_mqtt_packet *m,
                   int rc, const char *why) {
  char ip[64];
  b->st.connections_refused++;
  CM_INFO("MQTT broker: client %.*s from %s refused: %s (0x%02x)", (int)m->client_id.len,
          m->client_id.buf, ip_of(c, ip, sizeof(ip)), why, rc);
  cm_mqtt_send_connack(c, m->version == 5 ? (uint8_t)rc : v3_code(rc), false, NULL, 0);
}

/* A will from CONNECT, with the will properties minus Will Delay Interval. */
static struct bwill *make_will(struct cm_mqtt_broker *b, const struct cm_mqtt_packet *m) {
  struct cm_buf props = {0};
  uint32_t delay = 0, expiry = 0;
  struct cm_mqtt_prop p;
  size_t pos = 0;
  while (m->version == 5 && cm_mqtt_prop_next(m->will_props, &pos, &p)) {
    if (p.id == CM_MQTT_PROP_WILL_DELAY_INTERVAL) {
      delay = p.iv;
    } else {
      if (p.id == CM_MQTT_PROP_MESSAGE_EXPIRY_INTERVAL) expiry = p.iv;
      if (cm__mqtt_props_raw(&props, &p, 1) != 0) {
        cm_buf_free(&props);
        return NULL;
      }
    }
  }
  size_t n = m->will_topic.len + m->will_payload.len + props.len;
  struct bwill *w = calloc(1, sizeof(*w) + n);
  if (w != NULL) {
    w->b = b;
    w->delay_s = delay;
    char *d = w->data;
    memcpy(d, m->will_topic.buf, m->will_topic.len);
    if (m->will_payload.len > 0) memcpy(d + m->will_topic.len, m->will_payload.buf, m->will_payload.len);
    if (props.len > 0) memcpy(d + m->will_topic.len + m->will_payload.len, cm_buf_data(&props), props.len);
    w->m.topic = cm_str_n(d, m->will_topic.len);
    w->m.payload = cm_str_n(d + m->will_topic.len, m->will_payload.len);
    w->m.props = cm_str_n(d + m->will_topic.len + m->will_payload.len, props.len);
    w->m.qos = m->qos;
    w->m.retain = m->retain;
    w->m.expiry_s = expiry;
  }
  cm_buf_free(&props);
  return w;
}

/* Points the connection's glue state at the session's QoS state. */
static void bind_glue(struct cm_conn *c, struct bsess *s) {
  struct cm__mqtt *st = cm__mqtt_of(c);
  if (st == NULL || st->sess == s->ms) return;
  if (st->own_session) cm_mqtt_session_free(st->sess);
  st->sess = s->ms;
  st->own_session = false;
  s->ms->in_use = true;
}

/* What the old connection of a session taken over needs, allocated before
 * anything is torn down so that running out of memory leaves the old
 * client in place (and refuses the new one) instead of leaving its glue
 * pointing at a session freed or shared by the new connection. */
struct takeover {
  struct cm_mqtt_session *fresh; /* its own QoS state from now on */
  char *id;                      /* the client id, for its departure */
};

static bool takeover_prepare(struct bclient *old, struct takeover *t) {
  struct cm__mqtt *st = cm__mqtt_of(old->c);
  t->fresh = NULL;
  t->id = malloc((size_t)old->sess->id_len + 1);
  if (t->id == NULL) return false;
  memcpy(t->id, old->sess->id, old->sess->id_len);
  t->id[old->sess->id_len] = '\0';
  if (st == NULL || st->own_session || st->sess != old->sess->ms) return true;
  t->fresh = cm__mqtt_session_new_server();
  if (t->fresh != NULL) return true;
  free(t->id);
  return false;
}

/* The old connection of a session taken over gets its own QoS state and
 * keeps its client id for the on_client hook and the log. */
static void takeover_apply(struct bclient *old, struct takeover *t) {
  struct cm__mqtt *st = cm__mqtt_of(old->c);
  if (t->fresh != NULL && st != NULL) {
    st->sess = t->fresh;
    st->own_session = true;
    t->fresh->in_use = true;
  }
  free(old->taken_id);
  old->taken_id = t->id;
}

static void on_connect(struct cm_mqtt_broker *b, struct cm_conn *c, const struct cm_mqtt_packet *m) {
  const struct cm_mqtt_broker_opts *o = &b->o;
  bool v5 = m->version == 5;
  if (b->st.clients_connected >= o->max_connections) {
    refuse(b, c, m, v5 ? CM_MQTT_RC_QUOTA_EXCEEDED : CM_MQTT_RC_SERVER_UNAVAILABLE,
           "too many connections");
    return;
  }
  struct cm_mqtt_prop p;
  if (v5 && cm_mqtt_prop_find(m->props, CM_MQTT_PROP_AUTHENTICATION_METHOD, &p)) {
    refuse(b, c, m, CM_MQTT_RC_BAD_AUTH_METHOD, "enhanced authentication not supported");
    return;
  }
  char assigned[48] = "";
  struct cm_str id = m->client_id;
  if (id.len == 0) {
    if (o->no_assign_ids || (!v5 && !m->clean)) {
      refuse(b, c, m, CM_MQTT_RC_CLIENT_ID_NOT_VALID, "empty client id");
      return;
    }
    snprintf(assigned, sizeof(assigned), "cm-%lx-%llx", ++b->next_anon,
             (unsigned long long)(cm_millis() ^ (uintptr_t)c));
    id = cm_str_c(assigned);
  }
  struct bclient *cl = calloc(1, sizeof(*cl));
  if (cl == NULL) {
    refuse(b, c, m, CM_MQTT_RC_SERVER_UNAVAILABLE, "out of memory");
    return;
  }
  cl->kind = CM__BCLIENT_KIND;
  cl->b = b;
  cl->c = c;
  cl->version = m->version;
  if (m->has_username) {
    cl->username = malloc(m->username.len + 1);
    if (cl->username == NULL) {
      free(cl);
      refuse(b, c, m, CM_MQTT_RC_SERVER_UNAVAILABLE, "out of memory");
      return;
    }
    memcpy(cl->username, m->username.buf, m->username.len);
    cl->username[m->username.len] = '\0';
  }
  char subject[256], cn[128];
  if (c->is_tls && cm_tls_peer_cert(c, subject, sizeof(subject), cn, sizeof(cn))) {
    size_t sl = strlen(subject), nl = strlen(cn);
    cl->cert = malloc(sl + nl + 2);
    if (cl->cert != NULL) {
      memcpy(cl->cert, subject, sl + 1);
      memcpy(cl->cert + sl + 1, cn, nl + 1);
    }
  }
  /* Authentication: anonymous clients (no user name, no verified client
   * certificate) only when allowed; the others by the hook (or, without
   * one, as anonymous ones). */
  struct cm_mqtt_client_info who;
  cm__bc_info(cl, &who);
  who.client_id = id;
  int rc = CM_MQTT_RC_SUCCESS;
  if ((!m->has_username && cl->cert == NULL) || o->authenticate == NULL) {
    if (!o->allow_anonymous) rc = CM_MQTT_RC_NOT_AUTHORIZED;
  } else {
    rc = o->authenticate(o->auth_arg, &who, m->password, m->has_password);
  }
  if (rc == CM_MQTT_RC_SUCCESS && m->has_will && o->acl_check != NULL &&
      !o->acl_check(o->acl_arg, &who, m->will_topic, CM_MQTT_ACL_WRITE))
    rc = CM_MQTT_RC_NOT_AUTHORIZED;
  if (rc == CM_MQTT_RC_SUCCESS && m->has_will && m->will_topic.len >= 4 &&
      memcmp(m->will_topic.buf, "$SYS", 4) == 0)
    rc = CM_MQTT_RC_NOT_AUTHORIZED;
  if (rc != CM_MQTT_RC_SUCCESS) {
    free(cl->cert);
    free(cl->username);
    free(cl);
    refuse(b, c, m, rc, rc == CM_MQTT_RC_NOT_AUTHORIZED ? "not authorized" : "authentication failed");
    return;
  }
  if (m->has_will && (cl->will = make_will(b, m)) == NULL) {
    free(cl->cert);
    free(cl->username);
    free(cl);
    refuse(b, c, m, CM_MQTT_RC_SERVER_UNAVAILABLE, "out of memory");
    return;
  }
  /* Session expiry: v5 from the property, 3.1.1 "never" without clean. */
  uint32_t expiry = 0;
  bool capped = false;
  if (v5) {
    if (cm_mqtt_prop_find(m->props, CM_MQTT_PROP_SESSION_EXPIRY_INTERVAL, &p)) expiry = p.iv;
  } else if (!m->clean) {
    expiry = CM__NEVER;
  }
  if (o->max_session_expiry_s != 0 && expiry > o->max_session_expiry_s) {
    expiry = o->max_session_expiry_s;
    capped = v5;
  }
  struct bsess *s = cm__bs_find(b, id);
  if (s != NULL && s->client != NULL) {
    /* Takeover (3.1.4): the old connection goes, its will with it. */
    struct bclient *old = s->client;
    struct takeover t;
    if (!takeover_prepare(old, &t)) {
      cm__bs_will_free(cl->will);
      free(cl->cert);
      free(cl->username);
      free(cl);
      refuse(b, c, m, CM_MQTT_RC_SERVER_UNAVAILABLE, "out of memory");
      return;
    }
    takeover_apply(old, &t);
    s->client = NULL;
    old->sess = NULL;
    cm__bd_kick(old, CM_MQTT_RC_SESSION_TAKEN_OVER, "session taken over");
  }
  if (s != NULL && m->clean) {
    cm__bs_free(b, s, true);
    s = NULL;
  }
  bool present = s != NULL;
  if (s == NULL && (s = cm__bs_new(b, id)) == NULL) {
    cm__bs_will_free(cl->will);
    free(cl->cert);
    free(cl->username);
    free(cl);
    refuse(b, c, m, CM_MQTT_RC_SERVER_UNAVAILABLE, "out of memory");
    return;
  }
  cm__bs_expiry_stop(b, s);
  if (s->will != NULL) { /* back within the will delay: no will */
    s->will->sess = NULL;
    cm__bs_will_free(s->will);
    s->will = NULL;
  }
  bool was_persistent = s->persistent;
  uint32_t old_expiry = s->expiry_s;
  s->expiry_s = expiry;
  s->persistent = expiry != 0;
  const struct cm_mqtt_broker_store *store = &o->store;
  if (s->persistent && (!was_persistent || old_expiry != expiry) && store->session_save != NULL) {
    cm__bstore_dirty(b);
    store->session_save(store->arg, id, expiry);
  }
  if (!s->persistent && was_persistent && store->session_delete != NULL) {
    cm__bstore_dirty(b);
    store->session_delete(store->arg, id);
  }
  s->client = cl;
  cl->sess = s;
  bind_glue(c, s);
  struct cm__mqtt *gst = cm__mqtt_of(c);
  if (gst != NULL) {
    gst->prepare = cm__bd_prepare;
    gst->prepare_arg = cl;
    /* Our aliases towards it (the glue read its Topic Alias Maximum):
     * bounded by ours, so a client allowing 65535 costs no more. */
    uint16_t out_max = o->no_topic_alias_out ? 0 : o->topic_alias_out_max;
    if (!v5 || gst->peer_alias_max > out_max) gst->peer_alias_max = v5 ? out_max : 0;
    if (b->sweep_timer != NULL) cm__mqtt_use_sweep(gst); /* no timer per client */
  }
  c->fn_data = cl;
  c->send_hwm = o->send_hwm;
  /* CONNACK: what we enforce, announced. */
  struct cm_mqtt_prop props[8];
  size_t np = 0;
  uint16_t ka = m->keepalive;
  if (v5) {
    if (assigned[0] != '\0')
      props[np++] = (struct cm_mqtt_prop){.id = CM_MQTT_PROP_ASSIGNED_CLIENT_IDENTIFIER,
                                          .val = cm_str_c(assigned)};
    props[np++] = (struct cm_mqtt_prop){.id = CM_MQTT_PROP_RECEIVE_MAXIMUM, .iv = b->lim.max_incoming};
    props[np++] = (struct cm_mqtt_prop){.id = CM_MQTT_PROP_MAXIMUM_PACKET_SIZE, .iv = o->max_packet_size};
    props[np++] = (struct cm_mqtt_prop){.id = CM_MQTT_PROP_TOPIC_ALIAS_MAXIMUM,
                                        .iv = o->no_topic_alias ? 0 : o->topic_alias_max};
    if (o->server_keepalive != 0 && (ka == 0 || ka > o->server_keepalive)) {
      ka = o->server_keepalive;
      props[np++] = (struct cm_mqtt_prop){.id = CM_MQTT_PROP_SERVER_KEEP_ALIVE, .iv = ka};
    }
    if (capped)
      props[np++] = (struct cm_mqtt_prop){.id = CM_MQTT_PROP_SESSION_EXPIRY_INTERVAL, .iv = expiry};
  }
  cm__bstore_commit(b); /* the session the CONNACK announces is durable */
  cm_mqtt_send_connack(c, 0, present, props, np);
  struct cm__mqtt *st = cm__mqtt_of(c);
  if (st != NULL && ka != 0 && o->keepalive_factor != 1.5f) {
    /* The glue allows 1.5 periods; scale the period to give factor x ka. */
    cm__mqtt_set_keepalive(st, (uint64_t)((double)ka * 1000.0 * o->keepalive_factor / 1.5));
  }
  cl->counted = true;
  b->st.clients_connected++;
  if (b->st.clients_connected > b->st.clients_maximum) b->st.clients_maximum = b->st.clients_connected;
  char ip[64];
  CM_INFO("MQTT broker: client %.*s connected from %s (MQTT %s%s%s%s)", (int)id.len, id.buf,
          ip_of(c, ip, sizeof(ip)), m->version == 5 ? "5.0" : m->version == 4 ? "3.1.1" : "3.1",
          cl->username != NULL ? ", user " : "", cl->username != NULL ? cl->username : "",
          present ? ", session present" : "");
  if (o->on_client != NULL) {
    cm__bc_info(cl, &who);
    o->on_client(o->client_arg, &who, true, 0, "connected");
  }
  cm__bd_resume(b, cl, present);
}

static void on_subscribe(struct cm_mqtt_broker *b, struct bclient *cl, const struct cm_mqtt_msg *mm) {
  const struct cm_mqtt_packet *m = mm->pkt;
  struct bsess *s = cl->sess;
  if (s == NULL) return;
  uint32_t sub_id = 0;
  struct cm_mqtt_prop p;
  if (cl->version == 5 && cm_mqtt_prop_find(m->props, CM_MQTT_PROP_SUBSCRIPTION_IDENTIFIER, &p)) {
    if (p.iv == 0) {
      cm__bd_kick(cl, CM_MQTT_RC_PROTOCOL_ERROR, "subscription identifier 0");
      return;
    }
    sub_id = p.iv;
  }
  struct cm_buf codes = {0}, is_new = {0};
  struct cm_mqtt_client_info who;
  cm__bc_info(cl, &who);
  const struct cm_mqtt_broker_store *store = &b->o.store;
  size_t pos = 0;
  struct cm_str f;
  uint8_t opt;
  while (cm_mqtt_list_next(m, &pos, &f, &opt)) {
    uint8_t qos = opt & CM_MQTT_SUB_QOS_MASK;
    uint8_t code = qos, fresh = 0;
    struct cm_str group, real = f;
    bool ok;
    bool shared = cm__bt_shared(f, &group, &real, &ok);
    if (shared && (opt & CM_MQTT_SUB_NO_LOCAL) && cl->version == 5) {
      cm_buf_free(&codes);
      cm_buf_free(&is_new);
      cm__bd_kick(cl, CM_MQTT_RC_PROTOCOL_ERROR, "no local on a shared subscription");
      return;
    }
    if (!ok) {
      code = CM_MQTT_RC_TOPIC_FILTER_INVALID;
    } else if (b->o.acl_check != NULL &&
               !b->o.acl_check(b->o.acl_arg, &who, real, CM_MQTT_ACL_SUBSCRIBE)) {
      code = CM_MQTT_RC_NOT_AUTHORIZED;
    } else {
      bool n = false;
      struct bsub *x = NULL;
      bool exists = false;
      for (struct bsub *y = s->subs; y != NULL; y = y->next_sess)
        if (y->filter_len == f.len && memcmp(y->filter, f.buf, f.len) == 0) exists = true;
      if (!exists && s->nsubs >= b->o.max_subs_per_client) {
        code = CM_MQTT_RC_QUOTA_EXCEEDED;
      } else if ((x = cm__bt_subscribe(b, s, f, opt, sub_id, &n)) == NULL) {
        code = CM_MQTT_RC_UNSPECIFIED;
      } else {
        fresh = n ? 1 : 0;
        if (s->persistent && store->sub_add != NULL) {
          cm__bstore_dirty(b);
          store->sub_add(store->arg, cm_str_n(s->id, s->id_len), f, opt, sub_id);
        }
      }
    }
    if (cm_buf_append(&codes, &code, 1) != 0 || cm_buf_append(&is_new, &fresh, 1) != 0) break;
  }
  cm__bstore_commit(b);
  cm_mqtt_send_suback(cl->c, m->id, cm_buf_data(&codes), codes.len, NULL, 0);
  /* Retained messages after the SUBACK, per Retain Handling. */
  pos = 0;
  for (size_t i = 0; i < codes.len && cm_mqtt_list_next(m, &pos, &f, &opt); i++) {
    uint8_t code = cm_buf_data(&codes)[i];
    if (code >= 0x80) continue;
    struct cm_str group, real;
    bool ok;
    if (cm__bt_shared(f, &group, &real, &ok)) continue; /* never for shared ones */
    int rh = (opt >> CM_MQTT_SUB_RETAIN_HANDLING_SHIFT) & 3;
    if (rh == 0 || (rh == 1 && cm_buf_data(&is_new)[i]))
      cm__br_send_retained(b, cl, f, code, sub_id);
  }
  cm_buf_free(&codes);
  cm_buf_free(&is_new);
}

static void on_unsubscribe(struct cm_mqtt_broker *b, struct bclient *cl, const struct cm_mqtt_msg *mm) {
  struct bsess *s = cl->sess;
  if (s == NULL) return;
  const struct cm_mqtt_broker_store *store = &b->o.store;
  struct cm_buf codes = {0};
  size_t pos = 0;
  struct cm_str f;
  while (cm_mqtt_list_next(mm->pkt, &pos, &f, NULL)) {
    uint8_t code = CM_MQTT_RC_SUCCESS;
    if (cm__bt_unsubscribe(b, s, f)) {
      if (s->persistent && store->sub_del != NULL) {
        cm__bstore_dirty(b);
        store->sub_del(store->arg, cm_str_n(s->id, s->id_len), f);
      }
    } else {
      code = CM_MQTT_RC_NO_SUBSCRIPTION_EXISTED;
    }
    if (cm_buf_append(&codes, &code, 1) != 0) break;
  }
  cm__bstore_commit(b);
  cm_mqtt_send_unsuback(cl->c, mm->id, cm_buf_data(&codes), codes.len, NULL, 0);
  cm_buf_free(&codes);
}

static void on_disconnect(struct cm_mqtt_broker *b, struct bclient *cl, const struct cm_mqtt_msg *mm) {
  cl->normal_disconnect = mm->ack != CM_MQTT_RC_DISCONNECT_WITH_WILL;
  cl->reason = mm->ack;
  cl->why = mm->ack == 0 ? "disconnected" : "disconnected with will";
  struct bsess *s = cl->sess;
  struct cm_mqtt_prop p;
  if (s != NULL && cl->version == 5 &&
      cm_mqtt_prop_find(mm->props, CM_MQTT_PROP_SESSION_EXPIRY_INTERVAL, &p)) {
    if (s->expiry_s == 0 && p.iv != 0) {
      cl->normal_disconnect = false; /* 3.14.2.2.2: a protocol error */
      cl->reason = CM_MQTT_RC_PROTOCOL_ERROR;
      cl->why = "session expiry set on DISCONNECT after 0 on CONNECT";
      return;
    }
    uint32_t e = p.iv;
    if (b->o.max_session_expiry_s != 0 && e > b->o.max_session_expiry_s) e = b->o.max_session_expiry_s;
    const struct cm_mqtt_broker_store *store = &b->o.store;
    if (e != s->expiry_s) {
      s->expiry_s = e;
      if (e != 0 && store->session_save != NULL) {
        cm__bstore_dirty(b);
        store->session_save(store->arg, cm_str_n(s->id, s->id_len), e);
      }
    }
  }
}

/* Acks of our deliveries: the store hears of them before the glue acts. */
static void on_ack(struct cm_mqtt_broker *b, struct bclient *cl, const struct cm_mqtt_msg *mm) {
  struct bsess *s = cl->sess;
  if (s == NULL) return;
  const struct cm_mqtt_broker_store *store = &b->o.store;
  struct cm_str cid = cm_str_n(s->id, s->id_len);
  bool rep = s->persistent;
  if (rep) cm__bstore_dirty(b); /* (when a hook below reports) */
  struct cm__mqtt_out *o;
  switch (mm->cmd) {
    case CM_MQTT_CMD_PUBACK:
      o = cm__mqtt_session_find(s->ms, mm->id, CM__OUT_PUBLISHED);
      if (o == NULL || o->qos != 1) break;
      b->st.queued--;
      b->st.msgs_sent++;
      if (rep && store->msg_done != NULL) store->msg_done(store->arg, cid, mm->id);
      break;
    case CM_MQTT_CMD_PUBREC:
      o = cm__mqtt_session_find(s->ms, mm->id, CM__OUT_PUBLISHED);
      if (o == NULL || o->qos != 2) break;
      b->st.msgs_sent++;
      if (mm->ack >= 0x80) {
        b->st.queued--;
        if (rep && store->msg_done != NULL) store->msg_done(store->arg, cid, mm->id);
      } else if (rep && store->msg_state != NULL) {
        store->msg_state(store->arg, cid, mm->id, CM_MQTT_HELD_RELEASED);
      }
      break;
    case CM_MQTT_CMD_PUBCOMP:
      o = cm__mqtt_session_find(s->ms, mm->id, CM__OUT_RELEASED);
      if (o == NULL) break;
      b->st.queued--;
      if (rep && store->msg_done != NULL) store->msg_done(store->arg, cid, mm->id);
      break;
    case CM_MQTT_CMD_PUBREL:
      /* Released before the PUBCOMP: a restart must not take a new message
       * under this id for a duplicate. */
      if (rep && store->incoming != NULL && cm__mqtt_id_test(s->ms->ids_in, mm->id))
        cm__bstore_result(b, store->incoming(store->arg, cid, mm->id, false), "a PUBREL");
      break;
    default:
      break;
  }
}

static void on_publish(struct cm_mqtt_broker *b, struct bclient *cl, const struct cm_mqtt_msg *mm) {
  struct bsess *s = cl->sess;
  struct cm__mqtt *st = cm__mqtt_of(cl->c);
  if (s == NULL || st == NULL) return;
  const struct cm_mqtt_broker_opts *o = &b->o;
  struct cm_mqtt_client_info who;
  cm__bc_info(cl, &who);
  if ((mm->topic.len >= 4 && memcmp(mm->topic.buf, "$SYS", 4) == 0) ||
      (o->acl_check != NULL && !o->acl_check(o->acl_arg, &who, mm->topic, CM_MQTT_ACL_WRITE))) {
    CM_DEBUG("MQTT broker: client %.*s may not publish to %.*s", (int)s->id_len, s->id,
             (int)mm->topic.len, mm->topic.buf);
    st->pub_reason = CM_MQTT_RC_NOT_AUTHORIZED;
    return;
  }
  struct cm_mqtt_broker_msg m = {0};
  m.topic = mm->topic;
  m.payload = mm->data;
  m.qos = mm->qos;
  m.retain = mm->retain;
  m.props = cl->version == 5 ? mm->props : cm_str_n("", 0);
  struct cm_mqtt_prop p;
  if (cl->version == 5) {
    if (cm_mqtt_prop_find(m.props, CM_MQTT_PROP_MESSAGE_EXPIRY_INTERVAL, &p)) m.expiry_s = p.iv;
    if (cm_mqtt_prop_find(m.props, CM_MQTT_PROP_TOPIC_ALIAS, &p)) {
      /* The alias is between that client and us: not passed on. */
      b->inprops.len = b->inprops.off = 0;
      size_t pos = 0;
      while (cm_mqtt_prop_next(mm->props, &pos, &p))
        if (p.id != CM_MQTT_PROP_TOPIC_ALIAS) cm__mqtt_props_raw(&b->inprops, &p, 1);
      m.props = cm_str_n((const char *)cm_buf_data(&b->inprops), b->inprops.len);
    }
  }
  /* What the store records for this message must be durable before the
   * PUBACK/PUBREC: when it is not, the message is not acknowledged. */
  const struct cm_mqtt_broker_store *store = &o->store;
  struct cm_str cid = cm_str_n(s->id, s->id_len);
  b->store_failed = false;
  bool in_stored = false;
  if (mm->qos == 2 && s->persistent && store->incoming != NULL) {
    cm__bstore_dirty(b);
    in_stored = cm__bstore_result(b, store->incoming(store->arg, cid, mm->id, true),
                                  "a QoS 2 packet id");
  }
  if (m.retain && !b->store_failed) cm__br_retain(b, &m, true);
  int n = 0;
  if (!b->store_failed) { /* nothing is routed that the client will send again */
    if (o->on_message != NULL) o->on_message(o->msg_arg, &m, &who, NULL);
    n = cm__bd_route(b, &m, s);
  }
  cm__bstore_commit(b);
  if (b->store_failed && mm->qos > 0) {
    b->store_failed = false;
    if (in_stored) { /* the id must not suppress the message when it comes again */
      cm__bstore_dirty(b);
      store->incoming(store->arg, cid, mm->id, false);
      cm__bstore_commit(b);
    }
    if (cl->version == 5) st->pub_reason = CM_MQTT_RC_UNSPECIFIED;
    else st->pub_no_ack = true;
    return;
  }
  b->store_failed = false;
  if (n == 0 && m.qos > 0 && cl->version == 5) st->pub_reason = CM_MQTT_RC_NO_MATCHING_SUBSCRIBERS;
}

/* The reason code in a glue ERROR text "MQTT: ... (0x8d)...", else 0x80. */
static int reason_of(const char *err) {
  const char *p = strstr(err, "(0x");
  unsigned v;
  return p != NULL && sscanf(p, "(0x%x)", &v) == 1 ? (int)v : CM_MQTT_RC_UNSPECIFIED;
}

static void on_close(struct cm_mqtt_broker *b, struct bclient *cl) {
  struct cm_conn *c = cl->c;
  if (cl->why == NULL) {
    if (cl->err != NULL) {
      cl->why = cl->err;
      cl->reason = reason_of(cl->err);
    } else {
      cl->why = "connection lost";
      cl->reason = CM_MQTT_RC_UNSPECIFIED;
    }
  }
  struct cm_mqtt_client_info who;
  cm__bc_info(cl, &who);
  if (cl->sess == NULL && cl->taken_id != NULL) who.client_id = cm_str_c(cl->taken_id);
  CM_INFO("MQTT broker: client %.*s disconnected: %s (0x%02x)", (int)who.client_id.len,
          who.client_id.buf, cl->why, (unsigned)cl->reason);
  if (b->o.on_client != NULL) b->o.on_client(b->o.client_arg, &who, false, cl->reason, cl->why);
  if (cl->counted) b->st.clients_connected--;
  struct bsess *s = cl->sess;
  struct bwill *w = cl->will;
  cl->will = NULL;
  if (w != NULL && !cl->normal_disconnect) {
    if (s != NULL && w->delay_s > 0 && s->expiry_s != 0) {
      w->sess = s;
      s->will = w; /* cm__bs_detach starts the delay */
    } else {
      cm__bs_will_fire(b, w);
    }
  } else {
    cm__bs_will_free(w);
  }
  if (s != NULL) cm__bs_detach(b, s);
  c->fn_data = NULL;
  struct cm__mqtt *st = cm__mqtt_of(c);
  if (st != NULL) st->prepare = NULL; /* cl is freed below */
  free(cl->taken_id);
  free(cl->err);
  free(cl->cert);
  free(cl->username);
  free(cl);
}

void cm__bc_fn(struct cm_conn *c, int ev, void *ev_data) {
  if (c->is_listening || c->fn_data == NULL) return;
  int kind = *(const int *)c->fn_data;
  struct bclient *cl = kind == CM__BCLIENT_KIND ? c->fn_data : NULL;
  struct cm_mqtt_broker *b = cl != NULL ? cl->b : c->fn_data;
  switch (ev) {
    case CM_EV_OPEN:
      c->send_hwm = b->o.send_hwm;
      break;
    case CM_EV_READ:
      b->st.bytes_received += *(const size_t *)ev_data;
      /* Idle clients are most clients, and their last packets are small
       * (CONNECT, SUBSCRIBE, PINGREQ): after a small read or write nothing
       * stays allocated; busy connections (large reads and writes) keep
       * their buffers. */
      if (c->recv.len == 0 && *(const size_t *)ev_data < SMALL_IO) cm_buf_free(&c->recv);
      break;
    case CM_EV_WRITE:
      b->st.bytes_sent += *(const size_t *)ev_data;
      if (c->send.len == 0 && *(const size_t *)ev_data < SMALL_IO) cm_buf_free(&c->send);
      if (cl != NULL && cl->slow && !cm_conn_send_full(c)) {
        struct cm__mqtt *st = cm__mqtt_of(c);
        cl->slow = false;
        if (st != NULL) cm__mqtt_pump(st);
      }
      break;
    case CM_EV_ERROR:
      if (cl != NULL && cl->err == NULL) cl->err = strdup((const char *)ev_data);
      else CM_DEBUG("MQTT broker: conn %lu: %s", c->id, (const char *)ev_data);
      break;
    case CM_EV_MQTT_CMD: {
      const struct cm_mqtt_msg *mm = ev_data;
      if (mm->cmd == CM_MQTT_CMD_CONNECT) {
        if (cl == NULL) on_connect(b, c, mm->pkt);
        break;
      }
      if (cl == NULL) break;
      switch (mm->cmd) {
        case CM_MQTT_CMD_PUBLISH: b->st.msgs_received++; break;
        case CM_MQTT_CMD_SUBSCRIBE: on_subscribe(b, cl, mm); break;
        case CM_MQTT_CMD_UNSUBSCRIBE: on_unsubscribe(b, cl, mm); break;
        case CM_MQTT_CMD_PINGREQ: cm_mqtt_pong(c); break;
        case CM_MQTT_CMD_DISCONNECT: on_disconnect(b, cl, mm); break;
        case CM_MQTT_CMD_AUTH: cm__bd_kick(cl, CM_MQTT_RC_PROTOCOL_ERROR, "AUTH without a method"); break;
        default: on_ack(b, cl, mm); break;
      }
      break;
    }
    case CM_EV_MQTT_MSG:
      if (cl != NULL) on_publish(b, cl, ev_data);
      break;
    case CM_EV_CLOSE:
      if (cl != NULL) on_close(b, cl);
      break;
    default:
      break;
  }
  /* Records of this event (acknowledgements from the client: before the
   * glue's PUBCOMP; a departure, a will) are durable when it ends. */
  cm__bstore_commit(b);
}
