/* liblvmmed — the augmented views LVM-Med trains on (METHOD.md §2).
 *
 * An lvmmed_augmenter turns an lvmmed_image into views of size S x S
 * (224 by default), each with the location grid of its crop:
 *
 *  1. intensity policy (LVMMED_AUG_INTENSITY*, see lvmmed_intensity) to
 *     [0, 1]; alpha dropped; gray stays gray (equivalent to torchvision on
 *     the gray image replicated to RGB), RGB stays RGB;
 *  2. random resized crop: area fraction ~ U[scale_min, scale_max], aspect
 *     ratio log-uniform in [ratio_min, ratio_max], up to 10 tries, then a
 *     centre crop (torchvision's RandomResizedCrop.get_params); the crop is
 *     resized to S x S by bilinear interpolation with half-pixel centres and
 *     no antialiasing (torchvision's tensor resize, antialias=False);
 *  3. horizontal flip with probability flip_p;
 *  4. with probability jitter_p, colour jitter: brightness, contrast,
 *     saturation factors ~ U[max(0, 1 - s), 1 + s] and hue shift
 *     ~ U[-hue, hue], applied in a random order, each as
 *     torchvision.transforms.functional.adjust_* on float images;
 *  5. with probability grayscale_p, grayscale (rgb_to_grayscale, 3 channels);
 *  6. with probability blur_p, Gaussian blur, sigma ~ U[sigma_min, sigma_max],
 *     kernel 2*ceil(3 sigma)+1 (or blur_kernel), reflect padding
 *     (functional.gaussian_blur);
 *  7. if gray_output, grayscale replicated to 3 channels (METHOD.md §2 step 4);
 *  8. normalisation (x - mean[c]) / std[c].
 *
 * Output: 3 x S x S float32 planar per view, and its location grid: N x N
 * cells (N = grid, 7 by default), each two floats (row, col) giving the cell
 * centre in original-image pixel coordinates: row = top + (k + 0.5) h / N,
 * col = left + (l + 0.5) w / N for the crop box (top, left, h, w). When the
 * view is flipped, grid columns are mirrored (cell l holds the centre of
 * crop column N-1-l) so that grid cell (k, l) stays over feature-map cell
 * (k, l); mirror_grid = 0 reproduces VICRegL's unmirrored grid.
 *
 * Determinism: every random draw of a view comes from the counter-based RNG
 * stream keyed by (seed, image index, epoch, view), so a view never depends
 * on thread count, scheduling or the order views are asked for.
 *
 * Threading: an augmenter is used by one thread at a time. The dataset
 * reader (dataset.h) copies the configuration, so one augmenter may
 * configure many readers.
 */
#ifndef LVMMED_AUGMENT_H
#define LVMMED_AUGMENT_H

#include <stddef.h>
#include <stdint.h>

#include <lvmmed/ctx.h>
#include <lvmmed/export.h>
#include <lvmmed/image.h>
#include <lvmmed/status.h>

LVMMED_EXTERN_C_BEGIN

/** Opaque augmentation configuration (plus scratch memory). */
typedef struct lvmmed_augmenter lvmmed_augmenter;

/** Number of int32 values a view's parameter record holds (see lvmmed_augmenter_views). */
#define LVMMED_VIEW_PARAMS 5

/** Largest image index a view may be asked for (exclusive): 2^40. */
#define LVMMED_AUG_MAX_INDEX ((uint64_t)1 << 40)
/** Largest epoch (exclusive): 2^19. */
#define LVMMED_AUG_MAX_EPOCH ((uint32_t)1 << 19)
/** Largest view number (exclusive): 8. */
#define LVMMED_AUG_MAX_VIEW 8u

/**
 * Enum-keyed options, all real-valued (integer ones must be integral). The
 * defaults are METHOD.md §2's; bounds from lvmmed_augmenter_option_bounds.
 */
