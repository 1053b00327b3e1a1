/* liblvmmed — the context.
 *
 * An lvmmed_ctx carries what every other object shares: the allocator, the
 * log callback, the thread count, the seed, the compute backend, and the
 * last error message. Contexts are reference counted; every handle created
 * from a context holds a reference on it, so a context lives until its last
 * handle is freed.
 *
 * Threading: one context (and each handle) is used by one thread at a time;
 * distinct contexts may be used concurrently. Intra-operation parallelism
 * uses at most LVMMED_CTX_OPT_THREADS threads in total, OpenBLAS's included.
 */
#ifndef LVMMED_CTX_H
#define LVMMED_CTX_H

#include <stddef.h>
#include <stdint.h>

#include <lvmmed/export.h>
#include <lvmmed/status.h>

LVMMED_EXTERN_C_BEGIN

/** Opaque context. */
typedef struct lvmmed_ctx lvmmed_ctx;

/**
 * Memory hooks. alloc returns a block of at least size bytes aligned to
 * alignment (a power of two, at least sizeof(void *)), or NULL on failure;
 * free releases a block from alloc (ptr never NULL; size is the size that
 * was requested). Both must be thread-safe. The struct is copied at
 * context creation; user is passed back unchanged.
 */
typedef struct lvmmed_allocator {
  void *(*alloc)(void *user, size_t size, size_t alignment);
  void (*free)(void *user, void *ptr, size_t size);
  void *user;
} lvmmed_allocator;

/** Severity of a log message. */
typedef enum lvmmed_log_level {
  LVMMED_LOG_DEBUG = 0,
  LVMMED_LOG_INFO = 1,
  LVMMED_LOG_WARN = 2,
  LVMMED_LOG_ERROR = 3,
  LVMMED_LOG_NONE = 4 /**< as a threshold: deliver nothing */
} lvmmed_log_level;

/**
 * Receives log messages at or above the context's LVMMED_CTX_OPT_LOG_LEVEL.
 * message is valid only during the call and has no trailing newline. It may
 * be called from a worker thread of the context, never concurrently for one
 * context.
 */
typedef void (*lvmmed_log_fn)(void *user, lvmmed_log_level level, const char *message);

/** Compute backends. Values are stable. */
typedef enum lvmmed_backend {
  LVMMED_BACKEND_AUTO = 0,      /**< the fastest available (OpenBLAS when built in) */
  LVMMED_BACKEND_REFERENCE = 1, /**< plain C loops: slow, the test oracle */
  LVMMED_BACKEND_OPENBLAS = 2,  /**< OpenBLAS-backed CPU kernels */
  LVMMED_BACKEND_CUDA = 3       /**< reserved; not available in this version */
} lvmmed_backend;

/** Enum-keyed context options (see lvmmed_ctx_option_bounds for ranges). */
typedef enum lvmmed_ctx_option {
  /** Threads for intra-op parallelism, OpenBLAS included. Default: online CPUs (capped at 256). */
  LVMMED_CTX_OPT_THREADS = 1,
  /** Seed of every random stream the context hands out. Default 0. */
  LVMMED_CTX_OPT_SEED = 2,
  /** An lvmmed_backend value. Default AUTO; reading it gives the resolved backend.
   *  Settable only while no handle holds the context (else LVMMED_ERR_STATE). */
  LVMMED_CTX_OPT_BACKEND = 3,
  /** Lowest lvmmed_log_level passed to the log callback. Default LVMMED_LOG_WARN. */
  LVMMED_CTX_OPT_LOG_LEVEL = 4
} lvmmed_ctx_option;

/** Creates a context with the default allocator (malloc-based). *out is NULL on failure. */
LVMMED_API lvmmed_status lvmmed_ctx_create(lvmmed_ctx **out);

/**
 * Creates a context whose every allocation goes through *allocator (copied).
 * allocator NULL means the default. Both hooks must be set otherwise.
 */
LVMMED_API lvmmed_status lvmmed_ctx_create_with_allocator(lvmmed_ctx **out,
                                                          const lvmmed_allocator *allocator);

/** Adds a reference and returns ctx (NULL stays NULL). */
LVMMED_API lvmmed_ctx *lvmmed_ctx_retain(lvmmed_ctx *ctx);

/** Drops a reference; the last one frees the context and joins its threads. NULL is a no-op. */
LVMMED_API void lvmmed_ctx_release(lvmmed_ctx *ctx);

/** Current reference count (diagnostics and tests); 0 for NULL. */
LVMMED_API unsigned lvmmed_ctx_refcount(const lvmmed_ctx *ctx);

/**
 * Sets an option. Out-of-range values give LVMMED_ERR_OUT_OF_RANGE and
 * leave the option unchanged; unknown options give LVMMED_ERR_INVALID_ARGUMENT.
 */
LVMMED_API lvmmed_status lvmmed_ctx_set_option(lvmmed_ctx *ctx, lvmmed_ctx_option option,
                                               int64_t value);

/** Reads an option into *value. */
LVMMED_API lvmmed_status lvmmed_ctx_get_option(const lvmmed_ctx *ctx, lvmmed_ctx_option option,
                                               int64_t *value);

/** Inclusive range [*min_value, *max_value] accepted by lvmmed_ctx_set_option for option. */
LVMMED_API lvmmed_status lvmmed_ctx_option_bounds(lvmmed_ctx_option option, int64_t *min_value,
                                                  int64_t *max_value);

/** Installs (or with fn NULL, removes) the log callback. */
LVMMED_API lvmmed_status lvmmed_ctx_set_log_callback(lvmmed_ctx *ctx, lvmmed_log_fn fn,
                                                     void *user);

/**
 * Message of the last failed call made with ctx, naming the cause (for
 * example "lvmmed_ctx_set_option: threads = 0 outside [1, 256]"), or "" if
 * none failed since the last lvmmed_ctx_clear_error. Valid until the next
 * call with ctx. NULL ctx gives "".
 */
LVMMED_API const char *lvmmed_ctx_last_error(const lvmmed_ctx *ctx);

/** Status of the last failed call made with ctx (LVMMED_OK if none). */
LVMMED_API lvmmed_status lvmmed_ctx_last_status(const lvmmed_ctx *ctx);

/** Forgets the last error. */
LVMMED_API void lvmmed_ctx_clear_error(lvmmed_ctx *ctx);

/** 1 if this build can run backend b, else 0. AUTO is always available. */
LVMMED_API int lvmmed_backend_available(lvmmed_backend b);

/** Lower-case name of a backend ("reference", "openblas", ...), "unknown" otherwise. */
LVMMED_API const char *lvmmed_backend_name(lvmmed_backend b);

LVMMED_EXTERN_C_END

#endif /* LVMMED_CTX_H */
