/* Batch normalisation over x(B, C, HW) with per-channel statistics, as torch
 * BatchNorm1d (HW = 1) and BatchNorm2d.
 *
 * Statistics are summed across rows in double (a batch of 32768 samples of
 * one channel would lose digits in float; within a row, float lanes keep the
 * loop vectorised) and in two passes (mean, then squared deviations), which
 * is stable where E[x^2] - E[x]^2 is not. Channels are
 * handled in blocks of BN_BLOCK with their accumulators on the stack: for
 * HW = 1 the channels of one sample are contiguous, so a block walks memory
 * in order instead of striding by C, and no scratch memory is needed.
 *
 * gamma/beta may be NULL (no affine: 1 and 0); run_mean/run_var may be NULL
 * (not tracked); din, dgamma, dbeta may be NULL (not wanted). With a single
 * value per channel (B*HW == 1) the unbiased variance is undefined; torch
 * refuses that case, here run_var then takes the biased one (0). */
#include <math.h>
#include "backend/cpu/cpu.h"

#define BN_BLOCK 64

static inline const float *bn_row(const float *x, int b, int c, int C, int HW) {
    return x + ((size_t)b * C + c) * HW;
}

/* Row reductions: 16 float lanes per row (vectorised; a row is at most one
 * feature map, so float lanes lose nothing that matters), rows summed in
 * double by the callers. */
#define BN_LANES 16

static double bn_sum(const float *restrict x, int n) {
    float lane[BN_LANES] = {0};
    int i = 0;
    for (; i + BN_LANES <= n; i += BN_LANES)
        for (int j = 0; j < BN_LANES; j++)
            lane[j] += x[i + j];
    double s = 0;
    for (; i < n; i++)
        s += x[i];
    for (int j = 0; j < BN_LANES; j++)
        s += lane[j];
    return s;
}

/* sum (x - m)^2 */
static double bn_sum_sq_dev(const float *restrict x, int n, float m) {
    float lane[BN_LANES] = {0};
    int i = 0;
    for (; i + BN_LANES <= n; i += BN_LANES)
        for (int j = 0; j < BN_LANES; j++)
            lane[j] += (x[i + j] - m) * (x[i + j] - m);
    double s = 0;
    for (; i < n; i++)
        s += ((double)x[i] - m) * ((double)x[i] - m);
    for (int j = 0; j < BN_LANES; j++)
        s += lane[j];
    return s;
}

/* sum dy and sum dy (x - m) */
static void bn_sum_dy(const float *restrict dy, const float *restrict x, int n, float m,
                      double *sdy, double *sdyx) {
    float l1[BN_LANES] = {0}, l2[BN_LANES] = {0};
    int i = 0;
    for (; i + BN_LANES <= n; i += BN_LANES)
        for (int j = 0; j < BN_LANES; j++) {
            l1[j] += dy[i + j];
            l2[j] += dy[i + j] * (x[i + j] - m);
        }
    double a = 0, b = 0;
    for (; i < n; i++) {
        a += dy[i];
        b += (double)dy[i] * ((double)x[i] - m);
    }
    for (int j = 0; j < BN_LANES; j++)
        a += l1[j], b += l2[j];
    *sdy += a;
    *sdyx += b;
}

void cpu_batchnorm_forward_train(bl_cpu_pool *pool, float *out, float *mean, float *rstd,
                                 float *run_mean, float *run_var, const float *in,
                                 const float *gamma, const float *beta, int B, int C, int HW,
                                 float momentum, float eps) {
    (void)pool; /* serial */
    const double n = (double)B * HW;
    if (n <= 0) return;
    for (int c0 = 0; c0 < C; c0 += BN_BLOCK) {
        const int cb = C - c0 < BN_BLOCK ? C - c0 : BN_BLOCK;
        double mu[BN_BLOCK] = {0}, m2[BN_BLOCK] = {0};
        float muf[BN_BLOCK];
        for (int b = 0; b < B; b++)
            for (int j = 0; j < cb; j++)
                mu[j] += bn_sum(bn_row(in, b, c0 + j, C, HW), HW);
        for (int j = 0; j < cb; j++)
            mu[j] /= n, muf[j] = (float)mu[j];
        for (int b = 0; b < B; b++)
            for (int j = 0; j < cb; j++)
                m2[j] += bn_sum_sq_dev(bn_row(in, b, c0 + j, C, HW), HW, muf[j]);
        float scale[BN_BLOCK], shift[BN_BLOCK];
        for (int j = 0; j < cb; j++) {
            const int c = c0 + j;
            double var = m2[j] / n;
            double rs = 1.0 / sqrt(var + (double)eps);
            mean[c] = (float)mu[j];
            rstd[c] = (float)rs;
            if (run_mean) run_mean[c] = (1.0f - momentum) * run_mean[c] + momentum * (float)mu[j];
            if (run_var) {
                double unbiased = n > 1 ? m2[j] / (n - 1) : var;
                run_var[c] = (1.0f - momentum) * run_var[c] + momentum * (float)unbiased;
            }
            double g = gamma ? gamma[c] : 1.0, bt = beta ? beta[c] : 0.0;
            scale[j] = (float)(g * rs);
            shift[j] = (float)(bt - mu[j] * g * rs);
        }
        for (int b = 0; b < B; b++)
            for (int j = 0; j < cb; j++) {
                const float *restrict x = bn_row(in, b, c0 + j, C, HW);
                float *restrict o = out + ((size_t)b * C + c0 + j) * HW;
                const float s = scale[j], t = shift[j];
                for (int i = 0; i < HW; i++)
                    o[i] = x[i] * s + t;
            }
    }
}

