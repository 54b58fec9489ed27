/*
 * Server side of the opening handshake (RFC 6455 4.2): checks the upgrade
 * request an HTTP handler hands over, answers 101 and turns the HTTP
 * connection into a WebSocket connection.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http/internal.h"
#include "ws/internal.h"

static bool str_is(const struct cm_str *s, const char *lit) {
  return s != NULL && s->len == strlen(lit) && memcmp(s->buf, lit, s->len) == 0;
}

/* Answers a handshake we refuse; the connection stays HTTP. */
static int refuse(struct cm_conn *c, int status, const char *headers, const char *why) {
  CM_DEBUG("conn %lu: WebSocket upgrade refused: %s", c->id, why);
  char body[160];
  int n = snprintf(body, sizeof(body), "WebSocket upgrade refused: %s\n", why);
  cm_http_reply(c, status, headers, body, (size_t)n);
  return CM_EPARSE;
}

/* The first acceptable permessage-deflate offer among the request's
 * Sec-WebSocket-Extensions lines: 1 (agreed filled in), 0, or -1 when a
 * line is malformed. */
static int negotiate_deflate(const struct cm_http_msg *hm, const struct cm_ws_opts *o,
                             struct cm_ws_deflate_params *agreed) {
  for (size_t i = 0; i < hm->num_headers; i++) {
    const struct cm_str *name = &hm->headers[i].name;
    if (name->len != 24 || strncasecmp(name->buf, "Sec-WebSocket-Extensions", 24) != 0) continue;
    int r = cm_ws_deflate_accept(hm->headers[i].value.buf, hm->headers[i].value.len, &o->deflate,
                                 agreed);
    if (r != 0) return r;
  }
  return 0;
}

int cm_ws_upgrade(struct cm_conn *c, struct cm_http_msg *hm, const char *extra_headers) {
  return cm_ws_upgrade_opts(c, hm, extra_headers, NULL);
}

int cm_ws_upgrade_opts(struct cm_conn *c, struct cm_http_msg *hm, const char *extra_headers,
                       const struct cm_ws_opts *opts) {
  struct cm__http_block bi;
  if (c == NULL || hm == NULL) return CM_EINVAL;
  if (c->is_closing || c->is_draining) return CM_ECLOSED;
  if (c->is_listening || c->is_udp || c->is_client || cm__ws_of(c) != NULL) return CM_EINVAL;
  if (!cm__http_scan_block(extra_headers, &bi)) return CM_EINVAL;

  if (!str_is(&hm->method, "GET")) return refuse(c, 400, NULL, "the method must be GET");
  if (hm->minor_version < 1) return refuse(c, 400, NULL, "HTTP/1.1 is required");
  if (!cm_http_header_has_token(hm, "Upgrade", "websocket"))
    return refuse(c, 400, NULL, "no \"Upgrade: websocket\"");
  if (!cm_http_header_has_token(hm, "Connection", "upgrade"))
    return refuse(c, 400, NULL, "no \"Connection: upgrade\"");
  if (!str_is(cm_http_get_header(hm, "Sec-WebSocket-Version"), "13"))
    return refuse(c, 426, "Sec-WebSocket-Version: 13\r\n", "only version 13 is supported");
  struct cm_str *key = cm_http_get_header(hm, "Sec-WebSocket-Key");
  if (key == NULL || !cm_ws_key_valid(key->buf, key->len))
    return refuse(c, 400, NULL, "invalid Sec-WebSocket-Key");
  char accept[29];
  if (cm_ws_accept_key(key->buf, key->len, accept) != 0)
    return refuse(c, 400, NULL, "invalid Sec-WebSocket-Key");

  struct cm_ws_opts o = cm__ws_resolve_opts(opts);
  struct cm_ws_deflate_params agreed = {0};
  int deflate = o.compress ? negotiate_deflate(hm, &o, &agreed) : 0;
  if (deflate < 0) return refuse(c, 400, NULL, "malformed Sec-WebSocket-Extensions");

  struct cm__ws *st = cm__ws_new(&o);
  if (st == NULL) return CM_ENOMEM;
  char ext[CM_WS_DEFLATE_FORMAT_MAX] = "";
  if (deflate == 1) {
    st->deflate = cm_ws_deflate_new(&agreed, true, o.compress_level);
    if (st->deflate == NULL || cm_ws_deflate_format(&agreed, ext, sizeof(ext)) < 0) {
      cm__ws_free(st);
      return CM_ENOMEM;
    }
    st->lim.allowed_rsv = CM_WS_RSV1;
  }

  struct cm_buf b = {0};
  char line[64 + CM_WS_DEFLATE_FORMAT_MAX];
  snprintf(line, sizeof(line),
           "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Accept: %s\r\n", accept);
  bool ok = cm_buf_append(&b, line, strlen(line)) == 0;
  if (ok && ext[0] != '\0') {
    snprintf(line, sizeof(line), "Sec-WebSocket-Extensions: %s\r\n", ext);
    ok = cm_buf_append(&b, line, strlen(line)) == 0;
  }
  if (ok && extra_headers != NULL) ok = cm_buf_append(&b, extra_headers, strlen(extra_headers)) == 0;
  if (ok && bi.needs_crlf) ok = cm_buf_append(&b, "\r\n", 2) == 0;
  ok = ok && cm_buf_append(&b, "\r\n", 2) == 0;
  int rc = ok ? cm_send(c, cm_buf_data(&b), b.len) : CM_ENOMEM;
  cm_buf_free(&b);
  if (rc != 0) {
    cm__ws_free(st);
    return rc;
  }
  /* The HTTP server sees c->pfn change and stops parsing (server.c). */
  cm_http_detach(c);
  cm__ws_install(c, st);
  cm__ws_opened(c, st);
  CM_DEBUG("conn %lu: WebSocket open%s", c->id, deflate == 1 ? " (permessage-deflate)" : "");
  cm_call(c, CM_EV_WS_OPEN, hm);
  return 0;
}
