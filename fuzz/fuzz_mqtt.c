/*
 * libFuzzer harness for the MQTT codec: a stream of packets parsed as 3.1.1
 * and as 5.0 (with a small packet limit on some inputs), every view checked
 * to lie inside the input, the property blocks and lists walked, each
 * accepted packet encoded again and parsed back to the same fields, and
 * topic/filter pairs checked against the matcher's invariants.
 *
 * Input: byte 0 selects the version (bit 0) and a 64-byte packet limit
 * (bit 1); the rest is the stream.
 */
#include <stdlib.h>
#include <string.h>

#include "cymongoose.h"

#define CHECK(cond) \
  do {              \
    if (!(cond)) abort(); \
  } while (0)

static const uint8_t *lo, *hi;

static void inside(struct cm_str s) {
  if (s.len == 0) return;
  CHECK((const uint8_t *)s.buf >= lo && (const uint8_t *)s.buf + s.len <= hi);
}

static void walk_props(struct cm_str block) {
  struct cm_mqtt_prop p;
  size_t pos = 0, n = 0;
  while (cm_mqtt_prop_next(block, &pos, &p)) {
    CHECK(cm_mqtt_prop_type(p.id) >= 0);
    inside(p.key);
    inside(p.val);
    n++;
  }
  CHECK(pos == block.len); /* a validated block is read to its end */
  (void)n;
}

static void same(struct cm_str a, struct cm_str b) {
  CHECK(a.len == b.len && (a.len == 0 || memcmp(a.buf, b.buf, a.len) == 0));
}

static void round_trip(const struct cm_mqtt_packet *m, uint8_t version) {
  struct cm_buf out = {0};
  if (cm_mqtt_encode(&out, m) != 0) {
    cm_buf_free(&out);
    return; /* e.g. a 3.1.1 ack with a reason code: not encodable the same way */
  }
  struct cm_mqtt_packet b;
  int r = cm_mqtt_parse(cm_buf_data(&out), out.len, version, 0, &b);
  CHECK(r == (int)out.len);
  CHECK(b.cmd == m->cmd && b.id == m->id && b.qos == m->qos && b.retain == m->retain);
  same(b.topic, m->topic);
  same(b.payload, m->payload);
  same(b.props, m->props);
  same(b.client_id, m->client_id);
  same(b.username, m->username);
  same(b.password, m->password);
  same(b.will_topic, m->will_topic);
  same(b.will_payload, m->will_payload);
  cm_buf_free(&out);
}

static void check_packet(const struct cm_mqtt_packet *m, uint8_t version) {
  inside(m->topic);
  inside(m->payload);
  inside(m->props);
  inside(m->client_id);
  inside(m->will_props);
  inside(m->will_topic);
  inside(m->will_payload);
  inside(m->username);
  inside(m->password);
  walk_props(m->props);
  walk_props(m->will_props);
  if (m->topic.len > 0) CHECK(cm_mqtt_topic_valid(m->topic));
  size_t pos = 0;
  struct cm_str f;
  uint8_t code;
  while (cm_mqtt_list_next(m, &pos, &f, &code)) {
    inside(f);
    if (f.len > 0) CHECK(cm_mqtt_filter_valid(f));
  }
  /* A CONNECT is encoded with the level it declared. */
  round_trip(m, m->cmd == CM_MQTT_CMD_CONNECT ? m->version : version);
}

/* Splits data at the first NUL into a topic and a filter and checks the
 * matcher where both are valid: a filter equal to the topic matches, "#"
 * matches anything not starting with '$'. */
static void check_match(const uint8_t *data, size_t size) {
  const uint8_t *nul = memchr(data, 0, size);
  if (nul == NULL) return;
  struct cm_str topic = cm_str_n((const char *)data, (size_t)(nul - data));
  struct cm_str filter = cm_str_n((const char *)nul + 1, size - topic.len - 1);
  bool tv = cm_mqtt_topic_valid(topic), fv = cm_mqtt_filter_valid(filter);
  if (tv) {
    CHECK(cm_mqtt_match(topic, topic));
    CHECK(cm_mqtt_match(topic, cm_str_c("#")) == (topic.buf[0] != '$'));
  }
  if (tv && fv) (void)cm_mqtt_match(topic, filter);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  uint8_t opts = data[0];
  uint8_t version = (opts & 1) ? 5 : 4;
  size_t max = (opts & 2) ? 64 : 0;
  /* A private copy, so reads past the input are caught by ASan. */
  size_t n = size - 1;
  uint8_t *buf = malloc(n > 0 ? n : 1);
  if (n > 0) memcpy(buf, data + 1, n);
  lo = buf;
  hi = buf + n;
  size_t off = 0;
  while (off < n) {
    struct cm_mqtt_packet m;
    int r = cm_mqtt_parse(buf + off, n - off, version, max, &m);
    if (r <= 0) {
      if (r < 0) {
        CHECK(m.error != NULL);
        CHECK(r == -CM_MQTT_RC_MALFORMED || r == -CM_MQTT_RC_PROTOCOL_ERROR ||
              r == -CM_MQTT_RC_PACKET_TOO_LARGE || r == -CM_MQTT_RC_TOPIC_NAME_INVALID ||
              r == -CM_MQTT_RC_TOPIC_FILTER_INVALID || r == -CM_MQTT_RC_UNSUPPORTED_VERSION);
        CHECK(strcmp(cm_mqtt_reason_str(5, 0, -r), "unknown reason") != 0);
      }
      break;
    }
    CHECK((size_t)r <= n - off && (size_t)r == m.len);
    check_packet(&m, version);
    off += (size_t)r;
  }
  uint32_t v;
  int used = cm_mqtt_varint_decode(buf, n, &v);
  CHECK(used >= -CM_MQTT_RC_MALFORMED && used <= 4);
  check_match(buf, n);
  free(buf);
  return 0;
}
