/* The sweep's report for a person: report.md, and report.html made from it
 * (bl_markdown_to_html), both written atomically.
 *
 * Order matters: the recommendation comes first (which batch size, which
 * learning rate, and why), then the evidence behind it: the fit and its
 * regimes, the noise scale set against B_crit, the per-batch-size table, the
 * plots, every trial, and finally the method and settings, so the numbers can
 * be checked and the run repeated. */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "batch/sweep_report.h"
#include "batch/sweep_store.h"
#include "batch/sweep_plots.h"
#include "batchlab/io.h"
#include "batchlab/markdown.h"
#include "core/alloc.h"
#include "core/sort.h"

static void num(FILE *o, double v, const char *fmt) {
    if (isfinite(v))
        fprintf(o, fmt, v);
    else
        fputs("–", o);
}

static const char *rule_name(bl_lr_scale_rule r) {
    return r == BL_LR_SCALE_LINEAR ? "linearly" : r == BL_LR_SCALE_SQRT ? "square-root" : "un";
}

static const char *optimizer_text(const bl_optim_config *o, char *buf, size_t cap) {
    if (o->kind == BL_OPT_SGD && o->momentum > 0)
        snprintf(buf, cap, "SGD with %smomentum %g", o->nesterov ? "Nesterov " : "",
                 (double)o->momentum);
    else
        snprintf(buf, cap, "%s", o->kind == BL_OPT_SGD ? "plain SGD" : bl_optim_name(o));
    if (o->weight_decay > 0)
        snprintf(buf + strlen(buf), cap - strlen(buf), ", weight decay %g",
                 (double)o->weight_decay);
    return buf;
}

static const char *target_text(const bl_sweep_config *c, char *buf, size_t cap) {
    if (c->target_acc > 0)
        snprintf(buf, cap, "validation accuracy %.4g", c->target_acc);
    else
        snprintf(buf, cap, "validation loss %.4g", c->target_loss);
    return buf;
}

static double est_of(const bl_sweep_config *c, const bl_sweep_result *r, int k) {
    for (int i = 0; i < c->n_batches; i++)
        if (r->best[i] == k) return r->est_train_s[i];
    return NAN;
}

static int grid_edge(const bl_sweep_config *c, double mult) {
    if (c->n_lr_mults < 2) return 0;
    double lo = INFINITY, hi = 0;
    for (int i = 0; i < c->n_lr_mults; i++)
        lo = fmin(lo, c->lr_mults[i]), hi = fmax(hi, c->lr_mults[i]);
    return mult == lo ? -1 : mult == hi ? 1 : 0;
}

