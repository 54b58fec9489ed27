/*
 * Manager: owns a struct cm_mgr and runs its loop from Python.
 *
 * The GIL is released only while cm_mgr_poll() blocks (the before_sleep and
 * after_sleep hooks), so every callback runs with it held and nothing else
 * can touch the manager while the core walks its structures.  Other threads
 * may use wakeup(), Timer.cancel() and timer_add() (see core.h).
 *
 * close() during poll() (from a handler, a timer or another thread) is
 * deferred until poll() returns, because the core is still using the
 * manager's memory.
 */
#include "args.h"
#include "core.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "mgr_methods.h"
#include <structmember.h>

static void hook_before_sleep(void *arg) {
  cm_py_manager *mo = arg;
  mo->sleeping = true; /* with the GIL: other threads read it with the GIL */
  mo->tstate = PyEval_SaveThread();
}

static void hook_after_sleep(void *arg) {
  cm_py_manager *mo = arg;
  PyEval_RestoreThread(mo->tstate);
  mo->tstate = NULL;
  mo->sleeping = false;
  mo->slept = true;
}

/* poll()'s signal check, called by the core with every signal blocked just
 * before a turn sleeps (cm_mgr_poll_checked): Python's handlers of the
 * signals caught so far run here; an exception from one of them ends the
 * turn without sleeping and poll() raises it. */
static int caught_signal(void *arg) {
  cm_py_manager *mo = arg;
  if (PyErr_CheckSignals() == 0) return 0;
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  PyErr_NormalizeException(&type, &value, &tb);
  if (tb != NULL && value != NULL) PyException_SetTraceback(value, tb);
  Py_XDECREF(type);
  Py_XDECREF(tb);
  if (mo->signal_exc == NULL) mo->signal_exc = value;
  else Py_XDECREF(value);
  return 1;
}

/* The signals held back between poll()'s last check and its wait: all but
 * the synchronous fault signals (a fault there must kill the process as
 * usual).  Set once by cm_py_manager_exec(). */
static sigset_t poll_block;

static void init_poll_block(void) {
  sigfillset(&poll_block);
  static const int faults[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS, SIGABRT};
  for (size_t i = 0; i < sizeof(faults) / sizeof(faults[0]); i++) sigdelset(&poll_block, faults[i]);
}

/* A turn that did not sleep kept the GIL; a loop that never sleeps (a
 * steady load) lets other threads in at the interpreter's switch interval,
 * as a sleeping one does on every turn. */
#define CM_PY_GIL_YIELD_MS 5
static void yield_gil(cm_py_manager *mo) {
  if (mo->slept) {
    mo->gil_released_ms = mo->mgr.now_ms;
    return;
  }
  if (mo->mgr.now_ms - mo->gil_released_ms < CM_PY_GIL_YIELD_MS) return;
  mo->gil_released_ms = mo->mgr.now_ms;
  Py_BEGIN_ALLOW_THREADS
  Py_END_ALLOW_THREADS
}

/* cm_mgr.on_output: output was queued outside poll(); tell the embedding
 * loop (AsyncManager) so that it polls soon.  Runs with the GIL held: only
 * Python code queues output outside poll(). */
static void hook_on_output(void *arg) {
  cm_py_manager *mo = arg;
  if (mo->output_hook == NULL) return;
  PyObject *res = PyObject_CallNoArgs(mo->output_hook);
  if (res == NULL) cm_py_report(mo);
  Py_XDECREF(res);
}

static int check_usable(cm_py_manager *mo) {
  if (!mo->ready || mo->closing || mo->close_requested) {
    PyErr_SetString(PyExc_RuntimeError, "Manager is closed");
    return -1;
  }
  return 0;
}

static int check_handler(PyObject *h, const char *what) {
  if (h != NULL && h != Py_None && !PyCallable_Check(h)) {
    PyErr_Format(PyExc_TypeError, "%s must be callable or None", what);
    return -1;
  }
  return 0;
}

/* signal.set_wakeup_fd(fd): the previous descriptor, or -2 with an
 * exception set.  Costs an fstat and an fcntl when fd >= 0. */
static int set_wakeup_fd(int fd) {
  PyObject *mod = PyImport_ImportModule("signal");
  if (mod == NULL) return -2;
  PyObject *r = PyObject_CallMethod(mod, "set_wakeup_fd", "i", fd);
  Py_DECREF(mod);
  if (r == NULL) return -2;
  long prev = PyLong_AsLong(r);
  Py_DECREF(r);
  if (prev == -1 && PyErr_Occurred()) return -2;
  return (int)prev;
}

/*
 * Python's signal wakeup descriptor pointed at the manager's signal pipe
 * (cm_mgr_signal_fd), so that a signal ends the wait whenever it comes,
 * with no signal mask work per turn.
 *
 * Each poll() in the main thread claims the slot for its wait (claim_wakeup)
 * when that is free of system calls: through PySignal_SetWakeupFd, which
 * interpreters export from 3.13 on (looked up at run time; 3.11 and 3.12
 * have it but hide it).  Without it, only run() claims, once for the whole
 * loop (signal.set_wakeup_fd costs an fstat and an fcntl), and poll()
 * outside run() keeps the guarded wait.
 *
 * The slot is taken only when it is empty or holds a Manager's descriptor
 * (managers polled in turn each put theirs there for their own wait); a
 * descriptor anybody else installed (asyncio's add_signal_handler, the
 * user's signal.set_wakeup_fd) is put back at once and that wait is guarded.
 * The descriptor handed to Python is a non-blocking dup owned by the
 * Manager: were it ever left behind, it still names a pipe.
 */
static int (*c_set_wakeup_fd)(int fd);  /* PySignal_SetWakeupFd, or NULL */
static bool claim_per_poll;            /* c_set_wakeup_fd, or forced by tests */
static int manager_wakeup_fd = -1;     /* the live Manager's descriptor that was
                                          last put in the slot (GIL) */

static void find_c_set_wakeup_fd(void) {
  c_set_wakeup_fd = (int (*)(int))dlsym(RTLD_DEFAULT, "PySignal_SetWakeupFd");
  claim_per_poll = c_set_wakeup_fd != NULL;
}

