/* Cross-thread wakeup: any thread queues a payload under a mutex and pokes
 * an eventfd; the poll thread drains the queue and delivers WAKEUP events. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/internal.h"

struct wakeup_msg {
  struct wakeup_msg *next;
  unsigned long conn_id;
  size_t len;
  char data[]; /* payload copy */
};

struct cm_wakeup_q {
  pthread_mutex_t lock;
  struct wakeup_msg *head, *tail;
  size_t bytes, msgs; /* what the queue holds (bytes count each message's overhead) */
  int efd;
};

static void wakeup_read(struct cm_conn *wc, unsigned events);

/* The eventfd's transport: readiness drains the queue; nothing to write. */
static const struct cm__transport wakeup_transport = {.name = "wakeup", .read = wakeup_read};

int cm_wakeup_init(struct cm_mgr *mgr) {
  if (mgr->wakeup != NULL) return 0;
  struct cm_wakeup_q *q = calloc(1, sizeof(*q));
  if (q == NULL) return CM_ENOMEM;
  q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (q->efd < 0) {
    int err = errno;
    free(q);
    return -err;
  }
  struct cm_conn *c = cm__conn_new(mgr, q->efd, &wakeup_transport);
  if (c != NULL) {
    c->is_internal = 1;
    c->io.want = EPOLLIN;
  }
  if (c == NULL || cm__conn_watch(c) != 0) {
    int err = c == NULL ? ENOMEM : errno;
    if (c != NULL) cm__conn_free(c); /* closes efd */
    else close(q->efd);
    free(q);
    errno = err;
    return -err;
  }
  pthread_mutex_init(&q->lock, NULL);
  mgr->wakeup_id = c->id;
  /* Published last: other threads test mgr->wakeup to know it is usable. */
  __atomic_store_n(&mgr->wakeup, q, __ATOMIC_RELEASE);
  return 0;
}

int cm_wakeup(struct cm_mgr *mgr, unsigned long conn_id, const void *buf, size_t len) {
  struct cm_wakeup_q *q = __atomic_load_n(&mgr->wakeup, __ATOMIC_ACQUIRE);
  if (q == NULL) return CM_EINVAL;
  if (len > SIZE_MAX - sizeof(struct wakeup_msg)) return CM_ENOMEM;
  struct wakeup_msg *m = malloc(sizeof(*m) + len);
  if (m == NULL) return CM_ENOMEM;
  m->next = NULL;
  m->conn_id = conn_id;
  m->len = len;
  if (len > 0) memcpy(m->data, buf, len);
  size_t cost = sizeof(*m) + len;
  pthread_mutex_lock(&q->lock);
  /* The bounds may be changed by the poll thread meanwhile: atomic reads. */
  size_t max_bytes = __atomic_load_n(&mgr->wakeup_max_bytes, __ATOMIC_RELAXED);
  size_t max_msgs = __atomic_load_n(&mgr->wakeup_max_msgs, __ATOMIC_RELAXED);
  if ((max_msgs != 0 && q->msgs >= max_msgs) ||
      (max_bytes != 0 && (q->bytes > max_bytes || cost > max_bytes - q->bytes))) {
    pthread_mutex_unlock(&q->lock);
    free(m);
    return CM_EAGAIN; /* full: the loop is not keeping up; the caller decides */
  }
  bool was_empty = q->head == NULL;
  if (q->tail != NULL) q->tail->next = m;
  else q->head = m;
  q->tail = m;
  q->bytes += cost;
  q->msgs++;
  pthread_mutex_unlock(&q->lock);
  /* Only the first message of a batch needs to wake the loop: the loop
   * takes the whole queue after reading the eventfd. */
  if (was_empty) {
    uint64_t one = 1;
    ssize_t n = write(q->efd, &one, sizeof(one));
    (void)n; /* EAGAIN means the counter is already non-zero: awake anyway */
  }
  return 0;
}

/* The eventfd is readable: delivers what the queue holds. */
static void wakeup_read(struct cm_conn *wc, unsigned events) {
  (void)events;
  struct cm_mgr *mgr = wc->mgr;
  struct cm_wakeup_q *q = mgr->wakeup;
  uint64_t count;
  ssize_t n = read(q->efd, &count, sizeof(count));
  (void)n;
  pthread_mutex_lock(&q->lock);
  struct wakeup_msg *m = q->head;
  q->head = q->tail = NULL;
  q->bytes = q->msgs = 0;
  pthread_mutex_unlock(&q->lock);
  while (m != NULL) {
    struct wakeup_msg *next = m->next;
    struct cm_conn *c = cm_conn_by_id(mgr, m->conn_id);
    if (c != NULL && !c->is_closing && !c->is_internal) {
      struct cm_str payload = cm_str_n(m->data, m->len);
      cm_call(c, CM_EV_WAKEUP, &payload);
    }
    free(m);
    m = next;
  }
}

void cm__wakeup_free(struct cm_mgr *mgr) {
  struct cm_wakeup_q *q = mgr->wakeup;
  if (q == NULL) return;
  mgr->wakeup = NULL;
  mgr->wakeup_id = 0;
  for (struct wakeup_msg *m = q->head, *next; m != NULL; m = next) {
    next = m->next;
    free(m);
  }
  pthread_mutex_destroy(&q->lock);
  free(q); /* the eventfd was closed with its connection */
}

int cm_mgr_wake(struct cm_mgr *mgr) {
  struct cm_wakeup_q *q = __atomic_load_n(&mgr->wakeup, __ATOMIC_ACQUIRE);
  if (q == NULL) return CM_EINVAL;
  /* The loop reads the counter and drains the queue, empty or not. */
  uint64_t one = 1;
  ssize_t n = write(q->efd, &one, sizeof(one));
  (void)n; /* EAGAIN: the counter is already non-zero, the loop wakes anyway */
  return 0;
}
