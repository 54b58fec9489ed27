/* Loopback tests of what one misbehaving peer or application can make the
 * process hold, and of failures that must not pass silently: output
 * backpressure (send_hwm) for raw TCP, pipelined HTTP and WebSocket pings,
 * send_limit, multipart ranges from one descriptor, the wakeup queue's
 * bound, accept out of descriptors (EMFILE), failed epoll calls. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

/* ---- helpers */

static int count_fds(void) {
  int n = 0;
  DIR *d = opendir("/proc/self/fd");
  if (d == NULL) return -1;
  while (readdir(d) != NULL) n++;
  closedir(d);
  return n;
}

/* A non-blocking client socket connected to 127.0.0.1:port, with a small
 * receive buffer so that the kernel absorbs little of what is not read. */
static int raw_connect(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int small = 16384;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
    close(fd);
    return -1;
  }
  fcntl(fd, F_SETFL, O_NONBLOCK);
  return fd;
}

/* Writes what the socket takes of buf[*done..len). */
static void push(int fd, const char *buf, size_t len, size_t *done) {
  while (*done < len) {
    ssize_t n = send(fd, buf + *done, len - *done, MSG_NOSIGNAL);
    if (n <= 0) return;
    *done += (size_t)n;
  }
}

/* Reads what is there into b (all of it, appended).  Returns false at EOF. */
static bool pull(int fd, struct cm_buf *b) {
  char tmp[65536];
  for (;;) {
    ssize_t n = recv(fd, tmp, sizeof(tmp), 0);
    if (n > 0) {
      cm_buf_append(b, tmp, (size_t)n);
      continue;
    }
    return !(n == 0);
  }
}

static size_t count_str(const struct cm_buf *b, const char *s) {
  size_t n = 0, k = strlen(s);
  if (b->len == 0) return 0;
  const char *p = (const char *)cm_buf_data(b), *end = p + b->len;
  while (p != NULL && p + k <= end) {
    p = memmem(p, (size_t)(end - p), s, k);
    if (p == NULL) break;
    n++;
    p += k;
  }
  return n;
}

static struct cm_conn *accepted(struct cm_mgr *mgr) {
  for (struct cm_conn *x = mgr->conns; x != NULL; x = x->next)
    if (x->is_accepted) return x;
  return NULL;
}

/* ---- raw TCP: an echo server whose client never reads */

static size_t max_queued;
static void echo_fn(struct cm_conn *c, int ev, void *ev_data) {
  (void)ev_data;
  if (ev == CM_EV_READ) {
    cm_send(c, cm_buf_data(&c->recv), c->recv.len);
    cm_recv_consume(c, c->recv.len);
    if (cm_conn_send_queued(c) > max_queued) max_queued = cm_conn_send_queued(c);
  }
}

static void tcp_echo_to_a_client_that_never_reads_stays_bounded(void **state) {
  (void)state;
  struct cm_mgr mgr;
  assert_int_equal(cm_mgr_init(&mgr), 0);
  assert_int_equal(mgr.send_hwm, 1 << 20);
  mgr.send_hwm = 256 * 1024;
  struct cm_conn *l = cm_listen(&mgr, "tcp://127.0.0.1:0", echo_fn, NULL);
  int fd = raw_connect(l->loc.port);
  assert_true(fd >= 0);
  size_t total = 32u << 20, done = 0;
  char *payload = malloc(total);
  for (size_t i = 0; i < total; i++) payload[i] = (char)(i * 13 + i / 7);
  max_queued = 0;
  /* Write until the server's output reaches its mark (the kernel's buffers
   * take their share first), then on: the server must not read more. */
  struct cm_conn *s = NULL;
  for (int i = 0; i < 5000 && (s == NULL || !cm_conn_send_full(s)); i++) {
    push(fd, payload, total, &done);
    cm_mgr_poll(&mgr, 2);
    s = accepted(&mgr);
  }
  assert_non_null(s);
  for (int i = 0; i < 100; i++) {
    push(fd, payload, total, &done);
    cm_mgr_poll(&mgr, 2);
  }
  assert_true(done < total);          /* the server stopped reading ... */
  assert_true(cm_conn_send_full(s));  /* ... because its output is at the mark */
  assert_true(max_queued <= 256 * 1024 + 16384);
  assert_true(s->recv.len == 0);
  /* Now the client reads: everything comes back, in order. */
  struct cm_buf got = {0};
  for (int i = 0; i < 100000 && got.len < total; i++) {
    push(fd, payload, total, &done);
    pull(fd, &got);
    cm_mgr_poll(&mgr, 1);
  }
  assert_int_equal(got.len, total);
  assert_memory_equal(cm_buf_data(&got), payload, total);
  assert_true(max_queued <= 256 * 1024 + 16384);
  cm_buf_free(&got);
  free(payload);
  close(fd);
  cm_mgr_free(&mgr);
}

