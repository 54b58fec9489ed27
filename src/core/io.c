/*
 * The watcher (struct cm__io in each connection): every epoll_ctl of the
 * library is in this file.  It only carries out what it is told; what a
 * descriptor is watched for is decided in one place, cm__conn_interest()
 * (conn.c), from the connection's state.
 */
#include <sys/epoll.h>

#include "core/internal.h"

int cm__io_start(struct cm_conn *c, unsigned want) {
  struct epoll_event ev = {.events = want, .data.ptr = c};
  if (epoll_ctl(c->mgr->epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0) return -1;
  c->io.events = want;
  return 0;
}

int cm__io_change(struct cm_conn *c, unsigned want) {
  if (want == c->io.events) return 0;
  struct epoll_event ev = {.events = want, .data.ptr = c};
  if (epoll_ctl(c->mgr->epfd, EPOLL_CTL_MOD, c->fd, &ev) != 0) return -1;
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
