/*
 * TLS as a transport, layered over a stream transport (TCP) as h2o layers
 * its TLS over a socket: ciphertext comes from the layer below's recv into
 * the codec's rx buffer and leaves from tx through its send_buf; the codec
 * (openssl.c) turns it into plaintext in c->recv and out of c->send.  The
 * layer below is reached only through its table (cm__tls_inner), so TLS
 * could run over any stream transport.
 */
#include "tls/internal.h"

/* Plaintext encrypted per step before the records go to the stream, so
 * that a large c->send is not doubled into ciphertext all at once. */
#define TLS_WRITE_BATCH 65536

/* Ciphertext goes to the codec's buffer, which decrypts all of it at once
 * into c->recv, so nothing is left stranded inside OpenSSL while reading is
 * paused; recv_limit is then exceeded by at most one chunk. */
static void tls_read(struct cm_conn *c, unsigned events) {
  (void)events;
  if (!c->is_tls_hs && cm_conn_send_full(c)) {
    cm__conn_update_interest(c); /* the peer must read before we read on */
    return;
  }
  if (c->recv.len >= c->recv_limit) {
    cm__conn_check_full(c);
    return;
  }
  struct cm_buf *rx = cm__tls_rx(c);
  if (cm_buf_reserve(rx, CM_BUF_BLOCK) != 0) {
    cm_error(c, "out of memory");
    return;
  }
  size_t n = cm__tls_inner(c)->recv(c, cm_buf_data(rx) + rx->len, rx->cap - rx->off - rx->len);
  if (n == 0) return; /* the end, or an error: handled below us (cm__tls_eof) */
  rx->len += n;
  c->last_io_ms = c->mgr->now_ms;
  cm__tls_input(c);
  cm__conn_check_full(c);
  if (c->recv.len == 0) cm__buf_release(c->mgr, &c->recv);
}

/* Alternately encrypts a batch of c->send and sends the records.  Returns
 * the plaintext bytes taken, or -1 when c failed. */
static ssize_t tls_write(struct cm_conn *c) {
  const struct cm__transport *inner = cm__tls_inner(c);
  size_t total = 0;
  for (;;) {
    struct cm_buf *tx = cm__tls_tx(c);
    if (tx->len < TLS_WRITE_BATCH) total += cm__tls_output(c, TLS_WRITE_BATCH);
    if (c->is_closing || c->tls == NULL) return -1;
    tx = cm__tls_tx(c);
    if (tx->len == 0) break;
    int rc = inner->send_buf(c, tx);
    if (rc < 0) return -1;
    if (rc > 0) break;
    if (tx->cap > 4 * TLS_WRITE_BATCH) cm_buf_free(tx);
  }
  return (ssize_t)total;
}

/* The connect below finished: CONNECT, then the client handshake (the
 * CONNECT handler may have called cm_tls_init() or cm_tls_free()). */
static void tls_connected(struct cm_conn *c) {
  cm__tls_inner(c)->connected(c);
  if (c->tls != NULL && !c->is_closing) cm__tls_connected(c);
}

/* A lookup found the peer of a TLS client: the stream below connects. */
static void tls_connect(struct cm_conn *c, const struct cm_addr *a) {
  const struct cm__transport *inner = cm__tls_inner(c);
  if (inner->connect != NULL) inner->connect(c, a);
}

static void tls_free(struct cm_conn *c) {
  cm_tls_free(c);
}

/* Half-close.  close_notify was produced while c->is_shut_wanted
 * (cm__tls_has_output, cm__tls_output) and has left with the last records
 * (the core calls this only when nothing is left to send): the stream below
 * now ends our side.  Reading goes on, so the peer's close_notify, or what
 * it still sends, is read as usual. */
static int tls_shutdown(struct cm_conn *c) {
  const struct cm__transport *inner = cm__tls_inner(c);
  return inner->shutdown != NULL ? inner->shutdown(c) : CM_EINVAL;
}

const struct cm__transport cm__tls_transport = {
    .name = "tls",
    .read = tls_read,
    .write = tls_write,
    .connected = tls_connected,
    .has_output = cm__tls_has_output,
    .eof = cm__tls_eof,
    .free = tls_free,
    .shutdown = tls_shutdown,
    .connect = tls_connect,
    /* no send_file: file bytes must pass through the codec */
};

/* A listener with TLS options accepts as the transport below it does;
 * net hands each child to cm__tls_accepted. */
static void tls_listener_read(struct cm_conn *l, unsigned events) {
  cm__tls_inner(l)->read(l, events);
}

const struct cm__transport cm__tls_listener_transport = {
    .name = "tls-listener",
    .read = tls_listener_read,
    .free = tls_free,
};
