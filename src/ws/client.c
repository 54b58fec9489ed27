/*
 * Client side of the opening handshake (RFC 6455 4.1): the GET request
 * with a random key, sent once connected, and the checks of the 101
 * response before frames flow.
 */
#include <errno.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http/internal.h"
#include "ws/internal.h"

static bool append(struct cm_buf *b, const char *s) { return cm_buf_append(b, s, strlen(s)) == 0; }

/* True when the header block h has a line called name. */
static bool block_has(const char *h, const char *name) {
  size_t n = strlen(name);
  for (const char *p = h; p != NULL && *p != '\0';) {
    if (strncasecmp(p, name, n) == 0 && p[n] == ':') return true;
    p = strchr(p, '\n');
    if (p != NULL) p++;
  }
  return false;
}

/* Builds the handshake request for url into st->request. */
static int build_request(struct cm__ws *st, const char *url, const char *extra,
                         const struct cm__http_block *bi) {
  uint8_t raw[16];
  char key[25];
  if (RAND_bytes(raw, sizeof(raw)) != 1) return EIO;
  key[cm__ws_b64_encode(raw, sizeof(raw), key)] = '\0';
  cm_ws_accept_key(key, 24, st->accept);

  struct cm_str uri = cm_url_uri(url), host = cm_url_host(url);
  size_t ulen = strcspn(uri.buf, "#"); /* the fragment is not sent */
  if (ulen == 0 || host.len == 0 || host.len > 255) return EINVAL;
  for (size_t i = 0; i < ulen; i++) {
    unsigned char ch = (unsigned char)uri.buf[i];
    if (ch <= ' ' || ch == 0x7f) return EINVAL;
  }
  unsigned port = cm_url_port(url);
  bool v6 = memchr(host.buf, ':', host.len) != NULL;
  char line[400];
  snprintf(line, sizeof(line), "%s%.*s%s", v6 ? "[" : "", (int)host.len, host.buf, v6 ? "]" : "");
  if (port != (cm_url_is_ssl(url) ? 443u : 80u)) {
    size_t n = strlen(line);
    snprintf(line + n, sizeof(line) - n, ":%u", port);
  }

  struct cm_buf *b = &st->request;
  bool ok = append(b, "GET ") && cm_buf_append(b, uri.buf, ulen) == 0 && append(b, " HTTP/1.1\r\n");
  if (ok && !bi->has_host) ok = append(b, "Host: ") && append(b, line) && append(b, "\r\n");
  snprintf(line, sizeof(line),
           "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
           "Sec-WebSocket-Version: 13\r\n", key);
  ok = ok && append(b, line);
  if (ok && st->opts.compress) {
    char offer[CM_WS_DEFLATE_FORMAT_MAX];
    if (cm_ws_deflate_format_offer(&st->opts.deflate, offer, sizeof(offer)) < 0) return EINVAL;
    ok = append(b, "Sec-WebSocket-Extensions: ") && append(b, offer) && append(b, "\r\n");
  }
  if (ok && extra != NULL) ok = append(b, extra);
  if (ok && bi->needs_crlf) ok = append(b, "\r\n");
  ok = ok && append(b, "\r\n");
  st->offered_protocol = block_has(extra, "Sec-WebSocket-Protocol");
  return ok ? 0 : ENOMEM;
}

struct cm_conn *cm_ws_connect(struct cm_mgr *mgr, const char *url, cm_event_fn fn, void *fn_data,
                              const char *extra_headers) {
  return cm_ws_connect_opts(mgr, url, fn, fn_data, extra_headers, NULL);
}

