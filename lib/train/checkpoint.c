/* Pretraining checkpoints: one safetensors file with every tensor, the optimizer
 * state, the counters and the configuration (see include/lvmmed/pretrain.h). */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backbone/backbone_impl.h"
#include "backbone/safetensors.h"
#include "train/pretrainer_impl.h"

#define CKPT_FORMAT "1"
#define CKPT_PREFIX "lvmmed."
#define CKPT_OPTIM_PREFIX "lvmmed.optim."

/* ---- the configuration: every option of the pretrainer and its components, by name ---- */

typedef struct opt_name {
  int id;
  const char *name;
} opt_name;

static const opt_name pretrainer_names[] = {
    {LVMMED_PRETRAIN_OPT_ARCH, "arch"},           {LVMMED_PRETRAIN_OPT_OPTIMIZER, "optimizer"},
    {LVMMED_PRETRAIN_OPT_FROZEN_BN, "frozen_bn"}, {LVMMED_PRETRAIN_OPT_LOCAL_TERM, "local_term"},
    {LVMMED_PRETRAIN_OPT_BATCH, "batch"},         {0, NULL}};
static const opt_name backbone_names[] = {
    {LVMMED_BACKBONE_OPT_PROJ_OUT, "proj_out"}, {LVMMED_BACKBONE_OPT_PROJ_HIDDEN, "proj_hidden"}, {0, NULL}};
static const opt_name affinity_names[] = {
    {LVMMED_AFFINITY_OPT_GROUP_SIZE, "group_size"}, {LVMMED_AFFINITY_OPT_KNN, "knn"},
    {LVMMED_AFFINITY_OPT_FEATURE_DIM, "feature_dim"}, {LVMMED_AFFINITY_OPT_GCN_WIDTH, "gcn_width"},
    {LVMMED_AFFINITY_OPT_GCN_LAYERS, "gcn_layers"}, {LVMMED_AFFINITY_OPT_GCN_RELU_LAST, "gcn_relu_last"},
    {LVMMED_AFFINITY_OPT_SYMMETRIZE, "symmetrize"}, {LVMMED_AFFINITY_OPT_ALPHA, "alpha"},
    {LVMMED_AFFINITY_OPT_GAMMA_LOC, "gamma_loc"}, {LVMMED_AFFINITY_OPT_GAMMA_FEAT, "gamma_feat"},
    {LVMMED_AFFINITY_OPT_LOCAL_NORM, "local_norm"}, {0, NULL}};
static const opt_name imle_names[] = {
    {LVMMED_IMLE_OPT_NOISE, "noise"},           {LVMMED_IMLE_OPT_NOISE_SCALE, "noise_scale"},
    {LVMMED_IMLE_OPT_SOG_KAPPA, "sog_kappa"},   {LVMMED_IMLE_OPT_SOG_TERMS, "sog_terms"},
    {LVMMED_IMLE_OPT_LAMBDA, "lambda"},         {LVMMED_IMLE_OPT_SAMPLES, "samples"},
    {LVMMED_IMLE_OPT_NOISE_EDGES, "noise_edges"}, {LVMMED_IMLE_OPT_REDUCTION, "reduction"}, {0, NULL}};
static const opt_name optim_names[] = {
    {LVMMED_OPTIM_OPT_LR, "lr"},
    {LVMMED_OPTIM_OPT_WEIGHT_DECAY, "weight_decay"},
    {LVMMED_OPTIM_OPT_MOMENTUM, "momentum"},
    {LVMMED_OPTIM_OPT_NESTEROV, "nesterov"},
    {LVMMED_OPTIM_OPT_BETA1, "beta1"},
    {LVMMED_OPTIM_OPT_BETA2, "beta2"},
    {LVMMED_OPTIM_OPT_EPS, "eps"},
    {LVMMED_OPTIM_OPT_DECOUPLED, "decoupled"},
    {LVMMED_OPTIM_OPT_TRUST, "trust"},
    {LVMMED_OPTIM_OPT_SCHEDULE, "schedule"},
    {LVMMED_OPTIM_OPT_WARMUP_STEPS, "warmup_steps"},
    {LVMMED_OPTIM_OPT_TOTAL_STEPS, "total_steps"},
    {LVMMED_OPTIM_OPT_MIN_LR_RATIO, "min_lr_ratio"},
    {LVMMED_OPTIM_OPT_STEP_EVERY, "step_every"},
    {LVMMED_OPTIM_OPT_GAMMA, "gamma"},
    {0, NULL}};
