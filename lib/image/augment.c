/* The augmenter: options, per-view random parameters, and the view pipeline of METHOD.md §2. */
#include <math.h>
#include <string.h>

#include "core/rng.h"
#include "image/augment_impl.h"

typedef struct opt_info {
  double def, lo, hi;
  int integral;
} opt_info;

static const opt_info OPTS[LVMMED__AUG_NOPT] = {
    [LVMMED_AUG_SIZE] = {224, 1, 4096, 1},
    [LVMMED_AUG_GRID] = {7, 1, 64, 1},
    [LVMMED_AUG_SCALE_MIN] = {0.08, 1e-6, 1, 0},
    [LVMMED_AUG_SCALE_MAX] = {1.0, 1e-6, 1, 0},
    [LVMMED_AUG_RATIO_MIN] = {3.0 / 4.0, 0.01, 100, 0},
    [LVMMED_AUG_RATIO_MAX] = {4.0 / 3.0, 0.01, 100, 0},
    [LVMMED_AUG_FLIP_P] = {0.5, 0, 1, 0},
    [LVMMED_AUG_MIRROR_GRID] = {1, 0, 1, 1},
    [LVMMED_AUG_JITTER_P] = {0.8, 0, 1, 0},
    [LVMMED_AUG_BRIGHTNESS] = {0.8, 0, 10, 0},
    [LVMMED_AUG_CONTRAST] = {0.8, 0, 10, 0},
    [LVMMED_AUG_SATURATION] = {0.8, 0, 10, 0},
    [LVMMED_AUG_HUE] = {0.2, 0, 0.5, 0},
    [LVMMED_AUG_GRAYSCALE_P] = {0.2, 0, 1, 0},
    [LVMMED_AUG_BLUR_P] = {0.5, 0, 1, 0},
    [LVMMED_AUG_BLUR_SIGMA_MIN] = {0.1, 0.01, 100, 0},
    [LVMMED_AUG_BLUR_SIGMA_MAX] = {2.0, 0.01, 100, 0},
    [LVMMED_AUG_BLUR_KERNEL] = {0, 0, 255, 1},
    [LVMMED_AUG_GRAY_OUTPUT] = {1, 0, 1, 1},
    [LVMMED_AUG_MEAN_R] = {0.485, -1e6, 1e6, 0},
    [LVMMED_AUG_MEAN_G] = {0.456, -1e6, 1e6, 0},
    [LVMMED_AUG_MEAN_B] = {0.406, -1e6, 1e6, 0},
    [LVMMED_AUG_STD_R] = {0.228, 1e-6, 1e6, 0},
    [LVMMED_AUG_STD_G] = {0.224, 1e-6, 1e6, 0},
    [LVMMED_AUG_STD_B] = {0.225, 1e-6, 1e6, 0},
    [LVMMED_AUG_INTENSITY] = {LVMMED_INTENSITY_AUTO, 0, LVMMED_INTENSITY_AUTO, 1},
    [LVMMED_AUG_INTENSITY_A] = {0.5, -1e9, 1e9, 0},
    [LVMMED_AUG_INTENSITY_B] = {99.5, -1e9, 1e9, 0},
};

static int known(lvmmed_augment_option o) { return (int)o >= 1 && (int)o < LVMMED__AUG_NOPT; }

void lvmmed__aug_defaults(lvmmed__aug_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  for (int i = 1; i < LVMMED__AUG_NOPT; i++) cfg->opt[i] = OPTS[i].def;
}

lvmmed_status lvmmed__aug_check(const lvmmed__aug_config *cfg, char *err, size_t errlen) {
  const double *o = cfg->opt;
  if (o[LVMMED_AUG_SCALE_MIN] > o[LVMMED_AUG_SCALE_MAX])
    return lvmmed__img_error(err, errlen, LVMMED_ERR_INVALID_ARGUMENT, "scale range [%g, %g] is empty",
                             o[LVMMED_AUG_SCALE_MIN], o[LVMMED_AUG_SCALE_MAX]);
  if (o[LVMMED_AUG_RATIO_MIN] > o[LVMMED_AUG_RATIO_MAX])
    return lvmmed__img_error(err, errlen, LVMMED_ERR_INVALID_ARGUMENT, "ratio range [%g, %g] is empty",
                             o[LVMMED_AUG_RATIO_MIN], o[LVMMED_AUG_RATIO_MAX]);
  if (o[LVMMED_AUG_BLUR_SIGMA_MIN] > o[LVMMED_AUG_BLUR_SIGMA_MAX])
    return lvmmed__img_error(err, errlen, LVMMED_ERR_INVALID_ARGUMENT, "blur sigma range [%g, %g] is empty",
                             o[LVMMED_AUG_BLUR_SIGMA_MIN], o[LVMMED_AUG_BLUR_SIGMA_MAX]);
  return lvmmed__intensity_check((lvmmed_intensity)(int)o[LVMMED_AUG_INTENSITY], o[LVMMED_AUG_INTENSITY_A],
                                 o[LVMMED_AUG_INTENSITY_B], err, errlen);
}

