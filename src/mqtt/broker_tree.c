/*
 * The broker's topic tree: one node per topic level, literal children in a
 * small array, '+' and '#' children on their own pointers.  Subscriptions
 * hang on the node of their filter's last level, retained messages on the
 * node of their topic, so matching a published topic walks the tree once
 * (cost by levels and wildcard branches, not by subscriptions) and a
 * subscribe walks it once to find retained messages.
 */
#include <stdlib.h>
#include <string.h>

#include "mqtt/broker.h"

/* The next level of s from *pos; false after the last. */
static bool next_level(struct cm_str s, size_t *pos, struct cm_str *lvl, bool *done) {
  if (*done) return false;
  const char *start = s.buf + *pos;
  size_t rest = s.len - *pos;
  const char *slash = memchr(start, '/', rest);
  if (slash == NULL) {
    *lvl = cm_str_n(start, rest);
    *pos = s.len;
    *done = true;
  } else {
    *lvl = cm_str_n(start, (size_t)(slash - start));
    *pos += lvl->len + 1;
  }
  return true;
}

static bool is(struct cm_str l, char ch) { return l.len == 1 && l.buf[0] == ch; }

static struct bnode *new_node(struct bnode *parent, struct cm_str name) {
  if (name.len > 65535) return NULL;
  struct bnode *n = calloc(1, sizeof(*n) + name.len);
  if (n == NULL) return NULL;
  n->parent = parent;
  n->len = (uint16_t)name.len;
  if (name.len > 0) memcpy(n->name, name.buf, name.len);
  return n;
}

static struct bnode *find_kid(const struct bnode *n, struct cm_str name) {
  for (uint32_t i = 0; i < n->nkids; i++) {
    struct bnode *k = n->kids[i];
    if (k->len == name.len && memcmp(k->name, name.buf, name.len) == 0) return k;
  }
  return NULL;
}

static struct bnode *add_kid(struct bnode *n, struct cm_str name) {
  if (n->nkids == n->capkids) {
    uint32_t cap = n->capkids == 0 ? 2 : n->capkids * 2;
    struct bnode **k = realloc(n->kids, cap * sizeof(*k));
    if (k == NULL) return NULL;
    n->kids = k;
    n->capkids = cap;
  }
  struct bnode *k = new_node(n, name);
  if (k != NULL) n->kids[n->nkids++] = k;
  return k;
}

struct bnode *cm__bt_node(struct cm_mqtt_broker *b, struct cm_str filter, bool create) {
  struct bnode *n = b->root;
  size_t pos = 0;
  bool done = false;
  struct cm_str lvl;
  while (n != NULL && next_level(filter, &pos, &lvl, &done)) {
    struct bnode **slot = is(lvl, '+') ? &n->plus : is(lvl, '#') ? &n->hash : NULL;
    if (slot != NULL) {
      if (*slot == NULL && create) *slot = new_node(n, lvl);
      n = *slot;
    } else {
      struct bnode *k = find_kid(n, lvl);
      n = k != NULL || !create ? k : add_kid(n, lvl);
    }
  }
  return n;
}

static bool node_empty(const struct bnode *n) {
  return n->subs == NULL && n->shares == NULL && n->ret == NULL && n->nkids == 0 &&
         n->plus == NULL && n->hash == NULL;
}

void cm__bt_prune(struct cm_mqtt_broker *b, struct bnode *n) {
  while (n != NULL && n != b->root && node_empty(n)) {
    struct bnode *p = n->parent;
    if (p->plus == n) {
      p->plus = NULL;
    } else if (p->hash == n) {
      p->hash = NULL;
    } else {
      for (uint32_t i = 0; i < p->nkids; i++) {
        if (p->kids[i] != n) continue;
        p->kids[i] = p->kids[--p->nkids];
        break;
      }
      if (p->nkids == 0) {
        free(p->kids);
        p->kids = NULL;
        p->capkids = 0;
      }
    }
    free(n->kids);
    free(n);
    n = p;
  }
}

void cm__bt_free(struct bnode *n) {
  if (n == NULL) return;
  for (uint32_t i = 0; i < n->nkids; i++) cm__bt_free(n->kids[i]);
  cm__bt_free(n->plus);
  cm__bt_free(n->hash);
  for (struct bshare *g = n->shares, *next; g != NULL; g = next) {
    next = g->next;
    free(g);
  }
  free(n->ret);
  free(n->kids);
  free(n);
}

