/* The CUDA backend's elementwise kernels: bias and ReLU around the GEMMs,
 * pooling, activations, dropout, batch norm in eval mode, the loss
 * gradients and the optimizer updates (the reductions are in cuda_reduce.cu).
 *
 * Each launcher enqueues one kernel on its stream and returns
 * cudaGetLastError(); none synchronises or allocates. The kernels are
 * grid-stride loops over one element each (BLK_THREADS threads a block, at
 * most BLK_MAX_BLOCKS blocks); where an element needs its channel or row, a
 * BlkRadix3 counter follows it instead of a division per element. Every
 * element is computed by one thread in the CPU kernel's float arithmetic
 * (src/backend/cpu/), so a result never depends on the launch shape. nvcc
 * contracts a * b + c into an FMA where the source has one, as gcc does on
 * the CPU's FMA levels; the one place where that would change a sum's
 * rounding against the CPU (average pooling's backward) prevents it. */
#include <math.h>
#include "backend/cuda/cuda_util.cuh"
#include "backend/dropout_mask.h"

#define GRID_STRIDE(i, n) for (size_t i = blk_start(); i < (n); i += blk_stride())

static inline unsigned elt_grid(size_t n) {
    return blk_grid(n, BLK_THREADS, BLK_MAX_BLOCKS);
}

/* ---- around the GEMMs -------------------------------------------------- */

/* out(outer, C, HW) = relu?(out + b[c]), c the element's channel (HW = 1: the
 * rows of a dense layer's output). add0: add 0.0f without a bias, as conv.c
 * does (it turns -0.0 into +0.0 before the ReLU, bit for bit the CPU's). */
static __global__ void bias_act_kernel(float *out, const float *b, size_t n, unsigned HW,
                                       unsigned C, int relu, int add0) {
    BlkRadix3 r;
    r.init(blk_start(), blk_stride(), HW, C);
    for (size_t i = blk_start(); i < n; i += blk_stride(), r.next()) {
        float v = out[i];
        if (b)
            v += b[r.mid];
        else if (add0)
            v += 0.0f;
        if (relu) v = v < 0.0f ? 0.0f : v; /* NaN stays NaN */
        out[i] = v;
    }
}

extern "C" cudaError_t blk_bias_act_rows(cudaStream_t s, float *out, const float *b, int rows,
                                         int cols, int relu) {
    const size_t n = (size_t)(rows > 0 ? rows : 0) * (size_t)(cols > 0 ? cols : 0);
    if (n == 0 || (!b && !relu)) return cudaSuccess;
    bias_act_kernel<<<elt_grid(n), BLK_THREADS, 0, s>>>(out, b, n, 1u, (unsigned)cols, relu, 0);
    return cudaGetLastError();
}

extern "C" cudaError_t blk_bias_act_channels(cudaStream_t s, float *out, const float *b, int B,
                                             int K, int PQ, int relu) {
    if (B <= 0 || K <= 0 || PQ <= 0 || (!b && !relu)) return cudaSuccess;
    const size_t n = (size_t)B * K * PQ;
    bias_act_kernel<<<elt_grid(n), BLK_THREADS, 0, s>>>(out, b, n, (unsigned)PQ, (unsigned)K, relu,
                                                        1);
    return cudaGetLastError();
}

/* g = out > 0 ? g : 0 elementwise. */
static __global__ void relu_mask_kernel(float *g, const float *out, size_t n) {
    GRID_STRIDE(i, n) {
        g[i] = out[i] > 0.0f ? g[i] : 0.0f;
    }
}

extern "C" cudaError_t blk_relu_mask(cudaStream_t s, float *g, const float *out, size_t n) {
    if (n == 0) return cudaSuccess;
    relu_mask_kernel<<<elt_grid(n), BLK_THREADS, 0, s>>>(g, out, n);
    return cudaGetLastError();
}

/* ---- pooling ------------------------------------------------------------ */

/* Outputs p of a window axis (size k, stride st, P outputs) whose window holds
 * input position h: lo..hi, empty when lo > hi. */
