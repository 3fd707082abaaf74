/* Internal declarations of the CPU backend's kernels. Each group lives in its
 * own file (gemm.c, conv.c, pool.c, act.c, batchnorm.c, loss.c, flat.c,
 * update.c); backend_cpu.c gathers them into the bl_backend table. The
 * signatures and semantics are exactly those documented in
 * include/batchlab/backend.h, which is the contract; nothing here allocates,
 * prints or exits. */
#ifndef BL_BACKEND_CPU_H
#define BL_BACKEND_CPU_H

#include <stddef.h>
#include <stdint.h>
#include "batchlab/backend.h"

/* Before a loop whose pointers the compiler cannot prove apart but which
 * never overlap: vectorise without run-time alias checks (gcc and clang
 * spell it differently; -Werror rejects the other's pragma). */
#if defined(__clang__)
#define CPU_IVDEP _Pragma("clang loop vectorize(assume_safety)")
#else
#define CPU_IVDEP _Pragma("GCC ivdep")
#endif

/* par.c: the fork-join pool for non-BLAS work (bl_cpu_pool, backend.h).
 * fn(arg, lo, hi) handles items [lo, hi); slices are contiguous, in order,
 * cut on multiples of grain, and at least min_per_part items each (fewer
 * parts otherwise; 1 part = a plain call on this thread, as is a NULL pool
 * or a pool that another thread is using). Every kernel below takes the
 * pool its loops run on first (backend.h's convention), also those that
 * have no parallel loop yet. */
typedef void (*cpu_par_fn)(void *arg, size_t lo, size_t hi);
void cpu_par_for(bl_cpu_pool *pool, size_t n, size_t grain, size_t min_per_part, cpu_par_fn fn,
                 void *arg);

/* gemm.c: the sgemm wrapper and the dense layer. */
void cpu_gemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
              const float *Bm, int ldb, float beta, float *C, int ldc);
void cpu_dense_forward(bl_cpu_pool *pool, float *out, const float *in, const float *w,
                       const float *b, int B, int I, int O);
void cpu_dense_backward(bl_cpu_pool *pool, float *din, float *dw, float *db, const float *dout,
                        const float *in, const float *w, int B, int I, int O);
/* Estimated bytes OpenBLAS touches in its own buffers for a row-major
 * sgemm (M,N,K), and the largest over a dense layer's training GEMMs. */
size_t cpu_gemm_blas_bytes(size_t M, size_t N, size_t K);
size_t cpu_dense_blas_bytes(int B, int I, int O);
/* skinny.c: dense products for small B (2 .. the limits below) without sgemm's packing.
 * forward: out(B,O) = in(B,I) w(O,I)^T; din(B,I) = g(B,O) w(O,I) (overwrite);
 * dw(O,I) += g^T in. cpu_gemm_note reports each product's shape (weak, empty). */
#define SKINNY_MAX_B 8 /* forward and input gradient */
/* Weight gradient: above this, sgemm's is faster (measured per ISA level;
 * cpu.h is read by the per-level builds of gemm.c and skinny.c). */
#if defined(__AVX512F__)
#define SKINNY_DW_MAX_B 4
#else
#define SKINNY_DW_MAX_B 8
#endif
void cpu_skinny_forward(bl_cpu_pool *pool, float *out, const float *in, const float *w, int B,
                        int I, int O);
void cpu_skinny_din(bl_cpu_pool *pool, float *din, const float *g, const float *w, int B, int I,
                    int O);
void cpu_skinny_dw(bl_cpu_pool *pool, float *dw, const float *g, const float *in, int B, int I,
                   int O);
void cpu_gemm_note(int trans_a, int trans_b, int M, int N, int K);
void cpu_dense_relu_forward(bl_cpu_pool *pool, float *out, const float *in, const float *w,
                            const float *b, int B, int I, int O);
void cpu_dense_relu_backward(bl_cpu_pool *pool, float *din, float *dw, float *db, float *dout,
                             const float *out, const float *in, const float *w, int B, int I,
                             int O);

/* conv.c: im2col + sgemm convolution. */
size_t cpu_conv2d_workspace_floats(const bl_conv_dims *d);
size_t cpu_conv2d_blas_bytes(const bl_conv_dims *d);
void cpu_conv2d_forward(bl_cpu_pool *pool, float *out, const float *in, const float *w,
                        const float *b, float *ws, const bl_conv_dims *d);
void cpu_conv2d_backward(bl_cpu_pool *pool, float *din, float *dw, float *db, const float *dout,
                         const float *in, const float *w, float *ws, const bl_conv_dims *d);
void cpu_conv2d_relu_forward(bl_cpu_pool *pool, float *out, const float *in, const float *w,
                             const float *b, float *ws, const bl_conv_dims *d);
