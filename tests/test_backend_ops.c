/* Every operation of the backend a context opens (BATCHLAB_DEVICE: cpu,
 * opaque, cuda) against the naive double-precision references of
 * src/backend/cpu/ref.h, through the backend's own memory: inputs are
 * uploaded, the operation runs, outputs are downloaded and compared. One
 * harness for every backend; test_kernels checks the CPU tables below it at
 * each ISA level. Backward ops are checked for the contract of backend.h:
 * din is OVERWRITTEN (it starts as garbage), dw/db ACCUMULATE. */
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
#include "backend/dropout_mask.h"
#include "batchlab/backend.h"
#include "batchlab/core.h"
#include "test_util.h"

#define ATOL 1e-4
#define RTOL 1e-3

static bl_ctx ctx;
static bl_backend *be;

/* ---- host and device buffers ------------------------------------------- */

/* A device buffer of n bytes holding host (or zeros when host is NULL). */
static void *dev(const void *host, size_t bytes) {
    void *p = NULL;
    bl_error err = {0};
    if (be->ops->alloc(be, &ctx.mem, bytes ? bytes : 1, BL_BUFFER_DEVICE, "test", &p, &err))
        fail_msg("alloc: %s", err.msg);
    if (host) assert_int_equal(be->ops->upload(be, p, host, bytes), BL_OK);
    return p;
}
static void *devf(const float *host, size_t n) {
    return dev(host, n * sizeof(float));
}
static float *down(const void *d, size_t n) {
    float *h = calloc(n ? n : 1, sizeof(float));
    assert_int_equal(be->ops->download(be, h, d, n * sizeof(float)), BL_OK);
    return h;
}
static void release(void *p) {
    be->ops->release(be, &ctx.mem, p);
}

static double close_err(const float *got, const double *want, size_t n, const char *what) {
    char where[160];
    snprintf(where, sizeof where, "%s on %s", what, be->name);
    return tu_close_err(got, want, n, ATOL, RTOL, where);
}
/* Downloads d (n floats) and compares it with want. */
static void check(const void *d, const double *want, size_t n, const char *what) {
    float *h = down(d, n);
    assert_true(close_err(h, want, n, what) <= 1.0);
    free(h);
}
static void check_scalar(double got, double want, const char *what) {
    float g = (float)got;
    assert_true(close_err(&g, &want, 1, what) <= 1.0);
}

static int setup(void **state) {
    (void)state;
    bl_ctx_init(&ctx, 2);
    be = ctx.be;
    return 0;
}
static int teardown(void **state) {
    (void)state;
    bl_ctx_free(&ctx);
    return 0;
}

static void names_the_backend_under_test(void **state) {
    const char *want = getenv("BATCHLAB_DEVICE");
    fprintf(stderr, "backend under test: %s\n", be->name);
    if (want && *want) assert_int_equal(strncmp(be->name, want, strlen(want)), 0);
    /* a buffer is charged to the context while it lives */
    size_t before = ctx.mem.cur_bytes;
    void *p = dev(NULL, 4096);
    assert_int_equal(ctx.mem.cur_bytes, before + 4096);
    release(p);
    assert_int_equal(ctx.mem.cur_bytes, before);
}

/* ---- dense and conv -------------------------------------------------------- */