/* The slot's previous descriptor, or -2 (no exception left set). */
static int swap_wakeup_fd(int fd) {
  if (c_set_wakeup_fd != NULL) return c_set_wakeup_fd(fd);
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  int prev = set_wakeup_fd(fd);
  PyErr_Clear();
  PyErr_Restore(type, value, tb);
  return prev;
}

/* Puts this manager's descriptor in the slot (main thread); false when the
 * slot holds someone else's (left there) or on failure.  over_managers: a
 * Manager's descriptor may be replaced (per poll: each wait claims anew);
 * run()'s claim for the whole loop takes an empty slot only, since a run()
 * nested in a callback would otherwise leave the outer one without it. */
static bool claim_wakeup(cm_py_manager *mo, bool over_managers) {
  /* The slot is the process's; only the main interpreter's handlers use it. */
  if (PyInterpreterState_Get() != PyInterpreterState_Main()) return false;
  if (mo->wakeup_fd < 0) {
    int fd = cm_mgr_signal_fd(&mo->mgr);
    if (fd < 0) return false;
    mo->wakeup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0); /* shares O_NONBLOCK */
    if (mo->wakeup_fd < 0) return false;
  }
  int prev = swap_wakeup_fd(mo->wakeup_fd);
  if (prev == mo->wakeup_fd || prev == -1 ||
      (over_managers && prev >= 0 && prev == manager_wakeup_fd)) {
    manager_wakeup_fd = mo->wakeup_fd;
    return true;
  }
  if (prev >= 0) (void)swap_wakeup_fd(prev); /* someone else's: theirs again */
  return false;
}

/* Empties the slot if it still holds this manager's descriptor (a callback
 * may have installed another), then closes the descriptor.  From another
 * thread only through the C API (signal.set_wakeup_fd is main thread only);
 * otherwise the dup is left open, since Python may still write to it. */
static void give_back_wakeup(cm_py_manager *mo) {
  if (mo->wakeup_fd < 0) return;
  if (c_set_wakeup_fd == NULL && !_PyOS_IsMainThread()) return;
  if (manager_wakeup_fd == mo->wakeup_fd) {
    int now = swap_wakeup_fd(-1);
    if (now >= 0 && now != mo->wakeup_fd) (void)swap_wakeup_fd(now);
    manager_wakeup_fd = -1;
  }
  close(mo->wakeup_fd);
  mo->wakeup_fd = -1;
  mo->wakeup_held = false;
}

/* _mongoose._claim_wakeup_per_poll(flag): tests only.  Makes poll() claim
 * the slot on every call through signal.set_wakeup_fd where the C API is
 * missing, so that the logic runs on every interpreter.  Returns the
 * previous setting. */
static PyObject *mod_claim_per_poll(PyObject *mod, PyObject *arg) {
  (void)mod;
  int flag = PyObject_IsTrue(arg);
  if (flag < 0) return NULL;
  bool prev = claim_per_poll;
  claim_per_poll = c_set_wakeup_fd != NULL || flag;
  return PyBool_FromLong(prev);
}

static PyMethodDef wakeup_test_methods[] = {
    {"_claim_wakeup_per_poll", mod_claim_per_poll, METH_O,
     "Tests only: poll() claims the signal wakeup descriptor on every call."},
    {NULL, NULL, 0, NULL},
};

/* Frees the C manager: every connection gets CLOSE (and is detached), every
 * timer is released.  Waits for wakeup() calls still copying without the
 * GIL, since they use the manager's queue. */
static void do_close(cm_py_manager *mo) {
  if (!mo->ready || mo->closing) return;
  give_back_wakeup(mo); /* before the pipe goes with the manager */
  mo->closing = true;
  while (mo->wakeups_in_flight > 0) {
    Py_BEGIN_ALLOW_THREADS
    sched_yield();
    Py_END_ALLOW_THREADS
  }
  cm_py_mqtt_brokers_close(mo); /* before the C manager they use goes */
  cm_mgr_free(&mo->mgr);
  cm_py_conn_spares_free(mo); /* closing: no more came in meanwhile */
  Py_CLEAR(mo->access_logs); /* no connection is left to log */
  mo->ready = false;
  mo->closing = false;
  mo->close_requested = false;
}

void cm_py_core_leave(cm_py_manager *mo) {
  if (--mo->busy == 0 && mo->close_requested) do_close(mo);
}

/* ------------------------------------------------------------ lifecycle */

static int mgr_init(cm_py_manager *mo, PyObject *args, PyObject *kwds) {
  static char *kwlist[] = {"handler", "enable_wakeup", "error_handler", "dns",
                           "dns_timeout_ms", "poll_events", "poll_interval_ms", NULL};
  PyObject *handler = Py_None, *error_handler = Py_None;
  int enable_wakeup = 0;
  const char *dns = NULL;          /* DNS servers, "udp://IP:PORT,..." */
  unsigned int dns_timeout_ms = 0; /* 0: the default */
  int poll_events = 1;
  long long poll_interval_ms = CM_POLL_INTERVAL_MS;
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OpO$zIpL:Manager", kwlist, &handler,
                                   &enable_wakeup, &error_handler, &dns, &dns_timeout_ms,
                                   &poll_events, &poll_interval_ms)) {
    return -1;
  }
  if (poll_interval_ms < 0) {
    PyErr_SetString(PyExc_ValueError, "poll_interval_ms must be >= 0");
    return -1;
  }
  if (check_handler(handler, "handler") < 0) return -1;
  if (check_handler(error_handler, "error_handler") < 0) return -1;
  if (mo->ready) {
    PyErr_SetString(PyExc_RuntimeError, "Manager is already initialised");
    return -1;
  }
  mo->st = cm_py_state_of_type(Py_TYPE(mo));
  if (mo->st == NULL) return -1;
  Py_XSETREF(mo->handler, handler == Py_None ? NULL : Py_NewRef(handler));
  Py_XSETREF(mo->error_handler, error_handler == Py_None ? NULL : Py_NewRef(error_handler));
  if (cm_mgr_init(&mo->mgr) != 0) {
    PyErr_SetFromErrno(PyExc_OSError);
    return -1;
  }
  mo->wakeup_fd = -1;
  mo->wakeup_held = false;
  mo->ready = true;
  mo->mgr.userdata = mo;
  mo->mgr.hook_data = mo;
  mo->mgr.before_sleep = hook_before_sleep;
  mo->mgr.after_sleep = hook_after_sleep;
  mo->mgr.on_output = hook_on_output;
  mo->mgr.poll_off = !poll_events;
  mo->mgr.poll_interval_ms = (uint64_t)poll_interval_ms;
  if (enable_wakeup && cm_wakeup_init(&mo->mgr) != 0) {
    PyErr_SetFromErrno(PyExc_OSError);
    do_close(mo);
    return -1;
  }
  if (dns != NULL && cm_mgr_set_dns(&mo->mgr, dns) != 0) {
    PyErr_Format(PyExc_ValueError, "dns: expected a list of udp://IP[:PORT], got '%s'", dns);
    do_close(mo);
    return -1;
  }
  if (dns_timeout_ms != 0) cm_mgr_set_dns_timeout(&mo->mgr, dns_timeout_ms);
  return 0;
}

