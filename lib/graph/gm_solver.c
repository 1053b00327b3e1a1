/* lvmmed_gm_solver: lifetime, options, problem set-up, solve dispatch, objective. */
#include <math.h>
#include <string.h>

#include "graph/gm_impl.h"
#include "graph/lap.h"

#define MAX_ITER_LIMIT 100000
#define RESTARTS_LIMIT 1000000
#define BRUTE_MAX_N 9

static const char *const method_names[] = {"auto", "lap", "brute", "sm", "rrwm", "ipfp", "2opt"};

const char *lvmmed_gm_method_name(lvmmed_gm_method method) {
  if ((int)method < 0 || (size_t)method >= sizeof method_names / sizeof method_names[0])
    return "unknown";
  return method_names[method];
}

lvmmed_status lvmmed_gm_option_bounds(lvmmed_gm_option option, int64_t *min_value,
                                      int64_t *max_value) {
  int64_t lo, hi;
  switch (option) {
    case LVMMED_GM_OPT_METHOD: lo = LVMMED_GM_AUTO, hi = LVMMED_GM_TWO_OPT; break;
    case LVMMED_GM_OPT_MAX_ITER: lo = 1, hi = MAX_ITER_LIMIT; break;
    case LVMMED_GM_OPT_RESTARTS: lo = 0, hi = RESTARTS_LIMIT; break;
    case LVMMED_GM_OPT_MAXIMIZE: lo = 0, hi = 1; break;
    default: return LVMMED_ERR_INVALID_ARGUMENT;
  }
  if (min_value) *min_value = lo;
  if (max_value) *max_value = hi;
  return LVMMED_OK;
}

lvmmed_status lvmmed_gm_solver_create(lvmmed_ctx *ctx, lvmmed_gm_solver **out) {
  if (out) *out = NULL;
  if (!ctx) return LVMMED_ERR_INVALID_ARGUMENT;
  if (!out)
    return lvmmed__fail(ctx, LVMMED_ERR_INVALID_ARGUMENT, "lvmmed_gm_solver_create: out is NULL");
  lvmmed_gm_solver *s = lvmmed__calloc(ctx, 1, sizeof *s);
  if (!s) return lvmmed__fail(ctx, LVMMED_ERR_OUT_OF_MEMORY, "lvmmed_gm_solver_create: no memory");
  s->ctx = lvmmed_ctx_retain(ctx);
  s->method = LVMMED_GM_AUTO;
  s->max_iter = 50;
  s->restarts = 0;
  s->maximize = 0;
  *out = s;
  return LVMMED_OK;
}

void lvmmed_gm_solver_free(lvmmed_gm_solver *s) {
  if (!s) return;
  lvmmed_ctx *ctx = s->ctx;
  lvmmed__free(ctx, s->edge_block);
  lvmmed__free(ctx, s->kb_block);
  lvmmed__free(ctx, s->ws_block);
  lvmmed__free(ctx, s);
  lvmmed_ctx_release(ctx);
}

lvmmed_ctx *lvmmed_gm_solver_ctx(const lvmmed_gm_solver *s) { return s ? s->ctx : NULL; }

lvmmed_status lvmmed_gm_solver_set_option(lvmmed_gm_solver *s, lvmmed_gm_option option,
                                          int64_t value) {
  if (!s) return LVMMED_ERR_INVALID_ARGUMENT;
  int64_t lo, hi;
  if (lvmmed_gm_option_bounds(option, &lo, &hi) != LVMMED_OK)
    return lvmmed__fail(s->ctx, LVMMED_ERR_INVALID_ARGUMENT,
                        "lvmmed_gm_solver_set_option: unknown option %d", (int)option);
  if (value < lo || value > hi)
    return lvmmed__fail(s->ctx, LVMMED_ERR_OUT_OF_RANGE,
                        "lvmmed_gm_solver_set_option: option %d = %lld outside [%lld, %lld]",
                        (int)option, (long long)value, (long long)lo, (long long)hi);
  switch (option) {
    case LVMMED_GM_OPT_METHOD: s->method = value; break;
    case LVMMED_GM_OPT_MAX_ITER: s->max_iter = value; break;
    case LVMMED_GM_OPT_RESTARTS: s->restarts = value; break;
    case LVMMED_GM_OPT_MAXIMIZE: s->maximize = value; break;
  }
  return LVMMED_OK;
}

