/* The HTTP client against our server and against canned raw responses. */
#include <stdio.h>
#include <stdlib.h>

#include "testutil.h"

static struct cm_mgr mgr;

/* ---------------------------------------------------------- the servers */

static void http_server(struct cm_conn *c, int ev, void *ev_data) {
  if (ev != CM_EV_HTTP_MSG) return;
  struct cm_http_msg *hm = ev_data;
  char s[300];
  struct cm_str *host = cm_http_get_header(hm, "Host");
  int n = snprintf(s, sizeof(s), "%.*s %.*s host=%.*s body=%.*s", (int) hm->method.len, hm->method.buf,
                   (int) hm->uri.len, hm->uri.buf, host ? (int) host->len : 0, host ? host->buf : "",
                   (int) hm->body.len, hm->body.buf);
  if (hm->uri.len == 8 && memcmp(hm->uri.buf, "/chunked", 8) == 0) {
    cm_http_reply(c, 200, "Transfer-Encoding: chunked\r\n", "part1,", 6);
    cm_http_chunk(c, "part2", 5);
    cm_http_chunk(c, NULL, 0);
  } else {
    cm_http_reply(c, 200, NULL, s, (size_t) n);
  }
}

/* A raw TCP server that answers the first request with canned bytes. */
static const char *canned;
static bool canned_close;

static void raw_server(struct cm_conn *c, int ev, void *ev_data) {
  (void) ev_data;
  if (ev != CM_EV_READ) return;
  const char *d = (const char *) cm_buf_data(&c->recv);
  if (memmem(d, c->recv.len, "\r\n\r\n", 4) == NULL) return;
  cm_recv_consume(c, c->recv.len);
  cm_send(c, canned, strlen(canned));
  if (canned_close) cm_drain(c);
}

/* ----------------------------------------------------------- the client */

struct seen {
  int hdrs, msgs, errors, closes;
  int status;
  char body[256];
  char error[256];
  bool msg_before_close;
  bool error_before_close;
};
static struct seen seen;

static void client(struct cm_conn *c, int ev, void *ev_data) {
  (void) c;
  if (ev == CM_EV_HTTP_HDRS) seen.hdrs++;
  if (ev == CM_EV_HTTP_MSG) {
    struct cm_http_msg *hm = ev_data;
    seen.msgs++;
    seen.status = hm->status;
    size_t used = strlen(seen.body);
    snprintf(seen.body + used, sizeof(seen.body) - used, "%s%.*s", used ? "|" : "", (int) hm->body.len,
             hm->body.buf);
    if (seen.closes == 0) seen.msg_before_close = true;
  }
  if (ev == CM_EV_ERROR) {
    seen.errors++;
    snprintf(seen.error, sizeof(seen.error), "%s", (const char *) ev_data);
    if (seen.closes == 0) seen.error_before_close = true;
  }
  if (ev == CM_EV_CLOSE) seen.closes++;
}

static void poll_until(bool (*done)(void)) {
  for (int i = 0; i < 400 && !done(); i++) cm_mgr_poll(&mgr, 5);
}

static int want_msgs;
static bool enough_msgs(void) { return seen.msgs >= want_msgs; }
static bool closed(void) { return seen.closes > 0; }

static int setup(void **state) {
  (void) state;
  memset(&seen, 0, sizeof(seen));
  return cm_mgr_init(&mgr);
}

static int teardown(void **state) {
  (void) state;
  cm_mgr_free(&mgr);
  return 0;
}

static char url[64];

static struct cm_conn *connect_to(struct cm_conn *listener) {
  snprintf(url, sizeof(url), "http://127.0.0.1:%u", listener->loc.port);
  struct cm_conn *c = cm_http_connect(&mgr, url, client, NULL, NULL);
  assert_non_null(c);
  return c;
}

/* ---------------------------------------------------------------- tests */

