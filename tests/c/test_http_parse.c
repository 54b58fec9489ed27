/* Unit tests of the HTTP/1.1 head parser (requests and responses). */
#include <stdio.h>

#include "guard.h"
#include "http/chars.h"

/* ------------------------------------------------------------ helpers */

static int req(const char *s, struct cm_http_msg *hm) {
  size_t n = strlen(s);
  return cm_http_parse_request(guarded(s, n), n, hm, NULL);
}

static int resp(const char *s, struct cm_http_msg *hm) {
  size_t n = strlen(s);
  return cm_http_parse_response(guarded(s, n), n, hm, NULL);
}

typedef int (*parse_fn)(const char *, size_t, struct cm_http_msg *, const struct cm_http_limits *);

/* Feeding any prefix gives "need more" or the final answer, never anything
 * else; and every prefix sits against the guard page. */
static int check_every_split(parse_fn parse, const char *msg, size_t len,
                             const struct cm_http_limits *lim) {
  struct cm_http_msg hm;
  int full = parse(guarded(msg, len), len, &hm, lim);
  for (size_t k = 0; k < len; k++) {
    int r = parse(guarded(msg, k), k, &hm, lim);
    if (full > 0) {
      if (k < (size_t) full) {
        assert_int_equal(r, 0);
      } else {
        assert_int_equal(r, full);
      }
    } else if (r != 0) {
      assert_int_equal(r, full);
    }
  }
  return full;
}

/* -------------------------------------------------------- requests: good */

static void simple_get(void **state) {
  (void) state;
  struct cm_http_msg hm;
  const char *s = "GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: example.com\r\nUser-Agent:  curl/8 \r\n\r\n";
  assert_int_equal(req(s, &hm), (int) strlen(s));
  assert_str(hm.method, "GET");
  assert_str(hm.uri, "/a/b");
  assert_str(hm.query, "x=1&y=2");
  assert_str(hm.proto, "HTTP/1.1");
  assert_int_equal(hm.minor_version, 1);
  assert_int_equal(hm.num_headers, 2);
  assert_str(hm.headers[0].name, "Host");
  assert_str(hm.headers[0].value, "example.com");
  assert_str(hm.headers[1].name, "User-Agent");
  assert_str(hm.headers[1].value, "curl/8");
  assert_int_equal(hm.head.len, strlen(s));
  assert_int_equal(hm.framing, CM_HTTP_BODY_NONE);
  assert_int_equal(hm.body.len, 0);
  assert_int_equal(hm.message.len, strlen(s));
  assert_true(hm.keep_alive);
  assert_false(hm.expect_continue);
  assert_false(hm.upgrade);
  assert_int_equal(hm.status, 0);
  assert_null(hm.error);
}

static void no_query_and_empty_query(void **state) {
  (void) state;
  struct cm_http_msg hm;
  assert_true(req("GET / HTTP/1.1\r\nHost: h\r\n\r\n", &hm) > 0);
  assert_str(hm.uri, "/");
  assert_null(hm.query.buf);
  assert_true(req("GET /p? HTTP/1.1\r\nHost: h\r\n\r\n", &hm) > 0);
  assert_str(hm.uri, "/p");
  assert_non_null(hm.query.buf);
  assert_int_equal(hm.query.len, 0);
  assert_str(hm.target, "/p?");
  assert_null(hm.path.buf); /* the parser leaves path to the server */
}

/* RFC 9112 3.2: each request-target form with its method; absolute-form
 * reads as its path, so that routes written for origin-form match. */
static void target_forms(void **state) {
  (void) state;
  struct cm_http_msg hm;
  assert_true(req("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", &hm) > 0);
  assert_str(hm.uri, "*");
  assert_str(hm.target, "*");
  assert_true(req("GET http://h/abs?q=1 HTTP/1.1\r\nHost: h\r\n\r\n", &hm) > 0);
  assert_str(hm.uri, "/abs");
  assert_str(hm.query, "q=1");
  assert_str(hm.target, "http://h/abs?q=1");
  assert_true(req("GET https://user@h:8080/a/b HTTP/1.1\r\nHost: h\r\n\r\n", &hm) > 0);
  assert_str(hm.uri, "/a/b");
  assert_true(req("GET http://h HTTP/1.1\r\nHost: h\r\n\r\n", &hm) > 0);
  assert_str(hm.uri, "/");
  assert_true(req("GET http://h?x=2 HTTP/1.1\r\nHost: h\r\n\r\n", &hm) > 0);
  assert_str(hm.uri, "/");
  assert_str(hm.query, "x=2");
  assert_true(req("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", &hm) > 0);
  assert_str(hm.uri, "example.com:443");
  assert_true(req("CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n\r\n", &hm) > 0);
  assert_str(hm.uri, "[::1]:443");
  const char *bad[] = {
      "GET * HTTP/1.1\r\nHost: h\r\n\r\n",                  /* asterisk-form without OPTIONS */
      "OPTIONS h:80 HTTP/1.1\r\nHost: h\r\n\r\n",            /* authority-form without CONNECT */
      "GET example.com:80 HTTP/1.1\r\nHost: h\r\n\r\n",
      "CONNECT / HTTP/1.1\r\nHost: h\r\n\r\n",               /* CONNECT needs host:port */
      "CONNECT * HTTP/1.1\r\nHost: h\r\n\r\n",
      "CONNECT http://h:443/ HTTP/1.1\r\nHost: h\r\n\r\n",
      "CONNECT h: HTTP/1.1\r\nHost: h\r\n\r\n",
      "CONNECT u@h:443 HTTP/1.1\r\nHost: h\r\n\r\n",
      "GET /a#frag HTTP/1.1\r\nHost: h\r\n\r\n",             /* fragments are never sent */
      "GET /a?x#f HTTP/1.1\r\nHost: h\r\n\r\n",
      "GET http://h/#f HTTP/1.1\r\nHost: h\r\n\r\n",
      "GET foo HTTP/1.1\r\nHost: h\r\n\r\n",                 /* neither a path nor a URI */
      "GET http:///x HTTP/1.1\r\nHost: h\r\n\r\n",           /* absolute-form without host */
      "GET 1http://h/ HTTP/1.1\r\nHost: h\r\n\r\n",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    int r = req(bad[i], &hm);
    if (r != CM_HTTP_ERR_BAD) fail_msg("accepted (%d): %s", r, bad[i]);
    assert_non_null(hm.error);
    check_every_split(cm_http_parse_request, bad[i], strlen(bad[i]), NULL);
  }
}

