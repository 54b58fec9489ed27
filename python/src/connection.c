/*
 * Connection: the Python face of one struct cm_conn.
 *
 * Made by the event trampoline (dispatch.c) or by Manager.listen()/connect();
 * never by user code.  While attached, c points at the live connection and
 * c->ext holds a strong reference to this object; after CLOSE it is
 * detached, as in the original package: close() and drain() do nothing,
 * recv_data()/send_data() return b"", recv_len/send_len read 0, is_closing
 * True; id, is_client, is_listening, is_udp, the addresses and userdata keep
 * their last values; sending raises RuntimeError("Connection has been
 * closed").
 *
 * Received bytes of a raw TCP/UDP connection stay in the receive buffer
 * until the application consumes them with recv_consume(); recv_data()
 * only copies.  (The original package had no way to consume, so an echo
 * handler doing conn.send(conn.recv_data()) echoed everything again.)
 */
#include "core.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "conn_methods.h"
#include <structmember.h>

static const char closed_msg[] = "Connection has been closed";

cm_py_conn *cm_py_conn_new(cm_py_manager *mo, PyObject *handler) {
  cm_py_conn *co;
  if (mo->nspare_conns > 0) {
    co = mo->spare_conns[--mo->nspare_conns]; /* its one reference is ours now */
    mo->spare_conns[mo->nspare_conns] = NULL;
  } else {
    PyTypeObject *tp = mo->st->connection_type;
    co = (cm_py_conn *)tp->tp_alloc(tp, 0);
    if (co == NULL) return NULL;
  }
  if (handler != NULL && handler != Py_None) co->handler = Py_NewRef(handler);
  return co;
}

void cm_py_conn_attach(cm_py_conn *co, struct cm_conn *c) {
  co->c = c;
  c->ext = Py_NewRef(co);
}

/* co back to what tp_alloc gives (zeroed fields), for its next life. */
static void conn_reset(cm_py_conn *co) {
  Py_CLEAR(co->handler);
  Py_CLEAR(co->userdata);
  memset(&co->last, 0, sizeof(co->last));
  co->http = false;
}

/* Drops c->ext's reference to co, keeping co as a spare when that was the
 * last: nothing can tell it from a new object afterwards (no weak
 * reference, every field reset). */
static void conn_release(cm_py_manager *mo, cm_py_conn *co) {
  if (Py_REFCNT(co) != 1 || co->weakreflist != NULL || !mo->ready || mo->closing ||
      mo->nspare_conns >= CM_PY_SPARE_CONNS) {
    Py_DECREF(co);
    return;
  }
  conn_reset(co); /* may run code (userdata's finaliser) that refers to co again */
  if (Py_REFCNT(co) != 1 || co->weakreflist != NULL || mo->nspare_conns >= CM_PY_SPARE_CONNS ||
      co->handler != NULL || co->userdata != NULL) {
    Py_DECREF(co);
    return;
  }
  mo->spare_conns[mo->nspare_conns++] = co;
}

void cm_py_conn_spares_free(cm_py_manager *mo) {
  while (mo->nspare_conns > 0) {
    cm_py_conn *co = mo->spare_conns[--mo->nspare_conns];
    mo->spare_conns[mo->nspare_conns] = NULL;
    Py_DECREF(co);
  }
}

void cm_py_conn_detach(cm_py_manager *mo, cm_py_conn *co) {
  struct cm_conn *c = co->c;
  if (c == NULL) return;
  /* What a closed connection keeps reading (as in the original). */
  co->last.id = c->id;
  co->last.loc = *cm_conn_local_addr(c);
  co->last.rem = c->rem;
  co->last.is_client = c->is_client;
  co->last.is_listening = c->is_listening;
  co->last.is_udp = c->is_udp;
  co->last.is_tls = c->is_tls;
  co->last.is_websocket = c->is_websocket;
  co->c = NULL;
  if (c->ext == co) {
    c->ext = NULL;
    conn_release(mo, co);
  }
}

struct cm_conn *cm_py_conn_get(PyObject *conn) {
  struct cm_conn *c = ((cm_py_conn *)conn)->c;
  if (c == NULL) PyErr_SetString(PyExc_RuntimeError, closed_msg);
  return c;
}

