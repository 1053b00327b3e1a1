/* Parallel-for over persistent worker threads.
 *
 * Chunk boundaries depend only on (n, min_chunk, threads); which thread
 * runs a chunk does not matter, so threads pick chunks dynamically.
 */
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "core/ctx_impl.h"

struct lvmmed_pool {
  pthread_mutex_t lock;
  pthread_cond_t work_cv; /* workers wait for a new generation */
  pthread_cond_t done_cv; /* the caller waits for pending == 0 */
  unsigned nworkers;
  unsigned threads;       /* ctx->threads the pool was built for */
  pthread_t *workers;
  _Atomic unsigned long generation; /* written under lock; read without it while spinning */
  _Atomic int shutdown;             /* the same */
  /* current loop */
  lvmmed_range_fn fn;
  void *arg;
  size_t n;
  unsigned chunks;
  unsigned next_chunk;
  _Atomic unsigned pending;         /* the same */
};

static _Thread_local int in_region;

/* Before sleeping on a condition variable, a waiting thread polls for this long.
 * A parallel step (a training step) posts hundreds of loops in quick succession,
 * and waking a sleeping thread costs tens to hundreds of microseconds (on virtual
 * machines, where an idle CPU is given back to the host, more): a worker that
 * polls picks the next loop up at once. The cost: an idle worker keeps its core
 * busy this long after each loop. */
#define SPIN_NS 200000L

static long elapsed_ns(const struct timespec *t0) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (t.tv_sec - t0->tv_sec) * 1000000000L + (t.tv_nsec - t0->tv_nsec);
}

static void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

/* Polls until done(pool) or SPIN_NS have passed; returns done(pool). */
static int spin_until(lvmmed_pool *pool, int (*done)(lvmmed_pool *, unsigned long),
                      unsigned long v) {
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (unsigned i = 1;; i++) {
    if (done(pool, v)) return 1;
    cpu_relax();
    if (i % 64 == 0 && elapsed_ns(&t0) > SPIN_NS) return done(pool, v);
  }
}

static int new_loop_or_shutdown(lvmmed_pool *pool, unsigned long seen) {
  return atomic_load_explicit(&pool->generation, memory_order_relaxed) != seen ||
         atomic_load_explicit(&pool->shutdown, memory_order_relaxed);
}

static int all_done(lvmmed_pool *pool, unsigned long unused) {
  (void)unused;
  return atomic_load_explicit(&pool->pending, memory_order_relaxed) == 0;
}

int lvmmed__in_parallel_region(void) { return in_region; }

/* Chunks of at least min_chunk indices covering [0, n), at most `most`. */
static unsigned chunk_count(size_t n, size_t min_chunk, size_t most) {
  if (min_chunk == 0) min_chunk = 1;
  size_t by_size = n / min_chunk + (n % min_chunk != 0);
  return (unsigned)(by_size < most ? by_size : most);
}

unsigned lvmmed__parallel_chunks(const lvmmed_ctx *ctx, size_t n, size_t min_chunk) {
  return chunk_count(n, min_chunk, lvmmed__ctx_threads(ctx));
}

unsigned lvmmed__parallel_chunks_balanced(const lvmmed_ctx *ctx, size_t n, size_t min_chunk) {
  unsigned threads = lvmmed__ctx_threads(ctx);
  return chunk_count(n, min_chunk, threads > 1 ? (size_t)threads * LVMMED_BALANCE_CHUNKS : 1);
}

static void run_chunk(lvmmed_range_fn fn, void *arg, size_t n, unsigned chunks, unsigned c) {
  size_t begin = n / chunks * c + (n % chunks) * c / chunks;
  size_t end = n / chunks * (c + 1) + (n % chunks) * (c + 1) / chunks;
  fn(arg, begin, end, c);
}

/* Takes chunks of the current loop until none is left. Called with pool->lock held. */
static void drain(lvmmed_pool *pool) {
  while (pool->next_chunk < pool->chunks) {
    unsigned c = pool->next_chunk++;
    lvmmed_range_fn fn = pool->fn;
    void *arg = pool->arg;
    size_t n = pool->n;
    unsigned chunks = pool->chunks;
    pthread_mutex_unlock(&pool->lock);
    in_region = 1;
    run_chunk(fn, arg, n, chunks, c);
    in_region = 0;
    pthread_mutex_lock(&pool->lock);
    if (--pool->pending == 0) pthread_cond_signal(&pool->done_cv);
  }
}

