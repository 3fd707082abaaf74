/* Fault injection in-process (core/fault.h armed from the test): the writers
 * whose every allocation or write is too many to walk through the CLI. Each
 * walk fails the k-th allocation (write) for k = 1, 2, ... until a run no longer
 * reaches k, and checks that the call either succeeds with complete files or
 * fails with the right status, leaving the previous files as they were and no
 * temporary file behind. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include "batch/sweep_report.h"
#include "batch/sweep_plots.h"
#include "batchlab/data.h"
#include "batchlab/io.h"
#include "batchlab/plot.h"
#include "batchlab/runlog.h"
#include "core/fault.h"
#include "test_util.h"

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *b = calloc(1, 1 << 20);
    size_t n = fread(b, 1, (1 << 20) - 1, f);
    b[n] = '\0';
    fclose(f);
    return b;
}

/* No "*.tmp.*" anywhere under dir. */
static int no_temp_files(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 1;
    int ok = 1;
    struct dirent *e;
    while (ok && (e = readdir(d))) {
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (e->d_name[0] == '.' || lstat(p, &sb)) continue;
        ok = S_ISDIR(sb.st_mode) ? no_temp_files(p) : !strstr(e->d_name, ".tmp.");
    }
    closedir(d);
    return ok;
}

/* ---- a small sweep result, enough for the files and the plots ------------------- */

static bl_trial_point g_hist[2][3];
static bl_trial g_trials[2];

static void fake_sweep(bl_sweep_config *c, bl_sweep_result *r, const char *dir) {
    bl_sweep_config_default(c);
    c->train.spec = "flatten,dense:16,relu,dense:10";
    c->n_batches = 2, c->batches[0] = 16, c->batches[1] = 32;
    c->n_lr_mults = 1, c->lr_mults[0] = 1;
    c->target_acc = 0.5;
    c->out_dir = dir;
    c->data_name = "fake";
    memset(r, 0, sizeof *r);
    for (int i = 0; i < 2; i++) {
        bl_trial *t = &g_trials[i];
        memset(t, 0, sizeof *t);
        t->batch = c->batches[i];
        t->lr_mult = 1, t->lr = 0.05f;
        sweep_trial_id(t->id, sizeof t->id, t->batch, t->lr);
        t->status = BL_TRIAL_REACHED;
        t->steps = 40 / (i + 1), t->examples = t->steps * t->batch, t->steps_res = 4;
        t->train_s = 0.5, t->wall_s = 0.8;
        t->val_acc = 0.55, t->val_loss = 1.2, t->train_acc = 0.6, t->train_loss = 1.1;
        t->test_acc = 0.52, t->test_loss = 1.3, t->gen_gap = 0.08;
        t->noise_ema = 50, t->noise_scale = 60, t->noise_lo = 30, t->noise_hi = 90;
        for (int k = 0; k < 3; k++)
            g_hist[i][k] = (bl_trial_point){.step = 10 * (k + 1),
                                            .samples = 10L * (k + 1) * t->batch,
                                            .val_acc = 0.2 + 0.15 * k,
                                            .val_loss = 2 - 0.3 * k,
                                            .noise_scale = 40 + 5 * k};
        t->hist = g_hist[i], t->n_hist = 3;
        r->best[i] = i;
        r->est_train_s[i] = 0.5;
    }
    r->trials = g_trials, r->n_trials = 2, r->recommended = 1;
    r->b_crit_lo = r->b_crit_hi = NAN;
    snprintf(r->fit_msg, sizeof r->fit_msg, "not fitted in this test");
}

static bl_status write_sweep_files(const bl_sweep_config *c, const bl_sweep_result *r,
                                   bl_error *err) {
    sweep_data_info di = {.n_train = 540, .n_val = 60, .n_test = 200};
    bl_status st = sweep_prepare_dir(c, &di, err);
    for (int i = 0; i < r->n_trials && !st; i++)
        st = sweep_trial_save(c->out_dir, &r->trials[i], err);
    if (!st) st = sweep_write_results(c, &di, r, err);
    return st;
}

