/*
 * HTTP/1.1 server protocol handler: turns bytes in c->recv into
 * CM_EV_HTTP_HDRS / CM_EV_HTTP_MSG, one request at a time, pipelining and
 * keep-alive included, and answers malformed requests itself.
 *
 * State: a listener's pfn_data is a struct server (options); each accepted
 * connection gets its own struct http_conn (a copy of the options plus the
 * progress of the current request) when it opens.  Both start with a kind
 * tag so the handler knows which one it holds.
 */
#include <stdlib.h>
#include <string.h>

#include "cymongoose.h"
#include "core/internal.h"
#include "http/internal.h"

#define DEFAULT_HEADER_TIMEOUT_MS 30000
#define DEFAULT_BODY_TIMEOUT_MS 60000
#define DEFAULT_BODY_MIN_RATE 500
#define DEFAULT_IDLE_TIMEOUT_MS 75000
/* How long a rejected client may keep sending before we close anyway. */
#define CM_HTTP_LINGER_MS 2000

static void http_pfn(struct cm_conn *c, int ev, void *ev_data);

static struct cm_http_serve_opts resolve_opts(const struct cm_http_serve_opts *in) {
  struct cm_http_serve_opts o = {0};
  if (in != NULL) o = *in;
  o.limits = cm_http_limits_resolve(&o.limits);
  if (o.header_timeout_ms == 0) o.header_timeout_ms = DEFAULT_HEADER_TIMEOUT_MS;
  if (o.body_timeout_ms == 0) o.body_timeout_ms = DEFAULT_BODY_TIMEOUT_MS;
  if (o.body_min_rate == 0) o.body_min_rate = DEFAULT_BODY_MIN_RATE;
  if (o.idle_timeout_ms == 0) o.idle_timeout_ms = DEFAULT_IDLE_TIMEOUT_MS;
  return o;
}

struct cm__http_conn *cm__http_conn_of(struct cm_conn *c) {
  if (c->pfn != http_pfn || c->pfn_data == NULL) return NULL;
  struct cm__http_conn *st = c->pfn_data;
  return st->kind == CM__HTTP_KIND_CONN ? st : NULL;
}

static void on_deadline(void *arg);
static void arm(struct cm_conn *c, struct cm__http_conn *st);

/* Frees st, taking its deadline out of the timer heap first. */
static void state_free(struct cm_conn *c, struct cm__http_conn *st) {
  cm__timer_unschedule(c->mgr, &st->deadline);
  cm__http_access_free(st);
  free(st->path_buf);
  free(st);
}

/* An accepted connection gets its own state. */
static bool attach_conn(struct cm_conn *c, const struct cm_http_serve_opts *o) {
  struct cm__http_conn *st = calloc(1, sizeof(*st));
  if (st == NULL) return false;
  st->kind = CM__HTTP_KIND_CONN;
  st->opts = *o;
  cm__timer_init(&st->deadline, on_deadline, c);
  /* Reading must not pause before a whole head fits. */
  if (c->recv_limit < o->limits.max_head + 1) c->recv_limit = o->limits.max_head + 1;
  st->base_recv_limit = c->recv_limit;
  cm_chunked_reset(st);
  st->fresh = true;
  c->pfn = http_pfn;
  c->pfn_data = st;
  arm(c, st);
  return true;
}

int cm_http_serve(struct cm_conn *c, const struct cm_http_serve_opts *opts) {
  struct cm_http_serve_opts o = resolve_opts(opts);
  if (!c->is_listening) {
    if (!attach_conn(c, &o)) return CM_ENOMEM;
    /* Bytes may already wait in c->recv with no READ to come. */
    cm__conn_want_poll(c);
    return 0;
  }
  struct cm__http_server *srv = calloc(1, sizeof(*srv));
  if (srv == NULL) return CM_ENOMEM;
  srv->kind = CM__HTTP_KIND_SERVER;
  srv->opts = o;
  c->pfn = http_pfn;
  c->pfn_data = srv;
  return 0;
}

struct cm_conn *cm_http_listen(struct cm_mgr *mgr, const char *url, cm_event_fn fn, void *fn_data,
                               const struct cm_http_serve_opts *opts) {
  struct cm_conn *c = cm_listen(mgr, url, fn, fn_data);
  if (c == NULL) return NULL;
  if (cm_http_serve(c, opts) != 0) {
    cm_close(c);
    return NULL;
  }
  return c;
}

