/* match_qaplib — the graph-matching solvers on a QAPLIB instance.
 *
 *   cc match_qaplib.c $(pkg-config --cflags --libs lvmmed) -o match_qaplib
 *   ./match_qaplib chr12a.dat [chr12a.sln]
 *
 * A QAPLIB instance is a Koopmans–Beckmann quadratic assignment problem:
 * minimise sum_ij A[i][j] * B[p(i)][p(j)] over permutations p. The solver
 * that LVM-Med's training uses for its (Lawler-form) graphs solves these too.
 * Each method runs on the same problem; with the instance's .sln file (size,
 * optimum, optimal permutation) the gap to the optimum is printed as well.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lvmmed/lvmmed.h>

static double now_seconds(void) {
  struct timespec ts;
  timespec_get(&ts, TIME_UTC);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int report(lvmmed_ctx *ctx, lvmmed_status st) {
  fprintf(stderr, "match_qaplib: %s (%s)\n", lvmmed_ctx_last_error(ctx), lvmmed_status_name(st));
  return 0;
}

/* Reads the next integer of a .sln file at *pos (separators: white space and commas). */
static int next_number(const char **pos, long long *value) {
  const char *p = *pos + strspn(*pos, " \t\r\n,");
  char *end;
  errno = 0;
  *value = strtoll(p, &end, 10);
  if (end == p || errno) return 0;
  *pos = end;
  return 1;
}

/* A .sln file: "n optimum", then the optimal permutation, 1-based. On
 * success *perm (n entries, 0-based) must be freed by the caller. */
static int read_solution(const char *path, size_t n, double *optimum, int32_t **perm) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "match_qaplib: %s: %s\n", path, strerror(errno));
    return 0;
  }
  static char text[1 << 16]; /* n <= 4096 numbers of a few digits fit */
  size_t len = fread(text, 1, sizeof text - 1, f);
  int too_long = !feof(f);
  fclose(f);
  text[len] = '\0';
  if (too_long) {
    fprintf(stderr, "match_qaplib: %s: larger than %zu bytes\n", path, sizeof text - 1);
    return 0;
  }
  const char *pos = text;
  long long size = 0, opt = 0, v = 0;
  if (!next_number(&pos, &size) || !next_number(&pos, &opt)) {
    fprintf(stderr, "match_qaplib: %s: expected \"n optimum\" on the first line\n", path);
    return 0;
  }
  if (size < 0 || (unsigned long long)size != n) {
    fprintf(stderr, "match_qaplib: %s is for n = %lld, the instance has n = %zu\n", path, size, n);
    return 0;
  }
  if (!(*perm = malloc(n * sizeof **perm))) return 0;
  for (size_t i = 0; i < n; i++) {
    if (!next_number(&pos, &v) || v < 1 || (unsigned long long)v > n) {
      fprintf(stderr, "match_qaplib: %s: entry %zu of the permutation is not in 1..%zu\n", path, i + 1, n);
      free(*perm);
      *perm = NULL;
      return 0;
    }
    (*perm)[i] = (int32_t)(v - 1);
  }
  *optimum = (double)opt;
  return 1;
}

/* Checks that the .sln permutation scores the stated optimum (QAPLIB lists
 * some solutions as the inverse permutation: that is tried too). */
static int check_solution(lvmmed_gm_solver *solver, size_t n, double optimum, int32_t *perm) {
  lvmmed_ctx *ctx = lvmmed_gm_solver_ctx(solver);
  double value;
  lvmmed_status st = lvmmed_gm_objective(solver, perm, &value);
  if (st != LVMMED_OK) return report(ctx, st);
  if (value != optimum) {
    int32_t *inverse = malloc(n * sizeof *inverse);
    if (!inverse) return 0;
    for (size_t i = 0; i < n; i++) inverse[perm[i]] = (int32_t)i;
    st = lvmmed_gm_objective(solver, inverse, &value);
    free(inverse);
    if (st != LVMMED_OK) return report(ctx, st);
  }
  if (value != optimum) {
    fprintf(stderr, "match_qaplib: the .sln permutation scores %.17g, not the stated %.17g\n", value,
            optimum);
    return 0;
  }
  return 1;
}

/* Solves with one method; prints objective, gap and time. Returns 0 on failure,
 * or if the objective beats the known optimum (which would be a bug). */
