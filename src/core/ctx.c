/* The context carries what would otherwise be globals: thread count, the
 * backend, and memory accounting. The thread count goes both to OpenBLAS and
 * to the context's own thread pool for the passes between BLAS calls; the two
 * never run at the same time, so together they use `threads` cores.
 *
 * The pool belongs to the context (ctx->backend, the context's copy of the
 * shared backend, carries it to the kernels), so contexts with different
 * thread counts live side by side. OpenBLAS's thread count is one per
 * process (0.3.21 has no per-call setting), and its setter is not safe
 * against a concurrent call, so every change goes through bl_ctx_init under
 * one lock, and only when the count differs. No kernel changes it: the
 * backend gets single-threaded BLAS where it wants it from the size of each
 * call instead (winograd.c). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "batchlab/backend.h"
#include "batchlab/core.h"

extern void openblas_set_num_threads(int);
extern int openblas_get_num_threads(void);

static pthread_mutex_t blas_threads_lock = PTHREAD_MUTEX_INITIALIZER;

/* ctx->backend becomes an opened copy of shared, keeping the context's pool;
 * the backend it had is closed. On failure the context keeps its backend. */
static bl_status use_backend(bl_ctx *ctx, const bl_backend *shared, bl_error *err) {
    /* already open on that device (bl_ctx_init took it from $BATCHLAB_DEVICE) */
    if (shared->ops->open && ctx->backend.ops == shared->ops &&
        ctx->backend.device == shared->device && ctx->backend.impl)
        return BL_OK;
    bl_backend next = *shared;
    next.pool = ctx->backend.pool;
    if (next.ops->open) {
        bl_status st = next.ops->open(&next, err);
        if (st) return st;
    }
    if (ctx->backend.ops && ctx->backend.ops->close) ctx->backend.ops->close(&ctx->backend);
    ctx->backend = next;
    ctx->be = &ctx->backend;
    return BL_OK;
}

void bl_ctx_init(bl_ctx *ctx, int threads) {
    memset(ctx, 0, sizeof *ctx);
    if (threads <= 0) threads = bl_cpu_count_usable();
    ctx->threads = threads;
    /* No pool when memory is short: the loops then run on the calling thread. */
    bl_cpu_pool_create(&ctx->backend.pool, threads, NULL);
    if (bl_ctx_set_device(ctx, NULL, NULL)) {
        bl_backend *cpu;
        bl_backend_get(&cpu, "cpu", NULL);
        use_backend(ctx, cpu, NULL); /* the cpu backend has nothing to open */
    }
    pthread_mutex_lock(&blas_threads_lock);
    if (openblas_get_num_threads() != threads) openblas_set_num_threads(threads);
    pthread_mutex_unlock(&blas_threads_lock);
    ctx->be->ops->set_threads(ctx->be, threads);
}

void bl_ctx_free(bl_ctx *ctx) {
    if (!ctx) return;
    /* close leaves the instance closed (a second close does nothing) */
    if (ctx->backend.ops && ctx->backend.ops->close) ctx->backend.ops->close(&ctx->backend);
    bl_cpu_pool_free(ctx->backend.pool);
    ctx->backend.pool = NULL;
}

bl_status bl_ctx_set_device(bl_ctx *ctx, const char *device, bl_error *err) {
    if (!device || !*device) device = getenv("BATCHLAB_DEVICE");
    bl_backend *be;
    bl_status st = bl_backend_get(&be, device, err);
    if (st) return st;
    return use_backend(ctx, be, err);
}

bl_status bl_ctx_set_tf32(bl_ctx *ctx, int on, bl_error *err) {
    bl_backend *be = &ctx->backend;
    if (!be->ops->set_tf32) {
        if (!on) return BL_OK; /* nothing to forbid */
        return bl_fail(err, BL_ERR_ARG,
                       "device %s has no TF32 math (TF32 is a tensor-core format of NVIDIA GPUs "
                       "from compute capability 8.0; use --device cuda)",
                       be->name);
    }
    return be->ops->set_tf32(be, on, err);
}
