/*
 * Asynchronous name resolution on top of c-ares.
 *
 * c-ares does the protocol work (queries, retries, TCP fallback on truncated
 * answers, /etc/hosts); this file plugs it into the manager:
 *  - each socket c-ares opens becomes an internal connection (transport
 *    "resolver") whose epoll readiness is handed to ares_process_fd();
 *  - while lookups are pending a one-shot timer, always re-armed for the
 *    earliest of c-ares' next timeout and our own overall deadline, lets
 *    c-ares retransmit and time out;
 *  - answers are only recorded inside c-ares callbacks and delivered to
 *    connections later from a timer, looking each connection up by id, so a
 *    connection closed meanwhile is never touched and user code never runs
 *    inside c-ares.
 */
#include <ares.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/time.h>

#include "core/internal.h"

/* Upper bound on the wait between checks while c-ares holds only lookups
 * nobody waits for any more (it times them out by itself). */
#define IDLE_CHECK_MS 1000
/* c-ares sends a query this many times per server before giving up. */
#define ARES_TRIES 2

struct dns_query {
  struct dns_query *next;
  struct cm_dns *dns;
  unsigned long conn_id;
  uint64_t deadline_ms;
  struct cm_addr addr; /* the answer, port already set */
  int status;          /* ARES_* once answered */
  bool answered;       /* c-ares is done with this query (it may be freed) */
  bool finished;       /* the connection was told, or no longer wants to be */
  bool connect_after;  /* start the connection's connect on success */
  char host[];
};

struct dns_sock {
  int fd;
  struct cm_conn *conn; /* internal connection; entry dropped at its CLOSE */
};

struct cm_dns {
  struct cm__mgr_ext ext; /* cm_mgr_free() frees this through it */
  struct cm_mgr *mgr;
  ares_channel channel;
  bool has_channel;
  char *servers;       /* c-ares "ip:port,[ip6]:port" form; NULL: default */
  unsigned timeout_ms; /* total per lookup */
  struct dns_query *queries;
  struct dns_sock *socks;
  size_t nsocks, socks_cap;
  struct cm_timer *tick; /* one-shot, at the next c-ares timeout or deadline */
  bool kick_pending;     /* a 0 ms delivery timer is scheduled */
};

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static int lib_status = ARES_ENOTINITIALIZED;
static void lib_init(void) {
  lib_status = ares_library_init(ARES_LIB_INIT_ALL);
}

/* ------------------------------------------------------ server list */

/* Turns "udp://1.2.3.4:53, [::1]:5353, 10.0.0.1" into c-ares' csv form
 * "1.2.3.4:53,[::1]:5353,10.0.0.1:53".  Returns a malloc'd string, or NULL
 * when an entry is not a numeric address with an optional port. */
static char *servers_to_csv(const char *spec) {
  size_t n = strlen(spec);
  if (n == 0 || n > CM_DNS_SERVERS_MAX) return NULL;
  size_t cap = n * 2 + 64, used = 0;
  char *out = malloc(cap);
  if (out == NULL) return NULL;
  out[0] = '\0';
  const char *p = spec;
  while (*p != '\0') {
    while (*p == ' ' || *p == ',') p++;
    if (*p == '\0') break;
    const char *end = p;
    while (*end != '\0' && *end != ',') end++;
    size_t len = (size_t)(end - p);
    while (len > 0 && p[len - 1] == ' ') len--;
    char item[300], url[320];
    if (len >= sizeof(item)) goto bad;
    memcpy(item, p, len);
    item[len] = '\0';
    p = end;
    const char *body = item;
    struct cm_str scheme = cm_url_scheme(item);
    if (scheme.len > 0) {
      if (scheme.len != 3 || strncasecmp(scheme.buf, "udp", 3) != 0) goto bad;
      body = item + 6; /* "udp://" */
    }
    snprintf(url, sizeof(url), "udp://%s", body);
    struct cm_str host = cm_url_host(url), uri = cm_url_uri(url);
    struct cm_addr a;
    if (host.len == 0 || !cm_aton(host, &a) || uri.len > 1) goto bad;
    /* cm_aton reads "localhost" as 127.0.0.1; a server must be numeric. */
    if (host.len == 9 && strncasecmp(host.buf, "localhost", 9) == 0) goto bad;
    uint16_t port = cm_url_port(url);
    if (port == 0) {
      /* "udp://h" has no default port in cm_url_port; a written ":0" is bad. */
      const char *colon = strrchr(url, ':');
      bool has_port = a.is_ip6 ? strstr(url, "]:") != NULL : (colon != NULL && colon > url + 4);
      if (has_port) goto bad;
      port = 53;
    }
    char ip[64];
    cm_addr_ip_str(&a, ip, sizeof(ip));
    int w = snprintf(out + used, cap - used, a.is_ip6 ? "%s[%s]:%u" : "%s%s:%u",
                     used > 0 ? "," : "", ip, port);
    if (w < 0 || (size_t)w >= cap - used) goto bad;
    used += (size_t)w;
  }
  if (used == 0) goto bad;
  return out;
bad:
  free(out);
  return NULL;
}

