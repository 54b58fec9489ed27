/* The timer contract: release hooks that free the storage (never touched
 * afterwards), restart of a scheduled timer, re-arming from the callback,
 * start order among equal deadlines, O(log n) stop from the loop thread, and
 * a far deadline under an infinite poll timeout.  Run under ASan by
 * `make test-asan`: the use-after-free cases show there. */
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/internal.h"
#include "testutil.h"

/* A heap-allocated timer whose release hook frees it, as the Python Timer
 * and any owner with its own storage may do. */
struct owned {
  struct cm_timer t;
  int *fired, *released;
  struct cm_mgr *mgr;
  int rearm; /* times the callback restarts the timer */
  bool stop_in_cb;
};

static void owned_fn(void *arg) {
  struct owned *o = arg;
  (*o->fired)++;
  if (o->rearm > 0) {
    o->rearm--;
    assert_int_equal(cm_timer_start(o->mgr, &o->t, 0, CM_TIMER_ONCE, owned_fn, o, o->t.release), 0);
  }
  if (o->stop_in_cb) cm_timer_stop(o->mgr, &o->t);
}

static void owned_release(void *arg) {
  struct owned *o = arg;
  (*o->released)++;
  free(o);
}

static struct owned *owned_start(struct cm_mgr *mgr, uint64_t ms, unsigned flags, int *fired,
                                 int *released) {
  struct owned *o = calloc(1, sizeof(*o));
  assert_non_null(o);
  o->fired = fired;
  o->released = released;
  o->mgr = mgr;
  assert_int_equal(cm_timer_start(mgr, &o->t, ms, flags, owned_fn, o, owned_release), 0);
  return o;
}

static void release_may_free_the_timer(void **state) {
  (void)state;
  struct cm_mgr mgr;
  assert_int_equal(cm_mgr_init(&mgr), 0);
  int fired = 0, released = 0;
  /* Fired and done, swept after a cancel, stopped, dropped by cm_mgr_free. */
  owned_start(&mgr, 0, CM_TIMER_ONCE, &fired, &released);
  struct owned *cancelled = owned_start(&mgr, 100000, CM_TIMER_ONCE, &fired, &released);
  struct owned *stopped = owned_start(&mgr, 100000, CM_TIMER_REPEAT, &fired, &released);
  owned_start(&mgr, 100000, CM_TIMER_ONCE, &fired, &released);
  cm_timer_cancel(&mgr, &cancelled->t);
  cm_mgr_poll(&mgr, 0);
  assert_int_equal(fired, 1);
  assert_int_equal(released, 2); /* the 0 ms one and the cancelled one */
  cm_timer_stop(&mgr, &stopped->t);
  assert_int_equal(released, 3); /* at once */
  assert_int_equal(mgr.ntimers, 1);
  cm_mgr_free(&mgr);
  assert_int_equal(released, 4);
}

static void restart_keeps_one_entry(void **state) {
  (void)state;
  struct cm_mgr mgr;
  assert_int_equal(cm_mgr_init(&mgr), 0);
  int fired = 0, released = 0;
  struct owned *o = owned_start(&mgr, 100000, CM_TIMER_ONCE, &fired, &released);
  assert_int_equal(cm_timer_start(&mgr, &o->t, 0, CM_TIMER_ONCE, owned_fn, o, owned_release), 0);
  assert_int_equal(mgr.ntimers, 1); /* restarted, not queued twice */
  assert_true(cm_timer_active(&o->t));
  cm_mgr_poll(&mgr, 0);
  assert_int_equal(fired, 1); /* with the new deadline */
  assert_int_equal(released, 1);
  assert_int_equal(mgr.ntimers, 0);
  cm_mgr_free(&mgr);
  assert_int_equal(released, 1);
}

static void rearmed_from_its_callback_stays_scheduled(void **state) {
  (void)state;
  struct cm_mgr mgr;
  assert_int_equal(cm_mgr_init(&mgr), 0);
  int fired = 0, released = 0;
  struct owned *o = owned_start(&mgr, 0, CM_TIMER_ONCE, &fired, &released);
  o->rearm = 2;
  cm_mgr_poll(&mgr, 0);
  assert_int_equal(fired, 1);
  assert_int_equal(released, 0); /* scheduled again: not released */
  assert_true(cm_timer_active(&o->t));
  for (int i = 0; i < 100 && released == 0; i++) cm_mgr_poll(&mgr, 1);
  assert_int_equal(fired, 3);
  assert_int_equal(released, 1);
  cm_mgr_free(&mgr);
  assert_int_equal(released, 1);
}

