/* The sweep's plots (through bl_plot): steps to target against B with the
 * fit and the perfect-scaling line, the examples/steps trade-off front,
 * time to target, the generalisation gap, the noise scale against B and over
 * training, and validation accuracy over training.
 *
 * Plots are evidence, not the result: when gnuplot is missing (or a figure
 * has no point to draw), the reason goes into r->plot_msg and the report
 * leaves those figures out, but the sweep still succeeds. A plot that could
 * not be written (a full disk, gnuplot failing, no memory for a series) is an
 * error, as for any other file: the sweep must not report success with
 * figures silently missing. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "batch/sweep_plots.h"
#include "batchlab/plot.h"
#include "core/alloc.h"

const char *const sweep_plot_names[SWEEP_N_PLOTS] = {
    "steps_vs_batch", "examples_vs_steps",   "time_vs_batch",        "gap_vs_batch",
    "noise_vs_batch", "noise_over_training", "val_acc_over_training"};

typedef struct best_points {
    int n;
    double B[BL_SWEEP_MAX_BATCHES], S[BL_SWEEP_MAX_BATCHES], E[BL_SWEEP_MAX_BATCHES];
    double train_s[BL_SWEEP_MAX_BATCHES], wall_s[BL_SWEEP_MAX_BATCHES], gap[BL_SWEEP_MAX_BATCHES];
    double est_s[BL_SWEEP_MAX_BATCHES];
    double noise[BL_SWEEP_MAX_BATCHES], lo[BL_SWEEP_MAX_BATCHES], hi[BL_SWEEP_MAX_BATCHES];
    double ema[BL_SWEEP_MAX_BATCHES];
    char label_buf[BL_SWEEP_MAX_BATCHES][24];
    const char *labels[BL_SWEEP_MAX_BATCHES];
    const bl_trial *t[BL_SWEEP_MAX_BATCHES];
} best_points;

static void collect(const bl_sweep_config *c, const bl_sweep_result *r, best_points *bp) {
    bp->n = 0;
    for (int i = 0; i < c->n_batches; i++) {
        if (r->best[i] < 0) continue;
        bp->t[bp->n++] = &r->trials[r->best[i]];
    }
    /* Ascending B, so lines join neighbours whatever order --batches gave. */
    for (int i = 1; i < bp->n; i++)
        for (int j = i; j > 0 && bp->t[j]->batch < bp->t[j - 1]->batch; j--) {
            const bl_trial *x = bp->t[j];
            bp->t[j] = bp->t[j - 1], bp->t[j - 1] = x;
        }
    for (int k = 0; k < bp->n; k++) {
        const bl_trial *t = bp->t[k];
        bp->B[k] = t->batch, bp->S[k] = (double)t->steps, bp->E[k] = (double)t->examples;
        bp->train_s[k] = t->train_s, bp->wall_s[k] = t->wall_s;
        bp->est_s[k] = NAN;
        for (int i = 0; i < c->n_batches; i++)
            if (r->best[i] >= 0 && &r->trials[r->best[i]] == t) bp->est_s[k] = r->est_train_s[i];
        bp->gap[k] = 100 * t->gen_gap;
        bp->noise[k] = t->noise_scale, bp->lo[k] = t->noise_lo, bp->hi[k] = t->noise_hi;
        bp->ema[k] = t->noise_ema;
        snprintf(bp->label_buf[k], sizeof bp->label_buf[k], "B=%d", t->batch);
        bp->labels[k] = bp->label_buf[k];
    }
}

/* Geometric grid over [lo, hi]. */
static void geom(double *x, int n, double lo, double hi) {
    for (int i = 0; i < n; i++)
        x[i] = lo * pow(hi / lo, (double)i / (n - 1));
}

static void min_max(const double *v, int n, double *lo, double *hi) {
    *lo = INFINITY, *hi = -INFINITY;
    for (int i = 0; i < n; i++)
        if (isfinite(v[i])) *lo = fmin(*lo, v[i]), *hi = fmax(*hi, v[i]);
}

enum { NF = 64 };

