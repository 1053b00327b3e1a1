/* The lvmmed_image handle: options, file reading, format dispatch, queries, channel conversion. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "image/image_impl.h"
#include "lvmmed_config.h"

#define DEFAULT_MAX_PIXELS ((int64_t)1 << 27)
#define DEFAULT_MAX_FILE_BYTES ((int64_t)1 << 30)

lvmmed_status lvmmed__img_error(char *err, size_t errlen, lvmmed_status status, const char *fmt, ...) {
  if (err && errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return status;
}

lvmmed_status lvmmed_image_create(lvmmed_ctx *ctx, lvmmed_image **out) {
  if (!out) return lvmmed__fail(ctx, LVMMED_ERR_INVALID_ARGUMENT, "lvmmed_image_create: out is NULL");
  *out = NULL;
  if (!ctx) return LVMMED_ERR_INVALID_ARGUMENT;
  lvmmed_image *img = lvmmed__calloc(ctx, 1, sizeof *img);
  if (!img) return lvmmed__fail(ctx, LVMMED_ERR_OUT_OF_MEMORY, "lvmmed_image_create: out of memory");
  img->ctx = lvmmed_ctx_retain(ctx);
  img->max_pixels = DEFAULT_MAX_PIXELS;
  img->max_file_bytes = DEFAULT_MAX_FILE_BYTES;
  *out = img;
  return LVMMED_OK;
}

lvmmed_ctx *lvmmed_image_ctx(const lvmmed_image *img) { return img ? img->ctx : NULL; }

void lvmmed_image_free(lvmmed_image *img) {
  if (!img) return;
  lvmmed_ctx *ctx = img->ctx;
  lvmmed__free(ctx, img->data);
  lvmmed__free(ctx, img->scratch);
  lvmmed__free(ctx, img->file);
  lvmmed__free(ctx, img);
  lvmmed_ctx_release(ctx);
}

/* ---- options ---- */

static int option_range(lvmmed_image_option option, int64_t *lo, int64_t *hi) {
  switch (option) {
  case LVMMED_IMAGE_OPT_MAX_PIXELS: *lo = 1; *hi = (int64_t)1 << 40; return 1;
  case LVMMED_IMAGE_OPT_MAX_FILE_BYTES: *lo = 1; *hi = (int64_t)1 << 40; return 1;
  case LVMMED_IMAGE_OPT_PAGE: *lo = 0; *hi = 65535; return 1;
  }
  return 0;
}

lvmmed_status lvmmed_image_option_bounds(lvmmed_image_option option, int64_t *min_value,
                                         int64_t *max_value) {
  int64_t lo, hi;
  if (!option_range(option, &lo, &hi)) return LVMMED_ERR_INVALID_ARGUMENT;
  if (min_value) *min_value = lo;
  if (max_value) *max_value = hi;
  return LVMMED_OK;
}

lvmmed_status lvmmed_image_set_option(lvmmed_image *img, lvmmed_image_option option, int64_t value) {
  if (!img) return LVMMED_ERR_INVALID_ARGUMENT;
  int64_t lo, hi;
  if (!option_range(option, &lo, &hi))
    return lvmmed__fail(img->ctx, LVMMED_ERR_INVALID_ARGUMENT, "lvmmed_image_set_option: unknown option %d",
                        (int)option);
  if (value < lo || value > hi)
    return lvmmed__fail(img->ctx, LVMMED_ERR_OUT_OF_RANGE,
                        "lvmmed_image_set_option: option %d = %lld outside [%lld, %lld]", (int)option,
                        (long long)value, (long long)lo, (long long)hi);
  switch (option) {
  case LVMMED_IMAGE_OPT_MAX_PIXELS: img->max_pixels = value; break;
  case LVMMED_IMAGE_OPT_MAX_FILE_BYTES: img->max_file_bytes = value; break;
  case LVMMED_IMAGE_OPT_PAGE: img->page = value; break;
  }
  return LVMMED_OK;
}

