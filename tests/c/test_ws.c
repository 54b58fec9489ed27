/* The WebSocket protocol glue on loopback: our client against our server
 * in one manager, plus raw sockets for what our client would never send. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testutil.h"

/* ------------------------------------------------------------ fixtures */

struct side {
  int opens, msgs, ctls, errors, closes;
  uint8_t last_flags;
  uint8_t ctl_flags;
  char *last; /* copy of the last message */
  size_t last_len;
  unsigned close_code;
  char close_reason[128];
  char error[256];
};

static struct cm_mgr mgr;
static uint16_t port;
static struct side srv, cli;
static struct cm_ws_opts srv_opts;
static const char *srv_extra; /* extra headers of the 101 */
static bool srv_echo = true;

static void record(struct side *s, int ev, void *ev_data) {
  if (ev == CM_EV_WS_OPEN) s->opens++;
  if (ev == CM_EV_CLOSE) s->closes++;
  if (ev == CM_EV_ERROR) {
    s->errors++;
    snprintf(s->error, sizeof(s->error), "%s", (const char *)ev_data);
  }
  if (ev == CM_EV_WS_MSG) {
    struct cm_ws_msg *m = ev_data;
    s->msgs++;
    s->last_flags = m->flags;
    free(s->last);
    s->last = malloc(m->data.len + 1);
    memcpy(s->last, m->data.buf, m->data.len);
    s->last[m->data.len] = '\0';
    s->last_len = m->data.len;
  }
  if (ev == CM_EV_WS_CTL) {
    struct cm_ws_msg *m = ev_data;
    s->ctls++;
    s->ctl_flags = m->flags;
    if (CM_WS_MSG_OP(m->flags) == CM_WS_OP_CLOSE) {
      const uint8_t *p = (const uint8_t *)m->data.buf;
      s->close_code = m->data.len >= 2 ? (unsigned)(p[0] << 8 | p[1]) : 1005;
      snprintf(s->close_reason, sizeof(s->close_reason), "%.*s",
               m->data.len > 2 ? (int)m->data.len - 2 : 0, m->data.len > 2 ? m->data.buf + 2 : "");
    }
  }
}

static void server_fn(struct cm_conn *c, int ev, void *ev_data) {
  if (c->is_listening) return;
  record(&srv, ev, ev_data);
  if (ev == CM_EV_HTTP_MSG) {
    cm_ws_upgrade_opts(c, ev_data, srv_extra, &srv_opts);
  } else if (ev == CM_EV_WS_MSG && srv_echo) {
    struct cm_ws_msg *m = ev_data;
    assert_true(cm_ws_send(c, m->data.buf, m->data.len, CM_WS_MSG_OP(m->flags)) > 0);
  }
}

static void client_fn(struct cm_conn *c, int ev, void *ev_data) {
  (void)c;
  record(&cli, ev, ev_data);
}

static int setup(void **state) {
  (void)state;
  memset(&srv, 0, sizeof(srv));
  memset(&cli, 0, sizeof(cli));
  memset(&srv_opts, 0, sizeof(srv_opts));
  srv_extra = NULL;
  srv_echo = true;
  if (cm_mgr_init(&mgr) != 0) return -1;
  struct cm_conn *l = cm_http_listen(&mgr, "http://127.0.0.1:0", server_fn, NULL, NULL);
  if (l == NULL) return -1;
  port = l->loc.port;
  return 0;
}

static int teardown(void **state) {
  (void)state;
  cm_mgr_free(&mgr);
  free(srv.last);
  free(cli.last);
  srv.last = cli.last = NULL;
  return 0;
}

static bool poll_until(const int *counter, int want) {
  for (int i = 0; i < 3000 && *counter < want; i++) cm_mgr_poll(&mgr, 5);
  return *counter >= want;
}

static struct cm_conn *connect_client(const char *extra, const struct cm_ws_opts *opts) {
  char url[64];
  snprintf(url, sizeof(url), "ws://127.0.0.1:%u/chat?x=1", port);
  struct cm_conn *c = cm_ws_connect_opts(&mgr, url, client_fn, NULL, extra, opts);
  assert_non_null(c);
  assert_true(poll_until(&cli.opens, 1));
  assert_true(c->is_websocket);
  return c;
}

