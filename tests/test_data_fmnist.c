/* Fashion-MNIST through bl_dataset_load_fashion_mnist: the committed sample
 * under tests/data/fmnist-sample (made by scripts/make_fmnist_sample.py) and,
 * when Debian's dataset-fashion-mnist is installed, the full set. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include "batchlab/data.h"
#include "test_util.h"

static void check_fmnist(const bl_dataset *ds, size_t n) {
    assert_int_equal(ds->n, n);
    assert_int_equal(ds->shape.c, 1);
    assert_int_equal(ds->shape.h, 28);
    assert_int_equal(ds->shape.w, 28);
    assert_int_equal(ds->dim, 784);
    assert_int_equal(ds->n_classes, 10);
    float lo = 1e9f, hi = -1e9f;
    for (size_t i = 0; i < n * 784; i++) {
        if (ds->x[i] < lo) lo = ds->x[i];
        if (ds->x[i] > hi) hi = ds->x[i];
    }
    assert_true(lo == 0.0f);
    assert_true(hi <= 255.0f && hi > 200.0f);
    int seen[10] = {0};
    for (size_t i = 0; i < n; i++) {
        assert_true(ds->y[i] >= 0 && ds->y[i] < 10);
        seen[ds->y[i]] = 1;
    }
    for (int c = 0; c < 10; c++)
        assert_true(seen[c]);
    bl_error err = {0};
    assert_int_equal(bl_dataset_check_labels(ds, 10, &err), BL_OK);
}

static void fmnist_sample_loads(void **state) {
    bl_mem mem = {0};
    bl_dataset tr, te;
    bl_error err = {0};
    bl_status st =
        bl_dataset_load_fashion_mnist(&tr, &te, &mem, BL_TEST_DATA_DIR "/fmnist-sample", &err);
    if (st != BL_OK) fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(st, BL_OK);
    check_fmnist(&tr, 600);
    check_fmnist(&te, 200);
    assert_non_null(strstr(tr.name, "train"));
    assert_non_null(strstr(te.name, "test"));
    bl_dataset_free(&tr, &mem);
    bl_dataset_free(&te, &mem);
    assert_int_equal(mem.cur_bytes, 0);
}

static void fmnist_full_loads(void **state) {
    if (!tu_file_exists(BL_FASHION_MNIST_DIR "/train-images-idx3-ubyte.gz")) {
        print_message("SKIP: " BL_FASHION_MNIST_DIR " is not installed "
                      "(apt-get install dataset-fashion-mnist)\n");
        skip();
    }
    bl_mem mem = {0};
    bl_dataset tr, te;
    bl_error err = {0};
    double t0 = bl_now_sec();
    assert_int_equal(bl_dataset_load_fashion_mnist(&tr, &te, &mem, NULL, &err), BL_OK);
    double secs = bl_now_sec() - t0;
    print_message("full Fashion-MNIST (60000 + 10000) loaded in %.3f s\n", secs);
    check_fmnist(&tr, 60000);
    check_fmnist(&te, 10000);
    /* Speed belongs in bench/; this bound only catches pathological reads. */
    assert_true(secs < 30.0);
    bl_dataset_free(&tr, &mem);
    bl_dataset_free(&te, &mem);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fmnist_sample_loads),
        cmocka_unit_test(fmnist_full_loads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