static const opt_name solver_names[] = {{LVMMED_GM_OPT_METHOD, "method"},
                                        {LVMMED_GM_OPT_MAX_ITER, "max_iter"},
                                        {LVMMED_GM_OPT_RESTARTS, "restarts"},
                                        {LVMMED_GM_OPT_MAXIMIZE, "maximize"},
                                        {0, NULL}};

typedef enum { PART_PRETRAINER, PART_BACKBONE, PART_AFFINITY, PART_IMLE, PART_OPTIM, PART_SOLVER, PART_COUNT } part_id;

static const struct {
  const char *name;
  const opt_name *options;
} parts[PART_COUNT] = {{"pretrainer", pretrainer_names}, {"backbone", backbone_names},
                       {"affinity", affinity_names},     {"imle", imle_names},
                       {"optimizer", optim_names},       {"solver", solver_names}};

static lvmmed_status get_part_option(lvmmed_pretrainer *pt, part_id part, int id, double *v) {
  int64_t i = 0;
  lvmmed_status st;
  switch (part) {
    case PART_PRETRAINER: return lvmmed_pretrainer_get_option(pt, (lvmmed_pretrain_option)id, v);
    case PART_BACKBONE:
      st = lvmmed_backbone_get_option(pt->bb, (lvmmed_backbone_option)id, &i);
      *v = (double)i;
      return st;
    case PART_AFFINITY: return lvmmed_affinity_get_option(pt->aff, (lvmmed_affinity_option)id, v);
    case PART_IMLE: return lvmmed_imle_get_option(pt->imle, (lvmmed_imle_option)id, v);
    case PART_OPTIM: return lvmmed_optimizer_get_option(pt->optim, (lvmmed_optim_option)id, v);
    case PART_SOLVER:
      st = lvmmed_gm_solver_get_option(pt->solvers[0], (lvmmed_gm_option)id, &i);
      *v = (double)i;
      return st;
    case PART_COUNT: break;
  }
  return LVMMED_ERR_INTERNAL;
}

static lvmmed_status set_part_option(lvmmed_pretrainer *pt, part_id part, int id, double v) {
  switch (part) {
    case PART_PRETRAINER: return lvmmed_pretrainer_set_option(pt, (lvmmed_pretrain_option)id, v);
    case PART_BACKBONE: /* integral and in range: check_config */
      return lvmmed_backbone_set_option(pt->bb, (lvmmed_backbone_option)id, (int64_t)v);
    case PART_AFFINITY: return lvmmed_affinity_set_option(pt->aff, (lvmmed_affinity_option)id, v);
    case PART_IMLE: return lvmmed_imle_set_option(pt->imle, (lvmmed_imle_option)id, v);
    case PART_OPTIM: return lvmmed_optimizer_set_option(pt->optim, (lvmmed_optim_option)id, v);
    case PART_SOLVER:
      return lvmmed_gm_solver_set_option(pt->solvers[0], (lvmmed_gm_option)id, (int64_t)v);
    case PART_COUNT: break;
  }
  return LVMMED_ERR_INTERNAL;
}

/* The accepted range of an option, from the static bounds functions (no handle needed);
 *integral is set for options stored as int64_t. */
static lvmmed_status part_bounds(part_id part, int id, double *lo, double *hi, int *integral) {
  int64_t a = 0, b = 0;
  lvmmed_status st;
  *integral = 0;
  switch (part) {
    case PART_PRETRAINER: return lvmmed_pretrainer_option_bounds((lvmmed_pretrain_option)id, lo, hi);
    case PART_AFFINITY: return lvmmed_affinity_option_bounds((lvmmed_affinity_option)id, lo, hi);
    case PART_IMLE: return lvmmed_imle_option_bounds((lvmmed_imle_option)id, lo, hi);
    case PART_OPTIM: return lvmmed_optim_option_bounds((lvmmed_optim_option)id, lo, hi);
    case PART_BACKBONE: st = lvmmed_backbone_option_bounds((lvmmed_backbone_option)id, &a, &b); break;
    case PART_SOLVER: st = lvmmed_gm_option_bounds((lvmmed_gm_option)id, &a, &b); break;
    default: return LVMMED_ERR_INTERNAL;
  }
  *lo = (double)a;
  *hi = (double)b;
  *integral = 1;
  return st;
}

