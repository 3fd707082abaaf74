/* The training report and the end-of-run summary (see train_report.h). */
#include "train_report.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "batchlab/io.h"
#include "batchlab/markdown.h"
#include "batchlab/plot.h"
#include "args.h"
#include "core/alloc.h"

void history_step(train_history *h, const bl_step_info *si) {
    if (h->stride == 0) h->stride = 1;
    if (h->skip++ % h->stride) return;
    if (h->n == HIST_MAX) { /* full: keep every other point and halve the rate */
        for (int i = 0; i < HIST_MAX / 2; i++) {
            h->step[i] = h->step[2 * i], h->batch[i] = h->batch[2 * i];
            h->noise[i] = h->noise[2 * i], h->lr[i] = h->lr[2 * i];
        }
        h->n = HIST_MAX / 2;
        h->stride *= 2;
    }
    h->step[h->n] = (double)si->step;
    h->batch[h->n] = si->batch;
    h->noise[h->n] = si->has_noise ? si->noise_scale : NAN;
    h->lr[h->n] = si->lr;
    h->n++;
}

void history_eval(train_history *h, long samples, double elapsed_s, double val_acc) {
    if (h->m == HIST_MAX) return;
    h->ev_samples[h->m] = (double)samples;
    h->ev_time[h->m] = elapsed_s;
    h->ev_acc[h->m++] = val_acc;
}

void history_decision(train_history *h, const bl_adapt_decision *d) {
    if (h->n_dec < 64) h->dec[h->n_dec++] = *d;
}

/* A plot that cannot be drawn for want of gnuplot (or of points) costs the picture; one
 * that could not be written is an error. */
static bl_status draw(const bl_plot *p, const char *base, bl_error *err) {
    bl_error e = {0};
    bl_status st = bl_plot_write(p, base, &e);
    if (st && st != BL_ERR_UNSUPPORTED && st != BL_ERR_ARG) {
        if (err) *err = e;
        return st;
    }
    return st ? BL_ERR_UNSUPPORTED : BL_OK;
}

static bl_status plot1(const char *dir, const char *name, const char *title, const char *xl,
                       const char *yl, const double *x, const double *y, int n, int logy, char *md,
                       size_t cap, bl_error *err) {
    if (n <= 0) return BL_OK;
    bl_plot_series s = {.title = NULL, .x = x, .y = y, .n = (size_t)n, .style = BL_PLOT_LINES};
    bl_plot p = {
        .title = title, .xlabel = xl, .ylabel = yl, .logy = logy, .series = &s, .n_series = 1};
    char base[4096];
    snprintf(base, sizeof base, "%s/plots/%s", dir, name);
    bl_status st = draw(&p, base, err);
    if (!st) snprintf(md + strlen(md), cap - strlen(md), "\n![%s](plots/%s.png)\n", title, name);
    return st == BL_ERR_UNSUPPORTED ? BL_OK : st;
}

