/* Backend parity: every op of every compiled-in backend against the
 * reference backend, on edge and large shapes, with 1 and 2 threads; plus
 * the structural promises of backend.h (resolution, supports(), versions,
 * geometry) and determinism.
 *
 * Runs without fork() by default (CK_FORK=yes overrides): the suite uses
 * the context's worker threads, and OpenBLAS's thread pool can hang in a
 * forked child (see docs/DESIGN.md, "Known pitfalls").
 *
 * Each parity test prints one line per op and backend:
 *   parity <op> <backend> n=<values compared> max_abs=<…> max_rel=<…>
 * where max_rel is |got - ref| / (1 + scale) and scale is the magnitude of
 * the terms behind the value (Σ|a·b| for gemm and dot, Σ(a² + b²) for
 * pairwise distances, |inputs| for elementwise ops); the tolerance is
 * max_rel <= 1e-5.
 */
#include "lvmmed_config.h"

#include <check.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lvmmed/lvmmed.h>

#include "backend/backend.h"
#include "core/pool.h"
#if LVMMED_HAVE_OPENBLAS
#include "backend/cpu/conv_winograd.h"
#endif

#define TOL 1e-5
#define MAX_BACKENDS 2

/* ----- deterministic data ------------------------------------------------ */

static uint64_t lcg_state;

static void lcg_seed(uint64_t seed) { lcg_state = seed * 2654435761u + 1; }

/* Uniform in [-1, 1) with 24 random bits (Knuth's MMIX constants). */
static float lcg_float(void) {
  lcg_state = lcg_state * 6364136223846793005u + 1442695040888963407u;
  return (float)((double)(lcg_state >> 40) / 8388608.0 - 1.0);
}

static float *alloc_floats(size_t n) {
  float *p = malloc((n ? n : 1) * sizeof *p);
  ck_assert_ptr_nonnull(p);
  return p;
}

static float *rand_floats(size_t n) {
  float *p = alloc_floats(n);
  for (size_t i = 0; i < n; i++) p[i] = lcg_float();
  return p;
}

static float *copy_floats(const float *src, size_t n) {
  float *p = alloc_floats(n);
  memcpy(p, src, (n ? n : 1) * sizeof *p);
  return p;
}

static double *scale_buf(size_t n) {
  double *s = malloc((n ? n : 1) * sizeof *s);
  ck_assert_ptr_nonnull(s);
  return s;
}

static void fill(float *p, size_t n, float v) {
  for (size_t i = 0; i < n; i++) p[i] = v;
}

/* ----- backends and contexts --------------------------------------------- */

static const lvmmed_backend backend_ids[] = {LVMMED_BACKEND_REFERENCE, LVMMED_BACKEND_OPENBLAS};

typedef struct backend {
  const lvmmed_backend_ops *raw; /* unresolved table */
  lvmmed_backend_ops ops;        /* resolved */
} backend;

static backend backends[MAX_BACKENDS];
static size_t nbackends;
static lvmmed_ctx *ctxs[2]; /* threads = 1, threads = 2 */
static const lvmmed_backend_ops *ref;

static void setup(void) {
  for (unsigned t = 0; t < 2; t++) {
    ck_assert_int_eq(lvmmed_ctx_create(&ctxs[t]), LVMMED_OK);
    ck_assert_int_eq(lvmmed_ctx_set_option(ctxs[t], LVMMED_CTX_OPT_THREADS, t + 1), LVMMED_OK);
  }
  nbackends = 0;
  for (size_t i = 0; i < sizeof backend_ids / sizeof backend_ids[0]; i++) {
    const lvmmed_backend_ops *raw = lvmmed__backend_table(backend_ids[i]);
    if (!raw) continue; /* not compiled in */
    backend *b = &backends[nbackends++];
    b->raw = raw;
    lvmmed__backend_resolve(raw, &b->ops);
    if (raw->init) ck_assert_int_eq(raw->init(ctxs[0]), LVMMED_OK);
  }
  ref = &backends[0].ops;
  ck_assert_int_eq(ref->id, LVMMED_BACKEND_REFERENCE);
  lcg_seed(12345);
}

static void teardown(void) {
  for (unsigned t = 0; t < 2; t++) {
    lvmmed_ctx_release(ctxs[t]);
    ctxs[t] = NULL;
  }
}

/* ----- comparison -------------------------------------------------------- */

typedef struct parity {
  double max_abs, max_rel;
  size_t count, fails;
  char first[256]; /* the first failure, for the assertion message */
} parity;

static parity stats[MAX_BACKENDS];

static void stats_reset(void) { memset(stats, 0, sizeof stats); }

/* Compares one value; NaN only matches NaN. */
static void check_value(parity *p, double got, double want, double scale, const char *what,
                        size_t index) {
  double err;
  if (isnan(got) || isnan(want))
    err = isnan(got) && isnan(want) ? 0.0 : INFINITY;
  else
    err = fabs(got - want);
  double rel = err / (1.0 + scale);
  if (err > p->max_abs) p->max_abs = err;
  if (rel > p->max_rel) p->max_rel = rel;
  p->count++;
  if (!(rel <= TOL)) {
    if (p->fails == 0)
      snprintf(p->first, sizeof p->first, "%s [%zu]: got %.9g want %.9g (scale %.3g)", what,
               index, got, want, scale);
    p->fails++;
  }
}

/* Prints the parity line of each backend for op and fails on any miss. */
static void report(lvmmed_op op) {
  for (size_t b = 0; b < nbackends; b++) {
    parity *p = &stats[b];
    printf("parity %-15s %-9s n=%-9zu max_abs=%.3e max_rel=%.3e\n", lvmmed__op_name(op),
           backends[b].ops.name, p->count, p->max_abs, p->max_rel);
  }
  fflush(stdout);
  for (size_t b = 0; b < nbackends; b++)
    ck_assert_msg(stats[b].fails == 0, "%s/%s: %zu of %zu values out of tolerance; first: %s",
                  lvmmed__op_name(op), backends[b].ops.name, stats[b].fails, stats[b].count,
                  stats[b].first);
}

/* ----- gemm -------------------------------------------------------------- */

static const size_t gemm_shapes[][3] = {
    {1, 1, 1}, {3, 17, 33}, {17, 3, 1}, {33, 1, 17}, {5, 7, 0},
    {64, 64, 64}, {300, 257, 129}, {64, 1000, 100}, {1000, 40, 33},
};
static const float gemm_ab[][2] = {{1.0f, 0.0f}, {1.0f, 1.0f}, {-1.75f, 0.0f}, {0.5f, -0.25f}};

typedef struct gemm_case {
  int ta, tb;
  size_t m, n, k, lda, ldb, ldc;
  float alpha, beta;
  float *a, *b, *c0;
} gemm_case;

static size_t gemm_a_size(const gemm_case *g) { return (g->ta ? g->k : g->m) * g->lda; }
static size_t gemm_b_size(const gemm_case *g) { return (g->tb ? g->n : g->k) * g->ldb; }
static size_t gemm_c_size(const gemm_case *g) { return g->m * g->ldc; }

static void gemm_make(gemm_case *g, int ta, int tb, const size_t shape[3], size_t ab, size_t pad) {
  g->ta = ta;
  g->tb = tb;
  g->m = shape[0];
  g->n = shape[1];
  g->k = shape[2];
  g->lda = (ta ? g->m : g->k) + pad;
  g->ldb = (tb ? g->k : g->n) + pad;
  g->ldc = g->n + pad;
  g->alpha = gemm_ab[ab][0];
  g->beta = gemm_ab[ab][1];
  g->a = rand_floats(gemm_a_size(g));
  g->b = rand_floats(gemm_b_size(g));
  g->c0 = rand_floats(gemm_c_size(g));
  if (g->beta == 0.0f) fill(g->c0, gemm_c_size(g), NAN); /* must not leak into C */
}

static void gemm_free(gemm_case *g) {
  free(g->a);
  free(g->b);
  free(g->c0);
}

static float *gemm_run(const lvmmed_backend_ops *ops, lvmmed_ctx *ctx, const gemm_case *g) {
  float *c = copy_floats(g->c0, gemm_c_size(g));
  ops->gemm(ctx, g->ta, g->tb, g->m, g->n, g->k, g->alpha, g->a, g->lda, g->b, g->ldb, g->beta,
            c, g->ldc);
  return c;
}

/* |alpha| Σ|a·b| + |beta·c|: the size of the terms behind C[i][j]. */
static double gemm_scale(const gemm_case *g, size_t i, size_t j) {
  double s = 0.0;
  for (size_t p = 0; p < g->k; p++) {
    double av = g->ta ? g->a[p * g->lda + i] : g->a[i * g->lda + p];
    double bv = g->tb ? g->b[j * g->ldb + p] : g->b[p * g->ldb + j];
    s += fabs(av * bv);
  }
  s *= fabs(g->alpha);
  if (g->beta != 0.0f) s += fabs((double)g->beta * g->c0[i * g->ldc + j]);
  return s;
}

