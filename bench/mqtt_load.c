/* MQTT broker load generator (MQTT 3.1.1 over plain sockets and epoll,
 * independent of the library under test).
 *
 *   mqtt_load PORT fanout SUBSCRIBERS SECONDS [SIZE=64]
 *       1 publisher, SUBSCRIBERS subscribers of one topic, QoS 0.  The
 *       publisher stays at most WINDOW messages ahead of the slowest
 *       subscriber, so nothing is dropped.  Counts deliveries.
 *   mqtt_load PORT fanrate SUBSCRIBERS SECONDS SIZE RATE
 *       fan-out at a fixed offered rate: the publisher sends RATE messages
 *       a second (paced by the millisecond, never more than 16 in one
 *       write), whether or not the broker keeps up (it stops offering
 *       while it is WINDOW_RATE messages ahead of the slowest subscriber,
 *       so an overloaded broker shows as fewer deliveries, not as memory).
 *       Both brokers then do the same work: their CPU per delivery compares
 *       like for like.
 *   mqtt_load PORT fanin PUBLISHERS SECONDS [SIZE=64]
 *       PUBLISHERS publishers, 1 subscriber of their topics (bench/in/+),
 *       QoS 0, at most WINDOW messages published and not yet delivered.
 *   mqtt_load PORT latency 1 SECONDS [SIZE=64]
 *       one client subscribed (QoS 1) to the topic it publishes to (QoS 1),
 *       one message at a time: each round trip is PUBLISH -> PUBACK and the
 *       message back.  Counts round trips.
 *   mqtt_load PORT idle CLIENTS [KEEPALIVE=0]
 *       connects CLIENTS clients (keepalive KEEPALIVE seconds, which they
 *       never need to honour: they are held for less), prints
 *       "ready CLIENTS" and holds them until stdin closes.
 * Prints: messages=<count> seconds=<elapsed> */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>

#define WINDOW_FANOUT 1024
#define WINDOW_FANIN 1000
#define WINDOW_RATE 20000
#define BUF 65536

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Writes all of msg, waiting for room on a non-blocking socket. */
static int write_all(int fd, const void *msg, size_t len) {
  for (size_t off = 0; off < len;) {
    ssize_t w = write(fd, (const char *)msg + off, len - off);
    if (w < 0 && errno == EAGAIN) {
      usleep(100);
      continue;
    }
    if (w <= 0) return -1;
    off += (size_t)w;
  }
  return 0;
}

struct mc {
  int fd;
  size_t len;
  unsigned char buf[BUF];
};

static size_t put_len(unsigned char *p, size_t n) {
  size_t i = 0;
  do {
    unsigned char b = (unsigned char)(n % 128);
    n /= 128;
    p[i++] = n > 0 ? (unsigned char)(b | 128) : b;
  } while (n > 0);
  return i;
}

static size_t put_str(unsigned char *p, const char *s) {
  size_t n = strlen(s);
  p[0] = (unsigned char)(n >> 8);
  p[1] = (unsigned char)n;
  memcpy(p + 2, s, n);
  return n + 2;
}

/* A PUBLISH of size payload bytes on topic (qos 0 or 1, packet id id). */
static size_t make_publish(unsigned char *out, const char *topic, int qos, unsigned id,
                           size_t size) {
  size_t body = 2 + strlen(topic) + (qos ? 2 : 0) + size;
  size_t n = 0;
  out[n++] = (unsigned char)(0x30 | (qos << 1));
  n += put_len(out + n, body);
  n += put_str(out + n, topic);
  if (qos) {
    out[n++] = (unsigned char)(id >> 8);
    out[n++] = (unsigned char)id;
  }
  memset(out + n, 'p', size);
  return n + size;
}

static int read_exact(int fd, unsigned char *p, size_t n) {
  for (size_t off = 0; off < n;) {
    ssize_t r = read(fd, p + off, n - off);
    if (r <= 0) return -1;
    off += (size_t)r;
  }
  return 0;
}

static int keepalive; /* of the CONNECTs, seconds */

