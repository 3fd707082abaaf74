/* The training loop (run.h): one update, then what follows from it, in this
 * order: account, log, decide the batch (controller or schedule), evaluate,
 * close the epoch, save, and stop when a rule holds. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "batchlab/dist.h"
#include "batchlab/run.h"
#include "batchlab/runlog.h"
#include "train/trainer_internal.h"

void bl_run_config_default(bl_run_config *c) {
    memset(c, 0, sizeof *c);
    c->max_reverts = 3;
    c->eval_epoch_end = 1;
}

const char *bl_run_already_done(const bl_trainer *t, long steps, long epochs) {
    if (steps && bl_trainer_steps_done(t) >= steps)
        return "already at --steps, which counts every update of the run";
    if (epochs && bl_trainer_epoch(t) >= epochs)
        return "already at --epochs, which counts every epoch of the run";
    return NULL;
}

/* The epochs rule: as given, or one epoch when no rule counts the run's length. */
static long epoch_limit(const bl_run_config *c) {
    return c->epochs || c->steps || c->samples ? c->epochs : 1;
}

typedef struct run_loop {
    bl_trainer *t;
    const bl_run_config *c;
    bl_run_result *r;
    bl_dist *dist;
    double t0;
    double loss_sum, acc_sum; /* over the epoch so far */
    long samples;
    long next_eval_samples;
    long next_eval; /* with eval_growth: the update of the next evaluation */
} run_loop;

static bl_status emit(run_loop *L, bl_run_event *e, bl_error *err) {
    e->elapsed_s = bl_now_sec() - L->t0;
    return L->c->on_event ? L->c->on_event(L->c->user, e, err) : BL_OK;
}

static bl_status decision(run_loop *L, const bl_adapt_decision *d, int applied,
                          bl_run_decision_source src, bl_error *err) {
    bl_status st = bl_runlog_decision(L->c->log, d, applied, bl_trainer_current_lr(L->t), err);
    bl_run_event e = {.kind = BL_RUN_DECISION,
                      .decision = d,
                      .applied = applied,
                      .source = src,
                      .lr = bl_trainer_current_lr(L->t)};
    return st ? st : emit(L, &e, err);
}

/* The controller, after an update: every rank decides from the slowest rank's
 * times, so all take the same decision. */
static bl_status adapt_step(run_loop *L, const bl_step_info *si, bl_error *err) {
    bl_adapt *a = L->c->adapt;
    double step_s = si->step_time_s, comm_s = si->comm_time_s;
    bl_status st = bl_dist_allreduce_max_f64(L->dist, &step_s, err);
    if (!st) st = bl_dist_allreduce_max_f64(L->dist, &comm_s, err);
    if (st) return st;
    bl_adapt_observe(a, si->batch, step_s > 0 ? si->batch / step_s : 0);
    bl_adapt_observe_comm(a, si->batch, comm_s);
    bl_adapt_decision d;
    int r = bl_adapt_decide(a, si->step, bl_trainer_noise(L->t), &d);
    if (r < 0) return BL_OK;
    size_t len = strlen(d.reason);
    if (bl_dist_size(L->dist) > 1 && len + 1 < sizeof d.reason)
        snprintf(d.reason + len, sizeof d.reason - len,
                 "; network %.0f of %.0f ms a step, a fixed cost larger batches amortise",
                 comm_s * 1e3, step_s * 1e3);
    int batch = bl_adapt_batch(a);
    /* AdaScale's gain moves with the noise scale even when the batch stays. */
    float f = bl_adapt_lr_factor(a->cfg.lr_rule, d.noise_scale, a->cfg.base_batch, batch);
    if (r == 1) f = d.lr_factor;
    d.lr_factor = f; /* logged as applied, so the log replays exactly */
    if ((st = bl_trainer_set_batch(L->t, batch, 0, f, err))) return st;
    L->r->decisions += r == 1;
    return decision(L, &d, r == 1, BL_RUN_ADAPT, err);
}

/* The schedule's changes due now, each a decision, so that a replay's own log replays. */
static bl_status replay_step(run_loop *L, bl_error *err) {
    const bl_batch_schedule *h = bl_trainer_batch_history(L->t);
    int before = h->n, from = bl_trainer_config(L->t)->batch;
    const char *name = L->c->replay_name ? L->c->replay_name : "the batch schedule";
    bl_error e2 = {0};
    bl_status st = bl_trainer_follow_schedule(L->t, L->c->replay, L->c->replay_next, &e2);
    if (st) return bl_fail(err, st, "%s: %s", name, e2.msg);
    for (int i = before; !st && i < h->n; i++) {
        bl_adapt_decision d = {.step = h->v[i].step,
                               .from_batch = from,
                               .to_batch = h->v[i].batch,
                               .noise_scale = NAN,
                               .goodput_from = NAN,
                               .goodput_to = NAN,
                               .lr_factor = h->v[i].lr_factor};
        snprintf(d.reason, sizeof d.reason, "replayed from %.150s", name);
        st = decision(L, &d, d.to_batch != from, BL_RUN_REPLAY, err);
        from = d.to_batch;
    }
    return st;
}

