/* Helpers shared by the parsers of src/mqttops (internal). */
#ifndef CM_OPSUTIL_H
#define CM_OPSUTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "cymongoose.h"

/* snprintf into err (when not NULL). */
void cm_ops_err(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The next line of text from *pos (without "\n" or "\r\n"); false at the end. */
bool cm_ops_next_line(struct cm_str text, size_t *pos, struct cm_str *line);
/* s without leading and trailing blanks (spaces, tabs). */
struct cm_str cm_ops_trim(struct cm_str s);
/* Takes the next blank-separated word off *rest; false when none is left. */
bool cm_ops_word(struct cm_str *rest, struct cm_str *word);
/* s equals the NUL-terminated lit. */
bool cm_ops_eq(struct cm_str s, const char *lit);
/* A malloc'd NUL-terminated copy of s (NULL when out of memory). */
char *cm_ops_dup(struct cm_str s);

#endif
