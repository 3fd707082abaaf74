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
#include "train/trainer_internal.h"

static bl_ctx g_ctx;
static bl_dataset g_train, g_test;

static int setup(void **state) {
    return tu_load_sample(&g_ctx, &g_train, &g_test);
}

static int teardown(void **state) {
    return tu_free_sample(&g_ctx, &g_train, &g_test);
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

/* Spec exercising dropout (keyed by step), batch norm (buffers) and Adam (state). */
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
    assert_true(tu_arena_equal(ma, mc, BL_ARENA_PARAMS));
    assert_true(tu_arena_equal(ma, mc, BL_ARENA_BUFFERS));
    /* The comparison is live: a fresh model differs. */
    bl_trainer *d = make(RESUME_SPEC, 32, 0, BL_OPT_ADAM, 0.003f);
    run_steps(d, 24);
    assert_false(tu_arena_equal(ma, bl_trainer_model(d), BL_ARENA_PARAMS));
    bl_trainer_free(a);
    bl_trainer_free(c);
    bl_trainer_free(d);
    tu_rmtree(dir);
}

/* Checkpoints written before dropout masks were counter-based hold the generator's
 * state as "rng.dropout". They still load (the tensor is ignored) and, since the masks
 * now follow from the step, resume exactly as a new checkpoint does. */
