/* Helpers over flat arrays (the parameter, gradient and optimizer arenas).
 *
 * Plain loops over restrict pointers that the compiler vectorises. The sum of
 * squares feeds gradient-norm clipping and the noise-scale estimator, so it
 * accumulates in double; eight independent accumulators keep it vectorised
 * without -ffast-math (a single running sum is a serial dependency that the
 * compiler may not reorder). all_finite looks at exponent bits rather than
 * comparing floats, so it stays right even under -ffinite-math-only.
 *
 * Long arrays are split across the fork-join pool (par.c). The sum of squares
 * is cut into blocks whose size depends on n alone, summed block by block in
 * order, so it gives the same double for any thread count. */
#include <stdatomic.h>
#include <string.h>
#include "backend/cpu/cpu.h"

#define FLAT_PAR_MIN 32768 /* floats per thread below which a pass stays serial */
#define SUMSQ_BLOCK 65536  /* floats per partial sum (more for huge arrays) */
#define SUMSQ_MAX_BLOCKS 4096

typedef struct {
    float *y;
    const float *x;
    float a;
    double *partial;
    size_t block, n;
    atomic_int bad;
} flat_arg;

static double sumsq_serial(const float *x, size_t n) {
    const float *restrict v = x;
    double acc[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++)
            acc[j] += (double)v[i + j] * v[i + j];
    double s = 0;
    for (; i < n; i++)
        s += (double)v[i] * v[i];
    for (int j = 0; j < 8; j++)
        s += acc[j];
    return s;
}

static void sumsq_blocks(void *p, size_t lo, size_t hi) {
    flat_arg *a = p;
    for (size_t b = lo; b < hi; b++) {
        size_t i0 = b * a->block, len = a->n - i0 < a->block ? a->n - i0 : a->block;
        a->partial[b] = sumsq_serial(a->x + i0, len);
    }
}

double cpu_sumsq(bl_cpu_pool *pool, const float *x, size_t n) {
    if (n <= SUMSQ_BLOCK) return sumsq_serial(x, n);
    double partial[SUMSQ_MAX_BLOCKS];
    size_t block = SUMSQ_BLOCK;
    if ((n + block - 1) / block > SUMSQ_MAX_BLOCKS)
        block = (n + SUMSQ_MAX_BLOCKS - 1) / SUMSQ_MAX_BLOCKS;
    flat_arg a = {.x = x, .partial = partial, .block = block, .n = n};
    size_t blocks = (n + block - 1) / block;
    cpu_par_for(pool, blocks, 1, (FLAT_PAR_MIN + block - 1) / block, sumsq_blocks, &a);
    double s = 0;
    for (size_t b = 0; b < blocks; b++)
        s += partial[b];
    return s;
}

static void scale_slice(void *p, size_t lo, size_t hi) {
    const flat_arg *a = p;
    float *restrict v = a->y;
    for (size_t i = lo; i < hi; i++)
        v[i] *= a->a;
}

void cpu_scale(bl_cpu_pool *pool, float *x, size_t n, float a) {
    flat_arg f = {.y = x, .a = a};
    cpu_par_for(pool, n, 16, FLAT_PAR_MIN, scale_slice, &f);
}

static void axpy_slice(void *p, size_t lo, size_t hi) {
    const flat_arg *a = p;
    float *restrict yy = a->y;
    const float *restrict xx = a->x;
    for (size_t i = lo; i < hi; i++)
        yy[i] += a->a * xx[i];
}

void cpu_axpy(bl_cpu_pool *pool, float *y, const float *x, size_t n, float a) {
    flat_arg f = {.y = y, .x = x, .a = a};
    cpu_par_for(pool, n, 16, FLAT_PAR_MIN, axpy_slice, &f);
}

static void fill_slice(void *p, size_t lo, size_t hi) {
    const flat_arg *a = p;
    float *restrict o = a->y;
    if (a->a == 0.0f) { /* +0.0 only: memset writes the bits of +0.0 */
        uint32_t bits;
        memcpy(&bits, &a->a, sizeof bits);
        if (bits == 0) {
            memset(o + lo, 0, (hi - lo) * sizeof *o);
            return;
        }
    }
    for (size_t i = lo; i < hi; i++)
        o[i] = a->a;
}

void cpu_fill(bl_cpu_pool *pool, float *x, size_t n, float v) {
    flat_arg f = {.y = x, .a = v};
    cpu_par_for(pool, n, 16, FLAT_PAR_MIN, fill_slice, &f);
}

void cpu_copy(bl_cpu_pool *pool, float *dst, const float *src, size_t n) {
    (void)pool; /* serial */
    if (n && dst != src) memmove(dst, src, n * sizeof *dst);
}

static void finite_slice(void *p, size_t lo, size_t hi) {
    flat_arg *a = p;
    const size_t chunk = 1024; /* vectorised inner loop, early exit between chunks */
    for (size_t i0 = lo; i0 < hi; i0 += chunk) {
        if (atomic_load_explicit(&a->bad, memory_order_relaxed)) return;
        const size_t end = hi - i0 < chunk ? hi : i0 + chunk;
        unsigned bad = 0;
        for (size_t i = i0; i < end; i++) {
            uint32_t bits;
            memcpy(&bits, &a->x[i], sizeof bits);
            bad |= (bits & 0x7f800000u) == 0x7f800000u;
        }
        if (bad) {
            atomic_store(&a->bad, 1);
            return;
        }
    }
}

int cpu_all_finite(bl_cpu_pool *pool, const float *x, size_t n) {
    flat_arg a = {.x = x};
    atomic_init(&a.bad, 0);
    cpu_par_for(pool, n, 1024, FLAT_PAR_MIN, finite_slice, &a);
    return !atomic_load(&a.bad);
}
