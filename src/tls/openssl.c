/*
 * TLS over OpenSSL 3, as a byte transformer between the socket and the
 * connection buffers.  OpenSSL talks to a small BIO whose read side takes
 * ciphertext from t->rx and whose write side appends ciphertext to t->tx;
 * the TLS transport (stream.c) fills and drains them through the stream
 * transport below it, so this file makes no syscalls and never sees the
 * descriptor.
 *
 * SSL_CTX objects are expensive to build (PEM parsing, key checks, loading
 * CA stores), so each manager caches them by the options that shape them;
 * per-connection details (SNI, host name to verify) go on the SSL object.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "tls/internal.h"

/* Contexts kept per manager; the least recently used one goes first. */
#define CACHE_MAX 16
/* How often handshake deadlines are checked while handshakes are under way. */
/* Plaintext room asked for in c->recv per SSL_read (one full record). */
#define READ_CHUNK 16384
/* TLS 1.2 suites: forward secrecy and AEAD only.  TLS 1.3 suites are all
 * strong; OpenSSL's default order is kept for them. */
#define TLS12_CIPHERS "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL"

/* Per connection (or, with ssl NULL, a listener's stored options). */
struct cm_tls {
  SSL *ssl;                  /* NULL on a listener */
  SSL_CTX *ctx;              /* listener only: the context children use (one reference) */
  struct cm_conn *conn;
  const struct cm__transport *inner; /* the transport TLS runs over (TCP) */
  struct cm_buf rx;          /* ciphertext from the socket */
  struct cm_buf tx;          /* ciphertext for the socket */
  char *name;                /* client: SNI and name to verify; NULL: peer's IP */
  char *refused;             /* listener with bad options: why its children fail */
  uint64_t hs_timeout_ms;    /* 0: none */
  struct cm_timer hs_timer;  /* the handshake deadline, in the manager's timer heap */
  bool hs_armed;             /* hs_timer was scheduled once (the clock runs) */
  bool is_server;
  bool hs_started;           /* bytes of the handshake went out or came in */
  bool hs_done;
  bool failed;               /* an error was reported; only the last alert may leave */
  bool notify_sent;          /* close_notify queued */
};

struct ctx_entry {
  SSL_CTX *ctx;
  bool is_server, skip;
  uint8_t *key;              /* ca, cert and key, concatenated */
  size_t ca_len, cert_len, key_len;
  unsigned long used;        /* cache clock at last use */
};

struct tls_mgr {
  struct cm__mgr_ext ext;    /* cm_mgr_free() frees this through it */
  struct ctx_entry cache[CACHE_MAX];
  size_t ncache;
  unsigned long clock;
};

/* ------------------------------------------------------------ errors */

/* SSL_get_error() needs an empty error queue before each call; it almost
 * always is, and peeking costs less than clearing. */
static void clear_errors(void) {
  if (ERR_peek_error() != 0) ERR_clear_error();
}

/* "reason (detail)" from OpenSSL's error queue, which it empties; for
 * certificate failures the verification result says what was wrong. */
static void ssl_reason(SSL *ssl, char *buf, size_t len) {
  unsigned long e, first = 0;
  while ((e = ERR_get_error()) != 0)
    if (first == 0) first = e;
  const char *reason = first != 0 ? ERR_reason_error_string(first) : NULL;
  if (reason == NULL && first != 0) {
    ERR_error_string_n(first, buf, len);
    return;
  }
  long v = ssl != NULL ? SSL_get_verify_result(ssl) : X509_V_OK;
  if (v != X509_V_OK && (first == 0 || ERR_GET_REASON(first) == SSL_R_CERTIFICATE_VERIFY_FAILED)) {
    snprintf(buf, len, "certificate verify failed: %s", X509_verify_cert_error_string(v));
  } else {
    snprintf(buf, len, "%s", reason != NULL ? reason : "unknown error");
  }
}

/* Reports a failure once: ERROR to the handlers, then the connection
 * drains (sending the alert OpenSSL queued, if any) and closes. */
