/* Levelled logging, off by default, to stderr or to a sink the application sets. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cymongoose.h"

static volatile int log_level = CM_LL_NONE;
static cm_log_sink_fn log_sink; /* NULL: stderr */
static void *log_sink_arg;

void cm_log_set(int level) { __atomic_store_n(&log_level, level, __ATOMIC_RELAXED); }

int cm_log_get(void) { return __atomic_load_n(&log_level, __ATOMIC_RELAXED); }

void cm_log_set_sink(cm_log_sink_fn sink, void *arg) {
  __atomic_store_n(&log_sink_arg, arg, __ATOMIC_RELEASE);
  __atomic_store_n(&log_sink, sink, __ATOMIC_RELEASE);
}

void cm_log(int level, const char *file, int line, const char *fmt, ...) {
  static const char *names[] = {"NONE", "ERROR", "INFO", "DEBUG", "VERBOSE"};
  const char *base = strrchr(file, '/');
  base = base ? base + 1 : file;
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  cm_log_sink_fn sink = __atomic_load_n(&log_sink, __ATOMIC_ACQUIRE);
  if (sink != NULL) {
    sink(level, base, line, msg, __atomic_load_n(&log_sink_arg, __ATOMIC_ACQUIRE));
    return;
  }
  /* One fprintf per line keeps lines whole when several threads log. */
  fprintf(stderr, "%llu %s %s:%d %s\n", (unsigned long long)cm_millis(),
          names[level < 0 ? 0 : level > 4 ? 4 : level], base, line, msg);
}

uint64_t cm_millis(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}
