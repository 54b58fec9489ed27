/*
 * Where cm_http_serve_dir() finds its files: the root directory opened once
 * per manager, and request paths opened beneath it.
 *
 * A root is opened (O_PATH) the first time a manager serves from it and
 * kept, so a request costs one open of the file itself, never a walk of
 * the root's own path.  Every CM__STATIC_ROOT_CHECK_MS the root's path is
 * stat()ed again: a root that now names another directory (a release
 * directory switched by a symlink, a directory renamed and replaced) is
 * reopened, so deployments are seen within that time.
 *
 * A request path is opened with openat2(RESOLVE_BENEATH |
 * RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS): the kernel resolves it
 * below the root's descriptor in one call, with no window between checking
 * a path and opening it.  Symlinks are refused there on purpose: a link may
 * lead to a hidden name (".git/config") that the request path does not
 * show, and only a walk that sees each step can tell.  So when that call
 * meets a symlink (ELOOP), or when openat2 is missing (kernels before 5.6,
 * ENOSYS; or a seccomp filter that refuses it), the path is walked one
 * component at a time: each opened with O_NOFOLLOW relative to the
 * directory opened before it, each symlink read with readlinkat() and
 * spliced in.  The walk refuses what leaves the root (a ".." above it, an
 * absolute symlink: EXDEV) and hidden segments met on the way (ENOENT).
 * Absolute symlinks are refused even when they point inside the root: the
 * kernel's RESOLVE_BENEATH refuses them too, and their meaning changes
 * when the tree is moved or bind-mounted elsewhere.
 *
 * Setting CYMONGOOSE_NO_OPENAT2 (to anything but "" or "0") in the
 * environment makes roots opened afterwards use only the walk (tests of
 * the fallback, or a kernel whose openat2 misbehaves).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cymongoose.h"
#include "core/internal.h"
#include "core/transport.h"
#include "http/internal.h"

#ifndef SYS_openat2
#define SYS_openat2 437 /* the same number on every architecture */
#endif

/* Symlinks followed while resolving one path (the kernel's limit). */
#define MAX_SYMLINKS 40

struct root {
  struct root *next;
  struct cm__static_root pub;
  dev_t dev;
  ino_t ino;
  uint64_t checked_ms; /* mgr->now_ms when path was last compared with fd */
  char path[];         /* root_dir as the application gave it */
};

/* A manager's roots (mgr->static_roots), most recently used first; closed
 * by cm_mgr_free() through ext. */
struct roots {
  struct cm__mgr_ext ext;
  struct root *head;
};

/* Set once openat2 answered ENOSYS: no later call tries it. */
static int openat2_missing;

static bool env_no_openat2(void) {
  const char *v = getenv("CYMONGOOSE_NO_OPENAT2");
  return v != NULL && *v != '\0' && strcmp(v, "0") != 0;
}

static void root_free(struct root *r) {
  close(r->pub.fd);
  free(r);
}

/* Opens path as a root: r->pub.fd, r->dev, r->ino.  False with errno. */
static bool root_open(struct root *r) {
  int fd = open(r->path, O_PATH | O_DIRECTORY | O_CLOEXEC);
  struct stat st;
  if (fd < 0) return false;
  if (fstat(fd, &st) != 0) {
    int err = errno;
    close(fd);
    errno = err;
    return false;
  }
  r->pub.fd = fd;
  r->dev = st.st_dev;
  r->ino = st.st_ino;
  return true;
}

static void roots_free(struct cm_mgr *mgr) {
  struct roots *rs = mgr->static_roots;
  struct root *r = rs->head;
  while (r != NULL) {
    struct root *next = r->next;
    root_free(r);
    r = next;
  }
  free(rs);
  mgr->static_roots = NULL;
}

static struct roots *roots_of(struct cm_mgr *mgr) {
  if (mgr->static_roots == NULL) {
    struct roots *rs = calloc(1, sizeof(*rs));
    if (rs == NULL) return NULL;
    rs->ext.free = roots_free;
    cm__mgr_ext_add(mgr, &rs->ext);
    mgr->static_roots = rs;
  }
  return mgr->static_roots;
}

