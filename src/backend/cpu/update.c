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
#include "backend/cpu/cpu.h"

/* Slices of the arenas go to the fork-join pool (par.c); the update of each
 * element does not depend on the split. The loops stream 12-20 bytes per
 * element, so two cores pulling from memory at once roughly halve the time;
 * below this many elements per thread the wake-up would cost more. */
#define UPDATE_PAR_MIN 16384

typedef struct {
    float *p, *buf, *m, *v;
    const float *g;
    float lr, mom, wd, decay, l2, b1, b2, eps, step_size, bc2_sqrt;
    int nesterov, first;
} update_arg;

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

static void sgd_slice(void *arg, size_t lo, size_t hi) {
    const update_arg *a = arg;
    const size_t n = hi - lo;
    if (!a->buf) {
        sgd_plain(a->p + lo, a->g + lo, n, a->lr, a->wd);
    } else if (a->first) {
        sgd_momentum_first(a->p + lo, a->buf + lo, a->g + lo, n, a->lr, a->mom, a->nesterov, a->wd);
    } else {
        sgd_momentum(a->p + lo, a->buf + lo, a->g + lo, n, a->lr, a->mom, a->nesterov, a->wd);
    }
}

void cpu_sgd_step(bl_cpu_pool *pool, float *p, float *buf, const float *g, size_t n, float lr,
                  float momentum, int nesterov, float weight_decay, int first_step) {
    update_arg a = {.p = p,
                    .buf = momentum == 0.0f ? NULL : buf,
                    .g = g,
                    .lr = lr,
                    .mom = momentum,
                    .wd = weight_decay,
                    .nesterov = nesterov,
                    .first = first_step};
    cpu_par_for(pool, n, 16, UPDATE_PAR_MIN, sgd_slice, &a);
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

static void adam_slice(void *arg, size_t lo, size_t hi) {
    const update_arg *a = arg;
    adam_loop(a->p + lo, a->m + lo, a->v + lo, a->g + lo, hi - lo, a->decay, a->l2, a->b1, a->b2,
              a->eps, a->step_size, a->bc2_sqrt);
}

void cpu_adam_step(bl_cpu_pool *pool, float *p, float *m, float *v, const float *g, size_t n,
                   float lr, float beta1, float beta2, float eps, float weight_decay, int decoupled,
                   long t) {
    if (t < 1) t = 1; /* 1-based; guards the bias correction against 0 */
    double bc1 = 1.0 - pow((double)beta1, (double)t);
    double bc2 = 1.0 - pow((double)beta2, (double)t);
    float step_size = (float)((double)lr / bc1);
    float bc2_sqrt = (float)sqrt(bc2);
    float decay = decoupled ? (float)(1.0 - (double)lr * weight_decay) : 1.0f;
    float l2 = decoupled ? 0.0f : weight_decay;
    update_arg a = {.p = p,
                    .m = m,
                    .v = v,
                    .g = g,
                    .decay = decay,
                    .l2 = l2,
                    .b1 = beta1,
                    .b2 = beta2,
                    .eps = eps,
                    .step_size = step_size,
                    .bc2_sqrt = bc2_sqrt};
    cpu_par_for(pool, n, 16, UPDATE_PAR_MIN, adam_slice, &a);
}
