/* The CUDA backend: a context's instance owns one device, one stream, a
 * cuBLAS and a cuDNN handle bound to that stream, and a little device memory
 * for scalar results (cuda_state). Every operation enqueues on the stream and
 * returns without waiting, except those whose result the host needs at once:
 * download, synchronize, and the kernels that return scalars (loss sums, hit
 * counts, norms, flags), which wait for their own small copy.
 *
 * Dense layers are cuBLAS sgemm (row-major arrays read as their column-major
 * transposes, so no copy is made); convolutions are cuDNN's, with algorithms
 * chosen once per shape by cuDNN's heuristics (conv_plan); everything else is
 * our kernels (cuda_kernels.cu). fp32 throughout: no TF32 in cuBLAS (its
 * default math) or cuDNN (FMA math), as PyTorch's fp32 matmul.
 *
 * Memory is charged to the caller's bl_mem like the CPU's, so the memory
 * budget and `find --memory` see device buffers too; a table of live
 * allocations gives release their sizes.
 *
 * cuBLAS and cuDNN are opened with dlopen on first use (cuda_libs.c); the
 * convolutions' cuDNN plans are cuda_conv.c's. The CUDA runtime is linked
 * statically and loads the driver only when first asked. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "backend/cuda/cuda_internal.h"
#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda_backend.h"
#include "core/alloc.h"

#define MAX_DEVICES 16

static const char *const device_names[MAX_DEVICES] = {
    "cuda:0", "cuda:1", "cuda:2",  "cuda:3",  "cuda:4",  "cuda:5",  "cuda:6",  "cuda:7",
    "cuda:8", "cuda:9", "cuda:10", "cuda:11", "cuda:12", "cuda:13", "cuda:14", "cuda:15"};

/* ---- devices ------------------------------------------------------------ */

int bl_cuda_devices(bl_gpu_info *out, int cap, char *why, size_t why_len) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n <= 0) {
        const char *hint = e == cudaErrorInsufficientDriver
                               ? " (no NVIDIA driver is loaded, or it is older than the CUDA "
                                 "runtime this build uses)"
                               : "";
        if (why && why_len)
            snprintf(why, why_len, "no CUDA device can be used here: %s%s",
                     e != cudaSuccess ? cudaGetErrorString(e) : "the driver reports none", hint);
        return -1;
    }
    for (int i = 0; i < n && i < cap; i++) {
        struct cudaDeviceProp p;
        bl_gpu_info *g = &out[i];
        memset(g, 0, sizeof *g);
        g->index = i;
        if (cudaGetDeviceProperties(&p, i) == cudaSuccess) {
            snprintf(g->name, sizeof g->name, "%.127s", p.name);
            g->cc_major = p.major;
            g->cc_minor = p.minor;
            g->sm_count = p.multiProcessorCount;
            g->total_bytes = p.totalGlobalMem;
        }
        int prev = 0;
        cudaGetDevice(&prev);
        if (cudaSetDevice(i) == cudaSuccess) {
            size_t fr = 0, tot = 0;
            if (cudaMemGetInfo(&fr, &tot) == cudaSuccess) g->free_bytes = fr;
            cudaSetDevice(prev);
        }
    }
    if (why && why_len) snprintf(why, why_len, "%d device%s", n, n == 1 ? "" : "s");
    return n;
}

extern const bl_backend_ops cuda_backend_ops;
static bl_backend shared[MAX_DEVICES];

bl_status cuda_backend_get(bl_backend **out, int device, bl_error *err) {
    *out = NULL;
    char why[256];
    int n = bl_cuda_devices(NULL, 0, why, sizeof why);
    if (n < 0) return bl_fail(err, BL_ERR_UNSUPPORTED, "device cuda:%d: %s", device, why);
    if (device >= n || device >= MAX_DEVICES)
        return bl_fail(err, BL_ERR_ARG,
                       "device cuda:%d: this machine has %d CUDA device%s (cuda:0%s)", device, n,
                       n == 1 ? "" : "s", n > 1 ? " to cuda:N-1" : "");
    /* Static objects that differ only in their index: writing the same values
     * from two threads at once is harmless. */
    shared[device] = (bl_backend){.name = device_names[device],
                                  .ops = &cuda_backend_ops,
                                  .impl = NULL,
                                  .device = device,
                                  .host_visible = 0};
    *out = &shared[device];
    return BL_OK;
}

