/* Writing HTTP responses: whole replies, chunks, Server-Sent Events. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cymongoose.h"
#include "core/internal.h"
#include "http/chars.h"
#include "http/internal.h"

bool cm_http_header_ok(struct cm_str name, struct cm_str value) {
  if (name.len == 0 || name.buf == NULL) return false;
  for (size_t i = 0; i < name.len; i++) {
    if (!cm__http_is_tchar((unsigned char) name.buf[i])) return false;
  }
  for (size_t i = 0; i < value.len; i++) {
    if (!cm__http_is_value_char((unsigned char) value.buf[i])) return false;
  }
  return true;
}

/* The headers a reply's framing depends on, by name (case-insensitive). */
enum block_name { OTHER, CONTENT_TYPE, CONTENT_LENGTH, HOST, TRANSFER_ENCODING };

/* p holds n tchars; lower is made of lowercase letters and '-' only.  Then
 * p[i] | 0x20 equals lower[i] exactly when p[i] is that letter in either
 * case or is '-': the only other byte that ORs onto one of them is CR
 * (onto '-'), which is no tchar. */
static bool name_is(const unsigned char *p, const char *lower, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if ((p[i] | 0x20) != (unsigned char) lower[i]) return false;
  }
  return true;
}

/* Only four names matter and their lengths differ: one switch on the length
 * picks the single candidate to compare. */
static enum block_name classify(const unsigned char *p, size_t n) {
  switch (n) {
    case 4: return name_is(p, "host", 4) ? HOST : OTHER;
    case 12: return name_is(p, "content-type", 12) ? CONTENT_TYPE : OTHER;
    case 14: return name_is(p, "content-length", 14) ? CONTENT_LENGTH : OTHER;
    case 17: return name_is(p, "transfer-encoding", 17) ? TRANSFER_ENCODING : OTHER;
    default: return OTHER;
  }
}

/* Accepts only complete "Name: value" lines separated by CRLF: a stray CR
 * or LF, an empty line or a line without a name could end the head early
 * or smuggle a header in.  One pass over h, no strlen first: the NUL that
 * ends it is in no character class, so every inner loop stops there. */
bool cm__http_scan_block(const char *h, struct cm__http_block *bi) {
  memset(bi, 0, sizeof(*bi));
  if (h == NULL) return true;
  const unsigned char *p = (const unsigned char *) h;
  size_t i = 0;
  while (p[i] != 0) {
    size_t name = i;
    while (cm__http_is_tchar(p[i])) i++;
    if (i == name || p[i] != ':') return false;
    size_t name_len = i - name;
    i++;
    while (cm__http_is_ows(p[i])) i++;
    size_t value = i;
    while (cm__http_is_value_char(p[i])) i++;
    size_t value_end = i;
    while (value_end > value && cm__http_is_ows(p[value_end - 1])) value_end--;
    struct cm_str v = cm_str_n(h + value, value_end - value);
    if (p[i] == 0) {
      bi->needs_crlf = true;
    } else if (p[i] == '\r' && p[i + 1] == '\n') {
      i += 2;
    } else {
      return false;
    }
    switch (classify(p + name, name_len)) {
      case CONTENT_TYPE: bi->has_type = true; break;
      case HOST: bi->has_host = true; break;
      case TRANSFER_ENCODING:
        if (cm_http_has_token(v, "chunked")) bi->chunked = true;
        break;
      case CONTENT_LENGTH: {
        if (v.len == 0 || v.len > 19 || bi->has_length) return false;
        uint64_t x = 0;
        for (size_t k = 0; k < v.len; k++) {
          if (v.buf[k] < '0' || v.buf[k] > '9') return false;
          x = x * 10 + (uint64_t) (v.buf[k] - '0');
        }
        bi->has_length = true;
        bi->length = x;
        break;
      }
      case OTHER: break;
    }
  }
  bi->len = i;
  return true;
}

static bool append_str(struct cm_buf *b, const char *s) {
  return cm_buf_append(b, s, strlen(s)) == 0;
}

/* A response head being assembled: on the stack unless the caller's header
 * lines are long, so that a reply costs no allocation of its own. */
struct head {
  char *p;
  size_t len, cap;
  bool ok;
  char small[512];
};

static void head_init(struct head *h) {
  h->p = h->small;
  h->len = 0;
  h->cap = sizeof(h->small);
  h->ok = true;
}

