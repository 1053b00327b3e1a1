/* Direct (implicit-GEMM) convolution with AVX-512, see conv_direct.h. */
#include "lvmmed_config.h"

#include <stddef.h>
#include <string.h>

#include "backend/cpu/conv_direct.h"
#include "backend/cpu/rowops.h"
#include "core/core.h"
#include "core/pool.h"

#define MR LVMMED_DIRECT_MR
#define NR LVMMED_DIRECT_NR
#define MAX_TAPS 49 /* kernels up to 7 × 7 */
#define KB 128      /* K steps summed in registers before they join the running sum */

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define DIRECT_X86 1
#define AVX512 __attribute__((target("avx512f")))
#else
#define DIRECT_X86 0
#endif

static size_t blocks_of(size_t n, size_t b) { return (n + b - 1) / b; }

int lvmmed__direct_supported(const lvmmed_conv2d *c) {
#if DIRECT_X86
  const lvmmed_conv_geom *g = &c->g;
  return __builtin_cpu_supports("avx512f") && g->dilation_h == 1 && g->dilation_w == 1 &&
         g->kernel_h * g->kernel_w <= MAX_TAPS && g->channels <= LVMMED_DIRECT_MAX_CIN &&
         g->channels >= 1 && c->out_channels >= 1;
#else
  (void)c;
  return 0;
#endif
}

size_t lvmmed__direct_packed_floats(const lvmmed_conv2d *c) {
  size_t k = c->g.channels * c->g.kernel_h * c->g.kernel_w;
  return blocks_of(c->out_channels, NR) * k * NR;
}

/* Panel cb holds wp[(cb·K + t·Cin + ci)·NR + j] = w[cb·NR + j][ci][t], zero past Cout:
 * a gather of the 32 output channels (stride K) per (t, ci), parallel over panels. */
typedef struct pack_job {
  const lvmmed_conv2d *c;
  const float *w;
  float *wp;
  size_t cin, taps, cout;
  ptrdiff_t src_ci, src_t, src_co; /* element strides of the source */
} pack_job;

static void pack_scalar(const pack_job *p, size_t cb) {
  size_t k = p->cin * p->taps;
  float *panel = p->wp + cb * k * NR;
  for (size_t t = 0; t < p->taps; t++)
    for (size_t ci = 0; ci < p->cin; ci++)
      for (size_t j = 0; j < NR; j++) {
        size_t co = cb * NR + j;
        panel[(t * p->cin + ci) * NR + j] =
            co < p->cout ? p->w[(ptrdiff_t)co * p->src_co + (ptrdiff_t)ci * p->src_ci +
                                (ptrdiff_t)t * p->src_t]
                         : 0.0f;
      }
}

#if DIRECT_X86
AVX512 static void pack_gather(const pack_job *p, size_t cb) {
  size_t k = p->cin * p->taps;
  float *panel = p->wp + cb * k * NR;
  size_t left = p->cout - cb * NR;
  __mmask16 m0, m1;
  lvmmed__block_masks(left, &m0, &m1);
  __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                   _mm512_set1_epi32((int)p->src_co));
  const float *base = p->w + (ptrdiff_t)(cb * NR) * p->src_co;
  for (size_t t = 0; t < p->taps; t++)
    for (size_t ci = 0; ci < p->cin; ci++) {
      const float *s0 = base + (ptrdiff_t)ci * p->src_ci + (ptrdiff_t)t * p->src_t;
      const float *s1 = s0 + 16 * p->src_co;
      float *d = panel + (t * p->cin + ci) * NR;
      _mm512_storeu_ps(d, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m0, idx, s0, 4));
      __m512 hi = m1 ? _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m1, idx, s1, 4)
                     : _mm512_setzero_ps();
      _mm512_storeu_ps(d + 16, hi);
    }
}
#endif

static void pack_range(void *arg, size_t begin, size_t end, unsigned chunk) {
  const pack_job *p = arg;
  (void)chunk;
  for (size_t cb = begin; cb < end; cb++) {
#if DIRECT_X86
    /* 32-bit gather offsets: fine for any weight tensor below 2^31 / 4 floats a row */
    if (p->src_co * 31 < ((ptrdiff_t)1 << 31) / (ptrdiff_t)sizeof(float)) {
      pack_gather(p, cb);
      continue;
    }
#endif
    pack_scalar(p, cb);
  }
}

static void pack_run(lvmmed_ctx *ctx, pack_job *p) {
  lvmmed__parallel_for(ctx, blocks_of(p->cout, NR), 1, pack_range, p);
}

void lvmmed__direct_pack(lvmmed_ctx *ctx, const lvmmed_conv2d *c, const float *w, float *wp) {
  size_t taps = c->g.kernel_h * c->g.kernel_w;
  pack_job p = {c, w, wp, c->g.channels, taps, c->out_channels, (ptrdiff_t)taps, 1,
                (ptrdiff_t)(c->g.channels * taps)};
  pack_run(ctx, &p);
}

