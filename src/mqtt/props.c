/*
 * MQTT 5.0 properties (section 2.2.2): the type of each identifier, where
 * each may appear, validation of a received block, iteration and encoding.
 * Pure except for the encoders, which append to a struct cm_buf.
 */
#include <string.h>

#include "mqtt/internal.h"

#define B(cmd) CM__MQTT_BIT(CM_MQTT_CMD_##cmd)
#define WILL 1u
#define ACKS (B(PUBACK) | B(PUBREC) | B(PUBREL) | B(PUBCOMP))

/* Per identifier: its type (+1, so 0 means "undefined"), the packets it may
 * appear in, and whether it may repeat (in which packets). */
struct prop_rule {
  uint8_t type1;
  uint16_t where;
  uint16_t repeat;
};

static const struct prop_rule *rule_of(int id) {
#define T(t) (CM_MQTT_PROP_TYPE_##t + 1)
  static const struct prop_rule rules[0x2B] = {
      [0x01] = {T(BYTE), B(PUBLISH) | WILL, 0},
      [0x02] = {T(INT), B(PUBLISH) | WILL, 0},
      [0x03] = {T(STRING), B(PUBLISH) | WILL, 0},
      [0x08] = {T(STRING), B(PUBLISH) | WILL, 0},
      [0x09] = {T(BINARY_DATA), B(PUBLISH) | WILL, 0},
      [0x0B] = {T(VARIABLE_INT), B(PUBLISH) | B(SUBSCRIBE), B(PUBLISH)},
      [0x11] = {T(INT), B(CONNECT) | B(CONNACK) | B(DISCONNECT), 0},
      [0x12] = {T(STRING), B(CONNACK), 0},
      [0x13] = {T(SHORT), B(CONNACK), 0},
      [0x15] = {T(STRING), B(CONNECT) | B(CONNACK) | B(AUTH), 0},
      [0x16] = {T(BINARY_DATA), B(CONNECT) | B(CONNACK) | B(AUTH), 0},
      [0x17] = {T(BYTE), B(CONNECT), 0},
      [0x18] = {T(INT), WILL, 0},
      [0x19] = {T(BYTE), B(CONNECT), 0},
      [0x1A] = {T(STRING), B(CONNACK), 0},
      [0x1C] = {T(STRING), B(CONNACK) | B(DISCONNECT), 0},
      [0x1F] = {T(STRING), B(CONNACK) | ACKS | B(SUBACK) | B(UNSUBACK) | B(DISCONNECT) | B(AUTH), 0},
      [0x21] = {T(SHORT), B(CONNECT) | B(CONNACK), 0},
      [0x22] = {T(SHORT), B(CONNECT) | B(CONNACK), 0},
      [0x23] = {T(SHORT), B(PUBLISH), 0},
      [0x24] = {T(BYTE), B(CONNACK), 0},
      [0x25] = {T(BYTE), B(CONNACK), 0},
      [0x26] = {T(STRING_PAIR), 0xFFFF, 0xFFFF},
      [0x27] = {T(INT), B(CONNECT) | B(CONNACK), 0},
      [0x28] = {T(BYTE), B(CONNACK), 0},
      [0x29] = {T(BYTE), B(CONNACK), 0},
      [0x2A] = {T(BYTE), B(CONNACK), 0},
  };
#undef T
  if (id < 0 || id >= (int)(sizeof(rules) / sizeof(rules[0])) || rules[id].type1 == 0) return NULL;
  return &rules[id];
}

int cm_mqtt_prop_type(int id) {
  const struct prop_rule *r = rule_of(id);
  return r == NULL ? -1 : r->type1 - 1;
}

/* Reads a 2-byte-length string or binary value. */
static bool read_lstr(const uint8_t **p, const uint8_t *end, struct cm_str *s) {
  if (end - *p < 2) return false;
  size_t n = (size_t)((*p)[0] << 8 | (*p)[1]);
  if ((size_t)(end - *p - 2) < n) return false;
  *s = cm_str_n((const char *)*p + 2, n);
  *p += 2 + n;
  return true;
}

