/* The broker's configuration file: every setting, defaults, and errors
 * naming file and line. */
#include "testutil.h"
#include "cymongoose.h"

static void full_file(void **state) {
  (void)state;
  const char *text =
      "# broker\n"
      "listener mqtt://127.0.0.1:1883\n"
      "listener   mqtts://0.0.0.0:8883  \n"
      "certfile /etc/cm/server.pem\n"
      "keyfile /etc/cm/server key.pem\n"
      "cafile /etc/cm/ca.pem\n"
      "require_certificate true\n"
      "use_identity_as_username true\n"
      "listener ws://0.0.0.0:8080/mqtt\r\n"
      "allow_anonymous true\n"
      "password_file /etc/cm/passwd\n"
      "acl_file /etc/cm/acl\n"
      "persistence_file /var/lib/cm/broker.db\n"
      "fsync 250\n"
      "compact_interval 60\n"
      "max_connections 5000\n"
      "max_packet_size 65536\n"
      "max_queued_messages 42\n"
      "max_inflight 7\n"
      "topic_alias_max 0\n"
      "topic_alias_out_max 65535\n"
      "log_level debug\n"
      "bridge up mqtt://127.0.0.1:1884\n"
      "remote_clientid edge-1\n"
      "remote_username u\n"
      "remote_password p w\n"
      "keepalive_interval 30\n"
      "bridge_protocol_version mqttv311\n"
      "cleansession true\n"
      "topic sensors/# out 1\n"
      "topic cmd/+ in 2 local/ remote/\n"
      "topic x both 0 \"\" site/\n"
      "bridge second mqtt://127.0.0.1:1885\n";
  struct cm_conf c;
  char err[CM_OPS_ERR_LEN] = "";
  assert_true(cm_conf_parse(&c, cm_str_c(text), "b.conf", err, sizeof(err)) == 0);
  assert_int_equal(c.nlisteners, 3);
  assert_string_equal(c.listeners[0].url, "mqtt://127.0.0.1:1883");
  assert_null(c.listeners[0].certfile);
  assert_string_equal(c.listeners[1].url, "mqtts://0.0.0.0:8883");
  assert_string_equal(c.listeners[1].certfile, "/etc/cm/server.pem");
  assert_string_equal(c.listeners[1].keyfile, "/etc/cm/server key.pem");
  assert_string_equal(c.listeners[1].cafile, "/etc/cm/ca.pem");
  assert_true(c.listeners[1].require_certificate);
  assert_true(c.listeners[1].use_identity_as_username);
  assert_string_equal(c.listeners[2].url, "ws://0.0.0.0:8080/mqtt");
  assert_false(c.listeners[2].require_certificate);
  assert_true(c.allow_anonymous);
  assert_string_equal(c.password_file, "/etc/cm/passwd");
  assert_string_equal(c.acl_file, "/etc/cm/acl");
  assert_string_equal(c.persistence_file, "/var/lib/cm/broker.db");
  assert_int_equal(c.fsync, CM_FSYNC_INTERVAL);
  assert_int_equal(c.fsync_interval_ms, 250);
  assert_int_equal(c.compact_interval_s, 60);
  assert_int_equal(c.max_connections, 5000);
  assert_int_equal(c.max_packet_size, 65536);
  assert_int_equal(c.max_queued_messages, 42);
  assert_int_equal(c.max_inflight, 7);
  assert_int_equal(c.topic_alias_max, 0);
  assert_int_equal(c.topic_alias_out_max, 65535);
  assert_int_equal(c.log_level, CM_LL_DEBUG);
  assert_int_equal(c.nbridges, 2);
  struct cm_conf_bridge *b = &c.bridges[0];
  assert_string_equal(b->name, "up");
  assert_string_equal(b->url, "mqtt://127.0.0.1:1884");
  assert_string_equal(b->remote_clientid, "edge-1");
  assert_string_equal(b->remote_username, "u");
  assert_string_equal(b->remote_password, "p w");
  assert_int_equal(b->keepalive, 30);
  assert_int_equal(b->version, 4);
  assert_true(b->clean_start);
  assert_int_equal(b->ntopics, 3);
  assert_string_equal(b->topics[0].pattern, "sensors/#");
  assert_int_equal(b->topics[0].direction, 2);
  assert_int_equal(b->topics[0].qos, 1);
  assert_string_equal(b->topics[0].local_prefix, "");
  assert_string_equal(b->topics[1].local_prefix, "local/");
  assert_string_equal(b->topics[1].remote_prefix, "remote/");
  assert_int_equal(b->topics[1].direction, 1);
  assert_int_equal(b->topics[1].qos, 2);
  assert_int_equal(b->topics[2].direction, 3);
  assert_string_equal(b->topics[2].local_prefix, "");
  assert_string_equal(b->topics[2].remote_prefix, "site/");
  assert_string_equal(c.bridges[1].remote_clientid, "second");
  assert_int_equal(c.bridges[1].version, 5);
  assert_int_equal(c.bridges[1].keepalive, 60);
  assert_false(c.bridges[1].clean_start);
  cm_conf_free(&c);
}

