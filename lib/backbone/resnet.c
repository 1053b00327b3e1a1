/* lvmmed_backbone: torchvision ResNet-18/34/50 forward and backward.
 *
 * Activations are NHWC inside (1×1 convolutions are then plain GEMMs over
 * the whole batch, and batch norm reduces over rows); the public API speaks
 * NCHW, converted at the input and at the feature map.
 *
 * Memory: a forward pass that keeps state for backward stores, per
 * convolution, its output (batch norm's input) and the post-ReLU activation
 * (the next convolution's input); the stem stores max-pool positions as one
 * byte each instead of its pre-pool map (ReLU commutes with max, so
 * relu(maxpool(bn(z))) is what torchvision computes). Inference passes
 * rotate five buffers and apply batch norm in place. Every buffer lives in
 * one arena that grows to the largest shape seen and is then reused.
 */
#include "lvmmed_config.h"

#include <math.h>
#include <string.h>

#include "backbone/backbone_impl.h"
#include "core/core.h"

#define BB_DIM_MAX ((size_t)1 << 16)   /* height, width */
#define BB_BATCH_MAX ((size_t)1 << 20)
#define BB_PROJ_MAX 65536

static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

static lvmmed_status bb_oom(const lvmmed_backbone *bb, const char *fn, size_t floats) {
  return lvmmed__fail(bb->ctx, LVMMED_ERR_OUT_OF_MEMORY, "%s: cannot allocate %zu MiB", fn,
                      floats * sizeof(float) >> 20);
}

/* ----- creation ------------------------------------------------------------ */

static void init_weights(lvmmed_backbone *bb, uint64_t seed) {
  lvmmed_rng rng;
  lvmmed__rng_init(&rng, seed, 0x6262 /* "bb" */);
  lvmmed__nn_conv_init(&bb->conv1, &rng);
  lvmmed__nn_bn_init(&bb->bn1);
  for (size_t i = 0; i < bb->nblocks; i++) {
    bb_block *blk = &bb->blocks[i];
    for (int k = 0; k < blk->nconv; k++) {
      lvmmed__nn_conv_init(&blk->conv[k], &rng);
      lvmmed__nn_bn_init(&blk->bn[k]);
    }
    if (blk->has_down) {
      lvmmed__nn_conv_init(&blk->down, &rng);
      lvmmed__nn_bn_init(&blk->down_bn);
    }
  }
  lvmmed_rng prng;
  lvmmed__rng_init(&prng, seed, 0x70726f6a /* "proj" */);
  lvmmed__bb_init_projector(bb, &prng);
}

lvmmed_status lvmmed_backbone_create(lvmmed_ctx *ctx, lvmmed_arch arch, size_t in_channels,
                                     lvmmed_backbone **out) {
  if (!out) return lvmmed__fail(ctx, LVMMED_ERR_INVALID_ARGUMENT, "lvmmed_backbone_create: out is NULL");
  *out = NULL;
  if (!ctx) return LVMMED_ERR_INVALID_ARGUMENT;
  if (arch != LVMMED_ARCH_RESNET18 && arch != LVMMED_ARCH_RESNET34 && arch != LVMMED_ARCH_RESNET50)
    return lvmmed__fail(ctx, LVMMED_ERR_INVALID_ARGUMENT,
                        "lvmmed_backbone_create: unknown architecture %d", (int)arch);
  if (in_channels != 1 && in_channels != 3)
    return lvmmed__fail(ctx, LVMMED_ERR_INVALID_ARGUMENT,
                        "lvmmed_backbone_create: in_channels = %zu, expected 1 or 3", in_channels);
  lvmmed_backbone *bb = lvmmed__calloc(ctx, 1, sizeof *bb);
  if (!bb) return lvmmed__fail(ctx, LVMMED_ERR_OUT_OF_MEMORY, "lvmmed_backbone_create: no memory");
  bb->ctx = lvmmed_ctx_retain(ctx);
  bb->arch = arch;
  bb->in_channels = in_channels;
  bb->grad_enabled = 1;
  bb->proj_out = 128;
  lvmmed_status st = lvmmed__bb_build_tensors(bb);
  if (st == LVMMED_OK) st = lvmmed__bb_build_projector(bb);
  if (st != LVMMED_OK) {
    lvmmed_backbone_free(bb);
    return lvmmed__fail(ctx, st, "lvmmed_backbone_create: cannot allocate the parameters");
  }
  init_weights(bb, lvmmed__ctx_seed(ctx));
  *out = bb;
  return LVMMED_OK;
}

void lvmmed_backbone_free(lvmmed_backbone *bb) {
  if (!bb) return;
  lvmmed_ctx *ctx = bb->ctx;
  lvmmed__bb_free_projector(bb);
  lvmmed__free(ctx, bb->tensors);
  lvmmed__free(ctx, bb->counters);
  lvmmed__free(ctx, bb->params);
  lvmmed__free(ctx, bb->grads);
  lvmmed__free(ctx, bb->bn_scratch);
  lvmmed__free(ctx, bb->arena);
  lvmmed__free(ctx, bb->argmax);
  lvmmed__free(ctx, bb->ws);
  lvmmed__free(ctx, bb->gradbuf);
  lvmmed__free(ctx, bb->pack_cache);
  lvmmed__free(ctx, bb);
  lvmmed_ctx_release(ctx);
}

