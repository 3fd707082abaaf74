/* See gemm_trace.h. The interposed entry points cost one branch each when
 * neither tracing nor timing is on, and a clock read on each side of the
 * call when timing is (about 40 ns against the >= 10 us of the calls that
 * matter). The library may call BLAS from several threads at once (the
 * Winograd GEMMs run on the pool's threads), so the trace and the timer take
 * a lock, and the timer counts wall time during which at least one call is
 * running: overlapping calls are not counted twice. */
#define _GNU_SOURCE
#include "gemm_trace.h"
#include <cblas.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#undef I

typedef void (*sgemm_fn)(const enum CBLAS_ORDER, const enum CBLAS_TRANSPOSE,
                         const enum CBLAS_TRANSPOSE, const blasint, const blasint, const blasint,
                         const float, const float *, const blasint, const float *, const blasint,
                         const float, float *, const blasint);
typedef void (*sgemv_fn)(const enum CBLAS_ORDER, const enum CBLAS_TRANSPOSE, const blasint,
                         const blasint, const float, const float *, const blasint, const float *,
                         const blasint, const float, float *, const blasint);

typedef void (*sger_fn)(const enum CBLAS_ORDER, const blasint, const blasint, const float,
                        const float *, const blasint, const float *, const blasint, float *,
                        const blasint);

static sgemm_fn real_sgemm;
static sgemv_fn real_sgemv;
static sger_fn real_sger;
static gemm_call *trace;
static int trace_n, trace_cap, tracing, timing;
static double timed_s, active_since;
static int active;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void resolve_once(void) {
    real_sgemm = (sgemm_fn)dlsym(RTLD_NEXT, "cblas_sgemm");
    real_sgemv = (sgemv_fn)dlsym(RTLD_NEXT, "cblas_sgemv");
    real_sger = (sger_fn)dlsym(RTLD_NEXT, "cblas_sger");
}

static void resolve(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, resolve_once);
}

static void record(const gemm_call *c) {
    pthread_mutex_lock(&lock);
    if (trace_n == trace_cap) {
        int cap = trace_cap ? 2 * trace_cap : 256;
        gemm_call *t = realloc(trace, (size_t)cap * sizeof *t);
        if (!t) { /* the trace is then short; flops come out low, never wrong shapes */
            pthread_mutex_unlock(&lock);
            return;
        }
        trace = t, trace_cap = cap;
    }
    trace[trace_n++] = *c;
    pthread_mutex_unlock(&lock);
}

static void timer_enter(void) {
    pthread_mutex_lock(&lock);
    if (active++ == 0) active_since = now_s();
    pthread_mutex_unlock(&lock);
}

static void timer_leave(void) {
    pthread_mutex_lock(&lock);
    if (--active == 0) timed_s += now_s() - active_since;
    pthread_mutex_unlock(&lock);
}

