/* liblvmmed — the affinity builder: kNN graphs, GCN message passing, and the
 * vertex and edge affinities of LVM-Med's graph-matching problems.
 *
 * A batch of B images, each seen in two views s and t, is cut into
 * G = floor(B / N) groups of N consecutive images (N = LVMMED_AFFINITY_OPT_GROUP_SIZE,
 * default 16; the B - G·N images left over take no part). Group g gives one
 * pair of graphs and one matching problem (nodes i, a in [0, N) are the images
 * g·N + i of view s and g·N + a of view t):
 *
 *   edges      E^v = kNN(Z^v): the k nearest other nodes of each node in
 *              Euclidean distance on the raw features z (ties: lower index),
 *              directed i → j, listed node by node, nearest first: |E^v| = N·k.
 *   GCN        H_0 = Z^v, H_l = ReLU(Â H_{l-1} W_l) (l = 1..L, the last ReLU
 *              optional), Ẑ^v = H_L, with Â = D^{-1/2} (A + I) D^{-1/2},
 *              A = max(A_knn, A_knnᵀ) (symmetrised, default) or A_knn, D the
 *              row sums of A + I. The weights W_l are shared by both views
 *              and all groups, owned by the handle (see "Parameters").
 *   c_glo      c_glo[i][a] = cos(ẑ^s_i, ẑ^t_a)
 *   local      VICRegL-style, from the feature maps y (D×R×S per image) and
 *              the location grids of the views (R×S×2 per image): for the
 *              ordered pair i → a, every position p of y^s_i is matched to
 *              the nearest cell of y^t_a by grid location and by feature
 *              (Euclidean); the γ_loc (γ_feat) positions with the smallest
 *              distance are kept (ties: lower position) and
 *                 loc(i→a)  = mean over kept p of cos(y^s_i[p], y^t_a[loc_nn(p)])
 *                 feat(i→a) = mean over kept p of cos(y^s_i[p], y^t_a[feat_nn(p)])
 *              a → i is the same with the views exchanged.
 *   c_v        MEAN (default):  α·c_glo + (1-α)·½·(ℓ(i→a) + ℓ(a→i)), ℓ = ½(loc + feat)
 *              SUM (eq. 2-3):   α·c_glo + (1-α)·(ℓ(i→a) + ℓ(a→i)),   ℓ = loc + feat
 *              ONE_WAY:         α·c_glo + (1-α)·ℓ(i→a),              ℓ = ½(loc + feat)
 *              Without feature maps (NULL), or with α = 1, c_v = c_glo.
 *   c_e        c_e[e][f] = cos(ẑ^s_i - ẑ^s_j, ẑ^t_a - ẑ^t_b) for e = (i→j) ∈ E^s,
 *              f = (a→b) ∈ E^t: an |E^s|×|E^t| matrix.
 *
 * A cosine involving a vector of norm <= 1e-8 (a dead ReLU node, two nodes
 * whose GCN outputs coincide, an all-zero map position) is undefined: it is
 * taken as 0 and passes no gradient. The kNN structure, the nearest
 * neighbours and the top-γ selections are constants for the backward pass.
 *
 * Defaults follow METHOD.md §3-§5 and §9, with these inferred choices (all
 * configurable): symmetrised adjacency with self loops and D^{-1/2}(A+I)D^{-1/2},
 * ReLU after both layers, no bias, MEAN local normalisation, γ_loc = 20,
 * γ_feat = 49, α = 0.8, GCN weights Glorot-uniform from the context seed.
 *
 * Lifetime and threading: forward keeps what backward needs (a copy of the
 * node features, the graphs, the GCN activations and the local-term matches)
 * until the next forward, a change of any option, lvmmed_affinity_reset_params
 * or the free; backward may be called any number of times in between. The
 * feature maps are not copied: backward reads them again from the caller.
 * Groups are processed in parallel on the context's threads; results are
 * bit-identical for a given thread count. One thread at a time per handle.
 */
#ifndef LVMMED_AFFINITY_H
#define LVMMED_AFFINITY_H

#include <stddef.h>
#include <stdint.h>

#include <lvmmed/ctx.h>

LVMMED_EXTERN_C_BEGIN

/** Opaque affinity builder (configuration, GCN weights and gradients, workspace, saved forward state). */
typedef struct lvmmed_affinity lvmmed_affinity;

/** Local-term normalisations (LVMMED_AFFINITY_OPT_LOCAL_NORM); see the formulas above. Values are stable. */
typedef enum lvmmed_local_norm {
  LVMMED_LOCAL_NORM_MEAN = 0,   /**< ½ of the sum of both directions, ℓ = ½(loc + feat) (default) */
  LVMMED_LOCAL_NORM_SUM = 1,    /**< both directions summed, ℓ = loc + feat (paper eq. 2-3 literally) */
  LVMMED_LOCAL_NORM_ONE_WAY = 2 /**< direction i → a only, ℓ = ½(loc + feat) (paper pseudo-code) */
} lvmmed_local_norm;

