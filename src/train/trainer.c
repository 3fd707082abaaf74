/* The training step. One update = total batch split into micro-batches whose
 * gradients accumulate in the flat gradient arena with the loss scaled by
 * 1/total, so accumulation and one big batch give the same update. Numeric
 * failure is detected before the optimizer touches the weights, so the model
 * in memory (and any checkpoint written from it) stays finite. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "train/trainer_internal.h"

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
}

bl_status bl_trainer_create(bl_trainer **out, bl_ctx *ctx, const bl_train_config *cfg,
                            const bl_dataset *train, bl_error *err) {
    *out = NULL;
    if (cfg->batch <= 0 || (size_t)cfg->batch > train->n)
        return bl_fail(err, BL_ERR_ARG,
                       "batch size %d is invalid: it must be between 1 and the number of "
                       "training samples (%zu)",
                       cfg->batch, train->n);
    int micro = cfg->micro_batch > 0 ? cfg->micro_batch : cfg->batch;
    if (micro > cfg->batch || cfg->batch % micro != 0)
        return bl_fail(err, BL_ERR_ARG,
                       "micro-batch %d must divide the batch size %d (batch = micro-batch x "
                       "accumulation steps)",
                       micro, cfg->batch);
    if (!(cfg->lr > 0) || !isfinite(cfg->lr))
        return bl_fail(err, BL_ERR_ARG, "learning rate %g is invalid: it must be > 0",
                       (double)cfg->lr);
    int n_classes = cfg->n_classes > 0 ? cfg->n_classes : train->n_classes;
    bl_status st = bl_dataset_check_labels(train, n_classes, err);
    if (st) return st;
    bl_trainer *t = calloc(1, sizeof *t);
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
    if (!st) st = bl_model_alloc(t->model, ctx, micro, err);
    if (!st) st = bl_optim_init(&t->opt, &cfg->opt, bl_model_num_params(t->model), &ctx->mem, err);
    if (!st)
        st = bl_loader_init(&t->loader, train, micro, 0, 1, cfg->seed, cfg->prefetch, &ctx->mem,
                            err);
    if (st) {
        bl_trainer_free(t);
        return st;
    }
    t->loader_ready = 1;
    bl_model_init(t->model, cfg->seed);
    bl_noise_init(&t->noise, cfg->noise_decay);
    *out = t;
    return BL_OK;
}

void bl_trainer_free(bl_trainer *t) {
    if (!t) return;
    if (t->loader_ready) bl_loader_free(&t->loader, &t->ctx->mem);
    bl_optim_free(&t->opt, &t->ctx->mem);
    bl_model_free(t->model);
    free(t);
}

float bl_trainer_current_lr(const bl_trainer *t) {
    const bl_train_config *c = &t->cfg;
    bl_schedule s = {.kind = c->sched,
                     .base_lr = bl_lr_scale(c->lr_scale, c->lr, c->batch, c->base_batch),
                     .warmup_steps = c->warmup_steps,
                     .total_steps = c->total_steps,
                     .step_size = c->step_size,
                     .gamma = c->gamma,
                     .min_lr = c->min_lr};
    return bl_schedule_lr(&s, t->step);
}

bl_status bl_trainer_step(bl_trainer *t, bl_step_info *info, bl_error *err) {
    const bl_backend *be = t->ctx->be;
    bl_model *m = t->model;
    uint64_t t0 = bl_now_ns();
    size_t n = t->train->n;
    size_t rem = n - t->loader.pos;
    int total = (size_t)t->cfg.batch < rem ? t->cfg.batch : (int)rem;
    float scale = 1.0f / (float)total;
    double loss_sum = 0, g2_small = NAN;
    int correct = 0, b_small = 0;
    bl_model_zero_grad(m);
    for (int done = 0; done < total;) {
        int b = total - done < t->cfg.micro_batch ? total - done : t->cfg.micro_batch;
        bl_batch batch;
        if (!bl_loader_next(&t->loader, b, &batch) || batch.B != b)
            return bl_fail(err, BL_ERR_FORMAT, "data loader returned %d samples, expected %d",
                           batch.B, b);
        bl_model_forward(m, batch.x, b, 1);
        double l = bl_model_loss(m, batch.y, b, t->cfg.loss, &correct);
        if (!isfinite(l))
            return bl_fail(err, BL_ERR_NUMERIC,
                           "the loss became %s at step %ld (epoch %ld); the weights were not "
                           "updated. The learning rate %g is probably too high: try --lr %g",
                           isnan(l) ? "NaN" : "infinite", t->step + 1, t->loader.epoch + 1,
                           (double)bl_trainer_current_lr(t),
                           (double)bl_trainer_current_lr(t) / 10);
        loss_sum += l;
        bl_model_backward(m, batch.x, batch.y, b, t->cfg.loss, scale);
        if (t->cfg.noise && done == 0 && b < total) {
            /* The arena holds (b/total) x the first micro-batch's mean gradient. */
            double r = (double)total / b;
            g2_small = be->sumsq(bl_model_grads(m), bl_model_num_params(m)) * r * r;
            b_small = b;
        }
        done += b;
    }
    double gsq = be->sumsq(bl_model_grads(m), bl_model_num_params(m));
    if (!isfinite(gsq))
        return bl_fail(err, BL_ERR_NUMERIC,
                       "the gradient became non-finite at step %ld; the weights were not "
                       "updated. Try a lower learning rate than %g",
                       t->step + 1, (double)bl_trainer_current_lr(t));
    if (b_small) bl_noise_update(&t->noise, g2_small, b_small, gsq, total);
    float lr = bl_trainer_current_lr(t);
    bl_optim_step(&t->opt, be, bl_model_params(m), bl_model_grads(m), lr);
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
    double dt = (double)(bl_now_ns() - t0) * 1e-9;
    info->step = t->step;
    info->samples_seen = t->samples_seen;
    info->batch = total;
    info->lr = lr;
    info->loss = loss_sum / total;
    info->acc = (double)correct / total;
    info->grad_norm = sqrt(gsq);
    info->step_time_s = dt;
    info->samples_per_s = dt > 0 ? total / dt : 0;
    info->peak_mem_bytes = t->ctx->mem.peak_bytes;
    info->has_noise = b_small > 0;
    info->noise_g2 = bl_noise_g2(&t->noise);
    info->noise_trace = bl_noise_trace(&t->noise);
    info->noise_scale = bl_noise_scale(&t->noise);
    return BL_OK;
}

bl_status bl_trainer_evaluate(bl_trainer *t, const bl_dataset *ds, double *loss, double *acc,
                              bl_error *err) {
    return bl_model_evaluate(t->model, ds, t->cfg.loss, loss, acc, err);
}

bl_model *bl_trainer_model(bl_trainer *t) { return t->model; }
const bl_noise *bl_trainer_noise(const bl_trainer *t) { return &t->noise; }
const bl_train_config *bl_trainer_config(const bl_trainer *t) { return &t->cfg; }
long bl_trainer_steps_done(const bl_trainer *t) { return t->step; }
long bl_trainer_epoch(const bl_trainer *t) { return t->loader.epoch; }
