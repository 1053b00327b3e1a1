/* The dataset reader: epochs, shuffling, worker threads and the bounded queue of decoded items.
 *
 * Queue: epoch position p lives in slot p % Q. A worker may claim position p
 * only while p < consumed + Q, so at most Q items are decoded ahead, and the
 * consumer takes positions strictly in order. Which thread decoded an item
 * never matters: its views depend on (seed, item, epoch, view) only, and bad
 * items are skipped at the same positions whatever the timing.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "core/pool.h"
#include "core/rng.h"
#include "image/dataset_impl.h"

/* ---- options ---- */

static int option_range(lvmmed_dataset_option o, int64_t *lo, int64_t *hi, int64_t *def) {
  switch (o) {
  case LVMMED_DATASET_OPT_WORKERS: *lo = 0; *hi = 64; *def = 1; return 1;
  case LVMMED_DATASET_OPT_QUEUE: *lo = 1; *hi = 4096; *def = 16; return 1;
  case LVMMED_DATASET_OPT_SHUFFLE: *lo = 0; *hi = 1; *def = 1; return 1;
  case LVMMED_DATASET_OPT_STRICT: *lo = 0; *hi = 1; *def = 0; return 1;
  case LVMMED_DATASET_OPT_RECURSIVE: *lo = 0; *hi = 1; *def = 1; return 1;
  case LVMMED_DATASET_OPT_ALL_PAGES: *lo = 0; *hi = 1; *def = 0; return 1;
  case LVMMED_DATASET_OPT_MAX_PIXELS: *lo = 1; *hi = (int64_t)1 << 40; *def = (int64_t)1 << 27; return 1;
  }
  return 0;
}

lvmmed_status lvmmed_dataset_option_bounds(lvmmed_dataset_option option, int64_t *min_value, int64_t *max_value) {
  int64_t lo, hi, def;
  if (!option_range(option, &lo, &hi, &def)) return LVMMED_ERR_INVALID_ARGUMENT;
  if (min_value) *min_value = lo;
  if (max_value) *max_value = hi;
  return LVMMED_OK;
}

lvmmed_status lvmmed_dataset_set_option(lvmmed_dataset *ds, lvmmed_dataset_option option, int64_t value) {
  if (!ds) return LVMMED_ERR_INVALID_ARGUMENT;
  int64_t lo, hi, def;
  if (!option_range(option, &lo, &hi, &def))
    return lvmmed__fail(ds->ctx, LVMMED_ERR_INVALID_ARGUMENT, "lvmmed_dataset_set_option: unknown option %d",
                        (int)option);
  if (value < lo || value > hi)
    return lvmmed__fail(ds->ctx, LVMMED_ERR_OUT_OF_RANGE, "lvmmed_dataset_set_option: option %d = %lld outside [%lld, %lld]",
                        (int)option, (long long)value, (long long)lo, (long long)hi);
  if (ds->running)
    return lvmmed__fail(ds->ctx, LVMMED_ERR_STATE, "lvmmed_dataset_set_option: an epoch is running");
  ds->opt[option] = value;
  return LVMMED_OK;
}

lvmmed_status lvmmed_dataset_get_option(const lvmmed_dataset *ds, lvmmed_dataset_option option, int64_t *value) {
  if (!ds || !value)
    return lvmmed__fail(ds ? ds->ctx : NULL, LVMMED_ERR_INVALID_ARGUMENT, "lvmmed_dataset_get_option: NULL argument");
  int64_t lo, hi, def;
  if (!option_range(option, &lo, &hi, &def))
    return lvmmed__fail(ds->ctx, LVMMED_ERR_INVALID_ARGUMENT, "lvmmed_dataset_get_option: unknown option %d",
                        (int)option);
  *value = ds->opt[option];
  return LVMMED_OK;
}

/* ---- lifetime ---- */

