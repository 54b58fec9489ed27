/*
 * HTTP on the Python side: the hook that turns HTTP parsing on for
 * Manager.listen()/connect(), and the Connection methods that write HTTP
 * (reply, reply_json, http_chunk, http_sse, http_basic_auth).
 */
#include "core.h"

#include <limits.h>
#include <string.h>
#include <strings.h>

#include "args.h"
#include "conn_methods.h"

int cm_py_http_attach(cm_py_conn *co, struct cm_conn *c, const struct cm_http_serve_opts *opts) {
  (void)co;
  bool ok = (c->is_listening ? cm_http_serve(c, opts) : cm_http_client(c, &opts->limits)) == 0;
  if (!ok) {
    PyErr_NoMemory();
    return -1;
  }
  return 0;
}

/* A header name or value: str (as UTF-8) or bytes (as they are, e.g. the
 * latin-1 bytes an ASGI application gives). */
static const char *header_part(PyObject *o, Py_ssize_t *n) {
  if (PyUnicode_Check(o)) return PyUnicode_AsUTF8AndSize(o, n);
  if (PyBytes_Check(o)) {
    *n = PyBytes_GET_SIZE(o);
    return PyBytes_AS_STRING(o);
  }
  PyErr_SetString(PyExc_TypeError, "header names and values must be str or bytes");
  return NULL;
}

/* Appends "name: value\r\n" after checking both (ValueError for CR, LF, NUL
 * and other control characters, or a name that is not a token). */
static int append_header(struct cm_buf *b, PyObject *name, PyObject *value) {
  Py_ssize_t nl, vl;
  const char *n = header_part(name, &nl);
  const char *v = n == NULL ? NULL : header_part(value, &vl);
  if (v == NULL) return -1;
  if (!cm_http_header_ok(cm_str_n(n, (size_t)nl), cm_str_n(v, (size_t)vl))) {
    PyErr_Format(PyExc_ValueError,
                 "header %R: %R: name or value contain an illegal character (CR, LF, NUL, "
                 "other control characters, or a name that is not a token)",
                 name, value);
    return -1;
  }
  if (cm_buf_append(b, n, (size_t)nl) != 0 || cm_buf_append(b, ": ", 2) != 0 ||
      cm_buf_append(b, v, (size_t)vl) != 0 || cm_buf_append(b, "\r\n", 2) != 0) {
    PyErr_NoMemory();
    return -1;
  }
  return 0;
}

/* The original's C-style header block, "Name: value\r\n" lines (str or
 * bytes), as a new list of (name, value) pairs of the same type; blank lines
 * are skipped.  NULL with ValueError for a line without ':'. */
static PyObject *header_lines(PyObject *block) {
  Py_ssize_t n;
  const char *s = header_part(block, &n);
  if (s == NULL) return NULL;
  bool is_str = PyUnicode_Check(block);
  PyObject *list = PyList_New(0);
  const char *p = s, *end = s + n;
  while (list != NULL && p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *le = nl != NULL ? nl : end;
    if (le > p && le[-1] == '\r') le--;
    if (le > p) {
      const char *colon = memchr(p, ':', (size_t)(le - p));
      if (colon == NULL) {
        PyErr_Format(PyExc_ValueError, "header line without ':' in %R", block);
        Py_CLEAR(list);
        break;
      }
      const char *v = colon + 1;
      while (v < le && (*v == ' ' || *v == '\t')) v++;
      PyObject *pair = is_str ? Py_BuildValue("(s#s#)", p, (Py_ssize_t)(colon - p), v, (Py_ssize_t)(le - v))
                              : Py_BuildValue("(y#y#)", p, (Py_ssize_t)(colon - p), v, (Py_ssize_t)(le - v));
      if (pair == NULL || PyList_Append(list, pair) < 0) Py_CLEAR(list);
      Py_XDECREF(pair);
    }
    p = nl != NULL ? nl + 1 : end;
  }
  return list;
}

/* headers as a new list of (name, value) items: a mapping gives its items,
 * a list or tuple of pairs is taken as it is (so a name may repeat, as
 * Set-Cookie must), a str or bytes is read as "Name: value\r\n" lines.
 * NULL with an exception set. */
