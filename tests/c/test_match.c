/* Unit tests of cm_match (src/util/match.c). */
#include <stdio.h>
#include <stdlib.h>

#include "testutil.h"

/* Matches s against p; want_caps: captures joined by '|', or NULL for no match. */
static void check(const char *s, const char *p, const char *want_caps) {
  struct cm_str caps[16];
  size_t n = cm_match_ncaps(cm_str_c(p));
  assert_true(n <= 16);
  bool ok = cm_match(cm_str_c(s), cm_str_c(p), caps, 16);
  if (want_caps == NULL) {
    if (ok) fail_msg("'%s' ~ '%s' matched", s, p);
    return;
  }
  if (!ok) fail_msg("'%s' ~ '%s' did not match", s, p);
  char got[256] = "";
  size_t o = 0;
  for (size_t i = 0; i < n; i++)
    o += (size_t)snprintf(got + o, sizeof(got) - o, "%s%.*s", i ? "|" : "", (int)caps[i].len, caps[i].buf);
  if (strcmp(got, want_caps) != 0) fail_msg("'%s' ~ '%s': caps '%s', want '%s'", s, p, got, want_caps);
}

static void basics(void **state) {
  (void)state;
  check("hello", "hello", "");
  check("hello", "world", NULL);
  check("", "", "");
  check("", "*", "");
  check("", "#", "");
  check("", "?", NULL);
  check("abc", "a?c", "b");
  check("abc", "???", "a|b|c");
  check("ab", "???", NULL);
  check("a/c", "a?c", "/");
  check("foo", "*", "foo");
  check("foo/bar", "*/bar", "foo");
  check("foo/bar", "*", NULL);
  check("/api/users", "/api/*", "users");
  check("foo/bar/baz", "#", "foo/bar/baz");
  check("/a/b/c.txt", "#.txt", "/a/b/c");
  check("/api/users/42", "/api/*/??", "users|4|2");
  check("abc", "abcd", NULL);
  check("abcd", "abc", NULL);
  check("abc", "abc*", "");
  check("abc", "*abc", "");
  check("a.b.c", "*.*", "a|b.c");  /* earlier wildcards take the shortest run */
  check("a.b.c", "#.#", "a|b.c");
}

static void mixed_needs_backtracking(void **state) {
  (void)state;
  /* '#' must grow past a run that '*' cannot cross */
  check("a/b/b-c", "a#b*c", "/b/|-");
  check("x/y/z.c", "#/*.c", "x/y|z");
  check("/a/b", "/*", NULL);
  check("/a/b", "/#", "a/b");
  check("aaa/aab", "*/*b", "aaa|aa");
  check("zz/", "*/", "zz");
  check("zz/", "*", NULL);
}

static void pathological_is_fast(void **state) {
  (void)state;
  /* exponential for a naive backtracker */
  char s[4001], p[64];
  memset(s, 'a', 4000), s[4000] = '\0';
  strcpy(p, "*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b");
  assert_false(cm_match(cm_str_c(s), cm_str_c(p), NULL, 0));
  s[3999] = 'b';
  assert_true(cm_match(cm_str_c(s), cm_str_c(p), NULL, 0));
  /* large tables go to the heap */
  char *big = malloc(200001);
  memset(big, 'x', 200000), big[200000] = '\0';
  assert_true(cm_match(cm_str_c(big), cm_str_c("#x#x#x"), NULL, 0));
  free(big);
}

static void fewer_slots_than_captures(void **state) {
  (void)state;
  struct cm_str caps[1];
  assert_true(cm_match(cm_str_c("a/b/c"), cm_str_c("*/*/*"), caps, 1));
  assert_int_equal(caps[0].len, 1);
  assert_int_equal(cm_match_ncaps(cm_str_c("a?*#b")), 3);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(basics),
      cmocka_unit_test(mixed_needs_backtracking),
      cmocka_unit_test(pathological_is_fast),
      cmocka_unit_test(fewer_slots_than_captures),
  };
  return cmocka_run_group_tests_name("match", tests, NULL, NULL);
}
