/* Shared body of the image fuzz targets: decode one format from memory, then make a
 * small augmented view of whatever decoded, so odd shapes (1 x N, 4 channels, NaN
 * floats) reach the augmentation kernels too. */
#ifndef LVMMED_FUZZ_COMMON_H
#define LVMMED_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <lvmmed/lvmmed.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fuzz_image(const uint8_t *data, size_t size, lvmmed_image_format want) {
  static lvmmed_ctx *ctx;
  static lvmmed_image *img;
  static lvmmed_augmenter *aug;
  if (!ctx) { /* kept for the whole run: the fuzzer calls this millions of times */
    if (lvmmed_ctx_create(&ctx) != LVMMED_OK || lvmmed_image_create(ctx, &img) != LVMMED_OK ||
        lvmmed_augmenter_create(ctx, &aug) != LVMMED_OK)
      abort();
    /* Small enough that a declared 65535 x 65535 image is refused instead of exhausting memory. */
    lvmmed_image_set_option(img, LVMMED_IMAGE_OPT_MAX_PIXELS, (int64_t)1 << 22);
    lvmmed_augmenter_set_option(aug, LVMMED_AUG_SIZE, 24);
    lvmmed_augmenter_set_option(aug, LVMMED_AUG_GRID, 3);
  }
  if (lvmmed_image_detect_format(data, size) != want) return 0;
  /* The last byte picks the page for TIFF (multi-page paths), others use page 0. */
  int64_t page = want == LVMMED_IMAGE_FORMAT_TIFF && size ? data[size - 1] % 3 : 0;
  lvmmed_image_set_option(img, LVMMED_IMAGE_OPT_PAGE, page);
  if (lvmmed_image_read_memory(img, data, size, "fuzz") != LVMMED_OK) {
    if (lvmmed_image_data(img) != NULL) abort(); /* a failed decode must leave no pixels */
    return 0;
  }
  double lo, hi;
  lvmmed_image_range(img, &lo, &hi);
  lvmmed_image_nominal_range(img, &lo, &hi);
  static float view[3 * 24 * 24], grid[3 * 3 * 2];
  int32_t params[LVMMED_VIEW_PARAMS];
  lvmmed_augmenter_views(aug, img, size, 0, 0, 1, view, grid, params);
  return 0;
}

#endif /* LVMMED_FUZZ_COMMON_H */
