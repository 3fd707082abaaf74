/* Data-parallel training under mpirun, against the single-process engine:
 * equal weights, equal noise scale, clean failure, resume. Built only with MPI. */
#include <cjson/cJSON.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>
#include "batchlab/dist.h"
#include "batchlab/io.h"
#include "test_util.h"

#define MPI2 BL_MPIRUN " --allow-run-as-root --oversubscribe -np 2 "
#define TRAIN                                                                                      \
    BL_CLI_PATH " train --quiet --threads 1 --data " BL_TEST_DATA_DIR "/fmnist-sample "            \
                "--model conv3x3:4,relu,maxpool2,flatten,dropout:0.3,dense:32,relu,dense:10 "      \
                "--optimizer adam "                                                                \
                "--lr 0.003 "

static char out[1 << 16];
static const char *self_path; /* this test, run again as an MPI rank */

static void run_ok(const char *cmd) {
    int rc = tu_run(cmd, out, sizeof out);
    if (rc != 0) fprintf(stderr, "command failed (%d): %s\n%s\n", rc, cmd, out);
    assert_int_equal(rc, 0);
}

/* Worst |a-b| / (atol + rtol |b|) over every tensor of two checkpoints. */
static double ckpt_diff(const char *a, const char *b) {
    bl_safetensors sa, sb;
    bl_error err = {0};
    assert_int_equal(bl_safetensors_read(&sa, a, &err), BL_OK);
    assert_int_equal(bl_safetensors_read(&sb, b, &err), BL_OK);
    double worst = 0;
    int compared = 0;
    for (int i = 0; i < sa.n; i++) {
        const bl_tensor *ta = &sa.tensors[i];
        if (ta->dtype != BL_DT_F32) continue;
        const bl_tensor *tb = bl_safetensors_find(&sb, ta->name);
        assert_non_null(tb);
        assert_int_equal(ta->nbytes, tb->nbytes);
        double e = tu_max_rel_err(ta->data, tb->data, ta->nbytes / 4, 1e-5, 1e-4);
        if (!(e <= worst)) worst = e;
        compared++;
    }
    assert_true(compared >= 6);
    bl_safetensors_free(&sa);
    bl_safetensors_free(&sb);
    return worst;
}

static cJSON *last_step(const char *path) {
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    static char line[8192], last[8192];
    int steps = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, "\"type\":\"step\"")) strcpy(last, line), steps++;
    fclose(f);
    assert_true(steps > 0);
    return cJSON_Parse(last);
}

static void two_ranks_equal_one_rank(void **state) {
    const char *d = tu_tmpdir();
    char cmd[4096], a[512], b[512];
    snprintf(a, sizeof a, "%s/one.safetensors", d);
    snprintf(b, sizeof b, "%s/two.safetensors", d);
    /* 540 samples / 64 = 9 updates per epoch: 14 steps cross an epoch boundary. */
    snprintf(cmd, sizeof cmd, TRAIN "--batch 64 --steps 14 --save %s", a);
    run_ok(cmd);
    /* 2 ranks x 2 micro-batches of 16 = the same global batch of 64. */
    snprintf(cmd, sizeof cmd, MPI2 TRAIN "--batch 64 --micro-batch 16 --steps 14 --save %s", b);
    run_ok(cmd);
    double e = ckpt_diff(a, b);
    fprintf(stderr, "  2 ranks vs 1 rank after 14 steps: worst %.3g of tolerance\n", e);
    assert_true(e <= 1.0);
    /* Live check: a different global batch gives different weights. */
    snprintf(cmd, sizeof cmd, MPI2 TRAIN "--batch 32 --steps 14 --save %s", b);
    run_ok(cmd);
    assert_true(ckpt_diff(a, b) > 1.0);
    tu_rmtree(d);
}

