/* Character classes of RFC 9110 section 5.6, shared by the HTTP codec.
 *
 * One 256-entry table (chars.c) answers every class with a single load and
 * mask, instead of a chain of comparisons per byte: the request parser and
 * the reply's header-block check run these on every byte of a head. */
#ifndef CM_HTTP_CHARS_H
#define CM_HTTP_CHARS_H

#include <stdbool.h>

enum {
  CM__HTTP_TCHAR = 1, /* tchar: a token (method, header name, coding name) */
  CM__HTTP_VALUE = 2, /* field-vchar, obs-text, SP, HTAB: a header value */
  CM__HTTP_OWS = 4,   /* SP, HTAB */
};

/* The class bits of each byte value; read-only, built at compile time. */
extern const unsigned char cm__http_char_class[256];

/* tchar: the characters of a token (method, header name, coding name). */
static inline bool cm__http_is_tchar(unsigned char c) {
  return (cm__http_char_class[c] & CM__HTTP_TCHAR) != 0;
}

/* field-vchar, SP and HTAB: what a header value may contain (obs-text, the
 * bytes 0x80-0xFF, is allowed; every other control character is not). */
static inline bool cm__http_is_value_char(unsigned char c) {
  return (cm__http_char_class[c] & CM__HTTP_VALUE) != 0;
}

static inline bool cm__http_is_ows(unsigned char c) {
  return (cm__http_char_class[c] & CM__HTTP_OWS) != 0;
}

static inline unsigned char cm__http_lower(unsigned char c) {
  return (c >= 'A' && c <= 'Z') ? (unsigned char) (c | 0x20) : c;
}

#endif
