/* Connection life cycle and the calls handlers make on a connection. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "core/internal.h"

struct cm_conn *cm__conn_new(struct cm_mgr *mgr, int fd, const struct cm__transport *tp) {
  struct cm_conn *c = calloc(1, sizeof(*c));
  if (c == NULL) return NULL;
  c->mgr = mgr;
  c->fd = fd;
  c->tp = tp;
  c->id = mgr->next_id++;
  if (cm__connmap_add(mgr, c) != 0) {
    free(c);
    errno = ENOMEM;
    return NULL;
  }
  c->recv_limit = mgr->recv_limit;
  c->closing_flush_ms = mgr->closing_flush_ms;
  c->last_io_ms = mgr->now_ms;
  c->next = mgr->conns;
  if (mgr->conns != NULL) mgr->conns->prev = c;
  mgr->conns = c;
  mgr->nconns++;
  return c;
}

int cm__conn_add_listener(struct cm_conn *c) {
  struct cm_mgr *mgr = c->mgr;
  if (mgr->nlisteners == mgr->listeners_cap) {
    size_t cap = mgr->listeners_cap == 0 ? 4 : 2 * mgr->listeners_cap;
    struct cm_conn **p = realloc(mgr->listeners, cap * sizeof(*p));
    if (p == NULL) return CM_ENOMEM;
    mgr->listeners = p;
    mgr->listeners_cap = cap;
  }
  mgr->listeners[mgr->nlisteners++] = c;
  return 0;
}

static void del_listener(struct cm_mgr *mgr, struct cm_conn *c) {
  for (size_t i = 0; i < mgr->nlisteners; i++) {
    if (mgr->listeners[i] != c) continue;
    mgr->listeners[i] = mgr->listeners[--mgr->nlisteners];
    break;
  }
  if (mgr->nlisteners == 0) {
    free(mgr->listeners);
    mgr->listeners = NULL;
    mgr->listeners_cap = 0;
  }
}

void cm__conn_free(struct cm_conn *c) {
  struct cm_mgr *mgr = c->mgr;
  if (c->is_listening && !c->is_udp) del_listener(mgr, c);
  if (c->prev != NULL) c->prev->next = c->next;
  else mgr->conns = c->next;
  if (c->next != NULL) c->next->prev = c->prev;
  mgr->nconns--;
  cm__connmap_del(mgr, c);
  if (c->drain_timer != NULL) cm_timer_stop(mgr, c->drain_timer);
  if (c->fd >= 0) {
    cm__io_stop(c);
    close(c->fd);
  }
  if (c->tp->free != NULL) c->tp->free(c);
  cm__buf_release(mgr, &c->recv);
  cm__buf_release(mgr, &c->send);
  cm_buf_free(&c->recv);
  cm_buf_free(&c->send);
  if (c->files != NULL) cm__files_free(c);
  free(c->deferred_error);
  free(c);
}

void cm__conn_mark_dirty(struct cm_conn *c) {
  struct cm_mgr *mgr = c->mgr;
  if (c->is_dirty) return;
  c->is_dirty = 1;
  c->dirty_next = mgr->dirty;
  mgr->dirty = c;
  if (!mgr->polling && mgr->on_output != NULL) mgr->on_output(mgr->hook_data);
}

size_t cm_conn_send_queued(const struct cm_conn *c) {
  return c->files == NULL ? c->send.len : c->send.len + cm__files_queued(c);
}

bool cm_conn_send_full(const struct cm_conn *c) {
  size_t mark = c->send_hwm, limit = c->mgr->send_limit;
  if (mark == 0) return false;
  if (limit != 0 && limit / 2 < mark) mark = limit / 2 > 0 ? limit / 2 : 1;
  return cm_conn_send_queued(c) >= mark;
}

/* Reading continues through a TLS handshake whatever is queued: the
 * handshake must finish before anything queued can leave. */
bool cm__conn_reads_paused(const struct cm_conn *c) {
  return c->is_full || (!c->is_tls_hs && cm_conn_send_full(c));
}

void cm__conn_want_poll(struct cm_conn *c) {
  c->is_poll_wanted = 1;
  cm__conn_mark_dirty(c);
}

unsigned cm__conn_interest(const struct cm_conn *c) {
  if (c->is_internal) return c->io.want;
  if (c->is_connecting) return EPOLLOUT; /* completion shows as writability */
  if (c->is_listening) {
    bool below_cap = c->mgr->max_conns == 0 || c->mgr->nconns < c->mgr->max_conns;
    return below_cap && !c->is_accept_paused ? EPOLLIN : 0;
  }
  unsigned want = 0;
  if (!c->is_draining && !c->is_closing && !cm__conn_reads_paused(c)) want |= EPOLLIN;
  /* Writability is asked for only while a write has been refused. */
  if (c->is_write_blocked && cm__conn_has_output(c)) want |= EPOLLOUT;
  return want;
}

