/* Loading and saving a backbone's state dict as safetensors. */
#include "lvmmed_config.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "backbone/backbone_impl.h"
#include "backbone/safetensors.h"
#include "core/core.h"


static const char *arch_name(lvmmed_arch arch) {
  switch (arch) {
    case LVMMED_ARCH_RESNET18: return "resnet18";
    case LVMMED_ARCH_RESNET34: return "resnet34";
    case LVMMED_ARCH_RESNET50: return "resnet50";
  }
  return "unknown";
}

static int is_projector(const char *name) { return !strncmp(name, "projector.", 10); }

static void shape_text(char *buf, size_t len, size_t ndim, const size_t *shape) {
  size_t at = 0;
  at += (size_t)snprintf(buf + at, len - at, "[");
  for (size_t i = 0; i < ndim && at < len; i++)
    at += (size_t)snprintf(buf + at, len - at, i ? ", %zu" : "%zu", shape[i]);
  if (at < len) snprintf(buf + at, len - at, "]");
}

/* conv1.weight of an RGB file loads into a 1-channel backbone summed over the
 * input channels: conv(gray replicated ×3, W) = conv(gray, Σ_c W[:, c]). */
static int is_rgb_to_gray(const lvmmed_backbone *bb, const bb_tensor *t,
                          const lvmmed_st_tensor *s) {
  return bb->in_channels == 1 && !strcmp(t->name, "conv1.weight") && s->ndim == 4 &&
         s->shape[0] == t->shape[0] && s->shape[1] == 3 && s->shape[2] == t->shape[2] &&
         s->shape[3] == t->shape[3];
}

/* Names under "lvmmed." hold state the library's own checkpoints keep beside the
 * weights (optimizer moments, step counters, ...): never the backbone's, never unexpected. */
static int is_reserved(const char *name) { return !strncmp(name, "lvmmed.", 7); }

/* A file tensor the backbone has a use for (a float tensor or a counter). */
static int known_name(const lvmmed_backbone *bb, const char *name) {
  for (size_t i = 0; i < bb->ntensors; i++)
    if (!strcmp(bb->tensors[i].name, name)) return 1;
  for (size_t i = 0; i < bb->ncounters; i++)
    if (!strcmp(bb->counters[i].name, name)) return 1;
  return 0;
}

static int same_shape(const bb_tensor *t, const lvmmed_st_tensor *s) {
  if (t->ndim != s->ndim) return 0;
  for (size_t i = 0; i < t->ndim; i++)
    if (t->shape[i] != s->shape[i]) return 0;
  return 1;
}

