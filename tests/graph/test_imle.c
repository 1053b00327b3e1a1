/* I-MLE estimator: options, noise-off = blackbox differentiation, determinism, zero
 * gradient when target and sample agree, Hamming loss, sampler moments, errors, and the
 * same results through the library's own solver. The MAP oracle of most tests is a
 * brute-force matcher written here, independent of lib/graph/gm_*. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "graph/imle_impl.h"
#include "test_util.h"

static uint64_t lcg_state;
static void seed_rand(uint64_t s) { lcg_state = s * 6364136223846793005ull + 1442695040888963407ull; }
static double urand(void) {
  lcg_state = lcg_state * 6364136223846793005ull + 1442695040888963407ull;
  return (double)(lcg_state >> 11) * 0x1.0p-53;
}

static lvmmed_ctx *make_ctx(unsigned threads, uint64_t seed) {
  lvmmed_ctx *ctx;
  ck_assert_int_eq(lvmmed_ctx_create(&ctx), LVMMED_OK);
  ck_assert_int_eq(lvmmed_ctx_set_option(ctx, LVMMED_CTX_OPT_THREADS, threads), LVMMED_OK);
  ck_assert_int_eq(lvmmed_ctx_set_option(ctx, LVMMED_CTX_OPT_SEED, (int64_t)seed), LVMMED_OK);
  return ctx;
}

/* ---- brute-force MAP: maximise Σ U[i][p(i)] + Σ_{e=(i,j), f=(p(i),p(j))} W[e][f] ---- */

static double lawler(size_t n, const float *u, size_t n_es, const int32_t *es, size_t n_et, const int32_t *et,
                     const float *w, const int32_t *p) {
  double j = 0;
  for (size_t i = 0; i < n; i++) j += u[i * n + (size_t)p[i]];
  for (size_t e = 0; e < n_es; e++)
    for (size_t f = 0; f < n_et; f++)
      if (p[es[2 * e]] == et[2 * f] && p[es[2 * e + 1]] == et[2 * f + 1]) j += w[e * n_et + f];
  return j;
}

static void permute(size_t n, size_t k, int32_t *p, double *best, int32_t *arg, const float *u, size_t n_es,
                    const int32_t *es, size_t n_et, const int32_t *et, const float *w) {
  if (k == n) {
    double j = lawler(n, u, n_es, es, n_et, et, w, p);
    if (j > *best) {
      *best = j;
      memcpy(arg, p, n * sizeof *p);
    }
    return;
  }
  for (size_t i = k; i < n; i++) {
    int32_t t = p[k];
    p[k] = p[i];
    p[i] = t;
    permute(n, k + 1, p, best, arg, u, n_es, es, n_et, et, w);
    p[i] = p[k];
    p[k] = t;
  }
}

static int brute_calls;
static lvmmed_status brute_map(void *user, lvmmed_gm_solver *solver, size_t n, const float *unary, size_t n_es,
                               const int32_t *es, size_t n_et, const int32_t *et, const float *w, int32_t *perm) {
  (void)user;
  (void)solver;
  int32_t p[16];
  for (size_t i = 0; i < n; i++) p[i] = (int32_t)i;
  double best = -INFINITY;
  permute(n, 0, p, &best, perm, unary, n_es, es, n_et, et, w);
  __atomic_add_fetch(&brute_calls, 1, __ATOMIC_RELAXED);
  return LVMMED_OK;
}

/* ---- random LVM-Med-shaped problems: n nodes, k out-edges per node ---- */

typedef struct gm_batch {
  size_t g, n, e;
  float *u, *w;
  int32_t *es, *et;
} gm_batch;

static void random_edges(size_t n, size_t k, int32_t *out) {
  for (size_t i = 0; i < n; i++) {
    size_t used = 0;
    while (used < k) {
      int32_t j = (int32_t)(urand() * (double)n);
      int dup = j == (int32_t)i;
      for (size_t r = 0; r < used; r++) dup |= out[(i * k + r) * 2 + 1] == j;
      if (dup) continue;
      out[(i * k + used) * 2] = (int32_t)i;
      out[(i * k + used) * 2 + 1] = j;
      used++;
    }
  }
}

