/*
 * Validation of the URLs given to Manager.listen()/connect() and the
 * protocol connects, before the core sees them: a typo must not become a
 * raw TCP listener (unknown scheme), a wrapped port number, or a bare
 * "Invalid argument" (no host, no port).
 */
#include "core.h"

#include <string.h>
#include <strings.h>

/* Schemes the core and the bindings know (cm_url_port() defaults, TLS). */
static const char *const known_schemes[] = {"tcp",  "udp",  "http", "https", "ws",   "wss",
                                            "mqtt", "mqtts", "tls", "ssl",   "sntp", "ntp"};

static bool scheme_known(const char *s, size_t n) {
  for (size_t i = 0; i < sizeof(known_schemes) / sizeof(known_schemes[0]); i++)
    if (n == strlen(known_schemes[i]) && strncasecmp(s, known_schemes[i], n) == 0) return true;
  return false;
}

int cm_py_check_url(const char *url, bool need_host) {
  if (url[0] == '\0') {
    PyErr_SetString(PyExc_ValueError, "empty URL (expected e.g. 'http://127.0.0.1:8000')");
    return -1;
  }
  const char *auth = url, *sep = strstr(url, "://");
  if (sep != NULL) {
    if (!scheme_known(url, (size_t)(sep - url))) {
      /* PyErr_Format has no "%.*s" before Python 3.12. */
      PyObject *scheme = PyUnicode_FromStringAndSize(url, sep - url);
      if (scheme != NULL)
        PyErr_Format(PyExc_ValueError,
                     "unknown URL scheme '%U' in '%s' (known: tcp, udp, http, https, ws, wss, "
                     "mqtt, mqtts, tls, ssl, sntp, ntp)",
                     scheme, url);
      Py_XDECREF(scheme);
      return -1;
    }
    auth = sep + 3;
  }
  size_t alen = strcspn(auth, "/?#");
  const char *end = auth + alen;
  for (const char *p = auth; p < end; p++)
    if (*p == '@') auth = p + 1; /* user:pass@ */
  const char *host = auth, *host_end, *colon = NULL;
  if (*host == '[') {
    const char *rb = memchr(host, ']', (size_t)(end - host));
    if (rb == NULL) {
      PyErr_Format(PyExc_ValueError, "unclosed '[' in the host of '%s'", url);
      return -1;
    }
    host_end = rb + 1;
    if (host_end < end) {
      if (*host_end != ':') {
        PyErr_Format(PyExc_ValueError, "unexpected text after the host in '%s'", url);
        return -1;
      }
      colon = host_end;
    }
  } else {
    colon = memchr(host, ':', (size_t)(end - host));
    host_end = colon != NULL ? colon : end;
  }
  if (need_host && host_end == host) {
    PyErr_Format(PyExc_ValueError, "URL has no host: '%s'", url);
    return -1;
  }
  if (colon == NULL && need_host && cm_url_port(url) == 0) {
    PyErr_Format(PyExc_ValueError, "URL has no port (and its scheme no default port): '%s'", url);
    return -1;
  }
  if (colon != NULL) {
    const char *p = colon + 1;
    unsigned long port = 0;
    if (p == end) {
      PyErr_Format(PyExc_ValueError, "URL has an empty port: '%s'", url);
      return -1;
    }
    for (; p < end; p++) {
      if (*p < '0' || *p > '9') {
        PyErr_Format(PyExc_ValueError, "URL port is not a number: '%s'", url);
        return -1;
      }
      port = port * 10 + (unsigned long)(*p - '0');
      if (port > 65535) {
        PyErr_Format(PyExc_ValueError, "URL port is outside 0..65535: '%s'", url);
        return -1;
      }
    }
  }
  return 0;
}
