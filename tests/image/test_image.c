/* Image I/O, intensity, augmentation and dataset reader: API contracts, malformed
 * files (run under ASan+UBSan in CI), determinism across thread counts. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../test_util.h"
#include "lvmmed_config.h"
#if LVMMED_HAVE_TIFF
#include <tiffio.h>
#endif

#ifndef IMAGE_DATA_DIR
#error "IMAGE_DATA_DIR must name tests/image/data"
#endif

static const char *FIXTURES[] = {"ct_stent_i16.tif", "fundus_microaneurysms.png", "fundus_retina.jpg",
                                 "ihc_rgb.png",      "itk_mask_1bit.png",         "itk_palette_mr.png",
                                 "mr_colin27_u8.png", "mr_inia19_f32.tif",        "mr_s1045_u16.png"};
#define NFIX (sizeof FIXTURES / sizeof FIXTURES[0])

static char *data_path(const char *name) {
  static char buf[4][1024];
  static int k;
  char *p = buf[k++ & 3];
  snprintf(p, 1024, "%s/%s", IMAGE_DATA_DIR, name);
  return p;
}

static unsigned char *slurp(const char *path, size_t *size) {
  FILE *f = fopen(path, "rb");
  ck_assert_msg(f != NULL, "cannot open %s", path);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *p = malloc((size_t)n + 1);
  ck_assert(fread(p, 1, (size_t)n, f) == (size_t)n);
  fclose(f);
  *size = (size_t)n;
  return p;
}

static void spit(const char *path, const void *data, size_t size) {
  FILE *f = fopen(path, "wb");
  ck_assert_msg(f != NULL, "cannot write %s", path);
  ck_assert(fwrite(data, 1, size, f) == size);
  fclose(f);
}

static int available(const char *name) {
  const char *dot = strrchr(name, '.');
  if (!strcmp(dot, ".png")) return lvmmed_image_format_available(LVMMED_IMAGE_FORMAT_PNG);
  if (!strcmp(dot, ".tif")) return lvmmed_image_format_available(LVMMED_IMAGE_FORMAT_TIFF);
  return lvmmed_image_format_available(LVMMED_IMAGE_FORMAT_JPEG);
}

static int64_t prop(const lvmmed_image *img, lvmmed_image_property p) {
  int64_t v = -1;
  ck_assert_int_eq(lvmmed_image_get(img, p, &v), LVMMED_OK);
  return v;
}

static lvmmed_ctx *new_ctx(void) {
  lvmmed_ctx *ctx = NULL;
  ck_assert_int_eq(lvmmed_ctx_create(&ctx), LVMMED_OK);
  return ctx;
}

/* Deterministic byte source for corruptions. */
static uint32_t lcg(uint32_t *s) {
  *s = *s * 1664525u + 1013904223u;
  return *s >> 8;
}

/* ================================================================== image API */

