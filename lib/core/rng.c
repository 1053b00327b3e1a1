/* Philox4x32-10 (Salmon et al., SC'11) and the distributions built on it. */
#include <math.h>

#include "core/rng.h"

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u /* golden ratio */
#define PHILOX_W1 0xBB67AE85u /* sqrt(3) - 1 */

static inline void mulhilo(uint32_t a, uint32_t b, uint32_t *hi, uint32_t *lo) {
  uint64_t p = (uint64_t)a * b;
  *hi = (uint32_t)(p >> 32);
  *lo = (uint32_t)p;
}

void lvmmed__philox4x32_10(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4]) {
  uint32_t c0 = counter[0], c1 = counter[1], c2 = counter[2], c3 = counter[3];
  uint32_t k0 = key[0], k1 = key[1];
  for (int round = 0; round < 10; round++) {
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo(PHILOX_M0, c0, &hi0, &lo0);
    mulhilo(PHILOX_M1, c2, &hi1, &lo1);
    uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
    c0 = n0;
    c1 = lo1;
    c2 = n2;
    c3 = lo0;
    k0 += PHILOX_W0;
    k1 += PHILOX_W1;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

void lvmmed__rng_init(lvmmed_rng *rng, uint64_t seed, uint64_t stream) {
  rng->key[0] = (uint32_t)seed;
  rng->key[1] = (uint32_t)(seed >> 32);
  rng->stream = stream;
  rng->block = 0;
  rng->pos = 4;
  rng->has_normal = 0;
  rng->normal_spare = 0.0;
}

uint32_t lvmmed__rng_u32(lvmmed_rng *rng) {
  if (rng->pos >= 4) {
    uint32_t ctr[4] = {(uint32_t)rng->block, (uint32_t)(rng->block >> 32), (uint32_t)rng->stream,
                       (uint32_t)(rng->stream >> 32)};
    lvmmed__philox4x32_10(ctr, rng->key, rng->buf);
    rng->block++;
    rng->pos = 0;
  }
  return rng->buf[rng->pos++];
}

uint64_t lvmmed__rng_u64(lvmmed_rng *rng) {
  uint64_t lo = lvmmed__rng_u32(rng);
  return lo | (uint64_t)lvmmed__rng_u32(rng) << 32;
}

double lvmmed__rng_uniform(lvmmed_rng *rng) {
  /* 53 random bits centred in their cell: never 0, never 1. */
  uint64_t bits = lvmmed__rng_u64(rng) >> 11;
  return ((double)bits + 0.5) * 0x1.0p-53;
}

uint64_t lvmmed__rng_below(lvmmed_rng *rng, uint64_t bound) {
  /* Rejection of the incomplete top range removes modulo bias. */
  uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
  uint64_t x;
  do x = lvmmed__rng_u64(rng);
  while (x >= limit);
  return x % bound;
}

double lvmmed__rng_normal(lvmmed_rng *rng) {
  if (rng->has_normal) {
    rng->has_normal = 0;
    return rng->normal_spare;
  }
  double u1 = lvmmed__rng_uniform(rng), u2 = lvmmed__rng_uniform(rng);
  double r = sqrt(-2.0 * log(u1)), t = 6.283185307179586476925 * u2;
  rng->normal_spare = r * sin(t);
  rng->has_normal = 1;
  return r * cos(t);
}

double lvmmed__rng_gumbel(lvmmed_rng *rng) { return -log(-log(lvmmed__rng_uniform(rng))); }

double lvmmed__rng_gamma(lvmmed_rng *rng, double shape, double scale) {
  if (shape < 1.0) {
    /* Gamma(a) = Gamma(a + 1) * U^(1/a) keeps the squeeze method valid for a < 1. */
    double u = lvmmed__rng_uniform(rng);
    return lvmmed__rng_gamma(rng, shape + 1.0, scale) * pow(u, 1.0 / shape);
  }
  double d = shape - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
  for (;;) {
    double x, v;
    do {
      x = lvmmed__rng_normal(rng);
      v = 1.0 + c * x;
    } while (v <= 0.0);
    v = v * v * v;
    double u = lvmmed__rng_uniform(rng);
    if (u < 1.0 - 0.0331 * x * x * x * x) return d * v * scale;
    if (log(u) < 0.5 * x * x + d * (1.0 - v + log(v))) return d * v * scale;
  }
}
