/* Exact linear assignment (lvmmed_lap_solve) against exhaustive search. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "test_gm_util.h"
#include "test_util.h"

/* Best total over all injective maps of the smaller side into the larger
 * (rows <= 8, cols <= 8), by enumerating permutations of the larger side. */
static double brute_lap(size_t rows, size_t cols, const double *c, int maximize) {
  size_t big = rows > cols ? rows : cols;
  int32_t p[8];
  for (size_t i = 0; i < big; i++) p[i] = (int32_t)i;
  double best = maximize ? -HUGE_VAL : HUGE_VAL;
  do {
    double t = 0;
    if (rows <= cols) {
      for (size_t i = 0; i < rows; i++) t += c[i * cols + (size_t)p[i]];
    } else {
      for (size_t j = 0; j < cols; j++) t += c[(size_t)p[j] * cols + j];
    }
    if (maximize ? t > best : t < best) best = t;
  } while (next_perm(p, big));
  return best;
}

/* Solves, checks the assignment's shape and that objective is its cost;
 * returns the objective. */
static double solve_checked(lvmmed_ctx *ctx, size_t rows, size_t cols, const double *c,
                            int maximize) {
  int32_t a[1024];
  double obj = NAN;
  ck_assert_lvmmed_ok(ctx, lvmmed_lap_solve(ctx, rows, cols, c, maximize, a, &obj));
  int used[1024] = {0};
  size_t assigned = 0;
  double total = 0;
  for (size_t i = 0; i < rows; i++) {
    if (a[i] < 0) {
      ck_assert_int_eq(a[i], -1);
      continue;
    }
    ck_assert_int_lt(a[i], (int)cols);
    ck_assert_msg(!used[a[i]], "column %d used twice", a[i]);
    used[a[i]] = 1;
    assigned++;
    total += c[i * cols + (size_t)a[i]];
  }
  ck_assert_uint_eq(assigned, rows < cols ? rows : cols);
  ck_assert_double_eq_tol(total, obj, 1e-9 * (1 + fabs(total)));
  return obj;
}

enum { DIST_UNIFORM, DIST_SMALL_INT, DIST_CONSTANT, DIST_NEGATIVE, DIST_ROW_CONSTANT, DIST_COUNT };

static void fill(test_rng *r, int dist, size_t count, size_t cols, double *c) {
  for (size_t k = 0; k < count; k++) {
    switch (dist) {
      case DIST_UNIFORM: c[k] = trng_uniform(r); break;
      case DIST_SMALL_INT: c[k] = (double)trng_below(r, 4); break; /* many ties */
      case DIST_CONSTANT: c[k] = 7.0; break;
      case DIST_NEGATIVE: c[k] = -1e3 * trng_uniform(r) + (double)trng_below(r, 3); break;
      default: c[k] = (double)(k / cols) * 3.0 + (double)trng_below(r, 2); break;
    }
  }
}

START_TEST(lap_equals_brute_force_square) {
  lvmmed_ctx *ctx = NULL;
  ck_assert_int_eq(lvmmed_ctx_create(&ctx), LVMMED_OK);
  test_rng r = {1};
  int cases = 0;
  for (size_t n = 1; n <= 8; n++) {
    for (int dist = 0; dist < DIST_COUNT; dist++) {
      int reps = n <= 6 ? 12 : 3;
      for (int rep = 0; rep < reps; rep++) {
        double c[64];
        fill(&r, dist, n * n, n, c);
        for (int mx = 0; mx < 2; mx++) {
          double got = solve_checked(ctx, n, n, c, mx), want = brute_lap(n, n, c, mx);
          ck_assert_msg(fabs(got - want) <= 1e-12 * (1 + fabs(want)),
                        "n=%zu dist=%d max=%d: lap %.17g, brute %.17g", n, dist, mx, got, want);
          cases++;
        }
      }
    }
  }
  printf("lap vs brute force, square: %d cases\n", cases);
  lvmmed_ctx_release(ctx);
}
END_TEST

