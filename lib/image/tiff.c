/* TIFF decoding through libtiff, from memory, one page (IFD) at a time.
 *
 * libtiff decompresses strips/tiles and swaps byte order; the samples are
 * unpacked here (any integer depth up to 32 bits, float 32/64), so the
 * original values reach the caller. Uncommon photometric interpretations
 * (CMYK, CIELab, YCbCr without JPEG, old-style JPEG) go through libtiff's
 * RGBA interface and come out as 8-bit RGB(A).
 *
 * libtiff's messages go to per-call handlers (TIFFOpenOptions): nothing is
 * printed and concurrent decodes do not share state.
 */
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <tiffio.h>

#include "image/image_impl.h"

typedef struct tiff_job {
  lvmmed_image *img;
  const unsigned char *data;
  uint64_t size, pos;
  int failed;
  char msg[LVMMED_IMG_ERR_MAX - 16]; /* first libtiff error */
} tiff_job;

/* ---- client I/O over a memory buffer ---- */

static tmsize_t io_read(thandle_t h, void *buf, tmsize_t n) {
  tiff_job *job = (tiff_job *)h;
  if (n <= 0 || job->pos >= job->size) return 0;
  uint64_t left = job->size - job->pos;
  uint64_t take = (uint64_t)n < left ? (uint64_t)n : left;
  memcpy(buf, job->data + job->pos, (size_t)take);
  job->pos += take;
  return (tmsize_t)take;
}

static tmsize_t io_write(thandle_t h, void *buf, tmsize_t n) {
  (void)h;
  (void)buf;
  (void)n;
  return -1;
}

static toff_t io_seek(thandle_t h, toff_t off, int whence) {
  tiff_job *job = (tiff_job *)h;
  uint64_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? job->pos : job->size;
  if (whence != SEEK_SET && whence != SEEK_CUR && whence != SEEK_END) return (toff_t)-1;
  if (off > UINT64_MAX - base) return (toff_t)-1;
  job->pos = base + off;
  return job->pos;
}

static int io_close(thandle_t h) {
  (void)h;
  return 0;
}

static toff_t io_size(thandle_t h) { return ((tiff_job *)h)->size; }

/* "Mapping" hands libtiff the buffer itself, so strips are decoded without a copy.
 * libtiff only reads through a read-only mapping. */
static int io_map(thandle_t h, void **base, toff_t *size) {
  tiff_job *job = (tiff_job *)h;
  *base = (void *)job->data;
  *size = job->size;
  return 1;
}

static void io_unmap(thandle_t h, void *base, toff_t size) {
  (void)h;
  (void)base;
  (void)size;
}

LVMMED_PRINTF(4, 0) static int on_error(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap) {
  (void)tif;
  tiff_job *job = user;
  if (!job->failed) {
    int k = module ? snprintf(job->msg, sizeof job->msg, "%s: ", module) : 0;
    if (k < 0 || (size_t)k >= sizeof job->msg) k = 0;
    vsnprintf(job->msg + k, sizeof job->msg - (size_t)k, fmt, ap);
    job->failed = 1;
  }
  return 1; /* handled: libtiff's global handler (stderr) is not called */
}

static int on_warning(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap) {
  (void)tif;
  (void)user;
  (void)module;
  (void)fmt;
  (void)ap;
  return 1;
}

static TIFF *open_tiff(tiff_job *job) {
  TIFFOpenOptions *opts = TIFFOpenOptionsAlloc();
  if (!opts) return NULL;
  /* Largest single allocation libtiff may make: one decoded page of 64-bit samples, 8 channels. */
  uint64_t cap = (uint64_t)job->img->max_pixels * 64u + ((uint64_t)16 << 20);
  if (cap > (uint64_t)INT64_MAX / 2) cap = (uint64_t)INT64_MAX / 2;
  TIFFOpenOptionsSetMaxSingleMemAlloc(opts, (tmsize_t)cap);
  TIFFOpenOptionsSetErrorHandlerExtR(opts, on_error, job);
  TIFFOpenOptionsSetWarningHandlerExtR(opts, on_warning, job);
  TIFF *tif = TIFFClientOpenExt("TIFF", "r", (thandle_t)job, io_read, io_write, io_seek, io_close, io_size,
                                io_map, io_unmap, opts);
  TIFFOpenOptionsFree(opts);
  return tif;
}

