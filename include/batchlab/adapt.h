/* Adaptive batch size while training (`batchlab train --batch auto`).
 *
 * Goodput(M) = throughput(M) x efficiency(M), efficiency from the live noise
 * scale as in Pollux: (B_noise + M0) / (B_noise + M). Nothing is measured up
 * front: the throughput of a batch size is learnt from the real training steps
 * run at it, and a batch never run yet is predicted from the measured ones with
 * the step-time model t(M) = a + b M (fixed cost per update plus cost per
 * sample; with one measured batch, throughput is assumed to grow as sqrt(M)).
 * Every `every_steps` updates the controller re-evaluates and moves one
 * candidate (a factor of two) towards the goodput optimum when the predicted
 * gain exceeds min_gain (5%), so noise does not make it oscillate and the
 * learning rate never jumps by more than the gain of one doubling. A move to a
 * batch never measured is a trial: after `trial_steps` updates there, its
 * measured goodput is compared with the batch it came from, and the controller
 * goes back if the prediction was wrong. Trial steps are ordinary training
 * steps, so exploring costs little. If training diverges after a change,
 * bl_adapt_revert steps back and caps the batch below the one that failed. The
 * learning rate follows AdaScale's gain ratio
 *   r = (tr Sigma_M0 + |G|^2) / (tr Sigma_M0 / s + |G|^2) = s (B_noise + M0) / (B_noise + M),
 * with s = M / M0 and Sigma_M0 = Sigma / M0 the covariance of the base batch's gradient
 * (Sigma per example, B_noise = tr Sigma / |G|^2), or a fixed rule. */
#ifndef BATCHLAB_ADAPT_H
#define BATCHLAB_ADAPT_H

#include "batchlab/batch_schedule.h"
#include "batchlab/find.h"
#include "batchlab/noise.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    BL_ADAPT_LR_ADASCALE,
    BL_ADAPT_LR_LINEAR,
    BL_ADAPT_LR_SQRT,
    BL_ADAPT_LR_NONE
} bl_adapt_lr;

typedef struct bl_adapt_config {
    int base_batch; /* M0: the batch --lr is given for, and the first batch used */
    int min_batch, max_batch;
    size_t memory_bytes; /* 0 = no budget; otherwise candidates must fit (training footprint) */
    long every_steps;    /* re-evaluate this often */
    long trial_steps;    /* updates at a never-measured batch before judging it (0: every/3) */
    double min_gain;     /* switch only above this predicted goodput gain (0.05) */
    bl_adapt_lr lr_rule;
    const bl_backend *backend; /* where training runs, for the memory budget (NULL: cpu) */
} bl_adapt_config;

typedef struct bl_adapt_decision {
    long step;
    int from_batch, to_batch;
    double noise_scale;
    double goodput_from, goodput_to; /* predicted, base-batch-equivalent samples/s */
    float lr_factor;                 /* lr = --lr x this at the new batch */
    char reason[192];
} bl_adapt_decision;

#define BL_ADAPT_WINDOW 16

typedef struct bl_adapt {
    bl_adapt_config cfg;
    bl_throughput_curve curve;    /* candidates (powers of two in [min, max]); samples_per_s
                                     is 0 until measured */
    long obs[BL_FIND_MAX_POINTS]; /* timed steps seen at each candidate */
    /* The last BL_ADAPT_WINDOW throughputs of each candidate: their median is its figure,
     * so a burst of other work on a shared machine does not move the decision. */
    double recent[BL_FIND_MAX_POINTS][BL_ADAPT_WINDOW];
    int current;    /* index into curve */
    int ceiling;    /* highest usable index (lowered after a divergence) */
    int previous;   /* index before the last change */
    int trial_from; /* during a trial: the index it started from; else -1 */
    long last_eval_step;
    int warm; /* steps left to ignore after a change (first-touch effects) */
} bl_adapt;

bl_status bl_adapt_lr_parse(bl_adapt_lr *out, const char *s, bl_error *err);
/* The lr multiplier for batch m at noise scale b_noise under rule. */
float bl_adapt_lr_factor(bl_adapt_lr rule, double b_noise, int m0, int m);

/* Candidates: powers of two within the bounds plus the base batch, those whose training
 * footprint (spec on ds's shape, optimizer opt) fits the memory budget. Starts at the
 * base batch; nothing is timed here. */
bl_status bl_adapt_init(bl_adapt *a, const bl_adapt_config *c, const char *spec,
                        const bl_dataset *ds, const bl_optim_config *opt, bl_error *err);
/* Feed the throughput of a real step at the current batch (median of the recent ones). */
void bl_adapt_observe(bl_adapt *a, int batch, double samples_per_s);
/* Feed the time a step at the current batch waited on other ranks (data-parallel): a
 * cost per step that does not grow with the batch, used to predict the batches not
 * measured yet (the last value is kept). */
void bl_adapt_observe_comm(bl_adapt *a, int batch, double comm_s);
/* Throughput of candidate i: measured, or predicted from the measured ones (0 if none). */
double bl_adapt_throughput(const bl_adapt *a, int i);
int bl_adapt_measured(const bl_adapt *a, int i); /* enough live steps were timed at i */
/* At step `step` with the live noise estimate: returns 1 and fills d when the batch
 * should change (or 0, with d->reason saying why not, when it is time to evaluate
 * but no change pays; -1 when it is not time yet). */
int bl_adapt_decide(bl_adapt *a, long step, const bl_noise *ns, bl_adapt_decision *d);
int bl_adapt_batch(const bl_adapt *a); /* the current batch */
/* Training diverged at the current batch: go back to the previous one and never try
 * this one (or larger) again. Returns 0 if there is nothing to go back to. */
int bl_adapt_revert(bl_adapt *a, long step, double b_noise, bl_adapt_decision *d);
/* Bring a fresh controller to where a resumed run stood after update `step`, by replaying
 * the trainer's batch history up to there: the current batch is the last it gives, and
 * the next re-evaluation counts from that change. Throughput is learnt again.
 * BL_ERR_ARG naming the batch when one in the history is not a candidate here. */
bl_status bl_adapt_replay(bl_adapt *a, const bl_batch_schedule *history, long step, bl_error *err);

#ifdef __cplusplus
}
#endif

#endif
