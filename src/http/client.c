/*
 * HTTP/1.1 client protocol handler: parses responses from c->recv into
 * CM_EV_HTTP_HDRS / CM_EV_HTTP_MSG.  Requests are written by the caller,
 * with cm_http_request() or raw bytes (cm_printf); cm_http_request() also
 * remembers HEAD requests, whose responses carry no body.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cymongoose.h"
#include "core/internal.h"
#include "http/chars.h"
#include "http/internal.h"

static void client_pfn(struct cm_conn *c, int ev, void *ev_data);

static struct cm__http_client *client_of(struct cm_conn *c) {
  if (c->pfn != client_pfn || c->pfn_data == NULL) return NULL;
  return c->pfn_data;
}

/* ------------------------------------------------------------ deadlines */

/* The deadline c's state calls for (0: none); *connecting tells which. */
static uint64_t next_deadline(struct cm_conn *c, struct cm__http_client *st, bool *connecting) {
  *connecting = c->is_connecting || c->is_resolving;
  if (c->is_closing || st->upgraded) return 0;
  uint64_t base, ms;
  if (*connecting) {
    base = st->started_ms;
    ms = st->connect_timeout_ms;
  } else if (st->pending > 0 || st->hdrs_delivered || c->recv.len > 0) {
    base = c->last_io_ms;
    ms = st->response_timeout_ms;
  } else {
    return 0;
  }
  return ms == CM_HTTP_TIMEOUT_OFF || ms > UINT64_MAX - base ? 0 : base + ms;
}

/* Lazy: only a deadline earlier than the scheduled one moves the timer. */
static void arm(struct cm_conn *c, struct cm__http_client *st) {
  bool connecting;
  uint64_t due = next_deadline(c, st, &connecting);
  if (due == 0) return;
  cm__timer_schedule_by(c->mgr, &st->deadline, due);
}

static void on_deadline(void *arg) {
  struct cm_conn *c = arg;
  struct cm__http_client *st = client_of(c);
  if (st == NULL) return;
  bool connecting;
  uint64_t due = next_deadline(c, st, &connecting);
  if (due == 0) return; /* nothing awaited; the next request arms it */
  if (c->mgr->now_ms < due) {
    cm__timer_schedule(c->mgr, &st->deadline, due);
    return;
  }
  /* Deferred to the flush step after the timers: the handler runs outside
   * this timer's callback, so nothing it does can free the timer under it. */
  cm__conn_defer_error(c, connecting ? "connect timed out" : "response timed out");
  if (c->deferred_error == NULL) cm_close(c); /* no memory for the message */
}

static void state_free(struct cm_conn *c, struct cm__http_client *st) {
  cm__timer_unschedule(c->mgr, &st->deadline);
  free(st);
}

int cm_http_client_set_timeouts(struct cm_conn *c, uint64_t connect_ms, uint64_t response_ms) {
  struct cm__http_client *st = client_of(c);
  if (st == NULL) return CM_EINVAL;
  st->connect_timeout_ms = connect_ms != 0 ? connect_ms : CM_HTTP_CONNECT_TIMEOUT_MS;
  st->response_timeout_ms = response_ms != 0 ? response_ms : CM_HTTP_RESPONSE_TIMEOUT_MS;
  /* Shorter than what is scheduled: move it; longer: it reschedules itself. */
  arm(c, st);
  return 0;
}

int cm_http_client(struct cm_conn *c, const struct cm_http_limits *lim) {
  struct cm__http_client *st = calloc(1, sizeof(*st));
  if (st == NULL) return CM_ENOMEM;
  st->kind = CM__HTTP_KIND_CLIENT;
  st->lim = cm_http_limits_resolve(lim);
  if (c->recv_limit < st->lim.max_head + 1) c->recv_limit = st->lim.max_head + 1;
  st->base_recv_limit = c->recv_limit;
  st->started_ms = cm_millis();
  st->connect_timeout_ms = CM_HTTP_CONNECT_TIMEOUT_MS;
  st->response_timeout_ms = CM_HTTP_RESPONSE_TIMEOUT_MS;
  cm__timer_init(&st->deadline, on_deadline, c);
  c->pfn = client_pfn;
  c->pfn_data = st;
  arm(c, st);
  return 0;
}

