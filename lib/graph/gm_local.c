/* Objective, gradients, LAP starts, IPFP, 2-opt and the AUTO driver.
 *
 * See gm_impl.h for the internal maximisation form J'(x) = uᵀx + xᵀMx and
 * its gradient G = ∇J'(x) = u + (M + Mᵀ)x.
 *
 * Swap delta. Swapping the targets of r and s moves x by
 * d = e(r,ps) + e(s,pr) - e(r,pr) - e(s,ps) (pr = p[r], ps = p[s]), so
 *   ΔJ' = <G, d> + dᵀMd,
 * where <G, d> reads four entries of G and dᵀMd only involves the pair
 * (r, s): for Lawler the edges r→s and s→r, for KB the closed form
 * (A'rr + A'ss - A'rs - A'sr)(Bpr,pr + Bps,ps - Bpr,ps - Bps,pr).
 * After an accepted swap G changes by (M + Mᵀ)d: the edges touching r and s
 * (Lawler) or a rank-2 update (KB). A 2-opt sweep over all pairs therefore
 * costs O(n²) and an accepted move O(deg²) or O(n²).
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "graph/gm_impl.h"
#include "graph/lap.h"

/* Stream ids of random starts: start r (1-based) of a solve uses stream
 * GM_STREAM_BASE + r of the context seed, so results never depend on the
 * order in which starts run. */
#define GM_STREAM_BASE UINT64_C(0x676d000000000000)

/* On Lawler problems AUTO stops IPFP once this many rounds in a row brought
 * no better permutation: on LVM-Med graphs the Frank–Wolfe tail rarely
 * changes the rounded solution, 2-opt follows anyway, and every round costs
 * a LAP. Koopmans–Beckmann problems (QAPLIB) gain from the full run. */
#define AUTO_IPFP_PATIENCE 3

static int64_t auto_patience(const lvmmed_gm_solver *s) {
  return s->form == GM_FORM_KB ? 0 : AUTO_IPFP_PATIENCE;
}

/* dst += al·x + be·y over count doubles; four lanes per step so that -O2
 * vectorises it (the KB gradient kernels spend their time here). */
static void axpy2(size_t count, double al, const double *restrict x, double be,
                  const double *restrict y, double *restrict dst) {
  size_t k = 0;
  for (; k + 4 <= count; k += 4)
    for (size_t l = 0; l < 4; l++) dst[k + l] += al * x[k + l] + be * y[k + l];
  for (; k < count; k++) dst[k] += al * x[k] + be * y[k];
}

void gm_prepare(lvmmed_gm_solver *s) {
  size_t n = s->n;
  if (s->form == GM_FORM_KB) {
    s->sigma = s->maximize ? 1.0 : -1.0;
    double amax = 0, bmax = 0;
    for (size_t i = 0; i < n; i++) {
      for (size_t j = 0; j < n; j++) {
        double a = s->a[i * n + j], b = s->b[i * n + j];
        s->as[i * n + j] = s->sigma * a;
        s->bt[j * n + i] = b;
        if (fabs(a) > amax) amax = fabs(a);
        if (fabs(b) > bmax) bmax = fabs(b);
      }
    }
    s->eps = 1e-12 * amax * bmax * (double)n;
  } else {
    s->sigma = 1.0;
    s->eps = s->lawler_eps;
  }
}

double gm_unary_value(const lvmmed_gm_solver *s, const int32_t *p) {
  if (s->form == GM_FORM_KB) return 0;
  double t = 0;
  for (size_t i = 0; i < s->n; i++) t += s->u[i * s->n + (size_t)p[i]];
  return t;
}

