/*
 * MQTT bindings: Manager.mqtt_connect / mqtt_listen and the Connection
 * methods mqtt_pub, mqtt_sub, mqtt_unsub, mqtt_ping, mqtt_pong,
 * mqtt_disconnect, over the C client and low-level server of src/mqtt/
 * (include/cymongoose/mqtt.h).  Registered explicitly in mgr_methods.h and
 * conn_methods.h.
 *
 * The MQTT methods of Connection are harmless no-ops on connections that
 * do not speak MQTT (mqtt_pub returns 0), as the original package's
 * callers expect; after CLOSE they raise RuntimeError like send().
 *
 * v5 properties travel as Python dicts: {name_or_id: value}, names in
 * snake case ("session_expiry_interval", "user_property", ...) or the
 * numeric ids; integers for byte/short/int/varint properties, str for
 * strings, bytes (or str) for binary data, and (name, value) pairs (a list
 * of them, or a dict) for user properties.  A list of such (key, value)
 * pairs or of the dicts MqttMessage.properties() returns works too.
 */
#include "args.h"
#include "core.h"
#include "mgr_methods.h"
#include "conn_methods.h"

#include <errno.h>
#include <string.h>

/* ------------------------------------------------------------ properties */

static const struct {
  const char *name;
  uint8_t id;
} prop_names[] = {
    {"payload_format_indicator", CM_MQTT_PROP_PAYLOAD_FORMAT_INDICATOR},
    {"message_expiry_interval", CM_MQTT_PROP_MESSAGE_EXPIRY_INTERVAL},
    {"content_type", CM_MQTT_PROP_CONTENT_TYPE},
    {"response_topic", CM_MQTT_PROP_RESPONSE_TOPIC},
    {"correlation_data", CM_MQTT_PROP_CORRELATION_DATA},
    {"subscription_identifier", CM_MQTT_PROP_SUBSCRIPTION_IDENTIFIER},
    {"session_expiry_interval", CM_MQTT_PROP_SESSION_EXPIRY_INTERVAL},
    {"assigned_client_identifier", CM_MQTT_PROP_ASSIGNED_CLIENT_IDENTIFIER},
    {"server_keep_alive", CM_MQTT_PROP_SERVER_KEEP_ALIVE},
    {"authentication_method", CM_MQTT_PROP_AUTHENTICATION_METHOD},
    {"authentication_data", CM_MQTT_PROP_AUTHENTICATION_DATA},
    {"request_problem_information", CM_MQTT_PROP_REQUEST_PROBLEM_INFORMATION},
    {"will_delay_interval", CM_MQTT_PROP_WILL_DELAY_INTERVAL},
    {"request_response_information", CM_MQTT_PROP_REQUEST_RESPONSE_INFORMATION},
    {"response_information", CM_MQTT_PROP_RESPONSE_INFORMATION},
    {"server_reference", CM_MQTT_PROP_SERVER_REFERENCE},
    {"reason_string", CM_MQTT_PROP_REASON_STRING},
    {"receive_maximum", CM_MQTT_PROP_RECEIVE_MAXIMUM},
    {"topic_alias_maximum", CM_MQTT_PROP_TOPIC_ALIAS_MAXIMUM},
    {"topic_alias", CM_MQTT_PROP_TOPIC_ALIAS},
    {"maximum_qos", CM_MQTT_PROP_MAXIMUM_QOS},
    {"retain_available", CM_MQTT_PROP_RETAIN_AVAILABLE},
    {"user_property", CM_MQTT_PROP_USER_PROPERTY},
    {"user_properties", CM_MQTT_PROP_USER_PROPERTY},
    {"maximum_packet_size", CM_MQTT_PROP_MAXIMUM_PACKET_SIZE},
    {"wildcard_subscription_available", CM_MQTT_PROP_WILDCARD_SUBSCRIPTION_AVAILABLE},
    {"subscription_identifier_available", CM_MQTT_PROP_SUBSCRIPTION_IDENTIFIER_AVAILABLE},
    {"shared_subscription_available", CM_MQTT_PROP_SHARED_SUBSCRIPTION_AVAILABLE},
};

/* Properties built from Python for one call: the array handed to the C
 * API and the objects that keep its views alive. */
typedef struct {
  struct cm_mqtt_prop *items;
  size_t n, cap;
  PyObject *keep; /* list of the bytes/str objects the views point into */
} prop_list;

static void props_free(prop_list *pl) {
  PyMem_Free(pl->items);
  Py_CLEAR(pl->keep);
  memset(pl, 0, sizeof(*pl));
}

