/*
 * The per-request work of cymongoose.wsgi done in C:
 *
 * _WsgiEnvironBuilder builds the PEP 3333 environ dict of a request
 * straight from the C message.  The constant entries come from a template
 * dict copied per request (one fast copy); the per-request keys are
 * interned once, per server; strings from the wire (path, query, header
 * values) are decoded as latin-1, as WSGI wants.
 *
 * _WsgiStart is the start_response callable of one request: it keeps the
 * status code and the application's headers minus those the server owns
 * (hop-by-hop fields and Content-Length), for the loop thread to write.
 * A second call needs exc_info (PEP 3333): it replaces the head while the
 * response's head has not been sent (response.streaming false), else it
 * re-raises the application's error.
 */
#include <arpa/inet.h>
#include <string.h>

#include "args.h"
#include "module.h"

enum {
  K_REQUEST_METHOD,
  K_PATH_INFO,
  K_QUERY_STRING,
  K_SERVER_NAME,
  K_SERVER_PORT,
  K_SERVER_PROTOCOL,
  K_REMOTE_ADDR,
  K_REMOTE_PORT,
  K_CONTENT_LENGTH,
  K_CONTENT_TYPE,
  K_INPUT,
  K_ERRORS,
  K_COUNT
};

static const char *const key_names[K_COUNT] = {
    "REQUEST_METHOD", "PATH_INFO",    "QUERY_STRING",   "SERVER_NAME",
    "SERVER_PORT",    "SERVER_PROTOCOL", "REMOTE_ADDR", "REMOTE_PORT",
    "CONTENT_LENGTH", "CONTENT_TYPE", "wsgi.input",     "wsgi.errors"};

enum { V_EMPTY, V_GET, V_POST, V_HEAD, V_HTTP11, V_HTTP10, V_COUNT };
static const char *const value_names[V_COUNT] = {"", "GET", "POST", "HEAD", "HTTP/1.1",
                                                 "HTTP/1.0"};

typedef struct {
  PyObject_HEAD
  PyObject *template; /* the constant entries */
  PyObject *bytes_io; /* io.BytesIO: wsgi.input of a body read whole */
  PyObject *keys[K_COUNT];
  PyObject *values[V_COUNT];
  PyObject *stderr_name; /* "stderr", for wsgi.errors */
} EnvironBuilder;

static int eb_traverse(PyObject *op, visitproc visit, void *arg) {
  EnvironBuilder *self = (EnvironBuilder *)op;
  Py_VISIT(Py_TYPE(op));
  Py_VISIT(self->template);
  Py_VISIT(self->bytes_io);
  return 0;
}

static int eb_clear(PyObject *op) {
  EnvironBuilder *self = (EnvironBuilder *)op;
  Py_CLEAR(self->template);
  Py_CLEAR(self->bytes_io);
  for (int i = 0; i < K_COUNT; i++) Py_CLEAR(self->keys[i]);
  for (int i = 0; i < V_COUNT; i++) Py_CLEAR(self->values[i]);
  Py_CLEAR(self->stderr_name);
  return 0;
}

static void eb_dealloc(PyObject *op) {
  PyTypeObject *tp = Py_TYPE(op);
  PyObject_GC_UnTrack(op);
  eb_clear(op);
  tp->tp_free(op);
  Py_DECREF(tp);
}

static PyObject *eb_new(PyTypeObject *tp, PyObject *args, PyObject *kwargs) {
  static char *kwlist[] = {"template", "bytes_io", NULL};
  PyObject *template, *bytes_io;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!O:_WsgiEnvironBuilder", kwlist, &PyDict_Type,
                                   &template, &bytes_io))
    return NULL;
  EnvironBuilder *self = (EnvironBuilder *)tp->tp_alloc(tp, 0);
  if (self == NULL) return NULL;
  self->template = PyDict_Copy(template); /* later changes to the caller's do not count */
  self->bytes_io = Py_NewRef(bytes_io);
  if (self->template == NULL) goto fail;
  for (int i = 0; i < K_COUNT; i++)
    if ((self->keys[i] = PyUnicode_InternFromString(key_names[i])) == NULL) goto fail;
  for (int i = 0; i < V_COUNT; i++)
    if ((self->values[i] = PyUnicode_InternFromString(value_names[i])) == NULL) goto fail;
  if ((self->stderr_name = PyUnicode_InternFromString("stderr")) == NULL) goto fail;
  return (PyObject *)self;
fail:
  Py_DECREF(self);
  return NULL;
}

