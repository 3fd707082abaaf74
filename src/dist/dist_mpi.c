/* MPI implementation of include/batchlab/dist.h (built when Open MPI is found).
 * MPI is started only when the process was launched by a launcher (mpirun sets
 * OMPI_COMM_WORLD_SIZE / PMIX_RANK / PMI_SIZE), so a plain `batchlab train`
 * never pays for singleton MPI start-up. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "batchlab/core.h"
#include "batchlab/dist.h"
#include "core/alloc.h"

struct bl_dist {
    int rank, size, started;
    MPI_Request pending[BL_DIST_MAX_PENDING];
    int n_pending;
    double comm_s;
};

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

void bl_dist_finalize(bl_dist *d) {
    if (!d) return;
    if (d->started) MPI_Finalize();
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

static bl_status mpi_fail(bl_error *err, int rc, const char *what) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    return bl_fail(err, BL_ERR_IO, "%s failed: %s", what, msg);
}

/* MPI counts are int: large arenas go in chunks. */
#define CHUNK ((size_t)1 << 30)

bl_status bl_dist_allreduce_f32(bl_dist *d, float *buf, size_t n, bl_error *err) {
    if (!d || d->size == 1) return BL_OK;
    double t0 = bl_now_sec();
    for (size_t off = 0; off < n; off += CHUNK) {
        int cnt = (int)(n - off < CHUNK ? n - off : CHUNK);
        int rc = MPI_Allreduce(MPI_IN_PLACE, buf + off, cnt, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return mpi_fail(err, rc, "MPI_Allreduce of the gradients");
    }
    d->comm_s += bl_now_sec() - t0;
    return BL_OK;
}

bl_status bl_dist_allreduce_f64(bl_dist *d, double *buf, int n, bl_error *err) {
    if (!d || d->size == 1) return BL_OK;
    double t0 = bl_now_sec();
    int rc = MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    d->comm_s += bl_now_sec() - t0;
    return rc == MPI_SUCCESS ? BL_OK : mpi_fail(err, rc, "MPI_Allreduce");
}

bl_status bl_dist_iallreduce_f32(bl_dist *d, float *buf, size_t n, bl_error *err) {
    if (!d || d->size == 1 || n == 0) return BL_OK;
    if (n > CHUNK || d->n_pending == BL_DIST_MAX_PENDING) {
        bl_status st = bl_dist_wait_all(d, err);
        return st ? st : bl_dist_allreduce_f32(d, buf, n, err);
    }
    double t0 = bl_now_sec();
    int rc = MPI_Iallreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD,
                            &d->pending[d->n_pending]);
    d->comm_s += bl_now_sec() - t0;
    if (rc != MPI_SUCCESS) return mpi_fail(err, rc, "MPI_Iallreduce of a gradient bucket");
    d->n_pending++;
    return BL_OK;
}

void bl_dist_progress(bl_dist *d) {
    if (!d || !d->n_pending) return;
    int flag;
    MPI_Testall(d->n_pending, d->pending, &flag, MPI_STATUSES_IGNORE);
}

bl_status bl_dist_wait_all(bl_dist *d, bl_error *err) {
    if (!d || !d->n_pending) return BL_OK;
    double t0 = bl_now_sec();
    int rc = MPI_Waitall(d->n_pending, d->pending, MPI_STATUSES_IGNORE);
    d->comm_s += bl_now_sec() - t0;
    d->n_pending = 0;
    return rc == MPI_SUCCESS ? BL_OK : mpi_fail(err, rc, "MPI_Waitall on gradient buckets");
}

bl_status bl_dist_agree(bl_dist *d, bl_status st, bl_error *err) {
    if (!d || d->size == 1) return st;
    /* Lowest failing rank wins: MIN over (failed ? rank : size). */
    int mine = st ? d->rank : d->size, first = d->size;
    if (MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD) != MPI_SUCCESS)
        return bl_fail(err, BL_ERR_IO, "MPI_Allreduce failed while agreeing on an error");
    if (first == d->size) return BL_OK;
    struct {
        int code;
        char msg[sizeof err->msg];
    } box = {0};
    if (d->rank == first) {
        box.code = (int)st;
        snprintf(box.msg, sizeof box.msg, "%s", err ? err->msg : "");
    }
    MPI_Bcast(&box, (int)sizeof box, MPI_BYTE, first, MPI_COMM_WORLD);
    char tmp[sizeof box.msg];
    snprintf(tmp, sizeof tmp, "%s", box.msg);
    return bl_fail(err, (bl_status)box.code, "rank %d: %s", first, tmp);
}
