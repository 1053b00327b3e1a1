/* Graph-matching solvers: objective evaluation, validity of every method,
 * optimality against exhaustive search, AUTO's hit rate on LVM-Med-shaped
 * instances, determinism, options and input validation. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "test_gm_util.h"
#include "test_util.h"

static const lvmmed_gm_method all_methods[] = {LVMMED_GM_AUTO, LVMMED_GM_LAP,  LVMMED_GM_BRUTE,
                                               LVMMED_GM_SPECTRAL, LVMMED_GM_RRWM, LVMMED_GM_IPFP,
                                               LVMMED_GM_TWO_OPT};
#define NMETHODS (sizeof all_methods / sizeof all_methods[0])

typedef struct fixture {
  lvmmed_ctx *ctx;
  lvmmed_gm_solver *s;
} fixture;

static fixture open_solver(uint64_t seed) {
  fixture f = {NULL, NULL};
  ck_assert_int_eq(lvmmed_ctx_create(&f.ctx), LVMMED_OK);
  ck_assert_int_eq(lvmmed_ctx_set_option(f.ctx, LVMMED_CTX_OPT_SEED, (int64_t)seed), LVMMED_OK);
  ck_assert_int_eq(lvmmed_gm_solver_create(f.ctx, &f.s), LVMMED_OK);
  return f;
}

static void close_solver(fixture *f) {
  lvmmed_gm_solver_free(f->s);
  lvmmed_ctx_release(f->ctx);
}

static void set_lawler(fixture *f, const lawler_instance *g) {
  ck_assert_lvmmed_ok(f->ctx, lvmmed_gm_set_problem(f->s, g->n, g->unary, g->ms, g->src, g->mt,
                                                    g->tgt, g->w));
}

static double solve_with(fixture *f, lvmmed_gm_method m, int64_t restarts, int32_t *p) {
  double obj = NAN, check = NAN;
  ck_assert_lvmmed_ok(f->ctx, lvmmed_gm_solver_set_option(f->s, LVMMED_GM_OPT_METHOD, m));
  ck_assert_lvmmed_ok(f->ctx, lvmmed_gm_solver_set_option(f->s, LVMMED_GM_OPT_RESTARTS, restarts));
  ck_assert_lvmmed_ok(f->ctx, lvmmed_gm_solve(f->s, p, &obj));
  size_t n = lvmmed_gm_problem_size(f->s);
  ck_assert_msg(is_permutation(p, n), "%s returned a non-permutation", lvmmed_gm_method_name(m));
  ck_assert_lvmmed_ok(f->ctx, lvmmed_gm_objective(f->s, p, &check));
  ck_assert_double_eq(obj, check);
  return obj;
}

/* ---- objective ---- */

START_TEST(lawler_objective_matches_direct_evaluation) {
  fixture f = open_solver(0);
  test_rng r = {10};
  for (int rep = 0; rep < 40; rep++) {
    lawler_instance g;
    size_t n = 1 + (size_t)trng_below(&r, 12);
    make_uniform_instance(&r, n, 1 + (size_t)trng_below(&r, 5), &g);
    int dup = rep % 4 == 3 && g.ms > 1;
    if (dup) {
      /* duplicate edges: their affinities add up (the merged sums are kept
       * in float, like the inputs, hence the looser tolerance) */
      g.src[2 * (g.ms - 1)] = g.src[0];
      g.src[2 * (g.ms - 1) + 1] = g.src[1];
    }
    if (rep % 5 == 4) g.ms = 0; /* unary only */
    set_lawler(&f, &g);
    int32_t p[16];
    for (int t = 0; t < 10; t++) {
      for (size_t i = 0; i < n; i++) p[i] = (int32_t)i;
      for (size_t i = n; i > 1; i--) {
        int j = trng_below(&r, (int)i);
        int32_t x = p[i - 1];
        p[i - 1] = p[j];
        p[j] = x;
      }
      double got;
      ck_assert_lvmmed_ok(f.ctx, lvmmed_gm_objective(f.s, p, &got));
      ck_assert_double_eq_tol(got, lawler_direct(&g, p), dup ? 1e-6 : 1e-12);
    }
  }
  close_solver(&f);
}
END_TEST