lvmmed_ctx *lvmmed_backbone_ctx(const lvmmed_backbone *bb) { return bb ? bb->ctx : NULL; }

lvmmed_status lvmmed_backbone_init_weights(lvmmed_backbone *bb, uint64_t seed) {
  if (!bb) return LVMMED_ERR_INVALID_ARGUMENT;
  init_weights(bb, seed);
  lvmmed__bb_unpack(bb);
  bb->have_forward = 0;
  bb->proj.ready = 0;
  return lvmmed_backbone_zero_grad(bb);
}

/* ----- options ------------------------------------------------------------- */

lvmmed_status lvmmed_backbone_option_bounds(lvmmed_backbone_option option, int64_t *min_value,
                                            int64_t *max_value) {
  int64_t lo, hi;
  switch (option) {
    case LVMMED_BACKBONE_OPT_TRAIN:
    case LVMMED_BACKBONE_OPT_GRAD:
    case LVMMED_BACKBONE_OPT_FROZEN: lo = 0; hi = 1; break;
    case LVMMED_BACKBONE_OPT_PROJ_OUT:
    case LVMMED_BACKBONE_OPT_PROJ_HIDDEN: lo = 0; hi = BB_PROJ_MAX; break;
    default: return LVMMED_ERR_INVALID_ARGUMENT;
  }
  if (min_value) *min_value = lo;
  if (max_value) *max_value = hi;
  return LVMMED_OK;
}

lvmmed_status lvmmed_backbone_set_option(lvmmed_backbone *bb, lvmmed_backbone_option option,
                                         int64_t value) {
  if (!bb) return LVMMED_ERR_INVALID_ARGUMENT;
  int64_t lo, hi;
  if (lvmmed_backbone_option_bounds(option, &lo, &hi) != LVMMED_OK)
    return lvmmed__fail(bb->ctx, LVMMED_ERR_INVALID_ARGUMENT,
                        "lvmmed_backbone_set_option: unknown option %d", (int)option);
  if (value < lo || value > hi)
    return lvmmed__fail(bb->ctx, LVMMED_ERR_OUT_OF_RANGE,
                        "lvmmed_backbone_set_option: option %d = %lld outside [%lld, %lld]",
                        (int)option, (long long)value, (long long)lo, (long long)hi);
  switch (option) {
    case LVMMED_BACKBONE_OPT_TRAIN: bb->train = (int)value; return LVMMED_OK;
    case LVMMED_BACKBONE_OPT_FROZEN:
      bb->frozen = (int)value;
      lvmmed__bb_unpack(bb);
      return LVMMED_OK;
    case LVMMED_BACKBONE_OPT_GRAD:
      bb->grad_enabled = (int)value;
      if (!value) bb->have_forward = 0;
      return LVMMED_OK;
    case LVMMED_BACKBONE_OPT_PROJ_OUT:
    case LVMMED_BACKBONE_OPT_PROJ_HIDDEN: {
      int64_t old_out = bb->proj_out, old_hidden = bb->proj_hidden;
      if (option == LVMMED_BACKBONE_OPT_PROJ_OUT) bb->proj_out = value;
      else bb->proj_hidden = value;
      lvmmed_status st = lvmmed__bb_build_projector(bb);
      if (st != LVMMED_OK) {
        bb->proj_out = old_out;
        bb->proj_hidden = old_hidden;
        lvmmed__bb_build_projector(bb); /* the smaller old one; may fail too */
        return lvmmed__fail(bb->ctx, st, "lvmmed_backbone_set_option: cannot allocate the projector");
      }
      lvmmed_rng rng;
      lvmmed__rng_init(&rng, lvmmed__ctx_seed(bb->ctx), 0x70726f6a);
      lvmmed__bb_init_projector(bb, &rng);
      return LVMMED_OK;
    }
  }
  return LVMMED_ERR_INVALID_ARGUMENT;
}

lvmmed_status lvmmed_backbone_get_option(const lvmmed_backbone *bb, lvmmed_backbone_option option,
                                         int64_t *value) {
  if (!bb || !value) return LVMMED_ERR_INVALID_ARGUMENT;
  switch (option) {
    case LVMMED_BACKBONE_OPT_TRAIN: *value = bb->train; return LVMMED_OK;
    case LVMMED_BACKBONE_OPT_GRAD: *value = bb->grad_enabled; return LVMMED_OK;
    case LVMMED_BACKBONE_OPT_PROJ_OUT: *value = bb->proj_out; return LVMMED_OK;
    case LVMMED_BACKBONE_OPT_PROJ_HIDDEN: *value = bb->proj_hidden; return LVMMED_OK;
    case LVMMED_BACKBONE_OPT_FROZEN: *value = bb->frozen; return LVMMED_OK;
  }
  return lvmmed__fail(bb->ctx, LVMMED_ERR_INVALID_ARGUMENT,
                      "lvmmed_backbone_get_option: unknown option %d", (int)option);
}

lvmmed_status lvmmed_backbone_info(const lvmmed_backbone *bb, lvmmed_arch *arch,
                                   size_t *in_channels, size_t *feature_dim) {
  if (!bb) return LVMMED_ERR_INVALID_ARGUMENT;
  if (arch) *arch = bb->arch;
  if (in_channels) *in_channels = bb->in_channels;
  if (feature_dim) *feature_dim = bb->feature_dim;
  return LVMMED_OK;
}

/* ----- planning ------------------------------------------------------------ */