static struct cm_mqtt_prop *props_add(prop_list *pl) {
  if (pl->n == pl->cap) {
    size_t cap = pl->cap == 0 ? 8 : pl->cap * 2;
    struct cm_mqtt_prop *p = PyMem_Realloc(pl->items, cap * sizeof(*p));
    if (p == NULL) {
      PyErr_NoMemory();
      return NULL;
    }
    pl->items = p;
    pl->cap = cap;
  }
  struct cm_mqtt_prop *p = &pl->items[pl->n++];
  memset(p, 0, sizeof(*p));
  return p;
}

/* A view of o's bytes (str as UTF-8, surrogate-escaped for binary data;
 * bytes-like copied into bytes), kept alive by pl->keep.  string: must be a
 * valid MQTT string. */
static int view_of(prop_list *pl, PyObject *o, bool string, const char *what,
                   struct cm_str *out) {
  PyObject *b;
  if (PyUnicode_Check(o)) {
    /* Binary data read back from MqttMessage.properties() is a
     * surrogate-escaped str: give the original bytes back. */
    b = string ? PyUnicode_AsUTF8String(o)
               : PyUnicode_AsEncodedString(o, "utf-8", "surrogateescape");
  } else if (PyBytes_Check(o)) {
    b = Py_NewRef(o);
  } else if (PyObject_CheckBuffer(o)) {
    b = PyBytes_FromObject(o);
  } else {
    PyErr_Format(PyExc_TypeError, "MQTT property %s: expected str or bytes, not %.100s", what,
                 Py_TYPE(o)->tp_name);
    return -1;
  }
  if (b == NULL) return -1;
  if (pl->keep == NULL && (pl->keep = PyList_New(0)) == NULL) {
    Py_DECREF(b);
    return -1;
  }
  int r = PyList_Append(pl->keep, b);
  Py_DECREF(b);
  if (r < 0) return -1;
  *out = cm_str_n(PyBytes_AS_STRING(b), (size_t)PyBytes_GET_SIZE(b));
  if (string ? !cm_mqtt_str_valid(*out) : out->len > 65535) {
    PyErr_Format(PyExc_ValueError,
                 string ? "MQTT property %s: not a valid MQTT string (NUL or over 65535 bytes)"
                        : "MQTT property %s: over 65535 bytes",
                 what);
    return -1;
  }
  return 0;
}

/* The property id named by key (str name or int id); -1 with ValueError. */
static int prop_id_of(PyObject *key) {
  if (PyLong_Check(key)) {
    long id = PyLong_AsLong(key);
    if (id == -1 && PyErr_Occurred()) return -1;
    if (id > 0 && id < 256 && cm_mqtt_prop_type((int)id) >= 0) return (int)id;
    PyErr_Format(PyExc_ValueError, "unknown MQTT property id %ld", id);
    return -1;
  }
  if (PyUnicode_Check(key)) {
    const char *s = PyUnicode_AsUTF8(key);
    if (s == NULL) return -1;
    for (size_t i = 0; i < sizeof(prop_names) / sizeof(prop_names[0]); i++) {
      if (strcmp(s, prop_names[i].name) == 0) return prop_names[i].id;
    }
    PyErr_Format(PyExc_ValueError, "unknown MQTT property %R", key);
    return -1;
  }
  PyErr_Format(PyExc_TypeError, "MQTT property keys are names or ids, not %.100s",
               Py_TYPE(key)->tp_name);
  return -1;
}

static int add_user_pair(prop_list *pl, PyObject *pair) {
  PyObject *seq = PySequence_Fast(pair, "user property: expected a (name, value) pair");
  if (seq == NULL) return -1;
  int r = -1;
  if (PySequence_Fast_GET_SIZE(seq) != 2) {
    PyErr_SetString(PyExc_ValueError, "user property: expected a (name, value) pair");
  } else {
    struct cm_mqtt_prop *p = props_add(pl);
    if (p != NULL) {
      p->id = CM_MQTT_PROP_USER_PROPERTY;
      if (view_of(pl, PySequence_Fast_GET_ITEM(seq, 0), true, "user_property name", &p->key) == 0 &&
          view_of(pl, PySequence_Fast_GET_ITEM(seq, 1), true, "user_property value", &p->val) == 0)
        r = 0;
    }
  }
  Py_DECREF(seq);
  return r;
}

