/* `batchlab train`'s option table and its checks (see train_opts.h). */
#include "train_opts.h"
#include <stdlib.h>
#include <string.h>
#include "batchlab/dist.h"
#include "train_batch.h"

static int build_config(const char *cmd, train_opts *o, cli_opt *opts, int n_opts,
                        bl_train_config *cfg, int world) {
    int rc = cli_optim_apply(cmd, &o->optim, opts, n_opts, cfg);
    if (rc) return rc;
    if (o->batch_schedule) {
        const char *b = cli_opt_find(opts, n_opts, "batch")->seen ? o->batch : NULL;
        if ((rc = train_replay_config(cmd, o->batch_schedule, b, &o->replay, cfg, world)))
            return rc;
    } else if (!strcmp(o->batch, "auto")) {
        o->auto_batch = 1;
        if (cfg->micro_batch)
            return cli_error(cmd,
                             "--batch auto chooses the micro-batch itself; drop --micro-batch");
        if (!cfg->base_batch) cfg->base_batch = 64;
        if (o->max_batch <= 0) o->max_batch = 4096;
        /* As in Pollux and AdaScale, the batch the learning rate is given for is the
         * smallest: the batch grows from there as the noise scale allows. */
        if (o->min_batch <= 0) o->min_batch = cfg->base_batch;
        if (o->adapt_every <= 0) o->adapt_every = 50;
        cfg->batch = cfg->base_batch;
        cfg->noise = 1;
        cfg->lr_scale = BL_LR_SCALE_NONE;
    } else {
        char *end;
        long b = strtol(o->batch, &end, 10);
        if (!*o->batch || *end || b <= 0 || b > 1 << 30)
            return cli_error(cmd, "--batch expects a positive integer or auto, got '%s'", o->batch);
        cfg->batch = (int)b;
    }
    if (!o->auto_batch && (o->min_batch || o->max_batch || o->memory || o->adapt_every ||
                           strcmp(o->adapt_lr, "adascale")))
        return cli_error(cmd, "--min-batch, --max-batch, --memory, --adapt-every and "
                              "--adapt-lr go with --batch auto");
    if (cfg->micro_batch < 0) return cli_error(cmd, "--micro-batch must be positive");
    if (!(cfg->lr > 0))
        return cli_error(cmd, "--lr %g is invalid: it must be > 0", (double)cfg->lr);
    if (o->epochs < 0 || o->steps < 0 || o->warmup < 0 || o->save_every < 0 || o->eval_every < 0 ||
        o->eval_samples < 0)
        return cli_error(
            cmd, "--epochs, --steps, --warmup, --save-every and --eval-every must not be negative");
    if (o->target_acc < 0 || o->target_acc > 1)
        return cli_error(cmd, "--target-acc %g must be between 0 and 1", o->target_acc);
    if (o->save_every && !o->save_path) return cli_error(cmd, "--save-every needs --save PATH");
    if (o->seed < 0) return cli_error(cmd, "--seed must not be negative");
    if (world > 1 && cfg->batch % world)
        return cli_error(cmd,
                         "--batch %d must be a multiple of the %d ranks (global batch = "
                         "micro-batch x accumulation steps x ranks)",
                         cfg->batch, world);
    if (world > 1 && cfg->micro_batch > cfg->batch / world)
        return cli_error(cmd,
                         "--micro-batch %d is larger than the %d samples each rank gets "
                         "per update",
                         cfg->micro_batch, cfg->batch / world);
    /* The estimator needs two batch sizes: the first micro-batch (or, with a single
     * micro-batch, the first half of each measured update) and the whole update. */
    if (cfg->noise && world == 1 && cfg->batch < 2)
        return cli_error(cmd, "--noise needs --batch of at least 2 (a small and a big batch)");
    if (cfg->noise_every < 0) return cli_error(cmd, "--noise-every must not be negative");
    if (cfg->noise_batch < 0 || cfg->noise_batch == 1)
        return cli_error(cmd, "--noise-batch %d must be at least 2", cfg->noise_batch);
    if (!(cfg->noise_decay > 0 && cfg->noise_decay < 1))
        return cli_error(cmd, "--noise-decay %g must be in (0, 1)", cfg->noise_decay);
    if (o->overlap && strcmp(o->overlap, "on") && strcmp(o->overlap, "off") &&
        strcmp(o->overlap, "auto"))
        return cli_error(cmd, "--overlap '%s' is invalid: it must be on, off or auto", o->overlap);
    if (o->no_overlap && o->overlap && strcmp(o->overlap, "off"))
        return cli_error(cmd, "--no-overlap contradicts --overlap %s", o->overlap);
    cfg->overlap = o->no_overlap || (o->overlap && !strcmp(o->overlap, "off")) ? BL_OVERLAP_OFF
                   : o->overlap && !strcmp(o->overlap, "on")                   ? BL_OVERLAP_ON
                                                                               : BL_OVERLAP_AUTO;
    if (o->bucket_kb) cfg->bucket_bytes = o->bucket_kb * 1024;
    cfg->spec = o->model;
    cfg->warmup_steps = o->warmup;
    cfg->step_size = o->step_size;
    cfg->seed = (uint64_t)o->seed;
    cfg->prefetch = !o->no_prefetch;
    cfg->drop_last = o->drop_last;
    if (cfg->sched == BL_SCHED_STEP && cfg->step_size <= 0)
        return cli_error(cmd, "--schedule step needs --step-size N (updates between decays)");
    return 0;
}

