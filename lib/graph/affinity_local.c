/* The VICRegL-style local term of the vertex affinity, one graph.
 *
 * All cosines and feature distances between the positions of image i (view
 * s) and of every image a (view t) come from one gemm per i against the view-t
 * maps laid out as D × (N·P) (ycat). Each kept match (p, q) adds
 * w·cos(y^s_i[p], y^t_a[q]) to c_v[i][a]; the matches are saved so the
 * backward pass needs neither the grids nor a new nearest-neighbour search:
 * it is again one pair of gemms per image i with a sparse P × (N·P)
 * coefficient matrix, skipped for rows of dL/dc_v that are zero. */
#include <math.h>
#include <string.h>

#include "backend/backend.h"
#include "graph/affinity_impl.h"

static size_t up64(size_t bytes) { return (bytes + 63) & ~(size_t)63; }

size_t lvmmed__local_scratch(const aff_local_geom *g, int backward) {
  size_t np = g->n * g->positions, cat = g->channels * np * sizeof(float);
  size_t s = up64(cat) + up64(g->positions * np * sizeof(float)); /* ycat + gram / coefficients */
  s += 4 * up64(g->positions * sizeof(float)) + 4 * up64(g->positions * sizeof(uint32_t));
  if (backward) s += up64(cat) + 2 * up64(np * sizeof(float)); /* dycat, rs, rt */
  return s + 64;
}

/* ycat[d][a·P + q] = y[a][d][q]. */
AFF_HOT static void concat_maps(const aff_local_geom *g, const float *y, float *ycat) {
  size_t n = g->n, d_n = g->channels, p_n = g->positions, np = n * p_n;
  for (size_t a = 0; a < n; a++)
    for (size_t d = 0; d < d_n; d++)
      memcpy(ycat + d * np + a * p_n, y + (a * d_n + d) * p_n, p_n * sizeof(float));
}

/* norm[a·P + p] = ‖y[a][·][p]‖; 0 if some value is not finite. */
AFF_HOT static int position_norms(const aff_local_geom *g, const float *y, float *norm) {
  size_t d_n = g->channels, p_n = g->positions;
  int finite = 1;
  for (size_t a = 0; a < g->n; a++) {
    float *nr = norm + a * p_n;
    for (size_t p = 0; p < p_n; p++) nr[p] = 0.0f;
    for (size_t d = 0; d < d_n; d++) {
      const float *row = y + (a * d_n + d) * p_n;
      for (size_t p = 0; p < p_n; p++) {
        finite &= isfinite(row[p]) != 0;
        nr[p] += row[p] * row[p];
      }
    }
    for (size_t p = 0; p < p_n; p++) nr[p] = sqrtf(nr[p]);
  }
  return finite;
}

typedef struct dir_work {
  float *dloc, *dfeat;     /* distance of each query to its match */
  uint32_t *nloc, *nfeat;  /* the match of each query */
  uint32_t *idx, *tmp;     /* argsort */
} dir_work;

/* Nearest neighbours of every query position of one direction. Queries index rows of the
 * Gram block when s_is_query, columns otherwise. */
AFF_HOT static void match_direction(const aff_local_geom *g, int s_is_query, const float *gram, size_t ldg,
                            const float *grid_q, const float *grid_k, const float *norm_q,
                            const float *norm_k, dir_work *w) {
  size_t p_n = g->positions;
  for (size_t x = 0; x < p_n; x++) {
    float qx = grid_q[2 * x], qy = grid_q[2 * x + 1];
    float best_l = INFINITY, best_f = INFINITY;
    uint32_t arg_l = 0, arg_f = 0;
    for (size_t y = 0; y < p_n; y++) {
      float dx = qx - grid_k[2 * y], dy = qy - grid_k[2 * y + 1];
      float dl = dx * dx + dy * dy;
      if (dl < best_l) {
        best_l = dl;
        arg_l = (uint32_t)y;
      }
      float dot = s_is_query ? gram[x * ldg + y] : gram[y * ldg + x];
      float df = norm_k[y] * norm_k[y] - 2.0f * dot;
      if (df < best_f) {
        best_f = df;
        arg_f = (uint32_t)y;
      }
    }
    /* A non-finite distance (overflowing grid) falls back to the first candidate. */
    w->dloc[x] = isfinite(best_l) ? best_l : INFINITY;
    w->nloc[x] = arg_l;
    w->dfeat[x] = norm_q[x] * norm_q[x] + best_f;
    w->nfeat[x] = arg_f;
  }
}

