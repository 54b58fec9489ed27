/* The event manager: one epoll set, one turn of the loop per cm_mgr_poll(). */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "core/internal.h"

/* Events taken from the kernel per epoll_wait. */
#define CM_MAX_EVENTS 256
/* Rounds of the flush step per poll; handlers that keep queueing work for
 * each other (WRITE -> send -> WRITE) continue at the next poll. */
#define CM_FLUSH_ROUNDS 4

int cm_mgr_init(struct cm_mgr *mgr) {
  memset(mgr, 0, sizeof(*mgr));
  mgr->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (mgr->epfd < 0) return -errno;
  mgr->next_id = 1;
  mgr->buf_pool_max = CM_BUF_POOL_MAX;
  mgr->recv_limit = 1024 * 1024;
  mgr->send_hwm = 1024 * 1024;
  mgr->wakeup_max_bytes = CM_WAKEUP_MAX_BYTES;
  mgr->wakeup_max_msgs = CM_WAKEUP_MAX_MSGS;
  mgr->tls_hs_timeout_ms = CM_TLS_HS_TIMEOUT_MS;
  mgr->poll_interval_ms = CM_POLL_INTERVAL_MS;
  mgr->closing_flush_ms = CM_CLOSING_FLUSH_MS;
  mgr->now_ms = cm_millis();
  mgr->last_poll_ms = mgr->now_ms;
  return 0;
}

/* Delivers CLOSE and frees c.  If accepting was paused at max_conns, the
 * listeners may now take the next connection. */
static void close_conn(struct cm_conn *c) {
  struct cm_mgr *mgr = c->mgr;
  CM_DEBUG("conn %lu: closed (%s)", c->id,
           c->is_eof ? "peer closed" : c->is_draining ? "drained after its last reply" : "by this side");
  if (c->is_internal) {
    if (c->pfn != NULL) c->pfn(c, CM_EV_CLOSE, NULL);
  } else {
    cm_call(c, CM_EV_CLOSE, NULL);
  }
  bool was_at_cap = mgr->max_conns != 0 && mgr->nconns >= mgr->max_conns;
  cm__conn_free(c);
  if (was_at_cap) {
    for (size_t i = 0; i < mgr->nlisteners; i++) cm__conn_update_interest(mgr->listeners[i]);
  }
}

/* Handles what handlers left behind: queued output is written straight away
 * (no epoll round trip), deferred errors delivered, drains and closes done. */
static void flush(struct cm_mgr *mgr) {
  for (int round = 0; round < CM_FLUSH_ROUNDS && mgr->dirty != NULL; round++) {
    struct cm_conn *list = mgr->dirty;
    mgr->dirty = NULL;
    while (list != NULL) {
      struct cm_conn *c = list;
      list = c->dirty_next;
      c->is_dirty = 0;
      c->dirty_next = NULL;
      if (c->deferred_error != NULL && !c->is_closing) {
        char *msg = c->deferred_error;
        c->deferred_error = NULL;
        cm_error(c, "%s", msg);
        free(msg);
      }
      if (c->is_poll_wanted && !c->is_closing) {
        c->is_poll_wanted = 0;
        uint64_t now = mgr->now_ms;
        if (c->pfn != NULL) c->pfn(c, CM_EV_POLL, &now);
      }
      if (!c->is_closing && !c->is_connecting && !c->is_resolving && !c->is_write_blocked &&
          c->tp->write != NULL && cm__conn_has_output(c))
        cm__conn_write(c);
      if (c->is_shut_wanted) cm__conn_shut_if_flushed(c);
      if (c->is_draining && (c->fd < 0 || !cm__conn_has_output(c))) c->is_closing = 1;
      else if (c->is_draining && !c->is_closing) cm__conn_drain_wait(c);
      if (c->is_closing) {
        if (c->is_dirty) continue; /* queued again by a handler; closes in a later round */
        close_conn(c);
      } else {
        cm__conn_update_interest(c);
      }
    }
  }
}

