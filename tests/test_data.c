/* Dataset readers: IDX (raw and gz), CSV and .npy, labelled and not, plus the
 * Fashion-MNIST loader's missing-file message. Every input is written byte by byte here, so the
 * expected values are known without trusting another reader; every bad-input
 * case checks the status and that the message names the file and the spot. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <cmocka.h>
#include "batchlab/data.h"
#include "test_util.h"





static void write_text(const char *path, const char *text) {
    tu_write_file(path, text, strlen(text), 0);
}

/* IDX bytes for unsigned-byte data: header then payload (caller frees). */
static uint8_t *idx_bytes(const int *dims, int ndim, const uint8_t *payload, size_t payload_n,
                          size_t *len) {
    *len = 4 + 4 * (size_t)ndim + payload_n;
    uint8_t *b = malloc(*len);
    b[0] = 0, b[1] = 0, b[2] = 0x08, b[3] = (uint8_t)ndim;
    for (int i = 0; i < ndim; i++) {
        uint32_t d = (uint32_t)dims[i];
        b[4 + 4 * i] = (uint8_t)(d >> 24), b[5 + 4 * i] = (uint8_t)(d >> 16);
        b[6 + 4 * i] = (uint8_t)(d >> 8), b[7 + 4 * i] = (uint8_t)d;
    }
    if (payload_n) memcpy(b + 4 + 4 * ndim, payload, payload_n);
    return b;
}

static void write_idx(const char *path, int gz, const int *dims, int ndim, const uint8_t *payload,
                      size_t payload_n) {
    size_t len;
    uint8_t *b = idx_bytes(dims, ndim, payload, payload_n, &len);
    if (gz)
        tu_write_file(path, b, len, 1);
    else
        tu_write_file(path, b, len, 0);
    free(b);
}

static const uint8_t k_pixels[12] = {0, 1, 2, 3, 250, 251, 252, 255, 7, 8, 9, 10};
static const uint8_t k_labels[3] = {4, 0, 9};

static void check_known_dataset(const bl_dataset *ds) {
    assert_int_equal(ds->n, 3);
    assert_int_equal(ds->dim, 4);
    for (int i = 0; i < 12; i++)
        assert_true(ds->x[i] == (float)k_pixels[i]);
    for (int i = 0; i < 3; i++)
        assert_int_equal(ds->y[i], k_labels[i]);
    assert_int_equal(ds->n_classes, 10);
}

static void idx_round_trip(int gz) {
    const char *dir = tu_tmpdir();
    const char *img = tu_join(dir, gz ? "img.gz" : "img"), *lab = tu_join(dir, gz ? "lab.gz" : "lab");
    int idims[3] = {3, 2, 2}, ldims[1] = {3};
    write_idx(img, gz, idims, 3, k_pixels, 12);
    write_idx(lab, gz, ldims, 1, k_labels, 3);

    uint8_t *data = NULL;
    int ndim = 0, dims[4];
    bl_error err = {0};
    assert_int_equal(bl_idx_read_u8(img, &data, &ndim, dims, &err), BL_OK);
    assert_int_equal(ndim, 3);
    assert_int_equal(dims[0], 3);
    assert_int_equal(dims[1], 2);
    assert_int_equal(dims[2], 2);
    assert_memory_equal(data, k_pixels, 12);
    free(data);

    bl_mem mem = {0};
    bl_dataset ds;
    assert_int_equal(bl_dataset_load_idx(&ds, &mem, img, lab, &err), BL_OK);
    check_known_dataset(&ds);
    assert_int_equal(ds.shape.c, 1);
    assert_int_equal(ds.shape.h, 2);
    assert_int_equal(ds.shape.w, 2);
    bl_dataset_free(&ds, &mem);
    assert_int_equal(mem.cur_bytes, 0);

    /* (n, d) images are flat vectors: shape (d, 1, 1). */
    int fdims[2] = {3, 4};
    write_idx(img, gz, fdims, 2, k_pixels, 12);
    assert_int_equal(bl_dataset_load_idx(&ds, &mem, img, lab, &err), BL_OK);
    check_known_dataset(&ds);
    assert_int_equal(ds.shape.c, 4);
    assert_int_equal(ds.shape.h, 1);
    bl_dataset_free(&ds, &mem);
    tu_rmtree(dir);
}