static void dense_case(int B, int I, int O, int relu, int bias, uint64_t seed) {
    float *in = tu_frand((size_t)B * I, seed), *w = tu_frand((size_t)O * I, seed + 1);
    float *b = tu_frand((size_t)O, seed + 2), *dout = tu_frand((size_t)B * O, seed + 3);
    float *garbage = tu_frand((size_t)B * I, seed + 4), *dw0 = tu_frand((size_t)O * I, seed + 5);
    float *db0 = tu_frand((size_t)O, seed + 6);
    double *in_ = tu_todouble(in, (size_t)B * I), *w_ = tu_todouble(w, (size_t)O * I);
    double *b_ = tu_todouble(b, O), *dout_ = tu_todouble(dout, (size_t)B * O);
    double *out_ = tu_dnew((size_t)B * O), *din_ = tu_dnew((size_t)B * I),
           *dz_ = tu_dnew((size_t)B * O);
    double *dw_ = tu_todouble(dw0, (size_t)O * I), *db_ = tu_todouble(db0, O);
    float *d_in = devf(in, (size_t)B * I), *d_w = devf(w, (size_t)O * I), *d_b = devf(b, O);
    float *d_out = devf(NULL, (size_t)B * O), *d_dout = devf(dout, (size_t)B * O);
    float *d_din = devf(garbage, (size_t)B * I), *d_dw = devf(dw0, (size_t)O * I);
    float *d_db = devf(db0, O);
    assert_int_equal(be->ops->dense_forward(be, d_out, d_in, d_w, bias ? d_b : NULL, B, I, O, relu),
                     BL_OK);
    (relu ? ref_dense_relu_forward : ref_dense_forward)(out_, in_, w_, bias ? b_ : NULL, B, I, O);
    check(d_out, out_, (size_t)B * O, relu ? "dense relu forward" : "dense forward");
    assert_int_equal(be->ops->dense_backward(be, d_din, d_dw, bias ? d_db : NULL, d_dout, d_out,
                                             d_in, d_w, B, I, O, relu),
                     BL_OK);
    if (relu)
        ref_dense_relu_backward(din_, dw_, bias ? db_ : NULL, dz_, dout_, out_, in_, w_, B, I, O);
    else
        ref_dense_backward(din_, dw_, bias ? db_ : NULL, dout_, in_, w_, B, I, O);
    check(d_din, din_, (size_t)B * I, "dense din (overwritten)");
    check(d_dw, dw_, (size_t)O * I, "dense dw (accumulated)");
    if (bias) check(d_db, db_, O, "dense db (accumulated)");
    float *ptrs[] = {d_in, d_w, d_b, d_out, d_dout, d_din, d_dw, d_db};
    for (size_t i = 0; i < sizeof ptrs / sizeof ptrs[0]; i++)
        release(ptrs[i]);
    free(in), free(w), free(b), free(dout), free(garbage), free(dw0), free(db0);
    free(in_), free(w_), free(b_), free(dout_), free(out_), free(din_), free(dz_), free(dw_),
        free(db_);
}

static void dense_matches_reference(void **state) {
    static const int cases[][3] = {
        {1, 7, 5}, {3, 33, 17}, {8, 64, 10}, {37, 129, 65}, {64, 784, 32}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (int relu = 0; relu < 2; relu++)
            dense_case(cases[c][0], cases[c][1], cases[c][2], relu, c != 1, 100 + 10 * c + relu);
}

static bl_conv_dims conv_dims(int B, int C, int H, int W, int K, int R, int S, int st, int pad) {
    bl_conv_dims d = {B, C, H, W, K, R, S, st, pad, 0, 0};
    d.P = bl_conv_out_size(H, R, st, pad);
    d.Q = bl_conv_out_size(W, S, st, pad);
    return d;
}

static void conv_case(bl_conv_dims d, int relu, int bias, uint64_t seed) {
    const size_t n_in = (size_t)d.B * d.C * d.H * d.W, n_w = (size_t)d.K * d.C * d.R * d.S;
    const size_t n_out = (size_t)d.B * d.K * d.P * d.Q;
    float *in = tu_frand(n_in, seed), *w = tu_frand(n_w, seed + 1), *b = tu_frand(d.K, seed + 2);
    float *dout = tu_frand(n_out, seed + 3), *garbage = tu_frand(n_in, seed + 4);
    float *dw0 = tu_frand(n_w, seed + 5), *db0 = tu_frand(d.K, seed + 6);
    double *in_ = tu_todouble(in, n_in), *w_ = tu_todouble(w, n_w), *b_ = tu_todouble(b, d.K);
    double *dout_ = tu_todouble(dout, n_out), *out_ = tu_dnew(n_out), *din_ = tu_dnew(n_in);
    double *dz_ = tu_dnew(n_out), *dw_ = tu_todouble(dw0, n_w), *db_ = tu_todouble(db0, d.K);
    size_t ws_n = be->ops->conv2d_workspace_floats(be, &d);
    float *d_in = devf(in, n_in), *d_w = devf(w, n_w), *d_b = devf(b, d.K);
    float *d_out = devf(NULL, n_out), *d_dout = devf(dout, n_out), *d_din = devf(garbage, n_in);
    float *d_dw = devf(dw0, n_w), *d_db = devf(db0, d.K), *d_ws = devf(NULL, ws_n);
    assert_int_equal(
        be->ops->conv2d_forward(be, d_out, d_in, d_w, bias ? d_b : NULL, d_ws, &d, relu), BL_OK);
    (relu ? ref_conv2d_relu_forward : ref_conv2d_forward)(out_, in_, w_, bias ? b_ : NULL, &d);
    check(d_out, out_, n_out, relu ? "conv relu forward" : "conv forward");
    assert_int_equal(be->ops->conv2d_backward(be, d_din, d_dw, bias ? d_db : NULL, d_dout, d_out,
                                              d_in, d_w, d_ws, &d, relu),
                     BL_OK);
    if (relu)
        ref_conv2d_relu_backward(din_, dw_, bias ? db_ : NULL, dz_, dout_, out_, in_, w_, &d);
    else
        ref_conv2d_backward(din_, dw_, bias ? db_ : NULL, dout_, in_, w_, &d);
    check(d_din, din_, n_in, "conv din (overwritten)");
    check(d_dw, dw_, n_w, "conv dw (accumulated)");
    if (bias) check(d_db, db_, d.K, "conv db (accumulated)");
    float *ptrs[] = {d_in, d_w, d_b, d_out, d_dout, d_din, d_dw, d_db, d_ws};
    for (size_t i = 0; i < sizeof ptrs / sizeof ptrs[0]; i++)
        release(ptrs[i]);
    free(in), free(w), free(b), free(dout), free(garbage), free(dw0), free(db0);
    free(in_), free(w_), free(b_), free(dout_), free(out_), free(din_), free(dz_), free(dw_),
        free(db_);
}

static void conv2d_matches_reference(void **state) {
    /* B C H W K R S stride pad: the presets' layers, odd sizes, stride 2, 3x5 */
    static const int cases[][9] = {{2, 1, 28, 28, 32, 3, 3, 1, 1},
                                   {3, 32, 14, 14, 64, 3, 3, 1, 1},
                                   {1, 3, 11, 9, 5, 3, 5, 2, 2},
                                   {4, 5, 8, 8, 7, 1, 1, 1, 0},
                                   {2, 4, 13, 13, 6, 3, 3, 3, 0}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const int *k = cases[c];
        bl_conv_dims d = conv_dims(k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7], k[8]);
        conv_case(d, (int)(c % 2), c != 2, 200 + 10 * c);
    }
}

