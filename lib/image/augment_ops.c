/* Augmentation kernels: float32 arithmetic in torchvision's expression order. */
#include <math.h>
#include <string.h>

#include "image/augment_ops.h"

/* Plain -O2 leaves these loops scalar (GCC's very-cheap vector cost model); vectorizing
 * them changes no result: each output is computed by the same expression. */
#if defined(__GNUC__) && !defined(__clang__)
#  define VECTORIZE __attribute__((optimize("O3", "fp-contract=off")))
#else
#  define VECTORIZE
#endif

/* ---- resize ---- */

typedef struct tap {
  int32_t i0, i1;
  float l0, l1;
} tap;

/* torch's linear source index: scale in float, index in double rounded to float. */
static tap linear_tap(int32_t in, uint32_t out, uint32_t o) {
  tap t;
  if ((uint32_t)in == out) {
    t.i0 = t.i1 = (int32_t)o;
    t.l0 = 1.0f;
    t.l1 = 0.0f;
    return t;
  }
  float scale = (float)in / (float)out;
  float real = (float)((double)scale * ((double)o + 0.5) - 0.5);
  if (real < 0.0f) real = 0.0f;
  t.i0 = (int32_t)real;
  t.i1 = t.i0 + (t.i0 < in - 1 ? 1 : 0);
  float l1 = real - (float)t.i0;
  t.l1 = l1 < 0.0f ? 0.0f : l1 > 1.0f ? 1.0f : l1;
  t.l0 = 1.0f - t.l1;
  return t;
}

static inline float mapped(const lvmmed__intensity_map *map, float v) {
  if (!map) return v;
  if (!isfinite(v)) return 0.0f;
  if (!map->active) return v;
  float t = (v - map->lo) * map->scale;
  return t < 0.0f ? 0.0f : t > 1.0f ? 1.0f : t;
}

/* Horizontal pass of one source row: out[x] = m(s[x0]) * l0 + m(s[x1]) * l1. */
static void hrow(const float *s, const tap *tx, uint32_t out_w, const lvmmed__intensity_map *map, float *out) {
  if (!map) {
    for (uint32_t x = 0; x < out_w; x++) out[x] = s[tx[x].i0] * tx[x].l0 + s[tx[x].i1] * tx[x].l1;
    return;
  }
  for (uint32_t x = 0; x < out_w; x++)
    out[x] = mapped(map, s[tx[x].i0]) * tx[x].l0 + mapped(map, s[tx[x].i1]) * tx[x].l1;
}

VECTORIZE static void vlerp(float *restrict o, const float *restrict a, const float *restrict b, float la, float lb,
                            uint32_t n) {
  for (uint32_t x = 0; x < n; x++) o[x] = a[x] * la + b[x] * lb;
}

void lvmmed__resized_crop(const float *src, uint32_t C, uint32_t H, uint32_t W, int32_t top, int32_t left,
                          int32_t h, int32_t w, uint32_t out_h, uint32_t out_w, int flip,
                          const lvmmed__intensity_map *map, float *rows, float *dst) {
  /* Column taps live after the two cached rows of every channel. */
  tap tx_local[512];
  tap *tx = out_w <= 512 ? tx_local : NULL;
  if (!tx) { /* rare large outputs: compute taps on the fly per row */
    for (uint32_t c = 0; c < C; c++) {
      const float *plane = src + (size_t)c * H * W;
      for (uint32_t y = 0; y < out_h; y++) {
        tap ty = linear_tap(h, out_h, y);
        const float *r0 = plane + (size_t)(top + ty.i0) * W + left, *r1 = plane + (size_t)(top + ty.i1) * W + left;
        float *o = dst + ((size_t)c * out_h + y) * out_w;
        for (uint32_t x = 0; x < out_w; x++) {
          tap t = linear_tap(w, out_w, flip ? out_w - 1 - x : x);
          float a = mapped(map, r0[t.i0]) * t.l0 + mapped(map, r0[t.i1]) * t.l1;
          float b = mapped(map, r1[t.i0]) * t.l0 + mapped(map, r1[t.i1]) * t.l1;
          o[x] = a * ty.l0 + b * ty.l1;
        }
      }
    }
    return;
  }
  for (uint32_t x = 0; x < out_w; x++) tx[x] = linear_tap(w, out_w, flip ? out_w - 1 - x : x);
  for (uint32_t c = 0; c < C; c++) {
    const float *plane = src + (size_t)c * H * W + left;
    float *ra = rows, *rb = rows + out_w; /* cached horizontal passes of two source rows */
    int32_t have_a = -1, have_b = -1;
    for (uint32_t y = 0; y < out_h; y++) {
      tap ty = linear_tap(h, out_h, y);
      int32_t y0 = top + ty.i0, y1 = top + ty.i1;
      /* Reuse cached rows: consecutive outputs share source rows when upsampling. */
      if (have_a != y0) {
        if (have_b == y0) {
          float *t = ra;
          ra = rb;
          rb = t;
          have_b = have_a;
          have_a = y0;
        } else {
          hrow(plane + (size_t)y0 * W, tx, out_w, map, ra);
          have_a = y0;
        }
      }
      if (have_b != y1) {
        if (y1 == y0) {
          memcpy(rb, ra, out_w * sizeof(float));
        } else {
          hrow(plane + (size_t)y1 * W, tx, out_w, map, rb);
        }
        have_b = y1;
      }
      vlerp(dst + ((size_t)c * out_h + y) * out_w, ra, rb, ty.l0, ty.l1, out_w);
    }
  }
}

