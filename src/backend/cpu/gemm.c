/* The sgemm wrapper and the dense (fully connected) layer.
 *
 * Everything goes through OpenBLAS cblas_sgemm in row-major order with the
 * transpose flags, never through an explicit transposed copy: the packing
 * inside sgemm already reorders the operands, so a copy would only add memory
 * traffic. Degenerate sizes (M, N or K zero, e.g. an empty batch) are handled
 * here, because OpenBLAS reports zero leading dimensions through xerbla,
 * which prints, and a library must not print. */
#include <cblas.h>
#include <string.h>
#undef I /* OpenBLAS's cblas.h pulls in <complex.h>; I is a dimension name here */
#include "backend/cpu/cpu.h"

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

/* out(B,O) = in(B,I) @ w(O,I)^T + b(O): the bias is broadcast into out first
 * and sgemm adds the product with beta = 1, which saves a second pass. */
void cpu_dense_forward(float *out, const float *in, const float *w, const float *b, int B, int I,
                       int O) {
    if (B <= 0 || O <= 0) return;
    if (b) {
        for (int i = 0; i < B; i++)
            memcpy(out + (size_t)i * O, b, (size_t)O * sizeof *out);
    }
    cpu_gemm(0, 1, B, O, I, 1.0f, in, I, w, I, b ? 1.0f : 0.0f, out, O);
}

/* Column sums of x(rows, cols) added into acc(cols). Row-by-row so the inner
 * loop is contiguous and vectorises. */
static void add_column_sums(float *restrict acc, const float *restrict x, int rows, int cols) {
    for (int r = 0; r < rows; r++) {
        const float *restrict xr = x + (size_t)r * cols;
        for (int c = 0; c < cols; c++)
            acc[c] += xr[c];
    }
}

/* din(B,I) = dout(B,O) @ w(O,I) (overwrite); dw(O,I) += dout^T @ in;
 * db(O) += sum over the batch of dout. */
void cpu_dense_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                        const float *w, int B, int I, int O) {
    if (din) cpu_gemm(0, 0, B, I, O, 1.0f, dout, O, w, I, 0.0f, din, I);
    if (dw) cpu_gemm(1, 0, O, I, B, 1.0f, dout, O, in, I, 1.0f, dw, I);
    if (db && B > 0) add_column_sums(db, dout, B, O);
}
