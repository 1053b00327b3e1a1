/* Row kernels of the CPU backend (see rowops.h): AVX-512 when the CPU has it,
 * plain C otherwise. */
#include "lvmmed_config.h"

#include <math.h>
#include <string.h>

#include "backend/cpu/rowops.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define ROWOPS_X86 1
#include <immintrin.h>
#else
#define ROWOPS_X86 0
#endif

/* ----- plain C ------------------------------------------------------------- */

static void affine_c(size_t rows, size_t ch, const float *x, const float *scale,
                     const float *shift, const float *residual, int relu, float *y) {
  for (size_t r = 0; r < rows; r++)
    for (size_t c = 0; c < ch; c++) {
      size_t i = r * ch + c;
      float v = x[i] * (scale ? scale[c] : 1.0f) + (shift ? shift[c] : 0.0f);
      if (residual) v += residual[i];
      y[i] = relu && v <= 0.0f ? 0.0f : v;
    }
}

static void sum_sumsq_c(size_t rows, size_t ch, const float *x, double *s1, double *s2) {
  for (size_t r = 0; r < rows; r++)
    for (size_t c = 0; c < ch; c++) {
      double v = x[r * ch + c];
      s1[c] += v;
      if (s2) s2[c] += v * v;
    }
}

static void bn_reduce_c(size_t rows, size_t ch, const float *x, const float *mean,
                        const float *mask, const float *dy, double *s1, double *s2) {
  for (size_t r = 0; r < rows; r++)
    for (size_t c = 0; c < ch; c++) {
      size_t i = r * ch + c;
      double g = mask && !(mask[i] > 0.0f) ? 0.0 : (double)dy[i];
      s1[c] += g;
      s2[c] += g * ((double)x[i] - (double)mean[c]);
    }
}

static void bn_apply_c(size_t rows, size_t ch, const float *x, const float *mean,
                       const float *mask, const float *dy, const float *k_g, const float *k_x,
                       const float *k_0, float *dx) {
  for (size_t r = 0; r < rows; r++)
    for (size_t c = 0; c < ch; c++) {
      size_t i = r * ch + c;
      float g = mask && !(mask[i] > 0.0f) ? 0.0f : dy[i];
      float v = k_g[c] * g + k_0[c];
      if (x) v += k_x[c] * (x[i] - mean[c]);
      dx[i] = v;
    }
}

/* ----- AVX-512 --------------------------------------------------------------- */
#if ROWOPS_X86
#define AVX512 __attribute__((target("avx512f")))

/* Lanes of the channel block starting at c (all 16, or the tail). */
AVX512 static inline __mmask16 lanes(size_t c, size_t ch) {
  size_t left = ch - c;
  return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
}

AVX512 static void affine_avx512(size_t rows, size_t ch, const float *x, const float *scale,
                                 const float *shift, const float *residual, int relu, float *y) {
  const __m512 zero = _mm512_setzero_ps(), one = _mm512_set1_ps(1.0f);
  /* Row by row: sequential addresses (a channel-block-outer walk, stride = row,
   * ran at half the speed); the per-channel constants come from L1. */
  for (size_t r = 0; r < rows; r++)
    for (size_t c = 0; c < ch; c += 16) {
      __mmask16 m = lanes(c, ch);
      __m512 s = scale ? _mm512_maskz_loadu_ps(m, scale + c) : one;
      __m512 t = shift ? _mm512_maskz_loadu_ps(m, shift + c) : zero;
      size_t i = r * ch + c;
      __m512 v = lvmmed__affine_vec(_mm512_maskz_loadu_ps(m, x + i), s, t,
                                    residual ? residual + i : NULL, m, relu);
      _mm512_mask_storeu_ps(y + i, m, v);
    }
}

/* Adds the 16 float lanes (the first ch - c of them) into two double arrays. */
AVX512 static inline void flush2(__m512 a, __m512 b, size_t c, size_t ch, double *s1, double *s2) {
  float fa[16], fb[16];
  _mm512_storeu_ps(fa, a);
  _mm512_storeu_ps(fb, b);
  size_t n = ch - c < 16 ? ch - c : 16;
  for (size_t k = 0; k < n; k++) {
    s1[c + k] += fa[k];
    if (s2) s2[c + k] += fb[k];
  }
}

