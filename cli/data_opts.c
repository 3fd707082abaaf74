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

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
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
        st = bl_dataset_load_fashion_mnist(want_test ? &other : out, want_test ? out : &other,
                                           mem, dir, err);
        bl_dataset_free(&other, mem);
    } else if (ends_with(path, ".csv")) {
        int col = -1;
        st = parse_label_col(d->label_col, &col, err);
        if (!st) st = bl_dataset_load_csv(out, mem, path, col, d->header, err);
    } else {
        if (!labels)
            return bl_fail(err, BL_ERR_ARG, "%s: --labels is required for .npy and IDX data",
                           path);
        if (ends_with(path, ".npy"))
            st = bl_dataset_load_npy(out, mem, path, labels, err);
        else
            st = bl_dataset_load_idx(out, mem, path, labels, err);
    }
    return st;
}
