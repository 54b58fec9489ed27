/* The ACL file (mosquitto's format) and its checks. */
#include <stdlib.h>
#include <string.h>

#include "cymongoose.h"
#include "opsutil.h"

enum { R = 1, W = 2, DENY = 4 };

struct cm_acl_rule {
  char *filter;
  int access;     /* R|W, or DENY */
  bool pattern;   /* %c/%u substitution; applies to everyone */
  bool anonymous; /* topic lines before any user line */
  char *user;     /* topic lines after "user NAME" (NULL otherwise) */
};

struct cm_acl {
  struct cm_acl_rule *rules;
  size_t n;
  char **users; /* the names of "user" lines, owned; rules point at them */
  size_t nusers;
};

void cm_acl_free(struct cm_acl *a) {
  if (a == NULL) return;
  for (size_t i = 0; i < a->n; i++) free(a->rules[i].filter);
  for (size_t i = 0; i < a->nusers; i++) free(a->users[i]);
  free(a->users);
  free(a->rules);
  free(a);
}

static int parse_access(struct cm_str w) {
  if (cm_ops_eq(w, "read")) return R;
  if (cm_ops_eq(w, "write")) return W;
  if (cm_ops_eq(w, "readwrite")) return R | W;
  if (cm_ops_eq(w, "deny")) return DENY;
  return 0;
}

struct cm_acl *cm_acl_parse(struct cm_str text, const char *name, char *err, size_t err_len) {
  struct cm_acl *a = calloc(1, sizeof(*a));
  char *user = NULL; /* the current "user" section (owned by a->users) */
  size_t cap = 0, pos = 0;
  unsigned lineno = 0;
  struct cm_str line;
  if (a == NULL) goto oom;
  while (cm_ops_next_line(text, &pos, &line)) {
    lineno++;
    struct cm_str rest = cm_ops_trim(line), kw, w;
    if (rest.len == 0 || rest.buf[0] == '#') continue;
    cm_ops_word(&rest, &kw);
    if (cm_ops_eq(kw, "user")) {
      rest = cm_ops_trim(rest);
      if (rest.len == 0) {
        cm_ops_err(err, err_len, "%s:%u: \"user\" needs a name", name, lineno);
        goto fail;
      }
      char **nu = realloc(a->users, (a->nusers + 1) * sizeof(*nu));
      if (nu == NULL) goto oom;
      a->users = nu;
      user = cm_ops_dup(rest); /* the rest of the line: names may hold spaces */
      if (user == NULL) goto oom;
      a->users[a->nusers++] = user;
      continue;
    }
    bool pattern = cm_ops_eq(kw, "pattern");
    if (!pattern && !cm_ops_eq(kw, "topic")) {
      cm_ops_err(err, err_len, "%s:%u: unknown keyword \"%.*s\" (expected user, topic or pattern)",
                 name, lineno, (int)kw.len, kw.buf);
      goto fail;
    }
    struct cm_str save = rest;
    int access = R | W;
    if (cm_ops_word(&rest, &w) && parse_access(w) != 0 && cm_ops_trim(rest).len > 0) {
      access = parse_access(w);
    } else {
      rest = save;
    }
    struct cm_str filter = cm_ops_trim(rest);
    if (filter.len == 0) {
      cm_ops_err(err, err_len, "%s:%u: \"%.*s\" needs a topic filter", name, lineno,
                 (int)kw.len, kw.buf);
      goto fail;
    }
    if (!cm_mqtt_filter_valid(filter)) {
      cm_ops_err(err, err_len, "%s:%u: invalid topic filter \"%.*s\"", name, lineno,
                 (int)filter.len, filter.buf);
      goto fail;
    }
    if (a->n == cap) {
      size_t ncap = cap == 0 ? 16 : cap * 2;
      struct cm_acl_rule *nr = realloc(a->rules, ncap * sizeof(*nr));
      if (nr == NULL) goto oom;
      a->rules = nr;
      cap = ncap;
    }
    struct cm_acl_rule *r = &a->rules[a->n];
    memset(r, 0, sizeof(*r));
    r->filter = cm_ops_dup(filter);
    if (r->filter == NULL) goto oom;
    r->access = access;
    r->pattern = pattern;
    if (!pattern) {
      r->user = user;
      r->anonymous = user == NULL;
    }
    a->n++;
  }
  return a;
oom:
  cm_ops_err(err, err_len, "%s:%u: out of memory", name, lineno);
fail:
  cm_acl_free(a);
  return NULL;
}