lvmmed_status lvmmed_dataset_create(lvmmed_ctx *ctx, const lvmmed_augmenter *aug, lvmmed_dataset **out) {
  if (!out) return lvmmed__fail(ctx, LVMMED_ERR_INVALID_ARGUMENT, "lvmmed_dataset_create: out is NULL");
  *out = NULL;
  if (!ctx) return LVMMED_ERR_INVALID_ARGUMENT;
  if (!aug) return lvmmed__fail(ctx, LVMMED_ERR_INVALID_ARGUMENT, "lvmmed_dataset_create: aug is NULL");
  lvmmed_dataset *ds = lvmmed__calloc(ctx, 1, sizeof *ds);
  if (!ds) return lvmmed__fail(ctx, LVMMED_ERR_OUT_OF_MEMORY, "lvmmed_dataset_create: out of memory");
  if (pthread_mutex_init(&ds->lock, NULL) != 0) {
    lvmmed__free(ctx, ds);
    return lvmmed__fail(ctx, LVMMED_ERR_THREAD, "lvmmed_dataset_create: cannot create a mutex");
  }
  pthread_cond_init(&ds->cv_work, NULL);
  pthread_cond_init(&ds->cv_ready, NULL);
  ds->ctx = lvmmed_ctx_retain(ctx);
  ds->cfg = aug->cfg;
  for (int o = 1; o < LVMMED__DS_NOPT; o++) {
    int64_t lo, hi;
    option_range((lvmmed_dataset_option)o, &lo, &hi, &ds->opt[o]);
  }
  ds->epoch = -1;
  *out = ds;
  return LVMMED_OK;
}

/* Stops and joins the worker threads of the running epoch (queued work is dropped). */
static void stop_workers(lvmmed_dataset *ds) {
  pthread_mutex_lock(&ds->lock);
  ds->stop = 1;
  pthread_cond_broadcast(&ds->cv_work);
  pthread_mutex_unlock(&ds->lock);
  for (size_t i = 0; i < ds->nworkers; i++)
    if (ds->workers[i].started) {
      pthread_join(ds->workers[i].thread, NULL);
      ds->workers[i].started = 0;
    }
  ds->nstarted = 0;
  ds->running = 0;
}

static void free_workers(lvmmed_dataset *ds) {
  for (size_t i = 0; i < ds->nworkers; i++) {
    lvmmed_image_free(ds->workers[i].img);
    lvmmed__aug_scratch_free(ds->ctx, &ds->workers[i].scratch);
  }
  lvmmed__free(ds->ctx, ds->workers);
  ds->workers = NULL;
  ds->nworkers = 0;
}

static void free_slots(lvmmed_dataset *ds) {
  for (size_t i = 0; i < ds->nslots; i++) {
    lvmmed__free(ds->ctx, ds->slots[i].views);
    lvmmed__free(ds->ctx, ds->slots[i].grids);
  }
  lvmmed__free(ds->ctx, ds->slots);
  ds->slots = NULL;
  ds->nslots = 0;
}

lvmmed_ctx *lvmmed_dataset_ctx(const lvmmed_dataset *ds) { return ds ? ds->ctx : NULL; }

void lvmmed_dataset_free(lvmmed_dataset *ds) {
  if (!ds) return;
  lvmmed_ctx *ctx = ds->ctx;
  stop_workers(ds);
  free_workers(ds);
  free_slots(ds);
  for (size_t i = 0; i < ds->nitems; i++) lvmmed__free(ctx, ds->items[i].path);
  lvmmed__free(ctx, ds->items);
  lvmmed__free(ctx, ds->order);
  pthread_cond_destroy(&ds->cv_work);
  pthread_cond_destroy(&ds->cv_ready);
  pthread_mutex_destroy(&ds->lock);
  lvmmed__free(ctx, ds);
  lvmmed_ctx_release(ctx);
}

/* ---- queries ---- */

const char *lvmmed_dataset_item_path(const lvmmed_dataset *ds, size_t index) {
  return ds && index < ds->nitems ? ds->items[index].path : NULL;
}

lvmmed_status lvmmed_dataset_stat(const lvmmed_dataset *ds, lvmmed_dataset_counter counter, int64_t *value) {
  if (!ds || !value)
    return lvmmed__fail(ds ? ds->ctx : NULL, LVMMED_ERR_INVALID_ARGUMENT, "lvmmed_dataset_stat: NULL argument");
  switch (counter) {
  case LVMMED_DATASET_ITEMS: *value = (int64_t)ds->nitems; return LVMMED_OK;
  case LVMMED_DATASET_DELIVERED: *value = ds->delivered; return LVMMED_OK;
  case LVMMED_DATASET_SKIPPED: *value = ds->skipped; return LVMMED_OK;
  case LVMMED_DATASET_EPOCH: *value = ds->epoch; return LVMMED_OK;
  case LVMMED_DATASET_POSITION: *value = ds->epoch < 0 ? 0 : (int64_t)ds->consumed; return LVMMED_OK;
  }
  return lvmmed__fail(ds->ctx, LVMMED_ERR_INVALID_ARGUMENT, "lvmmed_dataset_stat: unknown counter %d", (int)counter);
}

