/*
 * MQTT client: cm_mqtt_connect() over TCP, TLS, WebSocket or secure
 * WebSocket, the CONNECT packet, and what a CONNACK settles (the window,
 * aliases, keepalive, the session: resend or start over).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/internal.h"
#include "mqtt/internal.h"

static bool scheme_is(const char *url, const char *name) {
  struct cm_str s = cm_url_scheme(url);
  return s.len == strlen(name) && strncasecmp(s.buf, name, s.len) == 0;
}

/* The CONNECT packet for opts, into out. */
static int build_connect(const struct cm_mqtt_opts *o, struct cm_mqtt_session *sess, uint8_t version,
                         struct cm_buf *out, uint32_t max_packet) {
  struct cm_mqtt_packet m = {0};
  struct cm_buf props = {0}, will_props = {0};
  int rc = -1;
  m.cmd = CM_MQTT_CMD_CONNECT;
  m.version = version;
  m.clean = o->clean;
  m.keepalive = o->keepalive;
  m.client_id = cm_str_c(sess->client_id);
  m.has_username = o->user.len > 0;
  m.username = o->user;
  m.has_password = o->pass.len > 0;
  m.password = o->pass;
  if (version != 5 && m.has_password && !m.has_username) goto done; /* 3.1.2-22 */
  m.has_will = o->will_topic.len > 0;
  if (m.has_will) {
    if (!cm_mqtt_topic_valid(o->will_topic) || o->will_qos > 2) goto done;
    m.will_topic = o->will_topic;
    m.will_payload = o->will_message;
    m.qos = o->will_qos;
    m.retain = o->will_retain;
  }
  if (version == 5) {
    if (cm__mqtt_props_raw(&props, o->props, o->num_props) != 0) goto done;
    if (o->auth_method.len > 0) {
      struct cm_mqtt_prop ap[2] = {{.id = CM_MQTT_PROP_AUTHENTICATION_METHOD, .val = o->auth_method},
                                   {.id = CM_MQTT_PROP_AUTHENTICATION_DATA, .val = o->auth_data}};
      if (cm__mqtt_props_raw(&props, ap, o->auth_data.len > 0 ? 2 : 1) != 0) goto done;
    } else if (o->auth_data.len > 0) {
      goto done; /* 3.1.2.11.10: data without a method */
    }
    bool has_max = false;
    for (size_t i = 0; i < o->num_props; i++)
      if (o->props[i].id == CM_MQTT_PROP_MAXIMUM_PACKET_SIZE) has_max = true;
    if (!has_max) {
      /* Tell the server what we accept, so it never sends us more. */
      struct cm_mqtt_prop p = {.id = CM_MQTT_PROP_MAXIMUM_PACKET_SIZE, .iv = max_packet};
      if (cm__mqtt_props_raw(&props, &p, 1) != 0) goto done;
    }
    if (cm__mqtt_props_raw(&will_props, o->will_props, o->num_will_props) != 0) goto done;
    m.props = cm_str_n((const char *)cm_buf_data(&props), props.len);
    m.will_props = cm_str_n((const char *)cm_buf_data(&will_props), will_props.len);
    const char *why;
    if (cm_mqtt_props_check(m.props, CM_MQTT_CMD_CONNECT, &why) != 0 ||
        cm_mqtt_props_check(m.will_props, 0, &why) != 0)
      goto done;
  }
  rc = cm_mqtt_encode(out, &m) == 0 ? 0 : -1;
done:
  cm_buf_free(&props);
  cm_buf_free(&will_props);
  return rc;
}

/* A copy of opts in one allocation (the views point into it), applied at
 * CONNECT; NULL when memory runs out (the automatic defaults then apply). */
