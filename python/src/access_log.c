/*
 * Manager.listen(..., access_log=..., access_log_format="combined"): the C
 * HTTP server's access log (src/http/access_log.c) written to Python.
 *
 * access_log is an int (a file descriptor: lines go out with write(2), no
 * Python involved; the caller keeps it open), an object with a write()
 * method (a text file, sys.stdout: write(line + "\n")), or a callable
 * (called with the line, without newline).  The manager keeps what it was
 * given until it is closed, which outlives every connection that could log,
 * so the C side holds a borrowed pointer.
 */
#include "core.h"

#include <string.h>

/* arg: a tuple (fn, add_newline) owned by mo->access_logs. */
static void python_sink(const char *line, size_t len, void *arg) {
  PyObject *entry = arg;
  PyGILState_STATE g = PyGILState_Ensure();
  PyObject *fn = PyTuple_GET_ITEM(entry, 0);
  bool newline = PyTuple_GET_ITEM(entry, 1) == Py_True;
  PyObject *text = PyUnicode_DecodeLatin1(line, (Py_ssize_t)len, NULL); /* escaped: ASCII */
  if (text != NULL && newline) {
    PyObject *nl = PyUnicode_FromString("\n");
    if (nl != NULL) PyUnicode_Append(&text, nl);
    Py_XDECREF(nl);
  }
  PyObject *res = text != NULL ? PyObject_CallOneArg(fn, text) : NULL;
  if (res == NULL) PyErr_WriteUnraisable(fn); /* logging must not break a reply */
  Py_XDECREF(res);
  Py_XDECREF(text);
  PyGILState_Release(g);
}

int cm_py_access_log_opts(cm_py_manager *mo, PyObject *sink, PyObject *format,
                          struct cm_http_serve_opts *opts) {
  if (format != NULL && format != Py_None) {
    const char *f = PyUnicode_Check(format) ? PyUnicode_AsUTF8(format) : NULL;
    if (f == NULL || (strcmp(f, "common") != 0 && strcmp(f, "combined") != 0)) {
      PyErr_Clear();
      PyErr_SetString(PyExc_ValueError, "access_log_format must be 'common' or 'combined'");
      return -1;
    }
    opts->access_log_format = strcmp(f, "common") == 0 ? CM_HTTP_LOG_COMMON : CM_HTTP_LOG_COMBINED;
  } else {
    opts->access_log_format = CM_HTTP_LOG_COMBINED;
  }
  if (sink == NULL || sink == Py_None) return 0;
  if (PyLong_Check(sink)) {
    long fd = PyLong_AsLong(sink);
    if (fd < 0 || fd > INT32_MAX) {
      if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "access_log: not a file descriptor");
      return -1;
    }
    opts->access_log = cm_http_access_log_fd;
    opts->access_log_arg = (void *)(intptr_t)fd;
    return 0;
  }
  PyObject *fn;
  bool newline = false;
  fn = PyObject_GetAttrString(sink, "write");
  if (fn == NULL) {
    if (!PyErr_ExceptionMatches(PyExc_AttributeError)) return -1;
    PyErr_Clear();
  }
  if (fn != NULL) {
    newline = true;
  } else if (PyCallable_Check(sink)) {
    fn = Py_NewRef(sink);
  } else {
    PyErr_SetString(PyExc_TypeError, "access_log takes a file descriptor, a file or a callable");
    return -1;
  }
  PyObject *entry = Py_BuildValue("(NO)", fn, newline ? Py_True : Py_False);
  if (entry == NULL) return -1;
  if (mo->access_logs == NULL && (mo->access_logs = PyList_New(0)) == NULL) {
    Py_DECREF(entry);
    return -1;
  }
  int rc = PyList_Append(mo->access_logs, entry);
  Py_DECREF(entry); /* the list keeps it */
  if (rc < 0) return -1;
  opts->access_log = python_sink;
  opts->access_log_arg = entry;
  return 0;
}
