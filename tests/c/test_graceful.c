/*
 * What a graceful stop or reload of worker processes is built on, over real
 * loopback sockets: cm_listen_fd() on a listening socket someone else keeps
 * (a connection waiting in its accept queue survives the listener that
 * closes, and the next holder serves it), and cm_http_end_keep_alive()
 * (what was sent is answered, the last reply says "Connection: close", an
 * idle connection closes).
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testutil.h"

static struct cm_mgr mgr;
static uint16_t port;
static int msgs_seen;
static bool defer_reply;          /* HTTP_MSG leaves the reply for later */
static struct cm_conn *deferred;  /* the connection awaiting it */

static void handler(struct cm_conn *c, int ev, void *ev_data) {
  struct cm_http_msg *hm = ev_data;
  if (ev != CM_EV_HTTP_MSG) return;
  msgs_seen++;
  if (defer_reply) {
    deferred = c;
    return;
  }
  char s[128];
  snprintf(s, sizeof(s), "uri=%.*s", (int) hm->uri.len, hm->uri.buf);
  assert_int_equal(cm_http_reply(c, 200, NULL, s, strlen(s)), 0);
}

/* A listening socket on a free loopback port, as a supervisor makes it. */
static int make_listener(void) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(fd >= 0);
  struct sockaddr_in sa = {.sin_family = AF_INET};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(bind(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
  assert_int_equal(listen(fd, 16), 0);
  socklen_t len = sizeof(sa);
  assert_int_equal(getsockname(fd, (struct sockaddr *) &sa, &len), 0);
  port = ntohs(sa.sin_port);
  return fd;
}

static struct cm_conn *serve_fd(struct cm_mgr *m, int fd) {
  struct cm_conn *l = cm_listen_fd(m, fd, handler, NULL);
  assert_non_null(l);
  assert_true(l->is_listening);
  assert_int_equal(l->loc.port, port);
  assert_int_equal(cm_http_serve(l, NULL), 0);
  return l;
}

static int client(void) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(fd >= 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(connect(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
  fcntl(fd, F_SETFL, O_NONBLOCK);
  return fd;
}

static void client_send(int fd, const char *s) {
  assert_int_equal(send(fd, s, strlen(s), MSG_NOSIGNAL), (ssize_t) strlen(s));
}

struct reply {
  char data[8192];
  size_t len;
  bool eof;
  bool reset;
};

static size_t count(const char *hay, const char *needle) {
  size_t n = 0;
  for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + 1, needle)) n++;
  return n;
}

/* Polls m and reads until `want` times `until`, or EOF, or ~2 s. */
static void collect(struct cm_mgr *m, int fd, struct reply *r, const char *until, size_t want) {
  r->len = 0;
  r->eof = r->reset = false;
  r->data[0] = '\0';
  for (int i = 0; i < 400; i++) {
    cm_mgr_poll(m, 5);
    for (;;) {
      ssize_t n = recv(fd, r->data + r->len, sizeof(r->data) - 1 - r->len, 0);
      if (n > 0) {
        r->len += (size_t) n;
        r->data[r->len] = '\0';
        continue;
      }
      if (n == 0) r->eof = true;
      if (n < 0 && errno == ECONNRESET) r->reset = true;
      break;
    }
    if (r->eof || r->reset || (until != NULL && count(r->data, until) >= want)) return;
  }
}

static struct cm_conn *first_http_conn(struct cm_mgr *m) {
  for (struct cm_conn *c = m->conns; c != NULL; c = c->next) {
    if (!c->is_listening && !c->is_internal) return c;
  }
  return NULL;
}

/* ----------------------------------------------------------------- tests */

/* A connection that waits in the accept queue while one holder closes its
 * listener is served by the next holder: nothing reset. */
static void listen_fd_handover(void **state) {
  (void) state;
  int sock = make_listener();
  struct cm_mgr m1, m2;
  assert_int_equal(cm_mgr_init(&m1), 0);
  struct cm_conn *l1 = serve_fd(&m1, fcntl(sock, F_DUPFD_CLOEXEC, 0));
  int a = client();
  client_send(a, "GET /one HTTP/1.1\r\nHost: x\r\n\r\n");
  struct reply r;
  collect(&m1, a, &r, "uri=/one", 1);
  assert_non_null(strstr(r.data, "uri=/one"));

  /* m1 stops listening; a client connects (the kernel queues it). */
  cm_close(l1);
  cm_mgr_poll(&m1, 0);
  int b = client();
  client_send(b, "GET /two HTTP/1.1\r\nHost: x\r\n\r\n");
  cm_mgr_poll(&m1, 10); /* m1 must not take it */
  assert_int_equal(recv(b, r.data, sizeof(r.data), 0), -1);
  assert_true(errno == EAGAIN || errno == EWOULDBLOCK);

  assert_int_equal(cm_mgr_init(&m2), 0);
  serve_fd(&m2, fcntl(sock, F_DUPFD_CLOEXEC, 0));
  collect(&m2, b, &r, "uri=/two", 1);
  assert_false(r.reset);
  assert_non_null(strstr(r.data, "HTTP/1.1 200 OK\r\n"));
  assert_non_null(strstr(r.data, "uri=/two"));
  close(a);
  close(b);
  cm_mgr_free(&m1);
  cm_mgr_free(&m2);
  close(sock);
}

static void listen_fd_refuses(void **state) {
  (void) state;
  struct cm_mgr m;
  assert_int_equal(cm_mgr_init(&m), 0);
  int p[2];
  assert_int_equal(pipe(p), 0);
  errno = 0;
  assert_null(cm_listen_fd(&m, p[0], handler, NULL)); /* takes it: closed */
  assert_int_equal(errno, ENOTSOCK);
  assert_int_equal(fcntl(p[0], F_GETFD), -1);
  close(p[1]);
  int unbound = socket(AF_INET, SOCK_STREAM, 0);
  errno = 0;
  assert_null(cm_listen_fd(&m, unbound, handler, NULL));
  assert_int_equal(errno, EINVAL);
  assert_int_equal(fcntl(unbound, F_GETFD), -1);
  assert_null(first_http_conn(&m));
  cm_mgr_free(&m);
}

static int setup(void **state) {
  (void) state;
  msgs_seen = 0;
  defer_reply = false;
  deferred = NULL;
  if (cm_mgr_init(&mgr) != 0) return -1;
  serve_fd(&mgr, make_listener());
  return 0;
}

static int teardown(void **state) {
  (void) state;
  cm_mgr_free(&mgr);
  return 0;
}

/* A reply pending when keep-alive ends says "Connection: close", then the
 * connection closes. */
static void pending_reply_says_close(void **state) {
  (void) state;
  int fd = client();
  struct reply r;
  defer_reply = true;
  client_send(fd, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
  for (int i = 0; i < 400 && deferred == NULL; i++) cm_mgr_poll(&mgr, 5);
  assert_non_null(deferred);
  assert_int_equal(cm_http_end_keep_alive(deferred, 60000), 0);
  assert_int_equal(cm_http_reply(deferred, 200, NULL, "late", 4), 0);
  collect(&mgr, fd, &r, NULL, 0);
  assert_true(r.eof);
  assert_false(r.reset);
  assert_non_null(strstr(r.data, "HTTP/1.1 200 OK\r\n"));
  assert_non_null(strstr(r.data, "Connection: close\r\n"));
  assert_non_null(strstr(r.data, "\r\n\r\nlate"));
  close(fd);
}

/* An idle connection closes (at a poll, not in the call); 0: at once. */
static void idle_closes(void **state) {
  (void) state;
  int fd = client();
  struct reply r;
  client_send(fd, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
  collect(&mgr, fd, &r, "uri=/a", 1);
  assert_null(strstr(r.data, "Connection: close"));
  struct cm_conn *c = first_http_conn(&mgr);
  assert_non_null(c);
  assert_int_equal(cm_http_end_keep_alive(c, 0), 0);
  assert_false(c->is_closing); /* nothing happens inside the call */
  collect(&mgr, fd, &r, NULL, 0);
  assert_true(r.eof);
  assert_int_equal(r.len, 0);
  close(fd);
}

/* A request that comes while an idle connection is given time is answered,
 * with "Connection: close". */
static void request_in_grace_answered(void **state) {
  (void) state;
  int fd = client();
  struct reply r;
  client_send(fd, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
  collect(&mgr, fd, &r, "uri=/a", 1);
  struct cm_conn *c = first_http_conn(&mgr);
  assert_int_equal(cm_http_end_keep_alive(c, 60000), 0);
  cm_mgr_poll(&mgr, 5);
  client_send(fd, "GET /b HTTP/1.1\r\nHost: x\r\n\r\n");
  collect(&mgr, fd, &r, NULL, 0);
  assert_true(r.eof);
  assert_false(r.reset);
  assert_non_null(strstr(r.data, "uri=/b"));
  assert_non_null(strstr(r.data, "Connection: close\r\n"));
  close(fd);
}

/* Requests already received are all answered; only the last reply closes. */
static void pipelined_all_answered(void **state) {
  (void) state;
  int fd = client();
  struct reply r;
  defer_reply = true;
  client_send(fd, "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n"
                  "GET /c HTTP/1.1\r\nHost: x\r\n\r\n");
  for (int i = 0; i < 400 && deferred == NULL; i++) cm_mgr_poll(&mgr, 5);
  assert_non_null(deferred);
  assert_int_equal(msgs_seen, 1);
  assert_int_equal(cm_http_end_keep_alive(deferred, 60000), 0);
  defer_reply = false;
  assert_int_equal(cm_http_reply(deferred, 200, NULL, "uri=/a", 6), 0);
  collect(&mgr, fd, &r, NULL, 0);
  assert_true(r.eof);
  assert_int_equal(msgs_seen, 3);
  assert_int_equal(count(r.data, "HTTP/1.1 200 OK\r\n"), 3);
  assert_int_equal(count(r.data, "Connection: close\r\n"), 1);
  const char *close_at = strstr(r.data, "Connection: close\r\n");
  assert_true(close_at > strstr(r.data, "uri=/b"));
  assert_non_null(strstr(close_at, "uri=/c"));
  close(fd);
}

static void not_http_refused(void **state) {
  (void) state;
  struct cm_conn *l = mgr.conns;
  while (l != NULL && !l->is_listening) l = l->next;
  assert_non_null(l);
  assert_int_equal(cm_http_end_keep_alive(l, 0), CM_EINVAL);
  assert_false(l->is_closing);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(listen_fd_handover),
      cmocka_unit_test(listen_fd_refuses),
      cmocka_unit_test_setup_teardown(pending_reply_says_close, setup, teardown),
      cmocka_unit_test_setup_teardown(idle_closes, setup, teardown),
      cmocka_unit_test_setup_teardown(request_in_grace_answered, setup, teardown),
      cmocka_unit_test_setup_teardown(pipelined_all_answered, setup, teardown),
      cmocka_unit_test_setup_teardown(not_http_refused, setup, teardown),
  };
  return cmocka_run_group_tests_name("graceful", tests, NULL, NULL);
}
