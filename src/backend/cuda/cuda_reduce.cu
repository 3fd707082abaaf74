/* The CUDA backend's reductions: bias gradients, batch norm in training
 * (statistics, and the backward's sums), the losses' forward passes, per-
 * example gradient norms, sum of squares and the finiteness check.
 *
 * Every sum is accumulated in double in an order fixed by the launch shape,
 * which is a function of the sizes alone, so a result has the same bits on
 * every run: no atomics, no order left to the scheduler.
 *
 *  - Per-channel sums (bias gradients, batch norm), whose launchers have no
 *    scratch: one block of CH_THREADS threads owns a tile of CW channels and
 *    does everything for them, including the passes that use the sums. Each
 *    thread walks its lane of one channel's elements in order (ChanWalk), with
 *    8 or 16 loads in flight, then a fixed tree in shared memory adds the
 *    lanes (tile_sum). CW is 1 (a channel's elements are runs of HW floats)
 *    unless HW = 1, where channels are the contiguous columns of a row and CW
 *    grows to 8 (a warp then reads 4 rows of 32 bytes) while there are still
 *    at least 128 tiles.
 *  - Scalar results (losses, hits, norms, flags): a first kernel writes one
 *    partial per block into the caller's scratch (grid capped at
 *    BLK_RED_BLOCKS per array), then finish_kernel, one block, adds them in
 *    order and overwrites the device scalars. */
#include <math.h>
#include "backend/cuda/cuda_util.cuh"

#ifndef CH_THREADS /* a power of two, 32 to 1024 (a test may shrink it) */
#define CH_THREADS 1024
#endif
#define ROW_WARPS (BLK_THREADS / 32) /* rows in flight per block: one warp per row */

/* ---- per-channel walks ------------------------------------------------------ */

/* The elements of one channel c of x(B, C, HW) that a lane reads: m = lane,
 * lane + RL, ... < B * HW, where element m = b * HW + hw lies at
 * (b * C + c) * HW + hw; the offset is advanced without division. */
struct ChanWalk {
    size_t off;  /* offset of the lane's current element */
    size_t left; /* elements left to the lane */
    unsigned hw, HW, dhw;
    size_t doff, carry;
    __device__ __forceinline__ void init(int B, int C, int HW_, int c, unsigned lane, unsigned RL) {
        const size_t N = (size_t)B * HW_;
        HW = (unsigned)HW_, dhw = RL % HW;
        doff = (size_t)(RL / HW) * C * HW + dhw; /* m += RL without a carry out of hw */
        carry = (size_t)(C - 1) * HW;            /* and what a carry adds */
        off = 0, hw = 0, left = 0;
        if (c < C && lane < N) {
            left = (N - 1 - lane) / RL + 1;
            hw = lane % HW;
            off = ((size_t)(lane / HW) * C + c) * HW + hw;
        }
    }
    __device__ __forceinline__ void next() {
        hw += dhw, off += doff;
        if (hw >= HW) hw -= HW, off += carry;
    }
};

/* The walks below read U elements a group (U loads in flight per thread; a
 * block per tile leaves few blocks to an SM, so the loads in flight must come
 * from each thread), then use them in walk order. Sums are in walk order. */
#define WALK1 16 /* group of the walks over one array */
#define WALK2 8  /* and over two */

/* Sum of x over the walk. */
static __device__ __forceinline__ double walk_sum(ChanWalk w, const float *__restrict__ x) {
    double acc = 0.0;
    for (; w.left >= WALK1; w.left -= WALK1) {
        float v[WALK1];
#pragma unroll
        for (int u = 0; u < WALK1; u++)
            v[u] = x[w.off], w.next();
#pragma unroll
        for (int u = 0; u < WALK1; u++)
            acc += (double)v[u];
    }
    for (; w.left > 0; w.left--)
        acc += (double)x[w.off], w.next();
    return acc;
}

