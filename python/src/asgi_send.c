/*
 * What an ASGI application's send() does (asgi_channel.c runs it when the
 * awaitable is first stepped): http.response.start/body on an HTTP
 * channel, websocket.accept/send/close on a WebSocket, each checked against
 * the channel's state; and what the end of the application leaves on the
 * connection (a 500, a drain, a close frame).
 */
#include "asgi.h"

#include <string.h>
#include <strings.h>

#include "args.h"
#include "conn_methods.h"

/* ------------------------------------------------------------- messages */

/* msg[key] as a new reference; NULL when absent (no exception) or with an
 * exception set (msg not a mapping...). */
static PyObject *msg_get(PyObject *msg, PyObject *key) {
  if (PyDict_CheckExact(msg)) return Py_XNewRef(PyDict_GetItemWithError(msg, key));
  PyObject *v = PyObject_GetItem(msg, key);
  if (v == NULL && PyErr_ExceptionMatches(PyExc_KeyError)) PyErr_Clear();
  return v;
}

/* v equals the interned string: message types like "http.response.start"
 * are not interned by the compiler (not identifiers), so usually this
 * compares the characters. */
static bool str_is(PyObject *v, PyObject *interned) {
  if (v == interned) return true;
  if (v == NULL || !PyUnicode_Check(v)) return false;
  if (!PyUnicode_CheckExact(v) || PyUnicode_READY(v) < 0) {
    PyErr_Clear();
    return PyUnicode_Compare(v, interned) == 0;
  }
  Py_ssize_t n = PyUnicode_GET_LENGTH(v);
  return n == PyUnicode_GET_LENGTH(interned) && PyUnicode_KIND(v) == PyUnicode_KIND(interned) &&
         memcmp(PyUnicode_DATA(v), PyUnicode_DATA(interned), (size_t)n * PyUnicode_KIND(v)) == 0;
}

static int inbox_put(asgi_ch *ch, PyObject *msg) {
  if (msg == NULL) return -1;
  int rc = cm_py_asgi_inbox_put(ch, msg);
  Py_DECREF(msg);
  return rc;
}

/* ---------------------------------------------------------------- helpers */

/* send() must wait: more than stream_window bytes queued for the client. */
bool cm_py_asgi_send_full(asgi_ch *ch) {
  struct cm_conn *c = live_conn(ch);
  return c != NULL && !ch->disconnected && c->send.len > ch->core->stream_window;
}

/* A response through cm_http_reply (bracketed: the output hook may run). */
static int reply(asgi_ch *ch, int status, const char *hdrs, const void *body, size_t len) {
  struct cm_conn *c = live_conn(ch);
  if (c == NULL) return 0;
  cm_py_manager *mo = cm_py_conn_enter(c);
  /* A head the C layer refuses (CM_EINVAL) is not sent: say why.  Other
   * failures close the connection, which the application hears of. */
  int rc = cm_http_reply(c, status, hdrs, body, len);
  if (cm_py_conn_leave(mo) < 0) return -1;
  if (rc == CM_EINVAL) {
    const char *why = cm_http_reply_check(status, hdrs, len);
    PyErr_Format(PyExc_ValueError, "reply refused: %s", why != NULL ? why : "invalid response");
    return -1;
  }
  return 0;
}

static int chunk(asgi_ch *ch, const void *data, size_t len) {
  struct cm_conn *c = live_conn(ch);
  if (c == NULL) return 0;
  cm_py_manager *mo = cm_py_conn_enter(c);
  (void)cm_http_chunk(c, data, len);
  return cm_py_conn_leave(mo);
}

/* ------------------------------------------------------------------ HTTP */

/* The whole response is written: a streamed request hands its connection
 * back to the HTTP server (or closes it if the body was not all read). */
static int http_done(asgi_ch *ch) {
  ch->complete = 1;
  if (ch->body_stream || ch->streamed) {
    ch->body_stream = ch->streamed = 0;
    if (!ch->disconnected && live_conn(ch) != NULL) {
      PyObject *r = cm_py_conn_http_body_end(ch->conn, NULL);
      if (r == NULL) return -1;
      Py_DECREF(r);
    }
  }
  return 0;
}

