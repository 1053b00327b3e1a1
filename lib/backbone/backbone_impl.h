/* liblvmmed — layout of lvmmed_backbone. Private to lib/backbone. */
#ifndef LVMMED_BACKBONE_IMPL_H
#define LVMMED_BACKBONE_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "lvmmed/backbone.h"
#include "nn/nn.h"

#define BB_NAME_MAX 64      /* longest tensor name ("projector.1.running_mean" and the like) */
#define BB_MAX_BLOCKS 16    /* resnet34/50: 3 + 4 + 6 + 3 */

/** One named float tensor of the state dict. */
typedef struct bb_tensor {
  char name[BB_NAME_MAX];
  lvmmed_tensor_kind kind;
  size_t ndim, shape[LVMMED_TENSOR_MAX_DIMS], numel;
  float *data, *grad; /* grad NULL for buffers */
} bb_tensor;

/** One "*.num_batches_tracked" counter (int64 in the state dict). */
typedef struct bb_counter {
  char name[BB_NAME_MAX];
  int64_t *value;
} bb_counter;

/** A residual block: basic (2 convs) or bottleneck (3 convs), optional downsample. */
typedef struct bb_block {
  int nconv, has_down;
  lvmmed_nn_conv conv[3], down;
  lvmmed_nn_bn bn[3], down_bn;
  /* plan of the current forward (shapes and activations, pointers into the arena) */
  size_t in_h, in_w, out_h, out_w;
  lvmmed_conv2d desc[3], down_desc;
  float *in, *z[3], *a[2], *zd, *out;
} bb_block;

/** The projector: Linear, or Linear → BN1d → ReLU → Linear. */
typedef struct bb_projector {
  size_t in, hidden, out; /* hidden 0: one Linear */
  lvmmed_nn_linear lin[2];
  lvmmed_nn_bn bn;
  /* saved by project() for project_backward() */
  size_t batch, cap;      /* rows saved, rows the buffers hold */
  float *x, *z, *a, *tmp; /* input copy, pre-BN, post-ReLU, scratch */
  int ready;
} bb_projector;

/** Shapes of one planned forward pass. */
typedef struct bb_plan {
  size_t batch, height, width;
  int save;           /* activations kept for backward */
  size_t stem_h, stem_w, pool_h, pool_w, map_h, map_w;
  size_t arena_floats, arg_bytes, ws_floats, grad_floats; /* sizes the plan needs */
} bb_plan;

struct lvmmed_backbone {
  lvmmed_ctx *ctx;
  lvmmed_arch arch;
  size_t in_channels, feature_dim, nblocks;
  int train, grad_enabled, frozen;
  float *pack_cache;               /* frozen: packed conv weights (conv->packed point here) */
  int pack_valid;
  size_t pack_batch, pack_h, pack_w; /* the input shape the packs were made for: which
                                        kernel runs a convolution depends on it */
  int64_t proj_out, proj_hidden;

  /* network */
  lvmmed_nn_conv conv1;
  lvmmed_nn_bn bn1;
  bb_block blocks[BB_MAX_BLOCKS];
  bb_projector proj;

  /* named tensors: backbone then projector; parameters live in two arenas each */
  bb_tensor *tensors;
  size_t ntensors, nbackbone_tensors;
  bb_counter *counters;
  size_t ncounters, nbackbone_counters;
  float *params, *grads;           /* backbone arenas */
  size_t nparams, ngrads;
  float *proj_params, *proj_grads; /* projector arenas */
  size_t nproj_params, nproj_grads;
  float *bn_scratch;               /* per-BN-layer mean/invstd/scale/shift/tmp */
  float *proj_bn_scratch;

  /* forward state */
  bb_plan plan;
  int have_forward;                /* a forward with saved state awaits backward */
  float *arena;                    /* activations (grown, reused) */
  size_t arena_cap;
  uint8_t *argmax;                 /* max-pool positions */
  size_t argmax_cap;
  float *ws;                       /* conv workspace */
  size_t ws_cap;
  float *gradbuf;                  /* 3 gradient buffers for backward */
  size_t gradbuf_cap;
  /* pointers of the current plan */
  float *x_nhwc, *stem_z, *stem_p, *maxpool_in;
  lvmmed_conv2d stem_desc;
  lvmmed_conv_geom pool_geom;
};

/* lib/backbone/tensors.c: building and naming the state dict. */
lvmmed_status lvmmed__bb_build_tensors(lvmmed_backbone *bb);
lvmmed_status lvmmed__bb_build_projector(lvmmed_backbone *bb);
void lvmmed__bb_free_projector(lvmmed_backbone *bb);
void lvmmed__bb_init_projector(lvmmed_backbone *bb, lvmmed_rng *rng);

/* lib/backbone/resnet.c: drops the packed weights of OPT_FROZEN (re-packed on the next forward). */
void lvmmed__bb_unpack(lvmmed_backbone *bb);

/* lib/backbone/weights.c */
lvmmed_status lvmmed__bb_load_bytes(lvmmed_backbone *bb, const unsigned char *bytes, size_t size,
                                    unsigned flags, size_t *missing, size_t *unexpected,
                                    const char *origin);

/** Fills e (room for ntensors + ncounters entries) with the state dict in
 *  lvmmed_backbone_save's order, pointing at the live tensors; returns the count. */
struct lvmmed_st_entry;
size_t lvmmed__bb_state_entries(const lvmmed_backbone *bb, struct lvmmed_st_entry *e);

/** "resnet18", "resnet34" or "resnet50". */
const char *lvmmed__bb_arch_name(lvmmed_arch arch);

#endif /* LVMMED_BACKBONE_IMPL_H */
