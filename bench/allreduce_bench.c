/* Allreduce time against message size, through the same bl_dist calls the
 * trainer uses. Prints CSV: ranks,bytes,median_s,min_s.
 * Build: part of the CMake build when MPI is found (target bench_allreduce).
 * Run:   mpirun --allow-run-as-root -np 2 build/bench_allreduce */
#include <stdio.h>
#include <stdlib.h>
#include "batchlab/core.h"
#include "batchlab/dist.h"

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(void) {
    bl_dist *d;
    bl_error err = {0};
    if (bl_dist_init(&d, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    int rank = bl_dist_rank(d), size = bl_dist_size(d);
    size_t max_floats = (size_t)16 << 20; /* 64 MiB */
    float *buf = calloc(max_floats, sizeof(float));
    if (!buf) return 1;
    if (rank == 0) printf("ranks,bytes,median_s,min_s\n");
    for (size_t n = 256; n <= max_floats; n *= 4) {
        enum { REPS = 21 };
        double t[REPS];
        for (int w = 0; w < 3; w++)
            bl_dist_allreduce_f32(d, buf, n, &err);
        for (int r = 0; r < REPS; r++) {
            double t0 = bl_now_sec();
            bl_dist_allreduce_f32(d, buf, n, &err);
            t[r] = bl_now_sec() - t0;
        }
        double mx[REPS];
        for (int r = 0; r < REPS; r++)
            mx[r] = t[r];
        qsort(mx, REPS, sizeof(double), cmp);
        if (rank == 0) printf("%d,%zu,%.9f,%.9f\n", size, n * sizeof(float), mx[REPS / 2], mx[0]);
        fflush(stdout);
    }
    free(buf);
    bl_dist_finalize(d);
    return 0;
}
