/*
 * _AsgiChannel and _AsgiOp: one ASGI connection (an HTTP request or a
 * WebSocket) and the awaitables its receive() and send() return.  See
 * asgi.h for how the core drives them.
 *
 * An op does its work when first stepped (as an `async def` would, not when
 * receive()/send() is called), completes at once when it can (am_send
 * returns PYGEN_RETURN: no StopIteration, no future), and otherwise yields
 * the park marker (the channel, when the core steps the coroutine) or an
 * asyncio future (when a task does).  Whoever resumes it steps it again,
 * and it checks again.  What send() does with a message: asgi_send.c.
 */
#include "asgi.h"

#include <string.h>
#include <strings.h>

#include "conn_methods.h"

/* At most this much of a streamed request body per http.request message. */
#define BODY_PIECE (256 * 1024)

enum { OP_INIT, OP_WAIT, OP_DONE };

typedef struct {
  PyObject_HEAD
  asgi_ch *ch;
  PyObject *msg; /* send(): the message, until acted on */
  int kind;      /* W_RECEIVE or W_SEND */
  int state;     /* OP_* */
} asgi_op;

/* ------------------------------------------------------------- messages */

/* {"type": type, key1: v1, key2: v2} (keys NULL when unused); steals v1, v2. */
static PyObject *new_msg(asgi_core *k, int type, int key1, PyObject *v1, int key2, PyObject *v2) {
  PyObject *m = PyDict_New();
  if (m == NULL || PyDict_SetItem(m, k->str[S_TYPE], k->str[type]) < 0 ||
      (key1 >= 0 && (v1 == NULL || PyDict_SetItem(m, k->str[key1], v1) < 0)) ||
      (key2 >= 0 && (v2 == NULL || PyDict_SetItem(m, k->str[key2], v2) < 0)))
    Py_CLEAR(m);
  Py_XDECREF(v1);
  Py_XDECREF(v2);
  return m;
}

static PyObject *http_request_msg(asgi_core *k, PyObject *body, bool more) {
  return new_msg(k, S_HTTP_REQUEST, S_BODY, body, S_MORE_BODY, PyBool_FromLong(more));
}

PyObject *cm_py_asgi_disconnect_msg(asgi_ch *ch) {
  asgi_core *k = ch->core;
  if (!ch->is_ws) return new_msg(k, S_HTTP_DISCONNECT, -1, NULL, -1, NULL);
  return new_msg(k, S_WS_DISCONNECT, S_CODE, PyLong_FromLong(ch->close_code), S_REASON,
                 Py_NewRef(ch->close_reason));
}

/* ---------------------------------------------------------------- helpers */

static void report(asgi_core *k, PyObject *exc) {
  PyObject *r = PyObject_CallMethod(k->hooks, "_report", "O", exc);
  if (r == NULL) PyErr_WriteUnraisable(k->hooks);
  Py_XDECREF(r);
}

/* Reports the current exception (which must be set) and clears it. */
static void report_current(asgi_core *k) {
  PyObject *t, *v, *tb;
  PyErr_Fetch(&t, &v, &tb);
  PyErr_NormalizeException(&t, &v, &tb);
  if (v != NULL && tb != NULL) PyException_SetTraceback(v, tb);
  if (v != NULL) report(k, v);
  Py_XDECREF(t);
  Py_XDECREF(v);
  Py_XDECREF(tb);
}

int cm_py_asgi_inbox_put(asgi_ch *ch, PyObject *msg) {
  if (ch->inbox == NULL && (ch->inbox = PyList_New(0)) == NULL) return -1;
  return PyList_Append(ch->inbox, msg);
}