double gm_value(const lvmmed_gm_solver *s, const int32_t *p) {
  size_t n = s->n;
  double t = 0;
  if (s->form == GM_FORM_KB) {
    for (size_t i = 0; i < n; i++) {
      const double *ai = s->as + i * n, *bp = s->b + (size_t)p[i] * n;
      for (size_t j = 0; j < n; j++) t += ai[j] * bp[p[j]];
    }
    return t;
  }
  t = gm_unary_value(s, p);
  for (size_t e = 0; e < s->ms; e++) {
    int32_t f = s->tadj[(size_t)p[s->es[2 * e]] * n + (size_t)p[s->es[2 * e + 1]]];
    if (f >= 0) t += s->w[e * s->mt + (size_t)f];
  }
  return t;
}

void gm_grad_perm(const lvmmed_gm_solver *s, const int32_t *p, double *g) {
  size_t n = s->n;
  if (s->form == GM_FORM_KB) {
    /* G[i][a] = Σ_j A'[i][j]·B[a][p_j] + A'[j][i]·B[p_j][a]. */
    for (size_t i = 0; i < n; i++) {
      double *gi = g + i * n;
      memset(gi, 0, n * sizeof *gi);
      for (size_t j = 0; j < n; j++) {
        double al = s->as[i * n + j], be = s->as[j * n + i];
        if (al == 0 && be == 0) continue;
        axpy2(n, al, s->bt + (size_t)p[j] * n, be, s->b + (size_t)p[j] * n, gi);
      }
    }
    return;
  }
  /* Edge e = (i, j) with p: G[i][a] += W[e][(a, p_j)], G[j][b] += W[e][(p_i, b)]. */
  memcpy(g, s->u, n * n * sizeof *g);
  const int32_t *t_in = s->t_in, *t_in_e = s->t_in_e, *t_in_tail = s->t_in_tail;
  const int32_t *t_out = s->t_out, *t_head = s->t_head;
  for (size_t e = 0; e < s->ms; e++) {
    int32_t i = s->es[2 * e], j = s->es[2 * e + 1], pi = p[i], pj = p[j];
    const float *row = s->w + e * s->mt;
    double *gi = g + (size_t)i * n, *gj = g + (size_t)j * n;
    for (int32_t k = t_in[pj], end = t_in[pj + 1]; k < end; k++) gi[t_in_tail[k]] += row[t_in_e[k]];
    for (int32_t f = t_out[pi], end = t_out[pi + 1]; f < end; f++) gj[t_head[f]] += row[f];
  }
}

double gm_grad_barycentre(const lvmmed_gm_solver *s, double *g, double *ux) {
  /* KB only: G[i][a] = (rowsum A'[i]·rowsum B[a] + colsum A'[i]·colsum B[a]) / n. */
  size_t n = s->n;
  double inv = 1.0 / (double)n;
  double *ra = s->t1, *ca = s->t2, *rb = s->t3, *cb = s->gb;
  double total_a = 0, total_b = 0;
  for (size_t i = 0; i < n; i++) ra[i] = ca[i] = rb[i] = cb[i] = 0;
  for (size_t i = 0; i < n; i++) {
    for (size_t j = 0; j < n; j++) {
      ra[i] += s->as[i * n + j];
      ca[j] += s->as[i * n + j];
      rb[i] += s->b[i * n + j];
      cb[j] += s->b[i * n + j];
    }
  }
  for (size_t i = 0; i < n; i++) {
    total_a += ra[i];
    total_b += rb[i];
    for (size_t a = 0; a < n; a++) g[i * n + a] = (ra[i] * rb[a] + ca[i] * cb[a]) * inv;
  }
  *ux = 0;
  return total_a * total_b * inv * inv;
}

/* dst = -src and x = a·x + b·y over count doubles, four lanes per step so
 * that -O2 vectorises them (restrict: the arrays never overlap). */
static void negate(size_t count, const double *restrict src, double *restrict dst) {
  size_t k = 0;
  for (; k + 4 <= count; k += 4)
    for (size_t l = 0; l < 4; l++) dst[k + l] = -src[k + l];
  for (; k < count; k++) dst[k] = -src[k];
}

