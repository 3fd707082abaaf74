/* `batchlab train`: the parts of the loop that change the batch or continue a run
 * (--batch auto, --batch-schedule, --resume), kept apart from cmd_train.c. */
#ifndef BL_CLI_TRAIN_BATCH_H
#define BL_CLI_TRAIN_BATCH_H

#include "args.h"
#include "progress.h"
#include "train_report.h"
#include "batchlab/adapt.h"
#include "batchlab/dist.h"
#include "batchlab/runlog.h"
#include "batchlab/train.h"

/* --batch-schedule: load the schedule into s and set the first batch, with activations
 * reserved for its largest (each update one micro-batch, as under --batch auto, so a rerun
 * is bit-identical). batch is the --batch given, or NULL. Returns an exit status (2) or 0. */
int train_replay_config(const char *cmd, const char *path, const char *batch, bl_batch_schedule *s,
                        bl_train_config *cfg, int world);
/* --batch auto, after each step: the controller decides; changes are applied, logged
 * (with the lr factor, so the log replays exactly) and counted in *decisions. Returns
 * the exit status on failure, else 0. */
int train_adapt_step(const char *cmd, bl_trainer *t, bl_adapt *a, const bl_step_info *si,
                     bl_dist *dist, bl_runlog *log, progress *prog, train_history *hist,
                     int *decisions);
/* --batch-schedule, after each step: the schedule's changes due now, each logged as a
 * decision so that the replay's own log replays too. */
int train_replay_step(const char *cmd, bl_trainer *t, const bl_batch_schedule *s, const char *path,
                      int *next, bl_runlog *log);
/* --resume: restore the checkpoint, keeping its learning-rate schedule and refusing an
 * option given on this command line (opts) that asks for another; a note when --steps
 * or --epochs implied another cosine length. */
bl_status train_resume(bl_trainer *t, const char *path, const bl_train_config *asked, cli_opt *opts,
                       int n_opts, char *note, size_t cap, bl_error *err);
/* Why there is nothing left to train (--steps and --epochs count the whole run), or NULL. */
const char *train_already_done(bl_trainer *t, long steps, long epochs);

#endif
