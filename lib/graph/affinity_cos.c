/* Global vertex affinity c_glo = cos(ẑ^s_i, ẑ^t_a) and edge affinity
 * c_e = cos(ẑ^s_i − ẑ^s_j, ẑ^t_a − ẑ^t_b), forward and backward, one graph.
 *
 * c_e is |E|² cosines of h-dimensional differences. The forward takes them
 * from the Gram matrix K of the node features (centred on their mean, 2N×2N)
 * instead of the |E_s|×|E_t|×h product of the differences: u·w =
 * K_ia − K_ib − K_ja + K_jb. The expansion cancels when an edge is short
 * compared with its endpoints, so a graph with any edge shorter than
 * GRAM_MIN_RATIO of its endpoints' (centred) norms uses the explicit
 * differences instead. */
#include <math.h>
#include <string.h>

#include "backend/backend.h"
#include "graph/affinity_impl.h"

#define GRAM_MIN_RATIO 0.1f

size_t lvmmed__cos_scratch(size_t n, size_t e_s, size_t e_t, size_t h) {
  /* norms, S/M, K, C, U, W, dU, dW, E×E, row/col coefficients, with slack for alignment */
  return 4 * n + 2 * n * n + 4 * n * n + 2 * n * h + h + 4 * (e_s + e_t) * h + e_s * e_t + 2 * (e_s + e_t) +
         n * e_t + e_t + e_s * e_t / 16 + 1 + 20 * 16;
}

static float *carve(float **at, size_t count) {
  float *p = *at;
  *at += (count + 15) & ~(size_t)15;
  return p;
}

/* norm[i] = ‖x_i‖ (unfloored). */
AFF_HOT static void row_norms(size_t n, size_t h, const float *x, float *norm) {
  for (size_t i = 0; i < n; i++) norm[i] = sqrtf(aff_dot(x + i * h, x + i * h, h));
}

/* Explicit edge vectors out[e] = x_i − x_j. */
AFF_HOT static void edge_vectors(size_t n_e, const int32_t *edges, size_t h, const float *x, float *out) {
  for (size_t e = 0; e < n_e; e++) {
    const float *xi = x + (size_t)edges[2 * e] * h, *xj = x + (size_t)edges[2 * e + 1] * h;
    float *o = out + e * h;
    for (size_t d = 0; d < h; d++) o[d] = xi[d] - xj[d];
  }
}

/* Positions of the non-zero entries of x (at most cap); cap + 1 when there are more.
 * Blocks of 16 are skipped with one vectorisable test (−0 counts as zero). */
AFF_HOT static size_t nonzeros(const float *restrict x, size_t count, uint32_t *restrict at, size_t cap) {
  size_t nnz = 0;
  for (size_t base = 0; base < count; base += 16) {
    size_t len = count - base < 16 ? count - base : 16;
    uint32_t any = 0;
    for (size_t l = 0; l < len; l++) {
      uint32_t b;
      memcpy(&b, x + base + l, sizeof b);
      any |= b << 1;
    }
    if (!any) continue;
    for (size_t l = 0; l < len; l++)
      if (x[base + l] != 0.0f) {
        if (nnz == cap) return cap + 1;
        at[nnz++] = (uint32_t)(base + l);
      }
  }
  return nnz;
}

/* y1 += a·x1 and y2 += a·x2. */
AFF_HOT static void axpy2(size_t n, float a, const float *restrict x1, float *restrict y1, const float *restrict x2,
                          float *restrict y2) {
  for (size_t d = 0; d < n; d++) {
    y1[d] += a * x1[d];
    y2[d] += a * x2[d];
  }
}

AFF_HOT static void edge_forward_explicit(lvmmed_ctx *ctx, size_t h, const float *zs, const float *zt,
                                  size_t e_s, const int32_t *es, size_t e_t, const int32_t *et,
                                  float *edge_aff, float *u, float *w, float *nu, float *nw) {
  edge_vectors(e_s, es, h, zs, u);
  edge_vectors(e_t, et, h, zt, w);
  row_norms(e_s, h, u, nu);
  row_norms(e_t, h, w, nw);
  lvmmed__backend(ctx)->gemm(ctx, 0, 1, e_s, e_t, h, 1.0f, u, h, w, h, 0.0f, edge_aff, e_t);
  for (size_t e = 0; e < e_s; e++) {
    float ie = aff_inv_norm(nu[e]);
    for (size_t f = 0; f < e_t; f++) edge_aff[e * e_t + f] *= ie * aff_inv_norm(nw[f]);
  }
}

