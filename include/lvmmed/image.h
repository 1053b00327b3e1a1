/* liblvmmed — image input: PNG, TIFF and JPEG decoded to float32 planar pixels.
 *
 * An lvmmed_image holds one decoded page (slice) of an image file as float32
 * values, planar (channel-major): channel c, row y, column x is at
 * data[(c * height + y) * width + x]. Values are the ORIGINAL stored sample
 * values (a 16-bit CT slice keeps 0..65535 or its signed HU, an 8-bit photo
 * keeps 0..255), never normalised on decoding; the bit depth, sample format
 * and nominal range of the source are recorded. Intensity policies
 * (lvmmed_image_apply_intensity) and channel conversion are separate,
 * explicit steps.
 *
 * Formats (each present only when the build found its library; see
 * lvmmed_image_format_available):
 *  - PNG (libpng): bit depth 1/2/4/8/16; gray, gray+alpha, RGB, RGBA,
 *    palette (expanded to RGB, with tRNS to RGBA); tRNS on gray/RGB becomes
 *    an alpha channel (0 where the pixel equals the transparent colour,
 *    else 2^depth - 1); Adam7 interlacing. Gamma, sBIT and colour chunks
 *    are ignored: values are as stored.
 *  - TIFF (libtiff): strips and tiles; 1..32-bit unsigned and signed
 *    integers, 32/64-bit IEEE float; min-is-black, min-is-white (inverted to
 *    min-is-black for unsigned samples, as most viewers show it), RGB
 *    (contiguous or planar), palette (expanded through the colour map; a map
 *    whose entries all fit 8 bits is taken as 8-bit), YCbCr (JPEG-compressed
 *    ones are converted to RGB by libjpeg); every compression libtiff was
 *    built with (none, LZW, Deflate, PackBits, JPEG, ...); either byte order.
 *    Each page (IFD) of a multi-page file is its own slice, selected with
 *    LVMMED_IMAGE_OPT_PAGE. Extra samples are kept as further channels.
 *  - JPEG (libjpeg-turbo): 8-bit baseline and progressive, gray or colour
 *    (converted to RGB by libjpeg). CMYK/YCCK JPEGs are refused. Any warning
 *    of the decoder (corrupt or truncated data) is an error: a damaged file
 *    never yields a partly grey image.
 * EXIF orientation is not applied: pixels are returned in stored order.
 *
 * Failures leave the image empty (width 0) and record a message naming the
 * file (or the name given for a memory buffer) and the cause. Decoding is
 * guarded by a pixel-count limit against decompression bombs.
 *
 * Threading: an image is used by one thread at a time; distinct images
 * decode concurrently (libpng, libtiff and libjpeg state is per call).
 */
#ifndef LVMMED_IMAGE_H
#define LVMMED_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include <lvmmed/ctx.h>
#include <lvmmed/export.h>
#include <lvmmed/status.h>

LVMMED_EXTERN_C_BEGIN

/** Opaque image: decoding options, the last decoded page and reusable buffers. */
typedef struct lvmmed_image lvmmed_image;

/** File formats. Values are stable. */
typedef enum lvmmed_image_format {
  LVMMED_IMAGE_FORMAT_NONE = 0, /**< no pixels (a new or failed image) */
  LVMMED_IMAGE_FORMAT_PNG = 1,
  LVMMED_IMAGE_FORMAT_TIFF = 2,
  LVMMED_IMAGE_FORMAT_JPEG = 3,
  LVMMED_IMAGE_FORMAT_RAW = 4 /**< pixels given by lvmmed_image_set_pixels */
} lvmmed_image_format;

/** How the source stored its samples. Values are stable. */
typedef enum lvmmed_sample_format {
  LVMMED_SAMPLE_NONE = 0,
  LVMMED_SAMPLE_UINT = 1,  /**< unsigned integers */
  LVMMED_SAMPLE_INT = 2,   /**< two's-complement signed integers */
  LVMMED_SAMPLE_FLOAT = 3  /**< IEEE floating point */
} lvmmed_sample_format;

