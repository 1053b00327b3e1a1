/* Intensity policies: min-max, percentile window, fixed window/level, type range.
 *
 * Percentiles follow numpy.percentile's default (linear interpolation
 * between the order statistics at q/100 * (n - 1)). Integer images of at
 * most 16 bits are counted in a histogram; others use quickselect on a copy.
 */
#include <math.h>
#include <string.h>

#include "image/image_impl.h"

lvmmed_status lvmmed__intensity_check(lvmmed_intensity policy, double a, double b, char *err, size_t errlen) {
  switch (policy) {
  case LVMMED_INTENSITY_NONE:
  case LVMMED_INTENSITY_TYPE_RANGE:
  case LVMMED_INTENSITY_MINMAX:
    return LVMMED_OK;
  case LVMMED_INTENSITY_PERCENTILE:
  case LVMMED_INTENSITY_AUTO:
    if (!(a >= 0.0 && b <= 100.0 && a < b))
      return lvmmed__img_error(err, errlen, LVMMED_ERR_INVALID_ARGUMENT,
                               "percentiles (%g, %g) must satisfy 0 <= a < b <= 100", a, b);
    return LVMMED_OK;
  case LVMMED_INTENSITY_WINDOW:
    if (!isfinite(a) || !(b > 0.0) || !isfinite(b))
      return lvmmed__img_error(err, errlen, LVMMED_ERR_INVALID_ARGUMENT,
                               "window level %g and width %g: need a finite level and a width > 0", a, b);
    return LVMMED_OK;
  }
  return lvmmed__img_error(err, errlen, LVMMED_ERR_INVALID_ARGUMENT, "unknown intensity policy %d", (int)policy);
}

/* k-th smallest (0-based) of v[0..n) by quickselect; reorders v so v[k] holds it and
 * everything after k is >= it. */