/* The stride-1 adjoint of c into *t; 0 if c has none the kernel runs. */
static int adjoint_desc(const lvmmed_conv2d *c, lvmmed_conv2d *t) {
  const lvmmed_conv_geom *g = &c->g;
  if (g->stride_h != 1 || g->stride_w != 1 || g->pad_h >= g->kernel_h || g->pad_w >= g->kernel_w)
    return 0;
  /* dx[iy] = Σ_kh dy[iy + pad - kh] w[kh] = Σ_kh' dy[iy - (K-1-pad) + kh'] w[K-1-kh'] */
  memset(t, 0, sizeof *t);
  t->batch = c->batch;
  t->out_channels = g->channels;
  t->g.channels = c->out_channels;
  t->g.height = g->out_h;
  t->g.width = g->out_w;
  t->g.kernel_h = g->kernel_h;
  t->g.kernel_w = g->kernel_w;
  t->g.stride_h = t->g.stride_w = 1;
  t->g.dilation_h = t->g.dilation_w = 1;
  t->g.pad_h = g->kernel_h - 1 - g->pad_h;
  t->g.pad_w = g->kernel_w - 1 - g->pad_w;
  return lvmmed__conv_geom_finish(&t->g) && t->g.out_h == g->height && t->g.out_w == g->width &&
         lvmmed__direct_supported(t);
}

size_t lvmmed__direct_adjoint_floats(const lvmmed_conv2d *c) {
  lvmmed_conv2d t;
  return adjoint_desc(c, &t) ? lvmmed__direct_packed_floats(&t) + lvmmed__direct_ws(&t) : 0;
}

int lvmmed__direct_adjoint(lvmmed_ctx *ctx, const lvmmed_conv2d *c, const float *w,
                           lvmmed_conv2d *t, float *wp) {
  const lvmmed_conv_geom *g = &c->g;
  if (!adjoint_desc(c, t)) return 0;
  /* adjoint panel element (tap t', co) of output channel ci = w[co][ci][flip(t')]:
   * flip(t') = taps - 1 - t' for a kernel flipped in both axes */
  size_t taps = g->kernel_h * g->kernel_w, cin = g->channels;
  pack_job p = {t, w + (taps - 1), wp, c->out_channels, taps, cin, (ptrdiff_t)(cin * taps), -1,
                (ptrdiff_t)taps};
  pack_run(ctx, &p);
  return 1;
}

#if DIRECT_X86
/* One K step of a tile: c0/c1[r] += a_r[ci] · (b0, b1) for the MR = 12 pixel rows. */
#define ROW(r, a)                                                 \
  do {                                                            \
    __m512 v = _mm512_set1_ps(a[ci]);                             \
    c0[r] = _mm512_fmadd_ps(v, b0, c0[r]);                        \
    c1[r] = _mm512_fmadd_ps(v, b1, c1[r]);                        \
  } while (0)
#define TILE_STEP()                                                                   \
  do {                                                                                \
    ROW(0, a0); ROW(1, a1); ROW(2, a2); ROW(3, a3); ROW(4, a4); ROW(5, a5);           \
    ROW(6, a6); ROW(7, a7); ROW(8, a8); ROW(9, a9); ROW(10, a10); ROW(11, a11);       \
  } while (0)

/* Writes (or adds, when accumulate) nrow rows of ncol channels of a finished tile;
 * with an affine, each value v becomes v·scale + shift (+ residual), then max(·, 0)
 * if relu, through the vector step of the CPU backend's channel_affine, so the
 * fused result is bit-identical to the two passes. */
AVX512 static inline void store_tile(const float (*out)[NR], const lvmmed_tile_dst *d) {
  __mmask16 m0, m1;
  lvmmed__block_masks(d->ncol, &m0, &m1);
  const lvmmed_direct_affine *ep = d->affine;
  const __m512 zero = _mm512_setzero_ps(), one = _mm512_set1_ps(1.0f);
  __m512 s0 = one, s1 = one, t0 = zero, t1 = zero;
  if (ep && ep->scale) {
    s0 = _mm512_maskz_loadu_ps(m0, ep->scale + d->co0);
    s1 = _mm512_maskz_loadu_ps(m1, ep->scale + d->co0 + 16);
  }
  if (ep && ep->shift) {
    t0 = _mm512_maskz_loadu_ps(m0, ep->shift + d->co0);
    t1 = _mm512_maskz_loadu_ps(m1, ep->shift + d->co0 + 16);
  }
  for (size_t r = 0; r < d->nrow; r++) {
    float *o = d->y + r * d->ldy;
    __m512 v0 = _mm512_loadu_ps(out[r]), v1 = _mm512_loadu_ps(out[r] + 16);
    if (d->accumulate) {
      v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, o));
      v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, o + 16));
    }
    if (ep) {
      const float *res = d->residual ? d->residual + r * d->ldy : NULL;
      v0 = lvmmed__affine_vec(v0, s0, t0, res, m0, ep->relu);
      v1 = lvmmed__affine_vec(v1, s1, t1, res ? res + 16 : NULL, m1, ep->relu);
    }
    _mm512_mask_storeu_ps(o, m0, v0);
    _mm512_mask_storeu_ps(o + 16, m1, v1);
  }
}

