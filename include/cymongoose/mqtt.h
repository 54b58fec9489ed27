/*
 * cymongoose: MQTT 3.1.1 and 5.0 (and 3.1 CONNECT on receipt).  Included by
 * cymongoose.h.
 *
 * Two halves:
 *  - the codec (src/mqtt/codec.c, props.c, topic.c): pure, no I/O, no
 *    global state, no allocation on the parse path.  Parsers take
 *    (pointer, length), never read past it, and answer with a length
 *    (> 0), 0 for "need more bytes", or a negative error, the negated MQTT 5
 *    reason code that describes it (-CM_MQTT_RC_MALFORMED, ...), with the
 *    precise reason as a static string.  Views (struct cm_str) point into
 *    the caller's buffer and stay valid as long as that buffer does.
 *    Encoders append to a struct cm_buf (they allocate; the buffer's owner
 *    frees it).
 *  - the protocol glue (src/mqtt/client.c, conn.c, session.c, ...): MQTT
 *    connections on top of the event core, as a client (cm_mqtt_connect)
 *    over TCP, TLS, WebSocket and secure WebSocket, and as a low-level
 *    server (cm_mqtt_listen) where the application answers each packet.
 */
#ifndef CYMONGOOSE_MQTT_H
#define CYMONGOOSE_MQTT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default) /* exported: see cymongoose.h */

struct cm_buf; /* cymongoose.h */
struct cm_conn;
struct cm_mgr;
struct cm_tls_opts;

/* ------------------------------------------------------------ constants */
/* Protocol levels (the CONNECT "protocol level" byte). */
enum { CM_MQTT_V31 = 3, CM_MQTT_V311 = 4, CM_MQTT_V5 = 5 };

/* Control packet types (high 4 bits of the first byte). */
enum {
  CM_MQTT_CMD_CONNECT = 1,
  CM_MQTT_CMD_CONNACK = 2,
  CM_MQTT_CMD_PUBLISH = 3,
  CM_MQTT_CMD_PUBACK = 4,
  CM_MQTT_CMD_PUBREC = 5,
  CM_MQTT_CMD_PUBREL = 6,
  CM_MQTT_CMD_PUBCOMP = 7,
  CM_MQTT_CMD_SUBSCRIBE = 8,
  CM_MQTT_CMD_SUBACK = 9,
  CM_MQTT_CMD_UNSUBSCRIBE = 10,
  CM_MQTT_CMD_UNSUBACK = 11,
  CM_MQTT_CMD_PINGREQ = 12,
  CM_MQTT_CMD_PINGRESP = 13,
  CM_MQTT_CMD_DISCONNECT = 14,
  CM_MQTT_CMD_AUTH = 15 /* 5.0 only */
};

/* MQTT 5.0 reason codes (section 2.4); 3.1.1 CONNACK return codes 1-5 are
 * CM_MQTT_CONNACK_V3_*. */
enum {
  CM_MQTT_RC_SUCCESS = 0x00, /* also "normal disconnection", "granted QoS 0" */
  CM_MQTT_RC_GRANTED_QOS_1 = 0x01,
  CM_MQTT_RC_GRANTED_QOS_2 = 0x02,
  CM_MQTT_RC_DISCONNECT_WITH_WILL = 0x04,
  CM_MQTT_RC_NO_MATCHING_SUBSCRIBERS = 0x10,
  CM_MQTT_RC_NO_SUBSCRIPTION_EXISTED = 0x11,
  CM_MQTT_RC_CONTINUE_AUTHENTICATION = 0x18,
  CM_MQTT_RC_REAUTHENTICATE = 0x19,
  CM_MQTT_RC_UNSPECIFIED = 0x80,
  CM_MQTT_RC_MALFORMED = 0x81,
  CM_MQTT_RC_PROTOCOL_ERROR = 0x82,
  CM_MQTT_RC_IMPLEMENTATION_SPECIFIC = 0x83,
  CM_MQTT_RC_UNSUPPORTED_VERSION = 0x84,
  CM_MQTT_RC_CLIENT_ID_NOT_VALID = 0x85,
  CM_MQTT_RC_BAD_USERNAME_OR_PASSWORD = 0x86,
  CM_MQTT_RC_NOT_AUTHORIZED = 0x87,
  CM_MQTT_RC_SERVER_UNAVAILABLE = 0x88,
  CM_MQTT_RC_SERVER_BUSY = 0x89,
  CM_MQTT_RC_BANNED = 0x8A,
  CM_MQTT_RC_SERVER_SHUTTING_DOWN = 0x8B,
  CM_MQTT_RC_BAD_AUTH_METHOD = 0x8C,
  CM_MQTT_RC_KEEP_ALIVE_TIMEOUT = 0x8D,
  CM_MQTT_RC_SESSION_TAKEN_OVER = 0x8E,
  CM_MQTT_RC_TOPIC_FILTER_INVALID = 0x8F,
  CM_MQTT_RC_TOPIC_NAME_INVALID = 0x90,
  CM_MQTT_RC_PACKET_ID_IN_USE = 0x91,
  CM_MQTT_RC_PACKET_ID_NOT_FOUND = 0x92,
  CM_MQTT_RC_RECEIVE_MAXIMUM_EXCEEDED = 0x93,
  CM_MQTT_RC_TOPIC_ALIAS_INVALID = 0x94,
  CM_MQTT_RC_PACKET_TOO_LARGE = 0x95,
  CM_MQTT_RC_MESSAGE_RATE_TOO_HIGH = 0x96,
  CM_MQTT_RC_QUOTA_EXCEEDED = 0x97,
  CM_MQTT_RC_ADMINISTRATIVE_ACTION = 0x98,
  CM_MQTT_RC_PAYLOAD_FORMAT_INVALID = 0x99,
  CM_MQTT_RC_RETAIN_NOT_SUPPORTED = 0x9A,
  CM_MQTT_RC_QOS_NOT_SUPPORTED = 0x9B,
  CM_MQTT_RC_USE_ANOTHER_SERVER = 0x9C,
  CM_MQTT_RC_SERVER_MOVED = 0x9D,
  CM_MQTT_RC_SHARED_SUBS_NOT_SUPPORTED = 0x9E,
  CM_MQTT_RC_CONNECTION_RATE_EXCEEDED = 0x9F,
  CM_MQTT_RC_MAXIMUM_CONNECT_TIME = 0xA0,
  CM_MQTT_RC_SUB_IDS_NOT_SUPPORTED = 0xA1,
  CM_MQTT_RC_WILDCARD_SUBS_NOT_SUPPORTED = 0xA2
};

