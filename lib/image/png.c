/* PNG decoding through libpng: original sample values, palette and tRNS expanded by hand.
 *
 * libpng reports errors by longjmp. All state that must survive the jump
 * lives in a png_job owned by lvmmed__png_decode, which is not the function
 * that calls setjmp, so none of it is indeterminate after the jump.
 */
#include <png.h>
#include <setjmp.h>
#include <string.h>

#include "image/image_impl.h"

typedef struct png_job {
  lvmmed_image *img;
  const unsigned char *data;
  size_t size, pos;
  lvmmed_status status; /* first failure; OK while decoding goes well */
  char *err;
  size_t errlen;
  png_bytep *rows; /* row pointers, freed by the owner */
} png_job;

static void job_fail(png_job *job, lvmmed_status st, const char *msg) {
  if (job->status != LVMMED_OK) return; /* keep the first cause */
  job->status = st;
  lvmmed__img_error(job->err, job->errlen, st, "PNG: %s", msg);
}

static void on_error(png_structp png, png_const_charp msg) {
  job_fail(png_get_error_ptr(png), LVMMED_ERR_FORMAT, msg);
  png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg) {
  (void)png; /* benign problems (a damaged ancillary chunk is dropped by libpng) */
  (void)msg;
}

static png_voidp on_alloc(png_structp png, png_alloc_size_t size) {
  png_job *job = png_get_mem_ptr(png);
  return lvmmed__alloc(job->img->ctx, size);
}

static void on_free(png_structp png, png_voidp ptr) {
  png_job *job = png_get_mem_ptr(png);
  lvmmed__free(job->img->ctx, ptr);
}

static void on_read(png_structp png, png_bytep out, size_t n) {
  png_job *job = png_get_io_ptr(png);
  if (n > job->size - job->pos) {
    char msg[96];
    snprintf(msg, sizeof msg, "truncated file (%zu bytes, more data needed at offset %zu)", job->size,
             job->pos);
    job_fail(job, LVMMED_ERR_FORMAT, msg);
    png_error(png, "truncated");
  }
  memcpy(out, job->data + job->pos, n);
  job->pos += n;
}

/* Sample s of row y (after png_set_packing: one byte per sample below 8 bits). */
static inline unsigned sample_at(const png_bytep row, size_t s, int depth) {
  return depth == 16 ? ((unsigned)row[2 * s] << 8) | row[2 * s + 1] : row[s];
}

/* Converts the raw rows into planar floats; returns 0 after job_fail. */
static int convert(png_job *job, png_structp png, png_infop info, uint32_t w, uint32_t h, int depth,
                   int ctype) {
  lvmmed_image *img = job->img;
  png_colorp plte = NULL;
  int nplte = 0;
  png_bytep trans_alpha = NULL;
  int ntrans = 0;
  png_color_16p trans_color = NULL;
  if (ctype == PNG_COLOR_TYPE_PALETTE && !png_get_PLTE(png, info, &plte, &nplte)) {
    job_fail(job, LVMMED_ERR_FORMAT, "palette image without a PLTE chunk");
    return 0;
  }
  int has_trns = png_get_valid(png, info, PNG_INFO_tRNS) &&
                 png_get_tRNS(png, info, &trans_alpha, &ntrans, &trans_color);
  int in_ch = png_get_channels(png, info); /* 1 for palette indices */
  int colour = ctype == PNG_COLOR_TYPE_PALETTE ? 3 : (ctype & PNG_COLOR_MASK_COLOR ? 3 : 1);
  int alpha = (ctype & PNG_COLOR_MASK_ALPHA) || (has_trns && (ctype != PNG_COLOR_TYPE_PALETTE || ntrans > 0));
  uint32_t out_ch = (uint32_t)(colour + alpha);
  float *dst = lvmmed__image_alloc(img, out_ch, h, w);
  if (!dst) {
    job_fail(job, LVMMED_ERR_OUT_OF_MEMORY, "out of memory for the pixels");
    return 0;
  }
  size_t plane = (size_t)w * h;
  float opaque = (float)((1u << depth) - 1u);
  for (uint32_t y = 0; y < h; y++) {
    const png_bytep row = job->rows[y];
    size_t o = (size_t)y * w;
    if (ctype == PNG_COLOR_TYPE_PALETTE) {
      for (uint32_t x = 0; x < w; x++) {
        unsigned idx = row[x];
        if ((int)idx >= nplte) {
          char msg[80];
          snprintf(msg, sizeof msg, "palette index %u out of range (%d entries)", idx, nplte);
          job_fail(job, LVMMED_ERR_FORMAT, msg);
          return 0;
        }
        dst[o + x] = plte[idx].red;
        dst[plane + o + x] = plte[idx].green;
        dst[2 * plane + o + x] = plte[idx].blue;
        if (alpha) dst[3 * plane + o + x] = (int)idx < ntrans ? trans_alpha[idx] : 255.0f;
      }
      continue;
    }
    if (in_ch == 1 && !alpha) { /* the common gray case, without per-sample branches */
      float *d = dst + o;
      if (depth == 16)
        for (uint32_t x = 0; x < w; x++) d[x] = (float)(((unsigned)row[2 * x] << 8) | row[2 * x + 1]);
      else
        for (uint32_t x = 0; x < w; x++) d[x] = (float)row[x];
      continue;
    }
    for (uint32_t x = 0; x < w; x++) {
      size_t s = (size_t)x * in_ch;
      for (int c = 0; c < in_ch; c++) dst[c * plane + o + x] = (float)sample_at(row, s + c, depth);
      if (alpha && !(ctype & PNG_COLOR_MASK_ALPHA)) {
        int transparent;
        if (colour == 1)
          transparent = sample_at(row, s, depth) == trans_color->gray;
        else
          transparent = sample_at(row, s, depth) == trans_color->red &&
                        sample_at(row, s + 1, depth) == trans_color->green &&
                        sample_at(row, s + 2, depth) == trans_color->blue;
        dst[colour * plane + o + x] = transparent ? 0.0f : opaque;
      }
    }
  }
  img->bit_depth = ctype == PNG_COLOR_TYPE_PALETTE ? 8 : depth;
  img->palette = ctype == PNG_COLOR_TYPE_PALETTE;
  img->has_alpha = alpha;
  return 1;
}