/* One MR × NR tile: rows[t][r] is the input vector (cin floats) output pixel r
 * reads at tap t (zeros in the padding). Stores nrow rows of ncol channels. */
AVX512 static void tile_blocked(size_t taps, size_t cin, const float *const *rows,
                                const float *bp, const lvmmed_tile_dst *d) {
  /* Blocked sum: registers accumulate about KB steps of K, then are added into out,
   * so the rounding error grows with KB + K/KB instead of K (K reaches 4608). */
  float out[MR][NR];
  __m512 c0[MR], c1[MR];
#pragma GCC unroll 12
  for (int r = 0; r < MR; r++) c0[r] = c1[r] = _mm512_setzero_ps();
  size_t steps = 0;
  int first = 1; /* the first flush stores, later ones add */
  for (size_t t = 0; t < taps; t++) {
    const float *const *rp = rows + t * MR;
    const float *a0 = rp[0], *a1 = rp[1], *a2 = rp[2], *a3 = rp[3], *a4 = rp[4], *a5 = rp[5];
    const float *a6 = rp[6], *a7 = rp[7], *a8 = rp[8], *a9 = rp[9], *a10 = rp[10], *a11 = rp[11];
    for (size_t k0 = 0; k0 < cin; k0 += KB) {
      size_t k1 = k0 + KB < cin ? k0 + KB : cin;
      for (size_t ci = k0; ci < k1; ci++, bp += NR) {
        /* a panel larger than L1 streams from L2: fetch it 8 steps ahead */
        _mm_prefetch((const char *)(bp + 8 * NR), _MM_HINT_T0);
        _mm_prefetch((const char *)(bp + 8 * NR + 16), _MM_HINT_T0);
        __m512 b0 = _mm512_loadu_ps(bp), b1 = _mm512_loadu_ps(bp + 16);
        TILE_STEP();
      }
      steps += k1 - k0;
      if (steps >= KB || (t + 1 == taps && k1 == cin)) {
        if (first) {
#pragma GCC unroll 12
          for (int r = 0; r < MR; r++) {
            _mm512_storeu_ps(out[r], c0[r]);
            _mm512_storeu_ps(out[r] + 16, c1[r]);
            c0[r] = c1[r] = _mm512_setzero_ps();
          }
        } else {
#pragma GCC unroll 12
          for (int r = 0; r < MR; r++) {
            _mm512_storeu_ps(out[r], _mm512_add_ps(_mm512_loadu_ps(out[r]), c0[r]));
            _mm512_storeu_ps(out[r] + 16, _mm512_add_ps(_mm512_loadu_ps(out[r] + 16), c1[r]));
            c0[r] = c1[r] = _mm512_setzero_ps();
          }
        }
        first = 0;
        steps = 0;
      }
    }
  }
  store_tile((const float (*)[NR])out, d);
}

/* K <= 2·KB: one register chain (the panel fits L1). */
AVX512 static void tile_simple(size_t taps, size_t cin, const float *const *rows,
                               const float *bp, const lvmmed_tile_dst *d) {
  __m512 c0[MR], c1[MR];
#pragma GCC unroll 12
  for (int r = 0; r < MR; r++) c0[r] = c1[r] = _mm512_setzero_ps();
  for (size_t t = 0; t < taps; t++) {
    const float *const *rp = rows + t * MR;
    const float *a0 = rp[0], *a1 = rp[1], *a2 = rp[2], *a3 = rp[3], *a4 = rp[4], *a5 = rp[5];
    const float *a6 = rp[6], *a7 = rp[7], *a8 = rp[8], *a9 = rp[9], *a10 = rp[10], *a11 = rp[11];
    for (size_t ci = 0; ci < cin; ci++, bp += NR) {
      __m512 b0 = _mm512_loadu_ps(bp), b1 = _mm512_loadu_ps(bp + 16);
      TILE_STEP();
    }
  }
  float out[MR][NR]; /* constant-index copy: see wtile */
#pragma GCC unroll 12
  for (int r = 0; r < MR; r++) {
    _mm512_storeu_ps(out[r], c0[r]);
    _mm512_storeu_ps(out[r] + 16, c1[r]);
  }
  store_tile((const float (*)[NR])out, d);
}
#undef TILE_STEP
#undef ROW

