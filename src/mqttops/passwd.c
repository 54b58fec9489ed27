/* The password file: PBKDF2-HMAC-SHA-512 hashes with per-user salts. */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cymongoose.h"
#include "opsutil.h"

#define SCHEME "$pbkdf2-sha512$"

struct cm_passwd_user {
  char *name;
  size_t name_len;
  uint32_t iterations;
  uint8_t salt[CM_PASSWD_SALT_LEN];
  uint8_t hash[CM_PASSWD_HASH_LEN];
};

struct cm_passwd {
  struct cm_passwd_user *users;
  size_t n;
  /* Iterations used for unknown users, so that they cost as much as known
   * ones: the largest count in the file. */
  uint32_t dummy_iterations;
};

void cm_passwd_free(struct cm_passwd *p) {
  if (p == NULL) return;
  for (size_t i = 0; i < p->n; i++) free(p->users[i].name);
  OPENSSL_cleanse(p->users, p->n * sizeof(*p->users));
  free(p->users);
  free(p);
}

size_t cm_passwd_count(const struct cm_passwd *p) {
  return p == NULL ? 0 : p->n;
}

static const struct cm_passwd_user *find(const struct cm_passwd *p, struct cm_str user) {
  for (size_t i = 0; i < p->n; i++) {
    const struct cm_passwd_user *u = &p->users[i];
    if (u->name_len == user.len && memcmp(u->name, user.buf, user.len) == 0) return u;
  }
  return NULL;
}

/* Decodes base64 word into exactly n bytes. */
static bool b64_exact(struct cm_str word, uint8_t *out, size_t n) {
  uint8_t tmp[CM_PASSWD_HASH_LEN + 4];
  long got = cm_base64_decode(word.buf, word.len, tmp, sizeof(tmp));
  if (got != (long)n) return false;
  memcpy(out, tmp, n);
  return true;
}

/* Splits s at the first c: *head before, s after. */
static bool split(struct cm_str *s, char c, struct cm_str *head) {
  const char *p = memchr(s->buf, c, s->len);
  if (p == NULL) return false;
  *head = cm_str_n(s->buf, (size_t)(p - s->buf));
  s->len -= (size_t)(p - s->buf) + 1;
  s->buf = p + 1;
  return true;
}

static const char *parse_line(struct cm_str line, struct cm_passwd_user *u) {
  struct cm_str name, field;
  if (!split(&line, ':', &name) || name.len == 0) return "expected NAME:$pbkdf2-sha512$...";
  if (line.len < strlen(SCHEME) || memcmp(line.buf, SCHEME, strlen(SCHEME)) != 0)
    return "unknown hash scheme (expected $pbkdf2-sha512$)";
  line.buf += strlen(SCHEME);
  line.len -= strlen(SCHEME);
  if (!split(&line, '$', &field) || field.len == 0 || field.len > 9)
    return "bad iteration count";
  uint32_t it = 0;
  for (size_t i = 0; i < field.len; i++) {
    if (field.buf[i] < '0' || field.buf[i] > '9') return "bad iteration count";
    it = it * 10 + (uint32_t)(field.buf[i] - '0');
  }
  if (it < CM_PASSWD_MIN_ITERATIONS || it > CM_PASSWD_MAX_ITERATIONS)
    return "iteration count out of range";
  if (!split(&line, '$', &field) || !b64_exact(field, u->salt, CM_PASSWD_SALT_LEN))
    return "bad salt (16 bytes in base64 expected)";
  if (!b64_exact(line, u->hash, CM_PASSWD_HASH_LEN))
    return "bad hash (64 bytes in base64 expected)";
  u->iterations = it;
  u->name = cm_ops_dup(name);
  if (u->name == NULL) return "out of memory";
  u->name_len = name.len;
  return NULL;
}

