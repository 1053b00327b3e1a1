/* Thread pool: exact coverage, fixed partition, nesting, concurrency, thread bound.
 * Runs with CK_FORK=no: worker threads must not be copied by fork(). */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "core/pool.h"
#include "test_util.h"

typedef struct coverage {
  atomic_int *hits;
  size_t chunk_begin[300];
  size_t chunk_end[300];
  atomic_int active, max_active;
  int check_region;
} coverage;

static void mark(void *arg, size_t begin, size_t end, unsigned chunk) {
  coverage *c = arg;
  int now = atomic_fetch_add(&c->active, 1) + 1;
  int seen = atomic_load(&c->max_active);
  while (now > seen && !atomic_compare_exchange_weak(&c->max_active, &seen, now)) {
  }
  if (c->check_region) ck_assert(lvmmed__in_parallel_region());
  c->chunk_begin[chunk] = begin;
  c->chunk_end[chunk] = end;
  for (size_t i = begin; i < end; i++) atomic_fetch_add(&c->hits[i], 1);
  struct timespec ts = {0, 200000}; /* 0.2 ms: give other workers a chance to overlap */
  nanosleep(&ts, NULL);
  atomic_fetch_sub(&c->active, 1);
}

static lvmmed_ctx *ctx_with_threads(int threads) {
  lvmmed_ctx *ctx;
  ck_assert_int_eq(lvmmed_ctx_create(&ctx), LVMMED_OK);
  ck_assert_int_eq(lvmmed_ctx_set_option(ctx, LVMMED_CTX_OPT_THREADS, threads), LVMMED_OK);
  return ctx;
}

START_TEST(every_index_exactly_once_in_fixed_chunks) {
  static const size_t sizes[] = {1, 2, 3, 7, 64, 1000, 1001};
  static const int thread_counts[] = {1, 2, 3, 8};
  for (size_t t = 0; t < 4; t++) {
    lvmmed_ctx *ctx = ctx_with_threads(thread_counts[t]);
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
      size_t n = sizes[s];
      coverage c;
      memset(&c, 0, sizeof c);
      c.check_region = 1;
      c.hits = calloc(n, sizeof *c.hits);
      lvmmed__parallel_for(ctx, n, 1, mark, &c);
      for (size_t i = 0; i < n; i++) ck_assert_int_eq(atomic_load(&c.hits[i]), 1);
      unsigned chunks = lvmmed__parallel_chunks(ctx, n, 1);
      ck_assert_uint_eq(chunks, n < (size_t)thread_counts[t] ? n : (size_t)thread_counts[t]);
      /* Chunks are contiguous, ordered, balanced within one element. */
      for (unsigned k = 0; k < chunks; k++) {
        ck_assert_uint_eq(c.chunk_begin[k], k == 0 ? 0 : c.chunk_end[k - 1]);
        size_t len = c.chunk_end[k] - c.chunk_begin[k];
        ck_assert(len == n / chunks || len == n / chunks + 1);
      }
      ck_assert_uint_eq(c.chunk_end[chunks - 1], n);
      ck_assert_int_le(atomic_load(&c.max_active), thread_counts[t]);
      free(c.hits);
    }
    ck_assert(!lvmmed__in_parallel_region());
    lvmmed_ctx_release(ctx);
  }
}
END_TEST

START_TEST(balanced_loops_cover_every_index_in_up_to_8_chunks_a_thread) {
  static const size_t sizes[] = {1, 2, 3, 7, 64, 1000, 1001};
  static const int thread_counts[] = {1, 2, 3, 8};
  for (size_t t = 0; t < 4; t++) {
    lvmmed_ctx *ctx = ctx_with_threads(thread_counts[t]);
    size_t threads = (size_t)thread_counts[t];
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
      for (size_t min_chunk = 1; min_chunk <= 5; min_chunk += 4) {
        size_t n = sizes[s];
        coverage c;
        memset(&c, 0, sizeof c);
        c.check_region = 1;
        c.hits = calloc(n, sizeof *c.hits);
        lvmmed__parallel_for_balanced(ctx, n, min_chunk, mark, &c);
        for (size_t i = 0; i < n; i++) ck_assert_int_eq(atomic_load(&c.hits[i]), 1);
        size_t by_size = (n + min_chunk - 1) / min_chunk;
        size_t most = threads == 1 ? 1 : threads * LVMMED_BALANCE_CHUNKS;
        unsigned chunks = lvmmed__parallel_chunks_balanced(ctx, n, min_chunk);
        ck_assert_uint_eq(chunks, by_size < most ? by_size : most);
        for (unsigned k = 0; k < chunks; k++) /* contiguous and in order */
          ck_assert_uint_eq(c.chunk_begin[k], k == 0 ? 0 : c.chunk_end[k - 1]);
        ck_assert_uint_eq(c.chunk_end[chunks - 1], n);
        ck_assert_int_le(atomic_load(&c.max_active), thread_counts[t]);
        free(c.hits);
      }
    }
    lvmmed_ctx_release(ctx);
  }
}
END_TEST

