/* lvmmed_imle: perturb-and-MAP forward and the I-MLE / blackbox backward
 * (METHOD.md §7.2-§7.4), batched and parallel over graphs. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/core.h"
#include "core/pool.h"
#include "core/rng.h"
#include "graph/imle_impl.h"

/* Noise stream ids: "IML" tag above the 40-bit noise counter; the Philox block
 * index carries (graph << 40 | sample << 32), leaving 2^32 blocks per draw. */
#define NOISE_TAG 0x494D4Cull
#define COUNTER_MAX ((((uint64_t)1) << 40) - 1)
#define MAX_GRAPHS (((size_t)1) << 24)

struct lvmmed_imle {
  lvmmed_ctx *ctx;
  /* options */
  int noise, noise_edges, reduction;
  double scale, kappa, lambda;
  size_t terms, samples;
  uint64_t counter;
  lvmmed__imle_map_fn hook;
  void *hook_user;

  /* saved forward state */
  int have_forward;
  size_t n_graphs, n, n_es, n_et, s_n;
  size_t edge_per_sample;  /* 0: one unperturbed copy of c_e per graph */
  float *theta_v;          /* G × S × n² perturbed unary */
  float *theta_e;          /* G × (S or 1) × n_es·n_et perturbed edge affinities */
  int32_t *es, *et;        /* G × E × 2 */
  int32_t *perm;           /* G × S × n solutions ṽ */
  size_t cap_tv, cap_te, cap_es, cap_et, cap_perm;

  /* per-call scratch */
  lvmmed_status *status;   /* per graph */
  size_t *fail_sample;
  size_t cap_status, cap_fail;
  void **lane;             /* per lane: n² floats + n² + n_et + n ints */
  size_t *lane_cap;
  unsigned n_lanes;
};

/* ---- options ---- */

typedef struct opt_spec {
  double min, max;
  int integral;
} opt_spec;

#define OPT_LAST LVMMED_IMLE_OPT_NOISE_COUNTER
static const opt_spec specs[OPT_LAST + 1] = {
    [LVMMED_IMLE_OPT_NOISE] = {0, 2, 1},
    [LVMMED_IMLE_OPT_NOISE_SCALE] = {1e-6, 1e6, 0},
    [LVMMED_IMLE_OPT_SOG_KAPPA] = {0, 1e6, 0},
    [LVMMED_IMLE_OPT_SOG_TERMS] = {1, 1000, 1},
    [LVMMED_IMLE_OPT_LAMBDA] = {1e-6, 1e9, 0},
    [LVMMED_IMLE_OPT_SAMPLES] = {1, 64, 1},
    [LVMMED_IMLE_OPT_NOISE_EDGES] = {0, 1, 1},
    [LVMMED_IMLE_OPT_REDUCTION] = {0, 1, 1},
    [LVMMED_IMLE_OPT_NOISE_COUNTER] = {0, (double)COUNTER_MAX, 1},
};

static int known_option(int option) { return option >= 1 && option <= OPT_LAST; }

lvmmed_status lvmmed_imle_option_bounds(lvmmed_imle_option option, double *min_value, double *max_value) {
  if (!known_option((int)option) || !min_value || !max_value) return LVMMED_ERR_INVALID_ARGUMENT;
  *min_value = specs[option].min;
  *max_value = specs[option].max;
  return LVMMED_OK;
}

lvmmed_status lvmmed_imle_create(lvmmed_ctx *ctx, lvmmed_imle **out) {
  if (out) *out = NULL;
  if (!ctx) return LVMMED_ERR_INVALID_ARGUMENT;
  if (!out) return lvmmed__fail(ctx, LVMMED_ERR_INVALID_ARGUMENT, "lvmmed_imle_create: out is NULL");
  lvmmed_imle *im = lvmmed__calloc(ctx, 1, sizeof *im);
  if (!im) return lvmmed__fail(ctx, LVMMED_ERR_OUT_OF_MEMORY, "lvmmed_imle_create: no memory");
  im->ctx = lvmmed_ctx_retain(ctx);
  im->noise = LVMMED_IMLE_NOISE_GUMBEL;
  im->noise_edges = 1;
  im->reduction = LVMMED_IMLE_REDUCE_MEAN;
  im->scale = 1.0;
  im->kappa = 0.0;
  im->lambda = 80.0;
  im->terms = 10;
  im->samples = 1;
  *out = im;
  return LVMMED_OK;
}