/**
 * Enum-keyed options, all read and written as double (integer options take
 * integral values). lvmmed_affinity_option_bounds gives each range.
 * Setting an option discards the saved forward state; setting FEATURE_DIM,
 * GCN_WIDTH or GCN_LAYERS to a new value also re-initialises the GCN weights
 * (from the context seed) and zeroes their gradients. Values are stable.
 */
typedef enum lvmmed_affinity_option {
  LVMMED_AFFINITY_OPT_GROUP_SIZE = 1,     /**< N, images per graph; default 16; [2, 4096] */
  LVMMED_AFFINITY_OPT_KNN = 2,            /**< k, neighbours per node; default 5; [1, 4095]; must be < N */
  LVMMED_AFFINITY_OPT_FEATURE_DIM = 3,    /**< F, length of the node features z; default 128; [1, 65536] */
  LVMMED_AFFINITY_OPT_GCN_WIDTH = 4,      /**< width of every GCN layer; default 128; [1, 65536] */
  LVMMED_AFFINITY_OPT_GCN_LAYERS = 5,     /**< L, GCN layers; default 2; [0, 8] (0: Ẑ = Z) */
  LVMMED_AFFINITY_OPT_GCN_RELU_LAST = 6,  /**< 1: ReLU after the last layer too (default); 0: linear last layer */
  LVMMED_AFFINITY_OPT_SYMMETRIZE = 7,     /**< 1: A = max(A_knn, A_knnᵀ) (default); 0: directed kNN adjacency */
  LVMMED_AFFINITY_OPT_ALPHA = 8,          /**< α, weight of the global cosine; default 0.8; [0, 1] */
  LVMMED_AFFINITY_OPT_GAMMA_LOC = 9,      /**< γ_loc, kept location matches (capped at R·S); default 20; [1, 65535] */
  LVMMED_AFFINITY_OPT_GAMMA_FEAT = 10,    /**< γ_feat, kept feature matches (capped at R·S); default 49; [1, 65535] */
  LVMMED_AFFINITY_OPT_LOCAL_NORM = 11     /**< an lvmmed_local_norm; default MEAN */
} lvmmed_affinity_option;

/** Creates an affinity builder with default options and freshly initialised GCN weights.
 *  Holds a reference on ctx. *out is NULL on failure. */
LVMMED_API lvmmed_status lvmmed_affinity_create(lvmmed_ctx *ctx, lvmmed_affinity **out);

/** Frees the builder and drops its context reference. NULL is a no-op. */
LVMMED_API void lvmmed_affinity_free(lvmmed_affinity *aff);

/** The context aff was created with (no reference is added); NULL for NULL. */
LVMMED_API lvmmed_ctx *lvmmed_affinity_ctx(const lvmmed_affinity *aff);

/** Sets an option. Out-of-range or non-integral values give LVMMED_ERR_OUT_OF_RANGE and change nothing. */
LVMMED_API lvmmed_status lvmmed_affinity_set_option(lvmmed_affinity *aff, lvmmed_affinity_option option,
                                                    double value);

/** Reads an option into *value. */
LVMMED_API lvmmed_status lvmmed_affinity_get_option(const lvmmed_affinity *aff,
                                                    lvmmed_affinity_option option, double *value);

/** Inclusive range [*min_value, *max_value] of an option. */
LVMMED_API lvmmed_status lvmmed_affinity_option_bounds(lvmmed_affinity_option option, double *min_value,
                                                       double *max_value);

/**
 * Shapes of a forward pass over n_images images with the current options:
 * n_graphs = floor(n_images / N) groups, n_nodes = N, n_edges = N·k edges per
 * graph and view, out_dim = width of the refined node features Ẑ (the GCN
 * width, or F when L = 0). Any output pointer may be NULL.
 */
LVMMED_API lvmmed_status lvmmed_affinity_shape(const lvmmed_affinity *aff, size_t n_images,
                                               size_t *n_graphs, size_t *n_nodes, size_t *n_edges,
                                               size_t *out_dim);

/**
 * Builds every graph of a batch and its affinities.
 *
 * Inputs (borrowed for the call; float32, row-major, finite):
 *   z_s, z_t        n_images × F node features of views s and t (projector outputs);
 *   maps_s, maps_t  n_images × channels × height × width feature maps (NCHW), or
 *                   both NULL for no local term (then channels, height, width
 *                   and the grids are ignored);
 *   grid_s, grid_t  n_images × height × width × 2 location of each map cell in
 *                   the original image (any 2-D coordinates; only distances matter).
 * Outputs (caller buffers; shapes from lvmmed_affinity_shape, G graphs, N nodes, E edges):
 *   unary           G × N × N, c_v of each graph (row i: node of view s);
 *   edge_affinity   G × E × E, c_e of each graph (may be NULL to skip it);
 *   src_edges       G × E × 2 int32 node indices (i, j) in [0, N) of E^s (may be NULL);
 *   tgt_edges       G × E × 2 of E^t (may be NULL).
 * n_images < N gives LVMMED_ERR_SHAPE; k >= N gives LVMMED_ERR_OUT_OF_RANGE.
 */