static PyObject *latin1(struct cm_str s) {
  return PyUnicode_DecodeLatin1(s.buf == NULL ? "" : s.buf, (Py_ssize_t)s.len, NULL);
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* PATH_INFO: the raw path percent-decoded to bytes (a '%' not followed by
 * two hex digits stays; '+' is not a space), as latin-1. */
static PyObject *path_info(struct cm_str uri) {
  if (uri.len == 0 || memchr(uri.buf, '%', uri.len) == NULL) return latin1(uri);
  char small[512];
  char *buf = uri.len <= sizeof(small) ? small : PyMem_Malloc(uri.len);
  if (buf == NULL) return PyErr_NoMemory();
  size_t n = 0;
  for (size_t i = 0; i < uri.len; i++) {
    int hi, lo;
    if (uri.buf[i] == '%' && i + 2 < uri.len && (hi = hexval(uri.buf[i + 1])) >= 0 &&
        (lo = hexval(uri.buf[i + 2])) >= 0) {
      buf[n++] = (char)(hi * 16 + lo);
      i += 2;
    } else {
      buf[n++] = uri.buf[i];
    }
  }
  PyObject *s = PyUnicode_DecodeLatin1(buf, (Py_ssize_t)n, NULL);
  if (buf != small) PyMem_Free(buf);
  return s;
}

/* Sets env[key] = value, consuming value (NULL: an error already set). */
static int put(PyObject *env, PyObject *key, PyObject *value) {
  if (value == NULL) return -1;
  int rc = PyDict_SetItem(env, key, value);
  Py_DECREF(value);
  return rc;
}

/* "HTTP_" + the header name upper-cased with '-' as '_' (a name is a token:
 * ASCII). */
static PyObject *cgi_key(struct cm_str name) {
  PyObject *key = PyUnicode_New((Py_ssize_t)name.len + 5, 127);
  if (key == NULL) return NULL;
  Py_UCS1 *p = PyUnicode_1BYTE_DATA(key);
  memcpy(p, "HTTP_", 5);
  for (size_t i = 0; i < name.len; i++) {
    unsigned char c = (unsigned char)name.buf[i];
    if (c >= 'a' && c <= 'z') c = (unsigned char)(c - 32);
    else if (c == '-') c = '_';
    else if (c >= 128) c = '_'; /* never in a token; keeps the string ASCII */
    p[i + 5] = c;
  }
  return key;
}

static bool name_is(struct cm_str name, const char *lower) {
  size_t n = strlen(lower);
  if (name.len != n) return false;
  for (size_t i = 0; i < n; i++) {
    char c = name.buf[i];
    if (c >= 'A' && c <= 'Z') c = (char)(c + 32);
    if (c != lower[i]) return false;
  }
  return true;
}

static int put_headers(EnvironBuilder *self, PyObject *env, const struct cm_http_msg *hm) {
  for (size_t i = 0; i < hm->num_headers; i++) {
    const struct cm_http_header *h = &hm->headers[i];
    if (name_is(h->name, "content-length")) continue; /* CONTENT_LENGTH is ours */
    if (name_is(h->name, "content-type")) {
      if (put(env, self->keys[K_CONTENT_TYPE], latin1(h->value)) < 0) return -1;
      continue;
    }
    PyObject *key = cgi_key(h->name);
    if (key == NULL) return -1;
    PyObject *value = latin1(h->value);
    PyObject *old = value == NULL ? NULL : PyDict_GetItemWithError(env, key);
    if (old != NULL) { /* a repeated field: the values joined with ',' */
      PyObject *joined = PyUnicode_FromFormat("%U,%U", old, value);
      Py_SETREF(value, joined);
    }
    int rc = value == NULL || PyErr_Occurred() ? -1 : PyDict_SetItem(env, key, value);
    Py_DECREF(key);
    Py_XDECREF(value);
    if (rc < 0) return -1;
  }
  return 0;
}

static int put_addr(EnvironBuilder *self, PyObject *env, const struct cm_addr *a, int k_host,
                    int k_port) {
  char ip[INET6_ADDRSTRLEN];
  if (inet_ntop(a->is_ip6 ? AF_INET6 : AF_INET, a->ip, ip, sizeof(ip)) == NULL) ip[0] = '\0';
  if (put(env, self->keys[k_host], PyUnicode_FromString(ip)) < 0) return -1;
  return put(env, self->keys[k_port], PyUnicode_FromFormat("%u", (unsigned)a->port));
}

static PyObject *method_of(EnvironBuilder *self, struct cm_str m) {
  if (m.len == 3 && memcmp(m.buf, "GET", 3) == 0) return Py_NewRef(self->values[V_GET]);
  if (m.len == 4 && memcmp(m.buf, "POST", 4) == 0) return Py_NewRef(self->values[V_POST]);
  if (m.len == 4 && memcmp(m.buf, "HEAD", 4) == 0) return Py_NewRef(self->values[V_HEAD]);
  return latin1(m);
}

static PyObject *proto_of(EnvironBuilder *self, struct cm_str p) {
  if (p.len == 0 || (p.len == 8 && memcmp(p.buf, "HTTP/1.1", 8) == 0))
    return Py_NewRef(self->values[V_HTTP11]);
  if (p.len == 8 && memcmp(p.buf, "HTTP/1.0", 8) == 0) return Py_NewRef(self->values[V_HTTP10]);
  return latin1(p);
}

static PyObject *eb_environ(PyObject *op, PyObject *const *argv, Py_ssize_t nargs,
                            PyObject *kwnames) {
  EnvironBuilder *self = (EnvironBuilder *)op;
  static const char *const names[] = {"conn", "message", "wsgi_input", "content_length", NULL};
  PyObject *args[4];
  if (cm_py_bind("environ", argv, nargs, kwnames, names, 4, 2, args) < 0) return NULL;
  struct cm_conn *c = cm_py_conn_get(args[0]);
  if (c == NULL) return NULL;
  struct cm_http_msg *hm = cm_py_http_message_get(args[1]);
  if (hm == NULL) {
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "the HttpMessage has expired");
    return NULL;
  }
  PyObject *input = args[2] != NULL && args[2] != Py_None ? args[2] : NULL;
  PyObject *env = PyDict_Copy(self->template);
  if (env == NULL) return NULL;
  PyObject *errors = PySys_GetObject("stderr"); /* borrowed; may be None or missing */
  if (put(env, self->keys[K_REQUEST_METHOD], method_of(self, hm->method)) < 0 ||
      put(env, self->keys[K_PATH_INFO], path_info(hm->uri)) < 0 ||
      put(env, self->keys[K_QUERY_STRING],
          hm->query.len == 0 ? Py_NewRef(self->values[V_EMPTY]) : latin1(hm->query)) < 0 ||
      put(env, self->keys[K_SERVER_PROTOCOL], proto_of(self, hm->proto)) < 0 ||
      put_addr(self, env, cm_conn_local_addr(c), K_SERVER_NAME, K_SERVER_PORT) < 0 ||
      put_addr(self, env, &c->rem, K_REMOTE_ADDR, K_REMOTE_PORT) < 0 ||
      put(env, self->keys[K_ERRORS], Py_NewRef(errors != NULL ? errors : Py_None)) < 0)
    goto fail;
  if (input == NULL) {
    struct cm_str b = hm->body;
    PyObject *body = PyBytes_FromStringAndSize(b.buf == NULL ? "" : b.buf, (Py_ssize_t)b.len);
    PyObject *bio = body == NULL ? NULL : PyObject_CallOneArg(self->bytes_io, body);
    Py_XDECREF(body);
    if (put(env, self->keys[K_INPUT], bio) < 0 ||
        put(env, self->keys[K_CONTENT_LENGTH],
            b.len == 0 ? Py_NewRef(self->values[V_EMPTY])
                       : PyUnicode_FromFormat("%zu", b.len)) < 0)
      goto fail;
  } else {
    PyObject *length = args[3] != NULL && args[3] != Py_None ? args[3] : self->values[V_EMPTY];
    if (PyDict_SetItem(env, self->keys[K_INPUT], input) < 0 ||
        PyDict_SetItem(env, self->keys[K_CONTENT_LENGTH], length) < 0)
      goto fail;
  }
  if (put_headers(self, env, hm) < 0) goto fail;
  return env;
fail:
  Py_DECREF(env);
  return NULL;
}

