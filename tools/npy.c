/* Strict .npy reader/writer (see npy.h). The header is a Python dict literal;
 * we accept exactly the keys NumPy writes and reject anything else. */
#include "npy.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAGIC "\x93NUMPY"
#define MAX_HEADER (1u << 20) /* NumPy itself caps headers far below this */

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static int fail(char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (err && errlen) vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
  return -1;
}

static const char *skip_ws(const char *p, const char *end) {
  while (p < end && (*p == ' ' || *p == '\t' || *p == '\n')) p++;
  return p;
}

/* Parses a quoted string value into buf; returns the position after it or NULL. */
static const char *parse_str(const char *p, const char *end, char *buf, size_t buflen) {
  if (p >= end || (*p != '\'' && *p != '"')) return NULL;
  char q = *p++;
  size_t n = 0;
  while (p < end && *p != q) {
    if (n + 1 >= buflen) return NULL;
    buf[n++] = *p++;
  }
  if (p >= end) return NULL;
  buf[n] = '\0';
  return p + 1;
}

/* Parses "(d0, d1, ...)" with an optional trailing comma. */
static const char *parse_shape(const char *p, const char *end, npy_array *out, char *err, size_t errlen,
                               int *failed) {
  *failed = 1;
  if (p >= end || *p != '(') return NULL;
  p++;
  out->ndim = 0;
  for (;;) {
    p = skip_ws(p, end);
    if (p < end && *p == ')') break;
    if (out->ndim == NPY_MAX_DIMS) {
      fail(err, errlen, "more than %d dimensions", NPY_MAX_DIMS);
      return NULL;
    }
    if (p >= end || *p < '0' || *p > '9') return NULL;
    uint64_t v = 0;
    while (p < end && *p >= '0' && *p <= '9') {
      if (v > (UINT64_MAX - 9) / 10) {
        fail(err, errlen, "dimension too large");
        return NULL;
      }
      v = v * 10 + (uint64_t)(*p++ - '0');
    }
    if (p < end && *p == 'L') p++; /* Python 2 long suffix */
    if (v > SIZE_MAX) return NULL;
    out->shape[out->ndim++] = (size_t)v;
    p = skip_ws(p, end);
    if (p < end && *p == ',') {
      p++;
      continue;
    }
    if (p < end && *p == ')') break;
    return NULL;
  }
  *failed = 0;
  return p + 1;
}

static int parse_header(const char *h, size_t len, npy_array *out, char *err, size_t errlen) {
  const char *p = h, *end = h + len;
  int have_descr = 0, have_order = 0, have_shape = 0;
  p = skip_ws(p, end);
  if (p >= end || *p != '{') return fail(err, errlen, "header is not a dict");
  p++;
  for (;;) {
    p = skip_ws(p, end);
    if (p < end && *p == '}') break;
    char key[32];
    p = parse_str(p, end, key, sizeof key);
    if (!p) return fail(err, errlen, "malformed header key");
    p = skip_ws(p, end);
    if (p >= end || *p != ':') return fail(err, errlen, "malformed header: ':' expected after '%s'", key);
    p = skip_ws(p + 1, end);
    if (!strcmp(key, "descr")) {
      char descr[32];
      p = parse_str(p, end, descr, sizeof descr);
      if (!p) return fail(err, errlen, "malformed 'descr'");
      if (!strcmp(descr, "<f4"))
        out->dtype = NPY_FLOAT32;
      else if (!strcmp(descr, "<f8"))
        out->dtype = NPY_FLOAT64;
      else
        return fail(err, errlen, "dtype '%s' not supported (float32 '<f4' or float64 '<f8' expected)",
                    descr);
      have_descr = 1;
    } else if (!strcmp(key, "fortran_order")) {
      if (end - p >= 5 && !strncmp(p, "False", 5)) {
        p += 5;
      } else if (end - p >= 4 && !strncmp(p, "True", 4)) {
        return fail(err, errlen, "Fortran-order arrays are not supported (save a C-contiguous array)");
      } else {
        return fail(err, errlen, "malformed 'fortran_order'");
      }
      have_order = 1;
    } else if (!strcmp(key, "shape")) {
      int failed;
      p = parse_shape(p, end, out, err, errlen, &failed);
      if (!p) return failed && err && err[0] ? -1 : fail(err, errlen, "malformed 'shape'");
      have_shape = 1;
    } else {
      return fail(err, errlen, "unexpected header key '%s'", key);
    }
    p = skip_ws(p, end);
    if (p < end && *p == ',') {
      p++;
      continue;
    }
    if (p < end && *p == '}') break;
    return fail(err, errlen, "malformed header dict");
  }
  if (!have_descr || !have_order || !have_shape)
    return fail(err, errlen, "header lacks %s", !have_descr ? "'descr'" : !have_order ? "'fortran_order'" : "'shape'");
  return 0;
}

