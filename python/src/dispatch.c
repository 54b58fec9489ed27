/*
 * The event trampoline: turns a C event of a connection into a call
 * handler(conn, ev, data), and routes exceptions raised by Python callbacks.
 *
 * Every event of a connection reaches Python through the same Connection
 * object, made on the connection's first event and kept in c->ext until its
 * CLOSE has been delivered; then, if nothing else refers to it, the manager
 * keeps it for a later connection (connection.c, cm_py_conn_detach).  POLL
 * reaches every connection periodically, so the common path allocates
 * nothing: small ints are cached by CPython and data is None.
 */
#include "core.h"

#include <string.h>

void cm_py_report(cm_py_manager *mo) {
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  if (type == NULL) return;
  PyErr_NormalizeException(&type, &value, &tb);
  if (tb != NULL && value != NULL) PyException_SetTraceback(value, tb);
  if (mo == NULL) {
    PyErr_Restore(type, value, tb);
    PyErr_WriteUnraisable(NULL);
    return;
  }
  if (!PyErr_GivenExceptionMatches(type, PyExc_Exception)) {
    /* KeyboardInterrupt, SystemExit: the loop must stop, so the API call
     * that runs it raises this once the C core is back in a clean state. */
    if (mo->pending_exc == NULL) {
      mo->pending_exc = value;
      value = NULL;
    }
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    return;
  }
  if (mo->error_handler != NULL && mo->error_handler != Py_None) {
    PyObject *eh = Py_NewRef(mo->error_handler);
    PyObject *res = PyObject_CallOneArg(eh, value);
    if (res == NULL) {
      if (PyErr_ExceptionMatches(PyExc_Exception)) {
        /* error_handler itself failed: print both tracebacks on stderr, as
         * the original does (the callback's as the context of the
         * handler's: "During handling of the above exception..."). */
        PyObject *t2, *v2, *tb2;
        PyErr_Fetch(&t2, &v2, &tb2);
        PyErr_NormalizeException(&t2, &v2, &tb2);
        if (tb2 != NULL && v2 != NULL) PyException_SetTraceback(v2, tb2);
        if (v2 != NULL && value != NULL && v2 != value)
          PyException_SetContext(v2, Py_NewRef(value));
        PyErr_Restore(t2, v2, tb2);
        PyErr_PrintEx(0);
      } else {
        cm_py_report(mo); /* a KeyboardInterrupt inside error_handler */
      }
    }
    Py_XDECREF(res);
    Py_DECREF(eh);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    return;
  }
  PyErr_Restore(type, value, tb);
  PyErr_PrintEx(0); /* sys.excepthook: the traceback on stderr */
}

int cm_py_raise_pending(cm_py_manager *mo) {
  if (mo->pending_exc == NULL) return 0;
  PyObject *exc = mo->pending_exc;
  mo->pending_exc = NULL;
  PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(exc)), exc, PyException_GetTraceback(exc));
  return -1;
}

/*
 * The Connection for c, made on c's first event.  fn_data tells where c
 * comes from: for an accepted child it is the listener's Connection (the
 * core copies fn_data from the listener), whose handler the child inherits
 * now; otherwise it is the Connection that Manager.listen()/connect()
 * prepared for c, or NULL for connections the bindings did not ask for.
 */
static cm_py_conn *conn_for(cm_py_manager *mo, struct cm_conn *c) {
  cm_py_conn *co;
  if (c->is_accepted) {
    cm_py_conn *parent = c->fn_data;
    co = cm_py_conn_new(mo, parent != NULL ? parent->handler : NULL);
    if (co == NULL) return NULL;
    if (parent != NULL) co->http = parent->http;
    c->fn_data = NULL; /* the listener may go away before this child */
  } else if (c->fn_data != NULL && ((cm_py_conn *)c->fn_data)->c == NULL) {
    co = c->fn_data;
    Py_INCREF(co);
    if (!c->is_listening) c->fn_data = NULL;
  } else {
    co = cm_py_conn_new(mo, NULL);
    if (co == NULL) return NULL;
  }
  cm_py_conn_attach(co, c);
  Py_DECREF(co); /* c->ext holds it now */
  return co;
}

