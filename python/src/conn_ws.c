/*
 * WebSocket methods of Connection (ws_upgrade, ws_send, ws_close) and
 * Manager.ws_connect, over the C glue in src/ws/ws.c.
 */
#include "core.h"
#include "mgr_methods.h"

#include <errno.h>
#include <string.h>

/* ------------------------------------------------------------- helpers */

/* True when s[0..n) holds no CR, LF or NUL (one header name or value). */
static bool header_part_ok(const char *s, Py_ssize_t n) {
  for (Py_ssize_t i = 0; i < n; i++) {
    if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0') return false;
  }
  return true;
}

static int append_part(PyObject *list, PyObject *o, const char *what) {
  PyObject *s = PyObject_Str(o);
  if (s == NULL) return -1;
  Py_ssize_t n;
  const char *p = PyUnicode_AsUTF8AndSize(s, &n);
  if (p == NULL || !header_part_ok(p, n)) {
    if (p != NULL) PyErr_Format(PyExc_ValueError, "CR, LF or NUL in a header %s", what);
    Py_DECREF(s);
    return -1;
  }
  int r = PyList_Append(list, s);
  Py_DECREF(s);
  return r;
}

/*
 * extra_headers as a block of "Name: value\r\n" lines: None, a str of
 * lines, a dict, or an iterable of (name, value) pairs.  Returns a new
 * bytes object (NULL with an exception set); *out points into it, NULL
 * for None.
 */
static PyObject *headers_block(PyObject *h, const char **out) {
  *out = NULL;
  if (h == NULL || h == Py_None) return Py_NewRef(Py_None);
  PyObject *block;
  if (PyUnicode_Check(h)) {
    block = PyUnicode_AsUTF8String(h);
  } else if (PyBytes_Check(h)) {
    block = Py_NewRef(h);
  } else {
    PyObject *items = PyDict_Check(h) ? PyDict_Items(h) : PySequence_List(h);
    if (items == NULL) return NULL;
    PyObject *parts = PyList_New(0);
    for (Py_ssize_t i = 0; parts != NULL && i < PyList_GET_SIZE(items); i++) {
      PyObject *pair = PyList_GET_ITEM(items, i);
      if (!PyTuple_Check(pair) && !PyList_Check(pair)) {
        PyErr_SetString(PyExc_TypeError, "extra_headers: expected (name, value) pairs");
        Py_CLEAR(parts);
        break;
      }
      PyObject *seq = PySequence_Fast(pair, "extra_headers: expected (name, value) pairs");
      if (seq == NULL || PySequence_Fast_GET_SIZE(seq) != 2) {
        if (seq != NULL) PyErr_SetString(PyExc_TypeError, "extra_headers: expected (name, value) pairs");
        Py_XDECREF(seq);
        Py_CLEAR(parts);
        break;
      }
      PyObject *sep = PyUnicode_FromString(": "), *crlf = PyUnicode_FromString("\r\n");
      int bad = sep == NULL || crlf == NULL ||
                append_part(parts, PySequence_Fast_GET_ITEM(seq, 0), "name") < 0 ||
                PyList_Append(parts, sep) < 0 ||
                append_part(parts, PySequence_Fast_GET_ITEM(seq, 1), "value") < 0 ||
                PyList_Append(parts, crlf) < 0;
      Py_XDECREF(sep);
      Py_XDECREF(crlf);
      Py_DECREF(seq);
      if (bad) Py_CLEAR(parts);
    }
    Py_DECREF(items);
    if (parts == NULL) return NULL;
    PyObject *empty = PyUnicode_FromString("");
    PyObject *joined = empty == NULL ? NULL : PyUnicode_Join(empty, parts);
    Py_XDECREF(empty);
    Py_DECREF(parts);
    if (joined == NULL) return NULL;
    block = PyUnicode_AsUTF8String(joined);
    Py_DECREF(joined);
  }
  if (block == NULL) return NULL;
  bool framing;
  if ((Py_ssize_t)strlen(PyBytes_AS_STRING(block)) != PyBytes_GET_SIZE(block) ||
      !cm_http_headers_ok(PyBytes_AS_STRING(block), &framing) || framing) {
    Py_DECREF(block);
    PyErr_SetString(PyExc_ValueError,
                    "extra_headers must be 'Name: value' lines separated by CRLF");
    return NULL;
  }
  *out = PyBytes_GET_SIZE(block) > 0 ? PyBytes_AS_STRING(block) : NULL;
  return block;
}

