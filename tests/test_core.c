/* Core: status table, versions, context lifetime, options, allocator hooks, errors, logging. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/core.h"
#include "core/pool.h"
#include "lvmmed_config.h"
#include "test_util.h"

/* ---- status ---- */

START_TEST(status_names_follow_the_table) {
#define CHECK_NAME_(name, value, text)                                   \
  ck_assert_str_eq(lvmmed_status_name(value), "LVMMED_" #name);          \
  ck_assert_str_eq(lvmmed_status_describe(value), text);                 \
  ck_assert_int_eq(LVMMED_##name, value);
  LVMMED_STATUS_MAP(CHECK_NAME_)
#undef CHECK_NAME_
  ck_assert_str_eq(lvmmed_status_name(1), "LVMMED_UNKNOWN_STATUS");
  ck_assert_str_eq(lvmmed_status_name(LVMMED_STATUS_LAST_ - 1), "LVMMED_UNKNOWN_STATUS");
  ck_assert_str_eq(lvmmed_status_describe(12345), "unknown status code");
}
END_TEST

START_TEST(status_codes_are_contiguous_and_last_is_lowest) {
  int count = 0, lowest = 0;
#define COUNT_(name, value, text) \
  count++;                        \
  if (value < lowest) lowest = value;
  LVMMED_STATUS_MAP(COUNT_)
#undef COUNT_
  ck_assert_int_eq(lowest, LVMMED_STATUS_LAST_);
  ck_assert_int_eq(count, 1 - LVMMED_STATUS_LAST_);
  for (int s = LVMMED_STATUS_LAST_; s <= 0; s++)
    ck_assert_str_ne(lvmmed_status_name(s), "LVMMED_UNKNOWN_STATUS");
}
END_TEST

/* ---- version ---- */

START_TEST(version_matches_headers) {
  ck_assert_str_eq(lvmmed_version_string(), LVMMED_VERSION_STRING);
  ck_assert_uint_eq(lvmmed_version_number(), LVMMED_VERSION_NUMBER);
  char expect[32];
  snprintf(expect, sizeof expect, "%d.%d.%d", LVMMED_VERSION_MAJOR, LVMMED_VERSION_MINOR,
           LVMMED_VERSION_PATCH);
  ck_assert_str_eq(lvmmed_version_string(), expect);
  ck_assert_uint_eq(lvmmed_abi_version(), LVMMED_ABI_VERSION);
  ck_assert_int_eq(LVMMED_ABI_CHECK(), LVMMED_OK);
  ck_assert_int_eq(lvmmed_abi_check(LVMMED_ABI_VERSION + 1), LVMMED_ERR_ABI_MISMATCH);
}
END_TEST

/* ---- context lifetime ---- */

START_TEST(ctx_refcount) {
  lvmmed_ctx *ctx = NULL;
  ck_assert_int_eq(lvmmed_ctx_create(&ctx), LVMMED_OK);
  ck_assert_ptr_nonnull(ctx);
  ck_assert_uint_eq(lvmmed_ctx_refcount(ctx), 1);
  ck_assert_ptr_eq(lvmmed_ctx_retain(ctx), ctx);
  ck_assert_uint_eq(lvmmed_ctx_refcount(ctx), 2);
  lvmmed_ctx_release(ctx);
  ck_assert_uint_eq(lvmmed_ctx_refcount(ctx), 1);
  lvmmed_ctx_release(ctx);
  /* NULL is accepted everywhere a handle is released or queried. */
  lvmmed_ctx_release(NULL);
  ck_assert_ptr_null(lvmmed_ctx_retain(NULL));
  ck_assert_uint_eq(lvmmed_ctx_refcount(NULL), 0);
  ck_assert_str_eq(lvmmed_ctx_last_error(NULL), "");
  ck_assert_int_eq(lvmmed_ctx_create(NULL), LVMMED_ERR_INVALID_ARGUMENT);
}
END_TEST

/* ---- options ---- */

START_TEST(ctx_option_defaults) {
  lvmmed_ctx *ctx;
  ck_assert_int_eq(lvmmed_ctx_create(&ctx), LVMMED_OK);
  int64_t v;
  ck_assert_lvmmed_ok(ctx, lvmmed_ctx_get_option(ctx, LVMMED_CTX_OPT_THREADS, &v));
  ck_assert_int_ge(v, 1);
  ck_assert_lvmmed_ok(ctx, lvmmed_ctx_get_option(ctx, LVMMED_CTX_OPT_SEED, &v));
  ck_assert_int_eq(v, 0);
  ck_assert_lvmmed_ok(ctx, lvmmed_ctx_get_option(ctx, LVMMED_CTX_OPT_BACKEND, &v));
  ck_assert_int_ne(v, LVMMED_BACKEND_AUTO); /* AUTO reads back resolved */
  ck_assert(lvmmed_backend_available((lvmmed_backend)v));
  ck_assert_lvmmed_ok(ctx, lvmmed_ctx_get_option(ctx, LVMMED_CTX_OPT_LOG_LEVEL, &v));
  ck_assert_int_eq(v, LVMMED_LOG_WARN);
  ck_assert_str_eq(lvmmed_ctx_last_error(ctx), "");
  ck_assert_int_eq(lvmmed_ctx_last_status(ctx), LVMMED_OK);
  lvmmed_ctx_release(ctx);
}
END_TEST

START_TEST(ctx_threads_default_from_environment) {
  setenv("LVMMED_NUM_THREADS", "3", 1);
  lvmmed_ctx *ctx;
  ck_assert_int_eq(lvmmed_ctx_create(&ctx), LVMMED_OK);
  int64_t v;
  ck_assert_lvmmed_ok(ctx, lvmmed_ctx_get_option(ctx, LVMMED_CTX_OPT_THREADS, &v));
  ck_assert_int_eq(v, 3);
  lvmmed_ctx_release(ctx);
  setenv("LVMMED_NUM_THREADS", "junk", 1); /* ignored, not an error */
  ck_assert_int_eq(lvmmed_ctx_create(&ctx), LVMMED_OK);
  ck_assert_lvmmed_ok(ctx, lvmmed_ctx_get_option(ctx, LVMMED_CTX_OPT_THREADS, &v));
  ck_assert_int_ge(v, 1);
  lvmmed_ctx_release(ctx);
  unsetenv("LVMMED_NUM_THREADS");
}
END_TEST

static const lvmmed_ctx_option all_options[] = {LVMMED_CTX_OPT_THREADS, LVMMED_CTX_OPT_SEED,
                                                LVMMED_CTX_OPT_BACKEND, LVMMED_CTX_OPT_LOG_LEVEL};

START_TEST(ctx_option_bounds_are_enforced) {
  lvmmed_ctx *ctx;
  ck_assert_int_eq(lvmmed_ctx_create(&ctx), LVMMED_OK);
  for (size_t i = 0; i < sizeof all_options / sizeof all_options[0]; i++) {
    lvmmed_ctx_option opt = all_options[i];
    int64_t lo, hi, before, after;
    ck_assert_int_eq(lvmmed_ctx_option_bounds(opt, &lo, &hi), LVMMED_OK);
    ck_assert_int_le(lo, hi);
    ck_assert_lvmmed_ok(ctx, lvmmed_ctx_get_option(ctx, opt, &before));
    if (hi < INT64_MAX) {
      ck_assert_int_eq(lvmmed_ctx_set_option(ctx, opt, hi + 1), LVMMED_ERR_OUT_OF_RANGE);
      ck_assert_int_eq(lvmmed_ctx_last_status(ctx), LVMMED_ERR_OUT_OF_RANGE);
      ck_assert_ptr_nonnull(strstr(lvmmed_ctx_last_error(ctx), "outside"));
    }
    ck_assert_int_eq(lvmmed_ctx_set_option(ctx, opt, lo - 1), LVMMED_ERR_OUT_OF_RANGE);
    ck_assert_lvmmed_ok(ctx, lvmmed_ctx_get_option(ctx, opt, &after));
    ck_assert_int_eq(before, after); /* a rejected value changes nothing */
  }
  ck_assert_int_eq(lvmmed_ctx_set_option(ctx, LVMMED_CTX_OPT_THREADS, 0), LVMMED_ERR_OUT_OF_RANGE);
  ck_assert_str_eq(lvmmed_ctx_last_error(ctx), "lvmmed_ctx_set_option: threads = 0 outside [1, 256]");
  lvmmed_ctx_clear_error(ctx);
  ck_assert_str_eq(lvmmed_ctx_last_error(ctx), "");
  int64_t lo, hi;
  ck_assert_int_eq(lvmmed_ctx_option_bounds((lvmmed_ctx_option)77, &lo, &hi),
                   LVMMED_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(lvmmed_ctx_option_bounds(LVMMED_CTX_OPT_SEED, NULL, &hi), LVMMED_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(lvmmed_ctx_set_option(ctx, (lvmmed_ctx_option)77, 1), LVMMED_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(lvmmed_ctx_last_error(ctx), "unknown option 77"));
  ck_assert_int_eq(lvmmed_ctx_get_option(ctx, (lvmmed_ctx_option)77, &lo), LVMMED_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(lvmmed_ctx_get_option(ctx, LVMMED_CTX_OPT_SEED, NULL), LVMMED_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(lvmmed_ctx_set_option(NULL, LVMMED_CTX_OPT_SEED, 1), LVMMED_ERR_INVALID_ARGUMENT);
  lvmmed_ctx_release(ctx);
}
END_TEST

START_TEST(ctx_options_round_trip) {
  lvmmed_ctx *ctx;
  ck_assert_int_eq(lvmmed_ctx_create(&ctx), LVMMED_OK);
  int64_t v;
  ck_assert_lvmmed_ok(ctx, lvmmed_ctx_set_option(ctx, LVMMED_CTX_OPT_SEED, INT64_MAX));
  ck_assert_lvmmed_ok(ctx, lvmmed_ctx_get_option(ctx, LVMMED_CTX_OPT_SEED, &v));
  ck_assert_int_eq(v, INT64_MAX);
  ck_assert_uint_eq(lvmmed__ctx_seed(ctx), (uint64_t)INT64_MAX);
  ck_assert_lvmmed_ok(ctx, lvmmed_ctx_set_option(ctx, LVMMED_CTX_OPT_THREADS, 5));
  ck_assert_uint_eq(lvmmed__ctx_threads(ctx), 5);
  ck_assert_lvmmed_ok(ctx, lvmmed_ctx_set_option(ctx, LVMMED_CTX_OPT_LOG_LEVEL, LVMMED_LOG_NONE));
  ck_assert_lvmmed_ok(ctx, lvmmed_ctx_get_option(ctx, LVMMED_CTX_OPT_LOG_LEVEL, &v));
  ck_assert_int_eq(v, LVMMED_LOG_NONE);
  lvmmed_ctx_release(ctx);
}
END_TEST

START_TEST(ctx_backend_selection) {
  lvmmed_ctx *ctx;
  ck_assert_int_eq(lvmmed_ctx_create(&ctx), LVMMED_OK);
  int64_t v;
  ck_assert(lvmmed_backend_available(LVMMED_BACKEND_AUTO));
  ck_assert(lvmmed_backend_available(LVMMED_BACKEND_REFERENCE));
  ck_assert(!lvmmed_backend_available(LVMMED_BACKEND_CUDA));
  ck_assert(!lvmmed_backend_available((lvmmed_backend)42));
  ck_assert_str_eq(lvmmed_backend_name(LVMMED_BACKEND_REFERENCE), "reference");
  ck_assert_str_eq(lvmmed_backend_name(LVMMED_BACKEND_OPENBLAS), "openblas");
  ck_assert_str_eq(lvmmed_backend_name((lvmmed_backend)42), "unknown");

  ck_assert_lvmmed_ok(ctx, lvmmed_ctx_set_option(ctx, LVMMED_CTX_OPT_BACKEND, LVMMED_BACKEND_REFERENCE));
  ck_assert_lvmmed_ok(ctx, lvmmed_ctx_get_option(ctx, LVMMED_CTX_OPT_BACKEND, &v));
  ck_assert_int_eq(v, LVMMED_BACKEND_REFERENCE);

  ck_assert_int_eq(lvmmed_ctx_set_option(ctx, LVMMED_CTX_OPT_BACKEND, LVMMED_BACKEND_CUDA),
                   LVMMED_ERR_BACKEND_UNAVAILABLE);
  ck_assert_ptr_nonnull(strstr(lvmmed_ctx_last_error(ctx), "cuda"));
  ck_assert_lvmmed_ok(ctx, lvmmed_ctx_get_option(ctx, LVMMED_CTX_OPT_BACKEND, &v));
  ck_assert_int_eq(v, LVMMED_BACKEND_REFERENCE);

  /* A handle holding the context pins its backend. */
  lvmmed_ctx_retain(ctx);
  ck_assert_int_eq(lvmmed_ctx_set_option(ctx, LVMMED_CTX_OPT_BACKEND, LVMMED_BACKEND_AUTO),
                   LVMMED_ERR_STATE);
  lvmmed_ctx_release(ctx);
  ck_assert_lvmmed_ok(ctx, lvmmed_ctx_set_option(ctx, LVMMED_CTX_OPT_BACKEND, LVMMED_BACKEND_AUTO));
  ck_assert_lvmmed_ok(ctx, lvmmed_ctx_get_option(ctx, LVMMED_CTX_OPT_BACKEND, &v));
  ck_assert_int_eq(v, LVMMED_HAVE_OPENBLAS ? LVMMED_BACKEND_OPENBLAS : LVMMED_BACKEND_REFERENCE);
  lvmmed_ctx_release(ctx);
}
END_TEST

/* ---- allocator hooks ---- */

typedef struct counting_alloc {
  long live_blocks;
  long total_calls;
  size_t live_bytes;
  long fail_after; /* -1: never fail */
} counting_alloc;

static void *counting_malloc(void *user, size_t size, size_t alignment) {
  counting_alloc *c = user;
  if (c->fail_after >= 0 && c->total_calls >= c->fail_after) return NULL;
  c->total_calls++;
  void *p = NULL;
  if (posix_memalign(&p, alignment, size) != 0) return NULL;
  c->live_blocks++;
  c->live_bytes += size;
  return p;
}

static void counting_free(void *user, void *ptr, size_t size) {
  counting_alloc *c = user;
  c->live_blocks--;
  c->live_bytes -= size;
  free(ptr);
}

START_TEST(allocator_hooks_see_every_block) {
  counting_alloc counts = {0, 0, 0, -1};
  lvmmed_allocator a = {counting_malloc, counting_free, &counts};
  lvmmed_ctx *ctx;
  ck_assert_int_eq(lvmmed_ctx_create_with_allocator(&ctx, &a), LVMMED_OK);
  ck_assert_int_eq(counts.live_blocks, 1);
  float *x = lvmmed__alloc(ctx, 1000 * sizeof(float));
  ck_assert_ptr_nonnull(x);
  ck_assert_uint_eq((uintptr_t)x % LVMMED_ALIGNMENT, 0);
  x[999] = 1.0f;
  ck_assert_int_eq(counts.live_blocks, 2);
  double *z = lvmmed__calloc(ctx, 17, sizeof(double));
  ck_assert_ptr_nonnull(z);
  for (int i = 0; i < 17; i++) ck_assert(z[i] == 0.0);
  ck_assert_ptr_null(lvmmed__calloc(ctx, SIZE_MAX / 2, 4)); /* overflow is refused */
  ck_assert_ptr_null(lvmmed__alloc(ctx, SIZE_MAX - 8));
  lvmmed__free(ctx, x);
  lvmmed__free(ctx, z);
  lvmmed__free(ctx, NULL);
  ck_assert_int_eq(counts.live_blocks, 1);
  lvmmed_ctx_release(ctx);
  ck_assert_int_eq(counts.live_blocks, 0);
  ck_assert_uint_eq(counts.live_bytes, 0);
}
END_TEST

START_TEST(allocator_failure_is_reported) {
  counting_alloc counts = {0, 0, 0, 0};
  lvmmed_allocator a = {counting_malloc, counting_free, &counts};
  lvmmed_ctx *ctx = (lvmmed_ctx *)&counts; /* must be reset to NULL on failure */
  ck_assert_int_eq(lvmmed_ctx_create_with_allocator(&ctx, &a), LVMMED_ERR_OUT_OF_MEMORY);
  ck_assert_ptr_null(ctx);
  lvmmed_allocator half = {counting_malloc, NULL, &counts};
  ck_assert_int_eq(lvmmed_ctx_create_with_allocator(&ctx, &half), LVMMED_ERR_INVALID_ARGUMENT);
}
END_TEST

static void double_range(void *arg, size_t begin, size_t end, unsigned chunk) {
  (void)chunk;
  float *v = arg;
  for (size_t i = begin; i < end; i++) v[i] = 2.0f;
}

START_TEST(threads_are_allocated_through_hooks_and_released) {
  counting_alloc counts = {0, 0, 0, -1};
  lvmmed_allocator a = {counting_malloc, counting_free, &counts};
  lvmmed_ctx *ctx;
  ck_assert_int_eq(lvmmed_ctx_create_with_allocator(&ctx, &a), LVMMED_OK);
  /* Use the pool so it allocates, then release: nothing may leak. */
  ck_assert_lvmmed_ok(ctx, lvmmed_ctx_set_option(ctx, LVMMED_CTX_OPT_THREADS, 3));
  static float v[3000];
  lvmmed__parallel_for(ctx, 3000, 1, double_range, v);
  ck_assert(v[0] == 2.0f && v[2999] == 2.0f);
  lvmmed_ctx_release(ctx);
  ck_assert_int_eq(counts.live_blocks, 0);
}
END_TEST

/* ---- logging ---- */

typedef struct log_capture {
  int calls;
  lvmmed_log_level last_level;
  char last[256];
} log_capture;

static void capture_log(void *user, lvmmed_log_level level, const char *message) {
  log_capture *c = user;
  c->calls++;
  c->last_level = level;
  snprintf(c->last, sizeof c->last, "%s", message);
}

START_TEST(log_callback_respects_threshold) {
  lvmmed_ctx *ctx;
  ck_assert_int_eq(lvmmed_ctx_create(&ctx), LVMMED_OK);
  log_capture cap = {0, LVMMED_LOG_NONE, ""};
  ck_assert_lvmmed_ok(ctx, lvmmed_ctx_set_log_callback(ctx, capture_log, &cap));
  ck_assert_lvmmed_ok(ctx, lvmmed_ctx_set_option(ctx, LVMMED_CTX_OPT_THREADS, 2));
  ck_assert_int_eq(cap.calls, 0); /* INFO is below the default WARN threshold */
  ck_assert_lvmmed_ok(ctx, lvmmed_ctx_set_option(ctx, LVMMED_CTX_OPT_LOG_LEVEL, LVMMED_LOG_INFO));
  ck_assert_lvmmed_ok(ctx, lvmmed_ctx_set_option(ctx, LVMMED_CTX_OPT_THREADS, 2));
  ck_assert_int_eq(cap.calls, 1);
  ck_assert_int_eq(cap.last_level, LVMMED_LOG_INFO);
  ck_assert_str_eq(cap.last, "threads set to 2");
  ck_assert_lvmmed_ok(ctx, lvmmed_ctx_set_option(ctx, LVMMED_CTX_OPT_LOG_LEVEL, LVMMED_LOG_DEBUG));
  lvmmed_ctx_set_option(ctx, LVMMED_CTX_OPT_SEED, -5); /* failures are logged at DEBUG */
  ck_assert_int_eq(cap.last_level, LVMMED_LOG_DEBUG);
  ck_assert_ptr_nonnull(strstr(cap.last, "LVMMED_ERR_OUT_OF_RANGE"));
  ck_assert_lvmmed_ok(ctx, lvmmed_ctx_set_log_callback(ctx, NULL, NULL));
  int before = cap.calls;
  lvmmed_ctx_set_option(ctx, LVMMED_CTX_OPT_THREADS, 2);
  ck_assert_int_eq(cap.calls, before);
  ck_assert_int_eq(lvmmed_ctx_set_log_callback(NULL, capture_log, NULL), LVMMED_ERR_INVALID_ARGUMENT);
  lvmmed_ctx_release(ctx);
}
END_TEST

static Suite *core_suite(void) {
  Suite *s = suite_create("core");
  TCase *tc = tcase_create("status");
  tcase_add_test(tc, status_names_follow_the_table);
  tcase_add_test(tc, status_codes_are_contiguous_and_last_is_lowest);
  tcase_add_test(tc, version_matches_headers);
  suite_add_tcase(s, tc);
  tc = tcase_create("context");
  tcase_add_test(tc, ctx_refcount);
  tcase_add_test(tc, ctx_option_defaults);
  tcase_add_test(tc, ctx_threads_default_from_environment);
  tcase_add_test(tc, ctx_option_bounds_are_enforced);
  tcase_add_test(tc, ctx_options_round_trip);
  tcase_add_test(tc, ctx_backend_selection);
  suite_add_tcase(s, tc);
  tc = tcase_create("allocator");
  tcase_add_test(tc, allocator_hooks_see_every_block);
  tcase_add_test(tc, allocator_failure_is_reported);
  tcase_add_test(tc, threads_are_allocated_through_hooks_and_released);
  suite_add_tcase(s, tc);
  tc = tcase_create("log");
  tcase_add_test(tc, log_callback_respects_threshold);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return run_suite(core_suite()); }
