/*
 * libFuzzer harness of the HTTP/1.1 codec.  The first byte picks the target:
 *   0 request head (+ chunked body), 1 response head (+ chunked body),
 *   2 chunked body alone, 3 multipart body, 4 header params / URL decoding,
 *   5 header blocks given to replies (the header-injection check).
 * Beyond "no crash, no over-read" it checks the codec's promises: views
 * inside the input, feeding in two pieces gives the same answer, the
 * incremental scanner (fed in three pieces) agrees with the one-shot parser,
 * and the normalised path of a request is canonical (normalising it again
 * changes nothing) and never longer than the raw path.
 */
#include <stdlib.h>
#include <string.h>

#include "cymongoose.h"
#include "http/internal.h"

#define CHECK(x) \
  do {           \
    if (!(x)) __builtin_trap(); \
  } while (0)

static void in_bounds(struct cm_str s, const char *buf, size_t len) {
  if (s.buf == NULL) {
    CHECK(s.len == 0);
    return;
  }
  CHECK(s.buf >= buf && s.buf <= buf + len && s.len <= (size_t) (buf + len - s.buf));
}

/* The streamed decoder (cm_http_chunked_stream) fed raw[0..len) in two
 * pieces, its reader taking at most 7 decoded bytes after each call: the
 * one-shot answer want and, when the body ended, the same body (decoded:
 * want_body[0..want_len)) and the bytes after it left in the buffer. */
static void check_chunked_stream(const char *raw, size_t len, size_t split,
                                 const struct cm_http_limits *lim, int want,
                                 const char *want_body, size_t want_len, size_t want_in) {
  struct cm_http_chunked st;
  cm_http_chunked_init(&st);
  struct cm_buf b = {0};
  char *got = malloc(len + 1);
  if (got == NULL) return;
  size_t ready = 0, n = 0, fed = 0;
  uint64_t total = 0;
  int r = 0;
  for (int piece = 0; piece < 2 && r == 0; piece++) {
    size_t upto = piece == 0 ? split : len;
    if (cm_buf_append(&b, raw + fed, upto - fed) != 0) goto done;
    fed = upto;
    for (;;) {
      r = cm_http_chunked_stream(&st, &b, &ready, &total, lim);
      CHECK(ready <= b.len && total == n + ready);
      size_t k = ready < 7 ? ready : 7;
      if (k == 0) break;
      memcpy(got + n, cm_buf_data(&b), k);
      n += k;
      cm_buf_delete(&b, 0, k);
      ready -= k;
    }
  }
  CHECK(r == want);
  if (r == 1) {
    if (cm_buf_append(&b, raw + fed, len - fed) != 0) goto done; /* the rest, unread */
    CHECK(n == want_len && memcmp(got, want_body, n) == 0);
    CHECK(b.len == len - want_in && memcmp(cm_buf_data(&b), raw + want_in, b.len) == 0);
  }
done:
  free(got);
  cm_buf_free(&b);
}

static void check_chunked(char *body, size_t len, size_t split) {
  struct cm_http_limits lim = {.max_body = 1 << 20, .max_head = 512, .max_chunk_line = 64};
  char *copy = malloc(len + 1);
  char *raw = malloc(len + 1);
  if (copy == NULL || raw == NULL) {
    free(copy);
    free(raw);
    return;
  }
  memcpy(copy, body, len);
  memcpy(raw, body, len);
  struct cm_http_chunked a, b;
  cm_http_chunked_init(&a);
  cm_http_chunked_init(&b);
  int ra = cm_http_chunked_decode(&a, body, len, &lim);
  if (split > len) split = len;
  int rb = cm_http_chunked_decode(&b, copy, split, &lim);
  if (rb == 0) rb = cm_http_chunked_decode(&b, copy, len, &lim);
  CHECK(ra == rb);
  if (ra == 1) {
    CHECK(a.in == b.in && a.out == b.out && a.out <= a.in && a.in <= len);
    CHECK(memcmp(body, copy, a.out) == 0);
  }
  check_chunked_stream(raw, len, split, &lim, ra, body, a.out, a.in);
  free(copy);
  free(raw);
}

