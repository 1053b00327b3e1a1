/* Optimizers: SGD (momentum, Nesterov), Adam/AdamW, LARS (rules in include/lvmmed/optim.h).
 * Arithmetic follows PyTorch 1.13's single-tensor kernels step for step (float
 * tensors, double scalars rounded to float) so results track torch.optim closely. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/pool.h"
#include "train/optimizer_impl.h"

#define UPDATE_MIN_CHUNK ((size_t)16384)
#define BIG 1e15
#define FINITE_MAX_CHUNKS 256

typedef struct option_spec {
  double lo, hi, sgd, adam, lars; /* range and per-method defaults */
  int integral;
  const char *name;
} option_spec;

static const option_spec specs[LVMMED_OPTIM_OPT_GAMMA + 1] = {
    [LVMMED_OPTIM_OPT_LR] = {0, 10, 0.1, 2e-3, 0.1, 0, "lr"},
    [LVMMED_OPTIM_OPT_WEIGHT_DECAY] = {0, 10, 0, 0, 0, 0, "weight_decay"},
    [LVMMED_OPTIM_OPT_MOMENTUM] = {0, 0.999999, 0.9, 0.9, 0.9, 0, "momentum"},
    [LVMMED_OPTIM_OPT_NESTEROV] = {0, 1, 0, 0, 0, 1, "nesterov"},
    [LVMMED_OPTIM_OPT_BETA1] = {0, 0.999999, 0.9, 0.9, 0.9, 0, "beta1"},
    [LVMMED_OPTIM_OPT_BETA2] = {0, 0.999999999, 0.999, 0.999, 0.999, 0, "beta2"},
    [LVMMED_OPTIM_OPT_EPS] = {1e-30, 1, 1e-8, 1e-8, 1e-8, 0, "eps"},
    [LVMMED_OPTIM_OPT_DECOUPLED] = {0, 1, 0, 0, 0, 1, "decoupled"},
    [LVMMED_OPTIM_OPT_TRUST] = {0, 1, 0.001, 0.001, 0.001, 0, "trust"},
    [LVMMED_OPTIM_OPT_SCHEDULE] = {0, 2, 0, 0, 0, 1, "schedule"},
    [LVMMED_OPTIM_OPT_WARMUP_STEPS] = {0, BIG, 0, 0, 0, 1, "warmup_steps"},
    [LVMMED_OPTIM_OPT_TOTAL_STEPS] = {1, BIG, 1, 1, 1, 1, "total_steps"},
    [LVMMED_OPTIM_OPT_MIN_LR_RATIO] = {0, 1, 0, 0, 0, 0, "min_lr_ratio"},
    [LVMMED_OPTIM_OPT_STEP_EVERY] = {1, BIG, 1, 1, 1, 1, "step_every"},
    [LVMMED_OPTIM_OPT_GAMMA] = {0, 1, 0.5, 0.5, 0.5, 0, "gamma"},
};

static int known_option(lvmmed_optim_option o) {
  return o >= LVMMED_OPTIM_OPT_LR && o <= LVMMED_OPTIM_OPT_GAMMA;
}

unsigned lvmmed__optim_slots(lvmmed_optim_method method) { return method == LVMMED_OPTIM_ADAM ? 2 : 1; }

static const char *slot_name(lvmmed_optim_method method, unsigned slot) {
  if (method == LVMMED_OPTIM_ADAM) return slot == 0 ? "exp_avg" : "exp_avg_sq";
  return "momentum";
}

