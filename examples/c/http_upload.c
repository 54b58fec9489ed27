/* Uploads of any size in constant memory: "POST /upload" bodies are taken
 * over after their head (CM_EV_HTTP_HDRS) and consumed as they arrive, so the
 * server never holds more than one receive buffer of them (the HTTP layer
 * would otherwise keep the whole body, up to limits.max_body, for
 * CM_EV_HTTP_MSG).  The reply gives the byte count and CRC-32 of the body.
 * Anything else is answered normally.
 * Usage: http_upload [url]   (default http://127.0.0.1:8000) */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cymongoose.h"

static volatile sig_atomic_t stop;

/* Uploads may be of any size; other requests keep a small body limit
 * (checked in the handler), since the HTTP layer buffers their bodies. */
#define OTHER_MAX_BODY (1024 * 1024)
static const struct cm_http_serve_opts opts = {.limits = {.max_body = UINT64_MAX}};

static void on_signal(int sig) {
  (void)sig;
  stop = 1;
}

/* A body being received; c->fn_data while the upload lasts. */
struct upload {
  uint64_t remaining, total;
  uint32_t crc;
};

static void reply_text(struct cm_conn *c, int status, const char *text) {
  cm_http_reply(c, status, NULL, text, strlen(text));
}

static bool uri_is(const struct cm_http_msg *hm, const char *s) {
  return hm->uri.len == strlen(s) && memcmp(hm->uri.buf, s, hm->uri.len) == 0;
}

/* Consumes the body bytes in c->recv; replies and returns to HTTP once the
 * whole body is in. */
static void take_body(struct cm_conn *c, struct upload *up) {
  size_t n = c->recv.len < up->remaining ? c->recv.len : (size_t)up->remaining;
  up->crc = cm_crc32(up->crc, cm_buf_data(&c->recv), n);
  cm_recv_consume(c, n);
  up->remaining -= n;
  if (up->remaining > 0) return;
  char text[96];
  int len = snprintf(text, sizeof(text), "received %" PRIu64 " bytes, crc32 %08" PRIx32 "\n",
                     up->total, up->crc);
  cm_http_reply(c, 200, NULL, text, (size_t)len);
  free(up);
  c->fn_data = NULL;
  /* Back to HTTP for the next request on this connection. */
  if (cm_http_serve(c, &opts) != 0) cm_close(c);
}

/* The head of an upload arrived: leave the HTTP layer and stream the body. */
static void start_upload(struct cm_conn *c, struct cm_http_msg *hm) {
  struct upload *up = calloc(1, sizeof(*up));
  if (up == NULL) {
    reply_text(c, 500, "out of memory\n");
    cm_drain(c);
    return;
  }
  up->remaining = up->total = hm->content_length;
  /* The head ends where hm->head ends; body bytes may follow it already. */
  size_t head_end = (size_t)(hm->head.buf + hm->head.len - (const char *)cm_buf_data(&c->recv));
  bool expect = hm->expect_continue;
  cm_http_detach(c); /* hm stays readable: it points into c->recv */
  cm_recv_consume(c, head_end);
  if (expect && c->recv.len == 0) cm_printf(c, "HTTP/1.1 100 Continue\r\n\r\n");
  c->fn_data = up;
  take_body(c, up);
}

static void handler(struct cm_conn *c, int ev, void *ev_data) {
  struct upload *up = c->fn_data;
  if (ev == CM_EV_HTTP_HDRS) {
    struct cm_http_msg *hm = ev_data;
    if (uri_is(hm, "/upload") && hm->framing == CM_HTTP_BODY_LENGTH) {
      start_upload(c, hm);
    } else if (hm->content_length > OTHER_MAX_BODY || hm->framing == CM_HTTP_BODY_CHUNKED) {
      reply_text(c, 413, "only /upload takes big bodies\n");
      cm_drain(c);
    }
  } else if (ev == CM_EV_READ && up != NULL) {
    take_body(c, up);
  } else if (ev == CM_EV_HTTP_MSG) {
    struct cm_http_msg *hm = ev_data;
    if (uri_is(hm, "/upload")) {
      reply_text(c, 411, "POST /upload needs a Content-Length\n");
    } else {
      reply_text(c, 200, "POST a body to /upload\n");
    }
  } else if (ev == CM_EV_CLOSE && up != NULL) {
    free(up);
    c->fn_data = NULL;
  }
}

int main(int argc, char **argv) {
  const char *url = argc > 1 ? argv[1] : "http://127.0.0.1:8000";
  struct cm_mgr mgr;
  if (cm_mgr_init(&mgr) != 0) return 1;
  struct cm_conn *l = cm_http_listen(&mgr, url, handler, NULL, &opts);
  if (l == NULL) {
    perror(url);
    return 1;
  }
  printf("http upload server on port %u\n", l->loc.port);
  fflush(stdout);
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  while (!stop) cm_mgr_poll(&mgr, 1000);
  cm_mgr_free(&mgr);
  return 0;
}