/* Fills the geometry of every layer for batch×height×width; 0 if some layer
 * gets no output pixel. */
static int plan_shapes(lvmmed_backbone *bb, size_t batch, size_t height, size_t width) {
  bb_plan *p = &bb->plan;
  if (!lvmmed__nn_conv_desc(&bb->conv1, batch, height, width, &bb->stem_desc)) return 0;
  p->stem_h = bb->stem_desc.g.out_h;
  p->stem_w = bb->stem_desc.g.out_w;
  lvmmed_conv_geom *pg = &bb->pool_geom;
  memset(pg, 0, sizeof *pg);
  pg->channels = 64;
  pg->height = p->stem_h;
  pg->width = p->stem_w;
  pg->kernel_h = pg->kernel_w = 3;
  pg->stride_h = pg->stride_w = 2;
  pg->pad_h = pg->pad_w = 1;
  pg->dilation_h = pg->dilation_w = 1;
  if (!lvmmed__conv_geom_finish(pg)) return 0;
  p->pool_h = pg->out_h;
  p->pool_w = pg->out_w;
  size_t h = p->pool_h, w = p->pool_w;
  for (size_t i = 0; i < bb->nblocks; i++) {
    bb_block *blk = &bb->blocks[i];
    blk->in_h = h;
    blk->in_w = w;
    for (int k = 0; k < blk->nconv; k++) {
      if (!lvmmed__nn_conv_desc(&blk->conv[k], batch, h, w, &blk->desc[k])) return 0;
      h = blk->desc[k].g.out_h;
      w = blk->desc[k].g.out_w;
    }
    if (blk->has_down &&
        !lvmmed__nn_conv_desc(&blk->down, batch, blk->in_h, blk->in_w, &blk->down_desc))
      return 0;
    blk->out_h = h;
    blk->out_w = w;
  }
  p->map_h = h;
  p->map_w = w;
  return 1;
}

static size_t conv_out_size(const lvmmed_conv2d *d) {
  return d->batch * d->g.out_h * d->g.out_w * d->out_channels;
}

static size_t conv_in_size(const lvmmed_conv2d *d) {
  return d->batch * d->g.height * d->g.width * d->g.channels;
}

/* Largest activation and the conv workspace of the current shapes. */
static void plan_extents(lvmmed_backbone *bb, size_t *max_act, size_t *ws) {
  const lvmmed_backend_ops *ops = lvmmed__backend(bb->ctx);
  size_t m = conv_in_size(&bb->stem_desc), w = ops->conv2d_workspace(bb->ctx, &bb->stem_desc);
  if (conv_out_size(&bb->stem_desc) > m) m = conv_out_size(&bb->stem_desc);
  for (size_t i = 0; i < bb->nblocks; i++) {
    bb_block *blk = &bb->blocks[i];
    for (int k = 0; k <= blk->nconv; k++) {
      const lvmmed_conv2d *d = k < blk->nconv ? &blk->desc[k] : &blk->down_desc;
      if (k == blk->nconv && !blk->has_down) break;
      size_t o = conv_out_size(d), cw = ops->conv2d_workspace(bb->ctx, d);
      if (o > m) m = o;
      if (cw > w) w = cw;
    }
  }
  *max_act = m;
  *ws = w;
}

static int grow_floats(lvmmed_backbone *bb, float **buf, size_t *cap, size_t need) {
  if (need <= *cap && *buf) return 1;
  lvmmed__free(bb->ctx, *buf);
  *buf = lvmmed__alloc(bb->ctx, (need ? need : 1) * sizeof(float));
  *cap = *buf ? need : 0;
  return *buf != NULL;
}

