/*
 * Opening handshake helpers (RFC 6455 4.1, 4.2): Sec-WebSocket-Key checks
 * and the Sec-WebSocket-Accept computation.
 */
#include <string.h>

#include <openssl/sha.h>

#include "cymongoose.h"
#include "ws/internal.h"

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Standard base64 with padding; out must hold 4 * ceil(n / 3) bytes.
 * Shared with the client handshake (its 16-byte key). */
size_t cm__ws_b64_encode(const uint8_t *in, size_t n, char *out) {
  size_t o = 0;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16;
    if (i + 1 < n) v |= (uint32_t)in[i + 1] << 8;
    if (i + 2 < n) v |= in[i + 2];
    out[o++] = b64_alphabet[(v >> 18) & 63];
    out[o++] = b64_alphabet[(v >> 12) & 63];
    out[o++] = i + 1 < n ? b64_alphabet[(v >> 6) & 63] : '=';
    out[o++] = i + 2 < n ? b64_alphabet[v & 63] : '=';
  }
  return o;
}

#define MAX_KEY_LEN 256

int cm_ws_accept_key(const char *key, size_t len, char out[29]) {
  /* Key and GUID are hashed from one stack buffer: the one-shot SHA1()
   * needs no context allocation, and real keys are 24 bytes. */
  char buf[MAX_KEY_LEN + sizeof(CM_WS_GUID)];
  uint8_t digest[SHA_DIGEST_LENGTH];
  if (len > MAX_KEY_LEN) return -1;
  memcpy(buf, key, len);
  memcpy(buf + len, CM_WS_GUID, sizeof(CM_WS_GUID) - 1);
  SHA1((const unsigned char *)buf, len + sizeof(CM_WS_GUID) - 1, digest);
  size_t n = cm__ws_b64_encode(digest, sizeof(digest), out);
  out[n] = '\0';
  return 0;
}

static bool is_b64_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         c == '+' || c == '/';
}

bool cm_ws_key_valid(const char *key, size_t len) {
  /* 16 bytes = 5 groups of 3 + 1 byte: 22 significant characters, "==". */
  if (key == NULL || len != 24 || key[22] != '=' || key[23] != '=') return false;
  for (size_t i = 0; i < 22; i++) {
    if (!is_b64_char(key[i])) return false;
  }
  return true;
}
