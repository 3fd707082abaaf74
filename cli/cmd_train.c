/* batchlab train: parse options into a bl_train_config, load and normalise
 * the data, then drive bl_trainer_step with evaluation, logging, checkpoints
 * and the stop conditions (epochs, steps, target accuracy/loss). */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "args.h"
#include "optim_opts.h"
#include "cli.h"
#include "data_opts.h"
#include "progress.h"
#include "train_batch.h"
#include "train_report.h"
#include "batchlab/adapt.h"
#include "batchlab/dist.h"
#include "batchlab/io.h"
#include "batchlab/run.h"
#include "batchlab/runlog.h"
#include "batchlab/train.h"
#include "core/alloc.h"

static volatile sig_atomic_t g_interrupted; /* set by SIGINT/SIGTERM; CLI-only state */
static volatile sig_atomic_t g_terminated;  /* SIGTERM: mpirun ending the job ends waits too */
static void on_signal(int sig) {
    g_interrupted = sig;
    if (sig == SIGTERM) g_terminated = 1;
}

typedef struct train_opts {
    const char *model;
    cli_optim_args optim;
    const char *log_path, *save_path, *resume_path, *report, *batch_schedule;
    const char *batch, *memory, *adapt_lr, *comm_dtype, *device;
    bl_batch_schedule replay; /* --batch-schedule */
    int auto_batch, min_batch, max_batch, noise_decay_set;
    int stop_default; /* neither --steps nor --epochs was given */
    long adapt_every;
    int epochs, json, quiet, threads, no_prefetch, drop_last, no_overlap;
    size_t bucket_kb;
    long steps, save_every, eval_every, eval_samples, warmup, step_size, seed;
    double target_acc, target_loss, comm_timeout;
} train_opts;

/* What the command keeps around the library's loop (bl_run). */
typedef struct run_state {
    cli_splits sp;
    bl_runlog log;
    progress prog;
    bl_run_result res;
    bl_adapt *adapt;     /* --batch auto */
    int replay_next;     /* --batch-schedule: next entry to apply */
    train_history *hist; /* --report */
} run_state;

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
    cfg->overlap = !o->no_overlap;
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

/* The loop's events: the progress line, the report's history, decisions on stderr. */
static bl_status on_event(void *user, const bl_run_event *e, bl_error *err) {
    run_state *rs = user;
    (void)err;
    switch (e->kind) {
    case BL_RUN_STEP:
        progress_step(&rs->prog, e->step);
        if (rs->hist) history_step(rs->hist, e->step);
        break;
    case BL_RUN_EVAL:
        if (rs->hist) history_eval(rs->hist, e->samples_seen, e->elapsed_s, e->val_acc);
        break;
    case BL_RUN_EPOCH:
        progress_epoch(&rs->prog, e->epoch);
        break;
    case BL_RUN_DECISION:
        if (!e->applied || e->source == BL_RUN_REPLAY) break;
        if (rs->hist) history_decision(rs->hist, e->decision);
        if (rs->prog.quiet) break;
        progress_clear(&rs->prog);
        if (e->source == BL_RUN_REVERT)
            fprintf(stderr, "step %ld: %s\n", e->decision->step, e->decision->reason);
        else
            fprintf(stderr, "step %ld: batch %d -> %d, lr %.4g: %s\n", e->decision->step,
                    e->decision->from_batch, e->decision->to_batch,
                    (double)e->lr, e->decision->reason);
        break;
    }
    return BL_OK;
}