/* Hop-by-hop fields are the server's business; Content-Length is written by
 * the C server for whole responses and must be absent from chunked ones. */
static bool server_field(const char *n, size_t len) {
  static const char *const fields[] = {"connection", "keep-alive", "transfer-encoding", "te",
                                       "trailer", "upgrade", "content-length"};
  for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
    if (strlen(fields[i]) == len && strncasecmp(fields[i], n, len) == 0) return true;
  return false;
}

/* The header list of the last block built (names and values, flattened),
 * when all were bytes: a response with equal headers (the same constants,
 * or what a framework builds anew every time) reuses that block, without
 * the checks and the copy. */
static bool same_as_last(asgi_core *k, PyObject *headers) {
  PyObject *last = k->last_headers;
  if (last == NULL || !PyList_CheckExact(headers) ||
      PyList_GET_SIZE(headers) * 2 != PyTuple_GET_SIZE(last))
    return false;
  for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(last); i++) {
    PyObject *pair = PyList_GET_ITEM(headers, i / 2);
    PyObject *v;
    if (PyTuple_CheckExact(pair) && PyTuple_GET_SIZE(pair) == 2) {
      v = PyTuple_GET_ITEM(pair, i % 2);
    } else if (PyList_CheckExact(pair) && PyList_GET_SIZE(pair) == 2) {
      v = PyList_GET_ITEM(pair, i % 2);
    } else {
      return false;
    }
    PyObject *w = PyTuple_GET_ITEM(last, i);
    if (v != w && (!PyBytes_CheckExact(v) || PyBytes_GET_SIZE(v) != PyBytes_GET_SIZE(w) ||
                   memcmp(PyBytes_AS_STRING(v), PyBytes_AS_STRING(w),
                          (size_t)PyBytes_GET_SIZE(v)) != 0))
      return false;
  }
  return true;
}

/* Remembers headers (a list of pairs of bytes, else nothing) and its block. */
static void remember(asgi_core *k, PyObject *headers, PyObject *block) {
  Py_CLEAR(k->last_headers);
  Py_CLEAR(k->last_block);
  if (!PyList_CheckExact(headers)) return;
  Py_ssize_t n = PyList_GET_SIZE(headers);
  PyObject *flat = PyTuple_New(n * 2);
  if (flat == NULL) {
    PyErr_Clear();
    return;
  }
  for (Py_ssize_t i = 0; i < n * 2; i++) {
    PyObject *pair = PyList_GET_ITEM(headers, i / 2), *v = NULL;
    if (PyTuple_CheckExact(pair) && PyTuple_GET_SIZE(pair) == 2) v = PyTuple_GET_ITEM(pair, i % 2);
    if (PyList_CheckExact(pair) && PyList_GET_SIZE(pair) == 2) v = PyList_GET_ITEM(pair, i % 2);
    if (v == NULL || !PyBytes_CheckExact(v)) {
      Py_DECREF(flat);
      return;
    }
    PyTuple_SET_ITEM(flat, i, Py_NewRef(v));
  }
  k->last_headers = flat;
  k->last_block = Py_NewRef(block);
}

