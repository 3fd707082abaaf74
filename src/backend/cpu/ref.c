/* Naive double-precision references for the layers with weights: dense and
 * 2-D convolution. Direct loops straight from the definitions, so that they
 * are obviously right; see ref.h. The elementwise, pooling, normalisation
 * and loss references are in ref_elem.c. */
#include "backend/cpu/ref.h"

void ref_dense_forward(double *out, const double *in, const double *w, const double *b, int B,
                       int I, int O) {
    for (int n = 0; n < B; n++)
        for (int o = 0; o < O; o++) {
            double s = b ? b[o] : 0.0;
            for (int i = 0; i < I; i++)
                s += in[(size_t)n * I + i] * w[(size_t)o * I + i];
            out[(size_t)n * O + o] = s;
        }
}

void ref_dense_backward(double *din, double *dw, double *db, const double *dout, const double *in,
                        const double *w, int B, int I, int O) {
    for (int n = 0; n < B; n++) {
        if (din)
            for (int i = 0; i < I; i++) {
                double s = 0;
                for (int o = 0; o < O; o++)
                    s += dout[(size_t)n * O + o] * w[(size_t)o * I + i];
                din[(size_t)n * I + i] = s;
            }
        for (int o = 0; o < O; o++) {
            double g = dout[(size_t)n * O + o];
            if (db) db[o] += g;
            if (dw)
                for (int i = 0; i < I; i++)
                    dw[(size_t)o * I + i] += g * in[(size_t)n * I + i];
        }
    }
}

/* Index helpers for NCHW activations and KCRS weights. */
static size_t at4(int a, int b, int c, int d, int B_, int C_, int D_) {
    return (((size_t)a * B_ + b) * C_ + c) * D_ + d;
}

void ref_conv2d_forward(double *out, const double *in, const double *w, const double *b,
                        const bl_conv_dims *d) {
    for (int n = 0; n < d->B; n++)
        for (int k = 0; k < d->K; k++)
            for (int p = 0; p < d->P; p++)
                for (int q = 0; q < d->Q; q++) {
                    double s = b ? b[k] : 0.0;
                    for (int c = 0; c < d->C; c++)
                        for (int r = 0; r < d->R; r++)
                            for (int t = 0; t < d->S; t++) {
                                int h = p * d->stride - d->pad + r;
                                int x = q * d->stride - d->pad + t;
                                if (h < 0 || h >= d->H || x < 0 || x >= d->W) continue;
                                s += in[at4(n, c, h, x, d->C, d->H, d->W)] *
                                     w[at4(k, c, r, t, d->C, d->R, d->S)];
                            }
                    out[at4(n, k, p, q, d->K, d->P, d->Q)] = s;
                }
}

void ref_conv2d_backward(double *din, double *dw, double *db, const double *dout, const double *in,
                         const double *w, const bl_conv_dims *d) {
    if (din)
        for (size_t i = 0; i < (size_t)d->B * d->C * d->H * d->W; i++)
            din[i] = 0.0;
    for (int n = 0; n < d->B; n++)
        for (int k = 0; k < d->K; k++)
            for (int p = 0; p < d->P; p++)
                for (int q = 0; q < d->Q; q++) {
                    double g = dout[at4(n, k, p, q, d->K, d->P, d->Q)];
                    if (db) db[k] += g;
                    for (int c = 0; c < d->C; c++)
                        for (int r = 0; r < d->R; r++)
                            for (int t = 0; t < d->S; t++) {
                                int h = p * d->stride - d->pad + r;
                                int x = q * d->stride - d->pad + t;
                                if (h < 0 || h >= d->H || x < 0 || x >= d->W) continue;
                                size_t ii = at4(n, c, h, x, d->C, d->H, d->W);
                                size_t wi = at4(k, c, r, t, d->C, d->R, d->S);
                                if (dw) dw[wi] += g * in[ii];
                                if (din) din[ii] += g * w[wi];
                            }
                }
}

/* ---- fused with ReLU ------------------------------------------------------ */

static void relu_inplace(double *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        x[i] = x[i] > 0 ? x[i] : 0.0;
}

static void relu_mask(double *dz, const double *dout, const double *out, size_t n) {
    for (size_t i = 0; i < n; i++)
        dz[i] = out[i] > 0 ? dout[i] : 0.0;
}

void ref_dense_relu_forward(double *out, const double *in, const double *w, const double *b, int B,
                            int I, int O) {
    ref_dense_forward(out, in, w, b, B, I, O);
    relu_inplace(out, (size_t)B * O);
}

void ref_dense_relu_backward(double *din, double *dw, double *db, double *dz, const double *dout,
                             const double *out, const double *in, const double *w, int B, int I,
                             int O) {
    relu_mask(dz, dout, out, (size_t)B * O);
    ref_dense_backward(din, dw, db, dz, in, w, B, I, O);
}

void ref_conv2d_relu_forward(double *out, const double *in, const double *w, const double *b,
                             const bl_conv_dims *d) {
    ref_conv2d_forward(out, in, w, b, d);
    relu_inplace(out, (size_t)d->B * d->K * d->P * d->Q);
}

void ref_conv2d_relu_backward(double *din, double *dw, double *db, double *dz, const double *dout,
                              const double *out, const double *in, const double *w,
                              const bl_conv_dims *d) {
    relu_mask(dz, dout, out, (size_t)d->B * d->K * d->P * d->Q);
    ref_conv2d_backward(din, dw, db, dz, in, w, d);
}
