/* bl_run, the library's training loop: stop rules, evaluation cadence, events,
 * the stop flag, checkpoint cadence, and that it trains exactly as the bare
 * trainer does. Runs on the committed Fashion-MNIST sample (600 + 200). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "batchlab/run.h"
#include "batchlab/runlog.h"
#include "cJSON.h"
#include "test_util.h"

static bl_ctx g_ctx;
static bl_dataset g_train, g_val;

static int setup(void **state) {
    return tu_load_sample(&g_ctx, &g_train, &g_val);
}

static int teardown(void **state) {
    return tu_free_sample(&g_ctx, &g_train, &g_val);
}

/* batch 50: 12 updates an epoch */
static bl_trainer *make(void) {
    bl_train_config c;
    bl_train_config_default(&c);
    c.spec = "flatten,dense:32,relu,dense:10";
    c.batch = 50;
    c.lr = 0.05f;
    c.seed = 11;
    bl_error err = {0};
    bl_trainer *t = NULL;
    bl_status st = bl_trainer_create(&t, &g_ctx, &c, &g_train, &err);
    if (st) fprintf(stderr, "create: %s\n", err.msg);
    assert_int_equal(st, BL_OK);
    return t;
}

/* What the callback saw. */
typedef struct seen {
    int steps, evals, epochs;
    long eval_at[64];
    long last_step;
    long stop_at; /* set the stop flag after this step (0: never) */
    long fail_at; /* return an error at this step (0: never) */
    volatile sig_atomic_t flag;
} seen;

static bl_status on_event(void *user, const bl_run_event *e, bl_error *err) {
    seen *s = user;
    if (e->kind == BL_RUN_STEP) {
        s->steps++;
        assert_int_equal(e->step->step, s->last_step + 1); /* in order, none skipped */
        s->last_step = e->step->step;
        if (s->stop_at && e->step->step == s->stop_at) s->flag = 1;
        if (s->fail_at && e->step->step == s->fail_at)
            return bl_fail(err, BL_ERR_IO, "the callback failed at step %ld", e->step->step);
    } else if (e->kind == BL_RUN_EVAL) {
        assert_true(s->evals < 64);
        s->eval_at[s->evals++] = e->at_step;
        assert_true(isfinite(e->val_loss) && e->val_acc >= 0 && e->val_acc <= 1);
    } else if (e->kind == BL_RUN_EPOCH) {
        s->epochs++;
        assert_true(isfinite(e->epoch->train_loss));
    }
    return BL_OK;
}

static void config(bl_run_config *c, seen *s) {
    bl_run_config_default(c);
    memset(s, 0, sizeof *s);
    c->on_event = on_event, c->user = s;
    c->stop_flag = &s->flag;
}

static void stops_at_steps(void **state) {
    bl_trainer *t = make();
    bl_run_config c;
    seen s;
    config(&c, &s);
    c.steps = 7;
    bl_run_result r;
    bl_error err = {0};
    assert_int_equal(bl_run(t, &c, &r, &err), BL_OK);
    assert_string_equal(r.stop_reason, "reached --steps");
    assert_int_equal(r.stop, BL_RUN_STOP_STEPS);
    assert_int_equal(r.steps, 7);
    assert_int_equal(s.steps, 7);
    assert_int_equal(bl_trainer_steps_done(t), 7);
    assert_int_equal(s.evals, 0); /* no validation set: no evaluation */
    assert_true(isnan(r.val_acc) && isfinite(r.train_loss));
    /* steps count the whole run: going on to 10 makes 3 more, and at 10 there is nothing left */
    c.steps = 10;
    assert_int_equal(bl_run(t, &c, &r, &err), BL_OK);
    assert_int_equal(r.steps, 3);
    assert_int_equal(bl_run(t, &c, &r, &err), BL_OK);
    assert_int_equal(r.steps, 0);
    assert_non_null(strstr(r.stop_reason, "already at --steps"));
    assert_int_equal(r.stop, BL_RUN_STOP_DONE);
    bl_trainer_free(t);
}

static void epochs_and_evaluation_cadence(void **state) {
    bl_trainer *t = make();
    bl_run_config c;
    seen s;
    config(&c, &s);
    c.epochs = 2, c.val = &g_val, c.eval_every = 5;
    bl_run_result r;
    bl_error err = {0};
    assert_int_equal(bl_run(t, &c, &r, &err), BL_OK);
    assert_string_equal(r.stop_reason, "reached --epochs");
    assert_int_equal(r.stop, BL_RUN_STOP_EPOCHS);
    assert_int_equal(r.steps, 24);
    assert_int_equal(s.epochs, 2);
    /* every 5 updates, and at the epoch ends (12, 24) */
    long want[] = {5, 10, 12, 15, 20, 24};
    assert_int_equal(s.evals, 6);
    for (int i = 0; i < 6; i++)
        assert_int_equal(s.eval_at[i], want[i]);
    assert_true(isfinite(r.val_acc) && isfinite(r.train_acc));
    /* eval_samples: every 200 samples = every 4 updates of 50 */
    bl_trainer_free(t);
    t = make();
    config(&c, &s);
    c.steps = 9, c.val = &g_val, c.eval_samples = 200;
    assert_int_equal(bl_run(t, &c, &r, &err), BL_OK);
    assert_int_equal(s.evals, 2);
    assert_int_equal(s.eval_at[0], 4);
    assert_int_equal(s.eval_at[1], 8);
    bl_trainer_free(t);
}