/* Checks a configuration object against every option's range before any handle exists:
 * a bad file is refused cheaply and nothing is built from it. Unknown names are ignored
 * (a newer library may write more). */
static lvmmed_status check_config(lvmmed_ctx *ctx, json_t *root, const char *path) {
  if (!json_is_object(root)) return lvmmed__fail(ctx, LVMMED_ERR_FORMAT, "%s: lvmmed_config is not an object", path);
  for (int p = 0; p < PART_COUNT; p++) {
    json_t *obj = json_object_get(root, parts[p].name);
    if (!obj) continue;
    if (!json_is_object(obj))
      return lvmmed__fail(ctx, LVMMED_ERR_FORMAT, "%s: lvmmed_config.%s is not an object", path, parts[p].name);
    for (const opt_name *o = parts[p].options; o->name; o++) {
      json_t *v = json_object_get(obj, o->name);
      if (!v) continue;
      double lo = 0, hi = 0, x = json_is_number(v) ? json_number_value(v) : NAN;
      int integral = 0;
      if (part_bounds((part_id)p, o->id, &lo, &hi, &integral) != LVMMED_OK || !(x >= lo && x <= hi) ||
          (integral && x != floor(x)))
        return lvmmed__fail(ctx, LVMMED_ERR_FORMAT, "%s: lvmmed_config.%s.%s is not a number in [%g, %g]", path,
                            parts[p].name, o->name, lo, hi);
    }
  }
  return LVMMED_OK;
}

/* {"pretrainer": {"arch": 3, ...}, "backbone": {...}, ...} as compact JSON (caller frees). */
static char *config_json(lvmmed_pretrainer *pt) {
  json_t *root = json_object();
  for (int p = 0; root && p < PART_COUNT; p++) {
    json_t *obj = json_object();
    if (!obj || json_object_set_new(root, parts[p].name, obj) != 0) goto fail;
    for (const opt_name *o = parts[p].options; o->name; o++) {
      double v;
      if (get_part_option(pt, (part_id)p, o->id, &v) != LVMMED_OK) goto fail;
      if (json_object_set_new(obj, o->name, json_real(v)) != 0) goto fail;
    }
  }
  char *text = root ? json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
  json_decref(root);
  return text;
fail:
  json_decref(root);
  return NULL;
}

/* Applies a configuration that check_config accepted; the pretrainer options come first
 * (they replace components). A part or option missing from the file keeps its default. */
static lvmmed_status apply_config(lvmmed_pretrainer *pt, json_t *root, const char *path) {
  for (int p = 0; p < PART_COUNT; p++) {
    json_t *obj = json_object_get(root, parts[p].name);
    for (const opt_name *o = parts[p].options; obj && o->name; o++) {
      json_t *v = json_object_get(obj, o->name);
      if (!v) continue;
      double value = json_number_value(v);
      lvmmed_status st = set_part_option(pt, (part_id)p, o->id, value);
      if (st != LVMMED_OK)
        return lvmmed__fail(pt->ctx, LVMMED_ERR_FORMAT, "%s: lvmmed_config.%s.%s = %g is not accepted (%s)", path,
                            parts[p].name, o->name, value, lvmmed_status_name(st));
    }
  }
  return LVMMED_OK;
}

/* ---- saving ---- */

