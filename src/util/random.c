/* Random bytes and strings from OpenSSL's CSPRNG. */
#include <limits.h>

#include <openssl/rand.h>

#include "cymongoose.h"

int cm_random(void *buf, size_t n) {
  unsigned char *p = buf;
  while (n > 0) { /* RAND_bytes takes an int length */
    int chunk = n > INT_MAX ? INT_MAX : (int)n;
    if (RAND_bytes(p, chunk) != 1) return CM_EIO;
    p += chunk;
    n -= (size_t)chunk;
  }
  return 0;
}

int cm_random_str(char *buf, size_t n) {
  static const char chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  unsigned char pool[64];
  size_t used = sizeof(pool), o = 0;
  while (o < n) {
    if (used == sizeof(pool)) {
      if (cm_random(pool, sizeof(pool)) != 0) return CM_EIO;
      used = 0;
    }
    unsigned char b = pool[used++];
    /* 248 = 4 * 62: rejecting the last 8 values makes every char equally likely */
    if (b < 248) buf[o++] = chars[b % 62];
  }
  return 0;
}