START_TEST(image_options) {
  lvmmed_ctx *ctx = new_ctx();
  lvmmed_image *img = NULL;
  ck_assert_int_eq(lvmmed_image_create(ctx, NULL), LVMMED_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(lvmmed_image_create(NULL, &img), LVMMED_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(lvmmed_image_create(ctx, &img), LVMMED_OK);
  ck_assert_uint_eq(lvmmed_ctx_refcount(ctx), 2);
  int64_t lo, hi, v;
  ck_assert_int_eq(lvmmed_image_option_bounds(LVMMED_IMAGE_OPT_MAX_PIXELS, &lo, &hi), LVMMED_OK);
  ck_assert(lo == 1 && hi >= ((int64_t)1 << 32));
  ck_assert_int_eq(lvmmed_image_get_option(img, LVMMED_IMAGE_OPT_MAX_PIXELS, &v), LVMMED_OK);
  ck_assert_int_eq(v, (int64_t)1 << 27);
  ck_assert_int_eq(lvmmed_image_get_option(img, LVMMED_IMAGE_OPT_PAGE, &v), LVMMED_OK);
  ck_assert_int_eq(v, 0);
  ck_assert_int_eq(lvmmed_image_set_option(img, LVMMED_IMAGE_OPT_MAX_PIXELS, 0), LVMMED_ERR_OUT_OF_RANGE);
  ck_assert_ptr_nonnull(strstr(lvmmed_ctx_last_error(ctx), "outside"));
  ck_assert_int_eq(lvmmed_image_set_option(img, LVMMED_IMAGE_OPT_PAGE, -1), LVMMED_ERR_OUT_OF_RANGE);
  ck_assert_int_eq(lvmmed_image_set_option(img, (lvmmed_image_option)99, 1), LVMMED_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(lvmmed_image_option_bounds((lvmmed_image_option)99, &lo, &hi), LVMMED_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(lvmmed_image_set_option(img, LVMMED_IMAGE_OPT_PAGE, 7), LVMMED_OK);
  ck_assert_int_eq(lvmmed_image_get_option(img, LVMMED_IMAGE_OPT_PAGE, &v), LVMMED_OK);
  ck_assert_int_eq(v, 7);
  /* An empty image answers queries without pixels. */
  ck_assert_ptr_null(lvmmed_image_data(img));
  ck_assert_int_eq(prop(img, LVMMED_IMAGE_WIDTH), 0);
  ck_assert_int_eq(prop(img, LVMMED_IMAGE_FORMAT), LVMMED_IMAGE_FORMAT_NONE);
  double a, b;
  ck_assert_int_eq(lvmmed_image_range(img, &a, &b), LVMMED_ERR_STATE);
  ck_assert_int_eq(lvmmed_image_get(img, (lvmmed_image_property)99, &v), LVMMED_ERR_INVALID_ARGUMENT);
  lvmmed_image_free(img);
  lvmmed_image_free(NULL);
  ck_assert_uint_eq(lvmmed_ctx_refcount(ctx), 1);
  ck_assert_str_eq(lvmmed_image_format_name(LVMMED_IMAGE_FORMAT_TIFF), "tiff");
  ck_assert_str_eq(lvmmed_image_format_name((lvmmed_image_format)42), "unknown");
  ck_assert_str_eq(lvmmed_sample_format_name(LVMMED_SAMPLE_INT), "int");
  ck_assert_int_eq(lvmmed_image_format_available(LVMMED_IMAGE_FORMAT_PNG), LVMMED_HAVE_PNG);
  ck_assert_int_eq(lvmmed_image_format_available(LVMMED_IMAGE_FORMAT_JPEG), LVMMED_HAVE_JPEG);
  ck_assert_int_eq(lvmmed_image_format_available(LVMMED_IMAGE_FORMAT_NONE), 0);
  lvmmed_ctx_release(ctx);
}
END_TEST

START_TEST(image_detect_format) {
  static const unsigned char png[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  ck_assert_int_eq(lvmmed_image_detect_format(png, 8), LVMMED_IMAGE_FORMAT_PNG);
  ck_assert_int_eq(lvmmed_image_detect_format(png, 7), LVMMED_IMAGE_FORMAT_NONE);
  ck_assert_int_eq(lvmmed_image_detect_format("II*\0", 4), LVMMED_IMAGE_FORMAT_TIFF);
  ck_assert_int_eq(lvmmed_image_detect_format("MM\0*", 4), LVMMED_IMAGE_FORMAT_TIFF);
  ck_assert_int_eq(lvmmed_image_detect_format("II+\0", 4), LVMMED_IMAGE_FORMAT_TIFF);
  ck_assert_int_eq(lvmmed_image_detect_format("\xff\xd8\xff", 3), LVMMED_IMAGE_FORMAT_JPEG);
  ck_assert_int_eq(lvmmed_image_detect_format("GIF89a", 6), LVMMED_IMAGE_FORMAT_NONE);
  ck_assert_int_eq(lvmmed_image_detect_format(NULL, 10), LVMMED_IMAGE_FORMAT_NONE);
}
END_TEST

START_TEST(image_read_errors_name_the_file) {
  lvmmed_ctx *ctx = new_ctx();
  lvmmed_image *img;
  ck_assert_int_eq(lvmmed_image_create(ctx, &img), LVMMED_OK);
  char dir[] = "/tmp/lvmmed_img_XXXXXX";
  ck_assert_ptr_nonnull(mkdtemp(dir));
  char path[1200];
  snprintf(path, sizeof path, "%s/missing.png", dir);
  ck_assert_int_eq(lvmmed_image_read_file(img, path), LVMMED_ERR_NOT_FOUND);
  ck_assert_ptr_nonnull(strstr(lvmmed_ctx_last_error(ctx), path));
  ck_assert_int_eq(lvmmed_image_read_file(img, dir), LVMMED_ERR_IO);
  ck_assert_ptr_nonnull(strstr(lvmmed_ctx_last_error(ctx), "not a regular file"));
  snprintf(path, sizeof path, "%s/empty.png", dir);
  spit(path, "", 0);
  ck_assert_int_eq(lvmmed_image_read_file(img, path), LVMMED_ERR_FORMAT);
  ck_assert_ptr_nonnull(strstr(lvmmed_ctx_last_error(ctx), "empty file"));
  ck_assert_ptr_nonnull(strstr(lvmmed_ctx_last_error(ctx), path));
  unlink(path);
  snprintf(path, sizeof path, "%s/notes.png", dir);
  spit(path, "hello, not an image\n", 20);
  ck_assert_int_eq(lvmmed_image_read_file(img, path), LVMMED_ERR_FORMAT);
  ck_assert_ptr_nonnull(strstr(lvmmed_ctx_last_error(ctx), "unknown signature"));
  unlink(path);
  ck_assert_int_eq(lvmmed_image_read_file(img, NULL), LVMMED_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(lvmmed_image_read_file(NULL, "x"), LVMMED_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(lvmmed_image_read_memory(img, NULL, 5, "buf"), LVMMED_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(lvmmed_image_read_memory(img, "", 0, NULL), LVMMED_ERR_FORMAT);
  ck_assert_ptr_nonnull(strstr(lvmmed_ctx_last_error(ctx), "<memory>"));
  /* A failed read leaves no stale pixels behind. */
  if (lvmmed_image_format_available(LVMMED_IMAGE_FORMAT_PNG)) {
    ck_assert_lvmmed_ok(ctx, lvmmed_image_read_file(img, data_path("mr_s1045_u16.png")));
    ck_assert_int_eq(lvmmed_image_read_file(img, dir), LVMMED_ERR_IO);
    ck_assert_ptr_null(lvmmed_image_data(img));
    ck_assert_int_eq(prop(img, LVMMED_IMAGE_WIDTH), 0);
  }
  /* a page past the end */
  ck_assert_int_eq(lvmmed_image_set_option(img, LVMMED_IMAGE_OPT_PAGE, 1), LVMMED_OK);
  for (size_t i = 0; i < NFIX; i++) {
    if (!available(FIXTURES[i])) continue;
    ck_assert_int_eq(lvmmed_image_read_file(img, data_path(FIXTURES[i])), LVMMED_ERR_OUT_OF_RANGE);
    ck_assert_ptr_nonnull(strstr(lvmmed_ctx_last_error(ctx), "page 1"));
  }
  rmdir(dir);
  lvmmed_image_free(img);
  lvmmed_ctx_release(ctx);
}
END_TEST

START_TEST(image_memory_equals_file) {
  lvmmed_ctx *ctx = new_ctx();
  lvmmed_image *a, *b;
  ck_assert_int_eq(lvmmed_image_create(ctx, &a), LVMMED_OK);
  ck_assert_int_eq(lvmmed_image_create(ctx, &b), LVMMED_OK);
  for (size_t i = 0; i < NFIX; i++) {
    if (!available(FIXTURES[i])) continue;
    size_t n;
    unsigned char *bytes = slurp(data_path(FIXTURES[i]), &n);
    ck_assert_lvmmed_ok(ctx, lvmmed_image_read_file(a, data_path(FIXTURES[i])));
    ck_assert_lvmmed_ok(ctx, lvmmed_image_read_memory(b, bytes, n, FIXTURES[i]));
    for (int p = LVMMED_IMAGE_WIDTH; p <= LVMMED_IMAGE_PALETTE; p++)
      ck_assert_int_eq(prop(a, (lvmmed_image_property)p), prop(b, (lvmmed_image_property)p));
    size_t count = (size_t)(prop(a, LVMMED_IMAGE_CHANNELS) * prop(a, LVMMED_IMAGE_WIDTH) * prop(a, LVMMED_IMAGE_HEIGHT));
    ck_assert(memcmp(lvmmed_image_data(a), lvmmed_image_data(b), count * sizeof(float)) == 0);
    ck_assert_int_ge(prop(a, LVMMED_IMAGE_PAGES), 1);
    free(bytes);
  }
  lvmmed_image_free(a);
  lvmmed_image_free(b);
  lvmmed_ctx_release(ctx);
}
END_TEST

START_TEST(image_pixel_and_file_limits) {
  lvmmed_ctx *ctx = new_ctx();
  lvmmed_image *img;
  ck_assert_int_eq(lvmmed_image_create(ctx, &img), LVMMED_OK);
  for (size_t i = 0; i < NFIX; i++) {
    if (!available(FIXTURES[i])) continue;
    ck_assert_int_eq(lvmmed_image_set_option(img, LVMMED_IMAGE_OPT_MAX_PIXELS, (int64_t)1 << 27), LVMMED_OK);
    ck_assert_lvmmed_ok(ctx, lvmmed_image_read_file(img, data_path(FIXTURES[i])));
    int64_t pixels = prop(img, LVMMED_IMAGE_WIDTH) * prop(img, LVMMED_IMAGE_HEIGHT);
    ck_assert_int_eq(lvmmed_image_set_option(img, LVMMED_IMAGE_OPT_MAX_PIXELS, pixels), LVMMED_OK);
    ck_assert_lvmmed_ok(ctx, lvmmed_image_read_file(img, data_path(FIXTURES[i])));
    ck_assert_int_eq(lvmmed_image_set_option(img, LVMMED_IMAGE_OPT_MAX_PIXELS, pixels - 1), LVMMED_OK);
    ck_assert_int_eq(lvmmed_image_read_file(img, data_path(FIXTURES[i])), LVMMED_ERR_LIMIT);
    ck_assert_msg(strstr(lvmmed_ctx_last_error(ctx), "exceed the limit") != NULL, "%s", lvmmed_ctx_last_error(ctx));
    ck_assert_ptr_nonnull(strstr(lvmmed_ctx_last_error(ctx), FIXTURES[i]));
  }
  ck_assert_int_eq(lvmmed_image_set_option(img, LVMMED_IMAGE_OPT_MAX_PIXELS, (int64_t)1 << 27), LVMMED_OK);
  ck_assert_int_eq(lvmmed_image_set_option(img, LVMMED_IMAGE_OPT_MAX_FILE_BYTES, 100), LVMMED_OK);
  ck_assert_int_eq(lvmmed_image_read_file(img, data_path("ihc_rgb.png")), LVMMED_ERR_LIMIT);
  ck_assert_ptr_nonnull(strstr(lvmmed_ctx_last_error(ctx), "file size limit"));
  lvmmed_image_free(img);
  lvmmed_ctx_release(ctx);
}
END_TEST

/* ================================================================== malformed files */

/* Decodes buf; returns the status. If it succeeds on a damaged file, the pixels must equal
 * the intact decode (`good`, count floats): never a silently wrong image. */
static lvmmed_status decode_checked(lvmmed_image *img, const unsigned char *buf, size_t n, const float *good,
                                    size_t count, const char *what) {
  lvmmed_status st = lvmmed_image_read_memory(img, buf, n, what);
  if (st == LVMMED_OK && good) {
    size_t got = (size_t)(prop(img, LVMMED_IMAGE_CHANNELS) * prop(img, LVMMED_IMAGE_WIDTH) *
                          prop(img, LVMMED_IMAGE_HEIGHT));
    ck_assert_msg(got == count && memcmp(lvmmed_image_data(img), good, count * sizeof(float)) == 0,
                  "%s decoded to different pixels", what);
  }
  if (st != LVMMED_OK) ck_assert_ptr_null(lvmmed_image_data(img)); /* no stale pixels */
  return st;
}

/* Truncations at many lengths and deterministic random corruptions of one file. */
static void torture(const char *name, int truncation_always_fails) {
  lvmmed_ctx *ctx = new_ctx();
  lvmmed_image *img;
  ck_assert_int_eq(lvmmed_image_create(ctx, &img), LVMMED_OK);
  size_t n;
  unsigned char *bytes = slurp(data_path(name), &n);
  ck_assert_lvmmed_ok(ctx, lvmmed_image_read_memory(img, bytes, n, name));
  size_t count = (size_t)(prop(img, LVMMED_IMAGE_CHANNELS) * prop(img, LVMMED_IMAGE_WIDTH) *
                          prop(img, LVMMED_IMAGE_HEIGHT));
  float *good = malloc(count * sizeof(float));
  memcpy(good, lvmmed_image_data(img), count * sizeof(float));
  char what[128];
  for (size_t len = 0; len < n; len += len < 256 ? 1 : 37 + len / 64) {
    snprintf(what, sizeof what, "%s[:%zu]", name, len);
    lvmmed_status st = decode_checked(img, bytes, len, good, count, what);
    if (truncation_always_fails) ck_assert_msg(st != LVMMED_OK, "%s decoded", what);
    if (st != LVMMED_OK) ck_assert_ptr_nonnull(strstr(lvmmed_ctx_last_error(ctx), what));
  }
  unsigned char *bad = malloc(n);
  uint32_t seed = 12345;
  for (int iter = 0; iter < 150; iter++) {
    memcpy(bad, bytes, n);
    int flips = 1 + (int)(lcg(&seed) % 4);
    for (int k = 0; k < flips; k++) bad[lcg(&seed) % n] ^= (unsigned char)(1 + lcg(&seed) % 255);
    snprintf(what, sizeof what, "%s~%d", name, iter);
    decode_checked(img, bad, n, NULL, 0, what); /* any status; ASan/UBSan watch the memory */
  }
  free(bad);
  free(good);
  free(bytes);
  lvmmed_image_free(img);
  lvmmed_ctx_release(ctx);
}

static uint32_t crc32_png(const unsigned char *p, size_t n) {
  uint32_t c = 0xffffffffu;
  for (size_t i = 0; i < n; i++) {
    c ^= p[i];
    for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
  }
  return c ^ 0xffffffffu;
}

static void put_be32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)(v >> 24);
  p[1] = (unsigned char)(v >> 16);
  p[2] = (unsigned char)(v >> 8);
  p[3] = (unsigned char)v;
}

START_TEST(png_malformed) {
  if (!lvmmed_image_format_available(LVMMED_IMAGE_FORMAT_PNG)) return;
  torture("mr_s1045_u16.png", 1);
  torture("itk_palette_mr.png", 1);
  lvmmed_ctx *ctx = new_ctx();
  lvmmed_image *img;
  ck_assert_int_eq(lvmmed_image_create(ctx, &img), LVMMED_OK);
  size_t n;
  unsigned char *png = slurp(data_path("mr_colin27_u8.png"), &n), *b = malloc(n);
  /* IHDR: length at 8, type at 12, data at 16 (13 bytes), CRC at 29 */
  memcpy(b, png, n);
  b[30] ^= 0x55; /* IHDR CRC */
  ck_assert_int_eq(lvmmed_image_read_memory(img, b, n, "bad-ihdr-crc"), LVMMED_ERR_FORMAT);
  ck_assert_ptr_nonnull(strstr(lvmmed_ctx_last_error(ctx), "CRC"));
  memcpy(b, png, n);
  b[n - 40] ^= 0x01; /* inside the last IDAT: its CRC no longer matches */
  ck_assert_int_eq(lvmmed_image_read_memory(img, b, n, "bad-idat"), LVMMED_ERR_FORMAT);
  /* absurd dimensions, with a valid CRC: the pixel limit refuses them before allocating */
  static const uint32_t dims[][2] = {{0x7fffffffu, 0x7fffffffu}, {100000, 100000}, {1u << 20, 200}};
  for (size_t d = 0; d < 3; d++) {
    memcpy(b, png, n);
    put_be32(b + 16, dims[d][0]);
    put_be32(b + 20, dims[d][1]);
    put_be32(b + 29, crc32_png(b + 12, 17));
    ck_assert_int_eq(lvmmed_image_read_memory(img, b, n, "huge"), LVMMED_ERR_LIMIT);
  }
  memcpy(b, png, n);
  put_be32(b + 16, 0); /* width 0 */
  put_be32(b + 29, crc32_png(b + 12, 17));
  ck_assert_int_eq(lvmmed_image_read_memory(img, b, n, "zero"), LVMMED_ERR_FORMAT);
  memcpy(b, png, n);
  b[24] = 4; /* bit depth 4 with colour type 0 is valid; with type 2 it is not */
  b[25] = 2;
  put_be32(b + 29, crc32_png(b + 12, 17));
  ck_assert_int_eq(lvmmed_image_read_memory(img, b, n, "depth"), LVMMED_ERR_FORMAT);
  memcpy(b, png, n);
  put_be32(b + 33, 0xfffffff0u); /* the chunk after IHDR claims 4 GiB */
  ck_assert_int_eq(lvmmed_image_read_memory(img, b, n, "long-chunk"), LVMMED_ERR_FORMAT);
  free(b);
  free(png);
  lvmmed_image_free(img);
  lvmmed_ctx_release(ctx);
}
END_TEST

/* A minimal little-endian TIFF: one strip of w x h 8-bit samples, then IFDs chained as given. */
typedef struct tiff_spec {
  uint32_t w, h, bps, strip_offset, strip_bytes;
  uint32_t next_ifd; /* 0 = end; else the offset written as "next IFD" */
} tiff_spec;

static size_t put_ifd(unsigned char *p, size_t off, const tiff_spec *s) {
  static const uint16_t tags[] = {256, 257, 258, 259, 262, 273, 277, 278, 279};
  uint32_t vals[] = {s->w, s->h, s->bps, 1, 1, s->strip_offset, 1, s->h, s->strip_bytes};
  p[off] = 9;
  p[off + 1] = 0;
  size_t q = off + 2;
  for (int i = 0; i < 9; i++, q += 12) {
    int shrt = tags[i] == 258 || tags[i] == 259 || tags[i] == 262 || tags[i] == 277;
    uint16_t type = shrt ? 3 : 4;
    memcpy(p + q, &tags[i], 2);
    memcpy(p + q + 2, &type, 2);
    uint32_t one = 1;
    memcpy(p + q + 4, &one, 4);
    memset(p + q + 8, 0, 4);
    if (shrt) {
      uint16_t v = (uint16_t)vals[i];
      memcpy(p + q + 8, &v, 2);
    } else {
      memcpy(p + q + 8, &vals[i], 4);
    }
  }
  memcpy(p + q, &s->next_ifd, 4);
  return q + 4;
}

START_TEST(tiff_malformed) {
  if (!lvmmed_image_format_available(LVMMED_IMAGE_FORMAT_TIFF)) return;
  torture("ct_stent_i16.tif", 0);
  torture("mr_inia19_f32.tif", 0);
  lvmmed_ctx *ctx = new_ctx();
  lvmmed_image *img;
  ck_assert_int_eq(lvmmed_image_create(ctx, &img), LVMMED_OK);
  unsigned char buf[1024];
  memset(buf, 0, sizeof buf);
  memcpy(buf, "II*\0", 4);
  uint32_t ifd = 8;
  memcpy(buf + 4, &ifd, 4);
  /* pixels at 512: 4 x 3 ramp */
  for (int i = 0; i < 12; i++) buf[512 + i] = (unsigned char)(i * 20);
  tiff_spec ok = {4, 3, 8, 512, 12, 0};
  put_ifd(buf, 8, &ok);
  ck_assert_lvmmed_ok(ctx, lvmmed_image_read_memory(img, buf, 524, "minimal"));
  ck_assert_int_eq(prop(img, LVMMED_IMAGE_PAGES), 1);
  ck_assert(lvmmed_image_data(img)[11] == 220.0f);
  /* the IFD names itself as the next one: a loop */
  tiff_spec loop1 = ok;
  loop1.next_ifd = 8;
  put_ifd(buf, 8, &loop1);
  /* libtiff cuts a directory loop where it closes: the pages before it decode intact */
  ck_assert_lvmmed_ok(ctx, lvmmed_image_read_memory(img, buf, 524, "loop1"));
  ck_assert_int_eq(prop(img, LVMMED_IMAGE_PAGES), 1);
  ck_assert(lvmmed_image_data(img)[11] == 220.0f);
  ck_assert_int_eq(lvmmed_image_set_option(img, LVMMED_IMAGE_OPT_PAGE, 1), LVMMED_OK);
  ck_assert_int_eq(lvmmed_image_read_memory(img, buf, 524, "loop1"), LVMMED_ERR_OUT_OF_RANGE);
  /* IFD0 -> IFD1 -> IFD0 */
  tiff_spec a = ok, b = ok;
  a.next_ifd = 200;
  b.next_ifd = 8;
  put_ifd(buf, 8, &a);
  put_ifd(buf, 200, &b);
  ck_assert_lvmmed_ok(ctx, lvmmed_image_read_memory(img, buf, 524, "loop2"));
  ck_assert_int_eq(prop(img, LVMMED_IMAGE_PAGES), 2);
  ck_assert(lvmmed_image_data(img)[11] == 220.0f);
  ck_assert_int_eq(lvmmed_image_set_option(img, LVMMED_IMAGE_OPT_PAGE, 2), LVMMED_OK);
  ck_assert_int_eq(lvmmed_image_read_memory(img, buf, 524, "loop2"), LVMMED_ERR_OUT_OF_RANGE);
  ck_assert_ptr_nonnull(strstr(lvmmed_ctx_last_error(ctx), "loop2"));
  ck_assert_int_eq(lvmmed_image_set_option(img, LVMMED_IMAGE_OPT_PAGE, 0), LVMMED_OK);
  /* next IFD past the end of the file */
  a.next_ifd = 100000;
  put_ifd(buf, 8, &a);
  ck_assert_int_ne(lvmmed_image_read_memory(img, buf, 524, "ifd-past-end"), LVMMED_OK);
  /* strip offset / byte count past the end */
  tiff_spec off = ok;
  off.strip_offset = 5000;
  put_ifd(buf, 8, &off);
  ck_assert_int_eq(lvmmed_image_read_memory(img, buf, 524, "strip-past-end"), LVMMED_ERR_FORMAT);
  tiff_spec cnt = ok;
  cnt.strip_bytes = 4000;
  put_ifd(buf, 8, &cnt);
  /* a byte count past the end: an error, or (the 12 bytes needed are there) the right pixels */
  if (lvmmed_image_read_memory(img, buf, 524, "count-past-end") == LVMMED_OK)
    ck_assert(lvmmed_image_data(img)[11] == 220.0f);
  /* absurd and empty dimensions */
  tiff_spec huge = ok;
  huge.w = 100000;
  huge.h = 100000;
  put_ifd(buf, 8, &huge);
  ck_assert_int_eq(lvmmed_image_read_memory(img, buf, 524, "huge"), LVMMED_ERR_LIMIT);
  huge.w = 0xffffffffu;
  huge.h = 1;
  put_ifd(buf, 8, &huge);
  ck_assert_int_ne(lvmmed_image_read_memory(img, buf, 524, "wide"), LVMMED_OK);
  tiff_spec zero = ok;
  zero.w = 0;
  put_ifd(buf, 8, &zero);
  ck_assert_int_ne(lvmmed_image_read_memory(img, buf, 524, "zero"), LVMMED_OK);
  tiff_spec bits = ok;
  bits.bps = 33;
  put_ifd(buf, 8, &bits);
  ck_assert_int_ne(lvmmed_image_read_memory(img, buf, 524, "bits"), LVMMED_OK);
  /* header pointing outside the file */
  put_ifd(buf, 8, &ok);
  ifd = 0xfffffff0u;
  memcpy(buf + 4, &ifd, 4);
  ck_assert_int_eq(lvmmed_image_read_memory(img, buf, 524, "header"), LVMMED_ERR_FORMAT);
  lvmmed_image_free(img);
  lvmmed_ctx_release(ctx);
}
END_TEST

START_TEST(jpeg_malformed) {
  if (!lvmmed_image_format_available(LVMMED_IMAGE_FORMAT_JPEG)) return;
  torture("fundus_retina.jpg", 1);
  lvmmed_ctx *ctx = new_ctx();
  lvmmed_image *img;
  ck_assert_int_eq(lvmmed_image_create(ctx, &img), LVMMED_OK);
  size_t n;
  unsigned char *jpg = slurp(data_path("fundus_retina.jpg"), &n);
  /* Find the SOF0 marker and claim 65000 x 65000 pixels. */
  size_t sof = 0;
  for (size_t i = 2; i + 9 < n; i++)
    if (jpg[i] == 0xff && (jpg[i + 1] == 0xc0 || jpg[i + 1] == 0xc2)) {
      sof = i;
      break;
    }
  ck_assert_uint_gt(sof, 0);
  unsigned char *b = malloc(n);
  memcpy(b, jpg, n);
  b[sof + 5] = 0xfd;
  b[sof + 6] = 0xe8;
  b[sof + 7] = 0xfd;
  b[sof + 8] = 0xe8;
  ck_assert_int_eq(lvmmed_image_read_memory(img, b, n, "huge"), LVMMED_ERR_LIMIT);
  ck_assert_ptr_nonnull(strstr(lvmmed_ctx_last_error(ctx), "limit"));
  /* the middle of the entropy-coded data zeroed: corrupt data is an error, not a grey patch */
  memcpy(b, jpg, n);
  memset(b + n / 2, 0, 64);
  ck_assert_int_eq(lvmmed_image_read_memory(img, b, n, "zeroed"), LVMMED_ERR_FORMAT);
  free(b);
  free(jpg);
  lvmmed_image_free(img);
  lvmmed_ctx_release(ctx);
}
END_TEST

/* ================================================================== intensity & channels */

static int cmp_float(const void *a, const void *b) {
  float x = *(const float *)a, y = *(const float *)b;
  return (x > y) - (x < y);
}

/* numpy.percentile (linear) of n sorted values */
static double pct(const float *sorted, size_t n, double q) {
  double pos = q / 100.0 * (double)(n - 1);
  size_t k = (size_t)floor(pos);
  double f = pos - (double)k;
  if (k + 1 >= n) return sorted[n - 1];
  return sorted[k] + (sorted[k + 1] - sorted[k]) * f;
}

static void check_percentile_map(lvmmed_ctx *ctx, const char *file, double qa, double qb) {
  lvmmed_image *img;
  ck_assert_int_eq(lvmmed_image_create(ctx, &img), LVMMED_OK);
  ck_assert_lvmmed_ok(ctx, lvmmed_image_read_file(img, data_path(file)));
  size_t n = (size_t)(prop(img, LVMMED_IMAGE_WIDTH) * prop(img, LVMMED_IMAGE_HEIGHT));
  float *orig = malloc(n * sizeof(float)), *sorted = malloc(n * sizeof(float));
  memcpy(orig, lvmmed_image_data(img), n * sizeof(float));
  memcpy(sorted, orig, n * sizeof(float));
  qsort(sorted, n, sizeof(float), cmp_float);
  double lo = pct(sorted, n, qa), hi = pct(sorted, n, qb);
  ck_assert_lvmmed_ok(ctx, lvmmed_image_apply_intensity(img, LVMMED_INTENSITY_PERCENTILE, qa, qb));
  ck_assert_int_eq(prop(img, LVMMED_IMAGE_SAMPLE_FORMAT), LVMMED_SAMPLE_FLOAT);
  const float *d = lvmmed_image_data(img);
  double worst = 0;
  for (size_t i = 0; i < n; i++) {
    double want = (orig[i] - lo) / (hi - lo);
    want = want < 0 ? 0 : want > 1 ? 1 : want;
    worst = fmax(worst, fabs(d[i] - want));
  }
  ck_assert_msg(worst < 2e-6, "%s percentile map off by %g", file, worst);
  free(orig);
  free(sorted);
  lvmmed_image_free(img);
}

START_TEST(intensity_policies) {
  lvmmed_ctx *ctx = new_ctx();
  lvmmed_image *img;
  ck_assert_int_eq(lvmmed_image_create(ctx, &img), LVMMED_OK);
  /* percentiles: histogram path (uint16, int16) and selection path (float) */
  if (lvmmed_image_format_available(LVMMED_IMAGE_FORMAT_PNG)) {
    check_percentile_map(ctx, "mr_s1045_u16.png", 0.5, 99.5);
    check_percentile_map(ctx, "mr_s1045_u16.png", 13.7, 61.2);
  }
  if (lvmmed_image_format_available(LVMMED_IMAGE_FORMAT_TIFF)) {
    check_percentile_map(ctx, "ct_stent_i16.tif", 1, 99);
    check_percentile_map(ctx, "mr_inia19_f32.tif", 0.5, 99.5);
    check_percentile_map(ctx, "mr_inia19_f32.tif", 0, 100);
    /* CT window: level 40, width 400 -> [-160, 240] */
    ck_assert_lvmmed_ok(ctx, lvmmed_image_read_file(img, data_path("ct_stent_i16.tif")));
    size_t n = 128 * 128;
    float *orig = malloc(n * sizeof(float));
    memcpy(orig, lvmmed_image_data(img), n * sizeof(float));
    ck_assert_lvmmed_ok(ctx, lvmmed_image_apply_intensity(img, LVMMED_INTENSITY_WINDOW, 40, 400));
    for (size_t i = 0; i < n; i++) {
      double want = fmin(1, fmax(0, (orig[i] + 160.0) / 400.0));
      ck_assert(fabs(lvmmed_image_data(img)[i] - want) < 1e-6);
    }
    /* type range of int16 */
    ck_assert_lvmmed_ok(ctx, lvmmed_image_read_file(img, data_path("ct_stent_i16.tif")));
    ck_assert_lvmmed_ok(ctx, lvmmed_image_apply_intensity(img, LVMMED_INTENSITY_TYPE_RANGE, 0, 0));
    ck_assert(fabs(lvmmed_image_data(img)[0] - (orig[0] + 32768.0) / 65535.0) < 1e-6);
    free(orig);
  }
  if (lvmmed_image_format_available(LVMMED_IMAGE_FORMAT_PNG)) {
    /* AUTO: 8-bit -> v / 255, 16-bit -> percentiles */
    ck_assert_lvmmed_ok(ctx, lvmmed_image_read_file(img, data_path("mr_colin27_u8.png")));
    float v0 = lvmmed_image_data(img)[181 * 100 + 90];
    ck_assert_lvmmed_ok(ctx, lvmmed_image_apply_intensity(img, LVMMED_INTENSITY_AUTO, 0.5, 99.5));
    ck_assert(fabs(lvmmed_image_data(img)[181 * 100 + 90] - v0 / 255.0) < 1e-7);
    ck_assert_lvmmed_ok(ctx, lvmmed_image_read_file(img, data_path("mr_s1045_u16.png")));
    ck_assert_lvmmed_ok(ctx, lvmmed_image_apply_intensity(img, LVMMED_INTENSITY_MINMAX, 0, 0));
    double lo, hi;
    ck_assert_lvmmed_ok(ctx, lvmmed_image_range(img, &lo, &hi));
    ck_assert(lo == 0.0 && hi == 1.0);
  }
  /* non-finite values: ignored by statistics, mapped to 0 */
  float px[6] = {NAN, 2.0f, INFINITY, 4.0f, -INFINITY, 6.0f};
  ck_assert_lvmmed_ok(ctx, lvmmed_image_set_pixels(img, px, 1, 2, 3));
  double lo, hi;
  ck_assert_lvmmed_ok(ctx, lvmmed_image_range(img, &lo, &hi));
  ck_assert(lo == 2.0 && hi == 6.0);
  ck_assert_lvmmed_ok(ctx, lvmmed_image_apply_intensity(img, LVMMED_INTENSITY_MINMAX, 0, 0));
  const float *d = lvmmed_image_data(img);
  ck_assert(d[0] == 0.0f && d[1] == 0.0f && d[2] == 0.0f && d[3] == 0.5f && d[4] == 0.0f && d[5] == 1.0f);
  /* constant image -> 0; bad parameters are refused */
  float flat[4] = {3, 3, 3, 3};
  ck_assert_lvmmed_ok(ctx, lvmmed_image_set_pixels(img, flat, 1, 2, 2));
  ck_assert_lvmmed_ok(ctx, lvmmed_image_apply_intensity(img, LVMMED_INTENSITY_PERCENTILE, 1, 99));
  ck_assert(lvmmed_image_data(img)[3] == 0.0f);
  ck_assert_int_eq(lvmmed_image_apply_intensity(img, LVMMED_INTENSITY_PERCENTILE, 50, 50), LVMMED_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(lvmmed_image_apply_intensity(img, LVMMED_INTENSITY_PERCENTILE, -1, 50), LVMMED_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(lvmmed_image_apply_intensity(img, LVMMED_INTENSITY_PERCENTILE, NAN, 50), LVMMED_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(lvmmed_image_apply_intensity(img, LVMMED_INTENSITY_WINDOW, 40, 0), LVMMED_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(lvmmed_ctx_last_error(ctx), "width"));
  ck_assert_int_eq(lvmmed_image_apply_intensity(img, (lvmmed_intensity)77, 0, 1), LVMMED_ERR_INVALID_ARGUMENT);
  /* NONE leaves values alone */
  ck_assert_lvmmed_ok(ctx, lvmmed_image_set_pixels(img, px, 1, 2, 3));
  ck_assert_lvmmed_ok(ctx, lvmmed_image_apply_intensity(img, LVMMED_INTENSITY_NONE, 0, 0));
  ck_assert(lvmmed_image_data(img)[5] == 6.0f);
  lvmmed_image_free(img);
  lvmmed_ctx_release(ctx);
}
END_TEST

START_TEST(convert_channels) {
  lvmmed_ctx *ctx = new_ctx();
  lvmmed_image *img;
  ck_assert_int_eq(lvmmed_image_create(ctx, &img), LVMMED_OK);
  float g[6] = {0, 1, 2, 3, 4, 5};
  ck_assert_lvmmed_ok(ctx, lvmmed_image_set_pixels(img, g, 1, 2, 3));
  ck_assert_lvmmed_ok(ctx, lvmmed_image_convert_channels(img, 3));
  ck_assert_int_eq(prop(img, LVMMED_IMAGE_CHANNELS), 3);
  for (int c = 0; c < 3; c++)
    for (int i = 0; i < 6; i++) ck_assert(lvmmed_image_data(img)[c * 6 + i] == g[i]);
  float rgba[16] = {1, 0, 0.5f, 0.25f, 0, 1, 0.5f, 0.75f, 0, 0, 0.5f, 1, 9, 9, 9, 9};
  ck_assert_lvmmed_ok(ctx, lvmmed_image_set_pixels(img, rgba, 4, 2, 2));
  ck_assert_lvmmed_ok(ctx, lvmmed_image_convert_channels(img, 1));
  ck_assert_int_eq(prop(img, LVMMED_IMAGE_CHANNELS), 1);
  for (int i = 0; i < 4; i++) {
    float want = 0.2989f * rgba[i] + 0.587f * rgba[4 + i] + 0.114f * rgba[8 + i];
    ck_assert(lvmmed_image_data(img)[i] == want);
  }
  ck_assert_lvmmed_ok(ctx, lvmmed_image_set_pixels(img, rgba, 4, 2, 2));
  ck_assert_lvmmed_ok(ctx, lvmmed_image_convert_channels(img, 3)); /* drops alpha only */
  ck_assert_int_eq(prop(img, LVMMED_IMAGE_CHANNELS), 3);
  ck_assert(lvmmed_image_data(img)[11] == 1.0f);
  ck_assert_lvmmed_ok(ctx, lvmmed_image_set_pixels(img, rgba, 2, 2, 4)); /* gray + alpha */
  ck_assert_lvmmed_ok(ctx, lvmmed_image_convert_channels(img, 3));
  ck_assert(lvmmed_image_data(img)[8 + 3] == rgba[3]);
  ck_assert_int_eq(lvmmed_image_convert_channels(img, 2), LVMMED_ERR_INVALID_ARGUMENT);
  float five[5] = {0};
  ck_assert_lvmmed_ok(ctx, lvmmed_image_set_pixels(img, five, 5, 1, 1));
  ck_assert_int_eq(lvmmed_image_convert_channels(img, 1), LVMMED_ERR_UNSUPPORTED);
  ck_assert_int_eq(lvmmed_image_set_pixels(img, NULL, 1, 1, 1), LVMMED_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(lvmmed_image_set_pixels(img, five, 0, 1, 1), LVMMED_ERR_INVALID_ARGUMENT);
  lvmmed_image_free(img);
  lvmmed_ctx_release(ctx);
}
END_TEST

/* ================================================================== augmenter */

static lvmmed_image *load(lvmmed_ctx *ctx, const char *name) {
  lvmmed_image *img;
  ck_assert_int_eq(lvmmed_image_create(ctx, &img), LVMMED_OK);
  ck_assert_lvmmed_ok(ctx, lvmmed_image_read_file(img, data_path(name)));
  return img;
}

START_TEST(augmenter_options) {
  lvmmed_ctx *ctx = new_ctx();
  ck_assert_int_eq(lvmmed_ctx_set_option(ctx, LVMMED_CTX_OPT_SEED, 99), LVMMED_OK);
  lvmmed_augmenter *aug;
  ck_assert_int_eq(lvmmed_augmenter_create(ctx, NULL), LVMMED_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(lvmmed_augmenter_create(ctx, &aug), LVMMED_OK);
  static const struct {
    lvmmed_augment_option o;
    double v;
  } defaults[] = {{LVMMED_AUG_SIZE, 224},        {LVMMED_AUG_GRID, 7},          {LVMMED_AUG_SCALE_MIN, 0.08},
                  {LVMMED_AUG_SCALE_MAX, 1},     {LVMMED_AUG_RATIO_MIN, 0.75},  {LVMMED_AUG_RATIO_MAX, 4.0 / 3.0},
                  {LVMMED_AUG_FLIP_P, 0.5},      {LVMMED_AUG_MIRROR_GRID, 1},   {LVMMED_AUG_JITTER_P, 0.8},
                  {LVMMED_AUG_BRIGHTNESS, 0.8},  {LVMMED_AUG_CONTRAST, 0.8},    {LVMMED_AUG_SATURATION, 0.8},
                  {LVMMED_AUG_HUE, 0.2},         {LVMMED_AUG_GRAYSCALE_P, 0.2}, {LVMMED_AUG_BLUR_P, 0.5},
                  {LVMMED_AUG_BLUR_SIGMA_MIN, 0.1}, {LVMMED_AUG_BLUR_SIGMA_MAX, 2.0}, {LVMMED_AUG_GRAY_OUTPUT, 1},
                  {LVMMED_AUG_MEAN_R, 0.485},    {LVMMED_AUG_STD_B, 0.225},     {LVMMED_AUG_INTENSITY, LVMMED_INTENSITY_AUTO}};
  for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++) {
    double v;
    ck_assert_int_eq(lvmmed_augmenter_get_option(aug, defaults[i].o, &v), LVMMED_OK);
    ck_assert_msg(v == defaults[i].v, "option %d = %g", (int)defaults[i].o, v);
  }
  uint64_t seed;
  ck_assert_int_eq(lvmmed_augmenter_get_seed(aug, &seed), LVMMED_OK);
  ck_assert_uint_eq(seed, 99);
  for (int o = 1; o <= LVMMED_AUG_INTENSITY_B; o++) {
    double lo, hi;
    ck_assert_int_eq(lvmmed_augmenter_option_bounds((lvmmed_augment_option)o, &lo, &hi), LVMMED_OK);
    ck_assert(lo <= hi);
    ck_assert_int_eq(lvmmed_augmenter_set_option(aug, (lvmmed_augment_option)o, hi + 1), LVMMED_ERR_OUT_OF_RANGE);
    ck_assert_int_eq(lvmmed_augmenter_set_option(aug, (lvmmed_augment_option)o, NAN), LVMMED_ERR_OUT_OF_RANGE);
  }
  ck_assert_int_eq(lvmmed_augmenter_option_bounds((lvmmed_augment_option)0, NULL, NULL), LVMMED_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(lvmmed_augmenter_set_option(aug, LVMMED_AUG_SIZE, 100.5), LVMMED_ERR_OUT_OF_RANGE);
  ck_assert_int_eq(lvmmed_augmenter_set_option(aug, LVMMED_AUG_BLUR_KERNEL, 12), LVMMED_ERR_OUT_OF_RANGE);
  ck_assert_int_eq(lvmmed_augmenter_set_option(aug, LVMMED_AUG_BLUR_KERNEL, 13), LVMMED_OK);
  ck_assert_int_eq(lvmmed_augmenter_set_option(aug, LVMMED_AUG_SIZE, 96), LVMMED_OK);
  ck_assert_int_eq(lvmmed_augmenter_set_option(aug, LVMMED_AUG_GRID, 3), LVMMED_OK);
  size_t np, ng;
  ck_assert_int_eq(lvmmed_augmenter_view_size(aug, &np, &ng), LVMMED_OK);
  ck_assert_uint_eq(np, 3 * 96 * 96);
  ck_assert_uint_eq(ng, 3 * 3 * 2);
  lvmmed_augmenter_free(aug);
  lvmmed_augmenter_free(NULL);
  ck_assert_uint_eq(lvmmed_ctx_refcount(ctx), 1);
  lvmmed_ctx_release(ctx);
}
END_TEST

START_TEST(augmenter_deterministic) {
  if (!lvmmed_image_format_available(LVMMED_IMAGE_FORMAT_PNG)) return;
  lvmmed_ctx *ctx = new_ctx();
  lvmmed_image *img = load(ctx, "ihc_rgb.png");
  lvmmed_augmenter *aug;
  ck_assert_int_eq(lvmmed_augmenter_create(ctx, &aug), LVMMED_OK);
  ck_assert_int_eq(lvmmed_augmenter_set_option(aug, LVMMED_AUG_SIZE, 64), LVMMED_OK);
  ck_assert_int_eq(lvmmed_augmenter_set_option(aug, LVMMED_AUG_GRAY_OUTPUT, 0), LVMMED_OK);
  size_t np, ng;
  lvmmed_augmenter_view_size(aug, &np, &ng);
  float *a = malloc(2 * np * sizeof(float)), *b = malloc(2 * np * sizeof(float));
  float ga[2 * 98], gb[2 * 98];
  int32_t pa[2 * LVMMED_VIEW_PARAMS], pb[2 * LVMMED_VIEW_PARAMS];
  ck_assert_lvmmed_ok(ctx, lvmmed_augmenter_views(aug, img, 17, 3, 0, 2, a, ga, pa));
  /* the same views again, one at a time and in the other order, with another thread count */
  ck_assert_int_eq(lvmmed_ctx_set_option(ctx, LVMMED_CTX_OPT_THREADS, 3), LVMMED_OK);
  ck_assert_lvmmed_ok(ctx, lvmmed_augmenter_views(aug, img, 17, 3, 1, 1, b + np, gb + 98, pb + LVMMED_VIEW_PARAMS));
  ck_assert_lvmmed_ok(ctx, lvmmed_augmenter_views(aug, img, 17, 3, 0, 1, b, gb, pb));
  ck_assert(memcmp(a, b, 2 * np * sizeof(float)) == 0);
  ck_assert(memcmp(ga, gb, sizeof ga) == 0);
  ck_assert(memcmp(pa, pb, sizeof pa) == 0);
  /* the two views differ; so do other images, epochs and seeds */
  ck_assert(memcmp(a, a + np, np * sizeof(float)) != 0);
  ck_assert_lvmmed_ok(ctx, lvmmed_augmenter_views(aug, img, 18, 3, 0, 1, b, NULL, NULL));
  ck_assert(memcmp(a, b, np * sizeof(float)) != 0);
  ck_assert_lvmmed_ok(ctx, lvmmed_augmenter_views(aug, img, 17, 4, 0, 1, b, NULL, NULL));
  ck_assert(memcmp(a, b, np * sizeof(float)) != 0);
  ck_assert_int_eq(lvmmed_augmenter_set_seed(aug, 1234), LVMMED_OK);
  ck_assert_lvmmed_ok(ctx, lvmmed_augmenter_views(aug, img, 17, 3, 0, 1, b, NULL, NULL));
  ck_assert(memcmp(a, b, np * sizeof(float)) != 0);
  /* every output is finite */
  for (size_t i = 0; i < 2 * np; i++) ck_assert(isfinite(a[i]));
  free(a);
  free(b);
  lvmmed_augmenter_free(aug);
  lvmmed_image_free(img);
  lvmmed_ctx_release(ctx);
}
END_TEST

START_TEST(augmenter_crop_statistics_and_grid) {
  lvmmed_ctx *ctx = new_ctx();
  lvmmed_image *img;
  ck_assert_int_eq(lvmmed_image_create(ctx, &img), LVMMED_OK);
  enum { H = 150, W = 210 };
  float *px = malloc(H * W * sizeof(float));
  for (int i = 0; i < H * W; i++) px[i] = (float)(i % 97) / 96.0f;
  ck_assert_lvmmed_ok(ctx, lvmmed_image_set_pixels(img, px, 1, H, W));
  lvmmed_augmenter *aug;
  ck_assert_int_eq(lvmmed_augmenter_create(ctx, &aug), LVMMED_OK);
  ck_assert_int_eq(lvmmed_augmenter_set_option(aug, LVMMED_AUG_SIZE, 16), LVMMED_OK);
  float view[3 * 16 * 16], grid[7 * 7 * 2];
  int32_t p[LVMMED_VIEW_PARAMS];
  int flips = 0, fallback = 0;
  const int draws = 400;
  for (int i = 0; i < draws; i++) {
    ck_assert_lvmmed_ok(ctx, lvmmed_augmenter_views(aug, img, (uint64_t)i, 0, 0, 1, view, grid, p));
    int32_t top = p[0], left = p[1], h = p[2], w = p[3];
    ck_assert(top >= 0 && left >= 0 && h >= 1 && w >= 1 && top + h <= H && left + w <= W);
    double frac = (double)h * w / (H * W), ratio = (double)w / h;
    if (frac < 0.075 || ratio < 0.74 || ratio > 1.35) fallback++;
    flips += p[4];
    /* grid: centre of cell (k, l), columns mirrored on flip */
    for (int k = 0; k < 7; k++)
      for (int l = 0; l < 7; l++) {
        int lc = p[4] ? 6 - l : l;
        ck_assert(fabs(grid[(k * 7 + l) * 2] - (top + (k + 0.5) * h / 7.0)) < 1e-3);
        ck_assert(fabs(grid[(k * 7 + l) * 2 + 1] - (left + (lc + 0.5) * w / 7.0)) < 1e-3);
      }
  }
  ck_assert_msg(fallback == 0, "%d crops outside the scale/ratio ranges", fallback);
  ck_assert_msg(flips > draws * 0.4 && flips < draws * 0.6, "%d flips of %d", flips, draws);
  /* VICRegL's quirk: the grid is not mirrored */
  ck_assert_int_eq(lvmmed_augmenter_set_option(aug, LVMMED_AUG_MIRROR_GRID, 0), LVMMED_OK);
  for (int i = 0; i < 20; i++) {
    ck_assert_lvmmed_ok(ctx, lvmmed_augmenter_views(aug, img, (uint64_t)i, 0, 0, 1, view, grid, p));
    ck_assert(fabs(grid[1] - (p[1] + 0.5 * p[3] / 7.0)) < 1e-3);
  }
  /* gray output: three equal channels before normalisation */
  ck_assert_int_eq(lvmmed_augmenter_set_option(aug, LVMMED_AUG_MEAN_G, 0.485), LVMMED_OK);
  ck_assert_int_eq(lvmmed_augmenter_set_option(aug, LVMMED_AUG_STD_G, 0.228), LVMMED_OK);
  ck_assert_lvmmed_ok(ctx, lvmmed_augmenter_views(aug, img, 5, 0, 0, 1, view, NULL, NULL));
  ck_assert(memcmp(view, view + 256, 256 * sizeof(float)) == 0);
  /* errors */
  ck_assert_int_eq(lvmmed_augmenter_views(aug, img, LVMMED_AUG_MAX_INDEX, 0, 0, 1, view, NULL, NULL),
                   LVMMED_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(lvmmed_augmenter_views(aug, img, 0, LVMMED_AUG_MAX_EPOCH, 0, 1, view, NULL, NULL),
                   LVMMED_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(lvmmed_augmenter_views(aug, img, 0, 0, 7, 2, view, NULL, NULL), LVMMED_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(lvmmed_augmenter_views(aug, img, 0, 0, 0, 1, NULL, NULL, NULL), LVMMED_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(lvmmed_augmenter_views(aug, NULL, 0, 0, 0, 1, view, NULL, NULL), LVMMED_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(lvmmed_augmenter_set_option(aug, LVMMED_AUG_SCALE_MIN, 0.9), LVMMED_OK);
  ck_assert_int_eq(lvmmed_augmenter_set_option(aug, LVMMED_AUG_SCALE_MAX, 0.5), LVMMED_OK);
  ck_assert_int_eq(lvmmed_augmenter_views(aug, img, 0, 0, 0, 1, view, NULL, NULL), LVMMED_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(lvmmed_ctx_last_error(ctx), "scale range"));
  ck_assert_int_eq(lvmmed_augmenter_set_option(aug, LVMMED_AUG_SCALE_MAX, 1), LVMMED_OK);
  float five[5 * 4] = {0};
  ck_assert_lvmmed_ok(ctx, lvmmed_image_set_pixels(img, five, 5, 2, 2));
  ck_assert_int_eq(lvmmed_augmenter_views(aug, img, 0, 0, 0, 1, view, NULL, NULL), LVMMED_ERR_UNSUPPORTED);
  lvmmed_image *empty;
  ck_assert_int_eq(lvmmed_image_create(ctx, &empty), LVMMED_OK);
  ck_assert_int_eq(lvmmed_augmenter_views(aug, empty, 0, 0, 0, 1, view, NULL, NULL), LVMMED_ERR_STATE);
  /* a 1 x 1 image still gives views (every crop is the fallback) */
  float one = 0.5f;
  ck_assert_lvmmed_ok(ctx, lvmmed_image_set_pixels(img, &one, 1, 1, 1));
  ck_assert_lvmmed_ok(ctx, lvmmed_augmenter_views(aug, img, 0, 0, 0, 1, view, grid, p));
  ck_assert(p[2] == 1 && p[3] == 1);
  lvmmed_image_free(empty);
  lvmmed_augmenter_free(aug);
  lvmmed_image_free(img);
  free(px);
  lvmmed_ctx_release(ctx);
}
END_TEST

/* ================================================================== dataset */

typedef struct log_sink {
  int warnings;
  char last[1024];
} log_sink;

static void on_log(void *user, lvmmed_log_level level, const char *msg) {
  log_sink *s = user;
  if (level == LVMMED_LOG_WARN) {
    s->warnings++;
    snprintf(s->last, sizeof s->last, "%s", msg);
  }
}

static char tmp_root[64];

static void copy_file(const char *from, const char *to) {
  size_t n;
  unsigned char *b = slurp(from, &n);
  spit(to, b, n);
  free(b);
}

/* root/a/<fixtures>, root/b/sub/mr_colin27_u8.png, root/b/bad.png (truncated),
 * root/b/notes.txt, root/b/.hidden.png; returns the number of decodable images. */
static int make_tree(void) {
  snprintf(tmp_root, sizeof tmp_root, "/tmp/lvmmed_ds_XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(tmp_root));
  char p[1200], q[1200];
  snprintf(p, sizeof p, "%s/a", tmp_root);
  mkdir(p, 0700);
  snprintf(p, sizeof p, "%s/b", tmp_root);
  mkdir(p, 0700);
  snprintf(p, sizeof p, "%s/b/sub", tmp_root);
  mkdir(p, 0700);
  int good = 0;
  for (size_t i = 0; i < NFIX; i++) {
    if (!available(FIXTURES[i])) continue;
    snprintf(q, sizeof q, "%s/a/%s", tmp_root, FIXTURES[i]);
    copy_file(data_path(FIXTURES[i]), q);
    good++;
  }
  if (lvmmed_image_format_available(LVMMED_IMAGE_FORMAT_PNG)) {
    snprintf(q, sizeof q, "%s/b/sub/colin.PNG", tmp_root);
    copy_file(data_path("mr_colin27_u8.png"), q);
    good++;
    size_t n;
    unsigned char *b = slurp(data_path("ihc_rgb.png"), &n);
    snprintf(q, sizeof q, "%s/b/bad.png", tmp_root);
    spit(q, b, n / 2);
    snprintf(q, sizeof q, "%s/b/.hidden.png", tmp_root);
    spit(q, b, n);
    free(b);
  }
  snprintf(q, sizeof q, "%s/b/notes.txt", tmp_root);
  spit(q, "not an image\n", 13);
  return good;
}

static void remove_tree(void) {
  char cmd[200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_root);
  ck_assert_int_eq(system(cmd), 0);
}

/* Runs one epoch with batches of B; returns all views and items (malloc'ed) and the count. */
static size_t run_epoch(lvmmed_ctx *ctx, lvmmed_dataset *ds, uint32_t epoch, size_t B, size_t view, size_t grid,
                        float **views, float **grids, int64_t **items) {
  int64_t total;
  lvmmed_dataset_stat(ds, LVMMED_DATASET_ITEMS, &total);
  *views = malloc((size_t)total * 2 * view * sizeof(float));
  *grids = malloc((size_t)total * 2 * grid * sizeof(float));
  *items = malloc((size_t)total * sizeof(int64_t));
  float *s = malloc(B * view * sizeof(float)), *t = malloc(B * view * sizeof(float));
  float *gs = malloc(B * grid * sizeof(float)), *gt = malloc(B * grid * sizeof(float));
  int64_t *it = malloc(B * sizeof(int64_t));
  ck_assert_lvmmed_ok(ctx, lvmmed_dataset_start_epoch(ds, epoch));
  size_t got = 0, n;
  do {
    ck_assert_lvmmed_ok(ctx, lvmmed_dataset_next_batch(ds, B, s, t, gs, gt, it, &n));
    ck_assert(n <= B);
    for (size_t b = 0; b < n; b++, got++) {
      memcpy(*views + (2 * got) * view, s + b * view, view * sizeof(float));
      memcpy(*views + (2 * got + 1) * view, t + b * view, view * sizeof(float));
      memcpy(*grids + (2 * got) * grid, gs + b * grid, grid * sizeof(float));
      memcpy(*grids + (2 * got + 1) * grid, gt + b * grid, grid * sizeof(float));
      (*items)[got] = it[b];
    }
  } while (n > 0);
  /* the epoch is over: more calls give nothing */
  ck_assert_lvmmed_ok(ctx, lvmmed_dataset_next_batch(ds, B, s, t, NULL, NULL, NULL, &n));
  ck_assert_uint_eq(n, 0);
  free(s);
  free(t);
  free(gs);
  free(gt);
  free(it);
  return got;
}

static lvmmed_dataset *make_dataset(lvmmed_ctx *ctx, int workers, int queue) {
  lvmmed_augmenter *aug;
  ck_assert_int_eq(lvmmed_augmenter_create(ctx, &aug), LVMMED_OK);
  ck_assert_int_eq(lvmmed_augmenter_set_seed(aug, 2024), LVMMED_OK);
  ck_assert_int_eq(lvmmed_augmenter_set_option(aug, LVMMED_AUG_SIZE, 32), LVMMED_OK);
  ck_assert_int_eq(lvmmed_augmenter_set_option(aug, LVMMED_AUG_GRID, 4), LVMMED_OK);
  lvmmed_dataset *ds;
  ck_assert_int_eq(lvmmed_dataset_create(ctx, aug, &ds), LVMMED_OK);
  lvmmed_augmenter_free(aug); /* the dataset keeps its own copy */
  ck_assert_int_eq(lvmmed_dataset_set_option(ds, LVMMED_DATASET_OPT_WORKERS, workers), LVMMED_OK);
  ck_assert_int_eq(lvmmed_dataset_set_option(ds, LVMMED_DATASET_OPT_QUEUE, queue), LVMMED_OK);
  char p[1200];
  snprintf(p, sizeof p, "%s", tmp_root);
  ck_assert_lvmmed_ok(ctx, lvmmed_dataset_add_folder(ds, p));
  return ds;
}

START_TEST(dataset_listing) {
  int good = make_tree();
  lvmmed_ctx *ctx = new_ctx();
  lvmmed_dataset *ds = make_dataset(ctx, 1, 4);
  int64_t items;
  ck_assert_int_eq(lvmmed_dataset_stat(ds, LVMMED_DATASET_ITEMS, &items), LVMMED_OK);
  int bad = lvmmed_image_format_available(LVMMED_IMAGE_FORMAT_PNG) ? 1 : 0;
  ck_assert_int_eq(items, good + bad);
  for (int64_t i = 1; i < items; i++)
    ck_assert_msg(strcmp(lvmmed_dataset_item_path(ds, (size_t)i - 1), lvmmed_dataset_item_path(ds, (size_t)i)) < 0,
                  "not sorted: %s, %s", lvmmed_dataset_item_path(ds, (size_t)i - 1),
                  lvmmed_dataset_item_path(ds, (size_t)i));
  for (int64_t i = 0; i < items; i++) {
    ck_assert_ptr_null(strstr(lvmmed_dataset_item_path(ds, (size_t)i), "hidden"));
    ck_assert_ptr_null(strstr(lvmmed_dataset_item_path(ds, (size_t)i), "notes"));
  }
  ck_assert_ptr_null(lvmmed_dataset_item_path(ds, (size_t)items));
  /* non-recursive: only the top level (which has no images) */
  lvmmed_dataset *flat;
  lvmmed_augmenter *aug;
  ck_assert_int_eq(lvmmed_augmenter_create(ctx, &aug), LVMMED_OK);
  ck_assert_int_eq(lvmmed_dataset_create(ctx, aug, &flat), LVMMED_OK);
  ck_assert_int_eq(lvmmed_dataset_set_option(flat, LVMMED_DATASET_OPT_RECURSIVE, 0), LVMMED_OK);
  ck_assert_lvmmed_ok(ctx, lvmmed_dataset_add_folder(flat, tmp_root));
  ck_assert_int_eq(lvmmed_dataset_stat(flat, LVMMED_DATASET_ITEMS, &items), LVMMED_OK);
  ck_assert_int_eq(items, 0);
  ck_assert_int_eq(lvmmed_dataset_start_epoch(flat, 0), LVMMED_ERR_STATE);
  /* a list file: comments, blank lines, CRLF, relative and absolute paths */
  char list[1200], line[3000];
  snprintf(list, sizeof list, "%s/list.txt", tmp_root);
  snprintf(line, sizeof line, "# training images\r\n\r\na/ihc_rgb.png\r\n  %s/a/mr_colin27_u8.png  \n\nb/bad.png\n",
           tmp_root);
  spit(list, line, strlen(line));
  ck_assert_lvmmed_ok(ctx, lvmmed_dataset_add_list(flat, list));
  ck_assert_int_eq(lvmmed_dataset_stat(flat, LVMMED_DATASET_ITEMS, &items), LVMMED_OK);
  ck_assert_int_eq(items, 3);
  snprintf(line, sizeof line, "%s/a/ihc_rgb.png", tmp_root);
  ck_assert_str_eq(lvmmed_dataset_item_path(flat, 0), line);
  snprintf(line, sizeof line, "%s/missing.txt", tmp_root);
  ck_assert_int_eq(lvmmed_dataset_add_list(flat, line), LVMMED_ERR_NOT_FOUND);
  ck_assert_ptr_nonnull(strstr(lvmmed_ctx_last_error(ctx), "missing.txt"));
  snprintf(line, sizeof line, "%s/nowhere", tmp_root);
  ck_assert_int_eq(lvmmed_dataset_add_folder(flat, line), LVMMED_ERR_NOT_FOUND);
  ck_assert_int_eq(lvmmed_dataset_add_file(flat, ""), LVMMED_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(lvmmed_dataset_next_batch(flat, 0, NULL, NULL, NULL, NULL, NULL, &(size_t){0}), LVMMED_ERR_STATE);
  lvmmed_dataset_free(flat);
  lvmmed_augmenter_free(aug);
  lvmmed_dataset_free(ds);
  lvmmed_dataset_free(NULL);
  ck_assert_uint_eq(lvmmed_ctx_refcount(ctx), 1);
  lvmmed_ctx_release(ctx);
  remove_tree();
}
END_TEST

START_TEST(dataset_same_batches_for_any_thread_count) {
  if (!lvmmed_image_format_available(LVMMED_IMAGE_FORMAT_PNG)) return;
  int good = make_tree();
  size_t view = 3 * 32 * 32, grid = 4 * 4 * 2;
  float *ref_views = NULL, *ref_grids = NULL;
  int64_t *ref_items = NULL;
  size_t ref_n = 0;
  static const int configs[][3] = {{0, 1, 1}, {1, 1, 4}, {2, 2, 3}, {3, 1, 1}, {0, 3, 16}, {4, 2, 64}};
  for (size_t c = 0; c < sizeof configs / sizeof configs[0]; c++) {
    lvmmed_ctx *ctx = new_ctx();
    ck_assert_int_eq(lvmmed_ctx_set_option(ctx, LVMMED_CTX_OPT_THREADS, configs[c][1]), LVMMED_OK);
    log_sink sink = {0};
    lvmmed_ctx_set_log_callback(ctx, on_log, &sink);
    lvmmed_dataset *ds = make_dataset(ctx, configs[c][0], configs[c][2]);
    float *v, *g;
    int64_t *it;
    size_t n = run_epoch(ctx, ds, 0, 3, view, grid, &v, &g, &it);
    ck_assert_uint_eq(n, (size_t)good);
    ck_assert_int_eq(sink.warnings, 1);
    ck_assert_msg(strstr(sink.last, "bad.png") != NULL, "%s", sink.last);
    int64_t skipped, delivered, pos;
    lvmmed_dataset_stat(ds, LVMMED_DATASET_SKIPPED, &skipped);
    lvmmed_dataset_stat(ds, LVMMED_DATASET_DELIVERED, &delivered);
    lvmmed_dataset_stat(ds, LVMMED_DATASET_POSITION, &pos);
    ck_assert_int_eq(skipped, 1);
    ck_assert_int_eq(delivered, good);
    ck_assert_int_eq(pos, good + 1);
    /* every good item exactly once */
    for (size_t i = 0; i < n; i++)
      for (size_t j = i + 1; j < n; j++) ck_assert(it[i] != it[j]);
    if (c == 0) {
      ref_views = v;
      ref_grids = g;
      ref_items = it;
      ref_n = n;
    } else {
      ck_assert(memcmp(it, ref_items, n * sizeof *it) == 0);
      ck_assert_msg(memcmp(v, ref_views, n * 2 * view * sizeof(float)) == 0, "views differ with config %zu", c);
      ck_assert(memcmp(g, ref_grids, n * 2 * grid * sizeof(float)) == 0);
      free(v);
      free(g);
      free(it);
    }
    /* the next epoch visits another order and makes other views */
    if (c < 2) {
      float *v1, *g1;
      int64_t *it1;
      size_t n1 = run_epoch(ctx, ds, 1, 4, view, grid, &v1, &g1, &it1);
      ck_assert_uint_eq(n1, ref_n);
      ck_assert(memcmp(it1, ref_items, n1 * sizeof *it1) != 0);
      ck_assert(memcmp(v1, ref_views, view * sizeof(float)) != 0);
      free(v1);
      free(g1);
      free(it1);
    }
    lvmmed_dataset_free(ds);
    lvmmed_ctx_release(ctx);
  }
  free(ref_views);
  free(ref_grids);
  free(ref_items);
  remove_tree();
}
END_TEST

START_TEST(dataset_strict_shuffle_off_and_states) {
  if (!lvmmed_image_format_available(LVMMED_IMAGE_FORMAT_PNG)) return;
  int good = make_tree();
  lvmmed_ctx *ctx = new_ctx();
  lvmmed_dataset *ds = make_dataset(ctx, 2, 2);
  ck_assert_int_eq(lvmmed_dataset_set_option(ds, LVMMED_DATASET_OPT_STRICT, 1), LVMMED_OK);
  ck_assert_int_eq(lvmmed_dataset_set_option(ds, LVMMED_DATASET_OPT_SHUFFLE, 0), LVMMED_OK);
  ck_assert_int_eq(lvmmed_dataset_set_option(ds, LVMMED_DATASET_OPT_QUEUE, 0), LVMMED_ERR_OUT_OF_RANGE);
  int64_t v;
  ck_assert_int_eq(lvmmed_dataset_get_option(ds, LVMMED_DATASET_OPT_WORKERS, &v), LVMMED_OK);
  ck_assert_int_eq(v, 2);
  size_t view = 3 * 32 * 32, n;
  float *s = malloc(64 * view * sizeof(float)), *t = malloc(64 * view * sizeof(float));
  int64_t items[64];
  ck_assert_lvmmed_ok(ctx, lvmmed_dataset_start_epoch(ds, 0));
  ck_assert_int_eq(lvmmed_dataset_set_option(ds, LVMMED_DATASET_OPT_WORKERS, 1), LVMMED_ERR_STATE);
  ck_assert_int_eq(lvmmed_dataset_add_file(ds, "x.png"), LVMMED_ERR_STATE);
  /* list order: a/... (good) before b/bad.png before b/sub/colin.PNG */
  lvmmed_status st = lvmmed_dataset_next_batch(ds, 64, s, t, NULL, NULL, items, &n);
  ck_assert_int_eq(st, LVMMED_ERR_FORMAT);
  ck_assert_msg(strstr(lvmmed_ctx_last_error(ctx), "bad.png") != NULL, "%s", lvmmed_ctx_last_error(ctx));
  ck_assert_uint_eq(n, (size_t)good - 1);
  for (size_t i = 0; i < n; i++) ck_assert_int_eq(items[i], (int64_t)i);
  ck_assert_lvmmed_ok(ctx, lvmmed_dataset_next_batch(ds, 64, s, t, NULL, NULL, items, &n));
  ck_assert_uint_eq(n, 1);
  ck_assert_int_eq(items[0], good);
  ck_assert_lvmmed_ok(ctx, lvmmed_dataset_next_batch(ds, 64, s, t, NULL, NULL, items, &n));
  ck_assert_uint_eq(n, 0);
  ck_assert_int_eq(lvmmed_dataset_set_option(ds, LVMMED_DATASET_OPT_WORKERS, 1), LVMMED_OK);
  /* restart mid-epoch, and free while the workers are busy */
  ck_assert_lvmmed_ok(ctx, lvmmed_dataset_start_epoch(ds, 5));
  ck_assert_lvmmed_ok(ctx, lvmmed_dataset_next_batch(ds, 1, s, t, NULL, NULL, items, &n));
  ck_assert_lvmmed_ok(ctx, lvmmed_dataset_start_epoch(ds, 6));
  int64_t epoch;
  lvmmed_dataset_stat(ds, LVMMED_DATASET_EPOCH, &epoch);
  ck_assert_int_eq(epoch, 6);
  ck_assert_int_eq(lvmmed_dataset_start_epoch(ds, LVMMED_AUG_MAX_EPOCH), LVMMED_ERR_OUT_OF_RANGE);
  ck_assert_int_eq(lvmmed_dataset_next_batch(ds, 4, NULL, t, NULL, NULL, NULL, &n), LVMMED_ERR_INVALID_ARGUMENT);
  lvmmed_dataset_free(ds);
  free(s);
  free(t);
  lvmmed_ctx_release(ctx);
  remove_tree();
}
END_TEST

START_TEST(dataset_all_pages) {
#if LVMMED_HAVE_TIFF
  make_tree();
  char path[1200];
  snprintf(path, sizeof path, "%s/stack.tif", tmp_root);
  TIFF *tif = TIFFOpen(path, "w");
  ck_assert_ptr_nonnull(tif);
  unsigned char row[40];
  for (int page = 0; page < 3; page++) {
    TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, 40);
    TIFFSetField(tif, TIFFTAG_IMAGELENGTH, 30);
    TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, 8);
    TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, 1);
    TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISBLACK);
    TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, 30);
    for (int y = 0; y < 30; y++) {
      for (int x = 0; x < 40; x++) row[x] = (unsigned char)((x * 5 + y * 3 + page * 70) & 0xff);
      ck_assert_int_eq(TIFFWriteScanline(tif, row, (uint32_t)y, 0), 1);
    }
    TIFFWriteDirectory(tif);
  }
  TIFFClose(tif);
  lvmmed_ctx *ctx = new_ctx();
  lvmmed_augmenter *aug;
  ck_assert_int_eq(lvmmed_augmenter_create(ctx, &aug), LVMMED_OK);
  ck_assert_int_eq(lvmmed_augmenter_set_option(aug, LVMMED_AUG_SIZE, 16), LVMMED_OK);
  lvmmed_dataset *ds;
  ck_assert_int_eq(lvmmed_dataset_create(ctx, aug, &ds), LVMMED_OK);
  ck_assert_int_eq(lvmmed_dataset_set_option(ds, LVMMED_DATASET_OPT_ALL_PAGES, 1), LVMMED_OK);
  ck_assert_int_eq(lvmmed_dataset_set_option(ds, LVMMED_DATASET_OPT_SHUFFLE, 0), LVMMED_OK);
  ck_assert_lvmmed_ok(ctx, lvmmed_dataset_add_file(ds, path));
  int64_t items;
  lvmmed_dataset_stat(ds, LVMMED_DATASET_ITEMS, &items);
  ck_assert_int_eq(items, 3);
  float s[3 * 3 * 256], t[3 * 3 * 256];
  size_t n;
  ck_assert_lvmmed_ok(ctx, lvmmed_dataset_start_epoch(ds, 0));
  ck_assert_lvmmed_ok(ctx, lvmmed_dataset_next_batch(ds, 3, s, t, NULL, NULL, NULL, &n));
  ck_assert_uint_eq(n, 3);
  ck_assert(memcmp(s, s + 768, 768 * sizeof(float)) != 0);
  lvmmed_dataset_free(ds);
  lvmmed_augmenter_free(aug);
  lvmmed_ctx_release(ctx);
  remove_tree();
#endif
}
END_TEST

static Suite *image_suite(void) {
  Suite *s = suite_create("image");
  TCase *api = tcase_create("api");
  tcase_add_test(api, image_options);
  tcase_add_test(api, image_detect_format);
  tcase_add_test(api, image_read_errors_name_the_file);
  tcase_add_test(api, image_memory_equals_file);
  tcase_add_test(api, image_pixel_and_file_limits);
  tcase_add_test(api, intensity_policies);
  tcase_add_test(api, convert_channels);
  suite_add_tcase(s, api);
  TCase *bad = tcase_create("malformed");
  tcase_set_timeout(bad, 120);
  tcase_add_test(bad, png_malformed);
  tcase_add_test(bad, tiff_malformed);
  tcase_add_test(bad, jpeg_malformed);
  suite_add_tcase(s, bad);
  TCase *aug = tcase_create("augment");
  tcase_set_timeout(aug, 60);
  tcase_add_test(aug, augmenter_options);
  tcase_add_test(aug, augmenter_deterministic);
  tcase_add_test(aug, augmenter_crop_statistics_and_grid);
  suite_add_tcase(s, aug);
  TCase *ds = tcase_create("dataset");
  tcase_set_timeout(ds, 120);
  tcase_add_test(ds, dataset_listing);
  tcase_add_test(ds, dataset_same_batches_for_any_thread_count);
  tcase_add_test(ds, dataset_strict_shuffle_off_and_states);
  tcase_add_test(ds, dataset_all_pages);
  suite_add_tcase(s, ds);
  return s;
}

int main(void) { return run_suite(image_suite()); }
