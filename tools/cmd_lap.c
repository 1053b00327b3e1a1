/* lvmmed lap: exact linear assignment on a dense .npy cost matrix. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lvmmed/lvmmed.h>

#include "cli.h"
#include "npy.h"

static const char usage_text[] =
    "usage: lvmmed lap [--maximize] [--json] COST.npy\n\n"
    "Solves the linear assignment problem of a 2-D float32/float64 .npy matrix\n"
    "(rows x cols, finite values) exactly: every row gets a distinct column\n"
    "(every column a distinct row when rows > cols; the other rows get -1),\n"
    "minimising (or with --maximize maximising) the total cost. Prints the\n"
    "objective, the solve time and the column of each row (0-based).\n\n"
    "  --json   print exactly one JSON object:\n"
    "           {\"objective\":..,\"time_s\":..,\"assignment\":[..]}\n";

int cli_lap(int argc, char **argv) {
  int json = 0, maximize = 0;
  const char *path = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      fputs(usage_text, stdout);
      return CLI_OK;
    }
    if (!strcmp(a, "--json")) {
      json = 1;
    } else if (!strcmp(a, "--maximize")) {
      maximize = 1;
    } else if (cli_take_file("lvmmed lap", a, &path) != CLI_OK) {
      return CLI_USAGE;
    }
  }
  if (!path) {
    fputs(usage_text, stderr);
    return CLI_USAGE;
  }

  char err[512];
  npy_array arr;
  memset(&arr, 0, sizeof arr);
  if (npy_read(path, &arr, err, sizeof err) != 0) {
    fprintf(stderr, "lvmmed lap: %s\n", err);
    return CLI_FAILED;
  }
  int rc = CLI_FAILED;
  double *cost = NULL;
  int32_t *assignment = NULL;
  lvmmed_ctx *ctx = NULL;
  if (arr.ndim != 2) {
    fprintf(stderr, "lvmmed lap: %s: expected a 2-D cost matrix, got %zu dimension(s)\n", path,
            arr.ndim);
    goto out;
  }
  size_t rows = arr.shape[0], cols = arr.shape[1];
  if (arr.dtype == NPY_FLOAT64) {
    cost = arr.data;
    arr.data = NULL;
  } else {
    cost = malloc((arr.count ? arr.count : 1) * sizeof *cost);
    if (!cost) {
      fprintf(stderr, "lvmmed lap: %s: out of memory for %zu x %zu\n", path, rows, cols);
      goto out;
    }
    const float *src = arr.data;
    for (size_t k = 0; k < arr.count; k++) cost[k] = src[k];
  }
  assignment = malloc((rows ? rows : 1) * sizeof *assignment);
  if (!assignment) {
    fprintf(stderr, "lvmmed lap: %s: out of memory for %zu rows\n", path, rows);
    goto out;
  }
  lvmmed_status st = lvmmed_ctx_create(&ctx);
  if (st != LVMMED_OK) {
    fprintf(stderr, "lvmmed lap: %s\n", lvmmed_status_describe(st));
    goto out;
  }
  double objective = 0, t0 = cli_now_s();
  st = lvmmed_lap_solve(ctx, rows, cols, cost, maximize, assignment, &objective);
  double elapsed = cli_now_s() - t0;
  if (st != LVMMED_OK) {
    fprintf(stderr, "lvmmed lap: %s: %s\n", path, lvmmed_ctx_last_error(ctx));
    goto out;
  }
  if (json) {
    printf("{\"objective\":%.17g,\"time_s\":%.9f,\"assignment\":[", objective, elapsed);
    for (size_t i = 0; i < rows; i++) printf("%s%d", i ? "," : "", (int)assignment[i]);
    puts("]}");
  } else {
    printf("file: %s\nshape: %zu x %zu\nobjective: %.17g\ntime: %.6f s\nassignment (column of each row, 0-based):",
           path, rows, cols, objective, elapsed);
    for (size_t i = 0; i < rows; i++) printf(" %d", (int)assignment[i]);
    putchar('\n');
  }
  rc = CLI_OK;
out:
  lvmmed_ctx_release(ctx);
  free(assignment);
  free(cost);
  npy_free(&arr);
  return rc;
}
