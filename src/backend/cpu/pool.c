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

void cpu_maxpool_forward(float *out, int32_t *argmax, const float *in, const bl_pool_dims *d) {
    const int H = d->H, W = d->W, P = d->P, Q = d->Q, k = d->k, st = d->stride;
    const size_t planes = (size_t)d->B * d->C;
    for (size_t pl = 0; pl < planes; pl++) {
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

void cpu_maxpool_backward(float *din, const float *dout, const int32_t *argmax,
                          const bl_pool_dims *d) {
    const int HW = d->H * d->W, PQ = d->P * d->Q;
    const size_t planes = (size_t)d->B * d->C;
    memset(din, 0, planes * HW * sizeof *din);
    for (size_t pl = 0; pl < planes; pl++) {
        float *restrict g = din + pl * HW;
        const float *restrict go = dout + pl * PQ;
        const int32_t *restrict am = argmax + pl * PQ;
        for (int i = 0; i < PQ; i++) {
            int32_t a = am[i];
            if (a >= 0 && a < HW) g[a] += go[i]; /* a corrupt index is dropped, never written */
        }
    }
}

void cpu_avgpool_forward(float *out, const float *in, const bl_pool_dims *d) {
    const int H = d->H, W = d->W, P = d->P, Q = d->Q, k = d->k, st = d->stride;
    const size_t planes = (size_t)d->B * d->C;
    const float inv = 1.0f / (float)(k * k);
    for (size_t pl = 0; pl < planes; pl++) {
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

void cpu_avgpool_backward(float *din, const float *dout, const bl_pool_dims *d) {
    const int H = d->H, W = d->W, P = d->P, Q = d->Q, k = d->k, st = d->stride;
    const size_t planes = (size_t)d->B * d->C;
    const float inv = 1.0f / (float)(k * k);
    memset(din, 0, planes * H * W * sizeof *din);
    for (size_t pl = 0; pl < planes; pl++) {
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
