/* Input normalisation, fitted once on the training set and applied to every
 * split so validation and test see exactly the same transform.
 *
 * Every kind is stored as the same affine map x' = (x - mean[j]) * scale[j]
 * (mean NULL means 0), so applying is one loop whatever the kind. Statistics
 * are accumulated in double: 60000 sums of values up to 255 lose digits in
 * float. A non-finite input is reported (sample, feature) instead of quietly
 * turning every later number into NaN.
 *
 * A feature that is constant in the training set gets scale 1, as in
 * scikit-learn's StandardScaler: it still loses its mean, so it is 0 in
 * training, and a test value that differs stays at its raw distance instead of
 * being multiplied by a huge 1/std (a floor of 1e-6 made that 1e6, and one such
 * feature gave logits near 7e5). `auto` picks per-feature standardisation for
 * tabular data, whose features differ in range by orders of magnitude, and one
 * global scale for images, whose pixels share a range and whose border pixels
 * are often constant. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "batchlab/data.h"

static bl_status check_finite(const bl_dataset *ds, bl_error *err) {
    for (size_t i = 0; i < ds->n; i++) {
        const float *row = ds->x + i * ds->dim;
        for (size_t j = 0; j < ds->dim; j++)
            if (!isfinite(row[j]))
                return bl_fail(err, BL_ERR_NUMERIC,
                               "%s: sample %zu, feature %zu is %g; normalisation needs finite "
                               "inputs",
                               ds->name, i, j, (double)row[j]);
    }
    return BL_OK;
}

static bl_status fit_unit(bl_norm *nm, const bl_dataset *ds) {
    float mx = 0.0f;
    for (size_t i = 0; i < ds->n * ds->dim; i++) {
        float a = fabsf(ds->x[i]);
        if (a > mx) mx = a;
    }
    /* An all-zero dataset stays as it is rather than dividing by zero. */
    float s = mx > 0.0f ? 1.0f / mx : 1.0f;
    for (size_t j = 0; j < ds->dim; j++)
        nm->scale[j] = s;
    return BL_OK;
}

static bl_status fit_standard(bl_norm *nm, bl_mem *mem, const bl_dataset *ds, bl_error *err) {
    double *acc = bl_mem_alloc(mem, 4 * ds->dim * sizeof(double), "normalisation sums", err);
    if (!acc) return err ? err->code : BL_ERR_NOMEM;
    double *sum = acc, *sq = acc + ds->dim, *lo = acc + 2 * ds->dim, *hi = acc + 3 * ds->dim;
    memset(acc, 0, 2 * ds->dim * sizeof(double));
    for (size_t j = 0; j < ds->dim; j++)
        lo[j] = hi[j] = ds->x[j];
    for (size_t i = 0; i < ds->n; i++) {
        const float *row = ds->x + i * ds->dim;
        for (size_t j = 0; j < ds->dim; j++) {
            sum[j] += row[j];
            lo[j] = row[j] < lo[j] ? row[j] : lo[j];
            hi[j] = row[j] > hi[j] ? row[j] : hi[j];
        }
    }
    for (size_t j = 0; j < ds->dim; j++)
        sum[j] /= (double)ds->n;
    /* Second pass about the mean: no cancellation from E[x^2] - E[x]^2. */
    for (size_t i = 0; i < ds->n; i++) {
        const float *row = ds->x + i * ds->dim;
        for (size_t j = 0; j < ds->dim; j++) {
            double d = row[j] - sum[j];
            sq[j] += d * d;
        }
    }
    for (size_t j = 0; j < ds->dim; j++) {
        double sd = sqrt(sq[j] / (double)ds->n);
        nm->mean[j] = (float)sum[j];
        /* Constant (every value equal): scale 1. Otherwise sd > 0, as values differ. */
        nm->scale[j] = lo[j] == hi[j] || !(sd > 0) ? 1.0f : (float)(1.0 / sd);
    }
    bl_mem_free(mem, acc);
    return BL_OK;
}

