/* liblvmmed — private layout of the affinity builder and the per-graph kernels
 * shared by affinity.c, gcn.c, affinity_cos.c, affinity_local.c and knn.c. */
#ifndef LVMMED_GRAPH_AFFINITY_IMPL_H
#define LVMMED_GRAPH_AFFINITY_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"
#include "lvmmed/affinity.h"

#define AFF_MAX_LAYERS 8
/** Cosines of vectors shorter than this are 0 with zero gradient: cos(u, w) = u·w·inv(‖u‖)·inv(‖w‖). */
#define AFF_COS_EPS 1e-8f

/** One kept local match: positions p (view s image) and q (view t image) and their cosine. */
typedef struct aff_match {
  uint16_t p, q;
  float cos;
} aff_match;

/** Bump allocator over one block (64-byte aligned pieces). */
typedef struct aff_arena {
  char *base;
  size_t used, cap;
} aff_arena;

/** Scratch of one parallel lane. */
typedef struct aff_lane {
  void *block;
  size_t bytes;
} aff_lane;

struct lvmmed_affinity {
  lvmmed_ctx *ctx;

  /* options */
  size_t group, k, feat_dim, width, layers;
  int relu_last, symmetrize, local_norm;
  double alpha;
  size_t gamma_loc, gamma_feat;

  /* parameters: W_l is dims[l] × dims[l+1] */
  size_t dims[AFF_MAX_LAYERS + 1];
  float *weight[AFF_MAX_LAYERS], *grad[AFF_MAX_LAYERS];
  char names[AFF_MAX_LAYERS][24];

  /* saved forward state */
  int have_forward;
  size_t n_images, n_graphs, n_used, out_dim;
  int local;                       /* the local term was computed */
  size_t channels, height, width_map, positions; /* feature maps (P = height·width_map; 0: none) */
  float *zc[2];                    /* n_used × F copies of the node features */
  float *act[2];                   /* L blocks of n_used × width: H_1..H_L */
  float *adj[2];                   /* G × N × N propagation matrices Â */
  int32_t *edges[2];               /* G × E × 2 kNN edges */
  float *pos_norm[2];              /* n_used × P norms of the feature-map positions */
  aff_match *matches;              /* G × N² × match_stride */
  size_t match_stride;
  int *bad;                        /* per group: a non-finite map or grid value */
  /* batch temporaries: n_used × max(F, width) each */
  float *tmp[2], *tmp2[2];
  /* capacities in bytes */
  size_t cap_zc[2], cap_act[2], cap_adj[2], cap_edges[2], cap_pos_norm[2], cap_tmp[2], cap_tmp2[2];
  size_t cap_matches, cap_bad;

  aff_lane *lanes;
  unsigned n_lanes;
};

/* Hot per-graph loops: GCC 12 at -O2 only vectorises loops whose trip count needs no
 * epilogue, so these few kernels ask for -O3 (no fast-math: results are unchanged). */
#if defined(__GNUC__) && !defined(__clang__)
#  define AFF_HOT __attribute__((optimize("O3")))
#else
#  define AFF_HOT
#endif

/* ---- arena ---- */
static inline void *aff_take(aff_arena *a, size_t bytes) {
  size_t at = (a->used + 63) & ~(size_t)63;
  if (at > a->cap || bytes > a->cap - at) return NULL;
  a->used = at + bytes;
  return a->base + at;
}

/* ---- small dense helpers (vectorisable, fixed summation order) ---- */
static inline float aff_dot(const float *x, const float *y, size_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; l++) acc[l] += x[i + l] * y[i + l];
  float tail = 0.0f;
  for (; i < n; i++) tail += x[i] * y[i];
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + tail;
}

static inline float aff_sqdist(const float *x, const float *y, size_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; l++) {
      float d = x[i + l] - y[i + l];
      acc[l] += d * d;
    }
  float tail = 0.0f;
  for (; i < n; i++) tail += (x[i] - y[i]) * (x[i] - y[i]);
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + tail;
}

/* 1/‖u‖, or 0 for a (numerically) zero vector: its cosine is undefined and is taken as a
 * constant 0, so a dead ReLU node or two identical GCN outputs never produce a 1/eps gradient. */
static inline float aff_inv_norm(float n) { return n > AFF_COS_EPS ? 1.0f / n : 0.0f; }

