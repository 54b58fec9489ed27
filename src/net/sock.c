/* BSD sockets: listen, connect, accept, and moving bytes between sockets and
 * connection buffers.  Everything is non-blocking and level-triggered.
 * The transports defined at the end (TCP stream, UDP, listener) are how the
 * core drives these sockets (src/core/transport.h). */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/internal.h"
#include "tls/internal.h"

/* Bytes asked of the kernel per read: big enough to take a burst in one
 * call, small enough not to balloon idle connections' buffers. */
#define CM_READ_CHUNK CM_BUF_BLOCK
#define CM_UDP_MAX 65536
static const struct cm__transport tcp_transport, udp_transport, listener_transport;

/* Connections accepted per readiness event of a listener: one, as nginx
 * does by default.  The listener is level-triggered, so the next turn comes
 * back for the others; accepting until EAGAIN instead costs a failed
 * accept4() on most turns, which measured dearer than the extra epoll_wait
 * (docs/bench.md, http-close).  A flood cannot starve the other
 * connections either way. */
#define CM_ACCEPT_BATCH 1
/* A listener out of descriptors retries accepting after this long. */
#define CM_ACCEPT_RETRY_MS 100

static socklen_t to_sockaddr(const struct cm_addr *a, struct sockaddr_storage *ss) {
  memset(ss, 0, sizeof(*ss));
  if (a->is_ip6) {
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(a->port);
    memcpy(&s6->sin6_addr, a->ip, 16);
    return sizeof(*s6);
  }
  struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
  s4->sin_family = AF_INET;
  s4->sin_port = htons(a->port);
  memcpy(&s4->sin_addr, a->ip, 4);
  return sizeof(*s4);
}

static void from_sockaddr(const struct sockaddr_storage *ss, struct cm_addr *a) {
  memset(a, 0, sizeof(*a));
  if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
    memcpy(a->ip, &s6->sin6_addr, 16);
    a->port = ntohs(s6->sin6_port);
    a->is_ip6 = true;
  } else {
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
    memcpy(a->ip, &s4->sin_addr, 4);
    a->port = ntohs(s4->sin_port);
  }
}

static void read_local_addr(struct cm_conn *c) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  if (getsockname(c->fd, (struct sockaddr *)&ss, &len) == 0) from_sockaddr(&ss, &c->loc);
  c->is_loc_pending = 0;
}

const struct cm_addr *cm_conn_local_addr(struct cm_conn *c) {
  if (c->is_loc_pending && c->fd >= 0) read_local_addr(c);
  return &c->loc;
}

static bool addr_is_wildcard(const struct cm_addr *a) {
  static const uint8_t zero[16];
  return memcmp(a->ip, zero, a->is_ip6 ? 16 : 4) == 0;
}

static void set_nodelay(int fd) {
  int on = 1;
  /* Request/response protocols would otherwise wait on Nagle's delay. */
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
}

static bool is_udp_url(const char *url) {
  struct cm_str s = cm_url_scheme(url);
  return s.len == 3 && strncasecmp(s.buf, "udp", 3) == 0;
}

static struct cm_conn *listener_open(struct cm_mgr *mgr, int fd, bool udp, cm_event_fn fn,
                                     void *fn_data, const char *what);

struct cm_conn *cm_listen(struct cm_mgr *mgr, const char *url, cm_event_fn fn, void *fn_data) {
  return cm_listen_ex(mgr, url, fn, fn_data, NULL);
}