/* data for ev: a new reference, or NULL with an exception set. */
static PyObject *event_data(cm_py_manager *mo, int ev, void *ev_data) {
  switch (ev) {
    case CM_EV_ERROR: {
      const char *msg = ev_data != NULL ? (const char *)ev_data : "";
      return PyUnicode_DecodeUTF8(msg, (Py_ssize_t)strlen(msg), "replace");
    }
    case CM_EV_WAKEUP: {
      const struct cm_str *s = ev_data;
      if (s == NULL) return PyBytes_FromStringAndSize("", 0);
      return PyBytes_FromStringAndSize(s->buf, (Py_ssize_t)s->len);
    }
    case CM_EV_SNTP_TIME:
      return PyLong_FromLongLong(ev_data != NULL ? (long long)*(int64_t *)ev_data : 0);
    case CM_EV_MQTT_OPEN:
      return PyLong_FromLong(ev_data != NULL ? *(int *)ev_data : 0);
    case CM_EV_HTTP_HDRS:
    case CM_EV_HTTP_MSG:
    case CM_EV_WS_OPEN:
    case CM_EV_WS_MSG:
    case CM_EV_WS_CTL:
    case CM_EV_MQTT_CMD:
    case CM_EV_MQTT_MSG:
      return cm_py_message_new(mo->st, ev, ev_data);
    default:
      return Py_NewRef(Py_None);
  }
}

void cm_py_on_event(struct cm_conn *c, int ev, void *ev_data) {
  if (c->is_internal) return;
  cm_py_manager *mo = cm_py_manager_of(c->mgr);
  cm_py_conn *co = c->ext;
  if (co == NULL) {
    co = conn_for(mo, c);
    if (co == NULL) {
      cm_py_report(mo);
      return;
    }
  }
  PyObject *h = co->handler != NULL ? co->handler : mo->handler;
  if (h != NULL && Py_TYPE(h)->tp_call == cm_py_c_handler_call) {
    Py_INCREF(h); /* the handler may replace itself */
    Py_INCREF(co);
    if (((cm_py_c_handler *)h)->on_event(h, co, ev, ev_data) < 0) cm_py_report(mo);
    Py_DECREF(co);
    Py_DECREF(h);
  } else if (h != NULL && h != Py_None) {
    PyObject *evo = PyLong_FromLong(ev); /* a cached small int for CM_EV_* */
    PyObject *data = evo == NULL ? NULL : event_data(mo, ev, ev_data);
    if (data == NULL) {
      Py_XDECREF(evo);
      cm_py_report(mo);
    } else {
      Py_INCREF(h); /* the handler may replace itself */
      Py_INCREF(co);
      PyObject *args[3] = {(PyObject *)co, evo, data};
      PyObject *res = PyObject_Vectorcall(h, args, 3, NULL);
      if (res == NULL) {
        cm_py_report(mo);
      } else {
        Py_DECREF(res);
      }
      Py_DECREF(evo);
      Py_DECREF(co);
      Py_DECREF(h);
      if (ev >= CM_EV_HTTP_HDRS && ev <= CM_EV_MQTT_MSG && /* message views */
          data != Py_None) {
        cm_py_message_release(mo->st, data);
      } else {
        Py_DECREF(data);
      }
    }
  }
  if (ev == CM_EV_CLOSE) cm_py_conn_detach(mo, co);
}

PyObject *cm_py_c_handler_call(PyObject *self, PyObject *args, PyObject *kwargs) {
  PyObject *conn, *data;
  int ev;
  if ((kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0) ||
      !PyArg_ParseTuple(args, "OiO:handler", &conn, &ev, &data))
    return NULL;
  cm_py_state *st = cm_py_state_of_type(Py_TYPE(self));
  if (st == NULL) return NULL;
  if (!PyObject_TypeCheck(conn, st->connection_type)) {
    PyErr_SetString(PyExc_TypeError, "handler(conn, ev, data): conn must be a Connection");
    return NULL;
  }
  void *ev_data = NULL;
  if (ev == CM_EV_HTTP_HDRS || ev == CM_EV_HTTP_MSG || ev == CM_EV_WS_OPEN) {
    ev_data = cm_py_http_message_get(data);
  } else if (ev == CM_EV_WS_MSG || ev == CM_EV_WS_CTL) {
    ev_data = cm_py_ws_message_get(data);
  }
  if (((cm_py_c_handler *)self)->on_event(self, (cm_py_conn *)conn, ev, ev_data) < 0) return NULL;
  Py_RETURN_NONE;
}