cm_py_manager *cm_py_conn_enter(struct cm_conn *c) {
  cm_py_manager *mo = cm_py_manager_of(c->mgr);
  Py_INCREF(mo); /* a callback may drop the last other reference */
  cm_py_core_enter(mo);
  return mo;
}

int cm_py_conn_leave(cm_py_manager *mo) {
  cm_py_core_leave(mo);
  int rc = cm_py_raise_pending(mo);
  Py_DECREF(mo);
  return rc;
}

/* ------------------------------------------------------------ lifecycle */

static int conn_traverse(cm_py_conn *co, visitproc visit, void *arg) {
  Py_VISIT(Py_TYPE(co));
  Py_VISIT(co->handler);
  Py_VISIT(co->userdata);
  return 0;
}

static int conn_clear(cm_py_conn *co) {
  Py_CLEAR(co->handler);
  Py_CLEAR(co->userdata);
  return 0;
}

static void conn_dealloc(cm_py_conn *co) {
  PyTypeObject *tp = Py_TYPE(co);
  PyObject_GC_UnTrack(co);
  if (co->weakreflist != NULL) PyObject_ClearWeakRefs((PyObject *)co);
  conn_clear(co);
  /* Attached objects are kept alive by c->ext, so c is NULL here. */
  tp->tp_free((PyObject *)co);
  Py_DECREF(tp);
}

static PyObject *conn_repr(cm_py_conn *co) {
  if (co->c == NULL) return PyUnicode_FromFormat("<Connection id=%lu closed>", co->last.id);
  return PyUnicode_FromFormat("<Connection id=%lu%s%s>", co->c->id,
                              co->c->is_listening ? " listening" : "",
                              co->c->is_udp ? " udp" : "");
}

/* ------------------------------------------------------------ helpers */

/* The optional integer argument `name` (default -1, None reads as -1) of a
 * FASTCALL method. */
static int opt_ssize(const char *fname, const char *name, PyObject *const *args, Py_ssize_t nargs,
                     PyObject *kwnames, Py_ssize_t *out) {
  const char *names[2] = {name, NULL};
  PyObject *a[1];
  *out = -1;
  if (cm_py_bind(fname, args, nargs, kwnames, names, 1, 0, a) < 0) return -1;
  if (a[0] != NULL && a[0] != Py_None) {
    *out = PyLong_AsSsize_t(a[0]);
    if (*out == -1 && PyErr_Occurred()) return -1;
  }
  return 0;
}

static PyObject *buf_copy(const struct cm_buf *b, Py_ssize_t length) {
  size_t n = b->len;
  if (length >= 0 && (size_t)length < n) n = (size_t)length;
  if (n == 0) return PyBytes_FromStringAndSize("", 0);
  return PyBytes_FromStringAndSize((const char *)cm_buf_data(b), (Py_ssize_t)n);
}

static PyObject *addr_tuple(const struct cm_addr *a) {
  char ip[INET6_ADDRSTRLEN];
  if (inet_ntop(a->is_ip6 ? AF_INET6 : AF_INET, a->ip, ip, sizeof(ip)) == NULL) ip[0] = '\0';
  return Py_BuildValue("(sHO)", ip, a->port, a->is_ip6 ? Py_True : Py_False);
}

/* ------------------------------------------------------------ methods */

static PyObject *conn_send(cm_py_conn *co, PyObject *data) {
  struct cm_conn *c = cm_py_conn_get((PyObject *)co);
  if (c == NULL) return NULL;
  Py_buffer view;
  if (cm_py_buffer_get(data, &view, "data") < 0) return NULL;
  cm_py_manager *mo = cm_py_conn_enter(c); /* the output hook may run */
  bool ok = cm_send(c, view.buf, (size_t)view.len) == 0;
  /* An HTTP client writes its requests raw: note each request line so that
   * the response to a HEAD is read without a body. */
  if (ok && co->http && c->is_client) (void)cm_http_client_track(c, view.buf, (size_t)view.len);
  PyBuffer_Release(&view);
  if (cm_py_conn_leave(mo) < 0) return NULL;
  return PyBool_FromLong(ok);
}

/* close() and drain() on a closed connection do nothing, as in the
 * original: closing twice is not an error. */
