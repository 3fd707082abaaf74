/* The sgemm wrapper and the dense (fully connected) layer, plain and fused
 * with a ReLU.
 *
 * Everything goes through OpenBLAS in row-major order with the transpose
 * flags, never through an explicit transposed copy: the packing inside sgemm
 * already reorders the operands, so a copy would only add memory traffic.
 * Degenerate sizes (M, N or K zero, e.g. an empty batch) are handled here,
 * because OpenBLAS reports zero leading dimensions through xerbla, which
 * prints, and a library must not print.
 *
 * B = 1 goes to the level-2 routines (sgemv, sger). sgemm with one row still
 * packs the whole weight matrix, which took 5x as long as sgemv on the MLP's
 * 1024x784 layer; the single-sample latency is exactly that case. Up to
 * SKINNY_MAX_B rows, skinny.c's direct kernels do the three products.
 *
 * The passes around the GEMMs (bias, ReLU, the bias gradient) run on the
 * caller's fork-join pool (par.c) between BLAS calls. Each output element is computed
 * by one slice in a fixed order, so results do not depend on the thread
 * count. The fused forward computes the product with beta = 0 and then adds
 * the bias and applies ReLU in the same pass over the output; that is the
 * same float arithmetic as the unfused layer followed by act_forward, so
 * fused and unfused results are bit-identical (tested). */
#include <cblas.h>
#include <string.h>
#undef I /* OpenBLAS's cblas.h pulls in <complex.h>; I is a dimension name here */
#include "backend/cpu/cpu.h"
#include "backend/cpu/blas_model.h"
#include "batchlab/core.h"

/* Elementwise passes below this many floats per thread stay on one thread:
 * waking a worker costs microseconds, a pass over 32 K floats about as much. */
#define DENSE_PAR_MIN 32768

void cpu_gemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
              const float *Bm, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) { /* C = beta C: the product is empty */
        for (int i = 0; i < M; i++) {
            float *restrict c = C + (size_t)i * ldc;
            if (beta == 0.0f)
                memset(c, 0, (size_t)N * sizeof *c);
            else
                for (int j = 0; j < N; j++)
                    c[j] *= beta;
        }
        return;
    }
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, Bm, ldb, beta, C, ldc);
}

/* ---- passes over out(B, O) ---------------------------------------------- */

typedef struct {
    float *out, *db;
    const float *b, *y;
    int B, O;
    int relu;
} rows_arg;

/* Rows [lo, hi): out = relu?(out + b). b may be NULL. */
static void bias_act_rows(void *p, size_t lo, size_t hi) {
    const rows_arg *a = p;
    const int O = a->O;
    for (size_t r = lo; r < hi; r++) {
        float *restrict o = a->out + r * O;
        const float *restrict b = a->b;
        if (b && a->relu) {
            for (int j = 0; j < O; j++) {
                float v = o[j] + b[j];
                o[j] = v < 0.0f ? 0.0f : v;
            }
        } else if (b) {
            for (int j = 0; j < O; j++)
                o[j] += b[j];
        } else if (a->relu) {
            for (int j = 0; j < O; j++)
                o[j] = o[j] < 0.0f ? 0.0f : o[j];
        }
    }
}

static void bias_act(bl_cpu_pool *pool, float *out, const float *b, int B, int O, int relu) {
    if (!b && !relu) return;
    rows_arg a = {.out = out, .b = b, .O = O, .relu = relu};
    cpu_par_for(pool, (size_t)B, 1, (DENSE_PAR_MIN + O - 1) / O, bias_act_rows, &a);
}

/* Columns [lo, hi) of g(B, O), every row: with relu, g = g * (y > 0) in place
 * (y is the forward output); then db[j] += sum over rows of g[., j]. Splitting
 * by columns keeps each db[j] a sum in row order on one thread. */
static void grad_cols(void *p, size_t lo, size_t hi) {
    const rows_arg *a = p;
    const size_t O = (size_t)a->O, B = (size_t)a->B, n = hi - lo;
    const int relu = a->relu;
    float *restrict db = a->db ? a->db + lo : NULL;
    for (size_t r = 0; r < B; r++) {
        float *restrict g = a->out + r * O + lo;
        if (relu) {
            const float *restrict y = a->y + r * O + lo;
            for (size_t j = 0; j < n; j++)
                g[j] = y[j] > 0.0f ? g[j] : 0.0f;
        }
        if (db)
            for (size_t j = 0; j < n; j++)
                db[j] += g[j];
    }
}

