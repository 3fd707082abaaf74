/* batchlab find: --memory (largest batch in a budget), --throughput (samples/s
 * against B and the knee) and --goodput (throughput x statistical efficiency
 * from the measured noise scale). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "args.h"
#include "cli.h"
#include "data_opts.h"
#include "batchlab/dist.h"
#include "batchlab/find.h"
#include "batchlab/plot.h"
#include "batchlab/train.h"
#include "core/alloc.h"
#include "io/json.h"

#include "find_opts.h"

static int run_memory(const char *cmd, find_opts *o, bl_shape in, int n_classes,
                      const bl_optim_config *opt, cJSON *j) {
    bl_find_memory_config c = {.spec = o->model,
                               .input = in,
                               .n_classes = n_classes,
                               .opt = *opt,
                               .margin = o->margin,
                               .max_batch = o->max_batch,
                               .threads = o->threads,
                               .device = o->device.name};
    char where[300] = "";
    if (!strcmp(o->memory, "auto")) {
        bl_error err = {0};
        if (bl_device_free_bytes(o->device.name, &c.budget_bytes, where, sizeof where, &err))
            return cli_fail(cmd, "--memory auto: %s", err.msg);
    } else if (cli_parse_bytes(o->memory, &c.budget_bytes)) {
        return cli_error(cmd,
                         "--memory expects a size such as 512M, 2G or 1.5GiB, or auto, got '%s'",
                         o->memory);
    }
    if (!strcmp(o->mode, "power"))
        c.mode = BL_FIND_POWER;
    else if (!strcmp(o->mode, "binsearch"))
        c.mode = BL_FIND_BINSEARCH;
    else
        return cli_error(cmd, "--mode must be power or binsearch, got '%s'", o->mode);
    if (!(o->margin >= 0 && o->margin < 1))
        return cli_error(cmd, "--margin %g must be in [0, 1)", o->margin);
    bl_find_memory_result r;
    bl_error err = {0};
    if (bl_find_memory(&c, &r, &err)) return cli_fail(cmd, "%s", err.msg);
    int micro = o->batch > 0 ? bl_find_micro_batch(o->batch, r.found) : 0;
    if (!o->json) {
        printf("memory budget %.1f MB%s%s%s, %.0f%% usable: %.1f MB\n", c.budget_bytes / 1e6,
               *where ? " (" : "", where, *where ? ")" : "", 100 * (1 - c.margin),
               r.limit_bytes / 1e6);
        printf("footprint     %.2f MB + %.3f MB per sample (parameters, gradients, optimizer "
               "state, activations, workspace, input buffers)\n",
               r.fixed_bytes / 1e6, r.per_sample_bytes / 1e6);
        printf("model says    batch %d%s\n", r.predicted,
               r.capped ? " (capped by --max-batch)" : "");
        for (int i = 0; i < r.n_trials; i++)
            printf("  trial       batch %-7d %-6s predicted %.1f MB%s\n", r.trials[i].batch,
                   r.trials[i].fits ? "fits" : "fails", r.trials[i].bytes / 1e6,
                   r.trials[i].fits ? "" : " (allocation refused by the budget)");
        printf("largest batch %d (%s mode)\n", r.found, o->mode);
        if (o->batch > 0 && micro)
            printf(
                "batch %d does not fit: use --batch %d --micro-batch %d (%d accumulation steps)\n",
                o->batch, o->batch, micro, o->batch / micro);
        else if (o->batch > 0)
            printf("batch %d fits as one micro-batch\n", o->batch);
    }
    cJSON *m = cJSON_AddObjectToObject(j, "memory");
    cJSON_AddNumberToObject(m, "budget_bytes", (double)c.budget_bytes);
    if (*where) cJSON_AddStringToObject(m, "budget_source", where);
    cJSON_AddNumberToObject(m, "usable_bytes", (double)r.limit_bytes);
    cJSON_AddNumberToObject(m, "fixed_bytes", (double)r.fixed_bytes);
    cJSON_AddNumberToObject(m, "per_sample_bytes", (double)r.per_sample_bytes);
    cJSON_AddNumberToObject(m, "predicted", r.predicted);
    cJSON_AddNumberToObject(m, "batch", r.found);
    cJSON_AddBoolToObject(m, "capped", r.capped);
    cJSON *tr = cJSON_AddArrayToObject(m, "trials");
    for (int i = 0; i < r.n_trials; i++) {
        cJSON *t = cJSON_CreateObject();
        cJSON_AddNumberToObject(t, "batch", r.trials[i].batch);
        cJSON_AddBoolToObject(t, "fits", r.trials[i].fits);
        cJSON_AddNumberToObject(t, "predicted_bytes", (double)r.trials[i].bytes);
        bl_json_append(tr, t);
    }
    if (o->batch > 0) {
        cJSON_AddNumberToObject(m, "requested_batch", o->batch);
        cJSON_AddNumberToObject(m, "micro_batch", micro ? micro : o->batch);
        cJSON_AddNumberToObject(m, "accumulation_steps", micro ? o->batch / micro : 1);
    }
    if (o->max_batch <= 0 || r.found < o->max_batch) o->max_batch = r.found; /* bound the others */
    return 0;
}

