/*
 * cymongoose._mongoose: shared declarations of the CPython bindings.
 *
 * Multi-phase init: every type is a heap type created in an exec function
 * and stored in the module state; nothing lives in C globals.  Each source
 * file contributes one exec function, called in order by module.c.
 */
#ifndef CM_PY_MODULE_H
#define CM_PY_MODULE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "cymongoose.h"

typedef struct {
  PyTypeObject *manager_type;      /* manager.c */
  PyTypeObject *connection_type;   /* connection.c */
  PyTypeObject *timer_type;        /* timer.c */
  PyTypeObject *http_message_type; /* messages.c */
  PyTypeObject *ws_message_type;   /* messages.c */
  PyTypeObject *mqtt_message_type; /* messages.c */
  PyTypeObject *mqtt_session_type; /* mqtt_session.c */
  PyObject *mqtt_sessions;         /* mqtt_session.c: MqttSessions in use */
  PyTypeObject *mqtt_broker_type;  /* mqtt_broker.c */
  PyTypeObject *tls_opts_type;     /* tls.c */
  PyTypeObject *rpc_type;          /* rpc.c */
  PyTypeObject *rpc_req_type;      /* rpc.c */
  PyObject *json_dumps;            /* json.dumps, imported lazily */
  PyObject *spare_http_message;    /* messages.c: an expired HttpMessage nobody
                                      kept, reused for the next HTTP event */
} cm_py_state;

extern PyModuleDef cm_py_module_def;

/* The state of the module that defined type tp (tp must be one of ours). */
static inline cm_py_state *cm_py_state_of_type(PyTypeObject *tp) {
  PyObject *m = PyType_GetModuleByDef(tp, &cm_py_module_def);
  return m == NULL ? NULL : (cm_py_state *)PyModule_GetState(m);
}

/* Exec functions: each adds its names to module m; 0 on success, -1 with an
 * exception set.  Called in this order from module.c. */
int cm_py_core_exec(PyObject *m);     /* manager.c, connection.c, timer.c */
int cm_py_messages_exec(PyObject *m); /* messages.c: HttpMessage, WsMessage, MqttMessage */
int cm_py_tls_exec(PyObject *m);      /* tls.c: TlsOpts */
int cm_py_funcs_exec(PyObject *m);    /* funcs.c: json_*, url_*, match, hashes, ... */
int cm_py_rpc_exec(PyObject *m);      /* rpc.c: Rpc, RpcReq */
int cm_py_asgi_exec(PyObject *m);     /* asgi_scope.c: _AsgiScopeBuilder */
int cm_py_wsgi_exec(PyObject *m);     /* wsgi_bridge.c: _WsgiEnvironBuilder, _WsgiStart */
int cm_py_mqtt_broker_exec(PyObject *m, cm_py_state *st); /* mqtt_broker.c: MqttBroker */

/*
 * Event data as Python objects (messages.c).  For events whose ev_data is a
 * message (HTTP_HDRS, HTTP_MSG, WS_OPEN, WS_MSG, WS_CTL, MQTT_CMD, MQTT_MSG)
 * cm_py_message_new returns a new view object over ev_data, or NULL with an
 * exception set; it returns Py_None (new reference) for events it does not
 * handle.  The view must be passed to cm_py_message_invalidate once the
 * handler returns: afterwards it reads as empty and never touches ev_data.
 */
PyObject *cm_py_message_new(cm_py_state *st, int ev, void *ev_data);
void cm_py_message_invalidate(PyObject *view);
/* Invalidates view and drops the caller's reference to it.  A view that
 * nobody else holds is kept for the next cm_py_message_new instead of being
 * freed (two HTTP events per request made one allocation each). */
void cm_py_message_release(cm_py_state *st, PyObject *view);
/* The live struct cm_http_msg behind an HttpMessage view, or NULL when o is
 * not one or has expired (no exception set). */
struct cm_http_msg *cm_py_http_message_get(PyObject *o);
/* The same for a WsMessage view. */
struct cm_ws_msg *cm_py_ws_message_get(PyObject *o);

/* mqtt_message.c: the MqttMessage type (created by cm_py_messages_exec),
 * a new view over mm, and cutting a view loose from its message. */
int cm_py_mqtt_message_exec(PyObject *m, cm_py_state *st);
PyObject *cm_py_mqtt_message_new(cm_py_state *st, const struct cm_mqtt_msg *mm);
void cm_py_mqtt_message_invalidate(PyObject *view);

/* mqtt_session.c: the MqttSession type.  claim: the C session of obj (NULL
 * with TypeError, or RuntimeError when a live connection uses it); bind:
 * c uses it now (obj kept alive until c's CLOSE); closed: c's CLOSE was
 * delivered, its session (if any) is free again. */
int cm_py_mqtt_session_exec(PyObject *m, cm_py_state *st);
struct cm_mqtt_session *cm_py_mqtt_session_claim(cm_py_state *st, PyObject *obj);
int cm_py_mqtt_session_bind(cm_py_state *st, PyObject *obj, struct cm_conn *c);
void cm_py_mqtt_session_closed(cm_py_state *st, struct cm_conn *c);

/*
 * Connection methods contributed by protocol files (conn_http.c, conn_ws.c,
 * ...) are listed in conn_methods.h and spliced into the Connection type's
 * method table by connection.c.  Such a method gets the Connection object and
 * calls cm_py_conn_get(self) for the live struct cm_conn (NULL with
 * RuntimeError("Connection has been closed") set after CLOSE).
 */
struct cm_conn *cm_py_conn_get(PyObject *conn);

#endif