/* ------------------------------------------------- c-ares sockets */

static void sock_pfn(struct cm_conn *c, int ev, void *ev_data);
static void sock_ready(struct cm_conn *c, unsigned events);
static void schedule(struct cm_dns *dns);

/* A c-ares socket: readiness goes to c-ares, which does its own I/O. */
static const struct cm__transport resolver_transport = {.name = "resolver", .read = sock_ready};

static struct dns_sock *find_sock(struct cm_dns *dns, int fd) {
  for (size_t i = 0; i < dns->nsocks; i++)
    if (dns->socks[i].fd == fd) return &dns->socks[i];
  return NULL;
}

static void forget_sock(struct cm_dns *dns, struct dns_sock *s) {
  *s = dns->socks[--dns->nsocks];
}

/* c-ares tells what it wants to wait for on fd; (0, 0) just before it
 * closes fd.  The socket stays c-ares' own: we never close it. */
static void sock_state_cb(void *data, ares_socket_t fd, int readable, int writable) {
  struct cm_dns *dns = data;
  struct cm_mgr *mgr = dns->mgr;
  struct dns_sock *s = find_sock(dns, fd);
  unsigned want = (readable ? EPOLLIN : 0u) | (writable ? EPOLLOUT : 0u);
  if (want == 0) {
    if (s == NULL) return;
    struct cm_conn *c = s->conn;
    cm__io_stop(c);
    c->fd = -1;
    forget_sock(dns, s);
    cm_close(c);
    return;
  }
  if (s != NULL) {
    s->conn->io.want = want;
    cm__conn_update_interest(s->conn); /* a failure is logged; the query will time out */
    return;
  }
  if (dns->nsocks == dns->socks_cap) {
    size_t cap = dns->socks_cap == 0 ? 4 : dns->socks_cap * 2;
    struct dns_sock *p = realloc(dns->socks, cap * sizeof(*p));
    if (p == NULL) return; /* c-ares will time the query out */
    dns->socks = p;
    dns->socks_cap = cap;
  }
  struct cm_conn *c = cm__conn_new(mgr, fd, &resolver_transport);
  if (c == NULL) return;
  c->is_internal = 1;
  c->io.want = want;
  if (cm__conn_watch(c) != 0) {
    CM_ERROR("resolver: epoll_ctl: %s; the query will time out", strerror(errno));
    c->fd = -1;
    cm__conn_free(c);
    return;
  }
  c->pfn = sock_pfn;
  c->pfn_data = dns;
  dns->socks[dns->nsocks++] = (struct dns_sock){.fd = fd, .conn = c};
}

static void sock_ready(struct cm_conn *c, unsigned events) {
  struct cm_dns *dns = c->pfn_data;
  if (c->fd < 0 || !dns->has_channel) return;
  ares_socket_t rfd = (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) ? c->fd : ARES_SOCKET_BAD;
  ares_socket_t wfd = (events & EPOLLOUT) ? c->fd : ARES_SOCKET_BAD;
  ares_process_fd(dns->channel, rfd, wfd);
  schedule(dns); /* a retry may have been sent: its timeout is new */
}

static void sock_pfn(struct cm_conn *c, int ev, void *ev_data) {
  (void)ev_data;
  struct cm_dns *dns = c->pfn_data;
  if (ev == CM_EV_CLOSE && c->fd >= 0) {
    /* The manager is going away before c-ares closed the socket: leave the
     * socket to ares_destroy() and the connection without it. */
    struct dns_sock *s = find_sock(dns, c->fd);
    cm__io_stop(c);
    if (s != NULL) forget_sock(dns, s);
    c->fd = -1;
  }
}

/* --------------------------------------------------------- channel */

