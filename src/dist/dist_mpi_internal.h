/* Shared between dist_mpi.c (the API) and dist_ring.c (the gradient allreduce). */
#ifndef BL_DIST_MPI_INTERNAL_H
#define BL_DIST_MPI_INTERNAL_H
#include <stdint.h>
#include <mpi.h>
#include <pthread.h>
#include <signal.h>
#include "batchlab/dist.h"

/* One ring allreduce of buf[0..n) in flight: 2(N-1) steps, each a send to the
 * right neighbour and a receive from the left one; the first N-1 reduce a chunk
 * (reduce-scatter), the last N-1 pass the reduced chunks on (allgather). */
typedef struct ring_op {
    float *buf;
    size_t n;
    float *tmp;                   /* receive buffer of the reduce-scatter steps (dist scratch) */
    uint16_t *wire_out, *wire_in; /* bf16 staging (dist scratch), NULL for fp32 */
    int step, tag;
    MPI_Request req[2]; /* [0] send, [1] receive */
} ring_op;

struct bl_dist {
    int rank, size, started;
    ring_op ops[BL_DIST_MAX_PENDING];
    int n_ops, first_open; /* ops[0..first_open) are complete */
    float *scratch;        /* per-op receive space, reused once nothing is in flight */
    size_t scratch_cap, scratch_used;
    int seq;
    bl_dist_dtype dtype;
    double comm_s, timeout_s;
    const volatile sig_atomic_t *cancel;
    bl_status broken; /* a failed exchange: every later collective fails at once */
    char broken_msg[256];
    double last_moved; /* bl_now_sec() of the last ring step completed, by any thread */
    /* The progress thread (dist_mpi.c). MPI runs at MPI_THREAD_SERIALIZED: every MPI
     * call and every field above is under mu once the thread runs. */
    int thread_ok, thread_on, quit;
    long thread_steps;
    double poll_s;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

/* Starts a ring allreduce of buf[0..n) (n < 2^30); the caller has room in ops[]. */
bl_status ring_start(bl_dist *d, float *buf, size_t n, bl_error *err);
/* Advances every op as far as it can without waiting; returns how many steps moved,
 * or -1 when MPI reported an error (d->broken set). */
int ring_progress(bl_dist *d);
/* Rank that op i waits on (its left neighbour while a receive is pending). */
int ring_waiting_on(const bl_dist *d);
/* Marks the world broken with a message; returns its status. */
bl_status dist_break(bl_dist *d, bl_status st, bl_error *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
