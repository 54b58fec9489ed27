/* One manager per thread, each with its own SO_REUSEPORT listener on the
 * same port: the kernel spreads new connections across the threads, and
 * no connection, buffer or timer is ever shared between them.  "/" says
 * which thread answered.  Ctrl-C: the main thread wakes every manager with
 * cm_wakeup() (the one call another thread may make on a manager) and each
 * loop ends.  See docs/deploy.md.
 * Usage: multi_thread_server [url] [threads]   (default http://127.0.0.1:8000, 2) */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cymongoose.h"

#define MAX_THREADS 64

struct worker {
  int index;
  struct cm_mgr mgr;
  unsigned long listener_id; /* where cm_wakeup() sends the stop message */
  atomic_bool stop;
  pthread_t thread;
};

static volatile sig_atomic_t interrupted;

static void on_signal(int sig) {
  (void)sig;
  interrupted = 1;
}

static void handler(struct cm_conn *c, int ev, void *ev_data) {
  struct worker *w = c->fn_data;
  if (ev == CM_EV_HTTP_MSG) {
    char body[64];
    int n = snprintf(body, sizeof(body), "hello from thread %d\n", w->index);
    cm_http_reply(c, 200, NULL, body, (size_t)n);
  } else if (ev == CM_EV_WAKEUP) {
    atomic_store(&w->stop, true); /* on the listener, in this worker's thread */
  }
  (void)ev_data;
}

static void *run(void *arg) {
  struct worker *w = arg;
  while (!atomic_load(&w->stop)) cm_mgr_poll(&w->mgr, 1000);
  cm_mgr_free(&w->mgr);
  return NULL;
}

int main(int argc, char **argv) {
  const char *url = argc > 1 ? argv[1] : "http://127.0.0.1:8000";
  int n = argc > 2 ? atoi(argv[2]) : 2;
  if (n < 1 || n > MAX_THREADS) n = 2;
  static struct worker workers[MAX_THREADS];
  struct cm_listen_opts lo = {.reuse_port = true};
  for (int i = 0; i < n; i++) {
    struct worker *w = &workers[i];
    w->index = i;
    if (cm_mgr_init(&w->mgr) != 0 || cm_wakeup_init(&w->mgr) != 0) return 1;
    /* Each listener is created in the main thread before its loop starts,
     * so a failure to bind is reported before anything runs. */
    struct cm_conn *l = cm_listen_ex(&w->mgr, url, handler, w, &lo);
    if (l == NULL || cm_http_serve(l, NULL) != 0) {
      perror(url);
      return 1;
    }
    w->listener_id = l->id;
  }
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  /* The workers start with the signals blocked, so that they reach the
   * main thread's pause(). */
  sigset_t sigs, old;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, &old);
  for (int i = 0; i < n; i++) pthread_create(&workers[i].thread, NULL, run, &workers[i]);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  printf("http server on %s, %d threads\n", url, n);
  fflush(stdout);
  while (!interrupted) pause();
  for (int i = 0; i < n; i++) cm_wakeup(&workers[i].mgr, workers[i].listener_id, "stop", 4);
  for (int i = 0; i < n; i++) pthread_join(workers[i].thread, NULL);
  return 0;
}
