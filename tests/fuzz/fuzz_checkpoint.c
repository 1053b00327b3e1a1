/* Fuzz target of checkpoint validation: the safetensors header, then the checkpoint
 * metadata (format, counters, the JSON configuration checked against every option's
 * range), which lvmmed_pretrainer_load runs before it builds anything from a file. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lvmmed/lvmmed.h>

#include "backbone/safetensors.h"
#include "train/pretrainer_impl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static lvmmed_ctx *ctx;
  if (!ctx && lvmmed_ctx_create(&ctx) != LVMMED_OK) abort();
  lvmmed_st_file file;
  memset(&file, 0, sizeof file);
  if (lvmmed__st_parse(ctx, data, size, "fuzz", &file) == LVMMED_OK) {
    json_t *meta = lvmmed__st_metadata(data, size);
    lvmmed_status st = lvmmed__ckpt_check_meta(ctx, meta, "fuzz");
    /* every refusal names its cause */
    if (st != LVMMED_OK && lvmmed_ctx_last_error(ctx)[0] == '\0') abort();
    json_decref(meta);
    lvmmed__st_free(ctx, &file);
  }
  return 0;
}
