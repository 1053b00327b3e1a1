/* safetensors reading (hostile-input safe) and writing, JSON by jansson. */
#include "lvmmed_config.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backbone/safetensors.h"
#include "core/core.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the safetensors writer stores float32 in host order: little-endian hosts only"
#endif

static const struct {
  const char *name;
  lvmmed_st_dtype dtype;
  size_t size;
} dtypes[] = {
    {"F32", LVMMED_ST_F32, 4},   {"F16", LVMMED_ST_F16, 2},   {"BF16", LVMMED_ST_BF16, 2},
    {"F64", LVMMED_ST_F64, 8},   {"I64", LVMMED_ST_I64, 8},   {"I32", LVMMED_ST_I32, 4},
    {"I16", LVMMED_ST_OTHER, 2}, {"I8", LVMMED_ST_OTHER, 1},  {"U8", LVMMED_ST_OTHER, 1},
    {"U16", LVMMED_ST_OTHER, 2}, {"U32", LVMMED_ST_OTHER, 4}, {"U64", LVMMED_ST_OTHER, 8},
    {"BOOL", LVMMED_ST_OTHER, 1}, {"F8_E4M3", LVMMED_ST_OTHER, 1},
    {"F8_E5M2", LVMMED_ST_OTHER, 1},
};

static uint64_t le64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
  return v;
}

static int cmp_name(const void *a, const void *b) {
  return strcmp(((const lvmmed_st_tensor *)a)->name, ((const lvmmed_st_tensor *)b)->name);
}

static int cmp_offset(const void *a, const void *b) {
  const lvmmed_st_tensor *x = *(const lvmmed_st_tensor *const *)a;
  const lvmmed_st_tensor *y = *(const lvmmed_st_tensor *const *)b;
  if (x->data != y->data) return x->data < y->data ? -1 : 1;
  return x->nbytes < y->nbytes ? -1 : x->nbytes > y->nbytes;
}

/* Non-negative JSON integer that fits size_t. */
static int json_size(const json_t *v, size_t *out) {
  if (!json_is_integer(v)) return 0;
  json_int_t i = json_integer_value(v);
  if (i < 0 || (unsigned long long)i > SIZE_MAX) return 0;
  *out = (size_t)i;
  return 1;
}

/* Parses one tensor entry; returns NULL or a message naming what is wrong. */
static const char *parse_entry(const json_t *v, const unsigned char *data, size_t data_size,
                               lvmmed_st_tensor *t) {
  if (!json_is_object(v)) return "entry is not an object";
  const json_t *dt = json_object_get(v, "dtype"), *shape = json_object_get(v, "shape");
  const json_t *offs = json_object_get(v, "data_offsets");
  if (!json_is_string(dt)) return "dtype missing or not a string";
  const char *dname = json_string_value(dt);
  size_t esize = 0;
  for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
    if (!strcmp(dname, dtypes[i].name)) {
      t->dtype = dtypes[i].dtype;
      t->dtype_name = dtypes[i].name;
      esize = dtypes[i].size;
    }
  if (!esize) return "unknown dtype";
  if (!json_is_array(shape)) return "shape missing or not an array";
  t->ndim = json_array_size(shape);
  if (t->ndim > LVMMED_ST_MAX_DIMS) return "shape has too many dimensions";
  t->numel = 1;
  for (size_t i = 0; i < t->ndim; i++) {
    if (!json_size(json_array_get(shape, i), &t->shape[i]))
      return "shape holds a negative, non-integer or too large dimension";
    if (!lvmmed__mul_size(t->numel, t->shape[i], &t->numel)) return "element count overflows";
  }
  if (!lvmmed__mul_size(t->numel, esize, &t->nbytes)) return "byte size overflows";
  size_t begin, end;
  if (!json_is_array(offs) || json_array_size(offs) != 2 ||
      !json_size(json_array_get(offs, 0), &begin) || !json_size(json_array_get(offs, 1), &end))
    return "data_offsets is not a pair of non-negative integers";
  if (begin > end || end > data_size) return "data_offsets outside the data section";
  if (end - begin != t->nbytes) return "data_offsets length disagrees with dtype and shape";
  t->data = data + begin;
  return NULL;
}