static void idx_raw_round_trip(void **state) {
    idx_round_trip(0);
}
static void idx_gz_round_trip(void **state) {
    idx_round_trip(1);
}

static void idx_truncated_gz(void **state) {
    const char *dir = tu_tmpdir();
    const char *img = tu_join(dir, "img.gz");
    /* Random bytes do not compress, so cutting the file cuts the payload. */
    enum { N = 50, D = 28 * 28 };
    uint8_t *px = malloc(N * D);
    bl_rng r;
    bl_rng_seed(&r, 3);
    for (int i = 0; i < N * D; i++)
        px[i] = (uint8_t)bl_rng_next(&r);
    int dims[3] = {N, 28, 28};
    write_idx(img, 1, dims, 3, px, N * D);
    struct stat sb;
    assert_int_equal(stat(img, &sb), 0);
    assert_int_equal(truncate(img, sb.st_size / 2), 0);

    uint8_t *data = NULL;
    int ndim, d[4];
    bl_error err = {0};
    assert_int_equal(bl_idx_read_u8(img, &data, &ndim, d, &err), BL_ERR_FORMAT);
    assert_null(data);
    assert_non_null(strstr(err.msg, img));
    assert_non_null(strstr(err.msg, "unexpected end of file"));
    assert_non_null(strstr(err.msg, "truncated"));

    /* A gzip stream cut inside its 10-byte header, too. */
    assert_int_equal(truncate(img, 6), 0);
    assert_int_equal(bl_idx_read_u8(img, &data, &ndim, d, &err), BL_ERR_FORMAT);
    assert_non_null(strstr(err.msg, img));
    free(px);
    tu_rmtree(dir);
}

static void idx_bad_magic_and_type(void **state) {
    const char *dir = tu_tmpdir();
    const char *p = tu_join(dir, "bad");
    const uint8_t junk[16] = {0x12, 0x34, 0x08, 0x01, 0, 0, 0, 1, 5};
    tu_write_file(p, junk, sizeof junk, 0);
    uint8_t *data = NULL;
    int ndim, d[4];
    bl_error err = {0};
    assert_int_equal(bl_idx_read_u8(p, &data, &ndim, d, &err), BL_ERR_FORMAT);
    assert_non_null(strstr(err.msg, p));
    assert_non_null(strstr(err.msg, "magic"));

    const uint8_t floats[12] = {0, 0, 0x0D, 0x01, 0, 0, 0, 1, 0, 0, 0, 0};
    tu_write_file(p, floats, sizeof floats, 1);
    assert_int_equal(bl_idx_read_u8(p, &data, &ndim, d, &err), BL_ERR_FORMAT);
    assert_non_null(strstr(err.msg, p));
    assert_non_null(strstr(err.msg, "type"));
    assert_non_null(strstr(err.msg, "0x0d"));
    tu_rmtree(dir);
}

static void idx_count_mismatch(void **state) {
    const char *dir = tu_tmpdir();
    const char *img = tu_join(dir, "img.gz"), *lab = tu_join(dir, "lab.gz");
    int idims[3] = {3, 2, 2}, ldims[1] = {2};
    write_idx(img, 1, idims, 3, k_pixels, 12);
    write_idx(lab, 1, ldims, 1, k_labels, 2);
    bl_mem mem = {0};
    bl_dataset ds;
    bl_error err = {0};
    assert_int_equal(bl_dataset_load_idx(&ds, &mem, img, lab, &err), BL_ERR_SHAPE);
    assert_non_null(strstr(err.msg, img));
    assert_non_null(strstr(err.msg, lab));
    assert_non_null(strstr(err.msg, "count"));
    assert_int_equal(mem.cur_bytes, 0);
    tu_rmtree(dir);
}

