/*
 * Session state that outlives a connection (section 4.1): our QoS 1/2
 * messages until their flow completes, the peer's QoS 2 ids until
 * released, and the packet id counter.  A connection either owns a
 * session or borrows the application's (struct cm_mqtt_session).
 */
#include <stdlib.h>
#include <string.h>

#include "mqtt/internal.h"

#define ID_BITMAP_BYTES (65536 / 8)

void cm__mqtt_limits_resolve(struct cm_mqtt_limits *l) {
  if (l->max_packet_size == 0) l->max_packet_size = CM_MQTT_DEFAULT_MAX_PACKET;
  if (l->max_inflight == 0) l->max_inflight = CM_MQTT_DEFAULT_MAX_INFLIGHT;
  if (l->max_inflight > 65535) l->max_inflight = 65535;
  if (l->max_queued == 0) l->max_queued = CM_MQTT_DEFAULT_MAX_QUEUED;
  if (l->max_incoming == 0) l->max_incoming = CM_MQTT_DEFAULT_MAX_INCOMING;
  if (l->connect_timeout_ms == 0) l->connect_timeout_ms = CM_MQTT_DEFAULT_CONNECT_TIMEOUT_MS;
}

/* The limits live on the connection (struct cm__mqtt), not here. */
struct cm_mqtt_session *cm_mqtt_session_new(const struct cm_mqtt_limits *lim) {
  (void)lim;
  return calloc(1, sizeof(struct cm_mqtt_session) + CM__MQTT_CLIENT_ID_CAP);
}

struct cm_mqtt_session *cm__mqtt_session_new_server(void) {
  return calloc(1, sizeof(struct cm_mqtt_session)); /* client_id[0] is in the padding */
}

void cm_mqtt_session_free(struct cm_mqtt_session *s) {
  if (s == NULL) return;
  for (struct cm__mqtt_out *o = s->head, *next; o != NULL; o = next) {
    next = o->next;
    free(o);
  }
  free(s->ids_out);
  free(s->ids_in);
  free(s);
}

size_t cm_mqtt_session_pending(const struct cm_mqtt_session *s) { return s == NULL ? 0 : s->count; }

size_t cm_mqtt_session_expired(const struct cm_mqtt_session *s) { return s == NULL ? 0 : s->expired; }

bool cm__mqtt_id_test(const uint8_t *bits, uint16_t id) {
  return bits != NULL && (bits[id >> 3] >> (id & 7) & 1);
}

bool cm__mqtt_id_set(uint8_t **bits, uint16_t id, bool on) {
  if (*bits == NULL) {
    if (!on) return true;
    *bits = calloc(1, ID_BITMAP_BYTES);
    if (*bits == NULL) return false;
  }
  if (on) {
    (*bits)[id >> 3] = (uint8_t)((*bits)[id >> 3] | 1u << (id & 7));
  } else {
    (*bits)[id >> 3] = (uint8_t)((*bits)[id >> 3] & ~(1u << (id & 7)));
  }
  return true;
}

uint16_t cm__mqtt_session_id(struct cm_mqtt_session *s) {
  /* At most 65535 held messages (max_inflight + max_queued is checked by
   * the caller against that), so a free id exists. */
  for (unsigned tries = 0; tries < 65536; tries++) {
    s->last_id = (uint16_t)(s->last_id + 1);
    if (s->last_id == 0) s->last_id = 1;
    if (!cm__mqtt_id_test(s->ids_out, s->last_id)) return s->last_id;
  }
  return 0;
}

struct cm__mqtt_out *cm__mqtt_session_add(struct cm_mqtt_session *s, uint16_t id, uint8_t qos,
                                          const uint8_t *pkt, size_t len) {
  struct cm__mqtt_out *o = malloc(sizeof(*o) + len);
  if (o == NULL) return NULL;
  if (!cm__mqtt_id_set(&s->ids_out, id, true)) {
    free(o);
    return NULL;
  }
  o->next = NULL;
  o->id = id;
  o->qos = qos;
  o->state = CM__OUT_QUEUED;
  o->flags = 0;
  o->expiry_s = 0;
  o->expire_ms = 0;
  o->len = len;
  memcpy(o->pkt, pkt, len);
  if (s->tail != NULL) s->tail->next = o;
  else s->head = o;
  s->tail = o;
  s->count++;
  return o;
}

struct cm__mqtt_out *cm__mqtt_session_find(struct cm_mqtt_session *s, uint16_t id, uint8_t state) {
  if (!cm__mqtt_id_test(s->ids_out, id)) return NULL;
  for (struct cm__mqtt_out *o = s->head; o != NULL; o = o->next)
    if (o->id == id) return o->state == state ? o : NULL;
  return NULL;
}

void cm__mqtt_session_remove(struct cm_mqtt_session *s, struct cm__mqtt_out *o) {
  struct cm__mqtt_out *prev = NULL;
  for (struct cm__mqtt_out *p = s->head; p != NULL; prev = p, p = p->next) {
    if (p != o) continue;
    if (prev != NULL) prev->next = o->next;
    else s->head = o->next;
    if (s->tail == o) s->tail = prev;
    break;
  }
  if (o->state != CM__OUT_QUEUED) s->inflight--;
  s->count--;
  cm__mqtt_id_set(&s->ids_out, o->id, false);
  free(o);
}

void cm__mqtt_session_reset(struct cm_mqtt_session *s) {
  for (struct cm__mqtt_out *o = s->head, *next; o != NULL; o = next) {
    next = o->next;
    if (o->state == CM__OUT_RELEASED) {
      cm__mqtt_session_remove(s, o); /* delivered already */
    } else if (o->state == CM__OUT_PUBLISHED) {
      o->state = CM__OUT_QUEUED;
      o->pkt[0] = (uint8_t)(o->pkt[0] & ~0x08); /* new to this session: no DUP */
      s->inflight--;
    }
  }
  free(s->ids_in);
  s->ids_in = NULL;
  s->nin = 0;
}
