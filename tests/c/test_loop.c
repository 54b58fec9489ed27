/*
 * The cost of a turn: idle connections get no POLL from busy turns, protocol
 * deadlines fire from the timer heap with POLL switched off, and the HTTP
 * timeouts (client connect and response, server body rate) end what they
 * should with the message they should.  Real sockets on loopback.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testutil.h"

#define NIDLE 1000

static struct cm_mgr mgr;

struct counts {
  int accepted, polls, msgs, closes;
};
static struct counts seen;

static void server(struct cm_conn *c, int ev, void *ev_data) {
  if (!c->is_accepted) return;
  if (ev == CM_EV_ACCEPT) seen.accepted++;
  if (ev == CM_EV_POLL) seen.polls++;
  if (ev == CM_EV_CLOSE) seen.closes++;
  if (ev == CM_EV_HTTP_MSG) {
    (void) ev_data;
    seen.msgs++;
    cm_http_reply(c, 200, NULL, "ok", 2);
  }
}

/* Both ends of NIDLE connections live in this process. */
static void raise_nofile(void) {
  struct rlimit rl;
  assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
  if (rl.rlim_cur < 2 * NIDLE + 100 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
  }
  if (rl.rlim_cur < 2 * NIDLE + 100) {
    fprintf(stderr, "RLIMIT_NOFILE hard limit %llu is too low for %d connections\n",
            (unsigned long long) rl.rlim_max, NIDLE);
    skip();
  }
}

