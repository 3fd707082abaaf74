/* batchlab predict: batched inference from a checkpoint, written as CSV or
 * .npy (atomically). Inputs need no labels. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "args.h"
#include "cli.h"
#include "data_opts.h"
#include "batchlab/io.h"
#include "batchlab/train.h"
#include "core/alloc.h"

/* out rows become probabilities (softmax); cls gets each row's class. */
static void transform(float *out, size_t n, int K, const char *kind, int64_t *cls) {
    for (size_t i = 0; i < n; i++) {
        float *row = out + i * K;
        int best = 0;
        for (int k = 1; k < K; k++)
            if (row[k] > row[best]) best = k;
        cls[i] = best;
        if (!strcmp(kind, "probs")) {
            double mx = row[best], sum = 0;
            for (int k = 0; k < K; k++)
                sum += exp((double)row[k] - mx);
            for (int k = 0; k < K; k++)
                row[k] = (float)(exp((double)row[k] - mx) / sum);
        }
    }
}

/* Probabilities or logits (v, n x K), or classes (cls) when v is NULL. */
static bl_status write_csv(const char *path, const float *v, const int64_t *cls, size_t n, int K,
                           bl_error *err) {
    bl_atomic_file af;
    FILE *fp = stdout;
    if (path) {
        bl_status st = bl_atomic_open(&af, path, err);
        if (st) return st;
        fp = af.fp;
    }
    if (!v)
        fputs("class", fp);
    else
        for (int k = 0; k < K; k++)
            fprintf(fp, "%s%d", k ? "," : "", k);
    fputc('\n', fp);
    for (size_t i = 0; i < n; i++) {
        if (!v) fprintf(fp, "%lld", (long long)cls[i]);
        for (int k = 0; v && k < K; k++)
            fprintf(fp, "%s%.7g", k ? "," : "", (double)v[i * K + k]);
        fputc('\n', fp);
    }
    if (!path) return fflush(stdout) == 0 ? BL_OK : bl_fail(err, BL_ERR_IO, "stdout: write failed");
    return bl_atomic_commit(&af, err);
}

