/* Naive double-precision references for pooling, activations, dropout,
 * batch norm and the losses, written straight from the definitions (see
 * ref.h). The batch-norm backward is the textbook formula, and the loss
 * references use log-sum-exp in double. */
#include <math.h>
#include "backend/cpu/ref.h"

void ref_maxpool_forward(double *out, int32_t *argmax, const double *in, const bl_pool_dims *d) {
    for (int n = 0; n < d->B * d->C; n++) {
        const double *x = in + (size_t)n * d->H * d->W;
        for (int p = 0; p < d->P; p++)
            for (int q = 0; q < d->Q; q++) {
                int best = -1;
                for (int i = 0; i < d->k; i++)
                    for (int j = 0; j < d->k; j++) {
                        int idx = (p * d->stride + i) * d->W + q * d->stride + j;
                        if (best < 0 || x[idx] > x[best]) best = idx;
                    }
                size_t o = (size_t)n * d->P * d->Q + (size_t)p * d->Q + q;
                out[o] = x[best];
                argmax[o] = best;
            }
    }
}

void ref_maxpool_backward(double *din, const double *dout, const int32_t *argmax,
                          const bl_pool_dims *d) {
    for (size_t i = 0; i < (size_t)d->B * d->C * d->H * d->W; i++)
        din[i] = 0.0;
    for (int n = 0; n < d->B * d->C; n++)
        for (int i = 0; i < d->P * d->Q; i++) {
            size_t o = (size_t)n * d->P * d->Q + i;
            din[(size_t)n * d->H * d->W + argmax[o]] += dout[o];
        }
}

void ref_avgpool_forward(double *out, const double *in, const bl_pool_dims *d) {
    for (int n = 0; n < d->B * d->C; n++)
        for (int p = 0; p < d->P; p++)
            for (int q = 0; q < d->Q; q++) {
                double s = 0;
                for (int i = 0; i < d->k; i++)
                    for (int j = 0; j < d->k; j++)
                        s += in[(size_t)n * d->H * d->W + (size_t)(p * d->stride + i) * d->W +
                                q * d->stride + j];
                out[(size_t)n * d->P * d->Q + (size_t)p * d->Q + q] = s / (d->k * d->k);
            }
}

void ref_avgpool_backward(double *din, const double *dout, const bl_pool_dims *d) {
    for (size_t i = 0; i < (size_t)d->B * d->C * d->H * d->W; i++)
        din[i] = 0.0;
    for (int n = 0; n < d->B * d->C; n++)
        for (int p = 0; p < d->P; p++)
            for (int q = 0; q < d->Q; q++) {
                double g = dout[(size_t)n * d->P * d->Q + (size_t)p * d->Q + q] / (d->k * d->k);
                for (int i = 0; i < d->k; i++)
                    for (int j = 0; j < d->k; j++)
                        din[(size_t)n * d->H * d->W + (size_t)(p * d->stride + i) * d->W +
                            q * d->stride + j] += g;
            }
}

static double ref_act1(double x, bl_act act, double alpha) {
    switch (act) {
    case BL_ACT_RELU:
        return x > 0 ? x : 0.0;
    case BL_ACT_LEAKY_RELU:
        return x > 0 ? x : alpha * x;
    case BL_ACT_TANH:
        return tanh(x);
    case BL_ACT_SIGMOID:
        return 1.0 / (1.0 + exp(-x));
    case BL_ACT_GELU:
        return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
    }
    return NAN;
}

static double ref_act_deriv(double x, bl_act act, double alpha) {
    switch (act) {
    case BL_ACT_RELU:
        return x > 0 ? 1.0 : 0.0;
    case BL_ACT_LEAKY_RELU:
        return x > 0 ? 1.0 : alpha;
    case BL_ACT_TANH:
        return 1.0 - tanh(x) * tanh(x);
    case BL_ACT_SIGMOID: {
        double s = 1.0 / (1.0 + exp(-x));
        return s * (1.0 - s);
    }
    case BL_ACT_GELU:
        return 0.5 * (1.0 + erf(x / sqrt(2.0))) + x * exp(-0.5 * x * x) / sqrt(2.0 * M_PI);
    }
    return NAN;
}

void ref_act_forward(double *out, const double *in, size_t n, bl_act act, double alpha) {
    for (size_t i = 0; i < n; i++)
        out[i] = ref_act1(in[i], act, alpha);
}

/* The reference derives f' from the input alone (out is accepted for the
 * same signature but not trusted), so it also checks the fast kernels' use
 * of out. */
void ref_act_backward(double *din, const double *dout, const double *in, const double *out,
                      size_t n, bl_act act, double alpha) {
    (void)out;
    for (size_t i = 0; i < n; i++)
        din[i] = dout[i] * ref_act_deriv(in[i], act, alpha);
}

void ref_dropout_forward(double *out, const uint8_t *mask, const double *in, size_t n, double p) {
    for (size_t i = 0; i < n; i++)
        out[i] = mask[i] ? in[i] / (1.0 - p) : 0.0;
}

