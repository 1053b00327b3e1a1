/* liblvmmed — the LVM-Med pretraining step and its checkpoints.
 *
 * An lvmmed_pretrainer composes the four public handles into one training
 * step (METHOD.md §8):
 *
 *   views s, t (B images each) → backbone (one pass over the 2B views)
 *     → pooled features → projector → z_s, z_t
 *     → lvmmed_affinity: groups of N images, kNN graphs, GCN, c_v (global
 *       cosine + local term from the feature maps and location grids), c_e
 *     → lvmmed_imle: perturb-and-MAP with the graph-matching solver,
 *       Hamming loss against the identity, I-MLE gradients of c_v and c_e
 *     → backward through the affinity, projector and backbone
 *     → lvmmed_optimizer update of backbone, projector and GCN.
 *
 * The components are ordinary handles owned by the pretrainer and lent out
 * by lvmmed_pretrainer_backbone() and friends: every hyper-parameter of
 * METHOD.md §9 is set on them with their own options (projector width on the
 * backbone, group size, k, α, γ and the GCN on the affinity builder, λ and
 * the noise on the I-MLE estimator, the solver method, the learning rate,
 * weight decay and schedule on the optimizer). Defaults are METHOD.md's,
 * with Adam at lr 2e-3.
 *
 * Life cycle: the pretrainer is configured until its first step (or save or
 * load), which registers every parameter with the optimizer. After that the
 * structure is fixed: changing ARCH or OPTIMIZER, or the projector or GCN
 * shape on the lent handles, makes the next step fail with LVMMED_ERR_STATE.
 *
 * Determinism: with the same context seed, thread count, options and input
 * views, steps are bit-identical. Noise comes from the I-MLE estimator's
 * counter, data order and views from the dataset's seed, epoch and
 * position; a checkpoint stores all three, so a resumed run continues
 * exactly as the uninterrupted one would (same seed and thread count).
 *
 * Checkpoints are single safetensors files: the backbone's tensors under
 * their torchvision names (so lvmmed_backbone_load reads a checkpoint), and
 * under names starting with "lvmmed." the GCN weights
 * ("lvmmed.gcn.<l>.weight") and the optimizer state
 * ("lvmmed.optim.<param>.<slot>"). The metadata holds the format
 * ("lvmmed_checkpoint" = "1"), "lvmmed_arch", the step, the data position,
 * the noise counter, the seed and thread count, the view size of the last
 * step ("image_height", "image_width"), and "lvmmed_config": a JSON
 * object of every option of the pretrainer and its components. Files are
 * written to a temporary name, flushed to disk (fsync) and renamed over the
 * target, so a crash at any moment leaves either the old or the new file.
 *
 * A pretrainer is used by one thread at a time.
 */
#ifndef LVMMED_PRETRAIN_H
#define LVMMED_PRETRAIN_H

#include <stddef.h>
#include <stdint.h>

#include <lvmmed/affinity.h>
#include <lvmmed/backbone.h>
#include <lvmmed/ctx.h>
#include <lvmmed/dataset.h>
#include <lvmmed/gm.h>
#include <lvmmed/imle.h>
#include <lvmmed/optim.h>

LVMMED_EXTERN_C_BEGIN

/** Opaque pretrainer: backbone, affinity builder, solvers, I-MLE, optimizer and counters. */
typedef struct lvmmed_pretrainer lvmmed_pretrainer;

/**
 * Enum-keyed options, read and written as double (all take integral values).
 * lvmmed_pretrainer_option_bounds gives each range. Values are stable.
 */
typedef enum lvmmed_pretrain_option {
  /** an lvmmed_arch; default RESNET50. Setting a new value replaces the backbone
   *  (fresh weights from the context seed, default options). Before the first step only. */
  LVMMED_PRETRAIN_OPT_ARCH = 1,
  /** an lvmmed_optim_method; default ADAM. Setting a new value replaces the optimizer
   *  (the method's defaults, lr 2e-3). Before the first step only. */
  LVMMED_PRETRAIN_OPT_OPTIMIZER = 2,
  /** 1: batch norm uses and keeps its running statistics (eval mode) while training;
   *  its affine parameters still learn. Default 0 (batch statistics). */
  LVMMED_PRETRAIN_OPT_FROZEN_BN = 3,
  /** 1 (default): the local term of c_v from the feature maps and grids; 0: global cosine only. */
  LVMMED_PRETRAIN_OPT_LOCAL_TERM = 4,
  /** images per step taken by lvmmed_pretrainer_step_dataset; default 32; [2, 65536]. */
  LVMMED_PRETRAIN_OPT_BATCH = 5
} lvmmed_pretrain_option;