lvmmed_status lvmmed_image_get_option(const lvmmed_image *img, lvmmed_image_option option,
                                      int64_t *value) {
  if (!img || !value) return lvmmed__fail(img ? img->ctx : NULL, LVMMED_ERR_INVALID_ARGUMENT,
                                          "lvmmed_image_get_option: NULL argument");
  switch (option) {
  case LVMMED_IMAGE_OPT_MAX_PIXELS: *value = img->max_pixels; return LVMMED_OK;
  case LVMMED_IMAGE_OPT_MAX_FILE_BYTES: *value = img->max_file_bytes; return LVMMED_OK;
  case LVMMED_IMAGE_OPT_PAGE: *value = img->page; return LVMMED_OK;
  }
  return lvmmed__fail(img->ctx, LVMMED_ERR_INVALID_ARGUMENT, "lvmmed_image_get_option: unknown option %d",
                      (int)option);
}

/* ---- buffers ---- */

void lvmmed__image_clear(lvmmed_image *img) {
  img->width = img->height = img->channels = 0;
  img->pages = img->page_read = 0;
  img->bit_depth = 0;
  img->sample = LVMMED_SAMPLE_NONE;
  img->format = LVMMED_IMAGE_FORMAT_NONE;
  img->has_alpha = img->palette = 0;
}

lvmmed_status lvmmed__image_check_size(const lvmmed_image *img, uint64_t width, uint64_t height,
                                       const char *what, char *err, size_t errlen) {
  if (width == 0 || height == 0)
    return lvmmed__img_error(err, errlen, LVMMED_ERR_FORMAT, "%s: empty image (%llu x %llu)", what,
                             (unsigned long long)width, (unsigned long long)height);
  if (width > INT32_MAX || height > INT32_MAX || width * height > (uint64_t)img->max_pixels)
    return lvmmed__img_error(err, errlen, LVMMED_ERR_LIMIT,
                             "%s: %llu x %llu pixels exceed the limit of %lld pixels", what,
                             (unsigned long long)width, (unsigned long long)height,
                             (long long)img->max_pixels);
  return LVMMED_OK;
}

float *lvmmed__image_alloc(lvmmed_image *img, uint32_t channels, uint32_t height, uint32_t width) {
  size_t n;
  if (!lvmmed__mul_size(channels, height, &n) || !lvmmed__mul_size(n, width, &n)) return NULL;
  if (n > SIZE_MAX / sizeof(float)) return NULL;
  if (n > img->data_cap) {
    float *p = lvmmed__alloc(img->ctx, n * sizeof(float));
    if (!p) return NULL;
    lvmmed__free(img->ctx, img->data);
    img->data = p;
    img->data_cap = n;
  }
  img->channels = channels;
  img->height = height;
  img->width = width;
  return img->data;
}

void *lvmmed__image_scratch(lvmmed_image *img, size_t bytes) {
  if (bytes > img->scratch_cap) {
    unsigned char *p = lvmmed__alloc(img->ctx, bytes);
    if (!p) return NULL;
    lvmmed__free(img->ctx, img->scratch);
    img->scratch = p;
    img->scratch_cap = bytes;
  }
  return img->scratch;
}

/* ---- formats ---- */

lvmmed_image_format lvmmed_image_detect_format(const void *data, size_t size) {
  const unsigned char *p = data;
  if (!p) return LVMMED_IMAGE_FORMAT_NONE;
  static const unsigned char png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (size >= 8 && !memcmp(p, png_sig, 8)) return LVMMED_IMAGE_FORMAT_PNG;
  if (size >= 4 && ((p[0] == 'I' && p[1] == 'I' && (p[2] == 42 || p[2] == 43) && p[3] == 0) ||
                    (p[0] == 'M' && p[1] == 'M' && p[2] == 0 && (p[3] == 42 || p[3] == 43))))
    return LVMMED_IMAGE_FORMAT_TIFF;
  if (size >= 3 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff) return LVMMED_IMAGE_FORMAT_JPEG;
  return LVMMED_IMAGE_FORMAT_NONE;
}