static void recommendation(FILE *o, const bl_sweep_config *c, const sweep_data_info *di,
                           const bl_sweep_result *r) {
    char tb[96];
    fputs("## Recommendation\n\n", o);
    if (r->recommended < 0) {
        fprintf(o,
                "**No batch size reached the target** (%s) within %g epochs. Lower the target, "
                "raise `--max-epochs`, or check the learning rate: the per-trial table below says "
                "how far each trial got and whether it diverged.\n\n",
                target_text(c, tb, sizeof tb), c->max_epochs);
        return;
    }
    const bl_trial *t = &r->trials[r->recommended];
    const bl_train_config *tc = &c->train;
    char ot[96], est[32], took[32];
    fprintf(o,
            "**Use batch size %d with learning rate %.4g** (%s; that is %g x the %s-scaled "
            "rate from %g at batch %d).\n\n",
            t->batch, (double)t->lr, optimizer_text(&tc->opt, ot, sizeof ot), t->lr_mult,
            rule_name(tc->lr_scale), (double)tc->lr, tc->base_batch);
    fprintf(o,
            "Why: of all batch sizes it reaches the target (%s) in the least training time on "
            "this machine, about %s (its %ld steps times the median time per update of the "
            "trials at this batch size; the best trial itself took %s): %ld examples, %.2f "
            "epochs. Test accuracy at that point: ",
            target_text(c, tb, sizeof tb),
            bl_format_seconds(est, sizeof est, est_of(c, r, r->recommended)), t->steps,
            bl_format_seconds(took, sizeof took, t->train_s), t->examples,
            (double)t->examples / (double)di->n_train);
    num(o, t->test_acc, "%.4f");
    fputs(".\n\n", o);
    if (r->fit_ok) {
        double bc = r->fit.b_crit, B = t->batch;
        bl_regime g = bl_bcrit_regime(B, bc);
        fprintf(o,
                "The fitted critical batch size is **B_crit = %.0f** (R^2 = %.3f), so batch %d "
                "is in the *%s* regime. ",
                bc, r->fit.r2, t->batch, bl_regime_name(g));
        if (g == BL_REGIME_PERFECT)
            fprintf(o,
                    "Larger batches would still cut the steps almost in proportion: on hardware "
                    "whose throughput keeps growing with the batch (a GPU, several processes), "
                    "raise it towards B_crit, where training takes 2 S_min = %.0f steps and "
                    "2 E_min = %.0f examples. Here the CPU's throughput stops growing first, which "
                    "is why a smaller batch wins on the clock.\n\n",
                    2 * r->fit.s_min, 2 * r->fit.e_min);
        else if (g == BL_REGIME_DIMINISHING)
            fprintf(o,
                    "That is near the balance between steps and examples: along the fitted "
                    "curve, halving the batch to %d means %.0f steps instead of %.0f (for %.0f "
                    "examples instead of %.0f), and doubling it to %d means %.0f steps (for %.0f "
                    "examples).\n\n",
                    t->batch / 2, bl_bcrit_steps(&r->fit, B / 2), bl_bcrit_steps(&r->fit, B),
                    bl_bcrit_examples(&r->fit, B / 2), bl_bcrit_examples(&r->fit, B), t->batch * 2,
                    bl_bcrit_steps(&r->fit, 2 * B), bl_bcrit_examples(&r->fit, 2 * B));
        else
            fprintf(o,
                    "Beyond 4 B_crit extra batch buys few steps (S_min = %.0f is the floor) and "
                    "costs examples nearly in proportion; it wins here only because larger "
                    "batches run faster per example on this machine.\n\n",
                    r->fit.s_min);
    } else {
        fprintf(o,
                "No critical batch size could be fitted (%s), so this rests on the measured "
                "times alone.\n\n",
                r->fit_msg);
    }
    int edge = grid_edge(c, t->lr_mult);
    if (edge)
        fprintf(o,
                "Note: its best learning rate is at the %s end of the grid (x%g), so a %s rate "
                "may be faster still; widen `--lr-grid`.\n\n",
                edge < 0 ? "low" : "high", t->lr_mult, edge < 0 ? "lower" : "higher");
}

/* S is only known to within the evaluation interval before it; say where that is coarse. */
static void resolution_note(FILE *o, const bl_sweep_config *c, const bl_sweep_result *r) {
    int coarse = 0;
    for (int i = 0; i < c->n_batches; i++) {
        const bl_trial *t = r->best[i] >= 0 ? &r->trials[r->best[i]] : NULL;
        if (t && t->steps_res > 1 && 10 * t->steps_res > t->steps) coarse++;
    }
    if (coarse)
        fprintf(o,
                "**Resolution:** at %d batch size%s the target was crossed somewhere in the last "
                "evaluation interval, more than 10%% of S (see *S resolved to* below), which "
                "bounds how well the points can fit; a smaller `--eval-every-samples` checks "
                "more often.\n\n",
                coarse, coarse > 1 ? "s" : "");
}

