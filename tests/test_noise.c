/* The gradient-noise-scale estimators against answers known in closed form.
 *
 * 1. Linear regression, y = w*.x + e with x ~ N(0, I_d), e ~ N(0, s2), loss
 *    1/2 (w.x - y)^2. With d = w - w*, the per-sample gradient is
 *    g = (d.x - e) x, so
 *        G = E[g] = E[x x^T] d = d                      |G|^2 = |d|^2
 *        E[g g^T] = E[(d.x)^2 x x^T] + s2 I = (|d|^2 + s2) I + 2 d d^T
 *    (Isserlis: E[x_i x_j x_k x_l] = d_ij d_kl + d_ik d_jl + d_il d_jk; the
 *    cross term in e vanishes since e is independent with mean 0), hence
 *        Sigma = E[g g^T] - G G^T = (|d|^2 + s2) I + d d^T
 *        tr(Sigma) = d (|d|^2 + s2) + |d|^2
 *        B_simple = d + 1 + d s2 / |d|^2.
 *    Gradients are sampled from that distribution directly and fed to the same
 *    estimator the trainer uses (noise.h): the averaged one-shot estimates and
 *    the EMA'd ratio must land within 10% of the truth at several weights, and
 *    lying to the estimator about the small batch size must be caught.
 * 2. bl_noise_measure on a real model and the committed Fashion-MNIST sample,
 *    against |G|^2 and tr(Sigma) computed exactly from all per-sample
 *    gradients of the finite dataset; and it must leave the model unchanged.
 * 3. The trainer with --noise-every N measures every Nth update only; its running
 *    estimates converge to the exact values at fixed weights, and follow them along a
 *    real training run of many epochs on the small sample. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "batchlab/noise.h"
#include "batchlab/noise_measure.h"
#include "batchlab/train.h"
#include "test_util.h"

enum { DIM = 10 };
static const double S2 = 0.25; /* label noise variance */

typedef struct linreg {
    double wstar[DIM], w[DIM];
} linreg;

/* w = w* + delta with |delta|^2 = d2 along a fixed random direction. */
static void linreg_init(linreg *lr, double d2) {
    bl_rng r;
    bl_rng_seed(&r, 42);
    double u[DIM], nu = 0;
    for (int j = 0; j < DIM; j++)
        lr->wstar[j] = bl_rng_normal(&r), u[j] = bl_rng_normal(&r), nu += u[j] * u[j];
    for (int j = 0; j < DIM; j++)
        lr->w[j] = lr->wstar[j] + sqrt(d2 / nu) * u[j];
}

static double truth_g2(double d2) {
    return d2;
}
static double truth_trace(double d2) {
    return DIM * (d2 + S2) + d2;
}

/* One nested pair: |mean g|^2 over the first bs samples and over all bb. */
static void draw_pair(const linreg *lr, bl_rng *r, int bs, int bb, double *g2s, double *g2b) {
    double sum[DIM] = {0};
    for (int i = 0; i < bb; i++) {
        double x[DIM], res = 0;
        for (int j = 0; j < DIM; j++)
            x[j] = bl_rng_normal(r);
        double y = 0;
        for (int j = 0; j < DIM; j++)
            y += lr->wstar[j] * x[j];
        y += sqrt(S2) * bl_rng_normal(r);
        for (int j = 0; j < DIM; j++)
            res += lr->w[j] * x[j];
        res -= y;
        for (int j = 0; j < DIM; j++)
            sum[j] += res * x[j];
        if (i + 1 == bs || i + 1 == bb) {
            double s = 0;
            for (int j = 0; j < DIM; j++)
                s += (sum[j] / (i + 1)) * (sum[j] / (i + 1));
            *(i + 1 == bs ? g2s : g2b) = s;
        }
    }
}

typedef struct estimates {
    double g2, trace, scale; /* averaged one-shot estimates and their ratio */
    double ema_scale;        /* the EMA'd ratio, as the trainer reports it */
} estimates;

