/* batchlab find: --memory (largest batch in a budget), --throughput (samples/s
 * against B and the knee) and --goodput (throughput x statistical efficiency
 * from the measured noise scale). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "args.h"
#include "cli.h"
#include "data_opts.h"
#include "batchlab/dist.h"
#include "batchlab/find.h"
#include "batchlab/plot.h"
#include "batchlab/train.h"
#include "core/alloc.h"
#include "io/json.h"

typedef struct find_opts {
    const char *model, *optimizer, *memory, *mode, *batches, *out, *device;
    int throughput, goodput, json, threads, max_batch, batch, runs, base_batch, noise_steps;
    double margin, min_run, noise_scale;
} find_opts;

static int run_memory(const char *cmd, find_opts *o, bl_shape in, int n_classes,
                      const bl_optim_config *opt, cJSON *j) {
    bl_find_memory_config c = {.spec = o->model,
                               .input = in,
                               .n_classes = n_classes,
                               .opt = *opt,
                               .margin = o->margin,
                               .max_batch = o->max_batch,
                               .threads = o->threads,
                               .device = o->device};
    if (cli_parse_bytes(o->memory, &c.budget_bytes))
        return cli_error(cmd, "--memory expects a size such as 512M, 2G or 1.5GiB, got '%s'",
                         o->memory);
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
        printf("memory budget %.1f MB, %.0f%% usable: %.1f MB\n", c.budget_bytes / 1e6,
               100 * (1 - c.margin), r.limit_bytes / 1e6);
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

/* Noise-scale trajectory from a short training run at the base batch. */
#define MAX_TRAJ 8
typedef struct noise_traj {
    long step[MAX_TRAJ];
    double b_noise[MAX_TRAJ];
    int n;
} noise_traj;

static int probe_noise(const char *cmd, find_opts *o, const bl_dataset *ds,
                       const bl_optim_config *opt, bl_ctx *ctx, noise_traj *tr) {
    bl_train_config c;
    bl_train_config_default(&c);
    c.spec = o->model;
    c.batch = o->base_batch;
    c.micro_batch = o->base_batch / 2;
    c.opt = *opt;
    c.lr = opt->kind == BL_OPT_SGD ? 0.05f : 1e-3f;
    c.noise = 1;
    bl_error err = {0};
    bl_trainer *t;
    if (bl_trainer_create(&t, ctx, &c, ds, &err)) return cli_fail(cmd, "%s", err.msg);
    bl_step_info si;
    int every = o->noise_steps / MAX_TRAJ > 0 ? o->noise_steps / MAX_TRAJ : 1;
    for (int s = 1; s <= o->noise_steps; s++) {
        if (bl_trainer_step(t, &si, &err)) {
            bl_trainer_free(t);
            return cli_fail(cmd, "%s", err.msg);
        }
        if (s % every == 0 && tr->n < MAX_TRAJ && isfinite(si.noise_scale)) {
            tr->step[tr->n] = s;
            tr->b_noise[tr->n++] = si.noise_scale;
        }
    }
    bl_trainer_free(t);
    if (!tr->n)
        return cli_fail(cmd, "the noise scale could not be measured in %d steps", o->noise_steps);
    return 0;
}