/* ---- open / close ------------------------------------------------------- */

static void state_free(cuda_state *s) {
    cudaSetDevice(s->device);
    if (s->stream) cudaStreamSynchronize(s->stream);
    for (int i = 0; i < s->n_plans; i++)
        cuda_plan_destroy(&s->plans[i]);
    /* Buffers a caller forgot: freed, so a closed context leaks nothing. */
    for (size_t i = 0; i < s->n_allocs; i++)
        s->allocs[i].host ? cudaFreeHost(s->allocs[i].p) : cudaFree(s->allocs[i].p);
    bl_free(s->allocs);
    if (s->dnn) cuda_lib.cudnnDestroy(s->dnn);
    if (s->blas) cuda_lib.cublasDestroy_v2(s->blas);
    cudaFree(s->scratch);
    cudaFree(s->dev_sum);
    cudaFree(s->dev_int);
    cudaFreeHost(s->host_sum);
    cudaFreeHost(s->host_int);
    if (s->stream) cudaStreamDestroy(s->stream);
    bl_free(s);
}

static bl_status open_fail(cuda_state *s, bl_error *err, bl_status st, const char *what,
                           const char *detail) {
    int dev = s->device;
    state_free(s);
    return bl_fail(err, st, "device cuda:%d: %s failed (%s)", dev, what, detail);
}

static bl_status op_open(bl_backend *be, bl_error *err) {
    if (!cuda_libs_load())
        return bl_fail(err, BL_ERR_UNSUPPORTED, "device cuda:%d: %s", be->device,
                       cuda_libs_error());
    cuda_state *s = bl_calloc(1, sizeof *s);
    if (!s) return bl_fail(err, BL_ERR_NOMEM, "device cuda:%d: out of host memory", be->device);
    s->device = be->device;
    cudaError_t e = cudaSetDevice(s->device);
    if (e == cudaSuccess) e = cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking);
    if (e == cudaSuccess)
        e = cudaMalloc((void **)&s->scratch, BLK_SCRATCH_DOUBLES * sizeof(double));
    if (e == cudaSuccess) e = cudaMalloc((void **)&s->dev_sum, sizeof(double));
    if (e == cudaSuccess) e = cudaMalloc((void **)&s->dev_int, sizeof(int));
    if (e == cudaSuccess) e = cudaMallocHost((void **)&s->host_sum, sizeof(double));
    if (e == cudaSuccess) e = cudaMallocHost((void **)&s->host_int, sizeof(int));
    if (e != cudaSuccess)
        return open_fail(s, err, cu_status(e), "setting up its stream", cudaGetErrorString(e));
    cublasStatus_t b = cuda_lib.cublasCreate_v2(&s->blas);
    if (b == CUBLAS_STATUS_SUCCESS) b = cuda_lib.cublasSetStream_v2(s->blas, s->stream);
    /* fp32 as written: no TF32 tensor cores (cuBLAS's default math allows none) */
    if (b == CUBLAS_STATUS_SUCCESS) b = cuda_lib.cublasSetMathMode(s->blas, CUBLAS_DEFAULT_MATH);
    if (b != CUBLAS_STATUS_SUCCESS)
        return open_fail(s, err, blas_status(b), "cublasCreate", cuda_lib.cublasGetStatusString(b));
    cudnnStatus_t d = cuda_lib.cudnnCreate(&s->dnn);
    if (d == CUDNN_STATUS_SUCCESS) d = cuda_lib.cudnnSetStream(s->dnn, s->stream);
    if (d != CUDNN_STATUS_SUCCESS)
        return open_fail(s, err, dnn_status(d), "cudnnCreate", cuda_lib.cudnnGetErrorString(d));
    be->impl = s;
    return BL_OK;
}

/* cuBLAS: TF32 tensor-op math or the default (none). cuDNN: the plans made so far
 * are dropped, so every later plan is chosen under the new math. */
static bl_status op_set_tf32(bl_backend *be, int on, bl_error *err) {
    cuda_state *s = be->impl;
    cublasStatus_t b =
        cuda_lib.cublasSetMathMode(s->blas, on ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH);
    if (b != CUBLAS_STATUS_SUCCESS)
        return bl_fail(err, blas_status(b), "device cuda:%d: cublasSetMathMode: %s", s->device,
                       cuda_lib.cublasGetStatusString(b));
    for (int i = 0; i < s->n_plans; i++)
        cuda_plan_destroy(&s->plans[i]);
    s->n_plans = s->next_evict = 0;
    s->tf32 = on != 0;
    return BL_OK;
}