static void post_with_body(void **state) {
  (void) state;
  struct cm_http_msg hm;
  const char *s = "POST /f HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello";
  size_t n = strlen(s);
  int r = req(s, &hm);
  assert_int_equal(r, (int) (n - 5));
  assert_int_equal(hm.framing, CM_HTTP_BODY_LENGTH);
  assert_int_equal(hm.content_length, 5);
  assert_str(hm.body, "hello");
  assert_int_equal(hm.message.len, n);
  /* partial body: the view stops at what is there */
  r = cm_http_parse_request(guarded(s, n - 2), n - 2, &hm, NULL);
  assert_int_equal(r, (int) (n - 5));
  assert_str(hm.body, "hel");
  assert_int_equal(hm.content_length, 5);
  /* extra bytes after the body are not part of it */
  const char *t = "POST /f HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhiGET";
  r = req(t, &hm);
  assert_str(hm.body, "hi");
  assert_int_equal(hm.message.len, (size_t) r + 2);
}

static void content_length_repeats_that_agree(void **state) {
  (void) state;
  struct cm_http_msg hm;
  assert_true(req("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 3\r\n\r\nabc", &hm) > 0);
  assert_int_equal(hm.content_length, 3);
  assert_true(req("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\n", &hm) > 0);
  assert_int_equal(hm.content_length, 3);
  assert_true(req("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 007\r\n\r\n", &hm) > 0);
  assert_int_equal(hm.content_length, 7);
  assert_true(req("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", &hm) > 0);
  assert_int_equal(hm.framing, CM_HTTP_BODY_LENGTH);
  assert_int_equal(hm.content_length, 0);
}

static void chunked_request(void **state) {
  (void) state;
  struct cm_http_msg hm;
  const char *s = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n";
  assert_int_equal(req(s, &hm), (int) strlen(s));
  assert_int_equal(hm.framing, CM_HTTP_BODY_CHUNKED);
  assert_int_equal(hm.body.len, 0);
  /* empty list elements are fine */
  assert_true(req("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: ,chunked\r\n\r\n", &hm) > 0);
  assert_int_equal(hm.framing, CM_HTTP_BODY_CHUNKED);
}

static void leading_empty_lines_skipped(void **state) {
  (void) state;
  struct cm_http_msg hm;
  const char *s = "\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n";
  assert_int_equal(req(s, &hm), (int) strlen(s));
  assert_str(hm.method, "GET");
  assert_int_equal(hm.head.len, strlen(s) - 4);
  assert_true(hm.head.buf[0] == 'G');
}

