/*
 * MQTT strings and topics: the Variable Byte Integer, the UTF-8 string rule
 * (section 1.5.4), topic names and filters (4.7) and filter matching.
 * Pure: no I/O, no allocation.
 */
#include <string.h>

#include "cymongoose.h"

int cm_mqtt_varint_decode(const uint8_t *buf, size_t len, uint32_t *value) {
  uint32_t v = 0;
  for (size_t i = 0; i < 4; i++) {
    if (i >= len) return 0;
    v |= (uint32_t)(buf[i] & 0x7F) << (7 * i);
    if ((buf[i] & 0x80) == 0) {
      *value = v;
      return (int)i + 1;
    }
  }
  return -CM_MQTT_RC_MALFORMED; /* a fifth byte would be needed */
}

size_t cm_mqtt_varint_encode(uint8_t out[4], uint32_t v) {
  if (v > CM_MQTT_MAX_REMAINING) return 0;
  size_t n = 0;
  do {
    uint8_t b = (uint8_t)(v & 0x7F);
    v >>= 7;
    out[n++] = (uint8_t)(b | (v > 0 ? 0x80 : 0));
  } while (v > 0);
  return n;
}

bool cm_mqtt_str_valid(struct cm_str s) {
  if (s.len > 65535) return false;
  if (s.len == 0) return true;
  return memchr(s.buf, 0, s.len) == NULL && cm_utf8_valid((const uint8_t *)s.buf, s.len);
}

bool cm_mqtt_topic_valid(struct cm_str s) {
  return s.len > 0 && cm_mqtt_str_valid(s) && memchr(s.buf, '+', s.len) == NULL &&
         memchr(s.buf, '#', s.len) == NULL;
}

bool cm_mqtt_filter_valid(struct cm_str s) {
  if (s.len == 0 || !cm_mqtt_str_valid(s)) return false;
  for (size_t i = 0; i < s.len; i++) {
    char ch = s.buf[i];
    if (ch != '+' && ch != '#') continue;
    /* A wildcard fills its whole level ... */
    if (i > 0 && s.buf[i - 1] != '/') return false;
    if (i + 1 < s.len && s.buf[i + 1] != '/') return false;
    /* ... and '#' is the last level. */
    if (ch == '#' && i + 1 != s.len) return false;
  }
  return true;
}

bool cm_mqtt_match(struct cm_str topic, struct cm_str filter) {
  size_t t = 0, f = 0;
  /* 4.7.2: wildcards at the first level never match "$SYS/..." and co. */
  if (topic.len > 0 && topic.buf[0] == '$' && filter.len > 0 &&
      (filter.buf[0] == '+' || filter.buf[0] == '#'))
    return false;
  while (f < filter.len) {
    if (filter.buf[f] == '#') return true; /* the parent level and all below */
    if (filter.buf[f] == '+') {
      while (t < topic.len && topic.buf[t] != '/') t++; /* one whole level */
      f++;
    } else {
      size_t fe = f, te = t;
      while (fe < filter.len && filter.buf[fe] != '/') fe++;
      while (te < topic.len && topic.buf[te] != '/') te++;
      if (fe - f != te - t || memcmp(filter.buf + f, topic.buf + t, fe - f) != 0) return false;
      f = fe;
      t = te;
    }
    /* Both at a level separator, or both at the end. */
    if (f == filter.len) return t == topic.len;
    if (t == topic.len) {
      /* "a/#" matches "a": the separator is followed by '#' alone. */
      return f + 2 == filter.len && filter.buf[f + 1] == '#';
    }
    if (filter.buf[f] != '/' || topic.buf[t] != '/') return false;
    f++;
    t++;
  }
  return t == topic.len;
}
