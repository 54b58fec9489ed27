/*
 * _AsgiCore: the event handler of cymongoose.asgi's server, and the driver
 * that steps applications' coroutines from the events (see asgi.h).
 *
 * Per request it costs no Python frame of ours: the scope is built here,
 * the application called with the channel's bound receive/send, and its
 * coroutine stepped with PyIter_Send inside the request's own context
 * (copied as a task would) with the connection's host task as
 * current_task().  The Python side (ASGIServer) is called only to make a
 * host task (once per connection), to hand a coroutine that awaits
 * something else over to it, and to report errors.
 */
#include "asgi.h"

#include <string.h>
#include <strings.h>

#include "args.h"
#include "conn_methods.h"

static const char *const str_values[S_COUNT] = {
    [S_TYPE] = "type", [S_BODY] = "body", [S_MORE_BODY] = "more_body", [S_STATUS] = "status",
    [S_HEADERS] = "headers", [S_BYTES] = "bytes", [S_TEXT] = "text", [S_CODE] = "code",
    [S_REASON] = "reason", [S_SUBPROTOCOL] = "subprotocol",
    [S_HTTP_REQUEST] = "http.request", [S_HTTP_DISCONNECT] = "http.disconnect",
    [S_HTTP_RESPONSE_START] = "http.response.start",
    [S_HTTP_RESPONSE_BODY] = "http.response.body", [S_WS_CONNECT] = "websocket.connect",
    [S_WS_RECEIVE] = "websocket.receive", [S_WS_DISCONNECT] = "websocket.disconnect",
    [S_WS_ACCEPT] = "websocket.accept", [S_WS_SEND] = "websocket.send",
    [S_WS_CLOSE] = "websocket.close", [S_RECEIVE] = "receive", [S_SEND] = "send",
    [S_SET_RESULT] = "set_result", [S_DONE] = "done", [S_CANCEL] = "cancel",
    [S_BLOCKING] = "_asyncio_future_blocking", [S_THROW] = "throw"};

/* --------------------------------------------------------- _AsgiConn */

static int cs_traverse(PyObject *self, visitproc visit, void *arg) {
  asgi_conn *cs = (asgi_conn *)self;
  Py_VISIT(Py_TYPE(self));
  Py_VISIT(cs->channels);
  Py_VISIT(cs->host);
  Py_VISIT(cs->inbox);
  Py_VISIT(cs->client);
  Py_VISIT(cs->server);
  return 0;
}

static int cs_clear(PyObject *self) {
  asgi_conn *cs = (asgi_conn *)self;
  Py_CLEAR(cs->channels);
  Py_CLEAR(cs->host);
  Py_CLEAR(cs->inbox);
  Py_CLEAR(cs->client);
  Py_CLEAR(cs->server);
  return 0;
}

static void cs_dealloc(PyObject *self) {
  PyTypeObject *tp = Py_TYPE(self);
  PyObject_GC_UnTrack(self);
  cs_clear(self);
  tp->tp_free(self);
  Py_DECREF(tp);
}

static PyType_Slot cs_slots[] = {
    {Py_tp_dealloc, cs_dealloc},
    {Py_tp_traverse, cs_traverse},
    {Py_tp_clear, cs_clear},
    {Py_tp_doc, "What cymongoose.asgi keeps per connection (its Connection.userdata)."},
    {0, NULL}};

static PyType_Spec cs_spec = {
    .name = "cymongoose._mongoose._AsgiConn",
    .basicsize = sizeof(asgi_conn),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = cs_slots,
};

/* The state of co (NULL: none yet). */
static asgi_conn *state_of(asgi_core *k, cm_py_conn *co) {
  PyObject *u = co->userdata;
  return u != NULL && Py_TYPE(u) == k->conn_type ? (asgi_conn *)u : NULL;
}