static PyObject *conn_close(cm_py_conn *co, PyObject *unused) {
  (void)unused;
  if (co->c != NULL) {
    cm_py_manager *mo = cm_py_conn_enter(co->c); /* the output hook may run */
    cm_close(co->c);
    if (cm_py_conn_leave(mo) < 0) return NULL;
  }
  Py_RETURN_NONE;
}

static PyObject *conn_drain(cm_py_conn *co, PyObject *unused) {
  (void)unused;
  if (co->c != NULL) {
    cm_py_manager *mo = cm_py_conn_enter(co->c); /* the output hook may run */
    cm_drain(co->c);
    if (cm_py_conn_leave(mo) < 0) return NULL;
  }
  Py_RETURN_NONE;
}

/* http_end_keep_alive(idle_ms=None): see the method's doc string. */
static PyObject *conn_http_end_keep_alive(cm_py_conn *co, PyObject *const *args, Py_ssize_t nargs,
                                          PyObject *kwnames) {
  Py_ssize_t idle_ms;
  if (opt_ssize("http_end_keep_alive", "idle_ms", args, nargs, kwnames, &idle_ms) < 0) return NULL;
  if (idle_ms < -1) {
    PyErr_SetString(PyExc_ValueError, "idle_ms must not be negative");
    return NULL;
  }
  if (idle_ms == -1) idle_ms = 1000; /* None: the default */
  if (co->c == NULL) Py_RETURN_FALSE;
  cm_py_manager *mo = cm_py_conn_enter(co->c);
  bool ok = cm_http_end_keep_alive(co->c, (uint64_t)idle_ms) == 0;
  if (cm_py_conn_leave(mo) < 0) return NULL;
  return PyBool_FromLong(ok);
}

static PyObject *conn_error(cm_py_conn *co, PyObject *message) {
  struct cm_conn *c = cm_py_conn_get((PyObject *)co);
  if (c == NULL) return NULL;
  const char *msg = PyUnicode_AsUTF8(message);
  if (msg == NULL) return NULL;
  cm_py_manager *mo = cm_py_conn_enter(c);
  cm_error(c, "%s", msg); /* ERROR reaches the handler right now */
  if (cm_py_conn_leave(mo) < 0) return NULL;
  Py_RETURN_NONE;
}

static PyObject *conn_recv_data(cm_py_conn *co, PyObject *const *args, Py_ssize_t nargs,
                                PyObject *kwnames) {
  Py_ssize_t length;
  if (opt_ssize("recv_data", "length", args, nargs, kwnames, &length) < 0) return NULL;
  /* A closed connection has nothing buffered (b"", as in the original). */
  return co->c == NULL ? PyBytes_FromStringAndSize("", 0) : buf_copy(&co->c->recv, length);
}

static PyObject *conn_send_data(cm_py_conn *co, PyObject *const *args, Py_ssize_t nargs,
                                PyObject *kwnames) {
  Py_ssize_t length;
  if (opt_ssize("send_data", "length", args, nargs, kwnames, &length) < 0) return NULL;
  /* A closed connection has nothing buffered (b"", as in the original). */
  return co->c == NULL ? PyBytes_FromStringAndSize("", 0) : buf_copy(&co->c->send, length);
}

static PyObject *conn_recv_consume(cm_py_conn *co, PyObject *const *args, Py_ssize_t nargs,
                                   PyObject *kwnames) {
  Py_ssize_t n;
  if (opt_ssize("recv_consume", "n", args, nargs, kwnames, &n) < 0) return NULL;
  struct cm_conn *c = cm_py_conn_get((PyObject *)co);
  if (c == NULL) return NULL;
  cm_py_manager *mo = cm_py_conn_enter(c);
  cm_recv_consume(c, n < 0 ? c->recv.len : (size_t)n);
  if (cm_py_conn_leave(mo) < 0) return NULL;
  Py_RETURN_NONE;
}

static int set_handler(cm_py_conn *co, PyObject *h) {
  if (h != NULL && h != Py_None && !PyCallable_Check(h)) {
    PyErr_SetString(PyExc_TypeError, "handler must be callable or None");
    return -1;
  }
  Py_XSETREF(co->handler, (h == NULL || h == Py_None) ? NULL : Py_NewRef(h));
  return 0;
}

static PyObject *conn_set_handler(cm_py_conn *co, PyObject *h) {
  if (set_handler(co, h) < 0) return NULL;
  Py_RETURN_NONE;
}

