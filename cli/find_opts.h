/* `batchlab find`'s options, shared by its two halves: cmd_find.c (the command,
 * --memory) and find_throughput.c (--throughput and --goodput). */
#ifndef BL_CLI_FIND_OPTS_H
#define BL_CLI_FIND_OPTS_H

#include <cjson/cJSON.h>
#include "args.h"
#include "batchlab/core.h"
#include "batchlab/data.h"
#include "batchlab/optim.h"

typedef struct find_opts {
    const char *model, *optimizer, *memory, *mode, *batches, *out;
    cli_device device;
    int throughput, goodput, json, threads, max_batch, batch, runs, base_batch, noise_steps;
    double margin, min_run, noise_scale;
} find_opts;

/* --throughput (and --goodput): samples/s against the batch, the knee, and with
 * --goodput the noise scale's effect; results into j, plots into o->out. Returns
 * 0 or an exit status after printing the error. */
int find_run_throughput(const char *cmd, find_opts *o, const bl_dataset *ds,
                        const bl_optim_config *opt, bl_ctx *ctx, cJSON *j);

#endif
