/*
 * libFuzzer harness of the static-file codecs: Range header parsing, MIME
 * lookup in a custom list, HTTP-date parsing.  Input: 8 bytes of size, then
 * the Range value (the rest is also used as path, custom list and date).
 * Checks the codec's promises beyond "no crash, no over-read": every range
 * lies inside the file, ranges ascend without overlap, the count respects
 * max, and MIME answers are views inside the list or static strings.
 */
#include <stdlib.h>
#include <string.h>

#include "cymongoose.h"
#include "http/internal.h"

#define CHECK(x) \
  do {           \
    if (!(x)) __builtin_trap(); \
  } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 9) return 0;
  uint64_t fsize = 0;
  memcpy(&fsize, data, 8);
  if (data[0] & 1) fsize &= 0xffff; /* small sizes half of the time */
  size_t max = (size_t) (data[8] % 8) + 1;
  size_t n = size - 9;
  /* An exact-size copy, so that ASan sees any read past the end. */
  char *v = malloc(n == 0 ? 1 : n);
  if (v == NULL) return 0;
  memcpy(v, data + 9, n);
  struct cm_http_range r[8];
  int k = cm_http_parse_range(cm_str_n(v, n), fsize, r, max);
  CHECK(k >= -1 && k <= (int) max);
  for (int i = 0; i < k; i++) {
    CHECK(r[i].start <= r[i].end && r[i].end < fsize);
    if (i > 0) CHECK(r[i].start > r[i - 1].end);
  }
  if (k == -1) CHECK(n > 0);

  (void) cm__http_date_parse(cm_str_n(v, n));

  /* MIME lookup wants NUL-terminated lists and looks at the path's end. */
  char *list = malloc(n + 1);
  if (list != NULL) {
    memcpy(list, v, n);
    list[n] = '\0';
    struct cm_str t = cm_http_mime_type(cm_str_n(v, n), list);
    CHECK(t.buf != NULL && t.len > 0);
    if (t.buf >= list && t.buf < list + n + 1) {
      CHECK(t.buf + t.len <= list + n);
      for (size_t i = 0; i < t.len; i++) CHECK(t.buf[i] != '\r' && t.buf[i] != '\n' && t.buf[i] != '\0');
    }
    free(list);
  }
  free(v);
  return 0;
}
