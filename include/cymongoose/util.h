/*
 * cymongoose: utilities.  Included by cymongoose.h.
 *
 * JSON lookup by path, URL encoding and form variables, glob matching,
 * base64, hashes (OpenSSL), CRC32 (zlib), random bytes (OpenSSL) and a
 * JSON-RPC 2.0 dispatcher.
 *
 * Unless a comment says otherwise these functions are pure: they read only
 * the bytes they are given (never past buf + len, never needing a NUL), write
 * only into the caller's output buffer, allocate nothing and are thread-safe.
 * Lengths come back as long: >= 0 the length, negative a CM_E* code
 * (cymongoose.h).  Encoders into a caller's buffer return CM_ENOSPC when
 * the output does not fit, and measure when buf is NULL: then they return
 * the length the output needs.
 */
#ifndef CYMONGOOSE_UTIL_H
#define CYMONGOOSE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default) /* exported: see cymongoose.h */

/* ------------------------------------------------------------------ JSON */
/*
 * Paths: "$" is the whole document; ".name" selects a member of an object,
 * "[N]" the N-th (from 0) element of an array: "$.a.b", "$.a[3].b", "$[0]".
 * A name runs until the next '.' or '[' and is compared with the member's
 * name after JSON unescaping.  When an object repeats a name, the first
 * member wins.
 *
 * The document is checked in full (RFC 8259 grammar, one value, only
 * whitespace around it) before anything is returned: a malformed document
 * gives CM_JSON_INVALID wherever the path points.  Strings are not checked
 * for valid UTF-8.  Nesting deeper than the limit gives CM_JSON_TOO_DEEP.
 */
enum {
  CM_JSON_NOT_FOUND = -1, /* valid document, nothing at that path */
  CM_JSON_INVALID = -2,   /* not a JSON document */
  CM_JSON_TOO_DEEP = -3,  /* arrays/objects nested deeper than the limit */
  CM_JSON_BAD_PATH = -4,  /* the path does not follow the grammar above */
  CM_JSON_NO_ROOM = -5,   /* the output buffer is too small */
  CM_JSON_WRONG_TYPE = -6 /* the value exists but is not of the asked type */
};
#define CM_JSON_MAX_DEPTH 128    /* default nesting limit */
#define CM_JSON_DEPTH_CAP 4096   /* largest nesting limit accepted */

/*
 * Finds the value at path.  On success returns 0 and sets *value to a view of
 * the value's text inside json (a string keeps its quotes, an object its
 * braces); the view lives as long as json.  Otherwise returns a CM_JSON_*
 * code.  max_depth: nesting limit, 1..CM_JSON_DEPTH_CAP, where the top-level
 * array or object is depth 1; 0 or a value out of range means
 * CM_JSON_MAX_DEPTH, which cm_json_find uses.
 */
int cm_json_find(struct cm_str json, const char *path, struct cm_str *value);
int cm_json_find_depth(struct cm_str json, const char *path, int max_depth,
                       struct cm_str *value);

/* Checks that json is one complete JSON document (cm_json_find with "$"):
 * 0 or a CM_JSON_* code. */
int cm_json_check(struct cm_str json, int max_depth);

/*
 * Iterates over the members of the top-level array or object of json, which
 * must have passed cm_json_check (on other input it stops early but stays in
 * bounds).  Start with ofs 0; each call returns the offset to pass next, or 0
 * when there are no more members.  *value gets the member's raw text, *key
 * its quoted name for objects (buf NULL for arrays); either may be NULL.
 */
size_t cm_json_next(struct cm_str json, size_t ofs, struct cm_str *key, struct cm_str *value);

/* Typed lookups: 0 with *out set, or a CM_JSON_* code (CM_JSON_WRONG_TYPE
 * when the value is of another type).  Numbers are read in the C locale. */
int cm_json_get_num(struct cm_str json, const char *path, double *out);
int cm_json_get_bool(struct cm_str json, const char *path, bool *out);
/* Integers exactly; a number with a fraction or exponent is truncated toward
 * zero.  Values outside int64_t give CM_JSON_WRONG_TYPE. */
