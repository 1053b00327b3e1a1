/* The LVM-Med pretraining step (METHOD.md §8) composed from the public handles. */
#include <math.h>
#include <string.h>
#include <time.h>

#include "image/dataset_impl.h"
#include "train/pretrainer_impl.h"

/* ---- options ---- */

typedef struct pt_option_info {
  double min, max, def;
} pt_option_info;

static const pt_option_info pt_options[PT_NOPT] = {
    [LVMMED_PRETRAIN_OPT_ARCH] = {LVMMED_ARCH_RESNET18, LVMMED_ARCH_RESNET50, LVMMED_ARCH_RESNET50},
    [LVMMED_PRETRAIN_OPT_OPTIMIZER] = {LVMMED_OPTIM_SGD, LVMMED_OPTIM_LARS, LVMMED_OPTIM_ADAM},
    [LVMMED_PRETRAIN_OPT_FROZEN_BN] = {0, 1, 0},
    [LVMMED_PRETRAIN_OPT_LOCAL_TERM] = {0, 1, 1},
    [LVMMED_PRETRAIN_OPT_BATCH] = {2, 65536, 32},
};

static int valid_option(int option) {
  return option >= LVMMED_PRETRAIN_OPT_ARCH && option <= LVMMED_PRETRAIN_OPT_BATCH;
}

lvmmed_status lvmmed_pretrainer_option_bounds(lvmmed_pretrain_option option, double *min_value,
                                              double *max_value) {
  if (!valid_option((int)option) || !min_value || !max_value) return LVMMED_ERR_INVALID_ARGUMENT;
  *min_value = pt_options[option].min;
  *max_value = pt_options[option].max;
  return LVMMED_OK;
}

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- components ---- */

static lvmmed_status new_backbone(lvmmed_pretrainer *pt, lvmmed_arch arch) {
  lvmmed_backbone *bb = NULL;
  lvmmed_status st = lvmmed_backbone_create(pt->ctx, arch, 3, &bb);
  if (st != LVMMED_OK) return st;
  lvmmed_backbone_free(pt->bb);
  pt->bb = bb;
  return LVMMED_OK;
}

static lvmmed_status new_optimizer(lvmmed_pretrainer *pt, lvmmed_optim_method method) {
  lvmmed_optimizer *opt = NULL;
  lvmmed_status st = lvmmed_optimizer_create(pt->ctx, method, &opt);
  if (st != LVMMED_OK) return st;
  lvmmed_optimizer_free(pt->optim);
  pt->optim = opt;
  return LVMMED_OK;
}

lvmmed_status lvmmed__pt_sync_solvers(lvmmed_pretrainer *pt) {
  size_t want = lvmmed__ctx_threads(pt->ctx);
  if (want > pt->nsolvers) {
    lvmmed_gm_solver **s = lvmmed__calloc(pt->ctx, want, sizeof *s);
    if (!s) return lvmmed__fail(pt->ctx, LVMMED_ERR_OUT_OF_MEMORY, "lvmmed_pretrainer: no memory for solvers");
    if (pt->nsolvers) memcpy(s, pt->solvers, pt->nsolvers * sizeof *s);
    for (size_t i = pt->nsolvers; i < want; i++) {
      lvmmed_status st = lvmmed_gm_solver_create(pt->ctx, &s[i]);
      if (st != LVMMED_OK) {
        for (size_t j = pt->nsolvers; j < i; j++) lvmmed_gm_solver_free(s[j]);
        lvmmed__free(pt->ctx, s);
        return st;
      }
    }
    lvmmed__free(pt->ctx, pt->solvers);
    pt->solvers = s;
    pt->nsolvers = want;
  }
  /* Lane 0 is the one users configure; the others follow it. */
  for (int o = LVMMED_GM_OPT_METHOD; o <= LVMMED_GM_OPT_MAXIMIZE; o++) {
    int64_t v;
    if (lvmmed_gm_solver_get_option(pt->solvers[0], (lvmmed_gm_option)o, &v) != LVMMED_OK) continue;
    for (size_t i = 1; i < pt->nsolvers; i++)
      lvmmed_gm_solver_set_option(pt->solvers[i], (lvmmed_gm_option)o, v);
  }
  return LVMMED_OK;
}