/* Reads one property at *p; false on bytes that are not one. */
static bool read_prop(const uint8_t **p, const uint8_t *end, struct cm_mqtt_prop *out) {
  memset(out, 0, sizeof(*out));
  if (*p >= end) return false;
  const struct prop_rule *r = rule_of((*p)[0]);
  if (r == NULL) return false;
  out->id = (*p)[0];
  const uint8_t *q = *p + 1;
  size_t left = (size_t)(end - q);
  switch (r->type1 - 1) {
    case CM_MQTT_PROP_TYPE_BYTE:
      if (left < 1) return false;
      out->iv = q[0];
      q += 1;
      break;
    case CM_MQTT_PROP_TYPE_SHORT:
      if (left < 2) return false;
      out->iv = (uint32_t)(q[0] << 8 | q[1]);
      q += 2;
      break;
    case CM_MQTT_PROP_TYPE_INT:
      if (left < 4) return false;
      out->iv = (uint32_t)q[0] << 24 | (uint32_t)q[1] << 16 | (uint32_t)q[2] << 8 | q[3];
      q += 4;
      break;
    case CM_MQTT_PROP_TYPE_VARIABLE_INT: {
      int n = cm_mqtt_varint_decode(q, left, &out->iv);
      if (n <= 0) return false;
      q += n;
      break;
    }
    case CM_MQTT_PROP_TYPE_STRING:
    case CM_MQTT_PROP_TYPE_BINARY_DATA:
      if (!read_lstr(&q, end, &out->val)) return false;
      break;
    case CM_MQTT_PROP_TYPE_STRING_PAIR:
      if (!read_lstr(&q, end, &out->key) || !read_lstr(&q, end, &out->val)) return false;
      break;
    default:
      return false;
  }
  *p = q;
  return true;
}

bool cm_mqtt_prop_next(struct cm_str block, size_t *pos, struct cm_mqtt_prop *p) {
  if (*pos >= block.len) return false;
  const uint8_t *q = (const uint8_t *)block.buf + *pos, *end = (const uint8_t *)block.buf + block.len;
  if (!read_prop(&q, end, p)) {
    *pos = block.len;
    return false;
  }
  *pos = (size_t)(q - (const uint8_t *)block.buf);
  return true;
}

bool cm_mqtt_prop_find(struct cm_str block, uint8_t id, struct cm_mqtt_prop *p) {
  size_t pos = 0;
  while (cm_mqtt_prop_next(block, &pos, p))
    if (p->id == id) return true;
  return false;
}

/* Range rules of single values (section 3.x.2.x "It is a Protocol Error to ..."). */
static const char *value_error(const struct cm_mqtt_prop *p) {
  switch (p->id) {
    case CM_MQTT_PROP_PAYLOAD_FORMAT_INDICATOR:
    case CM_MQTT_PROP_REQUEST_PROBLEM_INFORMATION:
    case CM_MQTT_PROP_REQUEST_RESPONSE_INFORMATION:
    case CM_MQTT_PROP_MAXIMUM_QOS:
    case CM_MQTT_PROP_RETAIN_AVAILABLE:
    case CM_MQTT_PROP_WILDCARD_SUBSCRIPTION_AVAILABLE:
    case CM_MQTT_PROP_SUBSCRIPTION_IDENTIFIER_AVAILABLE:
    case CM_MQTT_PROP_SHARED_SUBSCRIPTION_AVAILABLE:
      return p->iv > 1 ? "property byte value other than 0 or 1" : NULL;
    case CM_MQTT_PROP_SUBSCRIPTION_IDENTIFIER:
      return p->iv == 0 ? "subscription identifier 0" : NULL;
    case CM_MQTT_PROP_RECEIVE_MAXIMUM:
      return p->iv == 0 ? "receive maximum 0" : NULL;
    case CM_MQTT_PROP_MAXIMUM_PACKET_SIZE:
      return p->iv == 0 ? "maximum packet size 0" : NULL;
    case CM_MQTT_PROP_TOPIC_ALIAS:
      return p->iv == 0 ? "topic alias 0" : NULL;
    case CM_MQTT_PROP_RESPONSE_TOPIC:
      return cm_mqtt_topic_valid(p->val) ? NULL : "invalid response topic";
    default:
      return NULL;
  }
}

int cm_mqtt_props_check(struct cm_str block, int cmd, const char **why) {
  if (block.len == 0) return 0;
  const uint8_t *q = (const uint8_t *)block.buf, *end = q + block.len;
  uint16_t bit = (uint16_t)(cmd >= 1 && cmd <= 15 ? CM__MQTT_BIT(cmd) : WILL);
  uint64_t seen = 0;
  const char *dummy;
  if (why == NULL) why = &dummy;
  while (q < end) {
    struct cm_mqtt_prop p;
    if (!read_prop(&q, end, &p)) {
      *why = rule_of(*q) == NULL ? "unknown property identifier" : "truncated property";
      return -CM_MQTT_RC_MALFORMED;
    }
    const struct prop_rule *r = rule_of(p.id);
    int type = r->type1 - 1;
    if ((type == CM_MQTT_PROP_TYPE_STRING && !cm_mqtt_str_valid(p.val)) ||
        (type == CM_MQTT_PROP_TYPE_STRING_PAIR &&
         (!cm_mqtt_str_valid(p.key) || !cm_mqtt_str_valid(p.val)))) {
      *why = "property string is not valid UTF-8 or holds U+0000";
      return -CM_MQTT_RC_MALFORMED;
    }
    if ((r->where & bit) == 0) {
      *why = "property not allowed in this packet";
      return -CM_MQTT_RC_PROTOCOL_ERROR;
    }
    if ((seen >> p.id & 1) && (r->repeat & bit) == 0) {
      *why = "property repeated";
      return -CM_MQTT_RC_PROTOCOL_ERROR;
    }
    seen |= (uint64_t)1 << p.id;
    const char *bad = value_error(&p);
    if (bad != NULL) {
      *why = bad;
      return -CM_MQTT_RC_PROTOCOL_ERROR;
    }
  }
  return 0;
}

