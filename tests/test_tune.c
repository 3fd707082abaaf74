/* ASHA tune on the committed sample: promotion counts, examples as the
 * resource, interruption and resume giving the same result as one run. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "batchlab/tune.h"
#include "test_util.h"

static bl_ctx g_ctx;
static bl_dataset g_train, g_val, g_test;

static int setup(void **state) {
    bl_error err = {0};
    bl_dataset all;
    bl_ctx_init(&g_ctx, 1);
    if (bl_dataset_load_fashion_mnist(&all, &g_test, &g_ctx.mem, BL_TEST_DATA_DIR "/fmnist-sample",
                                      &err))
        return -1;
    if (bl_dataset_split(&all, &g_train, &g_val, 100, 3, &g_ctx.mem, &err)) return -1;
    bl_norm nm;
    if (bl_norm_fit(&nm, &g_ctx.mem, &g_train, BL_NORM_UNIT, &err)) return -1;
    bl_norm_apply(&nm, &g_train);
    bl_norm_apply(&nm, &g_val);
    bl_norm_apply(&nm, &g_test);
    bl_norm_free(&nm, &g_ctx.mem);
    return 0;
}

static int teardown(void **state) {
    bl_dataset_free(&g_train, &g_ctx.mem);
    bl_dataset_free(&g_val, &g_ctx.mem);
    bl_dataset_free(&g_test, &g_ctx.mem);
    bl_ctx_free(&g_ctx);
    return 0;
}

typedef struct counter {
    int rungs, stop_after;
} counter;
static void count_rung(void *arg, const bl_tune_trial *t, int rung, long total) {
    ((counter *)arg)->rungs++;
}
static int stop_when(void *arg) {
    counter *c = arg;
    return c->stop_after && c->rungs >= c->stop_after;
}

static bl_tune_config config(const char *dir, counter *cnt) {
    bl_tune_config c = {.batches = {8, 16, 32},
                        .n_batches = 3,
                        .lrs = {0.01f, 0.05f, 0.2f},
                        .n_lrs = 3,
                        .min_examples = 150,
                        .max_examples = 1350,
                        .eta = 3,
                        .out_dir = dir,
                        .on_rung = count_rung,
                        .rung_arg = cnt,
                        .should_stop = stop_when,
                        .stop_arg = cnt};
    bl_train_config_default(&c.train);
    c.train.spec = "flatten,dense:32,relu,dense:10";
    c.train.base_batch = 16;
    c.train.lr_scale = BL_LR_SCALE_LINEAR;
    c.train.seed = 5;
    return c;
}

static void asha_promotes_top_third(void **state) {
    const char *dir = tu_tmpdir();
    counter cnt = {0};
    bl_tune_config c = config(dir, &cnt);
    bl_tune_result *r = calloc(1, sizeof *r);
    bl_error err = {0};
    assert_int_equal(bl_tune_run(&g_ctx, &c, &g_train, &g_val, &g_test, r, &err), BL_OK);
    assert_int_equal(r->n_trials, 9);
    assert_int_equal(r->n_rungs, 3); /* 150, 450, 1350 */
    assert_int_equal(r->rung_examples[2], 1350);
    int at[3] = {0};
    long sum = 0;
    for (int i = 0; i < 9; i++) {
        const bl_tune_trial *t = &r->trials[i];
        for (int k = 0; k < t->rungs_done; k++)
            at[k]++;
        /* examples are the resource: each stopped within one batch past its rung */
        long goal = r->rung_examples[t->rungs_done - 1];
        assert_true(t->examples >= goal && t->examples < goal + t->batch);
        sum += t->examples;
    }
    assert_int_equal(at[0], 9);
    assert_int_equal(at[1], 3);
    assert_int_equal(at[2], 1);
    assert_int_equal(r->total_examples, sum);
    assert_int_equal(cnt.rungs, 13);
    /* The best is the one that reached the top rung, and beats chance. */
    const bl_tune_trial *b = &r->trials[r->best];
    assert_int_equal(b->rungs_done, 3);
    assert_true(b->acc[2] > 0.3 && isfinite(r->best_test_acc));
    /* Everything of rung 1 ranked in the top third of rung 0. */
    for (int i = 0; i < 9; i++) {
        if (r->trials[i].rungs_done < 2) continue;
        int better = 0;
        for (int j = 0; j < 9; j++)
            better += r->trials[j].acc[0] > r->trials[i].acc[0];
        assert_true(better < 3 || r->trials[i].acc[0] == 0);
    }
    char p[512];
    snprintf(p, sizeof p, "%s/results.csv", dir);
    assert_true(tu_file_exists(p));
    /* Running again does no work and gives the same answer. */
    counter cnt2 = {0};
    bl_tune_config c2 = config(dir, &cnt2);
    bl_tune_result *r2 = calloc(1, sizeof *r2);
    assert_int_equal(bl_tune_run(&g_ctx, &c2, &g_train, &g_val, &g_test, r2, &err), BL_OK);
    assert_int_equal(cnt2.rungs, 0);
    assert_int_equal(r2->best, r->best);
    assert_int_equal(r2->total_examples, r->total_examples);
    /* Another search in the same folder is refused. */
    c2.eta = 2;
    assert_int_equal(bl_tune_run(&g_ctx, &c2, &g_train, &g_val, &g_test, r2, &err), BL_ERR_ARG);
    assert_non_null(strstr(err.msg, "eta"));
    free(r);
    free(r2);
    tu_rmtree(dir);
}

static void interrupted_then_resumed_equals_straight(void **state) {
    const char *d1 = tu_tmpdir(), *d2 = tu_tmpdir();
    bl_error err = {0};
    counter a = {0}, b = {.stop_after = 5};
    bl_tune_config ca = config(d1, &a), cb = config(d2, &b);
    bl_tune_result *ra = calloc(1, sizeof *ra), *rb = calloc(1, sizeof *rb);
    assert_int_equal(bl_tune_run(&g_ctx, &ca, &g_train, &g_val, &g_test, ra, &err), BL_OK);
    assert_int_equal(bl_tune_run(&g_ctx, &cb, &g_train, &g_val, &g_test, rb, &err),
                     BL_ERR_INTERRUPTED);
    b.stop_after = 0;
    assert_int_equal(bl_tune_run(&g_ctx, &cb, &g_train, &g_val, &g_test, rb, &err), BL_OK);
    assert_int_equal(a.rungs, b.rungs);
    for (int i = 0; i < ra->n_trials; i++) {
        assert_string_equal(ra->trials[i].id, rb->trials[i].id);
        assert_int_equal(ra->trials[i].rungs_done, rb->trials[i].rungs_done);
        for (int k = 0; k < ra->trials[i].rungs_done; k++)
            assert_true(ra->trials[i].acc[k] == rb->trials[i].acc[k]);
    }
    assert_int_equal(ra->best, rb->best);
    free(ra);
    free(rb);
    tu_rmtree(d1);
    tu_rmtree(d2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(asha_promotes_top_third),
        cmocka_unit_test(interrupted_then_resumed_equals_straight),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