static void batch_init(gm_batch *b, size_t g, size_t n, size_t k, float diag) {
  b->g = g;
  b->n = n;
  b->e = n * k;
  b->u = malloc(g * n * n * sizeof(float));
  b->w = malloc(g * b->e * b->e * sizeof(float));
  b->es = malloc(g * b->e * 2 * sizeof(int32_t));
  b->et = malloc(g * b->e * 2 * sizeof(int32_t));
  for (size_t i = 0; i < g * n * n; i++) b->u[i] = (float)(2 * urand() - 1) + (i % (n * n) % (n + 1) == 0 ? diag : 0);
  for (size_t i = 0; i < g * b->e * b->e; i++) b->w[i] = (float)(2 * urand() - 1) * 0.3f;
  for (size_t x = 0; x < g; x++) {
    random_edges(n, k, b->es + x * b->e * 2);
    random_edges(n, k, b->et + x * b->e * 2);
  }
}

static void batch_free(gm_batch *b) {
  free(b->u);
  free(b->w);
  free(b->es);
  free(b->et);
}

static lvmmed_imle *make_imle(lvmmed_ctx *ctx, int noise, double lambda, double samples) {
  lvmmed_imle *im;
  ck_assert_lvmmed_ok(ctx, lvmmed_imle_create(ctx, &im));
  ck_assert_lvmmed_ok(ctx, lvmmed_imle_set_option(im, LVMMED_IMLE_OPT_NOISE, noise));
  ck_assert_lvmmed_ok(ctx, lvmmed_imle_set_option(im, LVMMED_IMLE_OPT_LAMBDA, lambda));
  ck_assert_lvmmed_ok(ctx, lvmmed_imle_set_option(im, LVMMED_IMLE_OPT_SAMPLES, samples));
  lvmmed__imle_set_map_hook(im, brute_map, NULL);
  return im;
}

static lvmmed_status run(lvmmed_imle *im, const gm_batch *b, int32_t *perm) {
  return lvmmed_imle_forward(im, NULL, 1, b->g, b->n, b->u, b->e, b->es, b->e, b->et, b->w, perm);
}

/* ---- tests ---- */

START_TEST(options_defaults_and_bounds) {
  lvmmed_ctx *ctx = make_ctx(1, 0);
  lvmmed_imle *im;
  ck_assert_lvmmed_ok(ctx, lvmmed_imle_create(ctx, &im));
  const struct { lvmmed_imle_option o; double def; } defs[] = {
      {LVMMED_IMLE_OPT_NOISE, LVMMED_IMLE_NOISE_GUMBEL}, {LVMMED_IMLE_OPT_NOISE_SCALE, 1},
      {LVMMED_IMLE_OPT_SOG_KAPPA, 0}, {LVMMED_IMLE_OPT_SOG_TERMS, 10}, {LVMMED_IMLE_OPT_LAMBDA, 80},
      {LVMMED_IMLE_OPT_SAMPLES, 1}, {LVMMED_IMLE_OPT_NOISE_EDGES, 1},
      {LVMMED_IMLE_OPT_REDUCTION, LVMMED_IMLE_REDUCE_MEAN}, {LVMMED_IMLE_OPT_NOISE_COUNTER, 0}};
  for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) {
    double v, lo, hi;
    ck_assert_lvmmed_ok(ctx, lvmmed_imle_get_option(im, defs[i].o, &v));
    ck_assert_double_eq(v, defs[i].def);
    ck_assert_int_eq(lvmmed_imle_option_bounds(defs[i].o, &lo, &hi), LVMMED_OK);
    ck_assert(lo <= v && v <= hi);
    ck_assert_int_eq(lvmmed_imle_set_option(im, defs[i].o, hi * 2 + 1), LVMMED_ERR_OUT_OF_RANGE);
    ck_assert_int_eq(lvmmed_imle_set_option(im, defs[i].o, -1), LVMMED_ERR_OUT_OF_RANGE);
  }
  ck_assert_int_eq(lvmmed_imle_set_option(im, LVMMED_IMLE_OPT_SAMPLES, 1.5), LVMMED_ERR_OUT_OF_RANGE);
  ck_assert_int_eq(lvmmed_imle_set_option(im, (lvmmed_imle_option)42, 1), LVMMED_ERR_INVALID_ARGUMENT);
  ck_assert_lvmmed_ok(ctx, lvmmed_imle_set_option(im, LVMMED_IMLE_OPT_NOISE_COUNTER, 12345));
  double v;
  ck_assert_lvmmed_ok(ctx, lvmmed_imle_get_option(im, LVMMED_IMLE_OPT_NOISE_COUNTER, &v));
  ck_assert_double_eq(v, 12345);
  lvmmed_imle_free(im);
  lvmmed_imle_free(NULL);
  ck_assert_uint_eq(lvmmed_ctx_refcount(ctx), 1);
  lvmmed_ctx_release(ctx);
}
END_TEST

