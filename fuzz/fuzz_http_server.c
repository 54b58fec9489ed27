/*
 * libFuzzer harness of the HTTP server and client protocol handlers,
 * without sockets: the input is appended to a connection's receive buffer
 * in pieces, each followed by a READ event, as the socket layer would do.
 * Server: the application echoes bodies (plainly, chunked, or as SSE) so
 * replies, pipelining, chunked compaction and error replies all run.
 * Server requests to "/T..." are taken over after their head and served
 * again (cm_http_detach, cm_http_serve inside HTTP_HDRS).
 * Client: the input is a stream of responses to GET/HEAD requests, and the
 * peer closes at the end (bodies delimited by the close); it is also fed to
 * cm_http_client_track as raw requests first.
 * First byte: bit 7 client mode, bits 0-5 piece size.
 */
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "core/transport.h"

/* "/T..." requests are taken over after their head: HTTP detached, head
 * and whatever body is there consumed, HTTP attached again - all inside the
 * HDRS event, as a streaming upload handler may do. */
static void take_over(struct cm_conn *c, struct cm_http_msg *hm) {
  size_t head_end = (size_t) (hm->head.buf + hm->head.len - (const char *) cm_buf_data(&c->recv));
  uint64_t body = hm->framing == CM_HTTP_BODY_LENGTH ? hm->content_length : 0;
  cm_http_detach(c);
  cm_recv_consume(c, head_end);
  cm_recv_consume(c, c->recv.len < body ? c->recv.len : (size_t) body);
  cm_http_reply(c, 200, NULL, "taken", 5);
  cm_http_serve(c, NULL);
}

static void app(struct cm_conn *c, int ev, void *ev_data) {
  if (ev == CM_EV_HTTP_HDRS) {
    struct cm_http_msg *hm = ev_data;
    if (hm->uri.len > 1 && hm->uri.buf[1] == 'T') take_over(c, hm);
    return;
  }
  if (ev != CM_EV_HTTP_MSG) return;
  struct cm_http_msg *hm = ev_data;
  unsigned pick = hm->uri.len > 1 ? (unsigned char) hm->uri.buf[1] % 4 : 0;
  if (pick == 0) {
    cm_http_reply(c, 200, NULL, hm->body.buf, hm->body.len);
  } else if (pick == 1) {
    cm_http_reply(c, 200, "Transfer-Encoding: chunked\r\n", hm->body.buf, hm->body.len);
    cm_http_chunk(c, hm->query.buf, hm->query.len);
    cm_http_chunk(c, NULL, 0);
  } else if (pick == 2) {
    cm_http_reply(c, 200, "Transfer-Encoding: chunked\r\n", NULL, 0);
    cm_http_sse(c, hm->query, hm->body);
    cm_http_chunk(c, NULL, 0);
  } else {
    cm_http_reply(c, 204, NULL, NULL, 0);
  }
}

/* A connection with no descriptor: the bytes are put into c->recv by hand
 * and what is "written" is dropped from c->send, so no entry is called. */
static const struct cm__transport fuzz_transport = {.name = "fuzz"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  size_t step = 1 + data[0] % 64;
  bool client = (data[0] & 0x80) != 0;
  data++, size--;
  struct cm_mgr mgr;
  if (cm_mgr_init(&mgr) != 0) return 0;
  struct cm_conn *c = cm__conn_new(&mgr, -1, &fuzz_transport);
  if (c == NULL) {
    cm_mgr_free(&mgr);
    return 0;
  }
  struct cm_http_serve_opts opts = {.limits = {.max_head = 1024, .max_body = 4096, .max_headers = 8}};
  if (client) {
    c->is_client = 1;
    if (cm_http_client(c, &opts.limits) != 0) {
      cm_mgr_free(&mgr);
      return 0;
    }
    for (size_t i = 0; i < 8; i++) cm_http_request(c, (step >> (i % 6)) & 1 ? "HEAD" : "GET", "/", NULL, NULL, 0);
    /* The input also passes as raw requests "written" in pieces. */
    for (size_t off = 0; off < size; off += step) {
      cm_http_client_track(c, data + off, size - off < step ? size - off : step);
    }
  } else {
    c->is_accepted = 1;
    c->fn = app;
    if (cm_http_serve(c, &opts) != 0) {
      cm_mgr_free(&mgr);
      return 0;
    }
  }
  for (size_t off = 0; off < size && !c->is_closing && !c->is_draining; off += step) {
    size_t n = size - off < step ? size - off : step;
    if (c->recv.len + n > c->recv_limit) break; /* reading would pause here */
    if (cm_buf_append(&c->recv, data + off, n) != 0) break;
    cm_call(c, CM_EV_READ, &n);
    if (c->send.len > (1u << 20)) cm_buf_consume(&c->send, c->send.len); /* "written" */
  }
  uint64_t now = mgr.now_ms + 100000; /* timeouts fire */
  if (!c->is_closing) cm_call(c, CM_EV_POLL, &now);
  c->is_eof = 1; /* the peer closed: CLOSE completes an until-close body */
  cm_mgr_free(&mgr);
  return 0;
}