static void blend(size_t count, double a, double *restrict x, double b, const double *restrict y) {
  size_t k = 0;
  for (; k + 4 <= count; k += 4)
    for (size_t l = 0; l < 4; l++) x[k + l] = a * x[k + l] + b * y[k + l];
  for (; k < count; k++) x[k] = a * x[k] + b * y[k];
}

void gm_lap_max(lvmmed_gm_solver *s, const double *m, int32_t *p) {
  size_t nn = s->n * s->n;
  negate(nn, m, s->cost);
  lvmmed__lap_min(s->n, s->n, s->cost, p, s->lap_scratch);
}

static int cmp_double(const void *x, const void *y) {
  double a = *(const double *)x, b = *(const double *)y;
  return (a > b) - (a < b);
}

/* Gilmore–Lawler linearisation of a KB problem (maximising J'): the best a
 * row i of A' and a row a of B can contribute when i ↦ a is the diagonal
 * product plus the largest scalar product of their off-diagonal entries
 * (both sorted the same way). Its LAP is the classic GLB assignment. */
static void gilmore_lawler(lvmmed_gm_solver *s, double *lin) {
  size_t n = s->n, m = n - 1;
  double *sa = s->t1, *sb = s->t2;
  for (size_t i = 0; i < n; i++) {
    size_t q = 0;
    for (size_t j = 0; j < n; j++) {
      if (j == i) continue;
      sa[i * n + q] = s->as[i * n + j];
      sb[i * n + q] = s->b[i * n + j];
      q++;
    }
    qsort(sa + i * n, m, sizeof(double), cmp_double);
    qsort(sb + i * n, m, sizeof(double), cmp_double);
  }
  for (size_t i = 0; i < n; i++) {
    for (size_t a = 0; a < n; a++) {
      double t = s->as[i * n + i] * s->b[a * n + a];
      const double *x = sa + i * n, *y = sb + a * n;
      for (size_t q = 0; q < m; q++) t += x[q] * y[q];
      lin[i * n + a] = t;
    }
  }
}

void gm_lap_start(lvmmed_gm_solver *s, int32_t *p) {
  if (s->form == GM_FORM_KB) {
    gilmore_lawler(s, s->gb);
    gm_lap_max(s, s->gb, p);
  } else {
    gm_lap_max(s, s->u, p);
  }
}

void gm_random_perm(const lvmmed_gm_solver *s, uint64_t stream, int32_t *p) {
  lvmmed_rng rng;
  lvmmed__rng_init(&rng, lvmmed__ctx_seed(s->ctx), GM_STREAM_BASE + stream);
  for (size_t i = 0; i < s->n; i++) p[i] = (int32_t)i;
  for (size_t i = s->n; i > 1; i--) {
    size_t k = (size_t)lvmmed__rng_below(&rng, i);
    int32_t t = p[i - 1];
    p[i - 1] = p[k];
    p[k] = t;
  }
}

/* ---- IPFP ---- */

/* g += c·(M + Mᵀ)·e(i, a): the gradient change when x[i][a] moves by c. */
static void lawler_grad_entry(const lvmmed_gm_solver *s, double *g, int32_t j, int32_t b,
                              double c);

static void grad_entry(const lvmmed_gm_solver *s, double *g, int32_t i, int32_t a, double c) {
  if (s->form != GM_FORM_KB) {
    lawler_grad_entry(s, g, i, a, c);
    return;
  }
  size_t n = s->n;
  const double *col = s->bt + (size_t)a * n, *row = s->b + (size_t)a * n;
  for (size_t k = 0; k < n; k++) {
    double al = c * s->as[k * n + (size_t)i], be = c * s->as[(size_t)i * n + k];
    if (al == 0 && be == 0) continue;
    axpy2(n, al, col, be, row, g + k * n);
  }
}

