/* Labels as class numbers and the normalisation chosen for the data:
 * - a stray label (500 among 0..2) is an error naming its row, not a 501-class
 *   model; --classes K declares K instead; a huge, fractional or negative label,
 *   or a single class in training data, is an error;
 * - rows are numbered as in the file (header and blank lines count), samples of
 *   arrays by their 0-based index;
 * - `auto` normalisation is per-feature standardisation for tabular data and one
 *   global scale for images; a feature constant in training gets scale 1;
 * - predicted classes are written as an integer .npy. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "batchlab/data.h"
#include "test_util.h"




/* CSV text (labels last) loaded with label rules (classes, min_classes). */
static bl_status load_csv(bl_dataset *ds, bl_mem *mem, const char *text, int classes,
                          int min_classes, bl_error *err) {
    const char *dir = tu_tmpdir();
    const char *p = tu_join(dir, "labels.csv");
    tu_write_file(p, text, strlen(text), 0);
    bl_load_opts o;
    bl_load_opts_default(&o);
    o.classes = classes;
    o.min_classes = min_classes;
    bl_status st = bl_dataset_load(ds, mem, p, NULL, &o, NULL, err);
    tu_rmtree(dir);
    return st;
}

static void expect_csv_error(const char *text, int classes, int min_classes, const char *want) {
    bl_mem mem = {0};
    bl_dataset ds;
    bl_error err = {0};
    assert_int_equal(load_csv(&ds, &mem, text, classes, min_classes, &err), BL_ERR_FORMAT);
    if (!strstr(err.msg, want)) fail_msg("'%s' lacks '%s'", err.msg, want);
    assert_int_equal(mem.cur_bytes, 0);
}

static void labels_must_be_class_numbers(void **state) {
    /* a gap: the row of the label past it, what occurs, what to do */
    const char *stray = "x,y\n1,0\n2,1\n\n3,2\n4,500\n5,1\n";
    expect_csv_error(stray, 0, 2,
                     "labels.csv: row 6: label 500, but the labels are 0..2 and 500 "
                     "only (no row has label 3)");
    expect_csv_error(stray, 0, 2, "remap them, or pass --classes K");
    expect_csv_error("1,1\n2,2\n3,3\n", 0, 2, "they look 1-based: subtract 1");
    expect_csv_error("1,0\n2,2\n3,4\n3,7\n3,9\n3,12\n", 0, 2, "the labels are 0, 2, 4, 7, ...");
    /* labels that are no class number at all */
    expect_csv_error("1,0\n2,1000000\n", 0, 2,
                     "row 2, column 2: label '1000000' is too large (at most 65535)");
    expect_csv_error("1,0\n2,1.5\n", 0, 2, "row 2, column 2: label '1.5' is not an integer");
    expect_csv_error("1,0\n2,-1\n", 0, 2, "row 2, column 2: label '-1' is negative");
    expect_csv_error("1,0\n2,cat\n", 0, 2, "row 2, column 2: label 'cat' is not a number");
    expect_csv_error("1,0\n2,nan\n", 0, 2, "row 2, column 2: label 'nan' is not an integer");
    /* a declared K: labels below it, gaps allowed; at or above it, an error */
    expect_csv_error(stray, 3, 2, "row 6: label 500, but there are 3 classes (labels 0..2)");
    bl_mem mem = {0};
    bl_dataset ds;
    bl_error err = {0};
    assert_int_equal(load_csv(&ds, &mem, stray, 501, 2, &err), BL_OK);
    assert_int_equal(ds.n_classes, 501);
    bl_dataset_free(&ds, &mem);
    /* training data needs two classes; other data (eval) may hold one */
    expect_csv_error("0,5,0\n0,6,0\n", 0, 2,
                     "only one class (0) in the training labels: check --label-col");
    assert_int_equal(load_csv(&ds, &mem, "0,5,1\n0,6,1\n", 10, 0, &err), BL_OK);
    assert_int_equal(ds.n_classes, 10);
    bl_dataset_free(&ds, &mem);
    /* the legacy readers keep their contract: any class numbers, K = 1 + the largest */
    const char *dir = tu_tmpdir();
    const char *p = tu_join(dir, "legacy.csv");
    tu_write_file(p, "1,0\n2,500\n", 10, 0);
    assert_int_equal(bl_dataset_load_csv(&ds, &mem, p, BL_LABEL_LAST, 0, &err), BL_OK);
    assert_int_equal(ds.n_classes, 501);
    bl_dataset_free(&ds, &mem);
    tu_write_file(p, "1,0\n2,70000\n", 12, 0);
    assert_int_equal(bl_dataset_load_csv(&ds, &mem, p, BL_LABEL_LAST, 0, &err), BL_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "row 2, column 2: label '70000' is too large"));
    tu_rmtree(dir);
    assert_int_equal(mem.cur_bytes, 0);
}

