/* The mini-batch iterator, with an optional prefetch thread.
 *
 * The order of epoch e is the identity shuffled by bl_rng_derive(seed, e), so
 * the whole state of an iteration is (epoch, pos): resuming is a seek, with no
 * RNG state to save. A batch is a pure function of (perm, pos, B), which is
 * what makes prefetch on and off byte-identical: the thread only computes that
 * function early, into the buffer the caller is not holding.
 *
 * Protocol (one mutex, one condition variable, always broadcast):
 *  - the caller holds buf[cur]; a job fills buf[1 - cur] with the batch at
 *    (job_epoch, job_pos, job_B);
 *  - on the next call, a finished job with exactly the wanted (epoch, pos, B)
 *    is handed out (cur flips); anything else (B changed, a seek) waits for the
 *    job to finish, discards it and gathers synchronously;
 *  - perm is only rewritten while no job is pending, and jobs never cross an
 *    epoch boundary, so the thread never reads a perm that is changing.
 * Gathering one batch is a few memcpys, so waiting out a stale job is cheaper
 * and simpler than cancelling it. */
#include <string.h>
#include "batchlab/data.h"

static void make_perm(bl_loader *ld) {
    size_t n = ld->ds->n;
    for (size_t i = 0; i < n; i++)
        ld->perm[i] = (uint32_t)i;
    if (ld->shuffle) {
        bl_rng r;
        bl_rng_derive(&r, ld->seed, (uint64_t)ld->epoch);
        bl_rng_shuffle(&r, ld->perm, n);
    }
}

/* Samples in the batch starting at pos with size B (0: none, the epoch is over). */
static size_t batch_len(const bl_loader *ld, size_t pos, int B) {
    size_t left = pos < ld->ds->n ? ld->ds->n - pos : 0;
    if (left == 0 || (ld->drop_last && left < (size_t)B)) return 0;
    return left < (size_t)B ? left : (size_t)B;
}

static void gather(const bl_loader *ld, int buf, size_t pos, size_t len) {
    const bl_dataset *ds = ld->ds;
    float *x = ld->xbuf[buf];
    int32_t *y = ld->ybuf[buf];
    for (size_t i = 0; i < len; i++) {
        uint32_t k = ld->perm[pos + i];
        memcpy(x + i * ds->dim, ds->x + (size_t)k * ds->dim, ds->dim * sizeof(float));
        y[i] = ds->y[k];
    }
}

static void *prefetch_main(void *arg) {
    bl_loader *ld = arg;
    pthread_mutex_lock(&ld->mu);
    for (;;) {
        while (!ld->stop && !(ld->job_pending && !ld->job_done))
            pthread_cond_wait(&ld->cv, &ld->mu);
        if (ld->stop) break;
        size_t pos = ld->job_pos;
        int buf = 1 - ld->cur;
        size_t len = batch_len(ld, pos, ld->job_B);
        pthread_mutex_unlock(&ld->mu);
        gather(ld, buf, pos, len);
        pthread_mutex_lock(&ld->mu);
        ld->job_done = 1;
        pthread_cond_broadcast(&ld->cv);
    }
    pthread_mutex_unlock(&ld->mu);
    return NULL;
}

/* Wait for an in-flight job. Returns 1 if a finished job for (epoch, pos, B) is
 * now in buf[1 - cur]; in every case no job is pending afterwards. */
static int take_job(bl_loader *ld, int B) {
    if (!ld->thread_started) return 0;
    pthread_mutex_lock(&ld->mu);
    while (ld->job_pending && !ld->job_done)
        pthread_cond_wait(&ld->cv, &ld->mu);
    int hit =
        ld->job_pending && ld->job_epoch == ld->epoch && ld->job_pos == ld->pos && ld->job_B == B;
    ld->job_pending = 0;
    ld->job_done = 0;
    pthread_mutex_unlock(&ld->mu);
    return hit;
}

static void post_job(bl_loader *ld, int B) {
    pthread_mutex_lock(&ld->mu);
    ld->job_epoch = ld->epoch;
    ld->job_pos = ld->pos;
    ld->job_B = B;
    ld->job_done = 0;
    ld->job_pending = 1;
    pthread_cond_broadcast(&ld->cv);
    pthread_mutex_unlock(&ld->mu);
}

static int clamp_batch(const bl_loader *ld, int B) {
    /* An out-of-range B is a caller bug; clamping keeps a `while (next)` loop finite. */
    if (B < 1) return 1;
    return B > ld->max_batch ? ld->max_batch : B;
}

/* One of the LOADER_BUFFERS (prefetch fills one while the step reads the other). */
#define LOADER_BUFFERS 2
static size_t x_bytes(size_t dim, int max_batch) {
    return (size_t)max_batch * dim * sizeof(float);
}
static size_t y_bytes(int max_batch) {
    return (size_t)max_batch * sizeof(int32_t);
}