typedef enum lvmmed_augment_option {
  LVMMED_AUG_SIZE = 1,           /**< view side S in pixels, default 224, [1, 4096] */
  LVMMED_AUG_GRID = 2,           /**< location grid side N, default 7, [1, 64] */
  LVMMED_AUG_SCALE_MIN = 3,      /**< crop area fraction, default 0.08, (0, 1] */
  LVMMED_AUG_SCALE_MAX = 4,      /**< default 1.0, (0, 1] */
  LVMMED_AUG_RATIO_MIN = 5,      /**< crop aspect ratio w/h, default 3/4, [0.01, 100] */
  LVMMED_AUG_RATIO_MAX = 6,      /**< default 4/3, [0.01, 100] */
  LVMMED_AUG_FLIP_P = 7,         /**< horizontal flip probability, default 0.5 */
  LVMMED_AUG_MIRROR_GRID = 8,    /**< 1 mirror the grid on flip (default), 0 VICRegL's quirk */
  LVMMED_AUG_JITTER_P = 9,       /**< colour jitter probability, default 0.8 */
  LVMMED_AUG_BRIGHTNESS = 10,    /**< jitter strength, default 0.8, [0, 10] */
  LVMMED_AUG_CONTRAST = 11,      /**< default 0.8, [0, 10] */
  LVMMED_AUG_SATURATION = 12,    /**< default 0.8, [0, 10] */
  LVMMED_AUG_HUE = 13,           /**< default 0.2, [0, 0.5] */
  LVMMED_AUG_GRAYSCALE_P = 14,   /**< random grayscale probability, default 0.2 */
  LVMMED_AUG_BLUR_P = 15,        /**< Gaussian blur probability, default 0.5 */
  LVMMED_AUG_BLUR_SIGMA_MIN = 16, /**< default 0.1, [0.01, 100] */
  LVMMED_AUG_BLUR_SIGMA_MAX = 17, /**< default 2.0, [0.01, 100] */
  LVMMED_AUG_BLUR_KERNEL = 18,   /**< odd kernel side, or 0 (default): 2*ceil(3 sigma)+1; [0, 255] */
  LVMMED_AUG_GRAY_OUTPUT = 19,   /**< 1 (default): views are gray replicated to RGB; 0: colour */
  LVMMED_AUG_MEAN_R = 20,        /**< normalisation mean, default 0.485 */
  LVMMED_AUG_MEAN_G = 21,        /**< default 0.456 */
  LVMMED_AUG_MEAN_B = 22,        /**< default 0.406 */
  LVMMED_AUG_STD_R = 23,         /**< normalisation std, default 0.228, [1e-6, 1e6] */
  LVMMED_AUG_STD_G = 24,         /**< default 0.224 */
  LVMMED_AUG_STD_B = 25,         /**< default 0.225 */
  LVMMED_AUG_INTENSITY = 26,     /**< an lvmmed_intensity, default LVMMED_INTENSITY_AUTO */
  LVMMED_AUG_INTENSITY_A = 27,   /**< its first parameter, default 0.5 (percentile) */
  LVMMED_AUG_INTENSITY_B = 28    /**< its second parameter, default 99.5 (percentile) */
} lvmmed_augment_option;

/** Creates an augmenter with METHOD.md §2 defaults and seed = the context's seed. */
LVMMED_API lvmmed_status lvmmed_augmenter_create(lvmmed_ctx *ctx, lvmmed_augmenter **out);

/** Frees the augmenter. NULL is a no-op. */
LVMMED_API void lvmmed_augmenter_free(lvmmed_augmenter *aug);

/** The context aug reports errors to (borrowed; NULL for NULL). */
LVMMED_API lvmmed_ctx *lvmmed_augmenter_ctx(const lvmmed_augmenter *aug);

/**
 * Sets an option. NaN, values outside the bounds and non-integral values of
 * integer options give LVMMED_ERR_OUT_OF_RANGE and leave it unchanged.
 * Cross-option consistency (min <= max) is checked when views are made.
 */
LVMMED_API lvmmed_status lvmmed_augmenter_set_option(lvmmed_augmenter *aug,
                                                     lvmmed_augment_option option, double value);

/** Reads an option into *value. */
LVMMED_API lvmmed_status lvmmed_augmenter_get_option(const lvmmed_augmenter *aug,
                                                     lvmmed_augment_option option, double *value);

/** Inclusive range accepted by lvmmed_augmenter_set_option for option. */
LVMMED_API lvmmed_status lvmmed_augmenter_option_bounds(lvmmed_augment_option option,
                                                        double *min_value, double *max_value);

/** Sets the seed of every view's random stream. */
LVMMED_API lvmmed_status lvmmed_augmenter_set_seed(lvmmed_augmenter *aug, uint64_t seed);

/** Reads the seed. */
LVMMED_API lvmmed_status lvmmed_augmenter_get_seed(const lvmmed_augmenter *aug, uint64_t *seed);

/**
 * Sizes of one view's outputs: *pixels = 3 * S * S floats, *grid = N * N * 2
 * floats. Either pointer may be NULL.
 */
LVMMED_API lvmmed_status lvmmed_augmenter_view_size(const lvmmed_augmenter *aug, size_t *pixels,
                                                    size_t *grid);

/**
 * Makes views first_view .. first_view + count - 1 of image number index in
 * epoch epoch (index < LVMMED_AUG_MAX_INDEX, epoch < LVMMED_AUG_MAX_EPOCH,
 * first_view + count <= LVMMED_AUG_MAX_VIEW). The image's intensity
 * statistics are computed once for all count views.
 *  pixels: count x 3 x S x S floats (view-major);
 *  grids:  count x N x N x 2 floats, or NULL;
 *  params: count x LVMMED_VIEW_PARAMS int32 (crop top, left, height, width,
 *          flipped), or NULL.
 * img must hold 1 to 4 channels (2 = gray+alpha, 4 = RGBA; alpha is
 * dropped). The image is not modified. Errors: LVMMED_ERR_STATE (empty
 * image), LVMMED_ERR_INVALID_ARGUMENT (NULL buffers, inconsistent options,
 * indices out of range), LVMMED_ERR_UNSUPPORTED (channel count).
 */
LVMMED_API lvmmed_status lvmmed_augmenter_views(lvmmed_augmenter *aug, const lvmmed_image *img,
                                                uint64_t index, uint32_t epoch,
                                                uint32_t first_view, uint32_t count, float *pixels,
                                                float *grids, int32_t *params);

LVMMED_EXTERN_C_END

#endif /* LVMMED_AUGMENT_H */
