/* Unit tests of URL encoding, form variables (src/util/urlcode.c) and URL
 * splitting (src/core/url.c). */
#include <stdlib.h>

#include "testutil.h"

static void encode(void **state) {
  (void)state;
  char buf[64];
  assert_int_equal(cm_url_encode("hello world", 11, buf, sizeof(buf)), 13);
  assert_string_equal(buf, "hello%20world");
  cm_url_encode("a+b&c=d/e?f@g~h-i_j.k", 21, buf, sizeof(buf));
  assert_string_equal(buf, "a%2Bb%26c%3Dd%2Fe%3Ff%40g~h-i_j.k");
  cm_url_encode("\xe4\xb8\x96\x00", 4, buf, sizeof(buf));
  assert_string_equal(buf, "%E4%B8%96%00");
  /* too small: CM_ENOSPC, a NUL-terminated prefix of whole escapes */
  assert_int_equal(cm_url_encode("a b", 3, buf, 3), CM_ENOSPC);
  assert_string_equal(buf, "a");
  assert_int_equal(cm_url_encode("a b", 3, buf, 5), CM_ENOSPC); /* no room for the NUL */
  assert_int_equal(cm_url_encode("a b", 3, buf, 6), 5);
  assert_int_equal(cm_url_encode("a b", 3, NULL, 0), 5); /* measuring */
  assert_int_equal(cm_url_encode("", 0, buf, 1), 0);
  assert_string_equal(buf, "");
}

static void http_var(void **state) {
  (void)state;
  char buf[64];
  struct cm_str q = cm_str_c("foo=bar&baz=qux&e=&flag&msg=hello+world%21&foo=second&na%6De=x&=v");
  long n = cm_http_var(q, "foo", buf, sizeof(buf));
  assert_int_equal(n, 3);
  assert_memory_equal(buf, "bar", 3);
  n = cm_http_var(q, "baz", buf, sizeof(buf));
  assert_memory_equal(buf, "qux", 3);
  assert_int_equal(cm_http_var(q, "e", buf, sizeof(buf)), 0);
  assert_int_equal(cm_http_var(q, "flag", buf, sizeof(buf)), 0);
  n = cm_http_var(q, "msg", buf, sizeof(buf));
  assert_int_equal(n, 12);
  assert_memory_equal(buf, "hello world!", 12);
  n = cm_http_var(q, "name", buf, sizeof(buf));
  assert_memory_equal(buf, "x", 1);
  assert_int_equal(cm_http_var(q, "", buf, sizeof(buf)), 1);
  assert_int_equal(cm_http_var(q, "missing", buf, sizeof(buf)), CM_ENOENT);
  assert_int_equal(cm_http_var(q, "FOO", buf, sizeof(buf)), CM_ENOENT);
  assert_int_equal(cm_http_var(q, "msg", buf, 4), CM_ENOSPC);
  /* lenient decoding: bad escapes stay, '+' is a space */
  n = cm_http_var(cm_str_c("v=a%20b+c%2B%zz%4"), "v", buf, sizeof(buf));
  assert_int_equal(n, 11);
  assert_memory_equal(buf, "a b c+%zz%4", 11);
  assert_int_equal(cm_http_var(cm_str_c(""), "a", buf, sizeof(buf)), CM_ENOENT);
  assert_int_equal(cm_http_var(cm_str_n(NULL, 0), "a", buf, sizeof(buf)), CM_ENOENT);
  /* a prefix of a name is not the name */
  assert_int_equal(cm_http_var(cm_str_c("foobar=1"), "foo", buf, sizeof(buf)), CM_ENOENT);
}

/* cm_http_get_var is cm_http_var with case-folded names and a NUL: the
 * same decoding of names and values, the same first-match rule (the loop
 * uses buffers where no name recurs in another case; the case rules follow). */