/* ---- pooling, activations, dropout, batch norm ---------------------------- */

static void pools_match_reference(void **state) {
    static const int cases[][6] = {{2, 3, 8, 8, 2, 2}, {1, 2, 7, 9, 3, 2}, {3, 64, 28, 28, 2, 2}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const int *k = cases[c];
        bl_pool_dims d = {k[0], k[1], k[2], k[3], k[4], k[5], 0, 0};
        d.P = (d.H - d.k) / d.stride + 1;
        d.Q = (d.W - d.k) / d.stride + 1;
        const size_t n_in = (size_t)d.B * d.C * d.H * d.W, n_out = (size_t)d.B * d.C * d.P * d.Q;
        float *in = tu_frand(n_in, 300 + c), *dout = tu_frand(n_out, 310 + c);
        float *garbage = tu_frand(n_in, 320 + c);
        double *in_ = tu_todouble(in, n_in), *dout_ = tu_todouble(dout, n_out);
        double *out_ = tu_dnew(n_out), *din_ = tu_dnew(n_in);
        int32_t *am_ = calloc(n_out, sizeof *am_), *am = calloc(n_out, sizeof *am);
        float *d_in = devf(in, n_in), *d_out = devf(NULL, n_out), *d_dout = devf(dout, n_out);
        float *d_din = devf(garbage, n_in);
        int32_t *d_am = dev(NULL, n_out * sizeof(int32_t));
        assert_int_equal(be->ops->maxpool_forward(be, d_out, d_am, d_in, &d), BL_OK);
        ref_maxpool_forward(out_, am_, in_, &d);
        check(d_out, out_, n_out, "maxpool forward");
        assert_int_equal(be->ops->download(be, am, d_am, n_out * sizeof(int32_t)), BL_OK);
        assert_memory_equal(am, am_, n_out * sizeof(int32_t));
        assert_int_equal(be->ops->maxpool_backward(be, d_din, d_dout, d_am, &d), BL_OK);
        ref_maxpool_backward(din_, dout_, am_, &d);
        check(d_din, din_, n_in, "maxpool backward");
        assert_int_equal(be->ops->avgpool_forward(be, d_out, d_in, &d), BL_OK);
        ref_avgpool_forward(out_, in_, &d);
        check(d_out, out_, n_out, "avgpool forward");
        assert_int_equal(be->ops->upload(be, d_din, garbage, n_in * sizeof(float)), BL_OK);
        assert_int_equal(be->ops->avgpool_backward(be, d_din, d_dout, &d), BL_OK);
        ref_avgpool_backward(din_, dout_, &d);
        check(d_din, din_, n_in, "avgpool backward");
        release(d_in), release(d_out), release(d_dout), release(d_din), release(d_am);
        free(in), free(dout), free(garbage), free(in_), free(dout_), free(out_), free(din_);
        free(am_), free(am);
    }
}