static void bias_grad(bl_cpu_pool *pool, float *g, float *db, const float *y, int B, int O) {
    if (!db && !y) return;
    rows_arg a = {.out = g, .db = db, .y = y, .B = B, .O = O, .relu = y != NULL};
    size_t min_cols = (DENSE_PAR_MIN + (size_t)B - 1) / (size_t)B;
    cpu_par_for(pool, (size_t)O, 16, min_cols < 16 ? 16 : min_cols, grad_cols, &a);
}

/* ---- dense ---------------------------------------------------------------- */

/* out(B,O) = act(in(B,I) @ w(O,I)^T + b(O)), act = ReLU or identity. */
static void dense_forward(bl_cpu_pool *pool, float *out, const float *in, const float *w,
                          const float *b, int B, int I, int O, int relu) {
    if (B <= 0 || O <= 0) return;
    if (B == 1 && I > 0) {
        cblas_sgemv(CblasRowMajor, CblasNoTrans, O, I, 1.0f, w, I, in, 1, 0.0f, out, 1);
    } else if (B <= SKINNY_MAX_B && I > 0) {
        cpu_skinny_forward(pool, out, in, w, B, I, O);
    } else {
        cpu_gemm(0, 1, B, O, I, 1.0f, in, I, w, I, 0.0f, out, O);
    }
    bias_act(pool, out, b, B, O, relu);
}

void cpu_dense_forward(bl_cpu_pool *pool, float *out, const float *in, const float *w,
                       const float *b, int B, int I, int O) {
    dense_forward(pool, out, in, w, b, B, I, O, 0);
}

void cpu_dense_relu_forward(bl_cpu_pool *pool, float *out, const float *in, const float *w,
                            const float *b, int B, int I, int O) {
    dense_forward(pool, out, in, w, b, B, I, O, 1);
}

/* din(B,I) = g(B,O) @ w(O,I) (overwrite); dw(O,I) += g^T @ in. */
static void dense_gemms(bl_cpu_pool *pool, float *din, float *dw, const float *g, const float *in,
                        const float *w, int B, int I, int O) {
    if (B <= 0 || I <= 0) return;
    if (B == 1 && O > 0) {
        if (din) cblas_sgemv(CblasRowMajor, CblasTrans, O, I, 1.0f, w, I, g, 1, 0.0f, din, 1);
        if (dw) cblas_sger(CblasRowMajor, O, I, 1.0f, g, 1, in, 1, dw, I);
        return;
    }
    if (din && B <= SKINNY_MAX_B && O > 0)
        cpu_skinny_din(pool, din, g, w, B, I, O);
    else if (din)
        cpu_gemm(0, 0, B, I, O, 1.0f, g, O, w, I, 0.0f, din, I);
    if (dw && B <= SKINNY_DW_MAX_B && O > 0)
        cpu_skinny_dw(pool, dw, g, in, B, I, O);
    else if (dw)
        cpu_gemm(1, 0, O, I, B, 1.0f, g, O, in, I, 1.0f, dw, I);
}

void cpu_dense_backward(bl_cpu_pool *pool, float *din, float *dw, float *db, const float *dout,
                        const float *in, const float *w, int B, int I, int O) {
    if (B > 0 && O > 0) bias_grad(pool, (float *)dout, db, NULL, B, O); /* reads dout only */
    dense_gemms(pool, din, dw, dout, in, w, B, I, O);
}

void cpu_dense_relu_backward(bl_cpu_pool *pool, float *din, float *dw, float *db, float *dout,
                             const float *out, const float *in, const float *w, int B, int I,
                             int O) {
    if (B > 0 && O > 0) bias_grad(pool, dout, db, out, B, O);
    dense_gemms(pool, din, dw, dout, in, w, B, I, O);
}

/* ---- the BLAS library's own memory ------------------------------------------
 * Modelled per core type in blas_model.c. */
size_t cpu_gemm_blas_bytes(size_t M, size_t N, size_t K) {
    return cpu_blas_gemm_bytes(cpu_blas_params_current(), M, N, K, cpu_blas_model_threads());
}

size_t cpu_dense_blas_bytes(int B, int I, int O) {
    if (B <= 0 || I <= 0 || O <= 0) return 0;
    /* forward (B,O,I), input gradient (B,I,O), weight gradient (O,I,B); B = 1 is level 2 */
    size_t b = (size_t)B, i = (size_t)I, o = (size_t)O;
    if (B == 1) return cpu_gemm_blas_bytes(1, o, i);
    return cpu_max3(cpu_gemm_blas_bytes(b, o, i), cpu_gemm_blas_bytes(b, i, o),
                cpu_gemm_blas_bytes(o, i, b));
}
