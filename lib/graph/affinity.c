/* lvmmed_affinity: options, parameters, and the batched forward/backward that
 * strings kNN → GCN → c_glo, c_e, local term together over groups of images. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/pool.h"
#include "graph/affinity_impl.h"

/* ---- options ---- */

typedef struct opt_spec {
  double min, max, def;
  int integral;
} opt_spec;

#define OPT_LAST LVMMED_AFFINITY_OPT_LOCAL_NORM
static const opt_spec specs[OPT_LAST + 1] = {
    [LVMMED_AFFINITY_OPT_GROUP_SIZE] = {2, 4096, 16, 1},
    [LVMMED_AFFINITY_OPT_KNN] = {1, 4095, 5, 1},
    [LVMMED_AFFINITY_OPT_FEATURE_DIM] = {1, 65536, 128, 1},
    [LVMMED_AFFINITY_OPT_GCN_WIDTH] = {1, 65536, 128, 1},
    [LVMMED_AFFINITY_OPT_GCN_LAYERS] = {0, AFF_MAX_LAYERS, 2, 1},
    [LVMMED_AFFINITY_OPT_GCN_RELU_LAST] = {0, 1, 1, 1},
    [LVMMED_AFFINITY_OPT_SYMMETRIZE] = {0, 1, 1, 1},
    [LVMMED_AFFINITY_OPT_ALPHA] = {0, 1, 0.8, 0},
    [LVMMED_AFFINITY_OPT_GAMMA_LOC] = {1, 65535, 20, 1},
    [LVMMED_AFFINITY_OPT_GAMMA_FEAT] = {1, 65535, 49, 1},
    [LVMMED_AFFINITY_OPT_LOCAL_NORM] = {0, 2, LVMMED_LOCAL_NORM_MEAN, 1},
};

static int known_option(int option) { return option >= 1 && option <= OPT_LAST; }

lvmmed_status lvmmed_affinity_option_bounds(lvmmed_affinity_option option, double *min_value,
                                            double *max_value) {
  if (!known_option((int)option) || !min_value || !max_value) return LVMMED_ERR_INVALID_ARGUMENT;
  *min_value = specs[option].min;
  *max_value = specs[option].max;
  return LVMMED_OK;
}

/* ---- parameters ---- */

static void free_params(lvmmed_affinity *aff) {
  for (size_t l = 0; l < AFF_MAX_LAYERS; l++) {
    lvmmed__free(aff->ctx, aff->weight[l]);
    lvmmed__free(aff->ctx, aff->grad[l]);
    aff->weight[l] = aff->grad[l] = NULL;
  }
}

/* Allocates weights for (feat, width, layers) and initialises them; on failure nothing changes. */
static lvmmed_status set_architecture(lvmmed_affinity *aff, size_t feat, size_t width, size_t layers) {
  float *w[AFF_MAX_LAYERS] = {0}, *g[AFF_MAX_LAYERS] = {0};
  size_t dims[AFF_MAX_LAYERS + 1];
  dims[0] = feat;
  for (size_t l = 1; l <= layers; l++) dims[l] = width;
  for (size_t l = 0; l < layers; l++) {
    size_t bytes = dims[l] * dims[l + 1] * sizeof(float); /* <= 2^32 · 4: no overflow */
    w[l] = lvmmed__alloc(aff->ctx, bytes);
    g[l] = lvmmed__alloc(aff->ctx, bytes);
    if (!w[l] || !g[l]) {
      for (size_t m = 0; m <= l; m++) {
        lvmmed__free(aff->ctx, w[m]);
        lvmmed__free(aff->ctx, g[m]);
      }
      return lvmmed__fail(aff->ctx, LVMMED_ERR_OUT_OF_MEMORY,
                          "lvmmed_affinity: GCN weights of %zu×%zu floats", dims[l], dims[l + 1]);
    }
  }
  free_params(aff);
  aff->feat_dim = feat;
  aff->width = width;
  aff->layers = layers;
  memcpy(aff->dims, dims, (layers + 1) * sizeof(size_t));
  for (size_t l = 0; l < layers; l++) {
    aff->weight[l] = w[l];
    aff->grad[l] = g[l];
    snprintf(aff->names[l], sizeof aff->names[l], "gcn.%u.weight", (unsigned)l); /* l < AFF_MAX_LAYERS */
  }
  lvmmed__gcn_init(aff);
  aff->have_forward = 0;
  return LVMMED_OK;
}

