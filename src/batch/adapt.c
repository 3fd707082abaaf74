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
        /* AdaScale's variance is that of the base batch's gradient, tr Sigma / m0 for the
         * per-example tr Sigma, so r = (B_noise/m0 + 1) / (B_noise/(s m0) + 1)
         * = s (B_noise + m0) / (B_noise + m): s times Pollux's efficiency. Without an
         * estimate yet, be conservative (r = 1). */
        if (!(b_noise >= 0)) return 1.0f;
        return (float)(s * bl_efficiency(b_noise, m0, m));
    case BL_ADAPT_LR_LINEAR:
        return (float)s;
    case BL_ADAPT_LR_SQRT:
        return (float)sqrt(s);
    case BL_ADAPT_LR_NONE:
        return 1.0f;
    }
    return 1.0f;
}

/* Steps ignored after a change (caches and page faults settle), and timed steps before a
 * batch counts as measured. */
#define ADAPT_WARM_STEPS 2
#define ADAPT_MIN_OBS 3

bl_status bl_adapt_init(bl_adapt *a, const bl_adapt_config *c, const char *spec,
                        const bl_dataset *ds, const bl_optim_config *opt, bl_error *err) {
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
    if (c->every_steps <= 0)
        return bl_fail(err, BL_ERR_ARG, "the re-evaluation interval must be positive");
    if (a->cfg.trial_steps <= 0)
        a->cfg.trial_steps = c->every_steps / 3 > ADAPT_WARM_STEPS + ADAPT_MIN_OBS
                                 ? c->every_steps / 3
                                 : ADAPT_WARM_STEPS + ADAPT_MIN_OBS;
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
            bl_train_memory_bytes(spec, ds->shape, ds->n_classes, opt, cand[i], c->backend, &bytes,
                                  err);
        if (st) return st;
        /* The noise scale is measured on batches of their own, gathered into one more
         * input buffer of the reserved size. */
        bytes += (size_t)cand[i] * (bl_shape_size(ds->shape) * sizeof(float) + sizeof(int32_t));
        if (!c->memory_bytes || bytes <= c->memory_bytes) cand[kept++] = cand[i];
    }
    if (!kept || cand[0] > c->base_batch)
        return bl_fail(err, BL_ERR_NOMEM, "the base batch %d does not fit the memory budget",
                       c->base_batch);
    for (int i = 0; i < kept; i++) {
        a->curve.p[i].batch = cand[i];
        if (cand[i] == c->base_batch) a->current = i;
    }
    a->curve.n = kept;
    a->previous = a->current;
    a->ceiling = kept - 1;
    a->trial_from = -1;
    a->warm = ADAPT_WARM_STEPS;
    return BL_OK;
}

void bl_adapt_observe(bl_adapt *a, int batch, double samples_per_s) {
    bl_throughput_point *p = &a->curve.p[a->current];
    if (p->batch != batch || !(samples_per_s > 0)) return;
    if (a->warm > 0) {
        a->warm--;
        return;
    }
    double *r = a->recent[a->current], v[BL_ADAPT_WINDOW];
    long n = ++a->obs[a->current];
    r[(n - 1) % BL_ADAPT_WINDOW] = samples_per_s;
    int k = n < BL_ADAPT_WINDOW ? (int)n : BL_ADAPT_WINDOW;
    for (int i = 0; i < k; i++) { /* insertion sort: at most 16 values */
        int j = i;
        for (; j > 0 && v[j - 1] > r[i]; j--)
            v[j] = v[j - 1];
        v[j] = r[i];
    }
    p->samples_per_s = k % 2 ? v[k / 2] : (v[k / 2 - 1] + v[k / 2]) / 2;
    p->step_s = batch / p->samples_per_s;
}

int bl_adapt_measured(const bl_adapt *a, int i) {
    return a->obs[i] >= ADAPT_MIN_OBS;
}

void bl_adapt_observe_comm(bl_adapt *a, int batch, double comm_s) {
    bl_throughput_point *p = &a->curve.p[a->current];
    if (p->batch == batch && comm_s >= 0) p->comm_s = comm_s;
}