/* Lays the activations of the current shapes out in the arena. */
static lvmmed_status plan_memory(lvmmed_backbone *bb, int save) {
  static const char fn[] = "lvmmed_backbone_forward";
  bb_plan *p = &bb->plan;
  size_t max_act, ws;
  plan_extents(bb, &max_act, &ws);
  size_t in_size = conv_in_size(&bb->stem_desc), pool_size = p->batch * p->pool_h * p->pool_w * 64;
  size_t total = round16(in_size), nbuf = 0;
  if (save) {
    total += round16(conv_out_size(&bb->stem_desc)) + round16(pool_size);
    for (size_t i = 0; i < bb->nblocks; i++) {
      bb_block *blk = &bb->blocks[i];
      for (int k = 0; k < blk->nconv; k++) {
        total += round16(conv_out_size(&blk->desc[k]));
        if (k + 1 < blk->nconv) total += round16(conv_out_size(&blk->desc[k]));
      }
      if (blk->has_down) total += round16(conv_out_size(&blk->down_desc));
      total += round16(conv_out_size(&blk->desc[blk->nconv - 1]));
    }
  } else {
    nbuf = 5;
    total += nbuf * round16(max_act);
  }
  p->arena_floats = total;
  p->ws_floats = ws;
  p->grad_floats = save ? 3 * round16(max_act) : 0;
  if (!grow_floats(bb, &bb->arena, &bb->arena_cap, total)) return bb_oom(bb, fn, total);
  if (!grow_floats(bb, &bb->ws, &bb->ws_cap, ws)) return bb_oom(bb, fn, ws);
  /* Backward's gradient buffers double as the forward's pre-pool scratch. */
  size_t gneed = save ? p->grad_floats : 0;
  if (!grow_floats(bb, &bb->gradbuf, &bb->gradbuf_cap, gneed)) return bb_oom(bb, fn, gneed);
  if (pool_size > bb->argmax_cap || !bb->argmax) {
    lvmmed__free(bb->ctx, bb->argmax);
    bb->argmax = lvmmed__alloc(bb->ctx, pool_size ? pool_size : 1);
    bb->argmax_cap = bb->argmax ? pool_size : 0;
    if (!bb->argmax) return bb_oom(bb, fn, pool_size / 4);
  }

  float *cur = bb->arena;
  bb->x_nhwc = cur;
  cur += round16(in_size);
  if (save) {
#define TAKE(ptr, n) ((ptr) = cur, cur += round16(n))
    TAKE(bb->stem_z, conv_out_size(&bb->stem_desc));
    TAKE(bb->stem_p, pool_size);
    bb->maxpool_in = bb->gradbuf;
    float *in = bb->stem_p;
    for (size_t i = 0; i < bb->nblocks; i++) {
      bb_block *blk = &bb->blocks[i];
      blk->in = in;
      for (int k = 0; k < blk->nconv; k++) {
        TAKE(blk->z[k], conv_out_size(&blk->desc[k]));
        if (k + 1 < blk->nconv) TAKE(blk->a[k], conv_out_size(&blk->desc[k]));
      }
      blk->zd = NULL;
      if (blk->has_down) TAKE(blk->zd, conv_out_size(&blk->down_desc));
      TAKE(blk->out, conv_out_size(&blk->desc[blk->nconv - 1]));
      in = blk->out;
    }
#undef TAKE
  } else {
    /* Five rotating buffers: a block reads buf[at] and writes its output into
     * the buffer of its last convolution, which the next block reads. */
    float *buf[5];
    for (size_t i = 0; i < nbuf; i++) buf[i] = cur + i * round16(max_act);
    bb->stem_z = bb->maxpool_in = buf[0];
    bb->stem_p = buf[1];
    size_t at = 1;
    for (size_t i = 0; i < bb->nblocks; i++) {
      bb_block *blk = &bb->blocks[i];
      blk->in = buf[at];
      for (int k = 0; k < 3; k++) blk->z[k] = buf[(at + 1 + (size_t)k) % 5];
      blk->a[0] = blk->z[0];
      blk->a[1] = blk->z[1];
      blk->zd = buf[(at + 4) % 5];
      blk->out = blk->z[blk->nconv - 1];
      at = (at + (size_t)blk->nconv) % 5;
    }
  }
  return LVMMED_OK;
}

/* Output side of the stride-2 stages: conv1 (7, pad 3), max-pool (3, pad 1),
 * and the first 3×3 (pad 1) of stages 2-4; 0 when a stage gets no pixel. */
static size_t map_side(size_t n) {
  static const size_t k[5] = {7, 3, 3, 3, 3}, pad[5] = {3, 1, 1, 1, 1};
  for (int i = 0; i < 5; i++) {
    if (n + 2 * pad[i] < k[i]) return 0;
    n = (n + 2 * pad[i] - k[i]) / 2 + 1;
  }
  return n;
}

lvmmed_status lvmmed_backbone_map_shape(const lvmmed_backbone *bb, size_t height, size_t width,
                                        size_t *channels, size_t *map_h, size_t *map_w) {
  if (!bb) return LVMMED_ERR_INVALID_ARGUMENT;
  size_t h = height <= BB_DIM_MAX ? map_side(height) : 0;
  size_t w = width <= BB_DIM_MAX ? map_side(width) : 0;
  if (h == 0 || w == 0)
    return lvmmed__fail(bb->ctx, LVMMED_ERR_SHAPE,
                        "lvmmed_backbone_map_shape: input %zux%zu outside 1..%zu pixels a side",
                        height, width, BB_DIM_MAX);
  if (channels) *channels = bb->feature_dim;
  if (map_h) *map_h = h;
  if (map_w) *map_w = w;
  return LVMMED_OK;
}

/* ----- frozen weights: packed once ---------------------------------------- */

/* Every convolution with its descriptor of the current plan. */
static size_t list_convs(lvmmed_backbone *bb, lvmmed_nn_conv **convs, const lvmmed_conv2d **descs) {
  size_t n = 0;
  convs[n] = &bb->conv1;
  descs[n++] = &bb->stem_desc;
  for (size_t i = 0; i < bb->nblocks; i++) {
    bb_block *blk = &bb->blocks[i];
    for (int k = 0; k < blk->nconv; k++) {
      convs[n] = &blk->conv[k];
      descs[n++] = &blk->desc[k];
    }
    if (blk->has_down) {
      convs[n] = &blk->down;
      descs[n++] = &blk->down_desc;
    }
  }
  return n;
}

#define BB_MAX_CONVS (1 + 4 * BB_MAX_BLOCKS)

void lvmmed__bb_unpack(lvmmed_backbone *bb) {
  lvmmed_nn_conv *convs[BB_MAX_CONVS];
  const lvmmed_conv2d *descs[BB_MAX_CONVS];
  size_t n = list_convs(bb, convs, descs);
  for (size_t i = 0; i < n; i++) convs[i]->packed = NULL;
  lvmmed__free(bb->ctx, bb->pack_cache);
  bb->pack_cache = NULL;
  bb->pack_valid = 0;
}