AFF_HOT void lvmmed__cos_forward(lvmmed_ctx *ctx, size_t n, size_t h, const float *zs, const float *zt,
                         float glo_weight, size_t e_s, const int32_t *es, size_t e_t,
                         const int32_t *et, float *unary, float *edge_aff, float *scratch) {
  const lvmmed_backend_ops *be = lvmmed__backend(ctx);
  float *at = scratch;
  float *ns = carve(&at, n), *nt = carve(&at, n);
  row_norms(n, h, zs, ns);
  row_norms(n, h, zt, nt);
  be->gemm(ctx, 0, 1, n, n, h, 1.0f, zs, h, zt, h, 0.0f, unary, n);
  for (size_t i = 0; i < n; i++) {
    float ii = glo_weight * aff_inv_norm(ns[i]);
    for (size_t a = 0; a < n; a++) unary[i * n + a] *= ii * aff_inv_norm(nt[a]);
  }
  if (!edge_aff || e_s == 0 || e_t == 0) return;

  /* Centred, stacked node features C = [zs; zt] − mean and K = C Cᵀ. */
  size_t m = 2 * n;
  float *c = carve(&at, m * h), *k = carve(&at, m * m), *mean = carve(&at, h);
  for (size_t d = 0; d < h; d++) mean[d] = 0.0f;
  for (size_t i = 0; i < n; i++)
    for (size_t d = 0; d < h; d++) mean[d] += zs[i * h + d] + zt[i * h + d];
  for (size_t d = 0; d < h; d++) mean[d] /= (float)m;
  for (size_t i = 0; i < n; i++)
    for (size_t d = 0; d < h; d++) {
      c[i * h + d] = zs[i * h + d] - mean[d];
      c[(n + i) * h + d] = zt[i * h + d] - mean[d];
    }
  be->gemm(ctx, 0, 1, m, m, h, 1.0f, c, h, c, h, 0.0f, k, m);
  float *nu = carve(&at, e_s), *nw = carve(&at, e_t);
  int well_conditioned = 1;
  for (int v = 0; v < 2 && well_conditioned; v++) {
    size_t ne = v ? e_t : e_s, off = v ? n : 0;
    const int32_t *ed = v ? et : es;
    float *nrm = v ? nw : nu;
    const float *z = v ? zt : zs;
    for (size_t e = 0; e < ne; e++) {
      size_t i = off + (size_t)ed[2 * e], j = off + (size_t)ed[2 * e + 1];
      float ends = k[i * m + i] + k[j * m + j];
      float sq = ends - 2.0f * k[i * m + j];
      if (sq >= GRAM_MIN_RATIO * ends && ends > 0.0f) {
        nrm[e] = sqrtf(sq);
      } else if (memcmp(z + (i - off) * h, z + (j - off) * h, h * sizeof(float)) == 0) {
        nrm[e] = 0.0f; /* equal endpoints (structurally equivalent GCN nodes): cosine 0, exactly */
      } else {
        well_conditioned = 0;
        break;
      }
    }
  }
  if (!well_conditioned) {
    float *u = carve(&at, e_s * h), *w = carve(&at, e_t * h);
    edge_forward_explicit(ctx, h, zs, zt, e_s, es, e_t, et, edge_aff, u, w, nu, nw);
    return;
  }
  /* kd[x][f] = K[x][a_f] − K[x][b_f] (view-t columns), then u_e·w_f = kd[i][f] − kd[j][f] */
  float *kd = carve(&at, n * e_t), *inw = carve(&at, e_t);
  for (size_t f = 0; f < e_t; f++) inw[f] = aff_inv_norm(nw[f]);
  for (size_t x = 0; x < n; x++) {
    const float *kx = k + x * m + n;
    for (size_t f = 0; f < e_t; f++) kd[x * e_t + f] = kx[et[2 * f]] - kx[et[2 * f + 1]];
  }
  for (size_t e = 0; e < e_s; e++) {
    const float *di = kd + (size_t)es[2 * e] * e_t, *dj = kd + (size_t)es[2 * e + 1] * e_t;
    float ie = aff_inv_norm(nu[e]);
    float *row = edge_aff + e * e_t;
    for (size_t f = 0; f < e_t; f++) row[f] = (di[f] - dj[f]) * ie * inw[f];
  }
}

