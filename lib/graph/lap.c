/* Exact linear assignment on dense double matrices.
 *
 * Square problems: Jonker & Volgenant (1987). Column reduction gives every
 * column its cheapest row; reduction transfer moves slack from singly
 * assigned rows into column prices; two passes of augmenting row reduction
 * settle most remaining rows cheaply; the rest get shortest augmenting paths
 * (Dijkstra on reduced costs with the column prices as potentials).
 * Rectangular problems (rows < cols) skip the initialisation: shortest paths
 * from zero prices keep every unassigned column at price 0, which is what
 * optimality needs when columns may stay unused.
 *
 * Invariant of every phase: each assigned row i sits on a column j with
 * c[i][j] - v[j] equal to the minimum of its row's reduced costs, so the
 * Dijkstra edge lengths c[i][k] - v[k] - (c[i][j] - v[j]) are >= 0.
 */
#include <float.h>
#include <math.h>
#include <string.h>

#include "core/core.h"
#include "graph/lap.h"
#include "lvmmed/gm.h"

typedef struct lap_work {
  double *v;        /* column prices (cols) */
  double *d;        /* shortest-path distances (cols) */
  int32_t *y;       /* row of each column, -1 if free (cols) */
  int32_t *pred;    /* predecessor row on the path; column-reduction argmin (cols) */
  int32_t *col;     /* column order of a search: ready | todo | unscanned (cols) */
  int32_t *free_r;  /* free rows (rows) */
  int32_t *matches; /* column-reduction hits per row (rows) */
} lap_work;

static size_t align8(size_t n) { return (n + 7u) & ~(size_t)7u; }

size_t lvmmed__lap_scratch_size(size_t rows, size_t cols) {
  if (cols > SIZE_MAX / 64 || rows > SIZE_MAX / 64) return 0;
  return 2 * cols * sizeof(double) + 3 * align8(cols * sizeof(int32_t)) +
         2 * align8(rows * sizeof(int32_t));
}

static lap_work carve(void *scratch, size_t rows, size_t cols) {
  lap_work w;
  unsigned char *p = scratch;
  w.v = (double *)(void *)p;
  p += cols * sizeof(double);
  w.d = (double *)(void *)p;
  p += cols * sizeof(double);
  w.y = (int32_t *)(void *)p;
  p += align8(cols * sizeof(int32_t));
  w.pred = (int32_t *)(void *)p;
  p += align8(cols * sizeof(int32_t));
  w.col = (int32_t *)(void *)p;
  p += align8(cols * sizeof(int32_t));
  w.free_r = (int32_t *)(void *)p;
  p += align8(rows * sizeof(int32_t));
  w.matches = (int32_t *)(void *)p;
  return w;
}

/* Column minima and their first rows, reading the matrix by rows. */
static void column_minima(size_t n, const double *c, double *dmin, int32_t *arg) {
  memcpy(dmin, c, n * sizeof *dmin);
  for (size_t j = 0; j < n; j++) arg[j] = 0;
  for (size_t i = 1; i < n; i++) {
    const double *row = c + i * n;
    for (size_t j = 0; j < n; j++) {
      if (row[j] < dmin[j]) {
        dmin[j] = row[j];
        arg[j] = (int32_t)i;
      }
    }
  }
}

/* Smallest and second smallest of row[j] - v[j] with their columns (j1 != j2;
 * n >= 2). A plain loop: after the first few columns the branches are
 * almost always predicted, which beats branch-free vector code here. */
static void two_smallest(size_t n, const double *row, const double *v, double *u1, int32_t *j1,
                         double *u2, int32_t *j2) {
  double b1 = row[0] - v[0], b2 = DBL_MAX;
  int32_t k1 = 0, k2 = -1;
  for (size_t j = 1; j < n; j++) {
    double h = row[j] - v[j];
    if (h < b2) {
      if (h >= b1) {
        b2 = h;
        k2 = (int32_t)j;
      } else {
        b2 = b1;
        k2 = k1;
        b1 = h;
        k1 = (int32_t)j;
      }
    }
  }
  *u1 = b1;
  *j1 = k1;
  *u2 = b2;
  *j2 = k2;
}

/* ---- Jonker–Volgenant initialisation (square only) ---- */

/* Column reduction and reduction transfer. Returns the number of free rows,
 * listed in w->free_r. */
static size_t init_columns(size_t n, const double *c, int32_t *x, lap_work *w) {
  column_minima(n, c, w->d, w->pred);
  for (size_t i = 0; i < n; i++) {
    x[i] = -1;
    w->matches[i] = 0;
  }
  /* Reverse column order as in the original paper: a row that is the minimum
   * of several columns keeps the one with the smallest minimum. */
  for (size_t jj = n; jj-- > 0;) {
    int32_t i = w->pred[jj];
    w->v[jj] = w->d[jj];
    if (w->matches[i]++ == 0) {
      x[i] = (int32_t)jj;
      w->y[jj] = i;
    } else if (w->v[jj] < w->v[x[i]]) {
      int32_t j1 = x[i];
      x[i] = (int32_t)jj;
      w->y[jj] = i;
      w->y[j1] = -1;
    } else {
      w->y[jj] = -1;
    }
  }
  size_t nfree = 0;
  for (size_t i = 0; i < n; i++) {
    if (w->matches[i] == 0) {
      w->free_r[nfree++] = (int32_t)i;
    } else if (w->matches[i] == 1) {
      /* Row i's slack beyond its own column becomes a lower price of that column. */
      double u1, u2;
      int32_t j1, j2;
      two_smallest(n, c + i * n, w->v, &u1, &j1, &u2, &j2);
      /* u1 = 0 is attained at x[i]; the slack is the best other reduced cost. */
      double m = j1 == x[i] ? u2 : u1;
      w->v[x[i]] -= m;
    }
  }
  return nfree;
}

