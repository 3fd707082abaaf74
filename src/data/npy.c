/* NumPy .npy reader and float32 writer.
 *
 * Format: "\x93NUMPY", major, minor, a little-endian header length (u16 in
 * v1, u32 in v2/v3), then a Python dict literal such as
 *   {'descr': '<f4', 'fortran_order': False, 'shape': (600, 784), }
 * and the raw array. Rather than searching the header for substrings we parse
 * that literal with a tiny tokenizer (strings, True/False, tuples of ints), so
 * a malformed header fails with the byte offset of the bad token instead of
 * being half understood. Data is read straight into the destination buffer
 * when the dtype is already float32; every feature is then checked to be finite,
 * since a NaN here would otherwise surface far away (as a null loss in eval or
 * NaN probabilities from predict). Only little-endian hosts are supported,
 * which covers every machine we build for; a big-endian host gets a clear
 * error rather than byte-swapped numbers. Writes go through bl_atomic_* so a
 * failed or interrupted write never leaves a partial file at the path. */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "batchlab/io.h"
#include "data/data_internal.h"
#include "core/alloc.h"

#define NPY_MAX_DIMS 8
#define NPY_MAX_HEADER (1u << 20)

typedef enum { NPY_F4, NPY_F8, NPY_U1, NPY_I4, NPY_I8 } npy_dtype;

typedef struct npy_header {
    npy_dtype dtype;
    char descr[16];
    int fortran;
    int ndim;
    size_t shape[NPY_MAX_DIMS];
    size_t count;    /* product of shape */
    size_t itemsize; /* bytes per element */
} npy_header;

static int host_is_little_endian(void) {
    const uint16_t one = 1;
    return *(const uint8_t *)&one == 1;
}

/* ---- header dict parser ---------------------------------------------------- */
typedef struct hparse {
    const char *s;
    size_t i, n, base; /* base = file offset of s[0], for messages */
    const char *path;
    bl_error *err;
} hparse;

static void skip_ws(hparse *p) {
    while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n'))
        p->i++;
}

static bl_status hfail(hparse *p, const char *what) {
    return bl_fail(p->err, BL_ERR_FORMAT, "%s: bad .npy header at byte offset %zu: %s", p->path,
                   p->base + p->i, what);
}

static bl_status expect(hparse *p, char c) {
    skip_ws(p);
    if (p->i >= p->n || p->s[p->i] != c) {
        char msg[32];
        snprintf(msg, sizeof msg, "expected '%c'", c);
        return hfail(p, msg);
    }
    p->i++;
    return BL_OK;
}

static bl_status parse_str(hparse *p, char *out, size_t cap) {
    skip_ws(p);
    if (p->i >= p->n || (p->s[p->i] != '\'' && p->s[p->i] != '"'))
        return hfail(p, "expected a quoted string");
    char q = p->s[p->i++];
    size_t k = 0;
    while (p->i < p->n && p->s[p->i] != q) {
        if (k + 1 >= cap) return hfail(p, "string too long");
        out[k++] = p->s[p->i++];
    }
    if (p->i >= p->n) return hfail(p, "unterminated string");
    p->i++;
    out[k] = '\0';
    return BL_OK;
}

static bl_status parse_bool(hparse *p, int *out) {
    skip_ws(p);
    if (p->n - p->i >= 4 && memcmp(p->s + p->i, "True", 4) == 0) {
        p->i += 4;
        *out = 1;
    } else if (p->n - p->i >= 5 && memcmp(p->s + p->i, "False", 5) == 0) {
        p->i += 5;
        *out = 0;
    } else {
        return hfail(p, "expected True or False");
    }
    return BL_OK;
}

static bl_status parse_shape(hparse *p, npy_header *h) {
    bl_status st = expect(p, '(');
    if (st != BL_OK) return st;
    h->ndim = 0;
    for (;;) {
        skip_ws(p);
        if (p->i < p->n && p->s[p->i] == ')') break;
        if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9')
            return hfail(p, "expected a non-negative integer in the shape");
        if (h->ndim == NPY_MAX_DIMS) return hfail(p, "too many dimensions");
        size_t v = 0;
        while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') {
            if (v > (SIZE_MAX - 9) / 10) return hfail(p, "shape value too large");
            v = v * 10 + (size_t)(p->s[p->i++] - '0');
        }
        h->shape[h->ndim++] = v;
        skip_ws(p);
        if (p->i < p->n && p->s[p->i] == ',')
            p->i++;
        else if (p->i < p->n && p->s[p->i] == ')')
            break;
        else
            return hfail(p, "expected ',' or ')' in the shape");
    }
    p->i++;
    return BL_OK;
}