static void fit_section(FILE *o, const bl_sweep_config *c, const bl_sweep_result *r) {
    fputs("## Critical batch size\n\n", o);
    if (!r->fit_ok) {
        fprintf(o, "No fit: %s\n\n", r->fit_msg);
        resolution_note(o, c, r);
        return;
    }
    const bl_bcrit *f = &r->fit;
    fprintf(
        o,
        "Least squares of 1/S on 1/E over the best trial of each batch size that reached "
        "the target (%d points), from S = S_min (1 + B_crit/B) and E = E_min (1 + B/B_crit):\n\n",
        f->n);
    fprintf(o,
            "| B_crit | 95%% interval | S_min (steps) | E_min (examples) | R^2 (1/S on 1/E) | "
            "R^2 (log S) |\n|---|---|---|---|---|---|\n| %.0f | ",
            f->b_crit);
    if (isfinite(r->b_crit_lo))
        fprintf(o, "%.0f to %.0f", r->b_crit_lo, r->b_crit_hi);
    else
        fputs("–", o);
    fprintf(o, " | %.0f | %.0f | %.4f | %.4f |\n\n", f->s_min, f->e_min, f->r2, f->r2_log_steps);
    if (isfinite(r->b_crit_lo))
        fputs("The interval is a bootstrap over the batch sizes (the points are resampled and "
              "refitted), so it reflects how much the scatter of the points moves B_crit.\n\n",
              o);
    if (f->r2 < 0.9)
        fprintf(o,
                "The line fits loosely (R^2 %.2f). Each point is one run: its step count is "
                "where validation accuracy first crossed the target, which an upward "
                "fluctuation can bring forward, and among the small batch sizes, where E "
                "should be nearly constant, that scatter moves 1/E a lot. The curve S(B) "
                "itself follows the points better (R^2 of log S %.2f).\n\n",
                f->r2, f->r2_log_steps);
    resolution_note(o, c, r);
    const char *desc[3] = {"B < B_crit/4: doubling B nearly halves the steps",
                           "B_crit/4 <= B <= 4 B_crit: each doubling buys less",
                           "B > 4 B_crit: the steps barely fall, examples grow with B"};
    for (int g = 0; g < 3; g++) {
        fprintf(o, "- **%s** (%s):", bl_regime_name((bl_regime)g), desc[g]);
        int any = 0;
        for (int i = 0; i < c->n_batches; i++)
            if ((int)bl_bcrit_regime(c->batches[i], f->b_crit) == g)
                fprintf(o, "%s %d", any++ ? "," : "", c->batches[i]);
        fputs(any ? "\n" : " none of the batch sizes swept\n", o);
    }
    fputs("\n", o);
}

static void noise_section(FILE *o, const bl_sweep_config *c, const bl_sweep_result *r) {
    double v[BL_SWEEP_MAX_BATCHES];
    int n = 0;
    for (int i = 0; i < c->n_batches; i++)
        if (r->best[i] >= 0 && isfinite(r->trials[r->best[i]].noise_scale))
            v[n++] = r->trials[r->best[i]].noise_scale;
    fputs("## Noise scale against the critical batch size\n\n", o);
    if (n == 0) {
        fputs("The gradient noise scale was not measured at the target (`--noise-draws 0`, or no "
              "trial reached it).\n\n",
              o);
        return;
    }
    qsort(v, (size_t)n, sizeof *v, bl_cmp_double);
    double med = n % 2 ? v[n / 2] : sqrt(v[n / 2 - 1] * v[n / 2]);
    fprintf(o,
            "The simple noise scale B_simple = tr(Sigma)/|G|^2 measured at the weights where "
            "each batch size reached the target (%d random batches of %d, small batch %d) ranges "
            "from %.0f to %.0f, median **%.0f**.",
            c->noise_draws, c->noise_big, c->noise_small, v[0], v[n - 1], med);
    if (r->fit_ok) {
        double ratio = r->fit.b_crit / med;
        fprintf(o,
                " The fitted B_crit is %.0f, **%.2g x** the median noise scale. McCandlish et "
                "al. (2018) found that the noise scale predicts the critical batch size to within "
                "about an order of magnitude; here it %s.",
                r->fit.b_crit, ratio,
                ratio >= 0.1 && ratio <= 10 ? "does (within a factor of 10)"
                                            : "does not (the two differ by more than 10x)");
    }
    fputs(" B_simple ignores the curvature (it is B_noise with the Hessian taken as the "
          "identity), and it grows as the loss falls, so the comparison is at the target, where "
          "B_crit is defined.",
          o);
    double e[BL_SWEEP_MAX_BATCHES];
    int ne = 0;
    for (int i = 0; i < c->n_batches; i++)
        if (r->best[i] >= 0 && isfinite(r->trials[r->best[i]].noise_ema))
            e[ne++] = r->trials[r->best[i]].noise_ema;
    if (ne > 0) {
        qsort(e, (size_t)ne, sizeof *e, bl_cmp_double);
        double emed = ne % 2 ? e[ne / 2] : sqrt(e[ne / 2 - 1] * e[ne / 2]);
        fprintf(o,
                " The trainer's running estimate at the end of training (median %.0f over the %d "
                "batch sizes where it was resolved) %s: it smooths the last ~%.0f measurements, "
                "taken at earlier weights, each from one batch of B, which is "
                "noisy; the measurement at fixed weights is the one compared.",
                emed, ne, emed < med ? "reads lower" : "agrees or reads higher",
                1 / (1 - c->train.noise_decay));
    }
    fputs("\n\n", o);
}

