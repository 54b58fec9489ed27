/*
 * cymongoose: HTTP/1.1 codec (RFC 9110, RFC 9112).  Included by cymongoose.h.
 *
 * The codec is pure: no I/O, no allocation, no global state.  Parsers return
 * views (struct cm_str) into the caller's buffer; a view stays valid as long
 * as the caller's bytes stay where they are, unchanged.  Nothing here is
 * ever read past the length the caller gave.
 *
 * Line endings are strict: every line must end in CRLF.  A bare LF or a bare
 * CR anywhere in a header block or in chunked framing is a 400 error
 * (RFC 9112 section 2.2 allows a lenient LF; we refuse it, because parsers
 * that disagree about line ends are how requests get smuggled).
 */
#ifndef CYMONGOOSE_HTTP_H
#define CYMONGOOSE_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default) /* exported: see cymongoose.h */

/* Room for header lines in struct cm_http_msg (compile-time ceiling; the
 * runtime limit is cm_http_limits.max_headers). */
#ifndef CM_HTTP_MAX_HEADERS
#define CM_HTTP_MAX_HEADERS 64
#endif

/* Error codes returned by the parsers.  Each maps to a status code with
 * cm_http_err_status(); hm->error (when the parser had a struct cm_http_msg)
 * holds a sentence saying what exactly was wrong. */
enum {
  CM_HTTP_ERR_BAD = -1,             /* 400 malformed message */
  CM_HTTP_ERR_HDRS_TOO_LARGE = -2,  /* 431 header block or header count over the limit */
  CM_HTTP_ERR_BODY_TOO_LARGE = -3,  /* 413 body over limits.max_body */
  CM_HTTP_ERR_URI_TOO_LONG = -4,    /* 414 request-target over limits.max_uri */
  CM_HTTP_ERR_VERSION = -5,         /* 505 HTTP version other than 1.x */
  CM_HTTP_ERR_NOT_IMPLEMENTED = -6  /* 501 transfer coding we cannot decode */
};

/* Status code for a CM_HTTP_ERR_* value (400 for unknown values). */
int cm_http_err_status(int err);

/* Reason phrase of a status code ("Not Found"); "" for unknown codes.
 * Returns a static string. */
const char *cm_http_status_text(int status);

/*
 * Limits enforced by the parsers.  A field left 0 takes its default, so
 * `struct cm_http_limits lim = {.max_body = 1024};` is a complete setting.
 * Passing NULL instead of a struct means all defaults.
 */
struct cm_http_limits {
  size_t max_head;       /* request/status line + header lines, and chunked
                            trailers: 16 KiB -> 431 */
  size_t max_headers;    /* header lines: 64 (at most CM_HTTP_MAX_HEADERS) -> 431 */
  size_t max_uri;        /* request-target bytes: 8 KiB -> 414 */
  uint64_t max_body;     /* declared or decoded body bytes: 16 MiB -> 413 */
  size_t max_chunk_line; /* chunk-size line with extensions: 1 KiB -> 400 */
};

/* The limits after defaults are applied (lim may be NULL). */
struct cm_http_limits cm_http_limits_resolve(const struct cm_http_limits *lim);

struct cm_http_header {
  struct cm_str name;  /* as sent; compare case-insensitively */
  struct cm_str value; /* leading and trailing SP/HTAB removed */
};

/* How the body of a message is delimited (RFC 9112 section 6.3). */
enum cm_http_framing {
  CM_HTTP_BODY_NONE = 0,        /* no body (requests without CL/TE, HEAD, 1xx/204/304) */
  CM_HTTP_BODY_LENGTH = 1,      /* exactly content_length bytes follow the head */
  CM_HTTP_BODY_CHUNKED = 2,     /* chunked: decode with cm_http_chunked_decode() */
  CM_HTTP_BODY_UNTIL_CLOSE = 3  /* response body runs until the peer closes */
};

/*
 * A parsed request or response.  Every struct cm_str is a view into the
 * buffer given to the parser (empty with buf NULL when absent).
 */