static bl_status parse_dict(hparse *p, npy_header *h) {
    int seen_descr = 0, seen_fortran = 0, seen_shape = 0;
    bl_status st = expect(p, '{');
    while (st == BL_OK) {
        skip_ws(p);
        if (p->i < p->n && p->s[p->i] == '}') break;
        char key[32];
        st = parse_str(p, key, sizeof key);
        if (st == BL_OK) st = expect(p, ':');
        if (st != BL_OK) return st;
        if (strcmp(key, "descr") == 0) {
            st = parse_str(p, h->descr, sizeof h->descr);
            seen_descr = 1;
        } else if (strcmp(key, "fortran_order") == 0) {
            st = parse_bool(p, &h->fortran);
            seen_fortran = 1;
        } else if (strcmp(key, "shape") == 0) {
            st = parse_shape(p, h);
            seen_shape = 1;
        } else {
            return hfail(p, "unknown key (expected descr, fortran_order, shape)");
        }
        if (st != BL_OK) return st;
        skip_ws(p);
        if (p->i < p->n && p->s[p->i] == ',')
            p->i++;
        else if (!(p->i < p->n && p->s[p->i] == '}'))
            return hfail(p, "expected ',' or '}'");
    }
    if (st != BL_OK) return st;
    if (!seen_descr || !seen_fortran || !seen_shape)
        return hfail(p, !seen_descr     ? "missing key 'descr'"
                        : !seen_fortran ? "missing key 'fortran_order'"
                                        : "missing key 'shape'");
    return BL_OK;
}

static const struct {
    const char *descr;
    npy_dtype dtype;
    size_t size;
} npy_dtypes[] = {
    {"<f4", NPY_F4, 4}, {"<f8", NPY_F8, 8}, {"|u1", NPY_U1, 1},
    {"<u1", NPY_U1, 1}, {"<i4", NPY_I4, 4}, {"<i8", NPY_I8, 8},
};

static void shape_str(char *out, size_t cap, const npy_header *h);

/* The data after the header holds got bytes from byte offset off, fewer than the shape needs. */
static bl_status npy_short(const char *path, const npy_header *h, size_t got, long off,
                           bl_error *err) {
    char sh[160];
    shape_str(sh, sizeof sh, h);
    return bl_fail(err, BL_ERR_FORMAT,
                   "%s: data is %zu bytes from byte offset %ld but shape %s of '%s' needs %zu "
                   "(truncated file?)",
                   path, got, off, sh, h->descr, h->count * h->itemsize);
}

