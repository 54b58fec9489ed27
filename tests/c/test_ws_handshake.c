/* Unit tests of the WebSocket handshake helpers and permessage-deflate
 * negotiation (RFC 6455 4, RFC 7692 7). */
#include "testutil.h"

static void accept_key_rfc_example(void **state) {
  (void)state;
  char out[29];
  const char *key = "dGhlIHNhbXBsZSBub25jZQ==";
  assert_int_equal(cm_ws_accept_key(key, strlen(key), out), 0);
  assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="); /* RFC 6455 1.3 */
  /* Another pair, computed with Python's hashlib and base64. */
  key = "x3JJHMbDL1EzLkh9GBhXDw==";
  assert_int_equal(cm_ws_accept_key(key, strlen(key), out), 0);
  assert_string_equal(out, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
  char longkey[300];
  memset(longkey, 'a', sizeof(longkey));
  assert_int_equal(cm_ws_accept_key(longkey, 256, out), 0);
  assert_int_equal(strlen(out), 28);
  assert_int_equal(cm_ws_accept_key(longkey, 257, out), -1);
}

static void key_validation(void **state) {
  (void)state;
  static const char *good[] = {"dGhlIHNhbXBsZSBub25jZQ==", "AAAAAAAAAAAAAAAAAAAAAA==",
                               "+/+/+/+/+/+/+/+/+/+/+w=="};
  static const char *bad[] = {"",
                              "dGhlIHNhbXBsZSBub25jZQ=",    /* 23 chars */
                              "dGhlIHNhbXBsZSBub25jZQ===",  /* 25 chars */
                              "dGhlIHNhbXBsZSBub25jZQAA",   /* no padding: 18 bytes */
                              "dGhlIHNhbXBsZSBub25jZ===",   /* 15 bytes */
                              "dGhlIHNhbXBsZSBub25j ZQ==",
                              "dGhlIHNhbXBsZSBub25j-Q==",   /* base64url alphabet */
                              "dGhlIHNhbXBsZSBub2=jZQ=="};
  for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
    assert_true(cm_ws_key_valid(good[i], strlen(good[i])));
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    assert_false(cm_ws_key_valid(bad[i], strlen(bad[i])));
  assert_false(cm_ws_key_valid(NULL, 0));
}

/* ----------------------------------------------------- extension lists */
static void ext_list_iteration(void **state) {
  (void)state;
  const char *h = " foo, permessage-deflate; client_max_window_bits ; x=\"a,b;c\" ,, bar;baz=1 ,";
  size_t pos = 0, nl, pl;
  const char *n, *p;
  assert_int_equal(cm_ws_ext_next(h, strlen(h), &pos, &n, &nl, &p, &pl), 1);
  assert_int_equal(nl, 3);
  assert_memory_equal(n, "foo", 3);
  assert_int_equal(pl, 0);
  assert_int_equal(cm_ws_ext_next(h, strlen(h), &pos, &n, &nl, &p, &pl), 1);
  assert_int_equal(nl, 18);
  assert_memory_equal(n, "permessage-deflate", 18);
  const char *want = "client_max_window_bits ; x=\"a,b;c\"";
  assert_int_equal(pl, strlen(want));
  assert_memory_equal(p, want, pl);
  assert_int_equal(cm_ws_ext_next(h, strlen(h), &pos, &n, &nl, &p, &pl), 1);
  assert_memory_equal(n, "bar", 3);
  assert_int_equal(pl, 5);
  assert_memory_equal(p, "baz=1", 5);
  assert_int_equal(cm_ws_ext_next(h, strlen(h), &pos, &n, &nl, &p, &pl), 0);
  assert_int_equal(cm_ws_ext_next(h, strlen(h), &pos, &n, &nl, &p, &pl), 0);

  static const char *malformed[] = {"foo bar", "=x", "foo;", "foo; ", "a; b=\"unterminated",
                                    "a \"q\""};
  for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++) {
    pos = 0;
    int r;
    while ((r = cm_ws_ext_next(malformed[i], strlen(malformed[i]), &pos, &n, &nl, &p, &pl)) == 1) {
    }
    if (r != -1) fail_msg("accepted: %s", malformed[i]);
  }
  pos = 0;
  assert_int_equal(cm_ws_ext_next("", 0, &pos, &n, &nl, &p, &pl), 0);
  pos = 0;
  assert_int_equal(cm_ws_ext_next(" , ,", 4, &pos, &n, &nl, &p, &pl), 0);
}

static int dparse(const char *s, bool resp, struct cm_ws_deflate_params *p) {
  return cm_ws_deflate_parse(s, strlen(s), resp, p);
}

