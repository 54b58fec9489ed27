/*
 * _AsgiChannel and _AsgiOp: one ASGI connection (an HTTP request or a
 * WebSocket) and the awaitables its receive() and send() return.  See
 * asgi.h for how the core drives them.
 *
 * An op does its work when first stepped (as an `async def` would, not when
 * receive()/send() is called), completes at once when it can (am_send
 * returns PYGEN_RETURN: no StopIteration, no future), and otherwise yields
 * the park marker (the channel, when the core steps the coroutine) or an
 * asyncio future (when a task does).  Whoever resumes it steps it again,
 * and it checks again.
 */
#include "asgi.h"

#include <string.h>
#include <strings.h>

#include "args.h"
#include "conn_methods.h"

/* At most this much of a streamed request body per http.request message. */
#define BODY_PIECE (256 * 1024)

enum { OP_INIT, OP_WAIT, OP_DONE };

typedef struct {
  PyObject_HEAD
  asgi_ch *ch;
  PyObject *msg; /* send(): the message, until acted on */
  int kind;      /* W_RECEIVE or W_SEND */
  int state;     /* OP_* */
} asgi_op;

/* ------------------------------------------------------------- messages */

/* msg[key] as a new reference; NULL when absent (no exception) or with an
 * exception set (msg not a mapping...). */
static PyObject *msg_get(PyObject *msg, PyObject *key) {
  if (PyDict_CheckExact(msg)) return Py_XNewRef(PyDict_GetItemWithError(msg, key));
  PyObject *v = PyObject_GetItem(msg, key);
  if (v == NULL && PyErr_ExceptionMatches(PyExc_KeyError)) PyErr_Clear();
  return v;
}

static bool str_is(PyObject *v, PyObject *interned) {
  return v == interned || (v != NULL && PyUnicode_Check(v) && PyUnicode_Compare(v, interned) == 0);
}

/* {"type": type, key1: v1, key2: v2} (keys NULL when unused); steals v1, v2. */
static PyObject *new_msg(asgi_core *k, int type, int key1, PyObject *v1, int key2, PyObject *v2) {
  PyObject *m = PyDict_New();
  if (m == NULL || PyDict_SetItem(m, k->str[S_TYPE], k->str[type]) < 0 ||
      (key1 >= 0 && (v1 == NULL || PyDict_SetItem(m, k->str[key1], v1) < 0)) ||
      (key2 >= 0 && (v2 == NULL || PyDict_SetItem(m, k->str[key2], v2) < 0)))
    Py_CLEAR(m);
  Py_XDECREF(v1);
  Py_XDECREF(v2);
  return m;
}

static PyObject *http_request_msg(asgi_core *k, PyObject *body, bool more) {
  return new_msg(k, S_HTTP_REQUEST, S_BODY, body, S_MORE_BODY, PyBool_FromLong(more));
}

static PyObject *disconnect_msg(asgi_ch *ch) {
  asgi_core *k = ch->core;
  if (!ch->is_ws) return new_msg(k, S_HTTP_DISCONNECT, -1, NULL, -1, NULL);
  return new_msg(k, S_WS_DISCONNECT, S_CODE, PyLong_FromLong(ch->close_code), S_REASON,
                 Py_NewRef(ch->close_reason));
}

static int inbox_put(asgi_ch *ch, PyObject *msg) {
  if (msg == NULL) return -1;
  int rc = PyList_Append(ch->inbox, msg);
  Py_DECREF(msg);
  return rc;
}

/* ---------------------------------------------------------------- helpers */

static struct cm_conn *live_conn(asgi_ch *ch) { return ((cm_py_conn *)ch->conn)->c; }

/* send() must wait: more than stream_window bytes queued for the client. */
static bool send_full(asgi_ch *ch) {
  struct cm_conn *c = live_conn(ch);
  return c != NULL && !ch->disconnected && c->send.len > ch->core->stream_window;
}

static void report(asgi_core *k, PyObject *exc) {
  PyObject *r = PyObject_CallMethod(k->hooks, "_report", "O", exc);
  if (r == NULL) PyErr_WriteUnraisable(k->hooks);
  Py_XDECREF(r);
}

