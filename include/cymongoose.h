/*
 * cymongoose: an embeddable, event-driven networking library.
 *
 * One thread owns a manager (struct cm_mgr) and calls cm_mgr_poll() in a loop.
 * Every connection (struct cm_conn) belongs to one manager; events are
 * delivered to the connection's protocol handler first, then to its user
 * handler, always in the thread that calls cm_mgr_poll().  The only functions
 * that may be called from another thread are cm_wakeup(), cm_mgr_wake() and
 * cm_timer_cancel().
 * A public call never delivers ERROR or CLOSE synchronously: failures found
 * inside it reach the handler at the next flush of cm_mgr_poll()
 * (docs/c-core.md lists the events some calls do deliver at once).
 *
 * Errors, in one paragraph (docs/c-core.md, "Error returns"): an action that
 * can fail returns int, 0 or a negative CM_E* code; a length or count comes
 * back as long, negative CM_E* on failure; a pointer is NULL on failure; a
 * question (is/has/valid/match) returns bool and reports no error.
 * cm_strerror() names every code.
 *
 * Ownership, in one paragraph: the manager owns every connection and every
 * timer made by cm_timer_add(); a struct cm_conn pointer stays valid until
 * the CLOSE event for it has returned.  Pointers passed as ev_data are valid
 * only for the duration of the handler call.  Strings passed to functions are
 * copied unless the comment says otherwise.
 */
#ifndef CYMONGOOSE_H
#define CYMONGOOSE_H

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Everything declared here is the library's public ABI; the rest is built
 * with hidden visibility (see the Makefile), so only these are exported. */
#pragma GCC visibility push(default)

#define CM_VERSION "0.1.0"

/* ---------------------------------------------------------------- events */
/* Event numbers; the values are part of the Python API and never change. */
enum {
  CM_EV_ERROR = 0,      /* ev_data: const char *message */
  CM_EV_OPEN = 1,       /* connection created; ev_data NULL */
  CM_EV_POLL = 2,       /* periodic, every user handler (see cm_mgr.poll_interval_ms);
                           ev_data: uint64_t *now_ms */
  CM_EV_RESOLVE = 3,    /* host name resolved; ev_data NULL */
  CM_EV_CONNECT = 4,    /* outbound connection established; ev_data NULL */
  CM_EV_ACCEPT = 5,     /* inbound connection accepted; ev_data NULL */
  CM_EV_TLS_HS = 6,     /* TLS handshake done; ev_data NULL */
  CM_EV_READ = 7,       /* bytes appended to c->recv; ev_data: size_t *nread */
  CM_EV_WRITE = 8,      /* bytes written from c->send; ev_data: size_t *nwritten */
  CM_EV_CLOSE = 9,      /* last event of a connection; ev_data NULL */
  CM_EV_HTTP_HDRS = 10, /* ev_data: struct cm_http_msg * (headers only) */
  CM_EV_HTTP_MSG = 11,  /* ev_data: struct cm_http_msg * */
  CM_EV_WS_OPEN = 12,   /* ev_data: struct cm_http_msg * (the upgrade request/response) */
  CM_EV_WS_MSG = 13,    /* ev_data: struct cm_ws_msg * */
  CM_EV_WS_CTL = 14,    /* ev_data: struct cm_ws_msg * */
  CM_EV_MQTT_CMD = 15,  /* ev_data: struct cm_mqtt_msg * (every packet received) */
  CM_EV_MQTT_MSG = 16,  /* ev_data: struct cm_mqtt_msg * (an application message) */
  CM_EV_MQTT_OPEN = 17, /* ev_data: int *connack_code */
  CM_EV_SNTP_TIME = 18, /* ev_data: int64_t *epoch_ms */
  CM_EV_WAKEUP = 19,    /* ev_data: struct cm_str *payload */
  CM_EV_USER = 22       /* first number free for applications */
};

/* ----------------------------------------------------------------- errors */
/*
 * Error codes.  Every public call that can fail returns 0 (or a length) on
 * success and one of these, always negative, on failure.  Where an errno
 * value fits, the code is that value negated (so -errno from a system call
 * passes through unchanged); the library's own codes sit below
 * CM_E_OWN_BASE, far from any errno value.  docs/c-errors.md lists which
 * call returns which.
 */
#define CM_OK 0
#define CM_EINVAL (-EINVAL)             /* bad argument, or not possible on this connection */
#define CM_ENOMEM (-ENOMEM)             /* out of memory */
#define CM_ENOSPC (-ENOSPC)             /* the caller's buffer is too small */
#define CM_EAGAIN (-EAGAIN)             /* a queue is full now; retry later */
#define CM_EALREADY (-EALREADY)         /* already done (or under way) */
#define CM_ENOENT (-ENOENT)             /* the thing looked up is absent */
#define CM_EINTR (-EINTR)               /* interrupted by a signal */
#define CM_EIO (-EIO)                   /* a lower layer (OS, OpenSSL) failed */
#define CM_ECONNRESET (-ECONNRESET)     /* the peer reset the connection */
#define CM_ENOTCONN (-ENOTCONN)         /* not connected (yet) */
#define CM_E_OWN_BASE (-100000)
#define CM_ECLOSED (CM_E_OWN_BASE - 1)  /* the connection is closing or draining */
#define CM_ETOOBIG (CM_E_OWN_BASE - 2)  /* a configured limit would be exceeded */
#define CM_EPARSE (CM_E_OWN_BASE - 3)   /* malformed input (a protocol or format error) */
#define CM_EPARTIAL (CM_E_OWN_BASE - 4) /* incomplete input: more bytes are needed */

