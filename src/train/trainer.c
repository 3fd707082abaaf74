/* The training step. One update = total batch split into micro-batches whose
 * gradients accumulate in the flat gradient arena with the loss scaled by
 * 1/total, so accumulation and one big batch give the same update. Numeric
 * failure is detected before the optimizer touches the weights, so the model
 * in memory (and any checkpoint written from it) stays finite. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "batchlab/dist.h"
#include "train/trainer_internal.h"
#include "core/alloc.h"
#include "core/sort.h"

void bl_train_config_default(bl_train_config *c) {
    memset(c, 0, sizeof *c);
    c->spec = "mlp";
    c->batch = 64;
    c->loss = BL_LOSS_XENT;
    bl_optim_config_default(&c->opt, BL_OPT_SGD);
    c->opt.momentum = 0.9f;
    c->lr = 0.05f;
    c->lr_scale = BL_LR_SCALE_NONE;
    c->base_batch = 0;
    c->sched = BL_SCHED_CONSTANT;
    c->gamma = 0.1f;
    c->prefetch = 1;
    c->seed = 1;
    c->noise_decay = 0.95;
    c->overlap = BL_OVERLAP_AUTO;
    c->bucket_bytes = 1 << 20;
}

bl_status bl_trainer_create(bl_trainer **out, bl_ctx *ctx, const bl_train_config *cfg,
                            const bl_dataset *train, bl_error *err) {
    *out = NULL;
    if (cfg->batch <= 0 || (size_t)cfg->batch > train->n)
        return bl_fail(err, BL_ERR_ARG,
                       "batch size %d is invalid: it must be between 1 and the number of "
                       "training samples (%zu)",
                       cfg->batch, train->n);
    int world = bl_dist_size(ctx->dist);
    if (cfg->batch % world)
        return bl_fail(err, BL_ERR_ARG,
                       "batch size %d must be a multiple of the %d ranks (global batch = "
                       "micro-batch x accumulation steps x ranks)",
                       cfg->batch, world);
    int per_rank = cfg->batch / world;
    int micro = cfg->micro_batch > 0 ? cfg->micro_batch : per_rank;
    if (micro > per_rank || per_rank % micro != 0)
        return bl_fail(err, BL_ERR_ARG,
                       "micro-batch %d must divide the batch size %d (batch = micro-batch x "
                       "accumulation steps%s)",
                       micro, per_rank, world > 1 ? " per rank" : "");
    if (!(cfg->lr > 0) || !isfinite(cfg->lr))
        return bl_fail(err, BL_ERR_ARG, "learning rate %g is invalid: it must be > 0",
                       (double)cfg->lr);
    if (cfg->noise_batch < 0 || cfg->noise_batch == 1)
        return bl_fail(err, BL_ERR_ARG,
                       "noise-scale batch %d is invalid: it must be at least 2 (or 0: the "
                       "update's batch)",
                       cfg->noise_batch);
    int n_classes = cfg->n_classes > 0 ? cfg->n_classes : train->n_classes;
    bl_status st = bl_dataset_check_labels(train, n_classes, err);
    if (st) return st;
    bl_trainer *t = bl_calloc(1, sizeof *t);
    if (!t) return bl_fail(err, BL_ERR_NOMEM, "out of memory creating the trainer");
    t->ctx = ctx;
    t->cfg = *cfg;
    t->cfg.micro_batch = micro;
    snprintf(t->spec, sizeof t->spec, "%s", cfg->spec);
    t->cfg.spec = t->spec;
    t->train = train;
    t->n_classes = n_classes;
    if (t->cfg.base_batch <= 0) t->cfg.base_batch = cfg->batch;
    st = bl_model_create(&t->model, cfg->spec, train->shape, n_classes, err);
    int reserve = cfg->reserve_batch > micro ? cfg->reserve_batch : micro;
    if (!st) st = bl_model_alloc(t->model, ctx, reserve, err);
    if (!st)
        st = bl_optim_init(&t->opt, &cfg->opt, bl_model_num_params(t->model), ctx->be, &ctx->mem,
                           err);
    if (!st)
        st = bl_loader_init(&t->loader, train, reserve, 0, 1, cfg->seed, cfg->prefetch, &ctx->mem,
                            err);
    if (st) {
        bl_trainer_free(t);
        return st;
    }
    t->loader_ready = 1;
    t->resumed_step = -1;
    t->overlap_chosen = -1;
    size_t nb = bl_model_num_buffers(t->model), np = bl_model_num_params(t->model);
    void *p = NULL;
    if (nb)
        st = ctx->be->ops->alloc(ctx->be, &ctx->mem, nb * sizeof(float), BL_BUFFER_DEVICE,
                                 "batch-norm statistics copy", &p, err);
    t->saved_buffers = p;
    p = NULL;
    if (!st && world > 1 && !ctx->be->host_visible)
        st = ctx->be->ops->alloc(ctx->be, &ctx->mem, (np + 1) * sizeof(float), BL_BUFFER_HOST,
                                 "gradient for reductions", &p, err);
    t->grad_host = p;
    if (!st) st = trainer_noise_init(t, reserve, err);
    if (!st) st = bl_model_init(t->model, cfg->seed, err);
    if (st) {
        bl_trainer_free(t);
        return st;
    }
    bl_noise_init(&t->noise, cfg->noise_decay);
    *out = t;
    return BL_OK;
}

void bl_trainer_free(bl_trainer *t) {
    if (!t) return;
    if (t->loader_ready) bl_loader_free(&t->loader, &t->ctx->mem);
    trainer_noise_free(t);
    bl_backend *be = t->ctx->be;
    be->ops->release(be, &t->ctx->mem, t->saved_buffers);
    be->ops->release(be, &t->ctx->mem, t->grad_host);
    bl_batch_schedule_free(&t->history);
    bl_optim_free(&t->opt, &t->ctx->mem);
    bl_model_free(t->model);
    bl_free(t);
}

float bl_trainer_current_lr(const bl_trainer *t) {
    const bl_train_config *c = &t->cfg;
    float base = t->lr_factor > 0 ? c->lr * t->lr_factor
                                  : bl_lr_scale(c->lr_scale, c->lr, c->batch, c->base_batch);
    bl_schedule s = {.kind = c->sched,
                     .base_lr = base,
                     .warmup_steps = c->warmup_steps,
                     .total_steps = c->total_steps,
                     .step_size = c->step_size,
                     .gamma = c->gamma,
                     .min_lr = c->min_lr};
    return bl_schedule_lr(&s, t->step);
}

/* Forward/backward this rank's share [lo, hi) of the update's `total` samples in
 * micro-batches, accumulating gradients scaled by 1/total. stats[] gathers what
 * the ranks must agree on; see bl_trainer_step. */
