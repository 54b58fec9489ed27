/*
 * cymongoose: WebSocket (RFC 6455, RFC 7692) codec API.  Included by
 * cymongoose.h.
 *
 * Everything declared here, except the permessage-deflate compressor state
 * at the end, is pure: no I/O, no allocation, no global state.
 * Parsers take (pointer, length), never read past it, and answer with a
 * length (> 0), 0 for "need more bytes", or a negative CM_WS_E_* error;
 * cm_ws_error_close_code() turns an error into the close code to send
 * (1002 protocol error, 1007 invalid data, 1009 message too big).
 * Views returned (struct cm_str) point into the caller's buffer and stay
 * valid as long as that buffer does.
 */
#ifndef CYMONGOOSE_WS_H
#define CYMONGOOSE_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default) /* exported: see cymongoose.h */

struct cm_buf;  /* cymongoose.h */
struct cm_conn;
struct cm_mgr;
struct cm_http_msg;

/* ------------------------------------------------------------ constants */
/* Opcodes (low 4 bits of the first byte of a frame). */
enum {
  CM_WS_OP_CONTINUE = 0x0,
  CM_WS_OP_TEXT = 0x1,
  CM_WS_OP_BINARY = 0x2,
  CM_WS_OP_CLOSE = 0x8,
  CM_WS_OP_PING = 0x9,
  CM_WS_OP_PONG = 0xA
};

/* Bits of the first byte of a frame, to OR with an opcode. */
#define CM_WS_FIN 0x80
#define CM_WS_RSV1 0x40 /* "per-message compressed" under permessage-deflate */
#define CM_WS_RSV2 0x20
#define CM_WS_RSV3 0x10

/* The largest frame header: 2 + 8 (64-bit length) + 4 (mask key). */
#define CM_WS_MAX_HEADER 14
/* The largest payload of a control frame (close, ping, pong). */
#define CM_WS_MAX_CONTROL_PAYLOAD 125

/* Close codes (RFC 6455 7.4.1 and the IANA registry). */
enum {
  CM_WS_CLOSE_NORMAL = 1000,
  CM_WS_CLOSE_GOING_AWAY = 1001,
  CM_WS_CLOSE_PROTOCOL_ERROR = 1002,
  CM_WS_CLOSE_UNSUPPORTED_DATA = 1003,
  CM_WS_CLOSE_NO_STATUS = 1005,      /* never sent: "the close frame had no code" */
  CM_WS_CLOSE_ABNORMAL = 1006,       /* never sent: "closed without a close frame" */
  CM_WS_CLOSE_INVALID_DATA = 1007,   /* e.g. a text message that is not UTF-8 */
  CM_WS_CLOSE_POLICY = 1008,
  CM_WS_CLOSE_TOO_BIG = 1009,
  CM_WS_CLOSE_MANDATORY_EXT = 1010,
  CM_WS_CLOSE_INTERNAL_ERROR = 1011,
  CM_WS_CLOSE_SERVICE_RESTART = 1012,
  CM_WS_CLOSE_TRY_AGAIN_LATER = 1013,
  CM_WS_CLOSE_BAD_GATEWAY = 1014,
  CM_WS_CLOSE_TLS_HANDSHAKE = 1015   /* never sent */
};

/*
 * Errors returned by the parsers, all negative.  Each says exactly what was
 * wrong (cm_ws_strerror) and maps to one close code (cm_ws_error_close_code).
 */
