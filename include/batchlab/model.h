/* A model is a list of layers built from a textual spec such as
 *   conv3x3:32,relu,maxpool2,flatten,dense:128,relu,dense:10
 * with shapes inferred from the input shape when it is built. Parameters,
 * gradients and buffers (batch-norm running statistics) each live in one flat
 * arena; activations and scratch are sized once for the largest batch and
 * reused for any smaller B, so nothing is allocated in the step loop.
 *
 * Parameter tensors are named as in a torch.nn.Sequential of the same layers
 * ("0.weight", "0.bias", "3.running_mean", ...), with the spec's tokens as the
 * module indices, so PyTorch state dicts map one to one.
 *
 * Spec tokens (comma-separated):
 *   dense:N               linear layer to N outputs (input is flattened implicitly)
 *   convRxS:K[:sN][:pN]   conv, K output channels, stride (1), pad (default R/2, "same")
 *   maxpoolK[:sN]         max pool K x K, stride (default K); avgpoolK[:sN] likewise
 *   flatten               (C,H,W) -> (C*H*W)
 *   relu  lrelu[:A]  tanh  sigmoid  gelu
 *   dropout[:P]           inverted dropout, P default 0.5
 *   bn                    batch norm (1d after dense/flatten, 2d after conv)
 * Presets: mlp, cnn (exactly the models of shared/ANCHORS.md) and logreg; their
 * last layer gets n_classes outputs. */
#ifndef BATCHLAB_MODEL_H
#define BATCHLAB_MODEL_H

#include <stddef.h>
#include <stdint.h>
#include "batchlab/backend.h"
#include "batchlab/data.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { BL_LOSS_XENT, BL_LOSS_MSE } bl_loss_kind;
/* "xent" or "mse" (BL_ERR_ARG naming the value otherwise), and back. */
bl_status bl_loss_parse(bl_loss_kind *out, const char *s, bl_error *err);
const char *bl_loss_name(bl_loss_kind k);

typedef struct bl_model bl_model;

typedef struct bl_param_info {
    const char *name; /* "0.weight" */
    size_t offset;    /* floats from the start of its arena */
    size_t count;
    int ndim;
    int64_t shape[4];
    int is_buffer; /* 1: lives in the buffer arena (running stats), not trained */
} bl_param_info;

/* Parse spec (or a preset name), infer shapes from `input`, lay out the arenas.
 * Allocates nothing big yet. An error names the offending token and why. */
bl_status bl_model_create(bl_model **out, const char *spec, bl_shape input, int n_classes,
                          bl_error *err);
/* Allocate arenas (params, grads, buffers) and activations/scratch for batches up to
 * max_batch, all through ctx->mem. */
bl_status bl_model_alloc(bl_model *m, bl_ctx *ctx, int max_batch, bl_error *err);
void bl_model_free(bl_model *m);

/* PyTorch default init (U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for dense/conv weights and
 * biases; gamma 1, beta 0, running var 1), from a seeded RNG, and zero gradients. The
 * seed is also the key of the dropout masks. */
bl_status bl_model_init(bl_model *m, uint64_t seed, bl_error *err);

const char *bl_model_spec(const bl_model *m); /* expanded, canonical spec */
/* The backend an allocated model lives on (NULL before bl_model_alloc). */
bl_backend *bl_model_backend(const bl_model *m);
bl_shape bl_model_input_shape(const bl_model *m);
int bl_model_output_dim(const bl_model *m);
int bl_model_max_batch(const bl_model *m);
size_t bl_model_num_params(const bl_model *m);
size_t bl_model_num_buffers(const bl_model *m);
int bl_model_num_tensors(const bl_model *m);
const bl_param_info *bl_model_tensor(const bl_model *m, int i);
/* The arenas as backend pointers (see backend.h): for backend calls (optimizer,
 * reductions) only. The host reads and writes them with bl_model_read/write. */
float *bl_model_params(bl_model *m);
float *bl_model_grads(bl_model *m);
float *bl_model_buffers(bl_model *m);
typedef enum bl_arena { BL_ARENA_PARAMS, BL_ARENA_GRADS, BL_ARENA_BUFFERS } bl_arena;
/* Copy floats [off, off + n) of an arena to or from host memory: the transfer
 * points for initialisation, checkpoints and tests. BL_ERR_ARG if the range is
 * outside the arena. */
bl_status bl_model_read(bl_model *m, bl_arena a, size_t off, size_t n, float *host, bl_error *err);
bl_status bl_model_write(bl_model *m, bl_arena a, size_t off, size_t n, const float *host,
                         bl_error *err);
