/* Affinity builder: kNN, adjacency, options and parameters, forward values against direct
 * formulas, gradients against central finite differences, batching and threads. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "graph/affinity_impl.h"
#include "test_util.h"

/* ---- helpers ---- */

static uint64_t lcg_state;
static void seed_rand(uint64_t s) { lcg_state = s * 6364136223846793005ull + 1442695040888963407ull; }
static double urand(void) { /* [0, 1) */
  lcg_state = lcg_state * 6364136223846793005ull + 1442695040888963407ull;
  return (double)(lcg_state >> 11) * 0x1.0p-53;
}
static void fill(float *x, size_t n, float lo, float hi) {
  for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * (float)urand();
}

static lvmmed_ctx *make_ctx(unsigned threads, uint64_t seed) {
  lvmmed_ctx *ctx;
  ck_assert_int_eq(lvmmed_ctx_create(&ctx), LVMMED_OK);
  ck_assert_int_eq(lvmmed_ctx_set_option(ctx, LVMMED_CTX_OPT_THREADS, threads), LVMMED_OK);
  ck_assert_int_eq(lvmmed_ctx_set_option(ctx, LVMMED_CTX_OPT_SEED, (int64_t)seed), LVMMED_OK);
  return ctx;
}

static double cosd(const float *u, const float *w, size_t h) {
  double uw = 0, uu = 0, ww = 0;
  for (size_t d = 0; d < h; d++) {
    uw += (double)u[d] * w[d];
    uu += (double)u[d] * u[d];
    ww += (double)w[d] * w[d];
  }
  double nu = sqrt(uu) > 1e-8 ? sqrt(uu) : 1e-8, nw = sqrt(ww) > 1e-8 ? sqrt(ww) : 1e-8;
  return uw / (nu * nw);
}

/* ---- kNN and adjacency ---- */

START_TEST(knn_orders_by_distance_then_index) {
  lvmmed_ctx *ctx = make_ctx(1, 0);
  /* points on a line: 0, 1, 2, 4, 8 (1-D), plus a duplicate of 2 */
  const float x[] = {0, 1, 2, 4, 8, 2};
  int32_t e[6 * 3 * 2];
  ck_assert_lvmmed_ok(ctx, lvmmed_knn_graph(ctx, 6, 1, x, 3, e));
  const int32_t want[6][3] = {{1, 2, 5}, {0, 2, 5}, {5, 1, 0}, {2, 5, 1}, {3, 2, 5}, {2, 1, 0}};
  for (int i = 0; i < 6; i++)
    for (int r = 0; r < 3; r++) {
      ck_assert_int_eq(e[(i * 3 + r) * 2], i);
      ck_assert_int_eq(e[(i * 3 + r) * 2 + 1], want[i][r]);
    }
  /* the sorting path (k > 32) agrees with the insertion path on a prefix */
  enum { n = 50, d = 3 };
  float y[n * d];
  seed_rand(5);
  fill(y, n * d, -1, 1);
  int32_t e8[n * 8 * 2], e40[n * 40 * 2];
  ck_assert_lvmmed_ok(ctx, lvmmed_knn_graph(ctx, n, d, y, 8, e8));
  ck_assert_lvmmed_ok(ctx, lvmmed_knn_graph(ctx, n, d, y, 40, e40));
  for (int i = 0; i < n; i++)
    for (int r = 0; r < 8; r++) ck_assert_int_eq(e8[(i * 8 + r) * 2 + 1], e40[(i * 40 + r) * 2 + 1]);
  /* identical points: ties by index, never the node itself */
  float same[5 * 2] = {0};
  int32_t es[5 * 4 * 2];
  ck_assert_lvmmed_ok(ctx, lvmmed_knn_graph(ctx, 5, 2, same, 4, es));
  for (int i = 0; i < 5; i++) {
    int r = 0;
    for (int j = 0; j < 5; j++)
      if (j != i) ck_assert_int_eq(es[(i * 4 + r++) * 2 + 1], j);
  }
  ck_assert_int_eq(lvmmed_knn_graph(ctx, 5, 2, same, 5, es), LVMMED_ERR_OUT_OF_RANGE);
  same[3] = NAN;
  ck_assert_int_eq(lvmmed_knn_graph(ctx, 5, 2, same, 2, es), LVMMED_ERR_NUMERIC);
  ck_assert_ptr_nonnull(strstr(lvmmed_ctx_last_error(ctx), "x[3]"));
  lvmmed_ctx_release(ctx);
}
END_TEST

START_TEST(adjacency_is_normalised) {
  lvmmed_ctx *ctx = make_ctx(1, 0);
  /* path 0 → 1 → 2, plus 3 → 0 */
  const int32_t e[] = {0, 1, 1, 2, 3, 0};
  float a[16], d[16];
  for (int sym = 0; sym < 2; sym++) {
    ck_assert_lvmmed_ok(ctx, lvmmed_gcn_adjacency(ctx, 4, 3, e, sym, a));
    float m[16] = {0};
    for (int i = 0; i < 4; i++) m[i * 4 + i] = 1;
    for (int k = 0; k < 3; k++) {
      m[e[2 * k] * 4 + e[2 * k + 1]] = 1;
      if (sym) m[e[2 * k + 1] * 4 + e[2 * k]] = 1;
    }
    for (int i = 0; i < 4; i++) {
      d[i] = 0;
      for (int j = 0; j < 4; j++) d[i] += m[i * 4 + j];
    }
    for (int i = 0; i < 4; i++)
      for (int j = 0; j < 4; j++)
        ck_assert_float_eq_tol(a[i * 4 + j], m[i * 4 + j] / sqrtf(d[i] * d[j]), 1e-7f);
    if (sym)
      for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) ck_assert_float_eq(a[i * 4 + j], a[j * 4 + i]);
  }
  const int32_t loop[] = {1, 1};
  ck_assert_int_eq(lvmmed_gcn_adjacency(ctx, 4, 1, loop, 1, a), LVMMED_ERR_OUT_OF_RANGE);
  lvmmed_ctx_release(ctx);
}
END_TEST

