/* Internal state shared by the HTTP protocol files (server.c, client.c, reply.c). */
#ifndef CM_HTTP_INTERNAL_H
#define CM_HTTP_INTERNAL_H

#include "cymongoose.h"

enum {
  CM__HTTP_KIND_SERVER = 0x48545331,
  CM__HTTP_KIND_CONN = 0x48545332,
  CM__HTTP_KIND_CLIENT = 0x48545333
};

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
  struct cm_http_scan scan; /* progress through the current request's head */
  size_t head_len;         /* once HTTP_HDRS went out: the head's length, */
  uint64_t body_end;       /* and for a Content-Length body where it ends */
  char *path_buf;          /* storage of hm->path when it differs from uri */
  size_t path_cap;
  size_t base_recv_limit;  /* c->recv_limit between requests */
  uint64_t head_started_ms; /* when a partial head was first seen; 0: none */
  uint64_t body_started_ms; /* when the head of a request with a pending body came */
  uint64_t body_seen;      /* body bytes of the current request received so far */
  struct cm_timer deadline; /* fires at the earliest deadline (or earlier: lazy) */
  bool hdrs_delivered;     /* HTTP_HDRS went out for the current request */
  bool is_head;            /* the last request was HEAD: replies carry no body */
  bool is_connect;         /* the last request was CONNECT: a 2xx reply starts a
                              tunnel (no Content-Length, no more HTTP) */
  bool close_after;        /* close once the reply to the last request is queued */
  bool keep_alive_10;      /* an HTTP/1.0 keep-alive request: say keep-alive back */
  bool stopped;            /* read no more requests on this connection */
  bool ending;             /* cm_http_end_keep_alive(): close after the
                              requests already received are answered */
  bool held;               /* waiting for a streamed file or a reply before reading on */
  bool awaiting_reply;     /* HTTP_MSG delivered, its reply not complete yet */
  bool chunked_reply;      /* a chunked reply is in progress */
  uint64_t linger_until_ms; /* after an error reply: discard input until then */
  bool busy;               /* process() is running: cm_http_detach defers the free */
  bool detached;           /* cm_http_detach ran during process(): free when it ends */
  bool fresh;              /* attached to a live connection: parse what c->recv
                              already holds at the next poll, not the next read */
  struct cm__http_access *access; /* access-log record of the current request; NULL: off */
};

/* Access log and debug log of requests (access_log.c). */
struct cm__http_access;
/* A request's head is about to be delivered (HTTP_HDRS; its reply may come
 * from then on): logs it at debug level and, when the access log is on,
 * remembers what its line needs. */
void cm__http_access_begin(struct cm_conn *c, struct cm__http_conn *st, const struct cm_http_msg *hm);
/* The reply's status and body bytes (added up over chunks). */
void cm__http_access_reply(struct cm__http_conn *st, int status, uint64_t body_bytes);
/* The reply is complete: writes the line. */
void cm__http_access_end(struct cm_conn *c, struct cm__http_conn *st);
void cm__http_access_free(struct cm__http_conn *st);

static inline void cm_chunked_reset(struct cm__http_conn *st) {
  cm_http_chunked_init(&st->chunked);
}

/* The state of an HTTP server connection, or NULL for any other. */
struct cm__http_conn *cm__http_conn_of(struct cm_conn *c);

/* pfn_data of an HTTP client connection. */
struct cm__http_client {
  int kind; /* CM__HTTP_KIND_CLIENT */
  struct cm_http_limits lim;
  struct cm_http_chunked chunked; /* body decoder of the current response */
  struct cm_http_scan scan;       /* progress through the current response's head */
  size_t head_len;                /* once HTTP_HDRS went out: the head's length, */
  uint64_t body_end;              /* and for a Content-Length body where it ends */
  size_t base_recv_limit;
  uint64_t head_bits;  /* FIFO of requests in flight sent by cm_http_request:
                          bit set for HEAD (its response has no body) */
  unsigned pending;    /* how many (at most 64 tracked) */
  uint64_t out_body_left; /* cm_http_client_track: body bytes of a raw request still to come */
  bool hdrs_delivered;
  bool upgraded;       /* a 101 was delivered: the bytes are no longer HTTP */
  uint64_t started_ms; /* when the client was attached: the connect clock */
  uint64_t connect_timeout_ms;  /* resolved: CM_HTTP_TIMEOUT_OFF for none */
  uint64_t response_timeout_ms;
  struct cm_timer deadline; /* lazy, as the server's (client.c) */
  char host[264];      /* "host:port" for the Host header */
};

/* What a caller's block of header lines says (reply.c). */
struct cm__http_block {
  bool has_type;      /* Content-Type given */
  bool has_length;    /* Content-Length given */
  uint64_t length;    /* its value */
  bool has_host;      /* Host given */
  bool chunked;       /* Transfer-Encoding: chunked */
  bool needs_crlf;    /* the last line lacks its CRLF */
  size_t len;         /* strlen of the block (0 for NULL): copied without a second strlen */
};