lvmmed_status lvmmed__bb_load_bytes(lvmmed_backbone *bb, const unsigned char *bytes, size_t size,
                                    unsigned flags, size_t *missing, size_t *unexpected,
                                    const char *origin) {
  lvmmed_ctx *ctx = bb->ctx;
  lvmmed_st_file f;
  lvmmed_status st = lvmmed__st_parse(ctx, bytes, size, origin, &f);
  if (st != LVMMED_OK) return st;
  size_t nmiss = 0, nunexp = 0, matched = 0;
  float *tmp = NULL;
  /* Pass 1: check everything before changing anything. */
  for (size_t i = 0; i < bb->ntensors; i++) {
    const bb_tensor *t = &bb->tensors[i];
    const lvmmed_st_tensor *s = lvmmed__st_find(&f, t->name);
    if (!s) {
      if ((flags & LVMMED_LOAD_IGNORE_PROJECTOR) && is_projector(t->name)) continue;
      nmiss++;
      lvmmed__log(ctx, LVMMED_LOG_WARN, "%s: missing tensor %s", origin, t->name);
      continue;
    }
    matched++;
    if (s->dtype != LVMMED_ST_F32 && s->dtype != LVMMED_ST_F16 && s->dtype != LVMMED_ST_BF16 &&
        s->dtype != LVMMED_ST_F64) {
      st = lvmmed__fail(ctx, LVMMED_ERR_FORMAT, "%s: tensor \"%s\" has dtype %s, expected a float type",
                        origin, t->name, s->dtype_name);
      goto done;
    }
    if (!same_shape(t, s) && !is_rgb_to_gray(bb, t, s)) {
      char want[96], got[160];
      shape_text(want, sizeof want, t->ndim, t->shape);
      shape_text(got, sizeof got, s->ndim, s->shape);
      st = lvmmed__fail(ctx, LVMMED_ERR_SHAPE, "%s: tensor \"%s\" has shape %s, the %s backbone needs %s",
                        origin, t->name, got, arch_name(bb->arch), want);
      goto done;
    }
  }
  for (size_t i = 0; i < bb->ncounters; i++) {
    const lvmmed_st_tensor *s = lvmmed__st_find(&f, bb->counters[i].name);
    int64_t v;
    if (!s) continue; /* older checkpoints have no counters: PyTorch accepts that too */
    matched++;
    if (s->numel != 1 || !lvmmed__st_to_i64(s, &v)) {
      st = lvmmed__fail(ctx, LVMMED_ERR_FORMAT, "%s: tensor \"%s\" is not one integer (dtype %s, %zu values)",
                        origin, bb->counters[i].name, s->dtype_name, s->numel);
      goto done;
    }
  }
  size_t nreserved = 0;
  for (size_t j = 0; j < f.count; j++) nreserved += is_reserved(f.tensors[j].name) != 0;
  nunexp = f.count - matched - nreserved;
  if (nunexp) { /* name them: every file tensor no backbone name matched */
    for (size_t j = 0; j < f.count; j++)
      if (!known_name(bb, f.tensors[j].name) && !is_reserved(f.tensors[j].name))
        lvmmed__log(ctx, LVMMED_LOG_WARN, "%s: unexpected tensor %.128s", origin, f.tensors[j].name);
  }
  if ((flags & LVMMED_LOAD_STRICT) && (nmiss || nunexp)) {
    st = lvmmed__fail(ctx, LVMMED_ERR_NOT_FOUND,
                      "%s: strict load: %zu backbone tensors missing, %zu unexpected in the file "
                      "(names in the log)", origin, nmiss, nunexp);
    goto done;
  }
  /* Pass 2: copy. */
  for (size_t i = 0; i < bb->ntensors; i++) {
    const bb_tensor *t = &bb->tensors[i];
    const lvmmed_st_tensor *s = lvmmed__st_find(&f, t->name);
    if (!s) continue;
    if (same_shape(t, s)) {
      lvmmed__st_to_f32(s, t->data);
      continue;
    }
    size_t per_out = s->numel / s->shape[0], plane = s->shape[2] * s->shape[3];
    tmp = lvmmed__alloc(ctx, s->numel * sizeof(float));
    if (!tmp) {
      st = lvmmed__fail(ctx, LVMMED_ERR_OUT_OF_MEMORY, "%s: no memory", origin);
      goto done;
    }
    lvmmed__st_to_f32(s, tmp);
    for (size_t o = 0; o < s->shape[0]; o++)
      for (size_t p = 0; p < plane; p++) {
        double acc = 0.0;
        for (size_t c = 0; c < s->shape[1]; c++) acc += tmp[o * per_out + c * plane + p];
        t->data[o * plane + p] = (float)acc;
      }
    lvmmed__free(ctx, tmp);
    tmp = NULL;
  }
  for (size_t i = 0; i < bb->ncounters; i++) {
    const lvmmed_st_tensor *s = lvmmed__st_find(&f, bb->counters[i].name);
    if (s) lvmmed__st_to_i64(s, bb->counters[i].value);
  }
  bb->have_forward = 0;
  bb->proj.ready = 0;
  lvmmed__bb_unpack(bb);
  if (nmiss || nunexp)
    lvmmed__log(ctx, LVMMED_LOG_WARN, "%s: loaded with %zu missing and %zu unexpected tensors",
                origin, nmiss, nunexp);
done:
  lvmmed__free(ctx, tmp);
  lvmmed__st_free(ctx, &f);
  if (st == LVMMED_OK) {
    if (missing) *missing = nmiss;
    if (unexpected) *unexpected = nunexp;
  }
  return st;
}

