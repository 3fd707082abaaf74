/* batchlab sweep: steps and examples to a target across batch sizes, the
 * critical batch size, plots and a report (library: bl_sweep_run). This file
 * parses options, loads and normalises the data as `train` does, prints
 * progress and the summary, and turns Ctrl-C into a flag the library polls. */
#include <cjson/cJSON.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "args.h"
#include "optim_opts.h"
#include "cli.h"
#include "data_opts.h"
#include "batchlab/io.h"
#include "batchlab/sweep.h"
#include "core/alloc.h"

static volatile sig_atomic_t g_stop; /* set by SIGINT/SIGTERM; CLI-only state */
static void on_signal(int sig) {
    g_stop = sig;
}
static int should_stop(void *arg) {
    return g_stop != 0;
}

typedef struct sweep_opts {
    const char *model, *batches, *grid, *out;
    cli_device device;
    cli_optim_args optim;
    int json, quiet, threads, no_prune;
    long warmup, seed;
} sweep_opts;

static int build_config(const char *cmd, sweep_opts *o, cli_opt *opts, int n_opts,
                        bl_sweep_config *c) {
    bl_train_config *t = &c->train;
    int rc = cli_optim_apply(cmd, &o->optim, opts, n_opts, t);
    if (rc) return rc;
    if (t->sched == BL_SCHED_STEP)
        return cli_error(cmd, "--schedule step is not supported by sweep; use constant or cosine");
    if (!(t->lr > 0)) return cli_error(cmd, "--lr %g is invalid: it must be > 0", (double)t->lr);
    if (t->base_batch < 1)
        return cli_error(cmd, "--base-batch %d must be at least 1", t->base_batch);
    if (o->warmup < 0) return cli_error(cmd, "--warmup must not be negative");
    if (o->seed < 0) return cli_error(cmd, "--seed must not be negative");
    if (o->batches && cli_parse_list(cmd, "--batches", o->batches, 1, c->batches, NULL,
                                     BL_SWEEP_MAX_BATCHES, &c->n_batches))
        return 2;
    if (o->grid && cli_parse_list(cmd, "--lr-grid", o->grid, 0, NULL, c->lr_mults, BL_SWEEP_MAX_LRS,
                                  &c->n_lr_mults))
        return 2;
    int has_acc = cli_opt_find(opts, n_opts, "target-acc")->seen,
        has_loss = cli_opt_find(opts, n_opts, "target-loss")->seen;
    if (has_acc == has_loss)
        return cli_error(cmd, "give exactly one target: --target-acc X (validation accuracy) or "
                              "--target-loss X (validation loss)");
    if (has_acc && !(c->target_acc > 0 && c->target_acc <= 1))
        return cli_error(cmd, "--target-acc %g must be in (0, 1]", c->target_acc);
    if (has_loss && !(c->target_loss > 0))
        return cli_error(cmd, "--target-loss %g must be > 0", c->target_loss);
    if (!(c->max_epochs > 0) || c->max_epochs > 1e6)
        return cli_error(cmd, "--max-epochs %g must be > 0", c->max_epochs);
    if (cli_opt_find(opts, n_opts, "eval-every-samples")->seen && c->eval_every_samples < 1)
        return cli_error(cmd, "--eval-every-samples must be at least 1");
    if (c->noise_every < 0) return cli_error(cmd, "--noise-every must not be negative");
    if (c->noise_draws != 0 && c->noise_draws < 2)
        return cli_error(cmd, "--noise-draws %d: use 0 (off) or at least 2", c->noise_draws);
    if (c->noise_draws && (c->noise_small < 1 || c->noise_big <= c->noise_small))
        return cli_error(cmd, "--noise-small %d must be at least 1 and below --noise-big %d",
                         c->noise_small, c->noise_big);
    if (!(t->noise_decay > 0 && t->noise_decay < 1))
        return cli_error(cmd, "--noise-decay %g must be in (0, 1)", t->noise_decay);
    if (!o->out)
        return cli_error(cmd,
                         "--out DIR is required: the folder for results, plots and the report");
    t->spec = o->model;
    t->warmup_steps = o->warmup;
    t->seed = (uint64_t)o->seed;
    c->prune = !o->no_prune;
    c->out_dir = o->out;
    return 0;
}

typedef struct progress_state {
    int quiet, tty;
} progress_state;

