/* Winograd F(2×2, 3×3) convolution with AVX-512, see conv_winograd.h.
 *
 * With d a 4×4 input block, g a 3×3 kernel and y the 2×2 output block:
 *   y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A,
 *   Bᵀ = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],
 *   G  = [1 0 0; ½ ½ ½; ½ -½ ½; 0 0 1],
 *   Aᵀ = [1 1 1 0; 0 1 -1 -1],
 * and summed over input channels inside the product, which makes the ⊙ of one
 * position ξ of the 4×4 a matrix product over channels: M[ξ] = V[ξ] · U[ξ].
 */
#include "lvmmed_config.h"

#include <stdatomic.h>
#include <stddef.h>
#include <string.h>

#include "backend/cpu/conv_winograd.h"
#include "backend/cpu/rowops.h"
#include "core/core.h"
#include "core/pool.h"

#define MR LVMMED_DIRECT_MR
#define NR LVMMED_DIRECT_NR
#define XI 16                   /* positions of the transformed 4×4 block */
#define V_BYTES ((size_t)768 << 10) /* one thread's transformed input: stays in L2 */
/* Where it pays (alternating A/B runs against the direct kernel, 2 threads, weights
 * transformed in each call): 1.2-1.9x from 32 output tiles on (a 12×12 map at
 * batch 1, 7×7 and 6×6 maps from batch 8); below that, or with more than 35% of
 * the 2×2 tiles' outputs outside the map (3×3: 78%, 5×5: 44%), 0.8-0.97x. */
#define MIN_TILES 32
#define MAX_WASTE_PERCENT 135
#define ITEMS_PER_THREAD 4      /* work items per thread before channels split too */

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define WINO_X86 1
#define AVX512 __attribute__((target("avx512f")))
#else
#define WINO_X86 0
#endif

static size_t blocks_of(size_t n, size_t b) { return (n + b - 1) / b; }

static int wino_shape(const lvmmed_conv2d *c) {
  const lvmmed_conv_geom *g = &c->g;
  return g->kernel_h == 3 && g->kernel_w == 3 && g->stride_h == 1 && g->stride_w == 1 &&
         g->pad_h == 1 && g->pad_w == 1 && g->dilation_h == 1 && g->dilation_w == 1 &&
         g->channels % 16 == 0 && g->out_h == g->height && g->out_w == g->width &&
         lvmmed__direct_supported(c);
}

/* The adjoint of a 3×3 / stride 1 / pad 1 convolution: the same shape with the
 * channel counts swapped (its weights: flipped and transposed, see pack). */
static lvmmed_conv2d adjoint_of(const lvmmed_conv2d *c) {
  lvmmed_conv2d t = *c;
  t.out_channels = c->g.channels;
  t.g.channels = c->out_channels;
  t.g.height = c->g.out_h;
  t.g.width = c->g.out_w;
  t.g.out_h = c->g.height;
  t.g.out_w = c->g.width;
  return t;
}

/* Output tiles per block: V = 16 × tb × C_in floats near V_BYTES. */
static size_t tile_block(size_t cin) {
  size_t tb = V_BYTES / (sizeof(float) * XI * cin) / MR * MR;
  return tb < MR ? MR : tb;
}

/* How c's output is cut: th × tw tiles of 2×2 per image, taken in blocks of tb. */
typedef struct tiling {
  const lvmmed_conv2d *c;
  size_t th, tw, ntiles, tb, blocks;
} tiling;

static tiling tiling_of(const lvmmed_conv2d *c) {
  tiling t = {c, (c->g.out_h + 1) / 2, (c->g.out_w + 1) / 2, 0, tile_block(c->g.channels), 0};
  t.ntiles = c->batch * t.th * t.tw;
  t.blocks = blocks_of(t.ntiles, t.tb);
  return t;
}

