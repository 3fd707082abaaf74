/* Trainer behaviour: resume is bit-identical, accumulation equals one big
 * batch, numeric failure leaves weights and checkpoints intact. Runs on the
 * committed Fashion-MNIST sample. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "batchlab/io.h"
#include "batchlab/train.h"
#include "test_util.h"

static bl_ctx g_ctx;
static bl_dataset g_train, g_test;

static int setup(void **state) {
    bl_error err = {0};
    bl_ctx_init(&g_ctx, 1);
    if (bl_dataset_load_fashion_mnist(&g_train, &g_test, &g_ctx.mem,
                                      BL_TEST_DATA_DIR "/fmnist-sample", &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    bl_norm nm;
    if (bl_norm_fit(&nm, &g_ctx.mem, &g_train, BL_NORM_UNIT, &err)) return -1;
    bl_norm_apply(&nm, &g_train);
    bl_norm_apply(&nm, &g_test);
    bl_norm_free(&nm, &g_ctx.mem);
    return 0;
}

static int teardown(void **state) {
    bl_dataset_free(&g_train, &g_ctx.mem);
    bl_dataset_free(&g_test, &g_ctx.mem);
    return 0;
}

static bl_trainer *make_loss(const char *spec, int batch, int micro, bl_opt_kind kind, float lr,
                             bl_loss_kind loss) {
    bl_train_config c;
    bl_train_config_default(&c);
    c.spec = spec;
    c.batch = batch;
    c.micro_batch = micro;
    c.loss = loss;
    bl_optim_config_default(&c.opt, kind);
    if (kind == BL_OPT_SGD) c.opt.momentum = 0.9f;
    c.lr = lr;
    c.seed = 7;
    c.sched = BL_SCHED_COSINE;
    c.warmup_steps = 3;
    c.total_steps = 40;
    bl_error err = {0};
    bl_trainer *t = NULL;
    bl_status st = bl_trainer_create(&t, &g_ctx, &c, &g_train, &err);
    if (st) fprintf(stderr, "create: %s\n", err.msg);
    assert_int_equal(st, BL_OK);
    return t;
}

static bl_trainer *make(const char *spec, int batch, int micro, bl_opt_kind kind, float lr) {
    return make_loss(spec, batch, micro, kind, lr, BL_LOSS_XENT);
}

static void run_steps(bl_trainer *t, int n) {
    bl_error err = {0};
    bl_step_info si;
    for (int i = 0; i < n; i++) {
        bl_status st = bl_trainer_step(t, &si, &err);
        if (st) fprintf(stderr, "step: %s\n", err.msg);
        assert_int_equal(st, BL_OK);
    }
}

/* Spec exercising dropout (RNG state), batch norm (buffers) and Adam (state). */
static const char *RESUME_SPEC =
    "conv3x3:4,bn,relu,maxpool2,flatten,dropout:0.2,dense:32,relu,dense:10";

static void resume_is_bit_identical(void **state) {
    const char *dir = tu_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/ck.safetensors", dir);
    bl_error err = {0};
    /* 600 training samples / batch 32 = 19 steps per epoch, so 25 steps cross an epoch. */
    bl_trainer *a = make(RESUME_SPEC, 32, 0, BL_OPT_ADAM, 0.003f);
    run_steps(a, 25);
    bl_trainer *b = make(RESUME_SPEC, 32, 0, BL_OPT_ADAM, 0.003f);
    run_steps(b, 11);
    assert_int_equal(bl_trainer_save(b, path, NULL, &err), BL_OK);
    bl_trainer_free(b);
    bl_trainer *c = make(RESUME_SPEC, 32, 0, BL_OPT_ADAM, 0.003f);
    assert_int_equal(bl_trainer_resume(c, path, &err), BL_OK);
    assert_int_equal(bl_trainer_steps_done(c), 11);
    run_steps(c, 14);
    bl_model *ma = bl_trainer_model(a), *mc = bl_trainer_model(c);
    size_t np = bl_model_num_params(ma);
    assert_memory_equal(bl_model_params(ma), bl_model_params(mc), np * sizeof(float));
    assert_memory_equal(bl_model_buffers(ma), bl_model_buffers(mc),
                        bl_model_num_buffers(ma) * sizeof(float));
    /* The comparison is live: a fresh model differs. */
    bl_trainer *d = make(RESUME_SPEC, 32, 0, BL_OPT_ADAM, 0.003f);
    run_steps(d, 24);
    assert_true(
        memcmp(bl_model_params(ma), bl_model_params(bl_trainer_model(d)), np * sizeof(float)) != 0);
    bl_trainer_free(a);
    bl_trainer_free(c);
    bl_trainer_free(d);
    tu_rmtree(dir);
}

