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
PyObject *cm_py_conn_ws_upgrade(PyObject *self, PyObject *args, PyObject *kwds);
PyObject *cm_py_conn_ws_send(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                             PyObject *kwnames);
PyObject *cm_py_conn_ws_close(PyObject *self, PyObject *args, PyObject *kwds);
#endif

#ifdef CM_PY_CONN_METHODS_TABLE
/* conn_http.c */
/* conn_ws.c */
{"ws_upgrade", (PyCFunction)(void (*)(void))cm_py_conn_ws_upgrade, METH_VARARGS | METH_KEYWORDS,
 "ws_upgrade(message, extra_headers=None, *, compress=False, max_message_size=None) -> bool\n--\n\n"
 "From an HTTP_MSG handler: completes the WebSocket handshake (101), WS_OPEN follows at once.  "
 "extra_headers: dict, (name, value) pairs or header lines, e.g. Sec-WebSocket-Protocol.  "
 "A bad handshake is answered 400 (426 for another version) and False is returned."},
{"ws_send", (PyCFunction)(void (*)(void))cm_py_conn_ws_send, METH_FASTCALL | METH_KEYWORDS,
 "ws_send(data, op=WEBSOCKET_OP_TEXT) -> int\n--\n\nSends one message (str is UTF-8).  "
 "op WEBSOCKET_OP_CLOSE takes a close payload and starts the close handshake.  Returns the "
 "bytes queued, 0 when nothing was (not open, closing, send buffer full)."},
{"ws_close", (PyCFunction)(void (*)(void))cm_py_conn_ws_close, METH_VARARGS | METH_KEYWORDS,
 "ws_close(code=1000, reason='') -> bool\n--\n\nStarts the close handshake with code and "
 "reason; the connection closes once the peer answers (or after a timeout)."},
#endif
