/* Unit tests of the WebSocket frame codec, message rules and close payloads. */
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "testutil.h"
#include "ws/internal.h"

static const struct cm_ws_limits unlimited = {UINT64_MAX, UINT64_MAX, 0};
static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};

/* Parses buf[0..len) as a server (expect_masked) or client would. */
static int parse(const void *buf, size_t len, struct cm_ws_frame *f, const struct cm_ws_limits *lim,
                 bool expect_masked) {
  return cm_ws_parse_frame((const uint8_t *)buf, len, f, lim, expect_masked);
}

/* ------------------------------------------------------------ examples */
static void rfc_examples(void **state) {
  (void)state;
  struct cm_ws_frame f;
  /* RFC 6455 5.7: a single-frame unmasked text message. */
  const uint8_t unmasked[] = {0x81, 0x05, 'H', 'e', 'l', 'l', 'o'};
  assert_int_equal(parse(unmasked, sizeof(unmasked), &f, NULL, false), 2);
  assert_true(f.fin);
  assert_int_equal(f.opcode, CM_WS_OP_TEXT);
  assert_int_equal(f.first_byte, 0x81);
  assert_false(f.masked);
  assert_int_equal(f.payload_len, 5);
  assert_true(cm_ws_frame_complete(&f, sizeof(unmasked)));
  assert_false(cm_ws_frame_complete(&f, sizeof(unmasked) - 1));

  /* The same, masked. */
  uint8_t masked[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
  assert_int_equal(parse(masked, sizeof(masked), &f, NULL, true), 6);
  assert_true(f.masked);
  assert_memory_equal(f.mask, key, 4);
  cm_ws_mask(masked + f.header_len, (size_t)f.payload_len, f.mask, 0);
  assert_memory_equal(masked + 6, "Hello", 5);

  /* A fragmented unmasked text message. */
  const uint8_t frag1[] = {0x01, 0x03, 'H', 'e', 'l'};
  const uint8_t frag2[] = {0x80, 0x02, 'l', 'o'};
  assert_int_equal(parse(frag1, sizeof(frag1), &f, NULL, false), 2);
  assert_false(f.fin);
  assert_int_equal(f.opcode, CM_WS_OP_TEXT);
  assert_int_equal(parse(frag2, sizeof(frag2), &f, NULL, false), 2);
  assert_true(f.fin);
  assert_int_equal(f.opcode, CM_WS_OP_CONTINUE);

  /* Ping, and 256 / 65536 byte binary headers. */
  const uint8_t ping[] = {0x89, 0x05, 'H', 'e', 'l', 'l', 'o'};
  assert_int_equal(parse(ping, sizeof(ping), &f, NULL, false), 2);
  assert_int_equal(f.opcode, CM_WS_OP_PING);
  const uint8_t b256[] = {0x82, 0x7E, 0x01, 0x00};
  assert_int_equal(parse(b256, sizeof(b256), &f, NULL, false), 4);
  assert_int_equal(f.payload_len, 256);
  const uint8_t b64k[] = {0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0};
  assert_int_equal(parse(b64k, sizeof(b64k), &f, NULL, false), 10);
  assert_int_equal(f.payload_len, 65536);
}

/* ----------------------------------------------------- length boundaries */
static void length_boundaries_round_trip(void **state) {
  (void)state;
  static const uint64_t lens[] = {0,      1,      125,         126,         127,
                                  65535,  65536,  65537,       0xFFFFFFFFull, 0x100000000ull,
                                  0x100000001ull, 0x7FFFFFFFFFFFFFFFull};
  for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
    for (int m = 0; m < 2; m++) {
      uint8_t hdr[CM_WS_MAX_HEADER];
      size_t n = cm_ws_encode_header(hdr, CM_WS_FIN | CM_WS_OP_BINARY, lens[i], m ? key : NULL);
      size_t want = (lens[i] < 126 ? 2 : lens[i] <= 0xFFFF ? 4 : 10) + (m ? 4 : 0);
      assert_int_equal(n, want);
      /* Byte at a time: "need more" until the header is whole. */
      struct cm_ws_frame f;
      for (size_t k = 0; k < n; k++) assert_int_equal(parse(hdr, k, &f, &unlimited, m), 0);
      assert_int_equal(parse(hdr, n, &f, &unlimited, m), (int)n);
      assert_int_equal(f.header_len, n);
      assert_int_equal(f.payload_len, lens[i]);
      assert_int_equal(f.opcode, CM_WS_OP_BINARY);
      assert_int_equal(f.first_byte, 0x82);
      assert_true(f.fin);
      assert_int_equal(f.rsv, 0);
      assert_int_equal(f.masked, m);
      if (m) assert_memory_equal(f.mask, key, 4);
      assert_int_equal(cm_ws_frame_complete(&f, n), lens[i] == 0);
    }
  }
}