/* Image n and top-left output (oy, ox) of tile tt. */
static void tile_origin(const tiling *t, size_t tt, size_t *n, size_t *oy, size_t *ox) {
  size_t per = t->th * t->tw, r = tt % per;
  *n = tt / per;
  *oy = 2 * (r / t->tw);
  *ox = 2 * (r % t->tw);
}

/* Tiles [t0, t0 + nt) of block blk. */
static size_t block_tiles(const tiling *t, size_t blk, size_t *t0) {
  *t0 = blk * t->tb;
  return t->ntiles - *t0 < t->tb ? t->ntiles - *t0 : t->tb;
}

int lvmmed__wino_chosen(const lvmmed_conv2d *c) {
  if (!wino_shape(c)) return 0;
  tiling t = tiling_of(c);
  return t.ntiles >= MIN_TILES && 400 * t.th * t.tw <= MAX_WASTE_PERCENT * c->g.out_h * c->g.out_w;
}

int lvmmed__wino_chosen_adjoint(const lvmmed_conv2d *c) {
  if (!lvmmed__wino_chosen(c)) return 0;
  lvmmed_conv2d t = adjoint_of(c);
  return lvmmed__wino_chosen(&t);
}

size_t lvmmed__wino_packed_floats(const lvmmed_conv2d *c) {
  return XI * c->g.channels * blocks_of(c->out_channels, NR) * NR;
}

size_t lvmmed__wino_adjoint_packed_floats(const lvmmed_conv2d *c) {
  lvmmed_conv2d t = adjoint_of(c);
  return lvmmed__wino_packed_floats(&t);
}

/* ----- weight transform ---------------------------------------------------- */

/* U[ξ] of output channel o and input channel i from the 3×3 kernel at
 * w + o·so + i·si (taps in row-major order, or reversed when flip), packed as
 * up[((ξ·cbs + o/NR)·I + i)·NR + o%NR], zeros past O. One unit: 16 output channels. */
typedef struct pack_job {
  const float *w;
  float *up;
  size_t outs, ins, cbs;
  ptrdiff_t so, si;
  int flip;
} pack_job;

#if WINO_X86
AVX512 static void pack_range(void *arg, size_t begin, size_t end, unsigned chunk) {
  const pack_job *p = arg;
  const __m512 half = _mm512_set1_ps(0.5f);
  (void)chunk;
  for (size_t h = begin; h < end; h++) {
    size_t o0 = h * 16, left = o0 < p->outs ? p->outs - o0 : 0;
    __mmask16 m = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
    __m512i idx = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32((int)p->so));
    float *dst = p->up + (h / 2) * p->ins * NR + (h % 2) * 16;
    for (size_t i = 0; i < p->ins; i++) {
      __m512 g[9], t[4][3];
      for (int k = 0; k < 9; k++) {
        int tap = p->flip ? 8 - k : k;
        g[k] = m ? _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, idx,
                                            p->w + (ptrdiff_t)o0 * p->so +
                                                (ptrdiff_t)i * p->si + tap,
                                            4)
                 : _mm512_setzero_ps();
      }
      for (int k = 0; k < 3; k++) { /* G g: rows of the kernel combined */
        t[0][k] = g[k];
        t[1][k] = _mm512_mul_ps(half, _mm512_add_ps(_mm512_add_ps(g[k], g[3 + k]), g[6 + k]));
        t[2][k] = _mm512_mul_ps(half, _mm512_add_ps(_mm512_sub_ps(g[k], g[3 + k]), g[6 + k]));
        t[3][k] = g[6 + k];
      }
      for (int a = 0; a < 4; a++) { /* (G g) Gᵀ */
        __m512 u[4];
        u[0] = t[a][0];
        u[1] = _mm512_mul_ps(half, _mm512_add_ps(_mm512_add_ps(t[a][0], t[a][1]), t[a][2]));
        u[2] = _mm512_mul_ps(half, _mm512_add_ps(_mm512_sub_ps(t[a][0], t[a][1]), t[a][2]));
        u[3] = t[a][2];
        for (int b = 0; b < 4; b++)
          _mm512_storeu_ps(dst + ((size_t)(a * 4 + b) * p->cbs * p->ins + i) * NR, u[b]);
      }
    }
  }
}
#endif

