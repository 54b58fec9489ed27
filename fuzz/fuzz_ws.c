/*
 * libFuzzer harness for the WebSocket codecs: the frame parser over a
 * stream of frames (with the message rules, unmasking, UTF-8 and close
 * payloads), and the Sec-WebSocket-Extensions parsers.  Besides "no crash,
 * no read past the input", it checks invariants: headers re-encode to the
 * same bytes when minimal, no prefix of a valid header is an error, the
 * validator agrees with itself when fed in pieces, formatted negotiation
 * results parse back to themselves.
 *
 * Also the permessage-deflate state: arbitrary data through the
 * decompressor (with a small message limit), and the input compressed and
 * decompressed back.
 *
 * Input: byte 0 selects the mode (top 2 bits) and options, the rest is the
 * data.
 */
#include <stdlib.h>
#include <string.h>

#include "cymongoose.h"

#define CHECK(cond) \
  do {              \
    if (!(cond)) abort(); \
  } while (0)

static void fuzz_frames(uint8_t opts, uint8_t *buf, size_t len) {
  bool expect_masked = (opts & 1) != 0;
  struct cm_ws_limits lim = {(opts & 2) ? 300 : 0, (opts & 4) ? 1000 : 0,
                             (uint8_t)((opts & 8) ? CM_WS_RSV1 : 0)};
  struct cm_ws_msg_state ms = {0};
  size_t off = 0;
  while (off < len) {
    struct cm_ws_frame f;
    int r = cm_ws_parse_frame(buf + off, len - off, &f, &lim, expect_masked);
    if (r < 0) {
      int code = cm_ws_error_close_code(r);
      CHECK(code == 1002 || code == 1007 || code == 1009);
      CHECK(cm_ws_strerror(r) != NULL);
      return;
    }
    if (r == 0) return;
    CHECK(r >= 2 && r <= CM_WS_MAX_HEADER && r == f.header_len);
    CHECK(f.first_byte == buf[off]);
    for (int k = 0; k < r; k++) {
      struct cm_ws_frame g;
      CHECK(cm_ws_parse_frame(buf + off, (size_t)k, &g, &lim, expect_masked) == 0);
    }
    uint8_t hdr[CM_WS_MAX_HEADER];
    size_t n = cm_ws_encode_header(hdr, f.first_byte, f.payload_len, f.masked ? f.mask : NULL);
    size_t minimal_len = (f.payload_len < 126 ? 2 : f.payload_len <= 0xFFFF ? 4 : 10) + (f.masked ? 4 : 0);
    CHECK(n == minimal_len);
    if (n == (size_t)r) CHECK(memcmp(hdr, buf + off, n) == 0);

    if (!cm_ws_frame_complete(&f, len - off)) return;
    uint8_t *payload = buf + off + f.header_len;
    size_t plen = (size_t)f.payload_len;
    /* Unmask in two pieces, the way a streaming caller would. */
    size_t cut = plen / 3;
    cm_ws_mask(payload, cut, f.mask, 0);
    cm_ws_mask(payload + cut, plen - cut, f.mask, cut);

    if (cm_ws_msg_frame(&ms, &f, &lim) < 0) return;
    if (f.opcode == CM_WS_OP_CLOSE) {
      uint16_t code;
      const char *reason;
      size_t rlen;
      if (cm_ws_parse_close(payload, plen, &code, &reason, &rlen) == 0) {
        CHECK(rlen + 2 <= plen || plen == 0);
        uint8_t out[CM_WS_MAX_CONTROL_PAYLOAD];
        if (plen > 0) {
          size_t olen = cm_ws_close_payload(out, code, reason, rlen);
          CHECK(olen == plen && memcmp(out, payload, plen) == 0);
        }
      }
      return;
    }
    if (ms.opcode == CM_WS_OP_TEXT && ms.rsv == 0) {
      if (cm_ws_msg_text(&ms, payload, plen, f.fin) < 0) return;
    }
    if (f.fin && f.opcode <= CM_WS_OP_BINARY) cm_ws_msg_end(&ms);
    off += f.header_len + plen;
  }
}

static void fuzz_utf8(const uint8_t *p, size_t n) {
  uint32_t st = 0;
  int whole = cm_utf8_validate(&st, p, n);
  for (size_t cut = 0; cut <= n && cut < 64; cut++) {
    uint32_t s2 = 0;
    int r = cm_utf8_validate(&s2, p, cut);
    if (r != CM_UTF8_INVALID) r = cm_utf8_validate(&s2, p + cut, n - cut);
    CHECK(r == whole);
  }
  size_t good = cm_utf8_valid_prefix(p, n);
  CHECK(good <= n);
  CHECK(cm_utf8_valid(p, good));
  CHECK((good == n) == (whole == CM_UTF8_OK));
}