/* MQTT 3.1.1 CONNACK return codes (section 3.2.2.3). */
enum {
  CM_MQTT_CONNACK_V3_ACCEPTED = 0,
  CM_MQTT_CONNACK_V3_BAD_VERSION = 1,
  CM_MQTT_CONNACK_V3_ID_REJECTED = 2,
  CM_MQTT_CONNACK_V3_UNAVAILABLE = 3,
  CM_MQTT_CONNACK_V3_BAD_CREDENTIALS = 4,
  CM_MQTT_CONNACK_V3_NOT_AUTHORIZED = 5
};

/* A readable name for a reason code ("not authorized"), for MQTT 5 when
 * version is 5, else for a 3.1.1 CONNACK return code when cmd is
 * CM_MQTT_CMD_CONNACK.  Static string, never NULL ("unknown reason"). */
const char *cm_mqtt_reason_str(uint8_t version, int cmd, int code);

/* Property identifiers (MQTT 5.0 section 2.2.2.2). */
enum {
  CM_MQTT_PROP_PAYLOAD_FORMAT_INDICATOR = 0x01,      /* byte */
  CM_MQTT_PROP_MESSAGE_EXPIRY_INTERVAL = 0x02,       /* int (4 bytes) */
  CM_MQTT_PROP_CONTENT_TYPE = 0x03,                  /* string */
  CM_MQTT_PROP_RESPONSE_TOPIC = 0x08,                /* string */
  CM_MQTT_PROP_CORRELATION_DATA = 0x09,              /* binary */
  CM_MQTT_PROP_SUBSCRIPTION_IDENTIFIER = 0x0B,       /* variable int */
  CM_MQTT_PROP_SESSION_EXPIRY_INTERVAL = 0x11,       /* int */
  CM_MQTT_PROP_ASSIGNED_CLIENT_IDENTIFIER = 0x12,    /* string */
  CM_MQTT_PROP_SERVER_KEEP_ALIVE = 0x13,             /* short */
  CM_MQTT_PROP_AUTHENTICATION_METHOD = 0x15,         /* string */
  CM_MQTT_PROP_AUTHENTICATION_DATA = 0x16,           /* binary */
  CM_MQTT_PROP_REQUEST_PROBLEM_INFORMATION = 0x17,   /* byte */
  CM_MQTT_PROP_WILL_DELAY_INTERVAL = 0x18,           /* int */
  CM_MQTT_PROP_REQUEST_RESPONSE_INFORMATION = 0x19,  /* byte */
  CM_MQTT_PROP_RESPONSE_INFORMATION = 0x1A,          /* string */
  CM_MQTT_PROP_SERVER_REFERENCE = 0x1C,              /* string */
  CM_MQTT_PROP_REASON_STRING = 0x1F,                 /* string */
  CM_MQTT_PROP_RECEIVE_MAXIMUM = 0x21,               /* short */
  CM_MQTT_PROP_TOPIC_ALIAS_MAXIMUM = 0x22,           /* short */
  CM_MQTT_PROP_TOPIC_ALIAS = 0x23,                   /* short */
  CM_MQTT_PROP_MAXIMUM_QOS = 0x24,                   /* byte */
  CM_MQTT_PROP_RETAIN_AVAILABLE = 0x25,              /* byte */
  CM_MQTT_PROP_USER_PROPERTY = 0x26,                 /* string pair */
  CM_MQTT_PROP_MAXIMUM_PACKET_SIZE = 0x27,           /* int */
  CM_MQTT_PROP_WILDCARD_SUBSCRIPTION_AVAILABLE = 0x28, /* byte */
  CM_MQTT_PROP_SUBSCRIPTION_IDENTIFIER_AVAILABLE = 0x29, /* byte */
  CM_MQTT_PROP_SHARED_SUBSCRIPTION_AVAILABLE = 0x2A  /* byte */
};

