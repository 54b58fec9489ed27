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
  PyTypeObject *tls_opts_type;     /* tls.c */
  PyTypeObject *rpc_type;          /* rpc.c */
  PyTypeObject *rpc_req_type;      /* rpc.c */
  PyObject *json_dumps;            /* json.dumps, imported lazily */
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

#endif
