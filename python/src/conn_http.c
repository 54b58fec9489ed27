/*
 * HTTP on the Python side: the hook that turns HTTP parsing on for
 * Manager.listen()/connect(), and the Connection methods that write HTTP
 * (reply, reply_json, http_chunk, http_sse, http_basic_auth).
 */
#include "core.h"

#include <limits.h>
#include <string.h>
#include <strings.h>

#include "conn_methods.h"

int cm_py_http_attach(cm_py_conn *co, struct cm_conn *c, const struct cm_http_serve_opts *opts) {
  (void)co;
  bool ok = c->is_listening ? cm_http_serve(c, opts) : cm_http_client(c, &opts->limits);
  if (!ok) {
    PyErr_NoMemory();
    return -1;
  }
  return 0;
}

/* A bytes-like object, or a str as UTF-8. */
static int get_body(PyObject *obj, Py_buffer *view) {
  if (PyUnicode_Check(obj)) {
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(obj, &n);
    if (s == NULL) return -1;
    return PyBuffer_FillInfo(view, obj, (void *)s, n, 1, PyBUF_SIMPLE);
  }
  return PyObject_GetBuffer(obj, view, PyBUF_SIMPLE);
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
    PyErr_Format(PyExc_ValueError, "invalid header %R: %R (control characters or a bad name)", name,
                 value);
    return -1;
  }
  if (cm_buf_append(b, n, (size_t)nl) != 0 || cm_buf_append(b, ": ", 2) != 0 ||
      cm_buf_append(b, v, (size_t)vl) != 0 || cm_buf_append(b, "\r\n", 2) != 0) {
    PyErr_NoMemory();
    return -1;
  }
  return 0;
}

/* headers as a new list of (name, value) items: a mapping gives its items,
 * a list or tuple of pairs is taken as it is (so a name may repeat, as
 * Set-Cookie must).  NULL with an exception set. */
static PyObject *header_items(PyObject *headers) {
  if (PyList_Check(headers) || PyTuple_Check(headers)) return PySequence_List(headers);
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

/* True when headers name the header `name` (any case); bad input reads as
 * absent here and is reported by header_block(). */
static bool has_header(PyObject *headers, const char *name) {
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
  }
  PyErr_Clear();
  Py_DECREF(items);
  return found;
}