static void get_var_rules(void **state) {
  (void)state;
  static const char *const bufs[] = {"a=1&b=2", "n%61me=x+y%21&name=2", "v=%zz%4&w=%41",
                                     "flag&x=", "&&a=&", "k%3D=v=w", ""};
  static const char *const names[] = {"a", "A", "name", "NAME", "v", "w", "flag", "x", "k=", "zz"};
  char v1[64], v2[64];
  for (size_t b = 0; b < sizeof(bufs) / sizeof(bufs[0]); b++) {
    for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
      struct cm_str q = cm_str_c(bufs[b]);
      long n1 = cm_http_var(q, names[k], v1, sizeof(v1));
      long n2 = cm_http_get_var(q, names[k], v2, sizeof(v2));
      bool all_lower = true;
      for (const char *p = names[k]; *p != '\0'; p++) all_lower = all_lower && !(*p >= 'A' && *p <= 'Z');
      if (n1 >= 0) { /* found exactly: found by the case-folding one too, same value */
        assert_int_equal(n2, n1);
        assert_memory_equal(v1, v2, (size_t)n1);
        assert_int_equal(v2[n2], '\0');
      } else if (all_lower && n2 < 0) {
        assert_int_equal(n2, n1);
      }
    }
  }
  /* case rules: cm_http_var is exact, cm_http_get_var folds ASCII letters */
  struct cm_str q = cm_str_c("Name=1&name=2");
  assert_int_equal(cm_http_var(q, "name", v1, sizeof(v1)), 1);
  assert_int_equal(v1[0], '2');
  assert_int_equal(cm_http_get_var(q, "name", v2, sizeof(v2)), 1);
  assert_string_equal(v2, "1"); /* the first match in any case wins */
  assert_int_equal(cm_http_var(q, "NAME", v1, sizeof(v1)), CM_ENOENT);
  assert_int_equal(cm_http_get_var(q, "NAME", v2, sizeof(v2)), 1);
  /* decoding: '+' is a space, bad escapes stay, names are decoded */
  assert_int_equal(cm_http_get_var(cm_str_c("n%41me=a+b%2B%zz"), "name", v2, sizeof(v2)), 7);
  assert_string_equal(v2, "a b+%zz");
}

static void expect_str(struct cm_str got, const char *want) {
  if (got.len != strlen(want) || memcmp(got.buf, want, got.len) != 0)
    fail_msg("got '%.*s', want '%s'", (int)got.len, got.buf, want);
}

static void url_parts(void **state) {
  (void)state;
  const char *u = "https://user:pa:ss@example.com:8443/a/b?q=1#f";
  expect_str(cm_url_scheme(u), "https");
  expect_str(cm_url_host(u), "example.com");
  expect_str(cm_url_user(u), "user");
  expect_str(cm_url_pass(u), "pa:ss");
  expect_str(cm_url_uri(u), "/a/b?q=1#f");
  assert_int_equal(cm_url_port(u), 8443);
  assert_true(cm_url_is_ssl(u));

  expect_str(cm_url_host("http://[::1]:80/x"), "::1");
  assert_int_equal(cm_url_port("http://[::1]:81/x"), 81);
  assert_int_equal(cm_url_port("http://[::1]/x"), 80);
  expect_str(cm_url_host("tcp://1.2.3.4:5"), "1.2.3.4");
  expect_str(cm_url_uri("http://h"), "/");
  expect_str(cm_url_user("http://h/"), "");
  expect_str(cm_url_pass("http://u@h/"), "");
  expect_str(cm_url_host("http://h/p@q"), "h");
  expect_str(cm_url_user("http://h/p@q"), "");

  static const struct {
    const char *url;
    uint16_t port;
    bool ssl;
  } ports[] = {{"http://a", 80, false},    {"https://a", 443, true},  {"ws://a", 80, false},
               {"wss://a", 443, true},     {"mqtt://a", 1883, false}, {"mqtts://a", 8883, true},
               {"HTTPS://a", 443, true},   {"tcp://a", 0, false},     {"a:99", 99, false},
               {"http://a:65535", 65535, false}, {"http://a:65536", 0, false},
               {"http://a:x", 0, false}};
  for (size_t i = 0; i < sizeof(ports) / sizeof(ports[0]); i++) {
    if (cm_url_port(ports[i].url) != ports[i].port)
      fail_msg("%s: port %u", ports[i].url, cm_url_port(ports[i].url));
    if (cm_url_is_ssl(ports[i].url) != ports[i].ssl) fail_msg("%s: ssl", ports[i].url);
  }
}

static void aton(void **state) {
  (void)state;
  struct cm_addr a;
  assert_true(cm_aton(cm_str_c("127.0.0.1"), &a));
  assert_false(a.is_ip6);
  assert_int_equal(a.ip[0], 127);
  assert_true(cm_aton(cm_str_c("::1"), &a));
  assert_true(a.is_ip6);
  assert_int_equal(a.ip[15], 1);
  assert_true(cm_aton(cm_str_c("localhost"), &a));
  assert_false(cm_aton(cm_str_c("example.com"), &a));
  assert_false(cm_aton(cm_str_c(""), &a));
  assert_false(cm_aton(cm_str_c("1.2.3.256"), &a));
  /* the host view is not NUL-terminated: only len bytes count */
  assert_true(cm_aton(cm_str_n("10.0.0.1:80", 8), &a));
  assert_int_equal(a.ip[3], 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(encode), cmocka_unit_test(http_var), cmocka_unit_test(get_var_rules),
      cmocka_unit_test(url_parts), cmocka_unit_test(aton),
  };
  return cmocka_run_group_tests_name("urlcode", tests, NULL, NULL);
}
