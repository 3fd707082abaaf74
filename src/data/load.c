/* One entry point for every data file: the format comes from the content.
 *
 * File names lie (".CSV", ".txt", ".tsv", "data.csv.gz", a .npy saved without
 * its extension), magic numbers do not: "\x93NUMPY" starts every .npy, IDX
 * starts with two zero bytes, a type byte and a dimension count, and gzip
 * with 1f 8b, in which case we look at the decompressed bytes the same way.
 * Anything else is taken as text and read as CSV, whose own errors then say
 * what is wrong with it. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <zlib.h>
#include "data/data_internal.h"

void bl_load_opts_default(bl_load_opts *o) {
    memset(o, 0, sizeof *o);
    o->label_col = BL_LABEL_LAST;
    o->header = BL_HEADER_AUTO;
    o->sep = 0;
    o->classes = 0;
    o->min_classes = 0;
}

bl_status bl_data_sniff(const char *path, bl_file_format *fmt, int *gz, bl_error *err) {
    *fmt = BL_FILE_TEXT;
    *gz = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return bl_fail(err, BL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    unsigned char head[8] = {0};
    size_t n = fread(head, 1, sizeof head, f);
    int bad = ferror(f);
    int e = errno;
    fclose(f);
    if (bad) return bl_fail(err, BL_ERR_IO, "%s: cannot read: %s", path, strerror(e));
    if (n >= 2 && head[0] == 0x1f && head[1] == 0x8b) {
        *gz = 1;
        gzFile g = gzopen(path, "rb");
        if (!g) return bl_fail(err, BL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        int r = gzread(g, head, sizeof head);
        gzclose(g);
        n = r > 0 ? (size_t)r : 0;
    }
    if (n >= 6 && memcmp(head, "\x93NUMPY", 6) == 0)
        *fmt = BL_FILE_NPY;
    else if (n >= 2 && head[0] == 0 && head[1] == 0)
        *fmt = BL_FILE_IDX; /* text never starts with NULs: the IDX reader judges the rest */
    return BL_OK;
}

bl_status bl_dataset_load(bl_dataset *ds, bl_mem *mem, const char *path, const char *labels_path,
                          const bl_load_opts *o, bl_load_info *info, bl_error *err) {
    memset(ds, 0, sizeof *ds);
    bl_load_opts defaults;
    if (!o) {
        bl_load_opts_default(&defaults);
        o = &defaults;
    }
    bl_load_info scratch;
    if (!info) info = &scratch;
    memset(info, 0, sizeof *info);
    bl_file_format fmt;
    int gz;
    bl_status st = bl_data_sniff(path, &fmt, &gz, err);
    if (st != BL_OK) return st;
    if (fmt == BL_FILE_TEXT) {
        if (labels_path)
            return bl_fail(err, BL_ERR_ARG,
                           "%s: a text (CSV) file holds its labels in a column (--label-col); "
                           "a separate labels file (%s) goes with .npy or IDX features",
                           path, labels_path);
        return data_load_csv(ds, mem, path, o, info, err);
    }
    info->format = fmt;
    info->gz = gz;
    if (fmt == BL_FILE_NPY && gz)
        return bl_fail(err, BL_ERR_UNSUPPORTED,
                       "%s: a gzip-compressed .npy is not supported: decompress it first "
                       "(gunzip)",
                       path);
    if (fmt == BL_FILE_NPY) return data_load_npy(ds, mem, path, labels_path, o, err);
    return data_load_idx(ds, mem, path, labels_path, o, err);
}
