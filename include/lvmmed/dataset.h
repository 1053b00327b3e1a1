/* liblvmmed — dataset reader: image files in, batches of two views out.
 *
 * An lvmmed_dataset lists image files (a folder, recursively by extension,
 * a list file, or single files), and per epoch delivers every item once as
 * two augmented views (views 0 and 1 of lvmmed_augmenter_views) with their
 * location grids, in batches of up to B images.
 *
 * Order: items are sorted by path (byte-wise) within each folder added, in
 * the order sources were added; with shuffling on, each epoch visits them
 * in a permutation drawn from (seed, epoch). Views come from the
 * augmenter's streams keyed by (seed, item index, epoch, view). Batches are
 * therefore identical whatever the number of worker threads.
 *
 * Bad files: an unreadable or corrupt file is skipped, counted
 * (LVMMED_DATASET_SKIPPED) and reported through the context's log callback
 * (LVMMED_LOG_WARN, naming the file and the cause); the batch is filled with
 * the following items. In strict mode the batch call instead fails with that
 * file's error (the bad item is consumed: the next call continues after it).
 *
 * Threads: with LVMMED_DATASET_OPT_WORKERS = W > 0, W threads of the dataset
 * decode and augment ahead of the consumer into a bounded queue of
 * LVMMED_DATASET_OPT_QUEUE items; each item is processed by one worker on its
 * own, without the context's thread pool, so the process runs up to
 * W + LVMMED_CTX_OPT_THREADS busy threads while training computes; choose
 * W + threads <= cores. With W = 0 nothing runs ahead: the batch call decodes
 * its images itself, spread over the context's threads (its pool).
 * A dataset handle is used by one thread at a time.
 */
#ifndef LVMMED_DATASET_H
#define LVMMED_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include <lvmmed/augment.h>
#include <lvmmed/ctx.h>
#include <lvmmed/export.h>
#include <lvmmed/status.h>

LVMMED_EXTERN_C_BEGIN

/** Opaque dataset reader. */
typedef struct lvmmed_dataset lvmmed_dataset;

/** Enum-keyed options (see lvmmed_dataset_option_bounds). Settable only while no
 *  epoch is running (before the first lvmmed_dataset_start_epoch, or after an epoch's
 *  last batch); otherwise LVMMED_ERR_STATE. */
typedef enum lvmmed_dataset_option {
  LVMMED_DATASET_OPT_WORKERS = 1,    /**< decoding threads W, default 1, [0, 64] */
  LVMMED_DATASET_OPT_QUEUE = 2,      /**< items decoded ahead at most, default 16, [1, 4096] */
  LVMMED_DATASET_OPT_SHUFFLE = 3,    /**< 1 (default): new permutation every epoch; 0: list order */
  LVMMED_DATASET_OPT_STRICT = 4,     /**< 1: a bad file fails the batch call; 0 (default): skip it */
  LVMMED_DATASET_OPT_RECURSIVE = 5,  /**< 1 (default): add_folder descends into subfolders */
  LVMMED_DATASET_OPT_ALL_PAGES = 6,  /**< 1: every page of a multi-page TIFF is an item (files
                                          are opened when added); 0 (default): page 0 only */
  LVMMED_DATASET_OPT_MAX_PIXELS = 7  /**< decoding limit, as LVMMED_IMAGE_OPT_MAX_PIXELS */
} lvmmed_dataset_option;

/** Counters (lvmmed_dataset_stat). */
typedef enum lvmmed_dataset_counter {
  LVMMED_DATASET_ITEMS = 1,     /**< items listed */
  LVMMED_DATASET_DELIVERED = 2, /**< images delivered in batches since creation */
  LVMMED_DATASET_SKIPPED = 3,   /**< bad items skipped (or failed in strict mode) since creation */
  LVMMED_DATASET_EPOCH = 4,     /**< epoch of the last lvmmed_dataset_start_epoch (-1 before) */
  LVMMED_DATASET_POSITION = 5   /**< items of the current epoch consumed so far */
} lvmmed_dataset_counter;

/**
 * Creates an empty reader whose views follow aug's configuration and seed,
 * copied now (aug may be changed or freed afterwards).
 */
LVMMED_API lvmmed_status lvmmed_dataset_create(lvmmed_ctx *ctx, const lvmmed_augmenter *aug,
                                               lvmmed_dataset **out);