START_TEST(kb_objective_matches_direct_evaluation) {
  fixture f = open_solver(0);
  test_rng r = {11};
  double a[100], b[100];
  for (size_t n = 1; n <= 10; n++) {
    for (size_t k = 0; k < n * n; k++) {
      a[k] = (double)trng_below(&r, 10) - 3;
      b[k] = trng_uniform(&r) * 5;
    }
    ck_assert_lvmmed_ok(f.ctx, lvmmed_gm_set_koopmans_beckmann(f.s, n, a, b));
    ck_assert_uint_eq(lvmmed_gm_problem_size(f.s), n);
    int32_t p[10];
    for (size_t i = 0; i < n; i++) p[i] = (int32_t)((i * 7 + 3) % n);
    if (!is_permutation(p, n))
      for (size_t i = 0; i < n; i++) p[i] = (int32_t)(n - 1 - i);
    double got;
    ck_assert_lvmmed_ok(f.ctx, lvmmed_gm_objective(f.s, p, &got));
    ck_assert_double_eq_tol(got, kb_direct(n, a, b, p), 1e-9);
  }
  close_solver(&f);
}
END_TEST

/* ---- every method, both forms ---- */

START_TEST(every_method_returns_a_permutation) {
  fixture f = open_solver(5);
  test_rng r = {12};
  int32_t p[16];
  for (size_t n = 1; n <= 12; n++) {
    lawler_instance g;
    make_uniform_instance(&r, n, n < 6 ? n - 1 : 5, &g);
    set_lawler(&f, &g);
    for (size_t m = 0; m < NMETHODS; m++) {
      if (all_methods[m] == LVMMED_GM_BRUTE && n > 9) continue;
      solve_with(&f, all_methods[m], 2, p);
    }
    double a[144], b[144];
    for (size_t k = 0; k < n * n; k++) {
      a[k] = (double)trng_below(&r, 5);
      b[k] = (double)trng_below(&r, 5) - 2;
    }
    ck_assert_lvmmed_ok(f.ctx, lvmmed_gm_set_koopmans_beckmann(f.s, n, a, b));
    for (int mx = 0; mx < 2; mx++) {
      ck_assert_lvmmed_ok(f.ctx, lvmmed_gm_solver_set_option(f.s, LVMMED_GM_OPT_MAXIMIZE, mx));
      for (size_t m = 0; m < NMETHODS; m++) {
        if (all_methods[m] == LVMMED_GM_BRUTE && n > 9) continue;
        solve_with(&f, all_methods[m], 2, p);
      }
    }
    ck_assert_lvmmed_ok(f.ctx, lvmmed_gm_solver_set_option(f.s, LVMMED_GM_OPT_MAXIMIZE, 0));
  }
  /* Degenerate data: all zero, no edges. */
  lawler_instance z;
  memset(&z, 0, sizeof z);
  z.n = 6;
  set_lawler(&f, &z);
  for (size_t m = 0; m < NMETHODS; m++) solve_with(&f, all_methods[m], 1, p);
  close_solver(&f);
}
END_TEST

/* The library's brute force against the test's own enumeration. */
START_TEST(brute_force_is_exhaustive) {
  fixture f = open_solver(0);
  test_rng r = {13};
  for (size_t n = 1; n <= 7; n++) {
    lawler_instance g;
    make_uniform_instance(&r, n, 3, &g);
    set_lawler(&f, &g);
    int32_t p[16], q[16];
    double got = solve_with(&f, LVMMED_GM_BRUTE, 0, p);
    for (size_t i = 0; i < n; i++) q[i] = (int32_t)i;
    double best = -HUGE_VAL;
    do best = fmax(best, lawler_direct(&g, q));
    while (next_perm(q, n));
    ck_assert_double_eq_tol(got, best, 1e-9);

    double a[49], b[49];
    for (size_t k = 0; k < n * n; k++) {
      a[k] = (double)trng_below(&r, 9);
      b[k] = (double)trng_below(&r, 9);
    }
    ck_assert_lvmmed_ok(f.ctx, lvmmed_gm_set_koopmans_beckmann(f.s, n, a, b));
    for (int mx = 0; mx < 2; mx++) {
      ck_assert_lvmmed_ok(f.ctx, lvmmed_gm_solver_set_option(f.s, LVMMED_GM_OPT_MAXIMIZE, mx));
      got = solve_with(&f, LVMMED_GM_BRUTE, 0, p);
      for (size_t i = 0; i < n; i++) q[i] = (int32_t)i;
      double want = mx ? -HUGE_VAL : HUGE_VAL;
      do {
        double v = kb_direct(n, a, b, q);
        want = mx ? fmax(want, v) : fmin(want, v);
      } while (next_perm(q, n));
      ck_assert_double_eq(got, want);
    }
    ck_assert_lvmmed_ok(f.ctx, lvmmed_gm_solver_set_option(f.s, LVMMED_GM_OPT_MAXIMIZE, 0));
  }
  close_solver(&f);
}
END_TEST

