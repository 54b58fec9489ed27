/*
 * Message views handed to Python handlers: HttpMessage, WsMessage, and
 * MqttMessage (its type lives in mqtt_message.c).  A view points at the C message only while the
 * handler runs; cm_py_message_invalidate() cuts it loose afterwards, so a view
 * kept by the application reads as empty instead of touching freed memory.
 */
#include <strings.h>

#include "args.h"
#include "module.h"

/* ------------------------------------------------------------ helpers */

static PyObject *str_or_empty(struct cm_str s) {
  /* Non-UTF-8 bytes on the wire must not make a property raise. */
  return PyUnicode_DecodeUTF8(s.buf == NULL ? "" : s.buf, (Py_ssize_t)s.len, "surrogateescape");
}

static PyObject *bytes_of(struct cm_str s) {
  return PyBytes_FromStringAndSize(s.buf == NULL ? "" : s.buf, (Py_ssize_t)s.len);
}

/* Accepts str (UTF-8) or bytes for a name argument. */
static int arg_bytes(PyObject *o, const char **p, Py_ssize_t *n) {
  if (PyUnicode_Check(o)) {
    *p = PyUnicode_AsUTF8AndSize(o, n);
    return *p == NULL ? -1 : 0;
  }
  if (PyBytes_Check(o)) {
    *p = PyBytes_AS_STRING(o);
    *n = PyBytes_GET_SIZE(o);
    return 0;
  }
  PyErr_Format(PyExc_TypeError, "expected str or bytes, not %.100s", Py_TYPE(o)->tp_name);
  return -1;
}

/* --------------------------------------------------------- HttpMessage */

typedef struct {
  PyObject_HEAD
  struct cm_http_msg *hm; /* NULL once invalidated */
} HttpMessageObject;

static struct cm_str http_field(HttpMessageObject *self, size_t offset) {
  struct cm_str empty = {NULL, 0};
  if (self->hm == NULL) return empty;
  return *(struct cm_str *)((char *)self->hm + offset);
}

static PyObject *hm_get_str(PyObject *self, void *closure) {
  return str_or_empty(http_field((HttpMessageObject *)self, (size_t)closure));
}

static PyObject *hm_body_bytes(PyObject *self, void *closure) {
  (void)closure;
  return bytes_of(http_field((HttpMessageObject *)self, offsetof(struct cm_http_msg, body)));
}

static PyObject *hm_body_text(PyObject *self, void *closure) {
  (void)closure;
  struct cm_str b = http_field((HttpMessageObject *)self, offsetof(struct cm_http_msg, body));
  return PyUnicode_DecodeUTF8(b.buf == NULL ? "" : b.buf, (Py_ssize_t)b.len, "replace");
}

/* Finds header name (case-insensitive) without needing a NUL terminator. */
static struct cm_str *find_header(struct cm_http_msg *hm, const char *name, Py_ssize_t n) {
  for (size_t i = 0; i < hm->num_headers; i++) {
    struct cm_str *h = &hm->headers[i].name;
    if (h->len == (size_t)n && strncasecmp(h->buf, name, (size_t)n) == 0)
      return &hm->headers[i].value;
  }
  return NULL;
}

static PyObject *hm_header(PyObject *op, PyObject *const *argv, Py_ssize_t nargs,
                           PyObject *kwnames) {
  HttpMessageObject *self = (HttpMessageObject *)op;
  static const char *const names[] = {"name", "default", NULL};
  PyObject *args[2];
  if (cm_py_bind("header", argv, nargs, kwnames, names, 2, 1, args) < 0) return NULL;
  PyObject *dflt = args[1] != NULL ? args[1] : Py_None;
  const char *name;
  Py_ssize_t n;
  if (arg_bytes(args[0], &name, &n) < 0) return NULL;
  struct cm_str *v = self->hm == NULL ? NULL : find_header(self->hm, name, n);
  if (v == NULL) return Py_NewRef(dflt);
  return str_or_empty(*v);
}