static __device__ __forceinline__ void window_range(int h, int k, int st, int P, int *lo, int *hi) {
    *lo = h - k + 1 <= 0 ? 0 : (h - k + st) / st; /* ceil((h - k + 1) / st) */
    *hi = h / st < P - 1 ? h / st : P - 1;
}

/* One thread per output (q, p, plane): the window scanned in row-major order
 * with strict >, so the first maximum wins and a NaN at the window's first
 * position stays (pool.c's rule); argmax = h * W + w within the plane. */
static __global__ void maxpool_fwd_kernel(float *out, int32_t *argmax, const float *in,
                                          bl_pool_dims d, size_t n) {
    const size_t HW = (size_t)d.H * d.W;
    BlkRadix3 r;
    r.init(blk_start(), blk_stride(), (unsigned)d.Q, (unsigned)d.P);
    for (size_t i = blk_start(); i < n; i += blk_stride(), r.next()) {
        const float *x = in + r.hi * HW;
        const int h0 = (int)r.mid * d.stride, w0 = (int)r.lo * d.stride;
        int best = h0 * d.W + w0;
        float bv = x[best];
        for (int a = 0; a < d.k; a++) {
            const float *xr = x + (size_t)(h0 + a) * d.W + w0;
            for (int c = 0; c < d.k; c++)
                if (xr[c] > bv) {
                    bv = xr[c];
                    best = (h0 + a) * d.W + w0 + c;
                }
        }
        out[i] = bv;
        argmax[i] = best;
    }
}

/* One thread per input (w, h, plane), a gather: the sum of dout over the
 * outputs whose window holds the input and whose argmax is it, in ascending
 * output order from 0.0f. That is the order in which pool.c's scatter adds
 * them, so din is bit-identical, overlapping windows included, and every din
 * element is written once (no zeroing pass, no atomics). */
static __global__ void maxpool_bwd_kernel(float *din, const float *dout, const int32_t *argmax,
                                          bl_pool_dims d, size_t n) {
    const size_t PQ = (size_t)d.P * d.Q;
    BlkRadix3 r;
    r.init(blk_start(), blk_stride(), (unsigned)d.W, (unsigned)d.H);
    for (size_t i = blk_start(); i < n; i += blk_stride(), r.next()) {
        const int h = (int)r.mid, w = (int)r.lo;
        const float *go = dout + r.hi * PQ;
        const int32_t *am = argmax + r.hi * PQ, at = h * d.W + w;
        int p0, p1, q0, q1;
        window_range(h, d.k, d.stride, d.P, &p0, &p1);
        window_range(w, d.k, d.stride, d.Q, &q0, &q1);
        float sum = 0.0f;
        for (int p = p0; p <= p1; p++)
            for (int q = q0; q <= q1; q++) {
                const size_t o = (size_t)p * d.Q + q;
                if (am[o] == at) sum += go[o];
            }
        din[i] = sum;
    }
}

/* One thread per output: the window summed in row-major order, times 1/k^2. */
static __global__ void avgpool_fwd_kernel(float *out, const float *in, bl_pool_dims d, size_t n,
                                          float inv) {
    const size_t HW = (size_t)d.H * d.W;
    BlkRadix3 r;
    r.init(blk_start(), blk_stride(), (unsigned)d.Q, (unsigned)d.P);
    for (size_t i = blk_start(); i < n; i += blk_stride(), r.next()) {
        const float *xw = in + r.hi * HW + (size_t)r.mid * d.stride * d.W + (size_t)r.lo * d.stride;
        float sum = 0.0f;
        for (int a = 0; a < d.k; a++)
            for (int c = 0; c < d.k; c++)
                sum += xw[(size_t)a * d.W + c];
        out[i] = sum * inv;
    }
}

/* One thread per input, a gather as for max pooling: the sum of dout/k^2
 * (rounded before the add, as the CPU's v, hence __fmul_rn) over the windows
 * that hold the input, in ascending output order. */