/** Stops the workers and frees the reader. NULL is a no-op. */
LVMMED_API void lvmmed_dataset_free(lvmmed_dataset *ds);

/** The context ds reports errors to (borrowed; NULL for NULL). */
LVMMED_API lvmmed_ctx *lvmmed_dataset_ctx(const lvmmed_dataset *ds);

/** Sets an option (see lvmmed_dataset_option). */
LVMMED_API lvmmed_status lvmmed_dataset_set_option(lvmmed_dataset *ds,
                                                   lvmmed_dataset_option option, int64_t value);

/** Reads an option into *value. */
LVMMED_API lvmmed_status lvmmed_dataset_get_option(const lvmmed_dataset *ds,
                                                   lvmmed_dataset_option option, int64_t *value);

/** Inclusive range accepted by lvmmed_dataset_set_option for option. */
LVMMED_API lvmmed_status lvmmed_dataset_option_bounds(lvmmed_dataset_option option,
                                                      int64_t *min_value, int64_t *max_value);

/**
 * Adds the image files under folder whose names end in an extension this
 * build decodes (.png; .tif, .tiff; .jpg, .jpeg; any letter case), sorted
 * by path. Hidden entries (names starting with '.') are skipped. A folder
 * without images adds nothing and succeeds. Not while an epoch runs.
 */
LVMMED_API lvmmed_status lvmmed_dataset_add_folder(lvmmed_dataset *ds, const char *folder);

/**
 * Adds the files named in a text file, one path per line, in file order;
 * relative paths are relative to the list file's folder; empty lines and
 * lines starting with '#' are ignored; trailing CR/whitespace is trimmed.
 * Files are not opened (except with ALL_PAGES).
 */
LVMMED_API lvmmed_status lvmmed_dataset_add_list(lvmmed_dataset *ds, const char *list_path);

/** Adds one file (not opened, except with ALL_PAGES). */
LVMMED_API lvmmed_status lvmmed_dataset_add_file(lvmmed_dataset *ds, const char *path);

/** Path of item index (valid until the reader is freed), or NULL if out of range. */
LVMMED_API const char *lvmmed_dataset_item_path(const lvmmed_dataset *ds, size_t index);

/** Reads a counter into *value. */
LVMMED_API lvmmed_status lvmmed_dataset_stat(const lvmmed_dataset *ds,
                                             lvmmed_dataset_counter counter, int64_t *value);

/**
 * Starts epoch epoch (< LVMMED_AUG_MAX_EPOCH): fixes its order and starts
 * the workers. A running epoch is abandoned (its queued work dropped).
 * Errors: LVMMED_ERR_STATE for an empty dataset, LVMMED_ERR_THREAD if no
 * worker could be started.
 */
LVMMED_API lvmmed_status lvmmed_dataset_start_epoch(lvmmed_dataset *ds, uint32_t epoch);

/**
 * lvmmed_dataset_start_epoch, then skips the first position items of the
 * epoch's order without reading them (position <= item count, else
 * LVMMED_ERR_OUT_OF_RANGE): the batches that follow are the ones an
 * uninterrupted epoch would deliver after position items, which is how a run
 * resumes from a checkpoint.
 */
LVMMED_API lvmmed_status lvmmed_dataset_start_epoch_at(lvmmed_dataset *ds, uint32_t epoch,
                                                       uint64_t position);

/**
 * Fills up to max_images images of the current epoch: view 0 of image b
 * at views_s + b * 3*S*S, view 1 at views_t + b * 3*S*S, grids at
 * grids_s/grids_t + b * N*N*2 (grids may be NULL), the item index at
 * items[b] (items may be NULL). *count is the number filled; fewer than
 * max_images only at the end of the epoch, 0 once it is over (then the
 * workers have stopped and options may be changed).
 * Errors: LVMMED_ERR_STATE (no epoch started), LVMMED_ERR_INVALID_ARGUMENT,
 * and in strict mode the bad file's error (with *count the images filled
 * before it).
 */
LVMMED_API lvmmed_status lvmmed_dataset_next_batch(lvmmed_dataset *ds, size_t max_images,
                                                   float *views_s, float *views_t, float *grids_s,
                                                   float *grids_t, int64_t *items, size_t *count);

LVMMED_EXTERN_C_END

#endif /* LVMMED_DATASET_H */
