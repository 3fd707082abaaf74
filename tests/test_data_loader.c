/* In-memory dataset operations: label checks, normalisation, the train/val
 * split and the batch iterator. Datasets here are synthetic with x[i][0] == i,
 * so every batch row says which sample it is. The loader properties that
 * exact resume and adaptive batch size rely on are checked directly: each
 * sample once per epoch, order a function of (seed, epoch) only, prefetch
 * byte-identical to no prefetch, and seek equal to an uninterrupted run. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "batchlab/data.h"
#include "test_util.h"

/* n samples of dim features: x[i][j] = i + j / 1000, y[i] = i % 7. */
static void make_seq(bl_dataset *ds, bl_mem *mem, size_t n, size_t dim) {
    bl_error err = {0};
    memset(ds, 0, sizeof *ds);
    ds->n = n;
    ds->dim = dim;
    ds->shape = (bl_shape){(int)dim, 1, 1};
    ds->x = bl_mem_alloc(mem, n * dim * sizeof(float), "x", &err);
    ds->y = bl_mem_alloc(mem, n * sizeof(int32_t), "y", &err);
    assert_non_null(ds->x);
    assert_non_null(ds->y);
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < dim; j++)
            ds->x[i * dim + j] = (float)i + (float)j / 1000.0f;
        ds->y[i] = (int32_t)(i % 7);
    }
    ds->n_classes = 7;
    strcpy(ds->name, "seq");
}

static void check_labels_range(void **state) {
    bl_mem mem = {0};
    bl_dataset ds;
    bl_error err = {0};
    make_seq(&ds, &mem, 20, 2);
    assert_int_equal(bl_dataset_check_labels(&ds, 7, &err), BL_OK);
    assert_int_equal(bl_dataset_check_labels(&ds, 5, &err), BL_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "seq: sample 5 has label 5"));
    assert_non_null(strstr(err.msg, "[0, 5)"));
    ds.y[3] = -2;
    assert_int_equal(bl_dataset_check_labels(&ds, 7, &err), BL_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "sample 3 has label -2"));
    bl_dataset_free(&ds, &mem);
    bl_dataset_free(&ds, &mem); /* twice is harmless */
    assert_int_equal(mem.cur_bytes, 0);
}

static void norm_unit_and_standard(void **state) {
    bl_mem mem = {0};
    bl_dataset ds, other;
    bl_error err = {0};
    make_seq(&ds, &mem, 100, 3);
    ds.x[5] = -300.0f;
    bl_norm nm;
    assert_int_equal(bl_norm_fit(&nm, &mem, &ds, BL_NORM_UNIT, &err), BL_OK);
    bl_norm_apply(&nm, &ds);
    float mx = 0;
    for (size_t i = 0; i < 300; i++)
        mx = fmaxf(mx, fabsf(ds.x[i]));
    assert_true(fabsf(mx - 1.0f) < 1e-6f);
    assert_true(fabsf(ds.x[5] + 1.0f) < 1e-6f);
    bl_norm_free(&nm, &mem);
    bl_dataset_free(&ds, &mem);

    /* standard: features with different offsets and spreads, plus a constant one */
    make_seq(&ds, &mem, 1000, 4);
    make_seq(&other, &mem, 10, 4);
    tu_fill_normal(ds.x, 4000, 5, 1.0f);
    for (size_t i = 0; i < 1000; i++) {
        ds.x[i * 4 + 0] = 100.0f + 3.0f * ds.x[i * 4 + 0];
        ds.x[i * 4 + 1] = -5.0f + 0.01f * ds.x[i * 4 + 1];
        ds.x[i * 4 + 3] = 42.0f;
    }
    assert_int_equal(bl_norm_fit(&nm, &mem, &ds, BL_NORM_STANDARD, &err), BL_OK);
    bl_norm_apply(&nm, &ds);
    for (int j = 0; j < 3; j++) {
        double s = 0, s2 = 0;
        for (size_t i = 0; i < 1000; i++)
            s += ds.x[i * 4 + j];
        double mean = s / 1000;
        for (size_t i = 0; i < 1000; i++)
            s2 += (ds.x[i * 4 + j] - mean) * (ds.x[i * 4 + j] - mean);
        assert_true(fabs(mean) < 1e-4);
        assert_true(fabs(sqrt(s2 / 1000) - 1.0) < 1e-3);
    }
    for (size_t i = 0; i < 1000; i++)
        assert_true(ds.x[i * 4 + 3] == 0.0f); /* no blow-up */
    /* the same transform applies to another split */
    float before = other.x[4 * 3 + 0];
    bl_norm_apply(&nm, &other);
    assert_true(fabsf(other.x[12] - (before - nm.mean[0]) * nm.scale[0]) < 1e-6f);
    bl_norm_free(&nm, &mem);

    /* none is a no-op; non-finite inputs are named */
    before = ds.x[7];
    assert_int_equal(bl_norm_fit(&nm, &mem, &ds, BL_NORM_NONE, &err), BL_OK);
    bl_norm_apply(&nm, &ds);
    assert_true(ds.x[7] == before);
    bl_norm_free(&nm, &mem);
    ds.x[4 * 9 + 2] = NAN;
    assert_int_equal(bl_norm_fit(&nm, &mem, &ds, BL_NORM_STANDARD, &err), BL_ERR_NUMERIC);
    assert_non_null(strstr(err.msg, "sample 9, feature 2"));
    bl_dataset_free(&ds, &mem);
    bl_dataset_free(&other, &mem);
    assert_int_equal(mem.cur_bytes, 0);

    bl_norm_kind k;
    assert_int_equal(bl_norm_parse(&k, "standard", &err), BL_OK);
    assert_int_equal(k, BL_NORM_STANDARD);
    assert_int_equal(bl_norm_parse(&k, "unit", &err), BL_OK);
    assert_int_equal(k, BL_NORM_UNIT);
    assert_int_equal(bl_norm_parse(&k, "none", &err), BL_OK);
    assert_int_equal(k, BL_NORM_NONE);
    assert_int_equal(bl_norm_parse(&k, "zscore", &err), BL_ERR_ARG);
    assert_non_null(strstr(err.msg, "'zscore'"));
}

