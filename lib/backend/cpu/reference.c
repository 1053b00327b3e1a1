/* The reference backend: plain single-threaded loops, the oracle every other
 * backend is tested against. Keep it obviously right rather than fast:
 * every reduction (gemm's inner products included) accumulates in double,
 * and nothing here depends on the thread count. */
#include "lvmmed_config.h"

#include "backend/backend.h"

static int ref_supports(lvmmed_op op) { return (unsigned)op < LVMMED_OP_COUNT; }

static lvmmed_status ref_init(lvmmed_ctx *ctx) {
  (void)ctx;
  return LVMMED_OK;
}

static void ref_gemm(lvmmed_ctx *ctx, int trans_a, int trans_b, size_t m, size_t n, size_t k,
                     float alpha, const float *a, size_t lda, const float *b, size_t ldb,
                     float beta, float *c, size_t ldc) {
  (void)ctx;
  for (size_t i = 0; i < m; i++) {
    for (size_t j = 0; j < n; j++) {
      double acc = 0.0;
      if (alpha != 0.0f) { /* BLAS semantics: alpha == 0 does not read A or B */
        for (size_t p = 0; p < k; p++) {
          double av = trans_a ? a[p * lda + i] : a[i * lda + p];
          double bv = trans_b ? b[j * ldb + p] : b[p * ldb + j];
          acc += av * bv;
        }
        acc *= alpha;
      }
      /* beta == 0 must not read C: it may hold NaN or garbage. */
      if (beta != 0.0f) acc += (double)beta * c[i * ldc + j];
      c[i * ldc + j] = (float)acc;
    }
  }
}

static void ref_axpy(lvmmed_ctx *ctx, size_t n, float alpha, const float *x, float *y) {
  (void)ctx;
  for (size_t i = 0; i < n; i++) y[i] += alpha * x[i];
}

static void ref_scale(lvmmed_ctx *ctx, size_t n, float alpha, float *x) {
  (void)ctx;
  for (size_t i = 0; i < n; i++) x[i] *= alpha;
}

/* Row or column of the input that output position o and kernel tap t read,
 * or -1 (as SIZE_MAX) when it falls in the zero padding. */
static size_t conv_src(size_t o, size_t t, size_t stride, size_t pad, size_t dilation,
                       size_t size) {
  size_t p = o * stride + t * dilation; /* position in the padded input */
  if (p < pad || p - pad >= size) return (size_t)-1;
  return p - pad;
}

static void ref_im2col(lvmmed_ctx *ctx, const lvmmed_conv_geom *g, const float *image,
                       float *col) {
  (void)ctx;
  size_t plane = g->out_h * g->out_w;
  for (size_t ch = 0; ch < g->channels; ch++)
    for (size_t ki = 0; ki < g->kernel_h; ki++)
      for (size_t kj = 0; kj < g->kernel_w; kj++) {
        float *dst = col + ((ch * g->kernel_h + ki) * g->kernel_w + kj) * plane;
        for (size_t oy = 0; oy < g->out_h; oy++)
          for (size_t ox = 0; ox < g->out_w; ox++) {
            size_t y = conv_src(oy, ki, g->stride_h, g->pad_h, g->dilation_h, g->height);
            size_t x = conv_src(ox, kj, g->stride_w, g->pad_w, g->dilation_w, g->width);
            float v = 0.0f;
            if (y != (size_t)-1 && x != (size_t)-1) v = image[(ch * g->height + y) * g->width + x];
            dst[oy * g->out_w + ox] = v;
          }
      }
}

static void ref_col2im(lvmmed_ctx *ctx, const lvmmed_conv_geom *g, const float *col,
                       float *image) {
  (void)ctx;
  size_t plane = g->out_h * g->out_w;
  for (size_t ch = 0; ch < g->channels; ch++)
    for (size_t ki = 0; ki < g->kernel_h; ki++)
      for (size_t kj = 0; kj < g->kernel_w; kj++) {
        const float *src = col + ((ch * g->kernel_h + ki) * g->kernel_w + kj) * plane;
        for (size_t oy = 0; oy < g->out_h; oy++)
          for (size_t ox = 0; ox < g->out_w; ox++) {
            size_t y = conv_src(oy, ki, g->stride_h, g->pad_h, g->dilation_h, g->height);
            size_t x = conv_src(ox, kj, g->stride_w, g->pad_w, g->dilation_w, g->width);
            if (y != (size_t)-1 && x != (size_t)-1)
              image[(ch * g->height + y) * g->width + x] += src[oy * g->out_w + ox];
          }
      }
}

static void ref_add(lvmmed_ctx *ctx, size_t n, const float *a, const float *b, float *out) {
  (void)ctx;
  for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

static void ref_mul(lvmmed_ctx *ctx, size_t n, const float *a, const float *b, float *out) {
  (void)ctx;
  for (size_t i = 0; i < n; i++) out[i] = a[i] * b[i];
}

static void ref_relu(lvmmed_ctx *ctx, size_t n, const float *x, float *out) {
  (void)ctx;
  for (size_t i = 0; i < n; i++) out[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

static void ref_relu_backward(lvmmed_ctx *ctx, size_t n, const float *y, const float *dy,
                              float *dx) {
  (void)ctx;
  for (size_t i = 0; i < n; i++) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

static double ref_sum(lvmmed_ctx *ctx, size_t n, const float *x) {
  (void)ctx;
  double s = 0.0;
  for (size_t i = 0; i < n; i++) s += x[i];
  return s;
}

static double ref_dot(lvmmed_ctx *ctx, size_t n, const float *x, const float *y) {
  (void)ctx;
  double s = 0.0;
  for (size_t i = 0; i < n; i++) s += (double)x[i] * y[i];
  return s;
}

static double ref_sumsq(lvmmed_ctx *ctx, size_t n, const float *x) {
  (void)ctx;
  double s = 0.0;
  for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
  return s;
}

static void ref_row_sum(lvmmed_ctx *ctx, size_t rows, size_t cols, const float *x, size_t ldx,
                        float *out) {
  (void)ctx;
  for (size_t r = 0; r < rows; r++) {
    double s = 0.0;
    for (size_t c = 0; c < cols; c++) s += x[r * ldx + c];
    out[r] = (float)s;
  }
}

/* Σ (a - b)² directly: no cancellation, exactly 0 for identical rows. */
static void ref_pairwise_sqdist(lvmmed_ctx *ctx, size_t m, size_t n, size_t d, const float *a,
                                size_t lda, const float *b, size_t ldb, float *out, size_t ldo) {
  (void)ctx;
  for (size_t i = 0; i < m; i++)
    for (size_t j = 0; j < n; j++) {
      double s = 0.0;
      for (size_t p = 0; p < d; p++) {
        double diff = (double)a[i * lda + p] - b[j * ldb + p];
        s += diff * diff;
      }
      out[i * ldo + j] = (float)s;
    }
}

const lvmmed_backend_ops lvmmed__backend_reference = {
    .api_version = LVMMED_BACKEND_API_VERSION,
    .id = LVMMED_BACKEND_REFERENCE,
    .name = "reference",
    .supports = ref_supports,
    .init = ref_init,
    .gemm = ref_gemm,
    .axpy = ref_axpy,
    .scale = ref_scale,
    .im2col = ref_im2col,
    .col2im = ref_col2im,
    .add = ref_add,
    .mul = ref_mul,
    .relu = ref_relu,
    .relu_backward = ref_relu_backward,
    .sum = ref_sum,
    .dot = ref_dot,
    .sumsq = ref_sumsq,
    .row_sum = ref_row_sum,
    .pairwise_sqdist = ref_pairwise_sqdist,
};