/* ---- a drain whose peer never reads: closing_flush_ms ends it */

static char drain_error[256];
static int drain_closes;
static void drain_fn(struct cm_conn *c, int ev, void *ev_data) {
  if (ev == CM_EV_ACCEPT) {
    static char big[4 << 20];
    assert_int_equal(cm_send(c, big, sizeof(big)), 0);
    cm_drain(c);
  } else if (ev == CM_EV_ERROR && c->is_accepted) {
    snprintf(drain_error, sizeof(drain_error), "%s", (const char *)ev_data);
  } else if (ev == CM_EV_CLOSE && c->is_accepted) {
    drain_closes++;
  }
}

static void drain_to_a_peer_that_never_reads_times_out(void **state) {
  (void)state;
  struct cm_mgr mgr;
  assert_int_equal(cm_mgr_init(&mgr), 0);
  assert_int_equal(mgr.closing_flush_ms, CM_CLOSING_FLUSH_MS);
  mgr.closing_flush_ms = 100;
  drain_error[0] = '\0';
  drain_closes = 0;
  struct cm_conn *l = cm_listen(&mgr, "tcp://127.0.0.1:0", drain_fn, NULL);
  int fd = raw_connect(l->loc.port);
  assert_true(fd >= 0);
  for (int i = 0; i < 3000 && drain_closes == 0; i++) cm_mgr_poll(&mgr, 10);
  assert_int_equal(drain_closes, 1);
  assert_non_null(strstr(drain_error, "drain timed out"));
  close(fd);

  /* 0: the drain waits for the peer however long it takes (no timer), and
   * a peer that reads gets everything, then the end of the stream. */
  mgr.closing_flush_ms = 0;
  drain_error[0] = '\0';
  drain_closes = 0;
  fd = raw_connect(l->loc.port);
  struct cm_conn *s = NULL;
  for (int i = 0; i < 50; i++) {
    cm_mgr_poll(&mgr, 10);
    if (s == NULL) s = accepted(&mgr);
  }
  assert_non_null(s);
  assert_int_equal(drain_closes, 0);
  assert_true(s->is_draining);
  assert_null(s->drain_timer);
  struct cm_buf got = {0};
  bool open = true;
  for (int i = 0; i < 100000 && (open || drain_closes == 0); i++) {
    open = pull(fd, &got);
    cm_mgr_poll(&mgr, 1);
  }
  assert_int_equal(got.len, 4 << 20);
  assert_int_equal(drain_closes, 1);
  assert_string_equal(drain_error, "");
  cm_buf_free(&got);
  close(fd);
  cm_mgr_free(&mgr);
}

/* ---- max_conns: every listener pauses at the cap, a close resumes them */

static int cap_accepts, cap_closes;
static void cap_fn(struct cm_conn *c, int ev, void *ev_data) {
  (void)ev_data;
  if (ev == CM_EV_ACCEPT) cap_accepts++;
  if (ev == CM_EV_CLOSE && c->is_accepted) cap_closes++;
}

