/* TCP echo server on the C API: every byte read is sent back.
 * Usage: echo_server [url]   (default tcp://127.0.0.1:9000) */
#include <signal.h>
#include <stdio.h>

#include "cymongoose.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig) {
  (void)sig;
  stop = 1;
}

static void echo(struct cm_conn *c, int ev, void *ev_data) {
  (void)ev_data;
  if (ev == CM_EV_READ) {
    /* Queue a copy of what arrived, then drop it from the receive buffer. */
    cm_send(c, cm_buf_data(&c->recv), c->recv.len);
    cm_recv_consume(c, c->recv.len);
  }
}

int main(int argc, char **argv) {
  const char *url = argc > 1 ? argv[1] : "tcp://127.0.0.1:9000";
  struct cm_mgr mgr;
  if (cm_mgr_init(&mgr) != 0) return 1;
  struct cm_conn *l = cm_listen(&mgr, url, echo, NULL);
  if (l == NULL) {
    perror(url);
    return 1;
  }
  printf("echo server on port %u\n", l->loc.port);
  fflush(stdout);
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  while (!stop) cm_mgr_poll(&mgr, 1000);
  cm_mgr_free(&mgr);
  return 0;
}