void cm_http_detach(struct cm_conn *c) {
  if (c->pfn != http_pfn) return;
  struct cm__http_conn *st = cm__http_conn_of(c);
  if (st != NULL && st->busy) {
    st->detached = true; /* called from a handler inside process(): it frees st */
    cm__timer_unschedule(c->mgr, &st->deadline);
  } else if (st != NULL) {
    state_free(c, st);
  } else {
    free(c->pfn_data);
  }
  c->pfn = NULL;
  c->pfn_data = NULL;
}

/*
 * Answers a request we cannot serve, then closes - gently.  Closing a socket
 * with unread input makes the kernel send RST, which can destroy the error
 * reply before the client reads it (a client still uploading a body it was
 * refused).  So, as web servers do ("lingering close"), we half-close once
 * the reply is written and discard input until the client closes or
 * CM_HTTP_LINGER_MS pass.
 */
static void reject(struct cm_conn *c, struct cm__http_conn *st, int status, const char *why) {
  const char *text = cm_http_status_text(status);
  CM_DEBUG("conn %lu: HTTP %d: %s", c->id, status, why ? why : text);
  cm_printf(c,
            "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
            "Connection: close\r\n\r\n%s: %s\n",
            status, text, strlen(text) + 3 + strlen(why ? why : ""), text, why ? why : "");
  st->stopped = true;
  /* Our side is done once the reply has left (under TLS: then
   * close_notify); a transport that cannot half-close just drains. */
  if (cm__conn_shutdown(c) != 0) {
    cm_drain(c);
    return;
  }
  st->linger_until_ms = c->mgr->now_ms + CM_HTTP_LINGER_MS;
  cm_recv_consume(c, c->recv.len);
  arm(c, st);
}


/*
 * While a reply is incomplete (a handler answers later, from a timer, a
 * wakeup or a worker thread; or a chunked reply is still streaming) or a
 * file body is streaming (cm_send_file), the next pipelined request waits,
 * and nothing more is read: responses must leave in request order, and the
 * next request's HEAD or "Connection: close" must not change how the
 * current reply is written.  Waiting also bounds what one connection holds
 * (one file, not one per pipelined request) and keeps a client's half-close
 * unseen until the requests sent before it have been answered.  The POLL
 * after the reply completes, or the WRITE that finishes the file, resumes
 * (resume_held).  The same wait happens while the queued output is above its
 * mark (cm_conn_send_full): a client that pipelines requests but never reads
 * the answers holds at most that much of our memory, not one reply per
 * request it managed to send.
 */
static void hold(struct cm_conn *c, struct cm__http_conn *st) {
  st->held = true;
  c->recv_limit = 0; /* the next read attempt pauses reading (is_full) */
}

static void process(struct cm_conn *c, struct cm__http_conn *st);

/* A held connection may read on: nothing of the last request is pending
 * and the client has taken enough of the output. */
static bool may_resume(struct cm_conn *c, const struct cm__http_conn *st) {
  return st->held && c->files == NULL && !st->awaiting_reply && !cm_conn_send_full(c);
}

static void resume_held(struct cm_conn *c, struct cm__http_conn *st) {
  st->held = false;
  c->recv_limit = st->base_recv_limit;
  cm_recv_consume(c, 0); /* resumes reading */
  process(c, st);
}

/*
 * Sets hm->path (see struct cm_http_msg): a view of uri when uri is already
 * decoded and normal (the common case, no copy), else the normalised form
 * in st->path_buf.  False for a path that cannot be decoded (a malformed
 * escape, an escaped NUL): such a request is refused, so that no handler
 * ever sees a uri whose path it cannot check.
 */
static bool set_path(struct cm__http_conn *st, struct cm_http_msg *hm) {
  struct cm_str u = hm->uri;
  if (u.len == 0 || u.buf[0] != '/') return true; /* "*", authority-form: no path */
  bool plain = true;
  for (size_t i = 0; i < u.len && plain; i++) {
    plain = u.buf[i] != '%' && !(u.buf[i] == '/' && i + 1 < u.len && (u.buf[i + 1] == '/' || u.buf[i + 1] == '.'));
  }
  if (plain) {
    hm->path = u;
    return true;
  }
  if (st->path_cap < u.len + 2) {
    char *p = realloc(st->path_buf, u.len + 2);
    if (p == NULL) return false;
    st->path_buf = p;
    st->path_cap = u.len + 2;
  }
  int n = cm_http_normalize_path(u, st->path_buf, st->path_cap);
  if (n < 0) return false;
  hm->path = cm_str_n(st->path_buf, (size_t) n);
  return true;
}

