/* Training progress: a live bar on a terminal, plain periodic lines otherwise. */
#ifndef BL_CLI_PROGRESS_H
#define BL_CLI_PROGRESS_H

#include "batchlab/runlog.h"
#include "batchlab/train.h"

typedef struct progress {
    int tty, quiet;
    double t_start, t_last;
    long total_steps; /* 0 when unknown (target-driven) */
    long steps_per_epoch;
    long first_step; /* step count at start (resume) */
    double ema_loss, ema_acc, ema_rate;
    int have_ema;
} progress;

void progress_init(progress *p, long total_steps, long steps_per_epoch, long first_step, int quiet);
void progress_step(progress *p, const bl_step_info *s);
void progress_epoch(progress *p, const bl_epoch_info *e);
void progress_clear(progress *p); /* erase the bar before printing other lines */

#endif