/* ---- options and parameters ---- */

START_TEST(options_bounds_and_defaults) {
  lvmmed_ctx *ctx = make_ctx(1, 0);
  lvmmed_affinity *aff;
  ck_assert_lvmmed_ok(ctx, lvmmed_affinity_create(ctx, &aff));
  ck_assert_uint_eq(lvmmed_ctx_refcount(ctx), 2);
  const struct { lvmmed_affinity_option o; double def; } defs[] = {
      {LVMMED_AFFINITY_OPT_GROUP_SIZE, 16}, {LVMMED_AFFINITY_OPT_KNN, 5},
      {LVMMED_AFFINITY_OPT_FEATURE_DIM, 128}, {LVMMED_AFFINITY_OPT_GCN_WIDTH, 128},
      {LVMMED_AFFINITY_OPT_GCN_LAYERS, 2}, {LVMMED_AFFINITY_OPT_GCN_RELU_LAST, 1},
      {LVMMED_AFFINITY_OPT_SYMMETRIZE, 1}, {LVMMED_AFFINITY_OPT_ALPHA, 0.8},
      {LVMMED_AFFINITY_OPT_GAMMA_LOC, 20}, {LVMMED_AFFINITY_OPT_GAMMA_FEAT, 49},
      {LVMMED_AFFINITY_OPT_LOCAL_NORM, LVMMED_LOCAL_NORM_MEAN}};
  for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) {
    double v, lo, hi;
    ck_assert_lvmmed_ok(ctx, lvmmed_affinity_get_option(aff, defs[i].o, &v));
    ck_assert_double_eq(v, defs[i].def);
    ck_assert_int_eq(lvmmed_affinity_option_bounds(defs[i].o, &lo, &hi), LVMMED_OK);
    ck_assert(lo <= v && v <= hi);
    ck_assert_int_eq(lvmmed_affinity_set_option(aff, defs[i].o, hi + 1), LVMMED_ERR_OUT_OF_RANGE);
    ck_assert_int_eq(lvmmed_affinity_set_option(aff, defs[i].o, NAN), LVMMED_ERR_OUT_OF_RANGE);
    ck_assert_lvmmed_ok(ctx, lvmmed_affinity_get_option(aff, defs[i].o, &v));
    ck_assert_double_eq(v, defs[i].def);
  }
  ck_assert_int_eq(lvmmed_affinity_set_option(aff, LVMMED_AFFINITY_OPT_KNN, 2.5), LVMMED_ERR_OUT_OF_RANGE);
  ck_assert_ptr_nonnull(strstr(lvmmed_ctx_last_error(ctx), "not an integer"));
  ck_assert_int_eq(lvmmed_affinity_set_option(aff, (lvmmed_affinity_option)99, 1), LVMMED_ERR_INVALID_ARGUMENT);
  double lo, hi;
  ck_assert_int_eq(lvmmed_affinity_option_bounds((lvmmed_affinity_option)0, &lo, &hi), LVMMED_ERR_INVALID_ARGUMENT);

  size_t g, nn, ne, od;
  ck_assert_lvmmed_ok(ctx, lvmmed_affinity_shape(aff, 50, &g, &nn, &ne, &od));
  ck_assert_uint_eq(g, 3);
  ck_assert_uint_eq(nn, 16);
  ck_assert_uint_eq(ne, 80);
  ck_assert_uint_eq(od, 128);

  /* parameters: names, shapes, read/write, width changes */
  ck_assert_uint_eq(lvmmed_affinity_param_count(aff), 2);
  const char *name;
  size_t r, c;
  ck_assert_lvmmed_ok(ctx, lvmmed_affinity_param_info(aff, 1, &name, &r, &c));
  ck_assert_str_eq(name, "gcn.1.weight");
  ck_assert_uint_eq(r, 128);
  ck_assert_int_eq(lvmmed_affinity_param_info(aff, 2, &name, &r, &c), LVMMED_ERR_OUT_OF_RANGE);
  ck_assert_lvmmed_ok(ctx, lvmmed_affinity_set_option(aff, LVMMED_AFFINITY_OPT_FEATURE_DIM, 6));
  ck_assert_lvmmed_ok(ctx, lvmmed_affinity_set_option(aff, LVMMED_AFFINITY_OPT_GCN_WIDTH, 5));
  ck_assert_lvmmed_ok(ctx, lvmmed_affinity_param_info(aff, 0, &name, &r, &c));
  ck_assert_str_eq(name, "gcn.0.weight");
  ck_assert_uint_eq(r, 6);
  ck_assert_uint_eq(c, 5);
  float w[30], w2[30];
  ck_assert_lvmmed_ok(ctx, lvmmed_affinity_param_read(aff, "gcn.0.weight", w, 30));
  float bound = sqrtf(6.0f / 11.0f);
  int nonzero = 0;
  for (int i = 0; i < 30; i++) {
    ck_assert(fabsf(w[i]) <= bound);
    nonzero += w[i] != 0.0f;
  }
  ck_assert_int_gt(nonzero, 25);
  ck_assert_int_eq(lvmmed_affinity_param_read(aff, "gcn.0.weight", w, 29), LVMMED_ERR_SHAPE);
  ck_assert_int_eq(lvmmed_affinity_param_read(aff, "gcn.7.weight", w, 30), LVMMED_ERR_NOT_FOUND);
  for (int i = 0; i < 30; i++) w2[i] = (float)i;
  ck_assert_lvmmed_ok(ctx, lvmmed_affinity_param_write(aff, "gcn.0.weight", w2, 30));
  float *val, *grad;
  ck_assert_lvmmed_ok(ctx, lvmmed_affinity_param_data(aff, 0, &val, &grad));
  ck_assert_float_eq(val[29], 29.0f);
  w2[4] = INFINITY;
  ck_assert_int_eq(lvmmed_affinity_param_write(aff, "gcn.0.weight", w2, 30), LVMMED_ERR_NUMERIC);
  /* equal seeds give equal initial weights */
  ck_assert_lvmmed_ok(ctx, lvmmed_affinity_reset_params(aff));
  ck_assert_lvmmed_ok(ctx, lvmmed_affinity_param_read(aff, "gcn.0.weight", w2, 30));
  for (int i = 0; i < 30; i++) ck_assert_float_eq(w[i], w2[i]);
  ck_assert_lvmmed_ok(ctx, lvmmed_affinity_set_option(aff, LVMMED_AFFINITY_OPT_GCN_LAYERS, 0));
  ck_assert_uint_eq(lvmmed_affinity_param_count(aff), 0);
  ck_assert_lvmmed_ok(ctx, lvmmed_affinity_shape(aff, 16, NULL, NULL, NULL, &od));
  ck_assert_uint_eq(od, 6);
  lvmmed_affinity_free(aff);
  lvmmed_affinity_free(NULL);
  ck_assert_uint_eq(lvmmed_ctx_refcount(ctx), 1);
  lvmmed_ctx_release(ctx);
}
END_TEST

