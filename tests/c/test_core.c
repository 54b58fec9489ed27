/* Loopback tests of the event core: echo over TCP and UDP, connect errors,
 * close and drain, backpressure, timers, wakeup from threads, and 10,000
 * connections opened and closed without leaking. */
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

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

static void poll_until(struct cm_mgr *mgr, const volatile int *flag, int max_polls) {
  for (int i = 0; i < max_polls && !*flag; i++) cm_mgr_poll(mgr, 10);
}

static char *url_of(const struct cm_conn *l, const char *scheme, char *buf, size_t len) {
  char ip[64];
  cm_addr_ip_str(&l->loc, ip, sizeof(ip));
  if (l->loc.is_ip6) snprintf(buf, len, "%s://[%s]:%u", scheme, ip, l->loc.port);
  else snprintf(buf, len, "%s://%s:%u", scheme, ip, l->loc.port);
  return buf;
}

/* Echo server: sends back what it reads and consumes it. */
static void echo_fn(struct cm_conn *c, int ev, void *ev_data) {
  (void)ev_data;
  if (ev == CM_EV_READ) {
    cm_send(c, cm_buf_data(&c->recv), c->recv.len);
    cm_recv_consume(c, c->recv.len);
  }
}

struct client {
  struct cm_buf got;
  int connected, closed, errors, close_count, last_event_was_close;
  size_t expect;
  char error[256];
};

static void client_fn(struct cm_conn *c, int ev, void *ev_data) {
  struct client *cl = c->fn_data;
  cl->last_event_was_close = ev == CM_EV_CLOSE;
  if (ev == CM_EV_CONNECT) cl->connected = 1;
  if (ev == CM_EV_ERROR) {
    cl->errors++;
    snprintf(cl->error, sizeof(cl->error), "%s", (const char *)ev_data);
  }
  if (ev == CM_EV_READ) {
    cm_buf_append(&cl->got, cm_buf_data(&c->recv), c->recv.len);
    cm_recv_consume(c, c->recv.len);
    if (cl->expect > 0 && cl->got.len >= cl->expect) cm_close(c);
  }
  if (ev == CM_EV_CLOSE) {
    cl->closed = 1;
    cl->close_count++;
  }
}

/* ---- tests */

static void tcp_echo_ipv4_and_ipv6(void **state) {
  (void)state;
  const char *listen_urls[] = {"tcp://127.0.0.1:0", "tcp://[::1]:0"};
  for (int k = 0; k < 2; k++) {
    struct cm_mgr mgr;
    assert_int_equal(cm_mgr_init(&mgr), 0);
    struct cm_conn *l = cm_listen(&mgr, listen_urls[k], echo_fn, NULL);
    assert_non_null(l);
    assert_true(l->loc.port != 0);
    assert_int_equal(l->loc.is_ip6, k == 1);
    char url[128];
    struct client cl = {.expect = 100000};
    struct cm_conn *c = cm_connect(&mgr, url_of(l, "tcp", url, sizeof(url)), client_fn, &cl);
    assert_non_null(c);
    char *payload = malloc(cl.expect);
    for (size_t i = 0; i < cl.expect; i++) payload[i] = (char)(i * 7);
    assert_true(cm_send(c, payload, cl.expect) == 0);
    poll_until(&mgr, &cl.closed, 1000);
    assert_true(cl.connected);
    assert_int_equal(cl.got.len, cl.expect);
    assert_memory_equal(cm_buf_data(&cl.got), payload, cl.expect);
    assert_int_equal(cl.close_count, 1);
    assert_true(cl.last_event_was_close);
    free(payload);
    cm_buf_free(&cl.got);
    cm_mgr_free(&mgr);
  }
}

