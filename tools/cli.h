/* The lvmmed command-line program: shared declarations of its subcommands.
 * The program uses the public API only. */
#ifndef LVMMED_CLI_H
#define LVMMED_CLI_H

#include <stdio.h>

#include <lvmmed/lvmmed.h>

/* Exit codes: 0 success, 1 the operation failed, 2 bad usage. */
enum { CLI_OK = 0, CLI_FAILED = 1, CLI_USAGE = 2 };

typedef struct cli_command {
  const char *name;
  const char *summary;
  int (*run)(int argc, char **argv); /* argv[0] is the subcommand name */
} cli_command;

int cli_version(int argc, char **argv);
int cli_embed(int argc, char **argv);
int cli_bench(int argc, char **argv);
int cli_image(int argc, char **argv);
int cli_match(int argc, char **argv);
int cli_lap(int argc, char **argv);
int cli_probe(int argc, char **argv);
int cli_pretrain(int argc, char **argv);

/* Backbone architecture from its name ("resnet50", ...); 0 if unknown (cmd_embed.c). */
int cli_arch_from_name(const char *name, lvmmed_arch *arch);

/* The one FILE operand of a command: rejects an unknown option or a second file
 * (printing why, prefixed with cmd) with CLI_USAGE, else stores arg in *path. */
int cli_take_file(const char *cmd, const char *arg, const char **path);

/* Parses s as an integer in [lo, hi] into *out; otherwise prints why (prefixed with cmd,
 * naming the option what) and returns 0. */
int cli_parse_size(const char *cmd, const char *what, const char *s, size_t lo, size_t hi, size_t *out);

/* Monotonic wall-clock time in seconds (for timings). */
double cli_now_s(void);

/* 1 if argv[i] for some i >= 1 is -h or --help. */
int cli_wants_help(int argc, char **argv);

#endif /* LVMMED_CLI_H */
