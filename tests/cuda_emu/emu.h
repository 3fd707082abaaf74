// Host emulation of the CUDA features the backend's kernels use, so that
// their source (src/backend/cuda/*.cu, rewritten by gen.py) runs on a CPU:
// the threads of a block are std::threads, with a barrier for __syncthreads
// and a per-warp barrier for shuffles; the blocks of a grid run one after
// another (__shared__ is a function-level static, one block's at a time). Slow, but exact about
// indexing, barriers, shuffles and the order of every sum: what a GPU-less CI can check of the
// kernels.
#pragma once
#define __shared__ static
#define __launch_bounds__(...)
#include <cuda_runtime_api.h>
#include <barrier>
#include <thread>
#include <vector>
#include <memory>
#include <atomic>
#include <cstring>
#include <cmath>
#include <cstdio>
#include <cstdlib>

struct EmuDim {
    unsigned x = 0, y = 1, z = 1;
};
extern thread_local EmuDim threadIdx, blockIdx;
extern EmuDim blockDim, gridDim;
struct EmuWarp {
    std::unique_ptr<std::barrier<>> bar;
    unsigned long long slot[32];
};
extern std::barrier<> *emu_bar;
extern std::vector<EmuWarp> *emu_warps;
extern std::atomic<int> emu_or;
extern unsigned char *emu_dyn_smem;
extern long emu_launches;

inline void __syncthreads() {
    emu_bar->arrive_and_wait();
}
inline int __syncthreads_or(int p) {
    emu_bar->arrive_and_wait();
    if (threadIdx.x == 0) emu_or = 0;
    emu_bar->arrive_and_wait();
    if (p) emu_or.fetch_or(1);
    emu_bar->arrive_and_wait();
    int r = emu_or.load();
    emu_bar->arrive_and_wait();
    return r;
}
template <class T> T __shfl_xor_sync(unsigned mask, T v, int o) {
    if (mask != 0xffffffffu) {
        fprintf(stderr, "partial mask\n");
        abort();
    }
    EmuWarp &w = (*emu_warps)[threadIdx.x / 32];
    unsigned l = threadIdx.x % 32;
    static_assert(sizeof(T) <= 8, "");
    memcpy(&w.slot[l], &v, sizeof v);
    w.bar->arrive_and_wait();
    T r;
    memcpy(&r, &w.slot[l ^ (unsigned)o], sizeof r);
    w.bar->arrive_and_wait();
    return r;
}
inline unsigned __float_as_uint(float f) {
    unsigned u;
    memcpy(&u, &f, 4);
    return u;
}
inline float __fmul_rn(float a, float b) {
    return a * b;
}

inline cudaError_t emu_last_error() {
    return cudaSuccess;
}

struct EmuCfg {
    unsigned g, b;
    size_t smem;
    cudaStream_t s;
};

template <class... P, class... A> void emu_launch(EmuCfg c, void (*k)(P...), A... args) {
    emu_launches++;
    if (c.g == 0 || c.b == 0 || c.b > 1024 || (c.b % 32 && c.b > 32)) {
        fprintf(stderr, "bad launch %u %u\n", c.g, c.b);
        abort();
    }
    gridDim = {c.g, 1, 1};
    blockDim = {c.b, 1, 1};
    std::vector<unsigned char> smem(c.smem + 16);
    emu_dyn_smem = smem.data();
    /* one block at a time, on the same threads: a barrier ends each block */
    std::barrier<> bar(c.b), block_done(c.b);
    std::vector<EmuWarp> warps((c.b + 31) / 32);
    for (auto &w : warps)
        w.bar = std::make_unique<std::barrier<>>(c.b < 32 ? c.b : 32);
    emu_bar = &bar;
    emu_warps = &warps;
    std::vector<std::thread> th;
    th.reserve(c.b);
    for (unsigned t = 0; t < c.b; t++)
        th.emplace_back([&, t] {
            threadIdx = {t, 0, 0};
            for (unsigned bx = 0; bx < c.g; bx++) {
                blockIdx = {bx, 0, 0};
                k(static_cast<P>(args)...);
                block_done.arrive_and_wait();
            }
        });
    for (auto &x : th)
        x.join();
}