static void max_conns_pauses_and_resumes_every_listener(void **state) {
  (void)state;
  struct cm_mgr mgr;
  assert_int_equal(cm_mgr_init(&mgr), 0);
  mgr.max_conns = 4; /* the two listeners count */
  cap_accepts = cap_closes = 0;
  struct cm_conn *l1 = cm_listen(&mgr, "tcp://127.0.0.1:0", cap_fn, NULL);
  struct cm_conn *l2 = cm_listen(&mgr, "tcp://127.0.0.1:0", cap_fn, NULL);
  assert_non_null(l1);
  assert_non_null(l2);
  int a = raw_connect(l1->loc.port), b = raw_connect(l2->loc.port);
  for (int i = 0; i < 500 && cap_accepts < 2; i++) cm_mgr_poll(&mgr, 5);
  assert_int_equal(cap_accepts, 2);
  /* At the cap: both stop listening; new clients wait in the backlogs. */
  int c = raw_connect(l1->loc.port), d = raw_connect(l2->loc.port);
  for (int i = 0; i < 20; i++) cm_mgr_poll(&mgr, 5);
  assert_int_equal(cap_accepts, 2);
  assert_int_equal(l1->io.events, 0);
  assert_int_equal(l2->io.events, 0);
  /* Each close makes room for one more, on whichever listener has one. */
  close(a);
  for (int i = 0; i < 500 && cap_accepts < 3; i++) cm_mgr_poll(&mgr, 5);
  assert_int_equal(cap_accepts, 3);
  close(b);
  for (int i = 0; i < 500 && cap_accepts < 4; i++) cm_mgr_poll(&mgr, 5);
  assert_int_equal(cap_accepts, 4);
  assert_int_equal(cap_closes, 2);
  close(c);
  close(d);
  cm_mgr_free(&mgr);
}

/* ---- HTTP: pipelined requests whose answers are never read */

static size_t reply_size = 8192;
static size_t http_max_queued;
static int http_requests;
static void http_fn(struct cm_conn *c, int ev, void *ev_data) {
  (void)ev_data;
  if (ev == CM_EV_HTTP_MSG) {
    static char body[65536];
    http_requests++;
    cm_http_reply(c, 200, NULL, body, reply_size);
    if (cm_conn_send_queued(c) > http_max_queued) http_max_queued = cm_conn_send_queued(c);
  }
}

static void http_pipelining_without_reading_stays_bounded(void **state) {
  (void)state;
  struct cm_mgr mgr;
  assert_int_equal(cm_mgr_init(&mgr), 0);
  struct cm_conn *l = cm_http_listen(&mgr, "http://127.0.0.1:0", http_fn, NULL, NULL);
  assert_non_null(l);
  int fd = raw_connect(l->loc.port);
  const char *req = "GET /x HTTP/1.1\r\nHost: a\r\n\r\n";
  size_t rl = strlen(req), nreq = 8000, total = rl * nreq, done = 0;
  char *reqs = malloc(total);
  for (size_t i = 0; i < nreq; i++) memcpy(reqs + i * rl, req, rl);
  http_requests = 0;
  http_max_queued = 0;
  reply_size = 8192; /* 8000 replies: 64 MiB if nothing held them back */
  for (int i = 0; i < 300; i++) {
    push(fd, reqs, total, &done);
    cm_mgr_poll(&mgr, 2);
  }
  assert_true(http_requests < (int)nreq); /* processing paused */
  assert_true(http_max_queued <= (1u << 20) + reply_size + 512);
  /* The client reads now: every request is answered, nothing lost. */
  struct cm_buf got = {0};
  for (int i = 0; i < 100000 && count_str(&got, "HTTP/1.1 200") < nreq; i++) {
    push(fd, reqs, total, &done);
    pull(fd, &got);
    cm_mgr_poll(&mgr, 1);
  }
  assert_int_equal(count_str(&got, "HTTP/1.1 200"), nreq);
  assert_int_equal(http_requests, (int)nreq);
  assert_true(http_max_queued <= (1u << 20) + reply_size + 512);
  cm_buf_free(&got);
  free(reqs);
  close(fd);
  cm_mgr_free(&mgr);
}

