/* lvmmed — command-line front end of liblvmmed. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

static const cli_command commands[] = {
    {"pretrain", "LVM-Med pretraining of a backbone on a folder of images", cli_pretrain},
    {"version", "print library, header and ABI versions, and the available backends", cli_version},
    {"embed", "backbone features (pooled, feature maps) of .npy images", cli_embed},
    {"bench", "benchmark the library's kernels (backbone images/s)", cli_bench},
    {"image", "inspect or decode a PNG/TIFF/JPEG file (info, decode to .npy)", cli_image},
    {"match", "solve a QAPLIB graph-matching instance (quadratic assignment)", cli_match},
    {"lap", "solve a dense linear assignment problem from a .npy cost matrix", cli_lap},
    {"probe", "linear probe, k-NN and AUC of frozen features on labeled image folders", cli_probe},
};

#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *out) {
  fputs("usage: lvmmed <command> [options]\n"
        "       lvmmed --help | --version\n\n"
        "LVM-Med self-supervised pretraining of medical-image backbones by graph matching.\n\n"
        "commands:\n",
        out);
  for (size_t i = 0; i < NCOMMANDS; i++) fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
  fputs("\nRun 'lvmmed <command> --help' for the options of a command.\n", out);
}

int cli_take_file(const char *cmd, const char *arg, const char **path) {
  if (arg[0] == '-' && arg[1] != '\0') {
    fprintf(stderr, "%s: unknown option '%s'\n", cmd, arg);
    return CLI_USAGE;
  }
  if (*path) {
    fprintf(stderr, "%s: more than one file given ('%s', '%s')\n", cmd, *path, arg);
    return CLI_USAGE;
  }
  *path = arg;
  return CLI_OK;
}

int cli_parse_size(const char *cmd, const char *what, const char *s, size_t lo, size_t hi, size_t *out) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || *end || s[0] == '-' || !s[0] || v < lo || v > hi) {
    fprintf(stderr, "%s: %s must be an integer in [%zu, %zu], not '%s'\n", cmd, what, lo, hi, s);
    return 0;
  }
  *out = (size_t)v;
  return 1;
}

double cli_now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int cli_wants_help(int argc, char **argv) {
  for (int i = 1; i < argc; i++)
    if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return 1;
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return CLI_USAGE;
  }
  const char *name = argv[1];
  if (!strcmp(name, "-h") || !strcmp(name, "--help") || !strcmp(name, "help")) {
    usage(stdout);
    return CLI_OK;
  }
  if (!strcmp(name, "--version") || !strcmp(name, "-V")) name = "version";
  for (size_t i = 0; i < NCOMMANDS; i++)
    if (!strcmp(name, commands[i].name)) return commands[i].run(argc - 1, argv + 1);
  fprintf(stderr, "lvmmed: unknown command '%s'\n\n", name);
  usage(stderr);
  return CLI_USAGE;
}
