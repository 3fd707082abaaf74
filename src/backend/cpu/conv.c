/* 2-D convolution (NCHW, weights (K, C, R, S)) as im2col + sgemm.
 *
 * Layout: the samples of the batch are processed in chunks of nb. The column
 * matrix of a chunk is col(C*R*S, nb*P*Q): row (c, r, s) holds, for sample j
 * of the chunk, the P*Q input pixels that meet weight tap (c, r, s) at
 * columns j*P*Q .. (j+1)*P*Q. One sgemm per chunk then computes
 *     y(K, nb*P*Q) = w(K, C*R*S) @ col
 * and y is scattered into out(B, K, P, Q) with the bias. Putting several
 * samples side by side makes the GEMM's N dimension large even when P*Q is
 * small (late layers, 7x7 maps), which is what sgemm needs to reach its
 * peak; a chunk of one sample writes straight into out and needs no y.
 *
 * Backward per chunk: dout is gathered into g(K, nb*P*Q) (or used in place
 * for one sample), the chunk's col is rebuilt (the workspace is shared
 * scratch, so nothing is kept from forward), then
 *     dw(K, CRS) += g @ col^T           (sgemm, beta 1: accumulates)
 *     dcol(CRS, nb*P*Q) = w^T @ g       (sgemm into the col buffer, reused)
 * and col2im scatters dcol into din. 1x1 stride-1 unpadded convolutions skip
 * im2col entirely: each sample's (C, H*W) input already is its col.
 *
 * The chunk size, and hence the workspace, is a pure function of the dims:
 * enough samples to give the GEMM about CONV_TARGET_COLS columns (2048 was
 * the fastest of 1 sample/2048/4096/8192 in bench/bench_kernels.c), capped
 * so that col stays under CONV_MAX_COL_FLOATS, and never more than B. It
 * never shrinks as B grows, so a workspace sized for the largest batch
 * serves every smaller one. */
#include <string.h>
#include "backend/cpu/cpu.h"

#define CONV_TARGET_COLS 2048
#define CONV_MAX_COL_FLOATS ((size_t)8 << 20) /* 32 MiB of col per chunk at most */

static int conv_is_pointwise(const bl_conv_dims *d) {
    return d->R == 1 && d->S == 1 && d->stride == 1 && d->pad == 0;
}

/* Samples per chunk, >= 1. */
static int conv_chunk(const bl_conv_dims *d) {
    if (conv_is_pointwise(d)) return 1;
    size_t pq = (size_t)d->P * d->Q, crs = (size_t)d->C * d->R * d->S;
    if (pq == 0 || crs == 0) return 1;
    size_t nb = (CONV_TARGET_COLS + pq - 1) / pq;
    size_t cap = CONV_MAX_COL_FLOATS / (crs * pq);
    if (nb > cap) nb = cap;
    if (d->B > 0 && nb > (size_t)d->B) nb = (size_t)d->B;
    return nb < 1 ? 1 : (int)nb;
}

size_t cpu_conv2d_workspace_floats(const bl_conv_dims *d) {
    if (conv_is_pointwise(d)) return 0;
    size_t nb = (size_t)conv_chunk(d), pq = (size_t)d->P * d->Q;
    size_t col = (size_t)d->C * d->R * d->S * nb * pq;
    size_t y = nb > 1 ? (size_t)d->K * nb * pq : 0;
    return col + y;
}

/* The output columns q whose input column q*stride - pad + s lies inside
 * [0, W): [*lo, *hi). Everything outside reads padding (zero). */
static void conv_valid_q(int s, const bl_conv_dims *d, int *lo, int *hi) {
    int st = d->stride, off = s - d->pad; /* input column = q*st + off */
    int l = off >= 0 ? 0 : (-off + st - 1) / st;
    int h = d->W - 1 - off >= 0 ? (d->W - 1 - off) / st + 1 : 0;
    if (h > d->Q) h = d->Q;
    if (l > h) l = h;
    *lo = l;
    *hi = h;
}

/* One sample img(C, H, W) into the columns of col that start at col[0], rows
 * ldcol apart. */