/* Property value types; the values are the Python MQTT_PROP_TYPE_*. */
enum {
  CM_MQTT_PROP_TYPE_BYTE = 0,
  CM_MQTT_PROP_TYPE_STRING = 1,
  CM_MQTT_PROP_TYPE_STRING_PAIR = 2,
  CM_MQTT_PROP_TYPE_BINARY_DATA = 3,
  CM_MQTT_PROP_TYPE_VARIABLE_INT = 4,
  CM_MQTT_PROP_TYPE_INT = 5,
  CM_MQTT_PROP_TYPE_SHORT = 6
};

/* The type of property id, or -1 for an id MQTT 5.0 does not define. */
int cm_mqtt_prop_type(int id);

/* Subscription option bits (the byte after each filter in SUBSCRIBE). */
#define CM_MQTT_SUB_QOS_MASK 0x03
#define CM_MQTT_SUB_NO_LOCAL 0x04            /* 5.0 */
#define CM_MQTT_SUB_RETAIN_AS_PUBLISHED 0x08 /* 5.0 */
#define CM_MQTT_SUB_RETAIN_HANDLING_SHIFT 4  /* 5.0: 0 send, 1 send if new, 2 never */

/* The largest Remaining Length (4-byte varint) and so the largest packet. */
#define CM_MQTT_MAX_REMAINING 268435455u
#define CM_MQTT_MAX_PACKET (CM_MQTT_MAX_REMAINING + 5u)

/* Defaults of the limits below (a field left 0 takes them). */
#define CM_MQTT_DEFAULT_MAX_PACKET (16u * 1024 * 1024) /* bytes, whole packet */
#define CM_MQTT_DEFAULT_MAX_INFLIGHT 65535u  /* our QoS>0 sends awaiting acks */
/* The same for a 3.1.1 client: its broker cannot announce a Receive Maximum,
 * and brokers drop what they cannot hold (mosquitto: 20 in flight, silently
 * for QoS 2), so the window stays where paho and MQTT.js keep theirs. */
#define CM_MQTT_V4_DEFAULT_MAX_INFLIGHT 20u
#define CM_MQTT_DEFAULT_MAX_QUEUED 10000u    /* QoS>0 sends waiting for a window slot */
#define CM_MQTT_DEFAULT_MAX_INCOMING 65535u  /* peer's QoS 2 ids awaiting PUBREL */
#define CM_MQTT_DEFAULT_CONNECT_TIMEOUT_MS 30000u /* CONNACK (client) / CONNECT (server) deadline */

/* ------------------------------------------------------------ properties */
/*
 * One property.  Which fields hold the value depends on the type:
 * BYTE, SHORT, INT, VARIABLE_INT: iv; STRING, BINARY_DATA: val;
 * STRING_PAIR: key (name) and val (value).  Unused fields are zero/empty.
 * Parsed properties are views into the packet; properties given to an
 * encoder are read during the call only.
 */
struct cm_mqtt_prop {
  uint8_t id;          /* CM_MQTT_PROP_* */
  uint32_t iv;         /* integer value */
  struct cm_str key;   /* name of a user property */
  struct cm_str val;   /* string, binary data, or user property value */
};

/*
 * Iterates over a property block (the bytes after its length, as found in
 * cm_mqtt_packet.props or .will_props, already validated by the parser).
 * *pos starts at 0.  Fills *p and returns true for each property in order,
 * false at the end (or on bytes that are not a valid property, so it is
 * also safe on unvalidated input).
 */
bool cm_mqtt_prop_next(struct cm_str block, size_t *pos, struct cm_mqtt_prop *p);

/* The first property id in block into *p; false when absent. */
bool cm_mqtt_prop_find(struct cm_str block, uint8_t id, struct cm_mqtt_prop *p);

/*
 * Validates a property block received in a packet of type cmd (or, with
 * cmd 0, a CONNECT's will properties): every id known, its value well
 * formed (strings UTF-8 without NUL, variable ints at most 4
 * bytes), the id allowed in that packet, no property repeated that may
 * appear once.  Returns 0 or -CM_MQTT_RC_MALFORMED / -CM_MQTT_RC_PROTOCOL_ERROR
 * with *why set to a static description.
 */
int cm_mqtt_props_check(struct cm_str block, int cmd, const char **why);

/* The encoded size of n properties (without the block's length varint). */
size_t cm_mqtt_props_size(const struct cm_mqtt_prop *props, size_t n);

/*
 * Appends the property block of n properties to out: the length varint,
 * then each property encoded as its id's type requires (the iv of a SHORT
 * is cut to 16 bits, of a BYTE to 8).  Returns 0; CM_EINVAL for an unknown
 * id or an oversized value; CM_ETOOBIG when the block would pass
 * CM_MQTT_MAX_REMAINING; CM_ENOMEM.
 */
int cm_mqtt_props_encode(struct cm_buf *out, const struct cm_mqtt_prop *props, size_t n);

/* ---------------------------------------------------------------- varint */
/*
 * Decodes a Variable Byte Integer at buf[0..len): returns the bytes used
 * (1..4) with *value set, 0 when more bytes are needed, or
 * -CM_MQTT_RC_MALFORMED when a 5th byte would be needed.
 */
int cm_mqtt_varint_decode(const uint8_t *buf, size_t len, uint32_t *value);
/* Encodes v (at most CM_MQTT_MAX_REMAINING) into out; returns 1..4, 0 when
 * v is too large. */
size_t cm_mqtt_varint_encode(uint8_t out[4], uint32_t v);

