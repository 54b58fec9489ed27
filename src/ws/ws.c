/*
 * WebSocket protocol handler (RFC 6455 5-7, RFC 7692): turns the bytes in
 * c->recv into CM_EV_WS_MSG / CM_EV_WS_CTL, answers pings, runs the close
 * handshake, and fails the connection with the right close code when the
 * peer breaks the rules.  Sending: cm_ws_send(), cm_ws_close().
 *
 * Receiving: a frame is processed once it is whole in c->recv (the receive
 * limit is raised to fit it, within max_frame_size); its payload is
 * unmasked in place.  A single-frame uncompressed message is delivered
 * straight from c->recv; fragments and compressed messages are collected in
 * st->msg.  Frame and message rules come from the codec (frame.c).
 */
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "ws/internal.h"

#define DEFAULT_CLOSE_TIMEOUT_MS 5000
#define DEFAULT_HANDSHAKE_TIMEOUT_MS 30000
/* A reassembly buffer bigger than this is released after its message. */
#define KEEP_MSG_BUF 65536

static void ws_pfn(struct cm_conn *c, int ev, void *ev_data);
static void on_deadline(void *arg);

struct cm_ws_opts cm__ws_resolve_opts(const struct cm_ws_opts *in) {
  struct cm_ws_opts o = {0};
  if (in != NULL) o = *in;
  if (o.limits.max_message_size == 0) o.limits.max_message_size = CM_WS_DEFAULT_MAX_MESSAGE;
  /* By default the frame limit follows the message limit (plain messages
   * are held to the message limit from their headers anyway), with room
   * for DEFLATE's expansion of incompressible data (under 0.1%). */
  if (o.limits.max_frame_size == 0) {
    uint64_t m = o.limits.max_message_size;
    o.limits.max_frame_size = m > UINT64_MAX / 2 ? UINT64_MAX : m + m / 64 + 1024;
  }
  o.limits.allowed_rsv = 0; /* what negotiation agrees, nothing else */
  if (o.compress_level == 0 || o.compress_level < -1 || o.compress_level > 9) o.compress_level = -1;
  if (o.close_timeout_ms == 0) o.close_timeout_ms = DEFAULT_CLOSE_TIMEOUT_MS;
  if (o.handshake_timeout_ms == 0) o.handshake_timeout_ms = DEFAULT_HANDSHAKE_TIMEOUT_MS;
  return o;
}

struct cm__ws *cm__ws_new(const struct cm_ws_opts *o) {
  struct cm__ws *st = calloc(1, sizeof(*st));
  if (st == NULL) return NULL;
  st->kind = CM__WS_KIND;
  st->opts = *o;
  st->lim = o->limits;
  cm__timer_init(&st->deadline, on_deadline, st);
  return st;
}

void cm__ws_free(struct cm__ws *st) {
  if (st == NULL) return;
  if (st->conn != NULL) cm__timer_unschedule(st->conn->mgr, &st->deadline);
  cm_ws_deflate_free(st->deflate);
  cm_buf_free(&st->msg);
  cm_buf_free(&st->request);
  free(st);
}

void cm__ws_raise(struct cm_conn *c, struct cm__ws *st, int ev, void *ev_data) {
  if (st->upper != NULL) {
    st->upper(c, ev, ev_data);
  } else {
    cm_call(c, ev, ev_data);
  }
}

bool cm__ws_set_upper(struct cm_conn *c, cm_event_fn fn, void *data) {
  struct cm__ws *st = cm__ws_of(c);
  if (st == NULL || st->upper != NULL) return false;
  st->upper = fn;
  st->upper_data = data;
  return true;
}

void *cm__ws_upper_data(const struct cm_conn *c, cm_event_fn fn) {
  if (c == NULL || c->pfn != ws_pfn || c->pfn_data == NULL) return NULL;
  const struct cm__ws *st = c->pfn_data;
  return st->kind == CM__WS_KIND && st->upper == fn ? st->upper_data : NULL;
}

