/* Unit tests of the chunked decoder and the multipart parser. */
#include <stdio.h>
#include <stdlib.h>

#include "guard.h"

/* One call over the whole input (a writable copy). */
static int decode_all(const char *s, size_t len, struct cm_http_chunked *st, char *work,
                      const struct cm_http_limits *lim) {
  memcpy(work, s, len);
  cm_http_chunked_init(st);
  return cm_http_chunked_decode(st, work, len, lim);
}

/* Feeds one more byte per call; each call sees its bytes at the end of the
 * guard page (so the buffer moves every time, as a growing receive buffer
 * may).  Returns the first non-zero result (or 0), leaving the decoded bytes
 * in work. */
static int decode_bytewise(const char *s, size_t len, struct cm_http_chunked *st, char *work,
                           const struct cm_http_limits *lim) {
  memcpy(work, s, len);
  cm_http_chunked_init(st);
  for (size_t k = 0; k <= len; k++) {
    char *b = guarded(work, k);
    int r = cm_http_chunked_decode(st, b, k, lim);
    memcpy(work, b, k); /* keep what the decoder moved */
    if (r != 0) return r;
  }
  return 0;
}

struct chunk_case {
  const char *input;
  int result;
  const char *body; /* when result is 1 */
};

static const struct chunk_case cases[] = {
    {"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", 1, "hello world"},
    {"0\r\n\r\n", 1, ""},
    {"000\r\n\r\n", 1, ""},
    {"A\r\n0123456789\r\na\r\nabcdefghij\r\n0\r\n\r\n", 1, "0123456789abcdefghij"},
    {"0005\r\nhello\r\n0\r\n\r\n", 1, "hello"},
    {"5;name=value;x=\"q;d\"\r\nhello\r\n0;last\r\n\r\n", 1, "hello"},
    {"5 ;ext\r\nhello\r\n0\r\n\r\n", 1, "hello"},
    {"5\r\nhello\r\n0\r\nX-Trailer: 1\r\nChecksum: abc def\r\n\r\n", 1, "hello"},
    {"1\r\n\r\r\n1\r\n\n\r\n0\r\n\r\n", 1, "\r\n"}, /* CR and LF as payload */
    {"3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n", 1, "abc"}, /* stops at the end */
    {"x\r\n", CM_HTTP_ERR_BAD, NULL},
    {"\r\n", CM_HTTP_ERR_BAD, NULL},
    {" 5\r\nhello\r\n0\r\n\r\n", CM_HTTP_ERR_BAD, NULL},
    {"-5\r\nhello\r\n0\r\n\r\n", CM_HTTP_ERR_BAD, NULL},
    {"0x5\r\nhello\r\n0\r\n\r\n", CM_HTTP_ERR_BAD, NULL},
    {"5\nhello\r\n0\r\n\r\n", CM_HTTP_ERR_BAD, NULL},
    {"5\rhello\r\n0\r\n\r\n", CM_HTTP_ERR_BAD, NULL},
    {"5\r\nhelloX\r\n0\r\n\r\n", CM_HTTP_ERR_BAD, NULL},
    {"5\r\nhello\n0\r\n\r\n", CM_HTTP_ERR_BAD, NULL},
    {"5\r\nhello\r0\r\n\r\n", CM_HTTP_ERR_BAD, NULL},
    {"3\r\nhello\r\n0\r\n\r\n", CM_HTTP_ERR_BAD, NULL},
    {"5;a\x01\r\nhello\r\n0\r\n\r\n", CM_HTTP_ERR_BAD, NULL},
    {"0\r\nX: 1\r\n 2\r\n\r\n", CM_HTTP_ERR_BAD, NULL},    /* obs-fold in trailer */
    {"0\r\nX: 1\n\r\n", CM_HTTP_ERR_BAD, NULL},
    {"0\r\nX 1\r\n\r\n", CM_HTTP_ERR_BAD, NULL},
    {"0\r\nNoColon\r\n\r\n", CM_HTTP_ERR_BAD, NULL},
    {"0\r\n: x\r\n\r\n", CM_HTTP_ERR_BAD, NULL},
    {"0\r\nX: a\x7f\r\n\r\n", CM_HTTP_ERR_BAD, NULL},
    {"0\r\n\r\r", CM_HTTP_ERR_BAD, NULL},
    {"0\r\n\n", CM_HTTP_ERR_BAD, NULL},
    {"FFFFFFFFFFFFFFFFFFFF\r\n", CM_HTTP_ERR_BODY_TOO_LARGE, NULL},
    {"1000001\r\n", CM_HTTP_ERR_BODY_TOO_LARGE, NULL}, /* 16 MiB + 1 */
};