void lvmmed_imle_free(lvmmed_imle *im) {
  if (!im) return;
  lvmmed_ctx *ctx = im->ctx;
  lvmmed__free(ctx, im->theta_v);
  lvmmed__free(ctx, im->theta_e);
  lvmmed__free(ctx, im->es);
  lvmmed__free(ctx, im->et);
  lvmmed__free(ctx, im->perm);
  lvmmed__free(ctx, im->status);
  lvmmed__free(ctx, im->fail_sample);
  for (unsigned i = 0; i < im->n_lanes; i++) lvmmed__free(ctx, im->lane[i]);
  lvmmed__free(ctx, im->lane);
  lvmmed__free(ctx, im->lane_cap);
  lvmmed__free(ctx, im);
  lvmmed_ctx_release(ctx);
}

lvmmed_ctx *lvmmed_imle_ctx(const lvmmed_imle *im) { return im ? im->ctx : NULL; }

lvmmed_status lvmmed_imle_set_option(lvmmed_imle *im, lvmmed_imle_option option, double value) {
  if (!im) return LVMMED_ERR_INVALID_ARGUMENT;
  if (!known_option((int)option))
    return lvmmed__fail(im->ctx, LVMMED_ERR_INVALID_ARGUMENT, "lvmmed_imle_set_option: unknown option %d",
                        (int)option);
  const opt_spec *s = &specs[option];
  if (!(value >= s->min && value <= s->max) || (s->integral && value != floor(value)))
    return lvmmed__fail(im->ctx, LVMMED_ERR_OUT_OF_RANGE,
                        "lvmmed_imle_set_option: option %d = %g outside [%g, %g]%s", (int)option, value,
                        s->min, s->max, s->integral ? " or not an integer" : "");
  switch (option) {
    case LVMMED_IMLE_OPT_NOISE: im->noise = (int)value; break;
    case LVMMED_IMLE_OPT_NOISE_SCALE: im->scale = value; break;
    case LVMMED_IMLE_OPT_SOG_KAPPA: im->kappa = value; break;
    case LVMMED_IMLE_OPT_SOG_TERMS: im->terms = (size_t)value; break;
    case LVMMED_IMLE_OPT_LAMBDA: im->lambda = value; break;
    case LVMMED_IMLE_OPT_SAMPLES: im->samples = (size_t)value; break;
    case LVMMED_IMLE_OPT_NOISE_EDGES: im->noise_edges = (int)value; break;
    case LVMMED_IMLE_OPT_REDUCTION: im->reduction = (int)value; break;
    case LVMMED_IMLE_OPT_NOISE_COUNTER: im->counter = (uint64_t)value; return LVMMED_OK;
  }
  im->have_forward = 0;
  return LVMMED_OK;
}

lvmmed_status lvmmed_imle_get_option(const lvmmed_imle *im, lvmmed_imle_option option, double *value) {
  if (!im) return LVMMED_ERR_INVALID_ARGUMENT;
  if (!known_option((int)option) || !value)
    return lvmmed__fail(im->ctx, LVMMED_ERR_INVALID_ARGUMENT,
                        "lvmmed_imle_get_option: unknown option %d or value NULL", (int)option);
  double v = 0;
  switch (option) {
    case LVMMED_IMLE_OPT_NOISE: v = im->noise; break;
    case LVMMED_IMLE_OPT_NOISE_SCALE: v = im->scale; break;
    case LVMMED_IMLE_OPT_SOG_KAPPA: v = im->kappa; break;
    case LVMMED_IMLE_OPT_SOG_TERMS: v = (double)im->terms; break;
    case LVMMED_IMLE_OPT_LAMBDA: v = im->lambda; break;
    case LVMMED_IMLE_OPT_SAMPLES: v = (double)im->samples; break;
    case LVMMED_IMLE_OPT_NOISE_EDGES: v = im->noise_edges; break;
    case LVMMED_IMLE_OPT_REDUCTION: v = im->reduction; break;
    case LVMMED_IMLE_OPT_NOISE_COUNTER: v = (double)im->counter; break;
  }
  *value = v;
  return LVMMED_OK;
}

