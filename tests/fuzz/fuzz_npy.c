/* Fuzz target of the strict .npy parser of the lvmmed program (tools/npy.c):
 * any input must either parse into an array whose size matches its shape, or be
 * refused with a message — never read out of bounds or overflow. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  npy_array a;
  char err[256];
  if (npy_parse(data, size, &a, err, sizeof err) == 0) {
    size_t count = 1;
    for (size_t d = 0; d < a.ndim; d++) count *= a.shape[d];
    if (count != a.count || (a.dtype != NPY_FLOAT32 && a.dtype != NPY_FLOAT64)) abort();
    if (npy_to_float32(&a, err, sizeof err) != 0) abort();
    volatile float sink = 0.0f;
    for (size_t i = 0; i < a.count; i++) sink += ((const float *)a.data)[i];
    (void)sink;
  } else if (err[0] == '\0') {
    abort(); /* every refusal carries a reason */
  }
  npy_free(&a);
  return 0;
}