/* send_limit: pipelined replies wait for room instead of being refused. */
static void send_limit_is_backpressure_not_a_stall(void **state) {
  (void)state;
  struct cm_mgr mgr;
  assert_int_equal(cm_mgr_init(&mgr), 0);
  mgr.send_limit = 20000; /* two replies of 8 KiB at most */
  struct cm_conn *l = cm_http_listen(&mgr, "http://127.0.0.1:0", http_fn, NULL, NULL);
  int fd = raw_connect(l->loc.port);
  const char *req = "GET /x HTTP/1.1\r\nHost: a\r\n\r\n";
  char reqs[5 * 64];
  size_t rl = strlen(req), done = 0;
  for (int i = 0; i < 5; i++) memcpy(reqs + (size_t)i * rl, req, rl);
  http_requests = 0;
  reply_size = 8192;
  struct cm_buf got = {0};
  for (int i = 0; i < 2000 && count_str(&got, "HTTP/1.1 200") < 5; i++) {
    push(fd, reqs, 5 * rl, &done);
    cm_mgr_poll(&mgr, 2);
    pull(fd, &got);
  }
  assert_int_equal(count_str(&got, "HTTP/1.1 200"), 5);
  struct cm_conn *s = accepted(&mgr);
  assert_non_null(s);
  assert_false(s->is_closing);
  cm_buf_free(&got);
  close(fd);
  cm_mgr_free(&mgr);
}

/* A reply too big for send_limit fails the connection (ERROR) instead of
 * leaving the request waiting forever. */
static int limit_errors;
static void big_reply_fn(struct cm_conn *c, int ev, void *ev_data) {
  if (ev == CM_EV_HTTP_MSG) {
    static char body[50000];
    assert_int_equal(cm_http_reply(c, 200, NULL, body, sizeof(body)), CM_ETOOBIG);
  }
  if (ev == CM_EV_ERROR && strstr((const char *)ev_data, "send_limit") != NULL) limit_errors++;
}

static void reply_refused_by_send_limit_is_reported(void **state) {
  (void)state;
  struct cm_mgr mgr;
  assert_int_equal(cm_mgr_init(&mgr), 0);
  mgr.send_limit = 20000;
  struct cm_conn *l = cm_http_listen(&mgr, "http://127.0.0.1:0", big_reply_fn, NULL, NULL);
  int fd = raw_connect(l->loc.port);
  const char *req = "GET /x HTTP/1.1\r\nHost: a\r\n\r\n";
  size_t done = 0;
  limit_errors = 0;
  struct cm_buf got = {0};
  bool open = true;
  for (int i = 0; i < 500 && open; i++) {
    push(fd, req, strlen(req), &done);
    cm_mgr_poll(&mgr, 2);
    open = pull(fd, &got);
  }
  assert_false(open); /* closed by the server */
  assert_int_equal(limit_errors, 1);
  /* Refused arguments: a reason, CM_EINVAL, and the connection lives. */
  assert_non_null(cm_http_reply_check(200, "Content-Length: 3\r\n", 5));
  assert_null(cm_http_reply_check(200, "Content-Length: 5\r\n", 5));
  assert_non_null(cm_http_reply_check(99, NULL, 0));
  cm_buf_free(&got);
  close(fd);
  cm_mgr_free(&mgr);
}

/* ---- WebSocket: a client that floods pings and never reads the pongs */

static size_t ws_max_queued;
static int ws_pings;
static void ws_fn(struct cm_conn *c, int ev, void *ev_data) {
  if (ev == CM_EV_HTTP_MSG) cm_ws_upgrade(c, ev_data, NULL);
  if (ev == CM_EV_WS_CTL) {
    ws_pings++;
    if (cm_conn_send_queued(c) > ws_max_queued) ws_max_queued = cm_conn_send_queued(c);
  }
}