/* The loop, in the library; here only what the options say. 0 or an exit status. */
static int run(const char *cmd, bl_trainer *t, train_opts *o, run_state *rs) {
    bl_error err = {0};
    const char *done = bl_run_already_done(t, o->steps, o->epochs);
    if (done && !rs->prog.quiet)
        fprintf(stderr, "note: the checkpoint is at update %ld: nothing to train (%s)\n",
                bl_trainer_steps_done(t), done);
    bl_run_config c;
    bl_run_config_default(&c);
    c.steps = o->steps, c.epochs = o->epochs;
    c.target_acc = o->target_acc, c.target_loss = o->target_loss;
    c.val = rs->sp.have_val ? &rs->sp.val : NULL;
    c.eval_every = o->eval_every, c.eval_samples = o->eval_samples;
    c.save_every = o->save_every, c.save_path = o->save_path, c.norm = &rs->sp.norm;
    c.adapt = rs->adapt;
    c.replay = o->batch_schedule ? &o->replay : NULL;
    c.replay_next = &rs->replay_next, c.replay_name = o->batch_schedule;
    c.log = &rs->log;
    c.stop_flag = &g_interrupted;
    c.on_event = on_event, c.user = rs;
    bl_status st = bl_run(t, &c, &rs->res, &err);
    progress_clear(&rs->prog);
    return st ? cli_fail(cmd, "%s", err.msg) : 0;
}

/* Rank 0 writes; every rank learns whether it worked, so none runs on alone. */
static int save_checkpoint(const char *cmd, bl_trainer *t, run_state *rs, const char *path,
                           bl_dist *dist) {
    bl_error err = {0};
    bl_status st = bl_dist_rank(dist) == 0 ? bl_trainer_save(t, path, &rs->sp.norm, &err) : BL_OK;
    if (bl_dist_agree(dist, st, &err)) return cli_fail(cmd, "%s", err.msg);
    return 0;
}

static void free_run(bl_ctx *ctx, run_state *rs) {
    bl_runlog_close(&rs->log, NULL); /* after an error: the run has failed already */
    cli_splits_free(&rs->sp, &ctx->mem);
}

static int print_summary(const char *cmd, bl_trainer *t, const train_opts *o, const run_state *rs,
                         double wall, double test_loss, double test_acc) {
    if (o->quiet && !o->json) return 0;
    const bl_run_result *r = &rs->res;
    train_summary sum = {.save_path = r->comm_failed && !o->save_every ? NULL : o->save_path,
                         .log_path = o->log_path,
                         .stop_reason = r->stop_reason,
                         .data_name = rs->sp.train.name,
                         .norm = rs->sp.norm.kind,
                         .adaptive = rs->adapt != NULL,
                         .decisions = r->decisions,
                         .wall_s = wall,
                         .train_loss = r->train_loss,
                         .train_acc = r->train_acc,
                         .val_loss = r->val_loss,
                         .val_acc = r->val_acc,
                         .test_loss = test_loss,
                         .test_acc = test_acc};
    return train_print_summary(cmd, t, &sum, o->json);
}