/* Makes room for n more bytes; false (and h->ok false) when memory runs out. */
static bool head_reserve(struct head *h, size_t n) {
  if (!h->ok) return false;
  if (n > h->cap - h->len) {
    size_t cap = h->cap * 2 > h->len + n ? h->cap * 2 : h->len + n;
    char *p = malloc(cap);
    if (p == NULL) {
      h->ok = false;
      return false;
    }
    memcpy(p, h->p, h->len);
    if (h->p != h->small) free(h->p);
    h->p = p;
    h->cap = cap;
  }
  return true;
}

/* Appends n bytes into room already reserved. */
static inline void head_put(struct head *h, const char *s, size_t n) {
  memcpy(h->p + h->len, s, n);
  h->len += n;
}

static void head_add(struct head *h, const char *s, size_t n) {
  if (n > 0 && head_reserve(h, n)) head_put(h, s, n);
}

/* Appends x in base 10 or 16 (no printf: it showed up in profiles). */
static void head_num(struct head *h, uint64_t x, unsigned base) {
  char d[24];
  size_t i = sizeof(d);
  do {
    d[--i] = "0123456789abcdef"[x % base];
    x /= base;
  } while (x != 0);
  head_add(h, d + i, sizeof(d) - i);
}

/* Appends x in base 10 into reserved room (at most 20 digits); the
 * constant divisor lets the compiler multiply instead of divide. */
static void head_put_dec(struct head *h, uint64_t x) {
  char d[20];
  size_t i = sizeof(d);
  do {
    d[--i] = (char) ('0' + x % 10);
    x /= 10;
  } while (x != 0);
  head_put(h, d + i, sizeof(d) - i);
}

static void head_free(struct head *h) {
  if (h->p != h->small) free(h->p);
}

/* Queues the parts; a UDP connection gets them as one datagram. */
static int send_parts(struct cm_conn *c, const struct cm_str *parts, size_t n) {
  if (!c->is_udp) return cm__send_parts(c, parts, n);
  struct cm_buf b = {0};
  int rc = 0;
  for (size_t i = 0; i < n && rc == 0; i++) rc = cm_buf_append(&b, parts[i].buf, parts[i].len);
  if (rc == 0) rc = cm_send(c, cm_buf_data(&b), b.len);
  cm_buf_free(&b);
  return rc;
}

/* A 2xx answer to CONNECT turns the connection into a tunnel: it has no
 * content, so never a Content-Length (RFC 9110 9.3.6 and 8.6). */
static bool is_tunnel(const struct cm__http_conn *st, int status) {
  return st != NULL && st->is_connect && status >= 200 && status < 300;
}

/* The fixed pieces of a head, copied with their lengths known at compile
 * time. */
#define LIT(s) s, sizeof(s) - 1
#define HDR_TYPE "Content-Type: text/plain\r\n"
#define HDR_LENGTH "Content-Length: "
#define HDR_CLOSE "Connection: close\r\n"
#define HDR_KEEP "Connection: keep-alive\r\n"
/* Room for every optional piece of build_head() and for the chunk-size line
 * cm_http_reply() may append (16 hex digits and CRLF), so one reservation
 * covers the whole head. */
enum {
  HEAD_EXTRA = sizeof(HDR_TYPE) + sizeof(HDR_LENGTH) + 20 + 2 + sizeof(HDR_CLOSE) +
               sizeof(HDR_KEEP) + 2 + 2 + 16 + 2,
};

/* Appends the status line and header block of a response to h: the caller's
 * headers (bi->len bytes, as cm__http_scan_block() measured them), then
 * Content-Type, Content-Length (of len bytes) and Connection as needed.
 * status is in 100..999.  h->ok turns false when memory runs out. */
static void build_head(struct head *h, const struct cm__http_conn *st, int status, const char *headers,
                       const struct cm__http_block *bi, uint64_t len) {
  bool informational = status < 200;
  bool tunnel = is_tunnel(st, status);
  bool no_body = informational || status == 204 || status == 304 || tunnel;
  bool close_after = st != NULL && st->close_after && !informational && !tunnel;
  const char *text = status == 200 ? "OK" : cm_http_status_text(status);
  size_t text_len = status == 200 ? 2 : strlen(text);
  if (!head_reserve(h, sizeof("HTTP/1.1 999 \r\n") + text_len + bi->len + HEAD_EXTRA)) return;
  if (status == 200) {
    head_put(h, LIT("HTTP/1.1 200 OK\r\n"));
  } else {
    char line[sizeof("HTTP/1.1 000 ")] = "HTTP/1.1 000 ";
    line[9] = (char) ('0' + status / 100);
    line[10] = (char) ('0' + status / 10 % 10);
    line[11] = (char) ('0' + status % 10);
    head_put(h, line, sizeof(line) - 1);
    head_put(h, text, text_len);
    head_put(h, LIT("\r\n"));
  }
  if (bi->len > 0) head_put(h, headers, bi->len);
  if (bi->needs_crlf) head_put(h, LIT("\r\n"));
  if (!bi->has_type && !no_body) head_put(h, LIT(HDR_TYPE));
  if (!bi->chunked && !bi->has_length && !no_body) {
    head_put(h, LIT(HDR_LENGTH));
    head_put_dec(h, len);
    head_put(h, LIT("\r\n"));
  }
  if (close_after) head_put(h, LIT(HDR_CLOSE));
  if (st != NULL && st->keep_alive_10 && !informational) head_put(h, LIT(HDR_KEEP));
  head_put(h, LIT("\r\n"));
}

