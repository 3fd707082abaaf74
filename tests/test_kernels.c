/* CPU backend: every fast float kernel against its naive double reference
 * (src/backend/cpu/ref.h) on several shapes, including awkward ones (odd
 * sizes, B = 1, C = 1, stride 2/3, pad 0/1/2, 3x5 kernels, channel counts
 * that are not multiples of 8, several im2col chunks with a remainder).
 * Backward is checked for the contract in backend.h: din is OVERWRITTEN
 * (it starts as garbage) and dw/db ACCUMULATE (two calls give twice the
 * gradient on top of what was there). */
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
#include "test_util.h"

#define ATOL 1e-4
#define RTOL 1e-3

static const bl_kernels *be;
static bl_cpu_pool *pool; /* the kernels' threads (bl_cpu_pool_set_threads in the tests) */

static float *fnew(size_t n) {
    return calloc(n ? n : 1, sizeof(float));
}
static void ffill(float *x, size_t n, float v) {
    for (size_t i = 0; i < n; i++)
        x[i] = v;
}
static double close_err(const float *got, const double *want, size_t n, const char *what) {
    return tu_close_err(got, want, n, ATOL, RTOL, what);
}
#define assert_close(got, want, n, what) assert_true(close_err(got, want, n, what) <= 1.0)

static void backend_table_is_complete(void **state) {
    assert_non_null(be);
    assert_string_equal(be->name, "cpu");
    /* clang-format off */
    const void *fns[] = {
        be->gemm, be->dense_forward, be->dense_backward, be->conv2d_workspace_floats,
        be->conv2d_forward, be->conv2d_backward, be->maxpool_forward, be->maxpool_backward,
        be->avgpool_forward, be->avgpool_backward, be->act_forward, be->act_backward,
        be->dropout_forward, be->dropout_backward, be->batchnorm_forward_train,
        be->batchnorm_forward_eval, be->batchnorm_backward, be->softmax_xent_forward,
        be->softmax_xent_backward, be->mse_forward, be->mse_backward, be->sumsq, be->scale,
        be->axpy, be->fill, be->copy, be->all_finite, be->sgd_step, be->adam_step,
        be->dense_relu_forward, be->dense_relu_backward, be->conv2d_relu_forward,
        be->conv2d_relu_backward, be->dense_blas_bytes, be->conv2d_blas_bytes};
    /* clang-format on */
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++)
        assert_non_null(fns[i]);
    /* bl_cpu_kernels() is the selected level's table, one of the usable ones */
    assert_ptr_equal(bl_cpu_kernels(), bl_cpu_kernels_isa(bl_cpu_isa_selected(NULL)));
}

/* The checker must catch an error just above tolerance, and accept one below. */
static void checker_catches_small_errors(void **state) {
    double want[3] = {10.0, -2.0, 0.0};
    float ok[3] = {10.0f + 4e-3f, -2.0f, 0.0f};
    float bad[3] = {10.0f, -2.0f, 2e-3f};
    assert_true(close_err(ok, want, 3, "ok") <= 1.0);
    assert_true(close_err(bad, want, 3, "bad (expected to fail)") > 1.0);
}

/* ---- gemm ---------------------------------------------------------------- */

static void gemm_all_transposes_match_naive(void **state) {
    const int M = 37, N = 29, K = 53;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            /* stored shapes with padded leading dimensions */
            int arows = ta ? K : M, acols = ta ? M : K, lda = acols + 3;
            int brows = tb ? N : K, bcols = tb ? K : N, ldb = bcols + 5, ldc = N + 2;
            float *A = tu_frand((size_t)arows * lda, 1 + ta),
                  *Bm = tu_frand((size_t)brows * ldb, 3 + tb);
            float *C = tu_frand((size_t)M * ldc, 9);
            double *want = tu_dnew((size_t)M * ldc);
            for (int i = 0; i < M; i++)
                for (int j = 0; j < ldc; j++) {
                    double s = 0;
                    for (int k = 0; k < K && j < N; k++) {
                        double a = ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                        double b = tb ? Bm[(size_t)j * ldb + k] : Bm[(size_t)k * ldb + j];
                        s += a * b;
                    }
                    /* columns past N are padding and must be left alone */
                    want[(size_t)i * ldc + j] =
                        j < N ? 0.7 * s + 0.3 * C[(size_t)i * ldc + j] : C[(size_t)i * ldc + j];
                }
            be->gemm(pool, ta, tb, M, N, K, 0.7f, A, lda, Bm, ldb, 0.3f, C, ldc);
            assert_close(C, want, (size_t)M * ldc, "gemm");
            free(A), free(Bm), free(C), free(want);
        }
    /* K = 0: C = beta C; M = 0: nothing touched */
    float C[6] = {1, 2, 3, 4, 5, 6}, dummy[1] = {0};
    be->gemm(pool, 0, 0, 2, 3, 0, 1.0f, dummy, 1, dummy, 3, 0.5f, C, 3);
    for (int i = 0; i < 6; i++)
        assert_true(C[i] == 0.5f * (float)(i + 1));
    be->gemm(pool, 0, 0, 0, 3, 4, 1.0f, dummy, 4, dummy, 3, 0.0f, C, 3);
    assert_true(C[0] == 0.5f);
}

