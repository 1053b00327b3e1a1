/* lvmmed bench: throughput of the library's main kernels.
 *   lvmmed bench backbone ...: backbone inference or training steps, images/s. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <lvmmed/lvmmed.h>

#include "cli.h"

static const char usage_text[] =
    "usage: lvmmed bench backbone [--arch ARCH] [--size S] [--batch B] [--mode infer|train]\n"
    "                             [--threads T] [--iters N] [--warmup W] [--json]\n\n"
    "Times the backbone on random images (float32, S x S, 3 channels) and prints\n"
    "images per second (the median over N timed iterations after W warm-up ones).\n"
    "  infer: one forward pass in eval mode without saved state and with frozen\n"
    "         (packed-once) weights: lvmmed embed's path\n"
    "  train: one training step: forward in train mode, backward from the pooled\n"
    "         features, an SGD update of every parameter and zero_grad\n\n"
    "  --arch ARCH   resnet18, resnet34 or resnet50 (default resnet50)\n"
    "  --size S      input side in pixels (default 224)\n"
    "  --batch B     images per pass (default 8)\n"
    "  --threads T   compute threads (default: all CPUs)\n"
    "  --iters N     timed iterations (default 5), --warmup W untimed ones (default 1)\n"
    "  --json        print one JSON object: {\"images_per_s\":..,\"seconds\":[..],...}\n";

static double cpu_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Peak resident memory in MB: VmHWM of /proc/self/status (reset by exec, unlike
 * ru_maxrss, which keeps the parent's peak), else getrusage. */
static double peak_rss_mb(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  double kb = -1.0;
  while (f && fgets(line, sizeof line, f))
    if (!strncmp(line, "VmHWM:", 6)) kb = strtod(line + 6, NULL);
  if (f) fclose(f);
  if (kb < 0.0) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    kb = (double)ru.ru_maxrss;
  }
  return kb / 1024.0;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static int parse_count(const char *what, const char *s, size_t lo, size_t hi, size_t *out) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || *end || s[0] == '-' || v < lo || v > hi) {
    fprintf(stderr, "lvmmed bench: %s must be an integer in [%zu, %zu], not '%s'\n", what, lo,
            hi, s);
    return 0;
  }
  *out = (size_t)v;
  return 1;
}

/* SGD without momentum: what a training step costs beyond forward and backward. */
/* The library's SGD (lr 1e-4, no momentum: PyTorch's torch.optim.SGD(lr=1e-4) in
 * bench/bench_backbone.py) over every backbone parameter. */
static lvmmed_status make_sgd(lvmmed_ctx *ctx, lvmmed_backbone *bb, lvmmed_optimizer **out) {
  lvmmed_status st = lvmmed_optimizer_create(ctx, LVMMED_OPTIM_SGD, out);
  if (st == LVMMED_OK) st = lvmmed_optimizer_set_option(*out, LVMMED_OPTIM_OPT_LR, 1e-4);
  if (st == LVMMED_OK) st = lvmmed_optimizer_set_option(*out, LVMMED_OPTIM_OPT_MOMENTUM, 0.0);
  size_t nt = lvmmed_backbone_tensor_count(bb);
  for (size_t i = 0; i < nt && st == LVMMED_OK; i++) {
    const char *name;
    float *data, *grad;
    size_t numel;
    st = lvmmed_backbone_tensor(bb, i, &name, NULL, NULL, NULL, &numel, &data, &grad);
    if (st == LVMMED_OK && grad) st = lvmmed_optimizer_add_param(*out, name, data, grad, numel, 0);
  }
  return st;
}

