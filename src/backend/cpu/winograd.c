/* 3x3 stride-1 convolution by Winograd's minimal filtering F(2x2, 3x3)
 * (Lavin & Gray, 2016): 16 multiplies per 2x2 output tile and channel pair
 * instead of 36, so the GEMMs carry 2.25x fewer flops than im2col's.
 *
 * The output is cut into 2x2 tiles (T = ceil(P/2) ceil(Q/2) per sample), each
 * computed from a 4x4 input tile d (zero outside the image):
 *     Y = A^T [ (G g G^T) .* (B^T d B) ] A
 * For each of the 16 positions xi of the 4x4 transformed tile this is a plain
 * matrix product over channels, so a chunk of Nt tiles costs 16 sgemm calls:
 *     U[xi](K,C) = (G g G^T)[xi]     filters, transformed once per call
 *     V[xi](C,Nt) = (B^T d B)[xi]    input tiles
 *     M[xi](K,Nt) = U[xi] V[xi]      (sgemm)
 * and the output transform A^T M A writes 2x2 pixels per tile, with bias and
 * the fused ReLU in the same pass. Backward uses the adjoints of the same
 * linear maps:
 *     dM = A dY A^T                  per tile of the output gradient
 *     dU[xi] += dM[xi] V[xi]^T       (sgemm; V recomputed, as im2col is)
 *     dW += G^T dU G                 once, after the last chunk
 *     dV[xi] = U[xi]^T dM[xi]        (sgemm)
 *     din += B dV B^T                scattered back onto the overlapping
 *                                    4x4 input tiles, in tile order
 * F(2x2, 3x3) only ever multiplies by 0, +-1 and 1/2, so its float error stays
 * close to the direct method's (the kernel tests hold it to the same
 * tolerance against the double reference).
 *
 * Used for layers where it pays: 3x3, stride 1, and at least WINO_MIN_CHANNELS
 * channels in and out (with fewer, the 16 GEMMs are too thin and im2col's
 * single GEMM wins). On the CNN preset's 32->64 layer the three GEMM passes
 * took 435 us per sample against 851 us for im2col's, single-threaded.
 *
 * Layout: a sample's tiles are a grid of TP = ceil(P/2) rows by TQ + 1
 * columns (TQ = ceil(Q/2)), in raster order; the extra column is a dummy tile
 * whose output is dropped and whose gradient is zero. With it, a tile's 16
 * inputs sit at fixed offsets t + a (TQ+1) + b in four "phase" planes (the
 * image split by row and column parity), so every transform is one long
 * unit-stride loop over the tiles of a plane, which the compiler vectorises;
 * looping over the 14 tiles of a row did not fill a 16-float vector, and the
 * transforms cost more than the GEMMs they saved. The dummy column costs
 * 1/(TQ+1) more GEMM work (7% at 28x28). Workspace (floats): V 16 C Nt,
 * M 16 K Nt, U and dU 16 K C; in backward dV overwrites V once dU is done.
 * The chunk (samples per pass) depends on the dims only and never shrinks as
 * B grows; planes of more than WINO_MAX_TILES tiles go to im2col (the
 * per-plane scratch lives on the stack). */
#include <string.h>
#include "backend/cpu/cpu.h"
#include "backend/cpu/blas_model.h"
#include "batchlab/core.h"

#define WINO_TARGET_TILES 1024 /* tiles per chunk: Nt, the GEMMs' long side */
#define WINO_MIN_CHANNELS 16
#define WINO_MAX_TILES 1024 /* tiles per plane (dummies included): ~62x62 outputs */
/* floats of one phase plane, (TP + 2) (TQ + 1) <= 3 tiles: the stack scratch */
#define WINO_PLANE_MAX (3 * WINO_MAX_TILES)
#define WINO_MIN_PIECE 64 /* tiles: the thinnest sgemm piece worth its call (below) */