typedef struct plot_ctx {
    const bl_sweep_config *c;
    bl_sweep_result *r;
    int *drawn;
    bl_status st; /* the first failure to write a plot; the later ones are not drawn */
    bl_error *err;
} plot_ctx;

static void draw(plot_ctx *pc, int which, bl_plot *p) {
    char base[4096], rel[128];
    snprintf(rel, sizeof rel, "plots/%s", sweep_plot_names[which]);
    snprintf(base, sizeof base, "%s/%s", pc->c->out_dir, rel);
    if (pc->st || (pc->r->plot_msg[0] && strstr(pc->r->plot_msg, "gnuplot is not"))) return;
    bl_error e = {0};
    bl_status st = bl_plot_write(p, base, &e);
    if (st == BL_OK) {
        pc->drawn[which] = 1;
    } else if (st != BL_ERR_UNSUPPORTED && st != BL_ERR_ARG) {
        pc->st = st;
        if (pc->err) *pc->err = e;
    } else if (!pc->r->plot_msg[0]) {
        snprintf(pc->r->plot_msg, sizeof pc->r->plot_msg, "%.500s", e.msg);
    }
}

static void plot_steps(plot_ctx *pc, const best_points *bp) {
    const bl_sweep_result *r = pc->r;
    double bx[NF], fit[NF], perfect[NF];
    double lo = bp->B[0] / 1.5, hi = bp->B[bp->n - 1] * 1.5;
    geom(bx, NF, lo, hi);
    bl_plot_series s[4] = {
        {.title = "best trial at each batch size",
         .x = bp->B,
         .y = bp->S,
         .n = (size_t)bp->n,
         .style = BL_PLOT_POINTS},
    };
    int ns = 1;
    char fit_title[160], perfect_title[96];
    if (r->fit_ok) {
        for (int i = 0; i < NF; i++) {
            fit[i] = bl_bcrit_steps(&r->fit, bx[i]);
            perfect[i] = r->fit.e_min / bx[i];
        }
        snprintf(fit_title, sizeof fit_title, "fit S = %.0f (1 + %.0f/B)", r->fit.s_min,
                 r->fit.b_crit);
        snprintf(perfect_title, sizeof perfect_title, "perfect scaling S = E_min/B");
        s[ns++] = (bl_plot_series){
            .title = fit_title, .x = bx, .y = fit, .n = NF, .style = BL_PLOT_LINES};
        s[ns++] = (bl_plot_series){.title = perfect_title,
                                   .x = bx,
                                   .y = perfect,
                                   .n = NF,
                                   .style = BL_PLOT_LINES,
                                   .dashed = 1};
    }
    bl_plot p = {.title = "Steps to the target against batch size",
                 .xlabel = "batch size B",
                 .ylabel = "steps S to the target",
                 .logx = 1,
                 .logx2 = 1,
                 .logy = 1,
                 .series = s,
                 .n_series = ns};
    draw(pc, SWEEP_PLOT_STEPS, &p);
}

static void plot_front(plot_ctx *pc, const best_points *bp) {
    const bl_sweep_result *r = pc->r;
    double bx[NF], fs[NF], fe[NF];
    bl_plot_series s[2] = {{.title = "best trial at each batch size",
                            .x = bp->S,
                            .y = bp->E,
                            .n = (size_t)bp->n,
                            .style = BL_PLOT_LINESPOINTS,
                            .labels = bp->labels}};
    int ns = 1;
    if (r->fit_ok) {
        geom(bx, NF, bp->B[0] / 2, bp->B[bp->n - 1] * 2);
        for (int i = 0; i < NF; i++)
            fs[i] = bl_bcrit_steps(&r->fit, bx[i]), fe[i] = bl_bcrit_examples(&r->fit, bx[i]);
        s[ns++] = (bl_plot_series){.title = "fit: S/S_min - 1 = 1/(E/E_min - 1)",
                                   .x = fs,
                                   .y = fe,
                                   .n = NF,
                                   .style = BL_PLOT_LINES,
                                   .dashed = 1};
    }
    bl_plot p = {.title = "Examples against steps to the target (the trade-off front)",
                 .xlabel = "steps S",
                 .ylabel = "examples E",
                 .logx = 1,
                 .logy = 1,
                 .series = s,
                 .n_series = ns};
    draw(pc, SWEEP_PLOT_FRONT, &p);
}