static void pack_run(lvmmed_ctx *ctx, pack_job *p) {
#if WINO_X86
  lvmmed__parallel_for(ctx, 2 * p->cbs, 1, pack_range, p);
#else
  (void)ctx;
  (void)p;
#endif
}

void lvmmed__wino_pack(lvmmed_ctx *ctx, const lvmmed_conv2d *c, const float *w, float *up) {
  size_t cin = c->g.channels;
  pack_job p = {w, up, c->out_channels, cin, blocks_of(c->out_channels, NR),
                (ptrdiff_t)(cin * 9), 9, 0};
  pack_run(ctx, &p);
}

void lvmmed__wino_pack_adjoint(lvmmed_ctx *ctx, const lvmmed_conv2d *c, const float *w,
                               float *up) {
  /* adjoint output channel o = input channel ci of c, its input i = output co of c:
   * w'[o][i][t] = w[i][o][8 - t] */
  size_t cin = c->g.channels;
  pack_job p = {w, up, cin, c->out_channels, blocks_of(cin, NR), 9, (ptrdiff_t)(cin * 9), 1};
  pack_run(ctx, &p);
}

/* ----- the convolution ------------------------------------------------------ */

/* Per thread: V (16 × tb × C_in), then M or W of one channel block (16 × tb × NR),
 * then the WR floats the weight gradient's register tile may read past a row. */
static size_t scratch_floats(const lvmmed_conv2d *c) {
  return (XI * tile_block(c->g.channels) * (c->g.channels + NR) + LVMMED_DIRECT_WR + 15) &
         ~(size_t)15;
}

size_t lvmmed__wino_ws(const lvmmed_ctx *ctx, const lvmmed_conv2d *c) {
  return (size_t)lvmmed__ctx_threads(ctx) * scratch_floats(c);
}

size_t lvmmed__wino_adjoint_ws(const lvmmed_ctx *ctx, const lvmmed_conv2d *c) {
  lvmmed_conv2d t = adjoint_of(c);
  return lvmmed__wino_ws(ctx, &t);
}

typedef struct wino_job {
  tiling tl;
  const float *x, *up;
  float *y, *scratch;
  size_t sfloats, cbs, groups, items;
  int accumulate;
  const lvmmed_direct_affine *affine;
  atomic_size_t next; /* the next work item: threads take them as they finish */
} wino_job;

#if WINO_X86
/* V[ξ][t][·] = Bᵀ d B for tiles [t0, t0 + nt), 16 channels at a time. */
AVX512 static void input_transform(const tiling *tl, const float *x, size_t t0, size_t nt,
                                   float *V) {
  const lvmmed_conv_geom *g = &tl->c->g;
  size_t cin = g->channels, plane = tl->tb * cin;
  for (size_t t = 0; t < nt; t++) {
    size_t n, oy, ox;
    tile_origin(tl, t0 + t, &n, &oy, &ox);
    const float *src[4][4];
    for (size_t a = 0; a < 4; a++)
      for (size_t b = 0; b < 4; b++) {
        /* input row oy - 1 + a, column ox - 1 + b; outside: zeros */
        size_t iy = oy + a, ix = ox + b;
        int inside = iy >= 1 && iy - 1 < g->height && ix >= 1 && ix - 1 < g->width;
        src[a][b] = inside ? x + ((n * g->height + iy - 1) * g->width + ix - 1) * cin : NULL;
      }
    float *dst = V + t * cin;
    for (size_t cv = 0; cv < cin; cv += 16) {
      __m512 d[4][4], e[4][4];
      for (int a = 0; a < 4; a++)
        for (int b = 0; b < 4; b++)
          d[a][b] = src[a][b] ? _mm512_loadu_ps(src[a][b] + cv) : _mm512_setzero_ps();
      for (int b = 0; b < 4; b++) { /* Bᵀ d */
        e[0][b] = _mm512_sub_ps(d[0][b], d[2][b]);
        e[1][b] = _mm512_add_ps(d[1][b], d[2][b]);
        e[2][b] = _mm512_sub_ps(d[2][b], d[1][b]);
        e[3][b] = _mm512_sub_ps(d[1][b], d[3][b]);
      }
      for (int a = 0; a < 4; a++) { /* (Bᵀ d) B */
        float *o = dst + (size_t)(a * 4) * plane + cv;
        _mm512_storeu_ps(o, _mm512_sub_ps(e[a][0], e[a][2]));
        _mm512_storeu_ps(o + plane, _mm512_add_ps(e[a][1], e[a][2]));
        _mm512_storeu_ps(o + 2 * plane, _mm512_sub_ps(e[a][2], e[a][1]));
        _mm512_storeu_ps(o + 3 * plane, _mm512_sub_ps(e[a][1], e[a][3]));
      }
    }
  }
}