START_TEST(test_gemm_parity) {
  stats_reset();
  size_t nshapes = sizeof gemm_shapes / sizeof gemm_shapes[0];
  for (size_t s = 0; s < nshapes; s++)
    for (int ta = 0; ta < 2; ta++)
      for (int tb = 0; tb < 2; tb++)
        for (size_t ab = 0; ab < 4; ab++) {
          /* alternate padded / tight leading dimensions over the combinations */
          size_t pad = ((size_t)ta + (size_t)tb + ab) % 2 ? 5 : 0;
          gemm_case g;
          gemm_make(&g, ta, tb, gemm_shapes[s], ab, pad);
          float *want = gemm_run(ref, ctxs[0], &g);
          double *scale = scale_buf(g.m * g.n);
          for (size_t i = 0; i < g.m; i++)
            for (size_t j = 0; j < g.n; j++) {
              ck_assert_msg(!isnan(want[i * g.ldc + j]), "reference gemm leaked NaN from C");
              scale[i * g.n + j] = gemm_scale(&g, i, j);
            }
          char what[160];
          snprintf(what, sizeof what, "gemm ta=%d tb=%d m=%zu n=%zu k=%zu alpha=%g beta=%g pad=%zu",
                   ta, tb, g.m, g.n, g.k, g.alpha, g.beta, pad);
          for (size_t b = 0; b < nbackends; b++)
            for (unsigned t = 0; t < 2; t++) {
              float *got = gemm_run(&backends[b].ops, ctxs[t], &g);
              for (size_t i = 0; i < g.m; i++) {
                for (size_t j = 0; j < g.n; j++)
                  check_value(&stats[b], got[i * g.ldc + j], want[i * g.ldc + j],
                              scale[i * g.n + j], what, i * g.ldc + j);
                /* the padding between rows of C is not C */
                ck_assert_msg(memcmp(got + i * g.ldc + g.n, g.c0 + i * g.ldc + g.n,
                                     pad * sizeof *got) == 0,
                              "%s: wrote past row end", what);
              }
              free(got);
            }
          free(scale);
          free(want);
          gemm_free(&g);
        }
  report(LVMMED_OP_GEMM);
}
END_TEST

/* ----- vector ops -------------------------------------------------------- */

static const size_t vec_sizes[] = {0, 1, 3, 17, 33, 4096, 100003, (1u << 20) + 7};
#define NVEC (sizeof vec_sizes / sizeof vec_sizes[0])

typedef struct vec_data {
  size_t n;
  float *x, *y, *z; /* z: mixed signs and exact zeros, for relu */
} vec_data;

static void vec_make(vec_data *v, size_t n) {
  v->n = n;
  v->x = rand_floats(n);
  v->y = rand_floats(n);
  v->z = rand_floats(n);
  for (size_t i = 0; i < n; i += 7) v->z[i] = 0.0f;
}

static void vec_free(vec_data *v) {
  free(v->x);
  free(v->y);
  free(v->z);
}

static void compare_floats(parity *p, const float *got, const float *want, const double *scale,
                           size_t n, const char *what) {
  for (size_t i = 0; i < n; i++) check_value(p, got[i], want[i], scale[i], what, i);
}

/* Runs one vector op on every backend and thread count and compares it to
 * the reference; `apply` writes its result into out (sized n). */
typedef void (*vec_apply)(const lvmmed_backend_ops *ops, lvmmed_ctx *ctx, const vec_data *v,
                          float alpha, float *out);

static void vec_parity(lvmmed_op op, vec_apply apply, const float *alphas, size_t nalphas,
                       double (*scale_of)(const vec_data *v, float alpha, size_t i)) {
  stats_reset();
  for (size_t s = 0; s < NVEC; s++) {
    vec_data v;
    vec_make(&v, vec_sizes[s]);
    for (size_t al = 0; al < nalphas; al++) {
      float alpha = alphas[al];
      float *want = alloc_floats(v.n);
      apply(ref, ctxs[0], &v, alpha, want);
      double *scale = scale_buf(v.n);
      for (size_t i = 0; i < v.n; i++) scale[i] = scale_of(&v, alpha, i);
      char what[96];
      snprintf(what, sizeof what, "%s n=%zu alpha=%g", lvmmed__op_name(op), v.n, alpha);
      for (size_t b = 0; b < nbackends; b++)
        for (unsigned t = 0; t < 2; t++) {
          float *got = alloc_floats(v.n);
          apply(&backends[b].ops, ctxs[t], &v, alpha, got);
          compare_floats(&stats[b], got, want, scale, v.n, what);
          free(got);
        }
      free(scale);
      free(want);
    }
    vec_free(&v);
  }
  report(op);
}

static void apply_axpy(const lvmmed_backend_ops *ops, lvmmed_ctx *ctx, const vec_data *v,
                       float alpha, float *out) {
  memcpy(out, v->y, v->n * sizeof *out);
  ops->axpy(ctx, v->n, alpha, v->x, out);
}
static double scale_axpy(const vec_data *v, float alpha, size_t i) {
  return fabs((double)v->y[i]) + fabs((double)alpha * v->x[i]);
}

static void apply_scale(const lvmmed_backend_ops *ops, lvmmed_ctx *ctx, const vec_data *v,
                        float alpha, float *out) {
  memcpy(out, v->x, v->n * sizeof *out);
  ops->scale(ctx, v->n, alpha, out);
}
static double scale_scale(const vec_data *v, float alpha, size_t i) {
  return fabs((double)alpha * v->x[i]);
}

static void apply_add(const lvmmed_backend_ops *ops, lvmmed_ctx *ctx, const vec_data *v,
                      float alpha, float *out) {
  (void)alpha;
  ops->add(ctx, v->n, v->x, v->y, out);
}
static double scale_add(const vec_data *v, float alpha, size_t i) {
  (void)alpha;
  return fabs((double)v->x[i]) + fabs((double)v->y[i]);
}

static void apply_mul(const lvmmed_backend_ops *ops, lvmmed_ctx *ctx, const vec_data *v,
                      float alpha, float *out) {
  (void)alpha;
  ops->mul(ctx, v->n, v->x, v->y, out);
}
static double scale_mul(const vec_data *v, float alpha, size_t i) {
  (void)alpha;
  return fabs((double)v->x[i] * v->y[i]);
}

static void apply_relu(const lvmmed_backend_ops *ops, lvmmed_ctx *ctx, const vec_data *v,
                       float alpha, float *out) {
  (void)alpha;
  ops->relu(ctx, v->n, v->z, out);
}
static void apply_relu_backward(const lvmmed_backend_ops *ops, lvmmed_ctx *ctx, const vec_data *v,
                                float alpha, float *out) {
  (void)alpha;
  ops->relu_backward(ctx, v->n, v->z, v->y, out);
}
static double scale_none(const vec_data *v, float alpha, size_t i) {
  (void)v;
  (void)alpha;
  (void)i;
  return 0.0;
}

static const float vec_alphas[] = {1.0f, -1.75f, 0.0f, 3.0e-3f};
static const float no_alpha[] = {0.0f};

START_TEST(test_axpy_parity) { vec_parity(LVMMED_OP_AXPY, apply_axpy, vec_alphas, 4, scale_axpy); }
END_TEST

START_TEST(test_scale_parity) {
  vec_parity(LVMMED_OP_SCALE, apply_scale, vec_alphas, 4, scale_scale);
}
END_TEST

START_TEST(test_add_parity) { vec_parity(LVMMED_OP_ADD, apply_add, no_alpha, 1, scale_add); }
END_TEST

START_TEST(test_mul_parity) { vec_parity(LVMMED_OP_MUL, apply_mul, no_alpha, 1, scale_mul); }
END_TEST

START_TEST(test_relu_parity) { vec_parity(LVMMED_OP_RELU, apply_relu, no_alpha, 1, scale_none); }
END_TEST

START_TEST(test_relu_backward_parity) {
  vec_parity(LVMMED_OP_RELU_BACKWARD, apply_relu_backward, no_alpha, 1, scale_none);
}
END_TEST

/* The slots that allow it give the same answer in place. */
START_TEST(test_elementwise_aliasing) {
  size_t n = vec_sizes[NVEC - 1];
  vec_data v;
  vec_make(&v, n);
  float *want = alloc_floats(n);
  for (size_t b = 0; b < nbackends; b++)
    for (unsigned t = 0; t < 2; t++) {
      const lvmmed_backend_ops *ops = &backends[b].ops;
      lvmmed_ctx *ctx = ctxs[t];
      float *w = copy_floats(v.x, n);
      ref->add(ctxs[0], n, v.x, v.y, want);
      ops->add(ctx, n, w, v.y, w); /* out == a */
      ck_assert_msg(memcmp(w, want, n * sizeof *w) == 0, "%s add out==a", ops->name);
      memcpy(w, v.y, n * sizeof *w);
      ref->mul(ctxs[0], n, v.x, v.y, want);
      ops->mul(ctx, n, v.x, w, w); /* out == b */
      ck_assert_msg(memcmp(w, want, n * sizeof *w) == 0, "%s mul out==b", ops->name);
      memcpy(w, v.z, n * sizeof *w);
      ref->relu(ctxs[0], n, v.z, want);
      ops->relu(ctx, n, w, w);
      ck_assert_msg(memcmp(w, want, n * sizeof *w) == 0, "%s relu in place", ops->name);
      memcpy(w, v.y, n * sizeof *w);
      ref->relu_backward(ctxs[0], n, v.z, v.y, want);
      ops->relu_backward(ctx, n, v.z, w, w); /* dx == dy */
      ck_assert_msg(memcmp(w, want, n * sizeof *w) == 0, "%s relu_backward dx==dy", ops->name);
      free(w);
    }
  free(want);
  vec_free(&v);
}
END_TEST