/* User properties: one (name, value) pair, a list of pairs, or a dict. */
static int add_user_props(prop_list *pl, PyObject *v) {
  if (PyDict_Check(v)) {
    PyObject *k, *val;
    Py_ssize_t pos = 0;
    while (PyDict_Next(v, &pos, &k, &val)) {
      PyObject *pair = PyTuple_Pack(2, k, val);
      int r = pair == NULL ? -1 : add_user_pair(pl, pair);
      Py_XDECREF(pair);
      if (r < 0) return -1;
    }
    return 0;
  }
  if (PyTuple_Check(v) && PyTuple_GET_SIZE(v) == 2 &&
      (PyUnicode_Check(PyTuple_GET_ITEM(v, 0)) || PyBytes_Check(PyTuple_GET_ITEM(v, 0)))) {
    return add_user_pair(pl, v);
  }
  PyObject *seq = PySequence_Fast(v, "user_property: expected (name, value) pairs or a dict");
  if (seq == NULL) return -1;
  for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
    if (add_user_pair(pl, PySequence_Fast_GET_ITEM(seq, i)) < 0) {
      Py_DECREF(seq);
      return -1;
    }
  }
  Py_DECREF(seq);
  return 0;
}

static int add_prop(prop_list *pl, PyObject *key, PyObject *v) {
  int id = prop_id_of(key);
  if (id < 0) return -1;
  int type = cm_mqtt_prop_type(id);
  if (type == CM_MQTT_PROP_TYPE_STRING_PAIR) return add_user_props(pl, v);
  const char *name = "value";
  for (size_t i = 0; i < sizeof(prop_names) / sizeof(prop_names[0]); i++) {
    if (prop_names[i].id == id) {
      name = prop_names[i].name;
      break;
    }
  }
  struct cm_mqtt_prop *p = props_add(pl);
  if (p == NULL) return -1;
  p->id = (uint8_t)id;
  unsigned long long max;
  switch (type) {
    case CM_MQTT_PROP_TYPE_STRING: return view_of(pl, v, true, name, &p->val);
    case CM_MQTT_PROP_TYPE_BINARY_DATA: return view_of(pl, v, false, name, &p->val);
    case CM_MQTT_PROP_TYPE_BYTE: max = 0xFF; break;
    case CM_MQTT_PROP_TYPE_SHORT: max = 0xFFFF; break;
    case CM_MQTT_PROP_TYPE_VARIABLE_INT: max = CM_MQTT_MAX_REMAINING; break;
    default: max = 0xFFFFFFFFu; break;
  }
  unsigned long long iv = PyLong_Check(v) ? PyLong_AsUnsignedLongLong(v) : (unsigned long long)-1;
  if (iv == (unsigned long long)-1 || iv > max) {
    if (!PyLong_Check(v)) {
      PyErr_Format(PyExc_TypeError, "MQTT property %s: expected an int", name);
    } else {
      PyErr_Clear();
      PyErr_Format(PyExc_ValueError, "MQTT property %s: expected 0..%llu", name, max);
    }
    return -1;
  }
  p->iv = (uint32_t)iv;
  return 0;
}

/* obj: None, a dict, or an iterable of (key, value) pairs or of
 * {"id", "iv", "key", "val"} dicts.  0, or -1 with an exception set (pl
 * freed). */
static int props_from(PyObject *obj, prop_list *pl) {
  memset(pl, 0, sizeof(*pl));
  if (obj == NULL || obj == Py_None) return 0;
  int r = 0;
  if (PyDict_Check(obj)) {
    PyObject *k, *v;
    Py_ssize_t pos = 0;
    while (r == 0 && PyDict_Next(obj, &pos, &k, &v)) r = add_prop(pl, k, v);
  } else {
    PyObject *seq = PySequence_Fast(obj, "MQTT properties: expected a dict or a list of pairs");
    if (seq == NULL) return -1;
    for (Py_ssize_t i = 0; r == 0 && i < PySequence_Fast_GET_SIZE(seq); i++) {
      PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
      if (PyDict_Check(item)) { /* the shape MqttMessage.properties() returns */
        PyObject *id = PyDict_GetItemString(item, "id");
        if (id == NULL) {
          PyErr_SetString(PyExc_ValueError, "MQTT property dict without 'id'");
          r = -1;
        } else if (cm_mqtt_prop_type((int)PyLong_AsLong(id)) == CM_MQTT_PROP_TYPE_STRING_PAIR) {
          PyObject *k = PyDict_GetItemString(item, "key"), *v = PyDict_GetItemString(item, "val");
          PyObject *pair = PyTuple_Pack(2, k != NULL ? k : Py_None, v != NULL ? v : Py_None);
          r = pair == NULL ? -1 : add_user_pair(pl, pair);
          Py_XDECREF(pair);
        } else {
          int t = cm_mqtt_prop_type((int)PyLong_AsLong(id));
          bool is_int = t == CM_MQTT_PROP_TYPE_BYTE || t == CM_MQTT_PROP_TYPE_SHORT ||
                        t == CM_MQTT_PROP_TYPE_INT || t == CM_MQTT_PROP_TYPE_VARIABLE_INT;
          PyObject *v = PyDict_GetItemString(item, is_int ? "iv" : "val");
          if (PyErr_Occurred()) {
            r = -1;
          } else if (v == NULL) {
            PyErr_SetString(PyExc_ValueError, "MQTT property dict without its value");
            r = -1;
          } else {
            r = add_prop(pl, id, v);
          }
        }
      } else {
        PyObject *pair = PySequence_Fast(item, "MQTT properties: expected (key, value) pairs");
        if (pair == NULL || PySequence_Fast_GET_SIZE(pair) != 2) {
          if (pair != NULL) PyErr_SetString(PyExc_ValueError, "MQTT properties: expected (key, value) pairs");
          r = -1;
        } else {
          r = add_prop(pl, PySequence_Fast_GET_ITEM(pair, 0), PySequence_Fast_GET_ITEM(pair, 1));
        }
        Py_XDECREF(pair);
      }
    }
    Py_DECREF(seq);
  }
  if (r < 0) props_free(pl);
  return r;
}

