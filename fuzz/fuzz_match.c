/*
 * libFuzzer harness for glob matching and base64.  Input: "<pattern>\n<s>".
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "cymongoose.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const uint8_t *nl = memchr(data, '\n', size);
  size_t plen = nl == NULL ? size : (size_t)(nl - data);
  char *pat = malloc(plen == 0 ? 1 : plen);
  memcpy(pat, data, plen);
  size_t slen = nl == NULL ? 0 : size - plen - 1;
  char *s = malloc(slen == 0 ? 1 : slen);
  if (slen > 0) memcpy(s, nl + 1, slen);

  struct cm_str sv = cm_str_n(s, slen), pv = cm_str_n(pat, plen);
  size_t ncaps = cm_match_ncaps(pv);
  struct cm_str *caps = calloc(ncaps + 1, sizeof(*caps));
  if (cm_match(sv, pv, caps, ncaps)) {
    /* captures are in order, inside s, and non-overlapping */
    const char *prev = s;
    for (size_t i = 0; i < ncaps; i++) {
      assert(caps[i].buf >= prev && caps[i].buf + caps[i].len <= s + slen);
      prev = caps[i].buf + caps[i].len;
    }
  }
  free(caps);

  /* base64: encode/decode round trip; decoding arbitrary bytes stays in bounds */
  size_t cap = CM_BASE64_ENCODED_LEN(size) + 1;
  char *enc = malloc(cap);
  long elen = cm_base64_encode(data, size, enc, cap);
  assert(elen == (long)CM_BASE64_ENCODED_LEN(size));
  uint8_t *dec = malloc(size + 1);
  assert(cm_base64_decode(enc, (size_t)elen, dec, size + 1) == (long)size);
  assert(size == 0 || memcmp(dec, data, size) == 0);
  uint8_t *out = malloc(plen + 1);
  long n = cm_base64_decode(pat, plen, out, plen);
  assert(n < 0 || (size_t)n <= plen);
  free(out);
  free(dec);
  free(enc);
  free(s);
  free(pat);
  return 0;
}
