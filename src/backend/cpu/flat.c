/* Helpers over flat arrays (the parameter, gradient and optimizer arenas).
 *
 * Plain loops over restrict pointers that the compiler vectorises. The sum of
 * squares feeds gradient-norm clipping and the noise-scale estimator, so it
 * accumulates in double; eight independent accumulators keep it vectorised
 * without -ffast-math (a single running sum is a serial dependency that the
 * compiler may not reorder). all_finite looks at exponent bits rather than
 * comparing floats, so it stays right even under -ffinite-math-only. */
#include <string.h>
#include "backend/cpu/cpu.h"

double cpu_sumsq(const float *x, size_t n) {
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

void cpu_scale(float *x, size_t n, float a) {
    float *restrict v = x;
    for (size_t i = 0; i < n; i++)
        v[i] *= a;
}

void cpu_axpy(float *y, const float *x, size_t n, float a) {
    float *restrict yy = y;
    const float *restrict xx = x;
    for (size_t i = 0; i < n; i++)
        yy[i] += a * xx[i];
}

void cpu_fill(float *x, size_t n, float v) {
    float *restrict o = x;
    for (size_t i = 0; i < n; i++)
        o[i] = v;
}

void cpu_copy(float *dst, const float *src, size_t n) {
    if (n && dst != src) memmove(dst, src, n * sizeof *dst);
}

int cpu_all_finite(const float *x, size_t n) {
    const size_t chunk = 1024; /* vectorised inner loop, early exit between chunks */
    for (size_t i0 = 0; i0 < n; i0 += chunk) {
        const size_t end = n - i0 < chunk ? n : i0 + chunk;
        unsigned bad = 0;
        for (size_t i = i0; i < end; i++) {
            uint32_t bits;
            memcpy(&bits, &x[i], sizeof bits);
            bad |= (bits & 0x7f800000u) == 0x7f800000u;
        }
        if (bad) return 0;
    }
    return 1;
}
