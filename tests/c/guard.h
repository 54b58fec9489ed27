/* Codec tests: input placed so that its last byte sits right before a
 * PROT_NONE page, so a read past the end faults instead of passing silently
 * (picohttpparser's trick).  Use guard_setup/guard_teardown as the group's
 * setup and teardown, then guarded() for each input. */
#ifndef CM_TEST_GUARD_H
#define CM_TEST_GUARD_H

#include <sys/mman.h>
#include <unistd.h>

#include "testutil.h"

/* Compares a view with a string literal. */
#define assert_str(s, lit)                                   \
  do {                                                       \
    struct cm_str s_ = (s);                                  \
    size_t n_ = strlen(lit);                                 \
    assert_int_equal(s_.len, n_);                            \
    if (n_ > 0) assert_memory_equal(s_.buf, (lit), n_);      \
  } while (0)

static char *guard_base;
static size_t guard_room; /* bytes usable before the PROT_NONE page */

static inline int guard_setup(void **state) {
  (void) state;
  size_t page = (size_t) sysconf(_SC_PAGESIZE);
  guard_room = (64 * 1024 + page - 1) / page * page;
  char *p = mmap(NULL, guard_room + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED || mprotect(p + guard_room, page, PROT_NONE) != 0) return -1;
  guard_base = p;
  return 0;
}

static inline int guard_teardown(void **state) {
  (void) state;
  munmap(guard_base, guard_room + (size_t) sysconf(_SC_PAGESIZE));
  return 0;
}

/* Copies n bytes of data (which may already lie in the guarded area) to end
 * right at the guard page; returns where they start. */
static inline char *guarded(const void *data, size_t n) {
  assert_true(n <= guard_room);
  char *dst = guard_base + guard_room - n;
  memmove(dst, data, n);
  return dst;
}

#endif
