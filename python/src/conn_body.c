/*
 * Streamed request bodies for Python: http_body_stream(), http_body_read(),
 * http_body_left() and http_body_end().
 *
 * The HTTP server normally keeps a request's whole body (up to max_body)
 * and delivers it with HTTP_MSG.  From an HTTP_HDRS handler, a request's
 * body (Content-Length or chunked) can instead be taken over: the connection leaves the
 * HTTP layer (cm_http_detach), the head is consumed, and the body stays in
 * the receive buffer until Python reads it, piece by piece, as READ events
 * come.  What Python has not read yet stays in c->recv, so reading from the
 * socket pauses at c->recv_limit: a slow consumer slows the client down
 * instead of filling memory.  Once the response is complete, http_body_end()
 * hands the connection back to the HTTP server (the next request), or
 * closes it after the response when the body was not read to its end.
 *
 * A chunked body is decoded in c->recv as it is read
 * (cm_http_chunked_stream): c->recv holds the decoded bytes not read yet,
 * then the raw rest.  Its limits (max_body over the whole body, size line,
 * trailers) are enforced there; a malformed or oversized body gets its 4xx
 * (unless the application has started its response) and the connection
 * closes, the body never completing.
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
  uint64_t left;                  /* body bytes not read yet (Content-Length) */
  bool keep_alive;                /* the request allows another one after it */
  bool expect_continue;           /* "100 Continue" still owed before reading */
  bool chunked;                   /* the body is chunked: the fields below */
  bool done;                      /* the decoder has seen its end */
  bool failed;                    /* the decoder refused it: the connection closes */
  bool answered;                  /* a response has been started (cm_py_body_answered) */
  size_t ready;                   /* decoded bytes at the front of c->recv, not read yet */
  uint64_t total;                 /* decoded so far, what max_body bounds */
  struct cm_http_chunked dec;     /* the decoder's state */
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

void cm_py_body_answered(struct cm_conn *c) {
  struct body_stream *bs = stream_of(c);
  if (bs != NULL) bs->answered = true;
}

/* True when nothing of a streamed body is left to read. */
static bool body_complete(const struct body_stream *bs) {
  return bs->chunked ? bs->done && bs->ready == 0 : bs->left == 0;
}

/* http_body_stream(message, max_body=None): see the method's doc string. */
PyObject *cm_py_conn_http_body_stream(PyObject *self, PyObject *const *argv, Py_ssize_t nargs,
                                      PyObject *kwnames) {
  static const char *const names[] = {"message", "max_body", NULL};
  PyObject *args[2];
  if (cm_py_bind("http_body_stream", argv, nargs, kwnames, names, 2, 1, args) < 0) return NULL;
  bool has_max_body = args[1] != NULL && args[1] != Py_None;
  unsigned long long max_body = 0;
  if (has_max_body) {
    max_body = PyLong_AsUnsignedLongLong(args[1]);
    if (PyErr_Occurred()) return NULL;
  }
  return cm_py_http_body_take(self, args[0], has_max_body, max_body);
}

PyObject *cm_py_http_body_take(PyObject *self, PyObject *msg, bool has_max_body,
                               unsigned long long max_body) {
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
  if (hm->framing == CM_HTTP_BODY_UNTIL_CLOSE) Py_RETURN_NONE; /* requests have none */
  uint64_t length = hm->framing == CM_HTTP_BODY_LENGTH ? hm->content_length : 0;
  struct body_stream *bs = calloc(1, sizeof(*bs));
  if (bs == NULL) return PyErr_NoMemory();
  bs->kind = BODY_KIND;
  bs->opts = opts;
  bs->left = length;
  bs->chunked = hm->framing == CM_HTTP_BODY_CHUNKED;
  if (has_max_body) bs->opts.limits.max_body = max_body;
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
  if (bs->chunked) return PyLong_FromLong(-1);
  return PyLong_FromUnsignedLongLong(length);
}

/* Decodes what has arrived of a chunked body.  A refused body is answered
 * (400, 413 or 431, unless the application has started its response) and
 * the connection drained; the body stays incomplete.  Returns 0, or 1 when
 * the body was refused (c and bs may be gone then), or -1 with an
 * exception raised when a callback run by the core failed. */
static int decode_more(struct cm_conn *c, struct body_stream *bs) {
  int d = cm_http_chunked_stream(&bs->dec, &c->recv, &bs->ready, &bs->total, &bs->opts.limits);
  cm_recv_consume(c, 0); /* the framing is gone: reading may resume */
  if (d == 1) bs->done = true;
  if (d >= 0) return 0;
  bs->failed = true;
  bs->ready = 0;
  bool answer = !bs->answered;
  bs->answered = true;
  int status = d == CM_HTTP_ERR_BODY_TOO_LARGE ? 413 : d == CM_HTTP_ERR_HDRS_TOO_LARGE ? 431 : 400;
  const char *text = status == 413 ? "Payload Too Large\n"
                     : status == 431 ? "Request Header Fields Too Large\n"
                                     : "Bad Request: malformed chunked body\n";
  cm_py_manager *mo = cm_py_conn_enter(c); /* the output hook may run */
  if (answer) (void)cm_http_reply(c, status, "Connection: close\r\n", text, strlen(text));
  cm_drain(c);
  return cm_py_conn_leave(mo) < 0 ? -1 : 1;
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
  if (bs->expect_continue && !body_complete(bs)) {
    bs->expect_continue = false;
    cm_printf(c, "HTTP/1.1 100 Continue\r\n\r\n");
  }
  size_t n;
  if (bs->chunked) {
    if (bs->failed) return PyBytes_FromStringAndSize("", 0);
    int d = bs->done ? 0 : decode_more(c, bs);
    if (d != 0) return d < 0 ? NULL : PyBytes_FromStringAndSize("", 0);
    n = bs->ready;
  } else {
    n = c->recv.len;
    if ((uint64_t)n > bs->left) n = (size_t)bs->left;
  }
  if (n > (size_t)size) n = (size_t)size;
  PyObject *data = PyBytes_FromStringAndSize((const char *)cm_buf_data(&c->recv), (Py_ssize_t)n);
  if (data == NULL) return NULL;
  cm_recv_consume(c, n);
  if (bs->chunked)
    bs->ready -= n;
  else
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
  if (bs->chunked) return PyLong_FromLong(body_complete(bs) ? 0 : -1);
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
  if (!body_complete(&saved) || saved.failed || !saved.keep_alive ||
      cm_http_serve(c, &saved.opts) != 0) {
    cm_drain(c); /* unread body bytes cannot be told from a next request */
    Py_RETURN_FALSE;
  }
  Py_RETURN_TRUE;
}
