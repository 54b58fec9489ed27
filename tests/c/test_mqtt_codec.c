/* The MQTT codec: byte sequences from the OASIS MQTT 3.1.1 and 5.0
 * specifications, every malformed shape with its reason code, every prefix
 * of every packet against a guard page, encode/parse round trips, UTF-8
 * and topic rules, filter matching, properties. */
#include <stdio.h>
#include <stdlib.h>

#include "guard.h"

#define B(...) ((const uint8_t[]){__VA_ARGS__}), sizeof((const uint8_t[]){__VA_ARGS__})

static int parse(const uint8_t *p, size_t n, uint8_t v, struct cm_mqtt_packet *m) {
  return cm_mqtt_parse((const uint8_t *)guarded(p, n), n, v, 0, m);
}

/* Every prefix gives "need more" (or, once the fixed header is known, the
 * same early error); the whole gives the answer. */
static int parse_all_splits(const uint8_t *p, size_t n, uint8_t v, struct cm_mqtt_packet *m) {
  struct cm_mqtt_packet tmp;
  int full = parse(p, n, v, &tmp);
  for (size_t k = 0; k < n; k++) {
    int r = parse(p, k, v, &tmp);
    if (r != 0) assert_int_equal(r, full);
  }
  /* Last, so that m's views point at the bytes in place. */
  return parse(p, n, v, m);
}

/* ------------------------------------------------------------- varint */
static void varint_spec_table(void **state) {
  (void)state;
  /* MQTT 3.1.1 table 2.4 / 5.0 table 1-1: the edges of each length. */
  struct {
    uint32_t v;
    uint8_t b[4];
    size_t n;
  } t[] = {{0, {0x00}, 1},
           {127, {0x7F}, 1},
           {128, {0x80, 0x01}, 2},
           {16383, {0xFF, 0x7F}, 2},
           {16384, {0x80, 0x80, 0x01}, 3},
           {2097151, {0xFF, 0xFF, 0x7F}, 3},
           {2097152, {0x80, 0x80, 0x80, 0x01}, 4},
           {268435455, {0xFF, 0xFF, 0xFF, 0x7F}, 4}};
  for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
    uint8_t out[4];
    assert_int_equal(cm_mqtt_varint_encode(out, t[i].v), t[i].n);
    assert_memory_equal(out, t[i].b, t[i].n);
    uint32_t v = 1;
    assert_int_equal(cm_mqtt_varint_decode((const uint8_t *)guarded(t[i].b, t[i].n), t[i].n, &v),
                     (int)t[i].n);
    assert_int_equal(v, t[i].v);
    for (size_t k = 0; k < t[i].n; k++)
      assert_int_equal(cm_mqtt_varint_decode((const uint8_t *)guarded(t[i].b, k), k, &v), 0);
  }
  uint8_t out[4];
  assert_int_equal(cm_mqtt_varint_encode(out, 268435456), 0);
  uint32_t v;
  assert_int_equal(cm_mqtt_varint_decode(B(0x80, 0x80, 0x80, 0x80, 0x01), &v), -CM_MQTT_RC_MALFORMED);
}

/* ------------------------------------------------------------- packets */
static void connect_311_spec_example(void **state) {
  (void)state;
  /* 3.1.1 figure 3.6 variable header (MQTT, level 4, flags 0xCE, keep
   * alive 10), then client id "cid", will topic "w/t", will message "bye",
   * user "u", password "pw". */
  static const uint8_t pkt[] = {0x10, 0x23, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0xCE, 0x00, 0x0A,
                                0x00, 0x03, 'c',  'i',  'd', 0x00, 0x03, 'w', '/', 't',
                                0x00, 0x03, 'b',  'y',  'e', 0x00, 0x01, 'u', 0x00, 0x02, 'p', 'w'};
  uint8_t buf[sizeof(pkt)];
  memcpy(buf, pkt, sizeof(pkt));
  buf[1] = (uint8_t)(sizeof(pkt) - 2);
  struct cm_mqtt_packet m;
  assert_int_equal(parse_all_splits(buf, sizeof(buf), 4, &m), (int)sizeof(buf));
  assert_int_equal(m.cmd, CM_MQTT_CMD_CONNECT);
  assert_int_equal(m.version, 4);
  assert_str(m.proto_name, "MQTT");
  assert_int_equal(m.connect_flags, 0xCE);
  assert_true(m.clean && m.has_will && m.has_username && m.has_password);
  assert_int_equal(m.qos, 1); /* will QoS */
  assert_false(m.retain);
  assert_int_equal(m.keepalive, 10);
  assert_str(m.client_id, "cid");
  assert_str(m.will_topic, "w/t");
  assert_str(m.will_payload, "bye");
  assert_str(m.username, "u");
  assert_str(m.password, "pw");
  /* Re-encoding gives the same bytes. */
  struct cm_buf out = {0};
  assert_int_equal(cm_mqtt_encode(&out, &m), 0);
  assert_int_equal(out.len, sizeof(buf));
  assert_memory_equal(cm_buf_data(&out), buf, sizeof(buf));
  cm_buf_free(&out);
}

