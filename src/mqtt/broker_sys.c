/*
 * $SYS/broker/... statistics, published as retained messages by a timer
 * (mosquitto's names where they exist), so a subscriber to "$SYS/#" gets
 * the current values at once and updates every sys_interval_ms.
 */
#include <inttypes.h>
#include <stdio.h>

#include "mqtt/broker.h"

static void put(struct cm_mqtt_broker *b, const char *topic, const char *fmt, uint64_t v) {
  char val[32];
  int n = snprintf(val, sizeof(val), fmt, v);
  struct cm_mqtt_broker_msg m = {0};
  m.topic = cm_str_c(topic);
  m.payload = cm_str_n(val, n > 0 ? (size_t)n : 0);
  m.retain = true;
  cm__br_retain(b, &m, false); /* never persisted */
  cm__bd_route(b, &m, NULL);
}

static void publish_sys(void *arg) {
  struct cm_mqtt_broker *b = arg;
  struct cm_mqtt_broker_stats st;
  cm_mqtt_broker_stats(b, &st);
  put(b, "$SYS/broker/uptime", "%" PRIu64 " seconds", st.uptime_s);
  put(b, "$SYS/broker/clients/connected", "%" PRIu64, st.clients_connected);
  put(b, "$SYS/broker/clients/disconnected", "%" PRIu64, st.clients_disconnected);
  put(b, "$SYS/broker/clients/maximum", "%" PRIu64, st.clients_maximum);
  put(b, "$SYS/broker/clients/total", "%" PRIu64,
      (uint64_t)st.clients_connected + st.clients_disconnected);
  put(b, "$SYS/broker/messages/received", "%" PRIu64, st.msgs_received);
  put(b, "$SYS/broker/messages/sent", "%" PRIu64, st.msgs_sent);
  put(b, "$SYS/broker/messages/dropped", "%" PRIu64, st.msgs_dropped);
  put(b, "$SYS/broker/messages/stored", "%" PRIu64, st.queued);
  put(b, "$SYS/broker/bytes/received", "%" PRIu64, st.bytes_received);
  put(b, "$SYS/broker/bytes/sent", "%" PRIu64, st.bytes_sent);
  put(b, "$SYS/broker/subscriptions/count", "%" PRIu64, st.subscriptions);
  put(b, "$SYS/broker/retained messages/count", "%" PRIu64, st.retained);
}

void cm__bsys_start(struct cm_mqtt_broker *b) {
  struct cm_mqtt_broker_msg m = {0};
  m.topic = cm_str_c("$SYS/broker/version");
  m.payload = cm_str_c("cymongoose " CM_VERSION);
  m.retain = true;
  cm__br_retain(b, &m, false);
  b->sys_timer = cm_timer_add(b->mgr, b->o.sys_interval_ms, CM_TIMER_REPEAT | CM_TIMER_RUN_NOW,
                              publish_sys, b);
}
