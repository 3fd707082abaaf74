/* A small table-driven option parser: each subcommand declares its options
 * once, and gets --help, unknown-flag errors and value validation for free.
 * Messages name the flag and the bad value. */
#ifndef BL_CLI_ARGS_H
#define BL_CLI_ARGS_H

#include <stddef.h>
#include <stdint.h>

typedef enum { ARG_FLAG, ARG_INT, ARG_LONG, ARG_FLOAT, ARG_DOUBLE, ARG_STR, ARG_SIZE } arg_type;

typedef struct cli_opt {
    const char *name; /* without the leading "--" */
    arg_type type;
    void *ptr; /* int* for FLAG/INT, long*, float*, double*, const char**, size_t* */
    const char *help;
    int seen; /* set by the parser */
} cli_opt;

/* Parse argv[1..] (argv[0] is the subcommand). Positional arguments go to
 * *positional (at most max_pos; NULL if none allowed). Returns 0 on success, 1 when
 * --help was printed, 2 after printing an error. */
int cli_parse(const char *cmd, const char *usage, cli_opt *opts, int n_opts, int argc, char **argv,
              const char **positional, int max_pos, int *n_pos);
/* The entry for a flag, to ask whether it was given. */
const cli_opt *cli_opt_find(const cli_opt *opts, int n_opts, const char *name);
/* Print an error in the common format and return 2 (the exit status). */
int cli_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Same format for a runtime failure (bad file, numeric error); returns 1. */
int cli_fail(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* An informational line on stderr (a newline is added); nothing on a silent rank. */
void cli_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Ranks other than 0 of a distributed run print nothing (rank 0 reports for all). */
void cli_set_silent(int silent);

/* "512M", "2G", "1.5GiB", "1000000" -> bytes; -1 if malformed. */
int cli_parse_bytes(const char *s, size_t *out);

/* "16,32,64" into ints (as_int, > 0, written to ints) or doubles (> 0, to dbls), at most
 * cap values, no repeats. Prints an error naming the flag and the bad value and returns 2,
 * or returns 0 with the count in *n. */
int cli_parse_list(const char *cmd, const char *flag, const char *s, int as_int, int *ints,
                   double *dbls, int cap, int *n);

/* Prints j on stdout (pretty, with a newline) and returns 0; or returns 1 after an error
 * naming memory when j is NULL, when an allocation failed since mark (bl_alloc_failures(),
 * taken before j was built: cJSON drops what it cannot allocate) or when printing did. */
struct cJSON;
int cli_print_json(const char *cmd, const struct cJSON *j, unsigned mark);

/* The --device option of every subcommand that computes, beside its --threads. */
#define CLI_DEVICE_HELP                                                                            \
    "where the model lives and computes: cpu; cuda or cuda:N (an NVIDIA GPU, where this build "    \
    "has CUDA: see batchlab info); or opaque (the CPU kernels over memory the host cannot read, "  \
    "a test of the backend seam) (default: $BATCHLAB_DEVICE, else cpu)"
/* --device and --tf32: where to compute, and the math allowed there. */
typedef struct cli_device {
    const char *name; /* NULL: $BATCHLAB_DEVICE, else cpu */
    int tf32;
} cli_device;
#define CLI_DEVICE_OPTS(dev)                                                                       \
    {"device", ARG_STR, &(dev).name, CLI_DEVICE_HELP, 0}, {                                        \
        "tf32", ARG_FLAG, &(dev).tf32,                                                             \
            "CUDA: allow TF32 tensor cores for fp32 matmuls and convolutions (faster, 10-bit "     \
            "mantissa products; off by default, as in PyTorch's matmuls)",                         \
            0                                                                                      \
    }
/* bl_ctx_init(ctx, threads) on the backend dev->name names, with dev->tf32. Returns 0
 * (the caller then owes a bl_ctx_free), or 2 after an error naming --device and the
 * accepted values, or --tf32 on a device without it (ctx already freed). */
struct bl_ctx;
int cli_ctx_init(const char *cmd, struct bl_ctx *ctx, int threads, const cli_device *dev);

/* 1 if s ends with suffix (file-type dispatch by extension). */
int cli_ends_with(const char *s, const char *suffix);

#endif
