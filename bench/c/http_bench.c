/* The C server of `make bench`: "/" answers "Hello, World!"; with --file,
 * "/file" (and any path starting so) serves that file with
 * cm_http_serve_file() (from disk, sendfile) and "/mem" the same bytes
 * loaded into memory at start (cm_http_reply); with --dir, every other
 * path is served from that directory with cm_http_serve_dir().  Optional
 * TLS.
 * Usage: http_bench URL [--file PATH] [--dir ROOT] [--cert PEM --key PEM]
 * Prints "listening PORT" once it listens; stops on SIGTERM/SIGINT. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cymongoose.h"

static volatile sig_atomic_t stop;
static char *file_buf;
static size_t file_len;
static const char *file_path;
static const char *dir_root;

static void on_signal(int sig) {
  (void) sig;
  stop = 1;
}

static char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *p = n < 0 ? NULL : malloc((size_t) n + 1);
  if (p != NULL && fread(p, 1, (size_t) n, f) != (size_t) n) {
    free(p);
    p = NULL;
  }
  fclose(f);
  *len = n < 0 ? 0 : (size_t) n;
  return p;
}

static void handler(struct cm_conn *c, int ev, void *ev_data) {
  if (ev != CM_EV_HTTP_MSG) return;
  struct cm_http_msg *hm = ev_data;
  if (hm->uri.len >= 5 && memcmp(hm->uri.buf, "/file", 5) == 0 && file_path != NULL) {
    cm_http_serve_file(c, hm, file_path, NULL);
  } else if (hm->uri.len == 4 && memcmp(hm->uri.buf, "/mem", 4) == 0 && file_buf != NULL) {
    cm_http_reply(c, 200, "Content-Type: application/octet-stream\r\n", file_buf, file_len);
  } else if (dir_root != NULL) {
    struct cm_http_serve_dir_opts opts = {.root_dir = dir_root};
    cm_http_serve_dir(c, hm, &opts);
  } else {
    cm_http_reply(c, 200, NULL, "Hello, World!", 13);
  }
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s URL [--file PATH] [--dir ROOT] [--cert PEM --key PEM]\n", argv[0]);
    return 2;
  }
  const char *cert = NULL, *key = NULL;
  for (int i = 2; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--file") == 0) {
      file_path = argv[i + 1];
      file_buf = slurp(file_path, &file_len);
    }
    else if (strcmp(argv[i], "--dir") == 0) dir_root = argv[i + 1];
    else if (strcmp(argv[i], "--cert") == 0) cert = argv[i + 1];
    else if (strcmp(argv[i], "--key") == 0) key = argv[i + 1];
  }
  struct cm_mgr mgr;
  if (cm_mgr_init(&mgr) != 0) return 1;
  struct cm_conn *l = cm_http_listen(&mgr, argv[1], handler, NULL, NULL);
  if (l == NULL) {
    perror(argv[1]);
    return 1;
  }
  if (cert != NULL) {
    size_t cl = 0, kl = 0;
    char *cp = slurp(cert, &cl), *kp = key != NULL ? slurp(key, &kl) : NULL;
    struct cm_tls_opts o = {.cert = cm_str_n(cp, cl), .key = cm_str_n(kp, kl)};
    char err[256];
    if (cp == NULL || cm_tls_listen_opts(l, &o, err, sizeof(err)) != 0) {
      fprintf(stderr, "tls: %s\n", cp == NULL ? "cannot read the certificate" : err);
      return 1;
    }
    free(cp);
    free(kp);
  }
  printf("listening %u\n", l->loc.port);
  fflush(stdout);
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  while (!stop) cm_mgr_poll(&mgr, 1000);
  cm_mgr_free(&mgr);
  free(file_buf);
  return 0;
}