/* ---- layers with weights: dense and conv2d, plain and fused with ReLU ------
 * Forward with and without bias, against the reference. Backward twice: din
 * is overwritten (it starts as garbage), dw/db accumulate; then with din and
 * db NULL. The fused kernels must also give the same floats as the plain
 * kernel followed by the ReLU kernels, since the model swaps one for the
 * other; their dout is scratch, so each call gets a fresh copy. */

static bl_conv_dims conv_dims(int B, int C, int H, int W, int K, int R, int S, int st, int pad) {
    bl_conv_dims d = {B, C, H, W, K, R, S, st, pad, 0, 0};
    d.P = bl_conv_out_size(H, R, st, pad);
    d.Q = bl_conv_out_size(W, S, st, pad);
    return d;
}

#define WS_GUARD 64

typedef struct {
    const bl_conv_dims *d; /* NULL: dense (B, I, O) */
    int B, I, O, relu;
    size_t ni, nw, no, nb, nws;
    float *in, *w, *b, *dout, *dz, *out, *pre, *din, *dw, *db, *din_u, *dw_u, *db_u, *ws;
    double *in_, *w_, *b_, *dout_, *dz_, *out_, *din_, *dw_, *db_;
} layer_case;

static void lc_alloc(layer_case *c, uint64_t seed) {
    const bl_conv_dims *d = c->d;
    c->ni = d ? (size_t)d->B * d->C * d->H * d->W : (size_t)c->B * c->I;
    c->nw = d ? (size_t)d->K * d->C * d->R * d->S : (size_t)c->O * c->I;
    c->no = d ? (size_t)d->B * d->K * d->P * d->Q : (size_t)c->B * c->O;
    c->nb = d ? (size_t)d->K : (size_t)c->O;
    c->nws = d ? be->conv2d_workspace_floats(d) : 0;
    c->in = tu_frand(c->ni, seed), c->w = tu_frand(c->nw, seed + 1),
    c->b = tu_frand(c->nb, seed + 2);
    c->dout = tu_frand(c->no, seed + 3), c->dw = tu_frand(c->nw, seed + 4),
    c->db = tu_frand(c->nb, seed + 5);
    c->dz = fnew(c->no), c->out = fnew(c->no), c->pre = fnew(c->no), c->din = fnew(c->ni);
    c->din_u = fnew(c->ni), c->dw_u = fnew(c->nw), c->db_u = fnew(c->nb);
    c->ws = fnew(c->nws + WS_GUARD);
    ffill(c->ws + c->nws, WS_GUARD, 12345.0f); /* the workspace size is exact */
    memcpy(c->dw_u, c->dw, c->nw * sizeof(float)), memcpy(c->db_u, c->db, c->nb * sizeof(float));
    c->in_ = tu_todouble(c->in, c->ni), c->w_ = tu_todouble(c->w, c->nw),
    c->b_ = tu_todouble(c->b, c->nb);
    c->dout_ = tu_todouble(c->dout, c->no), c->dw_ = tu_todouble(c->dw, c->nw);
    c->db_ = tu_todouble(c->db, c->nb), c->dz_ = tu_dnew(c->no), c->out_ = tu_dnew(c->no);
    c->din_ = tu_dnew(c->ni);
}

static void lc_free(layer_case *c) {
    for (size_t i = 0; i < WS_GUARD; i++)
        assert_true(c->ws[c->nws + i] == 12345.0f);
    float *f[] = {c->in,  c->w,     c->b,  c->dout, c->dz, c->out,  c->pre,
                  c->din, c->din_u, c->dw, c->dw_u, c->db, c->db_u, c->ws};
    double *g[] = {c->in_, c->w_, c->b_, c->dout_, c->dz_, c->out_, c->din_, c->dw_, c->db_};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        free(f[i]);
    for (size_t i = 0; i < sizeof g / sizeof g[0]; i++)
        free(g[i]);
}

/* The kernel under test (fused or plain), the plain kernel, the reference. */
static void lc_forward(layer_case *c, float *out, int fused, int bias) {
    const float *b = bias ? c->b : NULL;
    if (c->d && fused)
        be->conv2d_relu_forward(pool, out, c->in, c->w, b, c->ws, c->d);
    else if (c->d)
        be->conv2d_forward(pool, out, c->in, c->w, b, c->ws, c->d);
    else if (fused)
        be->dense_relu_forward(pool, out, c->in, c->w, b, c->B, c->I, c->O);
    else
        be->dense_forward(pool, out, c->in, c->w, b, c->B, c->I, c->O);
    if (c->d && fused)
        ref_conv2d_relu_forward(c->out_, c->in_, c->w_, bias ? c->b_ : NULL, c->d);
    else if (c->d)
        ref_conv2d_forward(c->out_, c->in_, c->w_, bias ? c->b_ : NULL, c->d);
    else if (fused)
        ref_dense_relu_forward(c->out_, c->in_, c->w_, bias ? c->b_ : NULL, c->B, c->I, c->O);
    else
        ref_dense_forward(c->out_, c->in_, c->w_, bias ? c->b_ : NULL, c->B, c->I, c->O);
}

