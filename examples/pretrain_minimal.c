/* pretrain_minimal — LVM-Med pretraining put together by hand from the
 * library's building blocks: a ResNet backbone with its projector, the
 * affinity builder (kNN graphs + GCN + vertex/edge affinities), a
 * graph-matching solver per thread, I-MLE to differentiate through the
 * solver, and Adam.
 *
 *   cc pretrain_minimal.c $(pkg-config --cflags --libs lvmmed) -o pretrain_minimal
 *   ./pretrain_minimal DIR [steps] [image_size] [batch] [OUT.safetensors]
 *
 * OUT.safetensors, if given, receives the trained weights (embed.c reads them).
 *
 * One step, forward then backward (B images, each seen in two views s and t):
 *
 *   dataset    → x = [views s; views t]       2B × 3 × S × S, and their location grids
 *   backbone   → pooled 2B × D, maps 2B × D × h × w      (train-mode batch norm)
 *   projector  → z 2B × P                                  (P = 128)
 *   affinity   → per group of 16 images: unary c_v 16 × 16, edges, edge affinity c_e
 *   I-MLE      → a matching per group (perturb-and-MAP), Hamming loss vs. identity
 *   ... and back: I-MLE → affinity → projector → backbone → Adam.
 *
 * Image i of view s should be matched to image i of view t: the loss counts
 * the images the solver matched to a different image's other view.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lvmmed/lvmmed.h>

#define ARCH LVMMED_ARCH_RESNET18
#define ARCH_NAME "resnet18"
#define GROUP 16          /* images per matching problem (LVM-Med's N) */
#define LEARNING_RATE 2e-3 /* LVM-Med's Adam learning rate */

/* Everything the training loop owns. Handles start NULL; trainer_free frees them. */
typedef struct trainer {
  lvmmed_ctx *ctx;
  lvmmed_augmenter *aug;
  lvmmed_dataset *data;
  lvmmed_backbone *backbone;
  lvmmed_affinity *affinity;
  lvmmed_imle *imle;
  lvmmed_gm_solver **solvers; /* one per context thread */
  size_t n_solvers;
  lvmmed_optimizer *optim;

  uint32_t epoch;
  size_t epoch_images; /* images delivered by the current epoch so far */

  /* Sizes. */
  size_t batch, size, feature_dim, map_side, proj_dim, graphs, nodes, edges;

  /* Buffers (the first half of each 2B-image buffer holds view s, the second view t). */
  float *x, *grids, *pooled, *maps, *z;
  float *unary, *edge_affinity;
  int32_t *src_edges, *tgt_edges, *matchings;
  float *d_unary, *d_edge_affinity, *d_z, *d_pooled, *d_maps;
} trainer;

/* Every library call returns an lvmmed_status; on failure the context's last
 * error message names the function and the cause. */
#define CHECK(call)                                                                                     \
  do {                                                                                                  \
    lvmmed_status st_ = (call);                                                                         \
    if (st_ != LVMMED_OK) {                                                                             \
      fprintf(stderr, "pretrain_minimal: %s (%s)\n", lvmmed_ctx_last_error(t->ctx),                     \
              lvmmed_status_name(st_));                                                                 \
      return 0;                                                                                         \
    }                                                                                                   \
  } while (0)

static void *alloc_zeroed(size_t count, size_t size) {
  void *p = calloc(count, size);
  if (!p) fprintf(stderr, "pretrain_minimal: out of memory (%zu values)\n", count);
  return p;
}