enum {
  CM_WS_E_RSV = -1,             /* 1002: reserved bit set that no extension allows */
  CM_WS_E_OPCODE = -2,          /* 1002: reserved opcode 3-7 or 0xB-0xF */
  CM_WS_E_CONTROL_TOO_LONG = -3,/* 1002: control frame payload > 125 */
  CM_WS_E_CONTROL_FRAGMENTED = -4, /* 1002: control frame without FIN */
  CM_WS_E_LENGTH = -5,          /* 1002: 64-bit length with the top bit set */
  CM_WS_E_UNMASKED = -6,        /* 1002: client frame without a mask */
  CM_WS_E_MASKED = -7,          /* 1002: server frame with a mask */
  CM_WS_E_FRAME_TOO_BIG = -8,   /* 1009: frame payload over the limit */
  CM_WS_E_MESSAGE_TOO_BIG = -9, /* 1009: message (sum of fragments) over the limit */
  CM_WS_E_UTF8 = -10,           /* 1007: text or close reason is not UTF-8 */
  CM_WS_E_CONTINUATION = -11,   /* 1002: continuation frame with no message open */
  CM_WS_E_UNFINISHED = -12,     /* 1002: new data frame while a message is open */
  CM_WS_E_CLOSE_LENGTH = -13,   /* 1002: close payload of exactly 1 byte */
  CM_WS_E_CLOSE_CODE = -14,     /* 1002: close code not allowed on the wire */
  CM_WS_E_RSV_PLACEMENT = -15,  /* 1002: extension bit on a control or continuation frame */
  CM_WS_E_INFLATE = -16,        /* 1007: compressed payload is not valid DEFLATE data */
  CM_WS_E_INTERNAL = -17        /* 1011: out of memory or a zlib failure */
};

/* The close code to send for a CM_WS_E_* error (1002, 1007 or 1009);
 * 1011 (internal error) for values that are not CM_WS_E_* errors. */
int cm_ws_error_close_code(int err);

/* A static, human-readable description of a CM_WS_E_* error (never NULL). */
const char *cm_ws_strerror(int err);

/* ---------------------------------------------------------------- frames */
/*
 * Limits applied while parsing.  A field left 0 takes its default, so a
 * zero-initialised struct (or a NULL pointer) means "defaults".  Use
 * UINT64_MAX for "no limit".
 */
struct cm_ws_limits {
  uint64_t max_frame_size;   /* payload of one frame; default CM_WS_DEFAULT_MAX_FRAME */
  uint64_t max_message_size; /* a whole message (after decompression); default
                                CM_WS_DEFAULT_MAX_MESSAGE */
  uint8_t allowed_rsv;       /* RSV bits an extension negotiated, e.g. CM_WS_RSV1
                                for permessage-deflate; default none */
};
#define CM_WS_DEFAULT_MAX_FRAME (16u * 1024 * 1024)
#define CM_WS_DEFAULT_MAX_MESSAGE (16u * 1024 * 1024)

/* A parsed frame header.  Plain values, no pointers. */
struct cm_ws_frame {
  uint8_t first_byte;   /* FIN | RSV1-3 | opcode, as on the wire (WsMessage.flags) */
  uint8_t opcode;       /* first_byte & 0x0F */
  uint8_t rsv;          /* first_byte & 0x70 (CM_WS_RSV* bits) */
  bool fin;             /* last frame of its message */
  bool masked;          /* a mask key follows the length */
  uint8_t mask[4];      /* the mask key; zeros when !masked */
  uint8_t header_len;   /* 2..14 bytes */
  uint64_t payload_len; /* bytes following the header */
};

/*
 * Parses the frame header at buf[0..len).
 * Returns the header length (2..14) once the whole header is present and
 * valid, with *f filled in; the payload is the f->payload_len bytes after
 * the header, which may not all be in buf yet (cm_ws_frame_complete() says
 * whether they are, so a caller can wait without parsing again).  Returns
 * 0 when more bytes are needed to read the header, or a negative
 * CM_WS_E_* error.  Size limits are checked against the header alone, so
 * an oversized frame is rejected before its payload is buffered.
 *
 * expect_masked: true on a server (client frames MUST be masked), false on
 * a client (server frames MUST NOT be).  lim may be NULL for defaults;
 * lim->allowed_rsv bits are accepted only on the first frame of a data
 * message (RFC 7692 6: never on control or continuation frames).
 * Non-minimal length encodings are accepted (robustness).
 * Message-level rules (continuations, message size, UTF-8) are in
 * cm_ws_msg_frame() and cm_ws_msg_text().
 */
