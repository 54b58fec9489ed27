/*
 * HTTP/1.1 message heads: request line, status line, header fields, and the
 * framing decision of RFC 9112 section 6.3.
 *
 * One forward scan, never past min(len, max_head) bytes.  When the bytes run
 * out the answer is "need more" (0), or 431 when the caller already holds
 * more than max_head bytes.  Every error depends only on the bytes before the
 * point where it is detected, so feeding a message in pieces gives the same
 * answer as feeding it whole.  A one-shot call rescans what it was given;
 * callers that receive a head in pieces use cm_http_scan_request/_response_to
 * (end of this file), which keep their place between calls.
 */
#include <string.h>

#include "cymongoose.h"
#include "http/chars.h"

#define DEFAULT_MAX_HEAD 16384
#define DEFAULT_MAX_URI 8192
#define DEFAULT_MAX_BODY (16u * 1024u * 1024u)
#define DEFAULT_MAX_CHUNK_LINE 1024

struct cm_http_limits cm_http_limits_resolve(const struct cm_http_limits *lim) {
  struct cm_http_limits r = {0};
  if (lim != NULL) r = *lim;
  if (r.max_head == 0) r.max_head = DEFAULT_MAX_HEAD;
  if (r.max_headers == 0 || r.max_headers > CM_HTTP_MAX_HEADERS) r.max_headers = CM_HTTP_MAX_HEADERS;
  if (r.max_uri == 0) r.max_uri = DEFAULT_MAX_URI;
  if (r.max_body == 0) r.max_body = DEFAULT_MAX_BODY;
  if (r.max_chunk_line == 0) r.max_chunk_line = DEFAULT_MAX_CHUNK_LINE;
  return r;
}

struct scan {
  const char *buf;
  size_t len; /* bytes the caller has */
  size_t n;   /* bytes we may look at: min(len, max_head) */
  size_t i;   /* cursor */
  struct cm_http_limits lim;
  struct cm_http_msg *hm;
};

static int fail(struct cm_http_msg *hm, int err, const char *why) {
  hm->error = why;
  return err;
}

/* The scan reached s->n with the head unfinished. */
static int need_more(struct scan *s) {
  if (s->len > s->lim.max_head) {
    return fail(s->hm, CM_HTTP_ERR_HDRS_TOO_LARGE, "header block too large");
  }
  return 0;
}

/* Returns from the calling function unless k bytes are available at s->i. */
#define NEED(s, k)                                   \
  do {                                               \
    if ((s)->i + (k) > (s)->n) return need_more(s);  \
  } while (0)

/* Propagates "need more" (0) and errors (< 0). */
#define TRY(expr)             \
  do {                        \
    int r_ = (expr);          \
    if (r_ <= 0) return r_;   \
  } while (0)

static struct cm_str view(const struct scan *s, size_t from, size_t to) {
  return cm_str_n(s->buf + from, to - from);
}

/* Consumes CRLF at the cursor. */
static int expect_crlf(struct scan *s, const char *why) {
  NEED(s, 1);
  if (s->buf[s->i] != '\r') return fail(s->hm, CM_HTTP_ERR_BAD, why);
  NEED(s, 2);
  if (s->buf[s->i + 1] != '\n') return fail(s->hm, CM_HTTP_ERR_BAD, "bare CR");
  s->i += 2;
  return 1;
}

/* RFC 9112 section 2.2: empty lines before the start line are ignored. */
static int skip_leading_crlf(struct scan *s) {
  for (;;) {
    NEED(s, 1);
    if (s->buf[s->i] == '\n') return fail(s->hm, CM_HTTP_ERR_BAD, "bare LF");
    if (s->buf[s->i] != '\r') return 1;
    TRY(expect_crlf(s, "bare CR"));
  }
}