struct cm_conn *cm_ws_connect_opts(struct cm_mgr *mgr, const char *url, cm_event_fn fn,
                                   void *fn_data, const char *extra_headers,
                                   const struct cm_ws_opts *opts) {
  struct cm__http_block bi;
  if (url == NULL || !cm__http_scan_block(extra_headers, &bi) || bi.has_length || bi.chunked) {
    errno = EINVAL;
    return NULL;
  }
  struct cm_ws_opts o = cm__ws_resolve_opts(opts);
  struct cm__ws *st = cm__ws_new(&o);
  if (st == NULL) {
    errno = ENOMEM;
    return NULL;
  }
  int err = build_request(st, url, extra_headers, &bi);
  if (err != 0) {
    cm__ws_free(st);
    errno = err;
    return NULL;
  }
  struct cm_conn *c = cm_connect(mgr, url, fn, fn_data);
  if (c == NULL) {
    cm__ws_free(st);
    return NULL;
  }
  st->handshaking = true;
  cm__ws_set_deadline(st, cm_millis() + o.handshake_timeout_ms);
  cm__ws_install(c, st);
  return c;
}

void cm__ws_client_connected(struct cm_conn *c, struct cm__ws *st) {
  if (cm_send(c, cm_buf_data(&st->request), st->request.len) != 0) {
    cm_error(c, "WebSocket handshake: cannot queue the request");
    return;
  }
  cm_buf_free(&st->request);
}

/* Checks the response; NULL when acceptable, else why not. */
static const char *check_response(struct cm__ws *st, struct cm_http_msg *hm,
                                  struct cm_ws_deflate_params *agreed, bool *deflate) {
  if (!cm_http_header_has_token(hm, "Upgrade", "websocket")) return "no \"Upgrade: websocket\"";
  if (!cm_http_header_has_token(hm, "Connection", "upgrade")) return "no \"Connection: upgrade\"";
  struct cm_str *acc = cm_http_get_header(hm, "Sec-WebSocket-Accept");
  if (acc == NULL || acc->len != 28 || memcmp(acc->buf, st->accept, 28) != 0)
    return "wrong Sec-WebSocket-Accept";
  if (cm_http_get_header(hm, "Sec-WebSocket-Protocol") != NULL && !st->offered_protocol)
    return "a subprotocol we did not ask for";
  *deflate = false;
  for (size_t i = 0; i < hm->num_headers; i++) {
    const struct cm_str *name = &hm->headers[i].name;
    if (name->len != 24 || strncasecmp(name->buf, "Sec-WebSocket-Extensions", 24) != 0) continue;
    if (!st->opts.compress || *deflate) return "an extension we did not offer";
    int r = cm_ws_deflate_check_response(hm->headers[i].value.buf, hm->headers[i].value.len,
                                         &st->opts.deflate, agreed);
    if (r < 0) return "an invalid Sec-WebSocket-Extensions";
    *deflate = r == 1;
  }
  return NULL;
}

void cm__ws_client_read(struct cm_conn *c, struct cm__ws *st) {
  struct cm_http_msg hm;
  int r = cm_http_parse_response((const char *)cm_buf_data(&c->recv), c->recv.len, &hm, NULL);
  if (r == 0) return;
  if (r < 0) {
    cm_error(c, "WebSocket handshake: invalid HTTP response: %s", hm.error ? hm.error : "?");
    return;
  }
  if (hm.status != 101) {
    cm_error(c, "WebSocket handshake: the server answered %d %.*s", hm.status, (int)hm.reason.len,
             hm.reason.buf ? hm.reason.buf : "");
    return;
  }
  struct cm_ws_deflate_params agreed = {0};
  bool deflate = false;
  const char *why = check_response(st, &hm, &agreed, &deflate);
  if (why != NULL) {
    cm_error(c, "WebSocket handshake: the server sent %s", why);
    return;
  }
  if (deflate) {
    st->deflate = cm_ws_deflate_new(&agreed, false, st->opts.compress_level);
    if (st->deflate == NULL) {
      cm_error(c, "out of memory");
      return;
    }
    st->lim.allowed_rsv = CM_WS_RSV1;
  }
  cm__ws_opened(c, st);
  CM_DEBUG("conn %lu: WebSocket open%s", c->id, deflate ? " (permessage-deflate)" : "");
  cm__ws_raise(c, st, CM_EV_WS_OPEN, &hm);
  cm_recv_consume(c, (size_t)r);
  if (!c->is_closing) cm__ws_process(c, st);
}
