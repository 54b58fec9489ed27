/*
 * Chunked transfer coding (RFC 9112 section 7.1), decoded in place and
 * incrementally:
 *
 *   chunked-body = *chunk last-chunk trailer-section CRLF
 *   chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
 *   last-chunk   = 1*("0") [ chunk-ext ] CRLF
 *
 * The state survives between calls so each byte is examined once however
 * the body trickles in.  Payload bytes are moved down over the framing, so
 * the decoded body grows contiguously at the start of the buffer: the write
 * position (out) never passes the read position (in).
 */
#include <string.h>

#include "cymongoose.h"
#include "http/chars.h"
#include "util/hex.h"

enum {
  S_SIZE_FIRST = 0, /* zero-initialised state: expecting the first hex digit */
  S_SIZE,           /* more hex digits, or the end of the size */
  S_EXT,            /* chunk extensions: skipped up to CR */
  S_SIZE_LF,        /* LF ending the size line */
  S_DATA,           /* chunk payload */
  S_DATA_CR,        /* CR after the payload */
  S_DATA_LF,        /* LF after the payload */
  S_TRAILER,        /* start of a trailer line, or the final CRLF */
  S_TRAILER_NAME,   /* field name of a trailer line */
  S_TRAILER_VALUE,  /* rest of a trailer line up to CR */
  S_TRAILER_LF,     /* LF ending a trailer line */
  S_END_LF,         /* LF of the final empty line */
  S_DONE,
  S_ERROR
};

static int fail(struct cm_http_chunked *st, int err) {
  st->state = S_ERROR;
  st->err = err;
  return err;
}

/* The decoder; before: body bytes decoded earlier that count against
 * max_body but are no longer in buf (a streamed body, see
 * cm_http_chunked_stream). */
static int decode(struct cm_http_chunked *st, char *buf, size_t len,
                  const struct cm_http_limits *lim_in, uint64_t before) {
  if (st->state == S_DONE) return 1;
  if (st->state == S_ERROR) return st->err;
  struct cm_http_limits lim = cm_http_limits_resolve(lim_in);
  if (before > lim.max_body) return fail(st, CM_HTTP_ERR_BODY_TOO_LARGE);
  lim.max_body -= before; /* what the rest of the body may still add */
  while (st->in < len) {
    if (st->state == S_DATA) {
      size_t avail = len - st->in;
      size_t n = st->remaining < avail ? (size_t) st->remaining : avail;
      if (st->out != st->in) memmove(buf + st->out, buf + st->in, n);
      st->in += n;
      st->out += n;
      st->remaining -= n;
      if (st->remaining == 0) st->state = S_DATA_CR;
      continue;
    }
    unsigned char c = (unsigned char) buf[st->in++];
    switch (st->state) {
      case S_SIZE_FIRST:
      case S_SIZE: {
        int d = cm__hex_digit(c);
        if (d >= 0) {
          /* Stop before the value could overflow; anything past max_body
           * is refused anyway. */
          if (st->remaining > (lim.max_body >> 4)) return fail(st, CM_HTTP_ERR_BODY_TOO_LARGE);
          uint64_t size = (st->remaining << 4) | (uint64_t) d;
          if (size > lim.max_body - st->out) return fail(st, CM_HTTP_ERR_BODY_TOO_LARGE);
          st->remaining = size;
          st->state = S_SIZE;
        } else if (st->state == S_SIZE_FIRST) {
          return fail(st, CM_HTTP_ERR_BAD);
        } else if (c == ';' || cm__http_is_ows(c)) {
          st->state = S_EXT; /* BWS before ';' is allowed */
        } else if (c == '\r') {
          st->state = S_SIZE_LF;
        } else {
          return fail(st, CM_HTTP_ERR_BAD);
        }
        break;
      }
      case S_EXT:
        if (c == '\r') {
          st->state = S_SIZE_LF;
        } else if (!cm__http_is_value_char(c)) {
          return fail(st, CM_HTTP_ERR_BAD);
        }
        break;
      case S_SIZE_LF:
        if (c != '\n') return fail(st, CM_HTTP_ERR_BAD);
        st->line = 0;
        st->state = st->remaining == 0 ? S_TRAILER : S_DATA;
        continue;
      case S_DATA_CR:
        if (c != '\r') return fail(st, CM_HTTP_ERR_BAD);
        st->state = S_DATA_LF;
        break;
      case S_DATA_LF:
        if (c != '\n') return fail(st, CM_HTTP_ERR_BAD);
        st->line = 0;
        st->state = S_SIZE_FIRST;
        continue;
      case S_TRAILER:
        if (c == '\r') {
          st->state = S_END_LF;
        } else if (cm__http_is_tchar(c)) {
          st->state = S_TRAILER_NAME;
        } else {
          return fail(st, CM_HTTP_ERR_BAD); /* obs-fold, bare LF, junk */
        }
        break;
      case S_TRAILER_NAME:
        if (c == ':') {
          st->state = S_TRAILER_VALUE;
        } else if (!cm__http_is_tchar(c)) {
          return fail(st, CM_HTTP_ERR_BAD);
        }
        break;
      case S_TRAILER_VALUE:
        if (c == '\r') {
          st->state = S_TRAILER_LF;
        } else if (!cm__http_is_value_char(c)) {
          return fail(st, CM_HTTP_ERR_BAD);
        }
        break;
      case S_TRAILER_LF:
        if (c != '\n') return fail(st, CM_HTTP_ERR_BAD);
        st->state = S_TRAILER;
        break;
      case S_END_LF:
        if (c != '\n') return fail(st, CM_HTTP_ERR_BAD);
        st->state = S_DONE;
        return 1;
      default:
        return fail(st, CM_HTTP_ERR_BAD);
    }
    /* Bound the framing lines: the size line (with extensions) and the
     * trailer section. */
    if (st->state <= S_SIZE_LF && ++st->line > lim.max_chunk_line) {
      return fail(st, CM_HTTP_ERR_BAD);
    }
    if (st->state >= S_TRAILER && ++st->trailer > lim.max_head) {
      return fail(st, CM_HTTP_ERR_HDRS_TOO_LARGE);
    }
  }
  return 0;
}

int cm_http_chunked_decode(struct cm_http_chunked *st, char *buf, size_t len,
                           const struct cm_http_limits *lim) {
  return decode(st, buf, len, lim, 0);
}

int cm_http_chunked_stream(struct cm_http_chunked *st, struct cm_buf *b, size_t *ready,
                           uint64_t *total, const struct cm_http_limits *lim) {
  if (*ready > b->len) *ready = b->len; /* the caller consumed more than it said */
  st->in = st->out = 0;
  char *data = (char *) cm_buf_data(b);
  char *raw = data == NULL ? NULL : data + *ready; /* an empty buffer may have no storage */
  int d = decode(st, raw, b->len - *ready, lim, *total);
  /* The payload now follows the ready bytes; the framing between it and
   * the undecoded rest goes. */
  if (st->in > st->out) cm_buf_delete(b, *ready + st->out, st->in - st->out);
  *ready += st->out;
  *total += st->out;
  st->in = st->out = 0;
  return d;
}
