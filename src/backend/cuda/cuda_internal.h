/* What the CUDA backend's host files share (cuda_backend.c: the backend
 * object, memory and the ops table; cuda_conv.c: cuDNN's convolution plans;
 * cuda_libs.c: cuBLAS and cuDNN opened with dlopen): the context's state,
 * the library table, and status conversions. Internal to src/backend/cuda. */
#ifndef BL_BACKEND_CUDA_INTERNAL_H
#define BL_BACKEND_CUDA_INTERNAL_H

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>
#include "batchlab/backend.h"

#define MAX_PLANS 32

/* cuDNN's choice for one convolution shape. */
typedef struct conv_plan {
    bl_conv_dims d;
    cudnnTensorDescriptor_t x, y;
    cudnnFilterDescriptor_t w;
    cudnnConvolutionDescriptor_t conv;
    cudnnConvolutionFwdAlgo_t fwd;
    cudnnConvolutionBwdDataAlgo_t bwd_data;
    cudnnConvolutionBwdFilterAlgo_t bwd_filter;
    size_t ws_bytes; /* the most any of the three needs */
} conv_plan;

typedef struct live_alloc {
    void *p;
    size_t bytes;
    int host; /* pinned host memory */
} live_alloc;

typedef struct cuda_state {
    int device;
    cudaStream_t stream;
    cublasHandle_t blas;
    cudnnHandle_t dnn;
    double *scratch; /* BLK_SCRATCH_DOUBLES, for the kernels' partial sums */
    double *dev_sum; /* device scalars the kernels write */
    int *dev_int;
    double *host_sum; /* pinned mirrors the host reads */
    int *host_int;
    conv_plan plans[MAX_PLANS];
    int n_plans, next_evict;
    int tf32; /* TF32 tensor-core math allowed (bl_ctx_set_tf32); else FMA only */
    live_alloc *allocs;
    size_t n_allocs, cap_allocs;
} cuda_state;

/* The cuBLAS and cuDNN functions the backend calls, under their own names
 * (cuda_lib.name), filled by cuda_libs_load (cuda_libs.c). */
struct cuda_libs {
    __typeof__(&cublasCreate_v2) cublasCreate_v2;
    __typeof__(&cublasDestroy_v2) cublasDestroy_v2;
    __typeof__(&cublasSetStream_v2) cublasSetStream_v2;
    __typeof__(&cublasSetMathMode) cublasSetMathMode;
    __typeof__(&cublasGetStatusString) cublasGetStatusString;
    __typeof__(&cublasSgemm_v2) cublasSgemm_v2;
    __typeof__(&cudnnCreate) cudnnCreate;
    __typeof__(&cudnnDestroy) cudnnDestroy;
    __typeof__(&cudnnSetStream) cudnnSetStream;
    __typeof__(&cudnnGetErrorString) cudnnGetErrorString;
    __typeof__(&cudnnCreateTensorDescriptor) cudnnCreateTensorDescriptor;
    __typeof__(&cudnnDestroyTensorDescriptor) cudnnDestroyTensorDescriptor;
    __typeof__(&cudnnSetTensor4dDescriptor) cudnnSetTensor4dDescriptor;
    __typeof__(&cudnnCreateFilterDescriptor) cudnnCreateFilterDescriptor;
    __typeof__(&cudnnDestroyFilterDescriptor) cudnnDestroyFilterDescriptor;
    __typeof__(&cudnnSetFilter4dDescriptor) cudnnSetFilter4dDescriptor;
    __typeof__(&cudnnCreateConvolutionDescriptor) cudnnCreateConvolutionDescriptor;
    __typeof__(&cudnnDestroyConvolutionDescriptor) cudnnDestroyConvolutionDescriptor;
    __typeof__(&cudnnSetConvolution2dDescriptor) cudnnSetConvolution2dDescriptor;
    __typeof__(&cudnnSetConvolutionMathType) cudnnSetConvolutionMathType;
    __typeof__(&cudnnGetConvolutionForwardAlgorithm_v7) cudnnGetConvolutionForwardAlgorithm_v7;
    __typeof__(&cudnnGetConvolutionBackwardDataAlgorithm_v7)
        cudnnGetConvolutionBackwardDataAlgorithm_v7;
    __typeof__(&cudnnGetConvolutionBackwardFilterAlgorithm_v7)
        cudnnGetConvolutionBackwardFilterAlgorithm_v7;
    __typeof__(&cudnnConvolutionForward) cudnnConvolutionForward;
    __typeof__(&cudnnConvolutionBackwardData) cudnnConvolutionBackwardData;
    __typeof__(&cudnnConvolutionBackwardFilter) cudnnConvolutionBackwardFilter;
};
extern struct cuda_libs cuda_lib;
/* 1 when cuBLAS and cuDNN are loaded (once per process), else 0. */
int cuda_libs_load(void);
/* Why they did not load (empty when they did). */
const char *cuda_libs_error(void);

/* ---- status ------------------------------------------------------------- */

static inline bl_status cu_status(cudaError_t e) {
    if (e == cudaSuccess) return BL_OK;
    return e == cudaErrorMemoryAllocation ? BL_ERR_NOMEM : BL_ERR_DEVICE;
}
static inline bl_status blas_status(cublasStatus_t e) {
    if (e == CUBLAS_STATUS_SUCCESS) return BL_OK;
    return e == CUBLAS_STATUS_ALLOC_FAILED ? BL_ERR_NOMEM : BL_ERR_DEVICE;
}
static inline bl_status dnn_status(cudnnStatus_t e) {
    if (e == CUDNN_STATUS_SUCCESS) return BL_OK;
    return e == CUDNN_STATUS_ALLOC_FAILED ? BL_ERR_NOMEM : BL_ERR_DEVICE;
}
#define CU(call)                                                                                   \
    do {                                                                                           \
        bl_status st_ = cu_status(call);                                                           \
        if (st_) return st_;                                                                       \
    } while (0)
#define BLAS(call)                                                                                 \
    do {                                                                                           \
        bl_status st_ = blas_status(call);                                                         \
        if (st_) return st_;                                                                       \
    } while (0)
#define DNN(call)                                                                                  \
    do {                                                                                           \
        bl_status st_ = dnn_status(call);                                                          \
        if (st_) return st_;                                                                       \
    } while (0)

/* The context's state, with its device current on this thread. */
static inline cuda_state *S(bl_backend *be) {
    cuda_state *s = be->impl;
    if (s) cudaSetDevice(s->device);
    return s;
}
#define STATE(be)                                                                                  \
    cuda_state *s = S(be);                                                                         \
    if (!s) return BL_ERR_DEVICE /* a shared instance: only an opened copy runs */

/* ---- convolutions (cuda_conv.c) ----------------------------------------- */
/* Frees a plan's descriptors (state_free). */
void cuda_plan_destroy(conv_plan *p);
size_t cuda_conv2d_workspace_floats(const bl_backend *be, const bl_conv_dims *d);
bl_status cuda_conv2d_forward(bl_backend *be, float *out, const float *in, const float *w,
                              const float *b, float *ws, const bl_conv_dims *d, int relu);
bl_status cuda_conv2d_backward(bl_backend *be, float *din, float *dw, float *db, float *dout,
                               const float *out, const float *in, const float *w, float *ws,
                               const bl_conv_dims *d, int relu);

#endif
