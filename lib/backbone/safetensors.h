/* liblvmmed — private safetensors reader and writer (lib/backbone).
 *
 * The format: an 8-byte little-endian header length N, N bytes of JSON
 * ({"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]},
 * ..., optional "__metadata__": {string: string}}), then the tensor bytes;
 * offsets are relative to the end of the header.
 *
 * The reader treats its input as hostile: the header length is bounded
 * (LVMMED_ST_HEADER_MAX) and checked against the size, the JSON is parsed by
 * jansson (duplicate keys rejected, nesting bounded by jansson), every entry
 * must have a known dtype, a shape of at most LVMMED_ST_MAX_DIMS non-negative
 * dimensions whose byte size does not overflow and equals end - begin, and the
 * data ranges must tile the data section exactly (sorted, no gap, no
 * overlap), as the reference implementation requires.
 */
#ifndef LVMMED_SAFETENSORS_H
#define LVMMED_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "lvmmed/ctx.h"

#define LVMMED_ST_HEADER_MAX ((size_t)100 << 20) /* the reference implementation's limit */
#define LVMMED_ST_MAX_DIMS 8
#define LVMMED_ST_NAME_MAX 1024
#define LVMMED_ST_FILE_MAX ((size_t)1 << 34) /* 16 GiB: far above any ResNet checkpoint */

typedef enum lvmmed_st_dtype {
  LVMMED_ST_F32, LVMMED_ST_F16, LVMMED_ST_BF16, LVMMED_ST_F64, LVMMED_ST_I64, LVMMED_ST_I32,
  LVMMED_ST_OTHER /* a valid dtype we do not convert (BOOL, U8, I8, ...): size known */
} lvmmed_st_dtype;

typedef struct lvmmed_st_tensor {
  const char *name;            /* NUL-terminated, owned by the file */
  lvmmed_st_dtype dtype;
  const char *dtype_name;      /* "F32", ... */
  size_t ndim, shape[LVMMED_ST_MAX_DIMS], numel;
  const unsigned char *data;   /* into the caller's buffer; not aligned */
  size_t nbytes;
} lvmmed_st_tensor;

typedef struct lvmmed_st_file {
  lvmmed_st_tensor *tensors;   /* sorted by name */
  size_t count;
  char *names;                 /* storage of the names */
} lvmmed_st_file;

/** Parses bytes[0..size) (kept borrowed: tensors point into it). On failure records
 *  LVMMED_ERR_FORMAT (or OUT_OF_MEMORY/LIMIT) with a message starting with origin. */
lvmmed_status lvmmed__st_parse(lvmmed_ctx *ctx, const unsigned char *bytes, size_t size,
                               const char *origin, lvmmed_st_file *out);

void lvmmed__st_free(lvmmed_ctx *ctx, lvmmed_st_file *f);

/** Reads the whole regular file at path (at most LVMMED_ST_FILE_MAX bytes) into *bytes
 *  (lvmmed__alloc'ed, *size bytes); failures name the file and the cause. */
lvmmed_status lvmmed__st_read_file(lvmmed_ctx *ctx, const char *path, unsigned char **bytes, size_t *size);

/** The tensor called name, or NULL. */
const lvmmed_st_tensor *lvmmed__st_find(const lvmmed_st_file *f, const char *name);

/** Converts a float tensor (F32/F16/BF16/F64) to float32 into dst (numel floats). 0 if not float. */
int lvmmed__st_to_f32(const lvmmed_st_tensor *t, float *dst);

/** First element of an integer (I64/I32) tensor as int64; 0 if not integer or empty. */
int lvmmed__st_to_i64(const lvmmed_st_tensor *t, int64_t *value);

/** One tensor to write: float32 data, or one int64 scalar when f32 is NULL. */
typedef struct lvmmed_st_entry {
  const char *name;
  size_t ndim, shape[LVMMED_ST_MAX_DIMS];
  const float *f32;
  int64_t i64;
} lvmmed_st_entry;

/** Writes entries (and metadata key/value pairs, nmeta of them) to path via a temporary
 *  file renamed into place. */
lvmmed_status lvmmed__st_write(lvmmed_ctx *ctx, const char *path, const lvmmed_st_entry *entries,
                               size_t count, const char *const *meta_kv, size_t nmeta);

/** The "__metadata__" object of a safetensors image (a new reference, NULL when absent or
 *  unreadable; parse the file first for validation). */
struct json_t;
struct json_t *lvmmed__st_metadata(const unsigned char *bytes, size_t size);

#endif /* LVMMED_SAFETENSORS_H */
