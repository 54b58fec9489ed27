/*
 * libFuzzer harness for the JSON scanner and the JSON-RPC dispatcher.
 * Input: "<path>\n<document>"; without a newline the path is "$".  The
 * document is copied into an exact-size heap block so that ASan reports any
 * read past its end.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "cymongoose.h"

static void answer(struct cm_rpc_req *r) {
  if (r->params.len > 0) {
    cm_rpc_ok(r, r->params);
  } else {
    cm_rpc_err(r, 1, "no params");
  }
}

static bool within(struct cm_str v, const char *buf, size_t len) {
  return v.buf >= buf && v.len <= len && v.buf + v.len <= buf + len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char path[128] = "$";
  const uint8_t *nl = memchr(data, '\n', size < sizeof(path) ? size : sizeof(path));
  if (nl != NULL) {
    size_t plen = (size_t)(nl - data);
    memcpy(path, data, plen);
    path[plen] = '\0';
    size -= plen + 1;
    data = nl + 1;
  }
  char *doc = malloc(size == 0 ? 1 : size);
  memcpy(doc, data, size);
  struct cm_str json = cm_str_n(doc, size), v;

  int depths[] = {1, 3, CM_JSON_MAX_DEPTH};
  for (size_t i = 0; i < 3; i++) {
    int rc = cm_json_find_depth(json, path, depths[i], &v);
    if (rc == 0) {
      assert(within(v, doc, size) && v.len > 0);
      /* a found value is itself a valid document */
      assert(cm_json_check(v, CM_JSON_MAX_DEPTH) == 0);
    }
  }
  int rc = cm_json_find(json, path, &v);
  if (rc == 0) {
    char *out = malloc(v.len);
    long n = cm_json_unescape(v, out, v.len);
    assert(n < 0 ? v.buf[0] != '"' : (size_t)n <= v.len);
    free(out);
    double d;
    int64_t l;
    bool b;
    (void)cm_json_get_num(json, path, &d);
    (void)cm_json_get_long(json, path, &l);
    (void)cm_json_get_bool(json, path, &b);
  }
  if (cm_json_check(json, 0) == 0) {
    struct cm_str k, m;
    size_t count = 0;
    for (size_t ofs = 0; (ofs = cm_json_next(json, ofs, &k, &m)) != 0; count++) {
      assert(ofs <= size && within(m, doc, size));
      assert(cm_json_check(m, CM_JSON_MAX_DEPTH) == 0);
      assert(count < size);
    }
  }

  /* escaping any bytes gives a string token that unescapes to them */
  size_t need = (size_t)cm_json_escape(json, NULL, 0);
  char *esc = malloc(need);
  assert(cm_json_escape(json, esc, need) == (long)need);
  char *back = malloc(need);
  long n = cm_json_unescape(cm_str_n(esc, need), back, need);
  assert(n == (long)size && (size == 0 || memcmp(back, doc, size) == 0));
  free(esc);
  free(back);

  /* the dispatcher answers with valid JSON or nothing */
  struct cm_rpc rpc = {0};
  cm_rpc_add(&rpc, "#", answer, NULL);
  struct cm_buf out = {0};
  if (cm_rpc_process(&rpc, json, &out) == 0 && out.len > 0)
    assert(cm_json_check(cm_str_n((char *)cm_buf_data(&out), out.len), CM_JSON_DEPTH_CAP) == 0);
  cm_buf_free(&out);
  cm_rpc_free(&rpc);
  free(doc);
  return 0;
}
