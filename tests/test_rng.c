/* Counter-based RNG: Philox known answers, stream independence, distribution moments. */
#include <math.h>

#include "core/rng.h"
#include "test_util.h"

/* Known-answer vectors of Philox4x32-10 published with Random123 (kat_vectors). */
START_TEST(philox_known_answers) {
  static const struct {
    uint32_t ctr[4], key[2], out[4];
  } kat[] = {
      {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}},
      {{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu},
       {0xffffffffu, 0xffffffffu},
       {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}},
      {{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u},
       {0xa4093822u, 0x299f31d0u},
       {0xd16cfe09u, 0x94fdcceBu, 0x5001e420u, 0x24126ea1u}},
  };
  for (size_t i = 0; i < sizeof kat / sizeof kat[0]; i++) {
    uint32_t out[4];
    lvmmed__philox4x32_10(kat[i].ctr, kat[i].key, out);
    for (int w = 0; w < 4; w++) ck_assert_uint_eq(out[w], kat[i].out[w]);
  }
}
END_TEST

START_TEST(streams_are_reproducible_and_independent) {
  lvmmed_rng a, b, c, d;
  lvmmed__rng_init(&a, 1234, 7);
  lvmmed__rng_init(&b, 1234, 7);
  lvmmed__rng_init(&c, 1234, 8);
  lvmmed__rng_init(&d, 1235, 7);
  int same_c = 0, same_d = 0;
  for (int i = 0; i < 1000; i++) {
    uint32_t x = lvmmed__rng_u32(&a);
    ck_assert_uint_eq(x, lvmmed__rng_u32(&b));
    same_c += x == lvmmed__rng_u32(&c);
    same_d += x == lvmmed__rng_u32(&d);
  }
  ck_assert_int_le(same_c, 2);
  ck_assert_int_le(same_d, 2);
  /* Block n of a stream is philox(counter = (n, stream), key = seed): random access by design. */
  lvmmed_rng e;
  lvmmed__rng_init(&e, 0x0123456789abcdefULL, 0xfedcba9876543210ULL);
  for (int i = 0; i < 8; i++) lvmmed__rng_u32(&e);
  uint32_t ctr[4] = {2, 0, 0x76543210u, 0xfedcba98u}, key[2] = {0x89abcdefu, 0x01234567u}, out[4];
  lvmmed__philox4x32_10(ctr, key, out);
  for (int w = 0; w < 4; w++) ck_assert_uint_eq(lvmmed__rng_u32(&e), out[w]);
}
END_TEST

typedef double (*sampler)(lvmmed_rng *, const double *params);

static void moments(sampler f, const double *params, int n, double *mean, double *var) {
  lvmmed_rng r;
  lvmmed__rng_init(&r, 42, 0);
  double s = 0, s2 = 0;
  for (int i = 0; i < n; i++) {
    double x = f(&r, params);
    ck_assert(isfinite(x));
    s += x;
    s2 += x * x;
  }
  *mean = s / n;
  *var = s2 / n - *mean * *mean;
}

static double s_uniform(lvmmed_rng *r, const double *p) {
  (void)p;
  double u = lvmmed__rng_uniform(r);
  ck_assert(u > 0.0 && u < 1.0);
  return u;
}
static double s_normal(lvmmed_rng *r, const double *p) { (void)p; return lvmmed__rng_normal(r); }
static double s_gumbel(lvmmed_rng *r, const double *p) { (void)p; return lvmmed__rng_gumbel(r); }
static double s_gamma(lvmmed_rng *r, const double *p) {
  double g = lvmmed__rng_gamma(r, p[0], p[1]);
  ck_assert(g >= 0.0);
  return g;
}

#define N_SAMPLES 400000
/* Tolerances are ~5 standard errors for N_SAMPLES draws; the seed is fixed, so no flakes. */
START_TEST(distribution_moments) {
  double m, v;
  moments(s_uniform, NULL, N_SAMPLES, &m, &v);
  ck_assert_double_eq_tol(m, 0.5, 0.003);
  ck_assert_double_eq_tol(v, 1.0 / 12.0, 0.001);
  moments(s_normal, NULL, N_SAMPLES, &m, &v);
  ck_assert_double_eq_tol(m, 0.0, 0.008);
  ck_assert_double_eq_tol(v, 1.0, 0.012);
  moments(s_gumbel, NULL, N_SAMPLES, &m, &v);
  ck_assert_double_eq_tol(m, 0.5772156649, 0.01);
  ck_assert_double_eq_tol(v, M_PI * M_PI / 6.0, 0.03);
  static const double gamma_params[][2] = {{0.5, 1.0}, {1.0, 2.0}, {3.0, 0.5}, {10.0, 0.1}};
  for (size_t i = 0; i < 4; i++) {
    double k = gamma_params[i][0], theta = gamma_params[i][1];
    moments(s_gamma, gamma_params[i], N_SAMPLES, &m, &v);
    double sd = sqrt(k) * theta;
    ck_assert_double_eq_tol(m, k * theta, 5 * sd / sqrt(N_SAMPLES));
    ck_assert_double_eq_tol(v, k * theta * theta, 0.03 * k * theta * theta);
  }
}
END_TEST

START_TEST(below_is_unbiased) {
  lvmmed_rng r;
  lvmmed__rng_init(&r, 9, 3);
  enum { K = 7, N = 70000 };
  int count[K] = {0};
  for (int i = 0; i < N; i++) {
    uint64_t x = lvmmed__rng_below(&r, K);
    ck_assert_uint_lt(x, K);
    count[x]++;
  }
  double chi2 = 0, e = (double)N / K;
  for (int k = 0; k < K; k++) chi2 += (count[k] - e) * (count[k] - e) / e;
  ck_assert_double_lt(chi2, 22.46); /* chi-square(6) at p = 0.001 */
  ck_assert_uint_eq(lvmmed__rng_below(&r, 1), 0);
}
END_TEST

int main(void) {
  Suite *s = suite_create("rng");
  TCase *tc = tcase_create("philox");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, philox_known_answers);
  tcase_add_test(tc, streams_are_reproducible_and_independent);
  tcase_add_test(tc, distribution_moments);
  tcase_add_test(tc, below_is_unbiased);
  suite_add_tcase(s, tc);
  return run_suite(s);
}