void lvmmed__imle_set_map_hook(lvmmed_imle *im, lvmmed__imle_map_fn fn, void *user) {
  im->hook = fn;
  im->hook_user = user;
}

/* ---- helpers ---- */

static int is_permutation(size_t n, const int32_t *perm, unsigned char *seen) {
  memset(seen, 0, n);
  for (size_t i = 0; i < n; i++) {
    if (perm[i] < 0 || (size_t)perm[i] >= n || seen[perm[i]]) return 0;
    seen[perm[i]] = 1;
  }
  return 1;
}

typedef struct imle_job {
  lvmmed_imle *im;
  lvmmed_gm_solver *const *solvers;
  const float *unary, *edge_aff, *grad_perm;
  float *grad_unary, *grad_edge;
  uint64_t counter;
} imle_job;

/* Lane scratch: target unary (n² floats), edge lookup head (n²) and next (n_et), v' (n), seen (n bytes). */
typedef struct lane_parts {
  float *target;
  int32_t *head, *next, *vprime;
  unsigned char *seen;
} lane_parts;

static size_t lane_bytes(size_t n, size_t n_et) {
  return n * n * sizeof(float) + (n * n + n_et + n) * sizeof(int32_t) + n;
}

static lane_parts lane_split(void *block, size_t n, size_t n_et) {
  lane_parts p;
  p.target = block;
  p.head = (int32_t *)(p.target + n * n);
  p.next = p.head + n * n;
  p.vprime = p.next + n_et;
  p.seen = (unsigned char *)(p.vprime + n);
  return p;
}

static lvmmed_status ensure_lanes(lvmmed_imle *im, unsigned lanes, size_t bytes, const char *fn) {
  if (lanes > im->n_lanes) {
    void **nl = lvmmed__calloc(im->ctx, lanes, sizeof *nl);
    size_t *nc = lvmmed__calloc(im->ctx, lanes, sizeof *nc);
    if (!nl || !nc) {
      lvmmed__free(im->ctx, nl);
      lvmmed__free(im->ctx, nc);
      return lvmmed__fail(im->ctx, LVMMED_ERR_OUT_OF_MEMORY, "%s: lane table", fn);
    }
    if (im->lane) {
      memcpy(nl, im->lane, im->n_lanes * sizeof *nl);
      memcpy(nc, im->lane_cap, im->n_lanes * sizeof *nc);
    }
    lvmmed__free(im->ctx, im->lane);
    lvmmed__free(im->ctx, im->lane_cap);
    im->lane = nl;
    im->lane_cap = nc;
    im->n_lanes = lanes;
  }
  for (unsigned i = 0; i < lanes; i++) {
    im->lane[i] = lvmmed__grow(im->ctx, im->lane[i], &im->lane_cap[i], bytes);
    if (!im->lane[i]) return lvmmed__fail(im->ctx, LVMMED_ERR_OUT_OF_MEMORY, "%s: %zu bytes of scratch", fn, bytes);
  }
  return LVMMED_OK;
}

static lvmmed_status solve(const lvmmed_imle *im, lvmmed_gm_solver *solver, const float *unary,
                           const int32_t *es, const int32_t *et, const float *edge, int32_t *perm,
                           unsigned char *seen) {
  lvmmed_status st;
  if (im->hook) {
    st = im->hook(im->hook_user, solver, im->n, unary, im->n_es, es, im->n_et, et, edge, perm);
  } else {
    st = lvmmed_gm_set_problem(solver, im->n, unary, im->n_es, es, im->n_et, et, edge);
    if (st == LVMMED_OK) st = lvmmed_gm_solve(solver, perm, NULL);
  }
  if (st == LVMMED_OK && !is_permutation(im->n, perm, seen)) st = LVMMED_ERR_INTERNAL;
  return st;
}

/* Lanes and the graphs of each: chunk c of parallel_for uses solvers[c]. */
static size_t min_chunk(size_t n_graphs, size_t n_solvers) { return (n_graphs + n_solvers - 1) / n_solvers; }

/* ---- forward ---- */

