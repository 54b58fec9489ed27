/* Internal state shared by the WebSocket protocol files (ws.c, upgrade.c,
 * client.c).  Not installed. */
#ifndef CM_WS_INTERNAL_H
#define CM_WS_INTERNAL_H

#include "cymongoose.h"

/* Adds n bytes to the open message's size (frame.c; cm_ws_msg_frame()
 * calls it for the payload of every uncompressed frame); returns
 * CM_WS_E_MESSAGE_TOO_BIG if that passes lim->max_message_size, else 0. */
int cm__ws_msg_grow(struct cm_ws_msg_state *s, uint64_t n, const struct cm_ws_limits *lim);

#define CM__WS_KIND 0x57534331 /* "WSC1": pfn_data of a WebSocket connection */

struct cm__ws {
  int kind;                      /* CM__WS_KIND */
  struct cm_ws_opts opts;        /* resolved: no zero fields left */
  struct cm_ws_limits lim;       /* opts.limits with the negotiated allowed_rsv */
  struct cm_ws_msg_state ms;     /* the message being received */
  struct cm_buf msg;             /* its bytes when fragmented or compressed */
  struct cm_ws_deflate *deflate; /* NULL unless permessage-deflate was agreed */
  size_t base_recv_limit;        /* c->recv_limit between frames */
  uint64_t deadline_ms;          /* handshake / close deadline; 0: none */
  struct cm_timer deadline;      /* fires at deadline_ms (the manager's timer heap) */
  struct cm_conn *conn;          /* set by cm__ws_install */
  bool handshaking;              /* client: waiting for the 101 response */
  bool offered_protocol;         /* client: the request had Sec-WebSocket-Protocol */
  bool check_input;              /* bytes may sit in c->recv with no READ to come */
  bool close_sent;               /* our close frame is queued */
  bool close_received;           /* the peer's close frame arrived (or we failed) */
  bool finishing;                /* both closes exchanged (or failed): ending TCP */
  bool failed;                   /* we failed the connection (protocol error) */
  char accept[29];               /* client: the Sec-WebSocket-Accept expected */
  struct cm_buf request;         /* client: the handshake, sent on CONNECT */
  cm_event_fn upper;             /* a protocol carried in the messages (MQTT over
                                    WebSocket), or NULL: it sees every event after
                                    the WebSocket handler, and WS_OPEN, WS_MSG and
                                    WS_CTL go to it instead of the user handler */
  void *upper_data;              /* its state; freed by it on CLOSE */
};

/* Resolves defaults of opts (NULL: all defaults). */
struct cm_ws_opts cm__ws_resolve_opts(const struct cm_ws_opts *opts);
/* Allocates the state of a WebSocket connection with resolved options. */
struct cm__ws *cm__ws_new(const struct cm_ws_opts *o);
/* The WebSocket state of c, or NULL. */
struct cm__ws *cm__ws_of(struct cm_conn *c);
/* Installs st as c's protocol (pfn/pfn_data); c->is_websocket once open. */
void cm__ws_install(struct cm_conn *c, struct cm__ws *st);
/* Sets (0: clears) the handshake / close deadline; at it, a handshake
 * fails with ERROR and a close handshake ends with a close. */
void cm__ws_set_deadline(struct cm__ws *st, uint64_t deadline_ms);
/* Frees st (and its zlib state), taking its deadline out of the heap. */
void cm__ws_free(struct cm__ws *st);
/* Handshake done: frames from now on (processes bytes already received). */
void cm__ws_opened(struct cm_conn *c, struct cm__ws *st);
/* Parses and handles the whole frames in c->recv (ws.c). */
void cm__ws_process(struct cm_conn *c, struct cm__ws *st);
/* Client handler pieces (client.c), called by the protocol handler. */
void cm__ws_client_connected(struct cm_conn *c, struct cm__ws *st);
void cm__ws_client_read(struct cm_conn *c, struct cm__ws *st);

/* Raises a WebSocket event (WS_OPEN, WS_MSG, WS_CTL): to the upper
 * protocol when there is one, else through cm_call(). */
void cm__ws_raise(struct cm_conn *c, struct cm__ws *st, int ev, void *ev_data);
/* Puts protocol fn (state data) on top of the WebSocket connection c.
 * Returns false when c is not a WebSocket connection or has one already. */
bool cm__ws_set_upper(struct cm_conn *c, cm_event_fn fn, void *data);
/* The state of the upper protocol fn on c, or NULL. */
void *cm__ws_upper_data(const struct cm_conn *c, cm_event_fn fn);

/* Standard padded base64 of n bytes into out (4 * ceil(n / 3) chars, no
 * NUL); returns the length (handshake.c). */
size_t cm__ws_b64_encode(const uint8_t *in, size_t n, char *out);

#endif
