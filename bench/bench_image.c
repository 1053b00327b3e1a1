/* Dataset-reader throughput: decode + two augmented 224 x 224 views (METHOD.md §2 defaults)
 * per image, through the public API, as a training loop would consume it.
 *
 * usage: bench_image LIST_FILE WORKERS CTX_THREADS EPOCHS [BATCH]
 * One untimed warm-up epoch, then EPOCHS timed ones; prints one line per epoch and
 *   bench_image workers=W threads=T images=N median_images_per_s=R cpu_ms_per_image=C
 * (C: CPU time of all threads per image, a measure of work that machine load does not skew)
 * (bench/bench_image.py runs it beside PIL + torchvision and prints the ratios).
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

#include <lvmmed/lvmmed.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* CPU seconds (user + system) of the whole process, all threads. */
static double cpu_seconds(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_sec +
         1e-6 * (double)ru.ru_stime.tv_usec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

#define CHECK(call)                                                                             \
  do {                                                                                          \
    lvmmed_status st_ = (call);                                                                 \
    if (st_ != LVMMED_OK) {                                                                     \
      fprintf(stderr, "%s: %s\n", #call, lvmmed_ctx_last_error(ctx));                            \
      return 1;                                                                                 \
    }                                                                                           \
  } while (0)

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: bench_image LIST_FILE WORKERS CTX_THREADS EPOCHS [BATCH]\n");
    return 2;
  }
  int workers = atoi(argv[2]), threads = atoi(argv[3]), epochs = atoi(argv[4]);
  size_t batch = argc > 5 ? (size_t)atoi(argv[5]) : 32;
  if (epochs < 1 || epochs > 100 || batch < 1) return 2;
  lvmmed_ctx *ctx;
  lvmmed_augmenter *aug;
  lvmmed_dataset *ds;
  if (lvmmed_ctx_create(&ctx) != LVMMED_OK) return 1;
  CHECK(lvmmed_ctx_set_option(ctx, LVMMED_CTX_OPT_THREADS, threads));
  CHECK(lvmmed_augmenter_create(ctx, &aug));
  CHECK(lvmmed_dataset_create(ctx, aug, &ds));
  CHECK(lvmmed_dataset_set_option(ds, LVMMED_DATASET_OPT_WORKERS, workers));
  CHECK(lvmmed_dataset_set_option(ds, LVMMED_DATASET_OPT_QUEUE, 2 * (int64_t)batch));
  CHECK(lvmmed_dataset_add_list(ds, argv[1]));
  size_t view, grid;
  CHECK(lvmmed_augmenter_view_size(aug, &view, &grid));
  float *s = malloc(batch * view * sizeof(float)), *t = malloc(batch * view * sizeof(float));
  float *gs = malloc(batch * grid * sizeof(float)), *gt = malloc(batch * grid * sizeof(float));
  double *rates = malloc((size_t)epochs * sizeof(double));
  if (!s || !t || !gs || !gt || !rates) return 1;
  size_t images = 0;
  double cpu0 = 0.0;
  for (int e = 0; e <= epochs; e++) {
    if (e == 1) cpu0 = cpu_seconds();
    double t0 = now();
    CHECK(lvmmed_dataset_start_epoch(ds, (uint32_t)e));
    size_t n, total = 0;
    do {
      CHECK(lvmmed_dataset_next_batch(ds, batch, s, t, gs, gt, NULL, &n));
      total += n;
    } while (n > 0);
    double dt = now() - t0;
    if (e == 0) continue; /* warm-up: page cache, allocations */
    rates[e - 1] = (double)total / dt;
    images = total;
    printf("epoch %d: %zu images in %.3f s = %.1f images/s\n", e, total, dt, rates[e - 1]);
  }
  double cpu_ms = 1e3 * (cpu_seconds() - cpu0) / ((double)images * epochs);
  qsort(rates, (size_t)epochs, sizeof *rates, cmp_double);
  int64_t skipped = 0;
  lvmmed_dataset_stat(ds, LVMMED_DATASET_SKIPPED, &skipped);
  printf("bench_image workers=%d threads=%d images=%zu skipped=%lld median_images_per_s=%.2f cpu_ms_per_image=%.3f\n",
         workers, threads, images, (long long)skipped, rates[epochs / 2], cpu_ms);
  free(s);
  free(t);
  free(gs);
  free(gt);
  free(rates);
  lvmmed_dataset_free(ds);
  lvmmed_augmenter_free(aug);
  lvmmed_ctx_release(ctx);
  return skipped ? 1 : 0;
}
