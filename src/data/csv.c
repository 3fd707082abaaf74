/* CSV reader: one sample per line, numeric cells, one integer label column.
 *
 * The whole file is read into one buffer (through zlib, so .csv.gz works) and
 * tokenised in place, so strtod runs on the bytes with no copying. Rows go
 * into geometrically grown scratch arrays, with the line each came from, then
 * into the counted dataset buffers once the final size is known. Rows and
 * columns in messages are 1-based, as an editor shows them (the header line
 * counts). The separator (comma, tab, semicolon, spaces) and a header line are
 * detected from the first two non-blank lines unless the caller fixes them: a
 * header is a first line that is not all numbers above one that is. A UTF-8
 * BOM, surrounding blanks and double quotes around a cell are tolerated; blank
 * lines are skipped wherever they appear. Cells must be finite numbers (NaN and
 * Inf are refused here, with their row and column, so no later stage sees
 * them), and labels must be class numbers (data_labels_finish). With
 * BL_LABEL_NONE every cell is a feature and y stays all 0 (n_classes 0). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "data/csv_internal.h"
#include "core/alloc.h"

#define CSV_NO_LABEL SIZE_MAX

typedef struct csv_rows {
    float *x;     /* (n, dim) */
    int32_t *y;   /* (n) */
    size_t *line; /* (n) line of each row in the file */
    size_t n, cap;
} csv_rows;

/* The layout fixed by the first data line, and the file's name for messages. */
typedef struct csv_layout {
    const char *path;
    char sep;
    size_t ncols, label, first_line;
    int header_hint; /* a bad first data row may be a header: say --header */
} csv_layout;

static bl_status rows_grow(csv_rows *r, size_t dim, const char *path, bl_error *err) {
    if (r->n < r->cap) return BL_OK;
    size_t cap = r->cap ? r->cap * 2 : 1024;
    float *x = bl_realloc(r->x, cap * dim * sizeof(float));
    if (x) r->x = x;
    int32_t *y = x ? bl_realloc(r->y, cap * sizeof(int32_t)) : NULL;
    if (y) r->y = y;
    size_t *line = y ? bl_realloc(r->line, cap * sizeof(size_t)) : NULL;
    if (line) r->line = line;
    if (!line) return bl_fail(err, BL_ERR_NOMEM, "%s: out of memory at row %zu", path, r->n);
    r->cap = cap;
    return BL_OK;
}

static const char *sep_name(char sep) {
    return sep == ',' ? "comma" : sep == '\t' ? "tab" : sep == ';' ? "semicolon" : "spaces";
}

static bl_status cell_error(const csv_layout *L, size_t lineno, size_t col, const char *cell,
                            csv_num k, int first_row, bl_error *err) {
    char c[96], hint[96] = "";
    data_escape(c, sizeof c, cell, 40);
    if (first_row && L->header_hint && k == CSV_NOT_NUMBER)
        snprintf(hint, sizeof hint, " (if row %zu is a header, pass --header)", lineno);
    const char *what = k == CSV_EMPTY        ? "the cell is empty"
                       : k == CSV_NOT_FINITE ? "is not a finite number"
                       : k == CSV_TOO_LARGE  ? "is too large for float32"
                                             : "is not a number";
    if (k == CSV_EMPTY)
        return bl_fail(err, BL_ERR_FORMAT, "%s: row %zu, column %zu: %s%s", L->path, lineno, col,
                       what, hint);
    return bl_fail(err, BL_ERR_FORMAT, "%s: row %zu, column %zu: '%s' %s%s", L->path, lineno, col,
                   c, what, hint);
}

static bl_status label_error(const csv_layout *L, size_t lineno, size_t col, const char *cell,
                             const char *what, bl_error *err) {
    char c[96];
    data_escape(c, sizeof c, cell, 40);
    return bl_fail(err, BL_ERR_FORMAT,
                   "%s: row %zu, column %zu: label '%s' %s: labels must be class numbers 0..K-1",
                   L->path, lineno, col, c, what);
}