static void ws_ping_flood_without_reading_stays_bounded(void **state) {
  (void)state;
  struct cm_mgr mgr;
  assert_int_equal(cm_mgr_init(&mgr), 0);
  mgr.send_hwm = 128 * 1024;
  struct cm_conn *l = cm_http_listen(&mgr, "http://127.0.0.1:0", ws_fn, NULL, NULL);
  int fd = raw_connect(l->loc.port);
  const char *hs =
      "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
  size_t done = 0;
  struct cm_buf got = {0};
  for (int i = 0; i < 200 && count_str(&got, "\r\n\r\n") == 0; i++) {
    push(fd, hs, strlen(hs), &done);
    cm_mgr_poll(&mgr, 2);
    pull(fd, &got);
  }
  assert_non_null(memmem(cm_buf_data(&got), got.len, "101", 3));
  cm_buf_consume(&got, got.len);
  /* Masked pings with 125-byte payloads: 131 bytes each, 127 back. */
  size_t nping = 200000, fl = 131, total = nping * fl;
  uint8_t *pings = malloc(total);
  for (size_t i = 0; i < nping; i++) {
    uint8_t *p = pings + i * fl;
    p[0] = 0x89;
    p[1] = 0x80 | 125;
    memset(p + 2, 0, 4 + 125); /* zero mask: payload as is */
  }
  ws_pings = 0;
  ws_max_queued = 0;
  done = 0;
  for (int i = 0; i < 300; i++) {
    push(fd, (const char *)pings, total, &done);
    cm_mgr_poll(&mgr, 2);
  }
  assert_true(ws_pings < (int)nping);
  assert_true(ws_max_queued <= 128 * 1024 + 256);
  struct cm_conn *s = accepted(&mgr);
  assert_non_null(s);
  assert_true(s->recv.len <= s->recv_limit);
  /* Reading the pongs lets every ping through. */
  for (int i = 0; i < 100000 && got.len < nping * 127; i++) {
    push(fd, (const char *)pings, total, &done);
    pull(fd, &got);
    cm_mgr_poll(&mgr, 1);
  }
  assert_int_equal(got.len, nping * 127);
  assert_int_equal(ws_pings, (int)nping);
  assert_true(ws_max_queued <= 128 * 1024 + 256);
  cm_buf_free(&got);
  free(pings);
  close(fd);
  cm_mgr_free(&mgr);
}

/* ---- multipart ranges: one descriptor per reply, not one per part */

static char dir_tmpl[64];
static void static_fn(struct cm_conn *c, int ev, void *ev_data) {
  if (ev == CM_EV_HTTP_MSG) {
    struct cm_http_serve_dir_opts o = {.root_dir = dir_tmpl};
    cm_http_serve_dir(c, ev_data, &o);
  }
}

