/*
 * cymongoose-broker: an MQTT broker (3.1, 3.1.1, 5.0) on the cymongoose
 * library, with password and ACL files, TLS client certificates,
 * persistence and bridges.  Configuration reference: docs/mqtt-broker.md.
 *
 *   cymongoose-broker [--listen URL]... [--config FILE] [-v]...
 *
 * Without any listener (neither --listen nor "listener" lines) it listens on
 * mqtt://127.0.0.1:1883.  SIGTERM and SIGINT stop it cleanly: listeners
 * closed, clients disconnected, persistence flushed and fsynced.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cymongoose.h"
#include "cymongoose.h"

/* A connected client that authenticated with a certificate: its identity. */
struct identity {
  unsigned long conn_id;
  char *name;
  struct identity *next;
};

struct app {
  struct cm_mgr mgr;
  struct cm_conf conf;
  struct cm_passwd *passwd;
  struct cm_acl *acl;
  struct cm_persist *persist;
  struct cm_mqtt_broker *broker;
  struct cm_bridge **bridges;
  uint16_t *identity_ports; /* local ports of use_identity_as_username listeners */
  size_t nidentity_ports;
  struct identity *identities;
  uint64_t last_compact_ms;
};

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig) {
  stop_signal = sig;
}

static void usage(int code) {
  fprintf(code == 0 ? stdout : stderr,
          "usage: cymongoose-broker [--listen URL]... [--config FILE] [-v]...\n"
          "  --listen URL   mqtt://IP:PORT, mqtts://IP:PORT, ws://IP:PORT/PATH, wss://...\n"
          "                 (repeatable; added to the config file's listeners)\n"
          "  --config FILE  configuration file (docs/mqtt-broker.md)\n"
          "  -v             more log lines (-v: debug, -vv: verbose)\n");
  exit(code);
}

/* ------------------------------------------------------------- identity */
static const char *identity_of(const struct app *a, unsigned long conn_id) {
  for (const struct identity *i = a->identities; i != NULL; i = i->next)
    if (i->conn_id == conn_id) return i->name;
  return NULL;
}

static void identity_drop(struct app *a, unsigned long conn_id) {
  for (struct identity **p = &a->identities; *p != NULL; p = &(*p)->next) {
    if ((*p)->conn_id == conn_id) {
      struct identity *i = *p;
      *p = i->next;
      free(i->name);
      free(i);
      return;
    }
  }
}

static bool uses_identity(const struct app *a, const struct cm_conn *c) {
  for (size_t i = 0; i < a->nidentity_ports; i++)
    if (a->identity_ports[i] == c->loc.port) return true;
  return false;
}

/* ---------------------------------------------------------------- hooks */
static int authenticate(void *arg, const struct cm_mqtt_client_info *who, struct cm_str password,
                        bool has_password) {
  struct app *a = arg;
  /* (cm_conn_by_id walks the connections: only when some listener needs it) */
  struct cm_conn *c = who->conn_id != 0 && a->nidentity_ports > 0
                          ? cm_conn_by_id(&a->mgr, who->conn_id)
                          : NULL;
  if (c != NULL && uses_identity(a, c)) {
    /* The certificate's CN is the user name (the TLS layer verified it). */
    if (who->cert_cn.len == 0) return CM_MQTT_RC_NOT_AUTHORIZED;
    struct identity *i = calloc(1, sizeof(*i));
    if (i == NULL || (i->name = strndup(who->cert_cn.buf, who->cert_cn.len)) == NULL)
      return free(i), CM_MQTT_RC_SERVER_UNAVAILABLE;
    identity_drop(a, who->conn_id);
    i->conn_id = who->conn_id;
    i->next = a->identities;
    a->identities = i;
    return CM_MQTT_RC_SUCCESS;
  }
  if (who->username.len == 0 || a->passwd == NULL)
    return a->conf.allow_anonymous ? CM_MQTT_RC_SUCCESS : CM_MQTT_RC_NOT_AUTHORIZED;
  if (has_password && cm_passwd_check(a->passwd, who->username, password))
    return CM_MQTT_RC_SUCCESS;
  return CM_MQTT_RC_BAD_USERNAME_OR_PASSWORD;
}

static bool acl_check(void *arg, const struct cm_mqtt_client_info *who, struct cm_str topic,
                      int access) {
  struct app *a = arg;
  const char *id = who->conn_id != 0 ? identity_of(a, who->conn_id) : NULL;
  struct cm_str user = id != NULL ? cm_str_c(id) : who->username;
  return cm_acl_check(a->acl, user, who->client_id, topic, access);
}