lvmmed_status lvmmed_pretrainer_create(lvmmed_ctx *ctx, lvmmed_pretrainer **out) {
  if (out) *out = NULL;
  if (!ctx || !out) return lvmmed__fail(ctx, LVMMED_ERR_INVALID_ARGUMENT, "lvmmed_pretrainer_create: NULL argument");
  lvmmed_pretrainer *pt = lvmmed__calloc(ctx, 1, sizeof *pt);
  if (!pt) return lvmmed__fail(ctx, LVMMED_ERR_OUT_OF_MEMORY, "lvmmed_pretrainer_create: no memory");
  pt->ctx = lvmmed_ctx_retain(ctx);
  for (int o = 1; o < PT_NOPT; o++) pt->opt[o] = pt_options[o].def;
  pt->loss = NAN;
  lvmmed_status st = new_backbone(pt, (lvmmed_arch)pt->opt[LVMMED_PRETRAIN_OPT_ARCH]);
  if (st == LVMMED_OK) st = lvmmed_affinity_create(ctx, &pt->aff);
  if (st == LVMMED_OK) st = lvmmed_imle_create(ctx, &pt->imle);
  if (st == LVMMED_OK) st = new_optimizer(pt, (lvmmed_optim_method)pt->opt[LVMMED_PRETRAIN_OPT_OPTIMIZER]);
  if (st == LVMMED_OK) st = lvmmed__pt_sync_solvers(pt);
  if (st != LVMMED_OK) {
    lvmmed_pretrainer_free(pt);
    return st;
  }
  *out = pt;
  return LVMMED_OK;
}

void lvmmed_pretrainer_free(lvmmed_pretrainer *pt) {
  if (!pt) return;
  lvmmed_ctx *ctx = pt->ctx;
  lvmmed_backbone_free(pt->bb);
  lvmmed_affinity_free(pt->aff);
  lvmmed_imle_free(pt->imle);
  lvmmed_optimizer_free(pt->optim);
  for (size_t i = 0; i < pt->nsolvers; i++) lvmmed_gm_solver_free(pt->solvers[i]);
  lvmmed__free(ctx, pt->solvers);
  lvmmed__free(ctx, pt->work);
  lvmmed__free(ctx, pt->input);
  lvmmed__free(ctx, pt);
  lvmmed_ctx_release(ctx);
}

void lvmmed__pt_swap(lvmmed_pretrainer *a, lvmmed_pretrainer *b) {
  lvmmed_pretrainer t = *a;
  *a = *b;
  *b = t;
  /* the contexts are the same object; keep each one's reference where it was */
  lvmmed_ctx *c = a->ctx;
  a->ctx = b->ctx;
  b->ctx = c;
}

lvmmed_ctx *lvmmed_pretrainer_ctx(const lvmmed_pretrainer *pt) { return pt ? pt->ctx : NULL; }
lvmmed_backbone *lvmmed_pretrainer_backbone(lvmmed_pretrainer *pt) { return pt ? pt->bb : NULL; }
lvmmed_affinity *lvmmed_pretrainer_affinity(lvmmed_pretrainer *pt) { return pt ? pt->aff : NULL; }
lvmmed_imle *lvmmed_pretrainer_imle(lvmmed_pretrainer *pt) { return pt ? pt->imle : NULL; }
lvmmed_optimizer *lvmmed_pretrainer_optimizer(lvmmed_pretrainer *pt) { return pt ? pt->optim : NULL; }
lvmmed_gm_solver *lvmmed_pretrainer_solver(lvmmed_pretrainer *pt) {
  return pt && pt->nsolvers ? pt->solvers[0] : NULL;
}

