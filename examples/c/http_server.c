/* A minimal HTTP server on the C API: "/" says hello, "/echo" returns the
 * request body, anything else is 404.
 * Usage: http_server [url]   (default http://127.0.0.1:8000) */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cymongoose.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig) {
  (void)sig;
  stop = 1;
}

static bool uri_is(const struct cm_http_msg *hm, const char *s) {
  return hm->uri.len == strlen(s) && memcmp(hm->uri.buf, s, hm->uri.len) == 0;
}

static void handler(struct cm_conn *c, int ev, void *ev_data) {
  if (ev != CM_EV_HTTP_MSG) return;
  struct cm_http_msg *hm = ev_data;
  if (uri_is(hm, "/")) {
    cm_http_reply(c, 200, NULL, "hello\n", 6);
  } else if (uri_is(hm, "/echo")) {
    cm_http_reply(c, 200, "Content-Type: application/octet-stream\r\n", hm->body.buf, hm->body.len);
  } else {
    cm_http_reply(c, 404, NULL, "not found\n", 10);
  }
}

int main(int argc, char **argv) {
  const char *url = argc > 1 ? argv[1] : "http://127.0.0.1:8000";
  struct cm_mgr mgr;
  if (cm_mgr_init(&mgr) != 0) return 1;
  struct cm_conn *l = cm_http_listen(&mgr, url, handler, NULL, NULL);
  if (l == NULL) {
    perror(url);
    return 1;
  }
  printf("http server on port %u\n", l->loc.port);
  fflush(stdout);
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  while (!stop) cm_mgr_poll(&mgr, 1000);
  cm_mgr_free(&mgr);
  return 0;
}