bool cm__bt_shared(struct cm_str f, struct cm_str *group, struct cm_str *filter, bool *ok) {
  static const char pfx[] = "$share/";
  *ok = true;
  if (f.len < sizeof(pfx) - 1 || memcmp(f.buf, pfx, sizeof(pfx) - 1) != 0) return false;
  const char *g = f.buf + sizeof(pfx) - 1;
  size_t rest = f.len - (sizeof(pfx) - 1);
  const char *slash = memchr(g, '/', rest);
  if (slash == NULL || slash == g || (size_t)(slash - g) + 1 >= rest) {
    *ok = false;
    return true;
  }
  *group = cm_str_n(g, (size_t)(slash - g));
  *filter = cm_str_n(slash + 1, rest - group->len - 1);
  if (memchr(group->buf, '+', group->len) != NULL || memchr(group->buf, '#', group->len) != NULL ||
      !cm_mqtt_filter_valid(*filter))
    *ok = false;
  return true;
}

static void list_add(struct bsub **head, struct bsub *s) {
  s->prev_node = NULL;
  s->next_node = *head;
  if (*head != NULL) (*head)->prev_node = s;
  *head = s;
}

static void list_del(struct bsub **head, struct bsub *s) {
  if (s->prev_node != NULL) s->prev_node->next_node = s->next_node;
  else *head = s->next_node;
  if (s->next_node != NULL) s->next_node->prev_node = s->prev_node;
}

static struct bsub *find_sub(struct bsess *s, struct cm_str filter, struct bsub ***link) {
  struct bsub **pp = &s->subs;
  for (struct bsub *x = s->subs; x != NULL; pp = &x->next_sess, x = x->next_sess) {
    if (x->filter_len == filter.len && memcmp(x->filter, filter.buf, filter.len) == 0) {
      if (link != NULL) *link = pp;
      return x;
    }
  }
  return NULL;
}

struct bsub *cm__bt_subscribe(struct cm_mqtt_broker *b, struct bsess *s, struct cm_str filter,
                              uint8_t opts, uint32_t sub_id, bool *is_new) {
  struct bsub *x = find_sub(s, filter, NULL);
  *is_new = x == NULL;
  if (x != NULL) {
    x->opts = opts;
    x->sub_id = sub_id;
    return x;
  }
  if (filter.len > 65535) return NULL;
  struct cm_str group = {0}, real = filter;
  bool ok;
  bool shared = cm__bt_shared(filter, &group, &real, &ok);
  if (!ok) return NULL;
  struct bnode *n = cm__bt_node(b, real, true);
  if (n == NULL) return NULL;
  struct bshare *g = NULL;
  if (shared) {
    for (g = n->shares; g != NULL; g = g->next)
      if (g->name_len == group.len && memcmp(g->name, group.buf, group.len) == 0) break;
    if (g == NULL) {
      g = calloc(1, sizeof(*g) + group.len);
      if (g == NULL) {
        cm__bt_prune(b, n);
        return NULL;
      }
      g->name_len = (uint16_t)group.len;
      memcpy(g->name, group.buf, group.len);
      g->next = n->shares;
      n->shares = g;
    }
  }
  x = calloc(1, sizeof(*x) + filter.len);
  if (x == NULL) {
    if (g != NULL && g->members == NULL) {
      n->shares = g->next;
      free(g);
    }
    cm__bt_prune(b, n);
    return NULL;
  }
  x->sess = s;
  x->node = n;
  x->share = g;
  x->opts = opts;
  x->sub_id = sub_id;
  x->filter_len = (uint16_t)filter.len;
  memcpy(x->filter, filter.buf, filter.len);
  list_add(g != NULL ? &g->members : &n->subs, x);
  x->next_sess = s->subs;
  s->subs = x;
  s->nsubs++;
  b->st.subscriptions++;
  return x;
}

static void unlink_sub(struct cm_mqtt_broker *b, struct bsub *x) {
  struct bnode *n = x->node;
  struct bshare *g = x->share;
  if (g != NULL) {
    if (g->rr == x) g->rr = x->next_node;
    list_del(&g->members, x);
    if (g->members == NULL) {
      for (struct bshare **pp = &n->shares; *pp != NULL; pp = &(*pp)->next) {
        if (*pp != g) continue;
        *pp = g->next;
        break;
      }
      free(g);
    }
  } else {
    list_del(&n->subs, x);
  }
  x->sess->nsubs--;
  b->st.subscriptions--;
  free(x);
  cm__bt_prune(b, n);
}