/* Blackbox differentiation (Vlastelica et al.) written in its own convention: costs
 * w = −θ are minimised, w' = w + λ·dL/dy, dL/dw = −(y − y_λ)/λ, so dL/dθ = (y − y_λ)/λ. */
static void blackbox(const gm_batch *b, size_t g, float lambda, float *du, float *dw) {
  size_t n = b->n, e = b->e;
  const float *u = b->u + g * n * n, *w = b->w + g * e * e;
  const int32_t *es = b->es + g * e * 2, *et = b->et + g * e * 2;
  /* costs: unary −u, edges −w; argmin of costs = brute-force argmax of their negation */
  float *cost = malloc(n * n * sizeof(float)), *neg = malloc(n * n * sizeof(float));
  int32_t y[16], yl[16];
  for (size_t i = 0; i < n * n; i++) cost[i] = -u[i];
  for (size_t i = 0; i < n * n; i++) neg[i] = -cost[i];
  brute_map(NULL, NULL, n, neg, e, es, e, et, w, y);
  /* w' = w + λ·dL/dy with dL/dy = 1 − 2I (Hamming loss against the identity) */
  for (size_t i = 0; i < n; i++)
    for (size_t a = 0; a < n; a++) cost[i * n + a] += lambda * (i == a ? -1.0f : 1.0f);
  for (size_t i = 0; i < n * n; i++) neg[i] = -cost[i];
  brute_map(NULL, NULL, n, neg, e, es, e, et, w, yl);
  /* dL/dθ = −dL/dw = (y − y_λ)/λ, for the unary and the paid-edge indicators */
  memset(du, 0, n * n * sizeof(float));
  for (size_t i = 0; i < n; i++) {
    du[i * n + (size_t)y[i]] += 1.0f / lambda;
    du[i * n + (size_t)yl[i]] -= 1.0f / lambda;
  }
  for (size_t a = 0; a < e; a++)
    for (size_t f = 0; f < e; f++) {
      int paid_y = y[es[2 * a]] == et[2 * f] && y[es[2 * a + 1]] == et[2 * f + 1];
      int paid_l = yl[es[2 * a]] == et[2 * f] && yl[es[2 * a + 1]] == et[2 * f + 1];
      dw[a * e + f] = (float)(paid_y - paid_l) / lambda;
    }
  free(cost);
  free(neg);
}

