/* lvmmed match: solve a QAPLIB instance with one of the graph-matching solvers. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lvmmed/lvmmed.h>

#include "cli.h"

static const char usage_text[] =
    "usage: lvmmed match [--solver NAME] [--restarts K] [--max-iter N] [--seed S]\n"
    "                    [--maximize] [--json] FILE.dat\n\n"
    "Solves the quadratic assignment problem of a QAPLIB file (n, then the n x n\n"
    "matrices A and B): minimise sum_ij A[i][j] * B[p(i)][p(j)] over permutations p\n"
    "(--maximize maximises). Prints the objective, the solve time and p (1-based).\n\n"
    "  --solver NAME   auto (default), lap, sm, rrwm, ipfp, 2opt, brute (n <= 9)\n"
    "  --restarts K    extra random starts for auto and 2opt (default 0)\n"
    "  --max-iter N    iteration cap of the iterative solvers (default 50)\n"
    "  --seed S        context seed for the random starts (default 0)\n"
    "  --json          print exactly one JSON object:\n"
    "                  {\"n\":..,\"solver\":..,\"objective\":..,\"time_s\":..,\"permutation\":[..]}\n";

/* Strict integer option value; 0 on success. */
static int parse_int(const char *opt, const char *text, int64_t lo, int64_t hi, int64_t *out) {
  char *end;
  errno = 0;
  long long v = strtoll(text, &end, 10);
  if (!*text || *end || errno || v < lo || v > hi) {
    fprintf(stderr, "lvmmed match: %s '%s' is not an integer in [%lld, %lld]\n", opt, text,
            (long long)lo, (long long)hi);
    return -1;
  }
  *out = v;
  return 0;
}

static int method_by_name(const char *name) {
  for (int m = LVMMED_GM_AUTO; m <= LVMMED_GM_TWO_OPT; m++)
    if (!strcmp(name, lvmmed_gm_method_name((lvmmed_gm_method)m))) return m;
  return -1;
}

int cli_match(int argc, char **argv) {
  int json = 0, method = LVMMED_GM_AUTO;
  int64_t restarts = 0, max_iter = 50, maximize = 0, seed = 0;
  const char *path = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      fputs(usage_text, stdout);
      return CLI_OK;
    }
    int64_t lo, hi;
    if (!strcmp(a, "--json")) {
      json = 1;
    } else if (!strcmp(a, "--maximize")) {
      maximize = 1;
    } else if (!strcmp(a, "--solver") || !strcmp(a, "--restarts") || !strcmp(a, "--max-iter") ||
               !strcmp(a, "--seed")) {
      if (i + 1 >= argc) {
        fprintf(stderr, "lvmmed match: %s needs a value\n", a);
        return CLI_USAGE;
      }
      const char *v = argv[++i];
      if (!strcmp(a, "--solver")) {
        method = method_by_name(v);
        if (method < 0) {
          fprintf(stderr, "lvmmed match: unknown solver '%s' (auto, lap, sm, rrwm, ipfp, 2opt, brute)\n", v);
          return CLI_USAGE;
        }
      } else if (!strcmp(a, "--restarts")) {
        lvmmed_gm_option_bounds(LVMMED_GM_OPT_RESTARTS, &lo, &hi);
        if (parse_int(a, v, lo, hi, &restarts)) return CLI_USAGE;
      } else if (!strcmp(a, "--max-iter")) {
        lvmmed_gm_option_bounds(LVMMED_GM_OPT_MAX_ITER, &lo, &hi);
        if (parse_int(a, v, lo, hi, &max_iter)) return CLI_USAGE;
      } else {
        lvmmed_ctx_option_bounds(LVMMED_CTX_OPT_SEED, &lo, &hi);
        if (parse_int(a, v, lo, hi, &seed)) return CLI_USAGE;
      }
    } else if (cli_take_file("lvmmed match", a, &path) != CLI_OK) {
      return CLI_USAGE;
    }
  }
  if (!path) {
    fputs(usage_text, stderr);
    return CLI_USAGE;
  }

  lvmmed_ctx *ctx = NULL;
  lvmmed_gm_solver *solver = NULL;
  int32_t *perm = NULL;
  int rc = CLI_FAILED;
  lvmmed_status st = lvmmed_ctx_create(&ctx);
  if (st == LVMMED_OK) st = lvmmed_ctx_set_option(ctx, LVMMED_CTX_OPT_SEED, seed);
  if (st == LVMMED_OK) st = lvmmed_gm_solver_create(ctx, &solver);
  if (st == LVMMED_OK) st = lvmmed_gm_solver_set_option(solver, LVMMED_GM_OPT_METHOD, method);
  if (st == LVMMED_OK) st = lvmmed_gm_solver_set_option(solver, LVMMED_GM_OPT_RESTARTS, restarts);
  if (st == LVMMED_OK) st = lvmmed_gm_solver_set_option(solver, LVMMED_GM_OPT_MAX_ITER, max_iter);
  if (st == LVMMED_OK) st = lvmmed_gm_solver_set_option(solver, LVMMED_GM_OPT_MAXIMIZE, maximize);
  if (st == LVMMED_OK) st = lvmmed_gm_load_qaplib(solver, path);
  if (st != LVMMED_OK) {
    fprintf(stderr, "lvmmed match: %s\n", ctx ? lvmmed_ctx_last_error(ctx) : lvmmed_status_describe(st));
    goto out;
  }
  size_t n = lvmmed_gm_problem_size(solver);
  perm = malloc(n * sizeof *perm);
  if (!perm) {
    fprintf(stderr, "lvmmed match: out of memory\n");
    goto out;
  }
  double objective = 0, t0 = cli_now_s();
  st = lvmmed_gm_solve(solver, perm, &objective);
  double elapsed = cli_now_s() - t0;
  if (st != LVMMED_OK) {
    fprintf(stderr, "lvmmed match: %s: %s\n", path, lvmmed_ctx_last_error(ctx));
    goto out;
  }
  const char *name = lvmmed_gm_method_name((lvmmed_gm_method)method);
  if (json) {
    printf("{\"n\":%zu,\"solver\":\"%s\",\"objective\":%.17g,\"time_s\":%.9f,\"permutation\":[", n,
           name, objective, elapsed);
    for (size_t i = 0; i < n; i++) printf("%s%d", i ? "," : "", (int)perm[i] + 1);
    puts("]}");
  } else {
    printf("file: %s\nn: %zu\nsolver: %s\nobjective: %.17g\ntime: %.6f s\npermutation (1-based):", path,
           n, name, objective, elapsed);
    for (size_t i = 0; i < n; i++) printf(" %d", (int)perm[i] + 1);
    putchar('\n');
  }
  rc = CLI_OK;
out:
  free(perm);
  lvmmed_gm_solver_free(solver);
  lvmmed_ctx_release(ctx);
  return rc;
}