static void connect_31_and_v5(void **state) {
  (void)state;
  struct cm_mqtt_packet m;
  /* 3.1: "MQIsdp", level 3. */
  assert_int_equal(parse_all_splits(B(0x10, 0x11, 0x00, 0x06, 'M', 'Q', 'I', 's', 'd', 'p', 0x03,
                                      0x02, 0x00, 0x3C, 0x00, 0x03, 'o', 'l', 'd'),
                                    4, &m),
                   19);
  assert_int_equal(m.version, 3);
  assert_str(m.client_id, "old");
  /* 5.0 figure 3-6: properties length 5, Session Expiry Interval 10. */
  assert_int_equal(parse_all_splits(B(0x10, 0x12, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0xC2,
                                      0x00, 0x0A, 0x05, 0x11, 0x00, 0x00, 0x00, 0x0A, 0x00, 0x00,
                                      0x00, 0x00),
                                    4, &m),
                   -CM_MQTT_RC_MALFORMED); /* the flags promise user and password: missing */
  assert_int_equal(parse_all_splits(B(0x10, 0x12, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02,
                                      0x00, 0x0A, 0x05, 0x11, 0x00, 0x00, 0x00, 0x0A, 0x00, 0x00),
                                    4, &m),
                   20);
  assert_int_equal(m.version, 5);
  struct cm_mqtt_prop p;
  assert_true(cm_mqtt_prop_find(m.props, CM_MQTT_PROP_SESSION_EXPIRY_INTERVAL, &p));
  assert_int_equal(p.iv, 10);
  assert_int_equal(m.client_id.len, 0);
  /* Unknown level / name: 0x84. */
  assert_int_equal(parse(B(0x10, 0x0C, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x06, 0x02, 0x00, 0x0A,
                           0x00, 0x00),
                         4, &m),
                   -CM_MQTT_RC_UNSUPPORTED_VERSION);
  assert_int_equal(parse(B(0x10, 0x0C, 0x00, 0x04, 'M', 'Q', 'T', 't', 0x04, 0x02, 0x00, 0x0A,
                           0x00, 0x00),
                         4, &m),
                   -CM_MQTT_RC_UNSUPPORTED_VERSION);
  /* Reserved flag, will QoS 3, will flags without will, password without
   * user on 3.1.1. */
  uint8_t base[] = {0x10, 0x0C, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x00, 0x00, 0x0A, 0x00, 0x00};
  uint8_t bad_flags[] = {0x01, 0x1C, 0x20, 0x40};
  for (size_t i = 0; i < sizeof(bad_flags); i++) {
    base[9] = bad_flags[i];
    assert_int_equal(parse(base, sizeof(base), 4, &m), -CM_MQTT_RC_MALFORMED);
    assert_non_null(m.error);
  }
  /* A wildcard will topic. */
  assert_int_equal(parse(B(0x10, 0x12, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x06, 0x00, 0x0A,
                           0x00, 0x00, 0x00, 0x01, '#', 0x00, 0x01, 'x'),
                         4, &m),
                   -CM_MQTT_RC_TOPIC_NAME_INVALID);
}

static void connack_both_versions(void **state) {
  (void)state;
  struct cm_mqtt_packet m;
  assert_int_equal(parse_all_splits(B(0x20, 0x02, 0x01, 0x00), 4, &m), 4);
  assert_true(m.session_present);
  assert_int_equal(m.reason, 0);
  assert_int_equal(parse_all_splits(B(0x20, 0x02, 0x00, 0x05), 4, &m), 4);
  assert_int_equal(m.reason, 5);
  assert_string_equal(cm_mqtt_reason_str(4, CM_MQTT_CMD_CONNACK, m.reason), "not authorized");
  /* v5 with Receive Maximum 20, Topic Alias Maximum 10, Assigned Client
   * Identifier "id". */
  assert_int_equal(parse_all_splits(B(0x20, 0x0E, 0x00, 0x00, 0x0B, 0x21, 0x00, 0x14, 0x22, 0x00,
                                      0x0A, 0x12, 0x00, 0x02, 'i', 'd'),
                                    5, &m),
                   16);
  size_t pos = 0;
  struct cm_mqtt_prop p;
  assert_true(cm_mqtt_prop_next(m.props, &pos, &p));
  assert_int_equal(p.id, CM_MQTT_PROP_RECEIVE_MAXIMUM);
  assert_int_equal(p.iv, 20);
  assert_true(cm_mqtt_prop_next(m.props, &pos, &p));
  assert_int_equal(p.iv, 10);
  assert_true(cm_mqtt_prop_next(m.props, &pos, &p));
  assert_str(p.val, "id");
  assert_false(cm_mqtt_prop_next(m.props, &pos, &p));
  assert_int_equal(parse(B(0x20, 0x02, 0x02, 0x00), 4, &m), -CM_MQTT_RC_MALFORMED);
  assert_int_equal(parse(B(0x20, 0x03, 0x00, 0x00, 0x00), 4, &m), -CM_MQTT_RC_MALFORMED);
  /* Receive Maximum 0 is a protocol error (3.2.2.3.3). */
  assert_int_equal(parse(B(0x20, 0x06, 0x00, 0x00, 0x03, 0x21, 0x00, 0x00), 5, &m),
                   -CM_MQTT_RC_PROTOCOL_ERROR);
}

