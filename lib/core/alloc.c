/* Aligned allocation through the context's hooks.
 *
 * Each block carries a small header (its total size) in front of the
 * returned pointer, so callers free without remembering sizes while user
 * hooks still receive the size they were asked for.
 */
#include <stdlib.h>
#include <string.h>

#include "core/ctx_impl.h"

/* Header room: a full alignment unit keeps the user pointer aligned. */
#define HEADER LVMMED_ALIGNMENT

void *lvmmed__alloc(lvmmed_ctx *ctx, size_t size) {
  if (size > SIZE_MAX - HEADER) return NULL;
  size_t total = size + HEADER;
  unsigned char *base = ctx->allocator.alloc(ctx->allocator.user, total, LVMMED_ALIGNMENT);
  if (!base) return NULL;
  memcpy(base, &total, sizeof total);
  return base + HEADER;
}

void *lvmmed__calloc(lvmmed_ctx *ctx, size_t count, size_t size) {
  size_t bytes;
  if (!lvmmed__mul_size(count, size, &bytes)) return NULL;
  void *p = lvmmed__alloc(ctx, bytes);
  if (p) memset(p, 0, bytes);
  return p;
}

void *lvmmed__grow(lvmmed_ctx *ctx, void *p, size_t *cap, size_t bytes) {
  if (p && *cap >= bytes) return p;
  lvmmed__free(ctx, p);
  *cap = 0;
  p = lvmmed__alloc(ctx, bytes ? bytes : 1);
  if (p) *cap = bytes;
  return p;
}

void lvmmed__free(lvmmed_ctx *ctx, void *ptr) {
  if (!ptr) return;
  unsigned char *base = (unsigned char *)ptr - HEADER;
  size_t total;
  memcpy(&total, base, sizeof total);
  ctx->allocator.free(ctx->allocator.user, base, total);
}