/* A connected, CONNACKed client (blocking socket); subscribes when topic. */
static int client(int port, const char *topic, int qos) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
    perror("connect");
    exit(1);
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  const unsigned char conn[] = {0x10, 12, 0, 4, 'M', 'Q', 'T', 'T', 4, 2,
                                (unsigned char)(keepalive >> 8), (unsigned char)keepalive, 0, 0};
  unsigned char ack[5];
  if (write_all(fd, conn, sizeof(conn)) != 0 || read_exact(fd, ack, 4) != 0 || ack[0] != 0x20 ||
      ack[3] != 0) {
    fprintf(stderr, "mqtt_load: CONNECT refused\n");
    exit(1);
  }
  if (topic != NULL) {
    unsigned char sub[300];
    size_t n = 0, body = 2 + 2 + strlen(topic) + 1;
    sub[n++] = 0x82;
    n += put_len(sub + n, body);
    sub[n++] = 0;
    sub[n++] = 1;
    n += put_str(sub + n, topic);
    sub[n++] = (unsigned char)qos;
    if (write_all(fd, sub, n) != 0 || read_exact(fd, ack, 5) != 0 || ack[0] != 0x90) {
      fprintf(stderr, "mqtt_load: SUBSCRIBE failed\n");
      exit(1);
    }
  }
  return fd;
}

/* Reads what is there; counts whole PUBLISH packets (answering QoS 1 ones
 * with PUBACK) and PUBACKs.  -1 when the connection ended. */
static int drain(struct mc *c, long *publishes, long *pubacks) {
  for (;;) {
    ssize_t r = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len);
    if (r == 0) return -1;
    if (r < 0) return errno == EAGAIN ? 0 : -1;
    c->len += (size_t)r;
    size_t off = 0;
    while (c->len - off >= 2) {
      size_t rl = 0, i = 1, mul = 1;
      while (i < c->len - off && i < 5) {
        rl += (c->buf[off + i] & 127u) * mul;
        mul *= 128;
        if (!(c->buf[off + i++] & 128)) break;
        if (i == c->len - off) goto more;
      }
      if (c->len - off < i + rl) break;
      unsigned char type = c->buf[off] >> 4;
      if (type == 3) {
        (*publishes)++;
        if ((c->buf[off] >> 1) & 3) {
          size_t tl = ((size_t)c->buf[off + i] << 8) | c->buf[off + i + 1];
          unsigned char ack[4] = {0x40, 2, c->buf[off + i + 2 + tl], c->buf[off + i + 3 + tl]};
          if (write_all(c->fd, ack, 4) != 0) return -1;
        }
      } else if (type == 4) {
        (*pubacks)++;
      }
      off += i + rl;
    }
  more:
    memmove(c->buf, c->buf + off, c->len - off);
    c->len -= off;
  }
}

