/* Graph-matching solver time per LVM-Med graph (N = 16 nodes, kNN k = 5,
 * 128-d node features, |E| = 80 per side), one thread.
 *
 * usage: bench_gm_solver [graphs] [noise]
 *
 * Each graph: features z of 16 images, a second view z' = permuted z plus
 * Gaussian noise (default sigma 1: cosine between views ~0.7), kNN graphs on
 * both, unary = cosine(z_i, z'_a), edge affinity = cosine of the feature
 * differences along the two edges. Prints the median and mean µs per graph
 * of lvmmed_gm_set_problem and of lvmmed_gm_solve for each method, and the
 * share of graphs on which each method reaches the best value found by AUTO
 * with 200 random restarts (the reference: exhaustive search is out of
 * reach at N = 16). No external solver handles this sparse Lawler form, so
 * the reference side is our own long multi-start run.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lvmmed/lvmmed.h>

#define N 16
#define K 5
#define D 128
#define M (N * K)

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t state = 42;
static double uniform(void) {
  state ^= state << 13;
  state ^= state >> 7;
  state ^= state << 17;
  return (double)(state >> 11) * 0x1.0p-53 + 0x1.0p-54;
}
static double gauss(void) { return sqrt(-2 * log(uniform())) * cos(6.283185307179586 * uniform()); }

static void knn(double z[N][D], int32_t *e) {
  for (int i = 0, m = 0; i < N; i++) {
    int used[N] = {0};
    used[i] = 1;
    for (int t = 0; t < K; t++) {
      int best = -1;
      double bd = HUGE_VAL;
      for (int j = 0; j < N; j++) {
        if (used[j]) continue;
        double d = 0;
        for (int q = 0; q < D; q++) d += (z[i][q] - z[j][q]) * (z[i][q] - z[j][q]);
        if (d < bd) bd = d, best = j;
      }
      used[best] = 1;
      e[2 * m] = i;
      e[2 * m + 1] = best;
      m++;
    }
  }
}

static double cosine(const double *a, const double *b) {
  double ab = 0, aa = 0, bb = 0;
  for (int q = 0; q < D; q++) ab += a[q] * b[q], aa += a[q] * a[q], bb += b[q] * b[q];
  return ab / sqrt(aa * bb);
}

typedef struct graph {
  float unary[N * N];
  int32_t src[2 * M], tgt[2 * M];
  float w[M * M];
} graph;

static void make_graph(double sigma, graph *g) {
  static double z[N][D], z2[N][D];
  int perm[N];
  for (int i = 0; i < N; i++) perm[i] = i;
  for (int i = N - 1; i > 0; i--) {
    int j = (int)(uniform() * (i + 1)) % (i + 1), t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
  for (int i = 0; i < N; i++)
    for (int q = 0; q < D; q++) z[i][q] = gauss();
  for (int a = 0; a < N; a++)
    for (int q = 0; q < D; q++) z2[a][q] = z[perm[a]][q] + sigma * gauss();
  for (int i = 0; i < N; i++)
    for (int a = 0; a < N; a++) g->unary[i * N + a] = (float)cosine(z[i], z2[a]);
  knn(z, g->src);
  knn(z2, g->tgt);
  for (int e = 0; e < M; e++)
    for (int f = 0; f < M; f++) {
      double d1[D], d2[D];
      for (int q = 0; q < D; q++) {
        d1[q] = z[g->src[2 * e]][q] - z[g->src[2 * e + 1]][q];
        d2[q] = z2[g->tgt[2 * f]][q] - z2[g->tgt[2 * f + 1]][q];
      }
      g->w[e * M + f] = (float)cosine(d1, d2);
    }
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int main(int argc, char **argv) {
  int graphs = argc > 1 ? atoi(argv[1]) : 200;
  double sigma = argc > 2 ? atof(argv[2]) : 1.0;
  if (graphs < 1) graphs = 1;
  static const lvmmed_gm_method methods[] = {LVMMED_GM_AUTO, LVMMED_GM_LAP, LVMMED_GM_IPFP,
                                             LVMMED_GM_TWO_OPT, LVMMED_GM_SPECTRAL,
                                             LVMMED_GM_RRWM};
  enum { NM = sizeof methods / sizeof methods[0], REPS = 20 };
  lvmmed_ctx *ctx = NULL;
  lvmmed_gm_solver *s = NULL;
  if (lvmmed_ctx_create(&ctx) || lvmmed_ctx_set_option(ctx, LVMMED_CTX_OPT_THREADS, 1) ||
      lvmmed_gm_solver_create(ctx, &s)) {
    fprintf(stderr, "bench_gm_solver: setup failed\n");
    return 1;
  }
  graph *gs = malloc((size_t)graphs * sizeof *gs);
  double *t_set = malloc((size_t)graphs * sizeof *t_set);
  double *t_solve = malloc((size_t)graphs * NM * sizeof *t_solve);
  int hits[NM] = {0};
  if (!gs || !t_set || !t_solve) return 1;
  for (int k = 0; k < graphs; k++) make_graph(sigma, &gs[k]);
  int32_t p[N];
  double obj, ref;
  for (int k = 0; k < graphs; k++) {
    graph *g = &gs[k];
    double t0 = now_s();
    for (int r = 0; r < REPS; r++) lvmmed_gm_set_problem(s, N, g->unary, M, g->src, M, g->tgt, g->w);
    t_set[k] = (now_s() - t0) / REPS;
    lvmmed_gm_solver_set_option(s, LVMMED_GM_OPT_METHOD, LVMMED_GM_AUTO);
    lvmmed_gm_solver_set_option(s, LVMMED_GM_OPT_RESTARTS, 200);
    lvmmed_gm_solve(s, p, &ref);
    lvmmed_gm_solver_set_option(s, LVMMED_GM_OPT_RESTARTS, 0);
    for (int m = 0; m < NM; m++) {
      lvmmed_gm_solver_set_option(s, LVMMED_GM_OPT_METHOD, methods[m]);
      t0 = now_s();
      for (int r = 0; r < REPS; r++) lvmmed_gm_solve(s, p, &obj);
      t_solve[m * graphs + k] = (now_s() - t0) / REPS;
      if (obj >= ref - 1e-9 * fabs(ref)) hits[m]++;
    }
  }
  printf("LVM-Med graphs: N=%d, k=%d, %d-d features, |E|=%d per side, noise sigma %.2f, %d graphs, 1 thread\n",
         N, K, D, M, sigma, graphs);
  printf("%-14s %12s %12s %14s\n", "step", "median us", "mean us", "best-known %");
  double mean = 0;
  for (int k = 0; k < graphs; k++) mean += t_set[k];
  printf("%-14s %12.2f %12.2f %14s\n", "set_problem", 1e6 * median(t_set, graphs), 1e6 * mean / graphs, "-");
  for (int m = 0; m < NM; m++) {
    double *t = t_solve + m * graphs;
    mean = 0;
    for (int k = 0; k < graphs; k++) mean += t[k];
    char name[32];
    snprintf(name, sizeof name, "solve %s", lvmmed_gm_method_name(methods[m]));
    printf("%-14s %12.2f %12.2f %13.1f%%\n", name, 1e6 * median(t, graphs), 1e6 * mean / graphs,
           100.0 * hits[m] / graphs);
  }
  free(gs);
  free(t_set);
  free(t_solve);
  lvmmed_gm_solver_free(s);
  lvmmed_ctx_release(ctx);
  return 0;
}
