/* lvmmed version: what was built and what it can run on. */
#include <string.h>

#include <lvmmed/lvmmed.h>

#include "cli.h"

int cli_version(int argc, char **argv) {
  int json = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
      puts("usage: lvmmed version [--json]\n\n"
           "Prints the library version, the headers it was compiled against, the ABI\n"
           "generation and the compute backends this build can use.");
      return CLI_OK;
    }
    if (!strcmp(argv[i], "--json")) {
      json = 1;
      continue;
    }
    fprintf(stderr, "lvmmed version: unknown option '%s'\n", argv[i]);
    return CLI_USAGE;
  }
  static const lvmmed_backend backends[] = {LVMMED_BACKEND_REFERENCE, LVMMED_BACKEND_OPENBLAS,
                                            LVMMED_BACKEND_CUDA};
  if (json) {
    printf("{\"version\":\"%s\",\"headers\":\"%s\",\"abi\":%u,\"backends\":[", lvmmed_version_string(),
           LVMMED_VERSION_STRING, lvmmed_abi_version());
    int first = 1;
    for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++) {
      if (!lvmmed_backend_available(backends[i])) continue;
      printf("%s\"%s\"", first ? "" : ",", lvmmed_backend_name(backends[i]));
      first = 0;
    }
    puts("]}");
  } else {
    printf("liblvmmed %s (headers %s, ABI %u)\nbackends:", lvmmed_version_string(),
           LVMMED_VERSION_STRING, lvmmed_abi_version());
    for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++)
      if (lvmmed_backend_available(backends[i])) printf(" %s", lvmmed_backend_name(backends[i]));
    putchar('\n');
  }
  if (LVMMED_ABI_CHECK() != LVMMED_OK) {
    fprintf(stderr, "lvmmed: library ABI %u differs from the headers' ABI %u\n", lvmmed_abi_version(),
            (unsigned)LVMMED_ABI_VERSION);
    return CLI_FAILED;
  }
  return CLI_OK;
}
