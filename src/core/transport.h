/*
 * The seams between the core and the layers that move bytes (not installed).
 *
 * The core runs the loop and keeps connection state; it never touches a
 * socket or TLS itself.  What happens on a descriptor is decided by the
 * connection's transport (c->tp), a table of functions that net/ (TCP, UDP,
 * listeners, resolver sockets), tls/ (TLS layered over a stream) and the
 * core's own wakeup eventfd fill in.  The core calls only through it, so a
 * new transport (MQTT over WebSocket, QUIC...) plugs in without the core
 * knowing its name.  docs/c-core.md draws the layers.
 */
#ifndef CM_CORE_TRANSPORT_H
#define CM_CORE_TRANSPORT_H

#include <sys/types.h>

#include "cymongoose.h"

/*
 * A transport.  The tables are static and const; c->tp points at one for
 * c's whole life (TLS swaps it in over TCP and back out at cm_tls_free).
 * Entries a transport does not need are NULL where the comment allows.
 */
struct cm__transport {
  const char *name; /* for logs: "tcp", "udp", "listener", "tls", ... */
  /* c's descriptor is readable.  A stream reads into c->recv and delivers
   * READ (or ends the stream through eof); a listener accepts.  A transport
   * without write (listeners, internal descriptors) gets every readiness
   * here, events being the epoll bits. */
  void (*read)(struct cm_conn *c, unsigned events);
  /* Moves queued output (c->send, and the transport's own, e.g. TLS
   * records) to the descriptor until it refuses (then c->is_write_blocked
   * is set).  Returns the bytes taken from c->send, or -1 when c failed
   * (it is then closing).  NULL: c never has output. */
  ssize_t (*write)(struct cm_conn *c);
  /* A non-blocking connect finished (writability while is_connecting):
   * checks the result and delivers CONNECT or ERROR. */
  void (*connected)(struct cm_conn *c);
  /* Output of the transport's own beyond c->send and queued files (TLS
   * records, a close_notify still to produce).  NULL: none ever. */
  bool (*has_output)(const struct cm_conn *c);
  /* The stream ended: the peer closed its side (reset false: c->is_eof is
   * set, queued output may still leave) or reset it (reset true). */
  void (*eof)(struct cm_conn *c, bool reset);
  /* Frees the transport's state on c (not the descriptor, which the core
   * closes).  NULL: none. */
  void (*free)(struct cm_conn *c);
  /* Datagram transports: sends one message at once (cm_send; 0 or its
   * UDP codes).  NULL: a stream, where cm_send queues into c->send. */
  int (*send_msg)(struct cm_conn *c, const void *buf, size_t len);
  /* Sends up to len bytes of the file fd from *off straight to the
   * descriptor (sendfile(2)), advancing *off; as sendfile returns, errno
   * included.  NULL: queued files pass through c->send (e.g. TLS). */
  ssize_t (*send_file)(struct cm_conn *c, int fd, off_t *off, size_t len);
  /* For a layer on top (TLS over TCP): raw bytes of the stream.  recv reads
   * at most len bytes into buf; returns how many, or 0 when none came (the
   * end of the stream or an error was handled: c->tp->eof, or ERROR).
   * send_buf sends from b until it is empty (0) or the descriptor refuses
   * (1, c->is_write_blocked set); -1 when c failed.  NULL when the
   * transport is no stream. */
  size_t (*recv)(struct cm_conn *c, void *buf, size_t len);
  int (*send_buf)(struct cm_conn *c, struct cm_buf *b);
  /* Closes c's write side (the peer reads the end of the stream; c goes on
   * reading).  The core calls it once, through cm__conn_shutdown(), when
   * nothing is left to send: neither c->send, queued files, nor the
   * transport's own output (has_output), so a transport with a closing
   * message of its own (TLS close_notify) produces it through has_output
   * and write while c->is_shut_wanted, and only then ends the stream below.
   * Returns 0, or a negative errno (the peer is gone: the core closes c).
   * NULL: no half-close (datagrams, listeners); cm__conn_shutdown refuses. */
  int (*shutdown)(struct cm_conn *c);
  /* Opens c's descriptor and starts a non-blocking connect to a: a client
   * whose peer's address a lookup has just found (src/net/dns.c), which so
   * needs to know nothing of sockets.  Failures come as a deferred ERROR.
   * NULL: c never connects (listeners, internal descriptors). */
  void (*connect)(struct cm_conn *c, const struct cm_addr *a);
};

/*
 * Manager extensions: state that a layer keeps per manager (the TLS
 * context cache, the resolver) is freed by cm_mgr_free() through a hook the
 * layer registers when it first creates that state, after every connection
 * and timer is gone.  The node lives inside the layer's state.
 */
struct cm__mgr_ext {
  struct cm__mgr_ext *next;
  void (*free)(struct cm_mgr *mgr); /* frees the layer's state on mgr */
};
/* Registers ext (not copied; it must live until its free runs). */
void cm__mgr_ext_add(struct cm_mgr *mgr, struct cm__mgr_ext *ext);

/*
 * The watcher (src/core/io.c): the one place that calls epoll_ctl.  Each
 * connection with a descriptor has one (c->io).  It does what it is told;
 * the interest itself is always computed from c's state by
 * cm__conn_interest(), and transports reach the watcher only through
 * cm__conn_watch() and cm__conn_update_interest().  Internal descriptors set
 * c->io.want (what their owner waits for) before either.
 */
/* The epoll interest c's state calls for: the one place that decides it. */
unsigned cm__conn_interest(const struct cm_conn *c);
/* Starts watching c->fd with cm__conn_interest(c).  Returns 0, or -1 with
 * errno. */
int cm__conn_watch(struct cm_conn *c);
/* The watcher's own steps: register c->fd with want, change it to want
 * (nothing when unchanged), take it out of the epoll set (before the
 * descriptor is closed or handed back).  0, or -1 with errno. */
int cm__io_start(struct cm_conn *c, unsigned want);
int cm__io_change(struct cm_conn *c, unsigned want);
void cm__io_stop(struct cm_conn *c);

#endif
