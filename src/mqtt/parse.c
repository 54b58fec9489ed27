/*
 * MQTT packet parser (3.1, 3.1.1 and 5.0): bytes in, a struct
 * cm_mqtt_packet of views out.  Pure: no I/O, no allocation; never reads
 * past the length given.  Every rule broken gets its own description and
 * the reason code MQTT 5 assigns to it.
 */
#include <string.h>

#include "mqtt/internal.h"

#define MALFORMED(r, why) cm__mqtt_rd_fail(r, -CM_MQTT_RC_MALFORMED, why)
#define PROTOCOL(r, why) cm__mqtt_rd_fail(r, -CM_MQTT_RC_PROTOCOL_ERROR, why)

static size_t left(const struct cm__mqtt_rd *r) {
  return (size_t)(r->end - r->p);
}

static uint8_t rd_u8(struct cm__mqtt_rd *r) {
  if (left(r) < 1) {
    MALFORMED(r, "packet ends inside a field");
    return 0;
  }
  return *r->p++;
}

static uint16_t rd_u16(struct cm__mqtt_rd *r) {
  if (left(r) < 2) {
    MALFORMED(r, "packet ends inside a field");
    return 0;
  }
  uint16_t v = (uint16_t)(r->p[0] << 8 | r->p[1]);
  r->p += 2;
  return v;
}

/* Binary data: a 2-byte length and the bytes. */
static struct cm_str rd_bin(struct cm__mqtt_rd *r) {
  uint16_t n = rd_u16(r);
  if (left(r) < n) {
    MALFORMED(r, "string or binary length past the end of the packet");
    return cm_str_n("", 0);
  }
  struct cm_str s = cm_str_n(n > 0 ? (const char *)r->p : "", n);
  r->p += n;
  return s;
}

/* A UTF-8 string (section 1.5.4). */
static struct cm_str rd_str(struct cm__mqtt_rd *r) {
  struct cm_str s = rd_bin(r);
  if (r->err == 0 && !cm_mqtt_str_valid(s))
    MALFORMED(r, "string is not valid UTF-8 or holds U+0000");
  return s;
}

/* A packet identifier, which must not be 0. */
static uint16_t rd_id(struct cm__mqtt_rd *r) {
  uint16_t id = rd_u16(r);
  if (r->err == 0 && id == 0) PROTOCOL(r, "packet identifier 0");
  return id;
}

/* A v5 property block for packet type cmd (0: will properties). */
static struct cm_str rd_props(struct cm__mqtt_rd *r, int cmd) {
  uint32_t n = 0;
  int used = cm_mqtt_varint_decode(r->p, left(r), &n);
  if (used <= 0) {
    MALFORMED(r, "bad property length");
    return cm_str_n("", 0);
  }
  r->p += used;
  if (left(r) < n) {
    MALFORMED(r, "property length past the end of the packet");
    return cm_str_n("", 0);
  }
  struct cm_str block = cm_str_n(n > 0 ? (const char *)r->p : "", n);
  r->p += n;
  const char *why = NULL;
  int e = cm_mqtt_props_check(block, cmd, &why);
  if (e < 0) cm__mqtt_rd_fail(r, e, why);
  return block;
}

static void parse_connect(struct cm__mqtt_rd *r, struct cm_mqtt_packet *m) {
  m->proto_name = rd_bin(r);
  uint8_t level = rd_u8(r);
  if (r->err) return;
  bool is_mqtt = m->proto_name.len == 4 && memcmp(m->proto_name.buf, "MQTT", 4) == 0;
  bool is_31 = m->proto_name.len == 6 && memcmp(m->proto_name.buf, "MQIsdp", 6) == 0;
  m->version = level;
  if (!((is_mqtt && (level == 4 || level == 5)) || (is_31 && level == 3))) {
    cm__mqtt_rd_fail(r, -CM_MQTT_RC_UNSUPPORTED_VERSION, "unsupported protocol name or level");
    return;
  }
  uint8_t f = m->connect_flags = rd_u8(r);
  m->keepalive = rd_u16(r);
  if (r->err) return;
  if (f & 0x01) {
    MALFORMED(r, "CONNECT reserved flag set");
    return;
  }
  m->clean = (f & 0x02) != 0;
  m->has_will = (f & 0x04) != 0;
  m->qos = (uint8_t)(f >> 3 & 3);
  m->retain = (f & 0x20) != 0;
  m->has_password = (f & 0x40) != 0;
  m->has_username = (f & 0x80) != 0;
  if (m->qos == 3) {
    MALFORMED(r, "will QoS 3");
    return;
  }
  if (!m->has_will && (m->qos != 0 || m->retain)) {
    MALFORMED(r, "will QoS or retain without a will");
    return;
  }
  if (level != 5 && m->has_password && !m->has_username) {
    MALFORMED(r, "password without a user name");
    return;
  }
  if (level == 5) m->props = rd_props(r, CM_MQTT_CMD_CONNECT);
  m->client_id = rd_str(r);
  if (m->has_will) {
    if (level == 5) m->will_props = rd_props(r, 0);
    m->will_topic = rd_str(r);
    if (r->err == 0 && !cm_mqtt_topic_valid(m->will_topic))
      cm__mqtt_rd_fail(r, -CM_MQTT_RC_TOPIC_NAME_INVALID, "invalid will topic");
    m->will_payload = rd_bin(r);
  }
  if (m->has_username) m->username = rd_str(r);
  if (m->has_password) m->password = rd_bin(r);
}