static void fail(struct cm_conn *c, struct cm_tls *t, const char *fmt, const char *detail) {
  char msg[300];
  snprintf(msg, sizeof(msg), fmt, detail);
  t->failed = true;
  c->is_tls_hs = 0; /* what follows (sending the alert) is not a handshake to report on */
  bool alert = t->tx.len > 0; /* decided now: the handler may free t */
  /* Plaintext queued before the handshake (an MQTT CONNECT, a request)
   * can never be encrypted now; left in c->send it would keep the drain
   * below waiting for ever. */
  cm_buf_consume(&c->send, c->send.len);
  CM_ERROR("conn %lu: %s", c->id, msg);
  cm_call(c, CM_EV_ERROR, msg);
  /* The same for what the ERROR handler queued (an MQTT DISCONNECT, a
   * goodbye): it can never be encrypted either, and must not go out in
   * clear, so the drain ends with the alert. */
  if (c->tls == t) cm_buf_consume(&c->send, c->send.len);
  if (alert) cm_drain(c);
  else cm_close(c);
}

/* ---------------------------------------------------------------- BIO */

static int bio_write(BIO *b, const char *data, size_t len, size_t *written) {
  struct cm_tls *t = BIO_get_data(b);
  BIO_clear_retry_flags(b);
  if (cm_buf_append(&t->tx, data, len) != 0) return 0;
  *written = len;
  return 1;
}

static int bio_read(BIO *b, char *data, size_t len, size_t *nread) {
  struct cm_tls *t = BIO_get_data(b);
  BIO_clear_retry_flags(b);
  if (t->rx.len == 0) {
    BIO_set_retry_read(b); /* SSL_ERROR_WANT_READ: wait for the socket */
    return 0;
  }
  size_t n = len < t->rx.len ? len : t->rx.len;
  memcpy(data, cm_buf_data(&t->rx), n);
  cm_buf_consume(&t->rx, n);
  *nread = n;
  return 1;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr) {
  (void)num;
  (void)ptr;
  struct cm_tls *t = BIO_get_data(b);
  switch (cmd) {
    case BIO_CTRL_FLUSH: return 1;
    case BIO_CTRL_PENDING: return t->rx.len > LONG_MAX ? LONG_MAX : (long)t->rx.len;
    case BIO_CTRL_WPENDING: return t->tx.len > LONG_MAX ? LONG_MAX : (long)t->tx.len;
    default: return 0;
  }
}

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

static void bio_method_init(void) {
  BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "cymongoose buffers");
  if (m == NULL) return;
  BIO_meth_set_write_ex(m, bio_write);
  BIO_meth_set_read_ex(m, bio_read);
  BIO_meth_set_ctrl(m, bio_ctrl);
  bio_method = m;
}

/* -------------------------------------------------------- contexts */

static int no_password(char *buf, int size, int rwflag, void *u) {
  (void)buf, (void)size, (void)rwflag, (void)u;
  return -1; /* encrypted keys are refused, never prompted for */
}

static BIO *mem_bio(struct cm_str s) {
  return BIO_new_mem_buf(s.buf, s.len > INT_MAX ? INT_MAX : (int)s.len);
}

/* Every certificate in pem.  Returns how many were added, or -1. */
static int load_ca(SSL_CTX *ctx, struct cm_str pem, bool server) {
  BIO *bio = mem_bio(pem);
  if (bio == NULL) return -1;
  X509_STORE *store = SSL_CTX_get_cert_store(ctx);
  int n = 0;
  X509 *x;
  while ((x = PEM_read_bio_X509(bio, NULL, no_password, NULL)) != NULL) {
    int ok = X509_STORE_add_cert(store, x);
    /* Tell clients which CAs we accept so that they pick the right cert. */
    if (ok && server) SSL_CTX_add_client_CA(ctx, x);
    X509_free(x);
    if (!ok) {
      BIO_free(bio);
      return -1;
    }
    n++;
  }
  BIO_free(bio);
  if (n > 0) ERR_clear_error(); /* the end of the input reads as an error */
  return n;
}

