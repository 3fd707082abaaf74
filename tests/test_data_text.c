/* Reading real-world data files through bl_dataset_load: the format from the
 * content (not the name), CSV separators, header detection, every line ending,
 * gzip, and non-finite inputs refused at load time with their row and column.
 * Every message is checked to name the spot and to carry no raw control
 * character. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <cmocka.h>
#include "batchlab/data.h"
#include "test_util.h"




/* A message fit for a terminal: no byte below 0x20 and no DEL. */
static int printable(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) return 0;
    return 1;
}

/* Load `text` written to dir/name (gzip when gz) with the default options but label
 * rules `classes`; returns the status, *ds filled on success. */
static bl_status load_text(bl_dataset *ds, bl_mem *mem, const char *name, const char *text, int gz,
                           const bl_load_opts *o, bl_load_info *info, bl_error *err) {
    const char *dir = tu_tmpdir();
    const char *p = tu_join(dir, name);
    tu_write_file(p, text, strlen(text), gz);
    bl_load_opts def;
    bl_load_opts_default(&def);
    bl_status st = bl_dataset_load(ds, mem, p, NULL, o ? o : &def, info, err);
    if (st != BL_OK) {
        assert_true(printable(err->msg));
        assert_non_null(strstr(err->msg, name));
    }
    tu_rmtree(dir);
    return st;
}

/* The 3-row, 2-feature set every variant below must give. */
static void check_small(const bl_dataset *ds) {
    assert_int_equal(ds->n, 3);
    assert_int_equal(ds->dim, 2);
    const float x[6] = {1.5f, 2, 3, -4, 5, 6e3f};
    for (int i = 0; i < 6; i++)
        assert_true(ds->x[i] == x[i]);
    assert_int_equal(ds->y[0], 0);
    assert_int_equal(ds->y[1], 1);
    assert_int_equal(ds->y[2], 2);
    assert_int_equal(ds->n_classes, 3);
    assert_int_equal(ds->kind, BL_DATA_TABULAR);
    assert_string_equal(ds->format, "CSV");
}

/* Separators, line endings, a header and gzip, each alone and together; the file
 * names are deliberately not .csv. */
static void csv_variants_read_alike(void **state) {
    static const struct {
        const char *name, *text;
        int gz;
        char sep;
        int header;
    } cases[] = {
        {"plain.CSV", "1.5,2,0\n3,-4,1\n5,6e3,2\n", 0, ',', 0},
        {"crlf.txt", "1.5,2,0\r\n3,-4,1\r\n5,6e3,2\r\n", 0, ',', 0},
        {"cr-only.csv", "1.5,2,0\r3,-4,1\r5,6e3,2\r", 0, ',', 0},
        {"tabs.tsv", "1.5\t2\t0\n3\t-4\t1\n5\t6e3\t2\n", 0, '\t', 0},
        {"semi.dat", "1.5;2;0\n3;-4;1\n5;6e3;2", 0, ';', 0},
        {"spaces.txt", "  1.5  2 0\n3 -4   1  \n5 6e3 2\n", 0, ' ', 0},
        {"header.csv", "sepal,width,class\n1.5,2,0\n3,-4,1\n5,6e3,2\n", 0, ',', 1},
        {"header-cr.tsv", "a\tb\tlabel\r1.5\t2\t0\r3\t-4\t1\r5\t6e3\t2", 0, '\t', 1},
        {"data.csv.gz", "x,y,label\r\n1.5,2,0\r\n3,-4,1\r\n5,6e3,2\r\n", 1, ',', 1},
        {"gz-no-suffix", "1.5;2;0\n3;-4;1\n5;6e3;2\n", 1, ';', 0},
    };
    bl_mem mem = {0};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bl_dataset ds;
        bl_load_info info;
        bl_error err = {0};
        bl_status st =
            load_text(&ds, &mem, cases[i].name, cases[i].text, cases[i].gz, NULL, &info, &err);
        if (st != BL_OK) fail_msg("%s: %s", cases[i].name, err.msg);
        check_small(&ds);
        assert_int_equal(info.format, BL_FILE_TEXT);
        assert_int_equal(info.gz, cases[i].gz);
        assert_int_equal(info.sep, cases[i].sep);
        assert_int_equal(info.header, cases[i].header);
        assert_int_equal(info.header_detected, cases[i].header);
        bl_dataset_free(&ds, &mem);
    }
    assert_int_equal(mem.cur_bytes, 0);
}

