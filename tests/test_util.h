/* Small helpers shared by the Check suites. */
#ifndef LVMMED_TEST_UTIL_H
#define LVMMED_TEST_UTIL_H

#include <check.h>
#include <stdlib.h>

#include <lvmmed/lvmmed.h>

/* Asserts that expr returns LVMMED_OK, printing the context's message if not. */
#define ck_assert_lvmmed_ok(ctx, expr)                                                    \
  do {                                                                                    \
    lvmmed_status st_ = (expr);                                                           \
    ck_assert_msg(st_ == LVMMED_OK, "%s failed: %s: %s", #expr, lvmmed_status_name(st_), \
                  lvmmed_ctx_last_error(ctx));                                            \
  } while (0)

/* Runs one suite verbosely (CI reads Check's summary line) and returns the exit code. */
static inline int run_suite(Suite *s) {
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_VERBOSE);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

#endif /* LVMMED_TEST_UTIL_H */
