/* lvmmed image info|decode: what a file holds, and its pixels as .npy for checking against other decoders. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lvmmed/lvmmed.h>

#include "cli.h"
#include "npy.h"

static const char usage_text[] =
    "usage: lvmmed image info FILE [--page K] [--json]\n"
    "       lvmmed image decode FILE --out X.npy [--page K]\n\n"
    "info    prints the format, size, channels, pages, bit depth, sample format and the\n"
    "        value range (actual and nominal) of page K (default 0) of a PNG, TIFF or JPEG.\n"
    "decode  writes page K as a float32 array of shape C x H x W holding the original\n"
    "        sample values (no normalisation; palettes expanded, alpha kept last).\n\n"
    "Exit status: 0 success, 1 the file could not be decoded, 2 bad usage.\n";

static int parse_page(const char *s, int64_t *page) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || end == s || *end || v < 0 || v > 65535) return 0;
  *page = v;
  return 1;
}

static int get(const lvmmed_image *img, lvmmed_image_property p) {
  int64_t v = 0;
  lvmmed_image_get(img, p, &v);
  return (int)v;
}

/* JSON string body: escapes quotes, backslashes and control characters. */
static void json_string(const char *s) {
  putchar('"');
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') printf("\\%c", c);
    else if (c < 0x20) printf("\\u%04x", c);
    else putchar(c);
  }
  putchar('"');
}

static void print_info(const char *path, const lvmmed_image *img, int json) {
  double lo = 0, hi = 0, nlo = 0, nhi = 0;
  int have_range = lvmmed_image_range(img, &lo, &hi) == LVMMED_OK;
  lvmmed_image_nominal_range(img, &nlo, &nhi);
  const char *fmt = lvmmed_image_format_name((lvmmed_image_format)get(img, LVMMED_IMAGE_FORMAT));
  const char *sample = lvmmed_sample_format_name((lvmmed_sample_format)get(img, LVMMED_IMAGE_SAMPLE_FORMAT));
  if (json) {
    printf("{\"file\":");
    json_string(path);
    printf(",\"format\":\"%s\",\"width\":%d,\"height\":%d,\"channels\":%d,\"pages\":%d,\"page\":%d,"
           "\"bit_depth\":%d,\"sample_format\":\"%s\",\"alpha\":%s,\"palette\":%s,",
           fmt, get(img, LVMMED_IMAGE_WIDTH), get(img, LVMMED_IMAGE_HEIGHT), get(img, LVMMED_IMAGE_CHANNELS),
           get(img, LVMMED_IMAGE_PAGES), get(img, LVMMED_IMAGE_PAGE), get(img, LVMMED_IMAGE_BIT_DEPTH), sample,
           get(img, LVMMED_IMAGE_HAS_ALPHA) ? "true" : "false", get(img, LVMMED_IMAGE_PALETTE) ? "true" : "false");
    if (have_range) printf("\"min\":%.9g,\"max\":%.9g,", lo, hi);
    else printf("\"min\":null,\"max\":null,");
    printf("\"nominal_min\":%.9g,\"nominal_max\":%.9g}\n", nlo, nhi);
    return;
  }
  printf("file:          %s\n", path);
  printf("format:        %s\n", fmt);
  printf("size:          %d x %d (width x height)\n", get(img, LVMMED_IMAGE_WIDTH), get(img, LVMMED_IMAGE_HEIGHT));
  printf("channels:      %d%s%s\n", get(img, LVMMED_IMAGE_CHANNELS), get(img, LVMMED_IMAGE_HAS_ALPHA) ? " (last is alpha)" : "",
         get(img, LVMMED_IMAGE_PALETTE) ? " (from a palette)" : "");
  printf("pages:         %d (this is page %d)\n", get(img, LVMMED_IMAGE_PAGES), get(img, LVMMED_IMAGE_PAGE));
  printf("bit depth:     %d\n", get(img, LVMMED_IMAGE_BIT_DEPTH));
  printf("sample format: %s\n", sample);
  if (have_range) printf("range:         %.9g .. %.9g\n", lo, hi);
  else printf("range:         (no finite value)\n");
  printf("nominal range: %.9g .. %.9g\n", nlo, nhi);
}

int cli_image(int argc, char **argv) {
  if (cli_wants_help(argc, argv)) {
    fputs(usage_text, stdout);
    return CLI_OK;
  }
  if (argc < 2 || (strcmp(argv[1], "info") != 0 && strcmp(argv[1], "decode") != 0)) {
    fprintf(stderr, "lvmmed image: expected 'info' or 'decode'\n\n%s", usage_text);
    return CLI_USAGE;
  }
  int decode = !strcmp(argv[1], "decode"), json = 0;
  const char *file = NULL, *out = NULL;
  int64_t page = 0;
  for (int i = 2; i < argc; i++) {
    if (!strcmp(argv[i], "--page") && i + 1 < argc) {
      if (!parse_page(argv[++i], &page)) {
        fprintf(stderr, "lvmmed image: --page needs an integer in [0, 65535], got '%s'\n", argv[i]);
        return CLI_USAGE;
      }
    } else if (!strcmp(argv[i], "--out") && i + 1 < argc && decode) {
      out = argv[++i];
    } else if (!strcmp(argv[i], "--json") && !decode) {
      json = 1;
    } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
      fprintf(stderr, "lvmmed image %s: unknown or incomplete option '%s'\n", argv[1], argv[i]);
      return CLI_USAGE;
    } else if (!file) {
      file = argv[i];
    } else {
      fprintf(stderr, "lvmmed image %s: more than one FILE ('%s', '%s')\n", argv[1], file, argv[i]);
      return CLI_USAGE;
    }
  }
  if (!file || (decode && !out)) {
    fprintf(stderr, "lvmmed image %s: %s\n\n%s", argv[1], !file ? "FILE is missing" : "--out X.npy is missing",
            usage_text);
    return CLI_USAGE;
  }
  lvmmed_ctx *ctx = NULL;
  lvmmed_image *img = NULL;
  if (lvmmed_ctx_create(&ctx) != LVMMED_OK || lvmmed_image_create(ctx, &img) != LVMMED_OK) {
    fprintf(stderr, "lvmmed image: out of memory\n");
    lvmmed_ctx_release(ctx);
    return CLI_FAILED;
  }
  int rc = CLI_OK;
  lvmmed_image_set_option(img, LVMMED_IMAGE_OPT_PAGE, page);
  if (lvmmed_image_read_file(img, file) != LVMMED_OK) {
    /* The message names the file and the cause. */
    fprintf(stderr, "lvmmed image: %s\n", lvmmed_ctx_last_error(ctx));
    rc = CLI_FAILED;
  } else if (!decode) {
    print_info(file, img, json);
  } else {
    size_t shape[3] = {(size_t)get(img, LVMMED_IMAGE_CHANNELS), (size_t)get(img, LVMMED_IMAGE_HEIGHT),
                       (size_t)get(img, LVMMED_IMAGE_WIDTH)};
    char err[512];
    if (npy_write(out, NPY_FLOAT32, lvmmed_image_data(img), 3, shape, err, sizeof err) != 0) {
      fprintf(stderr, "lvmmed image decode: %s\n", err);
      rc = CLI_FAILED;
    }
  }
  lvmmed_image_free(img);
  lvmmed_ctx_release(ctx);
  return rc;
}
