/* The loops of bench/mqtt_window.py (modes pub and echo, same window
 * logic, same result line) in plain C on one raw non-blocking socket and
 * epoll, with no library and no allocation: the least CPU any client spends
 * per message on a shape, and the most messages per second any client gets
 * through the broker.  bench.py runs it beside paho and ours, through the
 * same mosquitto in the same run, as the ceiling of each shape.
 *
 *   mqtt_raw PORT QOS WINDOW SECONDS [MODE=echo]
 *
 * Prints: messages=<count> seconds=<elapsed> cpu=<process CPU seconds>
 *
 * It behaves on the wire as a good client must with a broker whose Nagle is
 * on (mosquitto's default): everything one wake-up produces goes out in one
 * write, TCP_NODELAY on, and after a read that leaves nothing to send it
 * acknowledges at once (TCP_QUICKACK): the broker holds a packet it writes
 * behind a not yet acknowledged one, so a delayed ACK would stall a round
 * trip by up to 40 ms. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PAYLOAD 64
#define BATCHES 2 /* QoS 0 batches outstanding, as in mqtt_window.py */
#define TOPIC "bench/raw"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void die(const char *why) {
  fprintf(stderr, "mqtt_raw: %s\n", why);
  exit(1);
}

/* ---------------------------------------------------------------- output */

static unsigned char out[1 << 20];
static size_t out_len;

static void put(const void *p, size_t n) {
  if (out_len + n > sizeof(out)) die("output buffer full");
  memcpy(out + out_len, p, n);
  out_len += n;
}

static unsigned next_id = 0;

/* Queues a PUBLISH of the 64-byte payload on TOPIC; returns its packet id
 * (0 for QoS 0). */
static unsigned publish(int qos) {
  unsigned char h[8 + sizeof(TOPIC)];
  size_t tl = strlen(TOPIC), n = 0, body = 2 + tl + (qos ? 2 : 0) + PAYLOAD;
  unsigned id = 0;
  h[n++] = (unsigned char)(0x30 | (qos << 1));
  h[n++] = (unsigned char)body; /* < 128 */
  h[n++] = 0;
  h[n++] = (unsigned char)tl;
  memcpy(h + n, TOPIC, tl);
  n += tl;
  if (qos) {
    next_id = next_id % 65535 + 1;
    id = next_id;
    h[n++] = (unsigned char)(id >> 8);
    h[n++] = (unsigned char)id;
  }
  static const char payload[PAYLOAD] = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
  put(h, n);
  put(payload, PAYLOAD);
  return id;
}

/* Queues a SUBSCRIBE to TOPIC at the QoS of the load (packet id 1). */
static void subscribe(int q) {
  size_t tl = strlen(TOPIC);
  const unsigned char h[] = {0x82, (unsigned char)(5 + tl), 0, 1, 0, (unsigned char)tl};
  put(h, sizeof(h));
  put(TOPIC, tl);
  put((const unsigned char[]){(unsigned char)q}, 1);
}

/* ------------------------------------------------------ the window logic */

static int mode_pub, qos, window;
static double secs, t0, cpu0, deadline, t1, cpu1;
static long sent, received;
static unsigned markers[BATCHES];
static bool done;

static void batch(void) {
  for (int i = 0; i < window - 1; i++) publish(0);
  for (int k = 0; k < BATCHES; k++)
    if (markers[k] == 0) {
      markers[k] = publish(1);
      break;
    }
  sent += window;
}

static void started(void) {
  t0 = now_s();
  cpu0 = cpu_s();
  deadline = t0 + secs;
  if (mode_pub && qos == 0) {
    for (int i = 0; i < BATCHES; i++) batch();
    return;
  }
  for (int i = 0; i < window; i++) publish(qos);
  sent = window;
}

static void finish(void) {
  t1 = now_s();
  cpu1 = cpu_s();
  done = true;
  put("\xe0\x00", 2); /* DISCONNECT */
}

static void received_one(void) {
  received++;
  if (now_s() < deadline) {
    publish(qos);
    sent++;
  } else if (received == sent) {
    finish();
  }
}

