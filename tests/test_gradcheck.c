/* Finite-difference gradient checks, in double precision, of the reference
 * kernels (src/backend/cpu/ref.h) for every layer and loss. The fast float
 * kernels are checked against these references in test_kernels.c, so the
 * two files together tie the float backward passes to the true derivative.
 *
 * A layer's output is reduced to a scalar by a fixed random functional
 * L(out) = sum v_i out_i + 0.25 sum out_i^2 (nonlinear, so a wrong dout
 * scaling cannot cancel), whose gradient v + 0.5 out is fed to backward.
 * Each input and parameter is then checked element by element with central
 * differences (h = 1e-6), and all of them together along one random
 * direction, as kann's kad_check_grad does: (L(x+hv) - L(x-hv)) / 2h
 * against <grad, v>. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "backend/cpu/ref.h"
#include "batchlab/backend.h"

#define FD_H 1e-6
#define FD_TOL 1e-6  /* relative error allowed */
#define FD_FLOOR 0.1 /* below this magnitude the error is absolute (1e-7): rounding in L */

typedef double (*loss_fn)(void *ctx);

static double *drand_n(size_t n, uint64_t seed, double sd) {
    bl_rng r;
    bl_rng_seed(&r, seed);
    double *x = calloc(n ? n : 1, sizeof *x);
    for (size_t i = 0; i < n; i++)
        x[i] = sd * bl_rng_normal(&r);
    return x;
}
static double *dzero(size_t n) {
    return calloc(n ? n : 1, sizeof(double));
}

static double rel_err(double num, double ana) {
    return fabs(num - ana) / fmax(FD_FLOOR, fmax(fabs(num), fabs(ana)));
}

/* Worst relative error of ana against central differences of f over x[0..n). */
static double elementwise_err(loss_fn f, void *ctx, double *x, const double *ana, size_t n,
                              const char *what) {
    double worst = 0;
    size_t at = 0;
    double num_at = 0;
    for (size_t i = 0; i < n; i++) {
        double keep = x[i];
        x[i] = keep + FD_H;
        double fp = f(ctx);
        x[i] = keep - FD_H;
        double fm = f(ctx);
        x[i] = keep;
        double num = (fp - fm) / (2 * FD_H), e = rel_err(num, ana[i]);
        if (!(e <= worst)) {
            worst = e;
            at = i;
            num_at = num;
        }
    }
    if (!(worst <= FD_TOL))
        fprintf(stderr, "%s[%zu]: numeric %.10g analytic %.10g (rel err %.3g)\n", what, at, num_at,
                n ? ana[at] : 0.0, worst);
    return worst;
}

/* All m tensors moved together along one random direction. */
static double directional_err(loss_fn f, void *ctx, double **xs, double **anas, const size_t *ns,
                              int m, uint64_t seed) {
    const size_t slots = m > 0 ? (size_t)m : 1;
    double **keep = calloc(slots, sizeof *keep), **dir = calloc(slots, sizeof *dir), ana = 0;
    for (int t = 0; t < m; t++) {
        dir[t] = drand_n(ns[t], seed + t, 1.0);
        keep[t] = dzero(ns[t]);
        memcpy(keep[t], xs[t], ns[t] * sizeof(double));
        for (size_t i = 0; i < ns[t]; i++)
            ana += anas[t][i] * dir[t][i];
    }
    for (int t = 0; t < m; t++)
        for (size_t i = 0; i < ns[t]; i++)
            xs[t][i] = keep[t][i] + FD_H * dir[t][i];
    double fp = f(ctx);
    for (int t = 0; t < m; t++)
        for (size_t i = 0; i < ns[t]; i++)
            xs[t][i] = keep[t][i] - FD_H * dir[t][i];
    double fm = f(ctx);
    for (int t = 0; t < m; t++) {
        memcpy(xs[t], keep[t], ns[t] * sizeof(double));
        free(keep[t]), free(dir[t]);
    }
    free(keep), free(dir);
    double num = (fp - fm) / (2 * FD_H), e = rel_err(num, ana);
    if (!(e <= FD_TOL))
        fprintf(stderr, "direction: numeric %.10g analytic %.10g (rel err %.3g)\n", num, ana, e);
    return e;
}

