/* The HTTP server over real loopback sockets, driven by a raw TCP client. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"
#include "peerproc.h"

/* ------------------------------------------------------------ the server */

static struct cm_mgr mgr;
static uint16_t port;
static int hdrs_seen, msgs_seen;
static char last_uri[256], last_path[256], last_target[256], last_query[64];
static int inject_results[6];
static struct cm_conn *tunnel; /* a connection whose CONNECT was answered 200 */

static void reply_str(struct cm_conn *c, int status, const char *headers, const char *s) {
  assert_true(cm_http_reply(c, status, headers, s, strlen(s)) == 0);
}

static void handler(struct cm_conn *c, int ev, void *ev_data) {
  struct cm_http_msg *hm = ev_data;
  if (ev == CM_EV_HTTP_HDRS) {
    hdrs_seen++;
    if (hm->uri.len == 5 && memcmp(hm->uri.buf, "/deny", 5) == 0) reply_str(c, 401, NULL, "denied");
  }
  if (ev == CM_EV_READ && c == tunnel) { /* raw bytes: HTTP stopped there */
    cm_send(c, cm_buf_data(&c->recv), c->recv.len);
    cm_recv_consume(c, c->recv.len);
  }
  if (ev != CM_EV_HTTP_MSG) return;
  msgs_seen++;
  snprintf(last_uri, sizeof(last_uri), "%.*s", (int) hm->uri.len, hm->uri.buf);
  snprintf(last_path, sizeof(last_path), "%.*s", (int) hm->path.len, hm->path.buf ? hm->path.buf : "");
  snprintf(last_target, sizeof(last_target), "%.*s", (int) hm->target.len, hm->target.buf);
  snprintf(last_query, sizeof(last_query), "%.*s", (int) hm->query.len, hm->query.buf ? hm->query.buf : "");
  bool connect = hm->method.len == 7 && memcmp(hm->method.buf, "CONNECT", 7) == 0;
  if (connect) {
    if (strcmp(last_uri, "tunnel.test:443") == 0) {
      tunnel = c;
      /* a tunnel has no content: a Content-Length is refused */
      assert_true(cm_http_reply(c, 200, "Content-Length: 0\r\n", NULL, 0) != 0);
      reply_str(c, 200, NULL, "");
    }
    return; /* other CONNECTs unanswered: the server says 501 */
  }
  if (strcmp(last_uri, "/echo") == 0) {
    assert_true(cm_http_reply(c, 200, NULL, hm->body.buf, hm->body.len) == 0);
  } else if (strcmp(last_uri, "/len") == 0) {
    /* big bodies: check the bytes, answer with the length */
    for (size_t i = 0; i < hm->body.len; i++) assert_int_equal((unsigned char) hm->body.buf[i], (i * 7) & 0xff);
    char s[64];
    snprintf(s, sizeof(s), "len=%zu", hm->body.len);
    reply_str(c, 200, NULL, s);
  } else if (strcmp(last_uri, "/chunked") == 0) {
    assert_true(cm_http_reply(c, 200, "Transfer-Encoding: chunked\r\n", "ab", 2) == 0);
    assert_true(cm_http_chunk(c, "cd", 2) == 0);
    assert_true(cm_http_chunk(c, NULL, 0) == 0);
  } else if (strcmp(last_uri, "/sse") == 0) {
    assert_true(cm_http_reply(c, 200, "Content-Type: text/event-stream\r\nTransfer-Encoding: chunked", NULL, 0) == 0);
    assert_true(cm_http_sse(c, cm_str_c("tick"), cm_str_c("a\nb")) == 0);
    /* a bare CR ends a line for an EventSource: no field can be injected */
    assert_true(cm_http_sse(c, cm_str_c("t2"), cm_str_c("x\rid: 9\r\nretry: 1\ry\r")) == 0);
    assert_true(cm_http_sse(c, cm_str_c("t\rid: 1"), cm_str_c("z")) != 0);
    assert_true(cm_http_sse(c, cm_str_c("t\n"), cm_str_c("z")) != 0);
    assert_true(cm_http_chunk(c, "", 0) == 0);
  } else if (strcmp(last_uri, "/inject") == 0) {
    inject_results[0] = cm_http_reply(c, 200, "X: a\r\n\r\nY: b\r\n", "x", 1);
    inject_results[1] = cm_http_reply(c, 200, "X: a\nY: b\r\n", "x", 1);
    inject_results[2] = cm_http_reply(c, 200, "X: a\r\n b\r\n", "x", 1);
    inject_results[3] = cm_http_reply(c, 200, "Content-Length: 3\r\n", "x", 1);
    inject_results[4] = cm_http_reply(c, 200, "X: a\rY: b\r\n", "x", 1);
    inject_results[5] = cm_http_reply(c, 200, "Set-Cookie: a=b\r\nX-Ok: 1", "ok", 2);
  } else if (strcmp(last_uri, "/nocontent") == 0) {
    reply_str(c, 204, NULL, "ignored");
  } else {
    char s[300];
    snprintf(s, sizeof(s), "uri=%s", last_uri);
    reply_str(c, 200, "X-Test: yes\r\n", s);
  }
}

