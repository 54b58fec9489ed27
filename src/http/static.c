/*
 * Static files: cm_http_serve_dir() and cm_http_serve_file().
 *
 * The request path is decoded once and checked segment by segment (no
 * "..", NUL or backslash survives, hidden segments are refused), then
 * opened beneath the root's descriptor, which the manager keeps open
 * (static_root.c: openat2 with RESOLVE_BENEATH, or a walk with O_NOFOLLOW
 * per component): what is opened cannot lie outside the root, and there
 * is no window between checking a path and opening it.  The open
 * descriptor is checked with fstat, so what is sent is what was checked.
 * A precompressed "<file>.gz" is looked for only when the client accepts
 * gzip.  Bodies are streamed with cm_send_file(); only headers are built
 * in memory.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cymongoose.h"
#include "core/internal.h"
#include "http/chars.h"
#include "http/internal.h"

#define DEFAULT_MAX_RANGES 16
#define DEFAULT_INDEX "index.html"

/* What the request and the options say, gathered once. */
struct ctx {
  struct cm_conn *c;
  struct cm_http_msg *hm;
  const struct cm_http_serve_dir_opts *opts;
  const struct cm__static_root *root; /* serve_dir's root; NULL for serve_file */
  struct cm__http_block extra; /* what opts->extra_headers contain */
};

/* --------------------------------------------------------------- helpers */

static bool method_is(const struct cm_http_msg *hm, const char *m) {
  return hm->method.len == strlen(m) && memcmp(hm->method.buf, m, hm->method.len) == 0;
}

static bool appendf(struct cm_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool appendf(struct cm_buf *b, const char *fmt, ...) {
  char tmp[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t) n >= sizeof(tmp)) return false;
  return cm_buf_append(b, tmp, (size_t) n) == 0;
}

/* The caller's extra header lines, each ending in CRLF. */
static bool append_extra(struct cm_buf *b, const struct ctx *x) {
  const char *h = x->opts->extra_headers;
  if (h == NULL || *h == '\0') return true;
  if (cm_buf_append(b, h, strlen(h)) != 0) return false;
  return !x->extra.needs_crlf || cm_buf_append(b, "\r\n", 2) == 0;
}

/* A NUL-terminated copy of the header block (cm_buf is not terminated). */
static const char *block_str(struct cm_buf *b) {
  if (cm_buf_append(b, "", 1) != 0) return NULL;
  b->len--;
  return (const char *) cm_buf_data(b);
}

/* A short text reply with the extra headers. */
static int reply_text(struct ctx *x, int status, const char *more_headers, const char *text) {
  struct cm_buf b = {0};
  bool ok = append_extra(&b, x) && (more_headers == NULL || appendf(&b, "%s", more_headers));
  const char *h = ok ? block_str(&b) : NULL;
  ok = h != NULL && cm_http_reply(x->c, status, h, text, strlen(text)) == 0;
  cm_buf_free(&b);
  return ok ? status : 0;
}

/* Opens a regular file for reading; -1 with errno (EISDIR/EACCES for
 * other kinds of files) otherwise.  *st describes what was opened.  follow:
 * whether a symlink at the last component is followed. */
static int open_regular(const char *path, struct stat *st, bool follow) {
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | (follow ? 0 : O_NOFOLLOW));
  if (fd < 0) return -1;
  if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
    int err = S_ISDIR(st->st_mode) ? EISDIR : EACCES;
    close(fd);
    errno = err;
    return -1;
  }
  return fd;
}

/* ------------------------------------------------------ request headers */

/* Does an Accept-Encoding element list accept gzip (RFC 9110 12.5.3)?
 * "gzip" or "x-gzip", else "*", with a q-value other than 0. */