static void udp_echo(void **state) {
  (void)state;
  struct cm_mgr mgr;
  assert_int_equal(cm_mgr_init(&mgr), 0);
  struct cm_conn *l = cm_listen(&mgr, "udp://127.0.0.1:0", echo_fn, NULL);
  assert_non_null(l);
  assert_true(l->is_udp && l->is_listening);
  char url[128];
  struct client cl = {.expect = 5};
  struct cm_conn *c = cm_connect(&mgr, url_of(l, "udp", url, sizeof(url)), client_fn, &cl);
  poll_until(&mgr, &cl.connected, 100);
  assert_true(cm_send(c, "hello", 5) == 0);
  poll_until(&mgr, &cl.closed, 100);
  assert_int_equal(cl.got.len, 5);
  assert_memory_equal(cm_buf_data(&cl.got), "hello", 5);
  cm_buf_free(&cl.got);
  cm_mgr_free(&mgr);
}

static void connect_refused_gives_error_then_close(void **state) {
  (void)state;
  struct cm_mgr mgr;
  assert_int_equal(cm_mgr_init(&mgr), 0);
  /* A port that was free a moment ago: bind, read the port, close. */
  struct cm_conn *l = cm_listen(&mgr, "tcp://127.0.0.1:0", NULL, NULL);
  char url[128];
  url_of(l, "tcp", url, sizeof(url));
  cm_close(l);
  cm_mgr_poll(&mgr, 0);
  struct client cl = {0};
  assert_non_null(cm_connect(&mgr, url, client_fn, &cl));
  poll_until(&mgr, &cl.closed, 100);
  assert_int_equal(cl.errors, 1);
  assert_non_null(strstr(cl.error, "connection refused"));
  assert_false(cl.connected);
  assert_int_equal(cl.close_count, 1);
  cm_mgr_free(&mgr);
}

static void bad_urls_are_refused(void **state) {
  (void)state;
  struct cm_mgr mgr;
  assert_int_equal(cm_mgr_init(&mgr), 0);
  assert_null(cm_listen(&mgr, "tcp://not-an-ip:0", NULL, NULL));
  assert_null(cm_connect(&mgr, "tcp://127.0.0.1", NULL, NULL));
  struct client cl = {0};
  assert_non_null(cm_connect(&mgr, "tcp://no.such.name:80", client_fn, &cl));
  poll_until(&mgr, &cl.closed, 10);
  assert_int_equal(cl.errors, 1);
  assert_int_equal(mgr.nconns, 0);
  cm_mgr_free(&mgr);
}

/* Server that sends `size` bytes then drains, to a client that reads slowly. */
static size_t drain_size;
static void drain_server_fn(struct cm_conn *c, int ev, void *ev_data) {
  (void)ev_data;
  if (ev == CM_EV_ACCEPT) {
    char *p = malloc(drain_size);
    memset(p, 'd', drain_size);
    assert_true(cm_send(c, p, drain_size) == 0);
    free(p);
    cm_drain(c);
    assert_true(c->is_draining);
  }
}

static void drain_flushes_large_send(void **state) {
  (void)state;
  struct cm_mgr mgr;
  assert_int_equal(cm_mgr_init(&mgr), 0);
  drain_size = 8 * 1024 * 1024;
  struct cm_conn *l = cm_listen(&mgr, "tcp://127.0.0.1:0", drain_server_fn, NULL);
  char url[128];
  struct client cl = {0};
  struct cm_conn *c = cm_connect(&mgr, url_of(l, "tcp", url, sizeof(url)), client_fn, &cl);
  c->recv_limit = 4096; /* the client pauses often: the server must wait */
  poll_until(&mgr, &cl.closed, 100000);
  assert_int_equal(cl.got.len, drain_size);
  cm_buf_free(&cl.got);
  cm_mgr_free(&mgr);
}

/* Backpressure: a handler that never consumes makes the connection full. */
static void hoard_fn(struct cm_conn *c, int ev, void *ev_data) {
  (void)c, (void)ev, (void)ev_data;
}