static asgi_conn *state_make(asgi_core *k, cm_py_conn *co) {
  asgi_conn *cs = state_of(k, co);
  if (cs != NULL) return cs;
  cs = (asgi_conn *)k->conn_type->tp_alloc(k->conn_type, 0);
  if (cs == NULL) return NULL;
  if ((cs->channels = PyList_New(0)) == NULL) {
    Py_DECREF(cs);
    return NULL;
  }
  Py_XSETREF(co->userdata, (PyObject *)cs); /* co keeps it */
  return cs;
}

/* ------------------------------------------------------------- stepping */

/* Runs coro.throw(exc) as PyIter_Send runs send(). */
static PySendResult throw_into(asgi_core *k, PyObject *coro, PyObject *exc, PyObject **res) {
  *res = PyObject_CallMethodOneArg(coro, k->str[S_THROW], exc);
  if (*res != NULL) return PYGEN_NEXT;
  if (!PyErr_ExceptionMatches(PyExc_StopIteration)) return PYGEN_ERROR;
  PyErr_Clear();
  *res = Py_NewRef(Py_None);
  return PYGEN_RETURN;
}

/* The coroutine awaits something else than our ops: its host task runs it
 * from now on (Python: ASGIServer._handoff). */
static int handoff(asgi_ch *ch, PyObject *pending) {
  asgi_core *k = ch->core;
  ch->task_mode = 1;
  if (ch->cs->host == ch->host) { /* the next request gets a new host */
    Py_CLEAR(ch->cs->host);
    Py_CLEAR(ch->cs->inbox);
  }
  PyObject *args[] = {k->hooks, ch->host, ch->host_inbox, (PyObject *)ch, ch->ctx, ch->coro,
                      pending};
  PyObject *name = PyUnicode_InternFromString("_handoff");
  PyObject *r = name == NULL ? NULL : PyObject_VectorcallMethod(name, args, 7, NULL);
  Py_XDECREF(name);
  if (r == NULL) {
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    PyErr_NormalizeException(&t, &v, &tb);
    int rc = cm_py_asgi_ch_finish(ch, v);
    Py_XDECREF(t);
    Py_XDECREF(v);
    Py_XDECREF(tb);
    return rc;
  }
  Py_DECREF(r);
  return 0;
}

int cm_py_asgi_step(asgi_ch *ch, PyObject *exc) {
  asgi_core *k = ch->core;
  if (ch->coro == NULL || ch->finished || ch->stepping) return 0;
  Py_INCREF(ch);
  int rc = 0;
  PyObject *coro = Py_NewRef(ch->coro), *ctx = Py_NewRef(ch->ctx), *host = Py_NewRef(ch->host);
  PyObject *args[2] = {k->loop, host};
  PyObject *r = PyObject_Vectorcall(k->enter_task, args, 2, NULL);
  if (r == NULL) {
    /* Called from inside a task (poll() run by a coroutine): the
     * coroutine runs as a task of its own instead. */
    PyErr_Clear();
    ch->task_mode = 1;
    if (ch->cs->host == ch->host) {
      Py_CLEAR(ch->cs->host);
      Py_CLEAR(ch->cs->inbox);
    }
    PyObject *a[] = {k->hooks, (PyObject *)ch, ctx, coro, exc != NULL ? exc : Py_None};
    PyObject *name = PyUnicode_InternFromString("_spawn");
    r = name == NULL ? NULL : PyObject_VectorcallMethod(name, a, 5, NULL);
    Py_XDECREF(name);
    if (r == NULL) {
      PyObject *t, *v, *tb;
      PyErr_Fetch(&t, &v, &tb);
      PyErr_NormalizeException(&t, &v, &tb);
      rc = cm_py_asgi_ch_finish(ch, v);
      Py_XDECREF(t);
      Py_XDECREF(v);
      Py_XDECREF(tb);
    }
    Py_XDECREF(r);
    goto out;
  }
  Py_DECREF(r);
  PyObject *res = NULL;
  PySendResult sr = PYGEN_ERROR;
  bool entered = PyContext_Enter(ctx) == 0;
  if (entered) {
    ch->stepping = 1;
    sr = exc == NULL ? PyIter_Send(coro, Py_None, &res) : throw_into(k, coro, exc, &res);
    ch->stepping = 0;
  }
  PyObject *t = NULL, *v = NULL, *tb = NULL;
  if (sr == PYGEN_ERROR) {
    PyErr_Fetch(&t, &v, &tb);
    PyErr_NormalizeException(&t, &v, &tb);
    if (v != NULL && tb != NULL) PyException_SetTraceback(v, tb);
  }
  if (entered && PyContext_Exit(ctx) < 0) PyErr_WriteUnraisable(coro);
  r = PyObject_Vectorcall(k->leave_task, args, 2, NULL);
  if (r == NULL) PyErr_WriteUnraisable(coro);
  Py_XDECREF(r);
  switch (sr) {
    case PYGEN_RETURN:
      Py_XDECREF(res);
      rc = cm_py_asgi_ch_finish(ch, NULL);
      break;
    case PYGEN_ERROR:
      rc = cm_py_asgi_ch_finish(ch, v);
      break;
    case PYGEN_NEXT:
      if (res == (PyObject *)ch) {
        ch->parked = 1; /* an op of ours waits: an event resumes it */
      } else {
        rc = handoff(ch, res);
      }
      Py_DECREF(res);
      break;
  }
  Py_XDECREF(t);
  Py_XDECREF(v);
  Py_XDECREF(tb);
out:
  Py_DECREF(coro);
  Py_DECREF(ctx);
  Py_DECREF(host);
  Py_DECREF(ch);
  return rc;
}

