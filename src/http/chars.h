/* Character classes of RFC 9110 section 5.6, shared by the HTTP codec. */
#ifndef CM_HTTP_CHARS_H
#define CM_HTTP_CHARS_H

#include <stdbool.h>

/* tchar: the characters of a token (method, header name, coding name). */
static inline bool cm__http_is_tchar(unsigned char c) {
  if (c >= '0' && c <= '9') return true;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*':
    case '+': case '-': case '.': case '^': case '_': case '`': case '|': case '~':
      return true;
    default:
      return false;
  }
}

/* field-vchar, SP and HTAB: what a header value may contain (obs-text, the
 * bytes 0x80-0xFF, is allowed; every other control character is not). */
static inline bool cm__http_is_value_char(unsigned char c) {
  return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static inline bool cm__http_is_ows(unsigned char c) {
  return c == ' ' || c == '\t';
}

static inline unsigned char cm__http_lower(unsigned char c) {
  return (c >= 'A' && c <= 'Z') ? (unsigned char) (c | 0x20) : c;
}

#endif
