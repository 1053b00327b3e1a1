/* Frozen-backbone features of image files (see imgfeat.h). */
#include "imgfeat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define DEFAULT_IMAGE_SIZE 96

struct imgfeat {
  const char *cmd;
  imgfeat_config cfg;
  lvmmed_ctx *ctx;
  lvmmed_backbone *bb;
  lvmmed_augmenter *aug;
  lvmmed_image *img;
  size_t dim, size, batch;
  double pct_lo, pct_hi;
  lvmmed_arch arch;
  float *views, *square;
  size_t square_cap;
};

static const char *arch_text(lvmmed_arch a) {
  return a == LVMMED_ARCH_RESNET50 ? "resnet50" : a == LVMMED_ARCH_RESNET34 ? "resnet34" : "resnet18";
}

/* The view side a training checkpoint records (its "image_height" and "image_width"
 * metadata; the smaller if they differ), or 0 when the file has none. */
static size_t checkpoint_image_size(lvmmed_ctx *ctx, const char *path) {
  char h[32], w[32];
  if (lvmmed_checkpoint_read_meta(ctx, path, "image_height", h, sizeof h) != LVMMED_OK ||
      lvmmed_checkpoint_read_meta(ctx, path, "image_width", w, sizeof w) != LVMMED_OK) {
    lvmmed_ctx_clear_error(ctx);
    return 0;
  }
  char *end1, *end2;
  unsigned long vh = strtoul(h, &end1, 10), vw = strtoul(w, &end2, 10);
  if (*end1 || *end2 || !vh || !vw) return 0;
  unsigned long v = vh < vw ? vh : vw;
  return v <= 4096 ? (size_t)v : 0;
}

static int fail_ctx(imgfeat *f, const char *what) {
  fprintf(stderr, "%s: %s%s%s\n", f->cmd, what ? what : "", what ? ": " : "",
          lvmmed_ctx_last_error(f->ctx));
  return -1;
}

imgfeat *imgfeat_open(const imgfeat_config *cfg) {
  imgfeat *f = calloc(1, sizeof *f);
  if (!f) {
    fprintf(stderr, "%s: out of memory\n", cfg->cmd);
    return NULL;
  }
  f->cmd = cfg->cmd;
  f->cfg = *cfg;
  f->batch = cfg->batch ? cfg->batch : 32;
  f->arch = LVMMED_ARCH_RESNET18;
  if (cfg->arch && !cli_arch_from_name(cfg->arch, &f->arch)) {
    fprintf(stderr, "%s: unknown architecture '%s' (resnet18, resnet34, resnet50)\n", f->cmd, cfg->arch);
    goto fail;
  }
  if (lvmmed_ctx_create(&f->ctx) != LVMMED_OK) {
    fprintf(stderr, "%s: cannot create a context\n", f->cmd);
    goto fail;
  }
  lvmmed_status st = LVMMED_OK;
  if (cfg->threads) st = lvmmed_ctx_set_option(f->ctx, LVMMED_CTX_OPT_THREADS, (int64_t)cfg->threads);
  /* lvmmed_backbone_create draws its weights from the context's seed: exactly
   * lvmmed_backbone_init_weights(seed), without drawing them twice. */
  if (st == LVMMED_OK) st = lvmmed_ctx_set_option(f->ctx, LVMMED_CTX_OPT_SEED, (int64_t)(cfg->seed & INT64_MAX));
  f->size = cfg->image_size;
  if (st == LVMMED_OK && !f->size && cfg->weights) f->size = checkpoint_image_size(f->ctx, cfg->weights);
  if (!f->size) f->size = DEFAULT_IMAGE_SIZE;
  /* The augmenter's defaults, with every random step switched off: a square image becomes
   * the whole S x S view (scale 1, ratio 1, no flip, no colour or blur). */
  double lo = 0, hi = 0;
  if (st == LVMMED_OK) st = lvmmed_augmenter_create(f->ctx, &f->aug);
  if (st == LVMMED_OK) st = lvmmed_augmenter_get_option(f->aug, LVMMED_AUG_INTENSITY_A, &lo);
  if (st == LVMMED_OK) st = lvmmed_augmenter_get_option(f->aug, LVMMED_AUG_INTENSITY_B, &hi);
  static const struct {
    lvmmed_augment_option opt;
    double value;
  } eval[] = {{LVMMED_AUG_SCALE_MIN, 1}, {LVMMED_AUG_SCALE_MAX, 1}, {LVMMED_AUG_RATIO_MIN, 1},
              {LVMMED_AUG_RATIO_MAX, 1}, {LVMMED_AUG_FLIP_P, 0},      {LVMMED_AUG_JITTER_P, 0},
              {LVMMED_AUG_GRAYSCALE_P, 0}, {LVMMED_AUG_BLUR_P, 0},     {LVMMED_AUG_GRAY_OUTPUT, 1},
              {LVMMED_AUG_INTENSITY, LVMMED_INTENSITY_NONE}};
  for (size_t i = 0; st == LVMMED_OK && i < sizeof eval / sizeof eval[0]; i++)
    st = lvmmed_augmenter_set_option(f->aug, eval[i].opt, eval[i].value);
  if (st == LVMMED_OK) st = lvmmed_augmenter_set_option(f->aug, LVMMED_AUG_SIZE, (double)f->size);
  if (st == LVMMED_OK) st = lvmmed_image_create(f->ctx, &f->img);
  if (st != LVMMED_OK) {
    fail_ctx(f, NULL);
    goto fail;
  }
  f->pct_lo = lo;
  f->pct_hi = hi;
  return f;
fail:
  imgfeat_close(f);
  return NULL;
}

