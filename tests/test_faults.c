/* Fault injection, SQLite-style, through the CLI (core/fault.h): every heap
 * allocation and every file write of a command is made to fail in turn, one
 * run per allocation (write), and every run must end cleanly.
 *
 *   test_faults alloc   train (with --log, --save, --report), info, eval, noise, predict,
 *                       load --bare and serve start-up, N = 1 .. every allocation;
 *   test_faults write   train, a sweep, a tune and serve's --port-file, N = 1 .. every
 *                       write and fsync, failing with ENOSPC; and with EIO, a short write
 *                       and a disk that fills mid-write, every write of train and serve
 *                       but every 2nd to 8th of the longer sweep and tune (see there).
 *
 * A run passes when it either succeeds with every output complete, or exits with a
 * status in 1..127 (no signal, no abort, no hang) and an error that names memory (an
 * allocation) or a file of its outputs (a write); and in both cases no output is torn:
 * no temporary file is left, every JSON Lines log parses line by line, every JSON file
 * parses, every checkpoint loads, every report and image is whole. A short write is not
 * an error: the run must succeed. Injected faults that a run absorbs (rc 0) are fine
 * for allocations (handled) but not for ENOSPC or EIO on a write (swallowed). */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <cjson/cJSON.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "batchlab/plot.h"
#include "batchlab/train.h"
#include "test_util.h"

#define SAMPLE BL_TEST_DATA_DIR "/fmnist-sample"
#define MODEL "flatten,dense:16,relu,dense:10"
#define RUN_TIMEOUT_S 60

static char g_work[256]; /* work dir: out/ (the outputs), ref/, stdout, stderr */
static char g_ckpt[512]; /* a checkpoint for eval, noise, predict, serve, load */

typedef struct run_result {
    int rc; /* exit status; -1: killed by a signal; -2: hung */
    int sig;
    unsigned long total, failed; /* from the fault report */
    int sanitizer;               /* a sanitizer reported something (leak, bad access) */
    char msg[1200];              /* the last line of stderr that is not the report */
} run_result;

static void path_in(char *buf, size_t cap, const char *a, const char *b) {
    snprintf(buf, cap, "%s/%s", a, b);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Reads the fault report and the last error line from the child's stderr. */
static void read_stderr(const char *file, const char *var, run_result *r) {
    FILE *f = fopen(file, "r");
    char line[2048];
    const char *key = strstr(var, "ALLOC") ? "allocations=" : "writes=";
    while (f && fgets(line, sizeof line, f)) {
        char *rep = strstr(line, "batchlab fault injection:");
        char *k = rep ? strstr(rep, key) : NULL;
        if (strstr(line, "Sanitizer") || strstr(line, "runtime error:")) r->sanitizer = 1;
        unsigned long at;
        if (k) {
            sscanf(k + strlen(key), "%lu failed=%lu", &r->total, &r->failed);
        } else if (rep && sscanf(strchr(rep, ':') + 1, " %*s %lu failed", &at) == 1) {
            r->failed = at; /* said when injected: a failing exit skips the report */
        } else if (!rep && !strncmp(line, "batchlab ", 9) && strstr(line, "error")) {
            line[strcspn(line, "\n")] = '\0';
            snprintf(r->msg, sizeof r->msg, "%.1100s", line);
        }
    }
    if (f) fclose(f);
}

/* Waits for pid up to timeout_s; returns 1 with *status, or 0 if it is still running. */
static int wait_for(pid_t pid, double timeout_s, int *status) {
    double end = now_s() + timeout_s;
    while (now_s() < end) {
        if (waitpid(pid, status, WNOHANG) == pid) return 1;
        usleep(2000);
    }
    return 0;
}

/* Runs the CLI with var=val. serve: wait for out/port (or an exit), then SIGTERM. */
static void run_cli(char *const argv[], const char *var, const char *val, int serve,
                    run_result *r) {
    char err_file[512], out_file[512], port[512];
    path_in(err_file, sizeof err_file, g_work, "stderr");
    path_in(out_file, sizeof out_file, g_work, "stdout");
    path_in(port, sizeof port, g_work, "out/port");
    memset(r, 0, sizeof *r);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int out = open(out_file, O_WRONLY | O_CREAT | O_TRUNC, 0644),
            err = open(err_file, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(out, 1), dup2(err, 2);
        setenv(var, val, 1);
        if (serve) unsetenv("OPENBLAS_NUM_THREADS"); /* its threads started before main */
        execv(BL_CLI_PATH, argv);
        _exit(127);
    }
    int status = 0, done = 0;
    if (serve) {
        double end = now_s() + RUN_TIMEOUT_S;
        struct stat sb;
        while (!done && now_s() < end && !(stat(port, &sb) == 0 && sb.st_size > 0)) {
            done = waitpid(pid, &status, WNOHANG) == pid;
            if (!done) usleep(2000);
        }
        if (!done) kill(pid, SIGTERM); /* started: stop it at once */
    }
    if (!done) done = wait_for(pid, RUN_TIMEOUT_S, &status);
    if (!done) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        r->rc = -2;
    } else if (WIFSIGNALED(status)) {
        r->rc = -1;
        r->sig = WTERMSIG(status);
    } else {
        r->rc = WEXITSTATUS(status);
    }
    read_stderr(err_file, var, r);
}