static int try_receive(asgi_ch *ch, PyObject **out) {
  if (ch->request_body != NULL) { /* the whole request body, in one message */
    PyObject *body = ch->request_body;
    ch->request_body = NULL;
    *out = http_request_msg(ch->core, body, false);
    return *out == NULL ? -1 : 1;
  }
  Py_ssize_t n = ch->inbox == NULL ? 0 : PyList_GET_SIZE(ch->inbox);
  if (ch->inbox_head < n) {
    *out = PyList_GET_ITEM(ch->inbox, ch->inbox_head); /* taken over */
    PyList_SET_ITEM(ch->inbox, ch->inbox_head, Py_NewRef(Py_None));
    if (++ch->inbox_head == n) {
      ch->inbox_head = 0;
      if (PyList_SetSlice(ch->inbox, 0, n, NULL) < 0) return -1;
    }
    return 1;
  }
  if (ch->body_stream && !ch->disconnected) {
    /* What has arrived (up to BODY_PIECE); what the app does not ask for
     * stays unread, so reading pauses at recv_limit. */
    PyObject *size = PyLong_FromLong(BODY_PIECE);
    PyObject *data = size == NULL ? NULL : cm_py_conn_http_body_read(ch->conn, &size, 1, NULL);
    Py_XDECREF(size);
    if (data == NULL) return -1;
    PyObject *left_o = cm_py_conn_http_body_left(ch->conn, NULL);
    if (left_o == NULL) {
      Py_DECREF(data);
      return -1;
    }
    /* Bytes still to come; -1 while a chunked body has not ended. */
    long long left = left_o == Py_None ? 0 : PyLong_AsLongLong(left_o);
    Py_DECREF(left_o);
    if (left == -1 && PyErr_Occurred()) {
      Py_DECREF(data);
      return -1;
    }
    if (PyBytes_GET_SIZE(data) == 0 && left != 0) {
      Py_DECREF(data);
      return 0;
    }
    if (left == 0) ch->body_stream = 0; /* the body is complete */
    *out = http_request_msg(ch->core, data, left != 0);
    return *out == NULL ? -1 : 1;
  }
  if (ch->disconnected || (!ch->is_ws && ch->complete)) {
    /* As uvicorn: once the response is complete nothing more will come. */
    *out = cm_py_asgi_disconnect_msg(ch);
    return *out == NULL ? -1 : 1;
  }
  return 0;
}

/* ------------------------------------------------------------------- ops */

static PyObject *op_new(asgi_ch *ch, int kind, PyObject *msg) {
  asgi_op *op = PyObject_GC_New(asgi_op, ch->core->op_type);
  if (op == NULL) return NULL;
  op->ch = (asgi_ch *)Py_NewRef(ch);
  op->msg = Py_XNewRef(msg);
  op->kind = kind;
  op->state = OP_INIT;
  PyObject_GC_Track(op);
  return (PyObject *)op;
}

static int op_traverse(PyObject *self, visitproc visit, void *arg) {
  asgi_op *op = (asgi_op *)self;
  Py_VISIT(Py_TYPE(self));
  Py_VISIT(op->ch);
  Py_VISIT(op->msg);
  return 0;
}

static int op_clear(PyObject *self) {
  asgi_op *op = (asgi_op *)self;
  Py_CLEAR(op->ch);
  Py_CLEAR(op->msg);
  return 0;
}

static void op_dealloc(PyObject *self) {
  PyTypeObject *tp = Py_TYPE(self);
  PyObject_GC_UnTrack(self);
  op_clear(self);
  PyObject_GC_Del(self);
  Py_DECREF(tp);
}

/* A future of the running loop for a task to await (as Future.__await__
 * hands it over: _asyncio_future_blocking set), kept with the others
 * waiting for the same kind until an event completes them all. */
static PyObject *task_future(asgi_ch *ch, int kind) {
  asgi_core *k = ch->core;
  if (k->create_future == NULL) {
    PyErr_SetString(PyExc_RuntimeError, "the ASGI server is not started");
    return NULL;
  }
  PyObject **slot = kind == W_RECEIVE ? &ch->recv_waiter : &ch->send_waiter;
  if (*slot == NULL && (*slot = PyList_New(0)) == NULL) return NULL;
  PyObject *fut = PyObject_CallNoArgs(k->create_future);
  if (fut == NULL) return NULL;
  if (PyObject_SetAttr(fut, k->str[S_BLOCKING], Py_True) < 0 || PyList_Append(*slot, fut) < 0) {
    Py_DECREF(fut);
    return NULL;
  }
  return fut;
}

static PySendResult op_step(PyObject *self, PyObject *arg, PyObject **result) {
  (void)arg;
  asgi_op *op = (asgi_op *)self;
  asgi_ch *ch = op->ch;
  if (op->state == OP_DONE) {
    PyErr_SetString(PyExc_RuntimeError, "cannot reuse an already awaited ASGI receive()/send()");
    return PYGEN_ERROR;
  }
  int rc;
  PyObject *value = NULL;
  if (op->kind == W_SEND) {
    if (op->state == OP_INIT) {
      PyObject *msg = op->msg;
      op->msg = NULL;
      op->state = OP_WAIT;
      rc = cm_py_asgi_send(ch, msg);
      Py_DECREF(msg);
      rc = rc < 0 ? -1 : rc == 0 ? 1 : 0; /* as try_receive: 1 done, 0 wait */
    } else {
      rc = cm_py_asgi_send_full(ch) ? 0 : 1;
    }
    if (rc == 1) value = Py_NewRef(Py_None);
  } else {
    rc = try_receive(ch, &value);
  }
  if (rc != 0) {
    op->state = OP_DONE;
    if (rc < 0) return PYGEN_ERROR;
    *result = value;
    return PYGEN_RETURN;
  }
  op->state = OP_WAIT;
  ch->waiting = op->kind;
  if (ch->stepping) { /* the core steps this coroutine: park it */
    *result = Py_NewRef((PyObject *)ch);
    return PYGEN_NEXT;
  }
  if ((*result = task_future(ch, op->kind)) == NULL) return PYGEN_ERROR;
  return PYGEN_NEXT;
}