static void chunk_cases(void **state) {
  (void) state;
  static char work[4096];
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    const struct chunk_case *c = &cases[i];
    size_t len = strlen(c->input);
    struct cm_http_chunked st;
    int r = decode_all(c->input, len, &st, work, NULL);
    if (r != c->result) print_error("case %zu: got %d want %d\n", i, r, c->result);
    assert_int_equal(r, c->result);
    if (r == 1) {
      assert_int_equal(st.out, strlen(c->body));
      assert_memory_equal(work, c->body, st.out);
      /* a pipelined follower is untouched */
      assert_memory_equal(work + st.in, c->input + st.in, len - st.in);
      assert_int_equal(cm_http_chunked_decode(&st, work, len, NULL), 1); /* stays done */
    } else {
      assert_int_equal(cm_http_chunked_decode(&st, work, len, NULL), r); /* sticky */
    }
    /* byte at a time: same outcome, same body */
    struct cm_http_chunked st2;
    int r2 = decode_bytewise(c->input, len, &st2, work, NULL);
    assert_int_equal(r2, r);
    if (r == 1) {
      assert_int_equal(st2.out, st.out);
      assert_int_equal(st2.in, st.in);
      assert_memory_equal(work, c->body, st2.out);
    }
  }
}

static void needs_more_until_the_end(void **state) {
  (void) state;
  char work[64];
  struct cm_http_chunked st;
  const char *s = "5\r\nhello\r\n0\r\nT: 1\r\n\r\n";
  size_t len = strlen(s);
  for (size_t k = 0; k < len; k++) {
    assert_int_equal(decode_all(s, k, &st, work, NULL), 0);
  }
  assert_int_equal(decode_all(s, len, &st, work, NULL), 1);
  assert_int_equal(st.in, len);
}

static void limits(void **state) {
  (void) state;
  char work[4096];
  struct cm_http_chunked st;
  struct cm_http_limits lim = {.max_body = 10};
  assert_int_equal(decode_all("A\r\n0123456789\r\n0\r\n\r\n", 20, &st, work, &lim), 1);
  assert_int_equal(decode_all("B\r\n", 3, &st, work, &lim), CM_HTTP_ERR_BODY_TOO_LARGE);
  /* the total counts, not one chunk */
  const char *two = "6\r\n012345\r\n5\r\n";
  assert_int_equal(decode_all(two, strlen(two), &st, work, &lim), CM_HTTP_ERR_BODY_TOO_LARGE);
  /* leading zeros never overflow, but the line is bounded */
  char line[2100];
  memset(line, '0', sizeof(line));
  assert_int_equal(decode_all(line, 1024, &st, work, NULL), 0);
  assert_int_equal(decode_all(line, 1025, &st, work, NULL), CM_HTTP_ERR_BAD);
  /* extensions are bounded by max_chunk_line */
  struct cm_http_limits small = {.max_chunk_line = 8};
  assert_int_equal(decode_all("5;abcde\r\n", 9, &st, work, &small), 0);
  assert_int_equal(decode_all("5;abcdef\r\n", 10, &st, work, &small), CM_HTTP_ERR_BAD);
  /* trailers are bounded by max_head */
  struct cm_http_limits tl = {.max_head = 10};
  assert_int_equal(decode_all("0\r\nA: 12345\r\n\r\n", 16, &st, work, &tl), CM_HTTP_ERR_HDRS_TOO_LARGE);
  assert_int_equal(decode_all("0\r\nA: 1234\r\n\r\n", 15, &st, work, &tl), 1);
}

/* The whole path a server takes: parse the head, decode the body in place,
 * hand out one contiguous message. */
