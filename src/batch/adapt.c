/* Adaptive batch-size controller (see include/batchlab/adapt.h). */
#include "batchlab/adapt.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

bl_status bl_adapt_lr_parse(bl_adapt_lr *out, const char *s, bl_error *err) {
    if (!strcmp(s, "adascale"))
        *out = BL_ADAPT_LR_ADASCALE;
    else if (!strcmp(s, "linear"))
        *out = BL_ADAPT_LR_LINEAR;
    else if (!strcmp(s, "sqrt"))
        *out = BL_ADAPT_LR_SQRT;
    else if (!strcmp(s, "none"))
        *out = BL_ADAPT_LR_NONE;
    else
        return bl_fail(err, BL_ERR_ARG, "unknown rule '%s' (choose adascale, linear, sqrt or none)",
                       s);
    return BL_OK;
}

float bl_adapt_lr_factor(bl_adapt_lr rule, double b_noise, int m0, int m) {
    double s = (double)m / m0;
    switch (rule) {
    case BL_ADAPT_LR_ADASCALE:
        /* Without an estimate yet, be conservative (r = 1). */
        if (!(b_noise >= 0)) return 1.0f;
        return (float)((b_noise + 1) / (b_noise / s + 1));
    case BL_ADAPT_LR_LINEAR:
        return (float)s;
    case BL_ADAPT_LR_SQRT:
        return (float)sqrt(s);
    case BL_ADAPT_LR_NONE:
        return 1.0f;
    }
    return 1.0f;
}

bl_status bl_adapt_init(bl_adapt *a, const bl_adapt_config *c, const char *spec,
                        const bl_dataset *ds, const bl_optim_config *opt, bl_ctx *ctx,
                        bl_error *err) {
    memset(a, 0, sizeof *a);
    a->cfg = *c;
    if (c->min_batch < 2 || c->max_batch < c->min_batch || c->base_batch < c->min_batch ||
        c->base_batch > c->max_batch)
        return bl_fail(err, BL_ERR_ARG,
                       "adaptive batch bounds are invalid: need 2 <= min (%d) <= base (%d) <= "
                       "max (%d)",
                       c->min_batch, c->base_batch, c->max_batch);
    if ((size_t)c->max_batch > ds->n)
        return bl_fail(err, BL_ERR_ARG, "maximum batch %d exceeds the %zu training samples",
                       c->max_batch, ds->n);
    /* Candidates: powers of two within bounds, plus the base batch; within the budget. */
    int cand[BL_FIND_MAX_POINTS], n = 0;
    for (long b = 1; b <= c->max_batch && n < BL_FIND_MAX_POINTS - 1; b *= 2) {
        if (b < c->min_batch) continue;
        if (b > c->base_batch && (n == 0 || cand[n - 1] < c->base_batch)) cand[n++] = c->base_batch;
        if (b != c->base_batch) cand[n++] = (int)b;
    }
    if (n == 0 || cand[n - 1] < c->base_batch) cand[n++] = c->base_batch;
    int kept = 0;
    for (int i = 0; i < n; i++) {
        size_t bytes = 0;
        bl_status st =
            bl_train_memory_bytes(spec, ds->shape, ds->n_classes, opt, cand[i] / 2, &bytes, err);
        if (st) return st;
        if (!c->memory_bytes || bytes <= c->memory_bytes) cand[kept++] = cand[i];
    }
    if (!kept || cand[0] > c->base_batch)
        return bl_fail(err, BL_ERR_NOMEM, "the base batch %d does not fit the memory budget",
                       c->base_batch);
    /* A short probe (one warm-up, one ~0.05 s run each): it is paid by every run, and
     * the live steps correct the current batch's figure afterwards. */
    bl_status st = bl_find_throughput(spec, ds, opt, cand, kept, 1, 1, 0.05, ctx, &a->curve, err);
    if (st) return st;
    for (int i = 0; i < a->curve.n; i++)
        if (a->curve.p[i].batch == c->base_batch) a->current = i;
    a->previous = a->current;
    a->ceiling = a->curve.n - 1;
    return BL_OK;
}