static void free_state(lvmmed_affinity *aff) {
  lvmmed_ctx *ctx = aff->ctx;
  for (int v = 0; v < 2; v++) {
    lvmmed__free(ctx, aff->zc[v]);
    lvmmed__free(ctx, aff->act[v]);
    lvmmed__free(ctx, aff->adj[v]);
    lvmmed__free(ctx, aff->edges[v]);
    lvmmed__free(ctx, aff->pos_norm[v]);
    lvmmed__free(ctx, aff->tmp[v]);
    lvmmed__free(ctx, aff->tmp2[v]);
  }
  lvmmed__free(ctx, aff->matches);
  lvmmed__free(ctx, aff->bad);
  for (unsigned i = 0; i < aff->n_lanes; i++) lvmmed__free(ctx, aff->lanes[i].block);
  lvmmed__free(ctx, aff->lanes);
}

lvmmed_status lvmmed_affinity_create(lvmmed_ctx *ctx, lvmmed_affinity **out) {
  if (out) *out = NULL;
  if (!ctx) return LVMMED_ERR_INVALID_ARGUMENT;
  if (!out) return lvmmed__fail(ctx, LVMMED_ERR_INVALID_ARGUMENT, "lvmmed_affinity_create: out is NULL");
  lvmmed_affinity *aff = lvmmed__calloc(ctx, 1, sizeof *aff);
  if (!aff) return lvmmed__fail(ctx, LVMMED_ERR_OUT_OF_MEMORY, "lvmmed_affinity_create: no memory");
  aff->ctx = lvmmed_ctx_retain(ctx);
  aff->group = 16;
  aff->k = 5;
  aff->relu_last = 1;
  aff->symmetrize = 1;
  aff->local_norm = LVMMED_LOCAL_NORM_MEAN;
  aff->alpha = 0.8;
  aff->gamma_loc = 20;
  aff->gamma_feat = 49;
  lvmmed_status st = set_architecture(aff, 128, 128, 2);
  if (st != LVMMED_OK) {
    lvmmed_ctx_release(ctx);
    lvmmed__free(ctx, aff);
    return st;
  }
  *out = aff;
  return LVMMED_OK;
}

void lvmmed_affinity_free(lvmmed_affinity *aff) {
  if (!aff) return;
  lvmmed_ctx *ctx = aff->ctx;
  free_params(aff);
  free_state(aff);
  lvmmed__free(ctx, aff);
  lvmmed_ctx_release(ctx);
}

lvmmed_ctx *lvmmed_affinity_ctx(const lvmmed_affinity *aff) { return aff ? aff->ctx : NULL; }

lvmmed_status lvmmed_affinity_set_option(lvmmed_affinity *aff, lvmmed_affinity_option option,
                                         double value) {
  if (!aff) return LVMMED_ERR_INVALID_ARGUMENT;
  if (!known_option((int)option))
    return lvmmed__fail(aff->ctx, LVMMED_ERR_INVALID_ARGUMENT,
                        "lvmmed_affinity_set_option: unknown option %d", (int)option);
  const opt_spec *s = &specs[option];
  if (!(value >= s->min && value <= s->max) || (s->integral && value != floor(value)))
    return lvmmed__fail(aff->ctx, LVMMED_ERR_OUT_OF_RANGE,
                        "lvmmed_affinity_set_option: option %d = %g outside [%g, %g]%s", (int)option,
                        value, s->min, s->max, s->integral ? " or not an integer" : "");
  size_t iv = (size_t)value;
  switch (option) {
    case LVMMED_AFFINITY_OPT_FEATURE_DIM:
      if (iv != aff->feat_dim) return set_architecture(aff, iv, aff->width, aff->layers);
      break;
    case LVMMED_AFFINITY_OPT_GCN_WIDTH:
      if (iv != aff->width) return set_architecture(aff, aff->feat_dim, iv, aff->layers);
      break;
    case LVMMED_AFFINITY_OPT_GCN_LAYERS:
      if (iv != aff->layers) return set_architecture(aff, aff->feat_dim, aff->width, iv);
      break;
    case LVMMED_AFFINITY_OPT_GROUP_SIZE: aff->group = iv; break;
    case LVMMED_AFFINITY_OPT_KNN: aff->k = iv; break;
    case LVMMED_AFFINITY_OPT_GCN_RELU_LAST: aff->relu_last = (int)iv; break;
    case LVMMED_AFFINITY_OPT_SYMMETRIZE: aff->symmetrize = (int)iv; break;
    case LVMMED_AFFINITY_OPT_ALPHA: aff->alpha = value; break;
    case LVMMED_AFFINITY_OPT_GAMMA_LOC: aff->gamma_loc = iv; break;
    case LVMMED_AFFINITY_OPT_GAMMA_FEAT: aff->gamma_feat = iv; break;
    case LVMMED_AFFINITY_OPT_LOCAL_NORM: aff->local_norm = (int)iv; break;
  }
  aff->have_forward = 0;
  return LVMMED_OK;
}

