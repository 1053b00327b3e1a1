/* LVM-Med graph problems per graph on one core: affinity forward (kNN, GCN, c_v, c_e),
 * I-MLE forward (Gumbel noise + solve), Hamming loss, I-MLE backward (target solve),
 * affinity backward. Prints one parseable line per phase (median over repetitions);
 * bench/bench_affinity.py runs it beside a PyTorch reference of the same formulas.
 *
 * usage: bench_affinity [--graphs G] [--reps R] [--threads T] [--method M] [--maps D]
 *   --maps D adds the local term with D×7×7 feature maps (D = 2048 for ResNet-50).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lvmmed/lvmmed.h>

#include "graph/imle_impl.h"

/* Process CPU time: the machine may be shared, and with one thread CPU time is the cost
 * of the work itself (wall time is printed too). */
static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double wall(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static double minimum(const double *v, int n) {
  double m = v[0];
  for (int i = 1; i < n; i++) m = v[i] < m ? v[i] : m;
  return m;
}

static uint64_t state = 88172645463325252ull;
static float gauss(void) {
  double u1, u2;
  state ^= state << 13, state ^= state >> 7, state ^= state << 17;
  u1 = ((double)(state >> 11) + 0.5) * 0x1.0p-53;
  state ^= state << 13, state ^= state >> 7, state ^= state << 17;
  u2 = (double)(state >> 11) * 0x1.0p-53;
  return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

/* The solver calls of I-MLE, timed through the estimator's private hook (one thread). */
static double solver_time;
static lvmmed_status timed_solve(void *user, lvmmed_gm_solver *solver, size_t n, const float *unary, size_t n_es,
                                 const int32_t *es, size_t n_et, const int32_t *et, const float *w, int32_t *perm) {
  (void)user;
  double t0 = now();
  lvmmed_status st = lvmmed_gm_set_problem(solver, n, unary, n_es, es, n_et, et, w);
  if (st == LVMMED_OK) st = lvmmed_gm_solve(solver, perm, NULL);
  solver_time += now() - t0;
  return st;
}

#define CHECK(ctx, expr)                                                                            \
  do {                                                                                              \
    lvmmed_status st_ = (expr);                                                                     \
    if (st_ != LVMMED_OK) {                                                                         \
      fprintf(stderr, "%s: %s (%s)\n", #expr, lvmmed_status_name(st_), lvmmed_ctx_last_error(ctx)); \
      exit(1);                                                                                      \
    }                                                                                               \
  } while (0)

int main(int argc, char **argv) {
  int graphs = 64, reps = 15, threads = 1, method = LVMMED_GM_AUTO;
  size_t maps = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--graphs")) graphs = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--method")) method = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--maps")) maps = (size_t)atoi(argv[i + 1]);
    else {
      fprintf(stderr, "usage: %s [--graphs G] [--reps R] [--threads T] [--method M] [--maps D]\n", argv[0]);
      return 2;
    }
  }
  if (graphs < 1 || reps < 1 || threads < 1 || reps > 1000) return 2;
  lvmmed_ctx *ctx;
  if (lvmmed_ctx_create(&ctx) != LVMMED_OK) return 1;
  CHECK(ctx, lvmmed_ctx_set_option(ctx, LVMMED_CTX_OPT_THREADS, threads));
  CHECK(ctx, lvmmed_ctx_set_option(ctx, LVMMED_CTX_OPT_SEED, 1));
  lvmmed_affinity *aff;
  lvmmed_imle *im;
  CHECK(ctx, lvmmed_affinity_create(ctx, &aff));
  CHECK(ctx, lvmmed_imle_create(ctx, &im));
  if (threads == 1) lvmmed__imle_set_map_hook(im, timed_solve, NULL);
  lvmmed_gm_solver **solvers = calloc((size_t)threads, sizeof *solvers);
  for (int t = 0; t < threads; t++) {
    CHECK(ctx, lvmmed_gm_solver_create(ctx, &solvers[t]));
    CHECK(ctx, lvmmed_gm_solver_set_option(solvers[t], LVMMED_GM_OPT_METHOD, method));
  }

  size_t b = (size_t)graphs * 16, f = 128, g, n, e;
  CHECK(ctx, lvmmed_affinity_shape(aff, b, &g, &n, &e, NULL));
  float *zs = malloc(b * f * sizeof(float)), *zt = malloc(b * f * sizeof(float));
  for (size_t i = 0; i < b * f; i++) {
    zs[i] = gauss();
    zt[i] = zs[i] + 0.5f * gauss(); /* view t resembles view s */
  }
  float *ms = NULL, *mt = NULL, *gs = NULL, *gt = NULL, *dms = NULL, *dmt = NULL;
  size_t p = 49;
  if (maps) {
    ms = malloc(b * maps * p * sizeof(float));
    mt = malloc(b * maps * p * sizeof(float));
    dms = malloc(b * maps * p * sizeof(float));
    dmt = malloc(b * maps * p * sizeof(float));
    gs = malloc(b * p * 2 * sizeof(float));
    gt = malloc(b * p * 2 * sizeof(float));
    for (size_t i = 0; i < b * maps * p; i++) {
      ms[i] = fmaxf(gauss(), 0.0f);
      mt[i] = fmaxf(gauss(), 0.0f);
    }
    for (size_t i = 0; i < b * p * 2; i++) {
      gs[i] = 224.0f * (float)((state = state * 6364136223846793005ull + 1) >> 40) * 0x1.0p-24f;
      gt[i] = gs[i] + 10.0f * gauss();
    }
  }
  float *cv = malloc(g * n * n * sizeof(float)), *ce = malloc(g * e * e * sizeof(float));
  float *gu = malloc(g * n * n * sizeof(float)), *ge = malloc(g * e * e * sizeof(float));
  float *dzs = malloc(b * f * sizeof(float)), *dzt = malloc(b * f * sizeof(float));
  int32_t *es = malloc(g * e * 2 * sizeof(int32_t)), *et = malloc(g * e * 2 * sizeof(int32_t));
  int32_t *perm = malloc(g * n * sizeof(int32_t));

  enum { AFF_FWD, IMLE_FWD, FWD_SOLVE, LOSS, IMLE_BWD, BWD_SOLVE, AFF_BWD, PHASES };
  static const char *names[PHASES] = {"affinity_forward", "imle_forward", "imle_forward_solver", "hamming_loss",
                                      "imle_backward", "imle_backward_solver", "affinity_backward"};
  double *t[PHASES], *fwd_imle = malloc((size_t)reps * sizeof(double)), *all = malloc((size_t)reps * sizeof(double));
  for (int k = 0; k < PHASES; k++) t[k] = malloc((size_t)reps * sizeof(double));
  double loss_sum = 0, *walls = malloc((size_t)reps * sizeof(double));
  for (int r = -1; r < reps; r++) { /* r = -1: warm-up */
    double w0 = wall(), t0 = now(), s1, s2;
    CHECK(ctx, lvmmed_affinity_forward(aff, b, zs, zt, ms, mt, maps, 7, 7, gs, gt, cv, ce, es, et));
    double t1 = now();
    solver_time = 0;
    CHECK(ctx, lvmmed_imle_forward(im, solvers, (size_t)threads, g, n, cv, e, es, e, et, ce, perm));
    double t2 = now(), loss;
    s1 = solver_time;
    CHECK(ctx, lvmmed_imle_hamming_loss(im, &loss, NULL));
    double t3 = now();
    solver_time = 0;
    CHECK(ctx, lvmmed_imle_backward(im, solvers, (size_t)threads, NULL, gu, ge));
    double t4 = now();
    s2 = solver_time;
    CHECK(ctx, lvmmed_affinity_backward(aff, gu, ge, ms, mt, dzs, dzt, dms, dmt));
    double t5 = now(), w5 = wall();
    if (r < 0) continue;
    walls[r] = (w5 - w0) * 1e6 / (double)g;
    double per = 1e6 / (double)g;
    t[AFF_FWD][r] = (t1 - t0) * per;
    t[IMLE_FWD][r] = (t2 - t1) * per;
    t[FWD_SOLVE][r] = s1 * per;
    t[BWD_SOLVE][r] = s2 * per;
    t[LOSS][r] = (t3 - t2) * per;
    t[IMLE_BWD][r] = (t4 - t3) * per;
    t[AFF_BWD][r] = (t5 - t4) * per;
    fwd_imle[r] = (t4 - t0) * per;
    all[r] = (t5 - t0) * per;
    loss_sum += loss;
  }
  printf("# %zu graphs of N = %zu, k = %zu, 128-d features, %s, %d thread(s), solver %s, %d repetitions\n", g,
         n, e / n, maps ? "local term on" : "no feature maps", threads,
         lvmmed_gm_method_name((lvmmed_gm_method)method), reps);
  for (int k = 0; k < PHASES; k++) {
    if ((k == FWD_SOLVE || k == BWD_SOLVE) && threads != 1) continue;
    printf("phase %s us_per_graph=%.2f min=%.2f\n", names[k], median(t[k], reps), minimum(t[k], reps));
  }
  printf("total forward_plus_imle_backward us_per_graph=%.2f min=%.2f\n", median(fwd_imle, reps),
         minimum(fwd_imle, reps));
  for (int r = 0; r < reps; r++) fwd_imle[r] -= t[FWD_SOLVE][r] + t[BWD_SOLVE][r];
  if (threads == 1)
    printf("total forward_plus_imle_backward_without_solver us_per_graph=%.2f min=%.2f\n", median(fwd_imle, reps),
           minimum(fwd_imle, reps));
  printf("total full_step us_per_graph=%.2f min=%.2f\n", median(all, reps), minimum(all, reps));
  printf("# process CPU time per graph (wall clock of the full step: %.2f us per graph)\n", median(walls, reps));
  printf("# mean Hamming loss %.3f (per graph, of at most %zu)\n", loss_sum / reps, 2 * n);

  for (int k = 0; k < PHASES; k++) free(t[k]);
  free(fwd_imle);
  free(walls);
  free(all);
  free(zs), free(zt), free(ms), free(mt), free(gs), free(gt), free(dms), free(dmt);
  free(cv), free(ce), free(gu), free(ge), free(dzs), free(dzt), free(es), free(et), free(perm);
  for (int i = 0; i < threads; i++) lvmmed_gm_solver_free(solvers[i]);
  free(solvers);
  lvmmed_imle_free(im);
  lvmmed_affinity_free(aff);
  lvmmed_ctx_release(ctx);
  return 0;
}
