/* libFuzzer target: the PNG decoder (and a view of what it decodes). */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  return fuzz_image(data, size, LVMMED_IMAGE_FORMAT_PNG);
}