/** Enum-keyed decoding options (see lvmmed_image_option_bounds). */
typedef enum lvmmed_image_option {
  /** Largest width * height of a page that will be decoded; larger ones fail with
   *  LVMMED_ERR_LIMIT before any pixel memory is allocated. Default 2^27 (134 Mpixel). */
  LVMMED_IMAGE_OPT_MAX_PIXELS = 1,
  /** Largest file lvmmed_image_read_file reads, in bytes. Default 2^30 (1 GiB). */
  LVMMED_IMAGE_OPT_MAX_FILE_BYTES = 2,
  /** Page (TIFF directory, 0-based) decoded by the next read. Default 0. A page past
   *  the last gives LVMMED_ERR_OUT_OF_RANGE. PNG and JPEG have one page. */
  LVMMED_IMAGE_OPT_PAGE = 3
} lvmmed_image_option;

/** Read-only facts about the decoded page (lvmmed_image_get). */
typedef enum lvmmed_image_property {
  LVMMED_IMAGE_WIDTH = 1,
  LVMMED_IMAGE_HEIGHT = 2,
  LVMMED_IMAGE_CHANNELS = 3,      /**< after palette expansion, alpha included */
  LVMMED_IMAGE_PAGES = 4,         /**< pages in the file (1 for PNG/JPEG) */
  LVMMED_IMAGE_PAGE = 5,          /**< the page these pixels come from */
  LVMMED_IMAGE_BIT_DEPTH = 6,     /**< bits per stored sample value (palette: of the colour map) */
  LVMMED_IMAGE_SAMPLE_FORMAT = 7, /**< an lvmmed_sample_format */
  LVMMED_IMAGE_FORMAT = 8,        /**< an lvmmed_image_format */
  LVMMED_IMAGE_HAS_ALPHA = 9,     /**< 1 if the last channel is alpha (opacity) */
  LVMMED_IMAGE_PALETTE = 10       /**< 1 if values were looked up in a palette / colour map */
} lvmmed_image_property;

/** Intensity policies of lvmmed_image_apply_intensity. Values are stable. */
typedef enum lvmmed_intensity {
  /** Keep the values. */
  LVMMED_INTENSITY_NONE = 0,
  /** Map the nominal range of the sample type to [0, 1] (8-bit: v / 255; 16-bit: v / 65535;
   *  signed: (v - min) / (max - min); float: as MINMAX). */
  LVMMED_INTENSITY_TYPE_RANGE = 1,
  /** Map [min, max] of the pixels to [0, 1] (a constant image becomes 0). */
  LVMMED_INTENSITY_MINMAX = 2,
  /** Map the a-th and b-th percentiles (0 <= a < b <= 100, linear interpolation between
   *  order statistics, as numpy.percentile) to [0, 1] and clip. */
  LVMMED_INTENSITY_PERCENTILE = 3,
  /** Fixed window: level (centre) a and width b > 0, i.e. [a - b/2, a + b/2] to [0, 1],
   *  clipped (CT: level 40, width 400 for soft tissue, in the file's units). */
  LVMMED_INTENSITY_WINDOW = 4,
  /** TYPE_RANGE for unsigned integer samples of at most 8 bits (photographs, masks),
   *  PERCENTILE(a, b) for everything else (16-bit CT/MR, signed, float). */
  LVMMED_INTENSITY_AUTO = 5
} lvmmed_intensity;

/** Creates an empty image with default options. */
LVMMED_API lvmmed_status lvmmed_image_create(lvmmed_ctx *ctx, lvmmed_image **out);

/** Frees the image and its pixels. NULL is a no-op. */
LVMMED_API void lvmmed_image_free(lvmmed_image *img);

/** The context img reports errors to (borrowed; NULL for NULL). */
LVMMED_API lvmmed_ctx *lvmmed_image_ctx(const lvmmed_image *img);

/** Sets a decoding option; out-of-range values give LVMMED_ERR_OUT_OF_RANGE. */
LVMMED_API lvmmed_status lvmmed_image_set_option(lvmmed_image *img, lvmmed_image_option option,
                                                 int64_t value);

/** Reads a decoding option into *value. */
LVMMED_API lvmmed_status lvmmed_image_get_option(const lvmmed_image *img,
                                                 lvmmed_image_option option, int64_t *value);

/** Inclusive range accepted by lvmmed_image_set_option for option. */
LVMMED_API lvmmed_status lvmmed_image_option_bounds(lvmmed_image_option option,
                                                    int64_t *min_value, int64_t *max_value);

