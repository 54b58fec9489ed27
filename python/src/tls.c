/*
 * TlsOpts and the Connection methods tls_init() / tls_free().
 *
 * TlsOpts is an immutable record of PEM bytes: str arguments are encoded
 * as UTF-8, None becomes b"".  It holds only bytes and a bool, which cannot
 * form reference cycles, so it is not a GC type.
 */
#include "core.h"

#include <errno.h>

#include "conn_methods.h"
#include <structmember.h>

typedef struct {
  PyObject_HEAD
  PyObject *ca, *cert, *key, *name; /* bytes, never NULL */
  int skip_verification;
  unsigned long long handshake_timeout_ms;
} tls_opts;

/* bytes from bytes, bytearray, str (UTF-8) or None (b""); NULL with
 * TypeError otherwise. */
static PyObject *as_bytes(PyObject *v, const char *what) {
  if (v == NULL || v == Py_None) return PyBytes_FromStringAndSize("", 0);
  if (PyBytes_Check(v)) return Py_NewRef(v);
  if (PyUnicode_Check(v)) return PyUnicode_AsUTF8String(v);
  if (PyByteArray_Check(v))
    return PyBytes_FromStringAndSize(PyByteArray_AS_STRING(v), PyByteArray_GET_SIZE(v));
  PyErr_Format(PyExc_TypeError, "TlsOpts %s must be bytes, str or None, not %.100s", what,
               Py_TYPE(v)->tp_name);
  return NULL;
}

static PyObject *tls_opts_new(PyTypeObject *tp, PyObject *args, PyObject *kwds) {
  static char *kwlist[] = {"ca", "cert", "key", "name", "skip_verification",
                           "handshake_timeout_ms", NULL};
  PyObject *ca = NULL, *cert = NULL, *key = NULL, *name = NULL;
  int skip = 0;
  unsigned long long timeout = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OOOOp$K:TlsOpts", kwlist, &ca, &cert, &key, &name,
                                   &skip, &timeout))
    return NULL;
  tls_opts *o = (tls_opts *)tp->tp_alloc(tp, 0);
  if (o == NULL) return NULL;
  if ((o->ca = as_bytes(ca, "ca")) == NULL || (o->cert = as_bytes(cert, "cert")) == NULL ||
      (o->key = as_bytes(key, "key")) == NULL || (o->name = as_bytes(name, "name")) == NULL) {
    Py_DECREF(o);
    return NULL;
  }
  o->skip_verification = skip;
  o->handshake_timeout_ms = timeout;
  return (PyObject *)o;
}

static void tls_opts_dealloc(tls_opts *o) {
  PyTypeObject *tp = Py_TYPE(o);
  Py_XDECREF(o->ca);
  Py_XDECREF(o->cert);
  Py_XDECREF(o->key);
  Py_XDECREF(o->name);
  tp->tp_free(o);
  Py_DECREF(tp);
}

static PyObject *tls_opts_repr(tls_opts *o) {
  /* Never prints key material. */
  return PyUnicode_FromFormat("TlsOpts(ca=<%zd bytes>, cert=<%zd bytes>, key=<%zd bytes>, name=%R, "
                              "skip_verification=%s)",
                              PyBytes_GET_SIZE(o->ca), PyBytes_GET_SIZE(o->cert),
                              PyBytes_GET_SIZE(o->key), o->name,
                              o->skip_verification ? "True" : "False");
}

static PyObject *get_skip(tls_opts *o, void *closure) {
  (void)closure;
  return PyBool_FromLong(o->skip_verification);
}

static PyMemberDef tls_opts_members[] = {
    {"ca", T_OBJECT_EX, offsetof(tls_opts, ca), READONLY, "PEM CA certificates (bytes)."},
    {"cert", T_OBJECT_EX, offsetof(tls_opts, cert), READONLY, "PEM certificate chain (bytes)."},
    {"key", T_OBJECT_EX, offsetof(tls_opts, key), READONLY, "PEM private key (bytes)."},
    {"name", T_OBJECT_EX, offsetof(tls_opts, name), READONLY,
     "Server name for SNI and verification (bytes)."},
    {"handshake_timeout_ms", T_ULONGLONG, offsetof(tls_opts, handshake_timeout_ms), READONLY,
     "Handshake deadline in ms; 0 uses the default (10 s)."},
    {NULL},
};

static PyGetSetDef tls_opts_getset[] = {
    {"skip_verification", (getter)get_skip, NULL, "Accept any peer certificate.", NULL},
    {NULL},
};

PyDoc_STRVAR(tls_opts_doc,
             "TlsOpts(ca=None, cert=None, key=None, name=None, skip_verification=False, *, "
             "handshake_timeout_ms=0)\n--\n\n"
             "TLS options for Connection.tls_init().  PEM as bytes or str.\n"
             "Server: cert and key (key may be inside cert); ca asks clients for certificates.\n"
             "Client: ca replaces the system CA store; name is sent as SNI and verified\n"
             "(default: the host of the URL); cert/key give a client certificate.");