/* Every allocation of the sweep's state files: NOMEM, or files that parse. */
static void sweep_files_under_allocation_faults(void **state) {
    const char *dir = tu_tmpdir();
    bl_sweep_config c;
    bl_sweep_result r;
    fake_sweep(&c, &r, dir);
    bl_error err = {0};
    assert_int_equal(write_sweep_files(&c, &r, &err), BL_OK); /* the old files */
    const char *files[] = {"sweep.json", "results.json", "results.csv", "trials/B16_lr0.05.json",
                           "trials/B32_lr0.05.json"};
    enum { N_FILES = sizeof files / sizeof files[0] };
    char *want[N_FILES]; /* the same inputs write the same bytes: old or new, no difference */
    for (int i = 0; i < N_FILES; i++) {
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        assert_non_null(want[i] = slurp(p));
    }
    unsigned long k = 1, failed = 0;
    for (;; k++) {
        bl_fault_alloc_arm(k);
        bl_error e = {0};
        bl_status st = write_sweep_files(&c, &r, &e);
        unsigned long reached = bl_fault_alloc_count() >= k;
        bl_fault_alloc_arm(0);
        if (!reached) break;
        if (st) {
            failed++;
            assert_int_equal(st, BL_ERR_NOMEM);
            assert_non_null(strstr(e.msg, "memory"));
        }
        for (int i = 0; i < N_FILES; i++) {
            char p[1024];
            snprintf(p, sizeof p, "%s/%s", dir, files[i]);
            char *got = slurp(p);
            if (!got || strcmp(got, want[i]))
                fail_msg("allocation %lu (%s): %s is not what it was, nor all of what it should "
                         "be",
                         k, st ? "failed" : "succeeded", files[i]);
            free(got);
        }
        assert_true(no_temp_files(dir));
    }
    for (int i = 0; i < N_FILES; i++)
        free(want[i]);
    print_message("sweep files: %lu allocations walked, %lu failed cleanly\n", k - 1, failed);
    assert_true(k > 100);
    tu_rmtree(dir);
}

/* A series that cannot be allocated fails the plots (it used to vanish from the figure). */
static void sweep_plots_never_drop_a_series(void **state) {
    if (!bl_plot_available()) skip();
    const char *dir = tu_tmpdir();
    char plots[600], svg[700];
    snprintf(plots, sizeof plots, "%s/plots", dir);
    assert_int_equal(mkdir(plots, 0755), 0);
    snprintf(svg, sizeof svg, "%s/val_acc_over_training.svg", plots);
    bl_sweep_config c;
    bl_sweep_result r;
    fake_sweep(&c, &r, dir);
    unsigned long k = 1, failed = 0;
    for (;; k++) {
        int drawn[SWEEP_N_PLOTS];
        bl_error e = {0};
        unlink(svg);
        bl_fault_alloc_arm(k);
        bl_status st = sweep_draw_plots(&c, &r, drawn, &e);
        unsigned long reached = bl_fault_alloc_count() >= k;
        bl_fault_alloc_arm(0);
        if (!reached) break;
        if (st) {
            failed++;
            assert_int_equal(st, BL_ERR_NOMEM);
            assert_non_null(strstr(e.msg, "memory"));
        } else {
            char *s = slurp(svg);
            if (!s || !strstr(s, "B=16") || !strstr(s, "B=32"))
                fail_msg("allocation %lu failed, the plots succeeded, but a series is missing", k);
            free(s);
        }
        assert_true(no_temp_files(dir));
    }
    print_message("sweep plots: %lu allocations walked, %lu failed cleanly\n", k - 1, failed);
    assert_true(failed >= 4);
    tu_rmtree(dir);
}

/* A CSV read under every allocation failure: the same rows, or BL_ERR_NOMEM. The header
 * guess used to take a failed copy as "this line has names", and then skipped the first
 * data row of a file without a header. */
