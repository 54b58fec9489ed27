/*
 * Built by `make test-install` against the installed library, with
 * pkg-config and with CMake, shared and static: a manager listens on a free
 * port, connects to itself and exchanges one message.  Also compiled as C99
 * with -pedantic, to keep the public headers portable.
 */
#include <stdio.h>
#include <string.h>

#include <cymongoose.h>

static int done;

static void on_server(struct cm_conn *c, int ev, void *ev_data) {
  (void)ev_data;
  if (ev == CM_EV_READ) { /* echo */
    cm_send(c, cm_buf_data(&c->recv), c->recv.len);
    cm_recv_consume(c, c->recv.len);
  }
}

static void on_client(struct cm_conn *c, int ev, void *ev_data) {
  (void)ev_data;
  if (ev == CM_EV_CONNECT) cm_send(c, "hello", 5);
  if (ev == CM_EV_READ && c->recv.len >= 5) {
    done = memcmp(cm_buf_data(&c->recv), "hello", 5) == 0 ? 1 : -1;
    cm_close(c);
  }
  if (ev == CM_EV_ERROR) done = -1;
}

int main(void) {
  struct cm_mgr mgr;
  char url[64];
  int i;
  struct cm_conn *l;
  if (cm_mgr_init(&mgr) != 0) return 1;
  l = cm_listen(&mgr, "tcp://127.0.0.1:0", on_server, NULL);
  if (l == NULL) return 1;
  snprintf(url, sizeof(url), "tcp://127.0.0.1:%u", (unsigned)l->loc.port);
  if (cm_connect(&mgr, url, on_client, NULL) == NULL) return 1;
  for (i = 0; i < 100 && done == 0; i++) cm_mgr_poll(&mgr, 50);
  cm_mgr_free(&mgr);
  printf("cymongoose %s: %s\n", CM_VERSION, done == 1 ? "ok" : "failed");
  return done == 1 ? 0 : 1;
}