/* ------------------------------------------------------------- requests */

static bool has_token(struct cm_str v, const char *token) {
  size_t tl = strlen(token);
  const char *p = v.buf, *end = v.buf + v.len;
  while (p != NULL && p < end) {
    const char *comma = memchr(p, ',', (size_t)(end - p));
    const char *e = comma != NULL ? comma : end;
    while (p < e && (*p == ' ' || *p == '\t')) p++;
    const char *t = e;
    while (t > p && (t[-1] == ' ' || t[-1] == '\t')) t--;
    if ((size_t)(t - p) == tl && strncasecmp(p, token, tl) == 0) return true;
    p = comma != NULL ? comma + 1 : end;
  }
  return false;
}

static PyObject *bytes_of(struct cm_str s) {
  return PyBytes_FromStringAndSize(s.buf == NULL ? "" : s.buf, (Py_ssize_t)s.len);
}

/* The host task the connection's coroutines see as current_task(). */
static int host_of(asgi_core *k, asgi_conn *cs) {
  if (cs->host != NULL) return 0;
  PyObject *r = PyObject_CallMethod(k->hooks, "_make_host", NULL);
  if (r == NULL) return -1;
  if (!PyTuple_Check(r) || PyTuple_GET_SIZE(r) != 2) {
    Py_DECREF(r);
    PyErr_SetString(PyExc_TypeError, "_make_host() must return (task, inbox)");
    return -1;
  }
  cs->host = Py_NewRef(PyTuple_GET_ITEM(r, 0));
  cs->inbox = Py_NewRef(PyTuple_GET_ITEM(r, 1));
  Py_DECREF(r);
  return 0;
}

/* A request (ws: an upgrade to WebSocket; streamed: its body is read as
 * the application asks) reached the application. */