LVMMED_API lvmmed_status lvmmed_affinity_forward(lvmmed_affinity *aff, size_t n_images, const float *z_s,
                                                 const float *z_t, const float *maps_s,
                                                 const float *maps_t, size_t channels, size_t height,
                                                 size_t width, const float *grid_s, const float *grid_t,
                                                 float *unary, float *edge_affinity, int32_t *src_edges,
                                                 int32_t *tgt_edges);

/**
 * Back-propagates dL/dc_v (grad_unary, G×N×N) and dL/dc_e (grad_edge, G×E×E;
 * NULL means zero) of the last forward. maps_s and maps_t must be the same,
 * unchanged buffers given to that forward (NULL if it had none).
 * Outputs, overwritten (images outside every group get zeros):
 *   grad_z_s, grad_z_t        n_images × F (each may be NULL);
 *   grad_maps_s, grad_maps_t  n_images × channels × height × width (each may be NULL).
 * The GCN weight gradients are ADDED to the handle's gradient buffers
 * (lvmmed_affinity_zero_grad clears them). Without a forward: LVMMED_ERR_STATE.
 */
LVMMED_API lvmmed_status lvmmed_affinity_backward(lvmmed_affinity *aff, const float *grad_unary,
                                                  const float *grad_edge, const float *maps_s,
                                                  const float *maps_t, float *grad_z_s, float *grad_z_t,
                                                  float *grad_maps_s, float *grad_maps_t);

/* ---- Parameters (the GCN weights) ----
 * Tensor l (l = 0..L-1) is named "gcn.<l>.weight" with shape rows × cols =
 * (in × out), in = F for l = 0 and the GCN width otherwise: H_l = Â H_{l-1} W_l
 * (note: the transpose of a torch.nn.Linear weight). */

/** Number of parameter tensors (L). */
LVMMED_API size_t lvmmed_affinity_param_count(const lvmmed_affinity *aff);

/** Name and shape of tensor index (name: static for the handle's life). Any output may be NULL. */
LVMMED_API lvmmed_status lvmmed_affinity_param_info(const lvmmed_affinity *aff, size_t index,
                                                    const char **name, size_t *rows, size_t *cols);

/**
 * Direct pointers to tensor index's values and gradient (rows·cols floats
 * each; either output may be NULL), for optimizers that update in place.
 * Valid until the handle is freed or FEATURE_DIM, GCN_WIDTH or GCN_LAYERS changes.
 */
LVMMED_API lvmmed_status lvmmed_affinity_param_data(lvmmed_affinity *aff, size_t index, float **value,
                                                    float **grad);

/** Copies the named tensor into dst (count must equal rows·cols). Unknown names: LVMMED_ERR_NOT_FOUND. */
LVMMED_API lvmmed_status lvmmed_affinity_param_read(const lvmmed_affinity *aff, const char *name,
                                                    float *dst, size_t count);

/** Overwrites the named tensor from src (count = rows·cols, finite values); discards the forward state. */
LVMMED_API lvmmed_status lvmmed_affinity_param_write(lvmmed_affinity *aff, const char *name,
                                                     const float *src, size_t count);

/** Sets every parameter gradient to zero. */
LVMMED_API lvmmed_status lvmmed_affinity_zero_grad(lvmmed_affinity *aff);

/** Re-initialises the GCN weights (Glorot uniform from the context seed, so equal seeds give equal
 *  weights), zeroes the gradients and discards the forward state. */
LVMMED_API lvmmed_status lvmmed_affinity_reset_params(lvmmed_affinity *aff);

/* ---- Building blocks, usable on their own ---- */

/**
 * Directed kNN graph of n points (x: n × dim, row-major, finite): for each
 * point i its k nearest other points j by Euclidean distance (ties: lower
 * index), nearest first. edges receives n·k pairs (i, j), i-major. 1 <= k < n.
 */
LVMMED_API lvmmed_status lvmmed_knn_graph(lvmmed_ctx *ctx, size_t n, size_t dim, const float *x, size_t k,
                                          int32_t *edges);

/**
 * GCN propagation matrix Â = D^{-1/2} (A + I) D^{-1/2} (n × n, row-major) of a
 * directed edge list (pairs (i, j) with i, j < n, i != j; duplicates count
 * once): A[i][j] = 1 for every edge, then A = max(A, Aᵀ) when symmetrize != 0;
 * D holds the row sums of A + I.
 */
LVMMED_API lvmmed_status lvmmed_gcn_adjacency(lvmmed_ctx *ctx, size_t n, size_t n_edges,
                                              const int32_t *edges, int symmetrize, float *adjacency);

LVMMED_EXTERN_C_END

#endif /* LVMMED_AFFINITY_H */
