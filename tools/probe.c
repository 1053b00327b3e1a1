/* Linear probe (L2-regularised softmax regression by L-BFGS), k-NN and ROC AUC. */
#include "probe.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LBFGS_PAIRS 10
#define ARMIJO_C1 1e-4
#define MAX_HALVINGS 60

/* The softmax-regression objective on standardised rows z (n x d). */
typedef struct lr_problem {
  const double *z;
  const int *y;
  size_t n, d, k;
  double l2;
  double *logit; /* k scratch */
} lr_problem;

static double dot(const double *a, const double *b, size_t n) {
  double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0; /* four chains: fixed order, faster */
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += a[i] * b[i];
    s1 += a[i + 1] * b[i + 1];
    s2 += a[i + 2] * b[i + 2];
    s3 += a[i + 3] * b[i + 3];
  }
  for (; i < n; i++) s0 += a[i] * b[i];
  return (s0 + s1) + (s2 + s3);
}

/* Objective at theta = [W (k x d, class-major), b (k)]; its gradient into grad. */
static double lr_eval(const lr_problem *p, const double *theta, double *grad) {
  size_t n = p->n, d = p->d, k = p->k, np = (d + 1) * k;
  const double *w = theta, *b = theta + d * k;
  double *gw = grad, *gb = grad + d * k, *l = p->logit;
  memset(grad, 0, np * sizeof *grad);
  double f = 0.0;
  for (size_t i = 0; i < n; i++) {
    const double *zi = p->z + i * d;
    double mx = -INFINITY;
    for (size_t c = 0; c < k; c++) {
      l[c] = b[c] + dot(zi, w + c * d, d);
      if (l[c] > mx) mx = l[c];
    }
    double sum = 0.0;
    for (size_t c = 0; c < k; c++) sum += exp(l[c] - mx);
    double lse = mx + log(sum);
    f += lse - l[p->y[i]];
    for (size_t c = 0; c < k; c++) {
      double r = exp(l[c] - lse) - (c == (size_t)p->y[i]); /* softmax - one-hot */
      double *gc = gw + c * d;
      for (size_t j = 0; j < d; j++) gc[j] += r * zi[j];
      gb[c] += r;
    }
  }
  double inv_n = 1.0 / (double)n, reg = 0.0;
  for (size_t t = 0; t < np; t++) grad[t] *= inv_n;
  for (size_t t = 0; t < d * k; t++) {
    reg += w[t] * w[t];
    gw[t] += p->l2 * w[t];
  }
  return f * inv_n + 0.5 * p->l2 * reg;
}

static double max_abs(const double *a, size_t n) {
  double m = 0.0;
  for (size_t i = 0; i < n; i++)
    if (fabs(a[i]) > m) m = fabs(a[i]);
  return m;
}

