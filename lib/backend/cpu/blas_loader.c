/* Run-time loading of OpenBLAS; see blas_loader.h for why. */
#include "backend/cpu/blas_loader.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_once_t once = PTHREAD_ONCE_INIT;
static lvmmed_blas_api api;
static int loaded;
static char error[256];

/* The kernel set OpenBLAS should use when the host did not choose one. */
static const char *preferred_coretype(void) {
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
    return "SkylakeX";
#endif
  return NULL;
}

const char *lvmmed__blas_preferred_core(void) { return preferred_coretype(); }

static void *open_openblas(void) {
  static const char *const names[] = {"libopenblas.so.0", "libopenblas.so"};
  /* Already in the process: take it as the host configured it. */
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    void *h = dlopen(names[i], RTLD_NOW | RTLD_NOLOAD);
    if (h) return h;
  }
  int set_threads = !getenv("OPENBLAS_NUM_THREADS") && !getenv("OMP_NUM_THREADS") &&
                    !getenv("GOTO_NUM_THREADS");
  const char *core = getenv("OPENBLAS_CORETYPE") ? NULL : preferred_coretype();
  if (set_threads) setenv("OPENBLAS_NUM_THREADS", "1", 0);
  if (core) setenv("OPENBLAS_CORETYPE", core, 0);
  void *h = NULL;
  for (size_t i = 0; i < sizeof names / sizeof names[0] && !h; i++) h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
  if (!h) snprintf(error, sizeof error, "cannot load OpenBLAS: %s", dlerror());
  if (set_threads) unsetenv("OPENBLAS_NUM_THREADS");
  if (core) unsetenv("OPENBLAS_CORETYPE");
  return h;
}

#define RESOLVE(field, symbol)                                                         \
  do {                                                                                 \
    *(void **)(&api.field) = dlsym(h, symbol);                                         \
    if (!api.field) {                                                                  \
      snprintf(error, sizeof error, "OpenBLAS lacks the symbol %s", symbol);          \
      return;                                                                          \
    }                                                                                  \
  } while (0)

static void load(void) {
  void *h = open_openblas();
  if (!h) return;
  RESOLVE(sgemm, "cblas_sgemm");
  RESOLVE(saxpy, "cblas_saxpy");
  RESOLVE(sscal, "cblas_sscal");
  RESOLVE(sdot, "cblas_sdot");
  RESOLVE(set_num_threads, "openblas_set_num_threads");
  RESOLVE(get_corename, "openblas_get_corename");
  loaded = 1;
  error[0] = '\0';
}

const lvmmed_blas_api *lvmmed__blas(void) {
  pthread_once(&once, load);
  return loaded ? &api : NULL;
}

const char *lvmmed__blas_error(void) {
  pthread_once(&once, load);
  return error;
}
