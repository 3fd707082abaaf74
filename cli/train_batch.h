/* `batchlab train`: the parts of the loop that change the batch or continue a run
 * (--batch-schedule, --resume), kept apart from cmd_train.c; the loop itself,
 * with --batch auto's decisions, is the library's bl_run. */
#ifndef BL_CLI_TRAIN_BATCH_H
#define BL_CLI_TRAIN_BATCH_H

#include "args.h"
#include "batchlab/batch_schedule.h"
#include "batchlab/train.h"

/* --batch-schedule: load the schedule into s and set the first batch, with activations
 * reserved for its largest (each update one micro-batch, as under --batch auto, so a rerun
 * is bit-identical). batch is the --batch given, or NULL. Returns an exit status (2) or 0. */
int train_replay_config(const char *cmd, const char *path, const char *batch, bl_batch_schedule *s,
                        bl_train_config *cfg, int world);
/* --resume: restore the checkpoint, keeping its learning-rate schedule and refusing an
 * option given on this command line (opts) that asks for another; a note when --steps
 * or --epochs implied another cosine length. */
bl_status train_resume(bl_trainer *t, const char *path, const bl_train_config *asked, cli_opt *opts,
                       int n_opts, char *note, size_t cap, bl_error *err);
#endif
