/* Common includes for the cmocka test programs. */
#ifndef CM_TESTUTIL_H
#define CM_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
/* cmocka must come after the headers above. */
#include <cmocka.h>

#include "cymongoose.h"

/* Polls mgr until *flag is true or ms pass; returns *flag. */
static inline bool wait_for(struct cm_mgr *mgr, const bool *flag, int ms) {
  uint64_t end = cm_millis() + (uint64_t)ms;
  while (!*flag && cm_millis() < end) cm_mgr_poll(mgr, 10);
  return *flag;
}

/* Polls mgr until *n reaches want or ms pass; returns whether it did. */
static inline bool wait_count(struct cm_mgr *mgr, const int *n, int want, int ms) {
  uint64_t end = cm_millis() + (uint64_t)ms;
  while (*n < want && cm_millis() < end) cm_mgr_poll(mgr, 10);
  return *n >= want;
}

#endif