static void http10_and_keep_alive(void **state) {
  (void) state;
  struct cm_http_msg hm;
  assert_true(req("GET / HTTP/1.0\r\n\r\n", &hm) > 0); /* no Host needed */
  assert_int_equal(hm.minor_version, 0);
  assert_false(hm.keep_alive);
  assert_true(req("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &hm) > 0);
  assert_true(hm.keep_alive);
  assert_true(req("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", &hm) > 0);
  assert_false(hm.keep_alive);
  assert_true(req("GET / HTTP/1.1\r\nHost: h\r\nConnection: foo, CLOSE\r\n\r\n", &hm) > 0);
  assert_false(hm.keep_alive);
  assert_true(req("GET / HTTP/1.1\r\nHost: h\r\nConnection: closer\r\n\r\n", &hm) > 0);
  assert_true(hm.keep_alive);
  assert_true(req("GET / HTTP/1.2\r\nHost: h\r\n\r\n", &hm) > 0); /* as 1.1 */
  assert_int_equal(hm.minor_version, 1);
  assert_str(hm.proto, "HTTP/1.2");
  assert_true(hm.keep_alive);
}

static void upgrade_and_expect(void **state) {
  (void) state;
  struct cm_http_msg hm;
  assert_true(req("GET /ws HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\n"
                  "Upgrade: websocket\r\n\r\n", &hm) > 0);
  assert_true(hm.upgrade);
  assert_true(hm.keep_alive);
  assert_true(req("GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\n\r\n", &hm) > 0);
  assert_false(hm.upgrade); /* no Upgrade header */
  assert_true(req("PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 9\r\nExpect: 100-Continue\r\n\r\n", &hm) > 0);
  assert_true(hm.expect_continue);
  assert_true(req("PUT / HTTP/1.0\r\nContent-Length: 9\r\nExpect: 100-continue\r\n\r\n", &hm) > 0);
  assert_false(hm.expect_continue); /* 1.0 clients do not wait */
}

static void obs_text_and_tabs_in_values(void **state) {
  (void) state;
  struct cm_http_msg hm;
  assert_true(req("GET / HTTP/1.1\r\nHost: h\r\nX: a\tb \xc3\xa9\t\r\nY:\r\n\r\n", &hm) > 0);
  assert_str(hm.headers[1].value, "a\tb \xc3\xa9");
  assert_str(hm.headers[2].name, "Y");
  assert_int_equal(hm.headers[2].value.len, 0);
}

static void pipelined_requests(void **state) {
  (void) state;
  const char *s =
      "GET /1 HTTP/1.1\r\nHost: h\r\n\r\n"
      "POST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
      "GET /3?z HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
  size_t len = strlen(s), off = 0;
  const char *buf = guarded(s, len);
  const char *uris[] = {"/1", "/2", "/3"};
  for (int k = 0; k < 3; k++) {
    struct cm_http_msg hm;
    int r = cm_http_parse_request(buf + off, len - off, &hm, NULL);
    assert_true(r > 0);
    assert_str(hm.uri, uris[k]);
    off += (size_t) r + hm.body.len;
    if (k == 1) assert_str(hm.body, "abc");
    if (k == 2) assert_false(hm.keep_alive);
  }
  assert_int_equal(off, len);
}

static void every_split_valid(void **state) {
  (void) state;
  const char *msgs[] = {
      "GET /a/b?x=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n",
      "\r\nPOST /f HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
      "PUT /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nX-Empty:\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
      "GET / HTTP/1.0\r\n\r\n",
  };
  for (size_t i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
    assert_true(check_every_split(cm_http_parse_request, msgs[i], strlen(msgs[i]), NULL) > 0);
  }
  const char *resps[] = {
      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi",
      "HTTP/1.1 204 No Content\r\n\r\n",
      "HTTP/1.0 200\r\nServer: x\r\n\r\nuntil close",
  };
  for (size_t i = 0; i < sizeof(resps) / sizeof(resps[0]); i++) {
    assert_true(check_every_split(cm_http_parse_response, resps[i], strlen(resps[i]), NULL) > 0);
  }
}

/* --------------------------------------------------------- requests: bad */

struct bad_case {
  const char *input;
  int err;
};

static const struct bad_case bad_requests[] = {
    /* framing: request smuggling shapes (RFC 9112 6.1, 6.3) */
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", CM_HTTP_ERR_BAD},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", CM_HTTP_ERR_BAD},
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", CM_HTTP_ERR_BAD},
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1,2\r\n\r\n", CM_HTTP_ERR_BAD},
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1,\r\n\r\n", CM_HTTP_ERR_BAD},
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\n", CM_HTTP_ERR_BAD},
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", CM_HTTP_ERR_BAD},
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1 2\r\n\r\n", CM_HTTP_ERR_BAD},
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x10\r\n\r\n", CM_HTTP_ERR_BAD},
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5.0\r\n\r\n", CM_HTTP_ERR_BAD},
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n", CM_HTTP_ERR_BAD},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", CM_HTTP_ERR_BAD},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", CM_HTTP_ERR_BAD},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", CM_HTTP_ERR_BAD},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked;x=1\r\n\r\n", CM_HTTP_ERR_BAD},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n", CM_HTTP_ERR_BAD},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\n\r\n", CM_HTTP_ERR_BAD},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \"chunked\"\r\n\r\n", CM_HTTP_ERR_BAD},
    {"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", CM_HTTP_ERR_BAD},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", CM_HTTP_ERR_NOT_IMPLEMENTED},
    /* line structure */
    {"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", CM_HTTP_ERR_BAD},   /* obs-fold */
    {"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n\tb\r\n\r\n", CM_HTTP_ERR_BAD},  /* obs-fold */
    {"GET / HTTP/1.1\r\n Host: h\r\n\r\n", CM_HTTP_ERR_BAD},                /* SP first */
    {"GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n", CM_HTTP_ERR_BAD},      /* bare CR */
    {"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\r\n\r\n", CM_HTTP_ERR_BAD},       /* bare CR */
    {"GET / HTTP/1.1\r\nHost: h\nX: a\r\n\r\n", CM_HTTP_ERR_BAD},           /* bare LF */
    {"GET / HTTP/1.1\nHost: h\r\n\r\n", CM_HTTP_ERR_BAD},                   /* bare LF */
    {"GET / HTTP/1.1\r\nHost: h\r\n\n", CM_HTTP_ERR_BAD},                   /* bare LF */
    {"GET / HTTP/1.1\r\nHost: h\r\n\r\r", CM_HTTP_ERR_BAD},
    {"\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", CM_HTTP_ERR_BAD},
    {"\r\rGET / HTTP/1.1\r\nHost: h\r\n\r\n", CM_HTTP_ERR_BAD},
    /* header names and values */
    {"GET / HTTP/1.1\r\nHost : h\r\n\r\n", CM_HTTP_ERR_BAD},                /* SP before colon */
    {"GET / HTTP/1.1\r\nHost\t: h\r\n\r\n", CM_HTTP_ERR_BAD},
    {"GET / HTTP/1.1\r\nHost: h\r\nX(y): 1\r\n\r\n", CM_HTTP_ERR_BAD},
    {"GET / HTTP/1.1\r\nHost: h\r\nX\"y: 1\r\n\r\n", CM_HTTP_ERR_BAD},
    {"GET / HTTP/1.1\r\nHost: h\r\n: 1\r\n\r\n", CM_HTTP_ERR_BAD},           /* empty name */
    {"GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n", CM_HTTP_ERR_BAD},
    {"GET / HTTP/1.1\r\nHost: h\r\nX: a\x01" "b\r\n\r\n", CM_HTTP_ERR_BAD},
    {"GET / HTTP/1.1\r\nHost: h\r\nX: a\x7f\r\n\r\n", CM_HTTP_ERR_BAD},
    {"GET / HTTP/1.1\r\nHost: h\r\nX: \x1b[31m\r\n\r\n", CM_HTTP_ERR_BAD},
    {"GET / HTTP/1.1\r\nHost: h\r\nX\xc3\xa9: 1\r\n\r\n", CM_HTTP_ERR_BAD},
    /* Host */
    {"GET / HTTP/1.1\r\n\r\n", CM_HTTP_ERR_BAD},
    {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", CM_HTTP_ERR_BAD},
    {"GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", CM_HTTP_ERR_BAD},
    {"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", CM_HTTP_ERR_BAD},
    {"GET / HTTP/1.1\r\nHost: a,b\r\n\r\n", CM_HTTP_ERR_BAD},
    {"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", CM_HTTP_ERR_BAD},
    {"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", CM_HTTP_ERR_BAD},
    /* request line */
    {"G@T / HTTP/1.1\r\nHost: h\r\n\r\n", CM_HTTP_ERR_BAD},
    {"GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n", CM_HTTP_ERR_BAD},
    {" GET / HTTP/1.1\r\nHost: h\r\n\r\n", CM_HTTP_ERR_BAD},
    {"GET  / HTTP/1.1\r\nHost: h\r\n\r\n", CM_HTTP_ERR_BAD},
    {"GET / /x HTTP/1.1\r\nHost: h\r\n\r\n", CM_HTTP_ERR_BAD},
    {"GET /a b HTTP/1.1\r\nHost: h\r\n\r\n", CM_HTTP_ERR_BAD},
    {"GET /a\tb HTTP/1.1\r\nHost: h\r\n\r\n", CM_HTTP_ERR_BAD},
    {"GET /a\x01 HTTP/1.1\r\nHost: h\r\n\r\n", CM_HTTP_ERR_BAD},
    {"GET /a\x7f HTTP/1.1\r\nHost: h\r\n\r\n", CM_HTTP_ERR_BAD},
    {"GET /\r\n\r\n", CM_HTTP_ERR_BAD},                                    /* HTTP/0.9 */
    {"GET / HTTP/1.1 \r\nHost: h\r\n\r\n", CM_HTTP_ERR_BAD},
    {"GET / http/1.1\r\nHost: h\r\n\r\n", CM_HTTP_ERR_BAD},
    {"GET / HTTP/11\r\nHost: h\r\n\r\n", CM_HTTP_ERR_BAD},
    {"GET / HTTP/1.x\r\nHost: h\r\n\r\n", CM_HTTP_ERR_BAD},
    {"GET / HTTP/1.10\r\nHost: h\r\n\r\n", CM_HTTP_ERR_BAD},
    {"GET / HTTP/2.0\r\nHost: h\r\n\r\n", CM_HTTP_ERR_VERSION},
    {"GET / HTTP/0.9\r\nHost: h\r\n\r\n", CM_HTTP_ERR_VERSION},
    {"GET / HTTP/9.9\r\nHost: h\r\n\r\n", CM_HTTP_ERR_VERSION},
    {"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", CM_HTTP_ERR_BAD}, /* TLS on the plain port */
    {"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", CM_HTTP_ERR_VERSION},
    /* body limits */
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 16777217\r\n\r\n", CM_HTTP_ERR_BODY_TOO_LARGE},
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999999\r\n\r\n",
     CM_HTTP_ERR_BODY_TOO_LARGE},
};