static void multipart_ranges_share_one_descriptor(void **state) {
  (void)state;
  snprintf(dir_tmpl, sizeof(dir_tmpl), "/tmp/cm_bp_XXXXXX");
  assert_non_null(mkdtemp(dir_tmpl));
  char path[128];
  snprintf(path, sizeof(path), "%s/f.bin", dir_tmpl);
  FILE *f = fopen(path, "wb");
  static char data[16 << 20];
  for (size_t i = 0; i < sizeof(data); i++) data[i] = (char)('a' + i % 26);
  fwrite(data, 1, sizeof(data), f);
  fclose(f);
  struct cm_mgr mgr;
  assert_int_equal(cm_mgr_init(&mgr), 0);
  struct cm_conn *l = cm_http_listen(&mgr, "http://127.0.0.1:0", static_fn, NULL, NULL);
  int fd = raw_connect(l->loc.port);
  /* 12 ranges of 1 MiB: the reply cannot leave while the client does not read. */
  char req[1024];
  int n = snprintf(req, sizeof(req), "GET /f.bin HTTP/1.1\r\nHost: a\r\nRange: bytes=");
  for (int i = 0; i < 12; i++)
    n += snprintf(req + n, sizeof(req) - (size_t)n, "%s%d-%d", i ? "," : "", i * 1300000,
                  i * 1300000 + 1048575);
  n += snprintf(req + n, sizeof(req) - (size_t)n, "\r\n\r\n");
  int base = count_fds();
  size_t done = 0;
  for (int i = 0; i < 50; i++) {
    push(fd, req, (size_t)n, &done);
    cm_mgr_poll(&mgr, 2);
  }
  struct cm_conn *s = accepted(&mgr);
  assert_non_null(s);
  assert_non_null(s->files); /* the reply is still being sent */
  /* The accepted socket, one file, and the root directory serve_dir keeps
   * open: nothing per part. */
  assert_true(count_fds() <= base + 3);
  struct cm_buf got = {0};
  for (int i = 0; i < 20000 && count_str(&got, "--\r\n") == 0; i++) {
    pull(fd, &got);
    cm_mgr_poll(&mgr, 1);
  }
  assert_int_equal(count_str(&got, "Content-Range: bytes "), 12);
  /* Each part's bytes are the file's at its offset. */
  const char *p = (const char *)cm_buf_data(&got);
  for (int i = 0; i < 12; i++) {
    char cr[80];
    snprintf(cr, sizeof(cr), "Content-Range: bytes %d-%d/%zu\r\n\r\n", i * 1300000, i * 1300000 + 1048575,
             sizeof(data));
    const char *h = memmem(p, got.len, cr, strlen(cr));
    assert_non_null(h);
    assert_memory_equal(h + strlen(cr), data + i * 1300000, 1048576);
  }
  for (int i = 0; i < 50; i++) cm_mgr_poll(&mgr, 1);
  assert_null(s->files);
  assert_true(count_fds() <= base + 2); /* the socket and the kept root */
  cm_buf_free(&got);
  close(fd);
  cm_mgr_free(&mgr);
  assert_true(count_fds() <= base - 1); /* base counted the client's socket */
  unlink(path);
  rmdir(dir_tmpl);
}

/* ---- wakeup: a bounded queue */

static void wakeup_queue_is_bounded(void **state) {
  (void)state;
  struct cm_mgr mgr;
  assert_int_equal(cm_mgr_init(&mgr), 0);
  assert_int_equal(mgr.wakeup_max_bytes, CM_WAKEUP_MAX_BYTES);
  assert_int_equal(mgr.wakeup_max_msgs, CM_WAKEUP_MAX_MSGS);
  assert_int_equal(cm_wakeup_init(&mgr), 0);
  struct cm_conn *l = cm_listen(&mgr, "tcp://127.0.0.1:0", NULL, NULL);
  static char chunk[65536];
  /* Bytes: 64 MiB by default, so fewer than 1,024 chunks of 64 KiB. */
  int ok = 0;
  while (ok < 5000 && cm_wakeup(&mgr, l->id, chunk, sizeof(chunk)) == 0) ok++;
  assert_true(ok >= 1000 && ok < 1024);
  /* Messages. */
  cm_mgr_poll(&mgr, 0); /* the loop takes the queue */
  mgr.wakeup_max_msgs = 10;
  int m = 0;
  while (m < 100 && cm_wakeup(&mgr, l->id, "x", 1) == 0) m++;
  assert_int_equal(m, 10);
  cm_mgr_poll(&mgr, 0);
  assert_true(cm_wakeup(&mgr, l->id, "x", 1) == 0); /* room again */
  cm_mgr_free(&mgr);
}

/* ---- accept out of descriptors */