struct cm_conn *cm_listen_ex(struct cm_mgr *mgr, const char *url, cm_event_fn fn, void *fn_data,
                             const struct cm_listen_opts *opts) {
  static const struct cm_listen_opts defaults = {0};
  if (opts == NULL) opts = &defaults;
  struct cm_addr a = {0};
  struct cm_str host = cm_url_host(url);
  if (host.len > 0 && !cm_aton(host, &a)) {
    errno = EINVAL;
    CM_ERROR("listen %s: host must be an IP address", url);
    return NULL;
  }
  a.port = cm_url_port(url);
  bool udp = is_udp_url(url);
  struct sockaddr_storage ss;
  socklen_t sslen = to_sockaddr(&a, &ss);
  int fd = socket(ss.ss_family, (udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return NULL;
  int on = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
  if (opts->reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0) {
    int err = errno;
    CM_ERROR("listen %s: SO_REUSEPORT: %s", url, strerror(err));
    close(fd);
    errno = err;
    return NULL;
  }
  int backlog = opts->backlog > 0 ? opts->backlog : SOMAXCONN;
  if (bind(fd, (struct sockaddr *)&ss, sslen) != 0 || (!udp && listen(fd, backlog) != 0)) {
    int err = errno;
    CM_ERROR("listen %s: %s", url, strerror(err));
    close(fd);
    errno = err;
    return NULL;
  }
  return listener_open(mgr, fd, udp, fn, fn_data, url);
}

/* The listening connection of fd, a bound (and for TCP listening) socket:
 * takes fd in every case; NULL with errno set on failure. */
static struct cm_conn *listener_open(struct cm_mgr *mgr, int fd, bool udp, cm_event_fn fn,
                                     void *fn_data, const char *what) {
  struct cm_conn *c = cm__conn_new(mgr, fd, udp ? &udp_transport : &listener_transport);
  if (c != NULL) {
    c->is_listening = 1;
    c->is_udp = udp;
  }
  if (c != NULL && !udp && cm__conn_add_listener(c) != 0) {
    c->is_listening = 0; /* not registered: nothing to take out */
    cm__conn_free(c);
    errno = ENOMEM;
    return NULL;
  }
  if (c == NULL || cm__conn_watch(c) != 0) {
    int err = c == NULL ? ENOMEM : errno;
    if (c != NULL) cm__conn_free(c);
    else close(fd);
    errno = err;
    return NULL;
  }
  /* Accepted sockets inherit TCP_NODELAY from the listener on Linux
   * (tests/c/test_sock_opts.c checks it): set once here, not per accept. */
  if (!udp) set_nodelay(fd);
  read_local_addr(c);
  c->fn = fn;
  c->fn_data = fn_data;
  CM_DEBUG("conn %lu: listening on %s", c->id, what);
  cm_call(c, CM_EV_OPEN, NULL);
  return c;
}

struct cm_conn *cm_listen_fd(struct cm_mgr *mgr, int fd, cm_event_fn fn, void *fn_data) {
  int type = 0, accepting = 0;
  socklen_t len = sizeof(type);
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0) {
    int err = errno == EBADF ? EBADF : ENOTSOCK;
    if (err != EBADF) close(fd);
    errno = err;
    return NULL;
  }
  bool udp = type == SOCK_DGRAM;
  len = sizeof(accepting);
  if ((!udp && type != SOCK_STREAM) ||
      (!udp && (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) != 0 || !accepting))) {
    CM_ERROR("listen on fd %d: not a listening TCP socket nor a UDP one", fd);
    close(fd);
    errno = EINVAL;
    return NULL;
  }
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0 ||
      fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) {
    int err = errno;
    close(fd);
    errno = err;
    return NULL;
  }
  char what[32];
  snprintf(what, sizeof(what), "inherited fd %d", fd);
  return listener_open(mgr, fd, udp, fn, fn_data, what);
}

/* Starts connecting c to a; errors are delivered at the next flush. */
/* Opens c's socket and starts a non-blocking connect to a (the transports'
 * connect entry: the resolver calls it once a name is resolved).  Errors
 * are deferred. */