void ref_dropout_backward(double *din, const double *dout, const uint8_t *mask, size_t n,
                          double p) {
    for (size_t i = 0; i < n; i++)
        din[i] = mask[i] ? dout[i] / (1.0 - p) : 0.0;
}

static size_t bn_at(int b, int c, int i, int C, int HW) {
    return ((size_t)b * C + c) * HW + i;
}

void ref_batchnorm_forward_train(double *out, double *mean, double *rstd, double *run_mean,
                                 double *run_var, const double *in, const double *gamma,
                                 const double *beta, int B, int C, int HW, double momentum,
                                 double eps) {
    const double n = (double)B * HW;
    for (int c = 0; c < C; c++) {
        double s = 0, v = 0;
        for (int b = 0; b < B; b++)
            for (int i = 0; i < HW; i++)
                s += in[bn_at(b, c, i, C, HW)];
        double m = s / n;
        for (int b = 0; b < B; b++)
            for (int i = 0; i < HW; i++) {
                double t = in[bn_at(b, c, i, C, HW)] - m;
                v += t * t;
            }
        double var = v / n, rs = 1.0 / sqrt(var + eps);
        mean[c] = m;
        rstd[c] = rs;
        if (run_mean) run_mean[c] = (1 - momentum) * run_mean[c] + momentum * m;
        if (run_var)
            run_var[c] = (1 - momentum) * run_var[c] + momentum * (n > 1 ? v / (n - 1) : var);
        double g = gamma ? gamma[c] : 1.0, bt = beta ? beta[c] : 0.0;
        for (int b = 0; b < B; b++)
            for (int i = 0; i < HW; i++) {
                size_t j = bn_at(b, c, i, C, HW);
                out[j] = (in[j] - m) * rs * g + bt;
            }
    }
}

void ref_batchnorm_forward_eval(double *out, const double *in, const double *gamma,
                                const double *beta, const double *run_mean, const double *run_var,
                                int B, int C, int HW, double eps) {
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++)
            for (int i = 0; i < HW; i++) {
                size_t j = bn_at(b, c, i, C, HW);
                double g = gamma ? gamma[c] : 1.0, bt = beta ? beta[c] : 0.0;
                out[j] = (in[j] - run_mean[c]) / sqrt(run_var[c] + eps) * g + bt;
            }
}

void ref_batchnorm_backward(double *din, double *dgamma, double *dbeta, const double *dout,
                            const double *in, const double *mean, const double *rstd,
                            const double *gamma, int B, int C, int HW) {
    const double n = (double)B * HW;
    for (int c = 0; c < C; c++) {
        double sdy = 0, sdyx = 0;
        for (int b = 0; b < B; b++)
            for (int i = 0; i < HW; i++) {
                size_t j = bn_at(b, c, i, C, HW);
                sdy += dout[j];
                sdyx += dout[j] * (in[j] - mean[c]) * rstd[c];
            }
        if (dbeta) dbeta[c] += sdy;
        if (dgamma) dgamma[c] += sdyx;
        if (!din) continue;
        double g = gamma ? gamma[c] : 1.0;
        for (int b = 0; b < B; b++)
            for (int i = 0; i < HW; i++) {
                size_t j = bn_at(b, c, i, C, HW);
                double xhat = (in[j] - mean[c]) * rstd[c];
                din[j] = g * rstd[c] * (dout[j] - sdy / n - xhat * sdyx / n);
            }
    }
}

double ref_softmax_xent_forward(double *probs, int *correct, const double *logits,
                                const int32_t *labels, int B, int K) {
    double total = 0;
    for (int b = 0; b < B; b++) {
        const double *x = logits + (size_t)b * K;
        int am = 0;
        for (int k = 1; k < K; k++)
            if (x[k] > x[am]) am = k;
        double s = 0;
        for (int k = 0; k < K; k++)
            s += exp(x[k] - x[am]);
        double lse = x[am] + log(s);
        for (int k = 0; k < K; k++)
            probs[(size_t)b * K + k] = exp(x[k] - lse);
        total += lse - x[labels[b]];
        if (correct && am == labels[b]) (*correct)++;
    }
    return total;
}

void ref_softmax_xent_backward(double *dlogits, const double *probs, const int32_t *labels, int B,
                               int K, double scale) {
    for (int b = 0; b < B; b++)
        for (int k = 0; k < K; k++) {
            size_t j = (size_t)b * K + k;
            dlogits[j] = scale * (probs[j] - (k == labels[b] ? 1.0 : 0.0));
        }
}

double ref_mse_forward(const double *pred, const double *target, int B, int K) {
    double total = 0;
    for (int b = 0; b < B; b++) {
        double s = 0;
        for (int k = 0; k < K; k++) {
            double t = pred[(size_t)b * K + k] - target[(size_t)b * K + k];
            s += t * t;
        }
        total += s / K;
    }
    return total;
}

void ref_mse_backward(double *dpred, const double *pred, const double *target, int B, int K,
                      double scale) {
    for (size_t i = 0; i < (size_t)B * K; i++)
        dpred[i] = scale * 2.0 * (pred[i] - target[i]) / K;
}
