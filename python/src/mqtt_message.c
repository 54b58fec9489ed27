/*
 * MqttMessage: the view handed to handlers with MG_EV_MQTT_CMD and
 * MG_EV_MQTT_MSG.  Like the other message views (messages.c) it points at
 * the C struct cm_mqtt_msg only while the handler runs; afterwards
 * (cm_py_mqtt_message_invalidate) strings read "" / b"", numbers 0,
 * lists [] and bool(view) is False.
 *
 * The original package's fields (topic, data, text, id, cmd, qos, ack,
 * properties()) keep their meaning; retain, dup, reason_code, version,
 * session_present, client_id and the list readers topics()/codes() are
 * ours.
 */
#include "module.h"

typedef struct {
  PyObject_HEAD
  const struct cm_mqtt_msg *mm; /* NULL once invalidated */
} MqttMessageObject;

static const struct cm_mqtt_msg *msg_of(PyObject *self) {
  return ((MqttMessageObject *)self)->mm;
}

static PyObject *text_of(struct cm_str s) {
  /* Bytes from the wire that are not UTF-8 must not make a getter raise. */
  return PyUnicode_DecodeUTF8(s.buf == NULL ? "" : s.buf, (Py_ssize_t)s.len, "surrogateescape");
}

static PyObject *bytes_of(struct cm_str s) {
  return PyBytes_FromStringAndSize(s.buf == NULL ? "" : s.buf, (Py_ssize_t)s.len);
}

static const struct cm_str empty_str = {NULL, 0};

static PyObject *mq_topic(PyObject *self, void *closure) {
  (void)closure;
  const struct cm_mqtt_msg *mm = msg_of(self);
  return text_of(mm == NULL ? empty_str : mm->topic);
}

static PyObject *mq_data(PyObject *self, void *closure) {
  (void)closure;
  const struct cm_mqtt_msg *mm = msg_of(self);
  return bytes_of(mm == NULL ? empty_str : mm->data);
}

static PyObject *mq_text(PyObject *self, void *closure) {
  (void)closure;
  const struct cm_mqtt_msg *mm = msg_of(self);
  return text_of(mm == NULL ? empty_str : mm->data);
}

/* The CONNECT client id (server side), else "". */
static PyObject *mq_client_id(PyObject *self, void *closure) {
  (void)closure;
  const struct cm_mqtt_msg *mm = msg_of(self);
  if (mm == NULL || mm->pkt == NULL || mm->cmd != CM_MQTT_CMD_CONNECT) return text_of(empty_str);
  return text_of(mm->pkt->client_id);
}

/* Integer fields, chosen by closure. */
enum { F_ID, F_CMD, F_QOS, F_ACK, F_VERSION };

static PyObject *mq_int(PyObject *self, void *closure) {
  const struct cm_mqtt_msg *mm = msg_of(self);
  long v = 0;
  if (mm != NULL) {
    switch ((int)(intptr_t)closure) {
      case F_ID: v = mm->id; break;
      case F_CMD: v = mm->cmd; break;
      case F_QOS: v = mm->qos; break;
      case F_ACK: v = mm->ack; break;
      default: v = mm->version; break;
    }
  }
  return PyLong_FromLong(v);
}

enum { B_RETAIN, B_DUP, B_SESSION_PRESENT };

static PyObject *mq_bool(PyObject *self, void *closure) {
  const struct cm_mqtt_msg *mm = msg_of(self);
  bool v = false;
  if (mm != NULL) {
    switch ((int)(intptr_t)closure) {
      case B_RETAIN: v = mm->retain; break;
      case B_DUP: v = mm->dup; break;
      default: v = mm->session_present; break;
    }
  }
  return PyBool_FromLong(v);
}

/* One property as the original package shaped it: {"id", "iv", "key",
 * "val"}, key and val as str (binary data decoded with surrogateescape, so
 * val.encode("utf-8", "surrogateescape") gives the bytes back). */
