/* liblvmmed — private counter-based random numbers (Philox4x32-10).
 *
 * A stream is keyed by (seed, stream id); its n-th block of four 32-bit
 * words is philox(key = seed, counter = (n, stream id)). Any item of a
 * computation can own a stream id (e.g. image index * 2 + view), so results
 * never depend on which thread draws first.
 */
#ifndef LVMMED_RNG_H
#define LVMMED_RNG_H

#include <stdint.h>

typedef struct lvmmed_rng {
  uint32_t key[2];
  uint64_t stream;
  uint64_t block; /* index of the next block to generate */
  uint32_t buf[4];
  unsigned pos; /* next unused word of buf; 4 = empty */
  int has_normal;
  double normal_spare;
} lvmmed_rng;

/** One Philox4x32-10 block: out = philox(counter, key). */
void lvmmed__philox4x32_10(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4]);

/** Starts stream `stream` of `seed` at its first block. */
void lvmmed__rng_init(lvmmed_rng *rng, uint64_t seed, uint64_t stream);

/** Next 32 random bits. */
uint32_t lvmmed__rng_u32(lvmmed_rng *rng);

/** Next 64 random bits. */
uint64_t lvmmed__rng_u64(lvmmed_rng *rng);

/** Uniform double in the open interval (0, 1), 53-bit resolution. */
double lvmmed__rng_uniform(lvmmed_rng *rng);

/** Uniform integer in [0, bound) without modulo bias; bound > 0. */
uint64_t lvmmed__rng_below(lvmmed_rng *rng, uint64_t bound);

/** Standard normal N(0, 1) (Box–Muller; the second value is cached). */
double lvmmed__rng_normal(lvmmed_rng *rng);

/** Standard Gumbel(0, 1): -log(-log U). */
double lvmmed__rng_gumbel(lvmmed_rng *rng);

/** Gamma(shape, scale) for shape > 0 (Marsaglia–Tsang, with the shape < 1 boost). */
double lvmmed__rng_gamma(lvmmed_rng *rng, double shape, double scale);

#endif /* LVMMED_RNG_H */