static void repeat_stopped_from_its_callback(void **state) {
  (void)state;
  struct cm_mgr mgr;
  assert_int_equal(cm_mgr_init(&mgr), 0);
  int fired = 0, released = 0;
  struct owned *o = owned_start(&mgr, 0, CM_TIMER_REPEAT, &fired, &released);
  o->stop_in_cb = true;
  cm_mgr_poll(&mgr, 0);
  assert_int_equal(fired, 1);
  assert_int_equal(released, 1); /* after the callback returned, not inside it */
  assert_int_equal(mgr.ntimers, 0);
  cm_mgr_free(&mgr);
}

/* ---- order among equal deadlines */
#define SAME 64
static int order[SAME], norder;
static void record(void *arg) { order[norder++] = (int)(intptr_t)arg; }

static void equal_deadlines_fire_in_start_order(void **state) {
  (void)state;
  struct cm_mgr mgr;
  assert_int_equal(cm_mgr_init(&mgr), 0);
  struct cm_timer t[SAME];
  /* All started within one millisecond, so that their deadlines are equal. */
  for (int tries = 0;; tries++) {
    assert_true(tries < 100);
    uint64_t ms = cm_millis();
    while (cm_millis() == ms) {
    }
    ms = cm_millis();
    for (int i = 0; i < SAME; i++)
      assert_int_equal(cm_timer_start(&mgr, &t[i], 5, CM_TIMER_ONCE, record, (void *)(intptr_t)i, NULL), 0);
    if (cm_millis() == ms) break;
    for (int i = 0; i < SAME; i++) cm_timer_stop(&mgr, &t[i]);
  }
  for (int i = 1; i < SAME; i++) assert_true(t[i].expire_ms == t[0].expire_ms);
  for (int i = 0; i < 200 && norder < SAME; i++) cm_mgr_poll(&mgr, 2);
  assert_int_equal(norder, SAME);
  for (int i = 0; i < SAME; i++) assert_int_equal(order[i], i);
  cm_mgr_free(&mgr);
}

/* ---- stop from the loop thread */
static int released_count;
static void count_release(void *arg) {
  (void)arg;
  released_count++;
}
static uint64_t last_expire;
static int fired_after_stop;
static void check_order(void *arg) {
  struct cm_timer *t = arg;
  assert_true(t->expire_ms >= last_expire);
  last_expire = t->expire_ms;
  fired_after_stop++;
}

static void stop_removes_at_once_and_keeps_the_heap(void **state) {
  (void)state;
  enum { N = 2000 };
  struct cm_mgr mgr;
  assert_int_equal(cm_mgr_init(&mgr), 0);
  struct cm_timer *t = calloc(N, sizeof(*t));
  assert_non_null(t);
  for (int i = 0; i < N; i++) {
    uint64_t ms = 100 + (uint64_t)((i * 7919) % 997);
    assert_int_equal(cm_timer_start(&mgr, &t[i], ms, CM_TIMER_ONCE, check_order, &t[i], count_release), 0);
  }
  /* Stop every other one, in a scattered order: each leaves at once. */
  int stopped = 0;
  for (int k = 0; k < N; k++) {
    int i = (k * 613) % N;
    if (i % 2 != 0) continue;
    cm_timer_stop(&mgr, &t[i]);
    stopped++;
    assert_int_equal(released_count, stopped);
    assert_false(cm_timer_active(&t[i]));
    assert_int_equal(mgr.ntimers, (size_t)(N - stopped));
  }
  cm_timer_stop(&mgr, &t[0]); /* harmless twice */
  assert_int_equal(released_count, stopped);
  /* The rest fire in deadline order. */
  for (int i = 0; i < 1000 && mgr.ntimers > 0; i++) cm_mgr_poll(&mgr, 5);
  assert_int_equal(fired_after_stop, N - stopped);
  assert_int_equal(released_count, N);
  cm_mgr_free(&mgr);
  free(t);
}

/* ---- a far deadline with an infinite poll timeout */
static void noop(void *arg) { (void)arg; }