lvmmed_status lvmmed_affinity_get_option(const lvmmed_affinity *aff, lvmmed_affinity_option option,
                                         double *value) {
  if (!aff) return LVMMED_ERR_INVALID_ARGUMENT;
  if (!known_option((int)option) || !value)
    return lvmmed__fail(aff->ctx, LVMMED_ERR_INVALID_ARGUMENT,
                        "lvmmed_affinity_get_option: unknown option %d or value NULL", (int)option);
  double v = 0;
  switch (option) {
    case LVMMED_AFFINITY_OPT_GROUP_SIZE: v = (double)aff->group; break;
    case LVMMED_AFFINITY_OPT_KNN: v = (double)aff->k; break;
    case LVMMED_AFFINITY_OPT_FEATURE_DIM: v = (double)aff->feat_dim; break;
    case LVMMED_AFFINITY_OPT_GCN_WIDTH: v = (double)aff->width; break;
    case LVMMED_AFFINITY_OPT_GCN_LAYERS: v = (double)aff->layers; break;
    case LVMMED_AFFINITY_OPT_GCN_RELU_LAST: v = aff->relu_last; break;
    case LVMMED_AFFINITY_OPT_SYMMETRIZE: v = aff->symmetrize; break;
    case LVMMED_AFFINITY_OPT_ALPHA: v = aff->alpha; break;
    case LVMMED_AFFINITY_OPT_GAMMA_LOC: v = (double)aff->gamma_loc; break;
    case LVMMED_AFFINITY_OPT_GAMMA_FEAT: v = (double)aff->gamma_feat; break;
    case LVMMED_AFFINITY_OPT_LOCAL_NORM: v = aff->local_norm; break;
  }
  *value = v;
  return LVMMED_OK;
}

static size_t out_dim_of(const lvmmed_affinity *aff) { return aff->layers ? aff->width : aff->feat_dim; }

lvmmed_status lvmmed_affinity_shape(const lvmmed_affinity *aff, size_t n_images, size_t *n_graphs,
                                    size_t *n_nodes, size_t *n_edges, size_t *out_dim) {
  if (!aff) return LVMMED_ERR_INVALID_ARGUMENT;
  if (n_graphs) *n_graphs = n_images / aff->group;
  if (n_nodes) *n_nodes = aff->group;
  if (n_edges) *n_edges = aff->group * aff->k;
  if (out_dim) *out_dim = out_dim_of(aff);
  return LVMMED_OK;
}

size_t lvmmed_affinity_param_count(const lvmmed_affinity *aff) { return aff ? aff->layers : 0; }

lvmmed_status lvmmed_affinity_param_info(const lvmmed_affinity *aff, size_t index, const char **name,
                                         size_t *rows, size_t *cols) {
  if (!aff) return LVMMED_ERR_INVALID_ARGUMENT;
  if (index >= aff->layers)
    return lvmmed__fail(aff->ctx, LVMMED_ERR_OUT_OF_RANGE,
                        "lvmmed_affinity_param_info: index %zu >= %zu tensors", index, aff->layers);
  if (name) *name = aff->names[index];
  if (rows) *rows = aff->dims[index];
  if (cols) *cols = aff->dims[index + 1];
  return LVMMED_OK;
}

lvmmed_status lvmmed_affinity_param_data(lvmmed_affinity *aff, size_t index, float **value,
                                         float **grad) {
  if (!aff) return LVMMED_ERR_INVALID_ARGUMENT;
  if (index >= aff->layers)
    return lvmmed__fail(aff->ctx, LVMMED_ERR_OUT_OF_RANGE,
                        "lvmmed_affinity_param_data: index %zu >= %zu tensors", index, aff->layers);
  if (value) *value = aff->weight[index];
  if (grad) *grad = aff->grad[index];
  return LVMMED_OK;
}