/* "host", "host:port", "[v6]:port": the Host header for url. */
static void host_header(const char *url, char *out, size_t len) {
  struct cm_str host = cm_url_host(url);
  unsigned port = cm_url_port(url);
  bool v6 = memchr(host.buf, ':', host.len) != NULL;
  bool default_port = port == (cm_url_is_ssl(url) ? 443u : 80u);
  if (default_port) {
    snprintf(out, len, v6 ? "[%.*s]" : "%.*s", (int) host.len, host.buf);
  } else {
    snprintf(out, len, v6 ? "[%.*s]:%u" : "%.*s:%u", (int) host.len, host.buf, port);
  }
}

struct cm_conn *cm_http_connect(struct cm_mgr *mgr, const char *url, cm_event_fn fn, void *fn_data,
                                const struct cm_http_limits *lim) {
  struct cm_conn *c = cm_connect(mgr, url, fn, fn_data);
  if (c == NULL) return NULL;
  if (cm_http_client(c, lim) != 0) {
    cm_close(c);
    return NULL;
  }
  struct cm__http_client *st = c->pfn_data;
  if (cm_url_host(url).len < sizeof(st->host) - 16) host_header(url, st->host, sizeof(st->host));
  return c;
}

/* A request went out: remember whether it was HEAD (the first 64 in flight
 * are tracked; responses beyond are read as responses to GET). */
static void push_request(struct cm_conn *c, struct cm__http_client *st, bool is_head) {
  if (st->pending < 64) {
    if (is_head) st->head_bits |= (uint64_t) 1 << st->pending;
    st->pending++;
  }
  arm(c, st); /* the response clock */
}

int cm_http_request(struct cm_conn *c, const char *method, const char *uri, const char *headers,
                    const void *body, size_t len) {
  struct cm__http_block bi;
  if (!cm__http_scan_block(headers, &bi) || (bi.has_length && (bi.chunked || bi.length != len)))
    return CM_EINVAL;
  size_t mlen = strlen(method), ulen = strlen(uri);
  if (mlen == 0 || ulen == 0) return CM_EINVAL;
  for (size_t i = 0; i < mlen; i++) {
    if (!cm__http_is_tchar((unsigned char) method[i])) return CM_EINVAL;
  }
  for (size_t i = 0; i < ulen; i++) {
    unsigned char ch = (unsigned char) uri[i];
    if (ch <= ' ' || ch == 0x7f) return CM_EINVAL;
  }
  struct cm__http_client *st = client_of(c);
  struct cm_buf b = {0};
  bool ok = cm_buf_append(&b, method, mlen) == 0 && cm_buf_append(&b, " ", 1) == 0 &&
            cm_buf_append(&b, uri, ulen) == 0 && cm_buf_append(&b, " HTTP/1.1\r\n", 11) == 0;
  if (ok && !bi.has_host) {
    const char *host = st != NULL && st->host[0] != '\0' ? st->host : "localhost";
    ok = cm_buf_append(&b, "Host: ", 6) == 0 && cm_buf_append(&b, host, strlen(host)) == 0 &&
         cm_buf_append(&b, "\r\n", 2) == 0;
  }
  if (ok && headers != NULL) ok = cm_buf_append(&b, headers, strlen(headers)) == 0;
  if (ok && bi.needs_crlf) ok = cm_buf_append(&b, "\r\n", 2) == 0;
  /* A body needs a length; POST/PUT/PATCH without one say 0 explicitly. */
  bool wants_length = len > 0 || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
                      strcmp(method, "PATCH") == 0;
  if (ok && !bi.chunked && !bi.has_length && wants_length) {
    char line[48];
    int n = snprintf(line, sizeof(line), "Content-Length: %zu\r\n", len);
    ok = cm_buf_append(&b, line, (size_t) n) == 0;
  }
  ok = ok && cm_buf_append(&b, "\r\n", 2) == 0 && (len == 0 || cm_buf_append(&b, body, len) == 0);
  int rc = ok ? cm_send(c, cm_buf_data(&b), b.len) : CM_ENOMEM;
  cm_buf_free(&b);
  if (rc == 0 && st != NULL) push_request(c, st, mlen == 4 && memcmp(method, "HEAD", 4) == 0);
  return rc;
}