static void plot_curves(const char *cmd, const find_opts *o, const bl_throughput_curve *cv,
                        const noise_traj *tr) {
    if (!o->out) return;
    mkdir(o->out, 0755);
    double x[BL_FIND_MAX_POINTS], y[BL_FIND_MAX_POINTS], kx[1], ky[1];
    for (int i = 0; i < cv->n; i++)
        x[i] = cv->p[i].batch, y[i] = cv->p[i].samples_per_s;
    kx[0] = x[cv->knee], ky[0] = y[cv->knee];
    bl_plot_series s[1 + MAX_TRAJ] = {
        {.title = "training samples/s",
         .x = x,
         .y = y,
         .n = (size_t)cv->n,
         .style = BL_PLOT_LINESPOINTS},
        {.title = "knee (within 10% of the best)", .x = kx, .y = ky, .n = 1, .style = BL_PLOT_POINTS}};
    bl_plot p = {.title = "Throughput against batch size",
                 .xlabel = "batch size",
                 .ylabel = "samples/s",
                 .logx = 1,
                 .logx2 = 1,
                 .series = s,
                 .n_series = 2};
    char base[4096];
    bl_error err = {0};
    snprintf(base, sizeof base, "%s/throughput", o->out);
    if (bl_plot_write(&p, base, &err)) fprintf(stderr, "batchlab %s: warning: %s\n", cmd, err.msg);
    if (!tr || !tr->n) return;
    double gy[MAX_TRAJ][BL_FIND_MAX_POINTS];
    char titles[MAX_TRAJ][64];
    for (int k = 0; k < tr->n; k++) {
        for (int i = 0; i < cv->n; i++)
            gy[k][i] = cv->p[i].samples_per_s *
                       bl_efficiency(tr->b_noise[k], o->base_batch, cv->p[i].batch);
        snprintf(titles[k], sizeof titles[k], "step %ld, B_noise %.0f", tr->step[k],
                 tr->b_noise[k]);
        s[k] = (bl_plot_series){.title = titles[k],
                                .x = x,
                                .y = gy[k],
                                .n = (size_t)cv->n,
                                .style = BL_PLOT_LINESPOINTS};
    }
    bl_plot g = {.title = "Goodput = throughput x efficiency, as the noise scale grows",
                 .xlabel = "batch size",
                 .ylabel = "goodput (base-batch-equivalent samples/s)",
                 .logx = 1,
                 .logx2 = 1,
                 .series = s,
                 .n_series = tr->n};
    snprintf(base, sizeof base, "%s/goodput", o->out);
    if (bl_plot_write(&g, base, &err)) fprintf(stderr, "batchlab %s: warning: %s\n", cmd, err.msg);
}

