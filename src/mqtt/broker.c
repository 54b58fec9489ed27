/*
 * The broker object: options, life cycle, the public calls that inject
 * messages and restore state, statistics.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt/broker.h"

static void resolve(struct cm_mqtt_broker_opts *o) {
  if (o->max_connections == 0) o->max_connections = CM_MQTT_BROKER_DEFAULT_MAX_CONNECTIONS;
  if (o->max_packet_size == 0) o->max_packet_size = CM_MQTT_BROKER_DEFAULT_MAX_PACKET;
  if (o->max_queued == 0) o->max_queued = CM_MQTT_BROKER_DEFAULT_MAX_QUEUED;
  if (o->max_inflight == 0) o->max_inflight = CM_MQTT_BROKER_DEFAULT_MAX_INFLIGHT;
  if (o->max_inflight > 65535) o->max_inflight = 65535;
  if (o->max_queued > 65535 - o->max_inflight) o->max_queued = 65535 - o->max_inflight;
  if (o->max_retained == 0) o->max_retained = CM_MQTT_BROKER_DEFAULT_MAX_RETAINED;
  if (o->max_retained_bytes == 0) o->max_retained_bytes = CM_MQTT_BROKER_DEFAULT_MAX_RETAINED_BYTES;
  if (o->max_subs_per_client == 0) o->max_subs_per_client = CM_MQTT_BROKER_DEFAULT_MAX_SUBS;
  if (o->topic_alias_max == 0) o->topic_alias_max = CM_MQTT_BROKER_DEFAULT_TOPIC_ALIAS_MAX;
  if (o->topic_alias_out_max == 0) o->topic_alias_out_max = CM_MQTT_BROKER_DEFAULT_TOPIC_ALIAS_OUT_MAX;
  if (!(o->keepalive_factor >= 1.0f)) o->keepalive_factor = 1.5f;
  if (o->connect_timeout_ms == 0) o->connect_timeout_ms = 10000;
  if (o->send_hwm == 0) o->send_hwm = CM_MQTT_BROKER_DEFAULT_SEND_HWM;
  if (o->sys_interval_ms == 0) o->sys_interval_ms = CM_MQTT_BROKER_DEFAULT_SYS_INTERVAL_MS;
}

/* The keepalive deadlines of all connected clients, one timer for all (a
 * timer per client would cost ~100 bytes each; mosquitto sweeps too). */
static void sweep(void *arg) {
  struct cm_mqtt_broker *b = arg;
  uint64_t now = cm_millis();
  for (struct cm_conn *c = b->mgr->conns; c != NULL; c = c->next) {
    if (c->fn != cm__bc_fn || c->fn_data == NULL || *(const int *)c->fn_data != CM__BCLIENT_KIND)
      continue;
    struct bclient *cl = c->fn_data;
    struct cm__mqtt *st = cl->b == b ? cm__mqtt_of(c) : NULL;
    if (st != NULL && st->swept) cm__mqtt_sweep(st, now);
  }
}

struct cm_mqtt_broker *cm_mqtt_broker_new(struct cm_mgr *mgr, const struct cm_mqtt_broker_opts *opts) {
  if (mgr == NULL) {
    errno = EINVAL;
    return NULL;
  }
  struct cm_mqtt_broker *b = calloc(1, sizeof(*b));
  if (b != NULL) b->root = calloc(1, sizeof(*b->root));
  if (b == NULL || b->root == NULL) {
    free(b);
    errno = ENOMEM;
    return NULL;
  }
  b->kind = CM__BROKER_KIND;
  b->mgr = mgr;
  if (opts != NULL) b->o = *opts;
  resolve(&b->o);
  b->lim.max_packet_size = b->o.max_packet_size;
  b->lim.max_inflight = b->o.max_inflight;
  b->lim.max_queued = b->o.max_queued;
  b->lim.max_incoming = b->o.max_inflight;
  b->lim.connect_timeout_ms = b->o.connect_timeout_ms;
  b->start_ms = cm_millis();
  b->gen = 1;
  if (b->o.store.load != NULL) {
    b->loading = true;
    bool ok = b->o.store.load(b->o.store.arg, b);
    b->loading = false;
    if (!ok) {
      cm_mqtt_broker_free(b);
      errno = EIO;
      return NULL;
    }
  }
  if (!b->o.no_sys) cm__bsys_start(b);
  b->sweep_timer = cm_timer_add(mgr, CM__SWEEP_MS, CM_TIMER_REPEAT, sweep, b);
  return b;
}

