/*
 * Manager methods implemented outside manager.c (protocol bindings).
 * manager.c includes this file twice: once for the declarations, once
 * inside its PyMethodDef table (with CM_PY_MGR_METHODS_TABLE defined).
 *
 * Every entry names its function explicitly (no weak placeholders): a
 * missing or misspelt definition leaves the name undefined in the
 * extension, which setup.py refuses as a build error.  Open the connection
 * with cm_py_conn_prepare() and cm_py_conn_finish() from core.h.
 */
#ifndef CM_PY_MGR_METHODS_DECLS
#define CM_PY_MGR_METHODS_DECLS
#include <Python.h>
/* All take (Manager self, args tuple, kwargs dict or NULL). */
PyObject *cm_py_mgr_ws_connect(PyObject *self, PyObject *args, PyObject *kwds);   /* conn_ws.c */
PyObject *cm_py_mgr_mqtt_connect(PyObject *self, PyObject *args, PyObject *kwds); /* conn_mqtt.c */
PyObject *cm_py_mgr_mqtt_listen(PyObject *self, PyObject *args, PyObject *kwds);  /* conn_mqtt.c */
PyObject *cm_py_mgr_sntp_connect(PyObject *self, PyObject *args, PyObject *kwds); /* conn_dns.c */
/* METH_FASTCALL | METH_KEYWORDS (args.h); mqtt_broker.c. */
PyObject *cm_py_mgr_mqtt_broker(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                                PyObject *kwnames);
#endif

#ifdef CM_PY_MGR_METHODS_TABLE
{"ws_connect", (PyCFunction)(void (*)(void))cm_py_mgr_ws_connect, METH_VARARGS | METH_KEYWORDS,
 "ws_connect($self, /, url, handler=None, *, compress=False, extra_headers=None, "
 "max_message_size=None)\n--\n\nConnects and performs the WebSocket "
 "handshake; WS_OPEN then WS_MSG follow."},
{"mqtt_connect", (PyCFunction)(void (*)(void))cm_py_mgr_mqtt_connect,
 METH_VARARGS | METH_KEYWORDS,
 "mqtt_connect($self, /, url, handler=None, client_id='', username='', password='', "
 "clean_session=True, keepalive=60, *, version=4, will_topic=None, will_message=None, "
 "will_qos=0, will_retain=False, will_properties=None, properties=None, tls=None, "
 "max_packet_size=0, max_inflight=0, max_queued=0, connect_timeout_ms=0, session=None, "
 "auth_method=None, auth_data=None)\n--\n\n"
 "MQTT client over mqtt://, mqtts://, ws:// or wss:// (subprotocol mqtt).  MQTT_OPEN follows "
 "the CONNACK (data: its code); a refusal is an ERROR.  version 5 takes properties and "
 "will_properties (dicts), and auth_method/auth_data for enhanced authentication (the "
 "server's challenges arrive as MQTT_CMD with cmd 15; answer with mqtt_auth()).  keepalive: PINGREQ when idle, ERROR without PINGRESP.  "
 "close() without mqtt_disconnect() makes the broker publish the will."},
{"mqtt_listen", (PyCFunction)(void (*)(void))cm_py_mgr_mqtt_listen, METH_VARARGS | METH_KEYWORDS,
 "mqtt_listen($self, /, url, handler=None, *, max_packet_size=0, connect_timeout_ms=0)\n--\n\n"
 "Low-level MQTT server: every packet of an accepted connection reaches the handler as "
 "MQTT_CMD (PUBLISH also as MQTT_MSG, with the QoS acks sent for you); the application "
 "answers the rest (CONNACK, SUBACK, PINGRESP...)."},
{"mqtt_broker", (PyCFunction)(void (*)(void))cm_py_mgr_mqtt_broker,
 METH_FASTCALL | METH_KEYWORDS,
 "mqtt_broker($self, /, url=None, *, config=None, tls=None, allow_anonymous=None, "
 "password_file=None, acl_file=None, persistence=None, fsync=None, fsync_interval_ms=None, "
 "compact_interval_s=None, max_connections=None, max_packet_size=None, max_queued=None, "
 "max_inflight=None, max_retained=None, max_retained_bytes=None, max_subs_per_client=None, "
 "max_session_expiry_s=None, topic_alias_max=None, topic_alias_out_max=None, "
 "server_keepalive=None, keepalive_factor=None, connect_timeout_ms=None, send_hwm=None, "
 "slow_policy=None, "
 "assign_client_ids=None, sys_interval_ms=None, on_client=None, on_message=None, "
 "authenticate=None)\n--\n\n"
 "Starts an MQTT broker (3.1, 3.1.1, 5.0) on this manager, listening on url when given\n"
 "(mqtt://, mqtts://, ws://.../path, wss://...; more with MqttBroker.listen()).  config:\n"
 "a cymongoose-broker configuration file (listeners, files, limits, bridges); keywords\n"
 "override it.  None keeps the default (docs/mqtt-broker-python.md).  Anonymous\n"
 "clients are refused unless allow_anonymous=True."},
{"sntp_connect", (PyCFunction)(void (*)(void))cm_py_mgr_sntp_connect,
 METH_VARARGS | METH_KEYWORDS,
 "sntp_connect($self, /, url, handler=None)\n--\n\nSNTP client; SNTP_TIME delivers epoch ms."},
#endif
