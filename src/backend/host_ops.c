/* The backend operations of the two backends that compute on this CPU: "cpu"
 * and "opaque". Both run the bl_kernels table of the ISA level in use; they
 * differ only in their memory. The CPU backend's buffers are ordinary host
 * memory (bl_mem_alloc), so its transfers are memcpy and host code may skip
 * them (host_visible). The opaque backend's buffers come from its own pool
 * (opaque_pool.c), which is unreadable outside its calls: every operation here
 * opens the pool before it touches memory and closes it after, so the kernels
 * run unchanged while any host code that dereferences a backend pointer
 * faults on the spot.
 *
 * The kernels' parallel loops run on be->pool: a backend from bl_backend_get
 * has none (its kernels run on the calling thread), a context's copy has the
 * context's own (bl_ctx_init). */
#include <string.h>
#include "backend/host_backend.h"

static inline const bl_kernels *K(void) {
    return bl_cpu_kernels();
}
/* Run stmt with the memory that the pointers after it point into open (the
 * opaque backend opens exactly those blocks); every host kernel call here
 * succeeds, so the status is BL_OK. */
#define RUN(be, stmt, ...)                                                                         \
    do {                                                                                           \
        const void *const ptrs_[] = {__VA_ARGS__};                                                 \
        const int n_ = (int)(sizeof ptrs_ / sizeof ptrs_[0]);                                      \
        if (!(be)->host_visible) opaque_pool_open((be)->impl, ptrs_, n_);                          \
        stmt;                                                                                      \
        if (!(be)->host_visible) opaque_pool_close((be)->impl, ptrs_, n_);                         \
        return BL_OK;                                                                              \
    } while (0)

static bl_status op_alloc(bl_backend *be, bl_mem *mem, size_t bytes, bl_buffer_kind kind,
                          const char *what, void **out, bl_error *err) {
    /* Host staging is host memory on either backend. */
    if (be->host_visible || kind == BL_BUFFER_HOST) {
        *out = bl_mem_alloc(mem, bytes, what, err);
        return *out ? BL_OK : err ? err->code : BL_ERR_NOMEM;
    }
    return opaque_pool_alloc(be->impl, mem, bytes, what, out, err);
}

static void op_release(bl_backend *be, bl_mem *mem, void *p) {
    if (!p) return;
    if (!be->host_visible && opaque_pool_owns(be->impl, p))
        opaque_pool_release(be->impl, mem, p);
    else
        bl_mem_free(mem, p);
}

static bl_status op_upload(bl_backend *be, void *dst, const void *src, size_t bytes) {
    RUN(be, memcpy(dst, src, bytes), dst);
}
static bl_status op_download(bl_backend *be, void *dst, const void *src, size_t bytes) {
    RUN(be, memcpy(dst, src, bytes), src);
}
static bl_status op_copy(bl_backend *be, void *dst, const void *src, size_t bytes) {
    RUN(be, memmove(dst, src, bytes), dst, src);
}
static bl_status op_synchronize(bl_backend *be) {
    (void)be; /* every host kernel has finished when it returns */
    return BL_OK;
}
static void op_set_threads(bl_backend *be, int threads) {
    bl_cpu_pool_set_threads(be->pool, threads);
}
static size_t op_conv2d_workspace_floats(const bl_backend *be, const bl_conv_dims *d) {
    (void)be;
    return K()->conv2d_workspace_floats(d);
}
static size_t op_dense_blas_bytes(const bl_backend *be, int B, int in_dim, int out_dim) {
    (void)be;
    return K()->dense_blas_bytes(B, in_dim, out_dim);
}
static size_t op_conv2d_blas_bytes(const bl_backend *be, const bl_conv_dims *d) {
    (void)be;
    return K()->conv2d_blas_bytes(d);
}

