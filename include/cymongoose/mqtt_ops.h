/*
 * The operational pieces of the MQTT broker program that plug into the
 * broker's hooks (include/cymongoose/mqtt_broker.h): password file, ACL
 * file, configuration file, persistence (record codec and append-only
 * store).  Each is a pure module: parsers take text and return a structure
 * or an error "file:line: what is wrong"; nothing here touches the network.
 * Public, for programs that run a broker (programs/cymongoose-broker.c,
 * programs/cymongoose-passwd.c, the Python MqttBroker); included by
 * cymongoose.h.
 * Formats are documented in docs/mqtt-broker.md.
 */
#ifndef CM_MQTTOPS_H
#define CM_MQTTOPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../cymongoose.h"

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default) /* exported: see cymongoose.h */

/* Every parser writes its error here (NUL-terminated, truncated to fit). */
#define CM_OPS_ERR_LEN 256

/* Reads a whole file into a malloc'd NUL-terminated buffer (*len without the
 * NUL).  NULL with err set ("path: strerror") on failure. */
char *cm_ops_read_file(const char *path, size_t *len, char *err, size_t err_len);

/* ------------------------------------------------------------ passwords */
/*
 * Password file: one user per line, "NAME:$pbkdf2-sha512$ITERATIONS$SALT$HASH"
 * with SALT (16 bytes) and HASH (64 bytes) in standard base64; PBKDF2-HMAC-
 * SHA-512 (OpenSSL).  Blank lines and lines starting with '#' are ignored.
 * A user name may hold any byte except ':' and line ends.
 */
#define CM_PASSWD_DEFAULT_ITERATIONS 100000u
#define CM_PASSWD_MIN_ITERATIONS 1000u
#define CM_PASSWD_MAX_ITERATIONS 100000000u
#define CM_PASSWD_SALT_LEN 16
#define CM_PASSWD_HASH_LEN 64
/* Longest line cm_passwd_line() writes for a user name of n bytes. */
#define CM_PASSWD_LINE_MAX(n) ((n) + 200)

struct cm_passwd;

/* Parses text (name: the file name for messages).  Returns a table owned by
 * the caller (cm_passwd_free), or NULL with err "name:line: reason". */
struct cm_passwd *cm_passwd_parse(struct cm_str text, const char *name, char *err,
                                  size_t err_len);
/* cm_passwd_parse() of the file at path. */
struct cm_passwd *cm_passwd_load(const char *path, char *err, size_t err_len);
void cm_passwd_free(struct cm_passwd *p);
/* Number of users. */
size_t cm_passwd_count(const struct cm_passwd *p);
/*
 * True when user exists and password matches.  The hash is compared in
 * constant time, and an unknown user costs the same PBKDF2 work as a known
 * one (no user enumeration by timing).
 */
bool cm_passwd_check(const struct cm_passwd *p, struct cm_str user, struct cm_str password);
/*
 * Writes the line for user with password hashed under a fresh random salt
 * and iterations rounds (0: default) into out (out_len bytes, at least
 * CM_PASSWD_LINE_MAX(user.len)), NUL-terminated, without a newline.  Returns
 * its length, or CM_EINVAL (invalid user name, iterations out of range),
 * CM_EIO (OpenSSL failure), CM_ENOSPC (no room).
 */
int cm_passwd_line(struct cm_str user, struct cm_str password, uint32_t iterations, char *out,
                   size_t out_len);

/* ------------------------------------------------------------------ ACL */
/*
 * ACL file, mosquitto's format:
 *   user NAME                      following topic lines apply to NAME
 *   topic [read|write|readwrite|deny] FILTER
 *                                  (access omitted: readwrite); topic lines
 *                                  before any user line apply to anonymous
 *                                  clients (no user name)
 *   pattern [read|write|readwrite|deny] FILTER
 *                                  applies to every client, with %c replaced
 *                                  by its client id and %u by its user name
 *                                  (a pattern using %u/%c never applies to a
 *                                  client whose value is empty or holds '+',
 *                                  '#' or '/')
 * Deny by default: an access is allowed when some rule of the client grants
 * it and no deny rule matches.  Subscribing to a filter needs read access to
 * every topic the filter can match (the rule's filter covers it).
 */