AVX512 static void tile(size_t taps, size_t cin, const float *const *rows, const float *bp,
                        const lvmmed_tile_dst *d) {
  /* K <= 2·KB (the stem's 147, small 1x1 layers): one register chain, and a panel
   * of at most 32 KB stays in L1, so neither blocking nor prefetching pays. */
  if (taps * cin > 2 * KB)
    tile_blocked(taps, cin, rows, bp, d);
  else
    tile_simple(taps, cin, rows, bp, d);
}
#endif

void lvmmed__direct_tile(size_t segs, size_t seg, const float *const *rows, const float *panel,
                         const lvmmed_tile_dst *d) {
#if DIRECT_X86
  tile(segs, seg, rows, panel, d);
#else
  (void)segs;
  (void)seg;
  (void)rows;
  (void)panel;
  (void)d;
#endif
}

typedef struct direct_job {
  const lvmmed_conv2d *c;
  const float *x, *wp; /* x: the zero-padded input (pad_h/pad_w already applied) */
  float *y;
  size_t hp, wpad;     /* padded height and width */
  size_t tiles, cblocks, cparts, pparts;
  int accumulate;
  const lvmmed_direct_affine *affine;
  int tapwise; /* x not padded: one row pointer per (pixel, tap), zeros in the padding */
} direct_job;

/* What a tap in the padding reads: LVMMED_DIRECT_MAX_CIN zeros. */
static const float zero_row[LVMMED_DIRECT_MAX_CIN];

/* Taps of a kernel that runs tap by tap on the unpadded input rather than on a
 * padded copy. Whole kernel rows of consecutive floats are longer K runs, but
 * the copy costs a read and a write of the input; with C >= 16 a tap's run is
 * long enough to skip it. */
#define TAPWISE_MAX_TAPS 9
#define TAPWISE_MIN_CIN 16

static int use_tapwise(const lvmmed_conv_geom *g) {
  return (g->pad_h || g->pad_w) && g->kernel_h * g->kernel_w <= TAPWISE_MAX_TAPS &&
         g->channels >= TAPWISE_MIN_CIN;
}

/* Steps (image n, output row oy, column ox) to the next output pixel. */
static void next_pixel(const lvmmed_conv_geom *g, size_t *n, size_t *oy, size_t *ox) {
  if (++*ox < g->out_w) return;
  *ox = 0;
  if (++*oy < g->out_h) return;
  *oy = 0;
  ++*n;
}

#define TILE_BLOCK 32 /* tiles whose input rows stay cache-resident across channel blocks */
#define DIRECT_PARTS 4 /* work items per thread */

/* Work item u = (channel part, pixel part): channel blocks [cb0, cb1) × tiles
 * [t0, t1). Inside, blocks of TILE_BLOCK tiles (their input rows in L2) meet
 * every channel block of the part. With the input padded, the kw taps of one
 * kernel row read kw·C consecutive floats: one pointer per (pixel, kernel row). */