/* ---- a random problem and its objective L = Σ rv·c_v + Σ re·c_e ---- */

typedef struct problem {
  lvmmed_ctx *ctx;
  lvmmed_affinity *aff;
  size_t b, f, d, r, s, p, g, n, e;
  float *zs, *zt, *ms, *mt, *gs, *gt;
  float *cv, *ce, *rv, *re;
  int32_t *es, *et;
  int with_maps;
} problem;

static void problem_init(problem *pb, unsigned threads, size_t n_images, size_t group, size_t k, size_t feat,
                         size_t width, size_t layers, int with_maps, size_t d, size_t r, size_t s) {
  memset(pb, 0, sizeof *pb);
  pb->ctx = make_ctx(threads, 7);
  ck_assert_lvmmed_ok(pb->ctx, lvmmed_affinity_create(pb->ctx, &pb->aff));
  lvmmed_affinity *aff = pb->aff;
  ck_assert_lvmmed_ok(pb->ctx, lvmmed_affinity_set_option(aff, LVMMED_AFFINITY_OPT_GROUP_SIZE, (double)group));
  ck_assert_lvmmed_ok(pb->ctx, lvmmed_affinity_set_option(aff, LVMMED_AFFINITY_OPT_KNN, (double)k));
  ck_assert_lvmmed_ok(pb->ctx, lvmmed_affinity_set_option(aff, LVMMED_AFFINITY_OPT_FEATURE_DIM, (double)feat));
  ck_assert_lvmmed_ok(pb->ctx, lvmmed_affinity_set_option(aff, LVMMED_AFFINITY_OPT_GCN_WIDTH, (double)width));
  ck_assert_lvmmed_ok(pb->ctx, lvmmed_affinity_set_option(aff, LVMMED_AFFINITY_OPT_GCN_LAYERS, (double)layers));
  pb->b = n_images;
  pb->f = feat;
  pb->d = d;
  pb->r = r;
  pb->s = s;
  pb->p = r * s;
  pb->with_maps = with_maps;
  ck_assert_lvmmed_ok(pb->ctx, lvmmed_affinity_shape(aff, n_images, &pb->g, &pb->n, &pb->e, NULL));
  pb->zs = malloc(n_images * feat * sizeof(float));
  pb->zt = malloc(n_images * feat * sizeof(float));
  fill(pb->zs, n_images * feat, -1, 1);
  fill(pb->zt, n_images * feat, -1, 1);
  if (with_maps) {
    size_t m = n_images * d * pb->p;
    pb->ms = malloc(m * sizeof(float));
    pb->mt = malloc(m * sizeof(float));
    pb->gs = malloc(n_images * pb->p * 2 * sizeof(float));
    pb->gt = malloc(n_images * pb->p * 2 * sizeof(float));
    fill(pb->ms, m, -0.2f, 1);
    fill(pb->mt, m, -0.2f, 1);
    fill(pb->gs, n_images * pb->p * 2, 0, 100);
    fill(pb->gt, n_images * pb->p * 2, 0, 100);
  }
  size_t cvn = pb->g * pb->n * pb->n, cen = pb->g * pb->e * pb->e;
  pb->cv = malloc(cvn * sizeof(float));
  pb->ce = malloc(cen * sizeof(float));
  pb->rv = malloc(cvn * sizeof(float));
  pb->re = malloc(cen * sizeof(float));
  pb->es = malloc(pb->g * pb->e * 2 * sizeof(int32_t));
  pb->et = malloc(pb->g * pb->e * 2 * sizeof(int32_t));
  fill(pb->rv, cvn, -1, 1);
  fill(pb->re, cen, -1, 1);
}

static void problem_free(problem *pb) {
  lvmmed_affinity_free(pb->aff);
  lvmmed_ctx_release(pb->ctx);
  free(pb->zs);
  free(pb->zt);
  free(pb->ms);
  free(pb->mt);
  free(pb->gs);
  free(pb->gt);
  free(pb->cv);
  free(pb->ce);
  free(pb->rv);
  free(pb->re);
  free(pb->es);
  free(pb->et);
}

