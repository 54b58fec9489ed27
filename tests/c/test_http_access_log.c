/* The HTTP server's access log (common and combined formats, every kind of
 * reply) and the log sink with the debug story of a request, driven by curl. */
#include <stdio.h>
#include <stdlib.h>

#include "testutil.h"
#include "peerproc.h"

static struct cm_mgr mgr;
static uint16_t port;
static char lines[16][2048];
static int nlines;

static void collect_line(const char *line, size_t len, void *arg) {
  assert_ptr_equal(arg, &mgr);
  assert_true(nlines < 16);
  snprintf(lines[nlines++], sizeof(lines[0]), "%.*s", (int) len, line);
}

static bool uri_is(const struct cm_http_msg *hm, const char *s) {
  return hm->uri.len == strlen(s) && memcmp(hm->uri.buf, s, hm->uri.len) == 0;
}

static void handler(struct cm_conn *c, int ev, void *ev_data) {
  struct cm_http_msg *hm = ev_data;
  if (ev == CM_EV_HTTP_HDRS && uri_is(hm, "/deny")) {
    assert_true(cm_http_reply(c, 401, NULL, "no", 2) == 0); /* before the body */
    return;
  }
  if (ev != CM_EV_HTTP_MSG || uri_is(hm, "/deny")) return;
  if (uri_is(hm, "/chunked")) {
    assert_true(cm_http_reply(c, 200, "Transfer-Encoding: chunked\r\n", "abc", 3) == 0);
    assert_true(cm_http_chunk(c, "defg", 4) == 0);
    assert_true(cm_http_chunk(c, NULL, 0) == 0);
  } else if (uri_is(hm, "/missing")) {
    assert_true(cm_http_reply(c, 404, NULL, "nope\n", 5) == 0);
  } else if (uri_is(hm, "/empty")) {
    assert_true(cm_http_reply(c, 204, NULL, NULL, 0) == 0);
  } else {
    assert_true(cm_http_reply(c, 200, NULL, "hello", 5) == 0);
  }
}

static void start(int format) {
  nlines = 0;
  assert_int_equal(cm_mgr_init(&mgr), 0);
  struct cm_http_serve_opts opts = {.access_log = collect_line, .access_log_arg = &mgr,
                                    .access_log_format = format};
  struct cm_conn *l = cm_http_listen(&mgr, "http://127.0.0.1:0", handler, NULL, &opts);
  assert_non_null(l);
  port = l->loc.port;
}

static const char *curl(const char *path, const char *extra1, const char *extra2) {
  char url[128];
  snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", (unsigned) port, path);
  const char *argv[] = {"curl", "-s", "-A", "test \"agent\"", url, extra1, extra2, NULL};
  int st;
  const char *out = peer_run_polling(&mgr, argv, &st);
  assert_int_equal(st, 0);
  return out;
}

/* "127.0.0.1 - - [dd/Mon/yyyy:hh:mm:ss +zzzz] " then the rest, which must be want. */
static void assert_line(const char *line, const char *want) {
  assert_true(strncmp(line, "127.0.0.1 - - [", 15) == 0);
  const char *close_bracket = strchr(line, ']');
  assert_non_null(close_bracket);
  assert_int_equal(close_bracket - line, 15 + 26);
  assert_string_equal(close_bracket + 2, want);
}

static void common_format(void **state) {
  (void) state;
  start(CM_HTTP_LOG_COMMON);
  assert_string_equal(curl("/a?x=1", NULL, NULL), "hello");
  curl("/chunked", NULL, NULL);
  curl("/missing", "-e", "http://ref/");
  curl("/empty", NULL, NULL);
  curl("/a", "-I", NULL); /* HEAD: no body */
  curl("/deny", "-d", "body");
  assert_int_equal(nlines, 6);
  assert_line(lines[0], "\"GET /a?x=1 HTTP/1.1\" 200 5");
  assert_line(lines[1], "\"GET /chunked HTTP/1.1\" 200 7");
  assert_line(lines[2], "\"GET /missing HTTP/1.1\" 404 5");
  assert_line(lines[3], "\"GET /empty HTTP/1.1\" 204 -");
  assert_line(lines[4], "\"HEAD /a HTTP/1.1\" 200 -");
  assert_line(lines[5], "\"POST /deny HTTP/1.1\" 401 2"); /* answered from HTTP_HDRS */
  cm_mgr_free(&mgr);
}

