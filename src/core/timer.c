/* Timers in a binary min-heap ordered by expiry.  Cancellation from other
 * threads only sets a flag; the poll thread sweeps flagged timers. */
#include <stdlib.h>

#include "core/internal.h"

#define NOT_IN_HEAP ((size_t)-1)

static bool before(const struct cm_timer *a, const struct cm_timer *b) {
  return a->expire_ms < b->expire_ms;
}

static void heap_set(struct cm_mgr *mgr, size_t i, struct cm_timer *t) {
  mgr->timers[i] = t;
  t->heap_index = i;
}

static void sift_up(struct cm_mgr *mgr, size_t i) {
  struct cm_timer *t = mgr->timers[i];
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!before(t, mgr->timers[parent])) break;
    heap_set(mgr, i, mgr->timers[parent]);
    i = parent;
  }
  heap_set(mgr, i, t);
}

static void sift_down(struct cm_mgr *mgr, size_t i) {
  struct cm_timer *t = mgr->timers[i];
  size_t n = mgr->ntimers;
  for (;;) {
    size_t child = 2 * i + 1;
    if (child >= n) break;
    if (child + 1 < n && before(mgr->timers[child + 1], mgr->timers[child])) child++;
    if (!before(mgr->timers[child], t)) break;
    heap_set(mgr, i, mgr->timers[child]);
    i = child;
  }
  heap_set(mgr, i, t);
}

static int heap_push(struct cm_mgr *mgr, struct cm_timer *t) {
  if (mgr->ntimers == mgr->timers_cap) {
    size_t cap = mgr->timers_cap == 0 ? 16 : mgr->timers_cap * 2;
    struct cm_timer **p = realloc(mgr->timers, cap * sizeof(*p));
    if (p == NULL) return -1;
    mgr->timers = p;
    mgr->timers_cap = cap;
  }
  mgr->timers[mgr->ntimers] = t;
  sift_up(mgr, mgr->ntimers++);
  return 0;
}

static struct cm_timer *heap_pop(struct cm_mgr *mgr) {
  struct cm_timer *top = mgr->timers[0];
  top->heap_index = NOT_IN_HEAP;
  if (--mgr->ntimers > 0) {
    mgr->timers[0] = mgr->timers[mgr->ntimers];
    sift_down(mgr, 0);
  }
  return top;
}

/* The manager lets go of t: its owner may free it now. */
static void release(struct cm_timer *t) {
  t->heap_index = NOT_IN_HEAP;
  if (t->release != NULL) t->release(t->arg);
  if (t->owned_by_mgr) free(t);
}

static bool is_cancelled(const struct cm_timer *t) {
  return __atomic_load_n(&t->cancelled, __ATOMIC_ACQUIRE) != 0;
}

static void start(struct cm_mgr *mgr, struct cm_timer *t, uint64_t period_ms, unsigned flags,
                  cm_timer_fn fn, void *arg, cm_timer_fn release_fn, bool owned) {
  t->owned_by_mgr = owned;
  t->period_ms = period_ms;
  t->flags = flags;
  t->fn = fn;
  t->arg = arg;
  t->release = release_fn;
  t->cancelled = 0;
  t->expire_ms = cm_millis() + ((flags & CM_TIMER_RUN_NOW) ? 0 : period_ms);
  if (heap_push(mgr, t) != 0) {
    t->heap_index = NOT_IN_HEAP;
    release(t);
  }
}

void cm_timer_start(struct cm_mgr *mgr, struct cm_timer *t, uint64_t period_ms, unsigned flags,
                    cm_timer_fn fn, void *arg, cm_timer_fn release_fn) {
  start(mgr, t, period_ms, flags, fn, arg, release_fn, false);
}

struct cm_timer *cm_timer_add(struct cm_mgr *mgr, uint64_t period_ms, unsigned flags,
                              cm_timer_fn fn, void *arg) {
  struct cm_timer *t = calloc(1, sizeof(*t));
  if (t == NULL) return NULL;
  start(mgr, t, period_ms, flags, fn, arg, NULL, true);
  return t;
}

void cm_timer_cancel(struct cm_mgr *mgr, struct cm_timer *t) {
  __atomic_store_n(&t->cancelled, 1, __ATOMIC_RELEASE);
  __atomic_store_n(&mgr->timers_cancelled, 1, __ATOMIC_RELEASE);
}

bool cm_timer_active(const struct cm_timer *t) {
  return t->heap_index != NOT_IN_HEAP && !is_cancelled(t);
}

/* Removes cancelled timers wherever they sit in the heap, so that a
 * cancelled long timer does not hold its owner's memory until it expires.
 * Owners are released only after the heap is whole again, because a
 * release callback may start new timers. */
