/* Common includes for the cmocka test programs. */
#ifndef CM_TESTUTIL_H
#define CM_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
/* cmocka must come after the headers above. */
#include <cmocka.h>

#include "cymongoose.h"

#endif
