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

#define PACK(due, lo, hi) ((uint32_t)(due) | (uint32_t)(lo) << 8 | (uint32_t)(hi) << 16)
#define IV STATE_INVALID
#define S2 PACK(1, 0x80, 0xBF)
#define S3 PACK(2, 0x80, 0xBF)
#define S4 PACK(3, 0x80, 0xBF)
#define S2x2 S2, S2
#define S2x10 S2x2, S2x2, S2x2, S2x2, S2x2
#define S3x4 S3, S3, S3, S3

/* The state after lead byte 0xC0 + index.  80..BF (stray continuation
 * bytes) never get here. */
static const uint32_t lead_state[64] = {
    IV, IV, S2x10, S2x10, S2x10,       /* C0 C1 overlong; C2..DF two bytes */
    PACK(2, 0xA0, 0xBF),               /* E0: no 3-byte overlong below U+0800 */
    S3x4, S3x4, S3x4,                  /* E1..EC */
    PACK(2, 0x80, 0x9F),               /* ED: no surrogates U+D800-DFFF */
    S3, S3,                            /* EE EF */
    PACK(3, 0x90, 0xBF),               /* F0: no 4-byte overlong below U+10000 */
    S4, S4, S4,                        /* F1..F3 */
    PACK(3, 0x80, 0x8F),               /* F4: nothing above U+10FFFF */
    IV, IV, IV, IV, IV, IV, IV, IV, IV, IV, IV, /* F5..FF never appear */
};

static uint32_t after_lead(uint8_t b) { return b < 0xC0 ? STATE_INVALID : lead_state[b - 0xC0]; }

static uint32_t pack(uint32_t due, uint32_t lo, uint32_t hi) { return PACK(due, lo, hi); }

static bool is_cont(uint8_t b) { return (b & 0xC0) == 0x80; }

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
      s = after_lead(p[i]);
      if (s == STATE_INVALID) break;
      uint32_t due = s & 0xFF;
      if (due < n - i) {
        /* The whole character is here: check it in one go. */
        uint8_t b1 = p[i + 1];
        bool ok = b1 >= ((s >> 8) & 0xFF) && b1 <= ((s >> 16) & 0xFF);
        if (due >= 2) ok = ok && is_cont(p[i + 2]);
        if (due == 3) ok = ok && is_cont(p[i + 3]);
        if (!ok) {
          s = STATE_INVALID;
          break;
        }
        s = 0;
        i += due + 1;
      } else {
        i++; /* the character continues in a later call */
      }
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
