/* `batchlab train`'s options: the table, and the checks that turn them into a
 * training configuration, apart from the command's flow (cmd_train.c). */
#ifndef BL_CLI_TRAIN_OPTS_H
#define BL_CLI_TRAIN_OPTS_H

#include "args.h"
#include "data_opts.h"
#include "optim_opts.h"
#include "batchlab/batch_schedule.h"
#include "batchlab/train.h"

typedef struct train_opts {
    const char *model;
    cli_optim_args optim;
    const char *log_path, *save_path, *resume_path, *report, *batch_schedule;
    const char *batch, *memory, *adapt_lr, *comm_dtype, *overlap;
    cli_device device;
    bl_batch_schedule replay; /* --batch-schedule */
    int auto_batch, min_batch, max_batch, noise_decay_set;
    int stop_default; /* neither --steps nor --epochs was given */
    long adapt_every;
    int epochs, json, quiet, threads, no_prefetch, drop_last, no_overlap;
    size_t bucket_kb;
    long steps, save_every, eval_every, eval_samples, warmup, step_size, seed;
    double target_acc, target_loss, comm_timeout, comm_poll_us;
} train_opts;

#define TRAIN_MAX_OPTS 96

/* The parsed command line. The option table points into it: it must not move. */
typedef struct train_cli {
    train_opts o;
    bl_train_config cfg;
    cli_data_opts d;
    cli_opt opts[TRAIN_MAX_OPTS];
    int n_opts;
} train_cli;

/* Parses argv (argv[0] is the subcommand) into tc for a world of `world` ranks: 0, 1
 * after --help was printed, or 2 after an error naming the flag. Without --steps and
 * --epochs, o.epochs becomes 1 (50 with a target) and o.stop_default says so. */
int train_cli_parse(const char *cmd, train_cli *tc, int argc, char **argv, int world);
/* Whether option name was given on the command line. */
int train_cli_given(const train_cli *tc, const char *name);

#endif
