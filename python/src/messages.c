/* Placeholder: filled in by the module that owns it. */
#include "module.h"

int cm_py_messages_exec(PyObject *m) {
  (void)m;
  return 0;
}
