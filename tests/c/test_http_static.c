/* Static files: the Range and MIME codecs, HTTP dates, and serve_dir /
 * serve_file over real loopback sockets (a raw TCP client and curl). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"
#include "http/internal.h"
#include "peerproc.h"
#include "certgen.h"

/* Internal (src/http/date.c), linked from the static library. */
void cm__http_date_fmt(int64_t t, char buf[32]);
int64_t cm__http_date_parse(struct cm_str s);

/* ------------------------------------------------------------ pure codecs */

static int range(const char *v, uint64_t size, struct cm_http_range *r) {
  return cm_http_parse_range(cm_str_c(v), size, r, 4);
}

static void range_codec(void **state) {
  (void) state;
  struct cm_http_range r[4];
  assert_int_equal(range("bytes=0-99", 1000, r), 1);
  assert_true(r[0].start == 0 && r[0].end == 99);
  assert_int_equal(range("bytes=500-", 1000, r), 1);
  assert_true(r[0].start == 500 && r[0].end == 999);
  assert_int_equal(range("bytes=-100", 1000, r), 1);
  assert_true(r[0].start == 900 && r[0].end == 999);
  assert_int_equal(range("bytes=-5000", 1000, r), 1); /* suffix longer than the file */
  assert_true(r[0].start == 0 && r[0].end == 999);
  assert_int_equal(range("bytes=900-5000", 1000, r), 1); /* end clamped */
  assert_true(r[0].start == 900 && r[0].end == 999);
  assert_int_equal(range("Bytes = 0-0", 1000, r), 0); /* no OWS around '=' */
  assert_int_equal(range("BYTES=0-0", 1000, r), 1);
  assert_int_equal(range("bytes=0-1, 5-6,,10-", 1000, r), 3);
  assert_true(r[1].start == 5 && r[1].end == 6 && r[2].start == 10 && r[2].end == 999);
  /* unsatisfiable -> -1 (416) */
  assert_int_equal(range("bytes=1000-", 1000, r), -1);
  assert_int_equal(range("bytes=-0", 1000, r), -1);
  assert_int_equal(range("bytes=0-", 0, r), -1);
  assert_int_equal(range("bytes=5000-6000, 2000-", 1000, r), -1);
  /* one unsatisfiable among satisfiable ones is dropped */
  assert_int_equal(range("bytes=5000-6000, 1-2", 1000, r), 1);
  /* ignored (whole file): malformed, other units, overlap, order, too many */
  const char *ignored[] = {"", "bytes=", "bytes=-", "bytes=5-1", "bytes=a-b", "bytes=1-2x", "items=0-1",
                           "bytes 0-1", "bytes=0-1;x", "bytes=0-10,5-20", "bytes=10-20,0-5",
                           "bytes=0-0,2-2,4-4,6-6,8-8", "bytes=1--2", "bytes=--1"};
  for (size_t i = 0; i < sizeof(ignored) / sizeof(ignored[0]); i++) {
    if (range(ignored[i], 1000, r) != 0) fail_msg("not ignored: %s", ignored[i]);
  }
  /* huge numbers saturate instead of wrapping */
  assert_int_equal(range("bytes=0-99999999999999999999999999", 1000, r), 1);
  assert_true(r[0].end == 999);
  assert_int_equal(range("bytes=99999999999999999999999999-", 1000, r), -1);
  /* views without a terminator: the parser stops at len */
  char buf[] = "bytes=1-2XXXX";
  assert_int_equal(cm_http_parse_range(cm_str_n(buf, 9), 1000, r, 4), 1);
  assert_int_equal(cm_http_parse_range(cm_str_n(NULL, 0), 1000, r, 4), 0);
}

static void mime_types(void **state) {
  (void) state;
  struct cm_str t = cm_http_mime_type(cm_str_c("/a/b/index.HTML"), NULL);
  assert_true(t.len > 9 && memcmp(t.buf, "text/html", 9) == 0);
  t = cm_http_mime_type(cm_str_c("x.png"), NULL);
  assert_true(t.len == 9 && memcmp(t.buf, "image/png", 9) == 0);
  t = cm_http_mime_type(cm_str_c("noext"), NULL);
  assert_true(t.len == 24 && memcmp(t.buf, "application/octet-stream", 24) == 0);
  t = cm_http_mime_type(cm_str_c("dir.d/noext"), NULL); /* a dot in a directory is no extension */
  assert_true(t.len == 24);
  const char *custom = "foo=application/x-foo, .BAR = text/bar ,png=image/x-custom,evil=a\r\nX: 1";
  t = cm_http_mime_type(cm_str_c("a.foo"), custom);
  assert_true(t.len == 17 && memcmp(t.buf, "application/x-foo", 17) == 0);
  t = cm_http_mime_type(cm_str_c("a.bar"), custom);
  assert_true(t.len == 8 && memcmp(t.buf, "text/bar", 8) == 0);
  t = cm_http_mime_type(cm_str_c("a.png"), custom); /* custom wins */
  assert_true(t.len == 14 && memcmp(t.buf, "image/x-custom", 14) == 0);
  t = cm_http_mime_type(cm_str_c("a.evil"), custom); /* a type with CR/LF is ignored */
  assert_true(t.len == 24);
  t = cm_http_mime_type(cm_str_c("a.txt"), "=,,=x,txt=");
  assert_true(t.len > 10 && memcmp(t.buf, "text/plain", 10) == 0);
}

static void http_dates(void **state) {
  (void) state;
  char buf[32];
  cm__http_date_fmt(784111777, buf);
  assert_string_equal(buf, "Sun, 06 Nov 1994 08:49:37 GMT");
  assert_int_equal(cm__http_date_parse(cm_str_c("Sun, 06 Nov 1994 08:49:37 GMT")), 784111777);
  assert_int_equal(cm__http_date_parse(cm_str_c("Sunday, 06-Nov-94 08:49:37 GMT")), 784111777);
  assert_int_equal(cm__http_date_parse(cm_str_c("Sun Nov  6 08:49:37 1994")), 784111777);
  assert_int_equal(cm__http_date_parse(cm_str_c("Sun, 06 Nov 1994 08:49:37 GMT junk")), -1);
  assert_int_equal(cm__http_date_parse(cm_str_c("Sun, 06 Nov 1994 25:49:37 GMT")), -1);
  assert_int_equal(cm__http_date_parse(cm_str_c("yesterday")), -1);
  assert_int_equal(cm__http_date_parse(cm_str_c("")), -1);
}

