/* lvmmed pretrain: LVM-Med self-supervised pretraining on a folder of images. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <lvmmed/lvmmed.h>

#include "cli.h"

static const char usage_text[] =
    "usage: lvmmed pretrain --data DIR --out CKPT [--arch resnet18|resnet34|resnet50]\n"
    "                       [--image-size N] [--batch B] [--steps S | --epochs E]\n"
    "                       [--resume CKPT] [--seed N] [--threads T] [--log CSV] [options]\n\n"
    "Pretrains a backbone with LVM-Med (graph matching between two augmented views\n"
    "of groups of images) on every PNG/TIFF/JPEG under DIR, and writes a checkpoint\n"
    "(backbone, projector, GCN, optimizer and RNG state, step, configuration) to\n"
    "CKPT, atomically, every --checkpoint-every steps and at the end. On a terminal\n"
    "a progress line shows step, loss, images/s and ETA; otherwise a plain line is\n"
    "printed every --print-every steps. Ctrl-C (SIGINT/SIGTERM) finishes the step,\n"
    "writes the checkpoint and exits with status 130.\n\n"
    "  --data DIR             image folder (searched recursively)\n"
    "  --out CKPT             checkpoint to write (.safetensors)\n"
    "  --arch A               resnet18, resnet34 or resnet50 (default resnet50)\n"
    "  --image-size N         view side in pixels (default 224)\n"
    "  --batch B              images per step (default 32; groups of --group-size)\n"
    "  --steps S              stop after S steps in total (default: 1 epoch)\n"
    "  --epochs E             stop after E passes over the data (steps rounded up)\n"
    "  --resume CKPT          continue the run saved in CKPT (same data); its seed,\n"
    "                         thread count and settings are used unless given here\n"
    "  --seed N               seed of initialisation, augmentation, order and noise (default 0)\n"
    "  --threads T            compute threads (default: all CPUs)\n"
    "  --workers W            image decoding threads (default 1)\n"
    "  --log CSV              append step,loss,lr,images_per_s,elapsed_s rows\n"
    "  --checkpoint-every K   steps between checkpoints (default 100; 0: only at the end)\n"
    "  --print-every K        steps between plain progress lines (default 10)\n"
    "  --optimizer M          adam (default), sgd or lars\n"
    "  --lr X                 base learning rate (default 2e-3)\n"
    "  --weight-decay X       (default 0)\n"
    "  --schedule S           constant (default), cosine (over the run) or step\n"
    "  --warmup K             linear warm-up steps (default 0)\n"
    "  --step-every K         step schedule: halve the rate every K steps\n"
    "  --group-size N         images per graph (default 16)\n"
    "  --knn K                neighbours per node (default 5)\n"
    "  --gcn-layers L         GCN layers (default 2; 0: the projector output is matched)\n"
    "  --alpha A              weight of the global affinity (default 0.8)\n"
    "  --lambda L             I-MLE step (default 80)\n"
    "  --noise-scale B        scale of the Gumbel perturbation (default 1)\n"
    "  --crop-min F           smallest crop, as a fraction of the image area (default 0.08)\n"
    "  --no-color             no colour jitter or random grayscale\n"
    "  --no-blur              no Gaussian blur\n"
    "  --frozen-bn            batch norm keeps its running statistics\n"
    "  --no-local             global affinity only (no feature-map term)\n"
    "  --quiet                no progress output\n";

#define PRE "lvmmed pretrain"

static volatile sig_atomic_t stop_requested = 0;

static void on_signal(int sig) {
  (void)sig;
  stop_requested = 1;
}

/* Library warnings (a skipped image file, a checkpoint from another seed) go to stderr. */
static void on_log(void *user, lvmmed_log_level level, const char *message) {
  (void)user;
  if (level >= LVMMED_LOG_WARN) fprintf(stderr, PRE ": warning: %s\n", message);
}

static int parse_u64(const char *what, const char *s, uint64_t lo, uint64_t hi, uint64_t *out) {
  char *end;
  errno = 0;
  unsigned long long v = s ? strtoull(s, &end, 10) : 0;
  if (!s || errno || *end || s[0] == '-' || s[0] == '\0' || v < lo || v > hi) {
    fprintf(stderr, PRE ": %s must be an integer in [%" PRIu64 ", %" PRIu64 "], not '%s'\n", what, lo, hi,
            s ? s : "");
    return 0;
  }
  *out = v;
  return 1;
}

