/* context_info — the smallest liblvmmed program: check the ABI, make a
 * context, set options, see an error message, release.
 *
 *   cc context_info.c $(pkg-config --cflags --libs lvmmed) -o context_info
 */
#include <inttypes.h>
#include <stdio.h>

#include <lvmmed/lvmmed.h>

static void print_log(void *user, lvmmed_log_level level, const char *message) {
  (void)user;
  fprintf(stderr, "[lvmmed %d] %s\n", (int)level, message);
}

int main(void) {
  if (LVMMED_ABI_CHECK() != LVMMED_OK) {
    fprintf(stderr, "liblvmmed ABI %u, but compiled for %u\n", lvmmed_abi_version(),
            (unsigned)LVMMED_ABI_VERSION);
    return 1;
  }
  lvmmed_ctx *ctx = NULL;
  lvmmed_status st = lvmmed_ctx_create(&ctx);
  if (st != LVMMED_OK) {
    fprintf(stderr, "lvmmed_ctx_create: %s\n", lvmmed_status_name(st));
    return 1;
  }
  lvmmed_ctx_set_log_callback(ctx, print_log, NULL);
  lvmmed_ctx_set_option(ctx, LVMMED_CTX_OPT_LOG_LEVEL, LVMMED_LOG_INFO);
  lvmmed_ctx_set_option(ctx, LVMMED_CTX_OPT_THREADS, 2);
  lvmmed_ctx_set_option(ctx, LVMMED_CTX_OPT_SEED, 42);

  int64_t threads = 0, backend = 0;
  lvmmed_ctx_get_option(ctx, LVMMED_CTX_OPT_THREADS, &threads);
  lvmmed_ctx_get_option(ctx, LVMMED_CTX_OPT_BACKEND, &backend);
  printf("liblvmmed %s: threads=%" PRId64 " backend=%s\n", lvmmed_version_string(), threads,
         lvmmed_backend_name((lvmmed_backend)backend));

  /* A deliberate mistake shows how errors are reported. */
  st = lvmmed_ctx_set_option(ctx, LVMMED_CTX_OPT_THREADS, 0);
  printf("expected failure: %s: %s\n", lvmmed_status_name(st), lvmmed_ctx_last_error(ctx));

  lvmmed_ctx_release(ctx);
  return st == LVMMED_ERR_OUT_OF_RANGE ? 0 : 1;
}
