/*
 * MqttSession: the client side of a persistent MQTT session kept across
 * connections (struct cm_mqtt_session): our QoS 1/2 messages not yet fully
 * acknowledged, PUBRELs not completed, the broker's QoS 2 ids not yet
 * released, the packet id counter and the generated client id.
 *
 *   session = MqttSession()
 *   mgr.mqtt_connect(url, h, client_id="me", clean_session=False, session=session)
 *   ... the connection drops with messages in flight ...
 *   mgr.mqtt_connect(url, h, client_id="me", clean_session=False, session=session)
 *   -> when the CONNACK says "session present" they are sent again (DUP set)
 *
 * The C session must outlive the connection using it: while a connection
 * uses a session, the session object is kept in st->mqtt_sessions (a
 * strong reference), and released when that connection's CLOSE has been
 * delivered (cm_py_mqtt_session_closed, called by conn_mqtt.c).
 */
#include "core.h"

typedef struct {
  PyObject_HEAD
  struct cm_mqtt_session *s;
  struct cm_conn *user; /* the connection using it, or NULL */
} mqtt_session_obj;

static PyObject *session_new(PyTypeObject *tp, PyObject *args, PyObject *kwds) {
  static char *kwlist[] = {"max_inflight", "max_queued", NULL};
  unsigned int max_inflight = 0, max_queued = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "|$II:MqttSession", kwlist, &max_inflight,
                                   &max_queued))
    return NULL;
  mqtt_session_obj *o = (mqtt_session_obj *)tp->tp_alloc(tp, 0);
  if (o == NULL) return NULL;
  struct cm_mqtt_limits lim = {0};
  lim.max_inflight = max_inflight;
  lim.max_queued = max_queued;
  o->s = cm_mqtt_session_new(&lim);
  if (o->s == NULL) {
    Py_DECREF(o);
    return PyErr_NoMemory();
  }
  return (PyObject *)o;
}

static void session_dealloc(mqtt_session_obj *o) {
  PyTypeObject *tp = Py_TYPE(o);
  /* No connection uses it: st->mqtt_sessions would hold a reference. */
  cm_mqtt_session_free(o->s);
  tp->tp_free(o);
  Py_DECREF(tp);
}

static PyObject *session_pending(mqtt_session_obj *o, void *closure) {
  (void)closure;
  return PyLong_FromSize_t(cm_mqtt_session_pending(o->s));
}

static PyObject *session_expired(mqtt_session_obj *o, void *closure) {
  (void)closure;
  return PyLong_FromSize_t(cm_mqtt_session_expired(o->s));
}

static PyObject *session_in_use(mqtt_session_obj *o, void *closure) {
  (void)closure;
  return PyBool_FromLong(o->user != NULL);
}

static PyGetSetDef session_getset[] = {
    {"pending", (getter)session_pending, NULL,
     "Our QoS 1/2 messages held unacknowledged or queued.", NULL},
    {"in_use", (getter)session_in_use, NULL, "True while a live connection uses it.", NULL},
    {"expired", (getter)session_expired, NULL,
     "Our v5 messages dropped unsent because their message_expiry_interval ran out.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot session_slots[] = {
    {Py_tp_new, session_new},
    {Py_tp_dealloc, session_dealloc},
    {Py_tp_getset, session_getset},
    {Py_tp_doc, "MqttSession(*, max_inflight=0, max_queued=0)\n--\n\n"
                "State of a persistent MQTT session kept across connections: pass it as\n"
                "mqtt_connect(..., clean_session=False, session=s) each time.  Messages not\n"
                "acknowledged when a connection dropped are sent again (DUP set) once the\n"
                "broker says the session is present.  One connection at a time."},
    {0, NULL},
};

static PyType_Spec session_spec = {
    .name = "cymongoose._mongoose.MqttSession",
    .basicsize = sizeof(mqtt_session_obj),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = session_slots,
};

int cm_py_mqtt_session_exec(PyObject *m, cm_py_state *st) {
  st->mqtt_sessions = PyList_New(0);
  if (st->mqtt_sessions == NULL) return -1;
  st->mqtt_session_type = (PyTypeObject *)PyType_FromModuleAndSpec(m, &session_spec, NULL);
  if (st->mqtt_session_type == NULL) return -1;
  return PyModule_AddType(m, st->mqtt_session_type);
}

struct cm_mqtt_session *cm_py_mqtt_session_claim(cm_py_state *st, PyObject *obj) {
  if (!PyObject_TypeCheck(obj, st->mqtt_session_type)) {
    PyErr_Format(PyExc_TypeError, "session must be an MqttSession, not %.100s",
                 Py_TYPE(obj)->tp_name);
    return NULL;
  }
  mqtt_session_obj *o = (mqtt_session_obj *)obj;
  if (o->user != NULL) {
    PyErr_SetString(PyExc_RuntimeError, "this MqttSession is in use by a live connection");
    return NULL;
  }
  return o->s;
}

int cm_py_mqtt_session_bind(cm_py_state *st, PyObject *obj, struct cm_conn *c) {
  ((mqtt_session_obj *)obj)->user = c;
  return PyList_Append(st->mqtt_sessions, obj); /* keeps it alive until c's CLOSE */
}

void cm_py_mqtt_session_closed(cm_py_state *st, struct cm_conn *c) {
  PyObject *list = st->mqtt_sessions;
  if (list == NULL) return;
  for (Py_ssize_t i = PyList_GET_SIZE(list) - 1; i >= 0; i--) {
    mqtt_session_obj *o = (mqtt_session_obj *)PyList_GET_ITEM(list, i);
    if (o->user == c) {
      o->user = NULL;
      if (PyList_SetSlice(list, i, i + 1, NULL) < 0) PyErr_Clear(); /* may free o */
      return;
    }
  }
}
