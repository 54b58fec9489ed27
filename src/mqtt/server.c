/*
 * MQTT server side, low level (the original's mqtt_listen): accepted
 * connections parse packets into MQTT_CMD events and run the QoS flows;
 * the application answers CONNECT, SUBSCRIBE, PINGREQ... with the helpers
 * below.  The broker (a later layer) builds on the same pieces.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt/internal.h"

/* A listener's pfn_data: the limits its children get. */
struct listener {
  int kind; /* CM__MQTT_KIND_L */
  struct cm_mqtt_limits lim;
};

void cm__mqtt_listener_pfn(struct cm_conn *c, int ev, void *ev_data) {
  (void)ev_data;
  if (c->pfn != cm__mqtt_pfn || c->pfn_data == NULL) return;
  struct listener *l = c->pfn_data;
  if (l->kind != CM__MQTT_KIND_L) return;
  if (ev == CM_EV_OPEN && c->is_accepted) {
    /* A child still carries its listener's options: give it its state. */
    c->pfn = NULL;
    c->pfn_data = NULL;
    if (cm_mqtt_serve(c, &l->lim) != 0) cm_error(c, "MQTT: out of memory");
  } else if (ev == CM_EV_CLOSE && c->is_listening) {
    free(l);
    c->pfn = NULL;
    c->pfn_data = NULL;
  }
}

struct cm_conn *cm_mqtt_listen(struct cm_mgr *mgr, const char *url, cm_event_fn fn, void *fn_data) {
  return cm_mqtt_listen_opts(mgr, url, NULL, fn, fn_data);
}

struct cm_conn *cm_mqtt_listen_opts(struct cm_mgr *mgr, const char *url,
                                    const struct cm_mqtt_limits *lim, cm_event_fn fn,
                                    void *fn_data) {
  struct listener *l = calloc(1, sizeof(*l));
  if (l == NULL) {
    errno = ENOMEM;
    return NULL;
  }
  l->kind = CM__MQTT_KIND_L;
  if (lim != NULL) l->lim = *lim;
  cm__mqtt_limits_resolve(&l->lim);
  struct cm_conn *c = cm_listen(mgr, url, fn, fn_data);
  if (c == NULL) {
    free(l);
    return NULL;
  }
  c->pfn = cm__mqtt_pfn;
  c->pfn_data = l;
  return c;
}

int cm_mqtt_serve(struct cm_conn *c, const struct cm_mqtt_limits *lim) {
  if (c == NULL || c->is_listening) return CM_EINVAL;
  if (cm__mqtt_of(c) != NULL) return CM_EALREADY;
  struct cm__mqtt *st = cm__mqtt_new(c, lim, NULL);
  if (st == NULL) return CM_ENOMEM;
  st->is_server = true;
  if (!cm__mqtt_attach(c, st, c->is_websocket)) {
    cm__mqtt_free(st);
    return CM_ENOMEM;
  }
  return 0;
}

void cm__mqtt_server_connect(struct cm__mqtt *st, const struct cm_mqtt_packet *m) {
  st->connected = true;
  st->deadline_ms = 0;
  st->version = m->version;
  if (m->version == 5) {
    struct cm_mqtt_prop p;
    size_t pos = 0;
    while (cm_mqtt_prop_next(m->props, &pos, &p)) {
      if (p.id == CM_MQTT_PROP_RECEIVE_MAXIMUM && p.iv < st->window) st->window = (uint16_t)p.iv;
      if (p.id == CM_MQTT_PROP_TOPIC_ALIAS_MAXIMUM) st->peer_alias_max = (uint16_t)p.iv;
      if (p.id == CM_MQTT_PROP_MAXIMUM_PACKET_SIZE) st->peer_max_packet = p.iv;
    }
  }
  cm__mqtt_set_keepalive(st, (uint64_t)m->keepalive * 1000);
}