lvmmed_status lvmmed_pretrainer_set_option(lvmmed_pretrainer *pt, lvmmed_pretrain_option option,
                                           double value) {
  if (!pt) return LVMMED_ERR_INVALID_ARGUMENT;
  if (!valid_option((int)option))
    return lvmmed__fail(pt->ctx, LVMMED_ERR_INVALID_ARGUMENT, "lvmmed_pretrainer_set_option: unknown option %d", (int)option);
  const pt_option_info *info = &pt_options[option];
  if (!(value >= info->min && value <= info->max) || value != floor(value))
    return lvmmed__fail(pt->ctx, LVMMED_ERR_OUT_OF_RANGE,
                        "lvmmed_pretrainer_set_option: option %d = %g outside [%g, %g] or not whole",
                        (int)option, value, info->min, info->max);
  if (value == pt->opt[option]) return LVMMED_OK;
  if (option == LVMMED_PRETRAIN_OPT_ARCH || option == LVMMED_PRETRAIN_OPT_OPTIMIZER) {
    if (pt->prepared)
      return lvmmed__fail(pt->ctx, LVMMED_ERR_STATE,
                          "lvmmed_pretrainer_set_option: the %s is fixed after the first step",
                          option == LVMMED_PRETRAIN_OPT_ARCH ? "architecture" : "optimizer");
    lvmmed_status st = option == LVMMED_PRETRAIN_OPT_ARCH ? new_backbone(pt, (lvmmed_arch)value)
                                                         : new_optimizer(pt, (lvmmed_optim_method)value);
    if (st != LVMMED_OK) return st;
  }
  pt->opt[option] = value;
  return LVMMED_OK;
}

lvmmed_status lvmmed_pretrainer_get_option(const lvmmed_pretrainer *pt, lvmmed_pretrain_option option,
                                           double *value) {
  if (!pt || !value) return LVMMED_ERR_INVALID_ARGUMENT;
  if (!valid_option((int)option))
    return lvmmed__fail(pt->ctx, LVMMED_ERR_INVALID_ARGUMENT, "lvmmed_pretrainer_get_option: unknown option %d", (int)option);
  *value = pt->opt[option];
  return LVMMED_OK;
}

lvmmed_status lvmmed_pretrainer_stat(const lvmmed_pretrainer *pt, lvmmed_pretrain_stat stat,
                                     double *value) {
  if (!pt || !value) return LVMMED_ERR_INVALID_ARGUMENT;
  switch (stat) {
    case LVMMED_PRETRAIN_STAT_STEP: *value = (double)pt->step; return LVMMED_OK;
    case LVMMED_PRETRAIN_STAT_LOSS: *value = pt->loss; return LVMMED_OK;
    case LVMMED_PRETRAIN_STAT_LR: return lvmmed_optimizer_lr(pt->optim, value);
    case LVMMED_PRETRAIN_STAT_EPOCH: *value = (double)pt->epoch; return LVMMED_OK;
    case LVMMED_PRETRAIN_STAT_POSITION: *value = (double)pt->position; return LVMMED_OK;
    case LVMMED_PRETRAIN_STAT_IMAGES: *value = (double)pt->images; return LVMMED_OK;
    case LVMMED_PRETRAIN_STAT_GRAPHS: *value = (double)pt->graphs; return LVMMED_OK;
    case LVMMED_PRETRAIN_STAT_SECONDS_DATA:
    case LVMMED_PRETRAIN_STAT_SECONDS_BACKBONE:
    case LVMMED_PRETRAIN_STAT_SECONDS_GRAPH:
    case LVMMED_PRETRAIN_STAT_SECONDS_UPDATE:
      *value = pt->seconds[stat - LVMMED_PRETRAIN_STAT_SECONDS_DATA];
      return LVMMED_OK;
  }
  return lvmmed__fail(pt->ctx, LVMMED_ERR_INVALID_ARGUMENT, "lvmmed_pretrainer_stat: unknown counter %d", (int)stat);
}

lvmmed_status lvmmed_pretrainer_grid_shape(const lvmmed_pretrainer *pt, size_t height, size_t width,
                                           size_t *grid_h, size_t *grid_w) {
  if (!pt) return LVMMED_ERR_INVALID_ARGUMENT;
  return lvmmed_backbone_map_shape(pt->bb, height, width, NULL, grid_h, grid_w);
}

/* ---- registration ---- */

static pt_shape current_shape(const lvmmed_pretrainer *pt) {
  pt_shape s;
  memset(&s, 0, sizeof s);
  lvmmed_backbone_get_option(pt->bb, LVMMED_BACKBONE_OPT_PROJ_OUT, &s.proj_out);
  lvmmed_backbone_get_option(pt->bb, LVMMED_BACKBONE_OPT_PROJ_HIDDEN, &s.proj_hidden);
  lvmmed_affinity_get_option(pt->aff, LVMMED_AFFINITY_OPT_FEATURE_DIM, &s.feature_dim);
  lvmmed_affinity_get_option(pt->aff, LVMMED_AFFINITY_OPT_GCN_WIDTH, &s.gcn_width);
  lvmmed_affinity_get_option(pt->aff, LVMMED_AFFINITY_OPT_GCN_LAYERS, &s.gcn_layers);
  return s;
}