static PyObject *hm_headers(PyObject *op, PyObject *unused) {
  (void)unused;
  HttpMessageObject *self = (HttpMessageObject *)op;
  size_t n = self->hm == NULL ? 0 : self->hm->num_headers;
  PyObject *list = PyList_New((Py_ssize_t)n);
  if (list == NULL) return NULL;
  for (size_t i = 0; i < n; i++) {
    PyObject *t = Py_BuildValue("(NN)", str_or_empty(self->hm->headers[i].name),
                                str_or_empty(self->hm->headers[i].value));
    if (t == NULL) {
      Py_DECREF(list);
      return NULL;
    }
    PyList_SET_ITEM(list, (Py_ssize_t)i, t);
  }
  return list;
}

/* Decoded value of a form variable in buf, or None. */
static PyObject *decoded_var(struct cm_str buf, PyObject *name_obj) {
  const char *name;
  Py_ssize_t n;
  if (arg_bytes(name_obj, &name, &n) < 0) return NULL;
  if (buf.buf == NULL) Py_RETURN_NONE;
  char cname[256];
  if ((size_t)n >= sizeof(cname)) Py_RETURN_NONE;
  memcpy(cname, name, (size_t)n);
  cname[n] = '\0';
  /* A decoded value is never longer than its encoded form. */
  size_t cap = buf.len + 1;
  char small[512], *dst = cap <= sizeof(small) ? small : PyMem_Malloc(cap);
  if (dst == NULL) return PyErr_NoMemory();
  long len = cm_http_get_var(buf, cname, dst, cap);
  PyObject *r = len < 0 ? Py_NewRef(Py_None)
                        : PyUnicode_DecodeUTF8(dst, len, "surrogateescape");
  if (dst != small) PyMem_Free(dst);
  return r;
}

static PyObject *hm_query_var(PyObject *op, PyObject *name) {
  HttpMessageObject *self = (HttpMessageObject *)op;
  struct cm_str q = http_field(self, offsetof(struct cm_http_msg, query));
  if (self->hm == NULL) {
    const char *p;
    Py_ssize_t n;
    if (arg_bytes(name, &p, &n) < 0) return NULL;
    Py_RETURN_NONE;
  }
  return decoded_var(q, name);
}

static PyObject *hm_status(PyObject *op, PyObject *unused) {
  (void)unused;
  HttpMessageObject *self = (HttpMessageObject *)op;
  /* As the original (mg_http_status): the status of a response, 0 for a
   * request; None only once the view has expired. */
  if (self->hm == NULL) Py_RETURN_NONE;
  return PyLong_FromLong(self->hm->status);
}

static PyObject *hm_header_var(PyObject *op, PyObject *const *argv, Py_ssize_t nargs,
                               PyObject *kwnames) {
  HttpMessageObject *self = (HttpMessageObject *)op;
  static const char *const names[] = {"header_name", "var_name", NULL};
  PyObject *args[2];
  if (cm_py_bind("header_var", argv, nargs, kwnames, names, 2, 2, args) < 0) return NULL;
  const char *hname, *var;
  Py_ssize_t hn, vn;
  if (arg_bytes(args[0], &hname, &hn) < 0 || arg_bytes(args[1], &var, &vn) < 0) return NULL;
  struct cm_str *v = self->hm == NULL ? NULL : find_header(self->hm, hname, hn);
  if (v == NULL) Py_RETURN_NONE;
  struct cm_str r = cm_http_get_header_var(*v, cm_str_n(var, (size_t)vn));
  if (r.buf == NULL) Py_RETURN_NONE;
  return str_or_empty(r);
}

/* RFC 7617 leaves the charset to the client: browsers send UTF-8, others
 * (python-requests, curl with a latin-1 locale) ISO-8859-1.  UTF-8 when the
 * bytes are valid UTF-8, else Latin-1, which decodes any bytes. */
static PyObject *credential_str(const char *s) {
  Py_ssize_t n = (Py_ssize_t)strlen(s);
  PyObject *r = PyUnicode_DecodeUTF8(s, n, "strict");
  if (r == NULL && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
    PyErr_Clear();
    r = PyUnicode_DecodeLatin1(s, n, "strict");
  }
  return r;
}

