/*
 * Connection buffers lent from a small per-manager pool of fixed-size
 * blocks.  A connection with nothing pending gives its receive and send
 * buffers back (see cm__buf_release), so an idle connection costs its
 * struct and its descriptor, not 16 KiB; the busy ones take the blocks the
 * idle ones left, without going to malloc each time.
 */
#include <stdlib.h>

#include "core/internal.h"

/* A pooled block, while it sits in the pool: its first bytes link it. */
struct pool_block {
  struct pool_block *next;
};

bool cm__buf_lend(struct cm_mgr *mgr, struct cm_buf *b) {
  if (b->cap != 0) return true;
  struct pool_block *blk = mgr->buf_pool;
  if (blk != NULL) {
    mgr->buf_pool = blk->next;
    mgr->buf_pool_n--;
  } else {
    blk = malloc(CM_BUF_BLOCK);
    if (blk == NULL) return false;
  }
  b->ptr = (uint8_t *) blk;
  b->off = b->len = 0;
  b->cap = CM_BUF_BLOCK;
  return true;
}

void cm__buf_release(struct cm_mgr *mgr, struct cm_buf *b) {
  if (b->len != 0 || b->cap == 0) return;
  if (b->cap == CM_BUF_BLOCK && mgr->buf_pool_n < mgr->buf_pool_max) {
    struct pool_block *blk = (struct pool_block *) b->ptr;
    blk->next = mgr->buf_pool;
    mgr->buf_pool = blk;
    mgr->buf_pool_n++;
    b->ptr = NULL;
    b->off = b->cap = 0;
    return;
  }
  cm_buf_free(b);
}

void cm__buf_pool_free(struct cm_mgr *mgr) {
  while (mgr->buf_pool != NULL) {
    struct pool_block *blk = mgr->buf_pool;
    mgr->buf_pool = blk->next;
    free(blk);
  }
  mgr->buf_pool_n = 0;
}