static void publish_shapes(void **state) {
  (void)state;
  struct cm_mqtt_packet m;
  /* 3.1.1 3.3.2.3 example: topic "a/b", packet id 10, payload "hi". */
  assert_int_equal(parse_all_splits(B(0x3B, 0x09, 0x00, 0x03, 'a', '/', 'b', 0x00, 0x0A, 'h', 'i'),
                                    4, &m),
                   11);
  assert_int_equal(m.qos, 1);
  assert_true(m.dup && m.retain);
  assert_int_equal(m.id, 10);
  assert_str(m.topic, "a/b");
  assert_str(m.payload, "hi");
  /* QoS 0: no id; empty payload. */
  assert_int_equal(parse_all_splits(B(0x30, 0x03, 0x00, 0x01, 'x'), 4, &m), 5);
  assert_int_equal(m.id, 0);
  assert_int_equal(m.payload.len, 0);
  /* v5 with a topic alias and no topic name. */
  assert_int_equal(parse_all_splits(B(0x30, 0x07, 0x00, 0x00, 0x03, 0x23, 0x00, 0x01, 'p'), 5, &m), 9);
  assert_int_equal(m.topic.len, 0);
  assert_str(m.payload, "p");
  /* Errors. */
  assert_int_equal(parse(B(0x36, 0x05, 0x00, 0x01, 'x', 0x00, 0x01), 4, &m), -CM_MQTT_RC_MALFORMED); /* QoS 3 */
  assert_int_equal(parse(B(0x38, 0x03, 0x00, 0x01, 'x'), 4, &m), -CM_MQTT_RC_MALFORMED); /* DUP, QoS 0 */
  assert_int_equal(parse(B(0x32, 0x05, 0x00, 0x01, 'x', 0x00, 0x00), 4, &m), -CM_MQTT_RC_PROTOCOL_ERROR); /* id 0 */
  assert_int_equal(parse(B(0x30, 0x03, 0x00, 0x01, '+'), 4, &m), -CM_MQTT_RC_TOPIC_NAME_INVALID);
  assert_int_equal(parse(B(0x30, 0x05, 0x00, 0x03, 'a', '/', '#'), 4, &m), -CM_MQTT_RC_TOPIC_NAME_INVALID);
  assert_int_equal(parse(B(0x30, 0x02, 0x00, 0x00), 4, &m), -CM_MQTT_RC_TOPIC_NAME_INVALID); /* empty */
  assert_int_equal(parse(B(0x30, 0x03, 0x00, 0x00, 0x00), 5, &m), -CM_MQTT_RC_TOPIC_NAME_INVALID); /* empty, no alias */
  assert_int_equal(parse(B(0x30, 0x04, 0x00, 0x02, 0xC0, 0xAF), 4, &m), -CM_MQTT_RC_MALFORMED); /* overlong */
  assert_int_equal(parse(B(0x30, 0x05, 0x00, 0x03, 0xED, 0xA0, 0x80), 4, &m), -CM_MQTT_RC_MALFORMED); /* surrogate */
  assert_int_equal(parse(B(0x30, 0x03, 0x00, 0x01, 0x00), 4, &m), -CM_MQTT_RC_MALFORMED); /* NUL */
  assert_int_equal(parse(B(0x30, 0x03, 0x00, 0x05, 'x'), 4, &m), -CM_MQTT_RC_MALFORMED); /* length past end */
  assert_non_null(m.error);
  /* Property errors: unknown id, not allowed here, repeated, topic alias 0. */
  assert_int_equal(parse(B(0x30, 0x06, 0x00, 0x01, 'x', 0x02, 0x7F, 0x00), 5, &m), -CM_MQTT_RC_MALFORMED);
  assert_int_equal(parse(B(0x30, 0x07, 0x00, 0x01, 'x', 0x03, 0x21, 0x00, 0x01), 5, &m), -CM_MQTT_RC_PROTOCOL_ERROR);
  assert_int_equal(parse(B(0x30, 0x08, 0x00, 0x01, 'x', 0x04, 0x01, 0x00, 0x01, 0x01), 5, &m),
                   -CM_MQTT_RC_PROTOCOL_ERROR);
  assert_int_equal(parse(B(0x30, 0x07, 0x00, 0x01, 'x', 0x03, 0x23, 0x00, 0x00), 5, &m), -CM_MQTT_RC_PROTOCOL_ERROR);
  /* User properties may repeat; several subscription identifiers too. */
  assert_int_equal(parse(B(0x30, 0x12, 0x00, 0x01, 'x', 0x0E, 0x26, 0x00, 0x01, 'a', 0x00, 0x01, 'b',
                           0x26, 0x00, 0x01, 'a', 0x00, 0x01, 'c'),
                         5, &m),
                   20);
  assert_int_equal(parse(B(0x30, 0x08, 0x00, 0x01, 'x', 0x04, 0x0B, 0x01, 0x0B, 0x02), 5, &m), 10);
}

