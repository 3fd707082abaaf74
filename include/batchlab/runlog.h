/* Run logs as JSON Lines: one object per optimizer step and one per epoch,
 * flushed as written so `tail -f`, jq and pandas.read_json(lines=True) can
 * follow a run. */
#ifndef BATCHLAB_RUNLOG_H
#define BATCHLAB_RUNLOG_H

#include <stdio.h>
#include "batchlab/adapt.h"
#include "batchlab/train.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bl_runlog {
    FILE *fp;
} bl_runlog;

typedef struct bl_epoch_info {
    long epoch; /* 0-based epoch just finished */
    long step;
    long samples_seen;
    double train_loss, train_acc; /* means over the epoch's training batches */
    double val_loss, val_acc;     /* NaN when there is no validation set */
    double elapsed_s;
} bl_epoch_info;

/* append=1 continues an existing log (resume). */
bl_status bl_runlog_open(bl_runlog *log, const char *path, int append, bl_error *err);
void bl_runlog_step(bl_runlog *log, const bl_step_info *s);
void bl_runlog_epoch(bl_runlog *log, const bl_epoch_info *e);
/* A validation evaluation (every --eval-every / --eval-samples, and at epoch ends). */
void bl_runlog_eval(bl_runlog *log, long step, long samples_seen, double val_loss, double val_acc,
                    double elapsed_s);
/* An adaptive-batch decision (changed = 0: evaluated and kept), with the lr after it and
 * the lr factor applied (d->lr_factor), enough to replay it (bl_batch_schedule_load). */
void bl_runlog_decision(bl_runlog *log, const bl_adapt_decision *d, int changed, float lr);
void bl_runlog_close(bl_runlog *log);

#ifdef __cplusplus
}
#endif

#endif
