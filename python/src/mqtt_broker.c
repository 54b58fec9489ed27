/*
 * MqttBroker: the MQTT broker of include/cymongoose/mqtt_broker.h from
 * Python, with the operational pieces of src/mqttops (password file, ACL
 * file, persistence, configuration file, bridges) wired as the C program
 * programs/cymongoose-broker.c wires them.
 *
 *   broker = mgr.mqtt_broker("mqtt://127.0.0.1:1883", allow_anonymous=True)
 *   broker.listen("ws://127.0.0.1:8080/mqtt")
 *   mgr.run()            # beside any HTTP / WebSocket listeners of mgr
 *
 * Ownership:
 *   Manager.brokers (list) --strong--> MqttBroker   (until close())
 *   MqttBroker.mgr --strong--> Manager              (until close())
 *   MqttBroker.b   --owns--> struct cm_mqtt_broker  (freed by close())
 * The manager keeps an open broker alive like it keeps its connections, so
 * `mgr.mqtt_broker(url)` without keeping the result serves until the manager
 * closes.  Manager.close() closes its brokers before freeing the C manager
 * (cm_py_mqtt_brokers_close, called from manager.c), as the C API requires.
 *
 * Re-entrancy: the Python callbacks (on_client, on_message, authenticate)
 * run inside broker code.  close() from one of them is deferred to a 0 ms
 * timer, which runs outside the broker's frames; Manager.close() from one is
 * deferred by the manager's own busy bracket (cm_py_core_enter/leave around
 * every call into the broker that may run a callback).
 *
 * Timers (housekeeping of persistence, deferred close) use storage inside
 * the object; each started timer holds a reference to the object, dropped by
 * its release callback when the manager lets go of it.
 */
#include "core.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "mgr_methods.h"
#include "cymongoose.h"
#include <structmember.h>

typedef struct broker_obj {
  PyObject_HEAD
  cm_py_manager *mgr;             /* strong; NULL once closed */
  struct cm_mqtt_broker *b;       /* NULL once closed */
  PyObject *on_client;            /* callables or NULL */
  PyObject *on_message;
  PyObject *authenticate;
  PyObject *listeners;            /* list of (url, port) */
  PyObject *weakreflist;
  struct cm_passwd *passwd;       /* password_file, or NULL */
  struct cm_acl *acl;             /* acl_file, or NULL */
  struct cm_persist *persist;     /* persistence, or NULL */
  struct cm_conf conf;            /* config file (zeroed when none) */
  struct cm_bridge **bridges;     /* conf.nbridges of them */
  uint16_t *identity_ports;       /* listeners whose certificate CN is the user */
  size_t nidentity_ports;
  PyObject *identities;           /* dict: conn id -> certificate CN (str) */
  struct cm_timer house, defer;   /* persistence housekeeping, deferred close */
  uint64_t last_compact_ms;
  uint32_t compact_interval_s;
  int in_hook;                    /* depth of Python callbacks running */
  bool allow_anonymous;
  bool freeing;                   /* inside cm_mqtt_broker_free() */
  bool close_deferred;
  bool house_on, defer_on;        /* the manager references the timer */
} broker_obj;


/* ------------------------------------------------------------- helpers */

static PyObject *str_of(struct cm_str s) {
  return PyUnicode_DecodeUTF8(s.buf != NULL ? s.buf : "", (Py_ssize_t)s.len, "surrogateescape");
}

/* An optional unsigned integer argument (NULL or None: keeps *out). */
static int opt_uint(PyObject *v, const char *name, unsigned long long max,
                    unsigned long long *out) {
  if (v == NULL || v == Py_None) return 0;
  unsigned long long x = PyLong_AsUnsignedLongLong(v);
  if (x == (unsigned long long)-1 && PyErr_Occurred()) {
    if (PyErr_ExceptionMatches(PyExc_OverflowError) || PyErr_ExceptionMatches(PyExc_TypeError)) {
      PyErr_Clear();
      PyErr_Format(PyExc_ValueError, "%s must be an integer from 0 to %llu", name, max);
    }
    return -1;
  }
  if (x > max) {
    PyErr_Format(PyExc_ValueError, "%s must be an integer from 0 to %llu", name, max);
    return -1;
  }
  *out = x;
  return 0;
}

static int opt_u32(PyObject *v, const char *name, uint32_t *out) {
  unsigned long long x = *out;
  if (opt_uint(v, name, UINT32_MAX, &x) < 0) return -1;
  *out = (uint32_t)x;
  return 0;
}

/* An optional str (path) argument: NULL, None, str or os.PathLike. */
static int opt_path(PyObject *v, const char *name, PyObject **out) {
  *out = NULL;
  if (v == NULL || v == Py_None) return 0;
  PyObject *b = NULL;
  if (!PyUnicode_FSConverter(v, &b)) {
    PyErr_Format(PyExc_TypeError, "%s must be a path (str or os.PathLike)", name);
    return -1;
  }
  *out = b; /* bytes */
  return 0;
}

static int opt_callable(PyObject *v, const char *name, PyObject **out) {
  *out = NULL;
  if (v == NULL || v == Py_None) return 0;
  if (!PyCallable_Check(v)) {
    PyErr_Format(PyExc_TypeError, "%s must be callable or None", name);
    return -1;
  }
  *out = Py_NewRef(v);
  return 0;
}

/* -------------------------------------------------------------- hooks */

/* Reports the current exception of a callback to the manager. */
static void report(broker_obj *o) { cm_py_report(o->mgr); }

static const char *identity_of(broker_obj *o, unsigned long conn_id) {
  if (o->identities == NULL) return NULL;
  PyObject *k = PyLong_FromUnsignedLong(conn_id);
  if (k == NULL) return PyErr_Clear(), NULL;
  PyObject *v = PyDict_GetItemWithError(o->identities, k); /* borrowed */
  Py_DECREF(k);
  if (v == NULL) return PyErr_Clear(), NULL;
  return PyUnicode_AsUTF8(v);
}

static bool uses_identity(const broker_obj *o, unsigned long conn_id) {
  if (o->nidentity_ports == 0 || o->mgr == NULL) return false;
  struct cm_conn *c = cm_conn_by_id(&o->mgr->mgr, conn_id);
  if (c == NULL) return false;
  for (size_t i = 0; i < o->nidentity_ports; i++)
    if (o->identity_ports[i] == c->loc.port) return true;
  return false;
}