static void csv_load_under_allocation_faults(void **state) {
    const char *dir = tu_tmpdir();
    char path[600];
    snprintf(path, sizeof path, "%s/data.csv", dir);
    FILE *f = fopen(path, "w");
    for (int i = 0; i < 40; i++)
        fprintf(f, "%d.5,%d,%d\n", i, 2 * i, i % 3);
    fclose(f);
    bl_mem mem = {0};
    bl_dataset ref;
    bl_error err = {0};
    assert_int_equal(bl_dataset_load(&ref, &mem, path, NULL, NULL, NULL, &err), BL_OK);
    assert_int_equal(ref.n, 40);
    unsigned long k = 1, failed = 0;
    for (;; k++) {
        bl_dataset ds;
        bl_error e = {0};
        bl_fault_alloc_arm(k);
        bl_status st = bl_dataset_load(&ds, &mem, path, NULL, NULL, NULL, &e);
        unsigned long reached = bl_fault_alloc_count() >= k;
        bl_fault_alloc_arm(0);
        if (!reached) {
            if (!st) bl_dataset_free(&ds, &mem);
            break;
        }
        if (st) {
            failed++;
            if (st != BL_ERR_NOMEM || !strstr(e.msg, "memory"))
                fail_msg("allocation %lu: status %d: %s", k, (int)st, e.msg);
        } else {
            if (ds.n != ref.n || ds.dim != ref.dim ||
                memcmp(ds.x, ref.x, ref.n * ref.dim * sizeof(float)))
                fail_msg("allocation %lu failed, the load succeeded with other rows (%zu)", k,
                         ds.n);
            bl_dataset_free(&ds, &mem);
        }
    }
    print_message("csv load: %lu allocations walked, %lu failed cleanly\n", k - 1, failed);
    bl_dataset_free(&ref, &mem);
    assert_int_equal(mem.cur_bytes, 0);
    tu_rmtree(dir);
}

/* ---- writes --------------------------------------------------------------------- */

static const char *mode_name(int kind) {
    return kind == ENOSPC           ? "enospc"
           : kind == EIO            ? "eio"
           : kind == BL_FAULT_SHORT ? "short"
                                    : "full";
}

/* Every write of an atomic replacement: the old contents, or all of the new. */
static void atomic_write_under_write_faults(void **state) {
    const char *dir = tu_tmpdir();
    char path[600];
    snprintf(path, sizeof path, "%s/state.bin", dir);
    /* The data ends where an unmapped page begins: reading past it (glibc did, when a
     * cookie stream's write returned -1) is a crash here, not luck. */
    size_t n = 300000, page = (size_t)sysconf(_SC_PAGESIZE), span = (n + page - 1) / page * page;
    char *map = mmap(NULL, span + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(map != MAP_FAILED);
    assert_int_equal(mprotect(map + span, page, PROT_NONE), 0);
    char *data = map + span - n;
    for (size_t i = 0; i < n; i++)
        data[i] = (char)('a' + i % 26);
    const int kinds[] = {ENOSPC, EIO, BL_FAULT_SHORT, BL_FAULT_FULL};
    for (int m = 0; m < 4; m++) {
        unsigned long k = 1;
        for (;; k++) {
            assert_int_equal(bl_atomic_write(path, "old\n", 4, NULL), BL_OK);
            bl_error e = {0};
            bl_fault_write_arm(k, kinds[m]);
            bl_status st = bl_atomic_write(path, data, n, &e);
            unsigned long reached = bl_fault_write_count() >= k;
            bl_fault_write_arm(0, 0);
            if (!reached) break;
            struct stat sb;
            assert_int_equal(stat(path, &sb), 0);
            if (kinds[m] == BL_FAULT_SHORT || st == BL_OK) {
                if (st) fail_msg("%s write %lu: %s", mode_name(kinds[m]), k, e.msg);
                assert_int_equal(sb.st_size, (off_t)n);
                char *s = slurp(path);
                assert_non_null(s);
                assert_memory_equal(s, data, n);
                free(s);
            } else if (sb.st_size != 4) { /* failed: the old file must be there */
                /* ... unless only syncing the folder failed, after the rename */
                assert_non_null(strstr(e.msg, "syncing its directory"));
                assert_int_equal(sb.st_size, (off_t)n);
            }
            if (st) assert_non_null(strstr(e.msg, path));
            assert_true(no_temp_files(dir));
        }
        print_message("atomic write, %s: %lu writes walked\n", mode_name(kinds[m]), k - 1);
        assert_true(k > 3);
    }
    munmap(map, span + page);
    tu_rmtree(dir);
}

/* A new run log, run.jsonl, in a fresh directory (returned; its path in path). */
static const char *open_run_log(bl_runlog *log, char *path, size_t cap) {
    const char *dir = tu_tmpdir();
    snprintf(path, cap, "%s/run.jsonl", dir);
    bl_error err = {0};
    assert_int_equal(bl_runlog_open(log, path, 0, &err), BL_OK);
    return dir;
}

/* A log record that cannot be written whole is cut back: every line stays whole. */
static void runlog_cuts_a_torn_record_back(void **state) {
    bl_runlog log;
    char path[600];
    const char *dir = open_run_log(&log, path, sizeof path);
    bl_error err = {0};
    bl_step_info si = {.step = 1, .batch = 32, .lr = 0.1f, .loss = 2.0, .acc = 0.1};
    assert_int_equal(bl_runlog_step(&log, &si, &err), BL_OK);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    off_t one = sb.st_size;
    bl_fault_write_arm(1, BL_FAULT_SHORT); /* half the line, then the rest: not an error */
    assert_int_equal(bl_runlog_step(&log, &si, &err), BL_OK);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_size, 2 * one);
    bl_fault_write_arm(1, BL_FAULT_FULL); /* half the line, then the disk is full */
    bl_status st = bl_runlog_step(&log, &si, &err);
    bl_fault_write_arm(0, 0);
    assert_int_equal(st, BL_ERR_IO);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "No space left on device"));
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_size, 2 * one);
    assert_int_equal(bl_runlog_close(&log, &err), BL_OK);
    tu_rmtree(dir);
}

