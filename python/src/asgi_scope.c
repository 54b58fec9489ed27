/*
 * _AsgiScopeBuilder: builds the ASGI 3.0 "http" and "websocket" scope dicts
 * of a request straight from the C message, for cymongoose.asgi.  The
 * builder keeps the constant keys and values (interned once, per server) so
 * a request costs only its own strings: method, path, raw path, query, and
 * one [name, value] pair of bytes per header (names lowercased here, as
 * ASGI requires).
 */
#include <strings.h>

#include "args.h"
#include "asgi.h"

/* The scope's keys, in the order they go into the dict. */
enum {
  K_TYPE,
  K_ASGI,
  K_HTTP_VERSION,
  K_SCHEME,
  K_METHOD,
  K_PATH,
  K_RAW_PATH,
  K_QUERY_STRING,
  K_ROOT_PATH,
  K_HEADERS,
  K_CLIENT,
  K_SERVER,
  K_STATE,
  K_SUBPROTOCOLS, /* websocket only */
  K_COUNT
};

static const char *const key_names[K_COUNT] = {
    "type", "asgi", "http_version", "scheme", "method", "path", "raw_path",
    "query_string", "root_path", "headers", "client", "server", "state", "subprotocols"};

/* Constant values. */
enum { V_HTTP, V_HTTPS, V_V11, V_V10, V_EMPTY, V_GET, V_POST, V_WEBSOCKET, V_WS, V_WSS, V_COUNT };
static const char *const value_names[V_COUNT] = {"http", "https", "1.1", "1.0", "", "GET", "POST",
                                                 "websocket", "ws", "wss"};

typedef struct {
  PyObject_HEAD
  PyObject *keys[K_COUNT];
  PyObject *values[V_COUNT];
  PyObject *asgi;        /* {"version": "3.0", ...}: copied into every scope */
  PyObject *empty_bytes; /* b"" */
  /* Every key of an "http" / "websocket" scope, in order, with the values
   * of a plain request (GET, HTTP/1.1, no TLS, no query): a scope starts as
   * a copy of one (a block copy, no insertions) and gets its own values. */
  PyObject *http_template, *ws_template;
} ScopeBuilder;

static int sb_traverse(PyObject *op, visitproc visit, void *arg) {
  ScopeBuilder *self = (ScopeBuilder *)op;
  Py_VISIT(Py_TYPE(op));
  Py_VISIT(self->asgi);
  return 0;
}

static int sb_clear(PyObject *op) {
  ScopeBuilder *self = (ScopeBuilder *)op;
  for (int i = 0; i < K_COUNT; i++) Py_CLEAR(self->keys[i]);
  for (int i = 0; i < V_COUNT; i++) Py_CLEAR(self->values[i]);
  Py_CLEAR(self->asgi);
  Py_CLEAR(self->empty_bytes);
  Py_CLEAR(self->http_template);
  Py_CLEAR(self->ws_template);
  return 0;
}

static void sb_dealloc(PyObject *op) {
  PyTypeObject *tp = Py_TYPE(op);
  PyObject_GC_UnTrack(op);
  sb_clear(op);
  tp->tp_free(op);
  Py_DECREF(tp);
}

/* The template scope of a kind: every key, the constant values, None for
 * the others. */
static PyObject *template_of(ScopeBuilder *self, bool websocket) {
  PyObject *v[K_COUNT];
  for (int i = 0; i < K_COUNT; i++) v[i] = Py_None;
  v[K_TYPE] = self->values[websocket ? V_WEBSOCKET : V_HTTP];
  v[K_HTTP_VERSION] = self->values[V_V11];
  v[K_SCHEME] = self->values[websocket ? V_WS : V_HTTP];
  v[K_METHOD] = self->values[V_GET];
  v[K_QUERY_STRING] = self->empty_bytes;
  v[K_ROOT_PATH] = self->values[V_EMPTY];
  PyObject *t = PyDict_New();
  for (int i = 0; t != NULL && i < K_COUNT; i++) {
    if (i == (websocket ? K_METHOD : K_SUBPROTOCOLS)) continue; /* the key this kind has not */
    if (PyDict_SetItem(t, self->keys[i], v[i]) < 0) Py_CLEAR(t);
  }
  return t;
}