static __global__ void avgpool_bwd_kernel(float *din, const float *dout, bl_pool_dims d, size_t n,
                                          float inv) {
    const size_t PQ = (size_t)d.P * d.Q;
    BlkRadix3 r;
    r.init(blk_start(), blk_stride(), (unsigned)d.W, (unsigned)d.H);
    for (size_t i = blk_start(); i < n; i += blk_stride(), r.next()) {
        const float *go = dout + r.hi * PQ;
        int p0, p1, q0, q1;
        window_range((int)r.mid, d.k, d.stride, d.P, &p0, &p1);
        window_range((int)r.lo, d.k, d.stride, d.Q, &q0, &q1);
        float sum = 0.0f;
        for (int p = p0; p <= p1; p++)
            for (int q = q0; q <= q1; q++)
                sum += __fmul_rn(go[(size_t)p * d.Q + q], inv);
        din[i] = sum;
    }
}

static size_t pool_out(const bl_pool_dims *d) {
    if (d->B <= 0 || d->C <= 0 || d->P <= 0 || d->Q <= 0) return 0;
    return (size_t)d->B * d->C * d->P * d->Q;
}
static size_t pool_in(const bl_pool_dims *d) {
    if (d->B <= 0 || d->C <= 0 || d->H <= 0 || d->W <= 0) return 0;
    return (size_t)d->B * d->C * d->H * d->W;
}

extern "C" cudaError_t blk_maxpool_forward(cudaStream_t s, float *out, int32_t *argmax,
                                           const float *in, const bl_pool_dims *d) {
    const size_t n = pool_out(d);
    if (n == 0) return cudaSuccess;
    maxpool_fwd_kernel<<<elt_grid(n), BLK_THREADS, 0, s>>>(out, argmax, in, *d, n);
    return cudaGetLastError();
}

extern "C" cudaError_t blk_maxpool_backward(cudaStream_t s, float *din, const float *dout,
                                            const int32_t *argmax, const bl_pool_dims *d) {
    const size_t n = pool_in(d);
    if (n == 0) return cudaSuccess;
    maxpool_bwd_kernel<<<elt_grid(n), BLK_THREADS, 0, s>>>(din, dout, argmax, *d, n);
    return cudaGetLastError();
}

extern "C" cudaError_t blk_avgpool_forward(cudaStream_t s, float *out, const float *in,
                                           const bl_pool_dims *d) {
    const size_t n = pool_out(d);
    if (n == 0) return cudaSuccess;
    const float inv = 1.0f / (float)(d->k * d->k);
    avgpool_fwd_kernel<<<elt_grid(n), BLK_THREADS, 0, s>>>(out, in, *d, n, inv);
    return cudaGetLastError();
}

extern "C" cudaError_t blk_avgpool_backward(cudaStream_t s, float *din, const float *dout,
                                            const bl_pool_dims *d) {
    const size_t n = pool_in(d);
    if (n == 0) return cudaSuccess;
    const float inv = 1.0f / (float)(d->k * d->k);
    avgpool_bwd_kernel<<<elt_grid(n), BLK_THREADS, 0, s>>>(din, dout, *d, n, inv);
    return cudaGetLastError();
}

/* ---- activations ---------------------------------------------------------- */

#define BLK_SQRT1_2 0.70710678118654752440f /* (float)M_SQRT1_2 */
#define BLK_INV_SQRT_2PI 0.398942280401432677939946f

/* act.c's sigmoid: evaluated on the side where expf cannot overflow. */
static __device__ __forceinline__ float sigmoid_f(float x) {
    if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
    const float e = expf(x);
    return e / (1.0f + e);
}

/* out = f(in) elementwise, one instantiation per activation (act.c's formulas;
 * expf/erff/tanhf are CUDA's accurate ones, within 2 ulp of libm's). */
template <int ACT>
static __global__ void act_fwd_kernel(float *out, const float *in, size_t n, float alpha) {
    GRID_STRIDE(i, n) {
        const float x = in[i];
        float y;
        if constexpr (ACT == BL_ACT_RELU)
            y = x < 0.0f ? 0.0f : x;
        else if constexpr (ACT == BL_ACT_LEAKY_RELU)
            y = x < 0.0f ? alpha * x : x;
        else if constexpr (ACT == BL_ACT_TANH)
            y = tanhf(x);
        else if constexpr (ACT == BL_ACT_SIGMOID)
            y = sigmoid_f(x);
        else
            y = 0.5f * x * (1.0f + erff(x * BLK_SQRT1_2));
        out[i] = y;
    }
}