/* L-BFGS from theta (updated in place). Returns 0, or -1 when out of memory. */
static int lbfgs(const lr_problem *p, double *theta, int max_iter, double tol, double *f_out,
                 double *gmax_out, int *iters_out, int *converged_out) {
  size_t np = (p->d + 1) * p->k;
  double *buf = malloc((4 + 2 * LBFGS_PAIRS) * np * sizeof *buf);
  if (!buf) return -1;
  double *g = buf, *gnew = g + np, *xnew = gnew + np, *dir = xnew + np;
  double *s = dir + np, *yv = s + LBFGS_PAIRS * np;
  double rho[LBFGS_PAIRS], alpha[LBFGS_PAIRS];
  size_t start = 0, count = 0;
  double f = lr_eval(p, theta, g), gmax = max_abs(g, np);
  int it = 0;
  while (gmax > tol && it < max_iter) {
    /* two-loop recursion: dir = -H g */
    for (size_t t = 0; t < np; t++) dir[t] = -g[t];
    for (size_t m = count; m-- > 0;) {
      size_t j = (start + m) % LBFGS_PAIRS;
      alpha[j] = rho[j] * dot(s + j * np, dir, np);
      for (size_t t = 0; t < np; t++) dir[t] -= alpha[j] * yv[j * np + t];
    }
    double gamma;
    if (count) {
      size_t j = (start + count - 1) % LBFGS_PAIRS;
      gamma = dot(s + j * np, yv + j * np, np) / dot(yv + j * np, yv + j * np, np);
    } else {
      gamma = 1.0 / sqrt(dot(g, g, np)); /* first step: unit length */
    }
    for (size_t t = 0; t < np; t++) dir[t] *= gamma;
    for (size_t m = 0; m < count; m++) {
      size_t j = (start + m) % LBFGS_PAIRS;
      double beta = rho[j] * dot(yv + j * np, dir, np);
      for (size_t t = 0; t < np; t++) dir[t] += s[j * np + t] * (alpha[j] - beta);
    }
    double gd = dot(g, dir, np);
    if (!(gd < 0.0)) { /* not a descent direction (rounding): restart from steepest descent */
      count = 0;
      double sc = 1.0 / sqrt(dot(g, g, np));
      for (size_t t = 0; t < np; t++) dir[t] = -g[t] * sc;
      gd = dot(g, dir, np);
    }
    double step = 1.0, fnew = f;
    int ok = 0;
    for (int h = 0; h < MAX_HALVINGS; h++, step *= 0.5) {
      for (size_t t = 0; t < np; t++) xnew[t] = theta[t] + step * dir[t];
      fnew = lr_eval(p, xnew, gnew);
      if (fnew <= f + ARMIJO_C1 * step * gd) {
        ok = 1;
        break;
      }
    }
    if (!ok) break; /* no decrease left at double precision */
    double sy = 0.0;
    for (size_t t = 0; t < np; t++) sy += (xnew[t] - theta[t]) * (gnew[t] - g[t]);
    if (sy > 0.0) { /* keep the pair (always, for a strictly convex objective) */
      size_t j = (start + count) % LBFGS_PAIRS;
      if (count == LBFGS_PAIRS) start = (start + 1) % LBFGS_PAIRS; /* drop the oldest */
      else count++;
      for (size_t t = 0; t < np; t++) {
        s[j * np + t] = xnew[t] - theta[t];
        yv[j * np + t] = gnew[t] - g[t];
      }
      rho[j] = 1.0 / sy;
    }
    memcpy(theta, xnew, np * sizeof *theta);
    memcpy(g, gnew, np * sizeof *g);
    f = fnew;
    gmax = max_abs(g, np);
    it++;
  }
  *f_out = f;
  *gmax_out = gmax;
  *iters_out = it;
  *converged_out = gmax <= tol;
  free(buf);
  return 0;
}

void probe_logreg_free(probe_logreg *m) {
  free(m->mean);
  free(m->w);
  memset(m, 0, sizeof *m);
}

int probe_logreg_fit(probe_logreg *m, const float *x, const int *y, size_t n, size_t d, size_t k,
                     double l2, int max_iter, double tol) {
  return probe_logreg_fit_from(m, x, y, n, d, k, l2, max_iter, tol, NULL);
}

int probe_logreg_fit_from(probe_logreg *m, const float *x, const int *y, size_t n, size_t d,
                          size_t k, double l2, int max_iter, double tol, const double *start) {
  memset(m, 0, sizeof *m);
  m->d = d;
  m->k = k;
  m->l2 = l2;
  m->mean = calloc(2 * d + 1, sizeof *m->mean);
  m->w = calloc((d + 1) * k, sizeof *m->w);
  double *z = malloc((n * d + 1) * sizeof *z), *logit = malloc(k * sizeof *logit);
  if (!m->mean || !m->w || !z || !logit) {
    free(z);
    free(logit);
    probe_logreg_free(m);
    return -1;
  }
  m->inv_std = m->mean + d;
  m->b = m->w + d * k;
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < d; j++) m->mean[j] += x[i * d + j];
  for (size_t j = 0; j < d; j++) m->mean[j] /= (double)n;
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < d; j++) {
      double v = x[i * d + j] - m->mean[j];
      m->inv_std[j] += v * v;
    }
  for (size_t j = 0; j < d; j++) {
    double sd = sqrt(m->inv_std[j] / (double)n);
    m->inv_std[j] = sd > 0.0 ? 1.0 / sd : 1.0;
  }
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < d; j++) z[i * d + j] = (x[i * d + j] - m->mean[j]) * m->inv_std[j];
  if (start) memcpy(m->w, start, (d + 1) * k * sizeof *m->w);
  lr_problem p = {z, y, n, d, k, l2, logit};
  int rc = lbfgs(&p, m->w, max_iter, tol, &m->loss, &m->grad_max, &m->iterations, &m->converged);
  free(z);
  free(logit);
  if (rc) probe_logreg_free(m);
  return rc;
}

