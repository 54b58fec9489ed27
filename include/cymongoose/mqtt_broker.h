/*
 * cymongoose: an MQTT broker (3.1, 3.1.1 and 5.0 clients on the same
 * listeners).  Included by cymongoose.h.
 *
 * One struct cm_mqtt_broker holds the broker's state (sessions, the topic
 * tree of subscriptions, retained messages, statistics) and serves any
 * number of listeners of one manager: mqtt://, mqtts://, ws:// and wss://
 * (MQTT over WebSocket on a path, subprotocol "mqtt").  Everything runs in
 * the manager's thread; no function here may be called from another one.
 *
 * What is pluggable is plain function pointers with a void *arg in
 * struct cm_mqtt_broker_opts: authentication, access control, persistence,
 * and observers (messages, clients) for bridges, logs and bindings.  Each
 * hook is optional; the defaults are described with it.
 *
 * Lifetimes: every struct cm_str handed to a hook is a view valid only
 * during the call (copy what you keep).  The broker copies everything it is
 * given by the public functions below.
 */
#ifndef CYMONGOOSE_MQTT_BROKER_H
#define CYMONGOOSE_MQTT_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default) /* exported: see cymongoose.h */

struct cm_conn;
struct cm_mgr;
struct cm_addr;
struct cm_tls_opts;
struct cm_mqtt_broker;

/* --------------------------------------------------------------- defaults */
#define CM_MQTT_BROKER_DEFAULT_MAX_CONNECTIONS 100000u
#define CM_MQTT_BROKER_DEFAULT_MAX_PACKET (1u * 1024 * 1024)  /* bytes */
#define CM_MQTT_BROKER_DEFAULT_MAX_QUEUED 1000u     /* QoS 1/2 per client */
#define CM_MQTT_BROKER_DEFAULT_MAX_INFLIGHT 100u    /* QoS 1/2 unacked per client */
#define CM_MQTT_BROKER_DEFAULT_MAX_RETAINED 100000u /* retained messages */
#define CM_MQTT_BROKER_DEFAULT_MAX_RETAINED_BYTES (64u * 1024 * 1024)
#define CM_MQTT_BROKER_DEFAULT_SEND_HWM (1u * 1024 * 1024) /* slow-subscriber mark */
#define CM_MQTT_BROKER_DEFAULT_SYS_INTERVAL_MS 10000u
#define CM_MQTT_BROKER_DEFAULT_TOPIC_ALIAS_MAX 64u  /* aliases a v5 client may use */
#define CM_MQTT_BROKER_DEFAULT_TOPIC_ALIAS_OUT_MAX 16u /* aliases we use towards a client */
#define CM_MQTT_BROKER_DEFAULT_MAX_SUBS 1000u       /* subscriptions per client */

/* What happens to a subscriber whose output queue (c->send) stays above
 * send_hwm (cymongoose.h: cm_conn_send_full): */
enum {
  /* QoS 0 messages for it are dropped; QoS 1/2 wait in its session queue
   * (max_queued); when that overflows it is disconnected (v5: DISCONNECT
   * 0x97 "quota exceeded").  The default. */
  CM_MQTT_SLOW_QUEUE = 0,
  /* Disconnected as soon as a message finds it over the mark. */
  CM_MQTT_SLOW_DISCONNECT = 1
};

/* ------------------------------------------------------------ hook inputs */
/*
 * Who a client is, as given to the hooks.  Views valid during the call.
 */
struct cm_mqtt_client_info {
  struct cm_str client_id;    /* as assigned when the client sent none */
  struct cm_str username;     /* empty when none */
  struct cm_str cert_subject; /* TLS client certificate subject (one-line
                                 RFC 2253 form) when the client presented a
                                 verified one, else empty */
  struct cm_str cert_cn;      /* its commonName, else empty */
  uint8_t version;            /* 3, 4 or 5 */
  unsigned long conn_id;      /* the connection's id (0 when offline) */
  const struct cm_addr *addr; /* remote address (NULL when offline) */
};

/* Access kinds given to acl_check. */
enum {
  CM_MQTT_ACL_READ = 1,      /* a message on topic is about to be delivered */
  CM_MQTT_ACL_WRITE = 2,     /* the client publishes to topic (incl. its will) */
  CM_MQTT_ACL_SUBSCRIBE = 4  /* the client subscribes to the filter in topic */
};