/* ------------------------------------------------------------ the files */

static char tmp[256], root[300], outside[300];
static char big_path[300];

static void write_file(const char *dir, const char *name, const void *data, size_t len) {
  char p[600];
  snprintf(p, sizeof(p), "%s/%s", dir, name);
  FILE *f = fopen(p, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(data, 1, len, f), len);
  fclose(f);
}

static void write_str(const char *dir, const char *name, const char *s) {
  write_file(dir, name, s, strlen(s));
}

static unsigned char data_bin[1000];

static void make_tree(void) {
  snprintf(tmp, sizeof(tmp), "/tmp/cm_static_XXXXXX");
  assert_non_null(mkdtemp(tmp));
  snprintf(root, sizeof(root), "%s/root", tmp);
  snprintf(outside, sizeof(outside), "%s/outside", tmp);
  assert_int_equal(mkdir(root, 0755), 0);
  assert_int_equal(mkdir(outside, 0755), 0);
  write_str(tmp, "secret.txt", "TOP SECRET\n");
  write_str(outside, "secret.txt", "TOP SECRET TOO\n");
  write_str(tmp, "404.html", "<h1>custom 404</h1>");
  write_str(root, "hello.txt", "Hello, world!\n");
  write_str(root, "index.html", "<h1>root index</h1>");
  write_str(root, "a.foo", "foo");
  write_str(root, "with space.txt", "spaced");
  write_str(root, "style.css", "body { color: red }");
  write_str(root, "style.css.gz", "GZIPPED-BYTES");
  for (size_t i = 0; i < sizeof(data_bin); i++) data_bin[i] = (unsigned char) (i * 13 + 7);
  write_file(root, "data.bin", data_bin, sizeof(data_bin));
  write_str(root, "empty.txt", "");
  char p[600], q[600];
  snprintf(p, sizeof(p), "%s/sub", root);
  assert_int_equal(mkdir(p, 0755), 0);
  write_str(p, "index.html", "<h1>sub index</h1>");
  snprintf(p, sizeof(p), "%s/noindex", root);
  assert_int_equal(mkdir(p, 0755), 0);
  write_str(p, "file.txt", "in noindex");
  /* symlinks: out of the root (refused), within it (served) */
  snprintf(p, sizeof(p), "%s/leak.txt", root);
  snprintf(q, sizeof(q), "%s/secret.txt", tmp);
  assert_int_equal(symlink(q, p), 0);
  snprintf(p, sizeof(p), "%s/leakdir", root);
  assert_int_equal(symlink(outside, p), 0);
  snprintf(p, sizeof(p), "%s/rel.txt", root);
  assert_int_equal(symlink("../secret.txt", p), 0);
  snprintf(p, sizeof(p), "%s/alias.txt", root);
  assert_int_equal(symlink("hello.txt", p), 0);
  /* a .gz sibling that leads outside must not be used */
  write_str(root, "x.js", "plain js");
  snprintf(p, sizeof(p), "%s/x.js.gz", root);
  assert_int_equal(symlink(q, p), 0);
  snprintf(p, sizeof(p), "%s/fifo", root);
  assert_int_equal(mkfifo(p, 0644), 0);
  /* hidden files, a hidden directory, and a visible name leading to one */
  write_str(root, ".env", "SECRET_KEY=1");
  snprintf(p, sizeof(p), "%s/.git", root);
  assert_int_equal(mkdir(p, 0755), 0);
  write_str(p, "config", "[core] SECRET");
  write_str(p, "index.html", "SECRET index");
  snprintf(p, sizeof(p), "%s/cfg", root);
  assert_int_equal(symlink(".git/config", p), 0);
  /* relative symlinks that stay inside (served), and ones that do not */
  snprintf(p, sizeof(p), "%s/subalias", root);
  assert_int_equal(symlink("sub", p), 0);
  snprintf(p, sizeof(p), "%s/sub/back.txt", root);
  assert_int_equal(symlink("../hello.txt", p), 0);
  snprintf(p, sizeof(p), "%s/up.txt", root);
  assert_int_equal(symlink("sub/../subalias/back.txt", p), 0);
  snprintf(p, sizeof(p), "%s/sub/deep_escape.txt", root);
  assert_int_equal(symlink("../../secret.txt", p), 0);
  snprintf(p, sizeof(p), "%s/sub/via_dir.txt", root);
  assert_int_equal(symlink("../subalias/../../outside/secret.txt", p), 0);
  snprintf(p, sizeof(p), "%s/loop1", root);
  assert_int_equal(symlink("loop2", p), 0);
  snprintf(p, sizeof(p), "%s/loop2", root);
  assert_int_equal(symlink("loop1", p), 0);
  snprintf(p, sizeof(p), "%s/dangling.txt", root);
  assert_int_equal(symlink("nothing.txt", p), 0);
  /* absolute symlinks, even to a file inside the root: refused */
  snprintf(p, sizeof(p), "%s/inside_abs.txt", root);
  snprintf(q, sizeof(q), "%s/hello.txt", root);
  assert_int_equal(symlink(q, p), 0);
  snprintf(big_path, sizeof(big_path), "%s/big.bin", tmp);
}

static void remove_tree(void) {
  char cmd[400];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
  if (tmp[0] != '\0' && system(cmd) != 0) print_error("cleanup of %s failed\n", tmp);
}

/* ------------------------------------------------------------ the server */

static struct cm_mgr mgr;
static uint16_t port;
static int last_status;
static size_t max_send_cap;   /* largest c->send allocation seen on a served connection */
static char page404[400];
static bool allow_hidden;
static bool no_precompressed;
static int fds_before_setup; /* open descriptors before setup() made anything */