static void plot_time(plot_ctx *pc, const best_points *bp) {
    bl_plot_series s[3] = {
        {.title = "estimated: S x median s/update of all trials at B",
         .x = bp->B,
         .y = bp->est_s,
         .n = (size_t)bp->n,
         .style = BL_PLOT_LINESPOINTS},
        {.title = "best trial, updates only",
         .x = bp->B,
         .y = bp->train_s,
         .n = (size_t)bp->n,
         .style = BL_PLOT_POINTS},
        {.title = "best trial, with evaluations",
         .x = bp->B,
         .y = bp->wall_s,
         .n = (size_t)bp->n,
         .style = BL_PLOT_LINESPOINTS,
         .dashed = 1},
    };
    bl_plot p = {.title = "Wall-clock time to the target against batch size",
                 .xlabel = "batch size B",
                 .ylabel = "seconds",
                 .logx = 1,
                 .logx2 = 1,
                 .logy = 1,
                 .series = s,
                 .n_series = 3};
    draw(pc, SWEEP_PLOT_TIME, &p);
}

static void plot_gap(plot_ctx *pc, const best_points *bp) {
    bl_plot_series s = {.title = "train accuracy - test accuracy",
                        .x = bp->B,
                        .y = bp->gap,
                        .n = (size_t)bp->n,
                        .style = BL_PLOT_LINESPOINTS};
    bl_plot p = {.title = "Generalisation gap at the target against batch size",
                 .xlabel = "batch size B",
                 .ylabel = "gap (percentage points)",
                 .logx = 1,
                 .logx2 = 1,
                 .series = &s,
                 .n_series = 1};
    draw(pc, SWEEP_PLOT_GAP, &p);
}

static void plot_noise_vs_batch(plot_ctx *pc, const best_points *bp) {
    const bl_sweep_result *r = pc->r;
    double bx[2] = {bp->B[0] / 1.5, bp->B[bp->n - 1] * 1.5}, bc[2];
    char conf[96];
    snprintf(conf, sizeof conf, "B_simple at the target (%d draws, 95%% interval)",
             pc->c->noise_draws);
    bl_plot_series s[3] = {
        {.title = conf,
         .x = bp->B,
         .y = bp->noise,
         .n = (size_t)bp->n,
         .ylo = bp->lo,
         .yhi = bp->hi},
        {.title = "B_simple EMA during training, at the end",
         .x = bp->B,
         .y = bp->ema,
         .n = (size_t)bp->n,
         .style = BL_PLOT_POINTS},
    };
    int ns = 2;
    char title[64];
    if (r->fit_ok) {
        bc[0] = bc[1] = r->fit.b_crit;
        snprintf(title, sizeof title, "fitted B_crit = %.0f", r->fit.b_crit);
        s[ns++] = (bl_plot_series){
            .title = title, .x = bx, .y = bc, .n = 2, .style = BL_PLOT_LINES, .dashed = 1};
    }
    bl_plot p = {.title = "Gradient noise scale at the target against batch size",
                 .xlabel = "batch size B of the trial",
                 .ylabel = "B_simple = tr(Sigma)/|G|^2",
                 .logx = 1,
                 .logx2 = 1,
                 .logy = 1,
                 .series = s,
                 .n_series = ns};
    draw(pc, SWEEP_PLOT_NOISE_B, &p);
}