static void forward(problem *pb) {
  ck_assert_lvmmed_ok(pb->ctx, lvmmed_affinity_forward(pb->aff, pb->b, pb->zs, pb->zt, pb->ms, pb->mt, pb->d,
                                                        pb->r, pb->s, pb->gs, pb->gt, pb->cv, pb->ce, pb->es,
                                                        pb->et));
}

/* The constant structure of a forward pass: kNN edges and local matches. */
static size_t structure_size(const problem *pb) {
  size_t m = pb->aff->local ? pb->g * pb->n * pb->n * pb->aff->match_stride : 0;
  return 2 * pb->g * pb->e * 2 * sizeof(int32_t) + m * 2 * sizeof(uint16_t);
}

static void structure(const problem *pb, unsigned char *out) {
  size_t eb = pb->g * pb->e * 2 * sizeof(int32_t);
  memcpy(out, pb->es, eb);
  memcpy(out + eb, pb->et, eb);
  uint16_t *pq = (uint16_t *)(out + 2 * eb);
  if (pb->aff->local)
    for (size_t i = 0; i < pb->g * pb->n * pb->n * pb->aff->match_stride; i++) {
      pq[2 * i] = pb->aff->matches[i].p;
      pq[2 * i + 1] = pb->aff->matches[i].q;
    }
}

static unsigned char *base_structure;
static int structure_changed;

static double objective(problem *pb) {
  forward(pb);
  if (base_structure) {
    size_t sz = structure_size(pb);
    unsigned char *now = malloc(sz);
    structure(pb, now);
    if (memcmp(now, base_structure, sz) != 0) structure_changed = 1;
    free(now);
  }
  double l = 0;
  for (size_t i = 0; i < pb->g * pb->n * pb->n; i++) l += (double)pb->rv[i] * pb->cv[i];
  for (size_t i = 0; i < pb->g * pb->e * pb->e; i++) l += (double)pb->re[i] * pb->ce[i];
  return l;
}

/* One input array the gradient check may perturb, with its analytic gradient. */
typedef struct input {
  const char *name;
  float *x, *grad;
  size_t count;
} input;

/* Checks `checks` single coordinates of each input and one random direction over all of them
 * by central differences. The kNN edges and the local matches are constants of the
 * gradient; a perturbation that changes them is not a valid check and is redrawn (a
 * coordinate) or shrunk (the direction). Returns the worst error relative to max(1, |fd|). */
static double grad_check(problem *pb, input *in, size_t n_in, float h, int checks, double tol) {
  double worst = 0;
  int skipped = 0;
  objective(pb);
  base_structure = malloc(structure_size(pb));
  structure(pb, base_structure);
  for (size_t a = 0; a < n_in; a++) {
    for (int c = 0; c < checks; c++) {
      size_t i = (size_t)(urand() * (double)in[a].count);
      float keep = in[a].x[i];
      structure_changed = 0;
      in[a].x[i] = keep + h;
      double lp = objective(pb);
      in[a].x[i] = keep - h;
      double lm = objective(pb);
      in[a].x[i] = keep;
      if (structure_changed) {
        ck_assert_int_lt(++skipped, 20);
        c--;
        continue;
      }
      double fd = (lp - lm) / (2.0 * h), an = in[a].grad[i];
      double err = fabs(fd - an) / fmax(1.0, fabs(fd));
      if (err > worst) worst = err;
      ck_assert_msg(err <= tol, "%s[%zu]: analytic %.6g vs finite difference %.6g (err %.3g > %.3g)", in[a].name,
                    i, an, fd, err, tol);
    }
  }
  /* a random direction: ±1 on about 8 coordinates of every input at once (redrawn when it
   * would move the structure, so h stays large enough for float32) */
  double dir = 0, l[2];
  float **saved = malloc(n_in * sizeof *saved);
  signed char **sg = malloc(n_in * sizeof *sg);
  for (size_t a = 0; a < n_in; a++) {
    saved[a] = malloc(in[a].count * sizeof(float));
    sg[a] = malloc(in[a].count);
    memcpy(saved[a], in[a].x, in[a].count * sizeof(float));
  }
  int redrawn_dirs = 0;
  for (;;) {
    dir = 0;
    for (size_t a = 0; a < n_in; a++) {
      double keep = in[a].count < 8 ? 1.0 : 8.0 / (double)in[a].count;
      for (size_t i = 0; i < in[a].count; i++) {
        sg[a][i] = urand() < keep ? (urand() < 0.5 ? -1 : 1) : 0;
        dir += sg[a][i] * (double)in[a].grad[i];
      }
    }
    structure_changed = 0;
    for (int side = 0; side < 2; side++) {
      float step = side ? -h : h;
      for (size_t a = 0; a < n_in; a++)
        for (size_t i = 0; i < in[a].count; i++) in[a].x[i] = saved[a][i] + step * sg[a][i];
      l[side] = objective(pb);
    }
    if (!structure_changed) break;
    ck_assert_int_lt(++redrawn_dirs, 50);
  }
  for (size_t a = 0; a < n_in; a++) {
    memcpy(in[a].x, saved[a], in[a].count * sizeof(float));
    free(saved[a]);
    free(sg[a]);
  }
  free(saved);
  free(sg);
  free(base_structure);
  base_structure = NULL;
  double fd = (l[0] - l[1]) / (2.0 * h), err = fabs(fd - dir) / fmax(1.0, fabs(fd));
  printf("  directional: analytic %.6g, finite difference %.6g, rel err %.3g; %d coordinates and %d directions "
         "redrawn\n", dir, fd, err, skipped, redrawn_dirs);
  if (err > worst) worst = err;
  ck_assert_msg(err <= tol, "directional derivative %.6g vs finite difference %.6g (err %.3g)", dir, fd, err);
  objective(pb); /* leave the forward state of the unperturbed inputs */
  return worst;
}

