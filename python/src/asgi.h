/*
 * The ASGI bridge of cymongoose.asgi, in C (asgi_scope.c, asgi_channel.c,
 * asgi_send.c, asgi_core.c).
 *
 * _AsgiCore is the manager's event handler of an ASGIServer.  For every
 * request (or WebSocket) it builds the scope, makes an _AsgiChannel whose
 * bound receive() and send() it hands to the application, and steps the
 * application's coroutine right in the event callback.  receive() and
 * send() return _AsgiOp awaitables: they complete at once when a message
 * is there (or the response was queued), and otherwise suspend:
 *   - while the core steps the coroutine itself, the op yields the channel
 *     (the "park" marker): the core keeps the coroutine and steps it again
 *     from the event that brings what it waits for (READ, WRITE, WS_MSG,
 *     CLOSE), with no asyncio task or future involved;
 *   - when anything else drives it (an asyncio task), the op yields an
 *     asyncio future that the same events complete.
 * A coroutine that awaits anything else (a real future, asyncio.sleep) is
 * handed to its connection's host task (a Python asyncio.Task, see
 * cymongoose/asgi.py) and runs there to its end.
 *
 * Ownership: Connection.userdata -> _AsgiConn (per connection) ->
 * channels (list) -> _AsgiChannel -> Connection, the coroutine, its
 * context; an _AsgiOp -> its channel.  The cycles are broken when a
 * channel finishes and on the connection's CLOSE; all types take part in
 * the garbage collector.
 */
#ifndef CM_PY_ASGI_H
#define CM_PY_ASGI_H

#include "core.h"

/* Interned strings the bridge uses (keys, message types), per core. */
enum {
  S_TYPE, S_BODY, S_MORE_BODY, S_STATUS, S_HEADERS, S_BYTES, S_TEXT, S_CODE, S_REASON,
  S_SUBPROTOCOL,
  S_HTTP_REQUEST, S_HTTP_DISCONNECT, S_HTTP_RESPONSE_START, S_HTTP_RESPONSE_BODY,
  S_WS_CONNECT, S_WS_RECEIVE, S_WS_DISCONNECT, S_WS_ACCEPT, S_WS_SEND, S_WS_CLOSE,
  S_RECEIVE, S_SEND, S_SET_RESULT, S_DONE, S_CANCEL, S_BLOCKING, S_THROW,
  S_COUNT
};

typedef struct asgi_core asgi_core;
typedef struct asgi_conn asgi_conn;
typedef struct asgi_ch asgi_ch;

struct asgi_core {
  PyObject_HEAD                /* with on_event: a cm_py_c_handler (core.h) */
  cm_py_event_fn on_event;
  PyObject *app;
  PyObject *scopes;        /* the _AsgiScopeBuilder */
  PyObject *hooks;         /* the ASGIServer: _make_host, _handoff, _spawn, _report */
  PyObject *tls;           /* TlsOpts for accepted connections, or None */
  PyObject *state;         /* the lifespan state dict, copied into every scope */
  PyObject *disconnected;  /* ClientDisconnected, raised by send() once the client left */
  PyObject *cancelled;     /* asyncio.CancelledError */
  PyObject *create_future; /* loop.create_future, once started */
  PyObject *loop;
  PyObject *enter_task, *leave_task; /* asyncio's, to make the host current */
  PyObject *live;          /* set of channels whose application still runs */
  PyObject *empty_bytes;
  PyObject *last_headers;  /* asgi_send.c: the last response's header list (flat tuple) */
  PyObject *last_block;    /* and its header block (bytes) */
  PyObject *str[S_COUNT];
  PyTypeObject *conn_type, *ch_type, *op_type;
  PyTypeObject *connection_type; /* the module's Connection */
  unsigned long long inputs; /* READ, ACCEPT and CLOSE events so far (see asgi.py) */
  size_t stream_window;    /* send() waits while more is queued */
  uint64_t stream_body;    /* longer Content-Length bodies are streamed */
  uint64_t max_body;       /* chunked bodies (buffered whole) beyond this get 413 */
};

/* Per connection (its Connection.userdata). */
struct asgi_conn {
  PyObject_HEAD
  PyObject *channels;      /* list of the connection's live channels */
  PyObject *host, *inbox;  /* the idle host task and the future it awaits, or NULL */
  PyObject *client, *server; /* (ip, port, v6) tuples, read once */
};

enum { W_NONE, W_RECEIVE, W_SEND };