/* M[ξ][t][0..NR) = V[ξ][t] · U[ξ] for channel block cb, on the direct register tile. */
static void products(const wino_job *j, size_t cb, size_t nt, const float *V, float *M) {
  size_t cin = j->tl.c->g.channels, tb = j->tl.tb;
  const float *rows[MR];
  for (size_t xi = 0; xi < XI; xi++) {
    const float *panel = j->up + (xi * j->cbs + cb) * cin * NR;
    for (size_t m0 = 0; m0 < nt; m0 += MR) {
      size_t nrow = nt - m0 < MR ? nt - m0 : MR;
      for (size_t r = 0; r < MR; r++) /* rows past nrow: any readable row, dropped */
        rows[r] = V + (xi * tb + m0 + (r < nrow ? r : 0)) * cin;
      lvmmed_tile_dst d = {M + (xi * tb + m0) * NR, NULL, NR, nrow, NR, 0, 0, NULL};
      lvmmed__direct_tile(1, cin, rows, panel, &d);
    }
  }
}

/* Stores one output vector: (+ what y holds), then the affine, as store_tile does. */
AVX512 static inline void store_out(const wino_job *j, size_t at, __m512 v, __mmask16 m,
                                    __m512 s, __m512 t) {
  float *o = j->y + at;
  if (j->accumulate) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, o));
  if (j->affine) {
    const float *res = j->affine->residual ? j->affine->residual + at : NULL;
    v = lvmmed__affine_vec(v, s, t, res, m, j->affine->relu);
  }
  _mm512_mask_storeu_ps(o, m, v);
}

/* y = Aᵀ M A for the tiles [t0, t0 + nt), channels of block cb. */
AVX512 static void output_transform(const wino_job *j, size_t cb, size_t t0, size_t nt,
                                    const float *M) {
  const lvmmed_conv_geom *g = &j->tl.c->g;
  size_t cout = j->tl.c->out_channels, co0 = cb * NR, tb = j->tl.tb;
  size_t ncol = cout - co0 < NR ? cout - co0 : NR;
  __mmask16 mk[2];
  lvmmed__block_masks(ncol, &mk[0], &mk[1]);
  const lvmmed_direct_affine *ep = j->affine;
  __m512 sc[2], sh[2];
  for (int h = 0; h < 2; h++) {
    sc[h] = ep && ep->scale ? _mm512_maskz_loadu_ps(mk[h], ep->scale + co0 + 16 * h)
                            : _mm512_set1_ps(1.0f);
    sh[h] = ep && ep->shift ? _mm512_maskz_loadu_ps(mk[h], ep->shift + co0 + 16 * h)
                            : _mm512_setzero_ps();
  }
  for (size_t t = 0; t < nt; t++) {
    size_t n, oy, ox;
    tile_origin(&j->tl, t0 + t, &n, &oy, &ox);
    int two_cols = ox + 1 < g->out_w;
    for (int h = 0; h < 2; h++) {
      if (!mk[h]) continue;
      __m512 m[4][4], s[2][4];
      for (int a = 0; a < 4; a++)
        for (int b = 0; b < 4; b++)
          m[a][b] = _mm512_loadu_ps(M + ((size_t)(a * 4 + b) * tb + t) * NR + 16 * h);
      for (int b = 0; b < 4; b++) { /* Aᵀ M */
        s[0][b] = _mm512_add_ps(_mm512_add_ps(m[0][b], m[1][b]), m[2][b]);
        s[1][b] = _mm512_sub_ps(_mm512_sub_ps(m[1][b], m[2][b]), m[3][b]);
      }
      for (size_t a = 0; a < 2 && oy + a < g->out_h; a++) { /* (Aᵀ M) A */
        size_t at = ((n * g->out_h + oy + a) * g->out_w + ox) * cout + co0 + 16 * (size_t)h;
        store_out(j, at, _mm512_add_ps(_mm512_add_ps(s[a][0], s[a][1]), s[a][2]), mk[h], sc[h],
                  sh[h]);
        if (two_cols)
          store_out(j, at + cout, _mm512_sub_ps(_mm512_sub_ps(s[a][1], s[a][2]), s[a][3]),
                    mk[h], sc[h], sh[h]);
      }
    }
  }
}