static PyType_Slot tls_opts_slots[] = {
    {Py_tp_new, tls_opts_new},
    {Py_tp_dealloc, tls_opts_dealloc},
    {Py_tp_repr, tls_opts_repr},
    {Py_tp_members, tls_opts_members},
    {Py_tp_getset, tls_opts_getset},
    {Py_tp_doc, (void *)tls_opts_doc},
    {0, NULL},
};

static PyType_Spec tls_opts_spec = {
    .name = "cymongoose._mongoose.TlsOpts",
    .basicsize = sizeof(tls_opts),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = tls_opts_slots,
};

int cm_py_tls_exec(PyObject *m) {
  cm_py_state *st = PyModule_GetState(m);
  st->tls_opts_type = (PyTypeObject *)PyType_FromModuleAndSpec(m, &tls_opts_spec, NULL);
  if (st->tls_opts_type == NULL) return -1;
  return PyModule_AddType(m, st->tls_opts_type);
}

/* ------------------------------------------------- Connection methods */

static struct cm_str view(PyObject *bytes) {
  return cm_str_n(PyBytes_AS_STRING(bytes), (size_t)PyBytes_GET_SIZE(bytes));
}

/* The conversion Manager.mqtt_connect(tls=) and MqttBroker share. */
int cm_py_tls_view(cm_py_state *st, PyObject *obj, struct cm_tls_opts *out, PyObject **keep) {
  *keep = NULL;
  if (!PyObject_TypeCheck(obj, st->tls_opts_type)) {
    PyErr_Format(PyExc_TypeError, "tls must be a TlsOpts, not %.100s", Py_TYPE(obj)->tp_name);
    return -1;
  }
  tls_opts *o = (tls_opts *)obj;
  *out = (struct cm_tls_opts){.ca = view(o->ca), .cert = view(o->cert), .key = view(o->key),
                              .name = view(o->name),
                              .skip_verification = o->skip_verification != 0,
                              .hs_timeout_ms = o->handshake_timeout_ms};
  *keep = Py_NewRef(obj);
  return 0;
}

PyObject *cm_py_conn_tls_init(PyObject *self, PyObject *arg) {
  cm_py_state *st = cm_py_state_of_type(Py_TYPE(self));
  if (st == NULL) return NULL;
  if (!PyObject_TypeCheck(arg, st->tls_opts_type)) {
    PyErr_Format(PyExc_TypeError, "tls_init() takes a TlsOpts, not %.100s", Py_TYPE(arg)->tp_name);
    return NULL;
  }
  struct cm_conn *c = cm_py_conn_get(self);
  if (c == NULL) return NULL;
  if (c->is_udp) {
    PyErr_SetString(PyExc_ValueError, "TLS needs a TCP connection");
    return NULL;
  }
  tls_opts *o = (tls_opts *)arg;
  /* o stays alive (our caller holds it) while the C side reads the views. */
  struct cm_tls_opts opts = {.ca = view(o->ca), .cert = view(o->cert), .key = view(o->key),
                             .name = view(o->name),
                             .skip_verification = o->skip_verification != 0,
                             .hs_timeout_ms = o->handshake_timeout_ms};
  /* As in the original, bad options never raise and never close a
   * listener; but they are not silent: a RuntimeWarning names the reason
   * now, and each connection they then fail gets an ERROR event with it,
   * from the next poll (the core never delivers it from inside the call).
   * Bracketed from before the warning, whose hooks may run any code. */
  cm_py_manager *mo = cm_py_conn_enter(c);
  char why[300];
  bool already = false, warned_raised = false;
  if (cm_tls_check_opts(c->mgr, c->is_listening || c->is_accepted, &opts, why, sizeof(why)) != 0 &&
      PyErr_WarnFormat(PyExc_RuntimeWarning, 1, "tls_init(): %s", why) < 0) {
    warned_raised = true;
  } else if (c->is_listening) {
    /* On a listener: every connection it accepts gets TLS with these (or,
     * when they are bad, an ERROR with the reason). */
    (void)cm_tls_listen_opts(c, &opts, NULL, 0);
  } else if (cm_tls_init(c, &opts) == CM_EALREADY) {
    already = true;
  }
  if (cm_py_conn_leave(mo) < 0 || warned_raised) return NULL;
  if (already) {
    PyErr_SetString(PyExc_RuntimeError, "TLS handshake already started on this connection");
    return NULL;
  }
  Py_RETURN_NONE;
}

PyObject *cm_py_conn_tls_free(PyObject *self, PyObject *unused) {
  (void)unused;
  struct cm_conn *c = cm_py_conn_get(self);
  if (c == NULL) return NULL;
  cm_py_manager *mo = cm_py_conn_enter(c);
  cm_tls_free(c);
  if (cm_py_conn_leave(mo) < 0) return NULL;
  Py_RETURN_NONE;
}
