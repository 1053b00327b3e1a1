/* The reference backend: plain single-threaded loops, the oracle every other
 * backend is tested against. Keep it obviously right rather than fast:
 * every reduction (gemm's inner products included) accumulates in double,
 * and nothing here depends on the thread count. */
#include "lvmmed_config.h"

#include <math.h>

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

#define PADDING ((size_t)-1)

/* Row or column of the input that output position o and kernel tap t read,
 * or PADDING when it falls in the zero padding. */
static size_t conv_src(size_t o, size_t t, size_t stride, size_t pad, size_t dilation,
                       size_t size) {
  size_t p = o * stride + t * dilation; /* position in the padded input */
  if (p < pad || p - pad >= size) return PADDING;
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
            if (y != PADDING && x != PADDING) v = image[(ch * g->height + y) * g->width + x];
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
            if (y != PADDING && x != PADDING)
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

/* ----- version 2: backbone layers (NHWC activations, OIHW weights) ------- */

static size_t ref_conv2d_workspace(const lvmmed_ctx *ctx, const lvmmed_conv2d *c) {
  (void)ctx;
  (void)c;
  return 0;
}

/* Direct convolution: every output is one double-accumulated dot product. */
static void ref_conv2d_forward(lvmmed_ctx *ctx, const lvmmed_conv2d *c, const float *x,
                               const float *w, float *y, float *ws) {
  (void)ctx;
  (void)ws;
  const lvmmed_conv_geom *g = &c->g;
  size_t cin = g->channels, cout = c->out_channels;
  for (size_t n = 0; n < c->batch; n++)
    for (size_t oy = 0; oy < g->out_h; oy++)
      for (size_t ox = 0; ox < g->out_w; ox++)
        for (size_t co = 0; co < cout; co++) {
          double acc = 0.0;
          for (size_t ci = 0; ci < cin; ci++)
            for (size_t ki = 0; ki < g->kernel_h; ki++) {
              size_t iy = conv_src(oy, ki, g->stride_h, g->pad_h, g->dilation_h, g->height);
              if (iy == (size_t)-1) continue;
              for (size_t kj = 0; kj < g->kernel_w; kj++) {
                size_t ix = conv_src(ox, kj, g->stride_w, g->pad_w, g->dilation_w, g->width);
                if (ix == (size_t)-1) continue;
                double xv = x[((n * g->height + iy) * g->width + ix) * cin + ci];
                double wv = w[((co * cin + ci) * g->kernel_h + ki) * g->kernel_w + kj];
                acc += xv * wv;
              }
            }
          y[((n * g->out_h + oy) * g->out_w + ox) * cout + co] = (float)acc;
        }
}

/* dx[n,iy,ix,ci] = Σ over the outputs that read it; gathered per input pixel. */
static void ref_conv2d_backward_data(lvmmed_ctx *ctx, const lvmmed_conv2d *c, const float *dy,
                                     const float *w, float *dx, int accumulate, float *ws) {
  (void)ctx;
  (void)ws;
  const lvmmed_conv_geom *g = &c->g;
  size_t cin = g->channels, cout = c->out_channels;
  for (size_t n = 0; n < c->batch; n++)
    for (size_t iy = 0; iy < g->height; iy++)
      for (size_t ix = 0; ix < g->width; ix++)
        for (size_t ci = 0; ci < cin; ci++) {
          double acc = 0.0;
          for (size_t ki = 0; ki < g->kernel_h; ki++) {
            size_t py = iy + g->pad_h, ty = ki * g->dilation_h; /* py = oy*stride + ty */
            if (py < ty || (py - ty) % g->stride_h) continue;
            size_t oy = (py - ty) / g->stride_h;
            if (oy >= g->out_h) continue;
            for (size_t kj = 0; kj < g->kernel_w; kj++) {
              size_t px = ix + g->pad_w, tx = kj * g->dilation_w;
              if (px < tx || (px - tx) % g->stride_w) continue;
              size_t ox = (px - tx) / g->stride_w;
              if (ox >= g->out_w) continue;
              for (size_t co = 0; co < cout; co++)
                acc += (double)dy[((n * g->out_h + oy) * g->out_w + ox) * cout + co] *
                       w[((co * cin + ci) * g->kernel_h + ki) * g->kernel_w + kj];
            }
          }
          float *d = &dx[((n * g->height + iy) * g->width + ix) * cin + ci];
          *d = accumulate ? (float)(*d + acc) : (float)acc;
        }
}

static void ref_conv2d_backward_weight(lvmmed_ctx *ctx, const lvmmed_conv2d *c, const float *x,
                                       const float *dy, float *dw, float *ws) {
  (void)ctx;
  (void)ws;
  const lvmmed_conv_geom *g = &c->g;
  size_t cin = g->channels, cout = c->out_channels;
  for (size_t co = 0; co < cout; co++)
    for (size_t ci = 0; ci < cin; ci++)
      for (size_t ki = 0; ki < g->kernel_h; ki++)
        for (size_t kj = 0; kj < g->kernel_w; kj++) {
          double acc = 0.0;
          for (size_t n = 0; n < c->batch; n++)
            for (size_t oy = 0; oy < g->out_h; oy++) {
              size_t iy = conv_src(oy, ki, g->stride_h, g->pad_h, g->dilation_h, g->height);
              if (iy == (size_t)-1) continue;
              for (size_t ox = 0; ox < g->out_w; ox++) {
                size_t ix = conv_src(ox, kj, g->stride_w, g->pad_w, g->dilation_w, g->width);
                if (ix == (size_t)-1) continue;
                acc += (double)x[((n * g->height + iy) * g->width + ix) * cin + ci] *
                       dy[((n * g->out_h + oy) * g->out_w + ox) * cout + co];
              }
            }
          float *d = &dw[((co * cin + ci) * g->kernel_h + ki) * g->kernel_w + kj];
          *d = (float)(*d + acc);
        }
}

static size_t ref_conv2d_packed_size(const lvmmed_ctx *ctx, const lvmmed_conv2d *c) {
  (void)ctx;
  return c->out_channels * c->g.channels * c->g.kernel_h * c->g.kernel_w;
}

/* The reference's packed form is the weights themselves. */
static void ref_conv2d_pack(lvmmed_ctx *ctx, const lvmmed_conv2d *c, const float *w,
                            float *packed) {
  size_t n = ref_conv2d_packed_size(ctx, c);
  for (size_t i = 0; i < n; i++) packed[i] = w[i];
}

static void ref_conv2d_forward_packed(lvmmed_ctx *ctx, const lvmmed_conv2d *c, const float *x,
                                      const float *packed, float *y, float *ws) {
  ref_conv2d_forward(ctx, c, x, packed, y, ws);
}

static void ref_channel_affine(lvmmed_ctx *ctx, size_t rows, size_t channels, const float *x,
                               const float *scale, const float *shift, const float *residual,
                               int relu, float *y);

static void ref_conv2d_forward_packed_affine(lvmmed_ctx *ctx, const lvmmed_conv2d *c,
                                             const float *x, const float *packed,
                                             const float *scale, const float *shift,
                                             const float *residual, int relu, float *y,
                                             float *ws) {
  size_t rows = c->batch * c->g.out_h * c->g.out_w;
  ref_conv2d_forward_packed(ctx, c, x, packed, y, ws);
  ref_channel_affine(ctx, rows, c->out_channels, y, scale, shift, residual, relu, y);
}

static void ref_bn_stats(lvmmed_ctx *ctx, size_t rows, size_t channels, const float *x,
                         float *mean, float *var) {
  (void)ctx;
  for (size_t c = 0; c < channels; c++) {
    double s = 0.0, ss = 0.0;
    for (size_t r = 0; r < rows; r++) s += x[r * channels + c];
    double m = rows ? s / (double)rows : 0.0;
    for (size_t r = 0; r < rows; r++) {
      double d = x[r * channels + c] - m;
      ss += d * d;
    }
    mean[c] = (float)m;
    var[c] = rows ? (float)(ss / (double)rows) : 0.0f;
  }
}

static void ref_channel_affine(lvmmed_ctx *ctx, size_t rows, size_t channels, const float *x,
                               const float *scale, const float *shift, const float *residual,
                               int relu, float *y) {
  (void)ctx;
  for (size_t r = 0; r < rows; r++)
    for (size_t c = 0; c < channels; c++) {
      size_t i = r * channels + c;
      float v = x[i] * (scale ? scale[c] : 1.0f) + (shift ? shift[c] : 0.0f);
      if (residual) v += residual[i];
      y[i] = relu && !(v > 0.0f) && !isnan(v) ? 0.0f : v;
    }
}

static float masked(const float *mask, const float *dy, size_t i) {
  return mask && !(mask[i] > 0.0f) ? 0.0f : dy[i];
}

static void ref_bn_backward_reduce(lvmmed_ctx *ctx, size_t rows, size_t channels, const float *x,
                                   const float *mean, const float *mask, const float *dy,
                                   float *sum_g, float *sum_gx) {
  (void)ctx;
  for (size_t c = 0; c < channels; c++) {
    double s = 0.0, sx = 0.0;
    for (size_t r = 0; r < rows; r++) {
      size_t i = r * channels + c;
      double gv = masked(mask, dy, i);
      s += gv;
      sx += gv * ((double)x[i] - mean[c]);
    }
    sum_g[c] = (float)s;
    sum_gx[c] = (float)sx;
  }
}

static void ref_bn_backward_apply(lvmmed_ctx *ctx, size_t rows, size_t channels, const float *x,
                                  const float *mean, const float *mask, const float *dy,
                                  const float *k_g, const float *k_x, const float *k_0,
                                  float *dx) {
  (void)ctx;
  for (size_t r = 0; r < rows; r++)
    for (size_t c = 0; c < channels; c++) {
      size_t i = r * channels + c;
      float v = k_g[c] * masked(mask, dy, i) + k_0[c];
      if (x) v += k_x[c] * (x[i] - mean[c]);
      dx[i] = v;
    }
}

static void ref_col_sum(lvmmed_ctx *ctx, size_t rows, size_t channels, const float *x, float *out,
                        int accumulate) {
  (void)ctx;
  for (size_t c = 0; c < channels; c++) {
    double s = accumulate ? out[c] : 0.0;
    for (size_t r = 0; r < rows; r++) s += x[r * channels + c];
    out[c] = (float)s;
  }
}

static void ref_maxpool_forward(lvmmed_ctx *ctx, const lvmmed_conv_geom *g, size_t batch,
                                const float *x, float *y, uint8_t *arg) {
  (void)ctx;
  size_t ch = g->channels;
  for (size_t n = 0; n < batch; n++)
    for (size_t oy = 0; oy < g->out_h; oy++)
      for (size_t ox = 0; ox < g->out_w; ox++)
        for (size_t c = 0; c < ch; c++) {
          float best = -INFINITY;
          unsigned at = 0;
          int found = 0;
          for (size_t ki = 0; ki < g->kernel_h; ki++) {
            size_t iy = conv_src(oy, ki, g->stride_h, g->pad_h, 1, g->height);
            if (iy == (size_t)-1) continue;
            for (size_t kj = 0; kj < g->kernel_w; kj++) {
              size_t ix = conv_src(ox, kj, g->stride_w, g->pad_w, 1, g->width);
              if (ix == (size_t)-1) continue;
              float v = x[((n * g->height + iy) * g->width + ix) * ch + c];
              if (!found || v > best || (isnan(v) && !isnan(best))) {
                best = v;
                at = (unsigned)(ki * g->kernel_w + kj);
                found = 1;
              }
            }
          }
          size_t o = ((n * g->out_h + oy) * g->out_w + ox) * ch + c;
          y[o] = best;
          arg[o] = (uint8_t)at;
        }
}

static void ref_maxpool_backward(lvmmed_ctx *ctx, const lvmmed_conv_geom *g, size_t batch,
                                 const float *dy, const uint8_t *arg, float *dx) {
  (void)ctx;
  size_t ch = g->channels;
  for (size_t i = 0; i < batch * g->height * g->width * ch; i++) dx[i] = 0.0f;
  for (size_t n = 0; n < batch; n++)
    for (size_t oy = 0; oy < g->out_h; oy++)
      for (size_t ox = 0; ox < g->out_w; ox++)
        for (size_t c = 0; c < ch; c++) {
          size_t o = ((n * g->out_h + oy) * g->out_w + ox) * ch + c;
          size_t ki = arg[o] / g->kernel_w, kj = arg[o] % g->kernel_w;
          size_t iy = oy * g->stride_h + ki - g->pad_h, ix = ox * g->stride_w + kj - g->pad_w;
          dx[((n * g->height + iy) * g->width + ix) * ch + c] += dy[o];
        }
}

static void ref_avgpool_forward(lvmmed_ctx *ctx, size_t batch, size_t pixels, size_t channels,
                                const float *x, float *out) {
  (void)ctx;
  for (size_t n = 0; n < batch; n++)
    for (size_t c = 0; c < channels; c++) {
      double s = 0.0;
      for (size_t p = 0; p < pixels; p++) s += x[(n * pixels + p) * channels + c];
      out[n * channels + c] = (float)(s / (double)pixels);
    }
}

static void ref_avgpool_backward(lvmmed_ctx *ctx, size_t batch, size_t pixels, size_t channels,
                                 const float *dout, const float *dmap, float *dx) {
  (void)ctx;
  for (size_t n = 0; n < batch; n++)
    for (size_t p = 0; p < pixels; p++)
      for (size_t c = 0; c < channels; c++) {
        size_t i = (n * pixels + p) * channels + c;
        float v = dout ? dout[n * channels + c] / (float)pixels : 0.0f;
        dx[i] = dmap ? v + dmap[i] : v;
      }
}

static void ref_transpose(lvmmed_ctx *ctx, size_t batch, size_t rows, size_t cols, const float *x,
                          float *y) {
  (void)ctx;
  for (size_t b = 0; b < batch; b++)
    for (size_t r = 0; r < rows; r++)
      for (size_t c = 0; c < cols; c++) y[(b * cols + c) * rows + r] = x[(b * rows + r) * cols + c];
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
    .conv2d_workspace = ref_conv2d_workspace,
    .conv2d_forward = ref_conv2d_forward,
    .conv2d_backward_data = ref_conv2d_backward_data,
    .conv2d_backward_weight = ref_conv2d_backward_weight,
    .bn_stats = ref_bn_stats,
    .channel_affine = ref_channel_affine,
    .bn_backward_reduce = ref_bn_backward_reduce,
    .bn_backward_apply = ref_bn_backward_apply,
    .col_sum = ref_col_sum,
    .maxpool_forward = ref_maxpool_forward,
    .maxpool_backward = ref_maxpool_backward,
    .avgpool_forward = ref_avgpool_forward,
    .avgpool_backward = ref_avgpool_backward,
    .transpose = ref_transpose,
    .conv2d_packed_size = ref_conv2d_packed_size,
    .conv2d_pack = ref_conv2d_pack,
    .conv2d_forward_packed = ref_conv2d_forward_packed,
    .conv2d_forward_packed_affine = ref_conv2d_forward_packed_affine,
};