static void on_event(void *arg, const bl_sweep_event *ev) {
    progress_state *p = arg;
    const bl_trial *t = ev->trial;
    if (p->quiet) return;
    if (ev->kind == BL_SWEEP_EV_EVAL) {
        if (p->tty)
            fprintf(stderr, "\r[%2d/%d] B=%-5d lr %-8.4g step %-7ld val acc %.4f loss %.4f   ",
                    ev->index, ev->total, t->batch, (double)t->lr, ev->point->step,
                    ev->point->val_acc, ev->point->val_loss);
        return;
    }
    if (ev->kind == BL_SWEEP_EV_START) return;
    if (p->tty) fputs("\r\033[K", stderr);
    char took[32];
    fprintf(stderr, "[%2d/%d] B=%-5d lr %-8.4g (x%g): %-11s %6ld steps %9ld examples %8s",
            ev->index, ev->total, t->batch, (double)t->lr, t->lr_mult,
            bl_trial_status_name(t->status), t->steps, t->examples,
            bl_format_seconds(took, sizeof took, t->train_s));
    if (isfinite(t->val_acc)) fprintf(stderr, "  val acc %.4f", t->val_acc);
    fprintf(stderr, "%s\n", ev->kind == BL_SWEEP_EV_SKIP ? "  (finished earlier: skipped)" : "");
}

static int print_summary(const bl_sweep_config *c, const bl_sweep_result *r, int json) {
    const bl_trial *rec = r->recommended >= 0 ? &r->trials[r->recommended] : NULL;
    if (json) {
        unsigned mark = bl_alloc_failures();
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "out", c->out_dir);
        cJSON_AddNumberToObject(j, "trials", r->n_trials);
        cJSON_AddNumberToObject(j, "skipped", r->n_skipped);
        if (rec) {
            cJSON_AddNumberToObject(j, "recommended_batch", rec->batch);
            cJSON_AddNumberToObject(j, "recommended_lr", rec->lr);
        }
        if (r->fit_ok) {
            cJSON_AddNumberToObject(j, "b_crit", r->fit.b_crit);
            cJSON_AddNumberToObject(j, "s_min", r->fit.s_min);
            cJSON_AddNumberToObject(j, "e_min", r->fit.e_min);
            cJSON_AddNumberToObject(j, "r2", r->fit.r2);
        }
        cJSON_AddStringToObject(j, "plots", r->plot_msg[0] ? r->plot_msg : "ok");
        int rc = cli_print_json("sweep", j, mark);
        cJSON_Delete(j);
        return rc;
    }
    printf("\n== batchlab sweep: %s ==\n", c->out_dir);
    printf("trials       %d (%d finished earlier and skipped)\n", r->n_trials, r->n_skipped);
    double est = NAN;
    char took[32];
    for (int i = 0; i < c->n_batches; i++)
        if (rec && r->best[i] == r->recommended) est = r->est_train_s[i];
    if (rec)
        printf("recommended  batch %d, lr %.4g (fastest to the target here: ~%s, %ld steps, "
               "resolved to %ld)\n",
               rec->batch, (double)rec->lr, bl_format_seconds(took, sizeof took, est), rec->steps,
               rec->steps_res);
    else
        printf("recommended  none: no batch size reached the target\n");
    if (r->fit_ok)
        printf(
            "B_crit       %.0f (S_min %.0f steps, E_min %.0f examples, R^2 %.3f over %d sizes)\n",
            r->fit.b_crit, r->fit.s_min, r->fit.e_min, r->fit.r2, r->fit.n);
    else
        printf("B_crit       not fitted: %s\n", r->fit_msg);
    if (r->plot_msg[0]) printf("plots        %s\n", r->plot_msg);
    printf("report       %s/report.md and report.html; table %s/results.csv\n", c->out_dir,
           c->out_dir);
    return 0;
}

/* The command line, for the report (arguments with spaces quoted). */
static char *join_args(int argc, char **argv) {
    size_t n = 32;
    for (int i = 0; i < argc; i++)
        n += strlen(argv[i]) + 3;
    char *s = bl_malloc(n);
    if (!s) return NULL;
    strcpy(s, "batchlab sweep");
    for (int i = 1; i < argc; i++) {
        int q = strpbrk(argv[i], " \t\"'$") != NULL;
        strcat(s, q ? " '" : " ");
        strcat(s, argv[i]);
        if (q) strcat(s, "'");
    }
    return s;
}