static int tcp_client(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(fd >= 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(connect(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
  return fd;
}

static void send_all(int fd, const char *s) {
  size_t n = strlen(s);
  assert_int_equal(send(fd, s, n, MSG_NOSIGNAL), (ssize_t) n);
}

/* One request on fd, polled until the server has answered it; returns the
 * reply's first bytes. */
static void request(int fd, char *out, size_t len) {
  int before = seen.msgs;
  send_all(fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  for (int i = 0; i < 100 && seen.msgs == before; i++) cm_mgr_poll(&mgr, 1000);
  assert_int_equal(seen.msgs, before + 1);
  ssize_t n = recv(fd, out, len - 1, 0);
  assert_true(n > 0);
  out[n] = '\0';
}

static int teardown(void **state) {
  (void) state;
  cm_mgr_free(&mgr);
  return 0;
}

/* 1,000 idle keep-alive connections and one busy one: busy turns deliver
 * no POLL to anybody; an idle poll call delivers one to each; the opt-out
 * and the every-turn setting do what they say. */
static void busy_turns_leave_idle_connections_alone(void **state) {
  (void) state;
  raise_nofile();
  memset(&seen, 0, sizeof(seen));
  assert_int_equal(cm_mgr_init(&mgr), 0);
  mgr.poll_interval_ms = 3600 * 1000; /* the busy cadence never comes due here */
  struct cm_conn *l = cm_http_listen(&mgr, "http://127.0.0.1:0", server, NULL, NULL);
  assert_non_null(l);
  static int fds[NIDLE];
  for (int i = 0; i < NIDLE; i++) {
    fds[i] = tcp_client(l->loc.port);
    if (i % 64 == 63) cm_mgr_poll(&mgr, 0);
  }
  int busy = tcp_client(l->loc.port);
  for (int i = 0; i < 1000 && seen.accepted < NIDLE + 1; i++) cm_mgr_poll(&mgr, 10);
  assert_int_equal(seen.accepted, NIDLE + 1);

  seen.polls = 0;
  char reply[256];
  for (int i = 0; i < 200; i++) {
    request(busy, reply, sizeof(reply));
    assert_true(strncmp(reply, "HTTP/1.1 200 ", 13) == 0);
  }
  assert_int_equal(seen.polls, 0); /* 200+ turns, no connection visited */

  /* An idle call (its whole timeout, nothing to do): POLL to everyone. */
  cm_mgr_poll(&mgr, 1);
  assert_int_equal(seen.polls, NIDLE + 1);

  mgr.poll_off = true;
  cm_mgr_poll(&mgr, 1);
  request(busy, reply, sizeof(reply));
  assert_int_equal(seen.polls, NIDLE + 1);

  /* poll_interval_ms 0: every turn, as before. */
  mgr.poll_off = false;
  mgr.poll_interval_ms = 0;
  request(busy, reply, sizeof(reply));
  assert_true(seen.polls >= 2 * (NIDLE + 1));

  for (int i = 0; i < NIDLE; i++) close(fds[i]);
  close(busy);
}

/* The protocol handler of accepted connections, wrapped to count the POLLs
 * it gets; their ids, to look them up. */
static cm_event_fn http_pfn_seen;
static int pfn_polls;
static unsigned long ids[NIDLE];
static struct cm_conn *conns[NIDLE];
static int nids;

static void counting_pfn(struct cm_conn *c, int ev, void *ev_data) {
  if (ev == CM_EV_POLL) pfn_polls++;
  http_pfn_seen(c, ev, ev_data);
}

static void wrapping_server(struct cm_conn *c, int ev, void *ev_data) {
  if (ev == CM_EV_ACCEPT && c->pfn != counting_pfn) {
    http_pfn_seen = c->pfn;
    c->pfn = counting_pfn;
    if (nids < NIDLE) {
      conns[nids] = c;
      ids[nids++] = c->id;
    }
  }
  server(c, ev, ev_data);
}

/* The periodic POLL goes to user handlers only: the walk over every
 * connection does not touch protocol state (HTTP's deadlines are timers).
 * And connections are found by id among many, after others closed. */
static void poll_walk_skips_protocol_handlers_and_ids_are_found(void **state) {
  (void) state;
  raise_nofile();
  memset(&seen, 0, sizeof(seen));
  pfn_polls = 0;
  nids = 0;
  assert_int_equal(cm_mgr_init(&mgr), 0);
  struct cm_conn *l = cm_http_listen(&mgr, "http://127.0.0.1:0", wrapping_server, NULL, NULL);
  assert_non_null(l);
  static int fds[NIDLE];
  for (int i = 0; i < NIDLE; i++) {
    fds[i] = tcp_client(l->loc.port);
    if (i % 64 == 63) cm_mgr_poll(&mgr, 0);
  }
  for (int i = 0; i < 1000 && seen.accepted < NIDLE; i++) cm_mgr_poll(&mgr, 10);
  assert_int_equal(seen.accepted, NIDLE);
  assert_int_equal(nids, NIDLE);

  seen.polls = 0;
  cm_mgr_poll(&mgr, 1); /* idle: POLL to everyone */
  assert_int_equal(seen.polls, NIDLE);
  assert_int_equal(pfn_polls, 0);

  for (int i = 0; i < NIDLE; i++) assert_ptr_equal(cm_conn_by_id(&mgr, ids[i]), conns[i]);
  assert_null(cm_conn_by_id(&mgr, mgr.next_id));
  /* Two thirds go away: the table shifts entries back into the holes. */
  for (int i = 0; i < NIDLE; i++)
    if (i % 3 != 0) close(fds[i]);
  int kept = (NIDLE + 2) / 3;
  for (int i = 0; i < 1000 && seen.closes < NIDLE - kept; i++) cm_mgr_poll(&mgr, 10);
  assert_int_equal(seen.closes, NIDLE - kept);
  for (int i = 0; i < NIDLE; i++) {
    if (i % 3 == 0) assert_ptr_equal(cm_conn_by_id(&mgr, ids[i]), conns[i]);
    else assert_null(cm_conn_by_id(&mgr, ids[i]));
  }
  for (int i = 0; i < NIDLE; i += 3) close(fds[i]);
}

/* With no POLL at all, the idle timeout still closes every idle
 * connection, and the header timeout still answers 408. */
static void deadlines_fire_without_poll(void **state) {
  (void) state;
  raise_nofile();
  memset(&seen, 0, sizeof(seen));
  assert_int_equal(cm_mgr_init(&mgr), 0);
  mgr.poll_off = true;
  struct cm_http_serve_opts opts = {.idle_timeout_ms = 50, .header_timeout_ms = 50};
  struct cm_conn *l = cm_http_listen(&mgr, "http://127.0.0.1:0", server, NULL, &opts);
  assert_non_null(l);
  static int fds[NIDLE];
  for (int i = 0; i < NIDLE; i++) {
    fds[i] = tcp_client(l->loc.port);
    if (i % 64 == 63) cm_mgr_poll(&mgr, 0);
  }
  int partial = tcp_client(l->loc.port);
  send_all(partial, "GET / HTTP/1.1\r\nHost:");
  for (int i = 0; i < 2000 && seen.closes < NIDLE + 1; i++) cm_mgr_poll(&mgr, 20);
  assert_int_equal(seen.accepted, NIDLE + 1);
  assert_int_equal(seen.closes, NIDLE + 1);
  assert_int_equal(seen.polls, 0);
  char buf[256];
  for (int i = 0; i < NIDLE; i++) {
    assert_int_equal(recv(fds[i], buf, sizeof(buf), 0), 0); /* closed by the server */
    close(fds[i]);
  }
  ssize_t n = recv(partial, buf, sizeof(buf) - 1, 0);
  assert_true(n > 13);
  buf[n] = '\0';
  assert_true(strncmp(buf, "HTTP/1.1 408 ", 13) == 0);
  close(partial);
}

/* ------------------------------------------------------ HTTP client */

struct client_seen {
  int connects, errors, closes;
  char error[128];
};
static struct client_seen cs;

static void client(struct cm_conn *c, int ev, void *ev_data) {
  (void) c;
  if (ev == CM_EV_CONNECT) cs.connects++;
  if (ev == CM_EV_ERROR) {
    cs.errors++;
    snprintf(cs.error, sizeof(cs.error), "%s", (const char *) ev_data);
  }
  if (ev == CM_EV_CLOSE) cs.closes++;
}

/* A raw listener (never accept()ed) on 127.0.0.1 with the given backlog. */
static int raw_listener(int backlog, uint16_t *port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(fd >= 0);
  struct sockaddr_in sa = {.sin_family = AF_INET};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t sl = sizeof(sa);
  assert_int_equal(bind(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
  assert_int_equal(listen(fd, backlog), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *) &sa, &sl), 0);
  *port = ntohs(sa.sin_port);
  return fd;
}

static void run_client_until_closed(void) {
  for (int i = 0; i < 1000 && cs.closes == 0; i++) cm_mgr_poll(&mgr, 10);
}

/* A listener whose accept queue is full drops our SYN: no CONNECT, no
 * ERROR, ever, without a connect timeout. */
static void http_client_connect_timeout(void **state) {
  (void) state;
  memset(&cs, 0, sizeof(cs));
  assert_int_equal(cm_mgr_init(&mgr), 0);
  uint16_t port;
  int lfd = raw_listener(0, &port);
  /* Fill the accept queue (backlog 0 holds one): later SYNs are dropped. */
  int fillers[4];
  for (int i = 0; i < 4; i++) {
    fillers[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int r = connect(fillers[i], (struct sockaddr *) &sa, sizeof(sa));
    assert_true(r == 0 || errno == EINPROGRESS);
  }
  usleep(100 * 1000);
  char url[64];
  snprintf(url, sizeof(url), "http://127.0.0.1:%u", port);
  struct cm_conn *c = cm_http_connect(&mgr, url, client, NULL, NULL);
  assert_non_null(c);
  assert_true(cm_http_client_set_timeouts(c, 200, 0) == 0);
  run_client_until_closed();
  assert_int_equal(cs.connects, 0);
  assert_int_equal(cs.errors, 1);
  assert_string_equal(cs.error, "connect timed out");
  assert_int_equal(cs.closes, 1);
  for (int i = 0; i < 4; i++) close(fillers[i]);
  close(lfd);
}

/* A server that takes the connection and never answers. */
static void http_client_response_timeout(void **state) {
  (void) state;
  memset(&cs, 0, sizeof(cs));
  assert_int_equal(cm_mgr_init(&mgr), 0);
  uint16_t port;
  int lfd = raw_listener(16, &port);
  char url[64];
  snprintf(url, sizeof(url), "http://127.0.0.1:%u", port);
  struct cm_conn *c = cm_http_connect(&mgr, url, client, NULL, NULL);
  assert_non_null(c);
  assert_true(cm_http_client_set_timeouts(c, 0, 200) == 0);
  assert_true(cm_http_request(c, "GET", "/", NULL, NULL, 0) == 0);
  run_client_until_closed();
  assert_int_equal(cs.connects, 1);
  assert_int_equal(cs.errors, 1);
  assert_string_equal(cs.error, "response timed out");
  close(lfd);
}

/* The body clock is not reset by every byte: a client trickling a byte
 * every few ms, well within the stall timeout each time, is cut off once
 * its body is too slow overall (408), long before it could finish. */
static void slow_body_is_cut_off(void **state) {
  (void) state;
  memset(&seen, 0, sizeof(seen));
  assert_int_equal(cm_mgr_init(&mgr), 0);
  struct cm_http_serve_opts opts = {.body_timeout_ms = 1000, .body_min_rate = 1000000};
  struct cm_conn *l = cm_http_listen(&mgr, "http://127.0.0.1:0", server, NULL, &opts);
  assert_non_null(l);
  int fd = tcp_client(l->loc.port);
  send_all(fd, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 200\r\n\r\n");
  int sent = 0;
  fcntl(fd, F_SETFL, O_NONBLOCK);
  char buf[512];
  ssize_t n = -1;
  /* 200 bytes at one per >= 20 ms take >= 4 s: twice the deadline. */
  for (; sent < 200; sent++) {
    if (send(fd, "x", 1, MSG_NOSIGNAL) != 1) break;
    usleep(20 * 1000);
    cm_mgr_poll(&mgr, 0);
    cm_mgr_poll(&mgr, 0);
    n = recv(fd, buf, sizeof(buf) - 1, 0);
    if (n >= 0) break;
  }
  assert_true(sent < 199);
  for (int i = 0; i < 100 && n < 0; i++) {
    cm_mgr_poll(&mgr, 10);
    n = recv(fd, buf, sizeof(buf) - 1, 0);
  }
  assert_true(n > 13);
  buf[n] = '\0';
  assert_true(strncmp(buf, "HTTP/1.1 408 ", 13) == 0);
  assert_non_null(strstr(buf, "too slow"));
  assert_int_equal(seen.msgs, 0);
  close(fd);
}

static volatile sig_atomic_t usr1_caught;
static void on_usr1(int sig) {
  (void) sig;
  usr1_caught = 1;
}

/* The pselect pattern: a signal that arrives after the caller checked for
 * signals (here: raised while blocked, so it is pending) interrupts the
 * wait at once instead of waiting out the timeout; the caller's mask is in
 * force again afterwards. */
static void poll_sigmask_lets_a_pending_signal_interrupt_the_wait(void **state) {
  (void) state;
  struct sigaction sa = {.sa_handler = on_usr1}, prev;
  sigemptyset(&sa.sa_mask);
  assert_int_equal(sigaction(SIGUSR1, &sa, &prev), 0);
  sigset_t usr1, old, now;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  assert_int_equal(pthread_sigmask(SIG_BLOCK, &usr1, &old), 0);
  usr1_caught = 0;
  raise(SIGUSR1); /* pending: blocked */
  assert_int_equal(usr1_caught, 0);
  assert_int_equal(cm_mgr_init(&mgr), 0);
  /* Without the mask, this would wait the whole 3 s and return 0. */
  assert_int_equal(cm_mgr_poll_sigmask(&mgr, 3000, &old), CM_EINTR);
  assert_int_equal(usr1_caught, 1);
  assert_int_equal(pthread_sigmask(SIG_SETMASK, NULL, &now), 0);
  assert_false(sigismember(&now, SIGUSR1));
    assert_int_equal(sigaction(SIGUSR1, &prev, NULL), 0);
}

/* cm_mgr_poll_checked: caught() runs with the signals blocked, so a signal
 * that comes in after it looked (here: raised from inside caught(), while
 * blocked) interrupts the wait at once; the mask is back afterwards. */
static int checks;
static int raise_usr1_then_say_none(void *arg) {
  (void) arg;
  checks++;
  sigset_t now;
  pthread_sigmask(SIG_SETMASK, NULL, &now);
  assert_true(sigismember(&now, SIGUSR1)); /* blocked while checking */
  raise(SIGUSR1);                           /* pending until the wait */
  assert_int_equal(usr1_caught, 0);
  return 0;
}

static int say_caught(void *arg) {
  (void) arg;
  checks++;
  return 1;
}

static void poll_checked_guards_the_sleeping_wait(void **state) {
  (void) state;
  struct sigaction sa = {.sa_handler = on_usr1}, prev;
  sigemptyset(&sa.sa_mask);
  assert_int_equal(sigaction(SIGUSR1, &sa, &prev), 0);
  sigset_t block, now;
  sigfillset(&block);
  sigdelset(&block, SIGSEGV);
  assert_int_equal(cm_mgr_init(&mgr), 0);
  usr1_caught = 0;
  checks = 0;
  /* Without the guard the signal would run inside the check and the wait
   * would last the whole 3 s, returning 0. */
  assert_int_equal(cm_mgr_poll_checked(&mgr, 3000, &block, raise_usr1_then_say_none, NULL), CM_EINTR);
  assert_int_equal(checks, 1);
  assert_int_equal(usr1_caught, 1);
  assert_int_equal(pthread_sigmask(SIG_SETMASK, NULL, &now), 0);
  assert_false(sigismember(&now, SIGUSR1));
  /* A signal already caught: the turn does not wait at all. */
  assert_int_equal(cm_mgr_poll_checked(&mgr, 3000, &block, say_caught, NULL), CM_EINTR);
  assert_int_equal(checks, 2);
  assert_int_equal(pthread_sigmask(SIG_SETMASK, NULL, &now), 0);
  assert_false(sigismember(&now, SIGUSR1));
  assert_int_equal(sigaction(SIGUSR1, &prev, NULL), 0);
}

/* A turn with something ready never sleeps, so it makes no check and no
 * pthread_sigmask (one epoll_wait, as cm_mgr_poll). */
static int wakeups;
static void on_wakeup(struct cm_conn *c, int ev, void *ev_data) {
  (void) c;
  (void) ev_data;
  if (ev == CM_EV_WAKEUP) wakeups++;
}

static void poll_checked_busy_turn_skips_the_guard(void **state) {
  (void) state;
  sigset_t block;
  sigfillset(&block);
  assert_int_equal(cm_mgr_init(&mgr), 0);
  assert_int_equal(cm_wakeup_init(&mgr), 0);
  struct cm_conn *c = cm_listen(&mgr, "tcp://127.0.0.1:0", on_wakeup, NULL);
  assert_non_null(c);
  checks = 0;
  wakeups = 0;
  assert_int_equal(cm_wakeup(&mgr, c->id, "x", 1), 0);
  for (int i = 0; i < 10 && wakeups == 0; i++)
    assert_int_equal(cm_mgr_poll_checked(&mgr, 3000, &block, say_caught, NULL), 0);
  assert_int_equal(wakeups, 1);
  assert_int_equal(checks, 0);
}

/* cm_mgr_signal_fd: a byte written to it ends the wait of the next turn
 * (which then is no idle call: no POLL), and the turn drains the pipe (the
 * turn after it is idle again). */
static int signal_fd_polls;
static void count_polls(struct cm_conn *c, int ev, void *ev_data) {
  (void) c;
  (void) ev_data;
  if (ev == CM_EV_POLL) signal_fd_polls++;
}

static void signal_fd_ends_the_wait(void **state) {
  (void) state;
  assert_int_equal(cm_mgr_init(&mgr), 0);
  assert_non_null(cm_listen(&mgr, "tcp://127.0.0.1:0", count_polls, NULL));
  int fd = cm_mgr_signal_fd(&mgr);
  assert_true(fd >= 0);
  assert_int_equal(cm_mgr_signal_fd(&mgr), fd); /* one pipe per manager */
  assert_int_equal(cm_mgr_poll(&mgr, 0), 0);    /* the listener's first turn */
  signal_fd_polls = 0;
  char bytes[300] = {0};
  assert_int_equal(write(fd, bytes, sizeof(bytes)), (ssize_t) sizeof(bytes));
  /* Broken, this would sleep the whole minute, then count an idle POLL. */
  assert_int_equal(cm_mgr_poll(&mgr, 60000), 0);
  assert_int_equal(signal_fd_polls, 0);
  assert_int_equal(cm_mgr_poll(&mgr, 20), 0); /* drained: nothing ready, idle */
  assert_int_equal(signal_fd_polls, 1);
  assert_int_equal(mgr.nconns, 1); /* the pipe is no connection */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(busy_turns_leave_idle_connections_alone, teardown),
      cmocka_unit_test_teardown(poll_walk_skips_protocol_handlers_and_ids_are_found, teardown),
      cmocka_unit_test_teardown(deadlines_fire_without_poll, teardown),
      cmocka_unit_test_teardown(http_client_connect_timeout, teardown),
      cmocka_unit_test_teardown(http_client_response_timeout, teardown),
      cmocka_unit_test_teardown(slow_body_is_cut_off, teardown),
      cmocka_unit_test_teardown(poll_sigmask_lets_a_pending_signal_interrupt_the_wait, teardown),
      cmocka_unit_test_teardown(poll_checked_guards_the_sleeping_wait, teardown),
      cmocka_unit_test_teardown(poll_checked_busy_turn_skips_the_guard, teardown),
      cmocka_unit_test_teardown(signal_fd_ends_the_wait, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