static size_t node_dim(const lvmmed_pretrainer *pt) {
  size_t f = lvmmed_backbone_projector_dim(pt->bb), d = 0;
  if (f) return f;
  lvmmed_backbone_info(pt->bb, NULL, NULL, &d); /* no projector: the pooled features are z */
  return d;
}

lvmmed_status lvmmed__pt_prepare(lvmmed_pretrainer *pt, const char *fn) {
  if (pt->prepared) {
    pt_shape s = current_shape(pt);
    if (memcmp(&s, &pt->shape, sizeof s) != 0)
      return lvmmed__fail(pt->ctx, LVMMED_ERR_STATE,
                          "%s: the projector or GCN shape changed after the first step", fn);
    return LVMMED_OK;
  }
  /* The GCN reads the projector's output. */
  double f = (double)node_dim(pt), have = 0;
  lvmmed_affinity_get_option(pt->aff, LVMMED_AFFINITY_OPT_FEATURE_DIM, &have);
  if (have != f) {
    lvmmed_status st = lvmmed_affinity_set_option(pt->aff, LVMMED_AFFINITY_OPT_FEATURE_DIM, f);
    if (st != LVMMED_OK) return st;
  }
  size_t n = lvmmed_backbone_tensor_count(pt->bb);
  for (size_t i = 0; i < n; i++) {
    const char *name;
    lvmmed_tensor_kind kind;
    size_t ndim, numel, shape[LVMMED_TENSOR_MAX_DIMS];
    float *data, *grad;
    lvmmed_status st = lvmmed_backbone_tensor(pt->bb, i, &name, &kind, &ndim, shape, &numel, &data, &grad);
    if (st != LVMMED_OK) return st;
    if (kind != LVMMED_TENSOR_PARAMETER) continue;
    /* LARS convention: biases and batch-norm affines are neither decayed nor adapted. */
    st = lvmmed_optimizer_add_param(pt->optim, name, data, grad, numel,
                                    ndim == 1 ? LVMMED_PARAM_NO_ADAPT : 0u);
    if (st != LVMMED_OK) return st;
  }
  size_t ng = lvmmed_affinity_param_count(pt->aff);
  for (size_t i = 0; i < ng; i++) {
    const char *name;
    size_t rows, cols;
    float *value, *grad;
    lvmmed_status st = lvmmed_affinity_param_info(pt->aff, i, &name, &rows, &cols);
    if (st == LVMMED_OK) st = lvmmed_affinity_param_data(pt->aff, i, &value, &grad);
    if (st == LVMMED_OK) st = lvmmed_optimizer_add_param(pt->optim, name, value, grad, rows * cols, 0u);
    if (st != LVMMED_OK) return st;
  }
  pt->shape = current_shape(pt);
  pt->prepared = 1;
  return LVMMED_OK;
}

/* ---- the step ---- */

typedef struct fb_buffers {
  float *pooled, *fmap, *z, *cv, *ce, *dcv, *dce, *dz, *dpooled, *dmap;
  int32_t *es, *et, *perm;
} fb_buffers;

/* Lays the step's buffers out in one reused block (each piece 64-byte aligned). */
static size_t carve(unsigned char *base, const size_t *bytes, size_t n, void **ptrs) {
  size_t off = 0;
  for (size_t i = 0; i < n; i++) {
    if (ptrs) ptrs[i] = bytes[i] ? base + off : NULL;
    off += (bytes[i] + 63) & ~(size_t)63;
  }
  return off;
}

