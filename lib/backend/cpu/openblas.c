/* The OpenBLAS backend.
 *
 * OpenBLAS (loaded at run time, see blas_loader.h) is driven single-threaded
 * (init sets openblas_set_num_threads(1))
 * and every bit of parallelism comes from the context's pool, so the library
 * never runs more than `threads` busy threads and never nests two thread
 * pools. Chunks depend only on sizes and the thread count (core/pool.h),
 * which keeps every slot bit-identical run to run.
 *
 * cblas takes int sizes: vectors are fed in pieces of at most VEC_PIECE
 * elements, and a gemm whose sizes exceed INT_MAX falls back to the
 * reference kernel rather than overflow silently.
 *
 * sum and row_sum are deliberately left NULL: they are memory bound (BLAS
 * has nothing faster than a loop), and leaving them to the reference keeps
 * the fallback path of lvmmed__backend_resolve exercised in every build.
 */
#include "lvmmed_config.h"

#include <limits.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/cpu/blas_loader.h"
#include "core/core.h"
#include "core/pool.h"

#define VEC_PIECE ((size_t)1 << 30)       /* largest vector handed to one cblas call */
#define ELEM_MIN_CHUNK ((size_t)1 << 15)  /* elementwise: smallest chunk worth a thread */
#define GEMM_PARALLEL_MIN 1048576.0       /* m*n*k below which gemm runs as one call */
#define GEMM_CHUNK_MIN 262144.0           /* multiply-adds a gemm chunk carries at least */
#define GEMM_UNIT ((size_t)16)            /* split gemm in multiples of a SIMD-friendly width */
#define DOT_BLOCK ((size_t)4096)          /* dot/sumsq: float partial sums per block, double across */
#define DOT_MIN_CHUNK ((size_t)16)        /* dot blocks per chunk at least */
#define DOT_LOCAL 256                     /* block partials kept on the stack */

static size_t min_size(size_t a, size_t b) { return a < b ? a : b; }

/* ----- supports / init --------------------------------------------------- */

static int blas_supports(lvmmed_op op) {
  switch (op) {
    case LVMMED_OP_GEMM:
    case LVMMED_OP_AXPY:
    case LVMMED_OP_SCALE:
    case LVMMED_OP_IM2COL:
    case LVMMED_OP_COL2IM:
    case LVMMED_OP_ADD:
    case LVMMED_OP_MUL:
    case LVMMED_OP_RELU:
    case LVMMED_OP_RELU_BACKWARD:
    case LVMMED_OP_DOT:
    case LVMMED_OP_SUMSQ:
    case LVMMED_OP_PAIRWISE_SQDIST: return 1;
    default: return 0; /* sum, row_sum: reference fallback */
  }
}

static lvmmed_status blas_init(lvmmed_ctx *ctx) {
  const lvmmed_blas_api *blas = lvmmed__blas();
  if (!blas) return lvmmed__fail(ctx, LVMMED_ERR_BACKEND_UNAVAILABLE, "%s", lvmmed__blas_error());
  /* Process-wide: our pool supplies the threads (see the top of this file). */
  blas->set_num_threads(1);
  lvmmed__log(ctx, LVMMED_LOG_DEBUG, "OpenBLAS kernels: %s", blas->get_corename());
  return LVMMED_OK;
}

/* ----- gemm -------------------------------------------------------------- */

typedef struct gemm_job {
  int trans_a, trans_b;
  size_t m, n, k;
  float alpha, beta;
  const float *a, *b;
  float *c;
  size_t lda, ldb, ldc;
  int by_cols; /* chunks own columns of C (else rows) */
} gemm_job;

/* A leading dimension is only 0 when its rows are empty; cblas still wants >= 1. */
static int blas_ld(size_t ld) { return ld ? (int)ld : 1; }

static void sgemm_block(const gemm_job *j, size_t m, size_t n, const float *a, const float *b,
                        float *c) {
  lvmmed__blas()->sgemm(CblasRowMajor, j->trans_a ? CblasTrans : CblasNoTrans,
              j->trans_b ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)j->k, j->alpha, a,
              blas_ld(j->lda), b, blas_ld(j->ldb), j->beta, c, blas_ld(j->ldc));
}

