/* Forward, loss and backward over the layer list. Every kernel call goes
 * through the backend with explicit dims; parameter views are offsets into the
 * flat arenas, which are backend memory. The host meets it here only to load a
 * batch (input and labels) and to read the loss and hit count. A dense/conv
 * layer marked fused_relu runs its fused kernel and the ReLU after it passes
 * its input through, both ways. */
#include <string.h>
#include "nn/layer.h"

/* A failed backend call ends the pass with a message naming the layer. */
#define TRY(call, what)                                                                            \
    do {                                                                                           \
        bl_status st_ = (call);                                                                    \
        if (st_) return layer_fail(m, err, st_, i, what);                                          \
    } while (0)

static bl_status layer_fail(const bl_model *m, bl_error *err, bl_status st, int i,
                            const char *what) {
    bl_backend_fail(err, st, m->be, what);
    if (i >= 0) bl_error_prefix(err, "layer %d '%s'", i, m->layers[i].token);
    return st;
}

/* Transfer point: a host batch into backend memory (in place on host memory). */
static bl_status stage(bl_model *m, void *dev, const void *host, size_t bytes, const void **used,
                       bl_error *err) {
    int i = -1;
    if (m->be->host_visible) {
        *used = host;
        return BL_OK;
    }
    TRY(m->be->ops->upload(m->be, dev, host, bytes), "loading the batch");
    *used = dev;
    return BL_OK;
}

bl_status bl_model_forward(bl_model *m, const float *x, int B, int train, bl_error *err) {
    bl_backend *be = m->be;
    if (B <= 0 || B > m->max_batch)
        return bl_fail(err, BL_ERR_ARG, "batch size %d is invalid: it must be between 1 and %d", B,
                       m->max_batch);
    const void *xin;
    bl_status st =
        stage(m, m->x_dev, x, (size_t)B * bl_shape_size(m->input) * sizeof(float), &xin, err);
    if (st) return st;
    m->x_in = xin;
    const float *h = xin;
    for (int i = 0; i < m->n_layers; i++) {
        bl_layer *l = &m->layers[i];
        const float *w = m->params + l->w_off, *b = m->params + l->b_off;
        size_t in_n = bl_shape_size(l->in), n = (size_t)B * in_n;
        float *out = l->out_buf;
        switch (l->kind) {
        case BL_LAYER_DENSE:
            TRY(be->ops->dense_forward(be, out, h, w, b, B, (int)in_n, l->units, l->fused_relu),
                "dense forward");
            break;
        case BL_LAYER_CONV: {
            bl_conv_dims d;
            bl_layer_conv_dims(l, B, &d);
            TRY(be->ops->conv2d_forward(be, out, h, w, b, m->ws, &d, l->fused_relu),
                "conv forward");
            break;
        }
        case BL_LAYER_MAXPOOL: {
            bl_pool_dims d;
            bl_layer_pool_dims(l, B, &d);
            TRY(be->ops->maxpool_forward(be, out, l->argmax, h, &d), "maxpool forward");
            break;
        }
        case BL_LAYER_AVGPOOL: {
            bl_pool_dims d;
            bl_layer_pool_dims(l, B, &d);
            TRY(be->ops->avgpool_forward(be, out, h, &d), "avgpool forward");
            break;
        }
        case BL_LAYER_FLATTEN:
            out = (float *)h;
            break;
        case BL_LAYER_ACT:
            if (l->fused_into_prev)
                out = (float *)h;
            else
                TRY(be->ops->act_forward(be, out, h, n, l->act, l->alpha), "activation forward");
            break;
        case BL_LAYER_DROPOUT:
            if (train && l->p > 0) {
                bl_dropout_key key = {.seed = m->dropout_seed,
                                      .step = m->dropout_step,
                                      .layer = (uint32_t)i,
                                      .first = m->dropout_first * in_n};
                TRY(be->ops->dropout_forward(be, out, l->mask, h, n, l->p, &key),
                    "dropout forward");
            } else
                TRY(be->ops->copy(be, out, h, n * sizeof(float)), "dropout copy");
            break;
        case BL_LAYER_BN: {
            int C = l->in.c, HW = l->in.h * l->in.w;
            float *rm = m->buffers + l->buf_off, *rv = rm + C;
            if (train)
                TRY(be->ops->batchnorm_forward_train(be, out, l->mean, l->rstd, rm, rv, h, w, b, B,
                                                     C, HW, 0.1f, 1e-5f),
                    "batch-norm forward");
            else
                TRY(be->ops->batchnorm_forward_eval(be, out, h, w, b, rm, rv, B, C, HW, 1e-5f),
                    "batch-norm forward");
            break;
        }
        }
        m->acts[i] = out;
        h = out;
    }
    m->last_B = B;
    m->last_train = train;
    return BL_OK;
}

bl_status bl_model_output(bl_model *m, float *out, bl_error *err) {
    int i = -1;
    size_t bytes = (size_t)m->last_B * (size_t)bl_model_output_dim(m) * sizeof(float);
    TRY(m->be->ops->download(m->be, out, m->acts[m->n_layers - 1], bytes), "reading the output");
    return BL_OK;
}