int lvmmed_image_format_available(lvmmed_image_format f) {
  switch (f) {
  case LVMMED_IMAGE_FORMAT_PNG: return LVMMED_HAVE_PNG;
  case LVMMED_IMAGE_FORMAT_TIFF: return LVMMED_HAVE_TIFF;
  case LVMMED_IMAGE_FORMAT_JPEG: return LVMMED_HAVE_JPEG;
  case LVMMED_IMAGE_FORMAT_RAW: return 1;
  case LVMMED_IMAGE_FORMAT_NONE: return 0;
  }
  return 0;
}

const char *lvmmed_image_format_name(lvmmed_image_format f) {
  switch (f) {
  case LVMMED_IMAGE_FORMAT_NONE: return "none";
  case LVMMED_IMAGE_FORMAT_PNG: return "png";
  case LVMMED_IMAGE_FORMAT_TIFF: return "tiff";
  case LVMMED_IMAGE_FORMAT_JPEG: return "jpeg";
  case LVMMED_IMAGE_FORMAT_RAW: return "raw";
  }
  return "unknown";
}

const char *lvmmed_sample_format_name(lvmmed_sample_format f) {
  switch (f) {
  case LVMMED_SAMPLE_NONE: return "none";
  case LVMMED_SAMPLE_UINT: return "uint";
  case LVMMED_SAMPLE_INT: return "int";
  case LVMMED_SAMPLE_FLOAT: return "float";
  }
  return "unknown";
}

#if !LVMMED_HAVE_PNG || !LVMMED_HAVE_TIFF || !LVMMED_HAVE_JPEG
static lvmmed_status unsupported(const char *name, char *err, size_t errlen) {
  return lvmmed__img_error(err, errlen, LVMMED_ERR_UNSUPPORTED,
                           "%s decoding is not available in this build of liblvmmed", name);
}
#endif

lvmmed_status lvmmed__image_decode(lvmmed_image *img, const unsigned char *data, size_t size,
                                   char *err, size_t errlen) {
  lvmmed__image_clear(img);
  lvmmed_status st;
  switch (lvmmed_image_detect_format(data, size)) {
  case LVMMED_IMAGE_FORMAT_PNG:
#if LVMMED_HAVE_PNG
    st = lvmmed__png_decode(img, data, size, err, errlen);
#else
    st = unsupported("PNG", err, errlen);
#endif
    break;
  case LVMMED_IMAGE_FORMAT_TIFF:
#if LVMMED_HAVE_TIFF
    st = lvmmed__tiff_decode(img, data, size, err, errlen);
#else
    st = unsupported("TIFF", err, errlen);
#endif
    break;
  case LVMMED_IMAGE_FORMAT_JPEG:
#if LVMMED_HAVE_JPEG
    st = lvmmed__jpeg_decode(img, data, size, err, errlen);
#else
    st = unsupported("JPEG", err, errlen);
#endif
    break;
  default:
    st = lvmmed__img_error(err, errlen, LVMMED_ERR_FORMAT,
                           size == 0 ? "empty file" : "not a PNG, TIFF or JPEG file (unknown signature)");
    break;
  }
  if (st != LVMMED_OK) lvmmed__image_clear(img);
  return st;
}

lvmmed_status lvmmed__image_count_pages(lvmmed_image *img, const unsigned char *data, size_t size,
                                        uint32_t *pages, char *err, size_t errlen) {
  switch (lvmmed_image_detect_format(data, size)) {
  case LVMMED_IMAGE_FORMAT_TIFF:
#if LVMMED_HAVE_TIFF
    return lvmmed__tiff_count_pages(img, data, size, pages, err, errlen);
#else
    return unsupported("TIFF", err, errlen);
#endif
  case LVMMED_IMAGE_FORMAT_PNG:
  case LVMMED_IMAGE_FORMAT_JPEG:
    *pages = 1;
    return LVMMED_OK;
  default:
    return lvmmed__img_error(err, errlen, LVMMED_ERR_FORMAT, "not a PNG, TIFF or JPEG file");
  }
}

