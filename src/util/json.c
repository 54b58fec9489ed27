/*
 * JSON lookup by path: one forward pass over the document that checks the
 * grammar and, on the way, follows the path.
 *
 * The scanner is iterative: an explicit stack of container kinds (one bit a
 * level) replaces recursion, so hostile nesting costs a bounded 512 bytes of
 * stack whatever the limit.  The path is followed with one "match level":
 * the depth of the deepest container reached through the path so far.  Only
 * a child of that container can extend the match, so only it needs a
 * selector (member name or array index); once the scan leaves it, the answer
 * is known (found or not) and the rest of the pass only checks the grammar.
 */
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cymongoose.h"
#include "util/hex.h"

/* ---------------------------------------------------------------- paths */
enum seg_kind { SEG_END, SEG_KEY, SEG_INDEX, SEG_BAD };

struct seg {
  enum seg_kind kind;
  const char *key; /* SEG_KEY */
  size_t keylen;
  size_t index;    /* SEG_INDEX */
  const char *next; /* where the following segment starts */
};

/* Parses the segment at p (just after "$" or a previous segment). */
static struct seg next_seg(const char *p) {
  struct seg s = {SEG_END, NULL, 0, 0, p};
  if (*p == '\0') return s;
  if (*p == '.') {
    size_t n = strcspn(p + 1, ".[");
    if (n == 0) return s.kind = SEG_BAD, s;
    s.kind = SEG_KEY, s.key = p + 1, s.keylen = n, s.next = p + 1 + n;
    return s;
  }
  if (*p == '[') {
    size_t i = 1, v = 0;
    if (p[i] < '0' || p[i] > '9') return s.kind = SEG_BAD, s;
    for (; p[i] >= '0' && p[i] <= '9'; i++) {
      if (v > (SIZE_MAX - 9) / 10) return s.kind = SEG_BAD, s;
      v = v * 10 + (size_t)(p[i] - '0');
    }
    if (p[i] != ']') return s.kind = SEG_BAD, s;
    s.kind = SEG_INDEX, s.index = v, s.next = p + i + 1;
    return s;
  }
  s.kind = SEG_BAD;
  return s;
}

static bool path_ok(const char *path) {
  if (path == NULL || path[0] != '$') return false;
  for (struct seg s = next_seg(path + 1); s.kind != SEG_END; s = next_seg(s.next))
    if (s.kind == SEG_BAD) return false;
  return true;
}

/* ---------------------------------------------------------- tokens */
static bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* Length of the string token starting with '"' at s[0], or 0 if invalid. */
static size_t scan_string(const char *s, size_t n) {
  size_t i = 1;
  while (i < n) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"') return i + 1;
    if (c < 0x20) return 0;
    if (c == '\\') {
      if (i + 1 >= n) return 0;
      char e = s[i + 1];
      if (e == 'u') {
        if (i + 6 > n) return 0;
        for (size_t k = 2; k < 6; k++)
          if (cm__hex_digit((unsigned char)s[i + k]) < 0) return 0;
        i += 6;
      } else if (strchr("\"\\/bfnrt", e) != NULL && e != '\0') {
        i += 2;
      } else {
        return 0;
      }
    } else {
      i++;
    }
  }
  return 0;
}

/* Length of the number token at s[0], or 0 if invalid (RFC 8259 grammar). */
static size_t scan_number(const char *s, size_t n) {
  size_t i = 0;
  if (i < n && s[i] == '-') i++;
  if (i >= n) return 0;
  if (s[i] == '0') {
    i++;
  } else if (s[i] >= '1' && s[i] <= '9') {
    while (i < n && is_digit(s[i])) i++;
  } else {
    return 0;
  }
  if (i < n && s[i] == '.') {
    i++;
    if (i >= n || !is_digit(s[i])) return 0;
    while (i < n && is_digit(s[i])) i++;
  }
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    i++;
    if (i < n && (s[i] == '+' || s[i] == '-')) i++;
    if (i >= n || !is_digit(s[i])) return 0;
    while (i < n && is_digit(s[i])) i++;
  }
  return i;
}

