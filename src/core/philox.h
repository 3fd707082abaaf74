/* Philox4x32-10, the counter-based generator of Salmon, Moraes, Dror and Shaw,
 * "Parallel Random Numbers: As Easy as 1, 2, 3" (SC11). Written from the
 * published round function and constants: a 128-bit counter and a 64-bit key
 * give four 32-bit words, with no state carried from one call to the next.
 * Any element of a stream is then computed on its own, by any thread, in any
 * order, on any backend: what dropout masks need so that they do not depend
 * on the thread count or the device. Header-only so that kernels inline it. */
#ifndef BL_CORE_PHILOX_H
#define BL_CORE_PHILOX_H

#include <stdint.h>

/* Host and device: under nvcc the inline functions below (and those of
 * backend/dropout_mask.h) are compiled for the GPU as well, so a CUDA kernel
 * computes the same words; a C compiler sees plain static inline functions. */
#ifndef BL_HD
#ifdef __CUDACC__
#define BL_HD __host__ __device__
#else
#define BL_HD
#endif
#endif

#define BL_PHILOX_M0 0xD2511F53u /* multipliers */
#define BL_PHILOX_M1 0xCD9E8D57u
#define BL_PHILOX_W0 0x9E3779B9u /* key increments (golden ratio, sqrt(3) - 1) */
#define BL_PHILOX_W1 0xBB67AE85u

/* One round: two 32x32->64 products, whose halves are mixed with the other two
 * words and the round key. */
static inline BL_HD void bl_philox_round(uint32_t c[4], uint32_t k0, uint32_t k1) {
    uint64_t p0 = (uint64_t)BL_PHILOX_M0 * c[0], p1 = (uint64_t)BL_PHILOX_M1 * c[2];
    uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
    uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
    c[0] = hi1 ^ c[1] ^ k0;
    c[1] = lo1;
    c[2] = hi0 ^ c[3] ^ k1;
    c[3] = lo0;
}

/* out = Philox4x32-10(counter ctr, key). out may alias ctr. */
static inline BL_HD void bl_philox4x32_10(uint32_t out[4], const uint32_t ctr[4],
                                          const uint32_t key[2]) {
    uint32_t c[4] = {ctr[0], ctr[1], ctr[2], ctr[3]}, k0 = key[0], k1 = key[1];
    for (int r = 0; r < 10; r++) {
        if (r) k0 += BL_PHILOX_W0, k1 += BL_PHILOX_W1;
        bl_philox_round(c, k0, k1);
    }
    out[0] = c[0], out[1] = c[1], out[2] = c[2], out[3] = c[3];
}

#endif
