/* Gradient noise scale (McCandlish et al. 2018, "An Empirical Model of
 * Large-Batch Training"): B_simple = tr(Sigma) / |G|^2.
 *
 * Two unbiased estimates come from the squared norms of one gradient at a small
 * batch (|G_s|^2, batch b) and one at a big batch (|G_b|^2, batch B):
 *   |G|^2     ~ (B |G_b|^2 - b |G_s|^2) / (B - b)
 *   tr(Sigma) ~ (|G_s|^2 - |G_b|^2) / (1/b - 1/B)
 * Each is noisy (and may be negative), so the numerator and the denominator are
 * smoothed separately with bias-corrected exponential moving averages and only
 * their ratio is reported. During training both come from a batch drawn for
 * the measurement, with replacement, apart from the training batches (see
 * bl_train_config.noise): one example (dense models) or its first part is the
 * small batch, all of it the big one. */
#ifndef BATCHLAB_NOISE_H
#define BATCHLAB_NOISE_H

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bl_noise {
    double decay;            /* EMA decay per update, e.g. 0.95 */
    double g2_ema, tr_ema;   /* raw EMAs (divide by 1 - decay^n) */
    long n;                  /* updates seen */
    double last_g2, last_tr; /* the latest unsmoothed estimates */
} bl_noise;

void bl_noise_init(bl_noise *ns, double decay);
/* One observation: |G_s|^2 at batch b_small and |G_b|^2 at batch b_big > b_small. */
void bl_noise_update(bl_noise *ns, double g2_small, double b_small, double g2_big, double b_big);
double bl_noise_g2(const bl_noise *ns);    /* smoothed |G|^2 (NaN before any update) */
double bl_noise_trace(const bl_noise *ns); /* smoothed tr(Sigma) */
/* Smoothed B_simple = tr / |G|^2; NaN before any update or if |G|^2 <= 0. */
double bl_noise_scale(const bl_noise *ns);

/* The two one-shot estimates, for callers that average them their own way. */
double bl_noise_g2_estimate(double g2_small, double b_small, double g2_big, double b_big);
double bl_noise_trace_estimate(double g2_small, double b_small, double g2_big, double b_big);

#ifdef __cplusplus
}
#endif

#endif
