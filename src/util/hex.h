/* The one hex-digit decoder of the library (percent escapes, JSON \u
 * escapes, chunk sizes). */
#ifndef CM_UTIL_HEX_H
#define CM_UTIL_HEX_H

/* Value of the hex digit c (either case), or -1 when c is not one. */
static inline int cm__hex_digit(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

#endif
