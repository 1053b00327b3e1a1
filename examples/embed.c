/* embed — feature extraction with a pretrained backbone: one CSV row per
 * image (its path, then the D pooled features).
 *
 *   cc embed.c $(pkg-config --cflags --libs lvmmed) -o embed
 *   ./embed [--arch ARCH] [--size S] WEIGHTS.safetensors|--random DIR OUT.csv
 *
 * LVM-Med's released ResNet-50 converts to safetensors with
 *   python3 -m lvmmed.convert lvmmed_resnet.torch lvmmed_resnet50.safetensors
 *
 * Each image is decoded with its original values (lvmmed_image), its
 * intensities mapped to [0, 1], its central square cropped, resized to S x S
 * and normalised as in pretraining. The library's augmenter does all of this:
 * with every random transform switched off, its "random resized crop" of the
 * whole area at aspect ratio 1 is that centre crop, deterministically.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lvmmed/lvmmed.h>

#define BATCH 16 /* images per forward pass */

static int report(lvmmed_ctx *ctx, lvmmed_status st) {
  fprintf(stderr, "embed: %s (%s)\n", lvmmed_ctx_last_error(ctx), lvmmed_status_name(st));
  return 0;
}
#define CHECK(ctx, call)                                                                                \
  do {                                                                                                  \
    lvmmed_status st_ = (call);                                                                         \
    if (st_ != LVMMED_OK) return report((ctx), st_);                                                    \
  } while (0)

/* Backbone in eval mode (running batch-norm statistics), without gradient
 * bookkeeping, FROZEN: its convolution weights are packed once for inference. */
static int open_backbone(lvmmed_ctx *ctx, lvmmed_arch arch, const char *weights, lvmmed_backbone **bb) {
  CHECK(ctx, lvmmed_backbone_create(ctx, arch, 3, bb));
  if (weights) {
    size_t missing = 0, unexpected = 0;
    /* The projector is not used here: its tensors may be absent from the file. */
    CHECK(ctx, lvmmed_backbone_load(*bb, weights, LVMMED_LOAD_IGNORE_PROJECTOR, &missing, &unexpected));
    if (missing) {
      fprintf(stderr, "embed: %s lacks %zu tensors of this backbone (another --arch?)\n", weights, missing);
      return 0;
    }
    if (unexpected) fprintf(stderr, "embed: %s: %zu tensors not used\n", weights, unexpected);
  } else {
    fprintf(stderr, "embed: --random: features of randomly initialised weights\n");
  }
  CHECK(ctx, lvmmed_backbone_set_option(*bb, LVMMED_BACKBONE_OPT_TRAIN, 0));
  CHECK(ctx, lvmmed_backbone_set_option(*bb, LVMMED_BACKBONE_OPT_GRAD, 0));
  CHECK(ctx, lvmmed_backbone_set_option(*bb, LVMMED_BACKBONE_OPT_FROZEN, 1));
  return 1;
}

/* A deterministic "centre crop, resize to size x size, normalise" augmenter. */
static int open_preprocessing(lvmmed_ctx *ctx, size_t size, lvmmed_augmenter **aug) {
  static const struct {
    lvmmed_augment_option option;
    double value;
  } settings[] = {
      {LVMMED_AUG_SCALE_MIN, 1}, {LVMMED_AUG_SCALE_MAX, 1},   /* the whole area ... */
      {LVMMED_AUG_RATIO_MIN, 1}, {LVMMED_AUG_RATIO_MAX, 1},   /* ... as a square: the centre one */
      {LVMMED_AUG_FLIP_P, 0},    {LVMMED_AUG_JITTER_P, 0},    /* no random transform */
      {LVMMED_AUG_GRAYSCALE_P, 0}, {LVMMED_AUG_BLUR_P, 0},
  };
  CHECK(ctx, lvmmed_augmenter_create(ctx, aug));
  CHECK(ctx, lvmmed_augmenter_set_option(*aug, LVMMED_AUG_SIZE, (double)size));
  for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++)
    CHECK(ctx, lvmmed_augmenter_set_option(*aug, settings[i].option, settings[i].value));
  /* Kept from pretraining: intensity policy AUTO, gray replicated to RGB, ImageNet mean/std. */
  return 1;
}

/* Writes s as a CSV field, quoted when it holds a comma, quote or newline. */
static void write_csv_field(FILE *out, const char *s) {
  if (!strpbrk(s, ",\"\r\n")) {
    fputs(s, out);
    return;
  }
  fputc('"', out);
  for (; *s; s++) {
    if (*s == '"') fputc('"', out);
    fputc(*s, out);
  }
  fputc('"', out);
}

/* Runs the network on count preprocessed images and writes their rows. */
static int embed_batch(lvmmed_backbone *bb, const float *pixels, size_t count, size_t size,
                       float *features, size_t dim, const char *const *paths, FILE *out) {
  lvmmed_status st = lvmmed_backbone_forward(bb, pixels, count, size, size, features, NULL);
  if (st != LVMMED_OK) return report(lvmmed_backbone_ctx(bb), st);
  for (size_t b = 0; b < count; b++) {
    write_csv_field(out, paths[b]);
    for (size_t j = 0; j < dim; j++) fprintf(out, ",%.9g", (double)features[b * dim + j]);
    fputc('\n', out);
  }
  return 1;
}