uint64_t lvmmed__aug_stream(uint64_t index, uint32_t epoch, uint32_t view) {
  return ((uint64_t)1 << 63) | ((uint64_t)epoch << 43) | (index << 3) | view;
}

static double uniform(lvmmed_rng *r, double a, double b) { return a + (b - a) * lvmmed__rng_uniform(r); }

/* torchvision RandomResizedCrop.get_params, with Python's round-half-even. */
static void sample_crop(lvmmed_rng *r, const double *o, uint32_t H, uint32_t W, lvmmed__view_params *p) {
  double area = (double)H * W, lr0 = log(o[LVMMED_AUG_RATIO_MIN]), lr1 = log(o[LVMMED_AUG_RATIO_MAX]);
  for (int attempt = 0; attempt < 10; attempt++) {
    double target = area * uniform(r, o[LVMMED_AUG_SCALE_MIN], o[LVMMED_AUG_SCALE_MAX]);
    double ar = exp(uniform(r, lr0, lr1));
    double w = nearbyint(sqrt(target * ar)), h = nearbyint(sqrt(target / ar));
    if (w > 0 && w <= W && h > 0 && h <= H) {
      p->height = (int32_t)h;
      p->width = (int32_t)w;
      p->top = (int32_t)lvmmed__rng_below(r, (uint64_t)(H - (uint32_t)h + 1));
      p->left = (int32_t)lvmmed__rng_below(r, (uint64_t)(W - (uint32_t)w + 1));
      return;
    }
  }
  double in_ratio = (double)W / H, rmin = o[LVMMED_AUG_RATIO_MIN], rmax = o[LVMMED_AUG_RATIO_MAX];
  double w = W, h = H;
  if (in_ratio < rmin) h = nearbyint(w / rmin);
  else if (in_ratio > rmax) w = nearbyint(h * rmax);
  if (w < 1) w = 1;
  if (h < 1) h = 1;
  p->width = (int32_t)w;
  p->height = (int32_t)h;
  p->top = (int32_t)((H - (uint32_t)h) / 2);
  p->left = (int32_t)((W - (uint32_t)w) / 2);
}