static void byte_at_a_time_whole_frames(void **state) {
  (void)state;
  /* A stream of several masked frames, fed one more byte at a time: each
   * frame is reported exactly when its header completes, and complete
   * exactly when its last payload byte arrives. */
  static const size_t sizes[] = {0, 125, 126, 300, 65535, 65536, 70000};
  size_t total = 0;
  for (size_t i = 0; i < 7; i++) total += CM_WS_MAX_HEADER + sizes[i];
  uint8_t *stream = malloc(total);
  assert_non_null(stream);
  size_t len = 0;
  for (size_t i = 0; i < 7; i++) {
    len += cm_ws_encode_header(stream + len, CM_WS_OP_TEXT | CM_WS_FIN, sizes[i], key);
    memset(stream + len, 'a' + (int)i, sizes[i]);
    cm_ws_mask(stream + len, sizes[i], key, 0);
    len += sizes[i];
  }
  size_t start = 0;
  for (size_t i = 0; i < 7; i++) {
    struct cm_ws_frame f;
    size_t have = 0;
    int r;
    while ((r = parse(stream + start, have, &f, NULL, true)) == 0) have++;
    assert_int_equal(r, f.header_len);
    assert_int_equal(f.payload_len, sizes[i]);
    /* Checking completeness is cheap; only check the edges for big frames. */
    assert_false(sizes[i] > 0 && cm_ws_frame_complete(&f, f.header_len + sizes[i] - 1));
    assert_true(cm_ws_frame_complete(&f, f.header_len + sizes[i]));
    uint8_t *payload = stream + start + f.header_len;
    cm_ws_mask(payload, sizes[i], f.mask, 0);
    for (size_t k = 0; k < sizes[i]; k++) assert_int_equal(payload[k], 'a' + (int)i);
    start += f.header_len + sizes[i];
  }
  assert_int_equal(start, len);
  free(stream);
}

static void non_minimal_lengths_accepted(void **state) {
  (void)state;
  struct cm_ws_frame f;
  const uint8_t l16[] = {0x82, 0x7E, 0x00, 0x05};
  assert_int_equal(parse(l16, sizeof(l16), &f, NULL, false), 4);
  assert_int_equal(f.payload_len, 5);
  const uint8_t l64[] = {0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0, 0};
  assert_int_equal(parse(l64, sizeof(l64), &f, NULL, false), 10);
  assert_int_equal(f.payload_len, 0);
}

/* ------------------------------------------------------------- errors */
static void expect_error(const uint8_t *b, size_t n, const struct cm_ws_limits *lim, bool masked,
                         int err, int close_code) {
  struct cm_ws_frame f;
  assert_int_equal(parse(b, n, &f, lim, masked), err);
  assert_int_equal(cm_ws_error_close_code(err), close_code);
  assert_non_null(cm_ws_strerror(err));
}

static void reserved_bits(void **state) {
  (void)state;
  struct cm_ws_limits deflate = {0, 0, CM_WS_RSV1};
  struct cm_ws_frame f;
  for (uint8_t rsv = 0x10; rsv <= 0x70; rsv += 0x10) {
    uint8_t b[] = {(uint8_t)(0x81 | rsv), 0x00};
    expect_error(b, sizeof(b), NULL, false, CM_WS_E_RSV, 1002);
    if (rsv != CM_WS_RSV1) expect_error(b, sizeof(b), &deflate, false, CM_WS_E_RSV, 1002);
  }
  /* RSV1 when negotiated: on the first frame of a data message only. */
  const uint8_t text[] = {0xC1, 0x00}, bin_first[] = {0x42, 0x00};
  assert_int_equal(parse(text, 2, &f, &deflate, false), 2);
  assert_int_equal(f.rsv, CM_WS_RSV1);
  assert_int_equal(f.first_byte, 0xC1);
  assert_int_equal(parse(bin_first, 2, &f, &deflate, false), 2);
  assert_false(f.fin);
  const uint8_t cont[] = {0xC0, 0x00}, ping[] = {0xC9, 0x00}, close[] = {0xC8, 0x00};
  expect_error(cont, 2, &deflate, false, CM_WS_E_RSV_PLACEMENT, 1002);
  expect_error(ping, 2, &deflate, false, CM_WS_E_RSV_PLACEMENT, 1002);
  expect_error(close, 2, &deflate, false, CM_WS_E_RSV_PLACEMENT, 1002);
}