static bool accepts_gzip(struct cm_http_msg *hm) {
  int gzip = -1, star = -1; /* -1 unseen, 0 refused, 1 accepted */
  for (size_t i = 0; i < hm->num_headers; i++) {
    struct cm_str n = hm->headers[i].name, v = hm->headers[i].value;
    if (n.len != 15 || strncasecmp(n.buf, "accept-encoding", 15) != 0) continue;
    size_t k = 0;
    while (k < v.len) {
      size_t e = k;
      while (e < v.len && v.buf[e] != ',') e++;
      struct cm_str el = cm_str_n(v.buf + k, e - k);
      size_t a = 0;
      while (a < el.len && cm__http_is_ows((unsigned char) el.buf[a])) a++;
      size_t b = a;
      while (b < el.len && cm__http_is_tchar((unsigned char) el.buf[b])) b++;
      struct cm_str coding = cm_str_n(el.buf + a, b - a);
      struct cm_str q = cm_http_get_header_var(el, cm_str_c("q"));
      bool ok = true;
      if (q.buf != NULL) { /* q=0, 0.0, 0.000: refused */
        ok = false;
        for (size_t j = 0; j < q.len; j++) {
          if (q.buf[j] >= '1' && q.buf[j] <= '9') ok = true;
        }
      }
      if ((coding.len == 4 && strncasecmp(coding.buf, "gzip", 4) == 0) ||
          (coding.len == 6 && strncasecmp(coding.buf, "x-gzip", 6) == 0)) {
        gzip = ok;
      } else if (coding.len == 1 && coding.buf[0] == '*') {
        star = ok;
      }
      k = e + 1;
    }
  }
  return gzip == 1 || (gzip == -1 && star == 1);
}

/* Steps over one entity-tag at v[*i] ([W/]"..."); its opaque part (with
 * quotes) goes to *tag, *weak says W/.  False when malformed. */
static bool next_etag(struct cm_str v, size_t *i, struct cm_str *tag, bool *weak) {
  while (*i < v.len && (cm__http_is_ows((unsigned char) v.buf[*i]) || v.buf[*i] == ',')) (*i)++;
  if (*i >= v.len) return false;
  *weak = false;
  if (v.len - *i >= 2 && v.buf[*i] == 'W' && v.buf[*i + 1] == '/') {
    *weak = true;
    *i += 2;
  }
  if (*i >= v.len || v.buf[*i] != '"') return false;
  const char *q = memchr(v.buf + *i + 1, '"', v.len - *i - 1);
  if (q == NULL) return false;
  size_t end = (size_t) (q - v.buf) + 1;
  *tag = cm_str_n(v.buf + *i, end - *i);
  *i = end;
  return true;
}

static bool str_eq(struct cm_str a, const char *b) {
  return a.len == strlen(b) && memcmp(a.buf, b, a.len) == 0;
}

/* If-None-Match: "*" or a list of entity-tags, compared weakly. */
static bool none_match_hits(struct cm_str v, const char *etag) {
  size_t i = 0;
  while (i < v.len && cm__http_is_ows((unsigned char) v.buf[i])) i++;
  if (i < v.len && v.buf[i] == '*') return true;
  struct cm_str tag;
  bool weak;
  while (next_etag(v, &i, &tag, &weak)) {
    if (str_eq(tag, etag)) return true;
  }
  return false;
}

/* ------------------------------------------------------------- a file */

/* What is known about the file being served. */
struct file {
  int fd;
  uint64_t size;
  int64_t mtime;
  char etag[64];
  char last_modified[32];
  char type[128];
  bool gzip;      /* fd is the .gz sibling: the reply varies on Accept-Encoding */
};

/* The headers every reply about the file carries. */
static bool file_headers(struct cm_buf *b, const struct ctx *x, const struct file *f, bool with_type) {
  bool ok = append_extra(b, x) && appendf(b, "ETag: %s\r\nLast-Modified: %s\r\nAccept-Ranges: bytes\r\n",
                                          f->etag, f->last_modified);
  if (ok && with_type && !x->extra.has_type) ok = appendf(b, "Content-Type: %s\r\n", f->type);
  if (ok && f->gzip) ok = appendf(b, "Content-Encoding: gzip\r\nVary: Accept-Encoding\r\n");
  return ok;
}

