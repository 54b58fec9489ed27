/*
 * What the socket layer asks of TLS (not installed): src/net starts TLS on
 * the connections it makes (the arrow Net -> TLS); TLS then runs as c's
 * transport, layered over the stream transport it replaced (src/tls/stream.c),
 * and never calls into src/net by name.
 */
#ifndef CM_TLS_INTERNAL_H
#define CM_TLS_INTERNAL_H

#include "core/internal.h"

/* c was just accepted by l, which has TLS options (cm_tls_listen_opts): c
 * starts TLS with them.  Failures are deferred errors on c. */
void cm__tls_accepted(struct cm_conn *l, struct cm_conn *c);
/* cm_connect() to a TLS scheme: TLS with client defaults for host. */
void cm__tls_auto_client(struct cm_conn *c, struct cm_str host);

/* TLS as a transport (stream.c): over a stream, and on a listener with
 * TLS options (accepting through the listener's own transport). */
extern const struct cm__transport cm__tls_transport;
extern const struct cm__transport cm__tls_listener_transport;

/*
 * The codec side (openssl.c), for stream.c.  All need c->tls != NULL.
 */
/* The transport TLS runs over on c (the one it replaced). */
const struct cm__transport *cm__tls_inner(const struct cm_conn *c);
struct cm_buf *cm__tls_rx(struct cm_conn *c); /* ciphertext read, not yet decrypted */
struct cm_buf *cm__tls_tx(struct cm_conn *c); /* ciphertext waiting for the stream */
/* Runs the handshake on what rx holds (TLS_HS when done), then decrypts
 * every complete record into c->recv (one READ event).  Failures become an
 * ERROR event, then the connection drains its last alert and closes. */
void cm__tls_input(struct cm_conn *c);
/* The stream below ended (c->is_eof set) or was reset: a handshake under
 * way fails with an ERROR; otherwise c drains (closes on a reset). */
void cm__tls_eof(struct cm_conn *c, bool reset);
/* Produces more ciphertext in tx: the client's first handshake flight, up
 * to max bytes of c->send encrypted, or close_notify once draining or
 * half-closing (c->is_shut_wanted).
 * Returns the plaintext bytes taken from c->send (0 if none). */
size_t cm__tls_output(struct cm_conn *c, size_t max);
/* True when cm__tls_output has something to produce or tx is not empty. */
bool cm__tls_has_output(const struct cm_conn *c);
/* c's connect completed (after CONNECT): the client handshake may start. */
void cm__tls_connected(struct cm_conn *c);

#endif