static int mgr_traverse(cm_py_manager *mo, visitproc visit, void *arg) {
  Py_VISIT(Py_TYPE(mo));
  Py_VISIT(mo->handler);
  Py_VISIT(mo->error_handler);
  Py_VISIT(mo->output_hook);
  Py_VISIT(mo->pending_exc);
  Py_VISIT(mo->signal_exc);
  for (int i = 0; i < mo->nspare_conns; i++) Py_VISIT((PyObject *)mo->spare_conns[i]);
  Py_VISIT(mo->brokers);
  Py_VISIT(mo->access_logs);
  if (mo->ready && !mo->closing) {
    for (struct cm_conn *c = mo->mgr.conns; c != NULL; c = c->next) {
      if (c->ext != NULL) Py_VISIT((PyObject *)c->ext);
    }
  }
  return cm_py_timers_traverse(mo, visit, arg);
}

static int mgr_clear(cm_py_manager *mo) {
  Py_CLEAR(mo->handler);
  Py_CLEAR(mo->error_handler);
  Py_CLEAR(mo->output_hook);
  Py_CLEAR(mo->pending_exc);
  Py_CLEAR(mo->signal_exc);
  Py_CLEAR(mo->brokers);
  cm_py_conn_spares_free(mo);
  if (!mo->ready) Py_CLEAR(mo->access_logs); /* connections may still log while open */
  return 0;
}

/* Runs before the garbage collector breaks a cycle and before dealloc:
 * closing delivers CLOSE to handlers, which is Python code. */
static void mgr_finalize(cm_py_manager *mo) {
  if (!mo->ready) return;
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  do_close(mo);
  if (cm_py_raise_pending(mo) < 0) PyErr_WriteUnraisable((PyObject *)mo);
  PyErr_Restore(type, value, tb);
}

static void mgr_dealloc(cm_py_manager *mo) {
  PyTypeObject *tp = Py_TYPE(mo);
  if (PyObject_CallFinalizerFromDealloc((PyObject *)mo) < 0) return; /* resurrected */
  PyObject_GC_UnTrack(mo);
  if (mo->weakreflist != NULL) PyObject_ClearWeakRefs((PyObject *)mo);
  mgr_clear(mo);
  tp->tp_free((PyObject *)mo);
  Py_DECREF(tp);
}

/* ------------------------------------------------------------ loop */

static PyObject *mgr_poll(cm_py_manager *mo, PyObject *const *args, Py_ssize_t nargs,
                          PyObject *kwnames) {
  long timeout = 0;
  PyObject *arg = nargs > 0 ? args[0] : NULL;
  Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
  if (nargs + nkw > 1) {
    PyErr_SetString(PyExc_TypeError, "poll() takes at most 1 argument");
    return NULL;
  }
  if (nkw == 1) {
    if (PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, 0), "timeout_ms") != 0) {
      PyErr_Format(PyExc_TypeError, "poll() got an unexpected keyword argument '%U'",
                   PyTuple_GET_ITEM(kwnames, 0));
      return NULL;
    }
    arg = args[0];
  }
  if (arg != NULL) {
    timeout = PyLong_AsLong(arg);
    if (timeout == -1 && PyErr_Occurred()) return NULL;
  }
  if (timeout < 0) timeout = 0;
  if (timeout > INT_MAX) timeout = INT_MAX;
  if (mo->polling) {
    PyErr_SetString(PyExc_RuntimeError, "Manager.poll() is not reentrant: it was called from a callback of this manager");
    return NULL;
  }
  if (check_usable(mo) < 0) return NULL;
  /* A signal caught after the last check and before the wait would
   * otherwise be seen only when the wait times out (Ctrl+C ignored for
   * timeout_ms).  Python's handlers run in the main thread only.  When
   * Python's own signal wakeup descriptor points at the manager's signal
   * pipe (claim_wakeup: every call where that is free, else under run()), a
   * signal at any moment ends the wait, at no cost per turn; the check
   * below runs the handlers of the signals caught before it pointed there.
   * Otherwise the core blocks signals, calls caught_signal() and waits
   * under the old mask, on the turns that really sleep
   * (cm_mgr_poll_checked: a turn with events ready pays nothing). */
  bool main_wait = timeout > 0 && _PyOS_IsMainThread();
  bool guard = main_wait && !(claim_per_poll ? claim_wakeup(mo, true) : mo->wakeup_held);
  if (main_wait && PyErr_CheckSignals() < 0) return NULL;
  Py_INCREF(mo);
  mo->polling = true;
  cm_py_core_enter(mo);
  mo->slept = false;
  if (guard) cm_mgr_poll_checked(&mo->mgr, (int)timeout, &poll_block, caught_signal, mo);
  else cm_mgr_poll(&mo->mgr, (int)timeout);
  if (timeout > 0) yield_gil(mo);
  mo->polling = false;
  cm_py_core_leave(mo);
  PyObject *sig = mo->signal_exc;
  mo->signal_exc = NULL;
  int rc = cm_py_raise_pending(mo);
  Py_DECREF(mo);
  if (sig != NULL) {
    /* The signal handler's exception wins; a callback's is its context. */
    if (rc < 0) {
      PyObject *t, *v, *tb;
      PyErr_Fetch(&t, &v, &tb);
      PyErr_NormalizeException(&t, &v, &tb);
      if (v != NULL) PyException_SetContext(sig, v);
      Py_XDECREF(t);
      Py_XDECREF(tb);
    }
    PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(sig)), sig, PyException_GetTraceback(sig));
    return NULL;
  }
  if (rc < 0) return NULL;
  if (PyErr_CheckSignals() < 0) return NULL;
  Py_RETURN_NONE;
}

