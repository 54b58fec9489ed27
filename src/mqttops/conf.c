/* The broker's configuration file: a pure parser (docs/mqtt-broker.md). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cymongoose.h"
#include "opsutil.h"

void cm_conf_free(struct cm_conf *conf) {
  for (size_t i = 0; i < conf->nlisteners; i++) {
    struct cm_conf_listener *l = &conf->listeners[i];
    free(l->url), free(l->certfile), free(l->keyfile), free(l->cafile);
  }
  free(conf->listeners);
  for (size_t i = 0; i < conf->nbridges; i++) {
    struct cm_conf_bridge *b = &conf->bridges[i];
    free(b->name), free(b->url), free(b->remote_clientid), free(b->remote_username),
        free(b->remote_password);
    for (size_t j = 0; j < b->ntopics; j++)
      free(b->topics[j].pattern), free(b->topics[j].local_prefix),
          free(b->topics[j].remote_prefix);
    free(b->topics);
  }
  free(conf->bridges);
  free(conf->password_file), free(conf->acl_file), free(conf->persistence_file);
  memset(conf, 0, sizeof(*conf));
}

static void defaults(struct cm_conf *conf) {
  memset(conf, 0, sizeof(*conf));
  conf->fsync = CM_FSYNC_ALWAYS;
  conf->fsync_interval_ms = 1000;
  conf->compact_interval_s = 300;
  conf->log_level = -1;
  conf->topic_alias_max = conf->topic_alias_out_max = -1;
}

/* Grows *arr (of *n elements of size sz) by one zeroed element. */
static void *push(void *arr_ptr, size_t *n, size_t sz) {
  void **arr = arr_ptr;
  void *na = realloc(*arr, (*n + 1) * sz);
  if (na == NULL) return NULL;
  *arr = na;
  void *e = (char *)na + *n * sz;
  memset(e, 0, sz);
  (*n)++;
  return e;
}

static bool conf_add_listener(struct cm_conf *conf, const char *url) {
  char *u = cm_ops_dup(cm_str_c(url));
  if (u == NULL) return false;
  struct cm_conf_listener *l = push(&conf->listeners, &conf->nlisteners, sizeof(*l));
  if (l == NULL) {
    free(u);
    return false;
  }
  l->url = u;
  return true;
}

static bool parse_bool(struct cm_str w, bool *out) {
  if (cm_ops_eq(w, "true")) return *out = true, true;
  if (cm_ops_eq(w, "false")) return *out = false, true;
  return false;
}

static bool parse_u32(struct cm_str w, uint32_t max, uint32_t *out) {
  uint64_t v = 0;
  if (w.len == 0 || w.len > 10) return false;
  for (size_t i = 0; i < w.len; i++) {
    if (w.buf[i] < '0' || w.buf[i] > '9') return false;
    v = v * 10 + (uint64_t)(w.buf[i] - '0');
  }
  if (v > max) return false;
  *out = (uint32_t)v;
  return true;
}

/* A word, or "" written as two quotes for an empty prefix. */
static char *dup_word(struct cm_str w) {
  if (cm_ops_eq(w, "\"\"")) w.len = 0;
  return cm_ops_dup(w);
}

static bool known_scheme(struct cm_str u) {
  static const char *ok[] = {"mqtt://", "tcp://", "mqtts://", "ws://", "wss://"};
  for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
    if (u.len > strlen(ok[i]) && memcmp(u.buf, ok[i], strlen(ok[i])) == 0) return true;
  return false;
}

/* Replaces *slot with a copy of value. */
static bool set_str(char **slot, struct cm_str value) {
  char *p = cm_ops_dup(value);
  if (p == NULL) return false;
  free(*slot);
  *slot = p;
  return true;
}

#define FAIL(...)                                                  \
  do {                                                             \
    char msg_[CM_OPS_ERR_LEN];                                     \
    snprintf(msg_, sizeof(msg_), __VA_ARGS__);                     \
    cm_ops_err(err, err_len, "%s:%u: %s", name, lineno, msg_);     \
    return false;                                                  \
  } while (0)