/* ------------------------------------------------------------ arguments */

/* A view of a topic (str as UTF-8, or bytes); valid while o lives. */
static int topic_view(PyObject *o, struct cm_str *out) {
  if (PyUnicode_Check(o)) {
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(o, &n);
    if (s == NULL) return -1;
    *out = cm_str_n(s, (size_t)n);
    return 0;
  }
  if (PyBytes_Check(o)) {
    *out = cm_str_n(PyBytes_AS_STRING(o), (size_t)PyBytes_GET_SIZE(o));
    return 0;
  }
  PyErr_Format(PyExc_TypeError, "topic must be str or bytes, not %.100s", Py_TYPE(o)->tp_name);
  return -1;
}

static int qos_of(PyObject *o, uint8_t *qos) {
  if (o == NULL) {
    *qos = 0;
    return 0;
  }
  long v = PyLong_AsLong(o);
  if (v == -1 && PyErr_Occurred()) return -1;
  if (v < 0 || v > 2) {
    PyErr_Format(PyExc_ValueError, "qos must be 0, 1 or 2, not %ld", v);
    return -1;
  }
  *qos = (uint8_t)v;
  return 0;
}

/*
 * Matches FASTCALL arguments against names[0..n): vals[i] gets the i-th
 * argument (NULL when absent).  Positional ones fill the first npos names.
 */
static int fast_args(const char *fname, const char *const *names, size_t n, size_t npos,
                     PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                     PyObject **vals) {
  for (size_t i = 0; i < n; i++) vals[i] = NULL;
  if ((size_t)nargs > npos) {
    PyErr_Format(PyExc_TypeError, "%s() takes at most %zu positional arguments (%zd given)", fname,
                 npos, nargs);
    return -1;
  }
  for (Py_ssize_t i = 0; i < nargs; i++) vals[i] = args[i];
  Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
  for (Py_ssize_t k = 0; k < nkw; k++) {
    PyObject *kwo = PyTuple_GET_ITEM(kwnames, k);
    size_t i = 0;
    while (i < n && PyUnicode_CompareWithASCIIString(kwo, names[i]) != 0) i++;
    if (i == n) {
      PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%U'", fname, kwo);
      return -1;
    }
    if (vals[i] != NULL) {
      PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%s'", fname, names[i]);
      return -1;
    }
    vals[i] = args[nargs + k];
  }
  return 0;
}

static int truth(PyObject *o, bool *out) {
  if (o == NULL) return 0;
  int v = PyObject_IsTrue(o);
  if (v < 0) return -1;
  *out = v != 0;
  return 0;
}

/* The live MQTT connection of self: NULL with RuntimeError after CLOSE;
 * *is_mqtt false (and no exception) on other connections. */
static struct cm_conn *mqtt_conn(PyObject *self, bool *is_mqtt) {
  struct cm_conn *c = cm_py_conn_get(self);
  *is_mqtt = c != NULL && cm_mqtt_is(c);
  return c;
}

/* ------------------------------------------------------------ Connection */

