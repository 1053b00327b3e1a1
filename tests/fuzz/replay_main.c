/* Runs a fuzz target over files and folders without libFuzzer, so every build (and the
 * ASan+UBSan one in CI) replays the seed corpus and any saved crash reproducers.
 * usage: replay FILE_OR_FOLDER...   exit status 0 when every input ran. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "cannot open %s\n", path);
    return 1;
  }
  size_t cap = 1 << 16, n = 0;
  uint8_t *buf = malloc(cap);
  size_t got;
  while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
    n += got;
    if (n == cap) buf = realloc(buf, cap *= 2);
  }
  fclose(f);
  if (!buf) return 1;
  LLVMFuzzerTestOneInput(buf, n);
  free(buf);
  return 0;
}

static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv) {
  int failed = 0, runs = 0;
  for (int i = 1; i < argc; i++) {
    struct stat sb;
    if (stat(argv[i], &sb) != 0) {
      fprintf(stderr, "missing %s\n", argv[i]);
      return 1;
    }
    if (!S_ISDIR(sb.st_mode)) {
      failed |= run_file(argv[i]);
      runs++;
      continue;
    }
    DIR *d = opendir(argv[i]);
    char *names[4096];
    size_t k = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL && k < 4096)
      if (e->d_name[0] != '.') names[k++] = strdup(e->d_name);
    if (d) closedir(d);
    qsort(names, k, sizeof *names, cmp);
    for (size_t j = 0; j < k; j++) {
      char path[4096];
      snprintf(path, sizeof path, "%s/%s", argv[i], names[j]);
      failed |= run_file(path);
      runs++;
      free(names[j]);
    }
  }
  printf("replayed %d inputs\n", runs);
  return failed || runs == 0;
}