/* cm_http_reply_check(), leaving what the scan of headers found in *bi. */
static const char *check_reply(int status, const char *headers, size_t len,
                               struct cm__http_block *bi) {
  if (status < 100 || status > 999) return "status must be in 100..999";
  if (!cm__http_scan_block(headers, bi)) {
    return "malformed header block (each line \"Name: value\", CRLF between lines; "
           "one Content-Length of digits)";
  }
  if (bi->has_length && bi->chunked) return "Content-Length together with Transfer-Encoding: chunked";
  if (bi->has_length && bi->length != len) return "the Content-Length header disagrees with the body's length";
  return NULL;
}

const char *cm_http_reply_check(int status, const char *headers, size_t len) {
  struct cm__http_block bi;
  return check_reply(status, headers, len, &bi);
}

bool cm_http_headers_ok(const char *headers, bool *sets_framing) {
  struct cm__http_block bi;
  bool ok = cm__http_scan_block(headers, &bi);
  if (sets_framing != NULL) *sets_framing = ok && (bi.has_length || bi.chunked);
  return ok;
}

bool cm_http_response_complete(struct cm_conn *c) {
  struct cm__http_conn *st = cm__http_conn_of(c);
  return st != NULL && !st->chunked_reply && !st->awaiting_reply;
}

bool cm_http_hdrs_takeover_info(const struct cm_conn *c, struct cm_http_serve_opts *opts,
                                size_t *recv_limit) {
  const struct cm__http_conn *st = cm__http_conn_of((struct cm_conn *)c);
  if (st == NULL || !st->hdrs_delivered) return false;
  *opts = st->opts;
  *recv_limit = st->base_recv_limit;
  return true;
}

/* Output for a request could not be queued on a live connection: the
 * client would wait forever for the rest, so the connection fails (ERROR
 * deferred to the flush: a public call delivers no event itself). */
static int output_refused(struct cm_conn *c, int rc) {
  if (c->is_closing || c->is_draining) return CM_ECLOSED;
  if (c->is_udp) return rc;
  cm__conn_defer_error(c, rc == CM_ETOOBIG ? "HTTP response refused: send_limit reached"
                                           : "HTTP response refused: out of memory");
  return rc;
}

int cm_http_reply(struct cm_conn *c, int status, const char *headers, const void *body, size_t len) {
  struct cm__http_block bi;
  if (check_reply(status, headers, len, &bi) != NULL) return CM_EINVAL;
  struct cm__http_conn *st = cm__http_conn_of(c);
  bool informational = status < 200;
  bool tunnel = is_tunnel(st, status);
  if (tunnel && (bi.has_length || bi.chunked)) return CM_EINVAL;
  bool no_body = informational || status == 204 || status == 304 || tunnel;
  bool is_head = st != NULL && st->is_head;
  bool close_after = st != NULL && st->close_after && !informational && !tunnel;

  struct head h;
  head_init(&h);
  build_head(&h, st, status, headers, &bi, len);
  bool send_body = len > 0 && !no_body && !is_head;
  /* Head, body and chunk framing go into the send buffer in one copy each. */
  struct cm_str parts[3] = {{0}, {0}, {0}};
  if (send_body && bi.chunked) {
    head_num(&h, len, 16);
    head_add(&h, "\r\n", 2);
    parts[2] = cm_str_n("\r\n", 2);
  }
  if (send_body) parts[1] = cm_str_n(body, len);
  parts[0] = cm_str_n(h.p, h.len);
  int rc = h.ok ? send_parts(c, parts, 3) : CM_ENOMEM;
  head_free(&h);
  if (rc != 0) return output_refused(c, rc);
  cm__http_access_reply(st, status, send_body ? len : 0);
  if (st != NULL && bi.chunked && !no_body) st->chunked_reply = true;
  if (tunnel) st->stopped = true; /* what follows is the tunnel's, not HTTP */
  if (!informational && !(bi.chunked && !no_body)) cm__http_reply_done(c);
  if (close_after && !(bi.chunked && !no_body)) cm_drain(c);
  return 0;
}