static void reserved_opcodes(void **state) {
  (void)state;
  for (uint8_t op = 0; op < 16; op++) {
    uint8_t b[] = {(uint8_t)(0x80 | op), 0x00};
    struct cm_ws_frame f;
    bool known = op <= 2 || (op >= 8 && op <= 10);
    if (known) {
      assert_int_equal(parse(b, 2, &f, NULL, false), 2);
      assert_int_equal(f.opcode, op);
    } else {
      expect_error(b, 2, NULL, false, CM_WS_E_OPCODE, 1002);
      /* Rejected from the first two bytes, before the rest arrives. */
      b[1] = 0x7F;
      expect_error(b, 2, NULL, false, CM_WS_E_OPCODE, 1002);
    }
  }
}

static void control_frames(void **state) {
  (void)state;
  struct cm_ws_frame f;
  for (uint8_t op = 8; op <= 10; op++) {
    uint8_t ok[] = {(uint8_t)(0x80 | op), 125};
    assert_int_equal(parse(ok, 2, &f, NULL, false), 2);
    assert_int_equal(f.payload_len, 125);
    uint8_t too_long[] = {(uint8_t)(0x80 | op), 126, 0x00, 0x7E};
    expect_error(too_long, 2, NULL, false, CM_WS_E_CONTROL_TOO_LONG, 1002);
    uint8_t too_long64[] = {(uint8_t)(0x80 | op), 127};
    expect_error(too_long64, 2, NULL, false, CM_WS_E_CONTROL_TOO_LONG, 1002);
    uint8_t fragmented[] = {op, 0x00};
    expect_error(fragmented, 2, NULL, false, CM_WS_E_CONTROL_FRAGMENTED, 1002);
  }
}

static void length_top_bit(void **state) {
  (void)state;
  uint8_t b[] = {0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0};
  /* Known bad from the first length byte on. */
  for (size_t n = 3; n <= sizeof(b); n++) expect_error(b, n, &unlimited, false, CM_WS_E_LENGTH, 1002);
  struct cm_ws_frame f;
  assert_int_equal(parse(b, 2, &f, &unlimited, false), 0);
}

static void masking_direction(void **state) {
  (void)state;
  const uint8_t unmasked[] = {0x81, 0x00};
  const uint8_t masked[] = {0x81, 0x80, 1, 2, 3, 4};
  expect_error(unmasked, 2, NULL, true, CM_WS_E_UNMASKED, 1002);
  expect_error(masked, 2, NULL, false, CM_WS_E_MASKED, 1002);
  expect_error(masked, sizeof(masked), NULL, false, CM_WS_E_MASKED, 1002);
}

static void frame_size_limit(void **state) {
  (void)state;
  struct cm_ws_limits lim = {1000, 0, 0};
  struct cm_ws_frame f;
  uint8_t hdr[CM_WS_MAX_HEADER];
  size_t n = cm_ws_encode_header(hdr, 0x82, 1000, NULL);
  assert_int_equal(parse(hdr, n, &f, &lim, false), (int)n);
  n = cm_ws_encode_header(hdr, 0x82, 1001, NULL);
  expect_error(hdr, n, &lim, false, CM_WS_E_FRAME_TOO_BIG, 1009);
  /* Defaults apply with NULL and with 0. */
  n = cm_ws_encode_header(hdr, 0x82, CM_WS_DEFAULT_MAX_FRAME, NULL);
  assert_int_equal(parse(hdr, n, &f, NULL, false), (int)n);
  n = cm_ws_encode_header(hdr, 0x82, (uint64_t)CM_WS_DEFAULT_MAX_FRAME + 1, NULL);
  expect_error(hdr, n, NULL, false, CM_WS_E_FRAME_TOO_BIG, 1009);
  struct cm_ws_limits zero = {0, 0, 0};
  expect_error(hdr, n, &zero, false, CM_WS_E_FRAME_TOO_BIG, 1009);
  /* A 2^32+ frame under the default limit. */
  n = cm_ws_encode_header(hdr, 0x82, 0x100000000ull, NULL);
  expect_error(hdr, n, NULL, false, CM_WS_E_FRAME_TOO_BIG, 1009);
}