static int open_channel(struct cm_dns *dns, char *err, size_t errlen) {
  pthread_once(&lib_once, lib_init);
  if (lib_status != ARES_SUCCESS) {
    snprintf(err, errlen, "DNS resolver unavailable: %s", ares_strerror(lib_status));
    return -1;
  }
  char *env_csv = NULL;
  const char *csv = dns->servers;
  if (csv == NULL) {
    const char *env = getenv("CM_DNS_SERVER");
    if (env != NULL && env[0] != '\0') {
      env_csv = servers_to_csv(env);
      if (env_csv == NULL) {
        /* Never fall back to resolv.conf when a server was asked for. */
        snprintf(err, errlen, "DNS resolver: malformed CM_DNS_SERVER '%.100s'", env);
        return -1;
      }
      csv = env_csv;
    }
  }
  struct ares_options o;
  memset(&o, 0, sizeof(o));
  int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_LOOKUPS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES |
             ARES_OPT_FLAGS;
  /* NOCHECKRESP: a SERVFAIL or REFUSED answer ends the lookup with that
   * status; otherwise c-ares 1.18 moves on and reports "connection
   * refused", which hides what the server said. */
  o.flags = ARES_FLAG_NOCHECKRESP;
  o.sock_state_cb = sock_state_cb;
  o.sock_state_cb_data = dns;
  o.lookups = (char *)"fb"; /* hosts file first, then the servers */
  /* c-ares doubles the per-try timeout at each round, so ARES_TRIES tries
   * of timeout/3 end about when our own deadline does. */
  o.timeout = (int)(dns->timeout_ms / 3 > 0 ? dns->timeout_ms / 3 : 1);
  o.tries = ARES_TRIES;
  if (csv != NULL) {
    /* An explicit server gets exactly the name asked for: no search
     * domains from resolv.conf. */
    mask |= ARES_OPT_DOMAINS;
    o.domains = NULL;
    o.ndomains = 0;
  }
  int rc = ares_init_options(&dns->channel, &o, mask);
  if (rc != ARES_SUCCESS) {
    free(env_csv);
    snprintf(err, errlen, "DNS resolver: %s", ares_strerror(rc));
    return -1;
  }
  /* Replaces what ares_init read from resolv.conf before any query leaves. */
  if (csv != NULL && (rc = ares_set_servers_ports_csv(dns->channel, csv)) != ARES_SUCCESS) {
    ares_destroy(dns->channel);
    free(env_csv);
    snprintf(err, errlen, "DNS resolver: cannot use servers '%.100s': %s", csv,
             ares_strerror(rc));
    return -1;
  }
  free(env_csv);
  dns->has_channel = true;
  return 0;
}

/* Pending queries are answered with ARES_EDESTRUCTION, sockets closed. */
static void close_channel(struct cm_dns *dns) {
  if (!dns->has_channel) return;
  dns->has_channel = false;
  ares_destroy(dns->channel);
}

static void dns_free(struct cm_mgr *mgr);

static struct cm_dns *get_dns(struct cm_mgr *mgr) {
  if (mgr->dns == NULL) {
    mgr->dns = calloc(1, sizeof(struct cm_dns));
    if (mgr->dns == NULL) return NULL;
    mgr->dns->mgr = mgr;
    mgr->dns->timeout_ms = CM_DNS_TIMEOUT_MS;
    mgr->dns->ext.free = dns_free;
    cm__mgr_ext_add(mgr, &mgr->dns->ext);
  }
  return mgr->dns;
}

int cm_mgr_set_dns(struct cm_mgr *mgr, const char *servers) {
  char *csv = NULL;
  if (servers != NULL && servers[0] != '\0' && (csv = servers_to_csv(servers)) == NULL) {
    errno = EINVAL;
    CM_ERROR("DNS servers '%s': expected a list of udp://IP[:PORT]", servers);
    return CM_EINVAL;
  }
  struct cm_dns *dns = get_dns(mgr);
  if (dns == NULL) {
    free(csv);
    errno = ENOMEM;
    return CM_ENOMEM;
  }
  free(dns->servers);
  dns->servers = csv;
  close_channel(dns); /* the next lookup opens one with the new servers */
  return 0;
}

void cm_mgr_set_dns_timeout(struct cm_mgr *mgr, unsigned timeout_ms) {
  struct cm_dns *dns = get_dns(mgr);
  if (dns == NULL) return;
  dns->timeout_ms = timeout_ms == 0 ? CM_DNS_TIMEOUT_MS : timeout_ms;
  /* c-ares' retry timing is fixed per channel: take a new one when nothing
   * depends on the old one. */
  bool busy = false;
  for (struct dns_query *q = dns->queries; q != NULL; q = q->next) busy |= !q->answered;
  if (!busy) close_channel(dns);
}

