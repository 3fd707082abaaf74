/* batchlab train: parse options into a bl_train_config, load and normalise
 * the data, then drive bl_trainer_step with evaluation, logging, checkpoints
 * and the stop conditions (epochs, steps, target accuracy/loss). */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "args.h"
#include "cli.h"
#include "data_opts.h"
#include "progress.h"
#include "train_batch.h"
#include "train_opts.h"
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

/* The loop's events: the progress line, the report's history, decisions on stderr. */
static bl_status on_event(void *user, const bl_run_event *e, bl_error *err) {
    run_state *rs = user;
    (void)err;
    switch (e->kind) {
    case BL_RUN_STEP:
        progress_step(&rs->prog, e->step);
        if (rs->hist) history_step(rs->hist, e->step);
        if (e->step->overlap_decided && !rs->prog.quiet) {
            const bl_step_info *s = e->step;
            progress_clear(&rs->prog);
            fprintf(stderr,
                    "step %ld: overlap %s: a step reducing during backward took %.2fx as long as "
                    "one reducing after it (median of %d pairs; medians %.1f and %.1f ms; "
                    "--overlap auto)\n",
                    s->step, s->overlap_ratio <= 1 ? "on" : "off", s->overlap_ratio,
                    BL_OVERLAP_PROBE_STEPS, s->overlap_on_s * 1e3, s->overlap_off_s * 1e3);
        }
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
                    e->decision->from_batch, e->decision->to_batch, (double)e->lr,
                    e->decision->reason);
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
    bl_ctx_free(ctx);
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
    train_cli tc;         /* the option table points into it */
    int rc = train_cli_parse(cmd, &tc, argc, argv, bl_dist_size(dist));
    if (rc) return rc == 1 ? 0 : rc;
    train_opts o = tc.o;
    bl_train_config cfg = tc.cfg;
    cli_data_opts d = tc.d;
    bl_dist_configure(dist, o.comm_timeout,
                      o.comm_dtype && !strcmp(o.comm_dtype, "bf16") ? BL_DIST_BF16 : BL_DIST_FP32,
                      &g_terminated);
    bl_dist_set_poll(dist, o.comm_poll_us);

    d.quiet = o.quiet || o.json;
    bl_ctx ctx;
    if ((rc = cli_ctx_init(cmd, &ctx, o.threads, &o.device))) return rc;
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
                              .min_gain = 0.05,
                              .backend = ctx.be};
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
        if (!train_cli_given(&tc, "noise-every")) cfg.noise_every = 8;
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
        st = train_resume(t, o.resume_path, &cfg, tc.opts, tc.n_opts, note, sizeof note, &err);
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
    if (!rs.res.comm_failed && o.save_path &&
        (rc = save_checkpoint(cmd, t, &rs, o.save_path, dist)))
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