/* "METHOD SP target SP HTTP/1.x CRLF" at the start of p[0..n), the line
 * complete; sets *is_head. */
static bool is_request_line(const char *p, size_t n, bool *is_head) {
  size_t i = 0;
  while (i < n && cm__http_is_tchar((unsigned char) p[i])) i++;
  if (i == 0 || i >= n || p[i] != ' ') return false;
  *is_head = i == 4 && memcmp(p, "HEAD", 4) == 0;
  size_t target = ++i;
  while (i < n && (unsigned char) p[i] > ' ' && p[i] != 0x7f) i++;
  if (i == target || n - i < 11 || memcmp(p + i, " HTTP/1.", 8) != 0) return false;
  return p[i + 8] >= '0' && p[i + 8] <= '9' && p[i + 9] == '\r' && p[i + 10] == '\n';
}

bool cm_http_client_track(struct cm_conn *c, const void *data, size_t len) {
  struct cm__http_client *st = client_of(c);
  if (st == NULL || data == NULL) return false;
  const char *p = data;
  bool found = false;
  /* Skip the rest of a body announced by a request tracked earlier. */
  size_t skip = st->out_body_left < len ? (size_t) st->out_body_left : len;
  st->out_body_left -= skip;
  /* Several requests may come in one piece (pipelining): walk them with
   * the request parser, skipping Content-Length bodies; stop at anything
   * else (a partial head, a chunked body, bytes that are no request). */
  for (size_t o = skip; o < len;) {
    bool is_head = false;
    if (!is_request_line(p + o, len - o, &is_head)) break;
    push_request(c, st, is_head);
    found = true;
    struct cm_http_msg hm;
    struct cm_http_limits lim = {.max_body = UINT64_MAX};
    int r = cm_http_parse_request(p + o, len - o, &hm, &lim);
    if (r <= 0 || hm.framing == CM_HTTP_BODY_CHUNKED) break;
    o += (size_t) r;
    uint64_t body = hm.framing == CM_HTTP_BODY_LENGTH ? hm.content_length : 0;
    if (body > len - o) {
      st->out_body_left = body - (len - o);
      break;
    }
    o += (size_t) body;
  }
  return found;
}


/* The response to the oldest request in flight has been delivered. */
static void pop_request(struct cm__http_client *st) {
  if (st->pending == 0) return;
  st->pending--;
  st->head_bits >>= 1;
}

/* Delivers HTTP_MSG for a response whose body is body_len bytes after the
 * head, then consumes it.  Returns false when the handler took over. */
static bool deliver(struct cm_conn *c, struct cm__http_client *st, struct cm_http_msg *hm, size_t head,
                    size_t body_len) {
  hm->body = cm_str_n(hm->head.buf + hm->head.len, body_len);
  hm->message = cm_str_n(hm->head.buf, hm->head.len + body_len);
  if (hm->status == 101) st->upgraded = true;
  pop_request(st);
  st->hdrs_delivered = false;
  cm_http_chunked_init(&st->chunked);
  cm_http_scan_init(&st->scan);
  c->recv_limit = st->base_recv_limit;
  cm_call(c, CM_EV_HTTP_MSG, hm);
  cm_recv_consume(c, head + body_len);
  return client_of(c) == st && !st->upgraded;
}

/* A failure of the response being read.  At close (the connection is
 * already going) the handler still sees ERROR, then CLOSE.  Returns false,
 * for the caller to return. */
static bool fail_response(struct cm_conn *c, bool at_close, const char *why, const char *detail) {
  if (!at_close) {
    cm_error(c, "%s%s", why, detail);
    return false;
  }
  char msg[256];
  snprintf(msg, sizeof(msg), "%s%s", why, detail);
  CM_ERROR("conn %lu: %s", c->id, msg);
  cm_call(c, CM_EV_ERROR, msg);
  return false;
}

