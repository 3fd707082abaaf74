/* The gradient noise scale while training, measured on batches of its own.
 *
 * Why not on the training batches: within an epoch they are drawn without
 * replacement, and the weights have just been fitted to the epoch's earlier
 * batches, so a later batch comes from the examples the model has not yet
 * fitted this epoch. Its mean gradient is larger than the whole dataset's:
 * on 1,437 rows at B = 256 |G|^2 read 2.5 standard errors high and B_simple
 * half its exact value, worse the later the batch in the epoch.
 *
 * So each measured update first draws cfg.noise_batch examples (default: the
 * update's batch) uniformly WITH
 * replacement from the whole training set, from a stream of its own (seeded
 * from the seed, independent of the epoch order and so of the weights), and
 * runs them forward and backward: E|g_b|^2 = |G|^2 + tr(Sigma)/b exactly, at
 * the current weights. The small batch is one example when every layer with
 * parameters is dense (per-example norms, nearly free beside the backward),
 * else the first micro-batch (a measurement that is one micro-batch runs as
 * two halves) or, across ranks, rank 0's share; the big batch is all of it.
 * The batch is drawn in full on every rank, each taking its contiguous share,
 * so the estimate does not depend on the number of ranks.
 *
 * The training pass then runs exactly as it would unmeasured, for every
 * model: the measurement restores the batch-norm statistics it moved, dropout
 * masks are keyed by step and position rather than drawn from a stream, and the
 * data order is not touched. Its cost is one
 * extra forward and backward of a batch per measured update (--noise-every N
 * spreads that over N updates); the trainer reports it apart from the
 * update's own time. */
#include <math.h>
#include <string.h>
#include "batchlab/dist.h"
#include "train/trainer_internal.h"

#define NOISE_STREAM_TAG 0x6e6f6973652d7374ULL /* "noise-st" */

bl_status trainer_noise_init(bl_trainer *t, int reserve, bl_error *err) {
    bl_rng_derive(&t->noise_rng, t->cfg.seed, NOISE_STREAM_TAG);
    if (!t->cfg.noise) return BL_OK;
    size_t dim = t->train->dim;
    t->noise_x =
        bl_mem_alloc(&t->ctx->mem, (size_t)reserve * dim * sizeof(float), "noise-scale batch", err);
    if (!t->noise_x) return err ? err->code : BL_ERR_NOMEM;
    t->noise_y =
        bl_mem_alloc(&t->ctx->mem, (size_t)reserve * sizeof(int32_t), "noise-scale labels", err);
    if (!t->noise_y) return err ? err->code : BL_ERR_NOMEM;
    return BL_OK;
}

void trainer_noise_free(bl_trainer *t) {
    bl_mem_free(&t->ctx->mem, t->noise_x);
    bl_mem_free(&t->ctx->mem, t->noise_y);
    t->noise_x = NULL;
    t->noise_y = NULL;
}

/* b samples from position `first` of the measurement's batch, with the dropout
 * masks of this update's step. */
static bl_status pass(bl_trainer *t, int b, int first, float scale, bl_error *err) {
    bl_model *m = t->model;
    int correct = 0;
    double loss = 0;
    bl_model_set_dropout_position(m, t->step, (size_t)first);
    bl_status st = bl_model_forward(m, t->noise_x, b, 1, err);
    if (!st) st = bl_model_loss(m, t->noise_y, t->cfg.loss, &loss, &correct, err);
    if (!st) st = bl_model_backward(m, scale, err);
    return st;
}

bl_status trainer_measure_noise(bl_trainer *t, double *g2_small, double *b_small, double *g2_big,
                                double *b_big, bl_error *err) {
    bl_model *m = t->model;
    const bl_dataset *ds = t->train;
    bl_dist *dist = t->ctx->dist;
    int world = bl_dist_size(dist), rank = bl_dist_rank(dist);
    int total = t->cfg.noise_batch > 0 ? t->cfg.noise_batch : t->cfg.batch;
    int micro = t->cfg.micro_batch;
    *b_small = 0;
    if (!t->noise_x || total < 2) return BL_OK;
    int lo = (int)((long)total * rank / world), hi = (int)((long)total * (rank + 1) / world);
    int share = hi - lo;
    int per_example = bl_model_per_example_ok(m);
    bl_model_set_grad_hook(m, NULL, NULL);
    bl_status st = bl_model_zero_grad(m, err);
    if (st) return st;
    bl_model_per_example_norms(m, per_example);
    float scale = 1.0f / (float)total;
    /* The first pass is the small batch in one process: one micro-batch, or half of a
     * measurement that is a single micro-batch. */
    int want = share <= micro && world == 1 && !per_example ? share / 2 : micro;
    if (want > share) want = share;
    int filled = 0, done = 0;
    double stats[2] = {0, 0}; /* small-batch |g|^2 and its size, summed over ranks */
    for (int i = 0; i < total && !st; i++) {
        uint32_t k = bl_rng_below(&t->noise_rng, (uint32_t)ds->n);
        if (i < lo || i >= hi) continue;
        memcpy(t->noise_x + (size_t)filled * ds->dim, ds->x + (size_t)k * ds->dim,
               ds->dim * sizeof(float));
        t->noise_y[filled++] = ds->y[k];
        if (filled < want) continue;
        st = pass(t, filled, lo + done, scale, err);
        done += filled;
        if (!st && !per_example && world == 1 && done == filled) {
            double r = (double)total / done;
            st = bl_model_grad_sumsq(m, &stats[0], err);
            stats[0] *= r * r;
            stats[1] = done;
        }
        filled = 0;
        want = share - done < micro ? share - done : micro;
    }
    if (!st && !per_example && world > 1 && rank == 0) {
        double r = (double)total / share;
        st = bl_model_grad_sumsq(m, &stats[0], err);
        stats[0] *= r * r;
        stats[1] = share;
    }
    if (per_example) {
        /* sum_i |g_i / total|^2 x total: summed over ranks, the mean of |g_i|^2. */
        stats[0] = bl_model_per_example_sum(m) * total;
        stats[1] = rank == 0;
        bl_model_per_example_norms(m, 0);
    }
    if (!st && world > 1) {
        st = trainer_allreduce_grads(t, err);
        if (!st) st = bl_dist_allreduce_f64(dist, stats, 2, err);
    }
    if (!st) {
        *g2_small = stats[0];
        *b_small = stats[1];
        *b_big = total;
        st = bl_model_grad_sumsq(m, g2_big, err);
    }
    if (!st) st = bl_model_zero_grad(m, err);
    if (!st) st = trainer_buffers_restore(t, err);
    return st;
}