/* The leaf certificate, then the rest of the chain. */
static int load_chain(SSL_CTX *ctx, struct cm_str pem) {
  BIO *bio = mem_bio(pem);
  if (bio == NULL) return -1;
  X509 *leaf = PEM_read_bio_X509_AUX(bio, NULL, no_password, NULL);
  if (leaf == NULL || SSL_CTX_use_certificate(ctx, leaf) != 1) {
    X509_free(leaf);
    BIO_free(bio);
    return -1;
  }
  X509_free(leaf);
  X509 *x;
  while ((x = PEM_read_bio_X509(bio, NULL, no_password, NULL)) != NULL) {
    if (SSL_CTX_add0_chain_cert(ctx, x) != 1) { /* takes x on success */
      X509_free(x);
      BIO_free(bio);
      return -1;
    }
  }
  ERR_clear_error();
  BIO_free(bio);
  return 0;
}

static int load_key(SSL_CTX *ctx, struct cm_str pem) {
  BIO *bio = mem_bio(pem);
  if (bio == NULL) return -1;
  EVP_PKEY *key = PEM_read_bio_PrivateKey(bio, NULL, no_password, NULL);
  BIO_free(bio);
  if (key == NULL) return -1;
  int ok = SSL_CTX_use_PrivateKey(ctx, key);
  EVP_PKEY_free(key);
  return ok == 1 ? 0 : -1;
}

/* Builds a context; NULL with the reason in err. */
static SSL_CTX *ctx_build(bool server, const struct cm_tls_opts *o, char *err, size_t len) {
  char why[200];
  ERR_clear_error();
  SSL_CTX *ctx = SSL_CTX_new(TLS_method());
  if (ctx == NULL) {
    ssl_reason(NULL, why, sizeof(why));
    snprintf(err, len, "TLS: cannot create context: %s", why);
    return NULL;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                               (server ? SSL_OP_CIPHER_SERVER_PREFERENCE : 0));
  SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS);
  const char *what = NULL;
  if (o->cert.len > 0) {
    if (load_chain(ctx, o->cert) != 0) what = "bad certificate PEM";
    else if (load_key(ctx, o->key.len > 0 ? o->key : o->cert) != 0) what = "bad private key PEM";
    else if (SSL_CTX_check_private_key(ctx) != 1) what = "private key does not match the certificate";
  } else if (server) {
    snprintf(err, len, "TLS: a server needs a certificate and its key");
    SSL_CTX_free(ctx);
    return NULL;
  } else if (o->key.len > 0) {
    what = "a private key was given without a certificate";
  }
  if (what == NULL && o->ca.len > 0) {
    int n = load_ca(ctx, o->ca, server);
    if (n <= 0) what = "bad CA PEM";
  }
  if (what != NULL) {
    ssl_reason(NULL, why, sizeof(why));
    if (strcmp(why, "unknown error") == 0) snprintf(err, len, "TLS: %s", what);
    else snprintf(err, len, "TLS: %s: %s", what, why);
    SSL_CTX_free(ctx);
    return NULL;
  }
  if (server) {
    static const unsigned char sid[] = "cymongoose";
    SSL_CTX_set_session_id_context(ctx, sid, sizeof(sid) - 1);
    if (o->ca.len > 0 && !o->skip_verification)
      SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
  } else if (o->skip_verification) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
  } else {
    if (o->ca.len == 0 && SSL_CTX_set_default_verify_paths(ctx) != 1) {
      ssl_reason(NULL, why, sizeof(why));
      snprintf(err, len, "TLS: cannot load the system CA store: %s", why);
      SSL_CTX_free(ctx);
      return NULL;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  }
  return ctx;
}

static void tls_mgr_free(struct cm_mgr *mgr);

static struct tls_mgr *tls_mgr(struct cm_mgr *mgr) {
  if (mgr->tls == NULL) {
    struct tls_mgr *m = calloc(1, sizeof(struct tls_mgr));
    if (m == NULL) return NULL;
    m->ext.free = tls_mgr_free;
    cm__mgr_ext_add(mgr, &m->ext);
    mgr->tls = m;
  }
  return mgr->tls;
}