lvmmed_status lvmmed_backbone_load_memory(lvmmed_backbone *bb, const void *data, size_t size,
                                          unsigned flags, size_t *missing, size_t *unexpected) {
  if (!bb) return LVMMED_ERR_INVALID_ARGUMENT;
  if (!data)
    return lvmmed__fail(bb->ctx, LVMMED_ERR_INVALID_ARGUMENT, "lvmmed_backbone_load_memory: data is NULL");
  if (flags & ~(unsigned)(LVMMED_LOAD_STRICT | LVMMED_LOAD_IGNORE_PROJECTOR))
    return lvmmed__fail(bb->ctx, LVMMED_ERR_INVALID_ARGUMENT,
                        "lvmmed_backbone_load_memory: unknown flags 0x%x", flags);
  return lvmmed__bb_load_bytes(bb, data, size, flags, missing, unexpected, "(memory)");
}

lvmmed_status lvmmed_backbone_load(lvmmed_backbone *bb, const char *path, unsigned flags,
                                   size_t *missing, size_t *unexpected) {
  if (!bb) return LVMMED_ERR_INVALID_ARGUMENT;
  lvmmed_ctx *ctx = bb->ctx;
  if (!path) return lvmmed__fail(ctx, LVMMED_ERR_INVALID_ARGUMENT, "lvmmed_backbone_load: path is NULL");
  if (flags & ~(unsigned)(LVMMED_LOAD_STRICT | LVMMED_LOAD_IGNORE_PROJECTOR))
    return lvmmed__fail(ctx, LVMMED_ERR_INVALID_ARGUMENT, "lvmmed_backbone_load: unknown flags 0x%x",
                        flags);
  unsigned char *bytes;
  size_t size;
  lvmmed_status st = lvmmed__st_read_file(ctx, path, &bytes, &size);
  if (st == LVMMED_OK) st = lvmmed__bb_load_bytes(bb, bytes, size, flags, missing, unexpected, path);
  lvmmed__free(ctx, bytes);
  return st;
}

size_t lvmmed__bb_state_entries(const lvmmed_backbone *bb, lvmmed_st_entry *e) {
  /* state_dict order: each BN's counter follows its running_var. */
  size_t k = 0, c = 0;
  for (size_t i = 0; i < bb->ntensors; i++) {
    const bb_tensor *t = &bb->tensors[i];
    e[k].name = t->name;
    e[k].ndim = t->ndim;
    memcpy(e[k].shape, t->shape, t->ndim * sizeof t->shape[0]);
    e[k].f32 = t->data;
    k++;
    size_t len = strlen(t->name);
    if (c < bb->ncounters && len > 12 && !strcmp(t->name + len - 12, ".running_var")) {
      e[k].name = bb->counters[c].name;
      e[k].i64 = *bb->counters[c].value;
      k++;
      c++;
    }
  }
  for (; c < bb->ncounters; c++, k++) {
    e[k].name = bb->counters[c].name;
    e[k].i64 = *bb->counters[c].value;
  }
  return k;
}

const char *lvmmed__bb_arch_name(lvmmed_arch arch) { return arch_name(arch); }

lvmmed_status lvmmed_backbone_save(const lvmmed_backbone *bb, const char *path) {
  if (!bb) return LVMMED_ERR_INVALID_ARGUMENT;
  lvmmed_ctx *ctx = bb->ctx;
  if (!path) return lvmmed__fail(ctx, LVMMED_ERR_INVALID_ARGUMENT, "lvmmed_backbone_save: path is NULL");
  size_t n = bb->ntensors + bb->ncounters;
  lvmmed_st_entry *e = lvmmed__calloc(ctx, n, sizeof *e);
  if (!e) return lvmmed__fail(ctx, LVMMED_ERR_OUT_OF_MEMORY, "lvmmed_backbone_save: no memory");
  size_t k = lvmmed__bb_state_entries(bb, e);
  const char *meta[4] = {"format", "pt", "lvmmed_arch", arch_name(bb->arch)};
  lvmmed_status st = lvmmed__st_write(ctx, path, e, k, meta, 2);
  lvmmed__free(ctx, e);
  return st;
}

