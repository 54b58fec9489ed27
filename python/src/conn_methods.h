/*
 * Connection methods implemented outside connection.c, one block per
 * protocol file.  connection.c includes this file inside its PyMethodDef
 * table, so each entry is a PyMethodDef initialiser followed by a comma.
 * Declare the functions in the matching section of CM_PY_CONN_DECLS.
 */
#ifndef CM_PY_CONN_METHODS_DECLS
#define CM_PY_CONN_METHODS_DECLS
/* conn_http.c */
PyObject *cm_py_conn_reply(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames);
PyObject *cm_py_conn_reply_json(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                                PyObject *kwnames);
PyObject *cm_py_conn_http_chunk(PyObject *self, PyObject *data);
PyObject *cm_py_conn_http_sse(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                              PyObject *kwnames);
PyObject *cm_py_conn_http_basic_auth(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                                     PyObject *kwnames);
/* conn_body.c */
PyObject *cm_py_conn_http_body_stream(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                                      PyObject *kwnames);
/* http_body_stream()'s work, for C callers (the ASGI core): takes over the
 * body of msg (an HTTP_HDRS message of self's request); max_body replaces
 * the server's limit when has_max_body.  Returns the body length, -1 for a
 * chunked body, None when the request has no body to stream, or NULL with
 * an exception. */
PyObject *cm_py_http_body_take(PyObject *self, PyObject *msg, bool has_max_body,
                               unsigned long long max_body);
PyObject *cm_py_conn_http_body_read(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                                    PyObject *kwnames);
PyObject *cm_py_conn_http_body_left(PyObject *self, PyObject *unused);
PyObject *cm_py_conn_http_body_end(PyObject *self, PyObject *unused);
/* Notes that the application started a response on c while its request
 * body is streamed (a refused chunked body then gets no 4xx of ours). */
void cm_py_body_answered(struct cm_conn *c);
/* conn_ws.c */
PyObject *cm_py_conn_ws_upgrade(PyObject *self, PyObject *args, PyObject *kwds);
PyObject *cm_py_conn_ws_send(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                             PyObject *kwnames);
PyObject *cm_py_conn_ws_close(PyObject *self, PyObject *args, PyObject *kwds);
/* conn_dns.c */
PyObject *cm_py_conn_resolve(PyObject *self, PyObject *url);
PyObject *cm_py_conn_resolve_cancel(PyObject *self, PyObject *unused);
PyObject *cm_py_conn_sntp_request(PyObject *self, PyObject *unused);
/* tls.c */
PyObject *cm_py_conn_tls_init(PyObject *self, PyObject *opts);
PyObject *cm_py_conn_tls_free(PyObject *self, PyObject *unused);
/* conn_static.c */
PyObject *cm_py_conn_serve_dir(PyObject *self, PyObject *args, PyObject *kwds);
PyObject *cm_py_conn_serve_file(PyObject *self, PyObject *args, PyObject *kwds);
PyObject *cm_py_conn_reply_file(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                                PyObject *kwnames);
/* conn_mqtt.c */
PyObject *cm_py_conn_mqtt_pub(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                              PyObject *kwnames);
PyObject *cm_py_conn_mqtt_sub(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                              PyObject *kwnames);
PyObject *cm_py_conn_mqtt_unsub(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                                PyObject *kwnames);
PyObject *cm_py_conn_mqtt_ping(PyObject *self, PyObject *unused);
PyObject *cm_py_conn_mqtt_pong(PyObject *self, PyObject *unused);
PyObject *cm_py_conn_mqtt_auth(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                               PyObject *kwnames);
PyObject *cm_py_conn_mqtt_disconnect(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                                     PyObject *kwnames);
#endif

#ifdef CM_PY_CONN_METHODS_TABLE
/* conn_http.c */
{"reply", (PyCFunction)(void (*)(void))cm_py_conn_reply, METH_FASTCALL | METH_KEYWORDS,
 "reply($self, /, status_code, body=b'', headers=None)\n--\n\nQueues a full HTTP response with "
 "Content-Length (Content-Type: text/plain unless given).  With Transfer-Encoding: chunked in "
 "headers it starts a chunked response instead.  ValueError for CR/LF/NUL in headers."},
{"reply_json", (PyCFunction)(void (*)(void))cm_py_conn_reply_json, METH_FASTCALL | METH_KEYWORDS,
 "reply_json($self, /, data, status_code=200, headers=None)\n--\n\nreply() with json.dumps(data) "
 "and Content-Type: application/json."},
{"http_chunk", CM_PY_FASTCALL_KW(cm_py_conn_http_chunk_kw),
 "http_chunk($self, /, data)\n--\n\nSends one chunk of a chunked response; empty data ends it."},
{"http_sse", CM_PY_FASTCALL_KW(cm_py_conn_http_sse),
 "http_sse($self, /, event_type, data)\n--\n\nSends a Server-Sent Events record as one chunk."},
{"http_basic_auth", CM_PY_FASTCALL_KW(cm_py_conn_http_basic_auth),
 "http_basic_auth($self, /, username, password)\n--\n\nWrites an 'Authorization: Basic' header line."},