static PyObject *hm_basic_auth(PyObject *op, PyObject *unused) {
  (void)unused;
  HttpMessageObject *self = (HttpMessageObject *)op;
  char user[256], pass[256];
  if (self->hm == NULL || !cm_http_basic_creds(self->hm, user, sizeof(user), pass, sizeof(pass)))
    Py_RETURN_NONE;
  return Py_BuildValue("(NN)", credential_str(user), credential_str(pass));
}

static int hm_bool(PyObject *op) { return ((HttpMessageObject *)op)->hm != NULL; }

static PyObject *hm_repr(PyObject *op) {
  HttpMessageObject *self = (HttpMessageObject *)op;
  if (self->hm == NULL) return PyUnicode_FromString("<HttpMessage (expired)>");
  if (self->hm->status != 0) return PyUnicode_FromFormat("<HttpMessage %d>", self->hm->status);
  /* PyUnicode_FromFormat has no "%.*s" before Python 3.12: build the parts. */
  PyObject *method = str_or_empty(self->hm->method), *uri = str_or_empty(self->hm->uri);
  PyObject *r = method != NULL && uri != NULL
                    ? PyUnicode_FromFormat("<HttpMessage %U %U>", method, uri)
                    : NULL;
  Py_XDECREF(method);
  Py_XDECREF(uri);
  return r;
}

static void hm_dealloc(PyObject *op) {
  PyTypeObject *tp = Py_TYPE(op);
  tp->tp_free(op);
  Py_DECREF(tp);
}

#define HM_STR(name, field, doc) \
  {name, hm_get_str, NULL, doc, (void *)offsetof(struct cm_http_msg, field)}

