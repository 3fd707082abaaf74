/* Shared driver of the dataset readers' fuzz targets (see fuzz_data.h). */
#include "fuzz_data.h"
#include <math.h>
#include "batchlab/data.h"
#include "fuzz.h"

/* No memory budget, as the CLI reads data: a dataset from a few kilobytes of
 * input is small, so an allocation the fuzzer flags as huge came from a header
 * the reader trusted before checking the file holds that much. */
#define DATA_BUDGET_BYTES 0

/* b = label + 4 * (header + 3 * (classes + 4 * sep)), each digit an index into
 * the tables below (make_corpus.py's load_opts writes it). */
static void options_from_byte(uint8_t b, bl_load_opts *o) {
    static const int label_cols[4] = {BL_LABEL_LAST, BL_LABEL_FIRST, BL_LABEL_NONE, 1};
    static const int headers[3] = {BL_HEADER_AUTO, 0, 1};
    /* As train (every class present, at least two), predict (any label), eval
     * (a declared K), and every class present but one is enough. */
    static const int classes[4][2] = {{0, 2}, {BL_CLASSES_ANY, 0}, {3, 0}, {0, 0}};
    static const char seps[6] = {0, ',', '\t', ';', ' ', 0};
    bl_load_opts_default(o);
    o->label_col = label_cols[b % 4];
    o->header = headers[b / 4 % 3];
    o->classes = classes[b / 12 % 4][0];
    o->min_classes = classes[b / 12 % 4][1];
    o->sep = seps[b / 48 % 6];
}

static void check_dataset(const bl_dataset *ds, const bl_load_opts *o, int labelled) {
    if (ds->n == 0 || ds->dim == 0 || !ds->x || !ds->y || !ds->format)
        fuzz_fail("a loaded dataset is empty or lacks a buffer");
    if (ds->dim != bl_shape_size(ds->shape)) fuzz_fail("dataset dim is not its shape's size");
    for (size_t i = 0; i < ds->n * ds->dim; i++)
        if (!isfinite(ds->x[i])) fuzz_fail("a non-finite feature passed the reader");
    if (!labelled) {
        for (size_t i = 0; i < ds->n; i++)
            if (ds->y[i] != 0) fuzz_fail("an unlabelled dataset has a nonzero label");
        return;
    }
    if (o->classes > 0 && ds->n_classes != o->classes)
        fuzz_fail("n_classes differs from the declared number of classes");
    if (ds->n_classes < 1 || ds->n_classes > BL_MAX_CLASSES) fuzz_fail("n_classes out of range");
    for (size_t i = 0; i < ds->n; i++)
        if (ds->y[i] < 0 || ds->y[i] >= ds->n_classes) fuzz_fail("a label is not below n_classes");
}

void fuzz_dataset(const uint8_t *data, size_t size, int with_labels) {
    if (size < 1) return;
    bl_load_opts o;
    options_from_byte(data[0], &o);
    data++, size--;
    size_t x_size = size, y_size = 0;
    const uint8_t *y = NULL;
    if (with_labels) fuzz_split(data, size, &x_size, &y, &y_size);
    const char *x_path = fuzz_file(0, data, x_size);
    const char *y_path = y ? fuzz_file(1, y, y_size) : NULL;

    bl_mem mem = {0, 0, DATA_BUDGET_BYTES};
    bl_dataset ds;
    bl_load_info info;
    bl_error err = {0};
    if (bl_dataset_load(&ds, &mem, x_path, y_path, &o, &info, &err) == BL_OK) {
        int labelled = info.format == BL_FILE_TEXT ? o.label_col != BL_LABEL_NONE : y != NULL;
        check_dataset(&ds, &o, labelled);
        fuzz_note("dataset", ds.format);
        bl_norm nm;
        if (bl_norm_fit(&nm, &mem, &ds, BL_NORM_AUTO, &err) == BL_OK) bl_norm_apply(&nm, &ds);
        bl_norm_free(&nm, &mem);
    } else if (!err.msg[0]) {
        fuzz_fail("a reader failed without a message");
    } else {
        fuzz_note("dataset", err.msg);
    }
    bl_dataset_free(&ds, &mem);
    if (mem.cur_bytes != 0) fuzz_fail("the dataset's memory accounting does not return to 0");
}
