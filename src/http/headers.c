/* Header lookups: by name, list tokens, parameters; status texts. */
#include <string.h>

#include "cymongoose.h"
#include "http/chars.h"

static bool equal_nocase(const char *a, const char *b, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (cm__http_lower((unsigned char) a[i]) != cm__http_lower((unsigned char) b[i])) return false;
  }
  return true;
}

struct cm_str *cm_http_get_header(struct cm_http_msg *hm, const char *name) {
  size_t n = strlen(name);
  for (size_t h = 0; h < hm->num_headers && h < CM_HTTP_MAX_HEADERS; h++) {
    struct cm_str *k = &hm->headers[h].name;
    if (k->len == n && equal_nocase(k->buf, name, n)) return &hm->headers[h].value;
  }
  return NULL;
}

bool cm_http_has_token(struct cm_str value, const char *token) {
  size_t n = strlen(token);
  if (value.buf == NULL) return false;
  const char *p = value.buf, *end = value.buf + value.len;
  while (p < end) {
    const char *comma = memchr(p, ',', (size_t) (end - p));
    const char *stop = comma != NULL ? comma : end;
    while (p < stop && cm__http_is_ows((unsigned char) *p)) p++;
    const char *e = stop;
    while (e > p && cm__http_is_ows((unsigned char) e[-1])) e--;
    if ((size_t) (e - p) == n && equal_nocase(p, token, n)) return true;
    p = stop + (comma != NULL ? 1 : 0);
  }
  return false;
}

bool cm_http_header_has_token(const struct cm_http_msg *hm, const char *name, const char *token) {
  size_t n = strlen(name);
  for (size_t h = 0; h < hm->num_headers && h < CM_HTTP_MAX_HEADERS; h++) {
    const struct cm_str *k = &hm->headers[h].name;
    if (k->len == n && equal_nocase(k->buf, name, n) && cm_http_has_token(hm->headers[h].value, token)) {
      return true;
    }
  }
  return false;
}

/*
 * Parameters follow `;` (RFC 9110 section 5.6.6): name "=" (token /
 * quoted-string).  We also accept them separated by `,` and at the very start
 * (as in `Digest realm="x", nonce="y"`), so the scan looks for
 * <start|;|,> OWS name OWS "=" at every candidate position.
 */
struct cm_str cm_http_get_header_var(struct cm_str v, struct cm_str var) {
  struct cm_str none = {NULL, 0};
  if (v.buf == NULL || var.len == 0) return none;
  size_t i = 0;
  while (i < v.len) {
    /* at the start of a candidate: skip OWS */
    while (i < v.len && cm__http_is_ows((unsigned char) v.buf[i])) i++;
    size_t name = i;
    while (i < v.len && cm__http_is_tchar((unsigned char) v.buf[i])) i++;
    size_t name_end = i;
    while (i < v.len && cm__http_is_ows((unsigned char) v.buf[i])) i++;
    if (i >= v.len || v.buf[i] != '=') {
      /* a bare word ("form-data", "Basic"): the next candidate follows it */
      if (i == name) i++;
      continue;
    }
    i++;
    while (i < v.len && cm__http_is_ows((unsigned char) v.buf[i])) i++;
    /* the value: quoted-string or a run up to ; or , */
    size_t val = i, val_end;
    if (i < v.len && v.buf[i] == '"') {
      val = ++i;
      while (i < v.len && v.buf[i] != '"') i += (v.buf[i] == '\\' && i + 1 < v.len) ? 2 : 1;
      val_end = i < v.len ? i : v.len;
      if (i < v.len) i++; /* closing quote */
    } else {
      while (i < v.len && v.buf[i] != ';' && v.buf[i] != ',') i++;
      val_end = i;
      while (val_end > val && cm__http_is_ows((unsigned char) v.buf[val_end - 1])) val_end--;
    }
    if (name_end - name == var.len && equal_nocase(v.buf + name, var.buf, var.len)) {
      return cm_str_n(v.buf + val, val_end - val);
    }
    /* skip junk after a quoted value, then the separator */
    while (i < v.len && v.buf[i] != ';' && v.buf[i] != ',') i++;
    if (i < v.len) i++;
  }
  return none;
}

int cm_http_err_status(int err) {
  switch (err) {
    case CM_HTTP_ERR_HDRS_TOO_LARGE: return 431;
    case CM_HTTP_ERR_BODY_TOO_LARGE: return 413;
    case CM_HTTP_ERR_URI_TOO_LONG: return 414;
    case CM_HTTP_ERR_VERSION: return 505;
    case CM_HTTP_ERR_NOT_IMPLEMENTED: return 501;
    default: return 400;
  }
}

const char *cm_http_status_text(int status) {
  switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 102: return "Processing";
    case 103: return "Early Hints";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 207: return "Multi-Status";
    case 208: return "Already Reported";
    case 226: return "IM Used";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 305: return "Use Proxy";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 418: return "I'm a teapot";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 423: return "Locked";
    case 424: return "Failed Dependency";
    case 425: return "Too Early";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 451: return "Unavailable For Legal Reasons";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    case 506: return "Variant Also Negotiates";
    case 507: return "Insufficient Storage";
    case 508: return "Loop Detected";
    case 510: return "Not Extended";
    case 511: return "Network Authentication Required";
    default: return "";
  }
}