/* Keeps the `keep` queries with the smallest distance; appends (p, q, cos) entries and
 * returns Σ cos of the kept ones. */
AFF_HOT static float keep_best(const aff_local_geom *g, int s_is_query, size_t keep, const float *dist,
                       const uint32_t *nn, const float *gram, size_t ldg, const float *norm_s,
                       const float *norm_t, dir_work *w, aff_match *out) {
  size_t p_n = g->positions;
  for (size_t x = 0; x < p_n; x++) w->idx[x] = (uint32_t)x;
  lvmmed__argsort(p_n, dist, w->idx, w->tmp);
  float sum = 0.0f;
  for (size_t r = 0; r < keep; r++) {
    uint32_t x = w->idx[r], y = nn[x];
    uint32_t p = s_is_query ? x : y, q = s_is_query ? y : x;
    float c = gram[p * ldg + q] * aff_inv_norm(norm_s[p]) * aff_inv_norm(norm_t[q]);
    out[r].p = (uint16_t)p;
    out[r].q = (uint16_t)q;
    out[r].cos = c;
    sum += c;
  }
  return sum;
}

int lvmmed__local_forward(lvmmed_ctx *ctx, const aff_local_geom *g, const float *ys, const float *yt,
                          const float *grid_s, const float *grid_t, float *unary, float *norm_s,
                          float *norm_t, aff_match *matches, void *scratch) {
  const lvmmed_backend_ops *be = lvmmed__backend(ctx);
  size_t n = g->n, d_n = g->channels, p_n = g->positions, np = n * p_n;
  aff_arena ar = {scratch, 0, lvmmed__local_scratch(g, 0)};
  float *ycat = aff_take(&ar, d_n * np * sizeof(float));
  float *gram = aff_take(&ar, p_n * np * sizeof(float));
  dir_work w;
  w.dloc = aff_take(&ar, p_n * sizeof(float));
  w.dfeat = aff_take(&ar, p_n * sizeof(float));
  w.nloc = aff_take(&ar, p_n * sizeof(uint32_t));
  w.nfeat = aff_take(&ar, p_n * sizeof(uint32_t));
  w.idx = aff_take(&ar, p_n * sizeof(uint32_t));
  w.tmp = aff_take(&ar, p_n * sizeof(uint32_t));

  int finite = position_norms(g, ys, norm_s) & position_norms(g, yt, norm_t);
  for (size_t i = 0; i < n * p_n * 2; i++) finite &= isfinite(grid_s[i]) && isfinite(grid_t[i]);
  if (!finite) return 0;
  concat_maps(g, yt, ycat);
  size_t stride = lvmmed__local_stride(g);
  for (size_t i = 0; i < n; i++) {
    be->gemm(ctx, 1, 0, p_n, np, d_n, 1.0f, ys + i * d_n * p_n, p_n, ycat, np, 0.0f, gram, np);
    const float *ns = norm_s + i * p_n, *gs = grid_s + i * p_n * 2;
    for (size_t a = 0; a < n; a++) {
      const float *blk = gram + a * p_n, *nt = norm_t + a * p_n, *gt = grid_t + a * p_n * 2;
      aff_match *out = matches + (i * n + a) * stride;
      float value = 0.0f;
      for (size_t dir = 0; dir < g->dirs; dir++) {
        int sq = dir == 0;
        match_direction(g, sq, blk, np, sq ? gs : gt, sq ? gt : gs, sq ? ns : nt, sq ? nt : ns, &w);
        float loc = keep_best(g, sq, g->keep_loc, w.dloc, w.nloc, blk, np, ns, nt, &w, out);
        out += g->keep_loc;
        float feat = keep_best(g, sq, g->keep_feat, w.dfeat, w.nfeat, blk, np, ns, nt, &w, out);
        out += g->keep_feat;
        value += g->w_loc * loc + g->w_feat * feat;
      }
      unary[i * n + a] += value;
    }
  }
  return 1;
}