/* Augmenting row reduction: each free row takes its cheapest column, lowering
 * that column's price to the row's second-best reduced cost, and evicts the
 * previous owner. Two passes over the free list; a step budget guards against
 * the long chains of small price changes (and floating-point creep), leaving
 * the rest to shortest paths. Rows still free are returned in w->free_r. */
static size_t augmenting_row_reduction(size_t n, const double *c, int32_t *x, lap_work *w,
                                       size_t nfree) {
  size_t budget = 4 * n + 64; /* measured: 2n..8n all near best for n = 256..2048 */
  for (int pass = 0; pass < 2 && nfree > 0; pass++) {
    size_t k = 0, prev = nfree;
    nfree = 0;
    while (k < prev) {
      if (budget-- == 0) {
        /* Positions k.. are still unread: keep them free. */
        while (k < prev) w->free_r[nfree++] = w->free_r[k++];
        return nfree;
      }
      int32_t i = w->free_r[k++];
      double u1, u2;
      int32_t j1, j2;
      two_smallest(n, c + (size_t)i * n, w->v, &u1, &j1, &u2, &j2);
      int32_t i0 = w->y[j1];
      int strict = u1 < u2;
      if (strict) {
        w->v[j1] -= u2 - u1;
      } else if (i0 >= 0) {
        /* Tie: take the second-best column instead of evicting with no progress. */
        j1 = j2;
        i0 = w->y[j2];
      }
      if (i0 >= 0) x[i0] = -1;
      x[i] = j1;
      w->y[j1] = i;
      if (i0 >= 0) {
        if (strict)
          w->free_r[--k] = i0; /* retry the evicted row at once */
        else
          w->free_r[nfree++] = i0;
      }
    }
  }
  return nfree;
}

/* ---- shortest augmenting paths ---- */

/* Dijkstra from free row f over columns with reduced costs c - v (edges along
 * assigned columns are non-negative by the invariant), then the price update
 * and the augmentation. Columns at the current minimum distance are handled
 * as a batch (the "todo" list), so integer costs with many ties stay cheap. */
static void augment(size_t ncols, const double *c, int32_t f, int32_t *x, lap_work *w) {
  double *d = w->d, *v = w->v;
  int32_t *col = w->col, *pred = w->pred, *y = w->y;
  const double *rf = c + (size_t)f * ncols;
  for (size_t j = 0; j < ncols; j++) {
    d[j] = rf[j] - v[j];
    pred[j] = f;
    col[j] = (int32_t)j;
  }
  size_t lo = 0, up = 0, ready = 0;
  double mn = 0;
  int32_t end = -1;
  for (;;) {
    if (up == lo) {
      /* Move every unscanned column at the new minimum distance to todo. */
      ready = lo;
      mn = d[col[up++]];
      for (size_t k = up; k < ncols; k++) {
        int32_t j = col[k];
        double h = d[j];
        if (h <= mn) {
          if (h < mn) {
            up = lo;
            mn = h;
          }
          col[k] = col[up];
          col[up++] = j;
        }
      }
      for (size_t k = lo; k < up; k++) {
        if (y[col[k]] < 0) {
          end = col[k];
          goto found;
        }
      }
    }
    /* Scan the row owning the next todo column. */
    int32_t j1 = col[lo++];
    int32_t i = y[j1];
    const double *r = c + (size_t)i * ncols;
    double h = r[j1] - v[j1] - mn;
    for (size_t k = up; k < ncols; k++) {
      int32_t j = col[k];
      double dj = r[j] - v[j] - h;
      if (dj < d[j]) {
        pred[j] = i;
        if (dj == mn) {
          if (y[j] < 0) {
            end = j;
            goto found;
          }
          col[k] = col[up];
          col[up++] = j;
        }
        d[j] = dj;
      }
    }
  }
found:
  /* Prices of the columns made ready before the last minimum search (the
   * later ones sit at distance mn and would not move). */
  for (size_t k = 0; k < ready; k++) {
    int32_t j = col[k];
    v[j] += d[j] - mn;
  }
  for (;;) {
    int32_t i = pred[end];
    y[end] = i;
    int32_t next = x[i];
    x[i] = end;
    if (i == f) break;
    end = next;
  }
}

