/*
 * Rpc and RpcReq: the C JSON-RPC dispatcher (src/util/rpc.c) with Python
 * callables as methods.
 *
 * Rpc keeps its handlers in a dict (name -> callable), which owns them; the
 * C dispatcher's fn_data borrows the callable, and the trampoline holds its
 * own reference while calling it (a handler may replace itself).  An RpcReq
 * points at the C request only while its handler runs; afterwards its
 * methods raise RuntimeError and its properties return what they had cached
 * (or empty values).
 */
#include <stddef.h>
#include <string.h>

#include "funcs.h"

typedef struct {
  PyObject_HEAD
  struct cm_rpc rpc;
  PyObject *handlers; /* dict: pattern -> callable */
  /* A BaseException (KeyboardInterrupt, SystemExit...) raised by a handler:
   * the rest of the frame is skipped and process() re-raises it.  Kept in
   * the object rather than on process()'s stack because a handler may let
   * another thread run process() meanwhile. */
  PyObject *pend_type, *pend_value, *pend_tb;
} RpcObject;

typedef struct {
  PyObject_HEAD
  struct cm_rpc_req *req; /* NULL once the handler has returned */
  PyObject *frame;        /* cached str, or NULL */
} RpcReqObject;

#define RPC_OF(c_rpc) ((RpcObject *)((char *)(c_rpc) - offsetof(RpcObject, rpc)))

static PyObject *text(struct cm_str s) {
  return PyUnicode_DecodeUTF8(s.buf == NULL ? "" : s.buf, (Py_ssize_t)s.len, "replace");
}

/* ---------------------------------------------------------------- RpcReq */
static void req_dealloc(RpcReqObject *self) {
  PyTypeObject *tp = Py_TYPE(self);
  Py_CLEAR(self->frame);
  tp->tp_free((PyObject *)self);
  Py_DECREF(tp);
}

static PyObject *req_frame(RpcReqObject *self, void *closure) {
  (void)closure;
  if (self->frame == NULL) {
    if (self->req == NULL) return PyUnicode_FromString("");
    if ((self->frame = text(self->req->frame)) == NULL) return NULL;
  }
  return Py_NewRef(self->frame);
}

/* Raw JSON text of a member, None when absent or no longer available. */
static PyObject *raw_or_none(struct cm_str s) {
  if (s.buf == NULL || s.len == 0) Py_RETURN_NONE;
  return text(s);
}

static PyObject *req_id(RpcReqObject *self, void *closure) {
  (void)closure;
  return self->req == NULL ? Py_NewRef(Py_None) : raw_or_none(self->req->id);
}

static PyObject *req_params(RpcReqObject *self, void *closure) {
  (void)closure;
  return self->req == NULL ? Py_NewRef(Py_None) : raw_or_none(self->req->params);
}

static PyObject *req_method(RpcReqObject *self, void *closure) {
  (void)closure;
  if (self->req == NULL) return PyUnicode_FromString("");
  struct cm_str m = self->req->method; /* escaped, without quotes */
  char small[256], *buf = m.len + 2 <= sizeof(small) ? small : PyMem_Malloc(m.len + 2);
  if (buf == NULL) return PyErr_NoMemory();
  long n = cm_json_unescape(cm_str_n(m.buf - 1, m.len + 2), buf, m.len + 2);
  PyObject *r = text(cm_str_n(buf, n < 0 ? 0 : (size_t)n));
  if (buf != small) PyMem_Free(buf);
  return r;
}

static PyObject *req_is_notification(RpcReqObject *self, void *closure) {
  (void)closure;
  return PyBool_FromLong(self->req != NULL && self->req->id.buf == NULL);
}

static PyObject *req_answered(RpcReqObject *self, void *closure) {
  (void)closure;
  return PyBool_FromLong(self->req == NULL || self->req->answered);
}

/* The live request, or NULL with RuntimeError set. */
static struct cm_rpc_req *live(RpcReqObject *self) {
  if (self->req == NULL) {
    PyErr_SetString(PyExc_RuntimeError,
                    "RpcReq is no longer valid: answer before the handler returns");
    return NULL;
  }
  if (self->req->answered) {
    PyErr_SetString(PyExc_RuntimeError, "response already sent for this request");
    return NULL;
  }
  return self->req;
}

