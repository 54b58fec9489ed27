/* url_encode, url_port/host/user/pass/uri/is_ssl, match, http_var. */
#include <errno.h>
#include <string.h>

#include "funcs.h"

static PyObject *py_url_encode(PyObject *m, PyObject *arg) {
  (void)m;
  cm_py_bytes b;
  if (cm_py_bytes_get(arg, &b, "data") < 0) return NULL;
  size_t n = (size_t)b.len, cap = 3 * n + 1;
  PyObject *r = NULL;
  char *buf = PyMem_Malloc(cap);
  if (buf == NULL) {
    PyErr_NoMemory();
  } else {
    long len = cm_url_encode(b.buf, n, buf, cap); /* 3 * n + 1 always fits */
    r = PyUnicode_DecodeASCII(buf, len < 0 ? 0 : (Py_ssize_t)len, NULL);
    PyMem_Free(buf);
  }
  cm_py_bytes_release(&b);
  return r;
}

/* The URL argument as a C string, NULL with an exception set. */
static const char *url_arg(PyObject *arg) {
  const char *s;
  Py_ssize_t n;
  return cm_py_cstr(arg, &s, &n, "url") < 0 ? NULL : s;
}

static PyObject *str_of(struct cm_str s) {
  return PyUnicode_DecodeUTF8(s.buf, (Py_ssize_t)s.len, "surrogateescape");
}

static PyObject *py_url_port(PyObject *m, PyObject *arg) {
  (void)m;
  const char *url = url_arg(arg);
  return url == NULL ? NULL : PyLong_FromLong(cm_url_port(url));
}

static PyObject *py_url_host(PyObject *m, PyObject *arg) {
  (void)m;
  const char *url = url_arg(arg);
  if (url == NULL) return NULL;
  struct cm_str h = cm_url_host(url);
  /* an IPv6 literal keeps its brackets, as in the URL ("[::1]") */
  if (h.buf > url && h.buf[-1] == '[') {
    size_t n = h.len + 1 + (h.buf[h.len] == ']');
    return str_of(cm_str_n(h.buf - 1, n));
  }
  return str_of(h);
}

static PyObject *py_url_user(PyObject *m, PyObject *arg) {
  (void)m;
  const char *url = url_arg(arg);
  return url == NULL ? NULL : str_of(cm_url_user(url));
}

static PyObject *py_url_pass(PyObject *m, PyObject *arg) {
  (void)m;
  const char *url = url_arg(arg);
  return url == NULL ? NULL : str_of(cm_url_pass(url));
}

static PyObject *py_url_uri(PyObject *m, PyObject *arg) {
  (void)m;
  const char *url = url_arg(arg);
  return url == NULL ? NULL : str_of(cm_url_uri(url));
}

static PyObject *py_url_is_ssl(PyObject *m, PyObject *arg) {
  (void)m;
  const char *url = url_arg(arg);
  return url == NULL ? NULL : PyBool_FromLong(cm_url_is_ssl(url));
}

static PyObject *py_match(PyObject *m, PyObject *const *args, Py_ssize_t nargs, PyObject *kw) {
  (void)m;
  static const char *const names[] = {"s", "pattern", NULL};
  PyObject *slot[2];
  if (cm_py_bind("match", args, nargs, kw, names, 2, 2, slot) < 0) return NULL;
  cm_py_bytes s, p;
  if (cm_py_bytes_get(slot[0], &s, "s") < 0) return NULL;
  if (cm_py_bytes_get(slot[1], &p, "pattern") < 0) {
    cm_py_bytes_release(&s);
    return NULL;
  }
  bool as_bytes = !PyUnicode_Check(slot[0]);
  struct cm_str pat = cm_str_n(p.buf, (size_t)p.len);
  size_t ncaps = cm_match_ncaps(pat);
  struct cm_str *caps = PyMem_Calloc(ncaps == 0 ? 1 : ncaps, sizeof(*caps));
  PyObject *list = NULL, *result = NULL;
  if (caps == NULL) {
    PyErr_NoMemory();
    goto done;
  }
  errno = 0;
  bool ok = cm_match(cm_str_n(s.buf, (size_t)s.len), pat, caps, ncaps);
  if (!ok && errno == ENOMEM) {
    PyErr_NoMemory();
    goto done;
  }
  if ((list = PyList_New(ok ? (Py_ssize_t)ncaps : 0)) == NULL) goto done;
  for (size_t i = 0; ok && i < ncaps; i++) {
    /* '?' matches one byte: a capture may split a UTF-8 sequence */
    PyObject *c = as_bytes ? PyBytes_FromStringAndSize(caps[i].buf, (Py_ssize_t)caps[i].len)
                           : PyUnicode_DecodeUTF8(caps[i].buf, (Py_ssize_t)caps[i].len, "replace");
    if (c == NULL) goto done;
    PyList_SET_ITEM(list, (Py_ssize_t)i, c);
  }
  result = Py_BuildValue("(OO)", ok ? Py_True : Py_False, list);
done:
  Py_XDECREF(list);
  PyMem_Free(caps);
  cm_py_bytes_release(&s);
  cm_py_bytes_release(&p);
  return result;
}

