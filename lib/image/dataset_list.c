/* Listing a dataset: folders (recursive, by extension, byte-wise sorted), list files, single files. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h> /* qsort */
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "image/dataset_impl.h"

#define MAX_DEPTH 64

static char *dup_str(lvmmed_ctx *ctx, const char *s) {
  size_t n = strlen(s) + 1;
  char *p = lvmmed__alloc(ctx, n);
  if (p) memcpy(p, s, n);
  return p;
}

lvmmed_status lvmmed__ds_append(lvmmed_dataset *ds, const char *path, uint32_t page, char *err, size_t errlen) {
  if (ds->nitems + 1 >= LVMMED_AUG_MAX_INDEX)
    return lvmmed__img_error(err, errlen, LVMMED_ERR_LIMIT, "more than 2^40 items");
  if (ds->nitems == ds->items_cap) {
    size_t cap = ds->items_cap ? ds->items_cap * 2 : 64;
    lvmmed__ds_item *p = lvmmed__alloc(ds->ctx, cap * sizeof *p);
    if (!p) return lvmmed__img_error(err, errlen, LVMMED_ERR_OUT_OF_MEMORY, "out of memory for the item list");
    if (ds->nitems) memcpy(p, ds->items, ds->nitems * sizeof *p);
    lvmmed__free(ds->ctx, ds->items);
    ds->items = p;
    ds->items_cap = cap;
  }
  char *copy = dup_str(ds->ctx, path);
  if (!copy) return lvmmed__img_error(err, errlen, LVMMED_ERR_OUT_OF_MEMORY, "out of memory for a path");
  ds->items[ds->nitems].path = copy;
  ds->items[ds->nitems].page = page;
  ds->nitems++;
  return LVMMED_OK;
}

static int ends_with(const char *name, const char *ext) {
  size_t n = strlen(name), e = strlen(ext);
  return n > e && strcasecmp(name + n - e, ext) == 0;
}

int lvmmed__ds_has_image_extension(const char *name) {
  if (lvmmed_image_format_available(LVMMED_IMAGE_FORMAT_PNG) && ends_with(name, ".png")) return 1;
  if (lvmmed_image_format_available(LVMMED_IMAGE_FORMAT_TIFF) && (ends_with(name, ".tif") || ends_with(name, ".tiff")))
    return 1;
  if (lvmmed_image_format_available(LVMMED_IMAGE_FORMAT_JPEG) && (ends_with(name, ".jpg") || ends_with(name, ".jpeg")))
    return 1;
  return 0;
}

lvmmed_status lvmmed__ds_append_file(lvmmed_dataset *ds, const char *path, char *err, size_t errlen) {
  uint32_t pages = 1;
  if (ds->opt[LVMMED_DATASET_OPT_ALL_PAGES] && (ends_with(path, ".tif") || ends_with(path, ".tiff"))) {
    /* Count the pages now; an unreadable file stays one item and fails (visibly) when decoded. */
    lvmmed_image *img = NULL;
    if (lvmmed_image_create(ds->ctx, &img) == LVMMED_OK) {
      FILE *f = fopen(path, "rb");
      if (f) {
        struct stat sb;
        if (fstat(fileno(f), &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size > 0 &&
            (uint64_t)sb.st_size <= (uint64_t)img->max_file_bytes) {
          unsigned char *buf = lvmmed__alloc(ds->ctx, (size_t)sb.st_size);
          if (buf && fread(buf, 1, (size_t)sb.st_size, f) == (size_t)sb.st_size) {
            uint32_t n = 0;
            char ignored[LVMMED_IMG_ERR_MAX];
            if (lvmmed__image_count_pages(img, buf, (size_t)sb.st_size, &n, ignored, sizeof ignored) ==
                    LVMMED_OK &&
                n > 0)
              pages = n;
          }
          lvmmed__free(ds->ctx, buf);
        }
        fclose(f);
      }
      lvmmed_image_free(img);
    }
  }
  for (uint32_t p = 0; p < pages; p++) {
    lvmmed_status st = lvmmed__ds_append(ds, path, p, err, errlen);
    if (st != LVMMED_OK) return st;
  }
  return LVMMED_OK;
}

/* ---- folders ---- */

typedef struct path_list {
  char **v;
  size_t n, cap;
} path_list;

static int push_path(lvmmed_ctx *ctx, path_list *l, const char *dir, const char *name) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? 2 * l->cap : 256;
    char **p = lvmmed__alloc(ctx, cap * sizeof *p);
    if (!p) return 0;
    if (l->n) memcpy(p, l->v, l->n * sizeof *p);
    lvmmed__free(ctx, l->v);
    l->v = p;
    l->cap = cap;
  }
  size_t a = strlen(dir), b = strlen(name);
  char *s = lvmmed__alloc(ctx, a + b + 2);
  if (!s) return 0;
  memcpy(s, dir, a);
  size_t k = a;
  if (a && dir[a - 1] != '/') s[k++] = '/';
  memcpy(s + k, name, b + 1);
  l->v[l->n++] = s;
  return 1;
}

