/* Bridges to upstream brokers (include/cymongoose/mqtt_ops.h). */
#include <stdlib.h>
#include <string.h>

#include "cymongoose.h"
#include "opsutil.h"

#define BACKOFF_MIN_MS 1000u
#define BACKOFF_MAX_MS 60000u
/* 3.1.1 upstreams have no no-local: what we publish upstream on a topic we
 * also subscribe to comes back.  The bridge remembers what it sent recently
 * (hash of remote topic and payload) and drops one matching echo each.  A
 * genuinely identical message from another upstream client within the
 * window is dropped too (documented). */
#define ECHO_SLOTS 1024u
#define ECHO_WINDOW_MS 30000u

struct echo {
  uint64_t hash;
  uint64_t at_ms; /* 0: free */
};

struct cm_bridge {
  struct cm_mgr *mgr;
  struct cm_mqtt_broker *b;
  const struct cm_conf_bridge *conf; /* owned by the caller's cm_conf */
  struct cm_conn *c;                 /* NULL while disconnected */
  struct cm_mqtt_session *session;   /* QoS 1/2 state across reconnects */
  struct cm_timer *retry;            /* manager-owned while armed */
  bool retry_armed;
  bool open;                         /* CONNACK accepted */
  uint32_t backoff_ms;
  uint64_t dropped;
  struct echo echoes[ECHO_SLOTS];
  size_t echo_next;
};

static uint64_t echo_hash(struct cm_str topic, struct cm_str payload) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < topic.len; i++) h = (h ^ (uint8_t)topic.buf[i]) * 1099511628211ull;
  h = (h ^ 0xFF) * 1099511628211ull;
  for (size_t i = 0; i < payload.len; i++) h = (h ^ (uint8_t)payload.buf[i]) * 1099511628211ull;
  return h | 1;
}

static void echo_remember(struct cm_bridge *br, struct cm_str topic, struct cm_str payload) {
  br->echoes[br->echo_next] = (struct echo){echo_hash(topic, payload), cm_millis()};
  br->echo_next = (br->echo_next + 1) % ECHO_SLOTS;
}

/* True (and forgets it) when topic/payload is the echo of one we sent. */
static bool echo_take(struct cm_bridge *br, struct cm_str topic, struct cm_str payload) {
  uint64_t h = echo_hash(topic, payload), now = cm_millis();
  for (size_t i = 0; i < ECHO_SLOTS; i++) {
    struct echo *e = &br->echoes[i];
    if (e->at_ms != 0 && e->hash == h && now - e->at_ms <= ECHO_WINDOW_MS) {
      e->at_ms = 0;
      return true;
    }
  }
  return false;
}

bool cm_bridge_map(const struct cm_conf_topic *t, int dir, struct cm_str topic,
                   struct cm_buf *out) {
  if ((t->direction & dir) == 0) return false;
  const char *from = dir == 2 ? t->local_prefix : t->remote_prefix;
  const char *to = dir == 2 ? t->remote_prefix : t->local_prefix;
  size_t fl = strlen(from);
  if (topic.len < fl || memcmp(topic.buf, from, fl) != 0) return false;
  struct cm_str rest = cm_str_n(topic.buf + fl, topic.len - fl);
  if (rest.len == 0 || !cm_mqtt_match(rest, cm_str_c(t->pattern))) return false;
  return cm_buf_append(out, to, strlen(to)) == 0 && cm_buf_append(out, rest.buf, rest.len) == 0;
}

uint64_t cm_bridge_dropped(const struct cm_bridge *br) {
  return br->dropped;
}

bool cm_bridge_connected(const struct cm_bridge *br) {
  return br->open;
}

static void connect_now(struct cm_bridge *br);

static void retry_fire(void *arg) {
  struct cm_bridge *br = arg;
  br->retry_armed = false;
  connect_now(br);
}

static void schedule_retry(struct cm_bridge *br) {
  if (br->retry_armed) return;
  CM_INFO("bridge %s: reconnecting in %u ms", br->conf->name, (unsigned)br->backoff_ms);
  br->retry = cm_timer_add(br->mgr, br->backoff_ms, CM_TIMER_ONCE, retry_fire, br);
  br->retry_armed = br->retry != NULL;
  br->backoff_ms = br->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : br->backoff_ms * 2;
}

static void subscribe_in(struct cm_bridge *br) {
  for (size_t i = 0; i < br->conf->ntopics; i++) {
    const struct cm_conf_topic *t = &br->conf->topics[i];
    if ((t->direction & 1) == 0) continue;
    struct cm_buf f = {0};
    cm_buf_append(&f, t->remote_prefix, strlen(t->remote_prefix));
    cm_buf_append(&f, t->pattern, strlen(t->pattern));
    struct cm_mqtt_sub_opts so = {.topic = cm_str_n((const char *)cm_buf_data(&f), f.len),
                                  .qos = t->qos,
                                  .no_local = true,
                                  .retain_as_published = true};
    if (cm_mqtt_subscribe(br->c, &so, 1, 0, NULL, 0) < 0)
      CM_ERROR("bridge %s: cannot subscribe to %.*s", br->conf->name, (int)so.topic.len,
               so.topic.buf);
    cm_buf_free(&f);
  }
}