/* ----- reductions -------------------------------------------------------- */

static void reduction_parity(lvmmed_op op) {
  stats_reset();
  for (size_t s = 0; s < NVEC; s++) {
    vec_data v;
    vec_make(&v, vec_sizes[s]);
    double want, scale = 0.0;
    switch (op) {
      case LVMMED_OP_SUM:
        want = ref->sum(ctxs[0], v.n, v.x);
        for (size_t i = 0; i < v.n; i++) scale += fabs((double)v.x[i]);
        break;
      case LVMMED_OP_DOT:
        want = ref->dot(ctxs[0], v.n, v.x, v.y);
        for (size_t i = 0; i < v.n; i++) scale += fabs((double)v.x[i] * v.y[i]);
        break;
      default:
        want = ref->sumsq(ctxs[0], v.n, v.x);
        scale = want;
        break;
    }
    char what[64];
    snprintf(what, sizeof what, "%s n=%zu", lvmmed__op_name(op), v.n);
    for (size_t b = 0; b < nbackends; b++)
      for (unsigned t = 0; t < 2; t++) {
        const lvmmed_backend_ops *ops = &backends[b].ops;
        double got = op == LVMMED_OP_SUM   ? ops->sum(ctxs[t], v.n, v.x)
                     : op == LVMMED_OP_DOT ? ops->dot(ctxs[t], v.n, v.x, v.y)
                                           : ops->sumsq(ctxs[t], v.n, v.x);
        check_value(&stats[b], got, want, scale, what, 0);
      }
    vec_free(&v);
  }
  report(op);
}

START_TEST(test_sum_parity) { reduction_parity(LVMMED_OP_SUM); }
END_TEST

START_TEST(test_dot_parity) { reduction_parity(LVMMED_OP_DOT); }
END_TEST

START_TEST(test_sumsq_parity) { reduction_parity(LVMMED_OP_SUMSQ); }
END_TEST

START_TEST(test_row_sum_parity) {
  static const size_t shapes[][3] = {/* rows, cols, extra ldx */
                                     {1, 1, 0},   {3, 17, 3},    {33, 1, 0},   {17, 33, 1},
                                     {4, 100003, 0}, {257, 1000, 3}, {1000, 0, 2}};
  stats_reset();
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
    size_t rows = shapes[s][0], cols = shapes[s][1], ldx = cols + shapes[s][2];
    float *x = rand_floats(rows * ldx);
    float *want = alloc_floats(rows);
    ref->row_sum(ctxs[0], rows, cols, x, ldx, want);
    double *scale = scale_buf(rows);
    for (size_t r = 0; r < rows; r++) {
      scale[r] = 0.0;
      for (size_t c = 0; c < cols; c++) scale[r] += fabs((double)x[r * ldx + c]);
    }
    char what[64];
    snprintf(what, sizeof what, "row_sum %zux%zu ldx=%zu", rows, cols, ldx);
    for (size_t b = 0; b < nbackends; b++)
      for (unsigned t = 0; t < 2; t++) {
        float *got = alloc_floats(rows);
        backends[b].ops.row_sum(ctxs[t], rows, cols, x, ldx, got);
        compare_floats(&stats[b], got, want, scale, rows, what);
        free(got);
      }
    free(scale);
    free(want);
    free(x);
  }
  report(LVMMED_OP_ROW_SUM);
}
END_TEST

/* ----- im2col / col2im --------------------------------------------------- */

/* Every combination of stride 1/2, padding 0/1/3, kernel 1/3/7, dilation
 * 1/2 on a small non-square image, then a few anisotropic and larger ones
 * (16 channels of 33×33, so the threaded paths split work). */
static size_t conv_geoms(lvmmed_conv_geom *out, size_t cap) {
  static const size_t strides[] = {1, 2}, pads[] = {0, 1, 3}, kernels[] = {1, 3, 7},
                      dilations[] = {1, 2};
  size_t n = 0;
  for (size_t s = 0; s < 2; s++)
    for (size_t p = 0; p < 3; p++)
      for (size_t k = 0; k < 3; k++)
        for (size_t d = 0; d < 2; d++) {
          lvmmed_conv_geom g = {.channels = 3, .height = 11, .width = 9,
                                .kernel_h = kernels[k], .kernel_w = kernels[k],
                                .stride_h = strides[s], .stride_w = strides[s],
                                .pad_h = pads[p], .pad_w = pads[p],
                                .dilation_h = dilations[d], .dilation_w = dilations[d]};
          if (n < cap) out[n++] = g;
        }
  const lvmmed_conv_geom extra[] = {
      {.channels = 2, .height = 7, .width = 12, .kernel_h = 3, .kernel_w = 1, .stride_h = 1,
       .stride_w = 2, .pad_h = 0, .pad_w = 1, .dilation_h = 2, .dilation_w = 1},
      {.channels = 1, .height = 1, .width = 1, .kernel_h = 1, .kernel_w = 1, .stride_h = 1,
       .stride_w = 1, .pad_h = 0, .pad_w = 0, .dilation_h = 1, .dilation_w = 1},
      {.channels = 16, .height = 33, .width = 33, .kernel_h = 3, .kernel_w = 3, .stride_h = 1,
       .stride_w = 1, .pad_h = 1, .pad_w = 1, .dilation_h = 1, .dilation_w = 1},
      {.channels = 16, .height = 33, .width = 33, .kernel_h = 7, .kernel_w = 7, .stride_h = 2,
       .stride_w = 2, .pad_h = 3, .pad_w = 3, .dilation_h = 1, .dilation_w = 1},
      {.channels = 17, .height = 33, .width = 31, .kernel_h = 3, .kernel_w = 3, .stride_h = 2,
       .stride_w = 1, .pad_h = 3, .pad_w = 0, .dilation_h = 2, .dilation_w = 2},
  };
  for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++)
    if (n < cap) out[n++] = extra[i];
  return n;
}

static size_t geom_image_size(const lvmmed_conv_geom *g) {
  return g->channels * g->height * g->width;
}
static size_t geom_col_size(const lvmmed_conv_geom *g) {
  return g->channels * g->kernel_h * g->kernel_w * g->out_h * g->out_w;
}

static void geom_name(const lvmmed_conv_geom *g, char *buf, size_t len, const char *op) {
  snprintf(buf, len, "%s c=%zu %zux%zu k=%zux%zu s=%zux%zu p=%zux%zu d=%zux%zu", op, g->channels,
           g->height, g->width, g->kernel_h, g->kernel_w, g->stride_h, g->stride_w, g->pad_h,
           g->pad_w, g->dilation_h, g->dilation_w);
}

START_TEST(test_im2col_parity) {
  lvmmed_conv_geom geoms[128];
  size_t ng = conv_geoms(geoms, 128), tried = 0;
  stats_reset();
  for (size_t i = 0; i < ng; i++) {
    lvmmed_conv_geom *g = &geoms[i];
    if (!lvmmed__conv_geom_finish(g)) continue; /* kernel larger than the padded image */
    tried++;
    size_t ncol = geom_col_size(g);
    float *image = rand_floats(geom_image_size(g));
    float *want = alloc_floats(ncol);
    fill(want, ncol, NAN); /* every entry must be written */
    ref->im2col(ctxs[0], g, image, want);
    double *scale = scale_buf(ncol);
    for (size_t j = 0; j < ncol; j++) {
      ck_assert(!isnan(want[j]));
      scale[j] = fabs((double)want[j]);
    }
    char what[160];
    geom_name(g, what, sizeof what, "im2col");
    for (size_t b = 0; b < nbackends; b++)
      for (unsigned t = 0; t < 2; t++) {
        float *got = alloc_floats(ncol);
        fill(got, ncol, NAN);
        backends[b].ops.im2col(ctxs[t], g, image, got);
        compare_floats(&stats[b], got, want, scale, ncol, what);
        free(got);
      }
    free(scale);
    free(want);
    free(image);
  }
  /* 4 of the 36 grid cases (kernel 7, dilation 2, pad < 3) do not fit */
  ck_assert_uint_eq(tried, 37);
  report(LVMMED_OP_IM2COL);
}
END_TEST

