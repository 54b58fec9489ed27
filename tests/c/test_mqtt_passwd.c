/* The password file: lines written by cm_passwd_line() check back, wrong
 * passwords and unknown users fail, malformed files name their line. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "testutil.h"
#include "cymongoose.h"

static struct cm_passwd *parse(const char *text, char *err) {
  return cm_passwd_parse(cm_str_c(text), "pw", err, CM_OPS_ERR_LEN);
}

static void round_trip(void **state) {
  (void)state;
  char l1[CM_PASSWD_LINE_MAX(8)], l2[CM_PASSWD_LINE_MAX(8)], text[1024], err[CM_OPS_ERR_LEN];
  assert_true(cm_passwd_line(cm_str_c("alice"), cm_str_c("s3cret"), 1000, l1, sizeof(l1)) > 0);
  assert_true(cm_passwd_line(cm_str_c("bob"), cm_str_c(""), 2000, l2, sizeof(l2)) > 0);
  assert_memory_equal(l1, "alice:$pbkdf2-sha512$1000$", 26);
  snprintf(text, sizeof(text), "# users\n%s\r\n\n%s\n", l1, l2);
  struct cm_passwd *p = parse(text, err);
  assert_non_null(p);
  assert_int_equal(cm_passwd_count(p), 2);
  assert_true(cm_passwd_check(p, cm_str_c("alice"), cm_str_c("s3cret")));
  assert_false(cm_passwd_check(p, cm_str_c("alice"), cm_str_c("s3cres")));
  assert_false(cm_passwd_check(p, cm_str_c("alice"), cm_str_c("s3cret ")));
  assert_false(cm_passwd_check(p, cm_str_c("alice"), cm_str_c("")));
  assert_true(cm_passwd_check(p, cm_str_c("bob"), cm_str_c("")));
  assert_false(cm_passwd_check(p, cm_str_c("bob"), cm_str_c("x")));
  assert_false(cm_passwd_check(p, cm_str_c("carol"), cm_str_c("s3cret")));
  assert_false(cm_passwd_check(p, cm_str_c("alic"), cm_str_c("s3cret")));
  assert_false(cm_passwd_check(NULL, cm_str_c("alice"), cm_str_c("s3cret")));
  cm_passwd_free(p);
}

static void salts_differ(void **state) {
  (void)state;
  char a[300], b[300];
  assert_true(cm_passwd_line(cm_str_c("u"), cm_str_c("pw"), 1000, a, sizeof(a)) > 0);
  assert_true(cm_passwd_line(cm_str_c("u"), cm_str_c("pw"), 1000, b, sizeof(b)) > 0);
  assert_string_not_equal(a, b);
}

static void bad_lines(void **state) {
  (void)state;
  char line[300], text[700], err[CM_OPS_ERR_LEN];
  assert_true(cm_passwd_line(cm_str_c("u"), cm_str_c("pw"), 1000, line, sizeof(line)) > 0);
  struct {
    const char *text, *err;
  } t[] = {
      {"nocolon\n", "pw:1: expected NAME:$pbkdf2-sha512$..."},
      {"u:$sha1$x\n", "pw:1: unknown hash scheme (expected $pbkdf2-sha512$)"},
      {"\nu:$pbkdf2-sha512$12x$a$b\n", "pw:2: bad iteration count"},
      {"u:$pbkdf2-sha512$10$AAAAAAAAAAAAAAAAAAAAAA==$x\n", "pw:1: iteration count out of range"},
      {"u:$pbkdf2-sha512$1000$AAAA$x\n", "pw:1: bad salt (16 bytes in base64 expected)"},
      {"u:$pbkdf2-sha512$1000$AAAAAAAAAAAAAAAAAAAAAA==$AAAA\n",
       "pw:1: bad hash (64 bytes in base64 expected)"},
  };
  for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
    assert_null(parse(t[i].text, err));
    assert_string_equal(err, t[i].err);
  }
  snprintf(text, sizeof(text), "%s\n%s\n", line, line);
  assert_null(parse(text, err));
  assert_string_equal(err, "pw:2: duplicate user \"u\"");
}

static void bad_names_refused(void **state) {
  (void)state;
  char out[300];
  assert_int_equal(cm_passwd_line(cm_str_c("a:b"), cm_str_c("x"), 1000, out, sizeof(out)), CM_EINVAL);
  assert_int_equal(cm_passwd_line(cm_str_c(""), cm_str_c("x"), 1000, out, sizeof(out)), CM_EINVAL);
  assert_int_equal(cm_passwd_line(cm_str_c("a\nb"), cm_str_c("x"), 1000, out, sizeof(out)), CM_EINVAL);
  assert_int_equal(cm_passwd_line(cm_str_c("#a"), cm_str_c("x"), 1000, out, sizeof(out)), CM_EINVAL);
  assert_int_equal(cm_passwd_line(cm_str_c("a"), cm_str_c("x"), 999, out, sizeof(out)), CM_EINVAL);
  assert_int_equal(cm_passwd_line(cm_str_c("a"), cm_str_c("x"), 1000, out, 20), CM_ENOSPC);
}

/* The tool: add, change, remove users in a file; the library reads it. */
static void passwd_tool(void **state) {
  (void)state;
  char dir[] = "/tmp/cm-passwd-XXXXXX", path[256], cmd[1024], err[CM_OPS_ERR_LEN];
  assert_non_null(mkdtemp(dir));
  snprintf(path, sizeof(path), "%s/pw", dir);
  /* The tool is built next to the tests' folder: BUILD/cymongoose-passwd. */
  char tool[512];
  ssize_t n = readlink("/proc/self/exe", tool, sizeof(tool) - 40);
  assert_true(n > 0);
  tool[n] = '\0';
  *strrchr(tool, '/') = '\0';
  strcat(tool, "/../cymongoose-passwd");
  snprintf(cmd, sizeof(cmd), "printf 'one\\n' | %s -c -i 1000 %s alice && "
           "printf 'two\\n' | %s -i 1000 %s bob && printf 'three\\n' | %s -i 1000 %s alice",
           tool, path, tool, path, tool, path);
  assert_int_equal(system(cmd), 0);
  struct cm_passwd *p = cm_passwd_load(path, err, sizeof(err));
  assert_non_null(p);
  assert_int_equal(cm_passwd_count(p), 2);
  assert_true(cm_passwd_check(p, cm_str_c("alice"), cm_str_c("three")));
  assert_false(cm_passwd_check(p, cm_str_c("alice"), cm_str_c("one")));
  assert_true(cm_passwd_check(p, cm_str_c("bob"), cm_str_c("two")));
  cm_passwd_free(p);
  snprintf(cmd, sizeof(cmd), "%s -D %s alice", tool, path);
  assert_int_equal(system(cmd), 0);
  snprintf(cmd, sizeof(cmd), "%s -D %s nobody 2>/dev/null", tool, path);
  assert_int_not_equal(system(cmd), 0);
  p = cm_passwd_load(path, err, sizeof(err));
  assert_non_null(p);
  assert_int_equal(cm_passwd_count(p), 1);
  assert_false(cm_passwd_check(p, cm_str_c("alice"), cm_str_c("three")));
  cm_passwd_free(p);
  snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
  assert_int_equal(system(cmd), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(round_trip),
      cmocka_unit_test(salts_differ),
      cmocka_unit_test(bad_lines),
      cmocka_unit_test(bad_names_refused),
      cmocka_unit_test(passwd_tool),
  };
  return cmocka_run_group_tests_name("mqtt_passwd", tests, NULL, NULL);
}