lvmmed_status lvmmed_pretrainer_save(lvmmed_pretrainer *pt, const char *path) {
  static const char fn[] = "lvmmed_pretrainer_save";
  if (!pt) return LVMMED_ERR_INVALID_ARGUMENT;
  lvmmed_ctx *ctx = pt->ctx;
  if (!path) return lvmmed__fail(ctx, LVMMED_ERR_INVALID_ARGUMENT, "%s: path is NULL", fn);
  lvmmed_status st = lvmmed__pt_prepare(pt, fn);
  if (st != LVMMED_OK) return st;
  const lvmmed_backbone *bb = pt->bb;
  size_t nbb = bb->ntensors + bb->ncounters, ngcn = lvmmed_affinity_param_count(pt->aff);
  size_t nstate = lvmmed_optimizer_state_count(pt->optim), cap = nbb + ngcn + nstate;
  lvmmed_st_entry *e = lvmmed__calloc(ctx, cap, sizeof *e);
  char **names = lvmmed__calloc(ctx, ngcn + nstate + 1, sizeof *names);
  char *config = config_json(pt);
  size_t k = 0, nn = 0;
  if (!e || !names || !config) {
    st = lvmmed__fail(ctx, LVMMED_ERR_OUT_OF_MEMORY, "%s: no memory", fn);
    goto out;
  }
  k = lvmmed__bb_state_entries(bb, e);
  for (size_t i = 0; i < ngcn; i++) {
    const char *name;
    size_t rows, cols;
    float *value, *grad;
    lvmmed_affinity_param_info(pt->aff, i, &name, &rows, &cols);
    lvmmed_affinity_param_data(pt->aff, i, &value, &grad);
    size_t len = strlen(CKPT_PREFIX) + strlen(name) + 1;
    if (!(names[nn] = lvmmed__alloc(ctx, len))) goto nomem;
    snprintf(names[nn], len, CKPT_PREFIX "%s", name);
    e[k] = (lvmmed_st_entry){.name = names[nn++], .ndim = 2, .shape = {rows, cols}, .f32 = value};
    k++;
  }
  for (size_t i = 0; i < nstate; i++) {
    const char *name;
    float *data;
    size_t count;
    lvmmed_optimizer_state(pt->optim, i, &name, &data, &count);
    size_t len = strlen(CKPT_OPTIM_PREFIX) + strlen(name) + 1;
    if (!(names[nn] = lvmmed__alloc(ctx, len))) goto nomem;
    snprintf(names[nn], len, CKPT_OPTIM_PREFIX "%s", name);
    e[k] = (lvmmed_st_entry){.name = names[nn++], .ndim = 1, .shape = {count}, .f32 = data};
    k++;
  }
  double counter = 0;
  lvmmed_imle_get_option(pt->imle, LVMMED_IMLE_OPT_NOISE_COUNTER, &counter);
  char num[9][32];
  snprintf(num[0], sizeof num[0], "%" PRIu64, pt->step);
  snprintf(num[1], sizeof num[1], "%" PRIu32, pt->epoch);
  snprintf(num[2], sizeof num[2], "%" PRIu64, pt->position);
  snprintf(num[3], sizeof num[3], "%" PRIu64, pt->images);
  snprintf(num[4], sizeof num[4], "%.0f", counter);
  snprintf(num[5], sizeof num[5], "%" PRIu64, lvmmed__ctx_seed(ctx));
  snprintf(num[6], sizeof num[6], "%u", lvmmed__ctx_threads(ctx));
  snprintf(num[7], sizeof num[7], "%zu", pt->image_h);
  snprintf(num[8], sizeof num[8], "%zu", pt->image_w);
  const char *meta[] = {"format", "pt",
                        "lvmmed_checkpoint", CKPT_FORMAT,
                        "lvmmed_arch", lvmmed__bb_arch_name(bb->arch),
                        "step", num[0],
                        "epoch", num[1],
                        "position", num[2],
                        "images", num[3],
                        "noise_counter", num[4],
                        "seed", num[5],
                        "threads", num[6],
                        "image_height", num[7],
                        "image_width", num[8],
                        "lvmmed_config", config};
  st = lvmmed__st_write(ctx, path, e, k, meta, sizeof meta / sizeof meta[0] / 2);
  goto out;
nomem:
  st = lvmmed__fail(ctx, LVMMED_ERR_OUT_OF_MEMORY, "%s: no memory", fn);
out:
  for (size_t i = 0; names && i < nn; i++) lvmmed__free(ctx, names[i]);
  lvmmed__free(ctx, names);
  lvmmed__free(ctx, e);
  free(config);
  return st;
}

/* ---- loading ---- */

static lvmmed_status meta_u64(lvmmed_ctx *ctx, json_t *meta, const char *key, uint64_t max, uint64_t *out,
                              const char *path) {
  const char *s = json_string_value(json_object_get(meta, key));
  if (!s) return lvmmed__fail(ctx, LVMMED_ERR_FORMAT, "%s: metadata \"%s\" is missing", path, key);
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s || *end || s[0] == '-' || v > max)
    return lvmmed__fail(ctx, LVMMED_ERR_FORMAT, "%s: metadata \"%s\" = \"%s\" is not a number in [0, %" PRIu64 "]",
                        path, key, s, max);
  *out = v;
  return LVMMED_OK;
}