static void op_close(bl_backend *be) {
    if (!be->impl) return;
    state_free(be->impl);
    be->impl = NULL;
}

/* ---- memory ------------------------------------------------------------- */

static bl_status op_alloc(bl_backend *be, bl_mem *mem, size_t bytes, bl_buffer_kind kind,
                          const char *what, void **out, bl_error *err) {
    *out = NULL;
    cuda_state *s = S(be);
    if (!s) return bl_fail(err, BL_ERR_DEVICE, "backend %s is not open", be->name);
    if (mem && mem->limit_bytes && mem->cur_bytes + bytes > mem->limit_bytes)
        return bl_fail(err, BL_ERR_NOMEM,
                       "allocating %zu bytes for %s would exceed the memory budget of %zu bytes "
                       "(%zu in use)",
                       bytes, what ? what : "buffer", mem->limit_bytes, mem->cur_bytes);
    if (s->n_allocs == s->cap_allocs) {
        size_t cap = s->cap_allocs ? 2 * s->cap_allocs : 64;
        live_alloc *grown = bl_realloc(s->allocs, cap * sizeof *grown);
        if (!grown)
            return bl_fail(err, BL_ERR_NOMEM, "out of host memory recording %s",
                           what ? what : "a buffer");
        s->allocs = grown;
        s->cap_allocs = cap;
    }
    const int host = kind == BL_BUFFER_HOST;
    void *p = NULL;
    size_t n = bytes ? bytes : 1;
    cudaError_t e = host ? cudaMallocHost(&p, n) : cudaMalloc(&p, n);
    if (e != cudaSuccess) {
        cudaGetLastError(); /* allocation errors are not sticky: clear it */
        return bl_fail(err, cu_status(e), "cuda:%d: allocating %zu bytes for %s failed (%s)",
                       s->device, bytes, what ? what : "buffer", cudaGetErrorString(e));
    }
    /* zero-filled, as every backend's allocations are */
    e = host ? (memset(p, 0, n), cudaSuccess) : cudaMemsetAsync(p, 0, n, s->stream);
    if (e != cudaSuccess) {
        host ? cudaFreeHost(p) : cudaFree(p);
        return bl_fail(err, cu_status(e), "cuda:%d: clearing %s failed (%s)", s->device,
                       what ? what : "buffer", cudaGetErrorString(e));
    }
    s->allocs[s->n_allocs++] = (live_alloc){.p = p, .bytes = bytes, .host = host};
    if (mem) {
        mem->cur_bytes += bytes;
        if (mem->cur_bytes > mem->peak_bytes) mem->peak_bytes = mem->cur_bytes;
    }
    *out = p;
    return BL_OK;
}

static void op_release(bl_backend *be, bl_mem *mem, void *p) {
    cuda_state *s = S(be);
    if (!p || !s) return;
    for (size_t i = 0; i < s->n_allocs; i++) {
        if (s->allocs[i].p != p) continue;
        live_alloc a = s->allocs[i];
        s->allocs[i] = s->allocs[--s->n_allocs];
        /* the stream may still use it: cudaFree waits for the device */
        a.host ? cudaFreeHost(p) : cudaFree(p);
        if (mem) mem->cur_bytes = mem->cur_bytes >= a.bytes ? mem->cur_bytes - a.bytes : 0;
        return;
    }
}

/* A copy on the stream; upload and download wait for it (the host may reuse
 * or read its buffer as soon as they return; the data-on-device path avoids
 * the upload's wait), a device-to-device copy does not. */