static void defaults(void **state) {
  (void)state;
  struct cm_conf c;
  char err[CM_OPS_ERR_LEN];
  assert_true(cm_conf_parse(&c, cm_str_c(""), "e", err, sizeof(err)) == 0);
  assert_false(c.allow_anonymous);
  assert_int_equal(c.fsync, CM_FSYNC_ALWAYS);
  assert_int_equal(c.nlisteners, 0);
  assert_null(c.password_file);
  assert_int_equal(c.log_level, -1);
  assert_int_equal(c.topic_alias_max, -1);
  assert_int_equal(c.topic_alias_out_max, -1);
  assert_true(cm_conf_add_listener(&c, "mqtt://127.0.0.1:0") == 0);
  assert_int_equal(c.nlisteners, 1);
  cm_conf_free(&c);
  assert_true(cm_conf_parse(&c, cm_str_c("fsync never\n"), "e", err, sizeof(err)) == 0);
  assert_int_equal(c.fsync, CM_FSYNC_NEVER);
  cm_conf_free(&c);
}

/* What the file sets reaches the broker's options; what it does not set
 * leaves them (0: the broker's default), and 0 aliases means none. */
static void broker_opts(void **state) {
  (void)state;
  struct cm_conf c;
  char err[CM_OPS_ERR_LEN];
  struct cm_mqtt_broker_opts o = {.max_inflight = 9, .topic_alias_max = 5};
  assert_true(cm_conf_parse(&c, cm_str_c("max_queued_messages 3\ntopic_alias_out_max 0\n"), "e",
                            err, sizeof(err)) == 0);
  cm_conf_broker_opts(&c, &o);
  assert_int_equal(o.max_queued, 3);
  assert_int_equal(o.max_inflight, 9);
  assert_int_equal(o.topic_alias_max, 5);
  assert_false(o.no_topic_alias);
  assert_int_equal(o.topic_alias_out_max, 0);
  assert_true(o.no_topic_alias_out);
  cm_conf_free(&c);
  assert_true(cm_conf_parse(&c, cm_str_c("topic_alias_out_max 2\n"), "e", err, sizeof(err)) == 0);
  cm_conf_broker_opts(&c, &o);
  assert_int_equal(o.topic_alias_out_max, 2);
  assert_false(o.no_topic_alias_out);
  cm_conf_free(&c);
}