static lvmmed_status libtiff_error(tiff_job *job, lvmmed_status st, const char *what, char *err, size_t errlen) {
  if (job->failed) return lvmmed__img_error(err, errlen, st, "TIFF: %s (%s)", what, job->msg);
  return lvmmed__img_error(err, errlen, st, "TIFF: %s", what);
}

/* ---- sample unpacking ---- */

typedef struct layout {
  uint32_t w, h, spp;
  uint16_t bps, fmt, photo;
  int separate;   /* planar configuration 2 */
  int invert;     /* min-is-white unsigned: v -> max - v */
  const uint16_t *cmap[3]; /* palette */
  uint32_t ncmap;
} layout;

/* Unpacks n consecutive samples of `bps` bits starting at sample index `first` of a
 * byte-aligned row into out. Whole-byte samples (16/24/32/64 bits) are already in
 * native order (libtiff swaps them); other depths are an MSB-first bit stream. */
static void unpack(const unsigned char *row, size_t first, size_t n, const layout *L, float *out) {
  int bps = L->bps;
  if (L->fmt == SAMPLEFORMAT_IEEEFP) {
    if (bps == 32) {
      const unsigned char *p = row + first * 4;
      for (size_t i = 0; i < n; i++) memcpy(&out[i], p + 4 * i, 4);
    } else {
      const unsigned char *p = row + first * 8;
      for (size_t i = 0; i < n; i++) {
        double d;
        memcpy(&d, p + 8 * i, 8);
        out[i] = (float)d;
      }
    }
    return;
  }
  int sign = L->fmt == SAMPLEFORMAT_INT;
  if (bps == 8) {
    const unsigned char *p = row + first;
    if (sign)
      for (size_t i = 0; i < n; i++) out[i] = (float)(int8_t)p[i];
    else
      for (size_t i = 0; i < n; i++) out[i] = (float)p[i];
  } else if (bps == 16) {
    const unsigned char *p = row + first * 2;
    for (size_t i = 0; i < n; i++) {
      uint16_t v;
      memcpy(&v, p + 2 * i, 2);
      out[i] = sign ? (float)(int16_t)v : (float)v;
    }
  } else if (bps == 32) {
    const unsigned char *p = row + first * 4;
    for (size_t i = 0; i < n; i++) {
      uint32_t v;
      memcpy(&v, p + 4 * i, 4);
      out[i] = sign ? (float)(int32_t)v : (float)v;
    }
  } else if (bps == 24) { /* whole-byte samples: libtiff has put them in native byte order */
    const unsigned char *p = row + first * 3;
    const uint16_t probe = 1;
    int little = *(const unsigned char *)&probe == 1;
    for (size_t i = 0; i < n; i++, p += 3) {
      uint32_t v = little ? (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16
                          : (uint32_t)p[2] | (uint32_t)p[1] << 8 | (uint32_t)p[0] << 16;
      out[i] = sign && (v & 0x800000u) ? (float)((int32_t)v - 0x1000000) : (float)v;
    }
  } else { /* any other depth: a big-endian bit stream */
    uint64_t bit = (uint64_t)first * bps;
    for (size_t i = 0; i < n; i++, bit += bps) {
      uint64_t v = 0;
      for (int k = 0; k < bps; k++) {
        uint64_t b = bit + k;
        v = (v << 1) | ((row[b >> 3] >> (7 - (b & 7))) & 1u);
      }
      if (sign && bps > 1 && (v >> (bps - 1)) & 1u) out[i] = (float)((int64_t)v - ((int64_t)1 << bps));
      else out[i] = (float)v;
    }
  }
  if (L->invert) {
    float maxv = (float)(((uint64_t)1 << bps) - 1u);
    for (size_t i = 0; i < n; i++) out[i] = maxv - out[i];
  }
}

/* Writes a run of n pixels of one block row into the planes. For contiguous data the
 * row holds spp interleaved samples per pixel; for separate data only `plane`. */
static void store_run(lvmmed_image *img, const layout *L, const unsigned char *row, uint32_t y, uint32_t x0,
                      uint32_t n, int plane, float *tmp) {
  size_t P = (size_t)L->w * L->h, o = (size_t)y * L->w + x0;
  float *d = img->data;
  if (L->separate) {
    unpack(row, 0, n, L, tmp);
    memcpy(d + (size_t)plane * P + o, tmp, n * sizeof(float));
    return;
  }
  unpack(row, 0, (size_t)n * L->spp, L, tmp);
  if (L->ncmap) { /* index -> three colour-map planes; indices were range-checked by the caller */
    for (uint32_t x = 0; x < n; x++) {
      uint32_t idx = (uint32_t)tmp[x];
      for (int c = 0; c < 3; c++) d[c * P + o + x] = L->cmap[c][idx];
    }
    return;
  }
  if (L->spp == 1) {
    memcpy(d + o, tmp, n * sizeof(float));
    return;
  }
  for (uint32_t x = 0; x < n; x++)
    for (uint32_t c = 0; c < L->spp; c++) d[c * P + o + x] = tmp[(size_t)x * L->spp + c];
}

static int palette_ok(const layout *L, const unsigned char *row, uint32_t n, float *tmp) {
  unpack(row, 0, n, L, tmp);
  for (uint32_t x = 0; x < n; x++)
    if (tmp[x] >= (float)L->ncmap) return 0;
  return 1;
}

static lvmmed_status read_blocks(TIFF *tif, tiff_job *job, const layout *L, char *err, size_t errlen) {
  lvmmed_image *img = job->img;
  int tiled = TIFFIsTiled(tif);
  uint32_t bw = L->w, bh; /* block width/height */
  if (tiled) {
    if (!TIFFGetField(tif, TIFFTAG_TILEWIDTH, &bw) || !TIFFGetField(tif, TIFFTAG_TILELENGTH, &bh) || !bw || !bh)
      return libtiff_error(job, LVMMED_ERR_FORMAT, "tiled image without valid tile sizes", err, errlen);
  } else {
    TIFFGetFieldDefaulted(tif, TIFFTAG_ROWSPERSTRIP, &bh);
    if (bh == 0 || bh > L->h) bh = L->h;
  }
  /* A strip is at most the image; a tile can be any size: bound it like a page. */
  if ((uint64_t)bw * bh > (uint64_t)img->max_pixels)
    return lvmmed__img_error(err, errlen, LVMMED_ERR_LIMIT,
                             "TIFF: %s of %u x %u pixels exceed the limit of %lld pixels", tiled ? "tiles" : "strips",
                             bw, bh, (long long)img->max_pixels);
  uint32_t per_row = L->separate ? 1 : L->spp;
  uint64_t row_bits = (uint64_t)bw * per_row * L->bps;
  size_t row_bytes = (size_t)((row_bits + 7) / 8);
  tmsize_t block_size = tiled ? TIFFTileSize(tif) : TIFFStripSize(tif);
  if (block_size <= 0 || (uint64_t)block_size < (uint64_t)row_bytes * (tiled ? bh : 1) ||
      (uint64_t)block_size > (uint64_t)row_bytes * bh + 65536)
    return libtiff_error(job, LVMMED_ERR_FORMAT, "invalid strip/tile size", err, errlen);
  size_t tmp_floats = (size_t)bw * per_row;
  size_t need = (size_t)block_size + tmp_floats * sizeof(float) + 64;
  unsigned char *buf = lvmmed__image_scratch(img, need);
  if (!buf) return lvmmed__img_error(err, errlen, LVMMED_ERR_OUT_OF_MEMORY, "TIFF: out of memory for a block");
  float *tmp = (float *)(buf + (((size_t)block_size + 63) & ~(size_t)63));
  uint32_t planes = L->separate ? L->spp : 1;
  uint32_t across = tiled ? (L->w + bw - 1) / bw : 1;
  uint32_t down = (L->h + bh - 1) / bh;
  for (uint32_t p = 0; p < planes; p++)
    for (uint32_t by = 0; by < down; by++)
      for (uint32_t bx = 0; bx < across; bx++) {
        uint32_t y0 = by * bh, x0 = bx * bw;
        uint32_t rows = L->h - y0 < bh ? L->h - y0 : bh;
        uint32_t cols = L->w - x0 < bw ? L->w - x0 : bw;
        tmsize_t got;
        if (tiled) {
          uint32_t t = TIFFComputeTile(tif, x0, y0, 0, (uint16_t)p);
          got = TIFFReadEncodedTile(tif, t, buf, block_size);
          if (got < 0) return libtiff_error(job, LVMMED_ERR_FORMAT, "cannot decode a tile", err, errlen);
          if ((uint64_t)got < (uint64_t)row_bytes * bh) /* libtiff zero-fills short tiles: refuse */
            return libtiff_error(job, LVMMED_ERR_FORMAT, "short tile data", err, errlen);
        } else {
          uint32_t s = TIFFComputeStrip(tif, y0, (uint16_t)p);
          got = TIFFReadEncodedStrip(tif, s, buf, block_size);
          if (got < 0) return libtiff_error(job, LVMMED_ERR_FORMAT, "cannot decode a strip", err, errlen);
          if ((uint64_t)got < (uint64_t)row_bytes * rows)
            return libtiff_error(job, LVMMED_ERR_FORMAT, "short strip data", err, errlen);
        }
        if (job->failed) return libtiff_error(job, LVMMED_ERR_FORMAT, "decoding error", err, errlen);
        for (uint32_t r = 0; r < rows; r++) {
          const unsigned char *row = buf + (size_t)r * row_bytes;
          if (L->ncmap && !palette_ok(L, row, cols, tmp))
            return lvmmed__img_error(err, errlen, LVMMED_ERR_FORMAT,
                                     "TIFF: palette index out of range (%u colour-map entries)", L->ncmap);
          /* Sample x0 of a tile row starts at its beginning; strips span the whole width. */
          store_run(img, L, row, y0 + r, x0, cols, (int)p, tmp);
        }
      }
  return LVMMED_OK;
}

/* Uncommon colour models through libtiff's RGBA reader (8-bit RGB, plus alpha if present). */
static lvmmed_status read_rgba(TIFF *tif, tiff_job *job, uint32_t w, uint32_t h, int alpha, char *err,
                               size_t errlen) {
  lvmmed_image *img = job->img;
  char emsg[1024];
  if (!TIFFRGBAImageOK(tif, emsg)) {
    lvmmed__img_error(err, errlen, LVMMED_ERR_UNSUPPORTED, "TIFF: unsupported colour model (%s)", emsg);
    return LVMMED_ERR_UNSUPPORTED;
  }
  size_t n = (size_t)w * h;
  uint32_t *raster = lvmmed__image_scratch(img, n * sizeof(uint32_t));
  if (!raster) return lvmmed__img_error(err, errlen, LVMMED_ERR_OUT_OF_MEMORY, "TIFF: out of memory");
  if (!TIFFReadRGBAImageOriented(tif, w, h, raster, ORIENTATION_TOPLEFT, 0) || job->failed)
    return libtiff_error(job, LVMMED_ERR_FORMAT, "cannot decode the image", err, errlen);
  uint32_t ch = alpha ? 4 : 3;
  float *d = lvmmed__image_alloc(img, ch, h, w);
  if (!d) return lvmmed__img_error(err, errlen, LVMMED_ERR_OUT_OF_MEMORY, "TIFF: out of memory");
  for (size_t i = 0; i < n; i++) {
    uint32_t px = raster[i];
    d[i] = (float)TIFFGetR(px);
    d[n + i] = (float)TIFFGetG(px);
    d[2 * n + i] = (float)TIFFGetB(px);
    if (alpha) d[3 * n + i] = (float)TIFFGetA(px);
  }
  img->bit_depth = 8;
  img->sample = LVMMED_SAMPLE_UINT;
  img->has_alpha = alpha;
  return LVMMED_OK;
}

static lvmmed_status decode_page(TIFF *tif, tiff_job *job, char *err, size_t errlen) {
  lvmmed_image *img = job->img;
  uint32_t w = 0, h = 0;
  uint16_t spp = 1, bps = 1, fmt = SAMPLEFORMAT_UINT, planar = PLANARCONFIG_CONTIG, photo, comp = 1;
  if (!TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &w) || !TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &h))
    return libtiff_error(job, LVMMED_ERR_FORMAT, "missing image width/length", err, errlen);
  char what[32];
  snprintf(what, sizeof what, "TIFF page %u", img->page_read);
  lvmmed_status st = lvmmed__image_check_size(img, w, h, what, err, errlen);
  if (st != LVMMED_OK) return st;
  TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLESPERPIXEL, &spp);
  TIFFGetFieldDefaulted(tif, TIFFTAG_BITSPERSAMPLE, &bps);
  TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLEFORMAT, &fmt);
  TIFFGetFieldDefaulted(tif, TIFFTAG_PLANARCONFIG, &planar);
  TIFFGetFieldDefaulted(tif, TIFFTAG_COMPRESSION, &comp);
  if (!TIFFGetField(tif, TIFFTAG_PHOTOMETRIC, &photo)) photo = spp >= 3 ? PHOTOMETRIC_RGB : PHOTOMETRIC_MINISBLACK;
  uint16_t nextra = 0, *extra = NULL;
  TIFFGetField(tif, TIFFTAG_EXTRASAMPLES, &nextra, &extra);
  if (spp < 1 || spp > 16)
    return lvmmed__img_error(err, errlen, LVMMED_ERR_UNSUPPORTED, "TIFF: %u samples per pixel (at most 16)", spp);
  if (fmt == SAMPLEFORMAT_VOID) fmt = SAMPLEFORMAT_UINT;
  int alpha = nextra > 0 && extra && (extra[0] == EXTRASAMPLE_ASSOCALPHA || extra[0] == EXTRASAMPLE_UNASSALPHA);

  int rgba_path = comp == COMPRESSION_OJPEG ||
                  (photo != PHOTOMETRIC_MINISBLACK && photo != PHOTOMETRIC_MINISWHITE && photo != PHOTOMETRIC_RGB &&
                   photo != PHOTOMETRIC_PALETTE && !(photo == PHOTOMETRIC_YCBCR && comp == COMPRESSION_JPEG));
  if (rgba_path) {
    st = read_rgba(tif, job, w, h, alpha, err, errlen);
    if (st == LVMMED_OK) img->palette = 0;
    return st;
  }
  if (photo == PHOTOMETRIC_YCBCR) { /* JPEG-compressed YCbCr: let libjpeg convert to RGB */
    if (!TIFFSetField(tif, TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB))
      return libtiff_error(job, LVMMED_ERR_FORMAT, "cannot select JPEG RGB output", err, errlen);
    photo = PHOTOMETRIC_RGB;
  }
  if (fmt == SAMPLEFORMAT_IEEEFP ? (bps != 32 && bps != 64)
                                 : (fmt != SAMPLEFORMAT_UINT && fmt != SAMPLEFORMAT_INT) || bps < 1 || bps > 32)
    return lvmmed__img_error(err, errlen, LVMMED_ERR_UNSUPPORTED, "TIFF: %u-bit samples of sample format %u", bps,
                             fmt);
  layout L = {.w = w, .h = h, .spp = spp, .bps = bps, .fmt = fmt, .photo = photo,
              .separate = planar == PLANARCONFIG_SEPARATE && spp > 1};
  uint32_t channels = spp;
  int bit_depth = bps;
  if (photo == PHOTOMETRIC_MINISWHITE) {
    if (fmt != SAMPLEFORMAT_UINT)
      return lvmmed__img_error(err, errlen, LVMMED_ERR_UNSUPPORTED,
                               "TIFF: min-is-white with signed or float samples");
    L.invert = 1;
  }
  if (photo == PHOTOMETRIC_RGB && spp < 3)
    return lvmmed__img_error(err, errlen, LVMMED_ERR_FORMAT, "TIFF: RGB with %u samples per pixel", spp);
  if (photo == PHOTOMETRIC_PALETTE) {
    uint16_t *r, *g, *b;
    if (spp != 1 || fmt != SAMPLEFORMAT_UINT || bps > 16)
      return lvmmed__img_error(err, errlen, LVMMED_ERR_UNSUPPORTED,
                               "TIFF: palette image with %u samples of %u bits", spp, bps);
    if (!TIFFGetField(tif, TIFFTAG_COLORMAP, &r, &g, &b))
      return libtiff_error(job, LVMMED_ERR_FORMAT, "palette image without a colour map", err, errlen);
    L.cmap[0] = r;
    L.cmap[1] = g;
    L.cmap[2] = b;
    L.ncmap = 1u << bps;
    channels = 3;
    /* Colour maps are 16-bit by the standard; some writers store 8-bit values. */
    bit_depth = 8;
    for (uint32_t i = 0; i < L.ncmap && bit_depth == 8; i++)
      if (r[i] > 255 || g[i] > 255 || b[i] > 255) bit_depth = 16;
    alpha = 0;
  }
  if (!lvmmed__image_alloc(img, channels, h, w))
    return lvmmed__img_error(err, errlen, LVMMED_ERR_OUT_OF_MEMORY, "TIFF: out of memory for the pixels");
  st = read_blocks(tif, job, &L, err, errlen);
  if (st != LVMMED_OK) return st;
  img->bit_depth = bit_depth;
  img->sample = fmt == SAMPLEFORMAT_IEEEFP ? LVMMED_SAMPLE_FLOAT
                : fmt == SAMPLEFORMAT_INT  ? LVMMED_SAMPLE_INT
                                           : LVMMED_SAMPLE_UINT;
  if (fmt == SAMPLEFORMAT_IEEEFP) img->bit_depth = 32 * (bps / 32);
  img->palette = photo == PHOTOMETRIC_PALETTE;
  uint32_t colour = photo == PHOTOMETRIC_RGB || photo == PHOTOMETRIC_PALETTE ? 3 : 1;
  img->has_alpha = alpha && channels == colour + 1;
  return LVMMED_OK;
}

