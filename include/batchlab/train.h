/* The training loop as a library object, so that `train`, sweeps, finders and
 * the adaptive controller are all loops around the same step.
 *
 *   bl_trainer *t;  bl_trainer_create(&t, &ctx, &cfg, &train, &val, &err);
 *   while (!(st = bl_trainer_step(t, &info, &err)) && !info.done) { ... }
 *
 * One step is one optimizer update over `batch` samples (the global batch):
 * with ctx->dist a world of N ranks, rank r takes the r-th contiguous share of
 * it from the shared shuffled order, as micro-batches whose gradients
 * accumulate (loss scaled by 1/total), and the gradient arena is summed across
 * ranks. So total batch = micro-batch x accumulation steps x N. An update never crosses an epoch
 * boundary: the last update of an epoch has fewer samples (or is dropped with drop_last). */
#ifndef BATCHLAB_TRAIN_H
#define BATCHLAB_TRAIN_H

#include "batchlab/data.h"
#include "batchlab/model.h"
#include "batchlab/noise.h"
#include "batchlab/optim.h"

typedef struct bl_train_config {
    const char *spec;
    int batch;       /* samples per update (total batch) */
    int micro_batch; /* samples per forward/backward; divides batch; 0 = batch */
    bl_loss_kind loss;
    bl_optim_config opt;
    float lr;                  /* at base_batch */
    bl_lr_scale_rule lr_scale; /* lr used = scale(lr, batch, base_batch) */
    int base_batch;
    bl_sched_kind sched;
    long warmup_steps, step_size, total_steps; /* total_steps: cosine horizon */
    float gamma, min_lr;
    int drop_last;
    int prefetch;
    uint64_t seed;
    int n_classes;       /* output width; 0 = from the data */
    int noise;           /* measure the gradient noise scale: from per-example gradient
                            norms when every layer with parameters is dense (free, and the
                            update is unchanged); otherwise an update made of one
                            micro-batch is taken as two halves when it is measured */
    double noise_decay;  /* EMA decay of its estimates, per measurement (default 0.95) */
    int noise_every;     /* measure on every Nth update only (0 or 1: every update) */
    int reserve_batch;   /* size activations for micro-batches up to this (0 = micro_batch),
                            so bl_trainer_set_batch can grow the micro-batch later */
    int overlap;         /* ranks > 1: reduce gradient buckets during backward (default 1) */
    size_t bucket_bytes; /* bucket size for that overlap (default 1 MiB) */
} bl_train_config;

void bl_train_config_default(bl_train_config *c);

typedef struct bl_step_info {
    long step;        /* updates done, after this one */
    long epoch;       /* epoch of this update (0-based) */
    size_t epoch_pos; /* samples of this epoch consumed so far */
    long samples_seen;
    int batch; /* samples in this update */
    float lr;
    double loss;      /* mean over the batch */
    double acc;       /* training accuracy on the batch */
    double grad_norm; /* L2 norm of the accumulated (mean) gradient */
    double step_time_s;
    double samples_per_s;
    size_t peak_mem_bytes;
    int epoch_end;      /* this update finished an epoch */
    double comm_time_s; /* of step_time_s, spent in reductions across ranks */
    int stop_requested; /* some rank asked to stop (all ranks see the same value) */
    int has_noise;      /* the three below were measured this step */
    double noise_g2, noise_trace, noise_scale; /* smoothed |G|^2, tr(Sigma), B_simple */
} bl_step_info;

typedef struct bl_trainer bl_trainer;

/* Builds the model (spec + data shape), optimizer and loader; initialises weights from
 * cfg->seed. train must outlive the trainer. Errors: bad spec, batch <= 0 or > n,
 * micro_batch not dividing batch, labels out of range. */
bl_status bl_trainer_create(bl_trainer **out, bl_ctx *ctx, const bl_train_config *cfg,
                            const bl_dataset *train, bl_error *err);
void bl_trainer_free(bl_trainer *t);

/* One update. BL_ERR_NUMERIC (naming the step and suggesting a lower LR) if the loss or
 * gradient is not finite; the parameters are then left as they were before the step. */
bl_status bl_trainer_step(bl_trainer *t, bl_step_info *info, bl_error *err);

/* Change the total batch and micro-batch from the next update on (adaptive batch
 * size). No allocation: micro_batch must not exceed the reserved size (cfg
 * reserve_batch), and must divide batch / ranks. The learning rate keeps following
 * cfg.lr_scale against the new batch unless lr_factor > 0, which then replaces the
 * batch scaling by lr x lr_factor (e.g. AdaScale's gain). */
bl_status bl_trainer_set_batch(bl_trainer *t, int batch, int micro_batch, float lr_factor,
                               bl_error *err);

/* Ask to stop (e.g. on SIGINT). The next step's reduction spreads the request, so
 * every rank sees info.stop_requested after the same step and none is left
 * waiting in a collective. */
void bl_trainer_request_stop(bl_trainer *t);

/* Mean loss and accuracy over a dataset in eval mode (batch norm running stats, no
 * dropout), in chunks of the model's max batch. */
bl_status bl_trainer_evaluate(bl_trainer *t, const bl_dataset *ds, double *loss, double *acc,
                              bl_error *err);

bl_model *bl_trainer_model(bl_trainer *t);
/* The noise-scale estimator (all NaN unless cfg.noise). */
const bl_noise *bl_trainer_noise(const bl_trainer *t);
const bl_train_config *bl_trainer_config(const bl_trainer *t);
long bl_trainer_steps_done(const bl_trainer *t);
long bl_trainer_samples_seen(const bl_trainer *t);
long bl_trainer_epoch(const bl_trainer *t);
/* Current learning rate (schedule and batch scaling applied) for the next update. */
float bl_trainer_current_lr(const bl_trainer *t);

/* Checkpoint: weights, buffers, optimizer state, RNG, step, data position, spec and the
 * given normalisation (may be NULL), written atomically. Refuses (BL_ERR_NUMERIC) to
 * write parameters that hold NaN/Inf, so a good checkpoint is never replaced by a bad one. */
bl_status bl_trainer_save(bl_trainer *t, const char *path, const bl_norm *norm, bl_error *err);
/* Restore everything bl_trainer_save wrote into a trainer created with the same spec and
 * data; says which field differs otherwise. */
bl_status bl_trainer_resume(bl_trainer *t, const char *path, bl_error *err);

/* Ranks of the run that wrote the checkpoint passed to bl_trainer_resume (the
 * current world size if none was resumed). */
int bl_trainer_resumed_world(const bl_trainer *t);

/* For eval/predict: build and allocate a model from a checkpoint (spec and input shape
 * from its metadata) with batches up to max_batch, and load its normalisation into
 * *norm (zeroed = none). */
bl_status bl_checkpoint_load_model(bl_model **out, bl_norm *norm, bl_ctx *ctx, const char *path,
                                   int max_batch, bl_error *err);

#endif