/* ---- colour ---- */

static inline float clamp01(float v) { return v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v; }

/* Luma as torchvision computes it: (0.2989 r + 0.587 g) + 0.114 b, each product in float. */
static inline float luma(float r, float g, float b) { return 0.2989f * r + 0.587f * g + 0.114f * b; }

VECTORIZE void lvmmed__adjust_brightness(float *x, uint32_t C, size_t n, float factor) {
  size_t total = (size_t)C * n;
  for (size_t i = 0; i < total; i++) x[i] = clamp01(factor * x[i]);
}

/* _blend(img1, img2, ratio) = clamp(ratio * img1 + (1 - ratio) * img2); (1 - ratio) in double. */
static inline float blend(float a, float b, float ratio, float one_minus) { return clamp01(ratio * a + one_minus * b); }

VECTORIZE void lvmmed__adjust_contrast(float *x, uint32_t C, size_t n, float factor) {
  double sum = 0.0;
  if (C == 3) {
    for (size_t i = 0; i < n; i++) sum += luma(x[i], x[n + i], x[2 * n + i]);
  } else {
    for (size_t i = 0; i < n; i++) sum += luma(x[i], x[i], x[i]);
  }
  float mean = (float)(sum / (double)n);
  float om = (float)(1.0 - (double)factor);
  float bm = om * mean;
  size_t total = (size_t)C * n;
  for (size_t i = 0; i < total; i++) x[i] = clamp01(factor * x[i] + bm);
}

VECTORIZE void lvmmed__adjust_saturation(float *x, uint32_t C, size_t n, float factor) {
  float om = (float)(1.0 - (double)factor);
  if (C == 3) {
    for (size_t i = 0; i < n; i++) {
      float g = luma(x[i], x[n + i], x[2 * n + i]);
      x[i] = blend(x[i], g, factor, om);
      x[n + i] = blend(x[n + i], g, factor, om);
      x[2 * n + i] = blend(x[2 * n + i], g, factor, om);
    }
  } else {
    for (size_t i = 0; i < n; i++) x[i] = blend(x[i], luma(x[i], x[i], x[i]), factor, om);
  }
}

/* rgb -> hsv -> shift -> rgb, following torchvision's _rgb2hsv/_hsv2rgb step by step. */
static void hue_pixel(float *r, float *g, float *b, float hue) {
  float R = *r, G = *g, B = *b;
  float maxc = R > G ? R : G;
  maxc = maxc > B ? maxc : B;
  float minc = R < G ? R : G;
  minc = minc < B ? minc : B;
  int eqc = maxc == minc;
  float cr = maxc - minc;
  float s = cr / (eqc ? 1.0f : maxc);
  float crd = eqc ? 1.0f : cr;
  float rc = (maxc - R) / crd, gc = (maxc - G) / crd, bc = (maxc - B) / crd;
  float hr = maxc == R ? bc - gc : 0.0f;
  float hg = (maxc == G && maxc != R) ? 2.0f + rc - bc : 0.0f;
  float hb = (maxc != G && maxc != R) ? 4.0f + gc - rc : 0.0f;
  float h = hr + hg + hb;
  h = fmodf(h / 6.0f + 1.0f, 1.0f);
  float v = maxc;
  /* (h + hue) % 1.0: torch.remainder = fmod, then + divisor when the signs differ */
  h = h + hue;
  float m = fmodf(h, 1.0f);
  if (m != 0.0f && m < 0.0f) m += 1.0f;
  h = m;
  float i6 = floorf(h * 6.0f);
  float f = h * 6.0f - i6;
  int i = (int)i6;
  float p = clamp01(v * (1.0f - s));
  float q = clamp01(v * (1.0f - s * f));
  float t = clamp01(v * (1.0f - s * (1.0f - f)));
  i %= 6;
  if (i < 0) i += 6;
  switch (i) {
  case 0: *r = v; *g = t; *b = p; break;
  case 1: *r = q; *g = v; *b = p; break;
  case 2: *r = p; *g = v; *b = t; break;
  case 3: *r = p; *g = q; *b = v; break;
  case 4: *r = t; *g = p; *b = v; break;
  default: *r = v; *g = p; *b = q; break;
  }
}

