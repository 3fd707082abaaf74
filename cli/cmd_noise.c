/* batchlab noise: the gradient noise scale B_simple of a checkpoint, measured
 * over many random batches of its training data with a bootstrap interval
 * (library: bl_noise_measure). The checkpoint's own normalisation is applied
 * to the data, so the gradients are those training saw. */
#include <cjson/cJSON.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "args.h"
#include "cli.h"
#include "data_opts.h"
#include "batchlab/noise_measure.h"
#include "batchlab/train.h"
#include "batchlab/io.h"
#include "core/alloc.h"

static volatile sig_atomic_t g_stop; /* set by SIGINT/SIGTERM; CLI-only state */
static void on_signal(int sig) {
    g_stop = sig;
}
static int should_stop(void *arg) {
    return g_stop != 0;
}

static int print_result(const char *ckpt, const bl_dataset *ds, const bl_noise_measurement *r,
                        int json) {
    if (json) {
        unsigned mark = bl_alloc_failures();
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "checkpoint", ckpt);
        cJSON_AddStringToObject(j, "data", ds->name);
        cJSON_AddNumberToObject(j, "samples", (double)ds->n);
        cJSON_AddNumberToObject(j, "small_batch", r->b_small);
        cJSON_AddNumberToObject(j, "big_batch", r->b_big);
        cJSON_AddNumberToObject(j, "draws", r->draws);
        bl_json_add_number(j, "g2", r->g2);
        bl_json_add_number(j, "g2_se", r->g2_se);
        bl_json_add_number(j, "trace", r->trace);
        bl_json_add_number(j, "trace_se", r->trace_se);
        bl_json_add_number(j, "noise_scale", r->scale);
        bl_json_add_number(j, "noise_scale_lo", r->scale_lo);
        bl_json_add_number(j, "noise_scale_hi", r->scale_hi); /* null when unbounded */
        cJSON_AddNumberToObject(j, "confidence", r->confidence);
        bl_json_add_number(j, "train_loss", r->mean_loss);
        cJSON_AddNumberToObject(j, "seconds", r->seconds);
        int rc = cli_print_json("noise", j, mark);
        cJSON_Delete(j);
        return rc;
    }
    printf("gradient noise scale of %s on %s (%zu samples)\n", ckpt, ds->name, ds->n);
    printf("  batches      %d draws of %d samples, the first %d of each as the small batch\n",
           r->draws, r->b_big, r->b_small);
    printf("  |G|^2        %.5g +- %.2g (standard error)\n", r->g2, r->g2_se);
    printf("  tr(Sigma)    %.5g +- %.2g\n", r->trace, r->trace_se);
    if (isfinite(r->scale)) {
        printf("  B_simple     %.1f, %.0f%% interval [%.1f, ", r->scale, 100 * r->confidence,
               r->scale_lo);
        if (isfinite(r->scale_hi))
            printf("%.1f]\n", r->scale_hi);
        else
            printf("unbounded] (|G|^2 is not resolved: use more --draws or a bigger --big)\n");
    } else {
        printf(
            "  B_simple     not resolved: the |G|^2 estimate is not positive; use more --draws or "
            "a bigger --big (lower bound %.1f)\n",
            r->scale_lo);
    }
    printf("  train loss   %.4f (train mode, over the big batches); %.1f s\n", r->mean_loss,
           r->seconds);
    return 0;
}