/* Runs both checks on m (tensor, gradient) pairs and asserts. */
static void check_grads(loss_fn f, void *ctx, double **xs, double **anas, const size_t *ns,
                        const char **names, int m) {
    for (int t = 0; t < m; t++)
        assert_true(elementwise_err(f, ctx, xs[t], anas[t], ns[t], names[t]) <= FD_TOL);
    assert_true(directional_err(f, ctx, xs, anas, ns, m, 999) <= FD_TOL);
}

/* L(out) and dL/dout for the fixed functional. */
static double functional(const double *out, const double *v, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += v[i] * out[i] + 0.25 * out[i] * out[i];
    return s;
}
static void functional_grad(double *dout, const double *out, const double *v, size_t n) {
    for (size_t i = 0; i < n; i++)
        dout[i] = v[i] + 0.5 * out[i];
}

/* ---- dense --------------------------------------------------------------- */

typedef struct {
    int B, I, O;
    double *in, *w, *b, *out, *v;
} dense_ctx;

static double dense_loss(void *p) {
    dense_ctx *c = p;
    ref_dense_forward(c->out, c->in, c->w, c->b, c->B, c->I, c->O);
    return functional(c->out, c->v, (size_t)c->B * c->O);
}

static void gradcheck_dense(void **state) {
    const int shapes[][3] = {{3, 5, 4}, {1, 7, 2}, {4, 1, 3}};
    for (size_t t = 0; t < 3; t++) {
        dense_ctx c = {.B = shapes[t][0], .I = shapes[t][1], .O = shapes[t][2]};
        size_t ni = (size_t)c.B * c.I, nw = (size_t)c.O * c.I, no = (size_t)c.B * c.O;
        c.in = drand_n(ni, 1 + t, 1), c.w = drand_n(nw, 2 + t, 1), c.b = drand_n(c.O, 3 + t, 1);
        c.out = dzero(no), c.v = drand_n(no, 4 + t, 1);
        double *dout = dzero(no), *din = dzero(ni), *dw = dzero(nw), *db = dzero(c.O);
        dense_loss(&c);
        functional_grad(dout, c.out, c.v, no);
        ref_dense_backward(din, dw, db, dout, c.in, c.w, c.B, c.I, c.O);
        double *xs[] = {c.in, c.w, c.b}, *g[] = {din, dw, db};
        size_t ns[] = {ni, nw, (size_t)c.O};
        const char *names[] = {"dense in", "dense w", "dense b"};
        check_grads(dense_loss, &c, xs, g, ns, names, 3);

        /* negative control: a gradient off by 1e-4 relative is caught */
        dw[1] += 1e-4 * fmax(1.0, fabs(dw[1]));
        assert_true(elementwise_err(dense_loss, &c, c.w, dw, nw, "(expected) dense w") > FD_TOL);
        free(c.in), free(c.w), free(c.b), free(c.out), free(c.v);
        free(dout), free(din), free(dw), free(db);
    }
}

/* ---- conv2d -------------------------------------------------------------- */

typedef struct {
    bl_conv_dims d;
    double *in, *w, *b, *out, *v;
} conv_ctx;

static double conv_loss(void *p) {
    conv_ctx *c = p;
    ref_conv2d_forward(c->out, c->in, c->w, c->b, &c->d);
    return functional(c->out, c->v, (size_t)c->d.B * c->d.K * c->d.P * c->d.Q);
}

