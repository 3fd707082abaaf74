#ifndef BL_TRAINER_INTERNAL_H
#define BL_TRAINER_INTERNAL_H
#include "batchlab/batch_schedule.h"
#include "batchlab/train.h"

struct bl_trainer {
    bl_ctx *ctx;
    bl_train_config cfg;
    char spec[4096];
    const bl_dataset *train;
    int n_classes;
    bl_model *model;
    bl_optim opt;
    bl_loader loader;
    int loader_ready;
    long step;
    long samples_seen;
    bl_noise noise;
    int stop_requested;
    float lr_factor;   /* > 0: lr = cfg.lr x this (set_batch), replacing batch scaling */
    int resumed_world; /* ranks of the run that wrote the resumed checkpoint */
    long resumed_step; /* updates done when it was resumed (-1: not resumed) */
    /* The noise scale is measured on batches of its own (noise_live.c): drawn with
     * replacement by noise_rng, gathered into noise_x/noise_y (reserve rows). */
    bl_rng noise_rng;
    float *noise_x;
    int32_t *noise_y;
    /* Batch-norm statistics saved at the start of each step (and around a measurement),
     * so that a failed step or a measurement leaves them as they were. */
    float *saved_buffers; /* backend memory */
    /* Host copy of the gradient for reductions across ranks, when the backend's
     * memory is not host memory (NULL: they reduce the arena in place). */
    float *grad_host;
    bl_batch_schedule history; /* every bl_trainer_set_batch that changed something */
    /* BL_OVERLAP_AUTO with 2 ranks: updates timed so far in each mode (on, off) and
     * the result, -1 until decided (trainer.c, overlap_mode). */
    int probe_n, probe_cnt[2], overlap_chosen;
    double probe_s[2][BL_OVERLAP_PROBE_STEPS];
};

/* Transfer points of a reduction across ranks: floats [off, off + n) of the
 * gradient to and from the memory MPI reads (no-ops when that is the arena). */
float *trainer_grad_comm(bl_trainer *t);
bl_status trainer_grad_to_host(bl_trainer *t, size_t off, size_t n, bl_error *err);
bl_status trainer_grad_from_host(bl_trainer *t, size_t off, size_t n, bl_error *err);
/* Sum the whole gradient across ranks (blocking). */
bl_status trainer_allreduce_grads(bl_trainer *t, bl_error *err);
/* --overlap auto's figures from BL_OVERLAP_PROBE_STEPS timings of each mode, where
 * on_s[i] and off_s[i] are adjacent updates: fig = {median on, median off, median of
 * on_s[i] / off_s[i]}. The last decides (on when at most 1). */
void trainer_overlap_figures(const double *on_s, const double *off_s, double fig[3]);
/* Batch-norm statistics: save to / restore from saved_buffers, on the backend. */
bl_status trainer_buffers_save(bl_trainer *t, bl_error *err);
bl_status trainer_buffers_restore(bl_trainer *t, bl_error *err);

/* The gradient noise scale of this update from a held-back batch of cfg.noise_batch samples
 * (see noise_live.c): fills the two squared gradient norms and their batch sizes, the
 * same on every rank, or sets *b_small = 0 when nothing was measured. Leaves parameters,
 * batch-norm statistics and the data position as they were, and the
 * gradient arena zeroed. */
bl_status trainer_measure_noise(bl_trainer *t, double *g2_small, double *b_small, double *g2_big,
                                double *b_big, bl_error *err);
/* Allocate what the measurement needs (when cfg.noise), and seed its stream. */
bl_status trainer_noise_init(bl_trainer *t, int reserve, bl_error *err);
void trainer_noise_free(bl_trainer *t);

#endif
