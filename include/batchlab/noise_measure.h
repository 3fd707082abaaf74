/* The gradient noise scale of a fixed model (a checkpoint), measured over many
 * random batches with a confidence interval; `batchlab noise` and the sweep use
 * it. During training the trainer estimates the same quantity with EMAs (see
 * noise.h); here the weights do not move, so plain means are unbiased.
 *
 * Each draw takes b_big distinct random samples; the first b_small of them are
 * the small batch. One train-mode forward/backward per chunk gives |G_s|^2
 * after the small batch and |G_b|^2 after the whole big batch (gradients
 * accumulate with weight 1/b_big, so no pass is repeated). The one-shot
 * estimates of |G|^2 and tr(Sigma) (noise.h) are averaged over the draws, and
 * B_simple = mean tr / mean |G|^2. Because batches are drawn without
 * replacement from a finite dataset of n samples, 1/b in those estimates is
 * replaced by (n - b) / (b (n - 1)), which makes them exactly unbiased for the
 * dataset's own |G|^2 and per-sample tr(Sigma). Its interval is a percentile
 * bootstrap over draws (resampling whole draws keeps each pair's correlation).
 *
 * The big batch runs in chunks of the model's max batch, so b_big may exceed
 * it (b_small may not). With batch norm each chunk uses its own statistics. */
#ifndef BATCHLAB_NOISE_MEASURE_H
#define BATCHLAB_NOISE_MEASURE_H

#include <stdint.h>
#include "batchlab/model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bl_noise_measure_config {
    int b_small, b_big; /* 1 <= b_small < b_big <= samples in the dataset */
    int draws;          /* random big batches averaged, >= 2 */
    uint64_t seed;
    bl_loss_kind loss;
    double confidence;             /* interval level in (0, 1), e.g. 0.95 */
    int n_boot;                    /* bootstrap resamples, e.g. 2000 */
    int (*should_stop)(void *arg); /* polled between draws (NULL = never) */
    void *stop_arg;
} bl_noise_measure_config;

void bl_noise_measure_config_default(bl_noise_measure_config *c);

typedef struct bl_noise_measurement {
    int b_small, b_big, draws;
    double g2, trace;          /* means of the unbiased |G|^2 and tr(Sigma) estimates */
    double g2_se, trace_se;    /* their standard errors */
    double scale;              /* B_simple = trace / g2 (NaN when g2 <= 0: not resolved) */
    double scale_lo, scale_hi; /* bootstrap interval; scale_hi is +inf when the resampled
                                  |G|^2 reaches 0 (then only a lower bound is known) */
    double confidence;
    double mean_loss; /* training loss over the big batches, train mode */
    double seconds;
} bl_noise_measurement;

/* Measure on ds (already normalised as the model expects). The model's gradient arena
 * is overwritten; its buffers (batch-norm running statistics) and dropout RNG are
 * restored, so training or evaluating afterwards sees the model unchanged.
 * Errors: BL_ERR_ARG for bad batch sizes (naming them) or labels outside the model's
 * outputs, BL_ERR_SHAPE for a sample size that is not the model's input,
 * BL_ERR_NUMERIC for a non-finite loss, BL_ERR_INTERRUPTED when should_stop said so. */
bl_status bl_noise_measure(bl_model *m, const bl_dataset *ds, const bl_noise_measure_config *c,
                           bl_noise_measurement *out, bl_error *err);

#ifdef __cplusplus
}
#endif

#endif
