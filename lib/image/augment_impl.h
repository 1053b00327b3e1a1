/* liblvmmed — private augmenter interface: the configuration the dataset copies,
 * per-thread scratch, and view generation that reports errors into a buffer. */
#ifndef LVMMED_AUGMENT_IMPL_H
#define LVMMED_AUGMENT_IMPL_H

#include "image/augment_ops.h"
#include "lvmmed/augment.h"

#define LVMMED__AUG_NOPT 29 /* options are 1..28; slot 0 unused */

typedef struct lvmmed__aug_config {
  double opt[LVMMED__AUG_NOPT];
  uint64_t seed;
} lvmmed__aug_config;

/** Working memory of one thread making views (grown on demand, freed by lvmmed__aug_scratch_free). */
typedef struct lvmmed__aug_scratch {
  float *work; /* 3 x S x S */
  float *tmp;  /* 3 x S x S (blur) */
  float *rows; /* 2 x S + S + 256 (resize row cache, blur padding) */
  size_t side; /* S the buffers were sized for */
  float *mapped; /* the image's colour planes after the intensity map */
  size_t mapped_cap;
} lvmmed__aug_scratch;

struct lvmmed_augmenter {
  lvmmed_ctx *ctx;
  lvmmed__aug_config cfg;
  lvmmed__aug_scratch scratch;
};

/** Defaults of METHOD.md §2. */
void lvmmed__aug_defaults(lvmmed__aug_config *cfg);

/** Cross-option checks (min <= max, kernel odd). */
lvmmed_status lvmmed__aug_check(const lvmmed__aug_config *cfg, char *err, size_t errlen);

/** RNG stream of view `view` of image `index` in `epoch` (bit 63 marks the image module). */
uint64_t lvmmed__aug_stream(uint64_t index, uint32_t epoch, uint32_t view);

/** Draws every random parameter of one view of an H x W image. */
void lvmmed__aug_sample(const lvmmed__aug_config *cfg, uint32_t H, uint32_t W, uint64_t index, uint32_t epoch,
                        uint32_t view, lvmmed__view_params *p);

/** Renders one view of a C x H x W planar image (C = 1 replicated gray, or 3) with fixed
 *  parameters: out 3 x S x S, grid N x N x 2 (may be NULL). The scratch must be sized. */
void lvmmed__aug_render(const lvmmed__aug_config *cfg, lvmmed__aug_scratch *s, const float *src, uint32_t C,
                        uint32_t H, uint32_t W, const lvmmed__intensity_map *map, const lvmmed__view_params *p,
                        float *out, float *grid);

lvmmed_status lvmmed__aug_scratch_reserve(lvmmed_ctx *ctx, lvmmed__aug_scratch *s, size_t side);
void lvmmed__aug_scratch_free(lvmmed_ctx *ctx, lvmmed__aug_scratch *s);

/** Views first..first+count-1 of img (see lvmmed_augmenter_views); errors into err. */
lvmmed_status lvmmed__aug_views(lvmmed_ctx *ctx, const lvmmed__aug_config *cfg, lvmmed__aug_scratch *s,
                                const lvmmed_image *img, uint64_t index, uint32_t epoch, uint32_t first,
                                uint32_t count, float *pixels, float *grids, int32_t *params, char *err,
                                size_t errlen);

#endif /* LVMMED_AUGMENT_IMPL_H */