int imgfeat_prepare(imgfeat *f) {
  if (f->bb) return 0;
  const imgfeat_config *cfg = &f->cfg;
  lvmmed_status st;
  if (cfg->weights) {
    if (lvmmed_backbone_create_from_file(f->ctx, cfg->weights, 3, &f->bb) != LVMMED_OK)
      return fail_ctx(f, NULL);
    lvmmed_arch got;
    lvmmed_backbone_info(f->bb, &got, NULL, NULL);
    if (cfg->arch && got != f->arch) {
      fprintf(stderr, "%s: %s holds a %s, not the --arch %s\n", f->cmd, cfg->weights,
              arch_text(got), cfg->arch);
      return -1;
    }
    f->arch = got;
  } else if (lvmmed_backbone_create(f->ctx, f->arch, 3, &f->bb) != LVMMED_OK) {
    return fail_ctx(f, NULL);
  }
  st = lvmmed_backbone_set_option(f->bb, LVMMED_BACKBONE_OPT_TRAIN, 0);
  if (st == LVMMED_OK) st = lvmmed_backbone_set_option(f->bb, LVMMED_BACKBONE_OPT_GRAD, 0);
  if (st == LVMMED_OK) st = lvmmed_backbone_set_option(f->bb, LVMMED_BACKBONE_OPT_FROZEN, 1);
  if (st == LVMMED_OK) st = lvmmed_backbone_info(f->bb, NULL, NULL, &f->dim);
  if (st != LVMMED_OK) return fail_ctx(f, NULL);
  size_t c, mh, mw;
  if (lvmmed_backbone_map_shape(f->bb, f->size, f->size, &c, &mh, &mw) != LVMMED_OK)
    return fail_ctx(f, "image size");
  f->views = malloc(f->batch * 3 * f->size * f->size * sizeof *f->views);
  if (!f->views) {
    fprintf(stderr, "%s: out of memory\n", f->cmd);
    return -1;
  }
  return 0;
}

void imgfeat_close(imgfeat *f) {
  if (!f) return;
  free(f->views);
  free(f->square);
  lvmmed_image_free(f->img);
  lvmmed_augmenter_free(f->aug);
  lvmmed_backbone_free(f->bb);
  lvmmed_ctx_release(f->ctx);
  free(f);
}

size_t imgfeat_dim(const imgfeat *f) { return f->dim; }
size_t imgfeat_image_size(const imgfeat *f) { return f->size; }
const char *imgfeat_arch(const imgfeat *f) { return arch_text(f->arch); }