/* The "Name: value\r\n" block of an ASGI header list (bytes pairs). */
static PyObject *header_block(PyObject *headers) {
  struct cm_buf b = {0};
  PyObject *it = headers == NULL || headers == Py_None ? NULL : PyObject_GetIter(headers);
  if (it == NULL && headers != NULL && headers != Py_None) return NULL;
  PyObject *item;
  while (it != NULL && (item = PyIter_Next(it)) != NULL) {
    PyObject *pair = PySequence_Fast(item, "ASGI headers must be [name, value] pairs");
    Py_DECREF(item);
    if (pair == NULL) goto fail;
    if (PySequence_Fast_GET_SIZE(pair) != 2) {
      Py_DECREF(pair);
      PyErr_SetString(PyExc_ValueError, "ASGI headers must be [name, value] pairs");
      goto fail;
    }
    Py_buffer n, v;
    if (cm_py_buffer_get(PySequence_Fast_GET_ITEM(pair, 0), &n, "header name") < 0) {
      Py_DECREF(pair);
      goto fail;
    }
    if (cm_py_buffer_get(PySequence_Fast_GET_ITEM(pair, 1), &v, "header value") < 0) {
      PyBuffer_Release(&n);
      Py_DECREF(pair);
      goto fail;
    }
    int bad = 0;
    if (!server_field(n.buf, (size_t)n.len)) {
      if (!cm_http_header_ok(cm_str_n(n.buf, (size_t)n.len), cm_str_n(v.buf, (size_t)v.len))) {
        PyErr_Format(PyExc_ValueError,
                     "header %R: %R: name or value contain an illegal character (CR, LF, NUL, "
                     "other control characters, or a name that is not a token)",
                     PySequence_Fast_GET_ITEM(pair, 0), PySequence_Fast_GET_ITEM(pair, 1));
        bad = 1;
      } else if (cm_buf_append(&b, n.buf, (size_t)n.len) != 0 || cm_buf_append(&b, ": ", 2) != 0 ||
                 cm_buf_append(&b, v.buf, (size_t)v.len) != 0 ||
                 cm_buf_append(&b, "\r\n", 2) != 0) {
        PyErr_NoMemory();
        bad = 1;
      }
    }
    PyBuffer_Release(&n);
    PyBuffer_Release(&v);
    Py_DECREF(pair);
    if (bad) goto fail;
  }
  if (PyErr_Occurred()) goto fail;
  Py_XDECREF(it);
  PyObject *block = PyBytes_FromStringAndSize(b.len ? (const char *)cm_buf_data(&b) : "",
                                              (Py_ssize_t)b.len);
  cm_buf_free(&b);
  return block;
fail:
  Py_XDECREF(it);
  cm_buf_free(&b);
  return NULL;
}

static int http_start(asgi_ch *ch, PyObject *msg) {
  asgi_core *k = ch->core;
  if (ch->has_start || ch->started) {
    PyErr_SetString(PyExc_RuntimeError, "http.response.start sent twice");
    return -1;
  }
  PyObject *status = msg_get(msg, k->str[S_STATUS]);
  if (status == NULL && PyErr_Occurred()) return -1;
  long code = status != NULL && PyLong_Check(status) ? PyLong_AsLong(status) : -1;
  if (code < 200 || code > 999) {
    PyErr_Clear();
    PyErr_Format(PyExc_ValueError, "invalid status %R", status != NULL ? status : Py_None);
    Py_XDECREF(status);
    return -1;
  }
  Py_DECREF(status);
  PyObject *headers = msg_get(msg, k->str[S_HEADERS]);
  if (headers == NULL && PyErr_Occurred()) return -1;
  PyObject *block;
  if (headers != NULL && same_as_last(k, headers)) {
    block = Py_NewRef(k->last_block);
  } else {
    block = header_block(headers);
    if (block != NULL && headers != NULL) remember(k, headers, block);
  }
  Py_XDECREF(headers);
  if (block == NULL) return -1;
  Py_XSETREF(ch->start_headers, block);
  ch->start_status = (int)code;
  ch->has_start = 1;
  return 0;
}