static void error_mapping(void **state) {
  (void)state;
  assert_int_equal(cm_ws_error_close_code(CM_WS_E_UTF8), 1007);
  assert_int_equal(cm_ws_error_close_code(CM_WS_E_MESSAGE_TOO_BIG), 1009);
  assert_int_equal(cm_ws_error_close_code(CM_WS_E_CLOSE_CODE), 1002);
  assert_int_equal(cm_ws_error_close_code(-999), 1011);
  assert_string_equal(cm_ws_strerror(-999), "unknown WebSocket error");
  assert_int_equal(cm_ws_error_close_code(CM_WS_E_INFLATE), 1007);
  assert_int_equal(cm_ws_error_close_code(CM_WS_E_INTERNAL), 1011);
  for (int e = -1; e >= -16; e--) {
    assert_int_not_equal(cm_ws_error_close_code(e), 1011);
    assert_string_not_equal(cm_ws_strerror(e), "unknown WebSocket error");
  }
}

/* ------------------------------------------------------------- masking */
static void mask_matches_naive_at_any_alignment_and_split(void **state) {
  (void)state;
  uint8_t data[300], work[310], expect[300];
  const uint8_t k[4] = {0xde, 0xad, 0xbe, 0xef};
  for (size_t i = 0; i < sizeof(data); i++) data[i] = (uint8_t)(i * 7 + 3);
  for (size_t i = 0; i < sizeof(data); i++) expect[i] = data[i] ^ k[i & 3];
  for (size_t align = 0; align < 8; align++) {
    for (size_t n = 0; n <= sizeof(data); n += (n < 80 ? 1 : 37)) {
      memcpy(work + align, data, n);
      cm_ws_mask(work + align, n, k, 0);
      assert_memory_equal(work + align, expect, n);
      cm_ws_mask(work + align, n, k, 0);
      assert_memory_equal(work + align, data, n);
      /* In two pieces, the second at its payload offset. */
      for (size_t cut = 0; cut <= n; cut += 5) {
        memcpy(work + align, data, n);
        cm_ws_mask(work + align, cut, k, 0);
        cm_ws_mask(work + align + cut, n - cut, k, cut);
        assert_memory_equal(work + align, expect, n);
      }
    }
  }
  /* Offsets past 2^32 keep the phase. */
  memcpy(work, data, 16);
  cm_ws_mask(work, 16, k, 0x100000002ull);
  for (size_t i = 0; i < 16; i++) assert_int_equal(work[i], data[i] ^ k[(i + 2) & 3]);
}

static void encode_header_flags(void **state) {
  (void)state;
  uint8_t out[CM_WS_MAX_HEADER];
  assert_int_equal(cm_ws_encode_header(out, CM_WS_OP_PING | CM_WS_FIN, 0, NULL), 2);
  assert_int_equal(out[0], 0x89);
  assert_int_equal(out[1], 0x00);
  assert_int_equal(cm_ws_encode_header(out, CM_WS_OP_TEXT | CM_WS_FIN | CM_WS_RSV1, 5, key), 6);
  assert_int_equal(out[0], 0xC1);
  assert_int_equal(out[1], 0x85);
  assert_memory_equal(out + 2, key, 4);
  assert_int_equal(cm_ws_encode_header(out, CM_WS_OP_BINARY, 0x0102030405060708ull, NULL), 10);
  const uint8_t want[] = {0x02, 0x7F, 1, 2, 3, 4, 5, 6, 7, 8};
  assert_memory_equal(out, want, sizeof(want));
  assert_int_equal(cm_ws_encode_header(out, CM_WS_OP_BINARY, 300, NULL), 4);
  assert_int_equal(out[1], 126);
  assert_int_equal(out[2], 0x01);
  assert_int_equal(out[3], 0x2C);
}

/* ------------------------------------------------------------ messages */
static struct cm_ws_frame hdr_frame(uint8_t first_byte, uint64_t len) {
  struct cm_ws_frame f;
  memset(&f, 0, sizeof(f));
  f.first_byte = first_byte;
  f.opcode = first_byte & 0x0F;
  f.rsv = first_byte & 0x70;
  f.fin = (first_byte & 0x80) != 0;
  f.payload_len = len;
  return f;
}