int cpu_winograd_applies(const bl_conv_dims *d) {
    if (d->R != 3 || d->S != 3 || d->stride != 1 || d->pad > 2 || d->P < 1 || d->Q < 1) return 0;
    size_t tiles = (size_t)((d->P + 1) / 2) * (size_t)((d->Q + 1) / 2 + 1);
    return tiles <= WINO_MAX_TILES && d->C >= WINO_MIN_CHANNELS && d->K >= WINO_MIN_CHANNELS;
}

static size_t tiles_per_sample(const bl_conv_dims *d) {
    return (size_t)((d->P + 1) / 2) * (size_t)((d->Q + 1) / 2 + 1);
}

static int wino_chunk(const bl_conv_dims *d) {
    size_t T = tiles_per_sample(d), nb = (WINO_TARGET_TILES + T - 1) / T;
    if (d->B > 0 && nb > (size_t)d->B) nb = (size_t)d->B;
    return nb < 1 ? 1 : (int)nb;
}

size_t cpu_winograd_workspace_floats(const bl_conv_dims *d) {
    size_t nt = (size_t)wino_chunk(d) * tiles_per_sample(d), K = (size_t)d->K, C = (size_t)d->C;
    return 16 * nt * (C + K) + 2 * 16 * K * C;
}

/* Tiles per call that keep an sgemm with the other two dims K and C on one
 * BLAS thread, a multiple of 16; 0 where that is under WINO_MIN_PIECE. */
static int piece_tiles(int K, int C) {
    size_t w = (size_t)(CPU_BLAS_SERIAL_MNK / ((double)K * (double)C)) & ~(size_t)15;
    return w >= WINO_MIN_PIECE ? (int)w : 0;
}

size_t cpu_winograd_blas_bytes(const bl_conv_dims *d) {
    size_t nt = (size_t)wino_chunk(d) * tiles_per_sample(d), K = (size_t)d->K, C = (size_t)d->C;
    const size_t piece = (size_t)piece_tiles(d->K, d->C);
    if (!piece) /* whole products on BLAS's threads */
        return cpu_max3(cpu_gemm_blas_bytes(K, nt, C), cpu_gemm_blas_bytes(K, C, nt),
                    cpu_gemm_blas_bytes(C, nt, K));
    /* single-threaded pieces on each of the pool's threads, each with a buffer of its own */
    const cpu_blas_params *bp = cpu_blas_params_current();
    size_t n = piece < nt ? piece : nt;
    size_t one = cpu_max3(cpu_blas_gemm_bytes(bp, K, n, C, 1), cpu_blas_gemm_bytes(bp, K, C, n, 1),
                      cpu_blas_gemm_bytes(bp, C, n, K, 1));
    return (size_t)cpu_blas_model_threads() * one;
}

/* ---- the transforms -------------------------------------------------------- */

/* U[xi][k][c] = (G g G^T)[xi] for every filter g = w[k][c] (3x3). */
static void filter_transform(float *U, const float *w, int K, int C) {
    const size_t KC = (size_t)K * C;
    for (int k = 0; k < K; k++)
        for (int c = 0; c < C; c++) {
            const float *g = w + ((size_t)k * C + c) * 9;
            float t[4][3]; /* G g */
            for (int s = 0; s < 3; s++) {
                t[0][s] = g[s];
                t[1][s] = 0.5f * (g[s] + g[3 + s] + g[6 + s]);
                t[2][s] = 0.5f * (g[s] - g[3 + s] + g[6 + s]);
                t[3][s] = g[6 + s];
            }
            float *u = U + (size_t)k * C + c;
            for (int i = 0; i < 4; i++) { /* (G g) G^T */
                u[(4 * i + 0) * KC] = t[i][0];
                u[(4 * i + 1) * KC] = 0.5f * (t[i][0] + t[i][1] + t[i][2]);
                u[(4 * i + 2) * KC] = 0.5f * (t[i][0] - t[i][1] + t[i][2]);
                u[(4 * i + 3) * KC] = t[i][2];
            }
        }
}

