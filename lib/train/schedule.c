/* Learning-rate schedules (formulas in include/lvmmed/optim.h). */
#include <math.h>

#include "train/optimizer_impl.h"

double lvmmed__optim_lr_at(const lvmmed_optimizer *opt, uint64_t step) {
  const double *o = opt->opt;
  double lr = o[LVMMED_OPTIM_OPT_LR];
  double warmup = o[LVMMED_OPTIM_OPT_WARMUP_STEPS];
  double s = (double)step;
  if (s < warmup) return lr * (s + 1.0) / warmup;
  double after = s - warmup;
  switch ((lvmmed_lr_schedule)o[LVMMED_OPTIM_OPT_SCHEDULE]) {
    case LVMMED_LR_COSINE: {
      double span = o[LVMMED_OPTIM_OPT_TOTAL_STEPS] - warmup;
      double lr_min = lr * o[LVMMED_OPTIM_OPT_MIN_LR_RATIO];
      if (span <= 0.0) return lr_min;
      double t = after < span ? after : span;
      return lr_min + (lr - lr_min) * 0.5 * (1.0 + cos(M_PI * t / span));
    }
    case LVMMED_LR_STEP:
      return lr * pow(o[LVMMED_OPTIM_OPT_GAMMA], floor(after / o[LVMMED_OPTIM_OPT_STEP_EVERY]));
    case LVMMED_LR_CONSTANT:
      break;
  }
  return lr;
}
