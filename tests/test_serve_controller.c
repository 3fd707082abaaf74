/* The adaptive batching controller against every fixed (max batch, delay) pair, in a
 * simulation: a single FIFO server whose batch of B samples takes a + b*B (plus, for the
 * noisy model, a seeded share of batches preempted for a 2 ms time slice, whatever
 * their size, as another process on the CPU does), fed Poisson arrivals
 * that are steady, bursty, ramped or beyond capacity. The batcher's own dispatch rule
 * (bl_batch_policy) forms the batches and the controller sees exactly what the batcher
 * would show it. Everything is simulated time and a seeded RNG, so each run is the same.
 *
 * The promise checked (issue 14): when some fixed pair meets the p99 objective,
 * adaptive meets it too, with at least 0.95x the best such pair's throughput; when none
 * does (overload), adaptive serves at least 0.95x the most any pair serves. "Meets"
 * for a fixed pair means with 5% to spare: adaptive learns for its first windows, and a
 * pair at 9.9 ms against adaptive at 10.1 ms is a tie within the sampling of a p99. */
#define _GNU_SOURCE
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "batchlab/core.h"
#include "batchlab/serve.h"

#define SLO_MS 10.0
#define CAP 64
#define MAX_QUEUE 1024
#define SIM_S 20.0

typedef struct step_model {
    double a_us, b_us; /* a batch of B takes a + b*B */
    double slow_p;     /* this share of batches takes 2 ms longer (preempted) */
} step_model;

typedef enum { STEADY, BURSTS, RAMP } load_shape;

typedef struct load {
    load_shape shape;
    double rate; /* requests/s: steady level, burst baseline, or ramp end */
} load;

/* Intended arrival rate at time t (s). */
static double rate_at(const load *l, double t) {
    switch (l->shape) {
    case BURSTS: /* 100 ms at 8x the baseline every second */
        return fmod(t, 1.0) < 0.1 ? 8 * l->rate : l->rate;
    case RAMP:
        return l->rate * t / SIM_S;
    default:
        return l->rate;
    }
}

typedef struct outcome {
    double throughput, p99_ms;
    long served, refused;
} outcome;

/* One run: fixed (max_batch, delay_us), or adaptive when a != NULL. */
static outcome simulate(const step_model *sm, const load *ld, int max_batch, long delay_us,
                        bl_delay_ctl *a, uint64_t seed) {
    bl_rng r, noise; /* apart, so every setting sees the same arrivals */
    bl_rng_seed(&r, seed);
    bl_rng_seed(&noise, seed + 1);
    bl_latency_hist *h = malloc(sizeof *h);
    bl_latency_hist_reset(h);
    static uint64_t q[MAX_QUEUE]; /* arrival times (ns) of waiting requests, a ring */
    int qh = 0, qn = 0;
    outcome o = {0};
    const uint64_t end_ns = (uint64_t)(SIM_S * 1e9);
    uint64_t now = 0, next_arrival = 0;
    /* thinning: candidate arrivals at the peak rate, kept with probability rate/peak */
    double peak = ld->shape == BURSTS ? 8 * ld->rate : ld->rate;
    int cur_max = a ? a->max_batch : max_batch;
    long cur_delay = a ? a->delay_us : delay_us;
    for (;;) {
        while (next_arrival <= now && next_arrival < end_ns) { /* queue what has arrived */
            double t = (double)next_arrival * 1e-9;
            if (bl_rng_uniform_double(&r) * peak < rate_at(ld, t)) {
                if (qn == MAX_QUEUE) {
                    o.refused++;
                } else {
                    q[(qh + qn) % MAX_QUEUE] = next_arrival;
                    qn++;
                }
            }
            double gap = -log(1.0 - bl_rng_uniform_double(&r)) / peak;
            next_arrival += (uint64_t)(gap * 1e9) + 1;
        }
        if (now >= end_ns && qn == 0) break;
        long waited_us = qn ? (long)((now - q[qh]) / 1000) : 0;
        int take = bl_batch_policy(qn, waited_us, cur_max, cur_delay, NULL, 0, now >= end_ns);
        if (!take) { /* idle until the next arrival or the oldest request's delay */
            uint64_t wake = next_arrival < end_ns ? next_arrival : end_ns;
            if (qn && q[qh] + (uint64_t)cur_delay * 1000 < wake)
                wake = q[qh] + (uint64_t)cur_delay * 1000;
            now = wake > now ? wake : now + 1;
            continue;
        }
        double us = sm->a_us + sm->b_us * take;
        if (bl_rng_uniform_double(&noise) < sm->slow_p) us += 2000;
        uint64_t t_end = now + (uint64_t)(us * 1000);
        if (a) bl_delay_ctl_batch(a, take, cur_max, t_end - now);
        for (int i = 0; i < take; i++) {
            uint64_t lat = t_end - q[qh];
            qh = (qh + 1) % MAX_QUEUE;
            qn--;
            bl_latency_hist_record(h, lat);
            o.served++;
            if (a && bl_delay_ctl_observe(a, lat, t_end)) {
                cur_max = a->max_batch;
                cur_delay = a->delay_us;
            }
        }
        now = t_end;
    }
    o.throughput = (double)o.served / SIM_S;
    o.p99_ms = (double)bl_latency_hist_percentile(h, 99) * 1e-6;
    free(h);
    return o;
}