bool cm__bt_unsubscribe(struct cm_mqtt_broker *b, struct bsess *s, struct cm_str filter) {
  struct bsub **link;
  struct bsub *x = find_sub(s, filter, &link);
  if (x == NULL) return false;
  *link = x->next_sess;
  unlink_sub(b, x);
  return true;
}

void cm__bt_unsubscribe_all(struct cm_mqtt_broker *b, struct bsess *s) {
  while (s->subs != NULL) {
    struct bsub *x = s->subs;
    s->subs = x->next_sess;
    unlink_sub(b, x);
  }
}

/* ------------------------------------------------------------- matching */

static void add_rcpt(struct cm_mqtt_broker *b, struct bsess *s, const struct bsub *x) {
  uint8_t qos = x->opts & CM_MQTT_SUB_QOS_MASK;
  bool rap = (x->opts & CM_MQTT_SUB_RETAIN_AS_PUBLISHED) != 0;
  struct brcpt *r;
  if (s->mark == b->gen) {
    r = &b->rv[s->slot];
    if (qos > r->qos) r->qos = qos;
    r->rap = r->rap || rap;
  } else {
    if (b->rv_len == b->rv_cap) {
      size_t cap = b->rv_cap == 0 ? 64 : b->rv_cap * 2;
      struct brcpt *v = realloc(b->rv, cap * sizeof(*v));
      if (v == NULL) return; /* out of memory: this recipient misses it */
      b->rv = v;
      b->rv_cap = cap;
    }
    s->mark = b->gen;
    s->slot = (uint32_t)b->rv_len;
    r = &b->rv[b->rv_len++];
    r->sess = s;
    r->qos = qos;
    r->rap = rap;
    r->nids = 0;
  }
  if (x->sub_id != 0 && r->nids < sizeof(r->ids) / sizeof(r->ids[0])) r->ids[r->nids++] = x->sub_id;
}

static void collect(struct cm_mqtt_broker *b, const struct bnode *n, const struct bsess *from) {
  for (const struct bsub *x = n->subs; x != NULL; x = x->next_node) {
    if (x->sess == from && (x->opts & CM_MQTT_SUB_NO_LOCAL)) continue;
    add_rcpt(b, x->sess, x);
  }
  for (struct bshare *g = n->shares; g != NULL; g = g->next) {
    /* Round-robin among the members online; the next in turn otherwise
     * (its persistent session queues it). */
    struct bsub *start = g->rr != NULL ? g->rr : g->members;
    struct bsub *pick = NULL, *x = start;
    do {
      if (x->sess->client != NULL) {
        pick = x;
        break;
      }
      x = x->next_node != NULL ? x->next_node : g->members;
    } while (x != start);
    if (pick == NULL) pick = start;
    g->rr = pick->next_node != NULL ? pick->next_node : g->members;
    add_rcpt(b, pick->sess, pick);
  }
}

/* topic[pos..] are the levels still to match below n; first: n is the root. */
static void match(struct cm_mqtt_broker *b, const struct bnode *n, struct cm_str topic, size_t pos,
                  bool done, const struct bsess *from) {
  if (done) {
    collect(b, n, from);
    if (n->hash != NULL) collect(b, n->hash, from); /* "a/#" matches "a" */
    return;
  }
  struct cm_str lvl;
  size_t next = pos;
  bool ndone = false;
  next_level(topic, &next, &lvl, &ndone);
  /* 4.7.2: wildcards at the first level do not match "$" topics. */
  bool dollar = pos == 0 && topic.len > 0 && topic.buf[0] == '$';
  if (n->hash != NULL && !dollar) collect(b, n->hash, from);
  if (n->plus != NULL && !dollar) match(b, n->plus, topic, next, ndone, from);
  struct bnode *k = find_kid(n, lvl);
  if (k != NULL) match(b, k, topic, next, ndone, from);
}

void cm__bt_match(struct cm_mqtt_broker *b, struct cm_str topic, const struct bsess *from) {
  b->gen++;
  if (b->gen == 0) { /* wrapped: no session may carry a stale mark */
    for (size_t i = 0; i < b->hcap; i++)
      for (struct bsess *s = b->htab[i]; s != NULL; s = s->hnext) s->mark = 0;
    b->gen = 1;
  }
  b->rv_len = 0;
  match(b, b->root, topic, 0, false, from);
}