static void message_sequencing(void **state) {
  (void)state;
  struct cm_ws_msg_state s = {0};
  struct cm_ws_frame f;
  f = hdr_frame(0x00, 1); /* continuation with nothing open */
  assert_int_equal(cm_ws_msg_frame(&s, &f, NULL), CM_WS_E_CONTINUATION);
  f = hdr_frame(0x80, 1);
  assert_int_equal(cm_ws_msg_frame(&s, &f, NULL), CM_WS_E_CONTINUATION);

  f = hdr_frame(0x01, 3); /* text, not final */
  assert_int_equal(cm_ws_msg_frame(&s, &f, NULL), 0);
  assert_int_equal(s.opcode, CM_WS_OP_TEXT);
  f = hdr_frame(0x89, 2); /* ping between fragments */
  assert_int_equal(cm_ws_msg_frame(&s, &f, NULL), 0);
  assert_int_equal(s.opcode, CM_WS_OP_TEXT);
  f = hdr_frame(0x02, 1); /* a new data message while one is open */
  assert_int_equal(cm_ws_msg_frame(&s, &f, NULL), CM_WS_E_UNFINISHED);
  assert_int_equal(cm_ws_error_close_code(CM_WS_E_UNFINISHED), 1002);
  f = hdr_frame(0x00, 4);
  assert_int_equal(cm_ws_msg_frame(&s, &f, NULL), 0);
  f = hdr_frame(0x80, 5);
  assert_int_equal(cm_ws_msg_frame(&s, &f, NULL), 0);
  assert_int_equal(s.len, 12);
  cm_ws_msg_end(&s);
  assert_int_equal(s.opcode, 0);
  f = hdr_frame(0x82, 5); /* single-frame binary */
  assert_int_equal(cm_ws_msg_frame(&s, &f, NULL), 0);
  assert_int_equal(s.opcode, CM_WS_OP_BINARY);
}

static void message_size_limit(void **state) {
  (void)state;
  struct cm_ws_limits lim = {0, 10, CM_WS_RSV1};
  struct cm_ws_msg_state s = {0};
  struct cm_ws_frame f = hdr_frame(0x01, 6);
  assert_int_equal(cm_ws_msg_frame(&s, &f, &lim), 0);
  f = hdr_frame(0x00, 4);
  assert_int_equal(cm_ws_msg_frame(&s, &f, &lim), 0);
  f = hdr_frame(0x80, 1);
  assert_int_equal(cm_ws_msg_frame(&s, &f, &lim), CM_WS_E_MESSAGE_TOO_BIG);
  assert_int_equal(cm_ws_error_close_code(CM_WS_E_MESSAGE_TOO_BIG), 1009);
  /* A compressed message is counted by its inflated size instead. */
  memset(&s, 0, sizeof(s));
  f = hdr_frame(0xC2, 1000);
  assert_int_equal(cm_ws_msg_frame(&s, &f, &lim), 0);
  assert_int_equal(s.rsv, CM_WS_RSV1);
  assert_int_equal(cm__ws_msg_grow(&s, 10, &lim), 0);
  assert_int_equal(cm__ws_msg_grow(&s, 1, &lim), CM_WS_E_MESSAGE_TOO_BIG);
  assert_int_equal(cm__ws_msg_grow(&s, UINT64_MAX, &lim), CM_WS_E_MESSAGE_TOO_BIG);
}