static int begin(asgi_core *k, cm_py_conn *co, const struct cm_http_msg *hm, bool ws,
                 bool streamed) {
  struct cm_conn *c = co->c;
  if (c == NULL) return 0;
  asgi_conn *cs = state_make(k, co);
  if (cs == NULL) return -1;
  if (cs->client == NULL) {
    if ((cs->client = PyObject_GetAttrString((PyObject *)co, "remote_addr")) == NULL ||
        (cs->server = PyObject_GetAttrString((PyObject *)co, "local_addr")) == NULL)
      return -1;
  }
  PyObject *scope = cm_py_asgi_scope(k->scopes, ws, hm, c->is_tls, cs->client, cs->server,
                                     k->state);
  if (scope == NULL) return -1;
  asgi_ch *ch = cm_py_asgi_ch_new(k, cs, (PyObject *)co, ws);
  if (ch == NULL) {
    Py_DECREF(scope);
    return -1;
  }
  int rc = -1;
  PyObject *receive = NULL, *send = NULL, *coro = NULL;
  if (ws) {
    if ((ch->head = bytes_of(hm->head)) == NULL) goto fail;
    PyObject *m = PyDict_New();
    if (m == NULL || PyDict_SetItem(m, k->str[S_TYPE], k->str[S_WS_CONNECT]) < 0 ||
        cm_py_asgi_inbox_put(ch, m) < 0) {
      Py_XDECREF(m);
      goto fail;
    }
    Py_DECREF(m);
  } else if (streamed) {
    ch->body_stream = ch->streamed = 1;
  } else if ((ch->request_body = bytes_of(hm->body)) == NULL) {
    goto fail; /* its http.request message is made if the app asks for it */
  }
  if (host_of(k, cs) < 0) goto fail;
  ch->host = Py_NewRef(cs->host);
  ch->host_inbox = Py_NewRef(cs->inbox);
  if ((ch->ctx = PyContext_CopyCurrent()) == NULL) goto fail;
  if (cm_py_asgi_ch_bound(ch, &receive, &send) < 0) goto fail;
  {
    PyObject *args[3] = {scope, receive, send};
    if (PyContext_Enter(ch->ctx) < 0) goto fail;
    coro = PyObject_Vectorcall(k->app, args, 3, NULL);
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    (void)PyContext_Exit(ch->ctx);
    PyErr_Restore(t, v, tb);
  }
  if (coro != NULL && !PyCoro_CheckExact(coro)) {
    /* Any awaitable: what `await` would iterate. */
    PyAsyncMethods *am = Py_TYPE(coro)->tp_as_async;
    PyObject *it = am != NULL && am->am_await != NULL ? am->am_await(coro) : NULL;
    if (it == NULL && !PyErr_Occurred())
      PyErr_Format(PyExc_TypeError, "the ASGI application returned %.100s, not an awaitable",
                   Py_TYPE(coro)->tp_name);
    Py_SETREF(coro, it);
  }
  if (coro == NULL) { /* the application failed before its coroutine began */
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    PyErr_NormalizeException(&t, &v, &tb);
    if (v != NULL && tb != NULL) PyException_SetTraceback(v, tb);
    rc = cm_py_asgi_ch_finish(ch, v);
    Py_XDECREF(t);
    Py_XDECREF(v);
    Py_XDECREF(tb);
    goto out;
  }
  ch->coro = coro;
  coro = NULL;
  rc = cm_py_asgi_step(ch, NULL);
  goto out;
fail:
  {
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    (void)cm_py_asgi_ch_finish(ch, NULL); /* not an application error: raised below */
    PyErr_Restore(t, v, tb);
  }
out:
  Py_XDECREF(coro);
  Py_XDECREF(receive);
  Py_XDECREF(send);
  Py_DECREF(scope);
  Py_DECREF(ch);
  return rc;
}

/* Wakes every channel of cs waiting for `what`. */
static int wake_all(asgi_conn *cs, int what, bool disconnect) {
  if (cs->channels == NULL || PyList_GET_SIZE(cs->channels) == 0) return 0;
  PyObject *list = PyList_GetSlice(cs->channels, 0, PyList_GET_SIZE(cs->channels));
  if (list == NULL) return -1;
  int rc = 0;
  for (Py_ssize_t i = 0; i < PyList_GET_SIZE(list); i++) {
    asgi_ch *ch = (asgi_ch *)PyList_GET_ITEM(list, i);
    if (what == W_RECEIVE && !ch->body_stream && !disconnect) continue;
    int r = disconnect ? cm_py_asgi_ch_disconnect(ch) : cm_py_asgi_ch_wake(ch, what);
    if (r < 0 && rc == 0) {
      rc = -1; /* the first BaseException goes on; the others are lost to it */
    } else if (r < 0) {
      PyErr_WriteUnraisable((PyObject *)ch);
    }
  }
  Py_DECREF(list);
  return rc;
}

