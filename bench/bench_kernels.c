/* Kernel timings for the CPU backend: conv2d forward/backward on the ANCHORS
 * CNN shapes and sgemm on the MLP's first layer, printed as GFLOP/s, and the
 * dropout mask (Philox) as ns per element (never asserted). Each figure is the
 * median of 5 timed runs of at least 0.3 s after a warm-up, as ANCHORS.md
 * prescribes. Alongside each conv it times a bare sgemm of the same GEMM shape,
 * so the gap between the two is the cost of im2col/col2im and the scatter, i.e.
 * what is left to win in conv itself.
 *
 * Built with the project (build/bench_kernels); it calls the kernels through
 * the CPU backend's table, at the ISA level chosen at start-up (BATCHLAB_ISA
 * lowers it), which it prints.
 *   build/bench_kernels [threads...]      (default: 1 2)
 */
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include "batchlab/backend.h"
#include "batchlab/core.h"

extern void openblas_set_num_threads(int);

typedef void (*bench_fn)(void *arg);

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median seconds per call. */
static double time_per_call(bench_fn fn, void *arg) {
    fn(arg); /* warm-up */
    int reps = 1;
    for (;;) {
        double t0 = bl_now_sec();
        for (int i = 0; i < reps; i++)
            fn(arg);
        if (bl_now_sec() - t0 >= 0.3) break;
        reps *= 2;
    }
    double t[5];
    for (int k = 0; k < 5; k++) {
        double t0 = bl_now_sec();
        for (int i = 0; i < reps; i++)
            fn(arg);
        t[k] = (bl_now_sec() - t0) / reps;
    }
    qsort(t, 5, sizeof t[0], cmp_double);
    return t[2];
}

static const bl_kernels *be;
static bl_cpu_pool *pool; /* the kernels' threads, set per run below */

typedef struct {
    bl_conv_dims d;
    float *in, *w, *b, *out, *dout, *din, *dw, *db, *ws;
    int with_din;
} conv_arg;

static void run_conv_fwd(void *p) {
    conv_arg *a = p;
    be->conv2d_forward(pool, a->out, a->in, a->w, a->b, a->ws, &a->d);
}
static void run_conv_bwd(void *p) {
    conv_arg *a = p;
    be->conv2d_backward(pool, a->with_din ? a->din : NULL, a->dw, a->db, a->dout, a->in, a->w,
                        a->ws, &a->d);
}

typedef struct {
    int ta, tb, M, N, K;
    float *A, *B, *C;
} gemm_arg;

static void run_gemm(void *p) {
    gemm_arg *g = p;
    int lda = g->ta ? g->M : g->K, ldb = g->tb ? g->K : g->N;
    be->gemm(pool, g->ta, g->tb, g->M, g->N, g->K, 1.0f, g->A, lda, g->B, ldb, 0.0f, g->C, g->N);
}

typedef struct {
    float *in, *out;
    uint8_t *mask;
    size_t n;
    bl_dropout_key key;
} dropout_arg;

static void run_dropout(void *p) {
    dropout_arg *a = p;
    a->key.step++; /* a fresh mask each call, as in training */
    be->dropout_forward(pool, a->out, a->mask, a->in, a->n, 0.3f, &a->key);
}

static float *rnd(size_t n, bl_rng *r) {
    float *x = malloc((n ? n : 1) * sizeof *x);
    for (size_t i = 0; i < n; i++)
        x[i] = bl_rng_normal(r);
    return x;
}

static double bare_gemm_gflops(int ta, int tb, int M, int N, int K, bl_rng *r) {
    gemm_arg g = {
        ta, tb, M, N, K, rnd((size_t)M * K, r), rnd((size_t)K * N, r), rnd((size_t)M * N, r)};
    double s = time_per_call(run_gemm, &g);
    free(g.A), free(g.B), free(g.C);
    return 2.0 * M * N * K / s * 1e-9;
}