/* Checks that h (NULL for none) is a sequence of "Name: value" lines
 * separated by CRLF and fills *bi.  False for anything that could end the
 * head early or smuggle a header in. */
bool cm__http_scan_block(const char *h, struct cm__http_block *bi);

/* Lets c->recv grow to at least need bytes (a body larger than the default
 * receive limit but within max_body), resuming reading if it was paused. */
void cm__http_make_room(struct cm_conn *c, size_t need);

/* Runs the chunked decoder st over the body part of c->recv (after head
 * bytes) and drops the framing decoded so far, so that c->recv holds the
 * head, the body so far and only the undecoded tail; when more is needed,
 * lets c->recv grow for it.  lim must be resolved (no zero fields).
 * Returns as cm_http_chunked_decode(). */
int cm__http_recv_chunked(struct cm_conn *c, size_t head, struct cm_http_chunked *st,
                          const struct cm_http_limits *lim);

/* Where the body of a message whose head is head bytes ends in c->recv,
 * for the "is it complete yet" check between reads: 0 for a chunked body
 * (ask the decoder), UINT64_MAX for one that runs until the close. */
uint64_t cm__http_body_end(const struct cm_http_msg *hm, size_t head);

/*
 * The body framing of a message (the server's requests and the client's
 * responses alike) whose head, head bytes, starts c->recv, by hm->framing:
 * a Content-Length body waits for its bytes (letting c->recv grow for
 * them); a chunked one runs the decoder st (cm__http_recv_chunked); one
 * delimited by the close is whole once at_close and may not exceed
 * lim->max_body (c->recv may grow to one byte more, so that an excess is
 * seen); no body is whole at once.  Returns 1 with *body_len (the decoded
 * body at head) once the body is complete, 0 while more is needed, or a
 * negative CM_HTTP_ERR_* (CM_HTTP_ERR_BODY_TOO_LARGE, or the chunked
 * decoder's error).
 */
int cm__http_recv_body(struct cm_conn *c, const struct cm_http_msg *hm, size_t head,
                       struct cm_http_chunked *st, const struct cm_http_limits *lim, bool at_close,
                       size_t *body_len);

/* HTTP-date (date.c): IMF-fixdate of t (seconds since the epoch) into buf;
 * and parsing of IMF-fixdate, rfc850-date and asctime-date, -1 if invalid. */
void cm__http_date_fmt(int64_t t, char buf[32]);
int64_t cm__http_date_parse(struct cm_str s);

/*
 * A reply whose body the caller queues itself (static files): the head as
 * cm_http_reply() would write it, with Content-Length body_len; headers
 * must not set Content-Length or Transfer-Encoding.  *send_body says
 * whether the body may follow (not for HEAD requests, 204, 304).  Returns
 * false, queueing nothing, for a bad status or header block, or when the
 * send buffer refuses.  After queueing the body call cm__http_reply_end(),
 * which closes the connection if the request asked for that.
 */
bool cm__http_reply_head(struct cm_conn *c, int status, const char *headers, uint64_t body_len,
                         bool *send_body);
void cm__http_reply_end(struct cm_conn *c);

/* The reply to the current request is complete (server.c): the next
 * pipelined request may be parsed, at the next POLL if it was held. */
void cm__http_reply_done(struct cm_conn *c);

/*
 * Roots of cm_http_serve_dir() (static_root.c).  A root directory is
 * opened once per manager and kept in mgr->static_roots (at most
 * CM__STATIC_ROOTS_MAX, least recently used closed first); its path is
 * compared with the open descriptor again at most every
 * CM__STATIC_ROOT_CHECK_MS and reopened when it names another directory.
 */
#define CM__STATIC_ROOTS_MAX 16
#define CM__STATIC_ROOT_CHECK_MS 1000
struct cm__static_root {
  int fd;         /* O_PATH descriptor of the root directory */
  bool walk_only; /* CYMONGOOSE_NO_OPENAT2 was set when it was opened */
};
/* The root for root_dir (the application's string), opened on first use.
 * NULL with errno when it cannot be opened.  Owned by mgr; valid until the
 * next call on mgr or cm_mgr_free(). */
const struct cm__static_root *cm__static_root_get(struct cm_mgr *mgr, const char *root_dir);
/*
 * Opens rel ("a/b/c": no leading slash, "" for the root itself) beneath
 * root for reading (O_NONBLOCK, so a FIFO cannot block).  Symlinks are
 * followed while relative and below the root.  Hidden segments met through
 * a symlink count as missing unless allow_hidden (the caller checks those
 * of rel itself).  resolved receives the path below the root of what was
 * opened (symlinks resolved).  Returns the descriptor (the caller's), or -1
 * with errno: ENOENT / ENOTDIR missing (or hidden), EXDEV leads out of the
 * root, ELOOP too many symlinks, others from open(2).
 */
int cm__static_open(const struct cm__static_root *root, const char *rel, bool allow_hidden, char *resolved,
                    size_t resolved_cap);

#endif