lvmmed_status lvmmed_optimizer_create(lvmmed_ctx *ctx, lvmmed_optim_method method, lvmmed_optimizer **out) {
  if (!out) return lvmmed__fail(ctx, LVMMED_ERR_INVALID_ARGUMENT, "lvmmed_optimizer_create: out is NULL");
  *out = NULL;
  if (!ctx) return LVMMED_ERR_INVALID_ARGUMENT;
  if (method != LVMMED_OPTIM_SGD && method != LVMMED_OPTIM_ADAM && method != LVMMED_OPTIM_LARS)
    return lvmmed__fail(ctx, LVMMED_ERR_INVALID_ARGUMENT, "lvmmed_optimizer_create: unknown method %d",
                        (int)method);
  lvmmed_optimizer *opt = lvmmed__calloc(ctx, 1, sizeof *opt);
  if (!opt) return lvmmed__fail(ctx, LVMMED_ERR_OUT_OF_MEMORY, "lvmmed_optimizer_create: out of memory");
  opt->ctx = lvmmed_ctx_retain(ctx);
  opt->method = method;
  for (int o = LVMMED_OPTIM_OPT_LR; o <= LVMMED_OPTIM_OPT_GAMMA; o++)
    opt->opt[o] = method == LVMMED_OPTIM_SGD ? specs[o].sgd : method == LVMMED_OPTIM_ADAM ? specs[o].adam
                                                                                          : specs[o].lars;
  *out = opt;
  return LVMMED_OK;
}

static void free_state_names(lvmmed_optimizer *opt) {
  if (!opt->state_names) return;
  size_t n = opt->nparams * lvmmed__optim_slots(opt->method);
  for (size_t i = 0; i < n; i++) lvmmed__free(opt->ctx, opt->state_names[i]);
  lvmmed__free(opt->ctx, opt->state_names);
  opt->state_names = NULL;
}

void lvmmed_optimizer_free(lvmmed_optimizer *opt) {
  if (!opt) return;
  lvmmed_ctx *ctx = opt->ctx;
  free_state_names(opt);
  for (size_t i = 0; i < opt->nparams; i++)
    for (unsigned s = 0; s < OPTIM_MAX_SLOTS; s++) lvmmed__free(ctx, opt->params[i].slot[s]);
  lvmmed__free(ctx, opt->params);
  lvmmed__free(ctx, opt);
  lvmmed_ctx_release(ctx);
}

lvmmed_ctx *lvmmed_optimizer_ctx(const lvmmed_optimizer *opt) { return opt ? opt->ctx : NULL; }

lvmmed_status lvmmed_optim_option_bounds(lvmmed_optim_option option, double *min_value, double *max_value) {
  if (!min_value || !max_value || !known_option(option)) return LVMMED_ERR_INVALID_ARGUMENT;
  *min_value = specs[option].lo;
  *max_value = specs[option].hi;
  return LVMMED_OK;
}

lvmmed_status lvmmed_optimizer_set_option(lvmmed_optimizer *opt, lvmmed_optim_option option, double value) {
  if (!opt) return LVMMED_ERR_INVALID_ARGUMENT;
  if (!known_option(option))
    return lvmmed__fail(opt->ctx, LVMMED_ERR_INVALID_ARGUMENT, "lvmmed_optimizer_set_option: unknown option %d",
                        (int)option);
  const option_spec *s = &specs[option];
  if (!(value >= s->lo && value <= s->hi))
    return lvmmed__fail(opt->ctx, LVMMED_ERR_OUT_OF_RANGE, "lvmmed_optimizer_set_option: %s = %g outside [%g, %g]",
                        s->name, value, s->lo, s->hi);
  if (s->integral && value != floor(value))
    return lvmmed__fail(opt->ctx, LVMMED_ERR_OUT_OF_RANGE, "lvmmed_optimizer_set_option: %s = %g is not a whole number",
                        s->name, value);
  opt->opt[option] = value;
  return LVMMED_OK;
}

lvmmed_status lvmmed_optimizer_get_option(const lvmmed_optimizer *opt, lvmmed_optim_option option, double *value) {
  if (!opt || !value) return LVMMED_ERR_INVALID_ARGUMENT;
  if (!known_option(option))
    return lvmmed__fail(opt->ctx, LVMMED_ERR_INVALID_ARGUMENT, "lvmmed_optimizer_get_option: unknown option %d",
                        (int)option);
  *value = opt->opt[option];
  return LVMMED_OK;
}

