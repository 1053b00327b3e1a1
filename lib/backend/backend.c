/* Backend registry: the compiled-in tables, fallback resolution, op names
 * and convolution geometry shared by every backend. */
#include "lvmmed_config.h"

#include <stdint.h>

#include "backend/backend.h"
#if LVMMED_HAVE_OPENBLAS
#include "backend/cpu/blas_loader.h"
#endif

const lvmmed_backend_ops *lvmmed__backend_table(lvmmed_backend id) {
  switch (id) {
    case LVMMED_BACKEND_REFERENCE: return &lvmmed__backend_reference;
#if LVMMED_HAVE_OPENBLAS
    case LVMMED_BACKEND_OPENBLAS: return lvmmed__blas() ? &lvmmed__backend_openblas : NULL;
#endif
    default: return NULL; /* AUTO is resolved by the context; CUDA is not built */
  }
}

/* For a table that leaves supports() NULL: it claims no op as its own,
 * which is the safe answer (callers then expect reference behaviour). */
static int supports_nothing(lvmmed_op op) {
  (void)op;
  return 0;
}

void lvmmed__backend_resolve(const lvmmed_backend_ops *table, lvmmed_backend_ops *out) {
  const lvmmed_backend_ops *ref = &lvmmed__backend_reference;
  *out = *table;
  if (!out->supports) out->supports = supports_nothing;
  /* The reference init is a no-op, so a resolved table never has a NULL slot. */
#define LVMMED_FILL_(slot) \
  if (!out->slot) out->slot = ref->slot
  LVMMED_FILL_(init);
  LVMMED_FILL_(gemm);
  LVMMED_FILL_(axpy);
  LVMMED_FILL_(scale);
  LVMMED_FILL_(im2col);
  LVMMED_FILL_(col2im);
  LVMMED_FILL_(add);
  LVMMED_FILL_(mul);
  LVMMED_FILL_(relu);
  LVMMED_FILL_(relu_backward);
  LVMMED_FILL_(sum);
  LVMMED_FILL_(dot);
  LVMMED_FILL_(sumsq);
  LVMMED_FILL_(row_sum);
  LVMMED_FILL_(pairwise_sqdist);
  LVMMED_FILL_(bn_stats);
  LVMMED_FILL_(channel_affine);
  LVMMED_FILL_(bn_backward_reduce);
  LVMMED_FILL_(bn_backward_apply);
  LVMMED_FILL_(col_sum);
  LVMMED_FILL_(maxpool_forward);
  LVMMED_FILL_(maxpool_backward);
  LVMMED_FILL_(avgpool_forward);
  LVMMED_FILL_(avgpool_backward);
  LVMMED_FILL_(transpose);
#undef LVMMED_FILL_
  /* The conv slots share one workspace layout: taken together or not at all. */
  if (!out->conv2d_forward || !out->conv2d_backward_data || !out->conv2d_backward_weight ||
      !out->conv2d_workspace || !out->conv2d_packed_size || !out->conv2d_pack ||
      !out->conv2d_forward_packed || !out->conv2d_forward_packed_affine) {
    out->conv2d_workspace = ref->conv2d_workspace;
    out->conv2d_forward = ref->conv2d_forward;
    out->conv2d_backward_data = ref->conv2d_backward_data;
    out->conv2d_backward_weight = ref->conv2d_backward_weight;
    out->conv2d_packed_size = ref->conv2d_packed_size;
    out->conv2d_pack = ref->conv2d_pack;
    out->conv2d_forward_packed = ref->conv2d_forward_packed;
    out->conv2d_forward_packed_affine = ref->conv2d_forward_packed_affine;
  }
}

const char *lvmmed__op_name(lvmmed_op op) {
  static const char *const names[LVMMED_OP_COUNT] = {
      [LVMMED_OP_GEMM] = "gemm",
      [LVMMED_OP_AXPY] = "axpy",
      [LVMMED_OP_SCALE] = "scale",
      [LVMMED_OP_IM2COL] = "im2col",
      [LVMMED_OP_COL2IM] = "col2im",
      [LVMMED_OP_ADD] = "add",
      [LVMMED_OP_MUL] = "mul",
      [LVMMED_OP_RELU] = "relu",
      [LVMMED_OP_RELU_BACKWARD] = "relu_backward",
      [LVMMED_OP_SUM] = "sum",
      [LVMMED_OP_DOT] = "dot",
      [LVMMED_OP_SUMSQ] = "sumsq",
      [LVMMED_OP_ROW_SUM] = "row_sum",
      [LVMMED_OP_PAIRWISE_SQDIST] = "pairwise_sqdist",
      [LVMMED_OP_CONV2D_FORWARD] = "conv2d_forward",
      [LVMMED_OP_CONV2D_BACKWARD_DATA] = "conv2d_backward_data",
      [LVMMED_OP_CONV2D_BACKWARD_WEIGHT] = "conv2d_backward_weight",
      [LVMMED_OP_BN_STATS] = "bn_stats",
      [LVMMED_OP_CHANNEL_AFFINE] = "channel_affine",
      [LVMMED_OP_BN_BACKWARD_REDUCE] = "bn_backward_reduce",
      [LVMMED_OP_BN_BACKWARD_APPLY] = "bn_backward_apply",
      [LVMMED_OP_COL_SUM] = "col_sum",
      [LVMMED_OP_MAXPOOL_FORWARD] = "maxpool_forward",
      [LVMMED_OP_MAXPOOL_BACKWARD] = "maxpool_backward",
      [LVMMED_OP_AVGPOOL_FORWARD] = "avgpool_forward",
      [LVMMED_OP_AVGPOOL_BACKWARD] = "avgpool_backward",
      [LVMMED_OP_TRANSPOSE] = "transpose",
      [LVMMED_OP_CONV2D_PACK] = "conv2d_pack",
      [LVMMED_OP_CONV2D_FORWARD_PACKED] = "conv2d_forward_packed",
      [LVMMED_OP_CONV2D_FORWARD_PACKED_AFFINE] = "conv2d_forward_packed_affine",
  };
  if ((unsigned)op >= LVMMED_OP_COUNT || !names[op]) return "unknown";
  return names[op];
}

/* One spatial axis: 0 when the dilated kernel does not fit or a size overflows. */
static size_t conv_out(size_t in, size_t kernel, size_t stride, size_t pad, size_t dilation) {
  if (kernel == 0 || stride == 0 || dilation == 0) return 0;
  if (kernel - 1 > (SIZE_MAX - 1) / dilation) return 0;
  size_t span = dilation * (kernel - 1) + 1; /* extent of the dilated kernel */
  if (pad > (SIZE_MAX - in) / 2) return 0;
  size_t padded = in + 2 * pad;
  if (padded < span) return 0;
  return (padded - span) / stride + 1;
}

int lvmmed__conv_geom_finish(lvmmed_conv_geom *g) {
  g->out_h = conv_out(g->height, g->kernel_h, g->stride_h, g->pad_h, g->dilation_h);
  g->out_w = conv_out(g->width, g->kernel_w, g->stride_w, g->pad_w, g->dilation_w);
  if (g->out_h == 0 || g->out_w == 0) {
    g->out_h = g->out_w = 0;
    return 0;
  }
  return 1;
}