/* Work item u = (tile block, channel group): transform the block's input, then
 * per channel block of the group the 16 products and the output transform. */
static void run_item(const wino_job *j, size_t u, float *V, float *M) {
  size_t grp = u % j->groups, t0, nt = block_tiles(&j->tl, u / j->groups, &t0);
  size_t cb0 = j->cbs * grp / j->groups, cb1 = j->cbs * (grp + 1) / j->groups;
  input_transform(&j->tl, j->x, t0, nt, V);
  for (size_t cb = cb0; cb < cb1; cb++) {
    products(j, cb, nt, V, M);
    output_transform(j, cb, t0, nt, M);
  }
}
#endif

/* One chunk per thread, each with its own scratch, taking items until none are left. */
static void wino_range(void *arg, size_t begin, size_t end, unsigned chunk) {
  wino_job *j = arg;
  (void)begin;
  (void)end;
#if WINO_X86
  float *V = j->scratch + (size_t)chunk * j->sfloats;
  float *M = V + XI * j->tl.tb * j->tl.c->g.channels;
  for (;;) {
    size_t u = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
    if (u >= j->items) break;
    run_item(j, u, V, M);
  }
#else
  (void)j;
  (void)chunk;
#endif
}

void lvmmed__wino_run(lvmmed_ctx *ctx, const lvmmed_conv2d *c, const float *x, const float *up,
                      float *y, int accumulate, const lvmmed_direct_affine *affine, float *ws) {
  size_t threads = lvmmed__ctx_threads(ctx);
  wino_job j = {.tl = tiling_of(c), .x = x, .up = up, .y = y, .scratch = ws,
                .sfloats = scratch_floats(c), .cbs = blocks_of(c->out_channels, NR),
                .groups = 1, .accumulate = accumulate, .affine = affine};
  size_t blocks = j.tl.blocks, want = threads * ITEMS_PER_THREAD;
  /* Too few tile blocks to keep every thread busy: split the channel blocks too
   * (each group transforms the input again; the outputs do not change). */
  if (threads > 1 && blocks < want) {
    j.groups = blocks_of(want, blocks);
    if (j.groups > j.cbs) j.groups = j.cbs;
  }
  j.items = blocks * j.groups;
  atomic_init(&j.next, 0);
  lvmmed__parallel_for(ctx, threads, 1, wino_range, &j);
}

void lvmmed__wino_backward_data(lvmmed_ctx *ctx, const lvmmed_conv2d *c, const float *dy,
                                const float *up, float *dx, int accumulate, float *ws) {
  lvmmed_conv2d t = adjoint_of(c);
  lvmmed__wino_run(ctx, &t, dy, up, dx, accumulate, NULL, ws);
}