START_TEST(noise_off_equals_blackbox) {
  lvmmed_ctx *ctx = make_ctx(2, 3);
  static const float lambdas[] = {0.3f, 2.0f, 80.0f};
  int nonzero_cases = 0;
  for (int li = 0; li < 3; li++) {
    seed_rand(100 + (uint64_t)li);
    gm_batch b;
    batch_init(&b, 5, 6, 2, 0.0f);
    lvmmed_imle *im = make_imle(ctx, LVMMED_IMLE_NOISE_NONE, lambdas[li], 1);
    ck_assert_lvmmed_ok(ctx, lvmmed_imle_set_option(im, LVMMED_IMLE_OPT_REDUCTION, LVMMED_IMLE_REDUCE_SUM));
    int32_t perm[5 * 6];
    ck_assert_lvmmed_ok(ctx, run(im, &b, perm));
    float *gu = malloc(5 * 36 * sizeof(float)), *ge = malloc(5 * 144 * sizeof(float));
    ck_assert_lvmmed_ok(ctx, lvmmed_imle_backward(im, NULL, 1, NULL, gu, ge));
    float bu[36], bw[144];
    for (size_t g = 0; g < 5; g++) {
      blackbox(&b, g, lambdas[li], bu, bw);
      for (int i = 0; i < 36; i++) ck_assert_float_eq(gu[g * 36 + (size_t)i], bu[i]);
      for (int i = 0; i < 144; i++) ck_assert_float_eq(ge[g * 144 + (size_t)i], bw[i]);
      for (int i = 0; i < 36; i++) nonzero_cases += bu[i] != 0.0f;
    }
    /* REDUCE_MEAN divides by the number of graphs */
    ck_assert_lvmmed_ok(ctx, lvmmed_imle_set_option(im, LVMMED_IMLE_OPT_REDUCTION, LVMMED_IMLE_REDUCE_MEAN));
    ck_assert_lvmmed_ok(ctx, run(im, &b, perm));
    float *gm = malloc(5 * 36 * sizeof(float));
    ck_assert_lvmmed_ok(ctx, lvmmed_imle_backward(im, NULL, 1, NULL, gm, NULL));
    for (int i = 0; i < 5 * 36; i++) ck_assert_float_eq_tol(gm[i], gu[i] / 5.0f, 1e-7f);
    free(gm);
    free(gu);
    free(ge);
    lvmmed_imle_free(im);
    batch_free(&b);
  }
  ck_assert_int_gt(nonzero_cases, 10); /* the comparison was not between zeros */
  lvmmed_ctx_release(ctx);
}
END_TEST

START_TEST(same_seed_same_gradients) {
  seed_rand(7);
  gm_batch b;
  batch_init(&b, 6, 6, 2, 0.5f);
  int32_t p1[6 * 3 * 6], p2[6 * 3 * 6], p3[6 * 3 * 6];
  float g1[6 * 36], g2[6 * 36], g3[6 * 36], e1[6 * 144], e2[6 * 144];
  for (int noise = LVMMED_IMLE_NOISE_GUMBEL; noise <= LVMMED_IMLE_NOISE_SUM_OF_GAMMA; noise++) {
    /* one thread vs two threads, same seed */
    lvmmed_ctx *c1 = make_ctx(1, 99), *c2 = make_ctx(2, 99), *c3 = make_ctx(2, 100);
    lvmmed_imle *a = make_imle(c1, noise, 5, 3), *bb = make_imle(c2, noise, 5, 3), *c = make_imle(c3, noise, 5, 3);
    ck_assert_lvmmed_ok(c1, run(a, &b, p1));
    ck_assert_lvmmed_ok(c2, lvmmed_imle_forward(bb, NULL, 2, b.g, b.n, b.u, b.e, b.es, b.e, b.et, b.w, p2));
    ck_assert_lvmmed_ok(c3, run(c, &b, p3));
    ck_assert_int_eq(memcmp(p1, p2, sizeof p1), 0);
    ck_assert_int_ne(memcmp(p1, p3, sizeof p1), 0); /* another seed draws other noise */
    ck_assert_lvmmed_ok(c1, lvmmed_imle_backward(a, NULL, 1, NULL, g1, e1));
    ck_assert_lvmmed_ok(c2, lvmmed_imle_backward(bb, NULL, 2, NULL, g2, e2));
    ck_assert_int_eq(memcmp(g1, g2, sizeof g1), 0);
    ck_assert_int_eq(memcmp(e1, e2, sizeof e1), 0);
    /* the next forward draws fresh noise; rewinding the counter repeats the first draw */
    ck_assert_lvmmed_ok(c1, run(a, &b, p2));
    ck_assert_int_ne(memcmp(p1, p2, sizeof p1), 0);
    ck_assert_lvmmed_ok(c1, lvmmed_imle_set_option(a, LVMMED_IMLE_OPT_NOISE_COUNTER, 0));
    ck_assert_lvmmed_ok(c1, run(a, &b, p2));
    ck_assert_int_eq(memcmp(p1, p2, sizeof p1), 0);
    ck_assert_lvmmed_ok(c1, lvmmed_imle_backward(a, NULL, 1, NULL, g3, NULL));
    ck_assert_int_eq(memcmp(g1, g3, sizeof g1), 0);
    lvmmed_imle_free(a);
    lvmmed_imle_free(bb);
    lvmmed_imle_free(c);
    lvmmed_ctx_release(c1);
    lvmmed_ctx_release(c2);
    lvmmed_ctx_release(c3);
  }
  batch_free(&b);
}
END_TEST