int cm_ws_parse_frame(const uint8_t *buf, size_t len, struct cm_ws_frame *f,
                      const struct cm_ws_limits *lim, bool expect_masked);

/* True when buf_len bytes hold the whole frame f (header and payload). */
bool cm_ws_frame_complete(const struct cm_ws_frame *f, size_t buf_len);

/*
 * XORs p[0..n) in place with the mask key; offset is the position of p[0]
 * within the payload, so a payload can be (un)masked in pieces as it
 * arrives.  Masking twice restores the data.  Any alignment of p is fine.
 */
void cm_ws_mask(uint8_t *p, size_t n, const uint8_t key[4], uint64_t offset);

/*
 * Writes a frame header into out and returns its length (2..14).
 * first_byte: opcode | CM_WS_FIN | CM_WS_RSV* bits (only the low 8 bits are
 * used).  len: the payload length, encoded in the shortest form.
 * mask: the 4-byte key for a masked (client) frame, or NULL for a server
 * frame; the caller masks the payload with cm_ws_mask(..., mask, 0).
 * Client keys must be unpredictable (RFC 6455 5.3): use RAND_bytes().
 */
size_t cm_ws_encode_header(uint8_t out[CM_WS_MAX_HEADER], int first_byte,
                           uint64_t len, const uint8_t *mask);

/* ---------------------------------------------------------- messages */
/*
 * State of the message being received, for the rules that span frames:
 * continuation frames only inside a message, no new data message before
 * the last one finished, the message size limit and, for text, UTF-8
 * validity across fragment boundaries.  Zero-initialise before the first
 * frame of a connection.
 */
struct cm_ws_msg_state {
  uint64_t len;      /* payload bytes of the open message so far */
  uint32_t utf8;     /* cm_utf8_validate() state of the open text message */
  uint8_t opcode;    /* CM_WS_OP_TEXT or _BINARY while a message is open, else 0 */
  uint8_t rsv;       /* RSV bits of the message's first frame (RSV1: compressed) */
};

/*
 * Checks a frame header (from cm_ws_parse_frame) against the open message
 * and updates s.  Control frames may come between fragments and leave s
 * unchanged.  For a plain message (s->rsv == 0 after the call) it counts
 * f->payload_len against lim->max_message_size; a message transformed by
 * an extension (RSV1: compressed) is not counted here: count its inflated
 * size (cm_ws_deflate_decompress() enforces the same limit itself).
 * Returns 0 or a negative CM_WS_E_* error.
 * After it, s->opcode and s->rsv describe the message this frame belongs
 * to (for a control frame: look at the frame itself).
 */
int cm_ws_msg_frame(struct cm_ws_msg_state *s, const struct cm_ws_frame *f,
                    const struct cm_ws_limits *lim);

/*
 * Validates the next n bytes (unmasked, inflated) of an open text message;
 * fin: these are its last bytes.  Returns 0, or CM_WS_E_UTF8 as soon as
 * the bytes cannot be the start of valid UTF-8 or, with fin, when they
 * stop inside a character.  Binary messages need no call.
 * With fin, call cm_ws_msg_end() afterwards.
 */
int cm_ws_msg_text(struct cm_ws_msg_state *s, const uint8_t *p, size_t n, bool fin);

/* Marks the open message finished (after its FIN frame was delivered). */
void cm_ws_msg_end(struct cm_ws_msg_state *s);

/* ------------------------------------------------------------ close */
/* True for codes an endpoint may send and receive in a close frame:
 * 1000-1003, 1007-1014 and 3000-4999 (RFC 6455 7.4 and the IANA registry;
 * 1004, 1005, 1006, 1015 and the unassigned 1016-2999 are not). */
bool cm_ws_close_code_valid(unsigned code);

/*
 * Parses a close frame payload (already unmasked).  An empty payload gives
 * *code = 1005 (no status) and an empty reason.  Returns 0, or
 * CM_WS_E_CLOSE_LENGTH (1 byte), CM_WS_E_CLOSE_CODE, CM_WS_E_UTF8 (reason).
 * reason (may be NULL) points into p.
 */
