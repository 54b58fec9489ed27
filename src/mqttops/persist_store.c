/* The persistence store: an append-only log of records (persist_codec.c)
 * plus a mirror of the live state in memory, from which compaction writes a
 * snapshot.  See include/cymongoose/mqtt_ops.h for the fsync policy. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cymongoose.h"
#include "opsutil.h"

/* ----------------------------------------------------------- string map */
struct kv {
  char *key;
  size_t klen;
  void *val;
  struct kv *next;
};

struct map {
  struct kv **b;
  size_t nb, n;
};

static size_t hash(struct cm_str k) {
  size_t h = 1469598103934665603ull;
  for (size_t i = 0; i < k.len; i++) h = (h ^ (uint8_t)k.buf[i]) * 1099511628211ull;
  return h;
}

static struct kv **map_slot(struct map *m, struct cm_str k) {
  if (m->nb == 0) return NULL;
  struct kv **s = &m->b[hash(k) % m->nb];
  while (*s != NULL && !((*s)->klen == k.len && memcmp((*s)->key, k.buf, k.len) == 0))
    s = &(*s)->next;
  return s;
}

static void *map_get(struct map *m, struct cm_str k) {
  struct kv **s = map_slot(m, k);
  return s != NULL && *s != NULL ? (*s)->val : NULL;
}

static bool map_grow(struct map *m) {
  size_t nb = m->nb == 0 ? 64 : m->nb * 2;
  struct kv **b = calloc(nb, sizeof(*b));
  if (b == NULL) return false;
  for (size_t i = 0; i < m->nb; i++) {
    for (struct kv *e = m->b[i], *nx; e != NULL; e = nx) {
      nx = e->next;
      size_t h = hash(cm_str_n(e->key, e->klen)) % nb;
      e->next = b[h];
      b[h] = e;
    }
  }
  free(m->b);
  m->b = b;
  m->nb = nb;
  return true;
}

/* Sets k to val; returns the previous value through *old (NULL if none). */
static bool map_put(struct map *m, struct cm_str k, void *val, void **old) {
  *old = NULL;
  if ((m->n + 1 > m->nb) && !map_grow(m)) return false;
  struct kv **s = map_slot(m, k);
  if (*s != NULL) {
    *old = (*s)->val;
    (*s)->val = val;
    return true;
  }
  struct kv *e = calloc(1, sizeof(*e));
  if (e == NULL || (e->key = cm_ops_dup(k)) == NULL) return free(e), false;
  e->klen = k.len;
  e->val = val;
  *s = e;
  m->n++;
  return true;
}

/* Removes k; returns its value (NULL if none). */
static void *map_del(struct map *m, struct cm_str k) {
  struct kv **s = map_slot(m, k);
  if (s == NULL || *s == NULL) return NULL;
  struct kv *e = *s;
  void *v = e->val;
  *s = e->next;
  free(e->key);
  free(e);
  m->n--;
  return v;
}

