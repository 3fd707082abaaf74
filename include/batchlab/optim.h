/* Optimizers over the flat parameter arena, learning-rate schedules and the
 * batch-size learning-rate scaling rules. State (momentum buffers, Adam
 * moments) lives in one flat arena of its own, so checkpointing it is one
 * tensor and an update is one kernel call. */
#ifndef BATCHLAB_OPTIM_H
#define BATCHLAB_OPTIM_H

#include <stddef.h>
#include "batchlab/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { BL_OPT_SGD, BL_OPT_ADAM, BL_OPT_ADAMW } bl_opt_kind;

typedef struct bl_optim_config {
    bl_opt_kind kind;
    float momentum; /* SGD; 0 = plain SGD */
    int nesterov;   /* SGD with momentum > 0 */
    float beta1, beta2, eps;
    float weight_decay; /* SGD/Adam: L2 added to the gradient; AdamW: decoupled */
} bl_optim_config;

/* Defaults as torch.optim: momentum 0, beta (0.9, 0.999), eps 1e-8, wd 0 (AdamW: 0.01). */
void bl_optim_config_default(bl_optim_config *c, bl_opt_kind kind);
/* Parse "sgd" | "momentum" | "nesterov" | "adam" | "adamw" into kind (+momentum 0.9 and
 * nesterov for the two momentum names). */
bl_status bl_optim_parse(bl_optim_config *c, const char *name, bl_error *err);
const char *bl_optim_name(const bl_optim_config *c);

typedef struct bl_optim {
    bl_optim_config cfg;
    struct bl_backend *be; /* where the state lives and the updates run */
    size_t n;              /* parameters */
    float
        *state; /* flat arena (backend memory): SGD momentum (n) or Adam m (n) then v (n); owned */
    size_t state_n; /* floats in state (0, n or 2n) */
    long t;         /* updates applied so far */
} bl_optim;

/* State allocated (zeroed) on be, charged to mem (may be NULL). */
bl_status bl_optim_init(bl_optim *o, const bl_optim_config *c, size_t n_params,
                        struct bl_backend *be, bl_mem *mem, bl_error *err);
/* Bytes of state bl_optim_init allocates for n_params parameters under c (0 for plain
 * SGD): what the memory model (bl_train_memory_bytes) counts. */
size_t bl_optim_state_bytes(const bl_optim_config *c, size_t n_params);
/* One update p -= f(g) at learning rate lr, through the backend's kernels (params and
 * grads are backend pointers). */
bl_status bl_optim_step(bl_optim *o, float *params, const float *grads, float lr, bl_error *err);
void bl_optim_free(bl_optim *o, bl_mem *mem);

/* ---- schedules: lr(step) for 0-based update index ----------------------- */
typedef enum { BL_SCHED_CONSTANT, BL_SCHED_STEP, BL_SCHED_COSINE } bl_sched_kind;
typedef struct bl_schedule {
    bl_sched_kind kind;
    float base_lr;     /* after batch-size scaling */
    long warmup_steps; /* linear ramp from base_lr/warmup_steps... to base_lr, 0 = none */
    long total_steps;  /* cosine horizon (including warm-up) */
    long step_size;    /* STEP: multiply by gamma every step_size updates */
    float gamma;       /* STEP decay factor */
    float min_lr;      /* COSINE floor */
} bl_schedule;
/* Warm-up (if any) is linear: lr = base_lr * (step+1) / warmup_steps for step <
 * warmup_steps, as Goyal et al. 2017; afterwards the chosen decay runs over the
 * remaining steps. */
float bl_schedule_lr(const bl_schedule *s, long step);
bl_status bl_schedule_parse(bl_sched_kind *out, const char *s, bl_error *err);

/* ---- batch-size scaling of the learning rate ------------------------------ */
typedef enum { BL_LR_SCALE_NONE, BL_LR_SCALE_LINEAR, BL_LR_SCALE_SQRT } bl_lr_scale_rule;
/* lr * (batch / base_batch) for linear, lr * sqrt(batch / base_batch) for sqrt. */
float bl_lr_scale(bl_lr_scale_rule rule, float lr, int batch, int base_batch);
bl_status bl_lr_scale_parse(bl_lr_scale_rule *out, const char *s, bl_error *err);

#ifdef __cplusplus
}
#endif

#endif
