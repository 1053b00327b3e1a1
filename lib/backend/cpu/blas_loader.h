/* liblvmmed — OpenBLAS, loaded at run time.
 *
 * liblvmmed does not link OpenBLAS; the OpenBLAS backend dlopen()s it on
 * first use. Loading late lets us choose how OpenBLAS starts, which linking
 * cannot (OpenBLAS configures itself in its constructor, before our code):
 *  - OPENBLAS_NUM_THREADS=1 when the host set neither it nor
 *    OMP_NUM_THREADS: OpenBLAS then starts no thread pool of its own (our
 *    pool supplies all parallelism, and fork() stays safe);
 *  - OPENBLAS_CORETYPE=SkylakeX on AVX-512 CPUs when the host did not set
 *    it: OpenBLAS 0.3.21 (Debian 12) does not recognise recent Xeons and
 *    falls back to its generic "Prescott" kernels, about 5x slower.
 * Both variables are set only for the dlopen() call and then removed again.
 * If the host process already loaded libopenblas.so.0, that copy is used as is.
 */
#ifndef LVMMED_BLAS_LOADER_H
#define LVMMED_BLAS_LOADER_H

#include <cblas.h>

typedef struct lvmmed_blas_api {
  __typeof__(&cblas_sgemm) sgemm;
  __typeof__(&cblas_saxpy) saxpy;
  __typeof__(&cblas_sscal) sscal;
  __typeof__(&cblas_sdot) sdot;
  void (*set_num_threads)(int);
  char *(*get_corename)(void);
} lvmmed_blas_api;

/** Loads OpenBLAS once per process (thread-safe); NULL if it cannot be loaded. */
const lvmmed_blas_api *lvmmed__blas(void);

/** Why the last load failed ("" after success). */
const char *lvmmed__blas_error(void);

/** The OpenBLAS core type the loader asks for on this CPU ("SkylakeX"), or NULL. */
const char *lvmmed__blas_preferred_core(void);

#endif /* LVMMED_BLAS_LOADER_H */