static PyObject *mgr_stop_on_signal(PyObject *self, PyObject *args) {
  (void)args;
  ((cm_py_manager *)self)->stop_requested = true;
  Py_RETURN_NONE;
}

static PyMethodDef stop_on_signal_def = {
    "_stop_on_signal", mgr_stop_on_signal, METH_VARARGS,
    "Signal handler installed by Manager.run(): ends the loop."};

/* signal.signal(signum, handler) -> the previous handler (new ref), or NULL.
 * None (a handler not installed from Python, which cannot be put back)
 * restores SIG_DFL. */
static PyObject *set_signal(PyObject *signal_mod, int signum, PyObject *handler) {
  if (handler == Py_None) {
    PyObject *dfl = PyObject_GetAttrString(signal_mod, "SIG_DFL");
    if (dfl == NULL) return NULL;
    PyObject *r = PyObject_CallMethod(signal_mod, "signal", "iO", signum, dfl);
    Py_DECREF(dfl);
    return r;
  }
  return PyObject_CallMethod(signal_mod, "signal", "iO", signum, handler);
}

static PyObject *mgr_run(cm_py_manager *mo, PyObject *args, PyObject *kwds) {
  static char *kwlist[] = {"poll_ms", NULL};
  int poll_ms = 100;
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "|i:run", kwlist, &poll_ms)) return NULL;
  if (mo->busy > 0) {
    PyErr_SetString(PyExc_RuntimeError, "Manager.run() cannot be called from a callback");
    return NULL;
  }
  if (check_usable(mo) < 0) return NULL;
  PyObject *signal_mod = PyImport_ImportModule("signal");
  if (signal_mod == NULL) return NULL;
  PyObject *stop = PyCFunction_New(&stop_on_signal_def, (PyObject *)mo);
  if (stop == NULL) {
    Py_DECREF(signal_mod);
    return NULL;
  }
  PyObject *old_int = NULL, *old_term = NULL;
  old_int = set_signal(signal_mod, SIGINT, stop);
  if (old_int == NULL && PyErr_ExceptionMatches(PyExc_ValueError)) {
    PyErr_Clear(); /* not the main thread: run until close() */
  } else if (old_int != NULL) {
    old_term = set_signal(signal_mod, SIGTERM, stop);
  }
  PyObject *result = NULL;
  if (!PyErr_Occurred()) {
    PyObject *poll_arg = PyLong_FromLong(poll_ms);
    mo->stop_requested = false;
    if (old_int != NULL && !claim_per_poll) mo->wakeup_held = claim_wakeup(mo, false); /* main thread */
    while (poll_arg != NULL && mo->ready && !mo->stop_requested) {
      PyObject *r = mgr_poll(mo, &poll_arg, 1, NULL);
      if (r == NULL) break;
      Py_DECREF(r);
    }
    Py_XDECREF(poll_arg);
    if (!PyErr_Occurred()) result = Py_NewRef(Py_None);
  }
  /* Restore the handlers and close, keeping an exception from the loop. */
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  PyObject *r;
  if (old_term != NULL && (r = set_signal(signal_mod, SIGTERM, old_term)) != NULL) Py_DECREF(r);
  if (old_int != NULL && (r = set_signal(signal_mod, SIGINT, old_int)) != NULL) Py_DECREF(r);
  if (PyErr_Occurred()) PyErr_WriteUnraisable((PyObject *)mo);
  Py_XDECREF(old_int);
  Py_XDECREF(old_term);
  Py_DECREF(stop);
  Py_DECREF(signal_mod);
  give_back_wakeup(mo); /* also when another thread closed the manager */
  do_close(mo);
  PyErr_Restore(type, value, tb);
  if (result != NULL && cm_py_raise_pending(mo) < 0) Py_CLEAR(result);
  return result;
}

static PyObject *mgr_close(cm_py_manager *mo, PyObject *unused) {
  (void)unused;
  if (mo->busy > 0) {
    mo->close_requested = true; /* done once the core is back (cm_py_core_leave) */
    Py_RETURN_NONE;
  }
  do_close(mo);
  if (cm_py_raise_pending(mo) < 0) return NULL;
  Py_RETURN_NONE;
}

static PyObject *mgr_enter(cm_py_manager *mo, PyObject *unused) {
  (void)unused;
  return Py_NewRef(mo);
}

static PyObject *mgr_exit(cm_py_manager *mo, PyObject *args) {
  (void)args;
  PyObject *r = mgr_close(mo, NULL);
  if (r == NULL) return NULL;
  Py_DECREF(r);
  Py_RETURN_FALSE;
}

/* ------------------------------------------------------------ connections */

cm_py_conn *cm_py_conn_prepare(cm_py_manager *mo, PyObject *handler) {
  if (check_usable(mo) < 0) return NULL;
  if (check_handler(handler, "handler") < 0) return NULL;
  cm_py_conn *co = cm_py_conn_new(mo, handler);
  if (co != NULL) cm_py_core_enter(mo);
  return co;
}

PyObject *cm_py_conn_finish(cm_py_manager *mo, cm_py_conn *co, struct cm_conn *c,
                            const char *what, const char *url) {
  if (c == NULL) {
    int err = errno;
    Py_DECREF(co);
    cm_py_core_leave(mo);
    PyErr_Format(PyExc_RuntimeError, "Failed to %s %s: %s", what, url,
                 err != 0 ? strerror(err) : "unknown error");
    return NULL;
  }
  if (c->ext == NULL && co->c == NULL) cm_py_conn_attach(co, c); /* no event reached it yet */
  cm_py_core_leave(mo); /* may close the manager: co is detached then */
  if (cm_py_raise_pending(mo) < 0) {
    Py_DECREF(co);
    return NULL;
  }
  return (PyObject *)co;
}