PyObject *cm_py_conn_mqtt_pub(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                              PyObject *kwnames) {
  static const char *const names[] = {"topic", "message", "qos", "retain", "properties",
                                      "topic_alias"};
  PyObject *v[6];
  if (fast_args("mqtt_pub", names, 6, 4, args, nargs, kwnames, v) < 0) return NULL;
  if (v[0] == NULL || v[1] == NULL) {
    PyErr_SetString(PyExc_TypeError, "mqtt_pub() missing 'topic' or 'message'");
    return NULL;
  }
  struct cm_mqtt_pub_opts o;
  memset(&o, 0, sizeof(o));
  if (topic_view(v[0], &o.topic) < 0 || qos_of(v[2], &o.qos) < 0 || truth(v[3], &o.retain) < 0 ||
      truth(v[5], &o.topic_alias) < 0)
    return NULL;
  if (!cm_mqtt_topic_valid(o.topic)) {
    PyErr_SetString(PyExc_ValueError,
                    "invalid topic name: empty, not UTF-8, with NUL or a wildcard (+ or #)");
    return NULL;
  }
  Py_buffer buf = {0};
  PyObject *msg = v[1];
  if (cm_py_buffer_get(msg, &buf, "message") < 0) return NULL;
  o.message = cm_str_n(buf.buf, (size_t)buf.len);
  prop_list pl;
  if (props_from(v[4], &pl) < 0) {
    if (buf.obj != NULL) PyBuffer_Release(&buf);
    return NULL;
  }
  o.props = pl.items;
  o.num_props = pl.n;
  bool is_mqtt;
  struct cm_conn *c = mqtt_conn(self, &is_mqtt);
  int id = 0;
  bool closing = false;
  cm_py_manager *mo = NULL;
  if (is_mqtt) {
    mo = cm_py_manager_of(c->mgr);
    cm_py_core_enter(mo);
    id = cm_mqtt_publish(c, &o);
    closing = c->is_closing;
    cm_py_core_leave(mo);
  }
  props_free(&pl);
  if (buf.obj != NULL) PyBuffer_Release(&buf);
  if (c == NULL) return NULL;
  if (mo != NULL && cm_py_raise_pending(mo) < 0) return NULL;
  if (id < 0) {
    if (closing) return PyLong_FromLong(0); /* the connection is going away */
    PyErr_SetString(PyExc_RuntimeError,
                    "mqtt_pub() failed: publish queue full (max_queued), message larger than "
                    "the peer's maximum packet size, or out of memory");
    return NULL;
  }
  return PyLong_FromLong(id);
}

PyObject *cm_py_conn_mqtt_sub(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                              PyObject *kwnames) {
  static const char *const names[] = {"topic",          "qos",           "no_local",
                                      "retain_as_published", "retain_handling",
                                      "subscription_id", "properties"};
  PyObject *v[7];
  if (fast_args("mqtt_sub", names, 7, 2, args, nargs, kwnames, v) < 0) return NULL;
  if (v[0] == NULL) {
    PyErr_SetString(PyExc_TypeError, "mqtt_sub() missing 'topic'");
    return NULL;
  }
  struct cm_mqtt_sub_opts s;
  memset(&s, 0, sizeof(s));
  unsigned long sub_id = 0;
  if (topic_view(v[0], &s.topic) < 0 || qos_of(v[1], &s.qos) < 0 || truth(v[2], &s.no_local) < 0 ||
      truth(v[3], &s.retain_as_published) < 0)
    return NULL;
  if (v[4] != NULL) {
    long rh = PyLong_AsLong(v[4]);
    if (rh == -1 && PyErr_Occurred()) return NULL;
    if (rh < 0 || rh > 2) {
      PyErr_SetString(PyExc_ValueError, "retain_handling must be 0, 1 or 2");
      return NULL;
    }
    s.retain_handling = (uint8_t)rh;
  }
  if (v[5] != NULL && v[5] != Py_None) {
    sub_id = PyLong_AsUnsignedLong(v[5]);
    if (sub_id == (unsigned long)-1 && PyErr_Occurred()) return NULL;
    if (sub_id > CM_MQTT_MAX_REMAINING) {
      PyErr_SetString(PyExc_ValueError, "subscription_id must be 1..268435455 (0: none)");
      return NULL;
    }
  }
  if (!cm_mqtt_filter_valid(s.topic)) {
    PyErr_SetString(PyExc_ValueError,
                    "invalid topic filter: empty, not UTF-8, or a misplaced wildcard");
    return NULL;
  }
  prop_list pl;
  if (props_from(v[6], &pl) < 0) return NULL;
  bool is_mqtt;
  struct cm_conn *c = mqtt_conn(self, &is_mqtt);
  int id = 0;
  if (is_mqtt) id = cm_mqtt_subscribe(c, &s, 1, (uint32_t)sub_id, pl.items, pl.n);
  props_free(&pl);
  if (c == NULL) return NULL;
  return PyLong_FromLong(id < 0 ? 0 : id);
}