static struct cm_tls_opts *copy_tls(const struct cm_tls_opts *in) {
  const struct cm_str *parts[] = {&in->ca, &in->cert, &in->key, &in->name};
  size_t total = sizeof(struct cm_tls_opts);
  for (size_t i = 0; i < 4; i++) total += parts[i]->len;
  struct cm_tls_opts *t = malloc(total);
  if (t == NULL) return NULL;
  *t = *in;
  char *p = (char *)(t + 1);
  struct cm_str *out[] = {&t->ca, &t->cert, &t->key, &t->name};
  for (size_t i = 0; i < 4; i++) {
    if (parts[i]->len > 0) memcpy(p, parts[i]->buf, parts[i]->len);
    *out[i] = cm_str_n(p, parts[i]->len);
    p += parts[i]->len;
  }
  return t;
}

struct cm_conn *cm_mqtt_connect(struct cm_mgr *mgr, const char *url, const struct cm_mqtt_opts *opts,
                                cm_event_fn fn, void *fn_data) {
  struct cm_mqtt_opts o = {0};
  if (opts != NULL) o = *opts;
  uint8_t version = o.version == 0 ? 4 : o.version;
  if (url == NULL || (version != 4 && version != 5) || o.client_id.len > 65535 ||
      (o.session != NULL && o.session->in_use) || !cm_mqtt_str_valid(o.client_id) ||
      !cm_mqtt_str_valid(o.user)) {
    errno = EINVAL;
    return NULL;
  }
  bool ws = scheme_is(url, "ws") || scheme_is(url, "wss");
  struct cm_mqtt_session *sess = o.session;
  bool own = sess == NULL;
  if (own && (sess = cm_mqtt_session_new(&o.limits)) == NULL) {
    errno = ENOMEM;
    return NULL;
  }
  /* The client id: the one given, else the session's, else a new one. */
  if (o.client_id.len > 0) {
    snprintf(sess->client_id, CM__MQTT_CLIENT_ID_CAP, "%.*s", (int)o.client_id.len, o.client_id.buf);
    if (o.client_id.len >= CM__MQTT_CLIENT_ID_CAP) {
      if (own) cm_mqtt_session_free(sess);
      errno = EINVAL;
      return NULL;
    }
  } else if (sess->client_id[0] == '\0') {
    char rnd[17];
    cm_random_str(rnd, 16); /* no NUL written */
    rnd[16] = '\0';
    snprintf(sess->client_id, CM__MQTT_CLIENT_ID_CAP, "cm-%s", rnd);
  }
  struct cm_mqtt_limits lim = o.limits;
  if (version == 4 && lim.max_inflight == 0) lim.max_inflight = CM_MQTT_V4_DEFAULT_MAX_INFLIGHT;
  cm__mqtt_limits_resolve(&lim);
  /* What we announce in CONNECT is what we enforce. */
  for (size_t i = 0; i < o.num_props; i++) {
    const struct cm_mqtt_prop *p = &o.props[i];
    if (p->id == CM_MQTT_PROP_MAXIMUM_PACKET_SIZE && p->iv != 0 && p->iv < lim.max_packet_size)
      lim.max_packet_size = p->iv;
    if (p->id == CM_MQTT_PROP_RECEIVE_MAXIMUM && p->iv != 0 && p->iv < lim.max_incoming)
      lim.max_incoming = p->iv;
  }
  struct cm_buf connect = {0};
  if (build_connect(&o, sess, version, &connect, lim.max_packet_size) != 0) {
    if (own) cm_mqtt_session_free(sess);
    cm_buf_free(&connect);
    errno = EINVAL;
    return NULL;
  }
  struct cm_conn *c = ws ? cm_ws_connect(mgr, url, fn, fn_data, "Sec-WebSocket-Protocol: mqtt\r\n")
                         : cm_connect(mgr, url, fn, fn_data);
  struct cm__mqtt *st = c == NULL ? NULL : cm__mqtt_new(c, &lim, sess);
  if (st == NULL) {
    int err = c == NULL ? errno : ENOMEM;
    if (own) cm_mqtt_session_free(sess);
    cm_buf_free(&connect);
    if (c != NULL) cm_close(c);
    errno = err;
    return NULL;
  }
  st->own_session = own;
  st->version = version;
  st->our_alias_max = 0;
  for (size_t i = 0; i < o.num_props; i++) {
    if (o.props[i].id == CM_MQTT_PROP_TOPIC_ALIAS_MAXIMUM) st->our_alias_max = (uint16_t)o.props[i].iv;
  }
  st->keepalive_ms = (uint64_t)o.keepalive * 1000;
  struct cm_str method = o.auth_method;
  for (size_t i = 0; i < o.num_props; i++) {
    if (o.props[i].id == CM_MQTT_PROP_AUTHENTICATION_METHOD) method = o.props[i].val;
  }
  if (version == 5 && method.len > 0 && !cm__mqtt_set_auth_method(st, method)) {
    cm__mqtt_free(st);
    cm_buf_free(&connect);
    cm_close(c);
    errno = ENOMEM;
    return NULL;
  }
  if (!cm__mqtt_attach(c, st, ws)) {
    cm__mqtt_free(st);
    cm_buf_free(&connect);
    cm__conn_defer_error(c, "MQTT: cannot attach to the connection");
    return c;
  }
  if (o.tls != NULL && cm_url_is_ssl(url)) st->tls = copy_tls(o.tls);
  if (!cm__mqtt_tx(st, cm_buf_data(&connect), connect.len))
    cm__conn_defer_error(c, "MQTT: cannot queue CONNECT");
  cm_buf_free(&connect);
  return c;
}

