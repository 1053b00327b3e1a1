/* The backbone's state dict: building the network, naming its tensors with
 * torchvision's keys and placing them in contiguous arenas (one for values,
 * one for gradients), so an optimizer can also treat them as flat vectors. */
#include "lvmmed_config.h"

#include <stdio.h>
#include <string.h>

#include "backbone/backbone_impl.h"
#include "core/core.h"

/* Tensors are registered with the address of the pointer that will hold
 * their storage; the arenas are allocated once every size is known. */
typedef struct builder {
  lvmmed_ctx *ctx;
  bb_tensor *t;
  float ***dslot, ***gslot;
  size_t *doff, *goff;
  size_t n, cap;
  bb_counter *c;
  size_t nc, ccap;
  float ***sslot; /* BN scratch (8 × channels each) */
  size_t *soff, *ssize;
  size_t ns, scap;
  size_t data_floats, grad_floats, scratch_floats;
  int failed;
} builder;

/* dst = a "." b, cut to BB_NAME_MAX - 1 bytes (every torchvision name is far shorter). */
static void join(char *dst, const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  if (la > BB_NAME_MAX - 2) la = BB_NAME_MAX - 2;
  if (lb > BB_NAME_MAX - 2 - la) lb = BB_NAME_MAX - 2 - la;
  memcpy(dst, a, la);
  dst[la] = '.';
  memcpy(dst + la + 1, b, lb);
  dst[la + 1 + lb] = '\0';
}

/* 16 floats = 64 bytes: every tensor starts on its own cache line. */
static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

static int grow(builder *b, void **p, size_t elem, size_t need, size_t *cap) {
  if (need <= *cap) return 1;
  size_t ncap = *cap ? *cap * 2 : 64;
  while (ncap < need) ncap *= 2;
  void *q = lvmmed__alloc(b->ctx, ncap * elem);
  if (!q) return 0;
  if (*p) {
    memcpy(q, *p, *cap * elem);
    lvmmed__free(b->ctx, *p);
  }
  *p = q;
  *cap = ncap;
  return 1;
}

static void add_tensor(builder *b, const char *name, lvmmed_tensor_kind kind, size_t ndim,
                       const size_t *shape, float **data, float **grad) {
  if (b->failed) return;
  size_t cap = b->cap;
  if (b->n + 1 > cap) {
    size_t c1 = cap, c2 = cap, c3 = cap, c4 = cap, c5 = cap;
    if (!grow(b, (void **)&b->t, sizeof *b->t, b->n + 1, &c1) ||
        !grow(b, (void **)&b->dslot, sizeof *b->dslot, b->n + 1, &c2) ||
        !grow(b, (void **)&b->gslot, sizeof *b->gslot, b->n + 1, &c3) ||
        !grow(b, (void **)&b->doff, sizeof *b->doff, b->n + 1, &c4) ||
        !grow(b, (void **)&b->goff, sizeof *b->goff, b->n + 1, &c5)) {
      b->failed = 1;
      return;
    }
    b->cap = c1;
  }
  bb_tensor *t = &b->t[b->n];
  memset(t, 0, sizeof *t);
  snprintf(t->name, sizeof t->name, "%s", name);
  t->kind = kind;
  t->ndim = ndim;
  t->numel = 1;
  for (size_t i = 0; i < ndim; i++) {
    t->shape[i] = shape[i];
    t->numel *= shape[i];
  }
  b->dslot[b->n] = data;
  b->gslot[b->n] = grad;
  b->doff[b->n] = b->data_floats;
  b->data_floats += round16(t->numel);
  b->goff[b->n] = b->grad_floats;
  if (grad) b->grad_floats += round16(t->numel);
  b->n++;
}

static void add_counter(builder *b, const char *name, int64_t *value) {
  if (b->failed) return;
  if (!grow(b, (void **)&b->c, sizeof *b->c, b->nc + 1, &b->ccap)) {
    b->failed = 1;
    return;
  }
  snprintf(b->c[b->nc].name, BB_NAME_MAX, "%s", name);
  b->c[b->nc].value = value;
  b->nc++;
}