/* Analytic gradients of the objective for every input. */
typedef struct grads {
  float *zs, *zt, *ms, *mt, *w[AFF_MAX_LAYERS];
} grads;

static void backward(problem *pb, grads *gr, int use_unary, int use_edge) {
  size_t zc = pb->b * pb->f, mc = pb->b * pb->d * pb->p;
  gr->zs = malloc(zc * sizeof(float));
  gr->zt = malloc(zc * sizeof(float));
  gr->ms = pb->with_maps ? malloc(mc * sizeof(float)) : NULL;
  gr->mt = pb->with_maps ? malloc(mc * sizeof(float)) : NULL;
  ck_assert_lvmmed_ok(pb->ctx, lvmmed_affinity_zero_grad(pb->aff));
  ck_assert_lvmmed_ok(pb->ctx, lvmmed_affinity_backward(pb->aff, use_unary ? pb->rv : NULL,
                                                         use_edge ? pb->re : NULL, pb->ms, pb->mt, gr->zs,
                                                         gr->zt, gr->ms, gr->mt));
  for (size_t l = 0; l < lvmmed_affinity_param_count(pb->aff); l++)
    ck_assert_lvmmed_ok(pb->ctx, lvmmed_affinity_param_data(pb->aff, l, NULL, &gr->w[l]));
}

static void grads_free(grads *gr) {
  free(gr->zs);
  free(gr->zt);
  free(gr->ms);
  free(gr->mt);
}

/* A dead node (Ẑ = 0) or an edge between two nodes with equal Ẑ (structurally equivalent
 * nodes of the GCN) sits where a cosine is discontinuous (its value is defined as 0), so
 * finite differences are meaningless there: the objective leaves those terms out. */
static int mask_degenerate(problem *pb) {
  size_t h = pb->aff->out_dim, n = pb->n, e = pb->e;
  int masked = 0;
  for (int v = 0; v < 2; v++) {
    const float *z = lvmmed__gcn_output(pb->aff, v);
    const int32_t *ed = v ? pb->et : pb->es;
    for (size_t g = 0; g < pb->g; g++) {
      for (size_t i = 0; i < n; i++) {
        const float *zi = z + (g * n + i) * h;
        if (aff_dot(zi, zi, h) >= 1e-6f) continue;
        for (size_t x = 0; x < n; x++) pb->rv[g * n * n + (v ? x * n + i : i * n + x)] = 0.0f;
        masked++;
      }
      for (size_t k = 0; k < e; k++) {
        const float *zi = z + (g * n + (size_t)ed[(g * e + k) * 2]) * h;
        const float *zj = z + (g * n + (size_t)ed[(g * e + k) * 2 + 1]) * h;
        if (aff_sqdist(zi, zj, h) >= 1e-6f) continue;
        for (size_t x = 0; x < e; x++) pb->re[g * e * e + (v ? x * e + k : k * e + x)] = 0.0f;
        masked++;
      }
    }
  }
  return masked;
}

/* Runs a gradient check of the objective restricted to unary and/or edge terms. */
static double check_problem(problem *pb, int use_unary, int use_edge, int with_weights, float h, double tol) {
  if (!use_unary) memset(pb->rv, 0, pb->g * pb->n * pb->n * sizeof(float));
  if (!use_edge) memset(pb->re, 0, pb->g * pb->e * pb->e * sizeof(float));
  objective(pb);
  int masked = mask_degenerate(pb);
  if (masked) printf("  %d dead nodes or zero-length edges left out of the objective\n", masked);
  grads gr;
  backward(pb, &gr, use_unary, use_edge);
  input in[4 + AFF_MAX_LAYERS];
  size_t n_in = 0, zc = pb->b * pb->f;
  in[n_in++] = (input){"z_s", pb->zs, gr.zs, zc};
  in[n_in++] = (input){"z_t", pb->zt, gr.zt, zc};
  if (pb->with_maps) {
    size_t mc = pb->b * pb->d * pb->p;
    in[n_in++] = (input){"maps_s", pb->ms, gr.ms, mc};
    in[n_in++] = (input){"maps_t", pb->mt, gr.mt, mc};
  }
  /* the analytic weight gradients live in the handle: copy them before the checks re-run forward */
  float *wcopy[AFF_MAX_LAYERS] = {0};
  if (with_weights)
    for (size_t l = 0; l < lvmmed_affinity_param_count(pb->aff); l++) {
      size_t r, c;
      float *val;
      ck_assert_lvmmed_ok(pb->ctx, lvmmed_affinity_param_info(pb->aff, l, NULL, &r, &c));
      ck_assert_lvmmed_ok(pb->ctx, lvmmed_affinity_param_data(pb->aff, l, &val, NULL));
      wcopy[l] = malloc(r * c * sizeof(float));
      memcpy(wcopy[l], gr.w[l], r * c * sizeof(float));
      in[n_in++] = (input){l ? "gcn.1.weight" : "gcn.0.weight", val, wcopy[l], r * c};
    }
  double worst = grad_check(pb, in, n_in, h, 6, tol);
  for (size_t l = 0; l < AFF_MAX_LAYERS; l++) free(wcopy[l]);
  grads_free(&gr);
  return worst;
}

/* Inputs of the checks: two graphs of 8 nodes (+3 spare images), k = 3, small maps. */
#define FD_TOL 1e-2

START_TEST(gradient_of_global_cosine) {
  problem pb;
  seed_rand(11);
  problem_init(&pb, 1, 19, 8, 3, 12, 10, 0, 0, 0, 0, 0);
  double worst = check_problem(&pb, 1, 0, 0, 1e-2f, FD_TOL);
  printf("cosine (c_glo → z): worst relative error %.3g\n", worst);
  problem_free(&pb);
}
END_TEST