/* ------------------------------------------------------- strings, topics */
/* True when s is a valid MQTT UTF-8 string: at most 65535 bytes, valid
 * UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF), and no
 * U+0000. */
bool cm_mqtt_str_valid(struct cm_str s);
/* True when s is a valid topic name (for PUBLISH): a valid string of at
 * least 1 byte without '+' or '#'. */
bool cm_mqtt_topic_valid(struct cm_str s);
/* True when s is a valid topic filter: a valid string of at least 1 byte
 * where '#' is alone in the last level and '+' alone in its level. */
bool cm_mqtt_filter_valid(struct cm_str s);
/*
 * True when topic name topic matches topic filter filter (both assumed
 * valid): '+' matches one whole level, '#' the parent level and any number
 * of levels below it, and a filter starting with a wildcard does not match
 * a topic starting with '$' (section 4.7.2).  Shared subscription prefixes
 * ("$share/group/") are not stripped here.
 */
bool cm_mqtt_match(struct cm_str topic, struct cm_str filter);

/* ---------------------------------------------------------------- packets */
/*
 * A parsed packet: every field is a plain value or a view into the bytes
 * given to cm_mqtt_parse().  Fields that the packet type does not carry
 * are zero or empty.
 */
struct cm_mqtt_packet {
  uint8_t cmd;           /* CM_MQTT_CMD_* */
  uint8_t flags;         /* low 4 bits of the first byte */
  uint8_t version;       /* 3, 4 or 5: the level this packet was read as */
  uint8_t qos;           /* PUBLISH QoS; CONNECT will QoS */
  bool dup;              /* PUBLISH */
  bool retain;           /* PUBLISH; CONNECT will retain */
  bool session_present;  /* CONNACK */
  uint16_t id;           /* packet identifier, 0 when the packet has none */
  uint8_t reason;        /* CONNACK return/reason code; reason code of
                            PUBACK, PUBREC, PUBREL, PUBCOMP, DISCONNECT, AUTH
                            (0 when omitted); SUBACK/UNSUBACK: the first code */
  struct cm_str topic;   /* PUBLISH topic name (empty with a v5 topic alias) */
  struct cm_str payload; /* PUBLISH application message; SUBSCRIBE: the
                            (filter, options) list; UNSUBSCRIBE: the filter
                            list; SUBACK, UNSUBACK: the reason code bytes
                            (cm_mqtt_list_next walks the lists) */
  struct cm_str props;   /* v5 property block, without its length */
  size_t len;            /* bytes of the whole packet */
  /* CONNECT only: */
  struct cm_str proto_name;  /* "MQTT", or "MQIsdp" for 3.1 */
  uint8_t connect_flags;     /* the raw flags byte */
  bool clean;                /* clean session / clean start */
  bool has_will, has_username, has_password;
  uint16_t keepalive;        /* seconds */
  struct cm_str client_id;
  struct cm_str will_props;  /* v5 will property block */
  struct cm_str will_topic;
  struct cm_str will_payload;
  struct cm_str username;
  struct cm_str password;
  /* On error: */
  const char *error;     /* static description of what was wrong, else NULL */
};

/*
 * Parses the packet at the start of buf[0..len) into *m.  version: the
 * level agreed on the connection (4 or 5; 3 reads as 4); a CONNECT is read
 * with the level it declares.  max_packet: the largest whole packet
 * accepted (0: CM_MQTT_DEFAULT_MAX_PACKET); checked as soon as the fixed
 * header is complete, so an oversized packet is refused before its bytes
 * are buffered.
 * Returns the packet length (> 0), 0 when more bytes are needed, or a
 * negative error with m->error set:
 *   -CM_MQTT_RC_MALFORMED (0x81): bad varint, lengths that do not add up,
 *       invalid UTF-8 or NUL in a string, bad flags, bad property bytes;
 *   -CM_MQTT_RC_PROTOCOL_ERROR (0x82): well formed but not allowed (packet
 *       id 0, QoS 3, a property repeated or not allowed in this packet,
 *       AUTH on 3.1.1, empty SUBSCRIBE);
 *   -CM_MQTT_RC_PACKET_TOO_LARGE (0x95): over max_packet;
 *   -CM_MQTT_RC_TOPIC_NAME_INVALID (0x90): wildcard or empty topic in
 *       PUBLISH (an empty topic is allowed with a v5 topic alias);
 *   -CM_MQTT_RC_TOPIC_FILTER_INVALID (0x8F): bad filter in SUBSCRIBE or
 *       UNSUBSCRIBE;
 *   -CM_MQTT_RC_UNSUPPORTED_VERSION (0x84): CONNECT with an unknown
 *       protocol name or level (answer CONNACK 0x01 on 3.1.1, 0x84 on 5).
 */
int cm_mqtt_parse(const uint8_t *buf, size_t len, uint8_t version, size_t max_packet,
                  struct cm_mqtt_packet *m);

/*
 * Walks the list in a SUBSCRIBE, UNSUBSCRIBE, SUBACK or UNSUBACK packet
 * parsed by cm_mqtt_parse.  *pos starts at 0.  Each call returns true with
 * the next entry: SUBSCRIBE: *filter and *code (the options byte);
 * UNSUBSCRIBE: *filter (code 0); SUBACK, UNSUBACK: *code (filter empty).
 * Returns false at the end.  filter and code may be NULL.
 */