int cm_json_get_long(struct cm_str json, const char *path, int64_t *out);
/*
 * The string at path, unescaped into buf (len bytes; not NUL-terminated).
 * Returns the unescaped length (never more than the quoted token's length,
 * so a buffer that large always suffices) or a CM_JSON_* code.  \uXXXX
 * escapes become UTF-8, surrogate pairs one 4-byte sequence; a lone surrogate
 * becomes its 3-byte form (WTF-8), as Python's "surrogatepass" expects.
 */
long cm_json_get_str(struct cm_str json, const char *path, char *buf, size_t len);
/* Unescapes one JSON string token (with its quotes, as cm_json_find returns
 * it) into buf.  Same results as cm_json_get_str. */
long cm_json_unescape(struct cm_str token, char *buf, size_t len);
/*
 * Writes s as a JSON string literal, quotes included, into buf (len bytes;
 * not NUL-terminated).  Control characters, '"' and '\\' are escaped, other
 * bytes copied.  Returns the literal's length, or CM_ENOSPC when it needs
 * more than len bytes (buf then holds a cut prefix).  buf NULL: returns the
 * length needed, writing nothing.
 */
long cm_json_escape(struct cm_str s, char *buf, size_t len);

/* ------------------------------------------------------ URLs and forms */
/*
 * Percent-encodes n bytes of s into buf (len bytes, NUL-terminated when
 * there is room): every byte except A-Z a-z 0-9 - . _ ~ becomes %XX (upper
 * case hex), like Python's urllib.parse.quote(s, safe="").  Returns the
 * encoded length (without the NUL), or CM_ENOSPC when the output and its
 * NUL need more than len bytes (buf then holds a cut, NUL-terminated
 * prefix).  At most 3 * n + 1 bytes are ever needed.  buf NULL: returns
 * the length needed, writing nothing.
 */
long cm_url_encode(const char *s, size_t n, char *buf, size_t len);
/*
 * Strict percent-decoding of src[0..src_len) into dst (dst_len bytes,
 * including room for a terminating NUL, which is written).  When is_form is
 * true '+' becomes a space (application/x-www-form-urlencoded).  Returns the
 * decoded length; CM_EINVAL for a malformed escape ('%' not followed by two
 * hex digits); CM_ENOSPC when dst is too small (src_len + 1 bytes always
 * suffice).
 */
long cm_url_decode(const char *src, size_t src_len, char *dst, size_t dst_len, bool is_form);
/*
 * Looks up form variable name in an "a=1&b=2" buffer (a query string or an
 * application/x-www-form-urlencoded body) the way Python's
 * urllib.parse.parse_qsl(keep_blank_values=True) does: names are compared
 * after decoding, case-sensitively; the first occurrence wins; "a" without
 * '=' has the empty value; '+' is a space and a '%' not followed by two hex
 * digits stays as it is (the application/x-www-form-urlencoded parser of the
 * WHATWG URL standard, which HTML forms use).  The value is decoded into dst
 * (dstlen bytes, not NUL-terminated; buf.len bytes always suffice).  Returns
 * the value's length, CM_ENOENT when the variable is absent, CM_ENOSPC when
 * dst is too small.
 */
long cm_http_var(struct cm_str buf, const char *name, char *dst, size_t dstlen);
/*
 * cm_http_var() with the name compared case-insensitively (ASCII letters),
 * as the original API's HttpMessage.query_var() did, and the value
 * NUL-terminated in dst (dst_len bytes including the NUL; buf.len + 1
 * always suffice).  Decoding is the same.  Returns the value's length,
 * CM_ENOENT when absent (or name is empty), CM_ENOSPC when dst is too small.
 */
long cm_http_get_var(struct cm_str buf, const char *name, char *dst, size_t dst_len);

/* ------------------------------------------------------------- matching */
/*
 * Glob match of the whole of s against pattern: '?' matches one byte, '*'
 * any run of bytes without '/', '#' any run including '/', other bytes
 * themselves.  Each wildcard ('?', '*', '#') is a capture; the first ncaps
 * are stored in caps (views into s) when the match succeeds.  When several
 * matches exist, earlier wildcards take the shortest run that still lets the
 * rest match.  caps may be NULL when ncaps is 0.
 * Scratch memory: a pattern with k '*'/'#' uses k * (s.len + 1) bits,
 * allocated on the heap when more than 4 KiB; the match fails (false, errno
 * ENOMEM) when that allocation fails.  A question: false is "no match",
 * never an error code.
 */
