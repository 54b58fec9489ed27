/*
 * Static files on the Python side: Connection.serve_dir() and
 * Connection.serve_file() (listed in conn_methods.h), thin wrappers of
 * cm_http_serve_dir() / cm_http_serve_file().  Files are streamed by the
 * loop (sendfile on plain connections); nothing is read into Python.
 */
#include "core.h"

#include <fcntl.h>
#include <string.h>

#include "funcs.h"
#include "conn_methods.h"

/* The live request behind an HttpMessage argument: TypeError for other
 * objects, ValueError once the view expired (its handler returned). */
static struct cm_http_msg *request_of(PyObject *msg) {
  struct cm_http_msg *hm = cm_py_http_message_get(msg);
  if (hm != NULL) return hm;
  cm_py_state *st = cm_py_state_of_type(Py_TYPE(msg));
  if (st == NULL || Py_TYPE(msg) != st->http_message_type) {
    PyErr_Clear();
    PyErr_Format(PyExc_TypeError, "expected an HttpMessage, not %.100s", Py_TYPE(msg)->tp_name);
  } else {
    PyErr_SetString(PyExc_ValueError,
                    "the HttpMessage is no longer valid (messages expire when the handler returns)");
  }
  return NULL;
}

/* An optional str argument: NULL for "" or None; ValueError for NUL. */
static int opt_str(PyObject *o, const char *what, const char **out) {
  *out = NULL;
  if (o == NULL || o == Py_None) return 0;
  if (!PyUnicode_Check(o)) {
    PyErr_Format(PyExc_TypeError, "%s must be str, not %.100s", what, Py_TYPE(o)->tp_name);
    return -1;
  }
  Py_ssize_t n;
  const char *s = PyUnicode_AsUTF8AndSize(o, &n);
  if (s == NULL) return -1;
  if ((size_t)n != strlen(s)) {
    PyErr_Format(PyExc_ValueError, "%s contains NUL", what);
    return -1;
  }
  *out = n > 0 ? s : NULL;
  return 0;
}

/* A file system path (str, bytes or os.PathLike) as a new bytes object, or
 * NULL for None / "" when optional. */
static int opt_path(PyObject *o, const char *what, bool required, PyObject **out) {
  *out = NULL;
  if (o == NULL || o == Py_None) {
    if (!required) return 0;
    PyErr_Format(PyExc_TypeError, "%s is required", what);
    return -1;
  }
  if (!PyUnicode_FSConverter(o, out)) return -1; /* ValueError for embedded NUL */
  if (PyBytes_GET_SIZE(*out) == 0) {
    Py_CLEAR(*out);
    if (required) {
      PyErr_Format(PyExc_ValueError, "%s must not be empty", what);
      return -1;
    }
  }
  return 0;
}

/* extra_headers must be "Name: value" lines joined by CRLF: anything else
 * could end the head early or smuggle a header in.  The framing headers are
 * the library's to write. */
static int check_extra(const char *h) {
  bool framing;
  if (h == NULL) return 0;
  if (!cm_http_headers_ok(h, &framing)) {
    PyErr_SetString(PyExc_ValueError,
                    "extra_headers must be 'Name: value' lines separated by CRLF, without control "
                    "characters");
    return -1;
  }
  if (framing) {
    PyErr_SetString(PyExc_ValueError, "extra_headers must not set Content-Length or Transfer-Encoding");
    return -1;
  }
  return 0;
}

PyObject *cm_py_conn_serve_dir(PyObject *self, PyObject *args, PyObject *kwds) {
  static char *kwlist[] = {"message",      "root_dir", "extra_headers", "mime_types", "page404",
                           "allow_hidden", "precompressed", NULL};
  PyObject *msg, *root_obj, *extra_obj = NULL, *mime_obj = NULL, *page_obj = NULL;
  int allow_hidden = 0, precompressed = 1;
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO|OOO$pp:serve_dir", kwlist, &msg, &root_obj, &extra_obj,
                                   &mime_obj, &page_obj, &allow_hidden, &precompressed)) {
    return NULL;
  }
  struct cm_conn *c = cm_py_conn_get(self);
  if (c == NULL) return NULL;
  struct cm_http_msg *hm = request_of(msg);
  if (hm == NULL) return NULL;
  PyObject *root = NULL, *page = NULL;
  struct cm_http_serve_dir_opts opts = {0};
  if (opt_path(root_obj, "root_dir", true, &root) < 0 || opt_path(page_obj, "page404", false, &page) < 0 ||
      opt_str(extra_obj, "extra_headers", &opts.extra_headers) < 0 ||
      opt_str(mime_obj, "mime_types", &opts.mime_types) < 0 || check_extra(opts.extra_headers) < 0) {
    Py_XDECREF(root);
    Py_XDECREF(page);
    return NULL;
  }
  opts.root_dir = PyBytes_AS_STRING(root);
  opts.allow_hidden = allow_hidden != 0;
  opts.no_precompressed = precompressed == 0;
  opts.page404 = page != NULL ? PyBytes_AS_STRING(page) : NULL;
  /* No event comes from inside (the reply is only queued), but the output
   * hook may run. */
  cm_py_manager *mo = cm_py_conn_enter(c);
  cm_http_serve_dir(c, hm, &opts);
  Py_DECREF(root);
  Py_XDECREF(page);
  if (cm_py_conn_leave(mo) < 0) return NULL;
  Py_RETURN_NONE;
}