static bool entry_matches(const struct ctx_entry *e, bool server, const struct cm_tls_opts *o) {
  if (e->is_server != server || e->skip != o->skip_verification || e->ca_len != o->ca.len ||
      e->cert_len != o->cert.len || e->key_len != o->key.len)
    return false;
  const uint8_t *k = e->key;
  return (o->ca.len == 0 || memcmp(k, o->ca.buf, o->ca.len) == 0) &&
         (o->cert.len == 0 || memcmp(k + o->ca.len, o->cert.buf, o->cert.len) == 0) &&
         (o->key.len == 0 || memcmp(k + o->ca.len + o->cert.len, o->key.buf, o->key.len) == 0);
}

static void entry_free(struct ctx_entry *e) {
  SSL_CTX_free(e->ctx);
  free(e->key);
  memset(e, 0, sizeof(*e));
}

/* A context for these options: from the cache, or built and cached.  The
 * caller gets no reference of its own: SSL_new() takes one. */
static SSL_CTX *ctx_get(struct cm_mgr *mgr, bool server, const struct cm_tls_opts *o, char *err,
                        size_t len) {
  struct tls_mgr *m = tls_mgr(mgr);
  if (m == NULL) {
    snprintf(err, len, "out of memory");
    return NULL;
  }
  m->clock++;
  for (size_t i = 0; i < m->ncache; i++) {
    if (entry_matches(&m->cache[i], server, o)) {
      m->cache[i].used = m->clock;
      return m->cache[i].ctx;
    }
  }
  SSL_CTX *ctx = ctx_build(server, o, err, len);
  if (ctx == NULL) return NULL;
  size_t keylen = o->ca.len + o->cert.len + o->key.len;
  uint8_t *key = malloc(keylen > 0 ? keylen : 1);
  if (key == NULL) {
    SSL_CTX_free(ctx);
    snprintf(err, len, "out of memory");
    return NULL;
  }
  if (o->ca.len) memcpy(key, o->ca.buf, o->ca.len);
  if (o->cert.len) memcpy(key + o->ca.len, o->cert.buf, o->cert.len);
  if (o->key.len) memcpy(key + o->ca.len + o->cert.len, o->key.buf, o->key.len);
  size_t slot = m->ncache;
  if (slot == CACHE_MAX) {
    slot = 0;
    for (size_t i = 1; i < CACHE_MAX; i++)
      if (m->cache[i].used < m->cache[slot].used) slot = i;
    entry_free(&m->cache[slot]); /* live connections keep their own reference */
  } else {
    m->ncache++;
  }
  m->cache[slot] = (struct ctx_entry){.ctx = ctx, .is_server = server,
                                      .skip = o->skip_verification, .key = key,
                                      .ca_len = o->ca.len, .cert_len = o->cert.len,
                                      .key_len = o->key.len, .used = m->clock};
  return ctx;
}

/* ------------------------------------------------- handshake deadlines */

static void hs_unlist(struct cm_tls *t) {
  if (t->conn != NULL) cm__timer_unschedule(t->conn->mgr, &t->hs_timer);
}

/* The ERROR is deferred to the flush step that follows the timers: a
 * handler may free t (cm_tls_free), and t holds the timer being run. */
static void hs_expired(void *arg) {
  struct cm_tls *t = arg;
  struct cm_conn *c = t->conn;
  if (t->hs_done || t->failed || c->is_closing) return;
  char msg[80];
  snprintf(msg, sizeof(msg), "TLS handshake timed out after %llu ms",
           (unsigned long long)t->hs_timeout_ms);
  t->failed = true;
  c->is_tls_hs = 0;
  CM_ERROR("conn %lu: %s", c->id, msg);
  cm__conn_defer_error(c, msg);
  if (c->deferred_error == NULL) cm_close(c); /* no memory for the message */
}

/* Starts t's handshake clock (the TCP connection is up): one timer in the
 * manager's heap, taken out when the handshake completes or t is freed. */
static void hs_arm(struct cm_tls *t) {
  if (t->hs_armed || t->hs_done || t->hs_timeout_ms == 0) return;
  t->hs_armed = true;
  /* No memory for the heap: no deadline rather than no TLS. */
  cm__timer_schedule(t->conn->mgr, &t->hs_timer, cm_millis() + t->hs_timeout_ms);
}

