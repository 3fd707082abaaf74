/* Adaptive batch controller: when it switches, where to, with which learning
 * rate, and when it holds still; how it learns throughput from live steps and
 * predicts it for batches not run yet. Driven with synthetic step timings. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include "batchlab/adapt.h"

static bl_adapt make(void) {
    bl_adapt a;
    memset(&a, 0, sizeof a);
    a.cfg = (bl_adapt_config){.base_batch = 32,
                              .min_batch = 16,
                              .max_batch = 512,
                              .every_steps = 10,
                              .trial_steps = 5,
                              .min_gain = 0.05,
                              .lr_rule = BL_ADAPT_LR_ADASCALE};
    int b[] = {16, 32, 64, 128, 256, 512};
    double sps[] = {3000, 5000, 8000, 11000, 12000, 12300};
    for (int i = 0; i < 6; i++) {
        a.curve.p[i] = (bl_throughput_point){b[i], sps[i], b[i] / sps[i], 0};
        a.obs[i] = 100; /* all measured */
    }
    a.curve.n = 6;
    a.current = a.previous = 1; /* batch 32 */
    a.ceiling = 5;
    a.trial_from = -1;
    return a;
}

/* A controller as bl_adapt_init makes it (nothing measured), for batches 16..512, base 32. */
static bl_adapt fresh(void) {
    bl_adapt a = make();
    memset(a.obs, 0, sizeof a.obs);
    for (int i = 0; i < 6; i++)
        a.curve.p[i].samples_per_s = a.curve.p[i].step_s = 0;
    a.warm = 2;
    return a;
}

/* Run `steps` live steps at the current batch, each taking fixed + per x batch seconds. */
static void run_steps(bl_adapt *a, int steps, double fixed, double per) {
    int b = bl_adapt_batch(a);
    for (int i = 0; i < steps; i++)
        bl_adapt_observe(a, b, b / (fixed + per * b));
}

/* A noise estimator fed to a chosen B_simple = tr / g2 (|G|^2 = 1). */
static bl_noise noise_at(double b_simple) {
    bl_noise ns;
    bl_noise_init(&ns, 0.9);
    /* |G_s|^2 = |G|^2 + tr/b, |G_b|^2 = |G|^2 + tr/B  (exact expectations) */
    for (int i = 0; i < 5; i++)
        bl_noise_update(&ns, 1 + b_simple / 16, 16, 1 + b_simple / 64, 64);
    return ns;
}

static void lr_factors(void **state) {
    /* AdaScale r = (sigma^2 + mu^2) / (sigma^2 / s + mu^2) with sigma^2 the variance of the
     * base batch's gradient, tr Sigma / m0 = B_noise |G|^2 / m0: 1 at s = 1, -> s for large
     * noise, -> 1 for none. From 32 to 128 at B_noise 64: (2 + 1) / (0.5 + 1) = 2. */
    assert_true(fabsf(bl_adapt_lr_factor(BL_ADAPT_LR_ADASCALE, 100, 32, 32) - 1) < 1e-6f);
    assert_true(fabsf(bl_adapt_lr_factor(BL_ADAPT_LR_ADASCALE, 1e9, 32, 128) - 4) < 1e-3f);
    assert_true(fabsf(bl_adapt_lr_factor(BL_ADAPT_LR_ADASCALE, 0, 32, 128) - 1) < 1e-6f);
    assert_true(fabsf(bl_adapt_lr_factor(BL_ADAPT_LR_ADASCALE, 64, 32, 128) - 2) < 1e-5f);
    assert_true(fabsf(bl_adapt_lr_factor(BL_ADAPT_LR_ADASCALE, 64, 128, 32) - 0.5f) < 1e-5f);
    assert_true(fabsf(bl_adapt_lr_factor(BL_ADAPT_LR_LINEAR, 5, 32, 128) - 4) < 1e-6f);
    assert_true(fabsf(bl_adapt_lr_factor(BL_ADAPT_LR_SQRT, 5, 32, 128) - 2) < 1e-6f);
    bl_adapt_lr r;
    assert_int_equal(bl_adapt_lr_parse(&r, "adascale", NULL), BL_OK);
    assert_int_equal(bl_adapt_lr_parse(&r, "fancy", NULL), BL_ERR_ARG);
}

static void waits_and_needs_an_estimate(void **state) {
    bl_adapt a = make();
    bl_adapt_decision d;
    bl_noise none;
    bl_noise_init(&none, 0.9);
    assert_int_equal(bl_adapt_decide(&a, 5, &none, &d), -1); /* not time yet */
    assert_int_equal(bl_adapt_decide(&a, 10, &none, &d), 0);
    assert_non_null(strstr(d.reason, "no noise-scale estimate"));
    assert_int_equal(bl_adapt_batch(&a), 32);
    /* A negative estimate (the small batch's gradient came out shorter than the big
     * one's: tr(Sigma) < 0) is not acted on either. */
    bl_noise neg;
    bl_noise_init(&neg, 0.9);
    bl_noise_update(&neg, 1.0, 16, 2.0, 64);
    assert_true(bl_noise_scale(&neg) < 0);
    assert_int_equal(bl_adapt_decide(&a, 20, &neg, &d), 0);
    assert_non_null(strstr(d.reason, "not usable"));
    assert_int_equal(bl_adapt_batch(&a), 32);
}