static int bench_backbone(int argc, char **argv) {
  const char *arch_name = "resnet50", *mode = "infer";
  size_t size = 224, batch = 8, threads = 0, iters = 5, warmup = 1;
  int json = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      fputs(usage_text, stdout);
      return CLI_OK;
    }
    if (!strcmp(a, "--json")) {
      json = 1;
      continue;
    }
    const char **sval = !strcmp(a, "--arch") ? &arch_name : !strcmp(a, "--mode") ? &mode : NULL;
    size_t *nval = !strcmp(a, "--size")      ? &size
                   : !strcmp(a, "--batch")   ? &batch
                   : !strcmp(a, "--threads") ? &threads
                   : !strcmp(a, "--iters")   ? &iters
                   : !strcmp(a, "--warmup")  ? &warmup
                                             : NULL;
    if (!sval && !nval) {
      fprintf(stderr, "lvmmed bench backbone: unknown option '%s'\n", a);
      return CLI_USAGE;
    }
    if (i + 1 >= argc) {
      fprintf(stderr, "lvmmed bench backbone: %s needs a value\n", a);
      return CLI_USAGE;
    }
    const char *v = argv[++i];
    if (sval) *sval = v;
    else if (!parse_count(a, v, nval == &warmup ? 0 : 1,
                          nval == &threads ? 256 : nval == &size ? 4096 : 100000, nval))
      return CLI_USAGE;
  }
  lvmmed_arch arch;
  if (!cli_arch_from_name(arch_name, &arch)) {
    fprintf(stderr, "lvmmed bench backbone: unknown architecture '%s'\n", arch_name);
    return CLI_USAGE;
  }
  int train = !strcmp(mode, "train");
  if (!train && strcmp(mode, "infer")) {
    fprintf(stderr, "lvmmed bench backbone: --mode must be infer or train, not '%s'\n", mode);
    return CLI_USAGE;
  }
  if (train && batch < 2 && size < 64) {
    fputs("lvmmed bench backbone: a train step needs batch >= 2 or size >= 64\n", stderr);
    return CLI_USAGE;
  }

  int rc = CLI_FAILED;
  lvmmed_ctx *ctx = NULL;
  lvmmed_backbone *bb = NULL;
  lvmmed_optimizer *opt = NULL;
  float *x = NULL, *pooled = NULL, *dpooled = NULL;
  double *secs = calloc(iters, sizeof *secs), cpu_total = 0.0;
  lvmmed_status st = secs ? lvmmed_ctx_create(&ctx) : LVMMED_ERR_OUT_OF_MEMORY;
  if (st == LVMMED_OK && threads) st = lvmmed_ctx_set_option(ctx, LVMMED_CTX_OPT_THREADS, (int64_t)threads);
  if (st == LVMMED_OK) st = lvmmed_backbone_create(ctx, arch, 3, &bb);
  if (st == LVMMED_OK) st = lvmmed_backbone_set_option(bb, LVMMED_BACKBONE_OPT_TRAIN, train);
  if (st == LVMMED_OK) st = lvmmed_backbone_set_option(bb, LVMMED_BACKBONE_OPT_GRAD, train);
  /* inference: constant weights, packed once (lvmmed embed does the same) */
  if (st == LVMMED_OK) st = lvmmed_backbone_set_option(bb, LVMMED_BACKBONE_OPT_FROZEN, !train);
  if (st == LVMMED_OK && train) st = make_sgd(ctx, bb, &opt);
  if (st != LVMMED_OK) {
    fprintf(stderr, "lvmmed bench backbone: %s\n", ctx ? lvmmed_ctx_last_error(ctx) : "no memory");
    goto done;
  }
  size_t d, nx = batch * 3 * size * size;
  lvmmed_backbone_info(bb, NULL, NULL, &d);
  x = malloc(nx * sizeof *x);
  pooled = malloc(batch * d * sizeof *pooled);
  dpooled = malloc(batch * d * sizeof *dpooled);
  if (!x || !pooled || !dpooled) {
    fputs("lvmmed bench backbone: out of memory\n", stderr);
    goto done;
  }
  uint32_t s = 12345;
  for (size_t i = 0; i < nx; i++) {
    s = s * 1664525u + 1013904223u;
    x[i] = (float)(s >> 8) / 8388608.0f - 1.0f;
  }
  for (size_t i = 0; i < batch * d; i++) dpooled[i] = 1.0f / (float)(batch * d);
  double base_mb = peak_rss_mb(); /* the model and inputs, before any pass */
  for (size_t it = 0; it < warmup + iters; it++) {
    double t0 = cli_now_s(), c0 = cpu_s();
    st = lvmmed_backbone_forward(bb, x, batch, size, size, pooled, NULL);
    if (st == LVMMED_OK && train) st = lvmmed_backbone_backward(bb, dpooled, NULL, NULL);
    if (st != LVMMED_OK) {
      fprintf(stderr, "lvmmed bench backbone: %s\n", lvmmed_ctx_last_error(ctx));
      goto done;
    }
    if (train) st = lvmmed_optimizer_step(opt);
    if (st == LVMMED_OK && train) st = lvmmed_backbone_zero_grad(bb);
    if (st != LVMMED_OK) {
      fprintf(stderr, "lvmmed bench backbone: %s\n", lvmmed_ctx_last_error(ctx));
      goto done;
    }
    if (it >= warmup) {
      secs[it - warmup] = cli_now_s() - t0;
      cpu_total += cpu_s() - c0;
    }
  }
  double *sorted = malloc(iters * sizeof *sorted);
  if (!sorted) goto done;
  memcpy(sorted, secs, iters * sizeof *sorted);
  qsort(sorted, iters, sizeof *sorted, cmp_double);
  double median = iters % 2 ? sorted[iters / 2] : 0.5 * (sorted[iters / 2 - 1] + sorted[iters / 2]);
  double best = sorted[0];
  free(sorted);
  double peak_mb = peak_rss_mb();
  int64_t nthreads = 0;
  lvmmed_ctx_get_option(ctx, LVMMED_CTX_OPT_THREADS, &nthreads);
  if (json) {
    printf("{\"arch\":\"%s\",\"mode\":\"%s\",\"size\":%zu,\"batch\":%zu,\"threads\":%lld,"
           "\"images_per_s\":%.4f,\"median_s\":%.6f,\"best_s\":%.6f,\"cpu_s_per_iter\":%.6f,"
           "\"peak_rss_mb\":%.1f,\"base_rss_mb\":%.1f,\"seconds\":[",
           arch_name, mode, size, batch, (long long)nthreads, (double)batch / median, median, best,
           cpu_total / (double)iters, peak_mb, base_mb);
    for (size_t i = 0; i < iters; i++) printf("%s%.6f", i ? "," : "", secs[i]);
    printf("]}\n");
  } else {
    printf("%s %s %zux%zu batch %zu, %lld threads: %.2f images/s (median %.4f s over %zu), "
           "peak RSS %.0f MB\n",
           arch_name, mode, size, size, batch, (long long)nthreads, (double)batch / median, median,
           iters, peak_mb);
  }
  rc = CLI_OK;
done:
  free(secs);
  free(x);
  free(pooled);
  free(dpooled);
  lvmmed_optimizer_free(opt);
  lvmmed_backbone_free(bb);
  lvmmed_ctx_release(ctx);
  return rc;
}

int cli_bench(int argc, char **argv) {
  if (argc >= 2 && !strcmp(argv[1], "backbone")) return bench_backbone(argc - 1, argv + 1);
  if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
    fputs("usage: lvmmed bench <what> [options]\n\nwhat:\n"
          "  backbone   backbone inference or training throughput (images/s)\n\n"
          "Run 'lvmmed bench <what> --help' for its options.\n",
          stdout);
    return CLI_OK;
  }
  fprintf(stderr, "lvmmed bench: unknown or missing benchmark%s%s (try: backbone)\n",
          argc >= 2 ? " " : "", argc >= 2 ? argv[1] : "");
  return CLI_USAGE;
}