static lvmmed_status forward_backward(lvmmed_pretrainer *pt, size_t batch, size_t height, size_t width,
                                      const float *x, const float *grids_s, const float *grids_t,
                                      double *loss_out, const char *fn) {
  lvmmed_ctx *ctx = pt->ctx;
  lvmmed_status st = lvmmed__pt_prepare(pt, fn);
  if (st == LVMMED_OK) st = lvmmed__pt_sync_solvers(pt);
  if (st != LVMMED_OK) return st;
  int local = pt->opt[LVMMED_PRETRAIN_OPT_LOCAL_TERM] != 0;
  size_t D, R, S, G, N, E, F = node_dim(pt);
  st = lvmmed_backbone_map_shape(pt->bb, height, width, &D, &R, &S);
  if (st == LVMMED_OK) st = lvmmed_affinity_shape(pt->aff, batch, &G, &N, &E, NULL);
  if (st != LVMMED_OK) return st;
  if (G == 0)
    return lvmmed__fail(ctx, LVMMED_ERR_SHAPE, "%s: batch %zu is smaller than one group of %zu images", fn, batch, N);
  if (local && (!grids_s || !grids_t))
    return lvmmed__fail(ctx, LVMMED_ERR_INVALID_ARGUMENT, "%s: the local term needs both location grids", fn);
  double samples = 1;
  lvmmed_imle_get_option(pt->imle, LVMMED_IMLE_OPT_SAMPLES, &samples);
  size_t B2 = 2 * batch, map = D * R * S, proj = lvmmed_backbone_projector_dim(pt->bb);
  size_t bytes[13] = {
      B2 * D * 4, local ? B2 * map * 4 : 0, proj ? B2 * F * 4 : 0, G * N * N * 4, G * E * E * 4,
      G * N * N * 4, G * E * E * 4, B2 * F * 4, proj ? B2 * D * 4 : 0, local ? B2 * map * 4 : 0,
      G * E * 2 * 4, G * E * 2 * 4, G * (size_t)samples * N * 4};
  void *p[13];
  size_t need = carve(NULL, bytes, 13, NULL);
  pt->work = lvmmed__grow(ctx, pt->work, &pt->work_cap, need);
  if (!pt->work) return lvmmed__fail(ctx, LVMMED_ERR_OUT_OF_MEMORY, "%s: no memory for %zu bytes of step buffers", fn, need);
  carve(pt->work, bytes, 13, p);
  fb_buffers b = {p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11], p[12]};
  if (!proj) { /* z is the pooled feature itself */
    b.z = b.pooled;
    b.dpooled = b.dz;
  }

  double t0 = now_seconds();
  st = lvmmed_backbone_zero_grad(pt->bb);
  if (st == LVMMED_OK) st = lvmmed_affinity_zero_grad(pt->aff);
  if (st == LVMMED_OK) st = lvmmed_backbone_set_option(pt->bb, LVMMED_BACKBONE_OPT_TRAIN, pt->opt[LVMMED_PRETRAIN_OPT_FROZEN_BN] ? 0 : 1);
  if (st == LVMMED_OK) st = lvmmed_backbone_set_option(pt->bb, LVMMED_BACKBONE_OPT_GRAD, 1);
  if (st == LVMMED_OK) st = lvmmed_backbone_forward(pt->bb, x, B2, height, width, b.pooled, b.fmap);
  if (st == LVMMED_OK && proj) st = lvmmed_backbone_project(pt->bb, b.pooled, B2, b.z);
  if (st != LVMMED_OK) return st;
  double t1 = now_seconds();

  const float *maps_t = local ? b.fmap + batch * map : NULL;
  st = lvmmed_affinity_forward(pt->aff, batch, b.z, b.z + batch * F, b.fmap, maps_t, D, R, S, grids_s,
                               grids_t, b.cv, b.ce, b.es, b.et);
  if (st == LVMMED_OK)
    st = lvmmed_imle_forward(pt->imle, pt->solvers, pt->nsolvers, G, N, b.cv, E, b.es, E, b.et, b.ce, b.perm);
  double loss = NAN;
  if (st == LVMMED_OK) st = lvmmed_imle_hamming_loss(pt->imle, &loss, NULL);
  if (st == LVMMED_OK) st = lvmmed_imle_backward(pt->imle, pt->solvers, pt->nsolvers, NULL, b.dcv, b.dce);
  if (st == LVMMED_OK)
    st = lvmmed_affinity_backward(pt->aff, b.dcv, b.dce, b.fmap, maps_t, b.dz, b.dz + batch * F, b.dmap,
                                  local ? b.dmap + batch * map : NULL);
  if (st != LVMMED_OK) return st;
  double t2 = now_seconds();

  if (proj) st = lvmmed_backbone_project_backward(pt->bb, b.dz, b.dpooled);
  if (st == LVMMED_OK) st = lvmmed_backbone_backward(pt->bb, b.dpooled, b.dmap, NULL);
  if (st != LVMMED_OK) return st;
  double t3 = now_seconds();

  pt->seconds[1] = (t1 - t0) + (t3 - t2);
  pt->seconds[2] = t2 - t1;
  pt->loss = loss;
  pt->graphs = G;
  pt->have_grad = 1;
  pt->last_batch = batch;
  pt->image_h = height;
  pt->image_w = width;
  if (loss_out) *loss_out = loss;
  return LVMMED_OK;
}

