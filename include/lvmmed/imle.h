/* liblvmmed — I-MLE: gradients through a graph-matching solver.
 *
 * An lvmmed_imle differentiates the map θ = (c_v, c_e) ↦ ṽ = MAP(θ + ε), where
 * MAP is any lvmmed_gm_solver (Lawler form, maximised; see gm.h) and ε is
 * noise, with implicit maximum-likelihood estimation and a
 * perturbation-based target (METHOD.md §7.2):
 *
 *   forward    for each graph and sample s = 1..S: draw ε_s, ṽ_s = MAP(θ + ε_s)
 *   backward   θ'_s = θ + ε_s − λ·g_s (unary part only; the edge part keeps θ_e + ε_e,s),
 *              v'_s = MAP(θ'_s),
 *              dL/dc_v[i][a]  = w · (1/S) Σ_s (ṽ_s[i][a] − v'_s[i][a]) / λ
 *              dL/dc_e[e][f]  = w · (1/S) Σ_s (ṽ_s[i][a]·ṽ_s[j][b] − v'_s[i][a]·v'_s[j][b]) / λ
 *              for e = (i→j), f = (a→b),
 *
 * where g_s = ∂L_g/∂ṽ_s is the gradient of the per-graph loss of that sample
 * (for the Hamming loss against the identity, g = 1 − 2I) and w = 1/G for
 * LVMMED_IMLE_REDUCE_MEAN (default; G graphs) or 1 for LVMMED_IMLE_REDUCE_SUM.
 *
 * λ normalisation (METHOD.md §7.2 caveat): λ multiplies the per-graph,
 * per-sample gradient g_s — no 1/G inside the target — and the batch and
 * sample means are applied to the finite difference afterwards. The PyTorch
 * reference (where the incoming gradient already carries 1/G, so its target
 * moves by λ/G while it divides by λ) is reproduced exactly by setting
 * LAMBDA to λ_ref / G with REDUCE_MEAN: w·(ṽ − v')/(λ_ref/G) = (ṽ − v')/λ_ref.
 * With NOISE_NONE the estimator is blackbox differentiation (Vlastelica et
 * al.) for the maximisation convention: dL/dθ = (ṽ − v_λ)/λ.
 *
 * Noise (drawn independently for every entry of c_v and, unless
 * NOISE_EDGES = 0, of c_e):
 *   GUMBEL        Gumbel(0, β), β = NOISE_SCALE (default; β = 1 as in the paper);
 *   SUM_OF_GAMMA  (τ/κ)·(Σ_{i=1..s} Gamma(shape 1/κ, scale κ/i) − log s), τ = NOISE_SCALE,
 *                 κ = SOG_KAPPA (0: the number of nodes n, the number of ones of a
 *                 permutation), s = SOG_TERMS; the sum of κ draws is ≈ Gumbel(0, τ);
 *   NONE          ε = 0.
 * Noise is a function of (context seed, NOISE_COUNTER, graph index, sample)
 * only: never of thread count or scheduling. Each forward uses the current
 * counter and then increments it, so successive steps draw fresh noise and a
 * checkpoint can store and restore the counter.
 *
 * Lifetime: forward copies what backward needs (the perturbed affinities,
 * the edge lists and the solutions), kept until the next forward, an option
 * change or the free. backward may be called any number of times in between.
 *
 * A training step with an lvmmed_affinity (G groups of N images, E edges each):
 *
 *   lvmmed_affinity_forward(aff, B, zs, zt, ys, yt, D, R, S, gs, gt, cv, ce, es, et);
 *   lvmmed_imle_forward(im, solvers, T, G, N, cv, E, es, E, et, ce, perm);
 *   lvmmed_imle_hamming_loss(im, &loss, NULL);
 *   lvmmed_imle_backward(im, solvers, T, NULL, dcv, dce);
 *   lvmmed_affinity_backward(aff, dcv, dce, ys, yt, dzs, dzt, dys, dyt);
 *
 * Solvers and threads: every call takes n_solvers >= 1 solver handles, all
 * configured alike (each is used by one thread at a time). Graphs are
 * distributed over min(n_solvers, context threads) parallel lanes; pass one
 * solver per context thread for full parallelism. Results do not depend on
 * n_solvers as long as the solvers are deterministic (true for every method
 * with LVMMED_GM_OPT_RESTARTS = 0).
 */
#ifndef LVMMED_IMLE_H
#define LVMMED_IMLE_H

#include <stddef.h>
#include <stdint.h>

#include <lvmmed/ctx.h>
#include <lvmmed/gm.h>

LVMMED_EXTERN_C_BEGIN

/** Opaque I-MLE estimator (configuration, noise counter, saved forward state). */
typedef struct lvmmed_imle lvmmed_imle;

/** Noise distributions (LVMMED_IMLE_OPT_NOISE). Values are stable. */
typedef enum lvmmed_imle_noise {
  LVMMED_IMLE_NOISE_NONE = 0,        /**< no perturbation: blackbox differentiation */
  LVMMED_IMLE_NOISE_GUMBEL = 1,      /**< Gumbel(0, β) (default) */
  LVMMED_IMLE_NOISE_SUM_OF_GAMMA = 2 /**< sum-of-Gamma(κ, τ, s) */
} lvmmed_imle_noise;

/** Reduction over the graphs of a batch (LVMMED_IMLE_OPT_REDUCTION). Values are stable. */
typedef enum lvmmed_imle_reduction {
  LVMMED_IMLE_REDUCE_MEAN = 0, /**< loss and gradients of the mean over graphs (default) */
  LVMMED_IMLE_REDUCE_SUM = 1   /**< of the sum over graphs */
} lvmmed_imle_reduction;