int cli_find(int argc, char **argv) {
    const char *cmd = "find";
    cli_data_opts d;
    cli_data_opts_default(&d);
    find_opts o = {.model = "mlp",
                   .optimizer = "momentum",
                   .mode = "binsearch",
                   .margin = 0.1,
                   .runs = 3,
                   .min_run = 0.3,
                   .base_batch = 64,
                   .noise_steps = 200};
    cli_opt opts[] = {
        {"model", ARG_STR, &o.model, "model spec or preset (default mlp)", 0},
        {"optimizer", ARG_STR, &o.optimizer, "optimizer whose state counts (default momentum)", 0},
        {"memory", ARG_STR, &o.memory,
         "find the largest batch within this budget (512M, 2G, 1.5GiB; auto: what the "
         "device has free now, the GPU's memory with --device cuda)",
         0},
        {"margin", ARG_DOUBLE, &o.margin, "fraction of the budget kept free (default 0.1)", 0},
        {"mode", ARG_STR, &o.mode, "memory search: binsearch (exact, default) or power (of two)",
         0},
        {"max-batch", ARG_INT, &o.max_batch, "never answer more than this", 0},
        {"batch", ARG_INT, &o.batch,
         "memory: the total batch you want; proposes micro-batch x accumulation", 0},
        {"throughput", ARG_FLAG, &o.throughput,
         "measure samples/s against batch size and find the knee", 0},
        {"goodput", ARG_FLAG, &o.goodput, "find the goodput-optimal batch (implies --throughput)",
         0},
        {"batches", ARG_STR, &o.batches, "batch sizes to measure (default powers of two)", 0},
        {"runs", ARG_INT, &o.runs, "timed runs per batch size, median kept (default 3)", 0},
        {"min-run", ARG_DOUBLE, &o.min_run, "seconds per timed run (default 0.3)", 0},
        {"base-batch", ARG_INT, &o.base_batch,
         "goodput: base batch M0 of the efficiency (default 64)", 0},
        {"noise-steps", ARG_INT, &o.noise_steps,
         "goodput: steps of the noise-scale probe (default 200)", 0},
        {"noise-scale", ARG_DOUBLE, &o.noise_scale,
         "goodput: use this noise scale instead of probing", 0},
        CLI_DATA_OPTS(d),
        CLI_CLASSES_OPT(d),
        {"norm", ARG_STR, &d.norm,
         "input normalisation: auto (default: standard for tabular data, unit for images), "
         "standard, unit, none",
         0},
        {"out", ARG_STR, &o.out, "write throughput/goodput plots (PNG, SVG) into this folder", 0},
        {"threads", ARG_INT, &o.threads, "compute threads (default: the CPUs this process may use)",
         0},
        CLI_DEVICE_OPTS(o.device),
        {"json", ARG_FLAG, &o.json, "print the result as JSON", 0},
    };
    int n_opts = (int)(sizeof opts / sizeof opts[0]);
    int rc = cli_parse(cmd, "--memory SIZE | --throughput | --goodput [options]", opts, n_opts,
                       argc, argv, NULL, 0, NULL);
    if (rc) return rc == 1 ? 0 : rc;
    if (o.goodput) o.throughput = 1;
    if (!o.memory && !o.throughput)
        return cli_error(cmd, "say what to find: --memory SIZE, --throughput or --goodput");
    if (o.runs < 1 || o.runs > 16) return cli_error(cmd, "--runs must be between 1 and 16");
    if (o.base_batch < 2) return cli_error(cmd, "--base-batch must be at least 2");
    if (o.noise_steps < 1) return cli_error(cmd, "--noise-steps must be at least 1");
    bl_error err = {0};
    bl_optim_config opt;
    if (bl_optim_parse(&opt, o.optimizer, &err)) return cli_error(cmd, "--optimizer: %s", err.msg);
    bl_ctx ctx;
    if ((rc = cli_ctx_init(cmd, &ctx, o.threads, &o.device))) return rc;
    /* Under mpirun, --throughput measures the data-parallel step: network included. */
    bl_dist *dist = NULL;
    if (o.throughput && bl_dist_init(&dist, &err))
        return bl_ctx_free(&ctx), cli_fail(cmd, "%s", err.msg);
    ctx.dist = dist;
    if (bl_dist_rank(dist) != 0) { /* rank 0 reports */
        cli_set_silent(1);
        o.out = NULL;
        if (!freopen("/dev/null", "w", stdout)) o.json = 1;
    }
    bl_dataset ds = {0};
    bl_norm norm = {0};
    d.quiet = o.json;
    if (cli_load_dataset(&d, d.data, d.labels, "train", &ctx.mem, &ds, &err) ||
        cli_fit_norm(&d, &ctx.mem, &ds, &norm, &err)) {
        bl_dataset_free(&ds, &ctx.mem);
        bl_dist_finalize(dist);
        bl_ctx_free(&ctx);
        return cli_fail(cmd, "%s", err.msg);
    }
    bl_norm_apply(&norm, &ds);
    unsigned mark = bl_alloc_failures();
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "model", o.model);
    if (o.memory) rc = run_memory(cmd, &o, ds.shape, ds.n_classes, &opt, j);
    if (!rc && o.throughput) rc = find_run_throughput(cmd, &o, &ds, &opt, &ctx, j);
    if (!rc && o.json) rc = cli_print_json(cmd, j, mark);
    cJSON_Delete(j);
    bl_norm_free(&norm, &ctx.mem);
    bl_dataset_free(&ds, &ctx.mem);
    bl_dist_finalize(dist);
    bl_ctx_free(&ctx);
    return rc;
}