void lvmmed__aug_sample(const lvmmed__aug_config *cfg, uint32_t H, uint32_t W, uint64_t index, uint32_t epoch,
                        uint32_t view, lvmmed__view_params *p) {
  const double *o = cfg->opt;
  lvmmed_rng r;
  lvmmed__rng_init(&r, cfg->seed, lvmmed__aug_stream(index, epoch, view));
  memset(p, 0, sizeof *p);
  sample_crop(&r, o, H, W, p);
  p->flip = lvmmed__rng_uniform(&r) < o[LVMMED_AUG_FLIP_P];
  /* Colour jitter: every draw is made whether or not it is used, so the stream layout is fixed. */
  p->jitter = lvmmed__rng_uniform(&r) < o[LVMMED_AUG_JITTER_P];
  int order[4] = {0, 1, 2, 3};
  for (int i = 3; i > 0; i--) {
    int j = (int)lvmmed__rng_below(&r, (uint64_t)i + 1);
    int t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  memcpy(p->order, order, sizeof order);
  double b = o[LVMMED_AUG_BRIGHTNESS], c = o[LVMMED_AUG_CONTRAST], s = o[LVMMED_AUG_SATURATION],
         h = o[LVMMED_AUG_HUE];
  double fb = uniform(&r, fmax(0.0, 1.0 - b), 1.0 + b), fc = uniform(&r, fmax(0.0, 1.0 - c), 1.0 + c);
  double fs = uniform(&r, fmax(0.0, 1.0 - s), 1.0 + s), fh = uniform(&r, -h, h);
  p->brightness = b > 0 ? (float)fb : 1.0f;
  p->contrast = c > 0 ? (float)fc : 1.0f;
  p->saturation = s > 0 ? (float)fs : 1.0f;
  p->hue = h > 0 ? (float)fh : 0.0f;
  p->grayscale = lvmmed__rng_uniform(&r) < o[LVMMED_AUG_GRAYSCALE_P];
  p->blur = lvmmed__rng_uniform(&r) < o[LVMMED_AUG_BLUR_P];
  p->sigma = (float)uniform(&r, o[LVMMED_AUG_BLUR_SIGMA_MIN], o[LVMMED_AUG_BLUR_SIGMA_MAX]);
  int ks = (int)o[LVMMED_AUG_BLUR_KERNEL];
  if (ks == 0) ks = 2 * (int)ceil(3.0 * p->sigma) + 1;
  if (ks > 255) ks = 255;
  p->kernel = ks | 1;
}

void lvmmed__aug_render(const lvmmed__aug_config *cfg, lvmmed__aug_scratch *s, const float *src, uint32_t C,
                        uint32_t H, uint32_t W, const lvmmed__intensity_map *map, const lvmmed__view_params *p,
                        float *out, float *grid) {
  const double *o = cfg->opt;
  uint32_t S = (uint32_t)o[LVMMED_AUG_SIZE];
  size_t n = (size_t)S * S;
  float *x = s->work;
  lvmmed__resized_crop(src, C, H, W, p->top, p->left, p->height, p->width, S, S, p->flip, map, s->rows, x);
  uint32_t c = C;
  if (p->jitter) {
    for (int i = 0; i < 4; i++) {
      switch (p->order[i]) {
      case 0: if (p->brightness != 1.0f) lvmmed__adjust_brightness(x, c, n, p->brightness); break;
      case 1: if (p->contrast != 1.0f) lvmmed__adjust_contrast(x, c, n, p->contrast); break;
      case 2: if (p->saturation != 1.0f) lvmmed__adjust_saturation(x, c, n, p->saturation); break;
      default: if (p->hue != 0.0f) lvmmed__adjust_hue(x, c, n, p->hue); break;
      }
    }
  }
  if (p->grayscale) lvmmed__to_grayscale(x, &c, n);
  if (p->blur) lvmmed__gaussian_blur(x, c, S, S, p->sigma, p->kernel, s->tmp, s->rows);
  if (o[LVMMED_AUG_GRAY_OUTPUT] != 0) lvmmed__to_grayscale(x, &c, n);
  const float mean[3] = {(float)o[LVMMED_AUG_MEAN_R], (float)o[LVMMED_AUG_MEAN_G], (float)o[LVMMED_AUG_MEAN_B]};
  const float sd[3] = {(float)o[LVMMED_AUG_STD_R], (float)o[LVMMED_AUG_STD_G], (float)o[LVMMED_AUG_STD_B]};
  lvmmed__normalize(x, c, n, mean, sd, out);
  if (grid)
    lvmmed__location_grid(p->top, p->left, p->height, p->width, (uint32_t)o[LVMMED_AUG_GRID], p->flip,
                          o[LVMMED_AUG_MIRROR_GRID] != 0, grid);
}

lvmmed_status lvmmed__aug_scratch_reserve(lvmmed_ctx *ctx, lvmmed__aug_scratch *s, size_t side) {
  if (s->side >= side && s->work) return LVMMED_OK;
  lvmmed__free(ctx, s->work);
  lvmmed__free(ctx, s->tmp);
  lvmmed__free(ctx, s->rows);
  s->work = s->tmp = s->rows = NULL;
  s->side = 0;
  size_t n = 3 * side * side;
  s->work = lvmmed__alloc(ctx, n * sizeof(float));
  s->tmp = lvmmed__alloc(ctx, n * sizeof(float));
  s->rows = lvmmed__alloc(ctx, (2 * side + 256) * sizeof(float));
  if (!s->work || !s->tmp || !s->rows) {
    lvmmed__aug_scratch_free(ctx, s);
    return LVMMED_ERR_OUT_OF_MEMORY;
  }
  s->side = side;
  return LVMMED_OK;
}

/* Room for n mapped floats. */
static float *mapped_buffer(lvmmed_ctx *ctx, lvmmed__aug_scratch *s, size_t n) {
  if (n > s->mapped_cap) {
    float *p = lvmmed__alloc(ctx, n * sizeof(float));
    if (!p) return NULL;
    lvmmed__free(ctx, s->mapped);
    s->mapped = p;
    s->mapped_cap = n;
  }
  return s->mapped;
}

void lvmmed__aug_scratch_free(lvmmed_ctx *ctx, lvmmed__aug_scratch *s) {
  lvmmed__free(ctx, s->work);
  lvmmed__free(ctx, s->tmp);
  lvmmed__free(ctx, s->rows);
  lvmmed__free(ctx, s->mapped);
  memset(s, 0, sizeof *s);
}

lvmmed_status lvmmed__aug_views(lvmmed_ctx *ctx, const lvmmed__aug_config *cfg, lvmmed__aug_scratch *s,
                                const lvmmed_image *img, uint64_t index, uint32_t epoch, uint32_t first,
                                uint32_t count, float *pixels, float *grids, int32_t *params, char *err,
                                size_t errlen) {
  lvmmed_status st = lvmmed__aug_check(cfg, err, errlen);
  if (st != LVMMED_OK) return st;
  if (!img || !img->width) return lvmmed__img_error(err, errlen, LVMMED_ERR_STATE, "the image is empty");
  if (index >= LVMMED_AUG_MAX_INDEX || epoch >= LVMMED_AUG_MAX_EPOCH || first >= LVMMED_AUG_MAX_VIEW ||
      count > LVMMED_AUG_MAX_VIEW - first)
    return lvmmed__img_error(err, errlen, LVMMED_ERR_INVALID_ARGUMENT,
                             "index %llu, epoch %u or views %u..%u+%u out of range", (unsigned long long)index,
                             epoch, first, first, count);
  uint32_t C = img->channels;
  uint32_t colour = C == 2 || C == 4 ? C - 1 : lvmmed__image_colour_channels(img);
  if (C > 4 || (colour != 1 && colour != 3))
    return lvmmed__img_error(err, errlen, LVMMED_ERR_UNSUPPORTED, "%u channels: views need gray or RGB (+alpha)",
                             C);
  const double *o = cfg->opt;
  size_t S = (size_t)o[LVMMED_AUG_SIZE], N = (size_t)o[LVMMED_AUG_GRID];
  if (lvmmed__aug_scratch_reserve(ctx, s, S) != LVMMED_OK)
    return lvmmed__img_error(err, errlen, LVMMED_ERR_OUT_OF_MEMORY, "out of memory for %zu x %zu views", S, S);
  lvmmed__intensity_map map;
  st = lvmmed__intensity_map_for(ctx, img, colour, (lvmmed_intensity)(int)o[LVMMED_AUG_INTENSITY],
                                 o[LVMMED_AUG_INTENSITY_A], o[LVMMED_AUG_INTENSITY_B], &map, err, errlen);
  if (st != LVMMED_OK) return st;
  /* Map the colour planes once for all views (non-finite values become 0). */
  size_t npx = (size_t)colour * img->height * img->width;
  float *src = mapped_buffer(ctx, s, npx);
  if (!src) return lvmmed__img_error(err, errlen, LVMMED_ERR_OUT_OF_MEMORY, "out of memory for the mapped image");
  lvmmed__intensity_apply(&map, img->data, npx, src);
  for (uint32_t v = 0; v < count; v++) {
    lvmmed__view_params p;
    lvmmed__aug_sample(cfg, img->height, img->width, index, epoch, first + v, &p);
    lvmmed__aug_render(cfg, s, src, colour, img->height, img->width, NULL, &p, pixels + v * 3 * S * S,
                       grids ? grids + v * N * N * 2 : NULL);
    if (params) {
      int32_t *q = params + v * LVMMED_VIEW_PARAMS;
      q[0] = p.top;
      q[1] = p.left;
      q[2] = p.height;
      q[3] = p.width;
      q[4] = p.flip;
    }
  }
  return LVMMED_OK;
}

/* ---- public API ---- */

lvmmed_status lvmmed_augmenter_create(lvmmed_ctx *ctx, lvmmed_augmenter **out) {
  if (!out) return lvmmed__fail(ctx, LVMMED_ERR_INVALID_ARGUMENT, "lvmmed_augmenter_create: out is NULL");
  *out = NULL;
  if (!ctx) return LVMMED_ERR_INVALID_ARGUMENT;
  lvmmed_augmenter *aug = lvmmed__calloc(ctx, 1, sizeof *aug);
  if (!aug) return lvmmed__fail(ctx, LVMMED_ERR_OUT_OF_MEMORY, "lvmmed_augmenter_create: out of memory");
  aug->ctx = lvmmed_ctx_retain(ctx);
  lvmmed__aug_defaults(&aug->cfg);
  aug->cfg.seed = lvmmed__ctx_seed(ctx);
  *out = aug;
  return LVMMED_OK;
}

lvmmed_ctx *lvmmed_augmenter_ctx(const lvmmed_augmenter *aug) { return aug ? aug->ctx : NULL; }

void lvmmed_augmenter_free(lvmmed_augmenter *aug) {
  if (!aug) return;
  lvmmed_ctx *ctx = aug->ctx;
  lvmmed__aug_scratch_free(ctx, &aug->scratch);
  lvmmed__free(ctx, aug);
  lvmmed_ctx_release(ctx);
}

lvmmed_status lvmmed_augmenter_option_bounds(lvmmed_augment_option option, double *min_value, double *max_value) {
  if (!known(option)) return LVMMED_ERR_INVALID_ARGUMENT;
  if (min_value) *min_value = OPTS[option].lo;
  if (max_value) *max_value = OPTS[option].hi;
  return LVMMED_OK;
}

lvmmed_status lvmmed_augmenter_set_option(lvmmed_augmenter *aug, lvmmed_augment_option option, double value) {
  if (!aug) return LVMMED_ERR_INVALID_ARGUMENT;
  if (!known(option))
    return lvmmed__fail(aug->ctx, LVMMED_ERR_INVALID_ARGUMENT, "lvmmed_augmenter_set_option: unknown option %d",
                        (int)option);
  const opt_info *oi = &OPTS[option];
  if (!(value >= oi->lo && value <= oi->hi) || (oi->integral && value != floor(value)))
    return lvmmed__fail(aug->ctx, LVMMED_ERR_OUT_OF_RANGE,
                        "lvmmed_augmenter_set_option: option %d = %g outside [%g, %g]%s", (int)option, value, oi->lo,
                        oi->hi, oi->integral ? " or not an integer" : "");
  if (option == LVMMED_AUG_BLUR_KERNEL && value != 0 && fmod(value, 2.0) == 0)
    return lvmmed__fail(aug->ctx, LVMMED_ERR_OUT_OF_RANGE,
                        "lvmmed_augmenter_set_option: blur kernel %g must be odd (or 0 for automatic)", value);
  aug->cfg.opt[option] = value;
  return LVMMED_OK;
}

lvmmed_status lvmmed_augmenter_get_option(const lvmmed_augmenter *aug, lvmmed_augment_option option, double *value) {
  if (!aug || !value)
    return lvmmed__fail(aug ? aug->ctx : NULL, LVMMED_ERR_INVALID_ARGUMENT, "lvmmed_augmenter_get_option: NULL argument");
  if (!known(option))
    return lvmmed__fail(aug->ctx, LVMMED_ERR_INVALID_ARGUMENT, "lvmmed_augmenter_get_option: unknown option %d",
                        (int)option);
  *value = aug->cfg.opt[option];
  return LVMMED_OK;
}

lvmmed_status lvmmed_augmenter_set_seed(lvmmed_augmenter *aug, uint64_t seed) {
  if (!aug) return LVMMED_ERR_INVALID_ARGUMENT;
  aug->cfg.seed = seed;
  return LVMMED_OK;
}

lvmmed_status lvmmed_augmenter_get_seed(const lvmmed_augmenter *aug, uint64_t *seed) {
  if (!aug || !seed)
    return lvmmed__fail(aug ? aug->ctx : NULL, LVMMED_ERR_INVALID_ARGUMENT, "lvmmed_augmenter_get_seed: NULL argument");
  *seed = aug->cfg.seed;
  return LVMMED_OK;
}

lvmmed_status lvmmed_augmenter_view_size(const lvmmed_augmenter *aug, size_t *pixels, size_t *grid) {
  if (!aug) return LVMMED_ERR_INVALID_ARGUMENT;
  size_t S = (size_t)aug->cfg.opt[LVMMED_AUG_SIZE], N = (size_t)aug->cfg.opt[LVMMED_AUG_GRID];
  if (pixels) *pixels = 3 * S * S;
  if (grid) *grid = N * N * 2;
  return LVMMED_OK;
}

lvmmed_status lvmmed_augmenter_views(lvmmed_augmenter *aug, const lvmmed_image *img, uint64_t index, uint32_t epoch,
                                     uint32_t first_view, uint32_t count, float *pixels, float *grids,
                                     int32_t *params) {
  if (!aug) return LVMMED_ERR_INVALID_ARGUMENT;
  if (!img || (count && !pixels))
    return lvmmed__fail(aug->ctx, LVMMED_ERR_INVALID_ARGUMENT, "lvmmed_augmenter_views: %s is NULL",
                        img ? "pixels" : "img");
  char err[LVMMED_IMG_ERR_MAX];
  lvmmed_status st = lvmmed__aug_views(aug->ctx, &aug->cfg, &aug->scratch, img, index, epoch, first_view, count,
                                       pixels, grids, params, err, sizeof err);
  if (st != LVMMED_OK) return lvmmed__fail(aug->ctx, st, "lvmmed_augmenter_views: %s", err);
  return LVMMED_OK;
}
