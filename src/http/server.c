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
#include <sys/socket.h>

#include "cymongoose.h"
#include "http/internal.h"

#define DEFAULT_HEADER_TIMEOUT_MS 30000
/* How long a rejected client may keep sending before we close anyway. */
#define CM_HTTP_LINGER_MS 2000

static void http_pfn(struct cm_conn *c, int ev, void *ev_data);

static struct cm_http_serve_opts resolve_opts(const struct cm_http_serve_opts *in) {
  struct cm_http_serve_opts o = {0};
  if (in != NULL) o = *in;
  o.limits = cm_http_limits_resolve(&o.limits);
  if (o.header_timeout_ms == 0) o.header_timeout_ms = DEFAULT_HEADER_TIMEOUT_MS;
  return o;
}

struct cm__http_conn *cm__http_conn_of(struct cm_conn *c) {
  if (c->pfn != http_pfn || c->pfn_data == NULL) return NULL;
  struct cm__http_conn *st = c->pfn_data;
  return st->kind == CM__HTTP_KIND_CONN ? st : NULL;
}

/* An accepted connection gets its own state. */
static bool attach_conn(struct cm_conn *c, const struct cm_http_serve_opts *o) {
  struct cm__http_conn *st = calloc(1, sizeof(*st));
  if (st == NULL) return false;
  st->kind = CM__HTTP_KIND_CONN;
  st->opts = *o;
  /* Reading must not pause before a whole head fits. */
  if (c->recv_limit < o->limits.max_head + 1) c->recv_limit = o->limits.max_head + 1;
  st->base_recv_limit = c->recv_limit;
  cm_chunked_reset(st);
  st->fresh = true;
  c->pfn = http_pfn;
  c->pfn_data = st;
  return true;
}

bool cm_http_serve(struct cm_conn *c, const struct cm_http_serve_opts *opts) {
  struct cm_http_serve_opts o = resolve_opts(opts);
  if (!c->is_listening) return attach_conn(c, &o);
  struct cm__http_server *srv = calloc(1, sizeof(*srv));
  if (srv == NULL) return false;
  srv->kind = CM__HTTP_KIND_SERVER;
  srv->opts = o;
  c->pfn = http_pfn;
  c->pfn_data = srv;
  return true;
}

struct cm_conn *cm_http_listen(struct cm_mgr *mgr, const char *url, cm_event_fn fn, void *fn_data,
                               const struct cm_http_serve_opts *opts) {
  struct cm_conn *c = cm_listen(mgr, url, fn, fn_data);
  if (c == NULL) return NULL;
  if (!cm_http_serve(c, opts)) {
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
  } else {
    free(c->pfn_data);
  }
  c->pfn = NULL;
  c->pfn_data = NULL;
}