/* Packs every convolution's weights for the plan's shapes (its descriptors are set),
 * again whenever the input shape changes: the backend picks a convolution's kernel,
 * and so its packed layout, by shape (Winograd by batch and map size). On no memory
 * the forward simply runs unpacked. */
static void ensure_packed(lvmmed_backbone *bb) {
  const bb_plan *p = &bb->plan;
  if (bb->pack_valid && bb->pack_batch == p->batch && bb->pack_h == p->height &&
      bb->pack_w == p->width)
    return;
  const lvmmed_backend_ops *ops = lvmmed__backend(bb->ctx);
  lvmmed_nn_conv *convs[BB_MAX_CONVS];
  const lvmmed_conv2d *descs[BB_MAX_CONVS];
  size_t n = list_convs(bb, convs, descs), total = 0, off[BB_MAX_CONVS];
  for (size_t i = 0; i < n; i++) {
    off[i] = total;
    total += round16(ops->conv2d_packed_size(bb->ctx, descs[i]));
  }
  lvmmed__bb_unpack(bb);
  bb->pack_cache = lvmmed__alloc(bb->ctx, total * sizeof(float));
  if (!bb->pack_cache) return;
  for (size_t i = 0; i < n; i++) {
    convs[i]->packed = bb->pack_cache + off[i];
    ops->conv2d_pack(bb->ctx, descs[i], convs[i]->weight, convs[i]->packed);
  }
  bb->pack_valid = 1;
  bb->pack_batch = p->batch;
  bb->pack_h = p->height;
  bb->pack_w = p->width;
}

/* ----- forward ------------------------------------------------------------- */

/* Eval mode with packed weights and nothing saved for backward: each convolution
 * applies its batch norm (+ residual, ReLU) as it stores its output. */
static void block_forward_fused(lvmmed_backbone *bb, bb_block *blk) {
  lvmmed_ctx *ctx = bb->ctx;
  int last = blk->nconv - 1;
  const float *in = blk->in;
  for (int k = 0; k < last; k++) {
    lvmmed__nn_conv_bn_eval(ctx, &blk->conv[k], &blk->desc[k], in, &blk->bn[k], NULL, 1,
                            blk->a[k], bb->ws);
    in = blk->a[k];
  }
  const float *residual = blk->in;
  if (blk->has_down) {
    lvmmed__nn_conv_bn_eval(ctx, &blk->down, &blk->down_desc, blk->in, &blk->down_bn, NULL, 0,
                            blk->zd, bb->ws);
    residual = blk->zd;
  }
  lvmmed__nn_conv_bn_eval(ctx, &blk->conv[last], &blk->desc[last], in, &blk->bn[last], residual,
                          1, blk->out, bb->ws);
}

static void block_forward(lvmmed_backbone *bb, bb_block *blk, int train, int save) {
  lvmmed_ctx *ctx = bb->ctx;
  int last = blk->nconv - 1;
  const float *in = blk->in;
  for (int k = 0; k < blk->nconv; k++) {
    const lvmmed_conv2d *d = &blk->desc[k];
    size_t rows = d->batch * d->g.out_h * d->g.out_w;
    lvmmed__nn_conv_forward(ctx, &blk->conv[k], d, in, blk->z[k], bb->ws);
    lvmmed__nn_bn_prepare(ctx, &blk->bn[k], rows, blk->z[k], train);
    if (k == last) break;
    lvmmed__nn_bn_apply(ctx, &blk->bn[k], rows, blk->z[k], NULL, 1, blk->a[k]);
    in = blk->a[k];
  }
  const lvmmed_conv2d *d = &blk->desc[last];
  size_t rows = d->batch * d->g.out_h * d->g.out_w;
  const float *residual = blk->in;
  if (blk->has_down) {
    float *identity = save ? blk->out : blk->zd; /* saved zd must survive */
    lvmmed__nn_conv_forward(ctx, &blk->down, &blk->down_desc, blk->in, blk->zd, bb->ws);
    lvmmed__nn_bn_prepare(ctx, &blk->down_bn, rows, blk->zd, train);
    lvmmed__nn_bn_apply(ctx, &blk->down_bn, rows, blk->zd, NULL, 0, identity);
    residual = identity;
  }
  lvmmed__nn_bn_apply(ctx, &blk->bn[last], rows, blk->z[last], residual, 1, blk->out);
}

static int all_finite(const float *x, size_t n) {
  float acc = 0.0f;
  for (size_t i = 0; i < n; i++) acc += x[i] * 0.0f; /* NaN for any Inf/NaN */
  return acc == 0.0f;
}

