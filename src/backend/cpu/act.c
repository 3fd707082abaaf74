/* Elementwise activations and inverted dropout.
 *
 * One branch-free loop per activation, chosen outside the loop, so each body
 * is simple enough for the compiler to vectorise (ReLU and leaky ReLU become
 * blends; the transcendental ones call libm per element, which is exact but
 * not vectorised without -ffast-math). ReLU keeps NaN as NaN (`x < 0 ? 0 : x`)
 * instead of hiding it, so the divergence check downstream still sees it.
 * Sigmoid is evaluated on the side where exp cannot overflow. GELU is the
 * exact erf form of torch.nn.GELU(). Backward uses the saved output where
 * that is cheaper (tanh, sigmoid), otherwise the input. */
#include <math.h>
#include "backend/cpu/cpu.h"
#include "backend/dropout_mask.h"

static inline float sigmoidf(float x) {
    if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
    float e = expf(x);
    return e / (1.0f + e);
}

static void act_forward_range(float *out, const float *in, size_t n, bl_act act, float alpha) {
    float *restrict o = out;
    const float *restrict x = in;
    switch (act) {
    case BL_ACT_RELU:
        for (size_t i = 0; i < n; i++)
            o[i] = x[i] < 0.0f ? 0.0f : x[i];
        break;
    case BL_ACT_LEAKY_RELU:
        for (size_t i = 0; i < n; i++)
            o[i] = x[i] < 0.0f ? alpha * x[i] : x[i];
        break;
    case BL_ACT_TANH:
        for (size_t i = 0; i < n; i++)
            o[i] = tanhf(x[i]);
        break;
    case BL_ACT_SIGMOID:
        for (size_t i = 0; i < n; i++)
            o[i] = sigmoidf(x[i]);
        break;
    case BL_ACT_GELU:
        for (size_t i = 0; i < n; i++)
            o[i] = 0.5f * x[i] * (1.0f + erff(x[i] * (float)M_SQRT1_2));
        break;
    }
}

static void act_backward_range(float *din, const float *dout, const float *in, const float *out,
                               size_t n, bl_act act, float alpha) {
    float *restrict g = din;
    const float *restrict go = dout, *restrict x = in, *restrict y = out;
    switch (act) {
    case BL_ACT_RELU:
        for (size_t i = 0; i < n; i++)
            g[i] = x[i] > 0.0f ? go[i] : 0.0f;
        break;
    case BL_ACT_LEAKY_RELU:
        for (size_t i = 0; i < n; i++)
            g[i] = x[i] > 0.0f ? go[i] : alpha * go[i];
        break;
    case BL_ACT_TANH:
        for (size_t i = 0; i < n; i++)
            g[i] = go[i] * (1.0f - y[i] * y[i]);
        break;
    case BL_ACT_SIGMOID:
        for (size_t i = 0; i < n; i++)
            g[i] = go[i] * y[i] * (1.0f - y[i]);
        break;
    case BL_ACT_GELU: {
        /* d/dx x Phi(x) = Phi(x) + x phi(x) */
        const float inv_sqrt_2pi = 0.398942280401432677939946f;
        for (size_t i = 0; i < n; i++) {
            float cdf = 0.5f * (1.0f + erff(x[i] * (float)M_SQRT1_2));
            float pdf = inv_sqrt_2pi * expf(-0.5f * x[i] * x[i]);
            g[i] = go[i] * (cdf + x[i] * pdf);
        }
        break;
    }
    }
}

/* The passes run on the fork-join pool (par.c) in contiguous slices; every
 * element is computed the same way whatever the split. ReLU is one compare
 * per element, so it needs long slices to pay for waking a thread; the
 * transcendental ones pay for it much sooner. */
typedef struct {
    float *o;
    const float *x, *g, *y;
    bl_act act;
    float alpha;
} act_arg;

static size_t act_min_per_thread(bl_act act) {
    return act == BL_ACT_RELU || act == BL_ACT_LEAKY_RELU ? 32768 : 2048;
}

static void act_forward_slice(void *p, size_t lo, size_t hi) {
    const act_arg *a = p;
    act_forward_range(a->o + lo, a->x + lo, hi - lo, a->act, a->alpha);
}

static void act_backward_slice(void *p, size_t lo, size_t hi) {
    const act_arg *a = p;
    act_backward_range(a->o + lo, a->g + lo, a->x + lo, a->y ? a->y + lo : NULL, hi - lo, a->act,
                       a->alpha);
}

void cpu_act_forward(float *out, const float *in, size_t n, bl_act act, float alpha) {
    act_arg a = {.o = out, .x = in, .act = act, .alpha = alpha};
    cpu_par_for(n, 16, act_min_per_thread(act), act_forward_slice, &a);
}

void cpu_act_backward(float *din, const float *dout, const float *in, const float *out, size_t n,
                      bl_act act, float alpha) {
    act_arg a = {.o = din, .g = dout, .x = in, .y = out, .act = act, .alpha = alpha};
    cpu_par_for(n, 16, act_min_per_thread(act), act_backward_slice, &a);
}

/* The mask of element i is a pure function of (key, key->first + i)
 * (backend/dropout_mask.h), so slices go to threads in any cut: each slice
 * computes the Philox blocks it covers, one per four elements. As in torch,
 * the input is multiplied by the scaled mask, so a NaN input stays NaN even
 * where it is dropped. */
typedef struct dropout_arg {
    float *o;
    uint8_t *m;
    const float *x;
    const bl_dropout_key *key;
    uint32_t threshold;
    float keep_scale;
} dropout_arg;

static void dropout_forward_slice(void *p, size_t lo, size_t hi) {
    const dropout_arg *a = p;
    float *restrict o = a->o;
    uint8_t *restrict m = a->m;
    const float *restrict x = a->x;
    uint32_t w[4];
    for (size_t i = lo; i < hi; i++) {
        uint64_t e = a->key->first + i;
        if (i == lo || (e & 3) == 0) bl_dropout_block(w, a->key, e >> 2);
        m[i] = (w[e & 3] >> 8) >= a->threshold;
    }
    for (size_t i = lo; i < hi; i++)
        o[i] = x[i] * (m[i] ? a->keep_scale : 0.0f);
}

void cpu_dropout_forward(float *out, uint8_t *mask, const float *in, size_t n, float p,
                         const bl_dropout_key *key) {
    dropout_arg a = {.o = out,
                     .m = mask,
                     .x = in,
                     .key = key,
                     .threshold = bl_dropout_threshold(p),
                     .keep_scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f};
    cpu_par_for(n, 64, 4096, dropout_forward_slice, &a);
}

void cpu_dropout_backward(float *din, const float *dout, const uint8_t *mask, size_t n, float p) {
    float *restrict g = din;
    const float *restrict go = dout;
    const uint8_t *restrict m = mask;
    const float keep_scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    for (size_t i = 0; i < n; i++)
        g[i] = go[i] * (m[i] ? keep_scale : 0.0f);
}
