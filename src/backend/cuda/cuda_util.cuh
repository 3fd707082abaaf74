/* What the two kernel files of the CUDA backend share (cuda_kernels.cu:
 * elementwise passes; cuda_reduce.cu: reductions): launch shapes, an index
 * counter that replaces divisions in grid-stride loops, and fixed-order sums.
 * Internal to src/backend/cuda; compiled by nvcc only. */
#ifndef BL_BACKEND_CUDA_UTIL_CUH
#define BL_BACKEND_CUDA_UTIL_CUH

#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>
#include "backend/cuda/cuda_kernels.h"

#define BLK_THREADS 256     /* block of the elementwise and flat-reduction kernels */
#ifndef BLK_MAX_BLOCKS      /* (a test may shrink the grids to exercise the strides) */
#define BLK_MAX_BLOCKS 2048 /* grid cap of the elementwise kernels (grid-stride loops) */
#endif
#ifndef BLK_RED_BLOCKS
#define BLK_RED_BLOCKS 1024 /* grid cap of the reductions: partial sums per array */
#endif
#define BLK_FULL_MASK 0xffffffffu

static_assert(BLK_THREADS % 32 == 0 && BLK_THREADS <= 1024, "whole warps");
static_assert(2 * BLK_RED_BLOCKS <= BLK_SCRATCH_DOUBLES, "two arrays of partials fit scratch");

/* Blocks for `work` items at per_block items a block, at least 1, at most cap. */
static inline unsigned blk_grid(size_t work, size_t per_block, unsigned cap) {
    const size_t b = (work + per_block - 1) / per_block;
    return b == 0 ? 1u : b < cap ? (unsigned)b : cap;
}

/* The flat index of this thread and the grid's stride, for grid-stride loops. */
static __device__ __forceinline__ size_t blk_start() {
    return (size_t)blockIdx.x * blockDim.x + threadIdx.x;
}
static __device__ __forceinline__ size_t blk_stride() {
    return (size_t)gridDim.x * blockDim.x;
}

/* The digits of i = (hi * D1 + mid) * D0 + lo, kept up to date as i advances
 * by a fixed step (a grid stride), so a loop needs no division per element:
 * each digit moves by the step's own digit plus the carry from below. E.g.
 * (hw, c, b) of an NCHW element with D0 = HW, D1 = C; (q, p, plane) of a
 * pooling output with D0 = Q, D1 = P; (col, -, row) with D0 = cols, D1 = 1. */
struct BlkRadix3 {
    unsigned lo, mid; /* lo < D0, mid < D1 */
    size_t hi;
    unsigned D0, D1, dlo, dmid;
    size_t dhi;
    __device__ __forceinline__ void init(size_t i, size_t step, unsigned d0, unsigned d1) {
        D0 = d0, D1 = d1;
        lo = (unsigned)(i % d0), mid = (unsigned)(i / d0 % d1), hi = i / d0 / d1;
        dlo = (unsigned)(step % d0), dmid = (unsigned)(step / d0 % d1), dhi = step / d0 / d1;
    }
    /* Digits of i + step. Each sum stays below twice its radix (< 2^32: radices are
     * ints), so one subtraction carries. */
    __device__ __forceinline__ void next() {
        lo += dlo;
        unsigned c = lo >= D0;
        if (c) lo -= D0;
        mid += dmid + c;
        c = mid >= D1;
        if (c) mid -= D1;
        hi += dhi + c;
    }
};

/* Sum over a warp by xor butterflies: every lane gets the same bits (a + b and
 * b + a round alike), and the order is fixed. */
static __device__ __forceinline__ double blk_warp_sum(double v) {
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(BLK_FULL_MASK, v, o);
    return v;
}

/* Sum over the block (whole warps): warp butterflies, then the warps' sums
 * in warp order by one thread. Every thread gets the result. All threads of
 * the block must call it; it may be called again at once. */
static __device__ __forceinline__ double blk_block_sum(double v) {
    __shared__ double warp_sums[32];
    __shared__ double total;
    v = blk_warp_sum(v);
    __syncthreads(); /* a previous call's readers are done with warp_sums and total */
    if ((threadIdx.x & 31) == 0) warp_sums[threadIdx.x >> 5] = v;
    __syncthreads();
    if (threadIdx.x == 0) {
        double s = 0.0;
        for (unsigned w = 0; w < (blockDim.x >> 5); w++)
            s += warp_sums[w];
        total = s;
    }
    __syncthreads();
    return total;
}

#endif