/* Certificate identity: the verified client certificate's CN is the user. */
static int auth_identity(broker_obj *o, const struct cm_mqtt_client_info *who) {
  char cn[256];
  size_t n = 0;
  if (who->cert_cn.len > 0 && who->cert_cn.len < sizeof(cn)) {
    memcpy(cn, who->cert_cn.buf, who->cert_cn.len);
    n = who->cert_cn.len;
    cn[n] = '\0';
  } else {
    struct cm_conn *c = cm_conn_by_id(&o->mgr->mgr, who->conn_id);
    if (c != NULL && cm_tls_peer_cert(c, NULL, 0, cn, sizeof(cn))) n = strlen(cn);
  }
  if (n == 0) return CM_MQTT_RC_NOT_AUTHORIZED;
  if (o->identities == NULL && (o->identities = PyDict_New()) == NULL) goto fail;
  PyObject *k = PyLong_FromUnsignedLong(who->conn_id);
  PyObject *v = PyUnicode_DecodeUTF8(cn, (Py_ssize_t)n, "surrogateescape");
  int rc = k == NULL || v == NULL ? -1 : PyDict_SetItem(o->identities, k, v);
  Py_XDECREF(k);
  Py_XDECREF(v);
  if (rc == 0) return CM_MQTT_RC_SUCCESS;
fail:
  report(o);
  return CM_MQTT_RC_SERVER_UNAVAILABLE;
}

/* The Python authenticate(client_id, username, password) -> bool | int. */
static int auth_python(broker_obj *o, const struct cm_mqtt_client_info *who,
                       struct cm_str password, bool has_password) {
  PyObject *id = str_of(who->client_id), *user = str_of(who->username);
  PyObject *pw = has_password
                     ? PyBytes_FromStringAndSize(password.buf, (Py_ssize_t)password.len)
                     : Py_NewRef(Py_None);
  PyObject *res = NULL;
  int rc = CM_MQTT_RC_SERVER_UNAVAILABLE;
  if (id != NULL && user != NULL && pw != NULL) {
    o->in_hook++;
    res = PyObject_CallFunctionObjArgs(o->authenticate, id, user, pw, NULL);
    o->in_hook--;
  }
  if (res != NULL) {
    if (PyBool_Check(res)) {
      rc = res == Py_True ? CM_MQTT_RC_SUCCESS : CM_MQTT_RC_NOT_AUTHORIZED;
    } else if (PyLong_Check(res)) {
      long v = PyLong_AsLong(res);
      if (v >= 0 && v <= 255 && (v == 0 || v >= 0x80)) rc = (int)v;
      else PyErr_Format(PyExc_ValueError, "authenticate() returned %ld: not 0 or a v5 "
                                          "reason code >= 0x80", v);
    } else {
      PyErr_Format(PyExc_TypeError, "authenticate() must return a bool or an int, not %.100s",
                   Py_TYPE(res)->tp_name);
    }
  }
  if (PyErr_Occurred()) report(o);
  Py_XDECREF(res);
  Py_XDECREF(id);
  Py_XDECREF(user);
  Py_XDECREF(pw);
  return rc;
}

static int hook_authenticate(void *arg, const struct cm_mqtt_client_info *who,
                             struct cm_str password, bool has_password) {
  broker_obj *o = arg;
  if (o->freeing || o->mgr == NULL) return CM_MQTT_RC_SERVER_UNAVAILABLE;
  if (who->conn_id != 0 && uses_identity(o, who->conn_id)) return auth_identity(o, who);
  if (o->authenticate != NULL) return auth_python(o, who, password, has_password);
  if (who->username.len == 0 || o->passwd == NULL)
    return o->allow_anonymous ? CM_MQTT_RC_SUCCESS : CM_MQTT_RC_NOT_AUTHORIZED;
  if (has_password && cm_passwd_check(o->passwd, who->username, password))
    return CM_MQTT_RC_SUCCESS;
  return CM_MQTT_RC_BAD_USERNAME_OR_PASSWORD;
}

static bool hook_acl(void *arg, const struct cm_mqtt_client_info *who, struct cm_str topic,
                     int access) {
  broker_obj *o = arg;
  const char *id = who->conn_id != 0 ? identity_of(o, who->conn_id) : NULL;
  struct cm_str user = id != NULL ? cm_str_c(id) : who->username;
  return cm_acl_check(o->acl, user, who->client_id, topic, access);
}

static void hook_message(void *arg, const struct cm_mqtt_broker_msg *m,
                         const struct cm_mqtt_client_info *from, const void *origin) {
  broker_obj *o = arg;
  if (o->freeing || o->mgr == NULL) return;
  for (size_t i = 0; i < o->conf.nbridges; i++)
    if (o->bridges != NULL && o->bridges[i] != NULL) cm_bridge_on_message(o->bridges[i], m, origin);
  if (o->on_message == NULL) return;
  PyObject *topic = str_of(m->topic);
  PyObject *payload = PyBytes_FromStringAndSize(m->payload.buf, (Py_ssize_t)m->payload.len);
  PyObject *qos = PyLong_FromLong(m->qos);
  PyObject *client = from != NULL ? str_of(from->client_id) : Py_NewRef(Py_None);
  PyObject *res = NULL;
  if (topic != NULL && payload != NULL && qos != NULL && client != NULL) {
    o->in_hook++;
    res = PyObject_CallFunctionObjArgs(o->on_message, topic, payload, qos,
                                       m->retain ? Py_True : Py_False, client, NULL);
    o->in_hook--;
  }
  if (res == NULL) report(o);
  Py_XDECREF(res);
  Py_XDECREF(topic);
  Py_XDECREF(payload);
  Py_XDECREF(qos);
  Py_XDECREF(client);
}

/* The info dict of a connected client. */
static PyObject *client_info(const struct cm_mqtt_client_info *who) {
  char ip[64] = "";
  if (who->addr != NULL) cm_addr_ip_str(who->addr, ip, sizeof(ip));
  PyObject *user = str_of(who->username);
  PyObject *d = user == NULL ? NULL
                             : Py_BuildValue("{s:i,s:O,s:(si),s:k}", "version", (int)who->version,
                                             "username", user, "address", ip,
                                             who->addr != NULL ? (int)who->addr->port : 0,
                                             "conn_id", who->conn_id);
  Py_XDECREF(user);
  return d;
}