static bl_status transfer(bl_backend *be, void *dst, const void *src, size_t bytes,
                          enum cudaMemcpyKind kind) {
    STATE(be);
    if (!bytes || dst == src) return BL_OK;
    CU(cudaMemcpyAsync(dst, src, bytes, kind, s->stream));
    if (kind != cudaMemcpyDeviceToDevice) CU(cudaStreamSynchronize(s->stream));
    return BL_OK;
}
static bl_status op_upload(bl_backend *be, void *dst, const void *src, size_t bytes) {
    return transfer(be, dst, src, bytes, cudaMemcpyHostToDevice);
}
static bl_status op_download(bl_backend *be, void *dst, const void *src, size_t bytes) {
    return transfer(be, dst, src, bytes, cudaMemcpyDeviceToHost);
}
static bl_status op_copy(bl_backend *be, void *dst, const void *src, size_t bytes) {
    return transfer(be, dst, src, bytes, cudaMemcpyDeviceToDevice);
}
static bl_status op_synchronize(bl_backend *be) {
    STATE(be);
    CU(cudaStreamSynchronize(s->stream));
    return BL_OK;
}
static void op_set_threads(bl_backend *be, int threads) {
    bl_cpu_pool_set_threads(be->pool, threads); /* the device ignores it */
}

/* Reads the device scalars a kernel wrote: waits for the stream. */
static bl_status read_sum(cuda_state *s, double *sum, int *count) {
    CU(cudaMemcpyAsync(s->host_sum, s->dev_sum, sizeof(double), cudaMemcpyDeviceToHost, s->stream));
    if (count)
        CU(cudaMemcpyAsync(s->host_int, s->dev_int, sizeof(int), cudaMemcpyDeviceToHost,
                           s->stream));
    CU(cudaStreamSynchronize(s->stream));
    if (sum) *sum = *s->host_sum;
    if (count) *count = *s->host_int;
    return BL_OK;
}

static size_t op_dense_blas_bytes(const bl_backend *be, int B, int in_dim, int out_dim) {
    return 0; /* cuBLAS keeps its workspace in the handle */
}
static size_t op_conv2d_blas_bytes(const bl_backend *be, const bl_conv_dims *d) {
    return 0;
}

/* ---- dense (cuBLAS) -------------------------------------------------------
 * Row-major X(r, c) is column-major X^T (c, r) with leading dimension c. */

static bl_status op_dense_forward(bl_backend *be, float *out, const float *in, const float *w,
                                  const float *b, int B, int in_dim, int out_dim, int relu) {
    STATE(be);
    if (B <= 0 || out_dim <= 0) return BL_OK;
    const float one = 1.0f, zero = 0.0f;
    /* out^T (O, B) = w^T^T ... : column-major out^T = (w as I x O)^T * (in as I x B) */
    BLAS(cuda_lib.cublasSgemm_v2(s->blas, CUBLAS_OP_T, CUBLAS_OP_N, out_dim, B, in_dim, &one, w,
                                 in_dim, in, in_dim, &zero, out, out_dim));
    if (b || relu) CU(blk_bias_act_rows(s->stream, out, b, B, out_dim, relu));
    return BL_OK;
}

static bl_status op_dense_backward(bl_backend *be, float *din, float *dw, float *db, float *dout,
                                   const float *out, const float *in, const float *w, int B,
                                   int in_dim, int out_dim, int relu) {
    STATE(be);
    if (B <= 0 || out_dim <= 0) return BL_OK;
    const float one = 1.0f, zero = 0.0f;
    if (relu) CU(blk_relu_mask(s->stream, dout, out, (size_t)B * out_dim));
    if (db) CU(blk_bias_grad_rows(s->stream, db, dout, B, out_dim));
    /* dw (O, I) += dout^T (O, B) in (B, I): column-major dw^T (I, O) = in^T (I, B) dout (B, O) */
    if (dw)
        BLAS(cuda_lib.cublasSgemm_v2(s->blas, CUBLAS_OP_N, CUBLAS_OP_T, in_dim, out_dim, B, &one,
                                     in, in_dim, dout, out_dim, &one, dw, in_dim));
    /* din (B, I) = dout (B, O) w (O, I): column-major din^T (I, B) = w^T (I, O) dout^T (O, B) */
    if (din)
        BLAS(cuda_lib.cublasSgemm_v2(s->blas, CUBLAS_OP_N, CUBLAS_OP_N, in_dim, B, out_dim, &one, w,
                                     in_dim, dout, out_dim, &zero, din, in_dim));
    return BL_OK;
}

/* ---- the rest: our kernels ---------------------------------------------- */

#define LAUNCH(be, call)                                                                           \
    do {                                                                                           \
        STATE(be);                                                                                 \
        CU(call);                                                                                  \
        return BL_OK;                                                                              \
    } while (0)

