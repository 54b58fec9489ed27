/*
 * Broker sessions (MQTT 4.1): found by client id in a hash table; they hold
 * the subscriptions and the QoS 1/2 messages of a client (a struct
 * cm_mqtt_session, the glue's, so the QoS flows run unchanged on whatever
 * connection carries the session), outlive the connection while not
 * expired, and carry a delayed will.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt/broker.h"

static size_t hash(struct cm_str id) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < id.len; i++) h = (h ^ (uint8_t)id.buf[i]) * 1099511628211ull;
  return (size_t)h;
}

struct bsess *cm__bs_find(struct cm_mqtt_broker *b, struct cm_str id) {
  if (b->hcap == 0) return NULL;
  for (struct bsess *s = b->htab[hash(id) & (b->hcap - 1)]; s != NULL; s = s->hnext)
    if (s->id_len == id.len && memcmp(s->id, id.buf, id.len) == 0) return s;
  return NULL;
}

static bool grow(struct cm_mqtt_broker *b) {
  size_t cap = b->hcap == 0 ? 64 : b->hcap * 2;
  struct bsess **t = calloc(cap, sizeof(*t));
  if (t == NULL) return b->hcap != 0; /* keep the old table, longer chains */
  for (size_t i = 0; i < b->hcap; i++) {
    for (struct bsess *s = b->htab[i], *next; s != NULL; s = next) {
      next = s->hnext;
      size_t h = hash(cm_str_n(s->id, s->id_len)) & (cap - 1);
      s->hnext = t[h];
      t[h] = s;
    }
  }
  free(b->htab);
  b->htab = t;
  b->hcap = cap;
  return true;
}

struct bsess *cm__bs_new(struct cm_mqtt_broker *b, struct cm_str id) {
  if (id.len > 65535) return NULL;
  if (b->nsess >= b->hcap && !grow(b)) return NULL;
  struct bsess *s = calloc(1, offsetof(struct bsess, id) + id.len);
  if (s == NULL) return NULL;
  s->ms = cm__mqtt_session_new_server();
  if (s->ms == NULL) {
    free(s);
    return NULL;
  }
  s->id_len = (uint16_t)id.len;
  memcpy(s->id, id.buf, id.len);
  s->held_version = 5;
  size_t h = hash(id) & (b->hcap - 1);
  s->hnext = b->htab[h];
  b->htab[h] = s;
  b->nsess++;
  return s;
}

void cm__bs_will_free(struct bwill *w) {
  if (w == NULL) return;
  if (w->timer != NULL) cm_timer_cancel(w->b->mgr, w->timer);
  free(w);
}

void cm__bs_will_fire(struct cm_mqtt_broker *b, struct bwill *w) {
  if (w->sess != NULL && w->sess->will == w) w->sess->will = NULL;
  w->timer = NULL; /* fired or about to be freed: never cancel it again */
  if (w->m.retain) cm__br_retain(b, &w->m, true);
  if (b->o.on_message != NULL) b->o.on_message(b->o.msg_arg, &w->m, NULL, NULL);
  cm__bd_route(b, &w->m, NULL);
  free(w);
}

void cm__bs_free(struct cm_mqtt_broker *b, struct bsess *s, bool report) {
  const struct cm_mqtt_broker_store *store = &b->o.store;
  if (report && s->persistent && !b->loading && store->session_delete != NULL) {
    cm__bstore_dirty(b);
    store->session_delete(store->arg, cm_str_n(s->id, s->id_len));
  }
  cm__bt_unsubscribe_all(b, s);
  if (s->will != NULL) {
    s->will->sess = NULL;
    cm__bs_will_free(s->will);
  }
  cm__bs_expiry_stop(b, s);
  if (s->client != NULL) {
    /* Its connection must not keep a pointer to the state freed here. */
    struct cm__mqtt *st = cm__mqtt_of(s->client->c);
    struct cm_mqtt_session *fresh = st != NULL ? cm__mqtt_session_new_server() : NULL;
    if (st != NULL && st->sess == s->ms && fresh != NULL) {
      st->sess = fresh;
      st->own_session = true;
      fresh->in_use = true;
    } else {
      cm_mqtt_session_free(fresh);
      if (st != NULL && st->sess == s->ms) cm_close(s->client->c);
    }
    s->client->sess = NULL;
  }
  b->st.queued -= s->ms->count;
  size_t h = hash(cm_str_n(s->id, s->id_len)) & (b->hcap - 1);
  for (struct bsess **pp = &b->htab[h]; *pp != NULL; pp = &(*pp)->hnext) {
    if (*pp != s) continue;
    *pp = s->hnext;
    break;
  }
  b->nsess--;
  if (s->client == NULL || cm__mqtt_of(s->client->c) == NULL || cm__mqtt_of(s->client->c)->sess != s->ms)
    cm_mqtt_session_free(s->ms);
  free(s);
}