int cli_sweep(int argc, char **argv) {
    const char *cmd = "sweep";
    bl_sweep_config c;
    bl_sweep_config_default(&c);
    cli_data_opts d;
    cli_data_opts_default(&d);
    c.train.lr = 0.05f;
    sweep_opts o = {.model = "mlp",
                    .optim = {.optimizer = "momentum",
                              .schedule = "constant",
                              .lr_scale = "sqrt",
                              .loss = "xent"},
                    .seed = 1};
    cli_opt opts[] = {
        {"out", ARG_STR, &o.out, "folder for trials, logs, results, plots and report (required)",
         0},
        {"model", ARG_STR, &o.model, "model spec or preset: mlp (default), cnn, logreg", 0},
        {"batches", ARG_STR, &o.batches,
         "batch sizes, e.g. 16,32,64 (default: powers of two from 16 to n/8)", 0},
        {"target-acc", ARG_DOUBLE, &c.target_acc, "train each trial to this validation accuracy",
         0},
        {"target-loss", ARG_DOUBLE, &c.target_loss, "... or to this validation loss", 0},
        {"max-epochs", ARG_DOUBLE, &c.max_epochs, "give up on a trial after N epochs (default 20)",
         0},
        {"eval-every-samples", ARG_LONG, &c.eval_every_samples,
         "check the target every ~N examples (default: min(4096, max(B, n_train/16)))", 0},
        {"lr", ARG_FLOAT, &c.train.lr, "learning rate at --base-batch (default 0.05)", 0},
        {"lr-scale", ARG_STR, &o.optim.lr_scale,
         "scale lr with the batch: sqrt (default), linear, none", 0},
        {"base-batch", ARG_INT, &c.train.base_batch,
         "batch size at which --lr is given (default 128)", 0},
        {"lr-grid", ARG_STR, &o.grid,
         "multipliers tried around the scaled lr, best kept (default 0.5,1,2; 1 = rule only)", 0},
        {"no-prune", ARG_FLAG, &o.no_prune,
         "run every grid trial to its end, even when it cannot win", 0},
        {"optimizer", ARG_STR, &o.optim.optimizer, "sgd, momentum (default), nesterov, adam, adamw",
         0},
        {"momentum", ARG_FLOAT, &o.optim.momentum,
         "SGD momentum (default 0.9 for momentum/nesterov)", 0},
        {"nesterov", ARG_FLAG, &o.optim.nesterov, "Nesterov momentum", 0},
        {"weight-decay", ARG_FLOAT, &o.optim.weight_decay,
         "L2 (sgd/adam) or decoupled (adamw) weight decay", 0},
        {"schedule", ARG_STR, &o.optim.schedule, "constant (default) or cosine over --max-epochs",
         0},
        {"warmup", ARG_LONG, &o.warmup, "linear warm-up over N updates", 0},
        {"loss", ARG_STR, &o.optim.loss, "xent (default) or mse", 0},
        {"noise-every", ARG_INT, &c.noise_every,
         "noise-scale estimate during training every N updates (default 10, 0 = off)", 0},
        {"noise-decay", ARG_DOUBLE, &c.train.noise_decay,
         "EMA decay of that estimate (default 0.95)", 0},
        {"noise-draws", ARG_INT, &c.noise_draws,
         "batches for the noise scale at the target (default 32, 0 = off)", 0},
        {"noise-small", ARG_INT, &c.noise_small, "small batch of that measurement (default 64)", 0},
        {"noise-big", ARG_INT, &c.noise_big, "big batch of that measurement (default 1024)", 0},
        CLI_DATA_OPTS(d),
        {"test", ARG_STR, &d.test, "test set for the generalisation gap (default: Fashion-MNIST's)",
         0},
        {"test-labels", ARG_STR, &d.test_labels, "labels for --test", 0},
        {"val-frac", ARG_DOUBLE, &d.val_frac,
         "fraction of training data for validation (default 0.1)", 0},
        CLI_CLASSES_OPT(d),
        {"norm", ARG_STR, &d.norm,
         "input normalisation: auto (default: standard for tabular data, unit for images), "
         "standard, unit, none",
         0},
        {"seed", ARG_LONG, &o.seed, "seed for init, shuffling and the split (default 1)", 0},
        {"threads", ARG_INT, &o.threads, "compute threads (default: the CPUs this process may use)",
         0},
        CLI_DEVICE_OPTS(o.device),
        {"json", ARG_FLAG, &o.json, "print the summary as JSON", 0},
        {"quiet", ARG_FLAG, &o.quiet, "print nothing but errors (and what --json asks for)", 0},
    };
    int n_opts = (int)(sizeof opts / sizeof opts[0]);
    int rc = cli_parse(cmd, "--out DIR --target-acc X [options]", opts, n_opts, argc, argv, NULL, 0,
                       NULL);
    if (rc) return rc == 1 ? 0 : rc;
    if ((rc = build_config(cmd, &o, opts, n_opts, &c))) return rc;

    bl_ctx ctx;
    if ((rc = cli_ctx_init(cmd, &ctx, o.threads, &o.device))) return rc;
    bl_error err = {0};
    cli_splits ds; /* as `train`: a seeded validation split, the test split, normalisation */
    d.quiet = o.quiet || o.json;
    if (!(d.val_frac > 0 && d.val_frac < 1))
        return bl_ctx_free(&ctx),
               cli_error(cmd,
                         "--val-frac %g must be in (0, 1): the target is checked on "
                         "validation data",
                         d.val_frac);
    bl_status st = cli_load_splits(&d, &ctx.mem, &ds, c.train.seed, &err);
    if (!st && !ds.have_val)
        st = bl_fail(&err, BL_ERR_ARG, "--val-frac %g of %zu samples leaves no validation sample",
                     d.val_frac, ds.train.n);
    if (st) {
        cli_splits_free(&ds, &ctx.mem);
        bl_ctx_free(&ctx);
        return st == BL_ERR_ARG ? cli_error(cmd, "%s", err.msg) : cli_fail(cmd, "%s", err.msg);
    }
    if (c.n_batches == 0)
        c.n_batches = bl_sweep_default_batches(ds.train.n, c.batches, BL_SWEEP_MAX_BATCHES);
    for (int i = 0; i < c.n_batches; i++)
        if ((size_t)c.batches[i] > ds.train.n) {
            rc = cli_error(cmd,
                           "--batches: %d exceeds the %zu training samples (after the %g "
                           "validation split)",
                           c.batches[i], ds.train.n, d.val_frac);
            cli_splits_free(&ds, &ctx.mem);
            bl_ctx_free(&ctx);
            return rc;
        }
    if (c.noise_draws && (size_t)c.noise_big > ds.train.n) c.noise_big = (int)ds.train.n;
    if (c.noise_draws && c.noise_small >= c.noise_big)
        c.noise_small = c.noise_big / 2 > 0 ? c.noise_big / 2 : 1;
    c.data_name = ds.train.name;
    char *line = join_args(argc, argv);
    c.command = line;
    progress_state ps = {.quiet = o.quiet || o.json, .tty = isatty(2)};
    c.should_stop = should_stop;
    c.on_event = on_event, c.event_arg = &ps;
    if (!ps.quiet)
        fprintf(stderr,
                "sweep of %s on %zu samples (%zu validation): %d batch sizes x %d learning "
                "rates, target %s %g, into %s\n",
                o.model, ds.train.n, ds.val.n, c.n_batches, c.n_lr_mults,
                c.target_acc > 0 ? "val acc" : "val loss",
                c.target_acc > 0 ? c.target_acc : c.target_loss, c.out_dir);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    bl_sweep_result r;
    st = bl_sweep_run(&ctx, &c, &ds.train, &ds.val, &ds.test, &r, &err);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    if (ps.tty && !ps.quiet) fputs("\r\033[K", stderr);
    if (st == BL_ERR_INTERRUPTED) {
        cli_fail(cmd,
                 "interrupted (%s). Finished trials are saved in %s; run the same command "
                 "again to continue",
                 err.msg, c.out_dir);
        rc = 130;
    } else if (st == BL_ERR_ARG) {
        rc = cli_error(cmd, "%s", err.msg);
    } else if (st) {
        rc = cli_fail(cmd, "%s", err.msg);
    } else {
        if (o.json || !o.quiet) rc = print_summary(&c, &r, o.json);
        bl_sweep_result_free(&r);
    }
    bl_free(line);
    cli_splits_free(&ds, &ctx.mem);
    bl_ctx_free(&ctx);
    return rc;
}