static int run_method(lvmmed_gm_solver *solver, lvmmed_gm_method method, int64_t restarts,
                      const double *optimum, int32_t *perm) {
  lvmmed_ctx *ctx = lvmmed_gm_solver_ctx(solver);
  lvmmed_status st = lvmmed_gm_solver_set_option(solver, LVMMED_GM_OPT_METHOD, method);
  if (st == LVMMED_OK) st = lvmmed_gm_solver_set_option(solver, LVMMED_GM_OPT_RESTARTS, restarts);
  if (st != LVMMED_OK) return report(ctx, st);
  double objective = 0, start = now_seconds();
  st = lvmmed_gm_solve(solver, perm, &objective);
  double ms = 1e3 * (now_seconds() - start);
  if (st != LVMMED_OK) return report(ctx, st);

  char label[32];
  if (restarts) snprintf(label, sizeof label, "%s+%d", lvmmed_gm_method_name(method), (int)restarts);
  else snprintf(label, sizeof label, "%s", lvmmed_gm_method_name(method));
  printf("%-10s %16.10g", label, objective);
  if (optimum && *optimum != 0) printf("  %8.3f%%", 100.0 * (objective - *optimum) / *optimum);
  else if (optimum) printf("  %+9.3g", objective - *optimum);
  printf("  %10.3f ms\n", ms);
  if (optimum && objective < *optimum) {
    fprintf(stderr, "match_qaplib: %s found %.17g, below the optimum %.17g\n", label, objective, *optimum);
    return 0;
  }
  return 1;
}

int main(int argc, char **argv) {
  if (argc < 2 || argc > 3) {
    fputs("usage: match_qaplib FILE.dat [FILE.sln]\n"
          "  Solves a QAPLIB instance with every graph-matching method of liblvmmed and\n"
          "  prints each objective and time, and the gap to the optimum given in FILE.sln.\n",
          stderr);
    return 2;
  }
  lvmmed_ctx *ctx = NULL;
  lvmmed_gm_solver *solver = NULL;
  int32_t *perm = NULL, *optimal = NULL;
  double optimum = 0;
  int ok = 0;

  lvmmed_status st = lvmmed_ctx_create(&ctx);
  if (st != LVMMED_OK) {
    fprintf(stderr, "match_qaplib: lvmmed_ctx_create: %s\n", lvmmed_status_name(st));
    return 1;
  }
  /* The solver parses the file: a malformed one gives LVMMED_ERR_FORMAT and a
   * message naming the file, line and cause. */
  if ((st = lvmmed_gm_solver_create(ctx, &solver)) != LVMMED_OK ||
      (st = lvmmed_gm_load_qaplib(solver, argv[1])) != LVMMED_OK) {
    report(ctx, st);
    goto done;
  }
  size_t n = lvmmed_gm_problem_size(solver);
  if (argc == 3 && (!read_solution(argv[2], n, &optimum, &optimal) ||
                    !check_solution(solver, n, optimum, optimal)))
    goto done;
  if (!(perm = malloc(n * sizeof *perm))) goto done;

  printf("%s: n = %zu (minimised)", argv[1], n);
  if (optimal) printf(", optimum %.10g", optimum);
  printf("\n%-10s %16s  %9s  %13s\n", "method", "objective", optimal ? "gap" : "", "time");

  /* AUTO first: the default, what a new solver uses. */
  static const lvmmed_gm_method methods[] = {LVMMED_GM_AUTO, LVMMED_GM_LAP, LVMMED_GM_SPECTRAL,
                                             LVMMED_GM_RRWM, LVMMED_GM_IPFP, LVMMED_GM_TWO_OPT};
  const double *known = optimal ? &optimum : NULL;
  ok = 1;
  for (size_t i = 0; ok && i < sizeof methods / sizeof methods[0]; i++)
    ok = run_method(solver, methods[i], 0, known, perm);
  /* Random restarts (seeded by the context: reproducible) usually close the gap further. */
  if (ok) ok = run_method(solver, LVMMED_GM_AUTO, 16, known, perm);
  if (ok && n <= 9) ok = run_method(solver, LVMMED_GM_BRUTE, 0, known, perm); /* exhaustive */

done:
  free(perm);
  free(optimal);
  lvmmed_gm_solver_free(solver);
  lvmmed_ctx_release(ctx);
  return ok ? 0 : 1;
}
