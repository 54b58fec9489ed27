/* Internal interfaces of the MQTT files (not installed). */
#ifndef CM_MQTT_INTERNAL_H
#define CM_MQTT_INTERNAL_H

#include "core/internal.h"
#include "cymongoose.h"

/* Bit of a packet type in the masks below; bit 0 stands for will properties. */
#define CM__MQTT_BIT(cmd) (1u << (cmd))

/* Appends the property block of n properties without its length varint.
 * Returns 0, CM_EINVAL (unknown id, oversized value) or CM_ENOMEM. */
int cm__mqtt_props_raw(struct cm_buf *out, const struct cm_mqtt_prop *props, size_t n);

/* A bounded reader over a packet body: every read checks the bounds, and a
 * failed read sets err (sticky), so parsers can read a sequence of fields
 * and check once. */
struct cm__mqtt_rd {
  const uint8_t *p, *end;
  int err;            /* 0, or a negative reason code */
  const char *why;    /* static description of err */
};

static inline void cm__mqtt_rd_fail(struct cm__mqtt_rd *r, int err, const char *why) {
  if (r->err == 0) {
    r->err = err;
    r->why = why;
  }
  r->p = r->end;
}

/* ------------------------------------------------------------ the glue */
#define CM__MQTT_KIND 0x4D515454   /* "MQTT": state of a connection */
#define CM__MQTT_KIND_L 0x4D51544C /* "MQTL": options of a listener */

/* One of our QoS 1/2 messages, held until its flow completes. */
enum { CM__OUT_QUEUED, CM__OUT_PUBLISHED, CM__OUT_RELEASED };
/* pkt always holds the full topic and the interval as published; these ask
 * cm__mqtt_pump() to adapt each send to the connection it goes out on. */
enum {
  CM__OUT_F_ALIAS = 1,  /* a topic alias of this connection (not on resend) */
  CM__OUT_F_EXPIRY = 2  /* Message Expiry counted down; dropped once expired */
};
struct cm__mqtt_out {
  struct cm__mqtt_out *next;
  uint16_t id;
  uint8_t qos;
  uint8_t state;   /* CM__OUT_* */
  uint8_t flags;   /* CM__OUT_F_*: rewritten as it goes out (client, v5) */
  uint32_t expiry_s;  /* client: the Message Expiry Interval stored in pkt */
  uint64_t expire_ms; /* cm_millis() when its Message Expiry ends, 0: never */
  size_t len;
  uint8_t pkt[];   /* the encoded PUBLISH; DUP is set in pkt[0] on resend */
};

struct cm_mqtt_session {
  struct cm__mqtt_out *head, *tail; /* in publish order */
  size_t count;                     /* messages held */
  size_t inflight;                  /* of them PUBLISHED or RELEASED */
  uint16_t last_id;                 /* packet id counter */
  uint8_t *ids_out;                 /* bitmap: our ids in use (8 KiB, lazily) */
  uint8_t *ids_in;                  /* bitmap: peer's QoS 2 ids not released */
  size_t nin;                       /* bits set in ids_in */
  size_t expired;                   /* our messages dropped by Message Expiry */
  bool in_use;                      /* a connection holds it */
  char client_id[];                 /* a client's: the id last used
                                       (CM__MQTT_CLIENT_ID_CAP bytes); a
                                       server's session has none (one byte) */
};

/* Room for a client's id in sessions made by cm_mqtt_session_new(). */
#define CM__MQTT_CLIENT_ID_CAP 96

/* Session functions (session.c). */
void cm__mqtt_limits_resolve(struct cm_mqtt_limits *l);
/* A session for the server side of a connection (a broker's): no room for
 * a client id, so an idle broker client costs less.  NULL when out of
 * memory; freed with cm_mqtt_session_free(). */
struct cm_mqtt_session *cm__mqtt_session_new_server(void);
/* A fresh packet id not used by a held message (never 0). */
uint16_t cm__mqtt_session_id(struct cm_mqtt_session *s);
bool cm__mqtt_id_test(const uint8_t *bits, uint16_t id);
/* Sets (on) or clears a bit, allocating the map; false when out of memory. */
bool cm__mqtt_id_set(uint8_t **bits, uint16_t id, bool on);
/* Holds a copy of an encoded PUBLISH; NULL when out of memory. */
struct cm__mqtt_out *cm__mqtt_session_add(struct cm_mqtt_session *s, uint16_t id, uint8_t qos,
                                          const uint8_t *pkt, size_t len);
