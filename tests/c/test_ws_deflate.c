/* Unit tests of permessage-deflate compression and decompression
 * (RFC 7692 7.2), including the RFC's own examples. */
#include <stdlib.h>

#include <zlib.h>

#include "testutil.h"

static const struct cm_ws_deflate_params takeover = {0};
static const struct cm_ws_deflate_params no_takeover = {true, true, 0, 0, false};

static int inflate_all(struct cm_ws_deflate *d, const void *p, size_t n, struct cm_buf *out) {
  return cm_ws_deflate_decompress(d, (const uint8_t *)p, n, true, out, 0);
}

static void rfc_examples_decompress(void **state) {
  (void)state;
  static const struct {
    const char *name;
    uint8_t data[16];
    size_t len;
  } ex[] = {
      {"7.2.3.1 one block", {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}, 7},
      {"7.2.3.3 stored block", {0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00}, 11},
      {"7.2.3.4 BFINAL set", {0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00}, 8},
      {"7.2.3.5 two blocks",
       {0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00},
       13},
  };
  for (size_t i = 0; i < sizeof(ex) / sizeof(ex[0]); i++) {
    struct cm_ws_deflate *d = cm_ws_deflate_new(&takeover, true, -1);
    assert_non_null(d);
    struct cm_buf out = {0};
    /* Twice on the same stream: BFINAL must not break the next message. */
    for (int k = 0; k < 2; k++) {
      out.len = 0;
      if (inflate_all(d, ex[i].data, ex[i].len, &out) != 0) fail_msg("%s", ex[i].name);
      assert_int_equal(out.len, 5);
      assert_memory_equal(cm_buf_data(&out), "Hello", 5);
    }
    cm_buf_free(&out);
    cm_ws_deflate_free(d);
  }
}

static void rfc_example_shared_window(void **state) {
  (void)state;
  /* 7.2.3.2: the second "Hello" refers back to the first. */
  struct cm_ws_deflate *c = cm_ws_deflate_new(&takeover, false, -1);
  struct cm_ws_deflate *s = cm_ws_deflate_new(&takeover, true, -1);
  struct cm_buf z = {0}, out = {0};
  assert_int_equal(cm_ws_deflate_compress(c, (const uint8_t *)"Hello", 5, &z), 0);
  const uint8_t first[] = {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};
  assert_int_equal(z.len, sizeof(first));
  assert_memory_equal(cm_buf_data(&z), first, sizeof(first));
  assert_int_equal(inflate_all(s, cm_buf_data(&z), z.len, &out), 0);
  z.len = 0;
  assert_int_equal(cm_ws_deflate_compress(c, (const uint8_t *)"Hello", 5, &z), 0);
  const uint8_t second[] = {0xf2, 0x00, 0x11, 0x00, 0x00};
  assert_int_equal(z.len, sizeof(second));
  assert_memory_equal(cm_buf_data(&z), second, sizeof(second));
  out.len = 0;
  assert_int_equal(inflate_all(s, cm_buf_data(&z), z.len, &out), 0);
  assert_memory_equal(cm_buf_data(&out), "Hello", 5);
  cm_buf_free(&z);
  cm_buf_free(&out);
  cm_ws_deflate_free(c);
  cm_ws_deflate_free(s);
}

static void round_trip_many_messages(void **state) {
  (void)state;
  const struct cm_ws_deflate_params *modes[] = {&takeover, &no_takeover};
  size_t sizes[] = {0, 1, 5, 100, 16383, 16384, 16385, 100000, 300000};
  uint8_t *msg = malloc(300000);
  assert_non_null(msg);
  srand(7);
  for (size_t m = 0; m < 2; m++) {
    struct cm_ws_deflate *tx = cm_ws_deflate_new(modes[m], false, 6);
    struct cm_ws_deflate *rx = cm_ws_deflate_new(modes[m], true, 6);
    struct cm_buf z = {0}, out = {0};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
      for (int kind = 0; kind < 2; kind++) {
        /* Compressible text, then incompressible noise. */
        for (size_t k = 0; k < sizes[i]; k++)
          msg[k] = kind == 0 ? (uint8_t)("the quick brown fox "[k % 20]) : (uint8_t)rand();
        z.len = 0;
        out.len = 0;
        assert_int_equal(cm_ws_deflate_compress(tx, msg, sizes[i], &z), 0);
        if (kind == 0 && sizes[i] > 1000) assert_true(z.len < sizes[i] / 10);
        /* Deliver it in fragments of awkward sizes. */
        size_t off = 0, step = 1;
        while (off < z.len) {
          size_t n = z.len - off < step ? z.len - off : step;
          assert_int_equal(cm_ws_deflate_decompress(rx, cm_buf_data(&z) + off, n, off + n == z.len,
                                                    &out, UINT64_MAX),
                           0);
          off += n;
          step = step * 3 + 1;
        }
        assert_true(z.len > 0); /* even an empty message: 0x00 */
        assert_int_equal(out.len, sizes[i]);
        if (sizes[i] > 0) assert_memory_equal(cm_buf_data(&out), msg, sizes[i]);
      }
    }
    cm_buf_free(&z);
    cm_buf_free(&out);
    cm_ws_deflate_free(tx);
    cm_ws_deflate_free(rx);
  }
  free(msg);
}