int cli_noise(int argc, char **argv) {
    const char *cmd = "noise";
    cli_data_opts d;
    cli_data_opts_default(&d);
    bl_noise_measure_config c;
    bl_noise_measure_config_default(&c);
    const char *ckpt = NULL, *split = "train", *loss_name = "xent";
    int json = 0, threads = 0;
    cli_device device = {0};
    long seed = 1;
    cli_opt opts[] = {
        {"checkpoint", ARG_STR, &ckpt, "checkpoint written by batchlab train (required)", 0},
        CLI_DATA_OPTS(d),
        {"split", ARG_STR, &split, "for Fashion-MNIST or a directory: train (default) or test", 0},
        {"small", ARG_INT, &c.b_small, "small batch size b (default 32)", 0},
        {"big", ARG_INT, &c.b_big, "big batch size B > b (default 512)", 0},
        {"draws", ARG_INT, &c.draws, "random big batches averaged (default 100)", 0},
        {"confidence", ARG_DOUBLE, &c.confidence, "interval level (default 0.95)", 0},
        {"bootstrap", ARG_INT, &c.n_boot, "bootstrap resamples for the interval (default 2000)", 0},
        {"loss", ARG_STR, &loss_name, "xent (default) or mse", 0},
        {"seed", ARG_LONG, &seed, "seed for drawing the batches (default 1)", 0},
        {"threads", ARG_INT, &threads, "compute threads (default: the CPUs this process may use)",
         0},
        CLI_DEVICE_OPTS(device),
        {"json", ARG_FLAG, &json, "print the result as JSON", 0},
    };
    int n_opts = (int)(sizeof opts / sizeof opts[0]);
    int rc = cli_parse(cmd, "--checkpoint PATH [--data ...] [--small b --big B --draws N]", opts,
                       n_opts, argc, argv, NULL, 0, NULL);
    if (rc) return rc == 1 ? 0 : rc;
    if (!ckpt) return cli_error(cmd, "--checkpoint PATH is required");
    if (c.b_small < 1)
        return cli_error(cmd, "--small %d is invalid: it must be at least 1", c.b_small);
    if (c.b_big <= c.b_small)
        return cli_error(cmd, "--big %d must be larger than --small %d", c.b_big, c.b_small);
    if (c.draws < 2) return cli_error(cmd, "--draws %d is invalid: at least 2 are needed", c.draws);
    if (!(c.confidence > 0 && c.confidence < 1))
        return cli_error(cmd, "--confidence %g must be between 0 and 1", c.confidence);
    if (c.n_boot < 100)
        return cli_error(cmd, "--bootstrap %d is too few: use at least 100", c.n_boot);
    if (seed < 0) return cli_error(cmd, "--seed must not be negative");
    if (strcmp(split, "test") && strcmp(split, "train"))
        return cli_error(cmd, "--split must be train or test, got '%s'", split);
    bl_error lerr = {0};
    if (bl_loss_parse(&c.loss, loss_name, &lerr)) return cli_error(cmd, "--loss %s", lerr.msg);
    c.seed = (uint64_t)seed;
    c.should_stop = should_stop;

    bl_ctx ctx;
    if ((rc = cli_ctx_init(cmd, &ctx, threads, &device))) return rc;
    bl_error err = {0};
    bl_model *m = NULL;
    bl_norm norm;
    /* The big batch runs in chunks, so the activations need not hold all of it. */
    int max_batch = c.b_big < 1024 ? c.b_big : (c.b_small > 1024 ? c.b_small : 1024);
    if (bl_checkpoint_load_model(&m, &norm, &ctx, ckpt, max_batch, &err))
        return bl_ctx_free(&ctx), cli_fail(cmd, "--checkpoint: %s", err.msg);
    bl_dataset ds = {0};
    bl_noise_measurement r;
    d.classes = bl_model_output_dim(m); /* labels checked against the model's classes */
    d.min_classes = 0;
    d.quiet = json;
    bl_status st = cli_load_dataset(&d, d.data, d.labels, split, &ctx.mem, &ds, &err);
    if (!st) st = bl_model_check_input(m, ds.dim, ds.name, &err);
    if (!st && (size_t)c.b_big > ds.n)
        st = bl_fail(&err, BL_ERR_ARG, "--big %d exceeds the %zu samples of %s", c.b_big, ds.n,
                     ds.name);
    if (!st) {
        bl_norm_apply(&norm, &ds);
        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);
        st = bl_noise_measure(m, &ds, &c, &r, &err);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
    }
    if (st == BL_ERR_INTERRUPTED)
        rc = (cli_fail(cmd, "%s", err.msg), 130);
    else if (st == BL_ERR_ARG)
        rc = cli_error(cmd, "%s", err.msg);
    else if (st)
        rc = cli_fail(cmd, "%s", err.msg);
    else
        rc = print_result(ckpt, &ds, &r, json);
    bl_dataset_free(&ds, &ctx.mem);
    bl_norm_free(&norm, &ctx.mem);
    bl_model_free(m);
    bl_ctx_free(&ctx);
    return rc;
}