static void request_with_chunked_body(void **state) {
  (void) state;
  char buf[256];
  const char *s =
      "POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
      "4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n"
      "GET /next HTTP/1.1\r\nHost: h\r\n\r\n";
  size_t len = strlen(s);
  memcpy(buf, s, len);
  struct cm_http_msg hm;
  int h = cm_http_parse_request(buf, len, &hm, NULL);
  assert_true(h > 0);
  assert_int_equal(hm.framing, CM_HTTP_BODY_CHUNKED);
  struct cm_http_chunked st;
  cm_http_chunked_init(&st);
  assert_int_equal(cm_http_chunked_decode(&st, buf + h, len - (size_t) h, NULL), 1);
  hm.body = cm_str_n(buf + h, st.out);
  hm.message = cm_str_n(hm.head.buf, hm.head.len + st.out);
  assert_str(hm.body, "Wikipedia");
  assert_memory_equal(hm.message.buf + hm.message.len - 9, "Wikipedia", 9);
  size_t next = (size_t) h + st.in;
  assert_true(cm_http_parse_request(buf + next, len - next, &hm, NULL) > 0);
  assert_str(hm.uri, "/next");
}

/* ------------------------------------------------------------ multipart */

static const char form[] =
    "--XyZ\r\n"
    "Content-Disposition: form-data; name=\"field\"\r\n"
    "\r\n"
    "hello\r\n"
    "--XyZ\r\n"
    "content-disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n"
    "Content-Type: text/plain\r\n"
    "\r\n"
    "line1\r\nline2\r\n-- not a boundary\r\n"
    "--XyZ\r\n"
    "\r\n"
    "\r\n"
    "--XyZ--\r\n";

static void multipart_parts(void **state) {
  (void) state;
  struct cm_str body = cm_str_n(form, sizeof(form) - 1);
  struct cm_http_part p;
  size_t ofs = cm_http_parse_multipart(body, 0, &p);
  assert_true(ofs > 0);
  assert_str(p.name, "field");
  assert_null(p.filename.buf);
  assert_str(p.body, "hello");
  ofs = cm_http_parse_multipart(body, ofs, &p);
  assert_true(ofs > 0);
  assert_str(p.name, "file");
  assert_str(p.filename, "a.txt");
  assert_str(p.body, "line1\r\nline2\r\n-- not a boundary");
  ofs = cm_http_parse_multipart(body, ofs, &p);
  assert_true(ofs > 0); /* a part without headers, with an empty body */
  assert_null(p.name.buf);
  assert_int_equal(p.body.len, 0);
  assert_int_equal(cm_http_parse_multipart(body, ofs, &p), 0);
  assert_null(p.body.buf);
  assert_int_equal(cm_http_parse_multipart(body, 0, NULL), (size_t) (strstr(form + 1, "--XyZ") - form));
}

static void multipart_malformed(void **state) {
  (void) state;
  struct cm_http_part p;
  assert_int_equal(cm_http_parse_multipart(cm_str_c(""), 0, &p), 0);
  assert_int_equal(cm_http_parse_multipart(cm_str_n(NULL, 0), 0, &p), 0);
  assert_int_equal(cm_http_parse_multipart(cm_str_c("hello"), 0, &p), 0);
  assert_int_equal(cm_http_parse_multipart(cm_str_c("--\r\n\r\nx\r\n--\r\n"), 0, &p), 0);
  assert_int_equal(cm_http_parse_multipart(cm_str_c("--b\r\n\r\nno end"), 0, &p), 0);
  assert_int_equal(cm_http_parse_multipart(cm_str_c("--b\r\n\r\nx\r\n--b--"), 99, &p), 0);
  assert_int_equal(cm_http_parse_multipart(cm_str_c("--b\r\n\r\nx\r\n--b--"), 3, &p), 0);
  /* every truncation, against the guard page: no part read past the end */
  size_t len = sizeof(form) - 1;
  for (size_t k = 0; k <= len; k++) {
    struct cm_str body = cm_str_n(guarded(form, k), k);
    size_t ofs = 0;
    int parts = 0;
    while ((ofs = cm_http_parse_multipart(body, ofs, &p)) != 0) {
      assert_true(ofs <= k);
      assert_true(p.body.buf >= body.buf && p.body.buf + p.body.len <= body.buf + k);
      parts++;
    }
    assert_true(parts <= 3);
  }
}