static void lc_backward(layer_case *c, float *din, float *dw, float *db, float *dout, int fused) {
    if (c->d && fused)
        be->conv2d_relu_backward(pool, din, dw, db, dout, c->out, c->in, c->w, c->ws, c->d);
    else if (c->d)
        be->conv2d_backward(pool, din, dw, db, dout, c->in, c->w, c->ws, c->d);
    else if (fused)
        be->dense_relu_backward(pool, din, dw, db, dout, c->out, c->in, c->w, c->B, c->I, c->O);
    else
        be->dense_backward(pool, din, dw, db, dout, c->in, c->w, c->B, c->I, c->O);
}

static void lc_ref_backward(layer_case *c, double *din, double *db) {
    if (c->d && c->relu)
        ref_conv2d_relu_backward(din, c->dw_, db, c->dz_, c->dout_, c->out_, c->in_, c->w_, c->d);
    else if (c->d)
        ref_conv2d_backward(din, c->dw_, db, c->dout_, c->in_, c->w_, c->d);
    else if (c->relu)
        ref_dense_relu_backward(din, c->dw_, db, c->dz_, c->dout_, c->out_, c->in_, c->w_, c->B,
                                c->I, c->O);
    else
        ref_dense_backward(din, c->dw_, db, c->dout_, c->in_, c->w_, c->B, c->I, c->O);
}

static void layer_case_run(layer_case *c, uint64_t seed) {
    lc_alloc(c, seed);
    for (int bias = 0; bias < 2; bias++) {
        ffill(c->out, c->no, NAN);
        lc_forward(c, c->out, c->relu, bias);
        assert_close(c->out, c->out_, c->no, c->relu ? "fused forward" : "forward");
    }
    if (c->relu) { /* plain kernel, then ReLU: the same floats */
        lc_forward(c, c->pre, 0, 1);
        lc_forward(c, c->out, 1, 1); /* the reference's out_ must be the fused one */
        be->act_forward(pool, c->dz, c->pre, c->no, BL_ACT_RELU, 0);
        assert_memory_equal(c->out, c->dz, c->no * sizeof(float));
    }
    for (int call = 0; call < 3; call++) {
        int alone = call == 2; /* din and db NULL */
        memcpy(c->dz, c->dout, c->no * sizeof(float));
        ffill(c->din, c->ni, 1e30f);
        lc_backward(c, alone ? NULL : c->din, c->dw, alone ? NULL : c->db, c->dz, c->relu);
        lc_ref_backward(c, alone ? NULL : c->din_, alone ? NULL : c->db_);
        if (!alone) assert_close(c->din, c->din_, c->ni, "din");
        assert_close(c->dw, c->dw_, c->nw, "dw (accumulated)");
        assert_close(c->db, c->db_, c->nb, "db (accumulated)");
        if (!c->relu) continue;
        /* unfused: ReLU backward, then the plain layer */
        be->act_backward(pool, c->dz, c->dout, c->pre, c->out, c->no, BL_ACT_RELU, 0);
        lc_backward(c, alone ? NULL : c->din_u, c->dw_u, alone ? NULL : c->db_u, c->dz, 0);
        if (!alone) assert_memory_equal(c->din, c->din_u, c->ni * sizeof(float));
        assert_memory_equal(c->dw, c->dw_u, c->nw * sizeof(float));
        assert_memory_equal(c->db, c->db_u, c->nb * sizeof(float));
    }
    lc_free(c);
}

static void dense_matches_reference(void **state) {
    /* B = 1: sgemv/sger; 2..8: the skinny kernels (remainders in samples, rows, columns;
     * the weight gradient up to 4 on AVX-512, 8 below; column chunks of the row-streaming
     * input gradient, 128 or 256 wide, with a remainder); above: sgemm */
    const int shapes[][3] = {{1, 1, 1},       {3, 7, 5},     {17, 33, 9},    {64, 784, 10},
                             {5, 10, 129},    {1, 300, 200}, {64, 784, 100}, {8, 784, 300},
                             {7, 200, 70},    {5, 1024, 33}, {2, 64, 4},     {6, 1030, 37},
                             {4, 257, 9},     {8, 300, 6},   {3, 129, 7},    {9, 70, 11},
                             {2, 1024, 1024}, {6, 784, 1023}};
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++)
        for (int relu = 0; relu < 2; relu++) {
            layer_case c = {.B = shapes[t][0], .I = shapes[t][1], .O = shapes[t][2], .relu = relu};
            layer_case_run(&c, 10 + 10 * t);
        }
}

/* clang-format off */
static const int conv_cases[][9] = {
    /* B, C, H, W, K, R, S, stride, pad */
    {2, 3, 7, 9, 5, 3, 5, 1, 2},   {1, 1, 8, 8, 4, 3, 3, 2, 1},    {3, 5, 10, 6, 7, 1, 1, 1, 0},
    {2, 13, 9, 11, 9, 2, 3, 2, 0}, {4, 2, 5, 5, 3, 5, 5, 1, 2},    {2, 3, 6, 7, 2, 3, 3, 3, 1},
    {7, 3, 40, 40, 4, 3, 3, 1, 1}, {5, 3, 33, 31, 6, 3, 5, 2, 2},  {2, 4, 6, 6, 3, 1, 3, 1, 2},
    {1, 10, 4, 4, 9, 1, 1, 2, 0},  {2, 3, 4, 5, 4, 1, 1, 1, 1},    {6, 9, 7, 7, 10, 3, 3, 1, 1},
    {10, 8, 3, 3, 5, 3, 3, 1, 0},  {3, 1, 28, 28, 32, 3, 3, 1, 1}, {3, 32, 28, 28, 64, 3, 3, 1, 1},
    {2, 2, 2, 3, 3, 5, 5, 1, 2}, /* "same" with taps that see no row at all */
    /* 3x3 stride 1 with >= 16 channels each side: Winograd F(2x2,3x3) (odd sizes,
     * pad 0/1/2, a 1x1 image, several chunks with a remainder) */
    {2, 16, 7, 9, 16, 3, 3, 1, 1}, {3, 16, 6, 5, 20, 3, 3, 1, 0}, {2, 17, 5, 5, 16, 3, 3, 1, 2},
    {7, 16, 28, 28, 16, 3, 3, 1, 1}, {1, 16, 1, 1, 16, 3, 3, 1, 1},
    /* K C > 4096: the 16 products as whole sgemm calls, not single-threaded pieces */
    {2, 64, 6, 7, 80, 3, 3, 1, 1},
};
/* clang-format on */