static void malformed_requests(void **state) {
  (void) state;
  for (size_t i = 0; i < sizeof(bad_requests) / sizeof(bad_requests[0]); i++) {
    struct cm_http_msg hm;
    const char *s = bad_requests[i].input;
    int r = req(s, &hm);
    if (r != bad_requests[i].err) {
      print_error("case %zu: %s\n  got %d (%s), want %d\n", i, s, r, hm.error ? hm.error : "-",
                  bad_requests[i].err);
    }
    assert_int_equal(r, bad_requests[i].err);
    assert_non_null(hm.error);
    /* and the same answer (or "need more") for every prefix */
    check_every_split(cm_http_parse_request, s, strlen(s), NULL);
  }
}

/* Feeds msg one byte at a time to the incremental scanner: every answer is
 * "need more" or the one-shot parser's answer on the same bytes, and the
 * last one is the one-shot answer on the whole message (an error inside a
 * last, incomplete line may still read as "need more"). */
static void scan_matches(bool is_request, const char *msg, const struct cm_http_limits *lim) {
  size_t len = strlen(msg);
  struct cm_http_scan st;
  cm_http_scan_init(&st);
  struct cm_http_msg hm, whole;
  int r = 0;
  for (size_t k = 1; k <= len && r == 0; k++) {
    const char *b = guarded(msg, k);
    r = is_request ? cm_http_scan_request(&st, b, k, &hm, lim)
                   : cm_http_scan_response_to(&st, cm_str_n(NULL, 0), b, k, &hm, lim);
    int one = is_request ? cm_http_parse_request(b, k, &whole, lim) : cm_http_parse_response(b, k, &whole, lim);
    if (r != 0 && r != one) fail_msg("at %zu of %s: scan %d, parse %d", k, msg, r, one);
  }
  const char *b = guarded(msg, len);
  int one = is_request ? cm_http_parse_request(b, len, &whole, lim) : cm_http_parse_response(b, len, &whole, lim);
  bool last_line_open = memchr(msg, '\n', len) == NULL || msg[len - 1] != '\n';
  if (r != one && !(r == 0 && one < 0 && last_line_open)) fail_msg("%s: scan %d, parse %d", msg, r, one);
  if (r > 0) assert_int_equal(hm.num_headers, whole.num_headers);
  if (r < 0) assert_string_equal(hm.error, whole.error);
}