static void message_utf8_across_fragments(void **state) {
  (void)state;
  struct cm_ws_msg_state s = {0};
  struct cm_ws_frame f = hdr_frame(0x01, 2);
  const uint8_t euro[] = {0xE2, 0x82, 0xAC};
  assert_int_equal(cm_ws_msg_frame(&s, &f, NULL), 0);
  assert_int_equal(cm_ws_msg_text(&s, euro, 2, false), 0);
  f = hdr_frame(0x80, 1);
  assert_int_equal(cm_ws_msg_frame(&s, &f, NULL), 0);
  assert_int_equal(cm_ws_msg_text(&s, euro + 2, 1, true), 0);
  cm_ws_msg_end(&s);
  /* Ending inside a character. */
  f = hdr_frame(0x81, 2);
  assert_int_equal(cm_ws_msg_frame(&s, &f, NULL), 0);
  assert_int_equal(cm_ws_msg_text(&s, euro, 2, true), CM_WS_E_UTF8);
  assert_int_equal(cm_ws_error_close_code(CM_WS_E_UTF8), 1007);
  cm_ws_msg_end(&s);
  /* Invalid in the first fragment: reported before the message ends. */
  f = hdr_frame(0x01, 2);
  assert_int_equal(cm_ws_msg_frame(&s, &f, NULL), 0);
  assert_int_equal(cm_ws_msg_text(&s, (const uint8_t *)"\xed\xa0", 2, false), CM_WS_E_UTF8);
  /* A new message starts with a fresh validator. */
  cm_ws_msg_end(&s);
  f = hdr_frame(0x81, 1);
  assert_int_equal(cm_ws_msg_frame(&s, &f, NULL), 0);
  assert_int_equal(cm_ws_msg_text(&s, (const uint8_t *)"a", 1, true), 0);
}

/* --------------------------------------------------------------- close */
static void close_codes(void **state) {
  (void)state;
  static const unsigned valid[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011,
                                   1012, 1013, 1014, 3000, 3999, 4000, 4999};
  static const unsigned invalid[] = {0,    1,    999,  1004, 1005, 1006, 1015, 1016,
                                     1100, 2000, 2999, 5000, 65535};
  for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
    assert_true(cm_ws_close_code_valid(valid[i]));
    uint8_t p[2] = {(uint8_t)(valid[i] >> 8), (uint8_t)valid[i]};
    uint16_t code = 0;
    assert_int_equal(cm_ws_parse_close(p, 2, &code, NULL, NULL), 0);
    assert_int_equal(code, valid[i]);
  }
  for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
    assert_false(cm_ws_close_code_valid(invalid[i]));
    uint8_t p[2] = {(uint8_t)(invalid[i] >> 8), (uint8_t)invalid[i]};
    assert_int_equal(cm_ws_parse_close(p, 2, NULL, NULL, NULL), CM_WS_E_CLOSE_CODE);
  }
}

static void close_payload_parse(void **state) {
  (void)state;
  uint16_t code = 0;
  const char *reason = NULL;
  size_t rlen = 99;
  assert_int_equal(cm_ws_parse_close(NULL, 0, &code, &reason, &rlen), 0);
  assert_int_equal(code, CM_WS_CLOSE_NO_STATUS);
  assert_int_equal(rlen, 0);
  assert_int_equal(cm_ws_parse_close((const uint8_t *)"\x03", 1, &code, &reason, &rlen),
                   CM_WS_E_CLOSE_LENGTH);
  const uint8_t ok[] = {0x03, 0xE8, 'b', 'y', 'e'};
  assert_int_equal(cm_ws_parse_close(ok, sizeof(ok), &code, &reason, &rlen), 0);
  assert_int_equal(code, 1000);
  assert_int_equal(rlen, 3);
  assert_memory_equal(reason, "bye", 3);
  assert_ptr_equal(reason, (const char *)ok + 2);
  const uint8_t bad[] = {0x03, 0xE8, 0xCE, 0xBA, 0xE1, 0xBD, 0xB9, 0xCF, 0x83, 0xCE, 0xBC,
                         0xCE, 0xB5, 0xED, 0xA0, 0x80, 0x65, 0x64, 0x69, 0x74, 0x65, 0x64};
  assert_int_equal(cm_ws_parse_close(bad, sizeof(bad), &code, &reason, &rlen), CM_WS_E_UTF8);
}