/* HTTP-version = "HTTP/" DIGIT "." DIGIT */
static int parse_version(struct scan *s) {
  static const char pattern[] = "HTTP/0.0";
  for (size_t k = 0; k < 8; k++) {
    NEED(s, k + 1);
    unsigned char c = (unsigned char) s->buf[s->i + k];
    bool ok = pattern[k] == '0' ? (c >= '0' && c <= '9') : c == (unsigned char) pattern[k];
    if (!ok) return fail(s->hm, CM_HTTP_ERR_BAD, "malformed HTTP version");
  }
  int major = s->buf[s->i + 5] - '0', minor = s->buf[s->i + 7] - '0';
  if (major != 1) return fail(s->hm, CM_HTTP_ERR_VERSION, "HTTP version not supported");
  s->hm->minor_version = minor == 0 ? 0 : 1; /* 1.2+ reads as 1.1, RFC 9110 6.2 */
  s->hm->proto = view(s, s->i, s->i + 8);
  s->i += 8;
  return 1;
}

static bool method_is(struct cm_str m, const char *name) {
  return m.len == strlen(name) && memcmp(m.buf, name, m.len) == 0;
}

/* scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) (RFC 3986 3.1);
 * returns its length when t starts with scheme "://", else 0. */
static size_t scheme_len(struct cm_str t) {
  size_t k = 0;
  while (k < t.len && (((t.buf[k] | 0x20) >= 'a' && (t.buf[k] | 0x20) <= 'z') ||
                       (k > 0 && ((t.buf[k] >= '0' && t.buf[k] <= '9') || t.buf[k] == '+' ||
                                  t.buf[k] == '-' || t.buf[k] == '.')))) {
    k++;
  }
  return k > 0 && t.len - k >= 3 && memcmp(t.buf + k, "://", 3) == 0 ? k : 0;
}

/*
 * The four forms of request-target (RFC 9112 section 3.2), each only where
 * it belongs: origin-form "/p?q"; absolute-form "http://h/p?q" (uri becomes
 * its path, so routes match as for origin-form); authority-form "h:443"
 * with CONNECT and only there; asterisk-form "*" with OPTIONS and only
 * there.  A fragment is never sent (RFC 9112 3.2: the target has none).
 */
static int target_form(struct cm_http_msg *hm, struct cm_str t) {
  hm->target = t;
  if (memchr(t.buf, '#', t.len) != NULL) return fail(hm, CM_HTTP_ERR_BAD, "fragment in request-target");
  bool connect = method_is(hm->method, "CONNECT");
  if (t.len == 1 && t.buf[0] == '*') {
    if (!method_is(hm->method, "OPTIONS")) return fail(hm, CM_HTTP_ERR_BAD, "asterisk-form without OPTIONS");
    hm->uri = t;
    return 1;
  }
  if (connect) {
    /* authority-form = uri-host ":" port: no path, query or userinfo */
    const char *colon = NULL;
    for (size_t k = 0; k < t.len && t.buf[k] != '/' && t.buf[k] != '?' && t.buf[k] != '@'; k++) {
      if (t.buf[k] == ':') colon = t.buf + k;
    }
    if (memchr(t.buf, '/', t.len) != NULL || memchr(t.buf, '?', t.len) != NULL ||
        memchr(t.buf, '@', t.len) != NULL || colon == NULL || colon == t.buf || colon == t.buf + t.len - 1) {
      return fail(hm, CM_HTTP_ERR_BAD, "CONNECT needs an authority-form target (host:port)");
    }
    hm->uri = t;
    return 1;
  }
  struct cm_str path = t;
  if (t.buf[0] != '/') {
    size_t k = scheme_len(t);
    if (k == 0) return fail(hm, CM_HTTP_ERR_BAD, "request-target is neither a path nor an absolute URI");
    const char *auth = t.buf + k + 3, *end = t.buf + t.len, *p = auth;
    while (p < end && *p != '/' && *p != '?') p++;
    if (p == auth) return fail(hm, CM_HTTP_ERR_BAD, "absolute-form without a host");
    path = cm_str_n(p, (size_t) (end - p));
  }
  const char *q = memchr(path.buf, '?', path.len);
  if (q != NULL) {
    hm->query = cm_str_n(q + 1, (size_t) (path.buf + path.len - q - 1));
    path.len = (size_t) (q - path.buf);
  }
  /* "http://h" and "http://h?q": the empty path means "/" (RFC 9110 4.2.3) */
  hm->uri = path.len > 0 ? path : cm_str_c("/");
  return 1;
}

