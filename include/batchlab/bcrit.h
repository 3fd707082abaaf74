/* The critical batch size (McCandlish et al. 2018, "An Empirical Model of
 * Large-Batch Training"; Shallue et al. 2018 measure the same trade-off).
 *
 * Training to a fixed target takes S steps and E = B*S examples at batch B,
 * and across batch sizes the two follow
 *     S = S_min (1 + B_crit / B)        E = E_min (1 + B / B_crit)
 * with B_crit = E_min / S_min. Eliminating B gives S_min/S + E_min/E = 1, i.e.
 *     1/S = 1/S_min - B_crit * (1/E),
 * a straight line in (1/E, 1/S). The fit is ordinary least squares of 1/S on
 * 1/E: the intercept is 1/S_min, minus the slope is B_crit. R^2 is that
 * regression's; a second R^2 says how well the fitted curve explains log S.
 *
 * Regimes, with a factor of 4 either side of B_crit (where the extra cost of
 * the other resource has reached 25%: at B = B_crit/4, E = 1.25 E_min; at
 * B = 4 B_crit, S = 1.25 S_min):
 *     B < B_crit/4              perfect scaling: doubling B halves the steps
 *     B_crit/4 <= B <= 4 B_crit diminishing returns
 *     B > 4 B_crit              maximal data parallelism: more B buys few steps */
#ifndef BATCHLAB_BCRIT_H
#define BATCHLAB_BCRIT_H

#include <stdint.h>
#include "batchlab/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bl_bcrit {
    int n; /* points used */
    double s_min, e_min, b_crit;
    double r2;           /* of the line 1/S against 1/E (NaN if 1/S does not vary) */
    double r2_log_steps; /* 1 - SS_res/SS_tot of ln S against the fitted S(B) */
} bl_bcrit;

/* Fit from n >= 2 measurements (steps[i] > 0, examples[i] > 0; batch = E/S).
 * BL_ERR_ARG for too few or non-positive points; BL_ERR_NUMERIC, with the fitted
 * line still in *out (s_min/e_min/b_crit NaN), when the data do not follow the
 * model: the line must have a positive intercept and a negative slope. */
bl_status bl_bcrit_fit(bl_bcrit *out, const double *steps, const double *examples, int n,
                       bl_error *err);

/* Percentile bootstrap interval for B_crit: refits n_boot resamples (with replacement) of
 * the n points and returns the (1-conf)/2 and (1+conf)/2 quantiles of the fits that
 * succeed (*n_ok of them). BL_ERR_NUMERIC when fewer than half succeed. */
bl_status bl_bcrit_interval(const double *steps, const double *examples, int n, int n_boot,
                            double conf, uint64_t seed, double *lo, double *hi, int *n_ok,
                            bl_error *err);

double bl_bcrit_steps(const bl_bcrit *f, double batch);    /* S_min (1 + B_crit/B) */
double bl_bcrit_examples(const bl_bcrit *f, double batch); /* E_min (1 + B/B_crit) */

#define BL_REGIME_FACTOR 4.0
typedef enum { BL_REGIME_PERFECT, BL_REGIME_DIMINISHING, BL_REGIME_MAXIMAL } bl_regime;
/* Which regime batch falls in for a given B_crit (> 0). */
bl_regime bl_bcrit_regime(double batch, double b_crit);
/* "perfect scaling", "diminishing returns", "maximal data parallelism". */
const char *bl_regime_name(bl_regime r);

#ifdef __cplusplus
}
#endif

#endif
