/* Forward, loss and backward over the layer list. Every kernel call goes
 * through the backend table with explicit dims; parameter views are offsets
 * into the flat arenas. A dense/conv layer marked fused_relu runs its fused
 * kernel and the ReLU after it passes its input through, both ways. */
#include <string.h>
#include "nn/layer.h"

const float *bl_model_forward(bl_model *m, const float *x, int B, int train) {
    const bl_backend *be = m->ctx->be;
    const float *h = x;
    for (int i = 0; i < m->n_layers; i++) {
        bl_layer *l = &m->layers[i];
        const float *w = m->params + l->w_off, *b = m->params + l->b_off;
        size_t in_n = bl_shape_size(l->in), n = (size_t)B * in_n;
        float *out = l->out_buf;
        switch (l->kind) {
        case BL_LAYER_DENSE:
            if (l->fused_relu)
                be->dense_relu_forward(out, h, w, b, B, (int)in_n, l->units);
            else
                be->dense_forward(out, h, w, b, B, (int)in_n, l->units);
            break;
        case BL_LAYER_CONV: {
            bl_conv_dims d;
            bl_layer_conv_dims(l, B, &d);
            if (l->fused_relu)
                be->conv2d_relu_forward(out, h, w, b, m->ws, &d);
            else
                be->conv2d_forward(out, h, w, b, m->ws, &d);
            break;
        }
        case BL_LAYER_MAXPOOL: {
            bl_pool_dims d;
            bl_layer_pool_dims(l, B, &d);
            be->maxpool_forward(out, l->argmax, h, &d);
            break;
        }
        case BL_LAYER_AVGPOOL: {
            bl_pool_dims d;
            bl_layer_pool_dims(l, B, &d);
            be->avgpool_forward(out, h, &d);
            break;
        }
        case BL_LAYER_FLATTEN:
            out = (float *)h;
            break;
        case BL_LAYER_ACT:
            if (l->fused_into_prev)
                out = (float *)h;
            else
                be->act_forward(out, h, n, l->act, l->alpha);
            break;
        case BL_LAYER_DROPOUT:
            if (train && l->p > 0) {
                bl_dropout_key key = {.seed = m->dropout_seed,
                                      .step = m->dropout_step,
                                      .layer = (uint32_t)i,
                                      .first = m->dropout_first * in_n};
                be->dropout_forward(out, l->mask, h, n, l->p, &key);
            } else
                be->copy(out, h, n);
            break;
        case BL_LAYER_BN: {
            int C = l->in.c, HW = l->in.h * l->in.w;
            float *rm = m->buffers + l->buf_off, *rv = rm + C;
            if (train)
                be->batchnorm_forward_train(out, l->mean, l->rstd, rm, rv, h, w, b, B, C, HW, 0.1f,
                                            1e-5f);
            else
                be->batchnorm_forward_eval(out, h, w, b, rm, rv, B, C, HW, 1e-5f);
            break;
        }
        }
        m->acts[i] = out;
        h = out;
    }
    m->last_B = B;
    m->last_train = train;
    return h;
}

static void one_hot(float *t, const int32_t *labels, int B, int K) {
    memset(t, 0, (size_t)B * K * sizeof(float));
    for (int b = 0; b < B; b++)
        if (labels[b] >= 0 && labels[b] < K) t[(size_t)b * K + labels[b]] = 1.0f;
}

double bl_model_loss(bl_model *m, const int32_t *labels, int B, bl_loss_kind loss, int *correct) {
    const bl_backend *be = m->ctx->be;
    int K = bl_model_output_dim(m);
    const float *logits = m->acts[m->n_layers - 1];
    if (loss == BL_LOSS_XENT)
        return be->softmax_xent_forward(m->probs, correct, logits, labels, B, K);
    one_hot(m->target, labels, B, K);
    if (correct) {
        for (int b = 0; b < B; b++) {
            const float *row = logits + (size_t)b * K;
            int best = 0;
            for (int k = 1; k < K; k++)
                if (row[k] > row[best]) best = k;
            *correct += best == labels[b];
        }
    }
    return be->mse_forward(logits, m->target, B, K);
}

