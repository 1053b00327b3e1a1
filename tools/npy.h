/* Strict .npy (NumPy format 1.0/2.0/3.0) reading and writing for the lvmmed program.
 *
 * Reading accepts little-endian float32 ('<f4') or float64 ('<f8') arrays in
 * C order only; Fortran order, other dtypes, big-endian data, shapes whose
 * element count overflows or disagrees with the file size are refused with a
 * message naming the file and the cause.
 */
#ifndef LVMMED_TOOLS_NPY_H
#define LVMMED_TOOLS_NPY_H

#include <stddef.h>

#define NPY_MAX_DIMS 8

typedef enum npy_dtype { NPY_FLOAT32 = 4, NPY_FLOAT64 = 8 } npy_dtype;

typedef struct npy_array {
  npy_dtype dtype;
  size_t ndim;
  size_t shape[NPY_MAX_DIMS];
  size_t count; /* product of shape (1 for a 0-d array) */
  void *data;   /* count elements of dtype, malloc'ed */
} npy_array;

/** Parses an in-memory .npy image (size bytes). Returns 0 or -1 with err filled. */
int npy_parse(const unsigned char *bytes, size_t size, npy_array *out, char *err, size_t errlen);

/** Reads path. Returns 0, or -1 with a message "PATH: cause" in err. */
int npy_read(const char *path, npy_array *out, char *err, size_t errlen);

/** Converts out->data to float32 in place (float64 values are rounded). Returns 0 or -1. */
int npy_to_float32(npy_array *arr, char *err, size_t errlen);

/** Writes a little-endian C-order array (version 1.0 header). Returns 0 or -1 with err. */
int npy_write(const char *path, npy_dtype dtype, const void *data, size_t ndim, const size_t *shape,
              char *err, size_t errlen);

/** Frees data and zeroes the struct. */
void npy_free(npy_array *arr);

#endif /* LVMMED_TOOLS_NPY_H */
