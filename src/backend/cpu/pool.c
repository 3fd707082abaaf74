/* Max and average pooling over square windows without padding (NCHW).
 *
 * Each (b, c) plane is independent and small (it fits in L1), so the kernels
 * walk plane by plane. Max pooling records the flat index h*W + w of the
 * winner inside its plane; ties keep the first maximum in row-major window
 * order (strict >), as torch does on CPU. Backward overwrites din: it is
 * zeroed and then every output gradient is added at its source, so
 * overlapping windows (stride < k) accumulate correctly. */
#include <string.h>
#include "backend/cpu/cpu.h"

/* Planes are independent, so they are split across the fork-join pool
 * (par.c); each plane is computed the same way whatever the split. */
typedef struct {
    float *out;
    int32_t *argmax;
    const float *in;
    const int32_t *am;
    const bl_pool_dims *d;
} pool_arg;

static size_t pool_min_planes(const bl_pool_dims *d) {
    size_t hw = (size_t)d->H * d->W;
    return hw ? 32768 / hw + 1 : 1;
}

#define POOL_PAR(name, call)                                                                       \
    static void name##_slice(void *p, size_t lo, size_t hi) {                                      \
        const pool_arg *a = p;                                                                     \
        call;                                                                                      \
    }

/* The common 2x2 window with stride 2. The generic loop cost 7.5% of a CNN
 * training step; rows are short (14 outputs in the CNN preset), too short
 * for the compiler's 16-wide loop, so with AVX-512 a row is done with masked
 * loads, two permutes to split even and odd columns, and three compare-and-
 * select steps. Same rule as the generic loop: the first maximum in
 * row-major order wins (strict >, false for NaN), a NaN in the first
 * position stays. */
#if defined(__AVX512F__)
#include <immintrin.h>
static void maxpool2_row(float *o, int32_t *am, const float *x0, const float *x1, int Q,
                         int32_t base, int32_t W) {
    const __m512i even =
        _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    for (int q = 0; q < Q; q += 16) {
        const int n = Q - q < 16 ? Q - q : 16, n2 = 2 * n;
        const __mmask16 m = (__mmask16)((1u << n) - 1);
        const __mmask16 mlo = (__mmask16)(n2 >= 16 ? 0xffffu : (1u << n2) - 1);
        const __mmask16 mhi = (__mmask16)(n2 > 16 ? (1u << (n2 - 16)) - 1 : 0);
        __m512 r0 = _mm512_maskz_loadu_ps(mlo, x0 + 2 * q);
        __m512 r1 = _mm512_maskz_loadu_ps(mhi, x0 + 2 * q + 16);
        __m512 s0 = _mm512_maskz_loadu_ps(mlo, x1 + 2 * q);
        __m512 s1 = _mm512_maskz_loadu_ps(mhi, x1 + 2 * q + 16);
        __m512 a = _mm512_permutex2var_ps(r0, even, r1), b = _mm512_permutex2var_ps(r0, odd, r1);
        __m512 c = _mm512_permutex2var_ps(s0, even, s1), e = _mm512_permutex2var_ps(s0, odd, s1);
        __m512i at = _mm512_add_epi32(_mm512_set1_epi32(base + 2 * q), even);
        __m512 v = a;
        __mmask16 k = _mm512_cmp_ps_mask(b, v, _CMP_GT_OQ);
        v = _mm512_mask_mov_ps(v, k, b);
        at = _mm512_mask_add_epi32(at, k, at, _mm512_set1_epi32(1));
        k = _mm512_cmp_ps_mask(c, v, _CMP_GT_OQ);
        v = _mm512_mask_mov_ps(v, k, c);
        __m512i at_c = _mm512_add_epi32(_mm512_set1_epi32(base + W + 2 * q), even);
        at = _mm512_mask_mov_epi32(at, k, at_c);
        k = _mm512_cmp_ps_mask(e, v, _CMP_GT_OQ);
        v = _mm512_mask_mov_ps(v, k, e);
        at = _mm512_mask_add_epi32(at, k, at_c, _mm512_set1_epi32(1));
        _mm512_mask_storeu_ps(o + q, m, v);
        _mm512_mask_storeu_epi32(am + q, m, at);
    }
}
#else
static void maxpool2_row(float *restrict o, int32_t *restrict am, const float *restrict x0,
                         const float *restrict x1, int Q, int32_t base, int32_t W) {
    for (int q = 0; q < Q; q++) {
        float a = x0[2 * q], b = x0[2 * q + 1], c = x1[2 * q], e = x1[2 * q + 1];
        float v = a;
        int32_t at = base + 2 * q;
        at = b > v ? base + 2 * q + 1 : at;
        v = b > v ? b : v;
        at = c > v ? base + W + 2 * q : at;
        v = c > v ? c : v;
        at = e > v ? base + W + 2 * q + 1 : at;
        v = e > v ? e : v;
        o[q] = v;
        am[q] = at;
    }
}
#endif

