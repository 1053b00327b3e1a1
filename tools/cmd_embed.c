/* lvmmed embed: backbone features of images stored as .npy, or of a folder of image files. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lvmmed/lvmmed.h>

#include "cli.h"
#include "imgfeat.h"
#include "npy.h"

static const char usage_text[] =
    "usage: lvmmed embed [--weights W.safetensors] --input X.npy --out F.npy\n"
    "                    [--arch ARCH] [--feature-map M.npy] [--train] [--batch B] [--threads T]\n"
    "       lvmmed embed [--weights W.safetensors] --data DIR --out F.npy [--csv F.csv]\n"
    "                    [--arch ARCH] [--image-size N] [--batch B] [--threads T]\n\n"
    "--input: runs the backbone on the images of X (float32 or float64 .npy, C order, shape\n"
    "N x C x H x W with C = 1 or 3) and writes the pooled features (N x D, float32) to F\n"
    "and, with --feature-map, the final feature maps (N x D x h x w) to M.\n"
    "--data: the image files (.png, .tif, .jpg) under DIR, recursively, sorted by path,\n"
    "one row of F each, with the evaluation transform of `lvmmed probe` (intensity to\n"
    "[0, 1], gray, centred square, N x N, RGB, normalised). The file order is written\n"
    "beside F: to F.csv with --csv (columns index,path), else to F.txt (F's name with .txt\n"
    "for .npy, or F.txt appended; one path per line).\n\n"
    "  --weights W         safetensors weights or training checkpoint: the architecture\n"
    "                      comes from the file (python3 -m lvmmed.convert makes them from\n"
    "                      PyTorch); without it the backbone keeps torchvision's random\n"
    "                      initialisation from --seed\n"
    "  --arch ARCH         resnet18, resnet34 or resnet50 (default resnet50 without\n"
    "                      --weights; with --weights it must match the file)\n"
    "  --image-size N      --data: input side (default: the view size a training\n"
    "                      checkpoint records, else 96)\n"
    "  --train             --input: batch norm in train mode (batch statistics), not eval\n"
    "  --batch B           images per forward pass (default 32; memory grows with it)\n"
    "  --threads T         compute threads (default: all CPUs)\n"
    "  --seed S            seed of the random initialisation (default 0)\n";

int cli_arch_from_name(const char *name, lvmmed_arch *arch) {
  if (!strcmp(name, "resnet18")) *arch = LVMMED_ARCH_RESNET18;
  else if (!strcmp(name, "resnet34")) *arch = LVMMED_ARCH_RESNET34;
  else if (!strcmp(name, "resnet50")) *arch = LVMMED_ARCH_RESNET50;
  else return 0;
  return 1;
}

/* The sibling file of out that lists the row order: out with .npy replaced by .txt. */
static char *order_path(const char *out) {
  size_t len = strlen(out);
  char *p = malloc(len + 5);
  if (!p) return NULL;
  memcpy(p, out, len + 1);
  if (len > 4 && !strcmp(out + len - 4, ".npy")) p[len - 4] = '\0';
  strcat(p, ".txt");
  return p;
}

static int write_order(const char *path, int csv, char *const *paths, size_t n) {
  FILE *fp = fopen(path, "w");
  if (!fp) {
    fprintf(stderr, "lvmmed embed: %s: cannot create: %s\n", path, strerror(errno));
    return -1;
  }
  if (csv) fputs("index,path\n", fp);
  for (size_t i = 0; i < n; i++) {
    if (!csv) {
      fprintf(fp, "%s\n", paths[i]);
      continue;
    }
    fprintf(fp, "%zu,", i);
    if (strpbrk(paths[i], ",\"\r\n")) { /* RFC 4180 quoting */
      fputc('"', fp);
      for (const char *c = paths[i]; *c; c++) {
        if (*c == '"') fputc('"', fp);
        fputc(*c, fp);
      }
      fputs("\"\n", fp);
    } else {
      fprintf(fp, "%s\n", paths[i]);
    }
  }
  if (fclose(fp) != 0) {
    fprintf(stderr, "lvmmed embed: %s: write failed: %s\n", path, strerror(errno));
    return -1;
  }
  return 0;
}

