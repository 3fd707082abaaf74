/* The backend seam. Layers never call BLAS or loops directly, and host code
 * never reads or writes the memory a model trains in: both go through a
 * bl_backend, an object with its own context, its own memory (alloc/free,
 * upload/download/copy, synchronize) and kernels that return a status. A
 * pointer from a backend's alloc is a backend pointer: only the backend's
 * calls may dereference it (on a GPU it is device memory), unless the backend
 * says its memory is host memory (host_visible), as the CPU backend's is.
 *
 * Backends: "cpu" (OpenBLAS sgemm + im2col, the bl_kernels table below at the
 * ISA level in use) and "opaque", the CPU kernels over memory that is
 * mprotect()ed except while one of its own calls runs, so host code that
 * reaches past the seam faults at once (a test backend: it proves that a
 * device whose memory the host cannot see would work).
 *
 * The bl_kernels table is the CPU backend's inside: host pointers, no status,
 * one table per ISA level. Its conventions are the backend's:
 *
 * Conventions (llm.c style):
 *   - outputs first, then inputs, then dims; row-major, NCHW activations;
 *   - forward kernels overwrite their outputs;
 *   - backward kernels OVERWRITE the input gradient (din, may be NULL when
 *     not needed) and ACCUMULATE (+=) into parameter gradients (dw, db),
 *     which is what gradient accumulation relies on;
 *   - weights follow PyTorch layouts: dense w is (O, I), conv w is (K, C, R, S),
 *     so checkpoints and golden dumps map one to one;
 *   - dense dims are named in_dim (I) and out_dim (O) here: I itself is a macro
 *     once <complex.h> is included (OpenBLAS's cblas.h includes it);
 *   - every kernel that reads or writes arrays takes the thread pool its
 *     parallel loops run on as its FIRST argument, before the outputs (the
 *     size queries, which touch no memory, do not). The caller owns the pool,
 *     normally its context's (bl_ctx_init creates it: ctx->be->pool); NULL
 *     runs the kernel on the calling thread. Results do not depend on the
 *     pool or its thread count: they are bit-identical to a NULL pool's.
 *     The table stays static and shared: a kernel keeps no state between
 *     calls, so nothing ties a table to a context. */
#ifndef BATCHLAB_BACKEND_H
#define BATCHLAB_BACKEND_H

#include <stddef.h>
#include <stdint.h>
#include "batchlab/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum bl_act {
    BL_ACT_RELU,
    BL_ACT_LEAKY_RELU, /* alpha = negative slope */
    BL_ACT_TANH,
    BL_ACT_SIGMOID,
    BL_ACT_GELU, /* exact erf form, as torch.nn.GELU() */
} bl_act;

typedef struct bl_conv_dims {
    int B, C, H, W; /* input (B, C, H, W) */
    int K, R, S;    /* K output channels, R x S kernel */
    int stride, pad;
    int P, Q; /* output height, width: (H + 2 pad - R) / stride + 1, likewise Q */
} bl_conv_dims;

typedef struct bl_pool_dims {
    int B, C, H, W; /* input */
    int k, stride;  /* square window, no padding */
    int P, Q;       /* output: (H - k) / stride + 1 */
} bl_pool_dims;

/* Where a dropout mask lies in its counter-based stream (Philox4x32-10, keyed by
 * seed): element i of a call is element first + i of the stream of (step, layer).
 * The trainer keys by the update count and the sample's position in the update's
 * batch, so micro-batching and ranks do not change the mask. */
typedef struct bl_dropout_key {
    uint64_t seed;  /* the run's seed: the Philox key */
    uint64_t step;  /* optimizer update count (counter word 2 holds its low 32 bits) */
    uint32_t layer; /* layer index (counter word 3) */
    uint64_t first; /* stream index of element 0 (counter words 0-1: index / 4) */
} bl_dropout_key;

/* ---- the CPU kernels' thread pool --------------------------------------
 * A fork-join pool for the CPU kernels' own parallel loops (the passes
 * between BLAS calls): contiguous slices in index order, so results do not
 * depend on the thread count. Each context owns one (bl_ctx_init creates it
 * with the context's threads, bl_ctx_free frees it), so two contexts in one
 * process have their own workers and thread counts. One region at a time
 * per pool: a caller that finds its pool busy runs serially rather than
 * waiting. Workers start on the first parallel loop and block all signals;
 * a forked child starts its own. OpenBLAS's threads are separate and
 * process-wide (see bl_ctx_init). */
