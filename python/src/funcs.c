/* Module-level functions: argument helpers, logging, clock, event names,
 * and the exec function that adds every function of funcs_*.c. */
#include <string.h>

#include "funcs.h"

int cm_py_bytes_get(PyObject *o, cm_py_bytes *b, const char *what) {
  b->has_view = 0;
  if (cm_py_buffer_get(o, &b->view, what) < 0) return -1;
  b->has_view = 1;
  b->buf = b->view.buf;
  b->len = b->view.len;
  return 0;
}

void cm_py_bytes_release(cm_py_bytes *b) {
  if (b->has_view) PyBuffer_Release(&b->view);
  b->has_view = 0;
}

int cm_py_cstr(PyObject *o, const char **s, Py_ssize_t *len, const char *what) {
  if (PyUnicode_Check(o)) {
    *s = PyUnicode_AsUTF8AndSize(o, len);
    if (*s == NULL) return -1;
  } else if (PyBytes_Check(o)) {
    *s = PyBytes_AS_STRING(o);
    *len = PyBytes_GET_SIZE(o);
  } else {
    PyErr_Format(PyExc_TypeError, "%s must be str or bytes, not %.100s", what, Py_TYPE(o)->tp_name);
    return -1;
  }
  if ((size_t)*len != strlen(*s)) {
    PyErr_Format(PyExc_ValueError, "%s must not contain NUL characters", what);
    return -1;
  }
  return 0;
}

/* ------------------------------------------------------------ misc */
static PyObject *py_millis(PyObject *m, PyObject *unused) {
  (void)m, (void)unused;
  return PyLong_FromUnsignedLongLong((unsigned long long)cm_millis());
}

static PyObject *py_log_set(PyObject *m, PyObject *arg) {
  (void)m;
  long level = PyLong_AsLong(arg);
  if (level == -1 && PyErr_Occurred()) return NULL;
  if (level < CM_LL_NONE || level > CM_LL_VERBOSE) {
    PyErr_Format(PyExc_ValueError, "log level must be %d..%d (MG_LL_NONE..MG_LL_VERBOSE), not %ld",
                 CM_LL_NONE, CM_LL_VERBOSE, level);
    return NULL;
  }
  cm_log_set((int)level);
  Py_RETURN_NONE;
}

static PyObject *py_log_get(PyObject *m, PyObject *unused) {
  (void)m, (void)unused;
  return PyLong_FromLong(cm_log_get());
}

static PyObject *py_event_name(PyObject *m, PyObject *arg) {
  (void)m;
  static const char *const names[] = {
      "MG_EV_ERROR",     "MG_EV_OPEN",      "MG_EV_POLL",      "MG_EV_RESOLVE",  "MG_EV_CONNECT",
      "MG_EV_ACCEPT",    "MG_EV_TLS_HS",    "MG_EV_READ",      "MG_EV_WRITE",    "MG_EV_CLOSE",
      "MG_EV_HTTP_HDRS", "MG_EV_HTTP_MSG",  "MG_EV_WS_OPEN",   "MG_EV_WS_MSG",   "MG_EV_WS_CTL",
      "MG_EV_MQTT_CMD",  "MG_EV_MQTT_MSG",  "MG_EV_MQTT_OPEN", "MG_EV_SNTP_TIME", "MG_EV_WAKEUP",
  };
  int overflow = 0;
  long long ev = PyLong_AsLongLongAndOverflow(arg, &overflow);
  if (ev == -1 && PyErr_Occurred()) return NULL;
  if (overflow != 0) return PyUnicode_FromFormat("MG_EV_UNKNOWN(%S)", arg);
  if (ev >= 0 && ev < (long long)(sizeof(names) / sizeof(names[0])))
    return PyUnicode_FromString(names[ev]);
  if (ev == CM_EV_USER) return PyUnicode_FromString("MG_EV_USER");
  if (ev > CM_EV_USER) return PyUnicode_FromFormat("MG_EV_USER+%lld", ev - CM_EV_USER);
  return PyUnicode_FromFormat("MG_EV_UNKNOWN(%lld)", ev);
}

CM_PY_KW1(py_log_set, "log_set", "level")
CM_PY_KW1(py_event_name, "event_name", "ev")

static PyMethodDef misc_methods[] = {
    {"millis", py_millis, METH_NOARGS,
     "millis()\n--\n\nMonotonic milliseconds since an arbitrary point (never goes back)."},
    {"log_set", CM_PY_FASTCALL_KW(py_log_set_kw),
     "log_set(level)\n--\n\nSets the C library's log level (MG_LL_NONE..MG_LL_VERBOSE); logs go to stderr."},
    {"log_get", py_log_get, METH_NOARGS, "log_get()\n--\n\nThe C library's log level."},
    {"event_name", CM_PY_FASTCALL_KW(py_event_name_kw),
     "event_name(ev)\n--\n\n\"MG_EV_HTTP_MSG\" for 11, \"MG_EV_USER+N\" for MG_EV_USER + N,\n"
     "\"MG_EV_UNKNOWN(N)\" for anything else."},
    {NULL, NULL, 0, NULL},
};

int cm_py_funcs_exec(PyObject *m) {
  PyMethodDef *tables[] = {misc_methods, cm_py_json_methods, cm_py_url_methods, cm_py_codec_methods,
                          cm_py_http_methods, cm_py_log_methods};
  for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++)
    if (PyModule_AddFunctions(m, tables[i]) < 0) return -1;
  return 0;
}