static void *worker_main(void *p) {
  lvmmed_pool *pool = p;
  pthread_mutex_lock(&pool->lock);
  /* Generations count from 0 at creation: a worker that starts late still sees
   * a loop posted before it ran (reading pool->generation here would skip it). */
  unsigned long seen = 0;
  for (;;) {
    if (!pool->shutdown && pool->generation == seen) { /* poll, then sleep; the lock decides */
      pthread_mutex_unlock(&pool->lock);
      spin_until(pool, new_loop_or_shutdown, seen);
      pthread_mutex_lock(&pool->lock);
    }
    while (!pool->shutdown && pool->generation == seen) pthread_cond_wait(&pool->work_cv, &pool->lock);
    if (pool->shutdown) break;
    seen = pool->generation;
    drain(pool);
  }
  pthread_mutex_unlock(&pool->lock);
  return NULL;
}

lvmmed_pool *lvmmed__pool_create(lvmmed_ctx *ctx) {
  lvmmed_pool *pool = lvmmed__calloc(ctx, 1, sizeof *pool);
  if (!pool) return NULL;
  unsigned want = ctx->threads > 1 ? ctx->threads - 1 : 0;
  pool->threads = ctx->threads;
  pool->workers = want ? lvmmed__calloc(ctx, want, sizeof *pool->workers) : NULL;
  if ((want && !pool->workers) || pthread_mutex_init(&pool->lock, NULL) != 0) {
    lvmmed__free(ctx, pool->workers);
    lvmmed__free(ctx, pool);
    return NULL;
  }
  pthread_cond_init(&pool->work_cv, NULL);
  pthread_cond_init(&pool->done_cv, NULL);
  /* Workers block every signal so the host's handlers run on its own threads. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  for (unsigned i = 0; i < want; i++) {
    if (pthread_create(&pool->workers[i], NULL, worker_main, pool) != 0) {
      lvmmed__log(ctx, LVMMED_LOG_WARN, "thread pool: started %u of %u workers", i, want);
      break;
    }
    pool->nworkers++;
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return pool;
}

void lvmmed__pool_destroy(lvmmed_ctx *ctx, lvmmed_pool *pool) {
  if (!pool) return;
  pthread_mutex_lock(&pool->lock);
  pool->shutdown = 1;
  pthread_cond_broadcast(&pool->work_cv);
  pthread_mutex_unlock(&pool->lock);
  for (unsigned i = 0; i < pool->nworkers; i++) pthread_join(pool->workers[i], NULL);
  pthread_cond_destroy(&pool->work_cv);
  pthread_cond_destroy(&pool->done_cv);
  pthread_mutex_destroy(&pool->lock);
  lvmmed__free(ctx, pool->workers);
  lvmmed__free(ctx, pool);
}

static void run_inline(lvmmed_range_fn fn, void *arg, size_t n, unsigned chunks) {
  int outer = in_region;
  in_region = 1;
  for (unsigned c = 0; c < chunks; c++) run_chunk(fn, arg, n, chunks, c);
  in_region = outer;
}

static void parallel_run(lvmmed_ctx *ctx, size_t n, unsigned chunks, lvmmed_range_fn fn, void *arg) {
  if (chunks == 0) return;
  /* Nested loops, single chunks and a pool busy with another caller run inline. */
  if (chunks == 1 || in_region || pthread_mutex_trylock(&ctx->pool_lock) != 0) {
    run_inline(fn, arg, n, chunks);
    return;
  }
  if (ctx->pool && ctx->pool->threads != ctx->threads) {
    lvmmed__pool_destroy(ctx, ctx->pool);
    ctx->pool = NULL;
  }
  if (!ctx->pool) ctx->pool = lvmmed__pool_create(ctx);
  lvmmed_pool *pool = ctx->pool;
  if (!pool || pool->nworkers == 0) {
    pthread_mutex_unlock(&ctx->pool_lock);
    run_inline(fn, arg, n, chunks);
    return;
  }
  pthread_mutex_lock(&pool->lock);
  pool->fn = fn;
  pool->arg = arg;
  pool->n = n;
  pool->chunks = chunks;
  pool->next_chunk = 0;
  pool->pending = chunks;
  pool->generation++;
  pthread_cond_broadcast(&pool->work_cv);
  drain(pool);
  if (pool->pending > 0) {
    pthread_mutex_unlock(&pool->lock);
    spin_until(pool, all_done, 0);
    pthread_mutex_lock(&pool->lock);
  }
  while (pool->pending > 0) pthread_cond_wait(&pool->done_cv, &pool->lock);
  pthread_mutex_unlock(&pool->lock);
  pthread_mutex_unlock(&ctx->pool_lock);
}

void lvmmed__parallel_for(lvmmed_ctx *ctx, size_t n, size_t min_chunk, lvmmed_range_fn fn, void *arg) {
  parallel_run(ctx, n, lvmmed__parallel_chunks(ctx, n, min_chunk), fn, arg);
}

void lvmmed__parallel_for_balanced(lvmmed_ctx *ctx, size_t n, size_t min_chunk, lvmmed_range_fn fn,
                                   void *arg) {
  parallel_run(ctx, n, lvmmed__parallel_chunks_balanced(ctx, n, min_chunk), fn, arg);
}