static void conv2d_matches_reference(void **state) {
    for (size_t t = 0; t < sizeof conv_cases / sizeof conv_cases[0]; t++)
        for (int relu = 0; relu < 2; relu++) {
            const int *k = conv_cases[t];
            bl_conv_dims d = conv_dims(k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7], k[8]);
            assert_true(d.P > 0 && d.Q > 0);
            layer_case c = {.d = &d, .relu = relu};
            layer_case_run(&c, 100 + 10 * t);
        }
}

/* The workspace depends on the dims only, grows with them, and is zero only
 * for the 1x1 stride-1 unpadded case (which needs no im2col). */
static void conv2d_workspace_is_a_function_of_dims(void **state) {
    bl_conv_dims a = conv_dims(32, 32, 28, 28, 64, 3, 3, 1, 1), b = a;
    assert_int_equal(be->conv2d_workspace_floats(&a), be->conv2d_workspace_floats(&b));
    assert_true(be->conv2d_workspace_floats(&a) >= (size_t)32 * 9 * 28 * 28);
    bl_conv_dims p = conv_dims(4, 8, 5, 5, 3, 1, 1, 1, 0);
    assert_int_equal(be->conv2d_workspace_floats(&p), 0);
    bl_conv_dims big = conv_dims(32, 64, 28, 28, 64, 3, 3, 1, 1);
    assert_true(be->conv2d_workspace_floats(&big) > be->conv2d_workspace_floats(&a));
    /* never shrinks as B grows: a workspace sized for the largest batch serves
     * every smaller one (the last partial batch, adaptive batch sizes) */
    const int spatial[] = {1, 3, 7, 14, 28, 56};
    for (int s = 0; s < 6; s++) {
        size_t prev = 0;
        for (int B = 1; B <= 300; B++) {
            bl_conv_dims d = conv_dims(B, 16, spatial[s], spatial[s], 8, 3, 3, 1, 1);
            size_t ws = be->conv2d_workspace_floats(&d);
            assert_true(ws >= prev);
            prev = ws;
        }
    }
}

/* ---- pooling ------------------------------------------------------------- */

static bl_pool_dims pool_dims(int B, int C, int H, int W, int k, int st) {
    bl_pool_dims d = {B, C, H, W, k, st, 0, 0};
    d.P = bl_conv_out_size(H, k, st, 0);
    d.Q = bl_conv_out_size(W, k, st, 0);
    return d;
}

static const int pool_cases[][6] = {
    {2, 3, 8, 8, 2, 2}, {1, 1, 7, 9, 2, 2},    {3, 5, 9, 7, 3, 2},
    {2, 2, 6, 5, 3, 1}, {2, 64, 28, 28, 2, 2},
};

static void pools_match_reference(void **state) {
    for (size_t t = 0; t < sizeof pool_cases / sizeof pool_cases[0]; t++) {
        const int *c = pool_cases[t];
        bl_pool_dims d = pool_dims(c[0], c[1], c[2], c[3], c[4], c[5]);
        const size_t ni = (size_t)d.B * d.C * d.H * d.W, no = (size_t)d.B * d.C * d.P * d.Q;
        float *in = tu_frand(ni, 200 + t), *out = fnew(no), *dout = tu_frand(no, 210 + t);
        float *din = fnew(ni);
        int32_t *am = calloc(no, sizeof *am), *am_ = calloc(no, sizeof *am_);
        double *in_ = tu_todouble(in, ni), *dout_ = tu_todouble(dout, no), *out_ = tu_dnew(no),
               *din_ = tu_dnew(ni);

        be->maxpool_forward(pool, out, am, in, &d);
        ref_maxpool_forward(out_, am_, in_, &d);
        assert_close(out, out_, no, "maxpool forward");
        assert_memory_equal(am, am_, no * sizeof *am);
        ffill(din, ni, 1e30f);
        be->maxpool_backward(pool, din, dout, am, &d);
        ref_maxpool_backward(din_, dout_, am_, &d);
        assert_close(din, din_, ni, "maxpool backward");

        be->avgpool_forward(pool, out, in, &d);
        ref_avgpool_forward(out_, in_, &d);
        assert_close(out, out_, no, "avgpool forward");
        ffill(din, ni, 1e30f);
        be->avgpool_backward(pool, din, dout, &d);
        ref_avgpool_backward(din_, dout_, &d);
        assert_close(din, din_, ni, "avgpool backward");
        free(in), free(out), free(dout), free(din), free(am), free(am_);
        free(in_), free(dout_), free(out_), free(din_);
    }
}