static asgi_ch *websocket_of(asgi_conn *cs) {
  for (Py_ssize_t i = 0; cs != NULL && i < PyList_GET_SIZE(cs->channels); i++) {
    asgi_ch *ch = (asgi_ch *)PyList_GET_ITEM(cs->channels, i);
    if (ch->is_ws) return ch;
  }
  return NULL;
}

static int on_ws_msg(asgi_core *k, asgi_conn *cs, struct cm_ws_msg *wm, int ev) {
  asgi_ch *ch = websocket_of(cs);
  if (ch == NULL || wm == NULL) return 0;
  int op = CM_WS_MSG_OP(wm->flags);
  if (ev == CM_EV_WS_CTL) {
    if (op == CM_WS_OP_CLOSE) {
      const uint8_t *p = (const uint8_t *)wm->data.buf;
      ch->close_code = wm->data.len < 2 ? 1005 : (int)(p[0] << 8 | p[1]);
      PyObject *reason = wm->data.len <= 2 ? PyUnicode_FromStringAndSize("", 0)
                                           : PyUnicode_DecodeUTF8(wm->data.buf + 2,
                                                                  (Py_ssize_t)wm->data.len - 2,
                                                                  "replace");
      if (reason == NULL) return -1;
      Py_XSETREF(ch->close_reason, reason);
    }
    return 0;
  }
  PyObject *value = op == CM_WS_OP_BINARY
                        ? PyBytes_FromStringAndSize(wm->data.buf, (Py_ssize_t)wm->data.len)
                        : PyUnicode_DecodeUTF8(wm->data.buf, (Py_ssize_t)wm->data.len, "replace");
  PyObject *m = value == NULL ? NULL : PyDict_New();
  if (m == NULL || PyDict_SetItem(m, k->str[S_TYPE], k->str[S_WS_RECEIVE]) < 0 ||
      PyDict_SetItem(m, k->str[op == CM_WS_OP_BINARY ? S_BYTES : S_TEXT], value) < 0 ||
      cm_py_asgi_inbox_put(ch, m) < 0) {
    Py_XDECREF(value);
    Py_XDECREF(m);
    return -1;
  }
  Py_DECREF(value);
  Py_DECREF(m);
  return cm_py_asgi_ch_wake(ch, W_RECEIVE);
}

static int on_close(asgi_core *k, cm_py_conn *co) {
  asgi_conn *cs = state_of(k, co);
  if (cs == NULL) return 0;
  Py_INCREF(cs);
  Py_CLEAR(co->userdata);
  Py_CLEAR(cs->inbox);
  PyObject *host = cs->host;
  cs->host = NULL;
  if (host != NULL) { /* an idle host: nothing for it to run any more */
    PyObject *r = PyObject_CallMethodNoArgs(host, k->str[S_CANCEL]);
    if (r == NULL) PyErr_WriteUnraisable(host);
    Py_XDECREF(r);
    Py_DECREF(host);
  }
  int rc = wake_all(cs, W_NONE, true);
  if (cs->channels != NULL) (void)PyList_SetSlice(cs->channels, 0, PyList_GET_SIZE(cs->channels), NULL);
  Py_DECREF(cs);
  return rc;
}

/* HTTP_HDRS: a chunked body (of unknown length) or a long one is streamed
 * to the application, paced by its receive(); max_body bounds it. */