/* While the body of a response whose head was delivered is arriving: 1
 * once it is complete, 0 while incomplete, -1 after an error; without
 * parsing the head again on every read. */
static int body_complete(struct cm_conn *c, struct cm__http_client *st, bool at_close) {
  if (st->body_end == 0) { /* chunked */
    int d = cm__http_recv_chunked(c, st->head_len, &st->chunked, &st->lim);
    if (d < 0) fail_response(c, at_close, "invalid HTTP response: bad chunked body", "");
    return d < 0 ? -1 : d;
  }
  if (st->body_end == UINT64_MAX) { /* until the close; or over the limit */
    return at_close || c->recv.len - st->head_len > st->lim.max_body;
  }
  return c->recv.len >= st->body_end;
}

/* at_close: the peer has closed, so a body delimited by the close is whole.
 * Returns false when it reported an error. */
static bool process(struct cm_conn *c, struct cm__http_client *st, bool at_close) {
  while ((at_close || !c->is_closing) && c->recv.len > 0 && !st->upgraded) {
    if (st->hdrs_delivered) {
      int b = body_complete(c, st, at_close);
      if (b <= 0) return b == 0;
    }
    char *buf = (char *) cm_buf_data(&c->recv);
    size_t len = c->recv.len;
    struct cm_http_msg hm;
    bool head_req = st->pending > 0 && (st->head_bits & 1) != 0;
    struct cm_str method = head_req ? cm_str_c("HEAD") : cm_str_n(NULL, 0);
    int r = st->hdrs_delivered ? cm_http_parse_response_to(method, buf, len, &hm, &st->lim)
                               : cm_http_scan_response_to(&st->scan, method, buf, len, &hm, &st->lim);
    if (r == 0) return true;
    if (r < 0) return fail_response(c, at_close, "invalid HTTP response: ", hm.error);
    size_t head = (size_t) r;
    if (!st->hdrs_delivered) {
      st->head_len = head;
      st->body_end = cm__http_body_end(&hm, head);
    }
    if (hm.status >= 100 && hm.status < 200 && hm.status != 101) {
      cm_recv_consume(c, head); /* 100 Continue and friends: interim */
      cm_http_scan_init(&st->scan);
      continue;
    }
    if (!st->hdrs_delivered) {
      st->hdrs_delivered = true;
      cm_call(c, CM_EV_HTTP_HDRS, &hm);
      if ((!at_close && c->is_closing) || client_of(c) != st) return true;
    }
    size_t body_len;
    int d = cm__http_recv_body(c, &hm, head, &st->chunked, &st->lim, at_close, &body_len);
    if (d < 0) {
      return fail_response(c, at_close,
                           hm.framing == CM_HTTP_BODY_CHUNKED ? "invalid HTTP response: bad chunked body"
                                                              : "HTTP response body too large",
                           "");
    }
    if (d == 0) return true;
    if (!deliver(c, st, &hm, head, body_len)) return true;
  }
  return true;
}

static void client_pfn(struct cm_conn *c, int ev, void *ev_data) {
  (void) ev_data;
  struct cm__http_client *st = c->pfn_data;
  if (st == NULL || st->kind != CM__HTTP_KIND_CLIENT) return;
  if (ev == CM_EV_READ) {
    process(c, st, false);
    if (client_of(c) == st) arm(c, st);
  } else if (ev == CM_EV_CONNECT) {
    arm(c, st);
  } else if (ev == CM_EV_CLOSE) {
    /* A body that runs until the close is complete now; anything else
     * still unfinished was cut short by the peer: say so with ERROR (then
     * CLOSE follows), rather than let a truncated response pass for an
     * ordinary end. */
    if (c->is_eof && (c->recv.len > 0 || st->hdrs_delivered) && !st->upgraded && process(c, st, true) &&
        client_of(c) == st && !st->upgraded && (c->recv.len > 0 || st->hdrs_delivered)) {
      fail_response(c, true,
                    st->hdrs_delivered ? "HTTP response truncated: the connection closed before the end of the body"
                                       : "HTTP response truncated: the connection closed inside the head",
                    "");
    }
    if (c->pfn_data == st) c->pfn_data = NULL;
    state_free(c, st);
  }
}
