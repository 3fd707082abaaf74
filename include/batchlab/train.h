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

#include "batchlab/batch_schedule.h"
#include "batchlab/data.h"
#include "batchlab/model.h"
#include "batchlab/noise.h"
#include "batchlab/optim.h"

#ifdef __cplusplus
extern "C" {
#endif

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
    long warmup_steps, step_size, total_steps; /* total_steps: cosine horizon, in updates */
    float gamma, min_lr;
    int drop_last;
    int prefetch;
    uint64_t seed;
    int n_classes;       /* output width; 0 = from the data */
    int noise;           /* measure the gradient noise scale, on a batch of `batch` samples
                            drawn with replacement by a stream of its own (not the epoch's
                            training batches, whose weights were fitted to the epoch's earlier
                            batches); the small batch is one example (per-example norms) when
                            every layer with parameters is dense, else the first micro-batch
                            or half. Training runs exactly as unmeasured; each measured update
                            costs one more forward and backward of a batch */
    int noise_batch;     /* samples per measurement (0: the update's batch); a bigger one
                            resolves |G|^2 better when B_simple is far above the batch */
    double noise_decay;  /* EMA decay of its estimates, per measurement (default 0.95) */
    int noise_every;     /* measure on every Nth update only (0 or 1: every update) */
    int reserve_batch;   /* size activations for micro-batches up to this (0 = micro_batch),
                            so bl_trainer_set_batch can grow the micro-batch later */
    int overlap;         /* ranks > 1: a bl_overlap (default BL_OVERLAP_AUTO) */
    size_t bucket_bytes; /* bucket size for that overlap (default 1 MiB) */
} bl_train_config;

void bl_train_config_default(bl_train_config *c);

/* How the gradient reduction meets backward with more than one rank. ON reduces
 * buckets while backward goes on; OFF reduces the whole arena after it. AUTO: with 2
 * ranks, both are timed over the first updates (BL_OVERLAP_PROBE_STEPS of each,
 * alternating, after 2 warm-up updates) and the faster is kept (by the median ratio of
 * adjacent pairs); the sums are x0 + x1
 * either way, so the weights do not depend on the choice (a batch change during the
 * timing starts it over; one after the decision keeps it). With more ranks the two round
 * differently, and a choice made by timing would make reruns differ, so AUTO is ON. */
typedef enum { BL_OVERLAP_OFF = 0, BL_OVERLAP_ON = 1, BL_OVERLAP_AUTO = 2 } bl_overlap;
#define BL_OVERLAP_PROBE_STEPS 5