lvmmed_status lvmmed_gm_solver_get_option(const lvmmed_gm_solver *s, lvmmed_gm_option option,
                                          int64_t *value) {
  if (!s) return LVMMED_ERR_INVALID_ARGUMENT;
  if (!value)
    return lvmmed__fail(s->ctx, LVMMED_ERR_INVALID_ARGUMENT,
                        "lvmmed_gm_solver_get_option: value is NULL");
  switch (option) {
    case LVMMED_GM_OPT_METHOD: *value = s->method; return LVMMED_OK;
    case LVMMED_GM_OPT_MAX_ITER: *value = s->max_iter; return LVMMED_OK;
    case LVMMED_GM_OPT_RESTARTS: *value = s->restarts; return LVMMED_OK;
    case LVMMED_GM_OPT_MAXIMIZE: *value = s->maximize; return LVMMED_OK;
  }
  return lvmmed__fail(s->ctx, LVMMED_ERR_INVALID_ARGUMENT,
                      "lvmmed_gm_solver_get_option: unknown option %d", (int)option);
}

size_t lvmmed_gm_problem_size(const lvmmed_gm_solver *s) {
  return s && s->form != GM_FORM_NONE ? s->n : 0;
}

/* ---- memory ---- */

/* Makes *block hold at least bytes (contents are not kept). */
static int reserve(lvmmed_ctx *ctx, void **block, size_t *cap, size_t bytes) {
  if (*block && *cap >= bytes) return 1;
  void *p = lvmmed__alloc(ctx, bytes);
  if (!p) return 0;
  lvmmed__free(ctx, *block);
  *block = p;
  *cap = bytes;
  return 1;
}

/* Bump allocator over a block: 64-byte aligned slices. */
typedef struct carver {
  unsigned char *p;
  size_t used;
} carver;

static size_t round64(size_t n) { return (n + 63u) & ~(size_t)63u; }

static void *take(carver *c, size_t bytes) {
  void *r = c->p ? c->p + c->used : NULL;
  c->used += round64(bytes);
  return r;
}

/* Workspace for problems of size n (kb: with the KB-only matrices). */
static int reserve_workspace(lvmmed_gm_solver *s, size_t n, int kb) {
  size_t nn = n * n * sizeof(double), pn = n * sizeof(int32_t);
  size_t lap = lvmmed__lap_scratch_size(n, n);
  carver c = {NULL, 0};
  for (int pass = 0; pass < 2; pass++) {
    if (pass == 1) {
      if (!reserve(s->ctx, &s->ws_block, &s->ws_cap, c.used)) return 0;
      c.p = s->ws_block;
      c.used = 0;
    }
    s->lap_scratch = take(&c, lap);
    s->cost = take(&c, nn);
    s->g = take(&c, nn);
    s->gb = take(&c, nn);
    s->t1 = take(&c, nn);
    s->t2 = take(&c, nn);
    s->t3 = take(&c, nn);
    s->as = kb ? take(&c, nn) : NULL;
    s->bt = kb ? take(&c, nn) : NULL;
    s->p0 = take(&c, pn);
    s->p1 = take(&c, pn);
    s->p2 = take(&c, pn);
    s->p3 = take(&c, pn);
    s->p4 = take(&c, pn);
  }
  return 1;
}

/* ---- Lawler problems ---- */

/* Groups the m directed edges of `in` by tail (stable counting sort) and
 * merges duplicates: writes the distinct edges to out (2 per edge), their
 * per-tail offsets to off (n+1), the n×n index table adj (-1 where no edge),
 * and for each input edge its distinct index to map. order is m entries of
 * scratch. Returns the number of distinct edges; *identity tells whether
 * map is the identity (edges already grouped by tail, no duplicates). */