/*
 * An application message as the broker holds and passes it.
 *   props: the v5 property block without its length (what the publisher
 *          sent: payload format, content type, response topic, correlation
 *          data, user properties; never a topic alias or subscription
 *          identifier).  Carried unchanged to v5 subscribers.
 *   expiry_s: seconds left of its Message Expiry Interval (0: none); the
 *          broker counts it down while it holds the message and drops it
 *          when it expires.
 */
struct cm_mqtt_broker_msg {
  struct cm_str topic;
  struct cm_str payload;
  struct cm_str props;
  uint8_t qos;
  bool retain;
  uint32_t expiry_s;  /* message expiry interval in seconds left, 0: none */
};

/* The state of a message held for a client (persistence). */
enum {
  CM_MQTT_HELD_QUEUED = 0,    /* waiting for a window slot or the client */
  CM_MQTT_HELD_SENT = 1,      /* PUBLISH sent, no PUBACK/PUBREC yet */
  CM_MQTT_HELD_RELEASED = 2   /* QoS 2: PUBREC received, PUBREL sent */
};

/*
 * Persistence: every change to durable state is reported here, in the order
 * it happens, before the broker acknowledges to any client what depends on
 * it (the PUBACK/PUBREC of a QoS 1/2 message comes after msg_held and
 * retain of its deliveries).  Where it hits the disk (fsync policy) is the
 * store's business.  Any member may be NULL.  Client ids are those of
 * persistent sessions only (clean/expiry-0 sessions are never reported).
 *
 * Failures: retain, msg_held and incoming return false when the record is
 * not stored (disk full, write error, no memory), and commit when it could
 * not make the records durable; the broker then logs it and does not
 * acknowledge the PUBLISH that depends on them: a v5 client gets
 * PUBACK/PUBREC 0x80 "unspecified error", a 3.1/3.1.1 client no
 * acknowledgement at all (it sends the message again when it reconnects).
 */
struct cm_mqtt_broker_store {
  void *arg;
  /* A retained message was set (m) or cleared (m NULL) on topic. */
  bool (*retain)(void *arg, struct cm_str topic, const struct cm_mqtt_broker_msg *m);
  /* A persistent session was created or its expiry changed (seconds;
   * 0xFFFFFFFF: never). */
  void (*session_save)(void *arg, struct cm_str client_id, uint32_t expiry_s);
  /* A session ended (expired, cleaned, taken over with clean start). */
  void (*session_delete)(void *arg, struct cm_str client_id);
  /* A subscription was added or replaced (options: the SUBSCRIBE options
   * byte; sub_id: v5 subscription identifier, 0: none) / removed. */
  void (*sub_add)(void *arg, struct cm_str client_id, struct cm_str filter, uint8_t options,
                  uint32_t sub_id);
  void (*sub_del)(void *arg, struct cm_str client_id, struct cm_str filter);
  /* A QoS 1/2 message is now held for the client under packet id (state
   * CM_MQTT_HELD_QUEUED) / changed state (CM_MQTT_HELD_SENT right before
   * its PUBLISH goes out, so that one restored after a crash is resent
   * with DUP; CM_MQTT_HELD_RELEASED when the client's PUBREC arrived) /
   * was acknowledged (PUBACK, PUBCOMP), refused, expired or dropped. */
  bool (*msg_held)(void *arg, struct cm_str client_id, uint16_t id, int state,
                   const struct cm_mqtt_broker_msg *m);
  void (*msg_state)(void *arg, struct cm_str client_id, uint16_t id, int state);
  void (*msg_done)(void *arg, struct cm_str client_id, uint16_t id);
  /* The client's QoS 2 packet id was received (on true) / released by
   * PUBREL (on false): duplicate suppression state. */
  bool (*incoming)(void *arg, struct cm_str client_id, uint16_t id, bool on);
  /* Called once, when records were reported since the previous call, right
   * before the broker sends anything that depends on them (PUBACK, PUBREC,
   * PUBCOMP, SUBACK, UNSUBACK, CONNACK), and at the end of any other event
   * that reported records (a timer, cm_mqtt_broker_publish(), an
   * acknowledgement from a client): the place for one fdatasync per
   * acknowledged packet rather than one per record.  Return false when the
   * records could not be made durable. */
  bool (*commit)(void *arg);
  /* Called once by cm_mqtt_broker_new(): replay the stored records with the
   * cm_mqtt_broker_restore_*() functions below.  Return false to make
   * cm_mqtt_broker_new() fail (errno EIO).  Nothing is reported back to the
   * store while it runs. */
  bool (*load)(void *arg, struct cm_mqtt_broker *b);
};