/* Ties go to the first maximum in row-major window order. */
static void maxpool_tie_takes_first(void **state) {
    bl_pool_dims d = pool_dims(1, 1, 4, 4, 2, 2);
    float in[16] = {0, 5, 5, 1, 5, 5, 2, 2, 3, 1, 7, 7, 1, 3, 7, 7};
    float out[4];
    int32_t am[4];
    be->maxpool_forward(pool, out, am, in, &d);
    assert_int_equal(am[0], 1);  /* 5 at (0,1) before (1,0),(1,1) */
    assert_int_equal(am[1], 2);  /* 5 at (0,2) */
    assert_int_equal(am[2], 8);  /* 3 at (2,0) before (3,1) */
    assert_int_equal(am[3], 10); /* 7 at (2,2) */
    assert_true(out[0] == 5 && out[1] == 5 && out[2] == 3 && out[3] == 7);
}

/* The backend's own threads split work, never the arithmetic: 1 and 3
 * threads give the same bits (a large conv, pools, SGD, sumsq, and the
 * small-batch dense kernels at every B they serve). */
static void dense_thread_count_does_not_change_results(void **state) {
    const int I = 1030, O = 301;
    float *in = tu_frand((size_t)8 * I, 1100), *w = tu_frand((size_t)O * I, 1101);
    float *dout = tu_frand((size_t)8 * O, 1102);
    for (int B = 2; B <= 8; B++) {
        float *r[2][3];
        for (int k = 0; k < 2; k++) {
            bl_cpu_pool_set_threads(pool, k ? 3 : 1);
            r[k][0] = fnew((size_t)B * O), r[k][1] = fnew((size_t)B * I);
            r[k][2] = tu_frand((size_t)O * I, 1103);
            be->dense_forward(pool, r[k][0], in, w, NULL, B, I, O);
            be->dense_backward(pool, r[k][1], r[k][2], NULL, dout, in, w, B, I, O);
        }
        assert_memory_equal(r[0][0], r[1][0], (size_t)B * O * sizeof(float));
        assert_memory_equal(r[0][1], r[1][1], (size_t)B * I * sizeof(float));
        assert_memory_equal(r[0][2], r[1][2], (size_t)O * I * sizeof(float));
        for (int k = 0; k < 2; k++)
            free(r[k][0]), free(r[k][1]), free(r[k][2]);
    }
    bl_cpu_pool_set_threads(pool, 2);
    free(in), free(w), free(dout);
}

static void thread_count_does_not_change_results(void **state) {
    bl_conv_dims d = conv_dims(9, 32, 28, 28, 64, 3, 3, 1, 1);
    bl_pool_dims pd = pool_dims(9, 64, 28, 28, 2, 2);
    const size_t ni = (size_t)9 * 32 * 784, nw = (size_t)64 * 32 * 9, no = (size_t)9 * 64 * 784;
    const size_t np = no / 4, big = (size_t)1 << 20;
    float *r[2][8];
    double sq[2];
    float *in = tu_frand(ni, 1000), *w = tu_frand(nw, 1001), *b = tu_frand(64, 1002), *ws = NULL;
    float *g = tu_frand(big, 1003);
    ws = fnew(be->conv2d_workspace_floats(&d));
    for (int k = 0; k < 2; k++) {
        bl_cpu_pool_set_threads(pool, k ? 3 : 1);
        float **o = r[k];
        o[0] = fnew(no), o[1] = tu_frand(no, 1004), o[2] = fnew(ni), o[3] = fnew(nw),
        o[4] = fnew(64);
        o[5] = fnew(np), o[6] = tu_frand(big, 1005), o[7] = tu_frand(big, 1006);
        int32_t *am = calloc(np, sizeof *am);
        be->conv2d_relu_forward(pool, o[0], in, w, b, ws, &d);
        be->conv2d_relu_backward(pool, o[2], o[3], o[4], o[1], o[0], in, w, ws, &d);
        be->maxpool_forward(pool, o[5], am, o[0], &pd);
        be->maxpool_backward(pool, o[0], o[5], am, &pd);
        be->sgd_step(pool, o[6], o[7], g, big, 0.1f, 0.9f, 0, 1e-4f, 0);
        sq[k] = be->sumsq(pool, o[6], big);
        free(am);
    }
    const size_t sizes[8] = {no, no, ni, nw, 64, np, big, big};
    for (int i = 0; i < 8; i++) {
        assert_memory_equal(r[0][i], r[1][i], sizes[i] * sizeof(float));
        free(r[0][i]), free(r[1][i]);
    }
    assert_true(sq[0] == sq[1]);
    bl_cpu_pool_set_threads(pool, 2);
    free(in), free(w), free(b), free(ws), free(g);
}

/* ---- activations and dropout --------------------------------------------- */