/* ----- weight gradient ------------------------------------------------------------ */

/* The forward is bilinear in U = G g Gᵀ and V = Bᵀ d B, so for one tile with output
 * gradient dY (2×2): dU = (A dY Aᵀ) ⊙ V and dg = Gᵀ dU G. Summed over tiles, per
 * position ξ: S[ξ] (C_in × C_out) = Σ_t V[ξ][t]ᵀ · W[ξ][t], with W = A dY Aᵀ, a
 * product with K = tiles that runs on the direct weight gradient's register tile;
 * then dg = Gᵀ S G. Parts of the tile blocks sum into their own S (added in order at
 * the end); their count and the channel groups depend on the shape only, so the
 * result is the same for any thread count. */
#define WG_ITEMS 8                       /* work items wanted: parts × channel groups */
#define WG_PART_BYTES ((size_t)32 << 20) /* all parts' S together at most this */
#define WR LVMMED_DIRECT_WR

static size_t wg_s_floats(const lvmmed_conv2d *c) {
  return XI * c->g.channels * blocks_of(c->out_channels, NR) * NR;
}

/* Parts and channel groups of c's weight gradient. */
static void wg_split(const lvmmed_conv2d *c, size_t *parts, size_t *groups) {
  size_t blocks = tiling_of(c).blocks;
  size_t cap = WG_PART_BYTES / (sizeof(float) * wg_s_floats(c));
  *parts = blocks < WG_ITEMS ? blocks : WG_ITEMS;
  if (*parts > cap) *parts = cap ? cap : 1;
  size_t cbs = blocks_of(c->out_channels, NR);
  *groups = blocks_of(WG_ITEMS, *parts);
  if (*groups > cbs) *groups = cbs;
}

/* Each tile block adds its products into all of S (16 × C_in × C_out floats), so
 * with many channels the pass over S outweighs them: against the direct weight
 * gradient (alternating in one process, 2 threads, batch 32) 1.5-1.75x at 64 and
 * 128 channels, 1.3x at 256, 0.9x at 512. */
#define WG_MAX_CHANNELS 256

int lvmmed__wino_chosen_wgrad(const lvmmed_conv2d *c) {
  return lvmmed__wino_chosen(c) && c->g.channels <= WG_MAX_CHANNELS &&
         c->out_channels <= WG_MAX_CHANNELS;
}

size_t lvmmed__wino_wgrad_ws(const lvmmed_ctx *ctx, const lvmmed_conv2d *c) {
  size_t parts, groups;
  wg_split(c, &parts, &groups);
  return parts * wg_s_floats(c) + (size_t)lvmmed__ctx_threads(ctx) * scratch_floats(c);
}

typedef struct wg_job {
  tiling tl;
  const float *x, *dy;
  float *s, *scratch; /* parts × S, then per-thread scratch */
  size_t sfloats, cbs, parts, groups;
  atomic_size_t next;
} wg_job;

#if WINO_X86
/* W[ξ][t][0..NR) = A dY_t Aᵀ for channel block cb, tiles [t0, t0 + nt); dY outside
 * the map is 0. */
