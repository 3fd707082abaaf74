/* The CUDA backend's convolutions: cuDNN's legacy API (cross-correlation,
 * NCHW, fp32 FMA math: no TF32 unless bl_ctx_set_tf32 allowed it), with algorithms chosen once per
 * shape by cuDNN's heuristics and kept in the context's table of plans. */
#include <string.h>
#include "backend/cuda/cuda_internal.h"
#include "backend/cuda/cuda_kernels.h"

/* Destroys the descriptors a plan made (those still NULL are skipped). */
void cuda_plan_destroy(conv_plan *p) {
    if (p->x) cuda_lib.cudnnDestroyTensorDescriptor(p->x);
    if (p->y) cuda_lib.cudnnDestroyTensorDescriptor(p->y);
    if (p->w) cuda_lib.cudnnDestroyFilterDescriptor(p->w);
    if (p->conv) cuda_lib.cudnnDestroyConvolutionDescriptor(p->conv);
}

static bl_status plan_descriptors(const cuda_state *s, conv_plan *p, const bl_conv_dims *d) {
    DNN(cuda_lib.cudnnCreateTensorDescriptor(&p->x));
    DNN(cuda_lib.cudnnCreateTensorDescriptor(&p->y));
    DNN(cuda_lib.cudnnCreateFilterDescriptor(&p->w));
    DNN(cuda_lib.cudnnCreateConvolutionDescriptor(&p->conv));
    DNN(cuda_lib.cudnnSetTensor4dDescriptor(p->x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, d->B, d->C,
                                            d->H, d->W));
    DNN(cuda_lib.cudnnSetTensor4dDescriptor(p->y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, d->B, d->K,
                                            d->P, d->Q));
    DNN(cuda_lib.cudnnSetFilter4dDescriptor(p->w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, d->K, d->C,
                                            d->R, d->S));
    /* cross-correlation, as torch's Conv2d and the CPU backend */
    DNN(cuda_lib.cudnnSetConvolution2dDescriptor(p->conv, d->pad, d->pad, d->stride, d->stride, 1,
                                                 1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    /* FMA only, or (TF32 allowed) cuDNN's default, which permits TF32 tensor cores */
    DNN(cuda_lib.cudnnSetConvolutionMathType(p->conv,
                                             s->tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH));
    return BL_OK;
}

/* The workspace limit for a shape: what the largest batch of the same layer
 * planned so far needs (the model sizes its workspace from a plan at its
 * largest batch, before any call), so a smaller batch never asks for more. */
static size_t plan_limit(const cuda_state *s, const bl_conv_dims *d, int *found) {
    size_t limit = 0;
    int best_b = -1;
    for (int i = 0; i < s->n_plans; i++) {
        bl_conv_dims o = s->plans[i].d;
        if (o.B < d->B || o.B <= best_b) continue;
        o.B = d->B;
        if (memcmp(&o, d, sizeof o)) continue;
        best_b = s->plans[i].d.B;
        limit = s->plans[i].ws_bytes;
    }
    *found = best_b >= 0;
    return limit;
}

/* Picks the first of cuDNN's heuristic choices that ran successfully in its
 * ranking, uses FMA math (fp32) unless tensor cores are allowed (TF32), is
 * deterministic where asked, and fits limit. */
#define PICK(perf, n, chosen, ws, limit, need_det, tensor_ok)                                      \
    do {                                                                                           \
        int ok_ = 0;                                                                               \
        for (int i_ = 0; i_ < (n) && !ok_; i_++) {                                                 \
            if ((perf)[i_].status != CUDNN_STATUS_SUCCESS) continue;                               \
            if ((perf)[i_].mathType == CUDNN_TENSOR_OP_MATH && !(tensor_ok)) continue;             \
            if ((need_det) && (perf)[i_].determinism != CUDNN_DETERMINISTIC) continue;             \
            if ((perf)[i_].memory > (limit)) continue;                                             \
            (chosen) = (perf)[i_].algo;                                                            \
            (ws) = (perf)[i_].memory;                                                              \
            ok_ = 1;                                                                               \
        }                                                                                          \
        if (!ok_) return BL_ERR_DEVICE;                                                            \
    } while (0)

static bl_status plan_algorithms(cuda_state *s, conv_plan *p, size_t limit) {
    enum { N = 16 };
    int n = 0;
    size_t wf = 0, wd = 0, ww = 0;
    cudnnConvolutionFwdAlgoPerf_t fp[N];
    DNN(cuda_lib.cudnnGetConvolutionForwardAlgorithm_v7(s->dnn, p->x, p->w, p->conv, p->y, N, &n,
                                                        fp));
    PICK(fp, n, p->fwd, wf, limit, 0, s->tf32);
    cudnnConvolutionBwdDataAlgoPerf_t dp[N];
    DNN(cuda_lib.cudnnGetConvolutionBackwardDataAlgorithm_v7(s->dnn, p->w, p->y, p->conv, p->x, N,
                                                             &n, dp));
    PICK(dp, n, p->bwd_data, wd, limit, 1, s->tf32);
    cudnnConvolutionBwdFilterAlgoPerf_t wp[N];
    DNN(cuda_lib.cudnnGetConvolutionBackwardFilterAlgorithm_v7(s->dnn, p->x, p->y, p->conv, p->w, N,
                                                               &n, wp));
    PICK(wp, n, p->bwd_filter, ww, limit, 1, s->tf32);
    p->ws_bytes = wf > wd ? (wf > ww ? wf : ww) : (wd > ww ? wd : ww);
    return BL_OK;
}

/* The plan for d: found, or made (evicting the oldest when the table is full). */
static bl_status plan_get(cuda_state *s, const bl_conv_dims *d, conv_plan **out) {
    for (int i = 0; i < s->n_plans; i++)
        if (!memcmp(&s->plans[i].d, d, sizeof *d)) {
            *out = &s->plans[i];
            return BL_OK;
        }
    int found;
    size_t limit = plan_limit(s, d, &found);
    if (!found) limit = (size_t)1 << 40; /* a first plan for this layer: cuDNN's best */
    conv_plan *p;
    if (s->n_plans < MAX_PLANS) {
        p = &s->plans[s->n_plans++];
    } else {
        p = &s->plans[s->next_evict];
        s->next_evict = (s->next_evict + 1) % MAX_PLANS;
        cuda_plan_destroy(p);
    }
    memset(p, 0, sizeof *p);
    p->d = *d;
    bl_status st = plan_descriptors(s, p, d);
    if (!st) st = plan_algorithms(s, p, limit);
    if (st) {
        cuda_plan_destroy(p); /* unusable: dropped */
        *p = s->plans[--s->n_plans];
        if (s->next_evict >= s->n_plans) s->next_evict = 0;
        return st;
    }
    *out = p;
    return BL_OK;
}

size_t cuda_conv2d_workspace_floats(const bl_backend *be, const bl_conv_dims *d) {
    cuda_state *s = S((bl_backend *)be);
    conv_plan *p;
    if (!s || plan_get(s, d, &p)) return 0; /* the call will then fail and say so */
    return (p->ws_bytes + sizeof(float) - 1) / sizeof(float);
}

bl_status cuda_conv2d_forward(bl_backend *be, float *out, const float *in, const float *w,
                              const float *b, float *ws, const bl_conv_dims *d, int relu) {
    STATE(be);
    if (d->B <= 0) return BL_OK;
    conv_plan *p;
    bl_status st = plan_get(s, d, &p);
    if (st) return st;
    const float one = 1.0f, zero = 0.0f;
    DNN(cuda_lib.cudnnConvolutionForward(s->dnn, &one, p->x, in, p->w, w, p->conv, p->fwd, ws,
                                         p->ws_bytes, &zero, p->y, out));
    if (b || relu) CU(blk_bias_act_channels(s->stream, out, b, d->B, d->K, d->P * d->Q, relu));
    return BL_OK;
}

bl_status cuda_conv2d_backward(bl_backend *be, float *din, float *dw, float *db, float *dout,
                               const float *out, const float *in, const float *w, float *ws,
                               const bl_conv_dims *d, int relu) {
    STATE(be);
    if (d->B <= 0) return BL_OK;
    conv_plan *p;
    bl_status st = plan_get(s, d, &p);
    if (st) return st;
    const float one = 1.0f, zero = 0.0f;
    if (relu) CU(blk_relu_mask(s->stream, dout, out, (size_t)d->B * d->K * d->P * d->Q));
    if (db) CU(blk_bias_grad_channels(s->stream, db, dout, d->B, d->K, d->P * d->Q));
    if (dw)
        DNN(cuda_lib.cudnnConvolutionBackwardFilter(s->dnn, &one, p->x, in, p->y, dout, p->conv,
                                                    p->bwd_filter, ws, p->ws_bytes, &one, p->w,
                                                    dw));
    if (din)
        DNN(cuda_lib.cudnnConvolutionBackwardData(s->dnn, &one, p->w, w, p->y, dout, p->conv,
                                                  p->bwd_data, ws, p->ws_bytes, &zero, p->x, din));
    return BL_OK;
}
