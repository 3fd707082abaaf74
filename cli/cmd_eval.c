/* batchlab eval: loss and accuracy of a checkpoint on a dataset. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "args.h"
#include "cli.h"
#include "data_opts.h"
#include "batchlab/io.h"
#include "batchlab/train.h"
#include "core/alloc.h"

int cli_eval(int argc, char **argv) {
    const char *cmd = "eval";
    cli_data_opts d;
    cli_data_opts_default(&d);
    const char *ckpt = NULL, *split = "test", *loss_name = "xent";
    int batch = 256, json = 0, threads = 0;
    cli_device device = {0};
    cli_opt opts[] = {
        {"checkpoint", ARG_STR, &ckpt, "checkpoint written by batchlab train (required)", 0},
        CLI_DATA_OPTS(d),
        {"split", ARG_STR, &split, "for Fashion-MNIST or a directory: test (default) or train", 0},
        {"batch", ARG_INT, &batch, "samples per forward pass (default 256)", 0},
        {"loss", ARG_STR, &loss_name, "xent (default) or mse", 0},
        {"threads", ARG_INT, &threads, "compute threads (default: the CPUs this process may use)",
         0},
        CLI_DEVICE_OPTS(device),
        {"json", ARG_FLAG, &json, "print the result as JSON", 0},
    };
    int n_opts = (int)(sizeof opts / sizeof opts[0]);
    int rc =
        cli_parse(cmd, "--checkpoint PATH [--data ...]", opts, n_opts, argc, argv, NULL, 0, NULL);
    if (rc) return rc == 1 ? 0 : rc;
    if (!ckpt) return cli_error(cmd, "--checkpoint PATH is required");
    if (batch <= 0) return cli_error(cmd, "--batch %d is invalid: it must be at least 1", batch);
    if (strcmp(split, "test") && strcmp(split, "train"))
        return cli_error(cmd, "--split must be train or test, got '%s'", split);
    bl_loss_kind loss;
    bl_error lerr = {0};
    if (bl_loss_parse(&loss, loss_name, &lerr)) return cli_error(cmd, "--loss %s", lerr.msg);

    bl_ctx ctx;
    if ((rc = cli_ctx_init(cmd, &ctx, threads, &device))) return rc;
    bl_error err = {0};
    bl_model *m = NULL;
    bl_norm norm;
    if (bl_checkpoint_load_model(&m, &norm, &ctx, ckpt, batch, &err))
        return bl_ctx_free(&ctx), cli_fail(cmd, "%s", err.msg);
    /* Labels are checked against the model's classes; the data may miss some. */
    d.classes = bl_model_output_dim(m);
    d.min_classes = 0;
    d.quiet = json;
    bl_dataset ds;
    bl_status st = cli_load_dataset(&d, d.data, d.labels, split, &ctx.mem, &ds, &err);
    if (!st) st = bl_model_check_input(m, ds.dim, ds.name, &err);
    if (st) rc = cli_fail(cmd, "%s", err.msg);
    double mean_loss = 0, acc = 0, t0 = bl_now_sec();
    if (!rc) {
        bl_norm_apply(&norm, &ds);
        if (bl_model_evaluate(m, &ds, loss, 0, &mean_loss, &acc, &err))
            rc = cli_fail(cmd, "%s", err.msg);
    }
    double secs = bl_now_sec() - t0;
    if (!rc) {
        if (json) {
            unsigned mark = bl_alloc_failures();
            cJSON *j = cJSON_CreateObject();
            cJSON_AddStringToObject(j, "checkpoint", ckpt);
            cJSON_AddStringToObject(j, "data", ds.name);
            cJSON_AddStringToObject(j, "model", bl_model_spec(m));
            cJSON_AddNumberToObject(j, "samples", (double)ds.n);
            cJSON_AddNumberToObject(j, "loss", mean_loss);
            cJSON_AddNumberToObject(j, "accuracy", acc);
            cJSON_AddNumberToObject(j, "seconds", secs);
            rc = cli_print_json(cmd, j, mark);
            cJSON_Delete(j);
        } else {
            char took[32];
            printf("%s on %s: loss %.4f accuracy %.4f (%zu samples, %s)\n", ckpt, ds.name,
                   mean_loss, acc, ds.n, bl_format_seconds(took, sizeof took, secs));
        }
    }
    bl_dataset_free(&ds, &ctx.mem);
    bl_norm_free(&norm, &ctx.mem);
    bl_model_free(m);
    bl_ctx_free(&ctx);
    return rc;
}