static int train_main(int argc, char **argv, bl_dist *dist) {
    const char *cmd = "train";
    bl_trainer *t = NULL; /* before the first goto done, which frees it */
    bl_train_config cfg;
    bl_train_config_default(&cfg);
    cli_data_opts d;
    cli_data_opts_default(&d);
    train_opts o = {.model = "mlp",
                    .optim = {.optimizer = "momentum",
                              .schedule = "constant",
                              .lr_scale = "none",
                              .loss = "xent"},
                    .seed = 1,
                    .batch = "64",
                    .adapt_lr = "adascale"};
    cli_opt opts[] = {
        {"model", ARG_STR, &o.model, "model spec or preset: mlp (default), cnn, logreg", 0},
        {"batch", ARG_STR, &o.batch,
         "samples per optimizer update (default 64), or auto (adaptive, by goodput)", 0},
        {"min-batch", ARG_INT, &o.min_batch, "--batch auto: smallest batch (default: --base-batch)",
         0},
        {"max-batch", ARG_INT, &o.max_batch, "--batch auto: largest batch (default 4096)", 0},
        {"memory", ARG_STR, &o.memory, "--batch auto: memory budget for the batch (e.g. 2G)", 0},
        {"adapt-every", ARG_LONG, &o.adapt_every,
         "--batch auto: re-evaluate every N updates (default 50)", 0},
        {"adapt-lr", ARG_STR, &o.adapt_lr,
         "--batch auto: lr rule: adascale (default), linear, sqrt, none", 0},
        {"batch-schedule", ARG_STR, &o.batch_schedule,
         "replay the batches (and lr factors) of a run: its JSON Lines log, or CSV "
         "step,batch[,lr_factor]",
         0},
        {"micro-batch", ARG_INT, &cfg.micro_batch,
         "samples per forward/backward; accumulates batch/micro-batch", 0},
        {"epochs", ARG_INT, &o.epochs,
         "stop after N epochs in total (default 1, or 50 with a target; with --resume: the "
         "checkpoint's schedule)",
         0},
        {"steps", ARG_LONG, &o.steps,
         "stop at N optimizer updates in total, counting those before --resume (also the "
         "cosine horizon)",
         0},
        {"target-acc", ARG_DOUBLE, &o.target_acc, "stop when validation accuracy reaches X", 0},
        {"target-loss", ARG_DOUBLE, &o.target_loss, "stop when validation loss falls to X", 0},
        {"eval-every", ARG_LONG, &o.eval_every,
         "evaluate validation every N steps (default: each epoch)", 0},
        {"eval-samples", ARG_LONG, &o.eval_samples, "evaluate validation every N training samples",
         0},
        {"optimizer", ARG_STR, &o.optim.optimizer, "sgd, momentum (default), nesterov, adam, adamw",
         0},
        {"lr", ARG_FLOAT, &cfg.lr, "learning rate at --base-batch (default 0.05)", 0},
        {"momentum", ARG_FLOAT, &o.optim.momentum,
         "SGD momentum (default 0.9 for momentum/nesterov)", 0},
        {"nesterov", ARG_FLAG, &o.optim.nesterov, "Nesterov momentum", 0},
        {"weight-decay", ARG_FLOAT, &o.optim.weight_decay,
         "L2 (sgd/adam) or decoupled (adamw) weight decay", 0},
        {"lr-scale", ARG_STR, &o.optim.lr_scale,
         "scale lr with batch: none (default), linear, sqrt", 0},
        {"base-batch", ARG_INT, &cfg.base_batch,
         "batch size at which --lr is given (default: --batch)", 0},
        {"schedule", ARG_STR, &o.optim.schedule, "constant (default), step, cosine", 0},
        {"warmup", ARG_LONG, &o.warmup, "linear warm-up over N updates", 0},
        {"step-size", ARG_LONG, &o.step_size, "step schedule: updates between decays", 0},
        {"gamma", ARG_FLOAT, &cfg.gamma, "step schedule: decay factor (default 0.1)", 0},
        {"min-lr", ARG_FLOAT, &cfg.min_lr, "cosine schedule: final learning rate (default 0)", 0},
        {"loss", ARG_STR, &o.optim.loss, "xent (default) or mse (against one-hot labels)", 0},
        {"noise", ARG_FLAG, &cfg.noise,
         "measure the gradient noise scale (logs noise_g2/trace/scale)", 0},
        {"noise-every", ARG_INT, &cfg.noise_every,
         "measure the noise scale on every Nth update only (default 1; --batch auto: 8)", 0},
        {"noise-batch", ARG_INT, &cfg.noise_batch,
         "samples per noise-scale measurement, drawn apart from training (default: --batch)", 0},
        {"noise-decay", ARG_DOUBLE, &cfg.noise_decay,
         "EMA decay of the noise estimates (default 0.95)", 0},
        CLI_DATA_OPTS(d),
        {"test", ARG_STR, &d.test, "test set evaluated at the end (default: Fashion-MNIST's)", 0},
        {"test-labels", ARG_STR, &d.test_labels, "labels for --test", 0},
        {"val-frac", ARG_DOUBLE, &d.val_frac,
         "fraction of training data for validation (default 0.1)", 0},
        CLI_CLASSES_OPT(d),
        {"norm", ARG_STR, &d.norm,
         "input normalisation: auto (default: standard for tabular data, unit for images), "
         "standard, unit, none",
         0},
        {"drop-last", ARG_FLAG, &o.drop_last, "drop each epoch's last partial batch", 0},
        {"no-prefetch", ARG_FLAG, &o.no_prefetch, "load batches on the compute thread", 0},
        {"seed", ARG_LONG, &o.seed, "seed for init, shuffling and dropout (default 1)", 0},
        {"threads", ARG_INT, &o.threads, "compute threads (default: the CPUs this process may use)", 0},
        CLI_DEVICE_OPT(o.device),
        {"log", ARG_STR, &o.log_path, "write a JSON Lines log (one line per step and per epoch)",
         0},
        {"save", ARG_STR, &o.save_path, "write the final checkpoint (safetensors) here", 0},
        {"save-every", ARG_LONG, &o.save_every, "also write it every N steps", 0},
        {"resume", ARG_STR, &o.resume_path, "continue from a checkpoint", 0},
        {"no-overlap", ARG_FLAG, &o.no_overlap,
         "MPI: reduce gradients after backward, not during it", 0},
        {"bucket-kb", ARG_SIZE, &o.bucket_kb,
         "MPI: gradient bucket size for the overlap (default 1024)", 0},
        {"comm-timeout", ARG_DOUBLE, &o.comm_timeout,
         "MPI: end the job when an exchange makes no progress for S seconds (default 60)", 0},
        {"comm-dtype", ARG_STR, &o.comm_dtype,
         "MPI: gradients on the wire as fp32 (default) or bf16 (fp32 accumulation)", 0},
        {"report", ARG_STR, &o.report, "write a report (Markdown, HTML, plots) into this folder",
         0},
        {"json", ARG_FLAG, &o.json, "print a JSON summary on stdout", 0},
        {"quiet", ARG_FLAG, &o.quiet, "print nothing but errors (and what --json asks for)", 0},
    };
    int n_opts = (int)(sizeof opts / sizeof opts[0]);
    int rc = cli_parse(cmd, "[options]", opts, n_opts, argc, argv, NULL, 0, NULL);
    if (rc) return rc == 1 ? 0 : rc;
    o.noise_decay_set = cli_opt_find(opts, n_opts, "noise-decay")->seen;
    if (o.comm_timeout < 0 || (o.comm_dtype && strcmp(o.comm_dtype, "fp32") &&
                               strcmp(o.comm_dtype, "bf16")))
        return cli_error(cmd, "--comm-timeout must be positive and --comm-dtype fp32 or bf16");
    bl_dist_configure(dist, o.comm_timeout,
                      o.comm_dtype && !strcmp(o.comm_dtype, "bf16") ? BL_DIST_BF16 : BL_DIST_FP32,
                      &g_terminated);
    if ((rc = build_config(cmd, &o, opts, n_opts, &cfg, bl_dist_size(dist)))) return rc;
    o.stop_default = !o.epochs && !o.steps;
    if (!o.epochs && !o.steps) o.epochs = (o.target_acc > 0 || o.target_loss > 0) ? 50 : 1;

    d.quiet = o.quiet || o.json;
    bl_ctx ctx;
    if ((rc = cli_ctx_init(cmd, &ctx, o.threads, o.device))) return rc;
    ctx.dist = dist;
    int rank = bl_dist_rank(dist), world = bl_dist_size(dist);
    run_state rs;
    memset(&rs, 0, sizeof rs);
    rs.res.val_loss = rs.res.val_acc = rs.res.train_loss = rs.res.train_acc = NAN;
    rs.res.stop_reason = "finished";
    bl_error err = {0};
    /* Test hook (fault injection): make one rank's data load fail for real. */
    const char *fault = getenv("BATCHLAB_FAULT_DATA_RANK");
    cli_data_opts my_d = d;
    if (fault && atoi(fault) == rank) my_d.data = "/nonexistent/injected-fault.csv";
    bl_status st =
        bl_dist_agree(dist, cli_load_splits(&my_d, &ctx.mem, &rs.sp, cfg.seed, &err), &err);
    if (st) {
        free_run(&ctx, &rs);
        bl_batch_schedule_free(&o.replay);
        return cli_fail(cmd, "%s", err.msg);
    }
    size_t n = rs.sp.train.n;
    long spe = bl_steps_per_epoch(n, cfg.batch, cfg.drop_last);
    long total = o.steps ? o.steps : (long)o.epochs * spe;
    if (o.steps && o.epochs && (long)o.epochs * spe < total) total = (long)o.epochs * spe;
    cfg.total_steps = total;

    bl_adapt adapt;
    if (o.auto_batch) {
        bl_adapt_config ac = {.base_batch = cfg.base_batch,
                              .min_batch = o.min_batch,
                              .max_batch = o.max_batch,
                              .every_steps = o.adapt_every,
                              .min_gain = 0.05};
        if ((size_t)ac.max_batch > rs.sp.train.n) ac.max_batch = (int)rs.sp.train.n;
        if (o.memory && cli_parse_bytes(o.memory, &ac.memory_bytes)) {
            rc = cli_error(cmd, "--memory expects a size such as 512M or 2G, got '%s'", o.memory);
            goto done;
        }
        if (bl_adapt_lr_parse(&ac.lr_rule, o.adapt_lr, &err)) {
            rc = cli_error(cmd, "--adapt-lr: %s", err.msg);
            goto done;
        }
        /* The noise scale, averaged over about 100 updates so that it follows the noise
         * scale as it grows: measured on every 8th update, each measurement one extra
         * forward and backward of a batch (so about 12% more compute). */
        if (!cli_opt_find(opts, n_opts, "noise-every")->seen) cfg.noise_every = 8;
        if (!o.noise_decay_set) cfg.noise_decay = 0.84;
        if ((st = bl_adapt_init(&adapt, &ac, o.model, &rs.sp.train, &cfg.opt, &err))) {
            rc = cli_fail(cmd, "%s", err.msg);
            goto done;
        }
        rs.adapt = &adapt;
        /* Activations for the largest candidate, allocated once: no allocation when the
         * batch changes. */
        cfg.reserve_batch = adapt.curve.p[adapt.curve.n - 1].batch;
    }
    st = bl_trainer_create(&t, &ctx, &cfg, &rs.sp.train, &err);
    if (!st && rs.sp.have_test)
        st = bl_model_check_input(bl_trainer_model(t), rs.sp.test.dim, rs.sp.test.name, &err);
    char note[512] = "";
    if (!st && o.resume_path)
        st = train_resume(t, o.resume_path, &cfg, opts, n_opts, note, sizeof note, &err);
    /* Resumed without a stop condition: on to the end of the checkpoint's schedule. */
    long ck_total = t ? bl_trainer_config(t)->total_steps : 0;
    if (!st && o.resume_path && o.stop_default && ck_total > 0 && !o.target_acc && !o.target_loss)
        o.steps = total = ck_total, o.epochs = 0, note[0] = '\0';
    if (!st && o.batch_schedule)
        st = bl_trainer_follow_schedule(t, &o.replay, &rs.replay_next, &err);
    if (!st && o.resume_path && rs.adapt)
        st = bl_adapt_replay(rs.adapt, bl_trainer_batch_history(t), bl_trainer_steps_done(t), &err);
    if (!st && rank == 0 && o.log_path)
        st = bl_runlog_open(&rs.log, o.log_path, o.resume_path != NULL, &err);
    if ((st = bl_dist_agree(dist, st, &err))) {
        rc = cli_fail(cmd, "%s", err.msg);
        goto done;
    }
    if (note[0] && rank == 0 && !o.json && !o.quiet && !bl_run_already_done(t, o.steps, o.epochs))
        fprintf(stderr, "note: %s: %s\n", o.resume_path, note);
    if (o.resume_path && rank == 0 && bl_trainer_resumed_world(t) != world)
        fprintf(stderr,
                "note: %s was written by a run with %d rank(s); continuing with %d. The global "
                "batch (%d) and the data order are unchanged, so training continues correctly, "
                "but not bit-identically (the gradient sum is ordered differently).\n",
                o.resume_path, bl_trainer_resumed_world(t), world, cfg.batch);
    if (!o.quiet && !o.json && rank == 0)
        fprintf(
            stderr,
            "training %s (%zu parameters) on %zu samples (%zu validation), batch %d%s, %s lr %g\n",
            bl_model_spec(bl_trainer_model(t)), bl_model_num_params(bl_trainer_model(t)), n,
            rs.sp.val.n, cfg.batch, world > 1 ? " across ranks" : "", bl_optim_name(&cfg.opt),
            (double)bl_trainer_current_lr(t));
    if (world > 1 && !o.quiet && !o.json && rank == 0)
        fprintf(stderr,
                "data-parallel: %d ranks x %d samples per rank per update (micro-batch %d)\n",
                world, cfg.batch / world, bl_trainer_config(t)->micro_batch);
    if (o.report && rank == 0 && !(rs.hist = bl_calloc(1, sizeof *rs.hist))) {
        rc = cli_fail(cmd, "out of memory");
        goto done;
    }
    progress_init(&rs.prog, total, spe, bl_trainer_steps_done(t), o.quiet || o.json || rank != 0);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    double t0 = bl_now_sec();
    rc = run(cmd, t, &o, &rs);
    double wall = bl_now_sec() - t0;
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    if (rc && !rs.res.comm_failed) goto done;
    if (bl_runlog_close(&rs.log, &err)) { /* the log's last lines may not be on disk */
        rc = cli_fail(cmd, "%s", err.msg);
        goto done;
    }
    /* After a lost peer: no collective (save, evaluation) can finish; the summary says so. */
    if (!rs.res.comm_failed && o.save_path && (rc = save_checkpoint(cmd, t, &rs, o.save_path, dist)))
        goto done;
    double test_loss = NAN, test_acc = NAN;
    if (!rs.res.comm_failed && rs.sp.have_test &&
        bl_trainer_evaluate(t, &rs.sp.test, &test_loss, &test_acc, &err)) {
        rc = cli_fail(cmd, "%s", err.msg);
        goto done;
    }
    if (!rs.res.comm_failed && isnan(rs.res.val_acc) && rs.sp.have_val &&
        bl_trainer_evaluate(t, &rs.sp.val, &rs.res.val_loss, &rs.res.val_acc, &err)) {
        rc = cli_fail(cmd, "%s", err.msg);
        goto done;
    }
    if (rank == 0 && (rc = print_summary(cmd, t, &o, &rs, wall, test_loss, test_acc))) goto done;
    if (rs.hist) {
        char command[2048] = "batchlab";
        for (int i = 0; i < argc; i++)
            snprintf(command + strlen(command), sizeof command - strlen(command), " %s", argv[i]);
        train_outcome out = {.spec = bl_model_spec(bl_trainer_model(t)),
                             .data = rs.sp.train.name,
                             .stop_reason = rs.res.stop_reason,
                             .command = command,
                             .final_batch = bl_trainer_config(t)->batch,
                             .base_batch = bl_trainer_config(t)->base_batch,
                             .final_lr = bl_trainer_current_lr(t),
                             .steps = bl_trainer_steps_done(t),
                             .samples = bl_trainer_samples_seen(t),
                             .wall_s = wall,
                             .val_acc = rs.res.val_acc,
                             .test_acc = test_acc,
                             .target_acc = o.target_acc,
                             .noise_scale = bl_noise_scale(bl_trainer_noise(t))};
        if (train_report_write(o.report, rs.hist, &out, rs.adapt, &err)) {
            rc = cli_fail(cmd, "%s", err.msg);
            goto done;
        }
        if (!o.json && !o.quiet)
            printf("report       %s/report.md (and report.html, plots/)\n", o.report);
    }
    if (strcmp(rs.res.stop_reason, "interrupted") == 0) rc = 130;
    if (rs.res.comm_failed) rc = 1;
done:
    bl_batch_schedule_free(&o.replay);
    bl_free(rs.hist);
    bl_trainer_free(t);
    free_run(&ctx, &rs);
    return rc;
}

int cli_train(int argc, char **argv) {
    bl_dist *dist = NULL;
    bl_error err = {0};
    if (bl_dist_init(&dist, &err)) return cli_fail("train", "%s", err.msg);
    cli_set_silent(bl_dist_rank(dist) != 0);
    /* A write to a crashed peer's socket must fail the exchange, not kill this rank. */
    if (bl_dist_size(dist) > 1) signal(SIGPIPE, SIG_IGN);
    int rc = train_main(argc, argv, dist);
    bl_dist_finalize(dist);
    return rc;
}
