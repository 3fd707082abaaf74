/* Gradient-noise-scale estimator (see include/batchlab/noise.h). */
#include "batchlab/noise.h"
#include <math.h>

void bl_noise_init(bl_noise *ns, double decay) {
    ns->decay = decay > 0 && decay < 1 ? decay : 0.95;
    ns->g2_ema = ns->tr_ema = 0;
    ns->n = 0;
    ns->last_g2 = ns->last_tr = NAN;
}

double bl_noise_g2_estimate(double g2_small, double b_small, double g2_big, double b_big) {
    return (b_big * g2_big - b_small * g2_small) / (b_big - b_small);
}

double bl_noise_trace_estimate(double g2_small, double b_small, double g2_big, double b_big) {
    return (g2_small - g2_big) / (1.0 / b_small - 1.0 / b_big);
}

void bl_noise_update(bl_noise *ns, double g2_small, double b_small, double g2_big, double b_big) {
    if (b_small <= 0 || b_big <= b_small || !isfinite(g2_small) || !isfinite(g2_big)) return;
    ns->last_g2 = bl_noise_g2_estimate(g2_small, b_small, g2_big, b_big);
    ns->last_tr = bl_noise_trace_estimate(g2_small, b_small, g2_big, b_big);
    ns->g2_ema = ns->decay * ns->g2_ema + (1 - ns->decay) * ns->last_g2;
    ns->tr_ema = ns->decay * ns->tr_ema + (1 - ns->decay) * ns->last_tr;
    ns->n++;
}

static double correction(const bl_noise *ns) {
    return 1 - pow(ns->decay, (double)ns->n);
}

double bl_noise_g2(const bl_noise *ns) {
    return ns->n ? ns->g2_ema / correction(ns) : NAN;
}

double bl_noise_trace(const bl_noise *ns) {
    return ns->n ? ns->tr_ema / correction(ns) : NAN;
}

double bl_noise_scale(const bl_noise *ns) {
    double g2 = bl_noise_g2(ns);
    return ns->n && g2 > 0 ? bl_noise_trace(ns) / g2 : NAN;
}
