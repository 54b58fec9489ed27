/*
 * Timer: a struct cm_timer living inside the Python object.
 *
 * Manager.timer_add() starts it with the object's own storage and takes a
 * reference on the object for the manager; the core calls timer_release()
 * once it stops referencing the storage (after the last firing, after
 * cancel(), or when the manager is closed), which drops that reference.  So
 * the storage outlives every use the core makes of it, and the core never
 * reads it after the release (which may free it: a fire-and-forget Timer
 * has no other reference).
 *
 * Threads: every call runs with the GIL held, and the poll thread touches
 * the core only with the GIL (see core.h), so timer_add() and cancel() may
 * come from any thread.  cancel() stops the timer at once (cm_timer_stop()).
 * timer_add() from another thread while poll() sleeps wakes it (the wakeup
 * path, when enabled): the sleeping loop computed its wait without the new
 * timer.
 */
#include "core.h"

#include <structmember.h>

static void timer_fire(void *arg) {
  cm_py_timer *t = arg;
  if (t->callback == NULL) return;
  PyObject *cb = Py_NewRef(t->callback);
  PyObject *res = PyObject_CallNoArgs(cb);
  if (res == NULL) {
    cm_py_report(t->mgr);
  } else {
    Py_DECREF(res);
  }
  Py_DECREF(cb);
}

static void timer_release(void *arg) {
  cm_py_timer *t = arg;
  cm_py_manager *mo = t->mgr;
  t->released = true;
  if (t->prev != NULL) {
    t->prev->next = t->next;
  } else if (mo->timers == t) {
    mo->timers = t->next;
  }
  if (t->next != NULL) t->next->prev = t->prev;
  t->next = t->prev = NULL;
  t->mgr = NULL;
  Py_DECREF(t); /* the manager's reference */
}

int cm_py_timers_traverse(cm_py_manager *mo, visitproc visit, void *arg) {
  for (cm_py_timer *t = mo->timers; t != NULL; t = t->next) Py_VISIT(t);
  return 0;
}

PyObject *cm_py_timer_add(cm_py_manager *mo, PyObject *const *args, Py_ssize_t nargs,
                          PyObject *kwnames) {
  static const char *const kwlist[] = {"milliseconds", "callback", "repeat", "run_now", NULL};
  PyObject *ms_obj, *callback, *repeat_obj = Py_False, *run_now_obj = Py_False;
  /* Keyword-only repeat/run_now: parse positionals strictly first. */
  Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
  if (nargs > 2) {
    PyErr_Format(PyExc_TypeError, "timer_add() takes 2 positional arguments but %zd were given",
                 nargs);
    return NULL;
  }
  PyObject *vals[4] = {nargs > 0 ? args[0] : NULL, nargs > 1 ? args[1] : NULL, NULL, NULL};
  for (Py_ssize_t i = 0; i < nkw; i++) {
    PyObject *k = PyTuple_GET_ITEM(kwnames, i);
    int idx = -1;
    for (int j = 0; kwlist[j] != NULL; j++) {
      if (PyUnicode_CompareWithASCIIString(k, kwlist[j]) == 0) idx = j;
    }
    if (idx < 0 || vals[idx] != NULL) {
      PyErr_Format(PyExc_TypeError, "timer_add() got an unexpected or repeated argument '%U'", k);
      return NULL;
    }
    vals[idx] = args[nargs + i];
  }
  ms_obj = vals[0];
  callback = vals[1];
  if (ms_obj == NULL || callback == NULL) {
    PyErr_SetString(PyExc_TypeError, "timer_add() needs ms and callback");
    return NULL;
  }
  if (vals[2] != NULL) repeat_obj = vals[2];
  if (vals[3] != NULL) run_now_obj = vals[3];

  long long ms = PyLong_AsLongLong(ms_obj);
  if (ms == -1 && PyErr_Occurred()) return NULL;
  if (ms < 0) {
    PyErr_SetString(PyExc_ValueError, "timer_add(): milliseconds must be >= 0");
    return NULL;
  }
  if (!PyCallable_Check(callback)) {
    PyErr_SetString(PyExc_TypeError, "timer_add(): callback must be callable");
    return NULL;
  }
  int repeat = PyObject_IsTrue(repeat_obj);
  if (repeat < 0) return NULL;
  int run_now = PyObject_IsTrue(run_now_obj);
  if (run_now < 0) return NULL;
  if (!mo->ready || mo->closing) {
    PyErr_SetString(PyExc_RuntimeError, "Manager is closed");
    return NULL;
  }

  PyTypeObject *tp = mo->st->timer_type;
  cm_py_timer *t = (cm_py_timer *)tp->tp_alloc(tp, 0);
  if (t == NULL) return NULL;
  t->callback = Py_NewRef(callback);
  t->mgr = mo;
  t->started = true;
  t->next = mo->timers;
  if (t->next != NULL) t->next->prev = t;
  mo->timers = t;
  Py_INCREF(t); /* the manager's reference, dropped by timer_release */
  unsigned flags = (repeat ? CM_TIMER_REPEAT : CM_TIMER_ONCE) | (run_now ? CM_TIMER_RUN_NOW : 0);
  cm_py_core_enter(mo);
  int rc = cm_timer_start(&mo->mgr, &t->t, (uint64_t)ms, flags, timer_fire, t, timer_release);
  /* Another thread is blocked in poll() with a wait computed before this
   * timer existed: wake it so that it computes the wait again. */
  if (rc == 0 && mo->sleeping) (void)cm_mgr_wake(&mo->mgr);
  cm_py_core_leave(mo);
  if (rc != 0) {
    timer_release(t); /* never scheduled: unlink and drop the manager's reference */
    Py_DECREF(t);
    return PyErr_NoMemory();
  }
  return (PyObject *)t;
}

