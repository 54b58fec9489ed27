/* Writing HTTP responses: whole replies, chunks, Server-Sent Events. */
#include <stdio.h>
#include <string.h>

#include "cymongoose.h"
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

static bool name_is(const char *p, size_t n, const char *lower) {
  if (strlen(lower) != n) return false;
  for (size_t i = 0; i < n; i++) {
    if (cm__http_lower((unsigned char) p[i]) != (unsigned char) lower[i]) return false;
  }
  return true;
}

/* Accepts only complete "Name: value" lines separated by CRLF: a stray CR
 * or LF, an empty line or a line without a name could end the head early
 * or smuggle a header in. */
bool cm__http_scan_block(const char *h, struct cm__http_block *bi) {
  memset(bi, 0, sizeof(*bi));
  size_t i = 0, n = h == NULL ? 0 : strlen(h);
  while (i < n) {
    size_t name = i;
    while (i < n && cm__http_is_tchar((unsigned char) h[i])) i++;
    if (i == name || i >= n || h[i] != ':') return false;
    size_t name_len = i - name;
    i++;
    while (i < n && cm__http_is_ows((unsigned char) h[i])) i++;
    size_t value = i;
    while (i < n && cm__http_is_value_char((unsigned char) h[i])) i++;
    size_t value_end = i;
    while (value_end > value && cm__http_is_ows((unsigned char) h[value_end - 1])) value_end--;
    struct cm_str v = cm_str_n(h + value, value_end - value);
    if (i == n) {
      bi->needs_crlf = true;
    } else if (h[i] == '\r' && i + 1 < n && h[i + 1] == '\n') {
      i += 2;
    } else {
      return false;
    }
    if (name_is(h + name, name_len, "content-type")) bi->has_type = true;
    if (name_is(h + name, name_len, "host")) bi->has_host = true;
    if (name_is(h + name, name_len, "transfer-encoding") && cm_http_has_token(v, "chunked")) {
      bi->chunked = true;
    }
    if (name_is(h + name, name_len, "content-length")) {
      if (v.len == 0 || v.len > 19 || bi->has_length) return false;
      uint64_t x = 0;
      for (size_t k = 0; k < v.len; k++) {
        if (v.buf[k] < '0' || v.buf[k] > '9') return false;
        x = x * 10 + (uint64_t) (v.buf[k] - '0');
      }
      bi->has_length = true;
      bi->length = x;
    }
  }
  return true;
}

static bool append_str(struct cm_buf *b, const char *s) {
  return cm_buf_append(b, s, strlen(s)) == 0;
}

/* Appends the status line and header block of a response to b: the caller's
 * headers, then Content-Type, Content-Length (of len bytes) and Connection
 * as needed.  False when memory runs out. */
static bool build_head(struct cm_buf *b, const struct cm__http_conn *st, int status, const char *headers,
                       const struct cm__http_block *bi, uint64_t len) {
  bool informational = status < 200;
  bool no_body = informational || status == 204 || status == 304;
  bool close_after = st != NULL && st->close_after && !informational;
  char line[96];
  snprintf(line, sizeof(line), "HTTP/1.1 %d %s\r\n", status, cm_http_status_text(status));
  bool ok = append_str(b, line);
  if (headers != NULL) ok = ok && append_str(b, headers);
  if (bi->needs_crlf) ok = ok && append_str(b, "\r\n");
  if (!bi->has_type && !no_body) ok = ok && append_str(b, "Content-Type: text/plain\r\n");
  if (!bi->chunked && !bi->has_length && !no_body) {
    snprintf(line, sizeof(line), "Content-Length: %llu\r\n", (unsigned long long) len);
    ok = ok && append_str(b, line);
  }
  if (close_after) ok = ok && append_str(b, "Connection: close\r\n");
  if (st != NULL && st->keep_alive_10 && !informational) {
    ok = ok && append_str(b, "Connection: keep-alive\r\n");
  }
  return ok && append_str(b, "\r\n");
}