static void idx_payload_shorter_than_header(void **state) {
    const char *dir = tu_tmpdir();
    for (int gz = 0; gz < 2; gz++) {
        const char *img = tu_join(dir, gz ? "short.gz" : "short");
        int dims[3] = {3, 2, 2};
        write_idx(img, gz, dims, 3, k_pixels, 10); /* 12 promised */
        uint8_t *data = NULL;
        int ndim, d[4];
        bl_error err = {0};
        assert_int_equal(bl_idx_read_u8(img, &data, &ndim, d, &err), BL_ERR_FORMAT);
        assert_non_null(strstr(err.msg, img));
        assert_non_null(strstr(err.msg, "payload"));
        assert_non_null(strstr(err.msg, "3x2x2"));
        assert_non_null(strstr(err.msg, "26 bytes")); /* 16 header + 10 payload */
    }
    tu_rmtree(dir);
}

static void idx_missing_file(void **state) {
    const char *dir = tu_tmpdir();
    const char *img = tu_join(dir, "nope-images.gz"), *lab = tu_join(dir, "nope-labels.gz");
    bl_mem mem = {0};
    bl_dataset ds;
    bl_error err = {0};
    assert_int_equal(bl_dataset_load_idx(&ds, &mem, img, lab, &err), BL_ERR_IO);
    assert_non_null(strstr(err.msg, img));

    bl_dataset te;
    assert_int_equal(bl_dataset_load_fashion_mnist(&ds, &te, &mem, dir, &err), BL_ERR_IO);
    assert_non_null(strstr(err.msg, "train-images-idx3-ubyte.gz"));
    assert_non_null(strstr(err.msg, dir));
    assert_non_null(strstr(err.msg, "install it with: apt-get install dataset-fashion-mnist"));
    assert_int_equal(mem.cur_bytes, 0);
    tu_rmtree(dir);
}

/* ---- CSV ---------------------------------------------------------------------- */
static bl_status load_csv_text(bl_dataset *ds, bl_mem *mem, const char *text, int label_col,
                               int header, bl_error *err, const char **path_out) {
    const char *dir = tu_tmpdir();
    const char *p = tu_join(dir, "d.csv");
    write_text(p, text);
    bl_status st = bl_dataset_load_csv(ds, mem, p, label_col, header, err);
    if (path_out) {
        static char keep[4096];
        snprintf(keep, sizeof keep, "%s", p);
        *path_out = keep;
    }
    tu_rmtree(dir);
    return st;
}

static void csv_label_positions_and_header(void **state) {
    bl_mem mem = {0};
    bl_dataset ds;
    bl_error err = {0};
    /* label first, with header */
    assert_int_equal(
        load_csv_text(&ds, &mem, "label,a,b\n1,0.5,2\n3,-1e2,4\n", BL_LABEL_FIRST, 1, &err, NULL),
        BL_OK);
    assert_int_equal(ds.n, 2);
    assert_int_equal(ds.dim, 2);
    assert_int_equal(ds.shape.c, 2);
    assert_true(ds.x[0] == 0.5f && ds.x[1] == 2.0f && ds.x[2] == -100.0f && ds.x[3] == 4.0f);
    assert_int_equal(ds.y[0], 1);
    assert_int_equal(ds.y[1], 3);
    assert_int_equal(ds.n_classes, 4);
    bl_dataset_free(&ds, &mem);
    /* label last, no header */
    assert_int_equal(load_csv_text(&ds, &mem, "0.5,2,1\n-3,4,0", BL_LABEL_LAST, 0, &err, NULL),
                     BL_OK);
    assert_int_equal(ds.n, 2);
    assert_true(ds.x[0] == 0.5f && ds.x[1] == 2.0f && ds.x[2] == -3.0f && ds.x[3] == 4.0f);
    assert_int_equal(ds.y[0], 1);
    assert_int_equal(ds.y[1], 0);
    bl_dataset_free(&ds, &mem);
    /* label in column 2 (0-based) of 4 */
    assert_int_equal(load_csv_text(&ds, &mem, "1,2,5,3\n4,5,6,6\n", 2, 0, &err, NULL), BL_OK);
    assert_int_equal(ds.dim, 3);
    assert_true(ds.x[0] == 1 && ds.x[1] == 2 && ds.x[2] == 3 && ds.x[3] == 4 && ds.x[5] == 6);
    assert_int_equal(ds.y[0], 5);
    assert_int_equal(ds.y[1], 6);
    bl_dataset_free(&ds, &mem);
    /* without has_header, a text header is a non-numeric cell on line 1 */
    const char *p;
    assert_int_equal(load_csv_text(&ds, &mem, "label,a\n1,2\n", 0, 0, &err, &p), BL_ERR_FORMAT);
    assert_non_null(strstr(err.msg, ": row 1, column 1: 'label' is not a number"));
    assert_non_null(strstr(err.msg, "pass --header"));
    /* a label column past the end */
    assert_int_equal(load_csv_text(&ds, &mem, "1,2\n", 5, 0, &err, NULL), BL_ERR_ARG);
    assert_non_null(strstr(err.msg, "label column 5"));
    assert_int_equal(mem.cur_bytes, 0);
}

