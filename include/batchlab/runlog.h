/* Run logs as JSON Lines: one object per optimizer step and one per epoch,
 * each written with one write(2) as it happens, so `tail -f`, jq and
 * pandas.read_json(lines=True) can follow a run. */
#ifndef BATCHLAB_RUNLOG_H
#define BATCHLAB_RUNLOG_H

#include <stdio.h>
#include "batchlab/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The records it writes are defined where they are made (train.h, adapt.h); the
 * log only needs their tags, so it does not pull those headers in. */
struct bl_step_info;
struct bl_adapt_decision;

/* A zeroed bl_runlog is "no log": every call on it does nothing and succeeds. */
typedef struct bl_runlog {
    int open;
    int fd;
    long long bytes; /* end of the last complete record */
    char path[4096];
    char line[2048]; /* the step record, formatted here: no allocation per step */
} bl_runlog;

typedef struct bl_epoch_info {
    long epoch; /* 0-based epoch just finished */
    long step;
    long samples_seen;
    double train_loss, train_acc; /* means over the epoch's training batches */
    double val_loss, val_acc;     /* NaN when there is no validation set */
    double elapsed_s;
} bl_epoch_info;

/* append=1 continues an existing log (resume); otherwise the file is emptied.
 * BL_ERR_IO (cannot create), BL_ERR_ARG (path too long). */
bl_status bl_runlog_open(bl_runlog *log, const char *path, int append, bl_error *err);
/* Each record is one line, written whole or not at all: when a write fails (disk
 * full, I/O error) the file is cut back to the last complete line, so every line
 * stays valid JSON, and BL_ERR_IO names the file (BL_ERR_NOMEM when the record
 * could not be built). */
bl_status bl_runlog_step(bl_runlog *log, const struct bl_step_info *s, bl_error *err);
bl_status bl_runlog_epoch(bl_runlog *log, const bl_epoch_info *e, bl_error *err);
/* A validation evaluation (every --eval-every / --eval-samples, and at epoch ends). */
bl_status bl_runlog_eval(bl_runlog *log, long step, long samples_seen, double val_loss,
                         double val_acc, double elapsed_s, bl_error *err);
/* An adaptive-batch decision (changed = 0: evaluated and kept), with the lr after it and
 * the lr factor applied (d->lr_factor), enough to replay it (bl_batch_schedule_load). */
bl_status bl_runlog_decision(bl_runlog *log, const struct bl_adapt_decision *d, int changed,
                             float lr, bl_error *err);
/* The run's last record, {"type":"end"}: why it stopped (stop_reason, e.g. "steps",
 * "interrupted", "communication failed: rank 1 stopped answering ..."), the error that
 * ended it (NULL when none), and where it was. bl_run writes it, so a log always says how
 * its run ended, also when the launcher loses the terminal's last lines. */
bl_status bl_runlog_end(bl_runlog *log, const char *stop_reason, const char *error, long step,
                        long samples_seen, double elapsed_s, bl_error *err);
/* Any record: `record` (a cJSON object, still the caller's) as one line. */
struct cJSON;
bl_status bl_runlog_record(bl_runlog *log, const struct cJSON *record, bl_error *err);
/* Syncs and closes the log: BL_ERR_IO naming the file if what was written may not be on
 * disk. Safe on a closed or zeroed log (err may be NULL when the outcome is moot). */
bl_status bl_runlog_close(bl_runlog *log, bl_error *err);

#ifdef __cplusplus
}
#endif

#endif