/* --data DIR: features of the image files under DIR. */
static int embed_folder(const imgfeat_config *cfg, const char *dir, const char *out,
                        const char *csv) {
  int rc = CLI_FAILED;
  char **paths = NULL, *order = NULL, err[512];
  size_t n = 0;
  float *feat = NULL;
  imgfeat *f = imgfeat_open(cfg);
  if (!f || imgfeat_list(f, dir, &paths, &n)) goto done;
  if (!n) {
    fprintf(stderr, "lvmmed embed: %s: no image files (.png, .tif, .jpg)\n", dir);
    goto done;
  }
  if (imgfeat_prepare(f)) goto done;
  size_t d = imgfeat_dim(f), shape[2] = {n, d};
  feat = malloc(n * d * sizeof *feat);
  order = csv ? NULL : order_path(out);
  if (!feat || (!csv && !order)) {
    fputs("lvmmed embed: out of memory\n", stderr);
    goto done;
  }
  if (imgfeat_run(f, paths, n, feat)) goto done;
  if (npy_write(out, NPY_FLOAT32, feat, 2, shape, err, sizeof err) != 0) {
    fprintf(stderr, "lvmmed embed: %s\n", err);
    goto done;
  }
  if (write_order(csv ? csv : order, csv != NULL, paths, n)) goto done;
  fprintf(stderr, "lvmmed embed: %zu images -> %s (%zu x %zu), order in %s\n", n, out, n, d,
          csv ? csv : order);
  rc = CLI_OK;
done:
  free(feat);
  free(order);
  imgfeat_free_list(paths, n);
  imgfeat_close(f);
  return rc;
}