enum { ST_NONFINITE, ST_LOSS, ST_CORRECT, ST_STOP, ST_N };

/* Overlap of the gradient reduction with backward: during the last micro-batch,
 * each layer's finished gradient range joins a bucket (ranges arrive last layer
 * first and are contiguous), and a full bucket starts a non-blocking allreduce
 * while backward goes on with the layers below. Every rank issues the same
 * buckets in the same order, since the layout is the same everywhere. */
typedef struct bucket_state {
    bl_trainer *t;
    size_t lo, hi; /* open bucket [lo, hi), empty when hi == 0 */
    int active;    /* only during the last micro-batch's backward */
    bl_status st;
    bl_error *err;
} bucket_state;

static void bucket_flush(bucket_state *b) {
    if (b->hi == 0 || b->st) return;
    b->st = trainer_grad_to_host(b->t, b->lo, b->hi - b->lo, b->err);
    if (!b->st)
        b->st = bl_dist_iallreduce_f32(b->t->ctx->dist, trainer_grad_comm(b->t) + b->lo,
                                       b->hi - b->lo, b->err);
    b->lo = b->hi = 0;
}

float *trainer_grad_comm(bl_trainer *t) {
    return t->grad_host ? t->grad_host : bl_model_grads(t->model);
}

bl_status trainer_grad_to_host(bl_trainer *t, size_t off, size_t n, bl_error *err) {
    return t->grad_host ? bl_model_read(t->model, BL_ARENA_GRADS, off, n, t->grad_host + off, err)
                        : BL_OK;
}

