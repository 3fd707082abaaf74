/* batchlab: command dispatcher. Each subcommand lives in its own file. */
#include <stdio.h>
#include <string.h>
#include "cli.h"

static const struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
} commands[] = {
    {"train", cli_train, "train a model (mini-batch SGD/momentum/Adam)"},
    {"eval", cli_eval, "evaluate a checkpoint on a dataset"},
    {"predict", cli_predict, "batched inference to CSV or .npy"},
    {"info", cli_info, "version, BLAS, threads, CUDA and MPI availability"},
    {"serve", cli_serve, "KServe v2 HTTP server with dynamic batching and /metrics"},
    {"load", cli_load, "load generator: open/closed loop, percentiles, rate sweeps"},
    {"find", cli_find, "largest batch for a memory budget, throughput knee, goodput-optimal batch"},
    {"tune", cli_tune, "joint batch size x learning rate search (ASHA, examples as the resource)"},
    {"noise", cli_noise, "gradient noise scale of a checkpoint, with an interval"},
    {"sweep", cli_sweep, "steps to a target across batch sizes, B_crit, plots, report"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: batchlab <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\n`batchlab <command> --help` lists a command's options.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("batchlab %s\n", BL_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "batchlab: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