/* request-line = method SP request-target SP HTTP-version CRLF */
static int parse_request_line(struct scan *s) {
  struct cm_http_msg *hm = s->hm;
  size_t start = s->i;
  for (;;) {
    NEED(s, 1);
    if (!cm__http_is_tchar((unsigned char) s->buf[s->i])) break;
    s->i++;
  }
  if (s->i == start || s->buf[s->i] != ' ') {
    return fail(hm, CM_HTTP_ERR_BAD, "invalid method");
  }
  hm->method = view(s, start, s->i);
  s->i++;

  size_t target = s->i;
  for (;;) {
    if (s->i - target > s->lim.max_uri) {
      return fail(hm, CM_HTTP_ERR_URI_TOO_LONG, "request-target too long");
    }
    NEED(s, 1);
    unsigned char c = (unsigned char) s->buf[s->i];
    if (c <= ' ' || c == 0x7f) break;
    s->i++;
  }
  if (s->i == target) return fail(hm, CM_HTTP_ERR_BAD, "empty request-target");
  if (s->buf[s->i] == '\r') return fail(hm, CM_HTTP_ERR_BAD, "missing HTTP version");
  if (s->buf[s->i] != ' ') return fail(hm, CM_HTTP_ERR_BAD, "invalid character in request-target");
  size_t target_end = s->i++;
  TRY(parse_version(s));
  TRY(target_form(hm, view(s, target, target_end)));
  return expect_crlf(s, "junk after HTTP version");
}

/* status-line = HTTP-version SP status-code SP [ reason-phrase ] CRLF
 * A missing SP before an empty reason is tolerated (common in the wild). */
static int parse_status_line(struct scan *s) {
  struct cm_http_msg *hm = s->hm;
  TRY(parse_version(s));
  NEED(s, 1);
  if (s->buf[s->i] != ' ') return fail(hm, CM_HTTP_ERR_BAD, "expected SP after version");
  s->i++;
  int status = 0;
  for (int k = 0; k < 3; k++) {
    NEED(s, 1);
    unsigned char c = (unsigned char) s->buf[s->i];
    if (c < '0' || c > '9') return fail(hm, CM_HTTP_ERR_BAD, "malformed status code");
    status = status * 10 + (c - '0');
    s->i++;
  }
  if (status < 100) return fail(hm, CM_HTTP_ERR_BAD, "malformed status code");
  hm->status = status;
  NEED(s, 1);
  if (s->buf[s->i] == ' ') {
    size_t start = ++s->i;
    for (;;) {
      NEED(s, 1);
      if (!cm__http_is_value_char((unsigned char) s->buf[s->i])) break;
      s->i++;
    }
    hm->reason = view(s, start, s->i);
  }
  return expect_crlf(s, "invalid character in status line");
}

/* field-line = field-name ":" OWS field-value OWS CRLF.  Returns 1 after a
 * header line, 2 after the empty line that ends the head, 0 or an error. */
static int parse_header_line(struct scan *s) {
  struct cm_http_msg *hm = s->hm;
  {
    NEED(s, 1);
    unsigned char c = (unsigned char) s->buf[s->i];
    if (c == '\r') {
      TRY(expect_crlf(s, "bare CR"));
      return 2;
    }
    if (c == '\n') return fail(hm, CM_HTTP_ERR_BAD, "bare LF");
    if (cm__http_is_ows(c)) return fail(hm, CM_HTTP_ERR_BAD, "obs-fold or whitespace before a header");
    if (hm->num_headers >= s->lim.max_headers) {
      return fail(hm, CM_HTTP_ERR_HDRS_TOO_LARGE, "too many headers");
    }
    size_t name = s->i;
    for (;;) {
      NEED(s, 1);
      if (!cm__http_is_tchar((unsigned char) s->buf[s->i])) break;
      s->i++;
    }
    if (s->buf[s->i] != ':') {
      if (cm__http_is_ows((unsigned char) s->buf[s->i])) {
        return fail(hm, CM_HTTP_ERR_BAD, "whitespace before colon");
      }
      return fail(hm, CM_HTTP_ERR_BAD, "invalid character in header name");
    }
    if (s->i == name) return fail(hm, CM_HTTP_ERR_BAD, "empty header name");
    size_t name_end = s->i++;
    for (;;) {
      NEED(s, 1);
      if (!cm__http_is_ows((unsigned char) s->buf[s->i])) break;
      s->i++;
    }
    size_t value = s->i;
    for (;;) {
      NEED(s, 1);
      if (!cm__http_is_value_char((unsigned char) s->buf[s->i])) break;
      s->i++;
    }
    size_t value_end = s->i;
    while (value_end > value && cm__http_is_ows((unsigned char) s->buf[value_end - 1])) value_end--;
    if (s->buf[s->i] == '\n') return fail(hm, CM_HTTP_ERR_BAD, "bare LF");
    TRY(expect_crlf(s, "control character in header value"));
    struct cm_http_header *h = &hm->headers[hm->num_headers++];
    h->name = view(s, name, name_end);
    h->value = view(s, value, value_end);
    return 1;
  }
}