/* din = dout * f'(x): ReLU, leaky ReLU and GELU read in, tanh and sigmoid
 * read out (the pointer not read may be NULL). */
template <int ACT>
static __global__ void act_bwd_kernel(float *din, const float *dout, const float *in,
                                      const float *out, size_t n, float alpha) {
    GRID_STRIDE(i, n) {
        const float go = dout[i];
        float g;
        if constexpr (ACT == BL_ACT_RELU) {
            g = in[i] > 0.0f ? go : 0.0f;
        } else if constexpr (ACT == BL_ACT_LEAKY_RELU) {
            g = in[i] > 0.0f ? go : alpha * go;
        } else if constexpr (ACT == BL_ACT_TANH) {
            const float y = out[i];
            g = go * (1.0f - y * y);
        } else if constexpr (ACT == BL_ACT_SIGMOID) {
            const float y = out[i];
            g = go * y * (1.0f - y);
        } else {
            const float x = in[i];
            const float cdf = 0.5f * (1.0f + erff(x * BLK_SQRT1_2));
            const float pdf = BLK_INV_SQRT_2PI * expf(-0.5f * x * x);
            g = go * (cdf + x * pdf);
        }
        din[i] = g;
    }
}

extern "C" cudaError_t blk_act_forward(cudaStream_t s, float *out, const float *in, size_t n,
                                       bl_act act, float alpha) {
    if (n == 0) return cudaSuccess;
    const unsigned g = elt_grid(n);
    switch (act) {
    case BL_ACT_RELU:
        act_fwd_kernel<BL_ACT_RELU><<<g, BLK_THREADS, 0, s>>>(out, in, n, alpha);
        break;
    case BL_ACT_LEAKY_RELU:
        act_fwd_kernel<BL_ACT_LEAKY_RELU><<<g, BLK_THREADS, 0, s>>>(out, in, n, alpha);
        break;
    case BL_ACT_TANH:
        act_fwd_kernel<BL_ACT_TANH><<<g, BLK_THREADS, 0, s>>>(out, in, n, alpha);
        break;
    case BL_ACT_SIGMOID:
        act_fwd_kernel<BL_ACT_SIGMOID><<<g, BLK_THREADS, 0, s>>>(out, in, n, alpha);
        break;
    case BL_ACT_GELU:
        act_fwd_kernel<BL_ACT_GELU><<<g, BLK_THREADS, 0, s>>>(out, in, n, alpha);
        break;
    default:
        return cudaErrorInvalidValue;
    }
    return cudaGetLastError();
}

extern "C" cudaError_t blk_act_backward(cudaStream_t s, float *din, const float *dout,
                                        const float *in, const float *out, size_t n, bl_act act,
                                        float alpha) {
    if (n == 0) return cudaSuccess;
    const unsigned g = elt_grid(n);
    switch (act) {
    case BL_ACT_RELU:
        act_bwd_kernel<BL_ACT_RELU><<<g, BLK_THREADS, 0, s>>>(din, dout, in, out, n, alpha);
        break;
    case BL_ACT_LEAKY_RELU:
        act_bwd_kernel<BL_ACT_LEAKY_RELU><<<g, BLK_THREADS, 0, s>>>(din, dout, in, out, n, alpha);
        break;
    case BL_ACT_TANH:
        act_bwd_kernel<BL_ACT_TANH><<<g, BLK_THREADS, 0, s>>>(din, dout, in, out, n, alpha);
        break;
    case BL_ACT_SIGMOID:
        act_bwd_kernel<BL_ACT_SIGMOID><<<g, BLK_THREADS, 0, s>>>(din, dout, in, out, n, alpha);
        break;
    case BL_ACT_GELU:
        act_bwd_kernel<BL_ACT_GELU><<<g, BLK_THREADS, 0, s>>>(din, dout, in, out, n, alpha);
        break;
    default:
        return cudaErrorInvalidValue;
    }
    return cudaGetLastError();
}