AVX512 static void grad_transform(const wg_job *j, size_t cb, size_t t0, size_t nt, float *W) {
  const lvmmed_conv_geom *g = &j->tl.c->g;
  size_t cout = j->tl.c->out_channels, co0 = cb * NR, plane = j->tl.tb * NR;
  size_t ncol = cout - co0 < NR ? cout - co0 : NR;
  __mmask16 mk[2];
  lvmmed__block_masks(ncol, &mk[0], &mk[1]);
  for (size_t t = 0; t < nt; t++) {
    size_t n, oy, ox;
    tile_origin(&j->tl, t0 + t, &n, &oy, &ox);
    for (int h = 0; h < 2; h++) {
      __m512 d[2][2], e[4][2];
      for (size_t a = 0; a < 2; a++)
        for (size_t b = 0; b < 2; b++) {
          int inside = oy + a < g->out_h && ox + b < g->out_w && mk[h];
          const float *src = j->dy + ((n * g->out_h + oy + a) * g->out_w + ox + b) * cout + co0 +
                             16 * (size_t)h;
          d[a][b] = inside ? _mm512_maskz_loadu_ps(mk[h], src) : _mm512_setzero_ps();
        }
      for (int b = 0; b < 2; b++) { /* A dY: rows dY0, dY0 + dY1, dY0 - dY1, -dY1 */
        e[0][b] = d[0][b];
        e[1][b] = _mm512_add_ps(d[0][b], d[1][b]);
        e[2][b] = _mm512_sub_ps(d[0][b], d[1][b]);
        e[3][b] = _mm512_sub_ps(_mm512_setzero_ps(), d[1][b]);
      }
      for (int a = 0; a < 4; a++) { /* (A dY) Aᵀ: the same on columns */
        float *o = W + (size_t)(a * 4) * plane + t * NR + 16 * h;
        _mm512_storeu_ps(o, e[a][0]);
        _mm512_storeu_ps(o + plane, _mm512_add_ps(e[a][0], e[a][1]));
        _mm512_storeu_ps(o + 2 * plane, _mm512_sub_ps(e[a][0], e[a][1]));
        _mm512_storeu_ps(o + 3 * plane, _mm512_sub_ps(_mm512_setzero_ps(), e[a][1]));
      }
    }
  }
}

/* S[ξ][ci][cb·NR ..] (+)= V[ξ]ᵀ · W[ξ] over the nt tiles of one block. */
static void wg_products(const wg_job *j, size_t cb, size_t nt, const float *V, const float *W,
                        float *S, const size_t *off, int first) {
  size_t cin = j->tl.c->g.channels, ldg = j->cbs * NR, tb = j->tl.tb;
  for (size_t xi = 0; xi < XI; xi++)
    for (size_t ci0 = 0; ci0 < cin; ci0 += WR) {
      size_t nrow = cin - ci0 < WR ? cin - ci0 : WR;
      lvmmed__direct_wtile(nt, off, V + xi * tb * cin + ci0, W + xi * tb * NR,
                           S + (xi * cin + ci0) * ldg + cb * NR, ldg, nrow, NR, first);
    }
}

/* Item u = (part, channel group): the part's tile blocks in order, summed into its S. */
static void wg_item(const wg_job *j, size_t u, float *V, float *W) {
  size_t part = u / j->groups, grp = u % j->groups, cin = j->tl.c->g.channels;
  size_t b0 = j->tl.blocks * part / j->parts, b1 = j->tl.blocks * (part + 1) / j->parts;
  size_t cb0 = j->cbs * grp / j->groups, cb1 = j->cbs * (grp + 1) / j->groups;
  float *S = j->s + part * j->sfloats;
  /* rows of V[ξ] for the register tile, then its prefetch slack */
  size_t off[V_BYTES / (sizeof(float) * XI * 16) + LVMMED_DIRECT_WPREFETCH];
  for (size_t blk = b0; blk < b1; blk++) {
    size_t t0, nt = block_tiles(&j->tl, blk, &t0);
    for (size_t q = 0; q < nt + LVMMED_DIRECT_WPREFETCH; q++) off[q] = q < nt ? q * cin : 0;
    input_transform(&j->tl, j->x, t0, nt, V);
    for (size_t cb = cb0; cb < cb1; cb++) {
      grad_transform(j, cb, t0, nt, W);
      wg_products(j, cb, nt, V, W, S, off, blk == b0);
    }
  }
}
#endif

static void wg_range(void *arg, size_t begin, size_t end, unsigned chunk) {
  wg_job *j = arg;
  (void)begin;
  (void)end;
#if WINO_X86
  float *V = j->scratch + (size_t)chunk * scratch_floats(j->tl.c);
  float *W = V + XI * j->tl.tb * j->tl.c->g.channels;
  for (;;) {
    size_t u = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
    if (u >= j->parts * j->groups) break;
    wg_item(j, u, V, W);
  }
#else
  (void)j;
  (void)chunk;
#endif
}

