/* Data options shared by train, eval and predict: where the data comes from,
 * its format, and the validation split. */
#ifndef BL_CLI_DATA_OPTS_H
#define BL_CLI_DATA_OPTS_H

#include "args.h"
#include "batchlab/data.h"

typedef struct cli_data_opts {
    const char *data;   /* "fashion-mnist", a directory, or a file */
    const char *labels; /* labels file for .npy / IDX data */
    const char *test;   /* optional test set (file or directory) */
    const char *test_labels;
    const char *label_col; /* CSV: first | last | N */
    int header;            /* CSV has a header row */
    const char *norm;      /* unit | standard | none */
    double val_frac;       /* fraction of training data held out for validation */
} cli_data_opts;

void cli_data_opts_default(cli_data_opts *d);

/* The option table entries for these (train uses all; eval/predict a subset). */
#define CLI_DATA_OPTS(d)                                                                           \
    {"data", ARG_STR, &(d).data,                                                                   \
     "fashion-mnist (default), a directory of *-ubyte.gz files, X.csv, X.npy or IDX images", 0},   \
        {"labels", ARG_STR, &(d).labels, "labels file for .npy or IDX data", 0},                   \
        {"label-col", ARG_STR, &(d).label_col,                                                     \
         "CSV label column: first, last (default) or N (0-based)", 0},                             \
    {                                                                                              \
        "header", ARG_FLAG, &(d).header, "CSV: the first line is a header", 0                      \
    }

/* Load one dataset from path (+labels). When path is "fashion-mnist" or a directory,
 * `split` picks "train" or "test". Prints nothing: the caller reports err. */
bl_status cli_load_dataset(const cli_data_opts *d, const char *path, const char *labels,
                           const char *split, bl_mem *mem, bl_dataset *out, bl_error *err);
/* 1 if path names the Fashion-MNIST default or a directory. */
int cli_data_is_dir(const char *path);

/* Training data as train/validation/test with a normalisation fitted on train. */
typedef struct cli_splits {
    bl_dataset train, val, test;
    int have_val, have_test;
    bl_norm norm;
} cli_splits;

/* Load --data (split into train and --val-frac validation with seed), the test set
 * (--test, or Fashion-MNIST's own), fit --norm on train and apply it everywhere.
 * Prints nothing; *sp is zeroed first and may be freed whatever happens. */
bl_status cli_load_splits(const cli_data_opts *d, bl_mem *mem, cli_splits *sp, uint64_t seed,
                          bl_error *err);
void cli_splits_free(cli_splits *sp, bl_mem *mem);

#endif