static PyObject *timer_cancel(cm_py_timer *t, PyObject *unused) {
  (void)unused;
  cm_py_manager *mo = t->mgr;
  if (t->started && !t->released && mo != NULL && mo->ready) {
    /* Under the GIL the heap is never half-updated: stop it at once (the
     * release drops the manager's reference; the caller still holds one). */
    cm_py_core_enter(mo);
    cm_timer_stop(&mo->mgr, &t->t);
    cm_py_core_leave(mo);
  }
  Py_RETURN_NONE;
}

static PyObject *timer_get_active(cm_py_timer *t, void *closure) {
  (void)closure;
  return PyBool_FromLong(t->started && !t->released && cm_timer_active(&t->t));
}

static int timer_traverse(cm_py_timer *t, visitproc visit, void *arg) {
  Py_VISIT(Py_TYPE(t));
  Py_VISIT(t->callback);
  return 0;
}

static int timer_clear(cm_py_timer *t) {
  Py_CLEAR(t->callback);
  return 0;
}

static void timer_dealloc(cm_py_timer *t) {
  PyTypeObject *tp = Py_TYPE(t);
  PyObject_GC_UnTrack(t);
  if (t->weakreflist != NULL) PyObject_ClearWeakRefs((PyObject *)t);
  timer_clear(t);
  tp->tp_free((PyObject *)t);
  Py_DECREF(tp);
}

static PyObject *timer_repr(cm_py_timer *t) {
  return PyUnicode_FromFormat("<Timer %s>", (t->started && !t->released && cm_timer_active(&t->t))
                                                ? "active"
                                                : "inactive");
}

static PyMethodDef timer_methods[] = {
    {"cancel", (PyCFunction)timer_cancel, METH_NOARGS,
     "cancel($self)\n--\n\nStops the timer; the callback is not called again.  Thread-safe; "
     "harmless when already inactive."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef timer_getset[] = {
    {"active", (getter)timer_get_active, NULL, "True while scheduled and not cancelled.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef timer_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(cm_py_timer, weakreflist), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot timer_slots[] = {
    {Py_tp_doc, "A timer of a Manager, made by Manager.timer_add()."},
    {Py_tp_dealloc, timer_dealloc},
    {Py_tp_traverse, timer_traverse},
    {Py_tp_clear, timer_clear},
    {Py_tp_repr, timer_repr},
    {Py_tp_methods, timer_methods},
    {Py_tp_getset, timer_getset},
    {Py_tp_members, timer_members},
    {0, NULL},
};

static PyType_Spec timer_spec = {
    .name = "cymongoose._mongoose.Timer",
    .basicsize = sizeof(cm_py_timer),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_DISALLOW_INSTANTIATION |
             Py_TPFLAGS_IMMUTABLETYPE,
    .slots = timer_slots,
};

int cm_py_timer_exec(PyObject *m, cm_py_state *st) {
  st->timer_type = (PyTypeObject *)PyType_FromModuleAndSpec(m, &timer_spec, NULL);
  if (st->timer_type == NULL) return -1;
  return PyModule_AddType(m, st->timer_type);
}