void cpu_conv2d_relu_backward(bl_cpu_pool *pool, float *din, float *dw, float *db, float *dout,
                              const float *out, const float *in, const float *w, float *ws,
                              const bl_conv_dims *d);

/* winograd.c: F(2x2, 3x3) for 3x3 stride-1 layers with enough channels;
 * conv.c dispatches there when cpu_winograd_applies(d). */
int cpu_winograd_applies(const bl_conv_dims *d);
size_t cpu_winograd_workspace_floats(const bl_conv_dims *d);
size_t cpu_winograd_blas_bytes(const bl_conv_dims *d);
void cpu_winograd_forward(bl_cpu_pool *pool, float *out, const float *in, const float *w,
                          const float *b, float *ws, const bl_conv_dims *d, int relu);
void cpu_winograd_backward(bl_cpu_pool *pool, float *din, float *dw, float *db, const float *dout,
                           const float *act, const float *in, const float *w, float *ws,
                           const bl_conv_dims *d);

/* pool.c */
void cpu_maxpool_forward(bl_cpu_pool *pool, float *out, int32_t *argmax, const float *in,
                         const bl_pool_dims *d);
void cpu_maxpool_backward(bl_cpu_pool *pool, float *din, const float *dout, const int32_t *argmax,
                          const bl_pool_dims *d);
void cpu_avgpool_forward(bl_cpu_pool *pool, float *out, const float *in, const bl_pool_dims *d);
void cpu_avgpool_backward(bl_cpu_pool *pool, float *din, const float *dout, const bl_pool_dims *d);

/* act.c: activations and dropout. */
void cpu_act_forward(bl_cpu_pool *pool, float *out, const float *in, size_t n, bl_act act,
                     float alpha);
void cpu_act_backward(bl_cpu_pool *pool, float *din, const float *dout, const float *in,
                      const float *out, size_t n, bl_act act, float alpha);
void cpu_dropout_forward(bl_cpu_pool *pool, float *out, uint8_t *mask, const float *in, size_t n,
                         float p, const bl_dropout_key *key);
void cpu_dropout_backward(bl_cpu_pool *pool, float *din, const float *dout, const uint8_t *mask,
                          size_t n, float p);

/* batchnorm.c */
void cpu_batchnorm_forward_train(bl_cpu_pool *pool, float *out, float *mean, float *rstd,
                                 float *run_mean, float *run_var, const float *in,
                                 const float *gamma, const float *beta, int B, int C, int HW,
                                 float momentum, float eps);
void cpu_batchnorm_forward_eval(bl_cpu_pool *pool, float *out, const float *in, const float *gamma,
                                const float *beta, const float *run_mean, const float *run_var,
                                int B, int C, int HW, float eps);
void cpu_batchnorm_backward(bl_cpu_pool *pool, float *din, float *dgamma, float *dbeta,
                            const float *dout, const float *in, const float *mean,
                            const float *rstd, const float *gamma, int B, int C, int HW);

/* loss.c */
double cpu_softmax_xent_forward(bl_cpu_pool *pool, float *probs, int *correct, const float *logits,
                                const int32_t *labels, int B, int K);
void cpu_softmax_xent_backward(bl_cpu_pool *pool, float *dlogits, const float *probs,
                               const int32_t *labels, int B, int K, float scale);
double cpu_mse_forward(bl_cpu_pool *pool, const float *pred, const float *target, int B, int K);
void cpu_mse_backward(bl_cpu_pool *pool, float *dpred, const float *pred, const float *target,
                      int B, int K, float scale);

/* flat.c: helpers over the flat arenas. */
double cpu_sumsq(bl_cpu_pool *pool, const float *x, size_t n);
void cpu_scale(bl_cpu_pool *pool, float *x, size_t n, float a);
void cpu_axpy(bl_cpu_pool *pool, float *y, const float *x, size_t n, float a);
void cpu_fill(bl_cpu_pool *pool, float *x, size_t n, float v);
void cpu_copy(bl_cpu_pool *pool, float *dst, const float *src, size_t n);
int cpu_all_finite(bl_cpu_pool *pool, const float *x, size_t n);

/* update.c (optimizer steps, torch.optim semantics). */
void cpu_sgd_step(bl_cpu_pool *pool, float *p, float *buf, const float *g, size_t n, float lr,
                  float momentum, int nesterov, float weight_decay, int first_step);
void cpu_adam_step(bl_cpu_pool *pool, float *p, float *m, float *v, const float *g, size_t n,
                   float lr, float beta1, float beta2, float eps, float weight_decay, int decoupled,
                   long t);

#endif