/* Queues a head (headers in b) and the byte range of fd; takes fd. */
static int send_body(struct ctx *x, int status, struct cm_buf *b, int fd, uint64_t off, uint64_t len) {
  const char *h = block_str(b);
  bool body = false;
  if (h == NULL || !cm__http_reply_head(x->c, status, h, len, &body)) {
    close(fd);
    return 0;
  }
  if (body) {
    if (cm_send_file(x->c, fd, off, len) != 0) {
      cm_close(x->c); /* the head promised a body we cannot queue */
      return 0;
    }
  } else {
    close(fd);
  }
  cm__http_reply_end(x->c);
  return status;
}

/* 404: the custom page (sent as is, status 404) or a short text. */
static int not_found(struct ctx *x) {
  const char *page = x->opts->page404;
  struct stat st;
  int fd = page != NULL && *page != '\0' ? open_regular(page, &st, false) : -1;
  if (fd < 0) return reply_text(x, 404, NULL, "Not Found\n");
  struct cm_buf b = {0};
  struct cm_str type = cm_http_mime_type(cm_str_c(page), x->opts->mime_types);
  int rc = 0;
  if (append_extra(&b, x) &&
      (x->extra.has_type || appendf(&b, "Content-Type: %.*s\r\n", (int) type.len, type.buf))) {
    rc = send_body(x, 404, &b, fd, 0, (uint64_t) st.st_size);
  } else {
    close(fd);
  }
  cm_buf_free(&b);
  return rc;
}

/* Answers with several ranges as multipart/byteranges (RFC 9110 14.6). */
static int send_multipart(struct ctx *x, struct file *f, const struct cm_http_range *r, int n) {
  uint64_t rnd[2] = {0, 0};
  if (getrandom(rnd, sizeof(rnd), GRND_NONBLOCK) != (ssize_t) sizeof(rnd)) {
    rnd[0] = (uint64_t) cm_millis() ^ ((uint64_t) x->c->id << 32);
    rnd[1] = (uint64_t) (uintptr_t) f ^ f->size;
  }
  char boundary[40];
  snprintf(boundary, sizeof(boundary), "%016llx%016llx", (unsigned long long) rnd[0],
           (unsigned long long) rnd[1]);
  /* Part heads are built first: the Content-Length must count them. */
  struct cm_buf parts[DEFAULT_MAX_RANGES * 4];
  int nparts = n;
  if ((size_t) nparts > sizeof(parts) / sizeof(parts[0])) nparts = (int) (sizeof(parts) / sizeof(parts[0]));
  uint64_t total = 0;
  bool ok = true;
  for (int i = 0; i < nparts; i++) {
    struct cm_buf *p = &parts[i];
    memset(p, 0, sizeof(*p));
    ok = ok && appendf(p, "%s--%s\r\nContent-Type: %s\r\nContent-Range: bytes %llu-%llu/%llu\r\n\r\n",
                       i == 0 ? "" : "\r\n", boundary, f->type, (unsigned long long) r[i].start,
                       (unsigned long long) r[i].end, (unsigned long long) f->size);
    total += p->len + (r[i].end - r[i].start + 1);
  }
  char tail[64];
  snprintf(tail, sizeof(tail), "\r\n--%s--\r\n", boundary);
  total += strlen(tail);
  struct cm_buf b = {0};
  struct file head = *f;
  head.type[0] = '\0';
  ok = ok && file_headers(&b, x, &head, false) &&
       appendf(&b, "Content-Type: multipart/byteranges; boundary=%s\r\n", boundary);
  const char *h = ok ? block_str(&b) : NULL;
  bool body = false;
  int rc = 0;
  if (h != NULL && cm__http_reply_head(x->c, 206, h, total, &body)) {
    rc = 206;
    /* All parts come from the one descriptor at their offsets; the last
     * range owns it (closes it once sent). */
    bool fd_taken = false;
    for (int i = 0; body && i < nparts; i++) {
      bool last = i == nparts - 1;
      uint64_t len = r[i].end - r[i].start + 1;
      bool queued = cm_send(x->c, cm_buf_data(&parts[i]), parts[i].len) == 0;
      if (queued && last) {
        fd_taken = true;
        queued = cm_send_file(x->c, f->fd, r[i].start, len) == 0;
      } else if (queued) {
        queued = cm__send_file_shared(x->c, f->fd, r[i].start, len);
      }
      if (!queued) {
        cm_close(x->c);
        rc = 0;
        break;
      }
    }
    if (fd_taken) f->fd = -1;
    if (rc != 0 && body && cm_send(x->c, tail, strlen(tail)) != 0) {
      cm_close(x->c);
      rc = 0;
    }
    if (rc != 0) cm__http_reply_end(x->c);
  }
  for (int i = 0; i < nparts; i++) cm_buf_free(&parts[i]);
  cm_buf_free(&b);
  if (f->fd >= 0) close(f->fd);
  return rc;
}