static void activations_match_reference(void **state) {
    const size_t n = 1003;
    const bl_act acts[] = {BL_ACT_RELU, BL_ACT_LEAKY_RELU, BL_ACT_TANH, BL_ACT_SIGMOID,
                           BL_ACT_GELU};
    float *in = fnew(n), *out = fnew(n), *dout = tu_frand(n, 301), *din = fnew(n);
    tu_fill_normal(in, n, 300, 3.0f);
    in[0] = 0.0f, in[1] = -0.0f, in[2] = 40.0f, in[3] = -40.0f, in[4] = -100.0f;
    double *in_ = tu_todouble(in, n), *out_ = tu_dnew(n), *dout_ = tu_todouble(dout, n),
           *din_ = tu_dnew(n);
    for (size_t a = 0; a < sizeof acts / sizeof acts[0]; a++) {
        ffill(out, n, NAN);
        be->act_forward(pool, out, in, n, acts[a], 0.1f);
        ref_act_forward(out_, in_, n, acts[a], 0.1);
        assert_close(out, out_, n, "act forward");
        ffill(din, n, NAN);
        be->act_backward(pool, din, dout, in, out, n, acts[a], 0.1f);
        ref_act_backward(din_, dout_, in_, out_, n, acts[a], 0.1);
        assert_close(din, din_, n, "act backward");
    }
    /* ReLU lets NaN through rather than hiding it */
    float x = NAN, y = 0;
    be->act_forward(pool, &y, &x, 1, BL_ACT_RELU, 0);
    assert_true(isnan(y));
    free(in), free(out), free(dout), free(din), free(in_), free(out_), free(dout_), free(din_);
}

/* The mask is bl_dropout_keep of each element's stream index, whatever the
 * thread count and however the elements are cut into calls (here: the second
 * half first, then the first, as two micro-batches might run). */
static void dropout_mask_and_values(void **state) {
    const size_t n = 20001, cut = 7003;
    const float p = 0.3f;
    float *in = tu_frand(n, 400), *out = fnew(n), *dout = tu_frand(n, 401), *din = fnew(n);
    uint8_t *mask = calloc(n, 1), *other = calloc(n, 1);
    float *scratch = fnew(n);
    bl_dropout_key key = {.seed = 77, .step = 5, .layer = 3, .first = 1001};
    bl_cpu_pool_set_threads(pool, 1);
    be->dropout_forward(pool, out, mask, in, n, p, &key);
    size_t kept = 0;
    uint32_t th = bl_dropout_threshold(p);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(mask[i], bl_dropout_keep(&key, key.first + i, th));
        kept += mask[i];
    }
    assert_true(fabs((double)kept / n - (1 - p)) < 0.015);
    bl_cpu_pool_set_threads(pool, 3);
    bl_dropout_key tail = key;
    tail.first += cut;
    be->dropout_forward(pool, scratch + cut, other + cut, in + cut, n - cut, p, &tail);
    be->dropout_forward(pool, scratch, other, in, cut, p, &key);
    assert_memory_equal(mask, other, n);
    assert_memory_equal(out, scratch, n * sizeof *out);
    /* another step, layer or seed is another mask */
    for (int k = 0; k < 3; k++) {
        bl_dropout_key o = key;
        if (k == 0) o.step++;
        if (k == 1) o.layer++;
        if (k == 2) o.seed++;
        be->dropout_forward(pool, scratch, other, in, n, p, &o);
        size_t differ = 0;
        for (size_t i = 0; i < n; i++)
            differ += mask[i] != other[i];
        assert_true(differ > n / 4); /* independent masks differ on 2 p (1 - p) = 42% */
    }
    bl_cpu_pool_set_threads(pool, 2);
    double *in_ = tu_todouble(in, n), *out_ = tu_dnew(n), *dout_ = tu_todouble(dout, n),
           *din_ = tu_dnew(n);
    ref_dropout_forward(out_, mask, in_, n, p);
    assert_close(out, out_, n, "dropout forward");
    be->dropout_backward(pool, din, dout, mask, n, p);
    ref_dropout_backward(din_, dout_, mask, n, p);
    assert_close(din, din_, n, "dropout backward");
    /* p = 0 keeps everything unchanged */
    be->dropout_forward(pool, out, mask, in, n, 0.0f, &key);
    assert_memory_equal(out, in, n * sizeof *out);
    free(in), free(out), free(dout), free(din), free(mask), free(other), free(scratch);
    free(in_), free(out_), free(dout_), free(din_);
}

/* ---- batch norm ---------------------------------------------------------- */