static void forward_range(void *arg, size_t begin, size_t end, unsigned chunk) {
  const imle_job *j = arg;
  lvmmed_imle *im = j->im;
  size_t n = im->n, nn = n * n, ne = im->n_es * im->n_et, s_n = im->s_n;
  lvmmed_gm_solver *solver = j->solvers ? j->solvers[chunk] : NULL;
  unsigned char *seen = lane_split(im->lane[chunk], n, im->n_et).seen;
  uint64_t stream = NOISE_TAG << 40 | j->counter;
  for (size_t g = begin; g < end; g++) {
    im->status[g] = LVMMED_OK;
    const float *src_e = j->edge_aff ? j->edge_aff + g * ne : NULL;
    if (!im->edge_per_sample && ne) memcpy(im->theta_e + g * ne, src_e, ne * sizeof(float));
    for (size_t s = 0; s < s_n; s++) {
      float *tv = im->theta_v + (g * s_n + s) * nn;
      float *te = im->theta_e + (g * (im->edge_per_sample ? s_n : 1) + (im->edge_per_sample ? s : 0)) * ne;
      memcpy(tv, j->unary + g * nn, nn * sizeof(float));
      if (im->edge_per_sample) memcpy(te, src_e, ne * sizeof(float));
      if (im->noise != LVMMED_IMLE_NOISE_NONE) {
        lvmmed_rng rng;
        lvmmed__rng_init(&rng, lvmmed__ctx_seed(im->ctx), stream);
        rng.block = (uint64_t)g << 40 | (uint64_t)s << 32;
        size_t count_e = im->noise_edges ? ne : 0;
        if (im->noise == LVMMED_IMLE_NOISE_GUMBEL) {
          uint64_t key = lvmmed__rng_u64(&rng);
          lvmmed__gumbel_add(key, 0, nn, (float)im->scale, tv);
          lvmmed__gumbel_add(key, nn, count_e, (float)im->scale, te);
        } else {
          double kappa = im->kappa > 0.0 ? im->kappa : (double)n;
          lvmmed__sog_add(&rng, nn, kappa, im->scale, (unsigned)im->terms, tv);
          lvmmed__sog_add(&rng, count_e, kappa, im->scale, (unsigned)im->terms, te);
        }
      }
      lvmmed_status st = solve(im, solver, tv, im->es + g * im->n_es * 2, im->et + g * im->n_et * 2,
                               ne ? te : NULL, im->perm + (g * s_n + s) * n, seen);
      if (st != LVMMED_OK) {
        im->status[g] = st;
        im->fail_sample[g] = s;
        break;
      }
    }
  }
}

static lvmmed_status check_solvers(lvmmed_imle *im, const char *fn, lvmmed_gm_solver *const *solvers,
                                   size_t n_solvers) {
  if (n_solvers == 0) return lvmmed__fail(im->ctx, LVMMED_ERR_INVALID_ARGUMENT, "%s: n_solvers is 0", fn);
  if (im->hook) return LVMMED_OK;
  if (!solvers) return lvmmed__fail(im->ctx, LVMMED_ERR_INVALID_ARGUMENT, "%s: solvers is NULL", fn);
  for (size_t i = 0; i < n_solvers; i++)
    if (!solvers[i]) return lvmmed__fail(im->ctx, LVMMED_ERR_INVALID_ARGUMENT, "%s: solvers[%zu] is NULL", fn, i);
  return LVMMED_OK;
}

static lvmmed_status check_edges(lvmmed_imle *im, const char *fn, const char *which, size_t n_graphs,
                                 size_t per_graph, const int32_t *edges, size_t n) {
  for (size_t e = 0; e < n_graphs * per_graph; e++) {
    int32_t i = edges[2 * e], j = edges[2 * e + 1];
    if (i < 0 || j < 0 || (size_t)i >= n || (size_t)j >= n || i == j)
      return lvmmed__fail(im->ctx, LVMMED_ERR_OUT_OF_RANGE,
                          "%s: %s edge %zu of graph %zu = (%d, %d) invalid for n = %zu (self loop or out of range)",
                          fn, which, e % per_graph, e / per_graph, (int)i, (int)j, n);
  }
  return LVMMED_OK;
}