/* Does If-Range (if any) allow serving a range? */
static bool if_range_ok(struct cm_http_msg *hm, const struct file *f) {
  struct cm_str *v = cm_http_get_header(hm, "If-Range");
  if (v == NULL) return true;
  if (v->len > 0 && v->buf[0] == '"') return str_eq(*v, f->etag); /* strong comparison */
  if (v->len > 1 && v->buf[0] == 'W' && v->buf[1] == '/') return false;
  int64_t t = cm__http_date_parse(*v);
  return t >= 0 && t == f->mtime;
}

/* Serves an open file f (takes f->fd): conditionals, ranges, body. */
static int serve_open(struct ctx *x, struct file *f) {
  struct cm_http_msg *hm = x->hm;
  struct cm_buf b = {0};
  int rc = 0;
  struct cm_str *inm = cm_http_get_header(hm, "If-None-Match");
  struct cm_str *ims = cm_http_get_header(hm, "If-Modified-Since");
  bool not_modified = false;
  if (inm != NULL) {
    not_modified = none_match_hits(*inm, f->etag);
  } else if (ims != NULL) {
    int64_t t = cm__http_date_parse(*ims);
    not_modified = t >= 0 && f->mtime <= t;
  }
  if (not_modified) {
    close(f->fd);
    const char *h = file_headers(&b, x, f, false) ? block_str(&b) : NULL;
    rc = h != NULL && cm_http_reply(x->c, 304, h, NULL, 0) == 0 ? 304 : 0;
    cm_buf_free(&b);
    return rc;
  }
  struct cm_str *range = method_is(hm, "GET") ? cm_http_get_header(hm, "Range") : NULL;
  size_t max = x->opts->max_ranges != 0 ? x->opts->max_ranges : DEFAULT_MAX_RANGES;
  if (max > DEFAULT_MAX_RANGES * 4) max = DEFAULT_MAX_RANGES * 4;
  struct cm_http_range r[DEFAULT_MAX_RANGES * 4];
  int n = range != NULL && if_range_ok(hm, f) ? cm_http_parse_range(*range, f->size, r, max) : 0;
  if (n < 0) {
    close(f->fd);
    char cr[64];
    snprintf(cr, sizeof(cr), "Content-Range: bytes */%llu\r\n", (unsigned long long) f->size);
    rc = reply_text(x, 416, cr, "Range Not Satisfiable\n");
  } else if (n == 1) {
    if (file_headers(&b, x, f, true) &&
        appendf(&b, "Content-Range: bytes %llu-%llu/%llu\r\n", (unsigned long long) r[0].start,
                (unsigned long long) r[0].end, (unsigned long long) f->size)) {
      rc = send_body(x, 206, &b, f->fd, r[0].start, r[0].end - r[0].start + 1);
    } else {
      close(f->fd);
    }
  } else if (n > 1) {
    rc = send_multipart(x, f, r, n);
  } else if (file_headers(&b, x, f, true)) {
    rc = send_body(x, 200, &b, f->fd, 0, f->size);
  } else {
    close(f->fd);
  }
  cm_buf_free(&b);
  return rc;
}

