/*
 * Retained messages: one per topic, on the topic's node of the tree
 * (broker_tree.c), bounded in count and bytes; found for a new
 * subscription by walking the tree along its filter.
 */
#include <stdlib.h>
#include <string.h>

#include "mqtt/broker.h"

static size_t ret_bytes(const struct bretained *r) {
  return r->topic_len + r->payload_len + r->props_len;
}

static void drop(struct cm_mqtt_broker *b, struct bnode *n) {
  b->st.retained--;
  b->st.retained_bytes -= ret_bytes(n->ret);
  free(n->ret);
  n->ret = NULL;
}

void cm__br_retain(struct cm_mqtt_broker *b, const struct cm_mqtt_broker_msg *m, bool report) {
  const struct cm_mqtt_broker_store *store = &b->o.store;
  bool clear = m->payload.len == 0;
  struct bnode *n = cm__bt_node(b, m->topic, !clear);
  if (n == NULL) return;
  size_t bytes = m->topic.len + m->payload.len + m->props.len;
  if (!clear) {
    uint64_t after = b->st.retained_bytes + bytes - (n->ret != NULL ? ret_bytes(n->ret) : 0);
    if ((n->ret == NULL && b->st.retained >= b->o.max_retained) ||
        after > b->o.max_retained_bytes) {
      CM_DEBUG("MQTT broker: retained limit reached, %.*s not retained", (int)m->topic.len,
               m->topic.buf);
      cm__bt_prune(b, n);
      return;
    }
    struct bretained *r = malloc(sizeof(*r) + bytes);
    if (r == NULL) {
      cm__bt_prune(b, n);
      return;
    }
    r->qos = m->qos;
    r->expire_ms = m->expiry_s != 0 ? cm_millis() + (uint64_t)m->expiry_s * 1000 : 0;
    r->topic_len = m->topic.len;
    r->payload_len = m->payload.len;
    r->props_len = m->props.len;
    memcpy(r->data, m->topic.buf, m->topic.len);
    memcpy(r->data + m->topic.len, m->payload.buf, m->payload.len);
    if (m->props.len > 0) memcpy(r->data + m->topic.len + m->payload.len, m->props.buf, m->props.len);
    if (n->ret != NULL) drop(b, n);
    n->ret = r;
    b->st.retained++;
    b->st.retained_bytes += bytes;
  } else if (n->ret != NULL) {
    drop(b, n);
    cm__bt_prune(b, n);
  } else {
    return;
  }
  if (report && !b->loading && store->retain != NULL)
    store->retain(store->arg, m->topic, clear ? NULL : m);
}

/* Sends n's retained message (dropping it when expired). */
static void send_one(struct cm_mqtt_broker *b, struct bclient *cl, struct bnode *n, uint8_t qos,
                     uint32_t sub_id, uint64_t now) {
  struct bretained *r = n->ret;
  if (r == NULL) return;
  if (r->expire_ms != 0 && now >= r->expire_ms) {
    drop(b, n); /* the node is pruned later, when the walk is over */
    return;
  }
  struct cm_mqtt_broker_msg m = {0};
  m.topic = cm_str_n(r->data, r->topic_len);
  m.payload = cm_str_n(r->data + r->topic_len, r->payload_len);
  m.props = cm_str_n(r->data + r->topic_len + r->payload_len, r->props_len);
  m.qos = r->qos;
  m.retain = true;
  if (r->expire_ms != 0) m.expiry_s = (uint32_t)((r->expire_ms - now + 999) / 1000);
  if (b->o.acl_check != NULL) {
    struct cm_mqtt_client_info who;
    cm__bc_info(cl, &who);
    if (!b->o.acl_check(b->o.acl_arg, &who, m.topic, CM_MQTT_ACL_READ)) return;
  }
  uint8_t q = m.qos < qos ? m.qos : qos;
  /* 3.3.1.3: a retained message sent for a new subscription keeps RETAIN. */
  cm__bd_deliver_one(b, cl->sess, &m, q, true, sub_id != 0 ? &sub_id : NULL, sub_id != 0);
}

/* n's retained message and everything below it. */
static void walk_all(struct cm_mqtt_broker *b, struct bclient *cl, struct bnode *n, uint8_t qos,
                     uint32_t sub_id, uint64_t now) {
  send_one(b, cl, n, qos, sub_id, now);
  for (uint32_t i = 0; i < n->nkids; i++) walk_all(b, cl, n->kids[i], qos, sub_id, now);
}

static void walk(struct cm_mqtt_broker *b, struct bclient *cl, struct bnode *n, struct cm_str f,
                 size_t pos, bool done, uint8_t qos, uint32_t sub_id, uint64_t now) {
  if (done) {
    send_one(b, cl, n, qos, sub_id, now);
    return;
  }
  const char *start = f.buf + pos;
  const char *slash = memchr(start, '/', f.len - pos);
  size_t len = slash != NULL ? (size_t)(slash - start) : f.len - pos;
  size_t next = slash != NULL ? pos + len + 1 : f.len;
  bool ndone = slash == NULL;
  bool first = pos == 0;
  if (len == 1 && start[0] == '#') {
    /* "a/#" matches "a" too (n itself), and everything below. */
    if (!first) send_one(b, cl, n, qos, sub_id, now);
    for (uint32_t i = 0; i < n->nkids; i++) {
      struct bnode *k = n->kids[i];
      if (first && k->len > 0 && k->name[0] == '$') continue;
      walk_all(b, cl, k, qos, sub_id, now);
    }
    return;
  }
  if (len == 1 && start[0] == '+') {
    for (uint32_t i = 0; i < n->nkids; i++) {
      struct bnode *k = n->kids[i];
      if (first && k->len > 0 && k->name[0] == '$') continue;
      walk(b, cl, k, f, next, ndone, qos, sub_id, now);
    }
    return;
  }
  for (uint32_t i = 0; i < n->nkids; i++) {
    struct bnode *k = n->kids[i];
    if (k->len == len && memcmp(k->name, start, len) == 0) {
      walk(b, cl, k, f, next, ndone, qos, sub_id, now);
      return;
    }
  }
}

void cm__br_send_retained(struct cm_mqtt_broker *b, struct bclient *cl, struct cm_str filter,
                          uint8_t qos, uint32_t sub_id) {
  if (b->st.retained == 0 || cl->sess == NULL) return;
  walk(b, cl, b->root, filter, 0, false, qos, sub_id, cm_millis());
}