static void gemm_range(void *arg, size_t begin, size_t end, unsigned chunk) {
  const gemm_job *j = arg;
  (void)chunk;
  size_t lo = begin * GEMM_UNIT;
  if (j->by_cols) {
    size_t hi = min_size(end * GEMM_UNIT, j->n);
    const float *b = j->trans_b ? j->b + lo * j->ldb : j->b + lo;
    sgemm_block(j, j->m, hi - lo, j->a, b, j->c + lo);
  } else {
    size_t hi = min_size(end * GEMM_UNIT, j->m);
    const float *a = j->trans_a ? j->a + lo : j->a + lo * j->lda;
    sgemm_block(j, hi - lo, j->n, a, j->b, j->c + lo * j->ldc);
  }
}

static void blas_gemm(lvmmed_ctx *ctx, int trans_a, int trans_b, size_t m, size_t n, size_t k,
                      float alpha, const float *a, size_t lda, const float *b, size_t ldb,
                      float beta, float *c, size_t ldc) {
  const size_t lim = (size_t)INT_MAX;
  if (m == 0 || n == 0) return;
  if (m > lim || n > lim || k > lim || lda > lim || ldb > lim || ldc > lim) {
    lvmmed__backend_reference.gemm(ctx, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta,
                                   c, ldc);
    return;
  }
  gemm_job j = {.trans_a = trans_a, .trans_b = trans_b, .m = m, .n = n, .k = k,
                .alpha = alpha, .beta = beta, .a = a, .b = b, .c = c,
                .lda = lda, .ldb = ldb, .ldc = ldc, .by_cols = 0};
  double work = (double)m * (double)n * (double)k;
  if (work < GEMM_PARALLEL_MIN) {
    sgemm_block(&j, m, n, a, b, c);
    return;
  }
  /* Each chunk re-packs the whole of the operand it does not split, so split
   * the longer side of C: columns when n >= m (the conv case: m = C_out,
   * n = H*W), rows otherwise. */
  j.by_cols = n >= m;
  size_t len = j.by_cols ? n : m;
  double unit_work = (double)GEMM_UNIT * (double)(j.by_cols ? m : n) * (double)k;
  size_t min_units = unit_work >= GEMM_CHUNK_MIN ? 1 : (size_t)(GEMM_CHUNK_MIN / unit_work) + 1;
  lvmmed__parallel_for(ctx, (len + GEMM_UNIT - 1) / GEMM_UNIT, min_units, gemm_range, &j);
}

/* ----- axpy / scale ------------------------------------------------------ */

typedef struct vec_job {
  float alpha;
  const float *x;
  float *y;
} vec_job;

static void axpy_range(void *arg, size_t begin, size_t end, unsigned chunk) {
  const vec_job *v = arg;
  (void)chunk;
  if (v->alpha == 0.0f) {
    /* OpenBLAS returns early for alpha == 0; keep IEEE y += 0*x (Inf/NaN in x). */
    for (size_t i = begin; i < end; i++) v->y[i] += 0.0f * v->x[i];
    return;
  }
  for (size_t lo = begin; lo < end; lo += VEC_PIECE)
    lvmmed__blas()->saxpy((int)min_size(VEC_PIECE, end - lo), v->alpha, v->x + lo, 1, v->y + lo, 1);
}

static void blas_axpy(lvmmed_ctx *ctx, size_t n, float alpha, const float *x, float *y) {
  vec_job v = {alpha, x, y};
  lvmmed__parallel_for(ctx, n, ELEM_MIN_CHUNK, axpy_range, &v);
}

static void scale_range(void *arg, size_t begin, size_t end, unsigned chunk) {
  const vec_job *v = arg;
  (void)chunk;
  if (v->alpha == 0.0f) {
    /* OpenBLAS's sscal stores zeros for alpha == 0; keep IEEE x*0 (NaN stays NaN). */
    for (size_t i = begin; i < end; i++) v->y[i] *= 0.0f;
    return;
  }
  for (size_t lo = begin; lo < end; lo += VEC_PIECE)
    lvmmed__blas()->sscal((int)min_size(VEC_PIECE, end - lo), v->alpha, v->y + lo, 1);
}

static void blas_scale(lvmmed_ctx *ctx, size_t n, float alpha, float *x) {
  vec_job v = {alpha, NULL, x};
  lvmmed__parallel_for(ctx, n, ELEM_MIN_CHUNK, scale_range, &v);
}

/* ----- elementwise ------------------------------------------------------- */