/* The held message with id (and state), or NULL. */
struct cm__mqtt_out *cm__mqtt_session_find(struct cm_mqtt_session *s, uint16_t id, uint8_t state);
/* Forgets a held message. */
void cm__mqtt_session_remove(struct cm_mqtt_session *s, struct cm__mqtt_out *o);
/* The broker has no session for us: in-flight messages become queued (sent
 * again as new), PUBRELs and incoming QoS 2 ids are dropped. */
void cm__mqtt_session_reset(struct cm_mqtt_session *s);

/* The state of one MQTT connection (client or server side). */
/* What only MQTT over WebSocket needs, apart from the connection state. */
struct cm__mqtt_ws {
  struct cm_buf rx;           /* bytes of messages not yet parsed */
  struct cm_buf pending;      /* packets queued before the handshake */
};

/* Field order keeps the padding out (an idle broker client holds one): the
 * state is 184 bytes, a 192-byte malloc chunk. */
struct cm__mqtt {
  int kind;                   /* CM__MQTT_KIND */
  uint32_t peer_max_packet;   /* peer's Maximum Packet Size, 0: none */
  struct cm_conn *c;
  struct cm_mqtt_limits lim;  /* resolved */
  struct cm_mqtt_session *sess;
  bool own_session;           /* sess is ours to free */
  bool is_server;
  bool over_ws;               /* packets travel in WebSocket binary messages */
  bool ws_open;               /* the WebSocket handshake is done */
  bool connected;             /* client: CONNACK accepted; server: CONNECT seen */
  bool failed;                /* we failed the connection: read nothing more */
  bool ping_out;              /* PINGREQ sent, no PINGRESP yet */
  uint8_t pub_reason;         /* reason code of the PUBACK/PUBREC answering the
                                 PUBLISH being delivered: an MQTT_MSG handler
                                 may set it (>= 0x80 refuses; a broker's ACL) */
  bool pub_no_ack;            /* ... or set this: no PUBACK/PUBREC at all (a
                                 broker whose store failed, to a 3.1.1 client,
                                 which sends the message again) */
  bool held;                  /* input left unparsed while the output is full */
  uint8_t version;            /* 3, 4 or 5; 0 on a server before CONNECT */
  uint16_t window;            /* in-flight window: min(max_inflight, peer's Receive Maximum) */
  uint8_t peer_max_qos;       /* peer's Maximum QoS (2 unless it said less) */
  bool peer_no_retain;        /* peer said Retain Available 0 */
  uint16_t peer_alias_max;    /* aliases we may send (peer's Topic Alias Maximum) */
  uint16_t our_alias_max;     /* aliases we accept (our Topic Alias Maximum) */
  bool timer_due;             /* a deadline passed: handled at the next flush (POLL) */
  bool swept;                 /* once connected, its owner calls cm__mqtt_sweep()
                                 instead of a timer of its own (a broker) */
  bool reauth;                /* client: AUTH 0x19 sent, no AUTH 0x00 yet */
  char **alias_in;            /* [our_alias_max + 1]: topics by alias, lazily */
  char **alias_out;           /* [peer_alias_max + 1]: topics we gave aliases */
  /* Called by cm__mqtt_pump() for each queued message before it goes out
   * (a broker: Message Expiry and the client's Maximum Packet Size, which
   * may have changed or run out while the message waited for the window).
   * Returns o, its replacement (linked in its place after prev, NULL for
   * the head), or NULL when it removed it. */
  struct cm__mqtt_out *(*prepare)(void *arg, struct cm__mqtt *st, struct cm__mqtt_out *o,
                                  struct cm__mqtt_out *prev);
  void *prepare_arg;
  uint64_t keepalive_ms;      /* 0: none */
  uint64_t last_tx_ms, last_rx_ms, ping_ms;
  uint64_t deadline_ms;       /* CONNACK / CONNECT deadline, 0: none */
  size_t base_recv_limit;
  struct cm_timer *timer;     /* keepalive and deadlines (cm__timer_*): allocated
                                 while there is one, so an idle broker client
                                 without keepalive carries none */
  struct cm__mqtt_ws *ws;     /* over WebSocket only (allocated by attach) */
  char *auth_method;          /* v5 Authentication Method of the CONNECT
                                 (sent or received), or NULL: no enhanced
                                 authentication (4.12) */
  struct cm_tls_opts *tls;    /* client: TLS options to apply at CONNECT (a
                                 copy, views into the same allocation), or NULL */
};

