/* MPI implementation of include/batchlab/dist.h (built when Open MPI is found).
 * MPI is started only when the process was launched by a launcher (mpirun sets
 * OMPI_COMM_WORLD_SIZE / PMIX_RANK / PMI_SIZE), so a plain `batchlab train`
 * never pays for singleton MPI start-up. */
#include <mpi.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "batchlab/core.h"
#include "batchlab/dist.h"
#include "core/alloc.h"
#include "dist/dist_mpi_internal.h"

int bl_dist_built(void) {
    return 1;
}

const char *bl_dist_library(void) {
    static char version[MPI_MAX_LIBRARY_VERSION_STRING]; /* constant once filled */
    int len = 0;
    if (!version[0]) {
        MPI_Get_library_version(version, &len);
        char *nl = strchr(version, ',');
        if (nl) *nl = '\0';
    }
    return version;
}

static int launched_by_mpirun(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_SIZE") ||
           getenv("PMI_RANK");
}

bl_status bl_dist_init(bl_dist **out, bl_error *err) {
    bl_dist *d = bl_calloc(1, sizeof *d);
    if (!d) return bl_fail(err, BL_ERR_NOMEM, "out of memory");
    d->size = 1;
    d->timeout_s = BL_DIST_DEFAULT_TIMEOUT_S;
    if (launched_by_mpirun()) {
        int inited = 0;
        MPI_Initialized(&inited);
        if (!inited && MPI_Init(NULL, NULL) != MPI_SUCCESS) {
            bl_free(d);
            return bl_fail(err, BL_ERR_IO, "MPI_Init failed");
        }
        d->started = !inited;
        MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
        MPI_Comm_size(MPI_COMM_WORLD, &d->size);
        /* Errors come back as codes so a failing call becomes a message, not an abort. */
        MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    }
    *out = d;
    return BL_OK;
}

void bl_dist_configure(bl_dist *d, double timeout_s, bl_dist_dtype dtype,
                       const volatile sig_atomic_t *cancel) {
    if (!d) return;
    d->timeout_s = timeout_s > 0 ? timeout_s : BL_DIST_DEFAULT_TIMEOUT_S;
    d->dtype = dtype;
    d->cancel = cancel;
}

int bl_dist_broken(const bl_dist *d) {
    return d && d->broken;
}

void bl_dist_finalize(bl_dist *d) {
    if (!d) return;
    /* MPI_Finalize waits for every rank: after a lost peer it would never return.
     * Exiting without it makes mpirun end the job on every host. */
    if (d->started && !d->broken) MPI_Finalize();
    bl_free(d->scratch);
    bl_free(d);
}

int bl_dist_rank(const bl_dist *d) {
    return d ? d->rank : 0;
}
int bl_dist_size(const bl_dist *d) {
    return d ? d->size : 1;
}
double bl_dist_comm_seconds(const bl_dist *d) {
    return d ? d->comm_s : 0;
}

/* The rank a wait depends on, for messages: the ring knows; for a collective of
 * two ranks it is the other one. */
static int peer_of(bl_dist *d, int ring) {
    return ring ? ring_waiting_on(d) : d->size == 2 ? 1 - d->rank : -1;
}

/* Waits for reqs[0..n) and every pending ring op, failing after d->timeout_s
 * without progress (or on the cancel flag) with the rank it waited on. */
static bl_status wait_reqs(bl_dist *d, MPI_Request *reqs, int n, const char *what,
                           bl_error *err) {
    double last = bl_now_sec();
    for (;;) {
        int ring = d->first_open < d->n_ops, moved = ring ? ring_progress(d) : 0, done = 1;
        if (moved < 0) return bl_fail(err, d->broken, "%s while %s", d->broken_msg, what);
        if (moved > 0) last = bl_now_sec();
        int rc = n ? MPI_Testall(n, reqs, &done, MPI_STATUSES_IGNORE) : MPI_SUCCESS;
        if (rc != MPI_SUCCESS) return dist_break(d, BL_ERR_IO, err, "MPI failed while %s", what);
        if (done && d->first_open == d->n_ops) return BL_OK;
        int cancelled = d->cancel && *d->cancel;
        if (!cancelled && bl_now_sec() - last <= d->timeout_s) {
            sched_yield();
            continue;
        }
        int peer = peer_of(d, d->first_open < d->n_ops);
        char who[32] = "another rank";
        if (peer >= 0) snprintf(who, sizeof who, "rank %d", peer);
        if (cancelled)
            return dist_break(d, BL_ERR_INTERRUPTED, err,
                              "the launcher ended the job while %s with %s: that rank exited "
                              "or was killed",
                              what, who);
        return dist_break(d, BL_ERR_IO, err,
                          "%s stopped answering: no progress for %g s while %s (--comm-timeout)",
                          who, d->timeout_s, what);
    }
}

static bl_status broken_fail(bl_dist *d, bl_error *err) {
    return bl_fail(err, d->broken, "%s", d->broken_msg);
}