const struct cm__static_root *cm__static_root_get(struct cm_mgr *mgr, const char *root_dir) {
  struct roots *rs = roots_of(mgr);
  if (rs == NULL) return NULL; /* errno ENOMEM */
  struct root **link = &rs->head, *r;
  size_t n = 0;
  for (; (r = *link) != NULL; link = &r->next, n++) {
    if (strcmp(r->path, root_dir) == 0) break;
  }
  if (r != NULL) {
    *link = r->next; /* taken out; goes back in front below */
    if (mgr->now_ms - r->checked_ms >= CM__STATIC_ROOT_CHECK_MS || mgr->now_ms < r->checked_ms) {
      struct stat st;
      r->checked_ms = mgr->now_ms;
      if (stat(root_dir, &st) != 0 || st.st_dev != r->dev || st.st_ino != r->ino) {
        int old = r->pub.fd;
        if (!root_open(r)) {
          int err = errno;
          root_free(r);
          errno = err;
          return NULL;
        }
        close(old);
      }
    }
  } else {
    size_t len = strlen(root_dir);
    r = calloc(1, sizeof(*r) + len + 1);
    if (r == NULL) return NULL;
    memcpy(r->path, root_dir, len + 1);
    if (!root_open(r)) {
      int err = errno;
      free(r);
      errno = err;
      return NULL;
    }
    r->checked_ms = mgr->now_ms;
    r->pub.walk_only = env_no_openat2();
    /* Bounded: the least recently used root beyond the limit is closed. */
    if (n >= CM__STATIC_ROOTS_MAX) {
      struct root **last = &rs->head;
      while ((*last)->next != NULL) last = &(*last)->next;
      root_free(*last);
      *last = NULL;
    }
  }
  r->next = rs->head;
  rs->head = r;
  return &r->pub;
}

/* ------------------------------------------------------------ the walk */

/* Appends "/name" (or "name" at the start) to res; false when too long. */
static bool res_push(char *res, size_t *len, size_t cap, const char *name, size_t n) {
  size_t need = *len + (*len > 0) + n + 1;
  if (need > cap) return false;
  if (*len > 0) res[(*len)++] = '/';
  memcpy(res + *len, name, n);
  *len += n;
  res[*len] = '\0';
  return true;
}

/* The directory res names below rootfd, opened again one component at a
 * time without following symlinks (each was a directory a moment ago; one
 * swapped for a symlink since fails).  rootfd itself for "". */