/*
 * A readable English message for code: one of the library's own codes,
 * -errno (strerror's text), 0 ("success"), or anything else ("unknown
 * error").  Never NULL; the string is static; thread-safe.
 */
const char *cm_strerror(int code);

/* ----------------------------------------------------------------- basics */
/* A view of bytes owned by someone else; never freed through this struct. */
struct cm_str {
  const char *buf;
  size_t len;
};

/* Returns a view of the NUL-terminated string s (not copied). */
struct cm_str cm_str_c(const char *s);
/* Returns a view of len bytes at buf (not copied). */
struct cm_str cm_str_n(const char *buf, size_t len);

/*
 * A growable byte buffer, consumed from the front by advancing an offset so
 * that consuming is O(1); the unconsumed bytes are moved to the front only
 * when room is needed at the back.
 * Data: ptr[off .. off+len).  Allocation: ptr[0 .. cap).  Owned by whoever
 * holds the struct; release with cm_buf_free().
 */
struct cm_buf {
  uint8_t *ptr;
  size_t off;
  size_t len;
  size_t cap;
};

/* First unconsumed byte; valid until the next call that changes the buffer. */
static inline uint8_t *cm_buf_data(const struct cm_buf *b) {
  return b->ptr == NULL ? NULL : b->ptr + b->off;
}
/* Makes room for at least n more bytes after the data.  Returns 0, or
 * CM_ENOMEM (the buffer is unchanged). */
int cm_buf_reserve(struct cm_buf *b, size_t n);
/* Appends n bytes copied from p.  Returns 0, or CM_ENOMEM (nothing appended). */
int cm_buf_append(struct cm_buf *b, const void *p, size_t n);
/* Drops the first n bytes of data (all of it if n >= len). */
void cm_buf_consume(struct cm_buf *b, size_t n);
/* Removes n bytes at offset ofs of the data, keeping what follows. */
void cm_buf_delete(struct cm_buf *b, size_t ofs, size_t n);
/* Frees the allocation; the struct reads as empty afterwards. */
void cm_buf_free(struct cm_buf *b);
/* Shrinks the allocation to fit the data when much of it is unused. */
void cm_buf_trim(struct cm_buf *b);

/* Monotonic milliseconds since an arbitrary point. */
uint64_t cm_millis(void);

/* ---------------------------------------------------------------- logging */
enum { CM_LL_NONE = 0, CM_LL_ERROR = 1, CM_LL_INFO = 2, CM_LL_DEBUG = 3, CM_LL_VERBOSE = 4 };
/* Sets the global log level (default CM_LL_NONE).  Thread-safe. */
void cm_log_set(int level);
/* Returns the global log level. */
int cm_log_get(void);
/* Formats one log line and hands it to the sink (stderr by default).  Callers
 * use the CM_LOG macros, which skip the formatting when the level is off. */