/* conn_body.c */
{"http_body_stream", CM_PY_FASTCALL_KW(cm_py_conn_http_body_stream),
 "http_body_stream($self, /, message, max_body=None)\n--\n\nFrom an HTTP_HDRS handler: takes the "
 "request's body over instead of having it buffered for HTTP_MSG (which then does not come).  The "
 "body stays in the receive buffer until http_body_read() takes it (reading from the socket pauses "
 "while recv_limit bytes wait); READ events tell when more arrived.  Returns the body length, or "
 "-1 for a chunked body (decoded as it is read; max_body, default the server's http_max_body, "
 "bounds it; a malformed or oversized one is answered 400/413/431 unless a response was started, "
 "and the connection closes).  Once the response is complete, call http_body_end()."},
{"http_body_read", CM_PY_FASTCALL_KW(cm_py_conn_http_body_read),
 "http_body_read($self, /, size=65536)\n--\n\nUp to size bytes of the streamed body that have "
 "arrived (b'' when none yet, or when it is all read: see http_body_left()).  Sends the "
 "100 Continue a client asked for on the first call."},
{"http_body_left", (PyCFunction)cm_py_conn_http_body_left, METH_NOARGS,
 "http_body_left($self, /)\n--\n\nBytes of the streamed body not read yet (-1 for a chunked "
 "body until its end has been read, then 0); None when no body is being streamed."},
{"http_body_end", (PyCFunction)cm_py_conn_http_body_end, METH_NOARGS,
 "http_body_end($self, /)\n--\n\nAfter the response to a streamed request is complete: serves "
 "the next request on the connection (True), or, when the body was not read to its end or the "
 "request was the last one, closes the connection once the response is sent (False)."},
/* conn_ws.c */
{"ws_upgrade", (PyCFunction)(void (*)(void))cm_py_conn_ws_upgrade, METH_VARARGS | METH_KEYWORDS,
 "ws_upgrade($self, /, message, extra_headers=None, *, compress=False, max_message_size=None)\n--\n\n"
 "From an HTTP_MSG handler: completes the WebSocket handshake (101), WS_OPEN follows at once.  "
 "extra_headers: dict, (name, value) pairs or header lines, e.g. Sec-WebSocket-Protocol.  "
 "A bad handshake is answered 400 (426 for another version) and False is returned."},
{"ws_send", (PyCFunction)(void (*)(void))cm_py_conn_ws_send, METH_FASTCALL | METH_KEYWORDS,
 "ws_send($self, /, data, op=1)\n--\n\nSends one message (str is UTF-8); op defaults to WEBSOCKET_OP_TEXT.  "
 "op WEBSOCKET_OP_CLOSE takes a close payload and starts the close handshake.  Returns the "
 "bytes queued, 0 when nothing was (not open, closing, send buffer full)."},
{"ws_close", (PyCFunction)(void (*)(void))cm_py_conn_ws_close, METH_VARARGS | METH_KEYWORDS,
 "ws_close($self, /, code=1000, reason='')\n--\n\nStarts the close handshake with code and "
 "reason; the connection closes once the peer answers (or after a timeout)."},
/* conn_dns.c */
{"resolve", CM_PY_FASTCALL_KW(cm_py_conn_resolve_kw),
 "resolve($self, /, url)\n--\n\nLooks up the host of url without blocking; RESOLVE follows (remote_addr "
 "then holds the address and the url's port), or ERROR naming the reason.  Uses the "
 "manager's DNS servers (Manager(dns=...)).  ValueError when url has no host."},
{"resolve_cancel", (PyCFunction)cm_py_conn_resolve_cancel, METH_NOARGS,
 "resolve_cancel($self)\n--\n\nForgets the lookup in progress: no RESOLVE or ERROR comes from it."},
{"sntp_request", (PyCFunction)cm_py_conn_sntp_request, METH_NOARGS,
 "sntp_request($self)\n--\n\nSends another SNTP request on a connection made by "
 "Manager.sntp_connect(); SNTP_TIME follows.  False on other connections."},
/* tls.c */
{"tls_init", CM_PY_FASTCALL_KW(cm_py_conn_tls_init_kw),
 "tls_init($self, /, opts)\n--\n\nStarts TLS with opts (on ACCEPT for servers; on OPEN or\n"
 "CONNECT for clients; on a listener: for every connection it accepts).  Bad\n"
 "options (unreadable or mismatched certificate or key, bad CA) never raise: a\n"
 "RuntimeWarning names the reason, and each connection they fail gets an ERROR\n"
 "event with it from the next poll; a listener stays open.  RuntimeError once the\n"
 "handshake has begun."},
{"tls_free", (PyCFunction)cm_py_conn_tls_free, METH_NOARGS,
 "tls_free($self)\n--\n\nDrops the TLS state (e.g. the automatic TLS of an https:// client)."},