static void hook_client(void *arg, const struct cm_mqtt_client_info *who, bool connected,
                        int reason, const char *why) {
  broker_obj *o = arg;
  if (o->freeing || o->mgr == NULL) return;
  PyObject *id = str_of(who->client_id);
  if (id == NULL) return report(o);
  /* No table of clients here (`clients` asks the broker): a Python dict
   * per client would double the memory of an idle one. */
  if (!connected) {
    if (o->identities != NULL) {
      PyObject *k = PyLong_FromUnsignedLong(who->conn_id);
      if (k == NULL || (PyDict_DelItem(o->identities, k) < 0 && !PyErr_ExceptionMatches(PyExc_KeyError)))
        report(o);
      PyErr_Clear();
      Py_XDECREF(k);
    }
  }
  if (o->on_client != NULL) {
    PyObject *w = PyUnicode_FromString(why != NULL ? why : "");
    PyObject *res = NULL;
    if (w != NULL) {
      o->in_hook++;
      res = PyObject_CallFunction(o->on_client, "OOiO", id, connected ? Py_True : Py_False,
                                  reason, w);
      o->in_hook--;
    }
    if (res == NULL) report(o);
    Py_XDECREF(res);
    Py_XDECREF(w);
  }
  Py_DECREF(id);
}

/* ------------------------------------------------------------- timers */

/* The manager let go of a timer: its reference to the object goes. */
static void house_release(void *arg) {
  ((broker_obj *)arg)->house_on = false;
  Py_DECREF((PyObject *)arg);
}

static void defer_release(void *arg) {
  ((broker_obj *)arg)->defer_on = false;
  Py_DECREF((PyObject *)arg);
}

static void start_timer(broker_obj *o, struct cm_timer *t, uint64_t ms, unsigned flags,
                        cm_timer_fn fn) {
  bool house = t == &o->house;
  Py_INCREF(o); /* dropped by the release callback */
  if (house) o->house_on = true;
  else o->defer_on = true;
  cm_timer_start(&o->mgr->mgr, t, ms, flags, fn, o, house ? house_release : defer_release);
}

/* Every 20 ms with persistence: fsync per policy, compaction when due. */
static void housekeeping(void *arg) {
  broker_obj *o = arg;
  if (o->persist == NULL) return;
  uint64_t now = cm_millis();
  cm_persist_tick(o->persist, now);
  uint64_t records = cm_persist_records_since_compact(o->persist);
  bool due = o->compact_interval_s > 0 &&
             now - o->last_compact_ms >= (uint64_t)o->compact_interval_s * 1000u;
  if ((due && records > 0) || records > 1000000) {
    if (cm_persist_compact(o->persist) == 0)
      CM_DEBUG("persistence: compacted after %llu records", (unsigned long long)records);
    o->last_compact_ms = now;
  }
}

/* ---------------------------------------------------------- life cycle */

/* Frees everything C the broker holds; its listeners and clients close.
 * Drops the manager's reference to o (o may be freed on return if nobody
 * else holds it: callers hold their own). */
static void broker_shutdown(broker_obj *o) {
  if (o->mgr == NULL) return;
  cm_py_manager *mo = o->mgr;
  o->freeing = true;
  for (size_t i = 0; o->bridges != NULL && i < o->conf.nbridges; i++) {
    cm_bridge_free(o->bridges[i]);
    o->bridges[i] = NULL;
  }
  if (o->b != NULL) cm_mqtt_broker_free(o->b);
  o->b = NULL;
  if (mo->ready && !mo->closing) {
    if (o->house_on) cm_timer_cancel(&mo->mgr, &o->house);
    if (o->defer_on) cm_timer_cancel(&mo->mgr, &o->defer);
  }
  cm_persist_close(o->persist); /* flushed and fsynced */
  o->persist = NULL;
  o->freeing = false;
  o->mgr = NULL;
  if (o->identities != NULL) PyDict_Clear(o->identities);
  if (mo->brokers != NULL) {
    Py_ssize_t i = PySequence_Index(mo->brokers, (PyObject *)o);
    if (i < 0 || PySequence_DelItem(mo->brokers, i) < 0) PyErr_Clear();
  }
  Py_DECREF(mo);
}

static void deferred_close(void *arg) {
  broker_obj *o = arg;
  o->close_deferred = false;
  Py_INCREF(o);
  broker_shutdown(o);
  Py_DECREF(o);
}

void cm_py_mqtt_brokers_close(cm_py_manager *mo) {
  if (mo->brokers == NULL) return;
  while (PyList_GET_SIZE(mo->brokers) > 0) {
    PyObject *o = Py_NewRef(PyList_GET_ITEM(mo->brokers, PyList_GET_SIZE(mo->brokers) - 1));
    Py_ssize_t before = PyList_GET_SIZE(mo->brokers);
    broker_shutdown((broker_obj *)o);
    if (PyList_GET_SIZE(mo->brokers) == before) /* not found: never loop forever */
      (void)PyList_SetSlice(mo->brokers, before - 1, before, NULL);
    Py_DECREF(o);
  }
}

static int broker_traverse(broker_obj *o, visitproc visit, void *arg) {
  Py_VISIT(Py_TYPE(o));
  Py_VISIT((PyObject *)o->mgr);
  Py_VISIT(o->on_client);
  Py_VISIT(o->on_message);
  Py_VISIT(o->authenticate);
  Py_VISIT(o->identities);
  return 0;
}

static int broker_clear(broker_obj *o) {
  Py_CLEAR(o->on_client);
  Py_CLEAR(o->on_message);
  Py_CLEAR(o->authenticate);
  return 0;
}

static void broker_dealloc(broker_obj *o) {
  PyTypeObject *tp = Py_TYPE(o);
  PyObject_GC_UnTrack(o);
  if (o->weakreflist != NULL) PyObject_ClearWeakRefs((PyObject *)o);
  /* Open brokers are held by their manager and by their timers, so o->mgr
   * is NULL here unless creation failed half way. */
  if (o->mgr != NULL) broker_shutdown(o); /* not in mgr->brokers: no reference dropped */
  free(o->bridges);
  free(o->identity_ports);
  cm_passwd_free(o->passwd);
  cm_acl_free(o->acl);
  cm_conf_free(&o->conf);
  broker_clear(o);
  Py_CLEAR(o->listeners);
  Py_CLEAR(o->identities);
  tp->tp_free((PyObject *)o);
  Py_DECREF(tp);
}

