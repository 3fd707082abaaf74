/* batchlab: command dispatcher. Each subcommand lives in its own file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "blas_guard.h"
#include "cli.h"
#include "batchlab/backend.h"

/* BATCHLAB_ISA must name a level this build has and this CPU runs; the
 * library would quietly fall back, but a user who forces a level wants to
 * know that it did not take. `info` still runs, and says what it chose. */
static int check_isa_env(const char *cmd) {
    const char *env = getenv("BATCHLAB_ISA");
    bl_cpu_isa isa;
    bl_error err = {0};
    if (!env || !*env || !strcmp(cmd, "info") || bl_cpu_isa_built(BL_CPU_ISA_NATIVE)) return 0;
    if (bl_cpu_isa_parse(env, &isa, &err) != BL_OK)
        return fprintf(stderr, "batchlab: BATCHLAB_ISA: %s\n", err.msg), 2;
    if (!bl_cpu_isa_usable(isa))
        return fprintf(stderr,
                       "batchlab: BATCHLAB_ISA=%s: this CPU cannot run that level (see "
                       "`batchlab info`)\n",
                       env),
               2;
    return 0;
}

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

static int run_command(int argc, char **argv) {
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
        if (!strcmp(argv[1], commands[i].name)) {
            int rc = check_isa_env(argv[1]);
            return rc ? rc : commands[i].fn(argc - 1, argv + 1);
        }
    fprintf(stderr, "batchlab: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}

/* Failing exits skip the destructors (blas_guard.c): an OpenBLAS worker that
 * could not get its buffer must not turn an error into a hang. */
int main(int argc, char **argv) {
    if (cli_blas_guard()) cli_exit_now(1);
    int rc = run_command(argc, argv);
    if (rc) cli_exit_now(rc);
    return 0;
}
