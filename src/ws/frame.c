/*
 * WebSocket frame codec (RFC 6455 5): header parsing and encoding, masking,
 * and the per-message rules that span frames.  Pure: no I/O, no allocation.
 *
 *  0                   1                   2                   3
 *  +-+-+-+-+-------+-+-------------+-------------------------------+
 *  |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
 *  |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
 *  |N|V|V|V|       |S|             |   (if payload len==126/127)   |
 *  +-+-+-+-+-------+-+-------------+-------------------------------+
 *  |                               |  Masking-key, if MASK set     |
 */
#include <string.h>

#include "cymongoose.h"
#include "ws/internal.h"

int cm_ws_error_close_code(int err) {
  switch (err) {
    case CM_WS_E_FRAME_TOO_BIG:
    case CM_WS_E_MESSAGE_TOO_BIG:
      return CM_WS_CLOSE_TOO_BIG;
    case CM_WS_E_UTF8:
    case CM_WS_E_INFLATE:
      return CM_WS_CLOSE_INVALID_DATA;
    case CM_WS_E_RSV:
    case CM_WS_E_OPCODE:
    case CM_WS_E_CONTROL_TOO_LONG:
    case CM_WS_E_CONTROL_FRAGMENTED:
    case CM_WS_E_LENGTH:
    case CM_WS_E_UNMASKED:
    case CM_WS_E_MASKED:
    case CM_WS_E_CONTINUATION:
    case CM_WS_E_UNFINISHED:
    case CM_WS_E_CLOSE_LENGTH:
    case CM_WS_E_CLOSE_CODE:
    case CM_WS_E_RSV_PLACEMENT:
      return CM_WS_CLOSE_PROTOCOL_ERROR;
    default:
      return CM_WS_CLOSE_INTERNAL_ERROR;
  }
}

const char *cm_ws_strerror(int err) {
  switch (err) {
    case CM_WS_E_RSV: return "reserved bit set without a negotiated extension";
    case CM_WS_E_OPCODE: return "reserved opcode";
    case CM_WS_E_CONTROL_TOO_LONG: return "control frame payload longer than 125 bytes";
    case CM_WS_E_CONTROL_FRAGMENTED: return "fragmented control frame";
    case CM_WS_E_LENGTH: return "64-bit payload length with the top bit set";
    case CM_WS_E_UNMASKED: return "unmasked frame from a client";
    case CM_WS_E_MASKED: return "masked frame from a server";
    case CM_WS_E_FRAME_TOO_BIG: return "frame too big";
    case CM_WS_E_MESSAGE_TOO_BIG: return "message too big";
    case CM_WS_E_UTF8: return "invalid UTF-8 in text";
    case CM_WS_E_CONTINUATION: return "continuation frame without a message to continue";
    case CM_WS_E_UNFINISHED: return "new data frame before the previous message finished";
    case CM_WS_E_CLOSE_LENGTH: return "close frame payload of 1 byte";
    case CM_WS_E_CLOSE_CODE: return "invalid close code";
    case CM_WS_E_RSV_PLACEMENT: return "extension bit on a control or continuation frame";
    case CM_WS_E_INFLATE: return "invalid compressed data";
    case CM_WS_E_INTERNAL: return "out of memory or compressor failure";
    default: return "unknown WebSocket error";
  }
}

static uint64_t limit_or(uint64_t v, uint64_t dflt) { return v == 0 ? dflt : v; }

static bool is_control(uint8_t opcode) { return (opcode & 0x08) != 0; }

static bool opcode_known(uint8_t op) {
  return op <= CM_WS_OP_BINARY || (op >= CM_WS_OP_CLOSE && op <= CM_WS_OP_PONG);
}

int cm_ws_parse_frame(const uint8_t *buf, size_t len, struct cm_ws_frame *f,
                      const struct cm_ws_limits *lim, bool expect_masked) {
  if (len < 2) return 0;
  uint8_t b0 = buf[0], b1 = buf[1];
  uint8_t opcode = b0 & 0x0F, rsv = b0 & 0x70;
  bool fin = (b0 & CM_WS_FIN) != 0, masked = (b1 & 0x80) != 0;
  uint8_t allowed_rsv = lim == NULL ? 0 : (uint8_t)(lim->allowed_rsv & 0x70);

  /* Everything checkable from the first two bytes is checked before
   * waiting for the rest, so garbage is rejected as early as possible. */
  if (!opcode_known(opcode)) return CM_WS_E_OPCODE;
  if (rsv & ~allowed_rsv) return CM_WS_E_RSV;
  if (rsv != 0 && (is_control(opcode) || opcode == CM_WS_OP_CONTINUE))
    return CM_WS_E_RSV_PLACEMENT;
  if (masked != expect_masked) return masked ? CM_WS_E_MASKED : CM_WS_E_UNMASKED;
  uint8_t len7 = b1 & 0x7F;
  if (is_control(opcode)) {
    if (!fin) return CM_WS_E_CONTROL_FRAGMENTED;
    if (len7 > CM_WS_MAX_CONTROL_PAYLOAD) return CM_WS_E_CONTROL_TOO_LONG;
  }

  size_t hlen = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + (masked ? 4 : 0);
  if (len < hlen) {
    /* The top bit of a 64-bit length can be judged from its first byte. */
    if (len7 == 127 && len >= 3 && (buf[2] & 0x80)) return CM_WS_E_LENGTH;
    return 0;
  }

  uint64_t plen = len7;
  const uint8_t *p = buf + 2;
  if (len7 == 126) {
    plen = (uint64_t)p[0] << 8 | p[1];
    p += 2;
  } else if (len7 == 127) {
    if (p[0] & 0x80) return CM_WS_E_LENGTH;
    plen = 0;
    for (int i = 0; i < 8; i++) plen = plen << 8 | p[i];
    p += 8;
  }
  uint64_t max_frame = limit_or(lim == NULL ? 0 : lim->max_frame_size, CM_WS_DEFAULT_MAX_FRAME);
  /* A frame the caller could not even address is too big whatever the limit. */
  if (plen > max_frame || plen > (uint64_t)(SIZE_MAX - CM_WS_MAX_HEADER))
    return CM_WS_E_FRAME_TOO_BIG;

  f->first_byte = b0;
  f->opcode = opcode;
  f->rsv = rsv;
  f->fin = fin;
  f->masked = masked;
  if (masked) memcpy(f->mask, p, 4);
  else memset(f->mask, 0, 4);
  f->header_len = (uint8_t)hlen;
  f->payload_len = plen;
  return (int)hlen;
}