typedef struct bl_cpu_pool bl_cpu_pool;
/* A pool of threads (the calling thread included; clamped to 1..64) in *out,
 * which the caller frees with bl_cpu_pool_free. No thread starts yet.
 * BL_ERR_NOMEM (and *out = NULL) when memory is short. */
bl_status bl_cpu_pool_create(bl_cpu_pool **out, int threads, bl_error *err);
/* Stops and joins the pool's workers and frees it; NULL is fine. No loop may
 * be running on the pool. */
void bl_cpu_pool_free(bl_cpu_pool *pool);
/* Threads for the pool's next loops, the caller included (clamped to 1..64);
 * NULL is ignored. Safe while another thread runs a loop on the pool. */
void bl_cpu_pool_set_threads(bl_cpu_pool *pool, int threads);
/* The pool's thread count; 1 for NULL. */
int bl_cpu_pool_threads(const bl_cpu_pool *pool);

/* The CPU kernels of one ISA level, over host memory. */
typedef struct bl_kernels {
    const char *name;

    /* C(M,N) = alpha * op(A) * op(B) + beta * C; row-major; op(X) = X or X^T. */
    void (*gemm)(bl_cpu_pool *pool, int trans_a, int trans_b, int M, int N, int K, float alpha,
                 const float *A, int lda, const float *Bm, int ldb, float beta, float *C, int ldc);

    /* out(B,O) = in(B,I) @ w(O,I)^T + b(O).  b may be NULL. */
    void (*dense_forward)(bl_cpu_pool *pool, float *out, const float *in, const float *w,
                          const float *b, int B, int in_dim, int out_dim);
    /* din(B,I) = dout @ w; dw(O,I) += dout^T @ in; db(O) += sum_b dout. din/db may be NULL. */
    void (*dense_backward)(bl_cpu_pool *pool, float *din, float *dw, float *db, const float *dout,
                           const float *in, const float *w, int B, int in_dim, int out_dim);

    /* Floats of scratch that conv2d_forward/backward need for dims d. */
    size_t (*conv2d_workspace_floats)(const bl_conv_dims *d);
    /* out(B,K,P,Q) = conv(in(B,C,H,W), w(K,C,R,S)) + b(K). b may be NULL. */
    void (*conv2d_forward)(bl_cpu_pool *pool, float *out, const float *in, const float *w,
                           const float *b, float *ws, const bl_conv_dims *d);
    /* din overwritten (may be NULL); dw, db accumulated (db may be NULL). */
    void (*conv2d_backward)(bl_cpu_pool *pool, float *din, float *dw, float *db, const float *dout,
                            const float *in, const float *w, float *ws, const bl_conv_dims *d);

    /* argmax(B,C,P,Q) holds the flat index h*W+w of the max within its (b,c) plane. */
    void (*maxpool_forward)(bl_cpu_pool *pool, float *out, int32_t *argmax, const float *in,
                            const bl_pool_dims *d);
    void (*maxpool_backward)(bl_cpu_pool *pool, float *din, const float *dout,
                             const int32_t *argmax, const bl_pool_dims *d);
    void (*avgpool_forward)(bl_cpu_pool *pool, float *out, const float *in, const bl_pool_dims *d);
    void (*avgpool_backward)(bl_cpu_pool *pool, float *din, const float *dout,
                             const bl_pool_dims *d);

    /* Elementwise activation over n floats. */
    void (*act_forward)(bl_cpu_pool *pool, float *out, const float *in, size_t n, bl_act act,
                        float alpha);
    /* din = dout * f'(in); out = f(in) is passed so tanh/sigmoid need not recompute. */
    void (*act_backward)(bl_cpu_pool *pool, float *din, const float *dout, const float *in,
                         const float *out, size_t n, bl_act act, float alpha);

    /* Inverted dropout: mask[i] = keep (prob 1-p), out = in * mask / (1-p). The mask
     * is a pure function of key and element index (src/backend/dropout_mask.h), not of a
     * stream position, so any thread count and any backend draw the same one. */
    void (*dropout_forward)(bl_cpu_pool *pool, float *out, uint8_t *mask, const float *in, size_t n,
                            float p, const bl_dropout_key *key);
    void (*dropout_backward)(bl_cpu_pool *pool, float *din, const float *dout, const uint8_t *mask,
                             size_t n, float p);

    /* Batch norm over (B, C, HW), statistics per channel, as torch BatchNorm1d/2d.
     * Train: normalise with the biased batch variance, save mean(C), rstd(C),
     * and update running stats: run = (1-momentum) run + momentum * batch,
     * using the UNBIASED variance for run_var. */
    void (*batchnorm_forward_train)(bl_cpu_pool *pool, float *out, float *mean, float *rstd,
                                    float *run_mean, float *run_var, const float *in,
                                    const float *gamma, const float *beta, int B, int C, int HW,
                                    float momentum, float eps);
    void (*batchnorm_forward_eval)(bl_cpu_pool *pool, float *out, const float *in,
                                   const float *gamma, const float *beta, const float *run_mean,
                                   const float *run_var, int B, int C, int HW, float eps);
    /* din overwritten; dgamma, dbeta accumulated. Uses the saved mean/rstd. */
    void (*batchnorm_backward)(bl_cpu_pool *pool, float *din, float *dgamma, float *dbeta,
                               const float *dout, const float *in, const float *mean,
                               const float *rstd, const float *gamma, int B, int C, int HW);

    /* Softmax cross-entropy on logits(B,K) with integer labels. Writes probs(B,K)
     * and returns the SUM over the batch of -log p[label] (double accumulator).
     * If correct != NULL, adds the number of argmax hits. */
    double (*softmax_xent_forward)(bl_cpu_pool *pool, float *probs, int *correct,
                                   const float *logits, const int32_t *labels, int B, int K);
    /* dlogits = scale * (probs - onehot(labels)).  Overwrites. */
    void (*softmax_xent_backward)(bl_cpu_pool *pool, float *dlogits, const float *probs,
                                  const int32_t *labels, int B, int K, float scale);
    /* Per-sample loss is mean_k (pred - target)^2; returns the SUM over the batch. */
    double (*mse_forward)(bl_cpu_pool *pool, const float *pred, const float *target, int B, int K);
    /* dpred = scale * 2 (pred - target) / K.  Overwrites. */
    void (*mse_backward)(bl_cpu_pool *pool, float *dpred, const float *pred, const float *target,
                         int B, int K, float scale);

    /* Flat-array helpers used on the arenas. */
    double (*sumsq)(bl_cpu_pool *pool, const float *x, size_t n);
    void (*scale)(bl_cpu_pool *pool, float *x, size_t n, float a);
    void (*axpy)(bl_cpu_pool *pool, float *y, const float *x, size_t n, float a); /* y += a x */
    void (*fill)(bl_cpu_pool *pool, float *x, size_t n, float v);
    void (*copy)(bl_cpu_pool *pool, float *dst, const float *src, size_t n);
    int (*all_finite)(bl_cpu_pool *pool, const float *x, size_t n); /* 1 if no NaN/Inf */

    /* Optimizer updates over flat arenas (torch.optim semantics).
     * SGD: g' = g + wd p; buf = mom buf + g' (buf = g' on the first step, i.e. when
     *      first_step != 0); step = nesterov ? g' + mom buf : buf (or g' when mom == 0);
     *      p -= lr step.  buf may be NULL when mom == 0. */
    void (*sgd_step)(bl_cpu_pool *pool, float *p, float *buf, const float *g, size_t n, float lr,
                     float momentum, int nesterov, float weight_decay, int first_step);
    /* Adam / AdamW at 1-based step t: decoupled != 0 gives AdamW (p -= lr wd p first),
     * else wd is added to the gradient (Adam's L2). Bias-corrected m/v, eps outside sqrt. */
    void (*adam_step)(bl_cpu_pool *pool, float *p, float *m, float *v, const float *g, size_t n,
                      float lr, float beta1, float beta2, float eps, float weight_decay,
                      int decoupled, long t);

    /* A dense or conv layer fused with the ReLU that follows it: one pass over
     * the output applies bias and ReLU, and the activation is stored once.
     * Results are bit-identical to the layer followed by act_forward(RELU).
     * out holds the activation relu(z), never z: ReLU's derivative is read
     * from it (out > 0 exactly where z > 0). */
    void (*dense_relu_forward)(bl_cpu_pool *pool, float *out, const float *in, const float *w,
                               const float *b, int B, int in_dim, int out_dim);
    /* Backward through the ReLU and then the layer, as act_backward(RELU) followed
     * by dense_backward / conv2d_backward. dout, the gradient at the ReLU's
     * output, is used as scratch: its contents afterwards are unspecified. */
    void (*dense_relu_backward)(bl_cpu_pool *pool, float *din, float *dw, float *db, float *dout,
                                const float *out, const float *in, const float *w, int B,
                                int in_dim, int out_dim);
    void (*conv2d_relu_forward)(bl_cpu_pool *pool, float *out, const float *in, const float *w,
                                const float *b, float *ws, const bl_conv_dims *d);
    void (*conv2d_relu_backward)(bl_cpu_pool *pool, float *din, float *dw, float *db, float *dout,
                                 const float *out, const float *in, const float *w, float *ws,
                                 const bl_conv_dims *d);

    /* Bytes the BLAS library touches in its own (persistent) packing buffers
     * for the largest GEMM a training step of this layer makes: an estimate
     * from the library's blocking, which the memory model adds. */
    size_t (*dense_blas_bytes)(int B, int in_dim, int out_dim);
    size_t (*conv2d_blas_bytes)(const bl_conv_dims *d);
} bl_kernels;

