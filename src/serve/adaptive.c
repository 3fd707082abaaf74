/* Adaptive batching to a latency objective: the max batch stays at its cap, and the
 * delay is stepped on the measured p99.
 *
 * The max batch is not a latency knob. Batches are served first in, first out, and a
 * batch's cost per sample falls (or stays) as it grows, so a larger max never makes
 * anyone wait longer: a request waits for the work queued ahead of it, which a smaller
 * max only cuts into more, costlier pieces; and below the cap a batch holds what is
 * queued, not more. Shrinking it for latency is what collapsed the earlier controller
 * (Clipper-style AIMD on the batch, NSDI'17): under load a busy CPU made batches look
 * slow, the cuts lowered throughput, the queue grew, p99 got worse and the cuts went on,
 * down to batches of one, at 1,000 req/s where any fixed setting served 1,510. So it
 * is held at the cap (the model's allocation, or --max-batch); small batches must cost
 * no more per sample than B = 1 for this to hold, which the kernels see to.
 *
 * The delay is the knob that trades latency for CPU: waiting to fill batches saves
 * compute per sample at light load, and costs up to the delay in latency. So per window
 * (>= min_samples requests and >= window_ns, or BL_DELAY_CTL_WINDOW_MAX requests):
 *
 *   p99 > objective with batches mostly full -> the server is past capacity (SATURATED:
 *        only --max-queue sheds load; a full batch does not wait for the delay);
 *   p99 > headroom x objective       -> near the objective a delay can help (bigger
 *        batches, less compute per sample, a shorter queue) or hurt (waiting): step it by
 *        delay_step_us in the direction that last lowered p99, turning back when a step
 *        made p99 worse (the first step is down);
 *   p99 < objective / 2, batches not full and the model busy under half the time ->
 *        add delay_step_us (INCREASE), at most min(--max-delay-us, objective / 10);
 *   otherwise hold.
 *
 * A delay only buys anything when bigger batches cost less per sample. For a model where
 * they do not (measured: the cnn preset on a 2-core AVX2 CPU, 831 us at B = 1 and 817 per
 * sample at B = 8), waiting adds latency and saves nothing; bursts then pushed p99 over
 * an objective that batches of one met. So the controller keeps moving averages of the
 * compute per sample of batches of 1 and of larger ones, and once both are known and the
 * larger ones save less than 10%, the delay only steps down, to 0, and then the max batch
 * drops to 1 (in a batch of flat cost per sample, the first request waits for the
 * others' compute). This cut is decided on compute cost, never on latency, so a busy CPU
 * (which slows batches of every size alike) does not trigger it; and past capacity (p99
 * over the objective with full batches) the cap comes back, as batching never lowers
 * throughput, and the larger batches' average starts over from fresh batches.
 *
 * Request latency runs from arrival at the server (parsing included) to the end of its
 * batch. The controller is a plain struct driven by the batcher thread (no locks) and
 * deterministic given its inputs: tests/test_serve_controller.c runs it in a simulated
 * server against every fixed (max batch, delay) pair. */
#include <stdlib.h>
#include <string.h>
#include "batchlab/serve.h"

const char *bl_delay_ctl_action_name(bl_delay_ctl_action a) {
    switch (a) {
    case BL_DELAY_CTL_HOLD:
        return "hold";
    case BL_DELAY_CTL_INCREASE:
        return "increase";
    case BL_DELAY_CTL_DECREASE:
        return "decrease";
    case BL_DELAY_CTL_SATURATED:
        return "saturated";
    }
    return "?";
}

void bl_delay_ctl_init(bl_delay_ctl *a, double slo_p99_ms, int cap_batch, long cap_delay_us) {
    memset(a, 0, sizeof *a);
    a->slo_ns = slo_p99_ms * 1e6;
    a->cap_batch = cap_batch < 1 ? 1 : cap_batch;
    a->max_batch = a->cap_batch;
    long tenth_us = (long)(slo_p99_ms * 1000.0 / 10.0);
    a->cap_delay_us = cap_delay_us < 0 || cap_delay_us > tenth_us ? tenth_us : cap_delay_us;
    a->delay_us = 0;
    a->delay_step_us = (long)(slo_p99_ms * 1000.0 / 100.0);
    if (a->delay_step_us < 1) a->delay_step_us = 1;
    a->headroom = 0.8;
    a->probe = -1;
    a->min_samples = 64;
    a->window_ns = 100000000ULL; /* 100 ms */
    a->last_action = BL_DELAY_CTL_HOLD;
}

#define COST_EVIDENCE 16 /* batches of each kind before the averages are trusted */
#define COST_ALPHA 0.05  /* weight of a new batch in the moving averages */

