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
