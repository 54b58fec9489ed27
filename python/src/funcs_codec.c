/* md5, sha1, sha256, hmac_sha256, base64_encode/decode, crc32,
 * random_bytes, random_str. */
#include <string.h>

#include "funcs.h"

/* Inputs at least this long are hashed without the GIL. */
#define RELEASE_GIL_AT 65536

typedef bool (*digest_fn)(const void *data, size_t n, uint8_t *out);

static PyObject *digest(PyObject *arg, digest_fn fn, size_t outlen) {
  cm_py_bytes b;
  uint8_t out[32];
  if (cm_py_bytes_get(arg, &b, "data") < 0) return NULL;
  bool ok;
  if (b.len >= RELEASE_GIL_AT) {
    Py_BEGIN_ALLOW_THREADS ok = fn(b.buf, (size_t)b.len, out);
    Py_END_ALLOW_THREADS
  } else {
    ok = fn(b.buf, (size_t)b.len, out);
  }
  cm_py_bytes_release(&b);
  if (!ok) return PyErr_Format(PyExc_RuntimeError, "OpenSSL digest failed");
  return PyBytes_FromStringAndSize((const char *)out, (Py_ssize_t)outlen);
}

static bool md5_fn(const void *d, size_t n, uint8_t *o) { return cm_md5(d, n, o) == 0; }
static bool sha1_fn(const void *d, size_t n, uint8_t *o) { return cm_sha1(d, n, o) == 0; }
static bool sha256_fn(const void *d, size_t n, uint8_t *o) { return cm_sha256(d, n, o) == 0; }

static PyObject *py_md5(PyObject *m, PyObject *arg) { return (void)m, digest(arg, md5_fn, 16); }
static PyObject *py_sha1(PyObject *m, PyObject *arg) { return (void)m, digest(arg, sha1_fn, 20); }
static PyObject *py_sha256(PyObject *m, PyObject *arg) { return (void)m, digest(arg, sha256_fn, 32); }

static PyObject *py_hmac_sha256(PyObject *m, PyObject *const *args, Py_ssize_t nargs, PyObject *kw) {
  (void)m;
  static const char *const names[] = {"key", "data", NULL};
  PyObject *slot[2];
  if (cm_py_bind("hmac_sha256", args, nargs, kw, names, 2, 2, slot) < 0) return NULL;
  cm_py_bytes k, d;
  if (cm_py_bytes_get(slot[0], &k, "key") < 0) return NULL;
  if (cm_py_bytes_get(slot[1], &d, "data") < 0) {
    cm_py_bytes_release(&k);
    return NULL;
  }
  uint8_t out[32];
  bool ok;
  if (d.len >= RELEASE_GIL_AT) {
    Py_BEGIN_ALLOW_THREADS ok = cm_hmac_sha256(k.buf, (size_t)k.len, d.buf, (size_t)d.len, out) == 0;
    Py_END_ALLOW_THREADS
  } else {
    ok = cm_hmac_sha256(k.buf, (size_t)k.len, d.buf, (size_t)d.len, out) == 0;
  }
  cm_py_bytes_release(&k);
  cm_py_bytes_release(&d);
  if (!ok) return PyErr_Format(PyExc_RuntimeError, "OpenSSL HMAC failed");
  return PyBytes_FromStringAndSize((const char *)out, 32);
}

static PyObject *py_base64_encode(PyObject *m, PyObject *arg) {
  (void)m;
  cm_py_bytes b;
  if (cm_py_bytes_get(arg, &b, "data") < 0) return NULL;
  PyObject *r = NULL;
  if ((size_t)b.len > ((size_t)PY_SSIZE_T_MAX - 4) / 4 * 3) {
    PyErr_NoMemory();
  } else {
    size_t need = CM_BASE64_ENCODED_LEN((size_t)b.len);
    /* build the str in place: base64 is ASCII */
    r = PyUnicode_New((Py_ssize_t)need, 127);
    if (r != NULL) {
      char *buf = PyMem_Malloc(need + 1);
      if (buf == NULL) {
        Py_CLEAR(r);
        PyErr_NoMemory();
      } else {
        cm_base64_encode(b.buf, (size_t)b.len, buf, need + 1);
        memcpy(PyUnicode_DATA(r), buf, need);
        PyMem_Free(buf);
      }
    }
  }
  cm_py_bytes_release(&b);
  return r;
}

static PyObject *py_base64_decode(PyObject *m, PyObject *arg) {
  (void)m;
  cm_py_bytes b;
  if (cm_py_bytes_get(arg, &b, "data") < 0) return NULL;
  size_t cap = (size_t)b.len / 4 * 3 + 3;
  PyObject *r = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)cap);
  if (r != NULL) {
    long n = cm_base64_decode(b.buf, (size_t)b.len, PyBytes_AS_STRING(r), cap);
    if (n < 0) {
      Py_CLEAR(r);
      PyErr_SetString(PyExc_ValueError,
                      "invalid base64: only A-Z a-z 0-9 + / with correct '=' padding allowed");
    } else {
      _PyBytes_Resize(&r, n);
    }
  }
  cm_py_bytes_release(&b);
  return r;
}

