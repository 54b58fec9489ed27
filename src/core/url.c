/* URL splitting: views into the caller's string, no allocation. */
#include <arpa/inet.h>
#include <string.h>
#include <strings.h>

#include "cymongoose.h"

/* The span of the URL after "scheme://" (or the whole URL without one). */
static const char *after_scheme(const char *url) {
  const char *p = strstr(url, "://");
  return p == NULL ? url : p + 3;
}

/* End of the authority: the first '/', '?' or '#' after the scheme. */
static const char *authority_end(const char *a) {
  return a + strcspn(a, "/?#");
}

/* The "host[:port]" part, after any userinfo.  The '@' search stops at the
 * end of the authority so that an '@' in the path is not mistaken for it. */
static struct cm_str hostport(const char *url) {
  const char *a = after_scheme(url), *end = authority_end(a);
  const char *at = memchr(a, '@', (size_t)(end - a));
  if (at != NULL) {
    /* the last '@' wins: "user@x@host" has userinfo "user@x" */
    for (const char *p = at; p < end; p++)
      if (*p == '@') at = p;
    a = at + 1;
  }
  return cm_str_n(a, (size_t)(end - a));
}

/* Userinfo ("user:pass") or empty. */
static struct cm_str userinfo(const char *url) {
  const char *a = after_scheme(url), *end = authority_end(a), *at = NULL;
  for (const char *p = a; p < end; p++)
    if (*p == '@') at = p;
  return at == NULL ? cm_str_n(a, 0) : cm_str_n(a, (size_t)(at - a));
}

struct cm_str cm_url_scheme(const char *url) {
  const char *p = strstr(url, "://");
  return cm_str_n(url, p == NULL ? 0 : (size_t)(p - url));
}

struct cm_str cm_url_host(const char *url) {
  struct cm_str hp = hostport(url);
  if (hp.len > 0 && hp.buf[0] == '[') {
    const char *close = memchr(hp.buf, ']', hp.len);
    size_t n = close == NULL ? hp.len - 1 : (size_t)(close - hp.buf) - 1;
    return cm_str_n(hp.buf + 1, n);
  }
  const char *colon = memchr(hp.buf, ':', hp.len);
  return cm_str_n(hp.buf, colon == NULL ? hp.len : (size_t)(colon - hp.buf));
}

struct cm_str cm_url_user(const char *url) {
  struct cm_str ui = userinfo(url);
  const char *colon = memchr(ui.buf, ':', ui.len);
  return cm_str_n(ui.buf, colon == NULL ? ui.len : (size_t)(colon - ui.buf));
}

struct cm_str cm_url_pass(const char *url) {
  struct cm_str ui = userinfo(url);
  const char *colon = memchr(ui.buf, ':', ui.len);
  if (colon == NULL) return cm_str_n(ui.buf + ui.len, 0);
  return cm_str_n(colon + 1, (size_t)(ui.buf + ui.len - colon - 1));
}

struct cm_str cm_url_uri(const char *url) {
  const char *a = after_scheme(url), *end = authority_end(a);
  if (*end == '\0') return cm_str_c("/");
  return cm_str_c(end);
}

static bool scheme_is(struct cm_str s, const char *name) {
  return s.len == strlen(name) && strncasecmp(s.buf, name, s.len) == 0;
}

uint16_t cm_url_port(const char *url) {
  struct cm_str hp = hostport(url);
  const char *p = hp.buf, *end = hp.buf + hp.len;
  if (p < end && *p == '[') {
    p = memchr(p, ']', hp.len);
    if (p == NULL) return 0;
    p++;
  } else {
    p = memchr(p, ':', hp.len);
    if (p == NULL) p = end;
  }
  if (p < end && *p == ':' && p + 1 < end) { /* "host:" means the default port */
    unsigned long port = 0;
    size_t digits = 0;
    for (p++; p < end && *p >= '0' && *p <= '9' && digits < 6; p++, digits++)
      port = port * 10 + (unsigned long)(*p - '0');
    if (digits > 0 && p == end && port <= 65535) return (uint16_t)port;
    return 0;
  }
  static const struct {
    const char *scheme;
    uint16_t port;
  } defaults[] = {{"http", 80},    {"ws", 80},     {"https", 443},
                  {"wss", 443},    {"mqtt", 1883}, {"mqtts", 8883},
                  {"sntp", 123},   {"ntp", 123},   {"udp", 0}};
  struct cm_str scheme = cm_url_scheme(url);
  for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++)
    if (scheme_is(scheme, defaults[i].scheme)) return defaults[i].port;
  return 0;
}

bool cm_url_is_ssl(const char *url) {
  struct cm_str s = cm_url_scheme(url);
  return scheme_is(s, "https") || scheme_is(s, "wss") || scheme_is(s, "mqtts") ||
         scheme_is(s, "tls") || scheme_is(s, "ssl");
}

bool cm_aton(struct cm_str host, struct cm_addr *a) {
  char tmp[64];
  if (host.len == 0 || host.len >= sizeof(tmp)) return false;
  memcpy(tmp, host.buf, host.len);
  tmp[host.len] = '\0';
  memset(a->ip, 0, sizeof(a->ip));
  if (strcasecmp(tmp, "localhost") == 0) {
    a->ip[0] = 127, a->ip[3] = 1, a->is_ip6 = false;
    return true;
  }
  if (inet_pton(AF_INET, tmp, a->ip) == 1) {
    a->is_ip6 = false;
    return true;
  }
  if (inet_pton(AF_INET6, tmp, a->ip) == 1) {
    a->is_ip6 = true;
    return true;
  }
  return false;
}

char *cm_addr_ip_str(const struct cm_addr *a, char *buf, size_t len) {
  if (inet_ntop(a->is_ip6 ? AF_INET6 : AF_INET, a->ip, buf, (socklen_t)len) == NULL && len > 0)
    buf[0] = '\0';
  return buf;
}
