/* The measuring loop shared by the load generators: N loopback connections,
 * each keeps one message in flight (send the request bytes, wait for the
 * expected number of reply bytes, repeat) for a number of seconds.  Plain
 * epoll, independent of the library under test.  Prints
 * "messages=<count> seconds=<elapsed>"; returns the exit status. */
#ifndef CM_BENCH_PINGPONG_H
#define CM_BENCH_PINGPONG_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct conn {
  int fd;
  size_t got;
};

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Command line of the load generators: PORT [conns=50] [size=64] [seconds=5]. */
struct pingpong_args {
  int port, nconns;
  size_t size;
  double secs;
};

static int pingpong_parse(int argc, char **argv, struct pingpong_args *a) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s PORT [conns] [size] [seconds]\n", argv[0]);
    return -1;
  }
  a->port = atoi(argv[1]);
  a->nconns = argc > 2 ? atoi(argv[2]) : 50;
  a->size = argc > 3 ? (size_t)atoi(argv[3]) : 64;
  a->secs = argc > 4 ? atof(argv[4]) : 5.0;
  return 0;
}

/* Writes all of msg (large messages may not fit the socket buffer at once). */
static int write_all(int fd, const void *msg, size_t len) {
  for (size_t off = 0; off < len;) {
    ssize_t w = write(fd, (const char *)msg + off, len - off);
    if (w <= 0) return -1;
    off += (size_t)w;
  }
  return 0;
}

/* setup (may be NULL) runs on each new blocking socket, e.g. a handshake. */
static int pingpong(int port, int nconns, const void *msg, size_t len, size_t want, double secs,
                    int (*setup)(int fd)) {
  char *buf = malloc(want);
  int ep = epoll_create1(0);
  struct conn *cs = calloc((size_t)nconns, sizeof(*cs));
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (int i = 0; i < nconns; i++) {
    int fd = socket(AF_INET, SOCK_STREAM, 0), on = 1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
      perror("connect");
      return 1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    if (setup != NULL && setup(fd) != 0) {
      fprintf(stderr, "connection setup failed\n");
      return 1;
    }
    cs[i].fd = fd;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &cs[i]};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  }
  for (int i = 0; i < nconns; i++)
    if (write_all(cs[i].fd, msg, len) != 0) return 1;
  long messages = 0;
  double start = now_s(), end = start + secs;
  struct epoll_event evs[256];
  while (now_s() < end) {
    int n = epoll_wait(ep, evs, 256, 100);
    for (int i = 0; i < n; i++) {
      struct conn *c = evs[i].data.ptr;
      ssize_t r = read(c->fd, buf, want - c->got);
      if (r <= 0) {
        fprintf(stderr, "server closed a connection\n");
        return 1;
      }
      c->got += (size_t)r;
      if (c->got == want) {
        c->got = 0;
        messages++;
        if (write_all(c->fd, msg, len) != 0) return 1;
      }
    }
  }
  printf("messages=%ld seconds=%.3f\n", messages, now_s() - start);
  return 0;
}

#endif