static int on_hdrs(asgi_core *k, cm_py_conn *co, struct cm_http_msg *hm) {
  if (!(hm->framing == CM_HTTP_BODY_CHUNKED ||
        (hm->framing == CM_HTTP_BODY_LENGTH && hm->content_length > k->stream_body)))
    return 0;
  /* The rare path: the body taker works on a message view. */
  cm_py_state *st = cm_py_state_of_type(Py_TYPE(k));
  PyObject *view = st == NULL ? NULL : cm_py_message_new(st, CM_EV_HTTP_HDRS, hm);
  if (view == NULL) return -1;
  PyObject *r = cm_py_http_body_take((PyObject *)co, view, true, k->max_body);
  cm_py_message_release(st, view);
  if (r == NULL) return -1;
  int rc = r != Py_None ? begin(k, co, hm, false, true) : 0;
  Py_DECREF(r);
  return rc;
}

/* The C entry of the handler (see cm_py_c_handler in core.h): the events
 * an ASGI server acts on; the others return at once. */
static int core_on_event(PyObject *self, cm_py_conn *co, int ev, void *ev_data) {
  asgi_core *k = (asgi_core *)self;
  struct cm_conn *c = co->c;
  if (ev == CM_EV_READ || ev == CM_EV_ACCEPT || ev == CM_EV_CLOSE) k->inputs++;
  switch (ev) {
    case CM_EV_HTTP_MSG: {
      struct cm_http_msg *hm = ev_data;
      if (hm == NULL || c == NULL) return 0;
      struct cm_str *up = cm_http_get_header(hm, "Upgrade");
      bool ws = up != NULL && hm->method.len == 3 && memcmp(hm->method.buf, "GET", 3) == 0 &&
                has_token(*up, "websocket");
      return begin(k, co, hm, ws, false);
    }
    case CM_EV_HTTP_HDRS:
      if (ev_data == NULL || c == NULL) return 0;
      return on_hdrs(k, co, ev_data);
    case CM_EV_READ: {
      asgi_conn *cs = state_of(k, co);
      if (cs == NULL || c == NULL) return 0;
      return wake_all(cs, W_RECEIVE, false);
    }
    case CM_EV_WRITE: {
      asgi_conn *cs = state_of(k, co);
      return cs != NULL ? wake_all(cs, W_SEND, false) : 0;
    }
    case CM_EV_WS_MSG:
    case CM_EV_WS_CTL:
      return on_ws_msg(k, state_of(k, co), ev_data, ev);
    case CM_EV_ACCEPT:
      if (k->tls != Py_None) {
        PyObject *r = cm_py_conn_tls_init((PyObject *)co, k->tls);
        if (r == NULL) return -1;
        Py_DECREF(r);
      }
      return 0;
    case CM_EV_CLOSE:
      return on_close(k, co);
    default:
      return 0;
  }
}

/* --------------------------------------------------------- _AsgiCore */

_Static_assert(offsetof(asgi_core, on_event) == offsetof(cm_py_c_handler, on_event),
               "_AsgiCore must begin as a cm_py_c_handler");