/* The text of a 4xx for a body that cm__http_recv_body() refused. */
static const char *body_error(int d) {
  return d == CM_HTTP_ERR_BODY_TOO_LARGE   ? "body too large"
         : d == CM_HTTP_ERR_HDRS_TOO_LARGE ? "trailers too large"
                                           : "invalid chunked body";
}

/* While the body of a request whose head was delivered is arriving: true
 * once it is complete, without parsing the head again on every read (a
 * body sent one byte at a time must not cost a head's parse per byte). */
static bool body_complete(struct cm_conn *c, struct cm__http_conn *st) {
  if (st->body_end == 0) { /* chunked */
    int d = cm__http_recv_chunked(c, st->head_len, &st->chunked, &st->opts.limits);
    if (d < 0) reject(c, st, cm_http_err_status(d), body_error(d));
    return d == 1;
  }
  return c->recv.len >= st->body_end;
}

/* Parses and delivers every complete request in c->recv. */
static void process_requests(struct cm_conn *c, struct cm__http_conn *st) {
  const struct cm_http_limits *lim = &st->opts.limits;
  while (!c->is_closing && !c->is_draining && !st->stopped && c->recv.len > 0) {
    if (c->files != NULL || st->awaiting_reply || cm_conn_send_full(c)) {
      hold(c, st);
      return;
    }
    char *buf = (char *) cm_buf_data(&c->recv);
    size_t len = c->recv.len;
    struct cm_http_msg hm;
    if (st->hdrs_delivered && !body_complete(c, st)) return;
    buf = (char *) cm_buf_data(&c->recv);
    len = c->recv.len;
    int r = st->hdrs_delivered ? cm_http_parse_request(buf, len, &hm, lim)
                               : cm_http_scan_request(&st->scan, buf, len, &hm, lim);
    if (r == 0) {
      if (st->head_started_ms == 0) st->head_started_ms = c->mgr->now_ms;
      return;
    }
    if (r < 0) {
      reject(c, st, cm_http_err_status(r), hm.error);
      return;
    }
    size_t head = (size_t) r;
    if (!set_path(st, &hm)) {
      reject(c, st, 400, "malformed percent-escape in the request path");
      return;
    }
    if (!st->hdrs_delivered) {
      st->hdrs_delivered = true;
      st->head_len = head;
      st->body_end = cm__http_body_end(&hm, head);
      st->body_started_ms = c->mgr->now_ms;
      /* How replies to this request are written (also from HTTP_HDRS). */
      st->is_head = hm.method.len == 4 && memcmp(hm.method.buf, "HEAD", 4) == 0;
      st->is_connect = hm.method.len == 7 && memcmp(hm.method.buf, "CONNECT", 7) == 0;
      st->close_after = !hm.keep_alive;
      st->keep_alive_10 = hm.keep_alive && hm.minor_version == 0;
      bool body_pending = (hm.framing == CM_HTTP_BODY_LENGTH && hm.body.len < hm.content_length) ||
                          (hm.framing == CM_HTTP_BODY_CHUNKED && len == head);
      size_t queued = c->send.len;
      cm__http_access_begin(c, st, &hm); /* a reply may come from HTTP_HDRS already */
      cm_call(c, CM_EV_HTTP_HDRS, &hm);
      if (c->is_closing || cm__http_conn_of(c) != st) return;
      /* Invite the body unless the handler already answered (a final
       * status such as 401 or 413 instead of 100, RFC 9110 10.1.1). */
      if (hm.expect_continue && body_pending && c->send.len == queued) {
        cm_printf(c, "HTTP/1.1 100 Continue\r\n\r\n");
      }
    }
    size_t body_len;
    int d = cm__http_recv_body(c, &hm, head, &st->chunked, lim, false, &body_len);
    st->body_seen = c->recv.len - head;
    if (d < 0) {
      reject(c, st, cm_http_err_status(d), body_error(d));
      return;
    }
    if (d == 0) return;
    if (hm.framing == CM_HTTP_BODY_CHUNKED) { /* decoded in place */
      buf = (char *) cm_buf_data(&c->recv);
      hm.body = cm_str_n(buf + head, body_len);
      hm.message = cm_str_n(hm.head.buf, hm.head.len + body_len);
    }

    /* A whole request: reset for the next one before the handler runs, as
     * the handler may take the connection over. */
    st->stopped = !hm.keep_alive; /* nothing after a closing request is read */
    if (st->ending && !st->stopped && c->recv.len <= head + body_len) {
      /* The last request received of a connection that is ending. */
      st->stopped = true;
      st->close_after = true;
    }
    st->hdrs_delivered = false;
    st->head_started_ms = 0;
    st->body_seen = 0;
    cm_chunked_reset(st);
    cm_http_scan_init(&st->scan);
    c->recv_limit = st->base_recv_limit;
    st->awaiting_reply = true;
    size_t queued = c->send.len;
    cm_call(c, CM_EV_HTTP_MSG, &hm);
    cm_recv_consume(c, head + body_len);
    if (cm__http_conn_of(c) != st) return; /* taken over (WebSocket) */
    if (st->is_connect && st->awaiting_reply && c->send.len == queued && !c->is_closing) {
      /* A proxy's job, which only the application can do, and only while
       * HTTP_MSG is delivered: anything else is refused. */
      st->close_after = true;
      static const char text[] = "CONNECT is not supported here\n";
      cm_http_reply(c, 501, NULL, text, sizeof(text) - 1);
    }
  }
}

