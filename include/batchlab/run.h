/* bl_run: the training loop, in the library. It owns what happens between
 * updates: evaluation cadence, stop rules (steps, epochs, targets, a stop
 * flag), the checkpoint cadence, the adaptive-batch controller with its
 * divergence revert, a recorded batch schedule to replay, the run log, and
 * events for the caller (progress, plots) through one callback. The trainer
 * (train.h) does the update itself: micro-batching, ranks, the noise scale.
 *
 *   bl_run_config rc;
 *   bl_run_config_default(&rc);
 *   rc.epochs = 5, rc.val = &val;
 *   bl_run_result r;
 *   if (bl_run(t, &rc, &r, &err)) ...;   // r.stop_reason says why it stopped
 *
 * Under MPI every rank calls bl_run with the same configuration; decisions
 * are taken from values every rank agrees on, checkpoints are written by rank
 * 0, and every rank learns whether that worked. */
#ifndef BATCHLAB_RUN_H
#define BATCHLAB_RUN_H

#include <signal.h>
#include "batchlab/adapt.h"
#include "batchlab/batch_schedule.h"
#include "batchlab/runlog.h"
#include "batchlab/train.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum bl_run_event_kind {
    BL_RUN_STEP,     /* an update finished: step */
    BL_RUN_EVAL,     /* a validation evaluation: at_step, samples_seen, val_loss, val_acc */
    BL_RUN_EPOCH,    /* an epoch finished: epoch */
    BL_RUN_DECISION, /* the batch was (re)considered: decision, applied, source */
} bl_run_event_kind;

typedef enum bl_run_decision_source {
    BL_RUN_ADAPT,  /* the adaptive-batch controller */
    BL_RUN_REVERT, /* a diverged update, retried at the last batch that worked */
    BL_RUN_REPLAY, /* a recorded batch schedule */
} bl_run_decision_source;

typedef struct bl_run_event {
    bl_run_event_kind kind;
    const bl_step_info *step;          /* STEP */
    const bl_epoch_info *epoch;        /* EPOCH */
    const bl_adapt_decision *decision; /* DECISION */
    int applied;                       /* DECISION: the batch changed */
    bl_run_decision_source source;     /* DECISION */
    float lr;                          /* DECISION: the learning rate after it */
    long at_step, samples_seen;        /* EVAL */
    double val_loss, val_acc;          /* EVAL */
    double elapsed_s;                  /* since bl_run started (every kind) */
} bl_run_event;

/* Called on every rank, after the run log has the record. A status other than
 * BL_OK stops the run with that error (the callback fills err). */
typedef bl_status (*bl_run_event_fn)(void *user, const bl_run_event *e, bl_error *err);

typedef struct bl_run_config {
    /* stop rules (0: not used); steps, epochs and samples count the whole run,
     * also before a resume. With none of them, the run stops after one epoch. */
    long steps, epochs, samples;
    double target_acc, target_loss; /* on validation, at an evaluation */
    /* validation (NULL: none): at every epoch end (eval_epoch_end, on by default),
     * every eval_every updates and every eval_samples samples. With eval_growth > 0
     * the spacing widens as the run goes: after an evaluation at update s the next
     * is max(eval_every, floor(eval_growth s), 1) updates later. eval_at_end also
     * evaluates the last update when --steps or --epochs ends the run between
     * evaluations. evaluate (NULL: bl_trainer_evaluate on val) evaluates through
     * the caller, who may hold a model of its own for it. */
    const bl_dataset *val;
    long eval_every, eval_samples;
    int eval_epoch_end, eval_at_end;
    double eval_growth;
    bl_status (*evaluate)(void *user, bl_trainer *t, double *loss, double *acc, bl_error *err);
    /* checkpoints every save_every updates to save_path (with norm, may be NULL);
     * the final save is the caller's */
    long save_every;
    const char *save_path;
    const bl_norm *norm;
    /* --batch auto: the controller (NULL: the batch stays, or follows replay);
     * after a diverged update, up to max_reverts retries at a smaller batch */
    bl_adapt *adapt;
    int max_reverts;
    /* a diverged update that is not reverted ends the run with stop_reason
     * "diverged" (BL_RUN_STOP_DIVERGED) and BL_OK, instead of failing with BL_ERR_NUMERIC */
    int diverged_stops;
    /* a recorded batch schedule to follow (NULL: none); *replay_next is the next
     * entry (bl_trainer_follow_schedule's), advanced as entries apply; replay_name
     * names it in decisions ("replayed from NAME") */
    const bl_batch_schedule *replay;
    int *replay_next;
    const char *replay_name;
    /* where records go (NULL: nowhere): steps, evaluations, epochs, decisions */
    bl_runlog *log;
    /* a flag the caller sets (a signal handler): the run stops after the update
     * in flight, on every rank, with stop_reason "interrupted" */
    volatile sig_atomic_t *stop_flag;
    int (*should_stop)(void *user); /* polled like the flag (NULL: none) */
    bl_run_event_fn on_event;
    void *user;
} bl_run_config;

/* Which rule ended a run. */
typedef enum bl_run_stop {
    BL_RUN_STOP_FAILED, /* an error (bl_run's status) */
    BL_RUN_STOP_DONE,   /* nothing left to do: the trainer was already there */
    BL_RUN_STOP_STEPS,
    BL_RUN_STOP_SAMPLES,
    BL_RUN_STOP_EPOCHS,   /* including "target not reached within --epochs" */
    BL_RUN_STOP_TARGET,   /* target_acc or target_loss reached */
    BL_RUN_STOP_FLAG,     /* the stop flag or should_stop: "interrupted" */
    BL_RUN_STOP_DIVERGED, /* diverged_stops */
} bl_run_stop;

typedef struct bl_run_result {
    bl_run_stop stop;
    const char *stop_reason;      /* a sentence: static, or msg below */
    long steps;                   /* updates this call made */
    double train_loss, train_acc; /* means over the last (possibly partial) epoch; NaN if none */
    double val_loss, val_acc;     /* the last evaluation; NaN if none */
    int decisions;                /* batch changes by the controller */
    int reverts;                  /* diverged updates recovered from */
    int comm_failed;              /* a peer stopped answering (see stop_reason) */
    double wall_s;
    char msg[1100];
} bl_run_result;

void bl_run_config_default(bl_run_config *c);
/* Trains until a stop rule holds. BL_OK when it stopped by a rule or the flag;
 * otherwise the failing status (a diverged update beyond the reverts, a full
 * disk, a lost peer: r->comm_failed), with r still describing the run so far. */
bl_status bl_run(bl_trainer *t, const bl_run_config *c, bl_run_result *r, bl_error *err);
/* Why a run with these rules has nothing left to do (the trainer, resumed, is
 * already there), or NULL. */
const char *bl_run_already_done(const bl_trainer *t, long steps, long epochs);

#ifdef __cplusplus
}
#endif

#endif
