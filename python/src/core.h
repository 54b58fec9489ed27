/*
 * Private declarations shared by the core bindings: manager.c (Manager),
 * connection.c (Connection), timer.c (Timer) and dispatch.c (the event
 * trampoline and the routing of callback exceptions).
 *
 * Object graph and ownership:
 *   Manager --embeds--> struct cm_mgr --owns--> struct cm_conn
 *   struct cm_conn.ext --strong ref--> Connection     (until CLOSE returns)
 *   Connection.c --borrowed--> struct cm_conn          (NULL once detached)
 *   Manager.timers --strong ref--> Timer (while started and not released)
 *   Timer.mgr --borrowed--> Manager                    (while not released)
 * Manager's tp_traverse visits the Connections and Timers it keeps alive, so
 * cycles through handlers and callbacks (which usually reference the
 * manager) are found by the garbage collector; tp_finalize closes the
 * manager, which detaches every Connection and releases every Timer.
 */
#ifndef CM_PY_CORE_H
#define CM_PY_CORE_H

#include "module.h"

typedef struct cm_py_timer cm_py_timer;
typedef struct cm_py_conn cm_py_conn;

/* Connection objects a manager keeps for reuse (connection.c): a closed
 * one that nothing else refers to becomes the next connection's, sparing
 * an allocation, GC tracking and a free per connection. */
#define CM_PY_SPARE_CONNS 32

typedef struct {
  PyObject_HEAD
  struct cm_mgr mgr;        /* valid while ready */
  cm_py_state *st;          /* module state; the type keeps the module alive */
  PyObject *handler;        /* default handler, or NULL */
  PyObject *error_handler;  /* called with exceptions from callbacks, or NULL */
  PyObject *output_hook;    /* called when output is queued outside poll(), or NULL */
  PyObject *pending_exc;    /* a BaseException (KeyboardInterrupt, SystemExit)
                               raised by a callback; re-raised by the API call
                               that ran the callback */
  PyThreadState *tstate;    /* saved by the before_sleep hook */
  cm_py_timer *timers;      /* Python timers started and not yet released */
  PyObject *brokers;        /* list of open MqttBrokers (mqtt_broker.c), or NULL */
  PyObject *weakreflist;
  long wakeups_in_flight;   /* wakeup() calls copying without the GIL */
  int busy;                 /* depth of C calls that may run callbacks */
  bool ready;               /* cm_mgr_init() done and close() not yet */
  bool closing;             /* inside cm_mgr_free() */
  bool close_requested;     /* close() was called while busy */
  bool polling;             /* inside poll() */
  bool sleeping;            /* poll() is blocked in its wait without the GIL
                               (set and cleared with the GIL held) */
  bool stop_requested;      /* run(): a signal arrived */
  PyObject *signal_exc;     /* raised by a Python signal handler that ran
                               inside poll() (manager.c caught_signal) */
  bool slept;               /* the current poll() released the GIL to wait */
  bool wakeup_held;         /* run() put wakeup_fd in Python's signal wakeup
                               slot for the whole loop (manager.c claim_wakeup) */
  int wakeup_fd;            /* a dup of the manager's signal pipe handed to
                               Python, or -1 (manager.c claim_wakeup) */
  uint64_t gil_released_ms; /* poll() last let other threads run (mgr.now_ms) */
  PyObject *access_logs;    /* access_log.c: the sinks listeners log to, or NULL */
  cm_py_conn *spare_conns[CM_PY_SPARE_CONNS]; /* reset, detached; owned */
  int nspare_conns;
} cm_py_manager;

struct cm_py_conn {
  PyObject_HEAD
  struct cm_conn *c;       /* NULL once detached (after CLOSE) */
  PyObject *handler;       /* own or inherited handler; NULL: the manager's */
  PyObject *userdata;      /* NULL reads as None */
  PyObject *weakreflist;
  struct {                 /* c's identity, saved when detached */
    unsigned long id;
    struct cm_addr loc, rem;
    bool is_client, is_listening, is_udp, is_tls, is_websocket;
  } last;
  bool http;               /* HTTP parsing was asked for */
};