static PyObject *op_iternext(PyObject *self) {
  PyObject *res = NULL;
  switch (op_step(self, Py_None, &res)) {
    case PYGEN_NEXT: return res;
    case PYGEN_RETURN:
      if (res != Py_None) {
        PyObject *e = PyObject_CallOneArg(PyExc_StopIteration, res);
        if (e != NULL) PyErr_SetObject(PyExc_StopIteration, e);
        Py_XDECREF(e);
      }
      Py_DECREF(res);
      return NULL;
    default: return NULL;
  }
}

static PyObject *op_send_method(PyObject *self, PyObject *arg) {
  (void)arg;
  return op_iternext(self);
}

static PyObject *op_await(PyObject *self) { return Py_NewRef(self); }

static PyMethodDef op_methods[] = {
    {"send", op_send_method, METH_O, "send($self, value, /)\n--\n\nSteps the operation."},
    {NULL, NULL, 0, NULL}};

static PyType_Slot op_slots[] = {
    {Py_tp_dealloc, op_dealloc},
    {Py_tp_traverse, op_traverse},
    {Py_tp_clear, op_clear},
    {Py_tp_iter, op_await},
    {Py_tp_iternext, op_iternext},
    {Py_am_await, op_await},
    {Py_am_send, op_step},
    {Py_tp_methods, op_methods},
    {Py_tp_doc, "The awaitable of an ASGI receive() or send() (cymongoose.asgi)."},
    {0, NULL}};

static PyType_Spec op_spec = {
    .name = "cymongoose._mongoose._AsgiOp",
    .basicsize = sizeof(asgi_op),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = op_slots,
};

/* -------------------------------------------------------------- channel */

asgi_ch *cm_py_asgi_ch_new(asgi_core *k, asgi_conn *cs, PyObject *conn, bool ws) {
  asgi_ch *ch = (asgi_ch *)k->ch_type->tp_alloc(k->ch_type, 0);
  if (ch == NULL) return NULL;
  ch->core = (asgi_core *)Py_NewRef(k);
  ch->cs = (asgi_conn *)Py_NewRef(cs);
  ch->conn = Py_NewRef(conn);
  ch->is_ws = ws;
  ch->close_code = 1006;
  ch->close_reason = PyUnicode_FromStringAndSize("", 0);
  if (ch->close_reason == NULL || PyList_Append(cs->channels, (PyObject *)ch) < 0 ||
      PySet_Add(k->live, (PyObject *)ch) < 0) {
    Py_DECREF(ch);
    return NULL;
  }
  return ch;
}

/* Completes the futures tasks wait on in *slot (a list), unless done. */
static int resolve(asgi_core *k, PyObject **slot) {
  PyObject *list = *slot;
  *slot = NULL;
  if (list == NULL) return 0;
  int rc = 0;
  for (Py_ssize_t i = 0; i < PyList_GET_SIZE(list); i++) {
    PyObject *fut = PyList_GET_ITEM(list, i);
    PyObject *done = PyObject_CallMethodNoArgs(fut, k->str[S_DONE]);
    PyObject *r = done == Py_False ? PyObject_CallMethodOneArg(fut, k->str[S_SET_RESULT], Py_None)
                                   : Py_XNewRef(done);
    Py_XDECREF(done);
    if (r == NULL) rc = -1;
    Py_XDECREF(r);
    if (rc < 0) break;
  }
  Py_DECREF(list);
  return rc;
}

int cm_py_asgi_ch_wake(asgi_ch *ch, int what) {
  if (ch->finished) return 0;
  int rc = 0;
  if (what != W_SEND && resolve(ch->core, &ch->recv_waiter) < 0) rc = -1;
  if (rc == 0 && what != W_RECEIVE && resolve(ch->core, &ch->send_waiter) < 0) rc = -1;
  if (rc < 0) report_current(ch->core);
  if (ch->parked && !ch->stepping && (what == W_NONE || ch->waiting == what)) {
    ch->parked = 0;
    ch->waiting = W_NONE;
    return cm_py_asgi_step(ch, NULL);
  }
  return 0;
}