static size_t scan_literal(const char *s, size_t n, const char *word) {
  size_t k = strlen(word);
  return n >= k && memcmp(s, word, k) == 0 ? k : 0;
}

/* Decodes the escape at s[0] == '\\' (validated by scan_string) into one
 * code unit; *used gets the bytes consumed. */
static unsigned decode_escape(const char *s, size_t *used) {
  switch (s[1]) {
    case 'b': *used = 2; return '\b';
    case 'f': *used = 2; return '\f';
    case 'n': *used = 2; return '\n';
    case 'r': *used = 2; return '\r';
    case 't': *used = 2; return '\t';
    case 'u': {
      unsigned v = 0;
      for (int k = 2; k < 6; k++) v = v * 16 + (unsigned)cm__hex_digit((unsigned char)s[k]);
      *used = 6;
      return v;
    }
    default: *used = 2; return (unsigned char)s[1];
  }
}

static size_t utf8_put(unsigned cp, char out[4]) {
  if (cp < 0x80) {
    out[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    out[0] = (char)(0xc0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3f));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = (char)(0xe0 | (cp >> 12));
    out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[2] = (char)(0x80 | (cp & 0x3f));
    return 3;
  }
  out[0] = (char)(0xf0 | (cp >> 18));
  out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
  out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
  out[3] = (char)(0x80 | (cp & 0x3f));
  return 4;
}

/*
 * Decodes the next character of the string body s[*i .. n) (a body already
 * validated by scan_string) into out; returns its length in bytes.  A high
 * surrogate escape followed by a low one makes one 4-byte character.
 */
static size_t next_char(const char *s, size_t n, size_t *i, char out[4]) {
  if (s[*i] != '\\') {
    out[0] = s[(*i)++];
    return 1;
  }
  size_t used;
  unsigned cp = decode_escape(s + *i, &used);
  *i += used;
  if (cp >= 0xd800 && cp <= 0xdbff && *i + 6 <= n && s[*i] == '\\' && s[*i + 1] == 'u') {
    unsigned lo = decode_escape(s + *i, &used);
    if (lo >= 0xdc00 && lo <= 0xdfff) {
      *i += used;
      cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
    }
  }
  return utf8_put(cp, out);
}

/* Compares the body of a string token (no quotes) with key, after decoding. */
static bool key_equals(const char *s, size_t n, const char *key, size_t keylen) {
  size_t i = 0, k = 0;
  char ch[4];
  while (i < n) {
    size_t m = next_char(s, n, &i, ch);
    if (k + m > keylen || memcmp(key + k, ch, m) != 0) return false;
    k += m;
  }
  return k == keylen;
}

/* ---------------------------------------------------------- the scanner */
struct finder {
  struct seg seg;       /* what selects the next step of the path */
  int match_depth;      /* depth of the container the selector applies to */
  bool searching;       /* the path may still be found */
  bool found;           /* value start recorded */
  int found_depth;      /* depth at which the found value sits */
  size_t start, end;    /* the value's bytes, end 0 until known */
  size_t index;         /* element counter of the match-level array */
};

/* Called at the first byte of every value; sel: it is on the path. */
static void value_begins(struct finder *f, bool sel, size_t pos, int depth) {
  if (!sel) return;
  f->searching = false;
  if (f->seg.kind == SEG_END) {
    f->found = true, f->found_depth = depth, f->start = pos;
  }
}

/* The value on the path is a container of the wanted kind: go inside. */
static void descend(struct finder *f, int depth_inside) {
  f->searching = true;
  f->match_depth = depth_inside;
  f->index = 0;
}

/* A child of the match container is selected: the path moves one step. */
static bool select_child(struct finder *f) {
  f->seg = next_seg(f->seg.next);
  return true;
}

/*
 * Parses a member's '"name" :' starting at s[i] (whitespace skipped), for
 * an object at the given depth.  Returns the offset after the ':', or 0 when
 * the text is invalid; *sel tells whether the member is the path's next step.
 */
