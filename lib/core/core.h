/* liblvmmed — private core interface shared by every module.
 *
 * Allocation, error reporting and logging through the context. Nothing here
 * is exported; modules include this header, never ctx_impl.h.
 */
#ifndef LVMMED_CORE_H
#define LVMMED_CORE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "lvmmed/ctx.h"
#include "lvmmed/status.h"

#if defined(__GNUC__)
#  define LVMMED_PRINTF(fmt_index, first_arg) __attribute__((format(printf, fmt_index, first_arg)))
#else
#  define LVMMED_PRINTF(fmt_index, first_arg)
#endif

/** Alignment of every block from lvmmed__alloc: one cache line, enough for AVX-512 loads. */
#define LVMMED_ALIGNMENT 64

/** Allocates size bytes (LVMMED_ALIGNMENT-aligned) through the context's hooks; NULL on failure.
 *  The failure is not recorded: callers report it with lvmmed__fail(). size 0 gives a valid block. */
void *lvmmed__alloc(lvmmed_ctx *ctx, size_t size);

/** Like lvmmed__alloc for count*size zeroed bytes; NULL on overflow or failure. */
void *lvmmed__calloc(lvmmed_ctx *ctx, size_t count, size_t size);

/** Workspace reuse: returns p when its capacity *cap already holds bytes, else frees
 *  it and allocates a new block (contents not kept), updating *cap. NULL on failure
 *  (then *cap is 0 and the old block is gone). */
void *lvmmed__grow(lvmmed_ctx *ctx, void *p, size_t *cap, size_t bytes);

/** Frees a block from lvmmed__alloc/lvmmed__calloc. NULL is a no-op. */
void lvmmed__free(lvmmed_ctx *ctx, void *ptr);

/** Records status and a printf-style message as the context's last error and returns status.
 *  Accepts a const context: the error slot is the one mutable part of a const context.
 *  ctx NULL is allowed (nothing is recorded). */
lvmmed_status lvmmed__fail(const lvmmed_ctx *ctx, lvmmed_status status, const char *fmt, ...)
    LVMMED_PRINTF(3, 4);

/** Sends a message to the context's log callback if level passes the threshold. */
void lvmmed__log(lvmmed_ctx *ctx, lvmmed_log_level level, const char *fmt, ...) LVMMED_PRINTF(3, 4);

/** Thread count the context allows (>= 1). */
unsigned lvmmed__ctx_threads(const lvmmed_ctx *ctx);

/** Seed of the context. */
uint64_t lvmmed__ctx_seed(const lvmmed_ctx *ctx);

/** Checked size arithmetic: *out = a*b; returns 0 on overflow. */
static inline int lvmmed__mul_size(size_t a, size_t b, size_t *out) {
  if (a != 0 && b > SIZE_MAX / a) return 0;
  *out = a * b;
  return 1;
}

#endif /* LVMMED_CORE_H */