/* The string value of __metadata__[key] of a file lvmmed__st_parse accepted, copied to
 * buf; 0 if absent. */
static int metadata_value(const unsigned char *bytes, size_t size, const char *key, char *buf, size_t len) {
  json_t *meta = lvmmed__st_metadata(bytes, size);
  const char *v = json_string_value(json_object_get(meta, key));
  int found = v != NULL;
  if (found) snprintf(buf, len, "%s", v);
  json_decref(meta);
  return found;
}

/* Architecture named by the file's "lvmmed_arch" metadata (lvmmed_backbone_save writes it),
 * else inferred from the deepest blocks present: bottleneck convs (conv3) only exist in
 * resnet50, a sixth block of layer3 only in resnet34. */
static lvmmed_status file_arch(lvmmed_ctx *ctx, const unsigned char *bytes, size_t size,
                               const lvmmed_st_file *f, const char *path, lvmmed_arch *arch) {
  char name[64];
  if (metadata_value(bytes, size, "lvmmed_arch", name, sizeof name)) {
    static const lvmmed_arch all[] = {LVMMED_ARCH_RESNET18, LVMMED_ARCH_RESNET34,
                                      LVMMED_ARCH_RESNET50};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
      if (!strcmp(name, arch_name(all[i]))) {
        *arch = all[i];
        return LVMMED_OK;
      }
    return lvmmed__fail(ctx, LVMMED_ERR_FORMAT,
                        "%s: metadata lvmmed_arch = \"%.40s\" is not resnet18, resnet34 or resnet50",
                        path, name);
  }
  if (!lvmmed__st_find(f, "conv1.weight"))
    return lvmmed__fail(ctx, LVMMED_ERR_FORMAT,
                        "%s: no \"conv1.weight\" and no lvmmed_arch metadata: not a ResNet state dict",
                        path);
  if (lvmmed__st_find(f, "layer1.0.conv3.weight")) *arch = LVMMED_ARCH_RESNET50;
  else if (lvmmed__st_find(f, "layer3.5.conv1.weight")) *arch = LVMMED_ARCH_RESNET34;
  else *arch = LVMMED_ARCH_RESNET18;
  return LVMMED_OK;
}

/* Every architecture's stem is a 64 x C x 7 x 7 convolution: a cheap check before the
 * backbone (tens of megabytes) is built. */
static lvmmed_status check_stem(lvmmed_ctx *ctx, const lvmmed_st_file *f, const char *path,
                                lvmmed_arch arch) {
  const lvmmed_st_tensor *t = lvmmed__st_find(f, "conv1.weight");
  if (!t || (t->ndim == 4 && t->shape[0] == 64 && t->shape[2] == 7 && t->shape[3] == 7))
    return LVMMED_OK; /* absent: reported as missing by the load */
  char got[160];
  shape_text(got, sizeof got, t->ndim, t->shape);
  return lvmmed__fail(ctx, LVMMED_ERR_SHAPE, "%s: tensor \"conv1.weight\" has shape %s, the %s backbone needs [64, C, 7, 7]",
                      path, got, arch_name(arch));
}

