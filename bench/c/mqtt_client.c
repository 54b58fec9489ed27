/* The MQTT client load of bench/mqtt_ours.py on our C library, without
 * Python: one connection (cm_mqtt_connect), the window logic of
 * bench/mqtt_window.h, the same in-flight window as the Python client.
 * Between the Python client and bench/mqtt_raw.c (no library), it shows
 * what the library itself costs per message.
 *
 *   mqtt_client PORT QOS WINDOW SECONDS [MODE=echo]
 *
 * Prints: messages=<count> seconds=<elapsed> cpu=<process CPU seconds> */
#include <stdio.h>

#include "cymongoose.h"
#include "../mqtt_window.h"

#define TOPIC "bench/c"

static struct window_load load;
static struct cm_conn *conn;

static unsigned publish(void *arg, int qos) {
  (void)arg;
  static const char payload[WL_PAYLOAD] =
      "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
  int id = cm_mqtt_pub(conn, cm_str_c(TOPIC), cm_str_n(payload, WL_PAYLOAD), qos, false);
  if (id < 0) {
    fprintf(stderr, "mqtt_client: publish failed: %s\n", cm_strerror(id));
    exit(1);
  }
  return (unsigned)id;
}

static void disconnect(void *arg) {
  (void)arg;
  cm_mqtt_disconnect(conn);
}

static void handler(struct cm_conn *c, int ev, void *ev_data) {
  (void)c;
  if (ev == CM_EV_MQTT_CMD) {
    const struct cm_mqtt_msg *m = ev_data;
    if (m->cmd == CM_MQTT_CMD_PUBACK && load.pub) wl_acked(&load, m->id);
    else if (m->cmd == CM_MQTT_CMD_SUBACK) wl_started(&load);
  } else if (ev == CM_EV_MQTT_MSG) {
    if (!load.pub) wl_received_one(&load);
  } else if (ev == CM_EV_MQTT_OPEN) {
    if (load.pub) wl_started(&load);
    else cm_mqtt_sub(c, cm_str_c(TOPIC), load.qos);
  } else if (ev == CM_EV_ERROR) {
    fprintf(stderr, "mqtt_client: %s\n", (const char *)ev_data);
    exit(1);
  }
}

int main(int argc, char **argv) {
  wl_args(&load, argc, argv);
  load.publish = publish;
  load.finish = disconnect;
  struct cm_mgr mgr;
  if (cm_mgr_init(&mgr) != 0) return 1;
  char url[64];
  snprintf(url, sizeof(url), "mqtt://127.0.0.1:%d", load.port);
  struct cm_mqtt_opts o = {.client_id = cm_str_c("bench-c"), .clean = true, .keepalive = 60};
  /* As bench/mqtt_window.py's library_window. */
  o.limits.max_inflight = (uint32_t)(load.pub && load.window > 20 ? load.window : 20);
  conn = cm_mqtt_connect(&mgr, url, &o, handler, NULL);
  if (conn == NULL) return 1;
  while (!load.done) cm_mgr_poll(&mgr, 100);
  for (int i = 0; i < 10; i++) cm_mgr_poll(&mgr, 1); /* the DISCONNECT leaves */
  cm_mgr_free(&mgr);
  wl_report(&load);
  return 0;
}