static void activations_match_reference(void **state) {
    const bl_act acts[] = {BL_ACT_RELU, BL_ACT_LEAKY_RELU, BL_ACT_TANH, BL_ACT_SIGMOID,
                           BL_ACT_GELU};
    const size_t n = 10007;
    float *in = tu_frand(n, 400), *dout = tu_frand(n, 401);
    double *in_ = tu_todouble(in, n), *dout_ = tu_todouble(dout, n), *out_ = tu_dnew(n),
           *din_ = tu_dnew(n);
    float *d_in = devf(in, n), *d_out = devf(NULL, n), *d_dout = devf(dout, n);
    float *d_din = devf(NULL, n);
    for (size_t a = 0; a < sizeof acts / sizeof acts[0]; a++) {
        assert_int_equal(be->ops->act_forward(be, d_out, d_in, n, acts[a], 0.1f), BL_OK);
        ref_act_forward(out_, in_, n, acts[a], 0.1);
        check(d_out, out_, n, "activation forward");
        assert_int_equal(be->ops->act_backward(be, d_din, d_dout, d_in, d_out, n, acts[a], 0.1f),
                         BL_OK);
        ref_act_backward(din_, dout_, in_, out_, n, acts[a], 0.1);
        check(d_din, din_, n, "activation backward");
    }
    release(d_in), release(d_out), release(d_dout), release(d_din);
    free(in), free(dout), free(in_), free(dout_), free(out_), free(din_);
}

/* The mask is dropout_mask.h's, element for element, on every backend. */
static void dropout_mask_and_values(void **state) {
    const size_t n = 4099; /* not a multiple of 4: the last Philox block is partial */
    const float p = 0.3f;
    const bl_dropout_key key = {.seed = 42, .step = 7, .layer = 3, .first = 1001};
    float *in = tu_frand(n, 500), *dout = tu_frand(n, 501);
    uint8_t *mask = calloc(n, 1), *mask_ = calloc(n, 1);
    const uint32_t thr = bl_dropout_threshold(p);
    for (size_t i = 0; i < n; i++)
        mask_[i] = (uint8_t)bl_dropout_keep(&key, key.first + i, thr);
    double *in_ = tu_todouble(in, n), *dout_ = tu_todouble(dout, n), *out_ = tu_dnew(n),
           *din_ = tu_dnew(n);
    float *d_in = devf(in, n), *d_out = devf(NULL, n), *d_dout = devf(dout, n);
    float *d_din = devf(NULL, n);
    uint8_t *d_mask = dev(NULL, n);
    assert_int_equal(be->ops->dropout_forward(be, d_out, d_mask, d_in, n, p, &key), BL_OK);
    assert_int_equal(be->ops->download(be, mask, d_mask, n), BL_OK);
    assert_memory_equal(mask, mask_, n);
    ref_dropout_forward(out_, mask_, in_, n, p);
    check(d_out, out_, n, "dropout forward");
    assert_int_equal(be->ops->dropout_backward(be, d_din, d_dout, d_mask, n, p), BL_OK);
    ref_dropout_backward(din_, dout_, mask_, n, p);
    check(d_din, din_, n, "dropout backward");
    release(d_in), release(d_out), release(d_dout), release(d_din), release(d_mask);
    free(in), free(dout), free(mask), free(mask_), free(in_), free(dout_), free(out_), free(din_);
}

