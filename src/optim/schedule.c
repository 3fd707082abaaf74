/* Learning-rate schedules and the batch-size scaling rules.
 *
 * A schedule is a pure function of the 0-based update index, so a run resumed
 * from a checkpoint only needs the step counter to continue on the same curve.
 * Warm-up is the linear ramp of Goyal et al. 2017 (base * (step+1) / warmup);
 * the decay (step or cosine) then runs over the steps after the warm-up, so
 * the first post-warm-up step gets exactly base_lr. Arithmetic is in double
 * and rounded once, so the curve does not depend on accumulated float error.
 *
 * Degenerate settings have a defined meaning instead of an error, because
 * bl_schedule_lr cannot fail: a negative step counts as step 0, step_size <= 0
 * disables step decay, and a cosine whose total_steps leaves no room after the
 * warm-up sits at min_lr (its end point) from then on. */
#include <math.h>
#include <string.h>
#include "batchlab/optim.h"

float bl_schedule_lr(const bl_schedule *s, long step) {
    double base = s->base_lr;
    if (step < 0) step = 0;
    if (s->warmup_steps > 0 && step < s->warmup_steps)
        return (float)(base * (double)(step + 1) / (double)s->warmup_steps);
    long warm = s->warmup_steps > 0 ? s->warmup_steps : 0;
    long since = step - warm; /* >= 0 */
    switch (s->kind) {
    case BL_SCHED_CONSTANT:
        return (float)base;
    case BL_SCHED_STEP: {
        if (s->step_size <= 0) return (float)base;
        long k = since / s->step_size;
        return (float)(base * pow((double)s->gamma, (double)k));
    }
    case BL_SCHED_COSINE: {
        long span = s->total_steps - warm;
        double progress = span > 0 ? (double)since / (double)span : 1.0;
        if (progress > 1.0) progress = 1.0;
        if (progress < 0.0) progress = 0.0;
        const double pi = 3.14159265358979323846;
        double lo = s->min_lr;
        return (float)(lo + (base - lo) * 0.5 * (1.0 + cos(pi * progress)));
    }
    }
    return (float)base;
}

bl_status bl_schedule_parse(bl_sched_kind *out, const char *s, bl_error *err) {
    if (s && strcmp(s, "constant") == 0) {
        *out = BL_SCHED_CONSTANT;
    } else if (s && strcmp(s, "step") == 0) {
        *out = BL_SCHED_STEP;
    } else if (s && strcmp(s, "cosine") == 0) {
        *out = BL_SCHED_COSINE;
    } else {
        return bl_fail(err, BL_ERR_ARG,
                       "schedule: unknown name '%s' (choose constant, step or cosine)", s ? s : "");
    }
    return BL_OK;
}

float bl_lr_scale(bl_lr_scale_rule rule, float lr, int batch, int base_batch) {
    if (batch <= 0 || base_batch <= 0) return lr; /* nothing sensible to scale by */
    double ratio = (double)batch / (double)base_batch;
    switch (rule) {
    case BL_LR_SCALE_NONE:
        return lr;
    case BL_LR_SCALE_LINEAR:
        return (float)((double)lr * ratio);
    case BL_LR_SCALE_SQRT:
        return (float)((double)lr * sqrt(ratio));
    }
    return lr;
}

bl_status bl_lr_scale_parse(bl_lr_scale_rule *out, const char *s, bl_error *err) {
    if (s && strcmp(s, "none") == 0) {
        *out = BL_LR_SCALE_NONE;
    } else if (s && strcmp(s, "linear") == 0) {
        *out = BL_LR_SCALE_LINEAR;
    } else if (s && strcmp(s, "sqrt") == 0) {
        *out = BL_LR_SCALE_SQRT;
    } else {
        return bl_fail(err, BL_ERR_ARG,
                       "lr scaling rule: unknown name '%s' (choose none, linear or sqrt)",
                       s ? s : "");
    }
    return BL_OK;
}
