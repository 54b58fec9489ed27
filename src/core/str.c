/* String views. */
#include <string.h>

#include "cymongoose.h"

struct cm_str cm_str_c(const char *s) {
  struct cm_str r = {s, s == NULL ? 0 : strlen(s)};
  return r;
}

struct cm_str cm_str_n(const char *buf, size_t len) {
  struct cm_str r = {buf, len};
  return r;
}