static PyObject *sb_new(PyTypeObject *tp, PyObject *args, PyObject *kwargs) {
  static char *kwlist[] = {"asgi", NULL};
  PyObject *asgi;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!:_AsgiScopeBuilder", kwlist, &PyDict_Type,
                                   &asgi))
    return NULL;
  ScopeBuilder *self = (ScopeBuilder *)tp->tp_alloc(tp, 0);
  if (self == NULL) return NULL;
  self->asgi = Py_NewRef(asgi);
  for (int i = 0; i < K_COUNT; i++)
    if ((self->keys[i] = PyUnicode_InternFromString(key_names[i])) == NULL) goto fail;
  for (int i = 0; i < V_COUNT; i++)
    if ((self->values[i] = PyUnicode_InternFromString(value_names[i])) == NULL) goto fail;
  if ((self->empty_bytes = PyBytes_FromStringAndSize("", 0)) == NULL) goto fail;
  if ((self->http_template = template_of(self, false)) == NULL ||
      (self->ws_template = template_of(self, true)) == NULL)
    goto fail;
  return (PyObject *)self;
fail:
  Py_DECREF(self);
  return NULL;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* The request path percent-decoded (a '%' not followed by two hex digits
 * stays as it is, '+' is not a space), as UTF-8 with bad bytes replaced. */
static PyObject *decoded_path(struct cm_str uri) {
  if (memchr(uri.buf, '%', uri.len) == NULL)
    return PyUnicode_DecodeUTF8(uri.buf, (Py_ssize_t)uri.len, "replace");
  char small[512] = {0}; /* (read only where written: for gcc's flow analysis) */
  char *buf = uri.len <= sizeof(small) ? small : PyMem_Malloc(uri.len);
  if (buf == NULL) return PyErr_NoMemory();
  size_t n = 0;
  for (size_t i = 0; i < uri.len; i++) {
    int hi, lo;
    if (uri.buf[i] == '%' && i + 2 < uri.len &&
        (hi = hexval(uri.buf[i + 1])) >= 0 && (lo = hexval(uri.buf[i + 2])) >= 0) {
      buf[n++] = (char)(hi * 16 + lo);
      i += 2;
    } else {
      buf[n++] = uri.buf[i];
    }
  }
  PyObject *s = PyUnicode_DecodeUTF8(buf, (Py_ssize_t)n, "replace");
  if (buf != small) PyMem_Free(buf);
  return s;
}

static PyObject *bytes_of(struct cm_str s) {
  return PyBytes_FromStringAndSize(s.buf == NULL ? "" : s.buf, (Py_ssize_t)s.len);
}

/* [name lowercased, value] as bytes, for every header. */
static PyObject *header_list(const struct cm_http_msg *hm) {
  PyObject *list = PyList_New((Py_ssize_t)hm->num_headers);
  if (list == NULL) return NULL;
  for (size_t i = 0; i < hm->num_headers; i++) {
    const struct cm_str *name = &hm->headers[i].name;
    PyObject *lname = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)name->len);
    PyObject *value = lname == NULL ? NULL : bytes_of(hm->headers[i].value);
    PyObject *pair = value == NULL ? NULL : PyList_New(2);
    if (pair == NULL) {
      Py_XDECREF(lname);
      Py_XDECREF(value);
      Py_DECREF(list);
      return NULL;
    }
    char *p = PyBytes_AS_STRING(lname);
    for (size_t j = 0; j < name->len; j++) {
      char c = name->buf[j];
      p[j] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    PyList_SET_ITEM(pair, 0, lname);
    PyList_SET_ITEM(pair, 1, value);
    PyList_SET_ITEM(list, (Py_ssize_t)i, pair);
  }
  return list;
}