START_TEST(lap_equals_brute_force_rectangular) {
  lvmmed_ctx *ctx = NULL;
  ck_assert_int_eq(lvmmed_ctx_create(&ctx), LVMMED_OK);
  test_rng r = {2};
  int cases = 0;
  for (size_t rows = 1; rows <= 8; rows++) {
    for (size_t cols = 1; cols <= 8; cols++) {
      if (rows == cols) continue;
      for (int dist = 0; dist < DIST_COUNT; dist++) {
        double c[64];
        fill(&r, dist, rows * cols, cols, c);
        for (int mx = 0; mx < 2; mx++) {
          double got = solve_checked(ctx, rows, cols, c, mx), want = brute_lap(rows, cols, c, mx);
          ck_assert_msg(fabs(got - want) <= 1e-12 * (1 + fabs(want)),
                        "%zux%zu dist=%d max=%d: lap %.17g, brute %.17g", rows, cols, dist, mx,
                        got, want);
          cases++;
        }
      }
    }
  }
  printf("lap vs brute force, rectangular: %d cases\n", cases);
  lvmmed_ctx_release(ctx);
}
END_TEST

/* Larger inputs (ties, constants, negatives) against an independent
 * reference: the textbook O(n³) Hungarian method with potentials, which
 * shares no code or initialisation with Jonker–Volgenant. */
static double hungarian_ref(size_t n, const double *c) {
  /* O(n^3) textbook shortest augmenting path with potentials (1-based). */
  double u[129] = {0}, v[129] = {0}, minv[129];
  int p[129] = {0}, way[129] = {0}, used[129];
  for (size_t i = 1; i <= n; i++) {
    p[0] = (int)i;
    int j0 = 0;
    for (size_t j = 0; j <= n; j++) {
      minv[j] = HUGE_VAL;
      used[j] = 0;
    }
    do {
      used[j0] = 1;
      int i0 = p[j0], j1 = 0;
      double delta = HUGE_VAL;
      for (size_t j = 1; j <= n; j++) {
        if (used[j]) continue;
        double cur = c[(size_t)(i0 - 1) * n + j - 1] - u[i0] - v[j];
        if (cur < minv[j]) {
          minv[j] = cur;
          way[j] = j0;
        }
        if (minv[j] < delta) {
          delta = minv[j];
          j1 = (int)j;
        }
      }
      for (size_t j = 0; j <= n; j++) {
        if (used[j]) {
          u[p[j]] += delta;
          v[j] -= delta;
        } else {
          minv[j] -= delta;
        }
      }
      j0 = j1;
    } while (p[j0] != 0);
    do {
      int j1 = way[j0];
      p[j0] = p[j1];
      j0 = j1;
    } while (j0);
  }
  double total = 0;
  for (size_t j = 1; j <= n; j++) total += c[(size_t)(p[j] - 1) * n + j - 1];
  return total;
}

START_TEST(lap_equals_reference_on_degenerate_medium_inputs) {
  lvmmed_ctx *ctx = NULL;
  ck_assert_int_eq(lvmmed_ctx_create(&ctx), LVMMED_OK);
  test_rng r = {3};
  static double c[128 * 128];
  static const size_t sizes[] = {9, 17, 64, 128};
  for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
    size_t n = sizes[s];
    for (int dist = 0; dist < DIST_COUNT; dist++) {
      fill(&r, dist, n * n, n, c);
      double got = solve_checked(ctx, n, n, c, 0), want = hungarian_ref(n, c);
      ck_assert_msg(fabs(got - want) <= 1e-9 * (1 + fabs(want)), "n=%zu dist=%d: %.17g vs %.17g",
                    n, dist, got, want);
    }
  }
  lvmmed_ctx_release(ctx);
}
END_TEST