size_t bl_loader_batch_bytes(size_t dim, int max_batch) {
    return LOADER_BUFFERS * (x_bytes(dim, max_batch) + y_bytes(max_batch));
}

bl_status bl_loader_init(bl_loader *ld, const bl_dataset *ds, int max_batch, int drop_last,
                         int shuffle, uint64_t seed, int prefetch, bl_mem *mem, bl_error *err) {
    memset(ld, 0, sizeof *ld);
    if (max_batch <= 0 || (size_t)max_batch > ds->n)
        return bl_fail(err, BL_ERR_ARG,
                       "batch size %d is invalid: it must be between 1 and the dataset size "
                       "(%zu)",
                       max_batch, ds->n);
    if (ds->n > UINT32_MAX)
        return bl_fail(err, BL_ERR_ARG, "%s: %zu samples is more than the loader indexes", ds->name,
                       ds->n);
    ld->ds = ds;
    ld->max_batch = max_batch;
    ld->drop_last = drop_last != 0;
    ld->shuffle = shuffle != 0;
    ld->seed = seed;
    ld->perm = bl_mem_alloc(mem, ds->n * sizeof(uint32_t), "loader permutation", err);
    for (int b = 0; b < LOADER_BUFFERS && ld->perm; b++) {
        ld->xbuf[b] = bl_mem_alloc(mem, x_bytes(ds->dim, max_batch), "loader batch buffer", err);
        ld->ybuf[b] =
            ld->xbuf[b] ? bl_mem_alloc(mem, y_bytes(max_batch), "loader label buffer", err) : NULL;
        if (!ld->ybuf[b]) break;
    }
    if (!ld->perm || !ld->ybuf[0] || !ld->ybuf[1]) {
        bl_loader_free(ld, mem);
        return err ? err->code : BL_ERR_NOMEM;
    }
    make_perm(ld);
    if (prefetch) {
        ld->prefetch = 1;
        pthread_mutex_init(&ld->mu, NULL);
        pthread_cond_init(&ld->cv, NULL);
        if (pthread_create(&ld->thread, NULL, prefetch_main, ld) != 0) {
            pthread_mutex_destroy(&ld->mu);
            pthread_cond_destroy(&ld->cv);
            ld->prefetch = 0;
            bl_loader_free(ld, mem);
            return bl_fail(err, BL_ERR_NOMEM, "cannot start the data prefetch thread");
        }
        ld->thread_started = 1;
    }
    return BL_OK;
}

int bl_loader_next(bl_loader *ld, int B, bl_batch *out) {
    B = clamp_batch(ld, B);
    int hit = take_job(ld, B);
    size_t len = batch_len(ld, ld->pos, B);
    if (len == 0) {
        ld->epoch++;
        ld->pos = 0;
        make_perm(ld);
        memset(out, 0, sizeof *out);
        return 0;
    }
    if (!hit) gather(ld, 1 - ld->cur, ld->pos, len);
    ld->cur = 1 - ld->cur;
    ld->pos += len;
    out->x = ld->xbuf[ld->cur];
    out->y = ld->ybuf[ld->cur];
    out->B = (int)len;
    /* Guess that the caller keeps B, and start on the next batch of this epoch. */
    if (ld->thread_started && batch_len(ld, ld->pos, B) > 0) post_job(ld, B);
    return 1;
}

void bl_loader_seek(bl_loader *ld, long epoch, size_t pos) {
    take_job(ld, 0); /* no job may read perm while it is rebuilt */
    if (epoch < 0) epoch = 0;
    if (pos > ld->ds->n) pos = ld->ds->n;
    if (epoch != ld->epoch) {
        ld->epoch = epoch;
        make_perm(ld);
    }
    ld->pos = pos;
}

long bl_steps_per_epoch(size_t n, int batch, int drop_last) {
    if (batch < 1) batch = 1;
    return (long)(drop_last ? n / (size_t)batch : (n + (size_t)batch - 1) / (size_t)batch);
}

size_t bl_loader_batches_per_epoch(const bl_loader *ld, int B) {
    return (size_t)bl_steps_per_epoch(ld->ds->n, clamp_batch(ld, B), ld->drop_last);
}

void bl_loader_free(bl_loader *ld, bl_mem *mem) {
    if (!ld) return;
    if (ld->thread_started) {
        pthread_mutex_lock(&ld->mu);
        ld->stop = 1;
        pthread_cond_broadcast(&ld->cv);
        pthread_mutex_unlock(&ld->mu);
        pthread_join(ld->thread, NULL);
        pthread_mutex_destroy(&ld->mu);
        pthread_cond_destroy(&ld->cv);
        ld->thread_started = 0;
    }
    for (int b = 0; b < 2; b++) {
        bl_mem_free(mem, ld->xbuf[b]);
        bl_mem_free(mem, ld->ybuf[b]);
        ld->xbuf[b] = NULL;
        ld->ybuf[b] = NULL;
    }
    bl_mem_free(mem, ld->perm);
    ld->perm = NULL;
}