PyObject *cm_py_conn_mqtt_unsub(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                                PyObject *kwnames) {
  static const char *const names[] = {"topic", "properties"};
  PyObject *v[2];
  if (fast_args("mqtt_unsub", names, 2, 1, args, nargs, kwnames, v) < 0) return NULL;
  struct cm_str topic;
  if (v[0] == NULL) {
    PyErr_SetString(PyExc_TypeError, "mqtt_unsub() missing 'topic'");
    return NULL;
  }
  if (topic_view(v[0], &topic) < 0) return NULL;
  if (!cm_mqtt_filter_valid(topic)) {
    PyErr_SetString(PyExc_ValueError,
                    "invalid topic filter: empty, not UTF-8, or a misplaced wildcard");
    return NULL;
  }
  prop_list pl;
  if (props_from(v[1], &pl) < 0) return NULL;
  bool is_mqtt;
  struct cm_conn *c = mqtt_conn(self, &is_mqtt);
  int id = 0;
  if (is_mqtt) id = cm_mqtt_unsubscribe(c, &topic, 1, pl.items, pl.n);
  props_free(&pl);
  if (c == NULL) return NULL;
  return PyLong_FromLong(id < 0 ? 0 : id);
}

PyObject *cm_py_conn_mqtt_ping(PyObject *self, PyObject *unused) {
  (void)unused;
  bool is_mqtt;
  struct cm_conn *c = mqtt_conn(self, &is_mqtt);
  if (c == NULL) return NULL;
  if (is_mqtt) cm_mqtt_ping(c);
  Py_RETURN_NONE;
}

PyObject *cm_py_conn_mqtt_pong(PyObject *self, PyObject *unused) {
  (void)unused;
  bool is_mqtt;
  struct cm_conn *c = mqtt_conn(self, &is_mqtt);
  if (c == NULL) return NULL;
  if (is_mqtt) cm_mqtt_pong(c);
  Py_RETURN_NONE;
}

PyObject *cm_py_conn_mqtt_disconnect(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                                     PyObject *kwnames) {
  static const char *const names[] = {"reason_code", "properties"};
  PyObject *v[2];
  if (fast_args("mqtt_disconnect", names, 2, 1, args, nargs, kwnames, v) < 0) return NULL;
  long reason = 0;
  if (v[0] != NULL) {
    reason = PyLong_AsLong(v[0]);
    if (reason == -1 && PyErr_Occurred()) return NULL;
    if (reason < 0 || reason > 255) {
      PyErr_SetString(PyExc_ValueError, "reason_code must be 0..255");
      return NULL;
    }
  }
  prop_list pl;
  if (props_from(v[1], &pl) < 0) return NULL;
  bool is_mqtt;
  struct cm_conn *c = mqtt_conn(self, &is_mqtt);
  if (is_mqtt) cm_mqtt_disconnect_reason(c, (uint8_t)reason, pl.items, pl.n);
  props_free(&pl);
  if (c == NULL) return NULL;
  Py_RETURN_NONE;
}

PyObject *cm_py_conn_mqtt_auth(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                               PyObject *kwnames) {
  static const char *const names[] = {"reason_code", "data", "method", "properties"};
  PyObject *v[4];
  if (fast_args("mqtt_auth", names, 4, 2, args, nargs, kwnames, v) < 0) return NULL;
  long reason = CM_MQTT_RC_CONTINUE_AUTHENTICATION;
  if (v[0] != NULL) {
    reason = PyLong_AsLong(v[0]);
    if (reason == -1 && PyErr_Occurred()) return NULL;
    if (reason < 0 || reason > 255) {
      PyErr_SetString(PyExc_ValueError, "reason_code must be 0..255");
      return NULL;
    }
  }
  struct cm_str method = cm_str_n("", 0);
  if (v[2] != NULL && v[2] != Py_None && topic_view(v[2], &method) < 0) return NULL;
  Py_buffer buf = {0};
  struct cm_str data = cm_str_n("", 0);
  if (v[1] != NULL && v[1] != Py_None) {
    if (cm_py_buffer_get(v[1], &buf, "data") < 0) return NULL;
    data = cm_str_n(buf.buf, (size_t)buf.len);
  }
  prop_list pl;
  if (props_from(v[3], &pl) < 0) {
    if (buf.obj != NULL) PyBuffer_Release(&buf);
    return NULL;
  }
  bool is_mqtt;
  struct cm_conn *c = mqtt_conn(self, &is_mqtt);
  int rc = 0;
  if (is_mqtt) {
    cm_py_manager *mo = cm_py_manager_of(c->mgr);
    cm_py_core_enter(mo);
    rc = cm_mqtt_auth(c, (uint8_t)reason, method, data, pl.items, pl.n);
    cm_py_core_leave(mo);
  }
  props_free(&pl);
  if (buf.obj != NULL) PyBuffer_Release(&buf);
  if (c == NULL) return NULL;
  if (!is_mqtt || rc < 0) {
    PyErr_SetString(PyExc_ValueError,
                    "mqtt_auth(): not allowed here (needs an MQTT 5 connection, an authentication "
                    "method, and 0x18, 0x19 after connecting, or 0 from a server)");
    return NULL;
  }
  Py_RETURN_NONE;
}

