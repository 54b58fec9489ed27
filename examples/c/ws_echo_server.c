/* WebSocket echo server on the C API: GET /ws (any path) upgrades, every
 * message comes back with its opcode; other requests get a short page.
 * Usage: ws_echo_server [url] [--compress]   (default http://127.0.0.1:9001) */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cymongoose.h"

static volatile sig_atomic_t stop;
static struct cm_ws_opts ws_opts;

static void on_signal(int sig) {
  (void)sig;
  stop = 1;
}

static void handler(struct cm_conn *c, int ev, void *ev_data) {
  if (ev == CM_EV_HTTP_MSG) {
    struct cm_http_msg *hm = ev_data;
    if (!hm->upgrade || cm_ws_upgrade_opts(c, hm, NULL, &ws_opts) != 0) {
      if (!hm->upgrade) cm_http_reply(c, 200, NULL, "WebSocket echo server\n", 22);
    }
  } else if (ev == CM_EV_WS_MSG) {
    struct cm_ws_msg *wm = ev_data;
    cm_ws_send(c, wm->data.buf, wm->data.len, CM_WS_MSG_OP(wm->flags));
  }
}

int main(int argc, char **argv) {
  const char *url = "http://127.0.0.1:9001";
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--compress") == 0) ws_opts.compress = true;
    else url = argv[i];
  }
  struct cm_mgr mgr;
  if (cm_mgr_init(&mgr) != 0) return 1;
  struct cm_conn *l = cm_http_listen(&mgr, url, handler, NULL, NULL);
  if (l == NULL) {
    perror(url);
    return 1;
  }
  printf("ws echo server on port %u\n", l->loc.port);
  fflush(stdout);
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  while (!stop) cm_mgr_poll(&mgr, 1000);
  cm_mgr_free(&mgr);
  return 0;
}