struct cm_py_timer {
  PyObject_HEAD
  struct cm_timer t;       /* storage given to cm_timer_start() */
  PyObject *callback;
  cm_py_manager *mgr;      /* borrowed; valid while started and not released */
  cm_py_timer *next, *prev;/* in mgr->timers */
  PyObject *weakreflist;
  bool started;
  bool released;           /* the manager let go of t */
};

/* The Manager that embeds m. */
static inline cm_py_manager *cm_py_manager_of(struct cm_mgr *m) {
  return (cm_py_manager *)((char *)m - offsetof(cm_py_manager, mgr));
}

/*
 * Brackets every call into the core from a Python entry point: the core may
 * run Python code from inside (events from cm_mgr_poll, cm_listen,
 * cm_connect, cm_error; the output hook; release hooks), and a callback
 * calling Manager.close() meanwhile must only request the close, which
 * cm_py_core_leave() performs once the outermost call is back.
 */
static inline void cm_py_core_enter(cm_py_manager *mo) { mo->busy++; }
void cm_py_core_leave(cm_py_manager *mo);

/* Exec functions creating the three types into the module state. */
int cm_py_manager_exec(PyObject *m, cm_py_state *st);
int cm_py_connection_exec(PyObject *m, cm_py_state *st);
int cm_py_timer_exec(PyObject *m, cm_py_state *st);

/* ---- dispatch.c */
/*
 * The C event handler of every connection made through the bindings.  Pass
 * it as fn to cm_listen()/cm_connect()/protocol connect functions, with
 * fn_data = a Connection from cm_py_conn_prepare().
 */
void cm_py_on_event(struct cm_conn *c, int ev, void *ev_data);
/*
 * Routes the current exception (which must be set) of a callback run by mo:
 * an Exception goes to mo->error_handler, else its traceback is printed;
 * other BaseExceptions are kept in mo->pending_exc for the API call that is
 * running the loop.  Clears the exception.  mo may be NULL (unraisable).
 */
void cm_py_report(cm_py_manager *mo);
/* Raises mo->pending_exc if set: returns -1 with it set, else 0. */
int cm_py_raise_pending(cm_py_manager *mo);
/*
 * Event handlers written in C.  A handler object that begins with
 * cm_py_c_handler, and whose type's tp_call is cm_py_c_handler_call, gets
 * its events from cm_py_on_event straight through on_event: no Python call,
 * no event number or data objects.  on_event receives the borrowed
 * Connection, the event and its C data (valid during the call only); it
 * sees every event, so it returns at once for those it has no use for.  It
 * returns 0, or -1 with an exception set, routed as a Python handler's
 * (cm_py_report).  Called from Python as handler(conn, ev, data), the same
 * on_event runs with ev_data taken back out of data: the message behind an
 * HttpMessage or WsMessage view, NULL for any other event.
 */
typedef int (*cm_py_event_fn)(PyObject *handler, cm_py_conn *co, int ev, void *ev_data);
typedef struct {
  PyObject_HEAD
  cm_py_event_fn on_event;
} cm_py_c_handler;
/* The tp_call slot of every C handler type (what marks it as one). */
PyObject *cm_py_c_handler_call(PyObject *self, PyObject *args, PyObject *kwargs);

/* ---- connection.c */
/* A new detached Connection of mo with the given handler (NULL or None:
 * none): one of mo's spares when it has one, as fresh as a new object. */
cm_py_conn *cm_py_conn_new(cm_py_manager *mo, PyObject *handler);
/* Binds co to c: c->ext takes a strong reference. */
void cm_py_conn_attach(cm_py_conn *co, struct cm_conn *c);
/* Unbinds co from its connection and drops c->ext's reference; when that
 * was the last one (no weak reference either), co becomes a spare of mo
 * instead of being freed, unless mo is closing or has enough. */