bool cm_match(struct cm_str s, struct cm_str pattern, struct cm_str *caps, size_t ncaps);
/* The number of captures pattern yields (its '?', '*' and '#' bytes). */
size_t cm_match_ncaps(struct cm_str pattern);

/* ------------------------------------------------------------- UTF-8 */
enum {
  CM_UTF8_OK = 0,          /* valid and ends on a character boundary */
  CM_UTF8_INCOMPLETE = 1,  /* valid so far; ends inside a character */
  CM_UTF8_INVALID = -1     /* not UTF-8 (sticky: later calls say so too) */
};

/*
 * Incremental UTF-8 validator (RFC 3629): rejects overlong forms,
 * surrogates (U+D800-DFFF), code points above U+10FFFF, stray continuation
 * bytes and truncated sequences, and fails at the first byte that makes
 * the input invalid.  *state starts at 0 and carries a character split
 * across calls (e.g. across WebSocket fragments).  Used by WebSocket text
 * messages and MQTT strings.  Runs of ASCII go 8
 * bytes at a time.  Returns CM_UTF8_OK, CM_UTF8_INCOMPLETE or
 * CM_UTF8_INVALID for everything fed so far.
 */
int cm_utf8_validate(uint32_t *state, const uint8_t *p, size_t n);

/* True when p[0..n) is complete, valid UTF-8. */
bool cm_utf8_valid(const uint8_t *p, size_t n);

/* The length of the longest prefix of p[0..n) that is complete, valid
 * UTF-8 (n when all of it is). */
size_t cm_utf8_valid_prefix(const uint8_t *p, size_t n);

/* --------------------------------------------------------------- base64 */
/* Output size of cm_base64_encode for n input bytes (without a NUL). */
#define CM_BASE64_ENCODED_LEN(n) ((((n) + 2) / 3) * 4)
/* Standard base64 (RFC 4648, '+' '/', '=' padding) of n bytes into buf,
 * NUL-terminated.  Returns CM_BASE64_ENCODED_LEN(n), or CM_ENOSPC when
 * that plus the NUL is more than len (buf then holds "" when len > 0).
 * buf NULL: returns the length needed, writing nothing. */
long cm_base64_encode(const void *src, size_t n, char *buf, size_t len);
/*
 * Decodes standard base64.  Padding is optional, but when present it must
 * be correct; any byte outside the alphabet (whitespace included), a lone
 * final character or data after the padding makes it invalid.  Returns the
 * decoded length (at most 3 * n / 4), CM_EINVAL for invalid input,
 * CM_ENOSPC when buf (len bytes) is too small.
 */
long cm_base64_decode(const char *src, size_t n, void *buf, size_t len);

/* ---------------------------------------------------- hashes and random */
/* Digests through OpenSSL's EVP interface.  Return 0, or CM_EIO only if
 * OpenSSL fails (out is then zeroed); cm_hmac_sha256 gives CM_EINVAL for a
 * key longer than INT_MAX. */
int cm_md5(const void *data, size_t n, uint8_t out[16]);
int cm_sha1(const void *data, size_t n, uint8_t out[20]);
int cm_sha256(const void *data, size_t n, uint8_t out[32]);
int cm_hmac_sha256(const void *key, size_t keylen, const void *data, size_t n, uint8_t out[32]);
/* CRC-32 (zlib's, the one of gzip and PNG) of n bytes, continuing from crc
 * (0 to start). */
uint32_t cm_crc32(uint32_t crc, const void *data, size_t n);
/* n bytes from OpenSSL's CSPRNG.  Returns 0, or CM_EIO if it cannot be
 * seeded. */
int cm_random(void *buf, size_t n);
/* n random characters from [A-Za-z0-9], uniformly (no modulo bias); buf gets
 * no NUL.  Returns 0, or CM_EIO if the CSPRNG fails. */
