/* liblvmmed — status codes.
 *
 * Every fallible call returns an lvmmed_status: 0 on success, a negative
 * code on failure. Codes are never renumbered; new ones are only appended.
 * When a call that takes a context fails, lvmmed_ctx_last_error() gives a
 * message naming the cause.
 */
#ifndef LVMMED_STATUS_H
#define LVMMED_STATUS_H

#include <lvmmed/export.h>

/* X(NAME, value, description) — the single list behind the enum,
 * lvmmed_status_name() and lvmmed_status_describe(). */
#define LVMMED_STATUS_MAP(X)                                                    \
  X(OK, 0, "success")                                                          \
  X(ERR_INVALID_ARGUMENT, -1, "invalid argument")                              \
  X(ERR_OUT_OF_MEMORY, -2, "out of memory")                                    \
  X(ERR_UNSUPPORTED, -3, "operation or feature not supported by this build")   \
  X(ERR_IO, -4, "input/output error")                                          \
  X(ERR_FORMAT, -5, "malformed or unsupported file contents")                  \
  X(ERR_SHAPE, -6, "tensor shape mismatch")                                    \
  X(ERR_OUT_OF_RANGE, -7, "value outside its allowed range")                   \
  X(ERR_ABI_MISMATCH, -8, "library ABI differs from the headers used")         \
  X(ERR_BACKEND_UNAVAILABLE, -9, "requested compute backend is not available") \
  X(ERR_INTERNAL, -10, "internal error")                                       \
  X(ERR_NOT_FOUND, -11, "named item not found")                                \
  X(ERR_STATE, -12, "call not valid in the object's current state")            \
  X(ERR_LIMIT, -13, "input exceeds a configured limit")                        \
  X(ERR_NUMERIC, -14, "non-finite value encountered")                          \
  X(ERR_THREAD, -15, "could not start or synchronise a thread")

/** Result of every fallible liblvmmed call. */
typedef enum lvmmed_status {
#define LVMMED_STATUS_ENUM_(name, value, text) LVMMED_##name = value,
  LVMMED_STATUS_MAP(LVMMED_STATUS_ENUM_)
#undef LVMMED_STATUS_ENUM_
  LVMMED_STATUS_LAST_ = -15 /**< the most negative code defined so far */
} lvmmed_status;

LVMMED_EXTERN_C_BEGIN

/**
 * Symbolic name of a status, e.g. "LVMMED_ERR_IO". Unknown values give
 * "LVMMED_UNKNOWN_STATUS". Static storage; never NULL.
 */
LVMMED_API const char *lvmmed_status_name(int status);

/** One-line English description of a status. Static storage; never NULL. */
LVMMED_API const char *lvmmed_status_describe(int status);

LVMMED_EXTERN_C_END

#endif /* LVMMED_STATUS_H */
