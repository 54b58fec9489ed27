/* Small helpers shared by the parsers of this folder. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cymongoose.h"
#include "opsutil.h"

char *cm_ops_read_file(const char *path, size_t *len, char *err, size_t err_len) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    cm_ops_err(err, err_len, "%s: %s", path, strerror(errno));
    return NULL;
  }
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  while (buf != NULL) {
    if (n + 1 >= cap) {
      char *nb = realloc(buf, cap * 2);
      if (nb == NULL) break;
      buf = nb;
      cap *= 2;
    }
    size_t r = fread(buf + n, 1, cap - n - 1, f);
    n += r;
    if (r == 0) {
      if (ferror(f)) break;
      fclose(f);
      buf[n] = '\0';
      *len = n;
      return buf;
    }
  }
  cm_ops_err(err, err_len, "%s: %s", path, buf == NULL ? "out of memory" : strerror(errno));
  free(buf);
  fclose(f);
  return NULL;
}

void cm_ops_err(char *err, size_t err_len, const char *fmt, ...) {
  if (err == NULL || err_len == 0) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, err_len, fmt, ap);
  va_end(ap);
}

bool cm_ops_next_line(struct cm_str text, size_t *pos, struct cm_str *line) {
  if (*pos >= text.len) return false;
  const char *s = text.buf + *pos;
  const char *nl = memchr(s, '\n', text.len - *pos);
  size_t n = nl != NULL ? (size_t)(nl - s) : text.len - *pos;
  *pos += n + (nl != NULL ? 1 : 0);
  if (n > 0 && s[n - 1] == '\r') n--;
  *line = cm_str_n(s, n);
  return true;
}

static bool is_space(char ch) {
  return ch == ' ' || ch == '\t';
}

struct cm_str cm_ops_trim(struct cm_str s) {
  while (s.len > 0 && is_space(s.buf[0])) s.buf++, s.len--;
  while (s.len > 0 && is_space(s.buf[s.len - 1])) s.len--;
  return s;
}

bool cm_ops_word(struct cm_str *rest, struct cm_str *word) {
  *rest = cm_ops_trim(*rest);
  if (rest->len == 0) return false;
  size_t i = 0;
  while (i < rest->len && !is_space(rest->buf[i])) i++;
  *word = cm_str_n(rest->buf, i);
  rest->buf += i;
  rest->len -= i;
  return true;
}

bool cm_ops_eq(struct cm_str s, const char *lit) {
  size_t n = strlen(lit);
  return s.len == n && memcmp(s.buf, lit, n) == 0;
}

char *cm_ops_dup(struct cm_str s) {
  char *p = malloc(s.len + 1);
  if (p == NULL) return NULL;
  if (s.len > 0) memcpy(p, s.buf, s.len);
  p[s.len] = '\0';
  return p;
}