/* dW[k][c] += G^T dU[k][c] G (3x3 from 4x4): the adjoint of filter_transform. */
static void filter_transform_adjoint(float *dw, const float *dU, int K, int C) {
    const size_t KC = (size_t)K * C;
    for (int k = 0; k < K; k++)
        for (int c = 0; c < C; c++) {
            const float *u = dU + (size_t)k * C + c;
            float m[4][4], t[4][3];
            for (int x = 0; x < 16; x++)
                m[x / 4][x % 4] = u[x * KC];
            for (int i = 0; i < 4; i++) { /* m G: columns 4 -> 3 */
                t[i][0] = m[i][0] + 0.5f * (m[i][1] + m[i][2]);
                t[i][1] = 0.5f * (m[i][1] - m[i][2]);
                t[i][2] = 0.5f * (m[i][1] + m[i][2]) + m[i][3];
            }
            float *g = dw + ((size_t)k * C + c) * 9;
            for (int s = 0; s < 3; s++) { /* G^T (m G): rows 4 -> 3 */
                g[s] += t[0][s] + 0.5f * (t[1][s] + t[2][s]);
                g[3 + s] += 0.5f * (t[1][s] - t[2][s]);
                g[6 + s] += 0.5f * (t[1][s] + t[2][s]) + t[3][s];
            }
        }
}

typedef struct {
    const bl_conv_dims *d;
    float *V, *M, *out, *din, *db;
    const float *in, *b, *act, *dout;
    size_t T, TP, TQe, nt, chw, kpq; /* TQe = TQ + 1: tile columns with the dummy */
    int b0, n, relu;
} wino_arg;

/* Phase planes of a (padded) image: ph[2 rr + ss][i TQe + u] = X(2i + rr - pad,
 * 2u + ss - pad), zero outside the image, rows 0 .. TP + 1. A row's even and
 * odd input columns go to the two column phases in two stride-2 loops (which
 * vectorise) instead of one loop that picks the phase per pixel. */
static void split_row(float *e, float *o, const float *restrict row, int W, int pad) {
    /* padded column v = w + pad: phase v & 1, position v >> 1 */
    float *restrict first = pad & 1 ? o : e, *restrict second = pad & 1 ? e : o;
    const int base = pad >> 1, extra = pad & 1; /* odd w lands one further on when pad is odd */
    for (int m = 0; 2 * m < W; m++)
        first[base + m] = row[2 * m];
    for (int m = 0; 2 * m + 1 < W; m++)
        second[base + extra + m] = row[2 * m + 1];
}

static void split_phases(float *ph, size_t plane_n, const float *x, int H, int W, int pad,
                         size_t TQe) {
    memset(ph, 0, 4 * plane_n * sizeof *ph);
    for (int h = 0; h < H; h++) {
        const int y = h + pad;
        float *e = ph + (size_t)(2 * (y & 1)) * plane_n + (size_t)(y >> 1) * TQe;
        split_row(e, e + plane_n, x + (size_t)h * W, W, pad);
    }
}

/* The output gradient (pad 0) times the ReLU mask (act > 0) when the layer is
 * fused: the mask is a vector select into a row buffer, not a pass of its own
 * over dout (and not a data-dependent branch per pixel, which cost 15%). */
static void split_grad_phases(float *ph, size_t plane_n, const float *g, const float *act, int P,
                              int Q, size_t TQe) {
    if (!act) {
        split_phases(ph, plane_n, g, P, Q, 0, TQe);
        return;
    }
    float tmp[2 * WINO_PLANE_MAX];
    memset(ph, 0, 4 * plane_n * sizeof *ph);
    for (int p = 0; p < P; p++) {
        const float *restrict row = g + (size_t)p * Q, *restrict y = act + (size_t)p * Q;
        for (int q = 0; q < Q; q++)
            tmp[q] = y[q] > 0.0f ? row[q] : 0.0f;
        float *e = ph + (size_t)(2 * (p & 1)) * plane_n + (size_t)(p >> 1) * TQe;
        split_row(e, e + plane_n, tmp, Q, 0);
    }
}

