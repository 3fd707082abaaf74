/* batchlab find --throughput and --goodput (see find_opts.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "args.h"
#include "find_opts.h"
#include "batchlab/dist.h"
#include "batchlab/find.h"
#include "batchlab/plot.h"
#include "batchlab/run.h"
#include "batchlab/train.h"
#include "core/alloc.h"
#include "io/json.h"

/* Noise-scale trajectory from a short training run at the base batch. */
#define MAX_TRAJ 8
typedef struct noise_traj {
    long step[MAX_TRAJ];
    double b_noise[MAX_TRAJ];
    int n;
} noise_traj;

typedef struct noise_probe {
    noise_traj *tr;
    int every;
} noise_probe;

/* Every `every` updates, the trainer's noise scale (when it has one yet). */
static bl_status record_noise(void *user, const bl_run_event *e, bl_error *err) {
    noise_probe *p = user;
    (void)err;
    if (e->kind != BL_RUN_STEP) return BL_OK;
    const bl_step_info *si = e->step;
    if (si->step % p->every == 0 && p->tr->n < MAX_TRAJ && isfinite(si->noise_scale)) {
        p->tr->step[p->tr->n] = si->step;
        p->tr->b_noise[p->tr->n++] = si->noise_scale;
    }
    return BL_OK;
}

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
    noise_probe p = {.tr = tr,
                     .every = o->noise_steps / MAX_TRAJ > 0 ? o->noise_steps / MAX_TRAJ : 1};
    bl_run_config rc;
    bl_run_config_default(&rc);
    rc.steps = o->noise_steps;
    rc.on_event = record_noise, rc.user = &p;
    bl_run_result r;
    if (bl_run(t, &rc, &r, &err)) {
        bl_trainer_free(t);
        return cli_fail(cmd, "%s", err.msg);
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
    bl_plot_series s[1 + MAX_TRAJ] = {{.title = "training samples/s",
                                       .x = x,
                                       .y = y,
                                       .n = (size_t)cv->n,
                                       .style = BL_PLOT_LINESPOINTS},
                                      {.title = "knee (within 10% of the best)",
                                       .x = kx,
                                       .y = ky,
                                       .n = 1,
                                       .style = BL_PLOT_POINTS}};
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

int find_run_throughput(const char *cmd, find_opts *o, const bl_dataset *ds,
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
        printf("%8s %12s %10s%s%s\n", "batch", "samples/s", "step ms",
               world > 1 ? "    comm ms" : "", tr.n ? "  efficiency     goodput" : "");
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
        printf(
            "knee: batch %d (the smallest within %.0f%% of the best throughput, %.0f samples/s)\n",
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