/* Every QAP solver against brute force on LVM-Med-shaped N = 8 instances
 * (k = 5 kNN graphs, cosine unary and edge affinities in [-1, 1]); returns
 * AUTO's hit count. No solver may beat the optimum. */
static int lvmmed_shaped_round(fixture *f, test_rng *r, double sigma, int trials) {
  int hits[NMETHODS] = {0};
  for (int t = 0; t < trials; t++) {
    lawler_instance g;
    make_lvmmed_instance(r, 8, 5, sigma, &g);
    set_lawler(f, &g);
    int32_t p[16];
    double opt = solve_with(f, LVMMED_GM_BRUTE, 0, p);
    for (size_t m = 0; m < NMETHODS; m++) {
      double v = solve_with(f, all_methods[m], 0, p);
      ck_assert_msg(v <= opt + 1e-9, "%s beat brute force", lvmmed_gm_method_name(all_methods[m]));
      if (v >= opt - 1e-9) hits[m]++;
    }
  }
  printf("N=8 LVM-Med-shaped, noise sigma %.1f (view cosine ~%.2f), %d instances, optimum reached:",
         sigma, 1 / sqrt(1 + sigma * sigma), trials);
  for (size_t m = 0; m < NMETHODS; m++)
    printf(" %s %.1f%%", lvmmed_gm_method_name(all_methods[m]), 100.0 * hits[m] / trials);
  printf("\n");
  ck_assert_int_eq(hits[2], trials); /* BRUTE */
  return hits[0];
}

/* AUTO must reach the optimum on >= 95% of the instances at noise 1.5
 * (cosine ~0.55 between the two views of an image, where the unary LAP
 * alone misses it on about one in five); harder noise levels are reported. */
START_TEST(auto_reaches_the_optimum_on_lvmmed_shaped_instances) {
  fixture f = open_solver(0);
  test_rng r = {14};
  enum { TRIALS = 200 };
  int hits = lvmmed_shaped_round(&f, &r, 1.5, TRIALS);
  ck_assert_int_ge(hits * 100, 95 * TRIALS);
  lvmmed_shaped_round(&f, &r, 2.0, 60);
  lvmmed_shaped_round(&f, &r, 3.0, 60);
  close_solver(&f);
}
END_TEST

/* Uniform i.i.d. affinities have no planted matching and are far harder:
 * AUTO needs its random restarts there. */
START_TEST(auto_with_restarts_on_uniform_instances) {
  fixture f = open_solver(3);
  test_rng r = {15};
  enum { TRIALS = 100 };
  int hit0 = 0, hitr = 0;
  for (int t = 0; t < TRIALS; t++) {
    lawler_instance g;
    make_uniform_instance(&r, 8, 5, &g);
    set_lawler(&f, &g);
    int32_t p[16];
    double opt = solve_with(&f, LVMMED_GM_BRUTE, 0, p);
    if (solve_with(&f, LVMMED_GM_AUTO, 0, p) >= opt - 1e-9) hit0++;
    if (solve_with(&f, LVMMED_GM_AUTO, 64, p) >= opt - 1e-9) hitr++;
  }
  printf("N=8 uniform, %d instances, AUTO optimum reached: %.1f%% (restarts 0), %.1f%% (restarts 64)\n",
         TRIALS, 100.0 * hit0 / TRIALS, 100.0 * hitr / TRIALS);
  ck_assert_int_ge(hitr * 100, 95 * TRIALS);
  close_solver(&f);
}
END_TEST

