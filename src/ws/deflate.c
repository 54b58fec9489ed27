/*
 * permessage-deflate compression and decompression (RFC 7692 7.2) over
 * zlib raw DEFLATE streams.
 *
 * A message is compressed as DEFLATE blocks flushed with Z_SYNC_FLUSH,
 * which ends the data with an empty stored block (00 00 FF FF); the sender
 * removes those 4 bytes and the receiver appends them back before the last
 * inflate of the message.  With context takeover the same zlib stream
 * continues from message to message, so later messages can refer back to
 * earlier ones; without it the compressor is reset after every message.
 */
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "cymongoose.h"

/* Output is produced this much at a time, which is also how far past the
 * message limit a decompressed message can go before it is stopped. */
#define CHUNK (16 * 1024)

struct cm_ws_deflate {
  z_stream def, inf;
  bool def_ready, inf_ready;
  bool reset_after_message; /* our side agreed to no_context_takeover */
  int window_bits;          /* our compressor's window, 9..15 */
  int level;
  uint64_t inflated;        /* bytes of the current received message so far */
};

static const uint8_t sync_tail[4] = {0x00, 0x00, 0xFF, 0xFF};

struct cm_ws_deflate *cm_ws_deflate_new(const struct cm_ws_deflate_params *agreed, bool is_server,
                                        int level) {
  struct cm_ws_deflate *d = calloc(1, sizeof(*d));
  if (d == NULL) return NULL;
  uint8_t bits = is_server ? agreed->server_max_window_bits : agreed->client_max_window_bits;
  d->window_bits = bits == 0 ? 15 : bits < 9 ? 9 : bits; /* zlib cannot deflate with 8 */
  d->reset_after_message =
      is_server ? agreed->server_no_context_takeover : agreed->client_no_context_takeover;
  d->level = level < -1 || level > 9 ? Z_DEFAULT_COMPRESSION : level;
  return d;
}

void cm_ws_deflate_free(struct cm_ws_deflate *d) {
  if (d == NULL) return;
  if (d->def_ready) deflateEnd(&d->def);
  if (d->inf_ready) inflateEnd(&d->inf);
  free(d);
}

/* Runs zlib's deflate over whatever is in d->def's input, appending all
 * output to out. */
static int deflate_into(struct cm_ws_deflate *d, struct cm_buf *out, int flush) {
  do {
    if (cm_buf_reserve(out, CHUNK) != 0) return CM_WS_E_INTERNAL;
    d->def.next_out = cm_buf_data(out) + out->len;
    d->def.avail_out = CHUNK;
    int r = deflate(&d->def, flush);
    if (r == Z_STREAM_ERROR) return CM_WS_E_INTERNAL;
    out->len += CHUNK - d->def.avail_out;
  } while (d->def.avail_out == 0); /* a full chunk: there may be more */
  return 0;
}

int cm_ws_deflate_compress(struct cm_ws_deflate *d, const uint8_t *in, size_t n,
                           struct cm_buf *out) {
  if (!d->def_ready) {
    /* Negative window bits: raw DEFLATE, no zlib header or checksum. */
    if (deflateInit2(&d->def, d->level, Z_DEFLATED, -d->window_bits, 8, Z_DEFAULT_STRATEGY) != Z_OK)
      return CM_WS_E_INTERNAL;
    d->def_ready = true;
  }
  size_t start = out->len;
  /* avail_in is an unsigned int: feed huge messages in slices.  Always at
   * least one Z_NO_FLUSH call, even for an empty message: zlib skips a
   * sync flush that directly follows another, which would leave an empty
   * message with an empty payload instead of the 0x00 byte the receiver
   * needs to complete its 00 00 FF FF. */
  do {
    uInt slice = n > (1u << 30) ? (1u << 30) : (uInt)n;
    d->def.next_in = (Bytef *)(uintptr_t)in;
    d->def.avail_in = slice;
    int r = deflate_into(d, out, Z_NO_FLUSH);
    if (r != 0) return r;
    in += slice;
    n -= slice;
  } while (n > 0);
  d->def.next_in = NULL;
  d->def.avail_in = 0;
  int r = deflate_into(d, out, Z_SYNC_FLUSH);
  if (r != 0) return r;
  /* The flush always ends with the empty stored block; drop it. */
  if (out->len - start >= 4 && memcmp(cm_buf_data(out) + out->len - 4, sync_tail, 4) == 0)
    out->len -= 4;
  if (d->reset_after_message && deflateReset(&d->def) != Z_OK) return CM_WS_E_INTERNAL;
  return 0;
}

/* Inflates in[0..n) into out, within the message limit. */
static int inflate_into(struct cm_ws_deflate *d, const uint8_t *in, size_t n, struct cm_buf *out,
                        uint64_t max) {
  while (n > 0) {
    uInt slice = n > (1u << 30) ? (1u << 30) : (uInt)n;
    d->inf.next_in = (Bytef *)(uintptr_t)in;
    d->inf.avail_in = slice;
    for (;;) {
      if (cm_buf_reserve(out, CHUNK) != 0) return CM_WS_E_INTERNAL;
      d->inf.next_out = cm_buf_data(out) + out->len;
      d->inf.avail_out = CHUNK;
      uInt avail_before = d->inf.avail_in;
      int r = inflate(&d->inf, Z_SYNC_FLUSH);
      size_t produced = CHUNK - d->inf.avail_out;
      out->len += produced;
      d->inflated += produced;
      if (d->inflated > max) return CM_WS_E_MESSAGE_TOO_BIG;
      if (r == Z_STREAM_END) {
        /* The sender ended the stream with a BFINAL block (RFC 7692
         * 7.2.3.4 allows it); whatever follows starts a new stream. */
        if (inflateReset(&d->inf) != Z_OK) return CM_WS_E_INTERNAL;
        if (d->inf.avail_in == 0) break;
        continue;
      }
      if (r == Z_MEM_ERROR) return CM_WS_E_INTERNAL;
      if (r != Z_OK && r != Z_BUF_ERROR) return CM_WS_E_INFLATE;
      /* Done with this input once zlib has taken all of it and had room
       * left over, i.e. has nothing more to give. */
      if (d->inf.avail_in == 0 && d->inf.avail_out > 0) break;
      if (r == Z_BUF_ERROR && d->inf.avail_out > 0) break; /* no progress possible */
      if (produced == 0 && d->inf.avail_in == avail_before) return CM_WS_E_INFLATE; /* stuck */
    }
    in += slice;
    n -= slice;
  }
  return 0;
}

int cm_ws_deflate_decompress(struct cm_ws_deflate *d, const uint8_t *in, size_t n, bool fin,
                             struct cm_buf *out, uint64_t max_message) {
  uint64_t max = max_message == 0 ? CM_WS_DEFAULT_MAX_MESSAGE : max_message;
  if (!d->inf_ready) {
    /* Always a 32 KiB window: it decodes data made with any smaller one,
     * so it does not depend on what the peer declared. */
    if (inflateInit2(&d->inf, -15) != Z_OK) return CM_WS_E_INTERNAL;
    d->inf_ready = true;
  }
  int r = inflate_into(d, in, n, out, max);
  if (r == 0 && fin) r = inflate_into(d, sync_tail, sizeof(sync_tail), out, max);
  d->inf.next_in = NULL;
  d->inf.next_out = NULL;
  if (fin || r != 0) d->inflated = 0;
  return r;
}