static void maxpool_forward_planes(float *out, int32_t *argmax, const float *in,
                                   const bl_pool_dims *d, size_t pl0, size_t pl1) {
    const int H = d->H, W = d->W, P = d->P, Q = d->Q, k = d->k, st = d->stride;
    if (k == 2 && st == 2) {
        for (size_t pl = pl0; pl < pl1; pl++) {
            const float *x = in + pl * H * W;
            for (int p = 0; p < P; p++)
                maxpool2_row(out + (pl * P + p) * Q, argmax + (pl * P + p) * Q,
                             x + (size_t)2 * p * W, x + (size_t)(2 * p + 1) * W, Q, 2 * p * W, W);
        }
        return;
    }
    for (size_t pl = pl0; pl < pl1; pl++) {
        const float *restrict x = in + pl * H * W;
        float *restrict o = out + pl * P * Q;
        int32_t *restrict am = argmax + pl * P * Q;
        for (int p = 0; p < P; p++)
            for (int q = 0; q < Q; q++) {
                int h0 = p * st, w0 = q * st;
                int best = h0 * W + w0;
                float bv = x[best];
                for (int i = 0; i < k; i++) {
                    const float *xr = x + (size_t)(h0 + i) * W + w0;
                    for (int j = 0; j < k; j++)
                        if (xr[j] > bv) {
                            bv = xr[j];
                            best = (h0 + i) * W + w0 + j;
                        }
                }
                o[p * Q + q] = bv;
                am[p * Q + q] = best;
            }
    }
}

static void maxpool_backward_planes(float *din, const float *dout, const int32_t *argmax,
                                    const bl_pool_dims *d, size_t pl0, size_t pl1) {
    const int HW = d->H * d->W, PQ = d->P * d->Q;
    memset(din + pl0 * HW, 0, (pl1 - pl0) * HW * sizeof *din);
    for (size_t pl = pl0; pl < pl1; pl++) {
        float *restrict g = din + pl * HW;
        const float *restrict go = dout + pl * PQ;
        const int32_t *restrict am = argmax + pl * PQ;
        for (int i = 0; i < PQ; i++) {
            int32_t a = am[i];
            if (a >= 0 && a < HW) g[a] += go[i]; /* a corrupt index is dropped, never written */
        }
    }
}

static void avgpool_forward_planes(float *out, const float *in, const bl_pool_dims *d, size_t pl0,
                                   size_t pl1) {
    const int H = d->H, W = d->W, P = d->P, Q = d->Q, k = d->k, st = d->stride;
    const float inv = 1.0f / (float)(k * k);
    for (size_t pl = pl0; pl < pl1; pl++) {
        const float *restrict x = in + pl * H * W;
        float *restrict o = out + pl * P * Q;
        for (int p = 0; p < P; p++)
            for (int q = 0; q < Q; q++) {
                const float *xw = x + (size_t)p * st * W + (size_t)q * st;
                float s = 0.0f;
                for (int i = 0; i < k; i++)
                    for (int j = 0; j < k; j++)
                        s += xw[(size_t)i * W + j];
                o[p * Q + q] = s * inv;
            }
    }
}

static void avgpool_backward_planes(float *din, const float *dout, const bl_pool_dims *d,
                                    size_t pl0, size_t pl1) {
    const int H = d->H, W = d->W, P = d->P, Q = d->Q, k = d->k, st = d->stride;
    const float inv = 1.0f / (float)(k * k);
    memset(din + pl0 * H * W, 0, (pl1 - pl0) * H * W * sizeof *din);
    for (size_t pl = pl0; pl < pl1; pl++) {
        float *restrict g = din + pl * H * W;
        const float *restrict go = dout + pl * P * Q;
        for (int p = 0; p < P; p++)
            for (int q = 0; q < Q; q++) {
                float v = go[p * Q + q] * inv;
                float *gw = g + (size_t)p * st * W + (size_t)q * st;
                for (int i = 0; i < k; i++)
                    for (int j = 0; j < k; j++)
                        gw[(size_t)i * W + j] += v;
            }
    }
}

POOL_PAR(maxf, maxpool_forward_planes(a->out, a->argmax, a->in, a->d, lo, hi))
POOL_PAR(maxb, maxpool_backward_planes(a->out, a->in, a->am, a->d, lo, hi))
POOL_PAR(avgf, avgpool_forward_planes(a->out, a->in, a->d, lo, hi))
POOL_PAR(avgb, avgpool_backward_planes(a->out, a->in, a->d, lo, hi))

void cpu_maxpool_forward(bl_cpu_pool *pool, float *out, int32_t *argmax, const float *in,
                         const bl_pool_dims *d) {
    pool_arg a = {.out = out, .argmax = argmax, .in = in, .d = d};
    cpu_par_for(pool, (size_t)d->B * d->C, 1, pool_min_planes(d), maxf_slice, &a);
}

void cpu_maxpool_backward(bl_cpu_pool *pool, float *din, const float *dout, const int32_t *argmax,
                          const bl_pool_dims *d) {
    pool_arg a = {.out = din, .in = dout, .am = argmax, .d = d};
    cpu_par_for(pool, (size_t)d->B * d->C, 1, pool_min_planes(d), maxb_slice, &a);
}

void cpu_avgpool_forward(bl_cpu_pool *pool, float *out, const float *in, const bl_pool_dims *d) {
    pool_arg a = {.out = out, .in = in, .d = d};
    cpu_par_for(pool, (size_t)d->B * d->C, 1, pool_min_planes(d), avgf_slice, &a);
}

void cpu_avgpool_backward(bl_cpu_pool *pool, float *din, const float *dout, const bl_pool_dims *d) {
    pool_arg a = {.out = din, .in = dout, .d = d};
    cpu_par_for(pool, (size_t)d->B * d->C, 1, pool_min_planes(d), avgb_slice, &a);
}