/* The inverse: X(h, w) = ph[...] for every pixel of the image. */
static void join_phases(float *x, const float *ph, size_t plane_n, int H, int W, int pad,
                        size_t TQe) {
    const int base = pad >> 1, extra = pad & 1;
    for (int h = 0; h < H; h++) {
        const int y = h + pad;
        float *restrict row = x + (size_t)h * W;
        const float *e = ph + (size_t)(2 * (y & 1)) * plane_n + (size_t)(y >> 1) * TQe;
        const float *restrict first = extra ? e + plane_n : e, *restrict second =
                                                                   extra ? e : e + plane_n;
        for (int m = 0; 2 * m < W; m++)
            row[2 * m] = first[base + m];
        for (int m = 0; 2 * m + 1 < W; m++)
            row[2 * m + 1] = second[base + extra + m];
    }
}

/* items = n * C: V[xi][c][tiles of sample j] = B^T d B */
static void input_transform_items(void *p, size_t lo, size_t hi) {
    const wino_arg *a = p;
    const bl_conv_dims *d = a->d;
    const size_t T = a->T, TQe = a->TQe, plane_n = (a->TP + 2) * TQe, CNt = (size_t)d->C * a->nt;
    float ph[4 * WINO_PLANE_MAX];
    for (size_t it = lo; it < hi; it++) {
        const int j = (int)(it / (size_t)d->C), c = (int)(it % (size_t)d->C);
        const float *x = a->in + (size_t)(a->b0 + j) * a->chw + (size_t)c * d->H * d->W;
        split_phases(ph, plane_n, x, d->H, d->W, d->pad, TQe);
        /* d[2a+rr][2b+ss] = phase (rr, ss) at t + a TQe + b */
        const float *restrict p0 = ph, *restrict p1 = ph + plane_n;
        const float *restrict p2 = ph + 2 * plane_n, *restrict p3 = ph + 3 * plane_n;
        float *restrict v = a->V + (size_t)c * a->nt + (size_t)j * T;
CPU_IVDEP /* the 16 planes are KNt/CNt apart: they never overlap */
        for (size_t t = 0; t < T; t++) {
            const size_t t1 = t + TQe;
            /* rows of d: r = 0 (p0/p1 at t), 1 (p2/p3 at t), 2 (p0/p1 at t1), 3 (p2/p3 at t1);
             * columns: s = 0 (p0|p2 at +0), 1 (p1|p3 at +0), 2 (p0|p2 at +1), 3 (p1|p3 at +1) */
            float d0[4] = {p0[t], p1[t], p0[t + 1], p1[t + 1]};
            float d1[4] = {p2[t], p3[t], p2[t + 1], p3[t + 1]};
            float d2[4] = {p0[t1], p1[t1], p0[t1 + 1], p1[t1 + 1]};
            float d3[4] = {p2[t1], p3[t1], p2[t1 + 1], p3[t1 + 1]};
            float r0[4], r1[4], r2[4], r3[4]; /* B^T d */
            for (int s = 0; s < 4; s++) {
                r0[s] = d0[s] - d2[s], r1[s] = d1[s] + d2[s];
                r2[s] = d2[s] - d1[s], r3[s] = d1[s] - d3[s];
            }
            const float *rows[4] = {r0, r1, r2, r3};
            for (int i = 0; i < 4; i++) { /* (B^T d) B */
                const float *r = rows[i];
                v[(4 * i + 0) * CNt + t] = r[0] - r[2];
                v[(4 * i + 1) * CNt + t] = r[1] + r[2];
                v[(4 * i + 2) * CNt + t] = r[2] - r[1];
                v[(4 * i + 3) * CNt + t] = r[1] - r[3];
            }
        }
    }
}