static void close_payload_build(void **state) {
  (void)state;
  uint8_t out[CM_WS_MAX_CONTROL_PAYLOAD];
  assert_int_equal(cm_ws_close_payload(out, 0, "ignored", 7), 0);
  assert_int_equal(cm_ws_close_payload(out, 1000, NULL, 0), 2);
  assert_int_equal(out[0], 0x03);
  assert_int_equal(out[1], 0xE8);
  assert_int_equal(cm_ws_close_payload(out, 4001, "bye", 3), 5);
  assert_memory_equal(out + 2, "bye", 3);
  uint16_t code;
  assert_int_equal(cm_ws_parse_close(out, 5, &code, NULL, NULL), 0);
  assert_int_equal(code, 4001);

  /* 122 ASCII bytes then a 2-byte character: cut before the character,
   * which would end at byte 124 of the 123 available. */
  char reason[200];
  memset(reason, 'x', 122);
  memcpy(reason + 122, "\xc3\xa9", 2);
  memset(reason + 124, 'y', 50);
  assert_int_equal(cm_ws_close_payload(out, 1001, reason, 174), 2 + 122);
  /* 121 ASCII bytes then the character fits exactly. */
  assert_int_equal(cm_ws_close_payload(out, 1001, reason + 1, 173), 2 + 123);
  assert_memory_equal(out + 2 + 121, "\xc3\xa9", 2);
  /* A reason that is not UTF-8 is cut before the bad byte. */
  assert_int_equal(cm_ws_close_payload(out, 1000, "ok\xff!", 4), 4);
  for (size_t n = 0; n < sizeof(reason); n++) {
    size_t len = cm_ws_close_payload(out, 1000, reason, n);
    assert_true(len <= CM_WS_MAX_CONTROL_PAYLOAD);
    assert_int_equal(cm_ws_parse_close(out, len, NULL, NULL, NULL), 0);
  }
}

/* ---------------------------------------------------------- guard page */
/* Input placed so that its last byte is the last readable byte before a
 * PROT_NONE page: any read past the given length crashes the test. */
static uint8_t *guard_area(size_t *room) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  uint8_t *p = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  assert_true(p != MAP_FAILED);
  assert_int_equal(mprotect(p + page, page, PROT_NONE), 0);
  *room = page;
  return p;
}

static void no_read_past_the_end(void **state) {
  (void)state;
  size_t room;
  uint8_t *area = guard_area(&room);
  uint8_t frames[][14] = {
      {0x81, 0x85, 1, 2, 3, 4},
      {0x82, 0xFE, 0x01, 0x00, 1, 2, 3, 4},
      {0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4},
      {0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4},
  };
  for (size_t i = 0; i < sizeof(frames) / sizeof(frames[0]); i++) {
    for (size_t n = 0; n <= 14; n++) {
      uint8_t *p = area + room - n;
      memcpy(p, frames[i], n);
      struct cm_ws_frame f;
      int r = cm_ws_parse_frame(p, n, &f, &unlimited, true);
      assert_true(r >= 0 || r == CM_WS_E_LENGTH);
    }
  }
  /* Masking and UTF-8 validation of every length ending at the guard. */
  const uint8_t *text = (const uint8_t *)"0123456789abcdef\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z";
  size_t tlen = strlen((const char *)text);
  for (size_t n = 0; n <= tlen; n++) {
    uint8_t *p = area + room - n;
    memcpy(p, text + tlen - n, n);
    uint32_t st = 0;
    (void)cm_utf8_validate(&st, p, n);
    (void)cm_utf8_valid_prefix(p, n);
    cm_ws_mask(p, n, key, 1);
    cm_ws_mask(p, n, key, 1);
    assert_memory_equal(p, text + tlen - n, n);
  }
  /* Close payloads of every length. */
  for (size_t n = 0; n <= 6; n++) {
    uint8_t *p = area + room - n;
    memcpy(p, "\x03\xe8\xc3\xa9ok", n);
    (void)cm_ws_parse_close(p, n, NULL, NULL, NULL);
  }
  munmap(area, 2 * room);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(rfc_examples),
      cmocka_unit_test(length_boundaries_round_trip),
      cmocka_unit_test(byte_at_a_time_whole_frames),
      cmocka_unit_test(non_minimal_lengths_accepted),
      cmocka_unit_test(reserved_bits),
      cmocka_unit_test(reserved_opcodes),
      cmocka_unit_test(control_frames),
      cmocka_unit_test(length_top_bit),
      cmocka_unit_test(masking_direction),
      cmocka_unit_test(frame_size_limit),
      cmocka_unit_test(error_mapping),
      cmocka_unit_test(mask_matches_naive_at_any_alignment_and_split),
      cmocka_unit_test(encode_header_flags),
      cmocka_unit_test(message_sequencing),
      cmocka_unit_test(message_size_limit),
      cmocka_unit_test(message_utf8_across_fragments),
      cmocka_unit_test(close_codes),
      cmocka_unit_test(close_payload_parse),
      cmocka_unit_test(close_payload_build),
      cmocka_unit_test(no_read_past_the_end),
  };
  return cmocka_run_group_tests_name("ws_frame", tests, NULL, NULL);
}
