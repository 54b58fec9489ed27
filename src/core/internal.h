/* Internal interfaces shared by the core's files (not installed). */
#ifndef CM_CORE_INTERNAL_H
#define CM_CORE_INTERNAL_H

#include "cymongoose.h"
#include "core/transport.h"

/* Allocates a connection with a fresh id and transport tp, links it into
 * mgr and gives it mgr's limits.  fd is not registered with epoll yet
 * (cm__conn_watch).  NULL on ENOMEM. */
struct cm_conn *cm__conn_new(struct cm_mgr *mgr, int fd, const struct cm__transport *tp);
/* Unlinks c, releases its descriptor, transport state and buffers, frees
 * it (no events). */
void cm__conn_free(struct cm_conn *c);
/* The id index (connmap.c) behind cm_conn_by_id(): add c (CM_ENOMEM when
 * the table cannot grow), remove c, free the table at cm_mgr_free(). */
int cm__connmap_add(struct cm_mgr *mgr, struct cm_conn *c);
void cm__connmap_del(struct cm_mgr *mgr, struct cm_conn *c);
void cm__connmap_free(struct cm_mgr *mgr);
/* Registers c (a TCP listener) in mgr->listeners, which the max_conns
 * resume and the accept retry go through instead of walking every
 * connection; cm__conn_free takes it out.  CM_ENOMEM when it cannot grow. */
int cm__conn_add_listener(struct cm_conn *c);
/* Buffer pool (bufpool.c).  CM_BUF_BLOCK: the size of a pooled block,
 * also the most a plain socket read asks for. */
#define CM_BUF_BLOCK 16384
/* Gives b (empty, no allocation) a block from mgr's pool, or a new one;
 * true if b already had an allocation.  False on ENOMEM. */
bool cm__buf_lend(struct cm_mgr *mgr, struct cm_buf *b);
/* When b holds no data, gives its allocation back: to the pool when it is
 * a block and the pool has room (mgr->buf_pool_max), else to free(). */
void cm__buf_release(struct cm_mgr *mgr, struct cm_buf *b);
/* Frees the pooled blocks, at cm_mgr_free(). */
void cm__buf_pool_free(struct cm_mgr *mgr);

/* Queues c for the flush step of the current or next poll. */
void cm__conn_mark_dirty(struct cm_conn *c);
/* Makes epoll's interest for c match its state (reading paused, output
 * waiting, connecting...), through c's watcher (io.c).  Returns 0, or -1
 * with errno when epoll_ctl failed: c then gets an ERROR at the next flush
 * (deferred), as a connection whose interest is wrong would stall without
 * a word. */
int cm__conn_update_interest(struct cm_conn *c);
/* Writes c's queued output through its transport, then its queued files;
 * delivers WRITE for what left and updates the interest.  Returns -1 when
 * c failed (it is then closing), else 0. */
int cm__conn_write(struct cm_conn *c);
/* Pauses reading (is_full) once handlers have left recv_limit bytes
 * unconsumed; for transports after they appended to c->recv. */
void cm__conn_check_full(struct cm_conn *c);
/* Reading from c is paused: recv is full (is_full) or the queued output
 * is above its mark (cm_conn_send_full), outside a TLS handshake. */
bool cm__conn_reads_paused(const struct cm_conn *c);
/* cm_send() of the n parts one after another, copied once into c->send
 * (TCP only): all of them are queued (0), or nothing (cm_send's codes). */
int cm__send_parts(struct cm_conn *c, const struct cm_str *parts, size_t n);
/* Half-close: closes c's write side through its transport once everything
 * queued has left (c->send, files, the transport's own records: TLS sends
 * close_notify first), keeping c open for reading, as a lingering close
 * needs.  From then on cm_send() refuses (CM_ECLOSED).  Returns 0 (also
 * when already asked), CM_EINVAL when c's transport cannot (no shutdown
 * entry, no descriptor: the caller drains instead), CM_ECLOSED when c is
 * closing or draining.  If the shutdown fails (the peer is gone), c closes
 * without an ERROR. */
int cm__conn_shutdown(struct cm_conn *c);
/* Carries out a half-close asked for once nothing is left to send (the
 * flush and the write step call it). */
void cm__conn_shut_if_flushed(struct cm_conn *c);
/* A draining connection still has output after the flush wrote what the
 * socket took: bounds the wait (c->closing_flush_ms without progress) with
 * a timer, armed once per drain; a drain that finishes at once costs none. */
void cm__conn_drain_wait(struct cm_conn *c);
/* Schedules an ERROR with a copy of msg for the next flush (used where
 * delivering at once would surprise the caller, e.g. inside cm_connect). */
void cm__conn_defer_error(struct cm_conn *c, const char *msg);

/* Timers (timer.c): runs due timers; returns ms until the next one is due
 * (capped at max_ms), 0 if one is already due. */