START_TEST(same_seed_same_result) {
  test_rng r = {16};
  lawler_instance g;
  make_uniform_instance(&r, 16, 5, &g);
  int32_t p1[16], p2[16];
  double v1, v2;
  for (int rep = 0; rep < 2; rep++) {
    fixture f = open_solver(1234);
    set_lawler(&f, &g);
    double v = solve_with(&f, LVMMED_GM_AUTO, 8, rep ? p2 : p1);
    if (rep) v2 = v; else v1 = v;
    close_solver(&f);
  }
  ck_assert_mem_eq(p1, p2, sizeof p1);
  ck_assert_double_eq(v1, v2);
  /* Restarts only add candidates: never worse than without. */
  fixture f = open_solver(1234);
  set_lawler(&f, &g);
  ck_assert(solve_with(&f, LVMMED_GM_AUTO, 0, p2) <= v1);
  close_solver(&f);
}
END_TEST

START_TEST(lawler_form_needs_no_dense_affinity_for_large_n) {
  /* n = 600: 50 source edges, 3000 target edges; the dense N²×N² matrix
   * (10^12 bytes as doubles) is never built and AUTO runs through. */
  fixture f = open_solver(0);
  enum { N = 600, K = 5, M = N * K };
  static float unary[N * N];
  static int32_t src[2 * M], tgt[2 * M];
  static float w[50 * M];
  test_rng r = {17};
  for (size_t k = 0; k < (size_t)N * N; k++) unary[k] = (float)trng_uniform(&r);
  for (size_t i = 0; i < N; i++)
    for (size_t k = 0; k < K; k++) {
      src[2 * (i * K + k)] = tgt[2 * (i * K + k)] = (int32_t)i;
      src[2 * (i * K + k) + 1] = tgt[2 * (i * K + k) + 1] = (int32_t)((i + 1 + k) % N);
    }
  for (size_t k = 0; k < sizeof w / sizeof w[0]; k++) w[k] = (float)trng_uniform(&r);
  /* 50 source edges x all target edges = 150000 pairs */
  ck_assert_lvmmed_ok(f.ctx, lvmmed_gm_set_problem(f.s, N, unary, 50, src, M, tgt, w));
  static int32_t p[N];
  solve_with(&f, LVMMED_GM_AUTO, 0, p);
  close_solver(&f);
}
END_TEST

/* ---- options and validation ---- */

