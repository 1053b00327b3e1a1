/* kNN graphs on node features and the GCN propagation matrix. */
#include <math.h>
#include <string.h>

#include "graph/affinity_impl.h"

void lvmmed__argsort(size_t n, const float *key, uint32_t *idx, uint32_t *tmp) {
  /* Bottom-up merge sort: stable, so equal keys keep their incoming order. */
  for (size_t width = 1; width < n; width *= 2) {
    for (size_t lo = 0; lo < n; lo += 2 * width) {
      size_t mid = lo + width < n ? lo + width : n, hi = lo + 2 * width < n ? lo + 2 * width : n;
      size_t a = lo, b = mid, o = lo;
      while (a < mid && b < hi) tmp[o++] = key[idx[b]] < key[idx[a]] ? idx[b++] : idx[a++];
      while (a < mid) tmp[o++] = idx[a++];
      while (b < hi) tmp[o++] = idx[b++];
    }
    memcpy(idx, tmp, n * sizeof *idx);
  }
}

AFF_HOT void lvmmed__knn(size_t n, size_t dim, const float *x, size_t k, float *dist, uint32_t *idx,
                 int32_t *edges) {
  /* Exact differences (not the ||a||²+||b||²-2ab expansion) so close points rank correctly. */
  for (size_t i = 0; i < n; i++)
    for (size_t j = i + 1; j < n; j++) {
      float d = aff_sqdist(x + i * dim, x + j * dim, dim);
      dist[i * n + j] = d;
      dist[j * n + i] = d;
    }
  uint32_t *tmp = idx + n;
  for (size_t i = 0; i < n; i++) {
    const float *row = dist + i * n;
    int32_t *out = edges + i * k * 2;
    if (k <= 32) {
      /* insertion into the sorted k best: after the first few candidates almost every
       * test is a predictable "not better"; scanning j upwards keeps ties by index */
      float *bd = (float *)tmp;
      uint32_t *bj = idx;
      size_t have = 0;
      for (size_t j = 0; j < n; j++) {
        if (j == i) continue;
        float d = row[j];
        if (have == k && !(d < bd[k - 1])) continue;
        size_t at = have < k ? have++ : k - 1;
        while (at > 0 && d < bd[at - 1]) {
          bd[at] = bd[at - 1];
          bj[at] = bj[at - 1];
          at--;
        }
        bd[at] = d;
        bj[at] = (uint32_t)j;
      }
      for (size_t r = 0; r < k; r++) {
        out[2 * r] = (int32_t)i;
        out[2 * r + 1] = (int32_t)bj[r];
      }
    } else {
      size_t m = 0;
      for (size_t j = 0; j < n; j++)
        if (j != i) idx[m++] = (uint32_t)j;
      lvmmed__argsort(m, row, idx, tmp);
      for (size_t r = 0; r < k; r++) {
        out[2 * r] = (int32_t)i;
        out[2 * r + 1] = (int32_t)idx[r];
      }
    }
  }
}

AFF_HOT void lvmmed__gcn_adjacency(size_t n, size_t n_edges, const int32_t *edges, int symmetrize, float *adj) {
  memset(adj, 0, n * n * sizeof *adj);
  for (size_t e = 0; e < n_edges; e++) {
    size_t i = (size_t)edges[2 * e], j = (size_t)edges[2 * e + 1];
    adj[i * n + j] = 1.0f;
    if (symmetrize) adj[j * n + i] = 1.0f;
  }
  /* Degrees of A + I, parked on the diagonal (the self loop is the only other diagonal value). */
  for (size_t i = 0; i < n; i++) {
    float s = 1.0f;
    for (size_t j = 0; j < n; j++) s += adj[i * n + j];
    adj[i * n + i] = s;
  }
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < n; j++)
      if (j != i && adj[i * n + j] != 0.0f)
        adj[i * n + j] = 1.0f / sqrtf(adj[i * n + i] * adj[j * n + j]);
  for (size_t i = 0; i < n; i++) adj[i * n + i] = 1.0f / adj[i * n + i];
}

lvmmed_status lvmmed_knn_graph(lvmmed_ctx *ctx, size_t n, size_t dim, const float *x, size_t k,
                               int32_t *edges) {
  if (!ctx) return LVMMED_ERR_INVALID_ARGUMENT;
  if (!x || !edges)
    return lvmmed__fail(ctx, LVMMED_ERR_INVALID_ARGUMENT, "lvmmed_knn_graph: x or edges is NULL");
  if (n < 2 || k < 1 || k >= n || n > INT32_MAX)
    return lvmmed__fail(ctx, LVMMED_ERR_OUT_OF_RANGE,
                        "lvmmed_knn_graph: need 1 <= k < n <= 2^31-1 (n = %zu, k = %zu)", n, k);
  size_t cells, total;
  if (!lvmmed__mul_size(n, dim, &total) || !lvmmed__mul_size(n, n, &cells) ||
      !lvmmed__mul_size(cells, sizeof(float), &cells) || cells > SIZE_MAX / 2)
    return lvmmed__fail(ctx, LVMMED_ERR_LIMIT, "lvmmed_knn_graph: n = %zu, dim = %zu overflow", n, dim);
  for (size_t i = 0; i < total; i++)
    if (!isfinite(x[i]))
      return lvmmed__fail(ctx, LVMMED_ERR_NUMERIC, "lvmmed_knn_graph: x[%zu] is not finite", i);
  float *dist = lvmmed__alloc(ctx, cells + 2 * n * sizeof(uint32_t));
  if (!dist)
    return lvmmed__fail(ctx, LVMMED_ERR_OUT_OF_MEMORY, "lvmmed_knn_graph: %zu bytes of scratch", cells);
  lvmmed__knn(n, dim, x, k, dist, (uint32_t *)(dist + n * n), edges);
  lvmmed__free(ctx, dist);
  return LVMMED_OK;
}

lvmmed_status lvmmed_gcn_adjacency(lvmmed_ctx *ctx, size_t n, size_t n_edges, const int32_t *edges,
                                   int symmetrize, float *adjacency) {
  if (!ctx) return LVMMED_ERR_INVALID_ARGUMENT;
  if (!adjacency || (n_edges && !edges))
    return lvmmed__fail(ctx, LVMMED_ERR_INVALID_ARGUMENT, "lvmmed_gcn_adjacency: NULL array");
  size_t cells;
  if (n == 0 || !lvmmed__mul_size(n, n, &cells) || n > INT32_MAX)
    return lvmmed__fail(ctx, LVMMED_ERR_OUT_OF_RANGE, "lvmmed_gcn_adjacency: n = %zu", n);
  for (size_t e = 0; e < n_edges; e++) {
    int32_t i = edges[2 * e], j = edges[2 * e + 1];
    if (i < 0 || j < 0 || (size_t)i >= n || (size_t)j >= n || i == j)
      return lvmmed__fail(ctx, LVMMED_ERR_OUT_OF_RANGE,
                          "lvmmed_gcn_adjacency: edge %zu = (%d, %d) invalid for n = %zu", e, (int)i,
                          (int)j, n);
  }
  lvmmed__gcn_adjacency(n, n_edges, edges, symmetrize, adjacency);
  return LVMMED_OK;
}