/* 0 done, 1 done but send() must wait for room, -1 error. */
static int http_body(asgi_ch *ch, PyObject *msg) {
  asgi_core *k = ch->core;
  if (!ch->has_start && !ch->started) {
    PyErr_SetString(PyExc_RuntimeError, "http.response.body before http.response.start");
    return -1;
  }
  PyObject *body = msg_get(msg, k->str[S_BODY]);
  if (body == NULL && PyErr_Occurred()) return -1;
  PyObject *more_o = msg_get(msg, k->str[S_MORE_BODY]);
  int more = more_o == NULL ? (PyErr_Occurred() ? -1 : 0) : PyObject_IsTrue(more_o);
  Py_XDECREF(more_o);
  Py_buffer view = {0};
  if (more < 0 || (body != NULL && cm_py_buffer_get(body, &view, "body") < 0)) {
    Py_XDECREF(body);
    return -1;
  }
  int rc = 0;
  if (ch->discarding) {
    ch->discarding = more != 0;
    goto out;
  }
  if (ch->complete) {
    PyErr_SetString(PyExc_RuntimeError, "http.response.body after the response was complete");
    rc = -1;
    goto out;
  }
  if (!ch->started) {
    /* A head the C layer refuses raises before anything is sent: the
     * application's error then still gets a 500. */
    int status = ch->start_status;
    const char *hdrs = PyBytes_AS_STRING(ch->start_headers);
    bool whole = status == 204 || status == 304 || !more;
    if (whole) {
      bool bodiless = status == 204 || status == 304; /* never a body, never chunked */
      if (reply(ch, status, hdrs, bodiless || view.buf == NULL ? "" : view.buf, bodiless ? 0 : (size_t)view.len) < 0) {
        rc = -1;
        goto out;
      }
      if (bodiless) ch->discarding = more != 0;
    } else {
      PyObject *chunked = PyBytes_FromFormat("%sTransfer-Encoding: chunked\r\n", hdrs);
      if (chunked == NULL) {
        rc = -1;
        goto out;
      }
      rc = reply(ch, status, PyBytes_AS_STRING(chunked), "", 0);
      Py_DECREF(chunked);
      if (rc < 0) goto out;
    }
    Py_CLEAR(ch->start_headers);
    ch->has_start = 0;
    ch->started = 1;
    if (whole) {
      rc = http_done(ch);
      goto out;
    }
  }
  if (view.len > 0 && chunk(ch, view.buf, (size_t)view.len) < 0) {
    rc = -1;
  } else if (!more) {
    rc = chunk(ch, "", 0) < 0 ? -1 : http_done(ch);
  } else {
    rc = cm_py_asgi_send_full(ch) ? 1 : 0;
  }
out:
  if (body != NULL) PyBuffer_Release(&view);
  Py_XDECREF(body);
  return rc;
}

static int http_send(asgi_ch *ch, PyObject *type, PyObject *msg) {
  asgi_core *k = ch->core;
  if (str_is(type, k->str[S_HTTP_RESPONSE_START])) return http_start(ch, msg);
  if (str_is(type, k->str[S_HTTP_RESPONSE_BODY])) return http_body(ch, msg);
  PyErr_Format(PyExc_ValueError, "unexpected ASGI message %R on an HTTP connection",
               type != NULL ? type : Py_None);
  return -1;
}

/* ------------------------------------------------------------- WebSocket */