START_TEST(gradient_of_edge_affinity_dense_and_sparse) {
  problem pb;
  seed_rand(12);
  problem_init(&pb, 1, 19, 8, 3, 12, 10, 0, 0, 0, 0, 0);
  double worst = check_problem(&pb, 0, 1, 0, 1e-2f, FD_TOL);
  printf("edge affinity, dense dL/dc_e: worst relative error %.3g\n", worst);
  /* a sparse dL/dc_e (as I-MLE produces) takes the other path */
  for (size_t i = 0; i < pb.g * pb.e * pb.e; i++) pb.re[i] = (i % 97 == 3) ? pb.re[i] * 3 : 0.0f;
  worst = check_problem(&pb, 0, 1, 0, 1e-2f, FD_TOL);
  printf("edge affinity, sparse dL/dc_e: worst relative error %.3g\n", worst);
  problem_free(&pb);
}
END_TEST

START_TEST(gradient_of_local_term) {
  static const int norms[] = {LVMMED_LOCAL_NORM_MEAN, LVMMED_LOCAL_NORM_SUM, LVMMED_LOCAL_NORM_ONE_WAY};
  for (int v = 0; v < 3; v++) {
    problem pb;
    seed_rand(13 + (uint64_t)v);
    problem_init(&pb, 1, 17, 8, 3, 12, 10, 0, 1, 6, 3, 4);
    ck_assert_lvmmed_ok(pb.ctx, lvmmed_affinity_set_option(pb.aff, LVMMED_AFFINITY_OPT_ALPHA, 0.0));
    ck_assert_lvmmed_ok(pb.ctx, lvmmed_affinity_set_option(pb.aff, LVMMED_AFFINITY_OPT_GAMMA_LOC, 5));
    ck_assert_lvmmed_ok(pb.ctx, lvmmed_affinity_set_option(pb.aff, LVMMED_AFFINITY_OPT_GAMMA_FEAT, 9));
    ck_assert_lvmmed_ok(pb.ctx, lvmmed_affinity_set_option(pb.aff, LVMMED_AFFINITY_OPT_LOCAL_NORM, norms[v]));
    double worst = check_problem(&pb, 1, 0, 0, 1e-3f, FD_TOL);
    printf("local term (norm %d, c_v → maps): worst relative error %.3g\n", norms[v], worst);
    /* one non-zero pair per row, as I-MLE gives: the block-by-block backward */
    for (size_t x = 0; x < pb.g * 64; x++) pb.rv[x] = x % 8 == (x / 8 * 3) % 8 ? pb.rv[x] * 4 : 0.0f;
    worst = check_problem(&pb, 1, 0, 0, 1e-3f, FD_TOL);
    printf("local term (norm %d, sparse dL/dc_v): worst relative error %.3g\n", norms[v], worst);
    problem_free(&pb);
  }
}
END_TEST

START_TEST(gradient_of_gcn_and_everything) {
  for (int variant = 0; variant < 3; variant++) {
    problem pb;
    seed_rand(21 + (uint64_t)variant);
    problem_init(&pb, 1, 19, 8, 3, 12, 10, 2, 1, 6, 3, 3);
    if (variant == 1) {
      ck_assert_lvmmed_ok(pb.ctx, lvmmed_affinity_set_option(pb.aff, LVMMED_AFFINITY_OPT_SYMMETRIZE, 0));
      ck_assert_lvmmed_ok(pb.ctx, lvmmed_affinity_set_option(pb.aff, LVMMED_AFFINITY_OPT_GCN_RELU_LAST, 0));
    }
    if (variant == 2) ck_assert_lvmmed_ok(pb.ctx, lvmmed_affinity_set_option(pb.aff, LVMMED_AFFINITY_OPT_GCN_LAYERS, 3));
    double worst = check_problem(&pb, 1, 1, 1, 1e-3f, FD_TOL);
    printf("GCN + c_v + c_e (variant %d → z, maps, weights): worst relative error %.3g\n", variant, worst);
    problem_free(&pb);
  }
}
END_TEST

/* ---- values against direct formulas ---- */

START_TEST(forward_matches_direct_formulas) {
  problem pb;
  seed_rand(31);
  problem_init(&pb, 1, 16, 8, 3, 12, 10, 0, 0, 0, 0, 0);
  /* graph 1 gets a near-duplicate pair so its edges take the explicit path; graph 0 an exact
   * duplicate: its zero-length edges have cosine 0 and the Gram path is kept */
  memcpy(pb.zs + 9 * 12, pb.zs + 8 * 12, 12 * sizeof(float));
  pb.zs[9 * 12 + 4] += 1e-4f;
  memcpy(pb.zt + 3 * 12, pb.zt + 5 * 12, 12 * sizeof(float));
  forward(&pb);
  int zero_edges = 0;
  for (size_t f = 0; f < 24; f++)
    zero_edges += (pb.et[2 * f] == 3 && pb.et[2 * f + 1] == 5) || (pb.et[2 * f] == 5 && pb.et[2 * f + 1] == 3);
  ck_assert_int_eq(zero_edges, 2);
  double worst_v = 0, worst_e = 0;
  for (size_t g = 0; g < pb.g; g++) {
    const float *zs = pb.zs + g * 8 * 12, *zt = pb.zt + g * 8 * 12;
    for (size_t i = 0; i < 8; i++)
      for (size_t a = 0; a < 8; a++)
        worst_v = fmax(worst_v, fabs(pb.cv[g * 64 + i * 8 + a] - cosd(zs + i * 12, zt + a * 12, 12)));
    const int32_t *es = pb.es + g * 24 * 2, *et = pb.et + g * 24 * 2;
    for (size_t e = 0; e < 24; e++)
      for (size_t f = 0; f < 24; f++) {
        float u[12], w[12];
        for (int d = 0; d < 12; d++) {
          u[d] = zs[es[2 * e] * 12 + d] - zs[es[2 * e + 1] * 12 + d];
          w[d] = zt[et[2 * f] * 12 + d] - zt[et[2 * f + 1] * 12 + d];
        }
        worst_e = fmax(worst_e, fabs(pb.ce[g * 576 + e * 24 + f] - cosd(u, w, 12)));
      }
  }
  printf("forward vs double formulas: c_glo %.3g, c_e %.3g\n", worst_v, worst_e);
  ck_assert_double_le(worst_v, 1e-6);
  ck_assert_double_le(worst_e, 1e-5);
  problem_free(&pb);
}
END_TEST