/* ------------------------------------------------------- our client/server */

static void test_echo_sizes(void **state) {
  (void)state;
  struct cm_conn *c = connect_client(NULL, NULL);
  assert_int_equal(srv.opens, 1);
  static const size_t sizes[] = {0, 1, 125, 126, 65535, 65536, 16u * 1024 * 1024};
  for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
    size_t n = sizes[i];
    uint8_t *buf = malloc(n + 1);
    for (size_t k = 0; k < n; k++) buf[k] = (uint8_t)(k * 31 + 7);
    int before = cli.msgs;
    assert_true(cm_ws_send(c, buf, n, CM_WS_OP_BINARY) >= (long)(n + 2));
    assert_true(poll_until(&cli.msgs, before + 1));
    assert_int_equal(cli.last_len, n);
    assert_int_equal(cli.last_flags, 0x82);
    assert_memory_equal(cli.last, buf, n);
    free(buf);
  }
  assert_true(cm_ws_send(c, "héllo", 6, CM_WS_OP_TEXT) > 0);
  assert_true(poll_until(&cli.msgs, 8));
  assert_string_equal(cli.last, "héllo");
  assert_int_equal(cli.last_flags, 0x81);
}

static void test_fragments_reassembled(void **state) {
  (void)state;
  struct cm_conn *c = connect_client(NULL, NULL);
  /* "é" split across two fragments, a ping in between. */
  assert_true(cm_ws_send(c, "ab\xc3", 3, CM_WS_OP_TEXT | CM_WS_SEND_MORE) > 0);
  assert_true(cm_ws_send(c, "p", 1, CM_WS_OP_PING) > 0);
  assert_true(cm_ws_send(c, "\xa9", 1, CM_WS_OP_CONTINUE | CM_WS_SEND_MORE) > 0);
  assert_true(cm_ws_send(c, "cd", 2, CM_WS_OP_CONTINUE) > 0);
  assert_true(poll_until(&cli.msgs, 1));
  assert_int_equal(srv.msgs, 1);
  assert_int_equal(srv.last_flags, 0x81); /* FIN | the first frame's opcode */
  assert_string_equal(srv.last, "ab\xc3\xa9" "cd");
  assert_int_equal(srv.ctls, 1); /* the ping */
  assert_true(poll_until(&cli.ctls, 1)); /* the pong */
  assert_int_equal(cli.ctl_flags, 0x8A);
  assert_string_equal(cli.last, "ab\xc3\xa9" "cd");
}

static void test_bad_sends_refused(void **state) {
  (void)state;
  struct cm_conn *c = connect_client(NULL, NULL);
  char big[126] = {0};
  assert_int_equal(cm_ws_send(c, big, sizeof(big), CM_WS_OP_PING), CM_EINVAL);
  assert_int_equal(cm_ws_send(c, "x", 1, 3), CM_EINVAL);
  assert_int_equal(cm_ws_send(c, "x", 1, CM_WS_OP_PING | CM_WS_SEND_MORE), CM_EINVAL);
  assert_int_equal(cm_ws_send(c, "x", 1, CM_WS_OP_CLOSE), CM_EINVAL);        /* 1-byte payload */
  assert_int_equal(cm_ws_send(c, "\x03\xed", 2, CM_WS_OP_CLOSE), CM_EINVAL); /* 1005 */
  assert_int_equal(cm_ws_close(c, 1006, NULL), CM_EINVAL);
  assert_int_equal(cm_ws_close(c, 999, NULL), CM_EINVAL);
}

static void test_close_from_client(void **state) {
  (void)state;
  struct cm_conn *c = connect_client(NULL, NULL);
  assert_true(cm_ws_close(c, 4001, "bye now") == 0);
  assert_int_equal(cm_ws_close(c, 1000, NULL), CM_EALREADY); /* once */
  assert_int_equal(cm_ws_send(c, "late", 4, CM_WS_OP_TEXT), CM_ECLOSED);
  assert_true(poll_until(&cli.closes, 1));
  assert_true(poll_until(&srv.closes, 1));
  assert_int_equal(srv.close_code, 4001);
  assert_string_equal(srv.close_reason, "bye now");
  assert_int_equal(cli.close_code, 4001); /* the echo */
  assert_int_equal(cli.errors + srv.errors, 0);
}