/* ---- decoding one item ---- */

/* Decodes epoch position pos into slot. Runs on a worker thread or a pool chunk: it must not
 * touch the context's error slot, only its allocator. */
static void process(lvmmed_dataset *ds, lvmmed__ds_worker *w, size_t pos, lvmmed__ds_slot *slot) {
  size_t item = ds->order[pos];
  const lvmmed__ds_item *it = &ds->items[item];
  char err[2 * LVMMED_IMG_ERR_MAX];
  w->img->page = it->page;
  w->img->max_pixels = ds->opt[LVMMED_DATASET_OPT_MAX_PIXELS];
  lvmmed_status st = lvmmed__image_read_path(w->img, it->path, err, sizeof err);
  if (st == LVMMED_OK) {
    char cause[LVMMED_IMG_ERR_MAX];
    st = lvmmed__aug_views(ds->ctx, &ds->cfg, &w->scratch, w->img, item, (uint32_t)ds->epoch, 0, 2, slot->views,
                           slot->grids, NULL, cause, sizeof cause);
    if (st != LVMMED_OK) snprintf(err, sizeof err, "%s: %s", it->path, cause);
  }
  slot->status = st;
  if (st != LVMMED_OK) {
    if (it->page) snprintf(slot->err, sizeof slot->err, "%s (page %u)", err, it->page);
    else snprintf(slot->err, sizeof slot->err, "%s", err);
  }
  slot->pos = pos;
}

static void *worker_main(void *arg) {
  lvmmed__ds_worker *w = arg;
  lvmmed_dataset *ds = w->ds;
  pthread_mutex_lock(&ds->lock);
  while (!ds->stop && ds->claimed < ds->nitems) {
    if (ds->claimed >= ds->consumed + ds->nslots) {
      pthread_cond_wait(&ds->cv_work, &ds->lock);
      continue;
    }
    size_t pos = ds->claimed++;
    lvmmed__ds_slot *slot = &ds->slots[pos % ds->nslots];
    pthread_mutex_unlock(&ds->lock);
    process(ds, w, pos, slot);
    pthread_mutex_lock(&ds->lock);
    slot->ready = 1;
    pthread_cond_broadcast(&ds->cv_ready);
  }
  pthread_mutex_unlock(&ds->lock);
  return NULL;
}

/* Worker states (image + scratch) for n threads or pool chunks. */
static lvmmed_status ensure_workers(lvmmed_dataset *ds, size_t n) {
  if (ds->nworkers >= n) return LVMMED_OK;
  lvmmed__ds_worker *w = lvmmed__calloc(ds->ctx, n, sizeof *w);
  if (!w) return LVMMED_ERR_OUT_OF_MEMORY;
  if (ds->nworkers) memcpy(w, ds->workers, ds->nworkers * sizeof *w);
  lvmmed__free(ds->ctx, ds->workers);
  ds->workers = w;
  for (size_t i = ds->nworkers; i < n; i++) {
    w[i].ds = ds;
    if (lvmmed_image_create(ds->ctx, &w[i].img) != LVMMED_OK) return LVMMED_ERR_OUT_OF_MEMORY;
    ds->nworkers = i + 1;
  }
  return LVMMED_OK;
}

static lvmmed_status ensure_slots(lvmmed_dataset *ds) {
  size_t S = (size_t)ds->cfg.opt[LVMMED_AUG_SIZE], N = (size_t)ds->cfg.opt[LVMMED_AUG_GRID];
  size_t want = (size_t)ds->opt[LVMMED_DATASET_OPT_QUEUE];
  size_t vf = 2 * 3 * S * S, gf = 2 * N * N * 2;
  if (ds->nslots == want && ds->slot_floats == vf && ds->slot_grid_floats == gf) return LVMMED_OK;
  free_slots(ds);
  ds->slots = lvmmed__calloc(ds->ctx, want, sizeof *ds->slots);
  if (!ds->slots) return LVMMED_ERR_OUT_OF_MEMORY;
  ds->nslots = want;
  for (size_t i = 0; i < want; i++) {
    ds->slots[i].views = lvmmed__alloc(ds->ctx, vf * sizeof(float));
    ds->slots[i].grids = lvmmed__alloc(ds->ctx, gf * sizeof(float));
    if (!ds->slots[i].views || !ds->slots[i].grids) {
      free_slots(ds);
      return LVMMED_ERR_OUT_OF_MEMORY;
    }
  }
  ds->slot_floats = vf;
  ds->slot_grid_floats = gf;
  return LVMMED_OK;
}