int cm_py_asgi_ch_disconnect(asgi_ch *ch) {
  ch->disconnected = 1;
  return cm_py_asgi_ch_wake(ch, W_NONE);
}

int cm_py_asgi_ch_finish(asgi_ch *ch, PyObject *exc) {
  if (ch->finished) return 0;
  asgi_core *k = ch->core;
  ch->finished = 1;
  ch->parked = 0;
  Py_INCREF(ch);
  Py_ssize_t n = PyList_GET_SIZE(ch->cs->channels);
  for (Py_ssize_t i = 0; i < n; i++) {
    if (PyList_GET_ITEM(ch->cs->channels, i) == (PyObject *)ch) {
      (void)PySequence_DelItem(ch->cs->channels, i);
      break;
    }
  }
  if (PySet_Discard(k->live, (PyObject *)ch) < 0) PyErr_Clear();
  bool failed = false;
  PyObject *reraise = NULL;
  if (exc != NULL && exc != Py_None) {
    if (PyErr_GivenExceptionMatches(exc, k->disconnected)) {
      /* send() after the client left: the application just stops */
    } else if (PyErr_GivenExceptionMatches(exc, PyExc_Exception)) {
      failed = true;
      report(k, exc);
    } else {
      failed = true; /* CancelledError (at shutdown), KeyboardInterrupt... */
      if (!PyErr_GivenExceptionMatches(exc, k->cancelled)) reraise = exc;
    }
  }
  if (cm_py_asgi_finish_protocol(ch, failed) < 0) report_current(k);
  Py_CLEAR(ch->coro);
  Py_CLEAR(ch->ctx);
  Py_CLEAR(ch->host);
  Py_CLEAR(ch->host_inbox);
  int rc = 0;
  if (resolve(k, &ch->recv_waiter) < 0 || resolve(k, &ch->send_waiter) < 0) report_current(k);
  if (reraise != NULL) {
    PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(reraise)), Py_NewRef(reraise),
                  PyException_GetTraceback(reraise));
    rc = -1;
  }
  Py_DECREF(ch);
  return rc;
}

static PyObject *ch_receive(PyObject *self, PyObject *unused) {
  (void)unused;
  return op_new((asgi_ch *)self, W_RECEIVE, NULL);
}

static PyObject *ch_send(PyObject *self, PyObject *msg) {
  return op_new((asgi_ch *)self, W_SEND, msg);
}

/* _finish(exc): the host task ran the coroutine to its end. */
static PyObject *ch_finish_method(PyObject *self, PyObject *exc) {
  if (cm_py_asgi_ch_finish((asgi_ch *)self, exc) < 0) return NULL;
  Py_RETURN_NONE;
}

/* cancel(): throws CancelledError into a coroutine parked here (at
 * shutdown); one in a task is cancelled through its task. */
static PyObject *ch_cancel(PyObject *self, PyObject *unused) {
  (void)unused;
  asgi_ch *ch = (asgi_ch *)self;
  if (!ch->parked || ch->stepping) Py_RETURN_FALSE;
  PyObject *exc = PyObject_CallNoArgs(ch->core->cancelled);
  if (exc == NULL) return NULL;
  ch->parked = 0;
  ch->waiting = W_NONE;
  int rc = cm_py_asgi_step(ch, exc);
  Py_DECREF(exc);
  if (rc < 0) return NULL;
  Py_RETURN_TRUE;
}

/* shutdown(): a WebSocket still open is closed with 1001. */
static PyObject *ch_shutdown(PyObject *self, PyObject *unused) {
  (void)unused;
  asgi_ch *ch = (asgi_ch *)self;
  struct cm_conn *c = live_conn(ch);
  if (!ch->is_ws || !ch->accepted || ch->closed || ch->disconnected || c == NULL) Py_RETURN_FALSE;
  ch->closed = 1;
  cm_py_manager *mo = cm_py_conn_enter(c);
  (void)cm_ws_close(c, 1001, "server shutdown");
  if (cm_py_conn_leave(mo) < 0) return NULL;
  Py_RETURN_TRUE;
}

static PyObject *ch_get_flag(PyObject *self, void *closure) {
  asgi_ch *ch = (asgi_ch *)self;
  switch ((int)(intptr_t)closure) {
    case 0: return PyBool_FromLong(ch->is_ws);
    case 1: return PyBool_FromLong(ch->parked);
    case 2: return PyBool_FromLong(ch->task_mode);
    default: return PyBool_FromLong(ch->finished);
  }
}

