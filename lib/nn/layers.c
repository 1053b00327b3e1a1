/* Layers of the backbone: convolution, batch normalisation, linear. */
#include "lvmmed_config.h"

#include <math.h>
#include <string.h>

#include "nn/nn.h"

int lvmmed__nn_conv_desc(const lvmmed_nn_conv *conv, size_t batch, size_t h, size_t w,
                         lvmmed_conv2d *out) {
  memset(out, 0, sizeof *out);
  out->batch = batch;
  out->out_channels = conv->cout;
  lvmmed_conv_geom *g = &out->g;
  g->channels = conv->cin;
  g->height = h;
  g->width = w;
  g->kernel_h = g->kernel_w = conv->kernel;
  g->stride_h = g->stride_w = conv->stride;
  g->pad_h = g->pad_w = conv->pad;
  g->dilation_h = g->dilation_w = 1;
  return lvmmed__conv_geom_finish(g);
}

void lvmmed__nn_conv_forward(lvmmed_ctx *ctx, const lvmmed_nn_conv *conv, const lvmmed_conv2d *d,
                             const float *x, float *y, float *ws) {
  const lvmmed_backend_ops *ops = lvmmed__backend(ctx);
  if (conv->packed)
    ops->conv2d_forward_packed(ctx, d, x, conv->packed, y, ws);
  else
    ops->conv2d_forward(ctx, d, x, conv->weight, y, ws);
}

void lvmmed__nn_conv_backward(lvmmed_ctx *ctx, const lvmmed_nn_conv *conv,
                              const lvmmed_conv2d *d, const float *x, const float *dy, float *dx,
                              int accumulate, float *ws) {
  const lvmmed_backend_ops *ops = lvmmed__backend(ctx);
  ops->conv2d_backward_weight(ctx, d, x, dy, conv->grad, ws);
  if (dx) ops->conv2d_backward_data(ctx, d, dy, conv->weight, dx, accumulate, ws);
}

void lvmmed__nn_bn_prepare(lvmmed_ctx *ctx, lvmmed_nn_bn *bn, size_t rows, const float *x,
                           int train) {
  size_t ch = bn->channels;
  bn->trained = train;
  if (train) {
    float *var = bn->tmp;
    lvmmed__backend(ctx)->bn_stats(ctx, rows, ch, x, bn->mean, var);
    /* PyTorch: running ← (1 - m)·running + m·batch, with the unbiased variance. */
    double unbias = rows > 1 ? (double)rows / (double)(rows - 1) : 1.0;
    for (size_t c = 0; c < ch; c++) {
      bn->running_mean[c] = (1.0f - LVMMED_BN_MOMENTUM) * bn->running_mean[c] +
                            LVMMED_BN_MOMENTUM * bn->mean[c];
      bn->running_var[c] = (1.0f - LVMMED_BN_MOMENTUM) * bn->running_var[c] +
                           LVMMED_BN_MOMENTUM * (float)(var[c] * unbias);
      bn->invstd[c] = (float)(1.0 / sqrt((double)var[c] + LVMMED_BN_EPS));
    }
    bn->batches_tracked++;
  } else {
    for (size_t c = 0; c < ch; c++) {
      bn->mean[c] = bn->running_mean[c];
      bn->invstd[c] = (float)(1.0 / sqrt((double)bn->running_var[c] + LVMMED_BN_EPS));
    }
  }
  for (size_t c = 0; c < ch; c++) {
    bn->scale[c] = bn->weight[c] * bn->invstd[c];
    bn->shift[c] = bn->bias[c] - bn->mean[c] * bn->scale[c];
  }
}

void lvmmed__nn_bn_apply(lvmmed_ctx *ctx, const lvmmed_nn_bn *bn, size_t rows, const float *x,
                         const float *residual, int relu, float *y) {
  lvmmed__backend(ctx)->channel_affine(ctx, rows, bn->channels, x, bn->scale, bn->shift, residual,
                                       relu, y);
}

void lvmmed__nn_conv_bn_eval(lvmmed_ctx *ctx, const lvmmed_nn_conv *conv, const lvmmed_conv2d *d,
                             const float *x, lvmmed_nn_bn *bn, const float *residual, int relu,
                             float *y, float *ws) {
  lvmmed__nn_bn_prepare(ctx, bn, d->batch * d->g.out_h * d->g.out_w, NULL, 0);
  lvmmed__backend(ctx)->conv2d_forward_packed_affine(ctx, d, x, conv->packed, bn->scale, bn->shift,
                                                     residual, relu, y, ws);
}

