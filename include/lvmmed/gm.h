/* liblvmmed — graph matching: the quadratic assignment solver and exact linear assignment.
 *
 * An lvmmed_gm_solver holds one graph-matching problem and a solver choice.
 * Two problem forms are accepted:
 *
 *  - Lawler form with sparse edges (what LVM-Med produces), MAXIMISED over
 *    permutations p (node i of the source graph ↦ node p[i] of the target):
 *      J(p) = Σ_i U[i][p[i]] + Σ_{e=(i,j) ∈ Es, f=(a,b) ∈ Et, a=p[i], b=p[j]} W[e][f]
 *    U is n×n (row-major), Es and Et are directed edge lists (pairs of node
 *    indices, no self loops), W is |Es|×|Et| (row-major). The N²×N² affinity
 *    matrix is never built on the default path.
 *
 *  - Koopmans–Beckmann form (QAPLIB instances), MINIMISED by default:
 *      J(p) = Σ_{i,j} A[i][j] · B[p[i]][p[j]]
 *
 * Solvers return a full permutation (never a partial matching) and its
 * objective. See lvmmed_gm_method for the algorithms.
 *
 * Sizes: 1 <= n <= 4096. Lawler edge lists may repeat an edge (its
 * affinities then add up) and need not be sorted; the solver keeps W in
 * float, like the input. Memory: about 7·n² doubles of workspace plus the
 * copied problem (and, for Lawler problems, two n×n edge-index tables), kept
 * between calls while the sizes do not grow, so solving one graph after
 * another allocates nothing. A solver runs on the calling thread
 * only. Results are deterministic: the random starts of AUTO and TWO_OPT
 * draw start r (r = 1..restarts) from stream 0x676d000000000000 + r of the
 * context seed (LVMMED_CTX_OPT_SEED).
 */
#ifndef LVMMED_GM_H
#define LVMMED_GM_H

#include <stddef.h>
#include <stdint.h>

#include <lvmmed/ctx.h>

LVMMED_EXTERN_C_BEGIN

/** Opaque solver (problem + method + workspace). One thread at a time. */
typedef struct lvmmed_gm_solver lvmmed_gm_solver;

/**
 * Solver algorithms. Values are stable.
 *
 * "The LAP solution" is the exact linear assignment of the unary term
 * (Lawler form) or, for Koopmans–Beckmann problems, which have no unary
 * term, of their Gilmore–Lawler linearisation (entry (i, a): A[i][i]·B[a][a]
 * plus the best scalar product of row i of A and row a of B without their
 * diagonals); its objective is that of the resulting permutation, not the
 * bound. SPECTRAL and RRWM need a non-negative affinity: they use
 * (K + Kᵀ)/2 shifted to be non-negative (Lawler: on its support only; KB:
 * everywhere), apply it as an operator (O(n² + |Es|·|Et|) or O(n³) per
 * iteration) and score the discretised permutation on the true objective.
 * IPFP is Frank–Wolfe with exact line search over doubly stochastic matrices,
 * keeping the best rounded permutation; 2-opt is steepest-ascent pairwise
 * swapping with O(1) swap deltas (a gradient matrix kept up to date).
 */
typedef enum lvmmed_gm_method {
  LVMMED_GM_AUTO = 0,     /**< default: LAP solution → IPFP → 2-opt (KB: also barycentre → IPFP → 2-opt),
                               then RESTARTS random permutations → 2-opt; the best wins */
  LVMMED_GM_LAP = 1,      /**< the LAP solution alone (Lawler: unary only, edges ignored) */
  LVMMED_GM_BRUTE = 2,    /**< exhaustive search over all n! permutations; n <= 9 (the oracle) */
  LVMMED_GM_SPECTRAL = 3, /**< spectral matching (power iteration) + LAP discretisation */
  LVMMED_GM_RRWM = 4,     /**< reweighted random walks (α 0.2, β 30) + LAP discretisation */
  LVMMED_GM_IPFP = 5,     /**< integer projected fixed point from the LAP solution */
  LVMMED_GM_TWO_OPT = 6   /**< pairwise-swap local search from the LAP solution (+ RESTARTS random starts) */
} lvmmed_gm_method;

/** Enum-keyed solver options (lvmmed_gm_option_bounds gives the ranges). */
typedef enum lvmmed_gm_option {
  LVMMED_GM_OPT_METHOD = 1,    /**< an lvmmed_gm_method; default AUTO */
  LVMMED_GM_OPT_MAX_ITER = 2,  /**< iteration cap of SPECTRAL, RRWM and IPFP (on Lawler problems
                                    AUTO's IPFP also stops after 3 rounds without a better
                                    permutation); default 50 */
  LVMMED_GM_OPT_RESTARTS = 3,  /**< extra random starts of AUTO/TWO_OPT (seeded by the context); default 0 */
  LVMMED_GM_OPT_MAXIMIZE = 4   /**< Koopmans–Beckmann only: 1 maximises; default 0 (minimise) */
} lvmmed_gm_option;

/** Creates a solver bound to ctx (holds a reference on it). No problem is set yet. */
LVMMED_API lvmmed_status lvmmed_gm_solver_create(lvmmed_ctx *ctx, lvmmed_gm_solver **out);