struct cm_acl;
struct cm_acl *cm_acl_parse(struct cm_str text, const char *name, char *err, size_t err_len);
struct cm_acl *cm_acl_load(const char *path, char *err, size_t err_len);
void cm_acl_free(struct cm_acl *a);
/* access: CM_MQTT_ACL_READ / WRITE (topic is a topic name) or SUBSCRIBE
 * (topic is a filter).  user: empty for anonymous clients. */
bool cm_acl_check(const struct cm_acl *a, struct cm_str user, struct cm_str client_id,
                  struct cm_str topic, int access);
/* True when every topic matched by filter sub is matched by filter rule. */
bool cm_acl_filter_covers(struct cm_str rule, struct cm_str sub);

/* -------------------------------------------------------------- config */
enum {
  CM_FSYNC_ALWAYS = 0,   /* fsync before any acknowledgement depends on it */
  CM_FSYNC_INTERVAL = 1, /* fsync every fsync_interval_ms */
  CM_FSYNC_NEVER = 2     /* leave it to the kernel */
};

struct cm_conf_topic {
  char *pattern;      /* topic filter, relative to the prefixes */
  int direction;      /* 1 in, 2 out, 3 both */
  uint8_t qos;
  char *local_prefix; /* "" when none */
  char *remote_prefix;
};

struct cm_conf_bridge {
  char *name;
  char *url;             /* mqtt://host:port of the upstream */
  char *remote_clientid; /* default: "NAME" */
  char *remote_username; /* NULL when none */
  char *remote_password;
  uint16_t keepalive;    /* 60 */
  uint8_t version;       /* 4 or 5 (default 5: no-local prevents loops) */
  bool clean_start;      /* false: the upstream keeps our session */
  struct cm_conf_topic *topics;
  size_t ntopics;
};

struct cm_conf_listener {
  char *url;
  char *certfile, *keyfile, *cafile; /* NULL when not given */
  bool require_certificate;
  bool use_identity_as_username; /* the client certificate's CN */
};

struct cm_conf {
  struct cm_conf_listener *listeners;
  size_t nlisteners;
  bool allow_anonymous;      /* false unless configured */
  char *password_file, *acl_file, *persistence_file; /* NULL when not given */
  int fsync;                 /* CM_FSYNC_*, default ALWAYS */
  uint32_t fsync_interval_ms;/* for CM_FSYNC_INTERVAL (default 1000) */
  uint32_t compact_interval_s; /* snapshot period (default 300; 0: never) */
  uint32_t max_connections, max_packet_size, max_queued_messages, max_inflight;
  /* Topic aliases (v5), 0..65535: the Topic Alias Maximum announced to
   * clients, and the aliases we give topics of QoS 0 messages we send to a
   * client (at most its own maximum).  -1: not set (the broker's defaults,
   * CM_MQTT_BROKER_DEFAULT_TOPIC_ALIAS_*); 0: none. */
  int32_t topic_alias_max, topic_alias_out_max;
  struct cm_conf_bridge *bridges;
  size_t nbridges;
  int log_level;             /* -1: not set */
};

/* Parses the configuration text into *conf (zeroed first; free with
 * cm_conf_free even on failure).  Returns 0, or CM_EINVAL with err
 * "name:line: reason" (cm_conf_load: also when the file cannot be read). */
int cm_conf_parse(struct cm_conf *conf, struct cm_str text, const char *name, char *err,
                  size_t err_len);
int cm_conf_load(struct cm_conf *conf, const char *path, char *err, size_t err_len);
/* Adds a listener URL (from the command line).  Returns 0, or CM_ENOMEM. */
int cm_conf_add_listener(struct cm_conf *conf, const char *url);
void cm_conf_free(struct cm_conf *conf);
/* Copies the broker settings of conf (limits, topic aliases) into o; what
 * the file does not set leaves o's field as it was (0: the default). */