static void full_connection_stops_reading_until_consumed(void **state) {
  (void)state;
  struct cm_mgr mgr;
  assert_int_equal(cm_mgr_init(&mgr), 0);
  mgr.recv_limit = 10000;
  struct cm_conn *l = cm_listen(&mgr, "tcp://127.0.0.1:0", hoard_fn, NULL);
  char url[128];
  struct client cl = {0};
  struct cm_conn *c = cm_connect(&mgr, url_of(l, "tcp", url, sizeof(url)), client_fn, &cl);
  char *p = calloc(1, 50000);
  assert_true(cm_send(c, p, 50000) == 0);
  free(p);
  struct cm_conn *s = NULL;
  for (int i = 0; i < 200 && (s == NULL || !s->is_full); i++) {
    cm_mgr_poll(&mgr, 5);
    for (struct cm_conn *x = mgr.conns; x != NULL; x = x->next)
      if (x->is_accepted) s = x;
  }
  assert_non_null(s);
  assert_true(s->is_full);
  assert_int_equal(s->recv.len, 10000);
  size_t total = 0;
  for (int i = 0; i < 1000 && total < 50000; i++) {
    total += s->recv.len;
    cm_recv_consume(s, s->recv.len);
    assert_false(s->is_full);
    cm_mgr_poll(&mgr, 5);
  }
  total += s->recv.len;
  assert_int_equal(total, 50000);
  cm_mgr_free(&mgr);
}

/* Closing from inside handlers, including CLOSE itself and double close. */
static int closes_seen;
static void close_early_fn(struct cm_conn *c, int ev, void *ev_data) {
  (void)ev_data;
  if (ev == CM_EV_ACCEPT || ev == CM_EV_READ) {
    cm_close(c);
    cm_close(c);
    assert_true(cm_send(c, "x", 1) != 0);
  }
  if (ev == CM_EV_CLOSE) {
    closes_seen++;
    cm_close(c);
  }
}

static void close_inside_handlers_is_safe(void **state) {
  (void)state;
  struct cm_mgr mgr;
  assert_int_equal(cm_mgr_init(&mgr), 0);
  struct cm_conn *l = cm_listen(&mgr, "tcp://127.0.0.1:0", close_early_fn, NULL);
  char url[128];
  struct client cl = {0};
  cm_connect(&mgr, url_of(l, "tcp", url, sizeof(url)), client_fn, &cl);
  poll_until(&mgr, &cl.closed, 1000);
  assert_int_equal(closes_seen, 1);
  assert_int_equal(cl.close_count, 1);
  cm_mgr_free(&mgr);
  assert_int_equal(closes_seen, 2); /* the listener's CLOSE at free */
}

/* 10,000 connections opened and closed: no descriptor or memory left. */
static int accepted_total;
static void accept_count_fn(struct cm_conn *c, int ev, void *ev_data) {
  (void)ev_data;
  if (ev == CM_EV_ACCEPT) accepted_total++;
  if (ev == CM_EV_READ) cm_close(c);
}
static void connect_then_send_fn(struct cm_conn *c, int ev, void *ev_data) {
  (void)ev_data;
  if (ev == CM_EV_CONNECT) cm_send(c, "x", 1);
  if (ev == CM_EV_CLOSE) (*(int *)c->fn_data)++;
}

static void ten_thousand_connections_leave_nothing(void **state) {
  (void)state;
  int fds_before = count_fds();
  struct cm_mgr mgr;
  assert_int_equal(cm_mgr_init(&mgr), 0);
  struct cm_conn *l = cm_listen(&mgr, "tcp://127.0.0.1:0", accept_count_fn, NULL);
  char url[128];
  url_of(l, "tcp", url, sizeof(url));
  int closed = 0, target = 10000, made = 0;
  while (closed < target) {
    for (int i = 0; i < 50 && made < target; i++, made++)
      assert_non_null(cm_connect(&mgr, url, connect_then_send_fn, &closed));
    cm_mgr_poll(&mgr, 5);
  }
  for (int i = 0; i < 100 && mgr.nconns > 1; i++) cm_mgr_poll(&mgr, 5);
  assert_int_equal(accepted_total, target);
  assert_int_equal(mgr.nconns, 1); /* the listener */
  cm_mgr_free(&mgr);
  assert_int_equal(count_fds(), fds_before);
}