static bl_status op_dense_forward(bl_backend *be, float *out, const float *in, const float *w,
                                  const float *b, int B, int in_dim, int out_dim, int relu) {
    RUN(be,
        (relu ? K()->dense_relu_forward : K()->dense_forward)(be->pool, out, in, w, b, B, in_dim,
                                                              out_dim),
        out, in, w, b);
}
static bl_status op_dense_backward(bl_backend *be, float *din, float *dw, float *db, float *dout,
                                   const float *out, const float *in, const float *w, int B,
                                   int in_dim, int out_dim, int relu) {
    if (relu)
        RUN(be,
            K()->dense_relu_backward(be->pool, din, dw, db, dout, out, in, w, B, in_dim, out_dim),
            din, dw, db, dout, out, in, w);
    RUN(be, K()->dense_backward(be->pool, din, dw, db, dout, in, w, B, in_dim, out_dim), din, dw,
        db, dout, in, w);
}
static bl_status op_conv2d_forward(bl_backend *be, float *out, const float *in, const float *w,
                                   const float *b, float *ws, const bl_conv_dims *d, int relu) {
    RUN(be, (relu ? K()->conv2d_relu_forward : K()->conv2d_forward)(be->pool, out, in, w, b, ws, d),
        out, in, w, b, ws);
}
static bl_status op_conv2d_backward(bl_backend *be, float *din, float *dw, float *db, float *dout,
                                    const float *out, const float *in, const float *w, float *ws,
                                    const bl_conv_dims *d, int relu) {
    if (relu)
        RUN(be, K()->conv2d_relu_backward(be->pool, din, dw, db, dout, out, in, w, ws, d), din, dw,
            db, dout, out, in, w, ws);
    RUN(be, K()->conv2d_backward(be->pool, din, dw, db, dout, in, w, ws, d), din, dw, db, dout, in,
        w, ws);
}
static bl_status op_maxpool_forward(bl_backend *be, float *out, int32_t *argmax, const float *in,
                                    const bl_pool_dims *d) {
    RUN(be, K()->maxpool_forward(be->pool, out, argmax, in, d), out, argmax, in);
}
static bl_status op_maxpool_backward(bl_backend *be, float *din, const float *dout,
                                     const int32_t *argmax, const bl_pool_dims *d) {
    RUN(be, K()->maxpool_backward(be->pool, din, dout, argmax, d), din, dout, argmax);
}
static bl_status op_avgpool_forward(bl_backend *be, float *out, const float *in,
                                    const bl_pool_dims *d) {
    RUN(be, K()->avgpool_forward(be->pool, out, in, d), out, in);
}
static bl_status op_avgpool_backward(bl_backend *be, float *din, const float *dout,
                                     const bl_pool_dims *d) {
    RUN(be, K()->avgpool_backward(be->pool, din, dout, d), din, dout);
}
static bl_status op_act_forward(bl_backend *be, float *out, const float *in, size_t n, bl_act act,
                                float alpha) {
    RUN(be, K()->act_forward(be->pool, out, in, n, act, alpha), out, in);
}
static bl_status op_act_backward(bl_backend *be, float *din, const float *dout, const float *in,
                                 const float *out, size_t n, bl_act act, float alpha) {
    RUN(be, K()->act_backward(be->pool, din, dout, in, out, n, act, alpha), din, dout, in, out);
}
static bl_status op_dropout_forward(bl_backend *be, float *out, uint8_t *mask, const float *in,
                                    size_t n, float p, const bl_dropout_key *key) {
    RUN(be, K()->dropout_forward(be->pool, out, mask, in, n, p, key), out, mask, in);
}
static bl_status op_dropout_backward(bl_backend *be, float *din, const float *dout,
                                     const uint8_t *mask, size_t n, float p) {
    RUN(be, K()->dropout_backward(be->pool, din, dout, mask, n, p), din, dout, mask);
}
static bl_status op_batchnorm_forward_train(bl_backend *be, float *out, float *mean, float *rstd,
                                            float *run_mean, float *run_var, const float *in,
                                            const float *gamma, const float *beta, int B, int C,
                                            int HW, float momentum, float eps) {
    RUN(be,
        K()->batchnorm_forward_train(be->pool, out, mean, rstd, run_mean, run_var, in, gamma, beta,
                                     B, C, HW, momentum, eps),
        out, mean, rstd, run_mean, run_var, in, gamma, beta);
}
static bl_status op_batchnorm_forward_eval(bl_backend *be, float *out, const float *in,
                                           const float *gamma, const float *beta,
                                           const float *run_mean, const float *run_var, int B,
                                           int C, int HW, float eps) {
    RUN(be,
        K()->batchnorm_forward_eval(be->pool, out, in, gamma, beta, run_mean, run_var, B, C, HW,
                                    eps),
        out, in, gamma, beta, run_mean, run_var);
}
static bl_status op_batchnorm_backward(bl_backend *be, float *din, float *dgamma, float *dbeta,
                                       const float *dout, const float *in, const float *mean,
                                       const float *rstd, const float *gamma, int B, int C,
                                       int HW) {
    RUN(be,
        K()->batchnorm_backward(be->pool, din, dgamma, dbeta, dout, in, mean, rstd, gamma, B, C,
                                HW),
        din, dgamma, dbeta, dout, in, mean, rstd, gamma);
}
static bl_status op_softmax_xent_forward(bl_backend *be, double *loss_sum, int *correct,
                                         float *probs, const float *logits, const int32_t *labels,
                                         int B, int K_) {
    RUN(be, *loss_sum = K()->softmax_xent_forward(be->pool, probs, correct, logits, labels, B, K_),
        probs, logits, labels);
}
static bl_status op_softmax_xent_backward(bl_backend *be, float *dlogits, const float *probs,
                                          const int32_t *labels, int B, int K_, float scale) {
    RUN(be, K()->softmax_xent_backward(be->pool, dlogits, probs, labels, B, K_, scale), dlogits,
        probs, labels);
}