/* ---- dropout -------------------------------------------------------------- */

/* One thread per Philox block of the call's stream range [first, first + n):
 * the block's four words (dropout_mask.h's bl_dropout_block, the CPU's own
 * code) decide its up to four elements: kept when word >> 8 >= threshold;
 * out = in * (kept ? 1/(1-p) : 0), so a NaN input stays NaN where dropped. */
static __global__ void dropout_fwd_kernel(float *out, uint8_t *mask, const float *in, size_t n,
                                          bl_dropout_key key, uint32_t threshold,
                                          float keep_scale) {
    const uint64_t first = key.first, b0 = first >> 2;
    const uint64_t blocks = ((first + n - 1) >> 2) - b0 + 1;
    for (uint64_t j = blk_start(); j < blocks; j += blk_stride()) {
        uint32_t w[4];
        bl_dropout_block(w, &key, b0 + j);
#pragma unroll
        for (int k = 0; k < 4; k++) {
            const uint64_t e = ((b0 + j) << 2) + (uint64_t)k;
            if (e < first || e - first >= n) continue;
            const size_t i = (size_t)(e - first);
            const uint8_t m = (w[k] >> 8) >= threshold;
            mask[i] = m;
            out[i] = in[i] * (m ? keep_scale : 0.0f);
        }
    }
}

extern "C" cudaError_t blk_dropout_forward(cudaStream_t s, float *out, uint8_t *mask,
                                           const float *in, size_t n, float p,
                                           const bl_dropout_key *key) {
    if (n == 0) return cudaSuccess;
    const uint32_t threshold = bl_dropout_threshold(p); /* host: ceil in double */
    const float keep_scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    const size_t blocks = ((key->first + n - 1) >> 2) - (key->first >> 2) + 1;
    dropout_fwd_kernel<<<elt_grid(blocks), BLK_THREADS, 0, s>>>(out, mask, in, n, *key, threshold,
                                                                keep_scale);
    return cudaGetLastError();
}

/* din = dout * (mask ? 1/(1-p) : 0) elementwise. */
static __global__ void dropout_bwd_kernel(float *din, const float *dout, const uint8_t *mask,
                                          size_t n, float keep_scale) {
    GRID_STRIDE(i, n) {
        din[i] = dout[i] * (mask[i] ? keep_scale : 0.0f);
    }
}

extern "C" cudaError_t blk_dropout_backward(cudaStream_t s, float *din, const float *dout,
                                            const uint8_t *mask, size_t n, float p) {
    if (n == 0) return cudaSuccess;
    const float keep_scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    dropout_bwd_kernel<<<elt_grid(n), BLK_THREADS, 0, s>>>(din, dout, mask, n, keep_scale);
    return cudaGetLastError();
}

/* ---- batch norm, eval mode ---------------------------------------------------- */

#define BN_EVAL_SMEM_C 4096 /* channels whose scale/shift a block keeps in shared memory */

/* batchnorm.c's per-channel scale and shift from the running statistics (in
 * double, rounded to float). */
static __device__ __forceinline__ float2 bn_eval_affine(int c, const float *gamma,
                                                        const float *beta, const float *run_mean,
                                                        const float *run_var, float eps) {
    const double rs = 1.0 / sqrt((double)run_var[c] + (double)eps);
    const double g = gamma ? gamma[c] : 1.0, bt = beta ? beta[c] : 0.0;
    return make_float2((float)(g * rs), (float)(bt - run_mean[c] * g * rs));
}

/* out = in * scale[c] + shift[c] elementwise. Each block first computes the
 * C pairs into shared memory (when C <= BN_EVAL_SMEM_C; else per element). */