/* ---- timers */
struct tick {
  int count;
  struct cm_mgr *mgr;
  struct cm_timer *self;
  int cancel_after;
  int released;
};
static void tick_fn(void *arg) {
  struct tick *t = arg;
  t->count++;
  if (t->cancel_after > 0 && t->count == t->cancel_after) cm_timer_cancel(t->mgr, t->self);
}
static void tick_release(void *arg) { ((struct tick *)arg)->released++; }

static void timers_once_repeat_run_now_cancel(void **state) {
  (void)state;
  struct cm_mgr mgr;
  assert_int_equal(cm_mgr_init(&mgr), 0);
  struct tick once = {0}, rep = {.mgr = &mgr, .cancel_after = 3}, now = {0}, zero = {0},
              never = {0};
  struct cm_timer t_once, t_rep, t_now, t_zero, t_never;
  cm_timer_start(&mgr, &t_once, 5, CM_TIMER_ONCE, tick_fn, &once, tick_release);
  rep.self = &t_rep;
  cm_timer_start(&mgr, &t_rep, 1, CM_TIMER_REPEAT, tick_fn, &rep, tick_release);
  cm_timer_start(&mgr, &t_now, 100000, CM_TIMER_REPEAT | CM_TIMER_RUN_NOW, tick_fn, &now, tick_release);
  cm_timer_start(&mgr, &t_zero, 0, CM_TIMER_ONCE, tick_fn, &zero, tick_release);
  cm_timer_start(&mgr, &t_never, 100000, CM_TIMER_REPEAT, tick_fn, &never, tick_release);
  assert_true(cm_timer_active(&t_never));
  cm_mgr_poll(&mgr, 0);
  assert_int_equal(zero.count, 1); /* 0 ms: the next poll */
  assert_int_equal(now.count, 1);  /* run-now: at once, then after 100 s */
  assert_int_equal(zero.released, 1);
  assert_false(cm_timer_active(&t_zero));
  cm_timer_cancel(&mgr, &t_never);
  assert_false(cm_timer_active(&t_never));
  for (int i = 0; i < 200 && (once.count == 0 || rep.released == 0); i++) cm_mgr_poll(&mgr, 2);
  assert_int_equal(once.count, 1);
  assert_int_equal(rep.count, 3);
  assert_int_equal(rep.released, 1);
  assert_int_equal(never.count, 0);
  assert_int_equal(never.released, 1); /* swept long before it would expire */
  assert_int_equal(now.released, 0);
  cm_mgr_free(&mgr);
  assert_int_equal(now.released, 1);
}

static void *cancel_from_thread(void *arg) {
  void **a = arg;
  cm_timer_cancel(a[0], a[1]);
  return NULL;
}

static void timer_cancel_from_another_thread(void **state) {
  (void)state;
  struct cm_mgr mgr;
  assert_int_equal(cm_mgr_init(&mgr), 0);
  struct tick t = {0};
  struct cm_timer *timer = cm_timer_add(&mgr, 1, CM_TIMER_REPEAT, tick_fn, &t);
  while (t.count < 2) cm_mgr_poll(&mgr, 2);
  pthread_t th;
  void *args[2] = {&mgr, timer};
  pthread_create(&th, NULL, cancel_from_thread, args);
  pthread_join(th, NULL);
  cm_mgr_poll(&mgr, 0);
  int seen = t.count;
  for (int i = 0; i < 10; i++) cm_mgr_poll(&mgr, 2);
  assert_int_equal(t.count, seen);
  assert_int_equal(mgr.ntimers, 0);
  cm_mgr_free(&mgr);
}

