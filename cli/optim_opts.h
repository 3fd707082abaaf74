/* The optimizer options `train` and `sweep` share: --optimizer, --momentum, --nesterov,
 * --weight-decay, --schedule, --lr-scale and --loss, checked and applied to a training
 * configuration in one place. Each command keeps its own option table (defaults and
 * help differ) pointing into a cli_optim_args. */
#ifndef BL_CLI_OPTIM_OPTS_H
#define BL_CLI_OPTIM_OPTS_H

#include "args.h"
#include "batchlab/train.h"

typedef struct cli_optim_args {
    const char *optimizer, *schedule, *lr_scale, *loss;
    int nesterov;
    float momentum, weight_decay;
} cli_optim_args;

/* Fills t->opt, t->sched, t->lr_scale and t->loss; prints the error naming the flag and
 * returns 2 on a bad value, 0 otherwise. --momentum and --weight-decay apply only when
 * given (opts tells), so the optimizer's own defaults stay. */
int cli_optim_apply(const char *cmd, const cli_optim_args *a, const cli_opt *opts, int n_opts,
                    bl_train_config *t);

#endif