static size_t prop_size(const struct cm_mqtt_prop *p, int type) {
  uint8_t tmp[4];
  switch (type) {
    case CM_MQTT_PROP_TYPE_BYTE: return 2;
    case CM_MQTT_PROP_TYPE_SHORT: return 3;
    case CM_MQTT_PROP_TYPE_INT: return 5;
    case CM_MQTT_PROP_TYPE_VARIABLE_INT: return 1 + cm_mqtt_varint_encode(tmp, p->iv);
    case CM_MQTT_PROP_TYPE_STRING:
    case CM_MQTT_PROP_TYPE_BINARY_DATA: return 3 + p->val.len;
    default: return 5 + p->key.len + p->val.len;
  }
}

size_t cm_mqtt_props_size(const struct cm_mqtt_prop *props, size_t n) {
  size_t total = 0;
  for (size_t i = 0; i < n; i++) {
    int type = cm_mqtt_prop_type(props[i].id);
    if (type >= 0) total += prop_size(&props[i], type);
  }
  return total;
}

static void put_lstr(uint8_t **w, struct cm_str s) {
  (*w)[0] = (uint8_t)(s.len >> 8);
  (*w)[1] = (uint8_t)s.len;
  if (s.len > 0) memcpy(*w + 2, s.buf, s.len);
  *w += 2 + s.len;
}

int cm__mqtt_props_raw(struct cm_buf *out, const struct cm_mqtt_prop *props, size_t n) {
  for (size_t i = 0; i < n; i++) {
    int type = cm_mqtt_prop_type(props[i].id);
    if (type < 0 || props[i].key.len > 65535 || props[i].val.len > 65535) return CM_EINVAL;
    if (type == CM_MQTT_PROP_TYPE_VARIABLE_INT && props[i].iv > CM_MQTT_MAX_REMAINING) return CM_EINVAL;
  }
  size_t size = cm_mqtt_props_size(props, n);
  if (size == 0) return 0;
  if (cm_buf_reserve(out, size) != 0) return CM_ENOMEM;
  uint8_t *w = cm_buf_data(out) + out->len;
  for (size_t i = 0; i < n; i++) {
    const struct cm_mqtt_prop *p = &props[i];
    *w++ = p->id;
    switch (cm_mqtt_prop_type(p->id)) {
      case CM_MQTT_PROP_TYPE_BYTE: *w++ = (uint8_t)p->iv; break;
      case CM_MQTT_PROP_TYPE_SHORT:
        *w++ = (uint8_t)(p->iv >> 8);
        *w++ = (uint8_t)p->iv;
        break;
      case CM_MQTT_PROP_TYPE_INT:
        for (int s = 24; s >= 0; s -= 8) *w++ = (uint8_t)(p->iv >> s);
        break;
      case CM_MQTT_PROP_TYPE_VARIABLE_INT: w += cm_mqtt_varint_encode(w, p->iv); break;
      case CM_MQTT_PROP_TYPE_STRING:
      case CM_MQTT_PROP_TYPE_BINARY_DATA: put_lstr(&w, p->val); break;
      default:
        put_lstr(&w, p->key);
        put_lstr(&w, p->val);
        break;
    }
  }
  out->len += size;
  return 0;
}

int cm_mqtt_props_encode(struct cm_buf *out, const struct cm_mqtt_prop *props, size_t n) {
  uint8_t len[4];
  size_t size = cm_mqtt_props_size(props, n);
  size_t nl = cm_mqtt_varint_encode(len, (uint32_t)(size > CM_MQTT_MAX_REMAINING ? CM_MQTT_MAX_REMAINING + 1 : size));
  if (nl == 0) return CM_ETOOBIG;
  size_t before = out->len;
  if (cm_buf_reserve(out, nl + size) != 0 || cm_buf_append(out, len, nl) != 0) return CM_ENOMEM;
  int rc = cm__mqtt_props_raw(out, props, n);
  if (rc != 0) {
    out->len = before;
    return rc;
  }
  return 0;
}