/** Counters and timings (lvmmed_pretrainer_stat). Values are stable. */
typedef enum lvmmed_pretrain_stat {
  LVMMED_PRETRAIN_STAT_STEP = 1,          /**< optimizer updates done */
  LVMMED_PRETRAIN_STAT_LOSS = 2,          /**< loss of the last forward (NaN before) */
  LVMMED_PRETRAIN_STAT_LR = 3,            /**< learning rate of the next update */
  LVMMED_PRETRAIN_STAT_EPOCH = 4,         /**< dataset epoch of the next image (step_dataset) */
  LVMMED_PRETRAIN_STAT_POSITION = 5,      /**< items of that epoch already consumed */
  LVMMED_PRETRAIN_STAT_IMAGES = 6,        /**< images trained on, in total */
  LVMMED_PRETRAIN_STAT_GRAPHS = 7,        /**< graphs of the last step */
  LVMMED_PRETRAIN_STAT_SECONDS_DATA = 8,     /**< last step: waiting for the dataset */
  LVMMED_PRETRAIN_STAT_SECONDS_BACKBONE = 9, /**< last step: backbone and projector, both passes */
  LVMMED_PRETRAIN_STAT_SECONDS_GRAPH = 10,   /**< last step: affinity, solver, I-MLE, both passes */
  LVMMED_PRETRAIN_STAT_SECONDS_UPDATE = 11   /**< last step: optimizer update */
} lvmmed_pretrain_stat;

/** Creates a pretrainer with METHOD.md's defaults (ResNet-50, 128-wide projector, Adam 2e-3,
 *  one solver per context thread). Holds a reference on ctx. *out is NULL on failure. */
LVMMED_API lvmmed_status lvmmed_pretrainer_create(lvmmed_ctx *ctx, lvmmed_pretrainer **out);

/** Frees the pretrainer and every component. NULL is a no-op. */
LVMMED_API void lvmmed_pretrainer_free(lvmmed_pretrainer *pt);

/** The context pt was created with (no reference is added); NULL for NULL. */
LVMMED_API lvmmed_ctx *lvmmed_pretrainer_ctx(const lvmmed_pretrainer *pt);

/** Sets an option. Out of range: LVMMED_ERR_OUT_OF_RANGE; ARCH or OPTIMIZER after the
 *  first step: LVMMED_ERR_STATE; nothing changes on error. */
LVMMED_API lvmmed_status lvmmed_pretrainer_set_option(lvmmed_pretrainer *pt,
                                                      lvmmed_pretrain_option option, double value);

/** Reads an option. */
LVMMED_API lvmmed_status lvmmed_pretrainer_get_option(const lvmmed_pretrainer *pt,
                                                      lvmmed_pretrain_option option, double *value);

/** Inclusive range of an option. */
LVMMED_API lvmmed_status lvmmed_pretrainer_option_bounds(lvmmed_pretrain_option option,
                                                         double *min_value, double *max_value);

/** Reads a counter or timing. */
LVMMED_API lvmmed_status lvmmed_pretrainer_stat(const lvmmed_pretrainer *pt,
                                                lvmmed_pretrain_stat stat, double *value);

/* ---- The components (borrowed: owned by pt, valid until it is freed or the
 *      ARCH / OPTIMIZER option or lvmmed_pretrainer_load replaces them) ---- */

/** The backbone with its projector. */
LVMMED_API lvmmed_backbone *lvmmed_pretrainer_backbone(lvmmed_pretrainer *pt);
/** The affinity builder (kNN graphs, GCN, c_v, c_e). */
LVMMED_API lvmmed_affinity *lvmmed_pretrainer_affinity(lvmmed_pretrainer *pt);
/** The I-MLE estimator. */
LVMMED_API lvmmed_imle *lvmmed_pretrainer_imle(lvmmed_pretrainer *pt);
/** The optimizer. */
LVMMED_API lvmmed_optimizer *lvmmed_pretrainer_optimizer(lvmmed_pretrainer *pt);
/** The solver to configure: each step copies its options to the solvers of the other lanes. */
LVMMED_API lvmmed_gm_solver *lvmmed_pretrainer_solver(lvmmed_pretrainer *pt);

