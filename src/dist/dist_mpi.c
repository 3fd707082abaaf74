/* MPI implementation of include/batchlab/dist.h (built when Open MPI is found).
 * MPI is started only when the process was launched by a launcher (mpirun sets
 * OMPI_COMM_WORLD_SIZE / PMIX_RANK / PMI_SIZE), so a plain `batchlab train`
 * never pays for singleton MPI start-up. */
#include <mpi.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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
    d->poll_s = BL_DIST_DEFAULT_POLL_US * 1e-6;
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    if (launched_by_mpirun()) {
        int inited = 0, level = MPI_THREAD_SINGLE;
        MPI_Initialized(&inited);
        if (inited) {
            MPI_Query_thread(&level);
        } else {
            /* Open MPI 4.1 hands a rank's help messages ("peer process has unexpectedly
             * disconnected") to mpirun and sleeps until mpirun acknowledges; once mpirun is
             * ending the job it never does. A rank whose peer died hung there, inside MPI
             * and holding the world's lock, until SIGKILL (3 of 5 crash runs): no line, no
             * end record. Quiet, the call returns at once and batchlab names the lost rank
             * itself. OMPI_MCA_orte_execute_quiet=0 in the environment brings them back. */
            setenv("OMPI_MCA_orte_execute_quiet", "1", 0);
            if (MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, &level) != MPI_SUCCESS) {
                bl_free(d);
                return bl_fail(err, BL_ERR_IO, "MPI_Init failed");
            }
        }
        /* SERIALIZED is enough: the progress thread and the caller take turns (mu). */
        d->thread_ok = level >= MPI_THREAD_SERIALIZED;
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

/* Once the progress thread runs, MPI and the world's state are under d->mu. Only the
 * caller's thread starts and stops it, so it may read thread_on unlocked. */
static void lock(bl_dist *d) {
    if (d->thread_on) pthread_mutex_lock(&d->mu);
}
static void unlock(bl_dist *d) {
    if (d->thread_on) pthread_mutex_unlock(&d->mu);
}

int bl_dist_broken(const bl_dist *d) {
    if (!d) return 0;
    bl_dist *m = (bl_dist *)d; /* the lock, not the world, changes */
    lock(m);
    int b = m->broken != BL_OK;
    unlock(m);
    return b;
}

/* Advances pending rings every poll_s while there are any; sleeps on cv otherwise. A
 * failure it meets marks the world broken (ring_progress), which the waits report. */
