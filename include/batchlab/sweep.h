/* Batch-size sweep: steps and examples to a target at many batch sizes, the
 * critical batch size fitted from them (bcrit.h), plots and a report.
 *
 *   bl_sweep_config c;  bl_sweep_config_default(&c);
 *   c.train.spec = "mlp";  c.batches = {16, 32, ...};  c.target_acc = 0.85;  c.out_dir = "runs/s";
 *   bl_sweep_result r;  bl_sweep_run(&ctx, &c, &train, &val, &test, &r, &err);
 *
 * A trial is one training run at batch size B and learning rate
 * lr = scale(lr, B, base_batch) * mult, stopped when validation reaches the
 * target (reached), at max_epochs (not reached), on a NaN (diverged), or, when
 * pruning, once it has taken as many steps as the best trial of its B without
 * reaching the target (pruned: it can no longer win). For each B the trial
 * with the fewest steps to the target is kept (Shallue et al. 2018 tune the
 * learning rate per batch size the same way). The grid multiplier 1 runs
 * first so pruning bites early.
 *
 * Validation runs every max(1, round(I / B), floor(0.02 s)) updates at update s,
 * I = eval_every_samples, so S is resolved to about I examples or 2%, whichever is
 * coarser, without evaluating every update of long trials. By default (I = 0) the
 * interval follows the data and the batch: I = min(4096, max(B, n_train / 16)), so a
 * small data set is checked at least 16 times an epoch, and at every update when the
 * batch is above n_train / 16 (a fixed 4096 once made every trial on 1,294 rows cross at
 * ~4,000 examples whatever its batch: perfect scaling everywhere, and no fit). Each trial
 * records the resolution of its S: the target was crossed after update S - steps_res
 * and at or before S.
 * Evaluation uses a second copy of the model allocated for large batches, so
 * it costs the same at every B; its time is counted in wall_s but not train_s.
 *
 * Everything lives in out_dir: sweep.json (settings), trials/<id>.json (one per
 * finished trial, written atomically), logs/<id>.jsonl (each trial's step log,
 * renamed into place when the trial finishes), results.csv/.json, PNG
 * and SVG plots under plots/, report.md and report.html. Running again skips finished trials and
 * refuses a folder whose sweep used other settings (batch sizes and the grid may
 * change, to extend a sweep). should_stop, polled between updates, ends the run
 * with BL_ERR_INTERRUPTED and leaves only complete files behind. */
#ifndef BATCHLAB_SWEEP_H
#define BATCHLAB_SWEEP_H

#include "batchlab/bcrit.h"
#include "batchlab/train.h"