static int usage(void) {
  fputs("usage: embed [--arch ARCH] [--size S] WEIGHTS.safetensors|--random DIR OUT.csv\n"
        "  Writes the pooled backbone features of every PNG, TIFF and JPEG image under DIR\n"
        "  to OUT.csv: a header, then one row per image (path, f0, ..., f{D-1}).\n"
        "  --arch ARCH  resnet18, resnet34 or resnet50 (default resnet50, LVM-Med's)\n"
        "  --size S     side of the centre crop fed to the network (default 224)\n"
        "  --random     randomly initialised weights instead of a file\n",
        stderr);
  return 2;
}

int main(int argc, char **argv) {
  lvmmed_arch arch = LVMMED_ARCH_RESNET50;
  size_t size = 224;
  int i = 1;
  for (; i + 1 < argc && argv[i][0] == '-' && argv[i][1] == '-' && strcmp(argv[i], "--random"); i += 2) {
    if (!strcmp(argv[i], "--arch")) {
      const char *a = argv[i + 1];
      if (!strcmp(a, "resnet18")) arch = LVMMED_ARCH_RESNET18;
      else if (!strcmp(a, "resnet34")) arch = LVMMED_ARCH_RESNET34;
      else if (!strcmp(a, "resnet50")) arch = LVMMED_ARCH_RESNET50;
      else return usage();
    } else if (!strcmp(argv[i], "--size")) {
      char *end;
      unsigned long v = strtoul(argv[i + 1], &end, 10);
      if (argv[i + 1][0] < '0' || argv[i + 1][0] > '9' || *end || v < 1 || v > 4096) return usage();
      size = v;
    } else {
      return usage();
    }
  }
  if (argc - i != 3) return usage();
  const char *weights = strcmp(argv[i], "--random") ? argv[i] : NULL;
  const char *folder = argv[i + 1], *out_path = argv[i + 2];

  lvmmed_ctx *ctx = NULL;
  lvmmed_backbone *bb = NULL;
  lvmmed_augmenter *aug = NULL;
  lvmmed_dataset *list = NULL;
  lvmmed_image *img = NULL;
  float *pixels = NULL, *features = NULL;
  const char *paths[BATCH]; /* the files of the images in pixels */
  FILE *out = NULL;
  int64_t items = 0;
  size_t dim = 0, view = 3 * size * size, filled = 0, rows = 0, skipped = 0;
  int ok = 0;

  lvmmed_status st = lvmmed_ctx_create(&ctx);
  if (st != LVMMED_OK) {
    fprintf(stderr, "embed: lvmmed_ctx_create: %s\n", lvmmed_status_name(st));
    return 1;
  }
  if (!open_backbone(ctx, arch, weights, &bb) || !open_preprocessing(ctx, size, &aug)) goto done;
  if ((st = lvmmed_backbone_info(bb, NULL, NULL, &dim)) != LVMMED_OK ||
      (st = lvmmed_image_create(ctx, &img)) != LVMMED_OK ||
      /* The dataset reader lists the image files (recursively, sorted by path);
       * its batches are not used: each image is preprocessed below on its own. */
      (st = lvmmed_dataset_create(ctx, aug, &list)) != LVMMED_OK ||
      (st = lvmmed_dataset_add_folder(list, folder)) != LVMMED_OK ||
      (st = lvmmed_dataset_stat(list, LVMMED_DATASET_ITEMS, &items)) != LVMMED_OK) {
    report(ctx, st);
    goto done;
  }
  if (items == 0) {
    fprintf(stderr, "embed: no PNG, TIFF or JPEG images under %s\n", folder);
    goto done;
  }
  pixels = malloc(BATCH * view * sizeof *pixels);
  features = malloc(BATCH * dim * sizeof *features);
  if (!pixels || !features) {
    fprintf(stderr, "embed: out of memory\n");
    goto done;
  }
  if (!(out = fopen(out_path, "w"))) {
    perror(out_path);
    goto done;
  }
  fputs("path", out);
  for (size_t j = 0; j < dim; j++) fprintf(out, ",f%zu", j);
  fputc('\n', out);

  for (size_t item = 0; item < (size_t)items; item++) {
    const char *path = lvmmed_dataset_item_path(list, item);
    /* Decode, then make view 0 of epoch 0: with no randomness left it is the centre crop. */
    st = lvmmed_image_read_file(img, path);
    if (st == LVMMED_OK)
      st = lvmmed_augmenter_views(aug, img, item, 0, 0, 1, pixels + filled * view, NULL, NULL);
    if (st != LVMMED_OK) { /* a bad file is reported and skipped */
      fprintf(stderr, "embed: skipped: %s\n", lvmmed_ctx_last_error(ctx));
      skipped++;
      continue;
    }
    paths[filled++] = path;
    if (filled == BATCH) {
      if (!embed_batch(bb, pixels, filled, size, features, dim, paths, out)) goto done;
      rows += filled;
      filled = 0;
    }
  }
  if (filled > 0) { /* the last, partial batch */
    if (!embed_batch(bb, pixels, filled, size, features, dim, paths, out)) goto done;
    rows += filled;
  }
  int write_failed = ferror(out);
  write_failed |= fclose(out) != 0;
  out = NULL;
  if (write_failed) {
    perror(out_path);
    goto done;
  }
  printf("%s: %zu images x %zu features (%zu files skipped)\n", out_path, rows, dim, skipped);
  ok = skipped == 0; /* exit status 1 if any file could not be used */

done:
  if (out) fclose(out);
  free(pixels);
  free(features);
  lvmmed_image_free(img);
  lvmmed_dataset_free(list);
  lvmmed_augmenter_free(aug);
  lvmmed_backbone_free(bb);
  lvmmed_ctx_release(ctx);
  return ok ? 0 : 1;
}