/* A diverged update left the weights as they were: retry at the last batch that
 * worked, if the controller has one. 1 when it did. */
static int try_revert(run_loop *L, bl_error *err, bl_status *st) {
    bl_adapt_decision d;
    bl_error e2 = {0};
    double bn = bl_noise_scale(bl_trainer_noise(L->t));
    if (!L->c->adapt || L->r->reverts >= L->c->max_reverts ||
        !bl_adapt_revert(L->c->adapt, bl_trainer_steps_done(L->t), bn, &d) ||
        bl_trainer_set_batch(L->t, d.to_batch, 0, d.lr_factor, &e2))
        return 0;
    L->r->reverts++;
    *st = decision(L, &d, 1, BL_RUN_REVERT, err);
    return 1;
}

static bl_status evaluate(run_loop *L, const bl_step_info *si, bl_error *err) {
    bl_run_result *r = L->r;
    bl_status st = L->c->evaluate
                       ? L->c->evaluate(L->c->user, L->t, &r->val_loss, &r->val_acc, err)
                       : bl_trainer_evaluate(L->t, L->c->val, &r->val_loss, &r->val_acc, err);
    if (!st)
        st = bl_runlog_eval(L->c->log, si->step, si->samples_seen, r->val_loss, r->val_acc,
                            bl_now_sec() - L->t0, err);
    bl_run_event e = {.kind = BL_RUN_EVAL,
                      .at_step = si->step,
                      .samples_seen = si->samples_seen,
                      .val_loss = r->val_loss,
                      .val_acc = r->val_acc};
    return st ? st : emit(L, &e, err);
}

static bl_status end_epoch(run_loop *L, const bl_step_info *si, bl_error *err) {
    bl_epoch_info ei = {.epoch = si->epoch,
                        .step = si->step,
                        .samples_seen = si->samples_seen,
                        .train_loss = L->loss_sum / L->samples,
                        .train_acc = L->acc_sum / L->samples,
                        .val_loss = L->r->val_loss,
                        .val_acc = L->r->val_acc,
                        .elapsed_s = bl_now_sec() - L->t0};
    bl_status st = bl_runlog_epoch(L->c->log, &ei, err);
    bl_run_event e = {.kind = BL_RUN_EPOCH, .epoch = &ei};
    return st ? st : emit(L, &e, err);
}

/* Rank 0 writes; every rank learns whether it worked, so none runs on alone. */
static bl_status save(run_loop *L, bl_error *err) {
    bl_status st = bl_dist_rank(L->dist) == 0
                       ? bl_trainer_save(L->t, L->c->save_path, L->c->norm, err)
                       : BL_OK;
    return bl_dist_agree(L->dist, st, err);
}

/* The rule that stops the run after this update, with its sentence in *why;
 * BL_RUN_STOP_FAILED when none does. */
static bl_run_stop stop_rule(const run_loop *L, const bl_step_info *si, int evaluated,
                             const char **why) {
    const bl_run_config *c = L->c;
    const bl_run_result *r = L->r;
    long epochs = epoch_limit(c);
    if (si->stop_requested) return *why = "interrupted", BL_RUN_STOP_FLAG;
    if (evaluated && c->target_acc > 0 && r->val_acc >= c->target_acc)
        return *why = "reached --target-acc on validation", BL_RUN_STOP_TARGET;
    if (evaluated && c->target_loss > 0 && r->val_loss <= c->target_loss)
        return *why = "reached --target-loss on validation", BL_RUN_STOP_TARGET;
    if (c->steps && si->step >= c->steps) return *why = "reached --steps", BL_RUN_STOP_STEPS;
    if (c->samples && si->samples_seen >= c->samples)
        return *why = "reached the sample budget", BL_RUN_STOP_SAMPLES;
    if (si->epoch_end && epochs && si->epoch + 1 >= epochs) {
        *why = c->target_acc > 0 || c->target_loss > 0 ? "target not reached within --epochs"
                                                       : "reached --epochs";
        return BL_RUN_STOP_EPOCHS;
    }
    return BL_RUN_STOP_FAILED;
}

/* Updates from an evaluation at update s to the next, with eval_growth. */
static long eval_spacing(const bl_run_config *c, long s) {
    long k = c->eval_every, g = (long)floor(c->eval_growth * (double)s);
    long v = k > g ? k : g;
    return v > 1 ? v : 1;
}