void cm_log(int level, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Where log lines go.  sink(level, file, line, msg, arg): file is the source
 * file's base name, msg the formatted text without a newline; both are valid
 * only during the call.  It runs in whichever thread logs (the polling thread,
 * or a thread calling cm_wakeup), so it must be thread-safe. */
typedef void (*cm_log_sink_fn)(int level, const char *file, int line, const char *msg, void *arg);
/* Sends log lines to sink(arg) instead of stderr; NULL restores stderr.
 * Call it before logging is switched on, or while no other thread logs: the
 * pair is not swapped atomically.  No cost when the level is CM_LL_NONE. */
void cm_log_set_sink(cm_log_sink_fn sink, void *arg);
#define CM_LOG(level, ...)                                        \
  do {                                                            \
    if ((level) <= cm_log_get()) cm_log(level, __FILE__, __LINE__, __VA_ARGS__); \
  } while (0)
#define CM_ERROR(...) CM_LOG(CM_LL_ERROR, __VA_ARGS__)
#define CM_INFO(...) CM_LOG(CM_LL_INFO, __VA_ARGS__)
#define CM_DEBUG(...) CM_LOG(CM_LL_DEBUG, __VA_ARGS__)
#define CM_VERBOSE(...) CM_LOG(CM_LL_VERBOSE, __VA_ARGS__)

/* ------------------------------------------------------------ addresses */
/* An IPv4 or IPv6 address and port.  ip holds 4 or 16 bytes, network order;
 * port is in host order. */
struct cm_addr {
  uint8_t ip[16];
  uint16_t port;
  bool is_ip6;
};
/* Writes "1.2.3.4" or "::1" (no port) into buf; returns buf. */
char *cm_addr_ip_str(const struct cm_addr *a, char *buf, size_t len);

/* ------------------------------------------------------------------ URLs */
/* URL parts.  Each returns a view into url (not copied), empty when absent.
 * Accepted shape: [scheme://][user[:pass]@]host[:port][/path][?query][#frag],
 * where host may be an IPv6 literal in brackets. */
struct cm_str cm_url_scheme(const char *url); /* "http"; empty without "://" */
struct cm_str cm_url_host(const char *url);   /* "::1" for "[::1]" (no brackets) */
struct cm_str cm_url_user(const char *url);
struct cm_str cm_url_pass(const char *url);
struct cm_str cm_url_uri(const char *url);    /* from the first "/" after the host; "/" when none */
/* The explicit port, else the scheme's default (http/ws 80, https/wss 443,
 * mqtt 1883, mqtts 8883, sntp/udp-ntp 123), else 0. */
uint16_t cm_url_port(const char *url);
/* True for https, wss, mqtts, tls, ssl (case-insensitive). */
bool cm_url_is_ssl(const char *url);
/* Whether host is a numeric IPv4 or IPv6 address (no brackets) or
 * "localhost" (127.0.0.1); if so, *a gets it.  False for names that need
 * DNS (a question, not an error). */
bool cm_aton(struct cm_str host, struct cm_addr *a);

/* ---------------------------------------------------------- connections */
struct cm_conn;
struct cm_mgr;
/* An event handler.  c: the connection; ev: CM_EV_*; ev_data: see the enum. */
typedef void (*cm_event_fn)(struct cm_conn *c, int ev, void *ev_data);
struct cm__file_out;  /* internal: a file queued by cm_send_file() */
struct cm__transport; /* internal: how c's descriptor moves bytes (src/core/transport.h) */

/* internal: a descriptor's watcher, the owner of its epoll registration
 * (src/core/io.c). */
struct cm__io {
  unsigned events;             /* interest registered with epoll */
  unsigned want;               /* internal descriptors: what their owner waits for */
};

struct cm_conn {
  struct cm_conn *next, *prev; /* manager's list of live connections */
  /* The handler and the flags first: the periodic POLL walk over every
   * connection reads this cache line only. */
  cm_event_fn fn;              /* user handler, may be NULL */
  void *fn_data;               /* for the user handler; not owned */
  unsigned is_listening : 1;   /* a listening socket */
  unsigned is_client : 1;      /* made by cm_connect() */
  unsigned is_accepted : 1;    /* made by accept() from a listener */
  unsigned is_udp : 1;         /* datagram socket */
  unsigned is_websocket : 1;   /* upgraded to WebSocket */
  unsigned is_tls : 1;         /* TLS is on for this connection */
  unsigned is_tls_hs : 1;      /* TLS handshake in progress */
  unsigned is_resolving : 1;   /* host name lookup in progress */
  unsigned is_connecting : 1;  /* non-blocking connect in progress */
  unsigned is_readable : 1;    /* the last poll found the socket readable */
  unsigned is_writable : 1;    /* the last poll found the socket writable */
  unsigned is_full : 1;        /* recv reached recv_limit: reading is paused */
  unsigned is_draining : 1;    /* close once send is flushed */
  unsigned is_closing : 1;     /* will be closed at the end of this poll */
  unsigned is_internal : 1;    /* the library's own descriptor (wakeup eventfd, resolver
                                  socket): readiness goes to its transport; hidden
                                  from bindings, gets no POLL; CLOSE goes to pfn only */
  int fd;                      /* socket, -1 for none (here, beside the flags, so that
                                  no padding follows them: idle brokers and servers
                                  hold tens of thousands of these) */
  struct cm_mgr *mgr;          /* owner */
  unsigned long id;            /* unique per manager, never 0, never reused */
  struct cm_addr loc;          /* local address; on a connection accepted from a
                                  wildcard listener (0.0.0.0, ::) only .port is set
                                  until cm_conn_local_addr() is called */
  struct cm_addr rem;          /* remote address (for a UDP listener: last sender) */
  struct cm_buf recv;          /* bytes received, not yet consumed by handlers */
  struct cm_buf send;          /* bytes queued, not yet written to the socket */
  size_t recv_limit;           /* reading pauses (is_full) while recv.len >= this */
  size_t send_hwm;             /* high-water mark of queued output: reading (and the
                                  protocols' processing of input) pauses while
                                  cm_conn_send_full(); 0: never.  Accepted connections
                                  start with mgr->send_hwm, others with 0 (see
                                  cm_conn_send_full) */
  cm_event_fn pfn;             /* protocol handler (http, ws, ...), called first */
  void *pfn_data;              /* protocol state; the protocol frees it on CLOSE */
  void *ext;                   /* for language bindings; not touched by the library */
  uint64_t last_io_ms;         /* time of the last read or write, for idle timeouts */
  uint64_t closing_flush_ms;   /* a draining connection (cm_drain, or the peer's
                                  EOF) whose peer takes no byte of the queued
                                  output for this long is closed with an ERROR,
                                  the rest dropped; 0: it waits for ever.
                                  Starts as mgr->closing_flush_ms */
  /* ---- private: the library's own state (as uv.h's *_PRIVATE_FIELDS).
   * Neither read nor write these: they change without notice. ---- */
  void *tls;                   /* TLS state (src/tls), NULL without TLS */
  struct cm_conn *dirty_next;  /* queue of connections to flush */
  struct cm__file_out *files;  /* files queued by cm_send_file(), in order */
  const struct cm__transport *tp; /* c's transport (TCP, UDP, TLS...) */
  struct cm__io io;            /* c's epoll watcher */
  char *deferred_error;        /* ERROR to deliver at the next flush */
  unsigned is_dirty : 1;       /* queued for flushing */
  unsigned is_eof : 1;         /* the peer closed its side */
  unsigned is_write_blocked : 1; /* the socket refused the last write */
  unsigned is_accept_paused : 1; /* a listener out of descriptors (EMFILE)
                                    waits for a retry timer before accepting again */
  unsigned is_accept_failing : 1; /* the EMFILE episode was logged */
  unsigned is_poll_wanted : 1; /* pfn asked for a POLL at the next flush */
  unsigned is_loc_pending : 1; /* loc's IP not read yet (cm_conn_local_addr) */
  unsigned is_shut_wanted : 1; /* half-close once output has left (cm__conn_shutdown) */
  unsigned is_shut : 1;        /* the write side is closed */
  struct cm_timer *drain_timer; /* closing_flush_ms of a drain that waits, or NULL */
  /* ---- end of private fields ---- */
};

/*
 * c's local address, read from the socket (getsockname) the first time it
 * is asked for on a connection accepted from a wildcard listener, so that
 * accepting costs no system call for it; c->loc afterwards holds it too.
 * The pointer is &c->loc: valid while c is.
 */
const struct cm_addr *cm_conn_local_addr(struct cm_conn *c);

/*
 * Starts listening on url: "tcp://ip:port", "udp://ip:port" ("http://",
 * "ws://" and other schemes listen as TCP; protocol handlers are attached by
 * their own functions).  IPv6 literals go in brackets: "tcp://[::1]:0".
 * Port 0 picks a free port; read it back from c->loc.port.
 * fn/fn_data become the handler of the listener and of every accepted child.
 * Returns the listening connection (OPEN already delivered), or NULL when
 * the URL is invalid or the socket cannot be bound (errno says why).
 */
struct cm_conn *cm_listen(struct cm_mgr *mgr, const char *url, cm_event_fn fn, void *fn_data);

/* Options of cm_listen_ex(); all zero means cm_listen()'s behaviour. */
struct cm_listen_opts {
  bool reuse_port; /* SO_REUSEPORT: several sockets (one per thread or
                      process, each with its own manager) listen on the same
                      address and port, and the kernel spreads new
                      connections across them (docs/deploy.md) */
  int backlog;     /* listen(2) backlog; 0: SOMAXCONN */
};

/* cm_listen() with options (opts may be NULL).  With reuse_port, bind the
 * first listener to port 0 if you like and give the others its c->loc.port. */
struct cm_conn *cm_listen_ex(struct cm_mgr *mgr, const char *url, cm_event_fn fn, void *fn_data,
                             const struct cm_listen_opts *opts);

/*
 * Listens on fd, a socket someone else created, bound and (for TCP) put in
 * the listening state: typically one inherited from a supervisor process
 * that keeps it open across the lives of its workers, so that connections
 * waiting in its accept queue survive a worker that exits (closing a
 * listener of its own would reset them; docs/deploy.md).  fd is made
 * non-blocking and close-on-exec; note that O_NONBLOCK belongs to the open
 * file, so other holders of the same socket see it too.  Takes fd in every
 * case: closed with the connection, or before this returns NULL (errno
 * ENOTSOCK, or EINVAL for a TCP socket that is not listening).  fn/fn_data
 * as for cm_listen(); OPEN is delivered before this returns.  Closing the
 * returned connection closes only this descriptor: the socket keeps
 * accepting for its other holders.
 */
struct cm_conn *cm_listen_fd(struct cm_mgr *mgr, int fd, cm_event_fn fn, void *fn_data);

/*
 * Starts a non-blocking outbound connection to url ("tcp://host:port",
 * "udp://host:port", or any scheme with a known default port).  Returns at
 * once with the new connection (OPEN delivered); CONNECT or ERROR follows
 * from cm_mgr_poll().  Returns NULL (errno says why) only when the URL
 * cannot be parsed or memory runs out.
 */
struct cm_conn *cm_connect(struct cm_mgr *mgr, const char *url, cm_event_fn fn, void *fn_data);

/*
 * Queues len bytes from buf for sending (copied).  The manager writes them
 * during cm_mgr_poll().  Returns 0, or, queueing nothing: CM_ECLOSED when
 * the connection is closing or draining, CM_EINVAL on a listener,
 * CM_ETOOBIG when the queue would exceed mgr->send_limit, CM_ENOMEM.  On
 * UDP the datagram goes out at once: CM_ENOTCONN before the socket exists
 * (a name still resolving), else -errno of send(2), CM_EIO when the
 * datagram went out truncated.  Producers that may queue a lot should pace themselves
 * with cm_conn_send_full() and CM_EV_WRITE.
 */
int cm_send(struct cm_conn *c, const void *buf, size_t len);
/* cm_send() of a printf-formatted string.  Returns the number of bytes
 * queued (>= 0), or cm_send()'s code (CM_EINVAL for a bad format). */
long cm_printf(struct cm_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
long cm_vprintf(struct cm_conn *c, const char *fmt, va_list ap);

/*
 * Queues bytes [offset, offset + len) of the open file fd to be sent after
 * everything queued so far; bytes queued later with cm_send() go out after
 * them, so a response head, a file body and the next response keep their
 * order.  The file is streamed, never read into memory as a whole: plain
 * sockets use sendfile(2) (zero-copy) whenever c->send is empty; TLS
 * connections (and files sendfile refuses) read chunks of at most 64 KiB
 * into c->send as the socket takes them.  Ownership of fd passes to the
 * library in every case: it is closed once its bytes are sent, when c
 * closes, or before this returns an error.  A file that turns out shorter
 * than offset + len closes c with an ERROR at a later flush (the peer was
 * promised len bytes).  Returns 0; CM_ECLOSED when c is closing or
 * draining; CM_EINVAL on a listener or UDP, or for fd < 0 (not closed
 * then); CM_ENOMEM.  len 0 queues
 * nothing and returns 0.
 */
int cm_send_file(struct cm_conn *c, int fd, uint64_t offset, uint64_t len);

/*
 * True while c->send_hwm is set and c's queued output (c->send and bytes
 * queued behind files) is at or above its pause mark: c->send_hwm, or half
 * of mgr->send_limit when that is lower (so that, once a protocol waits for
 * the queue to go below the mark, the next reply of up to half the limit
 * always fits).  While true the manager reads nothing more from c (except
 * during a TLS handshake), and the HTTP server and WebSocket layers stop
 * processing input already received; all resume once writes bring the
 * queue below the mark (a WRITE event).  This bounds what one peer that
 * sends but never reads can make a server hold (pipelined requests, pings).
 *
 * Only accepted connections get a mark by default (mgr->send_hwm): if both
 * ends of a stream stopped reading while their own output is high, a
 * client streaming to an echoing server would deadlock with it.  Set
 * c->send_hwm on an outbound connection whose peer is not trusted to read
 * (a WebSocket client that a server may flood with pings).
 */
bool cm_conn_send_full(const struct cm_conn *c);
/* Bytes c holds queued for output: c->send plus what waits behind queued
 * files (not the files themselves). */
size_t cm_conn_send_queued(const struct cm_conn *c);

/* Marks c for closing; it is closed (CLOSE delivered, memory freed) at the
 * end of the current or next poll.  Safe from any handler, idempotent. */
void cm_close(struct cm_conn *c);
/* Stops reading, flushes c->send (and queued files), then closes.  A peer
 * that takes no byte of it for c->closing_flush_ms ends it sooner (ERROR
 * "drain timed out", the rest dropped). */
void cm_drain(struct cm_conn *c);
/* Delivers CM_EV_ERROR with the formatted message to c, then marks it closing. */
void cm_error(struct cm_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Like cm_error(), but the ERROR (then the close) comes at the next flush of
 * cm_mgr_poll(), after the caller returned: for code outside handlers, and
 * for failures found inside a public call (which never delivers ERROR
 * synchronously).  Only the first deferred error of a connection is kept. */
void cm_error_defer(struct cm_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Delivers ev to c's protocol handler, then to its user handler. */
void cm_call(struct cm_conn *c, int ev, void *ev_data);
/* Consumes n received bytes; resumes reading if the connection was full. */
void cm_recv_consume(struct cm_conn *c, size_t n);
/* Returns the live connection with this id, or NULL: O(1) (a hash table in
 * the manager), however many connections are open. */
struct cm_conn *cm_conn_by_id(struct cm_mgr *mgr, unsigned long id);

/* ----------------------------------------------------------------- timers */
enum {
  CM_TIMER_ONCE = 0,    /* fire once after period_ms */
  CM_TIMER_REPEAT = 1,  /* fire every period_ms until cancelled */
  CM_TIMER_RUN_NOW = 2  /* also fire at the first poll after creation */
};
typedef void (*cm_timer_fn)(void *arg);

/*
 * A timer.  Storage: either given by the caller to cm_timer_start() (it must
 * stay valid until release is called, or until the manager is freed when
 * release is NULL), or allocated by cm_timer_add() and freed by the manager.
 *
 * Threads: timers belong to the thread that polls the manager.
 * cm_timer_start(), cm_timer_add(), cm_timer_stop() and cm_timer_active()
 * are for that thread only (or any thread while no poll runs, if the caller
 * serialises them); cm_timer_cancel() is the one timer call safe from any
 * thread.  To start a timer from another thread, hand the request over with
 * cm_wakeup() and start it in the CM_EV_WAKEUP handler.
 *
 * Contract (libuv's): starting a scheduled timer restarts it (one entry, new
 * deadline); a timer (re)started from its own callback stays scheduled and is
 * not released; timers due at the same millisecond fire in the order they
 * were started; a repeating timer is re-armed before its callback runs, so
 * the callback sees it active and may stop or restart it.  A callback must
 * not free its own timer's storage (the manager looks at the timer when the
 * callback returns): stop it, and free the storage in the release hook.
 */
struct cm_timer {
  uint64_t period_ms;      /* interval */
  uint64_t expire_ms;      /* next time it fires (cm_millis() clock) */
  unsigned flags;          /* CM_TIMER_* */
  cm_timer_fn fn;          /* called in the poll thread */
  void *arg;               /* for fn and release; not owned */
  cm_timer_fn release;     /* called once when the manager stops referencing the timer */
  volatile int cancelled;  /* set by cm_timer_cancel(); read with atomics */
  /* ---- private: the library's own state; neither read nor write ---- */
  size_t heap_index;       /* place in the manager's heap */
  uint64_t seq;            /* start order, breaks ties between equal deadlines */
  struct cm_timer *sweep_next; /* chain of timers being swept out */
  bool owned_by_mgr;       /* allocated by cm_timer_add() */
  /* ---- end of private fields ---- */
};

/*
 * Schedules timer t (caller's storage) on mgr: fn(arg) after period_ms (at
 * the next poll with CM_TIMER_RUN_NOW), every period_ms with CM_TIMER_REPEAT.
 * On a timer already scheduled (or running its callback) it restarts it with
 * the new values; release is called once, when the manager finally lets go
 * of t (with the values current then).  Poll thread only.  Returns 0, or
 * CM_ENOMEM (t is then not scheduled and release is not called).
 */
int cm_timer_start(struct cm_mgr *mgr, struct cm_timer *t, uint64_t period_ms, unsigned flags,
                   cm_timer_fn fn, void *arg, cm_timer_fn release);
/* Allocates and starts a timer owned by mgr.  Returns it (valid until it has
 * fired for the last time, has been stopped, or has been cancelled and
 * swept), or NULL on ENOMEM.  Poll thread only. */
struct cm_timer *cm_timer_add(struct cm_mgr *mgr, uint64_t period_ms, unsigned flags,
                              cm_timer_fn fn, void *arg);
/*
 * Stops t at once: fn is not called again.  Poll thread only: O(log n), no
 * allocation.  The manager lets go of t before returning (calls release, or
 * frees a cm_timer_add() timer), except when t is running its callback right
 * now: then it lets go when the callback returns, unless the callback
 * started t again.  Harmless on a timer that is not scheduled.
 */
void cm_timer_stop(struct cm_mgr *mgr, struct cm_timer *t);
/* Cancels t: fn is not called again.  Safe from any thread (it only sets a
 * flag); the manager drops the timer (and calls release) at its next poll.
 * From the poll thread prefer cm_timer_stop(), which lets go at once. */
void cm_timer_cancel(struct cm_mgr *mgr, struct cm_timer *t);
/* True while t is scheduled and not cancelled (a one-shot timer running its
 * callback is no longer scheduled; a repeating one is). */
bool cm_timer_active(const struct cm_timer *t);

/* ---------------------------------------------------------------- manager */
/* Called around the blocking wait of cm_mgr_poll(); arg is mgr->hook_data. */
typedef void (*cm_hook_fn)(void *arg);

struct cm_wakeup_q;  /* internal */
struct cm_dns;       /* internal */
struct cm__sigwake;  /* internal: src/core/sigwake.c */
struct cm__mgr_ext;  /* internal: per-manager state of a layer (src/core/transport.h) */

struct cm_mgr {
  struct cm_conn *conns;       /* live connections, newest first */
  size_t nconns;               /* how many */
  unsigned long next_id;       /* id of the next connection */
  int epfd;                    /* epoll descriptor */
  unsigned long wakeup_id;     /* id of the internal wakeup connection, or 0 */
  cm_hook_fn before_sleep;     /* called just before blocking, may be NULL */
  cm_hook_fn after_sleep;      /* called just after blocking, may be NULL */
  cm_hook_fn on_output;        /* called when a connection gets output or a close
                                  queued while no poll runs (so a loop embedding
                                  the manager knows to poll soon); may be NULL */
  void *hook_data;
  size_t recv_limit;           /* default c->recv_limit for new connections (1 MiB) */
  size_t send_limit;           /* hard cap on a connection's queued output
                                  (cm_conn_send_queued): cm_send() beyond it fails;
                                  0 means no cap (default).  Reading pauses at
                                  half of it (cm_conn_send_full) */
  size_t send_hwm;             /* c->send_hwm of accepted connections (1 MiB) */
  size_t max_conns;            /* accept() pauses at this many connections; 0: no cap */
  size_t wakeup_max_bytes;     /* cm_wakeup() refuses while the queue holds this much
                                  (payloads plus ~32 bytes each; CM_WAKEUP_MAX_BYTES);
                                  0: no cap */
  size_t wakeup_max_msgs;      /* ... or this many messages (CM_WAKEUP_MAX_MSGS); 0: no cap */
  uint64_t now_ms;             /* cm_millis() at the start of the current poll */
  void *userdata;              /* for the application; not touched */
  uint64_t tls_hs_timeout_ms;  /* TLS handshake deadline (CM_TLS_HS_TIMEOUT_MS); 0: none */
  uint64_t closing_flush_ms;   /* c->closing_flush_ms of new connections
                                  (CM_CLOSING_FLUSH_MS); 0: drains never time out */
  /* CM_EV_POLL to every connection: at the end of a poll call that waited
   * its whole timeout with nothing to do (an idle call), and otherwise at
   * most once per poll_interval_ms (default CM_POLL_INTERVAL_MS), however
   * many turns the loop makes.  0: every turn (costs O(connections) per
   * turn).  poll_off: no POLL at all.  Protocol deadlines never need it. */
  uint64_t poll_interval_ms;
  bool poll_off;
  size_t buf_pool_max;         /* emptied 16 KiB connection buffers kept for reuse
                                  (CM_BUF_POOL_MAX, 64); 0: none kept */
  /* ---- private: the library's own state (as uv.h's *_PRIVATE_FIELDS).
   * Neither read nor write these: they change without notice. ---- */
  struct cm_timer **timers;    /* min-heap on expire_ms */
  size_t ntimers, timers_cap;
  volatile int timers_cancelled; /* set by cm_timer_cancel() from any thread */
  uint64_t timer_seq;          /* start sequence of the next timer */
  struct cm_timer *timer_running; /* the timer whose callback runs, or NULL */
  struct cm_conn *dirty;       /* connections with queued output or closing */
  struct cm_conn **conn_map;   /* connections by id (src/core/connmap.c) */
  size_t conn_slots;           /* its size: a power of two, or 0 */
  struct cm_conn **listeners;  /* the TCP listeners, for max_conns and accept
                                  retries without a walk of every connection */
  size_t nlisteners, listeners_cap;
  struct cm_wakeup_q *wakeup;  /* NULL unless cm_wakeup_init() was called
                                  (test it with cm_wakeup_enabled()) */
  struct cm_dns *dns;          /* resolver (src/net/dns.c), NULL until used */
  struct cm__sigwake *sigwake; /* cm_mgr_signal_fd()'s pipe, NULL until asked for */
  int polling;                 /* inside cm_mgr_poll() */
  int accept_retry_armed;      /* a listener's accept retry timer is pending */
  int wait_errno;              /* the last epoll_wait error logged, 0 for none */
  uint64_t last_poll_ms;       /* when POLL last went to every connection */
  void *tls;                   /* TLS context cache and handshakes under way */
  void *buf_pool;              /* the kept blocks (src/core/bufpool.c) */
  size_t buf_pool_n;           /* how many */
  struct cm__mgr_ext *exts;    /* layers' state freed by cm_mgr_free() */
  void *static_roots;          /* root directories cm_http_serve_dir() keeps open */
  /* ---- end of private fields ---- */
};

/* Default of cm_mgr.poll_interval_ms. */
#define CM_POLL_INTERVAL_MS 100
/* Default mgr->buf_pool_max: emptied 16 KiB buffers kept for reuse (1 MiB). */
#define CM_BUF_POOL_MAX 64

/* Initialises mgr (caller's storage).  Returns 0, or -errno of the failed
 * system call (epoll_create1), or CM_ENOMEM. */
int cm_mgr_init(struct cm_mgr *mgr);
/* Closes every connection (each gets CLOSE), drops every timer (calling
 * release), and frees all the manager's memory.  mgr may be re-initialised. */
void cm_mgr_free(struct cm_mgr *mgr);
/*
 * One turn of the loop: flushes queued output, waits up to timeout_ms for
 * socket activity (less if a timer is due), dispatches events, runs due
 * timers (protocol deadlines among them), delivers POLL to every connection
 * when it is due (see poll_interval_ms), and closes what was marked.  A
 * turn costs O(ready connections + due timers), plus O(connections) on the
 * turns that deliver POLL.
 * Returns 0; CM_EINTR when a signal interrupted the wait; -errno of
 * epoll_wait when the wait itself failed (logged once).  -EBUSY when called
 * from inside a poll of the same manager.  errno is set to match.
 */
int cm_mgr_poll(struct cm_mgr *mgr, int timeout_ms);
/*
 * cm_mgr_poll() for callers that handle signals (the pselect pattern):
 * block the signals you handle, check for ones already caught, then call
 * this with the mask you had before blocking.  The wait runs under that
 * mask (epoll_pwait), so a signal that arrived after your check interrupts
 * it (CM_EINTR) instead of waiting out timeout_ms; the mask is then put
 * back in force (pthread_sigmask) before any event is dispatched.
 * sigmask points to a sigset_t (a void pointer keeps <signal.h> out of
 * this header, which strict C99 builds include too); read during the call
 * only.  NULL: exactly cm_mgr_poll().  Returns as cm_mgr_poll().
 */
int cm_mgr_poll_sigmask(struct cm_mgr *mgr, int timeout_ms, const void *sigmask);
/*
 * cm_mgr_poll_sigmask() that pays for the guard only on turns that sleep.
 * The turn first looks for ready descriptors without waiting (epoll_wait
 * with timeout 0: a busy loop makes one system call per turn, as
 * cm_mgr_poll()); only when nothing is ready and it would sleep does it
 * block the signals in *block (pthread_sigmask), call caught(arg), and wait
 * under the mask that was in force before (epoll_pwait), putting that mask
 * back before any event is dispatched.  caught() is where the caller checks
 * for signals its handlers already took: nonzero means "one came, do not
 * wait" (the turn goes on without sleeping and returns CM_EINTR).  It runs
 * on the polling thread inside the turn, before before_sleep; it may queue
 * output or start timers (the wait is recomputed after it) but must not
 * poll.  block points to a sigset_t, read during the call only.  block or
 * caught NULL: exactly cm_mgr_poll().  Returns as cm_mgr_poll().
 */
int cm_mgr_poll_checked(struct cm_mgr *mgr, int timeout_ms, const void *block,
                        int (*caught)(void *arg), void *arg);
/*
 * The self-pipe trick, built in: a descriptor that a signal handler may
 * write any byte to (write() is async-signal-safe) so that the wait of the
 * turn in progress, or of the next one, returns at once; the loop drains
 * the pipe itself.  With it, a program that handles signals needs no
 * pthread_sigmask around its polls: set a flag and write a byte in the
 * handler, test the flag after each cm_mgr_poll() (this is what the Python
 * module does, through Python's own signal wakeup descriptor).  Made on the
 * first call (a non-blocking, close-on-exec pipe whose read end the manager
 * watches); later calls return the same descriptor.  The manager owns it:
 * closed by cm_mgr_free(), never by the caller.  Poll thread only.
 * Returns the descriptor (>= 0), or CM_ENOMEM, or -errno of pipe2/epoll_ctl.
 */
int cm_mgr_signal_fd(struct cm_mgr *mgr);

/* Default of cm_mgr.closing_flush_ms: 60 s without progress, as nginx's
 * send_timeout. */
#define CM_CLOSING_FLUSH_MS 60000u

/* -------------------------------------------------------------- wakeup */
/* Default bound of the wakeup queue (mgr->wakeup_max_bytes / _msgs). */
#define CM_WAKEUP_MAX_BYTES (64u << 20)
#define CM_WAKEUP_MAX_MSGS 100000u
/* Enables cm_wakeup() on mgr by creating an internal eventfd connection.
 * Poll thread only.  Returns 0, or -errno (eventfd), or CM_ENOMEM.
 * Idempotent. */
int cm_wakeup_init(struct cm_mgr *mgr);
/* True once cm_wakeup_init() succeeded on mgr (until cm_mgr_free()).  Read
 * it on the poll thread, or where the caller otherwise orders it after
 * cm_wakeup_init(). */
static inline bool cm_wakeup_enabled(const struct cm_mgr *mgr) { return mgr->wakeup != NULL; }
/*
 * Thread-safe: queues a copy of len bytes at buf for connection conn_id; the
 * poll thread delivers CM_EV_WAKEUP with a struct cm_str of them, in the
 * order sent.  Returns 0, or, queueing nothing: CM_EINVAL when wakeup was
 * not enabled, CM_ENOMEM, or CM_EAGAIN when the queue is full: it already holds
 * mgr->wakeup_max_msgs messages or would exceed mgr->wakeup_max_bytes (the
 * poll thread is not keeping up; the caller decides whether to drop, retry
 * later or slow down).  The poll thread takes the whole queue at once, so
 * up to twice the bound may be in memory while a batch is delivered.
 * Payloads for a connection that no longer exists are dropped.
 */
int cm_wakeup(struct cm_mgr *mgr, unsigned long conn_id, const void *buf, size_t len);
/*
 * Thread-safe: makes a cm_mgr_poll() blocked in its wait return at once,
 * delivering nothing, so that it takes into account what another thread
 * changed under the application's own lock (e.g. a timer started while the
 * loop slept, which the loop's wait does not know about).  Returns 0, or
 * CM_EINVAL when wakeup was not enabled (cm_wakeup_init()).
 */
int cm_mgr_wake(struct cm_mgr *mgr);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif

#include "cymongoose/util.h"
#include "cymongoose/http.h"
#include "cymongoose/ws.h"
#include "cymongoose/mqtt.h"
#include "cymongoose/mqtt_broker.h"
#include "cymongoose/mqtt_ops.h"
#include "cymongoose/dns.h"
#include "cymongoose/sntp.h"
#include "cymongoose/tls.h"

#endif /* CYMONGOOSE_H */