START_TEST(agreeing_target_gives_zero_gradient) {
  lvmmed_ctx *ctx = make_ctx(1, 5);
  seed_rand(8);
  /* strong diagonal: ṽ = I despite Gumbel(0, 1) noise, and the target is I too */
  gm_batch b;
  batch_init(&b, 4, 6, 2, 12.0f);
  lvmmed_imle *im = make_imle(ctx, LVMMED_IMLE_NOISE_GUMBEL, 80, 2);
  int32_t perm[4 * 2 * 6];
  ck_assert_lvmmed_ok(ctx, run(im, &b, perm));
  for (int i = 0; i < 4 * 2 * 6; i++) ck_assert_int_eq(perm[i], i % 6);
  double loss;
  ck_assert_lvmmed_ok(ctx, lvmmed_imle_hamming_loss(im, &loss, NULL));
  ck_assert_double_eq(loss, 0.0);
  float gu[4 * 36], ge[4 * 144];
  ck_assert_lvmmed_ok(ctx, lvmmed_imle_backward(im, NULL, 1, NULL, gu, ge));
  for (int i = 0; i < 4 * 36; i++) ck_assert_float_eq(gu[i], 0.0f);
  for (int i = 0; i < 4 * 144; i++) ck_assert_float_eq(ge[i], 0.0f);
  batch_free(&b);
  /* wrong matchings, but a step λ too small to move the target: v' = ṽ, zero gradient */
  seed_rand(9);
  batch_init(&b, 4, 6, 2, -3.0f);
  ck_assert_lvmmed_ok(ctx, lvmmed_imle_set_option(im, LVMMED_IMLE_OPT_LAMBDA, 1e-6));
  ck_assert_lvmmed_ok(ctx, run(im, &b, perm));
  ck_assert_lvmmed_ok(ctx, lvmmed_imle_hamming_loss(im, &loss, NULL));
  ck_assert_double_gt(loss, 0.0);
  ck_assert_lvmmed_ok(ctx, lvmmed_imle_backward(im, NULL, 1, NULL, gu, ge));
  for (int i = 0; i < 4 * 36; i++) ck_assert_float_eq(gu[i], 0.0f);
  for (int i = 0; i < 4 * 144; i++) ck_assert_float_eq(ge[i], 0.0f);
  /* and a large λ pulls every sample to the identity: +1/λ on chosen wrong pairs, −1/λ on missed gold */
  ck_assert_lvmmed_ok(ctx, lvmmed_imle_set_option(im, LVMMED_IMLE_OPT_LAMBDA, 1000));
  ck_assert_lvmmed_ok(ctx, lvmmed_imle_set_option(im, LVMMED_IMLE_OPT_REDUCTION, LVMMED_IMLE_REDUCE_SUM));
  ck_assert_lvmmed_ok(ctx, run(im, &b, perm));
  ck_assert_lvmmed_ok(ctx, lvmmed_imle_backward(im, NULL, 1, NULL, gu, NULL));
  for (size_t g = 0; g < 4; g++)
    for (size_t i = 0; i < 6; i++)
      for (size_t a = 0; a < 6; a++) {
        float want = 0;
        for (size_t s = 0; s < 2; s++) want += ((size_t)perm[(g * 2 + s) * 6 + i] == a) - (i == a);
        ck_assert_float_eq_tol(gu[g * 36 + i * 6 + a], want / 2.0f / 1000.0f, 1e-9f);
      }
  lvmmed_imle_free(im);
  batch_free(&b);
  lvmmed_ctx_release(ctx);
}
END_TEST

