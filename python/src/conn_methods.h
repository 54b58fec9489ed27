/*
 * Connection methods implemented outside connection.c, one block per
 * protocol file.  connection.c includes this file inside its PyMethodDef
 * table, so each entry is a PyMethodDef initialiser followed by a comma.
 * Declare the functions in the matching section of CM_PY_CONN_DECLS.
 */
#ifndef CM_PY_CONN_METHODS_DECLS
#define CM_PY_CONN_METHODS_DECLS
/* conn_http.c */
/* conn_ws.c */
/* tls.c */
PyObject *cm_py_conn_tls_init(PyObject *self, PyObject *opts);
PyObject *cm_py_conn_tls_free(PyObject *self, PyObject *unused);
#endif

#ifdef CM_PY_CONN_METHODS_TABLE
/* conn_http.c */
/* conn_ws.c */
/* tls.c */
{"tls_init", (PyCFunction)cm_py_conn_tls_init, METH_O,
 "tls_init(opts: TlsOpts): start TLS with opts (on ACCEPT for servers; on OPEN or\n"
 "CONNECT for clients; on a listener: for every connection it accepts).  Bad\n"
 "options arrive as an ERROR event.  RuntimeError once the handshake has begun."},
{"tls_free", (PyCFunction)cm_py_conn_tls_free, METH_NOARGS,
 "tls_free(): drop the TLS state (e.g. the automatic TLS of an https:// client)."},
#endif
