/* liblvmmed — private layout of the dataset reader (dataset.c: epochs, workers, batches;
 * dataset_list.c: folders and list files). */
#ifndef LVMMED_DATASET_IMPL_H
#define LVMMED_DATASET_IMPL_H

#include <pthread.h>

#include "image/augment_impl.h"
#include "lvmmed/dataset.h"

#define LVMMED__DS_NOPT 8 /* options are 1..7 */

typedef struct lvmmed__ds_item {
  char *path;
  uint32_t page;
} lvmmed__ds_item;

/* One decoded-and-augmented item waiting for the consumer. */
typedef struct lvmmed__ds_slot {
  int ready;
  size_t pos; /* epoch position it holds */
  lvmmed_status status;
  char err[2 * LVMMED_IMG_ERR_MAX + 32];
  float *views; /* 2 x 3 x S x S */
  float *grids; /* 2 x N x N x 2 */
} lvmmed__ds_slot;

/* What one decoding thread (or one pool chunk) owns. */
typedef struct lvmmed__ds_worker {
  struct lvmmed_dataset *ds;
  lvmmed_image *img;
  lvmmed__aug_scratch scratch;
  pthread_t thread;
  int started;
} lvmmed__ds_worker;

struct lvmmed_dataset {
  lvmmed_ctx *ctx;
  lvmmed__aug_config cfg;
  int64_t opt[LVMMED__DS_NOPT];
  lvmmed__ds_item *items;
  size_t nitems, items_cap;

  /* the current epoch */
  int running;
  int64_t epoch; /* -1 before the first */
  size_t *order;
  size_t consumed, claimed;
  lvmmed__ds_slot *slots;
  size_t nslots;
  size_t slot_floats, slot_grid_floats; /* sizes the slots were made for */
  pthread_mutex_t lock;
  pthread_cond_t cv_work, cv_ready;
  int stop;
  lvmmed__ds_worker *workers; /* opt WORKERS threads, or one per pool chunk when 0 */
  size_t nworkers;
  size_t nstarted;

  int64_t delivered, skipped;
};

/** Appends an item (path copied). */
lvmmed_status lvmmed__ds_append(lvmmed_dataset *ds, const char *path, uint32_t page, char *err, size_t errlen);

/** Appends a file, expanded to its pages when ALL_PAGES is set. */
lvmmed_status lvmmed__ds_append_file(lvmmed_dataset *ds, const char *path, char *err, size_t errlen);

/** 1 if name ends in an extension of a format this build decodes. */
int lvmmed__ds_has_image_extension(const char *name);

#endif /* LVMMED_DATASET_IMPL_H */