static size_t member_name(const char *s, size_t n, size_t i, struct finder *f, int depth, bool *sel) {
  while (i < n && is_ws(s[i])) i++;
  if (i >= n || s[i] != '"') return 0;
  size_t len = scan_string(s + i, n - i);
  if (len == 0) return 0;
  *sel = f->searching && f->match_depth == depth &&
         key_equals(s + i + 1, len - 2, f->seg.key, f->seg.keylen) && select_child(f);
  i += len;
  while (i < n && is_ws(s[i])) i++;
  if (i >= n || s[i] != ':') return 0;
  return i + 1;
}

#define BIT_GET(bits, i) (((bits)[(i) / 8] >> ((i) % 8)) & 1u)
#define BIT_SET(bits, i, v) \
  ((bits)[(i) / 8] = (uint8_t)(((bits)[(i) / 8] & ~(1u << ((i) % 8))) | ((unsigned)(v) << ((i) % 8))))

int cm_json_find_depth(struct cm_str json, const char *path, int max_depth,
                       struct cm_str *value) {
  if (!path_ok(path)) return CM_JSON_BAD_PATH;
  if (max_depth < 1 || max_depth > CM_JSON_DEPTH_CAP) max_depth = CM_JSON_MAX_DEPTH;
  const char *s = json.buf;
  size_t n = json.buf == NULL ? 0 : json.len, i = 0;
  uint8_t is_array[CM_JSON_DEPTH_CAP / 8]; /* kind of each open container */
  int depth = 0;
  struct finder f = {next_seg(path + 1), 0, true, false, 0, 0, 0, 0};
  bool sel = true; /* the next value is on the path (the root always is) */
  bool want_value = true;

  for (;;) {
    while (i < n && is_ws(s[i])) i++;
    if (want_value) {
      if (i >= n) return CM_JSON_INVALID;
      char c = s[i];
      size_t len = 0;
      value_begins(&f, sel && f.searching, i, depth);
      if (c == '{' || c == '[') {
        if (depth >= max_depth) return CM_JSON_TOO_DEEP;
        bool arr = c == '[';
        BIT_SET(is_array, depth, arr);
        depth++;
        if (sel && !f.found && ((arr && f.seg.kind == SEG_INDEX) || (!arr && f.seg.kind == SEG_KEY)))
          descend(&f, depth);
        sel = false;
        i++;
        while (i < n && is_ws(s[i])) i++;
        if (i < n && s[i] == (arr ? ']' : '}')) {
          want_value = false; /* empty: the closing byte is handled below */
          continue;
        }
        if (arr) {
          sel = f.searching && f.match_depth == depth && f.seg.index == 0 && select_child(&f);
          continue;
        }
        if ((i = member_name(s, n, i, &f, depth, &sel)) == 0) return CM_JSON_INVALID;
        continue;
      } else if (c == '"') {
        len = scan_string(s + i, n - i);
      } else if (c == '-' || is_digit(c)) {
        len = scan_number(s + i, n - i);
      } else if (c == 't') {
        len = scan_literal(s + i, n - i, "true");
      } else if (c == 'f') {
        len = scan_literal(s + i, n - i, "false");
      } else if (c == 'n') {
        len = scan_literal(s + i, n - i, "null");
      }
      if (len == 0) return CM_JSON_INVALID;
      i += len;
      if (f.found && f.end == 0 && f.found_depth == depth) f.end = i;
      want_value = false;
      sel = false;
      continue;
    }
    /* after a value: the end, a separator or a closing bracket */
    if (depth == 0) {
      if (i != n) return CM_JSON_INVALID;
      break;
    }
    if (i >= n) return CM_JSON_INVALID;
    bool arr = BIT_GET(is_array, depth - 1);
    if (s[i] == (arr ? ']' : '}')) {
      if (f.searching && f.match_depth == depth) f.searching = false;
      depth--;
      i++;
      if (f.found && f.end == 0 && f.found_depth == depth) f.end = i;
      continue;
    }
    if (s[i] != ',') return CM_JSON_INVALID;
    i++;
    if (arr) {
      if (f.searching && f.match_depth == depth) {
        f.index++;
        sel = f.index == f.seg.index && select_child(&f);
      }
      want_value = true;
      continue;
    }
    if ((i = member_name(s, n, i, &f, depth, &sel)) == 0) return CM_JSON_INVALID;
    want_value = true;
  }
  if (!f.found) return CM_JSON_NOT_FOUND;
  if (value != NULL) *value = cm_str_n(s + f.start, f.end - f.start);
  return 0;
}