static lvmmed_status walk(lvmmed_dataset *ds, const char *dir, int depth, path_list *out, char *err,
                          size_t errlen) {
  DIR *d = opendir(dir);
  if (!d) {
    int e = errno;
    char why[128];
    return lvmmed__img_error(err, errlen, e == ENOENT ? LVMMED_ERR_NOT_FOUND : LVMMED_ERR_IO,
                             "%s: cannot open folder: %s", dir, strerror_r(e, why, sizeof why));
  }
  lvmmed_status st = LVMMED_OK;
  path_list sub = {0};
  struct dirent *e;
  while (st == LVMMED_OK && (e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue; /* hidden entries, "." and ".." */
    size_t mark = out->n;
    if (!push_path(ds->ctx, out, dir, e->d_name)) {
      st = lvmmed__img_error(err, errlen, LVMMED_ERR_OUT_OF_MEMORY, "out of memory while listing %s", dir);
      break;
    }
    const char *full = out->v[mark];
    struct stat lsb, sb;
    int is_link = lstat(full, &lsb) == 0 && S_ISLNK(lsb.st_mode);
    int ok = stat(full, &sb) == 0;
    if (ok && S_ISDIR(sb.st_mode)) {
      /* Recurse later, into real folders only: a symbolic link to a folder could loop. */
      if (ds->opt[LVMMED_DATASET_OPT_RECURSIVE] && !is_link && depth < MAX_DEPTH &&
          !push_path(ds->ctx, &sub, full, ""))
        st = lvmmed__img_error(err, errlen, LVMMED_ERR_OUT_OF_MEMORY, "out of memory while listing %s", dir);
      lvmmed__free(ds->ctx, out->v[--out->n]);
    } else if (!ok || !S_ISREG(sb.st_mode) || !lvmmed__ds_has_image_extension(e->d_name)) {
      lvmmed__free(ds->ctx, out->v[--out->n]);
    }
  }
  closedir(d);
  for (size_t i = 0; i < sub.n; i++) {
    size_t len = strlen(sub.v[i]);
    if (len > 1 && sub.v[i][len - 1] == '/') sub.v[i][len - 1] = '\0';
    if (st == LVMMED_OK) st = walk(ds, sub.v[i], depth + 1, out, err, errlen);
    lvmmed__free(ds->ctx, sub.v[i]);
  }
  lvmmed__free(ds->ctx, sub.v);
  return st;
}

static int cmp_paths(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static lvmmed_status check_idle(lvmmed_dataset *ds, const char *fn) {
  if (ds->running)
    return lvmmed__fail(ds->ctx, LVMMED_ERR_STATE, "%s: an epoch is running (finish it or free the dataset)", fn);
  return LVMMED_OK;
}

lvmmed_status lvmmed_dataset_add_folder(lvmmed_dataset *ds, const char *folder) {
  if (!ds) return LVMMED_ERR_INVALID_ARGUMENT;
  if (!folder) return lvmmed__fail(ds->ctx, LVMMED_ERR_INVALID_ARGUMENT, "lvmmed_dataset_add_folder: folder is NULL");
  lvmmed_status st = check_idle(ds, "lvmmed_dataset_add_folder");
  if (st != LVMMED_OK) return st;
  char err[LVMMED_IMG_ERR_MAX + 256];
  path_list files = {0};
  st = walk(ds, folder, 0, &files, err, sizeof err);
  if (st == LVMMED_OK) {
    if (files.n) qsort(files.v, files.n, sizeof *files.v, cmp_paths); /* v is NULL when empty */
    for (size_t i = 0; i < files.n && st == LVMMED_OK; i++) st = lvmmed__ds_append_file(ds, files.v[i], err, sizeof err);
  }
  for (size_t i = 0; i < files.n; i++) lvmmed__free(ds->ctx, files.v[i]);
  lvmmed__free(ds->ctx, files.v);
  if (st != LVMMED_OK) return lvmmed__fail(ds->ctx, st, "lvmmed_dataset_add_folder: %s", err);
  return LVMMED_OK;
}

lvmmed_status lvmmed_dataset_add_file(lvmmed_dataset *ds, const char *path) {
  if (!ds) return LVMMED_ERR_INVALID_ARGUMENT;
  if (!path || !*path)
    return lvmmed__fail(ds->ctx, LVMMED_ERR_INVALID_ARGUMENT, "lvmmed_dataset_add_file: empty path");
  lvmmed_status st = check_idle(ds, "lvmmed_dataset_add_file");
  if (st != LVMMED_OK) return st;
  char err[LVMMED_IMG_ERR_MAX];
  st = lvmmed__ds_append_file(ds, path, err, sizeof err);
  if (st != LVMMED_OK) return lvmmed__fail(ds->ctx, st, "lvmmed_dataset_add_file: %s", err);
  return LVMMED_OK;
}

/* Reads one line (without its newline) into a growing buffer; 1 = a line, 0 = end, -1 = no memory. */
static int read_line(lvmmed_ctx *ctx, FILE *f, char **buf, size_t *cap, size_t *len) {
  size_t n = 0;
  int ch;
  while ((ch = getc(f)) != EOF) {
    if (n + 2 > *cap) {
      size_t c = *cap ? 2 * *cap : 256;
      char *p = lvmmed__alloc(ctx, c);
      if (!p) return -1;
      if (n) memcpy(p, *buf, n);
      lvmmed__free(ctx, *buf);
      *buf = p;
      *cap = c;
    }
    if (ch == '\n') break;
    (*buf)[n++] = (char)ch;
  }
  if (ch == EOF && n == 0) return 0;
  (*buf)[n] = '\0';
  *len = n;
  return 1;
}

lvmmed_status lvmmed_dataset_add_list(lvmmed_dataset *ds, const char *list_path) {
  if (!ds) return LVMMED_ERR_INVALID_ARGUMENT;
  if (!list_path)
    return lvmmed__fail(ds->ctx, LVMMED_ERR_INVALID_ARGUMENT, "lvmmed_dataset_add_list: list_path is NULL");
  lvmmed_status st = check_idle(ds, "lvmmed_dataset_add_list");
  if (st != LVMMED_OK) return st;
  FILE *f = fopen(list_path, "r");
  if (!f) {
    int e = errno;
    char why[128];
    return lvmmed__fail(ds->ctx, e == ENOENT ? LVMMED_ERR_NOT_FOUND : LVMMED_ERR_IO,
                        "lvmmed_dataset_add_list: %s: cannot open: %s", list_path, strerror_r(e, why, sizeof why));
  }
  /* Relative entries are relative to the list's folder. */
  const char *slash = strrchr(list_path, '/');
  size_t dirlen = slash ? (size_t)(slash - list_path) + 1 : 0;
  char *line = NULL, *joined = NULL;
  size_t linecap = 0, joinedcap = 0, lineno = 0, len = 0;
  char err[LVMMED_IMG_ERR_MAX];
  int got;
  while (st == LVMMED_OK && (got = read_line(ds->ctx, f, &line, &linecap, &len)) != 0) {
    if (got < 0) {
      st = lvmmed__fail(ds->ctx, LVMMED_ERR_OUT_OF_MEMORY, "lvmmed_dataset_add_list: out of memory");
      break;
    }
    lineno++;
    if (strlen(line) != len) {
      st = lvmmed__fail(ds->ctx, LVMMED_ERR_FORMAT, "lvmmed_dataset_add_list: %s:%zu: NUL byte in a path", list_path,
                        lineno);
      break;
    }
    while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t')) line[--len] = '\0';
    char *p = line;
    while (*p == ' ' || *p == '\t') p++;
    if (!*p || *p == '#') continue;
    const char *entry = p;
    if (*p != '/' && dirlen) {
      size_t plen = strlen(p), need = dirlen + plen + 1;
      if (need > joinedcap) {
        char *q = lvmmed__alloc(ds->ctx, need);
        if (!q) {
          st = lvmmed__fail(ds->ctx, LVMMED_ERR_OUT_OF_MEMORY, "lvmmed_dataset_add_list: out of memory");
          break;
        }
        lvmmed__free(ds->ctx, joined);
        joined = q;
        joinedcap = need;
      }
      memcpy(joined, list_path, dirlen);
      memcpy(joined + dirlen, p, plen + 1);
      entry = joined;
    }
    st = lvmmed__ds_append_file(ds, entry, err, sizeof err);
    if (st != LVMMED_OK) st = lvmmed__fail(ds->ctx, st, "lvmmed_dataset_add_list: %s:%zu: %s", list_path, lineno, err);
  }
  if (st == LVMMED_OK && ferror(f))
    st = lvmmed__fail(ds->ctx, LVMMED_ERR_IO, "lvmmed_dataset_add_list: %s: read error", list_path);
  lvmmed__free(ds->ctx, line);
  lvmmed__free(ds->ctx, joined);
  fclose(f);
  return st;
}
