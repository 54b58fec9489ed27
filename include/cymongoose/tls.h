/*
 * cymongoose: TLS (OpenSSL 3).  Included by cymongoose.h.
 *
 * TLS is a transport under the connection: handlers keep reading plaintext
 * from c->recv and queueing plaintext with cm_send(); the library encrypts
 * and decrypts in between.  Server side: call cm_tls_init() in the ACCEPT
 * handler, or give the listener options once with cm_tls_listen_opts().
 * Client side: "https://", "wss://", "mqtts://", "tls://" and "ssl://" URLs
 * start TLS on their own with safe defaults (system CA store, SNI, host name
 * check); cm_tls_init() on OPEN or CONNECT (or right after cm_connect()
 * returns) replaces those defaults.
 *
 * Events: CM_EV_TLS_HS when the handshake completes; any failure (bad PEM,
 * unknown CA, wrong host name, expired certificate, protocol mismatch,
 * handshake timeout) arrives as CM_EV_ERROR with a readable reason taken from
 * OpenSSL, after which the connection closes.
 *
 * Policy: TLS 1.2 minimum, TLS 1.3 preferred; TLS 1.2 only with ECDHE and
 * AEAD ciphers; no compression, no renegotiation.
 */
#ifndef CYMONGOOSE_TLS_H
#define CYMONGOOSE_TLS_H

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default) /* exported: see cymongoose.h */

/* Default for cm_mgr.tls_hs_timeout_ms. */
#define CM_TLS_HS_TIMEOUT_MS 10000

/*
 * TLS options.  Every view is read during the call that receives the
 * struct and copied as needed; nothing is kept afterwards.  PEM text may
 * hold several blocks; it need not be NUL-terminated.
 */
struct cm_tls_opts {
  /* PEM CA certificates to trust.  Client: when empty, the system store is
   * used.  Server: when given, clients must present a certificate signed by
   * one of them (mutual TLS). */
  struct cm_str ca;
  /* PEM certificate chain, leaf first (required on servers; optional
   * client certificate on clients).  RSA and ECDSA keys both work. */
  struct cm_str cert;
  /* PEM private key of cert; when empty it is looked for in cert. */
  struct cm_str key;
  /* Client: the name sent as SNI and checked against the server's
   * certificate.  Empty: the host of the URL given to cm_connect() for
   * TLS schemes, else the peer's IP address.  An IP literal is checked as an
   * IP address and not sent as SNI. */
  struct cm_str name;
  /* Client: accept any server certificate (testing only).  Server: do not
   * ask for client certificates even when ca is given. */
  bool skip_verification;
  /* Handshake deadline in ms counted from the TCP connection being
   * established (or from this call when it already is); 0 takes the
   * manager's tls_hs_timeout_ms. */
  uint64_t hs_timeout_ms;
};

/*
 * Turns on TLS for c with opts (NULL: client defaults).  Server side: call
 * it on ACCEPT (or OPEN) of an accepted connection.  Client side: call it on
 * OPEN, on CONNECT, or after cm_connect() returned; it replaces TLS settings
 * made earlier for c as long as the handshake has not begun.
 * The SSL_CTX built from the options is cached on the manager, so repeating
 * the same options on every accepted connection costs no PEM parsing.
 * Returns 0.  On bad options (unparsable PEM, key not matching the
 * certificate, ...) returns CM_EINVAL, and c is no longer usable: it
 * closes with CM_EV_ERROR naming the reason at the next flush of the loop
 * (never from inside this call).  Without touching c: CM_EALREADY when the
 * handshake is already under way or done, CM_EINVAL on listeners and UDP
 * connections, CM_ECLOSED when c is closing.
 */
int cm_tls_init(struct cm_conn *c, const struct cm_tls_opts *opts);

/*
 * Drops c's TLS state without a close_notify: afterwards bytes travel in
 * the clear.  Meant for connections whose handshake has not begun (e.g. to
 * cancel the automatic TLS of an "https://" client); on a listener it
 * removes the options set by cm_tls_listen_opts().
 */
void cm_tls_free(struct cm_conn *c);

/*
 * Stores TLS options on listener l: every connection it accepts from now
 * on starts TLS with them before its OPEN event (c->is_tls is already true
 * then), with no handler involved.  A handler may still call cm_tls_init()
 * on ACCEPT to use other options.  The options are validated (and the
 * context built) now: returns 0, or CM_EINVAL when they are bad or l is
 * not a TCP listener (CM_ENOMEM when memory ran out); then the reason is
 * written to err (err_len
 * bytes, NUL-terminated; err may be NULL).  Bad options (an unreadable or
 * mismatched certificate or key, a bad CA) leave l listening but refusing
 * TLS: every connection it accepts then gets CM_EV_ERROR with that reason
 * and closes, and nothing is ever served in the clear.
 * l->is_tls tells whether l has options.
 */
int cm_tls_listen_opts(struct cm_conn *l, const struct cm_tls_opts *opts, char *err,
                       size_t err_len);

/*
 * The certificate the peer of c presented, when the handshake is done and
 * it was verified (a server with ca set in its options, or a client):
 * writes its subject in RFC 2253 form ("CN=alice,O=Example") to subject
 * and its commonName (UTF-8) to cn, each NUL-terminated (a size 0 skips
 * it), and returns true (a question: "has c a verified peer?").  Neither is ever cut short: a subject that does
 * not fit comes out empty, and so does a commonName that does not fit,
 * holds a NUL byte or appears more than once (an empty CN is no identity;
 * callers using it as a user name refuse the peer).  Returns false (both empty) when c
 * has no TLS, no verified peer certificate, or the handshake is not done.
 */
bool cm_tls_peer_cert(const struct cm_conn *c, char *subject, size_t subject_len, char *cn,
                      size_t cn_len);

/*
 * Checks opts as cm_tls_init() (server: as for an accepted connection or a
 * listener) would use them, building (and caching) the context, with no
 * connection involved.  Returns 0, or CM_EINVAL with the reason in err (err_len
 * bytes, NUL-terminated).  Lets bindings report bad options at the call.
 */
int cm_tls_check_opts(struct cm_mgr *mgr, bool server, const struct cm_tls_opts *opts, char *err,
                      size_t err_len);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif

#endif