lvmmed_status lvmmed_optimizer_add_param(lvmmed_optimizer *opt, const char *name, float *data, const float *grad,
                                         size_t count, unsigned flags) {
  if (!opt) return LVMMED_ERR_INVALID_ARGUMENT;
  lvmmed_ctx *ctx = opt->ctx;
  if (!name || !data || !grad || count == 0)
    return lvmmed__fail(ctx, LVMMED_ERR_INVALID_ARGUMENT,
                        "lvmmed_optimizer_add_param: name, data and grad must be set and count > 0");
  size_t len = strlen(name);
  if (len == 0 || len >= OPTIM_NAME_MAX)
    return lvmmed__fail(ctx, LVMMED_ERR_INVALID_ARGUMENT, "lvmmed_optimizer_add_param: name length %zu not in [1, %d]",
                        len, OPTIM_NAME_MAX - 1);
  if (flags & ~(unsigned)(LVMMED_PARAM_NO_WEIGHT_DECAY | LVMMED_PARAM_NO_ADAPT))
    return lvmmed__fail(ctx, LVMMED_ERR_INVALID_ARGUMENT, "lvmmed_optimizer_add_param: unknown flags 0x%x", flags);
  if (opt->steps > 0)
    return lvmmed__fail(ctx, LVMMED_ERR_STATE, "lvmmed_optimizer_add_param: '%s' added after the first step", name);
  for (size_t i = 0; i < opt->nparams; i++)
    if (!strcmp(opt->params[i].name, name))
      return lvmmed__fail(ctx, LVMMED_ERR_INVALID_ARGUMENT, "lvmmed_optimizer_add_param: '%s' is already registered",
                          name);
  if (opt->nparams == opt->cap) {
    size_t ncap = opt->cap ? opt->cap * 2 : 64;
    optim_param *np = lvmmed__calloc(ctx, ncap, sizeof *np);
    if (!np) return lvmmed__fail(ctx, LVMMED_ERR_OUT_OF_MEMORY, "lvmmed_optimizer_add_param: out of memory");
    if (opt->nparams) memcpy(np, opt->params, opt->nparams * sizeof *np);
    lvmmed__free(ctx, opt->params);
    opt->params = np;
    opt->cap = ncap;
  }
  optim_param p;
  memset(&p, 0, sizeof p);
  memcpy(p.name, name, len + 1);
  p.data = data;
  p.grad = grad;
  p.count = count;
  p.flags = flags;
  for (unsigned s = 0; s < lvmmed__optim_slots(opt->method); s++) {
    p.slot[s] = lvmmed__calloc(ctx, count, sizeof(float));
    if (!p.slot[s]) {
      for (unsigned t = 0; t < s; t++) lvmmed__free(ctx, p.slot[t]);
      return lvmmed__fail(ctx, LVMMED_ERR_OUT_OF_MEMORY, "lvmmed_optimizer_add_param: no memory for the state of '%s'",
                          name);
    }
  }
  free_state_names(opt); /* indices shift: rebuild on demand */
  opt->params[opt->nparams++] = p;
  return LVMMED_OK;
}

/* ---- updates ---- */

typedef struct update_job {
  const lvmmed_optimizer *opt;
  optim_param *p;
  float lr, wd, mom, b1, b2, eps, step_size, bc2_sqrt, scale;
  float one_minus_b1, one_minus_b2, decay; /* rounded from double, as PyTorch's scalars are */
} update_job;

static void sgd_range(void *arg, size_t begin, size_t end, unsigned chunk) {
  (void)chunk;
  const update_job *j = arg;
  float *w = j->p->data, *buf = j->p->slot[0];
  const float *g = j->p->grad;
  int nesterov = j->opt->opt[LVMMED_OPTIM_OPT_NESTEROV] != 0.0;
  for (size_t i = begin; i < end; i++) {
    float d = g[i];
    if (j->wd != 0.0f) d = d + j->wd * w[i];
    if (j->mom != 0.0f) {
      buf[i] = j->mom * buf[i] + d;
      d = nesterov ? d + j->mom * buf[i] : buf[i];
    }
    w[i] = w[i] + (-j->lr) * d;
  }
}

static void adam_range(void *arg, size_t begin, size_t end, unsigned chunk) {
  (void)chunk;
  const update_job *j = arg;
  float *w = j->p->data, *m = j->p->slot[0], *v = j->p->slot[1];
  const float *g = j->p->grad;
  int decoupled = j->opt->opt[LVMMED_OPTIM_OPT_DECOUPLED] != 0.0;
  for (size_t i = begin; i < end; i++) {
    float d = g[i];
    if (j->wd != 0.0f) {
      if (decoupled)
        w[i] = w[i] * j->decay;
      else
        d = d + j->wd * w[i];
    }
    m[i] = m[i] * j->b1 + j->one_minus_b1 * d;
    v[i] = v[i] * j->b2 + j->one_minus_b2 * d * d;
    float denom = sqrtf(v[i]) / j->bc2_sqrt + j->eps;
    w[i] = w[i] + (-j->step_size) * (m[i] / denom);
  }
}

