/* MIME types by file extension: a custom list first, then a built-in table. */
#include <string.h>
#include <strings.h>

#include "cymongoose.h"
#include "http/chars.h"

struct mime {
  const char *ext;
  const char *type;
};

/* Common web types.  Text types say UTF-8, which is what browsers need to
 * render non-ASCII text without guessing. */
static const struct mime builtin[] = {
    {"html", "text/html; charset=utf-8"},
    {"htm", "text/html; charset=utf-8"},
    {"shtml", "text/html; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"txt", "text/plain; charset=utf-8"},
    {"text", "text/plain; charset=utf-8"},
    {"md", "text/markdown; charset=utf-8"},
    {"csv", "text/csv; charset=utf-8"},
    {"xml", "application/xml"},
    {"json", "application/json"},
    {"map", "application/json"},
    {"jsonld", "application/ld+json"},
    {"webmanifest", "application/manifest+json"},
    {"rss", "application/rss+xml"},
    {"atom", "application/atom+xml"},
    {"wasm", "application/wasm"},
    {"pdf", "application/pdf"},
    {"zip", "application/zip"},
    {"gz", "application/gzip"},
    {"tgz", "application/gzip"},
    {"tar", "application/x-tar"},
    {"bz2", "application/x-bzip2"},
    {"xz", "application/x-xz"},
    {"7z", "application/x-7z-compressed"},
    {"rtf", "application/rtf"},
    {"doc", "application/msword"},
    {"docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"},
    {"xls", "application/vnd.ms-excel"},
    {"xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"},
    {"ppt", "application/vnd.ms-powerpoint"},
    {"pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation"},
    {"svg", "image/svg+xml"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"webp", "image/webp"},
    {"avif", "image/avif"},
    {"ico", "image/x-icon"},
    {"bmp", "image/bmp"},
    {"tif", "image/tiff"},
    {"tiff", "image/tiff"},
    {"woff", "font/woff"},
    {"woff2", "font/woff2"},
    {"ttf", "font/ttf"},
    {"otf", "font/otf"},
    {"mp3", "audio/mpeg"},
    {"m4a", "audio/mp4"},
    {"ogg", "audio/ogg"},
    {"oga", "audio/ogg"},
    {"wav", "audio/wav"},
    {"flac", "audio/flac"},
    {"mp4", "video/mp4"},
    {"m4v", "video/mp4"},
    {"webm", "video/webm"},
    {"ogv", "video/ogg"},
    {"mpeg", "video/mpeg"},
    {"mpg", "video/mpeg"},
    {"mov", "video/quicktime"},
    {"avi", "video/x-msvideo"},
};

#define DEFAULT_TYPE "application/octet-stream"

/* The extension of the last path segment, without its dot; empty if none. */
static struct cm_str extension(struct cm_str path) {
  size_t i = path.len;
  while (i > 0 && path.buf[i - 1] != '/' && path.buf[i - 1] != '.') i--;
  if (i == 0 || path.buf[i - 1] != '.') return cm_str_n(NULL, 0);
  return cm_str_n(path.buf + i, path.len - i);
}

static bool ext_eq(struct cm_str a, const char *b, size_t blen) {
  return a.len == blen && strncasecmp(a.buf, b, blen) == 0;
}

/* A type from the custom list must be safe in a header line. */
static bool type_ok(const char *p, size_t n) {
  if (n == 0) return false;
  for (size_t i = 0; i < n; i++) {
    if (!cm__http_is_value_char((unsigned char) p[i])) return false;
  }
  return true;
}

/* Looks ext up in "ext1=type1,ext2=type2" (a leading dot on an extension
 * is allowed, spaces around entries are skipped). */
static bool custom_lookup(const char *list, struct cm_str ext, struct cm_str *out) {
  const char *p = list;
  while (*p != '\0') {
    const char *end = strchr(p, ',');
    if (end == NULL) end = p + strlen(p);
    while (p < end && (*p == ' ' || *p == '\t')) p++;
    const char *eq = memchr(p, '=', (size_t) (end - p));
    if (eq != NULL) {
      const char *e = p;
      if (*e == '.') e++;
      size_t elen = (size_t) (eq - e);
      while (elen > 0 && (e[elen - 1] == ' ' || e[elen - 1] == '\t')) elen--;
      const char *t = eq + 1;
      while (t < end && (*t == ' ' || *t == '\t')) t++;
      size_t tlen = (size_t) (end - t);
      while (tlen > 0 && (t[tlen - 1] == ' ' || t[tlen - 1] == '\t')) tlen--;
      if (ext_eq(ext, e, elen) && type_ok(t, tlen)) {
        *out = cm_str_n(t, tlen);
        return true;
      }
    }
    p = *end == ',' ? end + 1 : end;
  }
  return false;
}

struct cm_str cm_http_mime_type(struct cm_str path, const char *custom) {
  struct cm_str ext = extension(path);
  struct cm_str out;
  if (ext.len > 0 && custom != NULL && custom_lookup(custom, ext, &out)) return out;
  for (size_t i = 0; ext.len > 0 && i < sizeof(builtin) / sizeof(builtin[0]); i++) {
    if (ext_eq(ext, builtin[i].ext, strlen(builtin[i].ext))) return cm_str_c(builtin[i].type);
  }
  return cm_str_c(DEFAULT_TYPE);
}
