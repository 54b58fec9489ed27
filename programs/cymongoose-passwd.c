/*
 * cymongoose-passwd: adds, changes and removes users of a password file for
 * cymongoose-broker (format: docs/mqtt-broker.md).
 *
 *   cymongoose-passwd [-c] [-i ITERATIONS] FILE USER      password from the
 *       terminal (asked twice) or from the first line of stdin
 *   cymongoose-passwd [-c] [-i ITERATIONS] -b FILE USER PASSWORD
 *   cymongoose-passwd -D FILE USER                        removes USER
 *
 * -c creates (or empties) FILE first.  The file is replaced atomically
 * (written to FILE.tmp with mode 0600, fsynced, renamed).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "cymongoose.h"
#include "cymongoose.h"

static void usage(void) {
  fprintf(stderr,
          "usage: cymongoose-passwd [-c] [-i ITERATIONS] FILE USER\n"
          "       cymongoose-passwd [-c] [-i ITERATIONS] -b FILE USER PASSWORD\n"
          "       cymongoose-passwd -D FILE USER\n"
          "  -c  create FILE (overwriting it)\n"
          "  -b  take the password from the command line (visible to other users)\n"
          "  -D  delete USER\n"
          "  -i  PBKDF2 iterations (default %u, at least %u)\n",
          CM_PASSWD_DEFAULT_ITERATIONS, CM_PASSWD_MIN_ITERATIONS);
  exit(2);
}

/* Reads one line from stdin into buf without its newline; no echo on a
 * terminal. */
static bool read_password(const char *prompt, char *buf, size_t len) {
  bool tty = isatty(STDIN_FILENO);
  struct termios old, noecho;
  if (tty) {
    fputs(prompt, stderr);
    tcgetattr(STDIN_FILENO, &old);
    noecho = old;
    noecho.c_lflag &= ~(tcflag_t)ECHO;
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &noecho);
  }
  bool ok = fgets(buf, (int)len, stdin) != NULL;
  if (tty) {
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
    fputc('\n', stderr);
  }
  if (!ok) return false;
  size_t n = strlen(buf);
  if (n > 0 && buf[n - 1] == '\n') buf[--n] = '\0';
  if (n > 0 && buf[n - 1] == '\r') buf[--n] = '\0';
  return true;
}

/* Does line define user? */
static bool is_user(struct cm_str line, const char *user) {
  size_t n = strlen(user);
  return line.len > n && memcmp(line.buf, user, n) == 0 && line.buf[n] == ':';
}

int main(int argc, char **argv) {
  bool create = false, batch = false, del = false;
  uint32_t iterations = 0;
  int opt;
  while ((opt = getopt(argc, argv, "cbDi:h")) != -1) {
    switch (opt) {
      case 'c': create = true; break;
      case 'b': batch = true; break;
      case 'D': del = true; break;
      case 'i': {
        char *end;
        unsigned long v = strtoul(optarg, &end, 10);
        if (*optarg == '\0' || *end != '\0' || v < CM_PASSWD_MIN_ITERATIONS ||
            v > CM_PASSWD_MAX_ITERATIONS) {
          fprintf(stderr, "cymongoose-passwd: -i: %u to %u iterations\n",
                  CM_PASSWD_MIN_ITERATIONS, CM_PASSWD_MAX_ITERATIONS);
          return 2;
        }
        iterations = (uint32_t)v;
        break;
      }
      default: usage();
    }
  }
  int left = argc - optind;
  if (left != (batch ? 3 : 2) || (del && (create || batch))) usage();
  const char *file = argv[optind], *user = argv[optind + 1];

  /* The existing file (kept line by line, comments included). */
  size_t len = 0;
  char *text = NULL, err[CM_OPS_ERR_LEN];
  if (!create) {
    text = cm_ops_read_file(file, &len, err, sizeof(err));
    if (text == NULL) {
      fprintf(stderr, "cymongoose-passwd: %s%s\n", err,
              errno == ENOENT ? " (use -c to create it)" : "");
      return 1;
    }
    struct cm_passwd *check = cm_passwd_parse(cm_str_n(text, len), file, err, sizeof(err));
    if (check == NULL) {
      fprintf(stderr, "cymongoose-passwd: %s\n", err);
      return 1;
    }
    cm_passwd_free(check);
  }

  char newline[CM_PASSWD_LINE_MAX(1024)];
  if (!del) {
    char pw[1024], again[1024];
    if (batch) {
      snprintf(pw, sizeof(pw), "%s", argv[optind + 2]);
    } else {
      if (!read_password("Password: ", pw, sizeof(pw))) {
        fprintf(stderr, "cymongoose-passwd: no password given\n");
        return 1;
      }
      if (isatty(STDIN_FILENO)) {
        if (!read_password("Again: ", again, sizeof(again)) || strcmp(pw, again) != 0) {
          fprintf(stderr, "cymongoose-passwd: the passwords differ\n");
          return 1;
        }
      }
    }
    if (strlen(user) > 1024 ||
        cm_passwd_line(cm_str_c(user), cm_str_c(pw), iterations, newline, sizeof(newline)) < 0) {
      fprintf(stderr,
              "cymongoose-passwd: invalid user name (empty, with ':' or a line break, or "
              "starting with '#') or iterations (%u to %u)\n",
              CM_PASSWD_MIN_ITERATIONS, CM_PASSWD_MAX_ITERATIONS);
      return 1;
    }
  }

  /* New contents: every line but USER's, then USER's new line. */
  struct cm_buf out = {0};
  bool found = false;
  size_t pos = 0;
  while (text != NULL && pos < len) {
    const char *s = text + pos, *nl = memchr(s, '\n', len - pos);
    size_t n = nl != NULL ? (size_t)(nl - s) : len - pos;
    pos += n + (nl != NULL);
    if (is_user(cm_str_n(s, n), user)) {
      found = true;
      continue;
    }
    cm_buf_append(&out, s, n);
    cm_buf_append(&out, "\n", 1);
  }
  if (del && !found) {
    fprintf(stderr, "cymongoose-passwd: no user \"%s\" in %s\n", user, file);
    return 1;
  }
  if (!del) {
    cm_buf_append(&out, newline, strlen(newline));
    cm_buf_append(&out, "\n", 1);
  }

  char tmp[4096];
  snprintf(tmp, sizeof(tmp), "%s.tmp", file);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  const uint8_t *p = cm_buf_data(&out);
  size_t left_bytes = out.len;
  bool ok = fd >= 0;
  while (ok && left_bytes > 0) {
    ssize_t w = write(fd, p, left_bytes);
    if (w < 0 && errno == EINTR) continue;
    ok = w > 0;
    if (ok) p += w, left_bytes -= (size_t)w;
  }
  ok = ok && fsync(fd) == 0;
  if (fd >= 0) close(fd);
  if (!ok || rename(tmp, file) != 0) {
    fprintf(stderr, "cymongoose-passwd: %s: %s\n", ok ? file : tmp, strerror(errno));
    unlink(tmp);
    return 1;
  }
  cm_buf_free(&out);
  free(text);
  return 0;
}