void lvmmed__nn_bn_backward(lvmmed_ctx *ctx, lvmmed_nn_bn *bn, size_t rows, const float *x,
                            const float *mask, const float *dy, float *dx) {
  const lvmmed_backend_ops *ops = lvmmed__backend(ctx);
  size_t ch = bn->channels;
  float *sum_g = bn->tmp, *sum_gx = sum_g + ch, *k_x = sum_gx + ch, *k_0 = k_x + ch;
  ops->bn_backward_reduce(ctx, rows, ch, x, bn->mean, mask, dy, sum_g, sum_gx);
  for (size_t c = 0; c < ch; c++) {
    bn->grad_weight[c] += sum_gx[c] * bn->invstd[c];
    bn->grad_bias[c] += sum_g[c];
  }
  if (!dx) return;
  if (bn->trained) {
    /* dx = γ·σ⁻¹·(g - mean(g) - x̂·mean(g·x̂)), x̂ = (x - μ)·σ⁻¹ */
    double inv_rows = 1.0 / (double)rows;
    for (size_t c = 0; c < ch; c++) {
      double is = bn->invstd[c], k = (double)bn->weight[c] * is;
      k_x[c] = (float)(-k * is * is * sum_gx[c] * inv_rows);
      k_0[c] = (float)(-k * sum_g[c] * inv_rows);
    }
    ops->bn_backward_apply(ctx, rows, ch, x, bn->mean, mask, dy, bn->scale, k_x, k_0, dx);
  } else {
    for (size_t c = 0; c < ch; c++) k_0[c] = 0.0f;
    ops->bn_backward_apply(ctx, rows, ch, NULL, NULL, mask, dy, bn->scale, NULL, k_0, dx);
  }
}

void lvmmed__nn_linear_forward(lvmmed_ctx *ctx, const lvmmed_nn_linear *l, size_t rows,
                               const float *x, float *y) {
  const lvmmed_backend_ops *ops = lvmmed__backend(ctx);
  ops->gemm(ctx, 0, 1, rows, l->out, l->in, 1.0f, x, l->in, l->weight, l->in, 0.0f, y, l->out);
  ops->channel_affine(ctx, rows, l->out, y, NULL, l->bias, NULL, 0, y);
}

void lvmmed__nn_linear_backward(lvmmed_ctx *ctx, const lvmmed_nn_linear *l, size_t rows,
                                const float *x, const float *dy, float *dx) {
  const lvmmed_backend_ops *ops = lvmmed__backend(ctx);
  ops->gemm(ctx, 1, 0, l->out, l->in, rows, 1.0f, dy, l->out, x, l->in, 1.0f, l->grad_weight,
            l->in);
  ops->col_sum(ctx, rows, l->out, dy, l->grad_bias, 1);
  if (dx) ops->gemm(ctx, 0, 0, rows, l->in, l->out, 1.0f, dy, l->out, l->weight, l->in, 0.0f, dx,
                    l->in);
}

void lvmmed__nn_conv_init(lvmmed_nn_conv *conv, lvmmed_rng *rng) {
  /* kaiming_normal_(mode="fan_out", nonlinearity="relu") */
  size_t n = conv->cout * conv->cin * conv->kernel * conv->kernel;
  double std = sqrt(2.0 / (double)(conv->cout * conv->kernel * conv->kernel));
  for (size_t i = 0; i < n; i++) conv->weight[i] = (float)(std * lvmmed__rng_normal(rng));
}

void lvmmed__nn_bn_init(lvmmed_nn_bn *bn) {
  for (size_t c = 0; c < bn->channels; c++) {
    bn->weight[c] = 1.0f;
    bn->bias[c] = 0.0f;
    bn->running_mean[c] = 0.0f;
    bn->running_var[c] = 1.0f;
  }
  bn->batches_tracked = 0;
}

void lvmmed__nn_linear_init(lvmmed_nn_linear *l, lvmmed_rng *rng) {
  /* PyTorch's default: U(-1/√in, 1/√in) for weight and bias. */
  double bound = 1.0 / sqrt((double)l->in);
  for (size_t i = 0; i < l->out * l->in; i++)
    l->weight[i] = (float)(bound * (2.0 * lvmmed__rng_uniform(rng) - 1.0));
  for (size_t i = 0; i < l->out; i++)
    l->bias[i] = (float)(bound * (2.0 * lvmmed__rng_uniform(rng) - 1.0));
}
