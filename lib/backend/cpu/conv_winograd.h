/* liblvmmed — private Winograd convolution of the CPU backend (AVX-512).
 *
 * F(2×2, 3×3) for 3×3, stride-1, pad-1 convolutions of NHWC images: each 2×2
 * block of outputs comes from a 4×4 block of inputs through 16 products in the
 * transformed domain instead of 36, so the multiply count falls by 2.25×.
 * For a block of output tiles the input is transformed into V[ξ][tile][C_in]
 * (ξ < 16, one thread's scratch, sized to stay in L2); the 16 products
 * V[ξ] · U[ξ] run on the direct convolution's register tile against the
 * transformed weights U[ξ] packed into 32-wide panels; the output transform
 * then writes each 2×2 block (optionally through a fused affine, as the direct
 * kernel does). The backward-data pass of the same convolutions is again such a
 * convolution, of the output gradient with the flipped, transposed weights; the
 * weight gradient sums V[ξ]ᵀ · (A dY Aᵀ)[ξ] over the tiles and maps the 16 sums
 * back to the 3×3 kernel.
 *
 * Rounding differs from the direct sum (the transforms add and halve values;
 * errors stay within a few float32 ulps of Σ|w||x|), but every output is
 * computed whole inside one work item in a fixed order: results are
 * bit-identical for any thread count.
 */
#ifndef LVMMED_CONV_WINOGRAD_H
#define LVMMED_CONV_WINOGRAD_H

#include <stddef.h>

#include "backend/backend.h"
#include "backend/cpu/conv_direct.h"

/** 1 if c is a convolution this kernel computes (3×3, stride 1, pad 1, dilation 1,
 *  C_in a multiple of 16, AVX-512F) and one it is expected to compute faster than
 *  the direct kernel: at least 32 2×2 output tiles, at most 35% of their outputs
 *  past the map's edge. Depends on c only, never on the thread count. */
int lvmmed__wino_chosen(const lvmmed_conv2d *c);

/** The same for the backward-data pass of c (its adjoint convolution). */
int lvmmed__wino_chosen_adjoint(const lvmmed_conv2d *c);

/** Floats of transformed weights for c (a multiple of 16). */
size_t lvmmed__wino_packed_floats(const lvmmed_conv2d *c);

/** Transforms OIHW weights w of c into up (lvmmed__wino_packed_floats(c) floats). */
void lvmmed__wino_pack(lvmmed_ctx *ctx, const lvmmed_conv2d *c, const float *w, float *up);

/** Floats of transformed weights for the adjoint of c. */
size_t lvmmed__wino_adjoint_packed_floats(const lvmmed_conv2d *c);

/** Transforms the weights w of c into those of its adjoint (output channels C_in,
 *  input channels C_out, kernel flipped), into up. */
void lvmmed__wino_pack_adjoint(lvmmed_ctx *ctx, const lvmmed_conv2d *c, const float *w,
                               float *up);

/** Floats of scratch lvmmed__wino_run needs for c under ctx's thread count. */
size_t lvmmed__wino_ws(const lvmmed_ctx *ctx, const lvmmed_conv2d *c);

/** Scratch of the backward-data pass (lvmmed__wino_backward_data) of c. */
size_t lvmmed__wino_adjoint_ws(const lvmmed_ctx *ctx, const lvmmed_conv2d *c);

/** y = conv(x) (or y += when accumulate) with weights transformed by
 *  lvmmed__wino_pack; affine (NULL: none) is applied to each output as
 *  lvmmed__direct_run_affine does (not with accumulate). ws: lvmmed__wino_ws. */
void lvmmed__wino_run(lvmmed_ctx *ctx, const lvmmed_conv2d *c, const float *x, const float *up,
                      float *y, int accumulate, const lvmmed_direct_affine *affine, float *ws);

/** dx = (or += when accumulate) the input gradient of c for output gradient dy,
 *  with up from lvmmed__wino_pack_adjoint; ws: lvmmed__wino_adjoint_ws. */
void lvmmed__wino_backward_data(lvmmed_ctx *ctx, const lvmmed_conv2d *c, const float *dy,
                                const float *up, float *dx, int accumulate, float *ws);

/** 1 if c's weight gradient runs here (lvmmed__wino_chosen, at most 256 input and
 *  output channels: with more, its pass over the 16 transformed gradients costs more
 *  than the products save). */
int lvmmed__wino_chosen_wgrad(const lvmmed_conv2d *c);

/** Floats of scratch lvmmed__wino_wgrad needs for c under ctx's thread count. */
size_t lvmmed__wino_wgrad_ws(const lvmmed_ctx *ctx, const lvmmed_conv2d *c);

/** dw (OIHW) += the weight gradient of c (lvmmed__wino_chosen_wgrad) for input x and
 *  output gradient dy; ws: lvmmed__wino_wgrad_ws. */
void lvmmed__wino_wgrad(lvmmed_ctx *ctx, const lvmmed_conv2d *c, const float *x, const float *dy,
                        float *dw, float *ws);

#endif /* LVMMED_CONV_WINOGRAD_H */
