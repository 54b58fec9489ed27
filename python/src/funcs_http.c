/* HTTP helpers as module functions: http_parse_multipart. */
#include "funcs.h"

static PyObject *part_str(struct cm_str s) {
  return PyUnicode_DecodeUTF8(s.buf == NULL ? "" : s.buf, (Py_ssize_t)s.len, "replace");
}

/* http_parse_multipart(body, offset=0) -> (next_offset, {"name", "filename", "body"}),
 * or (0, None) when there are no more parts (or the body is malformed). */
static PyObject *py_http_parse_multipart(PyObject *m, PyObject *const *args, Py_ssize_t nargs,
                                         PyObject *kw) {
  (void)m;
  static const char *const names[] = {"body", "offset", NULL};
  PyObject *slot[2];
  if (cm_py_bind("http_parse_multipart", args, nargs, kw, names, 2, 1, slot) < 0) return NULL;
  Py_ssize_t offset = 0;
  if (slot[1] != NULL) {
    offset = PyLong_AsSsize_t(slot[1]);
    if (offset == -1 && PyErr_Occurred()) return NULL;
    if (offset < 0) return PyErr_Format(PyExc_ValueError, "offset must not be negative");
  }
  cm_py_bytes b;
  if (cm_py_bytes_get(slot[0], &b, "body") < 0) return NULL;
  PyObject *r = NULL;
  struct cm_http_part part;
  size_t next = offset > b.len ? 0
                               : cm_http_parse_multipart(cm_str_n(b.buf, (size_t)b.len),
                                                         (size_t)offset, &part);
  if (next == 0) {
    r = Py_BuildValue("(iO)", 0, Py_None);
  } else {
    PyObject *d = Py_BuildValue("{s:N,s:N,s:y#}", "name", part_str(part.name), "filename",
                                part_str(part.filename), "body",
                                part.body.buf == NULL ? "" : part.body.buf, (Py_ssize_t)part.body.len);
    if (d != NULL) r = Py_BuildValue("(nN)", (Py_ssize_t)next, d);
  }
  cm_py_bytes_release(&b);
  return r;
}

PyMethodDef cm_py_http_methods[] = {
    {"http_parse_multipart", CM_PY_FASTCALL_KW(py_http_parse_multipart),
     "http_parse_multipart(body, offset=0)\n--\n\n"
     "Parses the multipart/form-data part of body that starts at offset (0 for the\n"
     "first): part is {\"name\": str, \"filename\": str, \"body\": bytes}.  Pass\n"
     "next_offset to the next call; (0, None) when there are no more parts."},
    {NULL, NULL, 0, NULL},
};