static void noise_scale_matches_accumulation(void **state) {
    const char *d = tu_tmpdir();
    char cmd[4096], la[512], lb[512];
    snprintf(la, sizeof la, "%s/one.jsonl", d);
    snprintf(lb, sizeof lb, "%s/two.jsonl", d);
    snprintf(cmd, sizeof cmd, TRAIN "--batch 64 --micro-batch 32 --noise --steps 12 --log %s", la);
    run_ok(cmd);
    snprintf(cmd, sizeof cmd, MPI2 TRAIN "--batch 64 --noise --steps 12 --log %s", lb);
    run_ok(cmd);
    cJSON *ja = last_step(la), *jb = last_step(lb);
    const char *keys[] = {"noise_g2", "noise_trace", "noise_scale"};
    for (int i = 0; i < 3; i++) {
        double x = cJSON_GetObjectItem(ja, keys[i])->valuedouble;
        double y = cJSON_GetObjectItem(jb, keys[i])->valuedouble;
        fprintf(stderr, "  %s: accumulation %.6g, 2 ranks %.6g\n", keys[i], x, y);
        assert_true(isfinite(x) && x != 0);
        assert_true(fabs(x - y) <= 1e-4 * fabs(x));
    }
    cJSON_Delete(ja);
    cJSON_Delete(jb);
    tu_rmtree(d);
}

static void failure_on_one_rank_ends_job(void **state) {
    char cmd[4096];
    /* timeout turns a hang into status 124, which fails the test. */
    snprintf(cmd, sizeof cmd,
             "BATCHLAB_FAULT_DATA_RANK=1 timeout 120 " MPI2 TRAIN "--batch 64 --steps 5");
    int rc = tu_run(cmd, out, sizeof out);
    assert_true(rc != 0 && rc != 124 && rc != -1);
    assert_non_null(strstr(out, "batchlab train: error: rank 1: /nonexistent/injected-fault.csv"));
    /* Only rank 0 prints it. */
    assert_null(strstr(strstr(out, "rank 1:") + 1, "batchlab train: error"));
    /* NaN on every rank: all agree, nobody hangs. */
    snprintf(cmd, sizeof cmd, "timeout 120 " MPI2 TRAIN "--batch 64 --steps 5 --lr 1e30");
    rc = tu_run(cmd, out, sizeof out);
    assert_true(rc != 0 && rc != 124 && rc != -1);
    assert_non_null(strstr(out, "step"));
}

static void resume_with_same_and_other_world(void **state) {
    const char *d = tu_tmpdir();
    char cmd[4096], a[512], b[512], log[512];
    snprintf(a, sizeof a, "%s/straight.safetensors", d);
    snprintf(b, sizeof b, "%s/resumed.safetensors", d);
    snprintf(log, sizeof log, "%s/log.jsonl", d);
    snprintf(cmd, sizeof cmd, MPI2 TRAIN "--batch 64 --steps 12 --save %s", a);
    run_ok(cmd);
    snprintf(cmd, sizeof cmd, MPI2 TRAIN "--batch 64 --steps 5 --save %s --log %s", b, log);
    run_ok(cmd);
    snprintf(cmd, sizeof cmd, MPI2 TRAIN "--batch 64 --steps 12 --resume %s --save %s --log %s", b,
             b, log);
    run_ok(cmd);
    /* Same world: bit-identical. */
    assert_true(ckpt_diff(a, b) == 0.0);
    /* Only rank 0 logged: 12 step lines, not 24. */
    FILE *f = fopen(log, "r");
    char line[8192];
    int steps = 0;
    while (fgets(line, sizeof line, f))
        steps += strstr(line, "\"type\":\"step\"") != NULL;
    fclose(f);
    assert_int_equal(steps, 12);
    /* Other world: a clear note, and training goes on correctly. */
    snprintf(cmd, sizeof cmd, MPI2 TRAIN "--batch 64 --steps 5 --save %s", b);
    run_ok(cmd);
    snprintf(cmd, sizeof cmd, TRAIN "--batch 64 --steps 12 --resume %s --save %s", b, b);
    int rc = tu_run(cmd, out, sizeof out);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "written by a run with 2 rank(s); continuing with 1"));
    assert_true(ckpt_diff(a, b) <= 1.0);
    tu_rmtree(d);
}