static void deflate_params(void **state) {
  (void)state;
  struct cm_ws_deflate_params p;
  assert_int_equal(dparse("", false, &p), 0);
  assert_false(p.server_no_context_takeover || p.client_no_context_takeover);
  assert_int_equal(p.server_max_window_bits, 0);
  assert_int_equal(dparse("server_no_context_takeover; client_no_context_takeover; "
                          "server_max_window_bits=10; client_max_window_bits",
                          false, &p),
                   0);
  assert_true(p.server_no_context_takeover && p.client_no_context_takeover);
  assert_int_equal(p.server_max_window_bits, 10);
  assert_true(p.client_max_window_bits_bare);
  assert_int_equal(p.client_max_window_bits, 0);
  assert_int_equal(dparse("client_max_window_bits=\"8\";server_max_window_bits = 15", false, &p), 0);
  assert_int_equal(p.client_max_window_bits, 8);
  assert_int_equal(p.server_max_window_bits, 15);
  assert_int_equal(dparse("client_max_window_bits=\"1\\5\"", true, &p), 0);
  assert_int_equal(p.client_max_window_bits, 15);
  assert_int_equal(dparse("Server_No_Context_Takeover", true, &p), 0);

  static const char *bad[] = {
      "client_max_window_bits",                  /* (response) needs a value */
      "server_max_window_bits",                  /* needs a value */
      "server_max_window_bits=7",
      "server_max_window_bits=16",
      "server_max_window_bits=08",
      "server_max_window_bits=+9",
      "server_max_window_bits=\"\"",
      "server_max_window_bits=\"100000000000015\"",
      "server_max_window_bits=9.0",
      "server_no_context_takeover=1",            /* takes no value */
      "client_no_context_takeover=\"\"",
      "server_no_context_takeover; server_no_context_takeover",
      "client_max_window_bits=9; client_max_window_bits=10",
      "unknown_param",
      "x=1",
      "server_no_context_takeover;",
      "server_no_context_takeover client_no_context_takeover",
      "=5",
      "server_max_window_bits=",
      "server_max_window_bits=\"9",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    if (dparse(bad[i], true, &p) != -1) fail_msg("accepted: %s", bad[i]);
  }
  assert_int_equal(dparse("client_max_window_bits", false, &p), 0);
}

static void deflate_server_accepts(void **state) {
  (void)state;
  struct cm_ws_deflate_opts opts = {0};
  struct cm_ws_deflate_params a;
  char out[CM_WS_DEFLATE_FORMAT_MAX];
  /* What browsers send. */
  const char *h = "permessage-deflate; client_max_window_bits";
  assert_int_equal(cm_ws_deflate_accept(h, strlen(h), &opts, &a), 1);
  assert_int_equal(cm_ws_deflate_format(&a, out, sizeof(out)), (int)strlen("permessage-deflate"));
  assert_string_equal(out, "permessage-deflate");

  /* The server's wishes, and limits on what the client asked. */
  opts.server_no_context_takeover = true;
  opts.client_max_window_bits = 12;
  assert_int_equal(cm_ws_deflate_accept(h, strlen(h), &opts, &a), 1);
  cm_ws_deflate_format(&a, out, sizeof(out));
  assert_string_equal(out, "permessage-deflate; server_no_context_takeover; client_max_window_bits=12");

  h = "permessage-deflate; server_max_window_bits=10; client_max_window_bits=14; "
      "client_no_context_takeover";
  assert_int_equal(cm_ws_deflate_accept(h, strlen(h), &opts, &a), 1);
  cm_ws_deflate_format(&a, out, sizeof(out));
  assert_string_equal(out,
                      "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
                      "server_max_window_bits=10; client_max_window_bits=12");

  /* No client_max_window_bits in the offer: none in the response. */
  h = "permessage-deflate";
  assert_int_equal(cm_ws_deflate_accept(h, strlen(h), &opts, &a), 1);
  assert_int_equal(a.client_max_window_bits, 0);
  /* A smaller server window of our own is announced unasked. */
  opts.server_max_window_bits = 11;
  assert_int_equal(cm_ws_deflate_accept(h, strlen(h), &opts, &a), 1);
  assert_int_equal(a.server_max_window_bits, 11);
  h = "permessage-deflate; server_max_window_bits=13";
  assert_int_equal(cm_ws_deflate_accept(h, strlen(h), &opts, &a), 1);
  assert_int_equal(a.server_max_window_bits, 11);
  opts.server_max_window_bits = 0;

  /* Offers we decline are skipped; the first acceptable one wins. */
  memset(&opts, 0, sizeof(opts));
  h = "x-webkit-deflate-frame, permessage-deflate; foo=1, permessage-deflate; "
      "server_max_window_bits=8, permessage-deflate; server_max_window_bits=9, permessage-deflate";
  assert_int_equal(cm_ws_deflate_accept(h, strlen(h), &opts, &a), 1);
  assert_int_equal(a.server_max_window_bits, 9);
  h = "permessage-deflate; foo, x-other";
  assert_int_equal(cm_ws_deflate_accept(h, strlen(h), &opts, &a), 0);
  assert_int_equal(cm_ws_deflate_accept("", 0, &opts, &a), 0);
  h = "permessage-deflate; a=\"";
  assert_int_equal(cm_ws_deflate_accept(h, strlen(h), &opts, &a), -1);
}