static size_t group_edges(size_t n, size_t m, const int32_t *in, int32_t *out, int32_t *off,
                          int32_t *adj, int32_t *map, int32_t *order, int *identity) {
  memset(off, 0, (n + 1) * sizeof *off);
  for (size_t e = 0; e < m; e++) off[in[2 * e] + 1]++;
  for (size_t i = 0; i < n; i++) off[i + 1] += off[i];
  for (size_t e = 0; e < m; e++) order[off[in[2 * e]]++] = (int32_t)e; /* off[t]: t's cursor */
  for (size_t k = 0; k < n * n; k++) adj[k] = -1;
  memset(off, 0, (n + 1) * sizeof *off);
  size_t d = 0;
  *identity = 1;
  for (size_t k = 0; k < m; k++) {
    int32_t e = order[k], t = in[2 * e], h = in[2 * e + 1];
    int32_t *slot = adj + (size_t)t * n + (size_t)h;
    if (*slot < 0) {
      *slot = (int32_t)d;
      out[2 * d] = t;
      out[2 * d + 1] = h;
      off[t + 1]++;
      d++;
    }
    map[e] = *slot;
    if (map[e] != (int32_t)e) *identity = 0;
  }
  for (size_t i = 0; i < n; i++) off[i + 1] += off[i];
  return d;
}

/* Returns the largest |x[k]| of count floats, or -1 if some entry is inf or
 * NaN (x·0 is then NaN). The LVM-Med edge-pair block is scanned once per
 * graph, so with GCC/Clang the loop runs on 4-float vectors with
 * independent accumulators. */
static float max_abs_or_bad(const float *x, size_t count) {
  float r = 0, bad = 0;
  size_t i = 0;
#if defined(__GNUC__) || defined(__clang__)
  typedef float v4f __attribute__((vector_size(16)));
  typedef int32_t v4i __attribute__((vector_size(16)));
  const v4i absmask = {0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff};
  v4f m0 = {0}, m1 = {0}, m2 = {0}, m3 = {0}, z0 = {0}, z1 = {0}, z2 = {0}, z3 = {0};
#  define SCAN_STEP(m, z, off)                                       \
    do {                                                            \
      v4f v_;                                                       \
      memcpy(&v_, x + i + (off), sizeof v_);                        \
      v4f a_ = (v4f)((v4i)v_ & absmask);                            \
      v4i gt_ = a_ > m;                                             \
      m = (v4f)((gt_ & (v4i)a_) | (~gt_ & (v4i)m));                 \
      z += v_ * 0.0f;                                               \
    } while (0)
  for (; i + 16 <= count; i += 16) {
    SCAN_STEP(m0, z0, 0);
    SCAN_STEP(m1, z1, 4);
    SCAN_STEP(m2, z2, 8);
    SCAN_STEP(m3, z3, 12);
  }
#  undef SCAN_STEP
  for (int q = 0; q < 4; q++) {
    float c[4] = {m0[q], m1[q], m2[q], m3[q]};
    for (int l = 0; l < 4; l++) r = c[l] > r ? c[l] : r;
    bad += (z0[q] + z1[q]) + (z2[q] + z3[q]);
  }
#endif
  for (; i < count; i++) {
    float a = fabsf(x[i]);
    r = a > r ? a : r;
    bad += x[i] * 0.0f;
  }
  return bad == 0.0f ? r : -1.0f;
}

/* The first non-finite entry (for the error message); count if none. */
static size_t first_non_finite(const float *x, size_t count) {
  size_t k = 0;
  while (k < count && isfinite(x[k])) k++;
  return k;
}

/* In-edge lists: in_e holds the edges ordered by head, in_off the offsets. */
static void by_head(size_t n, size_t m, const int32_t *edges, int32_t *in_off, int32_t *in_e) {
  memset(in_off, 0, (n + 1) * sizeof *in_off);
  for (size_t e = 0; e < m; e++) in_off[edges[2 * e + 1] + 1]++;
  for (size_t i = 0; i < n; i++) in_off[i + 1] += in_off[i];
  for (size_t e = 0; e < m; e++) in_e[in_off[edges[2 * e + 1]]++] = (int32_t)e;
  for (size_t i = n; i > 0; i--) in_off[i] = in_off[i - 1];
  in_off[0] = 0;
}