double bl_adapt_throughput(const bl_adapt *a, int i) {
    if (bl_adapt_measured(a, i)) return a->curve.p[i].samples_per_s;
    /* Least squares of the step time t = a + b M over the measured batches. */
    double n = 0, sm = 0, st = 0, smm = 0, smt = 0;
    int near = -1;
    for (int j = 0; j < a->curve.n; j++) {
        if (!bl_adapt_measured(a, j)) continue;
        double m = a->curve.p[j].batch, t = a->curve.p[j].step_s;
        n++, sm += m, st += t, smm += m * m, smt += m * t;
        if (near < 0 || fabs(log(m / a->curve.p[i].batch)) <
                            fabs(log(a->curve.p[near].batch / (double)a->curve.p[i].batch)))
            near = j;
    }
    if (near < 0) return 0;
    double m = a->curve.p[i].batch, fixed = 0, per = 0;
    if (n >= 2) {
        per = (n * smt - sm * st) / (n * smm - sm * sm);
        fixed = (st - per * sm) / n;
        if (fixed < 0) fixed = 0, per = smt / smm; /* through the origin */
    }
    if (per > 0) return m / (fixed + per * m);
    /* One batch measured, across ranks: its communication is the fixed part of the step,
     * the rest grows with the batch. */
    const bl_throughput_point *q = &a->curve.p[near];
    if (q->comm_s > 0 && q->comm_s < q->step_s)
        return m / (q->comm_s + (q->step_s - q->comm_s) * m / q->batch);
    /* Else (or a fit that makes no sense): throughput grows as sqrt(M). */
    return q->samples_per_s * sqrt(m / q->batch);
}

int bl_adapt_batch(const bl_adapt *a) {
    return a->curve.p[a->current].batch;
}

static double goodput(const bl_adapt *a, int i, double b_noise) {
    return bl_adapt_throughput(a, i) *
           bl_efficiency(b_noise, a->cfg.base_batch, a->curve.p[i].batch);
}

/* Make index `to` current; a move to a batch never measured starts a trial. */
static void move_to(bl_adapt *a, int to, bl_adapt_decision *d) {
    a->trial_from = bl_adapt_measured(a, to) ? -1 : a->current;
    a->previous = a->current;
    a->current = to;
    a->warm = ADAPT_WARM_STEPS;
    d->to_batch = a->curve.p[to].batch;
    d->lr_factor =
        bl_adapt_lr_factor(a->cfg.lr_rule, d->noise_scale, a->cfg.base_batch, d->to_batch);
}

/* The end of a trial: keep the batch if its measured goodput beats the one it came from. */
static int judge_trial(bl_adapt *a, bl_adapt_decision *d) {
    int from = a->trial_from, cur = a->current;
    a->trial_from = -1;
    double bn = d->noise_scale;
    d->goodput_from = goodput(a, cur, bn);
    d->goodput_to = goodput(a, from, bn);
    double t = a->curve.p[cur].samples_per_s;
    if (d->goodput_from >= d->goodput_to) {
        snprintf(d->reason, sizeof d->reason,
                 "trial of batch %d confirmed: %.0f samples/s measured, %.1f%% more goodput than "
                 "%d at noise scale %.0f",
                 d->from_batch, t, 100 * (d->goodput_from / d->goodput_to - 1),
                 a->curve.p[from].batch, bn);
        return 0;
    }
    move_to(a, from, d);
    snprintf(d->reason, sizeof d->reason,
             "trial of batch %d: %.0f samples/s measured, %.1f%% less goodput than %d at noise "
             "scale %.0f: back to %d",
             d->from_batch, t, 100 * (1 - d->goodput_from / d->goodput_to), d->to_batch, bn,
             d->to_batch);
    return 1;
}