static lvmmed_status find_param(const lvmmed_affinity *aff, const char *fn, const char *name,
                                size_t count, size_t *index) {
  if (!name) return lvmmed__fail(aff->ctx, LVMMED_ERR_INVALID_ARGUMENT, "%s: name is NULL", fn);
  for (size_t l = 0; l < aff->layers; l++)
    if (strcmp(aff->names[l], name) == 0) {
      size_t want = aff->dims[l] * aff->dims[l + 1];
      if (count != want)
        return lvmmed__fail(aff->ctx, LVMMED_ERR_SHAPE, "%s: %s holds %zu floats, not %zu", fn, name,
                            want, count);
      *index = l;
      return LVMMED_OK;
    }
  return lvmmed__fail(aff->ctx, LVMMED_ERR_NOT_FOUND, "%s: no parameter named \"%s\"", fn, name);
}

lvmmed_status lvmmed_affinity_param_read(const lvmmed_affinity *aff, const char *name, float *dst,
                                         size_t count) {
  if (!aff) return LVMMED_ERR_INVALID_ARGUMENT;
  size_t l;
  lvmmed_status st = find_param(aff, "lvmmed_affinity_param_read", name, count, &l);
  if (st != LVMMED_OK) return st;
  if (!dst) return lvmmed__fail(aff->ctx, LVMMED_ERR_INVALID_ARGUMENT, "lvmmed_affinity_param_read: dst is NULL");
  memcpy(dst, aff->weight[l], count * sizeof(float));
  return LVMMED_OK;
}

lvmmed_status lvmmed_affinity_param_write(lvmmed_affinity *aff, const char *name, const float *src,
                                          size_t count) {
  if (!aff) return LVMMED_ERR_INVALID_ARGUMENT;
  size_t l;
  lvmmed_status st = find_param(aff, "lvmmed_affinity_param_write", name, count, &l);
  if (st != LVMMED_OK) return st;
  if (!src) return lvmmed__fail(aff->ctx, LVMMED_ERR_INVALID_ARGUMENT, "lvmmed_affinity_param_write: src is NULL");
  for (size_t i = 0; i < count; i++)
    if (!isfinite(src[i]))
      return lvmmed__fail(aff->ctx, LVMMED_ERR_NUMERIC, "lvmmed_affinity_param_write: %s[%zu] is not finite",
                          name, i);
  memcpy(aff->weight[l], src, count * sizeof(float));
  aff->have_forward = 0;
  return LVMMED_OK;
}

lvmmed_status lvmmed_affinity_zero_grad(lvmmed_affinity *aff) {
  if (!aff) return LVMMED_ERR_INVALID_ARGUMENT;
  for (size_t l = 0; l < aff->layers; l++)
    memset(aff->grad[l], 0, aff->dims[l] * aff->dims[l + 1] * sizeof(float));
  return LVMMED_OK;
}

lvmmed_status lvmmed_affinity_reset_params(lvmmed_affinity *aff) {
  if (!aff) return LVMMED_ERR_INVALID_ARGUMENT;
  lvmmed__gcn_init(aff);
  aff->have_forward = 0;
  return LVMMED_OK;
}

/* ---- forward / backward ---- */

typedef struct batch_job {
  lvmmed_affinity *aff;
  const float *maps_s, *maps_t, *grid_s, *grid_t;
  float *unary, *edge_aff;
  const float *grad_unary, *grad_edge;
  float *grad_maps_s, *grad_maps_t;
  aff_local_geom geom;
  size_t cos_bytes;
} batch_job;

static void *lane_scratch(const batch_job *j, unsigned chunk) { return j->aff->lanes[chunk].block; }

static void graphs_range(void *arg, size_t begin, size_t end, unsigned chunk) {
  const batch_job *j = arg;
  lvmmed_affinity *aff = j->aff;
  size_t n = aff->group, e = n * aff->k;
  for (size_t g = begin; g < end; g++)
    for (int v = 0; v < 2; v++) {
      const float *z = aff->zc[v] + g * n * aff->feat_dim;
      float *dist = lane_scratch(j, chunk);
      int32_t *edges = aff->edges[v] + g * e * 2;
      lvmmed__knn(n, aff->feat_dim, z, aff->k, dist, (uint32_t *)(dist + n * n), edges);
      lvmmed__gcn_adjacency(n, e, edges, aff->symmetrize, aff->adj[v] + g * n * n);
    }
}