/* The CPU backend (OpenBLAS sgemm + im2col) at the ISA level chosen for this
 * process (bl_cpu_isa_selected). Static storage; do not free. */
const bl_kernels *bl_cpu_kernels(void);

/* ISA levels of the CPU kernels. A portable build holds baseline (x86-64-v2),
 * avx2 (x86-64-v3: AVX2, FMA, BMI2, F16C) and avx512 (x86-64-v4: AVX-512
 * F/BW/CD/DQ/VL) side by side; a BL_NATIVE build holds only native
 * (-march=native of the build host). */
typedef enum bl_cpu_isa {
    BL_CPU_ISA_BASELINE,
    BL_CPU_ISA_AVX2,
    BL_CPU_ISA_AVX512,
    BL_CPU_ISA_NATIVE,
    BL_CPU_ISA_COUNT
} bl_cpu_isa;

/* "baseline", "avx2", "avx512" or "native"; "?" for anything else. */
const char *bl_cpu_isa_name(bl_cpu_isa isa);
/* Parses a level's name into *isa; BL_ERR_ARG (message names the accepted values) otherwise. */
bl_status bl_cpu_isa_parse(const char *name, bl_cpu_isa *isa, bl_error *err);
/* 1 when this build has level isa; 0 otherwise. */
int bl_cpu_isa_built(bl_cpu_isa isa);
/* 1 when this build has level isa and this CPU and OS can run it; 0 otherwise. */
int bl_cpu_isa_usable(bl_cpu_isa isa);
/* The kernel table of one level, or NULL when it is not usable here. Static storage. */
const bl_kernels *bl_cpu_kernels_isa(bl_cpu_isa isa);
/* The level bl_cpu_kernels() uses, chosen once per process: the best usable
 * level, or the one the environment variable BATCHLAB_ISA names when that is
 * usable. *why (may be NULL) gets a static sentence saying why. */