/* Sum of (x - m)^2 over the walk (deviations in double). */
static __device__ __forceinline__ double walk_sum_sqdev(ChanWalk w, const float *__restrict__ x,
                                                        float m) {
    double acc = 0.0;
    const double md = m;
    for (; w.left >= WALK1; w.left -= WALK1) {
        float v[WALK1];
#pragma unroll
        for (int u = 0; u < WALK1; u++)
            v[u] = x[w.off], w.next();
#pragma unroll
        for (int u = 0; u < WALK1; u++) {
            const double d = (double)v[u] - md;
            acc += d * d;
        }
    }
    for (; w.left > 0; w.left--) {
        const double d = (double)x[w.off] - md;
        acc += d * d, w.next();
    }
    return acc;
}

/* *sdy = sum dy and *sdyx = sum dy (x - m) over the walk. */
static __device__ __forceinline__ void walk_sum_dy(ChanWalk w, const float *__restrict__ dy,
                                                   const float *__restrict__ x, float m,
                                                   double *sdy, double *sdyx) {
    double a = 0.0, b = 0.0;
    const double md = m;
    for (; w.left >= WALK2; w.left -= WALK2) {
        float g[WALK2], v[WALK2];
#pragma unroll
        for (int u = 0; u < WALK2; u++)
            g[u] = dy[w.off], v[u] = x[w.off], w.next();
#pragma unroll
        for (int u = 0; u < WALK2; u++) {
            a += (double)g[u];
            b += (double)g[u] * ((double)v[u] - md);
        }
    }
    for (; w.left > 0; w.left--) {
        const float g = dy[w.off], v = x[w.off];
        a += (double)g;
        b += (double)g * ((double)v - md);
        w.next();
    }
    *sdy = a, *sdyx = b;
}

/* out = x s + t over the walk. A group's loads come before its stores (a
 * second walker, ws, retraces the offsets), so out may be x (in place). */
static __device__ __forceinline__ void walk_affine(ChanWalk w, float *out, const float *x, float s,
                                                   float t) {
    ChanWalk ws = w;
    for (; w.left >= WALK1; w.left -= WALK1) {
        float v[WALK1];
#pragma unroll
        for (int u = 0; u < WALK1; u++)
            v[u] = x[w.off], w.next();
#pragma unroll
        for (int u = 0; u < WALK1; u++)
            out[ws.off] = v[u] * s + t, ws.next();
    }
    for (; w.left > 0; w.left--)
        out[w.off] = x[w.off] * s + t, w.next();
}

/* din = k1 dy + k2 (x - m) + k3 over the walk; din may be dy (in place). */
static __device__ __forceinline__ void walk_bn_din(ChanWalk w, float *din, const float *dy,
                                                   const float *x, float m, float k1, float k2,
                                                   float k3) {
    ChanWalk ws = w;
    for (; w.left >= WALK2; w.left -= WALK2) {
        float g[WALK2], v[WALK2];
#pragma unroll
        for (int u = 0; u < WALK2; u++)
            g[u] = dy[w.off], v[u] = x[w.off], w.next();
#pragma unroll
        for (int u = 0; u < WALK2; u++)
            din[ws.off] = k1 * g[u] + k2 * (v[u] - m) + k3, ws.next();
    }
    for (; w.left > 0; w.left--)
        din[w.off] = k1 * dy[w.off] + k2 * (x[w.off] - m) + k3, w.next();
}

/* Adds v over the RL lanes of each channel of the tile: thread t = lane * cw + cc
 * holds its lane's v; a fixed halving tree in shared memory. Every thread of
 * the block must call it; each gets its channel's total. */
static __device__ __forceinline__ double tile_sum(double *red, double v, unsigned cw, unsigned lane,
                                                  unsigned RL) {
    const unsigned t = threadIdx.x;
    __syncthreads(); /* red is free: the previous call's readers are done */
    red[t] = v;
    __syncthreads();
    for (unsigned s = RL / 2; s > 0; s >>= 1) {
        if (lane < s) red[t] += red[t + s * cw];
        __syncthreads();
    }
    return red[t % cw];
}

