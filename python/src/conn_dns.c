/*
 * Python bindings of the resolver and the SNTP client:
 * Connection.resolve(url), Connection.resolve_cancel(),
 * Connection.sntp_request() (listed in conn_methods.h) and
 * Manager.sntp_connect(url, handler=None) (listed in mgr_methods.h).
 * The Manager(dns=..., dns_timeout_ms=...) arguments are in manager.c.
 */
#include <errno.h>

#include "core.h"
#include "mgr_methods.h"

PyObject *cm_py_conn_resolve(PyObject *self, PyObject *url_obj) {
  struct cm_conn *c = cm_py_conn_get(self);
  if (c == NULL) return NULL;
  const char *url = PyUnicode_AsUTF8(url_obj);
  if (url == NULL) return NULL;
  if (c->is_closing) {
    PyErr_SetString(PyExc_RuntimeError, "resolve(): the connection is closing");
    return NULL;
  }
  /* Never delivers events inside the call; bracketed like every entry. */
  cm_py_manager *mo = cm_py_conn_enter(c);
  int rc = cm_resolve(c, url);
  if (cm_py_conn_leave(mo) < 0) return NULL;
  if (rc != 0) {
    if (rc == CM_ENOMEM) return PyErr_NoMemory();
    PyErr_Format(PyExc_ValueError, "resolve(): no host in %R", url_obj);
    return NULL;
  }
  Py_RETURN_NONE;
}

PyObject *cm_py_conn_resolve_cancel(PyObject *self, PyObject *unused) {
  (void)unused;
  struct cm_conn *c = cm_py_conn_get(self);
  if (c == NULL) return NULL;
  cm_py_manager *mo = cm_py_conn_enter(c);
  cm_resolve_cancel(c);
  if (cm_py_conn_leave(mo) < 0) return NULL;
  Py_RETURN_NONE;
}

PyObject *cm_py_conn_sntp_request(PyObject *self, PyObject *unused) {
  (void)unused;
  struct cm_conn *c = cm_py_conn_get(self);
  if (c == NULL) return NULL;
  cm_py_manager *mo = cm_py_conn_enter(c);
  bool ok = cm_sntp_request(c) == 0;
  if (cm_py_conn_leave(mo) < 0) return NULL;
  return PyBool_FromLong(ok);
}

PyObject *cm_py_mgr_sntp_connect(PyObject *self, PyObject *args, PyObject *kwds) {
  cm_py_manager *mo = (cm_py_manager *)self;
  static char *kwlist[] = {"url", "handler", NULL};
  const char *url;
  PyObject *handler = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "s|O:sntp_connect", kwlist, &url, &handler))
    return NULL;
  if (cm_py_check_url(url, true) < 0) return NULL;
  cm_py_conn *co = cm_py_conn_prepare(mo, handler);
  if (co == NULL) return NULL;
  errno = 0;
  struct cm_conn *c = cm_sntp_connect(&mo->mgr, url, cm_py_on_event, co);
  return cm_py_conn_finish(mo, co, c, "connect to", url);
}