bl_cpu_isa bl_cpu_isa_selected(const char **why);

/* ---- the backend object ------------------------------------------------ */
typedef struct bl_backend bl_backend;

typedef enum bl_buffer_kind {
    BL_BUFFER_DEVICE, /* where kernels run: only backend calls may touch it */
    BL_BUFFER_HOST,   /* pinned host staging for fast upload/download: host memory */
} bl_buffer_kind;

/* Every operation a backend provides. Pointers named dev_* (and every float /
 * int32 / uint8 array of a kernel) are backend pointers; pointers to double /
 * int results (loss sums, hit counts, norms, flags) are host pointers that the
 * call fills before it returns. Kernels have the semantics of the bl_kernels
 * entry of the same name. A status other than BL_OK means the backend failed
 * (e.g. a device error), never bad arguments of a caller that checked its
 * shapes. */
typedef struct bl_backend_ops {
    /* A context's instance comes to life: open (may be NULL: nothing to do)
     * gives be its own state (be->impl: a device's stream, library handles,
     * scratch), close frees it. bl_ctx_set_device opens, bl_ctx_free closes. */
    bl_status (*open)(bl_backend *be, bl_error *err);
    void (*close)(bl_backend *be);
    /* TF32 tensor-core math for fp32 matmuls and convolutions (on: faster, 10-bit
     * mantissa products; off: fp32 FMA, the default). NULL: the backend has no such
     * math. Called on an open instance before anything is planned or allocated. */
    bl_status (*set_tf32)(bl_backend *be, int on, bl_error *err);
    /* memory: bytes are charged to (and limited by) mem; what names the buffer in
     * the BL_ERR_NOMEM message */
    bl_status (*alloc)(bl_backend *be, bl_mem *mem, size_t bytes, bl_buffer_kind kind,
                       const char *what, void **out, bl_error *err);
    void (*release)(bl_backend *be, bl_mem *mem, void *p); /* NULL is fine */
    bl_status (*upload)(bl_backend *be, void *dev_dst, const void *src, size_t bytes);
    bl_status (*download)(bl_backend *be, void *dst, const void *dev_src, size_t bytes);
    bl_status (*copy)(bl_backend *be, void *dev_dst, const void *dev_src, size_t bytes);
    bl_status (*synchronize)(bl_backend *be);
    /* threads for the backend's own parallel loops (be->pool's; none without a pool) */
    void (*set_threads)(bl_backend *be, int threads);
    /* sizes for the memory model (no call on the device) */
    size_t (*conv2d_workspace_floats)(const bl_backend *be, const bl_conv_dims *d);
    size_t (*dense_blas_bytes)(const bl_backend *be, int B, int in_dim, int out_dim);
    size_t (*conv2d_blas_bytes)(const bl_backend *be, const bl_conv_dims *d);

    /* kernels */
    bl_status (*dense_forward)(bl_backend *be, float *out, const float *in, const float *w,
                               const float *b, int B, int in_dim, int out_dim, int relu);
    bl_status (*dense_backward)(bl_backend *be, float *din, float *dw, float *db, float *dout,
                                const float *out, const float *in, const float *w, int B,
                                int in_dim, int out_dim, int relu);
    bl_status (*conv2d_forward)(bl_backend *be, float *out, const float *in, const float *w,
                                const float *b, float *ws, const bl_conv_dims *d, int relu);
    bl_status (*conv2d_backward)(bl_backend *be, float *din, float *dw, float *db, float *dout,
                                 const float *out, const float *in, const float *w, float *ws,
                                 const bl_conv_dims *d, int relu);
    bl_status (*maxpool_forward)(bl_backend *be, float *out, int32_t *argmax, const float *in,
                                 const bl_pool_dims *d);
    bl_status (*maxpool_backward)(bl_backend *be, float *din, const float *dout,
                                  const int32_t *argmax, const bl_pool_dims *d);
    bl_status (*avgpool_forward)(bl_backend *be, float *out, const float *in,
                                 const bl_pool_dims *d);
    bl_status (*avgpool_backward)(bl_backend *be, float *din, const float *dout,
                                  const bl_pool_dims *d);
    bl_status (*act_forward)(bl_backend *be, float *out, const float *in, size_t n, bl_act act,
                             float alpha);
    bl_status (*act_backward)(bl_backend *be, float *din, const float *dout, const float *in,
                              const float *out, size_t n, bl_act act, float alpha);
    bl_status (*dropout_forward)(bl_backend *be, float *out, uint8_t *mask, const float *in,
                                 size_t n, float p, const bl_dropout_key *key);
    bl_status (*dropout_backward)(bl_backend *be, float *din, const float *dout,
                                  const uint8_t *mask, size_t n, float p);
    bl_status (*batchnorm_forward_train)(bl_backend *be, float *out, float *mean, float *rstd,
                                         float *run_mean, float *run_var, const float *in,
                                         const float *gamma, const float *beta, int B, int C,
                                         int HW, float momentum, float eps);
    bl_status (*batchnorm_forward_eval)(bl_backend *be, float *out, const float *in,
                                        const float *gamma, const float *beta,
                                        const float *run_mean, const float *run_var, int B, int C,
                                        int HW, float eps);
    bl_status (*batchnorm_backward)(bl_backend *be, float *din, float *dgamma, float *dbeta,
                                    const float *dout, const float *in, const float *mean,
                                    const float *rstd, const float *gamma, int B, int C, int HW);
    /* *loss_sum = sum over the batch of -log p[label]; *correct += argmax hits
     * (correct may be NULL). */
    bl_status (*softmax_xent_forward)(bl_backend *be, double *loss_sum, int *correct, float *probs,
                                      const float *logits, const int32_t *labels, int B, int K);
    bl_status (*softmax_xent_backward)(bl_backend *be, float *dlogits, const float *probs,
                                       const int32_t *labels, int B, int K, float scale);
    /* target(B,K) = onehot(labels); *loss_sum = sum of per-sample MSE against it;
     * *correct += argmax hits (may be NULL). */
    bl_status (*mse_forward)(bl_backend *be, double *loss_sum, int *correct, float *target,
                             const float *pred, const int32_t *labels, int B, int K);
    bl_status (*mse_backward)(bl_backend *be, float *dpred, const float *pred, const float *target,
                              int B, int K, float scale);
    /* *sum += sum over rows r of |dz_r|^2 (|x_r|^2 + bias): the squared norms of a dense
     * layer's per-example gradients (bias: 1 when it has one, else 0). */
    bl_status (*per_example_sumsq)(bl_backend *be, double *sum, const float *dz, const float *x,
                                   int B, int in_dim, int out_dim, int bias);

    /* flat arrays */
    bl_status (*sumsq)(bl_backend *be, double *out, const float *x, size_t n);
    bl_status (*all_finite)(bl_backend *be, int *out, const float *x, size_t n);
    bl_status (*scale)(bl_backend *be, float *x, size_t n, float a);
    bl_status (*axpy)(bl_backend *be, float *y, const float *x, size_t n, float a);
    bl_status (*fill)(bl_backend *be, float *x, size_t n, float v);
    bl_status (*sgd_step)(bl_backend *be, float *p, float *buf, const float *g, size_t n, float lr,
                          float momentum, int nesterov, float weight_decay, int first_step);
    bl_status (*adam_step)(bl_backend *be, float *p, float *m, float *v, const float *g, size_t n,
                           float lr, float beta1, float beta2, float eps, float weight_decay,
                           int decoupled, long t);
} bl_backend_ops;

