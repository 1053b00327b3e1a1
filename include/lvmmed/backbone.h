/* liblvmmed — the backbone: torchvision-layout ResNet-18/34/50 and its projector.
 *
 * An lvmmed_backbone owns a ResNet (torchvision's layout, "v1.5": the stride
 * of a bottleneck sits on its 3×3 convolution) without the classifier, a
 * projector head, their gradients, the batch-norm state and the workspace of
 * its passes. Input is a batch of float32 images in NCHW order (1 or 3
 * channels); the forward pass gives the globally average-pooled features
 * (batch × D, D = 512 for resnet18/34, 2048 for resnet50) and the final
 * feature map (batch × D × h × w, NCHW, h = w = 7 for a 224×224 input).
 *
 * Training: in train mode batch normalisation uses batch statistics and
 * updates its running statistics exactly as PyTorch does (momentum 0.1,
 * unbiased running variance, eps 1e-5); in eval mode it uses the running
 * statistics. lvmmed_backbone_backward() consumes the state saved by the last
 * forward pass and ADDS into the gradients (zero them with
 * lvmmed_backbone_zero_grad()), in either mode.
 *
 * Tensors are named by torchvision state_dict keys ("conv1.weight",
 * "layer1.0.bn1.running_mean", ...; the projector's are "projector.*") and
 * can be enumerated with their data and gradient pointers, e.g. for an
 * optimizer. Weights load from and save to safetensors files (see
 * lvmmed_backbone_load); `python3 -m lvmmed.convert` turns a PyTorch
 * checkpoint (such as LVM-Med's released lvmmed_resnet.torch) into one.
 *
 * Threading: one thread at a time per backbone; the context's thread count
 * sets the intra-op parallelism.
 */
#ifndef LVMMED_BACKBONE_H
#define LVMMED_BACKBONE_H

#include <stddef.h>
#include <stdint.h>

#include <lvmmed/ctx.h>

LVMMED_EXTERN_C_BEGIN

/** Opaque backbone (network, projector, gradients, state, workspace). */
typedef struct lvmmed_backbone lvmmed_backbone;

/** Architectures. Values are stable. */
typedef enum lvmmed_arch {
  LVMMED_ARCH_RESNET18 = 1, /**< BasicBlock ×[2,2,2,2], D = 512 */
  LVMMED_ARCH_RESNET34 = 2, /**< BasicBlock ×[3,4,6,3], D = 512 */
  LVMMED_ARCH_RESNET50 = 3  /**< Bottleneck ×[3,4,6,3], D = 2048 */
} lvmmed_arch;

/** Enum-keyed backbone options (lvmmed_backbone_option_bounds gives the ranges). */
typedef enum lvmmed_backbone_option {
  /** 1: train mode (batch statistics), 0: eval mode (running statistics). Default 0. */
  LVMMED_BACKBONE_OPT_TRAIN = 1,
  /** 1: forward passes keep what backward needs; 0: inference only, less memory
   *  (backward then fails with LVMMED_ERR_STATE). Default 1. */
  LVMMED_BACKBONE_OPT_GRAD = 2,
  /** Output width of the projector; 0 removes it. Default 128. Setting it (or
   *  PROJ_HIDDEN) rebuilds the projector with fresh initial weights. */
  LVMMED_BACKBONE_OPT_PROJ_OUT = 3,
  /** 0: the projector is one Linear(D, PROJ_OUT) (names projector.weight/.bias);
   *  h > 0: Linear(D, h) → BatchNorm1d(h) → ReLU → Linear(h, PROJ_OUT)
   *  (names projector.0.*, projector.1.*, projector.3.*). Default 0. */
  LVMMED_BACKBONE_OPT_PROJ_HIDDEN = 4,
  /** 1: the weights are constant (inference): forward passes pack the convolution
   *  weights into the backend's layout once and reuse them, which is faster for
   *  small batches and costs about one more copy of the weights in memory. While
   *  it is 1, weights changed through lvmmed_backbone_tensor() pointers are not
   *  seen by forward passes until FROZEN is set again (to any value);
   *  lvmmed_backbone_load and lvmmed_backbone_init_weights re-pack by themselves.
   *  Default 0: every forward reads the weights as they are. */
  LVMMED_BACKBONE_OPT_FROZEN = 5
} lvmmed_backbone_option;

/** What a named tensor is. */
typedef enum lvmmed_tensor_kind {
  LVMMED_TENSOR_PARAMETER = 0, /**< trained: has a gradient */
  LVMMED_TENSOR_BUFFER = 1     /**< state (batch-norm running mean/var): no gradient */
} lvmmed_tensor_kind;

/** Most dimensions a backbone tensor has (conv weights: O, I, H, W). */
#define LVMMED_TENSOR_MAX_DIMS 4

/**
 * Creates a backbone of arch for in_channels (1 or 3) input channels, with
 * torchvision's initialisation drawn from the context's seed, in eval mode,
 * with the default projector. Holds a reference on ctx.
 */