static void against_our_server(void **state) {
  (void) state;
  struct cm_conn *l = cm_http_listen(&mgr, "http://127.0.0.1:0", http_server, NULL, NULL);
  assert_non_null(l);
  struct cm_conn *c = connect_to(l);
  /* pipelined: GET, HEAD, POST, chunked */
  assert_true(cm_http_request(c, "GET", "/a", NULL, NULL, 0) == 0);
  assert_true(cm_http_request(c, "HEAD", "/b", NULL, NULL, 0) == 0);
  assert_true(cm_http_request(c, "POST", "/c", "Content-Type: text/plain\r\n", "xyz", 3) == 0);
  assert_true(cm_http_request(c, "GET", "/chunked", NULL, NULL, 0) == 0);
  want_msgs = 4;
  poll_until(enough_msgs);
  assert_int_equal(seen.msgs, 4);
  assert_int_equal(seen.hdrs, 4);
  assert_int_equal(seen.status, 200);
  char expect[256];
  snprintf(expect, sizeof(expect), "GET /a host=127.0.0.1:%u body=||POST /c host=127.0.0.1:%u body=xyz|part1,part2",
           l->loc.port, l->loc.port);
  assert_string_equal(seen.body, expect);
  assert_int_equal(seen.errors, 0);
  /* bad requests are refused before anything is queued */
  size_t queued = c->send.len;
  assert_true(cm_http_request(c, "G T", "/", NULL, NULL, 0) != 0);
  assert_true(cm_http_request(c, "GET", "/a b", NULL, NULL, 0) != 0);
  assert_true(cm_http_request(c, "GET", "/", "X: a\r\nY\r\n", NULL, 0) != 0);
  assert_true(cm_http_request(c, "GET", "/", "X: a\nY: b", NULL, 0) != 0);
  assert_int_equal(c->send.len, queued);
}

/* Requests written raw and tracked: the HEAD among them gets no body, even
 * pipelined in one piece, after a body that arrives in a later piece. */
static void raw_requests_tracked(void **state) {
  (void) state;
  struct cm_conn *l = cm_http_listen(&mgr, "http://127.0.0.1:0", http_server, NULL, NULL);
  assert_non_null(l);
  struct cm_conn *c = connect_to(l);
  static const char first[] =
      "GET /a HTTP/1.1\r\nHost: h\r\n\r\nHEAD /b HTTP/1.1\r\nHost: h\r\n\r\n"
      "POST /c HTTP/1.1\r\nHost: h\r\nContent-Length: 29\r\n\r\n";
  const char *pieces[] = {
      first,
      "HEAD /x HTTP/1.1\r\nHost: h\r\n\r\n", /* the POST body, not a request */
      "HEAD /d HTTP/1.1\r\nHost: h\r\n\r\nGET /e HTTP/1.1\r\nHost: h\r\n\r\n",
  };
  bool found[] = {true, false, true};
  for (size_t i = 0; i < 3; i++) {
    assert_true(cm_send(c, pieces[i], strlen(pieces[i])) == 0);
    assert_int_equal(cm_http_client_track(c, pieces[i], strlen(pieces[i])), found[i]);
  }
  assert_false(cm_http_client_track(c, "Host: h\r\n", 9));
  assert_false(cm_http_client_track(l, pieces[0], strlen(pieces[0]))); /* not a client */
  want_msgs = 5;
  poll_until(enough_msgs);
  assert_int_equal(seen.msgs, 5);
  assert_int_equal(seen.errors, 0);
  assert_string_equal(seen.body, "GET /a host=h body=||POST /c host=h body=HEAD /x HTTP/1.1\r\nHost: h\r\n\r\n|"
                                 "|GET /e host=h body=");
}

struct canned_case {
  const char *response;
  bool close;
  int msgs, errors, status;
  const char *body;
};

