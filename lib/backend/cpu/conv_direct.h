/* liblvmmed — private direct convolution of the CPU backend (AVX-512).
 *
 * An implicit GEMM: each 12-pixel × 32-channel tile of the NHWC output is
 * accumulated in registers over K = taps × input channels, broadcasting the
 * input values straight from a zero-padded copy of the image (no im2col
 * matrix; one kernel row's taps are kernel_w·C consecutive floats) against
 * the weights packed into 32-wide panels (tap-major).
 * The same kernel runs the backward-data pass of stride-1 convolutions as a
 * convolution of the output gradient with the flipped, transposed weights.
 *
 * Results are bit-identical for any thread count: every output is one
 * sequential sum in a fixed K order.
 */
#ifndef LVMMED_CONV_DIRECT_H
#define LVMMED_CONV_DIRECT_H

#include <stddef.h>

#include "backend/backend.h"

/** 1 if the direct kernel can run c on this CPU (AVX-512F, dilation 1, at most
 *  LVMMED_DIRECT_MAX_CIN input channels). */
int lvmmed__direct_supported(const lvmmed_conv2d *c);

/** Floats of packed weights for c (a multiple of 16). */
size_t lvmmed__direct_packed_floats(const lvmmed_conv2d *c);

/** Packs OIHW weights w for c into wp. */
void lvmmed__direct_pack(lvmmed_ctx *ctx, const lvmmed_conv2d *c, const float *w, float *wp);

/** The stride-1 adjoint: describes into *t the convolution that maps the output
 *  gradient of c to its input gradient, and packs the flipped, transposed
 *  weights into wp (lvmmed__direct_packed_floats(t) floats). 0 if c is not
 *  stride 1 (or the adjoint does not fit the kernel). */
int lvmmed__direct_adjoint(lvmmed_ctx *ctx, const lvmmed_conv2d *c, const float *w,
                           lvmmed_conv2d *t, float *wp);

/** Floats of scratch lvmmed__direct_run needs for c (a zero-padded copy of the input,
 *  or none when the kernel reads it tap by tap). */
size_t lvmmed__direct_ws(const lvmmed_conv2d *c);

/** Floats of scratch the backward-data pass through c's stride-1 adjoint needs: its
 *  packed weights (lvmmed__direct_packed_floats of the adjoint, a multiple of 16),
 *  then its lvmmed__direct_ws. 0 if c has no adjoint the kernel runs. */
size_t lvmmed__direct_adjoint_floats(const lvmmed_conv2d *c);

/** y = conv(x) (or y += when accumulate) with weights packed by lvmmed__direct_pack;
 *  ws: lvmmed__direct_ws(c) floats. */
void lvmmed__direct_run(lvmmed_ctx *ctx, const lvmmed_conv2d *c, const float *x, const float *wp,
                        float *y, int accumulate, float *ws);

/** A per-output-channel affine applied to each finished output v of the forward:
 *  v·scale[co] + shift[co] (+ residual at v's position), then max(·, 0) if relu;
 *  NULL scale means 1, NULL shift 0, NULL residual none (channel_affine's meaning). */
typedef struct lvmmed_direct_affine {
  const float *scale, *shift, *residual;
  int relu;
} lvmmed_direct_affine;

/** The register tile: LVMMED_DIRECT_MR output pixels × LVMMED_DIRECT_NR output
 *  channels (24 accumulators + 2 weight vectors in AVX-512 registers). */
#define LVMMED_DIRECT_MR 12
#define LVMMED_DIRECT_NR 32

/** Where a finished tile goes: nrow × ncol values at y (rows ldy apart), output
 *  channels from co0; residual (NULL for none) is read at the same positions. */
typedef struct lvmmed_tile_dst {
  float *y;
  const float *residual;
  size_t ldy, nrow, ncol, co0;
  int accumulate;                     /* add to what y holds */
  const lvmmed_direct_affine *affine; /* NULL: store the sums as they are */
} lvmmed_tile_dst;

/** One register tile of the kernel, for other kernels built on it (Winograd's
 *  transformed-domain products): output pixel r (< LVMMED_DIRECT_MR; rows past
 *  d->nrow are read but dropped) sums, over segments s < segs, the seg floats at
 *  rows[s·LVMMED_DIRECT_MR + r] times the panel (segs·seg rows of
 *  LVMMED_DIRECT_NR floats, as lvmmed__direct_pack lays out one channel block).
 *  Needs AVX-512F (lvmmed__direct_supported). */
void lvmmed__direct_tile(size_t segs, size_t seg, const float *const *rows, const float *panel,
                         const lvmmed_tile_dst *d);

/** The weight-gradient register tile: LVMMED_DIRECT_WR consecutive values of one
 *  input row × LVMMED_DIRECT_NR output channels. */
#define LVMMED_DIRECT_WR 12
#define LVMMED_DIRECT_WPREFETCH 8 /* rows fetched ahead: off needs this many entries more */

/** gt[r·ldg + j] (r < nrow, j < ncol) = (first) or += Σ_{q < np} xb[off[q] + r] ·
 *  dyt[q·LVMMED_DIRECT_NR + j]: xb + off[q] holds LVMMED_DIRECT_WR readable floats
 *  (those past nrow are read and dropped) and off has np + LVMMED_DIRECT_WPREFETCH
 *  entries (the extra ones any valid offsets). Needs AVX-512F. */
void lvmmed__direct_wtile(size_t np, const size_t *off, const float *xb, const float *dyt,
                          float *gt, size_t ldg, size_t nrow, size_t ncol, int first);

/** lvmmed__direct_run (overwriting y) with the affine fused into the store:
 *  bit-identical to the run followed by the CPU backend's channel_affine.
 *  residual must not overlap y unless it is y itself. */
void lvmmed__direct_run_affine(lvmmed_ctx *ctx, const lvmmed_conv2d *c, const float *x,
                               const float *wp, const lvmmed_direct_affine *affine, float *y,
                               float *ws);

/** Floats of scratch lvmmed__direct_wgrad needs for c under ctx's thread count
 *  (each thread copies what it reads into its own part). */
size_t lvmmed__direct_wgrad_ws(const lvmmed_ctx *ctx, const lvmmed_conv2d *c);

/** dw (OIHW) += the weight gradient of c for input x and output gradient dy. */
void lvmmed__direct_wgrad(lvmmed_ctx *ctx, const lvmmed_conv2d *c, const float *x,
                          const float *dy, float *dw, float *ws);

#define LVMMED_DIRECT_MAX_CIN 4096

#endif /* LVMMED_CONV_DIRECT_H */