int cm__conn_watch(struct cm_conn *c) {
  return cm__io_start(c, cm__conn_interest(c));
}

int cm__conn_update_interest(struct cm_conn *c) {
  if (c->fd < 0 || cm__io_change(c, cm__conn_interest(c)) == 0) return 0;
  char err[128], msg[160];
  cm__errstr(errno, err, sizeof(err));
  if (c->is_internal) {
    /* The library's own descriptor: its owner times out what waited. */
    CM_ERROR("conn %lu (%s): epoll_ctl: %s", c->id, c->tp->name, err);
    return -1;
  }
  /* The connection would stall unseen (no readiness would ever come for
   * what it waits for): fail it, at the next flush. */
  snprintf(msg, sizeof(msg), "epoll_ctl: %s", err);
  cm__conn_defer_error(c, msg);
  return -1;
}

void cm__conn_check_full(struct cm_conn *c) {
  if (!c->is_closing && c->recv.len >= c->recv_limit && !c->is_full) {
    c->is_full = 1;
    cm__conn_update_interest(c);
  }
}

/* The files queued behind c->send (file.c moves the bytes; what happens to
 * the connection is decided here).  Returns -1 when c is closing. */
static int write_files(struct cm_conn *c, size_t *total) {
  char why[160];
  int rc = cm__files_write(c, total, why, sizeof(why));
  if (rc == CM_ECONNRESET) {
    cm_close(c); /* the peer went away: an ordinary end */
    return -1;
  }
  if (rc != 0) {
    cm_error(c, "%s", why);
    return -1;
  }
  /* Bytes now in c->send (a chunk, or a file's tail) or an exhausted
   * budget: the next flush round continues. */
  if (c->send.len > 0 || (c->files != NULL && !c->is_write_blocked)) cm__conn_mark_dirty(c);
  return 0;
}

static int queue_file(struct cm_conn *c, int fd, uint64_t offset, uint64_t len, bool owns_fd) {
  int rc = cm__files_queue(c, fd, offset, len, owns_fd);
  if (rc == 0 && c->files != NULL) cm__conn_mark_dirty(c);
  return rc;
}

int cm_send_file(struct cm_conn *c, int fd, uint64_t offset, uint64_t len) {
  return queue_file(c, fd, offset, len, true);
}

bool cm__send_file_shared(struct cm_conn *c, int fd, uint64_t offset, uint64_t len) {
  return queue_file(c, fd, offset, len, false) == 0;
}

int cm__conn_write(struct cm_conn *c) {
  ssize_t n = c->tp->write(c);
  if (n < 0) return -1;
  size_t total = (size_t)n;
  /* The one branch files cost the hot path (cm_send_file). */
  if (c->files != NULL && c->send.len == 0 && !c->is_write_blocked && write_files(c, &total) < 0)
    return -1;
  if (!cm__conn_has_output(c)) c->is_write_blocked = 0;
  /* Nothing left to send: the buffer goes back to the pool (or to free()
   * when it grew past a block), so an idle connection holds none. */
  if (c->send.len == 0) cm__buf_release(c->mgr, &c->send);
  if (total > 0) {
    c->last_io_ms = c->mgr->now_ms;
    cm_call(c, CM_EV_WRITE, &total);
  }
  if (c->is_shut_wanted) cm__conn_shut_if_flushed(c);
  /* A drained connection is closed by the flush that follows (both callers
   * see to it): changing its epoll interest first would be a wasted call. */
  if (!c->is_draining || cm__conn_has_output(c)) cm__conn_update_interest(c);
  return 0;
}

int cm__conn_shutdown(struct cm_conn *c) {
  if (c->is_closing || c->is_draining) return CM_ECLOSED;
  if (c->tp->shutdown == NULL || c->fd < 0) return CM_EINVAL;
  if (!c->is_shut_wanted) {
    c->is_shut_wanted = 1;
    cm__conn_mark_dirty(c); /* the flush writes what is left, then shuts */
  }
  return 0;
}

void cm__conn_shut_if_flushed(struct cm_conn *c) {
  if (!c->is_shut_wanted || c->is_shut || c->is_closing || cm__conn_has_output(c)) return;
  c->is_shut = 1;
  if (c->tp->shutdown(c) != 0) cm_close(c); /* the peer went away: an ordinary end */
}

/* The drain's deadline came: no byte left for closing_flush_ms (last_io_ms
 * moves with every write) ends it; progress re-arms it for the rest. */