int cli_embed(int argc, char **argv) {
  const char *arch_name = NULL, *weights = NULL, *input = NULL, *out = NULL, *fmap = NULL;
  const char *data = NULL, *csv = NULL;
  size_t batch = 32, threads = 0, seed = 0, image_size = 0;
  int train = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      fputs(usage_text, stdout);
      return CLI_OK;
    }
    if (!strcmp(a, "--train")) {
      train = 1;
      continue;
    }
    const char **sval = !strcmp(a, "--arch")          ? &arch_name
                        : !strcmp(a, "--weights")     ? &weights
                        : !strcmp(a, "--input")       ? &input
                        : !strcmp(a, "--data")        ? &data
                        : !strcmp(a, "--csv")         ? &csv
                        : !strcmp(a, "--out")         ? &out
                        : !strcmp(a, "--feature-map") ? &fmap
                                                      : NULL;
    size_t *nval = !strcmp(a, "--batch") ? &batch : !strcmp(a, "--threads") ? &threads
                   : !strcmp(a, "--seed") ? &seed : !strcmp(a, "--image-size") ? &image_size : NULL;
    if (!sval && !nval) {
      fprintf(stderr, "lvmmed embed: unknown option '%s'\n", a);
      return CLI_USAGE;
    }
    if (i + 1 >= argc) {
      fprintf(stderr, "lvmmed embed: %s needs a value\n", a);
      return CLI_USAGE;
    }
    const char *v = argv[++i];
    if (sval) *sval = v;
    else if (!cli_parse_size("lvmmed embed", a, v, nval == &seed ? 0 : 1,
                         nval == &threads ? 256 : nval == &image_size ? 4096 : (size_t)1 << 30, nval))
      return CLI_USAGE;
  }
  lvmmed_arch arch = LVMMED_ARCH_RESNET50;
  if (arch_name && !cli_arch_from_name(arch_name, &arch)) {
    fprintf(stderr, "lvmmed embed: unknown architecture '%s' (resnet18, resnet34, resnet50)\n",
            arch_name);
    return CLI_USAGE;
  }
  if ((input != NULL) == (data != NULL) || !out) {
    fputs("lvmmed embed: give --out and one of --input or --data\n\n", stderr);
    fputs(usage_text, stderr);
    return CLI_USAGE;
  }
  if (data && (fmap || train)) {
    fputs("lvmmed embed: --feature-map and --train go with --input, not --data\n", stderr);
    return CLI_USAGE;
  }
  if (input && (csv || image_size)) {
    fputs("lvmmed embed: --csv and --image-size go with --data, not --input\n", stderr);
    return CLI_USAGE;
  }
  if (data) {
    imgfeat_config cfg = {"lvmmed embed", weights, arch_name ? arch_name : weights ? NULL : "resnet50",
                          seed, threads, image_size, batch};
    return embed_folder(&cfg, data, out, csv);
  }
  char err[512];
  npy_array x;
  memset(&x, 0, sizeof x);
  if (npy_read(input, &x, err, sizeof err) != 0 || npy_to_float32(&x, err, sizeof err) != 0) {
    fprintf(stderr, "lvmmed embed: %s\n", err);
    npy_free(&x);
    return CLI_FAILED;
  }
  if (x.ndim != 4 || (x.shape[1] != 1 && x.shape[1] != 3) || x.shape[0] == 0) {
    fprintf(stderr, "lvmmed embed: %s: expected shape N x C x H x W with C = 1 or 3, got %zu dims",
            input, x.ndim);
    for (size_t d = 0; d < x.ndim; d++) fprintf(stderr, "%s%zu", d ? " x " : " (", x.shape[d]);
    fputs(x.ndim ? ")\n" : "\n", stderr);
    npy_free(&x);
    return CLI_FAILED;
  }
  size_t n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3];

  int rc = CLI_FAILED;
  lvmmed_ctx *ctx = NULL;
  lvmmed_backbone *bb = NULL;
  float *pooled = NULL, *maps = NULL;
  lvmmed_status st = lvmmed_ctx_create(&ctx);
  if (st == LVMMED_OK && threads) st = lvmmed_ctx_set_option(ctx, LVMMED_CTX_OPT_THREADS, (int64_t)threads);
  if (st == LVMMED_OK) st = lvmmed_ctx_set_option(ctx, LVMMED_CTX_OPT_SEED, (int64_t)seed);
  if (st == LVMMED_OK)
    st = weights ? lvmmed_backbone_create_from_file(ctx, weights, c, &bb)
                 : lvmmed_backbone_create(ctx, arch, c, &bb);
  if (st == LVMMED_OK && weights && arch_name) {
    lvmmed_arch got;
    lvmmed_backbone_info(bb, &got, NULL, NULL);
    if (got != arch) {
      fprintf(stderr, "lvmmed embed: %s does not hold a %s (see lvmmed_arch in its metadata)\n",
              weights, arch_name);
      goto done;
    }
  }
  if (st == LVMMED_OK) st = lvmmed_backbone_set_option(bb, LVMMED_BACKBONE_OPT_GRAD, 0);
  if (st == LVMMED_OK) st = lvmmed_backbone_set_option(bb, LVMMED_BACKBONE_OPT_FROZEN, 1);
  if (st == LVMMED_OK) st = lvmmed_backbone_set_option(bb, LVMMED_BACKBONE_OPT_TRAIN, train);
  if (st != LVMMED_OK) {
    fprintf(stderr, "lvmmed embed: %s\n", ctx ? lvmmed_ctx_last_error(ctx) : "cannot create a context");
    goto done;
  }
  if (!weights) fputs("lvmmed embed: no --weights: using random initial weights\n", stderr);
  size_t d, mh, mw;
  if (lvmmed_backbone_map_shape(bb, h, w, &d, &mh, &mw) != LVMMED_OK) {
    fprintf(stderr, "lvmmed embed: %s\n", lvmmed_ctx_last_error(ctx));
    goto done;
  }
  pooled = malloc(n * d * sizeof *pooled);
  if (fmap) maps = malloc(n * d * mh * mw * sizeof *maps);
  if (!pooled || (fmap && !maps)) {
    fputs("lvmmed embed: out of memory\n", stderr);
    goto done;
  }
  const float *xs = x.data;
  for (size_t b0 = 0; b0 < n; b0 += batch) {
    size_t nb = n - b0 < batch ? n - b0 : batch;
    st = lvmmed_backbone_forward(bb, xs + b0 * c * h * w, nb, h, w, pooled + b0 * d,
                                 maps ? maps + b0 * d * mh * mw : NULL);
    if (st != LVMMED_OK) {
      fprintf(stderr, "lvmmed embed: images %zu..%zu: %s\n", b0, b0 + nb - 1,
              lvmmed_ctx_last_error(ctx));
      goto done;
    }
  }
  size_t pshape[2] = {n, d}, mshape[4] = {n, d, mh, mw};
  if (npy_write(out, NPY_FLOAT32, pooled, 2, pshape, err, sizeof err) != 0 ||
      (fmap && npy_write(fmap, NPY_FLOAT32, maps, 4, mshape, err, sizeof err) != 0)) {
    fprintf(stderr, "lvmmed embed: %s\n", err);
    goto done;
  }
  rc = CLI_OK;
done:
  free(pooled);
  free(maps);
  lvmmed_backbone_free(bb);
  lvmmed_ctx_release(ctx);
  npy_free(&x);
  return rc;
}
