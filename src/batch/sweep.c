/* The batch-size sweep loop (see include/batchlab/sweep.h): trials over
 * batch sizes x learning-rate grid, each a loop around bl_trainer_step with
 * validation checks, then the fit, results, plots and report.
 *
 * Design notes:
 * - Each trial gets its own bl_ctx memory account, so its peak is exactly what
 *   training at that B needs (datasets and the evaluation model are not in it).
 * - Evaluation runs on a second model allocated once for big batches, with the
 *   trainer's parameters and buffers copied in. A trainer at B = 16 would
 *   otherwise evaluate 16 samples at a time, and evaluation cost would depend
 *   on B and distort the comparison.
 * - A trial's log is written as logs/<id>.jsonl.part and renamed when the trial
 *   ends, and the trial's JSON record is the commit point: a folder holds only
 *   finished trials, whatever moment the run is stopped at.
 * - The noise scale at the end is measured on the evaluation model (big
 *   batches), with bl_noise_measure restoring any state it touches. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include "batch/sweep_report.h"
#include "batch/sweep_store.h"
#include "batchlab/noise_measure.h"
#include "batchlab/run.h"
#include "batchlab/runlog.h"
#include "core/alloc.h"

typedef struct sweep_run {
    bl_ctx *ctx;
    const bl_sweep_config *c;
    const bl_dataset *train, *val, *test;
    bl_model *eval; /* evaluation copy of the model, big batches */
    int index, total;
} sweep_run;

static void emit(sweep_run *s, bl_sweep_ev_kind kind, const bl_trial *t, const bl_trial_point *p) {
    if (!s->c->on_event) return;
    bl_sweep_event ev = {
        .kind = kind, .index = s->index, .total = s->total, .trial = t, .point = p};
    s->c->on_event(s->c->event_arg, &ev);
}

static int stop_requested(const bl_sweep_config *c) {
    return c->should_stop && c->should_stop(c->stop_arg);
}

static int stop_cb(void *arg) {
    return stop_requested(arg);
}

/* The trainer's B_simple, or NaN while its smoothed tr(Sigma) is still negative: with
 * few measurements, or a small batch half the big one, the estimate is not resolved. */
static double resolved_noise(const bl_trainer *tr) {
    double v = bl_noise_scale(bl_trainer_noise(tr));
    return v > 0 ? v : NAN;
}

static bl_status log_eval(bl_runlog *log, const bl_trial_point *p, bl_error *err) {
    if (!log->open) return BL_OK;
    unsigned mark = bl_alloc_failures();
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "eval");
    cJSON_AddNumberToObject(o, "step", (double)p->step);
    cJSON_AddNumberToObject(o, "samples_seen", (double)p->samples);
    cJSON_AddNumberToObject(o, "val_loss", p->val_loss);
    cJSON_AddNumberToObject(o, "val_accuracy", p->val_acc);
    if (isfinite(p->noise_scale)) cJSON_AddNumberToObject(o, "noise_scale", p->noise_scale);
    bl_status st =
        !o || bl_alloc_failures() != mark
            ? bl_fail(err, BL_ERR_NOMEM, "%s: out of memory building a log record", log->path)
            : bl_runlog_record(log, o, err);
    cJSON_Delete(o);
    return st;
}

static bl_status add_point(bl_trial *t, const bl_trial_point *p, bl_error *err) {
    if ((t->n_hist & (t->n_hist - 1)) == 0) { /* grow at powers of two */
        size_t cap = t->n_hist ? (size_t)t->n_hist * 2 : 16;
        bl_trial_point *h = bl_realloc(t->hist, cap * sizeof *h);
        if (!h) return bl_fail(err, BL_ERR_NOMEM, "sweep: out of memory for a trial's history");
        t->hist = h;
    }
    t->hist[t->n_hist++] = *p;
    return BL_OK;
}