/* True when url's scheme asks for HTTP parsing by default. */
static bool scheme_is_http(const char *url) {
  struct cm_str s = cm_url_scheme(url);
  static const char *const http_schemes[] = {"http", "https", "ws", "wss"};
  for (size_t i = 0; i < sizeof(http_schemes) / sizeof(http_schemes[0]); i++) {
    if (s.len == strlen(http_schemes[i]) && strncasecmp(s.buf, http_schemes[i], s.len) == 0) {
      return true;
    }
  }
  return false;
}

typedef struct cm_conn *(*open_fn)(struct cm_mgr *, const char *, cm_event_fn, void *);

/* An optional positive integer keyword (None or absent: 0, the default).
 * A timeout (zero_is_off) may also be 0: CM_HTTP_TIMEOUT_OFF, no timeout,
 * since the C API's 0 already means "the default". */
static int opt_num(PyObject *obj, const char *name, uint64_t *out, bool zero_is_off) {
  if (obj == NULL || obj == Py_None) return 0;
  unsigned long long v = PyLong_AsUnsignedLongLong(obj);
  if (v == (unsigned long long)-1 && PyErr_Occurred()) {
    if (PyErr_ExceptionMatches(PyExc_OverflowError)) {
      PyErr_Format(PyExc_ValueError, "%s must be a positive integer", name);
    }
    return -1;
  }
  if (v == 0 && zero_is_off) {
    *out = CM_HTTP_TIMEOUT_OFF;
    return 0;
  }
  if (v == 0) {
    PyErr_Format(PyExc_ValueError, "%s must be positive (None for the default)", name);
    return -1;
  }
  *out = v;
  return 0;
}

static int opt_u64(PyObject *obj, const char *name, uint64_t *out) {
  return opt_num(obj, name, out, false);
}

static int opt_timeout(PyObject *obj, const char *name, uint64_t *out) {
  return opt_num(obj, name, out, true);
}

static bool given(PyObject *o) { return o != NULL && o != Py_None; }

/* listen() and connect(): (url, handler=None, *, http=None, http_max_body=None,
 * http_max_head=None; for listen() http_header_timeout_ms, http_body_timeout_ms,
 * http_body_min_rate, http_idle_timeout_ms; for connect()
 * http_connect_timeout_ms, http_response_timeout_ms; all None by default, a
 * timeout 0 turns it off; for listen() also access_log=None,
 * access_log_format=None). */
static PyObject *open_conn(cm_py_manager *mo, PyObject *args, PyObject *kwds, open_fn fn,
                           const char *what) {
  static char *kwlist[] = {"url", "handler", "http", "http_max_body", "http_max_head",
                           "http_header_timeout_ms", "http_idle_timeout_ms",
                           "http_body_timeout_ms", "http_body_min_rate",
                           "http_connect_timeout_ms", "http_response_timeout_ms", "access_log",
                           "access_log_format", "reuse_port", "fd", NULL};
  const char *url;
  PyObject *handler = Py_None, *http_obj = Py_None;
  PyObject *max_body = NULL, *max_head = NULL, *hdr_timeout = NULL, *idle_timeout = NULL;
  PyObject *body_timeout = NULL, *body_rate = NULL, *conn_timeout = NULL, *resp_timeout = NULL;
  PyObject *access_log = NULL, *access_log_format = NULL, *fd_obj = Py_None;
  int reuse_port = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "s|O$OOOOOOOOOOOpO", kwlist, &url, &handler,
                                   &http_obj, &max_body, &max_head, &hdr_timeout, &idle_timeout,
                                   &body_timeout, &body_rate, &conn_timeout, &resp_timeout,
                                   &access_log, &access_log_format, &reuse_port, &fd_obj)) {
    return NULL;
  }
  bool is_listen = fn == cm_listen;
  if (cm_py_check_url(url, !is_listen) < 0) return NULL;
  if (!is_listen && (given(hdr_timeout) || given(idle_timeout) || given(body_timeout) ||
                     given(body_rate) || given(access_log) || given(access_log_format))) {
    PyErr_SetString(PyExc_TypeError, "connect() takes no server timeouts nor access log");
    return NULL;
  }
  if (!is_listen && (reuse_port || fd_obj != Py_None)) {
    PyErr_SetString(PyExc_TypeError, "connect() takes no reuse_port nor fd");
    return NULL;
  }
  int fd = -1;
  if (fd_obj != Py_None) {
    if (reuse_port) {
      PyErr_SetString(PyExc_TypeError, "listen() takes reuse_port or fd, not both");
      return NULL;
    }
    fd = PyObject_AsFileDescriptor(fd_obj); /* an int, or an object with fileno() */
    if (fd < 0) return NULL;
  }
  if (is_listen && (given(conn_timeout) || given(resp_timeout))) {
    PyErr_SetString(PyExc_TypeError, "listen() takes no client timeouts");
    return NULL;
  }
  struct cm_http_serve_opts opts = {0};
  uint64_t head = 0, connect_ms = 0, response_ms = 0;
  if (opt_u64(max_body, "http_max_body", &opts.limits.max_body) < 0 ||
      opt_u64(max_head, "http_max_head", &head) < 0 ||
      opt_timeout(hdr_timeout, "http_header_timeout_ms", &opts.header_timeout_ms) < 0 ||
      opt_timeout(idle_timeout, "http_idle_timeout_ms", &opts.idle_timeout_ms) < 0 ||
      opt_timeout(body_timeout, "http_body_timeout_ms", &opts.body_timeout_ms) < 0 ||
      opt_u64(body_rate, "http_body_min_rate", &opts.body_min_rate) < 0 ||
      opt_timeout(conn_timeout, "http_connect_timeout_ms", &connect_ms) < 0 ||
      opt_timeout(resp_timeout, "http_response_timeout_ms", &response_ms) < 0) {
    return NULL;
  }
  if (head > SIZE_MAX / 2) {
    PyErr_SetString(PyExc_ValueError, "http_max_head is too large");
    return NULL;
  }
  opts.limits.max_head = (size_t)head;
  if (is_listen && cm_py_access_log_opts(mo, access_log, access_log_format, &opts) < 0) return NULL;
  bool http = scheme_is_http(url);
  if (http_obj != Py_None) {
    int v = PyObject_IsTrue(http_obj);
    if (v < 0) return NULL;
    http = v;
  }
  /* fd: listen on a duplicate of a listening socket the caller keeps (a
   * supervisor's, shared by its worker processes: docs/deploy.md). */
  int own_fd = -1;
  if (fd >= 0 && (own_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0) {
    return PyErr_SetFromErrno(PyExc_OSError);
  }
  cm_py_conn *co = cm_py_conn_prepare(mo, handler);
  if (co == NULL) {
    if (own_fd >= 0) close(own_fd);
    return NULL;
  }
  co->http = http;
  errno = 0;
  /* reuse_port: SO_REUSEPORT, for worker processes sharing a port. */
  struct cm_listen_opts lo = {.reuse_port = reuse_port != 0};
  struct cm_conn *c = own_fd >= 0                ? cm_listen_fd(&mo->mgr, own_fd, cm_py_on_event, co)
                      : is_listen && reuse_port ? cm_listen_ex(&mo->mgr, url, cm_py_on_event, co, &lo)
                                                : fn(&mo->mgr, url, cm_py_on_event, co);
  if (c != NULL && http && cm_py_http_attach(co, c, &opts) < 0) {
    cm_close(c);
    cm_py_report(mo); /* the connection exists: report, then return it closing */
  } else if (c != NULL && http && !is_listen) {
    (void)cm_http_client_set_timeouts(c, connect_ms, response_ms);
  }
  return cm_py_conn_finish(mo, co, c, what, url);
}

