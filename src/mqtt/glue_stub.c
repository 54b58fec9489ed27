/* Temporary: the MQTT connection functions, not implemented yet. */
#include <errno.h>

#include "cymongoose.h"

struct cm_mqtt_session *cm_mqtt_session_new(const struct cm_mqtt_limits *lim) { (void)lim; return NULL; }
void cm_mqtt_session_free(struct cm_mqtt_session *s) { (void)s; }
size_t cm_mqtt_session_pending(const struct cm_mqtt_session *s) { (void)s; return 0; }
struct cm_conn *cm_mqtt_connect(struct cm_mgr *mgr, const char *url, const struct cm_mqtt_opts *opts,
                                cm_event_fn fn, void *fn_data) {
  (void)mgr, (void)url, (void)opts, (void)fn, (void)fn_data;
  errno = ENOSYS;
  return NULL;
}
struct cm_conn *cm_mqtt_listen(struct cm_mgr *mgr, const char *url, cm_event_fn fn, void *fn_data) {
  return cm_mqtt_listen_opts(mgr, url, NULL, fn, fn_data);
}
struct cm_conn *cm_mqtt_listen_opts(struct cm_mgr *mgr, const char *url,
                                    const struct cm_mqtt_limits *lim, cm_event_fn fn, void *fn_data) {
  (void)mgr, (void)url, (void)lim, (void)fn, (void)fn_data;
  errno = ENOSYS;
  return NULL;
}
bool cm_mqtt_serve(struct cm_conn *c, const struct cm_mqtt_limits *lim) { (void)c, (void)lim; return false; }
bool cm_mqtt_is(const struct cm_conn *c) { (void)c; return false; }
uint8_t cm_mqtt_version(const struct cm_conn *c) { (void)c; return 0; }
int cm_mqtt_publish(struct cm_conn *c, const struct cm_mqtt_pub_opts *opts) { (void)c, (void)opts; return -1; }
int cm_mqtt_pub(struct cm_conn *c, struct cm_str topic, struct cm_str message, int qos, bool retain) {
  (void)c, (void)topic, (void)message, (void)qos, (void)retain;
  return -1;
}
int cm_mqtt_subscribe(struct cm_conn *c, const struct cm_mqtt_sub_opts *subs, size_t n,
                      uint32_t sub_id, const struct cm_mqtt_prop *props, size_t num_props) {
  (void)c, (void)subs, (void)n, (void)sub_id, (void)props, (void)num_props;
  return -1;
}
int cm_mqtt_sub(struct cm_conn *c, struct cm_str topic, int qos) { (void)c, (void)topic, (void)qos; return -1; }
int cm_mqtt_unsubscribe(struct cm_conn *c, const struct cm_str *topics, size_t n,
                        const struct cm_mqtt_prop *props, size_t num_props) {
  (void)c, (void)topics, (void)n, (void)props, (void)num_props;
  return -1;
}
int cm_mqtt_unsub(struct cm_conn *c, struct cm_str topic) { (void)c, (void)topic; return -1; }
bool cm_mqtt_ping(struct cm_conn *c) { (void)c; return false; }
bool cm_mqtt_pong(struct cm_conn *c) { (void)c; return false; }
bool cm_mqtt_disconnect(struct cm_conn *c) { (void)c; return false; }
bool cm_mqtt_disconnect_reason(struct cm_conn *c, uint8_t reason, const struct cm_mqtt_prop *props,
                               size_t num_props) {
  (void)c, (void)reason, (void)props, (void)num_props;
  return false;
}
bool cm_mqtt_send_connack(struct cm_conn *c, uint8_t code, bool session_present,
                          const struct cm_mqtt_prop *props, size_t num_props) {
  (void)c, (void)code, (void)session_present, (void)props, (void)num_props;
  return false;
}
bool cm_mqtt_send_suback(struct cm_conn *c, uint16_t id, const uint8_t *codes, size_t n,
                         const struct cm_mqtt_prop *props, size_t num_props) {
  (void)c, (void)id, (void)codes, (void)n, (void)props, (void)num_props;
  return false;
}
bool cm_mqtt_send_unsuback(struct cm_conn *c, uint16_t id, const uint8_t *codes, size_t n,
                           const struct cm_mqtt_prop *props, size_t num_props) {
  (void)c, (void)id, (void)codes, (void)n, (void)props, (void)num_props;
  return false;
}
bool cm_mqtt_send_ack(struct cm_conn *c, int cmd, uint16_t id, uint8_t reason) {
  (void)c, (void)cmd, (void)id, (void)reason;
  return false;
}
bool cm_mqtt_send(struct cm_conn *c, const struct cm_mqtt_packet *m) { (void)c, (void)m; return false; }
