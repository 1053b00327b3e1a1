/* liblvmmed — layout of the context. Private to lib/core: other modules use core.h. */
#ifndef LVMMED_CTX_IMPL_H
#define LVMMED_CTX_IMPL_H

#include <pthread.h>
#include <stdatomic.h>

#include "backend/backend.h"
#include "core/core.h"
#include "core/pool.h"

#define LVMMED_ERROR_MAX 512

struct lvmmed_ctx {
  atomic_uint refcount;
  lvmmed_allocator allocator;

  unsigned threads;
  uint64_t seed;
  lvmmed_backend backend;     /* resolved: never AUTO */
  lvmmed_backend_ops ops;     /* resolved table of `backend` */
  lvmmed_log_level log_level;

  pthread_mutex_t log_lock;   /* one callback at a time per context */
  lvmmed_log_fn log_fn;
  void *log_user;

  lvmmed_pool *pool;          /* created on first parallel loop */
  pthread_mutex_t pool_lock;  /* guards creation/resizing of pool */

  /* Last error: logically mutable even through a const context. */
  lvmmed_status last_status;
  char last_error[LVMMED_ERROR_MAX];
};

#endif /* LVMMED_CTX_IMPL_H */