static void on_message(void *arg, const struct cm_mqtt_broker_msg *m,
                       const struct cm_mqtt_client_info *from, const void *origin) {
  struct app *a = arg;
  (void)from;
  for (size_t i = 0; i < a->conf.nbridges; i++)
    if (a->bridges[i] != NULL) cm_bridge_on_message(a->bridges[i], m, origin);
}

static void on_client(void *arg, const struct cm_mqtt_client_info *who, bool connected, int reason,
                      const char *why) {
  struct app *a = arg;
  (void)reason, (void)why; /* the broker logs the line itself */
  if (!connected) identity_drop(a, who->conn_id);
}

/* Every 20 ms: fsync per policy; compaction when due. */
static void housekeeping(void *arg) {
  struct app *a = arg;
  if (a->persist == NULL) return;
  uint64_t now = cm_millis();
  cm_persist_tick(a->persist, now);
  uint64_t records = cm_persist_records_since_compact(a->persist);
  bool due = a->conf.compact_interval_s > 0 &&
             now - a->last_compact_ms >= (uint64_t)a->conf.compact_interval_s * 1000u;
  if ((due && records > 0) || records > 1000000) {
    if (cm_persist_compact(a->persist) == 0)
      CM_DEBUG("persistence: compacted after %llu records", (unsigned long long)records);
    a->last_compact_ms = now;
  }
}

/* ------------------------------------------------------------- listeners */
static char *read_or_die(const char *path) {
  size_t len;
  char err[CM_OPS_ERR_LEN];
  char *s = cm_ops_read_file(path, &len, err, sizeof(err));
  if (s == NULL) {
    fprintf(stderr, "cymongoose-broker: %s\n", err);
    exit(1);
  }
  return s;
}

static bool start_listener(struct app *a, const struct cm_conf_listener *l) {
  struct cm_tls_opts tls = {0};
  char *cert = NULL, *key = NULL, *ca = NULL;
  bool is_tls = strncmp(l->url, "mqtts://", 8) == 0 || strncmp(l->url, "wss://", 6) == 0;
  if (is_tls) {
    if (l->certfile == NULL) {
      fprintf(stderr, "cymongoose-broker: %s: certfile is required for TLS listeners\n", l->url);
      return false;
    }
    cert = read_or_die(l->certfile);
    tls.cert = cm_str_c(cert);
    if (l->keyfile != NULL) key = read_or_die(l->keyfile), tls.key = cm_str_c(key);
    if (l->cafile != NULL && l->require_certificate) ca = read_or_die(l->cafile), tls.ca = cm_str_c(ca);
  } else if (l->certfile != NULL || l->require_certificate) {
    fprintf(stderr, "cymongoose-broker: %s: certfile/require_certificate need mqtts:// or wss://\n",
            l->url);
    return false;
  }
  if (l->require_certificate && ca == NULL) {
    fprintf(stderr, "cymongoose-broker: %s: require_certificate needs a cafile\n", l->url);
    return false;
  }
  struct cm_conn *c = cm_mqtt_broker_listen(a->broker, l->url, is_tls ? &tls : NULL);
  free(cert), free(key), free(ca);
  if (c == NULL) {
    fprintf(stderr, "cymongoose-broker: cannot listen on %s: %s\n", l->url,
            errno == EINVAL ? "bad URL or TLS options (schemes: mqtt://, tcp://, mqtts://, "
                              "ws://, wss://)"
                            : strerror(errno));
    return false;
  }
  /* The line "listening on URL (port N)" is logged by the broker. */
  if (l->use_identity_as_username) {
    if (!l->require_certificate) {
      fprintf(stderr, "cymongoose-broker: %s: use_identity_as_username needs "
              "require_certificate true\n", l->url);
      return false;
    }
    uint16_t *np = realloc(a->identity_ports, (a->nidentity_ports + 1) * sizeof(*np));
    if (np == NULL) return false;
    a->identity_ports = np;
    a->identity_ports[a->nidentity_ports++] = c->loc.port;
  }
  return true;
}