static lvmmed_status check_edges(const lvmmed_gm_solver *s, const char *which, size_t n, size_t m,
                                 const int32_t *edges) {
  for (size_t e = 0; e < m; e++) {
    int32_t t = edges[2 * e], h = edges[2 * e + 1];
    if (t < 0 || h < 0 || (size_t)t >= n || (size_t)h >= n)
      return lvmmed__fail(s->ctx, LVMMED_ERR_OUT_OF_RANGE,
                          "lvmmed_gm_set_problem: %s edge %zu = (%d, %d) outside [0, %zu)", which,
                          e, (int)t, (int)h, n);
    if (t == h)
      return lvmmed__fail(s->ctx, LVMMED_ERR_INVALID_ARGUMENT,
                          "lvmmed_gm_set_problem: %s edge %zu = (%d, %d) is a self loop", which, e,
                          (int)t, (int)h);
  }
  return LVMMED_OK;
}

lvmmed_status lvmmed_gm_set_problem(lvmmed_gm_solver *s, size_t n, const float *unary,
                                    size_t n_src_edges, const int32_t *src_edges,
                                    size_t n_tgt_edges, const int32_t *tgt_edges,
                                    const float *edge_affinity) {
  static const char fn[] = "lvmmed_gm_set_problem";
  if (!s) return LVMMED_ERR_INVALID_ARGUMENT;
  if (n == 0 || n > GM_MAX_N)
    return lvmmed__fail(s->ctx, LVMMED_ERR_OUT_OF_RANGE, "%s: n = %zu outside [1, %d]", fn, n,
                        GM_MAX_N);
  if (!unary) return lvmmed__fail(s->ctx, LVMMED_ERR_INVALID_ARGUMENT, "%s: unary is NULL", fn);
  if ((n_src_edges && !src_edges) || (n_tgt_edges && !tgt_edges))
    return lvmmed__fail(s->ctx, LVMMED_ERR_INVALID_ARGUMENT, "%s: %s edge list is NULL", fn,
                        n_src_edges && !src_edges ? "source" : "target");
  /* Duplicates are allowed but bounded: at most n² entries per list. */
  if (n_src_edges > n * n || n_tgt_edges > n * n)
    return lvmmed__fail(s->ctx, LVMMED_ERR_OUT_OF_RANGE,
                        "%s: %zu source / %zu target edges exceed n² = %zu", fn, n_src_edges,
                        n_tgt_edges, n * n);
  size_t npairs;
  if (!lvmmed__mul_size(n_src_edges, n_tgt_edges, &npairs) ||
      npairs > (SIZE_MAX / 4) / sizeof(double))
    return lvmmed__fail(s->ctx, LVMMED_ERR_OUT_OF_RANGE, "%s: %zu x %zu edge pairs overflow", fn,
                        n_src_edges, n_tgt_edges);
  if (npairs && !edge_affinity)
    return lvmmed__fail(s->ctx, LVMMED_ERR_INVALID_ARGUMENT, "%s: edge_affinity is NULL", fn);
  lvmmed_status st = check_edges(s, "source", n, n_src_edges, src_edges);
  if (st == LVMMED_OK) st = check_edges(s, "target", n, n_tgt_edges, tgt_edges);
  if (st != LVMMED_OK) return st;
  float umax = max_abs_or_bad(unary, n * n);
  if (umax < 0) {
    size_t k = first_non_finite(unary, n * n);
    return lvmmed__fail(s->ctx, LVMMED_ERR_NUMERIC, "%s: unary[%zu][%zu] = %g is not finite", fn,
                        k / n, k % n, (double)unary[k]);
  }
  float wmax = max_abs_or_bad(edge_affinity, npairs);
  if (wmax < 0) {
    size_t k = first_non_finite(edge_affinity, npairs);
    return lvmmed__fail(s->ctx, LVMMED_ERR_NUMERIC,
                        "%s: edge_affinity[%zu][%zu] = %g is not finite", fn, k / n_tgt_edges,
                        k % n_tgt_edges, (double)edge_affinity[k]);
  }

  size_t ms_in = n_src_edges, mt_in = n_tgt_edges, mmax = ms_in > mt_in ? ms_in : mt_in;
  size_t ib = sizeof(int32_t);
  carver c = {NULL, 0};
  double *u = NULL;
  float *w = NULL;
  int32_t *es = NULL, *et = NULL, *s_out = NULL, *s_in = NULL, *s_in_e = NULL, *t_out = NULL,
          *t_in = NULL, *t_in_e = NULL, *map_s = NULL, *map_t = NULL, *order = NULL,
          *sadj = NULL, *tadj = NULL, *t_in_tail = NULL, *t_head = NULL;
  for (int pass = 0; pass < 2; pass++) {
    if (pass == 1) {
      if (!reserve(s->ctx, &s->edge_block, &s->edge_cap, c.used) ||
          !reserve_workspace(s, n, 0)) {
        s->form = GM_FORM_NONE;
        s->n = 0;
        return lvmmed__fail(s->ctx, LVMMED_ERR_OUT_OF_MEMORY, "%s: no memory for n = %zu", fn, n);
      }
      c.p = s->edge_block;
      c.used = 0;
    }
    u = take(&c, n * n * sizeof(double));
    w = take(&c, npairs * sizeof(float));
    es = take(&c, 2 * ms_in * ib);
    et = take(&c, 2 * mt_in * ib);
    s_out = take(&c, (n + 1) * ib);
    s_in = take(&c, (n + 1) * ib);
    s_in_e = take(&c, ms_in * ib);
    t_out = take(&c, (n + 1) * ib);
    t_in = take(&c, (n + 1) * ib);
    t_in_e = take(&c, mt_in * ib);
    t_in_tail = take(&c, mt_in * ib);
    t_head = take(&c, mt_in * ib);
    map_s = take(&c, ms_in * ib);
    map_t = take(&c, mt_in * ib);
    order = take(&c, mmax * ib);
    sadj = take(&c, n * n * ib);
    tadj = take(&c, n * n * ib);
  }
  for (size_t k = 0; k < n * n; k++) u[k] = unary[k];
  int ident_s, ident_t;
  size_t ms = group_edges(n, ms_in, src_edges, es, s_out, sadj, map_s, order, &ident_s);
  size_t mt = group_edges(n, mt_in, tgt_edges, et, t_out, tadj, map_t, order, &ident_t);
  by_head(n, ms, es, s_in, s_in_e);
  by_head(n, mt, et, t_in, t_in_e);
  for (size_t k = 0; k < mt; k++) {
    t_in_tail[k] = et[2 * (size_t)t_in_e[k]];
    t_head[k] = et[2 * k + 1];
  }
  if (ident_s && ident_t) {
    if (npairs) memcpy(w, edge_affinity, npairs * sizeof *w);
  } else if (ms == ms_in && mt == mt_in) {
    /* No duplicates: a permutation of rows and columns. */
    for (size_t e = 0; e < ms_in; e++) {
      float *dst = w + (size_t)map_s[e] * mt;
      const float *src = edge_affinity + e * mt_in;
      for (size_t f = 0; f < mt_in; f++) dst[map_t[f]] = src[f];
    }
  } else {
    memset(w, 0, ms * mt * sizeof *w);
    for (size_t e = 0; e < ms_in; e++) {
      float *dst = w + (size_t)map_s[e] * mt;
      const float *src = edge_affinity + e * mt_in;
      for (size_t f = 0; f < mt_in; f++) dst[map_t[f]] += src[f];
    }
  }
  if (ms != ms_in || mt != mt_in) {
    wmax = max_abs_or_bad(w, ms * mt); /* merged duplicates: measure the sums */
    if (wmax < 0) {
      s->form = GM_FORM_NONE;
      s->n = 0;
      return lvmmed__fail(s->ctx, LVMMED_ERR_NUMERIC,
                          "%s: summing duplicate edges overflows float", fn);
    }
  }
  /* Improvements below this are rounding noise. */
  s->lawler_eps = 1e-12 * ((double)umax + (double)wmax) * (double)n;
  s->u = u;
  s->w = w;
  s->es = es;
  s->et = et;
  s->ms = ms;
  s->mt = mt;
  s->s_out = s_out;
  s->s_in = s_in;
  s->s_in_e = s_in_e;
  s->t_out = t_out;
  s->t_in = t_in;
  s->t_in_e = t_in_e;
  s->t_in_tail = t_in_tail;
  s->t_head = t_head;
  s->sadj = sadj;
  s->tadj = tadj;
  s->n = n;
  s->form = GM_FORM_LAWLER;
  return LVMMED_OK;
}