/* -------------------------------------------------- connection state */

static void tls_state_free(struct cm_tls *t) {
  hs_unlist(t);
  SSL_free(t->ssl); /* frees the BIO too */
  SSL_CTX_free(t->ctx);
  cm_buf_free(&t->rx);
  cm_buf_free(&t->tx);
  free(t->name);
  free(t->refused);
  free(t);
}

static bool is_ip_literal(const char *s) {
  unsigned char buf[16];
  return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/* A new state for c on ctx.  NULL with the reason in err. */
static struct cm_tls *tls_state_new(struct cm_conn *c, SSL_CTX *ctx, bool server, const char *name,
                                    uint64_t hs_timeout_ms, char *err, size_t len) {
  pthread_once(&bio_once, bio_method_init);
  struct cm_tls *t = calloc(1, sizeof(*t));
  BIO *bio = bio_method != NULL ? BIO_new(bio_method) : NULL;
  if (t == NULL || bio == NULL || (name != NULL && (t->name = strdup(name)) == NULL) ||
      (t->ssl = SSL_new(ctx)) == NULL) {
    char why[200];
    ssl_reason(NULL, why, sizeof(why));
    snprintf(err, len, "TLS: cannot create the session: %s", why);
    BIO_free(bio);
    if (t != NULL) {
      free(t->name);
      free(t);
    }
    return NULL;
  }
  BIO_set_data(bio, t);
  BIO_set_init(bio, 1);
  SSL_set_bio(t->ssl, bio, bio);
  t->conn = c;
  cm__timer_init(&t->hs_timer, hs_expired, t);
  t->is_server = server;
  t->hs_timeout_ms = hs_timeout_ms != 0 ? hs_timeout_ms : c->mgr->tls_hs_timeout_ms;
  if (server) SSL_set_accept_state(t->ssl);
  else SSL_set_connect_state(t->ssl);
  return t;
}

/* Puts t on c, replacing any state that has not started: TLS becomes c's
 * transport, over the one c had. */
static void attach(struct cm_conn *c, struct cm_tls *t) {
  cm_tls_free(c);
  t->inner = c->tp;
  c->tp = &cm__tls_transport;
  c->tls = t;
  c->is_tls = 1;
  c->is_tls_hs = 1;
  if (c->fd >= 0 && !c->is_connecting) cm__tls_connected(c);
}

/* Shared by cm_tls_init and the automatic client TLS. */
static int tls_setup(struct cm_conn *c, const struct cm_tls_opts *opts, char *err, size_t len) {
  static const struct cm_tls_opts defaults;
  if (opts == NULL) opts = &defaults;
  bool server = c->is_accepted;
  SSL_CTX *ctx = ctx_get(c->mgr, server, opts, err, len);
  if (ctx == NULL) return -1;
  char *name = NULL;
  if (!server && opts->name.len > 0) {
    if (memchr(opts->name.buf, 0, opts->name.len) != NULL) {
      snprintf(err, len, "TLS: bad server name");
      return -1;
    }
    name = strndup(opts->name.buf, opts->name.len);
    if (name == NULL) {
      snprintf(err, len, "out of memory");
      return -1;
    }
  } else if (!server && c->tls != NULL && ((struct cm_tls *)c->tls)->name != NULL) {
    /* Options without a name keep the URL's host of the automatic setup. */
    name = strdup(((struct cm_tls *)c->tls)->name);
  }
  struct cm_tls *t = tls_state_new(c, ctx, server, name, opts->hs_timeout_ms, err, len);
  free(name);
  if (t == NULL) return -1;
  attach(c, t);
  return 0;
}

int cm_tls_init(struct cm_conn *c, const struct cm_tls_opts *opts) {
  struct cm_tls *old = c->tls;
  if (c->is_closing) return CM_ECLOSED;
  if (c->is_listening || c->is_udp) return CM_EINVAL;
  if (old != NULL && (old->hs_started || old->failed)) return CM_EALREADY;
  char err[300];
  if (tls_setup(c, opts, err, sizeof(err)) != 0) {
    /* Reported at the next flush, not from inside this call: the caller
     * (outside any handler, or a handler that goes on using c) must not see
     * its handlers run, or c closed and freed, under its feet. */
    cm__conn_defer_error(c, err);
    return CM_EINVAL;
  }
  return 0;
}

void cm_tls_free(struct cm_conn *c) {
  struct cm_tls *t = c->tls;
  if (t == NULL) return;
  if (t->inner != NULL) c->tp = t->inner; /* back to the transport below */
  tls_state_free(t);
  c->tls = NULL;
  c->is_tls = 0;
  c->is_tls_hs = 0;
}

int cm_tls_listen_opts(struct cm_conn *l, const struct cm_tls_opts *opts, char *err,
                       size_t err_len) {
  char why[300];
  if (!l->is_listening || l->is_udp) {
    if (err != NULL && err_len > 0) snprintf(err, err_len, "TLS: not a TCP listener");
    return CM_EINVAL;
  }
  static const struct cm_tls_opts none;
  SSL_CTX *ctx = ctx_get(l->mgr, true, opts != NULL ? opts : &none, why, sizeof(why));
  struct cm_tls *t = calloc(1, sizeof(*t));
  if (t == NULL || ctx == NULL) {
    if (err != NULL && err_len > 0) snprintf(err, err_len, "%s", ctx != NULL ? "out of memory" : why);
    if (t != NULL) {
      /* Bad options: the listener refuses TLS rather than serve in the
       * clear; cm__tls_accepted() fails each child with the reason. */
      t->refused = strdup(why);
      t->conn = l;
      t->is_server = true;
      cm_tls_free(l);
      t->inner = l->tp;
      l->tp = &cm__tls_listener_transport;
      l->tls = t;
      l->is_tls = 1;
    }
    return t == NULL ? CM_ENOMEM : CM_EINVAL;
  }
  SSL_CTX_up_ref(ctx); /* ours for as long as the listener has the options */
  t->ctx = ctx;
  t->conn = l;
  cm__timer_init(&t->hs_timer, hs_expired, t);
  t->is_server = true;
  t->hs_timeout_ms = opts != NULL ? opts->hs_timeout_ms : 0;
  cm_tls_free(l);
  t->inner = l->tp;
  l->tp = &cm__tls_listener_transport;
  l->tls = t;
  l->is_tls = 1;
  return 0;
}

/* ------------------------------------------------------------ hooks */

const struct cm__transport *cm__tls_inner(const struct cm_conn *c) {
  return ((const struct cm_tls *)c->tls)->inner;
}

struct cm_buf *cm__tls_rx(struct cm_conn *c) {
  return &((struct cm_tls *)c->tls)->rx;
}

struct cm_buf *cm__tls_tx(struct cm_conn *c) {
  return &((struct cm_tls *)c->tls)->tx;
}

int cm_tls_check_opts(struct cm_mgr *mgr, bool server, const struct cm_tls_opts *opts, char *err,
                      size_t err_len) {
  static const struct cm_tls_opts none;
  return ctx_get(mgr, server, opts != NULL ? opts : &none, err, err_len) != NULL ? 0 : CM_EINVAL;
}

void cm__tls_accepted(struct cm_conn *l, struct cm_conn *c) {
  struct cm_tls *lt = l->tls;
  char err[300];
  if (lt->ctx == NULL) { /* the listener's options were refused */
    cm__conn_defer_error(c, lt->refused != NULL ? lt->refused : "TLS: bad listener options");
    return;
  }
  struct cm_tls *t = tls_state_new(c, lt->ctx, true, NULL, lt->hs_timeout_ms, err, sizeof(err));
  if (t == NULL) {
    cm__conn_defer_error(c, err);
    return;
  }
  attach(c, t);
}

void cm__tls_auto_client(struct cm_conn *c, struct cm_str host) {
  char err[300];
  struct cm_tls_opts o = {.name = host};
  if (tls_setup(c, &o, err, sizeof(err)) != 0) cm__conn_defer_error(c, err);
}

void cm__tls_connected(struct cm_conn *c) {
  struct cm_tls *t = c->tls;
  if (t->ssl == NULL) return;
  hs_arm(t);
  if (!t->is_server) cm__conn_mark_dirty(c); /* the flush sends the first flight */
}

/* Tells OpenSSL what to expect of the server's certificate. */
static int client_identity(struct cm_conn *c, struct cm_tls *t) {
  char ip[64];
  const char *name = t->name;
  if (name == NULL) name = cm_addr_ip_str(&c->rem, ip, sizeof(ip));
  if (is_ip_literal(name)) {
    return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), name) == 1 ? 0 : -1;
  }
  SSL_set_hostflags(t->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  return SSL_set_tlsext_host_name(t->ssl, name) == 1 && SSL_set1_host(t->ssl, name) == 1 ? 0 : -1;
}