/* Readiness of c's descriptor, handed to its transport. */
static void dispatch(struct cm_conn *c, unsigned events) {
  c->is_readable = (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) != 0;
  c->is_writable = (events & EPOLLOUT) != 0;
  if (c->is_closing) return;
  const struct cm__transport *tp = c->tp;
  if (c->is_connecting) {
    tp->connected(c);
  } else if (tp->write == NULL) {
    /* Listeners and the library's own descriptors (wakeup eventfd,
     * resolver sockets): one callback for any readiness. */
    tp->read(c, events);
  } else {
    if (c->is_readable && !c->is_draining) tp->read(c, events);
    if (c->is_writable && !c->is_closing) {
      c->is_write_blocked = 0;
      cm__conn_write(c);
      if (c->is_draining && !cm__conn_has_output(c)) cm__conn_mark_dirty(c);
    }
    /* A hang-up while draining ends the wait for a peer that is gone. */
    if ((events & (EPOLLHUP | EPOLLERR)) && c->is_draining) {
      c->is_closing = 1;
      cm__conn_mark_dirty(c);
    }
  }
}

/* POLL to every connection's user handler (the application's periodic
 * hook).  Protocol handlers are left out: their deadlines are timers, and
 * what they need a POLL for they ask for (cm__conn_want_poll), so the walk
 * touches nothing but the connections themselves (not their protocol
 * state, nor the timer heap). */
static void deliver_poll(struct cm_mgr *mgr) {
  uint64_t now = mgr->now_ms;
  mgr->last_poll_ms = now;
  for (struct cm_conn *c = mgr->conns, *next; c != NULL; c = next) {
    next = c->next; /* POLL handlers may close c but never free it here */
    if (c->fn != NULL && !c->is_closing && !c->is_internal) c->fn(c, CM_EV_POLL, &now);
  }
}

/* How a turn waits when it has to sleep: the pselect pattern, either set up
 * by the caller (cm_mgr_poll_sigmask: signals already blocked, mask is the
 * one to wait under) or only when the turn really sleeps
 * (cm_mgr_poll_checked: block, ask caught(), wait, put the mask back). */
struct wait_guard {
  const sigset_t *mask;  /* cm_mgr_poll_sigmask */
  const sigset_t *block; /* cm_mgr_poll_checked */
  int (*caught)(void *arg);
  void *arg;
};

/* Sleeps at most wait_ms (> 0) between the hooks; returns as epoll_wait. */
static int sleep_wait(struct cm_mgr *mgr, struct epoll_event *events, int wait_ms,
                      const sigset_t *mask) {
  if (mgr->before_sleep != NULL) mgr->before_sleep(mgr->hook_data);
  int n = mask == NULL ? epoll_wait(mgr->epfd, events, CM_MAX_EVENTS, wait_ms)
                       : epoll_pwait(mgr->epfd, events, CM_MAX_EVENTS, wait_ms, mask);
  int err = errno;
  /* The caller's handlers run from here on, callbacks included. */
  if (mask != NULL) pthread_sigmask(SIG_SETMASK, mask, NULL);
  if (mgr->after_sleep != NULL) mgr->after_sleep(mgr->hook_data);
  errno = err;
  return n;
}

/* cm_mgr_poll_checked's wait: a look that cannot sleep first (a busy loop
 * pays one epoll_wait per turn, as cm_mgr_poll does); only when nothing is
 * ready does it pay for the guard (two pthread_sigmask calls).  *wait_ms
 * becomes the wait it really made (0 when it did not sleep). */
static int checked_wait(struct cm_mgr *mgr, struct epoll_event *events, int *wait_ms,
                        const struct wait_guard *g) {
  int planned = *wait_ms;
  *wait_ms = 0;
  int n = epoll_wait(mgr->epfd, events, CM_MAX_EVENTS, 0);
  if (n != 0) return n;
  sigset_t old;
  pthread_sigmask(SIG_BLOCK, g->block, &old);
  if (g->caught(g->arg) != 0) {
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = EINTR;
    return -1;
  }
  /* caught() ran signal handlers: they may have queued output or a timer. */
  int ms = mgr->dirty != NULL ? 0 : cm__timers_wait_ms(mgr, mgr->now_ms, planned);
  if (ms == 0) {
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return 0;
  }
  *wait_ms = ms;
  return sleep_wait(mgr, events, ms, &old);
}