/* Channels per block for x(B, C, HW): see the top of the file. */
static unsigned chan_width(int C, int HW) {
    unsigned cw = 1;
    if (HW == 1)
        while (cw < 8 && ((long long)C + 2 * cw - 1) / (2 * cw) >= 128)
            cw *= 2;
    return cw;
}

/* The tile shape of this thread: channel c, lane within it, lanes per channel. */
#define TILE_SETUP(cw)                                                                             \
    const unsigned cc = threadIdx.x % (cw), lane = threadIdx.x / (cw), RL = CH_THREADS / (cw);     \
    const int c = (int)(blockIdx.x * (cw) + cc)

/* ---- bias gradients --------------------------------------------------------- */

/* db[c] += sum over (b, hw) of g(B, C, HW), one tile of channels a block. */
static __global__ void __launch_bounds__(CH_THREADS)
    chan_sum_kernel(float *db, const float *g, int B, int C, int HW, unsigned cw) {
    __shared__ double red[CH_THREADS];
    TILE_SETUP(cw);
    ChanWalk w;
    w.init(B, C, HW, c, lane, RL);
    const double sum = tile_sum(red, walk_sum(w, g), cw, lane, RL);
    if (lane == 0 && c < C) db[c] += (float)sum;
}

static cudaError_t chan_sum(cudaStream_t s, float *db, const float *g, int B, int C, int HW) {
    if (!db || B <= 0 || C <= 0 || HW <= 0) return cudaSuccess;
    const unsigned cw = chan_width(C, HW);
    chan_sum_kernel<<<(C + cw - 1) / cw, CH_THREADS, 0, s>>>(db, g, B, C, HW, cw);
    return cudaGetLastError();
}

extern "C" cudaError_t blk_bias_grad_rows(cudaStream_t s, float *db, const float *g, int rows,
                                          int cols) {
    return chan_sum(s, db, g, rows, cols, 1);
}

extern "C" cudaError_t blk_bias_grad_channels(cudaStream_t s, float *db, const float *g, int B,
                                              int K, int PQ) {
    return chan_sum(s, db, g, B, K, PQ);
}

/* ---- batch norm ------------------------------------------------------------- */

/* batchnorm.c's training forward for a tile of channels: the mean, then the
 * sum of squared deviations from the float mean (two passes, as the CPU),
 * the saved mean/rstd and running statistics (unbiased variance), then
 * out = x scale + shift with scale and shift from the double statistics. */
static __global__ void __launch_bounds__(CH_THREADS)
    bn_train_kernel(float *out, float *mean, float *rstd, float *run_mean, float *run_var,
                    const float *in, const float *gamma, const float *beta, int B, int C, int HW,
                    float momentum, float eps, unsigned cw) {
    __shared__ double red[CH_THREADS];
    TILE_SETUP(cw);
    ChanWalk w;
    w.init(B, C, HW, c, lane, RL);
    const double n = (double)B * HW;
    const double mu = tile_sum(red, walk_sum(w, in), cw, lane, RL) / n;
    const float muf = (float)mu;
    const double m2 = tile_sum(red, walk_sum_sqdev(w, in, muf), cw, lane, RL);
    if (c >= C) return; /* no block-wide step follows */
    const double var = m2 / n;
    const double rs = 1.0 / sqrt(var + (double)eps);
    if (lane == 0) {
        mean[c] = (float)mu;
        rstd[c] = (float)rs;
        if (run_mean) run_mean[c] = (1.0f - momentum) * run_mean[c] + momentum * (float)mu;
        if (run_var) {
            const double unbiased = n > 1 ? m2 / (n - 1) : var;
            run_var[c] = (1.0f - momentum) * run_var[c] + momentum * (float)unbiased;
        }
    }
    const double g = gamma ? gamma[c] : 1.0, bt = beta ? beta[c] : 0.0;
    walk_affine(w, out, in, (float)(g * rs), (float)(bt - mu * g * rs));
}