static PyObject *req_ok(RpcReqObject *self, PyObject *arg) {
  struct cm_rpc_req *req = live(self);
  if (req == NULL) return NULL;
  cm_py_bytes b;
  if (cm_py_bytes_get(arg, &b, "result_json") < 0) return NULL;
  int rc = cm_rpc_ok(req, cm_str_n(b.buf, (size_t)b.len));
  cm_py_bytes_release(&b);
  if (rc == CM_EINVAL)
    return PyErr_Format(PyExc_ValueError,
                        "result_json must be one JSON value (e.g. json.dumps(result)), got %.200R", arg);
  if (rc == CM_ENOMEM) return PyErr_NoMemory();
  Py_RETURN_NONE;
}

static PyObject *req_err(RpcReqObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kw) {
  static const char *const names[] = {"code", "message", NULL};
  PyObject *slot[2];
  if (cm_py_bind("err", args, nargs, kw, names, 2, 2, slot) < 0) return NULL;
  int overflow = 0;
  long code = PyLong_AsLongAndOverflow(slot[0], &overflow);
  if (code == -1 && PyErr_Occurred()) return NULL;
  if (overflow != 0 || code < -2147483647L - 1 || code > 2147483647L)
    return PyErr_Format(PyExc_OverflowError, "code must fit in 32 bits");
  const char *msg;
  Py_ssize_t mlen;
  if (cm_py_cstr(slot[1], &msg, &mlen, "message") < 0) return NULL;
  struct cm_rpc_req *req = live(self);
  if (req == NULL) return NULL;
  if (cm_rpc_err(req, (int)code, msg) == CM_ENOMEM) return PyErr_NoMemory();
  Py_RETURN_NONE;
}