static PyMethodDef eb_methods[] = {
    {"environ", CM_PY_FASTCALL_KW(eb_environ),
     "environ($self, conn, message, wsgi_input=None, content_length=None)\n--\n\n"
     "The WSGI environ of a request (an HttpMessage valid now, on conn): a new dict, the\n"
     "template's entries plus the request's.  Without wsgi_input the message's body is\n"
     "wrapped in bytes_io; with it, CONTENT_LENGTH is content_length (a str, or '')."},
    {NULL, NULL, 0, NULL}};

static PyType_Slot eb_slots[] = {
    {Py_tp_new, eb_new},
    {Py_tp_dealloc, eb_dealloc},
    {Py_tp_traverse, eb_traverse},
    {Py_tp_clear, eb_clear},
    {Py_tp_methods, eb_methods},
    {Py_tp_doc, "_WsgiEnvironBuilder(template, bytes_io)\n--\n\n"
                "Builds WSGI environ dicts from HttpMessages (used by cymongoose.wsgi)."},
    {0, NULL}};

static PyType_Spec eb_spec = {
    .name = "cymongoose._mongoose._WsgiEnvironBuilder",
    .basicsize = sizeof(EnvironBuilder),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = eb_slots,
};

/* ------------------------------------------------------------ _WsgiStart */