bool cm_mqtt_list_next(const struct cm_mqtt_packet *m, size_t *pos, struct cm_str *filter,
                       uint8_t *code);

/*
 * Appends the encoding of m to out.  Reads: cmd and, by type, version,
 * flags/qos/dup/retain, id, reason, session_present, topic, payload
 * (SUBSCRIBE/UNSUBSCRIBE/SUBACK/UNSUBACK: the list in wire form, e.g.
 * built with cm_mqtt_list_append), props (v5: a property block without its
 * length, e.g. from cm_mqtt_props_encode minus the varint, or a received
 * block passed on) and the CONNECT fields (proto_name empty: "MQTT";
 * connect_flags is computed from the bools).  3.1.1 ack packets with a
 * reason code other than 0 are written without it.  Every view is read
 * during the call only.  Returns 0, or -CM_MQTT_RC_PACKET_TOO_LARGE when
 * the remaining length would pass CM_MQTT_MAX_REMAINING, -CM_MQTT_RC_MALFORMED
 * for a string longer than 65535 bytes or an unknown cmd, CM_ENOMEM when
 * memory runs out.  On failure out is unchanged.
 */
int cm_mqtt_encode(struct cm_buf *out, const struct cm_mqtt_packet *m);

/* Appends one list entry in wire form for SUBSCRIBE (filter and options
 * byte), UNSUBSCRIBE (filter; code ignored) or SUBACK/UNSUBACK (code only;
 * filter ignored) to list.  Returns 0, CM_ENOMEM, or CM_ETOOBIG when the
 * filter is over 65535 bytes. */
int cm_mqtt_list_append(struct cm_buf *list, int cmd, struct cm_str filter, uint8_t code);

/* ================================================================ glue */
/*
 * MQTT connections on the event core (client and low-level server).
 *
 * Events on an MQTT connection (ev_data in parentheses):
 *   CM_EV_MQTT_CMD   every packet received, before anything else is done
 *                    with it (struct cm_mqtt_msg *)
 *   CM_EV_MQTT_MSG   each application message: a PUBLISH received (for
 *                    QoS 2: once, on the first PUBLISH of its id; the
 *                    duplicates are acknowledged but not delivered again)
 *                    (struct cm_mqtt_msg *)
 *   CM_EV_MQTT_OPEN  client: CONNACK accepted the connection (int *, the
 *                    return/reason code, 0)
 *   CM_EV_ERROR      a refused connection ("MQTT: connection refused: not
 *                    authorized (0x87)"), a DISCONNECT from a 5.0 server
 *                    with a reason code >= 0x80, a malformed or oversized
 *                    packet from the peer ("MQTT: malformed packet (0x81):
 *                    ..."), a keepalive timeout, a CONNACK timeout.  The
 *                    connection then closes (after a DISCONNECT with the
 *                    reason code on 5.0 when we detected the error).
 * The acknowledgement flows run on both sides: a PUBLISH with QoS 1 is
 * answered with PUBACK, with QoS 2 with PUBREC, a PUBREL with PUBCOMP; the
 * acks of our own publishes (PUBACK; PUBREC, answered with PUBREL; PUBCOMP)
 * release their in-flight slots.  Everything else (CONNECT, SUBSCRIBE, ...
 * on a server) is the application's to answer.
 */

/*
 * ev_data of CM_EV_MQTT_MSG and CM_EV_MQTT_CMD; valid only during the
 * handler call (views into the receive buffer or the connection's state).
 */
struct cm_mqtt_msg {
  struct cm_str topic;  /* PUBLISH: the topic (a v5 topic alias is resolved) */
  struct cm_str data;   /* PUBLISH: the payload; other packets: the payload
                           section (SUBACK codes, SUBSCRIBE list, ...) */
  struct cm_str dgram;  /* the whole packet as received */
  struct cm_str props;  /* v5 property block (cm_mqtt_prop_next walks it) */
  uint16_t id;          /* packet identifier, 0 when none */
  uint8_t cmd;          /* CM_MQTT_CMD_* */
  uint8_t qos;          /* PUBLISH QoS */
  uint8_t ack;          /* CONNACK return/reason code; reason code of acks,
                           DISCONNECT, AUTH; SUBACK/UNSUBACK: the first code */
  bool retain;
  bool dup;
  bool session_present; /* CONNACK */
  uint8_t version;      /* the connection's protocol level (4 or 5; 3 for a
                           3.1 client on a server) */
  const struct cm_mqtt_packet *pkt; /* every parsed field (CONNECT details,
                                       lists); same lifetime */
};

