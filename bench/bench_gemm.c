/* GEMM throughput of the OpenBLAS backend with 1 and 2 context threads.
 *
 * One line per shape and thread count, parsed by bench/bench_gemm.py:
 *   gemm m=<m> n=<n> k=<k> threads=<t> gflops=<best of the repetitions>
 * C = A·B, row-major float32, alpha 1, beta 0 (the conv forward case).
 * Links the internal archive: it times the backend slot itself.
 */
#include "lvmmed_config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <lvmmed/lvmmed.h>

#include "backend/backend.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static float *rand_matrix(size_t n, uint32_t seed) {
  float *p = malloc(n * sizeof *p);
  if (!p) return NULL;
  for (size_t i = 0; i < n; i++) {
    seed = seed * 1664525u + 1013904223u;
    p[i] = (float)(seed >> 8) / 16777216.0f - 0.5f;
  }
  return p;
}

/* Best time of one call over at least 5 runs and 0.5 s, after a warm-up: the
 * minimum is the least disturbed by other load on the machine. */
static double time_gemm(const lvmmed_backend_ops *ops, lvmmed_ctx *ctx, size_t m, size_t n,
                        size_t k, const float *a, const float *b, float *c) {
  ops->gemm(ctx, 0, 0, m, n, k, 1.0f, a, k, b, n, 0.0f, c, n);
  double best = 1e30, start = now_s();
  for (int rep = 0; rep < 5 || now_s() - start < 0.5; rep++) {
    double t0 = now_s();
    ops->gemm(ctx, 0, 0, m, n, k, 1.0f, a, k, b, n, 0.0f, c, n);
    double t = now_s() - t0;
    if (t < best) best = t;
  }
  return best;
}

int main(void) {
  static const size_t shapes[][3] = {
      {64, 64, 64}, {256, 256, 256}, {1024, 1024, 1024}, {2048, 2048, 2048},
      {64, 3136, 576}, /* ResNet 3x3 conv, 64 channels at 56x56, as one im2col gemm */
  };
  const lvmmed_backend_ops *table = lvmmed__backend_table(LVMMED_BACKEND_OPENBLAS);
  if (!table) {
    printf("bench_gemm: the OpenBLAS backend is not built (meson -Dblas=openblas)\n");
    return 0;
  }
  lvmmed_backend_ops ops;
  lvmmed__backend_resolve(table, &ops);
  lvmmed_ctx *ctx = NULL;
  if (lvmmed_ctx_create(&ctx) != LVMMED_OK || (ops.init && ops.init(ctx) != LVMMED_OK)) {
    fprintf(stderr, "bench_gemm: cannot create a context\n");
    lvmmed_ctx_release(ctx);
    return 1;
  }
  int status = 0;
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0] && status == 0; s++) {
    size_t m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
    float *a = rand_matrix(m * k, 1), *b = rand_matrix(k * n, 2), *c = malloc(m * n * sizeof *c);
    if (!a || !b || !c) {
      fprintf(stderr, "bench_gemm: out of memory\n");
      status = 1;
    }
    for (int threads = 1; threads <= 2 && status == 0; threads++) {
      lvmmed_ctx_set_option(ctx, LVMMED_CTX_OPT_THREADS, threads);
      double t = time_gemm(&ops, ctx, m, n, k, a, b, c);
      printf("gemm m=%zu n=%zu k=%zu threads=%d gflops=%.2f\n", m, n, k, threads,
             2.0 * (double)m * (double)n * (double)k / t * 1e-9);
      fflush(stdout);
    }
    free(c);
    free(b);
    free(a);
  }
  lvmmed_ctx_release(ctx);
  return status;
}
