#define _GNU_SOURCE
#include <zlib.h>
#include "test_util.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "batchlab/core.h"
#include "batchlab/data.h"

const char *tu_tmpdir(void) {
    static char bufs[8][256];
    static int slot;
    char *b = bufs[slot++ % 8];
    snprintf(b, 256, "/tmp/bltest.XXXXXX");
    if (!mkdtemp(b)) return NULL;
    return b;
}

void tu_rmtree(const char *dir) {
    char cmd[512];
    if (!dir || strncmp(dir, "/tmp/bltest.", 12) != 0) return;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", dir);
}

int tu_run(const char *cmd, char *out, size_t cap) {
    char full[8192];
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    FILE *p = popen(full, "r");
    if (!p) return -2;
    size_t n = 0;
    if (out && cap) {
        size_t r;
        while (n + 1 < cap && (r = fread(out + n, 1, cap - 1 - n, p)) > 0)
            n += r;
        out[n] = '\0';
    }
    char sink[4096];
    while (fread(sink, 1, sizeof sink, p) > 0) {
    }
    int st = pclose(p);
    if (WIFSIGNALED(st)) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

double tu_max_rel_err(const float *a, const float *b, size_t n, double atol, double rtol) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        double e = d / (atol + rtol * fabs((double)b[i]));
        if (!(e <= worst)) worst = e; /* NaN propagates as failure */
    }
    return worst;
}

void tu_fill_normal(float *x, size_t n, uint64_t seed, float sd) {
    bl_rng r;
    bl_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++)
        x[i] = sd * bl_rng_normal(&r);
}

float *tu_frand(size_t n, uint64_t seed) {
    float *x = calloc(n ? n : 1, sizeof(float));
    if (!x) abort();
    tu_fill_normal(x, n, seed, 1.0f);
    return x;
}

double *tu_dnew(size_t n) {
    double *d = calloc(n ? n : 1, sizeof(double));
    if (!d) abort();
    return d;
}

double *tu_todouble(const float *x, size_t n) {
    double *d = tu_dnew(n);
    for (size_t i = 0; i < n; i++)
        d[i] = x[i];
    return d;
}

double tu_close_err(const float *got, const double *want, size_t n, double atol, double rtol,
                    const char *what) {
    double scale = 1.0, worst = 0.0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++)
        scale = fmax(scale, fabs(want[i]));
    for (size_t i = 0; i < n; i++) {
        double e = fabs(got[i] - want[i]) / (atol * scale + rtol * fabs(want[i]));
        if (!(e <= worst)) {
            worst = e;
            at = i;
        }
    }
    if (!(worst <= 1.0))
        fprintf(stderr, "%s: worst at %zu: got %.8g want %.8g (err %.3g)\n", what, at,
                n ? got[at] : 0.0, n ? want[at] : 0.0, worst);
    return worst;
}

int tu_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

const char *tu_join(const char *dir, const char *name) {
    static char path[8][4096];
    static int slot;
    char *b = path[slot++ % 8];
    snprintf(b, 4096, "%s/%s", dir, name);
    return b;
}

void tu_write_file(const char *path, const void *data, size_t n, int gz) {
    int ok;
    if (gz) {
        gzFile f = gzopen(path, "wb9");
        ok = f && (n == 0 || gzwrite(f, data, (unsigned)n) == (int)n);
        ok = f && gzclose(f) == Z_OK && ok;
    } else {
        FILE *f = fopen(path, "wb");
        ok = f && (n == 0 || fwrite(data, 1, n, f) == n);
        ok = f && fclose(f) == 0 && ok;
    }
    if (!ok) {
        fprintf(stderr, "test fixture: cannot write %s\n", path);
        abort();
    }
}

/* ---- models ---------------------------------------------------------------- */
static void tu_check(bl_status st, const bl_error *err, const char *what) {
    if (st == BL_OK) return;
    fprintf(stderr, "%s: %s\n", what, err->msg);
    abort();
}

static size_t arena_floats(const bl_model *m, bl_arena a) {
    return a == BL_ARENA_BUFFERS ? bl_model_num_buffers(m) : bl_model_num_params(m);
}