static void no_context_takeover_messages_stand_alone(void **state) {
  (void)state;
  /* Each message from a no-context-takeover compressor decompresses on a
   * fresh decompressor. */
  struct cm_ws_deflate *tx = cm_ws_deflate_new(&no_takeover, true, -1);
  struct cm_buf z = {0}, out = {0};
  for (int i = 0; i < 3; i++) {
    z.len = 0;
    out.len = 0;
    assert_int_equal(cm_ws_deflate_compress(tx, (const uint8_t *)"Hello Hello Hello", 17, &z), 0);
    struct cm_ws_deflate *rx = cm_ws_deflate_new(&no_takeover, false, -1);
    assert_int_equal(inflate_all(rx, cm_buf_data(&z), z.len, &out), 0);
    assert_int_equal(out.len, 17);
    cm_ws_deflate_free(rx);
  }
  cm_buf_free(&z);
  cm_buf_free(&out);
  cm_ws_deflate_free(tx);
}

static void zip_bomb_stopped(void **state) {
  (void)state;
  /* 64 MiB of zeros compress to about 64 KiB; a 1 MiB limit must stop
   * inflation early, without buffering the whole thing. */
  size_t big = 64u << 20;
  uint8_t *zeros = calloc(1, big);
  assert_non_null(zeros);
  struct cm_ws_deflate *tx = cm_ws_deflate_new(&takeover, false, 9);
  struct cm_buf z = {0}, out = {0};
  assert_int_equal(cm_ws_deflate_compress(tx, zeros, big, &z), 0);
  free(zeros);
  assert_true(z.len < big / 500);
  struct cm_ws_deflate *rx = cm_ws_deflate_new(&takeover, true, -1);
  uint64_t limit = 1u << 20;
  int r = cm_ws_deflate_decompress(rx, cm_buf_data(&z), z.len, true, &out, limit);
  assert_int_equal(r, CM_WS_E_MESSAGE_TOO_BIG);
  assert_int_equal(cm_ws_error_close_code(r), 1009);
  assert_true(out.len <= limit + 16 * 1024);
  /* Exactly at the limit is fine; the count is per message. */
  struct cm_ws_deflate *rx2 = cm_ws_deflate_new(&takeover, true, -1);
  uint8_t data[1000];
  memset(data, 'x', sizeof(data));
  z.len = 0;
  for (int i = 0; i < 3; i++) {
    z.len = 0;
    out.len = 0;
    assert_int_equal(cm_ws_deflate_compress(tx, data, sizeof(data), &z), 0);
    assert_int_equal(cm_ws_deflate_decompress(rx2, cm_buf_data(&z), z.len, true, &out, 1000), 0);
  }
  z.len = 0;
  out.len = 0;
  assert_int_equal(cm_ws_deflate_compress(tx, data, sizeof(data), &z), 0);
  assert_int_equal(cm_ws_deflate_decompress(rx2, cm_buf_data(&z), z.len, true, &out, 999),
                   CM_WS_E_MESSAGE_TOO_BIG);
  cm_buf_free(&z);
  cm_buf_free(&out);
  cm_ws_deflate_free(tx);
  cm_ws_deflate_free(rx);
  cm_ws_deflate_free(rx2);
}

static void corrupt_data_rejected(void **state) {
  (void)state;
  struct cm_ws_deflate *rx = cm_ws_deflate_new(&takeover, true, -1);
  struct cm_buf out = {0};
  /* Block type 3 is reserved. */
  const uint8_t bad_type[] = {0xff, 0xff, 0xff};
  int r = inflate_all(rx, bad_type, sizeof(bad_type), &out);
  assert_int_equal(r, CM_WS_E_INFLATE);
  assert_int_equal(cm_ws_error_close_code(r), 1007);
  cm_ws_deflate_free(rx);
  /* A stored block whose length check fails. */
  rx = cm_ws_deflate_new(&takeover, true, -1);
  const uint8_t bad_len[] = {0x00, 0x05, 0x00, 0x00, 0x00, 'H', 'e', 'l', 'l', 'o'};
  assert_int_equal(inflate_all(rx, bad_len, sizeof(bad_len), &out), CM_WS_E_INFLATE);
  cm_ws_deflate_free(rx);
  cm_buf_free(&out);
  cm_ws_deflate_free(NULL);
}