static bl_status op_maxpool_forward(bl_backend *be, float *out, int32_t *argmax, const float *in,
                                    const bl_pool_dims *d) {
    LAUNCH(be, blk_maxpool_forward(s->stream, out, argmax, in, d));
}
static bl_status op_maxpool_backward(bl_backend *be, float *din, const float *dout,
                                     const int32_t *argmax, const bl_pool_dims *d) {
    LAUNCH(be, blk_maxpool_backward(s->stream, din, dout, argmax, d));
}
static bl_status op_avgpool_forward(bl_backend *be, float *out, const float *in,
                                    const bl_pool_dims *d) {
    LAUNCH(be, blk_avgpool_forward(s->stream, out, in, d));
}
static bl_status op_avgpool_backward(bl_backend *be, float *din, const float *dout,
                                     const bl_pool_dims *d) {
    LAUNCH(be, blk_avgpool_backward(s->stream, din, dout, d));
}
static bl_status op_act_forward(bl_backend *be, float *out, const float *in, size_t n, bl_act act,
                                float alpha) {
    LAUNCH(be, blk_act_forward(s->stream, out, in, n, act, alpha));
}
static bl_status op_act_backward(bl_backend *be, float *din, const float *dout, const float *in,
                                 const float *out, size_t n, bl_act act, float alpha) {
    LAUNCH(be, blk_act_backward(s->stream, din, dout, in, out, n, act, alpha));
}
static bl_status op_dropout_forward(bl_backend *be, float *out, uint8_t *mask, const float *in,
                                    size_t n, float p, const bl_dropout_key *key) {
    LAUNCH(be, blk_dropout_forward(s->stream, out, mask, in, n, p, key));
}
static bl_status op_dropout_backward(bl_backend *be, float *din, const float *dout,
                                     const uint8_t *mask, size_t n, float p) {
    LAUNCH(be, blk_dropout_backward(s->stream, din, dout, mask, n, p));
}
static bl_status op_batchnorm_forward_train(bl_backend *be, float *out, float *mean, float *rstd,
                                            float *run_mean, float *run_var, const float *in,
                                            const float *gamma, const float *beta, int B, int C,
                                            int HW, float momentum, float eps) {
    LAUNCH(be, blk_batchnorm_forward_train(s->stream, out, mean, rstd, run_mean, run_var, in, gamma,
                                           beta, B, C, HW, momentum, eps));
}
static bl_status op_batchnorm_forward_eval(bl_backend *be, float *out, const float *in,
                                           const float *gamma, const float *beta,
                                           const float *run_mean, const float *run_var, int B,
                                           int C, int HW, float eps) {
    LAUNCH(be, blk_batchnorm_forward_eval(s->stream, out, in, gamma, beta, run_mean, run_var, B, C,
                                          HW, eps));
}
static bl_status op_batchnorm_backward(bl_backend *be, float *din, float *dgamma, float *dbeta,
                                       const float *dout, const float *in, const float *mean,
                                       const float *rstd, const float *gamma, int B, int C,
                                       int HW) {
    LAUNCH(be, blk_batchnorm_backward(s->stream, din, dgamma, dbeta, dout, in, mean, rstd, gamma, B,
                                      C, HW));
}

