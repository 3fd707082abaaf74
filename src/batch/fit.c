/* Critical-batch-size fit and regimes (see include/batchlab/bcrit.h).
 *
 * Why a line in (1/E, 1/S) rather than a nonlinear fit of S(B): it is the
 * relation the model states with no batch size in it, least squares has a
 * closed form (two sums), and it is the regression McCandlish et al. report.
 * The sums are taken about the means, so the tiny magnitudes of 1/E (1e-6 for
 * a million examples) cost no precision. */
#include "batchlab/bcrit.h"
#include <math.h>
#include <stdlib.h>
#include "batchlab/core.h"
#include "core/alloc.h"

bl_status bl_bcrit_fit(bl_bcrit *out, const double *steps, const double *examples, int n,
                       bl_error *err) {
    out->n = n;
    out->s_min = out->e_min = out->b_crit = out->r2 = out->r2_log_steps = NAN;
    if (n < 2)
        return bl_fail(err, BL_ERR_ARG,
                       "the critical-batch fit needs at least 2 batch sizes that reached the "
                       "target, got %d",
                       n);
    for (int i = 0; i < n; i++)
        if (!(steps[i] > 0) || !(examples[i] > 0) || !isfinite(steps[i]) || !isfinite(examples[i]))
            return bl_fail(err, BL_ERR_ARG,
                           "critical-batch fit: point %d has steps %g and examples %g; both "
                           "must be positive",
                           i, steps[i], examples[i]);
    double mx = 0, my = 0;
    for (int i = 0; i < n; i++)
        mx += 1 / examples[i], my += 1 / steps[i];
    mx /= n, my /= n;
    double sxx = 0, sxy = 0, syy = 0;
    for (int i = 0; i < n; i++) {
        double dx = 1 / examples[i] - mx, dy = 1 / steps[i] - my;
        sxx += dx * dx, sxy += dx * dy, syy += dy * dy;
    }
    if (!(sxx > 0))
        return bl_fail(err, BL_ERR_NUMERIC,
                       "critical-batch fit: every point used the same number of examples, so "
                       "the line 1/S against 1/E is undetermined");
    double slope = sxy / sxx, icpt = my - slope * mx;
    double ss_res = 0;
    for (int i = 0; i < n; i++) {
        double r = 1 / steps[i] - (icpt + slope * (1 / examples[i]));
        ss_res += r * r;
    }
    out->r2 = syy > 0 ? 1 - ss_res / syy : NAN;
    if (!(icpt > 0) || !(slope < 0))
        return bl_fail(err, BL_ERR_NUMERIC,
                       "critical-batch fit: the line 1/S = %.4g %+.4g/E has %s, so steps and "
                       "examples do not trade off as S = S_min(1 + B_crit/B) predicts (the "
                       "batch sizes may all lie in one regime, or the target is too noisy)",
                       icpt, slope,
                       !(icpt > 0) ? "a non-positive intercept" : "a non-negative slope");
    out->s_min = 1 / icpt;
    out->b_crit = -slope;
    out->e_min = out->b_crit * out->s_min;
    double ml = 0;
    for (int i = 0; i < n; i++)
        ml += log(steps[i]);
    ml /= n;
    double lres = 0, ltot = 0;
    for (int i = 0; i < n; i++) {
        double d = log(steps[i]) - log(bl_bcrit_steps(out, examples[i] / steps[i]));
        lres += d * d;
        ltot += (log(steps[i]) - ml) * (log(steps[i]) - ml);
    }
    out->r2_log_steps = ltot > 0 ? 1 - lres / ltot : NAN;
    return BL_OK;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

bl_status bl_bcrit_interval(const double *steps, const double *examples, int n, int n_boot,
                            double conf, uint64_t seed, double *lo, double *hi, int *n_ok,
                            bl_error *err) {
    *lo = *hi = NAN;
    *n_ok = 0;
    if (n < 2 || n_boot < 10 || !(conf > 0 && conf < 1))
        return bl_fail(err, BL_ERR_ARG, "B_crit interval: %d points, %d resamples, level %g", n,
                       n_boot, conf);
    double *v = bl_malloc((size_t)n_boot * sizeof *v), *S = bl_malloc((size_t)n * sizeof *S),
           *E = bl_malloc((size_t)n * sizeof *E);
    if (!v || !S || !E) {
        bl_free(v), bl_free(S), bl_free(E);
        return bl_fail(err, BL_ERR_NOMEM, "B_crit interval: out of memory");
    }
    bl_rng r;
    bl_rng_seed(&r, seed);
    int k = 0;
    for (int b = 0; b < n_boot; b++) {
        for (int i = 0; i < n; i++) {
            uint32_t j = bl_rng_below(&r, (uint32_t)n);
            S[i] = steps[j], E[i] = examples[j];
        }
        bl_bcrit f;
        if (bl_bcrit_fit(&f, S, E, n, NULL) == BL_OK) v[k++] = f.b_crit;
    }
    bl_status st = BL_OK;
    if (k * 2 < n_boot) {
        st = bl_fail(err, BL_ERR_NUMERIC, "B_crit interval: only %d of %d resampled fits succeeded",
                     k, n_boot);
    } else {
        qsort(v, (size_t)k, sizeof *v, cmp_double);
        double a = (1 - conf) / 2;
        *lo = v[(int)floor(a * (k - 1))];
        *hi = v[(int)ceil((1 - a) * (k - 1))];
    }
    *n_ok = k;
    bl_free(v), bl_free(S), bl_free(E);
    return st;
}

double bl_bcrit_steps(const bl_bcrit *f, double batch) {
    return f->s_min * (1 + f->b_crit / batch);
}

double bl_bcrit_examples(const bl_bcrit *f, double batch) {
    return f->e_min * (1 + batch / f->b_crit);
}

bl_regime bl_bcrit_regime(double batch, double b_crit) {
    if (batch < b_crit / BL_REGIME_FACTOR) return BL_REGIME_PERFECT;
    if (batch > b_crit * BL_REGIME_FACTOR) return BL_REGIME_MAXIMAL;
    return BL_REGIME_DIMINISHING;
}

const char *bl_regime_name(bl_regime r) {
    switch (r) {
    case BL_REGIME_PERFECT:
        return "perfect scaling";
    case BL_REGIME_DIMINISHING:
        return "diminishing returns";
    case BL_REGIME_MAXIMAL:
        return "maximal data parallelism";
    }
    return "?";
}
