/* Internal layer representation shared by the spec parser and the model. */
#ifndef BL_NN_LAYER_H
#define BL_NN_LAYER_H

#include "batchlab/backend.h"
#include "batchlab/model.h"

typedef enum {
    BL_LAYER_DENSE,
    BL_LAYER_CONV,
    BL_LAYER_MAXPOOL,
    BL_LAYER_AVGPOOL,
    BL_LAYER_FLATTEN,
    BL_LAYER_ACT,
    BL_LAYER_DROPOUT,
    BL_LAYER_BN,
} bl_layer_kind;

typedef struct bl_layer {
    bl_layer_kind kind;
    char token[64]; /* canonical spec token */
    bl_shape in, out;
    /* hyper-parameters */
    int units;                /* dense */
    int K, R, S, stride, pad; /* conv (stride/pad also pool: K unused) */
    int pool;                 /* pool window */
    bl_act act;
    float alpha; /* leaky slope */
    float p;     /* dropout */
    /* parameter arena layout (floats) */
    size_t w_off, w_n, b_off, b_n; /* dense/conv weight+bias; bn gamma+beta */
    size_t buf_off;                /* bn: running_mean (C) then running_var (C) */
    /* activation storage, set by bl_model_alloc */
    float *out_buf;     /* (max_batch, out) unless the layer aliases its input */
    int32_t *argmax;    /* maxpool */
    uint8_t *mask;      /* dropout */
    float *mean, *rstd; /* bn, (C) each */
    /* fusion, decided when the model is built: a dense/conv layer directly
     * followed by ReLU runs both as one kernel (fused_relu on the layer, whose
     * output then holds the activation), and the ReLU layer is a no-op that
     * aliases it (fused_into_prev) */
    int fused_relu, fused_into_prev;
} bl_layer;

#define BL_MAX_LAYERS 64

/* Parse spec into layers (hyper-parameters only; shapes are inferred later).
 * Presets are expanded with n_classes outputs. Errors name the token. */
bl_status bl_spec_parse(bl_layer *layers, int *n_layers, const char *spec, int n_classes,
                        bl_error *err);
/* Kernel dims of a conv / pool layer at batch B. */
void bl_layer_conv_dims(const bl_layer *l, int B, bl_conv_dims *d);
void bl_layer_pool_dims(const bl_layer *l, int B, bl_pool_dims *d);
/* Write the canonical token of l into l->token. */
void bl_layer_format_token(bl_layer *l);

/* The model object (opaque in the public API). */
struct bl_model {
    bl_layer layers[BL_MAX_LAYERS];
    int n_layers;
    bl_shape input;
    int n_classes;
    char spec[4096];
    /* arenas */
    size_t n_params, n_buffers;
    float *params, *grads, *buffers;
    bl_param_info info[3 * BL_MAX_LAYERS];
    char info_names[3 * BL_MAX_LAYERS][32];
    int n_info;
    /* activation storage; every pointer below and the arenas above are backend
     * pointers of ctx->be */
    bl_ctx *ctx;
    bl_backend *be;
    float *x_dev;   /* (max_batch, in) staged input, when the backend is not host memory */
    int32_t *y_dev; /* (max_batch) staged labels, likewise */
    int max_batch;
    float *gbuf[2]; /* gradient ping-pong, (max_batch, widest layer) */
    float *probs;   /* (max_batch, out) softmax output */
    float *target;  /* (max_batch, out) one-hot targets for MSE */
    float *ws;      /* conv scratch */
    size_t ws_floats;
    size_t blas_bytes; /* BLAS packing buffers charged to ctx->mem at alloc */
    /* last forward and loss */
    const float *acts[BL_MAX_LAYERS];
    const float *x_in;   /* the input of the last forward (backend memory) */
    const int32_t *y_in; /* the labels of the last loss (backend memory) */
    bl_loss_kind last_loss;
    int last_B, last_train;
    bl_grad_ready_fn grad_hook;
    void *grad_hook_user;
    int per_example_on;     /* accumulate per-example gradient norms in backward */
    double per_example_sum; /* sum over examples of |d(scale loss_i)/d theta|^2 */
    /* dropout: the Philox key, and where the next training forward lies in the
     * mask stream (bl_model_set_dropout_position) */
    uint64_t dropout_seed, dropout_step, dropout_first;
};

#endif