static void lars_range(void *arg, size_t begin, size_t end, unsigned chunk) {
  (void)chunk;
  const update_job *j = arg;
  float *w = j->p->data, *buf = j->p->slot[0];
  const float *g = j->p->grad;
  for (size_t i = begin; i < end; i++) {
    float d = (g[i] + j->wd * w[i]) * j->scale;
    buf[i] = j->mom * buf[i] + d;
    w[i] = w[i] - j->lr * buf[i];
  }
}

/* LARS trust ratio: both norms in double, one pass, fixed order. */
static float lars_scale(const optim_param *p, float wd, double eta) {
  double pn = 0, gn = 0;
  for (size_t i = 0; i < p->count; i++) {
    double w = p->data[i], d = (double)(p->grad[i] + wd * p->data[i]);
    pn += w * w;
    gn += d * d;
  }
  if (pn <= 0.0 || gn <= 0.0) return 1.0f;
  return (float)(eta * sqrt(pn) / sqrt(gn));
}

/* Non-finite check of one gradient, in parallel chunks: branch-free so it vectorises
 * (a gradient read costs as much as the update itself). */
typedef struct finite_job {
  const float *x;
  int bad[FINITE_MAX_CHUNKS];
} finite_job;

static void finite_range(void *arg, size_t begin, size_t end, unsigned chunk) {
  finite_job *j = arg;
  int bad = 0;
  for (size_t i = begin; i < end; i++) bad |= !(fabsf(j->x[i]) <= FLT_MAX);
  j->bad[chunk] = bad;
}

static int all_finite(lvmmed_ctx *ctx, const float *x, size_t n) {
  finite_job j;
  j.x = x;
  unsigned chunks = lvmmed__parallel_chunks(ctx, n, UPDATE_MIN_CHUNK);
  if (chunks > FINITE_MAX_CHUNKS) {
    finite_range(&j, 0, n, 0);
    return !j.bad[0];
  }
  memset(j.bad, 0, sizeof j.bad);
  lvmmed__parallel_for(ctx, n, UPDATE_MIN_CHUNK, finite_range, &j);
  for (unsigned c = 0; c < chunks; c++)
    if (j.bad[c]) return 0;
  return 1;
}

lvmmed_status lvmmed_optimizer_step(lvmmed_optimizer *opt) {
  if (!opt) return LVMMED_ERR_INVALID_ARGUMENT;
  for (size_t i = 0; i < opt->nparams; i++)
    if (!all_finite(opt->ctx, opt->params[i].grad, opt->params[i].count))
      return lvmmed__fail(opt->ctx, LVMMED_ERR_NUMERIC,
                          "lvmmed_optimizer_step: gradient of '%s' is not finite (step %llu)",
                          opt->params[i].name, (unsigned long long)opt->steps);
  const double *o = opt->opt;
  double lr = lvmmed__optim_lr_at(opt, opt->steps);
  double t = (double)(opt->steps + 1);
  double bc1 = 1.0 - pow(o[LVMMED_OPTIM_OPT_BETA1], t), bc2 = 1.0 - pow(o[LVMMED_OPTIM_OPT_BETA2], t);
  for (size_t i = 0; i < opt->nparams; i++) {
    optim_param *p = &opt->params[i];
    int no_decay = (p->flags & LVMMED_PARAM_NO_WEIGHT_DECAY) ||
                   (opt->method == LVMMED_OPTIM_LARS && (p->flags & LVMMED_PARAM_NO_ADAPT));
    update_job j = {
        .opt = opt,
        .p = p,
        .lr = (float)lr,
        .wd = no_decay ? 0.0f : (float)o[LVMMED_OPTIM_OPT_WEIGHT_DECAY],
        .mom = (float)o[LVMMED_OPTIM_OPT_MOMENTUM],
        .b1 = (float)o[LVMMED_OPTIM_OPT_BETA1],
        .b2 = (float)o[LVMMED_OPTIM_OPT_BETA2],
        .eps = (float)o[LVMMED_OPTIM_OPT_EPS],
        .step_size = (float)(lr / bc1),
        .bc2_sqrt = (float)sqrt(bc2),
        .scale = 1.0f,
    };
    j.one_minus_b1 = (float)(1.0 - o[LVMMED_OPTIM_OPT_BETA1]);
    j.one_minus_b2 = (float)(1.0 - o[LVMMED_OPTIM_OPT_BETA2]);
    j.decay = (float)(1.0 - lr * j.wd);
    lvmmed_range_fn fn = sgd_range;
    if (opt->method == LVMMED_OPTIM_ADAM) {
      fn = adam_range;
    } else if (opt->method == LVMMED_OPTIM_LARS) {
      fn = lars_range;
      if (!(p->flags & LVMMED_PARAM_NO_ADAPT)) j.scale = lars_scale(p, j.wd, o[LVMMED_OPTIM_OPT_TRUST]);
    }
    lvmmed__parallel_for(opt->ctx, p->count, UPDATE_MIN_CHUNK, fn, &j);
  }
  opt->steps++;
  return LVMMED_OK;
}