static int parse_real(const char *what, const char *s, double *out) {
  char *end;
  errno = 0;
  double v = s ? strtod(s, &end) : 0;
  if (!s || errno || *end || s[0] == '\0' || !isfinite(v)) {
    fprintf(stderr, PRE ": %s must be a number, not '%s'\n", what, s ? s : "");
    return 0;
  }
  *out = v;
  return 1;
}

typedef struct settings {
  const char *data, *out, *resume, *log, *arch, *optimizer, *schedule;
  uint64_t size, batch, steps, epochs, seed, threads, workers, ckpt_every, print_every;
  uint64_t warmup, step_every, group, knn, gcn_layers;
  double lr, wd, alpha, lambda, noise, crop_min;
  int have_seed, have_threads, have_lr, have_wd, have_alpha, have_lambda, have_warmup, have_step_every;
  int have_gcn, have_crop, no_color, no_blur, have_noise, have_group, have_knn, have_size, have_batch, frozen_bn, no_local, quiet;
} settings;

/* Returns CLI_OK, or CLI_USAGE after printing why. */
static int parse_args(int argc, char **argv, settings *s) {
  memset(s, 0, sizeof *s);
  s->size = 224;
  s->batch = 32;
  s->workers = 1;
  s->ckpt_every = 100;
  s->print_every = 10;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    int ok = 1, takes = 1;
#define OPT(name) (!strcmp(a, name))
    if (OPT("--data")) s->data = v;
    else if (OPT("--out")) s->out = v;
    else if (OPT("--resume")) s->resume = v;
    else if (OPT("--log")) s->log = v;
    else if (OPT("--arch")) s->arch = v;
    else if (OPT("--optimizer")) s->optimizer = v;
    else if (OPT("--schedule")) s->schedule = v;
    else if (OPT("--image-size")) ok = s->have_size = parse_u64("--image-size", v, 8, 4096, &s->size);
    else if (OPT("--batch")) ok = s->have_batch = parse_u64("--batch", v, 2, 65536, &s->batch);
    else if (OPT("--steps")) ok = parse_u64("--steps", v, 1, UINT64_MAX / 2, &s->steps);
    else if (OPT("--epochs")) ok = parse_u64("--epochs", v, 1, 1u << 18, &s->epochs);
    else if (OPT("--seed")) ok = s->have_seed = parse_u64("--seed", v, 0, UINT64_MAX, &s->seed);
    else if (OPT("--threads")) ok = s->have_threads = parse_u64("--threads", v, 1, 256, &s->threads);
    else if (OPT("--workers")) ok = parse_u64("--workers", v, 0, 64, &s->workers);
    else if (OPT("--checkpoint-every")) ok = parse_u64("--checkpoint-every", v, 0, UINT64_MAX, &s->ckpt_every);
    else if (OPT("--print-every")) ok = parse_u64("--print-every", v, 1, UINT64_MAX, &s->print_every);
    else if (OPT("--warmup")) ok = s->have_warmup = parse_u64("--warmup", v, 0, 1u << 30, &s->warmup);
    else if (OPT("--step-every")) ok = s->have_step_every = parse_u64("--step-every", v, 1, 1u << 30, &s->step_every);
    else if (OPT("--group-size")) ok = s->have_group = parse_u64("--group-size", v, 2, 4096, &s->group);
    else if (OPT("--knn")) ok = s->have_knn = parse_u64("--knn", v, 1, 4095, &s->knn);
    else if (OPT("--gcn-layers")) ok = s->have_gcn = parse_u64("--gcn-layers", v, 0, 8, &s->gcn_layers);
    else if (OPT("--lr")) ok = s->have_lr = parse_real("--lr", v, &s->lr);
    else if (OPT("--weight-decay")) ok = s->have_wd = parse_real("--weight-decay", v, &s->wd);
    else if (OPT("--alpha")) ok = s->have_alpha = parse_real("--alpha", v, &s->alpha);
    else if (OPT("--lambda")) ok = s->have_lambda = parse_real("--lambda", v, &s->lambda);
    else if (OPT("--crop-min")) ok = s->have_crop = parse_real("--crop-min", v, &s->crop_min);
    else if (OPT("--noise-scale")) ok = s->have_noise = parse_real("--noise-scale", v, &s->noise);
    else {
      takes = 0;
      if (OPT("--frozen-bn")) s->frozen_bn = 1;
      else if (OPT("--no-local")) s->no_local = 1;
      else if (OPT("--no-color")) s->no_color = 1;
      else if (OPT("--no-blur")) s->no_blur = 1;
      else if (OPT("--quiet")) s->quiet = 1;
      else {
        fprintf(stderr, PRE ": unknown argument '%s' (see --help)\n", a);
        return CLI_USAGE;
      }
    }
#undef OPT
    if (takes && !v) {
      fprintf(stderr, PRE ": %s needs a value\n", a);
      return CLI_USAGE;
    }
    if (!ok) return CLI_USAGE;
    i += takes;
  }
  if (!s->data || !s->out) {
    fprintf(stderr, PRE ": --data and --out are required (see --help)\n");
    return CLI_USAGE;
  }
  if (s->steps && s->epochs) {
    fprintf(stderr, PRE ": give --steps or --epochs, not both\n");
    return CLI_USAGE;
  }
  return CLI_OK;
}

