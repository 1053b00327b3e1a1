/* Private layout of lvmmed_optimizer (lib/train only). */
#ifndef LVMMED_OPTIMIZER_IMPL_H
#define LVMMED_OPTIMIZER_IMPL_H

#include "core/core.h"
#include "lvmmed/optim.h"

#define OPTIM_NAME_MAX 256
#define OPTIM_MAX_SLOTS 2

typedef struct optim_param {
  char name[OPTIM_NAME_MAX];
  float *data;
  const float *grad;
  size_t count;
  unsigned flags;
  float *slot[OPTIM_MAX_SLOTS]; /* momentum | exp_avg, exp_avg_sq */
} optim_param;

struct lvmmed_optimizer {
  lvmmed_ctx *ctx;
  lvmmed_optim_method method;
  double opt[LVMMED_OPTIM_OPT_GAMMA + 1]; /* indexed by lvmmed_optim_option */
  uint64_t steps;
  optim_param *params;
  size_t nparams, cap;
  char **state_names; /* nparams * slots, built lazily for lvmmed_optimizer_state */
};

/** Number of state slots per tensor for a method. */
unsigned lvmmed__optim_slots(lvmmed_optim_method method);

/** Scheduled learning rate at step (options as set). */
double lvmmed__optim_lr_at(const lvmmed_optimizer *opt, uint64_t step);

#endif /* LVMMED_OPTIMIZER_IMPL_H */