lvmmed_status lvmmed_backbone_forward(lvmmed_backbone *bb, const float *input, size_t batch,
                                      size_t height, size_t width, float *pooled,
                                      float *feature_map) {
  static const char fn[] = "lvmmed_backbone_forward";
  if (!bb) return LVMMED_ERR_INVALID_ARGUMENT;
  lvmmed_ctx *ctx = bb->ctx;
  bb->have_forward = 0;
  if (!input) return lvmmed__fail(ctx, LVMMED_ERR_INVALID_ARGUMENT, "%s: input is NULL", fn);
  if (batch == 0 || batch > BB_BATCH_MAX)
    return lvmmed__fail(ctx, LVMMED_ERR_OUT_OF_RANGE, "%s: batch = %zu outside [1, %zu]", fn,
                        batch, BB_BATCH_MAX);
  size_t dim = bb->feature_dim;
  if (height > BB_DIM_MAX || width > BB_DIM_MAX || !map_side(height) || !map_side(width))
    return lvmmed__fail(ctx, LVMMED_ERR_SHAPE, "%s: input %zux%zu outside 1..%zu pixels a side",
                        fn, height, width, BB_DIM_MAX);
  /* Largest tensor: batch × 64 × (height/2) × (width/2) or the input; guard size_t. */
  double biggest = (double)batch * (double)(height + 6) * (double)(width + 6) * 64.0;
  if (biggest > (double)(SIZE_MAX / 64))
    return lvmmed__fail(ctx, LVMMED_ERR_LIMIT, "%s: batch %zu of %zux%zu is too large", fn, batch,
                        height, width);
  size_t in_size = batch * bb->in_channels * height * width;
  if (!all_finite(input, in_size))
    return lvmmed__fail(ctx, LVMMED_ERR_NUMERIC, "%s: the input holds a NaN or an infinity", fn);
  int train = bb->train, save = bb->grad_enabled;
  if (!plan_shapes(bb, batch, height, width))
    return lvmmed__fail(ctx, LVMMED_ERR_SHAPE, "%s: input %zux%zu too small", fn, height, width);
  if (train && batch * bb->plan.map_h * bb->plan.map_w < 2)
    return lvmmed__fail(ctx, LVMMED_ERR_SHAPE,
                        "%s: train mode needs more than one value per channel in every batch "
                        "norm, but the last stage has batch × %zux%zu = 1",
                        fn, bb->plan.map_h, bb->plan.map_w);
  bb->plan.batch = batch;
  bb->plan.height = height;
  bb->plan.width = width;
  bb->plan.save = save;
  lvmmed_status st = plan_memory(bb, save);
  if (st != LVMMED_OK) return st;
  if (bb->frozen) ensure_packed(bb);

  const lvmmed_backend_ops *ops = lvmmed__backend(ctx);
  size_t hw = height * width;
  ops->transpose(ctx, batch, bb->in_channels, hw, input, bb->x_nhwc); /* NCHW → NHWC */
  /* stem: conv → bn → maxpool → relu (= torchvision's bn → relu → maxpool) */
  size_t stem_rows = batch * bb->plan.stem_h * bb->plan.stem_w;
  int fused = !train && !save && bb->pack_valid; /* see block_forward_fused */
  if (fused) {
    lvmmed__nn_conv_bn_eval(ctx, &bb->conv1, &bb->stem_desc, bb->x_nhwc, &bb->bn1, NULL, 0,
                            bb->maxpool_in, bb->ws);
  } else {
    lvmmed__nn_conv_forward(ctx, &bb->conv1, &bb->stem_desc, bb->x_nhwc, bb->stem_z, bb->ws);
    lvmmed__nn_bn_prepare(ctx, &bb->bn1, stem_rows, bb->stem_z, train);
    lvmmed__nn_bn_apply(ctx, &bb->bn1, stem_rows, bb->stem_z, NULL, 0, bb->maxpool_in);
  }
  ops->maxpool_forward(ctx, &bb->pool_geom, batch, bb->maxpool_in, bb->stem_p, bb->argmax);
  size_t pool_size = batch * bb->plan.pool_h * bb->plan.pool_w * 64;
  ops->relu(ctx, pool_size, bb->stem_p, bb->stem_p);
  for (size_t i = 0; i < bb->nblocks; i++) {
    if (fused)
      block_forward_fused(bb, &bb->blocks[i]);
    else
      block_forward(bb, &bb->blocks[i], train, save);
  }

  const bb_block *lastb = &bb->blocks[bb->nblocks - 1];
  size_t map_px = bb->plan.map_h * bb->plan.map_w;
  if (pooled) ops->avgpool_forward(ctx, batch, map_px, dim, lastb->out, pooled);
  if (feature_map) ops->transpose(ctx, batch, map_px, dim, lastb->out, feature_map);
  bb->have_forward = save;
  return LVMMED_OK;
}

/* ----- backward ------------------------------------------------------------ */

/* g[0] holds dL/d(out) on entry; on return g[0] holds dL/d(in). g[1], g[2] are scratch. */
static void block_backward(lvmmed_backbone *bb, bb_block *blk, float *g[3]) {
  lvmmed_ctx *ctx = bb->ctx;
  const lvmmed_backend_ops *ops = lvmmed__backend(ctx);
  int last = blk->nconv - 1;
  const lvmmed_conv2d *dl = &blk->desc[last];
  size_t rows = dl->batch * dl->g.out_h * dl->g.out_w;
  float *P = g[0], *Q = g[1], *R = g[2];
  ops->relu_backward(ctx, rows * dl->out_channels, blk->out, P, P);
  /* last conv: P → Q = dz_last */
  lvmmed__nn_bn_backward(ctx, &blk->bn[last], rows, blk->z[last], NULL, P, Q);
  /* Without a downsample the residual gradient P is dL/d(in) already: the first
   * conv's input gradient is added into it (no separate sum pass). */
  float *dz = Q, *spare = R;
  for (int k = last; k >= 0; k--) {
    const lvmmed_conv2d *d = &blk->desc[k];
    const float *x = k > 0 ? blk->a[k - 1] : blk->in;
    if (k == 0 && !blk->has_down) {
      lvmmed__nn_conv_backward(ctx, &blk->conv[0], d, x, dz, P, 1, bb->ws);
      g[0] = P;
      g[1] = dz;
      g[2] = spare;
      return;
    }
    /* dz (gradient of conv k's output) → spare = dL/d(conv k input) */
    lvmmed__nn_conv_backward(ctx, &blk->conv[k], d, x, dz, spare, 0, bb->ws);
    if (k == 0) break;
    const lvmmed_conv2d *dp = &blk->desc[k - 1];
    size_t prow = dp->batch * dp->g.out_h * dp->g.out_w;
    lvmmed__nn_bn_backward(ctx, &blk->bn[k - 1], prow, blk->z[k - 1], blk->a[k - 1], spare, spare);
    float *t = dz;
    dz = spare;
    spare = t;
  }
  /* spare holds dL/d(in) from the main path; P still holds the residual gradient,
   * which flows through the downsample's batch norm and conv into spare. */
  float *din = spare, *free_buf = dz;
  lvmmed__nn_bn_backward(ctx, &blk->down_bn, rows, blk->zd, NULL, P, free_buf);
  lvmmed__nn_conv_backward(ctx, &blk->down, &blk->down_desc, blk->in, free_buf, din, 1, bb->ws);
  g[0] = din;
  g[1] = P;
  g[2] = free_buf;
}