static void split_sizes_and_disjoint(void **state) {
    bl_mem mem = {0};
    bl_dataset ds, tr, va, tr2, va2;
    bl_error err = {0};
    make_seq(&ds, &mem, 500, 3);
    assert_int_equal(bl_dataset_split(&ds, &tr, &va, 120, 9, &mem, &err), BL_OK);
    assert_null(ds.x);
    assert_int_equal(tr.n, 380);
    assert_int_equal(va.n, 120);
    assert_int_equal(tr.dim, 3);
    assert_int_equal(va.n_classes, 7);
    int seen[500] = {0};
    float prev = -1;
    for (size_t i = 0; i < tr.n; i++) {
        int id = (int)tr.x[i * 3];
        seen[id]++;
        assert_int_equal(tr.y[i], id % 7); /* labels travel with their rows */
        assert_true(tr.x[i * 3 + 2] == (float)id + 0.002f);
        assert_true(tr.x[i * 3] > prev); /* file order kept */
        prev = tr.x[i * 3];
    }
    for (size_t i = 0; i < va.n; i++)
        seen[(int)va.x[i * 3]]++;
    for (int i = 0; i < 500; i++)
        assert_int_equal(seen[i], 1);

    /* same seed, same split; another seed, another split */
    make_seq(&ds, &mem, 500, 3);
    assert_int_equal(bl_dataset_split(&ds, &tr2, &va2, 120, 9, &mem, &err), BL_OK);
    assert_memory_equal(va.x, va2.x, 120 * 3 * sizeof(float));
    bl_dataset_free(&tr2, &mem);
    bl_dataset_free(&va2, &mem);
    make_seq(&ds, &mem, 500, 3);
    assert_int_equal(bl_dataset_split(&ds, &tr2, &va2, 120, 10, &mem, &err), BL_OK);
    assert_true(memcmp(va.x, va2.x, 120 * 3 * sizeof(float)) != 0);
    bl_dataset_free(&tr2, &mem);
    bl_dataset_free(&va2, &mem);

    /* val_n = 0 keeps everything; val_n >= n is refused and ds left intact */
    make_seq(&ds, &mem, 50, 3);
    assert_int_equal(bl_dataset_split(&ds, &tr2, &va2, 0, 1, &mem, &err), BL_OK);
    assert_int_equal(tr2.n, 50);
    assert_int_equal(va2.n, 0);
    assert_int_equal(bl_dataset_split(&tr2, &tr2, &va, 50, 1, &mem, &err), BL_ERR_ARG);
    assert_non_null(strstr(err.msg, "validation size 50"));
    assert_int_equal(tr2.n, 50);
    bl_dataset_free(&tr2, &mem);
    bl_dataset_free(&tr, &mem);
    bl_dataset_free(&va, &mem);
    assert_int_equal(mem.cur_bytes, 0);
}