int cm_ws_parse_close(const uint8_t *p, size_t n, uint16_t *code,
                      const char **reason, size_t *reason_len);

/*
 * Writes the payload of a close frame with code and reason into out and
 * returns its length.  code 0 gives an empty payload (no status; the reason
 * is then ignored); other codes are written as given, so pick one for
 * which cm_ws_close_code_valid() holds.  The reason is cut to fit the
 * 125-byte limit and to its longest valid UTF-8 prefix, never in the
 * middle of a character.
 */
size_t cm_ws_close_payload(uint8_t out[CM_WS_MAX_CONTROL_PAYLOAD], unsigned code,
                           const char *reason, size_t reason_len);

/* -------------------------------------------------------- handshake */
/* The GUID appended to the client key (RFC 6455 1.3). */
#define CM_WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/*
 * Computes Sec-WebSocket-Accept for the Sec-WebSocket-Key value key[0..len):
 * base64(SHA-1(key + GUID)), 28 characters written to out with a NUL.
 * Returns 0, or -1 when len > 256 (no valid key is that long).
 */
int cm_ws_accept_key(const char *key, size_t len, char out[29]);

/* True when key[0..len) is a valid Sec-WebSocket-Key: the base64 encoding
 * of 16 bytes (24 characters ending in "=="). */
bool cm_ws_key_valid(const char *key, size_t len);

/* ------------------------------------------ permessage-deflate (RFC 7692) */
/*
 * Parameters of one permessage-deflate offer or response.  A window bits
 * value of 0 means "parameter absent".
 */
struct cm_ws_deflate_params {
  bool server_no_context_takeover;
  bool client_no_context_takeover;
  uint8_t server_max_window_bits;  /* 8..15, or 0 when absent */
  uint8_t client_max_window_bits;  /* 8..15, or 0 when absent or valueless */
  bool client_max_window_bits_bare;/* offer only: present without a value */
};

/*
 * Iterates over the extensions of a Sec-WebSocket-Extensions value (a
 * comma-separated list; commas inside quoted strings are respected).
 * *pos starts at 0.  Each call stores the extension name and the text of
 * its parameters (after the first ';', possibly empty) as views into hdr,
 * and returns 1; returns 0 at the end, -1 on a syntax error.
 */
int cm_ws_ext_next(const char *hdr, size_t len, size_t *pos,
                   const char **name, size_t *name_len,
                   const char **params, size_t *params_len);

/*
 * Parses the parameter text of one permessage-deflate element (as given by
 * cm_ws_ext_next).  is_response: the text comes from a server response,
 * where client_max_window_bits needs a value.  Returns 0, or -1 for an
 * unknown or repeated parameter, a missing or bad value (window bits must
 * be 8..15 without leading zeros, optionally quoted), or bad syntax.
 */
int cm_ws_deflate_parse(const char *params, size_t len, bool is_response,
                        struct cm_ws_deflate_params *out);

/*
 * What this endpoint wants and supports, used both to make a client offer
 * and to answer offers as a server.  0 window bits means 15.
 */
struct cm_ws_deflate_opts {
  bool server_no_context_takeover; /* the server resets its compressor per message */
  bool client_no_context_takeover; /* the client resets its compressor per message */
  uint8_t server_max_window_bits;  /* 9..15 (zlib cannot deflate with 8) */
  uint8_t client_max_window_bits;  /* 9..15 */
};

/*
 * Server side: picks the first acceptable permessage-deflate offer in the
 * client's Sec-WebSocket-Extensions value hdr[0..len) and fills *agreed
 * with the parameters to answer with (cm_ws_deflate_format) and to run
 * the compressors with (cm_ws_deflate_new).  Offers with invalid
 * parameters, or asking for a server window we cannot use (8 bits), are
 * skipped, as RFC 7692 5 allows.  A server window below 15 in opts is
 * announced even when the offer did not ask (7.1.2.1 allows it).  Returns 1 when an offer was accepted, 0 when none was (answer
 * without the extension), -1 when the header is malformed.
 */