START_TEST(test_col2im_parity) {
  lvmmed_conv_geom geoms[128];
  size_t ng = conv_geoms(geoms, 128);
  stats_reset();
  for (size_t i = 0; i < ng; i++) {
    lvmmed_conv_geom *g = &geoms[i];
    if (!lvmmed__conv_geom_finish(g)) continue;
    size_t nimg = geom_image_size(g), ncol = geom_col_size(g);
    float *col = rand_floats(ncol);
    float *image0 = rand_floats(nimg); /* col2im accumulates into it */
    float *want = copy_floats(image0, nimg);
    ref->col2im(ctxs[0], g, col, want);
    /* scale: |initial| + Σ|col terms| landing on each pixel (ref col2im of |col|) */
    float *abscol = alloc_floats(ncol);
    for (size_t j = 0; j < ncol; j++) abscol[j] = fabsf(col[j]);
    float *absimg = alloc_floats(nimg);
    for (size_t j = 0; j < nimg; j++) absimg[j] = fabsf(image0[j]);
    ref->col2im(ctxs[0], g, abscol, absimg);
    double *scale = scale_buf(nimg);
    for (size_t j = 0; j < nimg; j++) scale[j] = absimg[j];
    char what[160];
    geom_name(g, what, sizeof what, "col2im");
    for (size_t b = 0; b < nbackends; b++)
      for (unsigned t = 0; t < 2; t++) {
        float *got = copy_floats(image0, nimg);
        backends[b].ops.col2im(ctxs[t], g, col, got);
        compare_floats(&stats[b], got, want, scale, nimg, what);
        free(got);
      }
    free(scale);
    free(absimg);
    free(abscol);
    free(want);
    free(image0);
    free(col);
  }
  report(LVMMED_OP_COL2IM);
}
END_TEST

/* <im2col(x), y> == <x, col2im(y)> for every backend: col2im is the adjoint. */
START_TEST(test_col2im_adjoint) {
  lvmmed_conv_geom geoms[128];
  size_t ng = conv_geoms(geoms, 128);
  for (size_t i = 0; i < ng; i++) {
    lvmmed_conv_geom *g = &geoms[i];
    if (!lvmmed__conv_geom_finish(g)) continue;
    size_t nimg = geom_image_size(g), ncol = geom_col_size(g);
    float *x = rand_floats(nimg);
    float *y = rand_floats(ncol);
    for (size_t b = 0; b < nbackends; b++)
      for (unsigned t = 0; t < 2; t++) {
        const lvmmed_backend_ops *ops = &backends[b].ops;
        float *cx = alloc_floats(ncol);
        float *ty = alloc_floats(nimg);
        fill(ty, nimg, 0.0f);
        ops->im2col(ctxs[t], g, x, cx);
        ops->col2im(ctxs[t], g, y, ty);
        double lhs = 0.0, rhs = 0.0, scale = 0.0;
        for (size_t j = 0; j < ncol; j++) {
          lhs += (double)cx[j] * y[j];
          scale += fabs((double)cx[j] * y[j]);
        }
        for (size_t j = 0; j < nimg; j++) rhs += (double)x[j] * ty[j];
        char what[160];
        geom_name(g, what, sizeof what, "adjoint");
        ck_assert_msg(fabs(lhs - rhs) <= TOL * (1.0 + scale),
                      "%s %s: <im2col x,y>=%.9g <x,col2im y>=%.9g", ops->name, what, lhs, rhs);
        free(ty);
        free(cx);
      }
    free(y);
    free(x);
  }
}
END_TEST

/* ----- pairwise distances ------------------------------------------------ */

START_TEST(test_pairwise_parity) {
  static const size_t shapes[][4] = {/* m, n, d, extra ld */
                                     {1, 1, 1, 0},  {3, 17, 33, 2},   {17, 3, 5, 0},
                                     {1, 7, 0, 1},  {100, 257, 64, 3}, {33, 64, 300, 0}};
  stats_reset();
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
    for (int near = 0; near < 2; near++) {
      size_t m = shapes[s][0], n = shapes[s][1], d = shapes[s][2], pad = shapes[s][3];
      size_t lda = d + pad, ldb = d + pad + 1, ldo = n + pad;
      float *a = rand_floats(m * lda);
      float *bm = rand_floats(n * ldb);
      if (near) /* b_j = a_j (+ tiny noise for odd j): distances near 0 cancel */
        for (size_t j = 0; j < n && j < m; j++)
          for (size_t p = 0; p < d; p++)
            bm[j * ldb + p] = a[j * lda + p] + (j % 2 ? 1e-3f * lcg_float() : 0.0f);
      float *want = rand_floats(m * ldo);
      ref->pairwise_sqdist(ctxs[0], m, n, d, a, lda, bm, ldb, want, ldo);
      double *scale = scale_buf(m * n);
      for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
          double sc = 0.0;
          for (size_t p = 0; p < d; p++) {
            double av = a[i * lda + p], bv = bm[j * ldb + p];
            sc += av * av + bv * bv;
          }
          scale[i * n + j] = sc;
        }
      char what[96];
      snprintf(what, sizeof what, "pairwise_sqdist m=%zu n=%zu d=%zu near=%d", m, n, d, near);
      for (size_t b = 0; b < nbackends; b++)
        for (unsigned t = 0; t < 2; t++) {
          float *got = copy_floats(want, m * ldo);
          for (size_t i = 0; i < m; i++) fill(got + i * ldo, n, NAN); /* must be overwritten */
          backends[b].ops.pairwise_sqdist(ctxs[t], m, n, d, a, lda, bm, ldb, got, ldo);
          for (size_t i = 0; i < m; i++)
            for (size_t j = 0; j < n; j++) {
              float v = got[i * ldo + j];
              ck_assert_msg(v >= 0.0f, "%s/%s [%zu,%zu] = %g is negative or NaN",
                            backends[b].ops.name, what, i, j, v);
              check_value(&stats[b], v, want[i * ldo + j], scale[i * n + j], what, i * ldo + j);
            }
          free(got);
        }
      free(scale);
      free(want);
      free(bm);
      free(a);
    }
  report(LVMMED_OP_PAIRWISE_SQDIST);
}
END_TEST

/* ----- structure: tables, resolution, supports(), names, geometry -------- */

#define LVMMED_TEST_SLOTS(X)                                                                 \
  X(GEMM, gemm) X(AXPY, axpy) X(SCALE, scale) X(IM2COL, im2col) X(COL2IM, col2im) X(ADD, add) \
  X(MUL, mul) X(RELU, relu) X(RELU_BACKWARD, relu_backward) X(SUM, sum) X(DOT, dot)          \
  X(SUMSQ, sumsq) X(ROW_SUM, row_sum) X(PAIRWISE_SQDIST, pairwise_sqdist)                   \
  X(CONV2D_FORWARD, conv2d_forward) X(CONV2D_BACKWARD_DATA, conv2d_backward_data)            \
  X(CONV2D_BACKWARD_WEIGHT, conv2d_backward_weight) X(BN_STATS, bn_stats)                    \
  X(CHANNEL_AFFINE, channel_affine) X(BN_BACKWARD_REDUCE, bn_backward_reduce)                \
  X(BN_BACKWARD_APPLY, bn_backward_apply) X(COL_SUM, col_sum)                                \
  X(MAXPOOL_FORWARD, maxpool_forward) X(MAXPOOL_BACKWARD, maxpool_backward)                  \
  X(AVGPOOL_FORWARD, avgpool_forward) X(AVGPOOL_BACKWARD, avgpool_backward)                  \
  X(TRANSPOSE, transpose) X(CONV2D_PACK, conv2d_pack)                                       \
  X(CONV2D_FORWARD_PACKED, conv2d_forward_packed)                                           \
  X(CONV2D_FORWARD_PACKED_AFFINE, conv2d_forward_packed_affine)

static int slot_present(const lvmmed_backend_ops *t, lvmmed_op op) {
  switch (op) {
#define X(OP, slot) \
  case LVMMED_OP_##OP: return t->slot != NULL;
    LVMMED_TEST_SLOTS(X)
#undef X
    default: return -1;
  }
}

/* The resolved slot is the backend's own, or the reference's where it had none. */
static int slot_resolved_from(const lvmmed_backend_ops *res, const lvmmed_backend_ops *raw,
                              lvmmed_op op) {
  const lvmmed_backend_ops *r = &lvmmed__backend_reference;
  switch (op) {
#define X(OP, slot) \
  case LVMMED_OP_##OP: return res->slot == (raw->slot ? raw->slot : r->slot);
    LVMMED_TEST_SLOTS(X)
#undef X
    default: return 0;
  }
}

static void assert_fully_resolved(const lvmmed_backend_ops *t) {
  ck_assert_ptr_nonnull(t->supports);
  ck_assert_ptr_nonnull(t->init);
  for (int op = 0; op < LVMMED_OP_COUNT; op++)
    ck_assert_msg(slot_present(t, (lvmmed_op)op) == 1, "%s: slot %s NULL after resolve", t->name,
                  lvmmed__op_name((lvmmed_op)op));
}