/* ---- loader -------------------------------------------------------------------- */
/* Everything a sequence of bl_loader_next calls returned, flattened for memcmp. */
typedef struct trace {
    float *v;
    size_t n, cap;
} trace;

static void trace_push(trace *t, float v) {
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 4096;
        t->v = realloc(t->v, t->cap * sizeof(float));
    }
    t->v[t->n++] = v;
}

static int next_traced(bl_loader *ld, int B, trace *t, size_t dim) {
    bl_batch b;
    int r = bl_loader_next(ld, B, &b);
    trace_push(t, (float)r);
    if (!r) return 0;
    trace_push(t, (float)b.B);
    for (int i = 0; i < b.B; i++) {
        for (size_t j = 0; j < dim; j++)
            trace_push(t, b.x[i * dim + j]);
        trace_push(t, (float)b.y[i]);
    }
    return r;
}

static void loader_each_sample_once(void **state) {
    bl_mem mem = {0};
    bl_dataset ds;
    bl_error err = {0};
    make_seq(&ds, &mem, 500, 2);
    for (int shuffle = 0; shuffle < 2; shuffle++) {
        bl_loader ld;
        assert_int_equal(bl_loader_init(&ld, &ds, 64, 0, shuffle, 7, 1, &mem, &err), BL_OK);
        int first_epoch[500];
        for (int e = 0; e < 3; e++) {
            int seen[500] = {0}, k = 0, batches = 0, moved = 0, same_as_e0 = 0;
            bl_batch b;
            while (bl_loader_next(&ld, 64, &b)) {
                batches++;
                for (int i = 0; i < b.B; i++, k++) {
                    int id = (int)b.x[i * 2];
                    assert_int_equal(b.y[i], id % 7);
                    seen[id]++;
                    moved += id != k;
                    if (e == 0) first_epoch[k] = id;
                    same_as_e0 += first_epoch[k] == id;
                }
            }
            for (int i = 0; i < 500; i++)
                assert_int_equal(seen[i], 1);
            assert_int_equal(batches, 8); /* 7 x 64 + 52 */
            assert_int_equal(bl_loader_batches_per_epoch(&ld, 64), 8);
            assert_int_equal(ld.epoch, e + 1);
            if (shuffle)
                assert_true(moved > 400);
            else
                assert_int_equal(moved, 0);
            if (shuffle && e > 0) assert_true(same_as_e0 < 50); /* epochs differ */
        }
        bl_loader_free(&ld, &mem);
    }
    bl_dataset_free(&ds, &mem);
    assert_int_equal(mem.cur_bytes, 0);
}

static void run_epochs(const bl_dataset *ds, uint64_t seed, int prefetch, trace *t) {
    bl_loader ld;
    bl_error err = {0};
    assert_int_equal(bl_loader_init(&ld, ds, 50, 0, 1, seed, prefetch, NULL, &err), BL_OK);
    for (int e = 0; e < 2; e++)
        while (next_traced(&ld, 50, t, ds->dim)) {
        }
    bl_loader_free(&ld, NULL);
}

static void loader_deterministic_per_seed(void **state) {
    bl_mem mem = {0};
    bl_dataset ds;
    make_seq(&ds, &mem, 300, 2);
    trace a = {0}, b = {0}, c = {0};
    run_epochs(&ds, 42, 0, &a);
    run_epochs(&ds, 42, 0, &b);
    run_epochs(&ds, 43, 0, &c);
    assert_int_equal(a.n, b.n);
    assert_memory_equal(a.v, b.v, a.n * sizeof(float));
    assert_int_equal(a.n, c.n);
    assert_true(memcmp(a.v, c.v, a.n * sizeof(float)) != 0);
    free(a.v), free(b.v), free(c.v);
    bl_dataset_free(&ds, &mem);
}