static void on_will_delay(void *arg) {
  struct bwill *w = arg;
  struct cm_mqtt_broker *b = w->b;
  w->timer = NULL;
  cm__bs_will_fire(b, w);
  cm__bstore_commit(b);
}

/* The timer of an offline session's expiry, in storage of its own that
 * knows the broker (freed when the manager lets go of the timer). */
struct bexpiry {
  struct cm_timer t;
  struct cm_mqtt_broker *b;
  struct bsess *s;
};

static void on_expiry(void *arg);

static void expiry_release(void *arg) {
  free(arg);
}

bool cm__bs_expiry_start(struct cm_mqtt_broker *b, struct bsess *s, uint64_t ms) {
  cm__bs_expiry_stop(b, s);
  struct bexpiry *e = calloc(1, sizeof(*e));
  if (e == NULL) return false;
  e->b = b;
  e->s = s;
  if (cm_timer_start(b->mgr, &e->t, ms, CM_TIMER_ONCE, on_expiry, e, expiry_release) != 0) {
    free(e);
    return false;
  }
  s->expiry = e;
  return true;
}

void cm__bs_expiry_stop(struct cm_mqtt_broker *b, struct bsess *s) {
  struct bexpiry *e = s->expiry;
  if (e == NULL) return;
  s->expiry = NULL;
  e->s = NULL;
  cm_timer_stop(b->mgr, &e->t); /* release frees e */
}

/* An offline session ends: its will goes out now if it still waits (the
 * will delay ends with the session), then it is gone. */
static void end_session(struct cm_mqtt_broker *b, struct bsess *s) {
  if (s->will != NULL) {
    struct bwill *w = s->will;
    if (w->timer != NULL) cm_timer_cancel(b->mgr, w->timer);
    w->timer = NULL;
    cm__bs_will_fire(b, w);
  }
  cm__bs_free(b, s, true);
}

static void on_expiry(void *arg) {
  struct bexpiry *e = arg;
  struct cm_mqtt_broker *b = e->b;
  struct bsess *s = e->s;
  if (s == NULL) return;
  s->expiry = NULL; /* e goes when this returns */
  e->s = NULL;
  if (s->client != NULL) return;
  CM_DEBUG("MQTT broker: session %.*s expired", (int)s->id_len, s->id);
  end_session(b, s);
  cm__bstore_commit(b);
}

void cm__bs_detach(struct cm_mqtt_broker *b, struct bsess *s) {
  s->client = NULL;
  if (s->expiry_s == 0) {
    end_session(b, s);
    return;
  }
  if (s->will != NULL && s->will->delay_s > 0 && s->will->timer == NULL) {
    if (s->will->delay_s >= s->expiry_s) {
      /* Fires with the session's end instead. */
    } else {
      s->will->timer = cm_timer_add(b->mgr, (uint64_t)s->will->delay_s * 1000, CM_TIMER_ONCE,
                                    on_will_delay, s->will);
      if (s->will->timer == NULL) cm__bs_will_fire(b, s->will);
    }
  }
  if (s->expiry_s != CM__NEVER && !cm__bs_expiry_start(b, s, (uint64_t)s->expiry_s * 1000)) {
    CM_ERROR("MQTT broker: out of memory: session %.*s ends now", (int)s->id_len, s->id);
    end_session(b, s);
  }
}