/* Streams input into a receive-like buffer step bytes at a time, consuming
 * up to take decoded bytes after each step as a reader would; returns the
 * result, the body read into body (*body_len) and what is left in b after
 * the end (*rest). */
static int stream_through(const char *in, size_t len, size_t step, size_t take,
                          const struct cm_http_limits *lim, char *body, size_t *body_len,
                          struct cm_buf *b) {
  struct cm_http_chunked st;
  cm_http_chunked_init(&st);
  size_t ready = 0, fed = 0;
  uint64_t total = 0;
  int r = 0;
  *body_len = 0;
  for (;;) {
    size_t n = len - fed < step ? len - fed : step;
    assert_int_equal(cm_buf_append(b, in + fed, n), 0);
    fed += n;
    r = cm_http_chunked_stream(&st, b, &ready, &total, lim);
    size_t k = ready < take ? ready : take;
    memcpy(body + *body_len, cm_buf_data(b), k);
    *body_len += k;
    cm_buf_delete(b, 0, k);
    ready -= k;
    if (r != 0 && ready == 0) break;
    if (r == 0 && fed == len && ready == 0) break;
  }
  assert_int_equal(total, (uint64_t) *body_len + ready);
  assert_int_equal(cm_buf_append(b, in + fed, len - fed), 0); /* the rest, unread */
  return r;
}

static void streamed_cases(void **state) {
  (void) state;
  static char body[4096];
  const size_t steps[] = {1, 2, 3, 7, 4096}, takes[] = {1, 5, 4096};
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    const struct chunk_case *c = &cases[i];
    size_t len = strlen(c->input);
    for (size_t s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
      for (size_t t = 0; t < sizeof(takes) / sizeof(takes[0]); t++) {
        struct cm_buf b = {0};
        size_t n;
        int r = stream_through(c->input, len, steps[s], takes[t], NULL, body, &n, &b);
        if (r != c->result) print_error("case %zu step %zu take %zu: %d\n", i, steps[s], takes[t], r);
        assert_int_equal(r, c->result);
        if (r == 1) {
          assert_int_equal(n, strlen(c->body));
          assert_memory_equal(body, c->body, n);
          /* what follows the body stays, as the next message */
          const char *end = strstr(c->input, "\r\n\r\n");
          size_t rest = len - (size_t) (end + 4 - c->input);
          assert_int_equal(b.len, rest);
          if (rest) assert_memory_equal(cm_buf_data(&b), end + 4, rest);
        }
        cm_buf_free(&b);
      }
    }
  }
}

static void streamed_limit_counts_consumed_bytes(void **state) {
  (void) state;
  char body[64];
  size_t n;
  struct cm_http_limits lim = {.max_body = 10};
  const char *ok = "6\r\n012345\r\n4\r\n6789\r\n0\r\n\r\n";
  const char *big = "6\r\n012345\r\n5\r\n67890\r\n0\r\n\r\n";
  struct cm_buf b = {0};
  assert_int_equal(stream_through(ok, strlen(ok), 1, 1, &lim, body, &n, &b), 1);
  assert_int_equal(n, 10);
  cm_buf_free(&b);
  /* the first chunk consumed before the second size line comes still counts */
  assert_int_equal(stream_through(big, strlen(big), 1, 1, &lim, body, &n, &b),
                   CM_HTTP_ERR_BODY_TOO_LARGE);
  cm_buf_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(chunk_cases),
      cmocka_unit_test(needs_more_until_the_end),
      cmocka_unit_test(limits),
      cmocka_unit_test(streamed_cases),
      cmocka_unit_test(streamed_limit_counts_consumed_bytes),
      cmocka_unit_test(request_with_chunked_body),
      cmocka_unit_test(multipart_parts),
      cmocka_unit_test(multipart_malformed),
  };
  return cmocka_run_group_tests_name("http_chunked", tests, guard_setup, guard_teardown);
}