/* A step record is written once per optimizer step: it allocates nothing, and it is
 * one valid JSON object per line with every field (NaN as null, overlap as a bool). */
static void runlog_step_allocates_nothing(void **state) {
    (void)state;
    bl_runlog log;
    char path[600];
    const char *dir = open_run_log(&log, path, sizeof path);
    bl_error err = {0};
    bl_step_info si = {.step = 7,
                       .epoch = 1,
                       .samples_seen = 448,
                       .batch = 64,
                       .lr = 0.05f,
                       .loss = NAN,
                       .acc = 0.25,
                       .grad_norm = 1e-300,
                       .step_time_s = 0.125,
                       .samples_per_s = 512,
                       .comm_time_s = 0.01,
                       .overlap = 1,
                       .peak_mem_bytes = 123456789,
                       .has_noise = 1,
                       .noise_g2 = -0.5,
                       .noise_trace = 3e20,
                       .noise_scale = 1.0 / 3};
    bl_fault_alloc_arm(~0UL); /* count allocations (failing none) */
    assert_int_equal(bl_runlog_step(&log, &si, &err), BL_OK);
    unsigned long allocs = bl_fault_alloc_count();
    bl_fault_alloc_arm(0);
    assert_int_equal(allocs, 0);
    assert_int_equal(bl_runlog_close(&log, &err), BL_OK);
    char text[4096] = {0};
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    assert_true(n > 0 && text[n - 1] == '\n' && !strchr(text, '\n')[1]);
    cJSON *o = cJSON_Parse(text);
    assert_non_null(o);
    assert_string_equal(cJSON_GetObjectItem(o, "type")->valuestring, "step");
    assert_true(cJSON_GetObjectItem(o, "step")->valuedouble == 7);
    assert_true(cJSON_GetObjectItem(o, "batch")->valuedouble == 64);
    assert_true(cJSON_GetObjectItem(o, "lr")->valuedouble == (double)0.05f);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(o, "loss")));
    assert_true(cJSON_GetObjectItem(o, "grad_norm")->valuedouble == 1e-300);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(o, "overlap")));
    assert_true(cJSON_GetObjectItem(o, "peak_mem_bytes")->valuedouble == 123456789);
    assert_true(cJSON_GetObjectItem(o, "noise_trace")->valuedouble == 3e20);
    assert_true(cJSON_GetObjectItem(o, "noise_scale")->valuedouble == 1.0 / 3);
    assert_non_null(cJSON_GetObjectItem(o, "comm_time_s"));
    assert_null(cJSON_GetObjectItem(o, "overlap_ratio")); /* only on the deciding step */
    cJSON_Delete(o);
    tu_rmtree(dir);
}

/* A test that failed half-way must not leave a fault armed for the next one. */
static int disarm(void **state) {
    bl_fault_alloc_arm(0);
    bl_fault_write_arm(0, 0);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(sweep_files_under_allocation_faults, disarm),
        cmocka_unit_test_teardown(sweep_plots_never_drop_a_series, disarm),
        cmocka_unit_test_teardown(csv_load_under_allocation_faults, disarm),
        cmocka_unit_test_teardown(atomic_write_under_write_faults, disarm),
        cmocka_unit_test_teardown(runlog_cuts_a_torn_record_back, disarm),
        cmocka_unit_test_teardown(runlog_step_allocates_nothing, disarm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
