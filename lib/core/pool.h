/* liblvmmed — private parallel-for over the context's worker threads.
 *
 * The range [0, n) is cut into chunks fixed by n, min_chunk and the
 * context's thread count only — never by timing — so any computation whose
 * per-chunk work is deterministic is bit-identical run to run.
 *
 * Threads: the caller runs chunk 0 and (threads - 1) persistent workers run
 * the rest. Between loops, workers (and a caller waiting for them) poll for
 * up to 0.2 ms before they sleep, so loops posted in quick succession do not
 * pay a thread wake-up each. A nested call (from inside a chunk) or a call while another
 * thread is using the same pool runs every chunk inline, in order, on the
 * calling thread. OpenBLAS is driven single-threaded (see
 * lib/backend/cpu/openblas.c), so at most `threads` threads are ever busy.
 */
#ifndef LVMMED_POOL_H
#define LVMMED_POOL_H

#include <stddef.h>

#include "lvmmed/ctx.h"

/** Body of a parallel loop: handles indices [begin, end); chunk is the chunk's index. */
typedef void (*lvmmed_range_fn)(void *arg, size_t begin, size_t end, unsigned chunk);

/** Opaque pool owned by a context. */
typedef struct lvmmed_pool lvmmed_pool;

/** Number of chunks lvmmed__parallel_for will use for (n, min_chunk) under ctx. */
unsigned lvmmed__parallel_chunks(const lvmmed_ctx *ctx, size_t n, size_t min_chunk);

/** Runs fn over [0, n) in lvmmed__parallel_chunks(ctx, n, min_chunk) chunks
 *  (chunk c covers [c*n/C, (c+1)*n/C)) and returns when all are done.
 *  Never fails: if threads cannot be started, the chunks run inline. */
void lvmmed__parallel_for(lvmmed_ctx *ctx, size_t n, size_t min_chunk, lvmmed_range_fn fn,
                          void *arg);

/** Like lvmmed__parallel_for, with up to LVMMED_BALANCE_CHUNKS chunks per thread
 *  (at least min_chunk indices each), which threads take one at a time, so a thread
 *  slowed by other work on the machine takes fewer. Chunk boundaries are fixed by
 *  (n, min_chunk, threads) as there. One thread: a single chunk. */
void lvmmed__parallel_for_balanced(lvmmed_ctx *ctx, size_t n, size_t min_chunk, lvmmed_range_fn fn,
                                   void *arg);

#define LVMMED_BALANCE_CHUNKS 8

/** Number of chunks lvmmed__parallel_for_balanced will use for (n, min_chunk) under ctx. */
unsigned lvmmed__parallel_chunks_balanced(const lvmmed_ctx *ctx, size_t n, size_t min_chunk);

/** 1 when the calling thread is executing a chunk of some parallel loop. */
int lvmmed__in_parallel_region(void);

/* Used by the context only. */
lvmmed_pool *lvmmed__pool_create(lvmmed_ctx *ctx);
void lvmmed__pool_destroy(lvmmed_ctx *ctx, lvmmed_pool *pool);

#endif /* LVMMED_POOL_H */