void lvmmed__adjust_hue(float *x, uint32_t C, size_t n, float hue) {
  if (C == 1) { /* equal channels: saturation 0, the round trip only clamps */
    for (size_t i = 0; i < n; i++) x[i] = clamp01(x[i]);
    return;
  }
  for (size_t i = 0; i < n; i++) hue_pixel(&x[i], &x[n + i], &x[2 * n + i], hue);
}

VECTORIZE void lvmmed__to_grayscale(float *x, uint32_t *C, size_t n) {
  if (*C == 3) {
    for (size_t i = 0; i < n; i++) x[i] = luma(x[i], x[n + i], x[2 * n + i]);
    *C = 1;
  } else {
    for (size_t i = 0; i < n; i++) x[i] = luma(x[i], x[i], x[i]);
  }
}

/* ---- blur ---- */

void lvmmed__gaussian_kernel(float *k, int ks, float sigma) {
  float half = (float)(ks - 1) * 0.5f, sum = 0.0f;
  for (int i = 0; i < ks; i++) {
    float t = (-half + (float)i) / sigma;
    k[i] = expf(-0.5f * (t * t));
    sum += k[i];
  }
  for (int i = 0; i < ks; i++) k[i] /= sum;
}

/* Reflect index (mirror without repeating the edge), valid for any offset. */
static inline int32_t reflect(int32_t i, int32_t n) {
  if (n == 1) return 0;
  int32_t period = 2 * (n - 1);
  i %= period;
  if (i < 0) i += period;
  return i < n ? i : period - i;
}

VECTORIZE void lvmmed__gaussian_blur(float *x, uint32_t C, uint32_t h, uint32_t w, float sigma, int ks, float *tmp,
                           float *pad) {
  float k[256];
  if (ks < 1) ks = 1;
  if (ks > 255) ks = 255;
  lvmmed__gaussian_kernel(k, ks, sigma);
  int half = ks / 2;
  size_t P = (size_t)h * w;
  for (uint32_t c = 0; c < C; c++) {
    float *plane = x + c * P, *tp = tmp + c * P;
    /* horizontal: padded copy of each row, then a plain sliding dot product */
    for (uint32_t y = 0; y < h; y++) {
      const float *row = plane + (size_t)y * w;
      for (int32_t i = 0; i < (int32_t)w + 2 * half; i++) pad[i] = row[reflect(i - half, (int32_t)w)];
      float *restrict o = tp + (size_t)y * w;
      for (uint32_t xo = 0; xo < w; xo++) o[xo] = 0.0f;
      for (int j = 0; j < ks; j++) {
        float kj = k[j];
        const float *restrict s = pad + j;
        for (uint32_t xo = 0; xo < w; xo++) o[xo] += kj * s[xo];
      }
    }
    /* vertical: accumulate reflected rows */
    for (uint32_t y = 0; y < h; y++) {
      float *restrict o = plane + (size_t)y * w;
      for (uint32_t xo = 0; xo < w; xo++) o[xo] = 0.0f;
      for (int i = 0; i < ks; i++) {
        float ki = k[i];
        const float *restrict s = tp + (size_t)reflect((int32_t)y + i - half, (int32_t)h) * w;
        for (uint32_t xo = 0; xo < w; xo++) o[xo] += ki * s[xo];
      }
    }
  }
}

/* ---- output ---- */

VECTORIZE void lvmmed__normalize(const float *x, uint32_t C, size_t n, const float mean[3], const float std[3], float *out) {
  for (uint32_t c = 0; c < 3; c++) {
    const float *restrict s = x + (C == 3 ? c * n : 0);
    float m = mean[c], d = std[c];
    float *restrict o = out + c * n;
    for (size_t i = 0; i < n; i++) o[i] = (s[i] - m) / d;
  }
}

void lvmmed__location_grid(int32_t top, int32_t left, int32_t h, int32_t w, uint32_t N, int flip, int mirror,
                           float *grid) {
  for (uint32_t k = 0; k < N; k++)
    for (uint32_t l = 0; l < N; l++) {
      uint32_t lc = flip && mirror ? N - 1 - l : l;
      float *g = grid + ((size_t)k * N + l) * 2;
      g[0] = (float)(top + ((double)k + 0.5) * h / N);
      g[1] = (float)(left + ((double)lc + 0.5) * w / N);
    }
}