struct asgi_ch {
  PyObject_HEAD
  asgi_core *core;
  asgi_conn *cs;
  PyObject *conn;          /* the Connection */
  PyObject *coro, *ctx;    /* the application's coroutine and context, until finished */
  PyObject *host, *host_inbox; /* current_task() while stepped here; its inbox */
  PyObject *recv_waiter, *send_waiter; /* lists of futures of ops awaited from tasks */
  PyObject *request_body;  /* HTTP: the whole body, until receive() takes it */
  PyObject *inbox;         /* list of messages receive() returns, from inbox_head (or NULL) */
  Py_ssize_t inbox_head;
  PyObject *head;          /* WebSocket: the upgrade request's head, until accepted */
  PyObject *start_headers; /* HTTP: the header block of http.response.start (bytes) */
  PyObject *close_reason;  /* WebSocket: the client's close reason */
  int start_status;
  int close_code;          /* WebSocket: the client's close code (1006 until one came) */
  int waiting;             /* W_*: what a parked or waiting op needs */
  unsigned is_ws : 1;
  unsigned stepping : 1;   /* the core is stepping the coroutine right now */
  unsigned parked : 1;     /* the coroutine waits in an op; the core resumes it */
  unsigned task_mode : 1;  /* the coroutine runs in an asyncio task */
  unsigned finished : 1;   /* the application returned (or failed) */
  unsigned disconnected : 1;
  unsigned body_stream : 1; /* HTTP: receive() reads the body from the connection */
  unsigned streamed : 1;   /* HTTP: http_body_end() is still owed */
  unsigned has_start : 1;  /* HTTP: http.response.start received, head not written */
  unsigned started : 1;    /* HTTP: the head was written */
  unsigned complete : 1;   /* HTTP: the whole response was written */
  unsigned discarding : 1; /* HTTP: 204/304: further body messages are dropped */
  unsigned accepted : 1;   /* WebSocket: handshake done */
  unsigned closed : 1;     /* WebSocket: we sent websocket.close (or refused) */
};

/* asgi_scope.c: the "http" or "websocket" scope of hm (a new dict). */
PyObject *cm_py_asgi_scope(PyObject *builder, bool websocket, const struct cm_http_msg *hm,
                           bool tls, PyObject *client, PyObject *server, PyObject *state);

/* asgi_channel.c */
int cm_py_asgi_channel_exec(PyObject *m);
/* A new channel for conn (HTTP or WebSocket), added to cs's channels and
 * the core's live set. */
asgi_ch *cm_py_asgi_ch_new(asgi_core *core, asgi_conn *cs, PyObject *conn, bool ws);
/* Appends msg (not stolen) to what receive() returns.  0, or -1. */
int cm_py_asgi_inbox_put(asgi_ch *ch, PyObject *msg);
/* ch's receive and send as bound methods (new references).  0, or -1. */
int cm_py_asgi_ch_bound(asgi_ch *ch, PyObject **receive, PyObject **send);
/* Wakes what waits on ch for `what` (W_RECEIVE or W_SEND; W_NONE: any):
 * steps a parked coroutine, or completes the future a task awaits.
 * 0, or -1 with a BaseException to propagate. */
int cm_py_asgi_ch_wake(asgi_ch *ch, int what);
/* The client has gone: receive() gives the disconnect message from now on. */
int cm_py_asgi_ch_disconnect(asgi_ch *ch);
/* The application's coroutine ended: exc NULL, or the exception it raised
 * (reported unless ClientDisconnected/CancelledError); the response or the
 * WebSocket is completed (500, close).  0, or -1 with a BaseException
 * (KeyboardInterrupt...) to propagate. */
int cm_py_asgi_ch_finish(asgi_ch *ch, PyObject *exc);

/* The client's disconnect message of ch's kind (a new dict). */
PyObject *cm_py_asgi_disconnect_msg(asgi_ch *ch);

/* asgi_send.c */
/* ch's live connection, NULL once closed. */
static inline struct cm_conn *live_conn(asgi_ch *ch) { return ((cm_py_conn *)ch->conn)->c; }
/* send()'s work on message msg: 0 done, 1 done but send() must wait for
 * room (more than stream_window queued), -1 with an exception set. */
int cm_py_asgi_send(asgi_ch *ch, PyObject *msg);
/* send() must wait: more than stream_window bytes queued for the client. */
bool cm_py_asgi_send_full(asgi_ch *ch);
/* After the application returned (failed: it raised): a 500 if no response
 * was started, a drain if one was cut, a close frame (1000, 1011) or a 403
 * for a WebSocket.  0, or -1 with an exception set. */
int cm_py_asgi_finish_protocol(asgi_ch *ch, bool failed);

/* asgi_core.c: steps ch's coroutine (sending None, or throwing exc) until
 * it completes or suspends.  0, or -1 with a BaseException to propagate. */
int cm_py_asgi_step(asgi_ch *ch, PyObject *exc);
int cm_py_asgi_core_exec(PyObject *m);

#endif