/* Our ring allreduce: overlap, --no-overlap and any bucketing give the same bits with
 * 2 ranks (every element is x0 + x1); bf16 on the wire is close, not equal. */
static void overlap_and_buckets_bit_identical(void **state) {
    const char *d = tu_tmpdir();
    char cmd[4096], a[512], b[512];
    snprintf(a, sizeof a, "%s/overlap.safetensors", d);
    snprintf(b, sizeof b, "%s/other.safetensors", d);
    snprintf(cmd, sizeof cmd, MPI2 TRAIN "--batch 64 --steps 8 --save %s", a);
    run_ok(cmd);
    /* The progress thread off, and polling fast (many interleavings with backward). */
    const char *variants[] = {"--no-overlap", "--bucket-kb 1", "--bucket-kb 7", "--comm-poll-us 0",
                              "--comm-poll-us 10 --bucket-kb 3"};
    for (int i = 0; i < 5; i++) {
        snprintf(cmd, sizeof cmd, MPI2 TRAIN "--batch 64 --steps 8 %s --save %s", variants[i], b);
        run_ok(cmd);
        fprintf(stderr, "  %s against the default overlap: %.3g\n", variants[i], ckpt_diff(a, b));
        assert_true(ckpt_diff(a, b) == 0.0);
    }
    snprintf(cmd, sizeof cmd, MPI2 TRAIN "--batch 64 --steps 8 --comm-dtype bf16 --save %s", b);
    run_ok(cmd);
    double e = ckpt_diff(a, b);
    fprintf(stderr, "  bf16 on the wire against fp32: %.3g of tolerance\n", e);
    assert_true(e > 0.0);
    tu_rmtree(d);
}

/* The "overlap" of every step record of a run log, in order ('1', '0', or '-' when
 * missing), into modes; the deciding record's two medians and pair ratio into on_s,
 * off_s and ratio. */
static int read_overlap_modes(const char *path, char *modes, int cap, double *on_s, double *off_s,
                              double *ratio) {
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    static char line[8192];
    int n = 0, decided = 0;
    while (fgets(line, sizeof line, f) && n < cap - 1) {
        if (!strstr(line, "\"type\":\"step\"")) continue;
        cJSON *j = cJSON_Parse(line);
        assert_non_null(j);
        const cJSON *o = cJSON_GetObjectItem(j, "overlap");
        modes[n++] = cJSON_IsTrue(o) ? '1' : cJSON_IsFalse(o) ? '0' : '-';
        const cJSON *a = cJSON_GetObjectItem(j, "overlap_on_s");
        const cJSON *b = cJSON_GetObjectItem(j, "overlap_off_s");
        const cJSON *r = cJSON_GetObjectItem(j, "overlap_ratio");
        if (a && b && r)
            *on_s = a->valuedouble, *off_s = b->valuedouble, *ratio = r->valuedouble, decided++;
        cJSON_Delete(j);
    }
    fclose(f);
    modes[n] = '\0';
    return decided;
}

/* --overlap auto (the default): with 2 ranks, 2 warm-up updates overlapped, then 5 of
 * each mode alternating, then the faster kept; with 3 ranks always on. */
