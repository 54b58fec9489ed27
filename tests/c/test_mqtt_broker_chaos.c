/* Many clients of every version doing random things to one broker
 * (takeovers of a small pool of ids, clean and persistent sessions,
 * wildcard and shared subscriptions, QoS 0/1/2, retained, wills, drops):
 * nothing breaks (run under ASan in make test-asan), and once everyone is
 * gone and the sessions expired the broker holds nothing but retained
 * messages. */
#include "broker_harness.h"

#define NCLI 24

static const char *const filters[] = {"a/#", "a/+/c", "+/b/+", "#", "$share/g/a/#", "$share/h/+/b/c",
                                      "a/b/c", "x"};
static const char *const topics[] = {"a/b/c", "a/x/c", "z/b/q", "x", "a"};

static unsigned long long rng = 88172645463325252ull;
static unsigned rnd(unsigned n) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (unsigned)(rng % n);
}

static void chaos(void **state) {
  (void)state;
  const char *seed = getenv("CM_CHAOS_SEED"); /* to explore other sequences */
  if (seed != NULL) rng = strtoull(seed, NULL, 10) | 1;
  struct bk k;
  struct cm_mqtt_broker_opts o = {.allow_anonymous = true, .max_session_expiry_s = 1,
                                  .sys_interval_ms = 50, .max_queued = 20};
  bk_start(&k, &o);
  char url[64];
  snprintf(url, sizeof(url), "mqtt://127.0.0.1:%u", k.port);
  static struct cli c[NCLI];
  memset(c, 0, sizeof(c));
  uint64_t end = cm_millis() + 3000;
  while (cm_millis() < end) {
    int i = (int)rnd(NCLI);
    struct cli *x = &c[i];
    if (x->c == NULL) {
      char id[16];
      snprintf(id, sizeof(id), "id%u", rnd(8)); /* a small pool: takeovers */
      struct cm_mqtt_prop exp = {.id = CM_MQTT_PROP_SESSION_EXPIRY_INTERVAL, .iv = rnd(3)};
      struct cm_mqtt_opts mo = {.client_id = cm_str_c(id), .version = (uint8_t)(4 + rnd(2)),
                                .clean = rnd(2) == 0, .props = &exp, .num_props = 1};
      if (rnd(3) == 0) {
        mo.will_topic = cm_str_c(topics[rnd(5)]);
        mo.will_message = cm_str_c("will");
        mo.will_qos = (uint8_t)rnd(3);
      }
      memset(x, 0, sizeof(*x));
      x->c = cm_mqtt_connect(&k.mgr, url, &mo, cli_fn, x);
    } else if (x->open) {
      switch (rnd(6)) {
        case 0:
        case 1: {
          struct cm_mqtt_sub_opts so = {.topic = cm_str_c(filters[rnd(8)]), .qos = (uint8_t)rnd(3)};
          cm_mqtt_subscribe(x->c, &so, 1, rnd(2), NULL, 0);
          break;
        }
        case 2:
        case 3:
          cm_mqtt_pub(x->c, cm_str_c(topics[rnd(5)]), cm_str_c(rnd(4) == 0 ? "" : "payload"),
                      (int)rnd(3), rnd(4) == 0);
          break;
        case 4:
          cm_mqtt_unsub(x->c, cm_str_c(filters[rnd(8)]));
          break;
        default:
          if (rnd(2) == 0) cm_mqtt_disconnect(x->c);
          else cm_close(x->c);
          break;
      }
    }
    x->n = 0; /* only the connection state matters here */
    cm_mgr_poll(&k.mgr, 0);
  }
  for (int i = 0; i < NCLI; i++)
    if (c[i].c != NULL) cm_close(c[i].c);
  poll_ms(&k, 1600); /* sessions expire (cap 1 s) */
  struct cm_mqtt_broker_stats st = bk_stats(&k);
  assert_int_equal(st.clients_connected, 0);
  assert_int_equal(st.clients_disconnected, 0);
  assert_int_equal(st.subscriptions, 0);
  assert_int_equal(st.queued, 0);
  assert_true(st.msgs_received > 0);
  bk_stop(&k);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(chaos)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