/* ---- output checks -------------------------------------------------------------- */

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)len + 1);
    *n = b ? fread(b, 1, (size_t)len, f) : 0;
    if (b) b[*n] = '\0';
    fclose(f);
    return b;
}

static int jsonl_ok(char *s, size_t n) {
    if (n && s[n - 1] != '\n') return 0;
    for (char *line = s; *line;) {
        char *nl = strchr(line, '\n');
        *nl = '\0';
        cJSON *o = cJSON_Parse(line);
        int ok = cJSON_IsObject(o);
        cJSON_Delete(o);
        if (!ok) return 0;
        line = nl + 1;
    }
    return 1;
}

static int checkpoint_ok(const char *path) {
    bl_ctx ctx;
    bl_ctx_init(&ctx, 1);
    bl_model *m = NULL;
    bl_norm norm = {0};
    bl_error err = {0};
    int ok = bl_checkpoint_load_model(&m, &norm, &ctx, path, 1, &err) == BL_OK;
    bl_model_free(m);
    if (ok) bl_norm_free(&norm, &ctx.mem);
    bl_ctx_free(&ctx);
    return ok;
}

/* Is this output whole? Returns NULL, or what is wrong. */
static const char *file_problem(const char *path, const char *name) {
    static const unsigned char iend[8] = {'I', 'E', 'N', 'D', 0xae, 0x42, 0x60, 0x82};
    if (strstr(name, ".tmp.")) return "a temporary file was left behind";
    if (ends_with(name, ".safetensors")) return checkpoint_ok(path) ? NULL : "does not load";
    size_t n = 0;
    char *s = slurp(path, &n);
    if (!s) return "cannot be read";
    const char *bad = NULL;
    if (ends_with(name, ".jsonl") || ends_with(name, ".jsonl.part")) {
        if (!jsonl_ok(s, n)) bad = "a line is not a JSON object";
    } else if (ends_with(name, ".json")) {
        cJSON *o = cJSON_Parse(s);
        if (!o) bad = "is not JSON";
        cJSON_Delete(o);
    } else if (ends_with(name, ".html")) {
        if (!ends_with(s, "</html>\n")) bad = "is not a whole HTML page";
    } else if (ends_with(name, ".svg")) {
        if (!strstr(s, "</svg>")) bad = "is not a whole SVG";
    } else if (ends_with(name, ".png")) {
        if (n < 12 || memcmp(s + n - 8, iend, 8)) bad = "is not a whole PNG";
    } else if (ends_with(name, ".md") || ends_with(name, ".csv") || !strcmp(name, "port")) {
        if (n == 0 || s[n - 1] != '\n') bad = "does not end with a whole line";
    }
    free(s);
    return bad;
}