/* The scanner fed buf in pieces [0, a), [0, b), [0, len): each answer is 0
 * or the one-shot answer on the same bytes; the last one is the one-shot
 * answer, unless that is an error still inside an unfinished last line. */
static void check_scan(int is_request, const char *buf, size_t len, size_t a, size_t b,
                       const struct cm_http_limits *lim, int whole) {
  struct cm_http_scan st;
  cm_http_scan_init(&st);
  struct cm_http_msg hm, one;
  size_t cuts[3] = {a < len ? a : len, b < len ? b : len, len};
  int r = 0;
  for (size_t i = 0; i < 3 && r == 0; i++) {
    if (i > 0 && cuts[i] < cuts[i - 1]) continue;
    r = is_request ? cm_http_scan_request(&st, buf, cuts[i], &hm, lim)
                   : cm_http_scan_response_to(&st, cm_str_n(NULL, 0), buf, cuts[i], &hm, lim);
    int o = is_request ? cm_http_parse_request(buf, cuts[i], &one, lim)
                       : cm_http_parse_response(buf, cuts[i], &one, lim);
    CHECK(r == 0 || r == o);
  }
  if (r == whole) return;
  CHECK(r == 0 && whole < 0 && (len == 0 || buf[len - 1] != '\n'));
}

static void check_path(struct cm_str uri) {
  char out[300], again[300];
  int n = cm_http_normalize_path(uri, out, uri.len + 1 < sizeof(out) ? uri.len + 1 : sizeof(out));
  if (n < 0 || uri.len + 1 > sizeof(out)) return;
  CHECK((size_t) n <= uri.len && out[0] == '/' && strlen(out) == (size_t) n);
  CHECK(strstr(out, "//") == NULL && strstr(out, "/./") == NULL && strstr(out, "/../") == NULL);
  /* an already normal path (with '%' escaped again) is its own form */
  if (memchr(out, '%', (size_t) n) == NULL) {
    int m = cm_http_normalize_path(cm_str_n(out, (size_t) n), again, sizeof(again));
    CHECK(m == n && memcmp(out, again, (size_t) n) == 0);
  }
}

