/* Frozen-backbone features of image files, shared by `lvmmed embed --data` and `lvmmed probe`.
 *
 * The evaluation transform is deterministic: decode; intensity policy AUTO with the
 * augmenter's default percentiles (8-bit images / 255, others 0.5-99.5th percentile); colour
 * to gray (luma); the centred square of side min(height, width); bilinear resize to S x S
 * (no antialiasing, as the training views); gray replicated to RGB through the views' final
 * grayscale step (torchvision's rgb_to_grayscale: gray x 0.9999, the sum of the luma
 * weights); normalised with the augmenter's default mean and std. It is the augmenter with
 * every random step off. The backbone runs in eval mode with frozen weights. */
#ifndef LVMMED_TOOLS_IMGFEAT_H
#define LVMMED_TOOLS_IMGFEAT_H

#include <stddef.h>
#include <stdint.h>

#include <lvmmed/lvmmed.h>

typedef struct imgfeat imgfeat;

typedef struct imgfeat_config {
  const char *cmd;       /* prefix of error messages ("lvmmed probe") */
  const char *weights;   /* safetensors checkpoint, or NULL for random weights */
  const char *arch;      /* architecture name; NULL: the file's, or resnet18 for random */
  uint64_t seed;         /* random initialisation (as lvmmed_backbone_init_weights(seed)) */
  size_t threads;        /* 0: the context's default */
  size_t image_size;     /* 0: the checkpoint's view size (image_height/width), else 96 */
  size_t batch;          /* images per forward pass */
} imgfeat_config;

/* Creates the context and the transform; prints the cause and returns NULL on failure.
 * The backbone (seconds to build) comes later, so folders can be checked first. */
imgfeat *imgfeat_open(const imgfeat_config *cfg);
void imgfeat_close(imgfeat *f);

/* Builds the backbone (imgfeat_run does it when needed); prints the cause and returns -1. */
int imgfeat_prepare(imgfeat *f);

size_t imgfeat_dim(const imgfeat *f);        /* feature width D (after imgfeat_prepare) */
size_t imgfeat_image_size(const imgfeat *f); /* S */
const char *imgfeat_arch(const imgfeat *f);  /* "resnet18", ... (the file's after prepare) */

/* The image files under dir, recursively, sorted by path (lvmmed_dataset_add_folder's
 * listing). Returns 0 with a malloc'ed array of malloc'ed paths (possibly empty), or
 * prints the cause and returns -1. */
int imgfeat_list(imgfeat *f, const char *dir, char ***paths, size_t *count);
void imgfeat_free_list(char **paths, size_t count);

/* Features (n x D float32) of the files; prints the failing file and cause and returns -1. */
int imgfeat_run(imgfeat *f, char *const *paths, size_t n, float *out);

#endif /* LVMMED_TOOLS_IMGFEAT_H */
