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
    const bl_step_info *step;           /* STEP */
    const bl_epoch_info *epoch;         /* EPOCH */
    const bl_adapt_decision *decision;  /* DECISION */
    int applied;                        /* DECISION: the batch changed */
    bl_run_decision_source source;      /* DECISION */
    float lr;                           /* DECISION: the learning rate after it */
    long at_step, samples_seen;         /* EVAL */
    double val_loss, val_acc;           /* EVAL */
    double elapsed_s;                   /* since bl_run started (every kind) */
} bl_run_event;

/* Called on every rank, after the run log has the record. A status other than
 * BL_OK stops the run with that error (the callback fills err). */
typedef bl_status (*bl_run_event_fn)(void *user, const bl_run_event *e, bl_error *err);

typedef struct bl_run_config {
    /* stop rules (0: not used); steps and epochs count the whole run, also
     * before a resume. With neither, the run stops after one epoch. */
    long steps, epochs;
    double target_acc, target_loss; /* on validation, at an evaluation */
    /* validation (NULL: none): at every epoch end, every eval_every updates and
     * every eval_samples samples */
    const bl_dataset *val;
    long eval_every, eval_samples;
    /* checkpoints every save_every updates to save_path (with norm, may be NULL);
     * the final save is the caller's */
    long save_every;
    const char *save_path;
    const bl_norm *norm;
    /* --batch auto: the controller (NULL: the batch stays, or follows replay);
     * after a diverged update, up to max_reverts retries at a smaller batch */
    bl_adapt *adapt;
    int max_reverts;
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
    bl_run_event_fn on_event;
    void *user;
} bl_run_config;

typedef struct bl_run_result {
    const char *stop_reason; /* static, or msg below */
    long steps;              /* updates this call made */
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
