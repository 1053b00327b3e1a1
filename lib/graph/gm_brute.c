/* Exhaustive search over all n! permutations (n <= 9): the test oracle.
 *
 * Depth-first in lexicographic order; depth d fixes the target of source
 * node d and adds exactly the terms that become known (the unary of d and
 * the pairs between d and the nodes before it), so each leaf's value is a
 * sum in one fixed order. The first permutation with the largest J' wins
 * ties.
 */
#include <math.h>
#include <string.h>

#include "graph/gm_impl.h"

typedef struct brute {
  const lvmmed_gm_solver *s;
  int32_t cur[9];
  int32_t best[9];
  double best_v;
  unsigned used;
} brute;

/* Terms that fixing d ↦ a adds, given cur[0..d). */
static double gain(const brute *bt, size_t d, int32_t a) {
  const lvmmed_gm_solver *s = bt->s;
  size_t n = s->n;
  double t;
  if (s->form == GM_FORM_KB) {
    const double *as = s->as, *b = s->b;
    t = as[d * n + d] * b[(size_t)a * n + (size_t)a];
    for (size_t j = 0; j < d; j++) {
      size_t pj = (size_t)bt->cur[j];
      t += as[d * n + j] * b[(size_t)a * n + pj] + as[j * n + d] * b[pj * n + (size_t)a];
    }
    return t;
  }
  t = s->u[d * n + (size_t)a];
  for (size_t j = 0; j < d; j++) {
    size_t pj = (size_t)bt->cur[j];
    int32_t e = s->sadj[d * n + j];
    if (e >= 0) {
      int32_t f = s->tadj[(size_t)a * n + pj];
      if (f >= 0) t += s->w[(size_t)e * s->mt + (size_t)f];
    }
    e = s->sadj[j * n + d];
    if (e >= 0) {
      int32_t f = s->tadj[pj * n + (size_t)a];
      if (f >= 0) t += s->w[(size_t)e * s->mt + (size_t)f];
    }
  }
  return t;
}

static void search(brute *bt, size_t d, double partial) {
  size_t n = bt->s->n;
  if (d == n) {
    if (partial > bt->best_v) {
      bt->best_v = partial;
      memcpy(bt->best, bt->cur, n * sizeof *bt->cur);
    }
    return;
  }
  for (int32_t a = 0; a < (int32_t)n; a++) {
    if (bt->used >> a & 1u) continue;
    bt->cur[d] = a;
    bt->used |= 1u << a;
    search(bt, d + 1, partial + gain(bt, d, a));
    bt->used &= ~(1u << a);
  }
}

void gm_solve_brute(lvmmed_gm_solver *s, int32_t *p) {
  brute bt;
  memset(&bt, 0, sizeof bt);
  bt.s = s;
  bt.best_v = -HUGE_VAL;
  search(&bt, 0, 0.0);
  memcpy(p, bt.best, s->n * sizeof *p);
}
