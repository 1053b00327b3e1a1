/* Runs the private augmentation kernels on float32 files for test_augment_ref.py.
 *
 * usage: augment_ref_helper MANIFEST
 * Each manifest line is one job; inputs and outputs are raw little-endian float32 files:
 *   crop IN C H W top left h w S flip OUT
 *   brightness|contrast|saturation|hue IN C N factor OUT
 *   gray IN C N OUT
 *   blur IN C H W sigma ks OUT
 *   normalize IN C N m0 m1 m2 s0 s1 s2 OUT
 *   view IN C H W top left h w flip jitter o0 o1 o2 o3 b c s hue gray blur sigma ks S grayout OUT
 *   grid top left h w N flip mirror OUT
 * Exit status 0 when every job ran.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image/augment_impl.h"

static float *load(const char *path, size_t n) {
  float *p = malloc(n * sizeof(float) + 1);
  FILE *f = fopen(path, "rb");
  if (!p || !f || fread(p, sizeof(float), n, f) != n) {
    fprintf(stderr, "cannot read %zu floats from %s\n", n, path);
    exit(1);
  }
  fclose(f);
  return p;
}

static void save(const char *path, const float *p, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(p, sizeof(float), n, f) != n || fclose(f) != 0) {
    fprintf(stderr, "cannot write %s\n", path);
    exit(1);
  }
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: augment_ref_helper MANIFEST\n");
    return 2;
  }
  FILE *m = fopen(argv[1], "r");
  if (!m) return 1;
  char line[4096], op[32], in[1024], out[1024];
  int jobs = 0;
  while (fgets(line, sizeof line, m)) {
    if (sscanf(line, "%31s", op) != 1) continue;
    const char *rest = line + strlen(op);
    unsigned C, H, W, N, S;
    int top, left, h, w, flip, ks, mirror;
    float f, sigma;
    if (!strcmp(op, "crop")) {
      if (sscanf(rest, "%1023s %u %u %u %d %d %d %d %u %d %1023s", in, &C, &H, &W, &top, &left, &h, &w, &S, &flip,
                 out) != 11)
        return 1;
      float *x = load(in, (size_t)C * H * W), *y = malloc((size_t)C * S * S * sizeof(float)),
            *rows = malloc((2 * (size_t)S + 256) * sizeof(float));
      lvmmed__resized_crop(x, C, H, W, top, left, h, w, S, S, flip, NULL, rows, y);
      save(out, y, (size_t)C * S * S);
      free(x);
      free(y);
      free(rows);
    } else if (!strcmp(op, "brightness") || !strcmp(op, "contrast") || !strcmp(op, "saturation") ||
               !strcmp(op, "hue")) {
      if (sscanf(rest, "%1023s %u %u %f %1023s", in, &C, &N, &f, out) != 5) return 1;
      float *x = load(in, (size_t)C * N);
      if (op[0] == 'b') lvmmed__adjust_brightness(x, C, N, f);
      else if (op[0] == 'c') lvmmed__adjust_contrast(x, C, N, f);
      else if (op[0] == 's') lvmmed__adjust_saturation(x, C, N, f);
      else lvmmed__adjust_hue(x, C, N, f);
      save(out, x, (size_t)C * N);
      free(x);
    } else if (!strcmp(op, "gray")) {
      if (sscanf(rest, "%1023s %u %u %1023s", in, &C, &N, out) != 4) return 1;
      float *x = load(in, (size_t)C * N);
      lvmmed__to_grayscale(x, &C, N);
      save(out, x, (size_t)C * N);
      free(x);
    } else if (!strcmp(op, "blur")) {
      if (sscanf(rest, "%1023s %u %u %u %f %d %1023s", in, &C, &H, &W, &sigma, &ks, out) != 7) return 1;
      float *x = load(in, (size_t)C * H * W), *tmp = malloc((size_t)C * H * W * sizeof(float)),
            *pad = malloc(((size_t)W + 256) * sizeof(float));
      lvmmed__gaussian_blur(x, C, H, W, sigma, ks, tmp, pad);
      save(out, x, (size_t)C * H * W);
      free(x);
      free(tmp);
      free(pad);
    } else if (!strcmp(op, "normalize")) {
      float mean[3], sd[3];
      if (sscanf(rest, "%1023s %u %u %f %f %f %f %f %f %1023s", in, &C, &N, &mean[0], &mean[1], &mean[2], &sd[0],
                 &sd[1], &sd[2], out) != 10)
        return 1;
      float *x = load(in, (size_t)C * N), *y = malloc(3 * (size_t)N * sizeof(float));
      lvmmed__normalize(x, C, N, mean, sd, y);
      save(out, y, 3 * (size_t)N);
      free(x);
      free(y);
    } else if (!strcmp(op, "view")) {
      lvmmed__view_params p;
      memset(&p, 0, sizeof p);
      int grayout;
      if (sscanf(rest, "%1023s %u %u %u %d %d %d %d %d %d %d %d %d %d %f %f %f %f %d %d %f %d %u %d %1023s", in, &C,
                 &H, &W, &p.top, &p.left, &p.height, &p.width, &p.flip, &p.jitter, &p.order[0], &p.order[1],
                 &p.order[2], &p.order[3], &p.brightness, &p.contrast, &p.saturation, &p.hue, &p.grayscale, &p.blur,
                 &p.sigma, &p.kernel, &S, &grayout, out) != 25)
        return 1;
      lvmmed__aug_config cfg;
      lvmmed__aug_defaults(&cfg);
      cfg.opt[LVMMED_AUG_SIZE] = S;
      cfg.opt[LVMMED_AUG_GRAY_OUTPUT] = grayout;
      lvmmed__aug_scratch s;
      memset(&s, 0, sizeof s);
      lvmmed_ctx *ctx;
      if (lvmmed_ctx_create(&ctx) != LVMMED_OK || lvmmed__aug_scratch_reserve(ctx, &s, S) != LVMMED_OK) return 1;
      float *x = load(in, (size_t)C * H * W), *y = malloc(3 * (size_t)S * S * sizeof(float));
      lvmmed__aug_render(&cfg, &s, x, C, H, W, NULL, &p, y, NULL);
      save(out, y, 3 * (size_t)S * S);
      lvmmed__aug_scratch_free(ctx, &s);
      lvmmed_ctx_release(ctx);
      free(x);
      free(y);
    } else if (!strcmp(op, "grid")) {
      if (sscanf(rest, "%d %d %d %d %u %d %d %1023s", &top, &left, &h, &w, &N, &flip, &mirror, out) != 8) return 1;
      float *g = malloc((size_t)N * N * 2 * sizeof(float));
      lvmmed__location_grid(top, left, h, w, N, flip, mirror, g);
      save(out, g, (size_t)N * N * 2);
      free(g);
    } else {
      fprintf(stderr, "unknown job '%s'\n", op);
      return 1;
    }
    jobs++;
  }
  fclose(m);
  printf("%d jobs\n", jobs);
  return 0;
}
