/*
 * What accepting and closing a connection costs, and that the savings are
 * safe: accepted sockets inherit TCP_NODELAY from the listener (so accept
 * sets no option), the local address is known without getsockname() or
 * read on demand, a connection closed while a forked child holds a copy of
 * its descriptor leaves the epoll set (no events for freed memory), and an
 * idle keep-alive connection holds no buffers.  Real sockets on loopback.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

static struct cm_mgr mgr;
static struct cm_conn *accepted;

static void on_event(struct cm_conn *c, int ev, void *ev_data) {
  (void) ev_data;
  if (ev == CM_EV_ACCEPT) accepted = c;
  if (ev == CM_EV_CLOSE && c == accepted) accepted = NULL;
  if (ev == CM_EV_HTTP_MSG) cm_http_reply(c, 200, NULL, "hello", 5);
}

static int connect_to(const char *ip, uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
  inet_pton(AF_INET, ip, &sa.sin_addr);
  assert_int_equal(connect(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
  return fd;
}

static void poll_until_accepted(void) {
  for (int i = 0; i < 200 && accepted == NULL; i++) cm_mgr_poll(&mgr, 10);
  assert_non_null(accepted);
}

static int setup(void **state) {
  (void) state;
  accepted = NULL;
  return cm_mgr_init(&mgr);
}

static int teardown(void **state) {
  (void) state;
  cm_mgr_free(&mgr);
  return 0;
}

static void test_nodelay_inherited(void **state) {
  (void) state;
  struct cm_conn *l = cm_listen(&mgr, "tcp://127.0.0.1:0", on_event, NULL);
  assert_non_null(l);
  int fd = connect_to("127.0.0.1", l->loc.port);
  poll_until_accepted();
  int on = 0;
  socklen_t len = sizeof(on);
  assert_int_equal(getsockopt(accepted->fd, IPPROTO_TCP, TCP_NODELAY, &on, &len), 0);
  assert_true(on != 0);
  close(fd);
}

static void test_local_addr_bound_listener(void **state) {
  (void) state;
  struct cm_conn *l = cm_listen(&mgr, "tcp://127.0.0.1:0", on_event, NULL);
  assert_non_null(l);
  int fd = connect_to("127.0.0.1", l->loc.port);
  poll_until_accepted();
  char ip[64];
  assert_int_equal(accepted->loc.port, l->loc.port);
  assert_string_equal(cm_addr_ip_str(&accepted->loc, ip, sizeof(ip)), "127.0.0.1");
  assert_string_equal(cm_addr_ip_str(cm_conn_local_addr(accepted), ip, sizeof(ip)), "127.0.0.1");
  close(fd);
}

static void test_local_addr_wildcard_listener(void **state) {
  (void) state;
  struct cm_conn *l = cm_listen(&mgr, "tcp://0.0.0.0:0", on_event, NULL);
  assert_non_null(l);
  int fd = connect_to("127.0.0.1", l->loc.port);
  poll_until_accepted();
  char ip[64];
  assert_int_equal(accepted->loc.port, l->loc.port); /* known without a system call */
  const struct cm_addr *a = cm_conn_local_addr(accepted);
  assert_ptr_equal(a, &accepted->loc);
  assert_string_equal(cm_addr_ip_str(a, ip, sizeof(ip)), "127.0.0.1");
  assert_string_equal(cm_addr_ip_str(&accepted->loc, ip, sizeof(ip)), "127.0.0.1");
  close(fd);
}

/* A child holds copies of the descriptors while the parent closes the
 * connection and the peer keeps writing: the parent's epoll must not
 * report the closed connection (under ASan a stale registration is a
 * use after free; without, the counter below catches it). */
static int events_after_close;
static void count_events(struct cm_conn *c, int ev, void *ev_data) {
  (void) ev_data;
  if (ev == CM_EV_ACCEPT) accepted = c;
  if (ev == CM_EV_CLOSE && c == accepted) accepted = NULL;
  if (ev == CM_EV_READ && c->is_closing) events_after_close++;
}

static void test_close_after_fork(void **state) {
  (void) state;
  struct cm_conn *l = cm_listen(&mgr, "tcp://127.0.0.1:0", count_events, NULL);
  assert_non_null(l);
  int fd = connect_to("127.0.0.1", l->loc.port);
  poll_until_accepted();
  int gate[2];
  assert_int_equal(pipe(gate), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    char b;
    close(gate[1]);
    (void) !read(gate[0], &b, 1); /* holds the copies until the parent is done */
    _exit(0);
  }
  close(gate[0]);
  unsigned long gone_id = accepted->id;
  cm_close(accepted);
  cm_mgr_poll(&mgr, 0);
  assert_null(accepted);
  /* The socket is still open in the child: data makes it readable. */
  for (int i = 0; i < 5; i++) {
    assert_int_equal(send(fd, "x", 1, MSG_NOSIGNAL), 1);
    cm_mgr_poll(&mgr, 20);
  }
  for (struct cm_conn *c = mgr.conns; c != NULL; c = c->next) assert_true(c->id != gone_id);
  assert_int_equal(events_after_close, 0);
  close(gate[1]);
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  close(fd);
}

/* After a keep-alive request is answered, the connection holds no buffer
 * (they went back to the manager's pool), and the next request on it is
 * served as well. */
static void test_idle_connection_releases_buffers(void **state) {
  (void) state;
  struct cm_conn *l = cm_http_listen(&mgr, "http://127.0.0.1:0", on_event, NULL, NULL);
  assert_non_null(l);
  int fd = connect_to("127.0.0.1", l->loc.port);
  for (int round = 0; round < 2; round++) {
    const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(send(fd, req, sizeof(req) - 1, 0), (ssize_t) sizeof(req) - 1);
    char buf[1024];
    size_t got = 0;
    while (got == 0 || strstr(buf, "hello") == NULL) {
      cm_mgr_poll(&mgr, 10);
      ssize_t n = recv(fd, buf + got, sizeof(buf) - 1 - got, MSG_DONTWAIT);
      if (n > 0) got += (size_t) n;
      buf[got] = 0;
    }
    assert_non_null(strstr(buf, "HTTP/1.1 200"));
    cm_mgr_poll(&mgr, 0);
    assert_non_null(accepted);
    assert_int_equal(accepted->recv.cap, 0);
    assert_int_equal(accepted->send.cap, 0);
    assert_null(accepted->recv.ptr);
    assert_null(accepted->send.ptr);
  }
  assert_true(mgr.buf_pool_n >= 1); /* kept for the next busy connection */
  close(fd);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_nodelay_inherited, setup, teardown),
      cmocka_unit_test_setup_teardown(test_local_addr_bound_listener, setup, teardown),
      cmocka_unit_test_setup_teardown(test_local_addr_wildcard_listener, setup, teardown),
      cmocka_unit_test_setup_teardown(test_close_after_fork, setup, teardown),
      cmocka_unit_test_setup_teardown(test_idle_connection_releases_buffers, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
