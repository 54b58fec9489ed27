/*
 * Streamed request bodies for Python: http_body_stream(), http_body_read(),
 * http_body_left() and http_body_end().
 *
 * The HTTP server normally keeps a request's whole body (up to max_body)
 * and delivers it with HTTP_MSG.  From an HTTP_HDRS handler, a request with
 * a Content-Length body can instead be taken over: the connection leaves the
 * HTTP layer (cm_http_detach), the head is consumed, and the body stays in
 * the receive buffer until Python reads it, piece by piece, as READ events
 * come.  What Python has not read yet stays in c->recv, so reading from the
 * socket pauses at c->recv_limit: a slow consumer slows the client down
 * instead of filling memory.  Once the response is complete, http_body_end()
 * hands the connection back to the HTTP server (the next request), or
 * closes it after the response when the body was not read to its end.
 *
 * The state lives in c->pfn_data with body_pfn as c->pfn (freed on CLOSE),
 * so nothing else of the connection changes.
 */
#include "core.h"

#include <string.h>

#include "args.h"
#include "conn_methods.h"

#define BODY_KIND 0x42445953 /* first field, distinct from the HTTP kinds */

struct body_stream {
  int kind;                       /* BODY_KIND */
  struct cm_http_serve_opts opts; /* the server's, to serve HTTP again */
  uint64_t left;                  /* body bytes not read yet */
  bool keep_alive;                /* the request allows another one after it */
  bool expect_continue;           /* "100 Continue" still owed before reading */
};

static void body_pfn(struct cm_conn *c, int ev, void *ev_data) {
  (void)ev_data;
  if (ev == CM_EV_CLOSE && c->pfn_data != NULL) {
    free(c->pfn_data);
    c->pfn_data = NULL;
  }
}

static struct body_stream *stream_of(struct cm_conn *c) {
  if (c->pfn != body_pfn || c->pfn_data == NULL) return NULL;
  struct body_stream *bs = c->pfn_data;
  return bs->kind == BODY_KIND ? bs : NULL;
}

/* http_body_stream(message): see the method's doc string. */
PyObject *cm_py_conn_http_body_stream(PyObject *self, PyObject *msg) {
  struct cm_conn *c = cm_py_conn_get(self);
  if (c == NULL) return NULL;
  struct cm_http_msg *hm = cm_py_http_message_get(msg);
  struct cm_http_serve_opts opts;
  size_t base_recv_limit = 0;
  if (hm == NULL || !cm_http_hdrs_takeover_info(c, &opts, &base_recv_limit) || hm->status != 0) {
    if (!PyErr_Occurred())
      PyErr_SetString(PyExc_RuntimeError,
                      "http_body_stream() works only in an HTTP_HDRS handler of a served request");
    return NULL;
  }
  if (hm->framing == CM_HTTP_BODY_CHUNKED) Py_RETURN_NONE; /* left to HTTP_MSG */
  uint64_t length = hm->framing == CM_HTTP_BODY_LENGTH ? hm->content_length : 0;
  struct body_stream *bs = calloc(1, sizeof(*bs));
  if (bs == NULL) return PyErr_NoMemory();
  bs->kind = BODY_KIND;
  bs->opts = opts;
  bs->left = length;
  bs->keep_alive = hm->keep_alive;
  /* The server sends 100 Continue after HTTP_HDRS; once detached, we do,
   * when the application first asks for the body. */
  bs->expect_continue = hm->expect_continue;
  size_t head_end = (size_t)(hm->head.buf + hm->head.len - (const char *)cm_buf_data(&c->recv));
  cm_http_detach(c); /* hm stays readable: it points into c->recv */
  cm_recv_consume(c, head_end);
  if (base_recv_limit > 0) c->recv_limit = base_recv_limit; /* what paces the body */
  if (bs->expect_continue && c->recv.len > 0) bs->expect_continue = false;
  c->pfn = body_pfn;
  c->pfn_data = bs;
  return PyLong_FromUnsignedLongLong(length);
}

/* http_body_read(size=65536): see the method's doc string. */
PyObject *cm_py_conn_http_body_read(PyObject *self, PyObject *const *argv, Py_ssize_t nargs,
                                    PyObject *kwnames) {
  static const char *const names[] = {"size", NULL};
  PyObject *args[1];
  if (cm_py_bind("http_body_read", argv, nargs, kwnames, names, 1, 0, args) < 0) return NULL;
  Py_ssize_t size = 65536;
  if (args[0] != NULL && (size = PyLong_AsSsize_t(args[0])) < 0) {
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "size must be >= 0");
    return NULL;
  }
  struct cm_conn *c = cm_py_conn_get(self);
  if (c == NULL) return NULL;
  struct body_stream *bs = stream_of(c);
  if (bs == NULL) {
    PyErr_SetString(PyExc_RuntimeError, "no request body is being streamed on this connection");
    return NULL;
  }
  if (bs->expect_continue && bs->left > 0) {
    bs->expect_continue = false;
    cm_printf(c, "HTTP/1.1 100 Continue\r\n\r\n");
  }
  size_t n = c->recv.len;
  if ((uint64_t)n > bs->left) n = (size_t)bs->left;
  if (n > (size_t)size) n = (size_t)size;
  PyObject *data = PyBytes_FromStringAndSize((const char *)cm_buf_data(&c->recv), (Py_ssize_t)n);
  if (data == NULL) return NULL;
  cm_recv_consume(c, n);
  bs->left -= n;
  return data;
}

/* http_body_left(): bytes of the streamed body not read yet, None when no
 * body is being streamed. */
PyObject *cm_py_conn_http_body_left(PyObject *self, PyObject *unused) {
  (void)unused;
  struct cm_conn *c = cm_py_conn_get(self);
  if (c == NULL) return NULL;
  struct body_stream *bs = stream_of(c);
  if (bs == NULL) Py_RETURN_NONE;
  return PyLong_FromUnsignedLongLong(bs->left);
}

/* http_body_end(): see the method's doc string. */
PyObject *cm_py_conn_http_body_end(PyObject *self, PyObject *unused) {
  (void)unused;
  struct cm_conn *c = cm_py_conn_get(self);
  if (c == NULL) return NULL;
  struct body_stream *bs = stream_of(c);
  if (bs == NULL) Py_RETURN_FALSE;
  struct body_stream saved = *bs;
  free(bs);
  c->pfn = NULL;
  c->pfn_data = NULL;
  if (saved.left > 0 || !saved.keep_alive || cm_http_serve(c, &saved.opts) != 0) {
    cm_drain(c); /* unread body bytes cannot be told from a next request */
    Py_RETURN_FALSE;
  }
  Py_RETURN_TRUE;
}