/* ws:// listeners: what their HTTP handler needs. */
struct blisten {
  int kind;
  struct cm_mqtt_broker *b;
  char path[];
};
#define CM__BLISTEN_KIND 0x424C5354

static void ws_fn(struct cm_conn *c, int ev, void *ev_data) {
  struct blisten *l = c->fn_data;
  if (l == NULL) return;
  if (ev == CM_EV_CLOSE && c->is_listening) {
    c->fn_data = NULL;
    free(l);
    return;
  }
  if (ev != CM_EV_HTTP_MSG) return;
  struct cm_http_msg *hm = ev_data;
  bool any = l->path[0] == '\0' || strcmp(l->path, "/") == 0;
  if (!any && (hm->uri.len != strlen(l->path) || memcmp(hm->uri.buf, l->path, hm->uri.len) != 0)) {
    cm_http_reply(c, 404, NULL, "not found\n", 10);
    return;
  }
  /* Subprotocol "mqtt" when offered (MQTT 5.0 section 6); none offered is
   * accepted too, as many clients send none. */
  struct cm_str *proto = cm_http_get_header(hm, "Sec-WebSocket-Protocol");
  const char *extra = NULL;
  if (proto != NULL) {
    struct cm_str v = *proto;
    bool found = false;
    for (size_t i = 0; i + 4 <= v.len; i++) {
      if (strncasecmp(v.buf + i, "mqtt", 4) == 0 && (i + 4 == v.len || v.buf[i + 4] == ',' ||
                                                     v.buf[i + 4] == ' ') &&
          (i == 0 || v.buf[i - 1] == ' ' || v.buf[i - 1] == ',')) {
        found = true;
        break;
      }
    }
    if (!found) {
      cm_http_reply(c, 400, NULL, "subprotocol mqtt required\n", 26);
      return;
    }
    extra = "Sec-WebSocket-Protocol: mqtt\r\n";
  }
  struct cm_mqtt_broker *b = l->b;
  struct cm_ws_opts wo = {0};
  wo.limits.max_message_size = (uint64_t)b->o.max_packet_size + 16;
  wo.limits.max_frame_size = wo.limits.max_message_size;
  if (cm_ws_upgrade_opts(c, hm, extra, &wo) != 0) return;
  c->fn = cm__bc_fn;
  c->fn_data = b;
  c->send_hwm = b->o.send_hwm;
  if (cm_mqtt_serve(c, &b->lim) != 0) cm_error(c, "MQTT broker: out of memory");
}

bool cm__bstore_result(struct cm_mqtt_broker *b, bool ok, const char *what) {
  if (!ok) {
    b->store_failed = true;
    CM_ERROR("MQTT broker: the store could not record %s: not acknowledged", what);
  }
  return ok;
}

bool cm__bstore_commit(struct cm_mqtt_broker *b) {
  if (!b->dirty) return true;
  b->dirty = false;
  const struct cm_mqtt_broker_store *st = &b->o.store;
  return st->commit == NULL || cm__bstore_result(b, st->commit(st->arg), "a commit");
}

static bool scheme_is(struct cm_str scheme, const char *name) {
  size_t n = strlen(name);
  return scheme.len == n && strncasecmp(scheme.buf, name, n) == 0;
}