typedef enum elem_kind { ELEM_ADD, ELEM_MUL, ELEM_RELU, ELEM_RELU_BACKWARD } elem_kind;

typedef struct elem_job {
  elem_kind kind;
  const float *a, *b;
  float *out;
} elem_job;

/* Plain loops the compiler vectorises; no restrict because out may alias an input. */
static void elem_range(void *arg, size_t begin, size_t end, unsigned chunk) {
  const elem_job *e = arg;
  const float *a = e->a, *b = e->b;
  float *out = e->out;
  (void)chunk;
  switch (e->kind) {
    case ELEM_ADD:
      for (size_t i = begin; i < end; i++) out[i] = a[i] + b[i];
      break;
    case ELEM_MUL:
      for (size_t i = begin; i < end; i++) out[i] = a[i] * b[i];
      break;
    case ELEM_RELU:
      for (size_t i = begin; i < end; i++) out[i] = a[i] > 0.0f ? a[i] : 0.0f;
      break;
    case ELEM_RELU_BACKWARD:
      for (size_t i = begin; i < end; i++) out[i] = a[i] > 0.0f ? b[i] : 0.0f;
      break;
  }
}

static void run_elem(lvmmed_ctx *ctx, elem_kind kind, size_t n, const float *a, const float *b,
                     float *out) {
  elem_job e = {kind, a, b, out};
  lvmmed__parallel_for(ctx, n, ELEM_MIN_CHUNK, elem_range, &e);
}

static void blas_add(lvmmed_ctx *ctx, size_t n, const float *a, const float *b, float *out) {
  run_elem(ctx, ELEM_ADD, n, a, b, out);
}

static void blas_mul(lvmmed_ctx *ctx, size_t n, const float *a, const float *b, float *out) {
  run_elem(ctx, ELEM_MUL, n, a, b, out);
}

static void blas_relu(lvmmed_ctx *ctx, size_t n, const float *x, float *out) {
  run_elem(ctx, ELEM_RELU, n, x, NULL, out);
}

static void blas_relu_backward(lvmmed_ctx *ctx, size_t n, const float *y, const float *dy,
                               float *dx) {
  run_elem(ctx, ELEM_RELU_BACKWARD, n, y, dy, dx);
}

/* ----- dot / sumsq ------------------------------------------------------- */

/* Fixed blocks of DOT_BLOCK elements: cblas_sdot per block, partials added
 * in double in block order. The blocks do not depend on the thread count,
 * so the result is identical for every thread count and on the serial path. */
typedef struct dot_job {
  const float *x, *y;
  size_t n;
  double *partial;
} dot_job;

static double dot_block(const dot_job *d, size_t blk) {
  size_t lo = blk * DOT_BLOCK;
  int len = (int)min_size(DOT_BLOCK, d->n - lo);
  return lvmmed__blas()->sdot(len, d->x + lo, 1, d->y + lo, 1);
}

static void dot_range(void *arg, size_t begin, size_t end, unsigned chunk) {
  const dot_job *d = arg;
  (void)chunk;
  for (size_t blk = begin; blk < end; blk++) d->partial[blk] = dot_block(d, blk);
}

static double blas_dot(lvmmed_ctx *ctx, size_t n, const float *x, const float *y) {
  size_t blocks = (n + DOT_BLOCK - 1) / DOT_BLOCK;
  double local[DOT_LOCAL];
  dot_job d = {x, y, n, NULL};
  double s = 0.0;
  if (lvmmed__parallel_chunks(ctx, blocks, DOT_MIN_CHUNK) > 1)
    d.partial = blocks <= DOT_LOCAL ? local : lvmmed__alloc(ctx, blocks * sizeof(double));
  if (!d.partial) { /* one chunk, or no memory: same blocks, same order, same result */
    for (size_t blk = 0; blk < blocks; blk++) s += dot_block(&d, blk);
    return s;
  }
  lvmmed__parallel_for(ctx, blocks, DOT_MIN_CHUNK, dot_range, &d);
  for (size_t blk = 0; blk < blocks; blk++) s += d.partial[blk];
  if (d.partial != local) lvmmed__free(ctx, d.partial);
  return s;
}

static double blas_sumsq(lvmmed_ctx *ctx, size_t n, const float *x) {
  return blas_dot(ctx, n, x, x);
}

/* ----- im2col / col2im --------------------------------------------------- */