/* ---- knn.c ---- */
/** Stable ascending argsort of key over the n indices in idx (tmp: n scratch). */
void lvmmed__argsort(size_t n, const float *key, uint32_t *idx, uint32_t *tmp);
/** kNN edges of n points (validated by the caller); dist: n×n floats, idx: 2n scratch. */
void lvmmed__knn(size_t n, size_t dim, const float *x, size_t k, float *dist, uint32_t *idx,
                 int32_t *edges);
/** Dense Â of an edge list (validated by the caller). */
void lvmmed__gcn_adjacency(size_t n, size_t n_edges, const int32_t *edges, int symmetrize, float *adj);

/* ---- gcn.c ---- */
/** Glorot-uniform initialisation of every weight from the context seed; zeroes the gradients. */
void lvmmed__gcn_init(lvmmed_affinity *aff);
/** Runs the layers over zc[] into act[] (adj[] must be built; uses tmp[]). */
void lvmmed__gcn_forward(lvmmed_affinity *aff);
/** Ẑ of a view: n_used × out_dim rows. */
const float *lvmmed__gcn_output(const lvmmed_affinity *aff, int view);
/** Back-propagates dL/dẐ held in tmp2[v] (n_used × out_dim): adds the weight gradients and
 *  leaves dL/dZ (n_used × F) in tmp2[v] when want_dz (uses tmp[]). */
void lvmmed__gcn_backward(lvmmed_affinity *aff, int want_dz);

/* ---- affinity_cos.c: per graph, N nodes of width h ---- */
/** Scratch floats of lvmmed__cos_forward / lvmmed__cos_backward. */
size_t lvmmed__cos_scratch(size_t n, size_t e_s, size_t e_t, size_t h);
/** c_glo (N×N, scaled by glo_weight into unary, overwritten) and c_e (may be NULL). */
void lvmmed__cos_forward(lvmmed_ctx *ctx, size_t n, size_t h, const float *zs, const float *zt,
                         float glo_weight, size_t e_s, const int32_t *es, size_t e_t,
                         const int32_t *et, float *unary, float *edge_aff, float *scratch);
/** Adds dL/dẑ of both views (dzs, dzt: N×h, accumulated) for dL/dc_glo = glo_weight·gu
 *  and dL/dc_e = ge (either may be NULL). */
void lvmmed__cos_backward(lvmmed_ctx *ctx, size_t n, size_t h, const float *zs, const float *zt,
                          float glo_weight, const float *gu, size_t e_s, const int32_t *es,
                          size_t e_t, const int32_t *et, const float *ge, float *dzs, float *dzt,
                          float *scratch);

/* ---- affinity_local.c ---- */
typedef struct aff_local_geom {
  size_t n, channels, positions;  /* nodes, D, P */
  size_t keep_loc, keep_feat;     /* effective γ's (<= P) */
  size_t dirs;                    /* 1 (ONE_WAY) or 2 */
  float w_loc, w_feat;            /* coefficient of one kept cosine in c_v */
} aff_local_geom;
/** Scratch bytes of lvmmed__local_forward / lvmmed__local_backward. */
size_t lvmmed__local_scratch(const aff_local_geom *g, int backward);
/** Adds the local term of every pair to unary (N×N); fills pos_norm (N×P per view) and
 *  matches (N² × stride). Returns 0 if a map or grid value is not finite. */
int lvmmed__local_forward(lvmmed_ctx *ctx, const aff_local_geom *g, const float *ys, const float *yt,
                          const float *grid_s, const float *grid_t, float *unary,
                          float *norm_s, float *norm_t, aff_match *matches, void *scratch);
/** Writes dL/dy of both views (dys, dyt: N×D×P, overwritten) for dL/dc_v = gu. */
void lvmmed__local_backward(lvmmed_ctx *ctx, const aff_local_geom *g, const float *ys,
                            const float *yt, const float *gu, const float *norm_s,
                            const float *norm_t, const aff_match *matches, float *dys, float *dyt,
                            void *scratch);
/** Entries per pair in the match table. */
static inline size_t lvmmed__local_stride(const aff_local_geom *g) {
  return g->dirs * (g->keep_loc + g->keep_feat);
}

#endif /* LVMMED_GRAPH_AFFINITY_IMPL_H */
