/*
 * Module-level functions of cymongoose._mongoose (funcs*.c): shared
 * argument helpers and the method tables each file contributes.
 */
#ifndef CM_PY_FUNCS_H
#define CM_PY_FUNCS_H

#include "args.h"
#include "module.h"

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

#endif