CM_PY_KW1(conn_send, "send", "data")
CM_PY_KW1(conn_error, "error", "message")
CM_PY_KW1(conn_set_handler, "set_handler", "handler")
CM_PY_KW1(cm_py_conn_http_chunk, "http_chunk", "data")
CM_PY_KW1(cm_py_conn_resolve, "resolve", "url")
CM_PY_KW1(cm_py_conn_tls_init, "tls_init", "opts")

static PyMethodDef conn_methods[] = {
    {"send", CM_PY_FASTCALL_KW(conn_send_kw),
     "send($self, /, data)\n--\n\nQueues bytes (str is UTF-8 encoded) for sending; the loop "
     "writes them.  False when the connection is closing or the send limit is reached."},
    {"close", (PyCFunction)conn_close, METH_NOARGS,
     "close($self)\n--\n\nCloses the connection at the end of this poll (CLOSE follows)."},
    {"drain", (PyCFunction)conn_drain, METH_NOARGS,
     "drain($self)\n--\n\nStops reading, sends what is queued, then closes."},
    {"http_end_keep_alive", CM_PY_FASTCALL_KW(conn_http_end_keep_alive),
     "http_end_keep_alive($self, /, idle_ms=None)\n--\n\nGraceful end of an HTTP server "
     "connection (a server that stops or reloads): requests already received are answered, the "
     "last reply says 'Connection: close' and the connection closes once it is sent; with "
     "nothing under way it closes after idle_ms (default 1000) without a request.  False (nothing "
     "done) on other connections (a listener, a WebSocket, a streamed request body)."},
    {"error", CM_PY_FASTCALL_KW(conn_error_kw),
     "error($self, /, message)\n--\n\nDelivers ERROR with message to the handler now, then closes."},
    {"recv_data", CM_PY_FASTCALL_KW(conn_recv_data),
     "recv_data($self, /, length=-1)\n--\n\nA copy of the first length received bytes "
     "(all when -1); nothing is consumed."},
    {"send_data", CM_PY_FASTCALL_KW(conn_send_data),
     "send_data($self, /, length=-1)\n--\n\nA copy of the first length queued bytes "
     "(all when -1)."},
    {"recv_consume", CM_PY_FASTCALL_KW(conn_recv_consume),
     "recv_consume($self, /, n=-1)\n--\n\nDrops the first n received bytes (all when -1).  On raw "
     "TCP/UDP connections received bytes stay buffered until consumed; reading pauses "
     "(is_full) while recv_len >= recv_limit."},
    {"set_handler", CM_PY_FASTCALL_KW(conn_set_handler_kw),
     "set_handler($self, /, handler)\n--\n\nSets this connection's handler (None: the manager's "
     "default).  On a listener it is also what new connections inherit."},
#define CM_PY_CONN_METHODS_TABLE
#include "conn_methods.h"
#include <structmember.h>
#undef CM_PY_CONN_METHODS_TABLE
    {NULL, NULL, 0, NULL},
};

/* ------------------------------------------------------------ properties */

enum {
  P_ID,
  P_IS_LISTENING,
  P_IS_CLOSING,
  P_IS_CLIENT,
  P_IS_TLS,
  P_IS_UDP,
  P_IS_WEBSOCKET,
  P_IS_READABLE,
  P_IS_WRITABLE,
  P_IS_FULL,
  P_IS_DRAINING,
  P_RECV_LEN,
  P_SEND_LEN,
  P_RECV_SIZE,
  P_SEND_SIZE,
  P_RECV_LIMIT,
  P_SEND_HWM,
  P_IS_SEND_FULL,
  P_LOCAL_ADDR,
  P_REMOTE_ADDR,
};

