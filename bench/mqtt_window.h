/* The window logic of bench/mqtt_window.py in C, shared by the C MQTT
 * clients of bench.py's mqtt suite (bench/mqtt_raw.c on a raw socket,
 * bench/c/mqtt_client.c on our library): the same arguments, the same
 * windows, the same result line, so every row measures the same thing.
 *
 *   PROGRAM PORT QOS WINDOW SECONDS [MODE=echo]
 *
 * Modes as in mqtt_window.py: echo (own subscription, WINDOW in flight, one
 * more per message received) and pub (no subscriber; QoS 1: WINDOW
 * unacknowledged, one more per PUBACK; QoS 0: batches of WINDOW, the last
 * QoS 1, two outstanding, a new one as each is confirmed).
 * Prints: messages=<count> seconds=<elapsed> cpu=<process CPU seconds> */
#ifndef CM_BENCH_MQTT_WINDOW_H
#define CM_BENCH_MQTT_WINDOW_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define WL_PAYLOAD 64
#define WL_BATCHES 2 /* QoS 0 batches outstanding */

struct window_load {
  int port, qos, window;
  bool pub; /* mode pub, else echo */
  double secs, t0, cpu0, deadline, t1, cpu1;
  long sent, received;
  unsigned markers[WL_BATCHES]; /* packet ids of the QoS 1 ends of batches */
  bool done;
  /* The client: publish one 64-byte message, return its packet id (0 for
   * QoS 0); finish: disconnect once the last one is in. */
  unsigned (*publish)(void *arg, int qos);
  void (*finish)(void *arg);
  void *arg;
};

static inline double wl_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline double wl_cpu(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* Reads PORT QOS WINDOW SECONDS [MODE]; exits with the usage on error. */
static inline void wl_args(struct window_load *l, int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: %s PORT QOS WINDOW SECONDS [pub|echo]\n", argv[0]);
    exit(2);
  }
  l->port = atoi(argv[1]);
  l->qos = atoi(argv[2]);
  l->window = atoi(argv[3]);
  l->secs = atof(argv[4]);
  l->pub = argc > 5 && strcmp(argv[5], "pub") == 0;
  if (l->window < 1 || l->window > 10000 || l->qos < 0 || l->qos > 1) {
    fprintf(stderr, "%s: QOS 0 or 1, WINDOW 1 to 10000\n", argv[0]);
    exit(2);
  }
}

static inline void wl_batch(struct window_load *l) {
  for (int i = 0; i < l->window - 1; i++) l->publish(l->arg, 0);
  for (int k = 0; k < WL_BATCHES; k++)
    if (l->markers[k] == 0) {
      l->markers[k] = l->publish(l->arg, 1);
      break;
    }
  l->sent += l->window;
}

/* Connected (pub) or subscribed (echo): the clock starts. */
static inline void wl_started(struct window_load *l) {
  l->t0 = wl_now();
  l->cpu0 = wl_cpu();
  l->deadline = l->t0 + l->secs;
  if (l->pub && l->qos == 0) {
    for (int i = 0; i < WL_BATCHES; i++) wl_batch(l);
    return;
  }
  for (int i = 0; i < l->window; i++) l->publish(l->arg, l->qos);
  l->sent = l->window;
}

static inline void wl_finish(struct window_load *l) {
  l->t1 = wl_now();
  l->cpu1 = wl_cpu();
  l->done = true;
  l->finish(l->arg);
}

/* echo: one of ours came back; pub QoS 1: one PUBACK. */
static inline void wl_received_one(struct window_load *l) {
  if (l->done) return;
  l->received++;
  if (wl_now() < l->deadline) {
    l->publish(l->arg, l->qos);
    l->sent++;
  } else if (l->received == l->sent) {
    wl_finish(l);
  }
}

/* A PUBACK of packet id `id` (pub mode). */
static inline void wl_acked(struct window_load *l, unsigned id) {
  if (l->qos != 0) {
    wl_received_one(l);
    return;
  }
  bool marker = false, left = false;
  for (int k = 0; k < WL_BATCHES; k++) {
    if (l->markers[k] == id) {
      l->markers[k] = 0;
      marker = true;
    } else if (l->markers[k] != 0) {
      left = true;
    }
  }
  if (!marker || l->done) return;
  l->received += l->window;
  if (wl_now() < l->deadline) wl_batch(l);
  else if (!left) wl_finish(l);
}

static inline void wl_report(const struct window_load *l) {
  printf("messages=%ld seconds=%.4f cpu=%.4f\n", l->received, l->t1 - l->t0, l->cpu1 - l->cpu0);
}

#endif
