/*
 * MQTT packet encoder: a struct cm_mqtt_packet (the parser's output shape)
 * to bytes appended to a struct cm_buf.  Two passes over the same code: the
 * first counts the body so the Remaining Length can be written first, the
 * second writes straight into the reserved space.
 */
#include <string.h>

#include "mqtt/internal.h"

struct wr {
  uint8_t *p; /* NULL while counting */
  size_t n;   /* bytes counted or written */
  bool bad;   /* a string or binary field over 65535 bytes */
};

static void put(struct wr *w, const void *src, size_t n) {
  if (w->p != NULL && n > 0) memcpy(w->p + w->n, src, n);
  w->n += n;
}
static void put_u8(struct wr *w, uint8_t v) { put(w, &v, 1); }
static void put_u16(struct wr *w, uint16_t v) {
  uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
  put(w, b, 2);
}
static void put_lstr(struct wr *w, struct cm_str s) {
  if (s.len > 65535) w->bad = true;
  put_u16(w, (uint16_t)s.len);
  put(w, s.buf, s.len);
}
static void put_varint(struct wr *w, uint32_t v) {
  uint8_t b[4];
  size_t n = cm_mqtt_varint_encode(b, v);
  if (n == 0) w->bad = true;
  put(w, b, n);
}
static void put_props(struct wr *w, struct cm_str block) {
  put_varint(w, (uint32_t)(block.len > CM_MQTT_MAX_REMAINING ? CM_MQTT_MAX_REMAINING + 1 : block.len));
  put(w, block.buf, block.len);
}

/* 5.0 acks: the reason code and properties may be left out when 0/empty. */
static void put_reason_props(struct wr *w, const struct cm_mqtt_packet *m) {
  if (m->version != 5 || (m->reason == 0 && m->props.len == 0)) return;
  put_u8(w, m->reason);
  if (m->props.len > 0) put_props(w, m->props);
}

static void body(struct wr *w, const struct cm_mqtt_packet *m) {
  bool v5 = m->version == 5;
  switch (m->cmd) {
    case CM_MQTT_CMD_CONNECT: {
      bool v31 = m->version == 3;
      struct cm_str name = m->proto_name.len > 0 ? m->proto_name : cm_str_c(v31 ? "MQIsdp" : "MQTT");
      put_lstr(w, name);
      put_u8(w, m->version == 0 ? 4 : m->version);
      uint8_t f = (uint8_t)((m->clean ? 0x02 : 0) | (m->has_username ? 0x80 : 0) |
                            (m->has_password ? 0x40 : 0));
      if (m->has_will) f = (uint8_t)(f | 0x04 | (m->qos & 3) << 3 | (m->retain ? 0x20 : 0));
      put_u8(w, f);
      put_u16(w, m->keepalive);
      if (v5) put_props(w, m->props);
      put_lstr(w, m->client_id);
      if (m->has_will) {
        if (v5) put_props(w, m->will_props);
        put_lstr(w, m->will_topic);
        put_lstr(w, m->will_payload);
      }
      if (m->has_username) put_lstr(w, m->username);
      if (m->has_password) put_lstr(w, m->password);
      return;
    }
    case CM_MQTT_CMD_CONNACK:
      put_u8(w, m->session_present ? 1 : 0);
      put_u8(w, m->reason);
      if (v5) put_props(w, m->props);
      return;
    case CM_MQTT_CMD_PUBLISH:
      put_lstr(w, m->topic);
      if (m->qos > 0) put_u16(w, m->id);
      if (v5) put_props(w, m->props);
      put(w, m->payload.buf, m->payload.len);
      return;
    case CM_MQTT_CMD_PUBACK:
    case CM_MQTT_CMD_PUBREC:
    case CM_MQTT_CMD_PUBREL:
    case CM_MQTT_CMD_PUBCOMP:
      put_u16(w, m->id);
      put_reason_props(w, m);
      return;
    case CM_MQTT_CMD_SUBSCRIBE:
    case CM_MQTT_CMD_UNSUBSCRIBE:
    case CM_MQTT_CMD_SUBACK:
    case CM_MQTT_CMD_UNSUBACK:
      put_u16(w, m->id);
      if (v5) put_props(w, m->props);
      if (v5 || m->cmd != CM_MQTT_CMD_UNSUBACK) put(w, m->payload.buf, m->payload.len);
      return;
    case CM_MQTT_CMD_DISCONNECT:
    case CM_MQTT_CMD_AUTH:
      put_reason_props(w, m);
      return;
    default: /* PINGREQ, PINGRESP: no body */
      return;
  }
}

static uint8_t first_byte(const struct cm_mqtt_packet *m) {
  uint8_t b = (uint8_t)(m->cmd << 4);
  switch (m->cmd) {
    case CM_MQTT_CMD_PUBLISH:
      return (uint8_t)(b | (m->dup ? 0x08 : 0) | (m->qos & 3) << 1 | (m->retain ? 1 : 0));
    case CM_MQTT_CMD_PUBREL:
    case CM_MQTT_CMD_SUBSCRIBE:
    case CM_MQTT_CMD_UNSUBSCRIBE:
      return (uint8_t)(b | 2);
    default:
      return b;
  }
}

int cm_mqtt_encode(struct cm_buf *out, const struct cm_mqtt_packet *m) {
  if (m->cmd < 1 || m->cmd > 15) return -CM_MQTT_RC_MALFORMED;
  struct wr w = {NULL, 0, false};
  body(&w, m);
  if (w.bad) return -CM_MQTT_RC_MALFORMED;
  if (w.n > CM_MQTT_MAX_REMAINING) return -CM_MQTT_RC_PACKET_TOO_LARGE;
  uint8_t hdr[5];
  hdr[0] = first_byte(m);
  size_t hlen = 1 + cm_mqtt_varint_encode(hdr + 1, (uint32_t)w.n);
  if (cm_buf_reserve(out, hlen + w.n) != 0) return CM_ENOMEM;
  uint8_t *dst = cm_buf_data(out) + out->len;
  memcpy(dst, hdr, hlen);
  struct wr w2 = {dst + hlen, 0, false};
  body(&w2, m);
  out->len += hlen + w2.n;
  return 0;
}

int cm_mqtt_list_append(struct cm_buf *list, int cmd, struct cm_str filter, uint8_t code) {
  if (cmd == CM_MQTT_CMD_SUBACK || cmd == CM_MQTT_CMD_UNSUBACK) return cm_buf_append(list, &code, 1);
  if (filter.len > 65535) return CM_ETOOBIG;
  uint8_t n[2] = {(uint8_t)(filter.len >> 8), (uint8_t)filter.len};
  size_t need = 2 + filter.len + (cmd == CM_MQTT_CMD_SUBSCRIBE ? 1 : 0);
  if (cm_buf_reserve(list, need) != 0) return CM_ENOMEM;
  cm_buf_append(list, n, 2);
  if (filter.len > 0) cm_buf_append(list, filter.buf, filter.len);
  if (cmd == CM_MQTT_CMD_SUBSCRIBE) cm_buf_append(list, &code, 1);
  return 0;
}
