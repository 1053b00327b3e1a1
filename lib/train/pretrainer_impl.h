/* Private layout of lvmmed_pretrainer (lib/train only). */
#ifndef LVMMED_PRETRAINER_IMPL_H
#define LVMMED_PRETRAINER_IMPL_H

#include "core/core.h"
#include "lvmmed/pretrain.h"

#define PT_NOPT (LVMMED_PRETRAIN_OPT_BATCH + 1)

/* The shape the parameters had when they were registered with the optimizer. */
typedef struct pt_shape {
  int64_t proj_out, proj_hidden;
  double feature_dim, gcn_width, gcn_layers;
} pt_shape;

struct lvmmed_pretrainer {
  lvmmed_ctx *ctx;
  double opt[PT_NOPT];
  lvmmed_backbone *bb;
  lvmmed_affinity *aff;
  lvmmed_imle *imle;
  lvmmed_optimizer *optim;
  lvmmed_gm_solver **solvers;
  size_t nsolvers;

  int prepared;        /* parameters registered with the optimizer */
  pt_shape shape;      /* ... in this shape */
  int have_grad;       /* forward_backward done, update pending */
  size_t last_batch;   /* images of the pending step */
  size_t image_h, image_w; /* view size of the last step (recorded in checkpoints) */

  uint64_t step, images, position;
  uint32_t epoch;
  double loss, seconds[4]; /* data, backbone, graph, update */
  size_t graphs;

  unsigned char *work; /* step buffers (see carve() in pretrainer.c) */
  size_t work_cap;
  float *input;        /* 2B views (s then t) and 2B grids, concatenated */
  size_t input_cap;
};

/** Creates solvers up to the context's thread count and copies lane 0's options to all. */
lvmmed_status lvmmed__pt_sync_solvers(lvmmed_pretrainer *pt);

/** Registers every parameter with the optimizer (once); checks the shape afterwards. */
lvmmed_status lvmmed__pt_prepare(lvmmed_pretrainer *pt, const char *fn);

/** Checks a checkpoint's metadata (format, counters, every option's range) before anything is
 *  built from it (lib/train/checkpoint.c; also the fuzz target's entry point). */
struct json_t;
lvmmed_status lvmmed__ckpt_check_meta(lvmmed_ctx *ctx, struct json_t *meta, const char *path);

/** Exchanges everything but the context between a and b (checkpoint loading). */
void lvmmed__pt_swap(lvmmed_pretrainer *a, lvmmed_pretrainer *b);

#endif /* LVMMED_PRETRAINER_IMPL_H */
