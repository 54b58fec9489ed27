/* Internal state of the HTTP server protocol (server.c, reply.c). */
#ifndef CM_HTTP_SERVER_H
#define CM_HTTP_SERVER_H

#include "cymongoose.h"

enum { CM__HTTP_KIND_SERVER = 0x48545331, CM__HTTP_KIND_CONN = 0x48545332 };

/* pfn_data of a listener. */
struct cm__http_server {
  int kind; /* CM__HTTP_KIND_SERVER; first, as in cm__http_conn */
  struct cm_http_serve_opts opts;
};

/* pfn_data of a served connection. */
struct cm__http_conn {
  int kind; /* CM__HTTP_KIND_CONN */
  struct cm_http_serve_opts opts;
  struct cm_http_chunked chunked; /* body decoder of the current request */
  size_t base_recv_limit;  /* c->recv_limit between requests */
  uint64_t head_started_ms; /* when a partial head was first seen; 0: none */
  bool hdrs_delivered;     /* HTTP_HDRS went out for the current request */
  bool is_head;            /* the last request was HEAD: replies carry no body */
  bool close_after;        /* close once the reply to the last request is queued */
  bool stopped;            /* read no more requests on this connection */
  bool chunked_reply;      /* a chunked reply is in progress */
};

static inline void cm_chunked_reset(struct cm__http_conn *st) {
  cm_http_chunked_init(&st->chunked);
}

/* The state of an HTTP server connection, or NULL for any other. */
struct cm__http_conn *cm__http_conn_of(struct cm_conn *c);

#endif