/* Adds a listener; returns its port or -1 with an exception set. */
static long add_listener(broker_obj *o, const char *url, const struct cm_tls_opts *tls) {
  static const char *const schemes[] = {"mqtt://", "tcp://", "mqtts://", "ws://", "wss://"};
  bool known = false;
  for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
    if (strncmp(url, schemes[i], strlen(schemes[i])) == 0) known = true;
  if (!known) {
    PyErr_Format(PyExc_ValueError, "cannot listen on %s: an MQTT broker listens on mqtt://, "
                 "mqtts://, ws:// or wss://", url);
    return -1;
  }
  if (cm_py_check_url(url, false) < 0) return -1;
  cm_py_core_enter(o->mgr);
  errno = 0;
  struct cm_conn *c = cm_mqtt_broker_listen(o->b, url, tls);
  int err = errno;
  cm_py_core_leave(o->mgr);
  if (c == NULL) {
    errno = err;
    if (err == EINVAL)
      PyErr_Format(PyExc_ValueError, "cannot listen on %s: bad URL or TLS options "
                   "(mqtts:// and wss:// need tls=TlsOpts(cert=..., key=...))", url);
    else
      PyErr_Format(PyExc_OSError, "cannot listen on %s: %s", url,
                   strerror(err != 0 ? err : EINVAL));
    return -1;
  }
  PyObject *item = Py_BuildValue("(si)", url, (int)c->loc.port);
  if (item == NULL || PyList_Append(o->listeners, item) < 0) {
    Py_XDECREF(item);
    return -1; /* the listener stays (closed with the broker) */
  }
  Py_DECREF(item);
  return (long)c->loc.port;
}

/* A listener of the config file (certificate files read here). */
static int conf_listener(broker_obj *o, const struct cm_conf_listener *l) {
  struct cm_tls_opts tls = {0};
  char *files[3] = {NULL, NULL, NULL};
  char err[CM_OPS_ERR_LEN];
  int rc = -1;
  size_t n;
  bool is_tls = strncmp(l->url, "mqtts://", 8) == 0 || strncmp(l->url, "wss://", 6) == 0;
  if (is_tls && l->certfile == NULL) {
    PyErr_Format(PyExc_ValueError, "%s: certfile is required for TLS listeners", l->url);
    return -1;
  }
  if (!is_tls && (l->certfile != NULL || l->require_certificate)) {
    PyErr_Format(PyExc_ValueError, "%s: certfile/require_certificate need mqtts:// or wss://",
                 l->url);
    return -1;
  }
  if (l->require_certificate && l->cafile == NULL) {
    PyErr_Format(PyExc_ValueError, "%s: require_certificate needs a cafile", l->url);
    return -1;
  }
  if (l->use_identity_as_username && !l->require_certificate) {
    PyErr_Format(PyExc_ValueError, "%s: use_identity_as_username needs require_certificate true",
                 l->url);
    return -1;
  }
  const char *paths[3] = {l->certfile, l->keyfile, l->require_certificate ? l->cafile : NULL};
  struct cm_str *dst[3] = {&tls.cert, &tls.key, &tls.ca};
  for (int i = 0; i < 3; i++) {
    if (paths[i] == NULL) continue;
    if ((files[i] = cm_ops_read_file(paths[i], &n, err, sizeof(err))) == NULL) {
      PyErr_SetString(PyExc_OSError, err);
      goto done;
    }
    *dst[i] = cm_str_n(files[i], n);
  }
  long port = add_listener(o, l->url, is_tls ? &tls : NULL);
  if (port < 0) goto done;
  if (l->use_identity_as_username) {
    uint16_t *np = realloc(o->identity_ports, (o->nidentity_ports + 1) * sizeof(*np));
    if (np == NULL) {
      PyErr_NoMemory();
      goto done;
    }
    o->identity_ports = np;
    o->identity_ports[o->nidentity_ports++] = (uint16_t)port;
  }
  rc = 0;
done:
  for (int i = 0; i < 3; i++) free(files[i]);
  return rc;
}

/*
 * Manager.mqtt_broker(url=None, *, options...) -> MqttBroker.  The names
 * below are the keyword options, in the order of the text signature.
 */
enum {
  A_URL, A_CONFIG, A_TLS, A_ALLOW_ANON, A_PASSWORD_FILE, A_ACL_FILE, A_PERSISTENCE, A_FSYNC,
  A_FSYNC_INTERVAL, A_COMPACT, A_MAX_CONN, A_MAX_PACKET, A_MAX_QUEUED, A_MAX_INFLIGHT,
  A_MAX_RETAINED, A_MAX_RETAINED_BYTES, A_MAX_SUBS, A_MAX_EXPIRY, A_TOPIC_ALIAS_MAX,
  A_TOPIC_ALIAS_OUT_MAX, A_SERVER_KEEPALIVE, A_KEEPALIVE_FACTOR, A_CONNECT_TIMEOUT, A_SEND_HWM, A_SLOW_POLICY,
  A_ASSIGN_IDS, A_SYS_INTERVAL, A_ON_CLIENT, A_ON_MESSAGE, A_AUTHENTICATE, A_N_
};

static const char *const broker_kwnames[] = {
    "url", "config", "tls", "allow_anonymous", "password_file", "acl_file", "persistence",
    "fsync", "fsync_interval_ms", "compact_interval_s", "max_connections", "max_packet_size",
    "max_queued", "max_inflight", "max_retained", "max_retained_bytes", "max_subs_per_client",
    "max_session_expiry_s", "topic_alias_max", "topic_alias_out_max", "server_keepalive",
    "keepalive_factor",
    "connect_timeout_ms", "send_hwm", "slow_policy", "assign_client_ids", "sys_interval_ms",
    "on_client", "on_message", "authenticate", NULL};

/* Parses the options into o (files loaded) and *opts.  0, or -1 with an
 * exception set. */