static void parse_publish(struct cm__mqtt_rd *r, struct cm_mqtt_packet *m) {
  m->qos = (uint8_t)(m->flags >> 1 & 3);
  m->dup = (m->flags & 0x08) != 0;
  m->retain = (m->flags & 0x01) != 0;
  if (m->qos == 3) {
    MALFORMED(r, "PUBLISH with QoS 3");
    return;
  }
  if (m->qos == 0 && m->dup) {
    MALFORMED(r, "PUBLISH with QoS 0 and DUP");
    return;
  }
  m->topic = rd_str(r);
  if (m->qos > 0) m->id = rd_id(r);
  if (m->version == 5) m->props = rd_props(r, CM_MQTT_CMD_PUBLISH);
  if (r->err) return;
  struct cm_mqtt_prop alias;
  bool has_alias = m->version == 5 && cm_mqtt_prop_find(m->props, CM_MQTT_PROP_TOPIC_ALIAS, &alias);
  if (m->topic.len == 0 ? !has_alias : !cm_mqtt_topic_valid(m->topic)) {
    cm__mqtt_rd_fail(r, -CM_MQTT_RC_TOPIC_NAME_INVALID,
                     m->topic.len == 0 ? "empty topic name" : "wildcard in a topic name");
    return;
  }
  m->payload = cm_str_n(left(r) > 0 ? (const char *)r->p : "", left(r));
  r->p = r->end;
}

/* PUBACK, PUBREC, PUBREL, PUBCOMP: id, then on 5.0 an optional reason code
 * and optional properties. */
static void parse_ack(struct cm__mqtt_rd *r, struct cm_mqtt_packet *m) {
  m->id = rd_id(r);
  if (m->version == 5) {
    if (left(r) > 0) m->reason = rd_u8(r);
    if (left(r) > 0) m->props = rd_props(r, m->cmd);
  }
}

/* The list of SUBSCRIBE, UNSUBSCRIBE; checks every entry. */
static void parse_filters(struct cm__mqtt_rd *r, struct cm_mqtt_packet *m) {
  m->payload = cm_str_n(left(r) > 0 ? (const char *)r->p : "", left(r));
  if (left(r) == 0) {
    PROTOCOL(r, "no topic filter");
    return;
  }
  while (r->err == 0 && left(r) > 0) {
    struct cm_str filter = rd_str(r);
    if (r->err == 0 && !cm_mqtt_filter_valid(filter))
      cm__mqtt_rd_fail(r, -CM_MQTT_RC_TOPIC_FILTER_INVALID, "invalid topic filter");
    if (m->cmd != CM_MQTT_CMD_SUBSCRIBE) continue;
    uint8_t o = rd_u8(r);
    if (r->err) return;
    if ((o & 3) == 3) {
      MALFORMED(r, "subscription QoS 3");
      return;
    }
    if (m->version != 5 && (o & 0xFC)) {
      MALFORMED(r, "reserved subscription option bits set");
      return;
    }
    if (m->version == 5 && ((o & 0xC0) || (o >> 4 & 3) == 3)) {
      MALFORMED(r, "reserved subscription option bits set");
      return;
    }
  }
}