struct cm_acl *cm_acl_load(const char *path, char *err, size_t err_len) {
  size_t len;
  char *text = cm_ops_read_file(path, &len, err, err_len);
  if (text == NULL) return NULL;
  struct cm_acl *a = cm_acl_parse(cm_str_n(text, len), path, err, err_len);
  free(text);
  return a;
}

/* One level of a filter from *pos; false past the end. */
static bool next_level(struct cm_str f, size_t *pos, struct cm_str *lvl) {
  if (*pos > f.len) return false;
  const char *s = f.buf + *pos;
  const char *slash = memchr(s, '/', f.len - *pos);
  size_t n = slash != NULL ? (size_t)(slash - s) : f.len - *pos;
  *lvl = cm_str_n(s, n);
  *pos += n + 1;
  return true;
}

bool cm_acl_filter_covers(struct cm_str rule, struct cm_str sub) {
  size_t rp = 0, sp = 0;
  struct cm_str rl, sl;
  /* A filter starting with '$' is only covered by a rule naming that first
   * level (as wildcards never match $ topics). */
  if (sub.len > 0 && sub.buf[0] == '$' && (rule.len == 0 || rule.buf[0] != '$')) return false;
  for (;;) {
    bool rh = next_level(rule, &rp, &rl), sh = next_level(sub, &sp, &sl);
    if (!rh) return !sh;
    if (cm_ops_eq(rl, "#")) return true;
    if (!sh) {
      /* "a/#" also matches "a": sub "a" is covered by rule "a/#". */
      return false;
    }
    if (cm_ops_eq(rl, "+")) {
      if (cm_ops_eq(sl, "#")) return false;
      continue;
    }
    if (cm_ops_eq(sl, "+") || cm_ops_eq(sl, "#")) return false;
    if (rl.len != sl.len || memcmp(rl.buf, sl.buf, rl.len) != 0) return false;
  }
}

/* Whether a value may be substituted into a pattern. */
static bool safe_value(struct cm_str v) {
  if (v.len == 0) return false;
  for (size_t i = 0; i < v.len; i++)
    if (v.buf[i] == '+' || v.buf[i] == '#' || v.buf[i] == '/') return false;
  return true;
}

/* Expands %c and %u of pattern into out; false when it cannot apply. */
static bool expand(const char *pattern, struct cm_str user, struct cm_str cid, struct cm_buf *out) {
  for (const char *p = pattern; *p != '\0'; p++) {
    if (p[0] == '%' && (p[1] == 'c' || p[1] == 'u')) {
      struct cm_str v = p[1] == 'c' ? cid : user;
      if (!safe_value(v) || cm_buf_append(out, v.buf, v.len) != 0) return false;
      p++;
    } else if (cm_buf_append(out, p, 1) != 0) {
      return false;
    }
  }
  return true;
}

static bool rule_matches(struct cm_str filter, struct cm_str topic, int access) {
  if (access == CM_MQTT_ACL_SUBSCRIBE) return cm_acl_filter_covers(filter, topic);
  return cm_mqtt_match(topic, filter);
}

bool cm_acl_check(const struct cm_acl *a, struct cm_str user, struct cm_str client_id,
                  struct cm_str topic, int access) {
  if (a == NULL) return true;
  int need = access == CM_MQTT_ACL_WRITE ? W : R;
  bool granted = false;
  for (size_t i = 0; i < a->n; i++) {
    const struct cm_acl_rule *r = &a->rules[i];
    struct cm_str filter;
    struct cm_buf tmp = {0};
    if (r->pattern) {
      if (!expand(r->filter, user, client_id, &tmp)) {
        cm_buf_free(&tmp);
        continue;
      }
      filter = cm_str_n((const char *)cm_buf_data(&tmp), tmp.len);
    } else {
      if (r->anonymous ? user.len != 0
                       : (strlen(r->user) != user.len || memcmp(r->user, user.buf, user.len) != 0))
        continue;
      filter = cm_str_c(r->filter);
    }
    bool hit;
    if (r->access == DENY) {
      /* A deny rule refuses every topic it matches, and a subscription
       * it covers whole; a subscription overlapping it in part is allowed,
       * and the READ check on delivery then drops the denied topics. */
      hit = rule_matches(filter, topic, access);
      cm_buf_free(&tmp);
      if (hit) return false;
      continue;
    }
    if (!granted && (r->access & need) != 0 && rule_matches(filter, topic, access))
      granted = true;
    cm_buf_free(&tmp);
  }
  return granted;
}
