/* The self-pipe that lets a signal handler end the loop's wait: a byte
 * written to the pipe makes its read end readable, epoll_wait returns, and
 * the turn drains the pipe.  It costs nothing per turn (no signal masks).
 *
 * The read end is no connection (it would count against max_conns and show
 * in the connection list): it sits in the epoll set with the pipe's own
 * state as its data, which the turn recognises (cm__sigwake_is). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "core/internal.h"

struct cm__sigwake {
  int rfd, wfd;
};

void cm__sigwake_drain(struct cm_mgr *mgr) {
  char buf[256];
  while (read(mgr->sigwake->rfd, buf, sizeof(buf)) > 0) {
  }
}

void cm__sigwake_free(struct cm_mgr *mgr) {
  struct cm__sigwake *sw = mgr->sigwake;
  if (sw == NULL) return;
  mgr->sigwake = NULL;
  close(sw->rfd); /* leaves the epoll set with it */
  close(sw->wfd);
  free(sw);
}

int cm_mgr_signal_fd(struct cm_mgr *mgr) {
  if (mgr->sigwake != NULL) return mgr->sigwake->wfd;
  struct cm__sigwake *sw = calloc(1, sizeof(*sw));
  if (sw == NULL) return CM_ENOMEM;
  int fds[2];
  if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) {
    int err = errno;
    free(sw);
    return -err;
  }
  sw->rfd = fds[0];
  sw->wfd = fds[1];
  /* The one epoll_ctl outside io.c: this descriptor has no connection. */
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = sw};
  if (epoll_ctl(mgr->epfd, EPOLL_CTL_ADD, sw->rfd, &ev) != 0) {
    int err = errno;
    close(fds[0]);
    close(fds[1]);
    free(sw);
    errno = err;
    return -err;
  }
  mgr->sigwake = sw;
  return sw->wfd;
}