static PyGetSetDef hm_getset[] = {
    HM_STR("method", method, "Request method, e.g. 'GET' ('' for responses)."),
    HM_STR("uri", uri,
           "Request path as sent (percent-encoded), without the query string; for routing. "
           "Access checks must use path."),
    HM_STR("path", path,
           "Request path percent-decoded and normalised ('.', '..' and '//' resolved): what "
           "serve_dir serves, and what access checks must compare against."),
    HM_STR("target", target, "Request-target exactly as sent (absolute-form included), with the query."),
    HM_STR("query", query, "Query string without '?'."),
    HM_STR("proto", proto, "Protocol, e.g. 'HTTP/1.1'."),
    {"body_bytes", hm_body_bytes, NULL, "Body as bytes.", NULL},
    {"body_text", hm_body_text, NULL, "Body decoded as UTF-8 (invalid bytes replaced).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

CM_PY_KW1(hm_query_var, "query_var", "name")

static PyMethodDef hm_methods[] = {
    {"header", CM_PY_FASTCALL_KW(hm_header),
     "header($self, /, name, default=None)\n--\n\nValue of a header (case-insensitive)."},
    {"headers", hm_headers, METH_NOARGS, "headers($self)\n--\n\nList of (name, value) in order."},
    {"query_var", CM_PY_FASTCALL_KW(hm_query_var_kw), "query_var($self, /, name)\n--\n\nDecoded query variable or None."},
    {"status", hm_status, METH_NOARGS, "status($self)\n--\n\nThe status code of a response, 0 for a request (as the original); None once expired."},
    {"basic_auth", hm_basic_auth, METH_NOARGS,
     "basic_auth($self)\n--\n\n(user, password) from a Basic Authorization header, or None."},
    {"header_var", CM_PY_FASTCALL_KW(hm_header_var),
     "header_var($self, /, header_name, var_name)\n--\n\nThe parameter var_name of header header_name, e.g. charset of Content-Type, or None."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot hm_slots[] = {
    {Py_tp_dealloc, hm_dealloc},
    {Py_tp_getset, hm_getset},
    {Py_tp_methods, hm_methods},
    {Py_nb_bool, hm_bool},
    {Py_tp_repr, hm_repr},
    {Py_tp_doc, "An HTTP request or response, valid only during the handler call."},
    {0, NULL},
};

static PyType_Spec hm_spec = {
    .name = "cymongoose._mongoose.HttpMessage",
    .basicsize = sizeof(HttpMessageObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = hm_slots,
};

static PyObject *http_message_new(cm_py_state *st, struct cm_http_msg *hm) {
  HttpMessageObject *o = (HttpMessageObject *)st->spare_http_message;
  if (o != NULL) {
    st->spare_http_message = NULL; /* its reference is now the caller's */
    o->hm = hm;
    return (PyObject *)o;
  }
  o = PyObject_New(HttpMessageObject, st->http_message_type);
  if (o == NULL) return NULL;
  o->hm = hm;
  return (PyObject *)o;
}

/* ----------------------------------------------------------- WsMessage */

typedef struct {
  PyObject_HEAD
  struct cm_ws_msg *wm; /* NULL once invalidated */
} WsMessageObject;

static struct cm_ws_msg *ws_msg(PyObject *self) { return ((WsMessageObject *)self)->wm; }

static PyObject *wm_data(PyObject *self, void *closure) {
  (void)closure;
  struct cm_ws_msg *wm = ws_msg(self);
  return bytes_of(wm == NULL ? cm_str_n(NULL, 0) : wm->data);
}

static PyObject *wm_text(PyObject *self, void *closure) {
  (void)closure;
  struct cm_ws_msg *wm = ws_msg(self);
  if (wm == NULL || wm->data.len == 0) return PyUnicode_FromStringAndSize("", 0);
  /* Text messages were checked to be UTF-8; binary ones may not be. */
  return PyUnicode_DecodeUTF8(wm->data.buf, (Py_ssize_t)wm->data.len, "replace");
}

static PyObject *wm_flags(PyObject *self, void *closure) {
  (void)closure;
  struct cm_ws_msg *wm = ws_msg(self);
  return PyLong_FromLong(wm == NULL ? 0 : wm->flags);
}

static PyObject *wm_op(PyObject *self, void *closure) {
  (void)closure;
  struct cm_ws_msg *wm = ws_msg(self);
  return PyLong_FromLong(wm == NULL ? 0 : CM_WS_MSG_OP(wm->flags));
}

/* A close frame's code (1005 when it carried none), else None. */
static PyObject *wm_close_code(PyObject *self, void *closure) {
  (void)closure;
  struct cm_ws_msg *wm = ws_msg(self);
  if (wm == NULL || CM_WS_MSG_OP(wm->flags) != CM_WS_OP_CLOSE) Py_RETURN_NONE;
  if (wm->data.len < 2) return PyLong_FromLong(CM_WS_CLOSE_NO_STATUS);
  const uint8_t *p = (const uint8_t *)wm->data.buf;
  return PyLong_FromLong((long)p[0] << 8 | p[1]);
}

static PyObject *wm_close_reason(PyObject *self, void *closure) {
  (void)closure;
  struct cm_ws_msg *wm = ws_msg(self);
  if (wm == NULL || CM_WS_MSG_OP(wm->flags) != CM_WS_OP_CLOSE || wm->data.len <= 2)
    return PyUnicode_FromStringAndSize("", 0);
  return PyUnicode_DecodeUTF8(wm->data.buf + 2, (Py_ssize_t)wm->data.len - 2, "replace");
}

static int wm_bool(PyObject *self) { return ws_msg(self) != NULL; }

static PyObject *wm_repr(PyObject *self) {
  struct cm_ws_msg *wm = ws_msg(self);
  if (wm == NULL) return PyUnicode_FromString("<WsMessage (expired)>");
  return PyUnicode_FromFormat("<WsMessage op=%d len=%zu>", CM_WS_MSG_OP(wm->flags), wm->data.len);
}

static PyGetSetDef wm_getset[] = {
    {"data", wm_data, NULL, "Payload as bytes (unmasked, inflated, reassembled).", NULL},
    {"text", wm_text, NULL, "Payload decoded as UTF-8 (invalid bytes replaced).", NULL},
    {"flags", wm_flags, NULL,
     "First byte of the frame: FIN | opcode, e.g. 0x81 for text (a reassembled message: "
     "FIN | the opcode of its first frame).", NULL},
    {"op", wm_op, NULL, "The opcode: WEBSOCKET_OP_TEXT, _BINARY, _PING, _PONG or _CLOSE.", NULL},
    {"close_code", wm_close_code, NULL,
     "For a close frame (WS_CTL): its status code, 1005 when it had none; else None.", NULL},
    {"close_reason", wm_close_reason, NULL, "For a close frame: its reason, else ''.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot wm_slots[] = {
    {Py_tp_dealloc, hm_dealloc},
    {Py_tp_getset, wm_getset},
    {Py_nb_bool, wm_bool},
    {Py_tp_repr, wm_repr},
    {Py_tp_doc, "A WebSocket message or control frame, valid only during the handler call."},
    {0, NULL},
};

static PyType_Spec wm_spec = {
    .name = "cymongoose._mongoose.WsMessage",
    .basicsize = sizeof(WsMessageObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = wm_slots,
};

static PyObject *ws_message_new(cm_py_state *st, struct cm_ws_msg *wm) {
  WsMessageObject *o = PyObject_New(WsMessageObject, st->ws_message_type);
  if (o == NULL) return NULL;
  o->wm = wm;
  return (PyObject *)o;
}

struct cm_http_msg *cm_py_http_message_get(PyObject *o) {
  cm_py_state *st = cm_py_state_of_type(Py_TYPE(o));
  if (st == NULL) {
    PyErr_Clear();
  } else if (Py_TYPE(o) == st->http_message_type) {
    return ((HttpMessageObject *)o)->hm;
  }
  return NULL;
}

struct cm_ws_msg *cm_py_ws_message_get(PyObject *o) {
  cm_py_state *st = cm_py_state_of_type(Py_TYPE(o));
  if (st == NULL) {
    PyErr_Clear();
  } else if (Py_TYPE(o) == st->ws_message_type) {
    return ((WsMessageObject *)o)->wm;
  }
  return NULL;
}

/* ------------------------------------------------------------- module */

int cm_py_messages_exec(PyObject *m) {
  cm_py_state *st = PyModule_GetState(m);
  st->http_message_type = (PyTypeObject *)PyType_FromModuleAndSpec(m, &hm_spec, NULL);
  if (st->http_message_type == NULL || PyModule_AddType(m, st->http_message_type) < 0) return -1;
  st->ws_message_type = (PyTypeObject *)PyType_FromModuleAndSpec(m, &wm_spec, NULL);
  if (st->ws_message_type == NULL || PyModule_AddType(m, st->ws_message_type) < 0) return -1;
  return cm_py_mqtt_message_exec(m, st);
}

PyObject *cm_py_message_new(cm_py_state *st, int ev, void *ev_data) {
  switch (ev) {
    case CM_EV_HTTP_HDRS:
    case CM_EV_HTTP_MSG:
    case CM_EV_WS_OPEN:
      if (ev_data != NULL) return http_message_new(st, ev_data);
      break;
    case CM_EV_WS_MSG:
    case CM_EV_WS_CTL:
      if (ev_data != NULL) return ws_message_new(st, ev_data);
      break;
    case CM_EV_MQTT_CMD:
    case CM_EV_MQTT_MSG:
      if (ev_data != NULL) return cm_py_mqtt_message_new(st, ev_data);
      break;
    default:
      break;
  }
  Py_RETURN_NONE;
}

void cm_py_message_invalidate(PyObject *view) {
  if (view == NULL || view == Py_None) return;
  PyTypeObject *tp = Py_TYPE(view);
  cm_py_state *st = cm_py_state_of_type(tp);
  if (st == NULL) {
    PyErr_Clear();
    return;
  }
  if (tp == st->http_message_type) ((HttpMessageObject *)view)->hm = NULL;
  if (tp == st->ws_message_type) ((WsMessageObject *)view)->wm = NULL;
  if (tp == st->mqtt_message_type) cm_py_mqtt_message_invalidate(view);
}

void cm_py_message_release(cm_py_state *st, PyObject *view) {
  if (view == NULL) return;
  if (Py_TYPE(view) == st->http_message_type) {
    ((HttpMessageObject *)view)->hm = NULL;
    /* Only our reference left: nobody can tell this object is reused. */
    if (Py_REFCNT(view) == 1 && st->spare_http_message == NULL) {
      st->spare_http_message = view;
      return;
    }
  } else {
    cm_py_message_invalidate(view);
  }
  Py_DECREF(view);
}
