/* liblvmmed — private image interface shared by the decoders, the augmenter and the dataset.
 *
 * Decoders never touch the context's error slot: they write the cause into a
 * caller buffer, so dataset worker threads can decode concurrently with the
 * thread that owns the context. The public wrappers turn that text into
 * lvmmed__fail messages.
 */
#ifndef LVMMED_IMAGE_IMPL_H
#define LVMMED_IMAGE_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"
#include "lvmmed/image.h"

/** Room for one decoding error message. */
#define LVMMED_IMG_ERR_MAX 384

struct lvmmed_image {
  lvmmed_ctx *ctx;
  /* options */
  int64_t max_pixels;
  int64_t max_file_bytes;
  int64_t page;
  /* pixels: channels x height x width floats */
  float *data;
  size_t data_cap; /* floats */
  uint32_t width, height, channels;
  uint32_t pages, page_read;
  int bit_depth;
  lvmmed_sample_format sample;
  lvmmed_image_format format;
  int has_alpha, palette;
  /* reusable buffers */
  unsigned char *scratch; /* raw decoded samples */
  size_t scratch_cap;
  unsigned char *file; /* file contents for read_file */
  size_t file_cap;
};

/** Writes "fmt..." into err (if err) and returns status. */
lvmmed_status lvmmed__img_error(char *err, size_t errlen, lvmmed_status status, const char *fmt, ...)
    LVMMED_PRINTF(4, 5);

/** Marks img empty (keeps its buffers). */
void lvmmed__image_clear(lvmmed_image *img);

/** Checks width x height against the pixel limit (and against 2^31 per side). */
lvmmed_status lvmmed__image_check_size(const lvmmed_image *img, uint64_t width, uint64_t height,
                                       const char *what, char *err, size_t errlen);

/** Sets the shape and returns room for channels*height*width floats (NULL: out of memory). */
float *lvmmed__image_alloc(lvmmed_image *img, uint32_t channels, uint32_t height, uint32_t width);

/** Returns a reusable scratch block of at least bytes (NULL: out of memory). */
void *lvmmed__image_scratch(lvmmed_image *img, size_t bytes);

/** Decodes an encoded buffer into img (format sniffed). On failure img is empty and err holds
 *  "cause" (without the file name). */
lvmmed_status lvmmed__image_decode(lvmmed_image *img, const unsigned char *data, size_t size,
                                   char *err, size_t errlen);

/** Reads and decodes a file; on failure err holds "PATH: cause". */
lvmmed_status lvmmed__image_read_path(lvmmed_image *img, const char *path, char *err,
                                      size_t errlen);

/** Number of pages of an encoded buffer (TIFF directories; 1 for other formats). */
lvmmed_status lvmmed__image_count_pages(lvmmed_image *img, const unsigned char *data, size_t size,
                                        uint32_t *pages, char *err, size_t errlen);

/* Per-format decoders, present when the build has the library. They fill img through
 * lvmmed__image_alloc and the metadata fields; on error they leave cleanup to the caller. */
lvmmed_status lvmmed__png_decode(lvmmed_image *img, const unsigned char *data, size_t size,
                                 char *err, size_t errlen);
lvmmed_status lvmmed__tiff_decode(lvmmed_image *img, const unsigned char *data, size_t size,
                                  char *err, size_t errlen);
lvmmed_status lvmmed__tiff_count_pages(lvmmed_image *img, const unsigned char *data, size_t size,
                                       uint32_t *pages, char *err, size_t errlen);
lvmmed_status lvmmed__jpeg_decode(lvmmed_image *img, const unsigned char *data, size_t size,
                                  char *err, size_t errlen);

/* ---- intensity ---- */

/** An affine map v -> clamp((v - lo) * scale, 0, 1) (non-finite v -> 0); identity if !active. */
typedef struct lvmmed__intensity_map {
  int active;
  float lo, scale;
} lvmmed__intensity_map;

/** Validates (policy, a, b); 0 if fine, else writes a message. */
lvmmed_status lvmmed__intensity_check(lvmmed_intensity policy, double a, double b, char *err,
                                      size_t errlen);

/** Computes the map of policy for img's colour channels (first `colour` channels). */
lvmmed_status lvmmed__intensity_map_for(lvmmed_ctx *ctx, const lvmmed_image *img,
                                        uint32_t colour, lvmmed_intensity policy, double a,
                                        double b, lvmmed__intensity_map *map, char *err,
                                        size_t errlen);

/** dst[i] = map(src[i]) for i < n (dst may be src); non-finite values become 0. */
void lvmmed__intensity_apply(const lvmmed__intensity_map *map, const float *src, size_t n, float *dst);

/** Colour channels of an image (channels minus alpha). */
uint32_t lvmmed__image_colour_channels(const lvmmed_image *img);

#endif /* LVMMED_IMAGE_IMPL_H */