/* --------------------------------------------------------- delivery */

static const char *reason(int status) {
  switch (status) {
    case ARES_ENOTFOUND: return "name not found (NXDOMAIN)";
    case ARES_ENODATA: return "the name has no address records";
    case ARES_ESERVFAIL: return "server failure (SERVFAIL)";
    case ARES_EREFUSED: return "the server refused the query (REFUSED)";
    case ARES_ENOTIMP: return "the server does not implement the query (NOTIMP)";
    case ARES_ECONNREFUSED: return "the DNS server could not be reached";
    case ARES_EBADNAME: return "invalid host name";
    case ARES_EFORMERR:
    case ARES_EBADRESP: return "malformed answer from the server";
    case ARES_EDESTRUCTION:
    case ARES_ECANCELLED: return "cancelled: the resolver was reset";
    case ARES_ENOMEM: return "out of memory";
    default: return ares_strerror(status);
  }
}

static void tick_fn(void *arg);
static void kick_fn(void *arg);

/* Makes sure the tick timer fires by the earliest of: c-ares' next
 * retransmission or timeout, our nearest deadline.  Stops it when no query
 * is left.  A timer already due earlier is kept, so answers arriving in a
 * burst do not churn timers. */
static void schedule(struct cm_dns *dns) {
  struct cm_mgr *mgr = dns->mgr;
  if (dns->queries == NULL) {
    if (dns->tick != NULL) cm_timer_stop(mgr, dns->tick);
    dns->tick = NULL;
    return;
  }
  uint64_t now = cm_millis(), due = now + IDLE_CHECK_MS;
  for (struct dns_query *q = dns->queries; q != NULL; q = q->next)
    if (!q->finished && q->deadline_ms < due) due = q->deadline_ms;
  struct timeval tv;
  if (dns->has_channel && ares_timeout(dns->channel, NULL, &tv) != NULL) {
    /* Rounded up: waking before c-ares' time would only spin. */
    uint64_t t = now + (uint64_t)tv.tv_sec * 1000 + ((uint64_t)tv.tv_usec + 999) / 1000;
    if (t < due) due = t;
  }
  if (dns->tick != NULL) {
    if (dns->tick->expire_ms <= due) return;
    cm_timer_stop(mgr, dns->tick);
  }
  dns->tick = cm_timer_add(mgr, due > now ? due - now : 0, CM_TIMER_ONCE, tick_fn, dns);
}

static void kick(struct cm_dns *dns) {
  if (dns->kick_pending) return;
  if (cm_timer_add(dns->mgr, 0, CM_TIMER_ONCE, kick_fn, dns) != NULL) dns->kick_pending = true;
}

/* Tells c about the outcome of q.  May run any user code. */
static void notify(struct cm_conn *c, struct dns_query *q, bool timed_out) {
  c->is_resolving = 0;
  if (timed_out) {
    cm_error(c, "DNS lookup of '%.253s' timed out after %u ms", q->host, q->dns->timeout_ms);
  } else if (q->status == ARES_ETIMEOUT) {
    cm_error(c, "DNS lookup of '%.253s' timed out: no answer from the server", q->host);
  } else if (q->status != ARES_SUCCESS) {
    cm_error(c, "DNS lookup of '%.253s' failed: %s", q->host, reason(q->status));
  } else {
    char ip[64];
    c->rem = q->addr;
    CM_DEBUG("conn %lu: %s is %s", c->id, q->host, cm_addr_ip_str(&q->addr, ip, sizeof(ip)));
    cm_call(c, CM_EV_RESOLVE, NULL);
    if (q->connect_after && !c->is_closing && c->fd < 0 && c->tp->connect != NULL)
      c->tp->connect(c, &c->rem);
  }
}

/* Delivers every outcome that is due, then frees what c-ares is done with.
 * Handlers may start or cancel lookups meanwhile, so the scan restarts
 * after each delivery; only this function frees queries. */
static void deliver(struct cm_dns *dns) {
  struct cm_mgr *mgr = dns->mgr;
  uint64_t now = cm_millis();
  for (;;) {
    struct dns_query *q = dns->queries;
    while (q != NULL && (q->finished || (!q->answered && now < q->deadline_ms))) q = q->next;
    if (q == NULL) break;
    q->finished = true;
    struct cm_conn *c = cm_conn_by_id(mgr, q->conn_id);
    if (c != NULL && !c->is_closing) notify(c, q, !q->answered);
  }
  for (struct dns_query **pp = &dns->queries; *pp != NULL;) {
    struct dns_query *q = *pp;
    if (q->answered && q->finished) {
      *pp = q->next;
      free(q);
    } else {
      pp = &q->next;
    }
  }
  schedule(dns);
}