/* An address tuple (host, port) as the [host, port] list ASGI shows, or None. */
static PyObject *addr_list(PyObject *addr) {
  if (!PyTuple_Check(addr) || PyTuple_GET_SIZE(addr) < 2) return Py_NewRef(Py_None);
  PyObject *list = PyList_New(2);
  if (list == NULL) return NULL;
  PyList_SET_ITEM(list, 0, Py_NewRef(PyTuple_GET_ITEM(addr, 0)));
  PyList_SET_ITEM(list, 1, Py_NewRef(PyTuple_GET_ITEM(addr, 1)));
  return list;
}

/* The Sec-WebSocket-Protocol values offered (all such headers, comma
 * separated, blanks trimmed) as a list of str. */
static PyObject *subprotocols(const struct cm_http_msg *hm) {
  PyObject *list = PyList_New(0);
  for (size_t i = 0; list != NULL && i < hm->num_headers; i++) {
    const struct cm_str *name = &hm->headers[i].name;
    if (name->len != 22 || strncasecmp(name->buf, "Sec-WebSocket-Protocol", 22) != 0) continue;
    const char *p = hm->headers[i].value.buf, *end = p + hm->headers[i].value.len;
    while (p < end) {
      const char *comma = memchr(p, ',', (size_t)(end - p));
      const char *e = comma != NULL ? comma : end, *b = p;
      while (b < e && (*b == ' ' || *b == '\t')) b++;
      const char *t = e;
      while (t > b && (t[-1] == ' ' || t[-1] == '\t')) t--;
      if (t > b) {
        PyObject *item = PyUnicode_DecodeLatin1(b, (Py_ssize_t)(t - b), NULL);
        if (item == NULL || PyList_Append(list, item) < 0) Py_CLEAR(list);
        Py_XDECREF(item);
        if (list == NULL) break;
      }
      p = comma != NULL ? comma + 1 : end;
    }
  }
  return list;
}

/* scope[key] = v, stealing v (NULL: an error is set). */
static int set_steal(PyObject *scope, PyObject *key, PyObject *v) {
  if (v == NULL) return -1;
  int rc = PyDict_SetItem(scope, key, v);
  Py_DECREF(v);
  return rc;
}

PyObject *cm_py_asgi_scope(PyObject *builder, bool websocket, const struct cm_http_msg *hm,
                           bool tls, PyObject *client, PyObject *server, PyObject *state) {
  ScopeBuilder *self = (ScopeBuilder *)builder;
  PyObject *const *key = self->keys;
  PyObject *scope = PyDict_Copy(websocket ? self->ws_template : self->http_template);
  if (scope == NULL) return NULL;
  /* The template's values stand for GET, HTTP/1.1, no TLS and no query. */
  if (websocket) {
    if ((tls && PyDict_SetItem(scope, key[K_SCHEME], self->values[V_WSS]) < 0) ||
        set_steal(scope, key[K_SUBPROTOCOLS], subprotocols(hm)) < 0)
      goto fail;
  } else {
    if (tls && PyDict_SetItem(scope, key[K_SCHEME], self->values[V_HTTPS]) < 0) goto fail;
    if (hm->method.len == 4 && memcmp(hm->method.buf, "POST", 4) == 0) {
      if (PyDict_SetItem(scope, key[K_METHOD], self->values[V_POST]) < 0) goto fail;
    } else if (!(hm->method.len == 3 && memcmp(hm->method.buf, "GET", 3) == 0)) {
      PyObject *m = PyUnicode_DecodeLatin1(hm->method.buf, (Py_ssize_t)hm->method.len, NULL);
      if (set_steal(scope, key[K_METHOD], m) < 0) goto fail;
    }
  }
  if (hm->minor_version == 0 && PyDict_SetItem(scope, key[K_HTTP_VERSION], self->values[V_V10]) < 0)
    goto fail;
  if (set_steal(scope, key[K_ASGI], PyDict_Copy(self->asgi)) < 0 ||
      set_steal(scope, key[K_PATH], decoded_path(hm->uri)) < 0 ||
      set_steal(scope, key[K_RAW_PATH], bytes_of(hm->uri)) < 0 ||
      (hm->query.len > 0 && set_steal(scope, key[K_QUERY_STRING], bytes_of(hm->query)) < 0) ||
      set_steal(scope, key[K_HEADERS], header_list(hm)) < 0 ||
      set_steal(scope, key[K_CLIENT], addr_list(client)) < 0 ||
      set_steal(scope, key[K_SERVER], addr_list(server)) < 0 ||
      set_steal(scope, key[K_STATE], PyDict_Check(state) ? PyDict_Copy(state) : Py_NewRef(state)) < 0)
    goto fail;
  return scope;
fail:
  Py_DECREF(scope);
  return NULL;
}