void cm__http_reply_done(struct cm_conn *c) {
  struct cm__http_conn *st = cm__http_conn_of(c);
  if (st == NULL) return;
  if (st->access != NULL) cm__http_access_end(c, st);
  st->awaiting_reply = false;
  /* A held pipelined request may go on: at this turn's flush. */
  if (st->held) cm__conn_want_poll(c);
  arm(c, st);
}

int cm_http_end_keep_alive(struct cm_conn *c, uint64_t idle_ms) {
  struct cm__http_conn *st = cm__http_conn_of(c);
  if (st == NULL || st->detached) return CM_EINVAL;
  st->ending = true;
  if (idle_ms < st->opts.idle_timeout_ms) st->opts.idle_timeout_ms = idle_ms;
  /* A reply is pending and nothing follows its request: it is the last.
   * (A request being received, or a pipelined one waiting, is marked when
   * it is complete; a chunked reply whose head went out cannot say close.) */
  if (st->awaiting_reply && !st->chunked_reply && !st->hdrs_delivered && c->recv.len == 0) {
    st->stopped = true;
    st->close_after = true;
  }
  /* The deadline now due (idle) fires from the timer heap, at the next poll. */
  cm__timer_unschedule(c->mgr, &st->deadline);
  arm(c, st);
  return 0;
}

/* A handler may detach (and even attach HTTP anew) while its event is
 * delivered: st then stays allocated until process_requests() is done with
 * it, so that a new state can never be mistaken for the old one. */
static void process(struct cm_conn *c, struct cm__http_conn *st) {
  bool nested = st->busy; /* the outermost call frees */
  st->busy = true;
  st->fresh = false;
  process_requests(c, st);
  if (nested) return;
  if (st->detached) {
    state_free(c, st);
  } else {
    st->busy = false;
  }
}

/* ------------------------------------------------------------ deadlines */

enum deadline_kind { DL_NONE, DL_LINGER, DL_HEAD, DL_BODY_STALLED, DL_BODY_SLOW, DL_IDLE };

/* base + ms, or 0 (none) when ms is CM_HTTP_TIMEOUT_OFF. */
static uint64_t after(uint64_t base, uint64_t ms) {
  if (ms == CM_HTTP_TIMEOUT_OFF || ms > UINT64_MAX - base) return 0;
  return base + ms;
}

static uint64_t earliest(uint64_t a, uint64_t b) {
  if (a == 0) return b;
  if (b == 0) return a;
  return a < b ? a : b;
}

/*
 * The deadline the connection's state calls for now, and its kind; 0 for
 * none.  Lingering after an error reply; a head that trickles in (header
 * timeout, counted from its first byte); a body: no byte for
 * body_timeout_ms, or not done by body_timeout_ms plus 1 s per
 * body_min_rate bytes received (a trickle of bytes does not keep it alive);
 * idle between requests.  Nothing while a reply is pending (a handler that
 * answers later is not an idle client) or output is waiting.
 */
