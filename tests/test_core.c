/* Core services: RNG determinism and distribution, memory accounting and budget. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include "batchlab/core.h"

static void rng_is_deterministic(void **state) {
    bl_rng a, b;
    bl_rng_seed(&a, 42);
    bl_rng_seed(&b, 42);
    for (int i = 0; i < 1000; i++)
        assert_true(bl_rng_next(&a) == bl_rng_next(&b));
    bl_rng_seed(&b, 43);
    assert_false(bl_rng_next(&a) == bl_rng_next(&b));
}

static void rng_normal_moments(void **state) {
    bl_rng r;
    bl_rng_seed(&r, 7);
    double s = 0, s2 = 0;
    int n = 200000;
    for (int i = 0; i < n; i++) {
        double v = bl_rng_normal(&r);
        s += v;
        s2 += v * v;
    }
    assert_true(fabs(s / n) < 0.01);
    assert_true(fabs(s2 / n - 1.0) < 0.02);
}

static void rng_shuffle_is_permutation(void **state) {
    bl_rng r;
    bl_rng_seed(&r, 1);
    uint32_t idx[257];
    int seen[257] = {0};
    for (uint32_t i = 0; i < 257; i++)
        idx[i] = i;
    bl_rng_shuffle(&r, idx, 257);
    int moved = 0;
    for (uint32_t i = 0; i < 257; i++) {
        seen[idx[i]]++;
        moved += idx[i] != i;
    }
    for (int i = 0; i < 257; i++)
        assert_int_equal(seen[i], 1);
    assert_true(moved > 200);
    for (int i = 0; i < 10000; i++)
        assert_true(bl_rng_below(&r, 10) < 10);
}

static void mem_counts_and_enforces_budget(void **state) {
    bl_mem m = {0};
    bl_error err = {0};
    void *a = bl_mem_alloc(&m, 1000, "a", &err);
    assert_non_null(a);
    assert_true(((uintptr_t)a % 64) == 0);
    assert_int_equal(m.cur_bytes, 1000);
    void *b = bl_mem_alloc(&m, 3000, "b", &err);
    assert_int_equal(m.peak_bytes, 4000);
    bl_mem_free(&m, a);
    assert_int_equal(m.cur_bytes, 3000);
    assert_int_equal(m.peak_bytes, 4000);
    m.limit_bytes = 5000;
    void *c = bl_mem_alloc(&m, 2001, "activations", &err);
    assert_null(c);
    assert_int_equal(err.code, BL_ERR_NOMEM);
    assert_non_null(strstr(err.msg, "activations"));
    assert_int_equal(m.cur_bytes, 3000);
    c = bl_mem_alloc(&m, 2000, "c", &err);
    assert_non_null(c);
    bl_mem_free(&m, b);
    bl_mem_free(&m, c);
    assert_int_equal(m.cur_bytes, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rng_is_deterministic),
        cmocka_unit_test(rng_normal_moments),
        cmocka_unit_test(rng_shuffle_is_permutation),
        cmocka_unit_test(mem_counts_and_enforces_budget),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