/* conn.c */
void cm__mqtt_pfn(struct cm_conn *c, int ev, void *ev_data);
struct cm__mqtt *cm__mqtt_of(const struct cm_conn *c);
/* Allocates the state for c (not attached) and schedules its deadline. */
struct cm__mqtt *cm__mqtt_new(struct cm_conn *c, const struct cm_mqtt_limits *lim,
                              struct cm_mqtt_session *sess);
/* Attaches st as c's protocol: directly, or over c's WebSocket. */
bool cm__mqtt_attach(struct cm_conn *c, struct cm__mqtt *st, bool over_ws);
void cm__mqtt_free(struct cm__mqtt *st);
/* Keeps a copy of method as st->auth_method; false when out of memory. */
bool cm__mqtt_set_auth_method(struct cm__mqtt *st, struct cm_str method);
/* The calling thread's encoding buffer, emptied: fill it, copy it out
 * (cm__mqtt_tx, cm__mqtt_session_add), then cm__mqtt_scratch_done() before
 * anything else may use it. */
struct cm_buf *cm__mqtt_scratch(void);
void cm__mqtt_scratch_done(struct cm_buf *b);
/* v5 outgoing topic alias for topic (api.c): the alias number, and whether
 * the name must still be sent (first use); 0 when none is available (the
 * peer allows none, or all st->peer_alias_max are taken).  Only for
 * packets sent on this connection now: a held message takes its alias as
 * it goes out (cm__mqtt_send_out), never into its stored copy, since a
 * resend on another connection would carry an alias that means nothing
 * there. */
uint16_t cm__mqtt_alias_for(struct cm__mqtt *st, struct cm_str topic, bool *first);
/* Frees alias (given with first set) when the packet naming it was not
 * sent after all. */
void cm__mqtt_alias_forget(struct cm__mqtt *st, uint16_t alias);
/* Sends raw packet bytes (over WebSocket: one binary message). */
bool cm__mqtt_tx(struct cm__mqtt *st, const void *p, size_t n);
/* Encodes and sends m with the connection's version. */
bool cm__mqtt_send_pkt(struct cm__mqtt *st, struct cm_mqtt_packet *m);
/* cm__mqtt_send_pkt() with the reason: 0, CM_EINVAL (not encodable) or
 * cm__mqtt_tx_error(). */
int cm__mqtt_send_rc(struct cm__mqtt *st, struct cm_mqtt_packet *m);
/* Why cm__mqtt_tx() refused: CM_ECLOSED, CM_ETOOBIG or CM_ENOMEM. */
int cm__mqtt_tx_error(const struct cm_conn *c);
/* Sends as many queued messages as the window allows. */
void cm__mqtt_pump(struct cm__mqtt *st);
/* Sends a held message: a PUBREL when released, else the PUBLISH (again
 * with DUP when dup), its topic alias and remaining expiry as its flags
 * ask.  False when it cannot be queued. */
bool cm__mqtt_send_out(struct cm__mqtt *st, struct cm__mqtt_out *o, bool dup);
/* A held message whose Message Expiry ran out (CM__OUT_F_EXPIRY): logged
 * and forgotten.  True when it was dropped. */
bool cm__mqtt_out_expired(struct cm__mqtt *st, struct cm__mqtt_out *o, uint64_t now);
/* Sets the keepalive period (0: none) and arms the timer for it. */
void cm__mqtt_set_keepalive(struct cm__mqtt *st, uint64_t ms);
/* From now on, once connected, st's deadlines (keepalive) are checked by
 * its owner calling cm__mqtt_sweep() periodically, not by a timer of its
 * own: a broker with 10,000 clients keeps one timer, not 10,000.  A
 * deadline is then noticed up to one sweep period late. */
void cm__mqtt_use_sweep(struct cm__mqtt *st);
/* Acts on st's deadline when it passed by now (at the next flush, as a
 * timer would). */
void cm__mqtt_sweep(struct cm__mqtt *st, uint64_t now);
/* client.c: CONNACK arrived (after MQTT_CMD). */
void cm__mqtt_client_connack(struct cm__mqtt *st, const struct cm_mqtt_packet *m);
/* server.c: CONNECT arrived (before MQTT_CMD, so the answer uses its version). */
void cm__mqtt_server_connect(struct cm__mqtt *st, const struct cm_mqtt_packet *m);
/* server.c: events of a listener (and of its children before they get
 * their own state). */
void cm__mqtt_listener_pfn(struct cm_conn *c, int ev, void *ev_data);

#endif