static __global__ void bn_eval_kernel(float *out, const float *in, const float *gamma,
                                      const float *beta, const float *run_mean,
                                      const float *run_var, unsigned C, unsigned HW, size_t n,
                                      float eps) {
    extern __shared__ float2 affine[];
    const bool cached = C <= BN_EVAL_SMEM_C; /* the same for the whole block */
    if (cached) {
        for (unsigned c = threadIdx.x; c < C; c += blockDim.x)
            affine[c] = bn_eval_affine((int)c, gamma, beta, run_mean, run_var, eps);
        __syncthreads();
    }
    BlkRadix3 r;
    r.init(blk_start(), blk_stride(), HW, C);
    for (size_t i = blk_start(); i < n; i += blk_stride(), r.next()) {
        const float2 a = cached ? affine[r.mid]
                                : bn_eval_affine((int)r.mid, gamma, beta, run_mean, run_var, eps);
        out[i] = in[i] * a.x + a.y;
    }
}

extern "C" cudaError_t blk_batchnorm_forward_eval(cudaStream_t s, float *out, const float *in,
                                                  const float *gamma, const float *beta,
                                                  const float *run_mean, const float *run_var,
                                                  int B, int C, int HW, float eps) {
    if (B <= 0 || C <= 0 || HW <= 0) return cudaSuccess;
    const size_t n = (size_t)B * C * HW;
    const size_t smem = C <= BN_EVAL_SMEM_C ? (size_t)C * sizeof(float2) : 0;
    bn_eval_kernel<<<elt_grid(n), BLK_THREADS, smem, s>>>(out, in, gamma, beta, run_mean, run_var,
                                                          (unsigned)C, (unsigned)HW, n, eps);
    return cudaGetLastError();
}

/* ---- loss gradients --------------------------------------------------------- */

/* dlogits = scale * (probs - onehot(label)) elementwise; (k, row) by counter.
 * A label outside [0, K) matches no k: its row has no one-hot. */
static __global__ void xent_bwd_kernel(float *dlogits, const float *probs, const int32_t *labels,
                                       size_t n, unsigned K, float scale) {
    BlkRadix3 r;
    r.init(blk_start(), blk_stride(), K, 1u);
    for (size_t i = blk_start(); i < n; i += blk_stride(), r.next()) {
        const float pr = probs[i];
        dlogits[i] = (int32_t)r.lo == labels[r.hi] ? scale * (pr - 1.0f) : scale * pr;
    }
}

extern "C" cudaError_t blk_softmax_xent_backward(cudaStream_t s, float *dlogits, const float *probs,
                                                 const int32_t *labels, int B, int K, float scale) {
    if (B <= 0 || K <= 0) return cudaSuccess;
    const size_t n = (size_t)B * K;
    xent_bwd_kernel<<<elt_grid(n), BLK_THREADS, 0, s>>>(dlogits, probs, labels, n, (unsigned)K,
                                                        scale);
    return cudaGetLastError();
}

/* dpred = f (pred - target), f = 2 scale / K. */
static __global__ void mse_bwd_kernel(float *dpred, const float *pred, const float *target,
                                      size_t n, float f) {
    GRID_STRIDE(i, n) {
        dpred[i] = f * (pred[i] - target[i]);
    }
}

extern "C" cudaError_t blk_mse_backward(cudaStream_t s, float *dpred, const float *pred,
                                        const float *target, int B, int K, float scale) {
    if (B <= 0 || K <= 0) return cudaSuccess;
    const size_t n = (size_t)B * K;
    const float f = 2.0f * scale / (float)K;
    mse_bwd_kernel<<<elt_grid(n), BLK_THREADS, 0, s>>>(dpred, pred, target, n, f);
    return cudaGetLastError();
}

/* ---- flat arrays and optimizer updates ------------------------------------ */

static __global__ void scale_kernel(float *x, size_t n, float a) {
    GRID_STRIDE(i, n) {
        x[i] *= a;
    }
}
static __global__ void axpy_kernel(float *y, const float *x, size_t n, float a) {
    GRID_STRIDE(i, n) {
        y[i] += a * x[i];
    }
}
static __global__ void fill_kernel(float *x, size_t n, float v) {
    GRID_STRIDE(i, n) {
        x[i] = v;
    }
}