static void on_upstream_msg(struct cm_bridge *br, const struct cm_mqtt_msg *mm) {
  if (br->conf->version != 5 && echo_take(br, mm->topic, mm->data)) return;
  for (size_t i = 0; i < br->conf->ntopics; i++) {
    const struct cm_conf_topic *t = &br->conf->topics[i];
    struct cm_buf local = {0};
    if (!cm_bridge_map(t, 1, mm->topic, &local)) {
      cm_buf_free(&local);
      continue;
    }
    struct cm_mqtt_broker_msg m = {.topic = cm_str_n((const char *)cm_buf_data(&local), local.len),
                                   .payload = mm->data,
                                   .qos = mm->qos < t->qos ? mm->qos : t->qos,
                                   .retain = mm->retain};
    if (cm_mqtt_broker_publish(br->b, &m, br) < 0)
      CM_ERROR("bridge %s: cannot inject %.*s", br->conf->name, (int)m.topic.len, m.topic.buf);
    cm_buf_free(&local);
    return; /* the first line that maps it */
  }
}

static void handler(struct cm_conn *c, int ev, void *ev_data) {
  struct cm_bridge *br = c->fn_data;
  switch (ev) {
    case CM_EV_MQTT_OPEN:
      br->open = true;
      br->backoff_ms = BACKOFF_MIN_MS;
      CM_INFO("bridge %s: connected to %s", br->conf->name, br->conf->url);
      subscribe_in(br);
      break;
    case CM_EV_MQTT_MSG:
      on_upstream_msg(br, ev_data);
      break;
    case CM_EV_ERROR:
      CM_ERROR("bridge %s: %s", br->conf->name, (const char *)ev_data);
      break;
    case CM_EV_CLOSE:
      if (br->open) CM_INFO("bridge %s: disconnected from %s", br->conf->name, br->conf->url);
      br->open = false;
      br->c = NULL;
      schedule_retry(br);
      break;
    default:
      break;
  }
}

static void connect_now(struct cm_bridge *br) {
  const struct cm_conf_bridge *k = br->conf;
  struct cm_mqtt_opts o = {.client_id = cm_str_c(k->remote_clientid),
                           .user = cm_str_c(k->remote_username != NULL ? k->remote_username : ""),
                           .pass = cm_str_c(k->remote_password != NULL ? k->remote_password : ""),
                           .clean = k->clean_start,
                           .keepalive = k->keepalive,
                           .version = k->version,
                           .session = br->session};
  /* v5: without a Session Expiry Interval the upstream would drop our
   * session at disconnect; keep it as 3.1.1 clean_session=0 would. */
  struct cm_mqtt_prop expiry = {.id = CM_MQTT_PROP_SESSION_EXPIRY_INTERVAL, .iv = 0xFFFFFFFFu};
  if (k->version == 5 && !k->clean_start) o.props = &expiry, o.num_props = 1;
  br->c = cm_mqtt_connect(br->mgr, k->url, &o, handler, br);
  if (br->c == NULL) {
    CM_ERROR("bridge %s: cannot connect to %s", k->name, k->url);
    schedule_retry(br);
  }
}

struct cm_bridge *cm_bridge_new(struct cm_mgr *mgr, struct cm_mqtt_broker *b,
                                const struct cm_conf_bridge *conf) {
  struct cm_bridge *br = calloc(1, sizeof(*br));
  if (br == NULL) return NULL;
  br->mgr = mgr;
  br->b = b;
  br->conf = conf;
  br->backoff_ms = BACKOFF_MIN_MS;
  br->session = cm_mqtt_session_new(NULL);
  if (br->session == NULL) return free(br), NULL;
  connect_now(br);
  return br;
}

void cm_bridge_on_message(struct cm_bridge *br, const struct cm_mqtt_broker_msg *m,
                          const void *origin) {
  if (origin == br) return; /* what we injected from upstream never goes back */
  for (size_t i = 0; i < br->conf->ntopics; i++) {
    const struct cm_conf_topic *t = &br->conf->topics[i];
    struct cm_buf remote = {0};
    if (!cm_bridge_map(t, 2, m->topic, &remote)) {
      cm_buf_free(&remote);
      continue;
    }
    struct cm_mqtt_pub_opts po = {
        .topic = cm_str_n((const char *)cm_buf_data(&remote), remote.len),
        .message = m->payload,
        .qos = m->qos < t->qos ? m->qos : t->qos,
        .retain = m->retain};
    if (br->c == NULL || cm_mqtt_publish(br->c, &po) < 0) {
      br->dropped++;
    } else if (br->conf->version != 5) {
      echo_remember(br, po.topic, po.message);
    }
    cm_buf_free(&remote);
    return;
  }
}

static void orphan_handler(struct cm_conn *c, int ev, void *ev_data) {
  (void)ev_data;
  if (ev == CM_EV_CLOSE) cm_mqtt_session_free(c->fn_data);
}

void cm_bridge_free(struct cm_bridge *br) {
  if (br == NULL) return;
  if (br->retry_armed) cm_timer_cancel(br->mgr, br->retry);
  if (br->c != NULL) {
    /* The connection uses the session until its CLOSE, which comes later:
     * the session is freed then. */
    br->c->fn = orphan_handler;
    br->c->fn_data = br->session;
    cm_mqtt_disconnect(br->c);
  } else {
    cm_mqtt_session_free(br->session);
  }
  free(br);
}
