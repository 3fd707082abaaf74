/* Joint batch-size x learning-rate (x momentum) search by ASHA (Li et al.
 * 2020, asynchronous successive halving), with examples seen as the resource,
 * since counting steps would hand large batches more data for the same budget.
 *
 * Rung k trains a configuration to r_k = min_examples x eta^k examples (capped
 * at max_examples) and records its validation accuracy. A configuration is
 * promoted from rung k when it is in the top 1/eta of those finished at rung k,
 * continuing from its checkpoint; otherwise the next configuration starts at
 * rung 0. Configurations are tried in a seeded random order, as ASHA samples.
 *
 * Everything lives in out_dir: tune.json (settings), trials/<id>.json (rungs
 * done, written atomically after each rung), ckpt/<id>.safetensors (the
 * checkpoint to continue from), results.csv/.json and plots/landscape.png/svg.
 * Running the same command again continues where it stopped; a folder holding
 * another search is refused. */
#ifndef BATCHLAB_TUNE_H
#define BATCHLAB_TUNE_H

#include "batchlab/train.h"

#ifdef __cplusplus
extern "C" {
#endif

#define BL_TUNE_MAX_CONFIGS 512
#define BL_TUNE_MAX_RUNGS 12

typedef struct bl_tune_trial {
    char id[64];
    int batch;
    float lr, momentum;
    int rungs_done;                /* rungs completed */
    double acc[BL_TUNE_MAX_RUNGS]; /* validation accuracy at each rung */
    double loss[BL_TUNE_MAX_RUNGS];
    long examples; /* trained so far */
    double train_s;
    int diverged;
} bl_tune_trial;

typedef struct bl_tune_config {
    bl_train_config
        train; /* template: spec, optimizer, seed... (batch, lr, momentum set per trial) */
    int batches[32];
    int n_batches;
    float lrs[32]; /* learning rates at base_batch; each scaled to B by lr_scale */
    int n_lrs;
    float momenta[8]; /* SGD momentum values searched (n_momenta 0 = keep the template's) */
    int n_momenta;
    long min_examples, max_examples;
    int eta;
    const char *out_dir;
    int (*should_stop)(void *arg);
    void *stop_arg;
    void (*on_rung)(void *arg, const bl_tune_trial *t, int rung, long total_examples);
    void *rung_arg;
} bl_tune_config;

typedef struct bl_tune_result {
    bl_tune_trial trials[BL_TUNE_MAX_CONFIGS];
    int n_trials;
    int n_rungs;
    long rung_examples[BL_TUNE_MAX_RUNGS];
    int best;             /* index of the best trial (highest rung, then accuracy) */
    long total_examples;  /* compute spent, in training examples */
    double best_test_acc; /* the best checkpoint on the test split (NaN without one) */
} bl_tune_result;

bl_status bl_tune_run(bl_ctx *ctx, const bl_tune_config *c, const bl_dataset *train,
                      const bl_dataset *val, const bl_dataset *test, bl_tune_result *r,
                      bl_error *err);

#ifdef __cplusplus
}
#endif

#endif