/* items = n * K: out[b0+j][k] = relu?(A^T M A + b[k]); dummy tiles dropped */
static void output_transform_items(void *p, size_t lo, size_t hi) {
    const wino_arg *a = p;
    const bl_conv_dims *d = a->d;
    const size_t T = a->T, TQe = a->TQe, KNt = (size_t)d->K * a->nt, PQ = (size_t)d->P * d->Q;
    float y[4 * WINO_MAX_TILES]; /* phase (i, jj) of the output: y[2i + jj][t] */
    for (size_t it = lo; it < hi; it++) {
        const int j = (int)(it / (size_t)d->K), k = (int)(it % (size_t)d->K);
        const float bias = a->b ? a->b[k] : 0.0f;
        const float *restrict m = a->M + (size_t)k * a->nt + (size_t)j * T;
        float *restrict y00 = y, *restrict y01 = y + T, *restrict y10 = y + 2 * T;
        float *restrict y11 = y + 3 * T;
CPU_IVDEP /* the 16 planes are KNt/CNt apart: they never overlap */
        for (size_t t = 0; t < T; t++) {
            float r0[4], r1[4]; /* A^T m: rows */
            for (int s = 0; s < 4; s++) {
                float m0 = m[(0 + s) * KNt + t], m1 = m[(4 + s) * KNt + t];
                float m2 = m[(8 + s) * KNt + t], m3 = m[(12 + s) * KNt + t];
                r0[s] = m0 + m1 + m2, r1[s] = m1 - m2 - m3;
            }
            float v00 = r0[0] + r0[1] + r0[2] + bias, v01 = r0[1] - r0[2] - r0[3] + bias;
            float v10 = r1[0] + r1[1] + r1[2] + bias, v11 = r1[1] - r1[2] - r1[3] + bias;
            if (a->relu) {
                v00 = v00 < 0.0f ? 0.0f : v00, v01 = v01 < 0.0f ? 0.0f : v01;
                v10 = v10 < 0.0f ? 0.0f : v10, v11 = v11 < 0.0f ? 0.0f : v11;
            }
            y00[t] = v00, y01[t] = v01, y10[t] = v10, y11[t] = v11;
        }
        join_phases(a->out + (size_t)(a->b0 + j) * a->kpq + (size_t)k * PQ, y, T, d->P, d->Q, 0,
                    TQe);
    }
}

/* items = n * K: dM[xi][k][tiles] = A dY A^T, dY = dout (times the ReLU mask
 * when fused); zero for the dummy tiles */
static void grad_transform_items(void *p, size_t lo, size_t hi) {
    const wino_arg *a = p;
    const bl_conv_dims *d = a->d;
    const size_t T = a->T, TQe = a->TQe, KNt = (size_t)d->K * a->nt, PQ = (size_t)d->P * d->Q;
    float g[4 * WINO_PLANE_MAX]; /* phases of dY, zero past P x Q */
    const size_t plane_n = (a->TP + 2) * TQe;
    for (size_t it = lo; it < hi; it++) {
        const int j = (int)(it / (size_t)d->K), k = (int)(it % (size_t)d->K);
        const size_t at = (size_t)(a->b0 + j) * a->kpq + (size_t)k * PQ;
        split_grad_phases(g, plane_n, a->dout + at, a->act ? a->act + at : NULL, d->P, d->Q, TQe);
        const float *restrict e0 = g, *restrict o0 = g + plane_n;
        const float *restrict e1 = g + 2 * plane_n, *restrict o1 = g + 3 * plane_n;
        float *restrict m = a->M + (size_t)k * a->nt + (size_t)j * T;
CPU_IVDEP /* the 16 planes are KNt/CNt apart: they never overlap */
        for (size_t t = 0; t < T; t++) {
            /* A g, rows (g = [[e0 o0] [e1 o1]]), then each row (x, y) -> x, x+y, x-y, -y */
            float x0 = e0[t], y0 = o0[t], x1 = e0[t] + e1[t], y1 = o0[t] + o1[t];
            float x2 = e0[t] - e1[t], y2 = o0[t] - o1[t], x3 = -e1[t], y3 = -o1[t];
            m[0 * KNt + t] = x0, m[1 * KNt + t] = x0 + y0;
            m[2 * KNt + t] = x0 - y0, m[3 * KNt + t] = -y0;
            m[4 * KNt + t] = x1, m[5 * KNt + t] = x1 + y1;
            m[6 * KNt + t] = x1 - y1, m[7 * KNt + t] = -y1;
            m[8 * KNt + t] = x2, m[9 * KNt + t] = x2 + y2;
            m[10 * KNt + t] = x2 - y2, m[11 * KNt + t] = -y2;
            m[12 * KNt + t] = x3, m[13 * KNt + t] = x3 + y3;
            m[14 * KNt + t] = x3 - y3, m[15 * KNt + t] = -y3;
        }
    }
}