static PyObject *conn_prop(cm_py_conn *co, void *closure) {
  int which = (int)(intptr_t)closure;
  const struct cm_conn *c = co->c;
  if (c == NULL) {
    /* Detached: identity and addresses keep their last values, buffers and
     * readiness read as empty. */
    switch (which) {
      case P_ID: return PyLong_FromUnsignedLong(co->last.id);
      case P_IS_LISTENING: return PyBool_FromLong(co->last.is_listening);
      case P_IS_CLIENT: return PyBool_FromLong(co->last.is_client);
      case P_IS_UDP: return PyBool_FromLong(co->last.is_udp);
      case P_IS_TLS: return PyBool_FromLong(co->last.is_tls);
      case P_IS_WEBSOCKET: return PyBool_FromLong(co->last.is_websocket);
      case P_LOCAL_ADDR: return co->last.id == 0 ? Py_NewRef(Py_None) : addr_tuple(&co->last.loc);
      case P_REMOTE_ADDR: return co->last.id == 0 ? Py_NewRef(Py_None) : addr_tuple(&co->last.rem);
      case P_RECV_LEN:
      case P_SEND_LEN:
      case P_RECV_SIZE:
      case P_SEND_SIZE:
      case P_RECV_LIMIT:
      case P_SEND_HWM:
        return PyLong_FromLong(0);
      case P_IS_CLOSING:
        Py_RETURN_TRUE;
      default:
        Py_RETURN_FALSE;
    }
  }
  switch (which) {
    case P_ID: return PyLong_FromUnsignedLong(c->id);
    case P_IS_LISTENING: return PyBool_FromLong(c->is_listening);
    case P_IS_CLOSING: return PyBool_FromLong(c->is_closing);
    case P_IS_CLIENT: return PyBool_FromLong(c->is_client);
    case P_IS_TLS: return PyBool_FromLong(c->is_tls);
    case P_IS_UDP: return PyBool_FromLong(c->is_udp);
    case P_IS_WEBSOCKET: return PyBool_FromLong(c->is_websocket);
    case P_IS_READABLE: return PyBool_FromLong(c->is_readable);
    case P_IS_WRITABLE: return PyBool_FromLong(c->is_writable);
    case P_IS_FULL: return PyBool_FromLong(c->is_full);
    case P_IS_DRAINING: return PyBool_FromLong(c->is_draining);
    case P_RECV_LEN: return PyLong_FromSize_t(c->recv.len);
    case P_SEND_LEN: return PyLong_FromSize_t(c->send.len);
    case P_RECV_SIZE: return PyLong_FromSize_t(c->recv.cap);
    case P_SEND_SIZE: return PyLong_FromSize_t(c->send.cap);
    case P_RECV_LIMIT: return PyLong_FromSize_t(c->recv_limit);
    case P_SEND_HWM: return PyLong_FromSize_t(c->send_hwm);
    case P_IS_SEND_FULL: return PyBool_FromLong(cm_conn_send_full(c));
    case P_LOCAL_ADDR: return addr_tuple(cm_conn_local_addr(co->c)); /* reads it lazily */
    case P_REMOTE_ADDR: return addr_tuple(&c->rem);
    default: Py_RETURN_NONE;
  }
}

static int conn_set_recv_limit(cm_py_conn *co, PyObject *v, void *closure) {
  (void)closure;
  if (v == NULL) {
    PyErr_SetString(PyExc_AttributeError, "cannot delete recv_limit");
    return -1;
  }
  struct cm_conn *c = cm_py_conn_get((PyObject *)co);
  if (c == NULL) return -1;
  size_t n = PyLong_AsSize_t(v);
  if (n == (size_t)-1 && PyErr_Occurred()) return -1;
  if (n == 0) {
    PyErr_SetString(PyExc_ValueError, "recv_limit must be positive");
    return -1;
  }
  c->recv_limit = n;
  return 0;
}

static int conn_set_send_hwm(cm_py_conn *co, PyObject *v, void *closure) {
  (void)closure;
  if (v == NULL) {
    PyErr_SetString(PyExc_AttributeError, "cannot delete send_hwm");
    return -1;
  }
  struct cm_conn *c = cm_py_conn_get((PyObject *)co);
  if (c == NULL) return -1;
  size_t n = PyLong_AsSize_t(v);
  if (n == (size_t)-1 && PyErr_Occurred()) return -1;
  c->send_hwm = n;
  return 0;
}

static PyObject *conn_get_handler(cm_py_conn *co, void *closure) {
  (void)closure;
  return Py_NewRef(co->handler != NULL ? co->handler : Py_None);
}

static int conn_set_handler_prop(cm_py_conn *co, PyObject *v, void *closure) {
  (void)closure;
  return set_handler(co, v);
}

static PyObject *conn_get_userdata(cm_py_conn *co, void *closure) {
  (void)closure;
  return Py_NewRef(co->userdata != NULL ? co->userdata : Py_None);
}