static void sock_connect(struct cm_conn *c, const struct cm_addr *a) {
  char err[128];
  struct sockaddr_storage ss;
  socklen_t sslen = to_sockaddr(a, &ss);
  c->rem = *a;
  int fd = socket(ss.ss_family, (c->is_udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    cm__conn_defer_error(c, cm__errstr(errno, err, sizeof(err)));
    return;
  }
  c->fd = fd;
  if (!c->is_udp) set_nodelay(fd);
  /* Completion shows as writability (the interest while connecting), for
   * UDP at once. */
  c->is_connecting = 1;
  if ((connect(fd, (struct sockaddr *)&ss, sslen) != 0 && errno != EINPROGRESS) ||
      cm__conn_watch(c) != 0) {
    c->is_connecting = 0;
    char msg[200], ip[64];
    snprintf(msg, sizeof(msg), "connect %s:%u: %s", cm_addr_ip_str(a, ip, sizeof(ip)), a->port,
             cm__errstr(errno, err, sizeof(err)));
    cm__conn_defer_error(c, msg);
  }
}

struct cm_conn *cm_connect(struct cm_mgr *mgr, const char *url, cm_event_fn fn, void *fn_data) {
  struct cm_str host = cm_url_host(url);
  uint16_t port = cm_url_port(url);
  if (host.len == 0 || port == 0) {
    errno = EINVAL;
    CM_ERROR("connect %s: need a host and a port", url);
    return NULL;
  }
  bool udp = is_udp_url(url);
  struct cm_conn *c = cm__conn_new(mgr, -1, udp ? &udp_transport : &tcp_transport);
  if (c == NULL) return NULL;
  c->is_client = 1;
  c->is_udp = udp;
  c->fn = fn;
  c->fn_data = fn_data;
  /* TLS schemes get TLS with safe defaults (and the URL's host as the name
   * to verify); cm_tls_init() may replace them until the handshake begins. */
  if (!c->is_udp && cm_url_is_ssl(url)) cm__tls_auto_client(c, host);
  cm_call(c, CM_EV_OPEN, NULL);
  struct cm_addr a = {0};
  if (cm_aton(host, &a)) {
    a.port = port;
    sock_connect(c, &a);
  } else if (cm_resolve(c, url) != 0) { /* RESOLVE, then the connect (src/net/dns.c) */
    cm__conn_defer_error(c, "cannot resolve: out of memory");
  }
  return c;
}

/* The connect finished (TCP and UDP; TLS runs this, then starts its
 * handshake). */
static void sock_connected(struct cm_conn *c) {
  int err = 0;
  socklen_t len = sizeof(err);
  if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  if (err != 0) {
    char ip[64], buf[128];
    cm_error(c, "connect %s:%u: %s", cm_addr_ip_str(&c->rem, ip, sizeof(ip)), c->rem.port,
             cm__errstr(err, buf, sizeof(buf)));
    return;
  }
  c->is_connecting = 0;
  read_local_addr(c);
  if (c->send.len > 0) cm__conn_mark_dirty(c); /* queued before the connect finished */
  cm__conn_update_interest(c);
  cm_call(c, CM_EV_CONNECT, NULL);
}

/* The retry timer of paused listeners (arg: the manager; a listener may
 * have closed since the timer was armed, so they are looked up). */
static void resume_accepting(void *arg) {
  struct cm_mgr *mgr = arg;
  for (size_t i = 0; i < mgr->nlisteners; i++) {
    struct cm_conn *l = mgr->listeners[i];
    if (!l->is_accept_paused) continue;
    l->is_accept_paused = 0;
    cm__conn_update_interest(l);
  }
  mgr->accept_retry_armed = 0;
}

/*
 * Out of descriptors (or kernel memory): the pending connection stays in
 * the backlog and the level-triggered listener would report it again at
 * once, so the loop would spin on failing accepts.  Stop listening for a
 * while instead, as nginx does, and try again from a timer; say so once
 * per episode, not once per attempt.
 */
static void pause_accepting(struct cm_conn *l, int err) {
  struct cm_mgr *mgr = l->mgr;
  if (!l->is_accept_failing) {
    CM_ERROR("conn %lu: accept: %s; accepting paused, retrying every %d ms", l->id, strerror(err),
             CM_ACCEPT_RETRY_MS);
  }
  l->is_accept_failing = 1;
  l->is_accept_paused = 1;
  cm__conn_update_interest(l);
  if (!mgr->accept_retry_armed) {
    if (cm_timer_add(mgr, CM_ACCEPT_RETRY_MS, CM_TIMER_ONCE, resume_accepting, mgr) != NULL) {
      mgr->accept_retry_armed = 1;
    } else {
      l->is_accept_paused = 0; /* no timer: keep trying rather than stop for good */
      cm__conn_update_interest(l);
    }
  }
}

/* The listener is readable: accepts CM_ACCEPT_BATCH connections. */
static void sock_accept(struct cm_conn *l, unsigned events) {
  (void)events;
  struct cm_mgr *mgr = l->mgr;
  for (int i = 0; i < CM_ACCEPT_BATCH; i++) {
    if (mgr->max_conns != 0 && mgr->nconns >= mgr->max_conns) {
      cm__conn_update_interest(l); /* pauses accepting until one closes */
      return;
    }
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int fd = accept4(l->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == ECONNABORTED || errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        pause_accepting(l, errno);
        return;
      }
      CM_ERROR("conn %lu: accept: %s", l->id, strerror(errno));
      return;
    }
    l->is_accept_failing = 0;
    struct cm_conn *c = cm__conn_new(mgr, fd, &tcp_transport);
    if (c == NULL || cm__conn_watch(c) != 0) {
      char err[128];
      CM_ERROR("conn %lu: accepted connection dropped: %s", l->id,
               c == NULL ? "out of memory" : cm__errstr(errno, err, sizeof(err)));
      if (c != NULL) cm__conn_free(c);
      else close(fd);
      continue;
    }
    from_sockaddr(&ss, &c->rem);
    /* The local address is the listener's when it is bound to one; on a
     * wildcard listener only the port is known without a getsockname(),
     * which cm_conn_local_addr() makes when someone asks. */
    c->loc = l->loc;
    c->is_loc_pending = addr_is_wildcard(&l->loc);
    c->is_accepted = 1;
    if (cm_log_get() >= CM_LL_DEBUG) {
      char ip[64];
      CM_DEBUG("conn %lu: accepted from %s:%u by listener %lu", c->id,
               cm_addr_ip_str(&c->rem, ip, sizeof(ip)), c->rem.port, l->id);
    }
    c->send_hwm = mgr->send_hwm; /* see struct cm_conn: inbound connections only */
    c->fn = l->fn;
    c->fn_data = l->fn_data;
    c->pfn = l->pfn;
    c->pfn_data = l->pfn_data;
    if (l->tls != NULL) cm__tls_accepted(l, c); /* cm_tls_listen_opts() */
    cm_call(c, CM_EV_OPEN, NULL);
    cm_call(c, CM_EV_ACCEPT, NULL);
  }
}