/* ---------------------------------------------------------------- options */
/*
 * Options of cm_mqtt_broker_new(); zero-initialise and set what you need (a
 * limit left 0 takes its CM_MQTT_BROKER_DEFAULT_*).  Copied by
 * cm_mqtt_broker_new(); the hooks' args are not owned.
 */
struct cm_mqtt_broker_opts {
  /* ---- limits */
  uint32_t max_connections;   /* clients connected at once; more get CONNACK
                                 "server unavailable" / v5 0x97 quota exceeded */
  uint32_t max_packet_size;   /* largest packet accepted (v5: announced in
                                 CONNACK); larger: 0x95 and close */
  uint32_t max_queued;        /* QoS 1/2 messages held per client (offline or
                                 waiting for its window); past it new ones
                                 for that client are dropped (counted) */
  uint32_t max_inflight;      /* QoS 1/2 messages sent and unacknowledged
                                 per client (announced as our v5 Receive
                                 Maximum; the client's own Receive Maximum
                                 lowers the window we use towards it) */
  uint32_t max_retained;      /* retained messages; a new topic past it is
                                 not retained (delivered anyway) */
  uint64_t max_retained_bytes;/* total bytes of retained payloads and topics */
  uint32_t max_subs_per_client; /* subscriptions per session */
  uint32_t max_session_expiry_s; /* cap on v5 Session Expiry Interval and the
                                    expiry of 3.1.1 clean_session=0 sessions;
                                    0: no cap (those never expire) */
  uint16_t topic_alias_max;   /* Topic Alias Maximum announced to v5 clients
                                 (CM_MQTT_BROKER_DEFAULT_TOPIC_ALIAS_MAX;
                                 set no_topic_alias to turn aliases off) */
  bool no_topic_alias;
  uint16_t topic_alias_out_max; /* aliases we give the topics of QoS 0
                                   messages we send to a v5 client, at most
                                   its Topic Alias Maximum
                                   (CM_MQTT_BROKER_DEFAULT_TOPIC_ALIAS_OUT_MAX;
                                   no_topic_alias_out: none) */
  bool no_topic_alias_out;
  uint16_t server_keepalive;  /* v5 Server Keep Alive: when non-zero,
                                 replaces larger (or zero) client keepalives;
                                 3.1.1 clients keep theirs */
  float keepalive_factor;     /* silence allowed: keepalive x this (1.5,
                                 at least 1); then v5 DISCONNECT 0x8D */
  uint64_t connect_timeout_ms;/* CONNECT must arrive within this (10 s) */
  size_t send_hwm;            /* slow-subscriber mark on each client's
                                 output queue (CM_MQTT_BROKER_DEFAULT_SEND_HWM) */
  int slow_policy;            /* CM_MQTT_SLOW_* */
  /* ---- features */
  bool allow_anonymous;       /* accept anonymous clients (no user name and
                                 no verified client certificate), and
                                 everyone when there is no authenticate
                                 hook.  false (default): anonymous clients
                                 get "not authorized" (v5 0x87, 3.1.1 5) */
  bool no_assign_ids;         /* refuse empty client ids (0x85) instead of
                                 assigning "cm-..." ids (v5: Assigned Client
                                 Identifier; 3.1.1: only with clean session) */
  uint32_t sys_interval_ms;   /* $SYS/broker/... publish period
                                 (CM_MQTT_BROKER_DEFAULT_SYS_INTERVAL_MS);
                                 set no_sys to turn it off */
  bool no_sys;
  /* ---- hooks (all optional) */
  /*
   * Decides whether a client may connect: called on every CONNECT that
   * carries a user name or comes with a verified TLS client certificate
   * (who->cert_subject, who->cert_cn), with the password as binary
   * (has_password false when absent).  Returns
   * CM_MQTT_RC_SUCCESS, or the v5 reason code to refuse with
   * (CM_MQTT_RC_BAD_USERNAME_OR_PASSWORD, CM_MQTT_RC_NOT_AUTHORIZED,
   * CM_MQTT_RC_BANNED, ...; mapped to the 3.1.1 return code for older
   * clients).  Without it: allow_anonymous decides.
   */
  int (*authenticate)(void *arg, const struct cm_mqtt_client_info *who, struct cm_str password,
                      bool has_password);
  void *auth_arg;
  /*
   * Access control: true when who may do access (CM_MQTT_ACL_*) on topic (a
   * topic name for READ and WRITE, a filter for SUBSCRIBE, without a
   * "$share/group/" prefix).  Refused: WRITE -> v5 PUBACK/PUBREC 0x87 (the
   * message is dropped), SUBSCRIBE -> SUBACK 0x87, READ -> the message is
   * not delivered to that client.  Without it everything is allowed.
   */
  bool (*acl_check)(void *arg, const struct cm_mqtt_client_info *who, struct cm_str topic,
                    int access);
  void *acl_arg;
  /* Persistence (see above); store.load replays state at start. */
  struct cm_mqtt_broker_store store;
  /*
   * Observes every application message the broker accepts for routing
   * (from clients, wills, cm_mqtt_broker_publish(), not $SYS), after ACL,
   * before delivery.  from: the publishing client, NULL for injected
   * messages; origin: the pointer given to cm_mqtt_broker_publish() (NULL
   * for clients), so a bridge can skip what it injected itself.
   */
  void (*on_message)(void *arg, const struct cm_mqtt_broker_msg *m,
                     const struct cm_mqtt_client_info *from, const void *origin);
  void *msg_arg;
  /*
   * A client connected (connected true, reason 0) or disconnected (reason:
   * the v5 reason code that ended it: 0 normal, 0x8E taken over, 0x8D
   * keepalive timeout, 0x81 malformed..., and why a static text).  For logs
   * and bindings; the broker also logs these lines with CM_INFO.
   */
  void (*on_client)(void *arg, const struct cm_mqtt_client_info *who, bool connected, int reason,
                    const char *why);
  void *client_arg;
};

