/* Placeholder until manager.c, connection.c and timer.c land. */
#include "module.h"

int cm_py_core_exec(PyObject *m) {
  (void)m;
  return 0;
}
