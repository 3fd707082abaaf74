/* Finding a batch size: the largest that fits a memory budget, the throughput
 * knee, and the goodput-optimal batch (throughput x statistical efficiency).
 *
 * Memory: the training footprint at batch B is exact, because every buffer goes
 * through bl_mem: parameters, gradients, buffers, activations and workspace
 * (bl_model_memory_bytes), optimizer state, and the loader's double-buffered
 * input batch. It is affine in B, so the model predicts the answer in closed
 * form; trials then confirm it for real, with the budget enforced by bl_mem's
 * limit, so a batch that does not fit fails an allocation cleanly instead of
 * meeting the OOM killer.
 *
 * Goodput (Pollux, OSDI 2021): efficiency(M) = (B_noise + M0) / (B_noise + M)
 * relative to a base batch M0, where B_noise is the gradient noise scale; the
 * goodput-optimal batch maximises throughput(M) x efficiency(M). */
#ifndef BATCHLAB_FIND_H
#define BATCHLAB_FIND_H

#include "batchlab/backend.h"
#include "batchlab/data.h"
#include "batchlab/optim.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes of the training footprint of spec at batch B (see above) on backend be (NULL:
 * the CPU backend), without the noise-scale measurement (bl_train_config.noise adds one
 * input batch: B x (input floats + a label)). */
bl_status bl_train_memory_bytes(const char *spec, bl_shape input, int n_classes,
                                const bl_optim_config *opt, int batch, const bl_backend *be,
                                size_t *bytes, bl_error *err);

typedef enum { BL_FIND_POWER, BL_FIND_BINSEARCH } bl_find_mode;

typedef struct bl_find_memory_config {
    const char *spec;
    bl_shape input;
    int n_classes;
    bl_optim_config opt;
    size_t budget_bytes;
    double margin;     /* fraction of the budget kept free (0.1 = use 90%) */
    int max_batch;     /* cap on the answer (0 = none) */
    bl_find_mode mode; /* POWER: largest power of two that fits; BINSEARCH: exact */
    int threads;
    const char *device; /* backend of the trials (NULL: as bl_ctx_init chooses) */
} bl_find_memory_config;

#define BL_FIND_MAX_TRIALS 64
typedef struct bl_find_trial {
    int batch;
    int fits;
    size_t bytes;  /* predicted footprint at this batch */
    double step_s; /* the real training step it ran (0 if it did not fit) */
} bl_find_trial;

typedef struct bl_find_memory_result {
    size_t limit_bytes;      /* budget x (1 - margin) */
    size_t fixed_bytes;      /* footprint at B = 0 (parameters, gradients, state...) */
    size_t per_sample_bytes; /* growth per sample */
    int predicted;           /* the model's answer (0: not even B = 1 fits) */
    int found;               /* the answer confirmed by trials */
    int capped;              /* found == max_batch because of the cap */
    bl_find_trial trials[BL_FIND_MAX_TRIALS];
    int n_trials;
} bl_find_memory_result;

/* BL_ERR_NOMEM (naming the budget and the footprint of B = 1) when nothing fits. */
bl_status bl_find_memory(const bl_find_memory_config *c, bl_find_memory_result *r, bl_error *err);
/* When a requested total batch does not fit: the largest micro-batch <= max_fit that
 * divides total (accumulation = total / micro). Returns 0 if total <= max_fit. */
int bl_find_micro_batch(int total, int max_fit);

/* ---- throughput and goodput ------------------------------------------------ */
#define BL_FIND_MAX_POINTS 32
typedef struct bl_throughput_point {
    int batch;
    double samples_per_s; /* median of the timed runs */
    double step_s;
    double comm_s; /* of which waiting for other ranks (mean per step; 0 on one rank) */
} bl_throughput_point;

typedef struct bl_throughput_curve {
    bl_throughput_point p[BL_FIND_MAX_POINTS];
    int n;
    int knee; /* index of the knee: see bl_throughput_knee */
} bl_throughput_curve;

/* Measure training-step throughput of spec on ds at each batch in batches[] (ascending),
 * each as the median of `runs` timed runs of >= min_run_s after `warmup` steps. */
bl_status bl_find_throughput(const char *spec, const bl_dataset *ds, const bl_optim_config *opt,
                             const int *batches, int n_batches, int warmup, int runs,
                             double min_run_s, bl_ctx *ctx, bl_throughput_curve *curve,
                             bl_error *err);
/* Index of the knee: the smallest batch whose throughput is within tol of the best
 * of the whole curve (the first such point of its monotone envelope), so a dip or a
 * fall at large batches does not move it. find uses BL_KNEE_TOL. */
#define BL_KNEE_TOL 0.10
int bl_throughput_knee(const bl_throughput_curve *c, double tol);

/* Pollux efficiency of batch m relative to base batch m0 at noise scale b_noise. */
double bl_efficiency(double b_noise, int m0, int m);
/* Index of the goodput-optimal point (throughput x efficiency), and its goodput. */
int bl_goodput_best(const bl_throughput_curve *c, double b_noise, int m0, double *goodput);

#ifdef __cplusplus
}
#endif

#endif
