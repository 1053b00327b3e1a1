/* QAPLIB reader: real instances reproduce their published optimum, and
 * hostile files fail cleanly with LVMMED_ERR_FORMAT naming path and cause. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test_gm_util.h"
#include "test_util.h"

#ifndef LVMMED_GM_TEST_DATA
#  error "LVMMED_GM_TEST_DATA must name tests/graph/data"
#endif

static const char *const instances[] = {"chr12a", "had12", "nug12", "tai12b"};

/* Reads NAME.sln: n, optimum, then n 1-based entries. */
static void read_sln(const char *name, size_t *n, double *opt, int32_t *perm) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s.sln", LVMMED_GM_TEST_DATA, name);
  FILE *f = fopen(path, "r");
  ck_assert_msg(f != NULL, "cannot open %s", path);
  ck_assert_int_eq(fscanf(f, "%zu %lf", n, opt), 2);
  for (size_t i = 0; i < *n; i++) {
    int v;
    ck_assert_int_eq(fscanf(f, "%d", &v), 1);
    perm[i] = v - 1;
  }
  fclose(f);
}

START_TEST(qaplib_optimum_is_reproduced) {
  lvmmed_ctx *ctx = NULL;
  lvmmed_gm_solver *s = NULL;
  ck_assert_int_eq(lvmmed_ctx_create(&ctx), LVMMED_OK);
  ck_assert_int_eq(lvmmed_gm_solver_create(ctx, &s), LVMMED_OK);
  for (size_t k = 0; k < sizeof instances / sizeof instances[0]; k++) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s.dat", LVMMED_GM_TEST_DATA, instances[k]);
    ck_assert_lvmmed_ok(ctx, lvmmed_gm_load_qaplib(s, path));
    size_t n;
    double opt, obj;
    int32_t perm[64], p[64];
    read_sln(instances[k], &n, &opt, perm);
    ck_assert_uint_eq(lvmmed_gm_problem_size(s), n);
    ck_assert_lvmmed_ok(ctx, lvmmed_gm_objective(s, perm, &obj));
    ck_assert_double_eq(obj, opt);
    /* Every solver stays at or above the optimum and returns a permutation. */
    for (int m = LVMMED_GM_AUTO; m <= LVMMED_GM_TWO_OPT; m++) {
      if (m == LVMMED_GM_BRUTE) continue;
      ck_assert_lvmmed_ok(ctx, lvmmed_gm_solver_set_option(s, LVMMED_GM_OPT_METHOD, m));
      ck_assert_lvmmed_ok(ctx, lvmmed_gm_solve(s, p, &obj));
      ck_assert(is_permutation(p, n));
      ck_assert_double_ge(obj, opt);
    }
    /* With enough restarts AUTO finds these small optima. */
    ck_assert_lvmmed_ok(ctx, lvmmed_gm_solver_set_option(s, LVMMED_GM_OPT_METHOD, LVMMED_GM_AUTO));
    ck_assert_lvmmed_ok(ctx, lvmmed_gm_solver_set_option(s, LVMMED_GM_OPT_RESTARTS, 400));
    ck_assert_lvmmed_ok(ctx, lvmmed_gm_solve(s, p, &obj));
    ck_assert_msg(obj <= opt * 1.02, "%s: auto with 400 restarts %g, optimum %g", instances[k], obj, opt);
    ck_assert_lvmmed_ok(ctx, lvmmed_gm_solver_set_option(s, LVMMED_GM_OPT_RESTARTS, 0));
  }
  lvmmed_gm_solver_free(s);
  lvmmed_ctx_release(ctx);
}
END_TEST

/* Writes text to a fresh temporary file; returns its path (static buffer). */
static const char *temp_file(const char *text, size_t len) {
  static char path[64];
  snprintf(path, sizeof path, "/tmp/lvmmed_qaplib_XXXXXX");
  int fd = mkstemp(path);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq((int)write(fd, text, len), (int)len);
  close(fd);
  return path;
}

/* Loads text and expects status; the message must name the file and contain
 * `cause`. The solver keeps its previous problem. */
static void expect_failure(lvmmed_ctx *ctx, lvmmed_gm_solver *s, const char *text, size_t len,
                           lvmmed_status status, const char *cause) {
  const char *path = temp_file(text, len);
  size_t before = lvmmed_gm_problem_size(s);
  lvmmed_status st = lvmmed_gm_load_qaplib(s, path);
  const char *msg = lvmmed_ctx_last_error(ctx);
  ck_assert_msg(st == status, "'%.40s': got %s (%s)", text, lvmmed_status_name(st), msg);
  ck_assert_msg(strstr(msg, path) != NULL, "message '%s' does not name %s", msg, path);
  ck_assert_msg(strstr(msg, cause) != NULL, "message '%s' lacks '%s'", msg, cause);
  ck_assert_uint_eq(lvmmed_gm_problem_size(s), before);
  unlink(path);
}