extern "C" cudaError_t blk_batchnorm_forward_train(cudaStream_t s, float *out, float *mean,
                                                   float *rstd, float *run_mean, float *run_var,
                                                   const float *in, const float *gamma,
                                                   const float *beta, int B, int C, int HW,
                                                   float momentum, float eps) {
    if (B <= 0 || C <= 0 || HW <= 0) return cudaSuccess;
    const unsigned cw = chan_width(C, HW);
    bn_train_kernel<<<(C + cw - 1) / cw, CH_THREADS, 0, s>>>(
        out, mean, rstd, run_mean, run_var, in, gamma, beta, B, C, HW, momentum, eps, cw);
    return cudaGetLastError();
}

/* batchnorm.c's backward for a tile of channels: sum dy and sum dy (x - mean),
 * dbeta/dgamma accumulated, then din = k1 dy + k2 (x - mean) + k3. */
static __global__ void __launch_bounds__(CH_THREADS)
    bn_bwd_kernel(float *din, float *dgamma, float *dbeta, const float *dout, const float *in,
                  const float *mean, const float *rstd, const float *gamma, int B, int C, int HW,
                  unsigned cw) {
    __shared__ double red[CH_THREADS];
    TILE_SETUP(cw);
    ChanWalk w;
    w.init(B, C, HW, c, lane, RL);
    const float m = c < C ? mean[c] : 0.0f;
    double a, b;
    walk_sum_dy(w, dout, in, m, &a, &b);
    const double sdy = tile_sum(red, a, cw, lane, RL);
    double sdyx = tile_sum(red, b, cw, lane, RL);
    if (c >= C) return; /* no block-wide step follows */
    const double n = (double)B * HW, rs = rstd[c];
    sdyx *= rs; /* now sum dy xhat */
    if (lane == 0) {
        if (dbeta) dbeta[c] += (float)sdy;
        if (dgamma) dgamma[c] += (float)sdyx;
    }
    if (!din) return;
    const double g = gamma ? gamma[c] : 1.0;
    walk_bn_din(w, din, dout, in, m, (float)(g * rs), (float)(-g * rs * rs * sdyx / n),
                (float)(-g * rs * sdy / n));
}

extern "C" cudaError_t blk_batchnorm_backward(cudaStream_t s, float *din, float *dgamma,
                                              float *dbeta, const float *dout, const float *in,
                                              const float *mean, const float *rstd,
                                              const float *gamma, int B, int C, int HW) {
    if (B <= 0 || C <= 0 || HW <= 0 || (!din && !dgamma && !dbeta)) return cudaSuccess;
    const unsigned cw = chan_width(C, HW);
    bn_bwd_kernel<<<(C + cw - 1) / cw, CH_THREADS, 0, s>>>(din, dgamma, dbeta, dout, in, mean, rstd,
                                                           gamma, B, C, HW, cw);
    return cudaGetLastError();
}

/* ---- scalar results: partials, then one block ----------------------------- */

/* *sum = the G partials part[0..G) added in order (when sum != NULL);
 * *count = those of part[G..2G) (when count != NULL); *finite = 1 when the
 * first G add to 0 (when finite != NULL). G = 0 gives 0, 0 and 1. */
static __global__ void finish_kernel(const double *part, unsigned G, double *sum, int *count,
                                     int *finite) {
    double a = 0.0, b = 0.0;
    for (unsigned i = threadIdx.x; i < G; i += blockDim.x) {
        a += part[i];
        if (count) b += part[G + i];
    }
    a = blk_block_sum(a);
    b = blk_block_sum(b);
    if (threadIdx.x == 0) {
        if (sum) *sum = a;
        if (count) *count = (int)b;
        if (finite) *finite = a == 0.0;
    }
}

static cudaError_t finish(cudaStream_t s, const double *part, unsigned G, double *sum, int *count,
                          int *finite) {
    finish_kernel<<<1, BLK_THREADS, 0, s>>>(part, G, sum, count, finite);
    return cudaGetLastError();
}