/* One handshake step.  Returns 1 when it completed now, 0 while it goes
 * on, -1 after a failure was reported. */
static int handshake(struct cm_conn *c, struct cm_tls *t) {
  char why[256];
  clear_errors();
  t->hs_started = true;
  int r = SSL_do_handshake(t->ssl);
  /* Handshake records to send, or data queued while the handshake ran. */
  if (t->tx.len > 0 || (r == 1 && c->send.len > 0)) cm__conn_mark_dirty(c);
  if (r == 1) {
    t->hs_done = true;
    c->is_tls_hs = 0;
    hs_unlist(t);
    CM_DEBUG("conn %lu: %s, %s", c->id, SSL_get_version(t->ssl), SSL_get_cipher_name(t->ssl));
    cm_call(c, CM_EV_TLS_HS, NULL);
    return 1;
  }
  int e = SSL_get_error(t->ssl, r);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return 0;
  ssl_reason(t->ssl, why, sizeof(why));
  hs_unlist(t);
  fail(c, t, "TLS handshake failed: %s", why);
  return -1;
}

void cm__tls_input(struct cm_conn *c) {
  struct cm_tls *t = c->tls;
  if (t->failed) {
    cm_buf_consume(&t->rx, t->rx.len);
    return;
  }
  if (!t->hs_done) {
    if (handshake(c, t) != 1) return;
    if (c->tls != t || c->is_closing) return; /* the TLS_HS handler changed things */
  }
  size_t total = 0;
  bool eof = false;
  clear_errors(); /* once per batch: a successful call leaves the queue empty */
  for (;;) {
    if (cm_buf_reserve(&c->recv, READ_CHUNK) != 0) {
      cm_error(c, "out of memory");
      return;
    }
    size_t space = c->recv.cap - c->recv.off - c->recv.len;
    size_t n = 0;
    int r = SSL_read_ex(t->ssl, cm_buf_data(&c->recv) + c->recv.len, space, &n);
    if (r == 1) {
      c->recv.len += n;
      total += n;
      /* Nothing left in rx or inside OpenSSL: the next call could only
       * say WANT_READ, so skip it. */
      if (t->rx.len == 0 && !SSL_has_pending(t->ssl)) break;
      continue;
    }
    int e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) break;
    if (e == SSL_ERROR_ZERO_RETURN) { /* close_notify: the peer has finished */
      eof = true;
      break;
    }
    char why[256];
    ssl_reason(t->ssl, why, sizeof(why));
    if (total > 0) cm_call(c, CM_EV_READ, &total); /* what came before the fault */
    if (c->tls == t && !c->is_closing) fail(c, t, "TLS: %s", why);
    return;
  }
  if (t->tx.len > 0) cm__conn_mark_dirty(c); /* e.g. answers to key updates */
  if (total > 0) cm_call(c, CM_EV_READ, &total);
  if (eof) {
    c->is_eof = 1;
    cm_drain(c);
  }
}