void cm_conf_broker_opts(const struct cm_conf *conf, struct cm_mqtt_broker_opts *o);

/* -------------------------------------------------------- persistence codec */
/*
 * The persistence log: a file header CM_PERSIST_MAGIC, then records
 *   u32 len (little endian; bytes after the crc), u32 crc32(body), body
 * with body = u8 type, then the type's fields: strings and binaries as u32
 * length + bytes, integers little endian.  A torn last record (crash during
 * a write) decodes as "incomplete" and is dropped at load; a bad crc or a
 * malformed body is corruption.
 */
#define CM_PERSIST_MAGIC "CMQTTLOG1\n"
#define CM_PERSIST_MAGIC_LEN 10
#define CM_PERSIST_MAX_RECORD (256u * 1024 * 1024)

enum {
  CM_REC_RETAIN = 1,      /* topic, msg */
  CM_REC_RETAIN_CLEAR,    /* topic */
  CM_REC_SESSION,         /* client, expiry */
  CM_REC_SESSION_DEL,     /* client */
  CM_REC_SUB_ADD,         /* client, filter, options, sub_id */
  CM_REC_SUB_DEL,         /* client, filter */
  CM_REC_MSG_HELD,        /* client, id, state, msg */
  CM_REC_MSG_STATE,       /* client, id, state */
  CM_REC_MSG_DONE,        /* client, id */
  CM_REC_INCOMING,        /* client, id, on */
  CM_REC_MAX_
};

/* A decoded record; views point into the decoded bytes. */
struct cm_persist_rec {
  uint8_t type;
  struct cm_str client;  /* client id (session records) */
  struct cm_str topic;   /* RETAIN*: topic; SUB_*: filter */
  uint32_t num;          /* SESSION: expiry_s; SUB_ADD: sub_id */
  uint16_t id;           /* packet id */
  uint8_t small;         /* SUB_ADD: options; MSG_*: state; INCOMING: on */
  /* RETAIN and MSG_HELD: the message (topic, payload, props, qos, retain,
   * expiry_s) */
  struct cm_str m_topic, m_payload, m_props;
  uint8_t m_qos;
  bool m_retain;
  uint32_t m_expiry_s;
};

/* Appends the encoding of r to out.  Returns 0; CM_EINVAL for an unknown
 * type; CM_ETOOBIG for a record over CM_PERSIST_MAX_RECORD; CM_ENOMEM. */
int cm_persist_encode(struct cm_buf *out, const struct cm_persist_rec *r);
/*
 * Decodes one record from buf.  Returns its size (> 0) with *r filled (views
 * into buf), 0 when buf holds only part of a record, CM_EPARSE when it is corrupt
 * (crc mismatch, length over the maximum, unknown type, fields not matching
 * the length); *why then says what.
 */
long cm_persist_decode(const uint8_t *buf, size_t len, struct cm_persist_rec *r,
                       const char **why);

/* -------------------------------------------------------- persistence store */
/*
 * An append-only log file with a mirror of the live state in memory (for
 * compaction).  Records are appended as the broker reports changes; when
 * they reach the disk is the fsync policy's business:
 *   CM_FSYNC_ALWAYS: each record is written at once and fdatasynced by the
 *     store's commit hook, which the broker calls before any
 *     acknowledgement that depends on the records (one fdatasync per
 *     acknowledged packet, not per record: a QoS 1 message to ten
 *     persistent subscribers is ten records) and after any other event that
 *     recorded something; cm_persist_tick() syncs anything left.  A failed
 *     write or fdatasync makes the hook return false: the broker does not
 *     acknowledge.
 *   CM_FSYNC_INTERVAL: written at once, fsynced by cm_persist_tick() every
 *     interval_ms (a crash of the machine loses up to that much; a crash of
 *     the process loses nothing written).
 *   CM_FSYNC_NEVER: written at once, never fsynced (the kernel decides).
 * cm_persist_compact() writes the live state to PATH.tmp, fsyncs it, renames
 * it over PATH and fsyncs the directory.
 */