struct cm__ws *cm__ws_of(struct cm_conn *c) {
  if (c == NULL || c->pfn != ws_pfn || c->pfn_data == NULL) return NULL;
  struct cm__ws *st = c->pfn_data;
  return st->kind == CM__WS_KIND ? st : NULL;
}

void cm__ws_install(struct cm_conn *c, struct cm__ws *st) {
  if (c->recv_limit < 4096) c->recv_limit = 4096;
  st->base_recv_limit = c->recv_limit;
  st->conn = c;
  c->pfn = ws_pfn;
  c->pfn_data = st;
  cm__ws_set_deadline(st, st->deadline_ms);
}

void cm__ws_set_deadline(struct cm__ws *st, uint64_t deadline_ms) {
  st->deadline_ms = deadline_ms;
  if (st->conn == NULL) return; /* scheduled by cm__ws_install */
  if (deadline_ms == 0) {
    cm__timer_unschedule(st->conn->mgr, &st->deadline);
  } else {
    cm__timer_schedule_by(st->conn->mgr, &st->deadline, deadline_ms); /* on_deadline
                                                                   reschedules a later one */
  }
}

/* A handshake that did not complete in time fails; a close handshake the
 * peer did not finish ends with our close. */
static void on_deadline(void *arg) {
  struct cm__ws *st = arg;
  struct cm_conn *c = st->conn;
  if (st->deadline_ms == 0 || c->is_closing) return;
  if (c->mgr->now_ms < st->deadline_ms) {
    cm__timer_schedule(c->mgr, &st->deadline, st->deadline_ms);
  } else if (st->handshaking) {
    /* Deferred to the flush after the timers: the handler runs outside this
     * timer's callback. */
    cm__conn_defer_error(c, "WebSocket handshake timed out");
    if (c->deferred_error == NULL) cm_close(c); /* no memory for the message */
  } else {
    cm_close(c);
  }
}

void cm__ws_opened(struct cm_conn *c, struct cm__ws *st) {
  st->handshaking = false;
  cm__ws_set_deadline(st, 0);
  c->is_websocket = 1;
  /* Frames may already wait behind the handshake in c->recv, with no READ
   * to come: look at them at this turn's flush (or the next READ). */
  st->check_input = true;
  cm__conn_want_poll(c);
}

/* ------------------------------------------------------------- sending */

/* Queues one frame: header, then the payload (masked with a fresh key on a
 * client).  All or nothing.  Returns the bytes queued, or a CM_E* code. */
static long send_frame(struct cm_conn *c, int first_byte, const void *p, size_t n) {
  uint8_t hdr[CM_WS_MAX_HEADER], key[4];
  const uint8_t *mask = NULL;
  if (c->is_closing || c->is_draining) return CM_ECLOSED;
  if (c->is_client) {
    if (RAND_bytes(key, sizeof(key)) != 1) return CM_EIO;
    mask = key;
  }
  size_t hlen = cm_ws_encode_header(hdr, first_byte, n, mask);
  size_t limit = c->mgr->send_limit, queued = cm_conn_send_queued(c);
  if (limit != 0 && (queued > limit || hlen + n > limit - queued)) return CM_ETOOBIG;
  /* Reserving first makes the two appends below unable to fail, so a
   * header is never queued without its payload. */
  if (cm_buf_reserve(&c->send, hlen + n) != 0) return CM_ENOMEM;
  int rc = cm_send(c, hdr, hlen);
  if (rc != 0) return rc;
  if (n > 0) {
    cm_send(c, p, n);
    if (mask != NULL) cm_ws_mask(cm_buf_data(&c->send) + c->send.len - n, n, mask, 0);
  }
  return (long)(hlen + n);
}

/*
 * Both close frames have been exchanged (or we failed the connection):
 * end the TCP connection.  The server closes first (RFC 6455 7.1.1): once
 * its close frame is written it half-closes and waits, bounded, for the
 * client's FIN, discarding input, so that unread bytes cannot make the
 * kernel send an RST that would destroy the close frame.  A client waits
 * for the server to close, also bounded; after a failure it closes itself.
 */