bl_status bl_model_loss(bl_model *m, const int32_t *labels, bl_loss_kind loss, double *sum,
                        int *correct, bl_error *err) {
    bl_backend *be = m->be;
    int B = m->last_B, K = bl_model_output_dim(m), i = -1;
    const float *logits = m->acts[m->n_layers - 1];
    const void *y;
    bl_status st = stage(m, m->y_dev, labels, (size_t)B * sizeof(int32_t), &y, err);
    if (st) return st;
    m->y_in = y;
    m->last_loss = loss;
    if (loss == BL_LOSS_XENT)
        TRY(be->ops->softmax_xent_forward(be, sum, correct, m->probs, logits, m->y_in, B, K),
            "cross-entropy");
    else
        TRY(be->ops->mse_forward(be, sum, correct, m->target, logits, m->y_in, B, K), "MSE");
    return BL_OK;
}

bl_status bl_model_backward(bl_model *m, float scale, bl_error *err) {
    bl_backend *be = m->be;
    int B = m->last_B, K = bl_model_output_dim(m), i = -1;
    float *cur = m->gbuf[0];
    const float *logits = m->acts[m->n_layers - 1];
    if (m->last_loss == BL_LOSS_XENT)
        TRY(be->ops->softmax_xent_backward(be, cur, m->probs, m->y_in, B, K, scale),
            "cross-entropy backward");
    else
        TRY(be->ops->mse_backward(be, cur, logits, m->target, B, K, scale), "MSE backward");
    /* Input gradients below the first trainable layer are never needed. */
    int first = m->n_layers;
    for (int i = 0; i < m->n_layers; i++)
        if (m->layers[i].w_n) {
            first = i;
            break;
        }
    for (i = m->n_layers - 1; i >= first; i--) {
        bl_layer *l = &m->layers[i];
        const float *in = i ? m->acts[i - 1] : m->x_in;
        const float *w = m->params + l->w_off;
        float *dw = m->grads + l->w_off, *db = m->grads + l->b_off;
        float *din = i > first ? (cur == m->gbuf[0] ? m->gbuf[1] : m->gbuf[0]) : NULL;
        size_t in_n = bl_shape_size(l->in), n = (size_t)B * in_n;
        switch (l->kind) {
        case BL_LAYER_DENSE:
            /* cur is a ping-pong buffer: scratch for the fused kernel */
            TRY(be->ops->dense_backward(be, din, dw, db, cur, m->acts[i], in, w, B, (int)in_n,
                                        l->units, l->fused_relu),
                "dense backward");
            /* cur now holds the pre-activation gradient (the kernel applied the mask). */
            if (m->per_example_on)
                TRY(be->ops->per_example_sumsq(be, &m->per_example_sum, cur, in, B, (int)in_n,
                                               l->units, l->b_n ? 1 : 0),
                    "per-example norms");
            break;
        case BL_LAYER_CONV: {
            bl_conv_dims d;
            bl_layer_conv_dims(l, B, &d);
            TRY(be->ops->conv2d_backward(be, din, dw, db, cur, m->acts[i], in, w, m->ws, &d,
                                         l->fused_relu),
                "conv backward");
            break;
        }
        case BL_LAYER_MAXPOOL: {
            bl_pool_dims d;
            bl_layer_pool_dims(l, B, &d);
            TRY(be->ops->maxpool_backward(be, din, cur, l->argmax, &d), "maxpool backward");
            break;
        }
        case BL_LAYER_AVGPOOL: {
            bl_pool_dims d;
            bl_layer_pool_dims(l, B, &d);
            TRY(be->ops->avgpool_backward(be, din, cur, &d), "avgpool backward");
            break;
        }
        case BL_LAYER_FLATTEN:
            din = cur;
            break;
        case BL_LAYER_ACT:
            if (l->fused_into_prev) /* the fused layer below applies the mask */
                din = cur;
            else
                TRY(be->ops->act_backward(be, din, cur, in, m->acts[i], n, l->act, l->alpha),
                    "activation backward");
            break;
        case BL_LAYER_DROPOUT:
            if (m->last_train && l->p > 0)
                TRY(be->ops->dropout_backward(be, din, cur, l->mask, n, l->p), "dropout backward");
            else
                din = cur;
            break;
        case BL_LAYER_BN: {
            int C = l->in.c, HW = l->in.h * l->in.w;
            TRY(be->ops->batchnorm_backward(be, din, dw, db, cur, in, l->mean, l->rstd, w, B, C,
                                            HW),
                "batch-norm backward");
            break;
        }
        }
        if (m->grad_hook && l->w_n) m->grad_hook(m->grad_hook_user, l->w_off, l->w_n + l->b_n);
        if (!din) break;
        cur = din;
    }
    return BL_OK;
}

int bl_model_per_example_ok(const bl_model *m) {
    for (int i = 0; i < m->n_layers; i++)
        if (m->layers[i].w_n && m->layers[i].kind != BL_LAYER_DENSE) return 0;
    return 1;
}

void bl_model_per_example_norms(bl_model *m, int on) {
    m->per_example_on = on && bl_model_per_example_ok(m);
    m->per_example_sum = 0;
}

double bl_model_per_example_sum(const bl_model *m) {
    return m->per_example_sum;
}

void bl_model_set_grad_hook(bl_model *m, bl_grad_ready_fn fn, void *user) {
    m->grad_hook = fn;
    m->grad_hook_user = user;
}