START_TEST(test_tables) {
  ck_assert_ptr_nonnull(lvmmed__backend_table(LVMMED_BACKEND_REFERENCE));
  ck_assert_int_eq(lvmmed__backend_table(LVMMED_BACKEND_OPENBLAS) != NULL, LVMMED_HAVE_OPENBLAS);
  ck_assert_ptr_null(lvmmed__backend_table(LVMMED_BACKEND_CUDA));
  ck_assert_ptr_null(lvmmed__backend_table((lvmmed_backend)99));
  ck_assert_uint_eq(nbackends, 1 + LVMMED_HAVE_OPENBLAS);
  for (size_t b = 0; b < nbackends; b++) {
    const lvmmed_backend_ops *raw = backends[b].raw, *res = &backends[b].ops;
    ck_assert_int_eq(raw->api_version, LVMMED_BACKEND_API_VERSION);
    ck_assert_int_eq(res->api_version, LVMMED_BACKEND_API_VERSION);
    ck_assert_int_eq(raw->id, backend_ids[b]);
    ck_assert_int_eq(res->id, raw->id);
    ck_assert_str_eq(raw->name, lvmmed_backend_name(raw->id));
    ck_assert_ptr_nonnull(raw->supports);
    assert_fully_resolved(res);
    ck_assert(res->supports == raw->supports);
    for (int op = 0; op < LVMMED_OP_COUNT; op++) {
      int has = slot_present(raw, (lvmmed_op)op);
      ck_assert_msg(raw->supports((lvmmed_op)op) == has, "%s: supports(%s) = %d but slot %s",
                    raw->name, lvmmed__op_name((lvmmed_op)op), raw->supports((lvmmed_op)op),
                    has ? "set" : "NULL");
      ck_assert_msg(slot_resolved_from(res, raw, (lvmmed_op)op), "%s: slot %s resolved wrongly",
                    raw->name, lvmmed__op_name((lvmmed_op)op));
    }
    ck_assert_int_eq(raw->supports(LVMMED_OP_COUNT), 0);
  }
  /* Reference has every slot; OpenBLAS leaves sum and row_sum to the fallback. */
  for (int op = 0; op < LVMMED_OP_COUNT; op++)
    ck_assert_int_eq(slot_present(&lvmmed__backend_reference, (lvmmed_op)op), 1);
#if LVMMED_HAVE_OPENBLAS
  ck_assert_int_eq(lvmmed__backend_openblas.supports(LVMMED_OP_SUM), 0);
  ck_assert_int_eq(lvmmed__backend_openblas.supports(LVMMED_OP_ROW_SUM), 0);
#endif
  /* The context's own table is resolved too. */
  for (unsigned t = 0; t < 2; t++) assert_fully_resolved(lvmmed__backend(ctxs[t]));
}
END_TEST

START_TEST(test_op_names) {
  for (int i = 0; i < LVMMED_OP_COUNT; i++) {
    const char *name = lvmmed__op_name((lvmmed_op)i);
    ck_assert_ptr_nonnull(name);
    ck_assert_str_ne(name, "unknown");
    for (int j = 0; j < i; j++) ck_assert_str_ne(name, lvmmed__op_name((lvmmed_op)j));
  }
  ck_assert_str_eq(lvmmed__op_name(LVMMED_OP_GEMM), "gemm");
  ck_assert_str_eq(lvmmed__op_name(LVMMED_OP_COUNT), "unknown");
  ck_assert_str_eq(lvmmed__op_name((lvmmed_op)-1), "unknown");
}
END_TEST

START_TEST(test_conv_geom) {
  lvmmed_conv_geom g = {.channels = 3, .height = 224, .width = 224, .kernel_h = 7, .kernel_w = 7,
                        .stride_h = 2, .stride_w = 2, .pad_h = 3, .pad_w = 3,
                        .dilation_h = 1, .dilation_w = 1};
  ck_assert_int_eq(lvmmed__conv_geom_finish(&g), 1); /* ResNet stem */
  ck_assert_uint_eq(g.out_h, 112);
  ck_assert_uint_eq(g.out_w, 112);
  g.height = 5; g.width = 6; g.kernel_h = 3; g.kernel_w = 2; g.stride_h = 1; g.stride_w = 3;
  g.pad_h = 0; g.pad_w = 1; g.dilation_h = 2; g.dilation_w = 1;
  ck_assert_int_eq(lvmmed__conv_geom_finish(&g), 1);
  ck_assert_uint_eq(g.out_h, 1); /* (5 - 2*2 - 1)/1 + 1 */
  ck_assert_uint_eq(g.out_w, 3); /* (6 + 2 - 1 - 1)/3 + 1 */
  lvmmed_conv_geom bad = g;
  bad.dilation_h = 3; /* span 7 > 5 */
  ck_assert_int_eq(lvmmed__conv_geom_finish(&bad), 0);
  ck_assert_uint_eq(bad.out_h, 0);
  ck_assert_uint_eq(bad.out_w, 0);
  static const size_t must_be_nonzero[] = {
      offsetof(lvmmed_conv_geom, kernel_h),   offsetof(lvmmed_conv_geom, kernel_w),
      offsetof(lvmmed_conv_geom, stride_h),   offsetof(lvmmed_conv_geom, stride_w),
      offsetof(lvmmed_conv_geom, dilation_h), offsetof(lvmmed_conv_geom, dilation_w)};
  for (size_t i = 0; i < sizeof must_be_nonzero / sizeof must_be_nonzero[0]; i++) {
    bad = g;
    *(size_t *)((char *)&bad + must_be_nonzero[i]) = 0;
    ck_assert_int_eq(lvmmed__conv_geom_finish(&bad), 0);
  }
  bad = g;
  bad.pad_h = SIZE_MAX / 2; /* overflow is "does not fit", not a wrapped size */
  ck_assert_int_eq(lvmmed__conv_geom_finish(&bad), 0);
  bad = g;
  bad.dilation_w = SIZE_MAX;
  ck_assert_int_eq(lvmmed__conv_geom_finish(&bad), 0);
}
END_TEST

/* ----- version 2: backbone layers ---------------------------------------- */

typedef struct conv_case {
  size_t batch, cin, h, w, cout, kh, kw, sh, sw, ph, pw, dh, dw;
} conv_case;

static const conv_case conv_cases[] = {
    {2, 3, 13, 11, 8, 7, 7, 2, 2, 3, 3, 1, 1}, /* stem-like */
    {2, 16, 9, 9, 8, 3, 3, 1, 1, 1, 1, 1, 1},
    {3, 8, 10, 7, 16, 3, 3, 2, 2, 1, 1, 1, 1},
    {4, 16, 6, 6, 32, 1, 1, 1, 1, 0, 0, 1, 1}, /* pointwise expansion: GEMM forward, direct adjoint */
    {3, 48, 5, 7, 20, 1, 1, 1, 1, 0, 0, 1, 1}, /* pointwise reduction: direct forward, GEMM adjoint */
    {2, 16, 7, 9, 8, 1, 1, 2, 2, 0, 0, 1, 1},  /* strided downsample */
    {1, 5, 4, 4, 6, 3, 3, 1, 1, 0, 0, 1, 1},
    {1, 4, 5, 6, 3, 2, 3, 3, 1, 1, 2, 1, 1},   /* non-square kernel, uneven stride/pad */
    {2, 3, 9, 8, 5, 3, 3, 1, 2, 2, 1, 2, 1},   /* dilation */
    {3, 512, 30, 30, 4, 3, 3, 1, 1, 1, 1, 1, 1}, /* im2col larger than one workspace chunk */
    {2, 64, 9, 9, 40, 3, 3, 2, 2, 1, 1, 1, 1},   /* strided 3x3: im2col weight gradient */
    {2, 512, 5, 5, 8, 3, 3, 1, 1, 1, 1, 1, 1},   /* 512 channels, small map: the same */
    {2, 24, 11, 10, 48, 3, 3, 1, 1, 2, 0, 1, 1}, /* tap-wise rows, whole rows of padding */
    {3, 32, 8, 12, 70, 3, 3, 1, 1, 1, 1, 1, 1},  /* a partial third block of 32 channels */
    {3, 16, 60, 64, 40, 3, 3, 1, 1, 1, 1, 1, 1}, /* 45 pixel blocks: 2 threads sum 8 parts */
    /* Winograd F(2x2, 3x3) (3x3, stride 1, pad 1, C_in % 16 == 0, >= 32 2x2 tiles): */
    {2, 32, 9, 11, 48, 3, 3, 1, 1, 1, 1, 1, 1}, /* odd map: partial tiles; 48 = 32 + 16 */
    {2, 16, 8, 8, 20, 3, 3, 1, 1, 1, 1, 1, 1},  /* 20 outputs: Winograd forward, direct adjoint */
    {1, 64, 12, 12, 96, 3, 3, 1, 1, 1, 1, 1, 1}, /* one tile block: channel groups split it */
    {1, 32, 7, 7, 32, 3, 3, 1, 1, 1, 1, 1, 1},   /* 16 tiles: the direct kernel */
};

/* Cases the OpenBLAS backend must run through Winograd (forward and adjoint). */
static const size_t wino_cases[] = {1, 9, 13, 14, 15, 16, 17};
static const size_t wino_adjoint_cases[] = {15, 17};

static lvmmed_conv2d conv_desc(const conv_case *cc) {
  lvmmed_conv2d d;
  memset(&d, 0, sizeof d);
  d.batch = cc->batch;
  d.out_channels = cc->cout;
  d.g = (lvmmed_conv_geom){.channels = cc->cin, .height = cc->h, .width = cc->w,
                           .kernel_h = cc->kh, .kernel_w = cc->kw, .stride_h = cc->sh,
                           .stride_w = cc->sw, .pad_h = cc->ph, .pad_w = cc->pw,
                           .dilation_h = cc->dh, .dilation_w = cc->dw};
  ck_assert(lvmmed__conv_geom_finish(&d.g));
  return d;
}

static void abs_copy(float *dst, const float *src, size_t n) {
  for (size_t i = 0; i < n; i++) dst[i] = fabsf(src[i]);
}

static float *conv_ws(const lvmmed_backend_ops *ops, lvmmed_ctx *ctx, const lvmmed_conv2d *d) {
  return alloc_floats(ops->conv2d_workspace(ctx, d) + 1);
}