static void batchnorm_matches_reference(void **state) {
    static const int cases[][3] = {{8, 3, 25}, {64, 16, 1}, {2, 32, 196}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const int B = cases[c][0], C = cases[c][1], HW = cases[c][2];
        const size_t n = (size_t)B * C * HW;
        float *in = tu_frand(n, 600 + c), *g = tu_frand(C, 610 + c), *bt = tu_frand(C, 620 + c);
        float *rm = tu_frand(C, 630 + c), *rv = tu_frand(C, 640 + c), *dout = tu_frand(n, 650 + c);
        float *dg0 = tu_frand(C, 660 + c), *db0 = tu_frand(C, 670 + c);
        for (int i = 0; i < C; i++)
            rv[i] = fabsf(rv[i]) + 0.5f;
        double *in_ = tu_todouble(in, n), *g_ = tu_todouble(g, C), *b_ = tu_todouble(bt, C);
        double *rm_ = tu_todouble(rm, C), *rv_ = tu_todouble(rv, C), *dout_ = tu_todouble(dout, n);
        double *out_ = tu_dnew(n), *mean_ = tu_dnew(C), *rstd_ = tu_dnew(C), *din_ = tu_dnew(n);
        double *dg_ = tu_todouble(dg0, C), *dbt_ = tu_todouble(db0, C);
        float *d_in = devf(in, n), *d_g = devf(g, C), *d_b = devf(bt, C), *d_rm = devf(rm, C);
        float *d_rv = devf(rv, C), *d_out = devf(NULL, n), *d_mean = devf(NULL, C);
        float *d_rstd = devf(NULL, C), *d_dout = devf(dout, n), *d_din = devf(NULL, n);
        float *d_dg = devf(dg0, C), *d_db = devf(db0, C);
        assert_int_equal(
            be->ops->batchnorm_forward_eval(be, d_out, d_in, d_g, d_b, d_rm, d_rv, B, C, HW, 1e-5f),
            BL_OK);
        ref_batchnorm_forward_eval(out_, in_, g_, b_, rm_, rv_, B, C, HW, 1e-5);
        check(d_out, out_, n, "batchnorm eval");
        assert_int_equal(be->ops->batchnorm_forward_train(be, d_out, d_mean, d_rstd, d_rm, d_rv,
                                                          d_in, d_g, d_b, B, C, HW, 0.1f, 1e-5f),
                         BL_OK);
        ref_batchnorm_forward_train(out_, mean_, rstd_, rm_, rv_, in_, g_, b_, B, C, HW, 0.1, 1e-5);
        check(d_out, out_, n, "batchnorm train");
        check(d_mean, mean_, C, "batchnorm mean");
        check(d_rstd, rstd_, C, "batchnorm rstd");
        check(d_rm, rm_, C, "batchnorm running mean");
        check(d_rv, rv_, C, "batchnorm running var");
        assert_int_equal(be->ops->batchnorm_backward(be, d_din, d_dg, d_db, d_dout, d_in, d_mean,
                                                     d_rstd, d_g, B, C, HW),
                         BL_OK);
        ref_batchnorm_backward(din_, dg_, dbt_, dout_, in_, mean_, rstd_, g_, B, C, HW);
        check(d_din, din_, n, "batchnorm din");
        check(d_dg, dg_, C, "batchnorm dgamma");
        check(d_db, dbt_, C, "batchnorm dbeta");
        float *ptrs[] = {d_in,   d_g,    d_b,    d_rm,  d_rv, d_out,
                         d_mean, d_rstd, d_dout, d_din, d_dg, d_db};
        for (size_t i = 0; i < sizeof ptrs / sizeof ptrs[0]; i++)
            release(ptrs[i]);
        free(in), free(g), free(bt), free(rm), free(rv), free(dout), free(dg0), free(db0);
        free(in_), free(g_), free(b_), free(rm_), free(rv_), free(dout_), free(out_), free(mean_);
        free(rstd_), free(din_), free(dg_), free(dbt_);
    }
}

/* ---- losses ----------------------------------------------------------------- */