#ifdef __cplusplus
extern "C" {
#endif

#define BL_SWEEP_MAX_BATCHES 32
#define BL_SWEEP_MAX_LRS 16

typedef enum {
    BL_TRIAL_REACHED,
    BL_TRIAL_NOT_REACHED, /* max_epochs ran out */
    BL_TRIAL_DIVERGED,    /* the loss or gradient became NaN/Inf */
    BL_TRIAL_PRUNED,      /* passed the best trial's step count for its B */
} bl_trial_status;
const char *bl_trial_status_name(bl_trial_status s); /* "reached", ... */

typedef struct bl_trial_point { /* one validation evaluation */
    long step, samples;
    double val_acc, val_loss;
    double noise_scale; /* the trainer's EMA of B_simple then (NaN before any measurement) */
} bl_trial_point;

typedef struct bl_trial {
    char id[64]; /* "B64_lr0.025": file names under trials/ and logs/ */
    int batch;
    double lr_mult;
    float lr; /* the learning rate used */
    bl_trial_status status;
    long steps, examples;     /* when it stopped: to the target if reached */
    long steps_res;           /* updates since the evaluation before the last one: a reached
                                 trial crossed the target in (steps - steps_res, steps] */
    double train_s;           /* seconds in optimizer updates (no evaluation) */
    double wall_s;            /* the whole trial, evaluations and the end measurements included */
    double val_acc, val_loss; /* at the last evaluation */
    double train_acc, train_loss, test_acc, test_loss; /* full splits at the end (NaN if
                                                          diverged or pruned) */
    double gen_gap;                                    /* train_acc - test_acc */
    size_t peak_mem_bytes; /* model, gradients, optimizer state, activations and loader at B */
    double noise_ema;      /* the trainer's B_simple EMA at the end (NaN if not measured or
                              not resolved: its smoothed tr(Sigma) still negative) */
    double noise_scale, noise_lo, noise_hi; /* bl_noise_measure at the end (reached only) */
    bl_trial_point *hist;                   /* evaluations, owned */
    int n_hist;
} bl_trial;

typedef enum {
    BL_SWEEP_EV_START,
    BL_SWEEP_EV_EVAL,
    BL_SWEEP_EV_END,
    BL_SWEEP_EV_SKIP
} bl_sweep_ev_kind;
typedef struct bl_sweep_event {
    bl_sweep_ev_kind kind;
    int index, total; /* trial number (1-based) of the total planned */
    const bl_trial *trial;
    const bl_trial_point *point; /* EV_EVAL */
} bl_sweep_event;

typedef struct bl_sweep_config {
    bl_train_config train; /* template: spec, loss, optimizer, lr (at base_batch), lr_scale,
                              base_batch, schedule, warm-up, seed, noise_decay. batch,
                              micro_batch, noise and noise_every are set per trial */
    int batches[BL_SWEEP_MAX_BATCHES];
    int n_batches;
    double lr_mults[BL_SWEEP_MAX_LRS]; /* grid around the scaled lr; {1} = the rule alone */
    int n_lr_mults;
    double target_acc;       /* > 0: validation accuracy to reach */
    double target_loss;      /* > 0: validation loss to reach (exactly one target) */
    long eval_every_samples; /* see above (default 0: min(4096, max(B, n_train/16))) */
    double max_epochs;       /* per trial (default 20) */
    int prune;               /* default 1 */
    int noise_every;         /* in-training noise estimate every N updates (0 = off; 10) */
    int noise_draws, noise_small, noise_big; /* end-of-trial bl_noise_measure (draws 0 = off) */
    const char *out_dir;
    const char *data_name; /* recorded in the settings and the report */
    const char *command;   /* the command line, quoted in the report (may be NULL) */
    int (*should_stop)(void *arg);
    void *stop_arg;
    void (*on_event)(void *arg, const bl_sweep_event *ev);
    void *event_arg;
} bl_sweep_config;

void bl_sweep_config_default(bl_sweep_config *c);

/* Examples between target checks at batch `batch` on n_train training rows (see above). */
long bl_sweep_eval_samples(const bl_sweep_config *c, size_t n_train, int batch);

/* Powers of two from 16 up to n_train/8 (so an epoch has at least 8 updates; from 1
 * when that is below 16). Returns how many were written (at most cap). */
int bl_sweep_default_batches(size_t n_train, int *out, int cap);

typedef struct bl_sweep_result {
    bl_trial *trials; /* batches x grid, in run order, owned */
    int n_trials;
    int best[BL_SWEEP_MAX_BATCHES]; /* trial index of each batch size's best reached trial, or -1 */
    int fit_ok;
    bl_bcrit fit;                /* over the best trials (meaningful when fit_ok) */
    char fit_msg[512];           /* why there is no fit, when there is none */
    double b_crit_lo, b_crit_hi; /* 95% bootstrap interval over the batch sizes (NaN if none) */
    double est_train_s[BL_SWEEP_MAX_BATCHES]; /* time to the target at each batch size: its
                                                 best S x the median seconds per update over
                                                 all its trials (NaN if not reached) */
    int recommended;    /* trial index of the batch size with the least est_train_s, or -1 */
    int n_skipped;      /* trials read back from an earlier run */
    char plot_msg[512]; /* why plots are missing, if they are ("" when all drawn) */
} bl_sweep_result;

/* Runs (or resumes) the sweep and writes everything into c->out_dir. train, val (the
 * target is checked on it) and test (may be NULL or empty: the gap then uses val) must be
 * normalised alike. Errors: BL_ERR_ARG for bad settings or a folder holding another
 * sweep (naming the setting that differs), BL_ERR_IO for files, BL_ERR_INTERRUPTED when
 * should_stop said so (finished trials stay on disk). *out is filled on success and
 * must then be released with bl_sweep_result_free. */
bl_status bl_sweep_run(bl_ctx *ctx, const bl_sweep_config *c, const bl_dataset *train,
                       const bl_dataset *val, const bl_dataset *test, bl_sweep_result *out,
                       bl_error *err);
void bl_sweep_result_free(bl_sweep_result *r);

#ifdef __cplusplus
}
#endif

#endif
