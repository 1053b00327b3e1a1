/* lvmmed probe: how well frozen backbone features separate the classes of a labeled image
 * set (linear probe, k-NN, AUC); tools/probe.c holds the maths. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <lvmmed/lvmmed.h>

#include "cli.h"
#include "imgfeat.h"
#include "npy.h"
#include "probe.h"

#define MAX_ITER 2000
#define GRAD_TOL 1e-7
#define CV_FOLDS 5
#define CV_MAX_ITER 500 /* cross-validation ranks penalties: a looser fit is enough */
#define CV_GRAD_TOL 1e-5

static const char usage_text[] =
    "usage: lvmmed probe (--weights CKPT | --random) --train DIR --test DIR [options]\n"
    "       lvmmed probe --features-npy TRAIN.npy TRAIN_LABELS.npy TEST.npy TEST_LABELS.npy [options]\n\n"
    "Evaluates frozen backbone features on a labeled image set: DIR holds one sub-folder per\n"
    "class (class names = folder names, sorted; images found recursively, sorted by path).\n"
    "Every class of --test must also be a class of --train. Images get a fixed evaluation\n"
    "transform: intensity to [0, 1] (8-bit / 255, else 0.5-99.5th percentile), gray, centred\n"
    "square, resized to N x N, replicated to RGB, normalised like the training views.\n"
    "Reports:\n"
    "  linear probe  multinomial logistic regression on the features standardised with the\n"
    "                training mean and std, L2 penalty on the weights, fitted to convergence\n"
    "                by L-BFGS in double precision; test accuracy\n"
    "  k-NN          majority vote of the K most cosine-similar training images (ties: larger\n"
    "                summed similarity); test accuracy\n"
    "  AUC           two classes only: ROC AUC of the probe's probability of the second class\n"
    "                (JSON key \"auc\" only then)\n\n"
    "  --weights CKPT      safetensors weights or training checkpoint (architecture and\n"
    "                      projector from the file)\n"
    "  --random            a randomly initialised backbone (torchvision's init from --seed)\n"
    "  --arch ARCH         resnet18 (default with --random), resnet34 or resnet50; with\n"
    "                      --weights it must match the file\n"
    "  --image-size N      input side (default: the view size a training checkpoint\n"
    "                      records, else 96)\n"
    "  --knn K             neighbours of the k-NN vote (default 20)\n"
    "  --l2 L              penalty of the probe, or 'auto' (default): chosen among 1e-5 ... 1\n"
    "                      by 5-fold cross-validation on the training set (each class cut\n"
    "                      into contiguous blocks, so neighbouring slices stay together)\n"
    "  --json              print one JSON object instead of the summary\n"
    "  --predictions       with --json, also the per-test-image predictions and probabilities\n"
    "  --seed S            seed of --random (default 0)\n"
    "  --threads T         compute threads (default: all CPUs)\n"
    "  --batch B           images per forward pass (default 32)\n"
    "  --features-npy X Y X2 Y2\n"
    "                      for testing and scripting: skip the backbone and evaluate given\n"
    "                      features (float32/64 .npy, N x D) with labels (.npy of N\n"
    "                      non-negative integer values stored as floats); classes are the\n"
    "                      distinct training labels, named by their value\n";

typedef struct labeled {
  char **paths;   /* image files (folder sets), n of them */
  float *x;       /* n x d */
  int *y;         /* class index */
  size_t n, d;
  char **names;   /* class names (train set's) */
  size_t k;
  size_t *count;  /* images per class */
} labeled;