struct cm_http_msg {
  struct cm_str method;  /* request: "GET"; response: empty */
  struct cm_str uri;     /* request: the path of the target, raw (still
                            percent-encoded), up to '?': "/a%20b" for
                            "/a%20b?x" and for "http://host/a%20b?x"
                            (absolute-form; "/" when its path is empty);
                            the whole target for "*" and authority-form
                            ("host:443"); response: empty.  For routing,
                            not for access checks: see path */
  struct cm_str query;   /* after '?', without it; empty when none */
  struct cm_str target;  /* request: the request-target exactly as sent */
  /* request: uri percent-decoded and normalised ("/a b"): empty and "."
   * segments dropped, ".." resolved (never above "/"), a trailing '/'
   * kept.  This is the path cm_http_serve_dir() serves, so access checks
   * ("does it start with /private/?") must look at path, never at uri,
   * which "/%70rivate/", "//private/" or "/./private/" slip past.
   * Set by the server (cm_http_serve) before HTTP_HDRS and HTTP_MSG, where
   * it points into storage of the connection valid during the event; the
   * parsers leave it empty (see cm_http_normalize_path).  Empty for "*"
   * and authority-form targets. */
  struct cm_str path;
  struct cm_str proto;   /* "HTTP/1.1" */
  struct cm_str reason;  /* response: reason phrase (may be empty) */
  struct cm_http_header headers[CM_HTTP_MAX_HEADERS];
  size_t num_headers;
  struct cm_str head;    /* request/status line through the blank line */
  /* Body bytes present in the buffer: for BODY_LENGTH at most content_length
   * (the body is complete when body.len == content_length); for BODY_CHUNKED
   * empty until the chunked decoder ran (see cm_http_chunked_decode); for
   * BODY_UNTIL_CLOSE everything after the head. */
  struct cm_str body;
  struct cm_str message; /* head followed by body (contiguous) */
  uint64_t content_length; /* declared length for BODY_LENGTH, else 0 */
  int status;            /* response status code; 0 for requests */
  int minor_version;     /* 0 or 1 (HTTP/1.2+ is treated as 1.1) */
  uint8_t framing;       /* enum cm_http_framing */
  bool keep_alive;       /* connection may carry another message after this */
  bool expect_continue;  /* HTTP/1.1 request with "Expect: 100-continue" */
  bool upgrade;          /* "Connection: upgrade" with an Upgrade header */
  const char *error;     /* static text describing a parse error, else NULL */
};

/*
 * Parses the head of an HTTP request at buf[0..len).
 * Returns the number of bytes of the head (including CRLFs skipped before the
 * request line and the final blank line), 0 when more bytes are needed, or a
 * negative CM_HTTP_ERR_*.  Calling again with more bytes appended gives the
 * same outcome as one call with all of them.  On success *hm is filled in;
 * the body (if any) starts at buf + return value.
 * Rejected (400 unless noted): bad method or header-name characters, a space
 * before ':', obs-fold, control characters in values, bare CR or LF, a
 * request-target with controls, spaces or a '#' fragment, a target form
 * that does not fit the method (RFC 9112 3.2: "*" only with OPTIONS,
 * "host:port" only and always with CONNECT, otherwise "/path" or an
 * absolute URI "scheme://host/path"), a missing Host on HTTP/1.1, a
 * repeated or invalid Host, Content-Length with Transfer-Encoding, invalid or conflicting
 * Content-Length, Transfer-Encoding on HTTP/1.0 or whose final coding is not
 * chunked, other codings before chunked (501), versions other than 1.x (505),
 * and the limits (431, 413, 414).
 */
int cm_http_parse_request(const char *buf, size_t len, struct cm_http_msg *hm,
                          const struct cm_http_limits *lim);

/*
 * Progress through a head that arrives in pieces, so that each byte is
 * examined a bounded number of times however the head is split (a client
 * sending one byte per packet costs O(1) per byte, not a rescan of the whole
 * head): complete lines are validated once, the incomplete last line again
 * only each time it has grown by half, and the whole head is parsed once
 * when its blank line arrives.  Zero it (cm_http_scan_init) before the
 * first call for each message.
 */
struct cm_http_scan {
  size_t line;    /* internal: offset of the first incomplete line */
  size_t seen;    /* internal: bytes searched for the end of that line */
  size_t checked; /* internal: its length when last validated */
  size_t headers; /* internal: header lines complete before it */
  bool started;   /* internal: the start line is complete */
};

static inline void cm_http_scan_init(struct cm_http_scan *st) {
  struct cm_http_scan zero = {0, 0, 0, 0, false};
  *st = zero;
}