static void bench_conv(const char *name, int B, int C, int H, int W, int K, bl_rng *r) {
    conv_arg a = {.d = {B, C, H, W, K, 3, 3, 1, 1, 0, 0}};
    a.d.P = bl_conv_out_size(H, 3, 1, 1), a.d.Q = bl_conv_out_size(W, 3, 1, 1);
    size_t ni = (size_t)B * C * H * W, nw = (size_t)K * C * 9, no = (size_t)B * K * a.d.P * a.d.Q;
    size_t nws = be->conv2d_workspace_floats(&a.d);
    a.in = rnd(ni, r), a.w = rnd(nw, r), a.b = rnd(K, r), a.out = rnd(no, r), a.dout = rnd(no, r);
    a.din = rnd(ni, r), a.dw = rnd(nw, r), a.db = rnd(K, r), a.ws = rnd(nws, r);
    double flop = 2.0 * no * C * 9; /* one pass: forward, or dw, or din */
    double tf = time_per_call(run_conv_fwd, &a);
    a.with_din = 0;
    double tb0 = time_per_call(run_conv_bwd, &a);
    a.with_din = 1;
    double tb1 = time_per_call(run_conv_bwd, &a);
    /* the forward GEMM of one sample, and of the whole batch as one GEMM */
    double g1 = bare_gemm_gflops(0, 0, K, a.d.P * a.d.Q, C * 9, r);
    double gB = bare_gemm_gflops(0, 0, K, B * a.d.P * a.d.Q, C * 9, r);
    printf("  %-22s fwd %7.2f ms %6.1f GF/s | bwd(dw) %7.2f ms %6.1f GF/s | bwd(dw+din) %7.2f ms "
           "%6.1f GF/s | bare sgemm 1 sample %6.1f, batch %6.1f GF/s | ws %.1f MB\n",
           name, tf * 1e3, flop / tf * 1e-9, tb0 * 1e3, flop / tb0 * 1e-9, tb1 * 1e3,
           2 * flop / tb1 * 1e-9, g1, gB, nws * 4.0 / 1e6);
    free(a.in), free(a.w), free(a.b), free(a.out), free(a.dout), free(a.din), free(a.dw);
    free(a.db), free(a.ws);
}

/* One dropout layer of the MLP at B=512 (1024 units): 512 Ki elements. */
static void bench_dropout(bl_rng *r) {
    dropout_arg a = {.n = (size_t)512 * 1024, .key = {.seed = 1, .layer = 2}};
    a.in = rnd(a.n, r), a.out = rnd(a.n, r), a.mask = malloc(a.n);
    double s = time_per_call(run_dropout, &a);
    printf("  dropout fwd 512x1024:  %6.2f ns/element (mask + scale)\n", s / (double)a.n * 1e9);
    free(a.in), free(a.out), free(a.mask);
}

int main(int argc, char **argv) {
    int threads[8] = {1, 2}, nt = 2;
    be = bl_cpu_kernels();
    printf("ISA level %s\n", bl_cpu_isa_name(bl_cpu_isa_selected(NULL)));
    if (argc > 1) {
        nt = 0;
        for (int i = 1; i < argc && nt < 8; i++)
            threads[nt++] = atoi(argv[i]);
    }
    bl_rng r;
    bl_rng_seed(&r, 1);
    if (bl_cpu_pool_create(&pool, 1, NULL)) return 1;
    for (int t = 0; t < nt; t++) {
        openblas_set_num_threads(threads[t]);
        bl_cpu_pool_set_threads(pool, threads[t]);
        printf("threads %d\n", threads[t]);
        bench_conv("conv 1->32 28x28 B=32", 32, 1, 28, 28, 32, &r);
        bench_conv("conv 32->64 28x28 B=32", 32, 32, 28, 28, 64, &r);
        /* MLP layer 1 at B=128: forward in @ w^T, backward din = dout @ w, dw = dout^T @ in */
        printf("  sgemm 784x1024 B=128:  fwd (NT) %6.1f GF/s | din (NN) %6.1f GF/s | dw (TN) "
               "%6.1f GF/s\n",
               bare_gemm_gflops(0, 1, 128, 1024, 784, &r),
               bare_gemm_gflops(0, 0, 128, 784, 1024, &r),
               bare_gemm_gflops(1, 0, 1024, 784, 128, &r));
        bench_dropout(&r);
    }
    bl_cpu_pool_free(pool);
    return 0;
}