static void finish(struct cm_conn *c, struct cm__ws *st) {
  if (st->finishing) return;
  st->finishing = true;
  cm__ws_set_deadline(st, cm_millis() + st->opts.close_timeout_ms);
  if (c->is_client) {
    if (st->failed) cm_drain(c);
    return;
  }
  /* Half-closes once the close frame has left (under TLS: then
   * close_notify); a transport that cannot, just drains. */
  if (cm__conn_shutdown(c) != 0) cm_drain(c);
}

/* Sends our close frame with payload p[0..n). */
static long start_close(struct cm_conn *c, struct cm__ws *st, const uint8_t *p, size_t n) {
  long sent = send_frame(c, CM_WS_FIN | CM_WS_OP_CLOSE, p, n);
  if (sent < 0) return sent;
  st->close_sent = true;
  if (st->close_received) {
    finish(c, st);
  } else {
    cm__ws_set_deadline(st, cm_millis() + st->opts.close_timeout_ms);
  }
  return sent;
}

int cm_ws_close(struct cm_conn *c, unsigned code, const char *reason) {
  struct cm__ws *st = cm__ws_of(c);
  if (st == NULL || st->handshaking) return CM_EINVAL;
  if (st->close_sent) return CM_EALREADY;
  if (code != 0 && !cm_ws_close_code_valid(code)) return CM_EINVAL;
  uint8_t payload[CM_WS_MAX_CONTROL_PAYLOAD];
  size_t n = cm_ws_close_payload(payload, code, reason, reason == NULL ? 0 : strlen(reason));
  long rc = start_close(c, st, payload, n);
  return rc < 0 ? (int)rc : 0;
}

long cm_ws_send(struct cm_conn *c, const void *buf, size_t len, int op) {
  struct cm__ws *st = cm__ws_of(c);
  if (st == NULL || st->handshaking || (op & ~(CM_WS_SEND_MORE | 0x0F)) != 0) return CM_EINVAL;
  if (buf == NULL) {
    if (len > 0) return CM_EINVAL;
    buf = "";
  }
  bool more = (op & CM_WS_SEND_MORE) != 0;
  int opcode = op & 0x0F;
  switch (opcode) {
    case CM_WS_OP_CLOSE: {
      if (st->close_sent) return CM_EALREADY;
      if (more || len > CM_WS_MAX_CONTROL_PAYLOAD) return CM_EINVAL;
      if (cm_ws_parse_close(buf, len, NULL, NULL, NULL) != 0) return CM_EINVAL;
      return start_close(c, st, buf, len);
    }
    case CM_WS_OP_PING:
    case CM_WS_OP_PONG:
      if (st->close_sent) return CM_ECLOSED;
      if (more || len > CM_WS_MAX_CONTROL_PAYLOAD) return CM_EINVAL;
      return send_frame(c, CM_WS_FIN | opcode, buf, len);
    case CM_WS_OP_CONTINUE:
    case CM_WS_OP_TEXT:
    case CM_WS_OP_BINARY:
      if (st->close_sent) return CM_ECLOSED; /* RFC 6455 5.5.1: no data after a close */
      break;
    default:
      return CM_EINVAL;
  }
  if (st->deflate == NULL || more || opcode == CM_WS_OP_CONTINUE) {
    return send_frame(c, (more ? 0 : CM_WS_FIN) | opcode, buf, len);
  }
  /* A whole message under permessage-deflate: compressed, RSV1 set. */
  struct cm_buf z = {0};
  long sent = CM_ENOMEM;
  if (cm_ws_deflate_compress(st->deflate, buf, len, &z) == 0) {
    sent = send_frame(c, CM_WS_FIN | CM_WS_RSV1 | opcode, cm_buf_data(&z), z.len);
    /* The compressor's window now holds a message the peer will never see:
     * later messages could not be decoded, so the connection is lost. */
    if (sent < 0) cm_error_defer(c, "WebSocket: send buffer full"); /* not from inside a send */
  }
  cm_buf_free(&z);
  return sent;
}

/* ------------------------------------------------------------ receiving */

