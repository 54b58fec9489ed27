/* Timers in a binary min-heap ordered by expiry, then by start order.
 *
 * The contract is libuv's: starting a scheduled timer restarts it; a timer
 * re-armed from its own callback stays scheduled; timers due at the same
 * time fire in the order they were started; stopping from the loop thread
 * removes the timer from the heap at once (O(log n), no allocation).
 * Cancellation from other threads only sets a flag; the poll thread sweeps
 * flagged timers out.
 *
 * The manager lets go of a timer (release) only at points where it will not
 * touch the timer again: the release hook may free the storage. */
#include <limits.h>
#include <stdlib.h>

#include "core/internal.h"

#define NOT_IN_HEAP ((size_t)-1)

static bool before(const struct cm_timer *a, const struct cm_timer *b) {
  /* The start sequence breaks ties, so that equal deadlines fire in the
   * order they were started (a heap alone does not keep that order). */
  return a->expire_ms < b->expire_ms || (a->expire_ms == b->expire_ms && a->seq < b->seq);
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

/* True when t sits in mgr's heap.  Robust for storage never started. */
static bool in_heap(const struct cm_mgr *mgr, const struct cm_timer *t) {
  return t->heap_index < mgr->ntimers && mgr->timers[t->heap_index] == t;
}

/* Room for one more timer, so that a push cannot fail afterwards. */
static int heap_reserve(struct cm_mgr *mgr) {
  if (mgr->ntimers < mgr->timers_cap) return 0;
  size_t cap = mgr->timers_cap == 0 ? 16 : mgr->timers_cap * 2;
  struct cm_timer **p = realloc(mgr->timers, cap * sizeof(*p));
  if (p == NULL) return -1;
  mgr->timers = p;
  mgr->timers_cap = cap;
  return 0;
}

/* Pushes t, which must not be in the heap; room must have been reserved. */
static void heap_push(struct cm_mgr *mgr, struct cm_timer *t) {
  t->seq = mgr->timer_seq++;
  mgr->timers[mgr->ntimers] = t;
  sift_up(mgr, mgr->ntimers++);
}

/* Removes t from wherever it sits in the heap: O(log n). */
static void heap_remove(struct cm_mgr *mgr, struct cm_timer *t) {
  size_t i = t->heap_index;
  t->heap_index = NOT_IN_HEAP;
  struct cm_timer *last = mgr->timers[--mgr->ntimers];
  if (i == mgr->ntimers) return;
  heap_set(mgr, i, last);
  if (i > 0 && before(last, mgr->timers[(i - 1) / 2])) sift_up(mgr, i);
  else sift_down(mgr, i);
}

/* The manager lets go of t: its owner may free it now, so t is not touched
 * after the hook (nor after free for the manager's own timers). */
static void release(struct cm_timer *t) {
  cm_timer_fn hook = t->release;
  void *arg = t->arg;
  t->heap_index = NOT_IN_HEAP;
  if (t->owned_by_mgr) free(t);
  if (hook != NULL) hook(arg);
}

static bool is_cancelled(const struct cm_timer *t) {
  return __atomic_load_n(&t->cancelled, __ATOMIC_ACQUIRE) != 0;
}

/* Schedules t; restarts it when it is already scheduled.  Returns CM_ENOMEM (t
 * untouched, not scheduled) only when memory runs out for a new entry. */
static int start(struct cm_mgr *mgr, struct cm_timer *t, uint64_t period_ms, unsigned flags,
                 cm_timer_fn fn, void *arg, cm_timer_fn release_fn, bool owned) {
  bool queued = in_heap(mgr, t);
  if (queued) heap_remove(mgr, t); /* restart: one entry, new deadline */
  else if (heap_reserve(mgr) != 0) return CM_ENOMEM;
  /* A timer the manager already holds (scheduled, or running its callback)
   * keeps its ownership: restarting it does not hand it over. */
  if (!queued && mgr->timer_running != t) t->owned_by_mgr = owned;
  t->period_ms = period_ms;
  t->flags = flags;
  t->fn = fn;
  t->arg = arg;
  t->release = release_fn;
  __atomic_store_n(&t->cancelled, 0, __ATOMIC_RELEASE);
  uint64_t delay = (flags & CM_TIMER_RUN_NOW) ? 0 : period_ms;
  uint64_t now = cm_millis();
  t->expire_ms = delay > UINT64_MAX - now ? UINT64_MAX : now + delay;
  heap_push(mgr, t);
  return 0;
}

int cm_timer_start(struct cm_mgr *mgr, struct cm_timer *t, uint64_t period_ms, unsigned flags,
                   cm_timer_fn fn, void *arg, cm_timer_fn release_fn) {
  return start(mgr, t, period_ms, flags, fn, arg, release_fn, false);
}

struct cm_timer *cm_timer_add(struct cm_mgr *mgr, uint64_t period_ms, unsigned flags,
                              cm_timer_fn fn, void *arg) {
  struct cm_timer *t = calloc(1, sizeof(*t));
  if (t == NULL) return NULL;
  t->heap_index = NOT_IN_HEAP;
  if (start(mgr, t, period_ms, flags, fn, arg, NULL, true) != 0) {
    free(t);
    return NULL;
  }
  return t;
}

void cm_timer_stop(struct cm_mgr *mgr, struct cm_timer *t) {
  if (!in_heap(mgr, t)) return; /* inactive, or a one-shot running its callback */
  heap_remove(mgr, t);
  /* A timer running its callback is released by cm__timers_run once the
   * callback is back (unless the callback starts it again). */
  if (mgr->timer_running != t) release(t);
}

void cm_timer_cancel(struct cm_mgr *mgr, struct cm_timer *t) {
  __atomic_store_n(&t->cancelled, 1, __ATOMIC_RELEASE);
  __atomic_store_n(&mgr->timers_cancelled, 1, __ATOMIC_RELEASE);
}

bool cm_timer_active(const struct cm_timer *t) {
  return t->heap_index != NOT_IN_HEAP && !is_cancelled(t);
}

/* Removes timers cancelled from other threads wherever they sit in the
 * heap, so that a cancelled long timer does not hold its owner's memory
 * until it expires.  O(n) without allocation: the removed timers are chained
 * through sweep_next and released only after the heap is whole again,
 * because a release hook may start timers. */
static void sweep_cancelled(struct cm_mgr *mgr) {
  if (!__atomic_exchange_n(&mgr->timers_cancelled, 0, __ATOMIC_ACQ_REL)) return;
  struct cm_timer *gone = NULL;
  size_t kept = 0, n = mgr->ntimers;
  for (size_t i = 0; i < n; i++) {
    struct cm_timer *t = mgr->timers[i];
    if (is_cancelled(t) && t != mgr->timer_running) {
      t->heap_index = NOT_IN_HEAP;
      t->sweep_next = gone;
      gone = t;
    } else {
      heap_set(mgr, kept++, t);
    }
  }
  mgr->ntimers = kept;
  for (size_t i = kept / 2; i-- > 0;) sift_down(mgr, i);
  while (gone != NULL) {
    struct cm_timer *t = gone;
    gone = t->sweep_next;
    t->sweep_next = NULL;
    if (!in_heap(mgr, t)) release(t); /* a hook may have started it again */
  }
}

void cm__timers_run(struct cm_mgr *mgr, uint64_t now) {
  sweep_cancelled(mgr);
  /* Bounded by the timers present now: a callback that starts a 0 ms timer
   * gets it run at the next poll, not in an endless loop here. */
  for (size_t budget = mgr->ntimers;
       budget > 0 && mgr->ntimers > 0 && mgr->timers[0]->expire_ms <= now; budget--) {
    struct cm_timer *t = mgr->timers[0];
    heap_remove(mgr, t);
    if (is_cancelled(t)) {
      release(t);
      continue;
    }
    if (t->flags & CM_TIMER_REPEAT) {
      /* Re-armed before the callback, as libuv does, so that the callback
       * sees it active and may restart or stop it.  Missed periods are
       * skipped, not replayed in a burst; at least 1 ms so that a 0 ms
       * repeating timer fires once per poll, not forever.  No allocation:
       * the slot it left is free. */
      uint64_t next = t->expire_ms + t->period_ms;
      t->expire_ms = next > now ? next : now + (t->period_ms > 0 ? t->period_ms : 1);
      heap_push(mgr, t);
    }
    struct cm_timer *outer = mgr->timer_running;
    mgr->timer_running = t;
    t->fn(t->arg);
    mgr->timer_running = outer;
    /* Cancelled from another thread meanwhile: out at once. */
    if (in_heap(mgr, t) && is_cancelled(t)) heap_remove(mgr, t);
    /* Done unless it is scheduled again (repeating, or re-armed by its
     * own callback): only then may its owner free it. */
    if (!in_heap(mgr, t)) release(t);
  }
}

int cm__timers_wait_ms(struct cm_mgr *mgr, uint64_t now, int max_ms) {
  sweep_cancelled(mgr);
  if (mgr->ntimers == 0) return max_ms;
  uint64_t expire = mgr->timers[0]->expire_ms;
  if (expire <= now) return 0;
  uint64_t wait = expire - now;
  if (max_ms >= 0 && wait > (uint64_t)max_ms) return max_ms;
  /* A timer weeks away with an infinite timeout (max_ms < 0): the int that
   * epoll_wait takes must not wrap into a negative (infinite) wait. */
  return wait > (uint64_t)INT_MAX ? INT_MAX : (int)wait;
}

void cm__timers_free(struct cm_mgr *mgr) {
  /* From the end of the heap: O(1) each.  Release hooks may start timers:
   * they are dropped too. */
  while (mgr->ntimers > 0) {
    struct cm_timer *t = mgr->timers[mgr->ntimers - 1];
    heap_remove(mgr, t);
    release(t);
  }
  free(mgr->timers);
  mgr->timers = NULL;
  mgr->timers_cap = 0;
  mgr->timers_cancelled = 0;
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
  (void)mgr;
  /* Exact for timers prepared by cm__timer_init (every removal resets the
   * index), and it does not touch the heap's array: the request path asks
   * this a few times per request. */
  return t->heap_index != NOT_IN_HEAP;
}

bool cm__timer_schedule_by(struct cm_mgr *mgr, struct cm_timer *t, uint64_t due) {
  if (t->heap_index != NOT_IN_HEAP && t->expire_ms <= due) return true;
  return cm__timer_schedule(mgr, t, due);
}

bool cm__timer_schedule(struct cm_mgr *mgr, struct cm_timer *t, uint64_t expire_ms) {
  if (in_heap(mgr, t)) {
    uint64_t old = t->expire_ms;
    t->expire_ms = expire_ms;
    if (expire_ms < old) sift_up(mgr, t->heap_index);
    else if (expire_ms > old) sift_down(mgr, t->heap_index);
    return true;
  }
  if (heap_reserve(mgr) != 0) {
    t->heap_index = NOT_IN_HEAP;
    return false;
  }
  t->expire_ms = expire_ms;
  t->flags = CM_TIMER_ONCE;
  t->cancelled = 0;
  heap_push(mgr, t);
  return true;
}

void cm__timer_unschedule(struct cm_mgr *mgr, struct cm_timer *t) {
  if (in_heap(mgr, t)) heap_remove(mgr, t);
}
