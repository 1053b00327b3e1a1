/* GCN message passing over all graphs of a batch: H_l = ReLU(Â H_{l-1} W_l).
 *
 * The products with W_l run once over the rows of every graph together (one
 * large gemm per view), the products with each graph's Â in parallel over
 * graphs; weight gradients are again one gemm over all rows, so their
 * summation order never depends on the thread count. */
#include <math.h>
#include <string.h>

#include "backend/backend.h"
#include "core/pool.h"
#include "core/rng.h"
#include "graph/affinity_impl.h"

/* Stream of the weight initialisation ("GCN" + layer), disjoint from other modules' ids. */
#define GCN_INIT_STREAM 0x47434E0000000000ull

void lvmmed__gcn_init(lvmmed_affinity *aff) {
  uint64_t seed = lvmmed__ctx_seed(aff->ctx);
  for (size_t l = 0; l < aff->layers; l++) {
    size_t in = aff->dims[l], out = aff->dims[l + 1], count = in * out;
    double bound = sqrt(6.0 / (double)(in + out));
    lvmmed_rng rng;
    lvmmed__rng_init(&rng, seed, GCN_INIT_STREAM | l);
    for (size_t i = 0; i < count; i++)
      aff->weight[l][i] = (float)((2.0 * lvmmed__rng_uniform(&rng) - 1.0) * bound);
    memset(aff->grad[l], 0, count * sizeof(float));
  }
}

/* Branch-free ReLU (the signs of activations are random: a branch mispredicts half the time). */
AFF_HOT static void relu_inplace(size_t n, float *restrict x) {
  for (size_t i = 0; i < n; i++) x[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

/* dh = 0 where the ReLU output h is not positive. */
AFF_HOT static void relu_mask(size_t n, const float *restrict h, float *restrict dh) {
  for (size_t i = 0; i < n; i++) dh[i] = h[i] > 0.0f ? dh[i] : 0.0f;
}

static int relu_at(const lvmmed_affinity *aff, size_t l) {
  return l + 1 < aff->layers || aff->relu_last;
}

typedef struct gcn_job {
  lvmmed_affinity *aff;
  size_t layer, width;
  int relu;
} gcn_job;

/* act_l[g] = relu(Â_g · tmp[g]) for item = view·G + g. */
static void propagate_range(void *arg, size_t begin, size_t end, unsigned chunk) {
  const gcn_job *j = arg;
  lvmmed_affinity *aff = j->aff;
  const lvmmed_backend_ops *be = lvmmed__backend(aff->ctx);
  size_t n = aff->group, w = j->width;
  (void)chunk;
  for (size_t item = begin; item < end; item++) {
    size_t v = item / aff->n_graphs, g = item % aff->n_graphs;
    const float *adj = aff->adj[v] + g * n * n;
    const float *t = aff->tmp[v] + g * n * w;
    float *h = aff->act[v] + j->layer * aff->n_used * w + g * n * w;
    be->gemm(aff->ctx, 0, 0, n, w, n, 1.0f, adj, n, t, w, 0.0f, h, w);
    if (j->relu) relu_inplace(n * w, h);
  }
}

void lvmmed__gcn_forward(lvmmed_affinity *aff) {
  const lvmmed_backend_ops *be = lvmmed__backend(aff->ctx);
  size_t rows = aff->n_used;
  for (size_t l = 0; l < aff->layers; l++) {
    size_t in = aff->dims[l], out = aff->dims[l + 1];
    for (int v = 0; v < 2; v++) {
      const float *h_in = l == 0 ? aff->zc[v] : aff->act[v] + (l - 1) * rows * out;
      be->gemm(aff->ctx, 0, 0, rows, out, in, 1.0f, h_in, in, aff->weight[l], out, 0.0f,
               aff->tmp[v], out);
    }
    gcn_job job = {aff, l, out, relu_at(aff, l)};
    lvmmed__parallel_for(aff->ctx, 2 * aff->n_graphs, 1, propagate_range, &job);
  }
}

const float *lvmmed__gcn_output(const lvmmed_affinity *aff, int view) {
  if (aff->layers == 0) return aff->zc[view];
  return aff->act[view] + (aff->layers - 1) * aff->n_used * aff->width;
}

/* tmp[g] = Â_gᵀ · (dH[g] ⊙ [H[g] > 0]) with dH in tmp2, for item = view·G + g. */
static void propagate_back_range(void *arg, size_t begin, size_t end, unsigned chunk) {
  const gcn_job *j = arg;
  lvmmed_affinity *aff = j->aff;
  const lvmmed_backend_ops *be = lvmmed__backend(aff->ctx);
  size_t n = aff->group, w = j->width;
  (void)chunk;
  for (size_t item = begin; item < end; item++) {
    size_t v = item / aff->n_graphs, g = item % aff->n_graphs;
    const float *adj = aff->adj[v] + g * n * n;
    float *dh = aff->tmp2[v] + g * n * w;
    if (j->relu) relu_mask(n * w, aff->act[v] + j->layer * aff->n_used * w + g * n * w, dh);
    be->gemm(aff->ctx, 1, 0, n, w, n, 1.0f, adj, n, dh, w, 0.0f, aff->tmp[v] + g * n * w, w);
  }
}

void lvmmed__gcn_backward(lvmmed_affinity *aff, int want_dz) {
  const lvmmed_backend_ops *be = lvmmed__backend(aff->ctx);
  size_t rows = aff->n_used;
  for (size_t l = aff->layers; l-- > 0;) {
    size_t in = aff->dims[l], out = aff->dims[l + 1];
    gcn_job job = {aff, l, out, relu_at(aff, l)};
    lvmmed__parallel_for(aff->ctx, 2 * aff->n_graphs, 1, propagate_back_range, &job);
    for (int v = 0; v < 2; v++) {
      const float *h_in = l == 0 ? aff->zc[v] : aff->act[v] + (l - 1) * rows * out;
      be->gemm(aff->ctx, 1, 0, in, out, rows, 1.0f, h_in, in, aff->tmp[v], out, 1.0f,
               aff->grad[l], out);
      if (l > 0 || want_dz)
        be->gemm(aff->ctx, 0, 1, rows, in, out, 1.0f, aff->tmp[v], out, aff->weight[l], out, 0.0f,
                 aff->tmp2[v], in);
    }
  }
}