static void add_scratch(builder *b, float **slot, size_t floats) {
  if (b->failed) return;
  size_t cap = b->scap;
  if (b->ns + 1 > cap) {
    size_t c1 = cap, c2 = cap, c3 = cap;
    if (!grow(b, (void **)&b->sslot, sizeof *b->sslot, b->ns + 1, &c1) ||
        !grow(b, (void **)&b->soff, sizeof *b->soff, b->ns + 1, &c2) ||
        !grow(b, (void **)&b->ssize, sizeof *b->ssize, b->ns + 1, &c3)) {
      b->failed = 1;
      return;
    }
    b->scap = c1;
  }
  b->sslot[b->ns] = slot;
  b->soff[b->ns] = b->scratch_floats;
  b->ssize[b->ns] = floats;
  b->scratch_floats += round16(floats);
  b->ns++;
}

static void add_conv(builder *b, const char *prefix, lvmmed_nn_conv *conv, size_t cin,
                     size_t cout, size_t kernel, size_t stride, size_t pad) {
  char name[BB_NAME_MAX];
  conv->cin = cin;
  conv->cout = cout;
  conv->kernel = kernel;
  conv->stride = stride;
  conv->pad = pad;
  size_t shape[4] = {cout, cin, kernel, kernel};
  join(name, prefix, "weight");
  add_tensor(b, name, LVMMED_TENSOR_PARAMETER, 4, shape, &conv->weight, &conv->grad);
}

static void add_bn(builder *b, const char *prefix, lvmmed_nn_bn *bn, size_t channels) {
  char name[BB_NAME_MAX];
  size_t shape[1] = {channels};
  bn->channels = channels;
  static const char *const names[4] = {"weight", "bias", "running_mean", "running_var"};
  float **data[4] = {&bn->weight, &bn->bias, &bn->running_mean, &bn->running_var};
  float **grad[4] = {&bn->grad_weight, &bn->grad_bias, NULL, NULL};
  for (int i = 0; i < 4; i++) {
    join(name, prefix, names[i]);
    add_tensor(b, name, grad[i] ? LVMMED_TENSOR_PARAMETER : LVMMED_TENSOR_BUFFER, 1, shape,
               data[i], grad[i]);
  }
  join(name, prefix, "num_batches_tracked");
  add_counter(b, name, &bn->batches_tracked);
  add_scratch(b, &bn->mean, 8 * channels); /* mean, invstd, scale, shift, tmp[4] */
}

static void add_linear(builder *b, const char *prefix, lvmmed_nn_linear *l, size_t in,
                       size_t out) {
  char name[BB_NAME_MAX];
  l->in = in;
  l->out = out;
  size_t wshape[2] = {out, in}, bshape[1] = {out};
  join(name, prefix, "weight");
  add_tensor(b, name, LVMMED_TENSOR_PARAMETER, 2, wshape, &l->weight, &l->grad_weight);
  join(name, prefix, "bias");
  add_tensor(b, name, LVMMED_TENSOR_PARAMETER, 1, bshape, &l->bias, &l->grad_bias);
}

static void builder_free(builder *b) {
  lvmmed__free(b->ctx, b->t);
  lvmmed__free(b->ctx, b->dslot);
  lvmmed__free(b->ctx, b->gslot);
  lvmmed__free(b->ctx, b->doff);
  lvmmed__free(b->ctx, b->goff);
  lvmmed__free(b->ctx, b->c);
  lvmmed__free(b->ctx, b->sslot);
  lvmmed__free(b->ctx, b->soff);
  lvmmed__free(b->ctx, b->ssize);
}

/* Allocates the three arenas and points every registered slot into them. */
static int builder_place(builder *b, float **data, float **grad, float **scratch) {
  *data = lvmmed__calloc(b->ctx, b->data_floats ? b->data_floats : 1, sizeof(float));
  *grad = lvmmed__calloc(b->ctx, b->grad_floats ? b->grad_floats : 1, sizeof(float));
  *scratch = lvmmed__calloc(b->ctx, b->scratch_floats ? b->scratch_floats : 1, sizeof(float));
  if (!*data || !*grad || !*scratch) {
    lvmmed__free(b->ctx, *data);
    lvmmed__free(b->ctx, *grad);
    lvmmed__free(b->ctx, *scratch);
    *data = *grad = *scratch = NULL;
    return 0;
  }
  for (size_t i = 0; i < b->n; i++) {
    b->t[i].data = *b->dslot[i] = *data + b->doff[i];
    if (b->gslot[i]) b->t[i].grad = *b->gslot[i] = *grad + b->goff[i];
  }
  for (size_t i = 0; i < b->ns; i++) *b->sslot[i] = *scratch + b->soff[i];
  return 1;
}

