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
#include <strings.h>

#include "backend/backend.h"
#include "backend/cpu/blas_loader.h"
#include "backend/cpu/conv_direct.h"
#include "backend/cpu/conv_winograd.h"
#include "backend/cpu/rowops.h"
#include "core/core.h"
#include "core/pool.h"

#define VEC_PIECE ((size_t)1 << 30)       /* largest vector handed to one cblas call */
#define ELEM_MIN_CHUNK ((size_t)1 << 15)  /* elementwise: smallest chunk worth a thread */
#define GEMM_PARALLEL_MIN 1048576.0       /* m*n*k below which gemm runs as one call */
#define GEMM_CHUNK_MIN 262144.0           /* multiply-adds a gemm chunk carries at least */
#define GEMM_UNIT ((size_t)16)            /* split gemm in multiples of a SIMD-friendly width */
#define DOT_BLOCK ((size_t)4096)          /* dot/sumsq: float sums per block, double across */
#define DOT_MIN_CHUNK ((size_t)16)        /* dot blocks per chunk at least */
#define DOT_LOCAL 256                     /* block partials kept on the stack */

static size_t min_size(size_t a, size_t b) { return a < b ? a : b; }
static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

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
    case LVMMED_OP_PAIRWISE_SQDIST:
    case LVMMED_OP_CONV2D_FORWARD:
    case LVMMED_OP_CONV2D_BACKWARD_DATA:
    case LVMMED_OP_CONV2D_BACKWARD_WEIGHT:
    case LVMMED_OP_BN_STATS:
    case LVMMED_OP_CHANNEL_AFFINE:
    case LVMMED_OP_BN_BACKWARD_REDUCE:
    case LVMMED_OP_BN_BACKWARD_APPLY:
    case LVMMED_OP_COL_SUM:
    case LVMMED_OP_MAXPOOL_FORWARD:
    case LVMMED_OP_MAXPOOL_BACKWARD:
    case LVMMED_OP_AVGPOOL_FORWARD:
    case LVMMED_OP_AVGPOOL_BACKWARD:
    case LVMMED_OP_TRANSPOSE:
    case LVMMED_OP_CONV2D_PACK:
    case LVMMED_OP_CONV2D_FORWARD_PACKED:
    case LVMMED_OP_CONV2D_FORWARD_PACKED_AFFINE: return 1;
    default: return 0; /* sum, row_sum: reference fallback */
  }
}

static lvmmed_status blas_init(lvmmed_ctx *ctx) {
  const lvmmed_blas_api *blas = lvmmed__blas();
  if (!blas) return lvmmed__fail(ctx, LVMMED_ERR_BACKEND_UNAVAILABLE, "%s", lvmmed__blas_error());
  /* Process-wide: our pool supplies the threads (see the top of this file). */
  blas->set_num_threads(1);
  const char *core = blas->get_corename(), *want = lvmmed__blas_preferred_core();
  lvmmed__log(ctx, LVMMED_LOG_DEBUG, "OpenBLAS kernels: %s", core);
  /* Another user of the process (numpy, torch) loaded OpenBLAS first, misdetected. */
  if (want && core && strcasecmp(core, want) != 0)
    lvmmed__log(ctx, LVMMED_LOG_WARN,
                "OpenBLAS runs %s kernels on a CPU that supports %s (about 2x faster here): it was loaded "
                "before liblvmmed; set OPENBLAS_CORETYPE=%s in the environment (or import lvmmed before numpy)",
                core, want, want);
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
  lvmmed__parallel_for_balanced(ctx, n, ELEM_MIN_CHUNK, axpy_range, &v);
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
  lvmmed__parallel_for_balanced(ctx, n, ELEM_MIN_CHUNK, scale_range, &v);
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
    case ELEM_ADD: lvmmed__vec_add(end - begin, a + begin, b + begin, out + begin); break;
    case ELEM_MUL:
      for (size_t i = begin; i < end; i++) out[i] = a[i] * b[i];
      break;
    case ELEM_RELU:
      for (size_t i = begin; i < end; i++) out[i] = a[i] > 0.0f ? a[i] : 0.0f;
      break;
    case ELEM_RELU_BACKWARD:
      lvmmed__vec_relu_backward(end - begin, a + begin, b + begin, out + begin);
      break;
  }
}

static void run_elem(lvmmed_ctx *ctx, elem_kind kind, size_t n, const float *a, const float *b,
                     float *out) {
  elem_job e = {kind, a, b, out};
  lvmmed__parallel_for_balanced(ctx, n, ELEM_MIN_CHUNK, elem_range, &e);
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
  lvmmed__parallel_for_balanced(ctx, rows, at_least_one(ELEM_MIN_CHUNK / plane), im2col_range,
                                &job);
}

