/*
 * Argument binding shared by every function and method of the extension
 * (module functions, Connection, Manager, messages, Rpc; the MQTT methods
 * too): one parser for METH_FASTCALL | METH_KEYWORDS, so that every
 * argument can be given by keyword under its documented name, as in the
 * original package (a Cython def API), while calls stay on the fast path.
 *
 * Use (CM_PY_KW1 below does it for a one-argument METH_O function):
 *   static PyObject *conn_send(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
 *                              PyObject *kwnames) {
 *     static const char *const names[] = {"data", NULL};
 *     PyObject *a[1];
 *     if (cm_py_bind("send", args, nargs, kwnames, names, 1, 1, a) < 0) return NULL;
 *     ...
 *   }
 *   {"send", CM_PY_FASTCALL_KW(conn_send), "send($self, /, data)\n--\n\n..."},
 *
 * The docstring starts with the text signature (the "name(sig)\n--\n\n"
 * convention; "$self, /" first for methods, "$module, /" may be omitted for
 * functions; no return annotation), which inspect.signature() and help()
 * read, and which python/cymongoose/_mongoose.pyi must match (make
 * test-stubs runs mypy.stubtest).
 */
#ifndef CM_PY_ARGS_H
#define CM_PY_ARGS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/*
 * Binds METH_FASTCALL|METH_KEYWORDS arguments to the named slots out[0..]
 * (NULL-terminated names).  The first npos names may be given by position,
 * the rest only by keyword; the first nreq are required.  Slots not given
 * stay NULL.  Returns 0, or -1 with TypeError set.  References are borrowed.
 */
int cm_py_bind(const char *fname, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
               const char *const *names, int npos, int nreq, PyObject **out);

/* The one argument `name` of a function taking exactly one (positional or
 * by keyword) into *out (borrowed).  0, or -1 with TypeError set. */
static inline int cm_py_bind1(const char *fname, const char *name, PyObject *const *args,
                              Py_ssize_t nargs, PyObject *kwnames, PyObject **out) {
  if (nargs == 1 && kwnames == NULL) {
    *out = args[0];
    return 0;
  }
  const char *names[2] = {name, NULL};
  return cm_py_bind(fname, args, nargs, kwnames, names, 1, 1, out);
}

/*
 * The one "str or buffer" reader of the extension: the bytes of o, a str
 * as UTF-8 (the view points into the str's cached UTF-8 and holds a
 * reference to it) or any object with the buffer protocol (bytes,
 * bytearray, memoryview...).  Fills *view (release it with
 * PyBuffer_Release) and returns 0, or -1 with an exception: TypeError
 * naming the argument what when o is neither.
 */
int cm_py_buffer_get(PyObject *o, Py_buffer *view, const char *what);

/* A PyMethodDef's ml_meth and ml_flags for a function taking
 * (self, args, nargs, kwnames). */
#define CM_PY_FASTCALL_KW(fn) (PyCFunction)(void (*)(void))(fn), METH_FASTCALL | METH_KEYWORDS

/* Defines fn##_kw, a METH_FASTCALL|METH_KEYWORDS front for fn, a METH_O
 * function (self, arg): the one argument may then be given as argname=. */
#define CM_PY_KW1(fn, fname, argname)                                                  \
  static PyObject *fn##_kw(PyObject *self, PyObject *const *args, Py_ssize_t nargs,    \
                           PyObject *kwnames) {                                        \
    PyObject *arg_;                                                                    \
    if (cm_py_bind1(fname, argname, args, nargs, kwnames, &arg_) < 0) return NULL;     \
    return fn((void *)self, arg_);                                                     \
  }

#endif
