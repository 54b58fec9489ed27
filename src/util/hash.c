/* Digests and HMAC through OpenSSL, CRC-32 through zlib.  Hand-rolled
 * crypto is a liability; these are thin, allocation-free wrappers. */
#include <limits.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <zlib.h>

#include "cymongoose.h"

static int digest(const EVP_MD *md, const void *data, size_t n, uint8_t *out, size_t outlen) {
  unsigned int got = 0;
  /* EVP_Digest reads data only when n > 0; give it a valid pointer anyway */
  if (EVP_Digest(n == 0 ? (const void *)"" : data, n, out, &got, md, NULL) == 1 && got == outlen)
    return 0;
  memset(out, 0, outlen);
  return CM_EIO;
}

int cm_md5(const void *data, size_t n, uint8_t out[16]) { return digest(EVP_md5(), data, n, out, 16); }
int cm_sha1(const void *data, size_t n, uint8_t out[20]) { return digest(EVP_sha1(), data, n, out, 20); }
int cm_sha256(const void *data, size_t n, uint8_t out[32]) {
  return digest(EVP_sha256(), data, n, out, 32);
}

int cm_hmac_sha256(const void *key, size_t keylen, const void *data, size_t n, uint8_t out[32]) {
  unsigned int got = 0;
  if (keylen > INT_MAX) return memset(out, 0, 32), CM_EINVAL;
  if (HMAC(EVP_sha256(), keylen == 0 ? "" : key, (int)keylen, n == 0 ? (const uint8_t *)"" : data, n,
           out, &got) != NULL && got == 32)
    return 0;
  memset(out, 0, 32);
  return CM_EIO;
}

uint32_t cm_crc32(uint32_t crc, const void *data, size_t n) {
  const Bytef *p = data;
  uLong c = crc;
  while (n > 0) { /* zlib takes uInt lengths */
    uInt chunk = n > UINT_MAX ? UINT_MAX : (uInt)n;
    c = crc32(c, p, chunk);
    p += chunk;
    n -= chunk;
  }
  return (uint32_t)c;
}
