/* Dataset selection for the CLI: "fashion-mnist" and directories go to the
 * Fashion-MNIST loader; any file goes to bl_dataset_load, which tells the
 * format from the content. Notes about what was detected (a header line, the
 * normalisation chosen) go to stderr, so stdout stays for results. */
#include "data_opts.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void cli_data_opts_default(cli_data_opts *d) {
    memset(d, 0, sizeof *d);
    d->data = "fashion-mnist";
    d->label_col = "last";
    d->norm = "auto";
    d->val_frac = 0.1;
    d->min_classes = 2;
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

static bl_status parse_sep(const char *s, char *out, bl_error *err) {
    if (!s) return *out = 0, BL_OK;
    if (!strcmp(s, ",") || !strcmp(s, "comma")) return *out = ',', BL_OK;
    if (!strcmp(s, "\t") || !strcmp(s, "\\t") || !strcmp(s, "tab")) return *out = '\t', BL_OK;
    if (!strcmp(s, ";") || !strcmp(s, "semicolon")) return *out = ';', BL_OK;
    if (!strcmp(s, " ") || !strcmp(s, "space")) return *out = ' ', BL_OK;
    return bl_fail(err, BL_ERR_ARG, "--sep expects ',', tab, ';' or space, got '%s'", s);
}

/* The reader options d asks for (label_col NULL: no label column). */
static bl_status load_opts(const cli_data_opts *d, const char *label_col, bl_load_opts *o,
                           bl_error *err) {
    bl_load_opts_default(o);
    if (d->header && d->no_header)
        return bl_fail(err, BL_ERR_ARG, "--header and --no-header contradict each other");
    o->header = d->header ? 1 : d->no_header ? 0 : BL_HEADER_AUTO;
    o->classes = d->classes;
    o->min_classes = d->min_classes;
    if ((d->classes < 0 && d->classes != BL_CLASSES_ANY) || d->classes > BL_MAX_CLASSES ||
        (d->classes == 1 && d->min_classes >= 2))
        return bl_fail(err, BL_ERR_ARG, "--classes %d is invalid: it must be 2..%d", d->classes,
                       BL_MAX_CLASSES);
    o->label_col = BL_LABEL_NONE;
    bl_status st = label_col ? parse_label_col(label_col, &o->label_col, err) : BL_OK;
    if (st == BL_OK) st = parse_sep(d->sep, &o->sep, err);
    return st;
}

static void note_header(const cli_data_opts *d, const char *path, const bl_load_info *info) {
    if (info->header_detected && !d->quiet)
        cli_note("%s: header detected: '%s' (--no-header reads it as data)", path,
                 info->header_text);
}

static const char *format_name(const bl_load_info *info) {
    return info->format == BL_FILE_NPY   ? "a NumPy array (.npy)"
           : info->format == BL_FILE_IDX ? "an IDX file"
                                         : "a CSV file";
}

bl_status cli_load_dataset(const cli_data_opts *d, const char *path, const char *labels,
                           const char *split, bl_mem *mem, bl_dataset *out, bl_error *err) {
    memset(out, 0, sizeof *out);
    if (cli_data_is_dir(path)) {
        const char *dir = !strcmp(path, "fashion-mnist") ? NULL : path;
        bl_dataset other = {0};
        int want_test = split && !strcmp(split, "test");
        bl_status st = bl_dataset_load_fashion_mnist(want_test ? &other : out,
                                                     want_test ? out : &other, mem, dir, err);
        bl_dataset_free(&other, mem);
        if (st == BL_OK && d->classes && d->classes != out->n_classes)
            return bl_fail(err, BL_ERR_ARG, "--classes %d: Fashion-MNIST has %d classes",
                           d->classes, out->n_classes);
        return st;
    }
    bl_load_opts o;
    bl_load_info info;
    bl_status st = load_opts(d, d->label_col, &o, err);
    if (st == BL_OK) st = bl_dataset_load(out, mem, path, labels, &o, &info, err);
    if (st != BL_OK) return st;
    note_header(d, path, &info);
    if (!labels && info.format != BL_FILE_TEXT) {
        bl_dataset_free(out, mem);
        return bl_fail(err, BL_ERR_ARG, "%s is %s: its labels come from a separate file: pass %s",
                       path, format_name(&info),
                       split && !strcmp(split, "test") && path == d->test ? "--test-labels FILE"
                                                                          : "--labels FILE");
    }
    return BL_OK;
}

bl_status cli_load_inputs(const cli_data_opts *d, const char *path, bl_mem *mem, bl_dataset *out,
                          bl_error *err) {
    memset(out, 0, sizeof *out);
    bl_load_opts o;
    bl_load_info info;
    bl_status st = load_opts(d, d->label_col, &o, err);
    if (st == BL_OK) st = bl_dataset_load(out, mem, path, NULL, &o, &info, err);
    if (st == BL_OK) note_header(d, path, &info);
    return st;
}

bl_status cli_fit_norm(const cli_data_opts *d, bl_mem *mem, const bl_dataset *train, bl_norm *out,
                       bl_error *err) {
    bl_norm_kind nk;
    memset(out, 0, sizeof *out);
    if (bl_norm_parse(&nk, d->norm, err)) return bl_error_prefix(err, "--norm");
    bl_status st = bl_norm_fit(out, mem, train, nk, err);
    if (st != BL_OK || d->quiet) return st;
    char why[64];
    if (nk == BL_NORM_AUTO) {
        bl_norm_auto(train, why, sizeof why);
        cli_note("normalisation: %s (auto: %s)", bl_norm_name(out->kind), why);
    } else {
        cli_note("normalisation: %s (--norm)", bl_norm_name(out->kind));
    }
    return BL_OK;
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
    if ((st = bl_dataset_split(&all, &sp->train, &sp->val, val_n, seed, mem, err))) {
        bl_dataset_free(&all, mem); /* still ours when the split fails */
        return st;
    }
    sp->have_val = val_n > 0;
    const char *test = d->test;
    if (!test && cli_data_is_dir(d->data)) test = d->data;
    if (test) {
        /* The model has the training set's classes; the test set may miss some. */
        cli_data_opts td = *d;
        td.classes = sp->train.n_classes;
        td.min_classes = 0;
        if ((st = cli_load_dataset(&td, test, d->test_labels, "test", mem, &sp->test, err)))
            return st;
        sp->have_test = 1;
    }
    if ((st = cli_fit_norm(d, mem, &sp->train, &sp->norm, err))) return st;
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
