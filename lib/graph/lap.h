/* liblvmmed — private exact linear assignment (dense, double).
 *
 * The public wrapper lvmmed_lap_solve (lap.c) validates, transposes and negates
 * as needed; the graph-matching solvers call lvmmed__lap_min directly with a
 * scratch block they own, so their inner loops never allocate.
 */
#ifndef LVMMED_GRAPH_LAP_H
#define LVMMED_GRAPH_LAP_H

#include <stddef.h>
#include <stdint.h>

/** Bytes of scratch lvmmed__lap_min needs for a rows×cols problem (rows <= cols); 0 on overflow. */
size_t lvmmed__lap_scratch_size(size_t rows, size_t cols);

/**
 * Minimum-cost assignment of every row of a dense rows×cols matrix
 * (rows <= cols, row-major, finite values whose spread times (cols + 1) stays
 * far below DBL_MAX) to distinct columns. row_to_col receives rows entries.
 * Square problems use Jonker–Volgenant (column reduction, reduction
 * transfer, augmenting row reduction, then shortest augmenting paths);
 * rectangular ones shortest augmenting paths from zero prices. scratch holds
 * lvmmed__lap_scratch_size(rows, cols) bytes, 8-byte aligned.
 */
void lvmmed__lap_min(size_t rows, size_t cols, const double *cost, int32_t *row_to_col,
                     void *scratch);

#endif /* LVMMED_GRAPH_LAP_H */