LVMMED_API lvmmed_status lvmmed_backbone_create(lvmmed_ctx *ctx, lvmmed_arch arch,
                                                size_t in_channels, lvmmed_backbone **out);

/** Frees a backbone. NULL is a no-op. */
LVMMED_API void lvmmed_backbone_free(lvmmed_backbone *bb);

/** The context bb was created with (no reference is added); NULL for NULL. */
LVMMED_API lvmmed_ctx *lvmmed_backbone_ctx(const lvmmed_backbone *bb);

/** Sets an option. Out-of-range values give LVMMED_ERR_OUT_OF_RANGE and change nothing. */
LVMMED_API lvmmed_status lvmmed_backbone_set_option(lvmmed_backbone *bb,
                                                    lvmmed_backbone_option option, int64_t value);

/** Reads an option. */
LVMMED_API lvmmed_status lvmmed_backbone_get_option(const lvmmed_backbone *bb,
                                                    lvmmed_backbone_option option,
                                                    int64_t *value);

/** Inclusive range accepted by lvmmed_backbone_set_option for option. */
LVMMED_API lvmmed_status lvmmed_backbone_option_bounds(lvmmed_backbone_option option,
                                                       int64_t *min_value, int64_t *max_value);

/** Architecture, input channels and pooled feature width D of bb (any out pointer may be NULL). */
LVMMED_API lvmmed_status lvmmed_backbone_info(const lvmmed_backbone *bb, lvmmed_arch *arch,
                                              size_t *in_channels, size_t *feature_dim);

/**
 * Shape of the final feature map for a height×width input: *channels = D and
 * *map_h × *map_w. LVMMED_ERR_SHAPE if the input is too small (every stage
 * needs at least one pixel).
 */
LVMMED_API lvmmed_status lvmmed_backbone_map_shape(const lvmmed_backbone *bb, size_t height,
                                                   size_t width, size_t *channels, size_t *map_h,
                                                   size_t *map_w);

/** Re-draws every weight with torchvision's initialisation from seed and resets the
 *  batch-norm state (running mean 0, variance 1, counters 0). Gradients are zeroed. */
LVMMED_API lvmmed_status lvmmed_backbone_init_weights(lvmmed_backbone *bb, uint64_t seed);

/**
 * Forward pass on batch images (NCHW, in_channels × height × width each).
 * pooled (batch × D) and feature_map (batch × D × map_h × map_w, NCHW) are
 * written when non-NULL. In train mode the running statistics are updated
 * and every spatial position of every BN layer must see more than one value
 * per channel (batch·h·w > 1), else LVMMED_ERR_SHAPE. Non-finite input gives
 * LVMMED_ERR_NUMERIC. The workspace grows to the largest shape seen and is reused.
 */
LVMMED_API lvmmed_status lvmmed_backbone_forward(lvmmed_backbone *bb, const float *input,
                                                 size_t batch, size_t height, size_t width,
                                                 float *pooled, float *feature_map);

/**
 * Backward pass of the last forward: d_pooled (batch × D) and d_feature_map
 * (the feature map's shape, NCHW) are the gradients of the loss with respect
 * to the two outputs; either may be NULL (zero), not both. Adds into every
 * parameter gradient; writes the gradient with respect to the input (NCHW)
 * to d_input when non-NULL. Needs OPT_GRAD = 1 at forward time and may be
 * called once per forward (else LVMMED_ERR_STATE).
 */
LVMMED_API lvmmed_status lvmmed_backbone_backward(lvmmed_backbone *bb, const float *d_pooled,
                                                  const float *d_feature_map, float *d_input);

/** Sets every parameter gradient (backbone and projector) to zero. */
LVMMED_API lvmmed_status lvmmed_backbone_zero_grad(lvmmed_backbone *bb);

/** Output width of the projector (0 when it is removed). */
LVMMED_API size_t lvmmed_backbone_projector_dim(const lvmmed_backbone *bb);

/**
 * Projector forward: out (batch × projector_dim) from pooled features
 * (batch × D). Uses the mode of the backbone (its BatchNorm, if any, follows
 * OPT_TRAIN); keeps its input for lvmmed_backbone_project_backward.
 */
LVMMED_API lvmmed_status lvmmed_backbone_project(lvmmed_backbone *bb, const float *pooled,
                                                 size_t batch, float *out);

/** Projector backward of the last lvmmed_backbone_project: adds into the projector's
 *  gradients and writes d_pooled (batch × D) when non-NULL. */
LVMMED_API lvmmed_status lvmmed_backbone_project_backward(lvmmed_backbone *bb,
                                                          const float *d_out, float *d_pooled);

/** Number of named float tensors (parameters and buffers, projector included). */
LVMMED_API size_t lvmmed_backbone_tensor_count(const lvmmed_backbone *bb);

