/* The shared argument binder (args.h). */
#include <string.h>

#include "args.h"

int cm_py_bind(const char *fname, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
               const char *const *names, int npos, int nreq, PyObject **out) {
  int nnames = 0;
  while (names[nnames] != NULL) out[nnames++] = NULL;
  if (nargs > npos) {
    PyErr_Format(PyExc_TypeError, "%s() takes at most %d positional arguments (%zd given)", fname,
                 npos, nargs);
    return -1;
  }
  for (Py_ssize_t i = 0; i < nargs; i++) out[i] = args[i];
  Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
  for (Py_ssize_t k = 0; k < nkw; k++) {
    const char *kw = PyUnicode_AsUTF8(PyTuple_GET_ITEM(kwnames, k));
    if (kw == NULL) return -1;
    int slot = -1;
    for (int j = 0; j < nnames; j++)
      if (strcmp(kw, names[j]) == 0) slot = j;
    if (slot < 0) {
      PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%s'", fname, kw);
      return -1;
    }
    if (out[slot] != NULL) {
      PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%s'", fname, kw);
      return -1;
    }
    out[slot] = args[nargs + k];
  }
  for (int j = 0; j < nreq; j++) {
    if (out[j] == NULL) {
      PyErr_Format(PyExc_TypeError, "%s() missing required argument '%s'", fname, names[j]);
      return -1;
    }
  }
  return 0;
}

int cm_py_buffer_get(PyObject *o, Py_buffer *view, const char *what) {
  if (PyUnicode_Check(o)) {
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(o, &n);
    if (s == NULL) return -1;
    return PyBuffer_FillInfo(view, o, (void *)s, n, 1, PyBUF_SIMPLE);
  }
  if (PyObject_CheckBuffer(o)) return PyObject_GetBuffer(o, view, PyBUF_SIMPLE);
  PyErr_Format(PyExc_TypeError, "%s must be str or bytes, not %.100s", what, Py_TYPE(o)->tp_name);
  return -1;
}