int cm_ws_deflate_accept(const char *hdr, size_t len,
                         const struct cm_ws_deflate_opts *opts,
                         struct cm_ws_deflate_params *agreed);

/*
 * Client side: checks the server's Sec-WebSocket-Extensions value against
 * the offer this client made (built from opts by cm_ws_deflate_format_offer)
 * and fills *agreed.  Returns 1 when permessage-deflate was accepted, 0
 * when the response does not mention it, -1 when the response is invalid
 * (unknown extension or parameter, a window larger than offered, no
 * answer to our server_max_window_bits, a client window of 8 bits that
 * zlib cannot produce...): fail the connection.  When our offer limited
 * the client window and the response did not, *agreed carries our limit.
 */
int cm_ws_deflate_check_response(const char *hdr, size_t len,
                                 const struct cm_ws_deflate_opts *opts,
                                 struct cm_ws_deflate_params *agreed);

/*
 * Writes "permessage-deflate" and the parameters in p, e.g.
 * "permessage-deflate; server_no_context_takeover; client_max_window_bits=10",
 * NUL-terminated, into out[0..cap).  A bare client_max_window_bits is
 * written without a value.  Returns the length without the NUL, or -1 when
 * cap is too small (CM_WS_DEFLATE_FORMAT_MAX bytes always suffice).
 */
#define CM_WS_DEFLATE_FORMAT_MAX 160
int cm_ws_deflate_format(const struct cm_ws_deflate_params *p, char *out, size_t cap);

/* The offer a client sends for opts: its no-context-takeover wishes, the
 * window bits it wants below 15, and a bare client_max_window_bits so the
 * server may limit the client's window.  Output as for cm_ws_deflate_format. */
int cm_ws_deflate_format_offer(const struct cm_ws_deflate_opts *opts, char *out,
                               size_t cap);

/* ----------------------------------- permessage-deflate (de)compression */
/*
 * The compressor and decompressor of one connection (opaque; zlib inside).
 * Unlike the rest of this header these allocate: zlib state is created on
 * first use (about 256 KiB for the compressor at 15 window bits, 44 KiB for
 * the decompressor) and freed by cm_ws_deflate_free().  One per connection;
 * not thread-safe.
 */
struct cm_ws_deflate;

/*
 * Creates the state for a connection that negotiated `agreed` (from
 * cm_ws_deflate_accept or cm_ws_deflate_check_response).  is_server picks
 * which side's parameters govern our compressor (server_* on a server,
 * client_* on a client).  level: zlib level 0-9, or -1 for zlib's default.
 * Returns NULL when out of memory.  Free with cm_ws_deflate_free().
 */
struct cm_ws_deflate *cm_ws_deflate_new(const struct cm_ws_deflate_params *agreed,
                                        bool is_server, int level);

/* Frees d and its zlib state; NULL is ignored. */
void cm_ws_deflate_free(struct cm_ws_deflate *d);

/*
 * Compresses one whole message in[0..n) and appends the payload to send
 * (with RSV1 set on its first frame) to out: the DEFLATE data flushed to a
 * byte boundary, without the final 00 00 FF FF that RFC 7692 7.2.1 says
 * to remove.  The compressor keeps its window between messages unless our
 * side agreed to no_context_takeover.  Returns 0, or CM_WS_E_INTERNAL (out
 * of memory; out may hold a partial result to discard).
 */
int cm_ws_deflate_compress(struct cm_ws_deflate *d, const uint8_t *in, size_t n,
                           struct cm_buf *out);

/*
 * Decompresses the next piece in[0..n) of a received compressed message
 * (the payload of each of its frames, unmasked, in order) and appends the
 * inflated bytes to out; fin: this is the message's last piece (the
 * 00 00 FF FF tail is then supplied here).  Inflation stops as soon as
 * the message would exceed max_message bytes (0: CM_WS_DEFAULT_MAX_MESSAGE)
 * so a small "zip bomb" cannot allocate more than max_message plus 16 KiB.
 * Returns 0, CM_WS_E_MESSAGE_TOO_BIG (1009), CM_WS_E_INFLATE (1007) or
 * CM_WS_E_INTERNAL (1011); after an error the connection must be closed.
 */