static int ch_traverse(PyObject *self, visitproc visit, void *arg) {
  asgi_ch *ch = (asgi_ch *)self;
  Py_VISIT(Py_TYPE(self));
  Py_VISIT(ch->core);
  Py_VISIT(ch->cs);
  Py_VISIT(ch->conn);
  Py_VISIT(ch->coro);
  Py_VISIT(ch->ctx);
  Py_VISIT(ch->host);
  Py_VISIT(ch->host_inbox);
  Py_VISIT(ch->recv_waiter);
  Py_VISIT(ch->send_waiter);
  Py_VISIT(ch->inbox);
  Py_VISIT(ch->request_body);
  return 0;
}

static int ch_clear(PyObject *self) {
  asgi_ch *ch = (asgi_ch *)self;
  Py_CLEAR(ch->core);
  Py_CLEAR(ch->cs);
  Py_CLEAR(ch->conn);
  Py_CLEAR(ch->coro);
  Py_CLEAR(ch->ctx);
  Py_CLEAR(ch->host);
  Py_CLEAR(ch->host_inbox);
  Py_CLEAR(ch->recv_waiter);
  Py_CLEAR(ch->send_waiter);
  Py_CLEAR(ch->inbox);
  Py_CLEAR(ch->request_body);
  Py_CLEAR(ch->head);
  Py_CLEAR(ch->start_headers);
  Py_CLEAR(ch->close_reason);
  return 0;
}

static void ch_dealloc(PyObject *self) {
  PyTypeObject *tp = Py_TYPE(self);
  PyObject_GC_UnTrack(self);
  ch_clear(self);
  tp->tp_free(self);
  Py_DECREF(tp);
}

static PyMethodDef ch_methods[] = {
    {"receive", ch_receive, METH_NOARGS,
     "receive($self, /)\n--\n\nAn awaitable of the next ASGI event for the application."},
    {"send", ch_send, METH_O, "send($self, message, /)\n--\n\nAn awaitable that sends message."},
    {"_finish", ch_finish_method, METH_O,
     "_finish($self, exc, /)\n--\n\nThe application ended (exc: None or what it raised)."},
    {"cancel", ch_cancel, METH_NOARGS,
     "cancel($self, /)\n--\n\nThrows CancelledError into a coroutine waiting here; False if none."},
    {"shutdown", ch_shutdown, METH_NOARGS,
     "shutdown($self, /)\n--\n\nCloses an open WebSocket with 1001."},
    {NULL, NULL, 0, NULL}};

/* What getattr(ch, "receive"/"send") gives, without the lookups. */
int cm_py_asgi_ch_bound(asgi_ch *ch, PyObject **receive, PyObject **send) {
  *receive = PyCFunction_NewEx(&ch_methods[0], (PyObject *)ch, NULL);
  *send = *receive == NULL ? NULL : PyCFunction_NewEx(&ch_methods[1], (PyObject *)ch, NULL);
  return *send == NULL ? -1 : 0;
}

static PyGetSetDef ch_getset[] = {
    {"is_websocket", ch_get_flag, NULL, "A WebSocket (else an HTTP request).", (void *)0},
    {"parked", ch_get_flag, NULL, "The coroutine waits here, stepped by the core.", (void *)1},
    {"in_task", ch_get_flag, NULL, "The coroutine runs in an asyncio task.", (void *)2},
    {"finished", ch_get_flag, NULL, "The application has returned.", (void *)3},
    {NULL, NULL, NULL, NULL, NULL}};

static PyType_Slot ch_slots[] = {
    {Py_tp_dealloc, ch_dealloc},
    {Py_tp_traverse, ch_traverse},
    {Py_tp_clear, ch_clear},
    {Py_tp_methods, ch_methods},
    {Py_tp_getset, ch_getset},
    {Py_tp_doc, "One ASGI connection of cymongoose.asgi: receive() and send() for the app."},
    {0, NULL}};

static PyType_Spec ch_spec = {
    .name = "cymongoose._mongoose._AsgiChannel",
    .basicsize = sizeof(asgi_ch),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = ch_slots,
};

int cm_py_asgi_channel_exec(PyObject *m) {
  PyType_Spec *specs[] = {&op_spec, &ch_spec};
  for (size_t i = 0; i < 2; i++) {
    PyObject *tp = PyType_FromModuleAndSpec(m, specs[i], NULL);
    if (tp == NULL) return -1;
    int rc = PyModule_AddType(m, (PyTypeObject *)tp);
    Py_DECREF(tp);
    if (rc < 0) return -1;
  }
  return 0;
}