bl_status trainer_grad_from_host(bl_trainer *t, size_t off, size_t n, bl_error *err) {
    return t->grad_host ? bl_model_write(t->model, BL_ARENA_GRADS, off, n, t->grad_host + off, err)
                        : BL_OK;
}

bl_status trainer_allreduce_grads(bl_trainer *t, bl_error *err) {
    size_t np = bl_model_num_params(t->model);
    bl_status st = trainer_grad_to_host(t, 0, np, err);
    if (!st) st = bl_dist_allreduce_f32(t->ctx->dist, trainer_grad_comm(t), np, err);
    if (!st) st = trainer_grad_from_host(t, 0, np, err);
    return st;
}

static bl_status copy_buffers(bl_trainer *t, float *dst, const float *src, bl_error *err) {
    size_t nb = bl_model_num_buffers(t->model);
    bl_backend *be = t->ctx->be;
    bl_status st = nb ? be->ops->copy(be, dst, src, nb * sizeof(float)) : BL_OK;
    return st ? bl_backend_fail(err, st, be, "copying the batch-norm statistics") : BL_OK;
}

bl_status trainer_buffers_save(bl_trainer *t, bl_error *err) {
    return copy_buffers(t, t->saved_buffers, bl_model_buffers(t->model), err);
}

bl_status trainer_buffers_restore(bl_trainer *t, bl_error *err) {
    return copy_buffers(t, bl_model_buffers(t->model), t->saved_buffers, err);
}

static void on_grad_ready(void *user, size_t off, size_t n) {
    bucket_state *b = user;
    if (!b->active || b->st) return;
    if (b->hi == 0) b->hi = off + n;
    b->lo = off;
    if ((b->hi - b->lo) * sizeof(float) >= b->t->cfg.bucket_bytes) bucket_flush(b);
    /* After every layer, flushed or not: MPI moves data only inside its calls. */
    bl_dist_progress(b->t->ctx->dist);
}

static bl_status local_pass(bl_trainer *t, size_t lo, size_t hi, int total, double *stats,
                            bucket_state *bucket, bl_error *err) {
    bl_model *m = t->model;
    int world = bl_dist_size(t->ctx->dist);
    float scale = 1.0f / (float)total;
    int correct = 0;
    size_t epoch_start = t->loader.pos;
    if (world > 1) bl_loader_seek(&t->loader, t->loader.epoch, epoch_start + lo);
    for (size_t done = 0; done < hi - lo;) {
        int b = (int)(hi - lo - done < (size_t)t->cfg.micro_batch ? hi - lo - done
                                                                  : (size_t)t->cfg.micro_batch);
        bl_batch batch;
        if (!bl_loader_next(&t->loader, b, &batch) || batch.B != b)
            return bl_fail(err, BL_ERR_FORMAT, "data loader returned %d samples, expected %d",
                           batch.B, b);
        bl_model_set_dropout_position(m, t->step, lo + done);
        double l = 0;
        bl_status st = bl_model_forward(m, batch.x, b, 1, err);
        if (!st) st = bl_model_loss(m, batch.y, t->cfg.loss, &l, &correct, err);
        if (st) return st;
        if (!isfinite(l)) {
            stats[ST_NONFINITE] = 1;
            if (world == 1) break; /* nothing to agree on: stop at once */
        }
        stats[ST_LOSS] += l;
        if (bucket) bucket->active = done + (size_t)b == hi - lo;
        st = bl_model_backward(m, scale, err);
        if (bucket) bucket->active = 0;
        if (st) return st;
        done += (size_t)b;
    }
    stats[ST_CORRECT] = correct;
    if (world > 1) bl_loader_seek(&t->loader, t->loader.epoch, epoch_start + (size_t)total);
    return BL_OK;
}