/* Hits of the row-wise argmax (first maximum) against the labels. */
static int argmax_hits(const float *x, const int32_t *labels, int B, int K_) {
    int hits = 0;
    for (int b = 0; b < B; b++) {
        const float *row = x + (size_t)b * K_;
        int best = 0;
        for (int k = 1; k < K_; k++)
            if (row[k] > row[best]) best = k;
        hits += best == labels[b];
    }
    return hits;
}

static void one_hot(float *t, const int32_t *labels, int B, int K_) {
    memset(t, 0, (size_t)B * K_ * sizeof(float));
    for (int b = 0; b < B; b++)
        if (labels[b] >= 0 && labels[b] < K_) t[(size_t)b * K_ + labels[b]] = 1.0f;
}

/* MSE against one-hot labels (written to target), hits added to *correct. */
static double mse_one_hot(bl_cpu_pool *pool, int *correct, float *target, const float *pred,
                          const int32_t *labels, int B, int K_) {
    one_hot(target, labels, B, K_);
    if (correct) *correct += argmax_hits(pred, labels, B, K_);
    return K()->mse_forward(pool, pred, target, B, K_);
}

static bl_status op_mse_forward(bl_backend *be, double *loss_sum, int *correct, float *target,
                                const float *pred, const int32_t *labels, int B, int K_) {
    RUN(be, *loss_sum = mse_one_hot(be->pool, correct, target, pred, labels, B, K_), target, pred,
        labels);
}
static bl_status op_mse_backward(bl_backend *be, float *dpred, const float *pred,
                                 const float *target, int B, int K_, float scale) {
    RUN(be, K()->mse_backward(be->pool, dpred, pred, target, B, K_, scale), dpred, pred, target);
}
/* *sum += |dz_r|^2 (|x_r|^2 + bias), row by row */
static void example_sumsq(bl_cpu_pool *pool, double *sum, const float *dz, const float *x, int B,
                          int in_dim, int out_dim, int bias) {
    for (int r = 0; r < B; r++) {
        double g = K()->sumsq(pool, dz + (size_t)r * out_dim, (size_t)out_dim);
        if (g > 0) *sum += g * (K()->sumsq(pool, x + (size_t)r * in_dim, (size_t)in_dim) + bias);
    }
}