/* Blocks of ROWOPS_BLOCK rows; inside, groups of RED_VECS channel blocks walk the
 * block's rows (RED_VECS·64 contiguous bytes a row, not 64: twice as fast), summing
 * each channel in registers, then flushing into double. Per channel the order of
 * the additions is the rows' order: the same sums as a channel-at-a-time walk. */
#define RED_VECS 8

/* Lane masks of the RED_VECS channel blocks from c0 on (0 past ch). */
AVX512 static inline void group_lanes(size_t c0, size_t ch, __mmask16 *m) {
#pragma GCC unroll 8
  for (int v = 0; v < RED_VECS; v++)
    m[v] = c0 + 16 * (size_t)v < ch ? lanes(c0 + 16 * (size_t)v, ch) : 0;
}

/* flush2 of each channel block of the group that exists. */
AVX512 static inline void flush_group(const __m512 *a, const __m512 *b, size_t c0, size_t ch,
                                      double *s1, double *s2) {
  for (int v = 0; v < RED_VECS && c0 + 16 * (size_t)v < ch; v++)
    flush2(a[v], b[v], c0 + 16 * (size_t)v, ch, s1, s2);
}
AVX512 static void sum_sumsq_avx512(size_t rows, size_t ch, const float *x, double *s1,
                                    double *s2) {
  for (size_t r0 = 0; r0 < rows; r0 += ROWOPS_BLOCK) {
    size_t r1 = r0 + ROWOPS_BLOCK < rows ? r0 + ROWOPS_BLOCK : rows;
    for (size_t c0 = 0; c0 < ch; c0 += 16 * RED_VECS) {
      __m512 a[RED_VECS], b[RED_VECS];
      __mmask16 m[RED_VECS];
      group_lanes(c0, ch, m);
#pragma GCC unroll 8
      for (int v = 0; v < RED_VECS; v++) a[v] = b[v] = _mm512_setzero_ps();
      for (size_t r = r0; r < r1; r++) {
        const float *row = x + r * ch + c0;
#pragma GCC unroll 8
        for (int v = 0; v < RED_VECS; v++) {
          __m512 u = _mm512_maskz_loadu_ps(m[v], row + 16 * v);
          a[v] = _mm512_add_ps(a[v], u);
          b[v] = _mm512_fmadd_ps(u, u, b[v]);
        }
      }
      flush_group(a, b, c0, ch, s1, s2);
    }
  }
}

AVX512 static void bn_reduce_avx512(size_t rows, size_t ch, const float *x, const float *mean,
                                    const float *mask, const float *dy, double *s1, double *s2) {
  const __m512 zero = _mm512_setzero_ps();
  for (size_t r0 = 0; r0 < rows; r0 += ROWOPS_BLOCK) { /* the walk of sum_sumsq_avx512 */
    size_t r1 = r0 + ROWOPS_BLOCK < rows ? r0 + ROWOPS_BLOCK : rows;
    for (size_t c0 = 0; c0 < ch; c0 += 16 * RED_VECS) {
      __m512 a[RED_VECS], b[RED_VECS], mu[RED_VECS];
      __mmask16 m[RED_VECS];
      group_lanes(c0, ch, m);
#pragma GCC unroll 8
      for (int v = 0; v < RED_VECS; v++) {
        a[v] = b[v] = zero;
        mu[v] = _mm512_maskz_loadu_ps(m[v], mean + c0 + 16 * v);
      }
      for (size_t r = r0; r < r1; r++) {
        size_t i = r * ch + c0;
#pragma GCC unroll 8
        for (int v = 0; v < RED_VECS; v++) {
          __m512 g = _mm512_maskz_loadu_ps(m[v], dy + i + 16 * v);
          if (mask)
            g = _mm512_maskz_mov_ps(
                _mm512_cmp_ps_mask(_mm512_maskz_loadu_ps(m[v], mask + i + 16 * v), zero,
                                   _CMP_GT_OQ),
                g);
          a[v] = _mm512_add_ps(a[v], g);
          b[v] = _mm512_fmadd_ps(g, _mm512_sub_ps(_mm512_maskz_loadu_ps(m[v], x + i + 16 * v), mu[v]),
                                 b[v]);
        }
      }
      flush_group(a, b, c0, ch, s1, s2);
    }
  }
}

