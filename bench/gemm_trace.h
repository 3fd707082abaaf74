/* GEMM tracing for bench_step: the benchmark binary defines cblas_sgemm,
 * cblas_sgemv and cblas_sger itself, so every call the library makes lands here first
 * (symbols in the executable win over libopenblas.so) and is forwarded to
 * OpenBLAS through dlsym(RTLD_NEXT). While tracing is on, each call's shape
 * is recorded; while timing is on, the seconds spent inside BLAS are summed.
 * A recorded step can then be replayed as bare BLAS calls on scratch
 * buffers: the time of that replay is what the step would take if
 * everything but the BLAS calls were free, which is the limit of this design.
 * Benchmark-only code: it uses globals, prints nothing and never exits. */
#ifndef BENCH_GEMM_TRACE_H
#define BENCH_GEMM_TRACE_H

#include <stddef.h>

typedef struct gemm_call {
    int is_gemv;           /* 0: sgemm; 1: sgemv (y = alpha op(A) x + beta y), N unused;
                            * 2: sger (A(M,N) += alpha x y^T), K unused */
    int row_major, ta, tb; /* tb unused for gemv */
    int M, N, K;           /* gemv: A is M x K as stored; op(A) per ta */
    int lda, ldb, ldc;     /* gemv: ldb = incx, ldc = incy */
    float alpha, beta;
} gemm_call;

/* Start recording shapes (clears the previous trace). */
void gemm_trace_start(void);
/* Stop recording; returns the number of calls recorded and sets *calls. */
int gemm_trace_stop(const gemm_call **calls);
/* Floating-point operations of a trace (2 M N K per gemm, 2 M K per gemv,
 * 2 M N per ger). */
double gemm_trace_flops(const gemm_call *calls, int n);

/* Accumulate wall seconds spent inside BLAS while on. */
void gemm_timing(int on);
double gemm_timing_seconds(void); /* and resets the sum */

/* A replayable copy of a trace with its own buffers (one set per distinct
 * shape, random contents), every call turned into the sgemm of the same
 * product (a gemv is a GEMM with one row, a ger one with K = 1), since the
 * limit is the sgemm rate on the step's shapes. NULL if out of memory. */
typedef struct gemm_replay gemm_replay;
gemm_replay *gemm_replay_create(const gemm_call *calls, int n, unsigned long seed);
void gemm_replay_run(gemm_replay *r);
/* Distinct shapes of a replay; shape j (as sgemm) with its number of calls;
 * run only the calls of shape j. For the per-shape profile (--detail). */
int gemm_replay_shapes(const gemm_replay *r);
const gemm_call *gemm_replay_shape(const gemm_replay *r, int j, int *count);
void gemm_replay_run_shape(gemm_replay *r, int j);
void gemm_replay_free(gemm_replay *r);

#endif