void bl_adapt_observe(bl_adapt *a, int batch, double samples_per_s) {
    for (int i = 0; i < a->curve.n; i++)
        if (a->curve.p[i].batch == batch && samples_per_s > 0) {
            bl_throughput_point *p = &a->curve.p[i];
            p->samples_per_s += 0.1 * (samples_per_s - p->samples_per_s);
        }
}

int bl_adapt_batch(const bl_adapt *a) {
    return a->curve.p[a->current].batch;
}

int bl_adapt_decide(bl_adapt *a, long step, const bl_noise *ns, bl_adapt_decision *d) {
    if (step - a->last_eval_step < a->cfg.every_steps) return -1;
    a->last_eval_step = step;
    memset(d, 0, sizeof *d);
    d->step = step;
    d->from_batch = d->to_batch = bl_adapt_batch(a);
    d->noise_scale = bl_noise_scale(ns);
    if (!(d->noise_scale > 0)) {
        snprintf(d->reason, sizeof d->reason, "no noise-scale estimate yet");
        return 0;
    }
    int m0 = a->cfg.base_batch;
    /* The optimum among usable candidates, then one step towards it. */
    bl_throughput_curve usable = a->curve;
    if (a->ceiling < 0) a->ceiling = a->curve.n - 1;
    usable.n = a->ceiling + 1;
    int best = bl_goodput_best(&usable, d->noise_scale, m0, NULL);
    int next = best > a->current ? a->current + 1 : best < a->current ? a->current - 1 : best;
    const bl_throughput_point *cur = &a->curve.p[a->current], *nx = &a->curve.p[next];
    double g_best = nx->samples_per_s * bl_efficiency(d->noise_scale, m0, nx->batch);
    d->goodput_from = cur->samples_per_s * bl_efficiency(d->noise_scale, m0, cur->batch);
    d->goodput_to = g_best;
    d->to_batch = nx->batch;
    if (next == a->current || g_best <= d->goodput_from * (1 + a->cfg.min_gain)) {
        d->to_batch = d->from_batch;
        snprintf(d->reason, sizeof d->reason,
                 "keep batch %d: the step towards the optimum (%d) gains %.1f%% goodput (< %.0f%%) "
                 "at noise scale %.0f",
                 d->from_batch, a->curve.p[best].batch, 100 * (g_best / d->goodput_from - 1),
                 100 * a->cfg.min_gain, d->noise_scale);
        return 0;
    }
    d->lr_factor = bl_adapt_lr_factor(a->cfg.lr_rule, d->noise_scale, m0, d->to_batch);
    snprintf(d->reason, sizeof d->reason,
             "noise scale %.0f: batch %d predicts %.1f%% more goodput than %d (%.0f vs %.0f "
             "samples/s x efficiency; optimum %d)",
             d->noise_scale, d->to_batch, 100 * (g_best / d->goodput_from - 1), d->from_batch,
             g_best, d->goodput_from, a->curve.p[best].batch);
    a->previous = a->current;
    a->current = next;
    return 1;
}

int bl_adapt_revert(bl_adapt *a, long step, double b_noise, bl_adapt_decision *d) {
    memset(d, 0, sizeof *d);
    d->step = step;
    d->from_batch = bl_adapt_batch(a);
    d->noise_scale = b_noise;
    int back = a->previous != a->current ? a->previous : a->current - 1;
    if (back < 0 || back >= a->current) return 0;
    a->ceiling = a->current - 1;
    a->current = a->previous = back;
    d->to_batch = bl_adapt_batch(a);
    d->lr_factor = bl_adapt_lr_factor(a->cfg.lr_rule, b_noise, a->cfg.base_batch, d->to_batch);
    snprintf(d->reason, sizeof d->reason,
             "training diverged at batch %d: back to %d, and no batch above %d from now on",
             d->from_batch, d->to_batch, a->curve.p[a->ceiling].batch);
    a->last_eval_step = step;
    return 1;
}
