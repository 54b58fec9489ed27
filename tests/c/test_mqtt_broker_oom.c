/* Out of memory during a session takeover: linked with
 * -Wl,--wrap=cm__mqtt_session_new_server (Makefile), so the test decides when
 * allocating MQTT session state fails.  The broker must neither leave the
 * old connection pointing at freed (or shared) session state nor lose the
 * old client: the new one is refused and the old one carries on. */
#include "broker_harness.h"

struct cm_mqtt_session *__real_cm__mqtt_session_new_server(void);
struct cm_mqtt_session *__wrap_cm__mqtt_session_new_server(void);

static bool fail_next;
struct cm_mqtt_session *__wrap_cm__mqtt_session_new_server(void) {
  if (fail_next) {
    fail_next = false;
    return NULL;
  }
  return __real_cm__mqtt_session_new_server();
}

/* Arms the failure for the first session allocation after authentication,
 * which is the takeover's, when the user is "oom". */
static int auth_arm(void *arg, const struct cm_mqtt_client_info *who, struct cm_str pw, bool has) {
  (void)arg, (void)pw, (void)has;
  if (who->username.len == 3 && memcmp(who->username.buf, "oom", 3) == 0) fail_next = true;
  return 0;
}

static void takeover_out_of_memory(void **state) {
  (void)state;
  for (int clean = 0; clean < 2; clean++) {
    struct bk k;
    struct cm_mqtt_broker_opts o = {.allow_anonymous = true, .authenticate = auth_arm};
    bk_start(&k, &o);
    struct cli old, taker, watch;
    cli_connect(&k, &old, "twin", 5, false);
    cli_sub(&k, &old, "t", 1, 0);
    struct cm_mqtt_opts mo = {.client_id = cm_str_c("twin"), .version = 5, .clean = clean == 1,
                              .user = cm_str_c("oom")};
    cli_connect_opts(&k, &taker, &mo);
    assert_false(fail_next);                 /* the takeover did allocate */
    assert_false(taker.open);                /* refused ... */
    assert_int_equal(taker.connack, CM_MQTT_RC_SERVER_UNAVAILABLE);
    assert_false(old.closed);                /* ... and the old client stays */
    cli_connect(&k, &watch, "watch", 5, true);
    cli_pub(&watch, "t", "still here", 1, false);
    assert_true(cli_wait(&k, &old, 1));
    assert_string_equal(old.m[0].payload, "still here");
    cli_drop(&k, &watch);
    cli_drop(&k, &old);
    bk_stop(&k);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(takeover_out_of_memory),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