static PyObject *py_crc32(PyObject *m, PyObject *const *args, Py_ssize_t nargs, PyObject *kw) {
  (void)m;
  static const char *const names[] = {"data", "initial", NULL};
  PyObject *slot[2];
  if (cm_py_bind("crc32", args, nargs, kw, names, 2, 1, slot) < 0) return NULL;
  unsigned long initial = 0;
  if (slot[1] != NULL) {
    if (!PyLong_Check(slot[1])) return PyErr_Format(PyExc_TypeError, "initial must be int");
    initial = PyLong_AsUnsignedLongMask(slot[1]); /* like zlib.crc32: modulo 2**32 */
    if (initial == (unsigned long)-1 && PyErr_Occurred()) return NULL;
  }
  cm_py_bytes b;
  if (cm_py_bytes_get(slot[0], &b, "data") < 0) return NULL;
  uint32_t crc;
  if (b.len >= RELEASE_GIL_AT) {
    Py_BEGIN_ALLOW_THREADS crc = cm_crc32((uint32_t)initial, b.buf, (size_t)b.len);
    Py_END_ALLOW_THREADS
  } else {
    crc = cm_crc32((uint32_t)initial, b.buf, (size_t)b.len);
  }
  cm_py_bytes_release(&b);
  return PyLong_FromUnsignedLong(crc);
}

/* The length argument of random_bytes/random_str: a non-negative int. */
static Py_ssize_t length_arg(PyObject *arg) {
  Py_ssize_t n = PyNumber_AsSsize_t(arg, PyExc_OverflowError);
  if (n == -1 && PyErr_Occurred()) return -1;
  if (n < 0) PyErr_SetString(PyExc_ValueError, "length must be >= 0");
  return n;
}

static PyObject *py_random_bytes(PyObject *m, PyObject *arg) {
  (void)m;
  Py_ssize_t n = length_arg(arg);
  if (n < 0) return NULL;
  PyObject *r = PyBytes_FromStringAndSize(NULL, n);
  if (r != NULL && cm_random(PyBytes_AS_STRING(r), (size_t)n) != 0) {
    Py_CLEAR(r);
    PyErr_SetString(PyExc_RuntimeError, "OpenSSL RAND_bytes failed");
  }
  return r;
}

static PyObject *py_random_str(PyObject *m, PyObject *arg) {
  (void)m;
  Py_ssize_t n = length_arg(arg);
  if (n < 0) return NULL;
  PyObject *r = PyUnicode_New(n, 127);
  if (r != NULL && cm_random_str(PyUnicode_DATA(r), (size_t)n) != 0) {
    Py_CLEAR(r);
    PyErr_SetString(PyExc_RuntimeError, "OpenSSL RAND_bytes failed");
  }
  return r;
}

CM_PY_KW1(py_md5, "md5", "data")

CM_PY_KW1(py_sha1, "sha1", "data")

CM_PY_KW1(py_sha256, "sha256", "data")

CM_PY_KW1(py_base64_encode, "base64_encode", "data")

CM_PY_KW1(py_base64_decode, "base64_decode", "data")

CM_PY_KW1(py_random_bytes, "random_bytes", "length")

CM_PY_KW1(py_random_str, "random_str", "length")

PyMethodDef cm_py_codec_methods[] = {
    {"md5", CM_PY_FASTCALL_KW(py_md5_kw), "md5(data)\n--\n\nThe 16-byte MD5 digest of data (str as UTF-8)."},
    {"sha1", CM_PY_FASTCALL_KW(py_sha1_kw), "sha1(data)\n--\n\nThe 20-byte SHA-1 digest of data."},
    {"sha256", CM_PY_FASTCALL_KW(py_sha256_kw), "sha256(data)\n--\n\nThe 32-byte SHA-256 digest of data."},
    {"hmac_sha256", CM_PY_FASTCALL_KW(py_hmac_sha256),
     "hmac_sha256(key, data)\n--\n\nThe 32-byte HMAC-SHA256 of data under key."},
    {"base64_encode", CM_PY_FASTCALL_KW(py_base64_encode_kw),
     "base64_encode(data)\n--\n\nStandard base64 with '=' padding."},
    {"base64_decode", CM_PY_FASTCALL_KW(py_base64_decode_kw),
     "base64_decode(data)\n--\n\nDecodes standard base64 (padding optional but checked when "
     "present).\nValueError for anything else, whitespace included."},
    {"crc32", CM_PY_FASTCALL_KW(py_crc32),
     "crc32(data, initial=0)\n--\n\nCRC-32 of data continuing from initial, as zlib.crc32."},
    {"random_bytes", CM_PY_FASTCALL_KW(py_random_bytes_kw),
     "random_bytes(length)\n--\n\nlength bytes from OpenSSL's CSPRNG."},
    {"random_str", CM_PY_FASTCALL_KW(py_random_str_kw),
     "random_str(length)\n--\n\nlength characters drawn uniformly from A-Z a-z 0-9 (OpenSSL's CSPRNG)."},
    {NULL, NULL, 0, NULL},
};
