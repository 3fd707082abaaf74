/* Batch-size finders: the memory finder never exceeds its budget and reaches
 * the true maximum (found independently here by real allocations under a
 * limit); micro-batch proposals; knee and goodput arithmetic. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include "batchlab/find.h"
#include "batchlab/model.h"

static const bl_shape IMG = {1, 28, 28};

/* Independent ground truth: does a model + optimizer + input buffers allocate under
 * `limit`? (Same parts as training; written separately from the finder.) */
static int fits(const char *spec, const bl_optim_config *opt, int batch, size_t limit) {
    bl_ctx ctx;
    bl_ctx_init(&ctx, 1);
    ctx.mem.limit_bytes = limit;
    bl_model *m = NULL;
    bl_optim o = {0};
    bl_error err = {0};
    int ok = bl_model_create(&m, spec, IMG, 10, &err) == BL_OK &&
             bl_model_alloc(m, &ctx, batch, &err) == BL_OK &&
             bl_optim_init(&o, opt, bl_model_num_params(m), ctx.be, &ctx.mem, &err) == BL_OK;
    void *in = ok ? bl_mem_alloc(&ctx.mem, 2 * (size_t)batch * (784 * 4 + 4), "in", &err) : NULL;
    ok = ok && in;
    bl_mem_free(&ctx.mem, in);
    bl_optim_free(&o, &ctx.mem);
    bl_model_free(m);
    bl_ctx_free(&ctx);
    return ok;
}