static void best_table(FILE *o, const bl_sweep_config *c, const bl_sweep_result *r) {
    fputs("## Each batch size at its best learning rate\n\n", o);
    fputs("| B | lr (x grid) | steps S | S resolved to | examples E | est. time | train time | "
          "trial time | val acc | train acc | test acc | gap | peak MB | B_simple EMA | B_simple "
          "at target [95%] | regime |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
          o);
    for (int i = 0; i < c->n_batches; i++) {
        if (r->best[i] < 0) {
            fprintf(o, "| %d | – | not reached | | | | | | | | | | | | | |\n", c->batches[i]);
            continue;
        }
        const bl_trial *t = &r->trials[r->best[i]];
        char est[32], train[32], wall[32];
        fprintf(o, "| %d%s | %.4g (x%g) | %ld | %ld update%s (%.1f%%) | %ld | %s | %s | %s | ",
                t->batch, r->best[i] == r->recommended ? " **(rec.)**" : "", (double)t->lr,
                t->lr_mult, t->steps, t->steps_res, t->steps_res == 1 ? "" : "s",
                t->steps > 0 ? 100.0 * (double)t->steps_res / (double)t->steps : 0.0, t->examples,
                bl_format_seconds(est, sizeof est, r->est_train_s[i]),
                bl_format_seconds(train, sizeof train, t->train_s),
                bl_format_seconds(wall, sizeof wall, t->wall_s));
        num(o, t->val_acc, "%.4f");
        fputs(" | ", o);
        num(o, t->train_acc, "%.4f");
        fputs(" | ", o);
        num(o, t->test_acc, "%.4f");
        fputs(" | ", o);
        num(o, 100 * t->gen_gap, "%+.2f pp");
        fprintf(o, " | %.1f | ", (double)t->peak_mem_bytes / 1e6);
        num(o, t->noise_ema, "%.0f");
        fputs(" | ", o);
        num(o, t->noise_scale, "%.0f");
        if (isfinite(t->noise_scale)) {
            fputs(" [", o);
            num(o, t->noise_lo, "%.0f");
            fputs(", ", o);
            if (isfinite(t->noise_hi))
                num(o, t->noise_hi, "%.0f");
            else
                fputs("inf", o);
            fputs("]", o);
        }
        fprintf(o, " | %s |\n",
                r->fit_ok ? bl_regime_name(bl_bcrit_regime(t->batch, r->fit.b_crit)) : "–");
    }
    fputs("\n", o);
}