/* Reports the current exception (which must be set) and clears it. */
static void report_current(asgi_core *k) {
  PyObject *t, *v, *tb;
  PyErr_Fetch(&t, &v, &tb);
  PyErr_NormalizeException(&t, &v, &tb);
  if (v != NULL && tb != NULL) PyException_SetTraceback(v, tb);
  if (v != NULL) report(k, v);
  Py_XDECREF(t);
  Py_XDECREF(v);
  Py_XDECREF(tb);
}

/* A response through cm_http_reply (bracketed: the output hook may run). */
static int reply(asgi_ch *ch, int status, const char *hdrs, const void *body, size_t len) {
  struct cm_conn *c = live_conn(ch);
  if (c == NULL) return 0;
  const char *why = cm_http_reply_check(status, hdrs, len);
  if (why != NULL) {
    PyErr_Format(PyExc_ValueError, "reply refused: %s", why);
    return -1;
  }
  cm_py_manager *mo = cm_py_conn_enter(c);
  (void)cm_http_reply(c, status, hdrs, body, len);
  return cm_py_conn_leave(mo);
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
  PyObject *block = header_block(headers);
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
    rc = send_full(ch) ? 1 : 0;
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
  return send_full(ch) ? 1 : 0;
}

static int ws_close(asgi_ch *ch, PyObject *msg) {
  asgi_core *k = ch->core;
  if (!ch->accepted) { /* refused before the handshake */
    ch->closed = 1;
    Py_CLEAR(ch->head);
    if (reply(ch, 403, NULL, "Forbidden\n", 10) < 0) return -1;
    return inbox_put(ch, disconnect_msg(ch));
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

/* send(message)'s work: 0 done, 1 done but wait for room, -1 error. */
static int do_send(asgi_ch *ch, PyObject *msg) {
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
static int try_receive(asgi_ch *ch, PyObject **out) {
  Py_ssize_t n = PyList_GET_SIZE(ch->inbox);
  if (ch->inbox_head < n) {
    *out = PyList_GET_ITEM(ch->inbox, ch->inbox_head); /* taken over */
    PyList_SET_ITEM(ch->inbox, ch->inbox_head, Py_NewRef(Py_None));
    if (++ch->inbox_head == n) {
      ch->inbox_head = 0;
      if (PyList_SetSlice(ch->inbox, 0, n, NULL) < 0) return -1;
    }
    return 1;
  }
  if (ch->body_stream && !ch->disconnected) {
    /* What has arrived (up to BODY_PIECE); what the app does not ask for
     * stays unread, so reading pauses at recv_limit. */
    PyObject *size = PyLong_FromLong(BODY_PIECE);
    PyObject *data = size == NULL ? NULL : cm_py_conn_http_body_read(ch->conn, &size, 1, NULL);
    Py_XDECREF(size);
    if (data == NULL) return -1;
    PyObject *left_o = cm_py_conn_http_body_left(ch->conn, NULL);
    if (left_o == NULL) {
      Py_DECREF(data);
      return -1;
    }
    unsigned long long left = left_o == Py_None ? 0 : PyLong_AsUnsignedLongLong(left_o);
    Py_DECREF(left_o);
    if (PyBytes_GET_SIZE(data) == 0 && left > 0) {
      Py_DECREF(data);
      return 0;
    }
    if (left == 0) ch->body_stream = 0; /* the body is complete */
    *out = http_request_msg(ch->core, data, left > 0);
    return *out == NULL ? -1 : 1;
  }
  if (ch->disconnected || (!ch->is_ws && ch->complete)) {
    /* As uvicorn: once the response is complete nothing more will come. */
    *out = disconnect_msg(ch);
    return *out == NULL ? -1 : 1;
  }
  return 0;
}

/* ------------------------------------------------------------------- ops */

static PyObject *op_new(asgi_ch *ch, int kind, PyObject *msg) {
  asgi_op *op = PyObject_GC_New(asgi_op, ch->core->op_type);
  if (op == NULL) return NULL;
  op->ch = (asgi_ch *)Py_NewRef(ch);
  op->msg = Py_XNewRef(msg);
  op->kind = kind;
  op->state = OP_INIT;
  PyObject_GC_Track(op);
  return (PyObject *)op;
}

static int op_traverse(PyObject *self, visitproc visit, void *arg) {
  asgi_op *op = (asgi_op *)self;
  Py_VISIT(Py_TYPE(self));
  Py_VISIT(op->ch);
  Py_VISIT(op->msg);
  return 0;
}

static int op_clear(PyObject *self) {
  asgi_op *op = (asgi_op *)self;
  Py_CLEAR(op->ch);
  Py_CLEAR(op->msg);
  return 0;
}

static void op_dealloc(PyObject *self) {
  PyTypeObject *tp = Py_TYPE(self);
  PyObject_GC_UnTrack(self);
  op_clear(self);
  PyObject_GC_Del(self);
  Py_DECREF(tp);
}

/* A future of the running loop for a task to await (as Future.__await__
 * hands it over: _asyncio_future_blocking set), kept with the others
 * waiting for the same kind until an event completes them all. */
static PyObject *task_future(asgi_ch *ch, int kind) {
  asgi_core *k = ch->core;
  if (k->create_future == NULL) {
    PyErr_SetString(PyExc_RuntimeError, "the ASGI server is not started");
    return NULL;
  }
  PyObject **slot = kind == W_RECEIVE ? &ch->recv_waiter : &ch->send_waiter;
  if (*slot == NULL && (*slot = PyList_New(0)) == NULL) return NULL;
  PyObject *fut = PyObject_CallNoArgs(k->create_future);
  if (fut == NULL) return NULL;
  if (PyObject_SetAttr(fut, k->str[S_BLOCKING], Py_True) < 0 || PyList_Append(*slot, fut) < 0) {
    Py_DECREF(fut);
    return NULL;
  }
  return fut;
}

static PySendResult op_step(PyObject *self, PyObject *arg, PyObject **result) {
  (void)arg;
  asgi_op *op = (asgi_op *)self;
  asgi_ch *ch = op->ch;
  if (op->state == OP_DONE) {
    PyErr_SetString(PyExc_RuntimeError, "cannot reuse an already awaited ASGI receive()/send()");
    return PYGEN_ERROR;
  }
  int rc;
  PyObject *value = NULL;
  if (op->kind == W_SEND) {
    if (op->state == OP_INIT) {
      PyObject *msg = op->msg;
      op->msg = NULL;
      op->state = OP_WAIT;
      rc = do_send(ch, msg);
      Py_DECREF(msg);
      rc = rc < 0 ? -1 : rc == 0 ? 1 : 0; /* as try_receive: 1 done, 0 wait */
    } else {
      rc = send_full(ch) ? 0 : 1;
    }
    if (rc == 1) value = Py_NewRef(Py_None);
  } else {
    rc = try_receive(ch, &value);
  }
  if (rc != 0) {
    op->state = OP_DONE;
    if (rc < 0) return PYGEN_ERROR;
    *result = value;
    return PYGEN_RETURN;
  }
  op->state = OP_WAIT;
  ch->waiting = op->kind;
  if (ch->stepping) { /* the core steps this coroutine: park it */
    *result = Py_NewRef((PyObject *)ch);
    return PYGEN_NEXT;
  }
  if ((*result = task_future(ch, op->kind)) == NULL) return PYGEN_ERROR;
  return PYGEN_NEXT;
}

static PyObject *op_iternext(PyObject *self) {
  PyObject *res = NULL;
  switch (op_step(self, Py_None, &res)) {
    case PYGEN_NEXT: return res;
    case PYGEN_RETURN:
      if (res != Py_None) {
        PyObject *e = PyObject_CallOneArg(PyExc_StopIteration, res);
        if (e != NULL) PyErr_SetObject(PyExc_StopIteration, e);
        Py_XDECREF(e);
      }
      Py_DECREF(res);
      return NULL;
    default: return NULL;
  }
}

static PyObject *op_send_method(PyObject *self, PyObject *arg) {
  (void)arg;
  return op_iternext(self);
}

static PyObject *op_await(PyObject *self) { return Py_NewRef(self); }

static PyMethodDef op_methods[] = {
    {"send", op_send_method, METH_O, "send($self, value, /)\n--\n\nSteps the operation."},
    {NULL, NULL, 0, NULL}};

static PyType_Slot op_slots[] = {
    {Py_tp_dealloc, op_dealloc},
    {Py_tp_traverse, op_traverse},
    {Py_tp_clear, op_clear},
    {Py_tp_iter, op_await},
    {Py_tp_iternext, op_iternext},
    {Py_am_await, op_await},
    {Py_am_send, op_step},
    {Py_tp_methods, op_methods},
    {Py_tp_doc, "The awaitable of an ASGI receive() or send() (cymongoose.asgi)."},
    {0, NULL}};

static PyType_Spec op_spec = {
    .name = "cymongoose._mongoose._AsgiOp",
    .basicsize = sizeof(asgi_op),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = op_slots,
};

/* -------------------------------------------------------------- channel */

asgi_ch *cm_py_asgi_ch_new(asgi_core *k, asgi_conn *cs, PyObject *conn, bool ws) {
  asgi_ch *ch = (asgi_ch *)k->ch_type->tp_alloc(k->ch_type, 0);
  if (ch == NULL) return NULL;
  ch->core = (asgi_core *)Py_NewRef(k);
  ch->cs = (asgi_conn *)Py_NewRef(cs);
  ch->conn = Py_NewRef(conn);
  ch->is_ws = ws;
  ch->close_code = 1006;
  ch->close_reason = PyUnicode_FromStringAndSize("", 0);
  ch->inbox = PyList_New(0);
  if (ch->close_reason == NULL || ch->inbox == NULL || PyList_Append(cs->channels, (PyObject *)ch) < 0 ||
      PySet_Add(k->live, (PyObject *)ch) < 0) {
    Py_DECREF(ch);
    return NULL;
  }
  return ch;
}

/* Completes the futures tasks wait on in *slot (a list), unless done. */
static int resolve(asgi_core *k, PyObject **slot) {
  PyObject *list = *slot;
  *slot = NULL;
  if (list == NULL) return 0;
  int rc = 0;
  for (Py_ssize_t i = 0; i < PyList_GET_SIZE(list); i++) {
    PyObject *fut = PyList_GET_ITEM(list, i);
    PyObject *done = PyObject_CallMethodNoArgs(fut, k->str[S_DONE]);
    PyObject *r = done == Py_False ? PyObject_CallMethodOneArg(fut, k->str[S_SET_RESULT], Py_None)
                                   : Py_XNewRef(done);
    Py_XDECREF(done);
    if (r == NULL) rc = -1;
    Py_XDECREF(r);
    if (rc < 0) break;
  }
  Py_DECREF(list);
  return rc;
}

int cm_py_asgi_ch_wake(asgi_ch *ch, int what) {
  if (ch->finished) return 0;
  int rc = 0;
  if (what != W_SEND && resolve(ch->core, &ch->recv_waiter) < 0) rc = -1;
  if (rc == 0 && what != W_RECEIVE && resolve(ch->core, &ch->send_waiter) < 0) rc = -1;
  if (rc < 0) report_current(ch->core);
  if (ch->parked && !ch->stepping && (what == W_NONE || ch->waiting == what)) {
    ch->parked = 0;
    ch->waiting = W_NONE;
    return cm_py_asgi_step(ch, NULL);
  }
  return 0;
}

int cm_py_asgi_ch_disconnect(asgi_ch *ch) {
  ch->disconnected = 1;
  return cm_py_asgi_ch_wake(ch, W_NONE);
}

/* After the application returned (failed: it raised). */
static int finish_protocol(asgi_ch *ch, bool failed) {
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

int cm_py_asgi_ch_finish(asgi_ch *ch, PyObject *exc) {
  if (ch->finished) return 0;
  asgi_core *k = ch->core;
  ch->finished = 1;
  ch->parked = 0;
  Py_INCREF(ch);
  Py_ssize_t n = PyList_GET_SIZE(ch->cs->channels);
  for (Py_ssize_t i = 0; i < n; i++) {
    if (PyList_GET_ITEM(ch->cs->channels, i) == (PyObject *)ch) {
      (void)PySequence_DelItem(ch->cs->channels, i);
      break;
    }
  }
  if (PySet_Discard(k->live, (PyObject *)ch) < 0) PyErr_Clear();
  bool failed = false;
  PyObject *reraise = NULL;
  if (exc != NULL && exc != Py_None) {
    if (PyErr_GivenExceptionMatches(exc, k->disconnected)) {
      /* send() after the client left: the application just stops */
    } else if (PyErr_GivenExceptionMatches(exc, PyExc_Exception)) {
      failed = true;
      report(k, exc);
    } else {
      failed = true; /* CancelledError (at shutdown), KeyboardInterrupt... */
      if (!PyErr_GivenExceptionMatches(exc, k->cancelled)) reraise = exc;
    }
  }
  if (finish_protocol(ch, failed) < 0) report_current(k);
  Py_CLEAR(ch->coro);
  Py_CLEAR(ch->ctx);
  Py_CLEAR(ch->host);
  Py_CLEAR(ch->host_inbox);
  int rc = 0;
  if (resolve(k, &ch->recv_waiter) < 0 || resolve(k, &ch->send_waiter) < 0) report_current(k);
  if (reraise != NULL) {
    PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(reraise)), Py_NewRef(reraise),
                  PyException_GetTraceback(reraise));
    rc = -1;
  }
  Py_DECREF(ch);
  return rc;
}

static PyObject *ch_receive(PyObject *self, PyObject *unused) {
  (void)unused;
  return op_new((asgi_ch *)self, W_RECEIVE, NULL);
}

static PyObject *ch_send(PyObject *self, PyObject *msg) {
  return op_new((asgi_ch *)self, W_SEND, msg);
}

/* _finish(exc): the host task ran the coroutine to its end. */
static PyObject *ch_finish_method(PyObject *self, PyObject *exc) {
  if (cm_py_asgi_ch_finish((asgi_ch *)self, exc) < 0) return NULL;
  Py_RETURN_NONE;
}

/* cancel(): throws CancelledError into a coroutine parked here (at
 * shutdown); one in a task is cancelled through its task. */
static PyObject *ch_cancel(PyObject *self, PyObject *unused) {
  (void)unused;
  asgi_ch *ch = (asgi_ch *)self;
  if (!ch->parked || ch->stepping) Py_RETURN_FALSE;
  PyObject *exc = PyObject_CallNoArgs(ch->core->cancelled);
  if (exc == NULL) return NULL;
  ch->parked = 0;
  ch->waiting = W_NONE;
  int rc = cm_py_asgi_step(ch, exc);
  Py_DECREF(exc);
  if (rc < 0) return NULL;
  Py_RETURN_TRUE;
}

/* shutdown(): a WebSocket still open is closed with 1001. */
static PyObject *ch_shutdown(PyObject *self, PyObject *unused) {
  (void)unused;
  asgi_ch *ch = (asgi_ch *)self;
  struct cm_conn *c = live_conn(ch);
  if (!ch->is_ws || !ch->accepted || ch->closed || ch->disconnected || c == NULL) Py_RETURN_FALSE;
  ch->closed = 1;
  cm_py_manager *mo = cm_py_conn_enter(c);
  (void)cm_ws_close(c, 1001, "server shutdown");
  if (cm_py_conn_leave(mo) < 0) return NULL;
  Py_RETURN_TRUE;
}

static PyObject *ch_get_flag(PyObject *self, void *closure) {
  asgi_ch *ch = (asgi_ch *)self;
  switch ((int)(intptr_t)closure) {
    case 0: return PyBool_FromLong(ch->is_ws);
    case 1: return PyBool_FromLong(ch->parked);
    case 2: return PyBool_FromLong(ch->task_mode);
    default: return PyBool_FromLong(ch->finished);
  }
}

static int ch_traverse(PyObject *self, visitproc visit, void *arg) {
  asgi_ch *ch = (asgi_ch *)self;
  Py_VISIT(Py_TYPE(self));
  Py_VISIT(ch->core);
  Py_VISIT(ch->cs);
  Py_VISIT(ch->conn);
  Py_VISIT(ch->coro);
  Py_VISIT(ch->ctx);
  Py_VISIT(ch->host);
  Py_VISIT(ch->host_inbox);
  Py_VISIT(ch->recv_waiter);
  Py_VISIT(ch->send_waiter);
  Py_VISIT(ch->inbox);
  return 0;
}

static int ch_clear(PyObject *self) {
  asgi_ch *ch = (asgi_ch *)self;
  Py_CLEAR(ch->core);
  Py_CLEAR(ch->cs);
  Py_CLEAR(ch->conn);
  Py_CLEAR(ch->coro);
  Py_CLEAR(ch->ctx);
  Py_CLEAR(ch->host);
  Py_CLEAR(ch->host_inbox);
  Py_CLEAR(ch->recv_waiter);
  Py_CLEAR(ch->send_waiter);
  Py_CLEAR(ch->inbox);
  Py_CLEAR(ch->head);
  Py_CLEAR(ch->start_headers);
  Py_CLEAR(ch->close_reason);
  return 0;
}

static void ch_dealloc(PyObject *self) {
  PyTypeObject *tp = Py_TYPE(self);
  PyObject_GC_UnTrack(self);
  ch_clear(self);
  tp->tp_free(self);
  Py_DECREF(tp);
}

static PyMethodDef ch_methods[] = {
    {"receive", ch_receive, METH_NOARGS,
     "receive($self, /)\n--\n\nAn awaitable of the next ASGI event for the application."},
    {"send", ch_send, METH_O, "send($self, message, /)\n--\n\nAn awaitable that sends message."},
    {"_finish", ch_finish_method, METH_O,
     "_finish($self, exc, /)\n--\n\nThe application ended (exc: None or what it raised)."},
    {"cancel", ch_cancel, METH_NOARGS,
     "cancel($self, /)\n--\n\nThrows CancelledError into a coroutine waiting here; False if none."},
    {"shutdown", ch_shutdown, METH_NOARGS,
     "shutdown($self, /)\n--\n\nCloses an open WebSocket with 1001."},
    {NULL, NULL, 0, NULL}};

static PyGetSetDef ch_getset[] = {
    {"is_websocket", ch_get_flag, NULL, "A WebSocket (else an HTTP request).", (void *)0},
    {"parked", ch_get_flag, NULL, "The coroutine waits here, stepped by the core.", (void *)1},
    {"in_task", ch_get_flag, NULL, "The coroutine runs in an asyncio task.", (void *)2},
    {"finished", ch_get_flag, NULL, "The application has returned.", (void *)3},
    {NULL, NULL, NULL, NULL, NULL}};

static PyType_Slot ch_slots[] = {
    {Py_tp_dealloc, ch_dealloc},
    {Py_tp_traverse, ch_traverse},
    {Py_tp_clear, ch_clear},
    {Py_tp_methods, ch_methods},
    {Py_tp_getset, ch_getset},
    {Py_tp_doc, "One ASGI connection of cymongoose.asgi: receive() and send() for the app."},
    {0, NULL}};

static PyType_Spec ch_spec = {
    .name = "cymongoose._mongoose._AsgiChannel",
    .basicsize = sizeof(asgi_ch),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = ch_slots,
};

int cm_py_asgi_channel_exec(PyObject *m) {
  PyType_Spec *specs[] = {&op_spec, &ch_spec};
  for (size_t i = 0; i < 2; i++) {
    PyObject *tp = PyType_FromModuleAndSpec(m, specs[i], NULL);
    if (tp == NULL) return -1;
    int rc = PyModule_AddType(m, (PyTypeObject *)tp);
    Py_DECREF(tp);
    if (rc < 0) return -1;
  }
  return 0;
}