void cblas_sgemm(const enum CBLAS_ORDER order, const enum CBLAS_TRANSPOSE ta,
                 const enum CBLAS_TRANSPOSE tb, const blasint M, const blasint N, const blasint K,
                 const float alpha, const float *A, const blasint lda, const float *B,
                 const blasint ldb, const float beta, float *C, const blasint ldc) {
    resolve();
    if (tracing) {
        gemm_call c = {0,
                       order == CblasRowMajor,
                       ta != CblasNoTrans,
                       tb != CblasNoTrans,
                       M,
                       N,
                       K,
                       lda,
                       ldb,
                       ldc,
                       alpha,
                       beta};
        record(&c);
    }
    if (!timing) {
        real_sgemm(order, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    timer_enter();
    real_sgemm(order, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    timer_leave();
}

void cblas_sgemv(const enum CBLAS_ORDER order, const enum CBLAS_TRANSPOSE ta, const blasint M,
                 const blasint K, const float alpha, const float *A, const blasint lda,
                 const float *x, const blasint incx, const float beta, float *y,
                 const blasint incy) {
    resolve();
    if (tracing) {
        gemm_call c = {
            1,   order == CblasRowMajor, ta != CblasNoTrans, 0, M, 0, K, lda, incx, incy, alpha,
            beta};
        record(&c);
    }
    if (!timing) {
        real_sgemv(order, ta, M, K, alpha, A, lda, x, incx, beta, y, incy);
        return;
    }
    timer_enter();
    real_sgemv(order, ta, M, K, alpha, A, lda, x, incx, beta, y, incy);
    timer_leave();
}

void cblas_sger(const enum CBLAS_ORDER order, const blasint M, const blasint N, const float alpha,
                const float *x, const blasint incx, const float *y, const blasint incy, float *A,
                const blasint lda) {
    resolve();
    if (tracing) {
        gemm_call c = {2, order == CblasRowMajor, 0, 0, M, N, 0, lda, incx, incy, alpha, 1.0f};
        record(&c);
    }
    if (!timing) {
        real_sger(order, M, N, alpha, x, incx, y, incy, A, lda);
        return;
    }
    timer_enter();
    real_sger(order, M, N, alpha, x, incx, y, incy, A, lda);
    timer_leave();
}

/* The library's own small-batch dense kernels (src/backend/cpu/skinny.c) call
 * this weak hook with each product's shape: recorded as the sgemm it stands
 * for, so the replay (the limit) still contains it. */
void cpu_gemm_note(int trans_a, int trans_b, int M, int N, int K) {
    if (!tracing) return;
    gemm_call c = {
        0, 1,    trans_a != 0,         trans_b != 0, M, N, K, trans_a ? M : K, trans_b ? K : N,
        N, 1.0f, trans_a ? 1.0f : 0.0f};
    record(&c);
}

void gemm_trace_start(void) {
    trace_n = 0;
    tracing = 1;
}

int gemm_trace_stop(const gemm_call **calls) {
    tracing = 0;
    *calls = trace;
    return trace_n;
}

double gemm_trace_flops(const gemm_call *calls, int n) {
    double f = 0;
    for (int i = 0; i < n; i++)
        f += calls[i].is_gemv == 1   ? 2.0 * calls[i].M * calls[i].K
             : calls[i].is_gemv == 2 ? 2.0 * calls[i].M * calls[i].N
                                     : 2.0 * calls[i].M * calls[i].N * calls[i].K;
    return f;
}

void gemm_timing(int on) {
    timing = on;
}

double gemm_timing_seconds(void) {
    double s = timed_s;
    timed_s = 0;
    return s;
}

/* ---- replay ------------------------------------------------------------ */

typedef struct {
    gemm_call shape;
    float *A, *B, *C;
} replay_buf;

struct gemm_replay {
    gemm_call *calls;
    int *buf_of; /* calls[i] uses bufs[buf_of[i]] */
    int n, nbuf;
    replay_buf *bufs;
};

static int same_shape(const gemm_call *a, const gemm_call *b) {
    return a->is_gemv == b->is_gemv && a->row_major == b->row_major && a->ta == b->ta &&
           a->tb == b->tb && a->M == b->M && a->N == b->N && a->K == b->K && a->lda == b->lda &&
           a->ldb == b->ldb && a->ldc == b->ldc;
}

/* Floats each operand spans in memory (row-major or column-major alike:
 * rows/cols of the stored matrix times its leading dimension). */
static void operand_sizes(const gemm_call *c, size_t *na, size_t *nb, size_t *nc) {
    if (c->is_gemv == 2) { /* ger: x (M), y (N), A (M x N) */
        *na = (size_t)(c->row_major ? c->M : c->N) * (size_t)c->lda;
        *nb = (size_t)c->M * (size_t)c->ldb;
        *nc = (size_t)c->N * (size_t)c->ldc;
        return;
    }
    if (c->is_gemv) {
        size_t rows = c->row_major ? (size_t)c->M : (size_t)c->K;
        *na = rows * (size_t)c->lda;
        size_t xn = c->ta ? (size_t)c->M : (size_t)c->K, yn = c->ta ? (size_t)c->K : (size_t)c->M;
        *nb = xn * (size_t)c->ldb;
        *nc = yn * (size_t)c->ldc;
        return;
    }
    /* stored rows of A (row-major): M if not transposed, else K; column-major swaps */
    size_t a_outer = c->row_major ? (c->ta ? c->K : c->M) : (c->ta ? c->M : c->K);
    size_t b_outer = c->row_major ? (c->tb ? c->N : c->K) : (c->tb ? c->K : c->N);
    size_t c_outer = c->row_major ? (size_t)c->M : (size_t)c->N;
    *na = a_outer * (size_t)c->lda;
    *nb = b_outer * (size_t)c->ldb;
    *nc = c_outer * (size_t)c->ldc;
}

static float *random_floats(size_t n, unsigned long *state) {
    float *x = malloc((n ? n : 1) * sizeof *x);
    if (!x) return NULL;
    for (size_t i = 0; i < n; i++) {
        *state = *state * 6364136223846793005UL + 1442695040888963407UL;
        x[i] = (float)((double)(*state >> 40) / (double)(1UL << 24) - 0.5) * 0.2f;
    }
    return x;
}

/* The same product as one sgemm (row-major, unit strides): the limit is the
 * sgemm rate on the step's shapes, whichever BLAS routine the step used. */
static gemm_call as_sgemm(const gemm_call *c) {
    gemm_call g = *c;
    if (!c->row_major || c->is_gemv == 0 || c->ldb != 1 || c->ldc != 1) return g;
    g.is_gemv = 0;
    if (c->is_gemv == 2) { /* A(M,N) += x y^T: (M x 1) @ (1 x N) */
        g.ta = 0, g.tb = 0, g.K = 1, g.ldb = c->N, g.ldc = c->lda, g.lda = 1, g.beta = 1.0f;
    } else if (!c->ta) { /* y(M) = A(M,K) x: (1 x K) @ A^T */
        g.ta = 0, g.tb = 1, g.M = 1, g.N = c->M, g.K = c->K, g.ldb = c->lda, g.lda = c->K,
        g.ldc = c->M;
    } else { /* y(K) = A^T x(M): (1 x M) @ A(M,K) */
        g.ta = 0, g.tb = 0, g.M = 1, g.N = c->K, g.K = c->M, g.ldb = c->lda, g.lda = c->M,
        g.ldc = c->K;
    }
    return g;
}

gemm_replay *gemm_replay_create(const gemm_call *calls_in, int n, unsigned long seed) {
    gemm_replay *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->calls = malloc((size_t)(n ? n : 1) * sizeof *r->calls);
    r->buf_of = malloc((size_t)(n ? n : 1) * sizeof *r->buf_of);
    r->bufs = calloc((size_t)(n ? n : 1), sizeof *r->bufs);
    if (!r->calls || !r->buf_of || !r->bufs) {
        gemm_replay_free(r);
        return NULL;
    }
    r->n = n;
    for (int i = 0; i < n; i++)
        r->calls[i] = as_sgemm(&calls_in[i]);
    const gemm_call *calls = r->calls;
    for (int i = 0; i < n; i++) {
        int j = 0;
        while (j < r->nbuf && !same_shape(&r->bufs[j].shape, &calls[i]))
            j++;
        if (j == r->nbuf) {
            size_t na, nb, nc;
            operand_sizes(&calls[i], &na, &nb, &nc);
            replay_buf *b = &r->bufs[r->nbuf++];
            b->shape = calls[i];
            b->A = random_floats(na, &seed);
            b->B = random_floats(nb, &seed);
            b->C = random_floats(nc, &seed);
            if (!b->A || !b->B || !b->C) {
                gemm_replay_free(r);
                return NULL;
            }
        }
        r->buf_of[i] = j;
    }
    return r;
}

static void replay_range(gemm_replay *r, int shape) {
    resolve();
    for (int i = 0; i < r->n; i++) {
        if (shape >= 0 && r->buf_of[i] != shape) continue;
        const gemm_call *c = &r->calls[i];
        replay_buf *b = &r->bufs[r->buf_of[i]];
        enum CBLAS_ORDER o = c->row_major ? CblasRowMajor : CblasColMajor;
        enum CBLAS_TRANSPOSE ta = c->ta ? CblasTrans : CblasNoTrans;
        /* the recorded beta: accumulating into C costs a read of C, as in the step */
        if (c->is_gemv == 2)
            real_sger(o, c->M, c->N, c->alpha, b->B, c->ldb, b->C, c->ldc, b->A, c->lda);
        else if (c->is_gemv)
            real_sgemv(o, ta, c->M, c->K, c->alpha, b->A, c->lda, b->B, c->ldb, c->beta, b->C,
                       c->ldc);
        else
            real_sgemm(o, ta, c->tb ? CblasTrans : CblasNoTrans, c->M, c->N, c->K, c->alpha, b->A,
                       c->lda, b->B, c->ldb, c->beta, b->C, c->ldc);
    }
}

void gemm_replay_run(gemm_replay *r) {
    replay_range(r, -1);
}

int gemm_replay_shapes(const gemm_replay *r) {
    return r->nbuf;
}

const gemm_call *gemm_replay_shape(const gemm_replay *r, int j, int *count) {
    int n = 0;
    for (int i = 0; i < r->n; i++)
        n += r->buf_of[i] == j;
    *count = n;
    return &r->bufs[j].shape;
}

void gemm_replay_run_shape(gemm_replay *r, int j) {
    replay_range(r, j);
}

void gemm_replay_free(gemm_replay *r) {
    if (!r) return;
    for (int j = 0; j < r->nbuf; j++)
        free(r->bufs[j].A), free(r->bufs[j].B), free(r->bufs[j].C);
    free(r->bufs), free(r->buf_of), free(r->calls), free(r);
}