START_TEST(local_term_of_identical_views_is_one) {
  problem pb;
  seed_rand(32);
  problem_init(&pb, 1, 8, 8, 3, 12, 10, 0, 1, 5, 3, 3);
  memcpy(pb.mt, pb.ms, 8 * 5 * 9 * sizeof(float));
  memcpy(pb.gt, pb.gs, 8 * 9 * 2 * sizeof(float));
  ck_assert_lvmmed_ok(pb.ctx, lvmmed_affinity_set_option(pb.aff, LVMMED_AFFINITY_OPT_ALPHA, 0.0));
  forward(&pb);
  for (size_t i = 0; i < 8; i++) ck_assert_float_eq_tol(pb.cv[i * 8 + i], 1.0f, 1e-5f);
  /* α = 1 or no maps: c_v is the global cosine alone */
  float cv1[64];
  ck_assert_lvmmed_ok(pb.ctx, lvmmed_affinity_set_option(pb.aff, LVMMED_AFFINITY_OPT_ALPHA, 1.0));
  forward(&pb);
  memcpy(cv1, pb.cv, sizeof cv1);
  ck_assert_lvmmed_ok(pb.ctx, lvmmed_affinity_forward(pb.aff, 8, pb.zs, pb.zt, NULL, NULL, 0, 0, 0, NULL, NULL,
                                                       pb.cv, NULL, NULL, NULL));
  for (int i = 0; i < 64; i++) ck_assert_float_eq(cv1[i], pb.cv[i]);
  problem_free(&pb);
}
END_TEST

START_TEST(batch_equals_groups_and_threads_agree) {
  problem one, two;
  seed_rand(41);
  problem_init(&one, 1, 53, 16, 5, 32, 24, 2, 1, 8, 3, 3);
  seed_rand(41);
  problem_init(&two, 2, 53, 16, 5, 32, 24, 2, 1, 8, 3, 3);
  forward(&one);
  forward(&two);
  size_t cvn = one.g * 256, cen = one.g * 80 * 80;
  ck_assert_uint_eq(one.g, 3);
  double dv = 0, de = 0;
  for (size_t i = 0; i < cvn; i++) dv = fmax(dv, fabs(one.cv[i] - two.cv[i]));
  for (size_t i = 0; i < cen; i++) de = fmax(de, fabs(one.ce[i] - two.ce[i]));
  ck_assert_double_le(dv, 1e-6);
  ck_assert_double_le(de, 1e-6);
  ck_assert_int_eq(memcmp(one.es, two.es, one.g * 80 * 2 * sizeof(int32_t)), 0);
  /* a group on its own gives the same affinities as inside the batch */
  problem solo;
  seed_rand(41);
  problem_init(&solo, 1, 16, 16, 5, 32, 24, 2, 1, 8, 3, 3);
  size_t off = 16;
  memcpy(solo.zs, one.zs + off * 32, 16 * 32 * sizeof(float));
  memcpy(solo.zt, one.zt + off * 32, 16 * 32 * sizeof(float));
  memcpy(solo.ms, one.ms + off * 8 * 9, 16 * 8 * 9 * sizeof(float));
  memcpy(solo.mt, one.mt + off * 8 * 9, 16 * 8 * 9 * sizeof(float));
  memcpy(solo.gs, one.gs + off * 9 * 2, 16 * 9 * 2 * sizeof(float));
  memcpy(solo.gt, one.gt + off * 9 * 2, 16 * 9 * 2 * sizeof(float));
  forward(&solo);
  for (size_t i = 0; i < 256; i++) ck_assert_float_eq_tol(solo.cv[i], one.cv[256 + i], 1e-6f);
  for (size_t i = 0; i < 6400; i++) ck_assert_float_eq_tol(solo.ce[i], one.ce[6400 + i], 1e-6f);
  /* repeated runs at one thread count are bit-identical; backward zeroes the spare images */
  grads g1, g2;
  backward(&two, &g1, 1, 1);
  float w0[32 * 24];
  memcpy(w0, g1.w[0], sizeof w0);
  forward(&two);
  backward(&two, &g2, 1, 1);
  ck_assert_int_eq(memcmp(g1.zs, g2.zs, 53 * 32 * sizeof(float)), 0);
  ck_assert_int_eq(memcmp(g1.ms, g2.ms, 53 * 8 * 9 * sizeof(float)), 0);
  ck_assert_int_eq(memcmp(w0, g2.w[0], sizeof w0), 0);
  for (size_t i = 48 * 32; i < 53 * 32; i++) ck_assert_float_eq(g1.zt[i], 0.0f);
  for (size_t i = 48 * 72; i < 53 * 72; i++) ck_assert_float_eq(g1.mt[i], 0.0f);
  grads g3;
  backward(&one, &g3, 1, 1);
  double dz = 0;
  for (size_t i = 0; i < 53 * 32; i++) dz = fmax(dz, fabs(g3.zs[i] - g1.zs[i]));
  ck_assert_double_le(dz, 1e-5);
  grads_free(&g1);
  grads_free(&g2);
  grads_free(&g3);
  problem_free(&one);
  problem_free(&two);
  problem_free(&solo);
}
END_TEST