static int ws_accept(asgi_ch *ch, PyObject *msg) {
  asgi_core *k = ch->core;
  if (ch->accepted) {
    PyErr_SetString(PyExc_RuntimeError, "websocket.accept sent twice");
    return -1;
  }
  PyObject *extra = PyList_New(0);
  PyObject *headers = extra == NULL ? NULL : msg_get(msg, k->str[S_HEADERS]);
  if (extra == NULL || (headers == NULL && PyErr_Occurred())) goto fail;
  if (headers != NULL && headers != Py_None) {
    PyObject *it = PyObject_GetIter(headers), *item;
    while (it != NULL && (item = PyIter_Next(it)) != NULL) {
      PyObject *pair = PySequence_Fast(item, "ASGI headers must be [name, value] pairs");
      Py_DECREF(item);
      if (pair == NULL || PySequence_Fast_GET_SIZE(pair) != 2) {
        if (pair != NULL) PyErr_SetString(PyExc_ValueError, "ASGI headers must be [name, value] pairs");
        Py_XDECREF(pair);
        break;
      }
      Py_buffer n, v;
      PyObject *t = NULL;
      if (cm_py_buffer_get(PySequence_Fast_GET_ITEM(pair, 0), &n, "header name") == 0) {
        if (cm_py_buffer_get(PySequence_Fast_GET_ITEM(pair, 1), &v, "header value") == 0) {
          t = Py_BuildValue("(N N)", PyUnicode_DecodeLatin1(n.buf, n.len, NULL),
                            PyUnicode_DecodeLatin1(v.buf, v.len, NULL));
          PyBuffer_Release(&v);
        }
        PyBuffer_Release(&n);
      }
      Py_DECREF(pair);
      if (t == NULL || PyList_Append(extra, t) < 0) {
        Py_XDECREF(t);
        break;
      }
      Py_DECREF(t);
    }
    Py_XDECREF(it);
    if (PyErr_Occurred()) goto fail;
  }
  PyObject *sub = msg_get(msg, k->str[S_SUBPROTOCOL]);
  if (sub == NULL && PyErr_Occurred()) goto fail;
  if (sub != NULL && sub != Py_None && PyObject_IsTrue(sub) == 1) {
    PyObject *t = Py_BuildValue("(sO)", "Sec-WebSocket-Protocol", sub);
    if (t == NULL || PyList_Append(extra, t) < 0) {
      Py_XDECREF(t);
      Py_DECREF(sub);
      goto fail;
    }
    Py_DECREF(t);
  }
  Py_XDECREF(sub);
  PyObject *head = ch->head;
  ch->head = NULL;
  if (head == NULL) head = Py_NewRef(k->empty_bytes);
  PyObject *args = Py_BuildValue("(NO)", head, PyList_GET_SIZE(extra) > 0 ? extra : Py_None);
  PyObject *ok = args == NULL ? NULL : cm_py_conn_ws_upgrade(ch->conn, args, NULL);
  Py_XDECREF(args);
  Py_XDECREF(headers);
  Py_DECREF(extra);
  if (ok == NULL) return -1;
  if (ok == Py_True) {
    ch->accepted = 1;
  } else { /* the handshake was invalid: the C layer answered 400 */
    ch->closed = 1;
    ch->disconnected = 1;
  }
  Py_DECREF(ok);
  return 0;
fail:
  Py_XDECREF(headers);
  Py_XDECREF(extra);
  return -1;
}

static int ws_message(asgi_ch *ch, PyObject *msg) {
  asgi_core *k = ch->core;
  if (!ch->accepted) {
    PyErr_SetString(PyExc_RuntimeError, "websocket.send before websocket.accept");
    return -1;
  }
  int op = CM_WS_OP_BINARY;
  PyObject *data = msg_get(msg, k->str[S_BYTES]);
  if (data == NULL && PyErr_Occurred()) return -1;
  if (data == Py_None) Py_CLEAR(data);
  if (data == NULL) {
    op = CM_WS_OP_TEXT;
    if ((data = msg_get(msg, k->str[S_TEXT])) == NULL && PyErr_Occurred()) return -1;
    if (data == Py_None) Py_CLEAR(data);
  }
  if (data == NULL) {
    PyErr_SetString(PyExc_ValueError, "websocket.send needs 'bytes' or 'text'");
    return -1;
  }
  Py_buffer view;
  int rc = cm_py_buffer_get(data, &view, op == CM_WS_OP_TEXT ? "text" : "bytes");
  if (rc == 0) {
    struct cm_conn *c = live_conn(ch);
    if (c != NULL) {
      cm_py_manager *mo = cm_py_conn_enter(c);
      (void)cm_ws_send(c, view.buf, (size_t)view.len, op);
      rc = cm_py_conn_leave(mo);
    }
    PyBuffer_Release(&view);
  }
  Py_DECREF(data);
  if (rc < 0) return -1;
  return cm_py_asgi_send_full(ch) ? 1 : 0;
}