static PyObject *header_items(PyObject *headers) {
  if (PyList_Check(headers) || PyTuple_Check(headers)) return PySequence_List(headers);
  if (PyUnicode_Check(headers) || PyBytes_Check(headers)) return header_lines(headers);
  if (!PyMapping_Check(headers)) {
    PyErr_Format(PyExc_TypeError,
                 "headers must be a dict, a list of (name, value) pairs or a str of "
                 "'Name: value\\r\\n' lines, not %.100s",
                 Py_TYPE(headers)->tp_name);
    return NULL;
  }
  return PyMapping_Items(headers);
}

/* One item of header_items() as name and value (borrowed), or -1. */
static int header_pair(PyObject *kv, PyObject **name, PyObject **value) {
  if ((PyTuple_Check(kv) && PyTuple_GET_SIZE(kv) == 2) ||
      (PyList_Check(kv) && PyList_GET_SIZE(kv) == 2)) {
    *name = PySequence_Fast_ITEMS(kv)[0];
    *value = PySequence_Fast_ITEMS(kv)[1];
    return 0;
  }
  PyErr_SetString(PyExc_TypeError,
                  "headers must be a mapping or a sequence of (name, value) pairs");
  return -1;
}

/* Builds a NUL-terminated header block from headers (or None). */
static int header_block(PyObject *headers, struct cm_buf *b) {
  if (headers != NULL && headers != Py_None) {
    PyObject *items = header_items(headers);
    if (items == NULL) return -1;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(items); i++) {
      PyObject *name, *value;
      if (header_pair(PyList_GET_ITEM(items, i), &name, &value) < 0 ||
          append_header(b, name, value) < 0) {
        Py_DECREF(items);
        return -1;
      }
    }
    Py_DECREF(items);
  }
  if (cm_buf_append(b, "", 1) != 0) {
    PyErr_NoMemory();
    return -1;
  }
  return 0;
}

/* True when headers name the header `name` (any case) with a value that
 * starts with value_prefix (any case; NULL: any value); bad input reads as
 * absent here and is reported by header_block(). */
static bool has_header(PyObject *headers, const char *name, const char *value_prefix) {
  if (headers == NULL || headers == Py_None) return false;
  PyObject *items = header_items(headers);
  if (items == NULL) {
    PyErr_Clear();
    return false;
  }
  bool found = false;
  size_t len = strlen(name);
  for (Py_ssize_t i = 0; i < PyList_GET_SIZE(items) && !found; i++) {
    PyObject *k, *v;
    if (header_pair(PyList_GET_ITEM(items, i), &k, &v) < 0) break;
    Py_ssize_t n;
    const char *s = header_part(k, &n);
    found = s != NULL && (size_t)n == len && strncasecmp(s, name, len) == 0;
    if (found && value_prefix != NULL) {
      size_t plen = strlen(value_prefix);
      s = header_part(v, &n);
      found = s != NULL && (size_t)n >= plen && strncasecmp(s, value_prefix, plen) == 0;
    }
  }
  PyErr_Clear();
  Py_DECREF(items);
  return found;
}

/* The arguments are converted first, with no connection in hand: a header
 * mapping, a body's __len__ or buffer may run Python code that closes the
 * connection or the whole manager (freeing it).  self's connection is taken
 * only after, right before entering the core. */