/* Header lines until the empty line. */
static int parse_headers(struct scan *s) {
  for (;;) {
    int r = parse_header_line(s);
    if (r != 1) return r <= 0 ? r : 1;
  }
}

static bool name_is(struct cm_str a, const char *b) {
  size_t n = strlen(b);
  if (a.len != n) return false;
  for (size_t i = 0; i < n; i++) {
    if (cm__http_lower((unsigned char) a.buf[i]) != (unsigned char) b[i]) return false;
  }
  return true;
}

/* Walks the elements of a comma-separated list: *elem gets the next element
 * with OWS trimmed (possibly empty).  Returns false when none is left. */
static bool next_element(struct cm_str *list, struct cm_str *elem) {
  if (list->buf == NULL) return false;
  const char *p = list->buf, *end = p + list->len;
  const char *comma = memchr(p, ',', list->len);
  const char *stop = comma != NULL ? comma : end;
  while (p < stop && cm__http_is_ows((unsigned char) *p)) p++;
  const char *e = stop;
  while (e > p && cm__http_is_ows((unsigned char) e[-1])) e--;
  *elem = cm_str_n(p, (size_t) (e - p));
  if (comma != NULL) {
    *list = cm_str_n(comma + 1, (size_t) (end - comma - 1));
  } else {
    *list = cm_str_n(NULL, 0);
  }
  return true;
}

/* Content-Length = 1*DIGIT, possibly repeated as a list or over several
 * lines; every element must be the same number (RFC 9110 section 8.6). */
static int content_length(struct cm_http_msg *hm, bool *present, uint64_t *value) {
  *present = false;
  for (size_t h = 0; h < hm->num_headers; h++) {
    if (!name_is(hm->headers[h].name, "content-length")) continue;
    struct cm_str list = hm->headers[h].value, elem;
    while (next_element(&list, &elem)) {
      if (elem.len == 0) return fail(hm, CM_HTTP_ERR_BAD, "empty Content-Length");
      uint64_t v = 0;
      for (size_t k = 0; k < elem.len; k++) {
        unsigned char c = (unsigned char) elem.buf[k];
        if (c < '0' || c > '9') return fail(hm, CM_HTTP_ERR_BAD, "invalid Content-Length");
        /* Saturate instead of wrapping; anything this big is over max_body. */
        v = v > (UINT64_MAX - 9) / 10 ? UINT64_MAX : v * 10 + (uint64_t) (c - '0');
      }
      if (*present && v != *value) return fail(hm, CM_HTTP_ERR_BAD, "conflicting Content-Length");
      *present = true;
      *value = v;
    }
  }
  return 1;
}

enum { TE_NONE, TE_CHUNKED, TE_CHUNKED_AFTER_OTHERS, TE_NOT_CHUNKED };