/* Copies the float tensor called name (of count floats) from the file into dst. */
static lvmmed_status take_tensor(lvmmed_ctx *ctx, const lvmmed_st_file *file, const char *name, float *dst,
                                 size_t count, const char *path) {
  const lvmmed_st_tensor *t = lvmmed__st_find(file, name);
  if (!t) return lvmmed__fail(ctx, LVMMED_ERR_FORMAT, "%s: tensor \"%s\" is missing", path, name);
  if (t->numel != count)
    return lvmmed__fail(ctx, LVMMED_ERR_SHAPE, "%s: tensor \"%s\" has %zu values, expected %zu", path, name,
                        t->numel, count);
  if (!lvmmed__st_to_f32(t, dst))
    return lvmmed__fail(ctx, LVMMED_ERR_FORMAT, "%s: tensor \"%s\" is %s, not a float type", path, name,
                        t->dtype_name);
  for (size_t i = 0; i < count; i++)
    if (!isfinite(dst[i]))
      return lvmmed__fail(ctx, LVMMED_ERR_NUMERIC, "%s: tensor \"%s\" holds a non-finite value", path, name);
  return LVMMED_OK;
}

/* The run's counters, as the metadata holds them. */
typedef struct ckpt_counters {
  uint64_t step, epoch, position, images, noise_counter, image_h, image_w;
} ckpt_counters;

static lvmmed_status parse_counters(lvmmed_ctx *ctx, json_t *meta, const char *path, ckpt_counters *c) {
  memset(c, 0, sizeof *c);
  lvmmed_status st = meta_u64(ctx, meta, "step", UINT64_MAX, &c->step, path);
  if (st == LVMMED_OK) st = meta_u64(ctx, meta, "epoch", LVMMED_AUG_MAX_EPOCH - 1, &c->epoch, path);
  if (st == LVMMED_OK) st = meta_u64(ctx, meta, "position", UINT64_MAX, &c->position, path);
  if (st == LVMMED_OK) st = meta_u64(ctx, meta, "images", UINT64_MAX, &c->images, path);
  if (st == LVMMED_OK) st = meta_u64(ctx, meta, "noise_counter", ((uint64_t)1 << 40) - 1, &c->noise_counter, path);
  /* optional: absent (0) in files written before any step */
  if (st == LVMMED_OK && json_object_get(meta, "image_height") && json_object_get(meta, "image_width")) {
    st = meta_u64(ctx, meta, "image_height", 1u << 20, &c->image_h, path);
    if (st == LVMMED_OK) st = meta_u64(ctx, meta, "image_width", 1u << 20, &c->image_w, path);
  }
  return st;
}

lvmmed_status lvmmed__ckpt_check_meta(lvmmed_ctx *ctx, json_t *meta, const char *path) {
  if (!meta || !json_is_object(meta))
    return lvmmed__fail(ctx, LVMMED_ERR_FORMAT, "%s: not an lvmmed checkpoint (no metadata)", path);
  const char *format = json_string_value(json_object_get(meta, "lvmmed_checkpoint"));
  if (!format) return lvmmed__fail(ctx, LVMMED_ERR_FORMAT, "%s: not an lvmmed checkpoint (no \"lvmmed_checkpoint\" metadata)", path);
  if (strcmp(format, CKPT_FORMAT) != 0)
    return lvmmed__fail(ctx, LVMMED_ERR_UNSUPPORTED, "%s: checkpoint format %s; this library reads %s", path, format,
                        CKPT_FORMAT);
  ckpt_counters counters;
  lvmmed_status st = parse_counters(ctx, meta, path, &counters);
  if (st != LVMMED_OK) return st;
  const char *config_text = json_string_value(json_object_get(meta, "lvmmed_config"));
  if (!config_text) return lvmmed__fail(ctx, LVMMED_ERR_FORMAT, "%s: metadata \"lvmmed_config\" is missing", path);
  json_t *config = json_loads(config_text, JSON_REJECT_DUPLICATES, NULL);
  if (!config) return lvmmed__fail(ctx, LVMMED_ERR_FORMAT, "%s: lvmmed_config is not valid JSON", path);
  st = check_config(ctx, config, path);
  json_decref(config);
  return st;
}