/* ---- Koopmans–Beckmann problems ---- */

lvmmed_status gm_install_kb(lvmmed_gm_solver *s, size_t n, const double *a, const double *b,
                            const char *fn) {
  double amax = 0, bmax = 0;
  for (size_t k = 0; k < n * n; k++) {
    if (fabs(a[k]) > amax) amax = fabs(a[k]);
    if (fabs(b[k]) > bmax) bmax = fabs(b[k]);
  }
  /* Every objective and gradient entry stays below n²·max|A|·max|B|. */
  double bound = amax * bmax * (double)n * (double)n * 16.0;
  if (!isfinite(bound) || bound > 1e300)
    return lvmmed__fail(s->ctx, LVMMED_ERR_OUT_OF_RANGE,
                        "%s: max|A| = %g and max|B| = %g overflow the objective for n = %zu", fn,
                        amax, bmax, n);
  size_t nn = n * n * sizeof(double);
  if (!reserve(s->ctx, &s->kb_block, &s->kb_cap, 2 * nn) || !reserve_workspace(s, n, 1)) {
    s->form = GM_FORM_NONE;
    s->n = 0;
    return lvmmed__fail(s->ctx, LVMMED_ERR_OUT_OF_MEMORY, "%s: no memory for n = %zu", fn, n);
  }
  s->a = s->kb_block;
  s->b = s->a + n * n;
  if (a != s->a) memmove(s->a, a, nn);
  if (b != s->b) memmove(s->b, b, nn);
  s->n = n;
  s->form = GM_FORM_KB;
  return LVMMED_OK;
}

