/*
 * libFuzzer harness for URL splitting (src/core/url.c), percent-encoding and
 * form variables (src/util/urlcode.c).  Input: a URL; for http_var, the
 * bytes before the first '\n' (if any) are the variable name.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "cymongoose.h"

static void check_view(struct cm_str v, const char *url, size_t len) {
  assert(v.len == 0 || (v.buf >= url && v.buf + v.len <= url + len));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* the URL functions take C strings: stop at the first NUL */
  char *url = malloc(size + 1);
  memcpy(url, data, size);
  url[size] = '\0';
  size_t len = strlen(url);

  check_view(cm_url_scheme(url), url, len);
  check_view(cm_url_host(url), url, len);
  check_view(cm_url_user(url), url, len);
  check_view(cm_url_pass(url), url, len);
  struct cm_str uri = cm_url_uri(url);
  assert(uri.len > 0); /* at least "/" */
  (void)cm_url_port(url);
  (void)cm_url_is_ssl(url);
  struct cm_addr a;
  (void)cm_aton(cm_url_host(url), &a);
  (void)cm_aton(cm_str_n((const char *)data, size), &a);

  /* encode then decode gives back the input bytes */
  size_t cap = 3 * size + 1;
  char *enc = malloc(cap);
  long elen = cm_url_encode((const char *)data, size, enc, cap);
  assert(elen >= 0 && (size_t)elen < cap && enc[elen] == '\0');
  assert(cm_url_encode((const char *)data, size, NULL, 0) == elen);
  char *dec = malloc(size + 1); /* cm_url_decode adds a NUL */
  long dlen = cm_url_decode(enc, (size_t)elen, dec, size + 1, false);
  assert(dlen == (long)size && (size == 0 || memcmp(dec, data, size) == 0));
  /* and a truncated buffer is still NUL-terminated within its bounds */
  if (cap > 4) {
    size_t small = cap / 2;
    char *part = malloc(small);
    long r = cm_url_encode((const char *)data, size, part, small);
    assert(r == CM_ENOSPC || (r >= 0 && (size_t)r < small));
    assert(memchr(part, '\0', small) != NULL);
    free(part);
  }

  /* http_var over an exact-size copy */
  const uint8_t *nl = memchr(data, '\n', size);
  char name[64] = "a";
  const uint8_t *form = data;
  size_t flen = size;
  if (nl != NULL && (size_t)(nl - data) < sizeof(name)) {
    size_t nlen = (size_t)(nl - data);
    memcpy(name, data, nlen);
    name[nlen] = '\0';
    form = nl + 1;
    flen = size - nlen - 1;
  }
  char *fbuf = malloc(flen == 0 ? 1 : flen);
  memcpy(fbuf, form, flen);
  char *val = malloc(flen == 0 ? 1 : flen);
  long vlen = cm_http_var(cm_str_n(fbuf, flen), name, val, flen);
  assert(vlen == CM_ENOENT || (vlen >= 0 && (size_t)vlen <= flen));
  free(fbuf);
  free(val);
  free(dec);
  free(enc);
  free(url);
  return 0;
}
