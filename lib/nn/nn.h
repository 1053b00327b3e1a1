/* liblvmmed — private layers of the backbone (module nn), on the backend vtable.
 *
 * Activations are NHWC: a batch of feature maps is a rows × channels matrix
 * with rows = batch·height·width. Parameters keep PyTorch's layouts (conv
 * weights OIHW, linear weights out×in) so they load, save and enumerate under
 * torchvision's names unchanged. Backward passes ADD into parameter
 * gradients (PyTorch's accumulate-until-zero_grad rule).
 */
#ifndef LVMMED_NN_H
#define LVMMED_NN_H

#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "core/rng.h"

/* PyTorch's BatchNorm defaults. */
#define LVMMED_BN_EPS 1e-5f
#define LVMMED_BN_MOMENTUM 0.1f

/** Convolution without bias. weight/grad point into the owner's parameter arena. */
typedef struct lvmmed_nn_conv {
  size_t cin, cout, kernel, stride, pad;
  float *weight, *grad; /* cout × cin × kernel × kernel */
  float *packed;        /* the backend's packed copy of weight, or NULL: use weight */
} lvmmed_nn_conv;

/** BatchNorm over the channels of an NHWC map (or the features of a batch of vectors). */
typedef struct lvmmed_nn_bn {
  size_t channels;
  float *weight, *bias, *running_mean, *running_var; /* parameters and buffers */
  float *grad_weight, *grad_bias;
  int64_t batches_tracked;
  /* from the last forward, used by backward: */
  float *mean, *invstd; /* statistics used (batch ones in training, running ones in eval) */
  float *scale, *shift; /* y = x·scale + shift */
  float *tmp;           /* 4 × channels scratch for backward */
  int trained;          /* the last forward used batch statistics */
} lvmmed_nn_bn;

/** Linear layer y = x·weightᵀ + bias. */
typedef struct lvmmed_nn_linear {
  size_t in, out;
  float *weight, *bias, *grad_weight, *grad_bias;
} lvmmed_nn_linear;

/** Geometry of conv on an h×w input (out_h/out_w filled); 0 if it does not fit. */
int lvmmed__nn_conv_desc(const lvmmed_nn_conv *conv, size_t batch, size_t h, size_t w,
                         lvmmed_conv2d *out);

/** y = conv(x) for x NHWC batch×h×w×cin. ws: the backend's conv2d_workspace floats. */
void lvmmed__nn_conv_forward(lvmmed_ctx *ctx, const lvmmed_nn_conv *conv, const lvmmed_conv2d *d,
                             const float *x, float *y, float *ws);

/** grad += dL/dweight; dx (if non-NULL) = or += dL/dx (accumulate). */
void lvmmed__nn_conv_backward(lvmmed_ctx *ctx, const lvmmed_nn_conv *conv,
                              const lvmmed_conv2d *d, const float *x, const float *dy, float *dx,
                              int accumulate, float *ws);

/** Statistics for y = bn(x): batch statistics (updating the running ones) when train,
 *  else the running ones. Fills bn->scale/shift. rows must be > 1 when train. */
void lvmmed__nn_bn_prepare(lvmmed_ctx *ctx, lvmmed_nn_bn *bn, size_t rows, const float *x,
                           int train);

/** y = bn(x) (+ residual) (then ReLU if relu), with the statistics of the last prepare. */
void lvmmed__nn_bn_apply(lvmmed_ctx *ctx, const lvmmed_nn_bn *bn, size_t rows, const float *x,
                         const float *residual, int relu, float *y);

/** Eval mode, packed weights (conv->packed non-NULL): y = bn(conv(x)) (+ residual)
 *  (then ReLU if relu) with bn's running statistics, in one pass over y; the same
 *  values as conv_forward, bn_prepare (eval) and bn_apply. residual must not overlap y. */
void lvmmed__nn_conv_bn_eval(lvmmed_ctx *ctx, const lvmmed_nn_conv *conv, const lvmmed_conv2d *d,
                             const float *x, lvmmed_nn_bn *bn, const float *residual, int relu,
                             float *y, float *ws);

/** Backward of bn_apply given dy, with the ReLU mask taken from mask (the forward output)
 *  if non-NULL: adds to grad_weight/grad_bias and writes dx (may alias dy; NULL skips). */
void lvmmed__nn_bn_backward(lvmmed_ctx *ctx, lvmmed_nn_bn *bn, size_t rows, const float *x,
                            const float *mask, const float *dy, float *dx);

/** y = x·Wᵀ + b for a batch of rows. */
void lvmmed__nn_linear_forward(lvmmed_ctx *ctx, const lvmmed_nn_linear *l, size_t rows,
                               const float *x, float *y);

/** Adds dL/dW, dL/db; dx (if non-NULL) = dy·W. */
void lvmmed__nn_linear_backward(lvmmed_ctx *ctx, const lvmmed_nn_linear *l, size_t rows,
                                const float *x, const float *dy, float *dx);

/* Initialisations of torchvision's ResNet (and PyTorch's Linear default). */
void lvmmed__nn_conv_init(lvmmed_nn_conv *conv, lvmmed_rng *rng);
void lvmmed__nn_bn_init(lvmmed_nn_bn *bn);
void lvmmed__nn_linear_init(lvmmed_nn_linear *l, lvmmed_rng *rng);

#endif /* LVMMED_NN_H */