/* items = n * C: din[b0+j][c] = the sum over tiles of B dV B^T on each tile's
 * 4x4 window (windows overlap by two pixels each way). All tiles' dd first,
 * then four passes, one per window quadrant (a, b), each adding at most one
 * term to a pixel, so each pass is a plain vector loop; a pixel's terms come
 * in the fixed order (0,0), (0,1), (1,0), (1,1) of the quadrant they fell in. */
static void input_adjoint_items(void *p, size_t lo, size_t hi) {
    const wino_arg *a = p;
    const bl_conv_dims *d = a->d;
    const size_t T = a->T, TQe = a->TQe, plane_n = (a->TP + 2) * TQe, CNt = (size_t)d->C * a->nt;
    float acc[4 * WINO_PLANE_MAX]; /* phases of the padded din */
    float dd[16 * WINO_MAX_TILES]; /* dd[4 r + s][t] */
    for (size_t it = lo; it < hi; it++) {
        const int j = (int)(it / (size_t)d->C), c = (int)(it % (size_t)d->C);
        const float *restrict v = a->V + (size_t)c * a->nt + (size_t)j * T;
CPU_IVDEP /* the 16 planes are KNt/CNt apart: they never overlap */
        for (size_t t = 0; t < T; t++) {
            float x[16], b[16];
            for (int e = 0; e < 16; e++)
                x[e] = v[e * CNt + t];
            for (int s = 0; s < 4; s++) { /* B x, column s: rows */
                b[s] = x[s];
                b[4 + s] = x[4 + s] - x[8 + s] + x[12 + s];
                b[8 + s] = x[4 + s] + x[8 + s] - x[s];
                b[12 + s] = -x[12 + s];
            }
            for (int r = 0; r < 4; r++) { /* (B x) B^T, row r */
                const float *q = b + 4 * r;
                dd[(4 * r + 0) * T + t] = q[0];
                dd[(4 * r + 1) * T + t] = q[1] - q[2] + q[3];
                dd[(4 * r + 2) * T + t] = q[1] + q[2] - q[0];
                dd[(4 * r + 3) * T + t] = -q[3];
            }
        }
        memset(acc, 0, 4 * plane_n * sizeof *acc);
        for (int qa = 0; qa < 2; qa++)
            for (int qb = 0; qb < 2; qb++) {
                const size_t off = (size_t)qa * TQe + (size_t)qb;
                for (int rr = 0; rr < 2; rr++)
                    for (int ss = 0; ss < 2; ss++) {
                        float *restrict dst = acc + (size_t)(2 * rr + ss) * plane_n + off;
                        const float *restrict src =
                            dd + (size_t)(4 * (2 * qa + rr) + 2 * qb + ss) * T;
                        for (size_t t = 0; t < T; t++)
                            dst[t] += src[t];
                    }
            }
        join_phases(a->din + (size_t)(a->b0 + j) * a->chw + (size_t)c * d->H * d->W, acc, plane_n,
                    d->H, d->W, d->pad, TQe);
    }
}

