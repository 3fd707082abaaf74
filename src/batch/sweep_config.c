/* The sweep's settings and results as values: defaults, the default batch
 * grid, status names, the evaluation cadence, and freeing a result. Kept apart
 * from the loop (sweep.c) so that the sweep's files (sweep_store.c) and report
 * (sweep_report.c) depend on these and not on the loop, which depends on them:
 * sweep.c -> sweep_report.c -> sweep_store.c -> sweep_config.c, one way. */
#include <string.h>
#include "batchlab/sweep.h"
#include "core/alloc.h"

void bl_sweep_config_default(bl_sweep_config *c) {
    memset(c, 0, sizeof *c);
    bl_train_config_default(&c->train);
    c->train.lr_scale = BL_LR_SCALE_SQRT;
    c->train.base_batch = 128;
    c->lr_mults[0] = 0.5, c->lr_mults[1] = 1, c->lr_mults[2] = 2;
    c->n_lr_mults = 3;
    c->eval_every_samples = 0; /* follows the data and the batch */
    c->max_epochs = 20;
    c->prune = 1;
    c->noise_every = 10;
    c->noise_draws = 32, c->noise_small = 64, c->noise_big = 1024;
    c->data_name = "";
}

int bl_sweep_default_batches(size_t n_train, int *out, int cap) {
    size_t top = n_train / 8;
    int start = top >= 16 ? 16 : 1, n = 0;
    for (size_t b = (size_t)start; b <= top && n < cap; b *= 2)
        out[n++] = (int)b;
    if (n == 0 && cap > 0 && n_train >= 1) out[n++] = 1;
    return n;
}

const char *bl_trial_status_name(bl_trial_status s) {
    switch (s) {
    case BL_TRIAL_REACHED:
        return "reached";
    case BL_TRIAL_NOT_REACHED:
        return "not_reached";
    case BL_TRIAL_DIVERGED:
        return "diverged";
    case BL_TRIAL_PRUNED:
        return "pruned";
    }
    return "?";
}

void bl_sweep_result_free(bl_sweep_result *r) {
    if (!r) return;
    for (int i = 0; i < r->n_trials; i++)
        bl_free(r->trials[i].hist);
    bl_free(r->trials);
    r->trials = NULL;
    r->n_trials = 0;
}

long bl_sweep_eval_samples(const bl_sweep_config *c, size_t n_train, int batch) {
    if (c->eval_every_samples > 0) return c->eval_every_samples;
    long per_epoch = (long)(n_train / 16), v = batch > per_epoch ? batch : per_epoch;
    return v < 4096 ? v : 4096;
}
