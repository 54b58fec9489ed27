/* Growable byte buffers consumed from the front (see struct cm_buf). */
#include <stdlib.h>
#include <string.h>

#include "cymongoose.h"

/* Growth is geometric so that n appends cost O(n) copies in total. */
static size_t grow_to(size_t cap, size_t need) {
  size_t n = cap < 256 ? 256 : cap;
  while (n < need) {
    if (n > SIZE_MAX / 2) return need;
    n *= 2;
  }
  return n;
}

int cm_buf_reserve(struct cm_buf *b, size_t n) {
  if (n > SIZE_MAX - b->len) return CM_ENOMEM;
  size_t need = b->len + n;
  if (b->off + need <= b->cap) return 0;
  /* Moving the data to the front is enough when the consumed prefix is at
   * least as large as the data being moved: amortised O(1) per byte. */
  if (need <= b->cap && b->off >= b->len) {
    memmove(b->ptr, b->ptr + b->off, b->len);
    b->off = 0;
    return 0;
  }
  size_t cap = grow_to(b->cap, need);
  uint8_t *p = malloc(cap);
  if (p == NULL) return CM_ENOMEM;
  if (b->len > 0) memcpy(p, b->ptr + b->off, b->len);
  free(b->ptr);
  b->ptr = p;
  b->off = 0;
  b->cap = cap;
  return 0;
}

int cm_buf_append(struct cm_buf *b, const void *p, size_t n) {
  if (n == 0) return 0;
  if (cm_buf_reserve(b, n) != 0) return CM_ENOMEM;
  memcpy(b->ptr + b->off + b->len, p, n);
  b->len += n;
  return 0;
}

void cm_buf_consume(struct cm_buf *b, size_t n) {
  if (n >= b->len) {
    b->off = 0;
    b->len = 0;
  } else {
    b->off += n;
    b->len -= n;
  }
}

void cm_buf_delete(struct cm_buf *b, size_t ofs, size_t n) {
  if (ofs >= b->len) return;
  if (n > b->len - ofs) n = b->len - ofs;
  uint8_t *d = b->ptr + b->off;
  memmove(d + ofs, d + ofs + n, b->len - ofs - n);
  b->len -= n;
}

void cm_buf_free(struct cm_buf *b) {
  free(b->ptr);
  b->ptr = NULL;
  b->off = b->len = b->cap = 0;
}

void cm_buf_trim(struct cm_buf *b) {
  if (b->len == 0) {
    cm_buf_free(b);
    return;
  }
  if (b->cap <= 4096 || b->len > b->cap / 4) return;
  uint8_t *p = malloc(b->len);
  if (p == NULL) return;
  memcpy(p, b->ptr + b->off, b->len);
  free(b->ptr);
  b->ptr = p;
  b->off = 0;
  b->cap = b->len;
}