/* cm__http_reply_head() with the reason: 0 or a CM_E* code. */
static int reply_head(struct cm_conn *c, int status, const char *headers, uint64_t body_len,
                      bool *send_body) {
  struct cm__http_block bi;
  *send_body = false;
  if (status < 200 || status > 999 || !cm__http_scan_block(headers, &bi)) return CM_EINVAL;
  if (bi.chunked || bi.has_length) return CM_EINVAL;
  struct cm__http_conn *st = cm__http_conn_of(c);
  if (is_tunnel(st, status)) return CM_EINVAL; /* a file body cannot open a tunnel */
  struct head h;
  head_init(&h);
  build_head(&h, st, status, headers, &bi, body_len);
  int rc = h.ok ? cm_send(c, h.p, h.len) : CM_ENOMEM;
  head_free(&h);
  if (rc != 0) return output_refused(c, rc);
  *send_body = status != 204 && status != 304 && !(st != NULL && st->is_head);
  cm__http_access_reply(st, status, *send_body ? body_len : 0);
  return 0;
}

bool cm__http_reply_head(struct cm_conn *c, int status, const char *headers, uint64_t body_len,
                         bool *send_body) {
  return reply_head(c, status, headers, body_len, send_body) == 0;
}

void cm__http_reply_end(struct cm_conn *c) {
  struct cm__http_conn *st = cm__http_conn_of(c);
  cm__http_reply_done(c);
  if (st != NULL && st->close_after) cm_drain(c);
}

int cm_http_reply_file(struct cm_conn *c, int status, const char *headers, int fd, uint64_t offset,
                       uint64_t len) {
  bool body = false;
  int rc = reply_head(c, status, headers != NULL ? headers : "", len, &body);
  if (rc != 0) {
    close(fd);
    return rc;
  }
  if (!body) {
    close(fd);
  } else if ((rc = cm_send_file(c, fd, offset, len)) != 0) {
    cm_close(c); /* the head promised a body that cannot follow */
    return rc;
  }
  cm__http_reply_end(c);
  return 0;
}

int cm_http_chunk(struct cm_conn *c, const void *data, size_t len) {
  struct cm__http_conn *st = cm__http_conn_of(c);
  int rc = 0;
  if (st == NULL || !st->is_head) { /* a reply to HEAD has no body at all */
    struct head h;
    head_init(&h);
    head_num(&h, len, 16);
    head_add(&h, "\r\n", 2);
    struct cm_str parts[3] = {cm_str_n(h.p, h.len), cm_str_n(data, len), cm_str_n("\r\n", 2)};
    rc = h.ok ? send_parts(c, parts, 3) : CM_ENOMEM;
    head_free(&h);
    if (rc != 0) return output_refused(c, rc);
  }
  if (st != NULL && !st->is_head) cm__http_access_reply(st, 200, len);
  if (len == 0 && st != NULL) {
    st->chunked_reply = false;
    cm__http_reply_done(c);
    if (st->close_after) cm_drain(c);
  }
  return 0;
}

int cm_http_sse(struct cm_conn *c, struct cm_str event, struct cm_str data) {
  struct cm_buf b = {0};
  bool ok = true;
  if (event.len > 0) {
    if (memchr(event.buf, '\n', event.len) != NULL || memchr(event.buf, '\r', event.len) != NULL) {
      return CM_EINVAL;
    }
    ok = append_str(&b, "event: ") && cm_buf_append(&b, event.buf, event.len) == 0 &&
         append_str(&b, "\n");
  }
  /* Each line of data becomes a data: field; the client joins them with \n.
   * A line ends at CRLF, LF or a bare CR, as the client's parser sees it
   * (WHATWG HTML, "Server-sent events": all three end a line): a CR left
   * inside a data: line would start a line of its own there, so that data
   * could inject "event:", "id:" or "retry:" fields. */
  size_t i = 0;
  for (;;) {
    size_t end = i;
    while (end < data.len && data.buf[end] != '\n' && data.buf[end] != '\r') end++;
    ok = ok && append_str(&b, "data: ") && (end == i || cm_buf_append(&b, data.buf + i, end - i) == 0) &&
         append_str(&b, "\n");
    if (!ok || end == data.len) break;
    i = end + (data.buf[end] == '\r' && end + 1 < data.len && data.buf[end + 1] == '\n' ? 2 : 1);
  }
  int rc = ok && append_str(&b, "\n") ? cm_http_chunk(c, cm_buf_data(&b), b.len) : CM_ENOMEM;
  cm_buf_free(&b);
  return rc;
}