static void canned_responses(void **state) {
  (void) state;
  const struct canned_case cases[] = {
      {"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nhi", false, 1, 0, 201, "hi"},
      {"HTTP/1.0 200 OK\r\n\r\nuntil close", true, 1, 0, 200, "until close"},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", false, 1, 0, 200, "abc"},
      {"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", false, 1, 0, 204, ""},
      {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", false, 0, 1, 0, ""},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", false, 0, 1, 0, ""},
      {"SSH-2.0-OpenSSH\r\n\r\n", false, 0, 1, 0, ""},
      /* cut short by the peer's close: an ERROR, then CLOSE */
      {"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", true, 0, 1, 0, ""},
      {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n", true, 0, 1, 0, ""},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab", true, 0, 1, 0, ""},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n", true, 0, 1, 0, ""},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n", true, 0, 1, 0, ""},
      {"HTTP/1.1 200 OK\r\nContent-Le", true, 0, 1, 0, ""},
      {"HTTP/1.1 200 OK\r\n", true, 0, 1, 0, ""},
      /* complete, then closed: no error */
      {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", true, 1, 0, 200, "ok"},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", true, 1, 0, 200, "ok"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    memset(&seen, 0, sizeof(seen));
    canned = cases[i].response;
    canned_close = cases[i].close;
    struct cm_conn *l = cm_listen(&mgr, "tcp://127.0.0.1:0", raw_server, NULL);
    assert_non_null(l);
    struct cm_conn *c = connect_to(l);
    assert_true(cm_http_request(c, "GET", "/", NULL, NULL, 0) == 0);
    want_msgs = cases[i].msgs;
    if (cases[i].close || cases[i].errors) {
      poll_until(closed);
    } else {
      poll_until(enough_msgs);
    }
    if (seen.msgs != cases[i].msgs || seen.errors != cases[i].errors) {
      print_error("case %zu: msgs %d errors %d\n", i, seen.msgs, seen.errors);
    }
    assert_int_equal(seen.msgs, cases[i].msgs);
    assert_int_equal(seen.errors, cases[i].errors);
    if (cases[i].errors > 0) assert_true(seen.error_before_close);
    if (cases[i].errors > 0 && cases[i].close) {
      if (strstr(seen.error, "truncated") == NULL) fail_msg("case %zu: error '%s'", i, seen.error);
    }
    if (cases[i].msgs > 0) {
      assert_int_equal(seen.status, cases[i].status);
      assert_string_equal(seen.body, cases[i].body);
      assert_true(seen.msg_before_close);
    }
    if (!cases[i].close && !cases[i].errors) cm_close(c);
    cm_close(l);
    cm_mgr_poll(&mgr, 0);
  }
}

/* A server that answers one byte per turn of the loop. */
static size_t dribbled;

static void dribble_server(struct cm_conn *c, int ev, void *ev_data) {
  (void) ev_data;
  if (ev == CM_EV_READ) {
    if (memmem(cm_buf_data(&c->recv), c->recv.len, "\r\n\r\n", 4) != NULL) c->fn_data = (void *) 1;
    cm_recv_consume(c, c->recv.len);
  } else if (ev == CM_EV_POLL && c->fn_data != NULL && dribbled < strlen(canned)) {
    cm_send(c, canned + dribbled++, 1);
  }
}

/* A response that arrives one byte per read parses as one that arrives
 * whole, head (scanned in pieces) and body alike. */
static void response_in_single_bytes(void **state) {
  (void) state;
  static char big[6000];
  int n = snprintf(big, sizeof(big), "HTTP/1.1 200 OK\r\nX-Pad: ");
  memset(big + n, 'p', 3000);
  n += 3000;
  n += snprintf(big + n, sizeof(big) - (size_t) n,
                "\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n");
  canned = big;
  dribbled = 0;
  struct cm_conn *l = cm_listen(&mgr, "tcp://127.0.0.1:0", dribble_server, NULL);
  assert_non_null(l);
  struct cm_conn *c = connect_to(l);
  assert_true(cm_http_request(c, "GET", "/", NULL, NULL, 0) == 0);
  assert_true(cm_http_request(c, "GET", "/", NULL, NULL, 0) == 0);
  want_msgs = 2;
  for (int i = 0; i < 40000 && !enough_msgs(); i++) cm_mgr_poll(&mgr, 0);
  assert_int_equal(seen.msgs, 2);
  assert_int_equal(seen.errors, 0);
  assert_string_equal(seen.body, "hello|abcde");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(against_our_server, setup, teardown),
      cmocka_unit_test_setup_teardown(canned_responses, setup, teardown),
      cmocka_unit_test_setup_teardown(raw_requests_tracked, setup, teardown),
      cmocka_unit_test_setup_teardown(response_in_single_bytes, setup, teardown),
  };
  return cmocka_run_group_tests_name("http_client", tests, NULL, NULL);
}