static void affinity_range(void *arg, size_t begin, size_t end, unsigned chunk) {
  const batch_job *j = arg;
  lvmmed_affinity *aff = j->aff;
  size_t n = aff->group, e = n * aff->k, h = aff->out_dim;
  const float *zs = lvmmed__gcn_output(aff, 0), *zt = lvmmed__gcn_output(aff, 1);
  char *scratch = lane_scratch(j, chunk);
  float glo = aff->local ? (float)aff->alpha : 1.0f;
  for (size_t g = begin; g < end; g++) {
    float *unary = j->unary + g * n * n;
    lvmmed__cos_forward(aff->ctx, n, h, zs + g * n * h, zt + g * n * h, glo, e,
                        aff->edges[0] + g * e * 2, e, aff->edges[1] + g * e * 2, unary,
                        j->edge_aff ? j->edge_aff + g * e * e : NULL, (float *)scratch);
    if (aff->local) {
      size_t img = aff->channels * aff->positions, p = aff->positions;
      int ok = lvmmed__local_forward(aff->ctx, &j->geom, j->maps_s + g * n * img, j->maps_t + g * n * img,
                                     j->grid_s + g * n * p * 2, j->grid_t + g * n * p * 2, unary,
                                     aff->pos_norm[0] + g * n * p, aff->pos_norm[1] + g * n * p,
                                     aff->matches + g * n * n * aff->match_stride, scratch);
      aff->bad[g] = !ok;
    }
  }
}

static void affinity_back_range(void *arg, size_t begin, size_t end, unsigned chunk) {
  const batch_job *j = arg;
  lvmmed_affinity *aff = j->aff;
  size_t n = aff->group, e = n * aff->k, h = aff->out_dim;
  const float *zs = lvmmed__gcn_output(aff, 0), *zt = lvmmed__gcn_output(aff, 1);
  char *scratch = lane_scratch(j, chunk);
  float glo = aff->local ? (float)aff->alpha : 1.0f;
  for (size_t g = begin; g < end; g++) {
    float *dzs = aff->tmp2[0] + g * n * h, *dzt = aff->tmp2[1] + g * n * h;
    memset(dzs, 0, n * h * sizeof(float));
    memset(dzt, 0, n * h * sizeof(float));
    const float *gu = j->grad_unary ? j->grad_unary + g * n * n : NULL;
    lvmmed__cos_backward(aff->ctx, n, h, zs + g * n * h, zt + g * n * h, glo, gu, e,
                         aff->edges[0] + g * e * 2, e, aff->edges[1] + g * e * 2,
                         j->grad_edge ? j->grad_edge + g * e * e : NULL, dzs, dzt, (float *)scratch);
    if (aff->local && (j->grad_maps_s || j->grad_maps_t)) {
      size_t img = aff->channels * aff->positions, p = aff->positions;
      float *dys = j->grad_maps_s ? j->grad_maps_s + g * n * img : NULL;
      float *dyt = j->grad_maps_t ? j->grad_maps_t + g * n * img : NULL;
      if (gu) {
        lvmmed__local_backward(aff->ctx, &j->geom, j->maps_s + g * n * img, j->maps_t + g * n * img, gu,
                               aff->pos_norm[0] + g * n * p, aff->pos_norm[1] + g * n * p,
                               aff->matches + g * n * n * aff->match_stride, dys, dyt, scratch);
      } else {
        if (dys) memset(dys, 0, n * img * sizeof(float));
        if (dyt) memset(dyt, 0, n * img * sizeof(float));
      }
    }
  }
}

static void local_geometry(const lvmmed_affinity *aff, aff_local_geom *g) {
  size_t p = aff->positions;
  g->n = aff->group;
  g->channels = aff->channels;
  g->positions = p;
  g->keep_loc = aff->gamma_loc < p ? aff->gamma_loc : p;
  g->keep_feat = aff->gamma_feat < p ? aff->gamma_feat : p;
  double rest = 1.0 - aff->alpha, per_dir, per_term;
  switch (aff->local_norm) {
    case LVMMED_LOCAL_NORM_SUM: g->dirs = 2; per_dir = 1.0; per_term = 1.0; break;
    case LVMMED_LOCAL_NORM_ONE_WAY: g->dirs = 1; per_dir = 1.0; per_term = 0.5; break;
    default: g->dirs = 2; per_dir = 0.5; per_term = 0.5; break;
  }
  g->w_loc = (float)(rest * per_dir * per_term / (double)g->keep_loc);
  g->w_feat = (float)(rest * per_dir * per_term / (double)g->keep_feat);
}