lvmmed_status lvmmed_gm_set_koopmans_beckmann(lvmmed_gm_solver *s, size_t n, const double *a,
                                              const double *b) {
  static const char fn[] = "lvmmed_gm_set_koopmans_beckmann";
  if (!s) return LVMMED_ERR_INVALID_ARGUMENT;
  if (n == 0 || n > GM_MAX_N)
    return lvmmed__fail(s->ctx, LVMMED_ERR_OUT_OF_RANGE, "%s: n = %zu outside [1, %d]", fn, n,
                        GM_MAX_N);
  if (!a || !b)
    return lvmmed__fail(s->ctx, LVMMED_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn, !a ? "a" : "b");
  for (size_t k = 0; k < n * n; k++) {
    if (!isfinite(a[k]))
      return lvmmed__fail(s->ctx, LVMMED_ERR_NUMERIC, "%s: a[%zu][%zu] = %g is not finite", fn,
                          k / n, k % n, a[k]);
    if (!isfinite(b[k]))
      return lvmmed__fail(s->ctx, LVMMED_ERR_NUMERIC, "%s: b[%zu][%zu] = %g is not finite", fn,
                          k / n, k % n, b[k]);
  }
  return gm_install_kb(s, n, a, b, fn);
}

/* ---- objective and solve ---- */

