/* Evaluation of frozen features for `lvmmed probe`: a multinomial logistic-regression
 * probe, k-nearest-neighbour classification and the ROC AUC, in double precision and
 * single-threaded, so results are identical run to run. Labels are class indices 0..k-1. */
#ifndef LVMMED_TOOLS_PROBE_H
#define LVMMED_TOOLS_PROBE_H

#include <stddef.h>

/* A fitted linear probe. Features are standardised with the training set's mean and
 * standard deviation (population; 1 where it is 0) before the linear map. */
typedef struct probe_logreg {
  size_t d, k;
  double l2;
  double *mean, *inv_std; /* d each */
  double *w;              /* k x d, class-major: logit_c = sum_j z_j w[c * d + j] + b[c] */
  double *b;              /* k */
  double loss;            /* objective at the solution (see probe_logreg_fit) */
  double grad_max;        /* largest |gradient component| there */
  int iterations, converged;
} probe_logreg;

/*
 * Minimises over W (d x k) and b (k), z_i the standardised features of row i,
 *   (1/n) sum_i [ log sum_c exp(z_i W_c + b_c) - (z_i W_{y_i} + b_{y_i}) ] + (l2 / 2) ||W||_F^2
 * by L-BFGS (10 pairs, Armijo backtracking) from zero until every gradient component is at
 * most tol in magnitude, or max_iter iterations. l2 > 0 makes the problem strictly convex:
 * the solution is unique. Returns 0, or -1 when out of memory (m is then empty).
 */
int probe_logreg_fit(probe_logreg *m, const float *x, const int *y, size_t n, size_t d, size_t k,
                     double l2, int max_iter, double tol);

/* probe_logreg_fit starting from start ((d + 1) k values: W then b, as m->w), or from zero
 * when start is NULL. */
int probe_logreg_fit_from(probe_logreg *m, const float *x, const int *y, size_t n, size_t d,
                          size_t k, double l2, int max_iter, double tol, const double *start);

/* Class probabilities (n x k) of rows x (n x d). */
void probe_logreg_proba(const probe_logreg *m, const float *x, size_t n, double *proba);

void probe_logreg_free(probe_logreg *m);

/*
 * Chooses l2 among grid[0..ngrid) by `folds`-fold cross-validation on (x, y): each class's
 * rows, in their order, are cut into folds contiguous blocks (neighbouring rows, such as
 * adjacent slices listed in name order, stay in one fold). Within a fold the penalties are
 * fitted from the largest down, each from the previous solution. Best validation accuracy
 * (pooled over the folds) wins; ties go to the lower validation log-loss. Returns the chosen value, or a
 * negative number when out of memory. *cv_accuracy receives its mean accuracy (may be NULL).
 */
double probe_logreg_select_l2(const float *x, const int *y, size_t n, size_t d, size_t k,
                              const double *grid, size_t ngrid, size_t folds, int max_iter,
                              double tol, double *cv_accuracy);

/*
 * k-nearest-neighbour classes of the test rows by cosine similarity to the training rows
 * (rows of norm 0 have similarity 0 to everything). Neighbours are the knn most similar
 * (knn is clipped to ntrain; equal similarities keep the lower training index); the class
 * with most votes wins, ties go to the larger sum of similarities, then the lower class.
 * Returns 0, or -1 when out of memory.
 */
int probe_knn(const float *train, const int *ytrain, size_t ntrain, const float *test,
              size_t ntest, size_t d, size_t k, size_t knn, int *pred);

/*
 * Area under the ROC curve of scores for the rows with positive[i] != 0 against the others:
 * the trapezoid rule over the thresholds between distinct scores, so tied scores count one
 * half (the Mann-Whitney statistic). NaN when either group is empty.
 */
double probe_auc(const double *score, const int *positive, size_t n);

#endif /* LVMMED_TOOLS_PROBE_H */