/* Reports the first failed graph, keeping the solver's own message when it shares our context. */
static lvmmed_status report_failure(lvmmed_imle *im, const char *fn, size_t n_graphs) {
  for (size_t g = 0; g < n_graphs; g++) {
    lvmmed_status st = im->status[g];
    if (st == LVMMED_OK) continue;
    char cause[256] = "";
    if (lvmmed_ctx_last_status(im->ctx) == st) snprintf(cause, sizeof cause, ": %s", lvmmed_ctx_last_error(im->ctx));
    if (st == LVMMED_ERR_INTERNAL && !cause[0])
      snprintf(cause, sizeof cause, ": the solver returned no permutation");
    return lvmmed__fail(im->ctx, st, "%s: solving graph %zu, sample %zu failed (%s)%s", fn, g, im->fail_sample[g],
                        lvmmed_status_name(st), cause);
  }
  return LVMMED_OK;
}

lvmmed_status lvmmed_imle_forward(lvmmed_imle *im, lvmmed_gm_solver *const *solvers, size_t n_solvers,
                                  size_t n_graphs, size_t n, const float *unary, size_t n_src_edges,
                                  const int32_t *src_edges, size_t n_tgt_edges, const int32_t *tgt_edges,
                                  const float *edge_affinity, int32_t *permutations) {
  static const char fn[] = "lvmmed_imle_forward";
  if (!im) return LVMMED_ERR_INVALID_ARGUMENT;
  lvmmed_ctx *ctx = im->ctx;
  im->have_forward = 0;
  lvmmed_status st = check_solvers(im, fn, solvers, n_solvers);
  if (st != LVMMED_OK) return st;
  if (!unary || !permutations || (n_src_edges && !src_edges) || (n_tgt_edges && !tgt_edges) ||
      (n_src_edges && n_tgt_edges && !edge_affinity))
    return lvmmed__fail(ctx, LVMMED_ERR_INVALID_ARGUMENT, "%s: a required array is NULL", fn);
  if (n_graphs == 0 || n_graphs > MAX_GRAPHS || n == 0 || n > 65536)
    return lvmmed__fail(ctx, LVMMED_ERR_OUT_OF_RANGE, "%s: n_graphs = %zu (1..2^24), n = %zu (1..65536)", fn,
                        n_graphs, n);
  size_t nn = n * n, ne, tv_count, te_count, s_n = im->samples;
  if (!lvmmed__mul_size(n_src_edges, n_tgt_edges, &ne) || ne > ((size_t)1 << 40) ||
      !lvmmed__mul_size(n_graphs * s_n, nn, &tv_count) || tv_count > SIZE_MAX / 8 ||
      !lvmmed__mul_size(n_graphs * s_n, ne, &te_count) || te_count > SIZE_MAX / 8 ||
      n_src_edges > SIZE_MAX / 16 / n_graphs || n_tgt_edges > SIZE_MAX / 16 / n_graphs)
    return lvmmed__fail(ctx, LVMMED_ERR_LIMIT, "%s: problem too large", fn);
  for (size_t i = 0; i < n_graphs * nn; i++)
    if (!isfinite(unary[i])) return lvmmed__fail(ctx, LVMMED_ERR_NUMERIC, "%s: unary[%zu] is not finite", fn, i);
  if (ne)
    for (size_t i = 0; i < n_graphs * ne; i++)
      if (!isfinite(edge_affinity[i]))
        return lvmmed__fail(ctx, LVMMED_ERR_NUMERIC, "%s: edge_affinity[%zu] is not finite", fn, i);
  if ((st = check_edges(im, fn, "source", n_graphs, n_src_edges, src_edges, n)) != LVMMED_OK ||
      (st = check_edges(im, fn, "target", n_graphs, n_tgt_edges, tgt_edges, n)) != LVMMED_OK)
    return st;

  int per_sample = im->noise != LVMMED_IMLE_NOISE_NONE && im->noise_edges;
  if (!per_sample) te_count = n_graphs * ne;
  int ok = 1;
  ok &= (im->theta_v = lvmmed__grow(ctx, im->theta_v, &im->cap_tv, tv_count * sizeof(float))) != NULL;
  ok &= (im->theta_e = lvmmed__grow(ctx, im->theta_e, &im->cap_te, te_count * sizeof(float))) != NULL;
  ok &= (im->es = lvmmed__grow(ctx, im->es, &im->cap_es, n_graphs * n_src_edges * 2 * sizeof(int32_t))) != NULL;
  ok &= (im->et = lvmmed__grow(ctx, im->et, &im->cap_et, n_graphs * n_tgt_edges * 2 * sizeof(int32_t))) != NULL;
  ok &= (im->perm = lvmmed__grow(ctx, im->perm, &im->cap_perm, n_graphs * s_n * n * sizeof(int32_t))) != NULL;
  ok &= (im->status = lvmmed__grow(ctx, im->status, &im->cap_status, n_graphs * sizeof(lvmmed_status))) != NULL;
  ok &= (im->fail_sample = lvmmed__grow(ctx, im->fail_sample, &im->cap_fail, n_graphs * sizeof(size_t))) != NULL;
  if (!ok) return lvmmed__fail(ctx, LVMMED_ERR_OUT_OF_MEMORY, "%s: saved state of %zu graphs", fn, n_graphs);
  unsigned lanes = lvmmed__parallel_chunks(ctx, n_graphs, min_chunk(n_graphs, n_solvers));
  if ((st = ensure_lanes(im, lanes, lane_bytes(n, n_tgt_edges), fn)) != LVMMED_OK) return st;

  im->n_graphs = n_graphs;
  im->n = n;
  im->n_es = n_src_edges;
  im->n_et = n_tgt_edges;
  im->s_n = s_n;
  im->edge_per_sample = (size_t)per_sample;
  memcpy(im->es, src_edges, n_graphs * n_src_edges * 2 * sizeof(int32_t));
  memcpy(im->et, tgt_edges, n_graphs * n_tgt_edges * 2 * sizeof(int32_t));
  imle_job job = {.im = im, .solvers = solvers, .unary = unary, .edge_aff = edge_affinity,
                  .counter = im->counter};
  lvmmed__parallel_for(ctx, n_graphs, min_chunk(n_graphs, n_solvers), forward_range, &job);
  im->counter = (im->counter + 1) & COUNTER_MAX;
  if ((st = report_failure(im, fn, n_graphs)) != LVMMED_OK) return st;
  memcpy(permutations, im->perm, n_graphs * s_n * n * sizeof(int32_t));
  im->have_forward = 1;
  return LVMMED_OK;
}