/* *sum = v, *count = 0 (a result that needs no pass over the data). */
static __global__ void set_result_kernel(double *sum, double v, int *count) {
    if (sum) *sum = v;
    if (count) *count = 0;
}

/* ---- losses: one warp per row ------------------------------------------------ */

/* The first maximum of row x[0..K), K >= 1, as the CPU's strict > scan from
 * x[0] (loss.c, and host_ops.c's argmax_hits): lanes scan their columns, then
 * butterflies keep the larger value, the lower index on ties. That choice
 * does not depend on the order, so every lane gets the same pair. NaN never
 * wins a comparison, except at x[0], where the CPU's scan starts and stays. */
static __device__ __forceinline__ void row_argmax(const float *x, int K, int lane, float *mx,
                                                  int *am) {
    float bv = -INFINITY;
    int bi = K;
    for (int k = lane; k < K; k += 32) {
        const float v = x[k];
        if (v > bv || (v == bv && k < bi)) bv = v, bi = k;
    }
    for (int o = 16; o > 0; o >>= 1) {
        const float ov = __shfl_xor_sync(BLK_FULL_MASK, bv, o);
        const int oi = __shfl_xor_sync(BLK_FULL_MASK, bi, o);
        if (ov > bv || (ov == bv && oi < bi)) bv = ov, bi = oi;
    }
    const float x0 = x[0];
    if (x0 != x0) bv = x0, bi = 0;
    *mx = bv, *am = bi;
}

/* Per block: the sums of the warps' loss and hits (warp order) into
 * part[blockIdx.x] and part[gridDim.x + blockIdx.x]. */
static __device__ __forceinline__ void rows_partial(double *part, double loss, double hits) {
    __shared__ double wl[32], wh[32];
    const unsigned lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) wl[warp] = loss, wh[warp] = hits;
    __syncthreads();
    if (threadIdx.x == 0) {
        double a = 0.0, b = 0.0;
        for (unsigned i = 0; i < (blockDim.x >> 5); i++)
            a += wl[i], b += wh[i];
        part[blockIdx.x] = a;
        part[gridDim.x + blockIdx.x] = b;
    }
}

#define FOR_ROWS(row, B)                                                                           \
    for (long long row = (long long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);           \
         row < (B); row += (long long)gridDim.x * (blockDim.x >> 5))

/* loss.c's softmax cross-entropy, one warp per row: max, sum of expf(x - max)
 * in double, probs = e * (float)(1 / sum), loss = log(sum) - (x[y] - max);
 * a label outside [0, K) makes the loss NaN and is no hit. */
static __global__ void xent_fwd_kernel(double *part, float *probs, const float *logits,
                                       const int32_t *labels, int B, int K) {
    const int lane = (int)(threadIdx.x & 31);
    double loss = 0.0, hits = 0.0; /* the same in every lane of a warp */
    FOR_ROWS(row, B) {
        const float *x = logits + (size_t)row * K;
        float *pr = probs + (size_t)row * K;
        float mx;
        int am;
        row_argmax(x, K, lane, &mx, &am);
        double sum = 0.0;
        for (int k = lane; k < K; k += 32)
            sum += (double)expf(x[k] - mx);
        sum = blk_warp_sum(sum);
        const float inv = (float)(1.0 / sum);
        for (int k = lane; k < K; k += 32)
            pr[k] = expf(x[k] - mx) * inv;
        const int32_t y = labels[row];
        if (y < 0 || y >= K) {
            loss += (double)NAN;
        } else {
            loss += log(sum) - ((double)x[y] - (double)mx);
            hits += am == y;
        }
    }
    rows_partial(part, loss, hits);
}

