/* CSV reader: one sample per line, comma-separated numeric cells, one integer
 * label column.
 *
 * The whole file is read into one buffer and tokenised in place (cells are
 * NUL-terminated where their comma was), so strtod runs on the bytes with no
 * copying. Rows go into geometrically grown scratch arrays, then into the
 * counted dataset buffers once the final size is known. Lines and columns in
 * messages are 1-based, as an editor shows them. \r\n endings, a UTF-8 BOM,
 * surrounding spaces and double quotes around a cell are tolerated; blank or
 * whitespace-only lines are skipped wherever they appear. With BL_LABEL_NONE
 * every cell is a feature and y stays all 0 (n_classes 0), for prediction. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "batchlab/data.h"

#define CSV_NO_LABEL SIZE_MAX

typedef struct csv_rows {
    float *x;   /* (n, dim) */
    int32_t *y; /* (n) */
    size_t n, cap;
} csv_rows;

static bl_status read_whole(const char *path, char **out, size_t *len, bl_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return bl_fail(err, BL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        cap *= 2;
        char *nb = realloc(buf, cap + 1);
        if (!nb) free(buf);
        buf = nb;
    }
    int bad = buf && ferror(f);
    fclose(f);
    if (!buf) return bl_fail(err, BL_ERR_NOMEM, "%s: out of memory reading the file", path);
    if (bad) {
        free(buf);
        return bl_fail(err, BL_ERR_IO, "%s: read error", path);
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return BL_OK;
}

static int is_blank(char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* Trim spaces and one pair of surrounding double quotes, in place. */
static char *trim_cell(char *s) {
    while (is_blank(*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && is_blank(e[-1]))
        *--e = '\0';
    if (e - s >= 2 && s[0] == '"' && e[-1] == '"') {
        e[-1] = '\0';
        s++;
    }
    return s;
}

static int parse_number(const char *cell, double *v) {
    if (!*cell) return 0;
    char *end;
    errno = 0;
    *v = strtod(cell, &end);
    return *end == '\0' && isfinite(*v);
}

static bl_status rows_grow(csv_rows *r, size_t dim, const char *path, bl_error *err) {
    if (r->n < r->cap) return BL_OK;
    size_t cap = r->cap ? r->cap * 2 : 1024;
    float *x = realloc(r->x, cap * dim * sizeof(float));
    if (x) r->x = x;
    int32_t *y = x ? realloc(r->y, cap * sizeof(int32_t)) : NULL;
    if (y) r->y = y;
    if (!x || !y) return bl_fail(err, BL_ERR_NOMEM, "%s: out of memory at row %zu", path, r->n);
    r->cap = cap;
    return BL_OK;
}

/* Count the cells of a line without modifying it. */
static size_t count_cells(const char *line) {
    size_t n = 1;
    for (const char *p = line; *p; p++)
        n += *p == ',';
    return n;
}

/* Parse one non-blank data line (NUL-terminated, no newline) into row r->n. */
static bl_status parse_line(csv_rows *r, char *line, size_t lineno, size_t ncols, size_t label,
                            size_t first_line, const char *path, bl_error *err) {
    size_t dim = ncols - (label != CSV_NO_LABEL), got = count_cells(line);
    if (got != ncols)
        return bl_fail(err, BL_ERR_FORMAT,
                       "%s:%zu: column %zu: row has %zu cells but line %zu has %zu (ragged "
                       "row)",
                       path, lineno, (got < ncols ? got : ncols) + 1, got, first_line, ncols);
    bl_status st = rows_grow(r, dim, path, err);
    if (st != BL_OK) return st;
    float *xrow = r->x + r->n * dim;
    r->y[r->n] = 0;
    char *p = line;
    for (size_t col = 0, j = 0; col < ncols; col++) {
        char *comma = strchr(p, ',');
        if (comma) *comma = '\0';
        char *cell = trim_cell(p);
        double v;
        if (!parse_number(cell, &v))
            return bl_fail(err, BL_ERR_FORMAT, "%s:%zu: column %zu: '%.40s' is not a number", path,
                           lineno, col + 1, cell);
        if (col == label) {
            if (v < 0 || v != floor(v) || v >= INT32_MAX)
                return bl_fail(err, BL_ERR_FORMAT,
                               "%s:%zu: column %zu: label '%.40s' must be a non-negative "
                               "integer",
                               path, lineno, col + 1, cell);
            r->y[r->n] = (int32_t)v;
        } else {
            xrow[j++] = (float)v;
        }
        p = comma ? comma + 1 : p + strlen(p);
    }
    r->n++;
    return BL_OK;
}

static int line_is_blank(const char *s) {
    for (; *s; s++)
        if (!is_blank(*s)) return 0;
    return 1;
}

bl_status bl_dataset_load_csv(bl_dataset *ds, bl_mem *mem, const char *path, int label_col,
                              int has_header, bl_error *err) {
    memset(ds, 0, sizeof *ds);
    if (label_col < BL_LABEL_NONE)
        return bl_fail(err, BL_ERR_ARG,
                       "label column %d is invalid: use 0 (first), -1 (last), -2 (none) or a "
                       "0-based column index",
                       label_col);
    char *buf = NULL;
    size_t len = 0;
    bl_status st = read_whole(path, &buf, &len, err);
    if (st != BL_OK) return st;

    csv_rows rows = {0};
    size_t ncols = 0, label = 0, first_line = 0, lineno = 0;
    char *p = buf;
    if (len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0) p += 3;
    while (p < buf + len) {
        char *nl = memchr(p, '\n', (size_t)(buf + len - p));
        char *next = nl ? nl + 1 : buf + len;
        if (nl) *nl = '\0';
        lineno++;
        if (strlen(p) != (size_t)((nl ? nl : buf + len) - p)) {
            st = bl_fail(err, BL_ERR_FORMAT, "%s:%zu: line contains a NUL byte (binary file?)",
                         path, lineno);
            goto done;
        }
        if ((lineno == 1 && has_header) || line_is_blank(p)) {
            p = next;
            continue;
        }
        if (ncols == 0) {
            ncols = count_cells(p);
            first_line = lineno;
            if (label_col != BL_LABEL_NONE && ncols < 2) {
                st = bl_fail(err, BL_ERR_FORMAT,
                             "%s:%zu: row has %zu cell; need a label and at least one feature "
                             "(is the separator a comma?)",
                             path, lineno, ncols);
                goto done;
            }
            if (label_col >= 0 && (size_t)label_col >= ncols) {
                st = bl_fail(err, BL_ERR_ARG,
                             "%s:%zu: label column %d (0-based) is out of range: the row has "
                             "%zu columns",
                             path, lineno, label_col, ncols);
                goto done;
            }
            label = label_col == BL_LABEL_NONE   ? CSV_NO_LABEL
                    : label_col == BL_LABEL_LAST ? ncols - 1
                                                 : (size_t)label_col;
        }
        st = parse_line(&rows, p, lineno, ncols, label, first_line, path, err);
        if (st != BL_OK) goto done;
        p = next;
    }
    if (rows.n == 0) {
        st = bl_fail(err, BL_ERR_FORMAT, "%s: no data rows%s", path,
                     has_header ? " after the header line" : "");
        goto done;
    }

    size_t dim = ncols - (label != CSV_NO_LABEL);
    ds->x = bl_mem_alloc(mem, rows.n * dim * sizeof(float), "dataset features", err);
    ds->y = ds->x ? bl_mem_alloc(mem, rows.n * sizeof(int32_t), "dataset labels", err) : NULL;
    if (!ds->x || !ds->y) {
        st = err ? err->code : BL_ERR_NOMEM;
        bl_dataset_free(ds, mem);
        goto done;
    }
    memcpy(ds->x, rows.x, rows.n * dim * sizeof(float));
    memcpy(ds->y, rows.y, rows.n * sizeof(int32_t));
    int32_t maxl = -1; /* unlabelled: n_classes 0 */
    for (size_t i = 0; label != CSV_NO_LABEL && i < rows.n; i++)
        if (rows.y[i] > maxl) maxl = rows.y[i];
    ds->n = rows.n;
    ds->shape = (bl_shape){(int)dim, 1, 1};
    ds->dim = dim;
    ds->n_classes = maxl + 1;
    snprintf(ds->name, sizeof ds->name, "%s", path);
done:
    free(rows.x);
    free(rows.y);
    free(buf);
    return st;
}
