/* Unit tests of the JSON path scanner (src/util/json.c). */
#include <stdlib.h>

#include "testutil.h"

/* Finds path in doc and compares the raw token with want (NULL: expect rc). */
static void expect_tok(const char *doc, const char *path, const char *want, int rc_want) {
  struct cm_str v = {NULL, 0};
  int rc = cm_json_find(cm_str_c(doc), path, &v);
  if (want == NULL) {
    if (rc != rc_want) fail_msg("%s %s: rc %d, want %d", doc, path, rc, rc_want);
    return;
  }
  if (rc != 0) fail_msg("%s %s: rc %d", doc, path, rc);
  if (v.len != strlen(want) || memcmp(v.buf, want, v.len) != 0)
    fail_msg("%s %s: got '%.*s', want '%s'", doc, path, (int)v.len, v.buf, want);
}

static void paths(void **state) {
  (void)state;
  const char *doc = " { \"a\" : { \"b\" : [ 1 , {\"c\":true}, \"x\\\"y\" ] }, \"d\": null, \"e\":-1.5e3 } ";
  expect_tok(doc, "$", "{ \"a\" : { \"b\" : [ 1 , {\"c\":true}, \"x\\\"y\" ] }, \"d\": null, \"e\":-1.5e3 }", 0);
  expect_tok(doc, "$.a", "{ \"b\" : [ 1 , {\"c\":true}, \"x\\\"y\" ] }", 0);
  expect_tok(doc, "$.a.b", "[ 1 , {\"c\":true}, \"x\\\"y\" ]", 0);
  expect_tok(doc, "$.a.b[0]", "1", 0);
  expect_tok(doc, "$.a.b[1]", "{\"c\":true}", 0);
  expect_tok(doc, "$.a.b[1].c", "true", 0);
  expect_tok(doc, "$.a.b[2]", "\"x\\\"y\"", 0);
  expect_tok(doc, "$.d", "null", 0);
  expect_tok(doc, "$.e", "-1.5e3", 0);
  expect_tok(doc, "$.a.b[3]", NULL, CM_JSON_NOT_FOUND);
  expect_tok(doc, "$.a.c", NULL, CM_JSON_NOT_FOUND);
  expect_tok(doc, "$[0]", NULL, CM_JSON_NOT_FOUND);
  expect_tok(doc, "$.a.b.c", NULL, CM_JSON_NOT_FOUND);
  expect_tok(doc, "$.d.x", NULL, CM_JSON_NOT_FOUND);
  expect_tok("[[1,2],[3,[4,5]]]", "$[1][1][0]", "4", 0);
  expect_tok("[[1,2],[3,[4,5]]]", "$[1]", "[3,[4,5]]", 0);
  expect_tok("[]", "$", "[]", 0);
  expect_tok("{}", "$", "{}", 0);
  expect_tok("[]", "$[0]", NULL, CM_JSON_NOT_FOUND);
  expect_tok("  7 ", "$", "7", 0);
  /* escaped names compare after decoding; the first duplicate wins */
  expect_tok("{\"\\u0061b\":1,\"ab\":2}", "$.ab", "1", 0);
  expect_tok("{\"\\u00e9\":3}", "$.\xc3\xa9", "3", 0);
  /* a match in a nested object is not confused with a sibling's member */
  expect_tok("{\"x\":{\"y\":1},\"y\":2}", "$.y", "2", 0);
  expect_tok("{\"x\":[{\"k\":1}],\"k\":2}", "$.k", "2", 0);
}

static void malformed(void **state) {
  (void)state;
  static const char *bad[] = {
      "", " ", "{", "}", "[", "[1,]", "[,1]", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "{a:1}",
      "01", "1.", ".5", "-", "1e", "1e+", "+1", "tru", "nul", "falsey", "\"abc", "\"\\x\"",
      "\"\\u12g4\"", "\"a\nb\"", "[1 2]", "{\"a\":1 \"b\":2}", "1 2", "[1]]", "{\"a\":1}}",
      "[\"\\", "\"\\u12", "NaN", "Infinity", "[1,2", "{\"a\":[1,{\"b\":2]}}",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    int rc = cm_json_find(cm_str_c(bad[i]), "$", NULL);
    if (rc != CM_JSON_INVALID) fail_msg("'%s': rc %d", bad[i], rc);
    /* even when the path would be found before the error */
    rc = cm_json_find(cm_str_c(bad[i]), "$[0]", NULL);
    if (rc != CM_JSON_INVALID) fail_msg("'%s' $[0]: rc %d", bad[i], rc);
  }
  assert_int_equal(cm_json_find(cm_str_c("{\"a\":1,"), "$.a", NULL), CM_JSON_INVALID);
  assert_int_equal(cm_json_find(cm_str_n(NULL, 0), "$", NULL), CM_JSON_INVALID);
}