lvmmed_status lvmmed_dataset_start_epoch(lvmmed_dataset *ds, uint32_t epoch) {
  return lvmmed_dataset_start_epoch_at(ds, epoch, 0);
}

lvmmed_status lvmmed_dataset_start_epoch_at(lvmmed_dataset *ds, uint32_t epoch, uint64_t position) {
  if (!ds) return LVMMED_ERR_INVALID_ARGUMENT;
  if (epoch >= LVMMED_AUG_MAX_EPOCH)
    return lvmmed__fail(ds->ctx, LVMMED_ERR_OUT_OF_RANGE, "lvmmed_dataset_start_epoch: epoch %u >= 2^19", epoch);
  if (ds->nitems == 0) return lvmmed__fail(ds->ctx, LVMMED_ERR_STATE, "lvmmed_dataset_start_epoch: no items");
  if (position > ds->nitems)
    return lvmmed__fail(ds->ctx, LVMMED_ERR_OUT_OF_RANGE,
                        "lvmmed_dataset_start_epoch_at: position %llu > %zu items",
                        (unsigned long long)position, ds->nitems);
  char err[LVMMED_IMG_ERR_MAX];
  lvmmed_status st = lvmmed__aug_check(&ds->cfg, err, sizeof err);
  if (st != LVMMED_OK) return lvmmed__fail(ds->ctx, st, "lvmmed_dataset_start_epoch: %s", err);
  stop_workers(ds);
  size_t W = (size_t)ds->opt[LVMMED_DATASET_OPT_WORKERS];
  size_t states = W ? W : lvmmed__ctx_threads(ds->ctx);
  if (ensure_slots(ds) != LVMMED_OK || ensure_workers(ds, states) != LVMMED_OK)
    return lvmmed__fail(ds->ctx, LVMMED_ERR_OUT_OF_MEMORY, "lvmmed_dataset_start_epoch: out of memory for the queue");
  lvmmed__free(ds->ctx, ds->order);
  ds->order = lvmmed__alloc(ds->ctx, ds->nitems * sizeof *ds->order);
  if (!ds->order) return lvmmed__fail(ds->ctx, LVMMED_ERR_OUT_OF_MEMORY, "lvmmed_dataset_start_epoch: out of memory");
  for (size_t i = 0; i < ds->nitems; i++) ds->order[i] = i;
  if (ds->opt[LVMMED_DATASET_OPT_SHUFFLE]) { /* Fisher-Yates on the epoch's own stream */
    lvmmed_rng r;
    lvmmed__rng_init(&r, ds->cfg.seed, ((uint64_t)3 << 62) | epoch);
    for (size_t i = ds->nitems - 1; i > 0; i--) {
      size_t j = (size_t)lvmmed__rng_below(&r, (uint64_t)i + 1);
      size_t t = ds->order[i];
      ds->order[i] = ds->order[j];
      ds->order[j] = t;
    }
  }
  for (size_t i = 0; i < ds->nslots; i++) ds->slots[i].ready = 0;
  ds->epoch = epoch;
  /* Items before position are skipped unread: views depend only on (seed, item, epoch). */
  ds->consumed = ds->claimed = (size_t)position;
  ds->stop = 0;
  ds->running = 1;
  if (W) {
    /* Workers block every signal so the host's handlers run on its own threads. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (size_t i = 0; i < W; i++) {
      if (pthread_create(&ds->workers[i].thread, NULL, worker_main, &ds->workers[i]) != 0) break;
      ds->workers[i].started = 1;
      ds->nstarted++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (ds->nstarted == 0) {
      ds->running = 0;
      return lvmmed__fail(ds->ctx, LVMMED_ERR_THREAD, "lvmmed_dataset_start_epoch: could not start any worker thread");
    }
    if (ds->nstarted < W)
      lvmmed__log(ds->ctx, LVMMED_LOG_WARN, "lvmmed_dataset: started %zu of %zu worker threads", ds->nstarted, W);
  }
  return LVMMED_OK;
}

/* ---- synchronous mode: decode a run of positions over the context's pool ---- */

typedef struct sync_job {
  lvmmed_dataset *ds;
  size_t first;
} sync_job;

static void sync_chunk(void *arg, size_t begin, size_t end, unsigned chunk) {
  sync_job *job = arg;
  lvmmed_dataset *ds = job->ds;
  for (size_t k = begin; k < end; k++) {
    size_t pos = job->first + k;
    lvmmed__ds_slot *slot = &ds->slots[pos % ds->nslots];
    process(ds, &ds->workers[chunk], pos, slot);
    slot->ready = 1;
  }
}

static void fill_sync(lvmmed_dataset *ds, size_t want) {
  size_t left = ds->nitems - ds->claimed, room = ds->consumed + ds->nslots - ds->claimed;
  size_t n = want < left ? want : left;
  if (n > room) n = room;
  if (n == 0) return;
  sync_job job = {ds, ds->claimed};
  /* Chunks index the worker states: never more chunks than states, even if the context's
   * thread count grew since the epoch started. */
  size_t min_chunk = (n + ds->nworkers - 1) / ds->nworkers;
  lvmmed__parallel_for(ds->ctx, n, min_chunk, sync_chunk, &job);
  ds->claimed += n;
}

lvmmed_status lvmmed_dataset_next_batch(lvmmed_dataset *ds, size_t max_images, float *views_s, float *views_t,
                                        float *grids_s, float *grids_t, int64_t *items, size_t *count) {
  if (!ds) return LVMMED_ERR_INVALID_ARGUMENT;
  if (!count || (max_images && (!views_s || !views_t)))
    return lvmmed__fail(ds->ctx, LVMMED_ERR_INVALID_ARGUMENT, "lvmmed_dataset_next_batch: NULL output buffer");
  *count = 0;
  if (ds->epoch < 0) return lvmmed__fail(ds->ctx, LVMMED_ERR_STATE, "lvmmed_dataset_next_batch: no epoch started");
  size_t view = ds->slot_floats / 2, grid = ds->slot_grid_floats / 2;
  int threaded = ds->nstarted > 0;
  lvmmed_status result = LVMMED_OK;
  size_t b = 0;
  while (b < max_images && ds->running && ds->consumed < ds->nitems) {
    size_t pos = ds->consumed;
    lvmmed__ds_slot *slot = &ds->slots[pos % ds->nslots];
    if (threaded) {
      pthread_mutex_lock(&ds->lock);
      while (!(slot->ready && slot->pos == pos)) pthread_cond_wait(&ds->cv_ready, &ds->lock);
      pthread_mutex_unlock(&ds->lock);
    } else if (ds->claimed <= pos) {
      fill_sync(ds, max_images - b);
    }
    if (slot->status == LVMMED_OK) {
      memcpy(views_s + b * view, slot->views, view * sizeof(float));
      memcpy(views_t + b * view, slot->views + view, view * sizeof(float));
      if (grids_s) memcpy(grids_s + b * grid, slot->grids, grid * sizeof(float));
      if (grids_t) memcpy(grids_t + b * grid, slot->grids + grid, grid * sizeof(float));
      if (items) items[b] = (int64_t)ds->order[pos];
      b++;
      ds->delivered++;
    } else {
      ds->skipped++;
      if (ds->opt[LVMMED_DATASET_OPT_STRICT]) {
        result = lvmmed__fail(ds->ctx, slot->status, "lvmmed_dataset_next_batch: %s", slot->err);
      } else {
        lvmmed__log(ds->ctx, LVMMED_LOG_WARN, "lvmmed_dataset: skipped item %zu: %s", ds->order[pos], slot->err);
      }
    }
    pthread_mutex_lock(&ds->lock);
    slot->ready = 0;
    ds->consumed++;
    pthread_cond_broadcast(&ds->cv_work);
    pthread_mutex_unlock(&ds->lock);
    if (result != LVMMED_OK) break;
  }
  if (ds->running && ds->consumed >= ds->nitems) stop_workers(ds); /* the epoch is over */
  *count = b;
  return result;
}