PyObject *cm_py_conn_serve_file(PyObject *self, PyObject *args, PyObject *kwds) {
  static char *kwlist[] = {"message", "path", "extra_headers", "mime_types", NULL};
  PyObject *msg, *path_obj, *extra_obj = NULL, *mime_obj = NULL;
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO|OO:serve_file", kwlist, &msg, &path_obj, &extra_obj,
                                   &mime_obj)) {
    return NULL;
  }
  struct cm_conn *c = cm_py_conn_get(self);
  if (c == NULL) return NULL;
  struct cm_http_msg *hm = request_of(msg);
  if (hm == NULL) return NULL;
  PyObject *path = NULL;
  struct cm_http_serve_dir_opts opts = {0};
  if (opt_path(path_obj, "path", true, &path) < 0 || opt_str(extra_obj, "extra_headers", &opts.extra_headers) < 0 ||
      opt_str(mime_obj, "mime_types", &opts.mime_types) < 0 || check_extra(opts.extra_headers) < 0) {
    Py_XDECREF(path);
    return NULL;
  }
  cm_py_manager *mo = cm_py_conn_enter(c);
  cm_http_serve_file(c, hm, PyBytes_AS_STRING(path), &opts);
  Py_DECREF(path);
  if (cm_py_conn_leave(mo) < 0) return NULL;
  Py_RETURN_NONE;
}

/* _reply_file(status_code, headers, fd, offset, length) -> bool: private,
 * for cymongoose.wsgi's wsgi.file_wrapper.  Queues a response whose body is
 * bytes [offset, offset + length) of the open file fd (which stays the
 * caller's: the loop sends a duplicate with sendfile), with headers a
 * block of "Name: value\r\n" lines without Content-Length or
 * Transfer-Encoding.  ValueError for a malformed block; False when nothing
 * could be queued (the connection is closing). */
PyObject *cm_py_conn_reply_file(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                                PyObject *kwnames) {
  static const char *const names[] = {"status_code", "headers", "fd", "offset", "length", NULL};
  PyObject *a[5];
  if (cm_py_bind("_reply_file", args, nargs, kwnames, names, 5, 5, a) < 0) return NULL;
  long status = PyLong_AsLong(a[0]);
  int fd = PyObject_AsFileDescriptor(a[2]);
  unsigned long long off = PyLong_AsUnsignedLongLong(a[3]);
  unsigned long long len = off == (unsigned long long)-1 ? 0 : PyLong_AsUnsignedLongLong(a[4]);
  if (PyErr_Occurred()) return NULL;
  const char *headers;
  Py_ssize_t hlen;
  if (cm_py_cstr(a[1], &headers, &hlen, "headers") < 0) return NULL;
  if (status < 200 || status > 999) {
    PyErr_Format(PyExc_ValueError, "status_code must be in 200..999, not %ld", status);
    return NULL;
  }
  struct cm_conn *c = cm_py_conn_get(self);
  if (c == NULL) return NULL;
  bool framing;
  if (!cm_http_headers_ok(headers, &framing) || framing) {
    PyErr_SetString(PyExc_ValueError,
                    "headers must be 'Name: value\\r\\n' lines without Content-Length or "
                    "Transfer-Encoding (a name or value contain an illegal character?)");
    return NULL;
  }
  int dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (dup_fd < 0) return PyErr_SetFromErrno(PyExc_OSError);
  cm_py_body_answered(c);
  return PyBool_FromLong(cm_http_reply_file(c, (int)status, headers, dup_fd, off, len) == 0);
}