static void csv_blank_lines_and_crlf(void **state) {
    bl_mem mem = {0};
    bl_dataset ds;
    bl_error err = {0};
    const char *text = "\xEF\xBB\xBFx,y,label\r\n\r\n1, 2 ,3\r\n   \t\r\n\"4\",5,6\r\n\r\n";
    assert_int_equal(load_csv_text(&ds, &mem, text, BL_LABEL_LAST, 1, &err, NULL), BL_OK);
    assert_int_equal(ds.n, 2);
    assert_true(ds.x[0] == 1 && ds.x[1] == 2 && ds.x[2] == 4 && ds.x[3] == 5);
    assert_int_equal(ds.y[0], 3);
    assert_int_equal(ds.y[1], 6);
    bl_dataset_free(&ds, &mem);
    /* only blank lines: no data */
    assert_int_equal(load_csv_text(&ds, &mem, "a,b\n\n  \n", 0, 1, &err, NULL), BL_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "no data rows"));
}

static void csv_bad_cells(void **state) {
    bl_mem mem = {0};
    bl_dataset ds;
    bl_error err = {0};
    const char *p;
    char want[4200];
    /* line numbers count the header and blank lines */
    assert_int_equal(load_csv_text(&ds, &mem, "h1,h2,h3\n1,2,3\n\n4,abc,6\n", 0, 1, &err, &p),
                     BL_ERR_FORMAT);
    snprintf(want, sizeof want, "%s: row 4, column 2: 'abc' is not a number", p);
    assert_string_equal(err.msg, want);
    /* an empty cell is not a number either */
    assert_int_equal(load_csv_text(&ds, &mem, "1,2,3\n4,,6\n", 0, 0, &err, &p), BL_ERR_FORMAT);
    assert_non_null(strstr(err.msg, ": row 2, column 2: the cell is empty"));
    /* ragged rows: too few and too many cells */
    assert_int_equal(load_csv_text(&ds, &mem, "1,2,3\n4,5,6\n7,8\n", 0, 0, &err, &p),
                     BL_ERR_FORMAT);
    assert_non_null(strstr(err.msg, p));
    assert_non_null(strstr(err.msg, ": row 3, column 3:"));
    assert_non_null(strstr(err.msg, "ragged"));
    assert_int_equal(load_csv_text(&ds, &mem, "1,2\n4,5,6\n", 0, 0, &err, &p), BL_ERR_FORMAT);
    assert_non_null(strstr(err.msg, ": row 2, column 3:"));
    /* labels: negative, fractional */
    assert_int_equal(load_csv_text(&ds, &mem, "1,2\n-1,5\n", 0, 0, &err, &p), BL_ERR_FORMAT);
    assert_non_null(strstr(err.msg, ": row 2, column 1: label '-1' is negative"));
    assert_int_equal(load_csv_text(&ds, &mem, "1,2,0.5\n", BL_LABEL_LAST, 0, &err, &p),
                     BL_ERR_FORMAT);
    assert_non_null(strstr(err.msg, ": row 1, column 3: label '0.5' is not an integer"));
    /* non-finite feature */
    assert_int_equal(load_csv_text(&ds, &mem, "1,nan\n", 0, 0, &err, &p), BL_ERR_FORMAT);
    assert_non_null(strstr(err.msg, ": row 1, column 2: 'nan' is not a finite number"));
    /* missing file */
    assert_int_equal(bl_dataset_load_csv(&ds, &mem, "/nonexistent/x.csv", 0, 0, &err), BL_ERR_IO);
    assert_non_null(strstr(err.msg, "/nonexistent/x.csv"));
    assert_int_equal(mem.cur_bytes, 0);
}

