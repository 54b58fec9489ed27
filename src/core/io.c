/*
 * The watcher: every epoll_ctl of the library is in this file, and the
 * interest a descriptor is registered with is decided in one function,
 * cm__io_interest(), from the connection's state.  Transports change state
 * (is_connecting, is_full, is_write_blocked...) and ask for an update;
 * they never pick epoll bits themselves.
 */
#include <errno.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "core/internal.h"

unsigned cm__io_interest(const struct cm_conn *c) {
  if (c->is_internal) return c->io.want;
  if (c->is_connecting) return EPOLLOUT; /* completion shows as writability */
  if (c->is_listening) {
    bool below_cap = c->mgr->max_conns == 0 || c->mgr->nconns < c->mgr->max_conns;
    return below_cap && !c->is_accept_paused ? EPOLLIN : 0;
  }
  unsigned want = 0;
  if (!c->is_draining && !c->is_closing && !cm__conn_reads_paused(c)) want |= EPOLLIN;
  /* Writability is asked for only while a write has been refused. */
  if (c->is_write_blocked && cm__conn_has_output(c)) want |= EPOLLOUT;
  return want;
}

int cm__io_start(struct cm_conn *c) {
  unsigned want = cm__io_interest(c);
  struct epoll_event ev = {.events = want, .data.ptr = c};
  if (epoll_ctl(c->mgr->epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0) return -1;
  c->io.events = want;
  return 0;
}

/*
 * Leaves the epoll set explicitly before close(): close() alone does not
 * when another process still holds the descriptor, and epoll would then
 * report events for freed memory.  Counting fork()s (pthread_atfork) to
 * skip this call is not enough: posix_spawn() and Python's subprocess use
 * vfork-like clones that run no fork handlers, and their child still holds
 * copies of CLOEXEC descriptors for a moment after the parent resumes (the
 * descriptors are closed late in exec).  tests/c/test_accept_cost.c and
 * test_http_server's curl runs under ASan catch it.
 */
void cm__io_stop(struct cm_conn *c) {
  epoll_ctl(c->mgr->epfd, EPOLL_CTL_DEL, c->fd, NULL);
  c->io.events = 0;
}

int cm__conn_update_interest(struct cm_conn *c) {
  if (c->fd < 0) return 0;
  unsigned want = cm__io_interest(c);
  if (want == c->io.events) return 0;
  struct epoll_event ev = {.events = want, .data.ptr = c};
  if (epoll_ctl(c->mgr->epfd, EPOLL_CTL_MOD, c->fd, &ev) != 0) {
    char err[128], msg[160];
    cm__errstr(errno, err, sizeof(err));
    if (c->is_internal) {
      /* The library's own descriptor: its owner times out what waited. */
      CM_ERROR("conn %lu (%s): epoll_ctl: %s", c->id, c->tp->name, err);
      return -1;
    }
    /* The connection would stall unseen (no readiness would ever come for
     * what it waits for): fail it, at the next flush. */
    snprintf(msg, sizeof(msg), "epoll_ctl: %s", err);
    cm__conn_defer_error(c, msg);
    return -1;
  }
  c->io.events = want;
  return 0;
}