static void write_npy(const char *path, const char *descr, const char *shape, const void *data,
                      size_t n) {
    char buf[256];
    int len = snprintf(buf + 10, sizeof buf - 10,
                       "{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, shape);
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (char)len, buf[9] = 0;
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, 10 + (size_t)len, f), 10 + (size_t)len);
    if (n) assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static void array_labels_name_the_index(void **state) {
    const char *dir = tu_tmpdir();
    const char *xp = tu_join(dir, "x.npy"), *yp = tu_join(dir, "y.npy");
    const float x[4] = {1, 2, 3, 4};
    write_npy(xp, "<f4", "(4, 1)", x, sizeof x);
    const int64_t y[4] = {0, 1, 7, 1};
    write_npy(yp, "<i8", "(4,)", y, sizeof y);
    bl_mem mem = {0};
    bl_dataset ds;
    bl_error err = {0};
    bl_load_opts o;
    bl_load_opts_default(&o);
    assert_int_equal(bl_dataset_load(&ds, &mem, xp, yp, &o, NULL, &err), BL_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "y.npy: label index 2 (0-based): label 7, but the labels are "
                                    "0..1 and 7 only"));
    o.classes = 8;
    assert_int_equal(bl_dataset_load(&ds, &mem, xp, yp, &o, NULL, &err), BL_OK);
    assert_int_equal(ds.n_classes, 8);
    bl_dataset_free(&ds, &mem);
    const int64_t huge[4] = {0, 1, 1000000, 1};
    write_npy(yp, "<i8", "(4,)", huge, sizeof huge);
    assert_int_equal(bl_dataset_load(&ds, &mem, xp, yp, &o, NULL, &err), BL_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "label index 2 (0-based) is 1000000"));
    tu_rmtree(dir);
    assert_int_equal(mem.cur_bytes, 0);
}

/* A feature constant in training: mean subtracted, scale 1, so a different test
 * value stays at its raw distance. */
static void standard_constant_feature_scale_one(void **state) {
    bl_mem mem = {0};
    bl_error err = {0};
    bl_dataset tr = {.n = 4, .dim = 2, .shape = {2, 1, 1}}, te = tr;
    float xtr[8] = {1, 5, 2, 5, 3, 5, 4, 5}, xte[2] = {2.5f, 6};
    int32_t y[4] = {0};
    tr.x = xtr, tr.y = y, te.n = 1, te.x = xte, te.y = y;
    bl_norm nm;
    assert_int_equal(bl_norm_fit(&nm, &mem, &tr, BL_NORM_STANDARD, &err), BL_OK);
    assert_true(nm.mean[1] == 5.0f);
    assert_true(nm.scale[1] == 1.0f);
    assert_true(fabsf(nm.scale[0] - 1.0f / sqrtf(1.25f)) < 1e-6f);
    bl_norm_apply(&nm, &te);
    assert_true(xte[0] == 0.0f);
    assert_true(xte[1] == 1.0f); /* was 1e6 with a std floor of 1e-6 */
    bl_norm_free(&nm, &mem);
    assert_int_equal(mem.cur_bytes, 0);
}