/* Reads a whole regular file into img->file; *size gets its length. */
static lvmmed_status slurp(lvmmed_image *img, const char *path, size_t *size, char *err, size_t errlen) {
  char why[128];
  FILE *f = fopen(path, "rb");
  if (!f) {
    int e = errno;
    return lvmmed__img_error(err, errlen, e == ENOENT ? LVMMED_ERR_NOT_FOUND : LVMMED_ERR_IO,
                             "%s: cannot open: %s", path, strerror_r(e, why, sizeof why));
  }
  struct stat sb;
  lvmmed_status st = LVMMED_OK;
  if (fstat(fileno(f), &sb) != 0) {
    st = lvmmed__img_error(err, errlen, LVMMED_ERR_IO, "%s: cannot stat: %s", path,
                           strerror_r(errno, why, sizeof why));
  } else if (!S_ISREG(sb.st_mode)) {
    st = lvmmed__img_error(err, errlen, LVMMED_ERR_IO, "%s: not a regular file", path);
  } else if ((uint64_t)sb.st_size > (uint64_t)img->max_file_bytes || (uint64_t)sb.st_size >= SIZE_MAX) {
    st = lvmmed__img_error(err, errlen, LVMMED_ERR_LIMIT, "%s: %lld bytes exceed the file size limit of %lld",
                           path, (long long)sb.st_size, (long long)img->max_file_bytes);
  } else {
    size_t want = (size_t)sb.st_size;
    if (want + 1 > img->file_cap) {
      unsigned char *p = lvmmed__alloc(img->ctx, want + 1);
      if (!p) {
        st = lvmmed__img_error(err, errlen, LVMMED_ERR_OUT_OF_MEMORY, "%s: out of memory for %zu bytes",
                               path, want);
      } else {
        lvmmed__free(img->ctx, img->file);
        img->file = p;
        img->file_cap = want + 1;
      }
    }
    if (st == LVMMED_OK) {
      size_t got = fread(img->file, 1, want, f);
      if (got != want || ferror(f))
        st = lvmmed__img_error(err, errlen, LVMMED_ERR_IO, "%s: read %zu of %zu bytes", path, got, want);
      *size = got;
    }
  }
  fclose(f);
  return st;
}

lvmmed_status lvmmed__image_read_path(lvmmed_image *img, const char *path, char *err, size_t errlen) {
  size_t size = 0;
  lvmmed__image_clear(img);
  lvmmed_status st = slurp(img, path, &size, err, errlen);
  if (st != LVMMED_OK) return st;
  char cause[LVMMED_IMG_ERR_MAX];
  st = lvmmed__image_decode(img, img->file, size, cause, sizeof cause);
  if (st != LVMMED_OK) lvmmed__img_error(err, errlen, st, "%s: %s", path, cause);
  return st;
}

lvmmed_status lvmmed_image_read_file(lvmmed_image *img, const char *path) {
  if (!img) return LVMMED_ERR_INVALID_ARGUMENT;
  if (!path) return lvmmed__fail(img->ctx, LVMMED_ERR_INVALID_ARGUMENT, "lvmmed_image_read_file: path is NULL");
  char err[LVMMED_IMG_ERR_MAX + 64];
  lvmmed_status st = lvmmed__image_read_path(img, path, err, sizeof err);
  if (st != LVMMED_OK) return lvmmed__fail(img->ctx, st, "lvmmed_image_read_file: %s", err);
  return LVMMED_OK;
}

lvmmed_status lvmmed_image_read_memory(lvmmed_image *img, const void *data, size_t size, const char *name) {
  if (!img) return LVMMED_ERR_INVALID_ARGUMENT;
  if (!name) name = "<memory>";
  if (!data && size) {
    lvmmed__image_clear(img);
    return lvmmed__fail(img->ctx, LVMMED_ERR_INVALID_ARGUMENT, "lvmmed_image_read_memory: %s: data is NULL",
                        name);
  }
  char err[LVMMED_IMG_ERR_MAX];
  lvmmed_status st = lvmmed__image_decode(img, data, size, err, sizeof err);
  if (st != LVMMED_OK) return lvmmed__fail(img->ctx, st, "lvmmed_image_read_memory: %s: %s", name, err);
  return LVMMED_OK;
}