/* The end of a trial that ran to a verdict: full-split accuracy and the noise scale. */
static bl_status finish_trial(sweep_run *s, bl_trainer *tr, bl_trial *t, bl_error *err) {
    const bl_sweep_config *c = s->c;
    bl_model *m = bl_trainer_model(tr);
    bl_loss_kind loss = c->train.loss;
    bl_status st = bl_model_copy_state(s->eval, m, err);
    if (!st) st = bl_model_evaluate(s->eval, s->train, loss, 0, &t->train_loss, &t->train_acc, err);
    const bl_dataset *gap = s->test && s->test->n ? s->test : s->val;
    if (!st) st = bl_model_evaluate(s->eval, gap, loss, 0, &t->test_loss, &t->test_acc, err);
    if (st) return st;
    t->gen_gap = t->train_acc - t->test_acc;
    if (t->status != BL_TRIAL_REACHED || c->noise_draws < 2) return BL_OK;
    bl_noise_measure_config nc;
    bl_noise_measure_config_default(&nc);
    nc.b_small = c->noise_small, nc.b_big = c->noise_big, nc.draws = c->noise_draws;
    nc.seed = c->train.seed, nc.loss = loss;
    nc.should_stop = stop_cb, nc.stop_arg = (void *)c;
    bl_noise_measurement nm;
    st = bl_noise_measure(s->eval, s->train, &nc, &nm, err);
    if (st) return st;
    t->noise_scale = nm.scale, t->noise_lo = nm.scale_lo, t->noise_hi = nm.scale_hi;
    return BL_OK;
}

static void trial_config(const bl_sweep_config *c, const bl_trial *t, long max_steps,
                         bl_train_config *tc) {
    *tc = c->train;
    tc->batch = t->batch;
    tc->micro_batch = 0;
    tc->lr = t->lr;
    tc->lr_scale = BL_LR_SCALE_NONE; /* already applied, with the grid multiplier */
    tc->base_batch = t->batch;
    tc->noise = c->noise_every > 0 && t->batch >= 2;
    tc->noise_every = c->noise_every;
    tc->total_steps = max_steps; /* the cosine horizon, if that schedule is chosen */
    tc->drop_last = 0;
}

/* One trial's loop (bl_run) and what the sweep keeps of it. */
typedef struct trial_loop {
    sweep_run *s;
    bl_trial *t;
    bl_trainer *tr;
    bl_runlog *log;
    bl_trial_point last;
    long last_step;
} trial_loop;

/* On the evaluation model (big batches), with the trainer's state copied in. */
static bl_status trial_evaluate(void *user, bl_trainer *tr, double *loss, double *acc,
                                bl_error *err) {
    trial_loop *L = user;
    bl_status st = bl_model_copy_state(L->s->eval, bl_trainer_model(tr), err);
    return st ? st
              : bl_model_evaluate(L->s->eval, L->s->val, L->s->c->train.loss, 0, loss, acc, err);
}

static bl_status trial_event(void *user, const bl_run_event *e, bl_error *err) {
    trial_loop *L = user;
    bl_trial *t = L->t;
    if (e->kind == BL_RUN_STEP) {
        t->train_s += e->step->step_time_s; /* the update alone: noise measurements are apart */
        t->steps = e->step->step, t->examples = e->step->samples_seen;
        return bl_runlog_step(L->log, e->step, err);
    }
    if (e->kind == BL_RUN_EPOCH) return bl_runlog_epoch(L->log, e->epoch, err);
    if (e->kind != BL_RUN_EVAL) return BL_OK;
    bl_trial_point p = {.step = e->at_step,
                        .samples = e->samples_seen,
                        .val_acc = e->val_acc,
                        .val_loss = e->val_loss,
                        .noise_scale = resolved_noise(L->tr)};
    bl_status st = add_point(t, &p, err);
    if (!st) st = log_eval(L->log, &p, err);
    if (st) return st;
    L->last = p;
    emit(L->s, BL_SWEEP_EV_EVAL, t, &p);
    t->steps_res = p.step - L->last_step;
    L->last_step = p.step;
    return BL_OK;
}

static int trial_should_stop(void *user) {
    return stop_requested(((trial_loop *)user)->s->c);
}