/* Rough operation counts: rebuilding ∇J'(p) versus moving one entry. */
static double grad_full_cost(const lvmmed_gm_solver *s) {
  double n = (double)s->n;
  if (s->form == GM_FORM_KB) return n * n * n;
  return n * n / 4 + (double)s->ms * (2.0 * (double)s->mt / n + 1);
}

static double grad_entry_cost(const lvmmed_gm_solver *s) {
  double n = (double)s->n;
  if (s->form == GM_FORM_KB) return 2 * n * n;
  return 2.0 * (double)s->ms / n * (double)s->mt / n + 8;
}

/* gp = ∇J'(b) given gp = ∇J'(prev): rebuilt, or moved entry by entry when
 * b differs from prev in few places (the late IPFP rounds). prev becomes b. */
static void grad_follow(const lvmmed_gm_solver *s, const int32_t *b, int32_t *prev, int have_prev,
                        double *gp) {
  size_t n = s->n, m = 0;
  if (have_prev)
    for (size_t i = 0; i < n; i++) m += b[i] != prev[i];
  if (have_prev && 2.0 * (double)m * grad_entry_cost(s) < grad_full_cost(s)) {
    for (size_t i = 0; i < n; i++) {
      if (b[i] == prev[i]) continue;
      grad_entry(s, gp, (int32_t)i, prev[i], -1.0);
      grad_entry(s, gp, (int32_t)i, b[i], 1.0);
    }
  } else {
    gm_grad_perm(s, b, gp);
  }
  memcpy(prev, b, n * sizeof *prev);
}

/* Integer projected fixed point (Leordeanu et al. 2009) for the internal
 * maximisation, i.e. Frank–Wolfe over doubly stochastic x with an exact
 * line search: b = LAP(∇J'(x)); along x + α(b - x) the objective is
 * J + αC + α²D with C = <G, b - x> and D = (b - x)ᵀM(b - x), both from
 * scalars that are tracked exactly (J, uᵀx) plus J'(b). The gradient is
 * affine in x, so it is updated as (1 - α)G + α∇J'(b) without touching M,
 * and J'(b) = (<∇J'(b), b> + uᵀb) / 2 comes with ∇J'(b).
 * Stops when C (the Frank–Wolfe gap) vanishes, after max_iter rounds, or
 * (patience > 0) after `patience` rounds in a row without a better b.
 * On return *grad_ready tells whether s->g holds ∇J'(out). */
double gm_ipfp(lvmmed_gm_solver *s, const int32_t *start, int32_t *out, int64_t patience,
               int *grad_ready) {
  size_t n = s->n, nn = n * n;
  double *g = s->g, *gp = s->gb; /* gradient at x; gradient at the last b */
  int32_t *b = s->p1, *prev = s->p4;
  double J, ux, best = -HUGE_VAL;
  int have_prev = 0, out_is_prev = 0;
  if (start) {
    grad_follow(s, start, prev, 0, gp);
    memcpy(g, gp, nn * sizeof *g);
    ux = gm_unary_value(s, start);
    double d = 0;
    for (size_t i = 0; i < n; i++) d += gp[i * n + (size_t)start[i]];
    J = 0.5 * (d + ux);
    if (out != start) memcpy(out, start, n * sizeof *out);
    best = J;
    have_prev = out_is_prev = 1;
  } else {
    J = gm_grad_barycentre(s, g, &ux);
  }
  int64_t stale = 0;
  for (int64_t it = 0; it < s->max_iter; it++) {
    gm_lap_max(s, g, b);
    double gdot = 0;
    for (size_t i = 0; i < n; i++) gdot += g[i * n + (size_t)b[i]];
    double C = gdot - (2 * J - ux);
    grad_follow(s, b, prev, have_prev, gp);
    have_prev = 1;
    double ub = gm_unary_value(s, b), gbb = 0;
    for (size_t i = 0; i < n; i++) gbb += gp[i * n + (size_t)b[i]];
    double Jb = 0.5 * (gbb + ub);
    if (Jb > best) {
      best = Jb;
      memcpy(out, b, n * sizeof *out);
      stale = 0;
      out_is_prev = 1;
    } else {
      out_is_prev = out_is_prev && !memcmp(out, b, n * sizeof *out);
      if (patience > 0 && ++stale >= patience) break;
    }
    if (!(C > s->eps)) break;
    double D = Jb - gdot + J - ux;
    double alpha = D >= 0 ? 1.0 : fmin(1.0, -C / (2 * D));
    if (alpha >= 1.0) {
      memcpy(g, gp, nn * sizeof *g);
      J = Jb;
      ux = ub;
    } else {
      blend(nn, 1.0 - alpha, g, alpha, gp);
      J += alpha * C + alpha * alpha * D;
      ux += alpha * (ub - ux);
    }
  }
  if (out_is_prev) memcpy(s->g, gp, nn * sizeof *gp);
  if (grad_ready) *grad_ready = out_is_prev;
  return gm_value(s, out);
}

