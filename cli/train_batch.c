/* `batchlab train`: --batch auto, --batch-schedule and --resume (see train_batch.h). */
#include "train_batch.h"
#include <math.h>
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

int train_adapt_step(const char *cmd, bl_trainer *t, bl_adapt *a, const bl_step_info *si,
                     bl_dist *dist, bl_runlog *log, progress *prog, train_history *hist,
                     int *decisions) {
    bl_error err = {0};
    /* Every rank must take the same decisions: from the slowest rank's step. */
    double step_s = si->step_time_s;
    if (bl_dist_allreduce_max_f64(dist, &step_s, &err)) return cli_fail(cmd, "%s", err.msg);
    bl_adapt_observe(a, si->batch, step_s > 0 ? si->batch / step_s : 0);
    double comm_s = si->comm_time_s;
    if (bl_dist_allreduce_max_f64(dist, &comm_s, &err)) return cli_fail(cmd, "%s", err.msg);
    bl_adapt_observe_comm(a, si->batch, comm_s);
    bl_adapt_decision d;
    int r = bl_adapt_decide(a, si->step, bl_trainer_noise(t), &d);
    if (r < 0) return 0;
    size_t len = strlen(d.reason);
    if (bl_dist_size(dist) > 1 && len + 1 < sizeof d.reason)
        snprintf(d.reason + len, sizeof d.reason - len,
                 "; network %.0f of %.0f ms a step, a fixed cost larger batches amortise",
                 comm_s * 1e3, step_s * 1e3);
    int batch = bl_adapt_batch(a);
    /* AdaScale's gain moves with the noise scale even when the batch stays. */
    float f = bl_adapt_lr_factor(a->cfg.lr_rule, d.noise_scale, a->cfg.base_batch, batch);
    if (r == 1) f = d.lr_factor;
    d.lr_factor = f; /* logged as applied, so the log replays exactly (--batch-schedule) */
    if (bl_trainer_set_batch(t, batch, 0, f, &err)) return cli_fail(cmd, "%s", err.msg);
    if (bl_runlog_decision(log, &d, r == 1, bl_trainer_current_lr(t), &err))
        return cli_fail(cmd, "%s", err.msg);
    *decisions += r == 1;
    if (r == 1 && hist) history_decision(hist, &d);
    if (r == 1 && !prog->quiet) {
        progress_clear(prog);
        fprintf(stderr, "step %ld: batch %d -> %d, lr %.4g: %s\n", si->step, d.from_batch,
                d.to_batch, (double)bl_trainer_current_lr(t), d.reason);
    }
    return 0;
}

int train_replay_step(const char *cmd, bl_trainer *t, const bl_batch_schedule *s, const char *path,
                      int *next, bl_runlog *log) {
    bl_error err = {0};
    const bl_batch_schedule *h = bl_trainer_batch_history(t);
    int before = h->n, from = bl_trainer_config(t)->batch;
    if (bl_trainer_follow_schedule(t, s, next, &err))
        return cli_fail(cmd, "--batch-schedule %s: %s", path, err.msg);
    for (int i = before; i < h->n; i++) {
        bl_adapt_decision d = {.step = h->v[i].step,
                               .from_batch = from,
                               .to_batch = h->v[i].batch,
                               .noise_scale = NAN,
                               .goodput_from = NAN,
                               .goodput_to = NAN,
                               .lr_factor = h->v[i].lr_factor};
        snprintf(d.reason, sizeof d.reason, "replayed from %.150s", path);
        if (bl_runlog_decision(log, &d, d.to_batch != from, bl_trainer_current_lr(t), &err))
            return cli_fail(cmd, "%s", err.msg);
        from = d.to_batch;
    }
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

const char *train_already_done(bl_trainer *t, long steps, long epochs) {
    if (steps && bl_trainer_steps_done(t) >= steps)
        return "already at --steps, which counts every update of the run";
    if (epochs && bl_trainer_epoch(t) >= epochs)
        return "already at --epochs, which counts every epoch of the run";
    return NULL;
}