struct cm_passwd *cm_passwd_parse(struct cm_str text, const char *name, char *err,
                                  size_t err_len) {
  struct cm_passwd *p = calloc(1, sizeof(*p));
  if (p == NULL) {
    cm_ops_err(err, err_len, "%s: out of memory", name);
    return NULL;
  }
  size_t pos = 0, cap = 0;
  unsigned lineno = 0;
  struct cm_str line;
  while (cm_ops_next_line(text, &pos, &line)) {
    lineno++;
    struct cm_str t = cm_ops_trim(line);
    if (t.len == 0 || t.buf[0] == '#') continue;
    if (p->n == cap) {
      size_t ncap = cap == 0 ? 16 : cap * 2;
      struct cm_passwd_user *nu = realloc(p->users, ncap * sizeof(*nu));
      if (nu == NULL) {
        cm_ops_err(err, err_len, "%s:%u: out of memory", name, lineno);
        goto fail;
      }
      p->users = nu;
      cap = ncap;
    }
    struct cm_passwd_user *u = &p->users[p->n];
    memset(u, 0, sizeof(*u));
    const char *why = parse_line(line, u);
    if (why != NULL) {
      cm_ops_err(err, err_len, "%s:%u: %s", name, lineno, why);
      goto fail;
    }
    p->n++;
    if (find(p, cm_str_n(u->name, u->name_len)) != u) {
      cm_ops_err(err, err_len, "%s:%u: duplicate user \"%s\"", name, lineno, u->name);
      goto fail;
    }
    if (u->iterations > p->dummy_iterations) p->dummy_iterations = u->iterations;
  }
  if (p->dummy_iterations == 0) p->dummy_iterations = CM_PASSWD_DEFAULT_ITERATIONS;
  return p;
fail:
  cm_passwd_free(p);
  return NULL;
}

struct cm_passwd *cm_passwd_load(const char *path, char *err, size_t err_len) {
  size_t len;
  char *text = cm_ops_read_file(path, &len, err, err_len);
  if (text == NULL) return NULL;
  struct cm_passwd *p = cm_passwd_parse(cm_str_n(text, len), path, err, err_len);
  OPENSSL_cleanse(text, len);
  free(text);
  return p;
}

static bool derive(struct cm_str password, const uint8_t *salt, uint32_t iterations,
                   uint8_t out[CM_PASSWD_HASH_LEN]) {
  if (iterations > (uint32_t)0x7FFFFFFF || password.len > 0x7FFFFFFF) return false;
  return PKCS5_PBKDF2_HMAC(password.len > 0 ? password.buf : "", (int)password.len, salt,
                           CM_PASSWD_SALT_LEN, (int)iterations, EVP_sha512(),
                           CM_PASSWD_HASH_LEN, out) == 1;
}

bool cm_passwd_check(const struct cm_passwd *p, struct cm_str user, struct cm_str password) {
  if (p == NULL) return false;
  const struct cm_passwd_user *u = find(p, user);
  static const uint8_t dummy_salt[CM_PASSWD_SALT_LEN];
  uint8_t got[CM_PASSWD_HASH_LEN];
  /* Unknown users cost the same work, then fail. */
  if (!derive(password, u != NULL ? u->salt : dummy_salt,
              u != NULL ? u->iterations : p->dummy_iterations, got))
    return false;
  bool ok = u != NULL && CRYPTO_memcmp(got, u->hash, CM_PASSWD_HASH_LEN) == 0;
  OPENSSL_cleanse(got, sizeof(got));
  return ok;
}

int cm_passwd_line(struct cm_str user, struct cm_str password, uint32_t iterations, char *out,
                   size_t out_len) {
  if (iterations == 0) iterations = CM_PASSWD_DEFAULT_ITERATIONS;
  if (iterations < CM_PASSWD_MIN_ITERATIONS || iterations > CM_PASSWD_MAX_ITERATIONS) return CM_EINVAL;
  if (user.len == 0 || memchr(user.buf, ':', user.len) != NULL ||
      memchr(user.buf, '\n', user.len) != NULL || memchr(user.buf, '\r', user.len) != NULL ||
      memchr(user.buf, '\0', user.len) != NULL || user.buf[0] == '#' || user.buf[0] == ' ' ||
      user.buf[0] == '\t')
    return CM_EINVAL;
  uint8_t salt[CM_PASSWD_SALT_LEN], hash[CM_PASSWD_HASH_LEN];
  if (cm_random(salt, sizeof(salt)) != 0 || !derive(password, salt, iterations, hash)) return CM_EIO;
  char salt64[CM_BASE64_ENCODED_LEN(CM_PASSWD_SALT_LEN) + 1];
  char hash64[CM_BASE64_ENCODED_LEN(CM_PASSWD_HASH_LEN) + 1];
  cm_base64_encode(salt, sizeof(salt), salt64, sizeof(salt64));
  cm_base64_encode(hash, sizeof(hash), hash64, sizeof(hash64));
  OPENSSL_cleanse(hash, sizeof(hash));
  int n = snprintf(out, out_len, "%.*s:" SCHEME "%u$%s$%s", (int)user.len, user.buf,
                   (unsigned)iterations, salt64, hash64);
  if (n < 0 || (size_t)n >= out_len) return CM_ENOSPC;
  return n;
}