static void losses_match_reference(void **state) {
    const int B = 67, K = 10;
    const size_t n = (size_t)B * K;
    float *logits = tu_frand(n, 700);
    int32_t labels[67];
    for (int b = 0; b < B; b++)
        labels[b] = (b * 7 + 3) % K;
    double *lg_ = tu_todouble(logits, n), *probs_ = tu_dnew(n), *dl_ = tu_dnew(n),
           *tgt_ = tu_dnew(n);
    float *d_lg = devf(logits, n), *d_probs = devf(NULL, n), *d_dl = devf(NULL, n);
    float *d_tgt = devf(NULL, n);
    int32_t *d_lab = dev(labels, sizeof labels);
    double loss = 0;
    int hits = 5, hits_ = 0; /* the backend adds its hits to what is there */
    assert_int_equal(be->ops->softmax_xent_forward(be, &loss, &hits, d_probs, d_lg, d_lab, B, K),
                     BL_OK);
    double want = ref_softmax_xent_forward(probs_, &hits_, lg_, labels, B, K);
    check_scalar(loss, want, "softmax xent loss");
    assert_int_equal(hits, 5 + hits_);
    check(d_probs, probs_, n, "softmax probs");
    assert_int_equal(be->ops->softmax_xent_backward(be, d_dl, d_probs, d_lab, B, K, 0.25f), BL_OK);
    ref_softmax_xent_backward(dl_, probs_, labels, B, K, 0.25);
    check(d_dl, dl_, n, "softmax xent backward");
    /* MSE against one-hot labels */
    hits = 0;
    for (int b = 0; b < B; b++)
        tgt_[(size_t)b * K + labels[b]] = 1.0;
    assert_int_equal(be->ops->mse_forward(be, &loss, &hits, d_tgt, d_lg, d_lab, B, K), BL_OK);
    check(d_tgt, tgt_, n, "mse one-hot target");
    check_scalar(loss, ref_mse_forward(lg_, tgt_, B, K), "mse loss");
    assert_int_equal(hits, hits_);
    assert_int_equal(be->ops->mse_backward(be, d_dl, d_lg, d_tgt, B, K, 0.5f), BL_OK);
    ref_mse_backward(dl_, lg_, tgt_, B, K, 0.5);
    check(d_dl, dl_, n, "mse backward");
    /* a label outside [0, K) makes the loss NaN */
    labels[3] = K;
    assert_int_equal(be->ops->upload(be, d_lab, labels, sizeof labels), BL_OK);
    assert_int_equal(be->ops->softmax_xent_forward(be, &loss, NULL, d_probs, d_lg, d_lab, B, K),
                     BL_OK);
    assert_true(isnan(loss));
    release(d_lg), release(d_probs), release(d_dl), release(d_tgt), release(d_lab);
    free(logits), free(lg_), free(probs_), free(dl_), free(tgt_);
}

/* ---- reductions, flat arrays, optimizers ----------------------------------- */

static void reductions_and_flat_arrays(void **state) {
    const size_t n = 100003;
    float *x = tu_frand(n, 800), *y = tu_frand(n, 801);
    double *want = tu_dnew(n), ss = 0;
    for (size_t i = 0; i < n; i++)
        ss += (double)x[i] * x[i];
    float *d_x = devf(x, n), *d_y = devf(y, n);
    double got = -1;
    assert_int_equal(be->ops->sumsq(be, &got, d_x, n), BL_OK);
    check_scalar(got, ss, "sumsq");
    int fin = -1;
    assert_int_equal(be->ops->all_finite(be, &fin, d_x, n), BL_OK);
    assert_int_equal(fin, 1);
    /* per-example squared gradient norms of a dense layer */
    const int B = 9, I = 31, O = 13;
    double pe = 0;
    for (int r = 0; r < B; r++) {
        double g = 0, a = 0;
        for (int o = 0; o < O; o++)
            g += (double)y[(size_t)r * O + o] * y[(size_t)r * O + o];
        for (int i = 0; i < I; i++)
            a += (double)x[(size_t)r * I + i] * x[(size_t)r * I + i];
        pe += g * (a + 1);
    }
    double pe_got = 2.5; /* added to */
    assert_int_equal(be->ops->per_example_sumsq(be, &pe_got, d_y, d_x, B, I, O, 1), BL_OK);
    check_scalar(pe_got, 2.5 + pe, "per-example sumsq");
    /* y += 0.5 x; x *= -2; then a NaN is found */
    for (size_t i = 0; i < n; i++)
        want[i] = (double)y[i] + 0.5 * x[i];
    assert_int_equal(be->ops->axpy(be, d_y, d_x, n, 0.5f), BL_OK);
    check(d_y, want, n, "axpy");
    for (size_t i = 0; i < n; i++)
        want[i] = -2.0 * x[i];
    assert_int_equal(be->ops->scale(be, d_x, n, -2.0f), BL_OK);
    check(d_x, want, n, "scale");
    for (size_t i = 0; i < n; i++)
        want[i] = 0.75;
    assert_int_equal(be->ops->fill(be, d_x, n, 0.75f), BL_OK);
    check(d_x, want, n, "fill");
    x[n - 2] = NAN;
    assert_int_equal(be->ops->upload(be, d_x, x, n * sizeof(float)), BL_OK);
    assert_int_equal(be->ops->all_finite(be, &fin, d_x, n), BL_OK);
    assert_int_equal(fin, 0);
    x[n - 2] = INFINITY;
    assert_int_equal(be->ops->upload(be, d_x, x, n * sizeof(float)), BL_OK);
    assert_int_equal(be->ops->all_finite(be, &fin, d_x, n), BL_OK);
    assert_int_equal(fin, 0);
    release(d_x), release(d_y);
    free(x), free(y), free(want);
}