typedef struct {
  PyObject_HEAD
  PyObject *response; /* its write attribute is what start_response returns */
  PyObject *status;   /* int, or NULL until start_response is called */
  PyObject *headers;  /* list of the kept (name, value) items, or NULL */
} WsgiStart;

static int ws_traverse(PyObject *op, visitproc visit, void *arg) {
  WsgiStart *self = (WsgiStart *)op;
  Py_VISIT(Py_TYPE(op));
  Py_VISIT(self->response);
  Py_VISIT(self->headers);
  return 0;
}

static int ws_clear(PyObject *op) {
  WsgiStart *self = (WsgiStart *)op;
  Py_CLEAR(self->response);
  Py_CLEAR(self->status);
  Py_CLEAR(self->headers);
  return 0;
}

static void ws_dealloc(PyObject *op) {
  PyTypeObject *tp = Py_TYPE(op);
  PyObject_GC_UnTrack(op);
  ws_clear(op);
  tp->tp_free(op);
  Py_DECREF(tp);
}

static PyObject *ws_new(PyTypeObject *tp, PyObject *args, PyObject *kwargs) {
  static char *kwlist[] = {"response", NULL};
  PyObject *response;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O:_WsgiStart", kwlist, &response)) return NULL;
  WsgiStart *self = (WsgiStart *)tp->tp_alloc(tp, 0);
  if (self == NULL) return NULL;
  self->response = Py_NewRef(response);
  return (PyObject *)self;
}

/* Fields the server writes itself, never the application's (lowercase). */
static const char *const server_fields[] = {
    "connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
    "proxy-authenticate", "proxy-authorization", "content-length", NULL};

static bool server_field(const char *name, Py_ssize_t len) {
  for (const char *const *f = server_fields; *f != NULL; f++)
    if (name_is((struct cm_str){name, (size_t)len}, *f)) return true;
  return false;
}

/* The code of a status line such as "200 OK": its first word, digits. */
static PyObject *status_code(PyObject *status) {
  if (!PyUnicode_Check(status)) {
    PyErr_Format(PyExc_TypeError, "status must be a str, not %.100s", Py_TYPE(status)->tp_name);
    return NULL;
  }
  Py_ssize_t n;
  const char *s = PyUnicode_AsUTF8AndSize(status, &n);
  if (s == NULL) return NULL;
  Py_ssize_t i = 0;
  while (i < n && (s[i] == ' ' || s[i] == '\t')) i++;
  long code = 0;
  Py_ssize_t digits = 0;
  for (; i < n && s[i] >= '0' && s[i] <= '9' && digits < 4; i++, digits++)
    code = code * 10 + (s[i] - '0');
  if (digits == 0 || digits > 3 || (i < n && s[i] != ' ' && s[i] != '\t')) {
    PyErr_Format(PyExc_ValueError, "bad WSGI status %R: want '200 OK' and the like", status);
    return NULL;
  }
  return PyLong_FromLong(code);
}

/* The (name, value) items of headers the server does not own, as a list. */
static PyObject *kept_headers(PyObject *headers) {
  PyObject *seq = PySequence_Fast(headers, "response headers must be a list of (name, value)");
  if (seq == NULL) return NULL;
  Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
  PyObject *kept = PyList_New(0);
  for (Py_ssize_t i = 0; kept != NULL && i < n; i++) {
    PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
    PyObject *name = PyTuple_Check(item) && PyTuple_GET_SIZE(item) == 2 ? PyTuple_GET_ITEM(item, 0)
                     : PyList_Check(item) && PyList_GET_SIZE(item) == 2  ? PyList_GET_ITEM(item, 0)
                                                                         : NULL;
    if (name == NULL || !PyUnicode_Check(name)) {
      PyErr_Format(PyExc_TypeError, "response header %R is not a (str, str) pair", item);
      Py_CLEAR(kept);
      break;
    }
    Py_ssize_t len;
    const char *s = PyUnicode_AsUTF8AndSize(name, &len);
    if (s == NULL || (!server_field(s, len) && PyList_Append(kept, item) < 0)) Py_CLEAR(kept);
  }
  Py_DECREF(seq);
  return kept;
}

