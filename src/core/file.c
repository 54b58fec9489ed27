/*
 * Files queued on a connection (cm_send_file): streamed after c->send
 * without ever holding a whole file in memory.
 *
 * A connection keeps a FIFO of file ranges.  Bytes that cm_send() queues
 * while files are waiting go into the "after" buffer of the last file, so
 * output keeps the order in which it was queued:
 *
 *   c->send | file 1 | file1.after | file 2 | file2.after ...
 *
 * The write step (cm__conn_write) calls cm__files_write() once c->send is
 * empty; what to do with the connection afterwards (flush again, close,
 * fail) is decided there: this file only moves bytes.  When the transport can (a plain socket, through its send_file:
 * sendfile(2)) the file goes to the socket directly
 * until the socket refuses (EAGAIN: the usual writability wait follows,
 * which is our backpressure) or a per-step budget is spent (fairness: the
 * connection is queued for the next flush round instead).  Under TLS the
 * bytes must pass through the encryption layer, so one chunk at a time is
 * read into c->send with pread(2); the next flush round encrypts and writes
 * it.  Memory per connection therefore stays at one chunk.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/internal.h"

/* Bytes read per step when the file goes through c->send (TLS, or files
 * that sendfile refuses). */
#define CM_FILE_CHUNK 65536
/* Bytes one connection may push per write step before letting the others
 * have their turn. */
#define CM_FILE_BUDGET (4u << 20)

struct cm__file_out {
  struct cm__file_out *next;
  int fd;
  uint64_t off;        /* next byte to send */
  uint64_t left;       /* bytes still to send */
  bool use_read;       /* sendfile refused this file: copy through c->send */
  bool owns_fd;        /* close fd when done (false: a later range of the same fd does) */
  struct cm_buf after; /* bytes cm_send() queued behind this file */
};

int cm__files_queue(struct cm_conn *c, int fd, uint64_t offset, uint64_t len, bool owns_fd) {
  if (fd < 0) return CM_EINVAL;
  if (c->is_closing || c->is_draining || c->is_listening || c->is_udp) {
    if (owns_fd) close(fd);
    return c->is_closing || c->is_draining ? CM_ECLOSED : CM_EINVAL;
  }
  if (len == 0) {
    if (owns_fd) close(fd);
    return 0;
  }
  struct cm__file_out *f = calloc(1, sizeof(*f));
  if (f == NULL) {
    if (owns_fd) close(fd);
    return CM_ENOMEM;
  }
  f->fd = fd;
  f->off = offset;
  f->left = len;
  f->owns_fd = owns_fd;
  struct cm__file_out **tail = &c->files;
  while (*tail != NULL) tail = &(*tail)->next;
  *tail = f;
  return 0;
}

size_t cm__files_queued(const struct cm_conn *c) {
  size_t n = 0;
  for (const struct cm__file_out *f = c->files; f != NULL; f = f->next) n += f->after.len;
  return n;
}

struct cm_buf *cm__files_tail(struct cm_conn *c) {
  struct cm__file_out *f = c->files;
  while (f->next != NULL) f = f->next;
  return &f->after;
}

void cm__files_free(struct cm_conn *c) {
  while (c->files != NULL) {
    struct cm__file_out *f = c->files;
    c->files = f->next;
    if (f->owns_fd) close(f->fd);
    cm_buf_free(&f->after);
    free(f);
  }
}

/* The first file is done: what was queued behind it joins c->send.
 * Returns 0, or CM_ENOMEM. */
static int pop_file(struct cm_conn *c) {
  struct cm__file_out *f = c->files;
  c->files = f->next;
  if (f->owns_fd) close(f->fd);
  int rc = 0;
  if (c->send.len == 0) {
    cm_buf_free(&c->send);
    c->send = f->after; /* moved, not copied */
  } else {
    rc = cm_buf_append(&c->send, cm_buf_data(&f->after), f->after.len);
    cm_buf_free(&f->after);
  }
  free(f);
  return rc;
}

/* Reads the next chunk of f into c->send.  Returns 0, or a code with why
 * filled in. */
static int read_chunk(struct cm_conn *c, struct cm__file_out *f, char *why, size_t why_len) {
  size_t n = f->left < CM_FILE_CHUNK ? (size_t)f->left : CM_FILE_CHUNK;
  if (cm_buf_reserve(&c->send, n) != 0) {
    snprintf(why, why_len, "out of memory");
    return CM_ENOMEM;
  }
  ssize_t r;
  do {
    r = pread(f->fd, cm_buf_data(&c->send) + c->send.len, n, (off_t)f->off);
  } while (r < 0 && errno == EINTR);
  if (r <= 0) {
    char err[96];
    snprintf(why, why_len, "file read: %s",
             r == 0 ? "file shorter than announced" : cm__errstr(errno, err, sizeof(err)));
    return CM_EIO;
  }
  c->send.len += (size_t)r;
  f->off += (uint64_t)r;
  f->left -= (uint64_t)r;
  return 0;
}

int cm__files_write(struct cm_conn *c, size_t *total, char *why, size_t why_len) {
  char err[96];
  size_t budget = CM_FILE_BUDGET;
  while (c->files != NULL && c->send.len == 0) {
    struct cm__file_out *f = c->files;
    if (budget == 0) break;
    if (c->tp->send_file == NULL || f->use_read) {
      int rc = read_chunk(c, f, why, why_len);
      if (rc == 0 && f->left == 0 && (rc = pop_file(c)) != 0) snprintf(why, why_len, "out of memory");
      return rc; /* c->send holds the chunk; the write step takes it from here */
    }
    size_t want = f->left < budget ? (size_t)f->left : budget;
    off_t off = (off_t)f->off;
    ssize_t n = c->tp->send_file(c, f->fd, &off, want);
    if (n > 0) {
      f->off += (uint64_t)n;
      f->left -= (uint64_t)n;
      budget -= (size_t)n;
      *total += (size_t)n;
      if (f->left == 0 && pop_file(c) != 0) {
        snprintf(why, why_len, "out of memory");
        return CM_ENOMEM;
      }
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      c->is_write_blocked = 1;
      return 0;
    } else if (n < 0 && (errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP)) {
      f->use_read = true; /* a file system without sendfile support */
    } else if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) {
      return CM_ECONNRESET; /* the peer went away: an ordinary end */
    } else {
      snprintf(why, why_len, "sendfile: %s",
               n == 0 ? "file shorter than announced" : cm__errstr(errno, err, sizeof(err)));
      return CM_EIO;
    }
  }
  return 0;
}