/*
 * cm_http_parse_request() for a head received in pieces: call it with the
 * same state each time bytes were appended (buf may move, its contents must
 * be kept).  Returns what cm_http_parse_request() returns on the same bytes,
 * except that an error inside the last, still incomplete line may be
 * reported as 0 ("need more") until that line has grown by half or ended,
 * or the head exceeds max_head.  *hm is filled in only when the head is
 * complete (a positive return) or on error (hm->error).
 */
int cm_http_scan_request(struct cm_http_scan *st, const char *buf, size_t len, struct cm_http_msg *hm,
                         const struct cm_http_limits *lim);

/* cm_http_scan_request() for responses, as cm_http_parse_response_to(). */
int cm_http_scan_response_to(struct cm_http_scan *st, struct cm_str req_method, const char *buf,
                             size_t len, struct cm_http_msg *hm, const struct cm_http_limits *lim);

/*
 * Percent-decodes and normalises the path uri (a request's hm->uri) into
 * dst (dst_len bytes including a NUL, which is written): the value
 * described at cm_http_msg.path.  Returns its length, or -1 when uri does
 * not start with '/', has a malformed escape or an escaped NUL (the HTTP
 * server answers such requests 400), or dst is too small (uri.len + 1 bytes
 * always suffice).
 */
int cm_http_normalize_path(struct cm_str uri, char *dst, size_t dst_len);

/* Parses the head of an HTTP response; as cm_http_parse_request() otherwise.
 * Framing assumes a request that was not HEAD or CONNECT. */
int cm_http_parse_response(const char *buf, size_t len, struct cm_http_msg *hm,
                           const struct cm_http_limits *lim);

/* Parses the head of a response to a request with method req_method: a
 * response to HEAD has no body, nor has a 2xx response to CONNECT. */
int cm_http_parse_response_to(struct cm_str req_method, const char *buf, size_t len,
                              struct cm_http_msg *hm, const struct cm_http_limits *lim);

/*
 * Incremental in-place decoder of a chunked body (RFC 9112 section 7.1).
 * Zero the struct (or call cm_http_chunked_init) before the first call.
 */
struct cm_http_chunked {
  size_t in;          /* raw bytes of buf consumed so far */
  size_t out;         /* decoded body bytes, contiguous at buf[0..out) */
  uint64_t remaining; /* internal: data bytes left in the current chunk */
  size_t line;        /* internal: length of the current size line */
  size_t trailer;     /* internal: bytes of trailer section */
  int state;          /* internal */
  int err;            /* the error once one happened (sticky) */
};

static inline void cm_http_chunked_init(struct cm_http_chunked *st) {
  memset(st, 0, sizeof(*st));
}

/*
 * Decodes the chunked body at buf[0..len), where buf is the first byte after
 * the head.  Call it again whenever more bytes have been appended (len grew);
 * buf may move between calls (a reallocated receive buffer) as long as its
 * contents are kept.  Only new bytes are examined: chunk payloads are moved
 * down so that the decoded body is contiguous at buf[0..st->out); bytes
 * between st->out and st->in are garbage afterwards, bytes from st->in on are
 * untouched (a pipelined next message starts at buf + st->in once done).
 * Chunk extensions are skipped (limited by max_chunk_line), trailer fields
 * are validated and skipped (limited by max_head).
 * Returns 1 when the last chunk and trailers are complete, 0 when more bytes
 * are needed, or a negative CM_HTTP_ERR_* (400 for bad sizes, missing CRLF,
 * bad trailers; 413 when the body exceeds max_body; 431 for huge trailers).
 * Errors are sticky.
 */
int cm_http_chunked_decode(struct cm_http_chunked *st, char *buf, size_t len,
                           const struct cm_http_limits *lim);

/*
 * The same decoder for a chunked body streamed by its reader (taken over
 * from the HTTP server with cm_http_detach) instead of kept whole: b is the
 * connection's receive buffer with the head already consumed, holding
 * *ready decoded body bytes the reader has not consumed yet, then raw bytes.
 * Decodes the raw bytes in place, moving their payload right after the
 * ready bytes and deleting the framing from b, and adds what it decoded to
 * *ready and to *total (the body so far, what lim->max_body bounds).  The
 * reader consumes from the front of b (cm_recv_consume) and subtracts that
 * from *ready, then calls again when more bytes arrive; st, *ready and
 * *total persist between calls (zero them first).  Returns as
 * cm_http_chunked_decode: 1 when the body has ended (bytes after *ready are
 * then the next message's), 0 when more bytes are needed, or a negative
 * CM_HTTP_ERR_* (sticky).  Limits as there: max_body over the whole body,
 * max_chunk_line per size line, max_head for the trailer section.
 */
