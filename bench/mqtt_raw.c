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
 * (the window logic: bench/mqtt_window.h, shared with bench/c/mqtt_client.c)
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

#include "mqtt_window.h"

#define TOPIC "bench/raw"

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
static unsigned publish(void *arg, int qos) {
  (void)arg;
  unsigned char h[8 + sizeof(TOPIC)];
  size_t tl = strlen(TOPIC), n = 0, body = 2 + tl + (qos ? 2 : 0) + WL_PAYLOAD;
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
  static const char payload[WL_PAYLOAD] = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
  put(h, n);
  put(payload, WL_PAYLOAD);
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

static struct window_load load;

static void disconnect(void *arg) {
  (void)arg;
  put("\xe0\x00", 2); /* DISCONNECT */
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
        if (load.pub) wl_started(&load);
        else subscribe(load.qos);
        break;
      case 9: /* SUBACK */
        wl_started(&load);
        break;
      case 4: /* PUBACK */
        if (load.pub) wl_acked(&load, (unsigned)p[i] << 8 | p[i + 1]);
        break;
      case 3: { /* PUBLISH: ours coming back (echo) */
        size_t tl = (size_t)p[i] << 8 | p[i + 1];
        int q = (p[0] >> 1) & 3;
        if (!load.pub) wl_received_one(&load);
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
  wl_args(&load, argc, argv);
  load.publish = publish;
  load.finish = disconnect;

  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)load.port)};
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
        if (load.done) break;
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
      if (load.done) break;
    }
    bool want = out_off < out_len;
    if (want != want_out) {
      ev.events = EPOLLIN | (want ? EPOLLOUT : 0);
      epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
      want_out = want;
    }
  }
  close(fd);
  wl_report(&load);
  return 0;
}