void cm__mqtt_client_connack(struct cm__mqtt *st, const struct cm_mqtt_packet *m) {
  struct cm_conn *c = st->c;
  struct cm_mqtt_session *s = st->sess;
  st->deadline_ms = 0;
  if (m->reason != 0) {
    st->failed = true;
    cm_error(c, "MQTT: connection refused: %s (0x%02x)",
             cm_mqtt_reason_str(st->version, CM_MQTT_CMD_CONNACK, m->reason), m->reason);
    return;
  }
  st->connected = true;
  if (st->version == 5) {
    struct cm_mqtt_prop p;
    size_t pos = 0;
    while (cm_mqtt_prop_next(m->props, &pos, &p)) {
      switch (p.id) {
        case CM_MQTT_PROP_RECEIVE_MAXIMUM:
          if (p.iv < st->window) st->window = (uint16_t)p.iv;
          break;
        case CM_MQTT_PROP_TOPIC_ALIAS_MAXIMUM:
          st->peer_alias_max = (uint16_t)p.iv;
          break;
        case CM_MQTT_PROP_MAXIMUM_PACKET_SIZE:
          st->peer_max_packet = p.iv;
          break;
        case CM_MQTT_PROP_MAXIMUM_QOS:
          st->peer_max_qos = (uint8_t)p.iv;
          break;
        case CM_MQTT_PROP_RETAIN_AVAILABLE:
          st->peer_no_retain = p.iv == 0;
          break;
        case CM_MQTT_PROP_SERVER_KEEP_ALIVE:
          st->keepalive_ms = (uint64_t)p.iv * 1000;
          break;
        case CM_MQTT_PROP_ASSIGNED_CLIENT_IDENTIFIER:
          if (p.val.len < CM__MQTT_CLIENT_ID_CAP)
            snprintf(s->client_id, CM__MQTT_CLIENT_ID_CAP, "%.*s", (int)p.val.len, p.val.buf);
          break;
        default:
          break;
      }
    }
  }
  cm__mqtt_set_keepalive(st, st->keepalive_ms);
  if (m->session_present) {
    /* 4.4: resend what was not acknowledged, in order, with DUP; what
     * expired meanwhile is dropped (a PUBREL is still due). */
    uint64_t now = cm_millis();
    for (struct cm__mqtt_out *o = s->head, *next; o != NULL; o = next) {
      next = o->next;
      if (o->state == CM__OUT_QUEUED || cm__mqtt_out_expired(st, o, now)) continue;
      if (!cm__mqtt_send_out(st, o, o->state == CM__OUT_PUBLISHED)) break;
    }
  } else {
    cm__mqtt_session_reset(s);
  }
  int code = m->reason;
  cm_call(c, CM_EV_MQTT_OPEN, &code);
  if (!c->is_closing) cm__mqtt_pump(st);
}