/* Adaptive against the grid of fixed pairs on one model and load. */
static void compare(const char *name, const step_model *sm, const load *ld) {
    static const int sizes[] = {1, 2, 4, 8, 16, 32, 64};
    static const long delays[] = {0, 100, 300, 1000};
    double best_ok = -1, best_any = 0;
    int ok_b = 0;
    long ok_d = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        for (size_t j = 0; j < sizeof delays / sizeof delays[0]; j++) {
            outcome o = simulate(sm, ld, sizes[i], delays[j], NULL, 7);
            if (o.throughput > best_any) best_any = o.throughput;
            if (o.p99_ms <= 0.95 * SLO_MS && o.throughput > best_ok) {
                best_ok = o.throughput;
                ok_b = sizes[i];
                ok_d = delays[j];
            }
        }
    bl_delay_ctl *a = malloc(sizeof *a);
    bl_delay_ctl_init(a, SLO_MS, CAP, 1000);
    outcome ad = simulate(sm, ld, 0, 0, a, 7);
    print_message("%-22s adaptive %8.0f/s p99 %7.2f ms (max %d, delay %ld us) | best fixed "
                  "meeting %g ms: %8.0f/s (B %d, %ld us) | most served %8.0f/s\n",
                  name, ad.throughput, ad.p99_ms, a->max_batch, a->delay_us, 0.95 * SLO_MS, best_ok,
                  ok_b, ok_d, best_any);
    if (best_ok >= 0) {
        if (ad.p99_ms > SLO_MS)
            fail_msg("%s: a fixed pair meets p99 %g ms, adaptive has %.2f ms", name, SLO_MS,
                     ad.p99_ms);
        if (ad.throughput < 0.95 * best_ok)
            fail_msg("%s: adaptive %.0f/s < 0.95 x %.0f/s", name, ad.throughput, best_ok);
    } else if (ad.throughput < 0.95 * best_any) {
        fail_msg("%s: overloaded, adaptive serves %.0f/s < 0.95 x %.0f/s", name, ad.throughput,
                 best_any);
    }
    free(a);
}

/* Capacity at batch B is B / (a + b B); these loads are fractions of it at the cap. */
static double capacity(const step_model *sm, int B) {
    return B / ((sm->a_us + sm->b_us * B) * 1e-6);
}

static const step_model LIGHT = {300, 40, 0};   /* an mlp: 0.34 ms at 1, 2.9 ms at 64 */
static const step_model HEAVY = {500, 150, 0};  /* a bigger model: 10 ms at 64 */
static const step_model NOISY = {300, 40, 0.1}; /* LIGHT on a shared, busy machine */
static const step_model FLAT = {30, 800, 0};    /* a cnn on this CPU: batching gains ~nothing */
static const step_model *const models[] = {&LIGHT, &HEAVY, &NOISY, &FLAT};
static const char *const names[] = {"light", "heavy", "noisy", "flat"};
#define N_MODELS 4

static void steady_loads(void **state) {
    (void)state;
    const double fractions[] = {0.02, 0.3, 0.6, 0.85};
    for (int m = 0; m < N_MODELS; m++)
        for (int f = 0; f < 4; f++) {
            char name[64];
            snprintf(name, sizeof name, "%s steady %.0f%%", names[m], fractions[f] * 100);
            load ld = {STEADY, fractions[f] * capacity(models[m], CAP)};
            compare(name, models[m], &ld);
        }
}

static void bursts_and_ramps(void **state) {
    (void)state;
    for (int m = 0; m < N_MODELS; m++) {
        char name[64];
        snprintf(name, sizeof name, "%s bursts", names[m]);
        load b = {BURSTS, 0.1 * capacity(models[m], CAP)};
        compare(name, models[m], &b);
        snprintf(name, sizeof name, "%s ramp to 120%%", names[m]);
        load r = {RAMP, 1.2 * capacity(models[m], CAP)};
        compare(name, models[m], &r);
    }
}

static void overload(void **state) {
    (void)state;
    for (int m = 0; m < N_MODELS; m++) {
        char name[64];
        snprintf(name, sizeof name, "%s overload 150%%", names[m]);
        load ld = {STEADY, 1.5 * capacity(models[m], CAP)};
        compare(name, models[m], &ld);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(steady_loads),
        cmocka_unit_test(bursts_and_ramps),
        cmocka_unit_test(overload),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