/* Fills a fresh pretrainer from the parsed file (metadata already checked). */
static lvmmed_status restore(lvmmed_pretrainer *pt, const lvmmed_st_file *file, json_t *meta, const char *path) {
  lvmmed_ctx *ctx = pt->ctx;
  static const char fn[] = "lvmmed_pretrainer_load";
  json_t *config = json_loads(json_string_value(json_object_get(meta, "lvmmed_config")), JSON_REJECT_DUPLICATES, NULL);
  if (!config) return lvmmed__fail(ctx, LVMMED_ERR_FORMAT, "%s: lvmmed_config is not valid JSON", path);
  lvmmed_status st = apply_config(pt, config, path);
  json_decref(config);
  if (st == LVMMED_OK) st = lvmmed__pt_prepare(pt, fn);
  if (st != LVMMED_OK) return st;

  lvmmed_backbone *bb = pt->bb;
  for (size_t i = 0; i < bb->ntensors && st == LVMMED_OK; i++)
    st = take_tensor(ctx, file, bb->tensors[i].name, bb->tensors[i].data, bb->tensors[i].numel, path);
  for (size_t i = 0; i < bb->ncounters && st == LVMMED_OK; i++) {
    const lvmmed_st_tensor *t = lvmmed__st_find(file, bb->counters[i].name);
    int64_t v = 0;
    if (!t || t->numel != 1 || !lvmmed__st_to_i64(t, &v) || v < 0)
      st = lvmmed__fail(ctx, LVMMED_ERR_FORMAT, "%s: counter \"%s\" is missing or not a non-negative integer", path,
                        bb->counters[i].name);
    else
      *bb->counters[i].value = v;
  }
  char name[LVMMED_ST_NAME_MAX];
  size_t ngcn = lvmmed_affinity_param_count(pt->aff);
  for (size_t i = 0; i < ngcn && st == LVMMED_OK; i++) {
    const char *pname;
    size_t rows, cols;
    float *value, *grad;
    lvmmed_affinity_param_info(pt->aff, i, &pname, &rows, &cols);
    lvmmed_affinity_param_data(pt->aff, i, &value, &grad);
    snprintf(name, sizeof name, CKPT_PREFIX "%s", pname);
    st = take_tensor(ctx, file, name, value, rows * cols, path);
  }
  size_t nstate = lvmmed_optimizer_state_count(pt->optim);
  for (size_t i = 0; i < nstate && st == LVMMED_OK; i++) {
    const char *sname;
    float *data;
    size_t count;
    lvmmed_optimizer_state(pt->optim, i, &sname, &data, &count);
    snprintf(name, sizeof name, CKPT_OPTIM_PREFIX "%s", sname);
    st = take_tensor(ctx, file, name, data, count, path);
  }
  if (st != LVMMED_OK) return st;

  ckpt_counters k;
  st = parse_counters(ctx, meta, path, &k);
  if (st == LVMMED_OK) st = lvmmed_imle_set_option(pt->imle, LVMMED_IMLE_OPT_NOISE_COUNTER, (double)k.noise_counter);
  if (st == LVMMED_OK) st = lvmmed_optimizer_set_steps(pt->optim, k.step);
  if (st != LVMMED_OK) return st;
  pt->step = k.step;
  pt->epoch = (uint32_t)k.epoch;
  pt->position = k.position;
  pt->images = k.images;
  pt->image_h = (size_t)k.image_h;
  pt->image_w = (size_t)k.image_w;

  uint64_t seed = 0, threads = 0;
  if (meta_u64(ctx, meta, "seed", UINT64_MAX, &seed, path) == LVMMED_OK && seed != lvmmed__ctx_seed(ctx))
    lvmmed__log(ctx, LVMMED_LOG_WARN,
                "%s: written with seed %" PRIu64 ", the context has %" PRIu64 ": the run will not continue identically",
                path, seed, lvmmed__ctx_seed(ctx));
  if (meta_u64(ctx, meta, "threads", 1u << 20, &threads, path) == LVMMED_OK && threads != lvmmed__ctx_threads(ctx))
    lvmmed__log(ctx, LVMMED_LOG_WARN,
                "%s: written with %" PRIu64 " threads, the context has %u: results may differ in the last bits",
                path, threads, lvmmed__ctx_threads(ctx));
  lvmmed_ctx_clear_error(ctx);
  return LVMMED_OK;
}