static PyGetSetDef req_getset[] = {
    {"frame", (getter)req_frame, NULL, "The request object's JSON text.", NULL},
    {"id", (getter)req_id, NULL, "The raw JSON of \"id\", None for a notification.", NULL},
    {"method", (getter)req_method, NULL, "The method name.", NULL},
    {"params", (getter)req_params, NULL, "The raw JSON of \"params\", None when absent.", NULL},
    {"is_notification", (getter)req_is_notification, NULL, "True when no response is expected.", NULL},
    {"answered", (getter)req_answered, NULL, "True once ok() or err() was called.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

CM_PY_KW1(req_ok, "ok", "result_json")

static PyMethodDef req_methods[] = {
    {"ok", CM_PY_FASTCALL_KW(req_ok_kw),
     "ok($self, /, result_json)\n--\n\nAnswers with a result: result_json is raw JSON text (json.dumps(x)).\n"
     "ValueError when it is not one JSON value; RuntimeError when already answered\n"
     "or after the handler returned."},
    {"err", CM_PY_FASTCALL_KW(req_err),
     "err($self, /, code, message)\n--\n\nAnswers with an error object; RuntimeError when already answered."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot req_slots[] = {
    {Py_tp_dealloc, req_dealloc},
    {Py_tp_getset, req_getset},
    {Py_tp_methods, req_methods},
    {Py_tp_doc, "A JSON-RPC request passed to an Rpc method handler; valid during the call."},
    {0, NULL},
};

static PyType_Spec req_spec = {
    .name = "cymongoose._mongoose.RpcReq",
    .basicsize = sizeof(RpcReqObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = req_slots,
};

/* ------------------------------------------------------------------- Rpc */
/* The C method handler: calls the Python callable with an RpcReq. */
static void trampoline(struct cm_rpc_req *req) {
  RpcObject *rpc = RPC_OF(req->rpc);
  if (rpc->pend_type != NULL) {
    cm_rpc_err(req, CM_RPC_INTERNAL_ERROR, "Internal error: processing was interrupted");
    return;
  }
  cm_py_state *st = cm_py_state_of_type(Py_TYPE(rpc));
  PyObject *fn = Py_NewRef((PyObject *)req->fn_data);
  RpcReqObject *r = st == NULL ? NULL : PyObject_New(RpcReqObject, st->rpc_req_type);
  PyObject *res = NULL;
  if (r != NULL) {
    r->req = req;
    r->frame = NULL;
    res = PyObject_CallOneArg(fn, (PyObject *)r);
    r->req = NULL; /* the request ends with the call */
    Py_DECREF(r);
  }
  Py_DECREF(fn);
  if (res != NULL) {
    Py_DECREF(res);
    return;
  }
  if (!PyErr_ExceptionMatches(PyExc_Exception)) {
    /* KeyboardInterrupt and friends are not the method's failure: re-raise */
    if (rpc->pend_type == NULL) {
      PyErr_Fetch(&rpc->pend_type, &rpc->pend_value, &rpc->pend_tb);
    } else {
      PyErr_Clear(); /* one is already pending (another thread's): keep it */
    }
    cm_rpc_err(req, CM_RPC_INTERNAL_ERROR, "Internal error: processing was interrupted");
    return;
  }
  PyObject *type, *exc, *tb;
  PyErr_Fetch(&type, &exc, &tb);
  PyErr_NormalizeException(&type, &exc, &tb);
  Py_XDECREF(type);
  Py_XDECREF(tb);
  if (exc == NULL) exc = Py_NewRef(Py_None);
  PyObject *msg = PyUnicode_FromFormat("%s: %S", Py_TYPE(exc)->tp_name, exc);
  const char *m = msg == NULL ? NULL : PyUnicode_AsUTF8(msg);
  if (m == NULL) PyErr_Clear();
  /* a handler that answered and then raised keeps its answer */
  cm_rpc_err(req, CM_RPC_INTERNAL_ERROR, m == NULL ? "Internal error" : m);
  Py_XDECREF(msg);
  Py_DECREF(exc);
}

static PyObject *rpc_new(PyTypeObject *tp, PyObject *args, PyObject *kwds) {
  static char *kwlist[] = {"max_depth", NULL};
  int max_depth = CM_JSON_MAX_DEPTH;
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "|$i:Rpc", kwlist, &max_depth)) return NULL;
  if (max_depth < 1 || max_depth > CM_JSON_DEPTH_CAP)
    return PyErr_Format(PyExc_ValueError, "max_depth must be 1..%d", CM_JSON_DEPTH_CAP);
  RpcObject *self = (RpcObject *)tp->tp_alloc(tp, 0);
  if (self == NULL) return NULL;
  self->rpc.methods = NULL;
  self->rpc.max_depth = max_depth;
  self->pend_type = self->pend_value = self->pend_tb = NULL;
  if ((self->handlers = PyDict_New()) == NULL) {
    Py_DECREF(self);
    return NULL;
  }
  return (PyObject *)self;
}

static int rpc_traverse(RpcObject *self, visitproc visit, void *arg) {
  Py_VISIT(Py_TYPE(self));
  Py_VISIT(self->handlers);
  Py_VISIT(self->pend_type);
  Py_VISIT(self->pend_value);
  Py_VISIT(self->pend_tb);
  return 0;
}

static int rpc_clear(RpcObject *self) {
  cm_rpc_free(&self->rpc); /* no borrowed pointers may outlive the dict */
  Py_CLEAR(self->handlers);
  Py_CLEAR(self->pend_type);
  Py_CLEAR(self->pend_value);
  Py_CLEAR(self->pend_tb);
  return 0;
}

static void rpc_dealloc(RpcObject *self) {
  PyTypeObject *tp = Py_TYPE(self);
  PyObject_GC_UnTrack(self);
  rpc_clear(self);
  tp->tp_free((PyObject *)self);
  Py_DECREF(tp);
}

static PyObject *rpc_add(RpcObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kw) {
  static const char *const names[] = {"method", "handler", NULL};
  PyObject *slot[2];
  if (cm_py_bind("add", args, nargs, kw, names, 2, 2, slot) < 0) return NULL;
  if (!PyUnicode_Check(slot[0])) return PyErr_Format(PyExc_TypeError, "method must be str");
  if (!PyCallable_Check(slot[1])) return PyErr_Format(PyExc_TypeError, "handler must be callable");
  const char *name;
  Py_ssize_t len;
  if (cm_py_cstr(slot[0], &name, &len, "method") < 0) return NULL;
  if (self->handlers == NULL) return PyErr_Format(PyExc_RuntimeError, "Rpc has been cleared");
  /* the dict first: it owns the callable the C side borrows */
  if (PyDict_SetItem(self->handlers, slot[0], slot[1]) < 0) return NULL;
  if (cm_rpc_add(&self->rpc, name, trampoline, slot[1]) < 0) {
    PyDict_DelItem(self->handlers, slot[0]);
    return PyErr_NoMemory();
  }
  Py_RETURN_NONE;
}

static PyObject *rpc_process(RpcObject *self, PyObject *arg) {
  cm_py_bytes b;
  if (cm_py_bytes_get(arg, &b, "frame") < 0) return NULL;
  struct cm_buf out = {0};
  Py_INCREF(self); /* a handler may drop the last other reference */
  int rc = cm_rpc_process(&self->rpc, cm_str_n(b.buf, (size_t)b.len), &out);
  cm_py_bytes_release(&b);
  PyObject *r = NULL;
  if (self->pend_type != NULL) {
    PyErr_Restore(self->pend_type, self->pend_value, self->pend_tb);
    self->pend_type = self->pend_value = self->pend_tb = NULL;
  } else if (rc < 0) {
    PyErr_NoMemory();
  } else {
    r = PyUnicode_DecodeUTF8(out.len == 0 ? "" : (const char *)cm_buf_data(&out), (Py_ssize_t)out.len,
                             "replace");
  }
  cm_buf_free(&out);
  Py_DECREF(self);
  return r;
}

static PyObject *rpc_methods_get(RpcObject *self, void *closure) {
  (void)closure;
  return self->handlers == NULL ? PyList_New(0) : PyDict_Keys(self->handlers);
}

CM_PY_KW1(rpc_process, "process", "frame")

static PyMethodDef rpc_methods[] = {
    {"add", CM_PY_FASTCALL_KW(rpc_add),
     "add($self, /, method, handler)\n--\n\nRegisters handler(req) for method, a name or a match() pattern\n"
     "('*', '#', '?').  Adding the same method again replaces its handler; among\n"
     "patterns the one added first wins."},
    {"process", CM_PY_FASTCALL_KW(rpc_process_kw),
     "process($self, /, frame)\n--\n\nHandles one JSON-RPC 2.0 frame (request, notification or batch)\n"
     "and returns the response JSON, \"\" when there is nothing to send."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef rpc_getset[] = {
    {"methods", (getter)rpc_methods_get, NULL, "The registered method names, in order added.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot rpc_slots[] = {
    {Py_tp_new, rpc_new},
    {Py_tp_dealloc, rpc_dealloc},
    {Py_tp_traverse, rpc_traverse},
    {Py_tp_clear, rpc_clear},
    {Py_tp_methods, rpc_methods},
    {Py_tp_getset, rpc_getset},
    {Py_tp_doc, "Rpc(*, max_depth=128)\n--\n\nJSON-RPC 2.0 dispatcher: add() methods, process() frames."},
    {0, NULL},
};

static PyType_Spec rpc_spec = {
    .name = "cymongoose._mongoose.Rpc",
    .basicsize = sizeof(RpcObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = rpc_slots,
};

int cm_py_rpc_exec(PyObject *m) {
  cm_py_state *st = PyModule_GetState(m);
  st->rpc_type = (PyTypeObject *)PyType_FromModuleAndSpec(m, &rpc_spec, NULL);
  if (st->rpc_type == NULL) return -1;
  st->rpc_req_type = (PyTypeObject *)PyType_FromModuleAndSpec(m, &req_spec, NULL);
  if (st->rpc_req_type == NULL) return -1;
  if (PyModule_AddType(m, st->rpc_type) < 0) return -1;
  if (PyModule_AddType(m, st->rpc_req_type) < 0) return -1;
  return 0;
}