int cm_http_chunked_stream(struct cm_http_chunked *st, struct cm_buf *b, size_t *ready,
                           uint64_t *total, const struct cm_http_limits *lim);

/* The value of the first header called name (case-insensitive), or NULL.
 * The pointer points into hm. */
struct cm_str *cm_http_get_header(struct cm_http_msg *hm, const char *name);

/* True when the comma-separated list value contains token (case-insensitive,
 * OWS around elements ignored), e.g. ("keep-alive, Upgrade", "upgrade"). */
bool cm_http_has_token(struct cm_str value, const char *token);

/* True when any header line called name has token in its list value. */
bool cm_http_header_has_token(const struct cm_http_msg *hm, const char *name, const char *token);

/*
 * The value of parameter var in a header value such as
 * `text/html; charset="utf-8"` or `form-data; name="f"; filename="a.txt"`:
 * a view into header_value, without quotes (backslash escapes inside quotes
 * are not undone).  Parameter names match case-insensitively.  Returns an
 * empty view with buf NULL when absent.
 */
struct cm_str cm_http_get_header_var(struct cm_str header_value, struct cm_str var);

/* Percent-decoding (cm_url_decode) and form variables (cm_http_var,
 * cm_http_get_var) are in cymongoose/util.h. */

/* One part of a multipart/form-data body; views into the body. */
struct cm_http_part {
  struct cm_str name;     /* Content-Disposition name, empty when none */
  struct cm_str filename; /* Content-Disposition filename, empty when none */
  struct cm_str body;     /* the part's bytes */
};

/*
 * Parses the part of a multipart body that starts at offset (0 for the
 * first).  The boundary is taken from the body's first line ("--boundary").
 * Returns the offset of the next part, to pass to the next call, or 0 when
 * there are no more parts or the body is malformed or truncated (then *part
 * is zeroed).  part may be NULL to skip.
 */
size_t cm_http_parse_multipart(struct cm_str body, size_t offset, struct cm_http_part *part);

/*
 * Basic credentials of a request (RFC 7617): decodes the Authorization
 * header and writes the user id and password, NUL-terminated, into the
 * caller's buffers.  Returns false when there is no Basic Authorization
 * header, it is not valid base64 of "user:password", either part contains
 * control characters, or a part does not fit its buffer.
 */
bool cm_http_basic_creds(struct cm_http_msg *hm, char *user, size_t ulen, char *pass, size_t plen);


/* ------------------------------------------------------------- server */

/* A timeout field set to this is off (0 means "the default"). */
#define CM_HTTP_TIMEOUT_OFF UINT64_MAX

/*
 * Access log: one line per answered request, in the Common Log Format
 *   127.0.0.1 - - [29/Nov/2026:20:01:00 +0000] "GET /a HTTP/1.1" 200 1234
 * or the Combined format (the same, then "Referer" "User-Agent").  The sink
 * receives the line without a newline; line is valid only during the call,
 * which happens in the polling thread once the reply is complete (after the
 * last chunk of a chunked reply, once a file is queued).  The byte count is
 * the body sent ("-" when none).  Requests refused before they were parsed
 * (400, 431, 408...) are not logged, nor those whose connection is taken
 * over (cm_http_detach: a WebSocket upgrade, a streamed upload).
 */
enum { CM_HTTP_LOG_COMMON = 0, CM_HTTP_LOG_COMBINED = 1 };
typedef void (*cm_http_access_log_fn)(const char *line, size_t len, void *arg);
/* A ready sink: arg is a file descriptor cast with (void *)(intptr_t)fd; each
 * line and its newline go out in one write(2), so lines stay whole. */
void cm_http_access_log_fd(const char *line, size_t len, void *arg);

/*
 * Options of an HTTP server; a field left 0 takes its default.  The
 * deadlines live in the manager's timer heap (one timer per connection,
 * moved only when a deadline comes earlier), so they cost nothing per turn.
 */