static void emfile_child(void) {
  struct cm_mgr mgr;
  if (cm_mgr_init(&mgr) != 0) _exit(10);
  struct cm_conn *l = cm_listen(&mgr, "tcp://127.0.0.1:0", echo_fn, NULL);
  if (l == NULL) _exit(11);
  int nfd = count_fds();
  struct rlimit rl = {.rlim_cur = (rlim_t)(nfd + 8), .rlim_max = (rlim_t)(nfd + 8)};
  struct rlimit old;
  getrlimit(RLIMIT_NOFILE, &old);
  rl.rlim_max = old.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0) _exit(12);
  /* Client sockets until descriptors run out; the server then cannot accept. */
  int clients[64], nc = 0;
  for (; nc < 64; nc++) {
    clients[nc] = raw_connect(l->loc.port);
    if (clients[nc] < 0) break;
    cm_mgr_poll(&mgr, 0);
  }
  if (nc == 64) _exit(13);
  int extra = socket(AF_INET, SOCK_STREAM, 0); /* must fail: no descriptors */
  if (extra >= 0) _exit(14);
  /* Pending connections in the backlog, no descriptor for them. */
  int more[2];
  close(clients[--nc]);
  close(clients[--nc]);
  more[0] = raw_connect(l->loc.port);
  more[1] = raw_connect(l->loc.port);
  if (more[0] < 0 || more[1] < 0) _exit(15);
  for (int i = 0; i < 100 && !l->is_accept_paused; i++) cm_mgr_poll(&mgr, 1);
  if (!l->is_accept_paused || l->io.events != 0) _exit(16); /* paused, not spinning */
  /* Free descriptors: accepting resumes and the new connection is served. */
  for (int i = 0; i < nc; i++) close(clients[i]);
  for (int i = 0; i < 200 && l->is_accept_paused; i++) cm_mgr_poll(&mgr, 10);
  if (l->is_accept_paused || l->io.events == 0) _exit(17);
  size_t done = 0;
  struct cm_buf got = {0};
  for (int i = 0; i < 500 && got.len < 5; i++) {
    push(more[0], "hello", 5, &done);
    cm_mgr_poll(&mgr, 2);
    pull(more[0], &got);
  }
  if (got.len != 5 || memcmp(cm_buf_data(&got), "hello", 5) != 0) _exit(18);
  cm_buf_free(&got);
  cm_mgr_free(&mgr);
  _exit(0);
}

/* Log lines saying accepting is paused (emfile_log_child). */
static int paused_logs;

static void count_paused_logs(int level, const char *file, int line, const char *msg, void *arg) {
  (void)level, (void)file, (void)line, (void)arg;
  if (strstr(msg, "accepting paused") != NULL) paused_logs++;
}

/* Two connections wait in the backlog while no descriptor is free (the
 * table filled with /dev/null): every retry (each 100 ms) fails, and the
 * failure is logged once for the episode, not once per attempt. */
static void emfile_log_child(void) {
  cm_log_set_sink(count_paused_logs, NULL);
  cm_log_set(CM_LL_ERROR);
  struct cm_mgr mgr;
  if (cm_mgr_init(&mgr) != 0) _exit(10);
  struct cm_conn *l = cm_listen(&mgr, "tcp://127.0.0.1:0", echo_fn, NULL);
  if (l == NULL) _exit(11);
  int waiting[2] = {raw_connect(l->loc.port), raw_connect(l->loc.port)};
  if (waiting[0] < 0 || waiting[1] < 0) _exit(12);
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = (rlim_t)(count_fds() + 16);
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0) _exit(13);
  int fillers[32], nf = 0;
  while (nf < 32 && (fillers[nf] = open("/dev/null", O_RDONLY)) >= 0) nf++;
  if (nf == 32) _exit(14);
  for (uint64_t end = cm_millis() + 450; cm_millis() < end;) cm_mgr_poll(&mgr, 10);
  if (!l->is_accept_paused || paused_logs != 1) _exit(15);
  for (int i = 0; i < nf; i++) close(fillers[i]);
  for (int i = 0; i < 200 && accepted(&mgr) == NULL; i++) cm_mgr_poll(&mgr, 10);
  if (accepted(&mgr) == NULL) _exit(16);
  cm_mgr_free(&mgr);
  _exit(0);
}

static void accept_out_of_descriptors_logs_once(void **state) {
  (void)state;
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) emfile_log_child();
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
}