/* Projector options that give the file's projector tensors their names and shapes. */
static lvmmed_status file_projector(lvmmed_ctx *ctx, const lvmmed_st_file *f, const char *path,
                                    int64_t *hidden, int64_t *out) {
  const lvmmed_st_tensor *one = lvmmed__st_find(f, "projector.weight");
  const lvmmed_st_tensor *first = lvmmed__st_find(f, "projector.0.weight");
  const lvmmed_st_tensor *last = lvmmed__st_find(f, "projector.3.weight");
  *hidden = 0;
  *out = 0;
  if (one) {
    if (one->ndim != 2)
      return lvmmed__fail(ctx, LVMMED_ERR_SHAPE, "%s: projector.weight has %zu dimensions, expected 2",
                          path, one->ndim);
    *out = (int64_t)one->shape[0];
  } else if (first || last) {
    if (!first || !last || first->ndim != 2 || last->ndim != 2)
      return lvmmed__fail(ctx, LVMMED_ERR_SHAPE,
                          "%s: a two-layer projector needs 2-D projector.0.weight and projector.3.weight",
                          path);
    *hidden = (int64_t)first->shape[0];
    *out = (int64_t)last->shape[0];
  }
  return LVMMED_OK;
}

lvmmed_status lvmmed_backbone_create_from_file(lvmmed_ctx *ctx, const char *path,
                                               size_t in_channels, lvmmed_backbone **out) {
  if (!ctx) return LVMMED_ERR_INVALID_ARGUMENT;
  if (!out)
    return lvmmed__fail(ctx, LVMMED_ERR_INVALID_ARGUMENT, "lvmmed_backbone_create_from_file: out is NULL");
  *out = NULL;
  if (!path)
    return lvmmed__fail(ctx, LVMMED_ERR_INVALID_ARGUMENT, "lvmmed_backbone_create_from_file: path is NULL");
  if (in_channels != 1 && in_channels != 3) /* before reading a large file */
    return lvmmed__fail(ctx, LVMMED_ERR_INVALID_ARGUMENT,
                        "lvmmed_backbone_create_from_file: in_channels = %zu, expected 1 or 3", in_channels);
  unsigned char *bytes;
  size_t size;
  lvmmed_status st = lvmmed__st_read_file(ctx, path, &bytes, &size);
  if (st != LVMMED_OK) return st;
  lvmmed_st_file f;
  st = lvmmed__st_parse(ctx, bytes, size, path, &f);
  if (st != LVMMED_OK) {
    lvmmed__free(ctx, bytes);
    return st;
  }
  lvmmed_arch arch = LVMMED_ARCH_RESNET18;
  int64_t hidden = 0, proj = 0, lo, hi;
  lvmmed_backbone *bb = NULL;
  st = file_arch(ctx, bytes, size, &f, path, &arch);
  if (st == LVMMED_OK) st = file_projector(ctx, &f, path, &hidden, &proj);
  if (st == LVMMED_OK) st = check_stem(ctx, &f, path, arch);
  lvmmed__st_free(ctx, &f);
  if (st == LVMMED_OK) {
    lvmmed_backbone_option_bounds(LVMMED_BACKBONE_OPT_PROJ_OUT, &lo, &hi);
    if (proj > hi || hidden > hi)
      st = lvmmed__fail(ctx, LVMMED_ERR_SHAPE, "%s: projector of %lld x %lld exceeds the limit %lld",
                        path, (long long)hidden, (long long)proj, (long long)hi);
  }
  if (st == LVMMED_OK) st = lvmmed_backbone_create(ctx, arch, in_channels, &bb);
  if (st == LVMMED_OK) st = lvmmed_backbone_set_option(bb, LVMMED_BACKBONE_OPT_PROJ_HIDDEN, hidden);
  if (st == LVMMED_OK) st = lvmmed_backbone_set_option(bb, LVMMED_BACKBONE_OPT_PROJ_OUT, proj);
  size_t missing = 0;
  if (st == LVMMED_OK) st = lvmmed__bb_load_bytes(bb, bytes, size, 0, &missing, NULL, path);
  if (st == LVMMED_OK && missing)
    st = lvmmed__fail(ctx, LVMMED_ERR_NOT_FOUND,
                      "%s: %zu tensors of the %s backbone are missing from the file (names in the log)",
                      path, missing, arch_name(arch));
  lvmmed__free(ctx, bytes);
  if (st != LVMMED_OK) {
    lvmmed_backbone_free(bb);
    return st;
  }
  *out = bb;
  return LVMMED_OK;
}