static void combined_format_escapes(void **state) {
  (void) state;
  start(CM_HTTP_LOG_COMBINED);
  curl("/b", "-e", "http://ref/\xc3\xa9\"x");
  assert_int_equal(nlines, 1);
  assert_line(lines[0], "\"GET /b HTTP/1.1\" 200 5 \"http://ref/\\xC3\\xA9\\x22x\" \"test \\x22agent\\x22\"");
  cm_mgr_free(&mgr);
}

static char static_root[64];

static void static_handler(struct cm_conn *c, int ev, void *ev_data) {
  if (ev != CM_EV_HTTP_MSG) return;
  struct cm_http_serve_dir_opts o = {.root_dir = static_root};
  cm_http_serve_dir(c, ev_data, &o);
}

/* A file streamed with cm_send_file, a byte range, a 304 and a 404. */
static void static_files_are_logged(void **state) {
  (void) state;
  snprintf(static_root, sizeof(static_root), "/tmp/cm_access_XXXXXX");
  assert_non_null(mkdtemp(static_root));
  char path[128];
  snprintf(path, sizeof(path), "%s/f.txt", static_root);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs("0123456789", f);
  fclose(f);
  nlines = 0;
  assert_int_equal(cm_mgr_init(&mgr), 0);
  struct cm_http_serve_opts so = {.access_log = collect_line, .access_log_arg = &mgr};
  struct cm_conn *l = cm_http_listen(&mgr, "http://127.0.0.1:0", static_handler, NULL, &so);
  assert_non_null(l);
  port = l->loc.port;
  assert_string_equal(curl("/f.txt", NULL, NULL), "0123456789");
  assert_string_equal(curl("/f.txt", "-r", "2-4"), "234");
  curl("/f.txt", "-H", "If-Modified-Since: Fri, 01 Jan 2100 00:00:00 GMT");
  curl("/nope.txt", NULL, NULL);
  assert_int_equal(nlines, 4);
  assert_line(lines[0], "\"GET /f.txt HTTP/1.1\" 200 10");
  assert_line(lines[1], "\"GET /f.txt HTTP/1.1\" 206 3");
  assert_line(lines[2], "\"GET /f.txt HTTP/1.1\" 304 -");
  assert_true(strstr(lines[3], "\"GET /nope.txt HTTP/1.1\" 404 ") != NULL);
  cm_mgr_free(&mgr);
  unlink(path);
  rmdir(static_root);
}

/* ------------------------------------------------------------- log sink */
static char story[64][256];
static int nstory;

static void sink(int level, const char *file, int line, const char *msg, void *arg) {
  assert_ptr_equal(arg, story);
  assert_true(line > 0 && strchr(file, '/') == NULL);
  if (level == CM_LL_DEBUG && nstory < 64) snprintf(story[nstory++], sizeof(story[0]), "%s", msg);
}

static bool told(const char *needle) {
  for (int i = 0; i < nstory; i++)
    if (strstr(story[i], needle) != NULL) return true;
  return false;
}

static void debug_story_through_sink(void **state) {
  (void) state;
  start(CM_HTTP_LOG_COMMON);
  nstory = 0;
  cm_log_set_sink(sink, story);
  cm_log_set(CM_LL_DEBUG);
  curl("/story", NULL, NULL);
  for (int i = 0; i < 50; i++) cm_mgr_poll(&mgr, 2); /* the close after curl's exit */
  cm_log_set(CM_LL_NONE);
  cm_log_set_sink(NULL, NULL);
  assert_true(told("accepted from 127.0.0.1:"));
  assert_true(told("GET /story HTTP/1.1"));
  assert_true(told("closed (peer closed)"));
  cm_mgr_free(&mgr);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(common_format),
      cmocka_unit_test(combined_format_escapes),
      cmocka_unit_test(static_files_are_logged),
      cmocka_unit_test(debug_story_through_sink),
  };
  return cmocka_run_group_tests_name("http_access_log", tests, NULL, NULL);
}