lvmmed_status lvmmed_backbone_backward(lvmmed_backbone *bb, const float *d_pooled,
                                       const float *d_feature_map, float *d_input) {
  static const char fn[] = "lvmmed_backbone_backward";
  if (!bb) return LVMMED_ERR_INVALID_ARGUMENT;
  lvmmed_ctx *ctx = bb->ctx;
  if (!bb->have_forward)
    return lvmmed__fail(ctx, LVMMED_ERR_STATE,
                        "%s: no forward pass with saved state to differentiate (backward runs "
                        "once per forward, and needs LVMMED_BACKBONE_OPT_GRAD = 1)", fn);
  if (!d_pooled && !d_feature_map)
    return lvmmed__fail(ctx, LVMMED_ERR_INVALID_ARGUMENT,
                        "%s: d_pooled and d_feature_map are both NULL", fn);
  /* The workspace depends on the thread count, which may have changed since forward. */
  size_t max_act, ws;
  plan_extents(bb, &max_act, &ws);
  if (!grow_floats(bb, &bb->ws, &bb->ws_cap, ws)) return bb_oom(bb, fn, ws);
  bb->have_forward = 0;
  const lvmmed_backend_ops *ops = lvmmed__backend(ctx);
  size_t batch = bb->plan.batch, dim = bb->feature_dim;
  size_t map_px = bb->plan.map_h * bb->plan.map_w, stride = bb->plan.grad_floats / 3;
  float *g[3] = {bb->gradbuf, bb->gradbuf + stride, bb->gradbuf + 2 * stride};
  const float *dmap = NULL;
  if (d_feature_map) { /* NCHW → NHWC into g[1] */
    ops->transpose(ctx, batch, dim, map_px, d_feature_map, g[1]);
    dmap = g[1];
  }
  ops->avgpool_backward(ctx, batch, map_px, dim, d_pooled, dmap, g[0]);
  for (size_t i = bb->nblocks; i-- > 0;) block_backward(bb, &bb->blocks[i], g);
  /* stem: g[0] = dL/d(stem_p) */
  size_t pool_size = batch * bb->plan.pool_h * bb->plan.pool_w * 64;
  size_t stem_rows = batch * bb->plan.stem_h * bb->plan.stem_w;
  ops->relu_backward(ctx, pool_size, bb->stem_p, g[0], g[0]);
  ops->maxpool_backward(ctx, &bb->pool_geom, batch, g[0], bb->argmax, g[1]);
  lvmmed__nn_bn_backward(ctx, &bb->bn1, stem_rows, bb->stem_z, NULL, g[1], g[1]);
  lvmmed__nn_conv_backward(ctx, &bb->conv1, &bb->stem_desc, bb->x_nhwc, g[1],
                           d_input ? g[2] : NULL, 0, bb->ws);
  if (d_input)
    ops->transpose(ctx, batch, bb->plan.height * bb->plan.width, bb->in_channels, g[2], d_input);
  return LVMMED_OK;
}

lvmmed_status lvmmed_backbone_zero_grad(lvmmed_backbone *bb) {
  if (!bb) return LVMMED_ERR_INVALID_ARGUMENT;
  memset(bb->grads, 0, bb->ngrads * sizeof(float));
  if (bb->proj_grads) memset(bb->proj_grads, 0, bb->nproj_grads * sizeof(float));
  return LVMMED_OK;
}

/* ----- projector ----------------------------------------------------------- */

size_t lvmmed_backbone_projector_dim(const lvmmed_backbone *bb) { return bb ? bb->proj.out : 0; }