static void batchnorm_matches_reference(void **state) {
    const int shapes[][3] = {{4, 3, 5}, {16, 70, 1}, {1, 2, 9}, {7, 5, 13}, {32, 8, 49}};
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
        const int B = shapes[t][0], C = shapes[t][1], HW = shapes[t][2];
        const size_t n = (size_t)B * C * HW;
        float *in = tu_frand(n, 500 + t), *out = fnew(n), *dout = tu_frand(n, 510 + t),
              *din = fnew(n);
        float *gamma = tu_frand(C, 520 + t), *beta = tu_frand(C, 530 + t);
        float *mean = fnew(C), *rstd = fnew(C), *rm = tu_frand(C, 540 + t), *rv = fnew(C);
        float *dg = tu_frand(C, 550 + t), *dbt = tu_frand(C, 560 + t);
        for (int c = 0; c < C; c++)
            rv[c] = 1.0f + 0.5f * (float)c / C;
        for (size_t i = 0; i < n; i++)
            in[i] = 3.0f * in[i] + 2.0f; /* nonzero mean */
        double *in_ = tu_todouble(in, n), *out_ = tu_dnew(n), *dout_ = tu_todouble(dout, n),
               *din_ = tu_dnew(n), *g_ = tu_todouble(gamma, C), *b_ = tu_todouble(beta, C),
               *mean_ = tu_dnew(C), *rstd_ = tu_dnew(C), *rm_ = tu_todouble(rm, C),
               *rv_ = tu_todouble(rv, C), *dg_ = tu_todouble(dg, C), *dbt_ = tu_todouble(dbt, C);

        be->batchnorm_forward_train(pool, out, mean, rstd, rm, rv, in, gamma, beta, B, C, HW, 0.1f,
                                    1e-5f);
        ref_batchnorm_forward_train(out_, mean_, rstd_, rm_, rv_, in_, g_, b_, B, C, HW, 0.1, 1e-5);
        assert_close(out, out_, n, "bn train out");
        assert_close(mean, mean_, C, "bn mean");
        assert_close(rstd, rstd_, C, "bn rstd");
        assert_close(rm, rm_, C, "bn running mean");
        assert_close(rv, rv_, C, "bn running var");
        for (int call = 0; call < 2; call++) {
            ffill(din, n, 1e30f);
            be->batchnorm_backward(pool, din, dg, dbt, dout, in, mean, rstd, gamma, B, C, HW);
            ref_batchnorm_backward(din_, dg_, dbt_, dout_, in_, mean_, rstd_, g_, B, C, HW);
            assert_close(din, din_, n, "bn din");
            assert_close(dg, dg_, C, "bn dgamma (accumulated)");
            assert_close(dbt, dbt_, C, "bn dbeta (accumulated)");
        }
        be->batchnorm_forward_eval(pool, out, in, gamma, beta, rm, rv, B, C, HW, 1e-5f);
        ref_batchnorm_forward_eval(out_, in_, g_, b_, rm_, rv_, B, C, HW, 1e-5);
        assert_close(out, out_, n, "bn eval");
        free(in), free(out), free(dout), free(din), free(gamma), free(beta), free(mean);
        free(rstd), free(rm), free(rv), free(dg), free(dbt);
        free(in_), free(out_), free(dout_), free(din_), free(g_), free(b_), free(mean_);
        free(rstd_), free(rm_), free(rv_), free(dg_), free(dbt_);
    }
}

/* ---- losses -------------------------------------------------------------- */

static void softmax_xent_matches_reference(void **state) {
    const int shapes[][2] = {{1, 1}, {5, 10}, {33, 7}, {128, 10}};
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
        const int B = shapes[t][0], K = shapes[t][1];
        const size_t n = (size_t)B * K;
        float *logits = tu_frand(n, 600 + t), *probs = fnew(n), *dl = fnew(n);
        int32_t *labels = calloc(B, sizeof *labels);
        bl_rng r;
        bl_rng_seed(&r, 610 + t);
        for (int b = 0; b < B; b++)
            labels[b] = (int32_t)bl_rng_below(&r, K);
        for (size_t i = 0; i < n; i += 3)
            logits[i] *= 30.0f; /* some large gaps */
        double *logits_ = tu_todouble(logits, n), *probs_ = tu_dnew(n), *dl_ = tu_dnew(n);
        int correct = 5, correct_ = 5; /* counts are added to what is there */
        double loss = be->softmax_xent_forward(pool, probs, &correct, logits, labels, B, K);
        double loss_ = ref_softmax_xent_forward(probs_, &correct_, logits_, labels, B, K);
        assert_true(fabs(loss - loss_) <= 1e-5 * (1 + fabs(loss_)));
        assert_int_equal(correct, correct_);
        assert_close(probs, probs_, n, "softmax probs");
        ffill(dl, n, NAN);
        be->softmax_xent_backward(pool, dl, probs, labels, B, K, 0.25f);
        ref_softmax_xent_backward(dl_, probs_, labels, B, K, 0.25);
        assert_close(dl, dl_, n, "xent backward");
        free(logits), free(probs), free(dl), free(labels), free(logits_), free(probs_), free(dl_);
    }
}

/* Huge logits stay finite; the first of equal maxima is the prediction. */
static void softmax_xent_stable_and_tie_rule(void **state) {
    float logits[2 * 4] = {1000, -1000, 999, 0, 3, 1, 3, 2};
    int32_t labels[2] = {1, 2};
    float probs[8];
    int correct = 0;
    double loss = be->softmax_xent_forward(pool, probs, &correct, logits, labels, 2, 4);
    double row0 = 1000 + log(1 + exp(-2000.0) + exp(-1.0) + exp(-1000.0)) + 1000;
    double row1 = log(2 + exp(-2.0) + exp(-1.0));
    assert_true(isfinite(loss));
    assert_true(fabs(loss - (row0 + row1)) < 1e-4 * (row0 + row1));
    assert_int_equal(correct, 0); /* row 1: tie 3,3 -> class 0, label 2 misses */
    labels[1] = 0;
    be->softmax_xent_forward(pool, probs, &correct, logits, labels, 2, 4);
    assert_int_equal(correct, 1);
    double s = 0;
    for (int k = 0; k < 4; k++)
        s += probs[k];
    assert_true(fabs(s - 1.0) < 1e-6);
}