typedef struct bl_step_info {
    long step;        /* updates done, after this one */
    long epoch;       /* epoch of this update (0-based) */
    size_t epoch_pos; /* samples of this epoch consumed so far */
    long samples_seen;
    int batch; /* samples in this update */
    float lr;
    double loss;          /* mean over the batch */
    double acc;           /* training accuracy on the batch */
    double grad_norm;     /* L2 norm of the accumulated (mean) gradient */
    double step_time_s;   /* the update itself (without noise_time_s) */
    double samples_per_s; /* batch / step_time_s */
    double noise_time_s;  /* spent measuring the noise scale before the update (0: none) */
    size_t peak_mem_bytes;
    int epoch_end;      /* this update finished an epoch */
    double comm_time_s; /* of step_time_s, spent in reductions across ranks */
    int overlap;        /* ranks > 1: this update reduced during backward (-1: one rank) */
    /* The step that ended BL_OVERLAP_AUTO's timing: the median step times of the two
     * modes and the median ratio of adjacent pairs (on / off), averaged over the
     * ranks. The ratio decides: on from the next update when it is at most 1. */
    int overlap_decided;
    double overlap_on_s, overlap_off_s, overlap_ratio;
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
 * gradient is not finite; the trainer is then left as it was before the step (parameters,
 * data position, batch-norm statistics), so a retry at another batch
 * size continues from the same state. */
bl_status bl_trainer_step(bl_trainer *t, bl_step_info *info, bl_error *err);

/* Change the total batch and micro-batch from the next update on (adaptive batch
 * size). No allocation for the activations: micro_batch must not exceed the reserved
 * size (cfg reserve_batch), and must divide batch / ranks. The learning rate keeps
 * following cfg.lr_scale against the new batch unless lr_factor > 0, which then replaces
 * the batch scaling by lr x lr_factor (e.g. AdaScale's gain). A change of batch or factor
 * is appended to the trainer's batch history (saved in checkpoints). */
bl_status bl_trainer_set_batch(bl_trainer *t, int batch, int micro_batch, float lr_factor,
                               bl_error *err);
/* Every change bl_trainer_set_batch made (and those of the run a checkpoint was resumed
 * from), owned by the trainer. */
const bl_batch_schedule *bl_trainer_batch_history(const bl_trainer *t);
/* Replay a logged batch schedule: applies the entries from index *next on whose step is
 * at most the updates done, advancing *next. Called first on a resumed trainer, it checks
 * that the checkpoint's batch and lr factor are the schedule's at that update
 * (BL_ERR_ARG saying where they part otherwise). */
bl_status bl_trainer_follow_schedule(bl_trainer *t, const bl_batch_schedule *s, int *next,
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

/* Checkpoint: weights, buffers, optimizer state, RNG, step, data position, the learning-
 * rate schedule (kind, lr, scaling rule and base batch, warm-up, total updates, step size,
 * gamma, floor), the current batch and lr factor with the batch history, the noise-scale
 * estimator, spec and the given normalisation (may be NULL), written atomically. Refuses
 * (BL_ERR_NUMERIC) to write parameters that hold NaN/Inf, so a good checkpoint is never
 * replaced by a bad one. */
bl_status bl_trainer_save(bl_trainer *t, const char *path, const bl_norm *norm, bl_error *err);
/* Restore everything bl_trainer_save wrote into a trainer created with the same spec and
 * data; says which field differs otherwise. The learning-rate schedule is the
 * checkpoint's (so the lr path continues unchanged whatever this trainer was created
 * with; see bl_trainer_check_schedule); so are the batch and lr factor when the
 * checkpoint's run changed its batch (BL_ERR_ARG if they do not fit the reserve). */
bl_status bl_trainer_resume(bl_trainer *t, const char *path, bl_error *err);

/* Schedule settings, for bl_trainer_check_schedule. */
enum {
    BL_SCHED_SET_KIND = 1 << 0,
    BL_SCHED_SET_LR = 1 << 1,
    BL_SCHED_SET_LR_SCALE = 1 << 2,
    BL_SCHED_SET_BASE_BATCH = 1 << 3,
    BL_SCHED_SET_WARMUP = 1 << 4,
    BL_SCHED_SET_STEP_SIZE = 1 << 5,
    BL_SCHED_SET_GAMMA = 1 << 6,
    BL_SCHED_SET_MIN_LR = 1 << 7,
};
/* After bl_trainer_resume: compares the schedule the trainer continues with `asked` (the
 * configuration this run was given). BL_ERR_ARG naming the setting when one whose
 * BL_SCHED_SET_* bit is in `explicit_set` differs (the caller asked for another lr path);
 * when the total length of a cosine schedule differs, it continues unchanged and `note`
 * (may be NULL) says so; otherwise note is "". */
bl_status bl_trainer_check_schedule(const bl_trainer *t, const bl_train_config *asked,
                                    unsigned explicit_set, char *note, size_t note_cap,
                                    bl_error *err);

/* Ranks of the run that wrote the checkpoint passed to bl_trainer_resume (the
 * current world size if none was resumed). */
int bl_trainer_resumed_world(const bl_trainer *t);

/* For eval/predict: build and allocate a model from a checkpoint (spec and input shape
 * from its metadata) with batches up to max_batch, and load its normalisation into
 * *norm (zeroed = none). */
bl_status bl_checkpoint_load_model(bl_model **out, bl_norm *norm, bl_ctx *ctx, const char *path,
                                   int max_batch, bl_error *err);

#ifdef __cplusplus
}
#endif

#endif
