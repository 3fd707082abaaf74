/* Core services shared by every layer: memory accounting, a seeded RNG,
 * clocks and the context struct that carries them (no hidden globals). */
#ifndef BATCHLAB_CORE_H
#define BATCHLAB_CORE_H

#include <stddef.h>
#include <stdint.h>
#include "batchlab/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- memory accounting -------------------------------------------------
 * Every long-lived buffer (arenas, activations, workspace, datasets) goes
 * through a bl_mem so the peak is known exactly; a nonzero limit_bytes makes
 * an allocation that would exceed it fail with BL_ERR_NOMEM instead of
 * risking the OOM killer. Not thread-safe: allocate during setup only. */
typedef struct bl_mem {
    size_t cur_bytes;
    size_t peak_bytes;
    size_t limit_bytes; /* 0 = unlimited */
} bl_mem;

/* 64-byte aligned, zero-filled. `what` names the buffer in the error message.
 * Returns NULL and fills err on failure. m may be NULL (no accounting). */
void *bl_mem_alloc(bl_mem *m, size_t bytes, const char *what, bl_error *err);
/* Free a pointer from bl_mem_alloc (NULL is fine). */
void bl_mem_free(bl_mem *m, void *p);

/* ---- RNG: xoshiro256**, seeded through splitmix64 ----------------------
 * The whole state is 32 bytes, saved in checkpoints for exact resume. */
typedef struct bl_rng {
    uint64_t s[4];
} bl_rng;

void bl_rng_seed(bl_rng *r, uint64_t seed);
uint64_t bl_rng_next(bl_rng *r);
float bl_rng_uniform(bl_rng *r);              /* [0, 1) */
double bl_rng_uniform_double(bl_rng *r);      /* [0, 1) */
float bl_rng_normal(bl_rng *r);               /* N(0, 1) */
uint32_t bl_rng_below(bl_rng *r, uint32_t n); /* uniform in [0, n), n > 0 */
/* Fisher-Yates shuffle of idx[0..n). */
void bl_rng_shuffle(bl_rng *r, uint32_t *idx, size_t n);
/* Derive an independent stream, e.g. per epoch: seed mixed with a tag. */
void bl_rng_derive(bl_rng *out, uint64_t seed, uint64_t tag);

/* ---- clocks ------------------------------------------------------------ */
uint64_t bl_now_ns(void); /* CLOCK_MONOTONIC */
double bl_now_sec(void);
uint64_t bl_thread_cpu_ns(void); /* CPU time of the calling thread (CLOCK_THREAD_CPUTIME_ID) */
/* Peak resident set size of this process in bytes (from getrusage). */
size_t bl_peak_rss_bytes(void);

/* ---- CPUs ----------------------------------------------------------------
 * CPUs this process may use: those in its affinity mask, capped by its
 * cgroup's CPU quota (v2 cpu.max or v1 cfs quota, rounded up); at least 1. */
int bl_cpu_count_usable(void);

/* ---- context ----------------------------------------------------------- */
struct bl_backend_ops;
struct bl_cpu_pool;
struct bl_dist;
/* A backend instance (batchlab/backend.h has its operations). Defined here so
 * that a context holds its own: the ops and memory are the shared backend's,
 * the pool is the context's. */
struct bl_backend {
    const char *name; /* "cpu", "opaque", "cuda" */
    const struct bl_backend_ops *ops;
    void *impl;               /* the backend's own context (a device's: set by its open op) */
    int device;               /* which device of its kind (cuda:N); 0 for the CPU backends */
    int host_visible;         /* 1: its memory is host memory (callers may skip staging) */
    struct bl_cpu_pool *pool; /* threads of its CPU kernels' loops; NULL: the calling thread */
};

typedef struct bl_ctx {
    int threads;               /* compute threads (BLAS + ours) */
    struct bl_backend *be;     /* where the model's memory and kernels live: &backend */
    bl_mem mem;                /* accounting for everything this ctx allocates */
    struct bl_dist *dist;      /* data-parallel world (NULL = single process) */
    struct bl_backend backend; /* this context's instance; owns backend.pool */
} bl_ctx;

/* threads <= 0 picks bl_cpu_count_usable(). Creates the context's thread pool
 * for the backend's own loops with that many threads (workers start on first
 * use; if memory is short there is no pool and those loops run on the calling
 * thread), selects the backend that the environment variable BATCHLAB_DEVICE
 * names ("cpu" when unset or not a backend of this build; see
 * bl_ctx_set_device) and sets the BLAS thread count, which is process-wide in
 * OpenBLAS (serialised with other bl_ctx_init calls; the last call wins).
 * Pair with bl_ctx_free. A struct copy of a context shares its backend
 * instance and pool (be still points into the original): free only the
 * original, after the copy's last use. */
void bl_ctx_init(bl_ctx *ctx, int threads);
/* Stops and frees what the context owns (its thread pool). NULL is fine, and so
 * is a second call; nothing may be running on the context. */
void bl_ctx_free(bl_ctx *ctx);
/* Use the backend called device ("cpu", "opaque"; NULL or "": BATCHLAB_DEVICE,
 * else cpu) from now on. Call before anything is allocated through ctx.
 * BL_ERR_ARG naming the device and the accepted ones otherwise. */
bl_status bl_ctx_set_device(bl_ctx *ctx, const char *device, bl_error *err);
/* Allow (on) or forbid (off, the default) TF32 tensor-core math for the fp32 matmuls
 * and convolutions of ctx's backend, as torch.backends.cuda.matmul.allow_tf32 does.
 * Call after bl_ctx_set_device and before anything is built on ctx. BL_ERR_ARG when
 * the backend has no TF32 math (the CPU backends), naming it. */
bl_status bl_ctx_set_tf32(bl_ctx *ctx, int on, bl_error *err);

#ifdef __cplusplus
}
#endif

#endif