/* ---- loss ---- */

lvmmed_status lvmmed_imle_hamming_loss(const lvmmed_imle *im, double *loss, double *per_graph) {
  if (!im) return LVMMED_ERR_INVALID_ARGUMENT;
  if (!im->have_forward)
    return lvmmed__fail(im->ctx, LVMMED_ERR_STATE, "lvmmed_imle_hamming_loss: no forward pass");
  if (!loss) return lvmmed__fail(im->ctx, LVMMED_ERR_INVALID_ARGUMENT, "lvmmed_imle_hamming_loss: loss is NULL");
  double total = 0.0;
  for (size_t g = 0; g < im->n_graphs; g++) {
    size_t wrong = 0;
    for (size_t s = 0; s < im->s_n; s++) {
      const int32_t *p = im->perm + (g * im->s_n + s) * im->n;
      for (size_t i = 0; i < im->n; i++) wrong += (size_t)p[i] != i;
    }
    double lg = 2.0 * (double)wrong / (double)im->s_n;
    if (per_graph) per_graph[g] = lg;
    total += lg;
  }
  *loss = im->reduction == LVMMED_IMLE_REDUCE_MEAN ? total / (double)im->n_graphs : total;
  return LVMMED_OK;
}

/* ---- backward ---- */

static void backward_range(void *arg, size_t begin, size_t end, unsigned chunk) {
  const imle_job *j = arg;
  lvmmed_imle *im = j->im;
  size_t n = im->n, nn = n * n, n_es = im->n_es, n_et = im->n_et, ne = n_es * n_et, s_n = im->s_n;
  lvmmed_gm_solver *solver = j->solvers ? j->solvers[chunk] : NULL;
  lane_parts lp = lane_split(im->lane[chunk], n, n_et);
  float *target = lp.target;
  int32_t *head = lp.head, *next = lp.next, *vprime = lp.vprime;
  double w = im->reduction == LVMMED_IMLE_REDUCE_MEAN ? 1.0 / (double)im->n_graphs : 1.0;
  float step = (float)(w / ((double)s_n * im->lambda));
  float lambda = (float)im->lambda;
  for (size_t g = begin; g < end; g++) {
    im->status[g] = LVMMED_OK;
    float *gu = j->grad_unary + g * nn, *ge = j->grad_edge ? j->grad_edge + g * ne : NULL;
    memset(gu, 0, nn * sizeof(float));
    const int32_t *es = im->es + g * n_es * 2, *et = im->et + g * n_et * 2;
    if (ge) {
      memset(ge, 0, ne * sizeof(float));
      /* target edges by endpoint pair: head[a·n + b] → f, chained through next */
      for (size_t x = 0; x < nn; x++) head[x] = -1;
      for (size_t f = n_et; f-- > 0;) {
        size_t key = (size_t)et[2 * f] * n + (size_t)et[2 * f + 1];
        next[f] = head[key];
        head[key] = (int32_t)f;
      }
    }
    for (size_t s = 0; s < s_n; s++) {
      const float *tv = im->theta_v + (g * s_n + s) * nn;
      const float *te = im->theta_e + (g * (im->edge_per_sample ? s_n : 1) + (im->edge_per_sample ? s : 0)) * ne;
      const float *gp = j->grad_perm ? j->grad_perm + (g * s_n + s) * nn : NULL;
      for (size_t i = 0; i < n; i++)
        for (size_t a = 0; a < n; a++) {
          float gv = gp ? gp[i * n + a] : (i == a ? -1.0f : 1.0f);
          target[i * n + a] = tv[i * n + a] - lambda * gv;
        }
      int32_t *vs = im->perm + (g * s_n + s) * n;
      int finite = 1;
      for (size_t x = 0; x < nn; x++) finite &= isfinite(target[x]) != 0;
      lvmmed_status st = finite ? solve(im, solver, target, es, et, ne ? te : NULL, vprime, lp.seen)
                                : LVMMED_ERR_NUMERIC;
      if (st != LVMMED_OK) {
        im->status[g] = st;
        im->fail_sample[g] = s;
        break;
      }
      for (size_t i = 0; i < n; i++) {
        gu[i * n + (size_t)vs[i]] += step;
        gu[i * n + (size_t)vprime[i]] -= step;
      }
      if (ge)
        for (size_t e = 0; e < n_es; e++) {
          size_t i = (size_t)es[2 * e], jn = (size_t)es[2 * e + 1];
          for (int32_t f = head[(size_t)vs[i] * n + (size_t)vs[jn]]; f >= 0; f = next[f]) ge[e * n_et + (size_t)f] += step;
          for (int32_t f = head[(size_t)vprime[i] * n + (size_t)vprime[jn]]; f >= 0; f = next[f])
            ge[e * n_et + (size_t)f] -= step;
        }
    }
  }
}