struct cm_http_serve_opts {
  struct cm_http_limits limits; /* codec limits (see above) */
  uint64_t header_timeout_ms;   /* a started head must complete within this:
                                   30 s, then 408 and close */
  uint64_t body_timeout_ms;     /* a pending body must not stall (no byte)
                                   this long, and must arrive within this
                                   plus 1 s per body_min_rate bytes received:
                                   60 s (nginx's client_body_timeout), then
                                   408 and close */
  uint64_t body_min_rate;       /* bytes/s that extend the body deadline by
                                   1 s each: 500 (a client trickling a byte
                                   every few seconds cannot hold the connection
                                   longer than body_timeout_ms) */
  uint64_t idle_timeout_ms;     /* close connections idle this long with no
                                   request under way and nothing pending: 75 s
                                   (nginx's keepalive_timeout); never while a
                                   reply is pending */
  cm_http_access_log_fn access_log; /* NULL (default): no access log */
  void *access_log_arg;             /* passed to access_log; must outlive every
                                       connection of the listener */
  int access_log_format;            /* CM_HTTP_LOG_COMMON or CM_HTTP_LOG_COMBINED */
};

/*
 * Makes c speak HTTP/1.1 as a server.  c is a listener (its accepted
 * connections inherit the protocol) or an accepted connection.  opts is
 * copied; NULL means defaults.  Returns false when memory runs out.
 *
 * On an HTTP connection the protocol handler parses requests from c->recv
 * and delivers, per request, CM_EV_HTTP_HDRS once the head is complete,
 * then CM_EV_HTTP_MSG once the body is complete (chunked bodies are decoded
 * in place, so hm->body is contiguous).  The struct cm_http_msg and its
 * views are valid only during the handler call.  After HTTP_MSG returns the
 * request's bytes are consumed from c->recv (handlers must not consume them)
 * and the next pipelined request is parsed.  "Expect: 100-continue" is
 * answered with 100 Continue.  Malformed requests get 400/413/414/431/501/
 * 505 with a short text body, and the connection is drained and closed.
 * After a request that does not keep the connection alive (HTTP/1.0 without
 * keep-alive, "Connection: close") no further request is read, and the
 * connection closes once cm_http_reply() or the last cm_http_chunk() has
 * been queued.  A handler that changes c->pfn during HTTP_MSG (a WebSocket
 * upgrade) takes the connection over: the request is consumed, parsing
 * stops, and the new protocol must first call cm_http_detach(c).  While a
 * body queued with cm_send_file() (cm_http_serve_dir/file) is streaming,
 * the next request is neither parsed nor read.
 * Returns 0, or CM_ENOMEM.
 */
int cm_http_serve(struct cm_conn *c, const struct cm_http_serve_opts *opts);

/* cm_listen() followed by cm_http_serve(listener, opts).  Returns the
 * listener, or NULL (errno says why). */
struct cm_conn *cm_http_listen(struct cm_mgr *mgr, const char *url, cm_event_fn fn, void *fn_data,
                               const struct cm_http_serve_opts *opts);

/* Frees the HTTP server state of c and clears c->pfn / c->pfn_data; for a
 * protocol taking the connection over.  Harmless on other connections. */
void cm_http_detach(struct cm_conn *c);

/*
 * Ends keep-alive on c, an HTTP server connection, for a graceful stop or
 * reload (close the listener first, then call this on each connection):
 * what the client already sent is still answered, and no request is
 * refused.  A reply under way, or the reply to the last request already
 * received (pipelined ones included), carries "Connection: close", and the
 * connection closes once it is sent; the client knows not to reuse it.  A
 * connection with nothing under way closes once it has been idle for
 * idle_ms (0: at the next poll; a request that arrives meanwhile is
 * answered with "Connection: close"): closing an idle keep-alive connection
 * races with a request the client may be sending at that moment, so give
 * clients time.  A chunked reply already started ends normally, then the
 * idle rule applies.  Events come from cm_mgr_poll(), never from this call.
 * Returns 0, or CM_EINVAL, doing nothing, when c is not an HTTP server
 * connection (a listener, a client, a WebSocket).
 */
int cm_http_end_keep_alive(struct cm_conn *c, uint64_t idle_ms);

/* True when name is a token and value holds no control characters (no CR,
 * LF, NUL...): what a response header needs to be safe to send. */
bool cm_http_header_ok(struct cm_str name, struct cm_str value);

