/* Standard base64 (RFC 4648 section 4). */
#include "cymongoose.h"

static const char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

long cm_base64_encode(const void *src, size_t n, char *buf, size_t len) {
  const uint8_t *in = src;
  size_t need = CM_BASE64_ENCODED_LEN(n), o = 0;
  if (buf == NULL) return (long)need; /* measuring */
  if (need >= len) {
    if (len > 0) buf[0] = '\0';
    return CM_ENOSPC;
  }
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16;
    if (i + 1 < n) v |= (uint32_t)in[i + 1] << 8;
    if (i + 2 < n) v |= in[i + 2];
    buf[o++] = alphabet[v >> 18];
    buf[o++] = alphabet[(v >> 12) & 63];
    buf[o++] = i + 1 < n ? alphabet[(v >> 6) & 63] : '=';
    buf[o++] = i + 2 < n ? alphabet[v & 63] : '=';
  }
  buf[o] = '\0';
  return (long)o;
}

static int sextet(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

long cm_base64_decode(const char *src, size_t n, void *buf, size_t len) {
  uint8_t *out = buf;
  size_t pad = 0;
  while (pad < 2 && n > pad && src[n - 1 - pad] == '=') pad++;
  size_t data = n - pad; /* characters that carry bits */
  if (pad > 0 && n % 4 != 0) return CM_EINVAL;
  if (data % 4 == 1) return CM_EINVAL;
  if (pad > 0 && (data % 4) + pad != 4) return CM_EINVAL;
  size_t need = data / 4 * 3 + (data % 4 == 0 ? 0 : data % 4 - 1);
  if (need > len) {
    /* still report invalid input as such */
    for (size_t i = 0; i < data; i++)
      if (sextet(src[i]) < 0) return CM_EINVAL;
    return CM_ENOSPC;
  }
  size_t o = 0;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < data; i++) {
    int v = sextet(src[i]);
    if (v < 0) return CM_EINVAL;
    acc = (acc << 6) | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (uint8_t)(acc >> bits);
      acc &= (1u << bits) - 1;
    }
  }
  return (long)o;
}