static void scan_in_pieces(void **state) {
  (void) state;
  scan_matches(true, "GET /a/b?x=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent:  curl/8 \r\n\r\n", NULL);
  scan_matches(true, "\r\n\r\nPOST /f HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello", NULL);
  scan_matches(false, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi", NULL);
  scan_matches(false, "HTTP/1.1 204\r\n\r\n", NULL);
  for (size_t i = 0; i < sizeof(bad_requests) / sizeof(bad_requests[0]); i++) {
    scan_matches(true, bad_requests[i].input, NULL);
  }
  /* limits: header count, head size, target length */
  struct cm_http_limits lim = {.max_head = 40};
  scan_matches(true, "GET / HTTP/1.1\r\nHost: h\r\nX-Long: 0123456789\r\n\r\n", &lim);
  scan_matches(true, "GET / HTTP/1.1\r\nHost: h\r\nX-Long: 0123456789012345678901234567890", &lim);
  struct cm_http_limits few = {.max_headers = 2};
  scan_matches(true, "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n", &few);
  struct cm_http_limits uri = {.max_uri = 8};
  scan_matches(true, "GET /0123456789 HTTP/1.1\r\nHost: h\r\n\r\n", &uri);
  /* an endless line is refused once the head passes max_head */
  static char big[20000];
  memset(big, 'a', sizeof(big) - 1);
  memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
  struct cm_http_scan st;
  cm_http_scan_init(&st);
  struct cm_http_msg hm;
  int r = 0;
  size_t k;
  for (k = 1; k < sizeof(big) && r == 0; k++) r = cm_http_scan_request(&st, guarded(big, k), k, &hm, NULL);
  assert_int_equal(r, CM_HTTP_ERR_HDRS_TOO_LARGE);
  assert_int_equal(k - 1, 16385);
}

/* What was validated is not read again until the head is complete: earlier
 * lines overwritten with garbage (which a rescan would reject) go unseen
 * while the last line trickles in. */
static void scan_does_not_rescan(void **state) {
  (void) state;
  char msg[] = "GET /x HTTP/1.1\r\nHost: h\r\nX-Slow: abcdefghijklmnopqrstuvwxyz\r\n\r\n";
  size_t len = strlen(msg), slow = (size_t) (strstr(msg, "X-Slow") - msg);
  char buf[sizeof(msg)];
  struct cm_http_scan st;
  cm_http_scan_init(&st);
  struct cm_http_msg hm;
  for (size_t k = 1; k < len; k++) {
    memcpy(buf, msg, k);
    if (k > slow + 8) memset(buf, 0x01, slow); /* corrupt what was validated */
    assert_int_equal(cm_http_scan_request(&st, guarded(buf, k), k, &hm, NULL), 0);
  }
  /* the final parse reads it all, once */
  assert_int_equal(cm_http_scan_request(&st, guarded(msg, len), len, &hm, NULL), (int) len);
  assert_str(hm.headers[1].value, "abcdefghijklmnopqrstuvwxyz");
}

/* A head whose complete lines end exactly at max_head, with more bytes
 * beyond it, is too large: the scanner must not wait for more (found by
 * fuzz_http: the one-shot parser said 431, the scanner "need more"). */
static void scan_line_ending_at_max_head(void **state) {
  (void) state;
  struct cm_http_limits lim = {.max_head = 64};
  char msg[128];
  /* "HTTP/1.1 200 OK\r\n" (17) + "X: " + filler + "\r\n" = 64 bytes */
  memset(msg, 'a', sizeof(msg));
  memcpy(msg, "HTTP/1.1 200 OK\r\nX: ", 20);
  msg[62] = '\r', msg[63] = '\n';
  memcpy(msg + 64, "Y: b\r\n\r\n", 9);
  size_t len = 73;
  struct cm_http_msg hm;
  assert_int_equal(cm_http_parse_response(guarded(msg, len), len, &hm, &lim), CM_HTTP_ERR_HDRS_TOO_LARGE);
  struct cm_http_scan st;
  cm_http_scan_init(&st);
  assert_int_equal(cm_http_scan_response_to(&st, cm_str_n(NULL, 0), guarded(msg, 32), 32, &hm, &lim), 0);
  assert_int_equal(cm_http_scan_response_to(&st, cm_str_n(NULL, 0), guarded(msg, len), len, &hm, &lim),
                   CM_HTTP_ERR_HDRS_TOO_LARGE);
}

static int norm(const char *uri, char *out, size_t len) {
  return cm_http_normalize_path(cm_str_n(guarded(uri, strlen(uri)), strlen(uri)), out, len);
}

/* The path access checks compare against: one spelling per resource. */
static void normalized_paths(void **state) {
  (void) state;
  struct {
    const char *in, *out;
  } cases[] = {
      {"/", "/"},
      {"/private/a", "/private/a"},
      {"/%70rivate/a", "/private/a"},
      {"//private/a", "/private/a"},
      {"/./private/a", "/private/a"},
      {"/public/../private/a", "/private/a"},
      {"/public/%2e%2e/private/a", "/private/a"},
      {"/public%2f..%2fprivate/a", "/private/a"},
      {"/../../private", "/private"},
      {"/..", "/"},
      {"/a/b/..", "/a/"},
      {"/a/.", "/a/"},
      {"/a/", "/a/"},
      {"/a//", "/a/"},
      {"/a%20b", "/a b"},
      {"/a%2F", "/a/"},
      {"/%c3%a9", "/\xc3\xa9"},
      {"/.env", "/.env"},
      {"/a\\b", "/a\\b"},
  };
  char out[64];
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    int n = norm(cases[i].in, out, sizeof(out));
    if (n < 0 || strcmp(out, cases[i].out) != 0 || (size_t) n != strlen(cases[i].out)) {
      fail_msg("%s: got %d '%s', want '%s'", cases[i].in, n, n < 0 ? "" : out, cases[i].out);
    }
    /* uri.len + 1 bytes always suffice */
    assert_int_equal(norm(cases[i].in, out, strlen(cases[i].in) + 1), n);
  }
  const char *bad[] = {"", "a/b", "*", "/%", "/%4", "/%zz", "/a%00b", "/%0"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    if (norm(bad[i], out, sizeof(out)) != -1) fail_msg("accepted: '%s'", bad[i]);
  }
  assert_int_equal(norm("/abc", out, 4), -1); /* too small */
  assert_int_equal(norm("/abc", out, 5), 4);
}

static void error_statuses(void **state) {
  (void) state;
  assert_int_equal(cm_http_err_status(CM_HTTP_ERR_BAD), 400);
  assert_int_equal(cm_http_err_status(CM_HTTP_ERR_HDRS_TOO_LARGE), 431);
  assert_int_equal(cm_http_err_status(CM_HTTP_ERR_BODY_TOO_LARGE), 413);
  assert_int_equal(cm_http_err_status(CM_HTTP_ERR_URI_TOO_LONG), 414);
  assert_int_equal(cm_http_err_status(CM_HTTP_ERR_VERSION), 505);
  assert_int_equal(cm_http_err_status(CM_HTTP_ERR_NOT_IMPLEMENTED), 501);
  assert_int_equal(cm_http_err_status(-99), 400);
  assert_string_equal(cm_http_status_text(200), "OK");
  assert_string_equal(cm_http_status_text(404), "Not Found");
  assert_string_equal(cm_http_status_text(431), "Request Header Fields Too Large");
  assert_string_equal(cm_http_status_text(599), "");
}

/* --------------------------------------------------------------- limits */