static void plots_section(FILE *o, const bl_sweep_result *r, const int *drawn) {
    static const char *caption[SWEEP_N_PLOTS] = {
        "Steps to the target: the fit and the perfect-scaling line S = E_min/B (log-log).",
        "Examples against steps: each point a batch size; down-left is better, and the curve "
        "is the fitted front.",
        "Wall-clock time to the target on this machine.",
        "Generalisation gap (full training split minus test accuracy) at the end of each best "
        "trial.",
        "Noise scale at the target (bootstrap interval) and the trainer's running estimate, "
        "with the fitted B_crit.",
        "The trainer's running estimate of the noise scale over training (it grows as the loss "
        "falls).",
        "Validation accuracy over training for the best trial of each batch size."};
    fputs("## Plots\n\n", o);
    int any = 0;
    for (int i = 0; i < SWEEP_N_PLOTS; i++) {
        if (!drawn[i]) continue;
        any = 1;
        fprintf(o, "%s\n\n![%s](plots/%s.png)\n\n", caption[i], sweep_plot_names[i],
                sweep_plot_names[i]);
    }
    if (!any)
        fprintf(o, "No plots: %s\n\n", r->plot_msg[0] ? r->plot_msg : "nothing to draw");
    else if (r->plot_msg[0])
        fprintf(o, "Some plots are missing: %s\n\n", r->plot_msg);
}

static void trials_table(FILE *o, const bl_sweep_result *r) {
    fputs("## Every trial\n\n| B | lr | x grid | outcome | steps | examples | train time | val "
          "acc |\n|---|---|---|---|---|---|---|---|\n",
          o);
    for (int k = 0; k < r->n_trials; k++) {
        const bl_trial *t = &r->trials[k];
        char train[32];
        fprintf(o, "| %d | %.4g | %g | %s | %ld | %ld | %s | ", t->batch, (double)t->lr, t->lr_mult,
                bl_trial_status_name(t->status), t->steps, t->examples,
                bl_format_seconds(train, sizeof train, t->train_s));
        num(o, t->val_acc, "%.4f");
        fputs(" |\n", o);
    }
    fputs("\nOutcomes: *reached* the target; *not_reached* within the epoch cap; *diverged* (the "
          "loss became NaN); *pruned*: stopped once it had used as many steps as the best trial "
          "of its batch size without reaching the target, since it could no longer win.\n\n",
          o);
}

