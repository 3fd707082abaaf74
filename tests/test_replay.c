/* `batchlab train --batch auto` runs made repeatable: the controller's decisions
 * follow measured throughput, so running it again takes other decisions; its log
 * (or its checkpoint's batch history) replays them. A rerun with --batch-schedule
 * and the same seed gives the same weights bit for bit, from the start or resumed
 * mid-run; an adaptive run resumed from its checkpoint continues at the batch it
 * had reached. Runs the CLI on the committed sample. */
#include <cjson/cJSON.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "batchlab/io.h"
#include "test_util.h"

#define TRAIN                                                                                      \
    BL_CLI_PATH " train --quiet --threads 1 --data " BL_TEST_DATA_DIR "/fmnist-sample "            \
                "--model flatten,dense:32,relu,dropout:0.2,dense:10 --seed 5 "
#define AUTO "--batch auto --base-batch 16 --min-batch 8 --max-batch 128 --adapt-every 4 "

static char out[1 << 16];

static void run_ok(const char *fmt, ...) {
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = tu_run(cmd, out, sizeof out);
    if (rc != 0) fprintf(stderr, "command failed (%d): %s\n%s\n", rc, cmd, out);
    assert_int_equal(rc, 0);
}

/* Every F32 tensor (weights and optimizer state), bit for bit. */
static int same_weights(const char *a, const char *b) {
    bl_safetensors sa, sb;
    bl_error err = {0};
    assert_int_equal(bl_safetensors_read(&sa, a, &err), BL_OK);
    assert_int_equal(bl_safetensors_read(&sb, b, &err), BL_OK);
    int same = 1, compared = 0;
    for (int i = 0; i < sa.n; i++) {
        const bl_tensor *ta = &sa.tensors[i];
        if (ta->dtype != BL_DT_F32) continue;
        const bl_tensor *tb = bl_safetensors_find(&sb, ta->name);
        assert_non_null(tb);
        same &= ta->nbytes == tb->nbytes && !memcmp(ta->data, tb->data, ta->nbytes);
        compared++;
    }
    assert_true(compared >= 5);
    bl_safetensors_free(&sa);
    bl_safetensors_free(&sb);
    return same;
}

static int count_in(const char *path, const char *what) {
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    static char line[8192];
    int n = 0;
    while (fgets(line, sizeof line, f))
        n += strstr(line, what) != NULL;
    fclose(f);
    return n;
}

static void replay_of_an_adaptive_run_is_bit_identical(void **state) {
    const char *d = tu_tmpdir();
    char a[512], alog[512], b[512], c[512];
    snprintf(a, sizeof a, "%s/auto.safetensors", d);
    snprintf(alog, sizeof alog, "%s/auto.jsonl", d);
    snprintf(b, sizeof b, "%s/replay.safetensors", d);
    snprintf(c, sizeof c, "%s/resumed.safetensors", d);
    run_ok(TRAIN AUTO "--noise-every 2 --steps 60 --log %s --save %s", alog, a);
    int changes = count_in(alog, "\"changed\":true");
    fprintf(stderr, "  the adaptive run changed its batch %d times in 60 updates\n", changes);
    assert_true(count_in(alog, "\"lr_factor\"") > 0);
    /* From the start, with the same seed: the same weights. */
    run_ok(TRAIN "--batch-schedule %s --steps 60 --save %s", alog, b);
    assert_true(same_weights(a, b));
    /* Stopped at 25 and resumed: the same weights again. */
    run_ok(TRAIN "--batch-schedule %s --steps 25 --save %s", alog, c);
    assert_false(same_weights(a, c)); /* the comparison is live */
    run_ok(TRAIN "--batch-schedule %s --steps 60 --resume %s --save %s", alog, c, c);
    assert_true(same_weights(a, c));
    tu_rmtree(d);
}

static void adaptive_run_resumes_at_its_batch(void **state) {
    const char *d = tu_tmpdir();
    char ck[512], log[512];
    snprintf(ck, sizeof ck, "%s/ck.safetensors", d);
    snprintf(log, sizeof log, "%s/log.jsonl", d);
    run_ok(TRAIN AUTO "--noise-every 2 --steps 30 --log %s --save %s", log, ck);
    bl_safetensors st;
    bl_error err = {0};
    assert_int_equal(bl_safetensors_read(&st, ck, &err), BL_OK);
    int batch = atoi(bl_safetensors_meta(&st, "batch"));
    const char *hist = bl_safetensors_meta(&st, "batch_history");
    assert_non_null(hist);
    fprintf(stderr, "  checkpoint at batch %d, history '%.120s'\n", batch, hist);
    bl_safetensors_free(&st);
    run_ok(TRAIN AUTO "--noise-every 2 --steps 40 --resume %s --log %s --save %s", ck, log, ck);
    /* The first update after the resume runs at the checkpoint's batch, unless it is the
     * last of an epoch and fewer samples are left (then the epoch's next update must end it
     * at the next step's epoch). Which step ends an epoch depends on the run's measured
     * decisions, so both cases occur. */
    FILE *f = fopen(log, "r");
    assert_non_null(f);
    static char line[8192];
    int b31 = -1, e31 = -1, e32 = -1;
    while (fgets(line, sizeof line, f)) {
        if (!strstr(line, "\"type\":\"step\"")) continue;
        int is31 = strstr(line, "\"step\":31,") != NULL, is32 = strstr(line, "\"step\":32,") != NULL;
        if (!is31 && !is32) continue;
        cJSON *o = cJSON_Parse(line);
        assert_non_null(o);
        int e = cJSON_GetObjectItem(o, "epoch")->valueint;
        if (is31) b31 = cJSON_GetObjectItem(o, "batch")->valueint, e31 = e;
        if (is32) e32 = e;
        cJSON_Delete(o);
    }
    fclose(f);
    assert_true(b31 > 0 && e32 >= 0);
    if (b31 != batch) {
        fprintf(stderr, "  step 31 ran %d samples, the end of epoch %d\n", b31, e31);
        assert_true(b31 < batch);
        assert_int_equal(e32, e31 + 1);
    }
    assert_int_equal(count_in(log, "\"type\":\"step\""), 40);
    tu_rmtree(d);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(replay_of_an_adaptive_run_is_bit_identical),
        cmocka_unit_test(adaptive_run_resumes_at_its_batch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