/* b_claimed is the small batch size told to the estimator (the truth is bs). */
static estimates run_estimator(double d2, int bs, int bb, int b_claimed, int draws, double decay,
                               uint64_t seed) {
    linreg lr;
    linreg_init(&lr, d2);
    bl_rng r;
    bl_rng_seed(&r, seed);
    bl_noise ema;
    bl_noise_init(&ema, decay);
    double sg = 0, st = 0;
    for (int k = 0; k < draws; k++) {
        double g2s = 0, g2b = 0;
        draw_pair(&lr, &r, bs, bb, &g2s, &g2b);
        sg += bl_noise_g2_estimate(g2s, b_claimed, g2b, bb);
        st += bl_noise_trace_estimate(g2s, b_claimed, g2b, bb);
        bl_noise_update(&ema, g2s, b_claimed, g2b, bb);
    }
    estimates e = {.g2 = sg / draws, .trace = st / draws, .ema_scale = bl_noise_scale(&ema)};
    e.scale = e.trace / e.g2;
    return e;
}

static double rel_err(double got, double want) {
    return fabs(got - want) / fabs(want);
}

/* |delta|^2 from large (B_simple near d + 1) to small (B_simple ~ 74 > the big batch). */
static const double settings[] = {4.0, 1.0, 0.25, 0.04};

static void averaged_estimates_match_closed_form(void **state) {
    for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++) {
        double d2 = settings[i];
        double want = truth_trace(d2) / truth_g2(d2);
        estimates e = run_estimator(d2, 8, 64, 8, 10000, 0.95, 100 + i);
        fprintf(stderr,
                "  |delta|^2 %-5g B_simple true %7.3f  averaged %7.3f (%+.1f%%)  "
                "|G|^2 %+.1f%%  tr %+.1f%%\n",
                d2, want, e.scale, 100 * (e.scale / want - 1), 100 * (e.g2 / truth_g2(d2) - 1),
                100 * (e.trace / truth_trace(d2) - 1));
        assert_true(rel_err(e.g2, truth_g2(d2)) < 0.10);
        assert_true(rel_err(e.trace, truth_trace(d2)) < 0.10);
        assert_true(rel_err(e.scale, want) < 0.10);
    }
}

static void ema_ratio_matches_closed_form(void **state) {
    /* A slow EMA (window ~ 2/(1-decay) = 4000 draws) after 3x its window: the
     * bias correction is then negligible and the ratio of the two smoothed
     * estimates is what training would report at these weights. */
    for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++) {
        double d2 = settings[i];
        double want = truth_trace(d2) / truth_g2(d2);
        estimates e = run_estimator(d2, 8, 64, 8, 12000, 0.9995, 200 + i);
        fprintf(stderr, "  |delta|^2 %-5g B_simple true %7.3f  EMA %7.3f (%+.1f%%)\n", d2, want,
                e.ema_scale, 100 * (e.ema_scale / want - 1));
        assert_true(rel_err(e.ema_scale, want) < 0.10);
    }
}

static void wrong_small_batch_is_detected(void **state) {
    /* The same gradients, but the estimator is told the small batch had 16
     * samples instead of 8: the trace estimate halves-ish, and the test that
     * passes above must fail here, so the 10% bound has teeth. */
    for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++) {
        double d2 = settings[i];
        double want = truth_trace(d2) / truth_g2(d2);
        estimates e = run_estimator(d2, 8, 64, 16, 2000, 0.95, 100 + i);
        fprintf(stderr,
                "  |delta|^2 %-5g told b=16 (really 8): B_simple %7.3f vs %7.3f (%+.0f%%)\n", d2,
                e.scale, want, 100 * (e.scale / want - 1));
        assert_true(rel_err(e.scale, want) > 0.10);
    }
}

