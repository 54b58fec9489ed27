/* Echo load generator: N connections, each keeps one message in flight
 * (send M bytes, wait for M bytes back, repeat) for S seconds.  Plain epoll,
 * independent of the library under test.
 * Usage: echo_load PORT [connections=50] [size=64] [seconds=5]
 * Prints: messages=<count> seconds=<elapsed> */
#include <arpa/inet.h>
#include <errno.h>
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

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s PORT [conns] [size] [seconds]\n", argv[0]);
    return 2;
  }
  int port = atoi(argv[1]);
  int nconns = argc > 2 ? atoi(argv[2]) : 50;
  size_t size = argc > 3 ? (size_t)atoi(argv[3]) : 64;
  double secs = argc > 4 ? atof(argv[4]) : 5.0;
  char *msg = malloc(size), *buf = malloc(size);
  memset(msg, 'm', size);
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
    cs[i].fd = fd;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &cs[i]};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    if (write(fd, msg, size) != (ssize_t)size) return 1;
  }
  long messages = 0;
  double start = now_s(), end = start + secs;
  struct epoll_event evs[256];
  while (now_s() < end) {
    int n = epoll_wait(ep, evs, 256, 100);
    for (int i = 0; i < n; i++) {
      struct conn *c = evs[i].data.ptr;
      ssize_t r = read(c->fd, buf, size - c->got);
      if (r <= 0) {
        fprintf(stderr, "server closed a connection\n");
        return 1;
      }
      c->got += (size_t)r;
      if (c->got == size) {
        c->got = 0;
        messages++;
        if (write(c->fd, msg, size) != (ssize_t)size) return 1;
      }
    }
  }
  printf("messages=%ld seconds=%.3f\n", messages, now_s() - start);
  return 0;
}
