/* Fuzz target of the QAPLIB reader (lvmmed_gm_load_qaplib). The input goes
 * through an in-memory file (memfd) so the public, path-based API is what is
 * fuzzed; small instances that load are also solved, to reach the solvers with
 * odd values (huge, tiny, negative, non-integer). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <lvmmed/lvmmed.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static lvmmed_ctx *ctx;
  static lvmmed_gm_solver *solver;
  if (!ctx && (lvmmed_ctx_create(&ctx) != LVMMED_OK || lvmmed_gm_solver_create(ctx, &solver) != LVMMED_OK))
    abort();
  int fd = memfd_create("qaplib", 0);
  if (fd < 0) abort();
  if (size && write(fd, data, size) != (ssize_t)size) abort();
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  lvmmed_status st = lvmmed_gm_load_qaplib(solver, path);
  if (st == LVMMED_OK) {
    size_t n = lvmmed_gm_problem_size(solver);
    if (n == 0) abort();
    if (n <= 12) {
      int32_t perm[12];
      double objective;
      static const lvmmed_gm_method methods[] = {LVMMED_GM_AUTO, LVMMED_GM_TWO_OPT, LVMMED_GM_RRWM};
      lvmmed_gm_solver_set_option(solver, LVMMED_GM_OPT_METHOD, methods[size % 3]);
      if (lvmmed_gm_solve(solver, perm, &objective) != LVMMED_OK) abort();
      unsigned seen = 0;
      for (size_t i = 0; i < n; i++) {
        if (perm[i] < 0 || (size_t)perm[i] >= n || (seen >> perm[i] & 1u)) abort(); /* not a permutation */
        seen |= 1u << perm[i];
      }
    }
  } else if (lvmmed_ctx_last_error(ctx)[0] == '\0') {
    abort(); /* every refusal names its cause */
  }
  close(fd);
  return 0;
}