static void *progress_main(void *arg) {
    bl_dist *d = arg;
    pthread_mutex_lock(&d->mu);
    while (!d->quit) {
        if (d->broken || d->first_open == d->n_ops) {
            pthread_cond_wait(&d->cv, &d->mu);
            continue;
        }
        int moved = ring_progress(d);
        if (moved > 0) d->thread_steps += moved;
        struct timespec ts = {(time_t)d->poll_s, (long)((d->poll_s - (time_t)d->poll_s) * 1e9)};
        pthread_mutex_unlock(&d->mu);
        nanosleep(&ts, NULL);
        pthread_mutex_lock(&d->mu);
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

/* Starts the progress thread if it may run. Signals stay with the caller's threads
 * (the handlers set the cancel flag the waits read). Without a thread, progress
 * happens between layers and in the waits, as before: slower, never wrong. */
static void start_thread(bl_dist *d) {
    if (d->thread_on || !d->thread_ok || d->poll_s <= 0 || d->size == 1) return;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    d->quit = 0;
    d->thread_on = pthread_create(&d->thread, NULL, progress_main, d) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static void stop_thread(bl_dist *d) {
    if (!d->thread_on) return;
    pthread_mutex_lock(&d->mu);
    d->quit = 1;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
    pthread_join(d->thread, NULL);
    d->thread_on = 0;
}

void bl_dist_set_poll(bl_dist *d, double poll_us) {
    if (!d) return;
    lock(d);
    d->poll_s = poll_us > 0 ? poll_us * 1e-6 : 0;
    unlock(d);
    if (d->poll_s <= 0) stop_thread(d);
}

long bl_dist_thread_steps(const bl_dist *d) {
    if (!d) return 0;
    bl_dist *m = (bl_dist *)d; /* the lock, not the world, changes */
    lock(m);
    long n = m->thread_steps;
    unlock(m);
    return n;
}

void bl_dist_finalize(bl_dist *d) {
    if (!d) return;
    stop_thread(d);
    /* MPI_Finalize waits for every rank: after a lost peer it would never return.
     * Exiting without it makes mpirun end the job on every host. */
    if (d->started && !d->broken) MPI_Finalize();
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cv);
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
static bl_status wait_reqs(bl_dist *d, MPI_Request *reqs, int n, const char *what, bl_error *err) {
    double last = bl_now_sec();
    for (;;) {
        lock(d);
        /* broken: the progress thread met a failure; moved < 0: this call did. */
        int ring = d->first_open < d->n_ops, done = 1;
        int moved = d->broken ? -1 : ring ? ring_progress(d) : 0;
        if (moved < 0) {
            bl_status st = bl_fail(err, d->broken, "%s while %s", d->broken_msg, what);
            unlock(d);
            return st;
        }
        /* Progress by either thread counts against the timeout. */
        if (d->last_moved > last) last = d->last_moved;
        int rc = n ? MPI_Testall(n, reqs, &done, MPI_STATUSES_IGNORE) : MPI_SUCCESS;
        if (rc != MPI_SUCCESS) {
            bl_status st = dist_break(d, BL_ERR_IO, err, "MPI failed while %s", what);
            unlock(d);
            return st;
        }
        if (done && d->first_open == d->n_ops) {
            unlock(d);
            return BL_OK;
        }
        int cancelled = d->cancel && *d->cancel;
        if (!cancelled && bl_now_sec() - last <= d->timeout_s) {
            unlock(d);
            sched_yield();
            continue;
        }
        int peer = peer_of(d, d->first_open < d->n_ops);
        char who[32] = "another rank";
        if (peer >= 0) snprintf(who, sizeof who, "rank %d", peer);
        bl_status st;
        if (cancelled)
            st = dist_break(d, BL_ERR_INTERRUPTED, err,
                            "the launcher ended the job while %s with %s: that rank exited "
                            "or was killed",
                            what, who);
        else
            st = dist_break(d, BL_ERR_IO, err,
                            "%s stopped answering: no progress for %g s while %s (--comm-timeout)",
                            who, d->timeout_s, what);
        unlock(d);
        return st;
    }
}

/* BL_OK, or the failure that broke the world (set once, by either thread). */
static bl_status broken_fail(bl_dist *d, bl_error *err) {
    lock(d);
    bl_status st = d->broken ? bl_fail(err, d->broken, "%s", d->broken_msg) : BL_OK;
    unlock(d);
    return st;
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
    bl_status bst = broken_fail(d, err);
    if (bst) return bst;
    double t0 = bl_now_sec();
    bl_status st = BL_OK;
    start_thread(d);
    for (size_t off = 0; off < n && !st; off += CHUNK) {
        size_t cnt = n - off < CHUNK ? n - off : CHUNK;
        st = reserve(d, cnt, err);
        if (st) break;
        lock(d);
        st = ring_start(d, buf + off, cnt, err);
        if (d->thread_on) pthread_cond_signal(&d->cv);
        unlock(d);
    }
    d->comm_s += bl_now_sec() - t0;
    return st;
}

void bl_dist_progress(bl_dist *d) {
    if (!d || d->size == 1) return;
    if (d->thread_on) {
        /* The thread is at it, or about to be: never make backward wait for it. */
        if (pthread_mutex_trylock(&d->mu)) return;
    }
    if (!d->broken && d->first_open < d->n_ops) ring_progress(d);
    unlock(d);
}

bl_status bl_dist_wait_all(bl_dist *d, bl_error *err) {
    if (!d || d->size == 1) return BL_OK;
    bl_status bst = broken_fail(d, err);
    if (bst) return bst;
    double t0 = bl_now_sec();
    bl_status st = wait_reqs(d, NULL, 0, "exchanging gradients", err);
    d->comm_s += bl_now_sec() - t0;
    lock(d);
    if (!st) d->n_ops = d->first_open = 0, d->scratch_used = 0;
    unlock(d);
    return st;
}

bl_status bl_dist_allreduce_f32(bl_dist *d, float *buf, size_t n, bl_error *err) {
    bl_status st = bl_dist_iallreduce_f32(d, buf, n, err);
    return st ? st : bl_dist_wait_all(d, err);
}

/* A small blocking collective, waited on with the timeout. */
static bl_status small_allreduce(bl_dist *d, void *buf, int n, MPI_Datatype t, MPI_Op op,
                                 const char *what, bl_error *err) {
    bl_status bst = broken_fail(d, err);
    if (bst) return bst;
    MPI_Request r;
    lock(d);
    int rc = MPI_Iallreduce(MPI_IN_PLACE, buf, n, t, op, MPI_COMM_WORLD, &r);
    if (rc != MPI_SUCCESS)
        bst = dist_break(d, BL_ERR_IO, err, "MPI_Iallreduce failed while %s", what);
    unlock(d);
    if (bst) return bst;
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
    if (bl_dist_broken(d)) return st ? st : broken_fail(d, err);
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
    lock(d);
    int rc = MPI_Ibcast(&box, (int)sizeof box, MPI_BYTE, first, MPI_COMM_WORLD, &r);
    if (rc != MPI_SUCCESS)
        cst = dist_break(d, BL_ERR_IO, err, "MPI_Ibcast failed while agreeing on errors");
    unlock(d);
    if (cst) return cst;
    if ((cst = wait_reqs(d, &r, 1, "agreeing on errors", err))) return cst;
    char tmp[sizeof box.msg];
    snprintf(tmp, sizeof tmp, "%s", box.msg);
    return bl_fail(err, (bl_status)box.code, "rank %d: %s", first, tmp);
}