lvmmed_status lvmmed_image_set_pixels(lvmmed_image *img, const float *data, int64_t channels, int64_t height,
                                      int64_t width) {
  if (!img) return LVMMED_ERR_INVALID_ARGUMENT;
  if (!data || channels < 1 || channels > 64 || height < 1 || width < 1 || height > INT32_MAX ||
      width > INT32_MAX)
    return lvmmed__fail(img->ctx, LVMMED_ERR_INVALID_ARGUMENT,
                        "lvmmed_image_set_pixels: bad arguments (data %s, %lld x %lld x %lld)",
                        data ? "set" : "NULL", (long long)channels, (long long)height, (long long)width);
  char err[LVMMED_IMG_ERR_MAX];
  lvmmed_status st = lvmmed__image_check_size(img, (uint64_t)width, (uint64_t)height, "pixels", err, sizeof err);
  if (st != LVMMED_OK) return lvmmed__fail(img->ctx, st, "lvmmed_image_set_pixels: %s", err);
  lvmmed__image_clear(img);
  float *dst = lvmmed__image_alloc(img, (uint32_t)channels, (uint32_t)height, (uint32_t)width);
  if (!dst) {
    lvmmed__image_clear(img);
    return lvmmed__fail(img->ctx, LVMMED_ERR_OUT_OF_MEMORY, "lvmmed_image_set_pixels: out of memory");
  }
  memmove(dst, data, (size_t)channels * (size_t)height * (size_t)width * sizeof(float));
  img->pages = 1;
  img->bit_depth = 32;
  img->sample = LVMMED_SAMPLE_FLOAT;
  img->format = LVMMED_IMAGE_FORMAT_RAW;
  return LVMMED_OK;
}

/* ---- queries ---- */

lvmmed_status lvmmed_image_get(const lvmmed_image *img, lvmmed_image_property property, int64_t *value) {
  if (!img || !value)
    return lvmmed__fail(img ? img->ctx : NULL, LVMMED_ERR_INVALID_ARGUMENT, "lvmmed_image_get: NULL argument");
  switch (property) {
  case LVMMED_IMAGE_WIDTH: *value = img->width; return LVMMED_OK;
  case LVMMED_IMAGE_HEIGHT: *value = img->height; return LVMMED_OK;
  case LVMMED_IMAGE_CHANNELS: *value = img->channels; return LVMMED_OK;
  case LVMMED_IMAGE_PAGES: *value = img->pages; return LVMMED_OK;
  case LVMMED_IMAGE_PAGE: *value = img->page_read; return LVMMED_OK;
  case LVMMED_IMAGE_BIT_DEPTH: *value = img->bit_depth; return LVMMED_OK;
  case LVMMED_IMAGE_SAMPLE_FORMAT: *value = img->sample; return LVMMED_OK;
  case LVMMED_IMAGE_FORMAT: *value = img->format; return LVMMED_OK;
  case LVMMED_IMAGE_HAS_ALPHA: *value = img->has_alpha; return LVMMED_OK;
  case LVMMED_IMAGE_PALETTE: *value = img->palette; return LVMMED_OK;
  }
  return lvmmed__fail(img->ctx, LVMMED_ERR_INVALID_ARGUMENT, "lvmmed_image_get: unknown property %d",
                      (int)property);
}

const float *lvmmed_image_data(const lvmmed_image *img) {
  return img && img->width ? img->data : NULL;
}

uint32_t lvmmed__image_colour_channels(const lvmmed_image *img) {
  return img->channels - (img->has_alpha && img->channels > 1 ? 1u : 0u);
}

/* min/max over the first `colour` channels, finite values only; 0 if none is finite. */
static int finite_range(const lvmmed_image *img, double *lo, double *hi) {
  size_t n = (size_t)lvmmed__image_colour_channels(img) * img->height * img->width;
  float mn = INFINITY, mx = -INFINITY;
  for (size_t i = 0; i < n; i++) {
    float v = img->data[i];
    if (!isfinite(v)) continue;
    if (v < mn) mn = v;
    if (v > mx) mx = v;
  }
  if (mn > mx) return 0;
  *lo = mn;
  *hi = mx;
  return 1;
}