/* dw[co][ci][·] += Gᵀ (Σ_parts S[·][ci][co]) G, one unit = 16 output channels. */
typedef struct wg_out_job {
  const float *s;
  float *dw;
  size_t cin, cout, ldg, sfloats, parts;
} wg_out_job;

#if WINO_X86
AVX512 static void wg_out_range(void *arg, size_t begin, size_t end, unsigned chunk) {
  const wg_out_job *j = arg;
  const __m512 half = _mm512_set1_ps(0.5f);
  (void)chunk;
  for (size_t b = begin; b < end; b++) {
    size_t co0 = b * 16, nco = j->cout - co0 < 16 ? j->cout - co0 : 16;
    for (size_t ci = 0; ci < j->cin; ci++) {
      __m512 m[16], t[3][4];
      for (size_t xi = 0; xi < XI; xi++) {
        const float *src = j->s + (xi * j->cin + ci) * j->ldg + co0;
        m[xi] = _mm512_loadu_ps(src);
        for (size_t p = 1; p < j->parts; p++)
          m[xi] = _mm512_add_ps(m[xi], _mm512_loadu_ps(src + p * j->sfloats));
      }
      for (int k = 0; k < 4; k++) { /* Gᵀ S: rows S0 + ½(S1 + S2), ½(S1 - S2), ½(S1 + S2) + S3 */
        __m512 p12 = _mm512_mul_ps(half, _mm512_add_ps(m[4 + k], m[8 + k]));
        t[0][k] = _mm512_add_ps(m[k], p12);
        t[1][k] = _mm512_mul_ps(half, _mm512_sub_ps(m[4 + k], m[8 + k]));
        t[2][k] = _mm512_add_ps(p12, m[12 + k]);
      }
      float out[9][16];
      for (int a = 0; a < 3; a++) { /* (Gᵀ S) G: the same on columns */
        __m512 p12 = _mm512_mul_ps(half, _mm512_add_ps(t[a][1], t[a][2]));
        _mm512_storeu_ps(out[a * 3], _mm512_add_ps(t[a][0], p12));
        _mm512_storeu_ps(out[a * 3 + 1], _mm512_mul_ps(half, _mm512_sub_ps(t[a][1], t[a][2])));
        _mm512_storeu_ps(out[a * 3 + 2], _mm512_add_ps(p12, t[a][3]));
      }
      for (size_t i = 0; i < nco; i++) {
        float *dst = j->dw + ((co0 + i) * j->cin + ci) * 9;
        for (int k = 0; k < 9; k++) dst[k] += out[k][i];
      }
    }
  }
}
#endif

void lvmmed__wino_wgrad(lvmmed_ctx *ctx, const lvmmed_conv2d *c, const float *x, const float *dy,
                        float *dw, float *ws) {
#if WINO_X86
  const lvmmed_conv_geom *g = &c->g;
  size_t threads = lvmmed__ctx_threads(ctx), parts, groups;
  wg_split(c, &parts, &groups);
  wg_job j = {.tl = tiling_of(c), .x = x, .dy = dy, .s = ws, .sfloats = wg_s_floats(c),
              .cbs = blocks_of(c->out_channels, NR), .parts = parts, .groups = groups};
  j.scratch = ws + parts * j.sfloats;
  atomic_init(&j.next, 0);
  lvmmed__parallel_for(ctx, threads, 1, wg_range, &j);
  wg_out_job o = {ws, dw, g->channels, c->out_channels, j.cbs * NR, j.sfloats, parts};
  lvmmed__parallel_for(ctx, blocks_of(c->out_channels, 16), 1, wg_out_range, &o);
#else
  (void)ctx;
  (void)c;
  (void)x;
  (void)dy;
  (void)dw;
  (void)ws;
#endif
}
