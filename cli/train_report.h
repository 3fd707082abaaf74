/* `batchlab train --report DIR`: a short report for a person (report.md and
 * report.html) with plots of validation accuracy, batch size and noise scale
 * over the run, and, for --batch auto, the throughput/goodput curves behind
 * the controller's choice. The history is kept in fixed arrays (decimated when
 * a run is long), so recording it never allocates in the training loop. Also
 * the summary `batchlab train` prints at the end (text or --json). */
#ifndef BL_CLI_TRAIN_REPORT_H
#define BL_CLI_TRAIN_REPORT_H

#include "batchlab/adapt.h"
#include "batchlab/train.h"

#define HIST_MAX 2048
typedef struct train_history {
    int n, stride, skip; /* steps kept, keep every stride-th */
    double step[HIST_MAX], batch[HIST_MAX], noise[HIST_MAX], lr[HIST_MAX];
    int m; /* evaluations */
    double ev_samples[HIST_MAX], ev_time[HIST_MAX], ev_acc[HIST_MAX];
    bl_adapt_decision dec[64]; /* batch changes (auto) */
    int n_dec;
} train_history;

void history_step(train_history *h, const bl_step_info *si);
void history_eval(train_history *h, long samples, double elapsed_s, double val_acc);
void history_decision(train_history *h, const bl_adapt_decision *d);

typedef struct train_outcome {
    const char *spec, *data, *stop_reason, *command;
    int final_batch, base_batch;
    float final_lr;
    long steps, samples;
    double wall_s, val_acc, test_acc, target_acc, noise_scale;
} train_outcome;

/* What the end-of-run summary says beyond the trainer's own state. */
typedef struct train_summary {
    const char *save_path, *log_path, *stop_reason, *data_name;
    bl_norm_kind norm;
    int adaptive, decisions; /* --batch auto, and its batch changes */
    double wall_s, train_loss, train_acc, val_loss, val_acc, test_loss, test_acc;
} train_summary;

/* Prints the summary on stdout, as text or (json) one JSON object. Returns 0, or 1 after an
 * error naming memory when the JSON could not be built. */
int train_print_summary(const char *cmd, bl_trainer *t, const train_summary *s, int json);

/* Writes dir/report.md, dir/report.html and the PNG/SVG plots under dir/plots, atomically.
 * A plot gnuplot cannot draw (not installed, nothing to draw) is left out; one that could
 * not be written is an error, as is any other file of the report. */
bl_status train_report_write(const char *dir, const train_history *h, const train_outcome *o,
                             const bl_adapt *adapt, bl_error *err);

#endif
