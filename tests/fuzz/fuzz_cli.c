/* Fuzz target: the CLI's option parser (cli/args.c). The input, split on NUL
 * bytes, is argv after the subcommand; the options table has every value type
 * and the shared data options, as `train` and `find` do, and up to two
 * positional arguments, as `serve` takes. After a successful parse the values
 * that commands parse further go through cli_parse_bytes (--memory) and
 * cli_parse_list (--batches, --lrs), as find and tune do.
 *
 * Errors are silenced (cli_set_silent) and --help's text goes to /dev/null, so
 * nothing prints. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "args.h"
#include "data_opts.h"
#include "fuzz.h"

#define CLI_MAX_ARGS 64

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    cli_set_silent(1);
    int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
        dup2(fd, STDOUT_FILENO);
        close(fd);
    }
    return 0;
}

static void parse_values(const char *memory, const char *batches, const char *lrs) {
    size_t bytes;
    if (memory) cli_parse_bytes(memory, &bytes);
    int ints[16], n = 0;
    double dbls[16];
    if (batches) cli_parse_list("find", "--batches", batches, 1, ints, NULL, 16, &n);
    if (lrs) cli_parse_list("tune", "--lrs", lrs, 0, NULL, dbls, 16, &n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* A NUL-terminated copy, so the last argument ends too. */
    char *buf = malloc(size + 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    char *argv[CLI_MAX_ARGS + 2];
    int argc = 0;
    argv[argc++] = "train";
    for (size_t i = 0; i <= size && argc <= CLI_MAX_ARGS; i += strlen(buf + i) + 1)
        argv[argc++] = buf + i;
    argv[argc] = NULL;

    cli_data_opts d;
    cli_data_opts_default(&d);
    const char *model = "mlp", *memory = NULL, *batches = NULL, *lrs = NULL;
    int batch = 64, quiet = 0;
    long steps = 0;
    float lr = 0.1f;
    double margin = 0.1;
    size_t max_body = 0;
    cli_opt opts[] = {
        {"model", ARG_STR, &model, "model spec or preset", 0},
        {"batch", ARG_INT, &batch, "batch size", 0},
        {"steps", ARG_LONG, &steps, "optimizer updates", 0},
        {"lr", ARG_FLOAT, &lr, "learning rate", 0},
        {"margin", ARG_DOUBLE, &margin, "fraction of the budget kept free", 0},
        {"max-body-bytes", ARG_SIZE, &max_body, "request body limit", 0},
        {"memory", ARG_STR, &memory, "memory budget (512M, 2G)", 0},
        {"batches", ARG_STR, &batches, "batch sizes to try", 0},
        {"lrs", ARG_STR, &lrs, "learning rates to try", 0},
        {"quiet", ARG_FLAG, &quiet, "print nothing but errors", 0},
        CLI_DATA_OPTS(d),
        CLI_CLASSES_OPT(d),
    };
    const char *positional[2];
    int n_pos = 0;
    int rc = cli_parse("train", "[options]", opts, (int)(sizeof opts / sizeof opts[0]), argc, argv,
                       positional, 2, &n_pos);
    fuzz_note("cli", rc == 0 ? "parsed" : rc == 1 ? "help" : "error");
    if (rc == 0) {
        if (n_pos < 0 || n_pos > 2) fuzz_fail("cli_parse returned too many positionals");
        parse_values(memory, batches, lrs);
        if (cli_opt_find(opts, (int)(sizeof opts / sizeof opts[0]), "model") == NULL)
            fuzz_fail("cli_opt_find lost an option");
    } else if (rc != 1 && rc != 2) {
        fuzz_fail("cli_parse returned a status other than 0, 1 or 2");
    }
    free(buf);
    return 0;
}