static void header_block_limit(void **state) {
  (void) state;
  static char big[20000];
  struct cm_http_msg hm;
  /* exactly at the default limit passes, one byte more is 431 */
  const char *pre = "GET / HTTP/1.1\r\nHost: h\r\nX: ";
  size_t fixed = strlen(pre) + 4; /* value then "\r\n\r\n" */
  size_t vlen = 16384 - fixed;
  memcpy(big, pre, strlen(pre));
  memset(big + strlen(pre), 'a', vlen);
  memcpy(big + strlen(pre) + vlen, "\r\n\r\n", 4);
  assert_int_equal(cm_http_parse_request(guarded(big, 16384), 16384, &hm, NULL), 16384);
  memcpy(big + strlen(pre), "a", 1);
  memset(big + strlen(pre), 'a', vlen + 1);
  memcpy(big + strlen(pre) + vlen + 1, "\r\n\r\n", 4);
  assert_int_equal(cm_http_parse_request(guarded(big, 16385), 16385, &hm, NULL),
                   CM_HTTP_ERR_HDRS_TOO_LARGE);
  /* an endless head is refused once it passes the limit, before it ends */
  memset(big, 'a', sizeof(big));
  memcpy(big, pre, strlen(pre));
  assert_int_equal(cm_http_parse_request(guarded(big, 16384), 16384, &hm, NULL), 0);
  assert_int_equal(cm_http_parse_request(guarded(big, 16385), 16385, &hm, NULL),
                   CM_HTTP_ERR_HDRS_TOO_LARGE);
  /* a small configured limit, checked at every split point */
  struct cm_http_limits lim = {.max_head = 40};
  const char *s = "GET / HTTP/1.1\r\nHost: h\r\nX-Long: 0123456789\r\n\r\n";
  assert_int_equal(check_every_split(cm_http_parse_request, s, strlen(s), &lim),
                   CM_HTTP_ERR_HDRS_TOO_LARGE);
}

static void header_count_limit(void **state) {
  (void) state;
  static char buf[4096];
  struct cm_http_msg hm;
  size_t n = (size_t) snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\n");
  for (int i = 0; i < CM_HTTP_MAX_HEADERS; i++) {
    n += (size_t) snprintf(buf + n, sizeof(buf) - n, "%s: %d\r\n", i == 0 ? "Host" : "X", i);
  }
  memcpy(buf + n, "\r\n", 2);
  assert_true(cm_http_parse_request(guarded(buf, n + 2), n + 2, &hm, NULL) > 0);
  assert_int_equal(hm.num_headers, CM_HTTP_MAX_HEADERS);
  memcpy(buf + n, "Y: 1\r\n\r\n", 8);
  assert_int_equal(cm_http_parse_request(guarded(buf, n + 8), n + 8, &hm, NULL),
                   CM_HTTP_ERR_HDRS_TOO_LARGE);
  struct cm_http_limits lim = {.max_headers = 2};
  const char *s = "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n";
  assert_int_equal(check_every_split(cm_http_parse_request, s, strlen(s), &lim),
                   CM_HTTP_ERR_HDRS_TOO_LARGE);
  lim.max_headers = 3;
  assert_true(check_every_split(cm_http_parse_request, s, strlen(s), &lim) > 0);
}

static void uri_and_body_limits(void **state) {
  (void) state;
  struct cm_http_msg hm;
  struct cm_http_limits lim = {.max_uri = 4, .max_body = 10};
  const char *ok = "GET /abc HTTP/1.1\r\nHost: h\r\n\r\n";
  const char *longer = "GET /abcd HTTP/1.1\r\nHost: h\r\n\r\n";
  assert_true(check_every_split(cm_http_parse_request, ok, strlen(ok), &lim) > 0);
  assert_int_equal(check_every_split(cm_http_parse_request, longer, strlen(longer), &lim),
                   CM_HTTP_ERR_URI_TOO_LONG);
  /* the default limit, 8 KiB */
  static char big[9000];
  memset(big, 'a', sizeof(big));
  memcpy(big, "GET /", 5);
  assert_int_equal(cm_http_parse_request(guarded(big, sizeof(big)), sizeof(big), &hm, NULL),
                   CM_HTTP_ERR_URI_TOO_LONG);
  const char *b10 = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n";
  const char *b11 = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n";
  assert_true(cm_http_parse_request(b10, strlen(b10), &hm, &lim) > 0);
  assert_int_equal(cm_http_parse_request(b11, strlen(b11), &hm, &lim), CM_HTTP_ERR_BODY_TOO_LARGE);
  struct cm_http_limits r = cm_http_limits_resolve(NULL);
  assert_int_equal(r.max_head, 16384);
  assert_int_equal(r.max_headers, CM_HTTP_MAX_HEADERS);
  assert_int_equal(r.max_uri, 8192);
  assert_int_equal(r.max_body, 16 * 1024 * 1024);
}

/* ------------------------------------------------------------ responses */

