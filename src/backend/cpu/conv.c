/* 2-D convolution (NCHW, weights (K, C, R, S)) as im2col + sgemm; 3x3
 * stride-1 layers with enough channels go to Winograd F(2x2, 3x3) instead
 * (winograd.c), which needs 2.25x fewer GEMM flops.
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
    if (cpu_winograd_applies(d)) return cpu_winograd_workspace_floats(d);
    if (conv_is_pointwise(d)) return 0;
    size_t nb = (size_t)conv_chunk(d), pq = (size_t)d->P * d->Q;
    size_t col = (size_t)d->C * d->R * d->S * nb * pq;
    size_t y = nb > 1 ? (size_t)d->K * nb * pq : 0;
    return col + y;
}

/* The BLAS library's own buffers for the largest GEMMs of a chunk (gemm.c). */
size_t cpu_conv2d_blas_bytes(const bl_conv_dims *d) {
    if (d->B <= 0 || d->K <= 0 || d->P <= 0 || d->Q <= 0) return 0;
    if (cpu_winograd_applies(d)) return cpu_winograd_blas_bytes(d);
    const size_t pq = (size_t)d->P * d->Q, K = (size_t)d->K;
    const size_t rows = conv_is_pointwise(d) ? (size_t)d->C : (size_t)d->C * d->R * d->S;
    const size_t ld = (size_t)conv_chunk(d) * pq;
    size_t f = cpu_gemm_blas_bytes(K, ld, rows), w = cpu_gemm_blas_bytes(K, rows, ld);
    size_t x = cpu_gemm_blas_bytes(rows, ld, K), m = f > w ? f : w;
    return m > x ? m : x;
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

/* Row (c, r, s) of one sample's im2col: the P*Q input pixels img(C, H, W)
 * that meet weight tap (c, r, s), written to o[0 .. P*Q). */
static void im2col_row(float *restrict o, const float *restrict img, int c, int r, int s,
                       const bl_conv_dims *d) {
    const int H = d->H, W = d->W, P = d->P, Q = d->Q, st = d->stride;
    int lo, hi;
    conv_valid_q(s, d, &lo, &hi);
    const int off = s - d->pad;
    const float *restrict plane = img + (size_t)c * H * W;
    if (st == 1 && Q == W) {
        /* A "same" convolution: the valid part of the row is the input plane
         * shifted by a constant, so it is one long copy, after which the few
         * border columns are zeroed (copying 28-float pieces one by one cost
         * more in calls than in bytes). */
        int p0 = d->pad - r > 0 ? d->pad - r : 0, p1 = H + d->pad - r < P ? H + d->pad - r : P;
        if (p0 > P) p0 = P; /* a kernel taller than the input: tap r may meet no row at all */
        if (p1 < p0) p1 = p0;
        memset(o, 0, (size_t)p0 * Q * sizeof *o);
        memset(o + (size_t)p1 * Q, 0, (size_t)(P - p1) * Q * sizeof *o);
        if (p0 == p1) return;
        if (lo == hi) {
            memset(o + (size_t)p0 * Q, 0, (size_t)(p1 - p0) * Q * sizeof *o);
            return;
        }
        size_t len = (size_t)(p1 - 1 - p0) * Q + (size_t)(hi - lo);
        memcpy(o + (size_t)p0 * Q + lo, plane + (size_t)(p0 - d->pad + r) * W + lo + off,
               len * sizeof *o);
        for (int p = p0; p < p1; p++) {
            float *restrict row = o + (size_t)p * Q;
            for (int q = 0; q < lo; q++)
                row[q] = 0.0f;
            for (int q = hi; q < Q; q++)
                row[q] = 0.0f;
        }
        return;
    }
    for (int p = 0; p < P; p++, o += Q) {
        int h = p * st - d->pad + r;
        if (h < 0 || h >= H || lo == hi) {
            memset(o, 0, (size_t)Q * sizeof *o);
            continue;
        }
        const float *restrict src = plane + (size_t)h * W;
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

/* Channel c of one sample of the adjoint of im2col: img(c, H, W) = the sum
 * of the col entries (rows (c, r, s), ldcol apart) that read each pixel.
 * Overwrites that channel; taps are added in (r, s) order. For a "same"
 * convolution (stride 1, Q == W) a tap's valid entries are the plane shifted
 * by a constant, so the tap is one long vector add; the entries that stand
 * for padding are zeroed in col first (col is scratch), so adding them in
 * the long run changes nothing. */
static void col2im_channel(float *restrict img, float *restrict col, size_t ldcol, int c,
                           const bl_conv_dims *d) {
    const int H = d->H, W = d->W, P = d->P, Q = d->Q, st = d->stride;
    float *restrict plane = img + (size_t)c * H * W;
    memset(plane, 0, (size_t)H * W * sizeof *plane);
    for (int r = 0; r < d->R; r++)
        for (int s = 0; s < d->S; s++) {
            float *restrict row = col + ((size_t)(c * d->R + r) * d->S + s) * ldcol;
            int lo, hi;
            conv_valid_q(s, d, &lo, &hi);
            const int off = s - d->pad;
            if (st == 1 && Q == W) {
                int p0 = d->pad - r > 0 ? d->pad - r : 0;
                int p1 = H + d->pad - r < P ? H + d->pad - r : P;
                if (p1 <= p0 || lo == hi) continue;
                for (int p = p0; p < p1; p++) {
                    float *restrict g = row + (size_t)p * Q;
                    for (int q = 0; q < lo; q++)
                        g[q] = 0.0f;
                    for (int q = hi; q < Q; q++)
                        g[q] = 0.0f;
                }
                size_t len = (size_t)(p1 - 1 - p0) * Q + (size_t)(hi - lo);
                float *restrict dst = plane + (size_t)(p0 - d->pad + r) * W + lo + off;
                const float *restrict g = row + (size_t)p0 * Q + lo;
                for (size_t i = 0; i < len; i++)
                    dst[i] += g[i];
                continue;
            }
            for (int p = 0; p < P; p++) {
                int h = p * st - d->pad + r;
                if (h < 0 || h >= H) continue;
                float *restrict dst = plane + (size_t)h * W;
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

/* ---- the parallel passes of one chunk of n samples ------------------------
 * Each item writes its own rows, so any split gives the same floats. */

typedef struct {
    bl_cpu_pool *pool; /* the loops' threads */
    const bl_conv_dims *d;
    float *col, *y, *out, *din, *db;
    float *dout;               /* written only by the fused backward (masked in place) */
    const float *in, *b, *act; /* act: forward output, for the ReLU mask */
    size_t ld, pq, kpq, chw;
    int b0, n, crs, relu;
} conv_arg;

/* items = n * crs: (sample j, row) of col(crs, ld) */
static void im2col_items(void *p, size_t lo, size_t hi) {
    const conv_arg *a = p;
    const bl_conv_dims *d = a->d;
    for (size_t t = lo; t < hi; t++) {
        int j = (int)(t / (size_t)a->crs), row = (int)(t % (size_t)a->crs);
        int c = row / (d->R * d->S), rs = row % (d->R * d->S);
        im2col_row(a->col + (size_t)row * a->ld + (size_t)j * a->pq,
                   a->in + (size_t)(a->b0 + j) * a->chw, c, rs / d->S, rs % d->S, d);
    }
}

static void im2col_chunk(conv_arg *a) {
    size_t items = (size_t)a->n * a->crs, per = a->pq ? 32768 / a->pq + 1 : 1;
    cpu_par_for(a->pool, items, 1, per, im2col_items, a);
}

static void bias_act_copy(float *restrict dst, const float *restrict src, float v, size_t n,
                          int relu) {
    if (relu) {
        for (size_t i = 0; i < n; i++) {
            float x = src[i] + v;
            dst[i] = x < 0.0f ? 0.0f : x;
        }
    } else {
        for (size_t i = 0; i < n; i++)
            dst[i] = src[i] + v;
    }
}

static void bias_act_inplace(float *restrict x, float v, size_t n, int relu) {
    if (relu) {
        for (size_t i = 0; i < n; i++) {
            float t = x[i] + v;
            x[i] = t < 0.0f ? 0.0f : t;
        }
    } else {
        for (size_t i = 0; i < n; i++)
            x[i] += v;
    }
}

/* items = n * K: out[b0+j][k] = relu?(y[k][j] + b[k]), or in place on out
 * when y is NULL (a chunk of one sample computed straight into out) */
static void scatter_items(void *p, size_t lo, size_t hi) {
    const conv_arg *a = p;
    const int K = a->d->K;
    for (size_t t = lo; t < hi; t++) {
        int j = (int)(t / (size_t)K), k = (int)(t % (size_t)K);
        float *dst = a->out + (size_t)(a->b0 + j) * a->kpq + (size_t)k * a->pq;
        const float *src = a->y ? a->y + (size_t)k * a->ld + (size_t)j * a->pq : dst;
        const float v = a->b ? a->b[k] : 0.0f;
        if (src != dst)
            bias_act_copy(dst, src, v, a->pq, a->relu);
        else
            bias_act_inplace(dst, v, a->pq, a->relu);
    }
}

static void scatter_chunk(conv_arg *a) {
    if (!a->y && !a->b && !a->relu) return;
    cpu_par_for(a->pool, (size_t)a->n * a->d->K, 1, 32768 / a->pq + 1, scatter_items, a);
}

/* items = n * K: y[k][j] = dout[b0+j][k] (times the ReLU mask), or the mask
 * applied to dout in place when y is NULL */
static void gather_items(void *p, size_t lo, size_t hi) {
    const conv_arg *a = p;
    const int K = a->d->K;
    for (size_t t = lo; t < hi; t++) {
        int j = (int)(t / (size_t)K), k = (int)(t % (size_t)K);
        size_t at = (size_t)(a->b0 + j) * a->kpq + (size_t)k * a->pq;
        float *restrict src = a->dout + at;
        const float *restrict m = a->act ? a->act + at : NULL;
        if (a->y) {
            float *restrict dst = a->y + (size_t)k * a->ld + (size_t)j * a->pq;
            if (m)
                for (size_t i = 0; i < a->pq; i++)
                    dst[i] = m[i] > 0.0f ? src[i] : 0.0f;
            else
                memcpy(dst, src, a->pq * sizeof *dst);
        } else if (m) {
            for (size_t i = 0; i < a->pq; i++)
                src[i] = m[i] > 0.0f ? src[i] : 0.0f;
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

/* items = K: db[k] += sum of row k of g(K, ld) (g = y, or dout for one sample) */
static void row_sum_items(void *p, size_t lo, size_t hi) {
    const conv_arg *a = p;
    const float *g = a->y ? a->y : a->dout + (size_t)a->b0 * a->kpq;
    for (size_t k = lo; k < hi; k++)
        a->db[k] += (float)sum_floats(g + k * a->ld, a->ld);
}

/* items = n * C: channel c of sample j of din from dcol (in col) */
static void col2im_items(void *p, size_t lo, size_t hi) {
    const conv_arg *a = p;
    const int C = a->d->C;
    for (size_t t = lo; t < hi; t++) {
        int j = (int)(t / (size_t)C), c = (int)(t % (size_t)C);
        col2im_channel(a->din + (size_t)(a->b0 + j) * a->chw, a->col + (size_t)j * a->pq, a->ld, c,
                       a->d);
    }
}

/* ---- forward and backward --------------------------------------------------- */

static void conv_forward(bl_cpu_pool *pool, float *out, const float *in, const float *w,
                         const float *b, float *ws, const bl_conv_dims *d, int relu) {
    const int B = d->B, K = d->K;
    const size_t pq = (size_t)d->P * d->Q, chw = (size_t)d->C * d->H * d->W;
    const int crs = d->C * d->R * d->S;
    if (B <= 0 || K <= 0 || pq == 0) return;
    if (cpu_winograd_applies(d)) {
        cpu_winograd_forward(pool, out, in, w, b, ws, d, relu);
        return;
    }
    conv_arg a = {.pool = pool,
                  .d = d,
                  .out = out,
                  .in = in,
                  .b = b,
                  .pq = pq,
                  .kpq = (size_t)K * pq,
                  .chw = chw,
                  .crs = crs,
                  .relu = relu};

    if (conv_is_pointwise(d)) { /* each sample's (C, H*W) input already is its col */
        for (int i = 0; i < B; i++) {
            cpu_gemm(0, 0, K, (int)pq, d->C, 1.0f, w, d->C, in + (size_t)i * chw, (int)pq, 0.0f,
                     out + (size_t)i * a.kpq, (int)pq);
        }
        a.n = B, a.ld = pq;
        scatter_chunk(&a);
        return;
    }

    const int nb = conv_chunk(d);
    a.col = ws;
    for (int b0 = 0; b0 < B; b0 += nb) {
        a.b0 = b0, a.n = B - b0 < nb ? B - b0 : nb;
        a.ld = (size_t)a.n * pq;
        im2col_chunk(&a);
        if (a.n == 1) { /* straight into out, then bias/ReLU in place */
            a.y = NULL;
            cpu_gemm(0, 0, K, (int)pq, crs, 1.0f, w, crs, a.col, (int)pq, 0.0f,
                     out + (size_t)b0 * a.kpq, (int)pq);
        } else {
            a.y = ws + (size_t)crs * nb * pq;
            cpu_gemm(0, 0, K, (int)a.ld, crs, 1.0f, w, crs, a.col, (int)a.ld, 0.0f, a.y, (int)a.ld);
        }
        scatter_chunk(&a);
    }
}

void cpu_conv2d_forward(bl_cpu_pool *pool, float *out, const float *in, const float *w,
                        const float *b, float *ws, const bl_conv_dims *d) {
    conv_forward(pool, out, in, w, b, ws, d, 0);
}

void cpu_conv2d_relu_forward(bl_cpu_pool *pool, float *out, const float *in, const float *w,
                             const float *b, float *ws, const bl_conv_dims *d) {
    conv_forward(pool, out, in, w, b, ws, d, 1);
}

/* act: the forward output when the layer is fused with a ReLU (dout is then
 * masked in place or while it is gathered), else NULL. */
static void conv_backward(bl_cpu_pool *pool, float *din, float *dw, float *db, float *dout,
                          const float *act, const float *in, const float *w, float *ws,
                          const bl_conv_dims *d) {
    const int B = d->B, K = d->K, C = d->C;
    const size_t pq = (size_t)d->P * d->Q, chw = (size_t)C * d->H * d->W;
    const int crs = C * d->R * d->S;
    if (B <= 0) return;
    if (K <= 0 || pq == 0) { /* no output: nothing flows back */
        if (din) memset(din, 0, (size_t)B * chw * sizeof *din);
        return;
    }
    if (cpu_winograd_applies(d)) { /* reads dout only */
        cpu_winograd_backward(pool, din, dw, db, dout, act, in, w, ws, d);
        return;
    }
    conv_arg a = {.pool = pool,
                  .d = d,
                  .din = din,
                  .db = db,
                  .in = in,
                  .dout = dout,
                  .act = act,
                  .pq = pq,
                  .kpq = (size_t)K * pq,
                  .chw = chw,
                  .crs = crs,
                  .relu = act != NULL};

    if (conv_is_pointwise(d)) {
        if (act) { /* mask all of dout in place first */
            a.n = B, a.ld = pq;
            cpu_par_for(pool, (size_t)B * K, 1, 32768 / pq + 1, gather_items, &a);
        }
        for (int i = 0; i < B; i++) {
            const float *g = dout + (size_t)i * a.kpq, *x = in + (size_t)i * chw;
            if (db) {
                a.b0 = i, a.ld = pq, a.y = NULL;
                row_sum_items(&a, 0, (size_t)K);
            }
            if (dw) cpu_gemm(0, 1, K, C, (int)pq, 1.0f, g, (int)pq, x, (int)pq, 1.0f, dw, C);
            if (din)
                cpu_gemm(1, 0, C, (int)pq, K, 1.0f, w, C, g, (int)pq, 0.0f, din + (size_t)i * chw,
                         (int)pq);
        }
        return;
    }

    const int nb = conv_chunk(d);
    a.col = ws;
    for (int b0 = 0; b0 < B; b0 += nb) {
        a.b0 = b0, a.n = B - b0 < nb ? B - b0 : nb;
        a.ld = (size_t)a.n * pq;
        const float *g;
        if (a.n == 1) {
            a.y = NULL;
            g = dout + (size_t)b0 * a.kpq;
            if (act) gather_items(&a, 0, (size_t)K); /* K * pq floats: one thread */
        } else {
            a.y = ws + (size_t)crs * nb * pq;
            g = a.y;
            cpu_par_for(pool, (size_t)a.n * K, 1, 32768 / pq + 1, gather_items, &a);
        }
        if (db) cpu_par_for(pool, (size_t)K, 1, 32768 / a.ld + 1, row_sum_items, &a);
        if (dw) {
            im2col_chunk(&a);
            cpu_gemm(0, 1, K, crs, (int)a.ld, 1.0f, g, (int)a.ld, a.col, (int)a.ld, 1.0f, dw, crs);
        }
        if (din) {
            cpu_gemm(1, 0, crs, (int)a.ld, K, 1.0f, w, crs, g, (int)a.ld, 0.0f, a.col, (int)a.ld);
            cpu_par_for(pool, (size_t)a.n * C, 1, 32768 / (chw / C ? chw / C : 1) + 1, col2im_items,
                        &a);
        }
    }
}

void cpu_conv2d_backward(bl_cpu_pool *pool, float *din, float *dw, float *db, const float *dout,
                         const float *in, const float *w, float *ws, const bl_conv_dims *d) {
    conv_backward(pool, din, dw, db, (float *)dout, NULL, in, w, ws, d); /* dout is only read */
}

void cpu_conv2d_relu_backward(bl_cpu_pool *pool, float *din, float *dw, float *db, float *dout,
                              const float *out, const float *in, const float *w, float *ws,
                              const bl_conv_dims *d) {
    conv_backward(pool, din, dw, db, dout, out, in, w, ws, d);
}