/* One line per batch size over training: field 0 = noise EMA, 1 = validation accuracy. */
static void plot_history(plot_ctx *pc, const best_points *bp, int field) {
    const bl_sweep_result *r = pc->r;
    bl_plot_series s[BL_SWEEP_MAX_BATCHES + 1];
    double *xs[BL_SWEEP_MAX_BATCHES] = {0}, *ys[BL_SWEEP_MAX_BATCHES] = {0};
    int ns = 0;
    double xmin = INFINITY, xmax = 0;
    for (int k = 0; k < bp->n; k++) {
        const bl_trial *t = bp->t[k];
        if (t->n_hist == 0) continue;
        xs[k] = bl_malloc((size_t)t->n_hist * sizeof(double));
        ys[k] = bl_malloc((size_t)t->n_hist * sizeof(double));
        if (!xs[k] || !ys[k]) { /* a figure with a batch size missing would mislead */
            if (!pc->st)
                pc->st =
                    bl_fail(pc->err, BL_ERR_NOMEM, "%s/plots/%s: out of memory for a series",
                            pc->c->out_dir,
                            sweep_plot_names[field == 0 ? SWEEP_PLOT_NOISE_T : SWEEP_PLOT_VAL]);
            break;
        }
        for (int i = 0; i < t->n_hist; i++) {
            xs[k][i] = (double)t->hist[i].samples;
            ys[k][i] = field == 0 ? t->hist[i].noise_scale : t->hist[i].val_acc;
        }
        double a, b;
        min_max(xs[k], t->n_hist, &a, &b);
        xmin = fmin(xmin, a), xmax = fmax(xmax, b);
        s[ns++] = (bl_plot_series){.title = bp->labels[k],
                                   .x = xs[k],
                                   .y = ys[k],
                                   .n = (size_t)t->n_hist,
                                   .style = BL_PLOT_LINES};
    }
    double bx[2] = {xmin, xmax}, by[2];
    char title[64];
    if (field == 0 && r->fit_ok && ns > 0) {
        by[0] = by[1] = r->fit.b_crit;
        snprintf(title, sizeof title, "fitted B_crit = %.0f", r->fit.b_crit);
        s[ns++] = (bl_plot_series){
            .title = title, .x = bx, .y = by, .n = 2, .style = BL_PLOT_LINES, .dashed = 1};
    } else if (field == 1 && ns > 0) {
        by[0] = by[1] = pc->c->target_acc > 0 ? pc->c->target_acc : NAN;
        s[ns++] = (bl_plot_series){
            .title = "target", .x = bx, .y = by, .n = 2, .style = BL_PLOT_LINES, .dashed = 1};
    }
    bl_plot p = {.title = field == 0 ? "Gradient noise scale over training (trainer's EMA)"
                                     : "Validation accuracy over training",
                 .xlabel = "examples seen",
                 .ylabel = field == 0 ? "B_simple" : "validation accuracy",
                 .logx = 1,
                 .logy = field == 0,
                 .series = s,
                 .n_series = ns};
    if (ns > 0) draw(pc, field == 0 ? SWEEP_PLOT_NOISE_T : SWEEP_PLOT_VAL, &p);
    for (int k = 0; k < bp->n; k++)
        bl_free(xs[k]), bl_free(ys[k]);
}

bl_status sweep_draw_plots(const bl_sweep_config *c, bl_sweep_result *r, int drawn[SWEEP_N_PLOTS],
                           bl_error *err) {
    memset(drawn, 0, SWEEP_N_PLOTS * sizeof *drawn);
    r->plot_msg[0] = '\0';
    best_points *bp = bl_malloc(sizeof *bp);
    if (!bp) return bl_fail(err, BL_ERR_NOMEM, "%s/plots: out of memory", c->out_dir);
    collect(c, r, bp);
    plot_ctx pc = {.c = c, .r = r, .drawn = drawn, .err = err};
    if (bp->n > 0) {
        plot_steps(&pc, bp);
        plot_front(&pc, bp);
        plot_time(&pc, bp);
        plot_gap(&pc, bp);
        plot_noise_vs_batch(&pc, bp);
        plot_history(&pc, bp, 0);
        plot_history(&pc, bp, 1);
    } else {
        snprintf(r->plot_msg, sizeof r->plot_msg,
                 "no batch size reached the target, so there is "
                 "nothing to plot");
    }
    bl_free(bp);
    return pc.st;
}