static bl_status op_softmax_xent_forward(bl_backend *be, double *loss_sum, int *correct,
                                         float *probs, const float *logits, const int32_t *labels,
                                         int B, int K) {
    STATE(be);
    CU(blk_softmax_xent_forward(s->stream, s->scratch, s->dev_sum, s->dev_int, probs, logits,
                                labels, B, K));
    int hits = 0;
    bl_status st = read_sum(s, loss_sum, correct ? &hits : NULL);
    if (!st && correct) *correct += hits;
    return st;
}
static bl_status op_softmax_xent_backward(bl_backend *be, float *dlogits, const float *probs,
                                          const int32_t *labels, int B, int K, float scale) {
    LAUNCH(be, blk_softmax_xent_backward(s->stream, dlogits, probs, labels, B, K, scale));
}
static bl_status op_mse_forward(bl_backend *be, double *loss_sum, int *correct, float *target,
                                const float *pred, const int32_t *labels, int B, int K) {
    STATE(be);
    CU(blk_mse_forward(s->stream, s->scratch, s->dev_sum, s->dev_int, target, pred, labels, B, K));
    int hits = 0;
    bl_status st = read_sum(s, loss_sum, correct ? &hits : NULL);
    if (!st && correct) *correct += hits;
    return st;
}
static bl_status op_mse_backward(bl_backend *be, float *dpred, const float *pred,
                                 const float *target, int B, int K, float scale) {
    LAUNCH(be, blk_mse_backward(s->stream, dpred, pred, target, B, K, scale));
}
static bl_status op_per_example_sumsq(bl_backend *be, double *sum, const float *dz, const float *x,
                                      int B, int in_dim, int out_dim, int bias) {
    STATE(be);
    CU(blk_per_example_sumsq(s->stream, s->scratch, s->dev_sum, dz, x, B, in_dim, out_dim, bias));
    double v = 0;
    bl_status st = read_sum(s, &v, NULL);
    if (!st) *sum += v;
    return st;
}
static bl_status op_sumsq(bl_backend *be, double *out, const float *x, size_t n) {
    STATE(be);
    CU(blk_sumsq(s->stream, s->scratch, s->dev_sum, x, n));
    return read_sum(s, out, NULL);
}
static bl_status op_all_finite(bl_backend *be, int *out, const float *x, size_t n) {
    STATE(be);
    CU(blk_all_finite(s->stream, s->scratch, s->dev_int, x, n));
    return read_sum(s, NULL, out);
}
static bl_status op_scale(bl_backend *be, float *x, size_t n, float a) {
    LAUNCH(be, blk_scale(s->stream, x, n, a));
}
static bl_status op_axpy(bl_backend *be, float *y, const float *x, size_t n, float a) {
    LAUNCH(be, blk_axpy(s->stream, y, x, n, a));
}
static bl_status op_fill(bl_backend *be, float *x, size_t n, float v) {
    LAUNCH(be, blk_fill(s->stream, x, n, v));
}
static bl_status op_sgd_step(bl_backend *be, float *p, float *buf, const float *g, size_t n,
                             float lr, float momentum, int nesterov, float weight_decay,
                             int first_step) {
    LAUNCH(be,
           blk_sgd_step(s->stream, p, buf, g, n, lr, momentum, nesterov, weight_decay, first_step));
}
static bl_status op_adam_step(bl_backend *be, float *p, float *m, float *v, const float *g,
                              size_t n, float lr, float beta1, float beta2, float eps,
                              float weight_decay, int decoupled, long t) {
    LAUNCH(be, blk_adam_step(s->stream, p, m, v, g, n, lr, beta1, beta2, eps, weight_decay,
                             decoupled, t));
}

const bl_backend_ops cuda_backend_ops = {
    .open = op_open,
    .close = op_close,
    .set_tf32 = op_set_tf32,
    .alloc = op_alloc,
    .release = op_release,
    .upload = op_upload,
    .download = op_download,
    .copy = op_copy,
    .synchronize = op_synchronize,
    .set_threads = op_set_threads,
    .conv2d_workspace_floats = cuda_conv2d_workspace_floats,
    .dense_blas_bytes = op_dense_blas_bytes,
    .conv2d_blas_bytes = op_conv2d_blas_bytes,
    .dense_forward = op_dense_forward,
    .dense_backward = op_dense_backward,
    .conv2d_forward = cuda_conv2d_forward,
    .conv2d_backward = cuda_conv2d_backward,
    .maxpool_forward = op_maxpool_forward,
    .maxpool_backward = op_maxpool_backward,
    .avgpool_forward = op_avgpool_forward,
    .avgpool_backward = op_avgpool_backward,
    .act_forward = op_act_forward,
    .act_backward = op_act_backward,
    .dropout_forward = op_dropout_forward,
    .dropout_backward = op_dropout_backward,
    .batchnorm_forward_train = op_batchnorm_forward_train,
    .batchnorm_forward_eval = op_batchnorm_forward_eval,
    .batchnorm_backward = op_batchnorm_backward,
    .softmax_xent_forward = op_softmax_xent_forward,
    .softmax_xent_backward = op_softmax_xent_backward,
    .mse_forward = op_mse_forward,
    .mse_backward = op_mse_backward,
    .per_example_sumsq = op_per_example_sumsq,
    .sumsq = op_sumsq,
    .all_finite = op_all_finite,
    .scale = op_scale,
    .axpy = op_axpy,
    .fill = op_fill,
    .sgd_step = op_sgd_step,
    .adam_step = op_adam_step,
};