static void errors(void **state) {
  (void)state;
  struct {
    const char *text, *err;
  } t[] = {
      {"listener 1883\n", "c:1: listener needs a URL: mqtt://IP:PORT, mqtts://, ws://IP:PORT/PATH or wss://"},
      {"\ncertfile x\n", "c:2: certfile must follow the listener line it applies to"},
      {"listener mqtt://a:1\nrequire_certificate yes\n", "c:2: expected true or false"},
      {"allow_anonymous 1\n", "c:1: expected true or false"},
      {"max_inflight 70000\n", "c:1: max_inflight: expected a number, not \"70000\""},
      {"max_connections -1\n", "c:1: max_connections: expected a number, not \"-1\""},
      {"topic_alias_out_max 65536\n",
       "c:1: topic_alias_out_max: expected a number from 0 to 65535, not \"65536\""},
      {"topic_alias_max -1\n", "c:1: topic_alias_max: expected a number from 0 to 65535, not \"-1\""},
      {"fsync sometimes\n", "c:1: fsync must be always, never or an interval in ms (1 to 3600000)"},
      {"fsync 0\n", "c:1: fsync must be always, never or an interval in ms (1 to 3600000)"},
      {"password_file\n", "c:1: password_file needs a value"},
      {"frobnicate 1\n", "c:1: unknown setting \"frobnicate\""},
      {"topic a out 1\n", "c:1: topic must follow a bridge line"},
      {"bridge b\n", "c:1: expected: bridge NAME mqtt://HOST:PORT"},
      {"bridge b http://x:1\n", "c:1: bridge URL must be mqtt://HOST:PORT or mqtts://HOST:PORT"},
      {"bridge b mqtt://x:1\nbridge b mqtt://y:1\n", "c:2: duplicate bridge name \"b\""},
      {"bridge b mqtt://x:1\ntopic a sideways 1\n",
       "c:2: topic direction must be in, out or both, not \"sideways\""},
      {"bridge b mqtt://x:1\ntopic a in 3\n", "c:2: topic QoS must be 0, 1 or 2"},
      {"bridge b mqtt://x:1\ntopic a in\n",
       "c:2: expected: topic PATTERN in|out|both QOS [LOCAL_PREFIX REMOTE_PREFIX]"},
      {"bridge b mqtt://x:1\ntopic a in 1 l/\n",
       "c:2: a local prefix needs a remote prefix too (\"\" for none)"},
      {"bridge b mqtt://x:1\ntopic a/#/b in 1\n", "c:2: invalid topic filter \"a/#/b\""},
      {"bridge b mqtt://x:1\nbridge_protocol_version 3\n",
       "c:2: bridge_protocol_version must be mqttv311 or mqttv50"},
      {"log_level loud\n", "c:1: log_level must be error, info or debug"},
  };
  char err[CM_OPS_ERR_LEN];
  for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
    struct cm_conf c;
    assert_true(cm_conf_parse(&c, cm_str_c(t[i].text), "c", err, sizeof(err)) != 0);
    assert_string_equal(err, t[i].err);
    cm_conf_free(&c);
  }
  struct cm_conf c;
  assert_true(cm_conf_load(&c, "/nonexistent/cm.conf", err, sizeof(err)) != 0);
  assert_string_equal(err, "/nonexistent/cm.conf: No such file or directory");
  cm_conf_free(&c);
}

/* The bridge's topic mapping (pure part of src/mqttops/bridge.c). */
static void bridge_mapping(void **state) {
  (void)state;
  struct cm_conf_topic t = {"sensors/#", 3, 1, "site1/", "edge/"};
  struct {
    int dir;
    const char *in, *out; /* out NULL: not mapped */
  } cases[] = {
      {2, "site1/sensors/a", "edge/sensors/a"}, {2, "site1/sensors", "edge/sensors"},
      {2, "sensors/a", NULL},                   {2, "site1/other", NULL},
      {2, "site1/", NULL},                      {1, "edge/sensors/x/y", "site1/sensors/x/y"},
      {1, "site1/sensors/x", NULL},             {1, "edge/cmd", NULL},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    struct cm_buf out = {0};
    bool ok = cm_bridge_map(&t, cases[i].dir, cm_str_c(cases[i].in), &out);
    if (ok != (cases[i].out != NULL)) fail_msg("%s: mapped %d", cases[i].in, ok);
    if (ok) {
      assert_int_equal(out.len, strlen(cases[i].out));
      assert_memory_equal(cm_buf_data(&out), cases[i].out, out.len);
    }
    cm_buf_free(&out);
  }
  /* direction "out" only: nothing comes in */
  struct cm_conf_topic o = {"a/+", 2, 0, "", ""};
  struct cm_buf out = {0};
  assert_false(cm_bridge_map(&o, 1, cm_str_c("a/b"), &out));
  assert_true(cm_bridge_map(&o, 2, cm_str_c("a/b"), &out));
  assert_false(cm_bridge_map(&o, 2, cm_str_c("a/b/c"), &out));
  cm_buf_free(&out);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(full_file),
      cmocka_unit_test(defaults),
      cmocka_unit_test(broker_opts),
      cmocka_unit_test(errors),
      cmocka_unit_test(bridge_mapping),
  };
  return cmocka_run_group_tests_name("mqtt_conf", tests, NULL, NULL);
}