void probe_logreg_proba(const probe_logreg *m, const float *x, size_t n, double *proba) {
  size_t d = m->d, k = m->k;
  for (size_t i = 0; i < n; i++) {
    double *l = proba + i * k;
    memcpy(l, m->b, k * sizeof *l);
    for (size_t j = 0; j < d; j++) {
      double v = (x[i * d + j] - m->mean[j]) * m->inv_std[j];
      for (size_t c = 0; c < k; c++) l[c] += v * m->w[c * d + j];
    }
    double mx = l[0], sum = 0.0;
    for (size_t c = 1; c < k; c++)
      if (l[c] > mx) mx = l[c];
    for (size_t c = 0; c < k; c++) sum += (l[c] = exp(l[c] - mx));
    for (size_t c = 0; c < k; c++) l[c] /= sum;
  }
}

double probe_logreg_select_l2(const float *x, const int *y, size_t n, size_t d, size_t k,
                              const double *grid, size_t ngrid, size_t folds, int max_iter,
                              double tol, double *cv_accuracy) {
  int *fold = malloc((n + 1) * sizeof *fold), *ytr = malloc((n + 1) * sizeof *ytr);
  size_t *seen = calloc(k, sizeof *seen), *total = calloc(k, sizeof *total), *order = NULL;
  float *xtr = malloc((n * d + 1) * sizeof *xtr), *xva = malloc((n * d + 1) * sizeof *xva);
  int *yva = malloc((n + 1) * sizeof *yva);
  double *proba = malloc((n * k + 1) * sizeof *proba), *warm = malloc((d + 1) * k * sizeof *warm);
  double *correct = calloc(ngrid, sizeof *correct), *ll = calloc(ngrid, sizeof *ll);
  double best = -1.0, best_acc = -1.0, best_ll = INFINITY;
  order = malloc((ngrid + 1) * sizeof *order);
  if (!fold || !ytr || !seen || !total || !xtr || !xva || !yva || !proba || !warm || !correct ||
      !ll || !order)
    goto done;
  for (size_t i = 0; i < n; i++) total[y[i]]++;
  for (size_t i = 0; i < n; i++) fold[i] = (int)(seen[y[i]]++ * folds / total[y[i]]);
  /* Penalties from the largest down, each fit starting from the previous solution. */
  for (size_t g = 0; g < ngrid; g++) order[g] = g;
  for (size_t g = 1; g < ngrid; g++)
    for (size_t h = g; h > 0 && grid[order[h]] > grid[order[h - 1]]; h--) {
      size_t t = order[h];
      order[h] = order[h - 1];
      order[h - 1] = t;
    }
  for (size_t f = 0; f < folds; f++) {
    size_t ntr = 0, nva = 0;
    for (size_t i = 0; i < n; i++) {
      if ((size_t)fold[i] == f) {
        memcpy(xva + nva * d, x + i * d, d * sizeof *x);
        yva[nva++] = y[i];
      } else {
        memcpy(xtr + ntr * d, x + i * d, d * sizeof *x);
        ytr[ntr++] = y[i];
      }
    }
    if (!nva || !ntr) continue;
    for (size_t o = 0; o < ngrid; o++) {
      size_t g = order[o];
      probe_logreg m;
      if (probe_logreg_fit_from(&m, xtr, ytr, ntr, d, k, grid[g], max_iter, tol, o ? warm : NULL))
        goto done;
      memcpy(warm, m.w, (d + 1) * k * sizeof *warm);
      probe_logreg_proba(&m, xva, nva, proba);
      probe_logreg_free(&m);
      for (size_t i = 0; i < nva; i++) {
        const double *pr = proba + i * k;
        size_t arg = 0;
        for (size_t c = 1; c < k; c++)
          if (pr[c] > pr[arg]) arg = c;
        correct[g] += arg == (size_t)yva[i];
        ll[g] -= log(pr[yva[i]] > 1e-300 ? pr[yva[i]] : 1e-300);
      }
    }
  }
  for (size_t g = 0; g < ngrid; g++) {
    double acc = correct[g] / (double)n, loss = ll[g] / (double)n;
    if (acc > best_acc || (acc == best_acc && loss < best_ll)) {
      best_acc = acc;
      best_ll = loss;
      best = grid[g];
    }
  }
  if (cv_accuracy) *cv_accuracy = best_acc;
done:
  free(fold);
  free(ytr);
  free(seen);
  free(total);
  free(order);
  free(xtr);
  free(xva);
  free(yva);
  free(proba);
  free(warm);
  free(correct);
  free(ll);
  return best;
}