bl_status bl_norm_fit(bl_norm *nm, bl_mem *mem, const bl_dataset *ds, bl_norm_kind kind,
                      bl_error *err) {
    memset(nm, 0, sizeof *nm);
    if (kind == BL_NORM_AUTO) kind = bl_norm_auto(ds, NULL, 0);
    nm->kind = kind;
    nm->dim = ds->dim;
    if (kind == BL_NORM_NONE) return BL_OK;
    if (kind != BL_NORM_UNIT && kind != BL_NORM_STANDARD)
        return bl_fail(err, BL_ERR_ARG, "normalisation kind %d is not known", (int)kind);
    if (ds->n == 0 || ds->dim == 0)
        return bl_fail(err, BL_ERR_ARG, "%s: cannot fit a normalisation on an empty dataset",
                       ds->name);
    bl_status st = check_finite(ds, err);
    if (st != BL_OK) return st;
    nm->scale = bl_mem_alloc(mem, ds->dim * sizeof(float), "normalisation scale", err);
    if (!nm->scale) return err ? err->code : BL_ERR_NOMEM;
    if (kind == BL_NORM_UNIT) return fit_unit(nm, ds);
    nm->mean = bl_mem_alloc(mem, ds->dim * sizeof(float), "normalisation mean", err);
    st = nm->mean ? fit_standard(nm, mem, ds, err) : (err ? err->code : BL_ERR_NOMEM);
    if (st != BL_OK) bl_norm_free(nm, mem);
    return st;
}

/* A dimension mismatch is a caller bug (the split came from another dataset);
 * the dataset is then left untouched, and callers check nm->dim == ds->dim. */
void bl_norm_apply(const bl_norm *nm, bl_dataset *ds) {
    if (nm->kind == BL_NORM_NONE || !nm->scale || nm->dim != ds->dim) return;
    for (size_t i = 0; i < ds->n; i++) {
        float *row = ds->x + i * ds->dim;
        if (nm->mean)
            for (size_t j = 0; j < ds->dim; j++)
                row[j] = (row[j] - nm->mean[j]) * nm->scale[j];
        else
            for (size_t j = 0; j < ds->dim; j++)
                row[j] *= nm->scale[j];
    }
}

void bl_norm_free(bl_norm *nm, bl_mem *mem) {
    if (!nm) return;
    bl_mem_free(mem, nm->mean);
    bl_mem_free(mem, nm->scale);
    nm->mean = NULL;
    nm->scale = NULL;
}

bl_norm_kind bl_norm_auto(const bl_dataset *ds, char *why, size_t cap) {
    int image = ds->kind == BL_DATA_IMAGE;
    if (why && cap)
        snprintf(why, cap, "%s %s", image ? "image" : "tabular", ds->format ? ds->format : "data");
    return image ? BL_NORM_UNIT : BL_NORM_STANDARD;
}

static const struct {
    const char *name;
    bl_norm_kind kind;
} norm_names[] = {{"none", BL_NORM_NONE},
                  {"unit", BL_NORM_UNIT},
                  {"standard", BL_NORM_STANDARD},
                  {"auto", BL_NORM_AUTO}};

const char *bl_norm_name(bl_norm_kind kind) {
    for (size_t i = 0; i < sizeof norm_names / sizeof norm_names[0]; i++)
        if (norm_names[i].kind == kind) return norm_names[i].name;
    return "?";
}

bl_status bl_norm_parse(bl_norm_kind *out, const char *s, bl_error *err) {
    for (size_t i = 0; i < sizeof norm_names / sizeof norm_names[0]; i++)
        if (s && strcmp(s, norm_names[i].name) == 0) {
            *out = norm_names[i].kind;
            return BL_OK;
        }
    return bl_fail(err, BL_ERR_ARG,
                   "unknown normalisation '%s': expected one of auto, standard, unit, none",
                   s ? s : "(null)");
}
