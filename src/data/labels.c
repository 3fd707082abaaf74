/* Label rules shared by every reader: labels are class numbers 0..K-1.
 *
 * A model's output width is the number of classes, so one stray label (500 in
 * a three-class file) used to make a 501-class model that trained without
 * complaint, and a label column picked by mistake (all zeros) gave a
 * one-class model with a perfect validation accuracy. So, unless the caller
 * declares K, every class in 0..K-1 must have a row: a gap is an error that
 * names the first row of the label beyond it and says how to fix it (remap,
 * or declare K). Training data must also hold at least two classes. A label
 * map (strings to classes, stored in the checkpoint) would accept more files,
 * but it changes what a model's outputs mean; declaring K keeps "output k is
 * class k" true everywhere, which predict, eval and serve rely on. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "data/data_internal.h"
#include "core/alloc.h"

/* "row 57" (the file's line) or "label index 56 (0-based)". */
static void where(char *out, size_t cap, const size_t *line, size_t i) {
    if (line)
        snprintf(out, cap, "row %zu", line[i]);
    else
        snprintf(out, cap, "label index %zu (0-based)", i);
}

/* The labels that occur, as ranges: "0..2 and 500", "1..3", "0, 2, 5..9, ...". */
static void present_ranges(char *out, size_t cap, const size_t *first, int K) {
    int runs = 0;
    size_t w = 0;
    out[0] = '\0';
    for (int a = 0; a < K && w < cap; a++) {
        if (first[a] == SIZE_MAX) continue;
        int b = a;
        while (b + 1 < K && first[b + 1] != SIZE_MAX)
            b++;
        int last = 1; /* is there another run after this one? */
        for (int c = b + 1; c < K; c++)
            if (first[c] != SIZE_MAX) {
                last = 0;
                break;
            }
        const char *join = runs == 0 ? "" : last ? " and " : ", ";
        if (runs == 4 && !last) {
            snprintf(out + w, cap - w, ", ...");
            return;
        }
        int k = a == b ? snprintf(out + w, cap - w, "%s%d", join, a)
                       : snprintf(out + w, cap - w, "%s%d..%d", join, a, b);
        w += k > 0 ? (size_t)k : 0;
        runs++;
        a = b;
    }
}

bl_status data_labels_finish(bl_dataset *ds, const bl_load_opts *o, const char *path,
                             const size_t *line, bl_error *err) {
    int declared = o ? o->classes : BL_CLASSES_ANY;
    int min_classes = o ? o->min_classes : 0;
    char at[64];
    int32_t maxl = -1;
    for (size_t i = 0; i < ds->n; i++) {
        int32_t v = ds->y[i];
        if (v < 0 || v >= BL_MAX_CLASSES || (declared > 0 && v >= declared)) {
            where(at, sizeof at, line, i);
            if (declared > 0 && v >= 0 && v < BL_MAX_CLASSES)
                return bl_fail(err, BL_ERR_FORMAT,
                               "%s: %s: label %d, but there are %d classes (labels 0..%d)", path,
                               at, (int)v, declared, declared - 1);
            return bl_fail(err, BL_ERR_FORMAT,
                           "%s: %s: label %d is not a class number 0..%d: labels must be 0..K-1 "
                           "for K classes",
                           path, at, (int)v, BL_MAX_CLASSES - 1);
        }
        if (v > maxl) maxl = v;
    }
    int K = declared > 0 ? declared : maxl + 1;
    if (K <= 0) K = 1;
    size_t *first = bl_malloc((size_t)K * sizeof *first);
    if (!first) return bl_fail(err, BL_ERR_NOMEM, "%s: out of memory checking labels", path);
    for (int k = 0; k < K; k++)
        first[k] = SIZE_MAX;
    int distinct = 0;
    for (size_t i = 0; i < ds->n; i++)
        if (first[ds->y[i]] == SIZE_MAX) {
            first[ds->y[i]] = i;
            distinct++;
        }
    bl_status st = BL_OK;
    int gap = -1;
    for (int k = 0; declared == 0 && k < K && gap < 0; k++)
        if (first[k] == SIZE_MAX) gap = k;
    if (gap >= 0) {
        int above = gap + 1; /* the smallest label beyond the gap: one exists, maxl does */
        while (first[above] == SIZE_MAX)
            above++;
        char ranges[160];
        present_ranges(ranges, sizeof ranges, first, K);
        where(at, sizeof at, line, first[above]);
        int one_based = gap == 0 && distinct == K - 1;
        st = bl_fail(err, BL_ERR_FORMAT,
                     "%s: %s: label %d, but the labels are %s only (no %s has label %d): labels "
                     "must be 0..K-1 for K classes; %s, or pass --classes K if some classes "
                     "have no rows",
                     path, at, above, ranges, line ? "row" : "sample", gap,
                     one_based ? "they look 1-based: subtract 1" : "remap them");
    } else if (distinct < min_classes) {
        int only = 0;
        while (only < K && first[only] == SIZE_MAX)
            only++;
        const char *check = line ? "--label-col" : "the labels file";
        if (distinct == 1)
            st = bl_fail(err, BL_ERR_FORMAT,
                         "%s: only one class (%d) in the training labels: check %s (a "
                         "classifier needs at least two classes)",
                         path, only, check);
        else
            st = bl_fail(err, BL_ERR_FORMAT,
                         "%s: %d classes in the training labels, fewer than %d: check %s", path,
                         distinct, min_classes, check);
    }
    bl_free(first);
    if (st == BL_OK) ds->n_classes = K;
    return st;
}