/*
 * Queues a response: status line, the extra header lines in headers
 * ("Name: value\r\n" each, NULL for none), Content-Type: text/plain unless
 * headers has one, Content-Length (omitted for 1xx/204/304; the body is not
 * sent for those nor for a response to HEAD), then len bytes of body (copied).
 * When headers contain "Transfer-Encoding: chunked" a chunked response is
 * started instead (body, if any, goes out as the first chunk; continue with
 * cm_http_chunk()).  On a connection that must close after this response,
 * "Connection: close" is added and the connection drains.
 * Returns 0, or, queueing nothing:
 * - CM_EINVAL: the arguments are refused (cm_http_reply_check() says why):
 *   the request still awaits a reply, which the caller must send;
 * - CM_ECLOSED: the connection is closing or draining: CLOSE follows;
 * - CM_ETOOBIG (mgr->send_limit) or CM_ENOMEM: the request could never be
 *   answered, so the connection is no longer usable: it gets an ERROR (at
 *   the next flush, never inside this call) and closes.  Either way no
 *   request is left waiting forever.
 * A reply sent after HTTP_MSG returned (from a timer, a wakeup) follows the
 * HEAD/close rules of the latest request read on c.
 */
int cm_http_reply(struct cm_conn *c, int status, const char *headers, const void *body, size_t len);

/*
 * Queues a response whose body is bytes [offset, offset + len) of the open
 * file fd, streamed with cm_send_file() (sendfile(2) on plain connections):
 * status line, headers as for cm_http_reply() (they must not hold
 * Content-Length or Transfer-Encoding), Content-Length: len.  Takes fd in
 * every case (closed once sent, or at once when no body goes out: HEAD,
 * 204, 304, or failure).  Returns 0, or cm_http_reply()'s codes; a body
 * that cannot follow its queued head (cm_send_file()'s code) closes c.
 */
int cm_http_reply_file(struct cm_conn *c, int status, const char *headers, int fd, uint64_t offset,
                       uint64_t len);

/* Why cm_http_reply() would refuse these arguments ("status must be in
 * 100..999", "malformed header block", "Content-Length ... disagrees with
 * the body"...), or NULL when they are acceptable.  Static strings. */
const char *cm_http_reply_check(int status, const char *headers, size_t len);

/*
 * Checks a block of caller-supplied header lines (NULL or "" for none) as
 * cm_http_reply(), cm_http_reply_file(), cm_ws_upgrade() and the static
 * file server's extra headers take them: "Name: value" lines separated by
 * CRLF (the last CRLF optional), names tokens, values without control
 * characters, at most one Content-Length of digits.  Returns false for
 * anything that could end a head early or smuggle a header in.  When
 * sets_framing is not NULL it receives whether the block sets
 * Content-Length or Transfer-Encoding: chunked (headers the library writes
 * itself for files and upgrades; false when the block is malformed).
 */
bool cm_http_headers_ok(const char *headers, bool *sets_framing);

/*
 * True when c is an HTTP server connection whose response is complete (a
 * cm_http_reply() with Content-Length, or a chunked response that ended)
 * and no request awaits one: a cm_http_chunk() now would follow a whole
 * response and the client would drop it.  False on other connections, while
 * a request awaits its reply, and while a chunked response is in progress.
 */
bool cm_http_response_complete(struct cm_conn *c);

/*
 * For a protocol that takes a request's body over from an HTTP_HDRS
 * handler (cm_http_detach(), then reads c->recv itself) and later gives the
 * connection back with cm_http_serve(c, opts): copies the server's options
 * into *opts and the receive limit the connection has between requests
 * into *recv_limit.  Returns false, leaving both untouched, when c is not
 * a server connection inside an HTTP_HDRS handler.
 */
bool cm_http_hdrs_takeover_info(const struct cm_conn *c, struct cm_http_serve_opts *opts,
                                size_t *recv_limit);

/* Queues one chunk of a chunked response (copied); len 0 ends the response
 * (and closes the connection if the request asked for it).  Returns 0, or
 * cm_http_reply()'s codes: on CM_ETOOBIG or CM_ENOMEM a live connection
 * gets an ERROR (deferred) and closes (a truncated chunked body must not
 * look complete, nor leave the client waiting). */
int cm_http_chunk(struct cm_conn *c, const void *data, size_t len);

/* Queues a Server-Sent Events record as one chunk: "event: <event>\n" (when
 * event is non-empty), one "data: " line per line of data, then a blank
 * line.  Lines of data end at CRLF, LF or a bare CR, as an EventSource
 * reads them, so data can never inject a field of its own ("id:",
 * "retry:", "event:").  Returns 0; CM_EINVAL, queueing nothing, when
 * event contains CR or LF; cm_http_chunk()'s codes otherwise. */
int cm_http_sse(struct cm_conn *c, struct cm_str event, struct cm_str data);


