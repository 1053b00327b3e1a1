/* Shared helpers of the graph-matching solver tests: a small deterministic
 * generator, LVM-Med-shaped instances, and direct (unoptimised) objectives
 * that serve as oracles for the library's own evaluation. */
#ifndef LVMMED_TEST_GM_UTIL_H
#define LVMMED_TEST_GM_UTIL_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct test_rng {
  uint64_t s;
} test_rng;

static inline uint64_t trng_u64(test_rng *r) {
  /* splitmix64: fine statistics, trivially seedable */
  uint64_t z = (r->s += UINT64_C(0x9E3779B97F4A7C15));
  z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
  return z ^ (z >> 31);
}

static inline double trng_uniform(test_rng *r) { return (double)(trng_u64(r) >> 11) * 0x1.0p-53; }

static inline int trng_below(test_rng *r, int bound) { return (int)(trng_u64(r) % (uint64_t)bound); }

static inline double trng_normal(test_rng *r) {
  double u = trng_uniform(r) + 1e-300, v = trng_uniform(r);
  return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

/* A Lawler-form instance as the library receives it. */
typedef struct lawler_instance {
  size_t n, ms, mt;
  float unary[16 * 16];
  int32_t src[2 * 16 * 8], tgt[2 * 16 * 8];
  float w[16 * 8 * 16 * 8];
} lawler_instance;

#define FEAT_DIM 16

/* Directed kNN edges (k nearest by Euclidean distance, no self loops, ties
 * to the lower index), grouped by tail as a kNN builder emits them. */
static inline size_t knn_edges(size_t n, size_t k, double feat[][FEAT_DIM], int32_t *edges) {
  size_t m = 0;
  for (size_t i = 0; i < n; i++) {
    int used[16] = {0};
    used[i] = 1;
    for (size_t t = 0; t < k && t + 1 < n; t++) {
      size_t best = n;
      double bd = HUGE_VAL;
      for (size_t j = 0; j < n; j++) {
        if (used[j]) continue;
        double d = 0;
        for (int q = 0; q < FEAT_DIM; q++) d += (feat[i][q] - feat[j][q]) * (feat[i][q] - feat[j][q]);
        if (d < bd) {
          bd = d;
          best = j;
        }
      }
      used[best] = 1;
      edges[2 * m] = (int32_t)i;
      edges[2 * m + 1] = (int32_t)best;
      m++;
    }
  }
  return m;
}

static inline double cosine(const double *a, const double *b) {
  double ab = 0, aa = 0, bb = 0;
  for (int q = 0; q < FEAT_DIM; q++) {
    ab += a[q] * b[q];
    aa += a[q] * a[q];
    bb += b[q] * b[q];
  }
  return ab / sqrt(aa * bb + 1e-300);
}

/* LVM-Med-shaped instance: node features of two views of the same n images
 * (the second view permuted and perturbed by Gaussian noise of size sigma),
 * kNN graphs on each view, unary = cosine of node features, edge affinity =
 * cosine of the node-feature differences along the two edges. All values
 * lie in [-1, 1]. */
static inline void make_lvmmed_instance(test_rng *r, size_t n, size_t k, double sigma,
                                        lawler_instance *out) {
  double z[16][FEAT_DIM], z2[16][FEAT_DIM];
  int perm[16];
  for (size_t i = 0; i < n; i++) perm[i] = (int)i;
  for (size_t i = n; i > 1; i--) {
    int j = trng_below(r, (int)i), t = perm[i - 1];
    perm[i - 1] = perm[j];
    perm[j] = t;
  }
  for (size_t i = 0; i < n; i++)
    for (int q = 0; q < FEAT_DIM; q++) z[i][q] = trng_normal(r);
  for (size_t a = 0; a < n; a++)
    for (int q = 0; q < FEAT_DIM; q++) z2[a][q] = z[perm[a]][q] + sigma * trng_normal(r);
  out->n = n;
  for (size_t i = 0; i < n; i++)
    for (size_t a = 0; a < n; a++) out->unary[i * n + a] = (float)cosine(z[i], z2[a]);
  out->ms = knn_edges(n, k, z, out->src);
  out->mt = knn_edges(n, k, z2, out->tgt);
  for (size_t e = 0; e < out->ms; e++) {
    for (size_t f = 0; f < out->mt; f++) {
      double d1[FEAT_DIM], d2[FEAT_DIM];
      for (int q = 0; q < FEAT_DIM; q++) {
        d1[q] = z[out->src[2 * e]][q] - z[out->src[2 * e + 1]][q];
        d2[q] = z2[out->tgt[2 * f]][q] - z2[out->tgt[2 * f + 1]][q];
      }
      out->w[e * out->mt + f] = (float)cosine(d1, d2);
    }
  }
}

/* Uniform instance: kNN edges of random features, unary and edge affinities
 * i.i.d. uniform in [-1, 1] (no planted matching: the hard case). */
static inline void make_uniform_instance(test_rng *r, size_t n, size_t k, lawler_instance *out) {
  double z[16][FEAT_DIM], z2[16][FEAT_DIM];
  for (size_t i = 0; i < n; i++)
    for (int q = 0; q < FEAT_DIM; q++) {
      z[i][q] = trng_normal(r);
      z2[i][q] = trng_normal(r);
    }
  out->n = n;
  for (size_t i = 0; i < n * n; i++) out->unary[i] = (float)(2 * trng_uniform(r) - 1);
  out->ms = knn_edges(n, k, z, out->src);
  out->mt = knn_edges(n, k, z2, out->tgt);
  for (size_t i = 0; i < out->ms * out->mt; i++) out->w[i] = (float)(2 * trng_uniform(r) - 1);
}

/* Direct Lawler objective: every (source edge, target edge) pair is checked. */
static inline double lawler_direct(const lawler_instance *g, const int32_t *p) {
  double t = 0;
  for (size_t i = 0; i < g->n; i++) t += g->unary[i * g->n + (size_t)p[i]];
  for (size_t e = 0; e < g->ms; e++)
    for (size_t f = 0; f < g->mt; f++)
      if (p[g->src[2 * e]] == g->tgt[2 * f] && p[g->src[2 * e + 1]] == g->tgt[2 * f + 1])
        t += g->w[e * g->mt + f];
  return t;
}

static inline double kb_direct(size_t n, const double *a, const double *b, const int32_t *p) {
  double t = 0;
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < n; j++) t += a[i * n + j] * b[(size_t)p[i] * n + (size_t)p[j]];
  return t;
}

/* Next permutation in lexicographic order; 0 after the last. */
static inline int next_perm(int32_t *p, size_t n) {
  if (n < 2) return 0;
  size_t i = n - 1;
  while (i > 0 && p[i - 1] >= p[i]) i--;
  if (i == 0) return 0;
  size_t j = n - 1;
  while (p[j] <= p[i - 1]) j--;
  int32_t t = p[i - 1];
  p[i - 1] = p[j];
  p[j] = t;
  for (size_t a = i, b = n - 1; a < b; a++, b--) {
    t = p[a];
    p[a] = p[b];
    p[b] = t;
  }
  return 1;
}

static inline int is_permutation(const int32_t *p, size_t n) {
  unsigned char *seen = calloc(n ? n : 1, 1);
  int ok = seen != NULL;
  for (size_t i = 0; ok && i < n; i++) {
    if (p[i] < 0 || (size_t)p[i] >= n || seen[p[i]]) ok = 0;
    else seen[p[i]] = 1;
  }
  free(seen);
  return ok;
}

#endif /* LVMMED_TEST_GM_UTIL_H */