/* Classifies Transfer-Encoding (all lines, in order). */
static int transfer_encoding(struct cm_http_msg *hm, int *kind) {
  size_t codings = 0;
  bool chunked_last = false;
  *kind = TE_NONE;
  for (size_t h = 0; h < hm->num_headers; h++) {
    if (!name_is(hm->headers[h].name, "transfer-encoding")) continue;
    struct cm_str list = hm->headers[h].value, elem;
    while (next_element(&list, &elem)) {
      if (elem.len == 0) continue; /* empty list elements are allowed */
      if (chunked_last) return fail(hm, CM_HTTP_ERR_BAD, "chunked is not the final transfer coding");
      size_t k = 0;
      while (k < elem.len && cm__http_is_tchar((unsigned char) elem.buf[k])) k++;
      if (k == 0) return fail(hm, CM_HTTP_ERR_BAD, "invalid Transfer-Encoding");
      struct cm_str coding = cm_str_n(elem.buf, k);
      chunked_last = name_is(coding, "chunked");
      if (chunked_last && k != elem.len) {
        return fail(hm, CM_HTTP_ERR_BAD, "parameters on chunked");
      }
      codings++;
    }
    /* A header line with only empty elements still says "some coding". */
    if (codings == 0) return fail(hm, CM_HTTP_ERR_BAD, "empty Transfer-Encoding");
  }
  if (codings == 0) return 1;
  if (!chunked_last) *kind = TE_NOT_CHUNKED;
  else *kind = codings == 1 ? TE_CHUNKED : TE_CHUNKED_AFTER_OTHERS;
  return 1;
}

static void connection_options(struct cm_http_msg *hm) {
  /* One pass over the headers and the Connection elements (it runs for
   * every message). */
  bool close = false, keep = false, upgrade = false, has_upgrade = false;
  for (size_t h = 0; h < hm->num_headers && h < CM_HTTP_MAX_HEADERS; h++) {
    struct cm_str name = hm->headers[h].name;
    if (name_is(name, "upgrade")) {
      has_upgrade = true;
      continue;
    }
    if (!name_is(name, "connection")) continue;
    struct cm_str list = hm->headers[h].value, elem;
    while (next_element(&list, &elem)) {
      if (name_is(elem, "close")) close = true;
      else if (name_is(elem, "keep-alive")) keep = true;
      else if (name_is(elem, "upgrade")) upgrade = true;
    }
  }
  hm->keep_alive = !close && (hm->minor_version == 1 || keep);
  hm->upgrade = upgrade && has_upgrade;
}

/* Framing of a message that may carry a body (RFC 9112 section 6.3 items
 * 3-7); is_request selects the request rules. */
static int body_framing(struct cm_http_msg *hm, bool is_request, const struct cm_http_limits *lim) {
  bool has_cl = false;
  uint64_t cl = 0;
  int te;
  TRY(transfer_encoding(hm, &te));
  TRY(content_length(hm, &has_cl, &cl));
  if (te != TE_NONE) {
    if (has_cl) return fail(hm, CM_HTTP_ERR_BAD, "both Content-Length and Transfer-Encoding");
    if (hm->minor_version == 0) return fail(hm, CM_HTTP_ERR_BAD, "Transfer-Encoding in HTTP/1.0");
    if (te == TE_NOT_CHUNKED) {
      if (is_request) return fail(hm, CM_HTTP_ERR_BAD, "final transfer coding is not chunked");
      hm->framing = CM_HTTP_BODY_UNTIL_CLOSE;
      return 1;
    }
    if (te == TE_CHUNKED_AFTER_OTHERS) {
      return fail(hm, CM_HTTP_ERR_NOT_IMPLEMENTED, "unsupported transfer coding");
    }
    hm->framing = CM_HTTP_BODY_CHUNKED;
    return 1;
  }
  if (has_cl) {
    if (cl > lim->max_body) return fail(hm, CM_HTTP_ERR_BODY_TOO_LARGE, "body too large");
    hm->framing = CM_HTTP_BODY_LENGTH;
    hm->content_length = cl;
    return 1;
  }
  hm->framing = is_request ? CM_HTTP_BODY_NONE : CM_HTTP_BODY_UNTIL_CLOSE;
  return 1;
}