static void gradcheck_conv2d(void **state) {
    const int cases[][9] = {
        /* B, C, H, W, K, R, S, stride, pad */
        {2, 3, 5, 6, 4, 3, 3, 1, 1}, {2, 2, 7, 7, 3, 3, 5, 2, 2}, {1, 3, 6, 5, 2, 2, 3, 2, 0},
        {2, 4, 3, 3, 3, 1, 1, 1, 0}, {1, 1, 5, 5, 2, 3, 3, 3, 1}, {1, 2, 4, 4, 2, 3, 3, 1, 0},
    };
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        const int *k = cases[t];
        conv_ctx c = {.d = {k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7], k[8], 0, 0}};
        c.d.P = bl_conv_out_size(k[2], k[5], k[7], k[8]);
        c.d.Q = bl_conv_out_size(k[3], k[6], k[7], k[8]);
        size_t ni = (size_t)k[0] * k[1] * k[2] * k[3], nw = (size_t)k[4] * k[1] * k[5] * k[6];
        size_t no = (size_t)k[0] * k[4] * c.d.P * c.d.Q;
        /* weights at init scale keep the outputs O(1), and with them the rounding in L */
        c.in = drand_n(ni, 10 + t, 1), c.w = drand_n(nw, 20 + t, 1 / sqrt((double)nw / k[4]));
        c.b = drand_n(k[4], 30 + t, 1);
        c.out = dzero(no), c.v = drand_n(no, 40 + t, 1);
        double *dout = dzero(no), *din = dzero(ni), *dw = dzero(nw), *db = dzero(k[4]);
        conv_loss(&c);
        functional_grad(dout, c.out, c.v, no);
        ref_conv2d_backward(din, dw, db, dout, c.in, c.w, &c.d);
        double *xs[] = {c.in, c.w, c.b}, *g[] = {din, dw, db};
        size_t ns[] = {ni, nw, (size_t)k[4]};
        const char *names[] = {"conv in", "conv w", "conv b"};
        check_grads(conv_loss, &c, xs, g, ns, names, 3);
        free(c.in), free(c.w), free(c.b), free(c.out), free(c.v);
        free(dout), free(din), free(dw), free(db);
    }
}

/* ---- pooling ------------------------------------------------------------- */

typedef struct {
    bl_pool_dims d;
    int max;
    double *in, *out, *v;
    int32_t *argmax;
} pool_ctx;

static double pool_loss(void *p) {
    pool_ctx *c = p;
    if (c->max)
        ref_maxpool_forward(c->out, c->argmax, c->in, &c->d);
    else
        ref_avgpool_forward(c->out, c->in, &c->d);
    return functional(c->out, c->v, (size_t)c->d.B * c->d.C * c->d.P * c->d.Q);
}

static void gradcheck_pools(void **state) {
    const int cases[][6] = {{2, 2, 6, 6, 2, 2}, {1, 3, 7, 5, 3, 2}, {2, 1, 5, 5, 3, 1}};
    for (int max = 0; max < 2; max++)
        for (size_t t = 0; t < 3; t++) {
            const int *k = cases[t];
            pool_ctx c = {.d = {k[0], k[1], k[2], k[3], k[4], k[5], 0, 0}, .max = max};
            c.d.P = bl_conv_out_size(k[2], k[4], k[5], 0);
            c.d.Q = bl_conv_out_size(k[3], k[4], k[5], 0);
            size_t ni = (size_t)k[0] * k[1] * k[2] * k[3], no = (size_t)k[0] * k[1] * c.d.P * c.d.Q;
            /* distinct values 0.05 apart, shuffled: no ties, and h cannot reorder them */
            uint32_t *perm = calloc(ni, sizeof *perm);
            for (uint32_t i = 0; i < ni; i++)
                perm[i] = i;
            bl_rng r;
            bl_rng_seed(&r, 50 + t);
            bl_rng_shuffle(&r, perm, ni);
            c.in = dzero(ni);
            for (size_t i = 0; i < ni; i++)
                c.in[i] = 0.05 * perm[i] - 1.0;
            c.out = dzero(no), c.v = drand_n(no, 60 + t, 1);
            c.argmax = calloc(no, sizeof *c.argmax);
            double *dout = dzero(no), *din = dzero(ni);
            pool_loss(&c);
            functional_grad(dout, c.out, c.v, no);
            if (max)
                ref_maxpool_backward(din, dout, c.argmax, &c.d);
            else
                ref_avgpool_backward(din, dout, &c.d);
            double *xs[] = {c.in}, *g[] = {din};
            size_t ns[] = {ni};
            const char *names[] = {max ? "maxpool in" : "avgpool in"};
            check_grads(pool_loss, &c, xs, g, ns, names, 1);
            free(perm), free(c.in), free(c.out), free(c.v), free(c.argmax), free(dout), free(din);
        }
}