static void blas_col2im(lvmmed_ctx *ctx, const lvmmed_conv_geom *g, const float *col,
                        float *image) {
  conv_job job = {g, col, image};
  size_t per_channel = g->kernel_h * g->kernel_w * g->out_h * g->out_w;
  if (per_channel == 0) return;
  lvmmed__parallel_for_balanced(ctx, g->channels, at_least_one(ELEM_MIN_CHUNK / per_channel),
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

/* ----- version 2: backbone layers ---------------------------------------- */

/* NHWC im2col of one image into rows of K = C·kh·kw columns, one row per
 * output pixel, in one of two column orders:
 *  - channel-major (ci, ki, kj): PyTorch's weight order, so the GEMM uses the
 *    weights as they are; each tap's channels land 9 floats apart (scalar
 *    stores);
 *  - tap-major (ki, kj, ci): each tap is one contiguous copy of C floats, but
 *    the GEMM then needs the weights permuted to (co, ki, kj, ci), which costs
 *    a pass over them per call: worth it when the GEMM has many more rows than
 *    output channels (conv_tap_major). */
typedef struct nhwc_job {
  const lvmmed_conv_geom *g;
  const float *src;
  float *dst;
  int tap_major;
} nhwc_job;

static void nhwc_im2col_range(void *arg, size_t begin, size_t end, unsigned chunk) {
  const nhwc_job *job = arg;
  const lvmmed_conv_geom *g = job->g;
  size_t cin = g->channels, taps = g->kernel_h * g->kernel_w, kdim = cin * taps;
  size_t cstep = job->tap_major ? 1 : taps, tstep = job->tap_major ? cin : 1;
  (void)chunk;
  for (size_t p = begin; p < end; p++) {
    size_t oy = p / g->out_w, ox = p % g->out_w;
    float *row = job->dst + p * kdim;
    for (size_t ki = 0; ki < g->kernel_h; ki++) {
      size_t py = oy * g->stride_h + ki * g->dilation_h;
      int in_y = py >= g->pad_h && py - g->pad_h < g->height;
      for (size_t kj = 0; kj < g->kernel_w; kj++) {
        size_t px = ox * g->stride_w + kj * g->dilation_w, t = ki * g->kernel_w + kj;
        float *d = row + t * tstep;
        if (!in_y || px < g->pad_w || px - g->pad_w >= g->width) {
          for (size_t ci = 0; ci < cin; ci++) d[ci * cstep] = 0.0f;
          continue;
        }
        const float *sp = job->src + ((py - g->pad_h) * g->width + (px - g->pad_w)) * cin;
        if (cstep == 1) {
          memcpy(d, sp, cin * sizeof *d);
        } else {
          for (size_t ci = 0; ci < cin; ci++) d[ci * cstep] = sp[ci];
        }
      }
    }
  }
}

/* Adjoint of nhwc_im2col for one image (windows overlap: one thread per image). */
static void nhwc_col2im(const lvmmed_conv_geom *g, const float *col, float *image,
                        int tap_major) {
  size_t cin = g->channels, taps = g->kernel_h * g->kernel_w, kdim = cin * taps;
  for (size_t p = 0; p < g->out_h * g->out_w; p++) {
    size_t oy = p / g->out_w, ox = p % g->out_w;
    const float *row = col + p * kdim;
    for (size_t ki = 0; ki < g->kernel_h; ki++) {
      size_t py = oy * g->stride_h + ki * g->dilation_h;
      if (py < g->pad_h || py - g->pad_h >= g->height) continue;
      for (size_t kj = 0; kj < g->kernel_w; kj++) {
        size_t px = ox * g->stride_w + kj * g->dilation_w, t = ki * g->kernel_w + kj;
        if (px < g->pad_w || px - g->pad_w >= g->width) continue;
        float *d = image + ((py - g->pad_h) * g->width + (px - g->pad_w)) * cin;
        if (tap_major) {
          lvmmed__vec_add(cin, d, row + t * cin, d);
        } else {
          const float *sp = row + t;
          for (size_t ci = 0; ci < cin; ci++) d[ci] += sp[ci * taps];
        }
      }
    }
  }
}

/* 1x1, stride 1, no padding: the input already is the column matrix. */
static int conv_is_pointwise(const lvmmed_conv_geom *g) {
  return g->kernel_h == 1 && g->kernel_w == 1 && g->stride_h == 1 && g->stride_w == 1 &&
         g->pad_h == 0 && g->pad_w == 0;
}

/* Tap-major columns pay a weight permutation (out_channels × K floats) per call
 * and save a scalar scatter of rows × K floats: taken when rows > 2·out_channels. */
static int conv_tap_major(const lvmmed_conv2d *c) {
  size_t taps = c->g.kernel_h * c->g.kernel_w;
  return taps > 1 && c->g.channels > 1 &&
         c->batch * c->g.out_h * c->g.out_w > 2 * c->out_channels;
}

/* (co, ci, t) → (co, t, ci), and back with accumulation; parallel over co (each
 * output channel's cin·taps block is its own). */
typedef struct tap_major_job {
  const lvmmed_conv2d *c;
  const float *src;
  float *dst;
  int back; /* 0: to tap-major, 1: add back from tap-major */
} tap_major_job;

static void tap_major_range(void *arg, size_t begin, size_t end, unsigned chunk) {
  const tap_major_job *j = arg;
  size_t cin = j->c->g.channels, taps = j->c->g.kernel_h * j->c->g.kernel_w;
  (void)chunk;
  for (size_t co = begin; co < end; co++) {
    const float *s = j->src + co * cin * taps;
    float *d = j->dst + co * cin * taps;
    if (j->back) {
      for (size_t ci = 0; ci < cin; ci++)
        for (size_t t = 0; t < taps; t++) d[ci * taps + t] += s[t * cin + ci];
    } else {
      for (size_t ci = 0; ci < cin; ci++)
        for (size_t t = 0; t < taps; t++) d[t * cin + ci] = s[ci * taps + t];
    }
  }
}

static void permute_tap_major(lvmmed_ctx *ctx, const lvmmed_conv2d *c, const float *src,
                              float *dst, int back) {
  tap_major_job j = {c, src, dst, back};
  size_t per = c->g.channels * c->g.kernel_h * c->g.kernel_w;
  lvmmed__parallel_for_balanced(ctx, c->out_channels,
                                at_least_one(ELEM_MIN_CHUNK / at_least_one(per)), tap_major_range,
                                &j);
}

static void weights_to_tap_major(lvmmed_ctx *ctx, const lvmmed_conv2d *c, const float *w,
                                 float *wt) {
  permute_tap_major(ctx, c, w, wt, 0);
}

static void add_from_tap_major(lvmmed_ctx *ctx, const lvmmed_conv2d *c, const float *wt,
                               float *w) {
  permute_tap_major(ctx, c, wt, w, 1);
}

/* Images whose im2col matrices go into one GEMM: as many as fit CONV_WS_BUDGET
 * floats. Several images per GEMM keep its M (forward, backward data) or K
 * (weight gradient) large in the late stages, where one image has 7×7 pixels
 * and a GEMM per image would spend its time re-packing the weights. */
#define CONV_WS_BUDGET ((size_t)6 << 20)

static size_t conv_col_floats(const lvmmed_conv_geom *g) {
  return g->out_h * g->out_w * g->channels * g->kernel_h * g->kernel_w;
}

static size_t conv_chunk_images(const lvmmed_conv2d *c) {
  size_t per = conv_col_floats(&c->g), n = per ? CONV_WS_BUDGET / per : c->batch;
  if (n < 1) n = 1;
  return n < c->batch ? n : c->batch;
}

static size_t conv_weight_floats(const lvmmed_conv2d *c) {
  return c->out_channels * c->g.channels * c->g.kernel_h * c->g.kernel_w;
}

/* Workspace: the column matrix of one chunk of images, then (tap-major) the
 * permuted weights or weight gradient, on a 64-byte boundary. */
static size_t conv_ws_cols(const lvmmed_conv2d *c) {
  return (conv_chunk_images(c) * conv_col_floats(&c->g) + 15) & ~(size_t)15;
}

/* Convolutions the direct kernel runs (forward; backward data when stride 1). */
static int conv_direct(const lvmmed_conv2d *c) {
  return !conv_is_pointwise(&c->g) && lvmmed__direct_supported(c);
}

/* A pointwise convolution is a GEMM with K = C_in (forward) or K = C_out (backward
 * data). OpenBLAS is the faster of the two when that K is the short side (an
 * expansion: its small-K kernels re-read C); the direct kernel, which keeps each
 * 12 x 32 block of the output in registers over all of K, when K is the long side
 * (10-25% on ResNet-50's 256->64 ... 2048->512 layers, alternating A/B runs) and
 * there are enough output pixels (64) to fill a few of its 12-pixel tiles. */
static int pointwise_direct(const lvmmed_conv2d *c, size_t k, size_t n) {
  return conv_is_pointwise(&c->g) && k > n && lvmmed__direct_supported(c) &&
         c->batch * c->g.out_h * c->g.out_w >= 64;
}

static int conv_direct_wgrad(const lvmmed_conv2d *c) {
  const lvmmed_conv_geom *g = &c->g;
  if (!conv_direct(c) || g->kernel_h * g->kernel_w == 1) return 0;
  if (g->stride_h == 1 && g->stride_w == 1) return g->channels < 512 || g->out_h * g->out_w > 64;
  return g->channels < 64; /* a strided stem: its 147-wide im2col GEMM is 2.5x slower */
}

static int direct_forward(const lvmmed_conv2d *c) {
  return conv_direct(c) || pointwise_direct(c, c->g.channels, c->out_channels);
}

static int direct_backward_data(const lvmmed_conv2d *c) {
  return conv_direct(c) || pointwise_direct(c, c->out_channels, c->g.channels);
}

/* Winograd's part: transformed weights, then per-thread scratch (forward or adjoint). */
static size_t wino_workspace(const lvmmed_ctx *ctx, const lvmmed_conv2d *c) {
  if (!lvmmed__wino_chosen(c)) return 0;
  size_t fwd = round16(lvmmed__wino_packed_floats(c)) + lvmmed__wino_ws(ctx, c);
  size_t adj = lvmmed__wino_chosen_adjoint(c) ? round16(lvmmed__wino_adjoint_packed_floats(c)) +
                                                    lvmmed__wino_adjoint_ws(ctx, c)
                                              : 0;
  size_t wg = lvmmed__wino_chosen_wgrad(c) ? lvmmed__wino_wgrad_ws(ctx, c) : 0;
  size_t need = fwd > adj ? fwd : adj;
  return need > wg ? need : wg;
}

/* The largest need of the passes: forward, backward data, weight gradient. */
static size_t kernel_workspace(const lvmmed_ctx *ctx, const lvmmed_conv2d *c) {
  if (conv_is_pointwise(&c->g)) { /* packed weights only: no padding, BLAS weight gradient */
    size_t fwd = direct_forward(c) ? lvmmed__direct_packed_floats(c) : 0;
    size_t adj = direct_backward_data(c) ? lvmmed__direct_adjoint_floats(c) : 0;
    return round16(fwd > adj ? fwd : adj);
  }
  size_t need = conv_ws_cols(c) + (conv_tap_major(c) ? conv_weight_floats(c) : 0);
  if (conv_direct(c)) {
    /* packed weights followed by the zero-padded input of the kernel if it needs
     * one: the forward's, or (stride 1) the adjoint's */
    size_t fwd = round16(lvmmed__direct_packed_floats(c)) + lvmmed__direct_ws(c);
    size_t adj = lvmmed__direct_adjoint_floats(c);
    size_t wg = conv_direct_wgrad(c) ? lvmmed__direct_wgrad_ws(ctx, c) : 0;
    if (fwd > need) need = fwd;
    if (adj > need) need = adj;
    if (wg > need) need = wg;
  }
  return need;
}

static size_t blas_conv2d_workspace(const lvmmed_ctx *ctx, const lvmmed_conv2d *c) {
  size_t need = kernel_workspace(ctx, c), wino = wino_workspace(ctx, c);
  return need > wino ? need : wino;
}

/* im2col of images [first, first + count) into consecutive blocks of col. */
typedef struct im2col_batch_job {
  const lvmmed_conv_geom *g;
  const float *x;
  float *col;
  size_t img, pix, kdim;
  int tap_major;
} im2col_batch_job;

static void im2col_batch_range(void *arg, size_t begin, size_t end, unsigned chunk) {
  const im2col_batch_job *j = arg;
  (void)chunk;
  /* units are output pixels of the whole chunk: split at image boundaries */
  while (begin < end) {
    size_t n = begin / j->pix, p0 = begin % j->pix;
    size_t p1 = end - n * j->pix < j->pix ? end - n * j->pix : j->pix;
    nhwc_job job = {j->g, j->x + n * j->img, j->col + n * j->pix * j->kdim, j->tap_major};
    nhwc_im2col_range(&job, p0, p1, 0);
    begin = n * j->pix + p1;
  }
}

static void im2col_images(lvmmed_ctx *ctx, const lvmmed_conv_geom *g, const float *x,
                          size_t count, float *col, int tap_major) {
  size_t kdim = g->channels * g->kernel_h * g->kernel_w;
  im2col_batch_job j = {g, x, col, g->height * g->width * g->channels, g->out_h * g->out_w, kdim,
                        tap_major};
  lvmmed__parallel_for_balanced(ctx, count * j.pix, at_least_one(ELEM_MIN_CHUNK / kdim),
                                im2col_batch_range, &j);
}

static void blas_conv2d_forward(lvmmed_ctx *ctx, const lvmmed_conv2d *c, const float *x,
                                const float *w, float *y, float *ws) {
  const lvmmed_conv_geom *g = &c->g;
  size_t cout = c->out_channels, kdim = g->channels * g->kernel_h * g->kernel_w;
  size_t pix = g->out_h * g->out_w, img = g->height * g->width * g->channels;
  if (lvmmed__wino_chosen(c)) {
    lvmmed__wino_pack(ctx, c, w, ws);
    lvmmed__wino_run(ctx, c, x, ws, y, 0, NULL, ws + round16(lvmmed__wino_packed_floats(c)));
    return;
  }
  if (direct_forward(c)) {
    lvmmed__direct_pack(ctx, c, w, ws);
    lvmmed__direct_run(ctx, c, x, ws, y, 0, ws + round16(lvmmed__direct_packed_floats(c)));
    return;
  }
  if (conv_is_pointwise(g)) {
    blas_gemm(ctx, 0, 1, c->batch * pix, cout, kdim, 1.0f, x, kdim, w, kdim, 0.0f, y, cout);
    return;
  }
  int tm = conv_tap_major(c);
  if (tm) {
    float *wt = ws + conv_ws_cols(c);
    weights_to_tap_major(ctx, c, w, wt);
    w = wt;
  }
  size_t step = conv_chunk_images(c);
  for (size_t n = 0; n < c->batch; n += step) {
    size_t cnt = c->batch - n < step ? c->batch - n : step;
    im2col_images(ctx, g, x + n * img, cnt, ws, tm);
    blas_gemm(ctx, 0, 1, cnt * pix, cout, kdim, 1.0f, ws, kdim, w, kdim, 0.0f,
              y + n * pix * cout, cout);
  }
}

/* Packed weights: Winograd's transformed weights, the direct kernel's panels, else
 * the weights as they are. */
static size_t blas_conv2d_packed_size(const lvmmed_ctx *ctx, const lvmmed_conv2d *c) {
  (void)ctx;
  if (lvmmed__wino_chosen(c)) return lvmmed__wino_packed_floats(c);
  return direct_forward(c) ? lvmmed__direct_packed_floats(c) : conv_weight_floats(c);
}

static void blas_conv2d_pack(lvmmed_ctx *ctx, const lvmmed_conv2d *c, const float *w,
                             float *packed) {
  if (lvmmed__wino_chosen(c))
    lvmmed__wino_pack(ctx, c, w, packed);
  else if (direct_forward(c))
    lvmmed__direct_pack(ctx, c, w, packed);
  else
    memcpy(packed, w, conv_weight_floats(c) * sizeof *packed);
}

static void blas_conv2d_forward_packed(lvmmed_ctx *ctx, const lvmmed_conv2d *c, const float *x,
                                       const float *packed, float *y, float *ws) {
  if (lvmmed__wino_chosen(c))
    lvmmed__wino_run(ctx, c, x, packed, y, 0, NULL, ws);
  else if (direct_forward(c))
    lvmmed__direct_run(ctx, c, x, packed, y, 0, ws);
  else
    blas_conv2d_forward(ctx, c, x, packed, y, ws);
}

typedef struct nhwc_col2im_job {
  const lvmmed_conv_geom *g;
  const float *col;
  float *x;
  size_t img, pix, kdim;
  int tap_major;
} nhwc_col2im_job;

/* One chunk owns whole images: their scattered adds never meet. */
static void nhwc_col2im_range(void *arg, size_t begin, size_t end, unsigned chunk) {
  const nhwc_col2im_job *j = arg;
  (void)chunk;
  for (size_t n = begin; n < end; n++)
    nhwc_col2im(j->g, j->col + n * j->pix * j->kdim, j->x + n * j->img, j->tap_major);
}

static void blas_conv2d_backward_data(lvmmed_ctx *ctx, const lvmmed_conv2d *c, const float *dy,
                                      const float *w, float *dx, int accumulate, float *ws) {
  const lvmmed_conv_geom *g = &c->g;
  size_t cout = c->out_channels, kdim = g->channels * g->kernel_h * g->kernel_w;
  size_t pix = g->out_h * g->out_w, img = g->height * g->width * g->channels;
  lvmmed_conv2d adj;
  if (lvmmed__wino_chosen_adjoint(c)) {
    lvmmed__wino_pack_adjoint(ctx, c, w, ws);
    lvmmed__wino_backward_data(ctx, c, dy, ws, dx, accumulate,
                               ws + round16(lvmmed__wino_adjoint_packed_floats(c)));
    return;
  }
  if (direct_backward_data(c) && lvmmed__direct_adjoint(ctx, c, w, &adj, ws)) {
    lvmmed__direct_run(ctx, &adj, dy, ws, dx, accumulate,
                       ws + round16(lvmmed__direct_packed_floats(&adj)));
    return;
  }
  if (conv_is_pointwise(g)) {
    blas_gemm(ctx, 0, 0, c->batch * pix, kdim, cout, 1.0f, dy, cout, w, kdim,
              accumulate ? 1.0f : 0.0f, dx, kdim);
    return;
  }
  int tm = conv_tap_major(c);
  if (tm) {
    float *wt = ws + conv_ws_cols(c);
    weights_to_tap_major(ctx, c, w, wt);
    w = wt;
  }
  if (!accumulate) memset(dx, 0, c->batch * img * sizeof *dx);
  size_t step = conv_chunk_images(c);
  for (size_t n = 0; n < c->batch; n += step) {
    size_t cnt = c->batch - n < step ? c->batch - n : step;
    blas_gemm(ctx, 0, 0, cnt * pix, kdim, cout, 1.0f, dy + n * pix * cout, cout, w, kdim, 0.0f,
              ws, kdim);
    nhwc_col2im_job j = {g, ws, dx + n * img, img, pix, kdim, tm};
    lvmmed__parallel_for_balanced(ctx, cnt, 1, nhwc_col2im_range, &j);
  }
}

static void blas_conv2d_backward_weight(lvmmed_ctx *ctx, const lvmmed_conv2d *c, const float *x,
                                        const float *dy, float *dw, float *ws) {
  const lvmmed_conv_geom *g = &c->g;
  size_t cout = c->out_channels, kdim = g->channels * g->kernel_h * g->kernel_w;
  size_t pix = g->out_h * g->out_w, img = g->height * g->width * g->channels;
  if (conv_is_pointwise(g)) {
    blas_gemm(ctx, 1, 0, cout, kdim, c->batch * pix, 1.0f, dy, cout, x, kdim, 1.0f, dw, kdim);
    return;
  }
  /* The direct weight gradient wins on stride-1 k x k layers with large maps; im2col
   * + GEMM wins on strided ones (a 1x1's im2col is a plain subsample; 1.5-2.7x for
   * the downsamples, up to 1.9x for the stride-2 3x3s) and on 512-channel layers
   * with small maps (7x7: 1.2-1.35x). Alternating A/B runs, batch 16-32. Winograd
   * beats both on 3x3 stride-1 layers of up to 256 channels (conv_winograd.c). */
  if (lvmmed__wino_chosen_wgrad(c)) {
    lvmmed__wino_wgrad(ctx, c, x, dy, dw, ws);
    return;
  }
  if (conv_direct_wgrad(c)) {
    lvmmed__direct_wgrad(ctx, c, x, dy, dw, ws);
    return;
  }
  int tm = conv_tap_major(c);
  float *acc = tm ? ws + conv_ws_cols(c) : dw; /* tap-major: summed apart, then permuted in */
  size_t step = conv_chunk_images(c);
  for (size_t n = 0; n < c->batch; n += step) {
    size_t cnt = c->batch - n < step ? c->batch - n : step;
    im2col_images(ctx, g, x + n * img, cnt, ws, tm);
    blas_gemm(ctx, 1, 0, cout, kdim, cnt * pix, 1.0f, dy + n * pix * cout, cout, ws, kdim,
              tm && n == 0 ? 0.0f : 1.0f, acc, kdim);
  }
  if (tm) add_from_tap_major(ctx, c, acc, dw);
}

/* Column reductions over rows: chunk c of the rows accumulates its partial
 * sums in double into part[c*width ...]; the caller adds the chunks in order,
 * so the result depends on the thread count only through fixed boundaries. */
#define COLRED_MAX_CHUNKS 256
#define COLRED_MIN_ROWS ((size_t)64)

typedef struct colred_job {
  size_t channels;
  const float *x, *dy, *mask;
  const float *mean;
  double *part; /* chunks × (2·channels) */
  int kind;     /* 0: Σx, Σx² — 1: Σg, Σg(x - mean) — 2: Σx */
} colred_job;

static void colred_range(void *arg, size_t begin, size_t end, unsigned chunk) {
  const colred_job *j = arg;
  size_t ch = j->channels;
  double *s = j->part + (size_t)chunk * 2 * ch, *s2 = s + ch;
  for (size_t c = 0; c < 2 * ch; c++) s[c] = 0.0;
  size_t rows = end - begin, o = begin * ch;
  if (j->kind == 0)
    lvmmed__rows_sum_sumsq(rows, ch, j->x + o, s, s2);
  else if (j->kind == 2)
    lvmmed__rows_sum(rows, ch, j->x + o, s);
  else
    lvmmed__rows_bn_reduce(rows, ch, j->x + o, j->mean, j->mask ? j->mask + o : NULL, j->dy + o,
                           s, s2);
}

/* Runs the reduction; returns the chunk count (0 on allocation failure). */
static unsigned colred_run(lvmmed_ctx *ctx, size_t rows, colred_job *j) {
  unsigned chunks = lvmmed__parallel_chunks_balanced(ctx, rows, COLRED_MIN_ROWS);
  if (chunks == 0) chunks = 1;
  j->part = lvmmed__alloc(ctx, (size_t)chunks * 2 * j->channels * sizeof(double));
  if (!j->part) return 0;
  if (rows == 0)
    colred_range(j, 0, 0, 0);
  else
    lvmmed__parallel_for_balanced(ctx, rows, COLRED_MIN_ROWS, colred_range, j);
  for (unsigned k = 1; k < chunks; k++)
    for (size_t c = 0; c < 2 * j->channels; c++) j->part[c] += j->part[k * 2 * j->channels + c];
  return chunks;
}

static void blas_bn_stats(lvmmed_ctx *ctx, size_t rows, size_t channels, const float *x,
                          float *mean, float *var) {
  colred_job j = {.channels = channels, .x = x, .kind = 0};
  if (!colred_run(ctx, rows, &j)) {
    lvmmed__backend_reference.bn_stats(ctx, rows, channels, x, mean, var);
    return;
  }
  for (size_t c = 0; c < channels; c++) {
    double m = rows ? j.part[c] / (double)rows : 0.0;
    double v = rows ? j.part[channels + c] / (double)rows - m * m : 0.0;
    mean[c] = (float)m;
    var[c] = (float)(v > 0.0 ? v : 0.0);
  }
  lvmmed__free(ctx, j.part);
}

static void blas_bn_backward_reduce(lvmmed_ctx *ctx, size_t rows, size_t channels,
                                    const float *x, const float *mean, const float *mask,
                                    const float *dy, float *sum_g, float *sum_gx) {
  colred_job j = {.channels = channels, .x = x, .dy = dy, .mask = mask, .mean = mean, .kind = 1};
  if (!colred_run(ctx, rows, &j)) {
    lvmmed__backend_reference.bn_backward_reduce(ctx, rows, channels, x, mean, mask, dy, sum_g,
                                                 sum_gx);
    return;
  }
  for (size_t c = 0; c < channels; c++) {
    sum_g[c] = (float)j.part[c];
    sum_gx[c] = (float)j.part[channels + c];
  }
  lvmmed__free(ctx, j.part);
}

static void blas_col_sum(lvmmed_ctx *ctx, size_t rows, size_t channels, const float *x,
                         float *out, int accumulate) {
  colred_job j = {.channels = channels, .x = x, .kind = 2};
  if (!colred_run(ctx, rows, &j)) {
    lvmmed__backend_reference.col_sum(ctx, rows, channels, x, out, accumulate);
    return;
  }
  for (size_t c = 0; c < channels; c++)
    out[c] = accumulate ? (float)((double)out[c] + j.part[c]) : (float)j.part[c];
  lvmmed__free(ctx, j.part);
}

typedef struct affine_job {
  size_t channels;
  const float *x, *scale, *shift, *residual, *mask, *dy, *mean, *k_g, *k_x, *k_0;
  int relu;
  float *y;
} affine_job;

static void affine_range(void *arg, size_t begin, size_t end, unsigned chunk) {
  const affine_job *j = arg;
  size_t o = begin * j->channels;
  (void)chunk;
  lvmmed__rows_affine(end - begin, j->channels, j->x + o, j->scale, j->shift,
                      j->residual ? j->residual + o : NULL, j->relu, j->y + o);
}

static void blas_channel_affine(lvmmed_ctx *ctx, size_t rows, size_t channels, const float *x,
                                const float *scale, const float *shift, const float *residual,
                                int relu, float *y) {
  affine_job j = {.channels = channels, .x = x, .scale = scale, .shift = shift,
                  .residual = residual, .relu = relu, .y = y};
  lvmmed__parallel_for_balanced(ctx, rows, at_least_one(ELEM_MIN_CHUNK / at_least_one(channels)),
                                affine_range, &j);
}

/* The direct and Winograd kernels apply the affine as they store each output, which
 * saves a read and a write of the output; other convolutions take the two passes. */
static void blas_conv2d_forward_packed_affine(lvmmed_ctx *ctx, const lvmmed_conv2d *c,
                                              const float *x, const float *packed,
                                              const float *scale, const float *shift,
                                              const float *residual, int relu, float *y,
                                              float *ws) {
  lvmmed_direct_affine affine = {scale, shift, residual, relu};
  if (lvmmed__wino_chosen(c)) {
    lvmmed__wino_run(ctx, c, x, packed, y, 0, &affine, ws);
    return;
  }
  if (direct_forward(c)) {
    lvmmed__direct_run_affine(ctx, c, x, packed, &affine, y, ws);
    return;
  }
  blas_conv2d_forward(ctx, c, x, packed, y, ws);
  blas_channel_affine(ctx, c->batch * c->g.out_h * c->g.out_w, c->out_channels, y, scale, shift,
                      residual, relu, y);
}

static void bn_apply_range(void *arg, size_t begin, size_t end, unsigned chunk) {
  const affine_job *j = arg;
  size_t o = begin * j->channels;
  (void)chunk;
  lvmmed__rows_bn_apply(end - begin, j->channels, j->x ? j->x + o : NULL, j->mean,
                        j->mask ? j->mask + o : NULL, j->dy + o, j->k_g, j->k_x, j->k_0, j->y + o);
}

static void blas_bn_backward_apply(lvmmed_ctx *ctx, size_t rows, size_t channels, const float *x,
                                   const float *mean, const float *mask, const float *dy,
                                   const float *k_g, const float *k_x, const float *k_0,
                                   float *dx) {
  affine_job j = {.channels = channels, .x = x, .mean = mean, .mask = mask, .dy = dy,
                  .k_g = k_g, .k_x = k_x, .k_0 = k_0, .y = dx};
  lvmmed__parallel_for_balanced(ctx, rows, at_least_one(ELEM_MIN_CHUNK / at_least_one(channels)),
                                bn_apply_range, &j);
}

typedef struct pool_job {
  const lvmmed_conv_geom *g;
  const float *x;
  float *y;
  uint8_t *arg;
  const uint8_t *carg;
  size_t pixels, channels;
  const float *dmap;
} pool_job;

/* One chunk owns whole output rows (image n, row oy) in forward. */
static void maxpool_range(void *arg, size_t begin, size_t end, unsigned chunk) {
  const pool_job *j = arg;
  const lvmmed_conv_geom *g = j->g;
  size_t ch = g->channels, taps = g->kernel_h * g->kernel_w;
  const float *src[256];
  unsigned char tap[256];
  (void)chunk;
  for (size_t row = begin; row < end; row++) {
    size_t n = row / g->out_h, oy = row % g->out_h;
    for (size_t ox = 0; ox < g->out_w; ox++) {
      size_t o = ((n * g->out_h + oy) * g->out_w + ox) * ch;
      for (size_t ki = 0; ki < g->kernel_h; ki++) {
        size_t py = oy * g->stride_h + ki;
        int in_y = py >= g->pad_h && py - g->pad_h < g->height;
        for (size_t kj = 0; kj < g->kernel_w; kj++) {
          size_t px = ox * g->stride_w + kj, t = ki * g->kernel_w + kj;
          tap[t] = (unsigned char)t;
          src[t] = in_y && px >= g->pad_w && px - g->pad_w < g->width
                       ? j->x + ((n * g->height + py - g->pad_h) * g->width + px - g->pad_w) * ch
                       : NULL;
        }
      }
      lvmmed__rows_max(ch, taps, src, tap, j->y + o, j->arg + o);
    }
  }
}

static void blas_maxpool_forward(lvmmed_ctx *ctx, const lvmmed_conv_geom *g, size_t batch,
                                 const float *x, float *y, uint8_t *arg) {
  pool_job j = {.g = g, .x = x, .y = y, .arg = arg};
  lvmmed__parallel_for_balanced(ctx, batch * g->out_h, 1, maxpool_range, &j);
}

/* Backward: one chunk owns whole images, so the scattered adds never race. */
static void maxpool_back_range(void *arg, size_t begin, size_t end, unsigned chunk) {
  const pool_job *j = arg;
  const lvmmed_conv_geom *g = j->g;
  size_t ch = g->channels;
  (void)chunk;
  memset(j->y + begin * g->height * g->width * ch, 0,
         (end - begin) * g->height * g->width * ch * sizeof(float));
  for (size_t n = begin; n < end; n++)
    for (size_t oy = 0; oy < g->out_h; oy++)
      for (size_t ox = 0; ox < g->out_w; ox++) {
        size_t o = ((n * g->out_h + oy) * g->out_w + ox) * ch;
        for (size_t c = 0; c < ch; c++) {
          size_t t = j->carg[o + c], ki = t / g->kernel_w, kj = t % g->kernel_w;
          size_t iy = oy * g->stride_h + ki - g->pad_h, ix = ox * g->stride_w + kj - g->pad_w;
          j->y[((n * g->height + iy) * g->width + ix) * ch + c] += j->x[o + c];
        }
      }
}

static void blas_maxpool_backward(lvmmed_ctx *ctx, const lvmmed_conv_geom *g, size_t batch,
                                  const float *dy, const uint8_t *arg, float *dx) {
  pool_job j = {.g = g, .x = dy, .y = dx, .carg = arg};
  lvmmed__parallel_for_balanced(ctx, batch, 1, maxpool_back_range, &j);
}

static void avgpool_range(void *arg, size_t begin, size_t end, unsigned chunk) {
  const pool_job *j = arg;
  size_t ch = j->channels;
  (void)chunk;
  double acc[256];
  for (size_t n = begin; n < end; n++)
    for (size_t c0 = 0; c0 < ch; c0 += 256) {
      size_t cn = min_size(256, ch - c0);
      for (size_t c = 0; c < cn; c++) acc[c] = 0.0;
      for (size_t p = 0; p < j->pixels; p++) {
        const float *xr = j->x + (n * j->pixels + p) * ch + c0;
        for (size_t c = 0; c < cn; c++) acc[c] += xr[c];
      }
      for (size_t c = 0; c < cn; c++) j->y[n * ch + c0 + c] = (float)(acc[c] / (double)j->pixels);
    }
}

static void blas_avgpool_forward(lvmmed_ctx *ctx, size_t batch, size_t pixels, size_t channels,
                                 const float *x, float *out) {
  pool_job j = {.x = x, .y = out, .pixels = pixels, .channels = channels};
  lvmmed__parallel_for(ctx, batch, 1, avgpool_range, &j);
}

static void avgpool_back_range(void *arg, size_t begin, size_t end, unsigned chunk) {
  const pool_job *j = arg;
  size_t ch = j->channels;
  (void)chunk;
  for (size_t row = begin; row < end; row++) {
    size_t n = row / j->pixels;
    float *d = j->y + row * ch;
    const float *m = j->dmap ? j->dmap + row * ch : NULL;
    const float *o = j->x ? j->x + n * ch : NULL;
    for (size_t c = 0; c < ch; c++) {
      float v = o ? o[c] / (float)j->pixels : 0.0f;
      d[c] = m ? v + m[c] : v;
    }
  }
}

static void blas_avgpool_backward(lvmmed_ctx *ctx, size_t batch, size_t pixels, size_t channels,
                                  const float *dout, const float *dmap, float *dx) {
  pool_job j = {.x = dout, .y = dx, .pixels = pixels, .channels = channels, .dmap = dmap};
  lvmmed__parallel_for_balanced(ctx, batch * pixels,
                                at_least_one(ELEM_MIN_CHUNK / at_least_one(channels)),
                                avgpool_back_range, &j);
}

typedef struct transpose_job {
  size_t rows, cols;
  const float *x;
  float *y;
} transpose_job;

#define TRANSPOSE_TILE 32

/* Unit = one (image, tile of rows): cache-friendly tiles of 32×32. */
static void transpose_range(void *arg, size_t begin, size_t end, unsigned chunk) {
  const transpose_job *j = arg;
  size_t row_tiles = (j->rows + TRANSPOSE_TILE - 1) / TRANSPOSE_TILE;
  (void)chunk;
  for (size_t u = begin; u < end; u++) {
    size_t b = u / row_tiles, r0 = u % row_tiles * TRANSPOSE_TILE;
    size_t r1 = min_size(r0 + TRANSPOSE_TILE, j->rows);
    const float *x = j->x + b * j->rows * j->cols;
    float *y = j->y + b * j->rows * j->cols;
    for (size_t c0 = 0; c0 < j->cols; c0 += TRANSPOSE_TILE) {
      size_t c1 = min_size(c0 + TRANSPOSE_TILE, j->cols);
      for (size_t r = r0; r < r1; r++)
        for (size_t c = c0; c < c1; c++) y[c * j->rows + r] = x[r * j->cols + c];
    }
  }
}

static void blas_transpose(lvmmed_ctx *ctx, size_t batch, size_t rows, size_t cols,
                           const float *x, float *y) {
  transpose_job j = {rows, cols, x, y};
  size_t row_tiles = (rows + TRANSPOSE_TILE - 1) / TRANSPOSE_TILE;
  size_t per_unit = TRANSPOSE_TILE * at_least_one(cols);
  lvmmed__parallel_for_balanced(ctx, batch * row_tiles, at_least_one(ELEM_MIN_CHUNK / per_unit),
                                transpose_range, &j);
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
    .conv2d_workspace = blas_conv2d_workspace,
    .conv2d_forward = blas_conv2d_forward,
    .conv2d_backward_data = blas_conv2d_backward_data,
    .conv2d_backward_weight = blas_conv2d_backward_weight,
    .bn_stats = blas_bn_stats,
    .channel_affine = blas_channel_affine,
    .bn_backward_reduce = blas_bn_backward_reduce,
    .bn_backward_apply = blas_bn_backward_apply,
    .col_sum = blas_col_sum,
    .maxpool_forward = blas_maxpool_forward,
    .maxpool_backward = blas_maxpool_backward,
    .avgpool_forward = blas_avgpool_forward,
    .avgpool_backward = blas_avgpool_backward,
    .transpose = blas_transpose,
    .conv2d_packed_size = blas_conv2d_packed_size,
    .conv2d_pack = blas_conv2d_pack,
    .conv2d_forward_packed = blas_conv2d_forward_packed,
    .conv2d_forward_packed_affine = blas_conv2d_forward_packed_affine,
};