static void overlap_auto_times_both_and_keeps_the_faster(void **state) {
    const char *d = tu_tmpdir();
    char cmd[4096], log[512], modes[64];
    snprintf(log, sizeof log, "%s/auto.jsonl", d);
    snprintf(cmd, sizeof cmd, MPI2 TRAIN "--batch 64 --steps 16 --log %s", log);
    run_ok(cmd);
    double on_s = 0, off_s = 0, ratio = 0;
    int decided = read_overlap_modes(log, modes, sizeof modes, &on_s, &off_s, &ratio);
    char kept = ratio <= 1 ? '1' : '0';
    fprintf(stderr, "  modes %s; medians on %.3g s, off %.3g s, pair ratio %.3g\n", modes, on_s,
            off_s, ratio);
    assert_int_equal(decided, 1);
    assert_true(on_s > 0 && off_s > 0 && ratio > 0);
    assert_int_equal(strlen(modes), 16);
    assert_memory_equal(modes, "111010101010", 12); /* warm-up, then alternating */
    for (int i = 12; i < 16; i++)
        assert_int_equal(modes[i], kept);
    /* Fixed modes stay fixed, and one rank logs no overlap at all. */
    snprintf(cmd, sizeof cmd, MPI2 TRAIN "--batch 64 --steps 14 --overlap off --log %s", log);
    run_ok(cmd);
    assert_int_equal(read_overlap_modes(log, modes, sizeof modes, &on_s, &off_s, &ratio), 0);
    assert_string_equal(modes, "00000000000000");
    snprintf(cmd, sizeof cmd,
             BL_MPIRUN " --allow-run-as-root --oversubscribe -np 3 " TRAIN
                       "--batch 63 --steps 14 --log %s",
             log);
    run_ok(cmd);
    assert_int_equal(read_overlap_modes(log, modes, sizeof modes, &on_s, &off_s, &ratio), 0);
    assert_string_equal(modes, "11111111111111");
    snprintf(cmd, sizeof cmd, TRAIN "--batch 64 --steps 3 --log %s", log);
    run_ok(cmd);
    read_overlap_modes(log, modes, sizeof modes, &on_s, &off_s, &ratio);
    assert_string_equal(modes, "---");
    tu_rmtree(d);
}

/* Test accuracy of a --json run. */
static double test_accuracy(const char *cmd) {
    run_ok(cmd);
    const char *p = strstr(out, "\"test_accuracy\":");
    assert_non_null(p);
    return strtod(p + strlen("\"test_accuracy\":"), NULL);
}

/* bf16 gradients on the wire (fp32 accumulation) train as well as fp32: the small
 * version of bench/bf16_accuracy.sh (full Fashion-MNIST, within 0.3 points). */
static void bf16_trains_as_well(void **state) {
    const char *run =
        MPI2 BL_CLI_PATH " train --quiet --json --threads 1 --data " BL_TEST_DATA_DIR
                         "/fmnist-sample --model mlp --batch 64 --epochs 3 --comm-dtype ";
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%sfp32", run);
    double fp32 = test_accuracy(cmd);
    snprintf(cmd, sizeof cmd, "%sbf16", run);
    double bf16 = test_accuracy(cmd);
    fprintf(stderr, "  test accuracy (200 samples): fp32 %.3f, bf16 %.3f\n", fp32, bf16);
    assert_true(fp32 > 0.5);                /* it learned something */
    assert_true(fabs(bf16 - fp32) <= 0.02); /* 4 of the 200 test samples */
}

/* One rank's side of progress_thread_carries_the_ring (argv: "rank-progress" POLL_US).
 * Starts a reduction, then makes no MPI call until the progress thread has finished the
 * ring (2(N-1) steps) or 30 s have passed, and checks the sums exactly. Exit 0 when the
 * thread carried every step (POLL_US > 0) or none (POLL_US = 0). */