static void sweep_cancelled(struct cm_mgr *mgr) {
  if (!__atomic_exchange_n(&mgr->timers_cancelled, 0, __ATOMIC_ACQ_REL)) return;
  size_t kept = 0, ngone = 0, n = mgr->ntimers;
  struct cm_timer **gone = malloc((n > 0 ? n : 1) * sizeof(*gone));
  if (gone == NULL) { /* try again at the next poll */
    __atomic_store_n(&mgr->timers_cancelled, 1, __ATOMIC_RELEASE);
    return;
  }
  for (size_t i = 0; i < n; i++) {
    struct cm_timer *t = mgr->timers[i];
    if (is_cancelled(t)) gone[ngone++] = t;
    else heap_set(mgr, kept++, t);
  }
  mgr->ntimers = kept;
  for (size_t i = kept / 2; i-- > 0;) sift_down(mgr, i);
  for (size_t i = 0; i < ngone; i++) release(gone[i]);
  free(gone);
}

void cm__timers_run(struct cm_mgr *mgr, uint64_t now) {
  sweep_cancelled(mgr);
  /* Bounded by the timers present now: a callback that starts a 0 ms timer
   * gets it run at the next poll, not in an endless loop here. */
  for (size_t budget = mgr->ntimers;
       budget > 0 && mgr->ntimers > 0 && mgr->timers[0]->expire_ms <= now; budget--) {
    struct cm_timer *t = heap_pop(mgr);
    if (is_cancelled(t)) {
      release(t);
      continue;
    }
    t->fn(t->arg);
    /* Re-armed by its own callback (cm__timer_schedule): it stays. */
    if (t->heap_index != NOT_IN_HEAP) continue;
    if ((t->flags & CM_TIMER_REPEAT) && !is_cancelled(t)) {
      /* Missed periods are skipped, not replayed in a burst; at least 1 ms
       * so that a 0 ms repeating timer fires once per poll, not forever. */
      uint64_t next = t->expire_ms + t->period_ms;
      t->expire_ms = next > now ? next : now + (t->period_ms > 0 ? t->period_ms : 1);
      if (heap_push(mgr, t) != 0) release(t);
    } else {
      release(t);
    }
  }
}

int cm__timers_wait_ms(struct cm_mgr *mgr, uint64_t now, int max_ms) {
  sweep_cancelled(mgr);
  if (mgr->ntimers == 0) return max_ms;
  uint64_t expire = mgr->timers[0]->expire_ms;
  if (expire <= now) return 0;
  uint64_t wait = expire - now;
  return (max_ms >= 0 && wait > (uint64_t)max_ms) ? max_ms : (int)wait;
}

void cm__timers_free(struct cm_mgr *mgr) {
  while (mgr->ntimers > 0) release(heap_pop(mgr));
  free(mgr->timers);
  mgr->timers = NULL;
  mgr->timers_cap = 0;
}

/* ------------------------------------------- deadlines of protocol state
 * Loop-thread helpers for timers embedded in a connection's protocol state
 * (HTTP, WebSocket, TLS deadlines).  Kept apart from the public timer API:
 * they move a timer inside the heap instead of cancelling and re-adding it,
 * so a deadline that moves earlier costs one O(log n) sift, and removing
 * one when its connection closes costs the same (no sweep of the heap). */

void cm__timer_init(struct cm_timer *t, cm_timer_fn fn, void *arg) {
  *t = (struct cm_timer){.fn = fn, .arg = arg, .heap_index = NOT_IN_HEAP};
}

bool cm__timer_scheduled(const struct cm_mgr *mgr, const struct cm_timer *t) {
  return t->heap_index < mgr->ntimers && mgr->timers[t->heap_index] == t;
}

bool cm__timer_schedule(struct cm_mgr *mgr, struct cm_timer *t, uint64_t expire_ms) {
  if (cm__timer_scheduled(mgr, t)) {
    uint64_t old = t->expire_ms;
    t->expire_ms = expire_ms;
    if (expire_ms < old) sift_up(mgr, t->heap_index);
    else if (expire_ms > old) sift_down(mgr, t->heap_index);
    return true;
  }
  t->expire_ms = expire_ms;
  t->flags = CM_TIMER_ONCE;
  t->cancelled = 0;
  if (heap_push(mgr, t) == 0) return true;
  t->heap_index = NOT_IN_HEAP;
  return false;
}

void cm__timer_unschedule(struct cm_mgr *mgr, struct cm_timer *t) {
  if (!cm__timer_scheduled(mgr, t)) return;
  size_t i = t->heap_index;
  t->heap_index = NOT_IN_HEAP;
  struct cm_timer *last = mgr->timers[--mgr->ntimers];
  if (last == t) return;
  heap_set(mgr, i, last);
  sift_up(mgr, i);
  sift_down(mgr, last->heap_index);
}
