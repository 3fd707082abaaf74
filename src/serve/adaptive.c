/* Adaptive batching to a latency objective: AIMD on the max batch (and the delay).
 *
 * Clipper (Crankshaw et al., NSDI'17) grows the batch size additively while a batch
 * takes less than the objective and cuts it multiplicatively when it takes more. A
 * request also waits for the batch already running and for its HTTP round trip, so here
 * a batch gets a third of the objective: the median batch compute time of each window
 * is held under objective/3 by AIMD (cut by `decrease` above it). Within that budget a
 * bigger batch costs less per sample, so:
 *
 *   p99 > objective, batches full     -> a queue stands behind fast, full batches: grow
 *        the max batch (SATURATED at the cap: only --max-queue can shed load then);
 *   p99 > objective, batches not full -> the time goes elsewhere (delay, HTTP threads, a
 *        busy CPU): give back delay, but do not shrink batches, which would only lower
 *        throughput (an earlier rule did, and a sweep collapsed to batches of one);
 *   p99 < headroom x objective        -> grow where it binds: the max batch when batches
 *        were full; the delay (capped at objective/10) when they were not and p99 is
 *        under half the objective, since waiting to fill batches saves CPU per sample;
 *   otherwise hold.
 *
 * The median rather than the maximum compute time keeps one batch preempted by another
 * process from driving the batch size down. Request latency runs from arrival at the
 * server (parsing included) to the end of its batch. The controller is a plain struct
 * driven by the batcher thread (no locks) and deterministic given its inputs, so tests
 * feed it synthetic latencies. */
#include <stdlib.h>
#include <string.h>
#include "batchlab/serve.h"

const char *bl_aimd_action_name(bl_aimd_action a) {
    switch (a) {
    case BL_AIMD_HOLD:
        return "hold";
    case BL_AIMD_INCREASE:
        return "increase";
    case BL_AIMD_DECREASE:
        return "decrease";
    case BL_AIMD_SATURATED:
        return "saturated";
    }
    return "?";
}

void bl_aimd_init(bl_aimd *a, double slo_p99_ms, int cap_batch, long cap_delay_us) {
    memset(a, 0, sizeof *a);
    a->slo_ns = slo_p99_ms * 1e6;
    a->cap_batch = cap_batch < 1 ? 1 : cap_batch;
    a->max_batch = a->cap_batch / 4 > 1 ? a->cap_batch / 4 : 1;
    a->step = a->cap_batch / 16 > 1 ? a->cap_batch / 16 : 1;
    long tenth_us = (long)(slo_p99_ms * 1000.0 / 10.0);
    a->cap_delay_us = cap_delay_us < 0 || cap_delay_us > tenth_us ? tenth_us : cap_delay_us;
    a->delay_us = 0;
    a->delay_step_us = (long)(slo_p99_ms * 1000.0 / 100.0);
    if (a->delay_step_us < 1) a->delay_step_us = 1;
    a->decrease = 0.8;
    a->headroom = 0.8;
    a->min_samples = 64;
    a->window_ns = 100000000ULL; /* 100 ms */
    a->last_action = BL_AIMD_HOLD;
}

void bl_aimd_batch(bl_aimd *a, int size, int max_batch, uint64_t compute_ns) {
    a->batches++;
    if (size >= max_batch) a->full_batches++;
    if (a->n_compute < BL_AIMD_WINDOW_MAX) a->compute[a->n_compute++] = compute_ns;
}

static int cmp_u64(const void *x, const void *y) {
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? -1 : a > b;
}

/* The q-th percentile (0..100) of v[0..n) (sorts v); 0 when empty. */
static uint64_t percentile(uint64_t *v, int n, int q) {
    if (n <= 0) return 0;
    qsort(v, (size_t)n, sizeof v[0], cmp_u64);
    int k = (int)((q * (long)n + 99) / 100) - 1; /* ceil(q% n) - 1 */
    return v[k < 0 ? 0 : k];
}

static void grow_batch(bl_aimd *a) {
    a->max_batch += a->step;
    if (a->max_batch > a->cap_batch) a->max_batch = a->cap_batch;
}

static void cut_batch(bl_aimd *a) {
    int nb = (int)(a->max_batch * a->decrease);
    if (nb >= a->max_batch) nb = a->max_batch - 1;
    a->max_batch = nb < 1 ? 1 : nb;
}

static void decide(bl_aimd *a) {
    uint64_t p99 = percentile(a->lat, a->n_lat, 99);
    double c50 = (double)percentile(a->compute, a->n_compute, 50);
    a->last_p99_ns = p99;
    double budget = a->slo_ns / 3; /* one batch: wait for the running one, run ours, HTTP */
    int full = a->batches && 2 * a->full_batches >= a->batches;
    bl_aimd_action act = BL_AIMD_HOLD;
    if (c50 > budget) { /* batches this size alone break the objective */
        cut_batch(a);
        a->delay_us /= 2;
        act = BL_AIMD_DECREASE;
    } else if ((double)p99 > a->slo_ns) {
        if (full && a->max_batch < a->cap_batch) {
            grow_batch(a); /* a queue behind fast, full batches: more per batch */
            act = BL_AIMD_INCREASE;
        } else if (full) {
            act = BL_AIMD_SATURATED;
        } else if (a->delay_us > 0) {
            act = BL_AIMD_DECREASE;
        }
        a->delay_us /= 2;
    } else if ((double)p99 < a->headroom * a->slo_ns) {
        if (a->full_batches > 0 && a->max_batch < a->cap_batch) {
            grow_batch(a);
            act = BL_AIMD_INCREASE;
        }
        if (!full && (double)p99 < 0.5 * a->slo_ns && a->delay_us < a->cap_delay_us) {
            a->delay_us += a->delay_step_us;
            if (a->delay_us > a->cap_delay_us) a->delay_us = a->cap_delay_us;
            act = BL_AIMD_INCREASE;
        }
    }
    a->last_action = act;
    a->decisions[act]++;
}

int bl_aimd_observe(bl_aimd *a, uint64_t latency_ns, uint64_t now_ns) {
    if (a->n_lat == 0 && a->window_start_ns == 0) a->window_start_ns = now_ns;
    if (a->n_lat < BL_AIMD_WINDOW_MAX) a->lat[a->n_lat++] = latency_ns;
    int close = a->n_lat >= BL_AIMD_WINDOW_MAX ||
                (a->n_lat >= a->min_samples && now_ns - a->window_start_ns >= a->window_ns);
    if (!close) return 0;
    decide(a);
    a->n_lat = a->n_compute = 0;
    a->batches = a->full_batches = 0;
    a->window_start_ns = now_ns;
    return 1;
}