static void labeled_free(labeled *s) {
  imgfeat_free_list(s->paths, s->n);
  free(s->x);
  free(s->y);
  if (s->names)
    for (size_t i = 0; i < s->k; i++) free(s->names[i]);
  free(s->names);
  free(s->count);
  memset(s, 0, sizeof *s);
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names of the visible sub-folders of dir. */
static int class_folders(const char *dir, char ***names, size_t *count) {
  *names = NULL;
  *count = 0;
  DIR *d = opendir(dir);
  if (!d) {
    fprintf(stderr, "lvmmed probe: %s: cannot open the folder: %s\n", dir, strerror(errno));
    return -1;
  }
  size_t n = 0, cap = 0;
  char **v = NULL;
  struct dirent *e;
  int rc = 0;
  while (rc == 0 && (e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    size_t len = strlen(dir) + strlen(e->d_name) + 2;
    char *full = malloc(len);
    struct stat sb;
    if (!full) {
      rc = -1;
      break;
    }
    snprintf(full, len, "%s/%s", dir, e->d_name);
    int is_dir = stat(full, &sb) == 0 && S_ISDIR(sb.st_mode);
    free(full);
    if (!is_dir) continue;
    if (n == cap) {
      cap = cap ? 2 * cap : 16;
      char **p = realloc(v, cap * sizeof *p);
      if (!p) {
        rc = -1;
        break;
      }
      v = p;
    }
    if (!(v[n] = strdup(e->d_name))) rc = -1;
    else n++;
  }
  closedir(d);
  if (rc) {
    fputs("lvmmed probe: out of memory\n", stderr);
    for (size_t i = 0; i < n; i++) free(v[i]);
    free(v);
    return -1;
  }
  if (n) qsort(v, n, sizeof *v, cmp_str);
  *names = v;
  *count = n;
  return 0;
}

/* The images and labels of dir's class folders (no decoding yet). train (NULL for the
 * training set itself) gives the class names the folders must be among. */
static int list_images(imgfeat *f, const char *dir, const labeled *train, labeled *out) {
  memset(out, 0, sizeof *out);
  char **classes = NULL;
  size_t nclasses = 0;
  int rc = -1;
  if (class_folders(dir, &classes, &nclasses)) return -1;
  if (!nclasses) {
    fprintf(stderr, "lvmmed probe: %s: no class sub-folders (one folder of images per class)\n", dir);
    goto done;
  }
  if (!train && nclasses < 2) {
    fprintf(stderr, "lvmmed probe: %s: only one class ('%s'); a probe needs at least two\n", dir,
            classes[0]);
    goto done;
  }
  for (size_t c = 0; c < nclasses; c++) {
    int label = (int)c;
    if (train) {
      label = -1;
      for (size_t t = 0; t < train->k; t++)
        if (!strcmp(train->names[t], classes[c])) label = (int)t;
      if (label < 0) {
        fprintf(stderr, "lvmmed probe: %s: class '%s' is not a class of the training set\n", dir,
                classes[c]);
        goto done;
      }
    }
    size_t len = strlen(dir) + strlen(classes[c]) + 2, m;
    char *sub = malloc(len), **more;
    if (!sub) goto oom;
    snprintf(sub, len, "%s/%s", dir, classes[c]);
    int bad = imgfeat_list(f, sub, &more, &m);
    if (!bad && m == 0) {
      fprintf(stderr, "lvmmed probe: %s: no images (.png, .tif, .jpg) in class folder\n", sub);
      imgfeat_free_list(more, m);
      bad = 1;
    }
    free(sub);
    if (bad) goto done;
    char **pv = realloc(out->paths, (out->n + m) * sizeof *pv);
    int *lv = realloc(out->y, (out->n + m) * sizeof *lv);
    if (pv) out->paths = pv;
    if (lv) out->y = lv;
    if (!pv || !lv) {
      imgfeat_free_list(more, m);
      goto oom;
    }
    for (size_t i = 0; i < m; i++) {
      out->paths[out->n + i] = more[i];
      out->y[out->n + i] = label;
    }
    out->n += m;
    free(more);
  }
  if (!train) {
    out->names = classes;
    out->k = nclasses;
    classes = NULL;
  }
  rc = 0;
  goto done;
oom:
  fputs("lvmmed probe: out of memory\n", stderr);
done:
  if (rc) labeled_free(out);
  imgfeat_free_list(classes, nclasses);
  return rc;
}

/* Features of the listed images. */
static int image_features(imgfeat *f, labeled *s) {
  if (imgfeat_prepare(f)) return -1;
  s->d = imgfeat_dim(f);
  s->x = malloc(s->n * s->d * sizeof *s->x);
  if (!s->x) {
    fputs("lvmmed probe: out of memory\n", stderr);
    return -1;
  }
  return imgfeat_run(f, s->paths, s->n, s->x);
}

/* An N x D feature file and its N labels; with train NULL the classes are the distinct
 * labels (sorted), else the labels must be among train's. */
static int load_npy(const char *xpath, const char *ypath, const labeled *train, labeled *out) {
  memset(out, 0, sizeof *out);
  char err[512];
  npy_array x, y;
  memset(&x, 0, sizeof x);
  memset(&y, 0, sizeof y);
  int rc = -1;
  if (npy_read(xpath, &x, err, sizeof err) || npy_to_float32(&x, err, sizeof err) ||
      npy_read(ypath, &y, err, sizeof err)) {
    fprintf(stderr, "lvmmed probe: %s\n", err);
    goto done;
  }
  if (x.ndim != 2 || x.shape[0] == 0 || x.shape[1] == 0) {
    fprintf(stderr, "lvmmed probe: %s: expected an N x D feature array with N, D > 0\n", xpath);
    goto done;
  }
  size_t n = x.shape[0];
  if (!((y.ndim == 1 && y.shape[0] == n) || (y.ndim == 2 && y.shape[0] == n && y.shape[1] == 1))) {
    fprintf(stderr, "lvmmed probe: %s: expected %zu labels to match %s\n", ypath, n, xpath);
    goto done;
  }
  if (train && x.shape[1] != train->d) {
    fprintf(stderr, "lvmmed probe: %s: %zu features per row, the training set has %zu\n", xpath,
            x.shape[1], train->d);
    goto done;
  }
  int *lab = malloc(n * sizeof *lab);
  out->y = malloc(n * sizeof *out->y);
  if (!lab || !out->y) {
    free(lab);
    fputs("lvmmed probe: out of memory\n", stderr);
    goto done;
  }
  for (size_t i = 0; i < n; i++) {
    double v = y.dtype == NPY_FLOAT64 ? ((const double *)y.data)[i] : ((const float *)y.data)[i];
    if (!(v >= 0 && v <= 1e9) || v != floor(v)) {
      fprintf(stderr, "lvmmed probe: %s: label %zu is %g, not a non-negative integer\n", ypath, i, v);
      free(lab);
      goto done;
    }
    lab[i] = (int)v;
  }
  if (!train) { /* classes: the distinct labels, ascending */
    int *u = malloc(n * sizeof *u);
    size_t k = 0;
    if (!u) {
      free(lab);
      fputs("lvmmed probe: out of memory\n", stderr);
      goto done;
    }
    for (size_t i = 0; i < n; i++) {
      size_t at = 0;
      while (at < k && u[at] < lab[i]) at++;
      if (at < k && u[at] == lab[i]) continue;
      memmove(u + at + 1, u + at, (k - at) * sizeof *u);
      u[at] = lab[i];
      k++;
    }
    if (k < 2) {
      fprintf(stderr, "lvmmed probe: %s: only one class (%d); a probe needs at least two\n", ypath, u[0]);
      free(u);
      free(lab);
      goto done;
    }
    out->names = calloc(k, sizeof *out->names);
    out->k = k;
    int oom = !out->names;
    for (size_t c = 0; !oom && c < k; c++) {
      char buf[24];
      snprintf(buf, sizeof buf, "%d", u[c]);
      oom = !(out->names[c] = strdup(buf));
    }
    if (oom) {
      free(u);
      free(lab);
      fputs("lvmmed probe: out of memory\n", stderr);
      goto done;
    }
    for (size_t i = 0; i < n; i++) {
      size_t c = 0;
      while (u[c] != lab[i]) c++;
      out->y[i] = (int)c;
    }
    free(u);
  } else {
    for (size_t i = 0; i < n; i++) {
      char buf[24];
      snprintf(buf, sizeof buf, "%d", lab[i]);
      out->y[i] = -1;
      for (size_t c = 0; c < train->k; c++)
        if (!strcmp(train->names[c], buf)) out->y[i] = (int)c;
      if (out->y[i] < 0) {
        fprintf(stderr, "lvmmed probe: %s: label %d (row %zu) is not a class of the training set\n",
                ypath, lab[i], i);
        free(lab);
        goto done;
      }
    }
  }
  free(lab);
  out->x = x.data;
  x.data = NULL;
  out->n = n;
  out->d = x.shape[1];
  rc = 0;
done:
  if (rc) labeled_free(out);
  npy_free(&x);
  npy_free(&y);
  return rc;
}

static void json_string(const char *s) {
  putchar('"');
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\') printf("\\%c", *p);
    else if (*p < 0x20) printf("\\u%04x", *p);
    else putchar(*p);
  }
  putchar('"');
}

static void json_number(double v) {
  if (isfinite(v)) printf("%.17g", v);
  else fputs("null", stdout);
}

int cli_probe(int argc, char **argv) {
  const char *weights = NULL, *arch = NULL, *train_dir = NULL, *test_dir = NULL, *l2_text = "auto";
  const char *npy[4] = {NULL, NULL, NULL, NULL};
  size_t image_size = 0, knn = 20, seed = 0, threads = 0, batch = 32;
  int random = 0, json = 0, predictions = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      fputs(usage_text, stdout);
      return CLI_OK;
    }
    if (!strcmp(a, "--random")) random = 1;
    else if (!strcmp(a, "--json")) json = 1;
    else if (!strcmp(a, "--predictions")) predictions = 1;
    else if (!strcmp(a, "--features-npy")) {
      if (i + 4 >= argc) {
        fputs("lvmmed probe: --features-npy needs four files\n", stderr);
        return CLI_USAGE;
      }
      for (int j = 0; j < 4; j++) npy[j] = argv[++i];
    } else {
      const char **sval = !strcmp(a, "--weights") ? &weights : !strcmp(a, "--arch") ? &arch
                          : !strcmp(a, "--train") ? &train_dir : !strcmp(a, "--test") ? &test_dir
                          : !strcmp(a, "--l2") ? &l2_text : NULL;
      size_t *nval = !strcmp(a, "--image-size") ? &image_size : !strcmp(a, "--knn") ? &knn
                     : !strcmp(a, "--seed") ? &seed : !strcmp(a, "--threads") ? &threads
                     : !strcmp(a, "--batch") ? &batch : NULL;
      if (!sval && !nval) {
        fprintf(stderr, "lvmmed probe: unknown option '%s'\n", a);
        return CLI_USAGE;
      }
      if (i + 1 >= argc) {
        fprintf(stderr, "lvmmed probe: %s needs a value\n", a);
        return CLI_USAGE;
      }
      const char *v = argv[++i];
      if (sval) *sval = v;
      else if (!cli_parse_size("lvmmed probe", a, v, nval == &seed ? 0 : 1,
                           nval == &threads ? 256 : nval == &image_size ? 4096 : (size_t)1 << 30, nval))
        return CLI_USAGE;
    }
  }
  double l2 = 0.0;
  int auto_l2 = !strcmp(l2_text, "auto");
  if (!auto_l2) {
    char *end;
    l2 = strtod(l2_text, &end);
    if (*end || !(l2 > 0 && l2 <= 1e6)) {
      fprintf(stderr, "lvmmed probe: --l2 must be 'auto' or a number in (0, 1e6], not '%s'\n", l2_text);
      return CLI_USAGE;
    }
  }
  int from_npy = npy[0] != NULL;
  if (from_npy ? (weights || random || train_dir || test_dir)
               : (!train_dir || !test_dir || (weights != NULL) == random)) {
    fputs(from_npy ? "lvmmed probe: --features-npy replaces --weights/--random/--train/--test\n"
                   : "lvmmed probe: give --train, --test and one of --weights or --random\n\n",
          stderr);
    if (!from_npy) fputs(usage_text, stderr);
    return CLI_USAGE;
  }
  if (predictions && !json) {
    fputs("lvmmed probe: --predictions needs --json\n", stderr);
    return CLI_USAGE;
  }

  int rc = CLI_FAILED;
  imgfeat *f = NULL;
  labeled tr, te;
  memset(&tr, 0, sizeof tr);
  memset(&te, 0, sizeof te);
  double *proba = NULL, *score = NULL;
  int *lin = NULL, *nn = NULL, *pos = NULL;
  probe_logreg m;
  memset(&m, 0, sizeof m);
  if (from_npy) {
    if (load_npy(npy[0], npy[1], NULL, &tr) || load_npy(npy[2], npy[3], &tr, &te)) goto done;
  } else {
    imgfeat_config cfg = {"lvmmed probe", weights, arch, seed, threads, image_size, batch};
    if (!(f = imgfeat_open(&cfg))) goto done;
    if (list_images(f, train_dir, NULL, &tr) || list_images(f, test_dir, &tr, &te) ||
        image_features(f, &tr) || image_features(f, &te))
      goto done;
  }
  size_t n = tr.n, d = tr.d, k = tr.k;
  tr.count = calloc(k, sizeof *tr.count);
  te.count = calloc(k, sizeof *te.count);
  proba = malloc(te.n * k * sizeof *proba);
  score = malloc(te.n * sizeof *score);
  lin = malloc(te.n * sizeof *lin);
  nn = malloc(te.n * sizeof *nn);
  pos = malloc(te.n * sizeof *pos);
  if (!tr.count || !te.count || !proba || !score || !lin || !nn || !pos) {
    fputs("lvmmed probe: out of memory\n", stderr);
    goto done;
  }
  for (size_t i = 0; i < n; i++) tr.count[tr.y[i]]++;
  for (size_t i = 0; i < te.n; i++) te.count[te.y[i]]++;
  size_t min_class = n;
  for (size_t c = 0; c < k; c++)
    if (tr.count[c] < min_class) min_class = tr.count[c];
  double cv_acc = NAN;
  if (auto_l2) {
    static const double grid[] = {1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0};
    size_t folds = min_class < CV_FOLDS ? min_class : CV_FOLDS;
    l2 = 1e-2; /* too few images per class to cross-validate */
    if (folds >= 2) {
      l2 = probe_logreg_select_l2(tr.x, tr.y, n, d, k, grid, sizeof grid / sizeof grid[0], folds,
                                  CV_MAX_ITER, CV_GRAD_TOL, &cv_acc);
      if (l2 < 0) {
        fputs("lvmmed probe: out of memory\n", stderr);
        goto done;
      }
    }
  }
  if (probe_logreg_fit(&m, tr.x, tr.y, n, d, k, l2, MAX_ITER, GRAD_TOL) ||
      probe_knn(tr.x, tr.y, n, te.x, te.n, d, k, knn, nn)) {
    fputs("lvmmed probe: out of memory\n", stderr);
    goto done;
  }
  if (!m.converged)
    fprintf(stderr, "lvmmed probe: warning: the probe stopped after %d iterations with gradient %.3g\n",
            m.iterations, m.grad_max);
  probe_logreg_proba(&m, te.x, te.n, proba);
  size_t lin_ok = 0, nn_ok = 0;
  for (size_t i = 0; i < te.n; i++) {
    size_t arg = 0;
    for (size_t c = 1; c < k; c++)
      if (proba[i * k + c] > proba[i * k + arg]) arg = c;
    lin[i] = (int)arg;
    lin_ok += lin[i] == te.y[i];
    nn_ok += nn[i] == te.y[i];
    if (k == 2) {
      score[i] = proba[i * k + 1];
      pos[i] = te.y[i] == 1;
    }
  }
  double lin_acc = (double)lin_ok / (double)te.n, nn_acc = (double)nn_ok / (double)te.n;
  double auc = k == 2 ? probe_auc(score, pos, te.n) : NAN;
  size_t knn_used = knn < n ? knn : n;
  if (json) {
    printf("{\"arch\":");
    if (f) json_string(imgfeat_arch(f));
    else fputs("null", stdout);
    printf(",\"weights\":");
    if (weights) json_string(weights);
    else fputs("null", stdout);
    printf(",\"image_size\":");
    if (f) printf("%zu", imgfeat_image_size(f));
    else fputs("null", stdout);
    printf(",\"feature_dim\":%zu,\"classes\":[", d);
    for (size_t c = 0; c < k; c++) {
      if (c) putchar(',');
      json_string(tr.names[c]);
    }
    printf("],\"n_train\":%zu,\"n_test\":%zu,\"train_counts\":[", n, te.n);
    for (size_t c = 0; c < k; c++) printf(c ? ",%zu" : "%zu", tr.count[c]);
    printf("],\"test_counts\":[");
    for (size_t c = 0; c < k; c++) printf(c ? ",%zu" : "%zu", te.count[c]);
    printf("],\"l2\":");
    json_number(l2);
    printf(",\"l2_auto\":%s,\"cv_accuracy\":", auto_l2 ? "true" : "false");
    json_number(cv_acc);
    printf(",\"linear_accuracy\":");
    json_number(lin_acc);
    printf(",\"linear_loss\":");
    json_number(m.loss);
    printf(",\"linear_iterations\":%d,\"linear_converged\":%s,\"knn\":%zu,\"knn_accuracy\":",
           m.iterations, m.converged ? "true" : "false", knn_used);
    json_number(nn_acc);
    if (k == 2) { /* the key exists for two classes only (null if the test set lacks one) */
      printf(",\"auc\":");
      json_number(auc);
    }
    if (predictions) {
      printf(",\"linear_pred\":[");
      for (size_t i = 0; i < te.n; i++) printf(i ? ",%d" : "%d", lin[i]);
      printf("],\"knn_pred\":[");
      for (size_t i = 0; i < te.n; i++) printf(i ? ",%d" : "%d", nn[i]);
      printf("],\"proba\":[");
      for (size_t i = 0; i < te.n * k; i++) {
        if (i) putchar(',');
        json_number(proba[i]);
      }
      putchar(']');
    }
    printf("}\n");
  } else {
    if (f)
      printf("backbone   %s (%s), %zu x %zu input, %zu features\n", imgfeat_arch(f),
             weights ? weights : "random initialisation", imgfeat_image_size(f),
             imgfeat_image_size(f), d);
    else
      printf("features   %zu per image (from .npy)\n", d);
    printf("train      %zu images:", n);
    for (size_t c = 0; c < k; c++) printf(" %s %zu%s", tr.names[c], tr.count[c], c + 1 < k ? "," : "\n");
    printf("test       %zu images:", te.n);
    for (size_t c = 0; c < k; c++) printf(" %s %zu%s", tr.names[c], te.count[c], c + 1 < k ? "," : "\n");
    printf("linear     accuracy %.4f (%zu/%zu)  l2 %g", lin_acc, lin_ok, te.n, l2);
    if (auto_l2 && isfinite(cv_acc)) printf(" (cross-validated, accuracy %.4f)\n", cv_acc);
    else printf("%s\n", auto_l2 ? " (too few images per class to cross-validate)" : "");
    printf("k-NN       accuracy %.4f (%zu/%zu)  k %zu, cosine\n", nn_acc, nn_ok, te.n, knn_used);
    if (k == 2) {
      if (isfinite(auc)) printf("AUC        %.4f  (positive class %s)\n", auc, tr.names[1]);
      else printf("AUC        n/a (the test set lacks one of the classes)\n");
    }
  }
  rc = CLI_OK;
done:
  probe_logreg_free(&m);
  free(proba);
  free(score);
  free(lin);
  free(nn);
  free(pos);
  labeled_free(&tr);
  labeled_free(&te);
  imgfeat_close(f);
  return rc;
}