lvmmed_status lvmmed__st_parse(lvmmed_ctx *ctx, const unsigned char *bytes, size_t size,
                               const char *origin, lvmmed_st_file *out) {
  memset(out, 0, sizeof *out);
  if (!bytes || size < 8)
    return lvmmed__fail(ctx, LVMMED_ERR_FORMAT, "%s: %zu bytes, too short for a safetensors file",
                        origin, size);
  uint64_t hlen = le64(bytes);
  if (hlen > LVMMED_ST_HEADER_MAX)
    return lvmmed__fail(ctx, LVMMED_ERR_LIMIT, "%s: header length %llu exceeds %zu bytes", origin,
                        (unsigned long long)hlen, LVMMED_ST_HEADER_MAX);
  if (hlen > size - 8)
    return lvmmed__fail(ctx, LVMMED_ERR_FORMAT,
                        "%s: header length %llu runs past the end of the %zu-byte file", origin,
                        (unsigned long long)hlen, size);
  const unsigned char *data = bytes + 8 + hlen;
  size_t data_size = size - 8 - (size_t)hlen;
  json_error_t jerr;
  json_t *root = json_loadb((const char *)bytes + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
  if (!root)
    return lvmmed__fail(ctx, LVMMED_ERR_FORMAT, "%s: header is not valid JSON (%s at byte %d)",
                        origin, jerr.text, jerr.position);
  lvmmed_status st = LVMMED_OK;
  lvmmed_st_tensor **order = NULL;
  if (!json_is_object(root)) {
    st = lvmmed__fail(ctx, LVMMED_ERR_FORMAT, "%s: header is not a JSON object", origin);
    goto done;
  }
  size_t count = 0, name_bytes = 0;
  const char *key;
  json_t *value;
  json_object_foreach(root, key, value) {
    if (!strcmp(key, "__metadata__")) {
      const char *mk;
      json_t *mv;
      if (!json_is_object(value)) {
        st = lvmmed__fail(ctx, LVMMED_ERR_FORMAT, "%s: __metadata__ is not an object", origin);
        goto done;
      }
      json_object_foreach(value, mk, mv) if (!json_is_string(mv)) {
        st = lvmmed__fail(ctx, LVMMED_ERR_FORMAT,
                          "%s: __metadata__ value of \"%.64s\" is not a string", origin, mk);
        goto done;
      }
      continue;
    }
    size_t len = strlen(key);
    if (len == 0 || len > LVMMED_ST_NAME_MAX) {
      st = lvmmed__fail(ctx, LVMMED_ERR_FORMAT, "%s: tensor name of %zu bytes (allowed 1..%d)",
                        origin, len, LVMMED_ST_NAME_MAX);
      goto done;
    }
    count++;
    name_bytes += len + 1;
  }
  out->tensors = lvmmed__calloc(ctx, count ? count : 1, sizeof *out->tensors);
  out->names = lvmmed__alloc(ctx, name_bytes ? name_bytes : 1);
  order = lvmmed__alloc(ctx, (count ? count : 1) * sizeof *order);
  if (!out->tensors || !out->names || !order) {
    st = lvmmed__fail(ctx, LVMMED_ERR_OUT_OF_MEMORY, "%s: no memory for %zu tensor entries",
                      origin, count);
    goto done;
  }
  char *np = out->names;
  json_object_foreach(root, key, value) {
    if (!strcmp(key, "__metadata__")) continue;
    lvmmed_st_tensor *t = &out->tensors[out->count];
    const char *why = parse_entry(value, data, data_size, t);
    if (why) {
      st = lvmmed__fail(ctx, LVMMED_ERR_FORMAT, "%s: tensor \"%.128s\": %s", origin, key, why);
      goto done;
    }
    size_t len = strlen(key) + 1;
    memcpy(np, key, len);
    t->name = np;
    np += len;
    order[out->count] = t;
    out->count++;
  }
  /* The data ranges must tile [0, data_size) exactly. */
  qsort(order, out->count, sizeof *order, cmp_offset);
  size_t at = 0;
  for (size_t i = 0; i < out->count; i++) {
    size_t begin = (size_t)(order[i]->data - data);
    if (begin != at) {
      st = lvmmed__fail(ctx, LVMMED_ERR_FORMAT,
                        "%s: tensor \"%.128s\" starts at byte %zu of the data section, expected %zu "
                        "(ranges must not overlap or leave gaps)",
                        origin, order[i]->name, begin, at);
      goto done;
    }
    at = begin + order[i]->nbytes;
  }
  if (at != data_size) {
    st = lvmmed__fail(ctx, LVMMED_ERR_FORMAT,
                      "%s: tensors cover %zu bytes but the data section has %zu", origin, at,
                      data_size);
    goto done;
  }
  qsort(out->tensors, out->count, sizeof *out->tensors, cmp_name);
done:
  lvmmed__free(ctx, order);
  json_decref(root);
  if (st != LVMMED_OK) lvmmed__st_free(ctx, out);
  return st;
}

void lvmmed__st_free(lvmmed_ctx *ctx, lvmmed_st_file *f) {
  if (!f) return;
  lvmmed__free(ctx, f->tensors);
  lvmmed__free(ctx, f->names);
  memset(f, 0, sizeof *f);
}

const lvmmed_st_tensor *lvmmed__st_find(const lvmmed_st_file *f, const char *name) {
  lvmmed_st_tensor key;
  memset(&key, 0, sizeof key);
  key.name = name;
  if (!f->count) return NULL;
  return bsearch(&key, f->tensors, f->count, sizeof key, cmp_name);
}

static float half_to_float(uint16_t h) {
  int sign = h >> 15, exp = (h >> 10) & 31, man = h & 1023;
  float v;
  if (exp == 0)
    v = ldexpf((float)man, -24); /* subnormal (or zero) */
  else if (exp == 31)
    v = man ? NAN : INFINITY;
  else
    v = ldexpf((float)(man | 1024), exp - 25);
  return sign ? -v : v;
}

int lvmmed__st_to_f32(const lvmmed_st_tensor *t, float *dst) {
  const unsigned char *p = t->data;
  for (size_t i = 0; i < t->numel; i++) {
    switch (t->dtype) {
      case LVMMED_ST_F32: {
        uint32_t b = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 |
                     (uint32_t)p[4 * i + 2] << 16 | (uint32_t)p[4 * i + 3] << 24;
        memcpy(&dst[i], &b, 4);
        break;
      }
      case LVMMED_ST_F16: dst[i] = half_to_float((uint16_t)(p[2 * i] | p[2 * i + 1] << 8)); break;
      case LVMMED_ST_BF16: {
        uint32_t b = ((uint32_t)p[2 * i] | (uint32_t)p[2 * i + 1] << 8) << 16;
        memcpy(&dst[i], &b, 4);
        break;
      }
      case LVMMED_ST_F64: {
        uint64_t b = le64(p + 8 * i);
        double d;
        memcpy(&d, &b, 8);
        dst[i] = (float)d;
        break;
      }
      default: return 0;
    }
  }
  return 1;
}

int lvmmed__st_to_i64(const lvmmed_st_tensor *t, int64_t *value) {
  if (t->numel == 0) return 0;
  if (t->dtype == LVMMED_ST_I64) {
    *value = (int64_t)le64(t->data);
    return 1;
  }
  if (t->dtype == LVMMED_ST_I32) {
    const unsigned char *p = t->data;
    *value = (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                       (uint32_t)p[3] << 24);
    return 1;
  }
  return 0;
}

/* ----- writing --------------------------------------------------------------- */

static size_t entry_bytes(const lvmmed_st_entry *e) {
  if (!e->f32) return 8;
  size_t n = 4;
  for (size_t d = 0; d < e->ndim; d++) n *= e->shape[d];
  return n;
}

static json_t *build_header(const lvmmed_st_entry *entries, size_t count,
                            const char *const *meta_kv, size_t nmeta) {
  json_t *root = json_object();
  if (!root) return NULL;
  int bad = 0;
  if (nmeta) {
    json_t *meta = json_object();
    bad |= !meta || json_object_set_new(root, "__metadata__", meta);
    for (size_t i = 0; !bad && i < nmeta; i++)
      bad |= json_object_set_new(meta, meta_kv[2 * i], json_string(meta_kv[2 * i + 1]));
  }
  size_t at = 0;
  for (size_t i = 0; !bad && i < count; i++) {
    const lvmmed_st_entry *e = &entries[i];
    json_t *shape = json_array(), *offs = json_array(), *t = json_object();
    bad |= !shape || !offs || !t;
    for (size_t d = 0; !bad && d < e->ndim; d++)
      bad |= json_array_append_new(shape, json_integer((json_int_t)e->shape[d]));
    size_t n = entry_bytes(e);
    if (!bad) {
      bad |= json_array_append_new(offs, json_integer((json_int_t)at));
      bad |= json_array_append_new(offs, json_integer((json_int_t)(at + n)));
      bad |= json_object_set_new(t, "dtype", json_string(e->f32 ? "F32" : "I64"));
      bad |= json_object_set_new(t, "shape", shape);
      bad |= json_object_set_new(t, "data_offsets", offs);
      shape = offs = NULL;
      bad |= json_object_set_new(root, e->name, t);
      t = NULL;
    }
    json_decref(shape);
    json_decref(offs);
    json_decref(t);
    at += n;
  }
  if (bad) {
    json_decref(root);
    return NULL;
  }
  return root;
}

static int write_all(FILE *f, const void *p, size_t n) { return fwrite(p, 1, n, f) == n; }

/* Reads the whole regular file at path into *bytes (lvmmed__alloc'ed, *size bytes). */
lvmmed_status lvmmed__st_read_file(lvmmed_ctx *ctx, const char *path, unsigned char **bytes,
                                   size_t *size) {
  *bytes = NULL;
  *size = 0;
  FILE *f = fopen(path, "rb");
  if (!f) return lvmmed__fail(ctx, LVMMED_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  struct stat sb;
  if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
    fclose(f);
    return lvmmed__fail(ctx, LVMMED_ERR_IO, "%s: not a regular file", path);
  }
  if ((unsigned long long)sb.st_size > LVMMED_ST_FILE_MAX) {
    fclose(f);
    return lvmmed__fail(ctx, LVMMED_ERR_LIMIT, "%s: %lld bytes is larger than the %zu-byte limit",
                        path, (long long)sb.st_size, LVMMED_ST_FILE_MAX);
  }
  size_t n = (size_t)sb.st_size;
  unsigned char *b = lvmmed__alloc(ctx, n ? n : 1);
  if (!b) {
    fclose(f);
    return lvmmed__fail(ctx, LVMMED_ERR_OUT_OF_MEMORY, "%s: cannot allocate %zu bytes", path, n);
  }
  size_t got = fread(b, 1, n, f);
  int err = ferror(f);
  fclose(f);
  if (got != n || err) {
    lvmmed__free(ctx, b);
    return lvmmed__fail(ctx, LVMMED_ERR_IO, "%s: short read (%zu of %zu bytes)", path, got, n);
  }
  *bytes = b;
  *size = n;
  return LVMMED_OK;
}

/* Makes a rename durable: fsync of the folder that holds path (best effort). */
static void sync_parent_dir(const char *path) {
  const char *slash = strrchr(path, '/');
  char dir[4096];
  if (!slash) {
    snprintf(dir, sizeof dir, ".");
  } else if ((size_t)(slash - path) < sizeof dir) {
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    memcpy(dir, path, n);
    dir[n] = 0;
  } else {
    return;
  }
  int fd = open(dir, O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    fsync(fd);
    close(fd);
  }
}

json_t *lvmmed__st_metadata(const unsigned char *bytes, size_t size) {
  if (size < 8) return NULL;
  uint64_t hlen = 0;
  for (int i = 0; i < 8; i++) hlen |= (uint64_t)bytes[i] << (8 * i);
  if (hlen > LVMMED_ST_HEADER_MAX || hlen > size - 8) return NULL;
  json_t *root = json_loadb((const char *)bytes + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, NULL);
  if (!root) return NULL;
  json_t *meta = json_object_get(root, "__metadata__");
  if (meta && json_is_object(meta)) json_incref(meta);
  else meta = NULL;
  json_decref(root);
  return meta;
}

lvmmed_status lvmmed__st_write(lvmmed_ctx *ctx, const char *path, const lvmmed_st_entry *entries,
                               size_t count, const char *const *meta_kv, size_t nmeta) {
  json_t *root = build_header(entries, count, meta_kv, nmeta);
  char *text = root ? json_dumps(root, JSON_COMPACT) : NULL;
  json_decref(root);
  if (!text) return lvmmed__fail(ctx, LVMMED_ERR_OUT_OF_MEMORY, "%s: cannot build the header", path);
  size_t tlen = strlen(text), hlen = (tlen + 7) & ~(size_t)7; /* pad with spaces to 8 bytes */
  size_t plen = strlen(path) + 32;
  char *tmp = lvmmed__alloc(ctx, plen);
  if (!tmp) {
    free(text);
    return lvmmed__fail(ctx, LVMMED_ERR_OUT_OF_MEMORY, "%s: no memory", path);
  }
  snprintf(tmp, plen, "%s.tmp%ld", path, (long)getpid());
  lvmmed_status st = LVMMED_OK;
  FILE *f = fopen(tmp, "wb");
  if (!f) {
    st = lvmmed__fail(ctx, LVMMED_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    goto out;
  }
  unsigned char len8[8];
  for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
  int ok = write_all(f, len8, 8) && write_all(f, text, tlen);
  for (size_t i = tlen; ok && i < hlen; i++) ok = fputc(' ', f) != EOF;
  for (size_t i = 0; ok && i < count; i++) {
    const lvmmed_st_entry *e = &entries[i];
    if (e->f32) {
      /* float32 is written in the host order: liblvmmed targets little-endian hosts. */
      ok = write_all(f, e->f32, entry_bytes(e));
    } else {
      unsigned char b[8];
      for (int k = 0; k < 8; k++) b[k] = (unsigned char)((uint64_t)e->i64 >> (8 * k));
      ok = write_all(f, b, 8);
    }
  }
  /* Durable before visible: the data reaches the disk before the rename publishes it. */
  if (ok && (fflush(f) != 0 || fsync(fileno(f)) != 0)) ok = 0;
  if (fclose(f) != 0) ok = 0;
  if (!ok) {
    st = lvmmed__fail(ctx, LVMMED_ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
    remove(tmp);
    goto out;
  }
  if (rename(tmp, path) != 0) {
    st = lvmmed__fail(ctx, LVMMED_ERR_IO, "%s: cannot rename to %s: %s", tmp, path,
                      strerror(errno));
    remove(tmp);
  } else {
    sync_parent_dir(path);
  }
out:
  lvmmed__free(ctx, tmp);
  free(text);
  return st;
}