void cm_py_conn_detach(cm_py_manager *mo, cm_py_conn *co);
/* Frees mo's spare Connections (close, clear). */
void cm_py_conn_spares_free(cm_py_manager *mo);
/*
 * The bracket of a Connection method around its calls into the core on c
 * (which may run Python code: the output hook, events):
 * cm_py_conn_enter() references and enters c's manager and returns it;
 * cm_py_conn_leave() leaves it, performing a close() requested meanwhile (c
 * may be gone afterwards), and returns 0, or -1 with the BaseException a
 * callback left pending raised.
 */
cm_py_manager *cm_py_conn_enter(struct cm_conn *c);
int cm_py_conn_leave(cm_py_manager *mo);

/* ---- manager.c */
/*
 * For Manager methods that open connections (ws_connect, mqtt_connect, ...):
 * cm_py_conn_prepare() checks that mo is usable and returns a new Connection
 * to pass as fn_data with fn = cm_py_on_event (NULL with an exception set);
 * on success it has entered the core (cm_py_core_enter), so call it after
 * parsing arguments and always follow it with cm_py_conn_finish().
 * cm_py_conn_finish() takes the C function's result: on NULL it raises
 * RuntimeError naming what/url and errno, else it makes sure co is bound to c
 * and returns co.  Either way it consumes the reference to co and leaves the
 * core.
 */
cm_py_conn *cm_py_conn_prepare(cm_py_manager *mo, PyObject *handler);
PyObject *cm_py_conn_finish(cm_py_manager *mo, cm_py_conn *co, struct cm_conn *c,
                            const char *what, const char *url);

/* ---- mqtt_broker.c */
/* Closes mo's MqttBrokers (they must go before the C manager is freed). */
void cm_py_mqtt_brokers_close(cm_py_manager *mo);
/* ---- access_log.c */
/* Fills opts' access log from listen()'s access_log and access_log_format
 * arguments (NULL or None: none, "combined"); keeps the sink in mo.
 * 0, or -1 with an exception set. */
int cm_py_access_log_opts(cm_py_manager *mo, PyObject *sink, PyObject *format,
                          struct cm_http_serve_opts *opts);

/* ---- url_check.c */
/*
 * Checks url before it reaches the core: not empty, a known scheme when it
 * has one, a port in 0..65535 when it has one, and a host and a port (or a
 * scheme with a default port) when need_host (connect; a listener without
 * a host listens on every interface).
 * Returns 0, or -1 with ValueError naming the problem.
 */
int cm_py_check_url(const char *url, bool need_host);

/* ---- tls.c */
/* Fills *out from TlsOpts obj (TypeError naming tls if obj is anything
 * else).  The views point into obj's bytes: *keep gets a new reference to
 * obj, which the caller releases (Py_XDECREF) once the views are no longer
 * read; NULL on error.  0, or -1 with an exception set. */
int cm_py_tls_view(cm_py_state *st, PyObject *obj, struct cm_tls_opts *out, PyObject **keep);

/* ---- timer.c */
/* Visits the Timers mo keeps alive (for mo's tp_traverse). */
int cm_py_timers_traverse(cm_py_manager *mo, visitproc visit, void *arg);
/* Manager.timer_add(ms, callback, *, repeat=False, run_now=False). */
PyObject *cm_py_timer_add(cm_py_manager *mo, PyObject *const *args, Py_ssize_t nargs,
                          PyObject *kwnames);

/* ---- conn_http.c */
/*
 * Turns on HTTP parsing for c, a listener (children inherit it) or a client,
 * with opts (copied; a client uses only its limits).
 * Returns 0, or -1 with an exception set.
 */
int cm_py_http_attach(cm_py_conn *co, struct cm_conn *c, const struct cm_http_serve_opts *opts);

#endif
