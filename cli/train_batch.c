/* `batchlab train`: --batch auto, --batch-schedule and --resume (see train_batch.h). */
#include "train_batch.h"
#include <stdio.h>
#include <string.h>
#include "cli.h"

int train_replay_config(const char *cmd, const char *path, const char *batch, bl_batch_schedule *s,
                        bl_train_config *cfg, int world) {
    bl_error err = {0};
    if (batch && strcmp(batch, "auto"))
        return cli_error(cmd, "--batch-schedule sets the batch; drop --batch %s", batch);
    if (cfg->micro_batch)
        return cli_error(
            cmd, "--batch-schedule runs each update as one micro-batch; drop --micro-batch");
    if (bl_batch_schedule_load(s, path, &err))
        return cli_error(cmd, "--batch-schedule: %s", err.msg);
    cfg->batch = s->v[0].batch;
    cfg->reserve_batch = bl_batch_schedule_max_batch(s) / world;
    return 0;
}

bl_status train_resume(bl_trainer *t, const char *path, const bl_train_config *asked, cli_opt *opts,
                       int n_opts, char *note, size_t cap, bl_error *err) {
    static const struct {
        const char *opt;
        unsigned bit;
    } sched_opts[] = {{"schedule", BL_SCHED_SET_KIND},     {"lr", BL_SCHED_SET_LR},
                      {"lr-scale", BL_SCHED_SET_LR_SCALE}, {"base-batch", BL_SCHED_SET_BASE_BATCH},
                      {"warmup", BL_SCHED_SET_WARMUP},     {"step-size", BL_SCHED_SET_STEP_SIZE},
                      {"gamma", BL_SCHED_SET_GAMMA},       {"min-lr", BL_SCHED_SET_MIN_LR}};
    unsigned given = 0;
    for (size_t i = 0; i < sizeof sched_opts / sizeof sched_opts[0]; i++) {
        const cli_opt *o = cli_opt_find(opts, n_opts, sched_opts[i].opt);
        if (o && o->seen) given |= sched_opts[i].bit;
    }
    bl_status st = bl_trainer_resume(t, path, err);
    if (!st) st = bl_trainer_check_schedule(t, asked, given, note, cap, err);
    return st;
}