static bl_status op_per_example_sumsq(bl_backend *be, double *sum, const float *dz, const float *x,
                                      int B, int in_dim, int out_dim, int bias) {
    RUN(be, example_sumsq(be->pool, sum, dz, x, B, in_dim, out_dim, bias), dz, x);
}
static bl_status op_sumsq(bl_backend *be, double *out, const float *x, size_t n) {
    RUN(be, *out = K()->sumsq(be->pool, x, n), x);
}
static bl_status op_all_finite(bl_backend *be, int *out, const float *x, size_t n) {
    RUN(be, *out = K()->all_finite(be->pool, x, n), x);
}
static bl_status op_scale(bl_backend *be, float *x, size_t n, float a) {
    RUN(be, K()->scale(be->pool, x, n, a), x);
}
static bl_status op_axpy(bl_backend *be, float *y, const float *x, size_t n, float a) {
    RUN(be, K()->axpy(be->pool, y, x, n, a), y, x);
}
static bl_status op_fill(bl_backend *be, float *x, size_t n, float v) {
    RUN(be, K()->fill(be->pool, x, n, v), x);
}
static bl_status op_sgd_step(bl_backend *be, float *p, float *buf, const float *g, size_t n,
                             float lr, float momentum, int nesterov, float weight_decay,
                             int first_step) {
    RUN(be, K()->sgd_step(be->pool, p, buf, g, n, lr, momentum, nesterov, weight_decay, first_step),
        p, buf, g);
}
static bl_status op_adam_step(bl_backend *be, float *p, float *m, float *v, const float *g,
                              size_t n, float lr, float beta1, float beta2, float eps,
                              float weight_decay, int decoupled, long t) {
    RUN(be,
        K()->adam_step(be->pool, p, m, v, g, n, lr, beta1, beta2, eps, weight_decay, decoupled, t),
        p, m, v, g);
}

const bl_backend_ops host_backend_ops = {
    .alloc = op_alloc,
    .release = op_release,
    .upload = op_upload,
    .download = op_download,
    .copy = op_copy,
    .synchronize = op_synchronize,
    .set_threads = op_set_threads,
    .conv2d_workspace_floats = op_conv2d_workspace_floats,
    .dense_blas_bytes = op_dense_blas_bytes,
    .conv2d_blas_bytes = op_conv2d_blas_bytes,
    .dense_forward = op_dense_forward,
    .dense_backward = op_dense_backward,
    .conv2d_forward = op_conv2d_forward,
    .conv2d_backward = op_conv2d_backward,
    .maxpool_forward = op_maxpool_forward,
    .maxpool_backward = op_maxpool_backward,
    .avgpool_forward = op_avgpool_forward,
    .avgpool_backward = op_avgpool_backward,
    .act_forward = op_act_forward,
    .act_backward = op_act_backward,
    .dropout_forward = op_dropout_forward,
    .dropout_backward = op_dropout_backward,
    .batchnorm_forward_train = op_batchnorm_forward_train,
    .batchnorm_forward_eval = op_batchnorm_forward_eval,
    .batchnorm_backward = op_batchnorm_backward,
    .softmax_xent_forward = op_softmax_xent_forward,
    .softmax_xent_backward = op_softmax_xent_backward,
    .mse_forward = op_mse_forward,
    .mse_backward = op_mse_backward,
    .per_example_sumsq = op_per_example_sumsq,
    .sumsq = op_sumsq,
    .all_finite = op_all_finite,
    .scale = op_scale,
    .axpy = op_axpy,
    .fill = op_fill,
    .sgd_step = op_sgd_step,
    .adam_step = op_adam_step,
};