static int parse_options(broker_obj *o, PyObject **a, struct cm_mqtt_broker_opts *opts,
                         struct cm_tls_opts *tls, PyObject **tls_keep, int *fsync,
                         uint32_t *fsync_ms, PyObject **persist_path) {
  char err[CM_OPS_ERR_LEN];
  PyObject *path = NULL;
  cm_py_state *st = o->mgr->st;
  *tls_keep = NULL;
  *persist_path = NULL;
  /* The config file first: explicit keywords override what it says. */
  if (opt_path(a[A_CONFIG], "config", &path) < 0) return -1;
  if (path != NULL) {
    bool ok = cm_conf_load(&o->conf, PyBytes_AS_STRING(path), err, sizeof(err)) == 0;
    Py_DECREF(path);
    if (!ok) {
      PyErr_SetString(PyExc_ValueError, err);
      return -1;
    }
  }
  bool has_conf = a[A_CONFIG] != NULL && a[A_CONFIG] != Py_None;
  o->allow_anonymous = o->conf.allow_anonymous;
  if (a[A_ALLOW_ANON] != NULL) {
    int t = PyObject_IsTrue(a[A_ALLOW_ANON]);
    if (t < 0) return -1;
    o->allow_anonymous = t != 0;
  }
  /* Limits and topic aliases of the file (o->conf is zeroed without one);
   * keywords override them below. */
  if (has_conf) cm_conf_broker_opts(&o->conf, opts);
  o->compact_interval_s = 300;
  if (has_conf) {
    *fsync = o->conf.fsync;
    *fsync_ms = o->conf.fsync_interval_ms;
    o->compact_interval_s = o->conf.compact_interval_s;
  }
  if (opt_u32(a[A_MAX_CONN], "max_connections", &opts->max_connections) < 0 ||
      opt_u32(a[A_MAX_PACKET], "max_packet_size", &opts->max_packet_size) < 0 ||
      opt_u32(a[A_MAX_QUEUED], "max_queued", &opts->max_queued) < 0 ||
      opt_u32(a[A_MAX_INFLIGHT], "max_inflight", &opts->max_inflight) < 0 ||
      opt_u32(a[A_MAX_RETAINED], "max_retained", &opts->max_retained) < 0 ||
      opt_u32(a[A_MAX_SUBS], "max_subs_per_client", &opts->max_subs_per_client) < 0 ||
      opt_u32(a[A_MAX_EXPIRY], "max_session_expiry_s", &opts->max_session_expiry_s) < 0 ||
      opt_u32(a[A_FSYNC_INTERVAL], "fsync_interval_ms", fsync_ms) < 0 ||
      opt_u32(a[A_COMPACT], "compact_interval_s", &o->compact_interval_s) < 0)
    return -1;
  unsigned long long x = 0;
  if (opt_uint(a[A_MAX_RETAINED_BYTES], "max_retained_bytes", UINT64_MAX, &x) < 0) return -1;
  opts->max_retained_bytes = x;
  if (a[A_TOPIC_ALIAS_MAX] != NULL && a[A_TOPIC_ALIAS_MAX] != Py_None) {
    if (opt_uint(a[A_TOPIC_ALIAS_MAX], "topic_alias_max", 65535, &x) < 0) return -1;
    opts->topic_alias_max = (uint16_t)x;
    opts->no_topic_alias = x == 0;
  }
  if (a[A_TOPIC_ALIAS_OUT_MAX] != NULL && a[A_TOPIC_ALIAS_OUT_MAX] != Py_None) {
    if (opt_uint(a[A_TOPIC_ALIAS_OUT_MAX], "topic_alias_out_max", 65535, &x) < 0) return -1;
    opts->topic_alias_out_max = (uint16_t)x;
    opts->no_topic_alias_out = x == 0;
  }
  x = 0;
  if (opt_uint(a[A_SERVER_KEEPALIVE], "server_keepalive", 65535, &x) < 0) return -1;
  opts->server_keepalive = (uint16_t)x;
  if (a[A_KEEPALIVE_FACTOR] != NULL && a[A_KEEPALIVE_FACTOR] != Py_None) {
    double f = PyFloat_AsDouble(a[A_KEEPALIVE_FACTOR]);
    if (f == -1.0 && PyErr_Occurred()) return -1;
    if (!(f >= 1.0 && f <= 100.0)) {
      PyErr_SetString(PyExc_ValueError, "keepalive_factor must be from 1.0 to 100.0");
      return -1;
    }
    opts->keepalive_factor = (float)f;
  }
  x = 0;
  if (opt_uint(a[A_CONNECT_TIMEOUT], "connect_timeout_ms", UINT64_MAX, &x) < 0) return -1;
  opts->connect_timeout_ms = x;
  x = 0;
  if (opt_uint(a[A_SEND_HWM], "send_hwm", SIZE_MAX, &x) < 0) return -1;
  opts->send_hwm = (size_t)x;
  if (a[A_SLOW_POLICY] != NULL && a[A_SLOW_POLICY] != Py_None) {
    const char *p = PyUnicode_Check(a[A_SLOW_POLICY]) ? PyUnicode_AsUTF8(a[A_SLOW_POLICY]) : NULL;
    if (p != NULL && strcmp(p, "queue") == 0) opts->slow_policy = CM_MQTT_SLOW_QUEUE;
    else if (p != NULL && strcmp(p, "disconnect") == 0) opts->slow_policy = CM_MQTT_SLOW_DISCONNECT;
    else {
      PyErr_SetString(PyExc_ValueError, "slow_policy must be 'queue' or 'disconnect'");
      return -1;
    }
  }
  if (a[A_FSYNC] != NULL && a[A_FSYNC] != Py_None) {
    const char *p = PyUnicode_Check(a[A_FSYNC]) ? PyUnicode_AsUTF8(a[A_FSYNC]) : NULL;
    if (p != NULL && strcmp(p, "always") == 0) *fsync = CM_FSYNC_ALWAYS;
    else if (p != NULL && strcmp(p, "interval") == 0) *fsync = CM_FSYNC_INTERVAL;
    else if (p != NULL && strcmp(p, "never") == 0) *fsync = CM_FSYNC_NEVER;
    else {
      PyErr_SetString(PyExc_ValueError, "fsync must be 'always', 'interval' or 'never'");
      return -1;
    }
  }
  if (a[A_ASSIGN_IDS] != NULL) {
    int t = PyObject_IsTrue(a[A_ASSIGN_IDS]);
    if (t < 0) return -1;
    opts->no_assign_ids = t == 0;
  }
  if (a[A_SYS_INTERVAL] != NULL && a[A_SYS_INTERVAL] != Py_None) {
    if (opt_u32(a[A_SYS_INTERVAL], "sys_interval_ms", &opts->sys_interval_ms) < 0) return -1;
    opts->no_sys = opts->sys_interval_ms == 0;
  }
  if (opt_callable(a[A_ON_CLIENT], "on_client", &o->on_client) < 0 ||
      opt_callable(a[A_ON_MESSAGE], "on_message", &o->on_message) < 0 ||
      opt_callable(a[A_AUTHENTICATE], "authenticate", &o->authenticate) < 0)
    return -1;
  /* Files: keywords win over the config file. */
  const char *pw = o->conf.password_file, *acl = o->conf.acl_file;
  PyObject *pw_b = NULL, *acl_b = NULL;
  if (opt_path(a[A_PASSWORD_FILE], "password_file", &pw_b) < 0) return -1;
  if (opt_path(a[A_ACL_FILE], "acl_file", &acl_b) < 0) return Py_XDECREF(pw_b), -1;
  if (pw_b != NULL) pw = PyBytes_AS_STRING(pw_b);
  if (acl_b != NULL) acl = PyBytes_AS_STRING(acl_b);
  if (pw != NULL && o->authenticate != NULL) {
    PyErr_SetString(PyExc_ValueError, "give password_file or authenticate, not both");
  } else if (pw != NULL && (o->passwd = cm_passwd_load(pw, err, sizeof(err))) == NULL) {
    PyErr_SetString(PyExc_ValueError, err);
  } else if (acl != NULL && (o->acl = cm_acl_load(acl, err, sizeof(err))) == NULL) {
    PyErr_SetString(PyExc_ValueError, err);
  }
  Py_XDECREF(pw_b);
  Py_XDECREF(acl_b);
  if (PyErr_Occurred()) return -1;
  if (opt_path(a[A_PERSISTENCE], "persistence", persist_path) < 0) return -1;
  if (*persist_path == NULL && o->conf.persistence_file != NULL &&
      (*persist_path = PyBytes_FromString(o->conf.persistence_file)) == NULL)
    return -1;
  if (a[A_TLS] != NULL && a[A_TLS] != Py_None && cm_py_tls_view(st, a[A_TLS], tls, tls_keep) < 0)
    return -1;
  return 0;
}

