/*
 * One manager per thread, each with its own SO_REUSEPORT listener on the
 * same port (cm_listen_ex with reuse_port): new connections are spread by
 * the kernel, and both managers serve requests.  cm_wakeup() from the main
 * thread stops them.  Real sockets on loopback.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testutil.h"

#define NTHREADS 2
#define MAX_CONNS 400

struct worker {
  struct cm_mgr mgr;
  struct cm_conn *listener;
  unsigned long listener_id;
  atomic_int served;
  atomic_bool stop;
  pthread_t thread;
};

static void on_event(struct cm_conn *c, int ev, void *ev_data) {
  struct worker *w = c->fn_data;
  if (ev == CM_EV_HTTP_MSG) {
    atomic_fetch_add(&w->served, 1);
    cm_http_reply(c, 200, NULL, "hi", 2);
  }
  if (ev == CM_EV_WAKEUP) atomic_store(&w->stop, true);
  (void) ev_data;
}

static void *run(void *arg) {
  struct worker *w = arg;
  while (!atomic_load(&w->stop)) cm_mgr_poll(&w->mgr, 1000);
  return NULL;
}

static bool start_worker(struct worker *w, uint16_t port) {
  char url[64];
  snprintf(url, sizeof(url), "http://127.0.0.1:%u", port);
  if (cm_mgr_init(&w->mgr) != 0 || cm_wakeup_init(&w->mgr) != 0) return false;
  struct cm_listen_opts lo = {.reuse_port = true};
  w->listener = cm_listen_ex(&w->mgr, url, on_event, w, &lo);
  if (w->listener == NULL || cm_http_serve(w->listener, NULL) != 0) return false;
  w->listener_id = w->listener->id;
  return true;
}

static bool one_request(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
  inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) != 0) {
    close(fd);
    return false;
  }
  const char req[] = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  bool ok = send(fd, req, sizeof(req) - 1, 0) == (ssize_t) sizeof(req) - 1;
  char buf[512];
  size_t got = 0;
  ssize_t n;
  while (ok && got < sizeof(buf) - 1 && (n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0)) > 0)
    got += (size_t) n;
  buf[got] = 0;
  close(fd);
  return ok && strncmp(buf, "HTTP/1.1 200", 12) == 0;
}

static void test_two_managers_two_threads(void **state) {
  (void) state;
  static struct worker w[NTHREADS];
  assert_true(start_worker(&w[0], 0));
  uint16_t port = w[0].listener->loc.port;
  for (int i = 1; i < NTHREADS; i++) assert_true(start_worker(&w[i], port));
  for (int i = 0; i < NTHREADS; i++) assert_int_equal(pthread_create(&w[i].thread, NULL, run, &w[i]), 0);
  int total = 0;
  for (int n = 0; n < MAX_CONNS; n++) {
    assert_true(one_request(port));
    total++;
    bool all = true;
    for (int i = 0; i < NTHREADS; i++) all = all && atomic_load(&w[i].served) > 0;
    if (all && n >= 20) break;
  }
  int sum = 0;
  for (int i = 0; i < NTHREADS; i++) {
    /* cm_wakeup is the one call another thread may make on a manager. */
    assert_true(cm_wakeup(&w[i].mgr, w[i].listener_id, "stop", 4) == 0);
    assert_int_equal(pthread_join(w[i].thread, NULL), 0);
    assert_true(atomic_load(&w[i].served) > 0);
    sum += atomic_load(&w[i].served);
    cm_mgr_free(&w[i].mgr);
  }
  assert_int_equal(sum, total);
}

/* A second plain listener on a port taken without reuse_port fails. */
static void test_without_reuse_port_the_port_is_taken(void **state) {
  (void) state;
  struct cm_mgr a, b;
  assert_int_equal(cm_mgr_init(&a), 0);
  assert_int_equal(cm_mgr_init(&b), 0);
  struct cm_listen_opts lo = {.reuse_port = true};
  struct cm_conn *l = cm_listen_ex(&a, "tcp://127.0.0.1:0", NULL, NULL, &lo);
  assert_non_null(l);
  char url[64];
  snprintf(url, sizeof(url), "tcp://127.0.0.1:%u", l->loc.port);
  assert_null(cm_listen(&b, url, NULL, NULL));
  assert_non_null(cm_listen_ex(&b, url, NULL, NULL, &lo));
  cm_mgr_free(&a);
  cm_mgr_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_two_managers_two_threads),
      cmocka_unit_test(test_without_reuse_port_the_port_is_taken),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