static void stops_at_a_target(void **state) {
    bl_trainer *t = make();
    bl_run_config c;
    seen s;
    config(&c, &s);
    c.epochs = 50, c.val = &g_val, c.eval_every = 3, c.target_acc = 0.3;
    bl_run_result r;
    bl_error err = {0};
    assert_int_equal(bl_run(t, &c, &r, &err), BL_OK);
    assert_string_equal(r.stop_reason, "reached --target-acc on validation");
    assert_int_equal(r.stop, BL_RUN_STOP_TARGET);
    assert_true(r.val_acc >= 0.3);
    assert_int_equal(r.steps % 3 == 0 || r.steps % 12 == 0, 1); /* at an evaluation */
    assert_true(r.steps < 50 * 12);
    /* a target out of reach within the epochs says so */
    bl_trainer_free(t);
    t = make();
    config(&c, &s);
    c.epochs = 1, c.val = &g_val, c.target_loss = 1e-9;
    assert_int_equal(bl_run(t, &c, &r, &err), BL_OK);
    assert_string_equal(r.stop_reason, "target not reached within --epochs");
    bl_trainer_free(t);
}

static void stop_flag_and_callback_errors(void **state) {
    bl_trainer *t = make();
    bl_run_config c;
    seen s;
    config(&c, &s);
    c.steps = 100, s.stop_at = 4;
    bl_run_result r;
    bl_error err = {0};
    /* the flag set after update 4 stops the run after the update in flight */
    assert_int_equal(bl_run(t, &c, &r, &err), BL_OK);
    assert_string_equal(r.stop_reason, "interrupted");
    assert_int_equal(r.stop, BL_RUN_STOP_FLAG);
    assert_int_equal(r.steps, 5);
    bl_trainer_free(t);
    t = make();
    config(&c, &s);
    c.steps = 100, s.fail_at = 2;
    assert_int_equal(bl_run(t, &c, &r, &err), BL_ERR_IO);
    assert_non_null(strstr(err.msg, "the callback failed at step 2"));
    assert_int_equal(r.steps, 2);
    assert_false(r.comm_failed);
    assert_int_equal(r.stop, BL_RUN_STOP_FAILED);
    bl_trainer_free(t);
}

/* The log's last line of a run at path. */
static cJSON *last_record(const char *path) {
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[4096], last[4096] = "";
    while (fgets(line, sizeof line, f))
        snprintf(last, sizeof last, "%s", line);
    fclose(f);
    cJSON *o = cJSON_Parse(last);
    assert_non_null(o);
    return o;
}

/* Every run's log ends with an "end" record that says why it stopped, and with the
 * error when one ended it: the line a launcher cannot lose (issue 17). */