/* Room in the scratch for an op of n more floats. It grows only when nothing is in
 * flight, to the most one step has needed, so after the first steps nothing moves. */
static bl_status reserve(bl_dist *d, size_t n, bl_error *err) {
    size_t want = d->scratch_used + n / (size_t)d->size + 1;
    if (want <= d->scratch_cap && d->n_ops < BL_DIST_MAX_PENDING) return BL_OK;
    bl_status st = bl_dist_wait_all(d, err);
    if (st || want <= d->scratch_cap) return st;
    float *p = bl_realloc(d->scratch, want * sizeof(float));
    if (!p) return bl_fail(err, BL_ERR_NOMEM, "out of memory for the allreduce buffer");
    d->scratch = p;
    d->scratch_cap = want;
    return BL_OK;
}

/* MPI counts are int: large buffers go in pieces. */
#define CHUNK ((size_t)1 << 30)

bl_status bl_dist_iallreduce_f32(bl_dist *d, float *buf, size_t n, bl_error *err) {
    if (!d || d->size == 1 || n == 0) return BL_OK;
    if (d->broken) return broken_fail(d, err);
    double t0 = bl_now_sec();
    bl_status st = BL_OK;
    for (size_t off = 0; off < n && !st; off += CHUNK) {
        size_t cnt = n - off < CHUNK ? n - off : CHUNK;
        st = reserve(d, cnt, err);
        if (!st) st = ring_start(d, buf + off, cnt, err);
    }
    d->comm_s += bl_now_sec() - t0;
    return st;
}

void bl_dist_progress(bl_dist *d) {
    if (!d || d->broken || d->first_open == d->n_ops) return;
    ring_progress(d);
}

bl_status bl_dist_wait_all(bl_dist *d, bl_error *err) {
    if (!d || d->size == 1) return BL_OK;
    if (d->broken) return broken_fail(d, err);
    double t0 = bl_now_sec();
    bl_status st = wait_reqs(d, NULL, 0, "exchanging gradients", err);
    d->comm_s += bl_now_sec() - t0;
    if (!st) d->n_ops = d->first_open = 0, d->scratch_used = 0;
    return st;
}

bl_status bl_dist_allreduce_f32(bl_dist *d, float *buf, size_t n, bl_error *err) {
    bl_status st = bl_dist_iallreduce_f32(d, buf, n, err);
    return st ? st : bl_dist_wait_all(d, err);
}

/* A small blocking collective, waited on with the timeout. */
static bl_status small_allreduce(bl_dist *d, void *buf, int n, MPI_Datatype t, MPI_Op op,
                                 const char *what, bl_error *err) {
    if (d->broken) return broken_fail(d, err);
    MPI_Request r;
    if (MPI_Iallreduce(MPI_IN_PLACE, buf, n, t, op, MPI_COMM_WORLD, &r) != MPI_SUCCESS)
        return dist_break(d, BL_ERR_IO, err, "MPI_Iallreduce failed while %s", what);
    return wait_reqs(d, &r, 1, what, err);
}

bl_status bl_dist_allreduce_f64(bl_dist *d, double *buf, int n, bl_error *err) {
    if (!d || d->size == 1) return BL_OK;
    double t0 = bl_now_sec();
    bl_status st = small_allreduce(d, buf, n, MPI_DOUBLE, MPI_SUM, "summing statistics", err);
    d->comm_s += bl_now_sec() - t0;
    return st;
}

bl_status bl_dist_allreduce_max_f64(bl_dist *d, double *x, bl_error *err) {
    if (!d || d->size == 1) return BL_OK;
    return small_allreduce(d, x, 1, MPI_DOUBLE, MPI_MAX, "agreeing on a measurement", err);
}

bl_status bl_dist_agree(bl_dist *d, bl_status st, bl_error *err) {
    if (!d || d->size == 1) return st;
    if (d->broken) return st ? st : broken_fail(d, err);
    /* Lowest failing rank wins: MIN over (failed ? rank : size). */
    int first = st ? d->rank : d->size;
    bl_status cst = small_allreduce(d, &first, 1, MPI_INT, MPI_MIN, "agreeing on errors", err);
    if (cst) return cst;
    if (first == d->size) return BL_OK;
    struct {
        int code;
        char msg[sizeof err->msg];
    } box = {0};
    if (d->rank == first) {
        box.code = (int)st;
        snprintf(box.msg, sizeof box.msg, "%s", err ? err->msg : "");
    }
    MPI_Request r;
    if (MPI_Ibcast(&box, (int)sizeof box, MPI_BYTE, first, MPI_COMM_WORLD, &r) != MPI_SUCCESS)
        return dist_break(d, BL_ERR_IO, err, "MPI_Ibcast failed while agreeing on errors");
    if ((cst = wait_reqs(d, &r, 1, "agreeing on errors", err))) return cst;
    char tmp[sizeof box.msg];
    snprintf(tmp, sizeof tmp, "%s", box.msg);
    return bl_fail(err, (bl_status)box.code, "rank %d: %s", first, tmp);
}