/* ---- activations and dropout --------------------------------------------- */

typedef struct {
    bl_act act;
    double alpha;
    size_t n;
    double *in, *out, *v;
} act_ctx;

static double act_loss(void *p) {
    act_ctx *c = p;
    ref_act_forward(c->out, c->in, c->n, c->act, c->alpha);
    return functional(c->out, c->v, c->n);
}

static void gradcheck_activations(void **state) {
    const bl_act acts[] = {BL_ACT_RELU, BL_ACT_LEAKY_RELU, BL_ACT_TANH, BL_ACT_SIGMOID,
                           BL_ACT_GELU};
    for (size_t a = 0; a < 5; a++) {
        act_ctx c = {.act = acts[a], .alpha = 0.1, .n = 57};
        c.in = drand_n(c.n, 70 + a, 1.5), c.out = dzero(c.n), c.v = drand_n(c.n, 80 + a, 1);
        for (size_t i = 0; i < c.n; i++) /* keep away from the ReLU kink */
            if (fabs(c.in[i]) < 0.1) c.in[i] += copysign(0.1, c.in[i]);
        double *dout = dzero(c.n), *din = dzero(c.n);
        act_loss(&c);
        functional_grad(dout, c.out, c.v, c.n);
        ref_act_backward(din, dout, c.in, c.out, c.n, c.act, c.alpha);
        double *xs[] = {c.in}, *g[] = {din};
        size_t ns[] = {c.n};
        const char *names[] = {"activation in"};
        check_grads(act_loss, &c, xs, g, ns, names, 1);
        free(c.in), free(c.out), free(c.v), free(dout), free(din);
    }
}

typedef struct {
    size_t n;
    double p;
    uint8_t *mask;
    double *in, *out, *v;
} drop_ctx;

static double drop_loss(void *q) {
    drop_ctx *c = q;
    ref_dropout_forward(c->out, c->mask, c->in, c->n, c->p);
    return functional(c->out, c->v, c->n);
}

static void gradcheck_dropout(void **state) {
    drop_ctx c = {.n = 64, .p = 0.25};
    c.mask = calloc(c.n, 1);
    for (size_t i = 0; i < c.n; i++)
        c.mask[i] = (i * 7 + 3) % 4 != 0;
    c.in = drand_n(c.n, 90, 1), c.out = dzero(c.n), c.v = drand_n(c.n, 91, 1);
    double *dout = dzero(c.n), *din = dzero(c.n);
    drop_loss(&c);
    functional_grad(dout, c.out, c.v, c.n);
    ref_dropout_backward(din, dout, c.mask, c.n, c.p);
    double *xs[] = {c.in}, *g[] = {din};
    size_t ns[] = {c.n};
    const char *names[] = {"dropout in"};
    check_grads(drop_loss, &c, xs, g, ns, names, 1);
    free(c.mask), free(c.in), free(c.out), free(c.v), free(dout), free(din);
}

/* ---- batch norm (train mode: the batch statistics depend on the input) --- */

typedef struct {
    int B, C, HW;
    double *in, *gamma, *beta, *out, *mean, *rstd, *v;
} bn_ctx;

static double bn_loss(void *p) {
    bn_ctx *c = p;
    ref_batchnorm_forward_train(c->out, c->mean, c->rstd, NULL, NULL, c->in, c->gamma, c->beta,
                                c->B, c->C, c->HW, 0.1, 1e-5);
    return functional(c->out, c->v, (size_t)c->B * c->C * c->HW);
}

