/*
 * Manager methods implemented outside manager.c (protocol bindings).
 * manager.c includes this file twice: once for the declarations, once
 * inside its PyMethodDef table (with CM_PY_MGR_METHODS_TABLE defined).
 *
 * manager.c defines each function below as a weak stub raising
 * NotImplementedError; a protocol file implements one simply by defining the
 * same function (a strong symbol wins at link time), with no edit here or in
 * manager.c.  Open the connection with cm_py_conn_prepare() and
 * cm_py_conn_finish() from core.h.
 */
#ifndef CM_PY_MGR_METHODS_DECLS
#define CM_PY_MGR_METHODS_DECLS
#include <Python.h>
/* All take (Manager self, args tuple, kwargs dict or NULL). */
PyObject *cm_py_mgr_ws_connect(PyObject *self, PyObject *args, PyObject *kwds);   /* conn_ws.c */
PyObject *cm_py_mgr_mqtt_connect(PyObject *self, PyObject *args, PyObject *kwds); /* mqtt */
PyObject *cm_py_mgr_mqtt_listen(PyObject *self, PyObject *args, PyObject *kwds);  /* mqtt */
PyObject *cm_py_mgr_sntp_connect(PyObject *self, PyObject *args, PyObject *kwds); /* sntp */
#endif

#ifdef CM_PY_MGR_METHODS_TABLE
{"ws_connect", (PyCFunction)(void (*)(void))cm_py_mgr_ws_connect, METH_VARARGS | METH_KEYWORDS,
 "ws_connect($self, /, url, handler=None, *, compress=False, extra_headers=None, "
 "max_message_size=None)\n--\n\nConnects and performs the WebSocket "
 "handshake; WS_OPEN then WS_MSG follow."},
{"mqtt_connect", (PyCFunction)(void (*)(void))cm_py_mgr_mqtt_connect,
 METH_VARARGS | METH_KEYWORDS,
 "mqtt_connect($self, /, url, handler=None, client_id='', username='', password='', "
 "clean_session=True, keepalive=60)\n--\n\nMQTT client; MQTT_OPEN follows on CONNACK."},
{"mqtt_listen", (PyCFunction)(void (*)(void))cm_py_mgr_mqtt_listen, METH_VARARGS | METH_KEYWORDS,
 "mqtt_listen($self, /, url, handler=None)\n--\n\nMQTT server side: each packet arrives as MQTT_CMD."},
{"sntp_connect", (PyCFunction)(void (*)(void))cm_py_mgr_sntp_connect,
 METH_VARARGS | METH_KEYWORDS,
 "sntp_connect($self, /, url, handler=None)\n--\n\nSNTP client; SNTP_TIME delivers epoch ms."},
#endif