static void acks_and_small_packets(void **state) {
  (void)state;
  struct cm_mqtt_packet m;
  static const uint8_t types[] = {0x40, 0x50, 0x62, 0x70};
  for (size_t i = 0; i < 4; i++) {
    uint8_t a[] = {types[i], 0x02, 0x12, 0x34};
    assert_int_equal(parse_all_splits(a, 4, 4, &m), 4);
    assert_int_equal(m.cmd, types[i] >> 4);
    assert_int_equal(m.id, 0x1234);
    /* v5: reason code, then properties (a reason string). */
    uint8_t b[] = {types[i], 0x09, 0x12, 0x34, 0x80, 0x05, 0x1F, 0x00, 0x02, 'n', 'o'};
    assert_int_equal(parse_all_splits(b, sizeof(b), 5, &m), (int)sizeof(b));
    assert_int_equal(m.reason, 0x80);
    struct cm_mqtt_prop p;
    assert_true(cm_mqtt_prop_find(m.props, CM_MQTT_PROP_REASON_STRING, &p));
    assert_str(p.val, "no");
    /* 3.1.1 takes exactly 2 bytes. */
    uint8_t c[] = {types[i], 0x03, 0x12, 0x34, 0x00};
    assert_int_equal(parse(c, 5, 4, &m), -CM_MQTT_RC_MALFORMED);
  }
  assert_int_equal(parse(B(0x60, 0x02, 0x00, 0x01), 4, &m), -CM_MQTT_RC_MALFORMED); /* PUBREL flags */
  assert_int_equal(parse(B(0x40, 0x02, 0x00, 0x00), 4, &m), -CM_MQTT_RC_PROTOCOL_ERROR); /* id 0 */
  assert_int_equal(parse_all_splits(B(0xC0, 0x00), 4, &m), 2);
  assert_int_equal(m.cmd, CM_MQTT_CMD_PINGREQ);
  assert_int_equal(parse_all_splits(B(0xD0, 0x00), 4, &m), 2);
  assert_int_equal(parse_all_splits(B(0xE0, 0x00), 4, &m), 2);
  assert_int_equal(parse(B(0xC0, 0x01, 0x00), 4, &m), -CM_MQTT_RC_MALFORMED);
  assert_int_equal(parse(B(0xC1, 0x00), 4, &m), -CM_MQTT_RC_MALFORMED);
  /* v5 DISCONNECT: reason only, reason with properties. */
  assert_int_equal(parse_all_splits(B(0xE0, 0x01, 0x8E), 5, &m), 3);
  assert_int_equal(m.reason, CM_MQTT_RC_SESSION_TAKEN_OVER);
  assert_int_equal(parse_all_splits(B(0xE0, 0x07, 0x00, 0x05, 0x11, 0x00, 0x00, 0x00, 0x00), 5, &m), 9);
  assert_int_equal(parse(B(0xE0, 0x01, 0x8E), 4, &m), -CM_MQTT_RC_MALFORMED);
  /* AUTH: 5.0 only. */
  assert_int_equal(parse_all_splits(B(0xF0, 0x00), 5, &m), 2);
  assert_int_equal(parse(B(0xF0, 0x00), 4, &m), -CM_MQTT_RC_PROTOCOL_ERROR);
  /* AUTH 0x18 with Authentication Method "abc" and Data "z" (4.12). */
  assert_int_equal(parse_all_splits(B(0xF0, 0x0C, 0x18, 0x0A, 0x15, 0x00, 0x03, 'a', 'b', 'c', 0x16,
                                      0x00, 0x01, 'z'),
                                    5, &m),
                   14);
  assert_int_equal(m.cmd, CM_MQTT_CMD_AUTH);
  assert_int_equal(m.reason, CM_MQTT_RC_CONTINUE_AUTHENTICATION);
  struct cm_mqtt_prop ap;
  assert_true(cm_mqtt_prop_find(m.props, CM_MQTT_PROP_AUTHENTICATION_METHOD, &ap));
  assert_true(ap.val.len == 3 && memcmp(ap.val.buf, "abc", 3) == 0);
  assert_true(cm_mqtt_prop_find(m.props, CM_MQTT_PROP_AUTHENTICATION_DATA, &ap));
  assert_true(ap.val.len == 1 && ap.val.buf[0] == 'z');
  /* ... encoded back byte for byte; a method twice, or a property AUTH
   * cannot carry (Topic Alias), is a protocol error. */
  struct cm_buf out = {0};
  assert_int_equal(cm_mqtt_encode(&out, &m), 0);
  assert_int_equal(out.len, 14);
  assert_memory_equal(cm_buf_data(&out), ((const uint8_t[]){0xF0, 0x0C, 0x18, 0x0A, 0x15, 0x00, 0x03,
                                                           'a', 'b', 'c', 0x16, 0x00, 0x01, 'z'}),
                      14);
  cm_buf_free(&out);
  assert_int_equal(parse(B(0xF0, 0x0E, 0x19, 0x0C, 0x15, 0x00, 0x03, 'a', 'b', 'c', 0x15, 0x00, 0x03,
                           'a', 'b', 'c'),
                         5, &m),
                   -CM_MQTT_RC_PROTOCOL_ERROR);
  assert_int_equal(parse(B(0xF0, 0x05, 0x18, 0x03, 0x23, 0x00, 0x01), 5, &m),
                   -CM_MQTT_RC_PROTOCOL_ERROR);
  assert_int_equal(parse(B(0x00, 0x00), 4, &m), -CM_MQTT_RC_MALFORMED);
}