static void decode_body(png_structp png, png_infop info, png_job *job) {
  lvmmed_image *img = job->img;
  png_set_read_fn(png, job, on_read);
  png_set_user_limits(png, 0x7fffffffu, 0x7fffffffu); /* our own limit is checked below */
  png_read_info(png, info);
  png_uint_32 w, h;
  int depth, ctype, interlace;
  png_get_IHDR(png, info, &w, &h, &depth, &ctype, &interlace, NULL, NULL);
  char msg[LVMMED_IMG_ERR_MAX];
  lvmmed_status st = lvmmed__image_check_size(img, w, h, "PNG", msg, sizeof msg);
  if (st != LVMMED_OK) {
    job->status = st;
    lvmmed__img_error(job->err, job->errlen, st, "%s", msg);
    return;
  }
  if (depth < 8) png_set_packing(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  size_t rowbytes = png_get_rowbytes(png, info), total;
  if (!lvmmed__mul_size(rowbytes, h, &total)) {
    job_fail(job, LVMMED_ERR_LIMIT, "row buffer size overflows");
    return;
  }
  unsigned char *raw = lvmmed__image_scratch(img, total);
  job->rows = lvmmed__calloc(img->ctx, h, sizeof *job->rows);
  if (!raw || !job->rows) {
    job_fail(job, LVMMED_ERR_OUT_OF_MEMORY, "out of memory for the rows");
    return;
  }
  for (png_uint_32 y = 0; y < h; y++) job->rows[y] = raw + (size_t)y * rowbytes;
  png_read_image(png, job->rows);
  png_read_end(png, NULL); /* checks the trailing chunks' CRCs and IEND */
  if (!convert(job, png, info, w, h, depth, ctype)) return;
  img->sample = LVMMED_SAMPLE_UINT;
  img->format = LVMMED_IMAGE_FORMAT_PNG;
  img->pages = 1;
  img->page_read = 0;
}

/* The only function that calls setjmp; it changes no local after it. */
static void run(png_structp png, png_infop info, png_job *job) {
  if (setjmp(png_jmpbuf(png))) return;
  decode_body(png, info, job);
}

lvmmed_status lvmmed__png_decode(lvmmed_image *img, const unsigned char *data, size_t size, char *err,
                                 size_t errlen) {
  if (img->page != 0)
    return lvmmed__img_error(err, errlen, LVMMED_ERR_OUT_OF_RANGE, "PNG: page %lld requested, the file has 1",
                             (long long)img->page);
  png_job job = {.img = img, .data = data, .size = size, .status = LVMMED_OK, .err = err, .errlen = errlen};
  png_structp png = png_create_read_struct_2(PNG_LIBPNG_VER_STRING, &job, on_error, on_warning, &job,
                                             on_alloc, on_free);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  if (!png || !info) {
    png_destroy_read_struct(png ? &png : NULL, NULL, NULL);
    return lvmmed__img_error(err, errlen, LVMMED_ERR_OUT_OF_MEMORY, "PNG: cannot create the decoder");
  }
  run(png, info, &job);
  png_destroy_read_struct(&png, &info, NULL);
  lvmmed__free(img->ctx, job.rows);
  return job.status;
}