/* A datagram replaces the previous one: UDP keeps message boundaries. */
static void udp_read(struct cm_conn *c, unsigned events) {
  (void)events;
  char err[128];
  cm_buf_consume(&c->recv, c->recv.len);
  if (cm_buf_reserve(&c->recv, CM_UDP_MAX) != 0) return;
  struct sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  ssize_t n = recvfrom(c->fd, c->recv.ptr, CM_UDP_MAX, 0, (struct sockaddr *)&ss, &len);
  if (n < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
      cm_error(c, "recv: %s", cm__errstr(errno, err, sizeof(err)));
    return;
  }
  c->recv.len = (size_t)n;
  if (c->is_listening) from_sockaddr(&ss, &c->rem);
  size_t nread = (size_t)n;
  cm_call(c, CM_EV_READ, &nread);
}

/* One recv into buf.  A read that failed or found the end of the stream is
 * handled here, through c's transport (a layer on top, TLS, decides what
 * the end means), and returns 0. */
static size_t stream_recv(struct cm_conn *c, void *buf, size_t len) {
  ssize_t n = recv(c->fd, buf, len, 0);
  if (n > 0) return (size_t)n;
  char err[128];
  if (n == 0) {
    CM_DEBUG("conn %lu: peer closed its side", c->id);
    c->is_eof = 1;
    c->tp->eof(c, false);
  } else if (errno == ECONNRESET) {
    CM_DEBUG("conn %lu: reset by the peer", c->id);
    c->tp->eof(c, true);
  } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
    cm_error(c, "recv: %s", cm__errstr(errno, err, sizeof(err)));
  }
  return 0;
}

/* A plain stream's end: the peer may still read what we have queued. */
static void stream_eof(struct cm_conn *c, bool reset) {
  if (reset) cm_close(c);
  else cm_drain(c);
}

static void stream_read(struct cm_conn *c, unsigned events) {
  (void)events;
  if (cm_conn_send_full(c)) {
    cm__conn_update_interest(c); /* the peer must read before we read on */
    return;
  }
  size_t room = c->recv.len < c->recv_limit ? c->recv_limit - c->recv.len : 0;
  if (room == 0) {
    c->is_full = 1;
    cm__conn_update_interest(c);
    return;
  }
  /* A connection with nothing pending holds no buffer: it borrows one
   * from the manager's pool for the read and gives it back below once the
   * handlers have consumed everything. */
  if (!cm__buf_lend(c->mgr, &c->recv) ||
      cm_buf_reserve(&c->recv, room < CM_READ_CHUNK ? room : CM_READ_CHUNK) != 0) {
    cm_error(c, "out of memory");
    return;
  }
  size_t space = c->recv.cap - c->recv.off - c->recv.len;
  if (space > room) space = room;
  size_t nread = stream_recv(c, cm_buf_data(&c->recv) + c->recv.len, space);
  if (nread > 0) {
    c->recv.len += nread;
    c->last_io_ms = c->mgr->now_ms;
    cm_call(c, CM_EV_READ, &nread);
    cm__conn_check_full(c);
  }
  if (c->recv.len == 0) cm__buf_release(c->mgr, &c->recv);
}

