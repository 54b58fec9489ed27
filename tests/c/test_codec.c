/* Unit tests of base64, hashes, CRC-32 and random (src/util/). */
#include <stdio.h>
#include <stdlib.h>

#include "testutil.h"

static void hex(const uint8_t *p, size_t n, char *out) {
  for (size_t i = 0; i < n; i++) sprintf(out + 2 * i, "%02x", p[i]);
}

static void base64_vectors(void **state) {
  (void)state;
  /* RFC 4648 section 10 */
  static const char *plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
  static const char *enc[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
  char buf[32];
  uint8_t dec[32];
  for (size_t i = 0; i < 7; i++) {
    long n = cm_base64_encode(plain[i], strlen(plain[i]), buf, sizeof(buf));
    assert_int_equal(n, (long)strlen(enc[i]));
    assert_string_equal(buf, enc[i]);
    long m = cm_base64_decode(enc[i], strlen(enc[i]), dec, sizeof(dec));
    assert_int_equal(m, (long)strlen(plain[i]));
    assert_memory_equal(dec, plain[i], (size_t)m);
    /* without padding too */
    size_t unpadded = strcspn(enc[i], "=");
    assert_int_equal(cm_base64_decode(enc[i], unpadded, dec, sizeof(dec)), m);
  }
  /* too small an output buffer */
  assert_int_equal(cm_base64_encode("foobar", 6, buf, 8), CM_ENOSPC);
  assert_string_equal(buf, "");
  assert_int_equal(cm_base64_encode("foobar", 6, NULL, 0), 8); /* measuring */
  assert_int_equal(cm_base64_encode("foobar", 6, buf, 9), 8);
  assert_int_equal(cm_base64_decode("Zm9vYmFy", 8, dec, 5), CM_ENOSPC);
}

static void base64_rejects(void **state) {
  (void)state;
  static const char *bad[] = {"Z", "Zg=", "Zg===", "Z===", "Zm9v=", "Zm 9v", "Zm9v\n", "Zg==Zg==",
                              "Zm9-", "Zm9_", "====", "=", "Zm=v", "*"};
  uint8_t dec[32];
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    if (cm_base64_decode(bad[i], strlen(bad[i]), dec, sizeof(dec)) != CM_EINVAL) fail_msg("'%s' accepted", bad[i]);
}

static void base64_roundtrip(void **state) {
  (void)state;
  uint8_t data[300], back[300];
  char enc[CM_BASE64_ENCODED_LEN(300) + 1];
  for (size_t i = 0; i < sizeof(data); i++) data[i] = (uint8_t)(i * 7 + 3);
  for (size_t n = 0; n <= sizeof(data); n++) {
    long e = cm_base64_encode(data, n, enc, sizeof(enc));
    assert_int_equal(e, CM_BASE64_ENCODED_LEN(n));
    assert_int_equal(cm_base64_decode(enc, (size_t)e, back, n), (long)n);
    assert_memory_equal(back, data, n);
  }
}

static void hashes(void **state) {
  (void)state;
  uint8_t d[32];
  char h[65];
  assert_true(cm_md5("abc", 3, d) == 0);
  hex(d, 16, h);
  assert_string_equal(h, "900150983cd24fb0d6963f7d28e17f72");
  assert_true(cm_sha1("abc", 3, d) == 0);
  hex(d, 20, h);
  assert_string_equal(h, "a9993e364706816aba3e25717850c26c9cd0d89d");
  assert_true(cm_sha256("abc", 3, d) == 0);
  hex(d, 32, h);
  assert_string_equal(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  assert_true(cm_sha256(NULL, 0, d) == 0);
  hex(d, 32, h);
  assert_string_equal(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  /* RFC 4231 test case 2 */
  assert_true(cm_hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, d) == 0);
  hex(d, 32, h);
  assert_string_equal(h, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

static void crc(void **state) {
  (void)state;
  assert_int_equal(cm_crc32(0, "123456789", 9), 0xcbf43926u);
  assert_int_equal(cm_crc32(cm_crc32(0, "12345", 5), "6789", 4), 0xcbf43926u);
  assert_int_equal(cm_crc32(0, NULL, 0), 0);
}

static void randomness(void **state) {
  (void)state;
  uint8_t a[32] = {0}, b[32] = {0};
  assert_true(cm_random(a, sizeof(a)) == 0);
  assert_true(cm_random(b, sizeof(b)) == 0);
  assert_memory_not_equal(a, b, sizeof(a));
  char s[1000];
  assert_true(cm_random_str(s, sizeof(s)) == 0);
  int seen[256] = {0};
  for (size_t i = 0; i < sizeof(s); i++) {
    unsigned char c = (unsigned char)s[i];
    assert_true((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'));
    seen[c]++;
  }
  int distinct = 0;
  for (int i = 0; i < 256; i++) distinct += seen[i] > 0;
  assert_true(distinct > 40); /* 1000 draws from 62 symbols */
  assert_true(cm_random_str(s, 0) == 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(base64_vectors), cmocka_unit_test(base64_rejects),
      cmocka_unit_test(base64_roundtrip), cmocka_unit_test(hashes),
      cmocka_unit_test(crc),            cmocka_unit_test(randomness),
  };
  return cmocka_run_group_tests_name("codec", tests, NULL, NULL);
}