int cm_random_str(char *buf, size_t n);

/* ------------------------------------------------------------- JSON-RPC */
/*
 * A JSON-RPC 2.0 dispatcher (https://www.jsonrpc.org/specification).
 *
 *   struct cm_rpc rpc = {0};
 *   cm_rpc_add(&rpc, "sum", sum_fn, NULL);
 *   struct cm_buf out = {0};
 *   cm_rpc_process(&rpc, frame, &out);   // out: the response, or nothing
 *   ...
 *   cm_rpc_free(&rpc);
 *
 * A method handler answers with cm_rpc_ok() or cm_rpc_err() before it
 * returns; answering is only possible during the call.  A request whose
 * handler does not answer gets error -32603.  Notifications (no "id") run
 * their handler but get no response.  Batches (arrays) are processed in
 * order and answered with an array ("" when every element was a
 * notification).  Errors: -32700 parse error, -32600 invalid request (not an
 * object, "method" not a string, "jsonrpc" present but not "2.0"), -32601
 * unknown method, -32603 internal error.  The "id" may be any JSON value and
 * is echoed verbatim.
 */
enum {
  CM_RPC_PARSE_ERROR = -32700,
  CM_RPC_INVALID_REQUEST = -32600,
  CM_RPC_METHOD_NOT_FOUND = -32601,
  CM_RPC_INVALID_PARAMS = -32602,
  CM_RPC_INTERNAL_ERROR = -32603
};

struct cm_rpc_req;
typedef void (*cm_rpc_fn)(struct cm_rpc_req *req);

/* One registered method; owned by the struct cm_rpc. */
struct cm_rpc_method {
  struct cm_rpc_method *next;
  char *name;      /* a cm_match() pattern, copied by cm_rpc_add */
  cm_rpc_fn fn;
  void *fn_data;   /* not owned */
};

/* The dispatcher.  Zero-initialise; release with cm_rpc_free(). */
struct cm_rpc {
  struct cm_rpc_method *methods; /* in the order added */
  int max_depth;                 /* JSON nesting limit; 0 means CM_JSON_MAX_DEPTH */
};

/* A request being processed; valid only during the handler call. */
struct cm_rpc_req {
  struct cm_rpc *rpc;
  struct cm_str frame;   /* the request object's text */
  struct cm_str id;      /* the raw "id" value; buf NULL for a notification */
  struct cm_str method;  /* the method name, still JSON-escaped, no quotes */
  struct cm_str params;  /* the raw "params" value; len 0 when absent */
  void *fn_data;         /* the method's fn_data */
  struct cm_buf *out;    /* where the response goes (internal) */
  bool answered;         /* set by cm_rpc_ok/cm_rpc_err */
};

/*
 * Registers fn for method names matching pattern (cm_match syntax; a plain
 * name matches itself).  Adding a pattern again replaces its handler.  The
 * first pattern added that matches wins.  Returns 0, or CM_ENOMEM.
 */
int cm_rpc_add(struct cm_rpc *rpc, const char *pattern, cm_rpc_fn fn, void *fn_data);
/* Removes every method and frees their memory. */
void cm_rpc_free(struct cm_rpc *rpc);
/*
 * Processes one frame (a request, a notification or a batch) and appends the
 * response JSON to out (nothing for notifications).  Returns 0, or
 * CM_ENOMEM (out may then hold a partial response).
 */
int cm_rpc_process(struct cm_rpc *rpc, struct cm_str frame, struct cm_buf *out);
/*
 * Answers req with result, which must be one JSON value (checked:
 * CM_EINVAL when it is not).  Returns 0, CM_EALREADY when req was already
 * answered, CM_ENOMEM.
 * Nothing is written for a notification, but it still counts as answered.
 */
int cm_rpc_ok(struct cm_rpc_req *req, struct cm_str result);
/* Answers req with an error object {code, message}; message is escaped.
 * Returns 0, CM_EALREADY when req was already answered, CM_ENOMEM. */
int cm_rpc_err(struct cm_rpc_req *req, int code, const char *message);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif

#endif