static void one_shot_estimates_are_exact_without_noise(void **state) {
    /* If |G_b|^2 = |G|^2 + tr/b exactly, the estimates recover both exactly. */
    double g2 = 0.7, tr = 33.0;
    double gs = g2 + tr / 4, gb = g2 + tr / 32;
    assert_true(fabs(bl_noise_g2_estimate(gs, 4, gb, 32) - g2) < 1e-12);
    assert_true(fabs(bl_noise_trace_estimate(gs, 4, gb, 32) - tr) < 1e-10);
    bl_noise ns;
    bl_noise_init(&ns, 0.9);
    assert_true(isnan(bl_noise_scale(&ns)));
    bl_noise_update(&ns, gs, 4, gb, 32);
    assert_true(fabs(bl_noise_scale(&ns) - tr / g2) < 1e-9); /* bias-corrected from step 1 */
    bl_noise_update(&ns, NAN, 4, gb, 32);                    /* ignored */
    bl_noise_update(&ns, gs, 32, gb, 4);                     /* ignored: b_small >= b_big */
    assert_int_equal(ns.n, 1);
}

/* ---- bl_noise_measure on a model and a finite dataset ------------------------ */

static bl_ctx g_ctx;
static bl_dataset g_train;

static int setup(void **state) {
    if (tu_load_sample(&g_ctx, &g_train, NULL)) return -1;
    return 0;
}

static int teardown(void **state) {
    return tu_free_sample(&g_ctx, &g_train, NULL);
}

static bl_model *make_model(const char *spec, int max_batch) {
    bl_error err = {0};
    bl_model *m = NULL;
    assert_int_equal(bl_model_create(&m, spec, g_train.shape, 10, &err), BL_OK);
    assert_int_equal(bl_model_alloc(m, &g_ctx, max_batch, &err), BL_OK);
    tu_init(m, 3);
    return m;
}

/* The first n samples' gradients, one at a time: returns sum_i |g_i|^2 and, with g2 and
 * trace, their |G|^2 and tr(Sigma). */
static double per_sample_stats(bl_model *m, size_t n, double *g2, double *trace) {
    size_t np = bl_model_num_params(m);
    double *mean = calloc(np, sizeof *mean), sq = 0;
    assert_non_null(mean);
    for (size_t i = 0; i < n; i++) {
        int correct = 0;
        tu_zero_grad(m);
        tu_step(m, g_train.x + i * g_train.dim, g_train.y + i, 1, BL_LOSS_XENT, 1.0f, &correct);
        float *g = tu_arena(m, BL_ARENA_GRADS);
        for (size_t k = 0; k < np; k++)
            mean[k] += g[k], sq += (double)g[k] * g[k];
        free(g);
    }
    double s = 0;
    for (size_t k = 0; k < np; k++)
        s += (mean[k] / n) * (mean[k] / n);
    if (g2) *g2 = s;
    if (trace) *trace = sq / n - s;
    free(mean);
    return sq;
}

/* |G|^2 and tr(Sigma) of the whole dataset from every per-sample gradient. */
static void exact_noise(bl_model *m, double *g2, double *trace) {
    per_sample_stats(m, g_train.n, g2, trace);
}

static void measure_matches_exact_dataset_values(void **state) {
    /* max batch 48 < b_big: the big batch runs in chunks 8, 48, 48, 24. */
    bl_model *m = make_model("flatten,dense:16,relu,dense:10", 48);
    double g2, tr;
    exact_noise(m, &g2, &tr);
    float *before = tu_arena(m, BL_ARENA_PARAMS);
    bl_noise_measure_config c;
    bl_noise_measure_config_default(&c);
    c.b_small = 8, c.b_big = 128, c.draws = 3000, c.seed = 5;
    bl_noise_measurement r;
    bl_error err = {0};
    assert_int_equal(bl_noise_measure(m, &g_train, &c, &r, &err), BL_OK);
    double want = tr / g2;
    fprintf(stderr,
            "  exact |G|^2 %.5g tr %.5g B_simple %.3f; measured %.5g %.5g %.3f "
            "[%.3f, %.3f] in %.2f s\n",
            g2, tr, want, r.g2, r.trace, r.scale, r.scale_lo, r.scale_hi, r.seconds);
    assert_true(rel_err(r.g2, g2) < 0.10);
    assert_true(rel_err(r.trace, tr) < 0.10);
    assert_true(rel_err(r.scale, want) < 0.10);
    assert_true(r.scale_lo < r.scale && r.scale < r.scale_hi);
    assert_true(r.scale_lo <= want && want <= r.scale_hi);
    assert_true(r.g2_se > 0 && r.trace_se > 0);
    assert_true(tu_arena_is(m, BL_ARENA_PARAMS, before));
    /* Same seed, same answer. */
    bl_noise_measurement r2;
    c.draws = 50;
    assert_int_equal(bl_noise_measure(m, &g_train, &c, &r, &err), BL_OK);
    assert_int_equal(bl_noise_measure(m, &g_train, &c, &r2, &err), BL_OK);
    assert_true(r.scale == r2.scale && r.scale_lo == r2.scale_lo);
    free(before);
    bl_model_free(m);
}