static PyObject *core_new(PyTypeObject *tp, PyObject *args, PyObject *kwargs) {
  static char *kwlist[] = {"app", "scopes", "hooks", "disconnected", "tls", "state",
                           "stream_window", "stream_body", "max_body", NULL};
  PyObject *app, *scopes, *hooks, *disconnected, *tls = Py_None, *state = Py_None;
  Py_ssize_t window = 1 << 20;
  unsigned long long stream_body = 64 * 1024, max_body = 16 << 20;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOO|$OOnKK:_AsgiCore", kwlist, &app, &scopes,
                                   &hooks, &disconnected, &tls, &state, &window, &stream_body,
                                   &max_body))
    return NULL;
  if (window < 0) {
    PyErr_SetString(PyExc_ValueError, "stream_window must be >= 0");
    return NULL;
  }
  cm_py_state *st = cm_py_state_of_type(tp);
  if (st == NULL) return NULL;
  PyObject *m = PyType_GetModuleByDef(tp, &cm_py_module_def);
  asgi_core *k = (asgi_core *)tp->tp_alloc(tp, 0);
  if (k == NULL) return NULL;
  k->on_event = core_on_event;
  k->app = Py_NewRef(app);
  k->scopes = Py_NewRef(scopes);
  k->hooks = Py_NewRef(hooks);
  k->disconnected = Py_NewRef(disconnected);
  k->tls = Py_NewRef(tls);
  k->state = Py_NewRef(state);
  k->stream_window = (size_t)window;
  k->stream_body = stream_body;
  k->max_body = max_body;
  k->connection_type = (PyTypeObject *)Py_NewRef(st->connection_type);
  k->conn_type = (PyTypeObject *)PyObject_GetAttrString(m, "_AsgiConn");
  k->ch_type = (PyTypeObject *)PyObject_GetAttrString(m, "_AsgiChannel");
  k->op_type = (PyTypeObject *)PyObject_GetAttrString(m, "_AsgiOp");
  k->live = PySet_New(NULL);
  k->empty_bytes = PyBytes_FromStringAndSize("", 0);
  PyObject *exc_mod = PyImport_ImportModule("asyncio.exceptions");
  k->cancelled = exc_mod == NULL ? NULL : PyObject_GetAttrString(exc_mod, "CancelledError");
  Py_XDECREF(exc_mod);
  if (k->conn_type == NULL || k->ch_type == NULL || k->op_type == NULL || k->live == NULL ||
      k->empty_bytes == NULL || k->cancelled == NULL)
    goto fail;
  for (int i = 0; i < S_COUNT; i++)
    if ((k->str[i] = PyUnicode_InternFromString(str_values[i])) == NULL) goto fail;
  return (PyObject *)k;
fail:
  Py_DECREF(k);
  return NULL;
}

static int core_traverse(PyObject *self, visitproc visit, void *arg) {
  asgi_core *k = (asgi_core *)self;
  Py_VISIT(Py_TYPE(self));
  Py_VISIT(k->app);
  Py_VISIT(k->scopes);
  Py_VISIT(k->hooks);
  Py_VISIT(k->tls);
  Py_VISIT(k->state);
  Py_VISIT(k->disconnected);
  Py_VISIT(k->cancelled);
  Py_VISIT(k->create_future);
  Py_VISIT(k->loop);
  Py_VISIT(k->enter_task);
  Py_VISIT(k->leave_task);
  Py_VISIT(k->live);
  Py_VISIT(k->conn_type);
  Py_VISIT(k->ch_type);
  Py_VISIT(k->op_type);
  Py_VISIT(k->connection_type);
  return 0;
}

static int core_clear(PyObject *self) {
  asgi_core *k = (asgi_core *)self;
  Py_CLEAR(k->app);
  Py_CLEAR(k->scopes);
  Py_CLEAR(k->hooks);
  Py_CLEAR(k->tls);
  Py_CLEAR(k->state);
  Py_CLEAR(k->disconnected);
  Py_CLEAR(k->cancelled);
  Py_CLEAR(k->create_future);
  Py_CLEAR(k->loop);
  Py_CLEAR(k->enter_task);
  Py_CLEAR(k->leave_task);
  Py_CLEAR(k->live);
  Py_CLEAR(k->empty_bytes);
  Py_CLEAR(k->last_headers);
  Py_CLEAR(k->last_block);
  Py_CLEAR(k->conn_type);
  Py_CLEAR(k->ch_type);
  Py_CLEAR(k->op_type);
  Py_CLEAR(k->connection_type);
  for (int i = 0; i < S_COUNT; i++) Py_CLEAR(k->str[i]);
  return 0;
}

static void core_dealloc(PyObject *self) {
  PyTypeObject *tp = Py_TYPE(self);
  PyObject_GC_UnTrack(self);
  core_clear(self);
  tp->tp_free(self);
  Py_DECREF(tp);
}