int main(int argc, char **argv) {
  static struct app app;
  struct app *a = &app;
  const char *config = NULL;
  int verbose = 0;
  char err[CM_OPS_ERR_LEN];
  static const struct option longopts[] = {{"listen", required_argument, NULL, 'l'},
                                           {"config", required_argument, NULL, 'c'},
                                           {"help", no_argument, NULL, 'h'},
                                           {NULL, 0, NULL, 0}};
  /* First pass: the config file (CLI listeners are added after its own). */
  int opt;
  while ((opt = getopt_long(argc, argv, "l:c:vh", longopts, NULL)) != -1) {
    if (opt == 'c') config = optarg;
    else if (opt == 'v') verbose++;
    else if (opt == 'h') usage(0);
    else if (opt != 'l') usage(2);
  }
  if (optind != argc) usage(2);
  if (config != NULL ? cm_conf_load(&a->conf, config, err, sizeof(err)) != 0
                     : cm_conf_parse(&a->conf, cm_str_c(""), "-", err, sizeof(err)) != 0) {
    fprintf(stderr, "cymongoose-broker: %s\n", err);
    return 1;
  }
  optind = 1;
  while ((opt = getopt_long(argc, argv, "l:c:vh", longopts, NULL)) != -1)
    if (opt == 'l' && cm_conf_add_listener(&a->conf, optarg) != 0) return 1;
  if (a->conf.nlisteners == 0) cm_conf_add_listener(&a->conf, "mqtt://127.0.0.1:1883");
  int level = a->conf.log_level >= 0 ? a->conf.log_level : CM_LL_INFO;
  if (verbose > 0) level = verbose == 1 ? CM_LL_DEBUG : CM_LL_VERBOSE;
  cm_log_set(level);

  if (a->conf.password_file != NULL &&
      (a->passwd = cm_passwd_load(a->conf.password_file, err, sizeof(err))) == NULL) {
    fprintf(stderr, "cymongoose-broker: %s\n", err);
    return 1;
  }
  if (a->conf.acl_file != NULL &&
      (a->acl = cm_acl_load(a->conf.acl_file, err, sizeof(err))) == NULL) {
    fprintf(stderr, "cymongoose-broker: %s\n", err);
    return 1;
  }
  if (a->conf.persistence_file != NULL &&
      (a->persist = cm_persist_open(a->conf.persistence_file, a->conf.fsync,
                                    a->conf.fsync_interval_ms, err, sizeof(err))) == NULL) {
    fprintf(stderr, "cymongoose-broker: %s\n", err);
    return 1;
  }

  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);

  if (cm_mgr_init(&a->mgr) != 0) {
    fprintf(stderr, "cymongoose-broker: cannot create the event manager: %s\n", strerror(errno));
    return 1;
  }
  struct cm_mqtt_broker_opts o = {
      .allow_anonymous = a->conf.allow_anonymous,
      .authenticate = authenticate,
      .auth_arg = a,
      .acl_check = a->acl != NULL ? acl_check : NULL,
      .acl_arg = a,
      .on_message = a->conf.nbridges > 0 ? on_message : NULL,
      .msg_arg = a,
      .on_client = on_client,
      .client_arg = a,
  };
  cm_conf_broker_opts(&a->conf, &o); /* limits, topic aliases */
  if (a->persist != NULL) cm_persist_hooks(a->persist, &o.store);
  a->broker = cm_mqtt_broker_new(&a->mgr, &o);
  if (a->broker == NULL) {
    fprintf(stderr, "cymongoose-broker: cannot start the broker: %s\n", strerror(errno));
    return 1;
  }
  if (a->persist != NULL)
    CM_INFO("persistence: %s (fsync %s), %zu retained, %zu sessions restored",
            a->conf.persistence_file,
            a->conf.fsync == CM_FSYNC_ALWAYS ? "always" : a->conf.fsync == CM_FSYNC_NEVER ? "never" : "interval",
            cm_persist_count_retained(a->persist), cm_persist_count_sessions(a->persist));
  for (size_t i = 0; i < a->conf.nlisteners; i++)
    if (!start_listener(a, &a->conf.listeners[i])) return 1;
  a->bridges = calloc(a->conf.nbridges + 1, sizeof(*a->bridges));
  for (size_t i = 0; i < a->conf.nbridges; i++)
    a->bridges[i] = cm_bridge_new(&a->mgr, a->broker, &a->conf.bridges[i]);
  a->last_compact_ms = cm_millis();
  cm_timer_add(&a->mgr, 20, CM_TIMER_REPEAT, housekeeping, a);

  while (stop_signal == 0) cm_mgr_poll(&a->mgr, 1000);

  CM_INFO("stopping on signal %d", (int)stop_signal);
  for (size_t i = 0; i < a->conf.nbridges; i++) cm_bridge_free(a->bridges[i]);
  cm_mqtt_broker_free(a->broker);
  cm_mgr_poll(&a->mgr, 0); /* lets the DISCONNECTs go out */
  cm_mgr_free(&a->mgr);
  cm_persist_close(a->persist);
  while (a->identities != NULL) identity_drop(a, a->identities->conn_id);
  free(a->bridges);
  free(a->identity_ports);
  cm_passwd_free(a->passwd);
  cm_acl_free(a->acl);
  cm_conf_free(&a->conf);
  CM_INFO("stopped");
  return 0;
}