/* Rows scaled to unit length (a zero row stays zero), in double. */
static double *unit_rows(const float *x, size_t n, size_t d) {
  double *u = malloc((n * d + 1) * sizeof *u);
  if (!u) return NULL;
  for (size_t i = 0; i < n; i++) {
    double s = 0.0;
    for (size_t j = 0; j < d; j++) s += (double)x[i * d + j] * x[i * d + j];
    double inv = s > 0.0 ? 1.0 / sqrt(s) : 0.0;
    for (size_t j = 0; j < d; j++) u[i * d + j] = x[i * d + j] * inv;
  }
  return u;
}

int probe_knn(const float *train, const int *ytrain, size_t ntrain, const float *test,
              size_t ntest, size_t d, size_t k, size_t knn, int *pred) {
  if (knn > ntrain) knn = ntrain;
  double *a = unit_rows(train, ntrain, d), *q = unit_rows(test, ntest, d);
  double *top = malloc((knn + 1) * sizeof *top), *sum = malloc((k + 1) * sizeof *sum);
  size_t *idx = malloc((knn + 1) * sizeof *idx), *votes = malloc((k + 1) * sizeof *votes);
  int rc = -1;
  if (!a || !q || !top || !sum || !idx || !votes) goto done;
  for (size_t t = 0; t < ntest; t++) {
    size_t have = 0;
    for (size_t i = 0; i < ntrain; i++) {
      double sim = dot(q + t * d, a + i * d, d);
      if (have == knn && !(sim > top[knn - 1])) continue; /* ties keep the earlier row */
      size_t pos = have < knn ? have++ : knn - 1;
      while (pos > 0 && sim > top[pos - 1]) {
        top[pos] = top[pos - 1];
        idx[pos] = idx[pos - 1];
        pos--;
      }
      top[pos] = sim;
      idx[pos] = i;
    }
    memset(votes, 0, k * sizeof *votes);
    for (size_t c = 0; c < k; c++) sum[c] = 0.0;
    for (size_t m = 0; m < have; m++) {
      votes[ytrain[idx[m]]]++;
      sum[ytrain[idx[m]]] += top[m];
    }
    size_t best = 0;
    for (size_t c = 1; c < k; c++)
      if (votes[c] > votes[best] || (votes[c] == votes[best] && sum[c] > sum[best])) best = c;
    pred[t] = (int)best;
  }
  rc = 0;
done:
  free(a);
  free(q);
  free(top);
  free(sum);
  free(idx);
  free(votes);
  return rc;
}

typedef struct scored {
  double s;
  int pos;
} scored;

static int by_score_desc(const void *pa, const void *pb) {
  double a = ((const scored *)pa)->s, b = ((const scored *)pb)->s;
  return (a < b) - (a > b);
}

double probe_auc(const double *score, const int *positive, size_t n) {
  scored *v = malloc((n + 1) * sizeof *v);
  if (!v) return NAN;
  size_t npos = 0;
  for (size_t i = 0; i < n; i++) {
    v[i].s = score[i];
    v[i].pos = positive[i] != 0;
    npos += (size_t)v[i].pos;
  }
  size_t nneg = n - npos;
  if (!npos || !nneg) {
    free(v);
    return NAN;
  }
  qsort(v, n, sizeof *v, by_score_desc);
  /* Walk down the thresholds; a group of tied scores moves the ROC point diagonally. */
  double area = 0.0, tp = 0.0, fp = 0.0;
  for (size_t i = 0; i < n;) {
    double tp0 = tp, fp0 = fp;
    size_t j = i;
    for (; j < n && v[j].s == v[i].s; j++) {
      if (v[j].pos) tp += 1.0;
      else fp += 1.0;
    }
    area += (fp - fp0) * (tp + tp0) * 0.5;
    i = j;
  }
  free(v);
  return area / ((double)npos * (double)nneg);
}