/**
 * Side of the location grids a step expects for views of height × width:
 * the backbone's feature-map shape (*grid_h × *grid_w cells, each 2 floats).
 */
LVMMED_API lvmmed_status lvmmed_pretrainer_grid_shape(const lvmmed_pretrainer *pt, size_t height,
                                                      size_t width, size_t *grid_h, size_t *grid_w);

/**
 * Forward and backward of one step on batch image pairs, without the update:
 *   views_s, views_t  batch × 3 × height × width floats (normalised views s and t);
 *   grids_s, grids_t  batch × grid_h × grid_w × 2 location grids
 *                     (lvmmed_pretrainer_grid_shape), or NULL when LOCAL_TERM is 0.
 * batch must be at least the affinity's group size; images past the last full
 * group take part in the backbone's batch statistics but in no graph.
 * Afterwards every parameter gradient of the backbone, projector and GCN holds
 * this step's gradient (earlier gradients are cleared first) and *loss (may be
 * NULL) the mean Hamming loss over the groups.
 */
LVMMED_API lvmmed_status lvmmed_pretrainer_forward_backward(lvmmed_pretrainer *pt, size_t batch,
                                                            size_t height, size_t width,
                                                            const float *views_s,
                                                            const float *views_t,
                                                            const float *grids_s,
                                                            const float *grids_t, double *loss);

/** Applies the optimizer to the gradients of the last forward_backward and counts the step.
 *  Without gradients to apply: LVMMED_ERR_STATE. */
LVMMED_API lvmmed_status lvmmed_pretrainer_update(lvmmed_pretrainer *pt);

/** forward_backward followed by update. */
LVMMED_API lvmmed_status lvmmed_pretrainer_step(lvmmed_pretrainer *pt, size_t batch, size_t height,
                                                size_t width, const float *views_s,
                                                const float *views_t, const float *grids_s,
                                                const float *grids_t, double *loss);

/**
 * One step on the next BATCH images of ds (views and grids from its augmenter,
 * whose view size and grid side must match the backbone's map for that size).
 * Epochs roll over inside a step: the pretrainer keeps the (epoch, position)
 * of the next image and, when ds is elsewhere (a new dataset, or after
 * lvmmed_pretrainer_load), moves it there first with
 * lvmmed_dataset_start_epoch_at. ds must list the same files in the same
 * order as the run being continued.
 */
LVMMED_API lvmmed_status lvmmed_pretrainer_step_dataset(lvmmed_pretrainer *pt, lvmmed_dataset *ds,
                                                        double *loss);

/** Writes a checkpoint of pt to path (atomically; see the top of this header). */
LVMMED_API lvmmed_status lvmmed_pretrainer_save(lvmmed_pretrainer *pt, const char *path);

/**
 * Restores a checkpoint: options of the pretrainer and its components, every
 * tensor, the optimizer state, the step, data position and noise counter.
 * The file is validated completely before anything changes; on error pt is
 * untouched. The component handles may be replaced (fetch them again). A
 * checkpoint made with another context seed or thread count loads, with a
 * warning in the log, but does not continue bit-identically.
 */
LVMMED_API lvmmed_status lvmmed_pretrainer_load(lvmmed_pretrainer *pt, const char *path);

/**
 * Reads metadata value key of the checkpoint (or any safetensors file) at path into
 * value (NUL-terminated, at most size bytes with the NUL). Keys of a checkpoint:
 * "lvmmed_checkpoint", "lvmmed_arch", "step", "epoch", "position", "noise_counter",
 * "seed", "threads", "image_height", "image_width" (views of the last step; 0 before
 * any), "lvmmed_config". Absent key: LVMMED_ERR_NOT_FOUND; value too
 * long: LVMMED_ERR_LIMIT.
 */
LVMMED_API lvmmed_status lvmmed_checkpoint_read_meta(lvmmed_ctx *ctx, const char *path,
                                                     const char *key, char *value, size_t size);

LVMMED_EXTERN_C_END

#endif /* LVMMED_PRETRAIN_H */
