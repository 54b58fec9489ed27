/* Unit tests of the JSON-RPC dispatcher (src/util/rpc.c). */
#include <stdio.h>
#include <stdlib.h>

#include "testutil.h"

static void sum(struct cm_rpc_req *r) {
  double a = 0, b = 0;
  if (cm_json_get_num(r->params, "$[0]", &a) != 0 || cm_json_get_num(r->params, "$[1]", &b) != 0) {
    cm_rpc_err(r, CM_RPC_INVALID_PARAMS, "two numbers please");
    return;
  }
  char num[64];
  int n = snprintf(num, sizeof(num), "%g", a + b);
  assert_int_equal(cm_rpc_ok(r, cm_str_n(num, (size_t)n)), 0);
  /* a second answer is refused */
  assert_int_equal(cm_rpc_ok(r, cm_str_c("1")), CM_EALREADY);
  assert_int_equal(cm_rpc_err(r, 1, "x"), CM_EALREADY);
}

static void silent(struct cm_rpc_req *r) { (void)r; }

static int calls;
static void counter(struct cm_rpc_req *r) {
  calls++;
  assert_int_equal(cm_rpc_ok(r, cm_str_c("not json")), CM_EINVAL);
  assert_false(r->answered);
  cm_rpc_ok(r, cm_str_c("{\"n\": [1, 2]}"));
}

static void echo_fn_data(struct cm_rpc_req *r) { cm_rpc_ok(r, cm_str_c((const char *)r->fn_data)); }

/* Runs frame through rpc and compares the response with want. */
static void expect(struct cm_rpc *rpc, const char *frame, const char *want) {
  struct cm_buf out = {0};
  assert_int_equal(cm_rpc_process(rpc, cm_str_c(frame), &out), 0);
  size_t wl = strlen(want);
  if (out.len != wl || (wl > 0 && memcmp(cm_buf_data(&out), want, wl) != 0))
    fail_msg("%s\n got: %.*s\nwant: %s", frame, (int)out.len, (char *)cm_buf_data(&out), want);
  cm_buf_free(&out);
}

static void requests(void **state) {
  (void)state;
  struct cm_rpc rpc = {0};
  assert_int_equal(cm_rpc_add(&rpc, "sum", sum, NULL), 0);
  assert_int_equal(cm_rpc_add(&rpc, "silent", silent, NULL), 0);
  assert_int_equal(cm_rpc_add(&rpc, "count", counter, NULL), 0);
  assert_int_equal(cm_rpc_add(&rpc, "ns.*", echo_fn_data, "\"ns\""), 0);
  assert_int_equal(cm_rpc_add(&rpc, "#", echo_fn_data, "\"any\""), 0);
  assert_int_equal(cm_rpc_add(&rpc, "ns.*", echo_fn_data, "\"ns2\""), 0); /* replaces */

  expect(&rpc, "{\"jsonrpc\":\"2.0\",\"method\":\"sum\",\"params\":[1,2],\"id\":1}",
         "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":3}");
  /* ids of any type are echoed verbatim; "jsonrpc" may be absent */
  expect(&rpc, "{\"id\":\"a\\\"b\",\"method\":\"sum\",\"params\":[1,2]}",
         "{\"jsonrpc\":\"2.0\",\"id\":\"a\\\"b\",\"result\":3}");
  expect(&rpc, "{\"id\":{\"x\":[1]},\"method\":\"sum\",\"params\":[1,2]}",
         "{\"jsonrpc\":\"2.0\",\"id\":{\"x\":[1]},\"result\":3}");
  expect(&rpc, "{\"id\":null,\"method\":\"sum\",\"params\":[1,2]}",
         "{\"jsonrpc\":\"2.0\",\"id\":null,\"result\":3}");
  expect(&rpc, "{\"id\":2,\"method\":\"sum\",\"params\":[1]}",
         "{\"jsonrpc\":\"2.0\",\"id\":2,\"error\":{\"code\":-32602,\"message\":\"two numbers please\"}}");
  expect(&rpc, "{\"id\":3,\"method\":\"silent\"}",
         "{\"jsonrpc\":\"2.0\",\"id\":3,\"error\":{\"code\":-32603,\"message\":\"Internal error: the method did not answer\"}}");
  expect(&rpc, "{\"id\":4,\"method\":\"ns.x\"}", "{\"jsonrpc\":\"2.0\",\"id\":4,\"result\":\"ns2\"}");
  expect(&rpc, "{\"id\":4,\"method\":\"other/x\"}", "{\"jsonrpc\":\"2.0\",\"id\":4,\"result\":\"any\"}");
  calls = 0;
  expect(&rpc, "{\"id\":5,\"method\":\"c\\u006funt\"}",
         "{\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{\"n\": [1, 2]}}");
  assert_int_equal(calls, 1);
  /* notifications run but get no answer, even when silent or unknown */
  expect(&rpc, "{\"method\":\"count\"}", "");
  assert_int_equal(calls, 2);
  expect(&rpc, "{\"method\":\"silent\"}", "");
  cm_rpc_free(&rpc);
  assert_null(rpc.methods);
}

