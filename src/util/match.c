/*
 * Glob matching with captures: '?' one byte, '*' a run without '/', '#' any
 * run.
 *
 * Backtracking matchers are exponential on patterns like "*a*a*a*b", and
 * the single-backtrack-point trick used for plain globs is wrong once '*'
 * may not cross '/' while '#' may.  So this is dynamic programming: split the
 * pattern into L0 W1 L1 ... Wk Lk, where the Wi are the '*'/'#' wildcards and
 * the Li fixed-width runs of literals and '?'.  A table row per wildcard says
 * at which offsets of s the rest of the pattern after it can match; then one
 * forward walk gives each wildcard the shortest run that keeps the match
 * alive, which also fixes the captures.  Time O(k * len(s) * len(L)), memory
 * (k + 1) * (len(s) + 1) bits.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cymongoose.h"

static bool is_wild(char c) { return c == '*' || c == '#'; }

/* Does the fixed-width run p[0..m) match s at offset t? */
static bool run_matches(struct cm_str s, size_t t, const char *p, size_t m) {
  if (t > s.len || s.len - t < m) return false;
  for (size_t j = 0; j < m; j++)
    if (p[j] != '?' && p[j] != s.buf[t + j]) return false;
  return true;
}

/* Stores the captures of the '?' bytes of run p[0..m) matched at t. */
static void run_captures(struct cm_str s, size_t t, const char *p, size_t m, struct cm_str *caps,
                         size_t ncaps, size_t *ci) {
  for (size_t j = 0; j < m; j++) {
    if (p[j] != '?') continue;
    if (*ci < ncaps) caps[*ci] = cm_str_n(s.buf + t + j, 1);
    (*ci)++;
  }
}

size_t cm_match_ncaps(struct cm_str pattern) {
  size_t n = 0;
  for (size_t i = 0; i < pattern.len; i++)
    if (pattern.buf[i] == '?' || is_wild(pattern.buf[i])) n++;
  return n;
}

#define GET(row, t) ((row)[(t) / 8] >> ((t) % 8) & 1u)
#define SET(row, t) ((row)[(t) / 8] |= (uint8_t)(1u << ((t) % 8)))

bool cm_match(struct cm_str s, struct cm_str pattern, struct cm_str *caps, size_t ncaps) {
  const char *p = pattern.buf;
  size_t plen = pattern.len, k = 0, first = plen;
  for (size_t i = 0; i < plen; i++) {
    if (!is_wild(p[i])) continue;
    if (k++ == 0) first = i;
  }
  size_t ci = 0;
  if (k == 0) { /* no wildcard runs: a fixed-width comparison */
    if (s.len != plen || !run_matches(s, 0, p, plen)) return false;
    run_captures(s, 0, p, plen, caps, ncaps, &ci);
    return true;
  }
  if (!run_matches(s, 0, p, first)) return false;

  /* rows[i-1] (i = 1..k): offsets t where "Li W(i+1) ... Lk" matches s[t..];
   * rows[k]: scratch for F, where "W(i+1) L(i+1) ..." matches s[t..] */
  size_t rowbytes = s.len / 8 + 1;
  if (k + 1 > SIZE_MAX / rowbytes) return errno = ENOMEM, false;
  size_t total = (k + 1) * rowbytes;
  uint8_t stackbuf[4096], *bits = stackbuf;
  if (total > sizeof(stackbuf)) {
    if ((bits = calloc(1, total)) == NULL) return errno = ENOMEM, false;
  } else {
    memset(bits, 0, total);
  }
  uint8_t *scratch = bits + k * rowbytes;

  size_t end = plen; /* end of the run after the wildcard being processed */
  for (size_t i = k; i >= 1; i--) {
    size_t w = end; /* position of wildcard i: the last one before end */
    while (!is_wild(p[--w])) {
    }
    const char *run = p + w + 1;
    size_t m = end - w - 1;
    uint8_t *row = bits + (i - 1) * rowbytes;
    if (i == k) {
      if (s.len >= m && run_matches(s, s.len - m, run, m)) SET(row, s.len - m);
    } else {
      /* scratch = F(i+1) from rows[i], computed from the back */
      const uint8_t *next = bits + i * rowbytes;
      char wnext = p[end];
      memset(scratch, 0, rowbytes);
      bool f = false;
      for (size_t t = s.len + 1; t-- > 0;) {
        if (t == s.len) {
          f = GET(next, t);
        } else {
          f = GET(next, t) || (f && (wnext == '#' || s.buf[t] != '/'));
        }
        if (f) SET(scratch, t);
      }
      for (size_t t = 0; t + m <= s.len; t++)
        if (GET(scratch, t + m) && run_matches(s, t, run, m)) SET(row, t);
    }
    end = w;
  }

  /* forward walk: each wildcard takes the shortest run that keeps a match */
  bool ok = true;
  run_captures(s, 0, p, first, caps, ncaps, &ci);
  size_t t = first, w = first;
  for (size_t i = 1; i <= k && ok; i++) {
    const uint8_t *row = bits + (i - 1) * rowbytes;
    size_t next_w = w + 1;
    while (next_w < plen && !is_wild(p[next_w])) next_w++;
    size_t m = next_w - w - 1, u = t;
    for (;;) {
      if (GET(row, u)) break;
      if (u >= s.len || (p[w] == '*' && s.buf[u] == '/')) {
        ok = false;
        break;
      }
      u++;
    }
    if (!ok) break;
    if (ci < ncaps) caps[ci] = cm_str_n(s.buf + t, u - t);
    ci++;
    run_captures(s, u, p + w + 1, m, caps, ncaps, &ci);
    t = u + m;
    w = next_w;
  }
  if (bits != stackbuf) free(bits);
  return ok;
}
