/* The CPU backend's kernel table. A static const struct so that it needs no
 * initialisation, no allocation and can be shared by every context and
 * thread; layers only ever see it through bl_backend. This file is compiled
 * once per ISA level like the kernels it names (cpu_kernel_table gets the
 * level's suffix), and isa.c hands out the table of the level in use. */
#include "backend/cpu/cpu.h"

/* The table's gemm: sgemm runs on OpenBLAS's own threads, not on the pool. */
static void gemm(bl_cpu_pool *pool, int trans_a, int trans_b, int M, int N, int K, float alpha,
                 const float *A, int lda, const float *Bm, int ldb, float beta, float *C, int ldc) {
    (void)pool;
    cpu_gemm(trans_a, trans_b, M, N, K, alpha, A, lda, Bm, ldb, beta, C, ldc);
}

static const bl_kernels cpu_backend = {
    .name = "cpu",
    .gemm = gemm,
    .dense_forward = cpu_dense_forward,
    .dense_backward = cpu_dense_backward,
    .conv2d_workspace_floats = cpu_conv2d_workspace_floats,
    .conv2d_forward = cpu_conv2d_forward,
    .conv2d_backward = cpu_conv2d_backward,
    .maxpool_forward = cpu_maxpool_forward,
    .maxpool_backward = cpu_maxpool_backward,
    .avgpool_forward = cpu_avgpool_forward,
    .avgpool_backward = cpu_avgpool_backward,
    .act_forward = cpu_act_forward,
    .act_backward = cpu_act_backward,
    .dropout_forward = cpu_dropout_forward,
    .dropout_backward = cpu_dropout_backward,
    .batchnorm_forward_train = cpu_batchnorm_forward_train,
    .batchnorm_forward_eval = cpu_batchnorm_forward_eval,
    .batchnorm_backward = cpu_batchnorm_backward,
    .softmax_xent_forward = cpu_softmax_xent_forward,
    .softmax_xent_backward = cpu_softmax_xent_backward,
    .mse_forward = cpu_mse_forward,
    .mse_backward = cpu_mse_backward,
    .sumsq = cpu_sumsq,
    .scale = cpu_scale,
    .axpy = cpu_axpy,
    .fill = cpu_fill,
    .copy = cpu_copy,
    .all_finite = cpu_all_finite,
    .sgd_step = cpu_sgd_step,
    .adam_step = cpu_adam_step,
    .dense_relu_forward = cpu_dense_relu_forward,
    .dense_relu_backward = cpu_dense_relu_backward,
    .conv2d_relu_forward = cpu_conv2d_relu_forward,
    .conv2d_relu_backward = cpu_conv2d_relu_backward,
    .dense_blas_bytes = cpu_dense_blas_bytes,
    .conv2d_blas_bytes = cpu_conv2d_blas_bytes,
};

const bl_kernels *cpu_kernel_table(void) {
    return &cpu_backend;
}
