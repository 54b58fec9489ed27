/* cm_send_file: order with cm_send, fd ownership, files that end early. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testutil.h"

static struct cm_mgr mgr;
static char path_a[64], path_b[64];
static int mode;          /* what the server does on ACCEPT */
static int errors_seen;
static char last_error[256];

static int open_ro(const char *p) {
  int fd = open(p, O_RDONLY | O_CLOEXEC);
  assert_true(fd >= 0);
  return fd;
}

static void handler(struct cm_conn *c, int ev, void *ev_data) {
  if (ev == CM_EV_ERROR) {
    errors_seen++;
    snprintf(last_error, sizeof(last_error), "%s", (const char *) ev_data);
  }
  if (ev != CM_EV_ACCEPT) return;
  if (mode == 0) {
    /* interleaved: bytes, file, bytes, file, bytes */
    assert_true(cm_send(c, "<", 1) == 0);
    assert_true(cm_send_file(c, open_ro(path_a), 2, 5) == 0);
    assert_true(cm_send(c, "|", 1) == 0);
    assert_true(cm_send_file(c, open_ro(path_b), 0, 3) == 0);
    assert_true(cm_send_file(c, open_ro(path_a), 0, 0) == 0); /* empty: nothing queued */
    assert_true(cm_send(c, ">", 1) == 0);
    cm_drain(c);
  } else {
    /* a file that is shorter than announced */
    assert_true(cm_send_file(c, open_ro(path_a), 5, 100) == 0);
  }
}

static int setup(void **state) {
  (void) state;
  snprintf(path_a, sizeof(path_a), "/tmp/cm_sendfile_a_XXXXXX");
  snprintf(path_b, sizeof(path_b), "/tmp/cm_sendfile_b_XXXXXX");
  int a = mkstemp(path_a), b = mkstemp(path_b);
  assert_true(a >= 0 && b >= 0);
  assert_int_equal(write(a, "0123456789", 10), 10);
  assert_int_equal(write(b, "abcdef", 6), 6);
  close(a);
  close(b);
  errors_seen = 0;
  return cm_mgr_init(&mgr);
}

static int teardown(void **state) {
  (void) state;
  cm_mgr_free(&mgr);
  unlink(path_a);
  unlink(path_b);
  return 0;
}

/* Connects to l and reads until EOF (polling the manager). */
static size_t fetch(struct cm_conn *l, char *out, size_t cap) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(l->loc.port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(connect(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
  fcntl(fd, F_SETFL, O_NONBLOCK);
  size_t len = 0;
  for (int i = 0; i < 1000; i++) {
    cm_mgr_poll(&mgr, 2);
    ssize_t n = recv(fd, out + len, cap - len, 0);
    if (n > 0) len += (size_t) n;
    if (n == 0 || (n < 0 && errno == ECONNRESET)) break;
  }
  close(fd);
  return len;
}

static void keeps_order(void **state) {
  (void) state;
  mode = 0;
  struct cm_conn *l = cm_listen(&mgr, "tcp://127.0.0.1:0", handler, NULL);
  assert_non_null(l);
  char out[64];
  size_t n = fetch(l, out, sizeof(out));
  assert_int_equal(n, 11);
  assert_memory_equal(out, "<23456|abc>", 11);
  assert_int_equal(errors_seen, 0);
}

static void short_file_closes(void **state) {
  (void) state;
  mode = 1;
  struct cm_conn *l = cm_listen(&mgr, "tcp://127.0.0.1:0", handler, NULL);
  char out[256];
  size_t n = fetch(l, out, sizeof(out));
  assert_int_equal(n, 5); /* what the file had, then the connection closed */
  assert_memory_equal(out, "56789", 5);
  assert_int_equal(errors_seen, 1);
  assert_non_null(strstr(last_error, "shorter"));
}

static bool fd_is_open(int fd) {
  return fcntl(fd, F_GETFD) != -1 || errno != EBADF;
}

static void takes_the_fd(void **state) {
  (void) state;
  struct cm_conn *u = cm_listen(&mgr, "udp://127.0.0.1:0", NULL, NULL);
  struct cm_conn *l = cm_listen(&mgr, "tcp://127.0.0.1:0", NULL, NULL);
  int fd = open_ro(path_a);
  assert_true(cm_send_file(u, fd, 0, 1) != 0); /* UDP: refused, fd closed */
  assert_false(fd_is_open(fd));
  fd = open_ro(path_a);
  assert_true(cm_send_file(l, fd, 0, 1) != 0); /* a listener */
  assert_false(fd_is_open(fd));
  assert_true(cm_send_file(l, -1, 0, 1) != 0);
  /* queued on a connection that closes before sending: closed with it */
  struct cm_conn *c = cm_connect(&mgr, "tcp://127.0.0.1:1", NULL, NULL);
  fd = open_ro(path_a);
  assert_true(cm_send_file(c, fd, 0, 10) == 0);
  assert_true(fd_is_open(fd));
  cm_close(c);
  cm_mgr_poll(&mgr, 0);
  assert_false(fd_is_open(fd));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(keeps_order, setup, teardown),
      cmocka_unit_test_setup_teardown(short_file_closes, setup, teardown),
      cmocka_unit_test_setup_teardown(takes_the_fd, setup, teardown),
  };
  return cmocka_run_group_tests_name("send_file", tests, NULL, NULL);
}