AFF_HOT void lvmmed__cos_backward(lvmmed_ctx *ctx, size_t n, size_t h, const float *zs, const float *zt,
                          float glo_weight, const float *gu, size_t e_s, const int32_t *es,
                          size_t e_t, const int32_t *et, const float *ge, float *dzs, float *dzt,
                          float *scratch) {
  const lvmmed_backend_ops *be = lvmmed__backend(ctx);
  float *at = scratch;
  if (gu && glo_weight != 0.0f) {
    float *ns = carve(&at, n), *nt = carve(&at, n), *cs = carve(&at, n * n), *mm = carve(&at, n * n);
    float *rs = carve(&at, n), *rt = carve(&at, n);
    row_norms(n, h, zs, ns);
    row_norms(n, h, zt, nt);
    be->gemm(ctx, 0, 1, n, n, h, 1.0f, zs, h, zt, h, 0.0f, cs, n);
    for (size_t a = 0; a < n; a++) rt[a] = 0.0f;
    for (size_t i = 0; i < n; i++) {
      float fi = aff_inv_norm(ns[i]);
      rs[i] = 0.0f;
      for (size_t a = 0; a < n; a++) {
        float fa = aff_inv_norm(nt[a]);
        float g = glo_weight * gu[i * n + a];
        float cosv = cs[i * n + a] * fi * fa;
        mm[i * n + a] = g * fi * fa;
        rs[i] += g * cosv;
        rt[a] += g * cosv;
      }
    }
    /* dzs += M zt − diag(rs/‖zs‖²) zs (a zero vector has no gradient) */
    be->gemm(ctx, 0, 0, n, h, n, 1.0f, mm, n, zt, h, 1.0f, dzs, h);
    be->gemm(ctx, 1, 0, n, h, n, 1.0f, mm, n, zs, h, 1.0f, dzt, h);
    for (size_t i = 0; i < n; i++) {
      float is = aff_inv_norm(ns[i]), it = aff_inv_norm(nt[i]);
      float cs_i = rs[i] * is * is, ct_i = rt[i] * it * it;
      for (size_t d = 0; d < h; d++) {
        dzs[i * h + d] -= cs_i * zs[i * h + d];
        dzt[i * h + d] -= ct_i * zt[i * h + d];
      }
    }
  }
  if (!ge || e_s == 0 || e_t == 0) return;

  size_t cap = e_s * e_t / 16;
  uint32_t *nz = (uint32_t *)carve(&at, cap + 1);
  size_t nnz = nonzeros(ge, e_s * e_t, nz, cap);
  if (nnz == 0) return;
  float *u = carve(&at, e_s * h), *w = carve(&at, e_t * h), *du = carve(&at, e_s * h),
        *dw = carve(&at, e_t * h), *nu = carve(&at, e_s), *nw = carve(&at, e_t),
        *ru = carve(&at, e_s), *rw = carve(&at, e_t);
  edge_vectors(e_s, es, h, zs, u);
  edge_vectors(e_t, et, h, zt, w);
  row_norms(e_s, h, u, nu);
  row_norms(e_t, h, w, nw);
  for (size_t e = 0; e < e_s; e++) ru[e] = 0.0f;
  for (size_t f = 0; f < e_t; f++) rw[f] = 0.0f;
  if (nnz <= cap) {
    /* I-MLE gradients touch a few edge pairs per graph: visit only those. */
    memset(du, 0, e_s * h * sizeof *du);
    memset(dw, 0, e_t * h * sizeof *dw);
    for (size_t x = 0; x < nnz; x++) {
      size_t e = nz[x] / e_t, f = nz[x] % e_t;
      float g = ge[nz[x]], fe = aff_inv_norm(nu[e]), ff = aff_inv_norm(nw[f]);
      float coef = g * fe * ff;
      float cosv = aff_dot(u + e * h, w + f * h, h) * fe * ff;
      axpy2(h, coef, w + f * h, du + e * h, u + e * h, dw + f * h);
      ru[e] += g * cosv;
      rw[f] += g * cosv;
    }
  } else {
    float *mm = carve(&at, e_s * e_t);
    be->gemm(ctx, 0, 1, e_s, e_t, h, 1.0f, u, h, w, h, 0.0f, mm, e_t);
    for (size_t e = 0; e < e_s; e++) {
      float fe = aff_inv_norm(nu[e]);
      for (size_t f = 0; f < e_t; f++) {
        float ff = aff_inv_norm(nw[f]);
        float g = ge[e * e_t + f];
        float cosv = mm[e * e_t + f] * fe * ff;
        ru[e] += g * cosv;
        rw[f] += g * cosv;
        mm[e * e_t + f] = g * fe * ff;
      }
    }
    be->gemm(ctx, 0, 0, e_s, h, e_t, 1.0f, mm, e_t, w, h, 0.0f, du, h);
    be->gemm(ctx, 1, 0, e_t, h, e_s, 1.0f, mm, e_t, u, h, 0.0f, dw, h);
  }
  /* Second cosine term, then scatter the edge gradients onto their endpoints. */
  for (size_t e = 0; e < e_s; e++) {
    float iu = aff_inv_norm(nu[e]), c2 = ru[e] * iu * iu;
    float *due = du + e * h;
    const float *ue = u + e * h;
    float *di = dzs + (size_t)es[2 * e] * h, *dj = dzs + (size_t)es[2 * e + 1] * h;
    for (size_t d = 0; d < h; d++) {
      float v = due[d] - c2 * ue[d];
      di[d] += v;
      dj[d] -= v;
    }
  }
  for (size_t f = 0; f < e_t; f++) {
    float iw = aff_inv_norm(nw[f]), c2 = rw[f] * iw * iw;
    float *dwf = dw + f * h;
    const float *wf = w + f * h;
    float *da = dzt + (size_t)et[2 * f] * h, *db = dzt + (size_t)et[2 * f + 1] * h;
    for (size_t d = 0; d < h; d++) {
      float v = dwf[d] - c2 * wf[d];
      da[d] += v;
      db[d] -= v;
    }
  }
}
