/* liblvmmed — optimizers and learning-rate schedules.
 *
 * An lvmmed_optimizer updates a set of float32 tensors (parameters) from
 * their gradients. The caller registers each tensor once with
 * lvmmed_optimizer_add_param() — pointers into a backbone, a projector, the
 * affinity builder's GCN or any buffer the caller owns — and calls
 * lvmmed_optimizer_step() after each backward pass. The registered buffers
 * are borrowed: they must stay valid (and at the same address) for the life
 * of the optimizer.
 *
 * Methods (update rules as in PyTorch 1.13 where PyTorch has them):
 *  - SGD with momentum (dampening 0, optional Nesterov), L2 weight decay
 *    added to the gradient;
 *  - Adam (the LVM-Med default: lr 2e-3), L2 weight decay added to the
 *    gradient, or decoupled (AdamW) with LVMMED_OPTIM_OPT_DECOUPLED = 1;
 *  - LARS: g' = g + wd·p, scaled by the trust ratio η·‖p‖/‖g'‖ (1 when either
 *    norm is 0), heavy-ball momentum, p -= lr·buf. Tensors registered with
 *    LVMMED_PARAM_NO_ADAPT (biases, batch-norm) skip both decay and scaling.
 *
 * Learning rate at step s (0-based; W = WARMUP_STEPS, T = TOTAL_STEPS):
 *  - s < W: lr · (s + 1) / W (linear warm-up);
 *  - CONSTANT: lr;
 *  - COSINE: lr_min + (lr − lr_min)·(1 + cos(π·min(s − W, T − W)/(T − W)))/2,
 *    lr_min = lr · MIN_LR_RATIO;
 *  - STEP: lr · GAMMA^floor((s − W) / STEP_EVERY) ("halved every k steps"
 *    with GAMMA = 0.5, the paper's schedule).
 *
 * Determinism: updates are elementwise or use fixed-order reductions, so the
 * same inputs give bit-identical results for a given thread count.
 */
#ifndef LVMMED_OPTIM_H
#define LVMMED_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include <lvmmed/ctx.h>

LVMMED_EXTERN_C_BEGIN

/** Opaque optimizer. One thread at a time. */
typedef struct lvmmed_optimizer lvmmed_optimizer;

/** Update rules. Values are stable. */
typedef enum lvmmed_optim_method {
  LVMMED_OPTIM_SGD = 1,
  LVMMED_OPTIM_ADAM = 2,
  LVMMED_OPTIM_LARS = 3
} lvmmed_optim_method;

/** Learning-rate schedules. Values are stable. */
typedef enum lvmmed_lr_schedule {
  LVMMED_LR_CONSTANT = 0,
  LVMMED_LR_COSINE = 1,
  LVMMED_LR_STEP = 2
} lvmmed_lr_schedule;

/** Enum-keyed options, all double-valued (lvmmed_optim_option_bounds gives the ranges). */
typedef enum lvmmed_optim_option {
  LVMMED_OPTIM_OPT_LR = 1,            /**< base learning rate; default 2e-3 */
  LVMMED_OPTIM_OPT_WEIGHT_DECAY = 2,  /**< default 0 */
  LVMMED_OPTIM_OPT_MOMENTUM = 3,      /**< SGD and LARS; default 0.9 */
  LVMMED_OPTIM_OPT_NESTEROV = 4,      /**< SGD: 1 for Nesterov momentum; default 0 */
  LVMMED_OPTIM_OPT_BETA1 = 5,         /**< Adam; default 0.9 */
  LVMMED_OPTIM_OPT_BETA2 = 6,         /**< Adam; default 0.999 */
  LVMMED_OPTIM_OPT_EPS = 7,           /**< Adam; default 1e-8 */
  LVMMED_OPTIM_OPT_DECOUPLED = 8,     /**< Adam: 1 = AdamW-style decoupled decay; default 0 */
  LVMMED_OPTIM_OPT_TRUST = 9,         /**< LARS trust coefficient η; default 0.001 */
  LVMMED_OPTIM_OPT_SCHEDULE = 10,     /**< an lvmmed_lr_schedule; default CONSTANT */
  LVMMED_OPTIM_OPT_WARMUP_STEPS = 11, /**< default 0 */
  LVMMED_OPTIM_OPT_TOTAL_STEPS = 12,  /**< COSINE horizon; default 1 */
  LVMMED_OPTIM_OPT_MIN_LR_RATIO = 13, /**< COSINE floor as a fraction of lr; default 0 */
  LVMMED_OPTIM_OPT_STEP_EVERY = 14,   /**< STEP: steps between decays; default 1 */
  LVMMED_OPTIM_OPT_GAMMA = 15         /**< STEP: decay factor; default 0.5 */
} lvmmed_optim_option;