START_TEST(forward_rejects_bad_inputs) {
  problem pb;
  seed_rand(51);
  problem_init(&pb, 1, 16, 8, 3, 12, 10, 2, 1, 4, 2, 2);
  lvmmed_affinity *aff = pb.aff;
  lvmmed_ctx *ctx = pb.ctx;
  ck_assert_int_eq(lvmmed_affinity_backward(aff, pb.rv, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
                   LVMMED_ERR_STATE);
  ck_assert_int_eq(lvmmed_affinity_forward(aff, 7, pb.zs, pb.zt, NULL, NULL, 0, 0, 0, NULL, NULL, pb.cv, NULL,
                                           NULL, NULL), LVMMED_ERR_SHAPE);
  ck_assert_int_eq(lvmmed_affinity_forward(aff, 16, pb.zs, pb.zt, pb.ms, NULL, 4, 2, 2, pb.gs, pb.gt, pb.cv,
                                           NULL, NULL, NULL), LVMMED_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(lvmmed_affinity_forward(aff, 16, pb.zs, pb.zt, pb.ms, pb.mt, 4, 2, 2, NULL, pb.gt, pb.cv,
                                           NULL, NULL, NULL), LVMMED_ERR_INVALID_ARGUMENT);
  pb.ms[17] = NAN;
  ck_assert_int_eq(lvmmed_affinity_forward(aff, 16, pb.zs, pb.zt, pb.ms, pb.mt, 4, 2, 2, pb.gs, pb.gt, pb.cv,
                                           NULL, NULL, NULL), LVMMED_ERR_NUMERIC);
  ck_assert_ptr_nonnull(strstr(lvmmed_ctx_last_error(ctx), "group 0"));
  pb.ms[17] = 0.5f;
  pb.zt[5] = INFINITY;
  ck_assert_int_eq(lvmmed_affinity_forward(aff, 16, pb.zs, pb.zt, NULL, NULL, 0, 0, 0, NULL, NULL, pb.cv, NULL,
                                           NULL, NULL), LVMMED_ERR_NUMERIC);
  ck_assert_ptr_nonnull(strstr(lvmmed_ctx_last_error(ctx), "z_t[5]"));
  pb.zt[5] = 0.5f;
  ck_assert_lvmmed_ok(ctx, lvmmed_affinity_set_option(aff, LVMMED_AFFINITY_OPT_KNN, 8));
  ck_assert_int_eq(lvmmed_affinity_forward(aff, 16, pb.zs, pb.zt, NULL, NULL, 0, 0, 0, NULL, NULL, pb.cv, NULL,
                                           NULL, NULL), LVMMED_ERR_OUT_OF_RANGE);
  ck_assert_lvmmed_ok(ctx, lvmmed_affinity_set_option(aff, LVMMED_AFFINITY_OPT_KNN, 3));
  forward(&pb);
  pb.rv[3] = NAN;
  float dz[16 * 12];
  ck_assert_int_eq(lvmmed_affinity_backward(aff, pb.rv, NULL, pb.ms, pb.mt, dz, NULL, NULL, NULL),
                   LVMMED_ERR_NUMERIC);
  pb.rv[3] = 0;
  float *dm = malloc(16 * 16 * sizeof(float));
  ck_assert_int_eq(lvmmed_affinity_backward(aff, pb.rv, NULL, NULL, NULL, dz, NULL, dm, NULL),
                   LVMMED_ERR_INVALID_ARGUMENT);
  ck_assert_lvmmed_ok(ctx, lvmmed_affinity_backward(aff, pb.rv, NULL, NULL, NULL, dz, NULL, NULL, NULL));
  /* any option change drops the forward state */
  ck_assert_lvmmed_ok(ctx, lvmmed_affinity_set_option(aff, LVMMED_AFFINITY_OPT_ALPHA, 0.5));
  ck_assert_int_eq(lvmmed_affinity_backward(aff, pb.rv, NULL, NULL, NULL, dz, NULL, NULL, NULL),
                   LVMMED_ERR_STATE);
  free(dm);
  problem_free(&pb);
}
END_TEST

static Suite *affinity_suite(void) {
  Suite *s = suite_create("affinity");
  TCase *tc = tcase_create("graph");
  tcase_add_test(tc, knn_orders_by_distance_then_index);
  tcase_add_test(tc, adjacency_is_normalised);
  tcase_add_test(tc, options_bounds_and_defaults);
  suite_add_tcase(s, tc);
  TCase *fd = tcase_create("gradients");
  tcase_set_timeout(fd, 120);
  tcase_add_test(fd, gradient_of_global_cosine);
  tcase_add_test(fd, gradient_of_edge_affinity_dense_and_sparse);
  tcase_add_test(fd, gradient_of_local_term);
  tcase_add_test(fd, gradient_of_gcn_and_everything);
  suite_add_tcase(s, fd);
  TCase *fw = tcase_create("forward");
  tcase_set_timeout(fw, 60);
  tcase_add_test(fw, forward_matches_direct_formulas);
  tcase_add_test(fw, local_term_of_identical_views_is_one);
  tcase_add_test(fw, batch_equals_groups_and_threads_agree);
  tcase_add_test(fw, forward_rejects_bad_inputs);
  suite_add_tcase(s, fw);
  return s;
}

int main(void) { return run_suite(affinity_suite()); }