static void nonblock(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

/* rate > 0: fan-out paced at rate messages a second (fanrate). */
static int run_flow(int port, int fanout, int n, double secs, size_t size, double rate) {
  int nsubs = fanout ? n : 1, npubs = fanout ? 1 : n;
  struct mc *subs = calloc((size_t)nsubs, sizeof(*subs));
  int *pubs = calloc((size_t)npubs, sizeof(*pubs));
  int ep = epoll_create1(0);
  for (int i = 0; i < nsubs; i++) {
    subs[i].fd = client(port, fanout ? "bench/fan" : "bench/in/+", 0);
    nonblock(subs[i].fd);
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
    epoll_ctl(ep, EPOLL_CTL_ADD, subs[i].fd, &ev);
  }
  char topic[64];
  unsigned char *batch = malloc(16 * (size + 64));
  size_t blen[1024];
  unsigned char *msgs = malloc((size_t)npubs * (size + 64));
  for (int i = 0; i < npubs; i++) {
    pubs[i] = client(port, NULL, 0);
    snprintf(topic, sizeof(topic), fanout ? "bench/fan" : "bench/in/%d", i);
    blen[i % 1024] = make_publish(msgs + (size_t)i * (size + 64), topic, 0, 0, size);
  }
  size_t one = blen[0];
  if (fanout)
    for (int k = 0; k < 16; k++) memcpy(batch + (size_t)k * one, msgs, one);
  long published = 0, delivered = 0, acks = 0;
  long window = fanout ? WINDOW_FANOUT : WINDOW_FANIN;
  double t0 = now_s(), end = t0 + secs;
  int next = 0;
  struct epoll_event evs[256];
  while (now_s() < end) {
    long behind = fanout ? published - delivered / nsubs : published - delivered;
    if (rate > 0) {
      long due = (long)((now_s() - t0) * rate) - published;
      if (due > 0 && behind + due <= WINDOW_RATE) {
        long k = due < 16 ? due : 16;
        if (write_all(pubs[0], batch, (size_t)k * one) != 0)
          return fprintf(stderr, "mqtt_load: publisher closed\n"), 1;
        published += k;
        continue;
      }
      int ne = epoll_wait(ep, evs, 256, 1);
      for (int k = 0; k < ne; k++)
        if (drain(&subs[evs[k].data.u32], &delivered, &acks) != 0)
          return fprintf(stderr, "mqtt_load: subscriber closed\n"), 1;
      continue;
    }
    if (behind + 16 <= window) {
      int rc = fanout ? write_all(pubs[0], batch, 16 * one)
                      : write_all(pubs[next], msgs + (size_t)next * (size + 64), blen[next % 1024]);
      if (rc != 0) return fprintf(stderr, "mqtt_load: publisher closed\n"), 1;
      published += fanout ? 16 : 1;
      next = (next + 1) % npubs;
      if (!fanout || behind + 32 <= window) continue;
    }
    int ne = epoll_wait(ep, evs, 256, 100);
    for (int k = 0; k < ne; k++)
      if (drain(&subs[evs[k].data.u32], &delivered, &acks) != 0)
        return fprintf(stderr, "mqtt_load: subscriber closed\n"), 1;
  }
  double t1 = now_s();
  printf("messages=%ld seconds=%.3f published=%ld\n", delivered, t1 - t0, published);
  return 0;
}

static int run_latency(int port, double secs, size_t size) {
  struct mc *c = calloc(1, sizeof(*c));
  c->fd = client(port, "bench/rt", 1);
  nonblock(c->fd);
  struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
  unsigned char *msg = malloc(size + 64);
  long n = 0, got = 0, acks = 0;
  double t0 = now_s(), end = t0 + secs;
  while (now_s() < end) {
    size_t len = make_publish(msg, "bench/rt", 1, (unsigned)(n % 65535) + 1, size);
    if (write_all(c->fd, msg, len) != 0) return 1;
    n++;
    while (got < n || acks < n) {
      if (drain(c, &got, &acks) != 0) return fprintf(stderr, "mqtt_load: closed\n"), 1;
      if (got < n || acks < n) poll(&pfd, 1, 1000);
    }
  }
  printf("messages=%ld seconds=%.3f\n", n, now_s() - t0);
  return 0;
}

static int run_idle(int port, int n) {
  int *fds = calloc((size_t)n, sizeof(*fds));
  for (int i = 0; i < n; i++) fds[i] = client(port, NULL, 0);
  printf("ready %d\n", n);
  fflush(stdout);
  char line[16];
  while (read(0, line, sizeof(line)) > 0) {
  }
  for (int i = 0; i < n; i++) close(fds[i]);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: mqtt_load PORT fanout|fanin|latency N [SECONDS] [SIZE]\n"
                    "       mqtt_load PORT fanrate N SECONDS SIZE RATE\n"
                    "       mqtt_load PORT idle N [KEEPALIVE]\n");
    return 2;
  }
  int port = atoi(argv[1]), n = atoi(argv[3]);
  double secs = argc > 4 ? atof(argv[4]) : 5.0;
  size_t size = argc > 5 ? (size_t)atoi(argv[5]) : 64;
  if (strcmp(argv[2], "fanout") == 0) return run_flow(port, 1, n, secs, size, 0);
  if (strcmp(argv[2], "fanrate") == 0 && argc > 6)
    return run_flow(port, 1, n, secs, size, atof(argv[6]));
  if (strcmp(argv[2], "fanin") == 0) return run_flow(port, 0, n, secs, size, 0);
  if (strcmp(argv[2], "latency") == 0) return run_latency(port, secs, size);
  if (strcmp(argv[2], "idle") == 0) {
    keepalive = argc > 4 ? atoi(argv[4]) : 0;
    return run_idle(port, n);
  }
  return 2;
}