static void srv_close_on_msg(struct cm_conn *c, int ev, void *ev_data) {
  server_fn(c, ev, ev_data);
  if (ev == CM_EV_WS_MSG) assert_true(cm_ws_send(c, "\x03\xe8ok", 4, CM_WS_OP_CLOSE) > 0);
}

static void test_close_from_server(void **state) {
  (void)state;
  cm_mgr_free(&mgr);
  cm_mgr_init(&mgr);
  struct cm_conn *l = cm_http_listen(&mgr, "http://127.0.0.1:0", srv_close_on_msg, NULL, NULL);
  port = l->loc.port;
  srv_echo = false;
  struct cm_conn *c = connect_client(NULL, NULL);
  assert_true(cm_ws_send(c, "x", 1, CM_WS_OP_TEXT) > 0);
  assert_true(poll_until(&cli.closes, 1));
  assert_true(poll_until(&srv.closes, 1));
  assert_int_equal(cli.close_code, 1000);
  assert_string_equal(cli.close_reason, "ok");
  assert_int_equal(srv.close_code, 1000);
}

static void test_compression_and_subprotocol(void **state) {
  (void)state;
  srv_opts.compress = true;
  srv_extra = "Sec-WebSocket-Protocol: chat";
  struct cm_ws_opts o = {.compress = true};
  struct cm_conn *c = connect_client("Sec-WebSocket-Protocol: chat\r\n", &o);
  size_t n = 1u << 20;
  char *buf = malloc(n);
  for (size_t k = 0; k < n; k++) buf[k] = (char)('a' + k % 7);
  long queued = cm_ws_send(c, buf, n, CM_WS_OP_TEXT);
  assert_true(queued > 0 && (size_t)queued < n / 50); /* compressed on the wire */
  assert_true(poll_until(&cli.msgs, 1));
  assert_int_equal(cli.last_len, n);
  assert_memory_equal(cli.last, buf, n);
  assert_int_equal(cli.last_flags, 0x81);
  for (int i = 0; i < 5; i++) assert_true(cm_ws_send(c, "hello hello", 11, CM_WS_OP_TEXT) > 0);
  assert_true(poll_until(&cli.msgs, 6));
  assert_string_equal(cli.last, "hello hello");
  free(buf);
}

/* A compressed message that cannot be queued loses the connection (the
 * compressor's window has moved on): its ERROR comes from the next poll,
 * never from inside cm_ws_send(), whose caller may go on using c. */
static void test_compressed_send_refused_errors_later(void **state) {
  (void)state;
  srv_opts.compress = true;
  struct cm_ws_opts o = {.compress = true};
  struct cm_conn *c = connect_client(NULL, &o);
  mgr.send_limit = 64;
  uint8_t noise[4096];
  uint32_t x = 12345;
  for (size_t k = 0; k < sizeof(noise); k++) noise[k] = (uint8_t)((x = x * 1103515245u + 12345u) >> 16);
  assert_int_equal(cm_ws_send(c, noise, sizeof(noise), CM_WS_OP_BINARY), CM_ETOOBIG);
  assert_int_equal(cli.errors, 0); /* not from inside the call */
  assert_false(c->is_closing);
  assert_true(poll_until(&cli.closes, 1));
  assert_int_equal(cli.errors, 1);
  assert_string_equal(cli.error, "WebSocket: send buffer full");
  mgr.send_limit = 0;
}

static void test_client_refuses_unoffered_subprotocol(void **state) {
  (void)state;
  srv_extra = "Sec-WebSocket-Protocol: chat\r\n";
  char url[64];
  snprintf(url, sizeof(url), "ws://127.0.0.1:%u/", port);
  assert_non_null(cm_ws_connect(&mgr, url, client_fn, NULL, NULL));
  assert_true(poll_until(&cli.closes, 1));
  assert_int_equal(cli.opens, 0);
  assert_non_null(strstr(cli.error, "subprotocol"));
}