/* --------------------------------------------------------- static files */

/*
 * One byte range of a representation, both ends inclusive
 * (RFC 9110 section 14.1.1).
 */
struct cm_http_range {
  uint64_t start;
  uint64_t end;
};

/*
 * Parses a Range header value (e.g. "bytes=0-99, -500") against a
 * representation of size bytes, writing at most max ranges, resolved to
 * absolute offsets, into ranges.  Pure codec: no I/O, no allocation.
 * Returns the number of ranges (1..max); 0 when the header must be ignored
 * and the whole representation sent (a unit other than bytes, a malformed
 * value, more than max ranges, or ranges that overlap or are out of order,
 * which a small request could use to multiply the reply); -1 when the value
 * is valid but no range is satisfiable (answer 416).  Unsatisfiable ranges
 * among satisfiable ones are dropped; ends past the size are clamped.
 */
int cm_http_parse_range(struct cm_str value, uint64_t size, struct cm_http_range *ranges, size_t max);

/*
 * The MIME type for the extension of path's last segment: looked up first
 * in custom, a list like "ext1=type1,ext2=type2" (NULL for none; a leading
 * dot on an extension is allowed; entries whose type contains control
 * characters are ignored), then in a built-in table of common web types,
 * else "application/octet-stream".  Extensions compare case-insensitively.
 * Returns a view into custom or into a static string.
 */
struct cm_str cm_http_mime_type(struct cm_str path, const char *custom);

/*
 * Options of cm_http_serve_dir() and cm_http_serve_file().  Every pointer
 * may be NULL and is read only during the call; numbers left 0 take their
 * defaults.
 */
struct cm_http_serve_dir_opts {
  const char *root_dir;      /* serve_dir: the directory served at "/" (required) */
  const char *extra_headers; /* header lines for every reply: "Name: value\r\n"...;
                                a malformed block, or one setting Content-Length or
                                Transfer-Encoding, makes the reply a 500 */
  const char *mime_types;    /* "ext=type,..." consulted before the built-in table */
  const char *page404;       /* file sent with status 404 when the target is missing */
  const char *index_file;    /* served for a directory; default "index.html" */
  size_t max_ranges;         /* ranges served in one 206 reply; more get the whole
                                file (200); default 16 */
  bool allow_hidden;         /* serve_dir: serve hidden files and directories
                                (a path segment starting with '.', such as
                                ".env" or ".git/"); default false: 404 */
  bool no_precompressed;     /* never look for "<file>.gz" siblings; default
                                false: looked for when the client accepts gzip */
};

/*
 * Answers request hm on c with a file under opts->root_dir, the request
 * path being percent-decoded and resolved below the root:
 * - only GET and HEAD (others get 405 with Allow); a request path that is
 *   not absolute or has a malformed escape gets 400;
 * - nothing outside the root is ever served: ".." segments (also
 *   percent-encoded), NUL and backslashes get 403; the path is opened
 *   beneath the root's directory (kept open by c->mgr, see below) with
 *   openat2(RESOLVE_BENEATH), so symlinks are followed only while they are
 *   relative and stay below the root: links that climb out, absolute links
 *   (even to a file inside the root) and loops get 403; missing files 404
 *   (opts->page404 when set); non-regular files (FIFOs, devices) 403;
 * - hidden files and directories (a segment starting with '.' in the
 *   request path or met through a symlink: ".env", ".git/") get 404
 *   unless opts->allow_hidden;
 * - a file named with a trailing slash ("/file.txt/") gets 404;
 * - a directory is redirected (301) to its path with a trailing "/" and
 *   then served by its index file; without one, 403 (no listings);
 * - Content-Type from cm_http_mime_type(); ETag and Last-Modified, with
 *   If-None-Match / If-Modified-Since answered 304; Accept-Ranges: bytes
 *   and Range (with If-Range) answered 206 (one range, or several as
 *   multipart/byteranges) or 416 (Content-Range: bytes *\/size);
 * - when the client accepts gzip and "<file>.gz" exists beside the file
 *   (inside the root), that is sent with Content-Encoding: gzip, Vary:
 *   Accept-Encoding and the original's type (the sibling is looked for
 *   only then, and never with opts->no_precompressed);
 * - the body is streamed with cm_send_file() (sendfile(2) on plain
 *   connections), never read into memory.
 * The root directory is opened on first use and kept by the manager (at
 * most 16 roots, least recently used closed first; all closed by
 * cm_mgr_free()); its path is checked again at most once a second, and a
 * root that now names another directory is reopened.  Setting
 * CYMONGOOSE_NO_OPENAT2=1 in the environment makes roots opened afterwards
 * resolve paths with a user-space walk (the fallback for kernels without
 * openat2) instead.
 * Keep-alive and "Connection: close" follow the request, as for
 * cm_http_reply().  Returns the status code queued, or 0 when nothing could
 * be queued (the connection is closing or the send buffer refused).
 */
