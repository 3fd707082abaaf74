/* Losses: softmax cross-entropy on integer labels, and mean squared error.
 *
 * Softmax is computed row by row with the max subtracted, and the loss of a
 * row is log-sum-exp minus the shifted logit of the label, never log(prob),
 * so a confident wrong answer gives a large finite loss instead of
 * log(0) = -inf. Sums over the batch are accumulated in double and returned
 * as the SUM (callers scale by 1/total batch, which is how accumulation and
 * data-parallel runs stay equal to one big batch).
 *
 * Labels must lie in [0, K). One that does not is never used as an index:
 * the forward result is then NaN, so a bad label shows up as a diverged loss
 * instead of a read out of bounds, and backward leaves that row's one-hot out. */
#include <math.h>
#include "backend/cpu/cpu.h"

double cpu_softmax_xent_forward(bl_cpu_pool *pool, float *probs, int *correct, const float *logits,
                                const int32_t *labels, int B, int K) {
    (void)pool; /* serial */
    if (B <= 0) return 0.0;
    if (K <= 0) return NAN; /* no class can match a label */
    double total = 0;
    int hits = 0;
    for (int b = 0; b < B; b++) {
        const float *restrict x = logits + (size_t)b * K;
        float *restrict pr = probs + (size_t)b * K;
        int am = 0;
        float mx = x[0];
        for (int k = 1; k < K; k++)
            if (x[k] > mx) { /* strict: the first maximum wins ties */
                mx = x[k];
                am = k;
            }
        double sum = 0;
        for (int k = 0; k < K; k++) {
            float e = expf(x[k] - mx);
            pr[k] = e;
            sum += e;
        }
        const float inv = (float)(1.0 / sum);
        for (int k = 0; k < K; k++)
            pr[k] *= inv;
        const int32_t y = labels[b];
        if (y < 0 || y >= K) {
            total = NAN;
            continue;
        }
        total += log(sum) - ((double)x[y] - mx);
        hits += am == y;
    }
    if (correct) *correct += hits;
    return total;
}

void cpu_softmax_xent_backward(bl_cpu_pool *pool, float *dlogits, const float *probs,
                               const int32_t *labels, int B, int K, float scale) {
    (void)pool; /* serial */
    for (int b = 0; b < B; b++) {
        float *restrict g = dlogits + (size_t)b * K;
        const float *restrict pr = probs + (size_t)b * K;
        for (int k = 0; k < K; k++)
            g[k] = scale * pr[k];
        const int32_t y = labels[b];
        if (y >= 0 && y < K) g[y] = scale * (pr[y] - 1.0f);
    }
}

double cpu_mse_forward(bl_cpu_pool *pool, const float *pred, const float *target, int B, int K) {
    (void)pool; /* serial */
    double total = 0;
    for (int b = 0; b < B; b++) {
        const float *restrict p = pred + (size_t)b * K;
        const float *restrict t = target + (size_t)b * K;
        double s = 0;
        for (int k = 0; k < K; k++) {
            double d = (double)p[k] - t[k];
            s += d * d;
        }
        total += s / K;
    }
    return total;
}

void cpu_mse_backward(bl_cpu_pool *pool, float *dpred, const float *pred, const float *target,
                      int B, int K, float scale) {
    (void)pool; /* serial */
    const float f = 2.0f * scale / (float)K;
    const size_t n = (size_t)B * K;
    float *restrict g = dpred;
    const float *restrict p = pred, *restrict t = target;
    for (size_t i = 0; i < n; i++)
        g[i] = f * (p[i] - t[i]);
}