/* May a precompressed sibling be looked for? */
static bool wants_gzip(struct ctx *x) {
  return !x->opts->no_precompressed && accepts_gzip(x->hm);
}

/* Serves fd (a regular file, described by st; taken), named name for its
 * type, or gfd instead (its ".gz" sibling, described by gst; taken) when
 * gfd >= 0. */
static int serve_fd(struct ctx *x, int fd, const struct stat *st, const char *name, int gfd,
                    const struct stat *gst) {
  struct file f;
  memset(&f, 0, sizeof(f));
  struct cm_str type = cm_http_mime_type(cm_str_c(name), x->opts->mime_types);
  snprintf(f.type, sizeof(f.type), "%.*s", (int) type.len, type.buf);
  f.fd = fd;
  if (gfd >= 0) {
    close(fd);
    f.fd = gfd;
    f.gzip = true;
    st = gst;
  }
  f.size = (uint64_t) st->st_size;
  f.mtime = (int64_t) st->st_mtim.tv_sec;
  snprintf(f.etag, sizeof(f.etag), "\"%llx.%lx-%llx%s\"", (unsigned long long) st->st_mtim.tv_sec,
           (unsigned long) st->st_mtim.tv_nsec, (unsigned long long) f.size, f.gzip ? "-gz" : "");
  cm__http_date_fmt(f.mtime, f.last_modified);
  return serve_open(x, &f);
}

/* serve_file: the file at path, symlinks followed (the application chose
 * it), and its ".gz" sibling when the client accepts gzip. */
static int serve_path(struct ctx *x, const char *path) {
  struct stat st, gst;
  int fd = open_regular(path, &st, true);
  if (fd < 0) {
    if (errno == ENOENT || errno == ENOTDIR) return not_found(x);
    return reply_text(x, 403, NULL, "Forbidden\n");
  }
  int gfd = -1;
  char gz[PATH_MAX + 4];
  if (wants_gzip(x) && snprintf(gz, sizeof(gz), "%s.gz", path) < (int) sizeof(gz)) {
    gfd = open_regular(gz, &gst, true);
  }
  return serve_fd(x, fd, &st, path, gfd, &gst);
}

/* Checks the caller's options; a 500 when the extra headers are unusable. */
static bool start(struct ctx *x, struct cm_conn *c, struct cm_http_msg *hm,
                  const struct cm_http_serve_dir_opts *opts, int *rc) {
  static const struct cm_http_serve_dir_opts none;
  memset(x, 0, sizeof(*x));
  x->c = c;
  x->hm = hm;
  x->opts = opts != NULL ? opts : &none;
  if (!cm__http_scan_block(x->opts->extra_headers, &x->extra) || x->extra.has_length || x->extra.chunked) {
    CM_ERROR("conn %lu: static files: invalid extra_headers", c->id);
    x->opts = &none;
    memset(&x->extra, 0, sizeof(x->extra));
    *rc = reply_text(x, 500, NULL, "Internal Server Error\n");
    return false;
  }
  if (!method_is(hm, "GET") && !method_is(hm, "HEAD")) {
    *rc = reply_text(x, 405, "Allow: GET, HEAD\r\n", "Method Not Allowed\n");
    return false;
  }
  return true;
}

/* --------------------------------------------------------- public API */

int cm_http_serve_file(struct cm_conn *c, struct cm_http_msg *hm, const char *path,
                       const struct cm_http_serve_dir_opts *opts) {
  struct ctx x;
  int rc = 0;
  if (!start(&x, c, hm, opts, &rc)) return rc;
  /* The application chose the path: no root to stay under, so it is opened
   * as given (symlinks followed) without resolving it first. */
  if (path == NULL || *path == '\0') return not_found(&x);
  return serve_path(&x, path);
}

/* A path segment naming a hidden file or directory (".env", ".git"). */
static bool is_hidden(const char *seg, size_t len) {
  return len > 0 && seg[0] == '.';
}