/* Lane scratch for the current shapes: enough for kNN, cosines and the local term both ways. */
static lvmmed_status ensure_lanes(lvmmed_affinity *aff, const batch_job *j, const char *fn) {
  size_t n = aff->group, e = n * aff->k;
  size_t need = n * n * sizeof(float) + 2 * n * sizeof(uint32_t);
  size_t cosb = lvmmed__cos_scratch(n, e, e, aff->out_dim) * sizeof(float);
  if (cosb > need) need = cosb;
  if (aff->local) {
    size_t lb = lvmmed__local_scratch(&j->geom, 1);
    if (lb > need) need = lb;
  }
  unsigned lanes = lvmmed__parallel_chunks(aff->ctx, aff->n_graphs, 1);
  if (lanes > aff->n_lanes) {
    aff_lane *nl = lvmmed__calloc(aff->ctx, lanes, sizeof *nl);
    if (!nl) return lvmmed__fail(aff->ctx, LVMMED_ERR_OUT_OF_MEMORY, "%s: lane table", fn);
    if (aff->lanes) memcpy(nl, aff->lanes, aff->n_lanes * sizeof *nl);
    lvmmed__free(aff->ctx, aff->lanes);
    aff->lanes = nl;
    aff->n_lanes = lanes;
  }
  for (unsigned i = 0; i < lanes; i++) {
    aff->lanes[i].block = lvmmed__grow(aff->ctx, aff->lanes[i].block, &aff->lanes[i].bytes, need);
    if (!aff->lanes[i].block)
      return lvmmed__fail(aff->ctx, LVMMED_ERR_OUT_OF_MEMORY, "%s: %zu bytes of scratch per lane", fn, need);
  }
  return LVMMED_OK;
}

/* a·b·c·d·e with overflow check (sizes in elements). */
static int product(size_t *out, size_t a, size_t b, size_t c, size_t d) {
  size_t r;
  if (!lvmmed__mul_size(a, b, &r) || !lvmmed__mul_size(r, c, &r) || !lvmmed__mul_size(r, d, &r)) return 0;
  if (r > SIZE_MAX / 16) return 0;
  *out = r;
  return 1;
}