static void accept_out_of_descriptors_pauses_and_resumes(void **state) {
  (void)state;
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) emfile_child();
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
}

/* ---- failed epoll calls */

static int epoll_errors;
static char epoll_error_msg[256];
static int pipe_fds[2];
static void sabotage_fn(struct cm_conn *c, int ev, void *ev_data) {
  if (ev == CM_EV_READ && c->is_accepted && pipe_fds[0] < 0) {
    /* The descriptor changes under the library (a stand-in for any failing
     * epoll_ctl): the interest update that follows must not fail silently. */
    assert_int_equal(pipe(pipe_fds), 0);
    assert_true(dup2(pipe_fds[0], c->fd) == c->fd);
    c->recv_limit = 1; /* makes the read step pause reading: an epoll_ctl */
  }
  if (ev == CM_EV_ERROR) {
    epoll_errors++;
    snprintf(epoll_error_msg, sizeof(epoll_error_msg), "%s", (const char *)ev_data);
  }
}

static void failed_epoll_ctl_is_an_error(void **state) {
  (void)state;
  struct cm_mgr mgr;
  assert_int_equal(cm_mgr_init(&mgr), 0);
  struct cm_conn *l = cm_listen(&mgr, "tcp://127.0.0.1:0", sabotage_fn, NULL);
  pipe_fds[0] = pipe_fds[1] = -1;
  epoll_errors = 0;
  int fd = raw_connect(l->loc.port);
  size_t done = 0;
  for (int i = 0; i < 100 && epoll_errors == 0; i++) {
    push(fd, "hello", 5, &done);
    cm_mgr_poll(&mgr, 2);
  }
  assert_int_equal(epoll_errors, 1);
  assert_non_null(strstr(epoll_error_msg, "epoll_ctl"));
  assert_null(accepted(&mgr)); /* closed */
  close(pipe_fds[0]);
  close(pipe_fds[1]);
  close(fd);
  cm_mgr_free(&mgr);
}

static void failed_epoll_wait_is_returned(void **state) {
  (void)state;
  struct cm_mgr mgr;
  assert_int_equal(cm_mgr_init(&mgr), 0);
  int devnull = open("/dev/null", O_RDONLY);
  int saved = dup(mgr.epfd);
  assert_true(dup2(devnull, mgr.epfd) == mgr.epfd); /* no longer an epoll set */
  errno = 0;
  assert_int_equal(cm_mgr_poll(&mgr, 0), CM_EINVAL);
  assert_int_equal(errno, EINVAL);
  assert_int_equal(cm_mgr_poll(&mgr, 0), CM_EINVAL);
  assert_true(dup2(saved, mgr.epfd) == mgr.epfd);
  assert_int_equal(cm_mgr_poll(&mgr, 0), 0);
  close(saved);
  close(devnull);
  cm_mgr_free(&mgr);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(tcp_echo_to_a_client_that_never_reads_stays_bounded),
      cmocka_unit_test(drain_to_a_peer_that_never_reads_times_out),
      cmocka_unit_test(max_conns_pauses_and_resumes_every_listener),
      cmocka_unit_test(http_pipelining_without_reading_stays_bounded),
      cmocka_unit_test(send_limit_is_backpressure_not_a_stall),
      cmocka_unit_test(reply_refused_by_send_limit_is_reported),
      cmocka_unit_test(ws_ping_flood_without_reading_stays_bounded),
      cmocka_unit_test(multipart_ranges_share_one_descriptor),
      cmocka_unit_test(wakeup_queue_is_bounded),
      cmocka_unit_test(accept_out_of_descriptors_pauses_and_resumes),
      cmocka_unit_test(accept_out_of_descriptors_logs_once),
      cmocka_unit_test(failed_epoll_ctl_is_an_error),
      cmocka_unit_test(failed_epoll_wait_is_returned),
  };
  return cmocka_run_group_tests_name("backpressure", tests, NULL, NULL);
}