static void method_section(FILE *o, const bl_sweep_config *c, const sweep_data_info *di) {
    char tb[96], ot[96];
    const bl_train_config *tc = &c->train;
    fputs("## Method and settings\n\n", o);
    if (c->command) fprintf(o, "```\n%s\n```\n\n", c->command);
    fprintf(o, "- Model `%s` on %s: %zu training, %zu validation and %zu test samples.\n", tc->spec,
            c->data_name && *c->data_name ? c->data_name : "the given data", di->n_train, di->n_val,
            di->n_test);
    fprintf(o,
            "- Target: %s, checked every max(1, round(I/B), floor(0.02 s)) updates at update s, ",
            target_text(c, tb, sizeof tb));
    if (c->eval_every_samples > 0)
        fprintf(o, "with I = %ld examples (`--eval-every-samples`)", c->eval_every_samples);
    else
        fprintf(o,
                "with I = min(4096, max(B, n_train/16)) examples, the default, which follows the "
                "data and the batch (here n_train/16 = %zu: I = %ld at B = %d, %ld at B = %d)",
                di->n_train / 16, bl_sweep_eval_samples(c, di->n_train, c->batches[0]),
                c->batches[0], bl_sweep_eval_samples(c, di->n_train, c->batches[c->n_batches - 1]),
                c->batches[c->n_batches - 1]);
    fprintf(o,
            ". So S is resolved to about I examples or 2%%, whichever is coarser: the target was "
            "crossed after the previous check and at or before S (*S resolved to*, in updates "
            "and as a share of S). Each trial stops at %g epochs if it has not reached it.\n",
            c->max_epochs);
    fprintf(o,
            "- Optimizer %s, learning rate %g at batch %d %s, times each grid "
            "multiplier (",
            optimizer_text(&tc->opt, ot, sizeof ot), (double)tc->lr, tc->base_batch,
            tc->lr_scale == BL_LR_SCALE_LINEAR ? "scaled in proportion to B"
            : tc->lr_scale == BL_LR_SCALE_SQRT ? "scaled with sqrt(B)"
                                               : "used at every B");
    for (int i = 0; i < c->n_lr_mults; i++)
        fprintf(o, "%s%g", i ? ", " : "", c->lr_mults[i]);
    fprintf(o,
            "); for each B the trial with the fewest steps to the target is kept (Shallue et "
            "al. 2018). Schedule %s, warm-up %ld updates, seed %llu.%s\n",
            tc->sched == BL_SCHED_COSINE ? "cosine"
            : tc->sched == BL_SCHED_STEP ? "step"
                                         : "constant",
            tc->warmup_steps, (unsigned long long)tc->seed,
            c->prune ? " Trials that cannot beat the best of their batch size are pruned." : "");
    fputs("- Steps S and examples E are counted to the first evaluation at or above the target. "
          "*train time* sums the time of the optimizer updates; *trial time* adds evaluations, "
          "noise measurements and the end-of-trial measurements; *est. time* is S times the "
          "median time per update over every "
          "trial at that batch size, which the recommendation uses. Peak memory is what training "
          "at that B allocates (weights, "
          "gradients, optimizer state, activations, batch buffers). Times are wall-clock on "
          "this machine as it was: if it was shared with other work, compare them within one "
          "sweep and treat small differences as noise.\n",
          o);
    fprintf(o,
            "- Generalisation gap: accuracy on the full training split minus accuracy on the "
            "%s split, at the end of the trial.\n",
            di->test_is_val ? "validation (no test split "
                              "was given)"
                            : "test");
    fprintf(o,
            "- Noise scale: during training, every %d updates a batch of B examples drawn with "
            "replacement, apart from the training batches, gives |G|^2 and tr(Sigma) from two "
            "batch sizes (one example and B for dense models, else B/2 and B), smoothed by EMAs "
            "(decay %g); its time is not in *train time*. At the target, bl_noise_measure "
            "averages %d draws of %d samples (the first %d as the small batch) with a bootstrap "
            "interval.\n",
            c->noise_every, tc->noise_decay, c->noise_draws, c->noise_big, c->noise_small);
    fprintf(o,
            "- Fit: 1/S = 1/S_min - B_crit (1/E), ordinary least squares; regimes split at "
            "B_crit/%g and %g B_crit, where the other resource's overhead reaches 25%%.\n\n",
            BL_REGIME_FACTOR, BL_REGIME_FACTOR);
}

bl_status sweep_write_report(const bl_sweep_config *c, const sweep_data_info *di,
                             bl_sweep_result *r, bl_error *err) {
    int drawn[SWEEP_N_PLOTS];
    bl_status pst = sweep_draw_plots(c, r, drawn, err);
    if (pst) return pst;
    char *md = NULL;
    size_t md_n = 0;
    FILE *o = open_memstream(&md, &md_n);
    if (!o) return bl_fail(err, BL_ERR_NOMEM, "sweep report: out of memory");
    char title[512];
    snprintf(title, sizeof title, "Batch-size sweep: %s on %s", c->train.spec,
             c->data_name && *c->data_name ? c->data_name : "the given data");
    fprintf(o, "# %s\n\n", title);
    recommendation(o, c, di, r);
    fit_section(o, c, r);
    noise_section(o, c, r);
    best_table(o, c, r);
    plots_section(o, r, drawn);
    trials_table(o, r);
    method_section(o, c, di);
    if (fclose(o) != 0 || !md) {
        bl_free(md);
        return bl_fail(err, BL_ERR_NOMEM, "sweep report: out of memory");
    }
    char path[4096];
    sweep_path(path, sizeof path, c->out_dir, "report.md");
    bl_status st = bl_atomic_write(path, md, md_n, err);
    char *html = st ? NULL : bl_markdown_to_html(md, title, 1);
    if (!st && !html) st = bl_fail(err, BL_ERR_NOMEM, "sweep report: out of memory");
    if (!st) {
        sweep_path(path, sizeof path, c->out_dir, "report.html");
        st = bl_atomic_write(path, html, strlen(html), err);
    }
    bl_free(html);
    bl_free(md);
    return st;
}