static int fail(lvmmed_ctx *ctx, const char *what) {
  fprintf(stderr, PRE ": %s: %s\n", what, ctx ? lvmmed_ctx_last_error(ctx) : "out of memory");
  return CLI_FAILED;
}

#define TRY(call, what)                 \
  do {                                  \
    if ((call) != LVMMED_OK) {          \
      rc = fail(ctx, what);             \
      goto out;                         \
    }                                   \
  } while (0)

static int method_from_name(const char *name, double *v) {
  if (!strcmp(name, "sgd")) *v = LVMMED_OPTIM_SGD;
  else if (!strcmp(name, "adam")) *v = LVMMED_OPTIM_ADAM;
  else if (!strcmp(name, "lars")) *v = LVMMED_OPTIM_LARS;
  else return 0;
  return 1;
}

static int schedule_from_name(const char *name, double *v) {
  if (!strcmp(name, "constant")) *v = LVMMED_LR_CONSTANT;
  else if (!strcmp(name, "cosine")) *v = LVMMED_LR_COSINE;
  else if (!strcmp(name, "step")) *v = LVMMED_LR_STEP;
  else return 0;
  return 1;
}

static void format_eta(double s, char *buf, size_t n) {
  if (!isfinite(s) || s < 0) {
    snprintf(buf, n, "--:--");
    return;
  }
  unsigned long t = (unsigned long)(s + 0.5);
  if (t >= 3600) snprintf(buf, n, "%lu:%02lu:%02lu", t / 3600, t / 60 % 60, t % 60);
  else snprintf(buf, n, "%lu:%02lu", t / 60, t % 60);
}

/* Reads an unsigned metadata value of the checkpoint to resume. */
static int resume_meta(lvmmed_ctx *ctx, const char *path, const char *key, uint64_t *v) {
  char buf[64];
  if (lvmmed_checkpoint_read_meta(ctx, path, key, buf, sizeof buf) != LVMMED_OK) return 0;
  char *end;
  errno = 0;
  unsigned long long x = strtoull(buf, &end, 10);
  if (errno || *end) return 0;
  *v = x;
  return 1;
}