static void im2col(float *restrict col, size_t ldcol, const float *restrict img,
                   const bl_conv_dims *d) {
    const int H = d->H, W = d->W, P = d->P, Q = d->Q, st = d->stride;
    for (int c = 0; c < d->C; c++)
        for (int r = 0; r < d->R; r++)
            for (int s = 0; s < d->S; s++) {
                float *restrict row = col + ((size_t)(c * d->R + r) * d->S + s) * ldcol;
                int lo, hi;
                conv_valid_q(s, d, &lo, &hi);
                int off = s - d->pad;
                for (int p = 0; p < P; p++) {
                    float *restrict o = row + (size_t)p * Q;
                    int h = p * st - d->pad + r;
                    if (h < 0 || h >= H || lo == hi) {
                        memset(o, 0, (size_t)Q * sizeof *o);
                        continue;
                    }
                    const float *restrict src = img + ((size_t)c * H + h) * W;
                    for (int q = 0; q < lo; q++)
                        o[q] = 0.0f;
                    if (st == 1) {
                        memcpy(o + lo, src + lo + off, (size_t)(hi - lo) * sizeof *o);
                    } else {
                        for (int q = lo; q < hi; q++)
                            o[q] = src[q * st + off];
                    }
                    for (int q = hi; q < Q; q++)
                        o[q] = 0.0f;
                }
            }
}

/* The adjoint of im2col: img(C, H, W) = sum of the col entries that read
 * each pixel. Overwrites img. */
static void col2im(float *restrict img, const float *restrict col, size_t ldcol,
                   const bl_conv_dims *d) {
    const int H = d->H, W = d->W, P = d->P, Q = d->Q, st = d->stride;
    memset(img, 0, (size_t)d->C * H * W * sizeof *img);
    for (int c = 0; c < d->C; c++)
        for (int r = 0; r < d->R; r++)
            for (int s = 0; s < d->S; s++) {
                const float *restrict row = col + ((size_t)(c * d->R + r) * d->S + s) * ldcol;
                int lo, hi;
                conv_valid_q(s, d, &lo, &hi);
                int off = s - d->pad;
                for (int p = 0; p < P; p++) {
                    int h = p * st - d->pad + r;
                    if (h < 0 || h >= H) continue;
                    float *restrict dst = img + ((size_t)c * H + h) * W;
                    const float *restrict g = row + (size_t)p * Q;
                    if (st == 1) {
                        float *restrict dd = dst + off;
                        for (int q = lo; q < hi; q++)
                            dd[q] += g[q];
                    } else {
                        for (int q = lo; q < hi; q++)
                            dst[q * st + off] += g[q];
                    }
                }
            }
}

/* rows x n matrix filled row by row with bias[row]. */
static void fill_rows(float *restrict y, const float *restrict bias, int rows, size_t n) {
    for (int k = 0; k < rows; k++) {
        float v = bias[k];
        float *restrict yk = y + (size_t)k * n;
        for (size_t i = 0; i < n; i++)
            yk[i] = v;
    }
}

void cpu_conv2d_forward(float *out, const float *in, const float *w, const float *b, float *ws,
                        const bl_conv_dims *d) {
    const int B = d->B, K = d->K;
    const size_t pq = (size_t)d->P * d->Q, chw = (size_t)d->C * d->H * d->W;
    const size_t kpq = (size_t)K * pq;
    const int crs = d->C * d->R * d->S;
    if (B <= 0 || K <= 0 || pq == 0) return;
    const float beta = b ? 1.0f : 0.0f;

    if (conv_is_pointwise(d)) {
        for (int i = 0; i < B; i++) {
            float *o = out + (size_t)i * kpq;
            if (b) fill_rows(o, b, K, pq);
            cpu_gemm(0, 0, K, (int)pq, d->C, 1.0f, w, d->C, in + (size_t)i * chw, (int)pq, beta, o,
                     (int)pq);
        }
        return;
    }

    const int nb = conv_chunk(d);
    float *col = ws;
    float *y = ws + (size_t)crs * nb * pq; /* used only when a chunk holds > 1 sample */
    for (int b0 = 0; b0 < B; b0 += nb) {
        const int n = B - b0 < nb ? B - b0 : nb;
        const size_t ld = (size_t)n * pq;
        for (int j = 0; j < n; j++)
            im2col(col + j * pq, ld, in + (size_t)(b0 + j) * chw, d);
        if (n == 1) {
            float *o = out + (size_t)b0 * kpq;
            if (b) fill_rows(o, b, K, pq);
            cpu_gemm(0, 0, K, (int)pq, crs, 1.0f, w, crs, col, (int)pq, beta, o, (int)pq);
            continue;
        }
        cpu_gemm(0, 0, K, (int)ld, crs, 1.0f, w, crs, col, (int)ld, 0.0f, y, (int)ld);
        for (int j = 0; j < n; j++) {
            float *o = out + (size_t)(b0 + j) * kpq;
            for (int k = 0; k < K; k++) {
                const float *restrict src = y + (size_t)k * ld + (size_t)j * pq;
                float *restrict dst = o + (size_t)k * pq;
                float v = b ? b[k] : 0.0f;
                for (size_t i = 0; i < pq; i++)
                    dst[i] = src[i] + v;
            }
        }
    }
}