static void measure_restores_batchnorm_state(void **state) {
    bl_model *m = make_model("flatten,dense:16,bn,relu,dropout:0.2,dense:10", 64);
    size_t nb = bl_model_num_buffers(m);
    assert_true(nb > 0);
    float *buf = tu_arena(m, BL_ARENA_BUFFERS);
    bl_noise_measure_config c;
    bl_noise_measure_config_default(&c);
    c.b_small = 16, c.b_big = 64, c.draws = 10;
    bl_noise_measurement r;
    bl_error err = {0};
    assert_int_equal(bl_noise_measure(m, &g_train, &c, &r, &err), BL_OK);
    assert_true(tu_arena_is(m, BL_ARENA_BUFFERS, buf));
    assert_true(isfinite(r.mean_loss) && r.mean_loss > 0);
    free(buf);
    bl_model_free(m);
}

static void trainer_measures_every_nth_update(void **state) {
    /* One micro-batch per update: only every 3rd update is measured, as two halves. */
    bl_train_config c;
    bl_train_config_default(&c);
    c.spec = "flatten,dense:16,relu,dense:10";
    c.batch = 32;
    c.noise = 1;
    c.noise_every = 3;
    c.prefetch = 0;
    bl_trainer *t = NULL;
    bl_error err = {0};
    assert_int_equal(bl_trainer_create(&t, &g_ctx, &c, &g_train, &err), BL_OK);
    for (int i = 1; i <= 9; i++) {
        bl_step_info si;
        assert_int_equal(bl_trainer_step(t, &si, &err), BL_OK);
        assert_int_equal(si.has_noise, i % 3 == 1); /* updates 1, 4, 7 */
        assert_int_equal(si.batch, 32);
        if (si.has_noise) assert_true(isfinite(si.noise_g2) && isfinite(si.noise_trace));
    }
    assert_int_equal(bl_trainer_noise(t)->n, 3);
    bl_trainer_free(t);
}

static void per_example_norms_match_per_sample_gradients(void **state) {
    /* A fused dense+ReLU, a plain dense and an activation of its own. */
    const char *specs[] = {"flatten,dense:16,relu,dense:10", "flatten,dense:12,tanh,dense:10",
                           "logreg"};
    for (int k = 0; k < 3; k++) {
        bl_model *m = make_model(specs[k], 40);
        assert_true(bl_model_per_example_ok(m));
        double want = per_sample_stats(m, 40, NULL, NULL);
        int correct = 0;
        float scale = 0.25f;
        bl_model_per_example_norms(m, 1);
        tu_zero_grad(m);
        tu_step(m, g_train.x, g_train.y, 40, BL_LOSS_XENT, scale, &correct);
        double got = bl_model_per_example_sum(m) / ((double)scale * scale);
        fprintf(stderr, "  %s: sum |g_i|^2 %.6g per sample, %.6g from the batch\n", specs[k], want,
                got);
        assert_true(rel_err(got, want) < 1e-4);
        /* Off: nothing is added, and turning it on again resets. */
        bl_model_per_example_norms(m, 0);
        assert_int_equal(bl_model_backward(m, scale, NULL), BL_OK);
        assert_true(bl_model_per_example_sum(m) == 0);
        bl_model_free(m);
    }
    /* Where a per-example gradient is not an outer product, the model says so. */
    bl_model *m = make_model("conv3x3:2,relu,flatten,dense:10", 8);
    assert_false(bl_model_per_example_ok(m));
    bl_model_free(m);
    m = make_model("flatten,dense:16,bn,relu,dense:10", 8);
    assert_false(bl_model_per_example_ok(m));
    bl_model_free(m);
}