static void far_deadline_does_not_overflow_the_wait(void **state) {
  (void)state;
  struct cm_mgr mgr;
  assert_int_equal(cm_mgr_init(&mgr), 0);
  uint64_t thirty_days = 30ull * 24 * 3600 * 1000; /* more than INT_MAX ms */
  assert_non_null(cm_timer_add(&mgr, thirty_days, CM_TIMER_ONCE, noop, NULL));
  int wait = cm__timers_wait_ms(&mgr, cm_millis(), -1);
  assert_int_equal(wait, INT_MAX); /* not a negative (infinite) wait */
  assert_int_equal(cm__timers_wait_ms(&mgr, cm_millis(), 1000), 1000);
  uint64_t hundred_days = 100ull * 24 * 3600 * 1000; /* wraps 32 bits */
  assert_non_null(cm_timer_add(&mgr, 1, CM_TIMER_ONCE, noop, NULL));
  cm_mgr_poll(&mgr, 5);
  struct cm_mgr mgr2;
  assert_int_equal(cm_mgr_init(&mgr2), 0);
  assert_non_null(cm_timer_add(&mgr2, hundred_days, CM_TIMER_ONCE, noop, NULL));
  assert_int_equal(cm__timers_wait_ms(&mgr2, cm_millis(), -1), INT_MAX);
  cm_mgr_free(&mgr2);
  cm_mgr_free(&mgr);
}

/* ---- other threads: hand timer requests over through the wakeup path */
#define HANDOFF_THREADS 4
#define HANDOFF_EACH 500
static int handoff_fired;
static void handoff_fire(void *arg) {
  (void)arg;
  handoff_fired++;
}
static void handoff_fn(struct cm_conn *c, int ev, void *ev_data) {
  if (ev != CM_EV_WAKEUP) return;
  const struct cm_str *ms = ev_data; /* the delay, as text */
  uint64_t delay = (uint64_t)strtoull(ms->buf, NULL, 10);
  assert_non_null(cm_timer_add(c->mgr, delay, CM_TIMER_ONCE, handoff_fire, NULL));
}
struct handoff_args {
  struct cm_mgr *mgr;
  unsigned long id;
};
static void *handoff_thread(void *arg) {
  struct handoff_args *a = arg;
  for (int i = 0; i < HANDOFF_EACH; i++) assert_true(cm_wakeup(a->mgr, a->id, i % 2 ? "0" : "1", 2) == 0);
  return NULL;
}

static void timers_from_other_threads_through_wakeup(void **state) {
  (void)state;
  struct cm_mgr mgr;
  assert_int_equal(cm_mgr_init(&mgr), 0);
  assert_int_equal(cm_wakeup_init(&mgr), 0);
  struct cm_conn *l = cm_listen(&mgr, "tcp://127.0.0.1:0", handoff_fn, NULL);
  assert_non_null(l);
  pthread_t th[HANDOFF_THREADS];
  struct handoff_args a = {&mgr, l->id};
  for (int i = 0; i < HANDOFF_THREADS; i++) pthread_create(&th[i], NULL, handoff_thread, &a);
  for (int i = 0; i < 2000 && handoff_fired < HANDOFF_THREADS * HANDOFF_EACH; i++) cm_mgr_poll(&mgr, 5);
  for (int i = 0; i < HANDOFF_THREADS; i++) pthread_join(th[i], NULL);
  for (int i = 0; i < 200 && handoff_fired < HANDOFF_THREADS * HANDOFF_EACH; i++) cm_mgr_poll(&mgr, 5);
  assert_int_equal(handoff_fired, HANDOFF_THREADS * HANDOFF_EACH);
  cm_mgr_free(&mgr);
}

/* cm_mgr_wake(): a poll blocked for a minute returns at once. */
static void *wake_later(void *arg) {
  usleep(100 * 1000);
  assert_true(cm_mgr_wake(arg) == 0);
  return NULL;
}

static void mgr_wake_interrupts_a_sleeping_poll(void **state) {
  (void)state;
  struct cm_mgr mgr;
  assert_int_equal(cm_mgr_init(&mgr), 0);
  assert_true(cm_mgr_wake(&mgr) != 0); /* needs cm_wakeup_init() */
  assert_int_equal(cm_wakeup_init(&mgr), 0);
  pthread_t th;
  pthread_create(&th, NULL, wake_later, &mgr);
  uint64_t start = cm_millis();
  assert_int_equal(cm_mgr_poll(&mgr, 60000), 0);
  /* Liveness, not speed: without the wake this waits the whole minute. */
  assert_true(cm_millis() - start < 30000);
  pthread_join(th, NULL);
  cm_mgr_free(&mgr);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(release_may_free_the_timer),
      cmocka_unit_test(restart_keeps_one_entry),
      cmocka_unit_test(rearmed_from_its_callback_stays_scheduled),
      cmocka_unit_test(repeat_stopped_from_its_callback),
      cmocka_unit_test(equal_deadlines_fire_in_start_order),
      cmocka_unit_test(stop_removes_at_once_and_keeps_the_heap),
      cmocka_unit_test(far_deadline_does_not_overflow_the_wait),
      cmocka_unit_test(timers_from_other_threads_through_wakeup),
      cmocka_unit_test(mgr_wake_interrupts_a_sleeping_poll),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
