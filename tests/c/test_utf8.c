/* Unit tests of the incremental UTF-8 validator. */
#include <stdlib.h>

#include "testutil.h"

/* A reference checker written the obvious, slow way: decode each code
 * point and compare it with the limits of its encoded length. */
static bool reference_valid(const uint8_t *p, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint8_t b = p[i];
    size_t len;
    uint32_t cp, min;
    if (b < 0x80) {
      i++;
      continue;
    } else if ((b & 0xE0) == 0xC0) {
      len = 2, cp = b & 0x1F, min = 0x80;
    } else if ((b & 0xF0) == 0xE0) {
      len = 3, cp = b & 0x0F, min = 0x800;
    } else if ((b & 0xF8) == 0xF0) {
      len = 4, cp = b & 0x07, min = 0x10000;
    } else {
      return false;
    }
    if (i + len > n) return false;
    for (size_t k = 1; k < len; k++) {
      if ((p[i + k] & 0xC0) != 0x80) return false;
      cp = cp << 6 | (p[i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

static int validate_str(const char *s) {
  uint32_t st = 0;
  return cm_utf8_validate(&st, (const uint8_t *)s, strlen(s));
}

static void stress_vectors(void **state) {
  (void)state;
  /* Valid: boundaries of each length, and the edges around surrogates. */
  static const char *valid[] = {
      "",
      "hello, world",
      "\x7f",
      "\xc2\x80",             /* U+0080 */
      "\xdf\xbf",             /* U+07FF */
      "\xe0\xa0\x80",         /* U+0800 */
      "\xed\x9f\xbf",         /* U+D7FF */
      "\xee\x80\x80",         /* U+E000 */
      "\xef\xbf\xbd",         /* U+FFFD */
      "\xef\xbf\xbf",         /* U+FFFF (a noncharacter, still valid) */
      "\xf0\x90\x80\x80",     /* U+10000 */
      "\xf4\x8f\xbf\xbf",     /* U+10FFFF */
      "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", /* Greek "kosme" */
      "\xf0\x9f\x98\x80 smile",
  };
  for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
    assert_int_equal(validate_str(valid[i]), CM_UTF8_OK);
  }
  /* Invalid at some byte, whatever follows. */
  static const char *invalid[] = {
      "\x80",                 /* lone continuation */
      "\xbf",
      "a\x80z",
      "\xc0\x80",             /* overlong NUL */
      "\xc1\xbf",             /* overlong U+007F */
      "\xe0\x80\x80",         /* overlong 3-byte */
      "\xe0\x9f\xbf",         /* overlong U+07FF */
      "\xf0\x80\x80\x80",     /* overlong 4-byte */
      "\xf0\x8f\xbf\xbf",     /* overlong U+FFFF */
      "\xed\xa0\x80",         /* U+D800 */
      "\xed\xbf\xbf",         /* U+DFFF */
      "\xed\xa0\x80\xed\xb0\x80", /* surrogate pair encoded as CESU-8 */
      "\xf4\x90\x80\x80",     /* U+110000 */
      "\xf5\x80\x80\x80",
      "\xf8\x88\x80\x80\x80", /* 5-byte form */
      "\xfc\x84\x80\x80\x80\x80",
      "\xfe",
      "\xff",
      "\xc2\x41",             /* continuation missing */
      "\xe1\x80\x41",
      "\xf1\x80\x80\x41",
      "\xc2\xc2\x80",
  };
  for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
    assert_int_equal(validate_str(invalid[i]), CM_UTF8_INVALID);
  }
  /* Truncated: valid so far, but inside a character. */
  static const char *incomplete[] = {"\xc2", "a\xe0\xa0", "\xf0\x90\x80", "\xf4", "\xed\x9f"};
  for (size_t i = 0; i < sizeof(incomplete) / sizeof(incomplete[0]); i++) {
    assert_int_equal(validate_str(incomplete[i]), CM_UTF8_INCOMPLETE);
    assert_false(cm_utf8_valid((const uint8_t *)incomplete[i], strlen(incomplete[i])));
  }
}

static void fails_fast(void **state) {
  (void)state;
  /* The verdict is INVALID as soon as the first bad byte is seen, even
   * before the rest of the character arrives (as Autobahn 6.x expects). */
  uint32_t st = 0;
  assert_int_equal(cm_utf8_validate(&st, (const uint8_t *)"\xf4\x90", 2), CM_UTF8_INVALID);
  st = 0;
  assert_int_equal(cm_utf8_validate(&st, (const uint8_t *)"\xed\xa0", 2), CM_UTF8_INVALID);
  st = 0;
  assert_int_equal(cm_utf8_validate(&st, (const uint8_t *)"\xe0\x80", 2), CM_UTF8_INVALID);
  /* Sticky: good bytes afterwards do not repair it. */
  assert_int_equal(cm_utf8_validate(&st, (const uint8_t *)"abc", 3), CM_UTF8_INVALID);
  assert_int_equal(cm_utf8_validate(&st, NULL, 0), CM_UTF8_INVALID);
}

static void split_anywhere(void **state) {
  (void)state;
  const char *s = "ascii \xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 done, and more ascii";
  size_t n = strlen(s);
  for (size_t a = 0; a <= n; a++) {
    for (size_t b = a; b <= n; b++) {
      uint32_t st = 0;
      int r1 = cm_utf8_validate(&st, (const uint8_t *)s, a);
      int r2 = cm_utf8_validate(&st, (const uint8_t *)s + a, b - a);
      int r3 = cm_utf8_validate(&st, (const uint8_t *)s + b, n - b);
      assert_int_not_equal(r1, CM_UTF8_INVALID);
      assert_int_not_equal(r2, CM_UTF8_INVALID);
      assert_int_equal(r3, CM_UTF8_OK);
    }
  }
}

static void ascii_fast_path_edges(void **state) {
  (void)state;
  /* A bad byte at every position of a long buffer, at every alignment. */
  uint8_t buf[80];
  for (size_t off = 0; off < 8; off++) {
    for (size_t bad = off; bad < sizeof(buf); bad++) {
      memset(buf, 'a', sizeof(buf));
      buf[bad] = 0x80;
      uint32_t st = 0;
      assert_int_equal(cm_utf8_validate(&st, buf + off, sizeof(buf) - off), CM_UTF8_INVALID);
      assert_int_equal(cm_utf8_valid_prefix(buf + off, sizeof(buf) - off), bad - off);
    }
  }
  memset(buf, 'a', sizeof(buf));
  assert_true(cm_utf8_valid(buf, sizeof(buf)));
}

static void matches_reference_exhaustively(void **state) {
  (void)state;
  /* Every 1-, 2- and 3-byte string, whole and split after the first byte. */
  uint8_t b[4];
  for (uint32_t v = 0; v < (1u << 24); v++) {
    b[0] = (uint8_t)(v >> 16), b[1] = (uint8_t)(v >> 8), b[2] = (uint8_t)v;
    bool want = reference_valid(b, 3);
    uint32_t st = 0;
    int r = cm_utf8_validate(&st, b, 1);
    if (r != CM_UTF8_INVALID) r = cm_utf8_validate(&st, b + 1, 2);
    if ((r == CM_UTF8_OK) != want) fail_msg("3-byte string %06x: got %d", v, r);
    if (v < (1u << 16)) {
      assert_int_equal(cm_utf8_valid(b + 1, 2), reference_valid(b + 1, 2));
      assert_int_equal(cm_utf8_valid(b + 2, 1), reference_valid(b + 2, 1));
    }
  }
  /* Every 4-byte string that starts with a 4-byte lead F0..F4 and whose
   * continuation bytes are in or near the valid range, plus random ones. */
  for (uint32_t lead = 0xF0; lead <= 0xF7; lead++) {
    for (uint32_t v = 0; v < (1u << 18); v++) {
      b[0] = (uint8_t)lead;
      b[1] = (uint8_t)(0x70 + ((v >> 12) & 0x3F));
      b[2] = (uint8_t)(0x70 + ((v >> 6) & 0x3F));
      b[3] = (uint8_t)(0x70 + (v & 0x3F));
      if ((v & 0x3F) == 0x3F) b[3] = 0xC0; /* a lead where a continuation belongs */
      assert_int_equal(cm_utf8_valid(b, 4), reference_valid(b, 4));
    }
  }
  srand(1234);
  uint8_t r[24];
  for (int iter = 0; iter < 200000; iter++) {
    size_t n = (size_t)(rand() % (int)sizeof(r));
    for (size_t k = 0; k < n; k++) {
      /* Bias towards multi-byte structure so that valid strings occur. */
      int c = rand() % 4;
      r[k] = (uint8_t)(c == 0 ? rand() % 0x80 : c == 1 ? 0x80 + rand() % 0x40 : 0xC0 + rand() % 0x40);
    }
    bool want = reference_valid(r, n);
    assert_int_equal(cm_utf8_valid(r, n), want);
    if (!want) assert_true(cm_utf8_valid_prefix(r, n) < n);
    else assert_int_equal(cm_utf8_valid_prefix(r, n), n);
  }
}

static void valid_prefix(void **state) {
  (void)state;
  const uint8_t *s = (const uint8_t *)"ab\xe2\x82\xac\xe2\x82";
  assert_int_equal(cm_utf8_valid_prefix(s, 7), 5);
  assert_int_equal(cm_utf8_valid_prefix(s, 4), 2);
  assert_int_equal(cm_utf8_valid_prefix(s, 0), 0);
  assert_int_equal(cm_utf8_valid_prefix((const uint8_t *)"\xff", 1), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(stress_vectors),
      cmocka_unit_test(fails_fast),
      cmocka_unit_test(split_anywhere),
      cmocka_unit_test(ascii_fast_path_edges),
      cmocka_unit_test(matches_reference_exhaustively),
      cmocka_unit_test(valid_prefix),
  };
  return cmocka_run_group_tests_name("utf8", tests, NULL, NULL);
}
