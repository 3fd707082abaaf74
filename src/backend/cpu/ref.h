/* Naive double-precision reference kernels: the definition of "correct" that
 * tests compare the fast float kernels against, and the functions the
 * finite-difference gradient checks differentiate.
 *
 * Same argument order and semantics as the bl_backend kernels in
 * include/batchlab/backend.h, with double buffers: forward overwrites its
 * outputs, backward overwrites din (NULL allowed) and ACCUMULATES into
 * dw/db (NULL allowed). Written for obviousness, not speed: convolution is a
 * direct 7-deep loop, with no im2col. Dropout takes its mask as an input.
 * Nothing here allocates. */
#ifndef BL_BACKEND_CPU_REF_H
#define BL_BACKEND_CPU_REF_H

#include <stddef.h>
#include <stdint.h>
#include "batchlab/backend.h"

/* out(B,O) = in(B,I) @ w(O,I)^T + b(O) */
void ref_dense_forward(double *out, const double *in, const double *w, const double *b, int B,
                       int I, int O);
void ref_dense_backward(double *din, double *dw, double *db, const double *dout, const double *in,
                        const double *w, int B, int I, int O);

/* out(B,K,P,Q) = conv(in(B,C,H,W), w(K,C,R,S)) + b(K) */
void ref_conv2d_forward(double *out, const double *in, const double *w, const double *b,
                        const bl_conv_dims *d);
void ref_conv2d_backward(double *din, double *dw, double *db, const double *dout, const double *in,
                         const double *w, const bl_conv_dims *d);

/* Fused layer + ReLU: out = relu(layer(in)); backward masks dout by (out > 0)
 * into dz (scratch of dout's size, so dout stays untouched) and runs the
 * layer's backward on it. Compositions of the references above. */
void ref_dense_relu_forward(double *out, const double *in, const double *w, const double *b, int B,
                            int I, int O);
void ref_dense_relu_backward(double *din, double *dw, double *db, double *dz, const double *dout,
                             const double *out, const double *in, const double *w, int B, int I,
                             int O);
void ref_conv2d_relu_forward(double *out, const double *in, const double *w, const double *b,
                             const bl_conv_dims *d);
void ref_conv2d_relu_backward(double *din, double *dw, double *db, double *dz, const double *dout,
                              const double *out, const double *in, const double *w,
                              const bl_conv_dims *d);

void ref_maxpool_forward(double *out, int32_t *argmax, const double *in, const bl_pool_dims *d);
void ref_maxpool_backward(double *din, const double *dout, const int32_t *argmax,
                          const bl_pool_dims *d);
void ref_avgpool_forward(double *out, const double *in, const bl_pool_dims *d);
void ref_avgpool_backward(double *din, const double *dout, const bl_pool_dims *d);

void ref_act_forward(double *out, const double *in, size_t n, bl_act act, double alpha);
void ref_act_backward(double *din, const double *dout, const double *in, const double *out,
                      size_t n, bl_act act, double alpha);

/* out = in * mask / (1-p), with the mask given. */
void ref_dropout_forward(double *out, const uint8_t *mask, const double *in, size_t n, double p);
void ref_dropout_backward(double *din, const double *dout, const uint8_t *mask, size_t n, double p);

void ref_batchnorm_forward_train(double *out, double *mean, double *rstd, double *run_mean,
                                 double *run_var, const double *in, const double *gamma,
                                 const double *beta, int B, int C, int HW, double momentum,
                                 double eps);
void ref_batchnorm_forward_eval(double *out, const double *in, const double *gamma,
                                const double *beta, const double *run_mean, const double *run_var,
                                int B, int C, int HW, double eps);
void ref_batchnorm_backward(double *din, double *dgamma, double *dbeta, const double *dout,
                            const double *in, const double *mean, const double *rstd,
                            const double *gamma, int B, int C, int HW);

/* Returns the SUM over the batch of -log softmax(logits)[label]. */
double ref_softmax_xent_forward(double *probs, int *correct, const double *logits,
                                const int32_t *labels, int B, int K);
void ref_softmax_xent_backward(double *dlogits, const double *probs, const int32_t *labels, int B,
                               int K, double scale);
/* Returns the SUM over the batch of mean_k (pred - target)^2. */
double ref_mse_forward(const double *pred, const double *target, int B, int K);
void ref_mse_backward(double *dpred, const double *pred, const double *target, int B, int K,
                      double scale);

#endif