static void subscribe_family(void **state) {
  (void)state;
  struct cm_mqtt_packet m;
  /* 3.1.1 3.8.3 example: id 10, "a/b" QoS 1, "c/d" QoS 2. */
  assert_int_equal(parse_all_splits(B(0x82, 0x0E, 0x00, 0x0A, 0x00, 0x03, 'a', '/', 'b', 0x01, 0x00,
                                      0x03, 'c', '/', 'd', 0x02),
                                    4, &m),
                   16);
  assert_int_equal(m.id, 10);
  size_t pos = 0;
  struct cm_str f;
  uint8_t code;
  assert_true(cm_mqtt_list_next(&m, &pos, &f, &code));
  assert_str(f, "a/b");
  assert_int_equal(code, 1);
  assert_true(cm_mqtt_list_next(&m, &pos, &f, &code));
  assert_str(f, "c/d");
  assert_int_equal(code, 2);
  assert_false(cm_mqtt_list_next(&m, &pos, &f, &code));
  /* 3.9.3 example SUBACK: 0, 1, 2, failure. */
  assert_int_equal(parse_all_splits(B(0x90, 0x06, 0x00, 0x0A, 0x00, 0x01, 0x02, 0x80), 4, &m), 8);
  pos = 0;
  int n = 0;
  uint8_t last = 0;
  while (cm_mqtt_list_next(&m, &pos, NULL, &code)) {
    n++;
    last = code;
  }
  assert_int_equal(n, 4);
  assert_int_equal(last, 0x80);
  /* UNSUBSCRIBE 3.10.3 example, UNSUBACK. */
  assert_int_equal(parse_all_splits(B(0xA2, 0x0C, 0x00, 0x0A, 0x00, 0x03, 'a', '/', 'b', 0x00, 0x03,
                                      'c', '/', 'd'),
                                    4, &m),
                   14);
  pos = 0;
  assert_true(cm_mqtt_list_next(&m, &pos, &f, NULL));
  assert_str(f, "a/b");
  assert_int_equal(parse_all_splits(B(0xB0, 0x02, 0x00, 0x0A), 4, &m), 4);
  assert_int_equal(parse_all_splits(B(0xB0, 0x04, 0x00, 0x0A, 0x00, 0x11), 5, &m), 6);
  assert_int_equal(m.reason, CM_MQTT_RC_NO_SUBSCRIPTION_EXISTED);
  /* v5 subscription options: no local, retain as published, handling 2,
   * subscription identifier 5. */
  assert_int_equal(parse_all_splits(B(0x82, 0x09, 0x00, 0x01, 0x02, 0x0B, 0x05, 0x00, 0x01, 'x', 0x2E), 5, &m), 11);
  pos = 0;
  assert_true(cm_mqtt_list_next(&m, &pos, &f, &code));
  assert_int_equal(code & CM_MQTT_SUB_QOS_MASK, 2);
  assert_true(code & CM_MQTT_SUB_NO_LOCAL);
  assert_true(code & CM_MQTT_SUB_RETAIN_AS_PUBLISHED);
  assert_int_equal(code >> CM_MQTT_SUB_RETAIN_HANDLING_SHIFT, 2);
  /* Errors. */
  assert_int_equal(parse(B(0x82, 0x02, 0x00, 0x01), 4, &m), -CM_MQTT_RC_PROTOCOL_ERROR); /* empty */
  assert_int_equal(parse(B(0x80, 0x06, 0x00, 0x01, 0x00, 0x01, 'a', 0x00), 4, &m), -CM_MQTT_RC_MALFORMED); /* flags */
  assert_int_equal(parse(B(0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 'a', 0x03), 4, &m), -CM_MQTT_RC_MALFORMED); /* QoS 3 */
  assert_int_equal(parse(B(0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 'a', 0x04), 4, &m), -CM_MQTT_RC_MALFORMED); /* v5 bit on 3.1.1 */
  assert_int_equal(parse(B(0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 'a', 0x30), 5, &m), -CM_MQTT_RC_MALFORMED); /* handling 3 */
  assert_int_equal(parse(B(0x82, 0x08, 0x00, 0x01, 0x00, 0x02, 'a', '#', 0x00), 4, &m), 0); /* one byte short: need more */
  assert_int_equal(parse(B(0x82, 0x07, 0x00, 0x01, 0x00, 0x02, 'a', '#', 0x00), 4, &m), -CM_MQTT_RC_TOPIC_FILTER_INVALID);
  assert_int_equal(parse(B(0xA2, 0x05, 0x00, 0x01, 0x00, 0x01, '#'), 4, &m), 7);
  assert_int_equal(parse(B(0xA2, 0x06, 0x00, 0x01, 0x00, 0x02, '#', 'a'), 4, &m), -CM_MQTT_RC_TOPIC_FILTER_INVALID);
  assert_int_equal(parse(B(0x90, 0x02, 0x00, 0x01), 4, &m), -CM_MQTT_RC_PROTOCOL_ERROR); /* no codes */
}

