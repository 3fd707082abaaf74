/* The dropout mask as a function of (key, element): every backend computes
 * exactly this, so masks agree across backends and thread counts. Element e
 * of the stream of (seed, step, layer) is word e % 4 of the Philox4x32-10 block
 * at counter {e / 4 (64 bits), step, layer}, keyed by the seed; it is kept when
 * its top 24 bits, read as a fraction u in [0, 1), are >= p (torch keeps when
 * u >= p as well). The comparison is done in integers, so no backend's
 * float rounding can move an element across the threshold. */
#ifndef BL_BACKEND_DROPOUT_MASK_H
#define BL_BACKEND_DROPOUT_MASK_H

#include <math.h>
#include "batchlab/backend.h"
#include "core/philox.h"

/* The smallest 24-bit value k with k / 2^24 >= p, for 0 <= p < 1. */
static inline BL_HD uint32_t bl_dropout_threshold(float p) {
    return p > 0 ? (uint32_t)ceil((double)p * 16777216.0) : 0;
}

/* The four stream words of block `block` (elements 4 block .. 4 block + 3). */
static inline BL_HD void bl_dropout_block(uint32_t out[4], const bl_dropout_key *k,
                                          uint64_t block) {
    const uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32), (uint32_t)k->step, k->layer};
    const uint32_t key[2] = {(uint32_t)k->seed, (uint32_t)(k->seed >> 32)};
    bl_philox4x32_10(out, ctr, key);
}

/* 1 when element e of the stream is kept. */
static inline BL_HD int bl_dropout_keep(const bl_dropout_key *k, uint64_t e, uint32_t threshold) {
    uint32_t w[4];
    bl_dropout_block(w, k, e >> 2);
    return (w[e & 3] >> 8) >= threshold;
}

#endif