/**
 * Decodes page LVMMED_IMAGE_OPT_PAGE of the file at path (format from its
 * contents, not its name). Replaces the previous pixels; buffers are reused.
 * Errors: LVMMED_ERR_IO (cannot open/read), LVMMED_ERR_FORMAT (not an
 * image, corrupt, truncated), LVMMED_ERR_UNSUPPORTED (a format or variant
 * this build cannot decode), LVMMED_ERR_LIMIT (too many pixels, file too
 * large), LVMMED_ERR_OUT_OF_RANGE (no such page), LVMMED_ERR_OUT_OF_MEMORY.
 */
LVMMED_API lvmmed_status lvmmed_image_read_file(lvmmed_image *img, const char *path);

/**
 * Like lvmmed_image_read_file for size bytes at data (borrowed for the
 * call). name (may be NULL: "<memory>") is used in error messages.
 */
LVMMED_API lvmmed_status lvmmed_image_read_memory(lvmmed_image *img, const void *data,
                                                  size_t size, const char *name);

/**
 * Replaces the pixels with a copy of channels x height x width planar
 * float32 values (for images decoded elsewhere, e.g. DICOM). The result
 * has format RAW, sample format FLOAT, bit depth 32, one page, no alpha.
 * Non-finite values are allowed and kept.
 */
LVMMED_API lvmmed_status lvmmed_image_set_pixels(lvmmed_image *img, const float *data,
                                                 int64_t channels, int64_t height, int64_t width);

/** Reads a property of the current pixels into *value (0 for an empty image). */
LVMMED_API lvmmed_status lvmmed_image_get(const lvmmed_image *img, lvmmed_image_property property,
                                          int64_t *value);

/**
 * The pixels, channels x height x width float32, planar; NULL for an empty
 * image. Valid until the next call that changes img, or its free.
 */
LVMMED_API const float *lvmmed_image_data(const lvmmed_image *img);

/**
 * Smallest and largest finite value of the current pixels (alpha channel
 * excluded). An empty image, or one without a finite value, gives
 * LVMMED_ERR_STATE.
 */
LVMMED_API lvmmed_status lvmmed_image_range(const lvmmed_image *img, double *min_value,
                                            double *max_value);

/**
 * Range the stored sample type can hold: [0, 2^depth - 1] for unsigned,
 * [-2^(depth-1), 2^(depth-1) - 1] for signed; for float samples the
 * actual finite range (as lvmmed_image_range). Empty image: LVMMED_ERR_STATE.
 */
LVMMED_API lvmmed_status lvmmed_image_nominal_range(const lvmmed_image *img, double *min_value,
                                                    double *max_value);

/**
 * Rescales the colour channels in place by policy (alpha is left as is;
 * statistics ignore alpha and non-finite values; non-finite values become
 * 0). a and b are the policy's parameters (ignored where it has none).
 * Afterwards the image's values are in [0, 1] (NONE: unchanged) and its
 * sample format is FLOAT. Errors: LVMMED_ERR_INVALID_ARGUMENT for a bad
 * policy or parameters (percentiles outside [0, 100] or a >= b; window
 * width <= 0; NaN), LVMMED_ERR_STATE for an empty image.
 */
LVMMED_API lvmmed_status lvmmed_image_apply_intensity(lvmmed_image *img, lvmmed_intensity policy,
                                                      double a, double b);

/**
 * Converts to 1 or 3 channels: alpha is dropped; gray to 3 channels
 * replicates; RGB to 1 channel uses the luma weights
 * 0.2989 R + 0.587 G + 0.114 B (torchvision's rgb_to_grayscale). Two
 * channels are taken as gray+alpha, four as RGBA; five or more channels
 * without alpha give LVMMED_ERR_UNSUPPORTED.
 */
LVMMED_API lvmmed_status lvmmed_image_convert_channels(lvmmed_image *img, int64_t channels);

/** Format of an encoded buffer from its first bytes (NONE if unknown). */
LVMMED_API lvmmed_image_format lvmmed_image_detect_format(const void *data, size_t size);

/** 1 if this build decodes format f, else 0. */
LVMMED_API int lvmmed_image_format_available(lvmmed_image_format f);

/** Lower-case name of a format ("png", "tiff", "jpeg", "raw", "none"), "unknown" otherwise. */
LVMMED_API const char *lvmmed_image_format_name(lvmmed_image_format f);

/** Lower-case name of a sample format ("uint", "int", "float", "none"), "unknown" otherwise. */
LVMMED_API const char *lvmmed_sample_format_name(lvmmed_sample_format f);

LVMMED_EXTERN_C_END

#endif /* LVMMED_IMAGE_H */