AFF_HOT void lvmmed__local_backward(lvmmed_ctx *ctx, const aff_local_geom *g, const float *ys,
                            const float *yt, const float *gu, const float *norm_s,
                            const float *norm_t, const aff_match *matches, float *dys, float *dyt,
                            void *scratch) {
  const lvmmed_backend_ops *be = lvmmed__backend(ctx);
  size_t n = g->n, d_n = g->channels, p_n = g->positions, np = n * p_n;
  aff_arena ar = {scratch, 0, lvmmed__local_scratch(g, 1)};
  float *ycat = aff_take(&ar, d_n * np * sizeof(float));
  float *coef = aff_take(&ar, p_n * np * sizeof(float));
  float *dycat = aff_take(&ar, d_n * np * sizeof(float));
  float *rs = aff_take(&ar, np * sizeof(float)), *rt = aff_take(&ar, np * sizeof(float));
  size_t stride = lvmmed__local_stride(g);

  if (dys) memset(dys, 0, n * d_n * p_n * sizeof(float));
  memset(dycat, 0, d_n * np * sizeof(float));
  memset(rs, 0, np * sizeof(float));
  memset(rt, 0, np * sizeof(float));
  concat_maps(g, yt, ycat);
  for (size_t i = 0; i < n; i++) {
    size_t active = 0;
    for (size_t a = 0; a < n; a++) active += gu[i * n + a] != 0.0f;
    if (!active) continue;
    /* I-MLE leaves one or two non-zero pairs per row: then only their P×P blocks are used */
    int by_block = active * 4 <= n;
    if (by_block) {
      for (size_t a = 0; a < n; a++)
        if (gu[i * n + a] != 0.0f)
          for (size_t p = 0; p < p_n; p++) memset(coef + p * np + a * p_n, 0, p_n * sizeof(float));
    } else {
      memset(coef, 0, p_n * np * sizeof(float));
    }
    const float *ns = norm_s + i * p_n;
    for (size_t a = 0; a < n; a++) {
      float gv = gu[i * n + a];
      if (gv == 0.0f) continue;
      const float *nt = norm_t + a * p_n;
      const aff_match *m = matches + (i * n + a) * stride;
      for (size_t dir = 0; dir < g->dirs; dir++)
        for (size_t r = 0; r < g->keep_loc + g->keep_feat; r++, m++) {
          float c = gv * (r < g->keep_loc ? g->w_loc : g->w_feat);
          float fs = aff_inv_norm(ns[m->p]), ft = aff_inv_norm(nt[m->q]);
          coef[m->p * np + a * p_n + m->q] += c * fs * ft;
          rs[i * p_n + m->p] += c * m->cos * fs * fs;
          rt[a * p_n + m->q] += c * m->cos * ft * ft;
        }
    }
    /* dys_i += ycat · coefᵀ,  dycat += ys_i · coef (whole row, or block by block) */
    const float *ysi = ys + i * d_n * p_n;
    float *dysi = dys ? dys + i * d_n * p_n : NULL;
    if (!by_block) {
      if (dysi) be->gemm(ctx, 0, 1, d_n, p_n, np, 1.0f, ycat, np, coef, np, 1.0f, dysi, p_n);
      if (dyt) be->gemm(ctx, 0, 0, d_n, np, p_n, 1.0f, ysi, p_n, coef, np, 1.0f, dycat, np);
      continue;
    }
    for (size_t a = 0; a < n; a++) {
      if (gu[i * n + a] == 0.0f) continue;
      size_t col = a * p_n;
      if (dysi) be->gemm(ctx, 0, 1, d_n, p_n, p_n, 1.0f, ycat + col, np, coef + col, np, 1.0f, dysi, p_n);
      if (dyt) be->gemm(ctx, 0, 0, d_n, p_n, p_n, 1.0f, ysi, p_n, coef + col, np, 1.0f, dycat + col, np);
    }
  }
  if (dys)
    for (size_t i = 0; i < n; i++)
      for (size_t d = 0; d < d_n; d++) {
        float *row = dys + (i * d_n + d) * p_n;
        const float *y = ys + (i * d_n + d) * p_n, *r = rs + i * p_n;
        for (size_t p = 0; p < p_n; p++) row[p] -= r[p] * y[p];
      }
  if (dyt)
    for (size_t a = 0; a < n; a++)
      for (size_t d = 0; d < d_n; d++) {
        float *row = dyt + (a * d_n + d) * p_n;
        const float *y = yt + (a * d_n + d) * p_n, *src = dycat + d * np + a * p_n, *r = rt + a * p_n;
        for (size_t q = 0; q < p_n; q++) row[q] = src[q] - r[q] * y[q];
      }
}