static void size_limits(void **state) {
  (void)state;
  struct cm_mqtt_packet m;
  /* Refused from the fixed header alone, before the body arrives. */
  assert_int_equal(cm_mqtt_parse((const uint8_t *)guarded("\x30\x80\x08", 3), 3, 4, 1000, &m),
                   -CM_MQTT_RC_PACKET_TOO_LARGE);
  assert_non_null(m.error);
  assert_int_equal(cm_mqtt_parse((const uint8_t *)guarded("\x30\xFF\xFF\xFF\x7F", 5), 5, 4, 0, &m),
                   -CM_MQTT_RC_PACKET_TOO_LARGE); /* default limit 16 MiB */
  assert_int_equal(cm_mqtt_parse((const uint8_t *)guarded("\x30\x80\x80\x80\x80", 5), 5, 4, 0, &m),
                   -CM_MQTT_RC_MALFORMED);
  assert_int_equal(cm_mqtt_parse((const uint8_t *)guarded("\x30\x03\x00\x01x", 5), 5, 4, 5, &m), 5);
  assert_int_equal(cm_mqtt_parse((const uint8_t *)guarded("\x30\x03\x00\x01x", 5), 5, 4, 4, &m),
                   -CM_MQTT_RC_PACKET_TOO_LARGE);
}

/* Every packet type encoded and parsed back, both versions. */
static void encode_parse_round_trip(void **state) {
  (void)state;
  struct cm_buf props = {0}, list = {0};
  struct cm_mqtt_prop up = {.id = CM_MQTT_PROP_USER_PROPERTY, .key = cm_str_c("k"), .val = cm_str_c("v")};
  assert_int_equal(cm_mqtt_props_encode(&props, &up, 1), 0);
  /* The block without its 1-byte length. */
  struct cm_str block = cm_str_n((const char *)cm_buf_data(&props) + 1, props.len - 1);
  for (uint8_t v = 4; v <= 5; v++) {
    for (uint8_t cmd = 1; cmd <= 15; cmd++) {
      if (cmd == CM_MQTT_CMD_AUTH && v == 4) continue;
      struct cm_mqtt_packet m = {0}, back;
      m.cmd = cmd;
      m.version = v;
      m.id = 7;
      m.qos = 1;
      m.topic = cm_str_c("t/1");
      m.payload = cm_str_c("payload");
      m.client_id = cm_str_c("me");
      m.keepalive = 30;
      m.clean = true;
      list.len = list.off = 0;
      if (cmd == CM_MQTT_CMD_SUBSCRIBE || cmd == CM_MQTT_CMD_UNSUBSCRIBE) {
        cm_mqtt_list_append(&list, cmd, cm_str_c("a/+/#"), 1);
        m.payload = cm_str_n((const char *)cm_buf_data(&list), list.len);
      } else if (cmd == CM_MQTT_CMD_SUBACK || cmd == CM_MQTT_CMD_UNSUBACK) {
        cm_mqtt_list_append(&list, cmd, cm_str_c(""), 1);
        m.payload = cm_str_n((const char *)cm_buf_data(&list), list.len);
      }
      if (v == 5 && cmd != CM_MQTT_CMD_PINGREQ && cmd != CM_MQTT_CMD_PINGRESP) m.props = block;
      struct cm_buf out = {0};
      assert_int_equal(cm_mqtt_encode(&out, &m), 0);
      int r = parse_all_splits(cm_buf_data(&out), out.len, v, &back);
      if (r != (int)out.len) fail_msg("cmd %u v%u: %d (%s)", cmd, v, r, back.error ? back.error : "");
      assert_int_equal(back.cmd, cmd);
      if (cmd >= CM_MQTT_CMD_PUBLISH && cmd <= CM_MQTT_CMD_UNSUBACK) assert_int_equal(back.id, 7);
      if (cmd == CM_MQTT_CMD_PUBLISH) {
        assert_str(back.topic, "t/1");
        assert_str(back.payload, "payload");
      }
      if (cmd == CM_MQTT_CMD_CONNECT) {
        assert_int_equal(back.version, v);
        assert_str(back.client_id, "me");
        assert_int_equal(back.keepalive, 30);
      }
      if (v == 5 && m.props.len > 0 && !(cmd == CM_MQTT_CMD_UNSUBACK && v == 4)) {
        struct cm_mqtt_prop p;
        assert_true(cm_mqtt_prop_find(back.props, CM_MQTT_PROP_USER_PROPERTY, &p));
        assert_str(p.key, "k");
        assert_str(p.val, "v");
      }
      cm_buf_free(&out);
    }
  }
  cm_buf_free(&props);
  cm_buf_free(&list);
  /* Strings over 65535 bytes cannot be encoded. */
  char *big = calloc(1, 70000);
  memset(big, 'a', 69999);
  struct cm_mqtt_packet m = {.cmd = CM_MQTT_CMD_PUBLISH, .version = 4, .topic = cm_str_c(big)};
  struct cm_buf out = {0};
  assert_int_equal(cm_mqtt_encode(&out, &m), -CM_MQTT_RC_MALFORMED);
  assert_int_equal(out.len, 0);
  free(big);
}

