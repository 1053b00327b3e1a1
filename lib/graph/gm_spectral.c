/* Spectral matching (Leordeanu & Hebert 2005) and reweighted random walks
 * (RRWM, Cho, Lee & Lee 2010), both followed by an exact LAP that turns the
 * continuous n×n score into a permutation.
 *
 * Both methods assume a non-negative symmetric affinity K. They use
 *   K'' = (K + Kᵀ)/2 shifted so that no entry is negative:
 *   Lawler: unary and edge-pair entries minus m = min(0, min U, min W), on the
 *           support only (unary diagonal and edge pairs); K''·v costs
 *           O(n² + |Es|·|Et|), the N²×N² matrix is never built.
 *   KB:     (A'⊗B + A'ᵀ⊗Bᵀ)/2 + c·11ᵀ with c = max(0, -min_{ijab} A'ij·Bab),
 *           applied as (A'VBᵀ + A'ᵀVB)/2 + c·ΣV in O(n³).
 * The shift only steers these heuristics; the permutation returned is scored
 * on the original objective.
 */
#include <math.h>
#include <string.h>

#include "graph/gm_impl.h"

#define SM_TOL 1e-5
#define RRWM_ALPHA 0.2
#define RRWM_BETA 30.0
#define RRWM_SINKHORN_ITERS 20

/* dst += x·src over count doubles, four lanes per step (vectorised at -O2). */
static void axpy(size_t count, double x, const double *restrict src, double *restrict dst) {
  size_t k = 0;
  for (; k + 4 <= count; k += 4)
    for (size_t l = 0; l < 4; l++) dst[k + l] += x * src[k + l];
  for (; k < count; k++) dst[k] += x * src[k];
}

/* Dot product with four partial sums. */
static double dot(size_t count, const double *restrict a, const double *restrict b) {
  double p[4] = {0, 0, 0, 0};
  size_t k = 0;
  for (; k + 4 <= count; k += 4)
    for (size_t l = 0; l < 4; l++) p[l] += a[k + l] * b[k + l];
  double t = (p[0] + p[1]) + (p[2] + p[3]);
  for (; k < count; k++) t += a[k] * b[k];
  return t;
}

/* C = A·B (acc: C += A·B), n×n row-major. */
static void mm_nn(size_t n, const double *a, const double *b, double *c, int acc) {
  for (size_t i = 0; i < n; i++) {
    double *ci = c + i * n;
    if (!acc) memset(ci, 0, n * sizeof *ci);
    for (size_t k = 0; k < n; k++) {
      double x = a[i * n + k];
      if (x == 0) continue;
      axpy(n, x, b + k * n, ci);
    }
  }
}

/* C = Aᵀ·B. */
static void mm_tn(size_t n, const double *a, const double *b, double *c) {
  memset(c, 0, n * n * sizeof *c);
  for (size_t k = 0; k < n; k++) {
    const double *bk = b + k * n;
    for (size_t i = 0; i < n; i++) {
      double x = a[k * n + i];
      if (x == 0) continue;
      axpy(n, x, bk, c + i * n);
    }
  }
}

/* C = A·Bᵀ. */
static void mm_nt(size_t n, const double *a, const double *b, double *c) {
  for (size_t i = 0; i < n; i++) {
    for (size_t j = 0; j < n; j++) c[i * n + j] = dot(n, a + i * n, b + j * n);
  }
}

typedef struct affinity_op {
  double shift; /* Lawler: m subtracted on the support; KB: c added everywhere */
} affinity_op;

static affinity_op make_op(const lvmmed_gm_solver *s) {
  affinity_op op = {0};
  size_t n = s->n;
  if (s->form == GM_FORM_KB) {
    double amin = HUGE_VAL, amax = -HUGE_VAL, bmin = HUGE_VAL, bmax = -HUGE_VAL;
    for (size_t k = 0; k < n * n; k++) {
      amin = fmin(amin, s->as[k]);
      amax = fmax(amax, s->as[k]);
      bmin = fmin(bmin, s->b[k]);
      bmax = fmax(bmax, s->b[k]);
    }
    double lo = fmin(fmin(amin * bmin, amin * bmax), fmin(amax * bmin, amax * bmax));
    op.shift = lo < 0 ? -lo : 0;
  } else {
    double m = 0;
    for (size_t k = 0; k < n * n; k++) m = fmin(m, s->u[k]);
    for (size_t k = 0; k < s->ms * s->mt; k++) m = fmin(m, s->w[k]);
    op.shift = m;
  }
  return op;
}