START_TEST(hamming_loss_and_custom_gradient) {
  lvmmed_ctx *ctx = make_ctx(1, 5);
  seed_rand(10);
  gm_batch b;
  batch_init(&b, 3, 5, 2, 0.0f);
  lvmmed_imle *im = make_imle(ctx, LVMMED_IMLE_NOISE_NONE, 3, 1);
  int32_t perm[15];
  ck_assert_int_eq(lvmmed_imle_hamming_loss(im, &(double){0}, NULL), LVMMED_ERR_STATE);
  ck_assert_lvmmed_ok(ctx, run(im, &b, perm));
  double loss, per[3], want = 0;
  ck_assert_lvmmed_ok(ctx, lvmmed_imle_hamming_loss(im, &loss, per));
  for (int g = 0; g < 3; g++) {
    double lg = 0;
    for (int i = 0; i < 5; i++) lg += 2.0 * (perm[g * 5 + i] != i);
    ck_assert_double_eq(per[g], lg);
    want += lg / 3.0;
  }
  ck_assert_double_eq_tol(loss, want, 1e-12);
  /* an explicit dL/dṽ equal to 1 − 2I reproduces the Hamming default */
  float gp[3 * 25], g_def[3 * 25], g_exp[3 * 25];
  for (int x = 0; x < 75; x++) gp[x] = (x % 25) % 6 == 0 ? -1.0f : 1.0f;
  ck_assert_lvmmed_ok(ctx, lvmmed_imle_backward(im, NULL, 1, NULL, g_def, NULL));
  ck_assert_lvmmed_ok(ctx, lvmmed_imle_backward(im, NULL, 1, gp, g_exp, NULL));
  ck_assert_int_eq(memcmp(g_def, g_exp, sizeof g_def), 0);
  gp[7] = NAN;
  ck_assert_int_eq(lvmmed_imle_backward(im, NULL, 1, gp, g_exp, NULL), LVMMED_ERR_NUMERIC);
  lvmmed_imle_free(im);
  batch_free(&b);
  lvmmed_ctx_release(ctx);
}
END_TEST

START_TEST(forward_rejects_bad_inputs) {
  lvmmed_ctx *ctx = make_ctx(1, 5);
  seed_rand(11);
  gm_batch b;
  batch_init(&b, 2, 5, 2, 0.0f);
  lvmmed_imle *im;
  ck_assert_lvmmed_ok(ctx, lvmmed_imle_create(ctx, &im));
  int32_t perm[10];
  float gu[50];
  ck_assert_int_eq(lvmmed_imle_backward(im, NULL, 1, NULL, gu, NULL), LVMMED_ERR_STATE);
  ck_assert_int_eq(run(im, &b, perm), LVMMED_ERR_INVALID_ARGUMENT); /* no solver, no hook */
  lvmmed_gm_solver *none[2] = {NULL, NULL};
  ck_assert_int_eq(lvmmed_imle_forward(im, none, 2, 2, 5, b.u, b.e, b.es, b.e, b.et, b.w, perm),
                   LVMMED_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(lvmmed_ctx_last_error(ctx), "solvers[0]"));
  lvmmed__imle_set_map_hook(im, brute_map, NULL);
  ck_assert_int_eq(lvmmed_imle_forward(im, NULL, 0, 2, 5, b.u, b.e, b.es, b.e, b.et, b.w, perm),
                   LVMMED_ERR_INVALID_ARGUMENT);
  b.es[2 * 13 + 1] = b.es[2 * 13];
  ck_assert_int_eq(run(im, &b, perm), LVMMED_ERR_OUT_OF_RANGE);
  ck_assert_ptr_nonnull(strstr(lvmmed_ctx_last_error(ctx), "source edge 3 of graph 1"));
  b.es[2 * 13 + 1] = (b.es[2 * 13] + 1) % 5;
  b.w[17] = NAN;
  ck_assert_int_eq(run(im, &b, perm), LVMMED_ERR_NUMERIC);
  b.w[17] = 0;
  ck_assert_lvmmed_ok(ctx, run(im, &b, perm));
  /* an option change drops the forward state */
  ck_assert_lvmmed_ok(ctx, lvmmed_imle_set_option(im, LVMMED_IMLE_OPT_LAMBDA, 10));
  ck_assert_int_eq(lvmmed_imle_backward(im, NULL, 1, NULL, gu, NULL), LVMMED_ERR_STATE);
  lvmmed_imle_free(im);
  batch_free(&b);
  lvmmed_ctx_release(ctx);
}
END_TEST

