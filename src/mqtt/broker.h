/* Internal interfaces of the MQTT broker (src/mqtt/broker_*.c). */
#ifndef CM_MQTT_BROKER_INTERNAL_H
#define CM_MQTT_BROKER_INTERNAL_H

#include "mqtt/internal.h"

#define CM__BROKER_KIND 0x424B5252 /* "BKRR" */
#define CM__BCLIENT_KIND 0x42434C49 /* "BCLI" */
#define CM__NEVER 0xFFFFFFFFu
#define CM__SWEEP_MS 500u /* how late a keepalive timeout may be noticed */

struct bnode;
struct bsess;
struct bshare;

/* One subscription of a session: in its session's list and in the list of
 * its tree node (or of its shared group). */
struct bsub {
  struct bsub *next_node, *prev_node; /* node's (or group's) list */
  struct bsub *next_sess;             /* session's list */
  struct bsess *sess;
  struct bnode *node;
  struct bshare *share;               /* NULL unless $share/... */
  uint32_t sub_id;                    /* v5 subscription identifier, 0: none */
  uint8_t opts;                       /* SUBSCRIBE options byte */
  uint16_t filter_len;
  char filter[];                      /* as subscribed, with $share/g/ */
};

/* A shared subscription group on one node: delivery goes round-robin. */
struct bshare {
  struct bshare *next;
  struct bsub *members;
  struct bsub *rr;                    /* the next member to try */
  uint16_t name_len;
  char name[];
};

/* A retained message (one allocation: topic, payload, props). */
struct bretained {
  uint64_t expire_ms;                 /* 0: never */
  uint8_t qos;
  size_t topic_len, payload_len, props_len;
  char data[];                        /* topic, payload, props */
};

/* A level of the topic tree.  Literal children hang in an array (most
 * nodes have few); '+' and '#' have their own pointers. */
struct bnode {
  struct bnode *parent;
  struct bnode **kids;
  uint32_t nkids, capkids;
  struct bnode *plus, *hash;
  struct bsub *subs;
  struct bshare *shares;
  struct bretained *ret;
  uint16_t len;
  char name[];
};

/* A will message, kept until the connection ends. */
struct bwill {
  uint32_t delay_s;
  struct cm_timer *timer;             /* will delay running */
  struct cm_mqtt_broker *b;
  struct bsess *sess;
  struct cm_mqtt_broker_msg m;        /* views into data */
  char data[];
};

struct bclient;

/* A session: lives while its client is connected, and afterwards while it
 * has not expired. */
struct bexpiry;

struct bsess {
  struct bsess *hnext;                /* hash chain */
  struct bclient *client;             /* connected client or NULL */
  struct cm_mqtt_session *ms;         /* held QoS 1/2 messages, ids */
  struct bsub *subs;
  struct bexpiry *expiry;             /* running while offline (knows the broker,
                                         so the session need not) */
  struct bwill *will;                 /* delayed will waiting */
  uint32_t nsubs;
  uint32_t expiry_s;                  /* after disconnect; CM__NEVER: never */
  uint32_t mark;                      /* routing generation */
  uint32_t slot;                      /* index in the routing vector */
  uint8_t held_version;               /* version the held packets are encoded for */
  bool persistent;                    /* reported to the store */
  uint16_t id_len;
  char id[];                          /* allocated: offsetof(struct bsess, id) + id_len */
};

/* A connected client (fn_data of its connection once CONNECT arrived). */
struct bclient {
  int kind;                           /* CM__BCLIENT_KIND */
  int reason;                         /* reason code it ends with */
  struct cm_mqtt_broker *b;
  struct cm_conn *c;
  struct bsess *sess;                 /* NULL once taken over */
  char *taken_id;                     /* its client id once taken over */
  struct bwill *will;
  char *username;
  char *cert;                         /* "subject\0cn" of a verified client
                                         certificate, or NULL */
  const char *why;                    /* why it ends (static) */
  char *err;                          /* the glue's ERROR text (allocated) */
  uint8_t version;
  bool normal_disconnect;             /* DISCONNECT without will */
  bool slow;                          /* waits for its queue to drain */
  bool counted;                       /* in clients_connected */
};

/* One recipient while routing a message. */
struct brcpt {
  struct bsess *sess;
  uint8_t qos;
  bool rap;                           /* retain as published */
  uint32_t nids;
  uint32_t ids[4];                    /* subscription identifiers (first 4) */
};

struct cm_mqtt_broker {
  int kind;                           /* CM__BROKER_KIND */
  struct cm_mgr *mgr;
  struct cm_mqtt_broker_opts o;       /* resolved */
  struct cm_mqtt_limits lim;          /* of client connections */
  struct bnode *root;
  struct bsess **htab;                /* sessions by client id (the only list
                                         of them: no links per session) */
  size_t hcap, nsess;
  struct cm_timer *sys_timer;
  struct cm_timer *sweep_timer;       /* clients' keepalive deadlines, every
                                         CM__SWEEP_MS; NULL: each client
                                         keeps a timer of its own */
  uint64_t start_ms;
  uint32_t gen;
  bool loading;                       /* store.load running: no reports */
  bool dirty;                         /* records reported since the last commit */
  bool store_failed;                  /* a store hook failed since it was cleared */
  struct brcpt *rv;                   /* routing vector, reused */
  size_t rv_len, rv_cap;
  struct cm_buf enc, enc2, props;     /* encoding scratch, reused */
  struct cm_buf aenc;                 /* the last aliased QoS 0 PUBLISH (routing) */
  struct cm_buf tpl[3][2][2];         /* PUBLISH templates [qos][v5][retain] */
  struct cm_buf inprops;              /* a PUBLISH's properties without its alias */
  unsigned long next_anon;
  struct cm_mqtt_broker_stats st;
};