/* ------------------------------------------------------------- life cycle */
/*
 * Creates a broker on mgr with opts (NULL: defaults; copied), and runs
 * opts->store.load when set.  No listener yet: add them with
 * cm_mqtt_broker_listen().  Returns NULL with errno set (ENOMEM, EINVAL
 * for bad options, EIO when load failed).
 */
struct cm_mqtt_broker *cm_mqtt_broker_new(struct cm_mgr *mgr,
                                          const struct cm_mqtt_broker_opts *opts);

/*
 * Stops the broker: closes its listeners, sends v5 clients DISCONNECT 0x8B
 * "server shutting down" and closes every client connection (no will is
 * published), and frees all its state.  The connections' CLOSE events come
 * at the next poll and no longer reach the broker.  Call before
 * cm_mgr_free(); NULL is ignored.  Nothing is reported to the store.
 */
void cm_mqtt_broker_free(struct cm_mqtt_broker *b);

/*
 * Adds a listener: "mqtt://ip:port" (also "tcp://"), "mqtts://ip:port",
 * "ws://ip:port/path", "wss://ip:port/path" (HTTP requests for path are
 * upgraded to WebSocket with subprotocol "mqtt" when the client offers it,
 * or none when it offers nothing; other paths get 404; path "/" or none
 * takes any path).  tls: the server's TLS options for mqtts:// and wss://
 * (required there: cert and key; ca turns on client certificates, whose
 * subject reaches authenticate), ignored otherwise.  Port 0 picks a free
 * port (read it from the returned c->loc.port).  Returns the listener,
 * owned by the manager as every connection (closed by
 * cm_mqtt_broker_free()), or NULL with errno set (EINVAL: a scheme other
 * than the five above, a bad URL or TLS options).
 */
struct cm_conn *cm_mqtt_broker_listen(struct cm_mqtt_broker *b, const char *url,
                                      const struct cm_tls_opts *tls);