lvmmed_status lvmmed_optimizer_lr(const lvmmed_optimizer *opt, double *lr) {
  if (!opt || !lr) return LVMMED_ERR_INVALID_ARGUMENT;
  *lr = lvmmed__optim_lr_at(opt, opt->steps);
  return LVMMED_OK;
}

lvmmed_status lvmmed_optimizer_lr_at(const lvmmed_optimizer *opt, uint64_t step, double *lr) {
  if (!opt || !lr) return LVMMED_ERR_INVALID_ARGUMENT;
  *lr = lvmmed__optim_lr_at(opt, step);
  return LVMMED_OK;
}

uint64_t lvmmed_optimizer_steps(const lvmmed_optimizer *opt) { return opt ? opt->steps : 0; }

lvmmed_status lvmmed_optimizer_set_steps(lvmmed_optimizer *opt, uint64_t steps) {
  if (!opt) return LVMMED_ERR_INVALID_ARGUMENT;
  opt->steps = steps;
  return LVMMED_OK;
}

size_t lvmmed_optimizer_state_count(const lvmmed_optimizer *opt) {
  return opt ? opt->nparams * lvmmed__optim_slots(opt->method) : 0;
}

lvmmed_status lvmmed_optimizer_state(lvmmed_optimizer *opt, size_t i, const char **name, float **data,
                                     size_t *count) {
  if (!opt) return LVMMED_ERR_INVALID_ARGUMENT;
  unsigned slots = lvmmed__optim_slots(opt->method);
  size_t n = opt->nparams * slots;
  if (i >= n)
    return lvmmed__fail(opt->ctx, LVMMED_ERR_OUT_OF_RANGE, "lvmmed_optimizer_state: index %zu >= %zu", i, n);
  const optim_param *p = &opt->params[i / slots];
  unsigned s = (unsigned)(i % slots);
  if (name) {
    if (!opt->state_names) {
      opt->state_names = lvmmed__calloc(opt->ctx, n, sizeof *opt->state_names);
      if (!opt->state_names) return lvmmed__fail(opt->ctx, LVMMED_ERR_OUT_OF_MEMORY, "lvmmed_optimizer_state: out of memory");
    }
    if (!opt->state_names[i]) {
      const char *slot = slot_name(opt->method, s);
      size_t len = strlen(p->name) + 1 + strlen(slot) + 1;
      char *nm = lvmmed__alloc(opt->ctx, len);
      if (!nm) return lvmmed__fail(opt->ctx, LVMMED_ERR_OUT_OF_MEMORY, "lvmmed_optimizer_state: out of memory");
      snprintf(nm, len, "%s.%s", p->name, slot);
      opt->state_names[i] = nm;
    }
    *name = opt->state_names[i];
  }
  if (data) *data = p->slot[s];
  if (count) *count = p->count;
  return LVMMED_OK;
}