/*
 * Decodes the request path into out as "/seg/seg..." with "." and empty
 * segments dropped.  Returns 0, 400 (not absolute, bad escape, too long),
 * 403 (a ".." segment, NUL or backslash), or 404 (a hidden segment, unless
 * allowed).  *dir_slash tells whether the path names a directory ("/a/",
 * "/a/.").
 */
static int clean_path(struct cm_str uri, char *out, size_t outlen, bool *dir_slash, bool allow_hidden) {
  char buf[PATH_MAX];
  /* absolute-form ("http://host/path", RFC 9112 3.2.2): the path part */
  const char *sep = uri.len > 0 && uri.buf[0] != '/' ? memmem(uri.buf, uri.len, "://", 3) : NULL;
  if (sep != NULL) {
    const char *path = memchr(sep + 3, '/', uri.len - (size_t) (sep + 3 - uri.buf));
    uri = path == NULL ? cm_str_c("/") : cm_str_n(path, uri.len - (size_t) (path - uri.buf));
  }
  if (uri.len == 0 || uri.buf[0] != '/') return 400;
  /* Most paths have no escape: read them where they are. */
  const char *dec = uri.buf;
  long n = uri.len < sizeof(buf) ? (long) uri.len : -1;
  if (memchr(uri.buf, '%', uri.len) != NULL) {
    n = cm_url_decode(uri.buf, uri.len, buf, sizeof(buf), false);
    dec = buf;
  }
  if (n < 0) return 400;
  if (memchr(dec, '\0', (size_t) n) != NULL || memchr(dec, '\\', (size_t) n) != NULL) return 403;
  size_t o = 0, i = 0, len = (size_t) n;
  *dir_slash = false;
  out[0] = '\0';
  while (i < len) {
    while (i < len && dec[i] == '/') i++;
    size_t s = i;
    while (i < len && dec[i] != '/') i++;
    size_t seg = i - s;
    *dir_slash = seg == 0 || (seg == 1 && dec[s] == '.');
    if (*dir_slash) continue;
    if (seg == 2 && dec[s] == '.' && dec[s + 1] == '.') return 403;
    if (is_hidden(dec + s, seg) && !allow_hidden) return 404;
    if (o + 1 + seg + 1 > outlen) return 400;
    out[o++] = '/';
    memcpy(out + o, dec + s, seg);
    o += seg;
    out[o] = '\0';
  }
  return 0;
}

/* A failed cm__static_open(): missing 404, anything else 403. */
static int open_failed(struct ctx *x) {
  if (errno == ENOENT || errno == ENOTDIR) return not_found(x);
  return reply_text(x, 403, NULL, "Forbidden\n");
}

/* A file found below the root (fd, regular, described by st; taken) at
 * real, the path below the root that was opened: served, or its ".gz"
 * sibling (itself below the root) when the client accepts gzip. */
static int serve_below(struct ctx *x, int fd, const struct stat *st, const char *real) {
  int gfd = -1;
  struct stat gst;
  char gz[PATH_MAX + 4], gz_real[PATH_MAX];
  if (wants_gzip(x) && snprintf(gz, sizeof(gz), "%s.gz", real) < (int) sizeof(gz)) {
    gfd = cm__static_open(x->root, gz, x->opts->allow_hidden, gz_real, sizeof(gz_real));
    if (gfd >= 0 && (fstat(gfd, &gst) != 0 || !S_ISREG(gst.st_mode))) {
      close(gfd);
      gfd = -1;
    }
  }
  return serve_fd(x, fd, st, real, gfd, &gst);
}

/* A directory's index (rel: the directory below the root, "" for the root
 * itself).  Without one, 403: directories are never listed. */
