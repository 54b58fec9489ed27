/* A static file server on the C API: serves a directory with index.html,
 * ranges, 304s and precompressed .gz files, streaming with sendfile.
 * Usage: static_server [root_dir] [url]   (default . and http://127.0.0.1:8000) */
#include <signal.h>
#include <stdio.h>

#include "cymongoose.h"

static volatile sig_atomic_t stop;
static const char *root = ".";

static void on_signal(int sig) {
  (void)sig;
  stop = 1;
}

static void handler(struct cm_conn *c, int ev, void *ev_data) {
  if (ev != CM_EV_HTTP_MSG) return;
  struct cm_http_msg *hm = ev_data;
  struct cm_http_serve_dir_opts opts = {.root_dir = root, .extra_headers = "Cache-Control: no-cache\r\n"};
  int status = cm_http_serve_dir(c, hm, &opts);
  printf("%.*s %.*s -> %d\n", (int)hm->method.len, hm->method.buf, (int)hm->uri.len, hm->uri.buf, status);
}

int main(int argc, char **argv) {
  if (argc > 1) root = argv[1];
  const char *url = argc > 2 ? argv[2] : "http://127.0.0.1:8000";
  struct cm_mgr mgr;
  if (cm_mgr_init(&mgr) != 0) return 1;
  struct cm_conn *l = cm_http_listen(&mgr, url, handler, NULL, NULL);
  if (l == NULL) {
    perror(url);
    return 1;
  }
  printf("serving %s on port %u\n", root, l->loc.port);
  fflush(stdout);
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  while (!stop) cm_mgr_poll(&mgr, 1000);
  cm_mgr_free(&mgr);
  return 0;
}
