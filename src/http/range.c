/*
 * Range request codec (RFC 9110 section 14): parsing a Range header value
 * against a representation's size.  Pure: no I/O, no allocation, never reads
 * past the given value.
 */
#include <string.h>
#include <strings.h>

#include "cymongoose.h"
#include "http/chars.h"

/* Reads 1*DIGIT at *i.  Values too large for 64 bits saturate at
 * UINT64_MAX (they are beyond any file anyway).  False when no digit. */
static bool read_num(const char *p, size_t n, size_t *i, uint64_t *out) {
  size_t start = *i;
  uint64_t v = 0;
  while (*i < n && p[*i] >= '0' && p[*i] <= '9') {
    uint64_t d = (uint64_t) (p[*i] - '0');
    v = v > (UINT64_MAX - d) / 10 ? UINT64_MAX : v * 10 + d;
    (*i)++;
  }
  *out = v;
  return *i > start;
}

int cm_http_parse_range(struct cm_str value, uint64_t size, struct cm_http_range *ranges, size_t max) {
  const char *p = value.buf;
  size_t n = value.buf == NULL ? 0 : value.len, i = 0;
  while (i < n && cm__http_is_ows((unsigned char) p[i])) i++;
  if (n - i < 6 || strncasecmp(p + i, "bytes=", 6) != 0) return 0; /* another unit: ignore */
  i += 6;
  size_t count = 0;
  bool any_spec = false;
  for (;;) {
    /* 1#range-spec: empty list elements and OWS around commas are allowed. */
    while (i < n && (cm__http_is_ows((unsigned char) p[i]) || p[i] == ',')) i++;
    if (i >= n) break;
    uint64_t first = 0, last = 0;
    bool has_first = read_num(p, n, &i, &first);
    if (i >= n || p[i] != '-') return 0;
    i++;
    bool has_last = read_num(p, n, &i, &last);
    if (!has_first && !has_last) return 0; /* a lone "-" */
    if (has_first && has_last && last < first) return 0; /* invalid: ignore the header */
    while (i < n && cm__http_is_ows((unsigned char) p[i])) i++;
    if (i < n && p[i] != ',') return 0;
    any_spec = true;
    struct cm_http_range r;
    if (!has_first) { /* suffix-range: the last `last` bytes */
      if (last == 0 || size == 0) continue; /* unsatisfiable */
      r.start = last >= size ? 0 : size - last;
      r.end = size - 1;
    } else {
      if (first >= size) continue; /* unsatisfiable */
      r.start = first;
      r.end = has_last && last < size ? last : size - 1;
    }
    /* Serving overlapping or out-of-order ranges would let a small request
     * ask for the same bytes many times; such a set is answered in full. */
    if (count > 0 && r.start <= ranges[count - 1].end) return 0;
    if (count == max) return 0;
    ranges[count++] = r;
  }
  if (!any_spec) return 0;
  return count == 0 ? -1 : (int) count;
}
