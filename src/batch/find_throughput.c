/* Throughput against batch size, its knee, and the goodput-optimal batch.
 * Throughput is measured with the real trainer on the real data (loader,
 * forward, backward, optimizer), as the median of several timed runs after a
 * warm-up, because that is what a user's run will see. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "batchlab/dist.h"
#include "batchlab/find.h"
#include "batchlab/run.h"
#include "batchlab/train.h"
#include "core/sort.h"

/* Adds each update's time in reductions across ranks to *user (a double). */
static bl_status add_comm(void *user, const bl_run_event *e, bl_error *err) {
    (void)err;
    if (e->kind == BL_RUN_STEP) *(double *)user += e->step->comm_time_s;
    return BL_OK;
}

static bl_status measure(const char *spec, const bl_dataset *ds, const bl_optim_config *opt,
                         int batch, int warmup, int runs, double min_run_s, bl_ctx *ctx,
                         bl_throughput_point *pt, bl_error *err) {
    bl_train_config c;
    bl_train_config_default(&c);
    c.spec = spec;
    c.batch = batch;
    c.opt = *opt;
    c.lr = 1e-3f; /* small: the weights should stay sane over many timed steps */
    bl_trainer *t;
    bl_status st = bl_trainer_create(&t, ctx, &c, ds, err);
    if (st) return st;
    double rates[16], comm = 0;
    if (runs > 16) runs = 16;
    if (warmup < 1) warmup = 1;
    bl_run_config rc;
    bl_run_config_default(&rc);
    rc.on_event = add_comm, rc.user = &comm;
    bl_run_result rr;
    double w0 = bl_now_sec();
    rc.steps = warmup;
    st = bl_run(t, &rc, &rr, err);
    comm = 0;
    /* Steps per run from the warm-up, the most any rank needs: under MPI every rank
     * must run the same steps, so the count is agreed, not each rank's clock. */
    double steps = ceil(min_run_s / ((bl_now_sec() - w0) / warmup));
    if (!st) st = bl_dist_allreduce_max_f64(ctx->dist, &steps, err);
    for (int r = 0; r < runs && !st; r++) {
        double t0 = bl_now_sec();
        long samples = bl_trainer_samples_seen(t);
        rc.steps = bl_trainer_steps_done(t) + (long)steps;
        st = bl_run(t, &rc, &rr, err);
        rates[r] = (bl_trainer_samples_seen(t) - samples) / (bl_now_sec() - t0);
    }
    bl_trainer_free(t);
    if (st) return st;
    qsort(rates, (size_t)runs, sizeof(double), bl_cmp_double);
    pt->batch = batch;
    pt->samples_per_s = rates[runs / 2];
    pt->step_s = batch / pt->samples_per_s;
    pt->comm_s = comm / ((double)runs * steps);
    return BL_OK;
}

bl_status bl_find_throughput(const char *spec, const bl_dataset *ds, const bl_optim_config *opt,
                             const int *batches, int n_batches, int warmup, int runs,
                             double min_run_s, bl_ctx *ctx, bl_throughput_curve *curve,
                             bl_error *err) {
    memset(curve, 0, sizeof *curve);
    if (n_batches <= 0 || n_batches > BL_FIND_MAX_POINTS)
        return bl_fail(err, BL_ERR_ARG, "between 1 and %d batch sizes, got %d", BL_FIND_MAX_POINTS,
                       n_batches);
    if (runs < 1) runs = 1;
    for (int i = 0; i < n_batches; i++) {
        bl_status st =
            measure(spec, ds, opt, batches[i], warmup, runs, min_run_s, ctx, &curve->p[i], err);
        if (st) return st;
        curve->n = i + 1;
    }
    curve->knee = bl_throughput_knee(curve, BL_KNEE_TOL);
    return BL_OK;
}

/* From the curve as a whole, not neighbour to neighbour: one slow point (a dip at
 * batch 2 on a noisy machine) must not end the search. The monotone envelope is the
 * running maximum; its first point within tol of the best is a measured point. */
int bl_throughput_knee(const bl_throughput_curve *c, double tol) {
    double best = 0;
    for (int i = 0; i < c->n; i++)
        if (c->p[i].samples_per_s > best) best = c->p[i].samples_per_s;
    for (int i = 0; i < c->n; i++)
        if (c->p[i].samples_per_s >= (1 - tol) * best) return i;
    return c->n - 1; /* no finite throughput at all */
}

double bl_efficiency(double b_noise, int m0, int m) {
    if (!(b_noise >= 0)) return NAN;
    return (b_noise + m0) / (b_noise + m);
}

int bl_goodput_best(const bl_throughput_curve *c, double b_noise, int m0, double *goodput) {
    int best = -1;
    double g_best = 0;
    for (int i = 0; i < c->n; i++) {
        double g = c->p[i].samples_per_s * bl_efficiency(b_noise, m0, c->p[i].batch);
        if (g > g_best) best = i, g_best = g;
    }
    if (goodput) *goodput = g_best;
    return best;
}