static void csv_header_detection_and_forcing(void **state) {
    bl_mem mem = {0};
    bl_dataset ds;
    bl_load_info info;
    bl_error err = {0};
    bl_load_opts o;
    bl_load_opts_default(&o);
    /* detected: the header text is kept (escaped) for the caller's note */
    assert_int_equal(
        load_text(&ds, &mem, "h.csv", "f0,f1\tx,class\n1,2,0\n3,4,1\n", 0, NULL, &info, &err),
        BL_OK);
    assert_int_equal(ds.n, 2);
    assert_true(info.header_detected);
    assert_string_equal(info.header_text, "f0,f1\\tx,class");
    bl_dataset_free(&ds, &mem);
    /* a class name in the label column does not hide the header */
    assert_int_equal(
        load_text(&ds, &mem, "names.csv", "a,b,label\n1,2,setosa\n", 0, NULL, &info, &err),
        BL_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "row 2, column 3: label 'setosa' is not a number"));
    /* a data row with a missing value is not a header */
    assert_int_equal(load_text(&ds, &mem, "hole.csv", "1,,0\n3,4,1\n", 0, NULL, &info, &err),
                     BL_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "row 1, column 2: the cell is empty"));
    /* --no-header: the header line is a data row, and the message says what to do */
    o.header = 0;
    assert_int_equal(
        load_text(&ds, &mem, "nohdr.csv", "class_0,class_1,y\n1,2,0\n", 0, &o, &info, &err),
        BL_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "row 1, column 1: 'class_0' is not a number (if row 1 is a "
                                    "header, pass --header)"));
    /* --header: line 1 is skipped even when numeric */
    o.header = 1;
    assert_int_equal(
        load_text(&ds, &mem, "numhdr.csv", "0,1,2\n1,2,0\n3,4,1\n", 0, &o, &info, &err), BL_OK);
    assert_int_equal(ds.n, 2);
    assert_true(info.header && !info.header_detected);
    bl_dataset_free(&ds, &mem);
    /* a forced separator wins over detection */
    o.header = 0;
    o.sep = ';';
    assert_int_equal(load_text(&ds, &mem, "forced.csv", "1,5;2;0\n3;4;1\n", 0, &o, &info, &err),
                     BL_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "row 1, column 1: '1,5' is not a number"));
    assert_int_equal(mem.cur_bytes, 0);
}

/* Control characters never reach a message raw; CR-only files are lines, not one
 * long row with CRs in it. */
static void csv_messages_escape_control_characters(void **state) {
    bl_mem mem = {0};
    bl_dataset ds;
    bl_error err = {0};
    bl_load_opts o;
    bl_load_opts_default(&o);
    o.header = 0;
    assert_int_equal(
        load_text(&ds, &mem, "ctl.csv", "1,2\x01\x1b[31m,0\n3,4,1\n", 0, &o, NULL, &err),
        BL_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "'2\\x01\\x1b[31m' is not a number"));
    assert_int_equal(load_text(&ds, &mem, "cr.csv", "1,2,0\r3,4\r5,6,1\r", 0, NULL, NULL, &err),
                     BL_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "row 2, column 3: the row has 2 cells but row 1 has 3"));
    assert_int_equal(mem.cur_bytes, 0);
}

static void csv_non_finite_cells_name_row_and_column(void **state) {
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"a,b,y\n1,2,0\n3,nan,1\n", "row 3, column 2: 'nan' is not a finite number"},
        {"1,2,0\n-inf,2,1\n", "row 2, column 1: '-inf' is not a finite number"},
        {"1,2,0\n\n3,1e999,1\n", "row 3, column 2: '1e999' is not a finite number"},
        {"1,2,0\n3,1e39,1\n", "row 2, column 2: '1e39' is too large for float32"},
    };
    bl_mem mem = {0};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bl_dataset ds;
        bl_error err = {0};
        assert_int_equal(load_text(&ds, &mem, "nf.csv", cases[i].text, 0, NULL, NULL, &err),
                         BL_ERR_FORMAT);
        if (!strstr(err.msg, cases[i].want)) fail_msg("'%s' lacks '%s'", err.msg, cases[i].want);
    }
    assert_int_equal(mem.cur_bytes, 0);
}

