/* Test certificates made on the fly with OpenSSL: RSA or ECDSA keys, CAs,
 * intermediates, leaves for localhost/127.0.0.1/::1, and expired ones. */
#ifndef CM_TEST_CERTGEN_H
#define CM_TEST_CERTGEN_H

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

struct test_cert {
  EVP_PKEY *key;
  X509 *x509;
  char *cert_pem; /* NUL-terminated */
  char *key_pem;
};

static char *certgen_bio_str(BIO *bio) {
  char *data = NULL;
  long n = BIO_get_mem_data(bio, &data);
  char *s = malloc((size_t)n + 1);
  memcpy(s, data, (size_t)n);
  s[n] = '\0';
  BIO_free(bio);
  return s;
}

static void certgen_ext(X509 *x, X509 *issuer, int nid, const char *value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
  X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
  if (ext == NULL) abort();
  X509_add_ext(x, ext, -1);
  X509_EXTENSION_free(ext);
}

/*
 * A certificate for cn with an ECDSA P-256 (ec) or RSA-2048 key, signed by
 * issuer (self-signed when NULL), valid from now+from_s to now+to_s.  A CA
 * when is_ca; otherwise a server/client leaf for localhost, 127.0.0.1, ::1.
 */
static struct test_cert certgen_cn(bool ec, const char *cn, int cn_len,
                                   const struct test_cert *issuer, bool is_ca, long from_s,
                                   long to_s);

static struct test_cert certgen(bool ec, const char *cn, const struct test_cert *issuer, bool is_ca,
                                long from_s, long to_s) {
  return certgen_cn(ec, cn, -1, issuer, is_ca, from_s, to_s);
}

/*
 * As certgen(), with a CN of cn_len bytes (a UTF8String holding them as
 * they are, embedded NULs and lengths past the usual 64 included), or,
 * with cn_len -1, the NUL-terminated cn as certgen() puts it.
 */
static struct test_cert certgen_cn(bool ec, const char *cn, int cn_len,
                                   const struct test_cert *issuer, bool is_ca, long from_s,
                                   long to_s) {
  static long serial = 1;
  struct test_cert c = {0};
  c.key = ec ? EVP_EC_gen("P-256") : EVP_RSA_gen(2048);
  c.x509 = X509_new();
  X509 *x = c.x509;
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
  X509_gmtime_adj(X509_getm_notBefore(x), from_s);
  X509_gmtime_adj(X509_getm_notAfter(x), to_s);
  X509_set_pubkey(x, c.key);
  X509_NAME *name = X509_get_subject_name(x);
  if (cn_len < 0)
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
  else if (!X509_NAME_add_entry_by_NID(name, NID_commonName, V_ASN1_UTF8STRING,
                                       (const unsigned char *)cn, cn_len, -1, 0))
    abort();
  X509 *iss = issuer != NULL ? issuer->x509 : x;
  X509_set_issuer_name(x, X509_get_subject_name(iss));
  certgen_ext(x, iss, NID_subject_key_identifier, "hash");
  if (issuer != NULL) certgen_ext(x, iss, NID_authority_key_identifier, "keyid:always");
  if (is_ca) {
    certgen_ext(x, iss, NID_basic_constraints, "critical,CA:TRUE");
    certgen_ext(x, iss, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    certgen_ext(x, iss, NID_basic_constraints, "critical,CA:FALSE");
    certgen_ext(x, iss, NID_ext_key_usage, "serverAuth,clientAuth");
    certgen_ext(x, iss, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1,IP:::1");
  }
  X509_sign(x, issuer != NULL ? issuer->key : c.key, EVP_sha256());
  BIO *b = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(b, x);
  c.cert_pem = certgen_bio_str(b);
  b = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(b, c.key, NULL, NULL, 0, NULL, NULL);
  c.key_pem = certgen_bio_str(b);
  return c;
}

static void certgen_free(struct test_cert *c) {
  EVP_PKEY_free(c->key);
  X509_free(c->x509);
  free(c->cert_pem);
  free(c->key_pem);
  memset(c, 0, sizeof(*c));
}

/* a followed by b, malloc'd. */
static char *certgen_concat(const char *a, const char *b) {
  size_t na = strlen(a), nb = strlen(b);
  char *s = malloc(na + nb + 1);
  memcpy(s, a, na);
  memcpy(s + na, b, nb + 1);
  return s;
}

#endif