static void resume_rejects_other_model(void **state) {
    const char *dir = tu_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/ck.safetensors", dir);
    bl_error err = {0};
    bl_trainer *a = make("flatten,dense:16,relu,dense:10", 32, 0, BL_OPT_SGD, 0.05f);
    run_steps(a, 2);
    assert_int_equal(bl_trainer_save(a, path, NULL, &err), BL_OK);
    bl_trainer *b = make("flatten,dense:17,relu,dense:10", 32, 0, BL_OPT_SGD, 0.05f);
    assert_int_equal(bl_trainer_resume(b, path, &err), BL_ERR_ARG);
    assert_non_null(strstr(err.msg, "dense:17"));
    bl_trainer *c = make("flatten,dense:16,relu,dense:10", 32, 0, BL_OPT_ADAM, 0.05f);
    assert_int_equal(bl_trainer_resume(c, path, &err), BL_ERR_ARG);
    assert_non_null(strstr(err.msg, "optimizer"));
    bl_trainer_free(a);
    bl_trainer_free(b);
    bl_trainer_free(c);
    tu_rmtree(dir);
}

/* Gradient accumulation (micro-batches) must equal one step over the whole batch
 * for every layer type except batch norm. One dropout layer: its mask is drawn in
 * sample order, so the stream is the same however the batch is split. */
static const char *ACCUM_SPEC =
    "conv3x3:4,relu,avgpool2,conv3x3:6:s2:p1,tanh,maxpool2,flatten,dropout:0.3,dense:16,gelu,"
    "dense:16,sigmoid,dense:16,lrelu:0.1,dense:10";

static double accum_max_diff(const char *spec, bl_loss_kind loss, int steps) {
    bl_trainer *a = make_loss(spec, 48, 0, BL_OPT_SGD, 0.1f, loss);
    bl_trainer *b = make_loss(spec, 48, 12, BL_OPT_SGD, 0.1f, loss);
    run_steps(a, steps);
    run_steps(b, steps);
    bl_model *ma = bl_trainer_model(a), *mb = bl_trainer_model(b);
    size_t np = bl_model_num_params(ma);
    double worst = tu_max_rel_err(bl_model_params(mb), bl_model_params(ma), np, 1e-5, 1e-4);
    double gw = tu_max_rel_err(bl_model_grads(mb), bl_model_grads(ma), np, 1e-6, 1e-3);
    bl_trainer_free(a);
    bl_trainer_free(b);
    fprintf(stderr, "  accumulation vs big batch (%s): params %.3g, grads %.3g of tolerance\n",
            spec, worst, gw);
    return worst > gw ? worst : gw;
}

static void accumulation_equals_big_batch(void **state) {
    assert_true(accum_max_diff(ACCUM_SPEC, BL_LOSS_XENT, 3) <= 1.0);
    assert_true(accum_max_diff("flatten,dense:32,relu,dense:10", BL_LOSS_MSE, 3) <= 1.0);
}

static void accumulation_differs_with_batchnorm(void **state) {
    /* Batch norm normalises with micro-batch statistics, so the update differs:
     * this is documented behaviour, and the test proves the comparison can fail. */
    assert_true(accum_max_diff("flatten,dense:32,bn,relu,dense:10", BL_LOSS_XENT, 1) > 1.0);
}

static void nan_loss_stops_and_keeps_weights(void **state) {
    const char *dir = tu_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/good.safetensors", dir);
    bl_error err = {0};
    bl_trainer *t = make("flatten,dense:32,relu,dense:10", 32, 0, BL_OPT_SGD, 0.05f);
    run_steps(t, 2);
    assert_int_equal(bl_trainer_save(t, path, NULL, &err), BL_OK);
    bl_model *m = bl_trainer_model(t);
    size_t np = bl_model_num_params(m);
    float *before = malloc(np * sizeof(float));
    memcpy(before, bl_model_params(m), np * sizeof(float));
    /* Poison one weight: the next forward gives a NaN loss. */
    bl_model_params(m)[3] = NAN;
    bl_step_info si;
    assert_int_equal(bl_trainer_step(t, &si, &err), BL_ERR_NUMERIC);
    assert_non_null(strstr(err.msg, "step 3"));
    assert_non_null(strstr(err.msg, "--lr"));
    /* The weights were not updated (apart from the poisoned one). */
    bl_model_params(m)[3] = before[3];
    assert_memory_equal(before, bl_model_params(m), np * sizeof(float));
    /* A checkpoint holding NaN is refused and the good file stays. */
    bl_model_params(m)[3] = NAN;
    assert_int_equal(bl_trainer_save(t, path, NULL, &err), BL_ERR_NUMERIC);
    bl_safetensors st;
    assert_int_equal(bl_safetensors_read(&st, path, &err), BL_OK);
    const bl_tensor *w = bl_safetensors_find(&st, "1.weight");
    assert_non_null(w);
    assert_memory_equal(w->data, before, w->nbytes);
    bl_safetensors_free(&st);
    free(before);
    bl_trainer_free(t);
    tu_rmtree(dir);
}