typedef struct conv_job {
  const lvmmed_conv_geom *g;
  const float *src;
  float *dst;
} conv_job;

/* Output positions [*lo, *hi) whose tap t reads inside the input (not padding). */
static void valid_span(size_t out, size_t t, size_t stride, size_t pad, size_t dilation,
                       size_t size, size_t *lo, size_t *hi) {
  size_t off = t * dilation; /* o*stride + off is the position in the padded input */
  size_t l = off >= pad ? 0 : (pad - off + stride - 1) / stride;
  size_t h = pad + size <= off ? 0 : (pad + size - off + stride - 1) / stride;
  l = min_size(l, out);
  h = min_size(h, out);
  *lo = l;
  *hi = h > l ? h : l;
}

/* One chunk owns rows r = (ch*kh + ki)*kw + kj of col: disjoint writes. */
static void im2col_range(void *arg, size_t begin, size_t end, unsigned chunk) {
  const conv_job *job = arg;
  const lvmmed_conv_geom *g = job->g;
  size_t plane = g->out_h * g->out_w;
  (void)chunk;
  for (size_t r = begin; r < end; r++) {
    size_t kj = r % g->kernel_w, ki = r / g->kernel_w % g->kernel_h;
    size_t ch = r / g->kernel_w / g->kernel_h;
    size_t ylo, yhi, xlo, xhi;
    valid_span(g->out_h, ki, g->stride_h, g->pad_h, g->dilation_h, g->height, &ylo, &yhi);
    valid_span(g->out_w, kj, g->stride_w, g->pad_w, g->dilation_w, g->width, &xlo, &xhi);
    float *dst = job->dst + r * plane;
    for (size_t oy = 0; oy < g->out_h; oy++) {
      float *d = dst + oy * g->out_w;
      if (oy < ylo || oy >= yhi || xlo == xhi) {
        memset(d, 0, g->out_w * sizeof *d);
        continue;
      }
      size_t y = oy * g->stride_h + ki * g->dilation_h - g->pad_h;
      const float *s = job->src + (ch * g->height + y) * g->width +
                       (xlo * g->stride_w + kj * g->dilation_w - g->pad_w);
      memset(d, 0, xlo * sizeof *d);
      if (g->stride_w == 1) {
        memcpy(d + xlo, s, (xhi - xlo) * sizeof *d);
      } else {
        for (size_t ox = xlo; ox < xhi; ox++) d[ox] = s[(ox - xlo) * g->stride_w];
      }
      memset(d + xhi, 0, (g->out_w - xhi) * sizeof *d);
    }
  }
}

/* One chunk owns whole channels: each writes only its own image plane, and
 * every pixel gathers its terms in the reference's (ki, kj) order. */
static void col2im_range(void *arg, size_t begin, size_t end, unsigned chunk) {
  const conv_job *job = arg;
  const lvmmed_conv_geom *g = job->g;
  size_t plane = g->out_h * g->out_w;
  (void)chunk;
  for (size_t ch = begin; ch < end; ch++)
    for (size_t ki = 0; ki < g->kernel_h; ki++) {
      size_t ylo, yhi;
      valid_span(g->out_h, ki, g->stride_h, g->pad_h, g->dilation_h, g->height, &ylo, &yhi);
      for (size_t kj = 0; kj < g->kernel_w; kj++) {
        size_t xlo, xhi;
        valid_span(g->out_w, kj, g->stride_w, g->pad_w, g->dilation_w, g->width, &xlo, &xhi);
        const float *src = job->src + ((ch * g->kernel_h + ki) * g->kernel_w + kj) * plane;
        for (size_t oy = ylo; oy < yhi; oy++) {
          size_t y = oy * g->stride_h + ki * g->dilation_h - g->pad_h;
          float *d = job->dst + (ch * g->height + y) * g->width +
                     (xlo * g->stride_w + kj * g->dilation_w - g->pad_w);
          const float *s = src + oy * g->out_w;
          for (size_t ox = xlo; ox < xhi; ox++) d[(ox - xlo) * g->stride_w] += s[ox];
        }
      }
    }
}

static size_t at_least_one(size_t v) { return v ? v : 1; }