/* What a step may change before it knows the update is finite, so that a failed step
 * leaves the trainer exactly as it was: a retry (or a replay that never failed) then
 * continues from the same state. */
typedef struct step_undo {
    long epoch;
    size_t pos;
    bl_rng noise;
} step_undo;

static bl_status undo_save(bl_trainer *t, step_undo *u, bl_error *err) {
    u->epoch = t->loader.epoch;
    u->pos = t->loader.pos;
    u->noise = t->noise_rng;
    return trainer_buffers_save(t, err);
}

static bl_status undo_step(bl_trainer *t, const step_undo *u, bl_status st) {
    bl_loader_seek(&t->loader, u->epoch, u->pos);
    t->noise_rng = u->noise;
    trainer_buffers_restore(t, NULL); /* st says what failed first */
    return st;
}

/* Whether this update overlaps (see bl_overlap). AUTO with 2 ranks: 2 warm-up updates
 * overlapped, then on and off alternating until each has BL_OVERLAP_PROBE_STEPS
 * timings, then the decision (overlap_decide). Every rank runs the same updates, so
 * all take the same branch. */
enum { PROBE_WARMUP = 2 };
static int overlap_mode(const bl_trainer *t, int world) {
    if (world < 2 || t->cfg.overlap == BL_OVERLAP_OFF) return 0;
    if (t->cfg.overlap == BL_OVERLAP_ON || world > 2) return 1;
    if (t->overlap_chosen >= 0) return t->overlap_chosen;
    int k = t->probe_n - PROBE_WARMUP;
    return k < 0 || k % 2 == 0;
}

static double median_of(const double *x, int n) {
    double v[BL_OVERLAP_PROBE_STEPS];
    memcpy(v, x, (size_t)n * sizeof v[0]);
    qsort(v, (size_t)n, sizeof v[0], bl_cmp_double);
    return v[n / 2];
}

void trainer_overlap_figures(const double *on_s, const double *off_s, double fig[3]) {
    enum { K = BL_OVERLAP_PROBE_STEPS };
    double ratio[K];
    for (int i = 0; i < K; i++)
        ratio[i] = on_s[i] / off_s[i];
    fig[0] = median_of(on_s, K);
    fig[1] = median_of(off_s, K);
    fig[2] = median_of(ratio, K);
}

/* Files one timed update under AUTO; after the last, decides by the median of the
 * ratios of adjacent pairs (on, then off, one update apart), which a slow spell of the
 * machine lasting several updates shifts far less than it shifts either median. The
 * ranks average their figures (one allreduce), so every rank decides alike. */
static bl_status overlap_probe(bl_trainer *t, int mode, double dt, bl_step_info *info,
                               bl_error *err) {
    enum { K = BL_OVERLAP_PROBE_STEPS };
    int world = bl_dist_size(t->ctx->dist);
    if (world != 2 || t->cfg.overlap != BL_OVERLAP_AUTO || t->overlap_chosen >= 0) return BL_OK;
    if (t->probe_n++ < PROBE_WARMUP) return BL_OK;
    if (t->probe_cnt[mode] < K) t->probe_s[mode][t->probe_cnt[mode]++] = dt;
    if (t->probe_cnt[0] < K || t->probe_cnt[1] < K) return BL_OK;
    double fig[3];
    trainer_overlap_figures(t->probe_s[1], t->probe_s[0], fig);
    bl_status st = bl_dist_allreduce_f64(t->ctx->dist, fig, 3, err);
    if (st) return st;
    t->overlap_chosen = fig[2] <= world; /* the mean ratio <= 1 */
    info->overlap_decided = 1;
    info->overlap_on_s = fig[0] / world;
    info->overlap_off_s = fig[1] / world;
    info->overlap_ratio = fig[2] / world;
    return BL_OK;
}