static void grows_with_the_noise_scale(void **state) {
    bl_adapt a = make();
    bl_adapt_decision d;
    /* Tiny noise scale: efficiency falls fast, batch 16 or 32 is best; 16 gains
     * 3000 x (4+32)/(4+16) = 5400 vs 5000: +8% > 5% -> switch down. */
    bl_noise ns = noise_at(4);
    assert_true(fabs(bl_noise_scale(&ns) - 4) < 1e-6);
    assert_int_equal(bl_adapt_decide(&a, 10, &ns, &d), 1);
    assert_int_equal(d.to_batch, 16);
    /* Large noise scale: goodput ~ throughput, so it climbs, one doubling per decision,
     * until the next doubling gains less than 5% (256 -> 512 gains 2.5%). */
    ns = noise_at(5000);
    int expect[] = {32, 64, 128, 256};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(bl_adapt_decide(&a, 20 + 10 * i, &ns, &d), 1);
        assert_int_equal(d.to_batch, expect[i]);
        assert_int_equal(d.from_batch, i ? expect[i - 1] : 16);
        assert_true(d.goodput_to > 1.05 * d.goodput_from);
        assert_true(fabsf(d.lr_factor - bl_adapt_lr_factor(BL_ADAPT_LR_ADASCALE, d.noise_scale, 32,
                                                           d.to_batch)) < 1e-5f);
        assert_non_null(strstr(d.reason, "more goodput"));
        assert_int_equal(bl_adapt_batch(&a), d.to_batch);
    }
    /* Same noise again: the next step does not pay, it holds still. */
    assert_int_equal(bl_adapt_decide(&a, 60, &ns, &d), 0);
    assert_int_equal(d.to_batch, d.from_batch);
    assert_non_null(strstr(d.reason, "keep batch"));
}

static void hysteresis(void **state) {
    bl_adapt a = make();
    a.current = 4; /* 256 */
    bl_adapt_decision d;
    /* 512 is best at huge noise but gains only 12300/12000 = 2.5% < 5%: keep 256. */
    bl_noise ns = noise_at(1e7);
    assert_int_equal(bl_adapt_decide(&a, 10, &ns, &d), 0);
    assert_int_equal(bl_adapt_batch(&a), 256);
    a.cfg.min_gain = 0.01;
    assert_int_equal(bl_adapt_decide(&a, 20, &ns, &d), 1);
    assert_int_equal(d.to_batch, 512);
}

static void revert_after_divergence(void **state) {
    bl_adapt a = make();
    bl_adapt_decision d;
    bl_noise ns = noise_at(5000);
    assert_int_equal(bl_adapt_decide(&a, 10, &ns, &d), 1); /* 32 -> 64 */
    assert_int_equal(bl_adapt_revert(&a, 12, 5000, &d), 1);
    assert_int_equal(d.from_batch, 64);
    assert_int_equal(d.to_batch, 32);
    assert_non_null(strstr(d.reason, "diverged"));
    /* 64 and above are now off limits: it stays at 32 however large the noise. */
    assert_int_equal(bl_adapt_decide(&a, 30, &ns, &d), 0);
    assert_int_equal(bl_adapt_batch(&a), 32);
    /* Nothing below the smallest batch to go back to. */
    a.current = a.previous = 0;
    assert_int_equal(bl_adapt_revert(&a, 40, 5000, &d), 0);
}

static void observations_correct_the_curve(void **state) {
    bl_adapt a = make();
    a.current = 2; /* 64 */
    for (int i = 0; i < 100; i++)
        bl_adapt_observe(&a, 64, 2000);
    assert_true(fabs(a.curve.p[2].samples_per_s - 2000) < 10);
    assert_true(a.curve.p[1].samples_per_s == 5000); /* others untouched */
    bl_adapt_observe(&a, 32, 1);                     /* not the current batch: ignored */
    assert_true(a.curve.p[1].samples_per_s == 5000);
    /* The figure is the median of the last 16 steps: a burst of slow steps (another job
     * on the machine) does not move it, a lasting change does. */
    for (int i = 0; i < 7; i++)
        bl_adapt_observe(&a, 64, 500);
    assert_true(a.curve.p[2].samples_per_s == 2000);
    for (int i = 0; i < 2; i++)
        bl_adapt_observe(&a, 64, 500);
    assert_true(a.curve.p[2].samples_per_s == 500);
}