static bl_status parse_label(const csv_layout *L, size_t lineno, size_t col, const char *cell,
                             int first_row, int32_t *out, bl_error *err) {
    double v;
    csv_num k = csv_parse_number(cell, &v);
    if (k == CSV_EMPTY) return label_error(L, lineno, col, cell, "is empty", err);
    if (k == CSV_NOT_NUMBER && first_row && L->header_hint) /* a header's column name */
        return cell_error(L, lineno, col, cell, k, first_row, err);
    if (k == CSV_NOT_NUMBER)
        return label_error(L, lineno, col, cell,
                           "is not a number (map class names to numbers first)", err);
    if (k != CSV_OK || v != floor(v))
        return label_error(L, lineno, col, cell, "is not an integer", err);
    if (v < 0) return label_error(L, lineno, col, cell, "is negative", err);
    if (v >= BL_MAX_CLASSES)
        return label_error(L, lineno, col, cell, "is too large (at most 65535)", err);
    *out = (int32_t)v;
    return BL_OK;
}

/* Parse one non-blank data line (NUL-terminated, no line break) into row r->n. */
static bl_status parse_line(csv_rows *r, char *line, size_t lineno, const csv_layout *L,
                            bl_error *err) {
    size_t ncols = L->ncols, dim = ncols - (L->label != CSV_NO_LABEL);
    size_t got = csv_count_cells(line, L->sep);
    if (got != ncols)
        return bl_fail(err, BL_ERR_FORMAT,
                       "%s: row %zu, column %zu: the row has %zu cells but row %zu has %zu "
                       "(ragged row; separator: %s)",
                       L->path, lineno, (got < ncols ? got : ncols) + 1, got, L->first_line, ncols,
                       sep_name(L->sep));
    bl_status st = rows_grow(r, dim, L->path, err);
    if (st != BL_OK) return st;
    float *xrow = r->x + r->n * dim;
    r->y[r->n] = 0;
    r->line[r->n] = lineno;
    char *p = line;
    for (size_t col = 0, j = 0; col < ncols; col++) {
        char *cell = csv_next_cell(&p, L->sep);
        if (col == L->label) {
            st = parse_label(L, lineno, col + 1, cell, r->n == 0, &r->y[r->n], err);
            if (st != BL_OK) return st;
            continue;
        }
        double v;
        csv_num k = csv_parse_number(cell, &v);
        if (k != CSV_OK) return cell_error(L, lineno, col + 1, cell, k, r->n == 0, err);
        xrow[j++] = (float)v;
    }
    r->n++;
    return BL_OK;
}

/* Decide the separator, the label column and the header from the first lines. */
static bl_status layout_from_peek(csv_layout *L, const csv_lines *it, const bl_load_opts *o,
                                  bl_load_info *info, int *skip_first, bl_error *err) {
    char *first = NULL, *second = NULL;
    int found = csv_peek(it, &first, &second);
    if (found < 0) return bl_fail(err, BL_ERR_NOMEM, "%s: out of memory", L->path);
    bl_status st = BL_OK;
    L->sep = o->sep ? o->sep : first ? csv_detect_sep(first) : ',';
    info->sep = L->sep;
    *skip_first = 0;
    if (first) {
        size_t ncols = csv_count_cells(first, L->sep);
        size_t label = o->label_col == BL_LABEL_NONE   ? CSV_NO_LABEL
                       : o->label_col == BL_LABEL_LAST ? ncols - 1
                                                       : (size_t)o->label_col;
        if (o->header == BL_HEADER_AUTO)
            *skip_first = csv_looks_like_header(first, second, L->sep, label);
        else
            *skip_first = o->header == 1;
        if (*skip_first < 0) {
            bl_free(first);
            bl_free(second);
            return bl_fail(err, BL_ERR_NOMEM, "%s: out of memory reading the first lines", L->path);
        }
        info->header = *skip_first;
        info->header_detected = *skip_first && o->header == BL_HEADER_AUTO;
        if (*skip_first) data_escape(info->header_text, sizeof info->header_text, first, 100);
        L->header_hint = o->header != 1 && !*skip_first;
    }
    bl_free(first);
    bl_free(second);
    return st;
}

/* The first data line fixes the number of columns and the label's. */
static bl_status set_columns(csv_layout *L, const char *line, size_t lineno, int label_col,
                             bl_error *err) {
    L->ncols = csv_count_cells(line, L->sep);
    L->first_line = lineno;
    if (label_col != BL_LABEL_NONE && L->ncols < 2)
        return bl_fail(err, BL_ERR_FORMAT,
                       "%s: row %zu: the row has %zu cell; need a label and at least one feature "
                       "(separator: %s)",
                       L->path, lineno, L->ncols, sep_name(L->sep));
    if (label_col >= 0 && (size_t)label_col >= L->ncols)
        return bl_fail(err, BL_ERR_ARG,
                       "%s: row %zu: label column %d (0-based) is out of range: the row has %zu "
                       "columns",
                       L->path, lineno, label_col, L->ncols);
    L->label = label_col == BL_LABEL_NONE   ? CSV_NO_LABEL
               : label_col == BL_LABEL_LAST ? L->ncols - 1
                                            : (size_t)label_col;
    return BL_OK;
}