/* ---- 2-opt ---- */

static inline double swap_delta(const lvmmed_gm_solver *s, const double *g, const int32_t *p,
                                size_t r, size_t q) {
  size_t n = s->n, pr = (size_t)p[r], pq = (size_t)p[q];
  double lin = g[r * n + pq] + g[q * n + pr] - g[r * n + pr] - g[q * n + pq];
  if (s->form == GM_FORM_KB) {
    const double *a = s->as, *b = s->b;
    double da = a[r * n + r] + a[q * n + q] - a[r * n + q] - a[q * n + r];
    double db = b[pr * n + pr] + b[pq * n + pq] - b[pr * n + pq] - b[pq * n + pr];
    return lin + da * db;
  }
  int32_t e1 = s->sadj[r * n + q], e2 = s->sadj[q * n + r];
  if (e1 < 0 && e2 < 0) return lin;
  int32_t f1 = s->tadj[pq * n + pr], f2 = s->tadj[pr * n + pq];
  double quad = 0;
  for (int k = 0; k < 2; k++) {
    int32_t e = k ? e2 : e1;
    if (e < 0) continue;
    const float *row = s->w + (size_t)e * s->mt;
    if (f1 >= 0) quad += row[f1];
    if (f2 >= 0) quad += row[f2];
  }
  return lin + quad;
}

/* g += (M + Mᵀ)·c·e(j, b) for one changed entry of x (Lawler). */
static void lawler_grad_entry(const lvmmed_gm_solver *s, double *g, int32_t j, int32_t b,
                              double c) {
  size_t n = s->n, mt = s->mt;
  const int32_t *t_in_e = s->t_in_e, *t_in_tail = s->t_in_tail, *t_head = s->t_head;
  int32_t in0 = s->t_in[b], in1 = s->t_in[b + 1], out0 = s->t_out[b], out1 = s->t_out[b + 1];
  for (int32_t k = s->s_in[j]; k < s->s_in[j + 1]; k++) {
    int32_t e = s->s_in_e[k];
    const float *row = s->w + (size_t)e * mt;
    double *gi = g + (size_t)s->es[2 * e] * n;
    for (int32_t q = in0; q < in1; q++) gi[t_in_tail[q]] += c * row[t_in_e[q]];
  }
  for (int32_t e = s->s_out[j]; e < s->s_out[j + 1]; e++) {
    const float *row = s->w + (size_t)e * mt;
    double *gi = g + (size_t)s->es[2 * e + 1] * n;
    for (int32_t f = out0; f < out1; f++) gi[t_head[f]] += c * row[f];
  }
}