static PyObject *prop_dict(const struct cm_mqtt_prop *p) {
  return Py_BuildValue("{s:i,s:k,s:N,s:N}", "id", (int)p->id, "iv", (unsigned long)p->iv, "key",
                       text_of(p->key), "val", text_of(p->val));
}

static PyObject *mq_properties(PyObject *self, PyObject *unused) {
  (void)unused;
  const struct cm_mqtt_msg *mm = msg_of(self);
  PyObject *list = PyList_New(0);
  if (list == NULL || mm == NULL) return list;
  size_t pos = 0;
  struct cm_mqtt_prop p;
  while (cm_mqtt_prop_next(mm->props, &pos, &p)) {
    PyObject *d = prop_dict(&p);
    if (d == NULL || PyList_Append(list, d) < 0) {
      Py_XDECREF(d);
      Py_DECREF(list);
      return NULL;
    }
    Py_DECREF(d);
  }
  return list;
}

/* SUBSCRIBE: [(filter, options byte)], UNSUBSCRIBE: [(filter, 0)]. */
static PyObject *mq_topics(PyObject *self, PyObject *unused) {
  (void)unused;
  const struct cm_mqtt_msg *mm = msg_of(self);
  PyObject *list = PyList_New(0);
  if (list == NULL || mm == NULL || mm->pkt == NULL ||
      (mm->cmd != CM_MQTT_CMD_SUBSCRIBE && mm->cmd != CM_MQTT_CMD_UNSUBSCRIBE))
    return list;
  size_t pos = 0;
  struct cm_str filter;
  uint8_t code;
  while (cm_mqtt_list_next(mm->pkt, &pos, &filter, &code)) {
    PyObject *t = Py_BuildValue("(Ni)", text_of(filter), (int)code);
    if (t == NULL || PyList_Append(list, t) < 0) {
      Py_XDECREF(t);
      Py_DECREF(list);
      return NULL;
    }
    Py_DECREF(t);
  }
  return list;
}

/* SUBACK / UNSUBACK: the reason codes, one per filter of the request. */
static PyObject *mq_codes(PyObject *self, PyObject *unused) {
  (void)unused;
  const struct cm_mqtt_msg *mm = msg_of(self);
  PyObject *list = PyList_New(0);
  if (list == NULL || mm == NULL || mm->pkt == NULL ||
      (mm->cmd != CM_MQTT_CMD_SUBACK && mm->cmd != CM_MQTT_CMD_UNSUBACK))
    return list;
  size_t pos = 0;
  uint8_t code;
  while (cm_mqtt_list_next(mm->pkt, &pos, NULL, &code)) {
    PyObject *v = PyLong_FromLong(code);
    if (v == NULL || PyList_Append(list, v) < 0) {
      Py_XDECREF(v);
      Py_DECREF(list);
      return NULL;
    }
    Py_DECREF(v);
  }
  return list;
}

static int mq_bool_slot(PyObject *self) { return msg_of(self) != NULL; }

static PyObject *mq_repr(PyObject *self) {
  const struct cm_mqtt_msg *mm = msg_of(self);
  if (mm == NULL) return PyUnicode_FromString("<MqttMessage (expired)>");
  if (mm->cmd != CM_MQTT_CMD_PUBLISH) {
    return PyUnicode_FromFormat("<MqttMessage cmd=%d id=%d>", (int)mm->cmd, (int)mm->id);
  }
  PyObject *topic = text_of(mm->topic);
  if (topic == NULL) return NULL;
  PyObject *r = PyUnicode_FromFormat("<MqttMessage PUBLISH %R qos=%d len=%zu>", topic,
                                     (int)mm->qos, mm->data.len);
  Py_DECREF(topic);
  return r;
}

static void mq_dealloc(PyObject *self) {
  PyTypeObject *tp = Py_TYPE(self);
  tp->tp_free(self);
  Py_DECREF(tp);
}