/* max_message_size keyword: None/0 for the default, else a positive int. */
static int parse_limit(PyObject *o, uint64_t *out) {
  *out = 0;
  if (o == NULL || o == Py_None) return 0;
  unsigned long long v = PyLong_AsUnsignedLongLong(o);
  if (v == (unsigned long long)-1 && PyErr_Occurred()) {
    PyErr_SetString(PyExc_ValueError, "max_message_size must be a positive int or None");
    return -1;
  }
  *out = v;
  return 0;
}

/* The options shared by ws_upgrade() and ws_connect(): compress=,
 * max_message_size= and extra headers.  Returns the header block (a new
 * reference keeping *hdrs alive; Py_None when there are none), or NULL with
 * an exception set. */
static PyObject *ws_call_opts(int compress, PyObject *limit, PyObject *extra,
                              struct cm_ws_opts *opts, const char **hdrs) {
  memset(opts, 0, sizeof(*opts));
  opts->compress = compress != 0;
  if (parse_limit(limit, &opts->limits.max_message_size) < 0) return NULL;
  return headers_block(extra, hdrs);
}

/* ----------------------------------------------------------- Connection */

PyObject *cm_py_conn_ws_upgrade(PyObject *self, PyObject *args, PyObject *kwds) {
  static char *kwlist[] = {"message", "extra_headers", "compress", "max_message_size", NULL};
  PyObject *msg, *extra = Py_None, *limit = Py_None;
  int compress = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|O$pO", kwlist, &msg, &extra, &compress, &limit))
    return NULL;
  struct cm_conn *c = cm_py_conn_get(self);
  if (c == NULL) return NULL;
  /* The request: the HttpMessage of the current HTTP_MSG event, or the
   * bytes of a request head kept from it, to upgrade later (an ASGI
   * application decides after the handler returned).  The head is parsed
   * into a message that lives for this call, WS_OPEN included. */
  struct cm_http_msg parsed;
  struct cm_http_msg *hm;
  if (PyBytes_Check(msg)) {
    int r = cm_http_parse_request(PyBytes_AS_STRING(msg), (size_t)PyBytes_GET_SIZE(msg), &parsed,
                                  NULL);
    if (r <= 0 || (Py_ssize_t)r != PyBytes_GET_SIZE(msg)) {
      PyErr_SetString(PyExc_ValueError,
                      "ws_upgrade(): the bytes must be exactly one complete request head");
      return NULL;
    }
    hm = &parsed;
  } else {
    hm = cm_py_http_message_get(msg);
  }
  if (hm == NULL) {
    PyErr_SetString(PyExc_ValueError,
                    "ws_upgrade() needs the HttpMessage of the current HTTP_MSG event "
                    "or the bytes of a request head");
    return NULL;
  }
  struct cm_ws_opts opts;
  const char *hdrs;
  PyObject *block = ws_call_opts(compress, limit, extra, &opts, &hdrs);
  if (block == NULL) return NULL;
  cm_py_manager *mo = cm_py_conn_enter(c); /* WS_OPEN is raised from inside */
  bool ok = cm_ws_upgrade_opts(c, hm, hdrs, &opts) == 0;
  Py_DECREF(block);
  if (cm_py_conn_leave(mo) < 0) return NULL;
  return PyBool_FromLong(ok);
}

/* data as bytes: str is UTF-8 encoded, any buffer is copied. */
static PyObject *data_bytes(PyObject *data) {
  if (PyUnicode_Check(data)) return PyUnicode_AsUTF8String(data);
  if (PyBytes_Check(data)) return Py_NewRef(data);
  return PyBytes_FromObject(data);
}