static PyObject *do_reply(struct cm_conn *c, int status, PyObject *body, PyObject *headers,
                          const char *default_type) {
  if (status < 100 || status > 999) {
    PyErr_Format(PyExc_ValueError, "status_code must be in 100..999, not %d", status);
    return NULL;
  }
  bool no_headers = default_type == NULL && (headers == NULL || headers == Py_None);
  struct cm_buf b = {0};
  if (default_type != NULL && !has_header(headers, "Content-Type")) {
    if (cm_buf_append(&b, "Content-Type: ", 14) != 0 ||
        cm_buf_append(&b, default_type, strlen(default_type)) != 0 ||
        cm_buf_append(&b, "\r\n", 2) != 0) {
      cm_buf_free(&b);
      return PyErr_NoMemory();
    }
  }
  /* Without headers there is no block to build (and nothing to allocate). */
  if (!no_headers && header_block(headers, &b) < 0) {
    cm_buf_free(&b);
    return NULL;
  }
  Py_buffer view = {0};
  if (body != NULL && get_body(body, &view) < 0) {
    cm_buf_free(&b);
    return NULL;
  }
  const char *hdrs = no_headers ? NULL : (const char *)cm_buf_data(&b);
  /* Refused arguments raise: the request still awaits a reply, and an
   * application that never hears of it would leave the client hanging.
   * Any other refusal (connection closing, send_limit, no memory) has
   * already been reported on the connection (ERROR, then CLOSE). */
  const char *why = cm_http_reply_check(status, hdrs, (size_t)view.len);
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

/*
 * Vectorcall argument parsing for the hot reply methods (the generic
 * tuple-and-dict parser showed up in profiles): fills out[0..n) from
 * positionals, then keywords, leaving NULL what was not given.
 */
static int parse_fast(const char *fname, const char *const *names, Py_ssize_t n, Py_ssize_t required,
                      PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames, PyObject **out) {
  if (nargs > n) {
    PyErr_Format(PyExc_TypeError, "%s() takes at most %zd arguments (%zd given)", fname, n, nargs);
    return -1;
  }
  for (Py_ssize_t i = 0; i < n; i++) out[i] = i < nargs ? args[i] : NULL;
  Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
  for (Py_ssize_t k = 0; k < nkw; k++) {
    PyObject *key = PyTuple_GET_ITEM(kwnames, k);
    Py_ssize_t i = 0;
    while (i < n && PyUnicode_CompareWithASCIIString(key, names[i]) != 0) i++;
    if (i == n) {
      PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%U'", fname, key);
      return -1;
    }
    if (out[i] != NULL) {
      PyErr_Format(PyExc_TypeError, "argument for %s() given by name ('%s') and position (%zd)",
                   fname, names[i], i + 1);
      return -1;
    }
    out[i] = args[nargs + k];
  }
  for (Py_ssize_t i = 0; i < required; i++) {
    if (out[i] == NULL) {
      PyErr_Format(PyExc_TypeError, "%s() missing required argument '%s' (pos %zd)", fname, names[i],
                   i + 1);
      return -1;
    }
  }
  return 0;
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
  static const char *const names[] = {"status_code", "body", "headers"};
  PyObject *a[3];
  int status;
  if (parse_fast("reply", names, 3, 1, args, nargs, kwnames, a) < 0 || int_arg(a[0], &status) < 0)
    return NULL;
  struct cm_conn *c = cm_py_conn_get(self);
  if (c == NULL) return NULL;
  return do_reply(c, status, a[1], a[2], NULL);
}

/* reply_json(data, status_code=200, headers=None) */
PyObject *cm_py_conn_reply_json(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                                PyObject *kwnames) {
  static const char *const names[] = {"data", "status_code", "headers"};
  PyObject *a[3];
  int status = 200;
  if (parse_fast("reply_json", names, 3, 1, args, nargs, kwnames, a) < 0) return NULL;
  if (a[1] != NULL && int_arg(a[1], &status) < 0) return NULL;
  PyObject *data = a[0], *headers = a[2];
  struct cm_conn *c = cm_py_conn_get(self);
  if (c == NULL) return NULL;
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
  PyObject *r = do_reply(c, status, text, headers, "application/json");
  Py_DECREF(text);
  return r;
}

/* http_chunk(data): one chunk of a chunked reply; empty data ends it. */
PyObject *cm_py_conn_http_chunk(PyObject *self, PyObject *data) {
  struct cm_conn *c = cm_py_conn_get(self);
  if (c == NULL) return NULL;
  Py_buffer view;
  if (get_body(data, &view) < 0) return NULL;
  cm_py_manager *mo = cm_py_conn_enter(c);
  (void)cm_http_chunk(c, view.buf, (size_t)view.len);
  PyBuffer_Release(&view);
  if (cm_py_conn_leave(mo) < 0) return NULL;
  Py_RETURN_NONE;
}

/* http_sse(event_type, data): a Server-Sent Events record as one chunk. */
PyObject *cm_py_conn_http_sse(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
  if (nargs != 2 || !PyUnicode_Check(args[0]) || !PyUnicode_Check(args[1])) {
    PyErr_SetString(PyExc_TypeError, "http_sse(event_type, data) takes two str");
    return NULL;
  }
  struct cm_conn *c = cm_py_conn_get(self);
  if (c == NULL) return NULL;
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

static size_t base64(const unsigned char *in, size_t n, char *out) {
  static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t o = 0;
  for (size_t i = 0; i < n; i += 3) {
    unsigned v = (unsigned)in[i] << 16 | (i + 1 < n ? (unsigned)in[i + 1] << 8 : 0) |
                 (i + 2 < n ? in[i + 2] : 0);
    out[o++] = tbl[v >> 18 & 63];
    out[o++] = tbl[v >> 12 & 63];
    out[o++] = i + 1 < n ? tbl[v >> 6 & 63] : '=';
    out[o++] = i + 2 < n ? tbl[v & 63] : '=';
  }
  return o;
}

/* http_basic_auth(user, password): writes an Authorization header line (a
 * client writing its request head with send()). */
PyObject *cm_py_conn_http_basic_auth(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
  if (nargs != 2 || !PyUnicode_Check(args[0]) || !PyUnicode_Check(args[1])) {
    PyErr_SetString(PyExc_TypeError, "http_basic_auth(user, password) takes two str");
    return NULL;
  }
  struct cm_conn *c = cm_py_conn_get(self);
  if (c == NULL) return NULL;
  PyObject *cred = PyUnicode_FromFormat("%U:%U", args[0], args[1]);
  if (cred == NULL) return NULL;
  Py_ssize_t n;
  const char *s = PyUnicode_AsUTF8AndSize(cred, &n);
  char *line = s == NULL ? NULL : PyMem_Malloc((size_t)n / 3 * 4 + 64);
  if (line == NULL) {
    Py_DECREF(cred);
    return s == NULL ? NULL : PyErr_NoMemory();
  }
  size_t len = 0;
  memcpy(line, "Authorization: Basic ", 21);
  len = 21 + base64((const unsigned char *)s, (size_t)n, line + 21);
  memcpy(line + len, "\r\n", 2);
  cm_py_manager *mo = cm_py_conn_enter(c);
  cm_send(c, line, len + 2);
  PyMem_Free(line);
  Py_DECREF(cred);
  if (cm_py_conn_leave(mo) < 0) return NULL;
  Py_RETURN_NONE;
}
