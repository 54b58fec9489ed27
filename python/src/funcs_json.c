/* json_get, json_get_num, json_get_bool, json_get_long, json_get_str. */
#include <math.h>
#include <string.h>

#include "funcs.h"

/*
 * The common part: binds (data, path[, default], *, max_depth), finds the
 * value.  Returns 1 with *value set (a view into b, which the caller
 * releases), 0 when there is no usable value (missing, malformed, too deep),
 * -1 with an exception set (bad argument, bad path).
 */
static int lookup(const char *fname, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                  bool has_default, PyObject **dflt, cm_py_bytes *b, struct cm_str *value) {
  static const char *const with_default[] = {"data", "path", "default", "max_depth", NULL};
  static const char *const without[] = {"data", "path", "max_depth", NULL};
  PyObject *slot[4];
  if (cm_py_bind(fname, args, nargs, kwnames, has_default ? with_default : without,
                 has_default ? 3 : 2, 2, slot) < 0)
    return -1;
  PyObject *depth_obj = has_default ? slot[3] : slot[2];
  if (has_default) *dflt = slot[2];
  int max_depth = CM_JSON_MAX_DEPTH;
  if (depth_obj != NULL) {
    long d = PyLong_AsLong(depth_obj);
    if (d == -1 && PyErr_Occurred()) return -1;
    if (d < 1 || d > CM_JSON_DEPTH_CAP) {
      PyErr_Format(PyExc_ValueError, "max_depth must be 1..%d", CM_JSON_DEPTH_CAP);
      return -1;
    }
    max_depth = (int)d;
  }
  const char *path;
  Py_ssize_t plen;
  if (cm_py_cstr(slot[1], &path, &plen, "path") < 0) return -1;
  if (cm_py_bytes_get(slot[0], b, "data") < 0) return -1;
  int rc = cm_json_find_depth(cm_str_n(b->buf, (size_t)b->len), path, max_depth, value);
  if (rc == 0) return 1;
  cm_py_bytes_release(b);
  if (rc == CM_JSON_BAD_PATH) {
    PyErr_Format(PyExc_ValueError, "invalid JSON path %R: use $, $.name, $[N], e.g. $.a[3].b", slot[1]);
    return -1;
  }
  return 0;
}

/* Decodes UTF-8 text; invalid text (possible only from bytes input) reads as
 * "no value" rather than an exception, like any other malformed document. */
static PyObject *decode_or_none(const char *s, size_t n) {
  PyObject *r = PyUnicode_DecodeUTF8(s, (Py_ssize_t)n, "surrogatepass");
  if (r == NULL && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
    PyErr_Clear();
    Py_RETURN_NONE;
  }
  return r;
}

static PyObject *ret_default(PyObject *dflt, PyObject *fallback) {
  PyObject *r = dflt != NULL ? dflt : fallback;
  return Py_NewRef(r);
}

static PyObject *py_json_get(PyObject *m, PyObject *const *args, Py_ssize_t nargs, PyObject *kw) {
  (void)m;
  cm_py_bytes b;
  struct cm_str v;
  int rc = lookup("json_get", args, nargs, kw, false, NULL, &b, &v);
  if (rc <= 0) return rc < 0 ? NULL : Py_NewRef(Py_None);
  PyObject *r = decode_or_none(v.buf, v.len);
  cm_py_bytes_release(&b);
  return r;
}

static bool is_number(struct cm_str v) { return v.buf[0] == '-' || (v.buf[0] >= '0' && v.buf[0] <= '9'); }

/* A number token without fraction or exponent. */
static bool is_integer(struct cm_str v) {
  for (size_t i = 0; i < v.len; i++)
    if (v.buf[i] == '.' || v.buf[i] == 'e' || v.buf[i] == 'E') return false;
  return true;
}

static PyObject *py_json_get_num(PyObject *m, PyObject *const *args, Py_ssize_t nargs, PyObject *kw) {
  (void)m;
  cm_py_bytes b;
  struct cm_str v;
  PyObject *dflt = NULL;
  int rc = lookup("json_get_num", args, nargs, kw, true, &dflt, &b, &v);
  if (rc < 0) return NULL;
  if (rc == 0) return ret_default(dflt, Py_None);
  double d;
  bool ok = is_number(v) && cm_json_get_num(v, "$", &d) == 0;
  cm_py_bytes_release(&b);
  return ok ? PyFloat_FromDouble(d) : ret_default(dflt, Py_None);
}

