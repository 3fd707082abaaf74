/* The CUDA backend's own kernels (cuda_kernels.cu), as C launchers. cuBLAS
 * does the dense layers' GEMMs and cuDNN the convolutions (cuda_backend.c);
 * everything else runs here. Each launcher enqueues its work on stream s and
 * returns cudaGetLastError() after the launch: it never synchronises, so a
 * captured step (CUDA graph) may contain any of them. n == 0 (or B == 0) is a
 * no-op that returns cudaSuccess.
 *
 * Every float / int32 / uint8 array is device memory. The semantics are those
 * of the bl_kernels entry of the same name (batchlab/backend.h), which the
 * tests check against the CPU backend's double-precision references.
 * Results that are scalars (loss sums, hit counts, norms, flags) are written
 * to DEVICE scalars, which the backend reads back; sums are reduced in double,
 * in an order fixed by the launch configuration (the same on every run), so
 * no atomics decide an order. Those launchers take `scratch`: device memory of
 * BLK_SCRATCH_DOUBLES doubles that the backend owns, one per stream (two
 * contexts never share it), for their partial sums. */
#ifndef BL_BACKEND_CUDA_KERNELS_H
#define BL_BACKEND_CUDA_KERNELS_H

#include <cuda_runtime_api.h>
#include <stddef.h>
#include <stdint.h>
#include "batchlab/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

#define BLK_SCRATCH_DOUBLES 4096

/* ---- around the GEMMs ------------------------------------------------- */
/* out(rows, cols) = act(out + b) row by row; b (cols) may be NULL; relu: max(0, .). */
cudaError_t blk_bias_act_rows(cudaStream_t s, float *out, const float *b, int rows, int cols,
                              int relu);
/* NCHW: out(B, K, PQ) = act(out + b[k]); b may be NULL. */
cudaError_t blk_bias_act_channels(cudaStream_t s, float *out, const float *b, int B, int K, int PQ,
                                  int relu);
/* g(n) = out > 0 ? g : 0, in place (the ReLU fused after a dense or conv layer). */
cudaError_t blk_relu_mask(cudaStream_t s, float *g, const float *out, size_t n);
/* db(cols) += sum over rows of g(rows, cols). */
cudaError_t blk_bias_grad_rows(cudaStream_t s, float *db, const float *g, int rows, int cols);
/* db(K) += sum over b, pq of g(B, K, PQ). */
cudaError_t blk_bias_grad_channels(cudaStream_t s, float *db, const float *g, int B, int K, int PQ);

/* ---- pooling, activations, dropout ------------------------------------ */
cudaError_t blk_maxpool_forward(cudaStream_t s, float *out, int32_t *argmax, const float *in,
                                const bl_pool_dims *d);
/* din overwritten (zeroed, then each dout added at its argmax). */
cudaError_t blk_maxpool_backward(cudaStream_t s, float *din, const float *dout,
                                 const int32_t *argmax, const bl_pool_dims *d);
cudaError_t blk_avgpool_forward(cudaStream_t s, float *out, const float *in, const bl_pool_dims *d);
cudaError_t blk_avgpool_backward(cudaStream_t s, float *din, const float *dout,
                                 const bl_pool_dims *d);
cudaError_t blk_act_forward(cudaStream_t s, float *out, const float *in, size_t n, bl_act act,
                            float alpha);
cudaError_t blk_act_backward(cudaStream_t s, float *din, const float *dout, const float *in,
                             const float *out, size_t n, bl_act act, float alpha);
/* The mask is src/backend/dropout_mask.h's, element for element. */
cudaError_t blk_dropout_forward(cudaStream_t s, float *out, uint8_t *mask, const float *in,
                                size_t n, float p, const bl_dropout_key *key);
cudaError_t blk_dropout_backward(cudaStream_t s, float *din, const float *dout, const uint8_t *mask,
                                 size_t n, float p);

/* ---- batch norm ------------------------------------------------------- */
cudaError_t blk_batchnorm_forward_train(cudaStream_t s, float *out, float *mean, float *rstd,
                                        float *run_mean, float *run_var, const float *in,
                                        const float *gamma, const float *beta, int B, int C, int HW,
                                        float momentum, float eps);
cudaError_t blk_batchnorm_forward_eval(cudaStream_t s, float *out, const float *in,
                                       const float *gamma, const float *beta, const float *run_mean,
                                       const float *run_var, int B, int C, int HW, float eps);
cudaError_t blk_batchnorm_backward(cudaStream_t s, float *din, float *dgamma, float *dbeta,
                                   const float *dout, const float *in, const float *mean,
                                   const float *rstd, const float *gamma, int B, int C, int HW);

/* ---- losses ----------------------------------------------------------- */
/* probs = softmax(logits) row by row; *loss_sum (device) = sum of -log p[label]
 * (NaN when a label is outside [0, K)); *correct (device) = argmax hits (first
 * maximum wins ties). Both are overwritten. */
cudaError_t blk_softmax_xent_forward(cudaStream_t s, double *scratch, double *loss_sum,
                                     int *correct, float *probs, const float *logits,
                                     const int32_t *labels, int B, int K);
cudaError_t blk_softmax_xent_backward(cudaStream_t s, float *dlogits, const float *probs,
                                      const int32_t *labels, int B, int K, float scale);
/* target = onehot(labels) (a label outside [0, K) gives a zero row);
 * *loss_sum = sum over rows of mean_k (pred - target)^2; *correct = argmax hits.
 * Both device scalars are overwritten. */
cudaError_t blk_mse_forward(cudaStream_t s, double *scratch, double *loss_sum, int *correct,
                            float *target, const float *pred, const int32_t *labels, int B, int K);
cudaError_t blk_mse_backward(cudaStream_t s, float *dpred, const float *pred, const float *target,
                             int B, int K, float scale);

/* ---- reductions and flat arrays ---------------------------------------- */
/* *sum (device) = sum over rows r of |dz_r|^2 (|x_r|^2 + bias). Overwritten. */
cudaError_t blk_per_example_sumsq(cudaStream_t s, double *scratch, double *sum, const float *dz,
                                  const float *x, int B, int in_dim, int out_dim, int bias);
/* *out (device) = sum of x^2, in double. Overwritten. */
cudaError_t blk_sumsq(cudaStream_t s, double *scratch, double *out, const float *x, size_t n);
/* *out (device) = 1 when no element is NaN or Inf, else 0. Overwritten. */
cudaError_t blk_all_finite(cudaStream_t s, double *scratch, int *out, const float *x, size_t n);
cudaError_t blk_scale(cudaStream_t s, float *x, size_t n, float a);
cudaError_t blk_axpy(cudaStream_t s, float *y, const float *x, size_t n, float a);
cudaError_t blk_fill(cudaStream_t s, float *x, size_t n, float v);
cudaError_t blk_sgd_step(cudaStream_t s, float *p, float *buf, const float *g, size_t n, float lr,
                         float momentum, int nesterov, float weight_decay, int first_step);
cudaError_t blk_adam_step(cudaStream_t s, float *p, float *m, float *v, const float *g, size_t n,
                          float lr, float beta1, float beta2, float eps, float weight_decay,
                          int decoupled, long t);

#ifdef __cplusplus
}
#endif

#endif