void cm__timers_run(struct cm_mgr *mgr, uint64_t now);
int cm__timers_wait_ms(struct cm_mgr *mgr, uint64_t now, int max_ms);
void cm__timers_free(struct cm_mgr *mgr);

/* Deadlines embedded in protocol state (timer.c), loop thread only.
 * cm__timer_init prepares t (not scheduled) to call fn(arg) when it fires;
 * the owner must cm__timer_unschedule it before freeing its storage.
 * cm__timer_schedule makes t fire at expire_ms (cm_millis() clock),
 * moving it if it is already scheduled: O(log n), no allocation except
 * when the heap grows (false then: the deadline could not be set).  The
 * callback may schedule t again.  Protocols arm them lazily: they store
 * the true deadline in their state and move the timer only when that
 * deadline is earlier than the one scheduled; a timer that fires early
 * just schedules itself for the later deadline. */
void cm__timer_init(struct cm_timer *t, cm_timer_fn fn, void *arg);
bool cm__timer_schedule(struct cm_mgr *mgr, struct cm_timer *t, uint64_t expire_ms);
void cm__timer_unschedule(struct cm_mgr *mgr, struct cm_timer *t);
bool cm__timer_scheduled(const struct cm_mgr *mgr, const struct cm_timer *t);
/* The lazy arming itself, the one way protocol deadlines move: makes t fire
 * no later than due.  A scheduled t due earlier is left alone (its callback
 * finds the real deadline later and schedules t for it), so a deadline
 * that moves forward with every request (idle, keep-alive) costs no heap
 * operation; only an earlier one sifts.  False as cm__timer_schedule. */
bool cm__timer_schedule_by(struct cm_mgr *mgr, struct cm_timer *t, uint64_t due);

/* Asks for one CM_EV_POLL to c's protocol handler (pfn only) in the flush
 * step of the current or next turn: for protocol work that no I/O event
 * will trigger (a held pipelined request once its reply completes, bytes
 * already in c->recv when a protocol is attached).  ev_data: uint64_t *now. */
void cm__conn_want_poll(struct cm_conn *c);

/* Wakeup (wakeup.c): frees the queue at cm_mgr_free(). */
void cm__wakeup_free(struct cm_mgr *mgr);
/* cm_mgr_signal_fd()'s pipe (sigwake.c): an epoll event whose data is
 * mgr->sigwake is the pipe's, not a connection's; drain empties it; free
 * closes both ends at cm_mgr_free(). */
void cm__sigwake_drain(struct cm_mgr *mgr);
void cm__sigwake_free(struct cm_mgr *mgr);

/* Files queued behind c->send (file.c: it moves bytes and never touches
 * the connection's state; cm_send_file and the write step in conn.c do). */
/* Queues a range of fd behind everything queued on c; closes fd when
 * owns_fd and the range cannot be queued (or is empty).  Returns as
 * cm_send_file(). */
int cm__files_queue(struct cm_conn *c, int fd, uint64_t offset, uint64_t len, bool owns_fd);
/* Sends from the first queued file while c->send is empty and the socket
 * takes bytes; when a file is done, what cm_send() queued behind it becomes
 * c->send.  Adds the bytes sent to *total.  Returns 0 (more may be left:
 * c->send holds a chunk, the budget ran out, or c->is_write_blocked),
 * CM_ECONNRESET when the peer went away, or CM_EIO / CM_ENOMEM with why
 * (why_len bytes) saying what failed. */
int cm__files_write(struct cm_conn *c, size_t *total, char *why, size_t why_len);
/* cm_send_file() of a range of fd that does not take fd: a range queued
 * later on c by cm_send_file() with the same fd closes it, so the ranges
 * of one file (multipart/byteranges) share one descriptor.  Until that
 * call the caller keeps fd open; if it fails, the caller must close c at
 * once (nothing is written from a closing connection).  Returns as
 * cm_send_file. */
bool cm__send_file_shared(struct cm_conn *c, int fd, uint64_t offset, uint64_t len);
/* Bytes waiting behind queued files (their "after" buffers). */
size_t cm__files_queued(const struct cm_conn *c);
/* Where cm_send() appends while files are queued: behind the last one. */
struct cm_buf *cm__files_tail(struct cm_conn *c);
/* Closes the files and frees the queue (cm__conn_free). */
void cm__files_free(struct cm_conn *c);

/* Output is waiting: plaintext in c->send, a queued file (cm_send_file),
 * or the transport's own (TLS records for the socket). */
static inline bool cm__conn_has_output(const struct cm_conn *c) {
  return c->send.len > 0 || c->files != NULL ||
         (c->tp->has_output != NULL && c->tp->has_output(c));
}

/* "connection refused" from ECONNREFUSED: strerror with a lower-case start. */
const char *cm__errstr(int err, char *buf, size_t len);

#endif