static float select_kth(float *v, size_t n, size_t k) {
  size_t lo = 0, hi = n - 1;
  while (lo < hi) {
    float pivot = v[lo + (hi - lo) / 2];
    size_t i = lo, j = hi;
    while (i <= j) {
      while (v[i] < pivot) i++;
      while (v[j] > pivot) j--;
      if (i <= j) {
        float t = v[i];
        v[i] = v[j];
        v[j] = t;
        i++;
        if (j == 0) break;
        j--;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else break;
  }
  return v[k];
}

static double lerp(double lo, double hi, double t) { return t == 0.0 ? lo : lo + (hi - lo) * t; }

/* Two percentiles of the finite values of the first `colour` planes. 0 if no finite value. */
static lvmmed_status percentiles(lvmmed_ctx *ctx, const lvmmed_image *img, uint32_t colour, double qa, double qb,
                                 double *pa, double *pb, char *err, size_t errlen) {
  size_t total = (size_t)colour * img->height * img->width;
  const float *d = img->data;
  int integral = (img->sample == LVMMED_SAMPLE_UINT || img->sample == LVMMED_SAMPLE_INT) && img->bit_depth >= 1 &&
                 img->bit_depth <= 16;
  double q[2] = {qa, qb}, out[2];
  if (integral) {
    int64_t offset = img->sample == LVMMED_SAMPLE_INT ? ((int64_t)1 << (img->bit_depth - 1)) : 0;
    size_t bins = (size_t)1 << img->bit_depth;
    uint32_t *hist = lvmmed__calloc(ctx, bins, sizeof *hist);
    if (!hist) return lvmmed__img_error(err, errlen, LVMMED_ERR_OUT_OF_MEMORY, "out of memory for a histogram");
    size_t n = 0;
    for (size_t i = 0; i < total; i++) {
      int64_t b = (int64_t)d[i] + offset; /* decoded integers are exact in float */
      if (b < 0 || (size_t)b >= bins) continue;
      hist[b]++;
      n++;
    }
    if (n == 0) {
      lvmmed__free(ctx, hist);
      return lvmmed__img_error(err, errlen, LVMMED_ERR_STATE, "no pixel value to take percentiles of");
    }
    for (int t = 0; t < 2; t++) {
      double pos = q[t] / 100.0 * (double)(n - 1);
      size_t k = (size_t)floor(pos);
      if (k > n - 1) k = n - 1;
      double frac = pos - (double)k;
      /* values at ranks k and k+1 */
      size_t seen = 0, b = 0;
      while (seen + hist[b] <= k) seen += hist[b++];
      double vk = (double)((int64_t)b - offset), vk1 = vk;
      if (k + 1 < n) {
        if (seen + hist[b] > k + 1) vk1 = vk;
        else {
          size_t c = b + 1;
          while (hist[c] == 0) c++;
          vk1 = (double)((int64_t)c - offset);
        }
      }
      out[t] = lerp(vk, vk1, frac);
    }
    lvmmed__free(ctx, hist);
  } else {
    float *v = lvmmed__alloc(ctx, total * sizeof(float) + 1);
    if (!v) return lvmmed__img_error(err, errlen, LVMMED_ERR_OUT_OF_MEMORY, "out of memory for percentiles");
    size_t n = 0;
    for (size_t i = 0; i < total; i++)
      if (isfinite(d[i])) v[n++] = d[i];
    if (n == 0) {
      lvmmed__free(ctx, v);
      return lvmmed__img_error(err, errlen, LVMMED_ERR_STATE, "no finite pixel value to take percentiles of");
    }
    for (int t = 0; t < 2; t++) {
      double pos = q[t] / 100.0 * (double)(n - 1);
      size_t k = (size_t)floor(pos);
      if (k > n - 1) k = n - 1;
      double frac = pos - (double)k;
      double vk = select_kth(v, n, k), vk1 = vk;
      if (k + 1 < n) { /* the next order statistic is the minimum of what lies after k */
        float m = v[k + 1];
        for (size_t i = k + 2; i < n; i++)
          if (v[i] < m) m = v[i];
        vk1 = m;
      }
      out[t] = lerp(vk, vk1, frac);
    }
    lvmmed__free(ctx, v);
  }
  *pa = out[0];
  *pb = out[1];
  return LVMMED_OK;
}

static int finite_minmax(const lvmmed_image *img, uint32_t colour, double *lo, double *hi) {
  size_t total = (size_t)colour * img->height * img->width;
  float mn = INFINITY, mx = -INFINITY;
  for (size_t i = 0; i < total; i++) {
    float v = img->data[i];
    if (!isfinite(v)) continue;
    mn = v < mn ? v : mn;
    mx = v > mx ? v : mx;
  }
  if (mn > mx) return 0;
  *lo = mn;
  *hi = mx;
  return 1;
}

static void set_map(lvmmed__intensity_map *map, double lo, double hi) {
  map->active = 1;
  map->lo = (float)lo;
  /* A degenerate window (hi <= lo) maps everything to 0: a constant image stays black. */
  map->scale = hi > lo ? (float)(1.0 / (hi - lo)) : 0.0f;
}

lvmmed_status lvmmed__intensity_map_for(lvmmed_ctx *ctx, const lvmmed_image *img, uint32_t colour,
                                        lvmmed_intensity policy, double a, double b, lvmmed__intensity_map *map,
                                        char *err, size_t errlen) {
  lvmmed_status st = lvmmed__intensity_check(policy, a, b, err, errlen);
  if (st != LVMMED_OK) return st;
  map->active = 0;
  map->lo = 0.0f;
  map->scale = 1.0f;
  if (policy == LVMMED_INTENSITY_AUTO)
    policy = img->sample == LVMMED_SAMPLE_UINT && img->bit_depth >= 1 && img->bit_depth <= 8
                 ? LVMMED_INTENSITY_TYPE_RANGE
                 : LVMMED_INTENSITY_PERCENTILE;
  if (policy == LVMMED_INTENSITY_TYPE_RANGE && img->sample != LVMMED_SAMPLE_UINT &&
      img->sample != LVMMED_SAMPLE_INT)
    policy = LVMMED_INTENSITY_MINMAX;
  double lo = 0.0, hi = 0.0;
  switch (policy) {
  case LVMMED_INTENSITY_NONE: return LVMMED_OK;
  case LVMMED_INTENSITY_TYPE_RANGE: {
    int bits = img->bit_depth < 1 ? 8 : img->bit_depth > 32 ? 32 : img->bit_depth;
    if (img->sample == LVMMED_SAMPLE_INT) {
      lo = -ldexp(1.0, bits - 1);
      hi = ldexp(1.0, bits - 1) - 1.0;
    } else {
      lo = 0.0;
      hi = ldexp(1.0, bits) - 1.0;
    }
    break;
  }
  case LVMMED_INTENSITY_MINMAX:
    if (!finite_minmax(img, colour, &lo, &hi)) lo = hi = 0.0;
    break;
  case LVMMED_INTENSITY_PERCENTILE:
    st = percentiles(ctx, img, colour, a, b, &lo, &hi, err, errlen);
    if (st == LVMMED_ERR_STATE) lo = hi = 0.0; /* nothing finite: everything becomes 0 */
    else if (st != LVMMED_OK) return st;
    /* A sparse image (e.g. 99.5% background) can have equal percentiles: use its full range. */
    if (hi <= lo && !finite_minmax(img, colour, &lo, &hi)) lo = hi = 0.0;
    break;
  case LVMMED_INTENSITY_WINDOW:
    lo = a - 0.5 * b;
    hi = a + 0.5 * b;
    break;
  default: return LVMMED_ERR_INTERNAL;
  }
  set_map(map, lo, hi);
  return LVMMED_OK;
}

#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("O3")))
#endif
void lvmmed__intensity_apply(const lvmmed__intensity_map *map, const float *src, size_t n, float *dst) {
  float lo = map->active ? map->lo : 0.0f, scale = map->active ? map->scale : 1.0f;
  int active = map->active;
  for (size_t i = 0; i < n; i++) {
    float v = src[i];
    /* v - v is 0 for finite v and NaN otherwise: one test catches NaN and both infinities */
    if (v - v != 0.0f) v = active ? lo : 0.0f;
    if (active) {
      float t = (v - lo) * scale;
      v = t < 0.0f ? 0.0f : t > 1.0f ? 1.0f : t;
    }
    dst[i] = v;
  }
}

lvmmed_status lvmmed_image_apply_intensity(lvmmed_image *img, lvmmed_intensity policy, double a, double b) {
  if (!img) return LVMMED_ERR_INVALID_ARGUMENT;
  char err[LVMMED_IMG_ERR_MAX];
  lvmmed_status st = lvmmed__intensity_check(policy, a, b, err, sizeof err);
  if (st != LVMMED_OK) return lvmmed__fail(img->ctx, st, "lvmmed_image_apply_intensity: %s", err);
  if (!img->width) return lvmmed__fail(img->ctx, LVMMED_ERR_STATE, "lvmmed_image_apply_intensity: the image is empty");
  if (policy == LVMMED_INTENSITY_NONE) return LVMMED_OK;
  uint32_t colour = lvmmed__image_colour_channels(img);
  lvmmed__intensity_map map;
  st = lvmmed__intensity_map_for(img->ctx, img, colour, policy, a, b, &map, err, sizeof err);
  if (st != LVMMED_OK) return lvmmed__fail(img->ctx, st, "lvmmed_image_apply_intensity: %s", err);
  lvmmed__intensity_apply(&map, img->data, (size_t)colour * img->height * img->width, img->data);
  img->sample = LVMMED_SAMPLE_FLOAT;
  img->bit_depth = 32;
  img->palette = 0;
  return LVMMED_OK;
}