/* Two steps of SGD (momentum, Nesterov, weight decay) and of Adam/AdamW, in
 * double from torch.optim's definitions. */
static void optimizers_match_reference(void **state) {
    const size_t n = 5003;
    float *p = tu_frand(n, 900), *g = tu_frand(n, 901);
    double *p_ = tu_todouble(p, n), *buf_ = tu_dnew(n), *m_ = tu_dnew(n), *v_ = tu_dnew(n);
    float *d_p = devf(p, n), *d_g = devf(g, n), *d_buf = devf(NULL, n);
    const double lr = 0.05, mom = 0.9, wd = 0.01;
    for (int step = 0; step < 2; step++) {
        assert_int_equal(be->ops->sgd_step(be, d_p, d_buf, d_g, n, (float)lr, (float)mom, 1,
                                           (float)wd, step == 0),
                         BL_OK);
        for (size_t i = 0; i < n; i++) {
            double gi = g[i] + wd * p_[i];
            buf_[i] = step == 0 ? gi : mom * buf_[i] + gi;
            p_[i] -= lr * (gi + mom * buf_[i]);
        }
    }
    check(d_p, p_, n, "sgd nesterov");
    for (int decoupled = 0; decoupled < 2; decoupled++) {
        float *d_m = devf(NULL, n), *d_v = devf(NULL, n);
        assert_int_equal(be->ops->upload(be, d_p, p, n * sizeof(float)), BL_OK);
        for (size_t i = 0; i < n; i++)
            p_[i] = p[i], m_[i] = 0, v_[i] = 0;
        const double b1 = 0.9, b2 = 0.999, eps = 1e-8;
        for (long t = 1; t <= 2; t++) {
            assert_int_equal(be->ops->adam_step(be, d_p, d_m, d_v, d_g, n, (float)lr, (float)b1,
                                                (float)b2, (float)eps, (float)wd, decoupled, t),
                             BL_OK);
            for (size_t i = 0; i < n; i++) {
                double gi = g[i];
                if (decoupled)
                    p_[i] -= lr * wd * p_[i];
                else
                    gi += wd * p_[i];
                m_[i] = b1 * m_[i] + (1 - b1) * gi;
                v_[i] = b2 * v_[i] + (1 - b2) * gi * gi;
                double mh = m_[i] / (1 - pow(b1, (double)t)), vh = v_[i] / (1 - pow(b2, (double)t));
                p_[i] -= lr * mh / (sqrt(vh) + eps);
            }
        }
        check(d_p, p_, n, decoupled ? "adamw" : "adam");
        release(d_m), release(d_v);
    }
    release(d_p), release(d_g), release(d_buf);
    free(p), free(g), free(p_), free(buf_), free(m_), free(v_);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(names_the_backend_under_test),
        cmocka_unit_test(dense_matches_reference),
        cmocka_unit_test(conv2d_matches_reference),
        cmocka_unit_test(pools_match_reference),
        cmocka_unit_test(activations_match_reference),
        cmocka_unit_test(dropout_mask_and_values),
        cmocka_unit_test(batchnorm_matches_reference),
        cmocka_unit_test(losses_match_reference),
        cmocka_unit_test(reductions_and_flat_arrays),
        cmocka_unit_test(optimizers_match_reference),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