static int poll_turn(struct cm_mgr *mgr, int timeout_ms, const struct wait_guard *g) {
  struct epoll_event events[CM_MAX_EVENTS];
  if (mgr->polling) {
    if (g->mask != NULL) pthread_sigmask(SIG_SETMASK, g->mask, NULL);
    errno = EBUSY;
    return -EBUSY;
  }
  mgr->polling = 1;
  mgr->now_ms = cm_millis();
  flush(mgr);
  int wait_ms = mgr->dirty != NULL ? 0 : cm__timers_wait_ms(mgr, mgr->now_ms, timeout_ms);
  int n;
  if (wait_ms == 0) {
    n = epoll_wait(mgr->epfd, events, CM_MAX_EVENTS, 0);
    if (g->mask != NULL) {
      int err = errno;
      pthread_sigmask(SIG_SETMASK, g->mask, NULL);
      errno = err;
    }
  } else if (g->caught != NULL) {
    n = checked_wait(mgr, events, &wait_ms, g);
  } else {
    n = sleep_wait(mgr, events, wait_ms, g->mask);
  }
  int err = errno;
  mgr->now_ms = cm_millis();
  for (int i = 0; i < n; i++) {
    if (events[i].data.ptr == (void *)mgr->sigwake) cm__sigwake_drain(mgr); /* (ptr never NULL) */
    else dispatch(events[i].data.ptr, events[i].events);
  }
  cm__timers_run(mgr, mgr->now_ms);
  /* An idle call (the wait ran to the caller's timeout, nothing happened)
   * gets its POLL, as every call did in the original; a busy loop gets it
   * at most once per interval, so a turn does not cost O(connections). */
  bool idle_call = n == 0 && wait_ms == timeout_ms;
  if (!mgr->poll_off &&
      (idle_call || mgr->now_ms - mgr->last_poll_ms >= mgr->poll_interval_ms)) {
    deliver_poll(mgr);
  }
  flush(mgr);
  mgr->polling = 0;
  if (n < 0) {
    /* Anything but a signal means the manager cannot wait (a descriptor
     * that is no epoll set, EFAULT...): the caller must hear of it, and the
     * log says it once, not once per turn of a loop that keeps trying. */
    if (err != EINTR && err != mgr->wait_errno) {
      char buf[128];
      CM_ERROR("epoll_wait: %s", cm__errstr(err, buf, sizeof(buf)));
    }
    mgr->wait_errno = err == EINTR ? mgr->wait_errno : err;
    errno = err;
    return -err;
  }
  mgr->wait_errno = 0;
  return 0;
}

int cm_mgr_poll(struct cm_mgr *mgr, int timeout_ms) {
  struct wait_guard g = {0};
  return poll_turn(mgr, timeout_ms, &g);
}

int cm_mgr_poll_sigmask(struct cm_mgr *mgr, int timeout_ms, const void *sigmask) {
  struct wait_guard g = {.mask = sigmask};
  return poll_turn(mgr, timeout_ms, &g);
}

int cm_mgr_poll_checked(struct cm_mgr *mgr, int timeout_ms, const void *block,
                        int (*caught)(void *arg), void *arg) {
  if (block == NULL || caught == NULL) return cm_mgr_poll(mgr, timeout_ms);
  struct wait_guard g = {.block = block, .caught = caught, .arg = arg};
  return poll_turn(mgr, timeout_ms, &g);
}

void cm__mgr_ext_add(struct cm_mgr *mgr, struct cm__mgr_ext *ext) {
  ext->next = mgr->exts;
  mgr->exts = ext;
}

void cm_mgr_free(struct cm_mgr *mgr) {
  if (mgr->epfd < 0 && mgr->conns == NULL) return;
  for (struct cm_conn *c = mgr->conns; c != NULL; c = c->next) c->is_closing = 1;
  while (mgr->conns != NULL) close_conn(mgr->conns);
  cm__timers_free(mgr);
  /* The layers' own state (TLS contexts, the resolver), now that nothing
   * refers to it. */
  while (mgr->exts != NULL) {
    struct cm__mgr_ext *ext = mgr->exts;
    mgr->exts = ext->next;
    ext->free(mgr); /* frees ext with the layer's state */
  }
  cm__wakeup_free(mgr);
  cm__sigwake_free(mgr);
  cm__buf_pool_free(mgr);
  cm__connmap_free(mgr);
  if (mgr->epfd >= 0) close(mgr->epfd);
  mgr->epfd = -1;
  mgr->dirty = NULL;
}
