/* Dataset selection for the CLI: resolves "fashion-mnist", directories and
 * files by extension to the library's readers. */
#include "data_opts.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void cli_data_opts_default(cli_data_opts *d) {
    memset(d, 0, sizeof *d);
    d->data = "fashion-mnist";
    d->label_col = "last";
    d->norm = "unit";
    d->val_frac = 0.1;
}


int cli_data_is_dir(const char *path) {
    struct stat st;
    return !strcmp(path, "fashion-mnist") || (stat(path, &st) == 0 && S_ISDIR(st.st_mode));
}

static bl_status parse_label_col(const char *s, int *out, bl_error *err) {
    if (!strcmp(s, "first")) return *out = 0, BL_OK;
    if (!strcmp(s, "last")) return *out = -1, BL_OK;
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < 0 || v > 1000000)
        return bl_fail(err, BL_ERR_ARG,
                       "--label-col expects first, last or a 0-based column number, got '%s'", s);
    *out = (int)v;
    return BL_OK;
}

bl_status cli_load_dataset(const cli_data_opts *d, const char *path, const char *labels,
                           const char *split, bl_mem *mem, bl_dataset *out, bl_error *err) {
    bl_status st;
    memset(out, 0, sizeof *out);
    if (cli_data_is_dir(path)) {
        const char *dir = !strcmp(path, "fashion-mnist") ? NULL : path;
        bl_dataset other = {0};
        int want_test = split && !strcmp(split, "test");
        st = bl_dataset_load_fashion_mnist(want_test ? &other : out, want_test ? out : &other, mem,
                                           dir, err);
        bl_dataset_free(&other, mem);
    } else if (cli_ends_with(path, ".csv")) {
        int col = -1;
        st = parse_label_col(d->label_col, &col, err);
        if (!st) st = bl_dataset_load_csv(out, mem, path, col, d->header, err);
    } else {
        if (!labels)
            return bl_fail(err, BL_ERR_ARG, "%s: --labels is required for .npy and IDX data", path);
        if (cli_ends_with(path, ".npy"))
            st = bl_dataset_load_npy(out, mem, path, labels, err);
        else
            st = bl_dataset_load_idx(out, mem, path, labels, err);
    }
    return st;
}

bl_status cli_load_splits(const cli_data_opts *d, bl_mem *mem, cli_splits *sp, uint64_t seed,
                          bl_error *err) {
    memset(sp, 0, sizeof *sp);
    bl_dataset all;
    bl_status st = cli_load_dataset(d, d->data, d->labels, "train", mem, &all, err);
    if (st) return st;
    if (d->val_frac < 0 || d->val_frac >= 1) {
        bl_dataset_free(&all, mem);
        return bl_fail(err, BL_ERR_ARG, "--val-frac %g must be in [0, 1)", d->val_frac);
    }
    size_t val_n = (size_t)(d->val_frac * (double)all.n);
    if ((st = bl_dataset_split(&all, &sp->train, &sp->val, val_n, seed, mem, err))) return st;
    sp->have_val = val_n > 0;
    const char *test = d->test;
    if (!test && cli_data_is_dir(d->data)) test = d->data;
    if (test) {
        if ((st = cli_load_dataset(d, test, d->test_labels, "test", mem, &sp->test, err)))
            return st;
        sp->have_test = 1;
    }
    bl_norm_kind nk;
    if ((st = bl_norm_parse(&nk, d->norm, err))) return bl_error_prefix(err, "--norm");
    if ((st = bl_norm_fit(&sp->norm, mem, &sp->train, nk, err))) return st;
    bl_norm_apply(&sp->norm, &sp->train);
    if (sp->have_val) bl_norm_apply(&sp->norm, &sp->val);
    if (sp->have_test) {
        if (sp->test.dim != sp->train.dim)
            return bl_fail(err, BL_ERR_SHAPE,
                           "%s: test samples have %zu values but training samples have %zu",
                           sp->test.name, sp->test.dim, sp->train.dim);
        bl_norm_apply(&sp->norm, &sp->test);
    }
    return BL_OK;
}

void cli_splits_free(cli_splits *sp, bl_mem *mem) {
    bl_dataset_free(&sp->train, mem);
    bl_dataset_free(&sp->val, mem);
    bl_dataset_free(&sp->test, mem);
    bl_norm_free(&sp->norm, mem);
}