static void loader_drop_last_counts(void **state) {
    bl_mem mem = {0};
    bl_dataset ds;
    bl_error err = {0};
    make_seq(&ds, &mem, 500, 1);
    for (int drop = 0; drop < 2; drop++) {
        bl_loader ld;
        assert_int_equal(bl_loader_init(&ld, &ds, 64, drop, 1, 3, 0, &mem, &err), BL_OK);
        for (int e = 0; e < 2; e++) {
            int batches = 0, samples = 0, last = 0;
            bl_batch b;
            while (bl_loader_next(&ld, 64, &b))
                batches++, samples += b.B, last = b.B;
            assert_int_equal(batches, drop ? 7 : 8);
            assert_int_equal(samples, drop ? 448 : 500);
            assert_int_equal(last, drop ? 64 : 52);
            assert_int_equal(bl_loader_batches_per_epoch(&ld, 64), (size_t)batches);
            assert_int_equal(bl_steps_per_epoch(500, 64, drop), batches);
        }
        assert_int_equal(bl_loader_batches_per_epoch(&ld, 30), drop ? 16 : 17);
        assert_int_equal(bl_loader_batches_per_epoch(&ld, 3), drop ? 166 : 167);
        bl_loader_free(&ld, &mem);
    }
    bl_dataset_free(&ds, &mem);
    assert_int_equal(mem.cur_bytes, 0);
}

/* A schedule of batch sizes that changes mid-epoch, as adaptive batch size would. */
static int schedule_B(int call) {
    static const int sizes[] = {16, 16, 16, 40, 40, 7, 64, 64, 64, 1, 33, 33};
    return sizes[call % 12];
}

static void variable_run(const bl_dataset *ds, int prefetch, int drop_last, trace *t) {
    bl_loader ld;
    bl_error err = {0};
    assert_int_equal(bl_loader_init(&ld, ds, 64, drop_last, 1, 5, prefetch, NULL, &err), BL_OK);
    for (int call = 0; ld.epoch < 4; call++) {
        next_traced(&ld, schedule_B(call), t, ds->dim);
        if (call == 37) bl_loader_seek(&ld, 1, 123); /* a seek with a prefetch in flight */
    }
    bl_loader_free(&ld, NULL);
}

static void loader_variable_batch(void **state) {
    bl_mem mem = {0};
    bl_dataset ds;
    bl_error err = {0};
    make_seq(&ds, &mem, 500, 3);
    bl_loader ld;
    assert_int_equal(bl_loader_init(&ld, &ds, 64, 0, 1, 5, 1, &mem, &err), BL_OK);
    int seen[500] = {0}, total = 0, call = 0;
    bl_batch b;
    while (bl_loader_next(&ld, schedule_B(call), &b)) {
        int want = schedule_B(call++);
        assert_true(b.B == want || total + b.B == 500); /* only the last batch is short */
        for (int i = 0; i < b.B; i++)
            seen[(int)b.x[i * 3]]++;
        total += b.B;
    }
    assert_int_equal(total, 500);
    for (int i = 0; i < 500; i++)
        assert_int_equal(seen[i], 1);
    /* B outside [1, max_batch] is clamped, never overruns the buffers */
    assert_int_equal(bl_loader_next(&ld, 1000, &b), 1);
    assert_int_equal(b.B, 64);
    assert_int_equal(bl_loader_next(&ld, 0, &b), 1);
    assert_int_equal(b.B, 1);
    bl_loader_free(&ld, &mem);
    bl_dataset_free(&ds, &mem);
    assert_int_equal(mem.cur_bytes, 0);
}

static void loader_prefetch_matches_sync(void **state) {
    bl_mem mem = {0};
    bl_dataset ds;
    make_seq(&ds, &mem, 500, 5);
    for (int drop = 0; drop < 2; drop++) {
        trace off = {0}, on = {0};
        variable_run(&ds, 0, drop, &off);
        variable_run(&ds, 1, drop, &on);
        assert_true(off.n > 4 * 500 * 6);
        assert_int_equal(off.n, on.n);
        assert_memory_equal(off.v, on.v, off.n * sizeof(float));
        free(off.v), free(on.v);
    }
    bl_dataset_free(&ds, &mem);
}