lvmmed_status lvmmed_image_range(const lvmmed_image *img, double *min_value, double *max_value) {
  if (!img || !min_value || !max_value)
    return lvmmed__fail(img ? img->ctx : NULL, LVMMED_ERR_INVALID_ARGUMENT, "lvmmed_image_range: NULL argument");
  if (!img->width) return lvmmed__fail(img->ctx, LVMMED_ERR_STATE, "lvmmed_image_range: the image is empty");
  if (!finite_range(img, min_value, max_value))
    return lvmmed__fail(img->ctx, LVMMED_ERR_STATE, "lvmmed_image_range: no finite pixel value");
  return LVMMED_OK;
}

lvmmed_status lvmmed_image_nominal_range(const lvmmed_image *img, double *min_value, double *max_value) {
  if (!img || !min_value || !max_value)
    return lvmmed__fail(img ? img->ctx : NULL, LVMMED_ERR_INVALID_ARGUMENT,
                        "lvmmed_image_nominal_range: NULL argument");
  if (!img->width) return lvmmed__fail(img->ctx, LVMMED_ERR_STATE, "lvmmed_image_nominal_range: the image is empty");
  int bits = img->bit_depth;
  if (img->sample == LVMMED_SAMPLE_UINT && bits >= 1 && bits <= 32) {
    *min_value = 0.0;
    *max_value = ldexp(1.0, bits) - 1.0;
    return LVMMED_OK;
  }
  if (img->sample == LVMMED_SAMPLE_INT && bits >= 2 && bits <= 32) {
    *min_value = -ldexp(1.0, bits - 1);
    *max_value = ldexp(1.0, bits - 1) - 1.0;
    return LVMMED_OK;
  }
  if (!finite_range(img, min_value, max_value))
    return lvmmed__fail(img->ctx, LVMMED_ERR_STATE, "lvmmed_image_nominal_range: no finite pixel value");
  return LVMMED_OK;
}

/* ---- channel conversion ---- */

lvmmed_status lvmmed_image_convert_channels(lvmmed_image *img, int64_t channels) {
  if (!img) return LVMMED_ERR_INVALID_ARGUMENT;
  if (channels != 1 && channels != 3)
    return lvmmed__fail(img->ctx, LVMMED_ERR_INVALID_ARGUMENT,
                        "lvmmed_image_convert_channels: channels = %lld, expected 1 or 3", (long long)channels);
  if (!img->width) return lvmmed__fail(img->ctx, LVMMED_ERR_STATE, "lvmmed_image_convert_channels: the image is empty");
  uint32_t c = img->channels;
  int alpha = img->has_alpha || c == 2 || c == 4;
  uint32_t colour = alpha ? c - 1 : c;
  if (colour != 1 && colour != 3)
    return lvmmed__fail(img->ctx, LVMMED_ERR_UNSUPPORTED,
                        "lvmmed_image_convert_channels: %u channels (%u colour) cannot be converted", c, colour);
  size_t plane = (size_t)img->height * img->width;
  float *d = img->data;
  if (colour == (uint32_t)channels) {
    img->channels = colour;
  } else if (channels == 3) { /* gray -> RGB: replicate plane 0 */
    if (3 * plane > img->data_cap) {
      float *p = lvmmed__alloc(img->ctx, 3 * plane * sizeof(float));
      if (!p) return lvmmed__fail(img->ctx, LVMMED_ERR_OUT_OF_MEMORY, "lvmmed_image_convert_channels: out of memory");
      memcpy(p, d, plane * sizeof(float));
      lvmmed__free(img->ctx, img->data);
      img->data = d = p;
      img->data_cap = 3 * plane;
    }
    memcpy(d + plane, d, plane * sizeof(float));
    memcpy(d + 2 * plane, d, plane * sizeof(float));
    img->channels = 3;
  } else { /* RGB -> gray, the torchvision expression order */
    for (size_t i = 0; i < plane; i++)
      d[i] = 0.2989f * d[i] + 0.587f * d[plane + i] + 0.114f * d[2 * plane + i];
    img->channels = 1;
    img->sample = LVMMED_SAMPLE_FLOAT; /* weighted sums are no longer the stored integers */
    img->bit_depth = 32;
    img->palette = 0;
  }
  img->has_alpha = 0;
  return LVMMED_OK;
}