PyObject *cm_py_mgr_mqtt_broker(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                                PyObject *kwnames) {
  cm_py_manager *mo = (cm_py_manager *)self;
  PyObject *a[A_N_];
  if (cm_py_bind("mqtt_broker", args, nargs, kwnames, broker_kwnames, 1, 0, a) < 0) return NULL;
  if (!mo->ready || mo->closing || mo->close_requested) {
    PyErr_SetString(PyExc_RuntimeError, "Manager is closed");
    return NULL;
  }
  const char *url = NULL;
  if (a[A_URL] != NULL && a[A_URL] != Py_None) {
    if (!PyUnicode_Check(a[A_URL])) {
      PyErr_SetString(PyExc_TypeError, "url must be a str or None");
      return NULL;
    }
    if ((url = PyUnicode_AsUTF8(a[A_URL])) == NULL) return NULL;
  }
  if (mo->brokers == NULL && (mo->brokers = PyList_New(0)) == NULL) return NULL;
  PyTypeObject *tp = mo->st->mqtt_broker_type;
  broker_obj *o = (broker_obj *)tp->tp_alloc(tp, 0);
  if (o == NULL) return NULL;
  o->mgr = (cm_py_manager *)Py_NewRef(self);
  if ((o->listeners = PyList_New(0)) == NULL)
    return Py_DECREF(o), NULL;
  struct cm_mqtt_broker_opts opts = {0};
  struct cm_tls_opts tls = {0};
  PyObject *tls_keep = NULL, *persist_path = NULL;
  int fsync = CM_FSYNC_ALWAYS;
  uint32_t fsync_ms = 1000;
  char err[CM_OPS_ERR_LEN];
  if (parse_options(o, a, &opts, &tls, &tls_keep, &fsync, &fsync_ms, &persist_path) < 0)
    goto fail;
  if (persist_path != NULL) {
    o->persist = cm_persist_open(PyBytes_AS_STRING(persist_path), fsync, fsync_ms, err,
                                 sizeof(err));
    if (o->persist == NULL) {
      PyErr_SetString(PyExc_OSError, err);
      goto fail;
    }
    cm_persist_hooks(o->persist, &opts.store);
  }
  opts.allow_anonymous = o->allow_anonymous;
  opts.authenticate = hook_authenticate;
  opts.auth_arg = o;
  opts.acl_check = o->acl != NULL ? hook_acl : NULL;
  opts.acl_arg = o;
  opts.on_message = o->on_message != NULL || o->conf.nbridges > 0 ? hook_message : NULL;
  opts.msg_arg = o;
  opts.on_client = hook_client;
  opts.client_arg = o;
  cm_py_core_enter(mo);
  errno = 0;
  o->b = cm_mqtt_broker_new(&mo->mgr, &opts);
  int e = errno;
  cm_py_core_leave(mo);
  if (o->b == NULL) {
    if (e == EIO) PyErr_SetString(PyExc_OSError, "mqtt_broker: the persistence file could not be replayed");
    else if (e == EINVAL) PyErr_SetString(PyExc_ValueError, "mqtt_broker: invalid options");
    else PyErr_NoMemory();
    goto fail;
  }
  if (PyList_Append(mo->brokers, (PyObject *)o) < 0) goto fail;
  for (size_t i = 0; i < o->conf.nlisteners; i++)
    if (conf_listener(o, &o->conf.listeners[i]) < 0) goto fail;
  if (url != NULL && add_listener(o, url, tls_keep != NULL ? &tls : NULL) < 0) goto fail;
  if (o->conf.nbridges > 0) {
    if ((o->bridges = calloc(o->conf.nbridges, sizeof(*o->bridges))) == NULL) {
      PyErr_NoMemory();
      goto fail;
    }
    cm_py_core_enter(mo);
    for (size_t i = 0; i < o->conf.nbridges; i++)
      o->bridges[i] = cm_bridge_new(&mo->mgr, o->b, &o->conf.bridges[i]);
    cm_py_core_leave(mo);
  }
  if (o->persist != NULL) {
    o->last_compact_ms = cm_millis();
    start_timer(o, &o->house, 20, CM_TIMER_REPEAT, housekeeping);
  }
  Py_XDECREF(tls_keep);
  Py_XDECREF(persist_path);
  return (PyObject *)o;
fail:
  Py_XDECREF(tls_keep);
  Py_XDECREF(persist_path);
  {
    PyObject *et, *ev, *etb;
    PyErr_Fetch(&et, &ev, &etb);
    broker_shutdown(o);
    PyErr_Restore(et, ev, etb);
  }
  Py_DECREF(o);
  return NULL;
}