static void blas_im2col(lvmmed_ctx *ctx, const lvmmed_conv_geom *g, const float *image,
                        float *col) {
  conv_job job = {g, image, col};
  size_t rows = g->channels * g->kernel_h * g->kernel_w;
  size_t plane = g->out_h * g->out_w;
  if (plane == 0) return;
  lvmmed__parallel_for(ctx, rows, at_least_one(ELEM_MIN_CHUNK / plane), im2col_range, &job);
}

static void blas_col2im(lvmmed_ctx *ctx, const lvmmed_conv_geom *g, const float *col,
                        float *image) {
  conv_job job = {g, col, image};
  size_t per_channel = g->kernel_h * g->kernel_w * g->out_h * g->out_w;
  if (per_channel == 0) return;
  lvmmed__parallel_for(ctx, g->channels, at_least_one(ELEM_MIN_CHUNK / per_channel),
                       col2im_range, &job);
}

/* ----- pairwise squared distances ---------------------------------------- */

typedef struct dist_job {
  size_t n, d;
  const float *a, *b;
  size_t lda, ldb;
  float *out;
  size_t ldo;
  double *nb; /* ||b_j||² */
} dist_job;

static double row_sq(const float *x, size_t d) {
  double s = 0.0;
  for (size_t p = 0; p < d; p++) s += (double)x[p] * x[p];
  return s;
}

static void bnorm_range(void *arg, size_t begin, size_t end, unsigned chunk) {
  const dist_job *j = arg;
  (void)chunk;
  for (size_t r = begin; r < end; r++) j->nb[r] = row_sq(j->b + r * j->ldb, j->d);
}

/* out holds -2 a·b from the gemm; add the norms and clamp the rounding below 0. */
static void dist_finish_range(void *arg, size_t begin, size_t end, unsigned chunk) {
  const dist_job *j = arg;
  (void)chunk;
  for (size_t i = begin; i < end; i++) {
    double na = row_sq(j->a + i * j->lda, j->d);
    float *o = j->out + i * j->ldo;
    for (size_t c = 0; c < j->n; c++) {
      float v = (float)(na + j->nb[c] + (double)o[c]);
      o[c] = v < 0.0f ? 0.0f : v; /* NaN passes through */
    }
  }
}

/* ||a||² + ||b||² - 2 a·b: one gemm does the O(m n d) part. It cancels for
 * nearby points (absolute error ~ eps·(||a||² + ||b||²)), the usual price;
 * the reference computes Σ (a - b)² directly. */
static void blas_pairwise_sqdist(lvmmed_ctx *ctx, size_t m, size_t n, size_t d, const float *a,
                                 size_t lda, const float *b, size_t ldb, float *out,
                                 size_t ldo) {
  if (m == 0 || n == 0) return;
  size_t bytes;
  double *nb = lvmmed__mul_size(n, sizeof(double), &bytes) ? lvmmed__alloc(ctx, bytes) : NULL;
  if (!nb) {
    lvmmed__backend_reference.pairwise_sqdist(ctx, m, n, d, a, lda, b, ldb, out, ldo);
    return;
  }
  dist_job j = {n, d, a, b, lda, ldb, out, ldo, nb};
  blas_gemm(ctx, 0, 1, m, n, d, -2.0f, a, lda, b, ldb, 0.0f, out, ldo);
  lvmmed__parallel_for(ctx, n, at_least_one(ELEM_MIN_CHUNK / at_least_one(d)), bnorm_range, &j);
  lvmmed__parallel_for(ctx, m, at_least_one(ELEM_MIN_CHUNK / (n + d)), dist_finish_range, &j);
  lvmmed__free(ctx, nb);
}

const lvmmed_backend_ops lvmmed__backend_openblas = {
    .api_version = LVMMED_BACKEND_API_VERSION,
    .id = LVMMED_BACKEND_OPENBLAS,
    .name = "openblas",
    .supports = blas_supports,
    .init = blas_init,
    .gemm = blas_gemm,
    .axpy = blas_axpy,
    .scale = blas_scale,
    .im2col = blas_im2col,
    .col2im = blas_col2im,
    .add = blas_add,
    .mul = blas_mul,
    .relu = blas_relu,
    .relu_backward = blas_relu_backward,
    .sum = NULL,     /* reference fallback, see the top of this file */
    .dot = blas_dot,
    .sumsq = blas_sumsq,
    .row_sum = NULL, /* reference fallback, see the top of this file */
    .pairwise_sqdist = blas_pairwise_sqdist,
};
