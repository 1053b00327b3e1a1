/* liblvmmed — private row kernels of the CPU backend: the memory-bound
 * passes of batch normalisation, ReLU and residual adds over an NHWC map
 * seen as rows × channels. One thread calls one kernel on its own block of
 * rows; the AVX-512 versions are picked at run time when the CPU has it (the
 * library's -O2 build vectorises none of these loops by itself), the plain
 * C ones otherwise. Results do not depend on which version runs except for
 * rounding in the reductions (float partial sums of ROWOPS_BLOCK rows, then
 * double across blocks).
 */
#ifndef LVMMED_ROWOPS_H
#define LVMMED_ROWOPS_H

#include <stddef.h>

/** Rows summed in float before a partial sum is added into double. */
#define ROWOPS_BLOCK 32

/** y = x·scale + shift (+ residual), then max(0, ·) when relu (NaN stays NaN).
 *  scale/shift NULL mean 1/0; residual may be NULL; y may alias x or residual. */
void lvmmed__rows_affine(size_t rows, size_t ch, const float *x, const float *scale,
                         const float *shift, const float *residual, int relu, float *y);

/** s1[c] += Σ_r x, s2[c] += Σ_r x² (double accumulators, ch of each). */
void lvmmed__rows_sum_sumsq(size_t rows, size_t ch, const float *x, double *s1, double *s2);

/** s1[c] += Σ_r x. */
void lvmmed__rows_sum(size_t rows, size_t ch, const float *x, double *s1);

/** With g = dy masked to 0 where mask <= 0 (mask NULL: no mask):
 *  s1[c] += Σ_r g, s2[c] += Σ_r g·(x - mean[c]). */
void lvmmed__rows_bn_reduce(size_t rows, size_t ch, const float *x, const float *mean,
                            const float *mask, const float *dy, double *s1, double *s2);

/** dx = k_g·g + k_0 (+ k_x·(x - mean) when x is non-NULL); dx may alias dy. */
void lvmmed__rows_bn_apply(size_t rows, size_t ch, const float *x, const float *mean,
                           const float *mask, const float *dy, const float *k_g,
                           const float *k_x, const float *k_0, float *dx);

/** One output pixel of max pooling over ch channels: y = max over the ntaps
 *  source rows src[k] (each ch floats, NULL for taps in the padding, at least
 *  one non-NULL), arg = tap index tap[k] of the first maximum (NaN wins). */
void lvmmed__rows_max(size_t ch, size_t ntaps, const float *const *src, const unsigned char *tap,
                      float *y, unsigned char *arg);

/** dx = y > 0 ? dy : 0 over n values (dx may alias dy). */
void lvmmed__vec_relu_backward(size_t n, const float *y, const float *dy, float *dx);

/** out = a + b over n values (out may alias a or b). */
void lvmmed__vec_add(size_t n, const float *a, const float *b, float *out);

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/** Lane masks of the first ncol channels of a 32-channel block: *m0 for channels
 *  0-15, *m1 for 16-31 (all lanes from 32 on). */
__attribute__((target("avx512f"))) static inline void
lvmmed__block_masks(size_t ncol, __mmask16 *m0, __mmask16 *m1) {
  *m0 = ncol >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << ncol) - 1u);
  *m1 = ncol >= 32 ? (__mmask16)0xffff : ncol > 16 ? (__mmask16)((1u << (ncol - 16)) - 1u) : 0;
}

/** One vector of the affine: x·s + t (+ the lanes m of res, unless res is NULL), then
 *  max(0, ·) when relu. lvmmed__rows_affine and the direct convolution's fused store
 *  both use it, so the fused result has the same bits as the separate pass. */
__attribute__((target("avx512f"))) static inline __m512
lvmmed__affine_vec(__m512 x, __m512 s, __m512 t, const float *res, __mmask16 m, int relu) {
  __m512 v = _mm512_fmadd_ps(x, s, t);
  if (res) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, res));
  if (relu) v = _mm512_max_ps(_mm512_setzero_ps(), v); /* max(0, NaN) = NaN: the second operand */
  return v;
}
#endif

#endif /* LVMMED_ROWOPS_H */
