/* Internal interfaces of the MQTT files (not installed). */
#ifndef CM_MQTT_INTERNAL_H
#define CM_MQTT_INTERNAL_H

#include "cymongoose.h"

/* Bit of a packet type in the masks below; bit 0 stands for will properties. */
#define CM__MQTT_BIT(cmd) (1u << (cmd))

/* Appends the property block of n properties without its length varint.
 * Returns 0 or -1 (unknown id, no memory). */
int cm__mqtt_props_raw(struct cm_buf *out, const struct cm_mqtt_prop *props, size_t n);

/* A bounded reader over a packet body: every read checks the bounds, and a
 * failed read sets err (sticky), so parsers can read a sequence of fields
 * and check once. */
struct cm__mqtt_rd {
  const uint8_t *p, *end;
  int err;            /* 0, or a negative reason code */
  const char *why;    /* static description of err */
};

static inline void cm__mqtt_rd_fail(struct cm__mqtt_rd *r, int err, const char *why) {
  if (r->err == 0) {
    r->err = err;
    r->why = why;
  }
  r->p = r->end;
}

#endif