bool cm_http_reply(struct cm_conn *c, int status, const char *headers, const void *body, size_t len) {
  struct cm__http_block bi;
  if (status < 100 || status > 999 || !cm__http_scan_block(headers, &bi)) return false;
  if (bi.has_length && (bi.chunked || bi.length != len)) return false;
  struct cm__http_conn *st = cm__http_conn_of(c);
  bool informational = status < 200;
  bool no_body = informational || status == 204 || status == 304;
  bool is_head = st != NULL && st->is_head;
  bool close_after = st != NULL && st->close_after && !informational;

  struct cm_buf b = {0};
  char line[32];
  bool ok = build_head(&b, st, status, headers, &bi, len);
  bool send_body = len > 0 && !no_body && !is_head;
  if (ok && send_body && bi.chunked) {
    snprintf(line, sizeof(line), "%zx\r\n", len);
    ok = append_str(&b, line) && cm_buf_append(&b, body, len) == 0 && append_str(&b, "\r\n");
  } else if (ok && send_body) {
    ok = cm_buf_append(&b, body, len) == 0;
  }
  ok = ok && cm_send(c, cm_buf_data(&b), b.len);
  cm_buf_free(&b);
  if (!ok) return false;
  if (st != NULL && bi.chunked && !no_body) st->chunked_reply = true;
  if (close_after && !(bi.chunked && !no_body)) cm_drain(c);
  return true;
}

bool cm__http_reply_head(struct cm_conn *c, int status, const char *headers, uint64_t body_len,
                         bool *send_body) {
  struct cm__http_block bi;
  if (status < 200 || status > 999 || !cm__http_scan_block(headers, &bi)) return false;
  if (bi.chunked || bi.has_length) return false;
  struct cm__http_conn *st = cm__http_conn_of(c);
  struct cm_buf b = {0};
  bool ok = build_head(&b, st, status, headers, &bi, body_len) && cm_send(c, cm_buf_data(&b), b.len);
  cm_buf_free(&b);
  *send_body = ok && status != 204 && status != 304 && !(st != NULL && st->is_head);
  return ok;
}

void cm__http_reply_end(struct cm_conn *c) {
  struct cm__http_conn *st = cm__http_conn_of(c);
  if (st != NULL && st->close_after) cm_drain(c);
}

bool cm_http_chunk(struct cm_conn *c, const void *data, size_t len) {
  struct cm__http_conn *st = cm__http_conn_of(c);
  bool ok = true;
  if (st == NULL || !st->is_head) { /* a reply to HEAD has no body at all */
    char size[32];
    int n = snprintf(size, sizeof(size), "%zx\r\n", len);
    struct cm_buf b = {0};
    ok = cm_buf_append(&b, size, (size_t) n) == 0 && (len == 0 || cm_buf_append(&b, data, len) == 0) &&
         cm_buf_append(&b, "\r\n", 2) == 0 && cm_send(c, cm_buf_data(&b), b.len);
    cm_buf_free(&b);
  }
  if (ok && len == 0 && st != NULL) {
    st->chunked_reply = false;
    if (st->close_after) cm_drain(c);
  }
  return ok;
}

bool cm_http_sse(struct cm_conn *c, struct cm_str event, struct cm_str data) {
  struct cm_buf b = {0};
  bool ok = true;
  if (event.len > 0) {
    if (memchr(event.buf, '\n', event.len) != NULL || memchr(event.buf, '\r', event.len) != NULL) {
      return false;
    }
    ok = append_str(&b, "event: ") && cm_buf_append(&b, event.buf, event.len) == 0 &&
         append_str(&b, "\n");
  }
  /* Each line of data becomes a data: field; the client joins them with \n. */
  size_t i = 0;
  do {
    const char *nl = data.len > i ? memchr(data.buf + i, '\n', data.len - i) : NULL;
    size_t end = nl != NULL ? (size_t) (nl - data.buf) : data.len;
    size_t stop = end > i && data.buf[end - 1] == '\r' ? end - 1 : end;
    ok = ok && append_str(&b, "data: ") && (stop == i || cm_buf_append(&b, data.buf + i, stop - i) == 0) &&
         append_str(&b, "\n");
    i = end + 1;
  } while (ok && i <= data.len);
  ok = ok && append_str(&b, "\n") && cm_http_chunk(c, cm_buf_data(&b), b.len);
  cm_buf_free(&b);
  return ok;
}