static void the_log_ends_with_how_the_run_ended(void **state) {
    char dir[] = "/tmp/bl_run_log.XXXXXX", path[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/run.jsonl", dir);
    bl_error err = {0};
    for (int failing = 0; failing < 2; failing++) {
        bl_trainer *t = make();
        bl_run_config c;
        seen s;
        config(&c, &s);
        bl_runlog log = {0};
        assert_int_equal(bl_runlog_open(&log, path, 0, &err), BL_OK);
        c.log = &log;
        c.steps = 4, s.fail_at = failing ? 3 : 0;
        bl_run_result r;
        assert_int_equal(bl_run(t, &c, &r, &err), failing ? BL_ERR_IO : BL_OK);
        assert_int_equal(bl_runlog_close(&log, &err), BL_OK);
        cJSON *o = last_record(path);
        assert_string_equal(cJSON_GetObjectItem(o, "type")->valuestring, "end");
        assert_string_equal(cJSON_GetObjectItem(o, "stop")->valuestring, r.stop_reason);
        assert_int_equal(cJSON_IsTrue(cJSON_GetObjectItem(o, "ok")), !failing);
        assert_int_equal((long)cJSON_GetObjectItem(o, "step")->valuedouble, failing ? 3 : 4);
        cJSON *e = cJSON_GetObjectItem(o, "error");
        if (failing)
            assert_non_null(strstr(e->valuestring, "the callback failed at step 3"));
        else
            assert_true(cJSON_IsNull(e));
        cJSON_Delete(o);
        bl_trainer_free(t);
    }
    unlink(path);
    rmdir(dir);
}

/* The sweep's rules: evaluations that spread out as the run goes, one at the
 * end, none at epoch ends, and a sample budget (the tuner's). */
static void widening_evaluations_and_a_sample_budget(void **state) {
    bl_trainer *t = make();
    bl_run_config c;
    seen s;
    config(&c, &s);
    c.steps = 130, c.val = &g_val;
    c.eval_every = 2, c.eval_growth = 0.25, c.eval_epoch_end = 0, c.eval_at_end = 1;
    bl_run_result r;
    bl_error err = {0};
    assert_int_equal(bl_run(t, &c, &r, &err), BL_OK);
    /* next = s + max(2, floor(s / 4)): 2 4 6 8 10 12 15 18 22 27 33 41 51 63 78 97 121, then 130 */
    long want[] = {2, 4, 6, 8, 10, 12, 15, 18, 22, 27, 33, 41, 51, 63, 78, 97, 121, 130};
    int n = (int)(sizeof want / sizeof want[0]);
    assert_int_equal(s.evals, n);
    for (int i = 0; i < n; i++)
        assert_int_equal(s.eval_at[i], want[i]);
    bl_trainer_free(t);
    t = make();
    config(&c, &s);
    c.samples = 420; /* 8.4 updates of 50: stops after the 9th */
    assert_int_equal(bl_run(t, &c, &r, &err), BL_OK);
    assert_int_equal(r.stop, BL_RUN_STOP_SAMPLES);
    assert_int_equal(r.steps, 9);
    assert_int_equal(bl_run(t, &c, &r, &err), BL_OK);
    assert_int_equal(r.stop, BL_RUN_STOP_DONE);
    bl_trainer_free(t);
}

/* A diverged update fails the run, or, asked to, ends it without an error. */
static void divergence_fails_or_stops(void **state) {
    bl_error err = {0};
    bl_run_result r;
    bl_run_config c;
    seen s;
    for (int stops = 0; stops < 2; stops++) {
        bl_trainer *t = make();
        config(&c, &s);
        c.steps = 20, c.diverged_stops = stops;
        tu_arena_set1(bl_trainer_model(t), BL_ARENA_PARAMS, 5, NAN); /* the loss is NaN at once */
        bl_status st = bl_run(t, &c, &r, &err);
        assert_int_equal(r.steps, 0);
        assert_int_equal(bl_trainer_steps_done(t), 0);
        if (stops) {
            assert_int_equal(st, BL_OK);
            assert_int_equal(r.stop, BL_RUN_STOP_DIVERGED);
            assert_string_equal(r.stop_reason, "diverged");
        } else {
            assert_int_equal(st, BL_ERR_NUMERIC);
            assert_int_equal(r.stop, BL_RUN_STOP_FAILED);
            assert_non_null(strstr(err.msg, "step 1"));
        }
        bl_trainer_free(t);
    }
}

static void trains_as_the_bare_trainer_does_and_saves(void **state) {
    const char *dir = tu_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/every2.safetensors", dir);
    bl_trainer *a = make(), *b = make();
    bl_run_config c;
    seen s;
    config(&c, &s);
    c.steps = 15, c.save_every = 2, c.save_path = path;
    c.val = &g_val, c.eval_every = 4; /* evaluations do not change the training */
    bl_run_result r;
    bl_error err = {0};
    assert_int_equal(bl_run(a, &c, &r, &err), BL_OK);
    bl_step_info si;
    for (int i = 0; i < 15; i++)
        assert_int_equal(bl_trainer_step(b, &si, &err), BL_OK);
    assert_true(tu_arena_equal(bl_trainer_model(a), bl_trainer_model(b), BL_ARENA_PARAMS));
    /* the last checkpoint of the cadence is update 14 */
    bl_trainer *d = make();
    assert_int_equal(bl_trainer_resume(d, path, &err), BL_OK);
    assert_int_equal(bl_trainer_steps_done(d), 14);
    assert_int_equal(bl_trainer_step(d, &si, &err), BL_OK);
    assert_true(tu_arena_equal(bl_trainer_model(a), bl_trainer_model(d), BL_ARENA_PARAMS));
    bl_trainer_free(a);
    bl_trainer_free(b);
    bl_trainer_free(d);
    tu_rmtree(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(stops_at_steps),
        cmocka_unit_test(epochs_and_evaluation_cadence),
        cmocka_unit_test(stops_at_a_target),
        cmocka_unit_test(stop_flag_and_callback_errors),
        cmocka_unit_test(trains_as_the_bare_trainer_does_and_saves),
        cmocka_unit_test(widening_evaluations_and_a_sample_budget),
        cmocka_unit_test(divergence_fails_or_stops),
        cmocka_unit_test(the_log_ends_with_how_the_run_ended),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