/* conn_static.c */
{"serve_dir", (PyCFunction)(void (*)(void))cm_py_conn_serve_dir, METH_VARARGS | METH_KEYWORDS,
 "serve_dir($self, /, message, root_dir, extra_headers='', mime_types='', page404='', *, allow_hidden=False,\n"
 "          precompressed=True)\n--\n\n"
 "Answers the request with a file under root_dir (index.html for directories): MIME type\n"
 "(mime_types like 'ext=type,ext2=type2' first), ETag/Last-Modified with 304s, Range\n"
 "(206/416), HEAD, and a precompressed '.gz' sibling for clients that accept gzip (unless\n"
 "precompressed is False).  Nothing outside root_dir is served (403; symlinks only while\n"
 "relative and inside); missing files get 404 (the page404 file when given), and so do\n"
 "hidden files ('.env', '.git/') unless allow_hidden.  Files are streamed.\n"
 "ValueError when message has expired or extra_headers is not CRLF-separated lines."},
{"serve_file", (PyCFunction)(void (*)(void))cm_py_conn_serve_file, METH_VARARGS | METH_KEYWORDS,
 "serve_file($self, /, message, path, extra_headers='', mime_types='')\n--\n\n"
 "Answers the request with the file at path, as serve_dir() does for one file; 404 when\n"
 "missing.  ValueError when message has expired."},
{"_reply_file", CM_PY_FASTCALL_KW(cm_py_conn_reply_file),
 "_reply_file($self, /, status_code, headers, fd, offset, length)\n--\n\n"
 "Private (cymongoose.wsgi's file_wrapper): a response whose body is bytes [offset,\n"
 "offset + length) of the open file fd, sent with sendfile.  headers: 'Name: value\\r\\n'\n"
 "lines without Content-Length.  False when nothing could be queued."},
/* conn_mqtt.c */
{"mqtt_pub", (PyCFunction)(void (*)(void))cm_py_conn_mqtt_pub, METH_FASTCALL | METH_KEYWORDS,
 "mqtt_pub($self, /, topic, message, qos=0, retain=False, *, properties=None, topic_alias=False)\n--\n\n"
 "Publishes message (str is UTF-8) on topic; returns the packet id (0 for QoS 0).  QoS 1/2 are\n"
 "held until acknowledged and resent as the protocol requires.  v5: properties (dict, see\n"
 "docs/mqtt.md), topic_alias=True to send the topic name only once.  ValueError for a bad\n"
 "topic or QoS; 0 on connections that do not speak MQTT."},
{"mqtt_sub", (PyCFunction)(void (*)(void))cm_py_conn_mqtt_sub, METH_FASTCALL | METH_KEYWORDS,
 "mqtt_sub($self, /, topic, qos=0, *, no_local=False, retain_as_published=False, retain_handling=0, "
 "subscription_id=0, properties=None)\n--\n\n"
 "Subscribes to a topic filter; the SUBACK arrives as MG_EV_MQTT_CMD (codes()).  Returns the\n"
 "packet id (0 on connections that do not speak MQTT)."},
{"mqtt_unsub", (PyCFunction)(void (*)(void))cm_py_conn_mqtt_unsub, METH_FASTCALL | METH_KEYWORDS,
 "mqtt_unsub($self, /, topic, *, properties=None)\n--\n\nUnsubscribes; returns the packet id."},
{"mqtt_ping", (PyCFunction)cm_py_conn_mqtt_ping, METH_NOARGS,
 "mqtt_ping($self, /)\n--\n\nSends PINGREQ (the client also does on its own when idle)."},
{"mqtt_pong", (PyCFunction)cm_py_conn_mqtt_pong, METH_NOARGS,
 "mqtt_pong($self, /)\n--\n\nSends PINGRESP (server side answer to a PINGREQ)."},
{"mqtt_auth", (PyCFunction)(void (*)(void))cm_py_conn_mqtt_auth, METH_FASTCALL | METH_KEYWORDS,
 "mqtt_auth($self, /, reason_code=0x18, data=None, *, method=None, properties=None)\n--\n\n"
 "MQTT 5 enhanced authentication: sends AUTH.  A client answers a challenge (an MQTT_CMD with\n"
 "cmd 15 and ack 0x18) with reason_code 0x18 and its data, or starts a re-authentication with\n"
 "0x19; a low-level server sends 0x18 or 0 (success).  method: the CONNECT's when None.\n"
 "ValueError when the AUTH is not allowed here (not v5, no method, wrong reason)."},
{"mqtt_disconnect", (PyCFunction)(void (*)(void))cm_py_conn_mqtt_disconnect,
 METH_FASTCALL | METH_KEYWORDS,
 "mqtt_disconnect($self, /, reason_code=0, *, properties=None)\n--\n\nSends DISCONNECT and closes once it is "
 "written; the broker then drops the will.  (close() alone drops the connection without it, "
 "so the will is published.)"},
#endif
