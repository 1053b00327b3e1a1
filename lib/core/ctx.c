/* The context: creation, reference counting and enum-keyed options. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/ctx_impl.h"

#define THREADS_MAX 256

static void *default_alloc(void *user, size_t size, size_t alignment) {
  (void)user;
  void *p = NULL;
  /* posix_memalign, unlike aligned_alloc, takes any size. */
  return posix_memalign(&p, alignment, size ? size : 1) == 0 ? p : NULL;
}

static void default_free(void *user, void *ptr, size_t size) {
  (void)user;
  (void)size;
  free(ptr);
}

/* LVMMED_NUM_THREADS when it is a valid count, else the online CPUs. */
static unsigned default_threads(void) {
  const char *env = getenv("LVMMED_NUM_THREADS");
  if (env && *env) {
    char *end;
    errno = 0;
    long v = strtol(env, &end, 10);
    if (errno == 0 && *end == '\0' && v >= 1 && v <= THREADS_MAX) return (unsigned)v;
  }
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  if (n < 1) return 1;
  return n > THREADS_MAX ? THREADS_MAX : (unsigned)n;
}

static lvmmed_backend resolve_backend(lvmmed_backend requested) {
  if (requested != LVMMED_BACKEND_AUTO) return requested;
  return lvmmed__backend_table(LVMMED_BACKEND_OPENBLAS) ? LVMMED_BACKEND_OPENBLAS
                                                        : LVMMED_BACKEND_REFERENCE;
}

/* Switches ctx to backend (AUTO resolved); the backend's init slot runs first. */
static lvmmed_status select_backend(lvmmed_ctx *ctx, lvmmed_backend requested) {
  lvmmed_backend id = resolve_backend(requested);
  const lvmmed_backend_ops *table = lvmmed__backend_table(id);
  if (!table)
    return lvmmed__fail(ctx, LVMMED_ERR_BACKEND_UNAVAILABLE,
                        "backend %d (%s) is not built into this library", (int)requested,
                        lvmmed_backend_name(requested));
  if (table->api_version != LVMMED_BACKEND_API_VERSION)
    return lvmmed__fail(ctx, LVMMED_ERR_INTERNAL, "backend %s has vtable version %d, expected %d",
                        table->name, table->api_version, LVMMED_BACKEND_API_VERSION);
  if (table->init) {
    lvmmed_status st = table->init(ctx);
    if (st != LVMMED_OK) return st;
  }
  lvmmed__backend_resolve(table, &ctx->ops);
  ctx->backend = id;
  return LVMMED_OK;
}

lvmmed_status lvmmed_ctx_create(lvmmed_ctx **out) { return lvmmed_ctx_create_with_allocator(out, NULL); }

lvmmed_status lvmmed_ctx_create_with_allocator(lvmmed_ctx **out, const lvmmed_allocator *allocator) {
  if (!out) return LVMMED_ERR_INVALID_ARGUMENT;
  *out = NULL;
  lvmmed_allocator a = {default_alloc, default_free, NULL};
  if (allocator) {
    if (!allocator->alloc || !allocator->free) return LVMMED_ERR_INVALID_ARGUMENT;
    a = *allocator;
  }
  lvmmed_ctx *ctx = a.alloc(a.user, sizeof *ctx, LVMMED_ALIGNMENT);
  if (!ctx) return LVMMED_ERR_OUT_OF_MEMORY;
  memset(ctx, 0, sizeof *ctx);
  atomic_init(&ctx->refcount, 1);
  ctx->allocator = a;
  ctx->threads = default_threads();
  ctx->log_level = LVMMED_LOG_WARN;
  if (pthread_mutex_init(&ctx->log_lock, NULL) != 0) {
    a.free(a.user, ctx, sizeof *ctx);
    return LVMMED_ERR_THREAD;
  }
  if (pthread_mutex_init(&ctx->pool_lock, NULL) != 0) {
    pthread_mutex_destroy(&ctx->log_lock);
    a.free(a.user, ctx, sizeof *ctx);
    return LVMMED_ERR_THREAD;
  }
  lvmmed_status st = select_backend(ctx, LVMMED_BACKEND_AUTO);
  if (st != LVMMED_OK) {
    lvmmed_ctx_release(ctx);
    return st;
  }
  *out = ctx;
  return LVMMED_OK;
}

lvmmed_ctx *lvmmed_ctx_retain(lvmmed_ctx *ctx) {
  if (ctx) atomic_fetch_add_explicit(&ctx->refcount, 1, memory_order_relaxed);
  return ctx;
}

void lvmmed_ctx_release(lvmmed_ctx *ctx) {
  if (!ctx) return;
  if (atomic_fetch_sub_explicit(&ctx->refcount, 1, memory_order_acq_rel) != 1) return;
  lvmmed__pool_destroy(ctx, ctx->pool);
  pthread_mutex_destroy(&ctx->pool_lock);
  pthread_mutex_destroy(&ctx->log_lock);
  lvmmed_allocator a = ctx->allocator;
  a.free(a.user, ctx, sizeof *ctx);
}

unsigned lvmmed_ctx_refcount(const lvmmed_ctx *ctx) {
  return ctx ? atomic_load_explicit(&((lvmmed_ctx *)ctx)->refcount, memory_order_relaxed) : 0;
}