/* Per-connection limits; a field left 0 takes its default. */
struct cm_mqtt_limits {
  uint32_t max_packet_size; /* largest packet accepted from the peer
                               (CM_MQTT_DEFAULT_MAX_PACKET); a larger one is
                               an ERROR (0x95) and the connection closes.  A
                               client also announces it in CONNECT (v5) */
  uint32_t max_inflight;    /* our QoS>0 publishes awaiting their final ack
                               at a time; further ones wait in the queue.
                               The effective window is min(this, the peer's
                               Receive Maximum) (CM_MQTT_DEFAULT_MAX_INFLIGHT;
                               CM_MQTT_V4_DEFAULT_MAX_INFLIGHT for a 3.1.1
                               client) */
  uint32_t max_queued;      /* QoS>0 publishes waiting for a window slot; past
                               it cm_mqtt_pub() fails (CM_MQTT_DEFAULT_MAX_QUEUED) */
  uint32_t max_incoming;    /* peer's QoS 2 ids held for duplicate
                               suppression until PUBREL; past it: v5
                               DISCONNECT 0x93, ERROR, close
                               (CM_MQTT_DEFAULT_MAX_INCOMING) */
  uint64_t connect_timeout_ms; /* client: CONNACK must arrive within this
                                  after cm_mqtt_connect() (DNS, TCP, TLS and
                                  WebSocket handshakes included); server:
                                  CONNECT within this after accept
                                  (CM_MQTT_DEFAULT_CONNECT_TIMEOUT_MS) */
};

/*
 * The state of a persistent session, kept by the application across
 * connections: QoS>0 messages we sent that are not fully acknowledged
 * (with their packet ids), PUBRELs not yet completed, the peer's QoS 2 ids
 * received but not released, and the packet id counter.  Create it once,
 * pass it in cm_mqtt_opts.session of each connection with the same client
 * id and clean = false; when the broker's CONNACK says "session present",
 * unacknowledged PUBLISHes are sent again with DUP set and PUBRELs again,
 * in their original order, before anything new; when it says not present
 * (or clean is true), the state is discarded.
 * Opaque; owned by the application; one connection at a time may use it,
 * and it must outlive that connection's CLOSE (or be used by none when
 * freed).  Without a session in the options each connection keeps its own
 * state, freed with it.
 */
struct cm_mqtt_session;

/* Creates an empty session; NULL when memory runs out.  lim may be NULL:
 * the bounds that apply (max_inflight, max_queued, max_incoming) are those
 * of the connection using the session (cm_mqtt_opts.limits). */
struct cm_mqtt_session *cm_mqtt_session_new(const struct cm_mqtt_limits *lim);
/* Frees s and the messages it holds; NULL is ignored.  No connection may
 * be using it. */
void cm_mqtt_session_free(struct cm_mqtt_session *s);
/* How many of our QoS>0 messages s holds unacknowledged or queued. */
size_t cm_mqtt_session_pending(const struct cm_mqtt_session *s);
/* How many of s's messages were dropped unsent because their v5 Message
 * Expiry Interval ran out while they waited (each also logged at INFO). */
size_t cm_mqtt_session_expired(const struct cm_mqtt_session *s);

/* Options of cm_mqtt_connect().  All views and arrays are read during the
 * call only (copied as needed).  Zero-initialise and set what you need. */
struct cm_mqtt_opts {
  struct cm_str client_id;  /* empty: a random "cm-" id is generated (and
                               kept in the session for reconnects) */
  struct cm_str user;       /* empty: no user name */
  struct cm_str pass;       /* empty: no password */
  bool clean;               /* 3.1.1 clean session / 5.0 clean start
                               (note: false when zero-initialised) */
  uint16_t keepalive;       /* seconds; 0 turns keepalive off.  When no
                               packet was sent for this long a PINGREQ goes
                               out; no PINGRESP within it is an ERROR.  A v5
                               Server Keep Alive in CONNACK replaces it */
  uint8_t version;          /* 4 (3.1.1, default when 0) or 5 */
  struct cm_str will_topic; /* empty: no will */
  struct cm_str will_message;
  uint8_t will_qos;
  bool will_retain;
  const struct cm_mqtt_prop *will_props; /* v5 will properties (will delay,
                                            message expiry, content type, ...) */
  size_t num_will_props;
  const struct cm_mqtt_prop *props;      /* v5 CONNECT properties: session
                                            expiry, receive maximum, maximum
                                            packet size, topic alias maximum,
                                            user properties, ...  What they
                                            announce is enforced (aliases
                                            accepted, limits lowered) */
  size_t num_props;
  struct cm_mqtt_limits limits;
  struct cm_mqtt_session *session;       /* persistent state (see above) or
                                            NULL; not owned */
  const struct cm_tls_opts *tls;         /* mqtts:// and wss://: TLS options
                                            (NULL: the automatic defaults);
                                            copied, applied when TCP connects
                                            (bad options: an ERROR then) */
  struct cm_str auth_method; /* v5 enhanced authentication (4.12): the
                                Authentication Method sent in CONNECT (also
                                accepted as a property in props); empty: none.
                                The server's AUTH challenges arrive as
                                CM_EV_MQTT_CMD (cmd CM_MQTT_CMD_AUTH, ack
                                0x18, Authentication Data in props); answer
                                with cm_mqtt_auth() */
  struct cm_str auth_data;   /* v5: the first Authentication Data (binary),
                                with auth_method only */
};

/*
 * Client: connects to url and opens an MQTT session.  Schemes:
 * "mqtt://host[:1883]", "mqtts://host[:8883]" (TLS, as cm_connect does for
 * TLS schemes), "ws://host:port/path" and "wss://..." (MQTT over WebSocket,
 * subprotocol "mqtt", packets in binary frames; a packet may span frames
 * and a frame may hold several).  "tcp://" is taken as "mqtt://".  CONNECT
 * goes out once the transport is up; CM_EV_MQTT_OPEN follows the CONNACK.
 * Publishing, subscribing etc. may start right away: what is sent before
 * the CONNACK is queued behind CONNECT.  opts NULL: defaults (version 4, no
 * keepalive, clean false, random id).  Returns the connection (OPEN
 * delivered), or NULL with errno set: EINVAL for a bad URL or options
 * (version not 4 or 5, invalid client id or user name, will topic, a
 * session another connection still uses), ENOMEM.  Other failures arrive
 * as CM_EV_ERROR from the loop, never from inside this call.
 */