/* Sum of x[0..n): 16 float lanes (one vector add per 16 values; a single
 * running sum would be a serial chain of adds, which cost as much as the
 * dw GEMM for small C), combined in double. */
static double sum_floats(const float *restrict x, size_t n) {
    float lane[16] = {0};
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++)
            lane[j] += x[i + j];
    double s = 0;
    for (; i < n; i++)
        s += x[i];
    for (int j = 0; j < 16; j++)
        s += lane[j];
    return s;
}

/* db(K) += row sums of g(K, n). */
static void add_row_sums(float *restrict db, const float *restrict g, int K, size_t n) {
    for (int k = 0; k < K; k++)
        db[k] += (float)sum_floats(g + (size_t)k * n, n);
}

void cpu_conv2d_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                         const float *w, float *ws, const bl_conv_dims *d) {
    const int B = d->B, K = d->K, C = d->C;
    const size_t pq = (size_t)d->P * d->Q, chw = (size_t)C * d->H * d->W;
    const size_t kpq = (size_t)K * pq;
    const int crs = C * d->R * d->S;
    if (B <= 0) return;
    if (K <= 0 || pq == 0) { /* no output: nothing flows back */
        if (din) memset(din, 0, (size_t)B * chw * sizeof *din);
        return;
    }

    if (conv_is_pointwise(d)) {
        for (int i = 0; i < B; i++) {
            const float *g = dout + (size_t)i * kpq, *x = in + (size_t)i * chw;
            if (db) add_row_sums(db, g, K, pq);
            if (dw) cpu_gemm(0, 1, K, C, (int)pq, 1.0f, g, (int)pq, x, (int)pq, 1.0f, dw, C);
            if (din)
                cpu_gemm(1, 0, C, (int)pq, K, 1.0f, w, C, g, (int)pq, 0.0f, din + (size_t)i * chw,
                         (int)pq);
        }
        return;
    }

    const int nb = conv_chunk(d);
    float *col = ws;
    float *y = ws + (size_t)crs * nb * pq;
    for (int b0 = 0; b0 < B; b0 += nb) {
        const int n = B - b0 < nb ? B - b0 : nb;
        const size_t ld = (size_t)n * pq;
        const float *g;
        if (n == 1) {
            g = dout + (size_t)b0 * kpq;
        } else {
            for (int j = 0; j < n; j++)
                for (int k = 0; k < K; k++)
                    memcpy(y + (size_t)k * ld + (size_t)j * pq,
                           dout + (size_t)(b0 + j) * kpq + (size_t)k * pq, pq * sizeof *y);
            g = y;
        }
        if (db) add_row_sums(db, g, K, ld);
        if (dw) {
            for (int j = 0; j < n; j++)
                im2col(col + j * pq, ld, in + (size_t)(b0 + j) * chw, d);
            cpu_gemm(0, 1, K, crs, (int)ld, 1.0f, g, (int)ld, col, (int)ld, 1.0f, dw, crs);
        }
        if (din) {
            cpu_gemm(1, 0, crs, (int)ld, K, 1.0f, w, crs, g, (int)ld, 0.0f, col, (int)ld);
            for (int j = 0; j < n; j++)
                col2im(din + (size_t)(b0 + j) * chw, col + j * pq, ld, d);
        }
    }
}
