/* batchlab tune: ASHA over batch size x learning rate (x momentum), examples
 * seen as the resource; resumable; prints the best configuration and the table. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "args.h"
#include "cli.h"
#include "data_opts.h"
#include "batchlab/io.h"
#include "batchlab/tune.h"
#include "core/alloc.h"

static volatile sig_atomic_t g_stop; /* CLI-only: set by SIGINT/SIGTERM */
static void on_signal(int sig) {
    g_stop = sig;
}
static int should_stop(void *arg) {
    return g_stop != 0;
}

static void on_rung(void *arg, const bl_tune_trial *t, int rung, long total) {
    if (*(int *)arg) return;
    if (t->diverged)
        fprintf(stderr, "rung %d  %-24s diverged after %ld examples  [%ld examples so far]\n", rung,
                t->id, t->examples, total);
    else
        fprintf(stderr, "rung %d  %-24s val acc %.4f after %ld examples  [%ld examples so far]\n",
                rung, t->id, t->acc[rung], t->examples, total);
}

int cli_tune(int argc, char **argv) {
    const char *cmd = "tune";
    cli_data_opts d;
    cli_data_opts_default(&d);
    const char *model = "mlp", *optimizer = "momentum", *batches = NULL, *lrs = NULL,
               *momenta = NULL, *lr_scale = "linear", *out = NULL;
    int base_batch = 64, eta = 3, json = 0, threads = 0;
    cli_device device = {0};
    long min_ex = 0, max_ex = 0, seed = 1;
    cli_opt opts[] = {
        {"model", ARG_STR, &model, "model spec or preset (default mlp)", 0},
        {"optimizer", ARG_STR, &optimizer, "sgd, momentum (default), nesterov, adam, adamw", 0},
        {"batches", ARG_STR, &batches, "batch sizes (default 16,32,...,1024)", 0},
        {"lrs", ARG_STR, &lrs,
         "learning rates at --base-batch (default 0.0125,0.025,0.05,0.1,0.2; adam: 1e-3 x 1/4..4)",
         0},
        {"lr-scale", ARG_STR, &lr_scale,
         "how each lr moves with the batch: linear (default), sqrt, none", 0},
        {"base-batch", ARG_INT, &base_batch, "batch size the --lrs are given for (default 64)", 0},
        {"momenta", ARG_STR, &momenta,
         "also search SGD momentum over these values (e.g. 0.8,0.9,0.95)", 0},
        {"min-examples", ARG_LONG, &min_ex, "examples at rung 0 (default: a quarter epoch)", 0},
        {"max-examples", ARG_LONG, &max_ex, "examples at the top rung (default: 6 epochs)", 0},
        {"eta", ARG_INT, &eta, "keep the top 1/eta at each rung (default 3)", 0},
        {"out", ARG_STR, &out, "run folder (required; re-running continues it)", 0},
        CLI_DATA_OPTS(d),
        {"val-frac", ARG_DOUBLE, &d.val_frac,
         "fraction of training data for validation (default 0.1)", 0},
        CLI_CLASSES_OPT(d),
        {"norm", ARG_STR, &d.norm,
         "input normalisation: auto (default: standard for tabular data, unit for images), "
         "standard, unit, none",
         0},
        {"seed", ARG_LONG, &seed, "seed (default 1)", 0},
        {"threads", ARG_INT, &threads, "compute threads (default: the CPUs this process may use)",
         0},
        CLI_DEVICE_OPTS(device),
        {"json", ARG_FLAG, &json, "print the result as JSON", 0},
    };
    int n_opts = (int)(sizeof opts / sizeof opts[0]);
    int rc = cli_parse(cmd, "--out DIR [options]", opts, n_opts, argc, argv, NULL, 0, NULL);
    if (rc) return rc == 1 ? 0 : rc;
    if (!out)
        return cli_error(cmd,
                         "--out DIR is required (the search is saved there and can be resumed)");
    bl_tune_config c = {.eta = eta,
                        .out_dir = out,
                        .should_stop = should_stop,
                        .on_rung = on_rung,
                        .rung_arg = &json};
    bl_train_config_default(&c.train);
    bl_error err = {0};
    c.train.spec = model;
    c.train.base_batch = base_batch;
    c.train.seed = (uint64_t)seed;
    if (bl_optim_parse(&c.train.opt, optimizer, &err))
        return cli_error(cmd, "--optimizer: %s", err.msg);
    if (bl_lr_scale_parse(&c.train.lr_scale, lr_scale, &err))
        return cli_error(cmd, "--lr-scale: %s", err.msg);
    if (base_batch < 1) return cli_error(cmd, "--base-batch must be at least 1");
    if (eta < 2) return cli_error(cmd, "--eta must be at least 2");
    double vals[32];
    if (batches && cli_parse_list(cmd, "--batches", batches, 1, c.batches, NULL, 32, &c.n_batches))
        return 2;
    if (lrs && cli_parse_list(cmd, "--lrs", lrs, 0, NULL, vals, 32, &c.n_lrs)) return 2;
    for (int i = 0; lrs && i < c.n_lrs; i++)
        c.lrs[i] = (float)vals[i];
    if (momenta) {
        if (c.train.opt.kind != BL_OPT_SGD)
            return cli_error(cmd, "--momenta applies to SGD optimizers");
        if (cli_parse_list(cmd, "--momenta", momenta, 0, NULL, vals, 8, &c.n_momenta)) return 2;
        for (int i = 0; i < c.n_momenta; i++) {
            if (vals[i] >= 1) return cli_error(cmd, "--momenta: %g is not below 1", vals[i]);
            c.momenta[i] = (float)vals[i];
        }
    }
    if (!lrs) {
        float base = c.train.opt.kind == BL_OPT_SGD ? 0.05f : 1e-3f, m[] = {0.25f, 0.5f, 1, 2, 4};
        for (int i = 0; i < 5; i++)
            c.lrs[c.n_lrs++] = base * m[i];
    }
    bl_ctx ctx;
    if ((rc = cli_ctx_init(cmd, &ctx, threads, &device))) return rc;
    cli_splits sp;
    d.quiet = json;
    if (cli_load_splits(&d, &ctx.mem, &sp, c.train.seed, &err)) {
        cli_splits_free(&sp, &ctx.mem);
        bl_ctx_free(&ctx);
        return cli_fail(cmd, "%s", err.msg);
    }
    if (!sp.have_val) {
        cli_splits_free(&sp, &ctx.mem);
        bl_ctx_free(&ctx);
        return cli_error(cmd,
                         "tune ranks configurations on validation data: --val-frac must be > 0");
    }
    if (!batches)
        for (int b = 16; b <= 1024 && (size_t)b * 4 <= sp.train.n; b *= 2)
            c.batches[c.n_batches++] = b;
    for (int i = 0; i < c.n_batches; i++)
        if ((size_t)c.batches[i] > sp.train.n) {
            cli_splits_free(&sp, &ctx.mem);
            bl_ctx_free(&ctx);
            return cli_error(cmd, "batch %d exceeds the %zu training samples", c.batches[i],
                             sp.train.n);
        }
    c.min_examples = min_ex ? min_ex : (long)sp.train.n / 4;
    c.max_examples = max_ex ? max_ex : 6 * (long)sp.train.n;
    bl_tune_result *r = bl_calloc(1, sizeof *r);
    if (!r) {
        cli_splits_free(&sp, &ctx.mem);
        bl_ctx_free(&ctx);
        return cli_fail(cmd, "out of memory");
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    bl_status st =
        bl_tune_run(&ctx, &c, &sp.train, &sp.val, sp.have_test ? &sp.test : NULL, r, &err);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    if (st == BL_ERR_INTERRUPTED) {
        fprintf(stderr,
                "batchlab tune: interrupted; finished rungs are saved in %s (run the same command "
                "to continue)\n",
                out);
        rc = 130;
    } else if (st) {
        rc = cli_fail(cmd, "%s", err.msg);
    } else if (json) {
        char path[4096];
        snprintf(path, sizeof path, "%s/results.json", out);
        char *text = bl_read_text(path);
        if (text)
            printf("%s", text);
        else
            rc = cli_fail(cmd, "%s: %s", path, strerror(errno));
        bl_free(text);
    } else {
        printf("\n%-26s %6s %10s %5s %6s %10s  val acc by rung (examples:", "config", "batch", "lr",
               "mom", "rungs", "examples");
        for (int k = 0; k < r->n_rungs; k++)
            printf(" %ld", r->rung_examples[k]);
        printf(")\n");
        for (int i = 0; i < r->n_trials; i++) {
            const bl_tune_trial *t = &r->trials[i];
            printf("%-26s %6d %10.4g %5.2f %6d %10ld ", t->id, t->batch, (double)t->lr,
                   (double)t->momentum, t->rungs_done, t->examples);
            for (int k = 0; k < t->rungs_done; k++)
                printf(" %.4f", t->acc[k]);
            printf("%s%s\n", t->diverged ? "  diverged" : "", i == r->best ? "  <- best" : "");
        }
        if (r->best >= 0) {
            const bl_tune_trial *b = &r->trials[r->best];
            printf("\nbest: batch %d, lr %.4g, momentum %.2f: validation accuracy %.4f after %ld "
                   "examples",
                   b->batch, (double)b->lr, (double)b->momentum, b->acc[b->rungs_done - 1],
                   b->examples);
            if (isfinite(r->best_test_acc)) printf(", test accuracy %.4f", r->best_test_acc);
            printf("\ncompute: %.0f training examples in all (%d configurations, eta %d)\n",
                   (double)r->total_examples, r->n_trials, c.eta);
            printf("results: %s/results.csv, %s/results.json, %s/plots/landscape.png\n", out, out,
                   out);
        }
    }
    bl_free(r);
    cli_splits_free(&sp, &ctx.mem);
    bl_ctx_free(&ctx);
    return rc;
}
