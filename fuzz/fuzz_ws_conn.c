/*
 * libFuzzer harness for the WebSocket protocol glue over real loopback
 * sockets: the input's first byte picks the role and whether
 * permessage-deflate is negotiated, the rest is what the peer sends after
 * the handshake.  Server role: a raw client sends the upgrade request, the
 * bytes, then its FIN.  Client role: a raw server answers 101, sends the
 * bytes and closes.  Either way our side must end the connection without
 * crashing, leaking or hanging (a hang aborts).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cymongoose.h"
#include "raw_peer.h"

static struct cm_mgr mgr;
static uint16_t ws_port, rogue_port;
static const uint8_t *input;
static size_t input_len;
static bool input_deflate;

static void server_fn(struct cm_conn *c, int ev, void *ev_data) {
  static const struct cm_ws_opts opts = {.compress = true, .limits = {.max_message_size = 4096}};
  if (ev == CM_EV_HTTP_MSG) {
    cm_ws_upgrade_opts(c, ev_data, NULL, &opts);
  } else if (ev == CM_EV_WS_MSG) {
    struct cm_ws_msg *m = ev_data;
    cm_ws_send(c, m->data.buf, m->data.len, CM_WS_MSG_OP(m->flags));
  }
}

/* Raw server for the client role: 101, then the input, then close. */
static void rogue_fn(struct cm_conn *c, int ev, void *ev_data) {
  (void)ev_data;
  if (ev != CM_EV_READ || c->is_listening) return;
  const char *req = (const char *)cm_buf_data(&c->recv);
  if (memmem(req, c->recv.len, "\r\n\r\n", 4) == NULL) return;
  const char *k = memmem(req, c->recv.len, "Sec-WebSocket-Key: ", 19);
  char accept[29] = "";
  if (k != NULL) cm_ws_accept_key(k + 19, 24, accept);
  cm_printf(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Accept: %s\r\n%s\r\n", accept,
            input_deflate ? "Sec-WebSocket-Extensions: permessage-deflate\r\n" : "");
  cm_send(c, input, input_len);
  cm_recv_consume(c, c->recv.len);
  cm_drain(c);
}

static void client_fn(struct cm_conn *c, int ev, void *ev_data) {
  (void)c, (void)ev_data;
  if (ev == CM_EV_WS_MSG) {
    struct cm_ws_msg *m = ev_data;
    cm_ws_send(c, m->data.buf, m->data.len, CM_WS_MSG_OP(m->flags));
  }
}

static void init(void) {
  if (cm_mgr_init(&mgr) != 0) abort();
  struct cm_conn *l = cm_http_listen(&mgr, "http://127.0.0.1:0", server_fn, NULL, NULL);
  struct cm_conn *r = cm_listen(&mgr, "tcp://127.0.0.1:0", rogue_fn, NULL);
  if (l == NULL || r == NULL) abort();
  ws_port = l->loc.port;
  rogue_port = r->loc.port;
}

static void run_server_role(const uint8_t *data, size_t len, bool deflate) {
  char req[300];
  int n = snprintf(req, sizeof(req),
                   "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                   "%s\r\n", deflate ? "Sec-WebSocket-Extensions: permessage-deflate\r\n" : "");
  fuzz_play_raw(&mgr, 2, ws_port, req, (size_t)n, data, len);
}

static void run_client_role(const uint8_t *data, size_t len, bool deflate) {
  input = data;
  input_len = len;
  input_deflate = deflate;
  char url[64];
  snprintf(url, sizeof(url), "ws://127.0.0.1:%u/", rogue_port);
  struct cm_ws_opts opts = {.compress = deflate, .limits = {.max_message_size = 4096}};
  if (cm_ws_connect_opts(&mgr, url, client_fn, NULL, NULL, &opts) == NULL) abort();
  fuzz_settle(&mgr, 2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static bool ready;
  if (!ready) {
    init();
    ready = true;
  }
  if (size < 1 || size > 70000) return 0;
  bool deflate = (data[0] & 1) != 0;
  if (data[0] & 2) {
    run_client_role(data + 1, size - 1, deflate);
  } else {
    run_server_role(data + 1, size - 1, deflate);
  }
  return 0;
}