static bool conf_parse(struct cm_conf *conf, struct cm_str text, const char *name, char *err,
                   size_t err_len) {
  defaults(conf);
  size_t pos = 0;
  unsigned lineno = 0;
  struct cm_str line;
  struct cm_conf_bridge *br = NULL;
  while (cm_ops_next_line(text, &pos, &line)) {
    lineno++;
    struct cm_str rest = cm_ops_trim(line), kw;
    if (rest.len == 0 || rest.buf[0] == '#') continue;
    cm_ops_word(&rest, &kw);
    rest = cm_ops_trim(rest);
    struct cm_str value = rest; /* the whole rest (paths may hold spaces) */
    /* Listener and its TLS options. */
    if (cm_ops_eq(kw, "listener")) {
      if (value.len == 0 || !known_scheme(value))
        FAIL("listener needs a URL: mqtt://IP:PORT, mqtts://, ws://IP:PORT/PATH or wss://");
      char *u = cm_ops_dup(value);
      if (u == NULL || cm_conf_add_listener(conf, u) != 0) {
        free(u);
        FAIL("out of memory");
      }
      free(u);
      br = NULL;
      continue;
    }
    if (cm_ops_eq(kw, "certfile") || cm_ops_eq(kw, "keyfile") || cm_ops_eq(kw, "cafile") ||
        cm_ops_eq(kw, "require_certificate") || cm_ops_eq(kw, "use_identity_as_username")) {
      if (conf->nlisteners == 0)
        FAIL("%.*s must follow the listener line it applies to", (int)kw.len, kw.buf);
      struct cm_conf_listener *l = &conf->listeners[conf->nlisteners - 1];
      if (value.len == 0) FAIL("%.*s needs a value", (int)kw.len, kw.buf);
      bool ok = true;
      if (cm_ops_eq(kw, "certfile")) ok = set_str(&l->certfile, value);
      else if (cm_ops_eq(kw, "keyfile")) ok = set_str(&l->keyfile, value);
      else if (cm_ops_eq(kw, "cafile")) ok = set_str(&l->cafile, value);
      else if (cm_ops_eq(kw, "require_certificate")) {
        if (!parse_bool(value, &l->require_certificate)) FAIL("expected true or false");
      } else if (!parse_bool(value, &l->use_identity_as_username)) {
        FAIL("expected true or false");
      }
      if (!ok) FAIL("out of memory");
      continue;
    }
    /* Bridges. */
    if (cm_ops_eq(kw, "bridge")) {
      struct cm_str bname, url;
      if (!cm_ops_word(&rest, &bname) || !cm_ops_word(&rest, &url) ||
          cm_ops_trim(rest).len != 0)
        FAIL("expected: bridge NAME mqtt://HOST:PORT");
      if (!(url.len > 7 && (memcmp(url.buf, "mqtt://", 7) == 0 || memcmp(url.buf, "tcp://", 6) == 0 ||
                            (url.len > 8 && memcmp(url.buf, "mqtts://", 8) == 0))))
        FAIL("bridge URL must be mqtt://HOST:PORT or mqtts://HOST:PORT");
      for (size_t i = 0; i < conf->nbridges; i++)
        if (cm_ops_eq(bname, conf->bridges[i].name))
          FAIL("duplicate bridge name \"%.*s\"", (int)bname.len, bname.buf);
      br = push(&conf->bridges, &conf->nbridges, sizeof(*br));
      if (br == NULL) FAIL("out of memory");
      br->name = cm_ops_dup(bname);
      br->url = cm_ops_dup(url);
      br->remote_clientid = cm_ops_dup(bname);
      br->keepalive = 60;
      br->version = 5;
      if (br->name == NULL || br->url == NULL || br->remote_clientid == NULL) FAIL("out of memory");
      continue;
    }
    if (cm_ops_eq(kw, "topic") || cm_ops_eq(kw, "remote_clientid") ||
        cm_ops_eq(kw, "remote_username") || cm_ops_eq(kw, "remote_password") ||
        cm_ops_eq(kw, "keepalive_interval") || cm_ops_eq(kw, "bridge_protocol_version") ||
        cm_ops_eq(kw, "cleansession")) {
      if (br == NULL) FAIL("%.*s must follow a bridge line", (int)kw.len, kw.buf);
      if (cm_ops_eq(kw, "topic")) {
        struct cm_str pat, dir, qos, lp = {"", 0}, rp = {"", 0};
        if (!cm_ops_word(&rest, &pat) || !cm_ops_word(&rest, &dir) || !cm_ops_word(&rest, &qos))
          FAIL("expected: topic PATTERN in|out|both QOS [LOCAL_PREFIX REMOTE_PREFIX]");
        int d = cm_ops_eq(dir, "in") ? 1 : cm_ops_eq(dir, "out") ? 2 : cm_ops_eq(dir, "both") ? 3 : 0;
        if (d == 0) FAIL("topic direction must be in, out or both, not \"%.*s\"", (int)dir.len, dir.buf);
        uint32_t q;
        if (!parse_u32(qos, 2, &q)) FAIL("topic QoS must be 0, 1 or 2");
        if (cm_ops_word(&rest, &lp) && !cm_ops_word(&rest, &rp))
          FAIL("a local prefix needs a remote prefix too (\"\" for none)");
        if (cm_ops_trim(rest).len != 0) FAIL("unexpected text after the remote prefix");
        if (!cm_mqtt_filter_valid(pat))
          FAIL("invalid topic filter \"%.*s\"", (int)pat.len, pat.buf);
        struct cm_conf_topic *t = push(&br->topics, &br->ntopics, sizeof(*t));
        if (t == NULL) FAIL("out of memory");
        t->direction = d;
        t->qos = (uint8_t)q;
        t->pattern = cm_ops_dup(pat);
        t->local_prefix = dup_word(lp);
        t->remote_prefix = dup_word(rp);
        if (t->pattern == NULL || t->local_prefix == NULL || t->remote_prefix == NULL)
          FAIL("out of memory");
        continue;
      }
      if (value.len == 0) FAIL("%.*s needs a value", (int)kw.len, kw.buf);
      bool ok = true;
      uint32_t n;
      if (cm_ops_eq(kw, "remote_clientid")) ok = set_str(&br->remote_clientid, value);
      else if (cm_ops_eq(kw, "remote_username")) ok = set_str(&br->remote_username, value);
      else if (cm_ops_eq(kw, "remote_password")) ok = set_str(&br->remote_password, value);
      else if (cm_ops_eq(kw, "keepalive_interval")) {
        if (!parse_u32(value, 65535, &n)) FAIL("keepalive_interval: 0 to 65535 seconds");
        br->keepalive = (uint16_t)n;
      } else if (cm_ops_eq(kw, "bridge_protocol_version")) {
        if (cm_ops_eq(value, "mqttv311")) br->version = 4;
        else if (cm_ops_eq(value, "mqttv50")) br->version = 5;
        else FAIL("bridge_protocol_version must be mqttv311 or mqttv50");
      } else if (!parse_bool(value, &br->clean_start)) {
        FAIL("expected true or false");
      }
      if (!ok) FAIL("out of memory");
      continue;
    }
    /* Global settings. */
    if (value.len == 0) FAIL("%.*s needs a value", (int)kw.len, kw.buf);
    uint32_t *num = cm_ops_eq(kw, "max_connections")       ? &conf->max_connections
                    : cm_ops_eq(kw, "max_packet_size")     ? &conf->max_packet_size
                    : cm_ops_eq(kw, "max_queued_messages") ? &conf->max_queued_messages
                    : cm_ops_eq(kw, "max_inflight")        ? &conf->max_inflight
                    : cm_ops_eq(kw, "compact_interval")    ? &conf->compact_interval_s
                                                           : NULL;
    if (num != NULL) {
      if (!parse_u32(value, cm_ops_eq(kw, "max_inflight") ? 65535 : 0xFFFFFFFFu, num))
        FAIL("%.*s: expected a number, not \"%.*s\"", (int)kw.len, kw.buf, (int)value.len,
             value.buf);
      continue;
    }
    int32_t *alias = cm_ops_eq(kw, "topic_alias_max")       ? &conf->topic_alias_max
                     : cm_ops_eq(kw, "topic_alias_out_max") ? &conf->topic_alias_out_max
                                                            : NULL;
    if (alias != NULL) {
      uint32_t v;
      if (!parse_u32(value, 65535, &v))
        FAIL("%.*s: expected a number from 0 to 65535, not \"%.*s\"", (int)kw.len, kw.buf,
             (int)value.len, value.buf);
      *alias = (int32_t)v;
      continue;
    }
    char **path = cm_ops_eq(kw, "password_file")      ? &conf->password_file
                  : cm_ops_eq(kw, "acl_file")         ? &conf->acl_file
                  : cm_ops_eq(kw, "persistence_file") ? &conf->persistence_file
                                                      : NULL;
    if (path != NULL) {
      if (!set_str(path, value)) FAIL("out of memory");
      continue;
    }
    if (cm_ops_eq(kw, "allow_anonymous")) {
      if (!parse_bool(value, &conf->allow_anonymous)) FAIL("expected true or false");
      continue;
    }
    if (cm_ops_eq(kw, "fsync")) {
      if (cm_ops_eq(value, "always")) conf->fsync = CM_FSYNC_ALWAYS;
      else if (cm_ops_eq(value, "never")) conf->fsync = CM_FSYNC_NEVER;
      else if (parse_u32(value, 3600000, &conf->fsync_interval_ms) && conf->fsync_interval_ms > 0)
        conf->fsync = CM_FSYNC_INTERVAL;
      else FAIL("fsync must be always, never or an interval in ms (1 to 3600000)");
      continue;
    }
    if (cm_ops_eq(kw, "log_level")) {
      if (cm_ops_eq(value, "error")) conf->log_level = CM_LL_ERROR;
      else if (cm_ops_eq(value, "info")) conf->log_level = CM_LL_INFO;
      else if (cm_ops_eq(value, "debug")) conf->log_level = CM_LL_DEBUG;
      else FAIL("log_level must be error, info or debug");
      continue;
    }
    FAIL("unknown setting \"%.*s\"", (int)kw.len, kw.buf);
  }
  return true;
}