/* Checks every file under dir; describes the first problem in why. */
static int outputs_ok(const char *dir, char *why, size_t cap) {
    DIR *d = opendir(dir);
    if (!d) return 1;
    struct dirent *e;
    int ok = 1;
    while (ok && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char p[1024];
        path_in(p, sizeof p, dir, e->d_name);
        struct stat sb;
        if (lstat(p, &sb) != 0) continue;
        if (S_ISDIR(sb.st_mode)) {
            ok = outputs_ok(p, why, cap);
        } else {
            const char *bad = file_problem(p, e->d_name);
            if (bad) snprintf(why, cap, "%s: %s", p, bad), ok = 0;
        }
    }
    closedir(d);
    return ok;
}

/* ---- the walk --------------------------------------------------------------------- */

typedef struct walk_spec {
    const char *what;
    char *const *argv;
    int serve;
    const char *const *expect; /* outputs a successful run must have (under out/) */
    int keep_old;              /* run each N over the complete outputs of an earlier run */
    int same_json;             /* a successful run prints the JSON the fault-free run did */
    const char *log;           /* a successful run logs the records (keys) it did */
} walk_spec;

static cJSON *g_ref_json; /* what the fault-free run printed (same_json) */
static char *g_ref_keys;  /* the keys of each record the fault-free run logged */

/* The keys of every record of a JSON Lines file, one line per record ("" if absent). */
static char *jsonl_keys(const char *path) {
    size_t n = 0, cap = 1 << 16, len = 0;
    char *s = slurp(path, &n), *keys = calloc(1, cap);
    for (char *line = s; s && *line && len + 512 < cap;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        cJSON *o = cJSON_Parse(line), *it;
        cJSON_ArrayForEach(it, o) len += (size_t)snprintf(keys + len, cap - len, "%s,", it->string);
        len += (size_t)snprintf(keys + len, cap - len, "\n");
        cJSON_Delete(o);
        line = nl ? nl + 1 : line + strlen(line);
    }
    free(s);
    return keys;
}

/* stdout as JSON, without what changes from run to run (timings, memory peaks). */
static cJSON *stdout_json(void) {
    char path[512];
    size_t n;
    path_in(path, sizeof path, g_work, "stdout");
    char *s = slurp(path, &n);
    cJSON *j = s ? cJSON_Parse(s) : NULL;
    free(s);
    const char *volatile_keys[] = {"seconds", "wall_s", "samples_per_s", "peak_mem_bytes"};
    for (size_t i = 0; j && i < sizeof volatile_keys / sizeof *volatile_keys; i++)
        cJSON_DeleteItemFromObject(j, volatile_keys[i]);
    return j;
}

static void reset_out(const walk_spec *w) {
    char cmd[1200];
    if (w->keep_old)
        snprintf(cmd, sizeof cmd, "rm -rf '%s/out' && cp -a '%s/ref' '%s/out'", g_work, g_work,
                 g_work);
    else
        snprintf(cmd, sizeof cmd, "rm -rf '%s/out' && mkdir '%s/out'", g_work, g_work);
    assert_int_equal(system(cmd), 0);
}