/* The Winograd cases above really take that path where it exists, so the parity
 * and thread checks below cover it. */
START_TEST(test_conv2d_winograd_chosen) {
#if LVMMED_HAVE_OPENBLAS && defined(__x86_64__) && defined(__GNUC__)
  if (!__builtin_cpu_supports("avx512f")) return;
  for (size_t i = 0; i < sizeof wino_cases / sizeof wino_cases[0]; i++) {
    lvmmed_conv2d d = conv_desc(&conv_cases[wino_cases[i]]);
    ck_assert_msg(lvmmed__wino_chosen(&d), "conv case %zu: Winograd not chosen", wino_cases[i]);
  }
  for (size_t i = 0; i < sizeof wino_adjoint_cases / sizeof wino_adjoint_cases[0]; i++) {
    lvmmed_conv2d d = conv_desc(&conv_cases[wino_adjoint_cases[i]]);
    ck_assert(lvmmed__wino_chosen_adjoint(&d));
  }
  for (size_t i = 0; i < sizeof wino_cases / sizeof wino_cases[0]; i++) {
    lvmmed_conv2d d = conv_desc(&conv_cases[wino_cases[i]]);
    /* the weight gradient up to 256 channels each way */
    ck_assert_int_eq(lvmmed__wino_chosen_wgrad(&d), d.g.channels <= 256 && d.out_channels <= 256);
  }
  lvmmed_conv2d d = conv_desc(&conv_cases[11]); /* 5x5 map: 44% of the tiles outside */
  ck_assert(!lvmmed__wino_chosen(&d));
  d = conv_desc(&conv_cases[18]); /* too few tiles */
  ck_assert(!lvmmed__wino_chosen(&d));
  d = conv_desc(&conv_cases[16]); /* 20 channels: the adjoint's input is not 16-aligned */
  ck_assert(!lvmmed__wino_chosen_adjoint(&d));
#endif
}
END_TEST

/* 1 if ops runs d's weight gradient through Winograd. */
static int wino_wgrad_case(const lvmmed_backend_ops *ops, const lvmmed_conv2d *d) {
#if LVMMED_HAVE_OPENBLAS
  return ops->id == LVMMED_BACKEND_OPENBLAS && lvmmed__wino_chosen_wgrad(d);
#else
  (void)ops;
  (void)d;
  return 0;
#endif
}

START_TEST(test_conv2d_parity) {
  parity st[4][MAX_BACKENDS];
  memset(st, 0, sizeof st);
  for (size_t ci = 0; ci < sizeof conv_cases / sizeof conv_cases[0]; ci++) {
    lvmmed_conv2d d = conv_desc(&conv_cases[ci]);
    size_t nx = d.batch * d.g.height * d.g.width * d.g.channels;
    size_t ny = d.batch * d.g.out_h * d.g.out_w * d.out_channels;
    size_t nw = d.out_channels * d.g.channels * d.g.kernel_h * d.g.kernel_w;
    float *x = rand_floats(nx), *w = rand_floats(nw), *dy = rand_floats(ny);
    float *dx0 = rand_floats(nx), *dw0 = rand_floats(nw);
    float *ax = alloc_floats(nx), *aw = alloc_floats(nw), *ady = alloc_floats(ny);
    abs_copy(ax, x, nx);
    abs_copy(aw, w, nw);
    abs_copy(ady, dy, ny);
    /* references and scales (the same op on magnitudes) */
    float *y_ref = alloc_floats(ny), *y_sc = alloc_floats(ny);
    float *dx_ref = copy_floats(dx0, nx), *dx_sc = alloc_floats(nx);
    float *dw_ref = copy_floats(dw0, nw), *dw_sc = alloc_floats(nw);
    ref->conv2d_forward(ctxs[0], &d, x, w, y_ref, NULL);
    ref->conv2d_forward(ctxs[0], &d, ax, aw, y_sc, NULL);
    ref->conv2d_backward_data(ctxs[0], &d, dy, w, dx_ref, 1, NULL);
    abs_copy(dx_sc, dx0, nx);
    ref->conv2d_backward_data(ctxs[0], &d, ady, aw, dx_sc, 1, NULL);
    ref->conv2d_backward_weight(ctxs[0], &d, x, dy, dw_ref, NULL);
    abs_copy(dw_sc, dw0, nw);
    ref->conv2d_backward_weight(ctxs[0], &d, ax, ady, dw_sc, NULL);
    double *sy = scale_buf(ny), *sx = scale_buf(nx), *sw = scale_buf(nw);
    for (size_t i = 0; i < ny; i++) sy[i] = y_sc[i];
    for (size_t i = 0; i < nx; i++) sx[i] = dx_sc[i];
    for (size_t i = 0; i < nw; i++) sw[i] = dw_sc[i];
    char what[96];
    snprintf(what, sizeof what, "conv case %zu", ci);
    float *bn_scale = rand_floats(d.out_channels), *bn_shift = rand_floats(d.out_channels);
    for (size_t b = 0; b < nbackends; b++) {
      float *y_one = alloc_floats(ny), *dx_one = alloc_floats(nx), *dw_one = alloc_floats(nw);
      for (unsigned t = 0; t < 2; t++) {
        const lvmmed_backend_ops *ops = &backends[b].ops;
        float *ws = conv_ws(ops, ctxs[t], &d);
        float *y = alloc_floats(ny);
        fill(y, ny, NAN);
        ops->conv2d_forward(ctxs[t], &d, x, w, y, ws);
        compare_floats(&st[0][b], y, y_ref, sy, ny, what);
        /* any thread count: the same bits */
        if (t == 0)
          memcpy(y_one, y, ny * sizeof *y);
        else
          ck_assert_msg(memcmp(y, y_one, ny * sizeof *y) == 0, "%s: %s forward depends on threads",
                        what, ops->name);
        /* packed weights: the same results */
        float *packed = alloc_floats(ops->conv2d_packed_size(ctxs[t], &d) + 1);
        ops->conv2d_pack(ctxs[t], &d, w, packed);
        fill(y, ny, NAN);
        ops->conv2d_forward_packed(ctxs[t], &d, x, packed, y, ws);
        compare_floats(&st[3][b], y, y_ref, sy, ny, what);
        /* with a batch norm fused (odd cases: + residual and ReLU): bit-identical
         * to the packed forward followed by the backend's own channel_affine */
        int odd = (int)(ci & 1);
        const float *res = odd ? dy : NULL;
        ops->channel_affine(ctxs[t], ny / d.out_channels, d.out_channels, y, bn_scale,
                            bn_shift, res, odd, y);
        float *yf = alloc_floats(ny);
        fill(yf, ny, NAN);
        ops->conv2d_forward_packed_affine(ctxs[t], &d, x, packed, bn_scale, bn_shift, res, odd,
                                          yf, ws);
        ck_assert_msg(memcmp(yf, y, ny * sizeof *y) == 0, "%s: %s fused affine differs", what,
                      ops->name);
        if (odd) { /* no scale, shift, residual: the plain forward */
          ops->conv2d_forward_packed_affine(ctxs[t], &d, x, packed, NULL, NULL, NULL, 0, yf, ws);
          compare_floats(&st[3][b], yf, y_ref, sy, ny, what);
        }
        free(yf);
        free(packed);
        /* backward data: overwrite (from NaN), then accumulate */
        float *dx = alloc_floats(nx);
        fill(dx, nx, NAN);
        ops->conv2d_backward_data(ctxs[t], &d, dy, w, dx, 0, ws);
        if (t == 0)
          memcpy(dx_one, dx, nx * sizeof *dx);
        else
          ck_assert_msg(memcmp(dx, dx_one, nx * sizeof *dx) == 0,
                        "%s: %s backward data depends on threads", what, ops->name);
        for (size_t i = 0; i < nx; i++) dx[i] += dx0[i];
        compare_floats(&st[1][b], dx, dx_ref, sx, nx, what);
        memcpy(dx, dx0, nx * sizeof *dx);
        ops->conv2d_backward_data(ctxs[t], &d, dy, w, dx, 1, ws);
        compare_floats(&st[1][b], dx, dx_ref, sx, nx, what);
        float *dw = copy_floats(dw0, nw);
        ops->conv2d_backward_weight(ctxs[t], &d, x, dy, dw, ws);
        compare_floats(&st[2][b], dw, dw_ref, sw, nw, what);
        if (wino_wgrad_case(ops, &d)) { /* its parts do not depend on the thread count */
          if (t == 0)
            memcpy(dw_one, dw, nw * sizeof *dw);
          else
            ck_assert_msg(memcmp(dw, dw_one, nw * sizeof *dw) == 0,
                          "%s: Winograd weight gradient depends on threads", what);
        }
        free(dw);
        free(dx);
        free(y);
        free(ws);
      }
      free(y_one);
      free(dx_one);
      free(dw_one);
    }
    free(sy); free(sx); free(sw);
    free(bn_scale); free(bn_shift);
    free(y_ref); free(y_sc); free(dx_ref); free(dx_sc); free(dw_ref); free(dw_sc);
    free(ax); free(aw); free(ady);
    free(x); free(w); free(dy); free(dx0); free(dw0);
  }
  static const lvmmed_op ops_[4] = {LVMMED_OP_CONV2D_FORWARD, LVMMED_OP_CONV2D_BACKWARD_DATA,
                                    LVMMED_OP_CONV2D_BACKWARD_WEIGHT,
                                    LVMMED_OP_CONV2D_FORWARD_PACKED};
  for (int k = 0; k < 4; k++) {
    memcpy(stats, st[k], sizeof stats);
    report(ops_[k]);
  }
}
END_TEST