static void acked(unsigned id) {
  if (qos == 0) {
    bool marker = false, left = false;
    for (int k = 0; k < BATCHES; k++) {
      if (markers[k] == id) {
        markers[k] = 0;
        marker = true;
      } else if (markers[k] != 0) {
        left = true;
      }
    }
    if (!marker) return;
    received += window;
    if (now_s() < deadline) batch();
    else if (!left) finish();
    return;
  }
  received_one();
}

/* ----------------------------------------------------------------- input */

static unsigned char in[1 << 20];
static size_t in_len;

/* Handles every whole packet in `in`. */
static void handle_input(void) {
  size_t off = 0;
  while (in_len - off >= 2) {
    size_t rl = 0, i = 1, mul = 1;
    for (;;) {
      if (off + i >= in_len) goto more;
      unsigned char b = in[off + i++];
      rl += (b & 127u) * mul;
      mul *= 128;
      if (!(b & 128)) break;
      if (i > 4) die("bad remaining length");
    }
    if (in_len - off < i + rl) break;
    const unsigned char *p = in + off;
    switch (p[0] >> 4) {
      case 2: /* CONNACK */
        if (p[i + 1] != 0) die("CONNECT refused");
        if (mode_pub) started();
        else subscribe(qos);
        break;
      case 9: /* SUBACK */
        started();
        break;
      case 4: /* PUBACK */
        if (mode_pub) acked((unsigned)p[i] << 8 | p[i + 1]);
        break;
      case 3: { /* PUBLISH: ours coming back (echo) */
        size_t tl = (size_t)p[i] << 8 | p[i + 1];
        int q = (p[0] >> 1) & 3;
        if (!mode_pub && !done) received_one();
        if (q == 1) put((const unsigned char[]){0x40, 2, p[i + 2 + tl], p[i + 3 + tl]}, 4);
        break;
      }
      default:
        break;
    }
    off += i + rl;
  }
more:
  memmove(in, in + off, in_len - off);
  in_len -= off;
}

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: mqtt_raw PORT QOS WINDOW SECONDS [pub|echo]\n");
    return 2;
  }
  int port = atoi(argv[1]);
  qos = atoi(argv[2]);
  window = atoi(argv[3]);
  secs = atof(argv[4]);
  mode_pub = argc > 5 && strcmp(argv[5], "pub") == 0;
  if (window < 1 || window > 10000 || qos < 0 || qos > 1) die("bad arguments");

  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 && errno != EINPROGRESS))
    die("connect failed");
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  /* CONNECT: 3.1.1, clean session, keepalive 60, client id "bench-raw". */
  static const unsigned char conn[] = {0x10, 21, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 60,
                                       0, 9, 'b', 'e', 'n', 'c', 'h', '-', 'r', 'a', 'w'};
  put(conn, sizeof(conn));

  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT};
  epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  bool want_out = true;
  size_t out_off = 0;
  for (;;) {
    struct epoll_event got;
    int n = epoll_wait(ep, &got, 1, 1000);
    if (n < 0 && errno != EINTR) die("epoll_wait failed");
    if (n <= 0) continue;
    if (got.events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
      ssize_t r = read(fd, in + in_len, sizeof(in) - in_len);
      if (r == 0 || (r < 0 && errno != EAGAIN)) {
        if (done) break;
        die("connection closed");
      }
      if (r > 0) {
        in_len += (size_t)r;
        handle_input();
        if (out_len == out_off)
          setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
      }
    }
    while (out_off < out_len) {
      ssize_t w = write(fd, out + out_off, out_len - out_off);
      if (w < 0 && errno == EAGAIN) break;
      if (w < 0) die("write failed");
      out_off += (size_t)w;
    }
    if (out_off == out_len) {
      out_off = out_len = 0;
      if (done) break;
    }
    bool want = out_off < out_len;
    if (want != want_out) {
      ev.events = EPOLLIN | (want ? EPOLLOUT : 0);
      epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
      want_out = want;
    }
  }
  close(fd);
  printf("messages=%ld seconds=%.4f cpu=%.4f\n", received, t1 - t0, cpu1 - cpu0);
  return 0;
}