/* Sends from buf until it is empty or the socket refuses.  Returns 1 when
 * the socket is full, 0 when buf was emptied, -1 when c failed. */
static int send_buf(struct cm_conn *c, struct cm_buf *buf) {
  char err[128];
  /* A file follows on a plain socket (a reply head before cm_send_file):
   * MSG_MORE lets the head leave in the same segments as the file's first
   * bytes, as nginx does with TCP_CORK; sendfile's last page pushes. */
  int more = c->files != NULL && buf == &c->send ? MSG_MORE : 0;
  while (buf->len > 0) {
    ssize_t n = send(c->fd, cm_buf_data(buf), buf->len, MSG_NOSIGNAL | more);
    if (n > 0) {
      cm_buf_consume(buf, (size_t)n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      c->is_write_blocked = 1;
      return 1;
    } else {
      /* A peer that went away is an ordinary end, not an error to report,
       * unless it left in the middle of a TLS handshake. */
      if (c->is_tls_hs) cm_error(c, "TLS handshake failed: %s", cm__errstr(errno, err, sizeof(err)));
      else if (errno == EPIPE || errno == ECONNRESET) cm_close(c);
      else cm_error(c, "send: %s", cm__errstr(errno, err, sizeof(err)));
      return -1;
    }
  }
  return 0;
}

static ssize_t stream_write(struct cm_conn *c) {
  size_t before = c->send.len;
  if (send_buf(c, &c->send) < 0) return -1;
  return (ssize_t)(before - c->send.len);
}

static ssize_t stream_send_file(struct cm_conn *c, int fd, off_t *off, size_t len) {
  return sendfile(c->fd, fd, off, len);
}

/* UDP has no stream to queue into: cm_send sends one datagram at once. */
static int udp_send(struct cm_conn *c, const void *buf, size_t len) {
  /* A UDP connect() completes at once, so datagrams may go before CONNECT. */
  if (c->fd < 0) return CM_ENOTCONN;
  ssize_t n;
  if (c->is_listening) {
    struct sockaddr_storage ss;
    socklen_t sslen = to_sockaddr(&c->rem, &ss);
    n = sendto(c->fd, buf, len, MSG_NOSIGNAL, (struct sockaddr *)&ss, sslen);
  } else {
    n = send(c->fd, buf, len, MSG_NOSIGNAL);
  }
  if (n < 0) return -errno;
  return n == (ssize_t)len ? 0 : CM_EIO;
}

/* ------------------------------------------------------ the transports */

/* A connected TCP stream (made by cm_connect or accepted); TLS layers over
 * it through recv and send_buf. */
/* Half-close: FIN after the last byte; reading goes on. */
static int stream_shutdown(struct cm_conn *c) {
  return shutdown(c->fd, SHUT_WR) == 0 ? 0 : -errno;
}

static const struct cm__transport tcp_transport = {
    .name = "tcp",
    .read = stream_read,
    .write = stream_write,
    .connected = sock_connected,
    .eof = stream_eof,
    .send_file = stream_send_file,
    .recv = stream_recv,
    .send_buf = send_buf,
    .shutdown = stream_shutdown,
    .connect = sock_connect,
};

/* A UDP socket, connected (cm_connect) or listening (cm_listen). */
static const struct cm__transport udp_transport = {
    .name = "udp",
    .read = udp_read,
    .write = stream_write, /* nothing is ever queued; kept for the loop's one path */
    .connected = sock_connected,
    .send_msg = udp_send,
    .connect = sock_connect,
};

/* A TCP listener: readiness means connections to accept. */
static const struct cm__transport listener_transport = {
    .name = "listener",
    .read = sock_accept,
};
