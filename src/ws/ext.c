/*
 * Sec-WebSocket-Extensions parsing (RFC 6455 9.1) and permessage-deflate
 * parameter negotiation (RFC 7692 7.1).
 *
 *   extension-list  = 1#extension
 *   extension       = extension-token *( ";" extension-param )
 *   extension-param = token [ "=" ( token / quoted-string ) ]
 *
 * with optional whitespace around the separators.  Pure string work over
 * the caller's buffer: views point into it, nothing is copied or allocated.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cymongoose.h"

#define DEFLATE_NAME "permessage-deflate"

/* RFC 7230 tchar. */
static bool is_tchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool is_ows(char c) { return c == ' ' || c == '\t'; }

static size_t skip_ows(const char *s, size_t len, size_t i) {
  while (i < len && is_ows(s[i])) i++;
  return i;
}

static size_t skip_token(const char *s, size_t len, size_t i) {
  while (i < len && is_tchar(s[i])) i++;
  return i;
}

/* Skips a quoted-string starting at s[i] == '"'; returns the index after
 * the closing quote, or 0 when it is not terminated. */
static size_t skip_quoted(const char *s, size_t len, size_t i) {
  for (i++; i < len; i++) {
    if (s[i] == '\\') {
      i++;
    } else if (s[i] == '"') {
      return i + 1;
    }
  }
  return 0;
}

int cm_ws_ext_next(const char *hdr, size_t len, size_t *pos, const char **name,
                   size_t *name_len, const char **params, size_t *params_len) {
  size_t i = *pos;
  /* Empty list elements (", ,") are allowed and skipped (RFC 7230 7). */
  while (i < len && (is_ows(hdr[i]) || hdr[i] == ',')) i++;
  if (i >= len) {
    *pos = len;
    return 0;
  }
  size_t name_start = i;
  i = skip_token(hdr, len, i);
  if (i == name_start) return -1;
  *name = hdr + name_start;
  *name_len = i - name_start;
  i = skip_ows(hdr, len, i);
  size_t pstart = i, pend = i;
  if (i < len && hdr[i] == ';') {
    pstart = ++i;
    /* The parameters run to the next comma outside a quoted string. */
    while (i < len && hdr[i] != ',') {
      if (hdr[i] == '"') {
        size_t q = skip_quoted(hdr, len, i);
        if (q == 0) return -1;
        i = q;
      } else {
        i++;
      }
    }
    pend = i;
    while (pend > pstart && is_ows(hdr[pend - 1])) pend--;
    pstart = skip_ows(hdr, pend, pstart);
    if (pstart == pend) return -1; /* "name;" with nothing after the ';' */
  } else if (i < len && hdr[i] != ',') {
    return -1;
  }
  *params = hdr + pstart;
  *params_len = pend - pstart;
  *pos = i;
  return 1;
}