/* Inflates with a window of `bits`, one output byte per call so that every
 * back reference must come from zlib's window (zlib only checks distances
 * against the data it has, which includes the current output buffer).
 * Returns the number of bytes produced, or -1 on a data error. */
static long inflate_one_byte_at_a_time(const uint8_t *in, size_t n, int bits, uint8_t *out,
                                       size_t cap) {
  z_stream inf;
  memset(&inf, 0, sizeof(inf));
  assert_int_equal(inflateInit2(&inf, -bits), Z_OK);
  inf.next_in = (Bytef *)(uintptr_t)in;
  inf.avail_in = (uInt)n;
  long produced = 0;
  while ((size_t)produced < cap) {
    inf.next_out = out + produced;
    inf.avail_out = 1;
    int r = inflate(&inf, Z_SYNC_FLUSH);
    if (r == Z_DATA_ERROR) {
      produced = -1;
      break;
    }
    if (inf.avail_out == 1) break; /* nothing more */
    produced++;
  }
  inflateEnd(&inf);
  return produced;
}

static void window_bits_respected(void **state) {
  (void)state;
  /* Random 600-byte blocks, repeated: the only matches are 600 bytes back,
   * beyond a 9-bit (512-byte) window. */
  uint8_t msg[4096], back[4096];
  srand(3);
  for (size_t i = 0; i < 600; i++) msg[i] = (uint8_t)rand();
  for (size_t i = 600; i < sizeof(msg); i++) msg[i] = msg[i - 600];
  struct cm_buf z = {0};

  /* A server agreed to 9 window bits: a 9-bit inflater decodes it. */
  struct cm_ws_deflate_params p = {false, false, 9, 0, false};
  struct cm_ws_deflate *narrow = cm_ws_deflate_new(&p, true, 9);
  assert_int_equal(cm_ws_deflate_compress(narrow, msg, sizeof(msg), &z), 0);
  assert_int_equal(cm_buf_append(&z, "\x00\x00\xff\xff", 4), 0);
  assert_int_equal(inflate_one_byte_at_a_time(cm_buf_data(&z), z.len, 9, back, sizeof(back)),
                   (long)sizeof(msg));
  assert_memory_equal(back, msg, sizeof(msg));

  /* With 15 bits the compressor does use the long distances, which the
   * 9-bit inflater refuses: so the check above means something. */
  struct cm_ws_deflate *wide = cm_ws_deflate_new(&takeover, true, 9);
  z.len = 0;
  assert_int_equal(cm_ws_deflate_compress(wide, msg, sizeof(msg), &z), 0);
  assert_true(z.len < 1000);
  assert_int_equal(cm_buf_append(&z, "\x00\x00\xff\xff", 4), 0);
  assert_int_equal(inflate_one_byte_at_a_time(cm_buf_data(&z), z.len, 9, back, sizeof(back)), -1);
  assert_int_equal(inflate_one_byte_at_a_time(cm_buf_data(&z), z.len, 15, back, sizeof(back)),
                   (long)sizeof(msg));

  /* On the client side the client_max_window_bits governs. */
  struct cm_ws_deflate_params pc = {false, false, 0, 9, false};
  struct cm_ws_deflate *client = cm_ws_deflate_new(&pc, false, 9);
  z.len = 0;
  assert_int_equal(cm_ws_deflate_compress(client, msg, sizeof(msg), &z), 0);
  assert_int_equal(cm_buf_append(&z, "\x00\x00\xff\xff", 4), 0);
  assert_int_equal(inflate_one_byte_at_a_time(cm_buf_data(&z), z.len, 9, back, sizeof(back)),
                   (long)sizeof(msg));
  cm_buf_free(&z);
  cm_ws_deflate_free(narrow);
  cm_ws_deflate_free(wide);
  cm_ws_deflate_free(client);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(rfc_examples_decompress),
      cmocka_unit_test(rfc_example_shared_window),
      cmocka_unit_test(round_trip_many_messages),
      cmocka_unit_test(no_context_takeover_messages_stand_alone),
      cmocka_unit_test(zip_bomb_stopped),
      cmocka_unit_test(corrupt_data_rejected),
      cmocka_unit_test(window_bits_respected),
  };
  return cmocka_run_group_tests_name("ws_deflate", tests, NULL, NULL);
}