/* Runs one trial to its verdict; best_steps (or LONG_MAX) is the pruning bound. */
static bl_status run_trial(sweep_run *s, bl_trial *t, long best_steps, bl_error *err) {
    const bl_sweep_config *c = s->c;
    double w0 = bl_now_sec();
    long spe = bl_steps_per_epoch(s->train->n, t->batch, 0); /* trials keep the last batch */
    long max_steps = (long)ceil(c->max_epochs * (double)spe);
    if (max_steps < 1) max_steps = 1;
    long cap = c->prune && best_steps < max_steps ? best_steps : max_steps;
    bl_train_config tc;
    trial_config(c, t, max_steps, &tc);
    bl_ctx tctx = *s->ctx;
    memset(&tctx.mem, 0, sizeof tctx.mem);
    tctx.dist = NULL;
    char rel[128], log_path[4096], part[4200];
    snprintf(rel, sizeof rel, "logs/%s.jsonl", t->id);
    sweep_path(log_path, sizeof log_path, c->out_dir, rel);
    snprintf(part, sizeof part, "%s.part", log_path);
    bl_trainer *tr = NULL;
    bl_runlog log = {0};
    bl_status st = bl_trainer_create(&tr, &tctx, &tc, s->train, err);
    if (!st) st = bl_runlog_open(&log, part, 0, err);
    emit(s, BL_SWEEP_EV_START, t, NULL);
    trial_loop L = {.s = s, .t = t, .tr = tr, .log = &log};
    L.last.val_acc = L.last.val_loss = NAN;
    bl_run_config rc;
    bl_run_config_default(&rc);
    rc.steps = cap; /* the run stops at its verdict: a target, divergence or the cap */
    rc.target_acc = c->target_acc > 0 ? c->target_acc : 0;
    rc.target_loss = c->target_acc > 0 ? 0 : c->target_loss;
    /* every eval_samples samples, spaced out to 2% of the updates so far (sweep.h) */
    rc.evaluate = trial_evaluate;
    rc.eval_every = lround((double)bl_sweep_eval_samples(c, s->train->n, t->batch) / t->batch);
    rc.eval_growth = 0.02;
    rc.eval_epoch_end = 0, rc.eval_at_end = 1;
    rc.diverged_stops = 1;
    rc.should_stop = trial_should_stop;
    rc.on_event = trial_event, rc.user = &L;
    bl_run_result r;
    if (!st) st = bl_run(tr, &rc, &r, err);
    if (!st && r.stop == BL_RUN_STOP_FLAG) st = bl_fail(err, BL_ERR_INTERRUPTED, "interrupted");
    if (!st && r.stop == BL_RUN_STOP_DIVERGED) {
        t->status = BL_TRIAL_DIVERGED;
        t->steps = bl_trainer_steps_done(tr) + 1;
        t->examples = (long)t->steps * t->batch;
    } else if (!st) {
        t->status = r.stop == BL_RUN_STOP_TARGET ? BL_TRIAL_REACHED
                    : cap < max_steps            ? BL_TRIAL_PRUNED
                                                 : BL_TRIAL_NOT_REACHED;
    }
    bl_trial_point last = L.last;
    t->val_acc = last.val_acc, t->val_loss = last.val_loss;
    if (tr) {
        t->noise_ema = resolved_noise(tr);
        t->peak_mem_bytes = tctx.mem.peak_bytes;
    }
    if (!st && (t->status == BL_TRIAL_REACHED || t->status == BL_TRIAL_NOT_REACHED))
        st = finish_trial(s, tr, t, err);
    bl_trainer_free(tr);
    bl_status cst = bl_runlog_close(&log, st ? NULL : err);
    if (!st) st = cst;
    if (!st && rename(part, log_path) != 0)
        st = bl_fail(err, BL_ERR_IO, "%s: renaming the finished log into place failed: %s",
                     log_path, strerror(errno));
    if (st) unlink(part);
    t->wall_s = bl_now_sec() - w0;
    if (st) bl_error_prefix(err, "trial %s", t->id);
    return st;
}