/* Parses "8".."15" (no sign, no leading zero) from v[0..n). */
static int parse_window_bits(const char *v, size_t n) {
  if (n == 1 && (v[0] == '8' || v[0] == '9')) return v[0] - '0';
  if (n == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5') return 10 + (v[1] - '0');
  return -1;
}

enum { P_SNCT = 1, P_CNCT = 2, P_SMWB = 4, P_CMWB = 8 };

int cm_ws_deflate_parse(const char *s, size_t len, bool is_response,
                        struct cm_ws_deflate_params *out) {
  struct cm_ws_deflate_params p;
  memset(&p, 0, sizeof(p));
  unsigned seen = 0;
  size_t i = skip_ows(s, len, 0);
  while (i < len) {
    size_t ns = i;
    i = skip_token(s, len, i);
    if (i == ns) return -1;
    size_t nlen = i - ns;
    i = skip_ows(s, len, i);
    /* The value, unquoted; window bits are at most 2 characters, so a
     * small buffer suffices and anything longer is simply invalid. */
    char val[4];
    size_t vlen = 0;
    bool has_value = false, value_too_long = false;
    if (i < len && s[i] == '=') {
      has_value = true;
      i = skip_ows(s, len, i + 1);
      if (i < len && s[i] == '"') {
        size_t q = skip_quoted(s, len, i);
        if (q == 0) return -1;
        for (size_t k = i + 1; k < q - 1; k++) {
          if (s[k] == '\\') k++;
          if (vlen < sizeof(val)) val[vlen++] = s[k];
          else value_too_long = true;
        }
        i = q;
      } else {
        size_t vs = i;
        i = skip_token(s, len, i);
        if (i == vs) return -1;
        for (size_t k = vs; k < i; k++) {
          if (vlen < sizeof(val)) val[vlen++] = s[k];
          else value_too_long = true;
        }
      }
      i = skip_ows(s, len, i);
    }
    if (i < len) {
      if (s[i] != ';') return -1;
      i = skip_ows(s, len, i + 1);
      if (i >= len) return -1; /* trailing ';' */
    }

    unsigned bit;
    int bits = value_too_long ? -1 : parse_window_bits(val, vlen);
    const char *n = s + ns;
#define IS(lit) (nlen == sizeof(lit) - 1 && strncasecmp(n, lit, nlen) == 0)
    if (IS("server_no_context_takeover")) {
      if (has_value) return -1;
      bit = P_SNCT;
      p.server_no_context_takeover = true;
    } else if (IS("client_no_context_takeover")) {
      if (has_value) return -1;
      bit = P_CNCT;
      p.client_no_context_takeover = true;
    } else if (IS("server_max_window_bits")) {
      if (!has_value || bits < 0) return -1;
      bit = P_SMWB;
      p.server_max_window_bits = (uint8_t)bits;
    } else if (IS("client_max_window_bits")) {
      bit = P_CMWB;
      if (has_value) {
        if (bits < 0) return -1;
        p.client_max_window_bits = (uint8_t)bits;
      } else {
        if (is_response) return -1;
        p.client_max_window_bits_bare = true;
      }
    } else {
      return -1;
    }
#undef IS
    if (seen & bit) return -1;
    seen |= bit;
  }
  *out = p;
  return 0;
}

static bool is_deflate(const char *name, size_t n) {
  return n == sizeof(DEFLATE_NAME) - 1 && strncasecmp(name, DEFLATE_NAME, n) == 0;
}

static uint8_t bits_or_15(uint8_t v) { return v == 0 ? 15 : v; }

static uint8_t min_u8(uint8_t a, uint8_t b) { return a < b ? a : b; }

int cm_ws_deflate_accept(const char *hdr, size_t len, const struct cm_ws_deflate_opts *opts,
                         struct cm_ws_deflate_params *agreed) {
  size_t pos = 0;
  const char *name, *params;
  size_t name_len, params_len;
  int r;
  while ((r = cm_ws_ext_next(hdr, len, &pos, &name, &name_len, &params, &params_len)) == 1) {
    if (!is_deflate(name, name_len)) continue;
    struct cm_ws_deflate_params offer;
    if (cm_ws_deflate_parse(params, params_len, false, &offer) != 0) continue;
    /* zlib cannot deflate with a 256-byte window: decline such an offer. */
    if (offer.server_max_window_bits == 8) continue;

    struct cm_ws_deflate_params a;
    memset(&a, 0, sizeof(a));
    a.server_no_context_takeover = offer.server_no_context_takeover || opts->server_no_context_takeover;
    a.client_no_context_takeover = offer.client_no_context_takeover || opts->client_no_context_takeover;
    /* server_max_window_bits: when offered, the response must carry it
     * (same or smaller); when not, the server may still announce a
     * smaller window of its own (RFC 7692 7.1.2.1). */
    uint8_t our_server_bits = bits_or_15(opts->server_max_window_bits);
    if (offer.server_max_window_bits != 0) {
      a.server_max_window_bits = min_u8(offer.server_max_window_bits, our_server_bits);
    } else if (our_server_bits < 15) {
      a.server_max_window_bits = our_server_bits;
    }
    /* client_max_window_bits may only be answered when offered (7.1.2.2). */
    if (offer.client_max_window_bits != 0) {
      a.client_max_window_bits =
          min_u8(offer.client_max_window_bits, bits_or_15(opts->client_max_window_bits));
    } else if (offer.client_max_window_bits_bare && bits_or_15(opts->client_max_window_bits) < 15) {
      a.client_max_window_bits = opts->client_max_window_bits;
    }
    *agreed = a;
    return 1;
  }
  return r; /* 0: no acceptable offer; -1: malformed header */
}

int cm_ws_deflate_check_response(const char *hdr, size_t len,
                                 const struct cm_ws_deflate_opts *opts,
                                 struct cm_ws_deflate_params *agreed) {
  size_t pos = 0;
  const char *name, *params;
  size_t name_len, params_len;
  int r, found = 0;
  struct cm_ws_deflate_params p;
  while ((r = cm_ws_ext_next(hdr, len, &pos, &name, &name_len, &params, &params_len)) == 1) {
    /* A server may only answer with extensions the client offered, once. */
    if (!is_deflate(name, name_len) || found) return -1;
    if (cm_ws_deflate_parse(params, params_len, true, &p) != 0) return -1;
    found = 1;
  }
  if (r < 0) return -1;
  if (!found) return 0;
  uint8_t offered_server = bits_or_15(opts->server_max_window_bits);
  uint8_t offered_client = bits_or_15(opts->client_max_window_bits);
  /* A server accepting an offer with server_max_window_bits must answer
   * it (RFC 7692 7.1.2.1); it may announce one we did not ask for. */
  if (offered_server < 15 && p.server_max_window_bits == 0) return -1;
  if (p.server_max_window_bits > offered_server) return -1;
  if (p.client_max_window_bits > offered_client) return -1;
  /* Our offer's own client_max_window_bits value binds us when the
   * response does not lower it (7.1.2.2). */
  if (p.client_max_window_bits == 0 && offered_client < 15) p.client_max_window_bits = offered_client;
  /* Our compressor (zlib) cannot honour a 256-byte window. */
  if (p.client_max_window_bits == 8) return -1;
  *agreed = p;
  return 1;
}

/* Appends text (and "=value" when value >= 0) at *n; false when it does
 * not fit in out[0..cap) with a NUL. */
static bool put(char *out, size_t cap, size_t *n, const char *text, int value) {
  int w = value >= 0 ? snprintf(out + *n, cap - *n, "%s=%d", text, value)
                     : snprintf(out + *n, cap - *n, "%s", text);
  if (w < 0 || (size_t)w >= cap - *n) return false;
  *n += (size_t)w;
  return true;
}

int cm_ws_deflate_format(const struct cm_ws_deflate_params *p, char *out, size_t cap) {
  size_t n = 0;
  if (cap == 0) return -1;
  bool ok = put(out, cap, &n, DEFLATE_NAME, -1);
  if (ok && p->server_no_context_takeover) ok = put(out, cap, &n, "; server_no_context_takeover", -1);
  if (ok && p->client_no_context_takeover) ok = put(out, cap, &n, "; client_no_context_takeover", -1);
  if (ok && p->server_max_window_bits != 0)
    ok = put(out, cap, &n, "; server_max_window_bits", p->server_max_window_bits);
  if (ok && p->client_max_window_bits != 0) {
    ok = put(out, cap, &n, "; client_max_window_bits", p->client_max_window_bits);
  } else if (ok && p->client_max_window_bits_bare) {
    ok = put(out, cap, &n, "; client_max_window_bits", -1);
  }
  if (!ok) {
    out[0] = '\0';
    return -1;
  }
  return (int)n;
}

int cm_ws_deflate_format_offer(const struct cm_ws_deflate_opts *opts, char *out, size_t cap) {
  struct cm_ws_deflate_params p;
  memset(&p, 0, sizeof(p));
  p.server_no_context_takeover = opts->server_no_context_takeover;
  p.client_no_context_takeover = opts->client_no_context_takeover;
  if (bits_or_15(opts->server_max_window_bits) < 15)
    p.server_max_window_bits = opts->server_max_window_bits;
  if (bits_or_15(opts->client_max_window_bits) < 15) {
    p.client_max_window_bits = opts->client_max_window_bits;
  } else {
    p.client_max_window_bits_bare = true;
  }
  return cm_ws_deflate_format(&p, out, cap);
}