struct cm_persist;
struct cm_persist *cm_persist_open(const char *path, int fsync_policy, uint32_t interval_ms,
                                   char *err, size_t err_len);
/* Fills *store with hooks writing to p (store->load replays the file). */
void cm_persist_hooks(struct cm_persist *p, struct cm_mqtt_broker_store *store);
/* Replays the state into b with the cm_mqtt_broker_restore_*() functions.
 * Returns 0, or CM_EIO. */
int cm_persist_replay(struct cm_persist *p, struct cm_mqtt_broker *b);
/* Writes (and fsyncs under CM_FSYNC_ALWAYS/INTERVAL) what is pending.
 * Returns 0, or CM_EIO when a write or fsync failed. */
int cm_persist_flush(struct cm_persist *p, bool sync);
/* Call every few ms: fsyncs under CM_FSYNC_INTERVAL when due (and under
 * CM_FSYNC_ALWAYS what no commit covered yet). */
void cm_persist_tick(struct cm_persist *p, uint64_t now_ms);
/* Returns 0, or CM_EIO (the old file is then kept). */
int cm_persist_compact(struct cm_persist *p);
/* Records appended since the last compaction (to decide when to compact). */
uint64_t cm_persist_records_since_compact(const struct cm_persist *p);
/* Flushes, fsyncs and closes. */
void cm_persist_close(struct cm_persist *p);
/* Live state counts (statistics; the broker program logs them). */
size_t cm_persist_count_retained(const struct cm_persist *p);
size_t cm_persist_count_sessions(const struct cm_persist *p);
size_t cm_persist_count_held(const struct cm_persist *p, struct cm_str client);

/* --------------------------------------------------------------- bridge */
/*
 * A bridge to an upstream broker over our MQTT client (cm_mqtt_connect):
 *   out: messages routed by the local broker whose topic is LOCAL_PREFIX +
 *        a topic matching PATTERN are published upstream as REMOTE_PREFIX +
 *        that topic, at min(their QoS, the line's QoS);
 *   in:  the bridge subscribes upstream to REMOTE_PREFIX + PATTERN and
 *        injects what arrives locally (cm_mqtt_broker_publish) as
 *        LOCAL_PREFIX + the rest.
 * Loops: messages the bridge injected carry it as origin and are never sent
 * back out; on a v5 upstream its subscriptions set no-local, so the
 * upstream does not echo our own publishes back.  While the upstream is
 * unreachable the bridge reconnects with exponential backoff (1 s doubling
 * up to 60 s) and drops outgoing messages (counted in dropped).
 */
struct cm_bridge;
/* Starts a bridge on mgr for broker b (conf copied as needed). */
struct cm_bridge *cm_bridge_new(struct cm_mgr *mgr, struct cm_mqtt_broker *b,
                                const struct cm_conf_bridge *conf);
/* Feed of the broker's on_message observer. */
void cm_bridge_on_message(struct cm_bridge *br, const struct cm_mqtt_broker_msg *m,
                          const void *origin);
/* Disconnects and frees; call before cm_mgr_free(). */
void cm_bridge_free(struct cm_bridge *br);
/* Counters for logs and tests. */
uint64_t cm_bridge_dropped(const struct cm_bridge *br);
bool cm_bridge_connected(const struct cm_bridge *br);
/*
 * Topic mapping of one topic line, pure: dir 2 (out) maps a local topic to
 * the remote one, dir 1 (in) a remote topic to the local one.  Appends the
 * result to out and returns true when topic falls under the line.
 */
bool cm_bridge_map(const struct cm_conf_topic *t, int dir, struct cm_str topic,
                   struct cm_buf *out);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif

#endif