/* RFC 9112 section 3.2: exactly one Host on HTTP/1.1, and a sane value. */
static int check_host(struct cm_http_msg *hm) {
  struct cm_str *host = NULL;
  for (size_t h = 0; h < hm->num_headers; h++) {
    if (!name_is(hm->headers[h].name, "host")) continue;
    if (host != NULL) return fail(hm, CM_HTTP_ERR_BAD, "more than one Host");
    host = &hm->headers[h].value;
  }
  if (host == NULL) {
    return hm->minor_version == 1 ? fail(hm, CM_HTTP_ERR_BAD, "missing Host") : 1;
  }
  for (size_t k = 0; k < host->len; k++) {
    unsigned char c = (unsigned char) host->buf[k];
    if (c <= ' ' || c == ',' || c == '/' || c == '\\' || c == '@' || c >= 0x7f) {
      return fail(hm, CM_HTTP_ERR_BAD, "invalid Host");
    }
  }
  return 1;
}

static void reset(struct cm_http_msg *hm) {
  struct cm_str none = {NULL, 0};
  hm->method = hm->uri = hm->query = hm->target = hm->path = hm->proto = hm->reason = none;
  hm->head = hm->body = hm->message = none;
  hm->num_headers = 0;
  hm->content_length = 0;
  hm->status = 0;
  hm->minor_version = 0;
  hm->framing = CM_HTTP_BODY_NONE;
  hm->keep_alive = hm->expect_continue = hm->upgrade = false;
  hm->error = NULL;
}

/* Sets head, body and message views once the head ends at s->i. */
static int finish(struct scan *s, size_t head_start) {
  struct cm_http_msg *hm = s->hm;
  size_t avail = s->len - s->i;
  hm->head = view(s, head_start, s->i);
  hm->body = cm_str_n(s->buf + s->i, 0);
  if (hm->framing == CM_HTTP_BODY_LENGTH) {
    hm->body.len = hm->content_length < avail ? (size_t) hm->content_length : avail;
  } else if (hm->framing == CM_HTTP_BODY_UNTIL_CLOSE) {
    hm->body.len = avail;
    hm->keep_alive = false;
  }
  hm->message = cm_str_n(hm->head.buf, hm->head.len + hm->body.len);
  return (int) s->i;
}

static void scan_init(struct scan *s, const char *buf, size_t len, struct cm_http_msg *hm,
                      const struct cm_http_limits *lim) {
  s->buf = buf;
  s->len = len;
  s->lim = cm_http_limits_resolve(lim);
  /* The return value is an int: keep heads far below INT_MAX. */
  if (s->lim.max_head > (1u << 30)) s->lim.max_head = 1u << 30;
  s->n = len < s->lim.max_head ? len : s->lim.max_head;
  s->i = 0;
  s->hm = hm;
  reset(hm);
}

int cm_http_parse_request(const char *buf, size_t len, struct cm_http_msg *hm,
                          const struct cm_http_limits *lim) {
  struct scan s;
  scan_init(&s, buf, len, hm, lim);
  TRY(skip_leading_crlf(&s));
  size_t head_start = s.i;
  TRY(parse_request_line(&s));
  TRY(parse_headers(&s));
  TRY(check_host(hm));
  TRY(body_framing(hm, true, &s.lim));
  connection_options(hm);
  if (hm->minor_version == 1) {
    struct cm_str *expect = cm_http_get_header(hm, "expect");
    hm->expect_continue = expect != NULL && name_is(*expect, "100-continue");
  }
  return finish(&s, head_start);
}

int cm_http_parse_response_to(struct cm_str req_method, const char *buf, size_t len,
                              struct cm_http_msg *hm, const struct cm_http_limits *lim) {
  struct scan s;
  scan_init(&s, buf, len, hm, lim);
  TRY(skip_leading_crlf(&s));
  size_t head_start = s.i;
  TRY(parse_status_line(&s));
  TRY(parse_headers(&s));
  int st = hm->status;
  bool no_body = (st >= 100 && st < 200) || st == 204 || st == 304 ||
                 (req_method.buf != NULL && name_is(req_method, "head")) ||
                 (req_method.buf != NULL && name_is(req_method, "connect") && st >= 200 && st < 300);
  if (no_body) {
    hm->framing = CM_HTTP_BODY_NONE;
  } else {
    TRY(body_framing(hm, false, &s.lim));
  }
  connection_options(hm);
  return finish(&s, head_start);
}

int cm_http_parse_response(const char *buf, size_t len, struct cm_http_msg *hm,
                           const struct cm_http_limits *lim) {
  return cm_http_parse_response_to(cm_str_n(NULL, 0), buf, len, hm, lim);
}