static void direct_range(void *arg, size_t begin, size_t end, unsigned chunk) {
#if DIRECT_X86
  const direct_job *j = arg;
  const lvmmed_conv2d *c = j->c;
  const lvmmed_conv_geom *g = &c->g;
  size_t cin = g->channels, kw = g->kernel_w, kh = g->kernel_h, k = kw * cin * kh;
  /* the kernel's view: nseg row segments per pixel of seg consecutive floats each */
  size_t nseg = j->tapwise ? kh * kw : kh, seg = j->tapwise ? cin : kw * cin;
  size_t cout = c->out_channels, pix = g->out_h * g->out_w, total = c->batch * pix;
  const float *rows[TILE_BLOCK * 9 * MR];
  (void)chunk;
  for (size_t u = begin; u < end; u++) {
    size_t cpart = u / j->pparts, ppart = u % j->pparts;
    size_t cb0 = j->cblocks * cpart / j->cparts, cb1 = j->cblocks * (cpart + 1) / j->cparts;
    size_t t0 = j->tiles * ppart / j->pparts, t1 = j->tiles * (ppart + 1) / j->pparts;
    if (t0 >= t1 || cb0 >= cb1) continue;
    /* position of the first pixel of tile t0, then stepped pixel by pixel */
    size_t p = t0 * MR, n = p / pix, q = p % pix, oy = q / g->out_w, ox = q % g->out_w;
    for (size_t tb = t0; tb < t1; tb += TILE_BLOCK) {
      size_t te = tb + TILE_BLOCK < t1 ? tb + TILE_BLOCK : t1;
      for (size_t tl = tb; tl < te; tl++) {
        const float **rt = rows + (tl - tb) * nseg * MR;
        size_t nrow = total - tl * MR < MR ? total - tl * MR : MR;
        for (size_t r = 0; r < MR; r++) {
          if (r < nrow) {
            if (j->tapwise) {
              /* input position of tap (ki, kj), offset by the padding so it stays unsigned */
              size_t y0 = oy * g->stride_h, x0 = ox * g->stride_w;
              for (size_t ki = 0; ki < kh; ki++)
                for (size_t kj = 0; kj < kw; kj++) {
                  size_t iy = y0 + ki, ix = x0 + kj; /* padded coordinates */
                  int inside = iy >= g->pad_h && iy - g->pad_h < g->height && ix >= g->pad_w &&
                               ix - g->pad_w < g->width;
                  size_t at = (n * g->height + iy - g->pad_h) * g->width + ix - g->pad_w;
                  rt[(ki * kw + kj) * MR + r] = inside ? j->x + at * cin : zero_row;
                }
            } else {
              const float *base =
                  j->x + ((n * j->hp + oy * g->stride_h) * j->wpad + ox * g->stride_w) * cin;
              for (size_t ki = 0; ki < kh; ki++) rt[ki * MR + r] = base + ki * j->wpad * cin;
            }
            next_pixel(g, &n, &oy, &ox);
          } else { /* past the end: any readable row, results dropped */
            for (size_t ki = 0; ki < nseg; ki++) rt[ki * MR + r] = rt[ki * MR];
          }
        }
      }
      for (size_t cb = cb0; cb < cb1; cb++) {
        const float *panel = j->wp + cb * k * NR;
        size_t ncol = cout - cb * NR < NR ? cout - cb * NR : NR;
        for (size_t tl = tb; tl < te; tl++) {
          size_t p0 = tl * MR, at = p0 * cout + cb * NR;
          const float *res = j->affine && j->affine->residual ? j->affine->residual + at : NULL;
          size_t nrow = total - p0 < MR ? total - p0 : MR;
          lvmmed_tile_dst d = {j->y + at, res, cout, nrow, ncol, cb * NR, j->accumulate, j->affine};
          tile(nseg, seg, rows + (tl - tb) * nseg * MR, panel, &d);
        }
      }
    }
  }
#else
  (void)arg;
  (void)begin;
  (void)end;
  (void)chunk;
#endif
}

size_t lvmmed__direct_ws(const lvmmed_conv2d *c) {
  const lvmmed_conv_geom *g = &c->g;
  if ((g->pad_h == 0 && g->pad_w == 0) || use_tapwise(g)) return 0;
  return c->batch * (g->height + 2 * g->pad_h) * (g->width + 2 * g->pad_w) * g->channels;
}

typedef struct pad_job {
  const lvmmed_conv_geom *g;
  const float *x;
  float *xp;
  size_t hp, wpad;
} pad_job;

/* One unit = one padded row (image n, row yy). */
static void pad_range(void *arg, size_t begin, size_t end, unsigned chunk) {
  const pad_job *j = arg;
  const lvmmed_conv_geom *g = j->g;
  size_t cin = g->channels;
  (void)chunk;
  for (size_t u = begin; u < end; u++) {
    size_t n = u / j->hp, yy = u % j->hp;
    float *d = j->xp + u * j->wpad * cin;
    if (yy < g->pad_h || yy - g->pad_h >= g->height) {
      memset(d, 0, j->wpad * cin * sizeof *d);
      continue;
    }
    memset(d, 0, g->pad_w * cin * sizeof *d);
    memcpy(d + g->pad_w * cin, j->x + ((n * g->height + yy - g->pad_h) * g->width) * cin,
           g->width * cin * sizeof *d);
    memset(d + (g->pad_w + g->width) * cin, 0, (j->wpad - g->pad_w - g->width) * cin * sizeof *d);
  }
}

static void direct_run(lvmmed_ctx *ctx, const lvmmed_conv2d *c, const float *x, const float *wp,
                       float *y, int accumulate, const lvmmed_direct_affine *affine, float *ws) {
  const lvmmed_conv_geom *g = &c->g;
  size_t total = c->batch * g->out_h * g->out_w;
  size_t hp = g->height + 2 * g->pad_h, wpad = g->width + 2 * g->pad_w;
  int tapwise = use_tapwise(g);
  if ((g->pad_h || g->pad_w) && !tapwise) {
    pad_job pj = {g, x, ws, hp, wpad};
    lvmmed__parallel_for(ctx, c->batch * hp, 16, pad_range, &pj);
    x = ws;
  }
  direct_job j = {c, x, wp, y, hp, wpad, blocks_of(total, MR), blocks_of(c->out_channels, NR), 1,
                  1, accumulate, affine, tapwise};
  /* Threads split the weights (channel blocks: each streams only its own panels)
   * when they outweigh the input, else the pixels (each reads its own rows once),
   * into a few parts per thread that go to whichever thread is free (every output
   * is computed whole in one part, so the split does not change the results).
   * When one dimension has too few blocks for that many parts (the stem's two
   * channel blocks, a 28×28 layer's four at batch 1), the other splits too. */
  size_t threads = lvmmed__ctx_threads(ctx);
  size_t parts = threads > 1 ? threads * DIRECT_PARTS : 1;
  size_t kdim = g->channels * g->kernel_h * g->kernel_w;
  if (j.cblocks >= threads && total * g->channels <= 4 * c->out_channels * kdim) {
    j.cparts = parts < j.cblocks ? parts : j.cblocks;
    j.pparts = parts / j.cparts < j.tiles ? parts / j.cparts : j.tiles;
  } else {
    j.pparts = parts < j.tiles ? parts : j.tiles;
    j.cparts = parts / j.pparts < j.cblocks ? parts / j.pparts : j.cblocks;
  }
  lvmmed__parallel_for_balanced(ctx, j.cparts * j.pparts, 1, direct_range, &j);
}