/**
 * Enum-keyed options, read and written as double (integer options take
 * integral values); lvmmed_imle_option_bounds gives each range. Setting any
 * option except NOISE_COUNTER discards the saved forward state. Values are stable.
 */
typedef enum lvmmed_imle_option {
  LVMMED_IMLE_OPT_NOISE = 1,         /**< an lvmmed_imle_noise; default GUMBEL */
  LVMMED_IMLE_OPT_NOISE_SCALE = 2,   /**< β (Gumbel) or τ (sum-of-Gamma); default 1; [1e-6, 1e6] */
  LVMMED_IMLE_OPT_SOG_KAPPA = 3,     /**< κ of sum-of-Gamma; 0 (default) = number of nodes; [0, 1e6] */
  LVMMED_IMLE_OPT_SOG_TERMS = 4,     /**< s, Gamma terms of sum-of-Gamma; default 10; [1, 1000] */
  LVMMED_IMLE_OPT_LAMBDA = 5,        /**< λ, target step and finite-difference scale; default 80; [1e-6, 1e9] */
  LVMMED_IMLE_OPT_SAMPLES = 6,       /**< S, noise samples per graph; default 1; [1, 64] */
  LVMMED_IMLE_OPT_NOISE_EDGES = 7,   /**< 1: perturb c_e too (default); 0: c_v only */
  LVMMED_IMLE_OPT_REDUCTION = 8,     /**< an lvmmed_imle_reduction; default MEAN */
  LVMMED_IMLE_OPT_NOISE_COUNTER = 9  /**< noise index of the next forward; default 0; [0, 2^40 - 1] */
} lvmmed_imle_option;

/** Creates an estimator with default options. Holds a reference on ctx. *out is NULL on failure. */
LVMMED_API lvmmed_status lvmmed_imle_create(lvmmed_ctx *ctx, lvmmed_imle **out);

/** Frees the estimator and drops its context reference. NULL is a no-op. */
LVMMED_API void lvmmed_imle_free(lvmmed_imle *imle);

/** The context imle was created with (no reference is added); NULL for NULL. */
LVMMED_API lvmmed_ctx *lvmmed_imle_ctx(const lvmmed_imle *imle);

/** Sets an option. Out-of-range or non-integral values give LVMMED_ERR_OUT_OF_RANGE and change nothing. */
LVMMED_API lvmmed_status lvmmed_imle_set_option(lvmmed_imle *imle, lvmmed_imle_option option, double value);

/** Reads an option into *value. */
LVMMED_API lvmmed_status lvmmed_imle_get_option(const lvmmed_imle *imle, lvmmed_imle_option option,
                                                double *value);

/** Inclusive range [*min_value, *max_value] of an option. */
LVMMED_API lvmmed_status lvmmed_imle_option_bounds(lvmmed_imle_option option, double *min_value,
                                                   double *max_value);

/**
 * Perturb-and-MAP over n_graphs problems of n nodes that share their shapes.
 * unary: n_graphs × n × n (c_v, maximised); src_edges: n_graphs × n_src_edges × 2
 * int32 node indices (i, j), no self loops; tgt_edges likewise; edge_affinity:
 * n_graphs × n_src_edges × n_tgt_edges (c_e; may be NULL when an edge count
 * is 0). All values finite; the arrays are borrowed for the call.
 * permutations receives n_graphs × S × n entries: ṽ_s as the target node of
 * each source node. Uses and then increments NOISE_COUNTER.
 */
LVMMED_API lvmmed_status lvmmed_imle_forward(lvmmed_imle *imle, lvmmed_gm_solver *const *solvers,
                                             size_t n_solvers, size_t n_graphs, size_t n,
                                             const float *unary, size_t n_src_edges,
                                             const int32_t *src_edges, size_t n_tgt_edges,
                                             const int32_t *tgt_edges, const float *edge_affinity,
                                             int32_t *permutations);

/**
 * Hamming loss of the last forward against the identity matching (node i of
 * the source graph ↦ node i of the target):
 * L_g = Σ_{i,a} |ṽ[i][a] − I[i][a]| = 2·#{i : ṽ(i) ≠ i}, averaged over the S
 * samples, then reduced over graphs (REDUCTION). per_graph (may be NULL)
 * receives the n_graphs sample-averaged L_g. Without a forward: LVMMED_ERR_STATE.
 */
LVMMED_API lvmmed_status lvmmed_imle_hamming_loss(const lvmmed_imle *imle, double *loss, double *per_graph);

/**
 * I-MLE backward of the last forward.
 * grad_perm: n_graphs × S × n × n, the per-graph, per-sample loss gradients
 * g_s = ∂L_g/∂ṽ_s (finite), or NULL for the Hamming loss against the identity
 * (g = 1 − 2I, matching lvmmed_imle_hamming_loss).
 * Outputs (overwritten): grad_unary n_graphs × n × n; grad_edge
 * n_graphs × n_src_edges × n_tgt_edges (may be NULL to skip; it is sparse:
 * at most 2·S·n_src_edges non-zeros per graph). Without a forward: LVMMED_ERR_STATE.
 */
LVMMED_API lvmmed_status lvmmed_imle_backward(lvmmed_imle *imle, lvmmed_gm_solver *const *solvers,
                                              size_t n_solvers, const float *grad_perm,
                                              float *grad_unary, float *grad_edge);

LVMMED_EXTERN_C_END

#endif /* LVMMED_IMLE_H */
