/* Unit tests of cm_http_basic_creds (RFC 7617). */
#include "testutil.h"

static bool creds(const char *req, char *user, size_t ulen, char *pass, size_t plen) {
  struct cm_http_msg hm;
  assert_true(cm_http_parse_request(req, strlen(req), &hm, NULL) > 0);
  return cm_http_basic_creds(&hm, user, ulen, pass, plen);
}

#define REQ(auth) "GET / HTTP/1.1\r\nHost: x\r\n" auth "\r\n"

static void decodes_user_and_password(void **state) {
  (void)state;
  char u[32], p[32];
  /* "Aladdin:open sesame", the RFC 7617 example */
  assert_true(creds(REQ("Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n"), u, 32, p, 32));
  assert_string_equal(u, "Aladdin");
  assert_string_equal(p, "open sesame");
  /* scheme case-insensitive, extra spaces, a colon inside the password */
  assert_true(creds(REQ("Authorization: bAsIc   dTpwOnE=\r\n"), u, 32, p, 32)); /* u:p:q */
  assert_string_equal(u, "u");
  assert_string_equal(p, "p:q");
  /* empty user and password */
  assert_true(creds(REQ("Authorization: Basic Og==\r\n"), u, 32, p, 32)); /* ":" */
  assert_string_equal(u, "");
  assert_string_equal(p, "");
}

static void refuses_what_is_not_basic_credentials(void **state) {
  (void)state;
  char u[32], p[32];
  assert_false(creds(REQ(""), u, 32, p, 32));
  assert_false(creds(REQ("Authorization: Bearer abc\r\n"), u, 32, p, 32));
  assert_false(creds(REQ("Authorization: Basic\r\n"), u, 32, p, 32));
  assert_false(creds(REQ("Authorization: Basic !!!!\r\n"), u, 32, p, 32));
  assert_false(creds(REQ("Authorization: Basic YWxpY2U=\r\n"), u, 32, p, 32)); /* no colon */
  assert_false(creds(REQ("Authorization: Basic YQB1OnA=\r\n"), u, 32, p, 32));  /* NUL inside */
  /* parts that do not fit the caller's buffers */
  assert_false(creds(REQ("Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n"), u, 7, p, 32));
  assert_false(creds(REQ("Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n"), u, 32, p, 11));
  assert_true(creds(REQ("Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n"), u, 8, p, 12));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(decodes_user_and_password),
      cmocka_unit_test(refuses_what_is_not_basic_credentials),
  };
  return cmocka_run_group_tests_name("http_auth", tests, NULL, NULL);
}