static void never_reads_past_len(void **state) {
  (void)state;
  /* every prefix of a document, copied to an exact-size heap block so that
   * ASan catches a read past the end */
  const char *doc = "{\"a\":[1,-2.5e+3,true,false,null,\"s\\u00e9\\n\"],\"b\":{\"c\":{}}}";
  size_t n = strlen(doc);
  for (size_t k = 0; k <= n; k++) {
    char *p = malloc(k == 0 ? 1 : k);
    memcpy(p, doc, k);
    int rc = cm_json_find(cm_str_n(p, k), "$.a[5]", NULL);
    assert_int_equal(rc, k == n ? 0 : CM_JSON_INVALID);
    char out[64];
    (void)cm_json_get_str(cm_str_n(p, k), "$.a[5]", out, sizeof(out));
    free(p);
  }
}

static void bad_paths(void **state) {
  (void)state;
  static const char *bad[] = {"", "a", "$.", "$..a", "$[", "$[]", "$[x]", "$[1", "$a",
                              "$[-1]", "$.a[", "$[99999999999999999999999]"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    if (cm_json_find(cm_str_c("{}"), bad[i], NULL) != CM_JSON_BAD_PATH) fail_msg("path '%s'", bad[i]);
  assert_int_equal(cm_json_find(cm_str_c("{}"), NULL, NULL), CM_JSON_BAD_PATH);
}

static void depth_limit(void **state) {
  (void)state;
  char doc[20001];
  for (int i = 0; i < 10000; i++) doc[i] = '[', doc[10000 + i] = ']';
  doc[20000] = '\0';
  assert_int_equal(cm_json_find(cm_str_c(doc), "$", NULL), CM_JSON_TOO_DEEP);
  assert_int_equal(cm_json_find_depth(cm_str_c(doc + 10000 - 128), "$", 128, NULL), CM_JSON_INVALID);
  /* 128 balanced levels are fine at the default limit, 129 are not */
  char ok[300];
  memset(ok, '[', 128), memset(ok + 128, ']', 128), ok[256] = '\0';
  assert_int_equal(cm_json_check(cm_str_c(ok), 0), 0);
  assert_int_equal(cm_json_check(cm_str_c(ok), 127), CM_JSON_TOO_DEEP);
  memset(ok, '[', 129), memset(ok + 129, ']', 129), ok[258] = '\0';
  assert_int_equal(cm_json_check(cm_str_c(ok), 0), CM_JSON_TOO_DEEP);
  assert_int_equal(cm_json_check(cm_str_c(ok), 200), 0);
}

static void typed(void **state) {
  (void)state;
  struct cm_str doc = cm_str_c("{\"i\":12345,\"n\":-99,\"f\":3.99,\"g\":-3.99,\"big\":9223372036854775807,"
                               "\"over\":9223372036854775808,\"min\":-9223372036854775808,"
                               "\"e\":1e3,\"t\":true,\"F\":false,\"s\":\"x\",\"z\":null,\"h\":1e400}");
  double d;
  int64_t l;
  bool b;
  assert_int_equal(cm_json_get_num(doc, "$.i", &d), 0);
  assert_true(d == 12345.0);
  assert_int_equal(cm_json_get_num(doc, "$.f", &d), 0);
  assert_true(d == 3.99);
  assert_int_equal(cm_json_get_num(doc, "$.s", &d), CM_JSON_WRONG_TYPE);
  assert_int_equal(cm_json_get_num(doc, "$.q", &d), CM_JSON_NOT_FOUND);
  assert_int_equal(cm_json_get_long(doc, "$.i", &l), 0);
  assert_true(l == 12345);
  assert_int_equal(cm_json_get_long(doc, "$.n", &l), 0);
  assert_true(l == -99);
  assert_int_equal(cm_json_get_long(doc, "$.f", &l), 0);
  assert_true(l == 3);
  assert_int_equal(cm_json_get_long(doc, "$.g", &l), 0);
  assert_true(l == -3);
  assert_int_equal(cm_json_get_long(doc, "$.big", &l), 0);
  assert_true(l == INT64_MAX);
  assert_int_equal(cm_json_get_long(doc, "$.min", &l), 0);
  assert_true(l == INT64_MIN);
  assert_int_equal(cm_json_get_long(doc, "$.over", &l), CM_JSON_WRONG_TYPE);
  assert_int_equal(cm_json_get_long(doc, "$.h", &l), CM_JSON_WRONG_TYPE);
  assert_int_equal(cm_json_get_long(doc, "$.e", &l), 0);
  assert_true(l == 1000);
  assert_int_equal(cm_json_get_long(doc, "$.t", &l), CM_JSON_WRONG_TYPE);
  assert_int_equal(cm_json_get_bool(doc, "$.t", &b), 0);
  assert_true(b);
  assert_int_equal(cm_json_get_bool(doc, "$.F", &b), 0);
  assert_false(b);
  assert_int_equal(cm_json_get_bool(doc, "$.z", &b), CM_JSON_WRONG_TYPE);
}

static void strings(void **state) {
  (void)state;
  char buf[64];
  struct cm_str doc = cm_str_c("[\"a\\\"\\\\\\/\\b\\f\\n\\r\\t\", \"\\u0048\\u00e9\\u20ac\\ud83d\\ude00\","
                               "\"\\ud800x\", \"\\udc00\", 5]");
  long n = cm_json_get_str(doc, "$[0]", buf, sizeof(buf));
  assert_int_equal(n, 9);
  assert_memory_equal(buf, "a\"\\/\b\f\n\r\t", 9);
  n = cm_json_get_str(doc, "$[1]", buf, sizeof(buf));
  assert_int_equal(n, 1 + 2 + 3 + 4);
  assert_memory_equal(buf, "H\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 10);
  n = cm_json_get_str(doc, "$[2]", buf, sizeof(buf));
  assert_int_equal(n, 4);
  assert_memory_equal(buf, "\xed\xa0\x80x", 4);
  n = cm_json_get_str(doc, "$[3]", buf, sizeof(buf));
  assert_int_equal(n, 3);
  assert_memory_equal(buf, "\xed\xb0\x80", 3);
  assert_int_equal(cm_json_get_str(doc, "$[4]", buf, sizeof(buf)), CM_JSON_WRONG_TYPE);
  assert_int_equal(cm_json_get_str(doc, "$[0]", buf, 3), CM_JSON_NO_ROOM);
}

static void escape(void **state) {
  (void)state;
  char buf[64];
  struct cm_str s = cm_str_n("a\"\\\n\x01z", 6);
  long ln = cm_json_escape(s, buf, sizeof(buf));
  size_t n = (size_t)ln;
  assert_int_equal(n, strlen("\"a\\\"\\\\\\n\\u0001z\""));
  assert_memory_equal(buf, "\"a\\\"\\\\\\n\\u0001z\"", n);
  assert_int_equal(cm_json_escape(s, buf, 3), CM_ENOSPC); /* truncated output */
  assert_int_equal(cm_json_escape(s, NULL, 0), ln);      /* measuring */
  assert_int_equal(cm_json_escape(s, buf, n), ln);       /* exactly fits */
  char back[16];
  assert_int_equal(cm_json_unescape(cm_str_n(buf, n), back, sizeof(back)), 6);
  assert_memory_equal(back, s.buf, 6);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(paths),          cmocka_unit_test(malformed),
      cmocka_unit_test(never_reads_past_len), cmocka_unit_test(bad_paths),
      cmocka_unit_test(depth_limit),    cmocka_unit_test(typed),
      cmocka_unit_test(strings),        cmocka_unit_test(escape),
  };
  return cmocka_run_group_tests_name("json", tests, NULL, NULL);
}