/* One verdict; returns 1 when the run is as it must be, else describes it in why. */
static int judge(const walk_spec *w, const char *mode, const run_result *r, char *why, size_t cap) {
    int alloc = !strcmp(mode, "alloc"), shortw = !strcmp(mode, "short");
    char out[600];
    path_in(out, sizeof out, g_work, "out");
    if (r->rc == -2) return snprintf(why, cap, "hung (killed after %d s)", RUN_TIMEOUT_S), 0;
    if (r->rc == -1) return snprintf(why, cap, "died on signal %d", r->sig), 0;
    if (r->rc >= 128) return snprintf(why, cap, "exit status %d", r->rc), 0;
    if (r->sanitizer) return snprintf(why, cap, "a sanitizer reported an error (see stderr)"), 0;
    if (!outputs_ok(out, why, cap)) return 0;
    if (r->rc == 0) {
        if (r->failed && !alloc && !shortw)
            return snprintf(why, cap, "exit 0: the failed write was swallowed"), 0;
        for (const char *const *e = w->expect; e && *e; e++) {
            char p[1024];
            path_in(p, sizeof p, out, *e);
            if (!tu_file_exists(p)) return snprintf(why, cap, "exit 0 without %s", *e), 0;
        }
        if (w->same_json && g_ref_json) {
            cJSON *j = stdout_json();
            int same = j && cJSON_Compare(j, g_ref_json, 1);
            cJSON_Delete(j);
            if (!same) return snprintf(why, cap, "exit 0, but the result printed differs"), 0;
        }
        if (w->log && g_ref_keys) {
            char p[1024];
            path_in(p, sizeof p, out, w->log);
            char *keys = jsonl_keys(p);
            int same = !strcmp(keys, g_ref_keys);
            free(keys);
            if (!same) return snprintf(why, cap, "exit 0, but a log record lacks a field"), 0;
        }
        return 1;
    }
    if (shortw) return snprintf(why, cap, "a short write failed the run: %s", r->msg), 0;
    if (alloc && !strcasestr(r->msg, "memory"))
        return snprintf(why, cap, "exit %d, no word of memory: %s", r->rc, r->msg), 0;
    if (!alloc && !strstr(r->msg, g_work))
        return snprintf(why, cap, "exit %d, the file is not named: %s", r->rc, r->msg), 0;
    return 1;
}

/* Walks N over every allocation (mode "alloc") or write ("enospc", "eio", "short") of
 * w's command, every step-th one. */
static void walk(const walk_spec *w, const char *mode, unsigned long step) {
    const char *var = !strcmp(mode, "alloc") ? "BATCHLAB_FAULT_ALLOC" : "BATCHLAB_FAULT_WRITE";
    char why[1500], val[64];
    run_result r;
    reset_out(&(walk_spec){.keep_old = 0});
    double t0 = now_s();
    run_cli(w->argv, var, "count", w->serve, &r);
    if (!judge(w, "alloc", &r, why, sizeof why) || r.rc != 0 || r.total == 0)
        fail_msg("%s: the run without a fault failed (exit %d, %lu counted): %s / %s", w->what,
                 r.rc, r.total, why, r.msg);
    cJSON_Delete(g_ref_json);
    g_ref_json = w->same_json ? stdout_json() : NULL;
    if (w->same_json && !g_ref_json) fail_msg("%s: the fault-free run printed no JSON", w->what);
    free(g_ref_keys);
    g_ref_keys = NULL;
    if (w->log) {
        char p[1024];
        snprintf(p, sizeof p, "%s/out/%s", g_work, w->log);
        g_ref_keys = jsonl_keys(p);
    }
    if (w->keep_old) {
        char cmd[1200];
        snprintf(cmd, sizeof cmd, "rm -rf '%s/ref' && mv '%s/out' '%s/ref'", g_work, g_work,
                 g_work);
        assert_int_equal(system(cmd), 0);
    }
    unsigned long total = r.total, bad = 0, runs = 0, reached = 0, errors = 0;
    for (unsigned long n = 1; n <= total; n += step) {
        reset_out(w);
        if (!strcmp(mode, "alloc") || !strcmp(mode, "enospc"))
            snprintf(val, sizeof val, "%lu", n);
        else
            snprintf(val, sizeof val, "%lu:%s", n, mode);
        run_cli(w->argv, var, val, w->serve, &r);
        runs++;
        reached += r.failed != 0;
        errors += r.rc != 0;
        if (!judge(w, mode, &r, why, sizeof why) && bad++ < 8)
            print_message("FAIL %s, %s fault at %lu of %lu: %s\n", w->what, mode, n, total, why);
    }
    print_message("%-8s %-6s %lu %s counted, %lu runs (%lu reached, %lu failed cleanly), %.1f s\n",
                  w->what, mode, total, !strcmp(mode, "alloc") ? "allocations" : "writes", runs,
                  reached, errors, now_s() - t0);
    cJSON_Delete(g_ref_json);
    g_ref_json = NULL;
    free(g_ref_keys);
    g_ref_keys = NULL;
    if (bad) fail_msg("%s: %lu of %lu %s-fault runs went wrong", w->what, bad, runs, mode);
}

