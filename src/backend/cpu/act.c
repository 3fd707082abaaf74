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
#include <emmintrin.h> /* SSE2: part of every x86-64 level */
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

void cpu_act_forward(bl_cpu_pool *pool, float *out, const float *in, size_t n, bl_act act,
                     float alpha) {
    act_arg a = {.o = out, .x = in, .act = act, .alpha = alpha};
    cpu_par_for(pool, n, 16, act_min_per_thread(act), act_forward_slice, &a);
}

void cpu_act_backward(bl_cpu_pool *pool, float *din, const float *dout, const float *in,
                      const float *out, size_t n, bl_act act, float alpha) {
    act_arg a = {.o = din, .g = dout, .x = in, .y = out, .act = act, .alpha = alpha};
    cpu_par_for(pool, n, 16, act_min_per_thread(act), act_backward_slice, &a);
}

/* The mask of element i is a pure function of (key, key->first + i)
 * (backend/dropout_mask.h), so slices go to threads in any cut. Whole Philox
 * blocks are computed DROPOUT_LANES at a time, four blocks to an SSE2 vector
 * (pmuludq gives the 32x32->64 products; the compiler does not vectorise the
 * scalar rounds itself), which is 3x faster than the serial stream this
 * replaced; the ragged ends use the scalar block function, which gives the
 * same words (test_kernels checks every element against it). As in torch, the input is
 * multiplied by the scaled mask, so a NaN input stays NaN even where dropped. */
#define DROPOUT_LANES 16

typedef struct dropout_arg {
    float *o;
    uint8_t *m;
    const float *x;
    const bl_dropout_key *key;
    uint32_t threshold;
    float keep_scale;
} dropout_arg;

/* Masks of elements [lo, hi) of the call, one scalar block at a time. */
static void dropout_mask_scalar(const dropout_arg *a, size_t lo, size_t hi) {
    uint32_t w[4];
    for (size_t i = lo; i < hi; i++) {
        uint64_t e = a->key->first + i;
        if (i == lo || (e & 3) == 0) bl_dropout_block(w, a->key, e >> 2);
        a->m[i] = (w[e & 3] >> 8) >= a->threshold;
    }
}

/* hi and lo halves of the 32x32 products of the four lanes of a with m: pmuludq
 * multiplies the even lanes, so the odd ones are shifted down and done apart. */
static inline void mulhilo4(__m128i a, __m128i m, __m128i *hi, __m128i *lo) {
    const __m128i low = _mm_set1_epi64x(0xffffffff);
    __m128i pe = _mm_mul_epu32(a, m), po = _mm_mul_epu32(_mm_srli_epi64(a, 32), m);
    *hi = _mm_or_si128(_mm_srli_epi64(pe, 32), _mm_andnot_si128(low, po));
    *lo = _mm_or_si128(_mm_and_si128(pe, low), _mm_slli_epi64(po, 32));
}

/* The words of blocks b0 .. b0 + DROPOUT_LANES - 1: w[k][l] is word k of block b0 + l.
 * Four blocks to a vector, DROPOUT_LANES / 4 vectors in flight. */
