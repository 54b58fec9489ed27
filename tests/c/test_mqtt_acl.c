/* The ACL file: mosquitto's format, deny by default, patterns. */
#include "testutil.h"
#include "cymongoose.h"

static bool chk(const struct cm_acl *a, const char *user, const char *cid, const char *topic,
                int access) {
  return cm_acl_check(a, cm_str_c(user), cm_str_c(cid), cm_str_c(topic), access);
}

enum { RD = CM_MQTT_ACL_READ, WR = CM_MQTT_ACL_WRITE, SUB = CM_MQTT_ACL_SUBSCRIBE };

static void users_topics_patterns(void **state) {
  (void)state;
  const char *text =
      "# anonymous clients\n"
      "topic read public/#\n"
      "\n"
      "user alice\n"
      "topic sensors/+/temp\n"
      "topic write cmd/alice\n"
      "topic deny sensors/secret/temp\n"
      "user bob smith\n"
      "topic read sensors/#\n"
      "pattern readwrite clients/%c/#\n"
      "pattern write users/%u/out\n";
  char err[CM_OPS_ERR_LEN];
  struct cm_acl *a = cm_acl_parse(cm_str_c(text), "acl", err, sizeof(err));
  assert_non_null(a);
  /* anonymous */
  assert_true(chk(a, "", "c1", "public/x", RD));
  assert_false(chk(a, "", "c1", "public/x", WR));
  assert_true(chk(a, "", "c1", "public/#", SUB));
  assert_false(chk(a, "", "c1", "#", SUB));
  assert_false(chk(a, "alice", "c1", "public/x", RD));
  /* alice: readwrite, write-only, deny */
  assert_true(chk(a, "alice", "c1", "sensors/kitchen/temp", RD));
  assert_true(chk(a, "alice", "c1", "sensors/kitchen/temp", WR));
  assert_true(chk(a, "alice", "c1", "sensors/+/temp", SUB));
  assert_false(chk(a, "alice", "c1", "sensors/#", SUB));
  assert_false(chk(a, "alice", "c1", "sensors/kitchen/hum", RD));
  assert_true(chk(a, "alice", "c1", "cmd/alice", WR));
  assert_false(chk(a, "alice", "c1", "cmd/alice", RD));
  assert_false(chk(a, "alice", "c1", "cmd/alice", SUB));
  assert_false(chk(a, "alice", "c1", "sensors/secret/temp", RD));
  assert_false(chk(a, "alice", "c1", "sensors/secret/temp", WR));
  assert_false(chk(a, "alice", "c1", "sensors/secret/temp", SUB));
  /* "bob smith": the name is the rest of the line */
  assert_true(chk(a, "bob smith", "c2", "sensors/a/b", RD));
  assert_true(chk(a, "bob smith", "c2", "sensors/#", SUB));
  assert_false(chk(a, "bob smith", "c2", "sensors/a/b", WR));
  assert_false(chk(a, "bob", "c2", "sensors/a/b", RD));
  /* patterns apply to everyone, substituted */
  assert_true(chk(a, "", "c9", "clients/c9/x", WR));
  assert_true(chk(a, "alice", "c9", "clients/c9/#", SUB));
  assert_false(chk(a, "alice", "c9", "clients/c8/x", WR));
  assert_false(chk(a, "alice", "c9", "clients/+/x", SUB));
  assert_true(chk(a, "alice", "c9", "users/alice/out", WR));
  assert_false(chk(a, "", "c9", "users//out", WR));
  /* values with wildcards or slashes never expand */
  assert_false(chk(a, "alice", "+", "clients/+/x", WR));
  assert_false(chk(a, "alice", "a/b", "clients/a/b/x", WR));
  assert_false(chk(a, "#", "c1", "users/#/out", WR));
  cm_acl_free(a);
  /* no ACL: everything allowed */
  assert_true(chk(NULL, "", "", "x", WR));
}

static void covers(void **state) {
  (void)state;
  struct {
    const char *rule, *sub;
    bool ok;
  } t[] = {
      {"#", "a/b", true},      {"#", "#", true},         {"a/#", "a", true},
      {"a/#", "a/+/c", true},  {"a/+", "a/#", false},    {"a/+", "a/+", true},
      {"a/+", "a/b/c", false}, {"a/b", "a/+", false},    {"+/b", "x/b", true},
      {"#", "$SYS/x", false},  {"$SYS/#", "$SYS/x", true}, {"a", "a/b", false},
      {"a/b", "a", false},
  };
  for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
    bool got = cm_acl_filter_covers(cm_str_c(t[i].rule), cm_str_c(t[i].sub));
    if (got != t[i].ok) fail_msg("rule %s sub %s: %d", t[i].rule, t[i].sub, got);
  }
}

static void errors_name_the_line(void **state) {
  (void)state;
  struct {
    const char *text, *err;
  } t[] = {
      {"user\n", "acl:1: \"user\" needs a name"},
      {"\n\nfoo bar\n", "acl:3: unknown keyword \"foo\" (expected user, topic or pattern)"},
      {"topic\n", "acl:1: \"topic\" needs a topic filter"},
      {"user a\ntopic read a/#/b\n", "acl:2: invalid topic filter \"a/#/b\""},
  };
  char err[CM_OPS_ERR_LEN];
  for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
    assert_null(cm_acl_parse(cm_str_c(t[i].text), "acl", err, sizeof(err)));
    assert_string_equal(err, t[i].err);
  }
  /* "topic read" alone names the topic "read" (readwrite), as in mosquitto. */
  struct cm_acl *a = cm_acl_parse(cm_str_c("topic read\n"), "acl", err, sizeof(err));
  assert_non_null(a);
  assert_true(chk(a, "", "c", "read", CM_MQTT_ACL_WRITE));
  cm_acl_free(a);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(users_topics_patterns),
      cmocka_unit_test(covers),
      cmocka_unit_test(errors_name_the_line),
  };
  return cmocka_run_group_tests_name("mqtt_acl", tests, NULL, NULL);
}