static void errors(void **state) {
  (void)state;
  struct cm_rpc rpc = {0};
  assert_int_equal(cm_rpc_add(&rpc, "sum", sum, NULL), 0);
  expect(&rpc, "{\"id\":1,\"method\":\"nope\"}",
         "{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-32601,\"message\":\"Method not found\"}}");
  expect(&rpc, "{\"method\":\"nope\"}", "");
  expect(&rpc, "{\"id\":1,\"method\":", "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,\"message\":\"Parse error\"}}");
  expect(&rpc, "", "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,\"message\":\"Parse error\"}}");
  expect(&rpc, "42", "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32600,\"message\":\"Invalid Request\"}}");
  expect(&rpc, "{\"id\":7,\"method\":1}",
         "{\"jsonrpc\":\"2.0\",\"id\":7,\"error\":{\"code\":-32600,\"message\":\"Invalid Request\"}}");
  expect(&rpc, "{\"id\":7}",
         "{\"jsonrpc\":\"2.0\",\"id\":7,\"error\":{\"code\":-32600,\"message\":\"Invalid Request\"}}");
  expect(&rpc, "{\"jsonrpc\":\"1.0\",\"id\":7,\"method\":\"sum\"}",
         "{\"jsonrpc\":\"2.0\",\"id\":7,\"error\":{\"code\":-32600,\"message\":\"Invalid Request\"}}");
  expect(&rpc, "[]", "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32600,\"message\":\"Invalid Request\"}}");
  cm_rpc_free(&rpc);
}

static void batches(void **state) {
  (void)state;
  struct cm_rpc rpc = {0};
  assert_int_equal(cm_rpc_add(&rpc, "sum", sum, NULL), 0);
  expect(&rpc, " [ {\"id\":1,\"method\":\"sum\",\"params\":[1,2]}, {\"method\":\"sum\",\"params\":[1,2]},"
               " 5, {\"id\":2,\"method\":\"x\"} ] ",
         "[{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":3},"
         "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32600,\"message\":\"Invalid Request\"}},"
         "{\"jsonrpc\":\"2.0\",\"id\":2,\"error\":{\"code\":-32601,\"message\":\"Method not found\"}}]");
  expect(&rpc, "[{\"method\":\"sum\",\"params\":[1,2]},{\"method\":\"x\"}]", "");
  cm_rpc_free(&rpc);
}

static void json_next(void **state) {
  (void)state;
  struct cm_str doc = cm_str_c(" { \"a\" : [1, \"]\"] , \"b\":{\"c\":\"}\"}, \"d\": -1 } "), k, v;
  const char *keys[] = {"\"a\"", "\"b\"", "\"d\""};
  const char *vals[] = {"[1, \"]\"]", "{\"c\":\"}\"}", "-1"};
  size_t ofs = 0, i = 0;
  while ((ofs = cm_json_next(doc, ofs, &k, &v)) != 0) {
    assert_true(i < 3);
    assert_int_equal(k.len, strlen(keys[i]));
    assert_memory_equal(k.buf, keys[i], k.len);
    assert_int_equal(v.len, strlen(vals[i]));
    assert_memory_equal(v.buf, vals[i], v.len);
    i++;
  }
  assert_int_equal(i, 3);
  assert_int_equal(cm_json_next(cm_str_c("[]"), 0, &k, &v), 0);
  assert_int_equal(cm_json_next(cm_str_c("7"), 0, &k, &v), 0);
  ofs = cm_json_next(cm_str_c("[true]"), 0, &k, &v);
  assert_null(k.buf);
  assert_int_equal(v.len, 4);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(requests),
      cmocka_unit_test(errors),
      cmocka_unit_test(batches),
      cmocka_unit_test(json_next),
  };
  return cmocka_run_group_tests_name("rpc", tests, NULL, NULL);
}
