/* The backbone handle: API contract, backend agreement, determinism, memory
 * modes, weights I/O and a hostile safetensors corpus. Parity with PyTorch
 * itself is tests/backbone/test_resnet_torch.py; this suite also runs under
 * the sanitizers. */
#include "lvmmed_config.h"

#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lvmmed/lvmmed.h>

#include "backbone/safetensors.h"
#include "../test_util.h"

static lvmmed_ctx *ctx;

static void setup(void) {
  ck_assert_int_eq(lvmmed_ctx_create(&ctx), LVMMED_OK);
  ck_assert_int_eq(lvmmed_ctx_set_option(ctx, LVMMED_CTX_OPT_THREADS, 2), LVMMED_OK);
  ck_assert_int_eq(lvmmed_ctx_set_option(ctx, LVMMED_CTX_OPT_SEED, 42), LVMMED_OK);
}

static void teardown(void) {
  lvmmed_ctx_release(ctx);
  ctx = NULL;
}

static float *randn(size_t n, uint64_t seed) {
  float *p = malloc(n * sizeof *p);
  ck_assert_ptr_nonnull(p);
  uint64_t s = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; i++) {
    s = s * 6364136223846793005u + 1442695040888963407u;
    p[i] = (float)((double)(s >> 40) / 8388608.0 - 1.0);
  }
  return p;
}

/* max|a - b| / max|b| */
static double relerr(const float *a, const float *b, size_t n) {
  double d = 0.0, m = 0.0;
  for (size_t i = 0; i < n; i++) {
    double e = fabs((double)a[i] - b[i]);
    if (!(e <= d)) d = e;
    if (fabs(b[i]) > m) m = fabs(b[i]);
  }
  return d / (m > 0 ? m : 1.0);
}

static lvmmed_backbone *make(lvmmed_ctx *c, lvmmed_arch arch, size_t channels) {
  lvmmed_backbone *bb = NULL;
  ck_assert_lvmmed_ok(c, lvmmed_backbone_create(c, arch, channels, &bb));
  return bb;
}

/* ----- API contract ---------------------------------------------------------- */