bl_status train_report_write(const char *dir, const train_history *h, const train_outcome *o,
                             const bl_adapt *adapt, bl_error *err) {
    char path[4096];
    if (mkdir(dir, 0755) && errno != EEXIST)
        return bl_fail(err, BL_ERR_IO, "%s: cannot create: %s", dir, strerror(errno));
    snprintf(path, sizeof path, "%s/plots", dir);
    if (mkdir(path, 0755) && errno != EEXIST)
        return bl_fail(err, BL_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    size_t cap = 1 << 16;
    char *md = bl_calloc(1, cap);
    if (!md) return bl_fail(err, BL_ERR_NOMEM, "out of memory writing the report");
#define ADD(...) snprintf(md + strlen(md), cap - strlen(md), __VA_ARGS__)
    ADD("# Training report\n\n");
    if (adapt) {
        ADD("**Batch size: %d**, chosen while training by goodput (throughput x statistical "
            "efficiency at the measured gradient noise scale, %.0f at the end), starting from "
            "%d; learning rate %.4g (AdaScale gain). ",
            o->final_batch, o->noise_scale, o->base_batch, (double)o->final_lr);
    } else {
        ADD("**Batch size: %d**, fixed; learning rate %.4g. ", o->final_batch, (double)o->final_lr);
    }
    char wall[32];
    bl_format_seconds(wall, sizeof wall, o->wall_s);
    if (o->target_acc > 0)
        ADD("%s the validation target %.3f in %s (%ld steps, %ld examples).\n\n",
            !strncmp(o->stop_reason, "reached --target", 16) ? "Reached" : "Did not reach",
            o->target_acc, wall, o->steps, o->samples);
    else
        ADD("Trained %ld steps (%ld examples) in %s (%s).\n\n", o->steps, o->samples, wall,
            o->stop_reason);
    ADD("| | |\n|---|---|\n| model | `%s` |\n| data | %s |\n", o->spec, o->data);
    if (isfinite(o->val_acc)) ADD("| validation accuracy | %.4f |\n", o->val_acc);
    if (isfinite(o->test_acc)) ADD("| test accuracy | %.4f |\n", o->test_acc);
    if (isfinite(o->noise_scale)) ADD("| gradient noise scale B_simple | %.0f |\n", o->noise_scale);
    ADD("| command | `%s` |\n", o->command ? o->command : "");
    if (h->n_dec) {
        ADD("\n## Batch-size decisions\n\n| step | from | to | noise scale | predicted goodput "
            "gain |\n|---|---|---|---|---|\n");
        for (int i = 0; i < h->n_dec; i++)
            ADD("| %ld | %d | %d | %.0f | %+.1f%% |\n", h->dec[i].step, h->dec[i].from_batch,
                h->dec[i].to_batch, h->dec[i].noise_scale,
                100 * (h->dec[i].goodput_to / h->dec[i].goodput_from - 1));
    }
    ADD("\n## Evidence\n");
    bl_status st = plot1(dir, "accuracy", "Validation accuracy against time", "seconds",
                         "validation accuracy", h->ev_time, h->ev_acc, h->m, 0, md, cap, err);
    if (!st)
        st = plot1(dir, "batch", "Batch size over training", "step", "batch size", h->step,
                   h->batch, h->n, 1, md, cap, err);
    int any_noise = 0;
    for (int i = 0; i < h->n; i++)
        any_noise |= isfinite(h->noise[i]);
    if (!st && any_noise)
        st = plot1(dir, "noise", "Gradient noise scale over training", "step", "B_simple", h->step,
                   h->noise, h->n, 1, md, cap, err);
    if (!st && adapt && adapt->curve.n) {
        double x[BL_FIND_MAX_POINTS], t[BL_FIND_MAX_POINTS], g[BL_FIND_MAX_POINTS];
        ADD("\n| batch | samples/s | efficiency | goodput |\n|---|---|---|---|\n");
        for (int i = 0; i < adapt->curve.n; i++) {
            x[i] = adapt->curve.p[i].batch, t[i] = bl_adapt_throughput(adapt, i);
            double e = bl_efficiency(o->noise_scale, o->base_batch, adapt->curve.p[i].batch);
            g[i] = t[i] * e;
            ADD("| %d%s | %.0f%s | %.3f | %.0f |\n", adapt->curve.p[i].batch,
                adapt->curve.p[i].batch == o->final_batch ? " (chosen)" : "", t[i],
                bl_adapt_measured(adapt, i) ? "" : " (predicted)", e, g[i]);
        }
        bl_plot_series s[2] = {{.title = "throughput (samples/s; measured or predicted)",
                                .x = x,
                                .y = t,
                                .n = (size_t)adapt->curve.n,
                                .style = BL_PLOT_LINESPOINTS},
                               {.title = "goodput at the final noise scale",
                                .x = x,
                                .y = g,
                                .n = (size_t)adapt->curve.n,
                                .style = BL_PLOT_LINESPOINTS}};
        bl_plot p = {.title = "Throughput and goodput against batch size",
                     .xlabel = "batch size",
                     .ylabel = "samples/s",
                     .logx = 1,
                     .logx2 = 1,
                     .series = s,
                     .n_series = 2};
        snprintf(path, sizeof path, "%s/plots/goodput", dir);
        st = draw(&p, path, err);
        if (!st) ADD("\n![Throughput and goodput](plots/goodput.png)\n");
        if (st == BL_ERR_UNSUPPORTED) st = BL_OK;
    }
#undef ADD
    snprintf(path, sizeof path, "%s/report.md", dir);
    if (!st) st = bl_atomic_write(path, md, strlen(md), err);
    char *html = st ? NULL : bl_markdown_to_html(md, "batchlab training report", 1);
    if (!st && !html) st = bl_fail(err, BL_ERR_NOMEM, "out of memory writing the report");
    if (!st) {
        snprintf(path, sizeof path, "%s/report.html", dir);
        st = bl_atomic_write(path, html, strlen(html), err);
    }
    bl_free(html);
    bl_free(md);
    return st;
}

int train_print_summary(const char *cmd, bl_trainer *t, const train_summary *s, int json) {
    bl_model *m = bl_trainer_model(t);
    long steps = bl_trainer_steps_done(t);
    const bl_train_config *c = bl_trainer_config(t);
    if (json) {
        unsigned mark = bl_alloc_failures();
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "model", bl_model_spec(m));
        cJSON_AddNumberToObject(j, "params", (double)bl_model_num_params(m));
        cJSON_AddNumberToObject(j, "batch", c->batch);
        cJSON_AddNumberToObject(j, "micro_batch", c->micro_batch);
        cJSON_AddStringToObject(j, "optimizer", bl_optim_name(&c->opt));
        cJSON_AddNumberToObject(j, "lr", bl_trainer_current_lr(t));
        cJSON_AddNumberToObject(j, "steps", (double)steps);
        cJSON_AddNumberToObject(j, "epochs", (double)bl_trainer_epoch(t));
        cJSON_AddNumberToObject(j, "wall_s", s->wall_s);
        if (s->adaptive) cJSON_AddNumberToObject(j, "final_batch", c->batch);
        cJSON_AddStringToObject(j, "stop_reason", s->stop_reason);
        cJSON_AddStringToObject(j, "norm", bl_norm_name(s->norm));
        bl_json_add_number(j, "train_loss", s->train_loss);
        bl_json_add_number(j, "train_accuracy", s->train_acc);
        bl_json_add_number(j, "val_loss", s->val_loss);
        bl_json_add_number(j, "val_accuracy", s->val_acc);
        bl_json_add_number(j, "test_loss", s->test_loss);
        bl_json_add_number(j, "test_accuracy", s->test_acc);
        if (c->noise) bl_json_add_number(j, "noise_scale", bl_noise_scale(bl_trainer_noise(t)));
        cJSON_AddNumberToObject(j, "peak_mem_bytes", (double)bl_peak_rss_bytes());
        if (s->save_path) cJSON_AddStringToObject(j, "checkpoint", s->save_path);
        int rc = cli_print_json(cmd, j, mark);
        cJSON_Delete(j);
        return rc;
    }
    printf("\n== batchlab train: summary ==\n");
    printf("model        %s (%zu parameters)\n", bl_model_spec(m), bl_model_num_params(m));
    printf("data         %s, %d classes, normalisation %s\n", s->data_name, bl_model_output_dim(m),
           bl_norm_name(s->norm));
    printf("batch        %d (micro-batch %d), optimizer %s, lr %g\n", c->batch, c->micro_batch,
           bl_optim_name(&c->opt), (double)bl_trainer_current_lr(t));
    char wall_txt[32];
    printf("trained      %ld steps in %s (%s)\n", steps,
           bl_format_seconds(wall_txt, sizeof wall_txt, s->wall_s), s->stop_reason);
    if (isfinite(s->train_loss))
        printf("train        loss %.4f  accuracy %.4f (last epoch's batches)\n", s->train_loss,
               s->train_acc);
    if (isfinite(s->val_acc))
        printf("validation   loss %.4f  accuracy %.4f\n", s->val_loss, s->val_acc);
    if (isfinite(s->test_acc))
        printf("test         loss %.4f  accuracy %.4f\n", s->test_loss, s->test_acc);
    if (c->noise) {
        const bl_noise *ns = bl_trainer_noise(t);
        if (s->adaptive)
            printf("batch auto   %d changes, final batch %d\n", s->decisions, c->batch);
        printf("noise scale  B_simple %.1f (|G|^2 %.4g, tr(Sigma) %.4g; EMA of %ld measurements)\n",
               bl_noise_scale(ns), bl_noise_g2(ns), bl_noise_trace(ns), ns->n);
    }
    printf("peak memory  %.1f MB resident\n", (double)bl_peak_rss_bytes() / 1e6);
    if (s->save_path) printf("checkpoint   %s\n", s->save_path);
    if (s->log_path) printf("log          %s\n", s->log_path);
    return 0;
}