PyObject *cm_py_conn_ws_send(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                             PyObject *kwnames) {
  static const char *const names[] = {"data", "op"};
  PyObject *vals[2] = {NULL, NULL};
  Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
  if (nargs > 2) {
    PyErr_SetString(PyExc_TypeError, "ws_send(data, op=WEBSOCKET_OP_TEXT)");
    return NULL;
  }
  for (Py_ssize_t i = 0; i < nargs; i++) vals[i] = args[i];
  for (Py_ssize_t k = 0; k < nkw; k++) {
    const char *kw = PyUnicode_AsUTF8(PyTuple_GET_ITEM(kwnames, k));
    if (kw == NULL) return NULL;
    int idx = strcmp(kw, names[0]) == 0 ? 0 : strcmp(kw, names[1]) == 0 ? 1 : -1;
    if (idx < 0 || vals[idx] != NULL) {
      PyErr_Format(PyExc_TypeError, "ws_send(): unexpected or repeated argument '%s'", kw);
      return NULL;
    }
    vals[idx] = args[nargs + k];
  }
  if (vals[0] == NULL) {
    PyErr_SetString(PyExc_TypeError, "ws_send() missing 'data'");
    return NULL;
  }
  long op = CM_WS_OP_TEXT;
  if (vals[1] != NULL) {
    op = PyLong_AsLong(vals[1]);
    if (op == -1 && PyErr_Occurred()) return NULL;
  }
  int opcode = (int)(op & 0x0F);
  if ((op & ~(long)(CM_WS_SEND_MORE | 0x0F)) != 0 ||
      !(opcode <= CM_WS_OP_BINARY || (opcode >= CM_WS_OP_CLOSE && opcode <= CM_WS_OP_PONG))) {
    PyErr_Format(PyExc_ValueError, "invalid WebSocket opcode %ld", op);
    return NULL;
  }
  struct cm_conn *c = cm_py_conn_get(self);
  if (c == NULL) return NULL;
  PyObject *b = data_bytes(vals[0]);
  if (b == NULL) return NULL;
  size_t len = (size_t)PyBytes_GET_SIZE(b);
  if (opcode >= CM_WS_OP_CLOSE && len > CM_WS_MAX_CONTROL_PAYLOAD) {
    Py_DECREF(b);
    PyErr_SetString(PyExc_ValueError, "control frame payloads are limited to 125 bytes");
    return NULL;
  }
  if (opcode == CM_WS_OP_CLOSE &&
      cm_ws_parse_close((const uint8_t *)PyBytes_AS_STRING(b), len, NULL, NULL, NULL) != 0) {
    Py_DECREF(b);
    PyErr_SetString(PyExc_ValueError,
                    "a close payload is empty or a valid 2-byte code and a UTF-8 reason");
    return NULL;
  }
  /* Queueing may run the output hook: bracketed like every entry. */
  cm_py_manager *mo = cm_py_conn_enter(c);
  long n = cm_ws_send(c, PyBytes_AS_STRING(b), len, (int)op);
  Py_DECREF(b);
  if (cm_py_conn_leave(mo) < 0) return NULL;
  return PyLong_FromLong(n < 0 ? 0 : n); /* 0: nothing queued, as in the original */
}

PyObject *cm_py_conn_ws_close(PyObject *self, PyObject *args, PyObject *kwds) {
  static char *kwlist[] = {"code", "reason", NULL};
  int code = CM_WS_CLOSE_NORMAL;
  const char *reason = "";
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "|is", kwlist, &code, &reason)) return NULL;
  if (code != 0 && (code < 0 || !cm_ws_close_code_valid((unsigned)code))) {
    PyErr_Format(PyExc_ValueError, "%d is not a close code an endpoint may send", code);
    return NULL;
  }
  struct cm_conn *c = cm_py_conn_get(self);
  if (c == NULL) return NULL;
  cm_py_manager *mo = cm_py_conn_enter(c);
  bool ok = cm_ws_close(c, (unsigned)code, reason) == 0;
  if (cm_py_conn_leave(mo) < 0) return NULL;
  return PyBool_FromLong(ok);
}

/* -------------------------------------------------------------- Manager */

PyObject *cm_py_mgr_ws_connect(PyObject *self, PyObject *args, PyObject *kwds) {
  static char *kwlist[] = {"url", "handler", "compress", "extra_headers", "max_message_size",
                           NULL};
  cm_py_manager *mo = (cm_py_manager *)self;
  const char *url;
  PyObject *handler = Py_None, *extra = Py_None, *limit = Py_None;
  int compress = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "s|O$pOO", kwlist, &url, &handler, &compress,
                                   &extra, &limit))
    return NULL;
  if (cm_py_check_url(url, true) < 0) return NULL;
  struct cm_ws_opts opts;
  const char *hdrs;
  PyObject *block = ws_call_opts(compress, limit, extra, &opts, &hdrs);
  if (block == NULL) return NULL;
  cm_py_conn *co = cm_py_conn_prepare(mo, handler);
  if (co == NULL) {
    Py_DECREF(block);
    return NULL;
  }
  errno = 0;
  struct cm_conn *c = cm_ws_connect_opts(&mo->mgr, url, cm_py_on_event, co, hdrs, &opts);
  Py_DECREF(block);
  return cm_py_conn_finish(mo, co, c, "connect to", url);
}