static const size_t bn_shapes[][2] = {{1, 1}, {2, 3}, {7, 16}, {300, 64}, {1000, 33}, {4096, 5}};
#define NBN (sizeof bn_shapes / sizeof bn_shapes[0])

START_TEST(test_bn_stats_parity) {
  stats_reset();
  for (size_t i = 0; i < NBN; i++) {
    size_t rows = bn_shapes[i][0], ch = bn_shapes[i][1], n = rows * ch;
    float *x = rand_floats(n);
    for (size_t j = 0; j < n; j++) x[j] += 3.0f; /* an offset mean: no cancellation allowed */
    float *m_ref = alloc_floats(ch), *v_ref = alloc_floats(ch);
    ref->bn_stats(ctxs[0], rows, ch, x, m_ref, v_ref);
    double *sc = scale_buf(ch);
    for (size_t c = 0; c < ch; c++) sc[c] = 16.0; /* |x| <= 4: mean and E[x²] bounded by 16 */
    for (size_t b = 0; b < nbackends; b++)
      for (unsigned t = 0; t < 2; t++) {
        float *m = alloc_floats(ch), *v = alloc_floats(ch);
        backends[b].ops.bn_stats(ctxs[t], rows, ch, x, m, v);
        compare_floats(&stats[b], m, m_ref, sc, ch, "bn_stats mean");
        compare_floats(&stats[b], v, v_ref, sc, ch, "bn_stats var");
        free(m);
        free(v);
      }
    free(sc); free(m_ref); free(v_ref); free(x);
  }
  report(LVMMED_OP_BN_STATS);
}
END_TEST

START_TEST(test_channel_affine_parity) {
  stats_reset();
  for (size_t i = 0; i < NBN; i++)
    for (int variant = 0; variant < 8; variant++) {
      size_t rows = bn_shapes[i][0], ch = bn_shapes[i][1], n = rows * ch;
      float *x = rand_floats(n), *res = rand_floats(n), *sc = rand_floats(ch), *sh = rand_floats(ch);
      const float *scale = variant & 1 ? sc : NULL, *shift = variant & 2 ? sh : NULL;
      const float *residual = variant & 4 ? res : NULL;
      int relu = variant % 3 == 0;
      float *want = alloc_floats(n);
      ref->channel_affine(ctxs[0], rows, ch, x, scale, shift, residual, relu, want);
      double *s = scale_buf(n);
      for (size_t j = 0; j < n; j++) s[j] = 3.0;
      for (size_t b = 0; b < nbackends; b++)
        for (unsigned t = 0; t < 2; t++) {
          float *y = copy_floats(x, n); /* in place: y aliases x */
          backends[b].ops.channel_affine(ctxs[t], rows, ch, y, scale, shift, residual, relu, y);
          compare_floats(&stats[b], y, want, s, n, "channel_affine");
          free(y);
        }
      free(s); free(want); free(x); free(res); free(sc); free(sh);
    }
  report(LVMMED_OP_CHANNEL_AFFINE);
}
END_TEST

START_TEST(test_bn_backward_parity) {
  parity st[2][MAX_BACKENDS];
  memset(st, 0, sizeof st);
  for (size_t i = 0; i < NBN; i++)
    for (int variant = 0; variant < 4; variant++) {
      size_t rows = bn_shapes[i][0], ch = bn_shapes[i][1], n = rows * ch;
      float *x = rand_floats(n), *mask = rand_floats(n), *dy = rand_floats(n);
      float *mean = rand_floats(ch), *kg = rand_floats(ch), *kx = rand_floats(ch), *k0 = rand_floats(ch);
      const float *m = variant & 1 ? mask : NULL;
      int with_x = variant & 2;
      float *sg_ref = alloc_floats(ch), *sx_ref = alloc_floats(ch), *dx_ref = alloc_floats(n);
      ref->bn_backward_reduce(ctxs[0], rows, ch, x, mean, m, dy, sg_ref, sx_ref);
      ref->bn_backward_apply(ctxs[0], rows, ch, with_x ? x : NULL, with_x ? mean : NULL, m, dy, kg,
                             with_x ? kx : NULL, k0, dx_ref);
      double *sr = scale_buf(ch), *sa = scale_buf(n);
      for (size_t c = 0; c < ch; c++) sr[c] = 2.0 * (double)rows;
      for (size_t j = 0; j < n; j++) sa[j] = 5.0;
      for (size_t b = 0; b < nbackends; b++)
        for (unsigned t = 0; t < 2; t++) {
          const lvmmed_backend_ops *ops = &backends[b].ops;
          float *sg = alloc_floats(ch), *sx = alloc_floats(ch);
          ops->bn_backward_reduce(ctxs[t], rows, ch, x, mean, m, dy, sg, sx);
          compare_floats(&st[0][b], sg, sg_ref, sr, ch, "bn_backward_reduce sum_g");
          compare_floats(&st[0][b], sx, sx_ref, sr, ch, "bn_backward_reduce sum_gx");
          float *dx = copy_floats(dy, n); /* dx aliases dy */
          ops->bn_backward_apply(ctxs[t], rows, ch, with_x ? x : NULL, with_x ? mean : NULL, m, dx,
                                 kg, with_x ? kx : NULL, k0, dx);
          compare_floats(&st[1][b], dx, dx_ref, sa, n, "bn_backward_apply");
          free(dx); free(sg); free(sx);
        }
      free(sr); free(sa); free(sg_ref); free(sx_ref); free(dx_ref);
      free(x); free(mask); free(dy); free(mean); free(kg); free(kx); free(k0);
    }
  memcpy(stats, st[0], sizeof stats);
  report(LVMMED_OP_BN_BACKWARD_REDUCE);
  memcpy(stats, st[1], sizeof stats);
  report(LVMMED_OP_BN_BACKWARD_APPLY);
}
END_TEST

START_TEST(test_col_sum_parity) {
  stats_reset();
  for (size_t i = 0; i < NBN; i++)
    for (int acc = 0; acc < 2; acc++) {
      size_t rows = bn_shapes[i][0], ch = bn_shapes[i][1];
      float *x = rand_floats(rows * ch), *o0 = rand_floats(ch);
      float *want = copy_floats(o0, ch);
      ref->col_sum(ctxs[0], rows, ch, x, want, acc);
      double *s = scale_buf(ch);
      for (size_t c = 0; c < ch; c++) s[c] = (double)rows + 1.0;
      for (size_t b = 0; b < nbackends; b++)
        for (unsigned t = 0; t < 2; t++) {
          float *got = copy_floats(o0, ch);
          backends[b].ops.col_sum(ctxs[t], rows, ch, x, got, acc);
          compare_floats(&stats[b], got, want, s, ch, "col_sum");
          free(got);
        }
      free(s); free(want); free(x); free(o0);
    }
  report(LVMMED_OP_COL_SUM);
}
END_TEST