/* struct bl_backend { name, ops, impl, host_visible, pool } is defined in
 * batchlab/core.h, so that a context can hold its own instance (see bl_ctx). */

/* ---- CUDA devices ---------------------------------------------------- */
typedef struct bl_gpu_info {
    int index;
    char name[128];
    int cc_major, cc_minor; /* compute capability */
    int sm_count;
    size_t total_bytes, free_bytes;
} bl_gpu_info;
/* The CUDA devices this process can use, up to cap of them in out (out may be
 * NULL when cap is 0): returns how many there are, or -1 when CUDA cannot be
 * used here, with the reason in why (built without it, no driver, no device). */
int bl_cuda_devices(bl_gpu_info *out, int cap, char *why, size_t why_len);

/* The memory a device has free now, for a memory budget: a CUDA device's free
 * memory ("cuda", "cuda:N"), or the host's available memory (MemAvailable of
 * /proc/meminfo) for the CPU backends. device NULL or "" is $BATCHLAB_DEVICE,
 * else cpu. where (may be NULL) gets a few words saying whose memory it is. */
bl_status bl_device_free_bytes(const char *device, size_t *out, char *where, size_t where_len,
                               bl_error *err);

/* Backend names this build can open, for `batchlab info` and error messages:
 * names[i] for i < the return value. */
int bl_backend_names(const char **names, int cap);
/* The backend called name ("cpu", "opaque", and "cuda" or "cuda:N" where CUDA
 * is built; NULL or "" is "cpu"): a shared instance without a pool (its
 * kernels run on the calling thread) and, for a backend with an open op,
 * without its own state: only a context's copy (bl_ctx_set_device), which
 * opens it, may run it. Static storage, never freed. BL_ERR_ARG naming the
 * value and the accepted ones otherwise; BL_ERR_UNSUPPORTED, saying why, for
 * "cuda" where no device can be used. */
bl_status bl_backend_get(bl_backend **out, const char *name, bl_error *err);
/* Status of a backend call as a sentence for an error message. */
bl_status bl_backend_fail(bl_error *err, bl_status st, const bl_backend *be, const char *what);

/* Output size of a convolution/pool window along one axis; <= 0 means invalid. */
static inline int bl_conv_out_size(int in, int k, int stride, int pad) {
    return stride > 0 ? (in + 2 * pad - k) / stride + 1 : 0;
}

#ifdef __cplusplus
}
#endif

#endif