static PyObject *sb_build(PyObject *op, PyObject *const *argv, Py_ssize_t nargs,
                          PyObject *kwnames, bool websocket) {
  static const char *const names[] = {"message", "tls", "client", "server", "state", NULL};
  PyObject *args[5];
  if (cm_py_bind(websocket ? "websocket" : "http", argv, nargs, kwnames, names, 5, 5, args) < 0)
    return NULL;
  struct cm_http_msg *hm = cm_py_http_message_get(args[0]);
  if (hm == NULL) {
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "the HttpMessage has expired");
    return NULL;
  }
  int tls = PyObject_IsTrue(args[1]);
  if (tls < 0) return NULL;
  return cm_py_asgi_scope(op, websocket, hm, tls != 0, args[2], args[3], args[4]);
}

static PyObject *sb_http(PyObject *op, PyObject *const *argv, Py_ssize_t nargs, PyObject *kwnames) {
  return sb_build(op, argv, nargs, kwnames, false);
}

static PyObject *sb_websocket(PyObject *op, PyObject *const *argv, Py_ssize_t nargs,
                              PyObject *kwnames) {
  return sb_build(op, argv, nargs, kwnames, true);
}

static PyMethodDef sb_methods[] = {
    {"http", CM_PY_FASTCALL_KW(sb_http),
     "http($self, message, tls, client, server, state)\n--\n\n"
     "The ASGI 'http' scope of a request (an HttpMessage valid now): a new dict.\n"
     "client and server are (host, port) tuples or None; state is copied if a dict."},
    {"websocket", CM_PY_FASTCALL_KW(sb_websocket),
     "websocket($self, message, tls, client, server, state)\n--\n\n"
     "The ASGI 'websocket' scope of an upgrade request, as http() (with subprotocols)."},
    {NULL, NULL, 0, NULL}};

static PyType_Slot sb_slots[] = {
    {Py_tp_new, sb_new},
    {Py_tp_dealloc, sb_dealloc},
    {Py_tp_traverse, sb_traverse},
    {Py_tp_clear, sb_clear},
    {Py_tp_methods, sb_methods},
    {Py_tp_doc, "_AsgiScopeBuilder(asgi)\n--\n\n"
                "Builds ASGI HTTP and WebSocket scopes from HttpMessages (used by cymongoose.asgi)."},
    {0, NULL}};

static PyType_Spec sb_spec = {
    .name = "cymongoose._mongoose._AsgiScopeBuilder",
    .basicsize = sizeof(ScopeBuilder),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = sb_slots,
};

int cm_py_asgi_exec(PyObject *m) {
  PyObject *tp = PyType_FromModuleAndSpec(m, &sb_spec, NULL);
  if (tp == NULL) return -1;
  int rc = PyModule_AddType(m, (PyTypeObject *)tp);
  Py_DECREF(tp);
  if (rc < 0 || cm_py_asgi_channel_exec(m) < 0) return -1;
  return cm_py_asgi_core_exec(m);
}
