/* Interfaces between the files of src/net (not installed). */
#ifndef CM_NET_INTERNAL_H
#define CM_NET_INTERNAL_H

#include "core/internal.h"

/* Opens c's socket and starts a non-blocking connect to a (the DNS
 * resolver calls this once a name is resolved).  Errors are deferred. */
void cm__sock_connect(struct cm_conn *c, const struct cm_addr *a);

#endif
