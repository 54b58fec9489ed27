/*
 * Module-level functions of cymongoose._mongoose (funcs*.c): shared
 * argument helpers and the method tables each file contributes.
 */
#ifndef CM_PY_FUNCS_H
#define CM_PY_FUNCS_H

#include "module.h"

/*
 * Binds METH_FASTCALL|METH_KEYWORDS arguments to the named slots out[0..]
 * (NULL-terminated names).  The first npos names may be given by position,
 * the rest only by keyword; the first nreq are required.  Slots not given
 * stay NULL.  Returns 0, or -1 with TypeError set.  References are borrowed.
 */
int cm_py_bind(const char *fname, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
               const char *const *names, int npos, int nreq, PyObject **out);

/* Bytes of a str (UTF-8) or of any buffer (bytes, bytearray, memoryview). */
typedef struct {
  const char *buf;
  Py_ssize_t len;
  Py_buffer view; /* held when has_view */
  int has_view;
} cm_py_bytes;

/* Fills b from o; what names the argument in the TypeError.  0 or -1. */
int cm_py_bytes_get(PyObject *o, cm_py_bytes *b, const char *what);
void cm_py_bytes_release(cm_py_bytes *b);

/* A NUL-terminated C string from a str (UTF-8) or bytes, without embedded
 * NULs (ValueError).  Valid while o lives.  0 or -1. */
int cm_py_cstr(PyObject *o, const char **s, Py_ssize_t *len, const char *what);

/* Method tables, each ending with a {NULL} sentinel. */
extern PyMethodDef cm_py_json_methods[];  /* funcs_json.c */
extern PyMethodDef cm_py_url_methods[];   /* funcs_url.c */
extern PyMethodDef cm_py_codec_methods[]; /* funcs_codec.c */
extern PyMethodDef cm_py_http_methods[];  /* funcs_http.c */
extern PyMethodDef cm_py_log_methods[];   /* funcs_log.c */

#define CM_PY_FASTCALL_KW(fn) (PyCFunction)(void (*)(void))(fn), METH_FASTCALL | METH_KEYWORDS

#endif