static void apply_swap(lvmmed_gm_solver *s, double *g, int32_t *p, size_t r, size_t q) {
  size_t n = s->n;
  int32_t pr = p[r], pq = p[q];
  if (s->form == GM_FORM_KB) {
    double *d1 = s->t1, *d2 = s->t1 + n;
    if (n < 2) return;
    const double *bt_q = s->bt + (size_t)pq * n, *bt_r = s->bt + (size_t)pr * n;
    const double *b_q = s->b + (size_t)pq * n, *b_r = s->b + (size_t)pr * n;
    for (size_t a = 0; a < n; a++) {
      d1[a] = bt_q[a] - bt_r[a];
      d2[a] = b_q[a] - b_r[a];
    }
    for (size_t i = 0; i < n; i++) {
      double al = s->as[i * n + r] - s->as[i * n + q];
      double be = s->as[r * n + i] - s->as[q * n + i];
      if (al == 0 && be == 0) continue;
      axpy2(n, al, d1, be, d2, g + i * n);
    }
  } else {
    lawler_grad_entry(s, g, (int32_t)r, pq, 1.0);
    lawler_grad_entry(s, g, (int32_t)r, pr, -1.0);
    lawler_grad_entry(s, g, (int32_t)q, pr, 1.0);
    lawler_grad_entry(s, g, (int32_t)q, pq, -1.0);
  }
  p[r] = pq;
  p[q] = pr;
}

/* Steepest-ascent pairwise-swap local search: evaluate every swap, apply the
 * best one while it improves J' by more than eps. */
double gm_two_opt(lvmmed_gm_solver *s, int32_t *p, int grad_ready) {
  size_t n = s->n;
  double *g = s->g;
  if (!grad_ready) gm_grad_perm(s, p, g);
  size_t cap = 100 * n + 1000;
  for (size_t moves = 0; moves < cap; moves++) {
    double best = s->eps;
    size_t br = 0, bq = 0;
    for (size_t r = 0; r + 1 < n; r++) {
      for (size_t q = r + 1; q < n; q++) {
        double d = swap_delta(s, g, p, r, q);
        if (d > best) {
          best = d;
          br = r;
          bq = q;
        }
      }
    }
    if (br == bq) break;
    apply_swap(s, g, p, br, bq);
  }
  return gm_value(s, p);
}

/* ---- drivers ---- */

static void keep_if_better(const lvmmed_gm_solver *s, const int32_t *cand, double v, int32_t *best,
                           double *best_v) {
  if (v > *best_v) {
    *best_v = v;
    memcpy(best, cand, s->n * sizeof *best);
  }
}

void gm_solve_auto(lvmmed_gm_solver *s, int32_t *out) {
  double best = -HUGE_VAL;
  int32_t *start = s->p0, *cand = s->p2;
  int ready;
  gm_lap_start(s, start);
  gm_ipfp(s, start, cand, auto_patience(s), &ready);
  keep_if_better(s, cand, gm_two_opt(s, cand, ready), out, &best);
  if (s->form == GM_FORM_KB) {
    /* KB problems have no unary term to start from: IPFP from the
     * barycentre (FAQ's start) too. (For Lawler problems its gradient costs
     * O(|Es|·|Et|), several times the rest of the solve, for no gain on
     * LVM-Med-shaped instances; random restarts are the cheaper remedy.) */
    gm_ipfp(s, NULL, cand, auto_patience(s), &ready);
    keep_if_better(s, cand, gm_two_opt(s, cand, ready), out, &best);
  }
  for (int64_t r = 1; r <= s->restarts; r++) {
    gm_random_perm(s, (uint64_t)r, cand);
    keep_if_better(s, cand, gm_two_opt(s, cand, 0), out, &best);
  }
}

void gm_solve_two_opt(lvmmed_gm_solver *s, int32_t *out) {
  double best = -HUGE_VAL;
  int32_t *cand = s->p2;
  gm_lap_start(s, cand);
  keep_if_better(s, cand, gm_two_opt(s, cand, 0), out, &best);
  for (int64_t r = 1; r <= s->restarts; r++) {
    gm_random_perm(s, (uint64_t)r, cand);
    keep_if_better(s, cand, gm_two_opt(s, cand, 0), out, &best);
  }
}