int train_cli_parse(const char *cmd, train_cli *tc, int argc, char **argv, int world) {
    train_opts *o = &tc->o;
    bl_train_config *cfg = &tc->cfg;
    cli_data_opts *d = &tc->d;
    bl_train_config_default(cfg);
    cli_data_opts_default(d);
    *o = (train_opts){.model = "mlp",
                      .optim = {.optimizer = "momentum",
                                .schedule = "constant",
                                .lr_scale = "none",
                                .loss = "xent"},
                      .seed = 1,
                      .batch = "64",
                      .adapt_lr = "adascale",
                      .comm_poll_us = BL_DIST_DEFAULT_POLL_US};
    cli_opt opts[] = {
        {"model", ARG_STR, &o->model, "model spec or preset: mlp (default), cnn, logreg", 0},
        {"batch", ARG_STR, &o->batch,
         "samples per optimizer update (default 64), or auto (adaptive, by goodput)", 0},
        {"min-batch", ARG_INT, &o->min_batch,
         "--batch auto: smallest batch (default: --base-batch)", 0},
        {"max-batch", ARG_INT, &o->max_batch, "--batch auto: largest batch (default 4096)", 0},
        {"memory", ARG_STR, &o->memory, "--batch auto: memory budget for the batch (e.g. 2G)", 0},
        {"adapt-every", ARG_LONG, &o->adapt_every,
         "--batch auto: re-evaluate every N updates (default 50)", 0},
        {"adapt-lr", ARG_STR, &o->adapt_lr,
         "--batch auto: lr rule: adascale (default), linear, sqrt, none", 0},
        {"batch-schedule", ARG_STR, &o->batch_schedule,
         "replay the batches (and lr factors) of a run: its JSON Lines log, or CSV "
         "step,batch[,lr_factor]",
         0},
        {"micro-batch", ARG_INT, &cfg->micro_batch,
         "samples per forward/backward; accumulates batch/micro-batch", 0},
        {"epochs", ARG_INT, &o->epochs,
         "stop after N epochs in total (default 1, or 50 with a target; with --resume: the "
         "checkpoint's schedule)",
         0},
        {"steps", ARG_LONG, &o->steps,
         "stop at N optimizer updates in total, counting those before --resume (also the "
         "cosine horizon)",
         0},
        {"target-acc", ARG_DOUBLE, &o->target_acc, "stop when validation accuracy reaches X", 0},
        {"target-loss", ARG_DOUBLE, &o->target_loss, "stop when validation loss falls to X", 0},
        {"eval-every", ARG_LONG, &o->eval_every,
         "evaluate validation every N steps (default: each epoch)", 0},
        {"eval-samples", ARG_LONG, &o->eval_samples, "evaluate validation every N training samples",
         0},
        {"optimizer", ARG_STR, &o->optim.optimizer,
         "sgd, momentum (default), nesterov, adam, adamw", 0},
        {"lr", ARG_FLOAT, &cfg->lr, "learning rate at --base-batch (default 0.05)", 0},
        {"momentum", ARG_FLOAT, &o->optim.momentum,
         "SGD momentum (default 0.9 for momentum/nesterov)", 0},
        {"nesterov", ARG_FLAG, &o->optim.nesterov, "Nesterov momentum", 0},
        {"weight-decay", ARG_FLOAT, &o->optim.weight_decay,
         "L2 (sgd/adam) or decoupled (adamw) weight decay", 0},
        {"lr-scale", ARG_STR, &o->optim.lr_scale,
         "scale lr with batch: none (default), linear, sqrt", 0},
        {"base-batch", ARG_INT, &cfg->base_batch,
         "batch size at which --lr is given (default: --batch)", 0},
        {"schedule", ARG_STR, &o->optim.schedule, "constant (default), step, cosine", 0},
        {"warmup", ARG_LONG, &o->warmup, "linear warm-up over N updates", 0},
        {"step-size", ARG_LONG, &o->step_size, "step schedule: updates between decays", 0},
        {"gamma", ARG_FLOAT, &cfg->gamma, "step schedule: decay factor (default 0.1)", 0},
        {"min-lr", ARG_FLOAT, &cfg->min_lr, "cosine schedule: final learning rate (default 0)", 0},
        {"loss", ARG_STR, &o->optim.loss, "xent (default) or mse (against one-hot labels)", 0},
        {"noise", ARG_FLAG, &cfg->noise,
         "measure the gradient noise scale (logs noise_g2/trace/scale)", 0},
        {"noise-every", ARG_INT, &cfg->noise_every,
         "measure the noise scale on every Nth update only (default 1; --batch auto: 8)", 0},
        {"noise-batch", ARG_INT, &cfg->noise_batch,
         "samples per noise-scale measurement, drawn apart from training (default: --batch)", 0},
        {"noise-decay", ARG_DOUBLE, &cfg->noise_decay,
         "EMA decay of the noise estimates (default 0.95)", 0},
        CLI_DATA_OPTS(*d),
        {"test", ARG_STR, &d->test, "test set evaluated at the end (default: Fashion-MNIST's)", 0},
        {"test-labels", ARG_STR, &d->test_labels, "labels for --test", 0},
        {"val-frac", ARG_DOUBLE, &d->val_frac,
         "fraction of training data for validation (default 0.1)", 0},
        CLI_CLASSES_OPT(*d),
        {"norm", ARG_STR, &d->norm,
         "input normalisation: auto (default: standard for tabular data, unit for images), "
         "standard, unit, none",
         0},
        {"drop-last", ARG_FLAG, &o->drop_last, "drop each epoch's last partial batch", 0},
        {"no-prefetch", ARG_FLAG, &o->no_prefetch, "load batches on the compute thread", 0},
        {"seed", ARG_LONG, &o->seed, "seed for init, shuffling and dropout (default 1)", 0},
        {"threads", ARG_INT, &o->threads,
         "compute threads (default: the CPUs this process may use)", 0},
        CLI_DEVICE_OPTS(o->device),
        {"log", ARG_STR, &o->log_path, "write a JSON Lines log (one line per step and per epoch)",
         0},
        {"save", ARG_STR, &o->save_path, "write the final checkpoint (safetensors) here", 0},
        {"save-every", ARG_LONG, &o->save_every, "also write it every N steps", 0},
        {"resume", ARG_STR, &o->resume_path, "continue from a checkpoint", 0},
        {"overlap", ARG_STR, &o->overlap,
         "MPI: reduce gradients during backward (on), after it (off), or auto (default: with 2 "
         "ranks the faster, timed over the first steps; with more, on)",
         0},
        {"no-overlap", ARG_FLAG, &o->no_overlap, "MPI: the same as --overlap off", 0},
        {"bucket-kb", ARG_SIZE, &o->bucket_kb,
         "MPI: gradient bucket size for the overlap (default 1024)", 0},
        {"comm-timeout", ARG_DOUBLE, &o->comm_timeout,
         "MPI: end the job when an exchange makes no progress for S seconds (default 60)", 0},
        {"comm-poll-us", ARG_DOUBLE, &o->comm_poll_us,
         "MPI: a progress thread advances pending reductions every N us (default 500; 0: "
         "only between layers)",
         0},
        {"comm-dtype", ARG_STR, &o->comm_dtype,
         "MPI: gradients on the wire as fp32 (default) or bf16 (fp32 accumulation)", 0},
        {"report", ARG_STR, &o->report, "write a report (Markdown, HTML, plots) into this folder",
         0},
        {"json", ARG_FLAG, &o->json, "print a JSON summary on stdout", 0},
        {"quiet", ARG_FLAG, &o->quiet, "print nothing but errors (and what --json asks for)", 0},
    };
    int n_opts = (int)(sizeof opts / sizeof opts[0]);
    if (n_opts > TRAIN_MAX_OPTS) return cli_fail(cmd, "internal: too many options");
    memcpy(tc->opts, opts, sizeof opts);
    tc->n_opts = n_opts;
    int rc = cli_parse(cmd, "[options]", tc->opts, n_opts, argc, argv, NULL, 0, NULL);
    if (rc) return rc;
    o->noise_decay_set = cli_opt_find(tc->opts, n_opts, "noise-decay")->seen;
    if (o->comm_poll_us < 0 || o->comm_poll_us > 1e6)
        return cli_error(cmd, "--comm-poll-us %g is invalid: it must be in [0, 1000000]",
                         o->comm_poll_us);
    if (o->comm_timeout < 0 ||
        (o->comm_dtype && strcmp(o->comm_dtype, "fp32") && strcmp(o->comm_dtype, "bf16")))
        return cli_error(cmd, "--comm-timeout must be positive and --comm-dtype fp32 or bf16");
    if ((rc = build_config(cmd, o, tc->opts, n_opts, cfg, world))) return rc;
    o->stop_default = !o->epochs && !o->steps;
    if (!o->epochs && !o->steps) o->epochs = (o->target_acc > 0 || o->target_loss > 0) ? 50 : 1;
    return 0;
}

int train_cli_given(const train_cli *tc, const char *name) {
    const cli_opt *o = cli_opt_find(tc->opts, tc->n_opts, name);
    return o && o->seen;
}