#define EXPECT(text, status, cause) expect_failure(ctx, s, text, sizeof(text) - 1, status, cause)

START_TEST(hostile_files_fail_cleanly) {
  lvmmed_ctx *ctx = NULL;
  lvmmed_gm_solver *s = NULL;
  ck_assert_int_eq(lvmmed_ctx_create(&ctx), LVMMED_OK);
  ck_assert_int_eq(lvmmed_gm_solver_create(ctx, &s), LVMMED_OK);
  EXPECT("", LVMMED_ERR_FORMAT, "empty file");
  EXPECT("   \n\n", LVMMED_ERR_FORMAT, "empty file");
  EXPECT("2\n1 2\n3 4\n5 6\n7\n", LVMMED_ERR_FORMAT, "truncated"); /* 7 of 8 numbers */
  EXPECT("2\n1 2 3 4 5 6 7 8 9 10\n", LVMMED_ERR_FORMAT, "more numbers");
  EXPECT("-3\n", LVMMED_ERR_FORMAT, "not an integer in [1, 4096]");
  EXPECT("0\n", LVMMED_ERR_FORMAT, "not an integer");
  EXPECT("2.5\n", LVMMED_ERR_FORMAT, "not an integer");
  EXPECT("5000\n", LVMMED_ERR_FORMAT, "not an integer");
  EXPECT("99999999999999999999999\n", LVMMED_ERR_FORMAT, "not an integer");
  EXPECT("4096\n1 2 3\n", LVMMED_ERR_FORMAT, "truncated"); /* huge n, no data: no big allocation */
  EXPECT("twelve\n", LVMMED_ERR_FORMAT, "'twelve'");
  EXPECT("2\n1 2 x 4\n5 6 7 8\n", LVMMED_ERR_FORMAT, "'x' is not a finite number");
  EXPECT("2\n1 2 nan 4\n5 6 7 8\n", LVMMED_ERR_FORMAT, "'nan'");
  EXPECT("2\n1 2 inf 4\n5 6 7 8\n", LVMMED_ERR_FORMAT, "'inf'");
  EXPECT("2\n1 2 0x10 4\n5 6 7 8\n", LVMMED_ERR_FORMAT, "'0x10'");
  EXPECT("2\n1 2 1e400 4\n5 6 7 8\n", LVMMED_ERR_FORMAT, "'1e400'");
  EXPECT("2\n1 2 3 4\n5 6 7 8\n\x01\x02\n", LVMMED_ERR_FORMAT, "not a finite number");
  EXPECT("2\n1 2 3 4\n5 6 7 8 9\n", LVMMED_ERR_FORMAT, ":3:");  /* line of the extra number */
  EXPECT("2\n1 2 3\n4\n5 6 7 8 9\n", LVMMED_ERR_FORMAT, "more numbers");
  EXPECT("2\n1e200 1 1 1\n1e200 1 1 1\n", LVMMED_ERR_OUT_OF_RANGE, "overflow");
  char nul[] = "2\n1 2 3 4\n5 6 7 8";
  nul[3] = '\0';
  expect_failure(ctx, s, nul, sizeof nul - 1, LVMMED_ERR_FORMAT, "not a finite number");
  /* a 200-character token */
  char longtok[256];
  memset(longtok, '1', sizeof longtok);
  longtok[0] = '2';
  longtok[1] = '\n';
  expect_failure(ctx, s, longtok, sizeof longtok, LVMMED_ERR_FORMAT, "too long");
  /* missing file */
  ck_assert_int_eq(lvmmed_gm_load_qaplib(s, "/nonexistent/dir/x.dat"), LVMMED_ERR_IO);
  ck_assert_ptr_nonnull(strstr(lvmmed_ctx_last_error(ctx), "/nonexistent/dir/x.dat"));
  ck_assert_int_eq(lvmmed_gm_load_qaplib(s, NULL), LVMMED_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(lvmmed_gm_load_qaplib(NULL, "x"), LVMMED_ERR_INVALID_ARGUMENT);
  /* a directory is not a file */
  ck_assert_int_ne(lvmmed_gm_load_qaplib(s, "/tmp"), LVMMED_OK);
  lvmmed_gm_solver_free(s);
  lvmmed_ctx_release(ctx);
}
END_TEST

START_TEST(accepted_variants) {
  lvmmed_ctx *ctx = NULL;
  lvmmed_gm_solver *s = NULL;
  ck_assert_int_eq(lvmmed_ctx_create(&ctx), LVMMED_OK);
  ck_assert_int_eq(lvmmed_gm_solver_create(ctx, &s), LVMMED_OK);
  int32_t p[2] = {1, 0};
  double obj;
  /* "n value" header, CRLF line ends, tabs, reals and signs */
  static const char text[] = "2 12345\r\n1\t2.5\r\n-3 +4\r\n\r\n5 6e0\n7 8\n";
  const char *path = temp_file(text, sizeof text - 1);
  ck_assert_lvmmed_ok(ctx, lvmmed_gm_load_qaplib(s, path));
  unlink(path);
  ck_assert_uint_eq(lvmmed_gm_problem_size(s), 2);
  double a[4] = {1, 2.5, -3, 4}, b[4] = {5, 6, 7, 8};
  ck_assert_lvmmed_ok(ctx, lvmmed_gm_objective(s, p, &obj));
  ck_assert_double_eq(obj, kb_direct(2, a, b, p));
  /* n = 1 on one line */
  static const char one[] = "1 3 4";
  path = temp_file(one, sizeof one - 1);
  ck_assert_lvmmed_ok(ctx, lvmmed_gm_load_qaplib(s, path));
  unlink(path);
  ck_assert_lvmmed_ok(ctx, lvmmed_gm_solve(s, p, &obj));
  ck_assert_double_eq(obj, 12);
  lvmmed_gm_solver_free(s);
  lvmmed_ctx_release(ctx);
}
END_TEST

/* Deterministic mutations of the real files (byte flips, cuts, inserted
 * junk and huge numbers): every load either succeeds or fails with a
 * format/range error and a message; under ASan this also proves the reader
 * never reads or writes out of bounds. */
START_TEST(mutated_files_never_crash) {
  lvmmed_ctx *ctx = NULL;
  lvmmed_gm_solver *s = NULL;
  ck_assert_int_eq(lvmmed_ctx_create(&ctx), LVMMED_OK);
  ck_assert_int_eq(lvmmed_gm_solver_create(ctx, &s), LVMMED_OK);
  static const char *const junk[] = {" ", "\n", "-", "x", "1e999", "99999", "0", ".", "+",
                                     "nan", "\t-7.5e3 ", "4096", "\0", "18446744073709551616"};
  test_rng r = {21};
  int ok = 0, failed = 0;
  for (size_t k = 0; k < sizeof instances / sizeof instances[0]; k++) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s.dat", LVMMED_GM_TEST_DATA, instances[k]);
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    static char orig[4096], buf[8192];
    size_t len = fread(orig, 1, sizeof orig, f);
    fclose(f);
    for (int t = 0; t < 150; t++) {
      size_t m = len;
      memcpy(buf, orig, len);
      int edits = 1 + trng_below(&r, 3);
      for (int e = 0; e < edits; e++) {
        size_t at = m ? (size_t)trng_below(&r, (int)m) : 0;
        switch (trng_below(&r, 4)) {
          case 0: buf[at] = (char)trng_below(&r, 256); break; /* flip a byte */
          case 1: m = at; break;                               /* cut */
          case 2: {                                            /* insert junk */
            const char *j = junk[trng_below(&r, (int)(sizeof junk / sizeof junk[0]))];
            size_t jl = strlen(j) ? strlen(j) : 1;
            if (m + jl < sizeof buf) {
              memmove(buf + at + jl, buf + at, m - at);
              memcpy(buf + at, j, jl);
              m += jl;
            }
            break;
          }
          default: /* duplicate a chunk */
            if (m + 16 < sizeof buf && at + 16 <= m) {
              memmove(buf + at + 16, buf + at, m - at);
              m += 16;
            }
        }
      }
      const char *tmp = temp_file(buf, m);
      lvmmed_status st = lvmmed_gm_load_qaplib(s, tmp);
      unlink(tmp);
      if (st == LVMMED_OK) {
        ok++;
        int32_t p[64];
        double obj;
        size_t n = lvmmed_gm_problem_size(s);
        ck_assert_uint_le(n, 4096);
        if (n <= 64) ck_assert_int_eq(lvmmed_gm_solve(s, p, &obj), LVMMED_OK);
      } else {
        failed++;
        ck_assert_msg(st == LVMMED_ERR_FORMAT || st == LVMMED_ERR_OUT_OF_RANGE, "status %s",
                      lvmmed_status_name(st));
        ck_assert_ptr_nonnull(strstr(lvmmed_ctx_last_error(ctx), tmp));
      }
    }
  }
  printf("mutated QAPLIB files: %d loaded, %d rejected\n", ok, failed);
  ck_assert_int_gt(failed, 0);
  lvmmed_gm_solver_free(s);
  lvmmed_ctx_release(ctx);
}
END_TEST

static Suite *qaplib_suite(void) {
  Suite *s = suite_create("gm_qaplib");
  TCase *tc = tcase_create("qaplib");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, qaplib_optimum_is_reproduced);
  tcase_add_test(tc, hostile_files_fail_cleanly);
  tcase_add_test(tc, accepted_variants);
  tcase_add_test(tc, mutated_files_never_crash);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return run_suite(qaplib_suite()); }
