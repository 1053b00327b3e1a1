/* liblvmmed — PRIVATE compute-backend vtable.
 *
 * Model code (nn/, backbone/, graph/) computes only through these slots,
 * reached with lvmmed__backend(ctx); it never calls OpenBLAS directly.
 * A backend fills the slots it implements and leaves the others NULL;
 * lvmmed__backend_resolve() fills the gaps from the reference backend,
 * which stays in every build as the oracle the parity tests compare to.
 *
 * Conventions of every slot:
 *  - float32, row-major, sizes in elements, leading dimensions >= row length;
 *  - arguments are validated by the caller (these are internal calls);
 *  - out may not alias an input unless the slot says so;
 *  - a slot may use the context's thread pool; for a fixed thread count its
 *    result is bit-identical run to run.
 */
#ifndef LVMMED_BACKEND_H
#define LVMMED_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "lvmmed/ctx.h"
#include "lvmmed/status.h"

/** Bumped whenever a slot is added, removed or changes meaning. */
#define LVMMED_BACKEND_API_VERSION 4

/** One entry per slot, used by supports() and the parity tests. */
typedef enum lvmmed_op {
  LVMMED_OP_GEMM = 0,
  LVMMED_OP_AXPY,
  LVMMED_OP_SCALE,
  LVMMED_OP_IM2COL,
  LVMMED_OP_COL2IM,
  LVMMED_OP_ADD,
  LVMMED_OP_MUL,
  LVMMED_OP_RELU,
  LVMMED_OP_RELU_BACKWARD,
  LVMMED_OP_SUM,
  LVMMED_OP_DOT,
  LVMMED_OP_SUMSQ,
  LVMMED_OP_ROW_SUM,
  LVMMED_OP_PAIRWISE_SQDIST,
  /* version 2: the layers of the backbone (NHWC activations) */
  LVMMED_OP_CONV2D_FORWARD,
  LVMMED_OP_CONV2D_BACKWARD_DATA,
  LVMMED_OP_CONV2D_BACKWARD_WEIGHT,
  LVMMED_OP_BN_STATS,
  LVMMED_OP_CHANNEL_AFFINE,
  LVMMED_OP_BN_BACKWARD_REDUCE,
  LVMMED_OP_BN_BACKWARD_APPLY,
  LVMMED_OP_COL_SUM,
  LVMMED_OP_MAXPOOL_FORWARD,
  LVMMED_OP_MAXPOOL_BACKWARD,
  LVMMED_OP_AVGPOOL_FORWARD,
  LVMMED_OP_AVGPOOL_BACKWARD,
  LVMMED_OP_TRANSPOSE,
  LVMMED_OP_CONV2D_PACK,
  LVMMED_OP_CONV2D_FORWARD_PACKED,
  /* version 3 */
  LVMMED_OP_CONV2D_FORWARD_PACKED_AFFINE,
  LVMMED_OP_COUNT
} lvmmed_op;

/** Geometry of a 2-D convolution on one image (C×H×W, CHW layout). */
typedef struct lvmmed_conv_geom {
  size_t channels, height, width;   /* input image */
  size_t kernel_h, kernel_w;
  size_t stride_h, stride_w;        /* >= 1 */
  size_t pad_h, pad_w;              /* zero padding on each side */
  size_t dilation_h, dilation_w;    /* >= 1 */
  size_t out_h, out_w;              /* filled by lvmmed__conv_geom_finish */
} lvmmed_conv_geom;

/** Computes out_h/out_w; returns 0 if the kernel does not fit the padded input. */
int lvmmed__conv_geom_finish(lvmmed_conv_geom *g);

/** A batched convolution without bias: activations NHWC (x: batch×height×width×channels,
 *  y: batch×out_h×out_w×out_channels), weights in PyTorch's OIHW order
 *  (out_channels×channels×kernel_h×kernel_w). g must be finished. */
typedef struct lvmmed_conv2d {
  lvmmed_conv_geom g;
  size_t batch, out_channels;
} lvmmed_conv2d;

