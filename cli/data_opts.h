/* Data options shared by train, eval, predict and the tuning commands: where the
 * data comes from, how to read it, the validation split and the normalisation. */
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
    int header;            /* CSV: the first line is a header */
    int no_header;         /* CSV: the first line is data (no detection) */
    const char *sep;       /* CSV: , tab ; space (NULL: detect) */
    int classes;           /* declared number of classes (0: from the labels) */
    int min_classes;       /* fewer distinct labels is an error (2 for training data) */
    const char *norm;      /* auto | unit | standard | none */
    double val_frac;       /* fraction of training data held out for validation */
    int quiet;             /* no notes (header detected, normalisation chosen) */
} cli_data_opts;

/* Defaults for training data: last label column, detected header and separator,
 * at least two classes, --norm auto, --val-frac 0.1. */
void cli_data_opts_default(cli_data_opts *d);

/* The option table entries for these (train uses all; eval/predict a subset). */
#define CLI_DATA_OPTS(d)                                                                           \
    {"data", ARG_STR, &(d).data,                                                                   \
     "fashion-mnist (default), a directory of *-ubyte.gz files, or a CSV (.gz), .npy or IDX "      \
     "file (told apart by content)",                                                               \
     0},                                                                                           \
        {"labels", ARG_STR, &(d).labels, "labels file for .npy or IDX data", 0},                   \
        {"label-col", ARG_STR, &(d).label_col,                                                     \
         "CSV label column: first, last (default) or N (0-based)", 0},                             \
        {"header", ARG_FLAG, &(d).header, "CSV: the first line is a header (default: detect)", 0}, \
        {"no-header", ARG_FLAG, &(d).no_header, "CSV: the first line is data", 0}, {               \
        "sep", ARG_STR, &(d).sep, "CSV separator: , tab ; or space (default: detect)", 0           \
    }

/* --classes, for the commands that train. */
#define CLI_CLASSES_OPT(d)                                                                         \
    {                                                                                              \
        "classes", ARG_INT, &(d).classes,                                                          \
            "number of classes K; labels must be < K (default: 1 + the largest label, every "      \
            "class present)",                                                                      \
            0                                                                                      \
    }

/* Load one labelled dataset from path (+labels), whatever its format, with the label
 * rules of d->classes and d->min_classes. When path is "fashion-mnist" or a directory,
 * `split` picks "train" or "test". A note for a detected header goes to stderr unless
 * d->quiet; errors go to err. */
bl_status cli_load_dataset(const cli_data_opts *d, const char *path, const char *labels,
                           const char *split, bl_mem *mem, bl_dataset *out, bl_error *err);
/* Like cli_load_dataset without labels (predict): a CSV's label column is
 * label_col if given, else none. */
bl_status cli_load_inputs(const cli_data_opts *d, const char *path, bl_mem *mem, bl_dataset *out,
                          bl_error *err);
/* 1 if path names the Fashion-MNIST default or a directory. */
int cli_data_is_dir(const char *path);

/* Fit d->norm (auto resolved by the data) on train, and say which was chosen unless
 * d->quiet. */
bl_status cli_fit_norm(const cli_data_opts *d, bl_mem *mem, const bl_dataset *train, bl_norm *out,
                       bl_error *err);

/* Training data as train/validation/test with a normalisation fitted on train. */
typedef struct cli_splits {
    bl_dataset train, val, test;
    int have_val, have_test;
    bl_norm norm;
} cli_splits;

/* Load --data (split into train and --val-frac validation with seed), the test set
 * (--test, or Fashion-MNIST's own; its labels must be below the training classes),
 * fit --norm on train and apply it everywhere. Prints only notes; *sp is zeroed
 * first and may be freed whatever happens. */
bl_status cli_load_splits(const cli_data_opts *d, bl_mem *mem, cli_splits *sp, uint64_t seed,
                          bl_error *err);
void cli_splits_free(cli_splits *sp, bl_mem *mem);

#endif