static bl_trainer *dense_trainer(int noise, float lr, double decay, int batch) {
    bl_train_config c;
    bl_train_config_default(&c);
    c.spec = "flatten,dense:16,relu,dense:10";
    c.batch = batch;
    c.lr = lr;
    c.noise = noise;
    c.noise_decay = decay;
    c.prefetch = 0;
    bl_trainer *t = NULL;
    bl_error err = {0};
    assert_int_equal(bl_trainer_create(&t, &g_ctx, &c, &g_train, &err), BL_OK);
    return t;
}

static void measuring_leaves_dense_training_unchanged(void **state) {
    /* The per-example path runs each update exactly as unmeasured: same bits. */
    bl_trainer *a = dense_trainer(1, 0.05f, 0.95, 32), *b = dense_trainer(0, 0.05f, 0.95, 32);
    bl_error err = {0};
    for (int i = 0; i < 12; i++) {
        bl_step_info sa, sb;
        assert_int_equal(bl_trainer_step(a, &sa, &err), BL_OK);
        assert_int_equal(bl_trainer_step(b, &sb, &err), BL_OK);
        assert_true(sa.has_noise && !sb.has_noise);
    }
    bl_model *ma = bl_trainer_model(a), *mb = bl_trainer_model(b);
    assert_true(tu_arena_equal(ma, mb, BL_ARENA_PARAMS));
    bl_trainer_free(a);
    bl_trainer_free(b);
}

static void trainer_estimates_match_exact_dataset_values(void **state) {
    /* With a negligible learning rate the weights stay put, so the trainer's running
     * estimates (per-example norms against a batch of 64, 1000 updates) must converge to
     * the whole dataset's |G|^2 and tr(Sigma) at those weights. */
    bl_trainer *t = dense_trainer(1, 1e-12f, 0.998, 64);
    double g2, tr;
    exact_noise(bl_trainer_model(t), &g2, &tr);
    bl_error err = {0};
    for (int i = 0; i < 1000; i++) {
        bl_step_info si;
        assert_int_equal(bl_trainer_step(t, &si, &err), BL_OK);
    }
    const bl_noise *ns = bl_trainer_noise(t);
    fprintf(stderr, "  exact |G|^2 %.5g tr %.5g B_simple %.3f; trainer %.5g %.5g %.3f\n", g2, tr,
            tr / g2, bl_noise_g2(ns), bl_noise_trace(ns), bl_noise_scale(ns));
    assert_true(rel_err(bl_noise_trace(ns), tr) < 0.03);
    assert_true(rel_err(bl_noise_g2(ns), g2) < 0.04);
    assert_true(rel_err(bl_noise_scale(ns), tr / g2) < 0.05);
    bl_trainer_free(t);
}

/* The whole dataset's |G|^2 and tr(Sigma) at m's weights, in one pass of a model `full`
 * allocated for every sample (per-example norms: exact for a dense model, as tested above). */
static void exact_noise_dense(bl_model *full, bl_model *m, double *g2, double *trace) {
    size_t np = bl_model_num_params(m), n = g_train.n;
    float *p = tu_arena(m, BL_ARENA_PARAMS);
    tu_arena_set(full, BL_ARENA_PARAMS, p, np);
    free(p);
    int correct = 0;
    bl_model_per_example_norms(full, 1);
    tu_zero_grad(full);
    tu_step(full, g_train.x, g_train.y, (int)n, BL_LOSS_XENT, 1.0f / (float)n, &correct);
    double mean_sq = bl_model_per_example_sum(full) * (double)n, s = 0;
    float *g = tu_arena(full, BL_ARENA_GRADS);
    for (size_t k = 0; k < np; k++)
        s += (double)g[k] * g[k];
    free(g);
    *g2 = s;
    *trace = mean_sq - s;
}

