/*
 * The decoded, normalised request path (cm_http_msg.path): what the static
 * file server serves, and so what access checks must compare against.
 * Pure: no I/O, no allocation.
 */
#include <string.h>

#include "cymongoose.h"
#include "http/chars.h"
#include "util/hex.h"

int cm_http_normalize_path(struct cm_str uri, char *dst, size_t dst_len) {
  if (uri.len == 0 || uri.buf[0] != '/' || dst_len == 0) return -1;
  size_t o = 0; /* dst[0..o) holds "/seg/seg" so far, without a trailing '/' */
  size_t i = 0;
  bool trailing = false;
  while (i < uri.len) {
    /* one segment: decode it into dst after a '/', then judge it */
    while (i < uri.len && uri.buf[i] == '/') i++;
    if (i >= uri.len) {
      trailing = true;
      break;
    }
    if (o + 1 >= dst_len) return -1;
    size_t seg = o + 1;
    dst[o] = '/';
    size_t k = seg;
    bool slash_end = false; /* the segment ended at an escaped '/' */
    while (i < uri.len && uri.buf[i] != '/') {
      unsigned char ch = (unsigned char) uri.buf[i];
      if (ch == '%') {
        int hi = i + 2 < uri.len ? cm__hex_digit((unsigned char) uri.buf[i + 1]) : -1;
        int lo = hi >= 0 ? cm__hex_digit((unsigned char) uri.buf[i + 2]) : -1;
        if (lo < 0) return -1;
        ch = (unsigned char) (hi << 4 | lo);
        if (ch == 0) return -1;
        i += 3;
      } else {
        i++;
      }
      if (k + 1 >= dst_len) return -1;
      /* an escaped '/' separates segments, as when the file server decodes */
      if (ch == '/') {
        slash_end = true;
        break;
      }
      dst[k++] = (char) ch;
    }
    size_t len = k - seg;
    trailing = false;
    if (len == 0 || (len == 1 && dst[seg] == '.')) {
      trailing = true; /* "/a/." and "/a//" name the directory "/a/" */
    } else if (len == 2 && dst[seg] == '.' && dst[seg + 1] == '.') {
      /* drops "/last": back to the parent, never above "/" */
      while (o > 0 && dst[--o] != '/') continue;
      trailing = true;
    } else {
      o = k;
      trailing = slash_end;
    }
  }
  if (o == 0 || trailing) {
    if (o + 1 >= dst_len) return -1;
    dst[o++] = '/';
  }
  dst[o] = '\0';
  return (int) o;
}