int cm_ws_deflate_decompress(struct cm_ws_deflate *d, const uint8_t *in, size_t n, bool fin,
                             struct cm_buf *out, uint64_t max_message);


/* ===================================================== protocol glue
 * WebSocket connections on top of the event core and the HTTP server
 * (src/ws/ws.c, upgrade.c, client.c).  Unlike the codec above these do
 * I/O; they run in the poll thread like every handler.
 *
 * Events on a WebSocket connection (c->is_websocket is set):
 *   CM_EV_WS_OPEN  handshake done; ev_data: struct cm_http_msg * (server:
 *                  the upgrade request, raised from inside cm_ws_upgrade();
 *                  client: the 101 response)
 *   CM_EV_WS_MSG   a whole data message; ev_data: struct cm_ws_msg *
 *   CM_EV_WS_CTL   a control frame (ping, pong, close); ev_data: struct
 *                  cm_ws_msg * with its payload.  Pings are answered with a
 *                  pong and closes are echoed automatically, after the
 *                  handler ran (a handler may answer a close itself with
 *                  cm_ws_close() to choose the code).
 *   CM_EV_ERROR    the peer broke the protocol (the reason in text); the
 *                  close frame with code 1002/1007/1009 is sent and the
 *                  connection closes.
 * The close handshake: whoever closes first sends a close frame, the other
 * echoes it; the server then closes TCP (after writing, it half-closes and
 * waits a bounded time for the client's FIN so no RST destroys the close
 * frame), the client waits for that (bounded by close_timeout_ms).
 */

/* ev_data of CM_EV_WS_MSG and CM_EV_WS_CTL.  data is unmasked, inflated
 * (permessage-deflate) and, for a fragmented message, reassembled; it is
 * valid only during the handler call. */
struct cm_ws_msg {
  struct cm_str data;
  uint8_t flags; /* the frame's first byte without RSV bits: FIN | opcode,
                    e.g. 0x81 for text; a reassembled message gives
                    FIN | the opcode of its first frame */
};

/* The opcode in cm_ws_msg.flags. */
#define CM_WS_MSG_OP(flags) ((flags) & 0x0F)

/* Options of a WebSocket connection; a field left 0 takes its default,
 * and a NULL pointer means all defaults. */
struct cm_ws_opts {
  struct cm_ws_limits limits;        /* frame / message size limits (16 MiB
                                        each by default); over them the
                                        peer gets close 1009.  allowed_rsv
                                        is set by negotiation, not here */
  bool compress;                     /* permessage-deflate: the client
                                        offers it, the server accepts an
                                        offer; off by default */
  struct cm_ws_deflate_opts deflate; /* its parameters (window bits,
                                        no_context_takeover) */
  int compress_level;                /* zlib level 1..9; 0: zlib's default */
  uint64_t close_timeout_ms;         /* wait this long for the peer's side
                                        of the close handshake: 5 s */
  uint64_t handshake_timeout_ms;     /* client: the 101 must arrive within
                                        this: 30 s */
};

/* Flag for cm_ws_send()'s op: "more frames of this message follow" (FIN
 * clear).  Continue with op CM_WS_OP_CONTINUE; the last frame without it. */
#define CM_WS_SEND_MORE 0x100