static const char *option_name(lvmmed_ctx_option option) {
  switch (option) {
    case LVMMED_CTX_OPT_THREADS: return "threads";
    case LVMMED_CTX_OPT_SEED: return "seed";
    case LVMMED_CTX_OPT_BACKEND: return "backend";
    case LVMMED_CTX_OPT_LOG_LEVEL: return "log_level";
  }
  return "unknown";
}

lvmmed_status lvmmed_ctx_option_bounds(lvmmed_ctx_option option, int64_t *min_value,
                                       int64_t *max_value) {
  if (!min_value || !max_value) return LVMMED_ERR_INVALID_ARGUMENT;
  switch (option) {
    case LVMMED_CTX_OPT_THREADS: *min_value = 1; *max_value = THREADS_MAX; return LVMMED_OK;
    case LVMMED_CTX_OPT_SEED: *min_value = 0; *max_value = INT64_MAX; return LVMMED_OK;
    case LVMMED_CTX_OPT_BACKEND:
      *min_value = LVMMED_BACKEND_AUTO;
      *max_value = LVMMED_BACKEND_CUDA;
      return LVMMED_OK;
    case LVMMED_CTX_OPT_LOG_LEVEL:
      *min_value = LVMMED_LOG_DEBUG;
      *max_value = LVMMED_LOG_NONE;
      return LVMMED_OK;
  }
  return LVMMED_ERR_INVALID_ARGUMENT;
}

lvmmed_status lvmmed_ctx_set_option(lvmmed_ctx *ctx, lvmmed_ctx_option option, int64_t value) {
  if (!ctx) return LVMMED_ERR_INVALID_ARGUMENT;
  int64_t lo, hi;
  if (lvmmed_ctx_option_bounds(option, &lo, &hi) != LVMMED_OK)
    return lvmmed__fail(ctx, LVMMED_ERR_INVALID_ARGUMENT, "lvmmed_ctx_set_option: unknown option %d",
                        (int)option);
  if (value < lo || value > hi)
    return lvmmed__fail(ctx, LVMMED_ERR_OUT_OF_RANGE,
                        "lvmmed_ctx_set_option: %s = %" PRId64 " outside [%" PRId64 ", %" PRId64 "]",
                        option_name(option), value, lo, hi);
  switch (option) {
    case LVMMED_CTX_OPT_THREADS:
      ctx->threads = (unsigned)value;
      lvmmed__log(ctx, LVMMED_LOG_INFO, "threads set to %u", ctx->threads);
      return LVMMED_OK;
    case LVMMED_CTX_OPT_SEED:
      ctx->seed = (uint64_t)value;
      return LVMMED_OK;
    case LVMMED_CTX_OPT_BACKEND:
      if (lvmmed_ctx_refcount(ctx) > 1)
        return lvmmed__fail(ctx, LVMMED_ERR_STATE,
                            "lvmmed_ctx_set_option: backend cannot change while %u handles hold "
                            "the context",
                            lvmmed_ctx_refcount(ctx) - 1);
      return select_backend(ctx, (lvmmed_backend)value);
    case LVMMED_CTX_OPT_LOG_LEVEL:
      ctx->log_level = (lvmmed_log_level)value;
      return LVMMED_OK;
  }
  return LVMMED_ERR_INTERNAL; /* unreachable: bounds rejected unknown options */
}

lvmmed_status lvmmed_ctx_get_option(const lvmmed_ctx *ctx, lvmmed_ctx_option option, int64_t *value) {
  if (!ctx || !value) return LVMMED_ERR_INVALID_ARGUMENT;
  switch (option) {
    case LVMMED_CTX_OPT_THREADS: *value = ctx->threads; return LVMMED_OK;
    case LVMMED_CTX_OPT_SEED: *value = (int64_t)ctx->seed; return LVMMED_OK;
    case LVMMED_CTX_OPT_BACKEND: *value = ctx->backend; return LVMMED_OK;
    case LVMMED_CTX_OPT_LOG_LEVEL: *value = ctx->log_level; return LVMMED_OK;
  }
  return lvmmed__fail(ctx, LVMMED_ERR_INVALID_ARGUMENT, "lvmmed_ctx_get_option: unknown option %d",
                      (int)option);
}

int lvmmed_backend_available(lvmmed_backend b) {
  if (b == LVMMED_BACKEND_AUTO) return 1;
  return lvmmed__backend_table(b) != NULL;
}

const char *lvmmed_backend_name(lvmmed_backend b) {
  switch (b) {
    case LVMMED_BACKEND_AUTO: return "auto";
    case LVMMED_BACKEND_REFERENCE: return "reference";
    case LVMMED_BACKEND_OPENBLAS: return "openblas";
    case LVMMED_BACKEND_CUDA: return "cuda";
  }
  return "unknown";
}

const lvmmed_backend_ops *lvmmed__backend(const lvmmed_ctx *ctx) { return &ctx->ops; }

unsigned lvmmed__ctx_threads(const lvmmed_ctx *ctx) { return ctx->threads; }

uint64_t lvmmed__ctx_seed(const lvmmed_ctx *ctx) { return ctx->seed; }