static void handler(struct cm_conn *c, int ev, void *ev_data) {
  if (ev == CM_EV_POLL || ev == CM_EV_WRITE) {
    if (c->is_accepted && c->send.cap > max_send_cap) max_send_cap = c->send.cap;
    return;
  }
  if (ev != CM_EV_HTTP_MSG) return;
  struct cm_http_msg *hm = ev_data;
  struct cm_http_serve_dir_opts opts = {
      .root_dir = root,
      .extra_headers = "X-Static: yes\r\nCache-Control: no-cache",
      .mime_types = "foo=application/x-foo",
      .page404 = page404,
      .allow_hidden = allow_hidden,
      .no_precompressed = no_precompressed,
  };
  if (hm->uri.len >= 4 && memcmp(hm->uri.buf, "/big", 4) == 0) {
    last_status = cm_http_serve_file(c, hm, big_path, NULL);
  } else if (hm->uri.len >= 6 && memcmp(hm->uri.buf, "/file/", 6) == 0) {
    char p[600];
    snprintf(p, sizeof(p), "%s/%.*s", tmp, (int) hm->uri.len - 6, hm->uri.buf + 6);
    last_status = cm_http_serve_file(c, hm, p, &opts);
  } else if (hm->uri.len >= 8 && memcmp(hm->uri.buf, "/badhdr/", 8) == 0) {
    struct cm_http_serve_dir_opts bad = {.root_dir = root, .extra_headers = "X: a\r\n\r\nY: b"};
    last_status = cm_http_serve_dir(c, hm, &bad);
  } else if (hm->uri.len >= 8 && memcmp(hm->uri.buf, "/plain4/", 8) == 0) {
    struct cm_http_serve_dir_opts plain = {.root_dir = root};
    last_status = cm_http_serve_dir(c, hm, &plain);
  } else {
    last_status = cm_http_serve_dir(c, hm, &opts);
  }
}

/* Descriptors this process has open. */
static int count_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  assert_non_null(d);
  int n = 0;
  for (struct dirent *e; (e = readdir(d)) != NULL;) {
    if (e->d_name[0] != '.') n++;
  }
  closedir(d);
  return n - 1; /* the directory's own */
}

static int setup(void **state) {
  (void) state;
  fds_before_setup = count_fds();
  make_tree();
  snprintf(page404, sizeof(page404), "%s/404.html", tmp);
  if (cm_mgr_init(&mgr) != 0) return -1;
  struct cm_conn *l = cm_http_listen(&mgr, "http://127.0.0.1:0", handler, NULL, NULL);
  if (l == NULL) return -1;
  port = l->loc.port;
  return 0;
}

static int teardown(void **state) {
  (void) state;
  cm_mgr_free(&mgr);
  remove_tree();
  return 0;
}

/* The same, with request paths resolved by the component walk that stands
 * in for openat2 where the kernel lacks it. */
static int setup_walk(void **state) {
  setenv("CYMONGOOSE_NO_OPENAT2", "1", 1);
  return setup(state);
}

static int teardown_walk(void **state) {
  unsetenv("CYMONGOOSE_NO_OPENAT2");
  return teardown(state);
}

/* ------------------------------------------------------------ the client */