lvmmed_status lvmmed_pretrainer_load(lvmmed_pretrainer *pt, const char *path) {
  if (!pt) return LVMMED_ERR_INVALID_ARGUMENT;
  lvmmed_ctx *ctx = pt->ctx;
  if (!path) return lvmmed__fail(ctx, LVMMED_ERR_INVALID_ARGUMENT, "lvmmed_pretrainer_load: path is NULL");
  unsigned char *bytes = NULL;
  size_t size = 0;
  lvmmed_status st = lvmmed__st_read_file(ctx, path, &bytes, &size);
  if (st != LVMMED_OK) return st;
  lvmmed_st_file file;
  memset(&file, 0, sizeof file);
  st = lvmmed__st_parse(ctx, bytes, size, path, &file);
  json_t *meta = st == LVMMED_OK ? lvmmed__st_metadata(bytes, size) : NULL;
  if (st == LVMMED_OK) st = lvmmed__ckpt_check_meta(ctx, meta, path);
  /* Everything is built in a fresh pretrainer and swapped in only when complete. */
  lvmmed_pretrainer *fresh = NULL;
  if (st == LVMMED_OK) st = lvmmed_pretrainer_create(ctx, &fresh);
  if (st == LVMMED_OK) st = restore(fresh, &file, meta, path);
  if (st == LVMMED_OK) lvmmed__pt_swap(pt, fresh);
  lvmmed_pretrainer_free(fresh);
  json_decref(meta);
  lvmmed__st_free(ctx, &file);
  lvmmed__free(ctx, bytes);
  return st;
}

/* ---- metadata without loading ---- */

lvmmed_status lvmmed_checkpoint_read_meta(lvmmed_ctx *ctx, const char *path, const char *key, char *value,
                                          size_t size) {
  static const char fn[] = "lvmmed_checkpoint_read_meta";
  if (!path || !key || !value || size == 0)
    return lvmmed__fail(ctx, LVMMED_ERR_INVALID_ARGUMENT, "%s: NULL argument or size 0", fn);
  value[0] = 0;
  FILE *f = fopen(path, "rb");
  if (!f) return lvmmed__fail(ctx, LVMMED_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  unsigned char len8[8];
  uint64_t hlen = 0;
  long fsize = -1;
  if (fread(len8, 1, 8, f) == 8) {
    for (int i = 0; i < 8; i++) hlen |= (uint64_t)len8[i] << (8 * i);
    if (fseek(f, 0, SEEK_END) == 0) fsize = ftell(f);
  }
  if (fsize < 8 || hlen > LVMMED_ST_HEADER_MAX || hlen > (uint64_t)fsize - 8 || fseek(f, 8, SEEK_SET) != 0) {
    fclose(f);
    return lvmmed__fail(ctx, LVMMED_ERR_FORMAT, "%s: not a safetensors file (bad header length)", path);
  }
  unsigned char *bytes = lvmmed__alloc(ctx, (size_t)hlen + 8);
  if (!bytes) {
    fclose(f);
    return lvmmed__fail(ctx, LVMMED_ERR_OUT_OF_MEMORY, "%s: no memory", fn);
  }
  memcpy(bytes, len8, 8);
  size_t got = fread(bytes + 8, 1, (size_t)hlen, f);
  fclose(f);
  json_t *meta = got == hlen ? lvmmed__st_metadata(bytes, (size_t)hlen + 8) : NULL;
  lvmmed__free(ctx, bytes);
  lvmmed_status st = LVMMED_OK;
  const char *s = meta ? json_string_value(json_object_get(meta, key)) : NULL;
  if (got != hlen)
    st = lvmmed__fail(ctx, LVMMED_ERR_IO, "%s: short read", path);
  else if (!s)
    st = lvmmed__fail(ctx, LVMMED_ERR_NOT_FOUND, "%s: no metadata \"%s\"", path, key);
  else if (strlen(s) >= size)
    st = lvmmed__fail(ctx, LVMMED_ERR_LIMIT, "%s: metadata \"%s\" needs %zu bytes", path, key, strlen(s) + 1);
  else
    memcpy(value, s, strlen(s) + 1);
  json_decref(meta);
  return st;
}