static void parse_body(struct cm__mqtt_rd *r, struct cm_mqtt_packet *m) {
  bool v5 = m->version == 5;
  switch (m->cmd) {
    case CM_MQTT_CMD_CONNECT: {
      parse_connect(r, m);
      return;
    }
    case CM_MQTT_CMD_CONNACK: {
      uint8_t f = rd_u8(r);
      m->reason = rd_u8(r);
      if (r->err) return;
      if (f & 0xFE) {
        MALFORMED(r, "CONNACK reserved flags set");
        return;
      }
      m->session_present = f & 1;
      if (v5 && left(r) > 0) m->props = rd_props(r, m->cmd);
      return;
    }
    case CM_MQTT_CMD_PUBLISH: {
      parse_publish(r, m);
      return;
    }
    case CM_MQTT_CMD_PUBACK:
    case CM_MQTT_CMD_PUBREC:
    case CM_MQTT_CMD_PUBREL:
    case CM_MQTT_CMD_PUBCOMP: {
      parse_ack(r, m);
      return;
    }
    case CM_MQTT_CMD_SUBSCRIBE:
    case CM_MQTT_CMD_UNSUBSCRIBE:
      m->id = rd_id(r);
      if (v5) m->props = rd_props(r, m->cmd);
      if (r->err == 0) parse_filters(r, m);
      return;
    case CM_MQTT_CMD_SUBACK:
    case CM_MQTT_CMD_UNSUBACK:
      m->id = rd_id(r);
      if (m->cmd == CM_MQTT_CMD_UNSUBACK && !v5) return;
      if (v5) m->props = rd_props(r, m->cmd);
      if (r->err) return;
      if (left(r) == 0) {
        PROTOCOL(r, "no reason codes");
        return;
      }
      m->payload = cm_str_n((const char *)r->p, left(r));
      m->reason = r->p[0];
      r->p = r->end;
      return;
    case CM_MQTT_CMD_PINGREQ:
    case CM_MQTT_CMD_PINGRESP:
      return;
    case CM_MQTT_CMD_DISCONNECT:
    case CM_MQTT_CMD_AUTH:
      if (!v5) {
        if (m->cmd == CM_MQTT_CMD_AUTH) PROTOCOL(r, "AUTH before MQTT 5.0");
        return;
      }
      if (left(r) > 0) m->reason = rd_u8(r);
      if (left(r) > 0) m->props = rd_props(r, m->cmd);
      return;
    default: {
      MALFORMED(r, "reserved packet type 0");
      return;
    }
  }
}

/* The flags each packet type must carry in the low bits of its first byte
 * (PUBLISH's are its own). */
static bool flags_ok(uint8_t cmd, uint8_t flags) {
  if (cmd == CM_MQTT_CMD_PUBLISH) return true;
  bool two =
      cmd == CM_MQTT_CMD_PUBREL || cmd == CM_MQTT_CMD_SUBSCRIBE || cmd == CM_MQTT_CMD_UNSUBSCRIBE;
  return flags == (two ? 2 : 0);
}

int cm_mqtt_parse(const uint8_t *buf, size_t len, uint8_t version, size_t max_packet,
                  struct cm_mqtt_packet *m) {
  memset(m, 0, sizeof(*m));
  m->topic = m->payload = m->props = cm_str_n("", 0);
  if (max_packet == 0) max_packet = CM_MQTT_DEFAULT_MAX_PACKET;
  if (len < 2) return 0;
  m->cmd = buf[0] >> 4;
  m->flags = buf[0] & 0x0F;
  m->version = version == 5 ? 5 : 4;
  uint32_t rem = 0;
  int used = cm_mqtt_varint_decode(buf + 1, len - 1, &rem);
  if (used < 0) {
    m->error = "remaining length longer than 4 bytes";
    return used;
  }
  if (used == 0) return 0;
  size_t total = 1 + (size_t)used + rem;
  if (total > max_packet) {
    m->error = "packet larger than the maximum packet size";
    return -CM_MQTT_RC_PACKET_TOO_LARGE;
  }
  if (m->cmd == 0) {
    m->error = "reserved packet type 0";
    return -CM_MQTT_RC_MALFORMED;
  }
  if (!flags_ok(m->cmd, m->flags)) {
    m->error = "wrong fixed header flags for the packet type";
    return -CM_MQTT_RC_MALFORMED;
  }
  if (len < total) return 0;
  m->len = total;
  struct cm__mqtt_rd r = {buf + 1 + used, buf + total, 0, NULL};
  parse_body(&r, m);
  if (r.err == 0 && r.p != r.end) {
    r.err = -CM_MQTT_RC_MALFORMED;
    r.why = "bytes left over after the last field";
  }
  if (r.err != 0) {
    m->error = r.why;
    return r.err;
  }
  return (int)total;
}

bool cm_mqtt_list_next(const struct cm_mqtt_packet *m, size_t *pos, struct cm_str *filter,
                       uint8_t *code) {
  struct cm_str dummy_s;
  uint8_t dummy_c;
  if (filter == NULL) filter = &dummy_s;
  if (code == NULL) code = &dummy_c;
  *filter = cm_str_n("", 0);
  *code = 0;
  if (m->cmd < CM_MQTT_CMD_SUBSCRIBE || m->cmd > CM_MQTT_CMD_UNSUBACK) return false;
  if (*pos >= m->payload.len) return false;
  const uint8_t *p = (const uint8_t *)m->payload.buf + *pos;
  size_t n = m->payload.len - *pos;
  if (m->cmd == CM_MQTT_CMD_SUBACK || m->cmd == CM_MQTT_CMD_UNSUBACK) {
    *code = p[0];
    *pos += 1;
    return true;
  }
  bool sub = m->cmd == CM_MQTT_CMD_SUBSCRIBE;
  if (n < 2) return false;
  size_t flen = (size_t)(p[0] << 8 | p[1]);
  if (n < 2 + flen + (sub ? 1 : 0)) return false;
  *filter = cm_str_n((const char *)p + 2, flen);
  if (sub) *code = p[2 + flen];
  *pos += 2 + flen + (sub ? 1 : 0);
  return true;
}