static void auto_norm_follows_the_data(void **state) {
    const char *dir = tu_tmpdir();
    bl_mem mem = {0};
    bl_error err = {0};
    bl_dataset ds;
    char why[64];
    /* tabular CSV, features 1000x apart: per-feature standardisation */
    const char *cp = tu_join(dir, "t.csv");
    tu_write_file(cp, "1,1000,0\n2,3000,1\n3,2000,0\n", 27, 0);
    assert_int_equal(bl_dataset_load(&ds, &mem, cp, NULL, NULL, NULL, &err), BL_OK);
    assert_int_equal(bl_norm_auto(&ds, why, sizeof why), BL_NORM_STANDARD);
    assert_string_equal(why, "tabular CSV");
    bl_norm nm;
    assert_int_equal(bl_norm_fit(&nm, &mem, &ds, BL_NORM_AUTO, &err), BL_OK);
    assert_int_equal(nm.kind, BL_NORM_STANDARD);
    bl_norm_apply(&nm, &ds);
    assert_true(fabsf(ds.x[1] - ds.x[0]) < 1e-5f); /* both features at the same scale */
    bl_norm_free(&nm, &mem);
    bl_dataset_free(&ds, &mem);
    /* arrays: bytes or (n, h, w) are images; 2-D float is tabular */
    const char *xp = tu_join(dir, "x.npy");
    const uint8_t u8[4] = {0, 255, 3, 4};
    const float f4[8] = {0};
    static const struct {
        const char *descr, *shape;
        bl_norm_kind want;
        const char *why;
    } cases[] = {{"|u1", "(2, 2)", BL_NORM_UNIT, "image .npy"},
                 {"<f4", "(2, 2, 2)", BL_NORM_UNIT, "image .npy"},
                 {"<f4", "(2, 4)", BL_NORM_STANDARD, "tabular .npy"}};
    for (int i = 0; i < 3; i++) {
        write_npy(xp, cases[i].descr, cases[i].shape, i == 0 ? (const void *)u8 : f4,
                  i == 0 ? 4 : 32);
        assert_int_equal(bl_dataset_load(&ds, &mem, xp, NULL, NULL, NULL, &err), BL_OK);
        assert_int_equal(bl_norm_auto(&ds, why, sizeof why), cases[i].want);
        assert_string_equal(why, cases[i].why);
        bl_dataset_free(&ds, &mem);
    }
    /* IDX is always images */
    const char *ip = tu_join(dir, "img");
    const uint8_t idx[] = {0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 2, 1, 2, 3, 4};
    tu_write_file(ip, idx, sizeof idx, 0);
    assert_int_equal(bl_dataset_load(&ds, &mem, ip, NULL, NULL, NULL, &err), BL_OK);
    assert_int_equal(bl_norm_auto(&ds, why, sizeof why), BL_NORM_UNIT);
    assert_string_equal(why, "image IDX");
    /* the kind survives a split */
    bl_dataset tr, va;
    assert_int_equal(bl_dataset_split(&ds, &tr, &va, 1, 1, &mem, &err), BL_OK);
    assert_int_equal(tr.kind, BL_DATA_IMAGE);
    assert_int_equal(va.kind, BL_DATA_IMAGE);
    assert_string_equal(va.format, "IDX");
    bl_dataset_free(&tr, &mem);
    bl_dataset_free(&va, &mem);
    bl_norm_kind k;
    assert_int_equal(bl_norm_parse(&k, "auto", &err), BL_OK);
    assert_int_equal(k, BL_NORM_AUTO);
    assert_string_equal(bl_norm_name(BL_NORM_STANDARD), "standard");
    tu_rmtree(dir);
    assert_int_equal(mem.cur_bytes, 0);
}

static void npy_classes_written_as_int64(void **state) {
    const char *dir = tu_tmpdir();
    const char *p = tu_join(dir, "cls.npy");
    const int64_t cls[3] = {2, 0, 70000};
    bl_error err = {0};
    assert_int_equal(bl_npy_write_i64(p, cls, 3, 1, &err), BL_OK);
    FILE *f = fopen(p, "rb");
    assert_non_null(f);
    char buf[256];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    size_t data_at = 10 + (size_t)(uint8_t)buf[8] + 256 * (size_t)(uint8_t)buf[9];
    assert_int_equal(data_at % 64, 0);
    assert_int_equal(n, data_at + sizeof cls);
    buf[data_at - 1] = '\0';
    assert_non_null(strstr(buf + 10, "'descr': '<i8'"));
    assert_non_null(strstr(buf + 10, "'shape': (3, 1)"));
    int64_t back[3];
    memcpy(back, buf + data_at, sizeof back);
    assert_memory_equal(back, cls, sizeof cls);
    tu_rmtree(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(labels_must_be_class_numbers),
        cmocka_unit_test(array_labels_name_the_index),
        cmocka_unit_test(standard_constant_feature_scale_one),
        cmocka_unit_test(auto_norm_follows_the_data),
        cmocka_unit_test(npy_classes_written_as_int64),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