/* ------------------------------------------------------------- methods */

static int check_open(broker_obj *o) {
  if (o->mgr == NULL || o->b == NULL || !o->mgr->ready || o->mgr->closing) {
    PyErr_SetString(PyExc_RuntimeError, "MqttBroker is closed");
    return -1;
  }
  return 0;
}

static PyObject *broker_listen(broker_obj *o, PyObject *const *args, Py_ssize_t nargs,
                               PyObject *kwnames) {
  static const char *const names[] = {"url", "tls", NULL};
  PyObject *a[2];
  if (cm_py_bind("listen", args, nargs, kwnames, names, 2, 1, a) < 0) return NULL;
  if (check_open(o) < 0) return NULL;
  if (!PyUnicode_Check(a[0])) {
    PyErr_SetString(PyExc_TypeError, "url must be a str");
    return NULL;
  }
  const char *url = PyUnicode_AsUTF8(a[0]);
  if (url == NULL) return NULL;
  struct cm_tls_opts tls = {0};
  PyObject *keep = NULL;
  if (a[1] != NULL && a[1] != Py_None && cm_py_tls_view(o->mgr->st, a[1], &tls, &keep) < 0) return NULL;
  long port = add_listener(o, url, keep != NULL ? &tls : NULL);
  Py_XDECREF(keep);
  return port < 0 ? NULL : PyLong_FromLong(port);
}

static PyObject *broker_publish(broker_obj *o, PyObject *const *args, Py_ssize_t nargs,
                                PyObject *kwnames) {
  static const char *const names[] = {"topic", "payload", "qos", "retain", NULL};
  PyObject *a[4];
  if (cm_py_bind("publish", args, nargs, kwnames, names, 4, 1, a) < 0) return NULL;
  if (check_open(o) < 0) return NULL;
  Py_ssize_t tlen;
  const char *topic = PyUnicode_Check(a[0]) ? PyUnicode_AsUTF8AndSize(a[0], &tlen) : NULL;
  if (topic == NULL) {
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "topic must be a str");
    return NULL;
  }
  Py_buffer view = {0};
  if (a[1] != NULL && a[1] != Py_None && cm_py_buffer_get(a[1], &view, "payload") < 0) return NULL;
  unsigned long long qos = 0;
  int retain = a[3] != NULL ? PyObject_IsTrue(a[3]) : 0;
  PyObject *res = NULL;
  if (retain >= 0 && opt_uint(a[2], "qos", 2, &qos) == 0) {
    struct cm_mqtt_broker_msg m = {
        .topic = cm_str_n(topic, (size_t)tlen),
        .payload = cm_str_n(view.buf != NULL ? view.buf : "", (size_t)view.len),
        .qos = (uint8_t)qos,
        .retain = retain != 0,
    };
    cm_py_core_enter(o->mgr);
    Py_INCREF(o);
    int n = cm_mqtt_broker_publish(o->b, &m, NULL);
    cm_py_manager *mo = o->mgr;
    cm_py_core_leave(mo);
    Py_DECREF(o);
    if (n < 0)
      PyErr_Format(PyExc_ValueError, "cannot publish to '%s': invalid topic (wildcards, empty, "
                   "invalid UTF-8) or out of memory", topic);
    else
      res = PyLong_FromLong(n);
  }
  if (view.obj != NULL) PyBuffer_Release(&view);
  return res;
}

static PyObject *broker_kick(broker_obj *o, PyObject *const *args, Py_ssize_t nargs,
                             PyObject *kwnames) {
  static const char *const names[] = {"client_id", "reason", "drop_session", NULL};
  PyObject *a[3];
  if (cm_py_bind("kick", args, nargs, kwnames, names, 1, 1, a) < 0) return NULL;
  if (check_open(o) < 0) return NULL;
  Py_ssize_t len;
  const char *id = PyUnicode_Check(a[0]) ? PyUnicode_AsUTF8AndSize(a[0], &len) : NULL;
  if (id == NULL) {
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "client_id must be a str");
    return NULL;
  }
  unsigned long long reason = CM_MQTT_RC_ADMINISTRATIVE_ACTION;
  if (opt_uint(a[1], "reason", 255, &reason) < 0) return NULL;
  int drop = a[2] != NULL ? PyObject_IsTrue(a[2]) : 0;
  if (drop < 0) return NULL;
  cm_py_core_enter(o->mgr);
  bool ok = cm_mqtt_broker_kick(o->b, cm_str_n(id, (size_t)len), (uint8_t)reason, drop != 0) == 0;
  cm_py_core_leave(o->mgr);
  return PyBool_FromLong(ok);
}

static PyObject *broker_close(broker_obj *o, PyObject *unused) {
  (void)unused;
  if (o->mgr == NULL) Py_RETURN_NONE;
  if (o->in_hook > 0) {
    /* Inside the broker's own frames: free it from a timer instead. */
    if (!o->close_deferred && o->mgr->ready && !o->mgr->closing) {
      o->close_deferred = true;
      start_timer(o, &o->defer, 0, CM_TIMER_ONCE, deferred_close);
    }
    Py_RETURN_NONE;
  }
  Py_INCREF(o);
  broker_shutdown(o);
  Py_DECREF(o);
  Py_RETURN_NONE;
}

static PyObject *broker_enter(broker_obj *o, PyObject *unused) {
  (void)unused;
  return Py_NewRef(o);
}

static PyObject *broker_exit(broker_obj *o, PyObject *const *args, Py_ssize_t nargs) {
  (void)args, (void)nargs;
  PyObject *r = broker_close(o, NULL);
  if (r == NULL) return NULL;
  Py_DECREF(r);
  Py_RETURN_FALSE;
}