lvmmed_status lvmmed_backbone_project(lvmmed_backbone *bb, const float *pooled, size_t batch,
                                      float *out) {
  static const char fn[] = "lvmmed_backbone_project";
  if (!bb) return LVMMED_ERR_INVALID_ARGUMENT;
  lvmmed_ctx *ctx = bb->ctx;
  bb_projector *p = &bb->proj;
  p->ready = 0;
  if (!pooled || !out)
    return lvmmed__fail(ctx, LVMMED_ERR_INVALID_ARGUMENT, "%s: pooled or out is NULL", fn);
  if (!p->out) return lvmmed__fail(ctx, LVMMED_ERR_STATE, "%s: the projector is removed", fn);
  if (batch == 0 || batch > BB_BATCH_MAX)
    return lvmmed__fail(ctx, LVMMED_ERR_OUT_OF_RANGE, "%s: batch = %zu outside [1, %zu]", fn,
                        batch, BB_BATCH_MAX);
  if (p->hidden && bb->train && batch < 2)
    return lvmmed__fail(ctx, LVMMED_ERR_SHAPE,
                        "%s: the projector's batch norm needs batch > 1 in train mode", fn);
  if (batch > p->cap) {
    size_t wide = p->hidden > p->in ? p->hidden : p->in;
    size_t each = round16(batch * p->in) + 3 * round16(batch * (p->hidden ? wide : 1));
    float *buf = lvmmed__alloc(ctx, each * sizeof(float));
    if (!buf) return bb_oom(bb, fn, each);
    lvmmed__free(ctx, p->x);
    p->x = buf;
    p->z = p->x + round16(batch * p->in);
    p->a = p->z + round16(batch * (p->hidden ? wide : 1));
    p->tmp = p->a + round16(batch * (p->hidden ? wide : 1));
    p->cap = batch;
  }
  memcpy(p->x, pooled, batch * p->in * sizeof(float));
  if (!p->hidden) {
    lvmmed__nn_linear_forward(ctx, &p->lin[0], batch, p->x, out);
  } else {
    lvmmed__nn_linear_forward(ctx, &p->lin[0], batch, p->x, p->z);
    lvmmed__nn_bn_prepare(ctx, &p->bn, batch, p->z, bb->train);
    lvmmed__nn_bn_apply(ctx, &p->bn, batch, p->z, NULL, 1, p->a);
    lvmmed__nn_linear_forward(ctx, &p->lin[1], batch, p->a, out);
  }
  p->batch = batch;
  p->ready = 1;
  return LVMMED_OK;
}

lvmmed_status lvmmed_backbone_project_backward(lvmmed_backbone *bb, const float *d_out,
                                               float *d_pooled) {
  static const char fn[] = "lvmmed_backbone_project_backward";
  if (!bb) return LVMMED_ERR_INVALID_ARGUMENT;
  bb_projector *p = &bb->proj;
  if (!d_out) return lvmmed__fail(bb->ctx, LVMMED_ERR_INVALID_ARGUMENT, "%s: d_out is NULL", fn);
  if (!p->ready)
    return lvmmed__fail(bb->ctx, LVMMED_ERR_STATE, "%s: no projector forward to differentiate", fn);
  p->ready = 0;
  if (!p->hidden) {
    lvmmed__nn_linear_backward(bb->ctx, &p->lin[0], p->batch, p->x, d_out, d_pooled);
  } else {
    lvmmed__nn_linear_backward(bb->ctx, &p->lin[1], p->batch, p->a, d_out, p->tmp);
    lvmmed__nn_bn_backward(bb->ctx, &p->bn, p->batch, p->z, p->a, p->tmp, p->tmp);
    lvmmed__nn_linear_backward(bb->ctx, &p->lin[0], p->batch, p->x, p->tmp, d_pooled);
  }
  return LVMMED_OK;
}

/* ----- tensors ------------------------------------------------------------- */

size_t lvmmed_backbone_tensor_count(const lvmmed_backbone *bb) { return bb ? bb->ntensors : 0; }

lvmmed_status lvmmed_backbone_tensor(lvmmed_backbone *bb, size_t index, const char **name,
                                     lvmmed_tensor_kind *kind, size_t *ndim,
                                     size_t shape[LVMMED_TENSOR_MAX_DIMS], size_t *numel,
                                     float **data, float **grad) {
  if (!bb) return LVMMED_ERR_INVALID_ARGUMENT;
  if (index >= bb->ntensors)
    return lvmmed__fail(bb->ctx, LVMMED_ERR_OUT_OF_RANGE,
                        "lvmmed_backbone_tensor: index %zu >= count %zu", index, bb->ntensors);
  const bb_tensor *t = &bb->tensors[index];
  if (name) *name = t->name;
  if (kind) *kind = t->kind;
  if (ndim) *ndim = t->ndim;
  if (shape)
    for (size_t i = 0; i < LVMMED_TENSOR_MAX_DIMS; i++) shape[i] = i < t->ndim ? t->shape[i] : 1;
  if (numel) *numel = t->numel;
  if (data) *data = t->data;
  if (grad) *grad = t->grad;
  return LVMMED_OK;
}

lvmmed_status lvmmed_backbone_find_tensor(const lvmmed_backbone *bb, const char *name,
                                          size_t *index) {
  if (!bb) return LVMMED_ERR_INVALID_ARGUMENT;
  if (!name || !index)
    return lvmmed__fail(bb->ctx, LVMMED_ERR_INVALID_ARGUMENT,
                        "lvmmed_backbone_find_tensor: name or index is NULL");
  for (size_t i = 0; i < bb->ntensors; i++)
    if (!strcmp(bb->tensors[i].name, name)) {
      *index = i;
      return LVMMED_OK;
    }
  return lvmmed__fail(bb->ctx, LVMMED_ERR_NOT_FOUND,
                      "lvmmed_backbone_find_tensor: no tensor named \"%s\"", name);
}