/* Every property id: its type, encoded and read back. */
static void properties_every_id(void **state) {
  (void)state;
  int ids[] = {0x01, 0x02, 0x03, 0x08, 0x09, 0x0B, 0x11, 0x12, 0x13, 0x15, 0x16, 0x17, 0x18, 0x19,
               0x1A, 0x1C, 0x1F, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2A};
  int types[] = {0, 5, 1, 1, 3, 4, 5, 1, 6, 1, 3, 0, 5, 0, 1, 1, 1, 6, 6, 6, 0, 0, 2, 5, 0, 0, 0};
  struct cm_mqtt_prop props[27];
  for (size_t i = 0; i < 27; i++) {
    assert_int_equal(cm_mqtt_prop_type(ids[i]), types[i]);
    props[i] = (struct cm_mqtt_prop){.id = (uint8_t)ids[i], .iv = 1, .key = cm_str_c("key"),
                                     .val = cm_str_c("value")};
    if (types[i] == CM_MQTT_PROP_TYPE_VARIABLE_INT) props[i].iv = 268435455;
  }
  assert_int_equal(cm_mqtt_prop_type(0x00), -1);
  assert_int_equal(cm_mqtt_prop_type(0x04), -1);
  assert_int_equal(cm_mqtt_prop_type(0x2B), -1);
  assert_int_equal(cm_mqtt_prop_type(300), -1);
  struct cm_buf b = {0};
  assert_int_equal(cm_mqtt_props_encode(&b, props, 27), 0);
  uint32_t len;
  int used = cm_mqtt_varint_decode(cm_buf_data(&b), b.len, &len);
  assert_true(used > 0);
  assert_int_equal(len, cm_mqtt_props_size(props, 27));
  struct cm_str block = cm_str_n((const char *)cm_buf_data(&b) + used, len);
  size_t pos = 0;
  struct cm_mqtt_prop p;
  for (size_t i = 0; i < 27; i++) {
    assert_true(cm_mqtt_prop_next(block, &pos, &p));
    assert_int_equal(p.id, ids[i]);
    switch (types[i]) {
      case CM_MQTT_PROP_TYPE_STRING:
      case CM_MQTT_PROP_TYPE_BINARY_DATA: assert_str(p.val, "value"); break;
      case CM_MQTT_PROP_TYPE_STRING_PAIR:
        assert_str(p.key, "key");
        assert_str(p.val, "value");
        break;
      default: assert_int_equal(p.iv, props[i].iv);
    }
  }
  assert_false(cm_mqtt_prop_next(block, &pos, &p));
  /* Not every id is allowed in every packet: CONNACK takes none of the
   * PUBLISH-only ones. */
  const char *why = NULL;
  assert_int_equal(cm_mqtt_props_check(block, CM_MQTT_CMD_CONNACK, &why), -CM_MQTT_RC_PROTOCOL_ERROR);
  assert_non_null(why);
  assert_int_equal(cm_mqtt_props_encode(&b, &(struct cm_mqtt_prop){.id = 0x7F}, 1), CM_EINVAL);
  cm_buf_free(&b);
  /* The iterator stops safely on truncated input. */
  pos = 0;
  assert_false(cm_mqtt_prop_next(cm_str_n(guarded("\x26\x00\x05" "ab", 5), 5), &pos, &p));
}

