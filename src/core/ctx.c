/* The context carries what would otherwise be globals: thread count, the
 * kernel table, and memory accounting. The thread count goes both to
 * OpenBLAS and to the backend's own pool for the passes between BLAS calls;
 * the two never run at the same time, so together they use `threads` cores. */
#include <string.h>
#include <unistd.h>
#include "batchlab/backend.h"
#include "batchlab/core.h"

extern void openblas_set_num_threads(int);

void bl_ctx_init(bl_ctx *ctx, int threads) {
    memset(ctx, 0, sizeof *ctx);
    if (threads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? (int)n : 1;
    }
    ctx->threads = threads;
    ctx->be = bl_backend_cpu();
    openblas_set_num_threads(threads);
    if (ctx->be->set_threads) ctx->be->set_threads(threads);
}