static int serve_index(struct ctx *x, const char *rel) {
  const char *index = x->opts->index_file != NULL && *x->opts->index_file ? x->opts->index_file : DEFAULT_INDEX;
  if (strchr(index, '/') != NULL || (index[0] == '.' && !x->opts->allow_hidden)) {
    return reply_text(x, 403, NULL, "Forbidden\n");
  }
  char path[PATH_MAX], real[PATH_MAX];
  if (snprintf(path, sizeof(path), "%s%s%s", rel, *rel != '\0' ? "/" : "", index) >= (int) sizeof(path)) {
    return reply_text(x, 400, NULL, "Bad Request\n");
  }
  struct stat st;
  int fd = cm__static_open(x->root, path, x->opts->allow_hidden, real, sizeof(real));
  if (fd >= 0) {
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) return serve_below(x, fd, &st, real);
    close(fd);
    return reply_text(x, 403, NULL, "Forbidden\n");
  }
  if (errno != ENOENT) return open_failed(x); /* ENOTDIR: "/file.txt/" */
  /* No index: a 403 for a directory that exists, else a 404. */
  fd = cm__static_open(x->root, rel, x->opts->allow_hidden, real, sizeof(real));
  if (fd < 0) return open_failed(x);
  bool is_dir = fstat(fd, &st) == 0 && S_ISDIR(st.st_mode);
  close(fd);
  return is_dir ? reply_text(x, 403, NULL, "Forbidden\n") : not_found(x);
}

/* "/docs" -> "/docs/", so that relative links in its index resolve. */
static int redirect_to_dir(struct ctx *x) {
  /* Leading slashes collapse to one: "//host/dir/" would be read by a
   * browser as another site (an open redirect). */
  struct cm_http_msg *hm = x->hm;
  struct cm_str u = hm->uri;
  while (u.len > 1 && u.buf[1] == '/') u.buf++, u.len--;
  struct cm_buf b = {0};
  bool ok = append_extra(&b, x) &&
            appendf(&b, "Location: %.*s/%s%.*s\r\n", (int) u.len, u.buf, hm->query.len > 0 ? "?" : "",
                    (int) hm->query.len, hm->query.buf ? hm->query.buf : "");
  const char *h = ok ? block_str(&b) : NULL;
  int rc = h != NULL && cm_http_reply(x->c, 301, h, "", 0) == 0 ? 301 : 0;
  cm_buf_free(&b);
  return rc;
}

int cm_http_serve_dir(struct cm_conn *c, struct cm_http_msg *hm, const struct cm_http_serve_dir_opts *opts) {
  struct ctx x;
  int rc = 0;
  if (!start(&x, c, hm, opts, &rc)) return rc;
  if (x.opts->root_dir == NULL || (x.root = cm__static_root_get(c->mgr, x.opts->root_dir)) == NULL) {
    CM_ERROR("conn %lu: static files: root_dir %s unusable", c->id,
             x.opts->root_dir != NULL ? x.opts->root_dir : "(null)");
    return not_found(&x);
  }
  char clean[PATH_MAX], real[PATH_MAX];
  bool dir_slash = false;
  int bad = clean_path(hm->uri, clean, sizeof(clean), &dir_slash, x.opts->allow_hidden);
  if (bad == 404) return not_found(&x);
  if (bad != 0) return reply_text(&x, bad, NULL, bad == 403 ? "Forbidden\n" : "Bad Request\n");
  const char *rel = clean[0] == '/' ? clean + 1 : clean;
  /* "/dir/" asks for the index straight away: one open in the common case. */
  if (dir_slash) return serve_index(&x, rel);
  int fd = cm__static_open(x.root, rel, x.opts->allow_hidden, real, sizeof(real));
  if (fd < 0) return open_failed(&x);
  struct stat st;
  if (fstat(fd, &st) != 0) {
    close(fd);
    return reply_text(&x, 403, NULL, "Forbidden\n");
  }
  if (S_ISDIR(st.st_mode)) {
    close(fd);
    return *rel != '\0' ? redirect_to_dir(&x) : serve_index(&x, rel);
  }
  if (!S_ISREG(st.st_mode)) { /* FIFOs, devices, sockets */
    close(fd);
    return reply_text(&x, 403, NULL, "Forbidden\n");
  }
  return serve_below(&x, fd, &st, real);
}