static int send_props(struct cm_conn *c, struct cm_mqtt_packet *m, const struct cm_mqtt_prop *props,
                      size_t num_props) {
  struct cm__mqtt *st = cm__mqtt_of(c);
  if (st == NULL) return CM_EINVAL;
  struct cm_buf pb = {0};
  if (st->version == 5 && cm__mqtt_props_raw(&pb, props, num_props) != 0) return CM_EINVAL;
  m->props = cm_str_n((const char *)cm_buf_data(&pb), pb.len);
  int rc = cm__mqtt_send_rc(st, m);
  cm_buf_free(&pb);
  return rc;
}

int cm_mqtt_send_connack(struct cm_conn *c, uint8_t code, bool session_present,
                          const struct cm_mqtt_prop *props, size_t num_props) {
  struct cm_mqtt_packet m = {0};
  m.cmd = CM_MQTT_CMD_CONNACK;
  m.reason = code;
  m.session_present = session_present && code == 0;
  struct cm__mqtt *st = cm__mqtt_of(c);
  if (st != NULL && st->version == 5) {
    /* What the server announces is what it enforces. */
    for (size_t i = 0; i < num_props; i++) {
      const struct cm_mqtt_prop *p = &props[i];
      if (p->id == CM_MQTT_PROP_TOPIC_ALIAS_MAXIMUM && st->alias_in == NULL)
        st->our_alias_max = (uint16_t)p->iv;
      if (p->id == CM_MQTT_PROP_MAXIMUM_PACKET_SIZE && p->iv != 0 &&
          p->iv < st->lim.max_packet_size)
        st->lim.max_packet_size = p->iv;
      if (p->id == CM_MQTT_PROP_RECEIVE_MAXIMUM && p->iv != 0 && p->iv < st->lim.max_incoming)
        st->lim.max_incoming = p->iv;
      if (p->id == CM_MQTT_PROP_SERVER_KEEP_ALIVE)
        cm__mqtt_set_keepalive(st, (uint64_t)(uint16_t)p->iv * 1000);
    }
  }
  int rc = send_props(c, &m, props, num_props);
  if (rc == 0 && code != 0) cm_drain(c);
  return rc;
}

static int send_list(struct cm_conn *c, int cmd, uint16_t id, const uint8_t *codes, size_t n,
                     const struct cm_mqtt_prop *props, size_t num_props) {
  struct cm__mqtt *st = cm__mqtt_of(c);
  if (st == NULL || id == 0 || (cmd == CM_MQTT_CMD_SUBACK && n == 0)) return CM_EINVAL;
  struct cm_buf list = {0};
  bool v5 = st->version == 5;
  for (size_t i = 0; i < n; i++) {
    uint8_t code = codes[i];
    if (!v5 && code >= 0x80) code = 0x80; /* 3.1.1 knows only "failure" */
    if (cm_mqtt_list_append(&list, cmd, cm_str_n("", 0), code) != 0) {
      cm_buf_free(&list);
      return CM_ENOMEM;
    }
  }
  struct cm_mqtt_packet m = {0};
  m.cmd = (uint8_t)cmd;
  m.id = id;
  m.payload = cm_str_n((const char *)cm_buf_data(&list), list.len);
  int rc = send_props(c, &m, props, num_props);
  cm_buf_free(&list);
  return rc;
}

int cm_mqtt_send_suback(struct cm_conn *c, uint16_t id, const uint8_t *codes, size_t n,
                         const struct cm_mqtt_prop *props, size_t num_props) {
  return send_list(c, CM_MQTT_CMD_SUBACK, id, codes, n, props, num_props);
}

int cm_mqtt_send_unsuback(struct cm_conn *c, uint16_t id, const uint8_t *codes, size_t n,
                           const struct cm_mqtt_prop *props, size_t num_props) {
  return send_list(c, CM_MQTT_CMD_UNSUBACK, id, codes, n, props, num_props);
}