static void tick_fn(void *arg) {
  struct cm_dns *dns = arg;
  dns->tick = NULL; /* one-shot: the manager frees it after this call */
  if (dns->has_channel) ares_process_fd(dns->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
  deliver(dns);
}

static void kick_fn(void *arg) {
  struct cm_dns *dns = arg;
  dns->kick_pending = false;
  deliver(dns);
}

/* c-ares' answer; may run inside ares_getaddrinfo(), ares_process_fd() or
 * ares_destroy().  Records the outcome only. */
static void on_answer(void *arg, int status, int timeouts, struct ares_addrinfo *ai) {
  (void)timeouts;
  struct dns_query *q = arg;
  uint16_t port = q->addr.port;
  q->status = status;
  q->answered = true;
  if (status == ARES_SUCCESS) {
    const struct ares_addrinfo_node *v4 = NULL, *v6 = NULL;
    for (const struct ares_addrinfo_node *n = ai != NULL ? ai->nodes : NULL; n != NULL; n = n->ai_next) {
      if (n->ai_family == AF_INET && v4 == NULL) v4 = n;
      if (n->ai_family == AF_INET6 && v6 == NULL) v6 = n;
    }
    memset(&q->addr, 0, sizeof(q->addr));
    q->addr.port = port;
    if (v4 != NULL) {
      memcpy(q->addr.ip, &((const struct sockaddr_in *)v4->ai_addr)->sin_addr, 4);
    } else if (v6 != NULL) {
      memcpy(q->addr.ip, &((const struct sockaddr_in6 *)v6->ai_addr)->sin6_addr, 16);
      q->addr.is_ip6 = true;
    } else {
      q->status = ARES_ENODATA;
    }
  }
  if (ai != NULL) ares_freeaddrinfo(ai);
  kick(q->dns);
}

/* ------------------------------------------------------------ API */

void cm_resolve_cancel(struct cm_conn *c) {
  struct cm_dns *dns = c->mgr->dns;
  c->is_resolving = 0;
  if (dns == NULL) return;
  for (struct dns_query *q = dns->queries; q != NULL; q = q->next)
    if (q->conn_id == c->id) q->finished = true;
}

int cm_resolve(struct cm_conn *c, const char *url) {
  struct cm_str host = cm_url_host(url);
  if (c->is_closing) return CM_ECLOSED;
  if (host.len == 0) return CM_EINVAL;
  cm_resolve_cancel(c);
  struct cm_dns *dns = get_dns(c->mgr);
  struct dns_query *q = dns == NULL ? NULL : calloc(1, sizeof(*q) + host.len + 1);
  if (q == NULL) return CM_ENOMEM;
  char err[300];
  if (!dns->has_channel && open_channel(dns, err, sizeof(err)) != 0) {
    free(q);
    cm__conn_defer_error(c, err); /* a failed lookup, reported as one */
    return 0;
  }
  memcpy(q->host, host.buf, host.len);
  q->dns = dns;
  q->conn_id = c->id;
  q->addr.port = cm_url_port(url);
  q->deadline_ms = cm_millis() + dns->timeout_ms;
  q->connect_after = c->is_client && c->fd < 0 && !c->is_listening;
  q->next = dns->queries;
  dns->queries = q;
  c->is_resolving = 1;
  struct ares_addrinfo_hints hints;
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  /* NOSORT: sorting probes routes with connect(); ENVHOSTS: CARES_HOSTS
   * may name another hosts file (tests use it). */
  hints.ai_flags = ARES_AI_NOSORT | ARES_AI_ENVHOSTS;
  ares_getaddrinfo(dns->channel, q->host, NULL, &hints, on_answer, q);
  schedule(dns);
  return 0;
}

/* Called by cm_mgr_free() after every connection and timer is gone. */
static void dns_free(struct cm_mgr *mgr) {
  struct cm_dns *dns = mgr->dns;
  if (dns == NULL) return;
  dns->tick = NULL;         /* freed with the manager's timers */
  dns->kick_pending = true; /* no timers any more */
  close_channel(dns);       /* answers every query, closes every socket */
  for (struct dns_query *q = dns->queries, *next; q != NULL; q = next) {
    next = q->next;
    free(q);
  }
  free(dns->socks);
  free(dns->servers);
  free(dns);
  mgr->dns = NULL;
}
