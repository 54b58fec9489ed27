/* cymongoose: util API.  Included by cymongoose.h; filled in by its module. */
#ifndef CYMONGOOSE_UTIL_H
#define CYMONGOOSE_UTIL_H

#endif