static int start_server(const struct cm_http_serve_opts *opts) {
  hdrs_seen = msgs_seen = 0;
  memset(inject_results, 0, sizeof(inject_results));
  if (cm_mgr_init(&mgr) != 0) return -1;
  struct cm_conn *l = cm_http_listen(&mgr, "http://127.0.0.1:0", handler, NULL, opts);
  if (l == NULL) return -1;
  port = l->loc.port;
  return 0;
}

static int setup(void **state) {
  (void) state;
  return start_server(NULL);
}

static int teardown(void **state) {
  (void) state;
  cm_mgr_free(&mgr);
  return 0;
}

/* ------------------------------------------------------------ the client */

static int client(void) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(fd >= 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(connect(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  fcntl(fd, F_SETFL, O_NONBLOCK);
  return fd;
}

/* Sends everything, letting the server run while the socket is full. */
static void client_send(int fd, const void *data, size_t len) {
  const char *p = data;
  for (int spins = 0; len > 0 && spins < 100000; spins++) {
    ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
    if (n > 0) {
      p += n;
      len -= (size_t) n;
    } else {
      assert_true(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
      cm_mgr_poll(&mgr, 1);
    }
  }
  assert_int_equal(len, 0);
}

static size_t count(const char *hay, const char *needle) {
  size_t n = 0;
  for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + 1, needle)) n++;
  return n;
}

struct reply {
  char data[65536];
  size_t len;
  bool eof;
};

/* Polls the server and reads until `want` occurrences of `until` arrived,
 * or EOF, or about two seconds passed. */
static void collect(int fd, struct reply *r, const char *until, size_t want) {
  r->len = 0;
  r->eof = false;
  r->data[0] = '\0';
  for (int i = 0; i < 400; i++) {
    cm_mgr_poll(&mgr, 5);
    for (;;) {
      ssize_t n = recv(fd, r->data + r->len, sizeof(r->data) - 1 - r->len, 0);
      if (n > 0) {
        r->len += (size_t) n;
        r->data[r->len] = '\0';
        continue;
      }
      if (n == 0) r->eof = true;
      break;
    }
    if (r->eof || (until != NULL && count(r->data, until) >= want)) return;
  }
}

/* One request, one response expected; returns the response text. */
static struct reply *roundtrip(int fd, const char *req, const char *until, size_t want) {
  static struct reply r;
  client_send(fd, req, strlen(req));
  collect(fd, &r, until, want);
  return &r;
}

/* ----------------------------------------------------------------- tests */

static void get_keep_alive(void **state) {
  (void) state;
  int fd = client();
  struct reply *r = roundtrip(fd, "GET /a?q=1 HTTP/1.1\r\nHost: x\r\n\r\n", "uri=/a", 1);
  assert_false(r->eof);
  assert_non_null(strstr(r->data, "HTTP/1.1 200 OK\r\n"));
  assert_non_null(strstr(r->data, "Content-Length: 6\r\n"));
  assert_non_null(strstr(r->data, "Content-Type: text/plain\r\n"));
  assert_non_null(strstr(r->data, "X-Test: yes\r\n"));
  assert_null(strstr(r->data, "Connection: close"));
  r = roundtrip(fd, "GET /b HTTP/1.1\r\nHost: x\r\n\r\n", "uri=/b", 1);
  assert_false(r->eof);
  assert_int_equal(msgs_seen, 2);
  assert_int_equal(hdrs_seen, 2);
  close(fd);
}

static void pipelined(void **state) {
  (void) state;
  int fd = client();
  struct reply *r = roundtrip(fd,
                              "GET /1 HTTP/1.1\r\nHost: x\r\n\r\n"
                              "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
                              "GET /3 HTTP/1.1\r\nHost: x\r\n\r\n",
                              "HTTP/1.1 200", 3);
  char *a = strstr(r->data, "uri=/1"), *b = strstr(r->data, "hello"), *c = strstr(r->data, "uri=/3");
  assert_true(a != NULL && b != NULL && c != NULL && a < b && b < c);
  close(fd);
}

/* A handler that takes a request over after its head (a streaming upload):
 * detaches HTTP, consumes head and body itself, replies, and attaches HTTP
 * again - inline, while the HTTP layer is still inside its event, or later
 * from READ.  Pipelined requests after the body are then served as usual. */
static uint64_t takeover_left;

static void takeover_handler(struct cm_conn *c, int ev, void *ev_data) {
  if (ev == CM_EV_HTTP_HDRS) {
    struct cm_http_msg *hm = ev_data;
    if (hm->uri.len != 7 || memcmp(hm->uri.buf, "/upload", 7) != 0) return;
    size_t head_end = (size_t) (hm->head.buf + hm->head.len - (const char *) cm_buf_data(&c->recv));
    takeover_left = hm->content_length;
    cm_http_detach(c);
    cm_recv_consume(c, head_end);
  } else if (ev == CM_EV_HTTP_MSG) {
    handler(c, ev, ev_data);
    return;
  } else if (ev != CM_EV_READ || c->pfn != NULL) {
    return;
  }
  if (c->pfn != NULL) return;
  size_t n = c->recv.len < takeover_left ? c->recv.len : (size_t) takeover_left;
  cm_recv_consume(c, n);
  takeover_left -= n;
  if (takeover_left > 0) return;
  reply_str(c, 200, NULL, "taken");
  assert_true(cm_http_serve(c, NULL) == 0);
}

static void take_over_after_hdrs(void **state) {
  (void) state;
  struct cm_conn *l = cm_http_listen(&mgr, "http://127.0.0.1:0", takeover_handler, NULL, NULL);
  assert_non_null(l);
  uint16_t saved = port;
  port = l->loc.port;
  int fd = client();
  /* whole body with the head, and a request after it, in one write */
  struct reply *r = roundtrip(fd,
                              "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789"
                              "GET /after1 HTTP/1.1\r\nHost: x\r\n\r\n",
                              "HTTP/1.1 200", 2);
  assert_non_null(strstr(r->data, "taken"));
  assert_non_null(strstr(r->data, "uri=/after1"));
  /* the body in pieces, later */
  r = roundtrip(fd, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n01234", NULL, 0);
  assert_int_equal(r->len, 0);
  r = roundtrip(fd, "56789GET /after2 HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 200", 2);
  assert_non_null(strstr(r->data, "taken"));
  assert_non_null(strstr(r->data, "uri=/after2"));
  assert_false(r->eof);
  close(fd);
  port = saved;
}

static void bodies(void **state) {
  (void) state;
  int fd = client();
  struct reply *r = roundtrip(fd,
                              "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                              "4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nTrailer: x\r\n\r\n",
                              "Wikipedia", 1);
  assert_non_null(strstr(r->data, "Content-Length: 9\r\n"));
  /* the same, one byte per poll */
  const char *req = "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n"
                    "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nxyz";
  int before = msgs_seen;
  for (size_t i = 0; req[i] != '\0'; i++) {
    client_send(fd, req + i, 1);
    cm_mgr_poll(&mgr, 1);
  }
  collect(fd, r, "xyz", 1);
  assert_non_null(strstr(r->data, "abcdef"));
  assert_non_null(strstr(r->data, "xyz"));
  assert_int_equal(msgs_seen, before + 2);
  close(fd);
}

static void big_bodies(void **state) {
  (void) state;
  size_t n = 3 * 1024 * 1024; /* over the 1 MiB default receive limit */
  char *body = malloc(n);
  for (size_t i = 0; i < n; i++) body[i] = (char) ((i * 7) & 0xff);
  int fd = client();
  char head[128];
  snprintf(head, sizeof(head), "POST /len HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n", n);
  client_send(fd, head, strlen(head));
  client_send(fd, body, n);
  struct reply r;
  collect(fd, &r, "len=3145728", 1);
  assert_non_null(strstr(r.data, "len=3145728"));
  /* chunked, in 1000-byte chunks */
  const char *chunked_head = "POST /len HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
  client_send(fd, chunked_head, strlen(chunked_head));
  for (size_t off = 0; off < n; off += 1000) {
    size_t k = n - off < 1000 ? n - off : 1000;
    char line[16];
    snprintf(line, sizeof(line), "%zx\r\n", k);
    client_send(fd, line, strlen(line));
    client_send(fd, body + off, k);
    client_send(fd, "\r\n", 2);
  }
  client_send(fd, "0\r\n\r\n", 5);
  collect(fd, &r, "len=3145728", 1);
  if (strstr(r.data, "len=3145728") == NULL) print_error("got %zu: %.200s\n", r.len, r.data);
  assert_non_null(strstr(r.data, "len=3145728"));
  free(body);
  close(fd);
}

struct bad {
  const char *req;
  const char *status;
};

static void rejects(void **state) {
  (void) state;
  static char huge[20000];
  memset(huge, 'a', sizeof(huge) - 1);
  memcpy(huge, "GET / HTTP/1.1\r\nHost: x\r\nX: ", 28);
  static char long_uri[9000];
  memset(long_uri, 'a', sizeof(long_uri) - 1);
  memcpy(long_uri, "GET /", 5);
  const struct bad cases[] = {
      {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", "HTTP/1.1 400 "},
      {"GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 400 "},
      {"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n", "HTTP/1.1 400 "},
      {"GET / HTTP/1.1\nHost: x\n\n", "HTTP/1.1 400 "},
      {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n", "HTTP/1.1 413 "},
      {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "HTTP/1.1 400 "},
      {"GET / HTTP/2.0\r\nHost: x\r\n\r\n", "HTTP/1.1 505 "},
      {huge, "HTTP/1.1 431 "},
      {long_uri, "HTTP/1.1 414 "},
      /* request-target forms that do not fit the method, fragments, paths
       * that cannot be decoded (RFC 9112 3.2) */
      {"GET * HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400 "},
      {"GET x.test:80 HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400 "},
      {"CONNECT /a HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400 "},
      {"GET /a#f HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400 "},
      {"GET /a%zz HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400 "},
      {"GET /a%00 HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400 "},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    int before = msgs_seen;
    int fd = client();
    struct reply *r = roundtrip(fd, cases[i].req, NULL, 0);
    if (strncmp(r->data, cases[i].status, strlen(cases[i].status)) != 0) {
      print_error("case %zu: got %.60s\n", i, r->data);
    }
    assert_true(strncmp(r->data, cases[i].status, strlen(cases[i].status)) == 0);
    assert_non_null(strstr(r->data, "Connection: close\r\n"));
    assert_true(r->eof);
    assert_int_equal(msgs_seen, before);
    close(fd);
  }
}

/* SSE records: one data: line per line of data, whatever ends the lines. */
static void sse_line_ends(void **state) {
  (void) state;
  int fd = client();
  struct reply *r = roundtrip(fd, "GET /sse HTTP/1.1\r\nHost: x\r\n\r\n", "\r\n0\r\n\r\n", 1);
  assert_non_null(strstr(r->data, "event: tick\ndata: a\ndata: b\n\n"));
  assert_non_null(strstr(r->data, "event: t2\ndata: x\ndata: id: 9\ndata: retry: 1\ndata: y\ndata: \n\n"));
  assert_null(strstr(r->data, "\rid:"));
  assert_null(strstr(r->data, "\nid:"));
  assert_null(strstr(r->data, "\nretry:"));
  close(fd);
}

/* What the handler sees of each target form, and the decoded path. */
static void targets_and_paths(void **state) {
  (void) state;
  int fd = client();
  struct reply *r = roundtrip(fd, "GET http://x.test/abs?q=1 HTTP/1.1\r\nHost: x.test\r\n\r\n", "uri=", 1);
  assert_non_null(strstr(r->data, "uri=/abs"));
  assert_string_equal(last_target, "http://x.test/abs?q=1");
  assert_string_equal(last_query, "q=1");
  assert_string_equal(last_path, "/abs");
  r = roundtrip(fd, "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", "uri=", 1);
  assert_non_null(strstr(r->data, "uri=*"));
  assert_string_equal(last_path, "");
  const char *spellings[] = {"/private/k", "/%70rivate/k", "//private/k", "/./private/k", "/a/../private/k",
                             "/a/%2e%2e/private//./k", "/private%2Fk"};
  for (size_t i = 0; i < sizeof(spellings) / sizeof(spellings[0]); i++) {
    char req[200];
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", spellings[i]);
    int before = msgs_seen;
    roundtrip(fd, req, "HTTP/1.1 200", 1);
    assert_int_equal(msgs_seen, before + 1);
    if (strcmp(last_path, "/private/k") != 0) fail_msg("%s: path %s", spellings[i], last_path);
    assert_string_equal(last_uri, spellings[i]);
  }
  close(fd);
}

/* CONNECT: 501 unless the handler answers it; a 2xx answer opens a tunnel
 * (no Content-Length, and no more HTTP on the connection). */
static void connect_requests(void **state) {
  (void) state;
  int fd = client();
  struct reply *r = roundtrip(fd, "CONNECT other.test:443 HTTP/1.1\r\nHost: other.test:443\r\n\r\n", NULL, 0);
  assert_true(strncmp(r->data, "HTTP/1.1 501 ", 13) == 0);
  assert_true(r->eof);
  close(fd);
  tunnel = NULL;
  fd = client();
  r = roundtrip(fd, "CONNECT tunnel.test:443 HTTP/1.1\r\nHost: tunnel.test:443\r\n\r\n", "\r\n\r\n", 1);
  assert_true(strncmp(r->data, "HTTP/1.1 200 ", 13) == 0);
  assert_null(strcasestr(r->data, "Content-Length"));
  assert_null(strcasestr(r->data, "Transfer-Encoding"));
  assert_string_equal(strstr(r->data, "\r\n\r\n"), "\r\n\r\n");
  r = roundtrip(fd, "GET / HTTP/1.1\r\n\r\n", "\r\n\r\n", 1); /* tunnelled bytes, echoed */
  assert_string_equal(r->data, "GET / HTTP/1.1\r\n\r\n");
  tunnel = NULL;
  close(fd);
}

/* A client sending one byte per packet: head (scanned in pieces, never from
 * the start again) and body arrive whole. */
static void byte_at_a_time(void **state) {
  (void) state;
  static char req[8000];
  int n = snprintf(req, sizeof(req), "POST /echo HTTP/1.1\r\nHost: x\r\nX-Pad: ");
  memset(req + n, 'p', 4000);
  n += 4000;
  n += snprintf(req + n, sizeof(req) - (size_t) n, "\r\nContent-Length: 5\r\n\r\nhello");
  int fd = client(), before = msgs_seen;
  for (int i = 0; i < n; i++) {
    client_send(fd, req + i, 1);
    cm_mgr_poll(&mgr, 0);
  }
  struct reply r;
  collect(fd, &r, "hello", 1);
  assert_non_null(strstr(r.data, "HTTP/1.1 200 OK"));
  assert_int_equal(msgs_seen, before + 1);
  close(fd);
}

static void closing_requests(void **state) {
  (void) state;
  int fd = client();
  struct reply *r = roundtrip(fd,
                              "GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                              "GET /ignored HTTP/1.1\r\nHost: x\r\n\r\n",
                              NULL, 0);
  assert_true(r->eof);
  assert_non_null(strstr(r->data, "Connection: close\r\n"));
  assert_non_null(strstr(r->data, "uri=/c"));
  assert_null(strstr(r->data, "ignored"));
  close(fd);
  fd = client();
  r = roundtrip(fd, "GET /old HTTP/1.0\r\n\r\n", NULL, 0);
  assert_true(r->eof);
  assert_non_null(strstr(r->data, "uri=/old"));
  close(fd);
  fd = client();
  r = roundtrip(fd, "GET /ka HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", "uri=/ka", 1);
  assert_false(r->eof);
  assert_non_null(strstr(r->data, "Connection: keep-alive\r\n"));
  close(fd);
}

static void head_and_no_content(void **state) {
  (void) state;
  int fd = client();
  struct reply *r = roundtrip(fd,
                              "HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n"
                              "GET /nocontent HTTP/1.1\r\nHost: x\r\n\r\n"
                              "GET /after HTTP/1.1\r\nHost: x\r\n\r\n",
                              "uri=/after", 1);
  assert_non_null(strstr(r->data, "Content-Length: 6\r\n")); /* HEAD: length of the GET body */
  assert_null(strstr(r->data, "uri=/h"));
  assert_non_null(strstr(r->data, "HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200"));
  assert_null(strstr(r->data, "ignored"));
  close(fd);
}

static void expect_continue(void **state) {
  (void) state;
  int fd = client();
  struct reply *r = roundtrip(fd,
                              "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                              "Expect: 100-continue\r\n\r\n",
                              "\r\n\r\n", 1);
  assert_string_equal(r->data, "HTTP/1.1 100 Continue\r\n\r\n");
  r = roundtrip(fd, "body", "body", 1);
  assert_true(strncmp(r->data, "HTTP/1.1 200 OK\r\n", 17) == 0);
  close(fd);
  /* a final answer from HTTP_HDRS replaces the 100 */
  fd = client();
  r = roundtrip(fd, "PUT /deny HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n",
                "denied", 1);
  assert_true(strncmp(r->data, "HTTP/1.1 401 Unauthorized\r\n", 27) == 0);
  assert_null(strstr(r->data, "100 Continue"));
  close(fd);
}

static void chunked_replies(void **state) {
  (void) state;
  int fd = client();
  struct reply *r = roundtrip(fd, "GET /chunked HTTP/1.1\r\nHost: x\r\n\r\n", "0\r\n\r\n", 1);
  assert_non_null(strstr(r->data, "Transfer-Encoding: chunked\r\n"));
  assert_null(strstr(r->data, "Content-Length"));
  assert_non_null(strstr(r->data, "\r\n\r\n2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n"));
  r = roundtrip(fd, "GET /sse HTTP/1.1\r\nHost: x\r\n\r\n", "0\r\n\r\n", 1);
  assert_non_null(strstr(r->data, "Content-Type: text/event-stream\r\n"));
  assert_non_null(strstr(r->data, "event: tick\ndata: a\ndata: b\n\n"));
  close(fd);
}

static void header_injection(void **state) {
  (void) state;
  int fd = client();
  struct reply *r = roundtrip(fd, "GET /inject HTTP/1.1\r\nHost: x\r\n\r\n", "ok", 1);
  for (int i = 0; i < 5; i++) assert_int_equal(inject_results[i], CM_EINVAL);
  assert_int_equal(inject_results[5], 0);
  assert_int_equal(count(r->data, "HTTP/1.1"), 1); /* only the good reply went out */
  assert_non_null(strstr(r->data, "Set-Cookie: a=b\r\nX-Ok: 1\r\n"));
  assert_true(cm_http_header_ok(cm_str_c("X-A"), cm_str_c("b c")));
  assert_false(cm_http_header_ok(cm_str_c("X A"), cm_str_c("b")));
  assert_false(cm_http_header_ok(cm_str_c("X"), cm_str_c("b\r\nY: c")));
  assert_false(cm_http_header_ok(cm_str_c(""), cm_str_c("b")));
  close(fd);
}

/* The rules for an application's header block, without a connection: what
 * is refused, and which framing headers are seen (names in any case). */
static void header_block_rules(void **state) {
  (void) state;
  const char *good[] = {
      NULL, "", "X: 1", "X: 1\r\n", "X:1\r\nY:  2 \t\r\n", "X-Empty:\r\n", "X: a\tb \x80\xff\r\n",
      "!#$%&'*+-.^_`|~09azAZ: v\r\n", "Content-Length: 0\r\nX: 1",
  };
  for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
    assert_true(cm_http_headers_ok(good[i], NULL));
  }
  const char *bad[] = {
      ": v\r\n",          "X\r\n",          "X : v\r\n",          "X:\rv\r\n",       "X: v\n",
      "X: v\r",           "X: v\rY: w\r\n", "X: v\r\n\r\n",        "X: v\r\nY: w\r\r\n", "X: a\x7f\r\n",
      "X: a\x01\r\n",     "\r\nX: v\r\n",   "X(: v\r\n",           "X\x80: v\r\n",    " X: v\r\n",
      "Content-Length: 1\r\ncontent-length: 1\r\n", "Content-Length: -1\r\n",
      "Content-Length: \r\n", "Content-Length: 12345678901234567890\r\n", "Content-Length: 1 2\r\n",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    assert_false(cm_http_headers_ok(bad[i], NULL));
  }
  bool framing = true;
  assert_true(cm_http_headers_ok("Content-Type: a\r\nHost: b\r\nX-Content-Length: 3\r\n", &framing));
  assert_false(framing);
  assert_true(cm_http_headers_ok("cONTENT-lENGTH: 3\r\n", &framing));
  assert_true(framing);
  assert_true(cm_http_headers_ok("TRANSFER-ENCODING: gzip, Chunked", &framing));
  assert_true(framing);
  assert_true(cm_http_headers_ok("Transfer-Encodinx: chunked\r\nContent-Lengtx: 3\r\n", &framing));
  assert_false(framing);
  assert_null(cm_http_reply_check(200, "CONTENT-LENGTH:  7 \r\n", 7));
  assert_non_null(cm_http_reply_check(200, "content-length: 7\r\n", 8));
  assert_non_null(cm_http_reply_check(200, "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n", 3));
  assert_non_null(cm_http_reply_check(1000, NULL, 0));
  assert_null(cm_http_reply_check(999, NULL, 0));
}

static void header_timeout(void **state) {
  (void) state;
  cm_mgr_free(&mgr);
  struct cm_http_serve_opts opts = {.header_timeout_ms = 50, .body_timeout_ms = 50};
  assert_int_equal(start_server(&opts), 0);
  int fd = client();
  struct reply *r = roundtrip(fd, "GET / HTTP/1.1\r\nHost:", NULL, 0);
  assert_true(r->eof);
  assert_true(strncmp(r->data, "HTTP/1.1 408 ", 13) == 0);
  close(fd);
  fd = client();
  r = roundtrip(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc", NULL, 0);
  assert_true(r->eof);
  assert_true(strncmp(r->data, "HTTP/1.1 408 ", 13) == 0);
  assert_non_null(strstr(r->data, "stalled"));
  close(fd);
  /* an idle keep-alive connection is not a stalled request */
  fd = client();
  r = roundtrip(fd, "GET /idle HTTP/1.1\r\nHost: x\r\n\r\n", "uri=/idle", 1);
  for (int i = 0; i < 30; i++) cm_mgr_poll(&mgr, 5);
  r = roundtrip(fd, "GET /again HTTP/1.1\r\nHost: x\r\n\r\n", "uri=/again", 1);
  assert_false(r->eof);
  close(fd);
  /* small limits from the options */
  cm_mgr_free(&mgr);
  struct cm_http_serve_opts small = {.limits = {.max_body = 4}};
  assert_int_equal(start_server(&small), 0);
  fd = client();
  r = roundtrip(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", NULL, 0);
  assert_true(strncmp(r->data, "HTTP/1.1 413 ", 13) == 0);
  close(fd);
  /* a client that keeps uploading the refused body still reads the 413
   * (lingering close: no RST while its data is in flight) */
  fd = client();
  const char *big_head = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 400000\r\n\r\n";
  client_send(fd, big_head, strlen(big_head));
  static char junk[400000];
  memset(junk, 'j', sizeof(junk));
  client_send(fd, junk, sizeof(junk));
  collect(fd, r, NULL, 0);
  assert_true(strncmp(r->data, "HTTP/1.1 413 ", 13) == 0);
  assert_true(r->eof);
  close(fd);
  fd = client();
  r = roundtrip(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n",
                NULL, 0);
  assert_true(strncmp(r->data, "HTTP/1.1 413 ", 13) == 0);
  close(fd);
}


/* ------------------------------------------------------ curl, a real peer */

/* Runs curl with args (the URL's port is filled in for "%u"), polling the
 * server meanwhile; returns what curl wrote to stdout. */
static const char *run_curl(const char *const *args, int *status) {
  static char urls[8][128];
  int nurls = 0;
  const char *argv[32];
  int n = 0;
  argv[n++] = "curl";
  for (; *args != NULL && n < 30; args++) {
    if (strstr(*args, "%u") != NULL && nurls < 8) {
      snprintf(urls[nurls], sizeof(urls[nurls]), *args, (unsigned) port);
      argv[n++] = urls[nurls++];
    } else {
      argv[n++] = *args;
    }
  }
  argv[n] = NULL;
  return peer_run_polling(&mgr, argv, status);
}

static void with_curl(void **state) {
  (void) state;
  int st;
  const char *get[] = {"-s", "-i", "http://127.0.0.1:%u/hello?x=1", NULL};
  const char *out = run_curl(get, &st);
  assert_int_equal(st, 0);
  assert_true(strncmp(out, "HTTP/1.1 200 OK\r\n", 17) == 0);
  assert_non_null(strstr(out, "uri=/hello"));
  /* several requests on one connection (keep-alive) */
  const char *two[] = {"-s", "http://127.0.0.1:%u/one", "http://127.0.0.1:%u/two", NULL};
  out = run_curl(two, &st);
  assert_int_equal(st, 0);
  assert_string_equal(out, "uri=/oneuri=/two");
  /* a chunked upload, and a body big enough for Expect: 100-continue */
  const char *up[] = {"-s", "-H", "Transfer-Encoding: chunked", "--data-binary", "chunked upload",
                      "http://127.0.0.1:%u/echo", NULL};
  out = run_curl(up, &st);
  assert_int_equal(st, 0);
  assert_string_equal(out, "chunked upload");
  const char *expect[] = {"-s", "-H", "Expect: 100-continue", "--data-binary", "waited",
                          "http://127.0.0.1:%u/echo", NULL};
  out = run_curl(expect, &st);
  assert_string_equal(out, "waited");
  const char *chunked[] = {"-s", "--raw", "http://127.0.0.1:%u/chunked", NULL};
  out = run_curl(chunked, &st);
  assert_string_equal(out, "2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n");
  const char *chunked2[] = {"-s", "http://127.0.0.1:%u/chunked", NULL};
  out = run_curl(chunked2, &st);
  assert_string_equal(out, "abcd");
  const char *head[] = {"-s", "-I", "http://127.0.0.1:%u/h", NULL};
  out = run_curl(head, &st);
  assert_int_equal(st, 0);
  assert_non_null(strstr(out, "Content-Length: 6\r\n"));
  const char *http10[] = {"-s", "-0", "http://127.0.0.1:%u/ten", NULL};
  out = run_curl(http10, &st);
  assert_string_equal(out, "uri=/ten");
}

/* Random requests (Content-Length and chunked bodies with extensions and
 * trailers), pipelined and cut at random points: every body comes back, in
 * order. */
static void random_pipelines(void **state) {
  (void) state;
  static char req[1 << 17], expect[1 << 17];
  static struct reply r;
  unsigned seed = 12345;
  for (int round = 0; round < 20; round++) {
    size_t n = 0, e = 0;
    int count = 1 + rand_r(&seed) % 8;
    for (int k = 0; k < count; k++) {
      char body[2048];
      size_t blen = (size_t) (rand_r(&seed) % (int) sizeof(body));
      for (size_t i = 0; i < blen; i++) body[i] = (char) ('a' + rand_r(&seed) % 26);
      if (rand_r(&seed) % 2 == 0) {
        n += (size_t) sprintf(req + n, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n", blen);
        memcpy(req + n, body, blen);
        n += blen;
      } else {
        n += (size_t) sprintf(req + n, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
        for (size_t off = 0; off < blen;) {
          size_t piece = 1 + (size_t) (rand_r(&seed) % 300);
          if (piece > blen - off) piece = blen - off;
          n += (size_t) sprintf(req + n, rand_r(&seed) % 3 == 0 ? "%zX;ext=\"v\"\r\n" : "%zx\r\n", piece);
          memcpy(req + n, body + off, piece);
          n += piece;
          memcpy(req + n, "\r\n", 2);
          n += 2;
          off += piece;
        }
        n += (size_t) sprintf(req + n, rand_r(&seed) % 2 ? "0\r\nX-Sum: 1\r\n\r\n" : "0\r\n\r\n");
      }
      e += (size_t) sprintf(expect + e, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n\r\n", blen);
      memcpy(expect + e, body, blen);
      e += blen;
    }
    int fd = client();
    for (size_t off = 0; off < n;) {
      size_t piece = 1 + (size_t) (rand_r(&seed) % 700);
      if (piece > n - off) piece = n - off;
      client_send(fd, req + off, piece);
      off += piece;
      if (rand_r(&seed) % 2) cm_mgr_poll(&mgr, 0);
    }
    r.len = 0;
    for (int i = 0; i < 400 && r.len < e; i++) {
      cm_mgr_poll(&mgr, 5);
      ssize_t got;
      while ((got = recv(fd, r.data + r.len, sizeof(r.data) - r.len, 0)) > 0) r.len += (size_t) got;
    }
    assert_int_equal(r.len, e);
    assert_memory_equal(r.data, expect, e);
    close(fd);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(get_keep_alive),
      cmocka_unit_test(pipelined),
      cmocka_unit_test(bodies),
      cmocka_unit_test(take_over_after_hdrs),
      cmocka_unit_test(random_pipelines),
      cmocka_unit_test(big_bodies),
      cmocka_unit_test(rejects),
      cmocka_unit_test(targets_and_paths),
      cmocka_unit_test(sse_line_ends),
      cmocka_unit_test(connect_requests),
      cmocka_unit_test(byte_at_a_time),
      cmocka_unit_test(closing_requests),
      cmocka_unit_test(head_and_no_content),
      cmocka_unit_test(expect_continue),
      cmocka_unit_test(chunked_replies),
      cmocka_unit_test(header_injection),
      cmocka_unit_test(header_block_rules),
      cmocka_unit_test(with_curl),
      cmocka_unit_test(header_timeout),
  };
  return cmocka_run_group_tests_name("http_server", tests, setup, teardown);
}