/* ---- samplers ---- */

START_TEST(gumbel_moments_and_streams) {
  enum { count = 1 << 20 };
  float *x = calloc(count, sizeof(float));
  static const float scales[] = {1.0f, 2.5f};
  for (int s = 0; s < 2; s++) {
    memset(x, 0, count * sizeof(float));
    lvmmed__gumbel_add(0x1234567ull + (uint64_t)s, 0, count, scales[s], x);
    double m = 0, v = 0, below0 = 0, below2 = 0;
    for (int i = 0; i < count; i++) m += x[i];
    m /= count;
    for (int i = 0; i < count; i++) {
      v += (x[i] - m) * (x[i] - m);
      below0 += x[i] <= 0;
      below2 += x[i] <= 2 * scales[s];
    }
    v /= count - 1;
    double em = 0.5772156649 * scales[s], ev = 1.6449340668 * scales[s] * scales[s];
    printf("Gumbel(0, %.1f): mean %.5f (expected %.5f), variance %.5f (expected %.5f), "
           "P(x<=0) %.5f (%.5f), P(x<=2β) %.5f (%.5f)\n", scales[s], m, em, v, ev, below0 / count, exp(-1.0),
           below2 / count, exp(-exp(-2.0)));
    /* 5 standard errors: sd(mean) = 1.28β/√n, sd(var) ≈ 2.9β²/√n, sd(P) <= 0.5/√n */
    ck_assert_double_le(fabs(m - em), 5 * 1.283 * scales[s] / sqrt(count));
    ck_assert_double_le(fabs(v - ev), 5 * 2.9 * scales[s] * scales[s] / sqrt(count));
    ck_assert_double_le(fabs(below0 / count - exp(-1.0)), 2.5 / sqrt(count));
    ck_assert_double_le(fabs(below2 / count - exp(-exp(-2.0))), 2.5 / sqrt(count));
  }
  /* any range of a stream is reproducible on its own */
  float head[1000] = {0}, part[400] = {0};
  lvmmed__gumbel_add(77, 0, 1000, 1.0f, head);
  lvmmed__gumbel_add(77, 333, 400, 1.0f, part);
  ck_assert_int_eq(memcmp(head + 333, part, sizeof part), 0);
  free(x);
}
END_TEST

START_TEST(sum_of_gamma_moments) {
  enum { count = 200000 };
  static const struct { double kappa, tau; unsigned terms; } cases[] = {{1, 1, 10}, {5, 1, 10}, {16, 2, 30}};
  float *x = malloc(count * sizeof(float));
  for (int c = 0; c < 3; c++) {
    memset(x, 0, count * sizeof(float));
    lvmmed_rng rng;
    lvmmed__rng_init(&rng, 42, 1000 + (uint64_t)c);
    double kappa = cases[c].kappa, tau = cases[c].tau;
    unsigned s = cases[c].terms;
    lvmmed__sog_add(&rng, count, kappa, tau, s, x);
    double h = 0, h2 = 0;
    for (unsigned i = 1; i <= s; i++) {
      h += 1.0 / i;
      h2 += 1.0 / ((double)i * i);
    }
    double em = tau / kappa * (h - log((double)s)), ev = tau * tau / kappa * h2;
    double m = 0, v = 0;
    for (int i = 0; i < count; i++) m += x[i];
    m /= count;
    for (int i = 0; i < count; i++) v += (x[i] - m) * (x[i] - m);
    v /= count - 1;
    /* the sum of κ draws has the Gumbel-like moments τ(H_s − log s) and τ²·Σ1/i² (→ τγ, τ²π²/6) */
    printf("SoG(κ=%g, τ=%g, s=%u): mean %.5f (expected %.5f), variance %.5f (expected %.5f); sum of κ: mean "
           "%.4f, var %.4f (Gumbel(0,τ): %.4f, %.4f)\n", kappa, tau, s, m, em, v, ev, kappa * m, kappa * v,
           0.5772 * tau, 1.6449 * tau * tau);
    ck_assert_double_le(fabs(m - em), 5 * sqrt(ev / count));
    ck_assert_double_le(fabs(v - ev), 0.03 * ev);
  }
  free(x);
}
END_TEST

