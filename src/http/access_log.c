/*
 * The access log of the HTTP server and the debug line of each request.
 *
 * The request line, Referer and User-Agent are copied when the request is
 * delivered, because a reply may be written later (from a timer, a worker
 * thread) when the request's bytes are long gone.  Copies are bounded and
 * escaped, so a hostile request cannot forge log lines or grow memory.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cymongoose.h"
#include "http/internal.h"

#define FIELD_MAX 512 /* bytes kept of the request line, Referer, User-Agent */

struct cm__http_access {
  char request[FIELD_MAX];
  char referer[FIELD_MAX];
  char agent[FIELD_MAX];
  time_t when;
  int status;      /* 0: no reply yet */
  uint64_t bytes;
};

/* Copies s into out (size FIELD_MAX), escaping '"', '\' and bytes outside
 * printable ASCII as \xHH, as web servers do; cuts at the bound. */
static void escape(char *out, struct cm_str s) {
  size_t o = 0;
  for (size_t i = 0; i < s.len && o + 5 < FIELD_MAX; i++) {
    unsigned char ch = (unsigned char) s.buf[i];
    if (ch < 0x20 || ch >= 0x7f || ch == '"' || ch == '\\') {
      o += (size_t) snprintf(out + o, FIELD_MAX - o, "\\x%02X", ch);
    } else {
      out[o++] = (char) ch;
    }
  }
  out[o] = '\0';
}

static void header_or_dash(char *out, const struct cm_http_msg *hm, const char *name) {
  struct cm_str *v = cm_http_get_header((struct cm_http_msg *) hm, name);
  if (v == NULL || v->len == 0) {
    strcpy(out, "-");
  } else {
    escape(out, *v);
  }
}

void cm__http_access_begin(struct cm_conn *c, struct cm__http_conn *st, const struct cm_http_msg *hm) {
  if (cm_log_get() >= CM_LL_DEBUG) {
    char body[48] = "";
    if (hm->framing == CM_HTTP_BODY_LENGTH) {
      snprintf(body, sizeof(body), ", body %llu bytes", (unsigned long long) hm->content_length);
    } else if (hm->framing == CM_HTTP_BODY_CHUNKED) {
      snprintf(body, sizeof(body), ", chunked body");
    }
    CM_DEBUG("conn %lu: %.*s %.*s %.*s%s", c->id, (int) hm->method.len, hm->method.buf,
             (int) (hm->uri.len + (hm->query.len ? hm->query.len + 1 : 0)), hm->uri.buf,
             (int) hm->proto.len, hm->proto.buf, body);
  }
  if (st->opts.access_log == NULL) return;
  if (st->access == NULL && (st->access = calloc(1, sizeof(*st->access))) == NULL) return;
  struct cm__http_access *a = st->access;
  /* The request line as sent: from the method to the end of the protocol. */
  const char *end = hm->proto.buf + hm->proto.len;
  escape(a->request, cm_str_n(hm->method.buf, (size_t) (end - hm->method.buf)));
  header_or_dash(a->referer, hm, "Referer");
  header_or_dash(a->agent, hm, "User-Agent");
  a->when = time(NULL);
  a->status = 0;
  a->bytes = 0;
}

void cm__http_access_reply(struct cm__http_conn *st, int status, uint64_t body_bytes) {
  if (st == NULL || st->access == NULL || status < 200) return;
  if (st->access->status == 0) st->access->status = status;
  st->access->bytes += body_bytes;
}

void cm__http_access_end(struct cm_conn *c, struct cm__http_conn *st) {
  struct cm__http_access *a = st->access;
  if (a == NULL || a->status == 0 || st->opts.access_log == NULL) return;
  char ip[64], when[64], bytes[24], line[FIELD_MAX * 3 + 256];
  struct tm tm;
  localtime_r(&a->when, &tm);
  strftime(when, sizeof(when), "%d/%b/%Y:%H:%M:%S %z", &tm);
  if (a->bytes == 0) strcpy(bytes, "-");
  else snprintf(bytes, sizeof(bytes), "%llu", (unsigned long long) a->bytes);
  int n = snprintf(line, sizeof(line), "%s - - [%s] \"%s\" %d %s", cm_addr_ip_str(&c->rem, ip, sizeof(ip)),
                   when, a->request, a->status, bytes);
  if (n > 0 && (size_t) n < sizeof(line) && st->opts.access_log_format == CM_HTTP_LOG_COMBINED) {
    n += snprintf(line + n, sizeof(line) - (size_t) n, " \"%s\" \"%s\"", a->referer, a->agent);
  }
  if (n > 0 && (size_t) n >= sizeof(line)) n = (int) sizeof(line) - 1;
  a->status = 0; /* one line per reply */
  if (n > 0) st->opts.access_log(line, (size_t) n, st->opts.access_log_arg);
}

void cm__http_access_free(struct cm__http_conn *st) {
  free(st->access);
  st->access = NULL;
}

void cm_http_access_log_fd(const char *line, size_t len, void *arg) {
  int fd = (int) (intptr_t) arg;
  char buf[FIELD_MAX * 3 + 257];
  if (len >= sizeof(buf)) len = sizeof(buf) - 1;
  memcpy(buf, line, len);
  buf[len] = '\n';
  size_t off = 0;
  while (off < len + 1) {
    ssize_t w = write(fd, buf + off, len + 1 - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return; /* a full disk must not stop the server */
    off += (size_t) w;
  }
}