static void gradcheck_batchnorm(void **state) {
    const int shapes[][3] = {{4, 3, 5}, {6, 4, 1}, {2, 2, 3}};
    for (size_t t = 0; t < 3; t++) {
        bn_ctx c = {.B = shapes[t][0], .C = shapes[t][1], .HW = shapes[t][2]};
        size_t n = (size_t)c.B * c.C * c.HW, C = c.C;
        c.in = drand_n(n, 100 + t, 2), c.gamma = drand_n(C, 101 + t, 1);
        c.beta = drand_n(C, 102 + t, 1), c.out = dzero(n), c.v = drand_n(n, 103 + t, 1);
        c.mean = dzero(C), c.rstd = dzero(C);
        double *dout = dzero(n), *din = dzero(n), *dg = dzero(C), *dbt = dzero(C);
        bn_loss(&c);
        functional_grad(dout, c.out, c.v, n);
        ref_batchnorm_backward(din, dg, dbt, dout, c.in, c.mean, c.rstd, c.gamma, c.B, c.C, c.HW);
        double *xs[] = {c.in, c.gamma, c.beta}, *g[] = {din, dg, dbt};
        size_t ns[] = {n, C, C};
        const char *names[] = {"bn in", "bn gamma", "bn beta"};
        check_grads(bn_loss, &c, xs, g, ns, names, 3);
        free(c.in), free(c.gamma), free(c.beta), free(c.out), free(c.v), free(c.mean);
        free(c.rstd), free(dout), free(din), free(dg), free(dbt);
    }
}

/* ---- losses -------------------------------------------------------------- */

typedef struct {
    int B, K;
    double *logits, *probs;
    int32_t *labels;
} xent_ctx;

static double xent_loss(void *p) {
    xent_ctx *c = p;
    return ref_softmax_xent_forward(c->probs, NULL, c->logits, c->labels, c->B, c->K) / c->B;
}

static void gradcheck_softmax_xent(void **state) {
    const int shapes[][2] = {{5, 10}, {3, 2}, {2, 1}};
    for (size_t t = 0; t < 3; t++) {
        xent_ctx c = {.B = shapes[t][0], .K = shapes[t][1]};
        size_t n = (size_t)c.B * c.K;
        c.logits = drand_n(n, 110 + t, 3), c.probs = dzero(n);
        c.labels = calloc(c.B, sizeof *c.labels);
        for (int b = 0; b < c.B; b++)
            c.labels[b] = (b * 3 + 1) % c.K;
        double *dl = dzero(n);
        xent_loss(&c);
        ref_softmax_xent_backward(dl, c.probs, c.labels, c.B, c.K, 1.0 / c.B);
        double *xs[] = {c.logits}, *g[] = {dl};
        size_t ns[] = {n};
        const char *names[] = {"xent logits"};
        check_grads(xent_loss, &c, xs, g, ns, names, 1);
        free(c.logits), free(c.probs), free(c.labels), free(dl);
    }
}

typedef struct {
    int B, K;
    double *pred, *target;
} mse_ctx;

static double mse_loss(void *p) {
    mse_ctx *c = p;
    return ref_mse_forward(c->pred, c->target, c->B, c->K);
}

static void gradcheck_mse(void **state) {
    mse_ctx c = {.B = 4, .K = 7};
    size_t n = (size_t)c.B * c.K;
    c.pred = drand_n(n, 120, 1), c.target = drand_n(n, 121, 1);
    double *dp = dzero(n);
    ref_mse_backward(dp, c.pred, c.target, c.B, c.K, 1.0);
    double *xs[] = {c.pred}, *g[] = {dp};
    size_t ns[] = {n};
    const char *names[] = {"mse pred"};
    check_grads(mse_loss, &c, xs, g, ns, names, 1);
    free(c.pred), free(c.target), free(dp);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(gradcheck_dense),        cmocka_unit_test(gradcheck_conv2d),
        cmocka_unit_test(gradcheck_pools),        cmocka_unit_test(gradcheck_activations),
        cmocka_unit_test(gradcheck_dropout),      cmocka_unit_test(gradcheck_batchnorm),
        cmocka_unit_test(gradcheck_softmax_xent), cmocka_unit_test(gradcheck_mse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
