/* Single-process implementation of include/batchlab/dist.h, used when the
 * build has no MPI: a world of one where every collective is the identity. */
#include <stdlib.h>
#include "batchlab/dist.h"
#include "core/alloc.h"

struct bl_dist {
    int unused;
};

int bl_dist_built(void) {
    return 0;
}
const char *bl_dist_library(void) {
    return "unavailable (built without MPI: install libopenmpi-dev and rebuild)";
}

bl_status bl_dist_init(bl_dist **out, bl_error *err) {
    /* Under mpirun every rank would train alone and write the same files. */
    const char *n = getenv("OMPI_COMM_WORLD_SIZE");
    if (!n) n = getenv("PMI_SIZE");
    if (n && atoi(n) > 1)
        return bl_fail(err, BL_ERR_UNSUPPORTED,
                       "launched by mpirun with %s ranks, but this batchlab was built without "
                       "MPI (install libopenmpi-dev and rebuild)",
                       n);
    *out = bl_calloc(1, sizeof **out);
    return *out ? BL_OK : bl_fail(err, BL_ERR_NOMEM, "out of memory");
}

void bl_dist_configure(bl_dist *d, double timeout_s, bl_dist_dtype dtype,
                       const volatile sig_atomic_t *cancel) {}
int bl_dist_broken(const bl_dist *d) {
    return 0;
}
void bl_dist_finalize(bl_dist *d) {
    bl_free(d);
}
int bl_dist_rank(const bl_dist *d) {
    return 0;
}
int bl_dist_size(const bl_dist *d) {
    return 1;
}
double bl_dist_comm_seconds(const bl_dist *d) {
    return 0;
}
bl_status bl_dist_allreduce_f32(bl_dist *d, float *buf, size_t n, bl_error *err) {
    return BL_OK;
}
bl_status bl_dist_allreduce_f64(bl_dist *d, double *buf, int n, bl_error *err) {
    return BL_OK;
}
bl_status bl_dist_allreduce_max_f64(bl_dist *d, double *x, bl_error *err) {
    return BL_OK;
}
bl_status bl_dist_iallreduce_f32(bl_dist *d, float *buf, size_t n, bl_error *err) {
    return BL_OK;
}
void bl_dist_progress(bl_dist *d) {}
void bl_dist_set_poll(bl_dist *d, double poll_us) {}
long bl_dist_thread_steps(const bl_dist *d) {
    return 0;
}
bl_status bl_dist_wait_all(bl_dist *d, bl_error *err) {
    return BL_OK;
}
bl_status bl_dist_agree(bl_dist *d, bl_status st, bl_error *err) {
    return st;
}