lvmmed_status lvmmed_imle_backward(lvmmed_imle *im, lvmmed_gm_solver *const *solvers, size_t n_solvers,
                                   const float *grad_perm, float *grad_unary, float *grad_edge) {
  static const char fn[] = "lvmmed_imle_backward";
  if (!im) return LVMMED_ERR_INVALID_ARGUMENT;
  lvmmed_ctx *ctx = im->ctx;
  if (!im->have_forward) return lvmmed__fail(ctx, LVMMED_ERR_STATE, "%s: no forward pass to differentiate", fn);
  lvmmed_status st = check_solvers(im, fn, solvers, n_solvers);
  if (st != LVMMED_OK) return st;
  if (!grad_unary) return lvmmed__fail(ctx, LVMMED_ERR_INVALID_ARGUMENT, "%s: grad_unary is NULL", fn);
  size_t nn = im->n * im->n, total = im->n_graphs * im->s_n * nn;
  if (grad_perm)
    for (size_t i = 0; i < total; i++)
      if (!isfinite(grad_perm[i]))
        return lvmmed__fail(ctx, LVMMED_ERR_NUMERIC, "%s: grad_perm[%zu] is not finite", fn, i);
  unsigned lanes = lvmmed__parallel_chunks(ctx, im->n_graphs, min_chunk(im->n_graphs, n_solvers));
  if ((st = ensure_lanes(im, lanes, lane_bytes(im->n, im->n_et), fn)) != LVMMED_OK) return st;
  imle_job job = {.im = im, .solvers = solvers, .grad_perm = grad_perm, .grad_unary = grad_unary,
                  .grad_edge = grad_edge};
  lvmmed__parallel_for(ctx, im->n_graphs, min_chunk(im->n_graphs, n_solvers), backward_range, &job);
  return report_failure(im, fn, im->n_graphs);
}