/* ------------------------------------------------- heads in pieces */

/* Validates the line at st->line as the parser would see it: the start line
 * or one header line.  Returns 1 when it is complete and valid (st moves past
 * it), 2 when it was the empty line ending the head, 0 when it is valid so
 * far but incomplete, or an error. */
static int scan_line(struct cm_http_scan *st, bool is_request, const char *buf, size_t len,
                     struct cm_http_msg *hm, const struct cm_http_limits *lim) {
  struct scan s;
  scan_init(&s, buf, len, hm, lim);
  s.i = st->line;
  int r;
  if (!st->started) {
    if (s.i < s.n && buf[s.i] == '\n') {
      r = fail(hm, CM_HTTP_ERR_BAD, "bare LF");
    } else if (s.i < s.n && buf[s.i] == '\r') {
      r = expect_crlf(&s, "bare CR"); /* an empty line before the start line: skipped */
    } else {
      r = is_request ? parse_request_line(&s) : parse_status_line(&s);
      if (r == 1) st->started = true;
    }
  } else {
    hm->num_headers = st->headers; /* for the header count limit */
    r = parse_header_line(&s);
    if (r == 1) st->headers++;
  }
  if (r == 1) {
    st->line = st->seen = s.i;
    st->checked = 0;
  }
  return r;
}

static int scan_head(struct cm_http_scan *st, bool is_request, struct cm_str req_method, const char *buf,
                     size_t len, struct cm_http_msg *hm, const struct cm_http_limits *lim) {
  struct cm_http_limits l = cm_http_limits_resolve(lim);
  size_t n = len < l.max_head ? len : l.max_head;
  /* The usual case: the whole head is there at the first call (nothing
   * scanned yet).  One parse gives the answer the line-by-line walk would
   * end with (see the top of this file), at half the cost.  Only a complete,
   * valid head is answered here: an incomplete one goes the incremental way,
   * which moves st on (so this is tried once per head), and an invalid one
   * too, so that errors are always the scan's. */
  if (st->seen == 0 && st->line == 0 && !st->started && n >= 4 &&
      (memcmp(buf + n - 4, "\r\n\r\n", 4) == 0 || memmem(buf, n, "\r\n\r\n", 4) != NULL)) {
    int r = is_request ? cm_http_parse_request(buf, len, hm, lim)
                       : cm_http_parse_response_to(req_method, buf, len, hm, lim);
    if (r > 0) return r;
  }
  for (;;) {
    if (st->seen < st->line) st->seen = st->line;
    const char *lf = st->seen < n ? memchr(buf + st->seen, '\n', n - st->seen) : NULL;
    if (lf == NULL) {
      st->seen = n;
      /* An incomplete line: checked again only once it grew by half (an
       * amortised O(1) per byte), or when the head outgrew its limit (even
       * when its last complete line ends exactly at max_head). */
      size_t have = n - st->line;
      if (len <= l.max_head && (have == 0 || have < st->checked + st->checked / 2 + 1)) return 0;
      st->checked = have;
      int r = scan_line(st, is_request, buf, len, hm, lim);
      if (r <= 0) return r; /* 431 once len > max_head: the sub-parser says so */
      continue;
    }
    st->seen = (size_t) (lf - buf) + 1;
    int r = scan_line(st, is_request, buf, len, hm, lim);
    if (r <= 0) return r;
    if (r == 2) break; /* the end of the head: parse it whole, once */
  }
  return is_request ? cm_http_parse_request(buf, len, hm, lim)
                    : cm_http_parse_response_to(req_method, buf, len, hm, lim);
}

int cm_http_scan_request(struct cm_http_scan *st, const char *buf, size_t len, struct cm_http_msg *hm,
                         const struct cm_http_limits *lim) {
  return scan_head(st, true, cm_str_n(NULL, 0), buf, len, hm, lim);
}

int cm_http_scan_response_to(struct cm_http_scan *st, struct cm_str req_method, const char *buf,
                             size_t len, struct cm_http_msg *hm, const struct cm_http_limits *lim) {
  return scan_head(st, false, req_method, buf, len, hm, lim);
}