static PyObject *py_http_var(PyObject *m, PyObject *const *args, Py_ssize_t nargs, PyObject *kw) {
  (void)m;
  static const char *const names[] = {"buf", "name", NULL};
  PyObject *slot[2];
  if (cm_py_bind("http_var", args, nargs, kw, names, 2, 2, slot) < 0) return NULL;
  const char *name;
  Py_ssize_t nlen;
  if (cm_py_cstr(slot[1], &name, &nlen, "name") < 0) return NULL;
  cm_py_bytes b;
  if (cm_py_bytes_get(slot[0], &b, "buf") < 0) return NULL;
  PyObject *r = NULL;
  char *dst = PyMem_Malloc(b.len == 0 ? 1 : (size_t)b.len);
  if (dst == NULL) {
    PyErr_NoMemory();
  } else {
    long n = cm_http_var(cm_str_n(b.buf, (size_t)b.len), name, dst, (size_t)b.len);
    /* like urllib.parse.parse_qs: invalid UTF-8 is replaced, not an error */
    r = n < 0 ? Py_NewRef(Py_None) : PyUnicode_DecodeUTF8(dst, n, "replace");
    PyMem_Free(dst);
  }
  cm_py_bytes_release(&b);
  return r;
}

CM_PY_KW1(py_url_encode, "url_encode", "data")

CM_PY_KW1(py_url_port, "url_port", "url")

CM_PY_KW1(py_url_host, "url_host", "url")

CM_PY_KW1(py_url_user, "url_user", "url")

CM_PY_KW1(py_url_pass, "url_pass", "url")

CM_PY_KW1(py_url_uri, "url_uri", "url")

CM_PY_KW1(py_url_is_ssl, "url_is_ssl", "url")

PyMethodDef cm_py_url_methods[] = {
    {"url_encode", CM_PY_FASTCALL_KW(py_url_encode_kw),
     "url_encode(data)\n--\n\nPercent-encodes every byte of data (str as UTF-8) except\n"
     "A-Z a-z 0-9 - . _ ~, like urllib.parse.quote(data, safe=\"\")."},
    {"url_port", CM_PY_FASTCALL_KW(py_url_port_kw),
     "url_port(url)\n--\n\nThe explicit port, else the scheme's default (http/ws 80,\n"
     "https/wss 443, mqtt 1883, mqtts 8883), else 0."},
    {"url_host", CM_PY_FASTCALL_KW(py_url_host_kw),
     "url_host(url)\n--\n\nThe host; an IPv6 literal keeps its brackets (\"[::1]\")."},
    {"url_user", CM_PY_FASTCALL_KW(py_url_user_kw), "url_user(url)\n--\n\nThe user name, or \"\"."},
    {"url_pass", CM_PY_FASTCALL_KW(py_url_pass_kw), "url_pass(url)\n--\n\nThe password, or \"\"."},
    {"url_uri", CM_PY_FASTCALL_KW(py_url_uri_kw),
     "url_uri(url)\n--\n\nEverything after the host (path, query, fragment); \"/\" when empty."},
    {"url_is_ssl", CM_PY_FASTCALL_KW(py_url_is_ssl_kw),
     "url_is_ssl(url)\n--\n\nTrue for https, wss, mqtts, tls and ssl URLs."},
    {"match", CM_PY_FASTCALL_KW(py_match),
     "match(s, pattern)\n--\n\nGlob match of all of s: '?' one byte, '*' a run "
     "without '/',\n'#' any run.  The captures (one per wildcard, in order) come back\n"
     "when it matches: str for str input, bytes for bytes."},
    {"http_var", CM_PY_FASTCALL_KW(py_http_var),
     "http_var(buf, name)\n--\n\nThe decoded value of form variable name in an "
     "\"a=1&b=2\" buffer\n(query string or urlencoded body); first occurrence; None when absent."},
    {NULL, NULL, 0, NULL},
};