float *tu_arena(bl_model *m, bl_arena a) {
    bl_error err = {0};
    size_t n = arena_floats(m, a);
    float *host = malloc((n ? n : 1) * sizeof *host);
    if (!host) abort();
    tu_check(bl_model_read(m, a, 0, n, host, &err), &err, "bl_model_read");
    return host;
}

void tu_arena_set(bl_model *m, bl_arena a, const float *host, size_t n) {
    bl_error err = {0};
    tu_check(bl_model_write(m, a, 0, n, host, &err), &err, "bl_model_write");
}

void tu_forward(bl_model *m, const float *x, int B, int train, float *out) {
    bl_error err = {0};
    tu_check(bl_model_forward(m, x, B, train, &err), &err, "bl_model_forward");
    if (out) tu_check(bl_model_output(m, out, &err), &err, "bl_model_output");
}

double tu_loss(bl_model *m, const int32_t *labels, bl_loss_kind loss, int *correct) {
    bl_error err = {0};
    double sum = 0;
    tu_check(bl_model_loss(m, labels, loss, &sum, correct, &err), &err, "bl_model_loss");
    return sum;
}

double tu_step(bl_model *m, const float *x, const int32_t *labels, int B, bl_loss_kind loss,
               float scale, int *correct) {
    bl_error err = {0};
    tu_forward(m, x, B, 1, NULL);
    double sum = tu_loss(m, labels, loss, correct);
    tu_check(bl_model_backward(m, scale, &err), &err, "bl_model_backward");
    return sum;
}

void tu_init(bl_model *m, uint64_t seed) {
    bl_error err = {0};
    tu_check(bl_model_init(m, seed, &err), &err, "bl_model_init");
}

void tu_zero_grad(bl_model *m) {
    bl_error err = {0};
    tu_check(bl_model_zero_grad(m, &err), &err, "bl_model_zero_grad");
}

int tu_arena_is(bl_model *m, bl_arena arena, const float *host) {
    float *x = tu_arena(m, arena);
    int same = memcmp(x, host, arena_floats(m, arena) * sizeof *x) == 0;
    free(x);
    return same;
}

int tu_arena_equal(bl_model *a, bl_model *b, bl_arena arena) {
    if (arena_floats(a, arena) != arena_floats(b, arena)) return 0;
    float *x = tu_arena(a, arena);
    int same = tu_arena_is(b, arena, x);
    free(x);
    return same;
}

float tu_arena_get1(bl_model *m, bl_arena arena, size_t i) {
    bl_error err = {0};
    float v;
    tu_check(bl_model_read(m, arena, i, 1, &v, &err), &err, "bl_model_read");
    return v;
}

void tu_arena_set1(bl_model *m, bl_arena arena, size_t i, float v) {
    bl_error err = {0};
    tu_check(bl_model_write(m, arena, i, 1, &v, &err), &err, "bl_model_write");
}

int tu_load_sample(bl_ctx *ctx, bl_dataset *train, bl_dataset *test) {
    bl_error err = {0};
    bl_dataset t = {0};
    bl_norm nm;
    bl_ctx_init(ctx, 1);
    if (bl_dataset_load_fashion_mnist(train, &t, &ctx->mem, BL_TEST_DATA_DIR "/fmnist-sample",
                                      &err) ||
        bl_norm_fit(&nm, &ctx->mem, train, BL_NORM_UNIT, &err)) {
        fprintf(stderr, "the Fashion-MNIST sample: %s\n", err.msg);
        return -1;
    }
    bl_norm_apply(&nm, train);
    bl_norm_apply(&nm, &t);
    bl_norm_free(&nm, &ctx->mem);
    if (test)
        *test = t;
    else
        bl_dataset_free(&t, &ctx->mem);
    return 0;
}

int tu_free_sample(bl_ctx *ctx, bl_dataset *train, bl_dataset *test) {
    bl_dataset_free(train, &ctx->mem);
    if (test) bl_dataset_free(test, &ctx->mem);
    bl_ctx_free(ctx);
    return 0;
}