/* Whether to evaluate after update si. */
static int eval_due(run_loop *L, const bl_step_info *si) {
    const bl_run_config *c = L->c;
    long epochs = epoch_limit(c);
    int due = c->eval_epoch_end && si->epoch_end;
    if (c->eval_growth > 0) {
        if (!L->next_eval) L->next_eval = eval_spacing(c, 0);
        due = due || si->step >= L->next_eval;
    } else {
        due = due || (c->eval_every && si->step % c->eval_every == 0);
    }
    if (c->eval_samples && si->samples_seen >= L->next_eval_samples) {
        due = 1;
        while (L->next_eval_samples <= si->samples_seen)
            L->next_eval_samples += c->eval_samples;
    }
    if (c->eval_at_end &&
        ((c->steps && si->step >= c->steps) || (c->samples && si->samples_seen >= c->samples) ||
         (si->epoch_end && epochs && si->epoch + 1 >= epochs)))
        due = 1;
    if (due && c->eval_growth > 0) L->next_eval = si->step + eval_spacing(c, si->step);
    return due && (c->val || c->evaluate);
}

/* One update and all that follows it; L->r->stop_reason gets the reason to stop, if any. */
static bl_status one_update(run_loop *L, bl_error *err) {
    const bl_run_config *c = L->c;
    if ((c->stop_flag && *c->stop_flag) || (c->should_stop && c->should_stop(c->user)))
        bl_trainer_request_stop(L->t);
    bl_step_info si;
    bl_status st = bl_trainer_step(L->t, &si, err);
    if (st == BL_ERR_NUMERIC && try_revert(L, err, &st)) return st;
    if (st == BL_ERR_NUMERIC && c->diverged_stops) {
        bl_error_clear(err);
        L->r->stop = BL_RUN_STOP_DIVERGED;
        L->r->stop_reason = "diverged";
        return BL_OK;
    }
    if (st) return st;
    L->r->steps++;
    L->loss_sum += si.loss * si.batch;
    L->acc_sum += si.acc * si.batch;
    L->samples += si.batch;
    bl_run_event e = {.kind = BL_RUN_STEP, .step = &si};
    if ((st = bl_runlog_step(c->log, &si, err)) || (st = emit(L, &e, err))) return st;
    if (c->adapt && (st = adapt_step(L, &si, err))) return st;
    if (c->replay && (st = replay_step(L, err))) return st;
    int eval = eval_due(L, &si);
    if (eval && (st = evaluate(L, &si, err))) return st;
    if (si.epoch_end && (st = end_epoch(L, &si, err))) return st;
    if (c->save_every && c->save_path && si.step % c->save_every == 0 && (st = save(L, err)))
        return st;
    L->r->stop = stop_rule(L, &si, eval, &L->r->stop_reason);
    /* the summary reports the last epoch's means: reset only when going on */
    if (si.epoch_end && !L->r->stop_reason) L->loss_sum = L->acc_sum = 0, L->samples = 0;
    return BL_OK;
}

bl_status bl_run(bl_trainer *t, const bl_run_config *c, bl_run_result *r, bl_error *err) {
    memset(r, 0, sizeof *r);
    r->train_loss = r->train_acc = r->val_loss = r->val_acc = NAN;
    run_loop L = {.t = t, .c = c, .r = r, .dist = t->ctx->dist, .t0 = bl_now_sec()};
    if (c->eval_samples) /* the first evaluation after eval_samples more samples (also on resume) */
        L.next_eval_samples = (bl_trainer_samples_seen(t) / c->eval_samples + 1) * c->eval_samples;
    bl_status st = BL_OK;
    r->stop_reason = bl_run_already_done(t, c->steps, c->epochs);
    if (!r->stop_reason && c->samples && bl_trainer_samples_seen(t) >= c->samples)
        r->stop_reason = "already at the sample budget";
    if (r->stop_reason) r->stop = BL_RUN_STOP_DONE;
    while (!r->stop_reason && !st)
        st = one_update(&L, err);
    if (L.samples) r->train_loss = L.loss_sum / L.samples, r->train_acc = L.acc_sum / L.samples;
    r->wall_s = bl_now_sec() - L.t0;
    if (st) r->stop = BL_RUN_STOP_FAILED;
    if (st && bl_dist_broken(L.dist)) {
        r->comm_failed = 1;
        snprintf(r->msg, sizeof r->msg, "communication failed: %s", err ? err->msg : "?");
        r->stop_reason = r->msg;
    } else if (st) {
        r->stop_reason = "failed";
    }
    /* The log's last word. After a failure its own failure is moot: the first error stands. */
    bl_error lerr = {0};
    bl_status ls =
        bl_runlog_end(c->log, r->stop_reason, st ? (err ? err->msg : "?") : NULL,
                      bl_trainer_steps_done(t), bl_trainer_samples_seen(t), r->wall_s, &lerr);
    if (ls && !st) {
        if (err) *err = lerr;
        st = ls;
        r->stop = BL_RUN_STOP_FAILED;
        r->stop_reason = "failed";
    }
    return st;
}