static void live_estimate_follows_training_on_small_data(void **state) {
    /* 400 epochs of 10 updates of 64 on the 600-row sample. Measured on the training
     * batches, the estimate read |G|^2 76% high and B_simple 40% low: drawn without
     * replacement, a batch late in an epoch comes from the rows the weights have not been
     * fitted to yet this epoch. Measured on batches of their own (with replacement, apart
     * from the epoch order), the estimates average to the exact values at the same weights
     * along the run. The measurement batch is 512, so that 3200 measurements resolve
     * |G|^2 to about 5% where B_simple (~300) is far above 64. */
    bl_train_config c;
    bl_train_config_default(&c);
    c.spec = "logreg";
    c.batch = 64;
    bl_optim_config_default(&c.opt, BL_OPT_ADAM);
    c.lr = 0.003f;
    c.seed = 3;
    c.noise = 1;
    c.noise_batch = 512;
    c.prefetch = 0;
    bl_trainer *t = NULL;
    bl_error err = {0};
    assert_int_equal(bl_trainer_create(&t, &g_ctx, &c, &g_train, &err), BL_OK);
    bl_model *full = make_model("logreg", (int)g_train.n);
    enum {
        STEPS = 4000,
        SKIP = STEPS / 5,
        EXACT_EVERY = 7
    }; /* 7: not a multiple of the
          epoch's 10 updates */
    double ex_g2 = 0, ex_tr = 0, est_g2 = 0, est_tr = 0, ema_g2 = 0, ema_tr = 0;
    int n_ex = 0, n_est = 0;
    for (int s = 0; s < STEPS; s++) {
        if (s >= SKIP && s % EXACT_EVERY == 0) {
            double g2, tr;
            exact_noise_dense(full, bl_trainer_model(t), &g2, &tr);
            ex_g2 += g2, ex_tr += tr, n_ex++;
        }
        bl_step_info si;
        assert_int_equal(bl_trainer_step(t, &si, &err), BL_OK);
        if (s < SKIP || !si.has_noise) continue;
        const bl_noise *ns = bl_trainer_noise(t);
        est_g2 += ns->last_g2, est_tr += ns->last_tr, n_est++;
        ema_g2 += si.noise_g2, ema_tr += si.noise_trace;
    }
    assert_true(n_est >= 2000);
    ex_g2 /= n_ex, ex_tr /= n_ex, est_g2 /= n_est, est_tr /= n_est, ema_g2 /= n_est,
        ema_tr /= n_est;
    double ex_b = ex_tr / ex_g2, est_b = est_tr / est_g2, ema_b = ema_tr / ema_g2;
    fprintf(stderr,
            "  along %d updates: exact |G|^2 %.4g tr %.4g B_simple %.1f; live %.4g (%+.1f%%) "
            "%.4g (%+.1f%%) %.1f (%+.1f%%); logged EMA B_simple %.1f (%+.1f%%)\n",
            n_est, ex_g2, ex_tr, ex_b, est_g2, 100 * (est_g2 / ex_g2 - 1), est_tr,
            100 * (est_tr / ex_tr - 1), est_b, 100 * (est_b / ex_b - 1), ema_b,
            100 * (ema_b / ex_b - 1));
    assert_true(rel_err(est_g2, ex_g2) < 0.15);
    assert_true(rel_err(est_tr, ex_tr) < 0.15);
    assert_true(rel_err(est_b, ex_b) < 0.15);
    assert_true(rel_err(ema_b, ex_b) < 0.15);
    bl_model_free(full);
    bl_trainer_free(t);
}

