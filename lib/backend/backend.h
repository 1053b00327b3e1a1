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

#include "lvmmed/ctx.h"
#include "lvmmed/status.h"

/** Bumped whenever a slot is added, removed or changes meaning. */
#define LVMMED_BACKEND_API_VERSION 1

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