struct cm_conn *cm_mqtt_connect(struct cm_mgr *mgr, const char *url, const struct cm_mqtt_opts *opts,
                                cm_event_fn fn, void *fn_data);

/*
 * Server, low level: listens on url ("mqtt://ip:port", "tcp://",
 * "mqtts://" with cm_tls_listen_opts() on the returned listener); each
 * accepted connection parses packets into CM_EV_MQTT_CMD (and MQTT_MSG for
 * PUBLISH, with the QoS flows answered as described above).  The
 * application answers the rest itself: CONNACK with
 * cm_mqtt_send_connack(), SUBACK with cm_mqtt_send_suback(), PINGRESP
 * with cm_mqtt_pong(), messages with cm_mqtt_pub().  The CONNECT sets the
 * connection's protocol level.  lim NULL: defaults.  Returns the listener,
 * or NULL with errno set.
 */
struct cm_conn *cm_mqtt_listen(struct cm_mgr *mgr, const char *url, cm_event_fn fn, void *fn_data);
struct cm_conn *cm_mqtt_listen_opts(struct cm_mgr *mgr, const char *url,
                                    const struct cm_mqtt_limits *lim, cm_event_fn fn,
                                    void *fn_data);

/*
 * Makes c (a connection accepted by any listener, e.g. a WebSocket
 * connection after cm_ws_upgrade() with "Sec-WebSocket-Protocol: mqtt")
 * a low-level MQTT server connection as cm_mqtt_listen() children are.
 * Returns 0; CM_EALREADY when c already speaks MQTT; CM_EINVAL on a
 * listener; CM_ENOMEM.
 */
int cm_mqtt_serve(struct cm_conn *c, const struct cm_mqtt_limits *lim);

/* True when c is an MQTT connection (client or server side). */
bool cm_mqtt_is(const struct cm_conn *c);
/* The connection's protocol level: 4 or 5 (3 for a 3.1 client on a
 * server), 0 when not an MQTT connection or not yet known. */
uint8_t cm_mqtt_version(const struct cm_conn *c);

/* Options of one publish.  Views read during the call only. */
struct cm_mqtt_pub_opts {
  struct cm_str topic;
  struct cm_str message;
  uint8_t qos;     /* 0, 1 or 2 */
  bool retain;
  const struct cm_mqtt_prop *props; /* v5: message expiry, response topic,
                                       correlation data, content type,
                                       payload format, user properties.  A
                                       topic alias is managed by the library
                                       (see topic_alias); do not pass one */
  size_t num_props;
  bool topic_alias;  /* v5: use a topic alias for this topic when the peer
                        allows them (its Topic Alias Maximum from CONNACK),
                        sending the name only the first time on each
                        connection.  Aliases are assigned as messages go
                        out (a queued QoS 1/2 message gets one when the
                        window lets it leave); a resend after reconnect
                        (DUP) carries the full topic and no alias.  All
                        aliases taken: the name is sent */
};

/*
 * Publishes a message.  QoS 0 goes out at once.  QoS 1 and 2 get a packet
 * id and are held until acknowledged (PUBACK; PUBREC + PUBCOMP); when the
 * in-flight window is full (min of max_inflight and the peer's Receive
 * Maximum) they wait in the queue and go out, in order, as slots free.
 * The message is copied.  v5, QoS 1 and 2: a Message Expiry Interval in
 * props is counted down while the message waits (in the queue, or for a
 * resend after reconnect): it goes out with the seconds left, and once
 * they run out it is dropped unsent (logged at INFO, counted in
 * cm_mqtt_session_expired()); QoS 0 leaves at once and carries it as is.
 * Returns the packet id (0 for QoS 0), or a
 * negative code: CM_EINVAL (not an MQTT connection; invalid topic, empty or
 * with a wildcard, QoS or properties; a QoS above the peer's Maximum QoS or
 * retain when it has none, 5.0 CONNACK), CM_ECLOSED (closing, or after
 * DISCONNECT), CM_EAGAIN (queue full: max_queued), CM_ETOOBIG (larger than
 * the peer's Maximum Packet Size, or mgr->send_limit), CM_ENOMEM.
 */
int cm_mqtt_publish(struct cm_conn *c, const struct cm_mqtt_pub_opts *opts);
/* cm_mqtt_publish() without properties. */
int cm_mqtt_pub(struct cm_conn *c, struct cm_str topic, struct cm_str message, int qos,
                bool retain);

/* One subscription of a SUBSCRIBE. */
struct cm_mqtt_sub_opts {
  struct cm_str topic;       /* topic filter */
  uint8_t qos;               /* maximum QoS 0..2 */
  bool no_local;             /* v5: not our own messages */
  bool retain_as_published;  /* v5: keep the retain flag as published */
  uint8_t retain_handling;   /* v5: 0 send retained, 1 only if new, 2 never */
};

