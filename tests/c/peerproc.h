/* Helpers for C tests that run a real peer program (dnsmasq, chronyd, curl) on
 * 127.0.0.1: find it, pick a free port, start it, wait for it, stop it by
 * its own pid. */
#ifndef CM_PEERPROC_H
#define CM_PEERPROC_H

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cymongoose.h"

extern char **environ;

/* Full path of an executable in the usual system directories, or NULL. */
static inline const char *peer_find_exe(const char *name, char *buf, size_t len) {
  const char *dirs[] = {"/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/sbin",
                        "/usr/local/bin"};
  for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
    snprintf(buf, len, "%s/%s", dirs[i], name);
    if (access(buf, X_OK) == 0) return buf;
  }
  return NULL;
}

/* Binds 127.0.0.1:port with the given socket type; returns the fd or -1. */
static inline int peer_bind(int type, unsigned port) {
  int fd = socket(AF_INET, type, 0);
  if (fd < 0) return -1;
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* A port free for both UDP and TCP on 127.0.0.1 (racy, but the window is
 * tiny and the caller notices a failed start). */
static inline unsigned peer_free_port(void) {
  for (int attempt = 0; attempt < 50; attempt++) {
    int u = peer_bind(SOCK_DGRAM, 0);
    if (u < 0) return 0;
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);
    getsockname(u, (struct sockaddr *)&sa, &sl);
    unsigned port = ntohs(sa.sin_port);
    int t = peer_bind(SOCK_STREAM, port);
    close(u);
    if (t >= 0) {
      close(t);
      return port;
    }
  }
  return 0;
}

/* True once something has bound UDP 127.0.0.1:port (waits up to ms). */
static inline bool peer_wait_udp_bound(unsigned port, pid_t pid, int ms) {
  for (int waited = 0; waited < ms; waited += 20) {
    int fd = peer_bind(SOCK_DGRAM, port);
    if (fd < 0 && errno == EADDRINUSE) return true;
    if (fd >= 0) close(fd);
    if (waitpid(pid, NULL, WNOHANG) == pid) return false; /* it exited */
    struct timespec ts = {0, 20 * 1000000L};
    nanosleep(&ts, NULL);
  }
  return false;
}

/* True once something accepts TCP connections on 127.0.0.1:port (waits up
 * to ms; false at once if pid exited). */
static inline bool peer_wait_tcp_listening(unsigned port, pid_t pid, int ms) {
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (int waited = 0; waited < ms; waited += 20) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    if (fd >= 0) close(fd);
    if (ok) return true;
    if (waitpid(pid, NULL, WNOHANG) == pid) return false; /* it exited */
    struct timespec ts = {0, 20 * 1000000L};
    nanosleep(&ts, NULL);
  }
  return false;
}

/* Starts argv[0] with stdout and stderr going to log_path. */
static inline pid_t peer_spawn(char *const argv[], const char *log_path) {
  pid_t pid = fork();
  if (pid != 0) return pid;
  int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd >= 0) {
    dup2(fd, 1);
    dup2(fd, 2);
    close(fd);
  }
  execv(argv[0], argv);
  _exit(127);
}

/* Stops the peer we started: SIGTERM, then SIGKILL if it lingers. */
static inline void peer_stop(pid_t pid) {
  if (pid <= 0) return;
  kill(pid, SIGTERM);
  for (int i = 0; i < 100; i++) {
    if (waitpid(pid, NULL, WNOHANG) == pid) return;
    struct timespec ts = {0, 20 * 1000000L};
    nanosleep(&ts, NULL);
  }
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
}

/* Removes the files of a flat scratch directory, then the directory. */
static inline void peer_rm_dir(const char *dir, const char *const files[], size_t n) {
  char path[512];
  for (size_t i = 0; i < n; i++) {
    snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
    unlink(path);
  }
  rmdir(dir);
}

/* Runs argv (argv[0] looked up in PATH) with its stdout captured, polling
 * mgr meanwhile so that a server in this process can answer it; stops
 * reading at EOF or after about 10 s.  Returns the output, NUL-terminated,
 * in a static buffer valid until the next call; *status: as from waitpid. */
static inline const char *peer_run_polling(struct cm_mgr *mgr, const char *const argv[], int *status) {
  static char out[1 << 20];
  size_t len = 0;
  int fds[2];
  out[0] = '\0';
  *status = -1;
  if (pipe2(fds, O_CLOEXEC) != 0) return out;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
  pid_t pid;
  int rc = posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *) argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  close(fds[1]);
  if (rc != 0) {
    close(fds[0]);
    return out;
  }
  fcntl(fds[0], F_SETFL, O_NONBLOCK);
  for (int i = 0; i < 2000; i++) {
    cm_mgr_poll(mgr, 5);
    ssize_t r = read(fds[0], out + len, sizeof(out) - 1 - len);
    if (r > 0) len += (size_t) r;
    if (r == 0) break;
  }
  out[len] = '\0';
  close(fds[0]);
  waitpid(pid, status, 0);
  return out;
}

#endif