void cm__tls_eof(struct cm_conn *c, bool reset) {
  struct cm_tls *t = c->tls;
  if (!t->hs_done && !t->failed) { /* a failed handshake must not pass silently */
    hs_unlist(t);
    fail(c, t, "TLS handshake failed: %s", "connection closed by the peer");
  } else if (reset) {
    cm_close(c);
  } else {
    cm_drain(c);
  }
}

size_t cm__tls_output(struct cm_conn *c, size_t max) {
  struct cm_tls *t = c->tls;
  if (t->ssl == NULL || t->failed) return 0;
  if (!t->hs_done) {
    if (!t->is_server && !t->hs_started) {
      if (client_identity(c, t) != 0) {
        char why[200];
        ssl_reason(NULL, why, sizeof(why));
        fail(c, t, "TLS: cannot set the server name to verify: %s", why);
        return 0;
      }
      handshake(c, t);
    }
    return 0;
  }
  size_t done = 0;
  if (c->send.len > 0) {
    size_t n = c->send.len < max ? c->send.len : max;
    clear_errors();
    if (SSL_write_ex(t->ssl, cm_buf_data(&c->send), n, &done) != 1) {
      char why[200];
      ssl_reason(t->ssl, why, sizeof(why));
      fail(c, t, "TLS: %s", why);
      return 0;
    }
    cm_buf_consume(&c->send, done);
  }
  /* close_notify only after the last byte: files queued with cm_send_file
   * come through c->send one chunk at a time, so c->send running empty is
   * not the end.  Queued right behind the last records, it leaves with them
   * in the same send. */
  if (c->send.len == 0 && c->files == NULL && c->is_draining && !t->notify_sent) {
    t->notify_sent = true;
    SSL_shutdown(t->ssl); /* queues close_notify; we do not wait for the peer's */
    ERR_clear_error();
  }
  return done;
}