/* ------------------------------------------------------------ Manager */

/* The event function of MQTT connections: the bindings' trampoline, then
 * the application's sessions learn that their connection is gone. */
static void mqtt_on_event(struct cm_conn *c, int ev, void *ev_data) {
  cm_py_on_event(c, ev, ev_data);
  if (ev == CM_EV_CLOSE) {
    cm_py_state *st = cm_py_manager_of(c->mgr)->st;
    if (st->mqtt_sessions != NULL && PyList_GET_SIZE(st->mqtt_sessions) > 0)
      cm_py_mqtt_session_closed(st, c);
  }
}

PyObject *cm_py_mgr_mqtt_connect(PyObject *self, PyObject *args, PyObject *kwds) {
  static char *kwlist[] = {"url",          "handler",        "client_id",
                           "username",     "password",       "clean_session",
                           "keepalive",    "version",        "will_topic",
                           "will_message", "will_qos",       "will_retain",
                           "will_properties", "properties",  "tls",
                           "max_packet_size", "max_inflight", "max_queued",
                           "connect_timeout_ms", "session", "auth_method", "auth_data", NULL};
  cm_py_manager *mo = (cm_py_manager *)self;
  const char *url, *cid = "", *user = "", *pass = "", *wtopic = NULL;
  Py_ssize_t cid_n = 0, user_n = 0, pass_n = 0, wtopic_n = 0;
  PyObject *handler = Py_None, *wmsg = NULL, *wprops = Py_None, *props = Py_None, *tls = Py_None;
  PyObject *session = Py_None, *auth_data = Py_None;
  const char *auth_method = NULL;
  Py_ssize_t auth_method_n = 0;
  int clean = 1, keepalive = 60, version = 4, wqos = 0, wretain = 0;
  unsigned int max_packet = 0, max_inflight = 0, max_queued = 0;
  unsigned long long connect_timeout = 0;
  struct cm_mqtt_session *session_c = NULL;
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "s|Os#s#s#pi$iz#OipOOOIIIKOz#O:mqtt_connect", kwlist,
                                   &url, &handler, &cid, &cid_n, &user, &user_n, &pass, &pass_n,
                                   &clean, &keepalive, &version, &wtopic, &wtopic_n, &wmsg, &wqos,
                                   &wretain, &wprops, &props, &tls, &max_packet, &max_inflight,
                                   &max_queued, &connect_timeout, &session, &auth_method,
                                   &auth_method_n, &auth_data))
    return NULL;
  if (session != Py_None && (session_c = cm_py_mqtt_session_claim(mo->st, session)) == NULL)
    return NULL;
  if (keepalive < 0 || keepalive > 65535) {
    PyErr_SetString(PyExc_ValueError, "keepalive must be 0..65535 seconds");
    return NULL;
  }
  if (version != 4 && version != 5) {
    PyErr_SetString(PyExc_ValueError, "version must be 4 (MQTT 3.1.1) or 5");
    return NULL;
  }
  if (wqos < 0 || wqos > 2) {
    PyErr_SetString(PyExc_ValueError, "will_qos must be 0, 1 or 2");
    return NULL;
  }
  struct cm_mqtt_opts o;
  memset(&o, 0, sizeof(o));
  o.session = session_c;
  o.client_id = cm_str_n(cid, (size_t)cid_n);
  o.user = cm_str_n(user, (size_t)user_n);
  o.pass = cm_str_n(pass, (size_t)pass_n);
  o.clean = clean != 0;
  o.keepalive = (uint16_t)keepalive;
  o.version = (uint8_t)version;
  o.will_qos = (uint8_t)wqos;
  o.will_retain = wretain != 0;
  o.limits.max_packet_size = max_packet;
  o.limits.max_inflight = max_inflight;
  o.limits.max_queued = max_queued;
  o.limits.connect_timeout_ms = connect_timeout;
  if (wtopic != NULL) {
    o.will_topic = cm_str_n(wtopic, (size_t)wtopic_n);
    if (!cm_mqtt_topic_valid(o.will_topic)) {
      PyErr_SetString(PyExc_ValueError, "invalid will_topic (empty, NUL or a wildcard)");
      return NULL;
    }
  }
  Py_buffer wbuf = {0};
  if (wmsg != NULL && wmsg != Py_None) {
    if (cm_py_buffer_get(wmsg, &wbuf, "will_message") < 0) return NULL;
    o.will_message = cm_str_n(wbuf.buf, (size_t)wbuf.len);
  }
  Py_buffer abuf = {0};
  PyObject *result = NULL;
  if (auth_method != NULL) {
    if (version != 5) {
      PyErr_SetString(PyExc_ValueError, "auth_method needs version=5");
      goto early;
    }
    o.auth_method = cm_str_n(auth_method, (size_t)auth_method_n);
    if (o.auth_method.len == 0 || !cm_mqtt_str_valid(o.auth_method)) {
      PyErr_SetString(PyExc_ValueError, "auth_method: not a valid MQTT string");
      goto early;
    }
  }
  if (auth_data != Py_None) {
    if (auth_method == NULL) {
      PyErr_SetString(PyExc_ValueError, "auth_data needs auth_method");
      goto early;
    }
    if (cm_py_buffer_get(auth_data, &abuf, "auth_data") < 0) goto early;
    o.auth_data = cm_str_n(abuf.buf, (size_t)abuf.len);
    if (o.auth_data.len > 65535) {
      PyErr_SetString(PyExc_ValueError, "auth_data: over 65535 bytes");
      goto early;
    }
  }
  prop_list wpl = {0}, cpl = {0};
  struct cm_tls_opts topts;
  memset(&topts, 0, sizeof(topts));
  PyObject *tls_keep = NULL;
  if (props_from(wprops, &wpl) < 0 || props_from(props, &cpl) < 0) goto done;
  if ((wpl.n > 0 || cpl.n > 0) && version != 5) {
    PyErr_SetString(PyExc_ValueError, "properties and will_properties need version=5");
    goto done;
  }
  o.will_props = wpl.items;
  o.num_will_props = wpl.n;
  o.props = cpl.items;
  o.num_props = cpl.n;
  if (tls != Py_None) {
    if (cm_py_tls_view(((cm_py_manager *)self)->st, tls, &topts, &tls_keep) < 0) goto done;
    o.tls = &topts;
  }
  cm_py_conn *co = cm_py_conn_prepare(mo, handler);
  if (co == NULL) goto done;
  errno = 0;
  struct cm_conn *c = cm_mqtt_connect(&mo->mgr, url, &o, mqtt_on_event, co);
  /* Before finish: a manager closed meanwhile delivers CLOSE there. */
  if (c != NULL && o.session != NULL && cm_py_mqtt_session_bind(mo->st, session, c) < 0) {
    cm_close(c);
    PyErr_Clear();
  }
  result = cm_py_conn_finish(mo, co, c, "mqtt_connect to", url);