/* Lingering close: our side is done once the error reply has been written. */
static void half_close(struct cm_conn *c, struct cm__http_conn *st) {
  if (st->half_closed || c->fd < 0) return;
  st->half_closed = true;
  if (shutdown(c->fd, SHUT_WR) != 0) cm_close(c);
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
  if (c->is_tls || c->fd < 0) {
    cm_drain(c); /* no half-close under TLS: just flush and close */
    return;
  }
  st->linger_until_ms = c->mgr->now_ms + CM_HTTP_LINGER_MS;
  cm_recv_consume(c, c->recv.len);
  if (c->send.len == 0) half_close(c, st);
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
    int r = cm_http_parse_request(buf, len, &hm, lim);
    if (r == 0) {
      if (st->head_started_ms == 0) st->head_started_ms = c->mgr->now_ms;
      return;
    }
    if (r < 0) {
      reject(c, st, cm_http_err_status(r), hm.error);
      return;
    }
    size_t head = (size_t) r;
    if (!st->hdrs_delivered) {
      st->hdrs_delivered = true;
      /* How replies to this request are written (also from HTTP_HDRS). */
      st->is_head = hm.method.len == 4 && memcmp(hm.method.buf, "HEAD", 4) == 0;
      st->close_after = !hm.keep_alive;
      st->keep_alive_10 = hm.keep_alive && hm.minor_version == 0;
      bool body_pending = (hm.framing == CM_HTTP_BODY_LENGTH && hm.body.len < hm.content_length) ||
                          (hm.framing == CM_HTTP_BODY_CHUNKED && len == head);
      size_t queued = c->send.len;
      cm_call(c, CM_EV_HTTP_HDRS, &hm);
      if (c->is_closing || cm__http_conn_of(c) != st) return;
      /* Invite the body unless the handler already answered (a final
       * status such as 401 or 413 instead of 100, RFC 9110 10.1.1). */
      if (hm.expect_continue && body_pending && c->send.len == queued) {
        cm_printf(c, "HTTP/1.1 100 Continue\r\n\r\n");
      }
    }
    size_t body_len = 0;
    if (hm.framing == CM_HTTP_BODY_LENGTH) {
      if (hm.body.len < hm.content_length) {
        cm__http_make_room(c, head + (size_t) hm.content_length);
        return;
      }
      body_len = (size_t) hm.content_length;
    } else if (hm.framing == CM_HTTP_BODY_CHUNKED) {
      int d = cm__http_recv_chunked(c, head, &st->chunked, lim);
      buf = (char *) cm_buf_data(&c->recv);
      if (d < 0) {
        reject(c, st, cm_http_err_status(d),
               d == CM_HTTP_ERR_BODY_TOO_LARGE   ? "body too large"
               : d == CM_HTTP_ERR_HDRS_TOO_LARGE ? "trailers too large"
                                                 : "invalid chunked body");
        return;
      }
      if (d == 0) return;
      body_len = st->chunked.out;
      hm.body = cm_str_n(buf + head, body_len);
      hm.message = cm_str_n(hm.head.buf, hm.head.len + body_len);
    }

    /* A whole request: reset for the next one before the handler runs, as
     * the handler may take the connection over. */
    st->stopped = !hm.keep_alive; /* nothing after a closing request is read */
    st->hdrs_delivered = false;
    st->head_started_ms = 0;
    cm_chunked_reset(st);
    c->recv_limit = st->base_recv_limit;
    st->awaiting_reply = true;
    cm_call(c, CM_EV_HTTP_MSG, &hm);
    cm_recv_consume(c, head + body_len);
    if (cm__http_conn_of(c) != st) return; /* taken over (WebSocket) */
  }
}

void cm__http_reply_done(struct cm_conn *c) {
  struct cm__http_conn *st = cm__http_conn_of(c);
  if (st != NULL) st->awaiting_reply = false;
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
    free(st);
  } else {
    st->busy = false;
  }
}

/* Header timeout (a head that trickles in forever) and idle timeout. */
static void check_timers(struct cm_conn *c, struct cm__http_conn *st, uint64_t now) {
  if (c->is_closing || c->is_draining) return;
  if (st->linger_until_ms != 0) {
    if (now >= st->linger_until_ms) cm_close(c);
    return;
  }
  if (st->head_started_ms != 0 && !st->hdrs_delivered && c->recv.len > 0 &&
      now - st->head_started_ms > st->opts.header_timeout_ms) {
    reject(c, st, 408, "request head not completed in time");
  } else if (st->hdrs_delivered && now - c->last_io_ms > st->opts.header_timeout_ms) {
    reject(c, st, 408, "request body stalled"); /* no byte of it for that long */
  } else if (st->opts.idle_timeout_ms != 0 && !st->awaiting_reply && c->recv.len == 0 &&
             c->send.len == 0 && c->files == NULL && now - c->last_io_ms > st->opts.idle_timeout_ms) {
    /* Not while a reply is pending: a handler that answers later (a
     * worker thread, an asyncio task) is not an idle client. */
    cm_close(c);
  }
}

static void http_pfn(struct cm_conn *c, int ev, void *ev_data) {
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
      break;
    case CM_EV_WRITE:
      if (st->linger_until_ms != 0 && c->send.len == 0) half_close(c, st);
      else if (may_resume(c, st)) resume_held(c, st);
      break;
    case CM_EV_POLL:
      /* Attached after its bytes arrived (back from a handler that took
       * the connection over): no READ may come for them. */
      if (st->fresh && c->recv.len > 0 && st->linger_until_ms == 0) process(c, st);
      else if (may_resume(c, st)) resume_held(c, st);
      if (c->pfn_data == st) check_timers(c, st, *(uint64_t *) ev_data);
      break;
    case CM_EV_CLOSE:
      free(st);
      c->pfn_data = NULL;
      break;
    default:
      break;
  }
}