static int true_max(const char *spec, const bl_optim_config *opt, size_t limit) {
    int lo = 0, hi = 1;
    while (fits(spec, opt, hi, limit))
        lo = hi, hi *= 2;
    while (hi - lo > 1) {
        int mid = (lo + hi) / 2;
        if (fits(spec, opt, mid, limit))
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

static void check_budget(const char *spec, bl_opt_kind kind, size_t budget, double margin,
                         bl_find_mode mode) {
    bl_find_memory_config c = {.spec = spec,
                               .input = IMG,
                               .n_classes = 10,
                               .budget_bytes = budget,
                               .margin = margin,
                               .mode = mode,
                               .threads = 1};
    bl_optim_config_default(&c.opt, kind);
    if (kind == BL_OPT_SGD) c.opt.momentum = 0.9f;
    bl_find_memory_result r;
    bl_error err = {0};
    bl_status st = bl_find_memory(&c, &r, &err);
    if (st) fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(st, BL_OK);
    size_t limit = (size_t)((double)budget * (1 - margin));
    assert_int_equal(r.limit_bytes, limit);
    /* Never exceeds the budget... */
    size_t bytes;
    bl_ctx probe; /* the backend the trials ran on: BATCHLAB_DEVICE's */
    bl_ctx_init(&probe, 1);
    assert_int_equal(bl_train_memory_bytes(spec, IMG, 10, &c.opt, r.found, probe.be, &bytes, &err),
                     BL_OK);
    assert_true(bytes <= limit);
    assert_true(fits(spec, &c.opt, r.found, limit));
    /* ...and reaches the true maximum (binsearch: all of it; power: the power of two). */
    int truth = true_max(spec, &c.opt, limit);
    fprintf(stderr, "  %s budget %.0f MB: found %d, true maximum %d (%s)\n", spec, budget / 1e6,
            r.found, truth, mode == BL_FIND_POWER ? "power" : "binsearch");
    if (mode == BL_FIND_BINSEARCH) {
        assert_true(r.found >= 0.9 * truth);
        assert_int_equal(r.found, truth);
    } else {
        assert_true(r.found <= truth && 2 * r.found > truth);
    }
    /* The prediction agreed with the trials: at most two trials were needed. */
    assert_true(r.n_trials <= 2);
    bl_ctx_free(&probe);
}

static void memory_finder_meets_budget(void **state) {
    check_budget("mlp", BL_OPT_SGD, 100000000, 0.1, BL_FIND_BINSEARCH);
    check_budget("mlp", BL_OPT_ADAM, 64000000, 0.0, BL_FIND_POWER);
    check_budget("cnn", BL_OPT_SGD, 300000000, 0.1, BL_FIND_BINSEARCH);
    check_budget("conv5x5:8:s2,relu,maxpool2,flatten,dense:10", BL_OPT_ADAMW, 20000000, 0.05,
                 BL_FIND_BINSEARCH);
}

static void memory_finder_cap_and_errors(void **state) {
    bl_find_memory_config c = {.spec = "mlp",
                               .input = IMG,
                               .n_classes = 10,
                               .budget_bytes = 100000000,
                               .margin = 0.1,
                               .max_batch = 100,
                               .mode = BL_FIND_BINSEARCH,
                               .threads = 1};
    bl_optim_config_default(&c.opt, BL_OPT_SGD);
    bl_find_memory_result r;
    bl_error err = {0};
    assert_int_equal(bl_find_memory(&c, &r, &err), BL_OK);
    assert_int_equal(r.found, 100);
    assert_true(r.capped);
    c.budget_bytes = 1000000; /* 1 MB: not even the parameters */
    assert_int_equal(bl_find_memory(&c, &r, &err), BL_ERR_NOMEM);
    assert_non_null(strstr(err.msg, "batch 1"));
    c.margin = 1.5;
    assert_int_equal(bl_find_memory(&c, &r, &err), BL_ERR_ARG);
}

static void micro_batch_proposal(void **state) {
    assert_int_equal(bl_find_micro_batch(256, 300), 0);
    assert_int_equal(bl_find_micro_batch(256, 100), 64);
    assert_int_equal(bl_find_micro_batch(1000, 300), 250);
    assert_int_equal(bl_find_micro_batch(97, 50), 1);
}

static void curve_of(bl_throughput_curve *c, const double *sps, int n) {
    c->n = n;
    for (int i = 0; i < n; i++)
        c->p[i] = (bl_throughput_point){1 << i, sps[i], (1 << i) / sps[i], 0};
}

/* The knee from the whole curve: a dip, a plateau, a fall at large batches. */
static void knee_of_hard_curves(void **state) {
    bl_throughput_curve c;
    /* The AVX2 curve: batch 2 slower than 1, then 29x to batch 256. */
    double dip[] = {467, 337, 900, 2000, 4500, 8000, 11000, 12900, 13623};
    curve_of(&c, dip, 9);
    assert_int_equal(bl_throughput_knee(&c, 0.10), 7); /* 128: 12900 >= 12260.7 */
    /* A plateau from 8 on, with noise below 10%: the knee is where it starts. */
    double plateau[] = {100, 300, 700, 1000, 1030, 980, 1040, 1010};
    curve_of(&c, plateau, 8);
    assert_int_equal(bl_throughput_knee(&c, 0.10), 3);
    /* Falling at large batches (caches overflow): the best is in the middle. */
    double fall[] = {200, 500, 1200, 2000, 2100, 1500, 900};
    curve_of(&c, fall, 7);
    assert_int_equal(bl_throughput_knee(&c, 0.10), 3); /* 2000 >= 1890 */
    assert_int_equal(bl_throughput_knee(&c, 0.01), 4);
    /* Flat from the start: the smallest batch. */
    double flat[] = {1000, 990, 1005};
    curve_of(&c, flat, 3);
    assert_int_equal(bl_throughput_knee(&c, 0.10), 0);
}

static void knee_and_goodput(void **state) {
    bl_throughput_curve c = {.n = 5};
    int b[] = {16, 32, 64, 128, 256};
    double sps[] = {1000, 1800, 2600, 2700, 2750};
    for (int i = 0; i < 5; i++)
        c.p[i] = (bl_throughput_point){b[i], sps[i], b[i] / sps[i], 0};
    /* Best 2750: 64 (2600) is within 10%, 32 (1800) is not. */
    assert_int_equal(bl_throughput_knee(&c, 0.10), 2);
    assert_int_equal(bl_throughput_knee(&c, 0.03), 3); /* 2700 >= 2667.5 */
    assert_int_equal(bl_throughput_knee(&c, 0.01), 4); /* only the best itself */
    /* Efficiency is 1 at the base batch and (B+M0)/(B+M) elsewhere. */
    assert_true(fabs(bl_efficiency(100, 16, 16) - 1) < 1e-12);
    assert_true(fabs(bl_efficiency(100, 16, 84) - 116.0 / 184) < 1e-12);
    /* Small noise scale: small batches win; large noise scale: large ones. */
    double g;
    assert_int_equal(bl_goodput_best(&c, 1, 16, &g), 0); /* 32: 1800 x 17/33 = 927 < 1000 */
    assert_true(fabs(g - 1000) < 1e-9);
    assert_int_equal(bl_goodput_best(&c, 100000, 16, &g), 4);
    int mid = bl_goodput_best(&c, 150, 16, NULL);
    assert_true(mid >= 1 && mid <= 3);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(memory_finder_meets_budget),
        cmocka_unit_test(memory_finder_cap_and_errors),
        cmocka_unit_test(micro_batch_proposal),
        cmocka_unit_test(knee_and_goodput),
        cmocka_unit_test(knee_of_hard_curves),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