/* start(loop): the loop the server runs in (futures, current task). */
static PyObject *core_start(PyObject *self, PyObject *loop) {
  asgi_core *k = (asgi_core *)self;
  PyObject *tasks = PyImport_ImportModule("asyncio.tasks");
  if (tasks == NULL) return NULL;
  PyObject *enter = PyObject_GetAttrString(tasks, "_enter_task");
  PyObject *leave = enter == NULL ? NULL : PyObject_GetAttrString(tasks, "_leave_task");
  Py_DECREF(tasks);
  PyObject *cf = leave == NULL ? NULL : PyObject_GetAttrString(loop, "create_future");
  if (cf == NULL) {
    Py_XDECREF(enter);
    Py_XDECREF(leave);
    return NULL;
  }
  Py_XSETREF(k->enter_task, enter);
  Py_XSETREF(k->leave_task, leave);
  Py_XSETREF(k->create_future, cf);
  Py_XSETREF(k->loop, Py_NewRef(loop));
  Py_RETURN_NONE;
}

static PyObject *core_channels(PyObject *self, PyObject *unused) {
  (void)unused;
  return PySequence_List(((asgi_core *)self)->live);
}

static PyObject *core_get_state(PyObject *self, void *closure) {
  (void)closure;
  return Py_NewRef(((asgi_core *)self)->state);
}

static int core_set_state(PyObject *self, PyObject *v, void *closure) {
  (void)closure;
  if (v == NULL) {
    PyErr_SetString(PyExc_AttributeError, "cannot delete state");
    return -1;
  }
  Py_XSETREF(((asgi_core *)self)->state, Py_NewRef(v));
  return 0;
}

static PyMethodDef core_methods[] = {
    {"start", core_start, METH_O,
     "start($self, loop, /)\n--\n\nBinds the core to the running asyncio loop."},
    {"channels", core_channels, METH_NOARGS,
     "channels($self, /)\n--\n\nThe channels whose application still runs (a new list)."},
    {NULL, NULL, 0, NULL}};

static PyObject *core_get_inputs(PyObject *self, void *closure) {
  (void)closure;
  return PyLong_FromUnsignedLongLong(((asgi_core *)self)->inputs);
}

static PyGetSetDef core_getset[] = {
    {"inputs", core_get_inputs, NULL,
     "Events that brought input (data read, connections accepted or closed) so far.", NULL},
    {"state", core_get_state, core_set_state, "The lifespan state copied into scopes.", NULL},
    {NULL, NULL, NULL, NULL, NULL}};

static PyType_Slot core_slots[] = {
    {Py_tp_new, core_new},
    {Py_tp_dealloc, core_dealloc},
    {Py_tp_traverse, core_traverse},
    {Py_tp_clear, core_clear},
    {Py_tp_call, cm_py_c_handler_call},
    {Py_tp_methods, core_methods},
    {Py_tp_getset, core_getset},
    {Py_tp_doc,
     "_AsgiCore(app, scopes, hooks, disconnected, *, tls=None, state=None, stream_window=1048576, "
     "stream_body=65536, max_body=16777216)\n--\n\n"
     "The event handler of cymongoose.asgi.ASGIServer (private)."},
    {0, NULL}};

static PyType_Spec core_spec = {
    .name = "cymongoose._mongoose._AsgiCore",
    .basicsize = sizeof(asgi_core),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = core_slots,
};

int cm_py_asgi_core_exec(PyObject *m) {
  PyType_Spec *specs[] = {&cs_spec, &core_spec};
  for (size_t i = 0; i < 2; i++) {
    PyObject *tp = PyType_FromModuleAndSpec(m, specs[i], NULL);
    if (tp == NULL) return -1;
    int rc = PyModule_AddType(m, (PyTypeObject *)tp);
    Py_DECREF(tp);
    if (rc < 0) return -1;
  }
  return 0;
}
