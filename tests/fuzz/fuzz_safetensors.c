/* libFuzzer target: the safetensors reader and lvmmed_backbone_load_memory.
 * Every input must be accepted or refused with a status: never crash, leak or
 * read out of bounds. Seeds: corpus/safetensors/; fuzz_safetensors_mutate.c
 * runs a deterministic mutation loop over them in every build. */
#include "lvmmed_config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lvmmed/lvmmed.h>

#include "backbone/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static lvmmed_ctx *ctx;
static lvmmed_backbone *bb;

/* The backbone is built once (its random initialisation takes seconds under
 * sanitizers): by libFuzzer before the first input, else on the first call. */
int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  if (ctx) return 0;
  if (lvmmed_ctx_create(&ctx) != LVMMED_OK) abort();
  lvmmed_ctx_set_option(ctx, LVMMED_CTX_OPT_THREADS, 1);
  lvmmed_ctx_set_option(ctx, LVMMED_CTX_OPT_LOG_LEVEL, LVMMED_LOG_NONE);
  if (lvmmed_backbone_create(ctx, LVMMED_ARCH_RESNET18, 1, &bb) != LVMMED_OK) abort();
  if (lvmmed_backbone_set_option(bb, LVMMED_BACKBONE_OPT_PROJ_OUT, 4) != LVMMED_OK) abort();
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  LLVMFuzzerInitialize(NULL, NULL);
  lvmmed_st_file f;
  if (lvmmed__st_parse(ctx, data, size, "fuzz", &f) == LVMMED_OK) {
    for (size_t i = 0; i < f.count; i++) { /* touch every accepted byte range */
      const lvmmed_st_tensor *t = &f.tensors[i];
      float buf[64];
      if (t->numel <= 64) lvmmed__st_to_f32(t, buf);
      int64_t v;
      lvmmed__st_to_i64(t, &v);
      if (lvmmed__st_find(&f, t->name) != t) abort();
    }
    lvmmed__st_free(ctx, &f);
  }
  size_t missing, unexpected;
  lvmmed_backbone_load_memory(bb, data, size, 0, &missing, &unexpected);
  return 0;
}