START_TEST(test_create_errors) {
  lvmmed_backbone *bb = (lvmmed_backbone *)1;
  ck_assert_int_eq(lvmmed_backbone_create(ctx, (lvmmed_arch)9, 3, &bb), LVMMED_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_null(bb);
  ck_assert_ptr_nonnull(strstr(lvmmed_ctx_last_error(ctx), "architecture"));
  ck_assert_int_eq(lvmmed_backbone_create(ctx, LVMMED_ARCH_RESNET18, 2, &bb),
                   LVMMED_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(lvmmed_backbone_create(ctx, LVMMED_ARCH_RESNET18, 3, NULL),
                   LVMMED_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(lvmmed_backbone_create(NULL, LVMMED_ARCH_RESNET18, 3, &bb),
                   LVMMED_ERR_INVALID_ARGUMENT);
  lvmmed_backbone_free(NULL);
  unsigned before = lvmmed_ctx_refcount(ctx);
  bb = make(ctx, LVMMED_ARCH_RESNET18, 3);
  ck_assert_uint_eq(lvmmed_ctx_refcount(ctx), before + 1);
  ck_assert_ptr_eq(lvmmed_backbone_ctx(bb), ctx);
  lvmmed_backbone_free(bb);
  ck_assert_uint_eq(lvmmed_ctx_refcount(ctx), before);
}
END_TEST

START_TEST(test_options) {
  lvmmed_backbone *bb = make(ctx, LVMMED_ARCH_RESNET18, 3);
  int64_t v, lo, hi;
  ck_assert_int_eq(lvmmed_backbone_option_bounds(LVMMED_BACKBONE_OPT_TRAIN, &lo, &hi), LVMMED_OK);
  ck_assert(lo == 0 && hi == 1);
  ck_assert_int_eq(lvmmed_backbone_option_bounds((lvmmed_backbone_option)99, &lo, &hi),
                   LVMMED_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(lvmmed_backbone_get_option(bb, LVMMED_BACKBONE_OPT_TRAIN, &v), LVMMED_OK);
  ck_assert_int_eq(v, 0); /* eval by default */
  ck_assert_int_eq(lvmmed_backbone_get_option(bb, LVMMED_BACKBONE_OPT_PROJ_OUT, &v), LVMMED_OK);
  ck_assert_int_eq(v, 128);
  ck_assert_int_eq(lvmmed_backbone_set_option(bb, LVMMED_BACKBONE_OPT_TRAIN, 2),
                   LVMMED_ERR_OUT_OF_RANGE);
  ck_assert_int_eq(lvmmed_backbone_set_option(bb, (lvmmed_backbone_option)0, 1),
                   LVMMED_ERR_INVALID_ARGUMENT);
  size_t n0 = lvmmed_backbone_tensor_count(bb);
  ck_assert_lvmmed_ok(ctx, lvmmed_backbone_set_option(bb, LVMMED_BACKBONE_OPT_PROJ_HIDDEN, 64));
  ck_assert_uint_eq(lvmmed_backbone_tensor_count(bb), n0 - 2 + 2 + 4 + 2); /* 0.*, 1.*, 3.* */
  size_t idx;
  ck_assert_lvmmed_ok(ctx, lvmmed_backbone_find_tensor(bb, "projector.1.running_var", &idx));
  ck_assert_lvmmed_ok(ctx, lvmmed_backbone_set_option(bb, LVMMED_BACKBONE_OPT_PROJ_OUT, 0));
  ck_assert_uint_eq(lvmmed_backbone_projector_dim(bb), 0);
  ck_assert_uint_eq(lvmmed_backbone_tensor_count(bb), n0 - 2);
  float pooled[512] = {0}, out[128];
  ck_assert_int_eq(lvmmed_backbone_project(bb, pooled, 1, out), LVMMED_ERR_STATE);
  lvmmed_backbone_free(bb);
}
END_TEST

START_TEST(test_tensor_names) {
  static const struct {
    lvmmed_arch arch;
    size_t count, dim;
    const char *last_backbone;
  } want[] = {{LVMMED_ARCH_RESNET18, 102, 512, "layer4.1.bn2.running_var"},
              {LVMMED_ARCH_RESNET34, 182, 512, "layer4.2.bn2.running_var"},
              {LVMMED_ARCH_RESNET50, 267, 2048, "layer4.2.bn3.running_var"}};
  for (size_t k = 0; k < 3; k++) {
    lvmmed_backbone *bb = make(ctx, want[k].arch, 3);
    size_t dim, nt = lvmmed_backbone_tensor_count(bb);
    ck_assert_lvmmed_ok(ctx, lvmmed_backbone_info(bb, NULL, NULL, &dim));
    ck_assert_uint_eq(dim, want[k].dim);
    ck_assert_uint_eq(nt, want[k].count); /* torchvision keys - fc - counters + projector */
    const char *name;
    lvmmed_tensor_kind kind;
    size_t ndim, shape[LVMMED_TENSOR_MAX_DIMS], numel;
    float *data, *grad;
    ck_assert_lvmmed_ok(ctx, lvmmed_backbone_tensor(bb, 0, &name, &kind, &ndim, shape, &numel,
                                                    &data, &grad));
    ck_assert_str_eq(name, "conv1.weight");
    ck_assert_int_eq(kind, LVMMED_TENSOR_PARAMETER);
    ck_assert(ndim == 4 && shape[0] == 64 && shape[1] == 3 && shape[2] == 7 && shape[3] == 7);
    ck_assert_uint_eq(numel, 64 * 3 * 49);
    ck_assert_ptr_nonnull(grad);
    ck_assert_lvmmed_ok(ctx, lvmmed_backbone_tensor(bb, nt - 3, &name, &kind, NULL, NULL, NULL,
                                                    NULL, &grad));
    ck_assert_str_eq(name, want[k].last_backbone);
    ck_assert_int_eq(kind, LVMMED_TENSOR_BUFFER);
    ck_assert_ptr_null(grad);
    ck_assert_lvmmed_ok(ctx, lvmmed_backbone_tensor(bb, nt - 1, &name, NULL, &ndim, shape, NULL,
                                                    NULL, NULL));
    ck_assert_str_eq(name, "projector.bias");
    ck_assert_int_eq(lvmmed_backbone_tensor(bb, nt, &name, NULL, NULL, NULL, NULL, NULL, NULL),
                     LVMMED_ERR_OUT_OF_RANGE);
    size_t idx;
    ck_assert_int_eq(lvmmed_backbone_find_tensor(bb, "fc.weight", &idx), LVMMED_ERR_NOT_FOUND);
    lvmmed_backbone_free(bb);
  }
}
END_TEST

START_TEST(test_input_validation) {
  lvmmed_backbone *bb = make(ctx, LVMMED_ARCH_RESNET18, 1);
  size_t n = 2 * 32 * 32;
  float *x = randn(n, 1), pooled[2 * 512];
  size_t c, h, w;
  ck_assert_lvmmed_ok(ctx, lvmmed_backbone_map_shape(bb, 224, 200, &c, &h, &w));
  ck_assert(c == 512 && h == 7 && w == 7);
  ck_assert_lvmmed_ok(ctx, lvmmed_backbone_map_shape(bb, 1, 1, &c, &h, &w));
  ck_assert(h == 1 && w == 1);
  ck_assert_int_eq(lvmmed_backbone_map_shape(bb, 0, 5, &c, &h, &w), LVMMED_ERR_SHAPE);
  ck_assert_int_eq(lvmmed_backbone_forward(bb, NULL, 2, 32, 32, pooled, NULL),
                   LVMMED_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(lvmmed_backbone_forward(bb, x, 0, 32, 32, pooled, NULL), LVMMED_ERR_OUT_OF_RANGE);
  ck_assert_int_eq(lvmmed_backbone_forward(bb, x, 2, 0, 32, pooled, NULL), LVMMED_ERR_SHAPE);
  ck_assert_int_eq(lvmmed_backbone_backward(bb, pooled, NULL, NULL), LVMMED_ERR_STATE);
  x[77] = NAN;
  ck_assert_int_eq(lvmmed_backbone_forward(bb, x, 2, 32, 32, pooled, NULL), LVMMED_ERR_NUMERIC);
  x[77] = INFINITY;
  ck_assert_int_eq(lvmmed_backbone_forward(bb, x, 2, 32, 32, pooled, NULL), LVMMED_ERR_NUMERIC);
  x[77] = 0.0f;
  /* train mode: batch norm over one value per channel is undefined (PyTorch refuses too) */
  ck_assert_lvmmed_ok(ctx, lvmmed_backbone_set_option(bb, LVMMED_BACKBONE_OPT_TRAIN, 1));
  ck_assert_int_eq(lvmmed_backbone_forward(bb, x, 1, 32, 32, pooled, NULL), LVMMED_ERR_SHAPE);
  ck_assert_lvmmed_ok(ctx, lvmmed_backbone_forward(bb, x, 2, 32, 32, pooled, NULL));
  ck_assert_int_eq(lvmmed_backbone_backward(bb, NULL, NULL, NULL), LVMMED_ERR_INVALID_ARGUMENT);
  ck_assert_lvmmed_ok(ctx, lvmmed_backbone_backward(bb, pooled, NULL, NULL));
  ck_assert_int_eq(lvmmed_backbone_backward(bb, pooled, NULL, NULL), LVMMED_ERR_STATE);
  free(x);
  lvmmed_backbone_free(bb);
}
END_TEST

/* ----- numerics -------------------------------------------------------------- */

typedef struct pass_result {
  float *pooled, *fmap, *dx, *grads, *stats;
  size_t npooled, nfmap, nx, ngrads, nstats;
} pass_result;

/* One train/eval forward + backward on fixed data; all outputs and every gradient. */
static pass_result run_pass(lvmmed_backbone *bb, lvmmed_ctx *c, size_t batch, size_t ch,
                            size_t hgt, size_t wid, int train) {
  pass_result r;
  memset(&r, 0, sizeof r);
  size_t d, mh, mw;
  ck_assert_lvmmed_ok(c, lvmmed_backbone_map_shape(bb, hgt, wid, &d, &mh, &mw));
  r.nx = batch * ch * hgt * wid;
  r.npooled = batch * d;
  r.nfmap = r.npooled * mh * mw;
  float *x = randn(r.nx, 3), *gp = randn(r.npooled, 4), *gm = randn(r.nfmap, 5);
  r.pooled = malloc(r.npooled * sizeof(float));
  r.fmap = malloc(r.nfmap * sizeof(float));
  r.dx = malloc(r.nx * sizeof(float));
  ck_assert_lvmmed_ok(c, lvmmed_backbone_set_option(bb, LVMMED_BACKBONE_OPT_TRAIN, train));
  ck_assert_lvmmed_ok(c, lvmmed_backbone_zero_grad(bb));
  ck_assert_lvmmed_ok(c, lvmmed_backbone_forward(bb, x, batch, hgt, wid, r.pooled, r.fmap));
  ck_assert_lvmmed_ok(c, lvmmed_backbone_backward(bb, gp, gm, r.dx));
  size_t nt = lvmmed_backbone_tensor_count(bb);
  for (int pass = 0; pass < 2; pass++) {
    r.ngrads = r.nstats = 0;
    for (size_t i = 0; i < nt; i++) {
      lvmmed_tensor_kind kind;
      size_t numel;
      float *data, *grad;
      ck_assert_lvmmed_ok(c, lvmmed_backbone_tensor(bb, i, NULL, &kind, NULL, NULL, &numel,
                                                    &data, &grad));
      if (kind == LVMMED_TENSOR_PARAMETER) {
        if (pass) memcpy(r.grads + r.ngrads, grad, numel * sizeof(float));
        r.ngrads += numel;
      } else {
        if (pass) memcpy(r.stats + r.nstats, data, numel * sizeof(float));
        r.nstats += numel;
      }
    }
    if (!pass) {
      r.grads = malloc(r.ngrads * sizeof(float));
      r.stats = malloc(r.nstats * sizeof(float));
    }
  }
  free(x);
  free(gp);
  free(gm);
  return r;
}

static void free_pass(pass_result *r) {
  free(r->pooled);
  free(r->fmap);
  free(r->dx);
  free(r->grads);
  free(r->stats);
}

/* The OpenBLAS backend and the plain-loop reference agree on a whole network. */
START_TEST(test_backends_agree) {
  if (!lvmmed_backend_available(LVMMED_BACKEND_OPENBLAS)) return;
  lvmmed_ctx *rc;
  ck_assert_int_eq(lvmmed_ctx_create(&rc), LVMMED_OK);
  ck_assert_int_eq(lvmmed_ctx_set_option(rc, LVMMED_CTX_OPT_BACKEND, LVMMED_BACKEND_REFERENCE),
                   LVMMED_OK);
  ck_assert_int_eq(lvmmed_ctx_set_option(rc, LVMMED_CTX_OPT_SEED, 42), LVMMED_OK);
  for (int train = 0; train < 2; train++) {
    lvmmed_backbone *a = make(ctx, LVMMED_ARCH_RESNET18, 3), *b = make(rc, LVMMED_ARCH_RESNET18, 3);
    /* train mode needs enough values per channel in the last stage to be well conditioned
     * (batch 2 at 32x24 leaves 2, and float32 rounding then moves outputs by percents) */
    size_t n = train ? 3 : 2, hgt = train ? 48 : 32, wid = train ? 40 : 24;
    pass_result ra = run_pass(a, ctx, n, 3, hgt, wid, train);
    pass_result rb = run_pass(b, rc, n, 3, hgt, wid, train);
    ck_assert_uint_eq(ra.ngrads, rb.ngrads);
    double e[5] = {relerr(ra.pooled, rb.pooled, ra.npooled), relerr(ra.fmap, rb.fmap, ra.nfmap),
                   relerr(ra.dx, rb.dx, ra.nx), relerr(ra.grads, rb.grads, ra.ngrads),
                   relerr(ra.stats, rb.stats, ra.nstats)};
    printf("backends agree (%s): pooled %.2e map %.2e d_input %.2e grads %.2e stats %.2e\n",
           train ? "train" : "eval", e[0], e[1], e[2], e[3], e[4]);
    for (int k = 0; k < 5; k++) ck_assert_msg(e[k] < 1e-4, "quantity %d differs by %.3g", k, e[k]);
    free_pass(&ra);
    free_pass(&rb);
    lvmmed_backbone_free(a);
    lvmmed_backbone_free(b);
  }
  lvmmed_ctx_release(rc);
}
END_TEST

/* Same inputs, same threads: bit-identical; the inference path computes the same values. */
#if defined(__SANITIZE_ADDRESS__)
#define SLOW_ARCH LVMMED_ARCH_RESNET18 /* -O0 + ASan: the bottleneck path is covered elsewhere */
#else
#define SLOW_ARCH LVMMED_ARCH_RESNET50
#endif

START_TEST(test_determinism_and_nograd) {
  lvmmed_backbone *bb = make(ctx, SLOW_ARCH, 1);
  pass_result r1 = run_pass(bb, ctx, 2, 1, 40, 32, 0);
  pass_result r2 = run_pass(bb, ctx, 2, 1, 40, 32, 0);
  ck_assert(memcmp(r1.pooled, r2.pooled, r1.npooled * sizeof(float)) == 0);
  ck_assert(memcmp(r1.dx, r2.dx, r1.nx * sizeof(float)) == 0);
  ck_assert(memcmp(r1.grads, r2.grads, r1.ngrads * sizeof(float)) == 0);
  float *x = randn(r1.nx, 3), *pooled = malloc(r1.npooled * sizeof(float));
  float *fmap = malloc(r1.nfmap * sizeof(float));
  ck_assert_lvmmed_ok(ctx, lvmmed_backbone_set_option(bb, LVMMED_BACKBONE_OPT_GRAD, 0));
  ck_assert_lvmmed_ok(ctx, lvmmed_backbone_forward(bb, x, 2, 40, 32, pooled, fmap));
  ck_assert(memcmp(r1.pooled, pooled, r1.npooled * sizeof(float)) == 0);
  ck_assert(memcmp(r1.fmap, fmap, r1.nfmap * sizeof(float)) == 0);
  ck_assert_int_eq(lvmmed_backbone_backward(bb, pooled, NULL, NULL), LVMMED_ERR_STATE);
  free(x);
  free(pooled);
  free(fmap);
  free_pass(&r1);
  free_pass(&r2);
  lvmmed_backbone_free(bb);
}
END_TEST

/* FROZEN: the packed weights give the same features; pointer writes show after re-setting it. */
START_TEST(test_frozen) {
  lvmmed_backbone *bb = make(ctx, LVMMED_ARCH_RESNET18, 3);
  size_t n = 2 * 3 * 40 * 40;
  float *x = randn(n, 8), a[2 * 512], b[2 * 512], c[2 * 512];
  ck_assert_lvmmed_ok(ctx, lvmmed_backbone_forward(bb, x, 2, 40, 40, a, NULL));
  ck_assert_lvmmed_ok(ctx, lvmmed_backbone_set_option(bb, LVMMED_BACKBONE_OPT_FROZEN, 1));
  ck_assert_lvmmed_ok(ctx, lvmmed_backbone_forward(bb, x, 2, 40, 40, b, NULL));
  ck_assert(relerr(b, a, 1024) < 1e-5);
  float *w;
  size_t idx;
  ck_assert_lvmmed_ok(ctx, lvmmed_backbone_find_tensor(bb, "layer2.0.conv1.weight", &idx));
  ck_assert_lvmmed_ok(ctx, lvmmed_backbone_tensor(bb, idx, NULL, NULL, NULL, NULL, NULL, &w, NULL));
  w[0] += 1.0f; /* not seen until FROZEN is set again */
  ck_assert_lvmmed_ok(ctx, lvmmed_backbone_forward(bb, x, 2, 40, 40, c, NULL));
  ck_assert(memcmp(b, c, sizeof b) == 0);
  ck_assert_lvmmed_ok(ctx, lvmmed_backbone_set_option(bb, LVMMED_BACKBONE_OPT_FROZEN, 1));
  ck_assert_lvmmed_ok(ctx, lvmmed_backbone_forward(bb, x, 2, 40, 40, c, NULL));
  ck_assert(memcmp(b, c, sizeof b) != 0);
  ck_assert_lvmmed_ok(ctx, lvmmed_backbone_set_option(bb, LVMMED_BACKBONE_OPT_FROZEN, 0));
  ck_assert_lvmmed_ok(ctx, lvmmed_backbone_forward(bb, x, 2, 40, 40, a, NULL));
  ck_assert(relerr(c, a, 1024) < 1e-5);
  free(x);
  lvmmed_backbone_free(bb);
}
END_TEST

/* Eval mode without gradients, FROZEN: every batch norm (+ residual, ReLU) runs fused
 * into its convolution's store, with the same values as the separate passes. */
START_TEST(test_frozen_eval_fused) {
  static const lvmmed_arch archs[] = {LVMMED_ARCH_RESNET18, SLOW_ARCH};
  for (size_t ai = 0; ai < 2; ai++) {
    lvmmed_backbone *bb = make(ctx, archs[ai], 3);
    size_t n = 2 * 3 * 48 * 40, dim, mh, mw;
    ck_assert_lvmmed_ok(ctx, lvmmed_backbone_map_shape(bb, 48, 40, &dim, &mh, &mw));
    size_t nmap = 2 * dim * mh * mw;
    float *x = randn(n, 11), *a = malloc(2 * dim * sizeof(float));
    float *b = malloc(2 * dim * sizeof(float)), *fa = malloc(nmap * sizeof(float));
    float *fb = malloc(nmap * sizeof(float));
    /* running statistics away from (0, 1), so the affine matters */
    ck_assert_lvmmed_ok(ctx, lvmmed_backbone_forward(bb, x, 2, 48, 40, a, NULL));
    ck_assert_lvmmed_ok(ctx, lvmmed_backbone_set_option(bb, LVMMED_BACKBONE_OPT_TRAIN, 0));
    ck_assert_lvmmed_ok(ctx, lvmmed_backbone_set_option(bb, LVMMED_BACKBONE_OPT_GRAD, 0));
    ck_assert_lvmmed_ok(ctx, lvmmed_backbone_forward(bb, x, 2, 48, 40, a, fa));
    ck_assert_lvmmed_ok(ctx, lvmmed_backbone_set_option(bb, LVMMED_BACKBONE_OPT_FROZEN, 1));
    ck_assert_lvmmed_ok(ctx, lvmmed_backbone_forward(bb, x, 2, 48, 40, b, fb));
    ck_assert(memcmp(a, b, 2 * dim * sizeof(float)) == 0);
    ck_assert(memcmp(fa, fb, nmap * sizeof(float)) == 0);
    /* with gradients on, the unfused path saves its state: the same values again */
    ck_assert_lvmmed_ok(ctx, lvmmed_backbone_set_option(bb, LVMMED_BACKBONE_OPT_GRAD, 1));
    ck_assert_lvmmed_ok(ctx, lvmmed_backbone_forward(bb, x, 2, 48, 40, b, fb));
    ck_assert(memcmp(a, b, 2 * dim * sizeof(float)) == 0);
    ck_assert(memcmp(fa, fb, nmap * sizeof(float)) == 0);
    free(x); free(a); free(b); free(fa); free(fb);
    lvmmed_backbone_free(bb);
  }
}
END_TEST

/* Packed weights depend on the shape (which kernel runs a convolution: at 64x64,
 * layer2's 8x8 maps take Winograd from batch 2 on, the direct kernel at batch 1), so
 * a frozen backbone repacks when the shape changes: after a batch-1 forward, a
 * batch-2 one still equals the same forward without packing. */
START_TEST(test_frozen_repacks_on_shape_change) {
  lvmmed_backbone *bb = make(ctx, LVMMED_ARCH_RESNET18, 3);
  size_t dim, mh, mw;
  ck_assert_lvmmed_ok(ctx, lvmmed_backbone_map_shape(bb, 64, 64, &dim, &mh, &mw));
  float *x = randn(2 * 3 * 64 * 64, 12), *a1 = malloc(dim * sizeof(float));
  float *a2 = malloc(2 * dim * sizeof(float)), *b = malloc(2 * dim * sizeof(float));
  ck_assert_lvmmed_ok(ctx, lvmmed_backbone_set_option(bb, LVMMED_BACKBONE_OPT_TRAIN, 0));
  ck_assert_lvmmed_ok(ctx, lvmmed_backbone_set_option(bb, LVMMED_BACKBONE_OPT_GRAD, 0));
  ck_assert_lvmmed_ok(ctx, lvmmed_backbone_forward(bb, x, 1, 64, 64, a1, NULL));
  ck_assert_lvmmed_ok(ctx, lvmmed_backbone_forward(bb, x, 2, 64, 64, a2, NULL));
  ck_assert_lvmmed_ok(ctx, lvmmed_backbone_set_option(bb, LVMMED_BACKBONE_OPT_FROZEN, 1));
  for (int round = 0; round < 2; round++) {
    ck_assert_lvmmed_ok(ctx, lvmmed_backbone_forward(bb, x, 1, 64, 64, b, NULL));
    ck_assert(memcmp(a1, b, dim * sizeof(float)) == 0);
    ck_assert_lvmmed_ok(ctx, lvmmed_backbone_forward(bb, x, 2, 64, 64, b, NULL));
    ck_assert(memcmp(a2, b, 2 * dim * sizeof(float)) == 0);
  }
  free(x); free(a1); free(a2); free(b);
  lvmmed_backbone_free(bb);
}
END_TEST

/* ----- weights I/O ----------------------------------------------------------- */

static char *temp_path(const char *tag) {
  static char buf[256];
  snprintf(buf, sizeof buf, "%s/lvmmed_test_%ld_%s.safetensors", P_tmpdir, (long)getpid(), tag);
  return buf;
}

static unsigned char *read_all(const char *path, size_t *size) {
  FILE *f = fopen(path, "rb");
  ck_assert_ptr_nonnull(f);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *b = malloc((size_t)n);
  ck_assert_uint_eq(fread(b, 1, (size_t)n, f), (size_t)n);
  fclose(f);
  *size = (size_t)n;
  return b;
}

START_TEST(test_save_load_round_trip) {
  lvmmed_backbone *a = make(ctx, LVMMED_ARCH_RESNET18, 3), *b = make(ctx, LVMMED_ARCH_RESNET18, 3);
  ck_assert_lvmmed_ok(ctx, lvmmed_backbone_init_weights(b, 99));
  /* a train step moves the running statistics and counters */
  pass_result r = run_pass(a, ctx, 2, 3, 32, 32, 1);
  free_pass(&r);
  const char *path = temp_path("rt");
  ck_assert_lvmmed_ok(ctx, lvmmed_backbone_save(a, path));
  size_t missing = 9, unexpected = 9;
  ck_assert_lvmmed_ok(ctx, lvmmed_backbone_load(b, path, LVMMED_LOAD_STRICT, &missing, &unexpected));
  ck_assert(missing == 0 && unexpected == 0);
  for (size_t i = 0; i < lvmmed_backbone_tensor_count(a); i++) {
    float *da, *db;
    size_t n;
    const char *name;
    ck_assert_lvmmed_ok(ctx, lvmmed_backbone_tensor(a, i, &name, NULL, NULL, NULL, &n, &da, NULL));
    ck_assert_lvmmed_ok(ctx, lvmmed_backbone_tensor(b, i, NULL, NULL, NULL, NULL, NULL, &db, NULL));
    ck_assert_msg(memcmp(da, db, n * sizeof(float)) == 0, "%s differs after the round trip", name);
  }
  /* the counters too: b saves a byte-identical file */
  const char *path2 = "";
  char second[256];
  snprintf(second, sizeof second, "%s", temp_path("rt2"));
  path2 = second;
  ck_assert_lvmmed_ok(ctx, lvmmed_backbone_save(b, path2));
  size_t s1, s2;
  unsigned char *f1 = read_all(path, &s1), *f2 = read_all(path2, &s2);
  ck_assert_uint_eq(s1, s2);
  ck_assert(memcmp(f1, f2, s1) == 0);
  ck_assert_ptr_nonnull(memmem(f1, s1, "\"bn1.num_batches_tracked\":{\"dtype\":\"I64\",\"shape\":[]", 50));
  /* an RGB file into a 1-channel backbone: conv1 summed over channels */
  lvmmed_backbone *g = make(ctx, LVMMED_ARCH_RESNET18, 1);
  ck_assert_lvmmed_ok(ctx, lvmmed_backbone_load_memory(g, f1, s1, LVMMED_LOAD_STRICT, NULL, NULL));
  float *wa, *wg;
  ck_assert_lvmmed_ok(ctx, lvmmed_backbone_tensor(a, 0, NULL, NULL, NULL, NULL, NULL, &wa, NULL));
  ck_assert_lvmmed_ok(ctx, lvmmed_backbone_tensor(g, 0, NULL, NULL, NULL, NULL, NULL, &wg, NULL));
  for (size_t o = 0; o < 64; o++)
    for (size_t p = 0; p < 49; p++) {
      float s = wa[(o * 3 + 0) * 49 + p] + wa[(o * 3 + 1) * 49 + p] + wa[(o * 3 + 2) * 49 + p];
      ck_assert(fabsf(wg[o * 49 + p] - s) <= 1e-6f * (1.0f + fabsf(s)));
    }
  /* a resnet18 file does not fit a resnet50: shape error, nothing changed */
  lvmmed_backbone *big = make(ctx, LVMMED_ARCH_RESNET50, 3);
  ck_assert_int_eq(lvmmed_backbone_load_memory(big, f1, s1, 0, NULL, NULL), LVMMED_ERR_SHAPE);
  ck_assert_ptr_nonnull(strstr(lvmmed_ctx_last_error(ctx), "layer1.0.conv1.weight"));
  ck_assert_int_eq(lvmmed_backbone_load(a, "/nonexistent/x.safetensors", 0, NULL, NULL),
                   LVMMED_ERR_IO);
  remove(path);
  remove(path2);
  free(f1);
  free(f2);
  lvmmed_backbone_free(big);
  lvmmed_backbone_free(g);
  lvmmed_backbone_free(a);
  lvmmed_backbone_free(b);
}
END_TEST

/* lvmmed_backbone_create_from_file: architecture from metadata or tensor names, projector
 * shape from the file, "lvmmed.*" tensors skipped without a warning. */
static int warnings;
static void count_warnings(void *user, lvmmed_log_level level, const char *message) {
  (void)user;
  (void)message;
  if (level >= LVMMED_LOG_WARN) warnings++;
}

/* Writes bb's tensors (all but the one called skip) plus extra entries, without metadata
 * unless meta (key, value) is given. */
static void write_like(lvmmed_backbone *bb, const char *path, const char *skip,
                       const lvmmed_st_entry *extra, size_t nextra, const char *const *meta) {
  size_t n = lvmmed_backbone_tensor_count(bb), k = 0;
  lvmmed_st_entry *e = calloc(n + nextra, sizeof *e);
  ck_assert_ptr_nonnull(e);
  for (size_t i = 0; i < n; i++) {
    size_t ndim, shape[LVMMED_TENSOR_MAX_DIMS];
    float *data;
    const char *name;
    ck_assert_lvmmed_ok(ctx, lvmmed_backbone_tensor(bb, i, &name, NULL, &ndim, shape, NULL, &data, NULL));
    if (skip && !strcmp(name, skip)) continue;
    e[k].name = name;
    e[k].ndim = ndim;
    memcpy(e[k].shape, shape, ndim * sizeof shape[0]);
    e[k].f32 = data;
    k++;
  }
  for (size_t i = 0; i < nextra; i++) e[k++] = extra[i];
  ck_assert_lvmmed_ok(ctx, lvmmed__st_write(ctx, path, e, k, meta, meta ? 1 : 0));
  free(e);
}

static void assert_same_tensors(lvmmed_backbone *a, lvmmed_backbone *b) {
  ck_assert_uint_eq(lvmmed_backbone_tensor_count(a), lvmmed_backbone_tensor_count(b));
  for (size_t i = 0; i < lvmmed_backbone_tensor_count(a); i++) {
    const char *na, *nb;
    size_t n;
    float *da, *db;
    ck_assert_lvmmed_ok(ctx, lvmmed_backbone_tensor(a, i, &na, NULL, NULL, NULL, &n, &da, NULL));
    ck_assert_lvmmed_ok(ctx, lvmmed_backbone_tensor(b, i, &nb, NULL, NULL, NULL, NULL, &db, NULL));
    ck_assert_str_eq(na, nb);
    ck_assert_msg(memcmp(da, db, n * sizeof(float)) == 0, "%s differs", na);
  }
}

START_TEST(test_create_from_file) {
  char path[256];
  snprintf(path, sizeof path, "%s", temp_path("cff"));
  ck_assert_lvmmed_ok(ctx, lvmmed_ctx_set_option(ctx, LVMMED_CTX_OPT_LOG_LEVEL, LVMMED_LOG_DEBUG));
  ck_assert_lvmmed_ok(ctx, lvmmed_ctx_set_log_callback(ctx, count_warnings, NULL));
  /* 1. lvmmed_backbone_save's file: metadata names the arch; two-layer projector */
  lvmmed_backbone *a = make(ctx, LVMMED_ARCH_RESNET18, 3), *b = NULL;
  ck_assert_lvmmed_ok(ctx, lvmmed_backbone_set_option(a, LVMMED_BACKBONE_OPT_PROJ_HIDDEN, 32));
  ck_assert_lvmmed_ok(ctx, lvmmed_backbone_set_option(a, LVMMED_BACKBONE_OPT_PROJ_OUT, 16));
  ck_assert_lvmmed_ok(ctx, lvmmed_backbone_save(a, path));
  warnings = 0;
  ck_assert_lvmmed_ok(ctx, lvmmed_backbone_create_from_file(ctx, path, 3, &b));
  ck_assert_int_eq(warnings, 0);
  lvmmed_arch arch;
  int64_t v;
  ck_assert_lvmmed_ok(ctx, lvmmed_backbone_info(b, &arch, NULL, NULL));
  ck_assert_int_eq(arch, LVMMED_ARCH_RESNET18);
  ck_assert_uint_eq(lvmmed_backbone_projector_dim(b), 16);
  ck_assert_lvmmed_ok(ctx, lvmmed_backbone_get_option(b, LVMMED_BACKBONE_OPT_PROJ_HIDDEN, &v));
  ck_assert_int_eq(v, 32);
  ck_assert_lvmmed_ok(ctx, lvmmed_backbone_get_option(b, LVMMED_BACKBONE_OPT_TRAIN, &v));
  ck_assert_int_eq(v, 0);
  assert_same_tensors(a, b);
  lvmmed_backbone_free(b);
  b = NULL;
  ck_assert_int_eq(lvmmed_backbone_create_from_file(ctx, path, 2, &b), LVMMED_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_null(b);

  /* 2. no metadata (torchvision-converted): resnet18 by its names; no projector; a
   *    checkpoint's "lvmmed.*" state is skipped silently */
  ck_assert_lvmmed_ok(ctx, lvmmed_backbone_set_option(a, LVMMED_BACKBONE_OPT_PROJ_OUT, 0));
  float moment[4] = {1, 2, 3, 4};
  lvmmed_st_entry extra[2] = {{"lvmmed.optim.exp_avg.conv1.weight", 1, {4}, moment, 0},
                              {"lvmmed.step", 0, {0}, NULL, 12}};
  write_like(a, path, NULL, extra, 2, NULL);
  warnings = 0;
  ck_assert_lvmmed_ok(ctx, lvmmed_backbone_create_from_file(ctx, path, 3, &b));
  ck_assert_int_eq(warnings, 0);
  ck_assert_lvmmed_ok(ctx, lvmmed_backbone_info(b, &arch, NULL, NULL));
  ck_assert_int_eq(arch, LVMMED_ARCH_RESNET18);
  ck_assert_uint_eq(lvmmed_backbone_projector_dim(b), 0);
  assert_same_tensors(a, b);
  size_t missing = 9, unexpected = 9;
  ck_assert_lvmmed_ok(ctx, lvmmed_backbone_load(b, path, LVMMED_LOAD_STRICT, &missing, &unexpected));
  ck_assert(missing == 0 && unexpected == 0 && warnings == 0);
  lvmmed_backbone_free(b);
  b = NULL;
  /* a missing backbone tensor fails (named in the log) */
  write_like(a, path, "layer2.0.bn1.weight", NULL, 0, NULL);
  warnings = 0;
  ck_assert_int_eq(lvmmed_backbone_create_from_file(ctx, path, 3, &b), LVMMED_ERR_NOT_FOUND);
  ck_assert_ptr_null(b);
  ck_assert_int_ge(warnings, 1);
  ck_assert_ptr_nonnull(strstr(lvmmed_ctx_last_error(ctx), "resnet18"));
  lvmmed_backbone_free(a);

  /* 3. inference of resnet34 (a sixth layer3 block) and resnet50 (bottleneck conv3), seen
   *    in the shape error of a dummy conv1 */
  float one = 1.0f;
  lvmmed_st_entry tiny[3] = {{"conv1.weight", 1, {1}, &one, 0},
                             {"layer3.5.conv1.weight", 1, {1}, &one, 0},
                             {"layer1.0.conv3.weight", 1, {1}, &one, 0}};
  const char *expect[3] = {"resnet18", "resnet34", "resnet50"};
  for (size_t n = 1; n <= 3; n++) {
    ck_assert_lvmmed_ok(ctx, lvmmed__st_write(ctx, path, tiny, n, NULL, 0));
    ck_assert_int_eq(lvmmed_backbone_create_from_file(ctx, path, 3, &b), LVMMED_ERR_SHAPE);
    ck_assert_ptr_null(b);
    ck_assert_msg(strstr(lvmmed_ctx_last_error(ctx), expect[n - 1]), "%s", lvmmed_ctx_last_error(ctx));
  }
  /* 4. errors */
  const char *bad_meta[2] = {"lvmmed_arch", "vgg16"};
  ck_assert_lvmmed_ok(ctx, lvmmed__st_write(ctx, path, tiny, 1, bad_meta, 1));
  ck_assert_int_eq(lvmmed_backbone_create_from_file(ctx, path, 3, &b), LVMMED_ERR_FORMAT);
  ck_assert_ptr_nonnull(strstr(lvmmed_ctx_last_error(ctx), "vgg16"));
  ck_assert_lvmmed_ok(ctx, lvmmed__st_write(ctx, path, extra, 1, NULL, 0));
  ck_assert_int_eq(lvmmed_backbone_create_from_file(ctx, path, 3, &b), LVMMED_ERR_FORMAT);
  ck_assert_ptr_nonnull(strstr(lvmmed_ctx_last_error(ctx), "conv1.weight"));
  lvmmed_st_entry proj1[2] = {{"conv1.weight", 1, {1}, &one, 0}, {"projector.0.weight", 1, {1}, &one, 0}};
  ck_assert_lvmmed_ok(ctx, lvmmed__st_write(ctx, path, proj1, 2, NULL, 0));
  ck_assert_int_eq(lvmmed_backbone_create_from_file(ctx, path, 3, &b), LVMMED_ERR_SHAPE);
  ck_assert_ptr_nonnull(strstr(lvmmed_ctx_last_error(ctx), "projector.3.weight"));
  FILE *junk = fopen(path, "wb");
  ck_assert_ptr_nonnull(junk);
  fputs("junk", junk); /* shorter than the 8-byte header length */
  fclose(junk);
  ck_assert_int_eq(lvmmed_backbone_create_from_file(ctx, path, 3, &b), LVMMED_ERR_FORMAT);
  ck_assert_ptr_nonnull(strstr(lvmmed_ctx_last_error(ctx), path));
  remove(path);
  ck_assert_int_eq(lvmmed_backbone_create_from_file(ctx, path, 3, &b), LVMMED_ERR_IO);
  ck_assert_ptr_null(b);
  ck_assert_int_eq(lvmmed_backbone_create_from_file(ctx, NULL, 3, &b), LVMMED_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(lvmmed_backbone_create_from_file(ctx, path, 3, NULL), LVMMED_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(lvmmed_backbone_create_from_file(NULL, path, 3, &b), LVMMED_ERR_INVALID_ARGUMENT);
  lvmmed_ctx_set_log_callback(ctx, NULL, NULL);
}
END_TEST

/* A small valid file: header JSON text + data bytes. */
static unsigned char *make_file(const char *json, size_t data_bytes, size_t *size) {
  size_t hl = strlen(json);
  *size = 8 + hl + data_bytes;
  unsigned char *b = calloc(*size, 1);
  for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)hl >> (8 * i));
  memcpy(b + 8, json, hl);
  for (size_t i = 0; i < data_bytes; i++) b[8 + hl + i] = (unsigned char)(i * 37);
  return b;
}

START_TEST(test_hostile_safetensors) {
  static const struct {
    const char *json;
    size_t data;
    const char *why; /* a piece of the expected message */
  } bad[] = {
      {"[1,2]", 0, "not a JSON object"},
      {"{\"a\":", 0, "not valid JSON"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
       "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "not valid JSON"},
      {"{\"a\":3}", 0, "entry is not an object"},
      {"{\"a\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "unknown dtype"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "negative"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4, "non-integer"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4,
       "too many dimensions"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]}}", 4,
       "overflows"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, "outside the data"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, "outside the data"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 8, "disagrees"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8, "pair"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
       "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, "overlap"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "overlap"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8, "cover"},
      {"{\"__metadata__\":{\"k\":1}}", 0, "not a string"},
      {"{\"\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "name of 0 bytes"},
  };
  lvmmed_backbone *bb = make(ctx, LVMMED_ARCH_RESNET18, 3);
  float *w0;
  ck_assert_lvmmed_ok(ctx, lvmmed_backbone_tensor(bb, 0, NULL, NULL, NULL, NULL, NULL, &w0, NULL));
  float first = w0[0];
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    size_t size;
    unsigned char *f = make_file(bad[i].json, bad[i].data, &size);
    lvmmed_status st = lvmmed_backbone_load_memory(bb, f, size, 0, NULL, NULL);
    ck_assert_msg(st == LVMMED_ERR_FORMAT, "case %zu: status %s", i, lvmmed_status_name(st));
    ck_assert_msg(strstr(lvmmed_ctx_last_error(ctx), bad[i].why), "case %zu: message \"%s\"", i,
                  lvmmed_ctx_last_error(ctx));
    free(f);
  }
  /* header length: past the end, and above the limit */
  unsigned char tiny[16] = {200, 0, 0, 0, 0, 0, 0, 0, '{', '}'};
  ck_assert_int_eq(lvmmed_backbone_load_memory(bb, tiny, 10, 0, NULL, NULL), LVMMED_ERR_FORMAT);
  tiny[0] = 0;
  tiny[4] = 1; /* 4 GiB */
  ck_assert_int_eq(lvmmed_backbone_load_memory(bb, tiny, 16, 0, NULL, NULL), LVMMED_ERR_LIMIT);
  ck_assert_int_eq(lvmmed_backbone_load_memory(bb, tiny, 7, 0, NULL, NULL), LVMMED_ERR_FORMAT);
  /* a valid file with a tensor of the wrong dtype for the backbone */
  size_t size;
  unsigned char *f = make_file("{\"conv1.weight\":{\"dtype\":\"I32\",\"shape\":[1],"
                               "\"data_offsets\":[0,4]}}", 4, &size);
  ck_assert_int_eq(lvmmed_backbone_load_memory(bb, f, size, 0, NULL, NULL), LVMMED_ERR_FORMAT);
  ck_assert_ptr_nonnull(strstr(lvmmed_ctx_last_error(ctx), "conv1.weight"));
  free(f);
  /* every prefix of a valid file fails cleanly; the whole file parses */
  const char *ok = "{\"__metadata__\":{\"format\":\"pt\"},"
                   "\"x\":{\"dtype\":\"BF16\",\"shape\":[2,3],\"data_offsets\":[0,12]},"
                   "\"y\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[12,20]}}";
  f = make_file(ok, 20, &size);
  for (size_t n = 0; n < size; n++) {
    lvmmed_st_file sf;
    ck_assert_int_ne(lvmmed__st_parse(ctx, f, n, "prefix", &sf), LVMMED_OK);
  }
  lvmmed_st_file sf;
  ck_assert_lvmmed_ok(ctx, lvmmed__st_parse(ctx, f, size, "ok", &sf));
  ck_assert_uint_eq(sf.count, 2);
  ck_assert_ptr_nonnull(lvmmed__st_find(&sf, "y"));
  ck_assert_uint_eq(lvmmed__st_find(&sf, "x")->numel, 6);
  lvmmed__st_free(ctx, &sf);
  size_t missing, unexpected;
  ck_assert_lvmmed_ok(ctx, lvmmed_backbone_load_memory(bb, f, size, 0, &missing, &unexpected));
  ck_assert_uint_eq(unexpected, 2);
  ck_assert_uint_eq(missing, lvmmed_backbone_tensor_count(bb));
  ck_assert_int_eq(lvmmed_backbone_load_memory(bb, f, size, LVMMED_LOAD_STRICT, NULL, NULL),
                   LVMMED_ERR_NOT_FOUND);
  free(f);
  ck_assert(w0[0] == first); /* nothing was ever loaded */
  lvmmed_backbone_free(bb);
}
END_TEST

static Suite *backbone_suite(void) {
  Suite *s = suite_create("backbone");
  TCase *api = tcase_create("api");
  tcase_add_checked_fixture(api, setup, teardown);
  tcase_add_test(api, test_create_errors);
  tcase_add_test(api, test_options);
  tcase_add_test(api, test_tensor_names);
  tcase_add_test(api, test_input_validation);
  suite_add_tcase(s, api);
  TCase *num = tcase_create("numerics");
  tcase_add_checked_fixture(num, setup, teardown);
  tcase_set_timeout(num, 120);
  tcase_add_test(num, test_backends_agree);
  tcase_add_test(num, test_determinism_and_nograd);
  tcase_add_test(num, test_frozen);
  tcase_add_test(num, test_frozen_eval_fused);
  tcase_add_test(num, test_frozen_repacks_on_shape_change);
  suite_add_tcase(s, num);
  TCase *io = tcase_create("weights");
  tcase_add_checked_fixture(io, setup, teardown);
  tcase_set_timeout(io, 60);
  tcase_add_test(io, test_save_load_round_trip);
  tcase_add_test(io, test_hostile_safetensors);
  tcase_add_test(io, test_create_from_file);
  suite_add_tcase(s, io);
  return s;
}

int main(void) { return run_suite(backbone_suite()); }