struct cm_conn *cm_mqtt_broker_listen(struct cm_mqtt_broker *b, const char *url,
                                      const struct cm_tls_opts *tls) {
  if (b == NULL || url == NULL) {
    errno = EINVAL;
    return NULL;
  }
  struct cm_str scheme = cm_url_scheme(url);
  bool ws = scheme_is(scheme, "ws") || scheme_is(scheme, "wss");
  bool secure = scheme_is(scheme, "mqtts") || scheme_is(scheme, "wss");
  /* A typo ("mqt://", "wss:/") must not silently serve plain MQTT. */
  if (!ws && !secure && !scheme_is(scheme, "mqtt") && !scheme_is(scheme, "tcp")) {
    errno = EINVAL;
    return NULL;
  }
  if (secure && tls == NULL) {
    errno = EINVAL;
    return NULL;
  }
  struct cm_conn *l;
  if (ws) {
    struct cm_str uri = cm_url_uri(url);
    struct blisten *bl = calloc(1, sizeof(*bl) + uri.len + 1);
    if (bl == NULL) {
      errno = ENOMEM;
      return NULL;
    }
    bl->kind = CM__BLISTEN_KIND;
    bl->b = b;
    memcpy(bl->path, uri.buf, uri.len);
    /* cm_listen takes any scheme as TCP; the TLS options come below. */
    l = cm_http_listen(b->mgr, url, ws_fn, bl, NULL);
    if (l == NULL) {
      free(bl);
      return NULL;
    }
  } else {
    l = cm_mqtt_listen_opts(b->mgr, url, &b->lim, cm__bc_fn, b);
    if (l == NULL) return NULL;
  }
  if (secure) {
    char err[200];
    if (cm_tls_listen_opts(l, tls, err, sizeof(err)) != 0) {
      CM_ERROR("MQTT broker: %s: %s", url, err);
      cm_close(l);
      if (ws) { /* its CLOSE would free bl through ws_fn; do it now */
        free(l->fn_data);
        l->fn_data = NULL;
      }
      l->fn = NULL;
      errno = EINVAL;
      return NULL;
    }
  }
  CM_INFO("MQTT broker: listening on %s (port %u)", url, l->loc.port);
  return l;
}

void cm_mqtt_broker_free(struct cm_mqtt_broker *b) {
  if (b == NULL) return;
  if (b->sys_timer != NULL) cm_timer_cancel(b->mgr, b->sys_timer);
  if (b->sweep_timer != NULL) cm_timer_cancel(b->mgr, b->sweep_timer);
  /* Listeners and clients first: nothing reaches the broker afterwards. */
  for (struct cm_conn *c = b->mgr->conns; c != NULL; c = c->next) {
    if (c->fn == ws_fn) {
      struct blisten *l = c->fn_data;
      if (l == NULL || l->b != b) continue;
      c->fn = NULL;
      if (c->is_listening) {
        c->fn_data = NULL;
        free(l);
      } else {
        c->fn_data = NULL;
      }
      cm_close(c);
      continue;
    }
    if (c->fn != cm__bc_fn || c->fn_data == NULL) continue;
    int kind = *(const int *)c->fn_data;
    struct bclient *cl = kind == CM__BCLIENT_KIND ? c->fn_data : NULL;
    if ((cl != NULL ? cl->b : (struct cm_mqtt_broker *)c->fn_data) != b) continue;
    if (cl != NULL) {
      cm__bs_will_free(cl->will); /* no will on shutdown */
      cl->will = NULL;
      cm__bd_kick(cl, CM_MQTT_RC_SERVER_SHUTTING_DOWN, "server shutting down");
    } else {
      cm_close(c);
    }
  }
  for (size_t i = 0; i < b->hcap; i++)
    while (b->htab[i] != NULL) cm__bs_free(b, b->htab[i], false);
  for (struct cm_conn *c = b->mgr->conns; c != NULL; c = c->next) {
    if (c->fn != cm__bc_fn || c->fn_data == NULL) continue;
    int kind = *(const int *)c->fn_data;
    if (kind == CM__BCLIENT_KIND) {
      struct bclient *cl = c->fn_data;
      if (cl->b != b) continue;
      struct cm__mqtt *st = cm__mqtt_of(c);
      if (st != NULL) st->prepare = NULL; /* cl is freed here */
      free(cl->taken_id);
      free(cl->err);
      free(cl->cert);
      free(cl->username);
      free(cl);
    } else if (c->fn_data != b) {
      continue;
    }
    c->fn = NULL;
    c->fn_data = NULL;
  }
  cm__bt_free(b->root);
  free(b->htab);
  free(b->rv);
  cm_buf_free(&b->enc);
  cm_buf_free(&b->enc2);
  cm_buf_free(&b->aenc);
  cm_buf_free(&b->props);
  cm_buf_free(&b->inprops);
  for (int q = 0; q < 3; q++)
    for (int v = 0; v < 2; v++)
      for (int r = 0; r < 2; r++) cm_buf_free(&b->tpl[q][v][r]);
  free(b);
}

