/* Placeholder: filled in by the module that owns it. */
#include "module.h"

int cm_py_messages_exec(PyObject *m) {
  (void)m;
  return 0;
}

PyObject *cm_py_message_new(cm_py_state *st, int ev, void *ev_data) {
  (void)st, (void)ev, (void)ev_data;
  Py_RETURN_NONE;
}

void cm_py_message_invalidate(PyObject *view) { (void)view; }