static PyObject *mgr_listen(cm_py_manager *mo, PyObject *args, PyObject *kwds) {
  return open_conn(mo, args, kwds, cm_listen, "listen on");
}

static PyObject *mgr_connect(cm_py_manager *mo, PyObject *args, PyObject *kwds) {
  return open_conn(mo, args, kwds, cm_connect, "connect to");
}

/* ------------------------------------------------------------ timers, wakeup */

static PyObject *mgr_timer_add(cm_py_manager *mo, PyObject *const *args, Py_ssize_t nargs,
                               PyObject *kwnames) {
  return cm_py_timer_add(mo, args, nargs, kwnames);
}

/* Payloads at least this big are copied into the queue without the GIL. */
#define WAKEUP_NOGIL_BYTES 65536

static PyObject *mgr_wakeup(cm_py_manager *mo, PyObject *args, PyObject *kwds) {
  static char *kwlist[] = {"connection_id", "data", NULL};
  PyObject *id_obj, *data = NULL;
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|O:wakeup", kwlist, &id_obj, &data)) {
    return NULL;
  }
  unsigned long conn_id = PyLong_AsUnsignedLong(id_obj);
  if (conn_id == (unsigned long)-1 && PyErr_Occurred()) return NULL;
  Py_buffer view = {0};
  if (data != NULL && cm_py_buffer_get(data, &view, "data") < 0) return NULL;
  bool ok = false;
  if (mo->ready && !mo->closing && cm_wakeup_enabled(&mo->mgr)) {
    if (view.len >= WAKEUP_NOGIL_BYTES) {
      mo->wakeups_in_flight++; /* close() waits for it to come back */
      Py_BEGIN_ALLOW_THREADS
      ok = cm_wakeup(&mo->mgr, conn_id, view.buf, (size_t)view.len) == 0;
      Py_END_ALLOW_THREADS
      mo->wakeups_in_flight--;
    } else {
      ok = cm_wakeup(&mo->mgr, conn_id, view.buf, (size_t)view.len) == 0;
    }
  }
  if (view.obj != NULL) PyBuffer_Release(&view);
  return PyBool_FromLong(ok);
}

static PyObject *mgr_enable_wakeup(cm_py_manager *mo, PyObject *unused) {
  (void)unused;
  if (check_usable(mo) < 0) return NULL;
  int rc = cm_wakeup_init(&mo->mgr);
  if (rc != 0) {
    errno = -rc;
    return PyErr_SetFromErrno(PyExc_OSError);
  }
  Py_RETURN_NONE;
}

/* ------------------------------------------------------------ properties */

static PyObject *mgr_get_connections(cm_py_manager *mo, void *closure) {
  (void)closure;
  if (!mo->ready) return PyTuple_New(0);
  Py_ssize_t n = 0;
  for (struct cm_conn *c = mo->mgr.conns; c != NULL; c = c->next) {
    if (!c->is_internal && c->ext != NULL) n++;
  }
  PyObject *t = PyTuple_New(n);
  if (t == NULL) return NULL;
  /* The core keeps the newest first; list the oldest first. */
  Py_ssize_t i = n;
  for (struct cm_conn *c = mo->mgr.conns; c != NULL && i > 0; c = c->next) {
    if (!c->is_internal && c->ext != NULL) PyTuple_SET_ITEM(t, --i, Py_NewRef(c->ext));
  }
  return t;
}

static PyObject *mgr_get_wakeup_id(cm_py_manager *mo, void *closure) {
  (void)closure;
  return PyLong_FromUnsignedLong(mo->ready ? mo->mgr.wakeup_id : 0);
}

static PyObject *mgr_get_closed(cm_py_manager *mo, void *closure) {
  (void)closure;
  return PyBool_FromLong(!mo->ready);
}

static PyObject *mgr_get_handler(cm_py_manager *mo, void *closure) {
  PyObject *h = closure == NULL ? mo->handler : mo->error_handler;
  return Py_NewRef(h != NULL ? h : Py_None);
}

static int mgr_set_handler(cm_py_manager *mo, PyObject *v, void *closure) {
  if (check_handler(v, closure == NULL ? "handler" : "error_handler") < 0) return -1;
  PyObject **slot = closure == NULL ? &mo->handler : &mo->error_handler;
  Py_XSETREF(*slot, (v == NULL || v == Py_None) ? NULL : Py_NewRef(v));
  return 0;
}