void lvmmed__direct_run(lvmmed_ctx *ctx, const lvmmed_conv2d *c, const float *x, const float *wp,
                        float *y, int accumulate, float *ws) {
  direct_run(ctx, c, x, wp, y, accumulate, NULL, ws);
}

void lvmmed__direct_run_affine(lvmmed_ctx *ctx, const lvmmed_conv2d *c, const float *x,
                               const float *wp, const lvmmed_direct_affine *affine, float *y,
                               float *ws) {
  direct_run(ctx, c, x, wp, y, 0, affine, ws);
}

/* ----- weight gradient ---------------------------------------------------------- */

/* dW[ki][s][co] (in gt) += Σ_p x_pad[p at kernel row ki][s] · dy[p][co], where s runs
 * over the kernel_w·C consecutive floats one kernel row reads (s = kj·C + ci), so the
 * layout is tap-major [t][ci][co] and a 3-channel stem fills its tiles as well as a
 * 64-channel layer. Tiles of WR values of s × NR output channels accumulate over a
 * block of pixels in registers, broadcasting WR consecutive floats of one input row.
 *
 * Each thread copies the dy tile of a pixel block (PIX_BLOCK × 32 channels) into
 * its own contiguous scratch first: in place its rows lie C_out·4 bytes apart, a
 * power of two that maps them into a few L1 sets, where they evict each other
 * before the next s block reuses them. */
#define WR LVMMED_DIRECT_WR
#define PIX_BLOCK 256 /* the dy tile (PIX_BLOCK × NR floats, 32 KB) stays in L1 across s blocks */
#define WPREFETCH LVMMED_DIRECT_WPREFETCH

#if DIRECT_X86
AVX512 static void wtile(size_t np, const size_t *off, const float *xb, const float *dyt,
                         float *gt, size_t ldg, size_t nrow, size_t ncol, int first) {
  __m512 c0[WR], c1[WR];
#pragma GCC unroll 12
  for (int r = 0; r < WR; r++) c0[r] = c1[r] = _mm512_setzero_ps();
  for (size_t q = 0; q < np; q++) {
    const float *a = xb + off[q], *b = dyt + q * NR;
    _mm_prefetch((const char *)(xb + off[q + WPREFETCH]), _MM_HINT_T0); /* off has slack */
    __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
#pragma GCC unroll 12
    for (int r = 0; r < WR; r++) {
      __m512 v = _mm512_set1_ps(a[r]);
      c0[r] = _mm512_fmadd_ps(v, b0, c0[r]);
      c1[r] = _mm512_fmadd_ps(v, b1, c1[r]);
    }
  }
  /* Copy out with constant indices first: indexing c0/c1 by the run-time nrow would make
   * GCC keep them in memory inside the loop above. */
  float out[WR][NR];
#pragma GCC unroll 12
  for (int r = 0; r < WR; r++) {
    _mm512_storeu_ps(out[r], c0[r]);
    _mm512_storeu_ps(out[r] + 16, c1[r]);
  }
  __mmask16 m0, m1;
  lvmmed__block_masks(ncol, &m0, &m1);
  for (size_t r = 0; r < nrow; r++) { /* the first pixel block stores: gt needs no zeroing */
    float *o = gt + r * ldg;
    __m512 v0 = _mm512_loadu_ps(out[r]), v1 = _mm512_loadu_ps(out[r] + 16);
    if (!first) {
      v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, o));
      v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, o + 16));
    }
    _mm512_mask_storeu_ps(o, m0, v0);
    _mm512_mask_storeu_ps(o + 16, m1, v1);
  }
}

/* dy rows [0, np) (stride ldy), channels [0, ncol) into the contiguous np × NR tile t,
 * zeros past ncol. */