START_TEST(min_chunk_limits_the_split) {
  lvmmed_ctx *ctx = ctx_with_threads(4);
  ck_assert_uint_eq(lvmmed__parallel_chunks(ctx, 0, 1), 0);
  ck_assert_uint_eq(lvmmed__parallel_chunks(ctx, 100, 0), 4);
  ck_assert_uint_eq(lvmmed__parallel_chunks(ctx, 100, 60), 2);
  ck_assert_uint_eq(lvmmed__parallel_chunks(ctx, 100, 100), 1);
  ck_assert_uint_eq(lvmmed__parallel_chunks(ctx, 100, 1000), 1);
  lvmmed__parallel_for(ctx, 0, 1, mark, NULL); /* n == 0 never calls the body */
  lvmmed_ctx_release(ctx);
}
END_TEST

typedef struct nested {
  lvmmed_ctx *ctx;
  atomic_int inner_calls;
  atomic_int *hits;
} nested;

static void inner_body(void *arg, size_t begin, size_t end, unsigned chunk) {
  (void)chunk;
  nested *n = arg;
  for (size_t i = begin; i < end; i++) atomic_fetch_add(&n->hits[i], 1);
}

static void outer_body(void *arg, size_t begin, size_t end, unsigned chunk) {
  (void)chunk;
  nested *n = arg;
  for (size_t i = begin; i < end; i++) {
    lvmmed__parallel_for(n->ctx, 10, 1, inner_body, n); /* runs inline: no deadlock */
    atomic_fetch_add(&n->inner_calls, 1);
  }
}

START_TEST(nested_loops_run_inline) {
  nested n = {ctx_with_threads(2), 0, NULL};
  atomic_int hits[10];
  for (int i = 0; i < 10; i++) atomic_init(&hits[i], 0);
  n.hits = hits;
  lvmmed__parallel_for(n.ctx, 8, 1, outer_body, &n);
  ck_assert_int_eq(atomic_load(&n.inner_calls), 8);
  for (int i = 0; i < 10; i++) ck_assert_int_eq(atomic_load(&hits[i]), 8);
  lvmmed_ctx_release(n.ctx);
}
END_TEST

/* A chunked float sum: the result depends on the partition only. */
typedef struct partial_sums {
  const float *x;
  float part[64];
} partial_sums;

static void sum_chunk(void *arg, size_t begin, size_t end, unsigned chunk) {
  partial_sums *p = arg;
  float s = 0.0f;
  for (size_t i = begin; i < end; i++) s += p->x[i];
  p->part[chunk] = s;
}

static float chunked_sum(lvmmed_ctx *ctx, const float *x, size_t n) {
  partial_sums p;
  memset(&p, 0, sizeof p);
  p.x = x;
  lvmmed__parallel_for(ctx, n, 1000, sum_chunk, &p);
  float s = 0.0f;
  for (unsigned c = 0; c < lvmmed__parallel_chunks(ctx, n, 1000); c++) s += p.part[c];
  return s;
}