/* The BN scratch block starts at bn->mean; the other pointers follow it. */
static void bn_wire(lvmmed_nn_bn *bn) {
  size_t c = bn->channels;
  bn->invstd = bn->mean + c;
  bn->scale = bn->mean + 2 * c;
  bn->shift = bn->mean + 3 * c;
  bn->tmp = bn->mean + 4 * c;
}

/* Concatenates backbone and projector tensor/counter lists into bb. */
static lvmmed_status merge_lists(lvmmed_backbone *bb, const bb_tensor *pt, size_t np,
                                 const bb_counter *pc, size_t npc) {
  size_t nt = bb->nbackbone_tensors + np, nc = bb->nbackbone_counters + npc;
  bb_tensor *t = lvmmed__alloc(bb->ctx, (nt ? nt : 1) * sizeof *t);
  bb_counter *c = lvmmed__alloc(bb->ctx, (nc ? nc : 1) * sizeof *c);
  if (!t || !c) {
    lvmmed__free(bb->ctx, t);
    lvmmed__free(bb->ctx, c);
    return LVMMED_ERR_OUT_OF_MEMORY;
  }
  memcpy(t, bb->tensors, bb->nbackbone_tensors * sizeof *t);
  if (np) memcpy(t + bb->nbackbone_tensors, pt, np * sizeof *t);
  memcpy(c, bb->counters, bb->nbackbone_counters * sizeof *c);
  if (npc) memcpy(c + bb->nbackbone_counters, pc, npc * sizeof *c);
  lvmmed__free(bb->ctx, bb->tensors);
  lvmmed__free(bb->ctx, bb->counters);
  bb->tensors = t;
  bb->ntensors = nt;
  bb->counters = c;
  bb->ncounters = nc;
  return LVMMED_OK;
}

