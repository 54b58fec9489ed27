/*
 * JSON-RPC 2.0 dispatch.  A frame is checked once with the JSON scanner;
 * afterwards requests are picked apart with cm_json_next, and responses are
 * written straight into the caller's buffer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cymongoose.h"

int cm_rpc_add(struct cm_rpc *rpc, const char *pattern, cm_rpc_fn fn, void *fn_data) {
  struct cm_rpc_method **pp = &rpc->methods;
  for (; *pp != NULL; pp = &(*pp)->next) {
    if (strcmp((*pp)->name, pattern) == 0) {
      (*pp)->fn = fn, (*pp)->fn_data = fn_data;
      return 0;
    }
  }
  struct cm_rpc_method *m = calloc(1, sizeof(*m));
  size_t len = strlen(pattern);
  if (m == NULL || (m->name = malloc(len + 1)) == NULL) {
    free(m);
    return CM_ENOMEM;
  }
  memcpy(m->name, pattern, len + 1);
  m->fn = fn, m->fn_data = fn_data;
  *pp = m; /* appended: the first pattern added keeps priority */
  return 0;
}

void cm_rpc_free(struct cm_rpc *rpc) {
  while (rpc->methods != NULL) {
    struct cm_rpc_method *m = rpc->methods;
    rpc->methods = m->next;
    free(m->name);
    free(m);
  }
}

static int depth_of(const struct cm_rpc *rpc) {
  return rpc->max_depth > 0 ? rpc->max_depth : CM_JSON_MAX_DEPTH;
}

static bool put(struct cm_buf *out, const char *s, size_t n) { return cm_buf_append(out, s, n) == 0; }
static bool puts_(struct cm_buf *out, const char *s) { return put(out, s, strlen(s)); }

/* Writes '{"jsonrpc":"2.0","id":' and the id (null when absent). */
static bool begin_response(struct cm_buf *out, struct cm_str id) {
  return puts_(out, "{\"jsonrpc\":\"2.0\",\"id\":") &&
         (id.buf == NULL ? puts_(out, "null") : put(out, id.buf, id.len));
}

static bool write_error(struct cm_buf *out, struct cm_str id, int code, const char *message) {
  char num[32];
  snprintf(num, sizeof(num), "%d", code);
  struct cm_str msg = cm_str_c(message);
  size_t need = (size_t)cm_json_escape(msg, NULL, 0);
  if (!begin_response(out, id) || !puts_(out, ",\"error\":{\"code\":") || !puts_(out, num) ||
      !puts_(out, ",\"message\":") || cm_buf_reserve(out, need) != 0)
    return false;
  cm_json_escape(msg, (char *)cm_buf_data(out) + out->len, need);
  out->len += need;
  return puts_(out, "}}");
}

int cm_rpc_ok(struct cm_rpc_req *req, struct cm_str result) {
  if (req->answered) return CM_EALREADY;
  if (cm_json_check(result, depth_of(req->rpc)) != 0) return CM_EINVAL;
  req->answered = true;
  if (req->id.buf == NULL) return 0; /* notification: no response */
  if (!begin_response(req->out, req->id) || !puts_(req->out, ",\"result\":") ||
      !put(req->out, result.buf, result.len) || !puts_(req->out, "}"))
    return CM_ENOMEM;
  return 0;
}

int cm_rpc_err(struct cm_rpc_req *req, int code, const char *message) {
  if (req->answered) return CM_EALREADY;
  req->answered = true;
  if (req->id.buf == NULL) return 0;
  return write_error(req->out, req->id, code, message == NULL ? "" : message) ? 0 : CM_ENOMEM;
}

/* Is the quoted token tok (a member name) equal to name after unescaping? */
static bool name_is(struct cm_str tok, const char *name) {
  char buf[16];
  long n = cm_json_unescape(tok, buf, sizeof(buf));
  return n >= 0 && (size_t)n == strlen(name) && memcmp(buf, name, (size_t)n) == 0;
}

static struct cm_rpc_method *find_method(struct cm_rpc *rpc, struct cm_str name) {
  for (struct cm_rpc_method *m = rpc->methods; m != NULL; m = m->next)
    if (cm_match(name, cm_str_c(m->name), NULL, 0)) return m;
  return NULL;
}

