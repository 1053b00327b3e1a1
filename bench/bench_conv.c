/* Per-layer times of a ResNet training step through the backend slots.
 *
 * For every distinct convolution of the chosen ResNet (with its multiplicity),
 * times forward, backward-data and backward-weight, and the batch-norm passes
 * around it, then prints one line per layer and totals per pass:
 *   conv <name> n=<count> fwd_ms=.. bwd_data_ms=.. bwd_weight_ms=.. gflops=.. infer_ms=..
 *   total fwd_ms=.. bwd_data_ms=.. bwd_weight_ms=.. bn_ms=.. conv_gflops=..
 * fwd_ms packs the weights on every call, as a training step does; infer_ms runs
 * on weights packed once, as frozen-weight inference does.
 * Times are the best of the repetitions (the least disturbed by other load on
 * the machine), multiplied by the multiplicity.
 * bench/bench_conv.py runs the same layers in PyTorch (channels_last) beside it.
 * Usage: bench_conv [arch(18|50)] [size] [batch] [threads] [reps]
 */
#include "lvmmed_config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lvmmed/lvmmed.h>

#include "backend/backend.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static float *rand_floats(size_t n, uint32_t seed) {
  float *p = aligned_alloc(64, ((n * sizeof *p + 63) / 64) * 64);
  if (!p) return NULL;
  for (size_t i = 0; i < n; i++) {
    seed = seed * 1664525u + 1013904223u;
    p[i] = (float)(seed >> 8) / 16777216.0f - 0.5f;
  }
  return p;
}

typedef struct layer {
  char name[48];
  size_t cin, cout, k, stride, pad, h, count;
} layer;

static size_t add_layer(layer *L, size_t n, const char *name, size_t cin, size_t cout, size_t k,
                        size_t stride, size_t h, size_t count) {
  for (size_t i = 0; i < n; i++)
    if (L[i].cin == cin && L[i].cout == cout && L[i].k == k && L[i].stride == stride &&
        L[i].h == h) {
      L[i].count += count;
      return n;
    }
  layer *l = &L[n];
  snprintf(l->name, sizeof l->name, "%s", name);
  l->cin = cin;
  l->cout = cout;
  l->k = k;
  l->stride = stride;
  l->pad = k / 2;
  l->h = h;
  l->count = count;
  return n + 1;
}

