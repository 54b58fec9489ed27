/* cymongoose: ws API.  Included by cymongoose.h; filled in by its module. */
#ifndef CYMONGOOSE_WS_H
#define CYMONGOOSE_WS_H

#endif