static void drain_expired(void *arg) {
  struct cm_conn *c = arg;
  struct cm_mgr *mgr = c->mgr;
  c->drain_timer = NULL; /* a one-shot: the manager lets it go after this */
  if (c->is_closing || !c->is_draining || c->closing_flush_ms == 0) return;
  uint64_t due = c->last_io_ms + c->closing_flush_ms;
  if (mgr->now_ms < due) {
    c->drain_timer = cm_timer_add(mgr, due - mgr->now_ms, CM_TIMER_ONCE, drain_expired, c);
    return;
  }
  cm_error(c, "drain timed out: the peer took no data for %llu ms",
           (unsigned long long)c->closing_flush_ms);
}

void cm__conn_drain_wait(struct cm_conn *c) {
  if (c->drain_timer != NULL || c->closing_flush_ms == 0) return;
  /* No memory for a timer: the drain waits unbounded, as with 0. */
  c->drain_timer = cm_timer_add(c->mgr, c->closing_flush_ms, CM_TIMER_ONCE, drain_expired, c);
}

void cm__conn_defer_error(struct cm_conn *c, const char *msg) {
  if (c->deferred_error == NULL) c->deferred_error = strdup(msg);
  cm__conn_mark_dirty(c);
}

int cm__send_parts(struct cm_conn *c, const struct cm_str *parts, size_t n) {
  if (c->is_closing || c->is_draining || c->is_shut_wanted) return CM_ECLOSED;
  if (c->is_listening || c->is_udp) return CM_EINVAL;
  size_t len = 0;
  for (size_t i = 0; i < n; i++) {
    if (parts[i].len > SIZE_MAX - len) return CM_ENOMEM;
    len += parts[i].len;
  }
  struct cm_mgr *mgr = c->mgr;
  /* Behind a queued file, bytes wait in that file's tail to keep their order. */
  struct cm_buf *out = c->files == NULL ? &c->send : cm__files_tail(c);
  if (mgr->send_limit != 0) {
    size_t queued = cm_conn_send_queued(c);
    if (queued > mgr->send_limit || len > mgr->send_limit - queued) return CM_ETOOBIG;
  }
  /* One reservation, then each part copied once, straight into place; an
   * idle connection's first reply borrows a block from the pool. */
  if (out->cap == 0 && len <= CM_BUF_BLOCK && !cm__buf_lend(mgr, out)) return CM_ENOMEM;
  if (cm_buf_reserve(out, len) != 0) return CM_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    if (parts[i].len == 0) continue;
    memcpy(out->ptr + out->off + out->len, parts[i].buf, parts[i].len);
    out->len += parts[i].len;
  }
  cm__conn_mark_dirty(c);
  return 0;
}

int cm_send(struct cm_conn *c, const void *buf, size_t len) {
  if (c->tp->send_msg != NULL && !c->is_closing && !c->is_draining) return c->tp->send_msg(c, buf, len);
  struct cm_str part = cm_str_n(buf, len);
  return cm__send_parts(c, &part, 1);
}

long cm_vprintf(struct cm_conn *c, const char *fmt, va_list ap) {
  char small[512], *p = small;
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(small, sizeof(small), fmt, ap);
  if (n < 0) {
    va_end(ap2);
    return CM_EINVAL;
  }
  if ((size_t)n >= sizeof(small)) {
    p = malloc((size_t)n + 1);
    if (p != NULL) vsnprintf(p, (size_t)n + 1, fmt, ap2);
  }
  va_end(ap2);
  int rc = p != NULL ? cm_send(c, p, (size_t)n) : CM_ENOMEM;
  if (p != small) free(p);
  return rc < 0 ? rc : (long)n;
}

long cm_printf(struct cm_conn *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  long n = cm_vprintf(c, fmt, ap);
  va_end(ap);
  return n;
}

void cm_close(struct cm_conn *c) {
  if (c->is_closing) return;
  c->is_closing = 1;
  cm__conn_mark_dirty(c);
}

void cm_drain(struct cm_conn *c) {
  if (c->is_closing || c->is_draining) return;
  c->is_draining = 1;
  cm__conn_mark_dirty(c);
}

void cm_error(struct cm_conn *c, const char *fmt, ...) {
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  CM_ERROR("conn %lu: %s", c->id, msg);
  cm_call(c, CM_EV_ERROR, msg);
  cm_close(c);
}

void cm_call(struct cm_conn *c, int ev, void *ev_data) {
  /* The protocol handler runs first: it turns bytes into typed events that
   * the user handler then sees in the same turn. */
  if (c->pfn != NULL) c->pfn(c, ev, ev_data);
  if (c->fn != NULL) c->fn(c, ev, ev_data);
}

void cm_recv_consume(struct cm_conn *c, size_t n) {
  cm_buf_consume(&c->recv, n);
  if (c->is_full && c->recv.len < c->recv_limit) {
    c->is_full = 0;
    cm__conn_update_interest(c);
  }
}

void cm_error_defer(struct cm_conn *c, const char *fmt, ...) {
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  if (!c->is_closing) cm__conn_defer_error(c, msg);
}