void bl_model_backward(bl_model *m, const float *x, const int32_t *labels, int B, bl_loss_kind loss,
                       float scale) {
    const bl_backend *be = m->ctx->be;
    int K = bl_model_output_dim(m);
    float *cur = m->gbuf[0];
    const float *logits = m->acts[m->n_layers - 1];
    if (loss == BL_LOSS_XENT)
        be->softmax_xent_backward(cur, m->probs, labels, B, K, scale);
    else
        be->mse_backward(cur, logits, m->target, B, K, scale);
    /* Input gradients below the first trainable layer are never needed. */
    int first = m->n_layers;
    for (int i = 0; i < m->n_layers; i++)
        if (m->layers[i].w_n) {
            first = i;
            break;
        }
    for (int i = m->n_layers - 1; i >= first; i--) {
        bl_layer *l = &m->layers[i];
        const float *in = i ? m->acts[i - 1] : x;
        const float *w = m->params + l->w_off;
        float *dw = m->grads + l->w_off, *db = m->grads + l->b_off;
        float *din = i > first ? (cur == m->gbuf[0] ? m->gbuf[1] : m->gbuf[0]) : NULL;
        size_t in_n = bl_shape_size(l->in), n = (size_t)B * in_n;
        switch (l->kind) {
        case BL_LAYER_DENSE:
            if (l->fused_relu) /* cur is a ping-pong buffer: scratch for the kernel */
                be->dense_relu_backward(din, dw, db, cur, m->acts[i], in, w, B, (int)in_n,
                                        l->units);
            else
                be->dense_backward(din, dw, db, cur, in, w, B, (int)in_n, l->units);
            /* cur now holds the pre-activation gradient (the kernel applied the mask). */
            if (m->per_example_on)
                for (int r = 0; r < B; r++) {
                    double dz = be->sumsq(cur + (size_t)r * l->units, (size_t)l->units);
                    if (dz > 0)
                        m->per_example_sum +=
                            dz * (be->sumsq(in + r * in_n, in_n) + (l->b_n ? 1 : 0));
                }
            break;
        case BL_LAYER_CONV: {
            bl_conv_dims d;
            bl_layer_conv_dims(l, B, &d);
            if (l->fused_relu)
                be->conv2d_relu_backward(din, dw, db, cur, m->acts[i], in, w, m->ws, &d);
            else
                be->conv2d_backward(din, dw, db, cur, in, w, m->ws, &d);
            break;
        }
        case BL_LAYER_MAXPOOL: {
            bl_pool_dims d;
            bl_layer_pool_dims(l, B, &d);
            be->maxpool_backward(din, cur, l->argmax, &d);
            break;
        }
        case BL_LAYER_AVGPOOL: {
            bl_pool_dims d;
            bl_layer_pool_dims(l, B, &d);
            be->avgpool_backward(din, cur, &d);
            break;
        }
        case BL_LAYER_FLATTEN:
            din = cur;
            break;
        case BL_LAYER_ACT:
            if (l->fused_into_prev) /* the fused layer below applies the mask */
                din = cur;
            else
                be->act_backward(din, cur, in, m->acts[i], n, l->act, l->alpha);
            break;
        case BL_LAYER_DROPOUT:
            if (m->last_train && l->p > 0)
                be->dropout_backward(din, cur, l->mask, n, l->p);
            else
                din = cur;
            break;
        case BL_LAYER_BN: {
            int C = l->in.c, HW = l->in.h * l->in.w;
            be->batchnorm_backward(din, dw, db, cur, in, l->mean, l->rstd, w, B, C, HW);
            break;
        }
        }
        if (m->grad_hook && l->w_n) m->grad_hook(m->grad_hook_user, l->w_off, l->w_n + l->b_n);
        if (!din) break;
        cur = din;
    }
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