static lvmmed_status check_views(lvmmed_pretrainer *pt, size_t batch, size_t height, size_t width,
                                 const void *vs, const void *vt, const char *fn) {
  if (!vs || !vt)
    return lvmmed__fail(pt->ctx, LVMMED_ERR_INVALID_ARGUMENT, "%s: views_s and views_t are required", fn);
  size_t n;
  if (batch < 2 || height == 0 || width == 0 || !lvmmed__mul_size(batch, 6, &n) ||
      !lvmmed__mul_size(n, height, &n) || !lvmmed__mul_size(n, width, &n) || n > SIZE_MAX / 8)
    return lvmmed__fail(pt->ctx, LVMMED_ERR_SHAPE, "%s: bad batch shape %zu x 3 x %zu x %zu", fn, batch, height, width);
  return LVMMED_OK;
}

lvmmed_status lvmmed_pretrainer_forward_backward(lvmmed_pretrainer *pt, size_t batch, size_t height,
                                                 size_t width, const float *views_s, const float *views_t,
                                                 const float *grids_s, const float *grids_t, double *loss) {
  static const char fn[] = "lvmmed_pretrainer_forward_backward";
  if (!pt) return LVMMED_ERR_INVALID_ARGUMENT;
  lvmmed_status st = check_views(pt, batch, height, width, views_s, views_t, fn);
  if (st != LVMMED_OK) return st;
  /* One backbone pass over both views: batch statistics see all 2B images. */
  size_t img = 3 * height * width;
  pt->input = lvmmed__grow(pt->ctx, pt->input, &pt->input_cap, 2 * batch * img * sizeof(float));
  if (!pt->input) return lvmmed__fail(pt->ctx, LVMMED_ERR_OUT_OF_MEMORY, "%s: no memory for the views", fn);
  memcpy(pt->input, views_s, batch * img * sizeof(float));
  memcpy(pt->input + batch * img, views_t, batch * img * sizeof(float));
  pt->seconds[0] = 0;
  return forward_backward(pt, batch, height, width, pt->input, grids_s, grids_t, loss, fn);
}

lvmmed_status lvmmed_pretrainer_update(lvmmed_pretrainer *pt) {
  if (!pt) return LVMMED_ERR_INVALID_ARGUMENT;
  if (!pt->have_grad)
    return lvmmed__fail(pt->ctx, LVMMED_ERR_STATE, "lvmmed_pretrainer_update: no gradients (call forward_backward first)");
  double t0 = now_seconds();
  lvmmed_status st = lvmmed_optimizer_step(pt->optim);
  if (st != LVMMED_OK) return st;
  pt->seconds[3] = now_seconds() - t0;
  pt->have_grad = 0;
  pt->step++;
  pt->images += pt->last_batch;
  return LVMMED_OK;
}

lvmmed_status lvmmed_pretrainer_step(lvmmed_pretrainer *pt, size_t batch, size_t height, size_t width,
                                     const float *views_s, const float *views_t, const float *grids_s,
                                     const float *grids_t, double *loss) {
  lvmmed_status st = lvmmed_pretrainer_forward_backward(pt, batch, height, width, views_s, views_t,
                                                        grids_s, grids_t, loss);
  return st == LVMMED_OK ? lvmmed_pretrainer_update(pt) : st;
}

/* ---- from a dataset ---- */