/* Opens path, parses and validates the header; leaves f at the start of the data. */
static bl_status npy_open(const char *path, FILE **fp, npy_header *h, bl_error *err) {
    memset(h, 0, sizeof *h);
    *fp = NULL;
    if (!host_is_little_endian())
        return bl_fail(err, BL_ERR_UNSUPPORTED, "%s: .npy reading needs a little-endian host",
                       path);
    FILE *f = fopen(path, "rb");
    if (!f) return bl_fail(err, BL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    unsigned char pre[12];
    size_t got = fread(pre, 1, 10, f);
    bl_status st = BL_OK;
    char *text = NULL;
    if (got < 10 || memcmp(pre, "\x93NUMPY", 6) != 0) {
        st = bl_fail(err, BL_ERR_FORMAT,
                     "%s: not a .npy file: the first 6 bytes are not the magic \\x93NUMPY", path);
        goto fail;
    }
    int major = pre[6];
    size_t hlen, base;
    if (major == 1) {
        hlen = (size_t)pre[8] | (size_t)pre[9] << 8;
        base = 10;
    } else if (major == 2 || major == 3) {
        if (fread(pre + 10, 1, 2, f) != 2) {
            st = bl_fail(err, BL_ERR_FORMAT, "%s: file ends inside the .npy preamble", path);
            goto fail;
        }
        hlen = (size_t)pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
        base = 12;
    } else {
        st = bl_fail(err, BL_ERR_FORMAT, "%s: .npy format version %d.%d (byte 6) is not supported",
                     path, major, pre[7]);
        goto fail;
    }
    if (hlen > NPY_MAX_HEADER) {
        st = bl_fail(err, BL_ERR_FORMAT, "%s: .npy header length %zu (byte offset 8) is too large",
                     path, hlen);
        goto fail;
    }
    text = bl_malloc(hlen + 1);
    if (!text) {
        st = bl_fail(err, BL_ERR_NOMEM, "%s: out of memory for the header", path);
        goto fail;
    }
    if (fread(text, 1, hlen, f) != hlen) {
        st = bl_fail(err, BL_ERR_FORMAT,
                     "%s: file ends inside the .npy header (header length %zu at byte offset 8)",
                     path, hlen);
        goto fail;
    }
    text[hlen] = '\0';
    hparse p = {text, 0, hlen, base, path, err};
    st = parse_dict(&p, h);
    if (st != BL_OK) goto fail;
    bl_free(text);
    text = NULL;

    if (h->fortran) {
        st = bl_fail(err, BL_ERR_FORMAT,
                     "%s: array is stored in Fortran (column-major) order (fortran_order: True); "
                     "save it in C order, e.g. np.save(path, np.ascontiguousarray(a))",
                     path);
        goto fail;
    }
    for (size_t i = 0; i < sizeof npy_dtypes / sizeof npy_dtypes[0]; i++)
        if (strcmp(h->descr, npy_dtypes[i].descr) == 0) {
            h->dtype = npy_dtypes[i].dtype;
            h->itemsize = npy_dtypes[i].size;
        }
    if (!h->itemsize) {
        st = bl_fail(err, BL_ERR_FORMAT, "%s: dtype '%s' (header field descr) is not supported",
                     path, h->descr);
        goto fail;
    }
    h->count = 1;
    /* Features are stored as float32 whatever the file's dtype: count * 4 must fit too. */
    size_t unit = h->itemsize > sizeof(float) ? h->itemsize : sizeof(float);
    for (int i = 0; i < h->ndim; i++) {
        if (h->shape[i] && h->count > SIZE_MAX / unit / h->shape[i]) {
            st = bl_fail(err, BL_ERR_FORMAT, "%s: shape (header field shape) is too large", path);
            goto fail;
        }
        h->count *= h->shape[i];
    }
    /* A shape the file cannot hold fails here, before anything is sized by it: a
     * 100-byte file claiming (1e9, 1000) used to allocate and zero 4 TB first. */
    struct stat sb;
    long off = ftell(f);
    if (off >= 0 && fstat(fileno(f), &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size >= off &&
        (uint64_t)(sb.st_size - off) < (uint64_t)h->count * h->itemsize) {
        st = npy_short(path, h, (size_t)(sb.st_size - off), off, err);
        goto fail;
    }
    *fp = f;
    return BL_OK;
fail:
    bl_free(text);
    fclose(f);
    return st;
}

static void shape_str(char *out, size_t cap, const npy_header *h) {
    int w = snprintf(out, cap, "(");
    for (int i = 0; i < h->ndim && w < (int)cap; i++)
        w += snprintf(out + w, cap - (size_t)w, "%s%zu", i ? ", " : "", h->shape[i]);
    if (w < (int)cap) snprintf(out + w, cap - (size_t)w, ")");
}

/* Read the whole payload into dst (count * itemsize bytes). */
static bl_status npy_read_payload(FILE *f, const char *path, const npy_header *h, void *dst,
                                  bl_error *err) {
    size_t want = h->count * h->itemsize;
    long off = ftell(f);
    size_t got = fread(dst, 1, want, f);
    return got == want ? BL_OK : npy_short(path, h, got, off, err);
}

/* Name the first non-finite feature (or, for float64, one beyond float32's range). */
static bl_status check_finite(const bl_dataset *ds, const char *path, const double *f8,
                              bl_error *err) {
    size_t count = ds->n * ds->dim;
    for (size_t i = 0; i < count; i++) {
        double v = f8 ? f8[i] : (double)ds->x[i];
        if (isfinite(v) && fabs(v) <= FLT_MAX) continue;
        size_t r = i / ds->dim, c = i % ds->dim;
        return bl_fail(err, BL_ERR_FORMAT,
                       "%s: element [%zu, %zu] (sample %zu, feature %zu, counting from 0) is %g: "
                       "%s",
                       path, r, c, r, c, v,
                       isfinite(v) ? "too large for float32"
                                   : "every input must be a finite number");
    }
    return BL_OK;
}

static bl_status read_x(bl_dataset *ds, bl_mem *mem, const char *path, bl_error *err) {
    FILE *f;
    npy_header h;
    bl_status st = npy_open(path, &f, &h, err);
    if (st != BL_OK) return st;
    void *tmp = NULL;
    if (h.dtype != NPY_F4 && h.dtype != NPY_F8 && h.dtype != NPY_U1) {
        st = bl_fail(err, BL_ERR_FORMAT,
                     "%s: features must be float32 ('<f4'), float64 ('<f8') or uint8 ('|u1'); "
                     "descr is '%s'",
                     path, h.descr);
        goto done;
    }
    if (h.ndim < 2 || h.ndim > 4 || h.count == 0) {
        char sh[160];
        shape_str(sh, sizeof sh, &h);
        st = bl_fail(err, BL_ERR_SHAPE,
                     "%s: features shape %s: expected (n, d), (n, h, w) or (n, c, h, w) with no "
                     "zero dimension",
                     path, sh);
        goto done;
    }
    bl_shape s = {1, 1, 1};
    for (int i = 1; i < h.ndim; i++)
        if (h.shape[i] > INT32_MAX) {
            st = bl_fail(err, BL_ERR_SHAPE, "%s: dimension %d (%zu) is too large", path, i,
                         h.shape[i]);
            goto done;
        }
    if (h.ndim == 2)
        s.c = (int)h.shape[1];
    else if (h.ndim == 3)
        s.h = (int)h.shape[1], s.w = (int)h.shape[2];
    else
        s.c = (int)h.shape[1], s.h = (int)h.shape[2], s.w = (int)h.shape[3];
    ds->n = h.shape[0];
    ds->shape = s;
    ds->dim = h.count / h.shape[0];
    /* Bytes or a (h, w) layout are pictures: `auto` normalisation scales them as a whole. */
    ds->kind = h.dtype == NPY_U1 || h.ndim > 2 ? BL_DATA_IMAGE : BL_DATA_TABULAR;
    ds->format = ".npy";
    ds->x = bl_mem_alloc(mem, h.count * sizeof(float), "dataset features", err);
    if (!ds->x) {
        st = err ? err->code : BL_ERR_NOMEM;
        goto done;
    }
    if (h.dtype == NPY_F4) {
        st = npy_read_payload(f, path, &h, ds->x, err);
        if (st == BL_OK) st = check_finite(ds, path, NULL, err);
        goto done;
    }
    tmp = bl_malloc(h.count * h.itemsize);
    if (!tmp) {
        st = bl_fail(err, BL_ERR_NOMEM, "%s: out of memory for %zu bytes", path,
                     h.count * h.itemsize);
        goto done;
    }
    st = npy_read_payload(f, path, &h, tmp, err);
    if (st != BL_OK) goto done;
    if (h.dtype == NPY_U1) {
        const uint8_t *u = tmp;
        for (size_t i = 0; i < h.count; i++)
            ds->x[i] = (float)u[i];
    } else {
        const double *d = tmp;
        st = check_finite(ds, path, d, err);
        for (size_t i = 0; st == BL_OK && i < h.count; i++)
            ds->x[i] = (float)d[i];
    }
done:
    bl_free(tmp);
    fclose(f);
    return st;
}

static bl_status read_y(bl_dataset *ds, bl_mem *mem, const char *path, const bl_load_opts *o,
                        bl_error *err) {
    FILE *f;
    npy_header h;
    bl_status st = npy_open(path, &f, &h, err);
    if (st != BL_OK) return st;
    void *tmp = NULL;
    if (h.dtype != NPY_I4 && h.dtype != NPY_I8 && h.dtype != NPY_U1) {
        st = bl_fail(err, BL_ERR_FORMAT,
                     "%s: labels must be int32 ('<i4'), int64 ('<i8') or uint8 ('|u1'); descr "
                     "is '%s'",
                     path, h.descr);
        goto done;
    }
    if (h.ndim != 1 || h.shape[0] != ds->n) {
        char sh[160];
        shape_str(sh, sizeof sh, &h);
        st = bl_fail(err, BL_ERR_SHAPE, "%s: labels shape is %s but the features have %zu rows",
                     path, sh, ds->n);
        goto done;
    }
    ds->y = bl_mem_alloc(mem, ds->n * sizeof(int32_t), "dataset labels", err);
    tmp = ds->y ? bl_malloc(h.count * h.itemsize + 1) : NULL;
    if (!tmp) {
        st = ds->y ? bl_fail(err, BL_ERR_NOMEM, "%s: out of memory", path)
                   : (err ? err->code : BL_ERR_NOMEM);
        goto done;
    }
    st = npy_read_payload(f, path, &h, tmp, err);
    if (st != BL_OK) goto done;
    for (size_t i = 0; i < ds->n; i++) {
        int64_t v = h.dtype == NPY_U1   ? ((const uint8_t *)tmp)[i]
                    : h.dtype == NPY_I4 ? ((const int32_t *)tmp)[i]
                                        : ((const int64_t *)tmp)[i];
        if (v < 0 || v >= BL_MAX_CLASSES) {
            st = bl_fail(err, BL_ERR_FORMAT,
                         "%s: label index %zu (0-based) is %lld: labels must be class numbers "
                         "0..K-1 (at most %d)",
                         path, i, (long long)v, BL_MAX_CLASSES - 1);
            goto done;
        }
        ds->y[i] = (int32_t)v;
    }
    st = data_labels_finish(ds, o, path, NULL, err);
done:
    bl_free(tmp);
    fclose(f);
    return st;
}

bl_status data_load_npy(bl_dataset *ds, bl_mem *mem, const char *x_path, const char *y_path,
                        const bl_load_opts *o, bl_error *err) {
    memset(ds, 0, sizeof *ds);
    bl_status st = read_x(ds, mem, x_path, err);
    if (st == BL_OK && y_path) {
        st = read_y(ds, mem, y_path, o, err);
    } else if (st == BL_OK) {
        /* Unlabelled (e.g. for prediction): y all 0 and n_classes 0. */
        ds->y = bl_mem_alloc(mem, ds->n * sizeof(int32_t), "dataset labels", err);
        if (!ds->y) st = err ? err->code : BL_ERR_NOMEM;
    }
    if (st != BL_OK) {
        bl_dataset_free(ds, mem);
        return st;
    }
    snprintf(ds->name, sizeof ds->name, "%s", x_path);
    return BL_OK;
}

bl_status bl_dataset_load_npy(bl_dataset *ds, bl_mem *mem, const char *x_path, const char *y_path,
                              bl_error *err) {
    bl_load_opts o;
    bl_load_opts_default(&o);
    o.classes = BL_CLASSES_ANY;
    return data_load_npy(ds, mem, x_path, y_path, &o, err);
}

/* A C-order 2-D array of `descr` items (itemsize bytes each), atomically. */
static bl_status npy_write(const char *path, const char *descr, const void *data, size_t itemsize,
                           size_t rows, size_t cols, bl_error *err) {
    if (!host_is_little_endian())
        return bl_fail(err, BL_ERR_UNSUPPORTED, "%s: .npy writing needs a little-endian host",
                       path);
    /* v1 header padded with spaces so the data starts on a 64-byte boundary. */
    char header[256];
    int len = snprintf(header + 10, sizeof header - 10,
                       "{'descr': '%s', 'fortran_order': False, 'shape': (%zu, %zu), }", descr,
                       rows, cols);
    size_t total = 10 + (size_t)len + 1;
    size_t padded = (total + 63) / 64 * 64;
    memset(header + 10 + len, ' ', padded - total);
    header[padded - 1] = '\n';
    memcpy(header, "\x93NUMPY\x01\x00", 8);
    header[8] = (char)((padded - 10) & 0xff);
    header[9] = (char)((padded - 10) >> 8);

    bl_atomic_file af;
    bl_status st = bl_atomic_open(&af, path, err);
    if (st != BL_OK) return st;
    size_t count = rows * cols;
    if (fwrite(header, 1, padded, af.fp) != padded ||
        (count && fwrite(data, itemsize, count, af.fp) != count)) {
        int e = errno;
        bl_atomic_abort(&af);
        return bl_fail(err, BL_ERR_IO, "%s: write failed: %s", path, strerror(e));
    }
    return bl_atomic_commit(&af, err);
}

bl_status bl_npy_write_f32(const char *path, const float *data, size_t rows, size_t cols,
                           bl_error *err) {
    return npy_write(path, "<f4", data, sizeof(float), rows, cols, err);
}

bl_status bl_npy_write_i64(const char *path, const int64_t *data, size_t rows, size_t cols,
                           bl_error *err) {
    return npy_write(path, "<i8", data, sizeof(int64_t), rows, cols, err);
}