START_TEST(results_are_bit_identical_for_a_thread_count) {
  enum { N = 100003 };
  static float x[N];
  uint32_t state = 1;
  for (size_t i = 0; i < N; i++) {
    state = state * 1664525u + 1013904223u;
    x[i] = (float)(state >> 8) / 16777216.0f - 0.5f;
  }
  lvmmed_ctx *ctx = ctx_with_threads(3);
  float first = chunked_sum(ctx, x, N);
  for (int rep = 0; rep < 20; rep++) ck_assert(chunked_sum(ctx, x, N) == first);
  /* Changing the thread count rebuilds the pool and keeps working. */
  ck_assert_int_eq(lvmmed_ctx_set_option(ctx, LVMMED_CTX_OPT_THREADS, 2), LVMMED_OK);
  float two = chunked_sum(ctx, x, N);
  ck_assert_int_eq(lvmmed_ctx_set_option(ctx, LVMMED_CTX_OPT_THREADS, 3), LVMMED_OK);
  ck_assert(chunked_sum(ctx, x, N) == first);
  (void)two;
  lvmmed_ctx_release(ctx);
}
END_TEST

typedef struct racer {
  lvmmed_ctx *ctx;
  int ok;
} racer;

static void *race(void *arg) {
  racer *r = arg;
  r->ok = 1;
  for (int rep = 0; rep < 50; rep++) {
    coverage c;
    memset(&c, 0, sizeof c);
    c.hits = calloc(257, sizeof *c.hits);
    lvmmed__parallel_for(r->ctx, 257, 1, mark, &c);
    for (size_t i = 0; i < 257; i++)
      if (atomic_load(&c.hits[i]) != 1) r->ok = 0;
    free(c.hits);
  }
  return NULL;
}

START_TEST(two_callers_share_one_context_safely) {
  lvmmed_ctx *ctx = ctx_with_threads(2);
  racer a = {ctx, 0}, b = {ctx, 0};
  pthread_t ta, tb;
  ck_assert_int_eq(pthread_create(&ta, NULL, race, &a), 0);
  ck_assert_int_eq(pthread_create(&tb, NULL, race, &b), 0);
  pthread_join(ta, NULL);
  pthread_join(tb, NULL);
  ck_assert(a.ok && b.ok);
  lvmmed_ctx_release(ctx);
}
END_TEST

START_TEST(many_contexts_come_and_go) {
  for (int i = 0; i < 50; i++) {
    lvmmed_ctx *ctx = ctx_with_threads(1 + i % 4);
    coverage c;
    memset(&c, 0, sizeof c);
    c.hits = calloc(33, sizeof *c.hits);
    lvmmed__parallel_for(ctx, 33, 1, mark, &c);
    free(c.hits);
    lvmmed_ctx_release(ctx);
  }
}
END_TEST


/* The first loop after the pool starts must reach the workers even if they
 * start late: chunk 0 waits (up to 5 s) for chunk 1 to begin on another thread. */
typedef struct rendezvous {
  atomic_int started[2];
  int overlapped;
} rendezvous;

static void meet(void *arg, size_t begin, size_t end, unsigned chunk) {
  (void)begin;
  (void)end;
  rendezvous *r = arg;
  atomic_store(&r->started[chunk], 1);
  if (chunk != 0) return;
  for (int i = 0; i < 50000 && !atomic_load(&r->started[1]); i++) {
    struct timespec ts = {0, 100000};
    nanosleep(&ts, NULL);
  }
  r->overlapped = atomic_load(&r->started[1]);
}

START_TEST(first_loop_reaches_late_workers) {
  for (int rep = 0; rep < 5; rep++) {
    lvmmed_ctx *ctx = ctx_with_threads(2);
    rendezvous r;
    memset(&r, 0, sizeof r);
    lvmmed__parallel_for(ctx, 2, 1, meet, &r);
    ck_assert_msg(r.overlapped, "chunk 1 did not run beside chunk 0 on the first loop");
    lvmmed_ctx_release(ctx);
  }
}
END_TEST

int main(void) {
  Suite *s = suite_create("pool");
  TCase *tc = tcase_create("parallel_for");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, every_index_exactly_once_in_fixed_chunks);
  tcase_add_test(tc, balanced_loops_cover_every_index_in_up_to_8_chunks_a_thread);
  tcase_add_test(tc, min_chunk_limits_the_split);
  tcase_add_test(tc, nested_loops_run_inline);
  tcase_add_test(tc, results_are_bit_identical_for_a_thread_count);
  tcase_add_test(tc, two_callers_share_one_context_safely);
  tcase_add_test(tc, many_contexts_come_and_go);
  tcase_add_test(tc, first_loop_reaches_late_workers);
  suite_add_tcase(s, tc);
  return run_suite(s);
}
