/* cymongoose: http API.  Included by cymongoose.h; filled in by its module. */
#ifndef CYMONGOOSE_HTTP_H
#define CYMONGOOSE_HTTP_H

#endif