static PyObject *do_reply(PyObject *self, int status, PyObject *body, PyObject *headers,
                          const char *default_type) {
  if (status < 100 || status > 999) {
    PyErr_Format(PyExc_ValueError, "status_code must be in 100..999, not %d", status);
    return NULL;
  }
  bool no_headers = default_type == NULL && (headers == NULL || headers == Py_None);
  struct cm_buf b = {0};
  if (default_type != NULL && !has_header(headers, "Content-Type", NULL)) {
    if (cm_buf_append(&b, "Content-Type: ", 14) != 0 ||
        cm_buf_append(&b, default_type, strlen(default_type)) != 0 ||
        cm_buf_append(&b, "\r\n", 2) != 0) {
      cm_buf_free(&b);
      return PyErr_NoMemory();
    }
  }
  /* The original's SSE pattern: reply(200, "", {"Content-Type":
   * "text/event-stream"}) then http_sse() calls.  An empty event-stream
   * reply without a length starts a chunked stream, so that the events
   * reach the client instead of following a complete response. */
  if (!no_headers && (body == NULL || PyObject_Length(body) == 0) &&
      has_header(headers, "Content-Type", "text/event-stream") &&
      !has_header(headers, "Content-Length", NULL) &&
      !has_header(headers, "Transfer-Encoding", NULL) &&
      cm_buf_append(&b, "Transfer-Encoding: chunked\r\n", 28) != 0) {
    cm_buf_free(&b);
    return PyErr_NoMemory();
  }
  PyErr_Clear(); /* PyObject_Length of a body that has none: cm_py_buffer_get() reports it */
  /* Without headers there is no block to build (and nothing to allocate). */
  if (!no_headers && header_block(headers, &b) < 0) {
    cm_buf_free(&b);
    return NULL;
  }
  Py_buffer view = {0};
  if (body != NULL && cm_py_buffer_get(body, &view, "body") < 0) {
    cm_buf_free(&b);
    return NULL;
  }
  struct cm_conn *c = cm_py_conn_get(self);
  if (c == NULL) {
    if (body != NULL) PyBuffer_Release(&view);
    cm_buf_free(&b);
    return NULL;
  }
  const char *hdrs = no_headers ? NULL : (const char *)cm_buf_data(&b);
  /* Refused arguments raise: the request still awaits a reply, and an
   * application that never hears of it would leave the client hanging.
   * Any other refusal (connection closing, send_limit, no memory) has
   * already been reported on the connection (ERROR, then CLOSE). */
  const char *why = cm_http_reply_check(status, hdrs, (size_t)view.len);
  if (why == NULL) cm_py_body_answered(c);
  cm_py_manager *mo = cm_py_conn_enter(c); /* the output hook may run */
  if (why == NULL) (void)cm_http_reply(c, status, hdrs, view.buf, (size_t)view.len);
  if (body != NULL) PyBuffer_Release(&view);
  cm_buf_free(&b);
  if (cm_py_conn_leave(mo) < 0) return NULL;
  if (why != NULL) {
    PyErr_Format(PyExc_ValueError, "reply refused: %s", why);
    return NULL;
  }
  Py_RETURN_NONE;
}

/* An int argument, as the "i" format converts it. */
static int int_arg(PyObject *o, int *v) {
  long x = PyLong_AsLong(o);
  if (x == -1 && PyErr_Occurred()) return -1;
  if (x > INT_MAX || x < INT_MIN) {
    PyErr_SetString(PyExc_OverflowError, "signed integer is out of range for a C int");
    return -1;
  }
  *v = (int)x;
  return 0;
}

/* reply(status_code, body=b"", headers=None) */
PyObject *cm_py_conn_reply(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
  static const char *const names[] = {"status_code", "body", "headers", NULL};
  PyObject *a[3];
  int status;
  if (cm_py_bind("reply", args, nargs, kwnames, names, 3, 1, a) < 0 || int_arg(a[0], &status) < 0)
    return NULL;
  if (cm_py_conn_get(self) == NULL) return NULL; /* closed: fail before converting */
  return do_reply(self, status, a[1], a[2], NULL);
}

/* reply_json(data, status_code=200, headers=None) */
PyObject *cm_py_conn_reply_json(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                                PyObject *kwnames) {
  static const char *const names[] = {"data", "status_code", "headers", NULL};
  PyObject *a[3];
  int status = 200;
  if (cm_py_bind("reply_json", args, nargs, kwnames, names, 3, 1, a) < 0) return NULL;
  if (a[1] != NULL && int_arg(a[1], &status) < 0) return NULL;
  PyObject *data = a[0], *headers = a[2];
  if (cm_py_conn_get(self) == NULL) return NULL; /* closed: fail before converting */
  cm_py_state *st = cm_py_state_of_type(Py_TYPE(self));
  if (st == NULL) return NULL;
  if (st->json_dumps == NULL) {
    PyObject *json = PyImport_ImportModule("json");
    if (json == NULL) return NULL;
    st->json_dumps = PyObject_GetAttrString(json, "dumps");
    Py_DECREF(json);
    if (st->json_dumps == NULL) return NULL;
  }
  PyObject *text = PyObject_CallOneArg(st->json_dumps, data);
  if (text == NULL) return NULL;
  PyObject *r = do_reply(self, status, text, headers, "application/json");
  Py_DECREF(text);
  return r;
}

/* On an HTTP server connection whose response is already complete (a reply
 * with Content-Length, or a chunked one that ended), a chunk would follow a
 * whole response and the client would drop it: RuntimeError instead of a
 * silent loss.  A head the application wrote itself with send() (no reply
 * yet) is left alone.  0, or -1 with the exception set. */
static int check_streaming(struct cm_conn *c, const char *what) {
  if (!cm_http_response_complete(c)) return 0;
  PyErr_Format(PyExc_RuntimeError,
               "%s(): no chunked response is in progress (the response is complete, so the "
               "client would drop this); start one with reply(200, '', {'Transfer-Encoding': "
               "'chunked'}), or for SSE reply(200, '', {'Content-Type': 'text/event-stream'})",
               what);
  return -1;
}