/** Flags of a registered tensor. */
enum {
  LVMMED_PARAM_NO_WEIGHT_DECAY = 1, /**< never decayed */
  LVMMED_PARAM_NO_ADAPT = 2         /**< LARS: no trust-ratio scaling and no decay */
};

/** Creates an optimizer with the method's defaults. Holds a reference on ctx. */
LVMMED_API lvmmed_status lvmmed_optimizer_create(lvmmed_ctx *ctx, lvmmed_optim_method method,
                                                 lvmmed_optimizer **out);

/** Frees an optimizer (not the registered tensors). NULL is a no-op. */
LVMMED_API void lvmmed_optimizer_free(lvmmed_optimizer *opt);

/** The context the optimizer reports errors to (borrowed; NULL for NULL). */
LVMMED_API lvmmed_ctx *lvmmed_optimizer_ctx(const lvmmed_optimizer *opt);

/** Sets an option; integer-valued ones (NESTEROV, SCHEDULE, *_STEPS, STEP_EVERY)
 *  must be whole numbers. Out of range: LVMMED_ERR_OUT_OF_RANGE, nothing changes. */
LVMMED_API lvmmed_status lvmmed_optimizer_set_option(lvmmed_optimizer *opt, lvmmed_optim_option option,
                                                     double value);

/** Reads an option. */
LVMMED_API lvmmed_status lvmmed_optimizer_get_option(const lvmmed_optimizer *opt,
                                                     lvmmed_optim_option option, double *value);

/** Inclusive range accepted for option. */
LVMMED_API lvmmed_status lvmmed_optim_option_bounds(lvmmed_optim_option option, double *min_value,
                                                    double *max_value);

/**
 * Registers a tensor of count floats: data is updated in place by each step
 * from grad (read only). name (copied; unique, at most 255 bytes) names the
 * tensor's optimizer state in checkpoints. flags: LVMMED_PARAM_* bits.
 * Tensors can be added until the first step.
 */
LVMMED_API lvmmed_status lvmmed_optimizer_add_param(lvmmed_optimizer *opt, const char *name, float *data,
                                                    const float *grad, size_t count, unsigned flags);

/** Applies one update to every registered tensor with the scheduled learning
 *  rate, then advances the step counter. Non-finite gradients give
 *  LVMMED_ERR_NUMERIC and leave every tensor unchanged. */
LVMMED_API lvmmed_status lvmmed_optimizer_step(lvmmed_optimizer *opt);

/** Learning rate the next step will use. */
LVMMED_API lvmmed_status lvmmed_optimizer_lr(const lvmmed_optimizer *opt, double *lr);

/** Learning rate of the schedule at an arbitrary step. */
LVMMED_API lvmmed_status lvmmed_optimizer_lr_at(const lvmmed_optimizer *opt, uint64_t step, double *lr);

/** Steps taken so far. */
LVMMED_API uint64_t lvmmed_optimizer_steps(const lvmmed_optimizer *opt);

/** Sets the step counter (resuming from a checkpoint). */
LVMMED_API lvmmed_status lvmmed_optimizer_set_steps(lvmmed_optimizer *opt, uint64_t steps);

/** Number of state tensors (momentum buffers, Adam moments) the method keeps. */
LVMMED_API size_t lvmmed_optimizer_state_count(const lvmmed_optimizer *opt);

/**
 * State tensor i (0 <= i < state_count): *name is "<param name>.<slot>" with
 * slot "momentum", "exp_avg" or "exp_avg_sq" (valid while opt lives);
 * *data points to its count floats, which the caller may read or overwrite
 * (e.g. when restoring a checkpoint). Any out pointer may be NULL.
 */
LVMMED_API lvmmed_status lvmmed_optimizer_state(lvmmed_optimizer *opt, size_t i, const char **name,
                                                float **data, size_t *count);

LVMMED_EXTERN_C_END

#endif /* LVMMED_OPTIM_H */