static void check_head(int is_request, const char *buf, size_t len, size_t split) {
  struct cm_http_msg hm, hm2;
  struct cm_http_limits lim = {.max_head = 2048, .max_headers = 16, .max_uri = 256, .max_body = 1 << 20};
  int r = is_request ? cm_http_parse_request(buf, len, &hm, &lim)
                     : cm_http_parse_response(buf, len, &hm, &lim);
  if (split > len) split = len;
  int r2 = is_request ? cm_http_parse_request(buf, split, &hm2, &lim)
                      : cm_http_parse_response(buf, split, &hm2, &lim);
  CHECK(r2 == 0 || r2 == r);
  check_scan(is_request, buf, len, split / 2, split, &lim, r);
  if (r < 0) CHECK(hm.error != NULL && cm_http_err_status(r) >= 400);
  if (r <= 0) return;
  CHECK((size_t) r <= len);
  in_bounds(hm.method, buf, len);
  /* absolute-form with an empty path reads as the static "/" */
  if (!(hm.uri.len == 1 && hm.uri.buf[0] == '/' && hm.target.len > 0 && hm.target.buf[0] != '/')) {
    in_bounds(hm.uri, buf, len);
  }
  in_bounds(hm.target, buf, len);
  CHECK(hm.path.buf == NULL);
  if (is_request) check_path(hm.uri);
  in_bounds(hm.query, buf, len);
  in_bounds(hm.proto, buf, len);
  in_bounds(hm.reason, buf, len);
  in_bounds(hm.head, buf, len);
  in_bounds(hm.body, buf, len);
  in_bounds(hm.message, buf, len);
  CHECK(hm.num_headers <= 16);
  for (size_t i = 0; i < hm.num_headers; i++) {
    in_bounds(hm.headers[i].name, buf, len);
    in_bounds(hm.headers[i].value, buf, len);
    CHECK(hm.headers[i].name.len > 0);
  }
  CHECK(hm.head.buf + hm.head.len == buf + r);
  if (hm.framing == CM_HTTP_BODY_LENGTH) CHECK(hm.body.len <= hm.content_length);
  (void) cm_http_get_header(&hm, "content-type");
  (void) cm_http_header_has_token(&hm, "connection", "close");
  if (hm.framing == CM_HTTP_BODY_CHUNKED) {
    char *body = malloc(len - (size_t) r + 1);
    if (body == NULL) return;
    memcpy(body, buf + r, len - (size_t) r);
    check_chunked(body, len - (size_t) r, split);
    free(body);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  int mode = data[0] % 6;
  size_t split = data[1];
  const char *buf = (const char *) data + 2;
  size_t len = size - 2;
  /* an exact-size heap copy, so any over-read hits ASan's redzone */
  char *copy = malloc(len + 1);
  if (copy == NULL) return 0;
  memcpy(copy, buf, len);
  switch (mode) {
    case 0:
    case 1:
      check_head(mode == 0, copy, len, split);
      break;
    case 2:
      check_chunked(copy, len, split);
      break;
    case 3: {
      struct cm_str body = cm_str_n(copy, len);
      struct cm_http_part part;
      size_t ofs = 0;
      int n = 0;
      while ((ofs = cm_http_parse_multipart(body, ofs, &part)) != 0 && n++ < 1000) {
        CHECK(ofs <= len);
        in_bounds(part.name, copy, len);
        in_bounds(part.filename, copy, len);
        in_bounds(part.body, copy, len);
      }
      break;
    }
    case 5: {
      /* A block that passes the check must parse as header lines. */
      copy[len] = '\0';
      struct cm__http_block bi;
      if (strlen(copy) == len && cm__http_scan_block(copy, &bi)) {
        CHECK(bi.len == len); /* the reply copies exactly what was checked */
        size_t n = len + 64;
        char *req = malloc(n);
        if (req == NULL) break;
        memcpy(req, "GET / HTTP/1.1\r\nHost: h\r\n", 25);
        memcpy(req + 25, copy, len);
        size_t k = 25 + len;
        if (bi.needs_crlf) {
          memcpy(req + k, "\r\n", 2);
          k += 2;
        }
        memcpy(req + k, "\r\n", 2);
        k += 2;
        struct cm_http_msg hm;
        struct cm_http_limits lim = {.max_head = 1 << 20, .max_body = UINT64_MAX / 2};
        int r = cm_http_parse_request(req, k, &hm, &lim);
        /* only semantic refusals (Host, framing, header count) may remain,
         * never one about the shape of a line */
        static const char *const line_errors[] = {
            "bare CR", "bare LF", "obs-fold or whitespace before a header", "whitespace before colon",
            "invalid character in header name", "empty header name", "control character in header value"};
        CHECK(r != 0);
        if (r < 0) {
          for (size_t e = 0; e < sizeof(line_errors) / sizeof(line_errors[0]); e++) {
            CHECK(strcmp(hm.error, line_errors[e]) != 0);
          }
        }
        free(req);
      }
      break;
    }
    default: {
      size_t cut = split < len ? split : len;
      struct cm_str v = cm_str_n(copy, cut), var = cm_str_n(copy + cut, len - cut);
      in_bounds(cm_http_get_header_var(v, var), copy, len);
      (void) cm_http_has_token(v, "close");
      char out[64];
      long r = cm_url_decode(copy, len, out, sizeof(out), true);
      CHECK(r < (long) sizeof(out) && (r >= 0 || r == CM_EINVAL || r == CM_ENOSPC));
      r = cm_http_get_var(v, "a", out, sizeof(out));
      CHECK(r < (long) sizeof(out) && (r >= 0 || r == CM_ENOENT || r == CM_ENOSPC));
      break;
    }
  }
  free(copy);
  return 0;
}