extern "C" cudaError_t blk_scale(cudaStream_t s, float *x, size_t n, float a) {
    if (n == 0) return cudaSuccess;
    scale_kernel<<<elt_grid(n), BLK_THREADS, 0, s>>>(x, n, a);
    return cudaGetLastError();
}

extern "C" cudaError_t blk_axpy(cudaStream_t s, float *y, const float *x, size_t n, float a) {
    if (n == 0) return cudaSuccess;
    axpy_kernel<<<elt_grid(n), BLK_THREADS, 0, s>>>(y, x, n, a);
    return cudaGetLastError();
}

extern "C" cudaError_t blk_fill(cudaStream_t s, float *x, size_t n, float v) {
    if (n == 0) return cudaSuccess;
    fill_kernel<<<elt_grid(n), BLK_THREADS, 0, s>>>(x, n, v);
    return cudaGetLastError();
}

/* update.c's SGD, elementwise: mode 0 plain (no buffer), 1 the first step with
 * momentum (buf = g'), 2 later steps (buf = mom buf + g'); g' = g + wd p. */
static __global__ void sgd_kernel(float *p, float *buf, const float *g, size_t n, float lr,
                                  float mom, int nesterov, float wd, int mode) {
    GRID_STRIDE(i, n) {
        const float d = g[i] + wd * p[i];
        if (mode == 0) {
            p[i] -= lr * d;
        } else if (mode == 1) {
            buf[i] = d;
            p[i] -= lr * (nesterov ? d + mom * d : d);
        } else {
            const float b = mom * buf[i] + d;
            buf[i] = b;
            p[i] -= lr * (nesterov ? d + mom * b : b);
        }
    }
}

extern "C" cudaError_t blk_sgd_step(cudaStream_t s, float *p, float *buf, const float *g, size_t n,
                                    float lr, float momentum, int nesterov, float weight_decay,
                                    int first_step) {
    if (n == 0) return cudaSuccess;
    if (momentum == 0.0f) buf = NULL; /* as update.c: no momentum, no buffer */
    const int mode = !buf ? 0 : first_step ? 1 : 2;
    sgd_kernel<<<elt_grid(n), BLK_THREADS, 0, s>>>(p, buf, g, n, lr, momentum, nesterov,
                                                   weight_decay, mode);
    return cudaGetLastError();
}

/* update.c's adam_loop, elementwise; the per-step scalars come from the host. */
static __global__ void adam_kernel(float *p, float *m, float *v, const float *g, size_t n,
                                   float decay, float l2, float b1, float b2, float one_m_b1,
                                   float one_m_b2, float eps, float step_size, float bc2_sqrt) {
    GRID_STRIDE(i, n) {
        const float pi = p[i] * decay;
        const float gi = g[i] + l2 * pi;
        const float mi = b1 * m[i] + one_m_b1 * gi;
        const float vi = b2 * v[i] + one_m_b2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        const float denom = sqrtf(vi) / bc2_sqrt + eps;
        p[i] = pi - step_size * (mi / denom);
    }
}

extern "C" cudaError_t blk_adam_step(cudaStream_t s, float *p, float *m, float *v, const float *g,
                                     size_t n, float lr, float beta1, float beta2, float eps,
                                     float weight_decay, int decoupled, long t) {
    if (n == 0) return cudaSuccess;
    if (t < 1) t = 1; /* as update.c */
    const double bc1 = 1.0 - pow((double)beta1, (double)t);
    const double bc2 = 1.0 - pow((double)beta2, (double)t);
    const float step_size = (float)((double)lr / bc1);
    const float bc2_sqrt = (float)sqrt(bc2);
    const float decay = decoupled ? (float)(1.0 - (double)lr * weight_decay) : 1.0f;
    const float l2 = decoupled ? 0.0f : weight_decay;
    const float one_m_b1 = (float)(1.0 - (double)beta1), one_m_b2 = (float)(1.0 - (double)beta2);
    adam_kernel<<<elt_grid(n), BLK_THREADS, 0, s>>>(p, m, v, g, n, decay, l2, beta1, beta2,
                                                    one_m_b1, one_m_b2, eps, step_size, bc2_sqrt);
    return cudaGetLastError();
}