static PyObject *ws_call(PyObject *op, PyObject *args, PyObject *kwargs) {
  WsgiStart *self = (WsgiStart *)op;
  static char *kwlist[] = {"status", "headers", "exc_info", NULL};
  PyObject *status, *headers, *exc_info = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO|O:start_response", kwlist, &status,
                                   &headers, &exc_info))
    return NULL;
  if (exc_info == Py_None && self->status != NULL) {
    PyErr_SetString(PyExc_RuntimeError,
                    "start_response() called again without exc_info (PEP 3333)");
    return NULL;
  }
  int sent = 0;
  if (exc_info != Py_None && self->status != NULL) {
    PyObject *streaming = PyObject_GetAttrString(self->response, "streaming");
    sent = streaming == NULL ? -1 : PyObject_IsTrue(streaming);
    Py_XDECREF(streaming);
    if (sent < 0) return NULL;
  }
  if (sent) {
    /* PEP 3333: the head is out, too late to change the response: re-raise */
    PyObject *value = PyTuple_Check(exc_info) && PyTuple_GET_SIZE(exc_info) == 3
                          ? PyTuple_GET_ITEM(exc_info, 1)
                          : NULL;
    if (value == NULL || !PyExceptionInstance_Check(value)) {
      PyErr_SetString(PyExc_TypeError, "exc_info must be a sys.exc_info() triple");
      return NULL;
    }
    PyObject *tb = PyTuple_GET_ITEM(exc_info, 2);
    if (tb != Py_None && PyException_SetTraceback(value, tb) < 0) return NULL;
    PyErr_SetObject((PyObject *)Py_TYPE(value), value);
    return NULL;
  }
  PyObject *code = status_code(status);
  PyObject *kept = code == NULL ? NULL : kept_headers(headers);
  if (kept == NULL) {
    Py_XDECREF(code);
    return NULL;
  }
  Py_XSETREF(self->status, code);
  Py_XSETREF(self->headers, kept);
  return PyObject_GetAttrString(self->response, "write"); /* the legacy write() */
}

static PyObject *ws_get_status(PyObject *op, void *closure) {
  (void)closure;
  WsgiStart *self = (WsgiStart *)op;
  return Py_NewRef(self->status != NULL ? self->status : Py_None);
}

static PyObject *ws_get_headers(PyObject *op, void *closure) {
  (void)closure;
  WsgiStart *self = (WsgiStart *)op;
  return Py_NewRef(self->headers != NULL ? self->headers : Py_None);
}

static PyGetSetDef ws_getset[] = {
    {"status", ws_get_status, NULL, "The status code, None until start_response was called.", NULL},
    {"headers", ws_get_headers, NULL,
     "The application's (name, value) headers the server does not own (a list), or None.", NULL},
    {NULL, NULL, NULL, NULL, NULL}};

static PyType_Slot ws_slots[] = {
    {Py_tp_new, ws_new},
    {Py_tp_dealloc, ws_dealloc},
    {Py_tp_traverse, ws_traverse},
    {Py_tp_clear, ws_clear},
    {Py_tp_call, ws_call},
    {Py_tp_getset, ws_getset},
    {Py_tp_doc, "_WsgiStart(response)\n--\n\n"
                "start_response(status, headers, exc_info=None) of one request (used by\n"
                "cymongoose.wsgi); returns response.write."},
    {0, NULL}};

static PyType_Spec ws_spec = {
    .name = "cymongoose._mongoose._WsgiStart",
    .basicsize = sizeof(WsgiStart),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = ws_slots,
};

int cm_py_wsgi_exec(PyObject *m) {
  PyType_Spec *specs[] = {&eb_spec, &ws_spec};
  for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
    PyObject *tp = PyType_FromModuleAndSpec(m, specs[i], NULL);
    if (tp == NULL) return -1;
    int rc = PyModule_AddType(m, (PyTypeObject *)tp);
    Py_DECREF(tp);
    if (rc < 0) return -1;
  }
  return 0;
}