/* dst's parameters and buffers := src's, on their backend (the same for both; the
 * same spec and input). */
bl_status bl_model_copy_state(bl_model *dst, const bl_model *src, bl_error *err);
/* Where the next training forward's dropout masks lie: update `step`, samples
 * from position first_sample of the update's batch on. A mask is a pure function
 * of (seed, step, layer, element), so it does not depend on the thread count, the
 * backend, or how the update is split into micro-batches and ranks; and a resumed
 * run, which knows its step, needs no generator state. Both start at 0. */
void bl_model_set_dropout_position(bl_model *m, long step, size_t first_sample);

/* Forward B <= max_batch samples x(B, in_dim), host memory (a transfer point: the
 * batch is uploaded to the backend, or used in place when the backend's memory is
 * host memory, so x must then stay unchanged until the backward). train=1 uses
 * dropout and batch statistics. */
bl_status bl_model_forward(bl_model *m, const float *x, int B, int train, bl_error *err);
/* The last forward's output (B, out_dim) copied to host memory out. */
bl_status bl_model_output(bl_model *m, float *out, bl_error *err);
/* Loss of the last forward against labels (B of them, host memory): *sum gets the
 * SUM over the batch (cross-entropy, or MSE against one-hot labels); argmax hits
 * are added to *correct (may be NULL). */
bl_status bl_model_loss(bl_model *m, const int32_t *labels, bl_loss_kind loss, double *sum,
                        int *correct, bl_error *err);
/* Backward of the last forward+loss; parameter gradients ACCUMULATE, each sample
 * weighted by scale (1/total_batch for a mean over the total batch). */
bl_status bl_model_backward(bl_model *m, float scale, bl_error *err);
bl_status bl_model_zero_grad(bl_model *m, bl_error *err);
/* *out = the squared L2 norm of the gradient arena, summed on the backend. */
bl_status bl_model_grad_sumsq(bl_model *m, double *out, bl_error *err);

/* Per-example gradient norms, for the gradient noise scale without a second batch.
 * A dense layer's gradient for one example is the outer product of its output
 * gradient dz_i and input x_i (and dz_i for the bias), so its squared norm is
 * |dz_i|^2 (|x_i|^2 + 1): O(in + out) per example, beside an O(in x out) product.
 * Exact only when every layer with parameters is dense (batch norm couples the
 * examples, conv's per-example gradient is not an outer product). While on, each
 * bl_model_backward adds sum_i |d(scale loss_i)/d theta|^2 to the sum; turning it on
 * resets the sum. */
int bl_model_per_example_ok(const bl_model *m);
void bl_model_per_example_norms(bl_model *m, int on);
double bl_model_per_example_sum(const bl_model *m);

/* Called by bl_model_backward right after a layer's parameter gradients are
 * complete, with that layer's range [off, off+n) of the gradient arena; layers
 * come last to first, so ranges arrive in decreasing offset order. Used to
 * start reducing gradients across ranks while backward continues. NULL clears. */
typedef void (*bl_grad_ready_fn)(void *user, size_t off, size_t n);
void bl_model_set_grad_hook(bl_model *m, bl_grad_ready_fn fn, void *user);

/* Mean loss and accuracy over ds in eval mode (running batch-norm statistics, no
 * dropout), B samples at a time (B <= 0 or above max_batch: max_batch). BL_ERR_SHAPE if
 * ds's sample size differs from the model input; BL_ERR_ARG if a label is outside the
 * model's outputs. */
bl_status bl_model_evaluate(bl_model *m, const bl_dataset *ds, bl_loss_kind loss, int B,
                            double *mean_loss, double *acc, bl_error *err);
/* Eval-mode outputs for n samples x(n, in_dim) into out(n, out_dim), B <= max_batch at a
 * time. */
bl_status bl_model_predict(bl_model *m, const float *x, size_t n, int B, float *out, bl_error *err);
/* BL_ERR_SHAPE naming `what` (a file) when a sample of `dim` floats is not the model's
 * input size. */
bl_status bl_model_check_input(const bl_model *m, size_t dim, const char *what, bl_error *err);

/* Predicted bytes for params+grads+buffers+activations+scratch at batch B (the
 * optimizer state is counted by the caller), on the backend m is allocated on (before
 * bl_model_alloc: the CPU backend), or on be (NULL: likewise). */
size_t bl_model_memory_bytes(const bl_model *m, int B);
size_t bl_model_memory_bytes_on(const bl_model *m, const bl_backend *be, int B);

#ifdef __cplusplus
}
#endif

#endif