int cm_json_find(struct cm_str json, const char *path, struct cm_str *value) {
  return cm_json_find_depth(json, path, CM_JSON_MAX_DEPTH, value);
}

int cm_json_check(struct cm_str json, int max_depth) {
  return cm_json_find_depth(json, "$", max_depth, NULL);
}

/* ------------------------------------------------------ typed lookups */
static locale_t c_locale;
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;
static void make_c_locale(void) { c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0); }

/* strtod of a number token in the C locale, whatever the process locale. */
static bool token_to_double(struct cm_str tok, double *out) {
  char tmp[128];
  char *heap = NULL, *p = tmp;
  if (tok.len >= sizeof(tmp)) {
    if ((heap = malloc(tok.len + 1)) == NULL) return false;
    p = heap;
  }
  memcpy(p, tok.buf, tok.len);
  p[tok.len] = '\0';
  pthread_once(&c_locale_once, make_c_locale);
  *out = c_locale != (locale_t)0 ? strtod_l(p, NULL, c_locale) : strtod(p, NULL);
  free(heap);
  return true;
}

int cm_json_get_num(struct cm_str json, const char *path, double *out) {
  struct cm_str v;
  int rc = cm_json_find(json, path, &v);
  if (rc != 0) return rc;
  if (v.buf[0] != '-' && !is_digit(v.buf[0])) return CM_JSON_WRONG_TYPE;
  return token_to_double(v, out) ? 0 : CM_JSON_NO_ROOM;
}

int cm_json_get_bool(struct cm_str json, const char *path, bool *out) {
  struct cm_str v;
  int rc = cm_json_find(json, path, &v);
  if (rc != 0) return rc;
  if (v.buf[0] == 't') return *out = true, 0;
  if (v.buf[0] == 'f') return *out = false, 0;
  return CM_JSON_WRONG_TYPE;
}

int cm_json_get_long(struct cm_str json, const char *path, int64_t *out) {
  struct cm_str v;
  int rc = cm_json_find(json, path, &v);
  if (rc != 0) return rc;
  if (v.buf[0] != '-' && !is_digit(v.buf[0])) return CM_JSON_WRONG_TYPE;
  bool neg = v.buf[0] == '-';
  size_t i = neg ? 1 : 0;
  uint64_t mag = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
  for (; i < v.len && is_digit(v.buf[i]); i++) {
    unsigned d = (unsigned)(v.buf[i] - '0');
    if (mag > (limit - d) / 10) { /* too big as an integer; maybe 1e-400 style */
      mag = limit + 1;
      break;
    }
    mag = mag * 10 + d;
  }
  if (i == v.len) { /* a plain integer */
    if (mag > limit) return CM_JSON_WRONG_TYPE;
    *out = neg ? (int64_t)(0 - mag) : (int64_t)mag;
    return 0;
  }
  double d;
  if (!token_to_double(v, &d)) return CM_JSON_NO_ROOM;
  d = trunc(d);
  /* -2^63 is exact in a double; 2^63 is the first value out of range */
  if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0)) return CM_JSON_WRONG_TYPE;
  *out = (int64_t)d;
  return 0;
}

long cm_json_unescape(struct cm_str tok, char *buf, size_t len) {
  if (tok.len < 2 || tok.buf[0] != '"' || scan_string(tok.buf, tok.len) != tok.len)
    return CM_JSON_WRONG_TYPE;
  const char *s = tok.buf + 1;
  size_t n = tok.len - 2, i = 0, o = 0;
  char ch[4];
  while (i < n) {
    size_t m = next_char(s, n, &i, ch);
    if (o + m > len) return CM_JSON_NO_ROOM;
    memcpy(buf + o, ch, m);
    o += m;
  }
  return (long)o;
}