static void loader_seek_reproduces(void **state) {
    bl_mem mem = {0};
    bl_dataset ds;
    bl_error err = {0};
    make_seq(&ds, &mem, 500, 2);
    for (int drop = 0; drop < 2; drop++) {
        /* Uninterrupted run, recording the state before every call. */
        enum { CALLS = 60 };
        long ep[CALLS];
        size_t pos[CALLS];
        trace full = {0};
        size_t mark[CALLS + 1];
        bl_loader ld;
        assert_int_equal(bl_loader_init(&ld, &ds, 64, drop, 1, 77, 1, &mem, &err), BL_OK);
        for (int c = 0; c < CALLS; c++) {
            ep[c] = ld.epoch, pos[c] = ld.pos, mark[c] = full.n;
            next_traced(&ld, schedule_B(c), &full, 2);
        }
        mark[CALLS] = full.n;
        bl_loader_free(&ld, &mem);

        /* Resume from several states in fresh loaders (prefetch on and off) and in a
         * loader that is somewhere else with a prefetch in flight. */
        const int starts[] = {0, 3, 8, 11, 12, 25, 40, 59};
        for (size_t s = 0; s < sizeof starts / sizeof starts[0]; s++) {
            int c0 = starts[s];
            for (int mode = 0; mode < 3; mode++) {
                bl_loader r;
                assert_int_equal(bl_loader_init(&r, &ds, 64, drop, 1, 77, mode != 0, &mem, &err),
                                 BL_OK);
                if (mode == 2) {
                    bl_batch b;
                    for (int k = 0; k < 5; k++)
                        bl_loader_next(&r, 20, &b);
                }
                bl_loader_seek(&r, ep[c0], pos[c0]);
                trace t = {0};
                for (int c = c0; c < CALLS; c++)
                    next_traced(&r, schedule_B(c), &t, 2);
                assert_int_equal(t.n, mark[CALLS] - mark[c0]);
                assert_memory_equal(t.v, full.v + mark[c0], t.n * sizeof(float));
                free(t.v);
                bl_loader_free(&r, &mem);
            }
        }
        free(full.v);
    }
    bl_dataset_free(&ds, &mem);
    assert_int_equal(mem.cur_bytes, 0);
}

static void loader_rejects_bad_batch(void **state) {
    bl_mem mem = {0};
    bl_dataset ds;
    bl_error err = {0};
    make_seq(&ds, &mem, 500, 2);
    bl_loader ld;
    assert_int_equal(bl_loader_init(&ld, &ds, 0, 0, 1, 1, 1, &mem, &err), BL_ERR_ARG);
    assert_string_equal(err.msg,
                        "batch size 0 is invalid: it must be between 1 and the dataset size (500)");
    assert_int_equal(bl_loader_init(&ld, &ds, 501, 0, 1, 1, 1, &mem, &err), BL_ERR_ARG);
    assert_non_null(strstr(err.msg, "batch size 501 is invalid"));
    assert_int_equal(bl_loader_init(&ld, &ds, -3, 0, 1, 1, 0, &mem, &err), BL_ERR_ARG);
    bl_loader_free(&ld, &mem); /* safe after a failed init */
    /* the whole dataset as one batch is fine */
    assert_int_equal(bl_loader_init(&ld, &ds, 500, 1, 1, 1, 1, &mem, &err), BL_OK);
    bl_batch b;
    assert_int_equal(bl_loader_next(&ld, 500, &b), 1);
    assert_int_equal(b.B, 500);
    assert_int_equal(bl_loader_next(&ld, 500, &b), 0);
    bl_loader_free(&ld, &mem);
    bl_dataset_free(&ds, &mem);
    assert_int_equal(mem.cur_bytes, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(check_labels_range),
        cmocka_unit_test(norm_unit_and_standard),
        cmocka_unit_test(split_sizes_and_disjoint),
        cmocka_unit_test(loader_each_sample_once),
        cmocka_unit_test(loader_deterministic_per_seed),
        cmocka_unit_test(loader_drop_last_counts),
        cmocka_unit_test(loader_variable_batch),
        cmocka_unit_test(loader_prefetch_matches_sync),
        cmocka_unit_test(loader_seek_reproduces),
        cmocka_unit_test(loader_rejects_bad_batch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