/* http_chunk(data): one chunk of a chunked reply; empty data ends it. */
PyObject *cm_py_conn_http_chunk(PyObject *self, PyObject *data) {
  Py_buffer view;
  if (cm_py_buffer_get(data, &view, "data") < 0) return NULL; /* first: it may run Python code */
  struct cm_conn *c = cm_py_conn_get(self);
  if (c == NULL || check_streaming(c, "http_chunk") < 0) {
    PyBuffer_Release(&view);
    return NULL;
  }
  cm_py_manager *mo = cm_py_conn_enter(c);
  (void)cm_http_chunk(c, view.buf, (size_t)view.len);
  PyBuffer_Release(&view);
  if (cm_py_conn_leave(mo) < 0) return NULL;
  Py_RETURN_NONE;
}

/* http_sse(event_type, data): a Server-Sent Events record as one chunk. */
PyObject *cm_py_conn_http_sse(PyObject *self, PyObject *const *argv, Py_ssize_t nargs,
                              PyObject *kwnames) {
  static const char *const names[] = {"event_type", "data", NULL};
  PyObject *args[2];
  if (cm_py_bind("http_sse", argv, nargs, kwnames, names, 2, 2, args) < 0) return NULL;
  if (!PyUnicode_Check(args[0]) || !PyUnicode_Check(args[1])) {
    PyErr_SetString(PyExc_TypeError, "http_sse(event_type, data) takes two str");
    return NULL;
  }
  struct cm_conn *c = cm_py_conn_get(self);
  if (c == NULL || check_streaming(c, "http_sse") < 0) return NULL;
  Py_ssize_t el, dl;
  const char *e = PyUnicode_AsUTF8AndSize(args[0], &el);
  const char *d = e == NULL ? NULL : PyUnicode_AsUTF8AndSize(args[1], &dl);
  if (d == NULL) return NULL;
  if (memchr(e, '\n', (size_t)el) != NULL || memchr(e, '\r', (size_t)el) != NULL) {
    PyErr_SetString(PyExc_ValueError, "event_type must not contain CR or LF");
    return NULL;
  }
  cm_py_manager *mo = cm_py_conn_enter(c);
  (void)cm_http_sse(c, cm_str_n(e, (size_t)el), cm_str_n(d, (size_t)dl));
  if (cm_py_conn_leave(mo) < 0) return NULL;
  Py_RETURN_NONE;
}

/* http_basic_auth(username, password): writes an Authorization header line
 * (a client writing its request head with send()). */
PyObject *cm_py_conn_http_basic_auth(PyObject *self, PyObject *const *argv, Py_ssize_t nargs,
                                     PyObject *kwnames) {
  static const char *const names[] = {"username", "password", NULL};
  PyObject *args[2];
  if (cm_py_bind("http_basic_auth", argv, nargs, kwnames, names, 2, 2, args) < 0) return NULL;
  if (!PyUnicode_Check(args[0]) || !PyUnicode_Check(args[1])) {
    PyErr_SetString(PyExc_TypeError, "http_basic_auth(username, password) takes two str");
    return NULL;
  }
  struct cm_conn *c = cm_py_conn_get(self);
  if (c == NULL) return NULL;
  PyObject *cred = PyUnicode_FromFormat("%U:%U", args[0], args[1]);
  if (cred == NULL) return NULL;
  Py_ssize_t n;
  const char *s = PyUnicode_AsUTF8AndSize(cred, &n);
  size_t b64 = s == NULL ? 0 : CM_BASE64_ENCODED_LEN((size_t)n);
  char *line = s == NULL ? NULL : PyMem_Malloc(21 + b64 + 3);
  if (line == NULL) {
    Py_DECREF(cred);
    return s == NULL ? NULL : PyErr_NoMemory();
  }
  memcpy(line, "Authorization: Basic ", 21);
  size_t len = 21 + b64; /* the encoding fits: b64 + 1 bytes */
  (void)cm_base64_encode(s, (size_t)n, line + 21, b64 + 1);
  memcpy(line + len, "\r\n", 2);
  cm_py_manager *mo = cm_py_conn_enter(c);
  cm_send(c, line, len + 2);
  PyMem_Free(line);
  Py_DECREF(cred);
  if (cm_py_conn_leave(mo) < 0) return NULL;
  Py_RETURN_NONE;
}