static double now_seconds(void) {
  struct timespec ts;
  timespec_get(&ts, TIME_UTC);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Backbone and projector; fixes the sizes everything else depends on. */
static int create_backbone(trainer *t) {
  CHECK(lvmmed_backbone_create(t->ctx, ARCH, 3, &t->backbone));
  CHECK(lvmmed_backbone_set_option(t->backbone, LVMMED_BACKBONE_OPT_TRAIN, 1)); /* batch statistics */
  size_t map_h, map_w;
  CHECK(lvmmed_backbone_map_shape(t->backbone, t->size, t->size, &t->feature_dim, &map_h, &map_w));
  t->map_side = map_h; /* square input, square map */
  t->proj_dim = lvmmed_backbone_projector_dim(t->backbone);
  return 1;
}

/* Views as in METHOD.md §2 (the augmenter's defaults), at S × S, with a
 * location grid of one cell per feature-map cell for the local term. */
static int create_dataset(trainer *t, const char *folder) {
  CHECK(lvmmed_augmenter_create(t->ctx, &t->aug));
  CHECK(lvmmed_augmenter_set_option(t->aug, LVMMED_AUG_SIZE, (double)t->size));
  CHECK(lvmmed_augmenter_set_option(t->aug, LVMMED_AUG_GRID, (double)t->map_side));
  CHECK(lvmmed_dataset_create(t->ctx, t->aug, &t->data));
  CHECK(lvmmed_dataset_add_folder(t->data, folder));
  int64_t items = 0;
  CHECK(lvmmed_dataset_stat(t->data, LVMMED_DATASET_ITEMS, &items));
  if (items == 0) {
    fprintf(stderr, "pretrain_minimal: no PNG, TIFF or JPEG images found under %s\n", folder);
    return 0;
  }
  printf("%lld images under %s\n", (long long)items, folder);
  CHECK(lvmmed_dataset_start_epoch(t->data, 0));
  return 1;
}

/* The graph side: affinity builder, I-MLE, and one solver per thread (the
 * I-MLE calls solve the batch's graphs in parallel, one solver per lane). */
static int create_matching(trainer *t) {
  CHECK(lvmmed_affinity_create(t->ctx, &t->affinity));
  CHECK(lvmmed_affinity_set_option(t->affinity, LVMMED_AFFINITY_OPT_GROUP_SIZE, GROUP));
  CHECK(lvmmed_affinity_set_option(t->affinity, LVMMED_AFFINITY_OPT_FEATURE_DIM, (double)t->proj_dim));
  CHECK(lvmmed_affinity_shape(t->affinity, t->batch, &t->graphs, &t->nodes, &t->edges, NULL));

  CHECK(lvmmed_imle_create(t->ctx, &t->imle)); /* defaults: Gumbel noise, λ = 80 */

  int64_t threads = 1;
  CHECK(lvmmed_ctx_get_option(t->ctx, LVMMED_CTX_OPT_THREADS, &threads));
  if (!(t->solvers = alloc_zeroed((size_t)threads, sizeof *t->solvers))) return 0;
  for (t->n_solvers = 0; t->n_solvers < (size_t)threads; t->n_solvers++)
    CHECK(lvmmed_gm_solver_create(t->ctx, &t->solvers[t->n_solvers])); /* default method: AUTO */
  return 1;
}

/* Adam over every trained tensor: the backbone's and projector's parameters
 * (not the batch-norm buffers) and the GCN weights. Each is registered with
 * its gradient buffer, which the backward passes fill. */
static int create_optimizer(trainer *t) {
  CHECK(lvmmed_optimizer_create(t->ctx, LVMMED_OPTIM_ADAM, &t->optim));
  CHECK(lvmmed_optimizer_set_option(t->optim, LVMMED_OPTIM_OPT_LR, LEARNING_RATE));
  size_t n_tensors = lvmmed_backbone_tensor_count(t->backbone), registered = 0;
  for (size_t i = 0; i < n_tensors; i++) {
    const char *name;
    lvmmed_tensor_kind kind;
    size_t numel;
    float *data, *grad;
    CHECK(lvmmed_backbone_tensor(t->backbone, i, &name, &kind, NULL, NULL, &numel, &data, &grad));
    if (kind != LVMMED_TENSOR_PARAMETER) continue;
    CHECK(lvmmed_optimizer_add_param(t->optim, name, data, grad, numel, 0));
    registered++;
  }
  for (size_t i = 0; i < lvmmed_affinity_param_count(t->affinity); i++) {
    const char *name;
    size_t rows, cols;
    float *data, *grad;
    CHECK(lvmmed_affinity_param_info(t->affinity, i, &name, &rows, &cols));
    CHECK(lvmmed_affinity_param_data(t->affinity, i, &data, &grad));
    CHECK(lvmmed_optimizer_add_param(t->optim, name, data, grad, rows * cols, 0));
    registered++;
  }
  printf("optimizing %zu tensors with Adam, lr %g\n", registered, LEARNING_RATE);
  return 1;
}

static int allocate_buffers(trainer *t) {
  size_t n2 = 2 * t->batch, pixels = 3 * t->size * t->size, cells = t->map_side * t->map_side;
  size_t map = t->feature_dim * cells, g = t->graphs, nn = t->nodes * t->nodes, ee = t->edges * t->edges;
  return (t->x = alloc_zeroed(n2 * pixels, sizeof(float))) &&
         (t->grids = alloc_zeroed(n2 * cells * 2, sizeof(float))) &&
         (t->pooled = alloc_zeroed(n2 * t->feature_dim, sizeof(float))) &&
         (t->maps = alloc_zeroed(n2 * map, sizeof(float))) &&
         (t->z = alloc_zeroed(n2 * t->proj_dim, sizeof(float))) &&
         (t->unary = alloc_zeroed(g * nn, sizeof(float))) &&
         (t->edge_affinity = alloc_zeroed(g * ee, sizeof(float))) &&
         (t->src_edges = alloc_zeroed(g * t->edges * 2, sizeof(int32_t))) &&
         (t->tgt_edges = alloc_zeroed(g * t->edges * 2, sizeof(int32_t))) &&
         (t->matchings = alloc_zeroed(g * t->nodes, sizeof(int32_t))) && /* S = 1 noise sample */
         (t->d_unary = alloc_zeroed(g * nn, sizeof(float))) &&
         (t->d_edge_affinity = alloc_zeroed(g * ee, sizeof(float))) &&
         (t->d_z = alloc_zeroed(n2 * t->proj_dim, sizeof(float))) &&
         (t->d_pooled = alloc_zeroed(n2 * t->feature_dim, sizeof(float))) &&
         (t->d_maps = alloc_zeroed(n2 * map, sizeof(float)));
}

/* Fills a whole batch of B images (views s into the first half of x, views t
 * into the second). When an epoch runs out the next one starts, so a folder
 * smaller than a batch is seen several times per batch, with fresh views. */
static int next_batch(trainer *t) {
  size_t B = t->batch, pixels = 3 * t->size * t->size, grid = t->map_side * t->map_side * 2;
  size_t filled = 0;
  while (filled < B) {
    size_t got = 0;
    CHECK(lvmmed_dataset_next_batch(t->data, B - filled, t->x + filled * pixels,
                                    t->x + (B + filled) * pixels, t->grids + filled * grid,
                                    t->grids + (B + filled) * grid, NULL, &got));
    filled += got;
    t->epoch_images += got;
    if (got > 0) continue;
    if (t->epoch_images == 0) { /* a whole epoch without one readable image */
      fprintf(stderr, "pretrain_minimal: no image could be read (see the warnings above)\n");
      return 0;
    }
    CHECK(lvmmed_dataset_start_epoch(t->data, ++t->epoch));
    t->epoch_images = 0;
  }
  return 1;
}

/* One optimisation step. *loss receives the Hamming loss of the perturbed
 * matchings, averaged over the batch's graphs: 2 x the number of images
 * matched to the wrong partner (so 2N when none is right, 0 when all are). */
static int train_step(trainer *t, double *loss) {
  size_t B = t->batch, map = t->feature_dim * t->map_side * t->map_side;
  size_t cells = t->map_side * t->map_side;
  /* View s occupies the first B images of every buffer, view t the last B. */
  const float *z_s = t->z, *z_t = t->z + B * t->proj_dim;
  const float *maps_s = t->maps, *maps_t = t->maps + B * map;
  const float *grid_s = t->grids, *grid_t = t->grids + B * cells * 2;

  if (!next_batch(t)) return 0;
  /* The backward passes add into the gradients: clear them first. */
  CHECK(lvmmed_backbone_zero_grad(t->backbone));
  CHECK(lvmmed_affinity_zero_grad(t->affinity));

  /* Forward: one backbone pass over both views (2B images), then the projector. */
  CHECK(lvmmed_backbone_forward(t->backbone, t->x, 2 * B, t->size, t->size, t->pooled, t->maps));
  CHECK(lvmmed_backbone_project(t->backbone, t->pooled, 2 * B, t->z));
  /* Graphs and affinities of every group, with the local term from the maps and grids. */
  CHECK(lvmmed_affinity_forward(t->affinity, B, z_s, z_t, maps_s, maps_t, t->feature_dim, t->map_side,
                                t->map_side, grid_s, grid_t, t->unary, t->edge_affinity, t->src_edges,
                                t->tgt_edges));
  /* Perturb-and-MAP: solve every group's matching problem. */
  CHECK(lvmmed_imle_forward(t->imle, t->solvers, t->n_solvers, t->graphs, t->nodes, t->unary, t->edges,
                            t->src_edges, t->edges, t->tgt_edges, t->edge_affinity, t->matchings));
  CHECK(lvmmed_imle_hamming_loss(t->imle, loss, NULL));

  /* Backward, in reverse order. NULL: the gradient of the Hamming loss. */
  CHECK(lvmmed_imle_backward(t->imle, t->solvers, t->n_solvers, NULL, t->d_unary, t->d_edge_affinity));
  CHECK(lvmmed_affinity_backward(t->affinity, t->d_unary, t->d_edge_affinity, maps_s, maps_t, t->d_z,
                                 t->d_z + B * t->proj_dim, t->d_maps, t->d_maps + B * map));
  CHECK(lvmmed_backbone_project_backward(t->backbone, t->d_z, t->d_pooled));
  CHECK(lvmmed_backbone_backward(t->backbone, t->d_pooled, t->d_maps, NULL));

  /* Update every registered tensor from its gradient. */
  CHECK(lvmmed_optimizer_step(t->optim));
  return 1;
}

static void trainer_free(trainer *t) {
  lvmmed_optimizer_free(t->optim);
  for (size_t i = 0; i < t->n_solvers; i++) lvmmed_gm_solver_free(t->solvers[i]);
  free(t->solvers);
  lvmmed_imle_free(t->imle);
  lvmmed_affinity_free(t->affinity);
  lvmmed_dataset_free(t->data);
  lvmmed_augmenter_free(t->aug);
  lvmmed_backbone_free(t->backbone);
  lvmmed_ctx_release(t->ctx); /* each handle held its own reference; this drops ours */
  void *buffers[] = {t->x, t->grids, t->pooled, t->maps, t->z, t->unary, t->edge_affinity,
                     t->src_edges, t->tgt_edges, t->matchings, t->d_unary, t->d_edge_affinity,
                     t->d_z, t->d_pooled, t->d_maps};
  for (size_t i = 0; i < sizeof buffers / sizeof buffers[0]; i++) free(buffers[i]);
}

static void print_log(void *user, lvmmed_log_level level, const char *message) {
  (void)user;
  fprintf(stderr, "[lvmmed %s] %s\n", level >= LVMMED_LOG_WARN ? "warning" : "info", message);
}

/* Parses a whole decimal number in [lo, hi]; 0 on anything else. */
static int parse_size(const char *s, size_t lo, size_t hi, size_t *out) {
  char *end;
  unsigned long long v = strtoull(s, &end, 10);
  if (s[0] < '0' || s[0] > '9' || *end || v < lo || v > hi) return 0;
  *out = (size_t)v;
  return 1;
}

static int usage(void) {
  fprintf(stderr,
          "usage: pretrain_minimal DIR [steps] [image_size] [batch] [OUT.safetensors]\n"
          "  Trains a ResNet-18 with LVM-Med's graph-matching objective on the PNG,\n"
          "  TIFF and JPEG images under DIR (default: 20 steps, 64 px views, batch 32;\n"
          "  the batch holds at least %d images, matched in groups of %d), then saves\n"
          "  the weights to OUT.safetensors if given.\n",
          GROUP, GROUP);
  return 2;
}

int main(int argc, char **argv) {
  size_t steps = 20;
  trainer t = {0};
  t.size = 64;
  t.batch = 32;
  const char *out_path = argc > 5 ? argv[5] : NULL;
  if (argc < 2 || argc > 6 || (argc > 2 && !parse_size(argv[2], 1, 1000000, &steps)) ||
      (argc > 3 && !parse_size(argv[3], 1, 4096, &t.size)) ||
      (argc > 4 && !parse_size(argv[4], GROUP, 4096, &t.batch)))
    return usage();

  lvmmed_status st = lvmmed_ctx_create(&t.ctx);
  if (st != LVMMED_OK) {
    fprintf(stderr, "pretrain_minimal: lvmmed_ctx_create: %s\n", lvmmed_status_name(st));
    return 1;
  }
  /* Bad image files are skipped by the dataset and reported here. */
  if ((st = lvmmed_ctx_set_log_callback(t.ctx, print_log, NULL)) != LVMMED_OK) {
    fprintf(stderr, "pretrain_minimal: %s (%s)\n", lvmmed_ctx_last_error(t.ctx), lvmmed_status_name(st));
    lvmmed_ctx_release(t.ctx);
    return 1;
  }

  int ok = create_backbone(&t) && create_dataset(&t, argv[1]) && create_matching(&t) &&
           create_optimizer(&t) && allocate_buffers(&t);
  if (ok)
    printf(ARCH_NAME " (D = %zu, %zux%zu maps) on %zu px views, batch %zu: %zu graph(s) of %zu nodes, "
           "%zu solver(s)\n",
           t.feature_dim, t.map_side, t.map_side, t.size, t.batch, t.graphs, t.nodes, t.n_solvers);

  for (size_t step = 1; ok && step <= steps; step++) {
    double start = now_seconds(), loss = 0;
    ok = train_step(&t, &loss);
    if (!ok) break;
    double seconds = now_seconds() - start;
    /* images/s counts images of the batch (each one is seen in two views). */
    printf("step %4zu  loss %8.4f  %7.1f images/s\n", step, loss,
           seconds > 0 ? (double)t.batch / seconds : 0.0);
    fflush(stdout);
    if (!isfinite(loss)) {
      fprintf(stderr, "pretrain_minimal: the loss is not finite\n");
      ok = 0;
    }
  }
  if (ok && out_path) {
    if ((st = lvmmed_backbone_save(t.backbone, out_path)) != LVMMED_OK) {
      fprintf(stderr, "pretrain_minimal: %s (%s)\n", lvmmed_ctx_last_error(t.ctx), lvmmed_status_name(st));
      ok = 0;
    } else {
      printf("saved the backbone and projector to %s\n", out_path);
    }
  }
  trainer_free(&t);
  return ok ? 0 : 1;
}