START_TEST(options_and_names) {
  fixture f = open_solver(0);
  int64_t lo, hi, v;
  ck_assert_int_eq(lvmmed_gm_option_bounds(LVMMED_GM_OPT_METHOD, &lo, &hi), LVMMED_OK);
  ck_assert_int_eq(lo, LVMMED_GM_AUTO);
  ck_assert_int_eq(hi, LVMMED_GM_TWO_OPT);
  ck_assert_int_eq(lvmmed_gm_option_bounds((lvmmed_gm_option)99, &lo, &hi),
                   LVMMED_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(lvmmed_gm_solver_get_option(f.s, LVMMED_GM_OPT_MAX_ITER, &v), LVMMED_OK);
  ck_assert_int_eq(v, 50);
  ck_assert_int_eq(lvmmed_gm_solver_set_option(f.s, LVMMED_GM_OPT_MAX_ITER, 0), LVMMED_ERR_OUT_OF_RANGE);
  ck_assert_ptr_nonnull(strstr(lvmmed_ctx_last_error(f.ctx), "outside"));
  ck_assert_int_eq(lvmmed_gm_solver_get_option(f.s, LVMMED_GM_OPT_MAX_ITER, &v), LVMMED_OK);
  ck_assert_int_eq(v, 50);
  ck_assert_int_eq(lvmmed_gm_solver_set_option(f.s, LVMMED_GM_OPT_METHOD, 7), LVMMED_ERR_OUT_OF_RANGE);
  ck_assert_int_eq(lvmmed_gm_solver_set_option(f.s, LVMMED_GM_OPT_MAXIMIZE, 1), LVMMED_OK);
  ck_assert_int_eq(lvmmed_gm_solver_get_option(f.s, LVMMED_GM_OPT_MAXIMIZE, &v), LVMMED_OK);
  ck_assert_int_eq(v, 1);
  ck_assert_int_eq(lvmmed_gm_solver_set_option(f.s, (lvmmed_gm_option)0, 1), LVMMED_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(lvmmed_gm_solver_get_option(f.s, LVMMED_GM_OPT_METHOD, NULL), LVMMED_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(lvmmed_gm_solver_set_option(NULL, LVMMED_GM_OPT_METHOD, 1), LVMMED_ERR_INVALID_ARGUMENT);
  static const char *names[] = {"auto", "lap", "brute", "sm", "rrwm", "ipfp", "2opt"};
  for (int m = 0; m < 7; m++) ck_assert_str_eq(lvmmed_gm_method_name((lvmmed_gm_method)m), names[m]);
  ck_assert_str_eq(lvmmed_gm_method_name((lvmmed_gm_method)7), "unknown");
  ck_assert_str_eq(lvmmed_gm_method_name((lvmmed_gm_method)-1), "unknown");
  ck_assert_ptr_eq(lvmmed_gm_solver_ctx(f.s), f.ctx);
  ck_assert_ptr_null(lvmmed_gm_solver_ctx(NULL));
  ck_assert_uint_eq(lvmmed_ctx_refcount(f.ctx), 2);
  close_solver(&f);
  lvmmed_gm_solver_free(NULL);
  ck_assert_uint_eq(lvmmed_gm_problem_size(NULL), 0);
}
END_TEST

START_TEST(invalid_problems_are_rejected) {
  fixture f = open_solver(0);
  int32_t p[4] = {0, 1, 2, 3};
  double obj;
  ck_assert_int_eq(lvmmed_gm_solve(f.s, p, &obj), LVMMED_ERR_STATE);
  ck_assert_int_eq(lvmmed_gm_objective(f.s, p, &obj), LVMMED_ERR_STATE);
  ck_assert_uint_eq(lvmmed_gm_problem_size(f.s), 0);
  float u[16] = {0};
  int32_t e[4] = {0, 1, 1, 2};
  float w[4] = {1, 2, 3, 4};
  ck_assert_int_eq(lvmmed_gm_set_problem(f.s, 0, u, 0, NULL, 0, NULL, NULL), LVMMED_ERR_OUT_OF_RANGE);
  ck_assert_int_eq(lvmmed_gm_set_problem(f.s, 5000, u, 0, NULL, 0, NULL, NULL), LVMMED_ERR_OUT_OF_RANGE);
  ck_assert_int_eq(lvmmed_gm_set_problem(f.s, 4, NULL, 0, NULL, 0, NULL, NULL), LVMMED_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(lvmmed_gm_set_problem(f.s, 4, u, 2, NULL, 2, e, w), LVMMED_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(lvmmed_gm_set_problem(f.s, 4, u, 2, e, 2, e, NULL), LVMMED_ERR_INVALID_ARGUMENT);
  int32_t loop[2] = {3, 3};
  ck_assert_int_eq(lvmmed_gm_set_problem(f.s, 4, u, 1, loop, 2, e, w), LVMMED_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(lvmmed_ctx_last_error(f.ctx), "self loop"));
  int32_t far[2] = {0, 4};
  ck_assert_int_eq(lvmmed_gm_set_problem(f.s, 4, u, 2, e, 1, far, w), LVMMED_ERR_OUT_OF_RANGE);
  ck_assert_ptr_nonnull(strstr(lvmmed_ctx_last_error(f.ctx), "target edge 0"));
  int32_t neg[2] = {-1, 0};
  ck_assert_int_eq(lvmmed_gm_set_problem(f.s, 4, u, 1, neg, 2, e, w), LVMMED_ERR_OUT_OF_RANGE);
  u[5] = NAN;
  ck_assert_int_eq(lvmmed_gm_set_problem(f.s, 4, u, 2, e, 2, e, w), LVMMED_ERR_NUMERIC);
  ck_assert_ptr_nonnull(strstr(lvmmed_ctx_last_error(f.ctx), "unary[1][1]"));
  u[5] = 0;
  w[3] = INFINITY;
  ck_assert_int_eq(lvmmed_gm_set_problem(f.s, 4, u, 2, e, 2, e, w), LVMMED_ERR_NUMERIC);
  ck_assert_ptr_nonnull(strstr(lvmmed_ctx_last_error(f.ctx), "edge_affinity[1][1]"));
  ck_assert_uint_eq(lvmmed_gm_problem_size(f.s), 0); /* nothing was installed */
  w[3] = 4;
  ck_assert_lvmmed_ok(f.ctx, lvmmed_gm_set_problem(f.s, 4, u, 2, e, 2, e, w));
  /* A failed set keeps the previous problem. */
  ck_assert_int_eq(lvmmed_gm_set_problem(f.s, 4, u, 1, loop, 2, e, w), LVMMED_ERR_INVALID_ARGUMENT);
  ck_assert_uint_eq(lvmmed_gm_problem_size(f.s), 4);
  int32_t dup[4] = {0, 1, 1, 3}, out[4] = {0, 1, 2, 4};
  ck_assert_int_eq(lvmmed_gm_objective(f.s, dup, &obj), LVMMED_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(lvmmed_ctx_last_error(f.ctx), "repeats"));
  ck_assert_int_eq(lvmmed_gm_objective(f.s, out, &obj), LVMMED_ERR_OUT_OF_RANGE);
  ck_assert_int_eq(lvmmed_gm_objective(f.s, NULL, &obj), LVMMED_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(lvmmed_gm_solve(f.s, NULL, &obj), LVMMED_ERR_INVALID_ARGUMENT);
  double a[4] = {1, 2, 3, 4}, b[4] = {1, 2, 3, NAN};
  ck_assert_int_eq(lvmmed_gm_set_koopmans_beckmann(f.s, 2, a, b), LVMMED_ERR_NUMERIC);
  ck_assert_int_eq(lvmmed_gm_set_koopmans_beckmann(f.s, 2, a, NULL), LVMMED_ERR_INVALID_ARGUMENT);
  double huge[4] = {1e200, 0, 0, 1e200};
  ck_assert_int_eq(lvmmed_gm_set_koopmans_beckmann(f.s, 2, huge, huge), LVMMED_ERR_OUT_OF_RANGE);
  /* Brute force is bounded. */
  static float u10[100];
  ck_assert_lvmmed_ok(f.ctx, lvmmed_gm_set_problem(f.s, 10, u10, 0, NULL, 0, NULL, NULL));
  ck_assert_int_eq(lvmmed_gm_solver_set_option(f.s, LVMMED_GM_OPT_METHOD, LVMMED_GM_BRUTE), LVMMED_OK);
  int32_t p10[10];
  ck_assert_int_eq(lvmmed_gm_solve(f.s, p10, &obj), LVMMED_ERR_LIMIT);
  ck_assert_ptr_nonnull(strstr(lvmmed_ctx_last_error(f.ctx), "n <= 9"));
  close_solver(&f);
}
END_TEST

static Suite *gm_suite(void) {
  Suite *s = suite_create("gm_solver");
  TCase *tc = tcase_create("gm");
  tcase_set_timeout(tc, 240);
  tcase_add_test(tc, lawler_objective_matches_direct_evaluation);
  tcase_add_test(tc, kb_objective_matches_direct_evaluation);
  tcase_add_test(tc, every_method_returns_a_permutation);
  tcase_add_test(tc, brute_force_is_exhaustive);
  tcase_add_test(tc, auto_reaches_the_optimum_on_lvmmed_shaped_instances);
  tcase_add_test(tc, auto_with_restarts_on_uniform_instances);
  tcase_add_test(tc, same_seed_same_result);
  tcase_add_test(tc, lawler_form_needs_no_dense_affinity_for_large_n);
  tcase_add_test(tc, options_and_names);
  tcase_add_test(tc, invalid_problems_are_rejected);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return run_suite(gm_suite()); }