AVX512 static void bn_apply_avx512(size_t rows, size_t ch, const float *x, const float *mean,
                                   const float *mask, const float *dy, const float *k_g,
                                   const float *k_x, const float *k_0, float *dx) {
  const __m512 zero = _mm512_setzero_ps();
  for (size_t r = 0; r < rows; r++) /* row by row, as affine_avx512 */
    for (size_t c = 0; c < ch; c += 16) {
      __mmask16 m = lanes(c, ch);
      __m512 kg = _mm512_maskz_loadu_ps(m, k_g + c), k0 = _mm512_maskz_loadu_ps(m, k_0 + c);
      __m512 kx = x ? _mm512_maskz_loadu_ps(m, k_x + c) : zero;
      __m512 mu = x ? _mm512_maskz_loadu_ps(m, mean + c) : zero;
      size_t i = r * ch + c;
      __m512 g = _mm512_maskz_loadu_ps(m, dy + i);
      if (mask) g = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(_mm512_maskz_loadu_ps(m, mask + i),
                                                           zero, _CMP_GT_OQ), g);
      __m512 v = _mm512_fmadd_ps(kg, g, k0);
      if (x) v = _mm512_fmadd_ps(kx, _mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), mu), v);
      _mm512_mask_storeu_ps(dx + i, m, v);
    }
}

AVX512 static void relu_backward_avx512(size_t n, const float *y, const float *dy, float *dx) {
  const __m512 zero = _mm512_setzero_ps();
  for (size_t i = 0; i < n; i += 16) {
    __mmask16 m = lanes(i, n);
    __mmask16 pos = _mm512_cmp_ps_mask(_mm512_maskz_loadu_ps(m, y + i), zero, _CMP_GT_OQ);
    _mm512_mask_storeu_ps(dx + i, m, _mm512_maskz_loadu_ps(pos, dy + i));
  }
}

AVX512 static void add_avx512(size_t n, const float *a, const float *b, float *out) {
  for (size_t i = 0; i < n; i += 16) {
    __mmask16 m = lanes(i, n);
    _mm512_mask_storeu_ps(out + i, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, a + i),
                                                     _mm512_maskz_loadu_ps(m, b + i)));
  }
}

#define AVX512BW __attribute__((target("avx512f,avx512bw,avx512vl")))

AVX512BW static void max_avx512(size_t ch, size_t ntaps, const float *const *src,
                                const unsigned char *tap, float *y, unsigned char *arg) {
  size_t first = 0;
  while (!src[first]) first++;
  for (size_t c = 0; c < ch; c += 16) {
    __mmask16 m = lanes(c, ch);
    __m512 best = _mm512_maskz_loadu_ps(m, src[first] + c);
    __m128i at = _mm_set1_epi8((char)tap[first]);
    for (size_t k = first + 1; k < ntaps; k++) {
      if (!src[k]) continue;
      __m512 v = _mm512_maskz_loadu_ps(m, src[k] + c);
      /* v > best, or v NaN while best is not */
      __mmask16 take = _mm512_cmp_ps_mask(v, best, _CMP_GT_OQ) |
                       (_mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q) &
                        _mm512_cmp_ps_mask(best, best, _CMP_ORD_Q));
      best = _mm512_mask_mov_ps(best, take, v);
      at = _mm_mask_mov_epi8(at, take, _mm_set1_epi8((char)tap[k]));
    }
    _mm512_mask_storeu_ps(y + c, m, best);
    _mm_mask_storeu_epi8(arg + c, m, at);
  }
}