static void test_message_limit(void **state) {
  (void)state;
  srv_opts.limits.max_message_size = 1000;
  struct cm_conn *c = connect_client(NULL, NULL);
  char buf[1001] = {0};
  assert_true(cm_ws_send(c, buf, 1000, CM_WS_OP_BINARY) > 0); /* at the limit: fine */
  assert_true(poll_until(&cli.msgs, 1));
  /* over it, in fragments */
  assert_true(cm_ws_send(c, buf, 600, CM_WS_OP_BINARY | CM_WS_SEND_MORE) > 0);
  assert_true(cm_ws_send(c, buf, 401, CM_WS_OP_CONTINUE) > 0);
  assert_true(poll_until(&cli.closes, 1));
  assert_int_equal(cli.close_code, 1009);
  assert_int_equal(srv.errors, 1);
  assert_non_null(strstr(srv.error, "too big"));
}

/* ----------------------------------------------------------- raw sockets */

static int raw_connect(void) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
  fcntl(fd, F_SETFL, O_NONBLOCK);
  return fd;
}

static void raw_send(int fd, const void *p, size_t n) {
  assert_int_equal(send(fd, p, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* Reads until the peer closes (or want bytes, or a deadline), polling. */
static size_t raw_read(int fd, char *out, size_t cap, size_t want) {
  size_t got = 0;
  for (int i = 0; i < 3000 && got < want; i++) {
    cm_mgr_poll(&mgr, 2);
    ssize_t n = recv(fd, out + got, cap - 1 - got, 0);
    if (n == 0) break;
    if (n > 0) got += (size_t)n;
    if (got >= cap - 1) break;
  }
  out[got] = '\0';
  return got;
}

static const char *upgrade_req =
    "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/* An open raw connection: the 101 read. */
static int raw_open(void) {
  int fd = raw_connect();
  raw_send(fd, upgrade_req, strlen(upgrade_req));
  char buf[512];
  raw_read(fd, buf, sizeof(buf), 129);
  assert_non_null(strstr(buf, "101 Switching Protocols"));
  assert_non_null(strstr(buf, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
  return fd;
}

static size_t frame(uint8_t *out, int b0, const void *p, size_t n, bool masked) {
  static const uint8_t key[4] = {0x12, 0x34, 0x56, 0x78};
  size_t h = cm_ws_encode_header(out, b0, n, masked ? key : NULL);
  memcpy(out + h, p, n);
  if (masked) cm_ws_mask(out + h, n, key, 0);
  return h + n;
}

/* Expects a close frame with code as the last bytes before EOF. */
static void expect_close(int fd, unsigned code) {
  char buf[512];
  size_t n = raw_read(fd, buf, sizeof(buf), sizeof(buf));
  assert_true(n >= 4);
  assert_int_equal((uint8_t)buf[0], 0x88);
  assert_int_equal(((uint8_t)buf[2] << 8) | (uint8_t)buf[3], code);
  close(fd);
}

static void test_bad_handshakes(void **state) {
  (void)state;
  static const struct {
    const char *req;
    const char *status;
  } cases[] = {
      {"POST / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: upgrade\r\n"
       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
       "Content-Length: 0\r\n\r\n", "HTTP/1.1 400"},
      {"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: upgrade\r\n"
       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
       "HTTP/1.1 400"},
      {"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
       "HTTP/1.1 400"},
      {"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: upgrade\r\n"
       "Sec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n", "HTTP/1.1 400"},
      {"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: upgrade\r\n"
       "Sec-WebSocket-Version: 13\r\n\r\n", "HTTP/1.1 400"},
      {"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: upgrade\r\n"
       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",
       "HTTP/1.1 426"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    int fd = raw_connect();
    raw_send(fd, cases[i].req, strlen(cases[i].req));
    char buf[1024];
    raw_read(fd, buf, sizeof(buf), 40);
    assert_non_null(strstr(buf, cases[i].status));
    if (i == 5) assert_non_null(strstr(buf, "Sec-WebSocket-Version: 13\r\n"));
    close(fd);
  }
  assert_int_equal(srv.opens, 0);
}

static void test_unmasked_frame_1002(void **state) {
  (void)state;
  int fd = raw_open();
  uint8_t f[64];
  raw_send(fd, f, frame(f, 0x81, "hi", 2, false));
  expect_close(fd, 1002);
  assert_true(poll_until(&srv.closes, 1));
  assert_int_equal(srv.msgs, 0);
}

static void test_protocol_errors_1002(void **state) {
  (void)state;
  static const int bad_first[] = {0x83, 0x81 | CM_WS_RSV1, 0x09 /* ping, no FIN */, 0x80};
  for (size_t i = 0; i < sizeof(bad_first) / sizeof(bad_first[0]); i++) {
    int fd = raw_open();
    uint8_t f[64];
    raw_send(fd, f, frame(f, bad_first[i], "x", 1, true));
    expect_close(fd, 1002);
  }
  /* control payload of 126 bytes */
  int fd = raw_open();
  uint8_t big[126] = {0}, f[200];
  raw_send(fd, f, frame(f, 0x89, big, sizeof(big), true));
  expect_close(fd, 1002);
  /* a new message inside a fragmented one */
  fd = raw_open();
  size_t n = frame(f, 0x01, "a", 1, true);
  n += frame(f + n, 0x81, "b", 1, true);
  raw_send(fd, f, n);
  expect_close(fd, 1002);
}

static void test_invalid_utf8_1007(void **state) {
  (void)state;
  int fd = raw_open();
  uint8_t f[64];
  raw_send(fd, f, frame(f, 0x81, "\xff", 1, true));
  expect_close(fd, 1007);
  /* split across fragments: a truncated character at the end */
  fd = raw_open();
  size_t n = frame(f, 0x01, "ok\xe2\x82", 4, true);
  n += frame(f + n, 0x80, "", 0, true);
  raw_send(fd, f, n);
  expect_close(fd, 1007);
  /* close reason */
  fd = raw_open();
  raw_send(fd, f, frame(f, 0x88, "\x03\xe8\xc0\x80", 4, true));
  expect_close(fd, 1007);
  assert_int_equal(srv.msgs, 0);
}

static void test_oversize_frame_1009_before_payload(void **state) {
  (void)state;
  srv_opts.limits.max_message_size = 4096;
  int fd = raw_open();
  uint8_t hdr[CM_WS_MAX_HEADER];
  static const uint8_t key[4] = {1, 2, 3, 4};
  /* Only the header of a 1 GiB frame: refused without waiting for it. */
  raw_send(fd, hdr, cm_ws_encode_header(hdr, 0x82, 1u << 30, key));
  expect_close(fd, 1009);
}

static void test_ping_pong_and_close_echo_raw(void **state) {
  (void)state;
  int fd = raw_open();
  uint8_t f[300];
  size_t n = frame(f, 0x89, "abc", 3, true);
  n += frame(f + n, 0x88, "\x0f\xa0" "done", 6, true);
  n += frame(f + n, 0x81, "ignored", 7, true); /* after the close: dropped */
  raw_send(fd, f, n);
  char buf[256];
  size_t got = raw_read(fd, buf, sizeof(buf), sizeof(buf));
  assert_int_equal(got, 5 + 4);
  assert_memory_equal(buf, "\x8a\x03" "abc" "\x88\x02\x0f\xa0", 9);
  assert_int_equal(srv.ctls, 2);
  assert_int_equal(srv.close_code, 4000);
  assert_string_equal(srv.close_reason, "done");
  assert_int_equal(srv.msgs, 0);
  close(fd);
}

/* A raw server that answers the handshake correctly and then misbehaves. */
static const char *rogue_tail;
static size_t rogue_tail_len;
static const char *rogue_accept = NULL;
static bool rogue_close; /* close after sending the tail */

static void rogue_fn(struct cm_conn *c, int ev, void *ev_data) {
  (void)ev_data;
  if (ev != CM_EV_READ || c->is_listening) return;
  char *req = (char *)cm_buf_data(&c->recv);
  if (memmem(req, c->recv.len, "\r\n\r\n", 4) == NULL) return;
  char *k = memmem(req, c->recv.len, "Sec-WebSocket-Key: ", 19);
  assert_non_null(k);
  char accept[29];
  assert_int_equal(cm_ws_accept_key(k + 19, 24, accept), 0);
  cm_printf(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Accept: %s\r\n\r\n", rogue_accept ? rogue_accept : accept);
  cm_send(c, rogue_tail, rogue_tail_len);
  cm_recv_consume(c, c->recv.len);
  if (rogue_close) cm_drain(c);
}

static void run_rogue(const char *tail, size_t len, const char *accept) {
  rogue_tail = tail;
  rogue_tail_len = len;
  rogue_accept = accept;
  struct cm_conn *l = cm_listen(&mgr, "tcp://127.0.0.1:0", rogue_fn, NULL);
  char url[64];
  snprintf(url, sizeof(url), "ws://127.0.0.1:%u/", l->loc.port);
  assert_non_null(cm_ws_connect(&mgr, url, client_fn, NULL, NULL));
  assert_true(poll_until(&cli.closes, 1));
}

static void test_client_rejects_masked_server_frame(void **state) {
  (void)state;
  uint8_t f[64];
  size_t n = frame(f, 0x81, "hi", 2, true);
  run_rogue((const char *)f, n, NULL);
  assert_int_equal(cli.opens, 1);
  assert_int_equal(cli.msgs, 0);
  assert_non_null(strstr(cli.error, "masked frame from a server"));
}

static void test_client_rejects_wrong_accept(void **state) {
  (void)state;
  run_rogue("", 0, "AAAAAAAAAAAAAAAAAAAAAAAAAAA=");
  assert_int_equal(cli.opens, 0);
  assert_non_null(strstr(cli.error, "Sec-WebSocket-Accept"));
}

static void test_client_frames_are_masked(void **state) {
  (void)state;
  /* Our client's frames carry a mask: the server would refuse them otherwise;
   * two sends of the same payload use different keys. */
  struct cm_conn *c = connect_client(NULL, NULL);
  cm_ws_send(c, "same", 4, CM_WS_OP_TEXT);
  uint8_t first[10];
  memcpy(first, cm_buf_data(&c->send), 10);
  cm_ws_send(c, "same", 4, CM_WS_OP_TEXT);
  const uint8_t *second = cm_buf_data(&c->send) + 10;
  assert_int_equal(first[1], 0x84);
  assert_true(memcmp(first + 2, second + 2, 4) != 0);
  assert_true(poll_until(&cli.msgs, 2));
}

static void test_timeouts(void **state) {
  (void)state;
  /* A server that never answers the handshake. */
  struct cm_conn *l = cm_listen(&mgr, "tcp://127.0.0.1:0", NULL, NULL);
  char url[64];
  snprintf(url, sizeof(url), "ws://127.0.0.1:%u/", l->loc.port);
  struct cm_ws_opts o = {.handshake_timeout_ms = 50};
  assert_non_null(cm_ws_connect_opts(&mgr, url, client_fn, NULL, NULL, &o));
  assert_true(poll_until(&cli.closes, 1));
  assert_non_null(strstr(cli.error, "timed out"));
  /* A client that never answers our close: the server closes anyway. */
  cm_mgr_free(&mgr);
  cm_mgr_init(&mgr);
  l = cm_http_listen(&mgr, "http://127.0.0.1:0", srv_close_on_msg, NULL, NULL);
  port = l->loc.port;
  srv_echo = false;
  srv_opts.close_timeout_ms = 50;
  int fd = raw_open();
  uint8_t f[64];
  raw_send(fd, f, frame(f, 0x81, "x", 1, true));
  expect_close(fd, 1000); /* reads until the server's EOF */
  assert_true(poll_until(&srv.closes, 1));
  assert_int_equal(srv.ctls, 0);
}

static uint32_t rnd_state = 2463534242u;
static uint32_t rnd(void) {
  rnd_state ^= rnd_state << 13;
  rnd_state ^= rnd_state >> 17;
  rnd_state ^= rnd_state << 5;
  return rnd_state;
}

static void test_client_survives_random_server_bytes(void **state) {
  (void)state;
  /* Mostly frame-shaped garbage: plausible first bytes, short lengths. */
  static const uint8_t firsts[] = {0x81, 0x82, 0x01, 0x00, 0x80, 0x88, 0x89, 0x8a, 0xc1, 0x83};
  rogue_close = true;
  for (int i = 0; i < 150; i++) {
    uint8_t tail[512];
    size_t n = 0;
    int frames = (int)(rnd() % 4);
    for (int k = 0; k < frames; k++) {
      uint8_t payload[120];
      size_t plen = rnd() % sizeof(payload);
      for (size_t j = 0; j < plen; j++) payload[j] = (uint8_t)rnd();
      int b0 = rnd() % 3 == 0 ? (int)(rnd() & 0xff) : firsts[rnd() % sizeof(firsts)];
      n += frame(tail + n, b0, payload, plen, rnd() % 5 == 0);
    }
    size_t extra = rnd() % 16;
    for (size_t j = 0; j < extra; j++) tail[n++] = (uint8_t)rnd();
    int before = cli.closes;
    rogue_tail = (const char *)tail;
    rogue_tail_len = n;
    rogue_accept = NULL;
    struct cm_conn *l = cm_listen(&mgr, "tcp://127.0.0.1:0", rogue_fn, NULL);
    char url[64];
    snprintf(url, sizeof(url), "ws://127.0.0.1:%u/", l->loc.port);
    assert_non_null(cm_ws_connect(&mgr, url, client_fn, NULL, NULL));
    assert_true(poll_until(&cli.closes, before + 1));
    cm_close(l);
  }
  rogue_close = false;
  assert_true(cli.errors > 0 && cli.msgs > 0);
}

static void test_not_websocket(void **state) {
  (void)state;
  struct cm_conn *c = cm_connect(&mgr, "tcp://127.0.0.1:1", NULL, NULL);
  assert_int_equal(cm_ws_send(c, "x", 1, CM_WS_OP_TEXT), CM_EINVAL);
  assert_int_equal(cm_ws_close(c, 1000, NULL), CM_EINVAL);
  assert_null(cm_ws_connect(&mgr, "ws://127.0.0.1:1/", NULL, NULL, "Bad header\r\n"));
  assert_null(cm_ws_connect(&mgr, "ws://127.0.0.1:1/a b", NULL, NULL, NULL));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_echo_sizes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_fragments_reassembled, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bad_sends_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_close_from_client, setup, teardown),
      cmocka_unit_test_setup_teardown(test_close_from_server, setup, teardown),
      cmocka_unit_test_setup_teardown(test_compression_and_subprotocol, setup, teardown),
      cmocka_unit_test_setup_teardown(test_compressed_send_refused_errors_later, setup, teardown),
      cmocka_unit_test_setup_teardown(test_client_refuses_unoffered_subprotocol, setup, teardown),
      cmocka_unit_test_setup_teardown(test_message_limit, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bad_handshakes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_unmasked_frame_1002, setup, teardown),
      cmocka_unit_test_setup_teardown(test_protocol_errors_1002, setup, teardown),
      cmocka_unit_test_setup_teardown(test_invalid_utf8_1007, setup, teardown),
      cmocka_unit_test_setup_teardown(test_oversize_frame_1009_before_payload, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ping_pong_and_close_echo_raw, setup, teardown),
      cmocka_unit_test_setup_teardown(test_client_rejects_masked_server_frame, setup, teardown),
      cmocka_unit_test_setup_teardown(test_client_rejects_wrong_accept, setup, teardown),
      cmocka_unit_test_setup_teardown(test_client_frames_are_masked, setup, teardown),
      cmocka_unit_test_setup_teardown(test_client_survives_random_server_bytes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_timeouts, setup, teardown),
      cmocka_unit_test_setup_teardown(test_not_websocket, setup, teardown),
  };
  return cmocka_run_group_tests_name("ws", tests, NULL, NULL);
}
