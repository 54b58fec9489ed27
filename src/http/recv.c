/* Body reception shared by the HTTP server and client: growing the receive
 * buffer for a body, and decoding a chunked body in place. */
#include "http/internal.h"

void cm__http_make_room(struct cm_conn *c, size_t need) {
  if (c->recv_limit < need) {
    c->recv_limit = need;
    cm_recv_consume(c, 0); /* resumes reading if the connection was full */
  }
}

int cm__http_recv_chunked(struct cm_conn *c, size_t head, struct cm_http_chunked *st,
                          const struct cm_http_limits *lim) {
  char *buf = (char *) cm_buf_data(&c->recv);
  int d = cm_http_chunked_decode(st, buf + head, c->recv.len - head, lim);
  /* Drop the framing already decoded so that the buffer holds the head,
   * the body so far and only the undecoded tail. */
  if (st->in > st->out) {
    cm_buf_delete(&c->recv, head + st->out, st->in - st->out);
    st->in = st->out;
  }
  /* Room for the rest: the body so far plus one more size line and trailers. */
  if (d == 0) cm__http_make_room(c, head + st->out + lim->max_chunk_line + lim->max_head + 64);
  return d;
}

uint64_t cm__http_body_end(const struct cm_http_msg *hm, size_t head) {
  if (hm->framing == CM_HTTP_BODY_CHUNKED) return 0;
  if (hm->framing == CM_HTTP_BODY_UNTIL_CLOSE) return UINT64_MAX;
  return head + (hm->framing == CM_HTTP_BODY_LENGTH ? hm->content_length : 0);
}

int cm__http_recv_body(struct cm_conn *c, const struct cm_http_msg *hm, size_t head,
                       struct cm_http_chunked *st, const struct cm_http_limits *lim, bool at_close,
                       size_t *body_len) {
  size_t have = c->recv.len - head;
  *body_len = 0;
  switch (hm->framing) {
    case CM_HTTP_BODY_LENGTH:
      if (have < hm->content_length) {
        cm__http_make_room(c, head + (size_t) hm->content_length);
        return 0;
      }
      *body_len = (size_t) hm->content_length;
      return 1;
    case CM_HTTP_BODY_CHUNKED: {
      int d = cm__http_recv_chunked(c, head, st, lim);
      if (d == 1) *body_len = st->out;
      return d;
    }
    case CM_HTTP_BODY_UNTIL_CLOSE:
      if (have > lim->max_body) return CM_HTTP_ERR_BODY_TOO_LARGE;
      if (!at_close) {
        cm__http_make_room(c, head + (size_t) lim->max_body + 1);
        return 0;
      }
      *body_len = have;
      return 1;
    default:
      return 1;
  }
}