/* broker_tree.c */
struct bnode *cm__bt_node(struct cm_mqtt_broker *b, struct cm_str filter, bool create);
void cm__bt_prune(struct cm_mqtt_broker *b, struct bnode *n);
void cm__bt_free(struct bnode *n);
/* Splits "$share/g/f" into group and filter; false when not shared.
 * *ok false when it is malformed. */
bool cm__bt_shared(struct cm_str f, struct cm_str *group, struct cm_str *filter, bool *ok);
/* Adds or replaces the subscription of s to filter; *is_new tells which. */
struct bsub *cm__bt_subscribe(struct cm_mqtt_broker *b, struct bsess *s, struct cm_str filter,
                              uint8_t opts, uint32_t sub_id, bool *is_new);
bool cm__bt_unsubscribe(struct cm_mqtt_broker *b, struct bsess *s, struct cm_str filter);
void cm__bt_unsubscribe_all(struct cm_mqtt_broker *b, struct bsess *s);
/* Collects the recipients of topic into b->rv (deduplicated by session). */
void cm__bt_match(struct cm_mqtt_broker *b, struct cm_str topic, const struct bsess *from);

/* broker_retain.c */
/* Sets (or clears with an empty payload) the retained message of m->topic. */
void cm__br_retain(struct cm_mqtt_broker *b, const struct cm_mqtt_broker_msg *m, bool report);
/* Sends the retained messages matching filter to a client. */
void cm__br_send_retained(struct cm_mqtt_broker *b, struct bclient *cl, struct cm_str filter,
                          uint8_t qos, uint32_t sub_id);

/* broker_session.c */
struct bsess *cm__bs_find(struct cm_mqtt_broker *b, struct cm_str id);
struct bsess *cm__bs_new(struct cm_mqtt_broker *b, struct cm_str id);
void cm__bs_free(struct cm_mqtt_broker *b, struct bsess *s, bool report);
/* Ends s (an offline session) after ms; false when out of memory. */
bool cm__bs_expiry_start(struct cm_mqtt_broker *b, struct bsess *s, uint64_t ms);
/* Stops s's expiry, if running. */
void cm__bs_expiry_stop(struct cm_mqtt_broker *b, struct bsess *s);
/* The client is gone: start the expiry (or end the session now). */
void cm__bs_detach(struct cm_mqtt_broker *b, struct bsess *s);
void cm__bs_will_free(struct bwill *w);
/* Publishes a will now (and frees it). */
void cm__bs_will_fire(struct cm_mqtt_broker *b, struct bwill *w);

/* broker_deliver.c */
/* Routes a message; from: the publishing session (no local) or NULL.
 * Returns the recipients count, -1 on error. */
int cm__bd_route(struct cm_mqtt_broker *b, const struct cm_mqtt_broker_msg *m,
                 const struct bsess *from);
/* Sends one message to one session (online or queued). */
void cm__bd_deliver_one(struct cm_mqtt_broker *b, struct bsess *s, const struct cm_mqtt_broker_msg *m,
                        uint8_t qos, bool retain, const uint32_t *ids, uint32_t nids);
/* Sends held messages of a (re)connected client: DUP resends, then pump. */
void cm__bd_resume(struct cm_mqtt_broker *b, struct bclient *cl, bool resend);
/* Appends a PUBLISH for version v with packet id to b->enc (cleared first). */
bool cm__bd_encode(struct cm_mqtt_broker *b, struct cm_buf *out, uint8_t v,
                   const struct cm_mqtt_broker_msg *m, uint8_t qos, bool retain, uint16_t id,
                   const uint32_t *ids, uint32_t nids);
/* The glue's prepare hook (struct cm__mqtt) for a client (arg): drops a
 * queued message that expired or outgrew the client's maximum packet size
 * while it waited for the in-flight window, and refreshes its expiry. */
struct cm__mqtt_out *cm__bd_prepare(void *arg, struct cm__mqtt *st, struct cm__mqtt_out *o,
                                   struct cm__mqtt_out *prev);
/* Disconnects a client (v5: DISCONNECT reason) and drains it. */
void cm__bd_kick(struct bclient *cl, uint8_t reason, const char *why);

/* broker.c: the store. */
/* A record was reported: the next acknowledgement commits first. */
static inline void cm__bstore_dirty(struct cm_mqtt_broker *b) {
  b->dirty = true;
}
/* A bool hook's result: false is logged and remembered in store_failed. */
bool cm__bstore_result(struct cm_mqtt_broker *b, bool ok, const char *what);
/* Commits the records reported since the last commit (store.commit); false
 * (logged, store_failed set) when the store could not. */
bool cm__bstore_commit(struct cm_mqtt_broker *b);

/* broker_conn.c */
void cm__bc_fn(struct cm_conn *c, int ev, void *ev_data);
void cm__bc_info(const struct bclient *cl, struct cm_mqtt_client_info *who);

/* broker_sys.c */
void cm__bsys_start(struct cm_mqtt_broker *b);

#endif