int cli_predict(int argc, char **argv) {
    const char *cmd = "predict";
    const char *ckpt = NULL, *input = NULL, *output = NULL, *kind = "probs";
    int batch = 64, json = 0, threads = 0;
    cli_device device = {0};
    cli_data_opts d;
    cli_data_opts_default(&d);
    d.label_col = NULL; /* every CSV column is a feature unless --label-col names one */
    cli_opt opts[] = {
        {"checkpoint", ARG_STR, &ckpt, "checkpoint written by batchlab train (required)", 0},
        {"input", ARG_STR, &input,
         "samples: a CSV (.gz), .npy or IDX (.gz) file, told apart by content (required)", 0},
        {"label-col", ARG_STR, &d.label_col,
         "CSV input: a label column to ignore (first, last or N)", 0},
        {"header", ARG_FLAG, &d.header, "CSV input: the first line is a header (default: detect)",
         0},
        {"no-header", ARG_FLAG, &d.no_header, "CSV input: the first line is data", 0},
        {"sep", ARG_STR, &d.sep, "CSV separator: , tab ; or space (default: detect)", 0},
        {"batch", ARG_INT, &batch, "samples per forward pass (default 64)", 0},
        {"output", ARG_STR, &output, "write to OUT.csv or OUT.npy (default: CSV on stdout)", 0},
        {"output-kind", ARG_STR, &kind, "probs (default), logits or class", 0},
        {"threads", ARG_INT, &threads, "compute threads (default: the CPUs this process may use)",
         0},
        CLI_DEVICE_OPTS(device),
        {"json", ARG_FLAG, &json, "print a JSON summary (needs --output)", 0},
    };
    int n_opts = (int)(sizeof opts / sizeof opts[0]);
    int rc = cli_parse(cmd, "--checkpoint PATH --input FILE [--output OUT]", opts, n_opts, argc,
                       argv, NULL, 0, NULL);
    if (rc) return rc == 1 ? 0 : rc;
    if (!ckpt) return cli_error(cmd, "--checkpoint PATH is required");
    if (!input) return cli_error(cmd, "--input FILE is required");
    if (batch <= 0) return cli_error(cmd, "--batch %d is invalid: it must be at least 1", batch);
    if (strcmp(kind, "probs") && strcmp(kind, "logits") && strcmp(kind, "class"))
        return cli_error(cmd, "--output-kind must be probs, logits or class, got '%s'", kind);
    if (output && !cli_ends_with(output, ".csv") && !cli_ends_with(output, ".npy"))
        return cli_error(cmd, "--output must end in .csv or .npy, got '%s'", output);
    if (json && !output) return cli_error(cmd, "--json needs --output (stdout carries the CSV)");

    bl_ctx ctx;
    if ((rc = cli_ctx_init(cmd, &ctx, threads, &device))) return rc;
    bl_error err = {0};
    bl_model *m = NULL;
    bl_norm norm;
    if (bl_checkpoint_load_model(&m, &norm, &ctx, ckpt, batch, &err))
        return bl_ctx_free(&ctx), cli_fail(cmd, "%s", err.msg);
    bl_dataset ds = {0};
    d.quiet = json;
    d.classes = BL_CLASSES_ANY; /* a --label-col column is read, then ignored */
    d.min_classes = 0;
    bl_status st = cli_load_inputs(&d, input, &ctx.mem, &ds, &err);
    if (!st) st = bl_model_check_input(m, ds.dim, ds.name, &err);
    int K = bl_model_output_dim(m);
    float *out = NULL;
    int64_t *cls = NULL;
    double t0 = bl_now_sec(), secs = 0;
    if (!st) {
        bl_norm_apply(&norm, &ds);
        out = bl_mem_alloc(&ctx.mem, ds.n * (size_t)K * sizeof(float) + 1, "predictions", &err);
        cls = bl_mem_alloc(&ctx.mem, ds.n * sizeof(int64_t) + 1, "predictions", &err);
        st = out && cls ? bl_model_predict(m, ds.x, ds.n, batch, out, &err) : BL_ERR_NOMEM;
        secs = bl_now_sec() - t0;
    }
    if (!st) {
        int is_class = !strcmp(kind, "class");
        transform(out, ds.n, K, kind, cls);
        int npy = output && cli_ends_with(output, ".npy");
        if (npy && is_class) /* integer classes, as np.argmax gives them */
            st = bl_npy_write_i64(output, cls, ds.n, 1, &err);
        else if (npy)
            st = bl_npy_write_f32(output, out, ds.n, (size_t)K, &err);
        else
            st = write_csv(output, is_class ? NULL : out, cls, ds.n, K, &err);
    }
    if (st) {
        rc = cli_fail(cmd, "%s", err.msg);
    } else if (json) {
        unsigned mark = bl_alloc_failures();
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "checkpoint", ckpt);
        cJSON_AddStringToObject(j, "input", input);
        cJSON_AddStringToObject(j, "output", output);
        cJSON_AddNumberToObject(j, "samples", (double)ds.n);
        cJSON_AddNumberToObject(j, "batch", batch);
        cJSON_AddNumberToObject(j, "seconds", secs);
        cJSON_AddNumberToObject(j, "samples_per_s", secs > 0 ? ds.n / secs : 0);
        rc = cli_print_json(cmd, j, mark);
        cJSON_Delete(j);
    } else if (output) {
        fprintf(stderr, "wrote %zu predictions to %s (%.0f samples/s)\n", ds.n, output,
                secs > 0 ? ds.n / secs : 0);
    }
    bl_mem_free(&ctx.mem, out);
    bl_mem_free(&ctx.mem, cls);
    bl_dataset_free(&ds, &ctx.mem);
    bl_norm_free(&norm, &ctx.mem);
    bl_model_free(m);
    bl_ctx_free(&ctx);
    return rc;
}