/* out = K''·v (v and out are n×n; tmp is n×n scratch for KB). */
static void apply_op(const lvmmed_gm_solver *s, const affinity_op *op, const double *v, double *out,
                     double *tmp) {
  size_t n = s->n, nn = n * n;
  if (s->form == GM_FORM_KB) {
    mm_nn(n, s->as, v, tmp, 0);
    mm_nt(n, tmp, s->b, out);
    mm_tn(n, s->as, v, tmp);
    mm_nn(n, tmp, s->b, out, 1);
    double total = 0;
    for (size_t k = 0; k < nn; k++) total += v[k];
    double add = op->shift * total;
    for (size_t k = 0; k < nn; k++) out[k] = 0.5 * out[k] + add;
    return;
  }
  double m = op->shift;
  for (size_t k = 0; k < nn; k++) out[k] = (s->u[k] - m) * v[k];
  for (size_t e = 0; e < s->ms; e++) {
    size_t i = (size_t)s->es[2 * e], j = (size_t)s->es[2 * e + 1];
    const float *row = s->w + e * s->mt;
    const double *vi = v + i * n, *vj = v + j * n;
    double *oi = out + i * n, *oj = out + j * n;
    for (size_t f = 0; f < s->mt; f++) {
      size_t a = (size_t)s->et[2 * f], b = (size_t)s->et[2 * f + 1];
      double c = 0.5 * (row[f] - m);
      oi[a] += c * vj[b];
      oj[b] += c * vi[a];
    }
  }
}

/* Spectral matching: leading eigenvector of K'' by power iteration from the
 * uniform vector, then the LAP that maximises its overlap. */
void gm_solve_spectral(lvmmed_gm_solver *s, int32_t *p) {
  size_t nn = s->n * s->n;
  affinity_op op = make_op(s);
  double *v = s->t1, *kv = s->t2;
  double init = 1.0 / (double)s->n; /* unit L2 norm over n² entries */
  for (size_t k = 0; k < nn; k++) v[k] = init;
  for (int64_t it = 0; it < s->max_iter; it++) {
    apply_op(s, &op, v, kv, s->t3);
    double norm = 0;
    for (size_t k = 0; k < nn; k++) norm += kv[k] * kv[k];
    norm = sqrt(norm);
    if (!(norm > 0)) break;
    double diff = 0;
    for (size_t k = 0; k < nn; k++) {
      double x = kv[k] / norm;
      diff += (x - v[k]) * (x - v[k]);
      v[k] = x;
    }
    if (sqrt(diff) < SM_TOL) break;
  }
  gm_lap_max(s, v, p);
}

/* Sinkhorn balancing of a positive n×n matrix: alternately scale rows and
 * columns to sum 1. */
static void sinkhorn(size_t n, double *y, int iters) {
  for (int it = 0; it < iters; it++) {
    for (size_t i = 0; i < n; i++) {
      double t = 0;
      for (size_t j = 0; j < n; j++) t += y[i * n + j];
      double inv = 1.0 / t;
      for (size_t j = 0; j < n; j++) y[i * n + j] *= inv;
    }
    for (size_t j = 0; j < n; j++) {
      double t = 0;
      for (size_t i = 0; i < n; i++) t += y[i * n + j];
      double inv = 1.0 / t;
      for (size_t i = 0; i < n; i++) y[i * n + j] *= inv;
    }
  }
}

/* RRWM: random walk on K'' (rescaled by its largest row sum) with a
 * reweighted jump towards the Sinkhorn-balanced exp(β·v/max v), in the
 * parametrisation of pygmtools / METHOD.md §11:
 *   v ← K''v / dmax, L1-normalised; y = Sinkhorn(exp(β v / max v));
 *   v ← α·y + (1 - α)·v, L1-normalised; stop when ‖Δv‖₂ < 1e-5.
 * α = 0.2, β = 30, 20 Sinkhorn rounds. */
void gm_solve_rrwm(lvmmed_gm_solver *s, int32_t *p) {
  size_t n = s->n, nn = n * n;
  affinity_op op = make_op(s);
  double *v = s->t1, *kv = s->t2, *y = s->gb;
  for (size_t k = 0; k < nn; k++) v[k] = 1.0;
  apply_op(s, &op, v, kv, s->t3);
  double dmax = 0;
  for (size_t k = 0; k < nn; k++) dmax = fmax(dmax, kv[k]);
  if (!(dmax > 0)) dmax = 1;
  for (size_t k = 0; k < nn; k++) v[k] = 1.0 / (double)nn;
  for (int64_t it = 0; it < s->max_iter; it++) {
    apply_op(s, &op, v, kv, s->t3);
    double total = 0, top = 0;
    for (size_t k = 0; k < nn; k++) {
      kv[k] /= dmax;
      total += kv[k];
    }
    if (!(total > 0)) break;
    for (size_t k = 0; k < nn; k++) {
      kv[k] /= total;
      top = fmax(top, kv[k]);
    }
    for (size_t k = 0; k < nn; k++) y[k] = exp(RRWM_BETA * kv[k] / top);
    sinkhorn(n, y, RRWM_SINKHORN_ITERS);
    double total2 = 0;
    for (size_t k = 0; k < nn; k++) {
      kv[k] = RRWM_ALPHA * y[k] + (1 - RRWM_ALPHA) * kv[k];
      total2 += kv[k];
    }
    double diff = 0;
    for (size_t k = 0; k < nn; k++) {
      double x = kv[k] / total2;
      diff += (x - v[k]) * (x - v[k]);
      v[k] = x;
    }
    if (sqrt(diff) < SM_TOL) break;
  }
  gm_lap_max(s, v, p);
}