static void measuring_leaves_every_model_unchanged(void **state) {
    /* The measurement runs on its own batch and restores what it moves (batch-norm
     * statistics, the dropout stream), so even a model whose measurement runs as two
     * halves trains bit for bit as without it. */
    const char *spec = "conv3x3:2,bn,relu,flatten,dropout:0.2,dense:10";
    bl_trainer *tr[2];
    bl_error err = {0};
    for (int k = 0; k < 2; k++) {
        bl_train_config c;
        bl_train_config_default(&c);
        c.spec = spec;
        c.batch = 32;
        c.noise = k;
        c.prefetch = 0;
        assert_int_equal(bl_trainer_create(&tr[k], &g_ctx, &c, &g_train, &err), BL_OK);
        for (int i = 0; i < 25; i++) {
            bl_step_info si;
            assert_int_equal(bl_trainer_step(tr[k], &si, &err), BL_OK);
            assert_int_equal(si.has_noise, k);
        }
    }
    bl_model *a = bl_trainer_model(tr[0]), *b = bl_trainer_model(tr[1]);
    assert_true(tu_arena_equal(a, b, BL_ARENA_PARAMS));
    assert_true(tu_arena_equal(a, b, BL_ARENA_BUFFERS));
    assert_true(isfinite(bl_noise_scale(bl_trainer_noise(tr[1]))) ||
                bl_noise_g2(bl_trainer_noise(tr[1])) <= 0);
    bl_trainer_free(tr[0]);
    bl_trainer_free(tr[1]);
}

static int stop_now(void *arg) {
    return ++*(int *)arg > 2;
}

static void measure_rejects_bad_input(void **state) {
    bl_model *m = make_model("logreg", 32);
    bl_noise_measure_config c;
    bl_noise_measure_config_default(&c);
    bl_noise_measurement r;
    bl_error err = {0};
    c.b_small = 64, c.b_big = 64;
    assert_int_equal(bl_noise_measure(m, &g_train, &c, &r, &err), BL_ERR_ARG);
    assert_non_null(strstr(err.msg, "small batch (64)"));
    c.b_small = 8, c.b_big = 100000;
    assert_int_equal(bl_noise_measure(m, &g_train, &c, &r, &err), BL_ERR_ARG);
    assert_non_null(strstr(err.msg, "100000"));
    c.b_small = 33, c.b_big = 64;
    assert_int_equal(bl_noise_measure(m, &g_train, &c, &r, &err), BL_ERR_ARG);
    c.b_small = 8, c.draws = 1;
    assert_int_equal(bl_noise_measure(m, &g_train, &c, &r, &err), BL_ERR_ARG);
    int calls = 0;
    c.draws = 10, c.should_stop = stop_now, c.stop_arg = &calls;
    assert_int_equal(bl_noise_measure(m, &g_train, &c, &r, &err), BL_ERR_INTERRUPTED);
    bl_model_free(m);
}

int main(void) {
    const struct CMUnitTest analytic[] = {
        cmocka_unit_test(one_shot_estimates_are_exact_without_noise),
        cmocka_unit_test(averaged_estimates_match_closed_form),
        cmocka_unit_test(ema_ratio_matches_closed_form),
        cmocka_unit_test(wrong_small_batch_is_detected),
    };
    const struct CMUnitTest model[] = {
        cmocka_unit_test(measure_matches_exact_dataset_values),
        cmocka_unit_test(measure_restores_batchnorm_state),
        cmocka_unit_test(measure_rejects_bad_input),
        cmocka_unit_test(trainer_measures_every_nth_update),
        cmocka_unit_test(per_example_norms_match_per_sample_gradients),
        cmocka_unit_test(measuring_leaves_dense_training_unchanged),
        cmocka_unit_test(trainer_estimates_match_exact_dataset_values),
        cmocka_unit_test(live_estimate_follows_training_on_small_data),
        cmocka_unit_test(measuring_leaves_every_model_unchanged),
    };
    int fails = cmocka_run_group_tests_name("noise scale: closed form", analytic, NULL, NULL);
    return fails +
           cmocka_run_group_tests_name("noise scale: measured on a model", model, setup, teardown);
}