/* The convolutions of torchvision's ResNet-18/50 (v1.5) on size × size inputs. */
static size_t resnet_layers(int arch, size_t size, layer *L) {
  size_t n = 0, h = (size + 6 - 7) / 2 + 1;
  n = add_layer(L, n, "stem7x7", 3, 64, 7, 2, size, 1);
  h = (h + 2 - 3) / 2 + 1;
  static const size_t blocks18[4] = {2, 2, 2, 2}, blocks50[4] = {3, 4, 6, 3};
  size_t in = 64;
  for (int s = 0; s < 4; s++) {
    size_t width = (size_t)64 << s, nb = arch == 50 ? blocks50[s] : blocks18[s];
    for (size_t b = 0; b < nb; b++) {
      size_t stride = (s > 0 && b == 0) ? 2 : 1, oh = (h + 2 - 3) / stride + 1;
      char nm[48];
      if (arch == 50) {
        size_t out = width * 4;
        snprintf(nm, sizeof nm, "l%d.1x1in.%zu-%zu", s + 1, in, width);
        n = add_layer(L, n, nm, in, width, 1, 1, h, 1);
        snprintf(nm, sizeof nm, "l%d.3x3s%zu.%zu", s + 1, stride, width);
        n = add_layer(L, n, nm, width, width, 3, stride, h, 1);
        snprintf(nm, sizeof nm, "l%d.1x1out.%zu-%zu", s + 1, width, out);
        n = add_layer(L, n, nm, width, out, 1, 1, oh, 1);
        if (b == 0) {
          snprintf(nm, sizeof nm, "l%d.down.s%zu", s + 1, stride);
          n = add_layer(L, n, nm, in, out, 1, stride, h, 1);
        }
        in = out;
      } else {
        snprintf(nm, sizeof nm, "l%d.3x3s%zu.%zu-%zu", s + 1, stride, in, width);
        n = add_layer(L, n, nm, in, width, 3, stride, h, 1);
        snprintf(nm, sizeof nm, "l%d.3x3s1.%zu", s + 1, width);
        n = add_layer(L, n, nm, width, width, 3, 1, oh, 1);
        if (b == 0 && s > 0) {
          snprintf(nm, sizeof nm, "l%d.down.s%zu", s + 1, stride);
          n = add_layer(L, n, nm, in, width, 1, stride, h, 1);
        }
        in = width;
      }
      h = oh;
    }
  }
  return n;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

#define MAX_REPS 64

int main(int argc, char **argv) {
  int arch = argc > 1 ? atoi(argv[1]) : 50;
  size_t size = argc > 2 ? (size_t)atol(argv[2]) : 224, batch = argc > 3 ? (size_t)atol(argv[3]) : 16;
  int threads = argc > 4 ? atoi(argv[4]) : 2, reps = argc > 5 ? atoi(argv[5]) : 5;
  if ((arch != 18 && arch != 50) || size < 32 || batch < 1 || reps < 1 || reps > MAX_REPS) {
    fprintf(stderr, "usage: bench_conv [18|50] [size>=32] [batch] [threads] [reps<=64]\n");
    return 2;
  }
  const lvmmed_backend_ops *table = lvmmed__backend_table(LVMMED_BACKEND_OPENBLAS);
  if (!table) {
    printf("bench_conv: the OpenBLAS backend is not built\n");
    return 0;
  }
  lvmmed_backend_ops ops;
  lvmmed__backend_resolve(table, &ops);
  lvmmed_ctx *ctx = NULL;
  if (lvmmed_ctx_create(&ctx) != LVMMED_OK || (ops.init && ops.init(ctx) != LVMMED_OK)) {
    fprintf(stderr, "bench_conv: cannot create a context\n");
    return 1;
  }
  lvmmed_ctx_set_option(ctx, LVMMED_CTX_OPT_THREADS, threads);
  layer L[64];
  size_t nl = resnet_layers(arch, size, L);
  double tot[4] = {0, 0, 0, 0}, flops_all = 0;
  for (size_t i = 0; i < nl; i++) {
    lvmmed_conv2d c;
    memset(&c, 0, sizeof c);
    c.batch = batch;
    c.out_channels = L[i].cout;
    c.g.channels = L[i].cin;
    c.g.height = c.g.width = L[i].h;
    c.g.kernel_h = c.g.kernel_w = L[i].k;
    c.g.stride_h = c.g.stride_w = L[i].stride;
    c.g.pad_h = c.g.pad_w = L[i].pad;
    c.g.dilation_h = c.g.dilation_w = 1;
    lvmmed__conv_geom_finish(&c.g);
    size_t nx = batch * L[i].h * L[i].h * L[i].cin, rows = batch * c.g.out_h * c.g.out_w;
    size_t ny = rows * L[i].cout, nw = L[i].cout * L[i].cin * L[i].k * L[i].k;
    size_t nws = ops.conv2d_workspace(ctx, &c);
    float *x = rand_floats(nx, 1), *w = rand_floats(nw, 2), *y = rand_floats(ny, 3);
    float *dx = rand_floats(nx, 4), *dw = rand_floats(nw, 5), *ws = rand_floats(nws ? nws : 1, 6);
    float *stats = rand_floats(8 * L[i].cout, 7);
    float *packed = rand_floats(ops.conv2d_packed_size(ctx, &c), 8);
    if (!x || !w || !y || !dx || !dw || !ws || !stats || !packed) {
      fprintf(stderr, "bench_conv: out of memory\n");
      return 1;
    }
    ops.conv2d_pack(ctx, &c, w, packed);
    double t[5][MAX_REPS];
    for (int r = -1; r < reps; r++) {
      double t0 = now_s();
      ops.conv2d_forward(ctx, &c, x, w, y, ws);
      double t1 = now_s();
      if (i > 0) ops.conv2d_backward_data(ctx, &c, y, w, dx, 0, ws); /* no input gradient */
      double t2 = now_s();
      ops.conv2d_backward_weight(ctx, &c, x, y, dw, ws);
      double t3 = now_s();
      /* batch norm of this conv's output: statistics, apply (+ReLU), backward reduce + apply */
      float *mean = stats, *var = stats + L[i].cout, *k1 = stats + 2 * L[i].cout;
      ops.bn_stats(ctx, rows, L[i].cout, y, mean, var);
      ops.channel_affine(ctx, rows, L[i].cout, y, mean, var, NULL, 1, y);
      ops.bn_backward_reduce(ctx, rows, L[i].cout, y, mean, NULL, y, k1, k1 + L[i].cout);
      ops.bn_backward_apply(ctx, rows, L[i].cout, y, mean, NULL, y, mean, var, k1, y);
      double t4 = now_s();
      ops.conv2d_forward_packed(ctx, &c, x, packed, y, ws);
      double t5 = now_s();
      if (r >= 0) {
        t[0][r] = t1 - t0;
        t[1][r] = t2 - t1;
        t[2][r] = t3 - t2;
        t[3][r] = t4 - t3;
        t[4][r] = t5 - t4;
      }
    }
    double med[5];
    for (int k = 0; k < 5; k++) {
      qsort(t[k], (size_t)reps, sizeof(double), cmp_double);
      med[k] = t[k][0] * (double)L[i].count * 1e3; /* best: least disturbed by other load */
      if (k < 4) tot[k] += med[k];
    }
    double flops = 2.0 * (double)rows * (double)L[i].cout * (double)(L[i].cin * L[i].k * L[i].k) *
                   (double)L[i].count;
    flops_all += (i > 0 ? 3 : 2) * flops;
    printf("conv %-22s n=%-2zu fwd_ms=%8.2f bwd_data_ms=%8.2f bwd_weight_ms=%8.2f bn_ms=%7.2f "
           "gflops=%6.1f/%6.1f/%6.1f infer_ms=%8.2f\n",
           L[i].name, L[i].count, med[0], med[1], med[2], med[3], flops / med[0] * 1e-6,
           flops / med[1] * 1e-6, flops / med[2] * 1e-6, med[4]);
    fflush(stdout);
    free(x);
    free(w);
    free(y);
    free(dx);
    free(dw);
    free(ws);
    free(stats);
    free(packed);
  }
  printf("total fwd_ms=%.1f bwd_data_ms=%.1f bwd_weight_ms=%.1f bn_ms=%.1f conv_gflops=%.1f\n",
         tot[0], tot[1], tot[2], tot[3], flops_all / (tot[0] + tot[1] + tot[2]) * 1e-6);
  lvmmed_ctx_release(ctx);
  return 0;
}
