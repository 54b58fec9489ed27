/* cm_strerror() and the error codes of the public API. */
#include <stdio.h>
#include <string.h>

#include "testutil.h"

/* Every code named in cymongoose.h is negative, distinct, and has a message
 * of its own; errno codes read as strerror does. */
static void every_code_has_a_message(void **state) {
  (void)state;
  const int codes[] = {CM_EINVAL, CM_ENOMEM,  CM_ENOSPC,   CM_EAGAIN,  CM_EALREADY,
                       CM_ENOENT, CM_EINTR,   CM_EIO,      CM_ECONNRESET, CM_ENOTCONN,
                       CM_ECLOSED, CM_ETOOBIG, CM_EPARSE, CM_EPARTIAL};
  size_t n = sizeof(codes) / sizeof(codes[0]);
  for (size_t i = 0; i < n; i++) {
    assert_true(codes[i] < 0);
    const char *m = cm_strerror(codes[i]);
    assert_non_null(m);
    assert_true(strlen(m) > 0);
    assert_string_not_equal(m, "unknown error");
    for (size_t j = 0; j < i; j++) {
      assert_int_not_equal(codes[i], codes[j]);
      assert_string_not_equal(m, cm_strerror(codes[j]));
    }
  }
  assert_string_equal(cm_strerror(CM_ENOMEM), strerror(ENOMEM));
  assert_string_equal(cm_strerror(-ECONNREFUSED), strerror(ECONNREFUSED));
  assert_string_equal(cm_strerror(CM_ECLOSED), "connection is closing");
}

/* Our own codes never collide with an errno value; anything unknown still
 * gets a message, never NULL. */
static void own_codes_are_apart_and_unknown_is_named(void **state) {
  (void)state;
  assert_true(CM_ECLOSED < -4096 && CM_EPARTIAL < -4096);
  assert_string_equal(cm_strerror(0), "success");
  assert_string_equal(cm_strerror(-99999), "unknown error");
  assert_string_equal(cm_strerror(12345), "unknown error");
  assert_string_equal(cm_strerror(-4000), "unknown error");
  assert_non_null(cm_strerror(CM_E_OWN_BASE));
}

/* A call that fails says why with a code, and the connection stays as it
 * was: a closing connection refuses to queue (CM_ECLOSED), a listener
 * cannot send (CM_EINVAL), send_limit gives CM_ETOOBIG. */
static void send_failures_have_distinct_codes(void **state) {
  (void)state;
  struct cm_mgr mgr;
  assert_int_equal(cm_mgr_init(&mgr), 0);
  struct cm_conn *l = cm_listen(&mgr, "tcp://127.0.0.1:0", NULL, NULL);
  assert_non_null(l);
  assert_int_equal(cm_send(l, "x", 1), CM_EINVAL);
  char url[64];
  snprintf(url, sizeof(url), "tcp://127.0.0.1:%u", (unsigned)l->loc.port);
  struct cm_conn *c = cm_connect(&mgr, url, NULL, NULL);
  assert_non_null(c);
  mgr.send_limit = 4;
  assert_int_equal(cm_send(c, "12345", 5), CM_ETOOBIG);
  assert_int_equal(cm_send(c, "1234", 4), 0);
  assert_int_equal(cm_printf(c, "%s", ""), 0);
  assert_int_equal(cm_printf(c, "%d", 5), CM_ETOOBIG);
  cm_close(c);
  assert_int_equal(cm_send(c, "x", 1), CM_ECLOSED);
  assert_int_equal(cm_wakeup(&mgr, 1, "x", 1), CM_EINVAL); /* not enabled */
  assert_int_equal(cm_mgr_wake(&mgr), CM_EINVAL);
  cm_mgr_free(&mgr);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(every_code_has_a_message),
      cmocka_unit_test(own_codes_are_apart_and_unknown_is_named),
      cmocka_unit_test(send_failures_have_distinct_codes),
  };
  return cmocka_run_group_tests_name("errors", tests, NULL, NULL);
}
