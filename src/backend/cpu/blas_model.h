/* Internal to the CPU backend: what the BLAS library in use does with its
 * own memory and threads, for the memory model (gemm.c, conv.c, winograd.c)
 * and for the kernels that want single-threaded sgemm calls (winograd.c).
 * Built once, not per ISA level: nothing here depends on the kernels' ISA. */
#ifndef BL_BACKEND_CPU_BLAS_MODEL_H
#define BL_BACKEND_CPU_BLAS_MODEL_H

#include <stddef.h>

/* OpenBLAS runs an sgemm whose M N K is at most this on the calling thread
 * alone, whatever its thread count (interface/gemm.c: SMP_THRESHOLD_MIN
 * 65536 x GEMM_MULTITHREAD_THRESHOLD, 4 unless the build changed it). */
#define CPU_BLAS_SERIAL_MNK 262144.0

/* The work buffer OpenBLAS gives each thread (x86-64 BUFFER_SIZE, 32 << 22). */
#define CPU_BLAS_BUFFER_BYTES ((size_t)128 << 20)

/* OpenBLAS's sgemm blocking on one core type: it packs A in panels of at
 * most P x Q and B in panels of at most Q x R, in micro-tiles of
 * unroll_m x unroll_n. */
typedef struct cpu_blas_params {
    const char *core; /* the table's name ("Haswell"), or "default" */
    int p, q, r;
    int unroll_m, unroll_n;
} cpu_blas_params;

/* The blocking OpenBLAS 0.3.21 uses for core `corename` (as
 * openblas_get_corename() spells it, any case) on a CPU with l2_kb KiB of L2
 * (the older cores size P from it). Unknown names get Haswell's blocking and
 * a return of 0; known ones return 1. Pure. */
int cpu_blas_params_for(const char *corename, int l2_kb, cpu_blas_params *out);
/* The blocking of the core this process's OpenBLAS chose, looked up once
 * (thread-safe); never NULL. */
const cpu_blas_params *cpu_blas_params_current(void);
/* Bytes of OpenBLAS's buffers a row-major sgemm C(M,N) = A(M,K) B(K,N) touches
 * with `threads` BLAS threads and blocking bp (see blas_model.c). */
size_t cpu_blas_gemm_bytes(const cpu_blas_params *bp, size_t M, size_t N, size_t K, int threads);
/* The thread count a default context gives OpenBLAS: the CPUs this process may
 * use, at most OpenBLAS's 64. The memory model assumes it, so its estimates are
 * a pure function of the shapes on a given machine. */
int cpu_blas_model_threads(void);
/* The largest of three byte counts (a layer's forward and two backward products). */
static inline size_t cpu_max3(size_t a, size_t b, size_t c) {
    size_t m = a > b ? a : b;
    return m > c ? m : c;
}

#endif