bl_status bl_trainer_step(bl_trainer *t, bl_step_info *info, bl_error *err) {
    bl_dist *dist = t->ctx->dist;
    bl_model *m = t->model;
    uint64_t t0 = bl_now_ns();
    int world = bl_dist_size(dist), rank = bl_dist_rank(dist);
    size_t n = t->train->n;
    size_t rem = n - t->loader.pos;
    int total = (size_t)t->cfg.batch < rem ? t->cfg.batch : (int)rem;
    /* Balanced contiguous shares of the global batch, in the shared order. */
    size_t lo = (size_t)total * (size_t)rank / (size_t)world;
    size_t hi = (size_t)total * (size_t)(rank + 1) / (size_t)world;
    step_undo undo;
    bl_status st = undo_save(t, &undo, err);
    if (st) return st;
    /* The noise scale, from a batch of its own drawn before the update (noise_live.c). */
    double g2_small = 0, b_small = 0, g2_big = 0, b_big = 0, noise_s = 0;
    if (t->cfg.noise && (t->cfg.noise_every <= 1 || t->step % t->cfg.noise_every == 0)) {
        uint64_t n0 = bl_now_ns();
        bl_status ms = trainer_measure_noise(t, &g2_small, &b_small, &g2_big, &b_big, err);
        if (ms) return undo_step(t, &undo, ms);
        noise_s = (double)(bl_now_ns() - n0) * 1e-9;
    }
    /* After the noise measurement: step_time_s leaves it out, so comm_time_s does too. */
    double comm0 = bl_dist_comm_seconds(dist);
    double stats[ST_N] = {0};
    stats[ST_STOP] = t->stop_requested;
    if ((st = bl_model_zero_grad(m, err))) return undo_step(t, &undo, st);
    /* Overlap needs every rank to run a backward (so all issue the same buckets). */
    int mode = overlap_mode(t, world);
    int overlap = mode && total >= world;
    bucket_state bucket = {.t = t, .err = err};
    bl_model_set_grad_hook(m, overlap ? on_grad_ready : NULL, &bucket);
    st = local_pass(t, lo, hi, total, stats, overlap ? &bucket : NULL, err);
    if (overlap) {
        bucket_flush(&bucket);
        bl_status w = bl_dist_wait_all(t->ctx->dist, err);
        if (!st) st = bucket.st ? bucket.st : w;
        if (!st) st = trainer_grad_from_host(t, 0, bl_model_num_params(m), err);
    }
    if (st) return undo_step(t, &undo, st);
    /* One small reduction carries the flags and sums every rank must agree on. */
    if ((st = bl_dist_allreduce_f64(dist, stats, ST_N, err))) return undo_step(t, &undo, st);
    if (stats[ST_NONFINITE] > 0)
        return undo_step(
            t, &undo,
            bl_fail(err, BL_ERR_NUMERIC,
                    "the loss became NaN or infinite at step %ld (epoch %ld); the weights "
                    "were not updated. The learning rate %g is probably too high: try --lr %g",
                    t->step + 1, t->loader.epoch + 1, (double)bl_trainer_current_lr(t),
                    (double)bl_trainer_current_lr(t) / 10));
    if (!overlap && world > 1 && (st = trainer_allreduce_grads(t, err)))
        return undo_step(t, &undo, st);
    double gsq = 0;
    if ((st = bl_model_grad_sumsq(m, &gsq, err))) return undo_step(t, &undo, st);
    if (!isfinite(gsq))
        return undo_step(t, &undo,
                         bl_fail(err, BL_ERR_NUMERIC,
                                 "the gradient became non-finite at step %ld; the weights were "
                                 "not updated. Try a lower learning rate than %g",
                                 t->step + 1, (double)bl_trainer_current_lr(t)));
    /* Drawn with replacement, so no finite-population correction. */
    int has_noise = b_small > 0 && b_small < b_big;
    if (has_noise) bl_noise_update(&t->noise, g2_small, b_small, g2_big, b_big);
    float lr = bl_trainer_current_lr(t);
    if ((st = bl_optim_step(&t->opt, bl_model_params(m), bl_model_grads(m), lr, err)))
        return undo_step(t, &undo, st);
    t->step++;
    t->samples_seen += total;
    memset(info, 0, sizeof *info);
    info->epoch = t->loader.epoch;
    info->epoch_pos = t->loader.pos;
    rem = n - t->loader.pos;
    if (rem == 0 || (t->cfg.drop_last && rem < (size_t)t->cfg.batch)) {
        bl_loader_seek(&t->loader, t->loader.epoch + 1, 0);
        info->epoch_end = 1;
    }
    double dt = (double)(bl_now_ns() - t0) * 1e-9 - noise_s;
    info->step = t->step;
    info->samples_seen = t->samples_seen;
    info->batch = total;
    info->lr = lr;
    info->loss = stats[ST_LOSS] / total;
    info->acc = stats[ST_CORRECT] / total;
    info->grad_norm = sqrt(gsq);
    info->step_time_s = dt;
    info->noise_time_s = noise_s;
    info->comm_time_s = bl_dist_comm_seconds(dist) - comm0;
    info->overlap = world > 1 ? overlap : -1;
    if ((st = overlap_probe(t, overlap, dt, info, err))) return st;
    info->samples_per_s = dt > 0 ? total / dt : 0;
    info->peak_mem_bytes = t->ctx->mem.peak_bytes;
    info->stop_requested = stats[ST_STOP] > 0;
    info->has_noise = has_noise;
    info->noise_g2 = bl_noise_g2(&t->noise);
    info->noise_trace = bl_noise_trace(&t->noise);
    info->noise_scale = bl_noise_scale(&t->noise);
    return BL_OK;
}