int cli_pretrain(int argc, char **argv) {
  if (cli_wants_help(argc, argv)) {
    fputs(usage_text, stdout);
    return CLI_OK;
  }
  settings s;
  int rc = parse_args(argc, argv, &s);
  if (rc != CLI_OK) return rc;
  lvmmed_arch arch = LVMMED_ARCH_RESNET50;
  if (s.arch && !cli_arch_from_name(s.arch, &arch)) {
    fprintf(stderr, PRE ": unknown --arch '%s' (resnet18, resnet34 or resnet50)\n", s.arch);
    return CLI_USAGE;
  }
  double method = LVMMED_OPTIM_ADAM, schedule = LVMMED_LR_CONSTANT;
  if (s.optimizer && !method_from_name(s.optimizer, &method)) {
    fprintf(stderr, PRE ": unknown --optimizer '%s' (adam, sgd or lars)\n", s.optimizer);
    return CLI_USAGE;
  }
  if (s.schedule && !schedule_from_name(s.schedule, &schedule)) {
    fprintf(stderr, PRE ": unknown --schedule '%s' (constant, cosine or step)\n", s.schedule);
    return CLI_USAGE;
  }

  /* From here on, Ctrl-C ends the run with a checkpoint instead of losing it. */
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);

  lvmmed_ctx *ctx = NULL;
  lvmmed_augmenter *aug = NULL;
  lvmmed_dataset *ds = NULL;
  lvmmed_pretrainer *pt = NULL;
  FILE *log = NULL;
  rc = CLI_FAILED;
  if (lvmmed_ctx_create(&ctx) != LVMMED_OK) return fail(NULL, "cannot create a context");
  lvmmed_ctx_set_log_callback(ctx, on_log, NULL);

  /* A resumed run takes its seed and thread count from the checkpoint unless overridden. */
  if (s.resume) {
    uint64_t v;
    if (!s.have_seed && resume_meta(ctx, s.resume, "seed", &v)) s.seed = v, s.have_seed = 1;
    if (!s.have_threads && resume_meta(ctx, s.resume, "threads", &v)) s.threads = v, s.have_threads = 1;
  }
  if (!s.have_threads) {
    int64_t cpus = 1;
    lvmmed_ctx_get_option(ctx, LVMMED_CTX_OPT_THREADS, &cpus);
    s.threads = (uint64_t)cpus; /* decoding is light next to the network: share the cores */
  }
  TRY(lvmmed_ctx_set_option(ctx, LVMMED_CTX_OPT_THREADS, (int64_t)s.threads), "--threads");
  TRY(lvmmed_ctx_set_option(ctx, LVMMED_CTX_OPT_SEED, (int64_t)s.seed), "--seed");

  TRY(lvmmed_pretrainer_create(ctx, &pt), "cannot create the pretrainer");
  if (s.resume) {
    TRY(lvmmed_pretrainer_load(pt, s.resume), "cannot resume");
    lvmmed_arch have;
    lvmmed_backbone_info(lvmmed_pretrainer_backbone(pt), &have, NULL, NULL);
    if (s.arch && have != arch) {
      fprintf(stderr, PRE ": --arch %s differs from the checkpoint's architecture\n", s.arch);
      rc = CLI_USAGE;
      goto out;
    }
    uint64_t h = 0;
    if (!s.have_size && resume_meta(ctx, s.resume, "image_height", &h) && h) s.size = h;
  } else {
    TRY(lvmmed_pretrainer_set_option(pt, LVMMED_PRETRAIN_OPT_ARCH, arch), "--arch");
    TRY(lvmmed_pretrainer_set_option(pt, LVMMED_PRETRAIN_OPT_OPTIMIZER, method), "--optimizer");
  }
  lvmmed_optimizer *opt = lvmmed_pretrainer_optimizer(pt);
  lvmmed_affinity *aff = lvmmed_pretrainer_affinity(pt);
  if (s.resume && !s.have_batch) { /* the checkpoint's */
    double b = 0;
    lvmmed_pretrainer_get_option(pt, LVMMED_PRETRAIN_OPT_BATCH, &b);
    s.batch = (uint64_t)b;
  }
  TRY(lvmmed_pretrainer_set_option(pt, LVMMED_PRETRAIN_OPT_BATCH, (double)s.batch), "--batch");
  if (s.frozen_bn) TRY(lvmmed_pretrainer_set_option(pt, LVMMED_PRETRAIN_OPT_FROZEN_BN, 1), "--frozen-bn");
  if (s.no_local) TRY(lvmmed_pretrainer_set_option(pt, LVMMED_PRETRAIN_OPT_LOCAL_TERM, 0), "--no-local");
  if (s.have_lr) TRY(lvmmed_optimizer_set_option(opt, LVMMED_OPTIM_OPT_LR, s.lr), "--lr");
  if (s.have_wd) TRY(lvmmed_optimizer_set_option(opt, LVMMED_OPTIM_OPT_WEIGHT_DECAY, s.wd), "--weight-decay");
  if (s.schedule) TRY(lvmmed_optimizer_set_option(opt, LVMMED_OPTIM_OPT_SCHEDULE, schedule), "--schedule");
  if (s.have_warmup) TRY(lvmmed_optimizer_set_option(opt, LVMMED_OPTIM_OPT_WARMUP_STEPS, (double)s.warmup), "--warmup");
  if (s.have_step_every)
    TRY(lvmmed_optimizer_set_option(opt, LVMMED_OPTIM_OPT_STEP_EVERY, (double)s.step_every), "--step-every");
  if (s.have_group) TRY(lvmmed_affinity_set_option(aff, LVMMED_AFFINITY_OPT_GROUP_SIZE, (double)s.group), "--group-size");
  if (s.have_gcn) {
    if (s.resume) {
      fprintf(stderr, PRE ": --gcn-layers cannot change when resuming\n");
      rc = CLI_USAGE;
      goto out;
    }
    TRY(lvmmed_affinity_set_option(aff, LVMMED_AFFINITY_OPT_GCN_LAYERS, (double)s.gcn_layers), "--gcn-layers");
  }
  if (s.have_knn) TRY(lvmmed_affinity_set_option(aff, LVMMED_AFFINITY_OPT_KNN, (double)s.knn), "--knn");
  if (s.have_alpha) TRY(lvmmed_affinity_set_option(aff, LVMMED_AFFINITY_OPT_ALPHA, s.alpha), "--alpha");
  if (s.have_noise)
    TRY(lvmmed_imle_set_option(lvmmed_pretrainer_imle(pt), LVMMED_IMLE_OPT_NOISE_SCALE, s.noise), "--noise-scale");
  if (s.have_lambda) TRY(lvmmed_imle_set_option(lvmmed_pretrainer_imle(pt), LVMMED_IMLE_OPT_LAMBDA, s.lambda), "--lambda");

  /* Views: the augmenter's defaults at this size, grids matching the backbone's map. */
  size_t gh, gw;
  TRY(lvmmed_pretrainer_grid_shape(pt, s.size, s.size, &gh, &gw), "--image-size");
  TRY(lvmmed_augmenter_create(ctx, &aug), "cannot create the augmenter");
  TRY(lvmmed_augmenter_set_option(aug, LVMMED_AUG_SIZE, (double)s.size), "--image-size");
  TRY(lvmmed_augmenter_set_option(aug, LVMMED_AUG_GRID, (double)gh), "grid size");
  TRY(lvmmed_augmenter_set_seed(aug, s.seed), "--seed");
  if (s.have_crop) TRY(lvmmed_augmenter_set_option(aug, LVMMED_AUG_SCALE_MIN, s.crop_min), "--crop-min");
  if (s.no_color) {
    TRY(lvmmed_augmenter_set_option(aug, LVMMED_AUG_JITTER_P, 0), "--no-color");
    TRY(lvmmed_augmenter_set_option(aug, LVMMED_AUG_GRAYSCALE_P, 0), "--no-color");
  }
  if (s.no_blur) TRY(lvmmed_augmenter_set_option(aug, LVMMED_AUG_BLUR_P, 0), "--no-blur");
  TRY(lvmmed_dataset_create(ctx, aug, &ds), "cannot create the dataset");
  TRY(lvmmed_dataset_set_option(ds, LVMMED_DATASET_OPT_WORKERS, (int64_t)s.workers), "--workers");
  TRY(lvmmed_dataset_add_folder(ds, s.data), "--data");
  int64_t items = 0;
  lvmmed_dataset_stat(ds, LVMMED_DATASET_ITEMS, &items);
  double group = 16;
  lvmmed_affinity_get_option(aff, LVMMED_AFFINITY_OPT_GROUP_SIZE, &group);
  if (items < (int64_t)group || s.batch < (uint64_t)group) {
    fprintf(stderr, PRE ": %s: %" PRId64 " images and a batch of %" PRIu64 "; each step needs at least one group of %.0f\n",
            s.data, items, s.batch, group);
    goto out;
  }

  double step0 = 0;
  lvmmed_pretrainer_stat(pt, LVMMED_PRETRAIN_STAT_STEP, &step0);
  uint64_t total = s.steps;
  if (s.epochs) total = (s.epochs * (uint64_t)items + s.batch - 1) / s.batch;
  if (!total) total = ((uint64_t)items + s.batch - 1) / s.batch;
  if (schedule == LVMMED_LR_COSINE && s.schedule)
    TRY(lvmmed_optimizer_set_option(opt, LVMMED_OPTIM_OPT_TOTAL_STEPS, (double)total), "--schedule cosine");

  if (s.log) {
    FILE *probe = fopen(s.log, "r");
    int fresh = !probe;
    if (probe) fclose(probe);
    log = fopen(s.log, "a");
    if (!log) {
      fprintf(stderr, PRE ": %s: cannot open: %s\n", s.log, strerror(errno));
      goto out;
    }
    if (fresh) fputs("step,loss,lr,images_per_s,elapsed_s\n", log);
  }

  int tty = !s.quiet && isatty(fileno(stderr));
  if (!s.quiet)
    fprintf(stderr, PRE ": %" PRId64 " images, %s at %" PRIu64 " px, batch %" PRIu64 ", %" PRIu64
                    " threads + %" PRIu64 " decoding, steps %.0f -> %" PRIu64 "\n",
            items, s.arch ? s.arch : (arch == LVMMED_ARCH_RESNET18 ? "resnet18" : "resnet50"), s.size, s.batch,
            s.threads, s.workers, step0, total);
  double t_start = cli_now_s(), t_last_print = t_start, ema = 0;
  uint64_t done = 0;
  for (uint64_t step = (uint64_t)step0; step < total && !stop_requested; step++) {
    double lr = 0, loss = 0, t0 = cli_now_s();
    lvmmed_optimizer_lr(opt, &lr);
    TRY(lvmmed_pretrainer_step_dataset(pt, ds, &loss), "training step");
    double dt = cli_now_s() - t0, ips = (double)s.batch / (dt > 0 ? dt : 1e-9);
    ema = done ? 0.9 * ema + 0.1 * ips : ips;
    done++;
    if (log) fprintf(log, "%" PRIu64 ",%.6g,%.6g,%.4g,%.3f\n", step + 1, loss, lr, ips, cli_now_s() - t_start);
    int last = step + 1 == total;
    if (s.ckpt_every && (step + 1) % s.ckpt_every == 0 && !last) {
      if (log) fflush(log);
      TRY(lvmmed_pretrainer_save(pt, s.out), "cannot write the checkpoint");
    }
    char eta[32];
    format_eta((double)(total - step - 1) * (double)s.batch / ema, eta, sizeof eta);
    if (tty) {
      fprintf(stderr, "\rstep %" PRIu64 "/%" PRIu64 "  loss %7.3f  lr %.3g  %6.1f img/s  ETA %s   ", step + 1, total,
              loss, lr, ema, eta);
      if (last) fputc('\n', stderr);
    } else if (!s.quiet && ((step + 1) % s.print_every == 0 || last || cli_now_s() - t_last_print > 30)) {
      fprintf(stderr, "step %" PRIu64 "/%" PRIu64 " loss %.4f lr %.4g %.1f img/s ETA %s\n", step + 1, total, loss,
              lr, ema, eta);
      t_last_print = cli_now_s();
    }
  }
  if (tty && stop_requested) fputc('\n', stderr);
  if (log) fflush(log);
  TRY(lvmmed_pretrainer_save(pt, s.out), "cannot write the checkpoint");
  if (!s.quiet) {
    double steps = 0, secs = cli_now_s() - t_start;
    lvmmed_pretrainer_stat(pt, LVMMED_PRETRAIN_STAT_STEP, &steps);
    fprintf(stderr, PRE ": %s after step %.0f (%" PRIu64 " steps in %.1f s, %.2f steps/s, %.1f images/s)\n",
            stop_requested ? "interrupted; checkpoint written" : "wrote checkpoint", steps, done, secs,
            secs > 0 ? (double)done / secs : 0.0, secs > 0 ? (double)(done * s.batch) / secs : 0.0);
    if (!stop_requested) fprintf(stderr, PRE ": %s\n", s.out);
  }
  rc = stop_requested ? 130 : CLI_OK;
out:
  if (log) fclose(log);
  lvmmed_pretrainer_free(pt);
  lvmmed_dataset_free(ds);
  lvmmed_augmenter_free(aug);
  lvmmed_ctx_release(ctx);
  return rc;
}