typedef struct lvmmed_backend_ops {
  int api_version;   /* LVMMED_BACKEND_API_VERSION the table was written for */
  lvmmed_backend id;
  const char *name;
  /** 1 if the backend implements op itself (not through the reference fallback). */
  int (*supports)(lvmmed_op op);
  /** Optional: called once when a context selects the backend. */
  lvmmed_status (*init)(lvmmed_ctx *ctx);

  /** C = alpha * op(A) * op(B) + beta * C; op(A) is m×k, op(B) k×n, C m×n.
   *  trans_a: A is stored k×m (lda >= m) instead of m×k (lda >= k); same for B.
   *  beta == 0 overwrites C (NaNs in C are not propagated). */
  void (*gemm)(lvmmed_ctx *ctx, int trans_a, int trans_b, size_t m, size_t n, size_t k,
               float alpha, const float *a, size_t lda, const float *b, size_t ldb, float beta,
               float *c, size_t ldc);
  /** y += alpha * x. */
  void (*axpy)(lvmmed_ctx *ctx, size_t n, float alpha, const float *x, float *y);
  /** x *= alpha (in place). */
  void (*scale)(lvmmed_ctx *ctx, size_t n, float alpha, float *x);
  /** col[(c*kh*kw + i*kw + j) * (out_h*out_w) + oy*out_w + ox] = padded image sample. */
  void (*im2col)(lvmmed_ctx *ctx, const lvmmed_conv_geom *g, const float *image, float *col);
  /** Adjoint of im2col: image += scatter(col). image is NOT cleared first. */
  void (*col2im)(lvmmed_ctx *ctx, const lvmmed_conv_geom *g, const float *col, float *image);
  /** out = a + b (out may alias a or b). */
  void (*add)(lvmmed_ctx *ctx, size_t n, const float *a, const float *b, float *out);
  /** out = a * b elementwise (out may alias a or b). */
  void (*mul)(lvmmed_ctx *ctx, size_t n, const float *a, const float *b, float *out);
  /** out = max(x, 0) (out may alias x). */
  void (*relu)(lvmmed_ctx *ctx, size_t n, const float *x, float *out);
  /** dx = y > 0 ? dy : 0, where y is the ReLU output or input (dx may alias dy). */
  void (*relu_backward)(lvmmed_ctx *ctx, size_t n, const float *y, const float *dy, float *dx);
  /** Σ x. */
  double (*sum)(lvmmed_ctx *ctx, size_t n, const float *x);
  /** Σ x·y. */
  double (*dot)(lvmmed_ctx *ctx, size_t n, const float *x, const float *y);
  /** Σ x². */
  double (*sumsq)(lvmmed_ctx *ctx, size_t n, const float *x);
  /** out[r] = Σ_c x[r*ldx + c] for r < rows, c < cols. */
  void (*row_sum)(lvmmed_ctx *ctx, size_t rows, size_t cols, const float *x, size_t ldx,
                  float *out);
  /** out[i*ldo + j] = ||a_i - b_j||² for rows a_i (m×d, lda) and b_j (n×d, ldb); >= 0. */
  void (*pairwise_sqdist)(lvmmed_ctx *ctx, size_t m, size_t n, size_t d, const float *a,
                          size_t lda, const float *b, size_t ldb, float *out, size_t ldo);

  /* ---- version 2: backbone layers. Activations are NHWC, so a feature map
   * of a batch is a rows × channels matrix (rows = batch·height·width). ---- */

  /** Floats of scratch the conv2d slots below need for c (0 if none) under ctx's
   *  current thread count: ask again after changing it. The
   *  conv2d slots (packing ones included) and this one are resolved as a group:
   *  a backend that leaves one of them NULL gets all of them from the reference. */
  size_t (*conv2d_workspace)(const lvmmed_ctx *ctx, const lvmmed_conv2d *c);
  /** y = conv(x, w) (overwritten). ws: conv2d_workspace(c) floats, 64-byte aligned. */
  void (*conv2d_forward)(lvmmed_ctx *ctx, const lvmmed_conv2d *c, const float *x, const float *w,
                         float *y, float *ws);
  /** dx = conv^T(dy, w), added to dx when accumulate, else overwriting it. */
  void (*conv2d_backward_data)(lvmmed_ctx *ctx, const lvmmed_conv2d *c, const float *dy,
                               const float *w, float *dx, int accumulate, float *ws);
  /** dw += dL/dw for input x and output gradient dy (dw is OIHW). */
  void (*conv2d_backward_weight)(lvmmed_ctx *ctx, const lvmmed_conv2d *c, const float *x,
                                 const float *dy, float *dw, float *ws);
  /** Floats of the pre-packed weights of c for conv2d_forward_packed (a backend
   *  with no packed form returns the weight count and copies). The packed form may
   *  depend on the whole of c, batch and image size included (a backend picks its
   *  kernel, and so the layout, by shape): weights packed for one descriptor are
   *  only valid with that descriptor's shape; pack again when it changes. */
  size_t (*conv2d_packed_size)(const lvmmed_ctx *ctx, const lvmmed_conv2d *c);
  /** packed = the OIHW weights w of c in the backend's own layout. */
  void (*conv2d_pack)(lvmmed_ctx *ctx, const lvmmed_conv2d *c, const float *w, float *packed);
  /** conv2d_forward with weights from conv2d_pack (for weights used many times). */
  void (*conv2d_forward_packed)(lvmmed_ctx *ctx, const lvmmed_conv2d *c, const float *x,
                                const float *packed, float *y, float *ws);
  /** conv2d_forward_packed, then channel_affine(y, scale, shift, residual, relu) on its
   *  output: an eval-mode convolution + batch norm (+ residual) (+ ReLU) in one pass.
   *  The result equals the two calls'; residual must not overlap y. */
  void (*conv2d_forward_packed_affine)(lvmmed_ctx *ctx, const lvmmed_conv2d *c, const float *x,
                                       const float *packed, const float *scale,
                                       const float *shift, const float *residual, int relu,
                                       float *y, float *ws);
  /** Per-column mean and biased variance of x (rows × channels), two-pass in double. */
  void (*bn_stats)(lvmmed_ctx *ctx, size_t rows, size_t channels, const float *x, float *mean,
                   float *var);
  /** y = x·scale[c] + shift[c] (+ residual), then max(·, 0) if relu. scale NULL means 1,
   *  shift NULL means 0, residual NULL means none. y may alias x or residual. */
  void (*channel_affine)(lvmmed_ctx *ctx, size_t rows, size_t channels, const float *x,
                         const float *scale, const float *shift, const float *residual, int relu,
                         float *y);
  /** With g = dy, masked to 0 where mask <= 0 when mask is non-NULL (a fused ReLU):
   *  sum_g[c] = Σ_r g, sum_gx[c] = Σ_r g·(x - mean[c]). Accumulates in double. */
  void (*bn_backward_reduce)(lvmmed_ctx *ctx, size_t rows, size_t channels, const float *x,
                             const float *mean, const float *mask, const float *dy, float *sum_g,
                             float *sum_gx);
  /** dx = k_g[c]·g + k_x[c]·(x - mean[c]) + k_0[c], g as in bn_backward_reduce.
   *  x, mean and k_x may be NULL together (no x term); dx may alias dy. */
  void (*bn_backward_apply)(lvmmed_ctx *ctx, size_t rows, size_t channels, const float *x,
                            const float *mean, const float *mask, const float *dy,
                            const float *k_g, const float *k_x, const float *k_0, float *dx);
  /** out[c] = Σ_r x[r*channels + c] (double accumulation); out[c] += … when accumulate. */
  void (*col_sum)(lvmmed_ctx *ctx, size_t rows, size_t channels, const float *x, float *out,
                  int accumulate);
  /** Max pooling over each image (geometry g, dilation 1), NHWC; arg[i] = ki*kernel_w + kj
   *  of the first maximum (NaN wins), kernel_h*kernel_w <= 255. */
  void (*maxpool_forward)(lvmmed_ctx *ctx, const lvmmed_conv_geom *g, size_t batch,
                          const float *x, float *y, uint8_t *arg);
  /** dx = 0, then each dy routed to the position arg names. */
  void (*maxpool_backward)(lvmmed_ctx *ctx, const lvmmed_conv_geom *g, size_t batch,
                           const float *dy, const uint8_t *arg, float *dx);
  /** out[n][c] = mean over the pixels of image n of x (batch × pixels × channels). */
  void (*avgpool_forward)(lvmmed_ctx *ctx, size_t batch, size_t pixels, size_t channels,
                          const float *x, float *out);
  /** dx[n][p][c] = dout[n][c] / pixels (+ dmap[n][p][c] when dmap is non-NULL). */
  void (*avgpool_backward)(lvmmed_ctx *ctx, size_t batch, size_t pixels, size_t channels,
                           const float *dout, const float *dmap, float *dx);
  /** y[b][c][r] = x[b][r][c] for b < batch, r < rows, c < cols (NCHW <-> NHWC). */
  void (*transpose)(lvmmed_ctx *ctx, size_t batch, size_t rows, size_t cols, const float *x,
                    float *y);
} lvmmed_backend_ops;

/** Table of a compiled-in backend, unresolved (slots may be NULL); NULL if not built. */
const lvmmed_backend_ops *lvmmed__backend_table(lvmmed_backend id);

/** Copies table into *out and fills every NULL slot from the reference backend. */
void lvmmed__backend_resolve(const lvmmed_backend_ops *table, lvmmed_backend_ops *out);

/** The resolved table the context computes with. */
const lvmmed_backend_ops *lvmmed__backend(const lvmmed_ctx *ctx);

/** Name of an op ("gemm", ...), for messages and tests. */
const char *lvmmed__op_name(lvmmed_op op);

/* The compiled-in tables (defined in lib/backend/cpu/). */
extern const lvmmed_backend_ops lvmmed__backend_reference;
#if LVMMED_HAVE_OPENBLAS
extern const lvmmed_backend_ops lvmmed__backend_openblas;
#endif

#endif /* LVMMED_BACKEND_H */