AVX512 static void copy_dy_tile(const float *dy, size_t ldy, size_t np, size_t ncol, float *t) {
  __mmask16 m0, m1;
  lvmmed__block_masks(ncol, &m0, &m1);
  for (size_t q = 0; q < np; q++, dy += ldy, t += NR) {
    _mm512_storeu_ps(t, _mm512_maskz_loadu_ps(m0, dy));
    _mm512_storeu_ps(t + 16, _mm512_maskz_loadu_ps(m1, dy + 16));
  }
}
#endif

void lvmmed__direct_wtile(size_t np, const size_t *off, const float *xb, const float *dyt,
                          float *gt, size_t ldg, size_t nrow, size_t ncol, int first) {
#if DIRECT_X86
  wtile(np, off, xb, dyt, gt, ldg, nrow, ncol, first);
#else
  (void)np;
  (void)off;
  (void)xb;
  (void)dyt;
  (void)gt;
  (void)ldg;
  (void)nrow;
  (void)ncol;
  (void)first;
#endif
}

typedef struct wgrad_job {
  const lvmmed_conv2d *c;
  const float *x, *dy; /* x zero-padded (hp × wpad), with WR floats of slack at its end */
  float *gt;           /* per part: kernel_h × kernel_w·cin × cout, written by its first block */
  float *tiles;        /* PIX_BLOCK × NR floats per part: its dy tile */
  size_t hp, wpad, sblocks, cblocks, gt_floats, pblocks;
  size_t parts, splits; /* work item = (part, split): pixel part × range of output tiles */
} wgrad_job;

/* Work item w = (part, split): the part's run of pixel blocks, summed into its own
 * gradient, for the split's range of output tiles. Tiles are (co block, kernel row,
 * s block), s blocks fastest, so one dy tile serves them all from L1, and co blocks
 * slowest, so each dy tile is copied once per pixel block; every tile runs over
 * the part's pixel blocks in order. */
static void wgrad_range(void *arg, size_t begin, size_t end, unsigned chunk) {
#if DIRECT_X86
  const wgrad_job *j = arg;
  const lvmmed_conv2d *c = j->c;
  const lvmmed_conv_geom *g = &c->g;
  size_t cin = g->channels, cout = c->out_channels, pix = g->out_h * g->out_w;
  size_t krow = g->kernel_w * cin, total = c->batch * pix, per_cb = g->kernel_h * j->sblocks;
  size_t units = j->cblocks * per_cb;
  float *dyt = j->tiles + (size_t)chunk * PIX_BLOCK * NR;
  size_t off[PIX_BLOCK + WPREFETCH];
  for (size_t w = begin; w < end; w++) {
    size_t part = w / j->splits, split = w % j->splits;
    size_t u0 = units * split / j->splits, u1 = units * (split + 1) / j->splits;
    float *gt = j->gt + part * j->gt_floats;
    size_t b0 = j->pblocks * part / j->parts, b1 = j->pblocks * (part + 1) / j->parts;
    for (size_t p0 = b0 * PIX_BLOCK; p0 < total && p0 < b1 * PIX_BLOCK; p0 += PIX_BLOCK) {
      size_t np = total - p0 < PIX_BLOCK ? total - p0 : PIX_BLOCK;
      size_t n = p0 / pix, q = p0 % pix, oy = q / g->out_w, ox = q % g->out_w;
      for (size_t k = 0; k < np; k++) {
        off[k] = ((n * j->hp + oy * g->stride_h) * j->wpad + ox * g->stride_w) * cin;
        next_pixel(g, &n, &oy, &ox);
      }
      for (size_t k = np; k < np + WPREFETCH; k++) off[k] = off[np - 1];
      for (size_t u = u0; u < u1; u++) {
        size_t cb = u / per_cb, ki = u % per_cb / j->sblocks, sb = u % j->sblocks;
        size_t s0 = sb * WR, co0 = cb * NR;
        size_t nrow = krow - s0 < WR ? krow - s0 : WR, ncol = cout - co0 < NR ? cout - co0 : NR;
        if (u == u0 || u % per_cb == 0) copy_dy_tile(j->dy + p0 * cout + co0, cout, np, ncol, dyt);
        wtile(np, off, j->x + ki * j->wpad * cin + s0, dyt, gt + (ki * krow + s0) * cout + co0,
              cout, nrow, ncol, p0 == b0 * PIX_BLOCK);
      }
    }
  }
#else
  (void)arg;
  (void)begin;
  (void)end;
  (void)chunk;
#endif
}

/* dw[co][ci][t] += Σ_parts gt[t][ci][co] (parts in order): one unit = 16 output
 * channels, read as vectors along co and written as 16 sequential streams along (ci, t). */
typedef struct unpermute_job {
  const float *gt;
  float *dw;
  size_t cin, taps, cout, gt_floats, parts;
} unpermute_job;