static bl_status check_config(const bl_sweep_config *c, const bl_dataset *train,
                              const bl_dataset *val, bl_error *err) {
    if (!c->out_dir || !*c->out_dir)
        return bl_fail(err, BL_ERR_ARG, "sweep: no output folder given");
    if (c->n_batches < 1 || c->n_batches > BL_SWEEP_MAX_BATCHES)
        return bl_fail(err, BL_ERR_ARG, "sweep: %d batch sizes given; 1 to %d are allowed",
                       c->n_batches, BL_SWEEP_MAX_BATCHES);
    for (int i = 0; i < c->n_batches; i++) {
        if (c->batches[i] < 1 || (size_t)c->batches[i] > train->n)
            return bl_fail(err, BL_ERR_ARG,
                           "sweep: batch size %d must be between 1 and the %zu training samples",
                           c->batches[i], train->n);
        for (int j = 0; j < i; j++)
            if (c->batches[j] == c->batches[i])
                return bl_fail(err, BL_ERR_ARG, "sweep: batch size %d is listed twice",
                               c->batches[i]);
    }
    if (c->n_lr_mults < 1 || c->n_lr_mults > BL_SWEEP_MAX_LRS)
        return bl_fail(err, BL_ERR_ARG,
                       "sweep: %d learning-rate multipliers given; 1 to %d are allowed",
                       c->n_lr_mults, BL_SWEEP_MAX_LRS);
    for (int i = 0; i < c->n_lr_mults; i++)
        if (!(c->lr_mults[i] > 0) || !isfinite(c->lr_mults[i]))
            return bl_fail(err, BL_ERR_ARG, "sweep: learning-rate multiplier %g must be > 0",
                           c->lr_mults[i]);
    if ((c->target_acc > 0) == (c->target_loss > 0))
        return bl_fail(err, BL_ERR_ARG, "sweep: give exactly one target (accuracy or loss)");
    if (c->target_acc > 1)
        return bl_fail(err, BL_ERR_ARG, "sweep: target accuracy %g must be at most 1",
                       c->target_acc);
    if (!(c->max_epochs > 0)) return bl_fail(err, BL_ERR_ARG, "sweep: max epochs must be > 0");
    if (c->eval_every_samples < 0)
        return bl_fail(err, BL_ERR_ARG,
                       "sweep: evaluation interval must be at least 1 sample (or 0: automatic)");
    if (!val || val->n == 0)
        return bl_fail(err, BL_ERR_ARG, "sweep: a validation split is needed to check the target");
    if (c->noise_draws >= 2 &&
        (c->noise_small < 1 || c->noise_big <= c->noise_small || (size_t)c->noise_big > train->n))
        return bl_fail(err, BL_ERR_ARG,
                       "sweep: noise batches %d < %d must fit in the %zu training samples",
                       c->noise_small, c->noise_big, train->n);
    return BL_OK;
}

/* Grid order: multiplier 1 (the rule) first, then outward, so pruning bites early. */
static void grid_order(const bl_sweep_config *c, int *order) {
    for (int i = 0; i < c->n_lr_mults; i++)
        order[i] = i;
    for (int i = 1; i < c->n_lr_mults; i++)
        for (int j = i; j > 0; j--) {
            double a = fabs(log(c->lr_mults[order[j]])), b = fabs(log(c->lr_mults[order[j - 1]]));
            if (a >= b) break;
            int x = order[j];
            order[j] = order[j - 1], order[j - 1] = x;
        }
}

static int better(const bl_trial *a, const bl_trial *b) { /* a beats b */
    if (a->status != BL_TRIAL_REACHED) return 0;
    if (!b || b->status != BL_TRIAL_REACHED) return 1;
    return a->steps < b->steps || (a->steps == b->steps && a->train_s < b->train_s);
}

/* Seconds per update at batch i: the median over all its trials, so one trial slowed by
 * other work on a shared machine does not decide the recommendation. */