/* Numeric limits of the C manager: recv_limit, send_limit, max_conns,
 * send_hwm, wakeup_max_bytes, wakeup_max_msgs. */
static size_t *limit_field(cm_py_manager *mo, void *closure) {
  switch ((int)(intptr_t)closure) {
    case 0: return &mo->mgr.recv_limit;
    case 1: return &mo->mgr.send_limit;
    case 3: return &mo->mgr.send_hwm;
    case 4: return &mo->mgr.wakeup_max_bytes;
    case 5: return &mo->mgr.wakeup_max_msgs;
    default: return &mo->mgr.max_conns;
  }
}

static PyObject *mgr_get_limit(cm_py_manager *mo, void *closure) {
  if (!mo->ready) return PyLong_FromLong(0);
  return PyLong_FromSize_t(*limit_field(mo, closure));
}

static int mgr_set_limit(cm_py_manager *mo, PyObject *v, void *closure) {
  if (v == NULL) {
    PyErr_SetString(PyExc_AttributeError, "cannot delete a limit");
    return -1;
  }
  if (check_usable(mo) < 0) return -1;
  size_t n = PyLong_AsSize_t(v);
  if (n == (size_t)-1 && PyErr_Occurred()) return -1;
  if ((int)(intptr_t)closure == 0 && n == 0) {
    PyErr_SetString(PyExc_ValueError, "recv_limit must be positive");
    return -1;
  }
  /* Atomic: wakeup() reads its bounds from other threads. */
  __atomic_store_n(limit_field(mo, closure), n, __ATOMIC_RELAXED);
  return 0;
}

static PyObject *mgr_get_poll_events(cm_py_manager *mo, void *closure) {
  (void)closure;
  return PyBool_FromLong(mo->ready && !mo->mgr.poll_off);
}

static int mgr_set_poll_events(cm_py_manager *mo, PyObject *v, void *closure) {
  (void)closure;
  if (v == NULL) {
    PyErr_SetString(PyExc_AttributeError, "cannot delete poll_events");
    return -1;
  }
  if (check_usable(mo) < 0) return -1;
  int on = PyObject_IsTrue(v);
  if (on < 0) return -1;
  mo->mgr.poll_off = !on;
  return 0;
}

static PyObject *mgr_get_poll_interval(cm_py_manager *mo, void *closure) {
  (void)closure;
  return PyLong_FromUnsignedLongLong(mo->ready ? mo->mgr.poll_interval_ms : 0);
}

static int mgr_set_poll_interval(cm_py_manager *mo, PyObject *v, void *closure) {
  (void)closure;
  if (v == NULL) {
    PyErr_SetString(PyExc_AttributeError, "cannot delete poll_interval_ms");
    return -1;
  }
  if (check_usable(mo) < 0) return -1;
  unsigned long long ms = PyLong_AsUnsignedLongLong(v);
  if (ms == (unsigned long long)-1 && PyErr_Occurred()) return -1;
  mo->mgr.poll_interval_ms = ms;
  return 0;
}

static PyObject *mgr_get_output_hook(cm_py_manager *mo, void *closure) {
  (void)closure;
  return Py_NewRef(mo->output_hook != NULL ? mo->output_hook : Py_None);
}

static int mgr_set_output_hook(cm_py_manager *mo, PyObject *v, void *closure) {
  (void)closure;
  if (v != NULL && check_handler(v, "output_hook") < 0) return -1;
  Py_XSETREF(mo->output_hook, v == NULL || v == Py_None ? NULL : Py_NewRef(v));
  return 0;
}

static PyObject *mgr_fileno(cm_py_manager *mo, PyObject *unused) {
  (void)unused;
  if (check_usable(mo) < 0) return NULL;
  return PyLong_FromLong(mo->mgr.epfd);
}