/* ---- forward and backward ---------------------------------------------------- */

static void wino_setup(wino_arg *a, const bl_conv_dims *d, float *ws) {
    a->d = d;
    a->TP = (size_t)(d->P + 1) / 2;
    a->TQe = (size_t)(d->Q + 1) / 2 + 1;
    a->T = tiles_per_sample(d);
    a->nt = (size_t)wino_chunk(d) * a->T;
    a->chw = (size_t)d->C * d->H * d->W;
    a->kpq = (size_t)d->K * d->P * d->Q;
    a->V = ws;
    a->M = ws + 16 * a->nt * (size_t)d->C;
}

/* The 16 GEMMs of a chunk, one per transformed position xi, are independent
 * and small. OpenBLAS would split each over its threads with a
 * synchronisation per call; here they are spread over the pool's threads
 * instead, each as sgemm calls over pieces of piece_tiles() tiles, small
 * enough (M N K <= CPU_BLAS_SERIAL_MNK) that OpenBLAS runs them on the calling
 * thread whatever its thread count. Nothing sets that count: it is one per
 * process, and a kernel that set it to 1 around these calls and restored it
 * raced with every other thread of the process in a BLAS call or setting it
 * (serving and evaluation share a process). The pieces of one product run in
 * order on one thread and their width depends on the dims only, so the
 * layer's results depend on no thread count (tested). Pieces cost a call and
 * a repack of U[xi] each: on the CNN preset's 32->64 layer, 128-tile pieces
 * made the training step about 5% slower than whole products on a thread
 * count set to 1. Where pieces would be thinner than WINO_MIN_PIECE tiles
 * (K C above 4096, e.g. 64->128 channels), the repacking would cost more than
 * BLAS's threads lose, and the 16 products run one after another as whole
 * calls on BLAS's own threads; their last bits then follow the BLAS thread
 * count, as every other sgemm's do. */
enum { GEMM_FORWARD, GEMM_ADJOINT, GEMM_WEIGHTS };

typedef struct {
    const wino_arg *a;
    const float *U;
    float *dU;
    int ntiles, mode, piece;
} gemm_job;

static void gemm_slice(void *p, size_t lo, size_t hi) {
    const gemm_job *j = p;
    const wino_arg *a = j->a;
    const int K = a->d->K, C = a->d->C, ld = (int)a->nt;
    for (size_t x = lo; x < hi; x++) {
        float *v = a->V + x * C * a->nt, *m = a->M + x * K * a->nt;
        const float *u = j->U ? j->U + x * K * C : NULL;
        for (int t = 0; t < j->ntiles; t += j->piece) {
            const int n = j->ntiles - t < j->piece ? j->ntiles - t : j->piece;
            if (j->mode == GEMM_WEIGHTS) /* dU[xi] += dM[xi] V[xi]^T */
                cpu_gemm(0, 1, K, C, n, 1.0f, m + t, ld, v + t, ld, 1.0f, j->dU + x * K * C, C);
            else if (j->mode == GEMM_ADJOINT) /* dV[xi] = U[xi]^T dM[xi] */
                cpu_gemm(1, 0, C, n, K, 1.0f, u, C, m + t, ld, 0.0f, v + t, ld);
            else /* M[xi] = U[xi] V[xi] */
                cpu_gemm(0, 0, K, n, C, 1.0f, u, C, v + t, ld, 0.0f, m + t, ld);
        }
    }
}

