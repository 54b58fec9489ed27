/*
 * _log_set_sink(callable_or_None): routes the C library's log lines to a
 * Python callable, called as callable(level, file, line, message).  The
 * Python side (cymongoose/_logging.py) maps them onto the logging module.
 *
 * The C log sink is one for the whole process, so the callable is held by
 * that registration (a strong reference owned here), not by a manager.  Log
 * lines may come from any thread that calls into the library, with or
 * without the GIL: the sink takes it.  Nothing of this runs while the C log
 * level is CM_LL_NONE, the default.
 */
#include "funcs.h"

static PyObject *sink_callable; /* the registered callable; guarded by the GIL */

static void python_sink(int level, const char *file, int line, const char *msg, void *arg) {
  (void)arg;
  if (!Py_IsInitialized()) return;
  PyGILState_STATE g = PyGILState_Ensure();
  PyObject *fn = sink_callable;
  if (fn != NULL) {
    Py_INCREF(fn);
    /* An exception raised while logging must not replace one in flight. */
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyObject *res = PyObject_CallFunction(fn, "isis", level, file, line, msg);
    if (res == NULL) PyErr_WriteUnraisable(fn);
    Py_XDECREF(res);
    PyErr_Restore(type, value, tb);
    Py_DECREF(fn);
  }
  PyGILState_Release(g);
}

static PyObject *py_log_set_sink(PyObject *m, PyObject *fn) {
  (void)m;
  if (fn != Py_None && !PyCallable_Check(fn)) {
    PyErr_SetString(PyExc_TypeError, "_log_set_sink takes a callable or None");
    return NULL;
  }
  PyObject *old = sink_callable;
  if (fn == Py_None) {
    cm_log_set_sink(NULL, NULL);
    sink_callable = NULL;
  } else {
    sink_callable = Py_NewRef(fn);
    cm_log_set_sink(python_sink, NULL);
  }
  Py_XDECREF(old);
  Py_RETURN_NONE;
}

PyMethodDef cm_py_log_methods[] = {
    {"_log_set_sink", py_log_set_sink, METH_O,
     "_log_set_sink(fn, /)\n--\n\nSends C log lines to fn(level, file, line, message); None: back to stderr.\n"
     "Use cymongoose.log_to_logging() rather than this."},
    {NULL, NULL, 0, NULL},
};