/* ---- .npy --------------------------------------------------------------------- */
/* A v1 (or v2) .npy file with the given header dict and payload. */
static void write_npy(const char *path, int version, const char *dict, const void *data, size_t n) {
    size_t pre = version == 1 ? 10 : 12, dl = strlen(dict);
    size_t total = (pre + dl + 1 + 63) / 64 * 64, hlen = total - pre;
    uint8_t *b = malloc(total + n);
    memcpy(b, "\x93NUMPY", 6);
    b[6] = (uint8_t)version, b[7] = 0;
    b[8] = (uint8_t)hlen, b[9] = (uint8_t)(hlen >> 8);
    if (version != 1) b[10] = 0, b[11] = 0;
    memset(b + pre, ' ', hlen);
    memcpy(b + pre, dict, dl);
    b[total - 1] = '\n';
    if (n) memcpy(b + total, data, n);
    tu_write_file(path, b, total + n, 0);
    free(b);
}

static void npy_read_f32_and_u8(void **state) {
    const char *dir = tu_tmpdir();
    const char *xp = tu_join(dir, "x.npy"), *yp = tu_join(dir, "y.npy");
    const float xf[6] = {0.5f, -1.0f, 2.0f, 3.25f, 1e-3f, 7.0f};
    const int64_t y8[3] = {2, 0, 1};
    write_npy(xp, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }", xf, sizeof xf);
    write_npy(yp, 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", y8, sizeof y8);
    bl_mem mem = {0};
    bl_dataset ds;
    bl_error err = {0};
    assert_int_equal(bl_dataset_load_npy(&ds, &mem, xp, yp, &err), BL_OK);
    assert_int_equal(ds.n, 3);
    assert_int_equal(ds.dim, 2);
    assert_int_equal(ds.shape.c, 2);
    assert_memory_equal(ds.x, xf, sizeof xf);
    assert_int_equal(ds.y[0], 2);
    assert_int_equal(ds.y[2], 1);
    assert_int_equal(ds.n_classes, 3);
    bl_dataset_free(&ds, &mem);

    /* uint8 images (n, h, w), v2 header, int32 labels; then (n, c, h, w) with uint8 labels */
    const uint8_t xu[12] = {0, 255, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    const int32_t y4[2] = {1, 5};
    write_npy(xp, 2, "{\"descr\": \"|u1\", \"fortran_order\": False, \"shape\": (2, 2, 3)}", xu,
              sizeof xu);
    write_npy(yp, 1, "{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }", y4, sizeof y4);
    assert_int_equal(bl_dataset_load_npy(&ds, &mem, xp, yp, &err), BL_OK);
    assert_int_equal(ds.shape.c, 1);
    assert_int_equal(ds.shape.h, 2);
    assert_int_equal(ds.shape.w, 3);
    for (int i = 0; i < 12; i++)
        assert_true(ds.x[i] == (float)xu[i]);
    assert_int_equal(ds.y[1], 5);
    bl_dataset_free(&ds, &mem);
    const uint8_t yu[2] = {0, 3};
    write_npy(xp, 1, "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 3, 1, 2), }", xu,
              sizeof xu);
    write_npy(yp, 1, "{'descr': '|u1', 'fortran_order': False, 'shape': (2,), }", yu, sizeof yu);
    assert_int_equal(bl_dataset_load_npy(&ds, &mem, xp, yp, &err), BL_OK);
    assert_int_equal(ds.shape.c, 3);
    assert_int_equal(ds.shape.h, 1);
    assert_int_equal(ds.shape.w, 2);
    assert_int_equal(ds.dim, 6);
    assert_int_equal(ds.y[1], 3);
    bl_dataset_free(&ds, &mem);
    assert_int_equal(mem.cur_bytes, 0);
    tu_rmtree(dir);
}

static void npy_bad_inputs(void **state) {
    const char *dir = tu_tmpdir();
    const char *xp = tu_join(dir, "x.npy"), *yp = tu_join(dir, "y.npy");
    const float xf[4] = {1, 2, 3, 4};
    const int32_t y4[2] = {0, 1};
    write_npy(yp, 1, "{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }", y4, sizeof y4);
    bl_mem mem = {0};
    bl_dataset ds;
    bl_error err = {0};

    write_text(xp, "not numpy at all");
    assert_int_equal(bl_dataset_load_npy(&ds, &mem, xp, yp, &err), BL_ERR_FORMAT);
    assert_non_null(strstr(err.msg, xp));
    assert_non_null(strstr(err.msg, "magic"));

    write_npy(xp, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2 2), }", xf, 16);
    assert_int_equal(bl_dataset_load_npy(&ds, &mem, xp, yp, &err), BL_ERR_FORMAT);
    assert_non_null(strstr(err.msg, xp));
    assert_non_null(strstr(err.msg, "byte offset 63")); /* the second '2' */

    write_npy(xp, 1, "{'descr': '<f4', 'shape': (2, 2), }", xf, 16);
    assert_int_equal(bl_dataset_load_npy(&ds, &mem, xp, yp, &err), BL_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "fortran_order"));

    write_npy(xp, 1, "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 2), }", xf, 16);
    assert_int_equal(bl_dataset_load_npy(&ds, &mem, xp, yp, &err), BL_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "'>f4'"));

    write_npy(xp, 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", xf, 16);
    assert_int_equal(bl_dataset_load_npy(&ds, &mem, xp, yp, &err), BL_ERR_FORMAT);
    assert_non_null(strstr(err.msg, xp));
    assert_non_null(strstr(err.msg, "Fortran"));

    write_npy(xp, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }", xf, 12);
    assert_int_equal(bl_dataset_load_npy(&ds, &mem, xp, yp, &err), BL_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "(2, 2)"));
    assert_non_null(strstr(err.msg, "truncated"));

    /* labels: wrong count, float dtype, negative */
    write_npy(xp, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }", xf, 16);
    const int32_t y3[3] = {0, 1, 2};
    write_npy(yp, 1, "{'descr': '<i4', 'fortran_order': False, 'shape': (3,), }", y3, 12);
    assert_int_equal(bl_dataset_load_npy(&ds, &mem, xp, yp, &err), BL_ERR_SHAPE);
    assert_non_null(strstr(err.msg, yp));
    write_npy(yp, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", xf, 8);
    assert_int_equal(bl_dataset_load_npy(&ds, &mem, xp, yp, &err), BL_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "labels must be"));
    const int32_t yneg[2] = {0, -4};
    write_npy(yp, 1, "{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }", yneg, 8);
    assert_int_equal(bl_dataset_load_npy(&ds, &mem, xp, yp, &err), BL_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "label index 1 (0-based) is -4"));
    assert_int_equal(mem.cur_bytes, 0);
    tu_rmtree(dir);
}