static void wino_gemms(bl_cpu_pool *pool, const wino_arg *a, const float *U, float *dU,
                       size_t ntiles, int mode) {
    const int piece = piece_tiles(a->d->K, a->d->C);
    gemm_job j = {a, U, dU, (int)ntiles, mode, piece ? piece : (int)ntiles};
    if (piece)
        cpu_par_for(pool, 16, 1, 1, gemm_slice, &j);
    else
        gemm_slice(&j, 0, 16);
}

void cpu_winograd_forward(bl_cpu_pool *pool, float *out, const float *in, const float *w,
                          const float *b, float *ws, const bl_conv_dims *d, int relu) {
    if (d->B <= 0) return;
    wino_arg a = {.out = out, .in = in, .b = b, .relu = relu};
    wino_setup(&a, d, ws);
    float *U = a.M + 16 * a.nt * (size_t)d->K;
    filter_transform(U, w, d->K, d->C);
    const int nb = wino_chunk(d);
    for (int b0 = 0; b0 < d->B; b0 += nb) {
        a.b0 = b0, a.n = d->B - b0 < nb ? d->B - b0 : nb;
        cpu_par_for(pool, (size_t)a.n * d->C, 1, 1, input_transform_items, &a);
        wino_gemms(pool, &a, U, NULL, (size_t)a.n * a.T, GEMM_FORWARD);
        cpu_par_for(pool, (size_t)a.n * d->K, 1, 1, output_transform_items, &a);
    }
}

/* items = K: db[k] += the sum of dY over the chunk, read off dM: entry 5 of a
 * tile's A dY A^T is the sum of its 2x2 block (dummy tiles hold zeros), so
 * this is one contiguous run of n T floats per k. */
static void bias_grad_items(void *p, size_t lo, size_t hi) {
    const wino_arg *a = p;
    const size_t n = (size_t)a->n * a->T;
    for (size_t k = lo; k < hi; k++) {
        const float *restrict g = a->M + (5 * (size_t)a->d->K + k) * a->nt;
        float lane[16] = {0};
        double s = 0;
        size_t i = 0;
        for (; i + 16 <= n; i += 16)
            for (int l = 0; l < 16; l++)
                lane[l] += g[i + l];
        for (; i < n; i++)
            s += g[i];
        for (int l = 0; l < 16; l++)
            s += lane[l];
        a->db[k] += (float)s;
    }
}

void cpu_winograd_backward(bl_cpu_pool *pool, float *din, float *dw, float *db, const float *dout,
                           const float *act, const float *in, const float *w, float *ws,
                           const bl_conv_dims *d) {
    if (d->B <= 0) return;
    wino_arg a = {.din = din, .dout = dout, .in = in, .act = act, .db = db};
    wino_setup(&a, d, ws);
    float *U = a.M + 16 * a.nt * (size_t)d->K, *dU = U + 16 * (size_t)d->K * d->C;
    if (din) filter_transform(U, w, d->K, d->C);
    if (dw) memset(dU, 0, 16 * (size_t)d->K * d->C * sizeof *dU);
    const int nb = wino_chunk(d);
    for (int b0 = 0; b0 < d->B; b0 += nb) {
        a.b0 = b0, a.n = d->B - b0 < nb ? d->B - b0 : nb;
        const int ntiles = (int)((size_t)a.n * a.T);
        cpu_par_for(pool, (size_t)a.n * d->K, 1, 1, grad_transform_items, &a);
        if (db) cpu_par_for(pool, (size_t)d->K, 1, 1, bias_grad_items, &a);
        if (dw) {
            cpu_par_for(pool, (size_t)a.n * d->C, 1, 1, input_transform_items, &a);
            wino_gemms(pool, &a, NULL, dU, (size_t)ntiles, GEMM_WEIGHTS);
        }
        if (din) {
            wino_gemms(pool, &a, U, NULL, (size_t)ntiles, GEMM_ADJOINT);
            cpu_par_for(pool, (size_t)a.n * d->C, 1, 1, input_adjoint_items, &a);
        }
    }
    if (dw) filter_transform_adjoint(dw, dU, d->K, d->C);
}