extern "C" cudaError_t blk_softmax_xent_forward(cudaStream_t s, double *scratch, double *loss_sum,
                                                int *correct, float *probs, const float *logits,
                                                const int32_t *labels, int B, int K) {
    if (B <= 0) return finish(s, scratch, 0, loss_sum, correct, NULL); /* 0 and 0 */
    if (K <= 0) {
        /* loss.c: NaN, no hits */
        set_result_kernel<<<1, 1, 0, s>>>(loss_sum, (double)NAN, correct);
        return cudaGetLastError();
    }
    const unsigned G = blk_grid((size_t)B, ROW_WARPS, BLK_RED_BLOCKS);
    xent_fwd_kernel<<<G, BLK_THREADS, 0, s>>>(scratch, probs, logits, labels, B, K);
    const cudaError_t e = cudaGetLastError();
    return e != cudaSuccess ? e : finish(s, scratch, G, loss_sum, correct, NULL);
}

/* host_ops.c's MSE against one-hot labels, one warp per row: target written
 * (a label outside [0, K) gives a zero row), loss = sum_k (pred - target)^2 / K
 * in double, hits of the first-maximum argmax. */
static __global__ void mse_fwd_kernel(double *part, float *target, const float *pred,
                                      const int32_t *labels, int B, int K) {
    const int lane = (int)(threadIdx.x & 31);
    double loss = 0.0, hits = 0.0;
    FOR_ROWS(row, B) {
        const float *p = pred + (size_t)row * K;
        float *t = target + (size_t)row * K;
        float mx;
        int am;
        row_argmax(p, K, lane, &mx, &am);
        const int32_t y = labels[row];
        double sq = 0.0;
        for (int k = lane; k < K; k += 32) {
            const float tk = k == y ? 1.0f : 0.0f;
            t[k] = tk;
            const double d = (double)p[k] - tk;
            sq += d * d;
        }
        loss += blk_warp_sum(sq) / K;
        hits += am == y;
    }
    rows_partial(part, loss, hits);
}

extern "C" cudaError_t blk_mse_forward(cudaStream_t s, double *scratch, double *loss_sum,
                                       int *correct, float *target, const float *pred,
                                       const int32_t *labels, int B, int K) {
    if (B <= 0) return finish(s, scratch, 0, loss_sum, correct, NULL);
    if (K <= 0) {
        /* the CPU's s / K is 0 / 0 */
        set_result_kernel<<<1, 1, 0, s>>>(loss_sum, (double)NAN, correct);
        return cudaGetLastError();
    }
    const unsigned G = blk_grid((size_t)B, ROW_WARPS, BLK_RED_BLOCKS);
    mse_fwd_kernel<<<G, BLK_THREADS, 0, s>>>(scratch, target, pred, labels, B, K);
    const cudaError_t e = cudaGetLastError();
    return e != cudaSuccess ? e : finish(s, scratch, G, loss_sum, correct, NULL);
}

/* host_ops.c's per-example squared gradient norms, one warp per row r:
 * g = |dz_r|^2; when g > 0, add g (|x_r|^2 + bias) (x_r is not read otherwise,
 * so 0 * Inf never makes a NaN where the CPU has none). */
static __global__ void example_sumsq_kernel(double *part, const float *dz, const float *x, int B,
                                            int in_dim, int out_dim, int bias) {
    const int lane = (int)(threadIdx.x & 31);
    double acc = 0.0;
    FOR_ROWS(row, B) {
        const float *g = dz + (size_t)row * out_dim, *xr = x + (size_t)row * in_dim;
        double gs = 0.0;
        for (int k = lane; k < out_dim; k += 32)
            gs += (double)g[k] * g[k];
        gs = blk_warp_sum(gs); /* the same in every lane: the branch is warp-uniform */
        if (gs > 0) {
            double xs = 0.0;
            for (int k = lane; k < in_dim; k += 32)
                xs += (double)xr[k] * xr[k];
            acc += gs * (blk_warp_sum(xs) + bias);
        }
    }
    rows_partial(part, acc, 0.0);
}