#define MAP_EACH(m, e)                    \
  for (size_t i_##e = 0; i_##e < (m)->nb; i_##e++) \
    for (struct kv *e = (m)->b[i_##e]; e != NULL; e = e->next)

static void map_free(struct map *m, void (*fr)(void *)) {
  for (size_t i = 0; i < m->nb; i++) {
    for (struct kv *e = m->b[i], *nx; e != NULL; e = nx) {
      nx = e->next;
      if (fr != NULL) fr(e->val);
      free(e->key);
      free(e);
    }
  }
  free(m->b);
  memset(m, 0, sizeof(*m));
}

/* ----------------------------------------------------------- live state */
/* A record kept as its encoding (what compaction writes back). */
struct blob {
  size_t len;
  uint8_t data[];
};

static struct blob *blob_of(const struct cm_persist_rec *r) {
  struct cm_buf b = {0};
  if (cm_persist_encode(&b, r) != 0) return cm_buf_free(&b), NULL;
  struct blob *o = malloc(sizeof(*o) + b.len);
  if (o != NULL) {
    o->len = b.len;
    memcpy(o->data, cm_buf_data(&b), b.len);
  }
  cm_buf_free(&b);
  return o;
}

struct held {
  uint16_t id;
  uint8_t state;
  struct blob *rec; /* its MSG_HELD record (state as first held) */
};

struct session {
  uint32_t expiry_s;
  struct map subs; /* filter -> blob (SUB_ADD) */
  struct held *held;
  size_t nheld, capheld;
  uint16_t *incoming;
  size_t nincoming, capincoming;
};

static void session_free(void *p) {
  struct session *s = p;
  if (s == NULL) return;
  map_free(&s->subs, free);
  for (size_t i = 0; i < s->nheld; i++) free(s->held[i].rec);
  free(s->held);
  free(s->incoming);
  free(s);
}

struct cm_persist {
  char *path;
  int fd;
  int policy;
  uint32_t interval_ms;
  uint64_t last_sync_ms;
  bool dirty;          /* written since the last fsync */
  bool loading;        /* replaying: hooks do not write */
  struct cm_buf pending;
  struct map retained; /* topic -> blob (RETAIN) */
  struct map sessions; /* client id -> struct session */
  uint64_t since_compact;
};

size_t cm_persist_count_retained(const struct cm_persist *p) {
  return p->retained.n;
}

size_t cm_persist_count_sessions(const struct cm_persist *p) {
  return p->sessions.n;
}

size_t cm_persist_count_held(const struct cm_persist *p, struct cm_str client) {
  struct session *s = map_get((struct map *)&p->sessions, client);
  return s == NULL ? 0 : s->nheld;
}

uint64_t cm_persist_records_since_compact(const struct cm_persist *p) {
  return p->since_compact;
}

static struct session *session_get(struct cm_persist *p, struct cm_str cid, bool create) {
  struct session *s = map_get(&p->sessions, cid);
  if (s != NULL || !create) return s;
  void *old;
  s = calloc(1, sizeof(*s));
  if (s == NULL || !map_put(&p->sessions, cid, s, &old)) return free(s), NULL;
  s->expiry_s = 0xFFFFFFFFu;
  return s;
}

static ssize_t held_find(struct session *s, uint16_t id) {
  for (size_t i = 0; i < s->nheld; i++)
    if (s->held[i].id == id) return (ssize_t)i;
  return -1;
}

static bool persist_apply(struct cm_persist *p, const struct cm_persist_rec *r) {
  void *old = NULL;
  struct session *s;
  struct blob *b;
  switch (r->type) {
    case CM_REC_RETAIN:
      if ((b = blob_of(r)) == NULL || !map_put(&p->retained, r->topic, b, &old))
        return free(b), false;
      free(old);
      return true;
    case CM_REC_RETAIN_CLEAR:
      free(map_del(&p->retained, r->topic));
      return true;
    case CM_REC_SESSION:
      if ((s = session_get(p, r->client, true)) == NULL) return false;
      s->expiry_s = r->num;
      return true;
    case CM_REC_SESSION_DEL:
      session_free(map_del(&p->sessions, r->client));
      return true;
    case CM_REC_SUB_ADD:
      if ((s = session_get(p, r->client, true)) == NULL) return false;
      if ((b = blob_of(r)) == NULL || !map_put(&s->subs, r->topic, b, &old))
        return free(b), false;
      free(old);
      return true;
    case CM_REC_SUB_DEL:
      if ((s = session_get(p, r->client, false)) != NULL) free(map_del(&s->subs, r->topic));
      return true;
    case CM_REC_MSG_HELD: {
      if ((s = session_get(p, r->client, true)) == NULL) return false;
      ssize_t i = held_find(s, r->id);
      if ((b = blob_of(r)) == NULL) return false;
      if (i >= 0) { /* the id was reused: the old one is gone */
        free(s->held[i].rec);
        memmove(&s->held[i], &s->held[i + 1], (s->nheld - (size_t)i - 1) * sizeof(*s->held));
        s->nheld--;
      }
      if (s->nheld == s->capheld) {
        size_t nc = s->capheld == 0 ? 8 : s->capheld * 2;
        struct held *nh = realloc(s->held, nc * sizeof(*nh));
        if (nh == NULL) return free(b), false;
        s->held = nh;
        s->capheld = nc;
      }
      s->held[s->nheld++] = (struct held){r->id, r->small, b};
      return true;
    }
    case CM_REC_MSG_STATE:
    case CM_REC_MSG_DONE: {
      if ((s = session_get(p, r->client, false)) == NULL) return true;
      ssize_t i = held_find(s, r->id);
      if (i < 0) return true;
      if (r->type == CM_REC_MSG_STATE) {
        s->held[i].state = r->small;
        return true;
      }
      free(s->held[i].rec);
      memmove(&s->held[i], &s->held[i + 1], (s->nheld - (size_t)i - 1) * sizeof(*s->held));
      s->nheld--;
      return true;
    }
    case CM_REC_INCOMING: {
      if ((s = session_get(p, r->client, r->small != 0)) == NULL) return r->small == 0;
      size_t i = 0;
      while (i < s->nincoming && s->incoming[i] != r->id) i++;
      if (r->small == 0) {
        if (i < s->nincoming) s->incoming[i] = s->incoming[--s->nincoming];
        return true;
      }
      if (i < s->nincoming) return true;
      if (s->nincoming == s->capincoming) {
        size_t nc = s->capincoming == 0 ? 8 : s->capincoming * 2;
        uint16_t *ni = realloc(s->incoming, nc * sizeof(*ni));
        if (ni == NULL) return false;
        s->incoming = ni;
        s->capincoming = nc;
      }
      s->incoming[s->nincoming++] = r->id;
      return true;
    }
    default:
      return false;
  }
}

/* ------------------------------------------------------------------ I/O */
static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static bool write_all(int fd, const uint8_t *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w, n -= (size_t)w;
  }
  return true;
}

static bool persist_flush(struct cm_persist *p, bool sync) {
  if (p->pending.len > 0) {
    if (!write_all(p->fd, cm_buf_data(&p->pending), p->pending.len)) {
      CM_ERROR("%s: write: %s", p->path, strerror(errno));
      return false;
    }
    cm_buf_consume(&p->pending, p->pending.len);
    p->dirty = true;
  }
  if (sync && p->dirty && p->policy != CM_FSYNC_NEVER) {
    if (fdatasync(p->fd) != 0) {
      CM_ERROR("%s: fdatasync: %s", p->path, strerror(errno));
      return false;
    }
    p->dirty = false;
    p->last_sync_ms = now_ms();
  }
  return true;
}

void cm_persist_tick(struct cm_persist *p, uint64_t now) {
  /* Under CM_FSYNC_ALWAYS the broker commits after every event that
   * recorded something; this catches any record written outside one. */
  if ((p->policy == CM_FSYNC_ALWAYS || (p->policy == CM_FSYNC_INTERVAL &&
                                        now - p->last_sync_ms >= p->interval_ms)) &&
      (p->dirty || p->pending.len > 0))
    cm_persist_flush(p, true);
}

/* Records r: into the mirror, then written to the log.  Under
 * CM_FSYNC_ALWAYS the broker's commit hook (h_commit) makes it durable
 * before any acknowledgement depends on it: one fdatasync per acknowledged
 * packet, however many records it caused.  False when it is not written
 * (the broker then does not acknowledge). */
static bool record(struct cm_persist *p, const struct cm_persist_rec *r) {
  if (p->loading) return true;
  if (!persist_apply(p, r) || cm_persist_encode(&p->pending, r) != 0) {
    CM_ERROR("%s: out of memory: a state change is not persisted", p->path);
    return false;
  }
  p->since_compact++;
  return cm_persist_flush(p, false) == 0;
}

static bool write_blob(int fd, const struct blob *b) {
  return write_all(fd, b->data, b->len);
}

static bool write_rec(int fd, const struct cm_persist_rec *r) {
  struct cm_buf b = {0};
  bool ok = cm_persist_encode(&b, r) == 0 && write_all(fd, cm_buf_data(&b), b.len);
  cm_buf_free(&b);
  return ok;
}

static bool fsync_dir(const char *path) {
  char *copy = strdup(path);
  if (copy == NULL) return false;
  int dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  free(copy);
  if (dfd < 0) return false;
  bool ok = fsync(dfd) == 0;
  close(dfd);
  return ok;
}

static bool persist_compact(struct cm_persist *p) {
  if (cm_persist_flush(p, false) != 0) return false;
  size_t n = strlen(p->path);
  char *tmp = malloc(n + 5);
  if (tmp == NULL) return false;
  memcpy(tmp, p->path, n);
  memcpy(tmp + n, ".tmp", 5);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  bool ok = fd >= 0 && write_all(fd, (const uint8_t *)CM_PERSIST_MAGIC, CM_PERSIST_MAGIC_LEN);
  MAP_EACH(&p->retained, e) ok = ok && write_blob(fd, e->val);
  MAP_EACH(&p->sessions, e) {
    struct session *s = e->val;
    struct cm_str cid = cm_str_n(e->key, e->klen);
    struct cm_persist_rec r = {.type = CM_REC_SESSION, .client = cid, .num = s->expiry_s};
    ok = ok && write_rec(fd, &r);
    MAP_EACH(&s->subs, se) ok = ok && write_blob(fd, se->val);
    for (size_t i = 0; ok && i < s->nheld; i++) {
      ok = write_blob(fd, s->held[i].rec);
      struct cm_persist_rec st = {.type = CM_REC_MSG_STATE, .client = cid, .id = s->held[i].id,
                                  .small = s->held[i].state};
      ok = ok && write_rec(fd, &st);
    }
    for (size_t i = 0; ok && i < s->nincoming; i++) {
      struct cm_persist_rec in = {.type = CM_REC_INCOMING, .client = cid, .id = s->incoming[i],
                                  .small = 1};
      ok = write_rec(fd, &in);
    }
  }
  ok = ok && fsync(fd) == 0;
  if (fd >= 0) close(fd);
  ok = ok && rename(tmp, p->path) == 0 && fsync_dir(p->path);
  if (!ok) {
    CM_ERROR("%s: compaction failed: %s", p->path, strerror(errno));
    unlink(tmp);
    free(tmp);
    return false;
  }
  free(tmp);
  int nfd = open(p->path, O_WRONLY | O_APPEND | O_CLOEXEC);
  if (nfd < 0) {
    CM_ERROR("%s: reopen: %s", p->path, strerror(errno));
    return false;
  }
  close(p->fd);
  p->fd = nfd;
  p->dirty = false;
  p->since_compact = 0;
  return true;
}

/* Reads and applies the log; a torn or corrupt tail is dropped (and the
 * original file kept as PATH.bad when the damage is not just a torn end). */
static bool load(struct cm_persist *p, char *err, size_t err_len) {
  size_t len;
  char rerr[CM_OPS_ERR_LEN];
  if (access(p->path, F_OK) != 0 && errno == ENOENT) return true; /* a first start */
  char *data = cm_ops_read_file(p->path, &len, rerr, sizeof(rerr));
  if (data == NULL) {
    cm_ops_err(err, err_len, "%s", rerr);
    return false;
  }
  const uint8_t *d = (const uint8_t *)data;
  bool ok = true;
  if (len > 0 && (len < CM_PERSIST_MAGIC_LEN || memcmp(d, CM_PERSIST_MAGIC, CM_PERSIST_MAGIC_LEN))) {
    cm_ops_err(err, err_len, "%s: not a cymongoose persistence file (bad header)", p->path);
    free(data);
    return false;
  }
  size_t pos = len > 0 ? CM_PERSIST_MAGIC_LEN : 0;
  while (pos < len) {
    struct cm_persist_rec r;
    const char *why = NULL;
    long n = cm_persist_decode(d + pos, len - pos, &r, &why);
    if (n == 0) {
      CM_ERROR("%s: incomplete last record at offset %zu dropped (%zu bytes)", p->path, pos,
               len - pos);
      break;
    }
    if (n < 0) {
      CM_ERROR("%s: %s at offset %zu: the rest (%zu bytes) is ignored; the file is kept as "
               "%s.bad", p->path, why, pos, len - pos, p->path);
      size_t pl = strlen(p->path);
      char *bad = malloc(pl + 5);
      if (bad != NULL) {
        memcpy(bad, p->path, pl);
        memcpy(bad + pl, ".bad", 5);
        int fd = open(bad, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0 || !write_all(fd, d, len) || fsync(fd) != 0) CM_ERROR("%s: cannot save", bad);
        if (fd >= 0) close(fd);
        free(bad);
      }
      break;
    }
    if (!persist_apply(p, &r)) {
      cm_ops_err(err, err_len, "%s: out of memory", p->path);
      ok = false;
      break;
    }
    pos += (size_t)n;
  }
  free(data);
  return ok;
}

struct cm_persist *cm_persist_open(const char *path, int fsync_policy, uint32_t interval_ms,
                                   char *err, size_t err_len) {
  struct cm_persist *p = calloc(1, sizeof(*p));
  if (p == NULL || (p->path = strdup(path)) == NULL) {
    cm_ops_err(err, err_len, "%s: out of memory", path);
    free(p);
    return NULL;
  }
  p->fd = -1;
  p->policy = fsync_policy;
  p->interval_ms = interval_ms == 0 ? 1000 : interval_ms;
  if (!load(p, err, err_len)) goto fail;
  /* Start from a clean snapshot: the log then never continues after a torn
   * record. */
  p->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (p->fd < 0 || cm_persist_compact(p) != 0) {
    cm_ops_err(err, err_len, "%s: %s", path, strerror(errno));
    goto fail;
  }
  p->last_sync_ms = now_ms();
  return p;
fail:
  cm_persist_close(p);
  return NULL;
}

void cm_persist_close(struct cm_persist *p) {
  if (p == NULL) return;
  if (p->fd >= 0) {
    if (cm_persist_flush(p, false) == 0 && p->policy != CM_FSYNC_NEVER) fdatasync(p->fd);
    close(p->fd);
  }
  cm_buf_free(&p->pending);
  map_free(&p->retained, free);
  map_free(&p->sessions, session_free);
  free(p->path);
  free(p);
}

/* ---------------------------------------------------------------- replay */
static void to_msg(const struct cm_persist_rec *r, struct cm_mqtt_broker_msg *m) {
  *m = (struct cm_mqtt_broker_msg){r->m_topic, r->m_payload, r->m_props, r->m_qos, r->m_retain,
                                   r->m_expiry_s};
}

static bool persist_replay(struct cm_persist *p, struct cm_mqtt_broker *b) {
  struct cm_persist_rec r;
  struct cm_mqtt_broker_msg m;
  bool ok = true;
  MAP_EACH(&p->retained, e) {
    const struct blob *bl = e->val;
    if (cm_persist_decode(bl->data, bl->len, &r, NULL) > 0) {
      to_msg(&r, &m);
      m.retain = true;
      ok = cm_mqtt_broker_restore_retained(b, &m) == 0 && ok;
    }
  }
  MAP_EACH(&p->sessions, e) {
    struct session *s = e->val;
    struct cm_str cid = cm_str_n(e->key, e->klen);
    if (cm_mqtt_broker_restore_session(b, cid, s->expiry_s) != 0) {
      ok = false;
      continue;
    }
    MAP_EACH(&s->subs, se) {
      const struct blob *bl = se->val;
      if (cm_persist_decode(bl->data, bl->len, &r, NULL) > 0)
        ok = cm_mqtt_broker_restore_sub(b, cid, r.topic, r.small, r.num) == 0 && ok;
    }
    for (size_t i = 0; i < s->nheld; i++) {
      if (cm_persist_decode(s->held[i].rec->data, s->held[i].rec->len, &r, NULL) <= 0) continue;
      to_msg(&r, &m);
      ok = cm_mqtt_broker_restore_msg(b, cid, s->held[i].id, s->held[i].state, &m) == 0 && ok;
    }
    for (size_t i = 0; i < s->nincoming; i++)
      ok = cm_mqtt_broker_restore_incoming(b, cid, s->incoming[i]) == 0 && ok;
  }
  return ok;
}

/* ----------------------------------------------------------------- hooks */
static bool h_retain(void *arg, struct cm_str topic, const struct cm_mqtt_broker_msg *m) {
  struct cm_persist_rec r = {.type = m != NULL ? CM_REC_RETAIN : CM_REC_RETAIN_CLEAR,
                             .topic = topic};
  if (m != NULL) {
    r.m_topic = m->topic, r.m_payload = m->payload, r.m_props = m->props;
    r.m_qos = m->qos, r.m_retain = true, r.m_expiry_s = m->expiry_s;
  }
  return record(arg, &r);
}

static void h_session_save(void *arg, struct cm_str cid, uint32_t expiry_s) {
  record(arg, &(struct cm_persist_rec){.type = CM_REC_SESSION, .client = cid, .num = expiry_s});
}

static void h_session_delete(void *arg, struct cm_str cid) {
  record(arg, &(struct cm_persist_rec){.type = CM_REC_SESSION_DEL, .client = cid});
}

static void h_sub_add(void *arg, struct cm_str cid, struct cm_str filter, uint8_t options,
                      uint32_t sub_id) {
  record(arg, &(struct cm_persist_rec){.type = CM_REC_SUB_ADD, .client = cid, .topic = filter,
                                       .small = options, .num = sub_id});
}

static void h_sub_del(void *arg, struct cm_str cid, struct cm_str filter) {
  record(arg, &(struct cm_persist_rec){.type = CM_REC_SUB_DEL, .client = cid, .topic = filter});
}

static bool h_msg_held(void *arg, struct cm_str cid, uint16_t id, int state,
                       const struct cm_mqtt_broker_msg *m) {
  struct cm_persist_rec r = {.type = CM_REC_MSG_HELD, .client = cid, .id = id,
                             .small = (uint8_t)state, .m_topic = m->topic,
                             .m_payload = m->payload, .m_props = m->props, .m_qos = m->qos,
                             .m_retain = m->retain, .m_expiry_s = m->expiry_s};
  return record(arg, &r);
}

static void h_msg_state(void *arg, struct cm_str cid, uint16_t id, int state) {
  record(arg, &(struct cm_persist_rec){.type = CM_REC_MSG_STATE, .client = cid, .id = id,
                                       .small = (uint8_t)state});
}

static void h_msg_done(void *arg, struct cm_str cid, uint16_t id) {
  record(arg, &(struct cm_persist_rec){.type = CM_REC_MSG_DONE, .client = cid, .id = id});
}

static bool h_incoming(void *arg, struct cm_str cid, uint16_t id, bool on) {
  return record(arg, &(struct cm_persist_rec){.type = CM_REC_INCOMING, .client = cid, .id = id,
                                       .small = on ? 1 : 0});
}

static bool h_commit(void *arg) {
  struct cm_persist *p = arg;
  return cm_persist_flush(p, p->policy == CM_FSYNC_ALWAYS) == 0;
}

static bool h_load(void *arg, struct cm_mqtt_broker *b) {
  struct cm_persist *p = arg;
  p->loading = true;
  bool ok = cm_persist_replay(p, b) == 0;
  p->loading = false;
  return ok;
}

void cm_persist_hooks(struct cm_persist *p, struct cm_mqtt_broker_store *st) {
  *st = (struct cm_mqtt_broker_store){.arg = p,
                                      .retain = h_retain,
                                      .session_save = h_session_save,
                                      .session_delete = h_session_delete,
                                      .sub_add = h_sub_add,
                                      .sub_del = h_sub_del,
                                      .msg_held = h_msg_held,
                                      .msg_state = h_msg_state,
                                      .msg_done = h_msg_done,
                                      .incoming = h_incoming,
                                      .commit = h_commit,
                                      .load = h_load};
}

int cm_persist_replay(struct cm_persist *p, struct cm_mqtt_broker *b) {
  return persist_replay(p, b) ? 0 : CM_EIO;
}

int cm_persist_flush(struct cm_persist *p, bool sync) {
  return persist_flush(p, sync) ? 0 : CM_EIO;
}

int cm_persist_compact(struct cm_persist *p) {
  return persist_compact(p) ? 0 : CM_EIO;
}