/* ---- the commands ------------------------------------------------------------------- */

#define OUT(f) g_out_##f
static char OUT(log)[600], OUT(save)[600], OUT(rep)[600], OUT(port)[600], OUT(dir)[600],
    OUT(pred)[600];
static char *g_train[32], *g_info[8], *g_eval[16], *g_noise[20], *g_predict[16], *g_serve[12],
    *g_load[24], *g_sweep[40], *g_tune[32];
static const char *const train_outputs[] = {"run.jsonl", "m.safetensors", "rep/report.md",
                                            "rep/report.html", NULL};
static const char *const port_output[] = {"port", NULL};

static void set_argv(char **dst, ...) {
    va_list ap;
    va_start(ap, dst);
    int i = 0;
    for (char *a; (a = va_arg(ap, char *));)
        dst[i++] = a;
    dst[i] = NULL;
    va_end(ap);
}

static int setup(void **state) {
    const char *w = tu_tmpdir();
    assert_non_null(w);
    snprintf(g_work, sizeof g_work, "%s", w);
    path_in(g_ckpt, sizeof g_ckpt, g_work, "m0.safetensors");
    snprintf(OUT(log), sizeof OUT(log), "%s/out/run.jsonl", g_work);
    snprintf(OUT(save), sizeof OUT(save), "%s/out/m.safetensors", g_work);
    snprintf(OUT(rep), sizeof OUT(rep), "%s/out/rep", g_work);
    snprintf(OUT(port), sizeof OUT(port), "%s/out/port", g_work);
    snprintf(OUT(dir), sizeof OUT(dir), "%s/out/s", g_work);
    snprintf(OUT(pred), sizeof OUT(pred), "%s/out/p.csv", g_work);
    char *bl = BL_CLI_PATH;
    set_argv(g_train, bl, "train", "--data", SAMPLE, "--model", MODEL, "--batch", "32", "--steps",
             "4", "--eval-every", "2", "--threads", "1", "--quiet", "--json", "--log", OUT(log),
             "--save", OUT(save), "--report", OUT(rep), NULL);
    set_argv(g_info, bl, "info", "--model", MODEL, "--batch", "32", NULL);
    set_argv(g_eval, bl, "eval", "--checkpoint", g_ckpt, "--data", SAMPLE, "--threads", "1",
             "--json", NULL);
    set_argv(g_noise, bl, "noise", "--checkpoint", g_ckpt, "--data", SAMPLE, "--small", "16",
             "--big", "128", "--draws", "8", "--bootstrap", "100", "--threads", "1", "--json",
             NULL);
    set_argv(g_predict, bl, "predict", "--checkpoint", g_ckpt, "--input",
             SAMPLE "/t10k-images-idx3-ubyte.gz", "--output", OUT(pred), "--threads", "1", "--json",
             NULL);
    set_argv(g_serve, bl, "serve", g_ckpt, "--port", "0", "--port-file", OUT(port), "--quiet",
             NULL);
    set_argv(g_load, bl, "load", "--bare", g_ckpt, "--rate", "2000", "--duration", "0.02",
             "--warmup", "0", "--json", NULL);
    set_argv(g_sweep, bl, "sweep", "--data", SAMPLE, "--model", MODEL, "--target-acc", "0.6",
             "--max-epochs", "10", "--eval-every-samples", "128", "--noise-draws", "8",
             "--noise-small", "16", "--noise-big", "128", "--threads", "1", "--batches", "32,64",
             "--lr-grid", "1", "--quiet", "--out", OUT(dir), NULL);
    set_argv(g_tune, bl, "tune", "--data", SAMPLE, "--model", MODEL, "--batches", "16,32", "--lrs",
             "0.02,0.1", "--min-examples", "100", "--max-examples", "300", "--eta", "2",
             "--threads", "1", "--out", OUT(dir), NULL);
    /* The checkpoint the other commands read: a train run's, outside out/. */
    char cmd[1200], msg[4096];
    snprintf(cmd, sizeof cmd,
             "'%s' train --data '%s' --model '%s' --steps 4 --threads 1 --quiet --save '%s'", bl,
             SAMPLE, MODEL, g_ckpt);
    assert_int_equal(tu_run(cmd, msg, sizeof msg), 0);
    *state = NULL;
    return 0;
}