/* Opens the buffer and counts its directories (IFD loops and bad offsets are errors). */
static lvmmed_status open_and_count(tiff_job *job, TIFF **out, uint32_t *pages, char *err, size_t errlen) {
  TIFF *tif = open_tiff(job);
  if (!tif) return libtiff_error(job, LVMMED_ERR_FORMAT, "cannot read the header", err, errlen);
  tdir_t n = TIFFNumberOfDirectories(tif);
  if (job->failed || n == 0) {
    TIFFClose(tif);
    return libtiff_error(job, LVMMED_ERR_FORMAT, "bad directory chain", err, errlen);
  }
  *out = tif;
  *pages = (uint32_t)n;
  return LVMMED_OK;
}

lvmmed_status lvmmed__tiff_count_pages(lvmmed_image *img, const unsigned char *data, size_t size, uint32_t *pages,
                                       char *err, size_t errlen) {
  tiff_job job = {.img = img, .data = data, .size = size};
  TIFF *tif;
  lvmmed_status st = open_and_count(&job, &tif, pages, err, errlen);
  if (st == LVMMED_OK) TIFFClose(tif);
  return st;
}

lvmmed_status lvmmed__tiff_decode(lvmmed_image *img, const unsigned char *data, size_t size, char *err,
                                  size_t errlen) {
  tiff_job job = {.img = img, .data = data, .size = size};
  TIFF *tif;
  uint32_t pages;
  lvmmed_status st = open_and_count(&job, &tif, &pages, err, errlen);
  if (st != LVMMED_OK) return st;
  if ((uint64_t)img->page >= pages) {
    TIFFClose(tif);
    return lvmmed__img_error(err, errlen, LVMMED_ERR_OUT_OF_RANGE, "TIFF: page %lld requested, the file has %u",
                             (long long)img->page, pages);
  }
  if (img->page > 0 && (!TIFFSetDirectory(tif, (tdir_t)img->page) || job.failed)) {
    TIFFClose(tif);
    return libtiff_error(&job, LVMMED_ERR_FORMAT, "cannot read the page's directory", err, errlen);
  }
  img->page_read = (uint32_t)img->page;
  st = decode_page(tif, &job, err, errlen);
  TIFFClose(tif);
  if (st != LVMMED_OK) return st;
  img->pages = pages;
  img->format = LVMMED_IMAGE_FORMAT_TIFF;
  return LVMMED_OK;
}