static void training_learns(void **state) {
    /* 5 epochs of the small MLP must beat chance (10%) by far on held-out data. */
    bl_error err = {0};
    bl_trainer *t = make("flatten,dense:64,relu,dense:10", 32, 0, BL_OPT_ADAM, 0.003f);
    run_steps(t, 19 * 5);
    double loss, acc;
    assert_int_equal(bl_trainer_evaluate(t, &g_test, &loss, &acc, &err), BL_OK);
    assert_true(acc > 0.6);
    assert_true(loss < 1.2);
    bl_trainer_free(t);
}

static void bad_batch_sizes_are_rejected(void **state) {
    bl_train_config c;
    bl_train_config_default(&c);
    bl_error err = {0};
    bl_trainer *t = NULL;
    c.batch = 0;
    assert_int_equal(bl_trainer_create(&t, &g_ctx, &c, &g_train, &err), BL_ERR_ARG);
    assert_non_null(strstr(err.msg, "batch size 0"));
    c.batch = 601;
    assert_int_equal(bl_trainer_create(&t, &g_ctx, &c, &g_train, &err), BL_ERR_ARG);
    assert_non_null(strstr(err.msg, "600"));
    c.batch = 32;
    c.micro_batch = 5;
    assert_int_equal(bl_trainer_create(&t, &g_ctx, &c, &g_train, &err), BL_ERR_ARG);
    assert_non_null(strstr(err.msg, "divide"));
    assert_null(t);
}

static void batch_can_change_between_updates(void **state) {
    bl_train_config c;
    bl_train_config_default(&c);
    c.spec = "flatten,dense:16,relu,dense:10";
    c.batch = 32;
    c.reserve_batch = 64;
    c.lr_scale = BL_LR_SCALE_LINEAR;
    bl_error err = {0};
    bl_trainer *t = NULL;
    assert_int_equal(bl_trainer_create(&t, &g_ctx, &c, &g_train, &err), BL_OK);
    run_steps(t, 3);
    float lr32 = bl_trainer_current_lr(t);
    assert_int_equal(bl_trainer_set_batch(t, 128, 64, 0, &err), BL_OK);
    /* Linear scaling follows the new batch: 4x. */
    assert_true(fabsf(bl_trainer_current_lr(t) - 4 * lr32) < 1e-6f);
    bl_step_info si;
    assert_int_equal(bl_trainer_step(t, &si, &err), BL_OK);
    assert_int_equal(si.batch, 128);
    assert_int_equal(si.samples_seen, 3 * 32 + 128);
    /* An explicit factor replaces the rule (AdaScale-style gain). */
    assert_int_equal(bl_trainer_set_batch(t, 64, 0, 1.5f, &err), BL_OK);
    assert_true(fabsf(bl_trainer_current_lr(t) - 1.5f * c.lr) < 1e-6f);
    /* Beyond the reserved activations, or not dividing: refused, nothing changes. */
    assert_int_equal(bl_trainer_set_batch(t, 256, 128, 0, &err), BL_ERR_ARG);
    assert_non_null(strstr(err.msg, "reserved 64"));
    assert_int_equal(bl_trainer_set_batch(t, 96, 64, 0, &err), BL_ERR_ARG);
    assert_int_equal(bl_trainer_step(t, &si, &err), BL_OK);
    assert_int_equal(si.batch, 64);
    bl_trainer_free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(resume_is_bit_identical),
        cmocka_unit_test(resume_rejects_other_model),
        cmocka_unit_test(accumulation_equals_big_batch),
        cmocka_unit_test(accumulation_differs_with_batchnorm),
        cmocka_unit_test(nan_loss_stops_and_keeps_weights),
        cmocka_unit_test(training_learns),
        cmocka_unit_test(bad_batch_sizes_are_rejected),
        cmocka_unit_test(batch_can_change_between_updates),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