static PyGetSetDef mq_getset[] = {
    {"topic", mq_topic, NULL, "PUBLISH topic (a v5 topic alias resolved), else ''.", NULL},
    {"data", mq_data, NULL,
     "PUBLISH payload as bytes; other packets: their payload section.", NULL},
    {"text", mq_text, NULL, "data decoded as UTF-8 (invalid bytes surrogate-escaped).", NULL},
    {"id", mq_int, NULL, "Packet identifier, 0 when the packet has none.", (void *)F_ID},
    {"cmd", mq_int, NULL, "Packet type: 1 CONNECT ... 3 PUBLISH ... 14 DISCONNECT, 15 AUTH.",
     (void *)F_CMD},
    {"qos", mq_int, NULL, "PUBLISH QoS (0, 1, 2).", (void *)F_QOS},
    {"ack", mq_int, NULL,
     "CONNACK return/reason code; reason code of acks, DISCONNECT, AUTH; SUBACK/UNSUBACK: "
     "the first code.",
     (void *)F_ACK},
    {"reason_code", mq_int, NULL, "Same as ack (the MQTT 5 name).", (void *)F_ACK},
    {"version", mq_int, NULL, "Protocol level of the connection: 4 (3.1.1) or 5.",
     (void *)F_VERSION},
    {"retain", mq_bool, NULL, "PUBLISH retain flag.", (void *)B_RETAIN},
    {"dup", mq_bool, NULL, "PUBLISH DUP flag (a resend).", (void *)B_DUP},
    {"session_present", mq_bool, NULL, "CONNACK session-present flag.",
     (void *)B_SESSION_PRESENT},
    {"client_id", mq_client_id, NULL, "CONNECT (server side): the client identifier.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef mq_methods[] = {
    {"properties", mq_properties, METH_NOARGS,
     "properties($self, /)\n--\n\nReturns a list of dicts: the MQTT 5 properties in order, each "
     "{'id': int, 'iv': int, 'key': str, 'val': str}: iv for integer types, val for strings "
     "and binary data (surrogate-escaped), key and val for user properties."},
    {"topics", mq_topics, METH_NOARGS,
     "topics($self, /)\n--\n\nSUBSCRIBE: (filter, options byte: QoS in the low "
     "2 bits) per subscription; UNSUBSCRIBE: (filter, 0); else []."},
    {"codes", mq_codes, METH_NOARGS,
     "codes($self, /)\n--\n\nSUBACK/UNSUBACK: one reason code per filter (granted QoS, "
     ">= 0x80 refused); else []."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot mq_slots[] = {
    {Py_tp_dealloc, mq_dealloc},
    {Py_tp_getset, mq_getset},
    {Py_tp_methods, mq_methods},
    {Py_nb_bool, mq_bool_slot},
    {Py_tp_repr, mq_repr},
    {Py_tp_doc, "An MQTT packet received, valid only during the handler call."},
    {0, NULL},
};

static PyType_Spec mq_spec = {
    .name = "cymongoose._mongoose.MqttMessage",
    .basicsize = sizeof(MqttMessageObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = mq_slots,
};

int cm_py_mqtt_message_exec(PyObject *m, cm_py_state *st) {
  st->mqtt_message_type = (PyTypeObject *)PyType_FromModuleAndSpec(m, &mq_spec, NULL);
  if (st->mqtt_message_type == NULL || PyModule_AddType(m, st->mqtt_message_type) < 0) return -1;
  return cm_py_mqtt_session_exec(m, st); /* the other MQTT type */
}

PyObject *cm_py_mqtt_message_new(cm_py_state *st, const struct cm_mqtt_msg *mm) {
  MqttMessageObject *o = PyObject_New(MqttMessageObject, st->mqtt_message_type);
  if (o == NULL) return NULL;
  o->mm = mm;
  return (PyObject *)o;
}

void cm_py_mqtt_message_invalidate(PyObject *view) { ((MqttMessageObject *)view)->mm = NULL; }