static bool conf_load(struct cm_conf *conf, const char *path, char *err, size_t err_len) {
  size_t len;
  defaults(conf);
  char *text = cm_ops_read_file(path, &len, err, err_len);
  if (text == NULL) return false;
  bool ok = cm_conf_parse(conf, cm_str_n(text, len), path, err, err_len) == 0;
  free(text);
  return ok;
}

int cm_conf_parse(struct cm_conf *conf, struct cm_str text, const char *name, char *err,
                  size_t err_len) {
  return conf_parse(conf, text, name, err, err_len) ? 0 : CM_EINVAL;
}

int cm_conf_load(struct cm_conf *conf, const char *path, char *err, size_t err_len) {
  return conf_load(conf, path, err, err_len) ? 0 : CM_EINVAL;
}

void cm_conf_broker_opts(const struct cm_conf *conf, struct cm_mqtt_broker_opts *o) {
  if (conf->max_connections != 0) o->max_connections = conf->max_connections;
  if (conf->max_packet_size != 0) o->max_packet_size = conf->max_packet_size;
  if (conf->max_queued_messages != 0) o->max_queued = conf->max_queued_messages;
  if (conf->max_inflight != 0) o->max_inflight = conf->max_inflight;
  if (conf->topic_alias_max >= 0) {
    o->topic_alias_max = (uint16_t)conf->topic_alias_max;
    o->no_topic_alias = conf->topic_alias_max == 0;
  }
  if (conf->topic_alias_out_max >= 0) {
    o->topic_alias_out_max = (uint16_t)conf->topic_alias_out_max;
    o->no_topic_alias_out = conf->topic_alias_out_max == 0;
  }
}

int cm_conf_add_listener(struct cm_conf *conf, const char *url) {
  return conf_add_listener(conf, url) ? 0 : CM_ENOMEM;
}
