/* liblvmmed — private augmentation kernels with explicit parameters.
 *
 * Each kernel reproduces the float32 arithmetic of the matching
 * torchvision.transforms.functional op on tensors (same expression order, so
 * results agree to rounding), and is tested against it with fixed
 * parameters. Buffers are planar; a 1-channel buffer stands for a gray image
 * replicated to RGB (what torchvision would see), so colour ops on it give
 * exactly torchvision's result on the replicated image while doing a third
 * of the work.
 */
#ifndef LVMMED_AUGMENT_OPS_H
#define LVMMED_AUGMENT_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "image/image_impl.h"

/** Everything random about one view (drawn by augment.c, or fixed by a test). */
typedef struct lvmmed__view_params {
  int32_t top, left, height, width; /* crop box in source pixels */
  int flip;
  int jitter;         /* colour jitter applied at all */
  int order[4];       /* op sequence: 0 brightness, 1 contrast, 2 saturation, 3 hue */
  float brightness, contrast, saturation, hue; /* factors; an op with (1, 1, 1, 0) is skipped */
  int grayscale;
  int blur;
  float sigma;
  int kernel;         /* odd */
} lvmmed__view_params;

/** Bilinear resize of the crop (top, left, h, w) of a C x H x W planar image to
 *  C x out_h x out_w (half-pixel centres, no antialias: torch interpolate with
 *  align_corners=False), each source sample first passed through map (non-finite -> 0;
 *  NULL: samples used as they are, and must be finite); flip mirrors the output columns.
 *  rows: scratch of 2*out_w floats. */
void lvmmed__resized_crop(const float *src, uint32_t C, uint32_t H, uint32_t W, int32_t top, int32_t left,
                          int32_t h, int32_t w, uint32_t out_h, uint32_t out_w, int flip,
                          const lvmmed__intensity_map *map, float *rows, float *dst);

/* Colour ops on a C x n planar buffer (C = 1: replicated gray, or C = 3). */
void lvmmed__adjust_brightness(float *x, uint32_t C, size_t n, float factor);
void lvmmed__adjust_contrast(float *x, uint32_t C, size_t n, float factor);
void lvmmed__adjust_saturation(float *x, uint32_t C, size_t n, float factor);
void lvmmed__adjust_hue(float *x, uint32_t C, size_t n, float hue);
/** rgb_to_grayscale: a 3-channel buffer becomes 1 channel (*C = 1); a 1-channel one gets
 *  the luma of its replicated RGB (0.2989 + 0.587 + 0.114 = 0.9999 times, in float). */
void lvmmed__to_grayscale(float *x, uint32_t *C, size_t n);

/** torchvision's 1-D Gaussian kernel of odd size ks (float arithmetic). */
void lvmmed__gaussian_kernel(float *k, int ks, float sigma);

/** Gaussian blur of C planes of h x w with reflect padding; tmp: C*h*w floats, pad: w + ks floats. */
void lvmmed__gaussian_blur(float *x, uint32_t C, uint32_t h, uint32_t w, float sigma, int ks, float *tmp,
                           float *pad);

/** out (3 x n) = (x[c or 0] - mean[c]) / std[c]. */
void lvmmed__normalize(const float *x, uint32_t C, size_t n, const float mean[3], const float std[3], float *out);

/** N x N x 2 grid of (row, col) cell centres of the crop; flipped views mirror columns if mirror. */
void lvmmed__location_grid(int32_t top, int32_t left, int32_t h, int32_t w, uint32_t N, int flip, int mirror,
                           float *grid);

#endif /* LVMMED_AUGMENT_OPS_H */