static PyGetSetDef mgr_getset[] = {
    {"output_hook", (getter)mgr_get_output_hook, (setter)mgr_set_output_hook,
     "Callable (no arguments) run when a connection gets output or a close queued\n"
     "outside poll(), or None.  Lets another event loop know it should poll soon.",
     NULL},
    {"connections", (getter)mgr_get_connections, NULL,
     "Tuple of the live connections (oldest first), internal ones excluded.", NULL},
    {"wakeup_id", (getter)mgr_get_wakeup_id, NULL,
     "Id of the internal wakeup connection, or 0 when wakeup is not enabled.", NULL},
    {"closed", (getter)mgr_get_closed, NULL, "True after close().", NULL},
    {"handler", (getter)mgr_get_handler, (setter)mgr_set_handler,
     "Default handler of connections that have none.", NULL},
    {"error_handler", (getter)mgr_get_handler, (setter)mgr_set_handler,
     "Called with exceptions raised by handlers and timer callbacks.", (void *)1},
    {"recv_limit", (getter)mgr_get_limit, (setter)mgr_set_limit,
     "Default recv_limit of new connections (bytes; 1 MiB).", (void *)0},
    {"send_limit", (getter)mgr_get_limit, (setter)mgr_set_limit,
     "Cap on a connection's queued output in bytes; 0: no cap.", (void *)1},
    {"max_conns", (getter)mgr_get_limit, (setter)mgr_set_limit,
     "Accepting pauses at this many connections; 0: no cap.", (void *)2},
    {"send_hwm", (getter)mgr_get_limit, (setter)mgr_set_limit,
     "send_hwm of accepted connections (bytes; 1 MiB): while a connection's queued\n"
     "output is at or above it, reading from it and HTTP/WebSocket processing pause.\n"
     "0: never.",
     (void *)3},
    {"wakeup_max_bytes", (getter)mgr_get_limit, (setter)mgr_set_limit,
     "wakeup() returns False while the queue holds this many bytes (payloads plus\n"
     "~32 bytes each; 64 MiB); 0: no cap.",
     (void *)4},
    {"wakeup_max_msgs", (getter)mgr_get_limit, (setter)mgr_set_limit,
     "wakeup() returns False while the queue holds this many messages (100000); 0: no cap.",
     (void *)5},
    {"poll_events", (getter)mgr_get_poll_events, (setter)mgr_set_poll_events,
     "True (default): handlers get MG_EV_POLL (see poll_interval_ms).  False: no POLL at\n"
     "all, so an idle connection costs nothing per poll.", NULL},
    {"poll_interval_ms", (getter)mgr_get_poll_interval, (setter)mgr_set_poll_interval,
     "MG_EV_POLL reaches every connection at the end of a poll() that waited its whole\n"
     "timeout with nothing to do, and otherwise at most once per this many ms (100);\n"
     "0: on every poll().", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef mgr_methods[] = {
    {"poll", (PyCFunction)(void (*)(void))mgr_poll, METH_FASTCALL | METH_KEYWORDS,
     "poll($self, /, timeout_ms=0)\n--\n\nOne turn of the loop: waits up to timeout_ms for activity "
     "(without the GIL), delivers events, runs due timers."},
    {"run", (PyCFunction)(void (*)(void))mgr_run, METH_VARARGS | METH_KEYWORDS,
     "run($self, /, poll_ms=100)\n--\n\nPolls until SIGINT or SIGTERM arrives (or close() is called), "
     "restores the previous signal handlers, then closes."},
    {"listen", (PyCFunction)(void (*)(void))mgr_listen, METH_VARARGS | METH_KEYWORDS,
     "listen($self, /, url, handler=None, *, http=None, http_max_body=None, http_max_head=None, "
     "http_header_timeout_ms=None, http_idle_timeout_ms=None, http_body_timeout_ms=None, "
     "http_body_min_rate=None, access_log=None, access_log_format=None, reuse_port=False, "
     "fd=None)\n--\n\n"
     "Listens on url.  The http_* options set the HTTP server's limits (defaults: body "
     "16 MiB -> 413, head 16 KiB -> 431, header timeout 30 s -> 408, body timeout 60 s "
     "plus 1 s per 500 bytes received -> 408, idle timeout 75 s -> close).  reuse_port: "
     "SO_REUSEPORT, so that several processes (each with its own Manager) listen on one "
     "port and the kernel spreads connections across them.  fd: listen on a duplicate of "
     "this listening socket (an int or an object with fileno(), which the caller keeps and "
     "closes), e.g. one a supervisor shares with its worker processes; url then gives only the "
     "scheme."},
    {"connect", (PyCFunction)(void (*)(void))mgr_connect, METH_VARARGS | METH_KEYWORDS,
     "connect($self, /, url, handler=None, *, http=None, http_max_body=None, http_max_head=None, "
     "http_connect_timeout_ms=None, http_response_timeout_ms=None)"
     "\n--\n\nConnects to url.  http_max_body and http_max_head limit the "
     "responses read (defaults 16 MiB and 16 KiB).  HTTP connections get MG_EV_ERROR "
     "'connect timed out' when not connected within http_connect_timeout_ms (30 s) and "
     "'response timed out' when silent for http_response_timeout_ms (60 s) while a "
     "response is awaited."},
#define CM_PY_MGR_METHODS_TABLE
#include "mgr_methods.h"
#undef CM_PY_MGR_METHODS_TABLE
    {"timer_add", (PyCFunction)(void (*)(void))mgr_timer_add, METH_FASTCALL | METH_KEYWORDS,
     "timer_add($self, /, milliseconds, callback, *, repeat=False, run_now=False)\n--\n\n"
     "Calls callback() after milliseconds (every milliseconds with repeat; at once too with "
     "run_now) and returns its Timer.  A 0 ms timer fires on the next poll."},
    {"wakeup", (PyCFunction)(void (*)(void))mgr_wakeup, METH_VARARGS | METH_KEYWORDS,
     "wakeup($self, /, connection_id, data=b'')\n--\n\nThread-safe: delivers WAKEUP with data "
     "to that connection in the loop thread.  False when wakeup is not enabled or the "
     "queue is full (wakeup_max_bytes, wakeup_max_msgs)."},
    {"fileno", (PyCFunction)mgr_fileno, METH_NOARGS,
     "fileno($self)\n--\n\nThe manager's epoll descriptor: it becomes readable when poll() has\n"
     "socket work to do (for loop.add_reader).  Timers do not make it readable."},
    {"enable_wakeup", (PyCFunction)mgr_enable_wakeup, METH_NOARGS,
     "enable_wakeup($self)\n--\n\nTurns on wakeup() (idempotent)."},
    {"close", (PyCFunction)mgr_close, METH_NOARGS,
     "close($self)\n--\n\nCloses every connection (CLOSE delivered), drops every timer and frees "
     "the manager.  Idempotent; deferred to the end of poll() when called during it."},
    {"__enter__", (PyCFunction)mgr_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)mgr_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef mgr_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(cm_py_manager, weakreflist), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot mgr_slots[] = {
    {Py_tp_doc, "Manager(handler=None, enable_wakeup=False, error_handler=None, *, dns=None, "
                "dns_timeout_ms=0)\n--\n\n"
                "An event loop owning connections and timers."},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_init, mgr_init},
    {Py_tp_dealloc, mgr_dealloc},
    {Py_tp_finalize, mgr_finalize},
    {Py_tp_traverse, mgr_traverse},
    {Py_tp_clear, mgr_clear},
    {Py_tp_methods, mgr_methods},
    {Py_tp_getset, mgr_getset},
    {Py_tp_members, mgr_members},
    {0, NULL},
};

static PyType_Spec mgr_spec = {
    .name = "cymongoose._mongoose.Manager",
    .basicsize = sizeof(cm_py_manager),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .slots = mgr_slots,
};

int cm_py_manager_exec(PyObject *m, cm_py_state *st) {
  init_poll_block();
  find_c_set_wakeup_fd();
  if (PyModule_AddFunctions(m, wakeup_test_methods) < 0) return -1;
  st->manager_type = (PyTypeObject *)PyType_FromModuleAndSpec(m, &mgr_spec, NULL);
  if (st->manager_type == NULL) return -1;
  return PyModule_AddType(m, st->manager_type);
}

int cm_py_core_exec(PyObject *m) {
  cm_py_state *st = PyModule_GetState(m);
  if (cm_py_manager_exec(m, st) < 0) return -1;
  if (cm_py_connection_exec(m, st) < 0) return -1;
  if (cm_py_timer_exec(m, st) < 0) return -1;
  return 0;
}