/* User-sense objective of a permutation already known to be valid. */
static double user_objective(const lvmmed_gm_solver *s, const int32_t *p) {
  size_t n = s->n;
  double total = 0;
  if (s->form == GM_FORM_KB) {
    for (size_t i = 0; i < n; i++) {
      const double *ai = s->a + i * n, *bp = s->b + (size_t)p[i] * n;
      for (size_t j = 0; j < n; j++) total += ai[j] * bp[p[j]];
    }
    return total;
  }
  for (size_t i = 0; i < n; i++) total += s->u[i * n + (size_t)p[i]];
  for (size_t e = 0; e < s->ms; e++) {
    int32_t f = s->tadj[(size_t)p[s->es[2 * e]] * n + (size_t)p[s->es[2 * e + 1]]];
    if (f >= 0) total += s->w[e * s->mt + (size_t)f];
  }
  return total;
}

lvmmed_status lvmmed_gm_objective(const lvmmed_gm_solver *s, const int32_t *permutation,
                                  double *objective) {
  static const char fn[] = "lvmmed_gm_objective";
  if (!s) return LVMMED_ERR_INVALID_ARGUMENT;
  if (s->form == GM_FORM_NONE)
    return lvmmed__fail(s->ctx, LVMMED_ERR_STATE, "%s: no problem has been set", fn);
  if (!permutation || !objective)
    return lvmmed__fail(s->ctx, LVMMED_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn,
                        !permutation ? "permutation" : "objective");
  uint64_t seen[GM_MAX_N / 64] = {0};
  for (size_t i = 0; i < s->n; i++) {
    int32_t a = permutation[i];
    if (a < 0 || (size_t)a >= s->n)
      return lvmmed__fail(s->ctx, LVMMED_ERR_OUT_OF_RANGE,
                          "%s: permutation[%zu] = %d outside [0, %zu)", fn, i, (int)a, s->n);
    if (seen[a / 64] >> (a % 64) & 1)
      return lvmmed__fail(s->ctx, LVMMED_ERR_INVALID_ARGUMENT,
                          "%s: permutation[%zu] = %d repeats an earlier entry", fn, i, (int)a);
    seen[a / 64] |= UINT64_C(1) << (a % 64);
  }
  *objective = user_objective(s, permutation);
  return LVMMED_OK;
}

lvmmed_status lvmmed_gm_solve(lvmmed_gm_solver *s, int32_t *permutation, double *objective) {
  static const char fn[] = "lvmmed_gm_solve";
  if (!s) return LVMMED_ERR_INVALID_ARGUMENT;
  if (s->form == GM_FORM_NONE)
    return lvmmed__fail(s->ctx, LVMMED_ERR_STATE, "%s: no problem has been set", fn);
  if (!permutation)
    return lvmmed__fail(s->ctx, LVMMED_ERR_INVALID_ARGUMENT, "%s: permutation is NULL", fn);
  if (s->method == LVMMED_GM_BRUTE && s->n > BRUTE_MAX_N)
    return lvmmed__fail(s->ctx, LVMMED_ERR_LIMIT, "%s: brute force is limited to n <= %d (n = %zu)",
                        fn, BRUTE_MAX_N, s->n);
  gm_prepare(s);
  int32_t *p = s->p3;
  switch ((lvmmed_gm_method)s->method) {
    case LVMMED_GM_AUTO: gm_solve_auto(s, p); break;
    case LVMMED_GM_LAP: gm_lap_start(s, p); break;
    case LVMMED_GM_BRUTE: gm_solve_brute(s, p); break;
    case LVMMED_GM_SPECTRAL: gm_solve_spectral(s, p); break;
    case LVMMED_GM_RRWM: gm_solve_rrwm(s, p); break;
    case LVMMED_GM_IPFP:
      gm_lap_start(s, s->p2);
      gm_ipfp(s, s->p2, p, 0, NULL);
      break;
    case LVMMED_GM_TWO_OPT: gm_solve_two_opt(s, p); break;
  }
  memcpy(permutation, p, s->n * sizeof *p);
  if (objective) *objective = user_objective(s, p);
  return LVMMED_OK;
}