static int ws_close(asgi_ch *ch, PyObject *msg) {
  asgi_core *k = ch->core;
  if (!ch->accepted) { /* refused before the handshake */
    ch->closed = 1;
    Py_CLEAR(ch->head);
    if (reply(ch, 403, NULL, "Forbidden\n", 10) < 0) return -1;
    return inbox_put(ch, cm_py_asgi_disconnect_msg(ch));
  }
  PyObject *code_o = msg_get(msg, k->str[S_CODE]);
  if (code_o == NULL && PyErr_Occurred()) return -1;
  long code = code_o == NULL ? 1000 : PyLong_AsLong(code_o);
  Py_XDECREF(code_o);
  if (code == -1 && PyErr_Occurred()) return -1;
  if (!((code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
        (code >= 3000 && code <= 4999))) {
    PyErr_Format(PyExc_ValueError, "%ld is not a close code an endpoint may send", code);
    return -1;
  }
  PyObject *reason = msg_get(msg, k->str[S_REASON]);
  if (reason == NULL && PyErr_Occurred()) return -1;
  const char *r = "";
  if (reason != NULL && reason != Py_None && PyObject_IsTrue(reason) == 1) {
    if ((r = PyUnicode_AsUTF8(reason)) == NULL) {
      Py_DECREF(reason);
      return -1;
    }
  }
  ch->closed = 1;
  int rc = 0;
  struct cm_conn *c = live_conn(ch);
  if (c != NULL) {
    cm_py_manager *mo = cm_py_conn_enter(c);
    (void)cm_ws_close(c, (unsigned)code, r);
    rc = cm_py_conn_leave(mo);
  }
  Py_XDECREF(reason);
  return rc;
}

static int ws_send(asgi_ch *ch, PyObject *type, PyObject *msg) {
  asgi_core *k = ch->core;
  if (ch->closed) {
    PyErr_Format(PyExc_RuntimeError, "%S after websocket.close", type != NULL ? type : Py_None);
    return -1;
  }
  if (str_is(type, k->str[S_WS_SEND])) return ws_message(ch, msg);
  if (str_is(type, k->str[S_WS_ACCEPT])) return ws_accept(ch, msg);
  if (str_is(type, k->str[S_WS_CLOSE])) return ws_close(ch, msg);
  PyErr_Format(PyExc_ValueError, "unexpected ASGI message %R on a WebSocket",
               type != NULL ? type : Py_None);
  return -1;
}

int cm_py_asgi_send(asgi_ch *ch, PyObject *msg) {
  if (ch->disconnected) {
    PyErr_SetString(ch->core->disconnected, "the client has disconnected");
    return -1;
  }
  PyObject *type = msg_get(msg, ch->core->str[S_TYPE]);
  if (type == NULL && PyErr_Occurred()) return -1;
  int rc = ch->is_ws ? ws_send(ch, type, msg) : http_send(ch, type, msg);
  Py_XDECREF(type);
  return rc;
}

/* receive()'s work: 1 with *out the message, 0 when it must wait, -1. */

/* ------------------------------------------------------------------ end */

/* After the application returned (failed: it raised). */
int cm_py_asgi_finish_protocol(asgi_ch *ch, bool failed) {
  if (ch->disconnected || live_conn(ch) == NULL) return 0;
  if (ch->is_ws) {
    if (ch->closed) return 0;
    ch->closed = 1;
    if (!ch->accepted) return reply(ch, failed ? 500 : 403, NULL, "", 0);
    struct cm_conn *c = live_conn(ch);
    cm_py_manager *mo = cm_py_conn_enter(c);
    (void)cm_ws_close(c, failed ? 1011 : 1000, "");
    return cm_py_conn_leave(mo);
  }
  if (ch->complete) return 0;
  if (!ch->started) {
    if (reply(ch, 500, "Content-Type: text/plain\r\n", "Internal Server Error\n", 22) < 0)
      return -1;
    return http_done(ch);
  }
  /* What was sent, then close: a cut body never passes for a whole one. */
  cm_drain(live_conn(ch));
  return 0;
}