lvmmed_status lvmmed_affinity_forward(lvmmed_affinity *aff, size_t n_images, const float *z_s,
                                      const float *z_t, const float *maps_s, const float *maps_t,
                                      size_t channels, size_t height, size_t width, const float *grid_s,
                                      const float *grid_t, float *unary, float *edge_affinity,
                                      int32_t *src_edges, int32_t *tgt_edges) {
  static const char fn[] = "lvmmed_affinity_forward";
  if (!aff) return LVMMED_ERR_INVALID_ARGUMENT;
  lvmmed_ctx *ctx = aff->ctx;
  aff->have_forward = 0;
  if (!z_s || !z_t || !unary)
    return lvmmed__fail(ctx, LVMMED_ERR_INVALID_ARGUMENT, "%s: z_s, z_t or unary is NULL", fn);
  if (!maps_s != !maps_t)
    return lvmmed__fail(ctx, LVMMED_ERR_INVALID_ARGUMENT, "%s: give both feature maps or neither", fn);
  size_t n = aff->group, k = aff->k, e = n * k;
  if (k >= n)
    return lvmmed__fail(ctx, LVMMED_ERR_OUT_OF_RANGE, "%s: k = %zu must be < group size %zu", fn, k, n);
  size_t n_graphs = n_images / n;
  if (n_graphs == 0)
    return lvmmed__fail(ctx, LVMMED_ERR_SHAPE, "%s: %zu images make no group of %zu", fn, n_images, n);
  if (n_graphs >= ((size_t)1 << 31))
    return lvmmed__fail(ctx, LVMMED_ERR_LIMIT, "%s: %zu groups", fn, n_graphs);
  size_t used = n_graphs * n, maxdim = aff->feat_dim > aff->width ? aff->feat_dim : aff->width;
  size_t z_count, act_count, tmp_count, adj_count, edge_count;
  if (!product(&z_count, used, aff->feat_dim, 1, 1) || !product(&act_count, used, aff->width, aff->layers, 1) ||
      !product(&tmp_count, used, maxdim, 1, 1) || !product(&adj_count, n_graphs, n, n, 1) ||
      !product(&edge_count, n_graphs, e, e, 1))
    return lvmmed__fail(ctx, LVMMED_ERR_LIMIT, "%s: batch of %zu images too large", fn, n_images);

  int local = maps_s != NULL && aff->alpha < 1.0;
  size_t positions = 0, match_count = 0;
  batch_job job = {.aff = aff, .maps_s = maps_s, .maps_t = maps_t, .grid_s = grid_s, .grid_t = grid_t,
                   .unary = unary, .edge_aff = edge_affinity};
  aff->positions = 0;
  if (maps_s) {
    size_t map_count;
    if (!grid_s || !grid_t)
      return lvmmed__fail(ctx, LVMMED_ERR_INVALID_ARGUMENT, "%s: feature maps need both location grids", fn);
    if (channels == 0 || height == 0 || width == 0)
      return lvmmed__fail(ctx, LVMMED_ERR_SHAPE, "%s: feature maps of %zu×%zu×%zu", fn, channels, height,
                          width);
    if (!product(&positions, height, width, 1, 1) || positions > 65535 ||
        !product(&map_count, n_images, channels, positions, 1))
      return lvmmed__fail(ctx, LVMMED_ERR_LIMIT, "%s: feature maps %zu×%zu×%zu exceed the limits (at most "
                          "65535 positions)", fn, channels, height, width);
    aff->channels = channels;
    aff->height = height;
    aff->width_map = width;
    aff->positions = positions;
  }
  aff->local = local;
  if (local) {
    local_geometry(aff, &job.geom);
    aff->match_stride = lvmmed__local_stride(&job.geom);
    if (!product(&match_count, n_graphs, n * n, aff->match_stride, 1))
      return lvmmed__fail(ctx, LVMMED_ERR_LIMIT, "%s: local match table too large", fn);
  }
  for (size_t i = 0; i < z_count; i++)
    if (!isfinite(z_s[i]) || !isfinite(z_t[i]))
      return lvmmed__fail(ctx, LVMMED_ERR_NUMERIC, "%s: z_%c[%zu] is not finite", fn,
                          isfinite(z_s[i]) ? 't' : 's', i);

  aff->n_images = n_images;
  aff->n_graphs = n_graphs;
  aff->n_used = used;
  aff->out_dim = out_dim_of(aff);
  int ok = 1;
  for (int v = 0; v < 2; v++) {
    ok &= (aff->zc[v] = lvmmed__grow(ctx, aff->zc[v], &aff->cap_zc[v], z_count * sizeof(float))) != NULL;
    ok &= (aff->act[v] = lvmmed__grow(ctx, aff->act[v], &aff->cap_act[v], act_count * sizeof(float))) != NULL;
    ok &= (aff->adj[v] = lvmmed__grow(ctx, aff->adj[v], &aff->cap_adj[v], adj_count * sizeof(float))) != NULL;
    ok &= (aff->edges[v] = lvmmed__grow(ctx, aff->edges[v], &aff->cap_edges[v], n_graphs * e * 2 * sizeof(int32_t))) != NULL;
    ok &= (aff->tmp[v] = lvmmed__grow(ctx, aff->tmp[v], &aff->cap_tmp[v], tmp_count * sizeof(float))) != NULL;
    ok &= (aff->tmp2[v] = lvmmed__grow(ctx, aff->tmp2[v], &aff->cap_tmp2[v], tmp_count * sizeof(float))) != NULL;
    if (local)
      ok &= (aff->pos_norm[v] = lvmmed__grow(ctx, aff->pos_norm[v], &aff->cap_pos_norm[v],
                                     used * positions * sizeof(float))) != NULL;
  }
  if (local)
    ok &= (aff->matches = lvmmed__grow(ctx, aff->matches, &aff->cap_matches, match_count * sizeof(aff_match))) != NULL;
  ok &= (aff->bad = lvmmed__grow(ctx, aff->bad, &aff->cap_bad, n_graphs * sizeof(int))) != NULL;
  if (!ok) return lvmmed__fail(ctx, LVMMED_ERR_OUT_OF_MEMORY, "%s: saved state of %zu images", fn, n_images);
  lvmmed_status st = ensure_lanes(aff, &job, fn);
  if (st != LVMMED_OK) return st;

  memcpy(aff->zc[0], z_s, z_count * sizeof(float));
  memcpy(aff->zc[1], z_t, z_count * sizeof(float));
  memset(aff->bad, 0, n_graphs * sizeof(int));
  lvmmed__parallel_for(ctx, n_graphs, 1, graphs_range, &job);
  lvmmed__gcn_forward(aff);
  lvmmed__parallel_for(ctx, n_graphs, 1, affinity_range, &job);
  for (size_t g = 0; g < n_graphs; g++)
    if (aff->bad[g])
      return lvmmed__fail(ctx, LVMMED_ERR_NUMERIC,
                          "%s: a feature map or grid value of group %zu (images %zu..%zu) is not finite", fn,
                          g, g * n, g * n + n - 1);
  for (int v = 0; v < 2; v++) {
    int32_t *dst = v ? tgt_edges : src_edges;
    if (dst) memcpy(dst, aff->edges[v], n_graphs * e * 2 * sizeof(int32_t));
  }
  aff->have_forward = 1;
  return LVMMED_OK;
}