static int run_throughput(const char *cmd, find_opts *o, const bl_dataset *ds,
                          const bl_optim_config *opt, bl_ctx *ctx, cJSON *j) {
    int batches[BL_FIND_MAX_POINTS], n = 0, world = bl_dist_size(ctx->dist);
    if (o->batches) {
        if (cli_parse_list(cmd, "--batches", o->batches, 1, batches, NULL, BL_FIND_MAX_POINTS, &n))
            return 2;
        for (int i = 1; i < n; i++)
            if (batches[i] <= batches[i - 1])
                return cli_error(cmd, "--batches must be ascending, got '%s'", o->batches);
    } else {
        int cap = o->max_batch > 0 ? o->max_batch : 4096;
        for (int b = world; b <= cap && (size_t)b <= ds->n && n < BL_FIND_MAX_POINTS; b *= 2)
            batches[n++] = b;
    }
    for (int i = 0; i < n; i++)
        if ((size_t)batches[i] > ds->n)
            return cli_error(cmd, "batch %d in --batches exceeds the %zu training samples",
                             batches[i], ds->n);
        else if (batches[i] % world)
            return cli_error(cmd, "batch %d in --batches is not a multiple of the %d ranks",
                             batches[i], world);
    if (o->goodput && o->base_batch > batches[n - 1])
        return cli_error(cmd, "--base-batch %d is above the largest batch measured (%d)",
                         o->base_batch, batches[n - 1]);
    bl_throughput_curve cv;
    bl_error err = {0};
    if (!o->json) fprintf(stderr, "measuring throughput at %d batch sizes...\n", n);
    if (bl_find_throughput(o->model, ds, opt, batches, n, 2, o->runs, o->min_run, ctx, &cv, &err))
        return cli_fail(cmd, "%s", err.msg);
    noise_traj tr = {0};
    if (o->goodput) {
        if (o->noise_scale > 0) {
            tr.step[0] = 0, tr.b_noise[0] = o->noise_scale, tr.n = 1;
        } else {
            if (!o->json)
                fprintf(stderr, "measuring the gradient noise scale over %d steps at batch %d...\n",
                        o->noise_steps, o->base_batch);
            int rc = probe_noise(cmd, o, ds, opt, ctx, &tr);
            if (rc) return rc;
        }
    }
    cJSON *arr = cJSON_AddArrayToObject(j, "throughput");
    double b_noise = tr.n ? tr.b_noise[tr.n - 1] : NAN;
    double g_best = 0;
    int best = tr.n ? bl_goodput_best(&cv, b_noise, o->base_batch, &g_best) : -1;
    if (!o->json)
        printf("%8s %12s %10s%s%s\n", "batch", "samples/s", "step ms", world > 1 ? "    comm ms" : "",
               tr.n ? "  efficiency     goodput" : "");
    for (int i = 0; i < cv.n; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "batch", cv.p[i].batch);
        cJSON_AddNumberToObject(e, "samples_per_s", cv.p[i].samples_per_s);
        cJSON_AddNumberToObject(e, "comm_s", cv.p[i].comm_s);
        double eff = tr.n ? bl_efficiency(b_noise, o->base_batch, cv.p[i].batch) : NAN;
        if (tr.n) {
            cJSON_AddNumberToObject(e, "efficiency", eff);
            cJSON_AddNumberToObject(e, "goodput", eff * cv.p[i].samples_per_s);
        }
        bl_json_append(arr, e);
        if (o->json) continue;
        printf("%8d %12.0f %10.3f", cv.p[i].batch, cv.p[i].samples_per_s, cv.p[i].step_s * 1e3);
        if (world > 1) printf(" %10.3f", cv.p[i].comm_s * 1e3);
        if (tr.n) printf("  %10.3f %11.0f", eff, eff * cv.p[i].samples_per_s);
        printf("%s%s\n", i == cv.knee ? "  <- knee" : "", i == best ? "  <- best goodput" : "");
    }
    cJSON_AddNumberToObject(j, "knee_batch", cv.p[cv.knee].batch);
    if (!o->json)
        printf("knee: batch %d (the smallest within %.0f%% of the best throughput, %.0f samples/s)\n",
               cv.p[cv.knee].batch, BL_KNEE_TOL * 100, cv.p[cv.knee].samples_per_s);
    if (!o->json && world > 1)
        printf("global batches over %d ranks; each step waits %.1f to %.1f ms on the network, a "
               "cost that does not grow with the batch, so a slower link moves the knee up\n",
               world, cv.p[0].comm_s * 1e3, cv.p[cv.n - 1].comm_s * 1e3);
    if (tr.n) {
        cJSON *g = cJSON_AddObjectToObject(j, "goodput");
        cJSON_AddNumberToObject(g, "base_batch", o->base_batch);
        cJSON_AddNumberToObject(g, "noise_scale", b_noise);
        cJSON_AddNumberToObject(g, "batch", cv.p[best].batch);
        cJSON_AddNumberToObject(g, "goodput", g_best);
        cJSON *path = cJSON_AddArrayToObject(g, "as_noise_grows");
        if (!o->json)
            printf(
                "goodput-optimal batch %d at noise scale %.0f (efficiency relative to batch %d)\n",
                cv.p[best].batch, b_noise, o->base_batch);
        for (int k = 0; k < tr.n; k++) {
            int bk = bl_goodput_best(&cv, tr.b_noise[k], o->base_batch, NULL);
            cJSON *e = cJSON_CreateObject();
            cJSON_AddNumberToObject(e, "step", (double)tr.step[k]);
            cJSON_AddNumberToObject(e, "noise_scale", tr.b_noise[k]);
            cJSON_AddNumberToObject(e, "batch", cv.p[bk].batch);
            bl_json_append(path, e);
            if (!o->json && tr.n > 1)
                printf("  at step %-5ld noise scale %8.1f -> best batch %d\n", tr.step[k],
                       tr.b_noise[k], cv.p[bk].batch);
        }
    }
    plot_curves(cmd, o, &cv, &tr);
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
         "find the largest batch within this budget (512M, 2G, 1.5GiB)", 0},
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
        {"threads", ARG_INT, &o.threads, "compute threads (default: the CPUs this process may use)", 0},
        CLI_DEVICE_OPT(o.device),
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
    if ((rc = cli_ctx_init(cmd, &ctx, o.threads, o.device))) return rc;
    /* Under mpirun, --throughput measures the data-parallel step: network included. */
    bl_dist *dist = NULL;
    if (o.throughput && bl_dist_init(&dist, &err)) return cli_fail(cmd, "%s", err.msg);
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
        return cli_fail(cmd, "%s", err.msg);
    }
    bl_norm_apply(&norm, &ds);
    unsigned mark = bl_alloc_failures();
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "model", o.model);
    if (o.memory) rc = run_memory(cmd, &o, ds.shape, ds.n_classes, &opt, j);
    if (!rc && o.throughput) rc = run_throughput(cmd, &o, &ds, &opt, &ctx, j);
    if (!rc && o.json) rc = cli_print_json(cmd, j, mark);
    cJSON_Delete(j);
    bl_norm_free(&norm, &ctx.mem);
    bl_dataset_free(&ds, &ctx.mem);
    bl_dist_finalize(dist);
    return rc;
}
