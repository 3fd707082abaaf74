/* A log-bucketed latency histogram in the style of HdrHistogram.
 *
 * Values below 2^S (S = BL_LATENCY_HIST_SUB_BITS) get one bucket each, so they are exact.
 * Above that, each power of two [2^e, 2^(e+1)) is split into 2^S equal sub-buckets:
 * the index is the exponent and the S bits that follow the leading one. The bucket
 * width is then at most 1/2^S of the value (0.8% for S = 7), whatever the scale,
 * which is what latency percentiles need: microseconds and seconds in one array with
 * the same relative precision, O(1) recording and no allocation.
 *
 * A percentile reports the highest value of the bucket that holds the rank-th smallest
 * sample (never above the recorded maximum), so it never under-states a latency. */
#include <math.h>
#include <string.h>
#include "batchlab/serve.h"

#define SUB (1ULL << BL_LATENCY_HIST_SUB_BITS)

void bl_latency_hist_reset(bl_latency_hist *h) {
    memset(h, 0, sizeof *h);
    h->min = UINT64_MAX;
}

static int floor_log2(uint64_t v) {
    return 63 - __builtin_clzll(v);
}

int bl_latency_hist_index(uint64_t v) {
    if (v < SUB) return (int)v;
    int e = floor_log2(v);
    if (e > BL_LATENCY_HIST_MAX_LOG2) return BL_LATENCY_HIST_BUCKETS - 1;
    uint64_t sub = (v >> (e - BL_LATENCY_HIST_SUB_BITS)) - SUB; /* the S bits after the leading 1 */
    return (int)(((uint64_t)(e - BL_LATENCY_HIST_SUB_BITS + 1) << BL_LATENCY_HIST_SUB_BITS) + sub);
}

void bl_latency_hist_bucket_range(int index, uint64_t *lo, uint64_t *hi) {
    if (index < (int)SUB) {
        *lo = *hi = (uint64_t)index;
        return;
    }
    int block = index >> BL_LATENCY_HIST_SUB_BITS; /* 1 for e = S */
    uint64_t sub = (uint64_t)index & (SUB - 1);
    int shift = block - 1; /* e - S */
    *lo = (SUB + sub) << shift;
    *hi = *lo + (1ULL << shift) - 1;
}

void bl_latency_hist_record_n(bl_latency_hist *h, uint64_t v, uint64_t n) {
    if (!n) return;
    h->counts[bl_latency_hist_index(v)] += n;
    h->total += n;
    h->sum += (double)v * (double)n;
    if (v < h->min) h->min = v;
    if (v > h->max) h->max = v;
}

void bl_latency_hist_record(bl_latency_hist *h, uint64_t v) {
    bl_latency_hist_record_n(h, v, 1);
}

void bl_latency_hist_merge(bl_latency_hist *dst, const bl_latency_hist *src) {
    if (!src->total) return;
    for (int i = 0; i < BL_LATENCY_HIST_BUCKETS; i++)
        dst->counts[i] += src->counts[i];
    dst->total += src->total;
    dst->sum += src->sum;
    if (src->min < dst->min) dst->min = src->min;
    if (src->max > dst->max) dst->max = src->max;
}

uint64_t bl_latency_hist_percentile(const bl_latency_hist *h, double q) {
    if (!h->total) return 0;
    if (q < 0) q = 0;
    if (q > 100) q = 100;
    uint64_t rank = (uint64_t)ceil(q / 100.0 * (double)h->total);
    if (rank < 1) rank = 1;
    uint64_t seen = 0;
    for (int i = 0; i < BL_LATENCY_HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t lo, hi;
            bl_latency_hist_bucket_range(i, &lo, &hi);
            return hi < h->max ? hi : h->max;
        }
    }
    return h->max;
}

double bl_latency_hist_mean(const bl_latency_hist *h) {
    return h->total ? h->sum / (double)h->total : 0.0;
}