lvmmed_status lvmmed_affinity_backward(lvmmed_affinity *aff, const float *grad_unary, const float *grad_edge,
                                       const float *maps_s, const float *maps_t, float *grad_z_s,
                                       float *grad_z_t, float *grad_maps_s, float *grad_maps_t) {
  static const char fn[] = "lvmmed_affinity_backward";
  if (!aff) return LVMMED_ERR_INVALID_ARGUMENT;
  lvmmed_ctx *ctx = aff->ctx;
  if (!aff->have_forward) return lvmmed__fail(ctx, LVMMED_ERR_STATE, "%s: no forward pass to differentiate", fn);
  size_t n = aff->group, e = n * aff->k, g_n = aff->n_graphs;
  int want_maps = aff->positions && (grad_maps_s || grad_maps_t);
  if (aff->local && want_maps && (!maps_s || !maps_t))
    return lvmmed__fail(ctx, LVMMED_ERR_INVALID_ARGUMENT, "%s: the feature maps of the forward are needed", fn);
  if (grad_unary)
    for (size_t i = 0; i < g_n * n * n; i++)
      if (!isfinite(grad_unary[i]))
        return lvmmed__fail(ctx, LVMMED_ERR_NUMERIC, "%s: grad_unary[%zu] is not finite", fn, i);
  if (grad_edge)
    for (size_t i = 0; i < g_n * e * e; i++)
      if (!isfinite(grad_edge[i]))
        return lvmmed__fail(ctx, LVMMED_ERR_NUMERIC, "%s: grad_edge[%zu] is not finite", fn, i);

  batch_job job = {.aff = aff, .maps_s = maps_s, .maps_t = maps_t, .grad_unary = grad_unary,
                   .grad_edge = grad_edge, .grad_maps_s = grad_maps_s, .grad_maps_t = grad_maps_t};
  if (aff->local) local_geometry(aff, &job.geom);
  lvmmed_status st = ensure_lanes(aff, &job, fn);
  if (st != LVMMED_OK) return st;
  lvmmed__parallel_for(ctx, g_n, 1, affinity_back_range, &job);
  int want_dz = grad_z_s || grad_z_t;
  lvmmed__gcn_backward(aff, want_dz);

  size_t f = aff->feat_dim, used = aff->n_used, rest = aff->n_images - used;
  for (int v = 0; v < 2; v++) {
    float *dz = v ? grad_z_t : grad_z_s;
    if (!dz) continue;
    memcpy(dz, aff->tmp2[v], used * f * sizeof(float));
    memset(dz + used * f, 0, rest * f * sizeof(float));
  }
  if (aff->positions)
    for (int v = 0; v < 2; v++) {
      float *dm = v ? grad_maps_t : grad_maps_s;
      if (!dm) continue;
      size_t img = aff->channels * aff->positions;
      if (!aff->local) memset(dm, 0, used * img * sizeof(float));
      memset(dm + used * img, 0, rest * img * sizeof(float));
    }
  return LVMMED_OK;
}
