/* Shared optimizer options (see optim_opts.h). */
#include "optim_opts.h"

int cli_optim_apply(const char *cmd, const cli_optim_args *a, const cli_opt *opts, int n_opts,
                    bl_train_config *t) {
    bl_error err = {0};
    if (bl_optim_parse(&t->opt, a->optimizer, &err))
        return cli_error(cmd, "--optimizer: %s", err.msg);
    if (cli_opt_find(opts, n_opts, "momentum")->seen) {
        if (t->opt.kind != BL_OPT_SGD)
            return cli_error(cmd, "--momentum applies to sgd/momentum/nesterov, not %s",
                             a->optimizer);
        if (a->momentum < 0 || a->momentum >= 1)
            return cli_error(cmd, "--momentum %g must be in [0, 1)", (double)a->momentum);
        t->opt.momentum = a->momentum;
    }
    if (a->nesterov) {
        if (t->opt.kind != BL_OPT_SGD || t->opt.momentum <= 0)
            return cli_error(cmd, "--nesterov needs SGD with momentum > 0");
        t->opt.nesterov = 1;
    }
    if (cli_opt_find(opts, n_opts, "weight-decay")->seen) {
        if (a->weight_decay < 0) return cli_error(cmd, "--weight-decay must be >= 0");
        t->opt.weight_decay = a->weight_decay;
    }
    if (bl_schedule_parse(&t->sched, a->schedule, &err))
        return cli_error(cmd, "--schedule: %s", err.msg);
    if (bl_lr_scale_parse(&t->lr_scale, a->lr_scale, &err))
        return cli_error(cmd, "--lr-scale: %s", err.msg);
    if (bl_loss_parse(&t->loss, a->loss, &err)) return cli_error(cmd, "--loss %s", err.msg);
    return 0;
}
