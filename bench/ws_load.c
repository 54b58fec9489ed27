/* WebSocket echo load generator: N connections, each keeps one message in
 * flight (send a masked binary frame of M bytes, wait for the whole echo,
 * repeat) for S seconds.  Plain sockets and epoll, independent of the
 * library under test.  The mask key is fixed and the frame pre-masked: the
 * server's work (unmasking) is the same, the generator's is less.
 * Usage: ws_load PORT [connections=50] [size=64] [seconds=5]
 * Prints: messages=<count> seconds=<elapsed> */
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

static size_t header_len(size_t n, int masked) {
  return (n < 126 ? 2 : n < 65536 ? 4 : 10) + (masked ? 4 : 0);
}

/* A masked binary frame of size bytes. */
static unsigned char *make_frame(size_t size, size_t *len) {
  static const unsigned char key[4] = {0x37, 0xfa, 0x21, 0x3d};
  size_t h = header_len(size, 1);
  unsigned char *f = malloc(h + size);
  f[0] = 0x82;
  if (size < 126) {
    f[1] = (unsigned char)(0x80 | size);
  } else if (size < 65536) {
    f[1] = 0x80 | 126;
    f[2] = (unsigned char)(size >> 8);
    f[3] = (unsigned char)size;
  } else {
    f[1] = 0x80 | 127;
    for (int i = 0; i < 8; i++) f[2 + i] = (unsigned char)((unsigned long long)size >> (56 - 8 * i));
  }
  memcpy(f + h - 4, key, 4);
  for (size_t i = 0; i < size; i++) f[h + i] = (unsigned char)('m' ^ key[i & 3]);
  *len = h + size;
  return f;
}

static int handshake(int fd) {
  static const char req[] =
      "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
  if (write(fd, req, sizeof(req) - 1) != (ssize_t)(sizeof(req) - 1)) return -1;
  char buf[1024];
  size_t got = 0;
  /* Read byte by byte up to the blank line, so no frame byte is eaten. */
  while (got < sizeof(buf) - 1) {
    if (read(fd, buf + got, 1) != 1) return -1;
    got++;
    if (got >= 4 && memcmp(buf + got - 4, "\r\n\r\n", 4) == 0) break;
  }
  buf[got] = '\0';
  return strncmp(buf, "HTTP/1.1 101", 12) == 0 ? 0 : -1;
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
  size_t flen, want = header_len(size, 0) + size;
  unsigned char *msg = make_frame(size, &flen);
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
    if (handshake(fd) != 0) {
      fprintf(stderr, "handshake failed\n");
      return 1;
    }
    cs[i].fd = fd;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &cs[i]};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  }
  for (int i = 0; i < nconns; i++)
    if (write(cs[i].fd, msg, flen) != (ssize_t)flen) return 1;
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
        /* Large frames may not fit the socket buffer at once: loop. */
        for (size_t off = 0; off < flen;) {
          ssize_t w = write(c->fd, msg + off, flen - off);
          if (w <= 0) return 1;
          off += (size_t)w;
        }
      }
    }
  }
  printf("messages=%ld seconds=%.3f\n", messages, now_s() - start);
  return 0;
}