static int teardown(void **state) {
    tu_rmtree(g_work);
    return 0;
}

static void alloc_train(void **state) {
    walk(&(walk_spec){.what = "train",
                      .argv = g_train,
                      .expect = train_outputs,
                      .same_json = 1,
                      .log = "run.jsonl"},
         "alloc", 1);
}

static void alloc_info(void **state) { /* the text it prints is read back from JSON */
    walk(&(walk_spec){.what = "info", .argv = g_info}, "alloc", 1);
}

static void alloc_eval(void **state) {
    walk(&(walk_spec){.what = "eval", .argv = g_eval, .same_json = 1}, "alloc", 1);
}

static void alloc_noise(void **state) {
    walk(&(walk_spec){.what = "noise", .argv = g_noise, .same_json = 1}, "alloc", 1);
}

static void alloc_predict(void **state) {
    static const char *const out[] = {"p.csv", NULL};
    walk(&(walk_spec){.what = "predict", .argv = g_predict, .expect = out, .same_json = 1}, "alloc",
         1);
}

static void alloc_load_bare(void **state) {
    walk(&(walk_spec){.what = "load", .argv = g_load}, "alloc", 1);
}

static void alloc_serve(void **state) {
    walk(&(walk_spec){.what = "serve", .argv = g_serve, .serve = 1, .expect = port_output}, "alloc",
         1);
}

static void write_train(void **state) {
    const walk_spec w = {.what = "train",
                         .argv = g_train,
                         .expect = train_outputs,
                         .keep_old = 1,
                         .log = "run.jsonl"};
    walk(&w, "enospc", 1);
    walk(&w, "eio", 1);
    walk(&w, "short", 1);
    walk(&w, "full", 1);
}

static void write_sweep(void **state) {
    static const char *const out[] = {"s/results.csv", "s/results.json", "s/report.html", NULL};
    const walk_spec w = {.what = "sweep", .argv = g_sweep, .expect = out};
    walk(&w, "enospc", 1);
    walk(&w, "eio", 4);
    walk(&w, "full", 4);
    walk(&w, "short", 8); /* a run that succeeds is the slowest: every 8th write */
}

static void write_tune(void **state) {
    static const char *const out[] = {"s/results.csv", "s/results.json", "s/tune.json", NULL};
    const walk_spec w = {.what = "tune", .argv = g_tune, .expect = out};
    walk(&w, "enospc", 1);
    walk(&w, "eio", 2);
    walk(&w, "full", 3);
    walk(&w, "short", 4);
}

static void write_serve(void **state) {
    const walk_spec w = {.what = "serve", .argv = g_serve, .serve = 1, .expect = port_output};
    walk(&w, "enospc", 1);
    walk(&w, "eio", 1);
    walk(&w, "short", 1);
    walk(&w, "full", 1);
}

int main(int argc, char **argv) {
    const struct CMUnitTest alloc[] = {
        cmocka_unit_test(alloc_train),   cmocka_unit_test(alloc_info),
        cmocka_unit_test(alloc_eval),    cmocka_unit_test(alloc_noise),
        cmocka_unit_test(alloc_predict), cmocka_unit_test(alloc_load_bare),
        cmocka_unit_test(alloc_serve),
    };
    const struct CMUnitTest write[] = {
        cmocka_unit_test(write_train),
        cmocka_unit_test(write_sweep),
        cmocka_unit_test(write_tune),
        cmocka_unit_test(write_serve),
    };
    const char *part = argc > 1 ? argv[1] : "all";
    if (argc > 2) cmocka_set_test_filter(argv[2]); /* e.g. "alloc_train", "write_*" */
    int rc = 0;
    if (strcmp(part, "write"))
        rc |= cmocka_run_group_tests_name("faults_alloc", alloc, setup, teardown);
    if (strcmp(part, "alloc"))
        rc |= cmocka_run_group_tests_name("faults_write", write, setup, teardown);
    return rc;
}