START_TEST(lap_is_deterministic) {
  lvmmed_ctx *ctx = NULL;
  ck_assert_int_eq(lvmmed_ctx_create(&ctx), LVMMED_OK);
  test_rng r = {4};
  static double c[100 * 100];
  fill(&r, DIST_SMALL_INT, 100 * 100, 100, c);
  int32_t a1[100], a2[100];
  ck_assert_lvmmed_ok(ctx, lvmmed_lap_solve(ctx, 100, 100, c, 0, a1, NULL));
  ck_assert_lvmmed_ok(ctx, lvmmed_lap_solve(ctx, 100, 100, c, 0, a2, NULL));
  ck_assert_mem_eq(a1, a2, sizeof a1);
  lvmmed_ctx_release(ctx);
}
END_TEST

START_TEST(lap_empty_shapes) {
  lvmmed_ctx *ctx = NULL;
  ck_assert_int_eq(lvmmed_ctx_create(&ctx), LVMMED_OK);
  int32_t a[3] = {5, 5, 5};
  double obj = 1;
  ck_assert_lvmmed_ok(ctx, lvmmed_lap_solve(ctx, 0, 0, NULL, 0, NULL, &obj));
  ck_assert_double_eq(obj, 0);
  ck_assert_lvmmed_ok(ctx, lvmmed_lap_solve(ctx, 3, 0, NULL, 0, a, &obj));
  ck_assert_int_eq(a[0], -1);
  ck_assert_int_eq(a[2], -1);
  ck_assert_double_eq(obj, 0);
  lvmmed_ctx_release(ctx);
}
END_TEST

START_TEST(lap_rejects_bad_input) {
  lvmmed_ctx *ctx = NULL;
  ck_assert_int_eq(lvmmed_ctx_create(&ctx), LVMMED_OK);
  double c[4] = {1, 2, 3, 4};
  int32_t a[2];
  ck_assert_int_eq(lvmmed_lap_solve(NULL, 2, 2, c, 0, a, NULL), LVMMED_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(lvmmed_lap_solve(ctx, 2, 2, NULL, 0, a, NULL), LVMMED_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(lvmmed_lap_solve(ctx, 2, 2, c, 0, NULL, NULL), LVMMED_ERR_INVALID_ARGUMENT);
  c[3] = NAN;
  ck_assert_int_eq(lvmmed_lap_solve(ctx, 2, 2, c, 0, a, NULL), LVMMED_ERR_NUMERIC);
  ck_assert_ptr_nonnull(strstr(lvmmed_ctx_last_error(ctx), "cost[1][1]"));
  c[3] = INFINITY;
  ck_assert_int_eq(lvmmed_lap_solve(ctx, 2, 2, c, 0, a, NULL), LVMMED_ERR_NUMERIC);
  c[3] = DBL_MAX;
  c[0] = -DBL_MAX;
  ck_assert_int_eq(lvmmed_lap_solve(ctx, 2, 2, c, 0, a, NULL), LVMMED_ERR_OUT_OF_RANGE);
  ck_assert_int_eq(lvmmed_lap_solve(ctx, (size_t)INT32_MAX + 1, 1, c, 0, a, NULL),
                   LVMMED_ERR_OUT_OF_RANGE);
  ck_assert_int_eq(lvmmed_lap_solve(ctx, SIZE_MAX / 2, SIZE_MAX / 2, c, 0, a, NULL),
                   LVMMED_ERR_OUT_OF_RANGE);
  /* Large but safe magnitudes still solve exactly. */
  double big[4] = {1e300, 0, 0, 1e300};
  double obj;
  ck_assert_lvmmed_ok(ctx, lvmmed_lap_solve(ctx, 2, 2, big, 0, a, &obj));
  ck_assert_double_eq(obj, 0);
  lvmmed_ctx_release(ctx);
}
END_TEST

static Suite *lap_suite(void) {
  Suite *s = suite_create("lap");
  TCase *tc = tcase_create("lap");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, lap_equals_brute_force_square);
  tcase_add_test(tc, lap_equals_brute_force_rectangular);
  tcase_add_test(tc, lap_equals_reference_on_degenerate_medium_inputs);
  tcase_add_test(tc, lap_is_deterministic);
  tcase_add_test(tc, lap_empty_shapes);
  tcase_add_test(tc, lap_rejects_bad_input);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return run_suite(lap_suite()); }