static int client(void) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(fd >= 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(connect(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
  fcntl(fd, F_SETFL, O_NONBLOCK);
  return fd;
}

static void client_send(int fd, const char *s) {
  size_t len = strlen(s);
  for (int spins = 0; len > 0 && spins < 100000; spins++) {
    ssize_t n = send(fd, s, len, MSG_NOSIGNAL);
    if (n > 0) {
      s += n;
      len -= (size_t) n;
    } else {
      cm_mgr_poll(&mgr, 1);
    }
  }
  assert_int_equal(len, 0);
}

struct resp {
  int status;
  char head[8192];
  char body[65536];
  size_t body_len;
  long long content_length;
  bool eof;
};

static char rbuf[1 << 17];
static size_t rlen;

/* Reads one response (the head, then Content-Length bytes unless no_body),
 * polling the server meanwhile; leftover bytes stay in rbuf. */
static void read_resp(int fd, struct resp *r, bool no_body) {
  memset(r, 0, sizeof(*r));
  r->content_length = -1;
  size_t head_len = 0;
  for (int i = 0; i < 2000; i++) {
    char *end = head_len == 0 ? memmem(rbuf, rlen, "\r\n\r\n", 4) : NULL;
    if (end != NULL) {
      head_len = (size_t) (end - rbuf) + 4;
      assert_true(head_len < sizeof(r->head));
      memcpy(r->head, rbuf, head_len);
      r->head[head_len] = '\0';
      sscanf(r->head, "HTTP/1.1 %d", &r->status);
      char *cl = strcasestr(r->head, "\r\nContent-Length: ");
      if (cl != NULL) r->content_length = atoll(cl + 18);
    }
    if (head_len > 0) {
      size_t want = no_body || r->status == 304 || r->content_length < 0 ? 0 : (size_t) r->content_length;
      if (rlen - head_len >= want) {
        assert_true(want < sizeof(r->body));
        memcpy(r->body, rbuf + head_len, want);
        r->body_len = want;
        memmove(rbuf, rbuf + head_len + want, rlen - head_len - want);
        rlen -= head_len + want;
        return;
      }
    }
    cm_mgr_poll(&mgr, 2);
    ssize_t n = recv(fd, rbuf + rlen, sizeof(rbuf) - rlen, 0);
    if (n > 0) rlen += (size_t) n;
    if (n == 0) {
      r->eof = true;
      break;
    }
  }
  fail_msg("incomplete response: %.*s", (int) (rlen < 300 ? rlen : 300), rbuf);
}

static struct resp R;

/* One request on a fresh connection. */
static struct resp *get(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static struct resp *get(const char *fmt, ...) {
  char req[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(req, sizeof(req), fmt, ap);
  va_end(ap);
  int fd = client();
  rlen = 0;
  client_send(fd, req);
  read_resp(fd, &R, strncmp(req, "HEAD ", 5) == 0);
  close(fd);
  return &R;
}

static const char *header(struct resp *r, const char *name) {
  static char v[512];
  char pat[128];
  snprintf(pat, sizeof(pat), "\r\n%s: ", name);
  char *p = strcasestr(r->head, pat);
  if (p == NULL) return NULL;
  p += strlen(pat);
  size_t n = strcspn(p, "\r");
  snprintf(v, sizeof(v), "%.*s", (int) n, p);
  return v;
}

#define H "HTTP/1.1\r\nHost: x\r\n"

/* ----------------------------------------------------------------- tests */

static void basic_files(void **state) {
  (void) state;
  struct resp *r = get("GET /hello.txt " H "\r\n");
  assert_int_equal(r->status, 200);
  assert_int_equal(last_status, 200);
  assert_string_equal(r->body, "Hello, world!\n");
  assert_string_equal(header(r, "Content-Type"), "text/plain; charset=utf-8");
  assert_string_equal(header(r, "Content-Length"), "14");
  assert_string_equal(header(r, "X-Static"), "yes");
  assert_string_equal(header(r, "Cache-Control"), "no-cache");
  assert_string_equal(header(r, "Accept-Ranges"), "bytes");
  assert_non_null(header(r, "ETag"));
  assert_non_null(header(r, "Last-Modified"));
  assert_null(header(r, "Vary"));
  /* custom MIME map, percent-encoded names, symlink inside the root, empty file */
  r = get("GET /a.foo " H "\r\n");
  assert_string_equal(header(r, "Content-Type"), "application/x-foo");
  r = get("GET /with%%20space.txt " H "\r\n");
  assert_string_equal(r->body, "spaced");
  r = get("GET /alias.txt?x=1 " H "\r\n");
  assert_string_equal(r->body, "Hello, world!\n");
  r = get("GET http://x/with%%20space.txt " H "\r\n"); /* absolute-form */
  assert_string_equal(r->body, "spaced");
  r = get("GET http://x " H "\r\n");
  assert_string_equal(r->body, "<h1>root index</h1>");
  r = get("GET http://x/../secret.txt " H "\r\n");
  assert_int_equal(r->status, 403);
  r = get("GET /empty.txt " H "\r\n");
  assert_int_equal(r->status, 200);
  assert_string_equal(header(r, "Content-Length"), "0");
  /* HEAD: the headers of GET, no body */
  r = get("HEAD /hello.txt " H "\r\n");
  assert_int_equal(r->status, 200);
  assert_string_equal(header(r, "Content-Length"), "14");
  /* other methods */
  r = get("POST /hello.txt " H "Content-Length: 0\r\n\r\n");
  assert_int_equal(r->status, 405);
  assert_string_equal(header(r, "Allow"), "GET, HEAD");
}

static void directories(void **state) {
  (void) state;
  struct resp *r = get("GET / " H "\r\n");
  assert_int_equal(r->status, 200);
  assert_string_equal(r->body, "<h1>root index</h1>");
  assert_string_equal(header(r, "Content-Type"), "text/html; charset=utf-8");
  r = get("GET /sub " H "\r\n");
  assert_int_equal(r->status, 301);
  assert_string_equal(header(r, "Location"), "/sub/");
  r = get("GET /sub?a=b " H "\r\n");
  assert_string_equal(header(r, "Location"), "/sub/?a=b");
  r = get("GET //sub " H "\r\n"); /* not "//sub/": another host to a browser */
  assert_int_equal(r->status, 301);
  assert_string_equal(header(r, "Location"), "/sub/");
  r = get("GET /sub/ " H "\r\n");
  assert_string_equal(r->body, "<h1>sub index</h1>");
  r = get("GET /noindex/ " H "\r\n");
  assert_int_equal(r->status, 403);
  assert_null(strstr(r->body, "file.txt")); /* no listing */
  r = get("GET /noindex/file.txt " H "\r\n");
  assert_string_equal(r->body, "in noindex");
}

static void not_found_pages(void **state) {
  (void) state;
  struct resp *r = get("GET /missing.txt " H "\r\n");
  assert_int_equal(r->status, 404);
  assert_string_equal(r->body, "<h1>custom 404</h1>");
  assert_string_equal(header(r, "Content-Type"), "text/html; charset=utf-8");
  assert_string_equal(header(r, "X-Static"), "yes");
  r = get("GET /plain4/missing.txt " H "\r\n");
  assert_int_equal(r->status, 404);
  assert_string_equal(r->body, "Not Found\n");
  r = get("GET /hello.txt/more " H "\r\n");
  assert_int_equal(r->status, 404);
  r = get("HEAD /missing " H "\r\n");
  assert_int_equal(r->status, 404);
  /* a file is no directory: a trailing slash (or "/.") does not name it */
  const char *slashed[] = {"/hello.txt/", "/hello.txt//", "/hello.txt/.", "/hello.txt%2f", "/sub/index.html/"};
  for (size_t i = 0; i < sizeof(slashed) / sizeof(slashed[0]); i++) {
    r = get("GET %s " H "\r\n", slashed[i]);
    if (r->status != 404) fail_msg("%s: got %d", slashed[i], r->status);
  }
}

/* Dotfiles (.env, .git/) are not served unless the application allows it. */
static void hidden_files(void **state) {
  (void) state;
  const char *hidden[] = {"/.env", "/%2eenv", "/.git/config", "/.git/", "/.git", "/sub/../.env",
                          "/./.env", "/cfg", "/.git/index.html"};
  for (size_t i = 0; i < sizeof(hidden) / sizeof(hidden[0]); i++) {
    struct resp *r = get("GET %s " H "\r\n", hidden[i]);
    int want = strstr(hidden[i], "..") != NULL ? 403 : 404;
    if (r->status != want) fail_msg("%s: got %d", hidden[i], r->status);
    assert_null(strstr(r->body, "SECRET"));
  }
  allow_hidden = true;
  struct resp *r = get("GET /.env " H "\r\n");
  assert_int_equal(r->status, 200);
  assert_string_equal(r->body, "SECRET_KEY=1");
  r = get("GET /cfg " H "\r\n");
  assert_string_equal(r->body, "[core] SECRET");
  allow_hidden = false;
}

static void traversal(void **state) {
  (void) state;
  struct {
    const char *uri;
    int status;
  } cases[] = {
      {"/../secret.txt", 403},
      {"/sub/../../secret.txt", 403},
      {"/%2e%2e/secret.txt", 403},
      {"/%2E%2E/secret.txt", 403},
      {"/..%2fsecret.txt", 403},
      {"/sub%2f..%2f..%2fsecret.txt", 403},
      {"/.%2e/secret.txt", 403},
      {"/%2e%2e%5csecret.txt", 403},
      {"/..\\secret.txt", 403},
      {"/hello.txt%00.png", 400}, /* the server refuses an escaped NUL in any path */
      {"/leak.txt", 403},
      {"/rel.txt", 403},
      {"/leakdir/secret.txt", 403},
      {"/leakdir/", 403},
      {"/fifo", 403},
      {"/%zz", 400},
      {"/%", 400},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    struct resp *r = get("GET %s " H "\r\n", cases[i].uri);
    if (r->status != cases[i].status) fail_msg("%s: got %d", cases[i].uri, r->status);
    assert_null(strstr(r->body, "SECRET"));
  }
  /* a ".gz" sibling leading outside the root is not used */
  struct resp *r = get("GET /x.js " H "Accept-Encoding: gzip\r\n\r\n");
  assert_int_equal(r->status, 200);
  assert_string_equal(r->body, "plain js");
  assert_null(header(r, "Content-Encoding"));
  /* serve_file on a directory or a missing path */
  r = get("GET /file/outside " H "\r\n");
  assert_int_equal(r->status, 403);
  r = get("GET /file/nothing " H "\r\n");
  assert_int_equal(r->status, 404);
  r = get("GET /file/secret.txt " H "\r\n"); /* serve_file: any path the app picks */
  assert_string_equal(r->body, "TOP SECRET\n");
  /* malformed extra headers: a 500, never injected */
  r = get("GET /badhdr/hello.txt " H "\r\n");
  assert_int_equal(r->status, 500);
  assert_null(header(r, "Y"));
}

static void ranges(void **state) {
  (void) state;
  struct resp *r = get("GET /data.bin " H "Range: bytes=10-19\r\n\r\n");
  assert_int_equal(r->status, 206);
  assert_string_equal(header(r, "Content-Range"), "bytes 10-19/1000");
  assert_int_equal(r->body_len, 10);
  assert_memory_equal(r->body, data_bin + 10, 10);
  r = get("GET /data.bin " H "Range: bytes=-3\r\n\r\n");
  assert_string_equal(header(r, "Content-Range"), "bytes 997-999/1000");
  assert_memory_equal(r->body, data_bin + 997, 3);
  r = get("GET /data.bin " H "Range: bytes=2000-\r\n\r\n");
  assert_int_equal(r->status, 416);
  assert_string_equal(header(r, "Content-Range"), "bytes */1000");
  r = get("GET /data.bin " H "Range: bytes=5-1\r\n\r\n"); /* invalid: ignored */
  assert_int_equal(r->status, 200);
  assert_int_equal(r->body_len, 1000);
  r = get("GET /data.bin " H "Range: bytes=0-10,5-20\r\n\r\n"); /* overlap: whole file */
  assert_int_equal(r->status, 200);
  r = get("HEAD /data.bin " H "Range: bytes=0-9\r\n\r\n"); /* Range is for GET only */
  assert_int_equal(r->status, 200);
  /* several ranges: multipart/byteranges */
  r = get("GET /data.bin " H "Range: bytes=0-1, 100-102, 998-\r\n\r\n");
  assert_int_equal(r->status, 206);
  const char *ct = header(r, "Content-Type");
  assert_non_null(strstr(ct, "multipart/byteranges; boundary="));
  char boundary[80];
  snprintf(boundary, sizeof(boundary), "--%s", strstr(ct, "boundary=") + 9);
  assert_int_equal(r->body_len, (size_t) r->content_length);
  const char *p = r->body;
  const char *want[] = {"Content-Range: bytes 0-1/1000", "Content-Range: bytes 100-102/1000",
                        "Content-Range: bytes 998-999/1000"};
  size_t offs[] = {0, 100, 998}, lens[] = {2, 3, 2};
  for (int i = 0; i < 3; i++) {
    p = strstr(p, boundary);
    assert_non_null(p);
    const char *cr = strstr(p, want[i]);
    assert_non_null(cr);
    const char *data = strstr(cr, "\r\n\r\n") + 4;
    assert_memory_equal(data, data_bin + offs[i], lens[i]);
    assert_memory_equal(data + lens[i], "\r\n--", 4);
    p = data + lens[i];
  }
  char closing[90];
  snprintf(closing, sizeof(closing), "\r\n%s--\r\n", boundary);
  assert_int_equal(memcmp(r->body + r->body_len - strlen(closing), closing, strlen(closing)), 0);
  /* If-Range: a matching ETag serves the range, another one the whole file */
  r = get("GET /data.bin " H "\r\n");
  char etag[64];
  snprintf(etag, sizeof(etag), "%s", header(r, "ETag"));
  r = get("GET /data.bin " H "Range: bytes=0-0\r\nIf-Range: %s\r\n\r\n", etag);
  assert_int_equal(r->status, 206);
  r = get("GET /data.bin " H "Range: bytes=0-0\r\nIf-Range: \"other\"\r\n\r\n");
  assert_int_equal(r->status, 200);
}

static void conditionals(void **state) {
  (void) state;
  struct resp *r = get("GET /hello.txt " H "\r\n");
  char etag[64], lm[64];
  snprintf(etag, sizeof(etag), "%s", header(r, "ETag"));
  snprintf(lm, sizeof(lm), "%s", header(r, "Last-Modified"));
  r = get("GET /hello.txt " H "If-None-Match: %s\r\n\r\n", etag);
  assert_int_equal(r->status, 304);
  assert_int_equal(r->body_len, 0);
  assert_string_equal(header(r, "ETag"), etag);
  assert_null(header(r, "Content-Length"));
  r = get("GET /hello.txt " H "If-None-Match: \"a\", W/%s\r\n\r\n", etag);
  assert_int_equal(r->status, 304); /* weak comparison */
  r = get("GET /hello.txt " H "If-None-Match: *\r\n\r\n");
  assert_int_equal(r->status, 304);
  r = get("GET /hello.txt " H "If-None-Match: \"nope\"\r\n\r\n");
  assert_int_equal(r->status, 200);
  r = get("GET /hello.txt " H "If-Modified-Since: %s\r\n\r\n", lm);
  assert_int_equal(r->status, 304);
  r = get("GET /hello.txt " H "If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n");
  assert_int_equal(r->status, 200);
  r = get("GET /hello.txt " H "If-Modified-Since: garbage\r\n\r\n");
  assert_int_equal(r->status, 200);
  /* If-None-Match wins over If-Modified-Since */
  r = get("GET /hello.txt " H "If-None-Match: \"nope\"\r\nIf-Modified-Since: %s\r\n\r\n", lm);
  assert_int_equal(r->status, 200);
}

static void gzip_siblings(void **state) {
  (void) state;
  struct resp *r = get("GET /style.css " H "Accept-Encoding: br, gzip\r\n\r\n");
  assert_int_equal(r->status, 200);
  assert_string_equal(r->body, "GZIPPED-BYTES");
  assert_string_equal(header(r, "Content-Encoding"), "gzip");
  assert_string_equal(header(r, "Content-Type"), "text/css; charset=utf-8");
  assert_string_equal(header(r, "Vary"), "Accept-Encoding");
  char gz_etag[64];
  snprintf(gz_etag, sizeof(gz_etag), "%s", header(r, "ETag"));
  /* A client that does not accept gzip gets the file, and no Vary: the
   * sibling is not even looked for (a cache that keeps this reply for
   * every client still hands out a correct representation). */
  r = get("GET /style.css " H "\r\n");
  assert_string_equal(r->body, "body { color: red }");
  assert_null(header(r, "Content-Encoding"));
  assert_null(header(r, "Vary"));
  assert_string_not_equal(header(r, "ETag"), gz_etag);
  r = get("GET /style.css " H "Accept-Encoding: gzip;q=0, deflate\r\n\r\n");
  assert_string_equal(r->body, "body { color: red }");
  r = get("GET /style.css " H "Accept-Encoding: *\r\n\r\n");
  assert_string_equal(r->body, "GZIPPED-BYTES");
  r = get("GET /style.css " H "Accept-Encoding: gzip\r\nRange: bytes=0-3\r\n\r\n");
  assert_int_equal(r->status, 206);
  assert_string_equal(r->body, "GZIP");
  /* the index of a directory has its sibling looked for too */
  r = get("GET /sub/ " H "Accept-Encoding: gzip\r\n\r\n");
  assert_string_equal(r->body, "<h1>sub index</h1>");
  /* the option turns siblings off */
  no_precompressed = true;
  r = get("GET /style.css " H "Accept-Encoding: gzip\r\n\r\n");
  assert_string_equal(r->body, "body { color: red }");
  assert_null(header(r, "Content-Encoding"));
  no_precompressed = false;
}

/* Symlinks below the root are followed while they are relative and stay
 * below it; absolute ones (even to a file inside) and ones that climb out
 * are refused, a loop too. */
static void symlinks(void **state) {
  (void) state;
  struct {
    const char *uri;
    int status;
    const char *body;
  } cases[] = {
      {"/alias.txt", 200, "Hello, world!\n"},
      {"/sub/back.txt", 200, "Hello, world!\n"},
      {"/up.txt", 200, "Hello, world!\n"},
      {"/subalias/", 200, "<h1>sub index</h1>"},
      {"/subalias/index.html", 200, "<h1>sub index</h1>"},
      {"/subalias/back.txt", 200, "Hello, world!\n"},
      {"/subalias", 301, ""},
      {"/inside_abs.txt", 403, NULL},
      {"/leak.txt", 403, NULL},
      {"/rel.txt", 403, NULL},
      {"/sub/deep_escape.txt", 403, NULL},
      {"/sub/via_dir.txt", 403, NULL},
      {"/leakdir/secret.txt", 403, NULL},
      {"/leakdir/", 403, NULL},
      {"/loop1", 403, NULL},
      {"/loop1/x", 403, NULL},
      {"/dangling.txt", 404, NULL},
      {"/alias.txt/", 404, NULL},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    struct resp *r = get("GET %s " H "\r\n", cases[i].uri);
    if (r->status != cases[i].status) fail_msg("%s: got %d", cases[i].uri, r->status);
    if (cases[i].body != NULL && strcmp(r->body, cases[i].body) != 0) {
      fail_msg("%s: body %s", cases[i].uri, r->body);
    }
    assert_null(strstr(r->body, "SECRET"));
  }
  /* the type is the file's, found at the end of the links */
  struct resp *r = get("GET /subalias/ " H "\r\n");
  assert_string_equal(header(r, "Content-Type"), "text/html; charset=utf-8");
}

/* Which resolver the roots of this manager use: the tests registered with
 * setup_walk must run the walk, the others openat2 (where it exists). */
static void resolver_in_use(void **state) {
  bool walk = *state != NULL;
  const struct cm__static_root *r = cm__static_root_get(&mgr, root);
  assert_non_null(r);
  assert_int_equal(r->walk_only, walk);
}

/* The root is opened once and kept; a root replaced on disk is reopened;
 * the manager closes every root it kept, and keeps at most
 * CM__STATIC_ROOTS_MAX of them. */
static int settled_fds(void) {
  for (int i = 0; i < 1000 && mgr.nconns > 1; i++) cm_mgr_poll(&mgr, 1); /* served connections closed */
  assert_int_equal(mgr.nconns, 1);
  return count_fds();
}

static void root_cache(void **state) {
  (void) state;
  int n0 = settled_fds();
  struct resp *r = get("GET /hello.txt " H "\r\n");
  assert_int_equal(r->status, 200);
  assert_int_equal(settled_fds(), n0 + 1);
  const struct cm__static_root *first = cm__static_root_get(&mgr, root);
  int root_fd = first->fd;
  for (int i = 0; i < 5; i++) {
    r = get("GET /sub/ " H "\r\n");
    assert_int_equal(r->status, 200);
  }
  assert_int_equal(settled_fds(), n0 + 1);
  assert_int_equal(cm__static_root_get(&mgr, root)->fd, root_fd);
  /* many roots: the least recently used are closed */
  char p[600];
  for (int i = 0; i < CM__STATIC_ROOTS_MAX + 4; i++) {
    snprintf(p, sizeof(p), "%s/root%d", tmp, i);
    assert_int_equal(mkdir(p, 0755), 0);
    assert_non_null(cm__static_root_get(&mgr, p));
  }
  assert_int_equal(settled_fds(), n0 + CM__STATIC_ROOTS_MAX);
  snprintf(p, sizeof(p), "%s/missing-root", tmp);
  assert_null(cm__static_root_get(&mgr, p));
  /* the root replaced by another directory (as a deployment does): served
   * from the new one once the kept descriptor is checked again */
  r = get("GET /hello.txt " H "\r\n");
  assert_string_equal(r->body, "Hello, world!\n");
  snprintf(p, sizeof(p), "%s/root.old", tmp);
  assert_int_equal(rename(root, p), 0);
  assert_int_equal(mkdir(root, 0755), 0);
  write_str(root, "hello.txt", "new release");
  bool renewed = false;
  for (int i = 0; i < 100 && !renewed; i++) { /* the check runs every CM__STATIC_ROOT_CHECK_MS */
    r = get("GET /hello.txt " H "\r\n");
    renewed = strcmp(r->body, "new release") == 0;
    if (!renewed) usleep(50 * 1000);
  }
  assert_true(renewed);
  /* nothing left open once the manager is freed */
  cm_mgr_free(&mgr);
  assert_int_equal(count_fds(), fds_before_setup);
}

/* Waits for the server to close the connection, with nothing more sent. */
static void expect_eof(int fd) {
  bool eof = false;
  assert_int_equal(rlen, 0);
  for (int i = 0; i < 500 && !eof; i++) {
    cm_mgr_poll(&mgr, 2);
    char b[16];
    ssize_t n = recv(fd, b, sizeof(b), 0);
    assert_true(n <= 0);
    eof = n == 0;
  }
  assert_true(eof);
}

/* Responses to pipelined requests keep their order behind streamed files. */
static void pipelining(void **state) {
  (void) state;
  int fd = client();
  rlen = 0;
  client_send(fd, "GET /data.bin " H "\r\nGET /hello.txt " H "\r\nHEAD /data.bin " H
                  "\r\nGET /missing " H "\r\nGET /sub/ " H "Connection: close\r\n\r\n");
  struct resp r;
  read_resp(fd, &r, false);
  assert_int_equal(r.body_len, 1000);
  assert_memory_equal(r.body, data_bin, 1000);
  read_resp(fd, &r, false);
  assert_string_equal(r.body, "Hello, world!\n");
  read_resp(fd, &r, true);
  assert_string_equal(header(&r, "Content-Length"), "1000");
  read_resp(fd, &r, false);
  assert_int_equal(r.status, 404);
  read_resp(fd, &r, false);
  assert_string_equal(r.body, "<h1>sub index</h1>");
  assert_string_equal(header(&r, "Connection"), "close");
  expect_eof(fd);
  close(fd);
}

/* A client that half-closes after its pipelined requests gets every
 * answer, even when the first is a file too big to go out at once. */
static void pipelining_half_close(void **state) {
  (void) state;
  const uint64_t size = 32ull * 1024 * 1024;
  int bfd = open(big_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  assert_true(bfd >= 0);
  assert_int_equal(ftruncate(bfd, (off_t) size), 0);
  close(bfd);
  int fd = client();
  rlen = 0;
  client_send(fd, "GET /big " H "\r\nGET /hello.txt " H "\r\nGET /sub/ " H "\r\n");
  shutdown(fd, SHUT_WR);
  for (int i = 0; i < 20; i++) cm_mgr_poll(&mgr, 1); /* the server sees it all before we read */
  /* the big reply: its head, then size bytes */
  struct resp r;
  uint64_t body = 0;
  bool in_body = false;
  static char buf[1 << 16];
  for (int spins = 0; body < size && spins < 2000000; spins++) {
    cm_mgr_poll(&mgr, 0);
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n == 0) break;
    if (n < 0) continue;
    size_t k = 0;
    if (!in_body) {
      assert_true(rlen + (size_t) n < sizeof(rbuf));
      memcpy(rbuf + rlen, buf, (size_t) n);
      rlen += (size_t) n;
      char *end = memmem(rbuf, rlen, "\r\n\r\n", 4);
      if (end == NULL) continue;
      in_body = true;
      k = (size_t) (end - rbuf) + 4;
      memmove(buf, rbuf + k, rlen - k);
      n = (ssize_t) (rlen - k);
      k = 0;
      rlen = 0;
    }
    uint64_t m = (uint64_t) n - k;
    if (body + m > size) { /* the next replies begin in this read */
      size_t extra = (size_t) (body + m - size);
      memcpy(rbuf, buf + (size_t) n - extra, extra);
      rlen = extra;
      m -= extra;
    }
    body += m;
  }
  assert_true(body == size);
  read_resp(fd, &r, false);
  assert_string_equal(r.body, "Hello, world!\n");
  read_resp(fd, &r, false);
  assert_string_equal(r.body, "<h1>sub index</h1>");
  expect_eof(fd);
  close(fd);
  unlink(big_path);
}

/* A 100 MB file, streamed with sendfile: arrives intact while the server's
 * send buffer stays small. */
static void big_file(void **state) {
  (void) state;
  const uint64_t size = 100ull * 1024 * 1024;
  int bfd = open(big_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  assert_true(bfd >= 0);
  assert_int_equal(ftruncate(bfd, (off_t) size), 0); /* sparse: zeros cost no disk */
  /* markers, so that a shifted or truncated stream shows */
  for (uint64_t off = 0; off < size; off += 7 * 1024 * 1024 + 13) {
    char m[32];
    int n = snprintf(m, sizeof(m), "@%llu@", (unsigned long long) off);
    assert_int_equal(pwrite(bfd, m, (size_t) n, (off_t) off), n);
  }
  close(bfd);
  max_send_cap = 0;
  int fd = client();
  client_send(fd, "GET /big " H "\r\n");
  int rfd = open(big_path, O_RDONLY | O_CLOEXEC);
  static char got[1 << 16], want[1 << 16];
  char headbuf[4096];
  size_t hl = 0;
  bool in_body = false;
  uint64_t body = 0;
  for (int spins = 0; body < size && spins < 2000000; spins++) {
    cm_mgr_poll(&mgr, 0);
    ssize_t n = recv(fd, got, sizeof(got), 0);
    if (n == 0) break;
    if (n < 0) continue;
    size_t k = 0;
    while (!in_body && k < (size_t) n) { /* the head, up to CRLFCRLF */
      assert_true(hl < sizeof(headbuf) - 1);
      headbuf[hl++] = got[k++];
      headbuf[hl] = '\0';
      in_body = hl >= 4 && memcmp(headbuf + hl - 4, "\r\n\r\n", 4) == 0;
    }
    size_t m = (size_t) n - k;
    if (m == 0) continue;
    assert_int_equal(pread(rfd, want, m, (off_t) body), (ssize_t) m);
    if (memcmp(got + k, want, m) != 0) fail_msg("mismatch near offset %llu", (unsigned long long) body);
    body += m;
  }
  close(rfd);
  close(fd);
  assert_non_null(strstr(headbuf, "Content-Length: 104857600\r\n"));
  assert_true(body == size);
  /* the body never went through c->send */
  if (max_send_cap > 64 * 1024) fail_msg("send buffer grew to %zu", max_send_cap);
  unlink(big_path);
}

/* ------------------------------------------------------ curl, a real peer */

static const char *curl(const char *const *args, int *status) {
  static char url[256];
  const char *argv[32];
  int n = 0;
  argv[n++] = "curl";
  argv[n++] = "-s";
  for (; *args != NULL && n < 30; args++) {
    if (strstr(*args, "%u") != NULL) {
      snprintf(url, sizeof(url), *args, (unsigned) port);
      argv[n++] = url;
    } else {
      argv[n++] = *args;
    }
  }
  argv[n] = NULL;
  return peer_run_polling(&mgr, argv, status);
}

static void with_curl(void **state) {
  (void) state;
  int st;
  const char *a1[] = {"http://127.0.0.1:%u/hello.txt", NULL};
  assert_string_equal(curl(a1, &st), "Hello, world!\n");
  assert_int_equal(WEXITSTATUS(st), 0);
  const char *a2[] = {"-r", "7-11", "http://127.0.0.1:%u/hello.txt", NULL};
  assert_string_equal(curl(a2, &st), "world");
  /* curl's --path-as-is sends the dots unnormalised */
  const char *a3[] = {"--path-as-is", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:%u/../secret.txt", NULL};
  assert_string_equal(curl(a3, &st), "403");
  const char *a4[] = {"-I", "http://127.0.0.1:%u/sub/", NULL};
  const char *out = curl(a4, &st);
  assert_non_null(strstr(out, "HTTP/1.1 200"));
  assert_non_null(strstr(out, "Content-Length: 18"));
  const char *a5[] = {"-L", "http://127.0.0.1:%u/sub", NULL};
  assert_string_equal(curl(a5, &st), "<h1>sub index</h1>");
  /* two files over one keep-alive connection */
  const char *a6[] = {"http://127.0.0.1:%u/hello.txt", "http://127.0.0.1:%u/hello.txt", NULL};
  assert_string_equal(curl(a6, &st), "Hello, world!\nHello, world!\n");
}

/* Over TLS the file cannot go through sendfile: it is read in bounded
 * chunks into c->send and encrypted from there. */
static void over_tls(void **state) {
  (void) state;
  (void) certgen_concat; /* not needed here */
  int64_t day = 24 * 3600;
  struct test_cert ca = certgen(false, "Static CA", NULL, true, -day, day);
  struct test_cert leaf = certgen(false, "localhost", &ca, false, -day, day);
  struct cm_conn *l = cm_http_listen(&mgr, "http://127.0.0.1:0", handler, NULL, NULL);
  assert_non_null(l);
  struct cm_tls_opts so = {.cert = cm_str_c(leaf.cert_pem), .key = cm_str_c(leaf.key_pem)};
  char err[300];
  assert_int_equal(cm_tls_listen_opts(l, &so, err, sizeof(err)), 0);
  uint16_t plain_port = port;
  port = l->loc.port;
  /* a 5 MB file with a pattern, through curl over TLS */
  const size_t size = 5 * 1024 * 1024 + 17;
  unsigned char *data = malloc(size);
  for (size_t i = 0; i < size; i++) data[i] = (unsigned char) ((i * 31) ^ (i >> 11));
  int bfd = open(big_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  assert_int_equal(write(bfd, data, size), (ssize_t) size);
  close(bfd);
  char out[400];
  snprintf(out, sizeof(out), "%s/tls_download", tmp);
  max_send_cap = 0;
  int st;
  const char *a1[] = {"-k", "-o", out, "https://127.0.0.1:%u/big", NULL};
  curl(a1, &st);
  assert_int_equal(WEXITSTATUS(st), 0);
  int fd = open(out, O_RDONLY | O_CLOEXEC);
  assert_true(fd >= 0);
  unsigned char *got = malloc(size + 1);
  ssize_t n = read(fd, got, size + 1);
  close(fd);
  assert_int_equal(n, (ssize_t) size);
  assert_memory_equal(got, data, size);
  if (max_send_cap > 256 * 1024) fail_msg("send buffer grew to %zu", max_send_cap);
  /* Again with "Connection: close": close_notify must wait for the whole
   * file, not go out the first time c->send runs empty between chunks. */
  unlink(out);
  const char *a1c[] = {"-k", "-H", "Connection: close", "-o", out, "https://127.0.0.1:%u/big", NULL};
  curl(a1c, &st);
  assert_int_equal(WEXITSTATUS(st), 0);
  fd = open(out, O_RDONLY | O_CLOEXEC);
  assert_true(fd >= 0);
  n = read(fd, got, size + 1);
  close(fd);
  assert_int_equal(n, (ssize_t) size);
  assert_memory_equal(got, data, size);
  /* ranges and directory files over TLS */
  const char *a2[] = {"-k", "-r", "7-11", "https://127.0.0.1:%u/hello.txt", NULL};
  assert_string_equal(curl(a2, &st), "world");
  const char *a4[] = {"-k", "https://127.0.0.1:%u/sub/", NULL};
  assert_string_equal(curl(a4, &st), "<h1>sub index</h1>");
  free(got);
  free(data);
  unlink(out);
  unlink(big_path);
  port = plain_port;
  certgen_free(&leaf);
  certgen_free(&ca);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(range_codec),
      cmocka_unit_test(mime_types),
      cmocka_unit_test(http_dates),
      cmocka_unit_test_setup_teardown(basic_files, setup, teardown),
      cmocka_unit_test_setup_teardown(directories, setup, teardown),
      cmocka_unit_test_setup_teardown(not_found_pages, setup, teardown),
      cmocka_unit_test_setup_teardown(traversal, setup, teardown),
      cmocka_unit_test_setup_teardown(hidden_files, setup, teardown),
      cmocka_unit_test_setup_teardown(ranges, setup, teardown),
      cmocka_unit_test_setup_teardown(conditionals, setup, teardown),
      cmocka_unit_test_setup_teardown(gzip_siblings, setup, teardown),
      cmocka_unit_test_setup_teardown(pipelining, setup, teardown),
      cmocka_unit_test_setup_teardown(pipelining_half_close, setup, teardown),
      cmocka_unit_test_setup_teardown(big_file, setup, teardown),
      cmocka_unit_test_setup_teardown(with_curl, setup, teardown),
      cmocka_unit_test_setup_teardown(over_tls, setup, teardown),
      cmocka_unit_test_setup_teardown(symlinks, setup, teardown),
      cmocka_unit_test_setup_teardown(root_cache, setup, teardown),
      cmocka_unit_test_prestate_setup_teardown(resolver_in_use, setup, teardown, NULL),
      /* the same requests through the walk (kernels without openat2) */
      cmocka_unit_test_prestate_setup_teardown(resolver_in_use, setup_walk, teardown_walk, "walk"),
      cmocka_unit_test_setup_teardown(basic_files, setup_walk, teardown_walk),
      cmocka_unit_test_setup_teardown(directories, setup_walk, teardown_walk),
      cmocka_unit_test_setup_teardown(not_found_pages, setup_walk, teardown_walk),
      cmocka_unit_test_setup_teardown(traversal, setup_walk, teardown_walk),
      cmocka_unit_test_setup_teardown(hidden_files, setup_walk, teardown_walk),
      cmocka_unit_test_setup_teardown(gzip_siblings, setup_walk, teardown_walk),
      cmocka_unit_test_setup_teardown(symlinks, setup_walk, teardown_walk),
      cmocka_unit_test_setup_teardown(root_cache, setup_walk, teardown_walk),
  };
  return cmocka_run_group_tests_name("http_static", tests, NULL, NULL);
}