static void strings_and_topics(void **state) {
  (void)state;
  assert_true(cm_mqtt_str_valid(cm_str_c("")));
  assert_true(cm_mqtt_str_valid(cm_str_c("A\xF0\xAA\x9B\x94"))); /* 5.0 1.5.4 example U+2A6D4 */
  assert_true(cm_mqtt_str_valid(cm_str_c("\xEF\xBB\xBF")));      /* U+FEFF */
  assert_false(cm_mqtt_str_valid(cm_str_n("a\0b", 3)));
  assert_false(cm_mqtt_str_valid(cm_str_c("\xC0\xAF")));         /* overlong */
  assert_false(cm_mqtt_str_valid(cm_str_c("\xED\xA0\x80")));     /* surrogate */
  assert_false(cm_mqtt_str_valid(cm_str_c("\xF4\x90\x80\x80"))); /* > U+10FFFF */
  assert_false(cm_mqtt_str_valid(cm_str_c("\xE2\x82")));         /* truncated */
  const char *names_ok[] = {"a", "/", "a/b", "$SYS/x", "a//b", " "};
  const char *names_bad[] = {"", "+", "a/+", "#", "a/#", "a+b"};
  for (size_t i = 0; i < 6; i++) {
    assert_true(cm_mqtt_topic_valid(cm_str_c(names_ok[i])));
    assert_false(cm_mqtt_topic_valid(cm_str_c(names_bad[i])));
  }
  const char *filters_ok[] = {"#", "+", "+/+", "/+", "sport/#", "sport/tennis/#", "+/tennis/#",
                              "sport/+/player1", "a//b", "$SYS/#"};
  const char *filters_bad[] = {"", "sport/tennis#", "sport/tennis/#/ranking", "sport+", "a/b+",
                               "#/a", "+a", "a/##"};
  for (size_t i = 0; i < sizeof(filters_ok) / sizeof(filters_ok[0]); i++)
    assert_true(cm_mqtt_filter_valid(cm_str_c(filters_ok[i])));
  for (size_t i = 0; i < sizeof(filters_bad) / sizeof(filters_bad[0]); i++)
    assert_false(cm_mqtt_filter_valid(cm_str_c(filters_bad[i])));
}

static void filter_matching(void **state) {
  (void)state;
  struct {
    const char *filter, *topic;
    bool match;
  } t[] = {
      /* 3.1.1 4.7.1.2 and 4.7.1.3 */
      {"sport/tennis/player1/#", "sport/tennis/player1", true},
      {"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
      {"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
      {"sport/#", "sport", true},
      {"#", "anything/at/all", true},
      {"sport/tennis/+", "sport/tennis/player1", true},
      {"sport/tennis/+", "sport/tennis/player2", true},
      {"sport/tennis/+", "sport/tennis/player1/ranking", false},
      {"sport/+", "sport", false},
      {"sport/+", "sport/", true},
      {"+/+", "/finance", true},
      {"/+", "/finance", true},
      {"+", "/finance", false},
      {"+", "finance", true},
      /* 4.7.2: $ topics */
      {"#", "$SYS/uptime", false},
      {"+/monitor/Clients", "$SYS/monitor/Clients", false},
      {"$SYS/#", "$SYS/monitor/Clients", true},
      {"$SYS/monitor/+", "$SYS/monitor/Clients", true},
      /* exact, case, empty levels */
      {"a/b", "a/b", true},
      {"a/b", "a/B", false},
      {"a/b", "a/b/c", false},
      {"a/b/c", "a/b", false},
      {"a//b", "a//b", true},
      {"a/+/b", "a//b", true},
      {"a/#", "a", true},
      {"a/#", "ab", false},
      {"ab/#", "a", false},
  };
  for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
    bool got = cm_mqtt_match(cm_str_c(t[i].topic), cm_str_c(t[i].filter));
    if (got != t[i].match) fail_msg("\"%s\" vs \"%s\": got %d", t[i].filter, t[i].topic, got);
  }
}

static void reason_strings(void **state) {
  (void)state;
  assert_string_equal(cm_mqtt_reason_str(5, 0, 0x87), "not authorized");
  assert_string_equal(cm_mqtt_reason_str(5, 0, 0x95), "packet too large");
  assert_string_equal(cm_mqtt_reason_str(4, CM_MQTT_CMD_CONNACK, 1), "unacceptable protocol version");
  assert_string_equal(cm_mqtt_reason_str(5, 0, 0x42), "unknown reason");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(varint_spec_table),     cmocka_unit_test(connect_311_spec_example),
      cmocka_unit_test(connect_31_and_v5),     cmocka_unit_test(connack_both_versions),
      cmocka_unit_test(publish_shapes),        cmocka_unit_test(acks_and_small_packets),
      cmocka_unit_test(subscribe_family),      cmocka_unit_test(size_limits),
      cmocka_unit_test(encode_parse_round_trip), cmocka_unit_test(properties_every_id),
      cmocka_unit_test(strings_and_topics),    cmocka_unit_test(filter_matching),
      cmocka_unit_test(reason_strings),
  };
  return cmocka_run_group_tests_name("mqtt_codec", tests, guard_setup, guard_teardown);
}