static void philox_lanes(uint32_t w[4][DROPOUT_LANES], const bl_dropout_key *key, uint64_t b0) {
    enum { V = DROPOUT_LANES / 4 };
    __m128i c0[V], c1[V], c2[V], c3[V];
    const __m128i m0 = _mm_set1_epi32((int)BL_PHILOX_M0), m1 = _mm_set1_epi32((int)BL_PHILOX_M1);
    for (int v = 0; v < V; v++) {
        uint64_t b = b0 + 4 * (uint64_t)v;
        c0[v] = _mm_setr_epi32((int)(uint32_t)b, (int)(uint32_t)(b + 1), (int)(uint32_t)(b + 2),
                               (int)(uint32_t)(b + 3));
        c1[v] = _mm_setr_epi32((int)(uint32_t)(b >> 32), (int)(uint32_t)((b + 1) >> 32),
                               (int)(uint32_t)((b + 2) >> 32), (int)(uint32_t)((b + 3) >> 32));
        c2[v] = _mm_set1_epi32((int)(uint32_t)key->step);
        c3[v] = _mm_set1_epi32((int)key->layer);
    }
    uint32_t k0 = (uint32_t)key->seed, k1 = (uint32_t)(key->seed >> 32);
    for (int r = 0; r < 10; r++) {
        if (r) k0 += BL_PHILOX_W0, k1 += BL_PHILOX_W1;
        const __m128i vk0 = _mm_set1_epi32((int)k0), vk1 = _mm_set1_epi32((int)k1);
        for (int v = 0; v < V; v++) {
            __m128i hi0, lo0, hi1, lo1;
            mulhilo4(c0[v], m0, &hi0, &lo0);
            mulhilo4(c2[v], m1, &hi1, &lo1);
            c0[v] = _mm_xor_si128(_mm_xor_si128(hi1, c1[v]), vk0);
            c2[v] = _mm_xor_si128(_mm_xor_si128(hi0, c3[v]), vk1);
            c1[v] = lo1;
            c3[v] = lo0;
        }
    }
    for (int v = 0; v < V; v++) {
        _mm_storeu_si128((__m128i *)&w[0][4 * v], c0[v]);
        _mm_storeu_si128((__m128i *)&w[1][4 * v], c1[v]);
        _mm_storeu_si128((__m128i *)&w[2][4 * v], c2[v]);
        _mm_storeu_si128((__m128i *)&w[3][4 * v], c3[v]);
    }
}

/* Masks of DROPOUT_LANES whole blocks from block b0 on, into m (4 per block). */
static void dropout_mask_lanes(uint8_t *restrict m, const bl_dropout_key *key, uint64_t b0,
                               uint32_t threshold) {
    uint32_t w[4][DROPOUT_LANES];
    philox_lanes(w, key, b0);
    for (int l = 0; l < DROPOUT_LANES; l++)
        for (int k = 0; k < 4; k++)
            m[4 * l + k] = (w[k][l] >> 8) >= threshold;
}

static void dropout_forward_slice(void *p, size_t lo, size_t hi) {
    const dropout_arg *a = p;
    const uint64_t first = a->key->first;
    /* [lo, i) up to a block boundary, then whole groups of lanes, then the rest */
    size_t i = lo + (size_t)((4 - ((first + lo) & 3)) & 3);
    if (i > hi) i = hi;
    dropout_mask_scalar(a, lo, i);
    for (; i + 4 * DROPOUT_LANES <= hi; i += 4 * DROPOUT_LANES)
        dropout_mask_lanes(a->m + i, a->key, (first + i) >> 2, a->threshold);
    dropout_mask_scalar(a, i, hi);
    float *restrict o = a->o;
    const uint8_t *restrict m = a->m;
    const float *restrict x = a->x;
    const float keep_scale = a->keep_scale;
    for (size_t k = lo; k < hi; k++)
        o[k] = x[k] * (m[k] ? keep_scale : 0.0f);
}

void cpu_dropout_forward(bl_cpu_pool *pool, float *out, uint8_t *mask, const float *in, size_t n,
                         float p, const bl_dropout_key *key) {
    dropout_arg a = {.o = out,
                     .m = mask,
                     .x = in,
                     .key = key,
                     .threshold = bl_dropout_threshold(p),
                     .keep_scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f};
    cpu_par_for(pool, n, 64, 4096, dropout_forward_slice, &a);
}

void cpu_dropout_backward(bl_cpu_pool *pool, float *din, const float *dout, const uint8_t *mask,
                          size_t n, float p) {
    (void)pool; /* a serial loop */
    float *restrict g = din;
    const float *restrict go = dout;
    const uint8_t *restrict m = mask;
    const float keep_scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    for (size_t i = 0; i < n; i++)
        g[i] = go[i] * (m[i] ? keep_scale : 0.0f);
}