static bool msg_valid(const struct cm_mqtt_broker_msg *m) {
  const char *why;
  return m != NULL && m->qos <= 2 && cm_mqtt_topic_valid(m->topic) &&
         (m->props.len == 0 || cm_mqtt_props_check(m->props, CM_MQTT_CMD_PUBLISH, &why) == 0);
}

int cm_mqtt_broker_publish(struct cm_mqtt_broker *b, const struct cm_mqtt_broker_msg *m,
                           const void *origin) {
  if (b == NULL || !msg_valid(m)) return CM_EINVAL;
  if (m->retain) cm__br_retain(b, m, true);
  if (b->o.on_message != NULL) b->o.on_message(b->o.msg_arg, m, NULL, origin);
  int n = cm__bd_route(b, m, NULL);
  cm__bstore_commit(b);
  return n;
}

static bool restore_retained(struct cm_mqtt_broker *b, const struct cm_mqtt_broker_msg *m) {
  if (b == NULL || !msg_valid(m) || m->payload.len == 0) return false;
  bool was = b->loading;
  b->loading = true;
  uint32_t before = b->st.retained;
  struct cm_mqtt_broker_msg r = *m;
  r.retain = true;
  cm__br_retain(b, &r, false);
  b->loading = was;
  return b->st.retained >= before && cm__bt_node(b, m->topic, false) != NULL;
}

static struct bsess *restored(struct cm_mqtt_broker *b, struct cm_str id) {
  struct bsess *s = cm__bs_find(b, id);
  return s != NULL && s->client == NULL ? s : NULL;
}

static bool restore_session(struct cm_mqtt_broker *b, struct cm_str client_id,
                                    uint32_t expiry_s) {
  if (b == NULL || client_id.len == 0 || !cm_mqtt_str_valid(client_id) || expiry_s == 0)
    return false;
  struct bsess *s = cm__bs_find(b, client_id);
  if (s != NULL) return s->client == NULL;
  s = cm__bs_new(b, client_id);
  if (s == NULL) return false;
  s->persistent = true;
  s->expiry_s = expiry_s;
  if (expiry_s != CM__NEVER && !cm__bs_expiry_start(b, s, (uint64_t)expiry_s * 1000)) {
    cm__bs_free(b, s, false);
    return false;
  }
  return true;
}

static bool restore_sub(struct cm_mqtt_broker *b, struct cm_str client_id,
                                struct cm_str filter, uint8_t options, uint32_t sub_id) {
  struct bsess *s = b != NULL ? restored(b, client_id) : NULL;
  if (s == NULL) return false;
  struct cm_str group, real = filter;
  bool ok;
  bool shared = cm__bt_shared(filter, &group, &real, &ok);
  if (!ok || (!shared && !cm_mqtt_filter_valid(filter)) || (options & 3) == 3) return false;
  bool is_new;
  return cm__bt_subscribe(b, s, filter, options, sub_id, &is_new) != NULL;
}

static bool restore_msg(struct cm_mqtt_broker *b, struct cm_str client_id, uint16_t id,
                                int state, const struct cm_mqtt_broker_msg *m) {
  struct bsess *s = b != NULL ? restored(b, client_id) : NULL;
  if (s == NULL || id == 0 || !msg_valid(m) || m->qos == 0 || state < 0 || state > 2) return false;
  if (cm__mqtt_id_test(s->ms->ids_out, id)) return false;
  if (s->ms->count >= (size_t)b->o.max_queued + b->o.max_inflight) return false;
  if (!cm__bd_encode(b, &b->enc, s->held_version, m, m->qos, m->retain, id, NULL, 0)) return false;
  struct cm__mqtt_out *o = cm__mqtt_session_add(s->ms, id, m->qos, cm_buf_data(&b->enc), b->enc.len);
  if (o == NULL) return false;
  if (m->expiry_s != 0) o->expire_ms = cm_millis() + (uint64_t)m->expiry_s * 1000;
  if (state != CM_MQTT_HELD_QUEUED) {
    o->state = state == CM_MQTT_HELD_SENT ? CM__OUT_PUBLISHED : CM__OUT_RELEASED;
    s->ms->inflight++;
  }
  b->st.queued++;
  return true;
}