/*
 * Server handshake (RFC 6455 4.2): call from the CM_EV_HTTP_MSG handler of
 * an HTTP server connection with the request.  Checks GET, HTTP/1.1,
 * "Upgrade: websocket", "Connection: upgrade", Sec-WebSocket-Version 13 and
 * the key; if they hold it queues the 101 response with Sec-WebSocket-Accept,
 * the negotiated Sec-WebSocket-Extensions (when opts->compress) and the
 * header lines in extra_headers ("Name: value\r\n" each, NULL for none; e.g.
 * the chosen Sec-WebSocket-Protocol), detaches the HTTP protocol, makes c a
 * WebSocket connection and raises CM_EV_WS_OPEN (with hm) before returning
 * 0.  A bad handshake is answered with 400 (426 with
 * "Sec-WebSocket-Version: 13" for another version) and CM_EPARSE is
 * returned; the connection stays an HTTP connection.  Sending nothing, it
 * returns CM_EINVAL when extra_headers is not a well-formed header block
 * or c cannot be upgraded (a listener, a client, UDP, already WebSocket),
 * CM_ECLOSED when c is closing, CM_ENOMEM, or cm_send()'s code.
 * opts is copied (NULL: defaults).
 */
int cm_ws_upgrade(struct cm_conn *c, struct cm_http_msg *hm, const char *extra_headers);
int cm_ws_upgrade_opts(struct cm_conn *c, struct cm_http_msg *hm, const char *extra_headers,
                       const struct cm_ws_opts *opts);

/*
 * Client: connects to url ("ws://host:port/path?query"; "wss://" when TLS
 * is available) and performs the handshake: a GET with a random
 * Sec-WebSocket-Key, Host, the permessage-deflate offer when
 * opts->compress, and extra_headers (header lines as above, e.g.
 * "Sec-WebSocket-Protocol: chat\r\n").  The response must be 101 with the
 * right Sec-WebSocket-Accept and no extension or subprotocol we did not
 * offer; then CM_EV_WS_OPEN.  A failed handshake gives CM_EV_ERROR and the
 * connection closes.  Returns the connection (OPEN delivered), or NULL
 * (errno says why) for a bad URL or header block, or when memory runs out.
 */
struct cm_conn *cm_ws_connect(struct cm_mgr *mgr, const char *url, cm_event_fn fn, void *fn_data,
                              const char *extra_headers);
struct cm_conn *cm_ws_connect_opts(struct cm_mgr *mgr, const char *url, cm_event_fn fn,
                                   void *fn_data, const char *extra_headers,
                                   const struct cm_ws_opts *opts);

/*
 * Queues one message (or, with CM_WS_SEND_MORE, one fragment) of len bytes
 * with opcode op (CM_WS_OP_TEXT, _BINARY, _PING, _PONG, _CONTINUE, _CLOSE).
 * Clients mask every frame with a fresh key from RAND_bytes(); a whole data
 * message is compressed when permessage-deflate was negotiated.  Text must
 * be valid UTF-8 (not checked here).  op CM_WS_OP_CLOSE takes a close
 * payload (empty, or a 2-byte code and a UTF-8 reason) and starts the close
 * handshake like cm_ws_close().  Returns the bytes queued (> 0: the frame
 * header counts), or, queueing nothing: CM_EINVAL when c is not a
 * WebSocket connection (or its handshake is not done), for a bad opcode, a
 * control payload over 125 bytes or an invalid close payload; CM_EALREADY
 * for a close when one was already sent; CM_ECLOSED for other frames after
 * our close or on a closing connection; CM_ETOOBIG (mgr->send_limit),
 * CM_ENOMEM, CM_EIO (no random mask).  A compressed message that cannot be
 * queued also fails the connection (deferred ERROR): its compressor state
 * is lost.
 */
long cm_ws_send(struct cm_conn *c, const void *buf, size_t len, int op);

/*
 * Starts the close handshake: sends a close frame with code (0: none) and
 * reason (NUL-terminated, may be NULL; cut to fit 123 bytes on a UTF-8
 * boundary).  Data can still arrive until the peer's close.  Returns 0;
 * CM_EINVAL when c is not a WebSocket connection or code is not one an
 * endpoint may send (cm_ws_close_code_valid()); CM_EALREADY when a close
 * was already sent; cm_ws_send()'s codes when the frame cannot be queued.
 */
int cm_ws_close(struct cm_conn *c, unsigned code, const char *reason);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif

#endif
