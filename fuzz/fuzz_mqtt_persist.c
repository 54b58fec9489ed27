/*
 * libFuzzer harness for the persistence record codec: decodes records one
 * after another as the loader does; every decoded record must re-encode to
 * the same bytes, and views stay inside the input.
 */
#include <assert.h>
#include <string.h>

#include "cymongoose.h"
#include "cymongoose.h"

static void inside(struct cm_str s, const uint8_t *p, size_t n) {
  assert(s.len == 0 || ((const uint8_t *)s.buf >= p && (const uint8_t *)s.buf + s.len <= p + n));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  size_t pos = 0;
  while (pos < size) {
    struct cm_persist_rec r;
    const char *why = NULL;
    long n = cm_persist_decode(data + pos, size - pos, &r, &why);
    if (n <= 0) {
      assert(n == 0 || why != NULL);
      break;
    }
    assert((size_t)n <= size - pos);
    const uint8_t *p = data + pos;
    inside(r.client, p, (size_t)n), inside(r.topic, p, (size_t)n);
    inside(r.m_topic, p, (size_t)n), inside(r.m_payload, p, (size_t)n);
    inside(r.m_props, p, (size_t)n);
    struct cm_buf out = {0};
    assert(cm_persist_encode(&out, &r) == 0);
    assert(out.len == (size_t)n && memcmp(cm_buf_data(&out), p, out.len) == 0);
    cm_buf_free(&out);
    pos += (size_t)n;
  }
  return 0;
}