void bl_trainer_request_stop(bl_trainer *t) {
    t->stop_requested = 1;
}

bl_status bl_trainer_set_batch(bl_trainer *t, int batch, int micro_batch, float lr_factor,
                               bl_error *err) {
    int world = bl_dist_size(t->ctx->dist);
    int reserve = bl_model_max_batch(t->model);
    if (batch <= 0 || (size_t)batch > t->train->n || batch % world)
        return bl_fail(err, BL_ERR_ARG,
                       "batch size %d is invalid: it must be between 1 and %zu and a multiple "
                       "of the %d ranks",
                       batch, t->train->n, world);
    int per_rank = batch / world;
    if (micro_batch <= 0) micro_batch = per_rank < reserve ? per_rank : reserve;
    if (micro_batch > reserve || per_rank % micro_batch)
        return bl_fail(err, BL_ERR_ARG,
                       "micro-batch %d must divide %d and fit the reserved %d samples", micro_batch,
                       per_rank, reserve);
    /* The history a checkpoint keeps and a replay follows: only real changes. */
    if (batch != t->cfg.batch || memcmp(&lr_factor, &t->lr_factor, sizeof lr_factor)) {
        bl_status st = bl_batch_schedule_add(&t->history, t->step, batch, lr_factor, err);
        if (st) return st;
    }
    /* --overlap auto's timings must all be of one batch size: a change while they are
     * taken starts them over (a decision already made stays). */
    if (batch != t->cfg.batch && t->overlap_chosen < 0)
        t->probe_n = t->probe_cnt[0] = t->probe_cnt[1] = 0;
    t->cfg.batch = batch;
    t->cfg.micro_batch = micro_batch;
    t->lr_factor = lr_factor;
    return BL_OK;
}

const bl_batch_schedule *bl_trainer_batch_history(const bl_trainer *t) {
    return &t->history;
}