/* The peer broke the protocol: close frame with the code, ERROR, close. */
static void fail(struct cm_conn *c, struct cm__ws *st, int err) {
  int code = cm_ws_error_close_code(err);
  const char *why = cm_ws_strerror(err);
  char msg[160];
  snprintf(msg, sizeof(msg), "WebSocket: %s (close %d)", why, code);
  CM_DEBUG("conn %lu: %s", c->id, msg);
  st->close_received = true; /* read nothing more */
  st->failed = true;
  cm_recv_consume(c, c->recv.len);
  if (!st->close_sent) {
    uint8_t payload[CM_WS_MAX_CONTROL_PAYLOAD];
    size_t n = cm_ws_close_payload(payload, (unsigned)code, why, strlen(why));
    start_close(c, st, payload, n);
  }
  cm_call(c, CM_EV_ERROR, msg);
  finish(c, st);
}

static void deliver(struct cm_conn *c, int ev, const uint8_t *p, size_t n, uint8_t flags) {
  struct cm_ws_msg m = {cm_str_n(n > 0 ? (const char *)p : "", n), flags};
  cm__ws_raise(c, cm__ws_of(c), ev, &m);
}

static int control_frame(struct cm_conn *c, struct cm__ws *st, const struct cm_ws_frame *f,
                         const uint8_t *p, size_t n) {
  uint8_t flags = (uint8_t)(f->first_byte & (CM_WS_FIN | 0x0F));
  if (f->opcode != CM_WS_OP_CLOSE) {
    if (f->opcode == CM_WS_OP_PING && !st->close_sent) send_frame(c, CM_WS_FIN | CM_WS_OP_PONG, p, n);
    deliver(c, CM_EV_WS_CTL, p, n, flags);
    return 0;
  }
  uint16_t code;
  int e = cm_ws_parse_close(p, n, &code, NULL, NULL);
  if (e < 0) return e;
  st->close_received = true;
  deliver(c, CM_EV_WS_CTL, p, n, flags); /* the handler may answer with its own code */
  if (!st->close_sent) {
    /* Echo the status code (none when the peer gave none). */
    if (start_close(c, st, p, code == CM_WS_CLOSE_NO_STATUS ? 0 : 2) < 0) cm_close(c);
  } else {
    finish(c, st);
  }
  return 0;
}

static int data_frame(struct cm_conn *c, struct cm__ws *st, const struct cm_ws_frame *f,
                      const uint8_t *p, size_t n) {
  int e = cm_ws_msg_frame(&st->ms, f, &st->lim);
  if (e < 0) return e;
  bool text = st->ms.opcode == CM_WS_OP_TEXT;
  uint8_t flags = (uint8_t)(CM_WS_FIN | st->ms.opcode);
  if (st->ms.rsv & CM_WS_RSV1) {
    if (st->deflate == NULL) return CM_WS_E_RSV;
    size_t old = st->msg.len;
    e = cm_ws_deflate_decompress(st->deflate, p, n, f->fin, &st->msg, st->lim.max_message_size);
    if (e < 0) return e;
    if (text) {
      const uint8_t *fresh = st->msg.len > old ? cm_buf_data(&st->msg) + old : (const uint8_t *)"";
      e = cm_ws_msg_text(&st->ms, fresh, st->msg.len - old, f->fin);
      if (e < 0) return e;
    }
  } else if (f->fin && f->opcode != CM_WS_OP_CONTINUE) {
    /* The common case: a whole message in one frame, delivered in place. */
    if (text && (e = cm_ws_msg_text(&st->ms, p, n, true)) < 0) return e;
    cm_ws_msg_end(&st->ms);
    deliver(c, CM_EV_WS_MSG, p, n, flags);
    return 0;
  } else {
    if (text && (e = cm_ws_msg_text(&st->ms, p, n, f->fin)) < 0) return e;
    if (n > 0 && cm_buf_append(&st->msg, p, n) != 0) return CM_WS_E_INTERNAL;
  }
  if (!f->fin) return 0;
  cm_ws_msg_end(&st->ms);
  deliver(c, CM_EV_WS_MSG, cm_buf_data(&st->msg), st->msg.len, flags);
  cm_buf_consume(&st->msg, st->msg.len);
  if (st->msg.cap > KEEP_MSG_BUF) cm_buf_free(&st->msg);
  return 0;
}