bool cm__tls_has_output(const struct cm_conn *c) {
  const struct cm_tls *t = c->tls;
  if (t->tx.len > 0) return true;
  if (t->ssl == NULL || t->failed) return false;
  if (!t->hs_done) return !t->is_server && !t->hs_started && c->fd >= 0 && !c->is_connecting;
  return c->is_draining && !t->notify_sent && c->files == NULL;
}

static void tls_mgr_free(struct cm_mgr *mgr) {
  struct tls_mgr *m = mgr->tls;
  if (m == NULL) return;
  for (size_t i = 0; i < m->ncache; i++) entry_free(&m->cache[i]);
  free(m);
  mgr->tls = NULL;
}

/* The commonName of name as UTF-8 into cn, or "" when there is none, more
 * than one, or it holds a NUL byte or does not fit: the CN may serve as a
 * user name for access control, so "alice\0x" or a CN longer than cn_len
 * must not become "alice" or a prefix of it. */
static void peer_cn(X509_NAME *name, char *cn, size_t cn_len) {
  int i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (i < 0 || X509_NAME_get_index_by_NID(name, NID_commonName, i) >= 0) return;
  ASN1_STRING *data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
  unsigned char *utf8 = NULL;
  int n = data != NULL ? ASN1_STRING_to_UTF8(&utf8, data) : -1;
  if (n >= 0 && (size_t)n < cn_len && memchr(utf8, '\0', (size_t)n) == NULL) {
    memcpy(cn, utf8, (size_t)n);
    cn[n] = '\0';
  }
  OPENSSL_free(utf8);
}

bool cm_tls_peer_cert(const struct cm_conn *c, char *subject, size_t subject_len, char *cn,
                      size_t cn_len) {
  if (subject_len > 0) subject[0] = '\0';
  if (cn_len > 0) cn[0] = '\0';
  const struct cm_tls *t = c != NULL ? c->tls : NULL;
  if (t == NULL || t->ssl == NULL || !t->hs_done) return false;
  if (SSL_get_verify_result(t->ssl) != X509_V_OK) return false;
  X509 *x = SSL_get1_peer_certificate(t->ssl);
  if (x == NULL) return false;
  X509_NAME *name = X509_get_subject_name(x);
  if (subject_len > 0) {
    BIO *bio = BIO_new(BIO_s_mem());
    if (bio != NULL) {
      /* RFC 2253 escapes control characters (a NUL comes out as "\00"). */
      X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253);
      size_t pending = BIO_ctrl_pending(bio);
      if (pending < subject_len) { /* a subject cut short is no identity */
        int n = BIO_read(bio, subject, (int)pending);
        subject[n > 0 ? n : 0] = '\0';
      }
      BIO_free(bio);
    }
  }
  if (cn_len > 0) peer_cn(name, cn, cn_len);
  X509_free(x);
  return true;
}