/* ---- wakeup */
#define WAKE_THREADS 4
#define WAKE_PER_THREAD 200
struct wake_args {
  struct cm_mgr *mgr;
  unsigned long id;
  int thread;
};
static size_t wake_size(int i) { return i % 50 == 0 ? 1024 * 1024 : (size_t)(i % 97) + 8; }
static void *wake_thread(void *arg) {
  struct wake_args *a = arg;
  for (int i = 0; i < WAKE_PER_THREAD; i++) {
    size_t n = wake_size(i);
    unsigned char *p = malloc(n);
    memset(p, (int)(a->thread * 31 + i) & 0xff, n);
    p[0] = (unsigned char)a->thread;
    memcpy(p + 1, &i, sizeof(i));
    assert_true(cm_wakeup(a->mgr, a->id, p, n) == 0);
    free(p);
  }
  return NULL;
}
static int wake_next[WAKE_THREADS], wake_total, wake_bad;
static void wake_fn(struct cm_conn *c, int ev, void *ev_data) {
  (void)c;
  if (ev != CM_EV_WAKEUP) return;
  struct cm_str *s = ev_data;
  int th = (unsigned char)s->buf[0], i;
  memcpy(&i, s->buf + 1, sizeof(i));
  if (th >= WAKE_THREADS || i != wake_next[th] || s->len != wake_size(i) ||
      (unsigned char)s->buf[s->len - 1] != ((th * 31 + i) & 0xff))
    wake_bad++;
  else wake_next[th]++;
  wake_total++;
}

static void wakeup_from_four_threads_in_order(void **state) {
  (void)state;
  struct cm_mgr mgr;
  assert_int_equal(cm_mgr_init(&mgr), 0);
  struct cm_conn *l = cm_listen(&mgr, "udp://127.0.0.1:0", wake_fn, NULL);
  assert_true(cm_wakeup(&mgr, l->id, "x", 1) != 0); /* not enabled yet */
  assert_int_equal(cm_wakeup_init(&mgr), 0);
  assert_int_equal(cm_wakeup_init(&mgr), 0);
  assert_true(mgr.wakeup_id != 0);
  pthread_t th[WAKE_THREADS];
  struct wake_args args[WAKE_THREADS];
  for (int i = 0; i < WAKE_THREADS; i++) {
    args[i] = (struct wake_args){&mgr, l->id, i};
    pthread_create(&th[i], NULL, wake_thread, &args[i]);
  }
  for (int i = 0; i < 100000 && wake_total < WAKE_THREADS * WAKE_PER_THREAD; i++)
    cm_mgr_poll(&mgr, 10);
  for (int i = 0; i < WAKE_THREADS; i++) pthread_join(th[i], NULL);
  cm_mgr_poll(&mgr, 0);
  assert_int_equal(wake_bad, 0);
  assert_int_equal(wake_total, WAKE_THREADS * WAKE_PER_THREAD);
  /* A payload for a connection that is gone is dropped, not delivered. */
  assert_true(cm_wakeup(&mgr, 999999, "y", 1) == 0);
  cm_mgr_poll(&mgr, 0);
  assert_int_equal(wake_total, WAKE_THREADS * WAKE_PER_THREAD);
  cm_mgr_free(&mgr);
}

static void poll_is_not_reentrant(void **state) {
  (void)state;
  struct cm_mgr mgr;
  assert_int_equal(cm_mgr_init(&mgr), 0);
  mgr.polling = 1;
  assert_int_equal(cm_mgr_poll(&mgr, 0), -EBUSY);
  mgr.polling = 0;
  assert_int_equal(cm_mgr_poll(&mgr, 0), 0);
  cm_mgr_free(&mgr);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(tcp_echo_ipv4_and_ipv6),
      cmocka_unit_test(udp_echo),
      cmocka_unit_test(connect_refused_gives_error_then_close),
      cmocka_unit_test(bad_urls_are_refused),
      cmocka_unit_test(drain_flushes_large_send),
      cmocka_unit_test(full_connection_stops_reading_until_consumed),
      cmocka_unit_test(close_inside_handlers_is_safe),
      cmocka_unit_test(ten_thousand_connections_leave_nothing),
      cmocka_unit_test(timers_once_repeat_run_now_cancel),
      cmocka_unit_test(timer_cancel_from_another_thread),
      cmocka_unit_test(wakeup_from_four_threads_in_order),
      cmocka_unit_test(poll_is_not_reentrant),
  };
  return cmocka_run_group_tests_name("core", tests, NULL, NULL);
}