/* ------------------------------------------------------------ messages */
/*
 * Routes a message as if a client had published it: retained when
 * m->retain (an empty payload clears), delivered to every matching
 * subscriber at min(m->qos, its subscription QoS).  origin is passed to
 * on_message unchanged (a bridge's tag).  No ACL check.  Returns the
 * number of subscribers it was delivered or queued to, or CM_EINVAL for an
 * invalid topic (wildcards, empty, invalid UTF-8), QoS above 2 or invalid
 * props.
 */
int cm_mqtt_broker_publish(struct cm_mqtt_broker *b, const struct cm_mqtt_broker_msg *m,
                           const void *origin);

/* -------------------------------------------------------------- restore */
/*
 * For store.load (also usable after start, e.g. to seed retained
 * messages): recreate state without reporting it back to the store.
 * Each returns 0, or CM_EINVAL for invalid input (also when memory runs
 * out: the store's loader treats both alike).
 */
/* A retained message (m->retain is implied; empty payload: ignored). */
int cm_mqtt_broker_restore_retained(struct cm_mqtt_broker *b, const struct cm_mqtt_broker_msg *m);
/* An offline persistent session; expiry_s counts from now (0xFFFFFFFF: never). */
int cm_mqtt_broker_restore_session(struct cm_mqtt_broker *b, struct cm_str client_id,
                                    uint32_t expiry_s);
/* A subscription of a restored session (options: SUBSCRIBE options byte). */
int cm_mqtt_broker_restore_sub(struct cm_mqtt_broker *b, struct cm_str client_id,
                                struct cm_str filter, uint8_t options, uint32_t sub_id);
/* A message held for a restored session under packet id in state
 * CM_MQTT_HELD_*; resent (with DUP when it had been sent) when the client
 * reconnects.  Call in the order they were held. */
int cm_mqtt_broker_restore_msg(struct cm_mqtt_broker *b, struct cm_str client_id, uint16_t id,
                                int state, const struct cm_mqtt_broker_msg *m);
/* A QoS 2 packet id the client sent and has not released. */
int cm_mqtt_broker_restore_incoming(struct cm_mqtt_broker *b, struct cm_str client_id,
                                     uint16_t id);

/* ------------------------------------------------------------------ stats */
struct cm_mqtt_broker_stats {
  uint64_t uptime_s;
  uint32_t clients_connected;
  uint32_t clients_disconnected; /* persistent sessions without a connection */
  uint32_t clients_maximum;      /* most connected at once */
  uint32_t subscriptions;
  uint32_t retained;             /* retained messages held */
  uint64_t retained_bytes;
  uint64_t msgs_received;        /* PUBLISH packets from clients */
  uint64_t msgs_sent;            /* QoS 0 PUBLISHes queued to clients plus
                                    QoS 1/2 ones they acknowledged */
  uint64_t msgs_dropped;         /* not delivered: queue full, slow
                                    subscriber, too large for the client,
                                    expired */
  uint64_t bytes_received;       /* bytes read and written on client
                                    connections (TLS and WebSocket included) */
  uint64_t bytes_sent;
  uint64_t queued;               /* QoS 1/2 held across sessions */
  uint64_t connections_refused;  /* CONNACK failures and limits */
};

/* Fills *st with the current statistics. */
void cm_mqtt_broker_stats(const struct cm_mqtt_broker *b, struct cm_mqtt_broker_stats *st);

/* Calls fn(arg, who) for each connected client (in no particular order;
 * a connection whose session was taken over is no longer one).  who and
 * its views are valid during the call only; fn must not change the broker
 * (no kick, no publish: collect, then act).  Returns how many were
 * reported, or CM_EINVAL when b or fn is NULL.  A binding can list clients this way instead of keeping a
 * table of its own per client. */
long cm_mqtt_broker_clients(const struct cm_mqtt_broker *b,
                            void (*fn)(void *arg, const struct cm_mqtt_client_info *who),
                            void *arg);

/* Disconnects the client with this id (v5: DISCONNECT reason, e.g.
 * CM_MQTT_RC_ADMINISTRATIVE_ACTION) and, when drop_session, forgets its
 * session.  Returns 0, or CM_ENOENT when no such client/session exists. */
int cm_mqtt_broker_kick(struct cm_mqtt_broker *b, struct cm_str client_id, uint8_t reason,
                        bool drop_session);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif

#endif