static bool restore_incoming(struct cm_mqtt_broker *b, struct cm_str client_id, uint16_t id) {
  struct bsess *s = b != NULL ? restored(b, client_id) : NULL;
  if (s == NULL || id == 0) return false;
  if (cm__mqtt_id_test(s->ms->ids_in, id)) return true;
  if (!cm__mqtt_id_set(&s->ms->ids_in, id, true)) return false;
  s->ms->nin++;
  return true;
}

void cm_mqtt_broker_stats(const struct cm_mqtt_broker *b, struct cm_mqtt_broker_stats *st) {
  if (b == NULL || st == NULL) return;
  *st = b->st;
  st->uptime_s = (cm_millis() - b->start_ms) / 1000;
  st->clients_disconnected = (uint32_t)(b->nsess - b->st.clients_connected);
}

long cm_mqtt_broker_clients(const struct cm_mqtt_broker *b,
                            void (*fn)(void *arg, const struct cm_mqtt_client_info *who),
                            void *arg) {
  if (b == NULL || fn == NULL) return CM_EINVAL;
  long n = 0;
  for (size_t i = 0; i < b->hcap; i++) {
    for (const struct bsess *s = b->htab[i]; s != NULL; s = s->hnext) {
      if (s->client == NULL || !s->client->counted) continue;
      struct cm_mqtt_client_info who;
      cm__bc_info(s->client, &who);
      fn(arg, &who);
      n++;
    }
  }
  return n;
}

static bool broker_kick(struct cm_mqtt_broker *b, struct cm_str client_id, uint8_t reason,
                         bool drop_session) {
  struct bsess *s = b != NULL ? cm__bs_find(b, client_id) : NULL;
  if (s == NULL) return false;
  if (s->client != NULL) {
    struct bclient *cl = s->client;
    cm__bd_kick(cl, reason, "kicked");
    if (drop_session) {
      s->expiry_s = 0; /* ends when the connection does */
      return true;
    }
    return true;
  }
  if (drop_session) cm__bs_free(b, s, true);
  cm__bstore_commit(b);
  return true;
}

int cm_mqtt_broker_restore_retained(struct cm_mqtt_broker *b, const struct cm_mqtt_broker_msg *m) {
  return restore_retained(b, m) ? 0 : CM_EINVAL;
}

int cm_mqtt_broker_restore_session(struct cm_mqtt_broker *b, struct cm_str client_id,
                                   uint32_t expiry_s) {
  return restore_session(b, client_id, expiry_s) ? 0 : CM_EINVAL;
}

int cm_mqtt_broker_restore_sub(struct cm_mqtt_broker *b, struct cm_str client_id,
                               struct cm_str filter, uint8_t options, uint32_t sub_id) {
  return restore_sub(b, client_id, filter, options, sub_id) ? 0 : CM_EINVAL;
}

int cm_mqtt_broker_restore_msg(struct cm_mqtt_broker *b, struct cm_str client_id, uint16_t id,
                               int state, const struct cm_mqtt_broker_msg *m) {
  return restore_msg(b, client_id, id, state, m) ? 0 : CM_EINVAL;
}

int cm_mqtt_broker_restore_incoming(struct cm_mqtt_broker *b, struct cm_str client_id,
                                    uint16_t id) {
  return restore_incoming(b, client_id, id) ? 0 : CM_EINVAL;
}

int cm_mqtt_broker_kick(struct cm_mqtt_broker *b, struct cm_str client_id, uint8_t reason,
                        bool drop_session) {
  return broker_kick(b, client_id, reason, drop_session) ? 0 : CM_ENOENT;
}