int npy_parse(const unsigned char *bytes, size_t size, npy_array *out, char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  if (err && errlen) err[0] = '\0';
  if (size < 10 || memcmp(bytes, MAGIC, 6) != 0) return fail(err, errlen, "not a .npy file (bad magic)");
  unsigned major = bytes[6];
  size_t hlen, off;
  if (major == 1) {
    hlen = (size_t)bytes[8] | (size_t)bytes[9] << 8;
    off = 10;
  } else if (major == 2 || major == 3) {
    if (size < 12) return fail(err, errlen, "truncated header");
    hlen = (size_t)bytes[8] | (size_t)bytes[9] << 8 | (size_t)bytes[10] << 16 | (size_t)bytes[11] << 24;
    off = 12;
  } else {
    return fail(err, errlen, "unsupported .npy format version %u", major);
  }
  if (hlen > MAX_HEADER || hlen > size - off) return fail(err, errlen, "truncated or oversized header");
  if (parse_header((const char *)bytes + off, hlen, out, err, errlen) != 0) return -1;
  size_t count = 1;
  for (size_t d = 0; d < out->ndim; d++) {
    if (out->shape[d] != 0 && count > SIZE_MAX / out->shape[d]) return fail(err, errlen, "shape overflows");
    count *= out->shape[d];
  }
  size_t esize = (size_t)out->dtype, data_off = off + hlen;
  if (count > SIZE_MAX / esize) return fail(err, errlen, "shape overflows");
  size_t need = count * esize;
  if (size - data_off != need)
    return fail(err, errlen, "data is %zu bytes but the shape needs %zu", size - data_off, need);
  out->count = count;
  out->data = malloc(need ? need : 1);
  if (!out->data) return fail(err, errlen, "out of memory for %zu bytes", need);
  memcpy(out->data, bytes + data_off, need);
  return 0;
}

int npy_read(const char *path, npy_array *out, char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  FILE *f = fopen(path, "rb");
  if (!f) return fail(err, errlen, "%s: %s", path, strerror(errno));
  unsigned char *buf = NULL;
  size_t len = 0, cap = 0;
  for (;;) {
    if (len == cap) {
      size_t ncap = cap ? cap * 2 : 1 << 16;
      unsigned char *nb = realloc(buf, ncap);
      if (!nb) {
        free(buf);
        fclose(f);
        return fail(err, errlen, "%s: out of memory", path);
      }
      buf = nb;
      cap = ncap;
    }
    size_t got = fread(buf + len, 1, cap - len, f);
    len += got;
    if (got == 0) break;
  }
  int io_error = ferror(f);
  fclose(f);
  if (io_error) {
    free(buf);
    return fail(err, errlen, "%s: read error", path);
  }
  char why[256];
  int rc = npy_parse(buf, len, out, why, sizeof why);
  free(buf);
  if (rc != 0) return fail(err, errlen, "%s: %s", path, why);
  return 0;
}

int npy_to_float32(npy_array *arr, char *err, size_t errlen) {
  if (arr->dtype == NPY_FLOAT32) return 0;
  float *f = malloc(arr->count ? arr->count * sizeof *f : 1);
  if (!f) return fail(err, errlen, "out of memory");
  const double *d = arr->data;
  for (size_t i = 0; i < arr->count; i++) f[i] = (float)d[i];
  free(arr->data);
  arr->data = f;
  arr->dtype = NPY_FLOAT32;
  return 0;
}

int npy_write(const char *path, npy_dtype dtype, const void *data, size_t ndim, const size_t *shape,
              char *err, size_t errlen) {
  if (ndim > NPY_MAX_DIMS) return fail(err, errlen, "%s: too many dimensions", path);
  char header[512];
  int n = snprintf(header, sizeof header, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                   dtype == NPY_FLOAT32 ? "<f4" : "<f8");
  size_t count = 1;
  for (size_t d = 0; d < ndim; d++) {
    n += snprintf(header + n, sizeof header - (size_t)n, "%zu%s", shape[d], ndim == 1 ? "," : d + 1 < ndim ? ", " : "");
    count *= shape[d];
  }
  n += snprintf(header + n, sizeof header - (size_t)n, "), }");
  /* Pad with spaces so that magic + length + header + '\n' is a multiple of 64. */
  size_t total = 10 + (size_t)n + 1;
  size_t pad = (64 - total % 64) % 64;
  size_t hlen = (size_t)n + pad + 1;
  FILE *f = fopen(path, "wb");
  if (!f) return fail(err, errlen, "%s: %s", path, strerror(errno));
  unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hlen & 0xff),
                           (unsigned char)(hlen >> 8)};
  int ok = fwrite(pre, 1, 10, f) == 10 && fwrite(header, 1, (size_t)n, f) == (size_t)n;
  for (size_t i = 0; ok && i < pad; i++) ok = fputc(' ', f) != EOF;
  ok = ok && fputc('\n', f) != EOF;
  ok = ok && fwrite(data, (size_t)dtype, count, f) == count;
  if (fclose(f) != 0) ok = 0;
  if (!ok) return fail(err, errlen, "%s: write error", path);
  return 0;
}

void npy_free(npy_array *arr) {
  if (!arr) return;
  free(arr->data);
  memset(arr, 0, sizeof *arr);
}
