/* xoshiro256** (Blackman & Vigna), seeded through splitmix64. Small state,
 * fast, and good enough for init, shuffling and dropout masks. */
#include <math.h>
#include "batchlab/core.h"

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

void bl_rng_seed(bl_rng *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

void bl_rng_derive(bl_rng *out, uint64_t seed, uint64_t tag) {
    uint64_t x = seed ^ (tag * 0xd1342543de82ef95ULL + 0x2545f4914f6cdd1dULL);
    bl_rng_seed(out, splitmix64(&x));
}

uint64_t bl_rng_next(bl_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

float bl_rng_uniform(bl_rng *r) {
    return (float)(bl_rng_next(r) >> 40) * 0x1.0p-24f;
}

double bl_rng_uniform_double(bl_rng *r) {
    return (double)(bl_rng_next(r) >> 11) * 0x1.0p-53;
}

float bl_rng_normal(bl_rng *r) {
    /* Box-Muller; u1 in (0,1] so log never sees 0. */
    double u1 = 1.0 - bl_rng_uniform_double(r);
    double u2 = bl_rng_uniform_double(r);
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}

uint32_t bl_rng_below(bl_rng *r, uint32_t n) {
    /* Lemire's multiply-shift with rejection: unbiased. */
    uint64_t m = (uint64_t)(uint32_t)(bl_rng_next(r) >> 32) * n;
    uint32_t l = (uint32_t)m;
    if (l < n) {
        uint32_t t = (uint32_t)(-n) % n;
        while (l < t) {
            m = (uint64_t)(uint32_t)(bl_rng_next(r) >> 32) * n;
            l = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

void bl_rng_shuffle(bl_rng *r, uint32_t *idx, size_t n) {
    for (size_t i = n; i > 1; i--) {
        uint32_t j = bl_rng_below(r, (uint32_t)i);
        uint32_t t = idx[i - 1];
        idx[i - 1] = idx[j];
        idx[j] = t;
    }
}