static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static void npy_write_read_round_trip(void **state) {
    const char *dir = tu_tmpdir();
    const char *xp = tu_join(dir, "w.npy"), *yp = tu_join(dir, "y.npy");
    enum { R = 5, C = 7 };
    float x[R * C];
    tu_fill_normal(x, R * C, 11, 2.0f);
    bl_error err = {0};
    assert_int_equal(bl_npy_write_f32(xp, x, R, C, &err), BL_OK);
    const uint8_t y[R] = {0, 1, 2, 3, 4};
    write_npy(yp, 1, "{'descr': '|u1', 'fortran_order': False, 'shape': (5,), }", y, R);
    assert_int_equal(count_entries(dir), 2); /* no temp file left behind */

    FILE *f = fopen(xp, "rb");
    uint8_t head[10];
    assert_int_equal(fread(head, 1, 10, f), 10);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fclose(f);
    size_t hlen = head[8] | head[9] << 8;
    assert_int_equal((10 + hlen) % 64, 0);
    assert_int_equal((size_t)size, 10 + hlen + sizeof x);

    bl_mem mem = {0};
    bl_dataset ds;
    assert_int_equal(bl_dataset_load_npy(&ds, &mem, xp, yp, &err), BL_OK);
    assert_int_equal(ds.n, R);
    assert_int_equal(ds.dim, C);
    assert_memory_equal(ds.x, x, sizeof x);
    bl_dataset_free(&ds, &mem);

    /* overwriting replaces the file; a bad directory fails with nothing written */
    assert_int_equal(bl_npy_write_f32(xp, x, 1, 3, &err), BL_OK);
    write_npy(yp, 1, "{'descr': '|u1', 'fortran_order': False, 'shape': (1,), }", y, 1);
    assert_int_equal(bl_dataset_load_npy(&ds, &mem, xp, yp, &err), BL_OK);
    assert_int_equal(ds.n, 1);
    assert_int_equal(ds.dim, 3);
    bl_dataset_free(&ds, &mem);
    const char *bad = tu_join(dir, "missing-dir/w.npy");
    assert_int_equal(bl_npy_write_f32(bad, x, R, C, &err), BL_ERR_IO);
    assert_non_null(strstr(err.msg, bad));
    assert_int_equal(count_entries(dir), 2);
    tu_rmtree(dir);
}