void lvmmed__lap_min(size_t rows, size_t cols, const double *cost, int32_t *row_to_col,
                     void *scratch) {
  if (rows == 0) return;
  lap_work w = carve(scratch, rows, cols);
  size_t nfree;
  if (rows == cols && rows > 1) {
    nfree = init_columns(rows, cost, row_to_col, &w);
    nfree = augmenting_row_reduction(rows, cost, row_to_col, &w, nfree);
  } else {
    for (size_t j = 0; j < cols; j++) {
      w.v[j] = 0;
      w.y[j] = -1;
    }
    for (size_t i = 0; i < rows; i++) {
      row_to_col[i] = -1;
      w.free_r[i] = (int32_t)i;
    }
    nfree = rows;
  }
  for (size_t k = 0; k < nfree; k++) augment(cols, cost, w.free_r[k], row_to_col, &w);
}

/* ---- public entry ---- */

lvmmed_status lvmmed_lap_solve(lvmmed_ctx *ctx, size_t rows, size_t cols, const double *cost,
                               int maximize, int32_t *assignment, double *objective) {
  static const char fn[] = "lvmmed_lap_solve";
  if (!ctx) return LVMMED_ERR_INVALID_ARGUMENT;
  if (rows > INT32_MAX || cols > INT32_MAX)
    return lvmmed__fail(ctx, LVMMED_ERR_OUT_OF_RANGE, "%s: %zu x %zu exceeds %d rows or columns", fn,
                        rows, cols, INT32_MAX);
  size_t count;
  if (!lvmmed__mul_size(rows, cols, &count) || count > SIZE_MAX / sizeof(double))
    return lvmmed__fail(ctx, LVMMED_ERR_OUT_OF_RANGE, "%s: %zu x %zu elements overflow", fn, rows,
                        cols);
  if (rows > 0 && !assignment)
    return lvmmed__fail(ctx, LVMMED_ERR_INVALID_ARGUMENT, "%s: assignment is NULL", fn);
  if (count > 0 && !cost)
    return lvmmed__fail(ctx, LVMMED_ERR_INVALID_ARGUMENT, "%s: cost is NULL", fn);
  double lo = 0, hi = 0;
  for (size_t k = 0; k < count; k++) {
    double c = cost[k];
    if (!isfinite(c))
      return lvmmed__fail(ctx, LVMMED_ERR_NUMERIC, "%s: cost[%zu][%zu] = %g is not finite", fn,
                          k / cols, k % cols, c);
    if (k == 0 || c < lo) lo = c;
    if (k == 0 || c > hi) hi = c;
  }
  /* Prices and path lengths stay within about (n + 1) times the spread. */
  size_t n_big = rows > cols ? rows : cols;
  double spread = hi - lo;
  if (!(spread <= DBL_MAX / 8 / ((double)n_big + 1)))
    return lvmmed__fail(ctx, LVMMED_ERR_OUT_OF_RANGE,
                        "%s: cost spread %g (from %g to %g) too large for %zu rows/columns", fn,
                        spread, lo, hi, n_big);
  size_t nr = rows, nc = cols;
  int transpose = rows > cols;
  if (transpose) {
    nr = cols;
    nc = rows;
  }
  if (nr == 0) {
    for (size_t i = 0; i < rows; i++) assignment[i] = -1;
    if (objective) *objective = 0;
    return LVMMED_OK;
  }
  /* A working matrix only when the kernel cannot read cost as it is. */
  int need_copy = transpose || maximize;
  size_t scratch_bytes = lvmmed__lap_scratch_size(nr, nc);
  size_t work_bytes = need_copy ? count * sizeof(double) : 0;
  size_t sol_bytes = nr * sizeof(int32_t);
  unsigned char *block = lvmmed__alloc(ctx, work_bytes + scratch_bytes + sol_bytes);
  if (!block || scratch_bytes == 0) {
    lvmmed__free(ctx, block);
    return lvmmed__fail(ctx, LVMMED_ERR_OUT_OF_MEMORY, "%s: no memory for %zu x %zu", fn, rows,
                        cols);
  }
  double *work = (double *)(void *)block;
  void *scratch = block + work_bytes;
  int32_t *sol = (int32_t *)(void *)(block + work_bytes + scratch_bytes);
  const double *m = cost;
  if (need_copy) {
    double sign = maximize ? -1.0 : 1.0;
    if (transpose) {
      for (size_t i = 0; i < rows; i++)
        for (size_t j = 0; j < cols; j++) work[j * rows + i] = sign * cost[i * cols + j];
    } else {
      for (size_t k = 0; k < count; k++) work[k] = sign * cost[k];
    }
    m = work;
  }
  lvmmed__lap_min(nr, nc, m, sol, scratch);
  if (transpose) {
    for (size_t i = 0; i < rows; i++) assignment[i] = -1;
    for (size_t j = 0; j < nr; j++) assignment[sol[j]] = (int32_t)j;
  } else {
    memcpy(assignment, sol, rows * sizeof *assignment);
  }
  if (objective) {
    double total = 0;
    for (size_t i = 0; i < rows; i++)
      if (assignment[i] >= 0) total += cost[i * cols + (size_t)assignment[i]];
    *objective = total;
  }
  lvmmed__free(ctx, block);
  return LVMMED_OK;
}