static void responses(void **state) {
  (void) state;
  struct cm_http_msg hm;
  const char *s = "HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nabc";
  assert_int_equal(resp(s, &hm), (int) strlen(s) - 3);
  assert_int_equal(hm.status, 404);
  assert_str(hm.reason, "Not Found");
  assert_str(hm.proto, "HTTP/1.1");
  assert_null(hm.method.buf);
  assert_int_equal(hm.framing, CM_HTTP_BODY_LENGTH);
  assert_str(hm.body, "abc");
  assert_true(hm.keep_alive);

  assert_true(resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", &hm) > 0);
  assert_int_equal(hm.framing, CM_HTTP_BODY_CHUNKED);

  /* no CL/TE: until close, which ends keep-alive */
  assert_true(resp("HTTP/1.1 200 OK\r\n\r\npartial", &hm) > 0);
  assert_int_equal(hm.framing, CM_HTTP_BODY_UNTIL_CLOSE);
  assert_str(hm.body, "partial");
  assert_false(hm.keep_alive);
  /* non-chunked final coding in a response: until close too */
  assert_true(resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", &hm) > 0);
  assert_int_equal(hm.framing, CM_HTTP_BODY_UNTIL_CLOSE);

  /* statuses without a body, whatever the headers say */
  assert_true(resp("HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n", &hm) > 0);
  assert_int_equal(hm.framing, CM_HTTP_BODY_NONE);
  assert_true(hm.keep_alive);
  assert_true(resp("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", &hm) > 0);
  assert_int_equal(hm.framing, CM_HTTP_BODY_NONE);
  assert_true(resp("HTTP/1.1 100 Continue\r\n\r\n", &hm) > 0);
  assert_int_equal(hm.status, 100);
  assert_int_equal(hm.framing, CM_HTTP_BODY_NONE);
  assert_true(resp("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
                   &hm) > 0);
  assert_true(hm.upgrade);

  /* HEAD and CONNECT */
  const char *h = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n";
  assert_true(cm_http_parse_response_to(cm_str_c("HEAD"), h, strlen(h), &hm, NULL) > 0);
  assert_int_equal(hm.framing, CM_HTTP_BODY_NONE);
  assert_true(cm_http_parse_response_to(cm_str_c("CONNECT"), h, strlen(h), &hm, NULL) > 0);
  assert_int_equal(hm.framing, CM_HTTP_BODY_NONE);
  assert_true(cm_http_parse_response_to(cm_str_c("GET"), h, strlen(h), &hm, NULL) > 0);
  assert_int_equal(hm.framing, CM_HTTP_BODY_LENGTH);

  /* reason phrase variants */
  assert_true(resp("HTTP/1.1 200 \r\n\r\n", &hm) > 0);
  assert_int_equal(hm.reason.len, 0);
  assert_true(resp("HTTP/1.1 200\r\n\r\n", &hm) > 0);
  assert_int_equal(hm.reason.len, 0);
  assert_true(resp("HTTP/1.1 599 Odd \xff Reason\r\n\r\n", &hm) > 0);
  assert_int_equal(hm.status, 599);
  assert_true(resp("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", &hm) > 0);
  assert_true(hm.keep_alive);
  assert_true(resp("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", &hm) > 0);
  assert_false(hm.keep_alive);
}

static const struct bad_case bad_responses[] = {
    {"HTTP/1.1 20 OK\r\n\r\n", CM_HTTP_ERR_BAD},
    {"HTTP/1.1 2000 OK\r\n\r\n", CM_HTTP_ERR_BAD},
    {"HTTP/1.1 099 OK\r\n\r\n", CM_HTTP_ERR_BAD},
    {"HTTP/1.1 abc OK\r\n\r\n", CM_HTTP_ERR_BAD},
    {"HTTP/1.1  200 OK\r\n\r\n", CM_HTTP_ERR_BAD},
    {"HTTP/1.1 200 O\x01K\r\n\r\n", CM_HTTP_ERR_BAD},
    {"HTTP/1.1 200 OK\n\r\n", CM_HTTP_ERR_BAD},
    {"HTTP/2 200 OK\r\n\r\n", CM_HTTP_ERR_BAD},
    {"HTTP/2.0 200 OK\r\n\r\n", CM_HTTP_ERR_VERSION},
    {"ICY 200 OK\r\n\r\n", CM_HTTP_ERR_BAD},
    {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", CM_HTTP_ERR_BAD},
    {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", CM_HTTP_ERR_BAD},
    {"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", CM_HTTP_ERR_BAD},
    {"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", CM_HTTP_ERR_BAD},
    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", CM_HTTP_ERR_NOT_IMPLEMENTED},
    {"HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", CM_HTTP_ERR_BAD},
    {"HTTP/1.1 200 OK\r\nX : a\r\n\r\n", CM_HTTP_ERR_BAD},
    {"HTTP/1.1 200 OK\r\nContent-Length: 16777217\r\n\r\n", CM_HTTP_ERR_BODY_TOO_LARGE},
};

static void malformed_responses(void **state) {
  (void) state;
  for (size_t i = 0; i < sizeof(bad_responses) / sizeof(bad_responses[0]); i++) {
    struct cm_http_msg hm;
    const char *s = bad_responses[i].input;
    int r = resp(s, &hm);
    if (r != bad_responses[i].err) {
      print_error("case %zu: %s\n  got %d (%s), want %d\n", i, s, r, hm.error ? hm.error : "-",
                  bad_responses[i].err);
    }
    assert_int_equal(r, bad_responses[i].err);
    check_every_split(cm_http_parse_response, s, strlen(s), NULL);
  }
}

/* ------------------------------------------------------------- helpers */

static void header_lookup(void **state) {
  (void) state;
  struct cm_http_msg hm;
  assert_true(req("GET / HTTP/1.1\r\nHost: h\r\ncontent-TYPE: text/html; charset=\"utf-8\"\r\n"
                  "Connection: keep-alive,  Upgrade ,x\r\nUpgrade: websocket\r\n\r\n", &hm) > 0);
  struct cm_str *ct = cm_http_get_header(&hm, "Content-Type");
  assert_non_null(ct);
  assert_str(*ct, "text/html; charset=\"utf-8\"");
  assert_null(cm_http_get_header(&hm, "Content"));
  assert_null(cm_http_get_header(&hm, "Content-Types"));
  assert_str(cm_http_get_header_var(*ct, cm_str_c("charset")), "utf-8");
  assert_str(cm_http_get_header_var(*ct, cm_str_c("CHARSET")), "utf-8");
  assert_null(cm_http_get_header_var(*ct, cm_str_c("char")).buf);
  assert_true(cm_http_header_has_token(&hm, "connection", "upgrade"));
  assert_true(cm_http_header_has_token(&hm, "connection", "X"));
  assert_true(cm_http_header_has_token(&hm, "connection", "keep-alive"));
  assert_false(cm_http_header_has_token(&hm, "connection", "keep"));
  assert_false(cm_http_header_has_token(&hm, "upgrade", "upgrade"));
  assert_true(cm_http_has_token(cm_str_c("a,b, c"), "c"));
  assert_false(cm_http_has_token(cm_str_c(""), "c"));
  assert_false(cm_http_has_token(cm_str_n(NULL, 0), "c"));
}

static void header_vars(void **state) {
  (void) state;
  struct cm_str v = cm_str_c("form-data; name=\"file\"; filename=\"a b.txt\"");
  assert_str(cm_http_get_header_var(v, cm_str_c("name")), "file");
  assert_str(cm_http_get_header_var(v, cm_str_c("filename")), "a b.txt");
  v = cm_str_c("multipart/form-data; boundary=----WebKitFormBoundary7MA4");
  assert_str(cm_http_get_header_var(v, cm_str_c("boundary")), "----WebKitFormBoundary7MA4");
  v = cm_str_c("Digest realm=\"r\", nonce=\"n,1\", qop=auth");
  assert_str(cm_http_get_header_var(v, cm_str_c("realm")), "r");
  assert_str(cm_http_get_header_var(v, cm_str_c("nonce")), "n,1");
  assert_str(cm_http_get_header_var(v, cm_str_c("qop")), "auth");
  v = cm_str_c("a=1;b = 2 ;c=\"unterminated");
  assert_str(cm_http_get_header_var(v, cm_str_c("a")), "1");
  assert_str(cm_http_get_header_var(v, cm_str_c("b")), "2");
  assert_str(cm_http_get_header_var(v, cm_str_c("c")), "unterminated");
  assert_null(cm_http_get_header_var(cm_str_c("x"), cm_str_c("x")).buf);
  assert_null(cm_http_get_header_var(cm_str_c(""), cm_str_c("x")).buf);
  assert_str(cm_http_get_header_var(cm_str_c("x="), cm_str_c("x")), "");
}

static void url_decoding(void **state) {
  (void) state;
  char out[16];
  assert_int_equal(cm_url_decode("a%20b%2Fc", 9, out, sizeof(out), false), 5);
  assert_string_equal(out, "a b/c");
  assert_int_equal(cm_url_decode("a+b", 3, out, sizeof(out), false), 3);
  assert_string_equal(out, "a+b");
  assert_int_equal(cm_url_decode("a+b", 3, out, sizeof(out), true), 3);
  assert_string_equal(out, "a b");
  assert_int_equal(cm_url_decode("%00x", 4, out, sizeof(out), false), 2);
  assert_int_equal(out[0], 0);
  assert_int_equal(cm_url_decode("%", 1, out, sizeof(out), false), CM_EINVAL);
  assert_int_equal(cm_url_decode("%2", 2, out, sizeof(out), false), CM_EINVAL);
  assert_int_equal(cm_url_decode("%zz", 3, out, sizeof(out), false), CM_EINVAL);
  assert_int_equal(cm_url_decode("abcd", 4, out, 4, false), CM_ENOSPC); /* no room for NUL */
  assert_int_equal(cm_url_decode("abc", 3, out, 4, false), 3);
  assert_int_equal(cm_url_decode("", 0, out, 1, false), 0);
  assert_int_equal(cm_url_decode("a", 1, out, 0, false), CM_ENOSPC);

  struct cm_str q = cm_str_c("a=1&name=J%C3%B6rg+M&flag&empty=&bad=%G1");
  assert_int_equal(cm_http_get_var(q, "a", out, sizeof(out)), 1);
  assert_string_equal(out, "1");
  assert_int_equal(cm_http_get_var(q, "NAME", out, sizeof(out)), 7);
  assert_string_equal(out, "J\xc3\xb6rg M");
  assert_int_equal(cm_http_get_var(q, "flag", out, sizeof(out)), 0);
  assert_int_equal(cm_http_get_var(q, "empty", out, sizeof(out)), 0);
  assert_int_equal(cm_http_get_var(q, "missing", out, sizeof(out)), CM_ENOENT);
  /* as cm_http_var: a '%' without two hex digits stays as it is */
  assert_int_equal(cm_http_get_var(q, "bad", out, sizeof(out)), 3);
  assert_string_equal(out, "%G1");
  assert_int_equal(cm_http_get_var(q, "name", out, 4), CM_ENOSPC);
  assert_int_equal(cm_http_get_var(q, "name", out, 8), 7); /* 7 bytes and the NUL */
  assert_int_equal(cm_http_get_var(cm_str_n(NULL, 0), "a", out, sizeof(out)), CM_ENOENT);
  assert_int_equal(cm_http_get_var(q, "", out, sizeof(out)), CM_ENOENT);
}

/* The class table of http/chars.h, entry by entry, against RFC 9110 5.6.2
 * (tchar) and 5.5 (field-vchar / obs-text, SP, HTAB). */
static void char_class_table(void **state) {
  (void) state;
  const char *tchars = "!#$%&'*+-.^_`|~";
  for (unsigned c = 0; c < 256; c++) {
    unsigned char u = (unsigned char) c;
    bool tchar = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                 (c != 0 && strchr(tchars, (int) c) != NULL);
    bool value = c == '\t' || (c >= 0x20 && c != 0x7f);
    bool ows = c == ' ' || c == '\t';
    assert_int_equal(cm__http_is_tchar(u), tchar);
    assert_int_equal(cm__http_is_value_char(u), value);
    assert_int_equal(cm__http_is_ows(u), ows);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(simple_get),
      cmocka_unit_test(no_query_and_empty_query),
      cmocka_unit_test(post_with_body),
      cmocka_unit_test(content_length_repeats_that_agree),
      cmocka_unit_test(chunked_request),
      cmocka_unit_test(leading_empty_lines_skipped),
      cmocka_unit_test(http10_and_keep_alive),
      cmocka_unit_test(upgrade_and_expect),
      cmocka_unit_test(obs_text_and_tabs_in_values),
      cmocka_unit_test(pipelined_requests),
      cmocka_unit_test(every_split_valid),
      cmocka_unit_test(malformed_requests),
      cmocka_unit_test(target_forms),
      cmocka_unit_test(normalized_paths),
      cmocka_unit_test(scan_in_pieces),
      cmocka_unit_test(scan_does_not_rescan),
      cmocka_unit_test(scan_line_ending_at_max_head),
      cmocka_unit_test(error_statuses),
      cmocka_unit_test(header_block_limit),
      cmocka_unit_test(header_count_limit),
      cmocka_unit_test(uri_and_body_limits),
      cmocka_unit_test(responses),
      cmocka_unit_test(malformed_responses),
      cmocka_unit_test(header_lookup),
      cmocka_unit_test(header_vars),
      cmocka_unit_test(url_decoding),
      cmocka_unit_test(char_class_table),
  };
  return cmocka_run_group_tests_name("http_parse", tests, guard_setup, guard_teardown);
}