static int reopen_dir(int rootfd, const char *res) {
  int dir = rootfd;
  const char *p = res;
  while (*p != '\0') {
    const char *e = strchr(p, '/');
    size_t n = e != NULL ? (size_t) (e - p) : strlen(p);
    char name[NAME_MAX + 1];
    memcpy(name, p, n);
    name[n] = '\0';
    int fd = openat(dir, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int err = errno;
    if (dir != rootfd) close(dir);
    if (fd < 0) {
      errno = err;
      return -1;
    }
    dir = fd;
    p += n;
    if (*p == '/') p++;
  }
  return dir;
}

/* Resolves rel below rootfd in user space (see the top of the file). */
static int walk(int rootfd, const char *rel, bool allow_hidden, int oflags, char *res, size_t res_cap) {
  char todo[PATH_MAX], spliced[PATH_MAX];
  size_t tlen = strlen(rel), pos = 0, rlen = 0;
  if (tlen >= sizeof(todo) || res_cap == 0) {
    errno = ENAMETOOLONG;
    return -1;
  }
  memcpy(todo, rel, tlen + 1);
  res[0] = '\0';
  int dir = rootfd, links = 0, fd = -1, err = 0;
  for (;;) {
    while (todo[pos] == '/') pos++;
    if (todo[pos] == '\0') { /* the path ends at a directory: open it */
      fd = openat(dir, ".", oflags);
      err = errno;
      break;
    }
    size_t s = pos;
    while (todo[pos] != '\0' && todo[pos] != '/') pos++;
    size_t n = pos - s, after = pos;
    while (todo[after] == '/') after++;
    bool last = todo[after] == '\0';
    if (n == 1 && todo[s] == '.') continue;
    if (n == 2 && todo[s] == '.' && todo[s + 1] == '.') {
      if (rlen == 0) { /* above the root */
        err = EXDEV;
        break;
      }
      char *slash = strrchr(res, '/');
      rlen = slash != NULL ? (size_t) (slash - res) : 0;
      res[rlen] = '\0';
      if (dir != rootfd) close(dir);
      dir = reopen_dir(rootfd, res);
      if (dir < 0) {
        err = errno;
        dir = rootfd;
        break;
      }
      continue;
    }
    if (!allow_hidden && todo[s] == '.') {
      err = ENOENT; /* hidden: as if it were not there */
      break;
    }
    if (n > NAME_MAX) {
      err = ENAMETOOLONG;
      break;
    }
    char name[NAME_MAX + 1];
    memcpy(name, todo + s, n);
    name[n] = '\0';
    /* O_NOFOLLOW: a symlink fails (ELOOP; ENOTDIR with O_DIRECTORY). */
    int next = last ? openat(dir, name, oflags | O_NOFOLLOW)
                    : openat(dir, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (next < 0 && (errno == ELOOP || errno == ENOTDIR)) {
      int open_err = errno;
      char target[PATH_MAX];
      ssize_t k = readlinkat(dir, name, target, sizeof(target) - 1);
      if (k < 0) { /* not a symlink: a file where a directory was wanted */
        err = open_err;
        break;
      }
      if (++links > MAX_SYMLINKS) {
        err = ELOOP;
        break;
      }
      if (k == 0 || target[0] == '/') { /* absolute: refused, see above */
        err = EXDEV;
        break;
      }
      size_t rest = tlen - pos;
      if ((size_t) k + rest + 1 > sizeof(spliced)) {
        err = ENAMETOOLONG;
        break;
      }
      memcpy(spliced, target, (size_t) k);
      memcpy(spliced + k, todo + pos, rest + 1); /* rest starts with '/' or is "" */
      tlen = (size_t) k + rest;
      memcpy(todo, spliced, tlen + 1);
      pos = 0;
      continue;
    }
    if (next < 0) {
      err = errno;
      break;
    }
    if (!res_push(res, &rlen, res_cap, name, n)) {
      close(next);
      err = ENAMETOOLONG;
      break;
    }
    if (last) {
      fd = next;
      break;
    }
    if (dir != rootfd) close(dir);
    dir = next;
  }
  if (dir != rootfd) close(dir);
  if (fd < 0) errno = err;
  return fd;
}

/* ---------------------------------------------------------- openat2 */

int cm__static_open(const struct cm__static_root *root, const char *rel, bool allow_hidden, char *resolved,
                    size_t resolved_cap) {
  int oflags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY;
  if (!root->walk_only && !__atomic_load_n(&openat2_missing, __ATOMIC_RELAXED)) {
    struct open_how how;
    memset(&how, 0, sizeof(how));
    how.flags = (uint64_t) oflags;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS;
    long fd = syscall(SYS_openat2, root->fd, *rel != '\0' ? rel : ".", &how, sizeof(how));
    if (fd >= 0) {
      size_t n = strlen(rel);
      if (n >= resolved_cap) {
        close((int) fd);
        errno = ENAMETOOLONG;
        return -1;
      }
      memcpy(resolved, rel, n + 1); /* no symlink on the way: the path is what was opened */
      return (int) fd;
    }
    if (errno == ENOSYS) __atomic_store_n(&openat2_missing, 1, __ATOMIC_RELAXED);
    /* ELOOP: a symlink on the way, for the walk to judge; EAGAIN: a rename
     * raced the lookup; ENOSYS/EPERM: no openat2 here. */
    if (errno != ELOOP && errno != EAGAIN && errno != ENOSYS && errno != EPERM) return -1;
  }
  return walk(root->fd, rel, allow_hidden, oflags, resolved, resolved_cap);
}