static void average_in(double *avg, long *n, double x) {
    *avg = *n ? *avg + COST_ALPHA * (x - *avg) : x;
    (*n)++;
}

void bl_delay_ctl_batch(bl_delay_ctl *a, int size, int max_batch, uint64_t compute_ns) {
    a->batches++;
    if (size >= max_batch) a->full_batches++;
    a->busy_ns += compute_ns;
    if (size == 1)
        average_in(&a->one_ns, &a->one_n, (double)compute_ns);
    else if (size > 1)
        average_in(&a->many_ns, &a->many_n, (double)compute_ns / size);
}

/* 0 once the averages show that batches of 2 or more save under 10% per sample. */
static int batching_pays(const bl_delay_ctl *a) {
    if (a->one_n < COST_EVIDENCE || a->many_n < COST_EVIDENCE) return 1; /* not known yet */
    return a->many_ns < 0.9 * a->one_ns;
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

static void decide(bl_delay_ctl *a, uint64_t now_ns) {
    uint64_t p99 = percentile(a->lat, a->n_lat, 99);
    int full = a->batches && 2 * a->full_batches >= a->batches;
    double span = (double)(now_ns - a->window_start_ns);
    double busy = span > 0 ? (double)a->busy_ns / span : 1; /* share of time computing */
    bl_delay_ctl_action act = BL_DELAY_CTL_HOLD;
    const int pays = batching_pays(a);
    if (pays) a->max_batch = a->cap_batch;
    if (!pays) {
        a->pressed_p99_ns = 0;
        if ((double)p99 > a->slo_ns && full) {
            /* Past capacity: the cap serves as much as any. Batches of 1 since the cut
             * left the average of larger ones as it was then, and it may have been wrong
             * (batches of several form when the CPU was busy elsewhere, which slows them
             * too): measured on AVX-512, a stale verdict held an mlp server that batching
             * makes 1.75x faster at max batch 1, p99 0.5-1 s. So it is measured again before the max
             * batch may drop again. */
            if (a->max_batch == 1) a->many_n = 0;
            a->max_batch = a->cap_batch;
            act = BL_DELAY_CTL_SATURATED;
        } else if (a->delay_us > 0) { /* waiting saves no compute here, only adds latency */
            a->delay_us -= a->delay_step_us;
            if (a->delay_us < 0) a->delay_us = 0;
            act = BL_DELAY_CTL_DECREASE;
        } else if (a->max_batch != 1) { /* a batch's first request waits for the others */
            a->max_batch = 1;
            act = BL_DELAY_CTL_DECREASE;
        }
    } else if ((double)p99 > a->slo_ns && full) {
        act = BL_DELAY_CTL_SATURATED; /* full batches at the cap do not wait for the delay */
    } else if ((double)p99 > a->headroom * a->slo_ns) {
        /* Near or over the objective a delay can help (bigger batches, less compute per
         * sample, a shorter queue) or hurt (waiting): step it the way that lowered p99,
         * turning back when the last step made p99 worse. */
        if (a->pressed_p99_ns && p99 > a->pressed_p99_ns) a->probe = -a->probe;
        a->pressed_p99_ns = p99;
        long d = a->delay_us + a->probe * a->delay_step_us;
        if (d < 0) d = 0;
        if (d > a->cap_delay_us) d = a->cap_delay_us;
        if (d != a->delay_us) {
            act = d > a->delay_us ? BL_DELAY_CTL_INCREASE : BL_DELAY_CTL_DECREASE;
            a->delay_us = d;
        }
    } else {
        a->pressed_p99_ns = 0;
        if ((double)p99 < 0.5 * a->slo_ns && !full && busy < 0.5 && a->delay_us < a->cap_delay_us) {
            a->delay_us += a->delay_step_us; /* light load: fill batches, save compute */
            if (a->delay_us > a->cap_delay_us) a->delay_us = a->cap_delay_us;
            act = BL_DELAY_CTL_INCREASE;
        }
    }
    a->last_p99_ns = p99;
    a->last_action = act;
    a->decisions[act]++;
}

int bl_delay_ctl_observe(bl_delay_ctl *a, uint64_t latency_ns, uint64_t now_ns) {
    if (a->n_lat == 0 && a->window_start_ns == 0) a->window_start_ns = now_ns;
    if (a->n_lat < BL_DELAY_CTL_WINDOW_MAX) a->lat[a->n_lat++] = latency_ns;
    int close = a->n_lat >= BL_DELAY_CTL_WINDOW_MAX ||
                (a->n_lat >= a->min_samples && now_ns - a->window_start_ns >= a->window_ns);
    if (!close) return 0;
    decide(a, now_ns);
    a->n_lat = 0;
    a->batches = a->full_batches = 0;
    a->busy_ns = 0;
    a->window_start_ns = now_ns;
    return 1;
}
