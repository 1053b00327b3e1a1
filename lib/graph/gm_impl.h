/* liblvmmed — private layout of lvmmed_gm_solver and the solver internals.
 *
 * Every algorithm works on one internal sense: MAXIMISE J'. Lawler problems
 * are maximised as given; Koopmans–Beckmann problems use A' = σ·A with
 * σ = +1 when maximising and -1 when minimising, so J' = σ·J.
 *
 * The quadratic objective is J'(x) = uᵀx + xᵀMx over the vectorised
 * assignment x (x[i][a] = 1 if node i maps to a), with
 *   Lawler: u = unary, M[(i,a),(j,b)] = W[e][f] for edges e = (i,j), f = (a,b);
 *   KB:     u = 0,     M[(i,a),(j,b)] = A'[i][j] · B[a][b].
 * Its gradient ∇J'(x) = u + (M + Mᵀ)x is an n×n matrix; for a permutation
 * it costs O(|Es|·deg) (Lawler) or O(n³) (KB) and a swap changes it by a
 * sparse (Lawler) or rank-2 (KB) update, which makes the 2-opt swap delta O(1).
 */
#ifndef LVMMED_GRAPH_GM_IMPL_H
#define LVMMED_GRAPH_GM_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"
#include "lvmmed/gm.h"

enum { GM_FORM_NONE = 0, GM_FORM_LAWLER = 1, GM_FORM_KB = 2 };

/** Upper bound on n for every problem form (QAPLIB files included). */
#define GM_MAX_N 4096

struct lvmmed_gm_solver {
  lvmmed_ctx *ctx;
  int64_t method, max_iter, restarts, maximize;

  int form;
  size_t n;

  /* Lawler: distinct directed edges sorted by (tail, head); duplicates of the
   * caller's lists are merged and their affinities summed. */
  double *u;          /* n×n */
  size_t ms, mt;      /* distinct source / target edges */
  int32_t *es, *et;   /* 2·ms / 2·mt: tail, head */
  float *w;           /* ms×mt (kept in float: the input precision, and it stays in L1) */
  int32_t *s_out;     /* n+1 offsets: source edges with tail i are [s_out[i], s_out[i+1]) */
  int32_t *s_in;      /* n+1 offsets into s_in_e */
  int32_t *s_in_e;    /* source edges by head */
  int32_t *t_out;     /* n+1 offsets (target edges are contiguous by tail) */
  int32_t *t_in;      /* n+1 offsets into t_in_e */
  int32_t *t_in_e;    /* target edges by head */
  int32_t *t_in_tail; /* tail of each entry of t_in_e (saves a dependent load) */
  int32_t *t_head;    /* head of each target edge, contiguous */
  int32_t *sadj;      /* n×n: index of source edge (i, j) or -1 */
  int32_t *tadj;      /* n×n: index of target edge (a, b) or -1 */
  double lawler_eps;  /* rounding threshold of the Lawler data (set with it) */
  void *edge_block;   /* owns u, es, et, w and the offset tables */
  size_t edge_cap;    /* bytes of edge_block */

  /* Koopmans–Beckmann. */
  double *a, *b;      /* n×n, as given */
  void *kb_block;
  size_t kb_cap;

  /* Workspace for n (allocated with the problem, reused while it fits). */
  void *ws_block;
  size_t ws_cap;
  void *lap_scratch;
  double *cost;       /* n×n LAP input */
  double *g, *gb;     /* n×n gradients */
  double *t1, *t2, *t3; /* n×n temporaries (continuous iterates, KB products) */
  double *as, *bt;    /* KB: A' = σ·A and Bᵀ */
  int32_t *p0, *p1, *p2, *p3, *p4; /* n-entry permutations */

  /* Set by gm_prepare for the current solve. */
  double sigma;       /* sense of the user objective relative to J' */
  double eps;         /* smallest improvement that counts */
};

/* ---- shared internals (gm_local.c unless noted) ---- */

/** Fills the per-solve fields (A', Bᵀ, eps) before any algorithm runs. */
void gm_prepare(lvmmed_gm_solver *s);

/** J'(p) of a permutation (internal sense). */
double gm_value(const lvmmed_gm_solver *s, const int32_t *p);

/** uᵀp (0 for KB). */
double gm_unary_value(const lvmmed_gm_solver *s, const int32_t *p);

/** g = ∇J' at permutation p. */
void gm_grad_perm(const lvmmed_gm_solver *s, const int32_t *p, double *g);

/** g = ∇J' at the barycentre (all entries 1/n) of a KB problem; returns J'
 *  there, *ux = 0. Uses s->t1, s->t2, s->t3 and s->gb as scratch. */
double gm_grad_barycentre(const lvmmed_gm_solver *s, double *g, double *ux);

/** p = argmax_perm Σ m[i][p[i]] (exact LAP; uses s->cost and s->lap_scratch). */
void gm_lap_max(lvmmed_gm_solver *s, const double *m, int32_t *p);

/** Starting permutation "from the LAP solution": the unary LAP (Lawler) or the
 *  Gilmore–Lawler linearisation's LAP (KB). */
void gm_lap_start(lvmmed_gm_solver *s, int32_t *p);

/** Uniform random permutation from stream `stream` of the context seed. */
void gm_random_perm(const lvmmed_gm_solver *s, uint64_t stream, int32_t *p);

/** IPFP from permutation p (or, KB only, from the barycentre when p is NULL); the best
 *  permutation seen goes to out. patience > 0 stops after that many rounds
 *  without a better permutation. *grad_ready (may be NULL) tells whether
 *  s->g holds ∇J'(out) on return. Returns J'(out). */
double gm_ipfp(lvmmed_gm_solver *s, const int32_t *p, int32_t *out, int64_t patience,
               int *grad_ready);

/** Best-improvement 2-opt from p (in place); grad_ready: s->g already holds
 *  ∇J'(p). Returns J'(p). */
double gm_two_opt(lvmmed_gm_solver *s, int32_t *p, int grad_ready);

/** The AUTO and TWO_OPT drivers (with restarts). */
void gm_solve_auto(lvmmed_gm_solver *s, int32_t *p);
void gm_solve_two_opt(lvmmed_gm_solver *s, int32_t *p);

/** Spectral matching and RRWM (gm_spectral.c). */
void gm_solve_spectral(lvmmed_gm_solver *s, int32_t *p);
void gm_solve_rrwm(lvmmed_gm_solver *s, int32_t *p);

/** Exhaustive search (gm_brute.c); n <= 9. */
void gm_solve_brute(lvmmed_gm_solver *s, int32_t *p);

/** Installs a validated Koopmans–Beckmann problem (gm_solver.c); a and b
 *  may point into the solver's own block. fn names the caller in messages. */
lvmmed_status gm_install_kb(lvmmed_gm_solver *s, size_t n, const double *a, const double *b,
                            const char *fn);

#endif /* LVMMED_GRAPH_GM_IMPL_H */
