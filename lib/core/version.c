/* Run-time version queries; the values come from the generated lvmmed/version.h. */
#include "lvmmed/status.h"
#include "lvmmed/version.h"

const char *lvmmed_version_string(void) { return LVMMED_VERSION_STRING; }

unsigned lvmmed_version_number(void) { return LVMMED_VERSION_NUMBER; }

unsigned lvmmed_abi_version(void) { return LVMMED_ABI_VERSION; }

int lvmmed_abi_check(unsigned compiled_abi_version) {
  return compiled_abi_version == LVMMED_ABI_VERSION ? LVMMED_OK : LVMMED_ERR_ABI_MISMATCH;
}
