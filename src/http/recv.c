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