/* Features without labels, as `batchlab predict` reads them: y all 0, n_classes 0. */
static void unlabelled_inputs(void **state) {
    const char *dir = tu_tmpdir();
    const char *img = tu_join(dir, "img.gz"), *xp = tu_join(dir, "x.npy"), *cp = tu_join(dir, "x.csv");
    int dims[3] = {3, 2, 2};
    write_idx(img, 1, dims, 3, k_pixels, 12);
    const float xf[4] = {1, 2, 3, 4};
    write_npy(xp, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }", xf, 16);
    write_text(cp, "a,b,c\n1,2,3\n4,5,6\n");
    bl_mem mem = {0};
    bl_dataset ds[3];
    bl_error err = {0};
    assert_int_equal(bl_dataset_load_idx(&ds[0], &mem, img, NULL, &err), BL_OK);
    assert_int_equal(bl_dataset_load_npy(&ds[1], &mem, xp, NULL, &err), BL_OK);
    assert_int_equal(bl_dataset_load_csv(&ds[2], &mem, cp, BL_LABEL_NONE, 1, &err), BL_OK);
    const size_t n[3] = {3, 2, 2}, dim[3] = {4, 2, 3};
    for (int k = 0; k < 3; k++) {
        assert_int_equal(ds[k].n, n[k]);
        assert_int_equal(ds[k].dim, dim[k]);
        assert_int_equal(ds[k].n_classes, 0);
        for (size_t i = 0; i < n[k]; i++)
            assert_int_equal(ds[k].y[i], 0);
    }
    assert_true(ds[0].x[7] == 255.0f && ds[1].x[3] == 4.0f && ds[2].x[5] == 6.0f);
    for (int k = 0; k < 3; k++)
        bl_dataset_free(&ds[k], &mem);
    assert_int_equal(bl_dataset_load_csv(&ds[0], &mem, cp, -3, 1, &err), BL_ERR_ARG);
    assert_int_equal(mem.cur_bytes, 0);
    tu_rmtree(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(idx_raw_round_trip),
        cmocka_unit_test(idx_gz_round_trip),
        cmocka_unit_test(idx_truncated_gz),
        cmocka_unit_test(idx_bad_magic_and_type),
        cmocka_unit_test(idx_count_mismatch),
        cmocka_unit_test(idx_payload_shorter_than_header),
        cmocka_unit_test(idx_missing_file),
        cmocka_unit_test(csv_label_positions_and_header),
        cmocka_unit_test(csv_blank_lines_and_crlf),
        cmocka_unit_test(csv_bad_cells),
        cmocka_unit_test(npy_read_f32_and_u8),
        cmocka_unit_test(npy_bad_inputs),
        cmocka_unit_test(npy_write_read_round_trip),
        cmocka_unit_test(unlabelled_inputs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