/** Frees a solver. NULL is a no-op. */
LVMMED_API void lvmmed_gm_solver_free(lvmmed_gm_solver *solver);

/** The context solver was created with (no reference is added); NULL for NULL. */
LVMMED_API lvmmed_ctx *lvmmed_gm_solver_ctx(const lvmmed_gm_solver *solver);

/** Sets an option; out-of-range values give LVMMED_ERR_OUT_OF_RANGE and change nothing. */
LVMMED_API lvmmed_status lvmmed_gm_solver_set_option(lvmmed_gm_solver *solver, lvmmed_gm_option option,
                                                     int64_t value);

/** Reads an option. */
LVMMED_API lvmmed_status lvmmed_gm_solver_get_option(const lvmmed_gm_solver *solver,
                                                     lvmmed_gm_option option, int64_t *value);

/** Inclusive range accepted for option. */
LVMMED_API lvmmed_status lvmmed_gm_option_bounds(lvmmed_gm_option option, int64_t *min_value,
                                                 int64_t *max_value);

/** Lower-case name of a method ("auto", "lap", "brute", "sm", "rrwm", "ipfp", "2opt"); "unknown" otherwise. */
LVMMED_API const char *lvmmed_gm_method_name(lvmmed_gm_method method);

/**
 * Sets a Lawler-form problem (maximised). Arrays are copied.
 * unary: n×n; src_edges: 2*n_src_edges node indices (i0, j0, i1, j1, ...);
 * tgt_edges likewise; edge_affinity: n_src_edges×n_tgt_edges (may be NULL
 * when either edge count is 0). Node indices must be < n, no self loops;
 * values must be finite.
 */
LVMMED_API lvmmed_status lvmmed_gm_set_problem(lvmmed_gm_solver *solver, size_t n, const float *unary,
                                               size_t n_src_edges, const int32_t *src_edges,
                                               size_t n_tgt_edges, const int32_t *tgt_edges,
                                               const float *edge_affinity);

/** Sets a Koopmans–Beckmann problem: A and B are n×n, copied. Sense from LVMMED_GM_OPT_MAXIMIZE. */
LVMMED_API lvmmed_status lvmmed_gm_set_koopmans_beckmann(lvmmed_gm_solver *solver, size_t n,
                                                         const double *a, const double *b);

/**
 * Reads a QAPLIB instance (n, then the n×n matrices A and B, whitespace
 * separated integers or reals) as a Koopmans–Beckmann problem. A second
 * number after n on the first line (some copies store the optimum there) is
 * skipped when the file then holds exactly 2n² + 2 numbers. Malformed files
 * (n not an integer in [1, 4096], a token that is not a finite decimal
 * number, too few or too many numbers) give LVMMED_ERR_FORMAT with the path,
 * line and cause in the message; an unreadable file gives LVMMED_ERR_IO. On
 * failure the previous problem stays set.
 */
LVMMED_API lvmmed_status lvmmed_gm_load_qaplib(lvmmed_gm_solver *solver, const char *path);

/** Number of nodes of the current problem (0 if none is set). */
LVMMED_API size_t lvmmed_gm_problem_size(const lvmmed_gm_solver *solver);

/**
 * Solves the current problem with the configured method. permutation
 * receives n entries (0-based target index of each source node); objective
 * (may be NULL) the objective J of that permutation in the problem's sense.
 * LVMMED_ERR_STATE without a problem; LVMMED_ERR_LIMIT for BRUTE with n > 9.
 */
LVMMED_API lvmmed_status lvmmed_gm_solve(lvmmed_gm_solver *solver, int32_t *permutation,
                                         double *objective);

/** Objective J of a given permutation of the current problem (validates the permutation). */
LVMMED_API lvmmed_status lvmmed_gm_objective(const lvmmed_gm_solver *solver, const int32_t *permutation,
                                             double *objective);

/**
 * Exact linear assignment (shortest augmenting path, Jonker–Volgenant style)
 * on a dense rows×cols cost matrix (row-major, finite values). With
 * rows <= cols every row gets a distinct column; with rows > cols every
 * column gets a distinct row and the unassigned rows get -1.
 * maximize != 0 maximises instead of minimising. assignment receives rows
 * entries; objective (may be NULL) the total cost of the assignment.
 * rows, cols <= INT32_MAX; a NaN or infinite entry gives LVMMED_ERR_NUMERIC,
 * a spread (max - min) so large that (max(rows, cols) + 1) times it could
 * overflow gives LVMMED_ERR_OUT_OF_RANGE. Square problems run column
 * reduction, reduction transfer and augmenting row reduction before the
 * shortest paths; rectangular ones shortest paths only. Allocates one block
 * of O(rows + cols) (plus a rows×cols copy when maximising or rows > cols).
 */
LVMMED_API lvmmed_status lvmmed_lap_solve(lvmmed_ctx *ctx, size_t rows, size_t cols, const double *cost,
                                          int maximize, int32_t *assignment, double *objective);

LVMMED_EXTERN_C_END

#endif /* LVMMED_GM_H */