static void check_formats_back(const struct cm_ws_deflate_params *a) {
  char out[CM_WS_DEFLATE_FORMAT_MAX];
  int n = cm_ws_deflate_format(a, out, sizeof(out));
  CHECK(n > 0);
  size_t pos = 0, nl, pl;
  const char *name, *params;
  CHECK(cm_ws_ext_next(out, (size_t)n, &pos, &name, &nl, &params, &pl) == 1);
  struct cm_ws_deflate_params b;
  CHECK(cm_ws_deflate_parse(params, pl, true, &b) == 0);
  CHECK(memcmp(a, &b, sizeof(b)) == 0);
}

static void fuzz_extensions(uint8_t opts, const uint8_t *data, size_t len) {
  const char *h = (const char *)data;
  size_t pos = 0, nl, pl;
  const char *name, *params;
  int r;
  while ((r = cm_ws_ext_next(h, len, &pos, &name, &nl, &params, &pl)) == 1) {
    CHECK(nl > 0 && name >= h && name + nl <= h + len);
    CHECK(params >= h && params + pl <= h + len);
    struct cm_ws_deflate_params p;
    (void)cm_ws_deflate_parse(params, pl, (opts & 1) != 0, &p);
  }
  CHECK(pos <= len);
  struct cm_ws_deflate_opts o = {(opts & 2) != 0, (opts & 4) != 0, (uint8_t)(opts & 8 ? 10 : 0),
                                 (uint8_t)(opts & 16 ? 12 : 0)};
  struct cm_ws_deflate_params a;
  memset(&a, 0, sizeof(a));
  if (cm_ws_deflate_accept(h, len, &o, &a) == 1) check_formats_back(&a);
  memset(&a, 0, sizeof(a));
  if (cm_ws_deflate_check_response(h, len, &o, &a) == 1) check_formats_back(&a);
}

static void fuzz_deflate(uint8_t opts, const uint8_t *p, size_t n) {
  struct cm_ws_deflate_params params = {(opts & 1) != 0, (opts & 2) != 0,
                                        (uint8_t)(opts & 4 ? 9 : 0), 0, false};
  struct cm_ws_deflate *rx = cm_ws_deflate_new(&params, true, -1);
  struct cm_ws_deflate *tx = cm_ws_deflate_new(&params, false, (opts >> 3) & 7);
  struct cm_buf out = {0}, z = {0};
  if (rx == NULL || tx == NULL) goto done;
  /* Arbitrary bytes as a compressed message in two fragments. */
  size_t cut = n / 2;
  uint64_t limit = 4096;
  int r = cm_ws_deflate_decompress(rx, p, cut, false, &out, limit);
  if (r == 0) r = cm_ws_deflate_decompress(rx, p + cut, n - cut, true, &out, limit);
  CHECK(r == 0 || r == CM_WS_E_INFLATE || r == CM_WS_E_MESSAGE_TOO_BIG);
  CHECK(out.len <= limit + 16 * 1024);
  /* Round trip on fresh state, twice so that context takeover matters. */
  cm_ws_deflate_free(rx);
  rx = cm_ws_deflate_new(&params, true, -1);
  if (rx == NULL) goto done;
  for (int i = 0; i < 2; i++) {
    z.len = 0;
    out.len = 0;
    CHECK(cm_ws_deflate_compress(tx, p, n, &z) == 0);
    CHECK(z.len > 0);
    CHECK(cm_ws_deflate_decompress(rx, cm_buf_data(&z), z.len, true, &out, UINT64_MAX) == 0);
    CHECK(out.len == n && (n == 0 || memcmp(cm_buf_data(&out), p, n) == 0));
  }
done:
  cm_buf_free(&out);
  cm_buf_free(&z);
  cm_ws_deflate_free(rx);
  cm_ws_deflate_free(tx);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  uint8_t opts = data[0];
  data++, size--;
  /* A private, exactly-sized copy: the codecs unmask in place, and ASan
   * catches any read past its end. */
  uint8_t *copy = malloc(size ? size : 1);
  if (copy == NULL) return 0;
  if (size > 0) memcpy(copy, data, size);
  switch (opts >> 6) {
    case 0:
      fuzz_frames(opts, copy, size);
      break;
    case 1:
      fuzz_deflate(opts, copy, size);
      break;
    case 2:
      fuzz_utf8(copy, size);
      break;
    default:
      fuzz_extensions(opts, copy, size);
      break;
  }
  free(copy);
  return 0;
}