/* Lets c->recv grow to hold a frame of need bytes. */
static void make_room(struct cm_conn *c, size_t need) {
  if (c->recv_limit < need) {
    c->recv_limit = need;
    cm_recv_consume(c, 0); /* resumes reading if it was paused */
  }
}

/* Parses and handles every whole frame in c->recv, until the queued output
 * reaches its mark (cm_conn_send_full): a peer that floods pings (or
 * messages the application answers) and never reads the replies must not
 * grow our send buffer without bound.  The WRITE that brings the queue
 * below the mark goes on (check_input). */
static void process(struct cm_conn *c, struct cm__ws *st) {
  st->check_input = false;
  while (c->recv.len > 0 && !c->is_closing && !c->is_draining) {
    if (cm_conn_send_full(c) && !st->close_received) {
      st->check_input = true;
      return;
    }
    if (st->close_received) {
      cm_recv_consume(c, c->recv.len); /* nothing after a close counts */
      return;
    }
    uint8_t *buf = cm_buf_data(&c->recv);
    size_t len = c->recv.len;
    struct cm_ws_frame f;
    int r = cm_ws_parse_frame(buf, len, &f, &st->lim, !c->is_client);
    if (r < 0) {
      fail(c, st, r);
      return;
    }
    if (r == 0) return;
    if (!cm_ws_frame_complete(&f, len)) {
      /* Check the message rules now on a copy of the state, so an
       * oversized fragmented message is refused before it is buffered. */
      struct cm_ws_msg_state probe = st->ms;
      int e = cm_ws_msg_frame(&probe, &f, &st->lim);
      if (e < 0) {
        fail(c, st, e);
        return;
      }
      make_room(c, f.header_len + (size_t)f.payload_len);
      return;
    }
    uint8_t *p = buf + f.header_len;
    size_t n = (size_t)f.payload_len;
    if (f.masked) cm_ws_mask(p, n, f.mask, 0);
    int e = (f.opcode & 0x08) ? control_frame(c, st, &f, p, n) : data_frame(c, st, &f, p, n);
    if (e < 0) {
      fail(c, st, e);
      return;
    }
    cm_recv_consume(c, f.header_len + n);
    if (c->recv_limit != st->base_recv_limit) {
      /* Back to the normal limit after a big frame, and its memory back. */
      c->recv_limit = st->base_recv_limit;
      cm_buf_trim(&c->recv);
      cm_recv_consume(c, 0);
    }
  }
}

void cm__ws_process(struct cm_conn *c, struct cm__ws *st) { process(c, st); }

static void ws_pfn(struct cm_conn *c, int ev, void *ev_data) {
  (void)ev_data;
  struct cm__ws *st = cm__ws_of(c);
  if (st == NULL) return;
  switch (ev) {
    case CM_EV_CONNECT:
      if (st->handshaking) cm__ws_client_connected(c, st);
      break;
    case CM_EV_READ:
      if (st->handshaking) {
        cm__ws_client_read(c, st);
      } else {
        process(c, st);
      }
      break;
    case CM_EV_WRITE:
      if (st->check_input && !st->handshaking && !cm_conn_send_full(c)) process(c, st);
      break;
    case CM_EV_POLL:
      /* Asked for by cm__ws_opened (cm__conn_want_poll); the deadlines
       * are in the timer heap (on_deadline). */
      if (st->check_input && !st->handshaking) process(c, st);
      break;
    case CM_EV_CLOSE:
      if (st->upper != NULL) st->upper(c, ev, ev_data); /* frees its state */
      cm__ws_free(st);
      c->pfn_data = NULL;
      return;
    default:
      break;
  }
  if (st->upper != NULL && c->pfn_data == st) st->upper(c, ev, ev_data);
}