static void mse_matches_reference(void **state) {
    const int B = 9, K = 13;
    const size_t n = (size_t)B * K;
    float *p = tu_frand(n, 700), *t = tu_frand(n, 701), *g = fnew(n);
    double *p_ = tu_todouble(p, n), *t_ = tu_todouble(t, n), *g_ = tu_dnew(n);
    double l = be->mse_forward(pool, p, t, B, K), l_ = ref_mse_forward(p_, t_, B, K);
    assert_true(fabs(l - l_) <= 1e-6 * (1 + fabs(l_)));
    ffill(g, n, NAN);
    be->mse_backward(pool, g, p, t, B, K, 0.5f);
    ref_mse_backward(g_, p_, t_, B, K, 0.5);
    assert_close(g, g_, n, "mse backward");
    free(p), free(t), free(g), free(p_), free(t_), free(g_);
}

/* ---- flat helpers -------------------------------------------------------- */

static void flat_helpers(void **state) {
    const size_t n = 3001;
    float *x = tu_frand(n, 800), *y = tu_frand(n, 801), *z = fnew(n);
    double *want = tu_dnew(n), s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)x[i] * x[i];
    assert_true(fabs(be->sumsq(pool, x, n) - s) <= 1e-12 * s);
    assert_true(be->sumsq(pool, x, 5) == (double)x[0] * x[0] + (double)x[1] * x[1] +
                                             (double)x[2] * x[2] + (double)x[3] * x[3] +
                                             (double)x[4] * x[4]);
    for (size_t i = 0; i < n; i++)
        want[i] = (double)y[i] + 0.3 * (double)x[i];
    be->axpy(pool, y, x, n, 0.3f);
    assert_close(y, want, n, "axpy");
    for (size_t i = 0; i < n; i++)
        want[i] = -2.5 * (double)x[i];
    memcpy(z, x, n * sizeof *z);
    be->scale(pool, z, n, -2.5f);
    assert_close(z, want, n, "scale");
    be->fill(pool, z, n, 0.75f);
    for (size_t i = 0; i < n; i++)
        assert_true(z[i] == 0.75f);
    be->copy(pool, z, x, n);
    assert_memory_equal(z, x, n * sizeof *z);

    assert_int_equal(be->all_finite(pool, x, n), 1);
    assert_int_equal(be->all_finite(pool, x, 0), 1);
    const float bad[] = {NAN, INFINITY, -INFINITY};
    const size_t where[] = {0, 1500, n - 1};
    for (int b = 0; b < 3; b++)
        for (int w = 0; w < 3; w++) {
            memcpy(z, x, n * sizeof *z);
            z[where[w]] = bad[b];
            assert_int_equal(be->all_finite(pool, z, n), 0);
        }
    z[0] = 3.4e38f; /* huge but finite */
    z[n - 1] = -3.4e38f;
    assert_int_equal(be->all_finite(pool, z, n), 1);
    free(x), free(y), free(z), free(want);
}

static void level_not_on_this_cpu(void **state) {
    skip();
}

/* The whole group runs once per ISA level this build holds (baseline, avx2,
 * avx512, or native), each against the same double references; a level this
 * CPU cannot run is reported as skipped, by name. */
int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(backend_table_is_complete),
        cmocka_unit_test(checker_catches_small_errors),
        cmocka_unit_test(gemm_all_transposes_match_naive),
        cmocka_unit_test(dense_matches_reference),
        cmocka_unit_test(conv2d_matches_reference),
        cmocka_unit_test(conv2d_workspace_is_a_function_of_dims),
        cmocka_unit_test(thread_count_does_not_change_results),
        cmocka_unit_test(dense_thread_count_does_not_change_results),
        cmocka_unit_test(pools_match_reference),
        cmocka_unit_test(maxpool_tie_takes_first),
        cmocka_unit_test(activations_match_reference),
        cmocka_unit_test(dropout_mask_and_values),
        cmocka_unit_test(batchnorm_matches_reference),
        cmocka_unit_test(softmax_xent_matches_reference),
        cmocka_unit_test(softmax_xent_stable_and_tie_rule),
        cmocka_unit_test(mse_matches_reference),
        cmocka_unit_test(flat_helpers),
    };
    const struct CMUnitTest skipped[] = {cmocka_unit_test(level_not_on_this_cpu)};
    int failed = 0, covered = 0;
    if (bl_cpu_pool_create(&pool, 2, NULL)) return 1;
    for (int i = 0; i < BL_CPU_ISA_COUNT; i++) {
        const bl_cpu_isa isa = (bl_cpu_isa)i;
        char name[64];
        if (!bl_cpu_isa_built(isa)) continue;
        snprintf(name, sizeof name, "cpu kernels at ISA level %s", bl_cpu_isa_name(isa));
        be = bl_cpu_kernels_isa(isa);
        printf("== %s%s\n", name, be ? "" : ": skipped, this CPU cannot run it");
        fflush(stdout);
        if (!be) {
            failed += cmocka_run_group_tests_name(name, skipped, NULL, NULL);
            continue;
        }
        bl_cpu_pool_set_threads(pool, 2); /* the parallel paths, even on a 1-core runner */
        failed += cmocka_run_group_tests_name(name, tests, NULL, NULL);
        covered++;
    }
    printf("ISA levels covered: %d\n", covered);
    bl_cpu_pool_free(pool);
    return failed || covered == 0;
}
