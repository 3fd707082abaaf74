/* Data-parallel training across processes (MPI). A bl_dist is a world of
 * `size` ranks; without MPI support, or when not launched by mpirun, it is a
 * world of one and every call is a cheap no-op, so the trainer has one code
 * path. Every collective must be called by all ranks in the same order. */
#ifndef BATCHLAB_DIST_H
#define BATCHLAB_DIST_H

#include <signal.h>
#include <stddef.h>
#include "batchlab/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bl_dist bl_dist;

/* 1 if this build has MPI support. */
int bl_dist_built(void);
/* MPI library version string, or a sentence saying why it is unavailable. */
const char *bl_dist_library(void);

/* Starts MPI when this process was launched by mpirun (MPI built in), else a
 * world of one. *out is owned by the caller: bl_dist_finalize frees it. */
bl_status bl_dist_init(bl_dist **out, bl_error *err);
void bl_dist_finalize(bl_dist *d);
int bl_dist_rank(const bl_dist *d); /* 0 for NULL */
int bl_dist_size(const bl_dist *d); /* 1 for NULL */

/* How gradients travel: fp32, or bf16 on the wire with fp32 accumulation (half the
 * bytes; every rank still ends with the same values). */
typedef enum { BL_DIST_FP32, BL_DIST_BF16 } bl_dist_dtype;
#define BL_DIST_DEFAULT_TIMEOUT_S 60.0
/* timeout_s: a wait that sees no progress for this long fails, naming the rank it waits
 * on, and the world is broken from then on (every later collective fails at once and
 * bl_dist_finalize does not wait for the others). cancel (may be NULL): a flag a signal
 * handler sets; a wait that sees it set fails the same way. */
void bl_dist_configure(bl_dist *d, double timeout_s, bl_dist_dtype dtype,
                       const volatile sig_atomic_t *cancel);
/* 1 once an exchange failed (timeout, lost peer): the other ranks may be gone. */
int bl_dist_broken(const bl_dist *d);

/* In-place sums over ranks. The f32 sum is the gradient allreduce (a ring; see
 * bl_dist_configure for its wire type); the f64 one is exact fp64. */
bl_status bl_dist_allreduce_f32(bl_dist *d, float *buf, size_t n, bl_error *err);
bl_status bl_dist_allreduce_f64(bl_dist *d, double *buf, int n, bl_error *err);
/* *x becomes the largest *x of all ranks (a decision every rank must share). */
bl_status bl_dist_allreduce_max_f64(bl_dist *d, double *x, bl_error *err);

/* Non-blocking sum of buf[0..n) (a bucket of the gradient arena); up to
 * BL_DIST_MAX_PENDING may be in flight; bl_dist_wait_all completes them. */
#define BL_DIST_MAX_PENDING 64
bl_status bl_dist_iallreduce_f32(bl_dist *d, float *buf, size_t n, bl_error *err);
void bl_dist_progress(bl_dist *d); /* let MPI advance pending reductions */
/* MPI moves data only inside its calls. While reductions are pending, a progress
 * thread advances them every poll_us microseconds (default below), so the link stays
 * busy through a long layer's backward, not only between layers. 0 turns the thread
 * off (progress then happens in bl_dist_progress and the waits only). Takes effect
 * for reductions started afterwards; a no-op in a world of one. */
#define BL_DIST_DEFAULT_POLL_US 500.0
void bl_dist_set_poll(bl_dist *d, double poll_us);
/* Ring steps the progress thread has completed so far (0 without one; it starts with
 * the first non-blocking reduction): how much of the exchange it carried. */
long bl_dist_thread_steps(const bl_dist *d);
bl_status bl_dist_wait_all(bl_dist *d, bl_error *err);

/* Agreement on failure: each rank passes its own status (and message in err).
 * Returns BL_OK on every rank if all were OK; otherwise the status of the lowest
 * failing rank on every rank, with err->msg set to "rank R: <its message>" when
 * the world has more than one rank. */
bl_status bl_dist_agree(bl_dist *d, bl_status st, bl_error *err);

/* Seconds spent inside reductions so far (for step-time accounting). */
double bl_dist_comm_seconds(const bl_dist *d);

#ifdef __cplusplus
}
#endif

#endif