static PyObject *py_json_get_bool(PyObject *m, PyObject *const *args, Py_ssize_t nargs, PyObject *kw) {
  (void)m;
  cm_py_bytes b;
  struct cm_str v;
  PyObject *dflt = NULL;
  int rc = lookup("json_get_bool", args, nargs, kw, true, &dflt, &b, &v);
  if (rc < 0) return NULL;
  if (rc == 0) return ret_default(dflt, Py_None);
  char c = v.buf[0];
  cm_py_bytes_release(&b);
  if (c == 't') Py_RETURN_TRUE;
  if (c == 'f') Py_RETURN_FALSE;
  return ret_default(dflt, Py_None);
}

static PyObject *py_json_get_long(PyObject *m, PyObject *const *args, Py_ssize_t nargs, PyObject *kw) {
  (void)m;
  cm_py_bytes b;
  struct cm_str v;
  PyObject *dflt = NULL;
  int rc = lookup("json_get_long", args, nargs, kw, true, &dflt, &b, &v);
  if (rc < 0) return NULL;
  if (rc == 0) return dflt != NULL ? Py_NewRef(dflt) : PyLong_FromLong(0);
  PyObject *r = NULL;
  if (is_number(v)) {
    if (is_integer(v)) {
      /* an integer: exact, however many digits (int() has its own limit) */
      PyObject *text = PyUnicode_FromStringAndSize(v.buf, (Py_ssize_t)v.len);
      if (text != NULL) r = PyLong_FromUnicodeObject(text, 10);
      Py_XDECREF(text);
      if (r == NULL && PyErr_ExceptionMatches(PyExc_ValueError)) PyErr_Clear(); /* digit limit */
    } else {
      double d;
      if (cm_json_get_num(v, "$", &d) == 0 && isfinite(d)) r = PyLong_FromDouble(d); /* truncates */
    }
  }
  cm_py_bytes_release(&b);
  if (r == NULL && !PyErr_Occurred()) r = dflt != NULL ? Py_NewRef(dflt) : PyLong_FromLong(0);
  return r;
}

static PyObject *py_json_get_str(PyObject *m, PyObject *const *args, Py_ssize_t nargs, PyObject *kw) {
  (void)m;
  cm_py_bytes b;
  struct cm_str v;
  int rc = lookup("json_get_str", args, nargs, kw, false, NULL, &b, &v);
  if (rc <= 0) return rc < 0 ? NULL : Py_NewRef(Py_None);
  PyObject *r = NULL;
  if (v.buf[0] == '"') {
    char small[256], *buf = v.len <= sizeof(small) ? small : PyMem_Malloc(v.len);
    if (buf == NULL) {
      PyErr_NoMemory();
    } else {
      long n = cm_json_unescape(v, buf, v.len);
      r = n < 0 ? Py_NewRef(Py_None) : decode_or_none(buf, (size_t)n);
      if (buf != small) PyMem_Free(buf);
    }
  } else {
    r = Py_NewRef(Py_None);
  }
  cm_py_bytes_release(&b);
  return r;
}

#define JSON_DOC_ARGS "data: str or bytes, path: \"$\", \"$.a.b\", \"$.a[3].b\" or \"$[0]\""
PyMethodDef cm_py_json_methods[] = {
    {"json_get", CM_PY_FASTCALL_KW(py_json_get),
     "json_get(data, path, *, max_depth=128)\n--\n\n"
     "The raw JSON text of the value at path (a string keeps its quotes), or None\n"
     "when the document is malformed or nothing is there.  " JSON_DOC_ARGS ".\n"
     "ValueError for a malformed path."},
    {"json_get_num", CM_PY_FASTCALL_KW(py_json_get_num),
     "json_get_num(data, path, default=None, *, max_depth=128)\n--\n\n"
     "The number at path as a float, else default."},
    {"json_get_bool", CM_PY_FASTCALL_KW(py_json_get_bool),
     "json_get_bool(data, path, default=None, *, max_depth=128)\n--\n\n"
     "true/false at path, else default."},
    {"json_get_long", CM_PY_FASTCALL_KW(py_json_get_long),
     "json_get_long(data, path, default=0, *, max_depth=128)\n--\n\n"
     "The number at path as an int (exact for integers of any size, truncated\n"
     "toward zero for fractions), else default."},
    {"json_get_str", CM_PY_FASTCALL_KW(py_json_get_str),
     "json_get_str(data, path, *, max_depth=128)\n--\n\n"
     "The string at path with every escape decoded (\\uXXXX, surrogate pairs), or\n"
     "None when the value is missing, not a string, or the document is malformed."},
    {NULL, NULL, 0, NULL},
};