/* Fills B images into the concatenated input, rolling over epochs; tracks (epoch, position). */
static lvmmed_status fill_from_dataset(lvmmed_pretrainer *pt, lvmmed_dataset *ds, size_t B, size_t img,
                                       size_t grid, const char *fn) {
  float *xs = pt->input, *xt = xs + B * img, *gs = xt + B * img, *gt = gs + B * grid;
  size_t have = 0;
  int restarts = 0;
  while (have < B) {
    int64_t epoch = -1, pos = 0, items = 0;
    lvmmed_dataset_stat(ds, LVMMED_DATASET_EPOCH, &epoch);
    lvmmed_dataset_stat(ds, LVMMED_DATASET_POSITION, &pos);
    lvmmed_dataset_stat(ds, LVMMED_DATASET_ITEMS, &items);
    if (pt->position >= (uint64_t)items) { /* this epoch is used up */
      if (pt->epoch + 1 >= LVMMED_AUG_MAX_EPOCH)
        return lvmmed__fail(pt->ctx, LVMMED_ERR_LIMIT, "%s: out of epochs", fn);
      pt->epoch++;
      pt->position = 0;
      if (++restarts > 2)
        return lvmmed__fail(pt->ctx, LVMMED_ERR_STATE, "%s: the dataset delivers no readable image", fn);
      continue;
    }
    if (epoch != (int64_t)pt->epoch || (uint64_t)pos != pt->position) {
      lvmmed_status st = lvmmed_dataset_start_epoch_at(ds, pt->epoch, pt->position);
      if (st != LVMMED_OK) return st;
    }
    size_t got = 0;
    lvmmed_status st = lvmmed_dataset_next_batch(ds, B - have, xs + have * img, xt + have * img,
                                                 gs + have * grid, gt + have * grid, NULL, &got);
    int64_t after = 0;
    lvmmed_dataset_stat(ds, LVMMED_DATASET_POSITION, &after);
    pt->position = (uint64_t)after;
    if (st != LVMMED_OK) return st;
    if (got) restarts = 0;
    if (got == 0) pt->position = (uint64_t)items; /* over: roll to the next epoch */
    have += got;
  }
  return LVMMED_OK;
}

lvmmed_status lvmmed_pretrainer_step_dataset(lvmmed_pretrainer *pt, lvmmed_dataset *ds, double *loss) {
  static const char fn[] = "lvmmed_pretrainer_step_dataset";
  if (!pt) return LVMMED_ERR_INVALID_ARGUMENT;
  if (!ds) return lvmmed__fail(pt->ctx, LVMMED_ERR_INVALID_ARGUMENT, "%s: dataset is NULL", fn);
  size_t B = (size_t)pt->opt[LVMMED_PRETRAIN_OPT_BATCH], img, grid;
  /* The dataset's augmenter fixes the view and grid sizes. */
  size_t side = (size_t)ds->cfg.opt[LVMMED_AUG_SIZE], gside = (size_t)ds->cfg.opt[LVMMED_AUG_GRID];
  img = 3 * side * side;
  grid = gside * gside * 2;
  size_t gh, gw;
  lvmmed_status st = lvmmed_backbone_map_shape(pt->bb, side, side, NULL, &gh, &gw);
  if (st != LVMMED_OK) return st;
  int local = pt->opt[LVMMED_PRETRAIN_OPT_LOCAL_TERM] != 0;
  if (local && grid != gh * gw * 2)
    return lvmmed__fail(pt->ctx, LVMMED_ERR_SHAPE,
                        "%s: the dataset's location grid has %zu cells, the backbone's %zux%zu map at %zu px needs "
                        "LVMMED_AUG_GRID = %zu",
                        fn, grid / 2, gh, gw, side, gh);
  pt->input = lvmmed__grow(pt->ctx, pt->input, &pt->input_cap, 2 * B * (img + grid) * sizeof(float));
  if (!pt->input) return lvmmed__fail(pt->ctx, LVMMED_ERR_OUT_OF_MEMORY, "%s: no memory for the views", fn);
  uint32_t epoch0 = pt->epoch;
  uint64_t pos0 = pt->position;
  double t0 = now_seconds();
  st = fill_from_dataset(pt, ds, B, img, grid, fn);
  if (st != LVMMED_OK) {
    pt->epoch = epoch0; /* the step did not happen: the next one retries these images */
    pt->position = pos0;
    return st;
  }
  double tdata = now_seconds() - t0;
  const float *gs = pt->input + 2 * B * img;
  st = forward_backward(pt, B, side, side, pt->input, local ? gs : NULL, local ? gs + B * grid : NULL, loss, fn);
  if (st == LVMMED_OK) st = lvmmed_pretrainer_update(pt);
  if (st != LVMMED_OK) {
    pt->epoch = epoch0;
    pt->position = pos0;
    return st;
  }
  pt->seconds[0] = tdata;
  return LVMMED_OK;
}