/* ---- through the library's own solver ---- */

START_TEST(through_library_solver) {
  lvmmed_ctx *ctx = make_ctx(2, 17);
  seed_rand(12);
  gm_batch b;
  batch_init(&b, 4, 7, 2, 0.3f);
  lvmmed_gm_solver *solvers[2];
  for (int i = 0; i < 2; i++) {
    ck_assert_lvmmed_ok(ctx, lvmmed_gm_solver_create(ctx, &solvers[i]));
    ck_assert_lvmmed_ok(ctx, lvmmed_gm_solver_set_option(solvers[i], LVMMED_GM_OPT_METHOD, LVMMED_GM_BRUTE));
  }
  lvmmed_imle *lib, *ref;
  ck_assert_lvmmed_ok(ctx, lvmmed_imle_create(ctx, &lib));
  ref = make_imle(ctx, LVMMED_IMLE_NOISE_GUMBEL, 80, 1);
  int32_t p1[4 * 7], p2[4 * 7];
  ck_assert_lvmmed_ok(ctx, lvmmed_imle_forward(lib, solvers, 2, b.g, b.n, b.u, b.e, b.es, b.e, b.et, b.w, p1));
  ck_assert_lvmmed_ok(ctx, run(ref, &b, p2));
  ck_assert_int_eq(memcmp(p1, p2, sizeof p1), 0);
  float g1[4 * 49], g2[4 * 49], e1[4 * 196], e2[4 * 196];
  ck_assert_lvmmed_ok(ctx, lvmmed_imle_backward(lib, solvers, 2, NULL, g1, e1));
  ck_assert_lvmmed_ok(ctx, lvmmed_imle_backward(ref, NULL, 1, NULL, g2, e2));
  ck_assert_int_eq(memcmp(g1, g2, sizeof g1), 0);
  ck_assert_int_eq(memcmp(e1, e2, sizeof e1), 0);
  for (int i = 0; i < 2; i++) lvmmed_gm_solver_free(solvers[i]);
  lvmmed_imle_free(lib);
  lvmmed_imle_free(ref);
  batch_free(&b);
  lvmmed_ctx_release(ctx);
}
END_TEST

static Suite *imle_suite(void) {
  Suite *s = suite_create("imle");
  TCase *tc = tcase_create("estimator");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, options_defaults_and_bounds);
  tcase_add_test(tc, noise_off_equals_blackbox);
  tcase_add_test(tc, same_seed_same_gradients);
  tcase_add_test(tc, agreeing_target_gives_zero_gradient);
  tcase_add_test(tc, hamming_loss_and_custom_gradient);
  tcase_add_test(tc, forward_rejects_bad_inputs);
  tcase_add_test(tc, through_library_solver);
  suite_add_tcase(s, tc);
  TCase *sm = tcase_create("samplers");
  tcase_set_timeout(sm, 60);
  tcase_add_test(sm, gumbel_moments_and_streams);
  tcase_add_test(sm, sum_of_gamma_moments);
  suite_add_tcase(s, sm);
  return s;
}

int main(void) { return run_suite(imle_suite()); }