lvmmed_status lvmmed__bb_build_tensors(lvmmed_backbone *bb) {
  static const size_t depth18[4] = {2, 2, 2, 2}, depth34[4] = {3, 4, 6, 3};
  const size_t *depth = bb->arch == LVMMED_ARCH_RESNET18 ? depth18 : depth34;
  int bottleneck = bb->arch == LVMMED_ARCH_RESNET50;
  size_t expansion = bottleneck ? 4 : 1;
  builder b = {.ctx = bb->ctx};
  char prefix[BB_NAME_MAX];

  add_conv(&b, "conv1", &bb->conv1, bb->in_channels, 64, 7, 2, 3);
  add_bn(&b, "bn1", &bb->bn1, 64);
  size_t inplanes = 64, nb = 0;
  for (size_t stage = 0; stage < 4; stage++) {
    size_t planes = (size_t)64 << stage;
    for (size_t i = 0; i < depth[stage]; i++, nb++) {
      bb_block *blk = &bb->blocks[nb];
      size_t stride = stage > 0 && i == 0 ? 2 : 1;
      memset(blk, 0, sizeof *blk);
      blk->nconv = bottleneck ? 3 : 2;
      char name[BB_NAME_MAX];
      snprintf(prefix, sizeof prefix, "layer%zu.%zu", stage + 1, i);
#define NAME(part) (join(name, prefix, part), name)
      if (bottleneck) {
        add_conv(&b, NAME("conv1"), &blk->conv[0], inplanes, planes, 1, 1, 0);
        add_bn(&b, NAME("bn1"), &blk->bn[0], planes);
        add_conv(&b, NAME("conv2"), &blk->conv[1], planes, planes, 3, stride, 1);
        add_bn(&b, NAME("bn2"), &blk->bn[1], planes);
        add_conv(&b, NAME("conv3"), &blk->conv[2], planes, planes * 4, 1, 1, 0);
        add_bn(&b, NAME("bn3"), &blk->bn[2], planes * 4);
      } else {
        add_conv(&b, NAME("conv1"), &blk->conv[0], inplanes, planes, 3, stride, 1);
        add_bn(&b, NAME("bn1"), &blk->bn[0], planes);
        add_conv(&b, NAME("conv2"), &blk->conv[1], planes, planes, 3, 1, 1);
        add_bn(&b, NAME("bn2"), &blk->bn[1], planes);
      }
      if (stride != 1 || inplanes != planes * expansion) {
        blk->has_down = 1;
        add_conv(&b, NAME("downsample.0"), &blk->down, inplanes, planes * expansion, 1, stride, 0);
        add_bn(&b, NAME("downsample.1"), &blk->down_bn, planes * expansion);
      }
#undef NAME
      inplanes = planes * expansion;
    }
  }
  bb->nblocks = nb;
  bb->feature_dim = inplanes;
  lvmmed_status st = LVMMED_OK;
  if (b.failed || !builder_place(&b, &bb->params, &bb->grads, &bb->bn_scratch)) {
    st = LVMMED_ERR_OUT_OF_MEMORY;
  } else {
    bb->nparams = b.data_floats;
    bb->ngrads = b.grad_floats;
    bn_wire(&bb->bn1);
    for (size_t i = 0; i < nb; i++) {
      for (int k = 0; k < bb->blocks[i].nconv; k++) bn_wire(&bb->blocks[i].bn[k]);
      if (bb->blocks[i].has_down) bn_wire(&bb->blocks[i].down_bn);
    }
    bb->tensors = b.t;
    bb->ntensors = bb->nbackbone_tensors = b.n;
    bb->counters = b.c;
    bb->ncounters = bb->nbackbone_counters = b.nc;
    b.t = NULL;
    b.c = NULL;
  }
  builder_free(&b);
  return st;
}

void lvmmed__bb_free_projector(lvmmed_backbone *bb) {
  bb_projector *p = &bb->proj;
  lvmmed__free(bb->ctx, bb->proj_params);
  lvmmed__free(bb->ctx, bb->proj_grads);
  lvmmed__free(bb->ctx, bb->proj_bn_scratch);
  lvmmed__free(bb->ctx, p->x);
  bb->proj_params = bb->proj_grads = bb->proj_bn_scratch = NULL;
  memset(p, 0, sizeof *p);
}

lvmmed_status lvmmed__bb_build_projector(lvmmed_backbone *bb) {
  lvmmed__bb_free_projector(bb);
  bb_projector *p = &bb->proj;
  builder b = {.ctx = bb->ctx};
  p->in = bb->feature_dim;
  p->out = (size_t)bb->proj_out;
  p->hidden = bb->proj_out ? (size_t)bb->proj_hidden : 0;
  if (p->out) {
    if (p->hidden) {
      add_linear(&b, "projector.0", &p->lin[0], p->in, p->hidden);
      add_bn(&b, "projector.1", &p->bn, p->hidden);
      add_linear(&b, "projector.3", &p->lin[1], p->hidden, p->out);
    } else {
      add_linear(&b, "projector", &p->lin[0], p->in, p->out);
    }
  }
  lvmmed_status st = LVMMED_OK;
  if (b.failed || !builder_place(&b, &bb->proj_params, &bb->proj_grads, &bb->proj_bn_scratch)) {
    st = LVMMED_ERR_OUT_OF_MEMORY;
  } else {
    bb->nproj_params = b.data_floats;
    bb->nproj_grads = b.grad_floats;
    if (p->hidden) bn_wire(&p->bn);
    st = merge_lists(bb, b.t, b.n, b.c, b.nc);
  }
  builder_free(&b);
  return st;
}

void lvmmed__bb_init_projector(lvmmed_backbone *bb, lvmmed_rng *rng) {
  bb_projector *p = &bb->proj;
  if (!p->out) return;
  lvmmed__nn_linear_init(&p->lin[0], rng);
  if (p->hidden) {
    lvmmed__nn_bn_init(&p->bn);
    lvmmed__nn_linear_init(&p->lin[1], rng);
  }
}
