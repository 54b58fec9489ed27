/*
 * Incremental UTF-8 validation (RFC 3629 section 4 syntax).
 *
 * The state between bytes is "how many continuation bytes are still due,
 * and which range the next one must fall in".  Only the first continuation
 * byte after a lead byte has a range narrower than 80..BF; narrowing it is
 * what rejects overlong forms (E0 80.., F0 80..), surrogates (ED A0..) and
 * code points above U+10FFFF (F4 90..), each at the first byte that proves
 * the input invalid.
 *
 * Packed into a uint32_t so callers can keep it across fragments:
 *   bits 0-7   continuation bytes still due (0..3)
 *   bits 8-15  lowest allowed value of the next byte
 *   bits 16-23 highest allowed value of the next byte
 * 0 means "between characters"; STATE_INVALID is sticky.
 */
#include <string.h>

#include "cymongoose.h"

#define STATE_INVALID 0xFFFFFFFFu

static uint32_t pack(uint32_t due, uint32_t lo, uint32_t hi) {
  return due | lo << 8 | hi << 16;
}

/* The state after lead byte b, or STATE_INVALID. */
static uint32_t after_lead(uint8_t b) {
  if (b < 0xC2) return STATE_INVALID; /* continuation byte, or C0/C1 (overlong) */
  if (b < 0xE0) return pack(1, 0x80, 0xBF);
  if (b == 0xE0) return pack(2, 0xA0, 0xBF); /* 3-byte overlong below U+0800 */
  if (b == 0xED) return pack(2, 0x80, 0x9F); /* surrogates U+D800-DFFF */
  if (b < 0xF0) return pack(2, 0x80, 0xBF);
  if (b == 0xF0) return pack(3, 0x90, 0xBF); /* 4-byte overlong below U+10000 */
  if (b < 0xF4) return pack(3, 0x80, 0xBF);
  if (b == 0xF4) return pack(3, 0x80, 0x8F); /* above U+10FFFF */
  return STATE_INVALID;                      /* F5..FF never appear */
}

#define HIGH_BITS 0x8080808080808080ull

int cm_utf8_validate(uint32_t *state, const uint8_t *p, size_t n) {
  uint32_t s = *state;
  if (s == STATE_INVALID) return CM_UTF8_INVALID;
  size_t i = 0;
  while (i < n) {
    if (s == 0) {
      /* Between characters: skip ASCII 8 bytes at a time. */
      while (i + 8 <= n) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        if (w & HIGH_BITS) break;
        i += 8;
      }
      while (i < n && p[i] < 0x80) i++;
      if (i == n) break;
      s = after_lead(p[i++]);
      if (s == STATE_INVALID) break;
      continue;
    }
    uint8_t b = p[i++];
    uint32_t lo = (s >> 8) & 0xFF, hi = (s >> 16) & 0xFF, due = s & 0xFF;
    if (b < lo || b > hi) {
      s = STATE_INVALID;
      break;
    }
    s = due == 1 ? 0 : pack(due - 1, 0x80, 0xBF);
  }
  *state = s;
  if (s == STATE_INVALID) return CM_UTF8_INVALID;
  return s == 0 ? CM_UTF8_OK : CM_UTF8_INCOMPLETE;
}

bool cm_utf8_valid(const uint8_t *p, size_t n) {
  uint32_t s = 0;
  return cm_utf8_validate(&s, p, n) == CM_UTF8_OK;
}

size_t cm_utf8_valid_prefix(const uint8_t *p, size_t n) {
  /* Feed one byte at a time past the ASCII fast path; remember the last
   * position that ended a character. */
  uint32_t s = 0;
  size_t good = 0;
  for (size_t i = 0; i < n; i++) {
    int r = cm_utf8_validate(&s, p + i, 1);
    if (r == CM_UTF8_INVALID) break;
    if (r == CM_UTF8_OK) good = i + 1;
  }
  return good;
}