/**
 * Tensor number index (0 ≤ index < count, in state_dict order): its name, kind,
 * dimensions (*ndim ≤ LVMMED_TENSOR_MAX_DIMS, shape[] row-major) and element
 * count; *data points at its values (writable: an optimizer updates them in
 * place) and *grad at its gradient (NULL for buffers). Any out pointer may be
 * NULL. The pointers stay valid until the backbone is freed or its projector
 * is rebuilt.
 */
LVMMED_API lvmmed_status lvmmed_backbone_tensor(lvmmed_backbone *bb, size_t index,
                                                const char **name, lvmmed_tensor_kind *kind,
                                                size_t *ndim,
                                                size_t shape[LVMMED_TENSOR_MAX_DIMS],
                                                size_t *numel, float **data, float **grad);

/** Index of the tensor called name; LVMMED_ERR_NOT_FOUND if there is none. */
LVMMED_API lvmmed_status lvmmed_backbone_find_tensor(const lvmmed_backbone *bb, const char *name,
                                                     size_t *index);

/** Flags of lvmmed_backbone_load. */
typedef enum lvmmed_load_flags {
  /** Fail (loading nothing) when a tensor of the backbone is missing from the file or the
   *  file has a tensor the backbone does not (PyTorch's strict=True). Without it, matching
   *  tensors load and the others are counted and logged at LVMMED_LOG_WARN. */
  LVMMED_LOAD_STRICT = 1,
  /** Treat missing projector tensors as expected (they are not counted as missing). */
  LVMMED_LOAD_IGNORE_PROJECTOR = 2
} lvmmed_load_flags;

/**
 * Loads weights from a safetensors file (names = torchvision keys; float32,
 * float16 or bfloat16, widened to float32; "num_batches_tracked" as int64).
 * A 3-channel conv1.weight loads into a 1-channel backbone summed over its
 * input channels (exact for a grayscale image replicated to RGB). A shape
 * that differs from the backbone's is an error (LVMMED_ERR_SHAPE) in any
 * mode; a malformed file gives LVMMED_ERR_FORMAT naming the offending
 * tensor. On any error nothing is changed. *missing and *unexpected (may be
 * NULL) receive the counts of backbone tensors absent from the file and file
 * tensors the backbone has no use for; their names go to the log. Tensors
 * whose names start with "lvmmed." (state that the library's own training
 * checkpoints keep beside the weights) are skipped silently: neither loaded,
 * counted nor logged.
 */
LVMMED_API lvmmed_status lvmmed_backbone_load(lvmmed_backbone *bb, const char *path,
                                              unsigned flags, size_t *missing,
                                              size_t *unexpected);

/** lvmmed_backbone_load from an in-memory safetensors image of size bytes. */
LVMMED_API lvmmed_status lvmmed_backbone_load_memory(lvmmed_backbone *bb, const void *data,
                                                     size_t size, unsigned flags,
                                                     size_t *missing, size_t *unexpected);

/**
 * Creates a backbone for in_channels (1 or 3) input channels from a
 * safetensors file and loads its weights (as lvmmed_backbone_load, not
 * strict about extra tensors, which are logged). The architecture is the
 * file's "lvmmed_arch" metadata (written by lvmmed_backbone_save and the
 * library's checkpoints); without it (files converted from torchvision) it is
 * inferred from the tensor names: "layer1.0.conv3.weight" means resnet50,
 * else "layer3.5.conv1.weight" resnet34, else resnet18 (the file must then
 * have "conv1.weight"). The projector is shaped like the file's:
 * "projector.weight" gives a one-layer projector of its output width,
 * "projector.0.weight" and "projector.3.weight" a two-layer one, none
 * removes it (LVMMED_BACKBONE_OPT_PROJ_OUT = 0). The backbone is in eval
 * mode with the context's other defaults. Errors: LVMMED_ERR_IO and
 * LVMMED_ERR_LIMIT (reading), LVMMED_ERR_FORMAT (malformed file, unknown
 * lvmmed_arch, not a ResNet), LVMMED_ERR_SHAPE (a tensor that does not fit
 * the architecture), LVMMED_ERR_NOT_FOUND (backbone tensors missing from the
 * file; their names go to the log), LVMMED_ERR_INVALID_ARGUMENT. *out is
 * NULL on failure. Holds a reference on ctx.
 */
LVMMED_API lvmmed_status lvmmed_backbone_create_from_file(lvmmed_ctx *ctx, const char *path,
                                                          size_t in_channels,
                                                          lvmmed_backbone **out);

/**
 * Saves every tensor (float32) and the batch-norm counters (int64
 * "*.num_batches_tracked") to a safetensors file, with metadata naming the
 * architecture. The file is written to a temporary name and renamed.
 */
LVMMED_API lvmmed_status lvmmed_backbone_save(const lvmmed_backbone *bb, const char *path);

LVMMED_EXTERN_C_END

#endif /* LVMMED_BACKBONE_H */