static void write_npy(const char *path, const char *descr, const char *shape, const void *data,
                      size_t n) {
    char dict[128];
    int len = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }",
                       descr, shape);
    uint8_t head[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (uint8_t)len, 0};
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(head, 1, 10, f), 10);
    assert_int_equal(fwrite(dict, 1, (size_t)len, f), (size_t)len);
    if (n) assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static void npy_non_finite_names_element(void **state) {
    const char *dir = tu_tmpdir();
    const char *xp = tu_join(dir, "x.npy"), *yp = tu_join(dir, "y.npy");
    bl_mem mem = {0};
    bl_dataset ds;
    bl_error err = {0};
    float x[6] = {1, 2, 3, 4, 5, 6};
    const int32_t y[3] = {0, 1, 0};
    write_npy(yp, "<i4", "(3,)", y, sizeof y);
    x[3] = NAN;
    write_npy(xp, "<f4", "(3, 2)", x, sizeof x);
    assert_int_equal(bl_dataset_load(&ds, &mem, xp, yp, NULL, NULL, &err), BL_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "element [1, 1]"));
    assert_non_null(strstr(err.msg, "is nan"));
    assert_non_null(strstr(err.msg, "finite"));
    /* unlabelled too (predict), and through the legacy reader */
    assert_int_equal(bl_dataset_load(&ds, &mem, xp, NULL, NULL, NULL, &err), BL_ERR_FORMAT);
    assert_int_equal(bl_dataset_load_npy(&ds, &mem, xp, NULL, &err), BL_ERR_FORMAT);
    double xd[6] = {1, 2, 3, 4, INFINITY, 6};
    write_npy(xp, "<f8", "(3, 2)", xd, sizeof xd);
    assert_int_equal(bl_dataset_load(&ds, &mem, xp, yp, NULL, NULL, &err), BL_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "element [2, 0]"));
    xd[4] = 1e300; /* finite in float64, not in float32 */
    write_npy(xp, "<f8", "(3, 2)", xd, sizeof xd);
    assert_int_equal(bl_dataset_load(&ds, &mem, xp, yp, NULL, NULL, &err), BL_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "too large for float32"));
    assert_int_equal(mem.cur_bytes, 0);
    tu_rmtree(dir);
}

static void sniff_by_content(void **state) {
    const char *dir = tu_tmpdir();
    const uint8_t idx[] = {0, 0, 8, 1, 0, 0, 0, 2, 1, 0};
    const char npy[] = "\x93NUMPY\x01\x00";
    struct {
        const char *name;
        const void *data;
        size_t n;
        int gz;
        bl_file_format want;
    } cases[] = {
        {"labels.csv", idx, sizeof idx, 0, BL_FILE_IDX},
        {"images.gz", idx, sizeof idx, 1, BL_FILE_IDX},
        {"x.bin", npy, 8, 0, BL_FILE_NPY},
        {"x.npy", "1,2,3\n", 6, 0, BL_FILE_TEXT},
        {"table.gz", "1,2,3\n", 6, 1, BL_FILE_TEXT},
        {"empty", "", 0, 0, BL_FILE_TEXT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *p = tu_join(dir, cases[i].name);
        tu_write_file(p, cases[i].data, cases[i].n, cases[i].gz);
        bl_file_format f;
        int gz = -1;
        bl_error err = {0};
        assert_int_equal(bl_data_sniff(p, &f, &gz, &err), BL_OK);
        assert_int_equal(f, cases[i].want);
        assert_int_equal(gz, cases[i].gz);
    }
    bl_file_format f;
    int gz;
    bl_error err = {0};
    assert_int_equal(bl_data_sniff(tu_join(dir, "missing"), &f, &gz, &err), BL_ERR_IO);
    assert_non_null(strstr(err.msg, "missing"));
    /* a text file with a labels file is a mistake the message explains */
    bl_mem mem = {0};
    bl_dataset ds;
    assert_int_equal(
        bl_dataset_load(&ds, &mem, tu_join(dir, "x.npy"), tu_join(dir, "labels.csv"), NULL, NULL, &err),
        BL_ERR_ARG);
    assert_non_null(strstr(err.msg, "--label-col"));
    tu_rmtree(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(csv_variants_read_alike),
        cmocka_unit_test(csv_header_detection_and_forcing),
        cmocka_unit_test(csv_messages_escape_control_characters),
        cmocka_unit_test(csv_non_finite_cells_name_row_and_column),
        cmocka_unit_test(npy_non_finite_names_element),
        cmocka_unit_test(sniff_by_content),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
