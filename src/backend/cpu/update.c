/* Optimizer update kernels for the CPU backend: SGD (momentum, Nesterov,
 * L2 weight decay) and Adam/AdamW over flat arenas.
 *
 * They follow torch.optim (1.13) step for step, including the order of the
 * float operations, so golden tests against PyTorch agree to float rounding:
 * the per-step scalars (bias corrections, step size) are computed once in
 * double, as torch does in Python, and rounded to float for the elementwise
 * loop. Each loop is a single pass with restrict pointers and no branches in
 * the body, so the compiler vectorises it; the branches on the options sit
 * outside the loops. */
#include <math.h>
#include <stddef.h>
#include "batchlab/backend.h"

/* Declared here as well as in cpu.h, so this file does not depend on it. */
void cpu_sgd_step(float *p, float *buf, const float *g, size_t n, float lr, float momentum,
                  int nesterov, float weight_decay, int first_step);
void cpu_adam_step(float *p, float *m, float *v, const float *g, size_t n, float lr, float beta1,
                   float beta2, float eps, float weight_decay, int decoupled, long t);

/* p -= lr (g + wd p), no momentum. */
static void sgd_plain(float *restrict p, const float *restrict g, size_t n, float lr, float wd) {
    for (size_t i = 0; i < n; i++) {
        float d = g[i] + wd * p[i];
        p[i] -= lr * d;
    }
}

/* First step with momentum: torch clones g' into the buffer (no scaling). */
static void sgd_momentum_first(float *restrict p, float *restrict buf, const float *restrict g,
                               size_t n, float lr, float mom, int nesterov, float wd) {
    if (nesterov) {
        for (size_t i = 0; i < n; i++) {
            float d = g[i] + wd * p[i];
            buf[i] = d;
            p[i] -= lr * (d + mom * d);
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            float d = g[i] + wd * p[i];
            buf[i] = d;
            p[i] -= lr * d;
        }
    }
}

/* Later steps: buf = mom buf + g' (dampening 0). */
static void sgd_momentum(float *restrict p, float *restrict buf, const float *restrict g, size_t n,
                         float lr, float mom, int nesterov, float wd) {
    if (nesterov) {
        for (size_t i = 0; i < n; i++) {
            float d = g[i] + wd * p[i];
            float b = mom * buf[i] + d;
            buf[i] = b;
            p[i] -= lr * (d + mom * b);
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            float d = g[i] + wd * p[i];
            float b = mom * buf[i] + d;
            buf[i] = b;
            p[i] -= lr * b;
        }
    }
}

void cpu_sgd_step(float *p, float *buf, const float *g, size_t n, float lr, float momentum,
                  int nesterov, float weight_decay, int first_step) {
    if (momentum == 0.0f || !buf) {
        sgd_plain(p, g, n, lr, weight_decay);
    } else if (first_step) {
        sgd_momentum_first(p, buf, g, n, lr, momentum, nesterov, weight_decay);
    } else {
        sgd_momentum(p, buf, g, n, lr, momentum, nesterov, weight_decay);
    }
}

/* One Adam pass. l2 is the coupled weight decay (0 for AdamW, whose decay is
 * applied to p beforehand by the caller's decay factor). torch 1.13:
 *   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
 *   denom = sqrt(v) / sqrt(bc2) + eps;  p -= (lr / bc1) m / denom */
static void adam_loop(float *restrict p, float *restrict m, float *restrict v,
                      const float *restrict g, size_t n, float decay, float l2, float b1, float b2,
                      float eps, float step_size, float bc2_sqrt) {
    const float one_m_b1 = (float)(1.0 - (double)b1), one_m_b2 = (float)(1.0 - (double)b2);
    for (size_t i = 0; i < n; i++) {
        float pi = p[i] * decay;
        float gi = g[i] + l2 * pi;
        float mi = b1 * m[i] + one_m_b1 * gi;
        float vi = b2 * v[i] + one_m_b2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        float denom = sqrtf(vi) / bc2_sqrt + eps;
        p[i] = pi - step_size * (mi / denom);
    }
}

void cpu_adam_step(float *p, float *m, float *v, const float *g, size_t n, float lr, float beta1,
                   float beta2, float eps, float weight_decay, int decoupled, long t) {
    if (t < 1) t = 1; /* 1-based; guards the bias correction against 0 */
    double bc1 = 1.0 - pow((double)beta1, (double)t);
    double bc2 = 1.0 - pow((double)beta2, (double)t);
    float step_size = (float)((double)lr / bc1);
    float bc2_sqrt = (float)sqrt(bc2);
    float decay = decoupled ? (float)(1.0 - (double)lr * weight_decay) : 1.0f;
    float l2 = decoupled ? 0.0f : weight_decay;
    adam_loop(p, m, v, g, n, decay, l2, beta1, beta2, eps, step_size, bc2_sqrt);
}