/* Handles one request object (already checked as JSON).  Returns false on ENOMEM. */
static bool process_one(struct cm_rpc *rpc, struct cm_str frame, struct cm_buf *out) {
  struct cm_str none = {NULL, 0};
  if (frame.len == 0 || frame.buf[0] != '{')
    return write_error(out, none, CM_RPC_INVALID_REQUEST, "Invalid Request");
  struct cm_str id = none, method = none, params = none, version = none, k, v;
  for (size_t ofs = 0; (ofs = cm_json_next(frame, ofs, &k, &v)) != 0;) {
    if (id.buf == NULL && name_is(k, "id")) id = v;
    else if (method.buf == NULL && name_is(k, "method")) method = v;
    else if (params.buf == NULL && name_is(k, "params")) params = v;
    else if (version.buf == NULL && name_is(k, "jsonrpc")) version = v;
  }
  bool notification = id.buf == NULL;
  if (method.buf == NULL || method.buf[0] != '"' ||
      (version.buf != NULL && !(version.len == 5 && memcmp(version.buf, "\"2.0\"", 5) == 0))) {
    /* an invalid request is answered even without an id */
    return write_error(out, id, CM_RPC_INVALID_REQUEST, "Invalid Request");
  }

  /* unescape the method name to match it against the patterns */
  char small[256], *name = small;
  if (method.len > sizeof(small) && (name = malloc(method.len)) == NULL) return false;
  long nlen = cm_json_unescape(method, name, method.len);
  struct cm_rpc_method *m = nlen < 0 ? NULL : find_method(rpc, cm_str_n(name, (size_t)nlen));
  if (name != small) free(name);
  if (m == NULL) return notification || write_error(out, id, CM_RPC_METHOD_NOT_FOUND, "Method not found");

  struct cm_rpc_req req = {rpc, frame, id, cm_str_n(method.buf + 1, method.len - 2),
                           params.buf == NULL ? cm_str_n(NULL, 0) : params, m->fn_data, out, false};
  size_t before = out->len;
  m->fn(&req);
  if (!req.answered && !notification)
    return write_error(out, id, CM_RPC_INTERNAL_ERROR, "Internal error: the method did not answer");
  /* cm_rpc_ok/err report ENOMEM to the handler; detect a cut-short answer */
  if (!notification && out->len == before) return false;
  return true;
}

int cm_rpc_process(struct cm_rpc *rpc, struct cm_str frame, struct cm_buf *out) {
  struct cm_str none = {NULL, 0};
  size_t start = frame.buf == NULL ? 0 : frame.len, i = 0;
  while (i < start && (frame.buf[i] == ' ' || frame.buf[i] == '\t' || frame.buf[i] == '\r' ||
                       frame.buf[i] == '\n'))
    i++;
  if (cm_json_check(frame, depth_of(rpc)) != 0)
    return write_error(out, none, CM_RPC_PARSE_ERROR, "Parse error") ? 0 : CM_ENOMEM;
  if (frame.buf[i] != '[') return process_one(rpc, frame, out) ? 0 : CM_ENOMEM;

  /* a batch: answer with an array of the non-empty responses */
  size_t open = out->len, count = 0, elements = 0;
  if (!put(out, "[", 1)) return CM_ENOMEM;
  struct cm_str v;
  for (size_t ofs = 0; (ofs = cm_json_next(frame, ofs, NULL, &v)) != 0; elements++) {
    size_t mark = out->len;
    if (count > 0 && !put(out, ",", 1)) return CM_ENOMEM;
    size_t body = out->len;
    if (!process_one(rpc, v, out)) return CM_ENOMEM;
    if (out->len == body) {
      out->len = mark; /* a notification: drop the separator */
    } else {
      count++;
    }
  }
  if (elements == 0) {
    out->len = open;
    return write_error(out, none, CM_RPC_INVALID_REQUEST, "Invalid Request") ? 0 : CM_ENOMEM;
  }
  if (count == 0) {
    out->len = open;
    return 0;
  }
  return put(out, "]", 1) ? 0 : CM_ENOMEM;
}