/*
 * Sends one SUBSCRIBE with n subscriptions (n >= 1); v5 sub_id (1 ..
 * 268435455, 0: none) becomes the Subscription Identifier, and props adds
 * user properties.  The SUBACK arrives as CM_EV_MQTT_CMD with the same id
 * and one code per subscription in data (granted QoS, or >= 0x80 refused).
 * Returns the packet id, or a negative code as cm_mqtt_publish() (CM_EINVAL
 * for an invalid filter or QoS).  Views read during the call only.
 */
int cm_mqtt_subscribe(struct cm_conn *c, const struct cm_mqtt_sub_opts *subs, size_t n,
                      uint32_t sub_id, const struct cm_mqtt_prop *props, size_t num_props);
/* SUBSCRIBE to one filter with QoS qos; returns the packet id or a
 * negative code. */
int cm_mqtt_sub(struct cm_conn *c, struct cm_str topic, int qos);
/* UNSUBSCRIBE from n filters (props: v5 user properties).  UNSUBACK comes
 * as CM_EV_MQTT_CMD.  Returns the packet id or a negative code. */
int cm_mqtt_unsubscribe(struct cm_conn *c, const struct cm_str *topics, size_t n,
                        const struct cm_mqtt_prop *props, size_t num_props);
int cm_mqtt_unsub(struct cm_conn *c, struct cm_str topic);

/* Sends PINGREQ / PINGRESP.  Returns 0; CM_EINVAL when c is not an MQTT
 * connection; CM_ECLOSED when it is closing; CM_ETOOBIG or CM_ENOMEM when
 * the packet cannot be queued.  The same codes for the senders below. */
int cm_mqtt_ping(struct cm_conn *c);
int cm_mqtt_pong(struct cm_conn *c);

/*
 * Sends DISCONNECT (v5: with reason code and properties, e.g. Session
 * Expiry Interval or a reason string) and closes the connection once it is
 * written; the broker then discards the will.  cm_close() instead drops the
 * connection without DISCONNECT, so the broker publishes the will.
 * Returns 0, or a code as cm_mqtt_ping() (CM_EINVAL also for bad props).
 */
int cm_mqtt_disconnect(struct cm_conn *c);
int cm_mqtt_disconnect_reason(struct cm_conn *c, uint8_t reason, const struct cm_mqtt_prop *props,
                              size_t num_props);

/*
 * v5 enhanced authentication (section 4.12): sends AUTH with reason
 * (client: CM_MQTT_RC_CONTINUE_AUTHENTICATION to answer a challenge,
 * CM_MQTT_RC_REAUTHENTICATE to start a re-authentication once connected;
 * low-level server: CM_MQTT_RC_CONTINUE_AUTHENTICATION or 0 for success),
 * the Authentication Method method (empty: the one of the CONNECT) and
 * Authentication Data data (empty: none), plus props (reason string, user
 * properties).  A client only receives AUTH when its CONNECT carried a
 * method, with that method, 0x18 while an exchange runs and 0x00 ending a
 * re-authentication; anything else is a protocol error (DISCONNECT 0x82,
 * ERROR).  A failed authentication ends with a CONNACK or DISCONNECT
 * reason code, an ERROR.  Views are read during the call only.
 * Returns 0, or a negative code: CM_EINVAL (not an MQTT 5.0 connection,
 * no method, a reason not allowed here, bad props), CM_ECLOSED (closing),
 * or a send error as cm_mqtt_ping() (CM_ENOMEM...).
 */
int cm_mqtt_auth(struct cm_conn *c, uint8_t reason, struct cm_str method, struct cm_str data,
                 const struct cm_mqtt_prop *props, size_t num_props);

/* Server side: sends CONNACK with return/reason code code (v5: and
 * properties).  What the v5 properties announce is enforced on the
 * connection: Topic Alias Maximum (aliases the client may use), Maximum
 * Packet Size and Receive Maximum (lower the limits), Server Keep Alive.
 * A refusal (code != 0) closes the connection once written.  Returns 0
 * or a code as cm_mqtt_ping(). */
int cm_mqtt_send_connack(struct cm_conn *c, uint8_t code, bool session_present,
                         const struct cm_mqtt_prop *props, size_t num_props);
/* Server side: SUBACK for packet id with n codes (granted QoS or v5 reason
 * codes >= 0x80; on 3.1.1 any refusal is written as 0x80). */
int cm_mqtt_send_suback(struct cm_conn *c, uint16_t id, const uint8_t *codes, size_t n,
                        const struct cm_mqtt_prop *props, size_t num_props);
/* Server side: UNSUBACK for packet id (v5: n reason codes; 3.1.1 ignores them). */
int cm_mqtt_send_unsuback(struct cm_conn *c, uint16_t id, const uint8_t *codes, size_t n,
                          const struct cm_mqtt_prop *props, size_t num_props);
/* PUBACK, PUBREC, PUBREL or PUBCOMP (cmd) for packet id with reason (v5).
 * The library sends these itself in the QoS flows; this is for
 * applications that want to answer on their own. */
int cm_mqtt_send_ack(struct cm_conn *c, int cmd, uint16_t id, uint8_t reason);
/* Sends any packet (cm_mqtt_encode of m, with the connection's version
 * when m->version is 0).  No state is kept for it. */
int cm_mqtt_send(struct cm_conn *c, const struct cm_mqtt_packet *m);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif

#endif
