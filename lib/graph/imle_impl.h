/* liblvmmed — private parts of the I-MLE estimator: noise samplers and a
 * test hook that replaces the solver call. */
#ifndef LVMMED_GRAPH_IMLE_IMPL_H
#define LVMMED_GRAPH_IMLE_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "core/rng.h"
#include "lvmmed/imle.h"

/**
 * Adds scale·Gumbel(0, 1) to out[0..count) for the elements offset..offset+count-1 of
 * the noise stream keyed by key: element x takes 24 bits of SplitMix64(key + (x/2 + 1)·φ)
 * (φ the 64-bit golden ratio), so any range of a stream is reproducible on its own.
 * Bit-identical on every x86-64 code path (no FMA contraction).
 */
void lvmmed__gumbel_add(uint64_t key, uint64_t offset, size_t count, float scale, float *out);

/** Adds sum-of-Gamma noise (τ/κ)·(Σ_{i=1..terms} Gamma(1/κ, κ/i) − log terms) to out[0..count). */
void lvmmed__sog_add(lvmmed_rng *rng, size_t count, double kappa, double tau, unsigned terms, float *out);

/** A MAP oracle: writes the maximising permutation of the Lawler problem into perm. */
typedef lvmmed_status (*lvmmed__imle_map_fn)(void *user, lvmmed_gm_solver *solver, size_t n,
                                             const float *unary, size_t n_src_edges,
                                             const int32_t *src_edges, size_t n_tgt_edges,
                                             const int32_t *tgt_edges, const float *edge_affinity,
                                             int32_t *perm);

/** Tests only: routes every solve through fn (NULL restores lvmmed_gm_solve); solvers may then be NULL. */
void lvmmed__imle_set_map_hook(lvmmed_imle *imle, lvmmed__imle_map_fn fn, void *user);

#endif /* LVMMED_GRAPH_IMLE_IMPL_H */