static int have_avx512(void) { return __builtin_cpu_supports("avx512f"); }
static int have_avx512bw(void) {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl");
}
#else
static int have_avx512(void) { return 0; }
#endif

void lvmmed__rows_max(size_t ch, size_t ntaps, const float *const *src, const unsigned char *tap,
                      float *y, unsigned char *arg) {
#if ROWOPS_X86
  if (have_avx512bw()) {
    max_avx512(ch, ntaps, src, tap, y, arg);
    return;
  }
#endif
  int first = 1;
  for (size_t k = 0; k < ntaps; k++) {
    if (!src[k]) continue;
    const float *xs = src[k];
    if (first) {
      memcpy(y, xs, ch * sizeof *y);
      memset(arg, tap[k], ch);
      first = 0;
      continue;
    }
    for (size_t c = 0; c < ch; c++)
      if (xs[c] > y[c] || (xs[c] != xs[c] && y[c] == y[c])) {
        y[c] = xs[c];
        arg[c] = tap[k];
      }
  }
}

/* ----- dispatch -------------------------------------------------------------- */

/* The affine and apply kernels walk channel blocks in the outer loop; for a
 * cache-friendly order the caller hands them blocks of a few hundred rows. */
#define ROW_TILE 256

void lvmmed__rows_affine(size_t rows, size_t ch, const float *x, const float *scale,
                         const float *shift, const float *residual, int relu, float *y) {
#if ROWOPS_X86
  if (have_avx512()) {
    for (size_t r = 0; r < rows; r += ROW_TILE) {
      size_t n = rows - r < ROW_TILE ? rows - r : ROW_TILE;
      affine_avx512(n, ch, x + r * ch, scale, shift, residual ? residual + r * ch : NULL, relu,
                    y + r * ch);
    }
    return;
  }
#endif
  affine_c(rows, ch, x, scale, shift, residual, relu, y);
}

void lvmmed__rows_sum_sumsq(size_t rows, size_t ch, const float *x, double *s1, double *s2) {
#if ROWOPS_X86
  if (have_avx512()) {
    sum_sumsq_avx512(rows, ch, x, s1, s2);
    return;
  }
#endif
  sum_sumsq_c(rows, ch, x, s1, s2);
}

void lvmmed__rows_sum(size_t rows, size_t ch, const float *x, double *s1) {
  lvmmed__rows_sum_sumsq(rows, ch, x, s1, NULL);
}

void lvmmed__rows_bn_reduce(size_t rows, size_t ch, const float *x, const float *mean,
                            const float *mask, const float *dy, double *s1, double *s2) {
#if ROWOPS_X86
  if (have_avx512()) {
    bn_reduce_avx512(rows, ch, x, mean, mask, dy, s1, s2);
    return;
  }
#endif
  bn_reduce_c(rows, ch, x, mean, mask, dy, s1, s2);
}

void lvmmed__rows_bn_apply(size_t rows, size_t ch, const float *x, const float *mean,
                           const float *mask, const float *dy, const float *k_g,
                           const float *k_x, const float *k_0, float *dx) {
#if ROWOPS_X86
  if (have_avx512()) {
    for (size_t r = 0; r < rows; r += ROW_TILE) {
      size_t n = rows - r < ROW_TILE ? rows - r : ROW_TILE, o = r * ch;
      bn_apply_avx512(n, ch, x ? x + o : NULL, mean, mask ? mask + o : NULL, dy + o, k_g, k_x,
                      k_0, dx + o);
    }
    return;
  }
#endif
  bn_apply_c(rows, ch, x, mean, mask, dy, k_g, k_x, k_0, dx);
}

void lvmmed__vec_relu_backward(size_t n, const float *y, const float *dy, float *dx) {
#if ROWOPS_X86
  if (have_avx512()) {
    relu_backward_avx512(n, y, dy, dx);
    return;
  }
#endif
  for (size_t i = 0; i < n; i++) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

void lvmmed__vec_add(size_t n, const float *a, const float *b, float *out) {
#if ROWOPS_X86
  if (have_avx512()) {
    add_avx512(n, a, b, out);
    return;
  }
#endif
  for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}