static void unpermute_range(void *arg, size_t begin, size_t end, unsigned chunk) {
  const unpermute_job *j = arg;
  size_t k = j->cin * j->taps;
  float sum[16];
  (void)chunk;
  for (size_t b = begin; b < end; b++) {
    size_t co0 = b * 16, nco = j->cout - co0 < 16 ? j->cout - co0 : 16;
    for (size_t ci = 0; ci < j->cin; ci++)
      for (size_t t = 0; t < j->taps; t++) {
        const float *src = j->gt + (t * j->cin + ci) * j->cout + co0;
        for (size_t i = 0; i < nco; i++) sum[i] = src[i];
        for (size_t p = 1; p < j->parts; p++)
          for (size_t i = 0; i < nco; i++) sum[i] += src[p * j->gt_floats + i];
        float *dst = j->dw + co0 * k + ci * j->taps + t;
        for (size_t i = 0; i < nco; i++) dst[i * k] += sum[i];
      }
  }
}

/* Floats of the zero-padded input with WR floats of slack, and of the tap-major gradient. */
static size_t wgrad_padded_floats(const lvmmed_conv2d *c) {
  const lvmmed_conv_geom *g = &c->g;
  size_t padded = c->batch * (g->height + 2 * g->pad_h) * (g->width + 2 * g->pad_w) * g->channels;
  return (padded + WR + 15) & ~(size_t)15;
}

/* Threads share the work in one of two ways. Layers with many pixels cut them into
 * WGRAD_PARTS parts per thread, each summed into its own partial gradient (added
 * up in order at the end) and taken by whichever thread is free, so a thread slowed
 * by other load takes fewer; each part must span at least WGRAD_PART_BLOCKS pixel
 * blocks, or writing and adding its partial gradient would cost more than balance
 * wins. Other layers split the output tiles, one range per thread, over all pixels. */
#define WGRAD_PARTS 4
#define WGRAD_PART_BLOCKS 4
_Static_assert(WGRAD_PARTS <= LVMMED_BALANCE_CHUNKS, "one work item per balanced chunk");

static size_t wgrad_pblocks(const lvmmed_conv2d *c) {
  return blocks_of(c->batch * c->g.out_h * c->g.out_w, PIX_BLOCK);
}

static void wgrad_split(const lvmmed_ctx *ctx, const lvmmed_conv2d *c, size_t *parts,
                        size_t *splits) {
  size_t threads = lvmmed__ctx_threads(ctx), pblocks = wgrad_pblocks(c);
  *parts = *splits = 1;
  if (threads <= 1) return;
  if (pblocks >= threads * WGRAD_PARTS * WGRAD_PART_BLOCKS)
    *parts = threads * WGRAD_PARTS;
  else
    *splits = threads;
}

static size_t wgrad_gt_floats(const lvmmed_conv2d *c) {
  const lvmmed_conv_geom *g = &c->g;
  return (c->out_channels * g->channels * g->kernel_h * g->kernel_w + 15) & ~(size_t)15;
}

size_t lvmmed__direct_wgrad_ws(const lvmmed_ctx *ctx, const lvmmed_conv2d *c) {
  size_t parts, splits;
  wgrad_split(ctx, c, &parts, &splits);
  return wgrad_padded_floats(c) + parts * wgrad_gt_floats(c) + parts * splits * PIX_BLOCK * NR;
}

void lvmmed__direct_wgrad(lvmmed_ctx *ctx, const lvmmed_conv2d *c, const float *x,
                          const float *dy, float *dw, float *ws) {
  const lvmmed_conv_geom *g = &c->g;
  size_t cin = g->channels, cout = c->out_channels, taps = g->kernel_h * g->kernel_w;
  size_t hp = g->height + 2 * g->pad_h, wpad = g->width + 2 * g->pad_w;
  size_t padded = c->batch * hp * wpad * cin, gtn = wgrad_gt_floats(c), parts, splits;
  wgrad_split(ctx, c, &parts, &splits);
  pad_job pj = {g, x, ws, hp, wpad};
  lvmmed__parallel_for(ctx, c->batch * hp, 16, pad_range, &pj);
  memset(ws + padded, 0, WR * sizeof *ws); /* the last tile's slack */
  float *gt = ws + wgrad_padded_floats(c), *tiles = gt + parts * gtn;
  wgrad_job j = {c, ws, dy, gt, tiles, hp, wpad, blocks_of(g->kernel_w * cin, WR),
                 blocks_of(cout, NR), gtn, wgrad_pblocks(c), parts, splits};
  /* parts · splits <= threads · WGRAD_PARTS: one work item per balanced chunk */
  lvmmed__parallel_for_balanced(ctx, parts * splits, 1, wgrad_range, &j);
  unpermute_job uj = {gt, dw, cin, taps, cout, gtn, parts};
  lvmmed__parallel_for(ctx, blocks_of(cout, 16), 1, unpermute_range, &uj);
}
