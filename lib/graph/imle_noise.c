/* Noise samplers of the I-MLE estimator.
 *
 * Gumbel noise is drawn for every entry of c_v and c_e (6656 values per graph
 * and sample for N = 16, k = 5), so it is on the hot path: a SplitMix64
 * counter stream (keyed once per graph and sample from the context's Philox
 * generator) and a branch-free logarithm that the compiler vectorises. On
 * GCC/x86-64 the kernel is built for AVX-512, AVX2 and baseline with FMA
 * contraction off, so every path gives the same bits. */
#include <math.h>
#include <string.h>

#include "graph/imle_impl.h"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#  define NOISE_KERNEL \
    __attribute__((optimize("O3", "fp-contract=off"), target_clones("arch=x86-64-v4", "avx2", "default")))
#else
#  define NOISE_KERNEL
#endif

#define GOLDEN 0x9E3779B97F4A7C15ull
#define BLOCK 256

/* ln x for positive normal x, within 2e-7 relative: x = m·2^e with m in [√½, √2),
 * ln m = 2 atanh((m-1)/(m+1)) by its odd series. */
#define FAST_LOG(x, out)                                                                 \
  do {                                                                                   \
    uint32_t bits_, mb_;                                                                 \
    float m_, t_, t2_;                                                                   \
    memcpy(&bits_, &(x), 4);                                                             \
    uint32_t off_ = bits_ - 0x3f3504f3u;                                                 \
    int32_t e_ = (int32_t)off_ >> 23;                                                    \
    mb_ = (off_ & 0x007fffffu) + 0x3f3504f3u;                                            \
    memcpy(&m_, &mb_, 4);                                                                \
    t_ = (m_ - 1.0f) / (m_ + 1.0f);                                                      \
    t2_ = t_ * t_;                                                                       \
    (out) = (float)e_ * 0.693147180559945f +                                             \
            t_ * (2.0f + t2_ * (0.666666667f + t2_ * (0.4f + t2_ * (0.285714286f +       \
                                                                   t2_ * 0.222222222f)))); \
  } while (0)

NOISE_KERNEL
static void words(uint64_t key, uint64_t first, size_t count, uint64_t *out) {
  for (size_t i = 0; i < count; i++) {
    uint64_t z = key + (first + i + 1) * GOLDEN;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    out[i] = z ^ (z >> 31);
  }
}

NOISE_KERNEL
static void gumbel_block(const uint32_t *bits, size_t count, float scale, float *out) {
  for (size_t i = 0; i < count; i++) {
    /* 24 bits centred in their cell: u in (0, 1) strictly. */
    float u = ((float)(bits[i] >> 8) + 0.5f) * 0x1p-24f, l1, l2;
    FAST_LOG(u, l1);
    l1 = -l1;
    FAST_LOG(l1, l2);
    out[i] += scale * -l2;
  }
}

void lvmmed__gumbel_add(uint64_t key, uint64_t offset, size_t count, float scale, float *out) {
  uint64_t w[BLOCK / 2 + 1];
  uint32_t bits[BLOCK];
  while (count > 0) {
    size_t len = count < BLOCK ? count : BLOCK;
    uint64_t first = offset >> 1, last = (offset + len - 1) >> 1;
    words(key, first, (size_t)(last - first + 1), w);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    /* element x is the (x & 1)-th 32-bit half of word x/2: the words' own memory order */
    memcpy(bits, (const char *)w + 4 * (offset & 1), len * sizeof(uint32_t));
#else
    for (size_t i = 0; i < len; i++) {
      uint64_t x = offset + i;
      bits[i] = (uint32_t)(w[(x >> 1) - first] >> (32 * (x & 1)));
    }
#endif
    gumbel_block(bits, len, scale, out);
    out += len;
    offset += len;
    count -= len;
  }
}

void lvmmed__sog_add(lvmmed_rng *rng, size_t count, double kappa, double tau, unsigned terms, float *out) {
  double shift = log((double)terms), shape = 1.0 / kappa;
  for (size_t x = 0; x < count; x++) {
    double sum = 0.0;
    for (unsigned i = 1; i <= terms; i++) sum += lvmmed__rng_gamma(rng, shape, kappa / (double)i);
    out[x] += (float)(tau / kappa * (sum - shift));
  }
}
