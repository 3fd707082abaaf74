/* The context carries what would otherwise be globals: thread count, the
 * backend, and memory accounting. The thread count goes both to OpenBLAS and
 * to the backend's own pool for the passes between BLAS calls; the two never
 * run at the same time, so together they use `threads` cores.
 *
 * OpenBLAS's thread count is one per process, and its setter is not safe
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

void bl_ctx_init(bl_ctx *ctx, int threads) {
    memset(ctx, 0, sizeof *ctx);
    if (threads <= 0) threads = bl_cpu_count_usable();
    ctx->threads = threads;
    if (bl_ctx_set_device(ctx, NULL, NULL)) bl_backend_get(&ctx->be, "cpu", NULL);
    pthread_mutex_lock(&blas_threads_lock);
    if (openblas_get_num_threads() != threads) openblas_set_num_threads(threads);
    pthread_mutex_unlock(&blas_threads_lock);
    ctx->be->ops->set_threads(ctx->be, threads);
}

bl_status bl_ctx_set_device(bl_ctx *ctx, const char *device, bl_error *err) {
    if (!device || !*device) device = getenv("BATCHLAB_DEVICE");
    bl_backend *be;
    bl_status st = bl_backend_get(&be, device, err);
    if (st) return st;
    ctx->be = be;
    return BL_OK;
}