bool cm_ws_frame_complete(const struct cm_ws_frame *f, size_t buf_len) {
  return buf_len >= f->header_len && buf_len - f->header_len >= f->payload_len;
}

void cm_ws_mask(uint8_t *p, size_t n, const uint8_t key[4], uint64_t offset) {
  /* The key, rotated to the phase of p[0] and repeated to 8 bytes; then
   * 8 bytes per step through memcpy, which compilers turn into plain
   * unaligned loads and stores (and vectorise) where the CPU allows. */
  uint8_t k8[8];
  for (unsigned i = 0; i < 8; i++) k8[i] = key[(offset + i) & 3];
  uint64_t k;
  memcpy(&k, k8, 8);
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    uint64_t w[4];
    memcpy(w, p + i, 32);
    w[0] ^= k;
    w[1] ^= k;
    w[2] ^= k;
    w[3] ^= k;
    memcpy(p + i, w, 32);
  }
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    w ^= k;
    memcpy(p + i, &w, 8);
  }
  for (; i < n; i++) p[i] ^= k8[i & 7];
}

size_t cm_ws_encode_header(uint8_t out[CM_WS_MAX_HEADER], int first_byte, uint64_t len,
                           const uint8_t *mask) {
  size_t n = 0;
  uint8_t mask_bit = mask != NULL ? 0x80 : 0;
  out[n++] = (uint8_t)(first_byte & 0xFF);
  if (len < 126) {
    out[n++] = (uint8_t)(mask_bit | len);
  } else if (len <= 0xFFFF) {
    out[n++] = (uint8_t)(mask_bit | 126);
    out[n++] = (uint8_t)(len >> 8);
    out[n++] = (uint8_t)len;
  } else {
    out[n++] = (uint8_t)(mask_bit | 127);
    for (int shift = 56; shift >= 0; shift -= 8) out[n++] = (uint8_t)(len >> shift);
  }
  if (mask != NULL) {
    memcpy(out + n, mask, 4);
    n += 4;
  }
  return n;
}

/* ------------------------------------------------------------ messages */
int cm__ws_msg_grow(struct cm_ws_msg_state *s, uint64_t n, const struct cm_ws_limits *lim) {
  uint64_t max = limit_or(lim == NULL ? 0 : lim->max_message_size, CM_WS_DEFAULT_MAX_MESSAGE);
  if (n > max || s->len > max - n) return CM_WS_E_MESSAGE_TOO_BIG;
  s->len += n;
  return 0;
}

int cm_ws_msg_frame(struct cm_ws_msg_state *s, const struct cm_ws_frame *f,
                    const struct cm_ws_limits *lim) {
  if (is_control(f->opcode)) return 0;
  if (f->opcode == CM_WS_OP_CONTINUE) {
    if (s->opcode == 0) return CM_WS_E_CONTINUATION;
  } else {
    if (s->opcode != 0) return CM_WS_E_UNFINISHED;
    s->opcode = f->opcode;
    s->rsv = f->rsv;
    s->len = 0;
    s->utf8 = 0;
  }
  /* A transformed (e.g. compressed) message is counted by its caller, in
   * transformed bytes, through cm__ws_msg_grow(). */
  if (s->rsv == 0) return cm__ws_msg_grow(s, f->payload_len, lim);
  return 0;
}

int cm_ws_msg_text(struct cm_ws_msg_state *s, const uint8_t *p, size_t n, bool fin) {
  int r = cm_utf8_validate(&s->utf8, p, n);
  if (r == CM_UTF8_INVALID || (fin && r != CM_UTF8_OK)) return CM_WS_E_UTF8;
  return 0;
}

void cm_ws_msg_end(struct cm_ws_msg_state *s) {
  s->opcode = 0;
  s->rsv = 0;
  s->len = 0;
  s->utf8 = 0;
}