static bl_status to_dataset(bl_dataset *ds, bl_mem *mem, const csv_rows *rows, const csv_layout *L,
                            const bl_load_opts *o, bl_error *err) {
    size_t dim = L->ncols - (L->label != CSV_NO_LABEL);
    ds->x = bl_mem_alloc(mem, rows->n * dim * sizeof(float), "dataset features", err);
    ds->y = ds->x ? bl_mem_alloc(mem, rows->n * sizeof(int32_t), "dataset labels", err) : NULL;
    if (!ds->x || !ds->y) return err ? err->code : BL_ERR_NOMEM;
    memcpy(ds->x, rows->x, rows->n * dim * sizeof(float));
    memcpy(ds->y, rows->y, rows->n * sizeof(int32_t));
    ds->n = rows->n;
    ds->shape = (bl_shape){(int)dim, 1, 1};
    ds->dim = dim;
    ds->n_classes = 0; /* unlabelled */
    ds->kind = BL_DATA_TABULAR;
    ds->format = "CSV";
    snprintf(ds->name, sizeof ds->name, "%s", L->path);
    if (L->label == CSV_NO_LABEL) return BL_OK;
    return data_labels_finish(ds, o, L->path, rows->line, err);
}

bl_status data_load_csv(bl_dataset *ds, bl_mem *mem, const char *path, const bl_load_opts *o,
                        bl_load_info *info, bl_error *err) {
    memset(ds, 0, sizeof *ds);
    bl_load_info scratch;
    if (!info) info = &scratch;
    memset(info, 0, sizeof *info);
    info->format = BL_FILE_TEXT;
    if (o->label_col < BL_LABEL_NONE)
        return bl_fail(err, BL_ERR_ARG,
                       "label column %d is invalid: use 0 (first), -1 (last), -2 (none) or a "
                       "0-based column index",
                       o->label_col);
    if (o->sep && !strchr(",\t; ", o->sep))
        return bl_fail(err, BL_ERR_ARG, "separator '%c' is not supported: use ',', tab, ';' or ' '",
                       o->sep);
    char *buf = NULL;
    size_t len = 0;
    bl_status st = csv_read_file(path, &buf, &len, &info->gz, err);
    if (st != BL_OK) return st;

    csv_rows rows = {0};
    csv_layout L = {.path = path};
    csv_lines it;
    csv_lines_init(&it, buf, len);
    int skip_first = 0, has_nul = 0;
    st = layout_from_peek(&L, &it, o, info, &skip_first, err);
    char *line;
    int seen_first = 0;
    while (st == BL_OK && csv_next_line(&it, &line, &has_nul)) {
        if (has_nul) {
            st = bl_fail(err, BL_ERR_FORMAT,
                         "%s: row %zu: the line holds a NUL byte (binary file?)", path, it.lineno);
            break;
        }
        if (csv_line_is_blank(line)) continue;
        if (!seen_first++ && skip_first) continue;
        if (L.ncols == 0) st = set_columns(&L, line, it.lineno, o->label_col, err);
        if (st == BL_OK) st = parse_line(&rows, line, it.lineno, &L, err);
    }
    if (st == BL_OK && rows.n == 0)
        st = bl_fail(err, BL_ERR_FORMAT, "%s: no data rows%s", path,
                     skip_first ? " after the header line" : "");
    if (st == BL_OK) st = to_dataset(ds, mem, &rows, &L, o, err);
    if (st != BL_OK) bl_dataset_free(ds, mem);
    bl_free(rows.x);
    bl_free(rows.y);
    bl_free(rows.line);
    bl_free(buf);
    return st;
}

bl_status bl_dataset_load_csv(bl_dataset *ds, bl_mem *mem, const char *path, int label_col,
                              int has_header, bl_error *err) {
    bl_load_opts o;
    bl_load_opts_default(&o);
    o.label_col = label_col;
    o.header = has_header ? 1 : 0;
    o.classes = BL_CLASSES_ANY;
    return data_load_csv(ds, mem, path, &o, NULL, err);
}