static uint64_t next_deadline(struct cm_conn *c, struct cm__http_conn *st,
                              enum deadline_kind *kind) {
  const struct cm_http_serve_opts *o = &st->opts;
  *kind = DL_NONE;
  if (c->is_closing || c->is_draining) return 0;
  if (st->linger_until_ms != 0) {
    *kind = DL_LINGER;
    return st->linger_until_ms;
  }
  if (st->hdrs_delivered) {
    uint64_t grace = CM_HTTP_TIMEOUT_OFF;
    if (o->body_timeout_ms != CM_HTTP_TIMEOUT_OFF) {
      uint64_t extra = st->body_seen / o->body_min_rate;
      grace = extra > (UINT64_MAX - o->body_timeout_ms) / 1000 - 1
                  ? CM_HTTP_TIMEOUT_OFF
                  : o->body_timeout_ms + extra * 1000;
    }
    uint64_t stalled = after(c->last_io_ms, o->body_timeout_ms);
    uint64_t slow = after(st->body_started_ms, grace);
    uint64_t due = earliest(stalled, slow);
    *kind = due == stalled ? DL_BODY_STALLED : DL_BODY_SLOW;
    return due;
  }
  if (st->head_started_ms != 0 && c->recv.len > 0) {
    *kind = DL_HEAD;
    return after(st->head_started_ms, o->header_timeout_ms);
  }
  if (!st->awaiting_reply && !st->held && c->recv.len == 0 && !cm__conn_has_output(c)) {
    *kind = DL_IDLE;
    return after(c->last_io_ms, o->idle_timeout_ms);
  }
  return 0;
}

/* Makes the deadline timer fire no later than the state's deadline.  Lazy:
 * a deadline later than the one scheduled leaves the heap alone (the timer
 * fires early and reschedules itself), so the request path costs a few
 * comparisons, not a heap operation. */
static void arm(struct cm_conn *c, struct cm__http_conn *st) {
  enum deadline_kind kind;
  uint64_t due = next_deadline(c, st, &kind);
  if (due == 0 || st->detached) return;
  cm__timer_schedule_by(c->mgr, &st->deadline, due);
}

static void on_deadline(void *arg) {
  struct cm_conn *c = arg;
  struct cm__http_conn *st = cm__http_conn_of(c);
  if (st == NULL) return;
  enum deadline_kind kind;
  uint64_t due = next_deadline(c, st, &kind);
  if (due == 0) return; /* nothing to watch; the next change of state arms it */
  if (c->mgr->now_ms < due) {
    cm__timer_schedule(c->mgr, &st->deadline, due);
    return;
  }
  switch (kind) {
    case DL_LINGER:
      cm_close(c);
      break;
    case DL_HEAD:
      reject(c, st, 408, "request head not completed in time");
      break;
    case DL_BODY_STALLED:
      reject(c, st, 408, "request body stalled");
      break;
    case DL_BODY_SLOW:
      reject(c, st, 408, "request body too slow");
      break;
    default:
      CM_DEBUG("conn %lu: idle, closing", c->id);
      cm_close(c);
      break;
  }
}

static void http_pfn(struct cm_conn *c, int ev, void *ev_data) {
  (void) ev_data;
  if (c->pfn_data == NULL) return;
  int kind = *(int *) c->pfn_data;
  if (kind == CM__HTTP_KIND_SERVER) {
    struct cm__http_server *srv = c->pfn_data;
    if (ev == CM_EV_OPEN && c->is_accepted) {
      /* A child still carries the listener's options: give it its own. */
      if (!attach_conn(c, &srv->opts)) {
        c->pfn = NULL;
        c->pfn_data = NULL;
        cm_error(c, "out of memory");
      }
    } else if (ev == CM_EV_CLOSE && c->is_listening) {
      free(srv);
      c->pfn_data = NULL;
    }
    return;
  }
  struct cm__http_conn *st = c->pfn_data;
  switch (ev) {
    case CM_EV_READ:
      if (st->linger_until_ms != 0) {
        cm_recv_consume(c, c->recv.len); /* discard while lingering */
      } else {
        process(c, st);
      }
      if (cm__http_conn_of(c) == st) arm(c, st);
      break;
    case CM_EV_WRITE:
      if (st->linger_until_ms == 0 && may_resume(c, st)) resume_held(c, st);
      if (cm__http_conn_of(c) == st) arm(c, st);
      break;
    case CM_EV_POLL:
      /* Attached after its bytes arrived (back from a handler that took
       * the connection over): no READ may come for them.  Or a held
       * request whose reply is now complete (cm__http_reply_done). */
      if (st->fresh && c->recv.len > 0 && st->linger_until_ms == 0) process(c, st);
      else if (may_resume(c, st)) resume_held(c, st);
      if (cm__http_conn_of(c) == st) arm(c, st);
      break;
    case CM_EV_CLOSE:
      state_free(c, st);
      c->pfn_data = NULL;
      break;
    default:
      break;
  }
}