static void checkpoint_with_old_dropout_state_resumes(void **state) {
    const char *dir = tu_tmpdir();
    char path[512], old[512];
    snprintf(path, sizeof path, "%s/ck.safetensors", dir);
    snprintf(old, sizeof old, "%s/old.safetensors", dir);
    bl_error err = {0};
    bl_trainer *a = make(RESUME_SPEC, 32, 0, BL_OPT_ADAM, 0.003f);
    run_steps(a, 6);
    assert_int_equal(bl_trainer_save(a, path, NULL, &err), BL_OK);
    bl_safetensors st;
    assert_int_equal(bl_safetensors_read(&st, path, &err), BL_OK);
    assert_null(bl_safetensors_find(&st, "rng.dropout"));
    bl_tensor *ts = calloc((size_t)st.n + 1, sizeof *ts);
    assert_non_null(ts);
    memcpy(ts, st.tensors, (size_t)st.n * sizeof *ts);
    static const uint8_t junk[32] = {1, 2, 3, 4, 5, 6, 7, 8};
    bl_tensor *r = &ts[st.n];
    snprintf(r->name, sizeof r->name, "rng.dropout");
    r->dtype = BL_DT_U8, r->ndim = 1, r->shape[0] = 32, r->data = junk, r->nbytes = 32;
    assert_int_equal(bl_safetensors_write(old, ts, st.n + 1, st.meta, st.n_meta, &err), BL_OK);
    free(ts);
    bl_safetensors_free(&st);
    bl_trainer *b = make(RESUME_SPEC, 32, 0, BL_OPT_ADAM, 0.003f);
    assert_int_equal(bl_trainer_resume(b, old, &err), BL_OK);
    run_steps(a, 5);
    run_steps(b, 5);
    assert_true(tu_arena_equal(bl_trainer_model(a), bl_trainer_model(b), BL_ARENA_PARAMS));
    bl_trainer_free(a);
    bl_trainer_free(b);
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
 * for every layer type except batch norm. Dropout masks are keyed by the sample's
 * position in the update's batch, so they are the same however the batch is split,
 * for any number of dropout layers. */
static const char *ACCUM_SPEC =
    "conv3x3:4,relu,avgpool2,conv3x3:6:s2:p1,tanh,maxpool2,flatten,dropout:0.3,dense:16,gelu,"
    "dense:16,sigmoid,dropout:0.2,dense:16,lrelu:0.1,dense:10";

static double accum_max_diff(const char *spec, bl_loss_kind loss, int steps) {
    bl_trainer *a = make_loss(spec, 48, 0, BL_OPT_SGD, 0.1f, loss);
    bl_trainer *b = make_loss(spec, 48, 12, BL_OPT_SGD, 0.1f, loss);
    run_steps(a, steps);
    run_steps(b, steps);
    bl_model *ma = bl_trainer_model(a), *mb = bl_trainer_model(b);
    size_t np = bl_model_num_params(ma);
    float *pa = tu_arena(ma, BL_ARENA_PARAMS), *pb = tu_arena(mb, BL_ARENA_PARAMS);
    float *ga = tu_arena(ma, BL_ARENA_GRADS), *gb = tu_arena(mb, BL_ARENA_GRADS);
    double worst = tu_max_rel_err(pb, pa, np, 1e-5, 1e-4);
    double gw = tu_max_rel_err(gb, ga, np, 1e-6, 1e-3);
    free(pa), free(pb), free(ga), free(gb);
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
    float *before = tu_arena(m, BL_ARENA_PARAMS);
    /* Poison one weight: the next forward gives a NaN loss. */
    tu_arena_set1(m, BL_ARENA_PARAMS, 3, NAN);
    bl_step_info si;
    assert_int_equal(bl_trainer_step(t, &si, &err), BL_ERR_NUMERIC);
    assert_non_null(strstr(err.msg, "step 3"));
    assert_non_null(strstr(err.msg, "--lr"));
    /* The weights were not updated (apart from the poisoned one). */
    tu_arena_set1(m, BL_ARENA_PARAMS, 3, before[3]);
    assert_true(tu_arena_is(m, BL_ARENA_PARAMS, before));
    /* A checkpoint holding NaN is refused and the good file stays. */
    tu_arena_set1(m, BL_ARENA_PARAMS, 3, NAN);
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

static bl_trainer *make_sched(const char *spec, int batch, int reserve, long total) {
    bl_train_config c;
    bl_train_config_default(&c);
    c.spec = spec;
    c.batch = batch;
    c.reserve_batch = reserve;
    c.lr = 0.05f;
    c.seed = 7;
    c.sched = BL_SCHED_COSINE;
    c.warmup_steps = 3;
    c.total_steps = total;
    c.min_lr = 0.001f;
    bl_error err = {0};
    bl_trainer *t = NULL;
    assert_int_equal(bl_trainer_create(&t, &g_ctx, &c, &g_train, &err), BL_OK);
    return t;
}

static void assert_same_params(bl_trainer *a, bl_trainer *b) {
    bl_model *ma = bl_trainer_model(a), *mb = bl_trainer_model(b);
    assert_true(tu_arena_equal(ma, mb, BL_ARENA_PARAMS));
    assert_true(tu_arena_equal(ma, mb, BL_ARENA_BUFFERS));
}

static void resume_keeps_the_schedule(void **state) {
    /* A cosine over 40 updates saved at 10, resumed by a trainer created for 20 (another
     * --steps): the learning-rate path is the checkpoint's, and the run continues bit for
     * bit; asking explicitly for another schedule setting is refused. */
    const char *dir = tu_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/ck.safetensors", dir);
    bl_error err = {0};
    const char *spec = "flatten,dense:16,relu,dense:10";
    bl_trainer *a = make_sched(spec, 32, 0, 40);
    run_steps(a, 10);
    assert_int_equal(bl_trainer_save(a, path, NULL, &err), BL_OK);
    bl_trainer *b = make_sched(spec, 32, 0, 20);
    bl_train_config asked = *bl_trainer_config(b);
    assert_int_equal(bl_trainer_resume(b, path, &err), BL_OK);
    assert_int_equal(bl_trainer_config(b)->total_steps, 40);
    assert_true(bl_trainer_current_lr(b) == bl_trainer_current_lr(a));
    char note[256];
    assert_int_equal(bl_trainer_check_schedule(b, &asked, 0, note, sizeof note, &err), BL_OK);
    assert_non_null(strstr(note, "40 updates"));
    run_steps(a, 15);
    run_steps(b, 15);
    assert_same_params(a, b);
    /* The same settings given explicitly: fine, no note. */
    asked.total_steps = 40;
    assert_int_equal(bl_trainer_check_schedule(b, &asked, ~0u, note, sizeof note, &err), BL_OK);
    assert_string_equal(note, "");
    /* Another floor given explicitly: refused, naming the option. Not given: kept. */
    asked.min_lr = 0.01f;
    assert_int_equal(
        bl_trainer_check_schedule(b, &asked, BL_SCHED_SET_MIN_LR, note, sizeof note, &err),
        BL_ERR_ARG);
    assert_non_null(strstr(err.msg, "--min-lr"));
    assert_int_equal(
        bl_trainer_check_schedule(b, &asked, BL_SCHED_SET_WARMUP, note, sizeof note, &err), BL_OK);
    bl_trainer_free(a);
    bl_trainer_free(b);
    tu_rmtree(dir);
}

static void failed_step_leaves_the_trainer_as_it_was(void **state) {
    /* A step that meets a NaN changes nothing (data position, batch-norm statistics),
     * so retrying it continues exactly as a run that never failed: what an adaptive
     * run does after a divergence, and what a replay of it relies on. */
    bl_error err = {0};
    bl_trainer *a = make(RESUME_SPEC, 32, 0, BL_OPT_ADAM, 0.003f);
    bl_trainer *b = make(RESUME_SPEC, 32, 0, BL_OPT_ADAM, 0.003f);
    run_steps(a, 3);
    run_steps(b, 3);
    bl_model *m = bl_trainer_model(b);
    size_t k = bl_model_num_params(m) - 1; /* the last bias: the loss is NaN, batch-norm runs */
    float keep = tu_arena_get1(m, BL_ARENA_PARAMS, k);
    tu_arena_set1(m, BL_ARENA_PARAMS, k, NAN);
    bl_step_info si;
    assert_int_equal(bl_trainer_step(b, &si, &err), BL_ERR_NUMERIC);
    tu_arena_set1(m, BL_ARENA_PARAMS, k, keep);
    assert_int_equal(bl_trainer_samples_seen(b), 3 * 32);
    run_steps(a, 5);
    run_steps(b, 5);
    assert_same_params(a, b);
    bl_trainer_free(a);
    bl_trainer_free(b);
}

static void batch_changes_are_saved_and_resumed(void **state) {
    /* An adaptive run's batch and lr factor, and their history, survive a checkpoint. */
    const char *dir = tu_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/ck.safetensors", dir);
    bl_error err = {0};
    const char *spec = "flatten,dense:16,relu,dense:10";
    bl_trainer *a = make_sched(spec, 16, 64, 60);
    run_steps(a, 3);
    assert_int_equal(bl_trainer_set_batch(a, 32, 0, 1.25f, &err), BL_OK);
    assert_int_equal(bl_trainer_set_batch(a, 32, 0, 1.25f, &err), BL_OK); /* no change */
    run_steps(a, 4);
    assert_int_equal(bl_trainer_set_batch(a, 64, 0, 1.75f, &err), BL_OK);
    run_steps(a, 2);
    const bl_batch_schedule *h = bl_trainer_batch_history(a);
    assert_int_equal(h->n, 2);
    assert_int_equal(h->v[0].step, 3);
    assert_int_equal(h->v[1].step, 7);
    assert_int_equal(bl_trainer_save(a, path, NULL, &err), BL_OK);
    bl_trainer *b = make_sched(spec, 16, 64, 60);
    assert_int_equal(bl_trainer_resume(b, path, &err), BL_OK);
    assert_int_equal(bl_trainer_config(b)->batch, 64);
    assert_true(bl_trainer_current_lr(b) == bl_trainer_current_lr(a));
    const bl_batch_schedule *hb = bl_trainer_batch_history(b);
    assert_int_equal(hb->n, 2);
    assert_true(hb->v[1].batch == 64 && hb->v[1].lr_factor == 1.75f);
    run_steps(a, 6);
    run_steps(b, 6);
    assert_same_params(a, b);
    /* A trainer without room for that batch says so. */
    bl_trainer *c = make_sched(spec, 16, 16, 60);
    assert_int_equal(bl_trainer_resume(c, path, &err), BL_ERR_ARG);
    assert_non_null(strstr(err.msg, "batch to 64"));
    /* Following the history from the start repeats the run. */
    bl_trainer *d = make_sched(spec, 16, 64, 60);
    int next = 0;
    for (int i = 0; i < 15; i++) {
        assert_int_equal(bl_trainer_follow_schedule(d, hb, &next, &err), BL_OK);
        run_steps(d, 1);
    }
    assert_same_params(a, d);
    bl_trainer_free(a);
    bl_trainer_free(b);
    bl_trainer_free(c);
    bl_trainer_free(d);
    tu_rmtree(dir);
}

static void batch_schedules_read_logs_and_csv(void **state) {
    const char *dir = tu_tmpdir();
    char path[512];
    bl_error err = {0};
    bl_batch_schedule s;
    snprintf(path, sizeof path, "%s/run.jsonl", dir);
    FILE *f = fopen(path, "w");
    fputs("{\"type\":\"step\",\"step\":1,\"batch\":16}\n"
          "{\"type\":\"step\",\"step\":2,\"batch\":16}\n"
          "{\"type\":\"decision\",\"step\":5,\"changed\":false,\"to_batch\":16,"
          "\"lr_factor\":1}\n"
          "{\"type\":\"eval\",\"step\":5}\n"
          "{\"type\":\"decision\",\"step\":10,\"changed\":true,\"to_batch\":32,"
          "\"lr_factor\":1.3300000429153442}\n",
          f);
    fclose(f);
    assert_int_equal(bl_batch_schedule_load(&s, path, &err), BL_OK);
    assert_int_equal(s.n, 3);
    assert_true(s.v[0].step == 0 && s.v[0].batch == 16 && s.v[0].lr_factor == 0);
    assert_true(s.v[2].step == 10 && s.v[2].batch == 32 && s.v[2].lr_factor == 1.33f);
    assert_int_equal(bl_batch_schedule_at(&s, 9)->batch, 16);
    assert_int_equal(bl_batch_schedule_max_batch(&s), 32);
    char *text = bl_batch_schedule_format(&s);
    bl_batch_schedule back = {0};
    assert_int_equal(bl_batch_schedule_parse(&back, text, "x", &err), BL_OK);
    assert_int_equal(back.n, 3);
    assert_memory_equal(back.v, s.v, 3 * sizeof *s.v);
    free(text);
    bl_batch_schedule_free(&back);
    bl_batch_schedule_free(&s);
    snprintf(path, sizeof path, "%s/s.csv", dir);
    f = fopen(path, "w");
    fputs("step,batch\n0,16\n20,64\n", f);
    fclose(f);
    assert_int_equal(bl_batch_schedule_load(&s, path, &err), BL_OK);
    assert_true(s.n == 2 && s.v[1].step == 20 && s.v[1].batch == 64 && s.v[1].lr_factor == 0);
    bl_batch_schedule_free(&s);
    f = fopen(path, "w");
    fputs("0,16\n20,abc\n", f);
    fclose(f);
    assert_int_equal(bl_batch_schedule_load(&s, path, &err), BL_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "s.csv:2"));
    tu_rmtree(dir);
}

/* --overlap auto's rule on synthetic timings (seconds, on and off alternating). */
static void overlap_auto_decides_by_pair_ratios(void **state) {
    double fig[3];
    /* The mpinet run that misled the medians: a slow spell over updates 5 to 10. The
     * medians favour off (349 > 319 ms); each pair favours on but one. */
    const double on1[5] = {0.2548, 0.3491, 0.3980, 0.3861, 0.2789};
    const double off1[5] = {0.2984, 0.3861, 0.3600, 0.3083, 0.3190};
    trainer_overlap_figures(on1, off1, fig);
    assert_true(fig[0] > fig[1]);
    assert_true(fabs(fig[2] - 0.3491 / 0.3861) < 1e-12);
    assert_true(fig[2] < 1);
    /* Off faster at every pair, on a drifting machine: off. */
    const double on2[5] = {0.11, 0.21, 0.31, 0.41, 0.51};
    const double off2[5] = {0.10, 0.20, 0.30, 0.40, 0.50};
    trainer_overlap_figures(on2, off2, fig);
    assert_true(fig[2] > 1);
    /* Equal: on (the ratio is exactly 1). */
    trainer_overlap_figures(off2, off2, fig);
    assert_true(fig[2] == 1.0 && fig[0] == 0.30 && fig[1] == 0.30);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(overlap_auto_decides_by_pair_ratios),
        cmocka_unit_test(resume_is_bit_identical),
        cmocka_unit_test(checkpoint_with_old_dropout_state_resumes),
        cmocka_unit_test(resume_rejects_other_model),
        cmocka_unit_test(accumulation_equals_big_batch),
        cmocka_unit_test(accumulation_differs_with_batchnorm),
        cmocka_unit_test(nan_loss_stops_and_keeps_weights),
        cmocka_unit_test(training_learns),
        cmocka_unit_test(bad_batch_sizes_are_rejected),
        cmocka_unit_test(batch_can_change_between_updates),
        cmocka_unit_test(resume_keeps_the_schedule),
        cmocka_unit_test(failed_step_leaves_the_trainer_as_it_was),
        cmocka_unit_test(batch_changes_are_saved_and_resumed),
        cmocka_unit_test(batch_schedules_read_logs_and_csv),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