static void deflate_client_checks_response(void **state) {
  (void)state;
  struct cm_ws_deflate_opts opts = {0};
  struct cm_ws_deflate_params a;
  char out[CM_WS_DEFLATE_FORMAT_MAX];
  assert_int_equal(cm_ws_deflate_format_offer(&opts, out, sizeof(out)), 42);
  assert_string_equal(out, "permessage-deflate; client_max_window_bits");
  opts.client_no_context_takeover = true;
  opts.server_max_window_bits = 11;
  opts.client_max_window_bits = 13;
  cm_ws_deflate_format_offer(&opts, out, sizeof(out));
  assert_string_equal(out, "permessage-deflate; client_no_context_takeover; "
                           "server_max_window_bits=11; client_max_window_bits=13");
  /* The server answers our own offer. */
  assert_int_equal(cm_ws_deflate_accept(out, strlen(out), &(struct cm_ws_deflate_opts){0}, &a), 1);
  char resp[CM_WS_DEFLATE_FORMAT_MAX];
  cm_ws_deflate_format(&a, resp, sizeof(resp));
  assert_int_equal(cm_ws_deflate_check_response(resp, strlen(resp), &opts, &a), 1);
  assert_int_equal(a.server_max_window_bits, 11);
  assert_int_equal(a.client_max_window_bits, 13);
  assert_true(a.client_no_context_takeover);

  const char *h = "permessage-deflate; server_no_context_takeover; server_max_window_bits=10";
  assert_int_equal(cm_ws_deflate_check_response(h, strlen(h), &opts, &a), 1);
  assert_true(a.server_no_context_takeover);
  /* Our client_max_window_bits=13 binds us when the server is silent. */
  assert_int_equal(a.client_max_window_bits, 13);
  /* Without a window limit of our own, a server may announce its own. */
  struct cm_ws_deflate_opts plain = {0};
  h = "permessage-deflate; server_max_window_bits=12";
  assert_int_equal(cm_ws_deflate_check_response(h, strlen(h), &plain, &a), 1);
  assert_int_equal(a.server_max_window_bits, 12);
  assert_int_equal(a.client_max_window_bits, 0);
  assert_int_equal(cm_ws_deflate_check_response("", 0, &opts, &a), 0);

  static const char *bad[] = {
      "permessage-deflate; server_max_window_bits=12",    /* larger than offered */
      "permessage-deflate; client_max_window_bits=14",    /* larger than offered */
      "permessage-deflate; client_max_window_bits=8",     /* zlib cannot */
      "permessage-deflate; client_max_window_bits",       /* needs a value */
      "permessage-deflate, permessage-deflate",
      "x-unknown",
      "permessage-deflate; mystery",
      "permessage-deflate;",
      "permessage-deflate",                               /* our server window unanswered */
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    if (cm_ws_deflate_check_response(bad[i], strlen(bad[i]), &opts, &a) != -1)
      fail_msg("accepted: %s", bad[i]);
  }
}

static void deflate_format_small_buffers(void **state) {
  (void)state;
  /* The longest output: every parameter, two-digit window bits. */
  struct cm_ws_deflate_params p = {true, true, 10, 11, false};
  char out[CM_WS_DEFLATE_FORMAT_MAX];
  int n = cm_ws_deflate_format(&p, out, sizeof(out));
  assert_true(n > 0);
  assert_int_equal((size_t)n, strlen(out));
  for (size_t cap = 0; cap <= (size_t)n; cap++) {
    assert_int_equal(cm_ws_deflate_format(&p, out, cap), -1);
  }
  assert_int_equal(cm_ws_deflate_format(&p, out, (size_t)n + 1), n);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(accept_key_rfc_example),
      cmocka_unit_test(key_validation),
      cmocka_unit_test(ext_list_iteration),
      cmocka_unit_test(deflate_params),
      cmocka_unit_test(deflate_server_accepts),
      cmocka_unit_test(deflate_client_checks_response),
      cmocka_unit_test(deflate_format_small_buffers),
  };
  return cmocka_run_group_tests_name("ws_handshake", tests, NULL, NULL);
}