void cpu_batchnorm_forward_eval(bl_cpu_pool *pool, float *out, const float *in, const float *gamma,
                                const float *beta, const float *run_mean, const float *run_var,
                                int B, int C, int HW, float eps) {
    (void)pool; /* serial */
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            const float *restrict x = bn_row(in, b, c, C, HW);
            float *restrict o = out + ((size_t)b * C + c) * HW;
            double rs = 1.0 / sqrt((double)run_var[c] + (double)eps);
            double g = gamma ? gamma[c] : 1.0, bt = beta ? beta[c] : 0.0;
            const float s = (float)(g * rs), t = (float)(bt - run_mean[c] * g * rs);
            for (int i = 0; i < HW; i++)
                o[i] = x[i] * s + t;
        }
}

/* With xhat = (x - mean) rstd and dy = dout, per channel:
 *   dbeta += sum dy,  dgamma += sum dy xhat,
 *   din = gamma rstd (dy - mean(dy) - xhat mean(dy xhat)). */
void cpu_batchnorm_backward(bl_cpu_pool *pool, float *din, float *dgamma, float *dbeta,
                            const float *dout, const float *in, const float *mean,
                            const float *rstd, const float *gamma, int B, int C, int HW) {
    (void)pool; /* serial */
    const double n = (double)B * HW;
    if (n <= 0) return;
    for (int c0 = 0; c0 < C; c0 += BN_BLOCK) {
        const int cb = C - c0 < BN_BLOCK ? C - c0 : BN_BLOCK;
        double sdy[BN_BLOCK] = {0}, sdyx[BN_BLOCK] = {0};
        for (int b = 0; b < B; b++)
            for (int j = 0; j < cb; j++)
                bn_sum_dy(bn_row(dout, b, c0 + j, C, HW), bn_row(in, b, c0 + j, C, HW), HW,
                          mean[c0 + j], &sdy[j], &sdyx[j]);
        float k1[BN_BLOCK], k2[BN_BLOCK], k3[BN_BLOCK], mf[BN_BLOCK];
        for (int j = 0; j < cb; j++) {
            const int c = c0 + j;
            const double rs = rstd[c];
            sdyx[j] *= rs; /* now sum dy xhat */
            if (dbeta) dbeta[c] += (float)sdy[j];
            if (dgamma) dgamma[c] += (float)sdyx[j];
            /* din = k1 dy + k2 (x - mean) + k3 */
            const double g = gamma ? gamma[c] : 1.0;
            k1[j] = (float)(g * rs);
            k2[j] = (float)(-g * rs * rs * sdyx[j] / n);
            k3[j] = (float)(-g * rs * sdy[j] / n);
            mf[j] = mean[c];
        }
        if (!din) continue;
        for (int b = 0; b < B; b++)
            for (int j = 0; j < cb; j++) {
                const float *restrict x = bn_row(in, b, c0 + j, C, HW);
                const float *restrict dy = bn_row(dout, b, c0 + j, C, HW);
                float *restrict g = din + ((size_t)b * C + c0 + j) * HW;
                const float a1 = k1[j], a2 = k2[j], a3 = k3[j], m = mf[j];
                for (int i = 0; i < HW; i++)
                    g[i] = a1 * dy[i] + a2 * (x[i] - m) + a3;
            }
    }
}