static int rank_progress_main(double poll_us) {
    bl_dist *d = NULL;
    bl_error err = {0};
    if (bl_dist_init(&d, &err)) return fprintf(stderr, "%s\n", err.msg), 2;
    bl_dist_set_poll(d, poll_us);
    int rank = bl_dist_rank(d), N = bl_dist_size(d);
    size_t n = (size_t)1 << 21; /* 8 MB: past Open MPI's eager limit, so a rendezvous */
    float *x = malloc(n * sizeof *x);
    if (!x || N < 2) return 3;
    for (size_t i = 0; i < n; i++)
        x[i] = (float)((rank + 1) * (int)(i % 1000));
    if (bl_dist_iallreduce_f32(d, x, n, &err)) return fprintf(stderr, "%s\n", err.msg), 4;
    long want = 2L * (N - 1), steps = 0;
    for (int ms = 0; ms < 30000 && (steps = bl_dist_thread_steps(d)) < want; ms += 2) {
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
        if (poll_us == 0 && ms >= 200) break; /* no thread: nothing moves by itself */
    }
    if (bl_dist_wait_all(d, &err)) return fprintf(stderr, "%s\n", err.msg), 5;
    size_t bad = 0; /* sums of small integers: exact in float */
    for (size_t i = 0; i < n; i++)
        bad += x[i] != (float)(N * (N + 1) / 2 * (int)(i % 1000));
    fprintf(stderr, "rank %d: the thread carried %ld of %ld ring steps; %zu wrong sums\n", rank,
            steps, want, bad);
    free(x);
    bl_dist_finalize(d);
    if (bad) return 6;
    return (poll_us > 0 ? steps == want : steps == 0) ? 0 : 7;
}

/* The progress thread moves a reduction while the caller computes (here: sleeps) and
 * makes no MPI call; with --comm-poll-us 0 nothing moves until the wait. */
static void progress_thread_carries_the_ring(void **state) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, MPI2 "%s rank-progress 500", self_path);
    run_ok(cmd);
    fprintf(stderr, "%s", out);
    snprintf(cmd, sizeof cmd, MPI2 "%s rank-progress 0", self_path);
    run_ok(cmd);
    fprintf(stderr, "%s", out);
}

/* One rank's side of mpi_starts_quiet_unless_told (argv: "rank-quiet"): what Open MPI
 * was told about the ranks' help messages once bl_dist_init had started it. */
static int rank_quiet_main(void) {
    bl_dist *d = NULL;
    bl_error err = {0};
    if (bl_dist_init(&d, &err)) return fprintf(stderr, "%s\n", err.msg), 2;
    const char *q = getenv("OMPI_MCA_orte_execute_quiet");
    printf("rank %d quiet=%s\n", bl_dist_rank(d), q ? q : "(unset)");
    bl_dist_finalize(d);
    return 0;
}

/* Open MPI 4.1 hangs a rank inside its "peer process has unexpectedly disconnected"
 * message while mpirun ends the job (docs/DISTRIBUTED.md), so batchlab starts MPI with
 * the ranks' help messages off, unless the environment says otherwise. */
static void mpi_starts_quiet_unless_told(void **state) {
    (void)state;
    char cmd[4096];
    snprintf(cmd, sizeof cmd, MPI2 "%s rank-quiet", self_path);
    run_ok(cmd);
    assert_non_null(strstr(out, "rank 0 quiet=1"));
    assert_non_null(strstr(out, "rank 1 quiet=1"));
    snprintf(cmd, sizeof cmd, MPI2 "-x OMPI_MCA_orte_execute_quiet=0 %s rank-quiet", self_path);
    run_ok(cmd);
    assert_non_null(strstr(out, "rank 0 quiet=0"));
    assert_non_null(strstr(out, "rank 1 quiet=0"));
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "rank-progress")) return rank_progress_main(atof(argv[2]));
    if (argc == 2 && !strcmp(argv[1], "rank-quiet")) return rank_quiet_main();
    self_path = argv[0];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(progress_thread_carries_the_ring),
        cmocka_unit_test(mpi_starts_quiet_unless_told),
        cmocka_unit_test(two_ranks_equal_one_rank),
        cmocka_unit_test(overlap_and_buckets_bit_identical),
        cmocka_unit_test(overlap_auto_times_both_and_keeps_the_faster),
        cmocka_unit_test(bf16_trains_as_well),
        cmocka_unit_test(noise_scale_matches_accumulation),
        cmocka_unit_test(failure_on_one_rank_ends_job),
        cmocka_unit_test(resume_with_same_and_other_world),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