long cm_json_get_str(struct cm_str json, const char *path, char *buf, size_t len) {
  struct cm_str v;
  int rc = cm_json_find(json, path, &v);
  if (rc != 0) return rc;
  return cm_json_unescape(v, buf, len);
}

long cm_json_escape(struct cm_str s, char *buf, size_t len) {
  static const char hex[] = "0123456789abcdef";
  size_t o = 0;
#define PUT(ch)                   \
  do {                            \
    if (o < len) buf[o] = (ch);   \
    o++;                          \
  } while (0)
  PUT('"');
  for (size_t i = 0; i < s.len; i++) {
    unsigned char c = (unsigned char)s.buf[i];
    const char *short_esc = NULL;
    switch (c) {
      case '"': short_esc = "\\\""; break;
      case '\\': short_esc = "\\\\"; break;
      case '\n': short_esc = "\\n"; break;
      case '\r': short_esc = "\\r"; break;
      case '\t': short_esc = "\\t"; break;
      case '\b': short_esc = "\\b"; break;
      case '\f': short_esc = "\\f"; break;
      default: break;
    }
    if (short_esc != NULL) {
      PUT(short_esc[0]);
      PUT(short_esc[1]);
    } else if (c < 0x20 || c == 0x7f) {
      PUT('\\');
      PUT('u');
      PUT('0');
      PUT('0');
      PUT(hex[c >> 4]);
      PUT(hex[c & 15]);
    } else {
      PUT((char)c);
    }
  }
  PUT('"');
#undef PUT
  if (buf == NULL) return (long)o; /* measuring */
  return o <= len ? (long)o : CM_ENOSPC;
}

/* ------------------------------------------------------------ iteration */
/* End of the value starting at s[i] (of n), for a document already checked:
 * strings and containers are skipped whole, scalars up to a delimiter.
 * Bounded by n whatever the input. */
static size_t skip_value(const char *s, size_t n, size_t i) {
  if (i >= n) return n;
  if (s[i] == '"') {
    size_t len = scan_string(s + i, n - i);
    return len == 0 ? n : i + len;
  }
  if (s[i] == '{' || s[i] == '[') {
    size_t depth = 0;
    while (i < n) {
      char c = s[i];
      if (c == '"') {
        size_t len = scan_string(s + i, n - i);
        if (len == 0) return n;
        i += len;
        continue;
      }
      if (c == '{' || c == '[') depth++;
      if ((c == '}' || c == ']') && --depth == 0) return i + 1;
      i++;
    }
    return n;
  }
  while (i < n && !is_ws(s[i]) && s[i] != ',' && s[i] != ']' && s[i] != '}') i++;
  return i;
}

size_t cm_json_next(struct cm_str json, size_t ofs, struct cm_str *key, struct cm_str *value) {
  const char *s = json.buf;
  size_t n = json.len, i = ofs;
  if (s == NULL) return 0;
  if (i == 0) { /* first call: step inside the container */
    while (i < n && is_ws(s[i])) i++;
    if (i >= n || (s[i] != '{' && s[i] != '[')) return 0;
    i++;
  }
  while (i < n && (is_ws(s[i]) || s[i] == ',')) i++;
  if (i >= n || s[i] == '}' || s[i] == ']') return 0;
  struct cm_str k = {NULL, 0};
  if (s[i] == '"') { /* a member name, if a ':' follows */
    size_t end = skip_value(s, n, i), j = end;
    while (j < n && is_ws(s[j])) j++;
    if (j < n && s[j] == ':') {
      k = cm_str_n(s + i, end - i);
      i = j + 1;
      while (i < n && is_ws(s[i])) i++;
    }
  }
  size_t end = skip_value(s, n, i);
  if (end == i) return 0;
  if (key != NULL) *key = k;
  if (value != NULL) *value = cm_str_n(s + i, end - i);
  return end;
}