int cm_http_serve_dir(struct cm_conn *c, struct cm_http_msg *hm, const struct cm_http_serve_dir_opts *opts);

/*
 * Answers request hm with the file at path (any path the application
 * chooses: no root applies), with everything cm_http_serve_dir() does for
 * a file: MIME type, conditional requests, ranges, precompressed .gz,
 * streaming.  A missing file gets 404 (opts->page404 when set), a
 * directory or other non-regular file 403.  opts may be NULL (root_dir is
 * ignored).  Returns the status code queued, or 0 when nothing was queued.
 */
int cm_http_serve_file(struct cm_conn *c, struct cm_http_msg *hm, const char *path,
                       const struct cm_http_serve_dir_opts *opts);


/* ------------------------------------------------------------- client */

/*
 * Makes c an HTTP/1.1 client connection: responses in c->recv are parsed
 * and delivered as CM_EV_HTTP_HDRS then CM_EV_HTTP_MSG (views valid during
 * the call; the response is consumed afterwards).  Interim 1xx responses
 * other than 101 are skipped.  A body delimited by the connection's close
 * is delivered when the peer closes, just before CLOSE.  A malformed
 * response raises CM_EV_ERROR and closes.  lim NULL means defaults.
 * Returns 0, or CM_ENOMEM.
 */
int cm_http_client(struct cm_conn *c, const struct cm_http_limits *lim);

/* Defaults of cm_http_client_set_timeouts(). */
#define CM_HTTP_CONNECT_TIMEOUT_MS 30000
#define CM_HTTP_RESPONSE_TIMEOUT_MS 60000

/*
 * Timeouts of the HTTP client connection c (0: the default,
 * CM_HTTP_TIMEOUT_OFF: none).  connect_ms bounds the time from
 * cm_http_client() to CONNECT (name lookup included); response_ms is how
 * long the connection may stay silent (no byte either way) while a response
 * is awaited (a request in flight or a response partly received).  On
 * expiry c gets ERROR "connect timed out" or "response timed out" and
 * closes.  Both live in the manager's timer heap.  Returns 0, or CM_EINVAL
 * when c is not an HTTP client connection.
 */
int cm_http_client_set_timeouts(struct cm_conn *c, uint64_t connect_ms, uint64_t response_ms);

/* cm_connect() followed by cm_http_client().  The URL's host and port are
 * kept for the Host header of cm_http_request().  NULL on failure (errno
 * says why). */
struct cm_conn *cm_http_connect(struct cm_mgr *mgr, const char *url, cm_event_fn fn, void *fn_data,
                                const struct cm_http_limits *lim);

/*
 * Queues a request: "<method> <uri> HTTP/1.1", Host (from the URL given to
 * cm_http_connect, unless headers has one), the header lines in headers
 * (NULL for none), Content-Length when there is a body or the method is
 * POST/PUT/PATCH (unless headers say chunked), then len bytes of body.
 * HEAD requests are remembered so their responses are read without a body.
 * Returns 0, or, queueing nothing: CM_EINVAL for an invalid method, uri
 * or header block; cm_send()'s codes when the send buffer refuses the data.
 */
int cm_http_request(struct cm_conn *c, const char *method, const char *uri, const char *headers,
                    const void *body, size_t len);

/*
 * For requests written raw (cm_send, the Python send()): records each
 * request that data starts (a request line "METHOD target HTTP/1.x\r\n"),
 * as cm_http_request() does, so that the response to a HEAD is read without
 * a body.  Pass every piece of output in order.  Pipelined requests in one
 * piece are found by parsing their heads and skipping Content-Length bodies
 * (also across later pieces); tracking of a piece stops at a chunked body or
 * a head that is not complete in it.  Returns true when a request line was
 * recognised (an answer, not an error).  Harmless on connections that are not HTTP clients.
 */
bool cm_http_client_track(struct cm_conn *c, const void *data, size_t len);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif

#endif