static double seconds_per_update(const bl_sweep_config *c, const bl_sweep_result *r, int i) {
    double v[BL_SWEEP_MAX_LRS];
    int n = 0;
    for (int g = 0; g < c->n_lr_mults; g++) {
        const bl_trial *t = &r->trials[i * c->n_lr_mults + g];
        if (t->steps > 0 && t->train_s > 0) v[n++] = t->train_s / (double)t->steps;
    }
    for (int a = 1; a < n; a++)
        for (int b = a; b > 0 && v[b] < v[b - 1]; b--) {
            double x = v[b];
            v[b] = v[b - 1], v[b - 1] = x;
        }
    return n == 0 ? NAN : n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void fit_and_recommend(const bl_sweep_config *c, bl_sweep_result *r) {
    double S[BL_SWEEP_MAX_BATCHES], E[BL_SWEEP_MAX_BATCHES];
    int n = 0, rec_i = -1;
    r->recommended = -1;
    for (int i = 0; i < c->n_batches; i++) {
        int k = r->best[i];
        r->est_train_s[i] = NAN;
        if (k < 0) continue;
        S[n] = (double)r->trials[k].steps, E[n] = (double)r->trials[k].examples, n++;
        r->est_train_s[i] = seconds_per_update(c, r, i) * (double)r->trials[k].steps;
        if (rec_i < 0 || r->est_train_s[i] < r->est_train_s[rec_i]) rec_i = i;
    }
    if (rec_i >= 0) r->recommended = r->best[rec_i];
    bl_error e = {0};
    r->fit_ok = bl_bcrit_fit(&r->fit, S, E, n, &e) == BL_OK;
    snprintf(r->fit_msg, sizeof r->fit_msg, "%.500s", r->fit_ok ? "" : e.msg);
    r->b_crit_lo = r->b_crit_hi = NAN;
    int used = 0;
    if (r->fit_ok && n >= 3)
        bl_bcrit_interval(S, E, n, 2000, 0.95, c->train.seed, &r->b_crit_lo, &r->b_crit_hi, &used,
                          NULL);
}

bl_status bl_sweep_run(bl_ctx *ctx, const bl_sweep_config *c, const bl_dataset *train,
                       const bl_dataset *val, const bl_dataset *test, bl_sweep_result *out,
                       bl_error *err) {
    memset(out, 0, sizeof *out);
    bl_status st = check_config(c, train, val, err);
    if (st) return st;
    sweep_data_info di = {.n_train = train->n,
                          .n_val = val->n,
                          .n_test = test ? test->n : 0,
                          .test_is_val = !test || test->n == 0};
    if ((st = sweep_prepare_dir(c, &di, err))) return st;
    sweep_run s = {.ctx = ctx,
                   .c = c,
                   .train = train,
                   .val = val,
                   .test = test,
                   .total = c->n_batches * c->n_lr_mults};
    int n_classes = c->train.n_classes > 0 ? c->train.n_classes : train->n_classes;
    int eval_batch = 1024;
    if (c->noise_draws >= 2 && c->noise_small > eval_batch) eval_batch = c->noise_small;
    st = bl_model_create(&s.eval, c->train.spec, train->shape, n_classes, err);
    if (!st) st = bl_model_alloc(s.eval, ctx, eval_batch, err);
    out->trials = bl_calloc((size_t)s.total, sizeof *out->trials);
    if (!st && !out->trials) st = bl_fail(err, BL_ERR_NOMEM, "sweep: out of memory");
    int order[BL_SWEEP_MAX_LRS];
    grid_order(c, order);
    for (int bi = 0; bi < c->n_batches && !st; bi++) {
        int B = c->batches[bi];
        float lr0 = bl_lr_scale(c->train.lr_scale, c->train.lr, B, c->train.base_batch);
        bl_trial *best = NULL;
        out->best[bi] = -1;
        for (int g = 0; g < c->n_lr_mults && !st; g++) {
            int k = bi * c->n_lr_mults + order[g];
            bl_trial *t = &out->trials[k];
            out->n_trials = out->n_trials > k + 1 ? out->n_trials : k + 1;
            t->batch = B;
            t->lr_mult = c->lr_mults[order[g]];
            t->lr = (float)(lr0 * t->lr_mult);
            sweep_trial_id(t->id, sizeof t->id, B, t->lr);
            t->train_acc = t->train_loss = t->test_acc = t->test_loss = t->gen_gap = NAN;
            t->noise_ema = t->noise_scale = t->noise_lo = t->noise_hi = NAN;
            t->val_acc = t->val_loss = NAN;
            s.index = bi * c->n_lr_mults + g + 1;
            int got = sweep_trial_load(c->out_dir, t, err);
            if (got < 0) {
                st = err ? err->code : BL_ERR_FORMAT;
                break;
            }
            if (got) {
                out->n_skipped++;
                emit(&s, BL_SWEEP_EV_SKIP, t, NULL);
            } else {
                st = run_trial(&s, t, best ? best->steps : LONG_MAX, err);
                if (!st) st = sweep_trial_save(c->out_dir, t, err);
                if (!st) emit(&s, BL_SWEEP_EV_END, t, NULL);
            }
            if (!st && better(t, best)) best = t, out->best[bi] = k;
        }
    }
    if (out->trials) out->n_trials = s.total;
    bl_model_free(s.eval);
    if (!st) {
        fit_and_recommend(c, out);
        st = sweep_write_results(c, &di, out, err);
    }
    if (!st) st = sweep_write_report(c, &di, out, err);
    if (!st && stop_requested(c))
        st = bl_fail(err, BL_ERR_INTERRUPTED, "sweep interrupted while writing the report");
    if (st) bl_sweep_result_free(out);
    return st;
}