void imgfeat_free_list(char **paths, size_t count) {
  if (!paths) return;
  for (size_t i = 0; i < count; i++) free(paths[i]);
  free(paths);
}

int imgfeat_list(imgfeat *f, const char *dir, char ***paths, size_t *count) {
  *paths = NULL;
  *count = 0;
  lvmmed_dataset *ds = NULL;
  int64_t n = 0;
  if (lvmmed_dataset_create(f->ctx, f->aug, &ds) != LVMMED_OK ||
      lvmmed_dataset_add_folder(ds, dir) != LVMMED_OK ||
      lvmmed_dataset_stat(ds, LVMMED_DATASET_ITEMS, &n) != LVMMED_OK) {
    fail_ctx(f, NULL);
    lvmmed_dataset_free(ds);
    return -1;
  }
  char **v = calloc((size_t)n + 1, sizeof *v);
  int rc = v ? 0 : -1;
  for (size_t i = 0; rc == 0 && i < (size_t)n; i++) {
    v[i] = strdup(lvmmed_dataset_item_path(ds, i));
    if (!v[i]) rc = -1;
  }
  lvmmed_dataset_free(ds);
  if (rc) {
    fprintf(stderr, "%s: out of memory\n", f->cmd);
    imgfeat_free_list(v, (size_t)n);
    return -1;
  }
  *paths = v;
  *count = (size_t)n;
  return 0;
}

/* Decodes path into the view at out (3 x S x S). */
static int transform(imgfeat *f, const char *path, float *out) {
  lvmmed_image *img = f->img;
  int64_t h, w;
  if (lvmmed_image_read_file(img, path) != LVMMED_OK) return fail_ctx(f, NULL); /* names path */
  if (lvmmed_image_apply_intensity(img, LVMMED_INTENSITY_AUTO, f->pct_lo, f->pct_hi) != LVMMED_OK ||
      lvmmed_image_convert_channels(img, 1) != LVMMED_OK ||
      lvmmed_image_get(img, LVMMED_IMAGE_HEIGHT, &h) != LVMMED_OK ||
      lvmmed_image_get(img, LVMMED_IMAGE_WIDTH, &w) != LVMMED_OK)
    return fail_ctx(f, path);
  if (h != w) { /* the centred square, as the pixels of a new image */
    int64_t side = h < w ? h : w, top = (h - side) / 2, left = (w - side) / 2;
    size_t need = (size_t)side * (size_t)side;
    if (need > f->square_cap) {
      float *p = realloc(f->square, need * sizeof *p);
      if (!p) {
        fprintf(stderr, "%s: %s: out of memory\n", f->cmd, path);
        return -1;
      }
      f->square = p;
      f->square_cap = need;
    }
    const float *src = lvmmed_image_data(img);
    for (int64_t y = 0; y < side; y++)
      memcpy(f->square + y * side, src + (top + y) * w + left, (size_t)side * sizeof *src);
    if (lvmmed_image_set_pixels(img, f->square, 1, side, side) != LVMMED_OK) return fail_ctx(f, path);
  }
  if (lvmmed_augmenter_views(f->aug, img, 0, 0, 0, 1, out, NULL, NULL) != LVMMED_OK)
    return fail_ctx(f, path);
  return 0;
}

int imgfeat_run(imgfeat *f, char *const *paths, size_t n, float *out) {
  if (imgfeat_prepare(f)) return -1;
  size_t plane = 3 * f->size * f->size;
  for (size_t b0 = 0; b0 < n; b0 += f->batch) {
    size_t nb = n - b0 < f->batch ? n - b0 : f->batch;
    for (size_t i = 0; i < nb; i++)
      if (transform(f, paths[b0 + i], f->views + i * plane)) return -1;
    if (lvmmed_backbone_forward(f->bb, f->views, nb, f->size, f->size, out + b0 * f->dim, NULL) !=
        LVMMED_OK)
      return fail_ctx(f, NULL);
  }
  return 0;
}