done:
  props_free(&wpl);
  props_free(&cpl);
  Py_XDECREF(tls_keep);
early:
  if (wbuf.obj != NULL) PyBuffer_Release(&wbuf);
  if (abuf.obj != NULL) PyBuffer_Release(&abuf);
  return result;
}

PyObject *cm_py_mgr_mqtt_listen(PyObject *self, PyObject *args, PyObject *kwds) {
  static char *kwlist[] = {"url", "handler", "max_packet_size", "connect_timeout_ms", NULL};
  cm_py_manager *mo = (cm_py_manager *)self;
  const char *url;
  PyObject *handler = Py_None;
  unsigned int max_packet = 0;
  unsigned long long connect_timeout = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "s|O$IK:mqtt_listen", kwlist, &url, &handler,
                                   &max_packet, &connect_timeout))
    return NULL;
  struct cm_mqtt_limits lim;
  memset(&lim, 0, sizeof(lim));
  lim.max_packet_size = max_packet;
  lim.connect_timeout_ms = connect_timeout;
  cm_py_conn *co = cm_py_conn_prepare(mo, handler);
  if (co == NULL) return NULL;
  errno = 0;
  struct cm_conn *c = cm_mqtt_listen_opts(&mo->mgr, url, &lim, mqtt_on_event, co);
  return cm_py_conn_finish(mo, co, c, "mqtt_listen on", url);
}