static int conn_set_userdata(cm_py_conn *co, PyObject *v, void *closure) {
  (void)closure;
  Py_XSETREF(co->userdata, Py_XNewRef(v));
  return 0;
}

#define PROP(name, which, doc) \
  {name, (getter)conn_prop, NULL, doc, (void *)(intptr_t)(which)}

static PyGetSetDef conn_getset[] = {
    PROP("id", P_ID, "Unique id within the manager (kept once closed)."),
    PROP("is_listening", P_IS_LISTENING, "A listening socket."),
    PROP("is_closing", P_IS_CLOSING, "Marked for closing (True once closed)."),
    PROP("is_client", P_IS_CLIENT, "Made by connect()."),
    PROP("is_tls", P_IS_TLS, "TLS is on."),
    PROP("is_udp", P_IS_UDP, "A datagram socket."),
    PROP("is_websocket", P_IS_WEBSOCKET, "Upgraded to WebSocket."),
    PROP("is_readable", P_IS_READABLE, "The last poll found the socket readable."),
    PROP("is_writable", P_IS_WRITABLE, "The last poll found the socket writable."),
    PROP("is_full", P_IS_FULL, "recv_len reached recv_limit: reading is paused."),
    PROP("is_draining", P_IS_DRAINING, "drain() was called: closing once flushed."),
    PROP("recv_len", P_RECV_LEN, "Received bytes not yet consumed."),
    PROP("send_len", P_SEND_LEN, "Queued bytes not yet written."),
    PROP("recv_size", P_RECV_SIZE, "Allocated size of the receive buffer."),
    PROP("send_size", P_SEND_SIZE, "Allocated size of the send buffer."),
    PROP("local_addr", P_LOCAL_ADDR, "(ip, port, is_ipv6) of this end (kept once closed)."),
    PROP("remote_addr", P_REMOTE_ADDR, "(ip, port, is_ipv6) of the peer (kept once closed)."),
    {"recv_limit", (getter)conn_prop, (setter)conn_set_recv_limit,
     "Reading pauses (is_full) while recv_len >= recv_limit; default Manager.recv_limit.",
     (void *)(intptr_t)P_RECV_LIMIT},
    {"send_hwm", (getter)conn_prop, (setter)conn_set_send_hwm,
     "High-water mark of queued output: while send_len (plus bytes queued behind files)\n"
     "is at or above it, or above half of Manager.send_limit, reading and HTTP/WebSocket\n"
     "processing pause (is_send_full); 0: never.  Accepted connections start with\n"
     "Manager.send_hwm, outbound ones with 0.",
     (void *)(intptr_t)P_SEND_HWM},
    PROP("is_send_full", P_IS_SEND_FULL,
         "Queued output is at its high-water mark (send_hwm): reading is paused until the "
         "peer takes some."),
    {"handler", (getter)conn_get_handler, (setter)conn_set_handler_prop,
     "This connection's handler, None when it uses the manager's default.", NULL},
    {"userdata", (getter)conn_get_userdata, (setter)conn_set_userdata,
     "Any object the application wants to keep with the connection.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

/* ------------------------------------------------------------ type */

static PyMemberDef conn_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(cm_py_conn, weakreflist), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot conn_slots[] = {
    {Py_tp_doc, "A connection of a Manager; made by the manager, never directly."},
    {Py_tp_dealloc, conn_dealloc},
    {Py_tp_traverse, conn_traverse},
    {Py_tp_clear, conn_clear},
    {Py_tp_repr, conn_repr},
    {Py_tp_methods, conn_methods},
    {Py_tp_getset, conn_getset},
    {Py_tp_members, conn_members},
    {0, NULL},
};

static PyType_Spec conn_spec = {
    .name = "cymongoose._mongoose.Connection",
    .basicsize = sizeof(cm_py_conn),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_DISALLOW_INSTANTIATION |
             Py_TPFLAGS_IMMUTABLETYPE,
    .slots = conn_slots,
};

int cm_py_connection_exec(PyObject *m, cm_py_state *st) {
  st->connection_type = (PyTypeObject *)PyType_FromModuleAndSpec(m, &conn_spec, NULL);
  if (st->connection_type == NULL) return -1;
  return PyModule_AddType(m, st->connection_type);
}