bl_status bl_trainer_follow_schedule(bl_trainer *t, const bl_batch_schedule *s, int *next,
                                     bl_error *err) {
    if (*next == 0 && t->step > 0 && t->step == t->resumed_step) {
        /* Just resumed: the checkpoint must be at the schedule's state. */
        const bl_batch_change *c = bl_batch_schedule_at(s, t->step);
        float f = c ? c->lr_factor : 0;
        if (c && (c->batch != t->cfg.batch || memcmp(&f, &t->lr_factor, sizeof f)))
            return bl_fail(err, BL_ERR_ARG,
                           "the checkpoint trains at batch %d (lr factor %.9g) after update %ld, "
                           "where the batch schedule gives batch %d (lr factor %.9g): it comes "
                           "from another run",
                           t->cfg.batch, (double)t->lr_factor, t->step, c->batch, (double)f);
        while (*next < s->n && s->v[*next].step <= t->step)
            ++*next;
    }
    for (; *next < s->n && s->v[*next].step <= t->step; ++*next) {
        const bl_batch_change *c = &s->v[*next];
        bl_status st = bl_trainer_set_batch(t, c->batch, 0, c->lr_factor, err);
        if (st) {
            bl_error_prefix(err, "batch schedule, step %ld", c->step);
            return st;
        }
    }
    return BL_OK;
}

/* Evaluation runs in chunks of the micro-batch, or of 256 when that is smaller and room
 * was reserved: not of the reserve itself, whose activations (4096 rows for --batch
 * auto) would push the training step's working set out of the cache, slowing the
 * updates after every evaluation by a third. */
static int eval_chunk(const bl_trainer *t) {
    int reserve = bl_model_max_batch(t->model),
        c = t->cfg.micro_batch < 256 ? 256 : t->cfg.micro_batch;
    return c < reserve ? c : reserve;
}

bl_status bl_trainer_evaluate(bl_trainer *t, const bl_dataset *ds, double *loss, double *acc,
                              bl_error *err) {
    bl_dist *dist = t->ctx->dist;
    int world = bl_dist_size(dist), rank = bl_dist_rank(dist);
    if (world == 1)
        return bl_model_evaluate(t->model, ds, t->cfg.loss, eval_chunk(t), loss, acc, err);
    /* Each rank evaluates a contiguous shard; sums are reduced so every rank
     * sees the same numbers (and so takes the same stop decision). */
    size_t lo = ds->n * (size_t)rank / (size_t)world,
           hi = ds->n * (size_t)(rank + 1) / (size_t)world;
    bl_dataset shard = *ds;
    shard.n = hi - lo;
    shard.x = ds->x + lo * ds->dim;
    shard.y = ds->y + lo;
    double l = 0, a = 0;
    bl_status st = bl_model_evaluate(t->model, &shard, t->cfg.loss, eval_chunk(t), &l, &a, err);
    double sums[3] = {l * (double)shard.n, a * (double)shard.n, (double)shard.n};
    st = bl_dist_agree(dist, st, err);
    if (!st) st = bl_dist_allreduce_f64(dist, sums, 3, err);
    if (st) return st;
    *loss = sums[2] > 0 ? sums[0] / sums[2] : 0;
    *acc = sums[2] > 0 ? sums[1] / sums[2] : 0;
    return BL_OK;
}

bl_model *bl_trainer_model(bl_trainer *t) {
    return t->model;
}
const bl_noise *bl_trainer_noise(const bl_trainer *t) {
    return &t->noise;
}
int bl_trainer_resumed_world(const bl_trainer *t) {
    return t->resumed_world ? t->resumed_world : bl_dist_size(t->ctx->dist);
}
const bl_train_config *bl_trainer_config(const bl_trainer *t) {
    return &t->cfg;
}
long bl_trainer_steps_done(const bl_trainer *t) {
    return t->step;
}
long bl_trainer_samples_seen(const bl_trainer *t) {
    return t->samples_seen;
}
long bl_trainer_epoch(const bl_trainer *t) {
    return t->loader.epoch;
}