static PyObject *broker_get_stats(broker_obj *o, void *closure) {
  (void)closure;
  if (check_open(o) < 0) return NULL;
  struct cm_mqtt_broker_stats s;
  cm_mqtt_broker_stats(o->b, &s);
  return Py_BuildValue(
      "{s:K,s:I,s:I,s:I,s:I,s:I,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K}", "uptime_s",
      (unsigned long long)s.uptime_s, "clients_connected", s.clients_connected,
      "clients_disconnected", s.clients_disconnected, "clients_maximum", s.clients_maximum,
      "subscriptions", s.subscriptions, "retained", s.retained, "retained_bytes",
      (unsigned long long)s.retained_bytes, "msgs_received", (unsigned long long)s.msgs_received,
      "msgs_sent", (unsigned long long)s.msgs_sent, "msgs_dropped",
      (unsigned long long)s.msgs_dropped, "bytes_received", (unsigned long long)s.bytes_received,
      "bytes_sent", (unsigned long long)s.bytes_sent, "queued", (unsigned long long)s.queued,
      "connections_refused", (unsigned long long)s.connections_refused);
}

/* cm_mqtt_broker_clients() into a dict (d NULL once something failed). */
static void add_client(void *arg, const struct cm_mqtt_client_info *who) {
  PyObject **d = arg;
  if (*d == NULL) return;
  PyObject *id = str_of(who->client_id);
  PyObject *info = id != NULL ? client_info(who) : NULL;
  if (info == NULL || PyDict_SetItem(*d, id, info) < 0) Py_CLEAR(*d);
  Py_XDECREF(id);
  Py_XDECREF(info);
}

static PyObject *broker_get_clients(broker_obj *o, void *closure) {
  (void)closure;
  PyObject *d = PyDict_New();
  if (d != NULL && o->b != NULL) cm_mqtt_broker_clients(o->b, add_client, &d);
  return d;
}

static PyObject *broker_get_listeners(broker_obj *o, void *closure) {
  (void)closure;
  return PyList_GetSlice(o->listeners, 0, PY_SSIZE_T_MAX);
}

static PyObject *broker_get_closed(broker_obj *o, void *closure) {
  (void)closure;
  return PyBool_FromLong(o->mgr == NULL);
}

static PyObject *broker_get_manager(broker_obj *o, void *closure) {
  (void)closure;
  return Py_NewRef(o->mgr != NULL ? (PyObject *)o->mgr : Py_None);
}

static PyObject *broker_repr(broker_obj *o) {
  if (o->mgr == NULL) return PyUnicode_FromString("<MqttBroker closed>");
  struct cm_mqtt_broker_stats s;
  cm_mqtt_broker_stats(o->b, &s);
  return PyUnicode_FromFormat("<MqttBroker clients=%u>", (unsigned)s.clients_connected);
}

static PyMethodDef broker_methods[] = {
    {"listen", CM_PY_FASTCALL_KW(broker_listen),
     "listen($self, /, url, tls=None)\n--\n\n"
     "Adds a listener: mqtt://IP:PORT, mqtts://IP:PORT, ws://IP:PORT/PATH or wss://IP:PORT/PATH\n"
     "(tls: TlsOpts with cert and key, and ca to require client certificates; the\n"
     "broker's own tls= when None).  Port 0 picks a free port.  Returns the port."},
    {"publish", CM_PY_FASTCALL_KW(broker_publish),
     "publish($self, /, topic, payload=b'', qos=0, retain=False)\n--\n\n"
     "Routes a message as if a client had published it (no ACL check); retain with an\n"
     "empty payload clears the retained message.  Returns the number of subscribers it\n"
     "was delivered or queued to."},
    {"kick", CM_PY_FASTCALL_KW(broker_kick),
     "kick($self, /, client_id, reason=152, drop_session=False)\n--\n\n"
     "Disconnects the client (v5: DISCONNECT with reason, 0x98 administrative action by\n"
     "default); drop_session also forgets its session.  False when no such client."},
    {"close", (PyCFunction)broker_close, METH_NOARGS,
     "close($self, /)\n--\n\n"
     "Stops the broker: listeners closed, v5 clients sent DISCONNECT 0x8B, every client\n"
     "connection closed (no will published), persistence flushed.  Idempotent."},
    {"__enter__", (PyCFunction)broker_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)(void (*)(void))broker_exit, METH_FASTCALL, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef broker_getset[] = {
    {"stats", (getter)broker_get_stats, NULL,
     "Statistics (dict): uptime_s, clients_connected, clients_disconnected, clients_maximum,\n"
     "subscriptions, retained, retained_bytes, msgs_received, msgs_sent, msgs_dropped,\n"
     "bytes_received, bytes_sent, queued, connections_refused.", NULL},
    {"clients", (getter)broker_get_clients, NULL,
     "The connected clients (dict): client id -> {'version', 'username', 'address',\n"
     "'conn_id'}.", NULL},
    {"listeners", (getter)broker_get_listeners, NULL,
     "The listeners added (list of (url, port)), port as bound (useful with port 0).", NULL},
    {"closed", (getter)broker_get_closed, NULL, "True once close() ran.", NULL},
    {"manager", (getter)broker_get_manager, NULL, "The Manager, None once closed.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef broker_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(broker_obj, weakreflist), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyObject *broker_no_new(PyTypeObject *tp, PyObject *args, PyObject *kwds) {
  (void)tp, (void)args, (void)kwds;
  PyErr_SetString(PyExc_TypeError, "MqttBroker objects are made by Manager.mqtt_broker()");
  return NULL;
}

static PyType_Slot broker_slots[] = {
    {Py_tp_new, broker_no_new},
    {Py_tp_dealloc, broker_dealloc},
    {Py_tp_traverse, broker_traverse},
    {Py_tp_clear, broker_clear},
    {Py_tp_repr, broker_repr},
    {Py_tp_methods, broker_methods},
    {Py_tp_getset, broker_getset},
    {Py_tp_members, broker_members},
    {Py_tp_doc, "An MQTT broker (3.1, 3.1.1, 5.0) on a Manager's loop: made by\n"
                "Manager.mqtt_broker(); listeners added with listen(); close() or a with\n"
                "block stops it.  Closing the manager closes it too."},
    {0, NULL},
};

static PyType_Spec broker_spec = {
    .name = "cymongoose._mongoose.MqttBroker",
    .basicsize = sizeof(broker_obj),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = broker_slots,
};

int cm_py_mqtt_broker_exec(PyObject *m, cm_py_state *st) {
  st->mqtt_broker_type = (PyTypeObject *)PyType_FromModuleAndSpec(m, &broker_spec, NULL);
  if (st->mqtt_broker_type == NULL) return -1;
  return PyModule_AddType(m, st->mqtt_broker_type);
}