int bl_adapt_decide(bl_adapt *a, long step, const bl_noise *ns, bl_adapt_decision *d) {
    int trial = a->trial_from >= 0;
    if (step - a->last_eval_step < (trial ? a->cfg.trial_steps : a->cfg.every_steps)) return -1;
    if (!bl_adapt_measured(a, a->current)) return -1;
    a->last_eval_step = step;
    memset(d, 0, sizeof *d);
    d->step = step;
    d->from_batch = d->to_batch = bl_adapt_batch(a);
    d->noise_scale = bl_noise_scale(ns);
    if (!(d->noise_scale > 0)) {
        if (isnan(d->noise_scale))
            snprintf(d->reason, sizeof d->reason, "no noise-scale estimate yet");
        else /* the smoothed |G|^2 is not positive yet: gradient noise swamps the signal */
            snprintf(d->reason, sizeof d->reason,
                     "keep batch %d: the noise-scale estimate (%.3g) is not usable yet",
                     d->from_batch, d->noise_scale);
        return 0;
    }
    if (trial) return judge_trial(a, d);
    /* The optimum among usable candidates, then one step towards it. */
    if (a->ceiling < 0) a->ceiling = a->curve.n - 1;
    bl_throughput_curve pred = {.n = a->ceiling + 1}; /* measured or predicted, once each */
    for (int i = 0; i < pred.n; i++)
        pred.p[i] = (bl_throughput_point){a->curve.p[i].batch, bl_adapt_throughput(a, i), 0, 0};
    int best = bl_goodput_best(&pred, d->noise_scale, a->cfg.base_batch, NULL);
    if (best < 0) best = a->current;
    int next = best > a->current ? a->current + 1 : best < a->current ? a->current - 1 : best;
    d->goodput_from = goodput(a, a->current, d->noise_scale);
    d->goodput_to = goodput(a, next, d->noise_scale);
    double gain = d->goodput_to / d->goodput_from - 1;
    if (next == a->current || gain <= a->cfg.min_gain) {
        snprintf(d->reason, sizeof d->reason,
                 "keep batch %d: the step towards the optimum (%d) gains %.1f%% goodput (< %.0f%%) "
                 "at noise scale %.0f",
                 d->from_batch, a->curve.p[best].batch, 100 * gain, 100 * a->cfg.min_gain,
                 d->noise_scale);
        return 0;
    }
    int untried = !bl_adapt_measured(a, next);
    move_to(a, next, d);
    snprintf(d->reason, sizeof d->reason,
             "noise scale %.0f: batch %d predicts %.1f%% more goodput than %d (%.0f vs %.0f "
             "samples/s x efficiency; optimum %d)%s",
             d->noise_scale, d->to_batch, 100 * gain, d->from_batch, d->goodput_to, d->goodput_from,
             a->curve.p[best].batch,
             untried ? "; a trial, its throughput is predicted until measured" : "");
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
    move_to(a, back, d);
    a->previous = back;
    a->trial_from = -1;
    snprintf(d->reason, sizeof d->reason,
             "training diverged at batch %d: back to %d, and no batch above %d from now on",
             d->from_batch, d->to_batch, a->curve.p[a->ceiling].batch);
    a->last_eval_step = step;
    return 1;
}

bl_status bl_adapt_replay(bl_adapt *a, const bl_batch_schedule *history, long step, bl_error *err) {
    for (int k = 0; k < history->n && history->v[k].step <= step; k++) {
        int i = 0;
        while (i < a->curve.n && a->curve.p[i].batch != history->v[k].batch)
            i++;
        if (i == a->curve.n)
            return bl_fail(err, BL_ERR_ARG,
                           "the resumed run used batch %d (after update %ld), which is not a "
                           "candidate of this adaptive run (powers of two from %d to %d and the "
                           "base batch %d): resume with the same batch bounds",
                           history->v[k].batch, history->v[k].step, a->cfg.min_batch,
                           a->cfg.max_batch, a->cfg.base_batch);
        if (i != a->current) a->previous = a->current, a->current = i;
        a->last_eval_step = history->v[k].step;
    }
    a->trial_from = -1;
    a->warm = ADAPT_WARM_STEPS;
    return BL_OK;
}
