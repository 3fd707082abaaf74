/* Force-included (-include) into every file of a CPU kernel variant (see
 * CMakeLists.txt): gives each external kernel name the variant's suffix, so
 * that the baseline, AVX2 and AVX-512 builds of the same file link into one
 * library side by side. isa.c picks one variant's table at start-up.
 * A kernel added to a variant file and missing here fails the link with a
 * duplicate symbol, so this list cannot silently fall behind. */
#ifndef BL_CPU_ISA_RENAME_H
#define BL_CPU_ISA_RENAME_H

#ifndef BL_CPU_ISA
#error "cpu_isa_rename.h is for the per-ISA kernel builds, which define BL_CPU_ISA"
#endif
#define BL_ISA_CAT2(a, b) a##_##b
#define BL_ISA_CAT(a, b) BL_ISA_CAT2(a, b)
#define BL_ISA_NAME(name) BL_ISA_CAT(name, BL_CPU_ISA)

#define cpu_kernel_table BL_ISA_NAME(cpu_kernel_table)
#define cpu_act_backward BL_ISA_NAME(cpu_act_backward)
#define cpu_act_forward BL_ISA_NAME(cpu_act_forward)
#define cpu_adam_step BL_ISA_NAME(cpu_adam_step)
#define cpu_all_finite BL_ISA_NAME(cpu_all_finite)
#define cpu_avgpool_backward BL_ISA_NAME(cpu_avgpool_backward)
#define cpu_avgpool_forward BL_ISA_NAME(cpu_avgpool_forward)
#define cpu_axpy BL_ISA_NAME(cpu_axpy)
#define cpu_batchnorm_backward BL_ISA_NAME(cpu_batchnorm_backward)
#define cpu_batchnorm_forward_eval BL_ISA_NAME(cpu_batchnorm_forward_eval)
#define cpu_batchnorm_forward_train BL_ISA_NAME(cpu_batchnorm_forward_train)
#define cpu_conv2d_backward BL_ISA_NAME(cpu_conv2d_backward)
#define cpu_conv2d_blas_bytes BL_ISA_NAME(cpu_conv2d_blas_bytes)
#define cpu_conv2d_forward BL_ISA_NAME(cpu_conv2d_forward)
#define cpu_conv2d_relu_backward BL_ISA_NAME(cpu_conv2d_relu_backward)
#define cpu_conv2d_relu_forward BL_ISA_NAME(cpu_conv2d_relu_forward)
#define cpu_conv2d_workspace_floats BL_ISA_NAME(cpu_conv2d_workspace_floats)
#define cpu_copy BL_ISA_NAME(cpu_copy)
#define cpu_dense_backward BL_ISA_NAME(cpu_dense_backward)
#define cpu_dense_blas_bytes BL_ISA_NAME(cpu_dense_blas_bytes)
#define cpu_dense_forward BL_ISA_NAME(cpu_dense_forward)
#define cpu_dense_relu_backward BL_ISA_NAME(cpu_dense_relu_backward)
#define cpu_dense_relu_forward BL_ISA_NAME(cpu_dense_relu_forward)
#define cpu_dropout_backward BL_ISA_NAME(cpu_dropout_backward)
#define cpu_dropout_forward BL_ISA_NAME(cpu_dropout_forward)
#define cpu_fill BL_ISA_NAME(cpu_fill)
#define cpu_gemm BL_ISA_NAME(cpu_gemm)
#define cpu_gemm_blas_bytes BL_ISA_NAME(cpu_gemm_blas_bytes)
#define cpu_maxpool_backward BL_ISA_NAME(cpu_maxpool_backward)
#define cpu_maxpool_forward BL_ISA_NAME(cpu_maxpool_forward)
#define cpu_mse_backward BL_ISA_NAME(cpu_mse_backward)
#define cpu_mse_forward BL_ISA_NAME(cpu_mse_forward)
#define cpu_scale BL_ISA_NAME(cpu_scale)
#define cpu_sgd_step BL_ISA_NAME(cpu_sgd_step)
#define cpu_skinny_din BL_ISA_NAME(cpu_skinny_din)
#define cpu_skinny_dw BL_ISA_NAME(cpu_skinny_dw)
#define cpu_skinny_forward BL_ISA_NAME(cpu_skinny_forward)
#define cpu_softmax_xent_backward BL_ISA_NAME(cpu_softmax_xent_backward)
#define cpu_softmax_xent_forward BL_ISA_NAME(cpu_softmax_xent_forward)
#define cpu_sumsq BL_ISA_NAME(cpu_sumsq)
#define cpu_winograd_applies BL_ISA_NAME(cpu_winograd_applies)
#define cpu_winograd_backward BL_ISA_NAME(cpu_winograd_backward)
#define cpu_winograd_blas_bytes BL_ISA_NAME(cpu_winograd_blas_bytes)
#define cpu_winograd_forward BL_ISA_NAME(cpu_winograd_forward)
#define cpu_winograd_workspace_floats BL_ISA_NAME(cpu_winograd_workspace_floats)

#endif
