/* Error recording and logging. The library never prints on its own. */
#include <stdio.h>
#include <string.h>

#include "core/ctx_impl.h"

lvmmed_status lvmmed__fail(const lvmmed_ctx *cctx, lvmmed_status status, const char *fmt, ...) {
  if (!cctx) return status;
  lvmmed_ctx *ctx = (lvmmed_ctx *)cctx; /* the error slot is the context's one mutable part */
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(ctx->last_error, sizeof ctx->last_error, fmt, ap);
  va_end(ap);
  ctx->last_status = status;
  lvmmed__log(ctx, LVMMED_LOG_DEBUG, "%s: %s", lvmmed_status_name(status), ctx->last_error);
  return status;
}

void lvmmed__log(lvmmed_ctx *ctx, lvmmed_log_level level, const char *fmt, ...) {
  if (!ctx || !ctx->log_fn || level < ctx->log_level || level >= LVMMED_LOG_NONE) return;
  char message[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(message, sizeof message, fmt, ap);
  va_end(ap);
  pthread_mutex_lock(&ctx->log_lock);
  lvmmed_log_fn fn = ctx->log_fn;
  void *user = ctx->log_user;
  if (fn) fn(user, level, message);
  pthread_mutex_unlock(&ctx->log_lock);
}

const char *lvmmed_ctx_last_error(const lvmmed_ctx *ctx) { return ctx ? ctx->last_error : ""; }

lvmmed_status lvmmed_ctx_last_status(const lvmmed_ctx *ctx) {
  return ctx ? ctx->last_status : LVMMED_OK;
}

void lvmmed_ctx_clear_error(lvmmed_ctx *ctx) {
  if (!ctx) return;
  ctx->last_error[0] = '\0';
  ctx->last_status = LVMMED_OK;
}

lvmmed_status lvmmed_ctx_set_log_callback(lvmmed_ctx *ctx, lvmmed_log_fn fn, void *user) {
  if (!ctx) return LVMMED_ERR_INVALID_ARGUMENT;
  pthread_mutex_lock(&ctx->log_lock);
  ctx->log_fn = fn;
  ctx->log_user = fn ? user : NULL;
  pthread_mutex_unlock(&ctx->log_lock);
  return LVMMED_OK;
}