START_TEST(test_pool_parity) {
  static const size_t pools[][6] = { /* batch, channels, h, w, kernel, stride (pad = kernel/2) */
      {2, 64, 13, 11, 3, 2}, {1, 5, 8, 8, 3, 2}, {3, 16, 7, 10, 3, 1}, {1, 3, 1, 1, 3, 2},
      {2, 8, 9, 6, 2, 2}};
  parity st[4][MAX_BACKENDS];
  memset(st, 0, sizeof st);
  for (size_t i = 0; i < sizeof pools / sizeof pools[0]; i++) {
    lvmmed_conv_geom g = {.channels = pools[i][1], .height = pools[i][2], .width = pools[i][3],
                          .kernel_h = pools[i][4], .kernel_w = pools[i][4],
                          .stride_h = pools[i][5], .stride_w = pools[i][5],
                          .pad_h = pools[i][4] / 2, .pad_w = pools[i][4] / 2,
                          .dilation_h = 1, .dilation_w = 1};
    ck_assert(lvmmed__conv_geom_finish(&g));
    size_t batch = pools[i][0], nx = batch * g.height * g.width * g.channels;
    size_t ny = batch * g.out_h * g.out_w * g.channels;
    float *x = rand_floats(nx), *dy = rand_floats(ny);
    for (size_t j = 0; j < nx; j += 7) x[j] = 0.5f; /* ties: the first in scan order wins */
    if (nx > 3) x[3] = NAN;                        /* NaN wins its windows */
    float *y_ref = alloc_floats(ny), *dx_ref = alloc_floats(nx);
    uint8_t *a_ref = malloc(ny), *a = malloc(ny);
    ref->maxpool_forward(ctxs[0], &g, batch, x, y_ref, a_ref);
    ref->maxpool_backward(ctxs[0], &g, batch, dy, a_ref, dx_ref);
    /* global average pool of the same map, with and without a map gradient */
    size_t px = g.height * g.width, ch = g.channels;
    float *gp = rand_floats(batch * ch), *avg_ref = alloc_floats(batch * ch);
    float *dmap = rand_floats(nx), *davg_ref = alloc_floats(nx);
    ref->avgpool_forward(ctxs[0], batch, px, ch, dx_ref, avg_ref);
    ref->avgpool_backward(ctxs[0], batch, px, ch, gp, i % 2 ? dmap : NULL, davg_ref);
    double *sy = scale_buf(nx);
    for (size_t j = 0; j < nx; j++) sy[j] = 10.0;
    for (size_t b = 0; b < nbackends; b++)
      for (unsigned t = 0; t < 2; t++) {
        const lvmmed_backend_ops *ops = &backends[b].ops;
        float *y = alloc_floats(ny), *dx = alloc_floats(nx), *avg = alloc_floats(batch * ch);
        fill(dx, nx, NAN);
        ops->maxpool_forward(ctxs[t], &g, batch, x, y, a);
        compare_floats(&st[0][b], y, y_ref, sy, ny, "maxpool_forward");
        ck_assert_msg(memcmp(a, a_ref, ny) == 0, "%s maxpool positions differ", ops->name);
        ops->maxpool_backward(ctxs[t], &g, batch, dy, a, dx);
        compare_floats(&st[1][b], dx, dx_ref, sy, nx, "maxpool_backward");
        ops->avgpool_forward(ctxs[t], batch, px, ch, dx_ref, avg);
        compare_floats(&st[2][b], avg, avg_ref, sy, batch * ch, "avgpool_forward");
        ops->avgpool_backward(ctxs[t], batch, px, ch, gp, i % 2 ? dmap : NULL, dx);
        compare_floats(&st[3][b], dx, davg_ref, sy, nx, "avgpool_backward");
        free(y); free(dx); free(avg);
      }
    free(sy); free(gp); free(avg_ref); free(dmap); free(davg_ref);
    free(x); free(dy); free(y_ref); free(dx_ref); free(a_ref); free(a);
  }
  static const lvmmed_op ops_[4] = {LVMMED_OP_MAXPOOL_FORWARD, LVMMED_OP_MAXPOOL_BACKWARD,
                                    LVMMED_OP_AVGPOOL_FORWARD, LVMMED_OP_AVGPOOL_BACKWARD};
  for (int k = 0; k < 4; k++) {
    memcpy(stats, st[k], sizeof stats);
    report(ops_[k]);
  }
}
END_TEST

START_TEST(test_transpose_parity) {
  static const size_t shapes[][3] = {{1, 1, 1}, {2, 3, 50}, {3, 64, 37}, {1, 1000, 3}, {2, 33, 65}};
  stats_reset();
  for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
    size_t n = shapes[i][0] * shapes[i][1] * shapes[i][2];
    float *x = rand_floats(n), *want = alloc_floats(n);
    ref->transpose(ctxs[0], shapes[i][0], shapes[i][1], shapes[i][2], x, want);
    double *s = scale_buf(n);
    for (size_t j = 0; j < n; j++) s[j] = 0.0; /* a copy: exact */
    for (size_t b = 0; b < nbackends; b++)
      for (unsigned t = 0; t < 2; t++) {
        float *got = alloc_floats(n);
        backends[b].ops.transpose(ctxs[t], shapes[i][0], shapes[i][1], shapes[i][2], x, got);
        for (size_t j = 0; j < n; j++) ck_assert(got[j] == want[j]);
        compare_floats(&stats[b], got, want, s, n, "transpose");
        free(got);
      }
    free(s); free(x); free(want);
  }
  report(LVMMED_OP_TRANSPOSE);
}
END_TEST

/* ----- determinism and threads ------------------------------------------- */

START_TEST(test_determinism) {
  static const size_t shape[3] = {300, 257, 129};
  for (size_t b = 0; b < nbackends; b++)
    for (unsigned t = 0; t < 2; t++) {
      const lvmmed_backend_ops *ops = &backends[b].ops;
      gemm_case g;
      gemm_make(&g, 0, 1, shape, 3, 1);
      float *c1 = gemm_run(ops, ctxs[t], &g);
      float *c2 = gemm_run(ops, ctxs[t], &g);
      ck_assert_msg(memcmp(c1, c2, gemm_c_size(&g) * sizeof *c1) == 0,
                    "%s gemm differs between two runs with %u threads", ops->name, t + 1);
      free(c2);
      free(c1);
      gemm_free(&g);

      size_t n = vec_sizes[NVEC - 1];
      float *x = rand_floats(n), *y = rand_floats(n);
      double d1 = ops->dot(ctxs[t], n, x, y), d2 = ops->dot(ctxs[t], n, x, y);
      ck_assert_msg(memcmp(&d1, &d2, sizeof d1) == 0, "%s dot not reproducible", ops->name);
      /* dot's blocks are fixed by n alone: also identical across thread counts */
      double d_other = ops->dot(ctxs[1 - t], n, x, y);
      ck_assert_msg(memcmp(&d1, &d_other, sizeof d1) == 0,
                    "%s dot depends on the thread count", ops->name);
      free(y);
      free(x);
    }
}
END_TEST

START_TEST(test_threads) {
  /* The two contexts really differ: big loops split in 1 and 2 chunks. */
  int64_t v = 0;
  ck_assert_int_eq(lvmmed_ctx_get_option(ctxs[1], LVMMED_CTX_OPT_THREADS, &v), LVMMED_OK);
  ck_assert_int_eq(v, 2);
  ck_assert_uint_eq(lvmmed__parallel_chunks(ctxs[0], 1u << 20, 1), 1);
  ck_assert_uint_eq(lvmmed__parallel_chunks(ctxs[1], 1u << 20, 1), 2);
  /* A context whose thread count changes between calls keeps computing right. */
  static const size_t shape[3] = {64, 1000, 100};
  for (size_t b = 0; b < nbackends; b++) {
    const lvmmed_backend_ops *ops = &backends[b].ops;
    gemm_case g;
    gemm_make(&g, 1, 0, shape, 1, 2);
    float *want = gemm_run(ref, ctxs[0], &g);
    for (int64_t threads = 1; threads <= 3; threads++) {
      ck_assert_int_eq(lvmmed_ctx_set_option(ctxs[1], LVMMED_CTX_OPT_THREADS, threads), LVMMED_OK);
      float *got = gemm_run(ops, ctxs[1], &g);
      for (size_t i = 0; i < gemm_c_size(&g); i++)
        /* k = 100 terms of magnitude <= 1, plus |beta c| <= 1 */
        ck_assert_msg(fabs((double)got[i] - want[i]) <= TOL * (1.0 + 101.0),
                      "%s gemm with %d threads: [%zu] %g vs %g", ops->name, (int)threads, i,
                      got[i], want[i]);
      free(got);
    }
    free(want);
    gemm_free(&g);
  }
}
END_TEST

/* ----- suite ------------------------------------------------------------- */

static Suite *backend_suite(void) {
  Suite *s = suite_create("backend parity");

  TCase *structure = tcase_create("structure");
  tcase_add_checked_fixture(structure, setup, teardown);
  tcase_add_test(structure, test_tables);
  tcase_add_test(structure, test_op_names);
  tcase_add_test(structure, test_conv_geom);
  suite_add_tcase(s, structure);

  TCase *ops = tcase_create("parity");
  tcase_add_checked_fixture(ops, setup, teardown);
  tcase_set_timeout(ops, 60);
  tcase_add_test(ops, test_gemm_parity);
  tcase_add_test(ops, test_axpy_parity);
  tcase_add_test(ops, test_scale_parity);
  tcase_add_test(ops, test_im2col_parity);
  tcase_add_test(ops, test_col2im_parity);
  tcase_add_test(ops, test_add_parity);
  tcase_add_test(ops, test_mul_parity);
  tcase_add_test(ops, test_relu_parity);
  tcase_add_test(ops, test_relu_backward_parity);
  tcase_add_test(ops, test_sum_parity);
  tcase_add_test(ops, test_dot_parity);
  tcase_add_test(ops, test_sumsq_parity);
  tcase_add_test(ops, test_row_sum_parity);
  tcase_add_test(ops, test_pairwise_parity);
  tcase_add_test(ops, test_elementwise_aliasing);
  tcase_add_test(ops, test_col2im_adjoint);
  tcase_add_test(ops, test_conv2d_winograd_chosen);
  tcase_add_test(ops, test_conv2d_parity);
  tcase_add_test(ops, test_bn_stats_parity);
  tcase_add_test(ops, test_channel_affine_parity);
  tcase_add_test(ops, test_bn_backward_parity);
  tcase_add_test(ops, test_col_sum_parity);
  tcase_add_test(ops, test_pool_parity);
  tcase_add_test(ops, test_transpose_parity);
  suite_add_tcase(s, ops);

  TCase *threads = tcase_create("threads");
  tcase_add_checked_fixture(threads, setup, teardown);
  tcase_set_timeout(threads, 60);
  tcase_add_test(threads, test_determinism);
  tcase_add_test(threads, test_threads);
  suite_add_tcase(s, threads);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(backend_suite());
  if (!getenv("CK_FORK")) srunner_set_fork_status(sr, CK_NOFORK);
  srunner_run_all(sr, CK_VERBOSE);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed != 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