static void learns_throughput_from_live_steps(void **state) {
    bl_adapt a = fresh();
    bl_noise ns = noise_at(5000);
    bl_adapt_decision d;
    /* Nothing measured: no prediction, and no decision before the batch is measured. */
    assert_true(bl_adapt_throughput(&a, 2) == 0);
    assert_int_equal(bl_adapt_decide(&a, 10, &ns, &d), -1);
    /* Steps of 1 ms + 0.1 ms per sample: the first two after the start are ignored. */
    bl_adapt_observe(&a, 32, 1);
    bl_adapt_observe(&a, 32, 1);
    run_steps(&a, 5, 1e-3, 1e-4);
    assert_true(fabs(bl_adapt_throughput(&a, 1) - 32 / 4.2e-3) < 1e-6 * 32 / 4.2e-3);
    /* One batch measured: throughput is assumed to grow as sqrt(M). */
    assert_true(fabs(bl_adapt_throughput(&a, 3) - 2 * 32 / 4.2e-3) < 1e-3);
    /* Two measured: the step-time line t = a + b M predicts the rest exactly. */
    a.current = 2, a.warm = 0;
    run_steps(&a, 5, 1e-3, 1e-4);
    for (int i = 0; i < 6; i++) {
        double m = a.curve.p[i].batch;
        assert_true(fabs(bl_adapt_throughput(&a, i) - m / (1e-3 + 1e-4 * m)) < 1e-6 * m / 1e-4);
    }
}

static void tries_an_unmeasured_batch_and_keeps_it_if_it_pays(void **state) {
    bl_adapt a = fresh();
    bl_noise ns = noise_at(5000); /* efficiency ~1: goodput ~ throughput */
    bl_adapt_decision d;
    a.warm = 0;
    /* 32 measured at 5 ms + 0.01 ms/sample: sqrt growth predicts 64 is faster. */
    run_steps(&a, 5, 5e-3, 1e-5);
    assert_int_equal(bl_adapt_decide(&a, 10, &ns, &d), 1);
    assert_int_equal(d.to_batch, 64);
    assert_non_null(strstr(d.reason, "a trial"));
    /* The trial is judged after trial_steps (every / 3 = 5 here), once 64 is measured. */
    assert_int_equal(bl_adapt_decide(&a, 14, &ns, &d), -1);
    run_steps(&a, 5, 5e-3, 1e-5); /* two ignored, three timed */
    assert_int_equal(bl_adapt_decide(&a, 15, &ns, &d), 0);
    assert_non_null(strstr(d.reason, "confirmed"));
    assert_int_equal(bl_adapt_batch(&a), 64);
}

static void goes_back_when_a_trial_disappoints(void **state) {
    bl_adapt a = fresh();
    bl_noise ns = noise_at(200);
    bl_adapt_decision d;
    a.warm = 0;
    /* At 32 a step costs 1 ms + 0.1 ms/sample; sqrt growth predicts 64 at 1.41x the
     * throughput, worth the efficiency loss (200+32)/(200+64) = 0.88: a trial. */
    run_steps(&a, 5, 1e-3, 1e-4);
    assert_int_equal(bl_adapt_decide(&a, 10, &ns, &d), 1);
    assert_int_equal(d.to_batch, 64);
    /* But 64 turns out no faster per sample (0.2 ms each): goodput falls, back to 32. */
    run_steps(&a, 5, 0, 2e-4);
    assert_int_equal(bl_adapt_decide(&a, 15, &ns, &d), 1);
    assert_int_equal(d.from_batch, 64);
    assert_int_equal(d.to_batch, 32);
    assert_non_null(strstr(d.reason, "back to 32"));
    assert_true(fabsf(d.lr_factor - 1) < 1e-6f); /* base batch again */
    /* Now both are measured: the line predicts 128 too slow, so it stays put. */
    assert_int_equal(bl_adapt_decide(&a, 25, &ns, &d), 0);
    assert_int_equal(bl_adapt_batch(&a), 32);
}

/* One batch measured across ranks: its network wait is the fixed part of the step, so
 * a bigger batch is predicted to amortise it (not the sqrt(M) guess used without). */
static void communication_favours_larger_batches(void **state) {
    bl_adapt a = fresh();
    run_steps(&a, 20, 0, 0.1 / 32); /* batch 32: 100 ms a step */
    double plain = bl_adapt_throughput(&a, 3);
    assert_true(fabs(plain - 320 * sqrt(4.0)) < 1e-6); /* 128: sqrt rule */
    bl_adapt_observe_comm(&a, 16, 0.08);               /* not the current batch: ignored */
    assert_true(bl_adapt_throughput(&a, 3) == plain);
    bl_adapt_observe_comm(&a, 32, 0.08); /* 80 ms of the 100 waiting on the network */
    double net = bl_adapt_throughput(&a, 3);
    assert_true(fabs(net - 128 / (0.08 + 0.02 * 4)) < 1e-6);
    assert_true(net > plain);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(lr_factors),
        cmocka_unit_test(communication_favours_larger_batches),
        cmocka_unit_test(waits_and_needs_an_estimate),
        cmocka_unit_test(grows_with_the_noise_scale),
        cmocka_unit_test(hysteresis),
        cmocka_unit_test(revert_after_divergence),
        cmocka_unit_test(observations_correct_the_curve),
        cmocka_unit_test(learns_throughput_from_live_steps),
        cmocka_unit_test(tries_an_unmeasured_batch_and_keeps_it_if_it_pays),
        cmocka_unit_test(goes_back_when_a_trial_disappoints),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