extern "C" cudaError_t blk_per_example_sumsq(cudaStream_t s, double *scratch, double *sum,
                                             const float *dz, const float *x, int B, int in_dim,
                                             int out_dim, int bias) {
    if (B <= 0) return finish(s, scratch, 0, sum, NULL, NULL);
    const unsigned G = blk_grid((size_t)B, ROW_WARPS, BLK_RED_BLOCKS);
    example_sumsq_kernel<<<G, BLK_THREADS, 0, s>>>(scratch, dz, x, B, in_dim < 0 ? 0 : in_dim,
                                                   out_dim < 0 ? 0 : out_dim, bias);
    const cudaError_t e = cudaGetLastError();
    return e != cudaSuccess ? e : finish(s, scratch, G, sum, NULL, NULL);
}

/* ---- flat reductions ------------------------------------------------------------ */

#define FLAT_UNROLL 4 /* grid-stride loads in flight per thread */

/* Per block: the sum of x^2 (double), each thread over its grid-stride
 * elements in order, four loads at a time; then the block's fixed-order sum. */
static __global__ void sumsq_kernel(double *part, const float *x, size_t n) {
    const size_t step = blk_stride();
    size_t i = blk_start();
    double acc = 0.0;
    for (; i + (FLAT_UNROLL - 1) * step < n; i += FLAT_UNROLL * step) {
        float v[FLAT_UNROLL];
#pragma unroll
        for (int u = 0; u < FLAT_UNROLL; u++)
            v[u] = x[i + u * step];
#pragma unroll
        for (int u = 0; u < FLAT_UNROLL; u++)
            acc += (double)v[u] * v[u];
    }
    for (; i < n; i += step)
        acc += (double)x[i] * x[i];
    acc = blk_block_sum(acc);
    if (threadIdx.x == 0) part[blockIdx.x] = acc;
}

extern "C" cudaError_t blk_sumsq(cudaStream_t s, double *scratch, double *out, const float *x,
                                 size_t n) {
    if (n == 0) return finish(s, scratch, 0, out, NULL, NULL); /* 0 */
    const unsigned G = blk_grid(n, (size_t)BLK_THREADS * FLAT_UNROLL, BLK_RED_BLOCKS);
    sumsq_kernel<<<G, BLK_THREADS, 0, s>>>(scratch, x, n);
    const cudaError_t e = cudaGetLastError();
    return e != cudaSuccess ? e : finish(s, scratch, G, out, NULL, NULL);
}

/* Per block: 1.0 when any element has the all-ones exponent (NaN or Inf;
 * bits, as flat.c, not float compares), else 0.0. */
static __global__ void nonfinite_kernel(double *part, const float *x, size_t n) {
    const size_t step = blk_stride();
    size_t i = blk_start();
    unsigned bad = 0;
    for (; i + (FLAT_UNROLL - 1) * step < n; i += FLAT_UNROLL * step) {
        float v[FLAT_UNROLL];
#pragma unroll
        for (int u = 0; u < FLAT_UNROLL; u++)
            v[u] = x[i + u * step];
#pragma unroll
        for (int u = 0; u < FLAT_UNROLL; u++)
            bad |= (__float_as_uint(v[u]) & 0x7f800000u) == 0x7f800000u;
    }
    for (; i < n; i += step)
        bad |= (__float_as_uint(x[i]) & 0x7f800000u) == 0x7f800000u;
    bad = __syncthreads_or(bad);
    if (threadIdx.x == 0) part[blockIdx.x] = bad ? 1.0 : 0.0;
}

extern "C" cudaError_t blk_all_finite(cudaStream_t s, double *scratch, int *out, const float *x,
                                      size_t n) {
    if (n == 0) return finish(s, scratch, 0, NULL, NULL, out); /* 1 */
    const unsigned G = blk_grid(n, (size_t)BLK_THREADS * FLAT_UNROLL, BLK_RED_BLOCKS);
    nonfinite_kernel<<<G, BLK_THREADS, 0, s>>>(scratch, x, n);
    const cudaError_t e = cudaGetLastError();
    return e != cudaSuccess ? e : finish(s, scratch, G, NULL, NULL, out);
}
