/* The model: a list of layers over three flat arenas (parameters, gradients,
 * buffers). Shapes are inferred once at creation; activations are sized for
 * the largest batch at allocation and reused for any smaller B, so forward and
 * backward never allocate. Backward walks the layers in reverse with two
 * ping-pong buffers for the gradient with respect to activations; flatten
 * (and dropout in eval) alias their input instead of copying, and so does a
 * ReLU fused into the dense/conv layer before it.
 *
 * The memory model (bl_model_memory_bytes) is the allocator's own size
 * function plus the BLAS library's packing buffers, which are not ours to
 * allocate but are resident while the model trains: bl_model_alloc charges
 * them to ctx->mem like any buffer, so a budget sees them too. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "nn/layer.h"
#include "core/alloc.h"

/* Values per sample of the input and of any layer's output, and rows of a conv's
 * im2col (C*R*S): 4 GiB of float32 per sample, beyond any model trained here. The
 * kernels index with int, and the cap leaves room for their arithmetic (p * stride
 * - pad + r, (P + 1) / 2) on top of a size; without it a checkpoint's input_shape
 * (text) could make c*h*w wrap size_t or those sums overflow int. */
#define MODEL_MAX_VALUES (1 << 30)




static void add_info(bl_model *m, int layer, const char *suffix, size_t off, size_t count,
                     int ndim, const int64_t *shape, int is_buffer) {
    bl_param_info *p = &m->info[m->n_info];
    snprintf(m->info_names[m->n_info], sizeof m->info_names[0], "%d.%s", layer, suffix);
    p->name = m->info_names[m->n_info];
    p->offset = off;
    p->count = count;
    p->ndim = ndim;
    for (int i = 0; i < 4; i++) p->shape[i] = i < ndim ? shape[i] : 0;
    p->is_buffer = is_buffer;
    m->n_info++;
}

void bl_layer_conv_dims(const bl_layer *l, int B, bl_conv_dims *d) {
    d->B = B, d->C = l->in.c, d->H = l->in.h, d->W = l->in.w;
    d->K = l->K, d->R = l->R, d->S = l->S, d->stride = l->stride, d->pad = l->pad;
    d->P = l->out.h, d->Q = l->out.w;
}

void bl_layer_pool_dims(const bl_layer *l, int B, bl_pool_dims *d) {
    d->B = B, d->C = l->in.c, d->H = l->in.h, d->W = l->in.w;
    d->k = l->pool, d->stride = l->stride, d->P = l->out.h, d->Q = l->out.w;
}


static int layer_owns_output(const bl_layer *l) {
    return l->kind != BL_LAYER_FLATTEN && !l->fused_into_prev;
}

/* Dense or conv followed directly by ReLU: one fused kernel, one buffer. */
static void mark_fusions(bl_model *m) {
    for (int i = 0; i + 1 < m->n_layers; i++) {
        bl_layer *l = &m->layers[i], *next = &m->layers[i + 1];
        if ((l->kind == BL_LAYER_DENSE || l->kind == BL_LAYER_CONV) &&
            next->kind == BL_LAYER_ACT && next->act == BL_ACT_RELU) {
            l->fused_relu = 1;
            next->fused_into_prev = 1;
        }
    }
}

static bl_status infer_shapes(bl_model *m, bl_error *err) {
    bl_shape s = m->input;
    size_t np = 0, nb = 0;
    for (int i = 0; i < m->n_layers; i++) {
        bl_layer *l = &m->layers[i];
        l->in = s;
        size_t in_n = bl_shape_size(s);
        switch (l->kind) {
        case BL_LAYER_DENSE: {
            l->out = (bl_shape){l->units, 1, 1};
            l->w_off = np, l->w_n = (size_t)l->units * in_n, np += l->w_n;
            l->b_off = np, l->b_n = (size_t)l->units, np += l->b_n;
            int64_t ws[2] = {l->units, (int64_t)in_n}, bs[1] = {l->units};
            add_info(m, i, "weight", l->w_off, l->w_n, 2, ws, 0);
            add_info(m, i, "bias", l->b_off, l->b_n, 1, bs, 0);
            break;
        }
        case BL_LAYER_CONV: {
            int P = bl_conv_out_size(s.h, l->R, l->stride, l->pad);
            int Q = bl_conv_out_size(s.w, l->S, l->stride, l->pad);
            if (P <= 0 || Q <= 0 || l->pad >= l->R || l->pad >= l->S)
                return bl_fail(err, BL_ERR_SHAPE,
                               "model spec: token %d '%s': a %dx%d kernel (stride %d, pad %d) "
                               "does not fit its %dx%dx%d input",
                               i, l->token, l->R, l->S, l->stride, l->pad, s.c, s.h, s.w);
            l->out = (bl_shape){l->K, P, Q};
            l->w_off = np, l->w_n = (size_t)l->K * s.c * l->R * l->S, np += l->w_n;
            l->b_off = np, l->b_n = (size_t)l->K, np += l->b_n;
            int64_t ws[4] = {l->K, s.c, l->R, l->S}, bs[1] = {l->K};
            add_info(m, i, "weight", l->w_off, l->w_n, 4, ws, 0);
            add_info(m, i, "bias", l->b_off, l->b_n, 1, bs, 0);
            break;
        }
        case BL_LAYER_MAXPOOL:
        case BL_LAYER_AVGPOOL: {
            int P = s.h >= l->pool ? (s.h - l->pool) / l->stride + 1 : 0;
            int Q = s.w >= l->pool ? (s.w - l->pool) / l->stride + 1 : 0;
            if (P <= 0 || Q <= 0)
                return bl_fail(err, BL_ERR_SHAPE,
                               "model spec: token %d '%s': a %dx%d window does not fit its "
                               "%dx%dx%d input",
                               i, l->token, l->pool, l->pool, s.c, s.h, s.w);
            l->out = (bl_shape){s.c, P, Q};
            break;
        }
        case BL_LAYER_FLATTEN: l->out = (bl_shape){(int)in_n, 1, 1}; break;
        case BL_LAYER_ACT:
        case BL_LAYER_DROPOUT: l->out = s; break;
        case BL_LAYER_BN: {
            int C = s.c; /* channels of an image, or features of a vector */
            l->out = s;
            l->w_off = np, l->w_n = (size_t)C, np += l->w_n;
            l->b_off = np, l->b_n = (size_t)C, np += l->b_n;
            l->buf_off = nb, nb += 2 * (size_t)C;
            int64_t cs[1] = {C};
            add_info(m, i, "weight", l->w_off, l->w_n, 1, cs, 0);
            add_info(m, i, "bias", l->b_off, l->b_n, 1, cs, 0);
            add_info(m, i, "running_mean", l->buf_off, (size_t)C, 1, cs, 1);
            add_info(m, i, "running_var", l->buf_off + C, (size_t)C, 1, cs, 1);
            break;
        }
        }
        if ((double)l->out.c * l->out.h * l->out.w > MODEL_MAX_VALUES ||
            (l->kind == BL_LAYER_CONV && (double)s.c * l->R * l->S > MODEL_MAX_VALUES))
            return bl_fail(err, BL_ERR_SHAPE,
                           "model spec: token %d '%s' on a %dx%dx%d input is too large (a size "
                           "over %d)",
                           i, l->token, s.c, s.h, s.w, MODEL_MAX_VALUES);
        s = l->out;
    }
    m->n_params = np;
    m->n_buffers = nb;
    int out_dim = (int)bl_shape_size(s);
    if (m->n_classes > 0 && out_dim != m->n_classes)
        return bl_fail(err, BL_ERR_SHAPE,
                       "model spec: the last layer '%s' gives %d outputs but the data has %d "
                       "classes (end the spec with dense:%d)",
                       m->layers[m->n_layers - 1].token, out_dim, m->n_classes, m->n_classes);
    return BL_OK;
}

bl_status bl_loss_parse(bl_loss_kind *out, const char *s, bl_error *err) {
    if (!strcmp(s, "xent"))
        *out = BL_LOSS_XENT;
    else if (!strcmp(s, "mse"))
        *out = BL_LOSS_MSE;
    else
        return bl_fail(err, BL_ERR_ARG, "must be xent or mse, got '%s'", s);
    return BL_OK;
}

const char *bl_loss_name(bl_loss_kind k) {
    return k == BL_LOSS_MSE ? "mse" : "xent";
}

bl_status bl_model_create(bl_model **out, const char *spec, bl_shape input, int n_classes,
                          bl_error *err) {
    *out = NULL;
    if (input.c <= 0 || input.h <= 0 || input.w <= 0)
        return bl_fail(err, BL_ERR_SHAPE, "model input shape %dx%dx%d is invalid", input.c,
                       input.h, input.w);
    if ((double)input.c * input.h * input.w > MODEL_MAX_VALUES) /* double: cannot wrap */
        return bl_fail(err, BL_ERR_SHAPE,
                       "model input shape %dx%dx%d is too large (over %d values)", input.c, input.h,
                       input.w, MODEL_MAX_VALUES);
    bl_model *m = bl_calloc(1, sizeof *m);
    if (!m) return bl_fail(err, BL_ERR_NOMEM, "out of memory creating the model");
    m->input = input;
    m->n_classes = n_classes;
    bl_status st = bl_spec_parse(m->layers, &m->n_layers, spec, n_classes, err);
    if (!st) st = infer_shapes(m, err);
    if (st) {
        bl_free(m);
        return st;
    }
    mark_fusions(m);
    size_t len = 0;
    for (int i = 0; i < m->n_layers; i++)
        len += (size_t)snprintf(m->spec + len, sizeof m->spec - len, "%s%s", i ? "," : "",
                                m->layers[i].token);
    *out = m;
    return BL_OK;
}

/* Byte counts of everything bl_model_alloc allocates at batch B; one function so
 * the memory model and the allocator cannot disagree. */
typedef struct {
    size_t arenas, acts, aux, gbuf, loss, ws, blas;
} model_sizes;

/* The backend sizes are computed for: be, else the model's, else the CPU backend. */
static const bl_backend *sizing_backend(const bl_model *m, const bl_backend *be) {
    bl_backend *cpu = NULL;
    if (be) return be;
    if (m->be) return m->be;
    bl_backend_get(&cpu, "cpu", NULL);
    return cpu;
}

static model_sizes compute_sizes(const bl_model *m, const bl_backend *be, int B,
                                 size_t *ws_floats_out) {
    model_sizes z = {0};
    size_t widest = bl_shape_size(m->input), ws = 0;
    z.arenas = (2 * (m->n_params + 1) + m->n_buffers + 1) * sizeof(float); /* as allocated */
    for (int i = 0; i < m->n_layers; i++) {
        const bl_layer *l = &m->layers[i];
        size_t on = bl_shape_size(l->out);
        if (on > widest) widest = on;
        if (layer_owns_output(l)) z.acts += (size_t)B * on * sizeof(float);
        if (l->kind == BL_LAYER_MAXPOOL) z.aux += (size_t)B * on * sizeof(int32_t);
        if (l->kind == BL_LAYER_DROPOUT) z.aux += (size_t)B * on;
        if (l->kind == BL_LAYER_BN) z.aux += 2 * (size_t)l->in.c * sizeof(float);
        size_t blas = 0;
        if (l->kind == BL_LAYER_CONV) {
            bl_conv_dims d;
            bl_layer_conv_dims(l, B, &d);
            size_t w = be->ops->conv2d_workspace_floats(be, &d);
            if (w > ws) ws = w;
            blas = be->ops->conv2d_blas_bytes(be, &d);
        } else if (l->kind == BL_LAYER_DENSE) {
            blas = be->ops->dense_blas_bytes(be, B, (int)bl_shape_size(l->in), l->units);
        }
        if (blas > z.blas) z.blas = blas; /* the buffers are reused: the largest counts */
    }
    z.gbuf = 2 * (size_t)B * widest * sizeof(float);
    z.loss = 2 * (size_t)B * (size_t)bl_model_output_dim(m) * sizeof(float);
    if (!be->host_visible) /* the staged input and labels */
        z.loss += (size_t)B * (bl_shape_size(m->input) * sizeof(float) + sizeof(int32_t));
    z.ws = ws * sizeof(float);
    if (ws_floats_out) *ws_floats_out = ws;
    return z;
}

size_t bl_model_memory_bytes(const bl_model *m, int B) {
    return bl_model_memory_bytes_on(m, NULL, B);
}

size_t bl_model_memory_bytes_on(const bl_model *m, const bl_backend *be, int B) {
    model_sizes z = compute_sizes(m, sizing_backend(m, be), B, NULL);
    return z.arenas + z.acts + z.aux + z.gbuf + z.loss + z.ws + z.blas;
}

/* Charge (or, with release != 0, give back) bytes that live outside bl_mem. */
static bl_status mem_charge(bl_mem *mem, size_t bytes, int release, bl_error *err) {
    if (release) {
        mem->cur_bytes = mem->cur_bytes >= bytes ? mem->cur_bytes - bytes : 0;
        return BL_OK;
    }
    if (mem->limit_bytes && mem->cur_bytes + bytes > mem->limit_bytes)
        return bl_fail(err, BL_ERR_NOMEM,
                       "the BLAS library's packing buffers (%zu bytes) would exceed the memory "
                       "budget of %zu bytes (%zu in use)",
                       bytes, mem->limit_bytes, mem->cur_bytes);
    mem->cur_bytes += bytes;
    if (mem->cur_bytes > mem->peak_bytes) mem->peak_bytes = mem->cur_bytes;
    return BL_OK;
}

#define ALLOC(ptr, bytes, what)                                                                \
    do {                                                                                       \
        void *p_;                                                                              \
        bl_status st_ = be->ops->alloc(be, &ctx->mem, (bytes), BL_BUFFER_DEVICE, (what), &p_, err); \
        if (st_) return st_;                                                                   \
        (ptr) = p_;                                                                            \
    } while (0)

bl_status bl_model_alloc(bl_model *m, bl_ctx *ctx, int max_batch, bl_error *err) {
    if (max_batch <= 0)
        return bl_fail(err, BL_ERR_ARG, "batch size %d is invalid: it must be at least 1",
                       max_batch);
    if (m->ctx) return bl_fail(err, BL_ERR_ARG, "model is already allocated");
    bl_backend *be = ctx->be;
    m->ctx = ctx;
    m->be = be;
    m->max_batch = max_batch;
    model_sizes z = compute_sizes(m, be, max_batch, &m->ws_floats);
    int B = max_batch;
    ALLOC(m->params, (m->n_params + 1) * sizeof(float), "parameters");
    ALLOC(m->grads, (m->n_params + 1) * sizeof(float), "gradients");
    ALLOC(m->buffers, (m->n_buffers + 1) * sizeof(float), "buffers");
    size_t widest = bl_shape_size(m->input);
    for (int i = 0; i < m->n_layers; i++) {
        bl_layer *l = &m->layers[i];
        size_t on = bl_shape_size(l->out);
        if (on > widest) widest = on;
        if (layer_owns_output(l)) ALLOC(l->out_buf, (size_t)B * on * sizeof(float), "activations");
        if (l->kind == BL_LAYER_MAXPOOL)
            ALLOC(l->argmax, (size_t)B * on * sizeof(int32_t), "maxpool indices");
        if (l->kind == BL_LAYER_DROPOUT) ALLOC(l->mask, (size_t)B * on, "dropout mask");
        if (l->kind == BL_LAYER_BN) {
            ALLOC(l->mean, (size_t)l->in.c * sizeof(float), "batch-norm statistics");
            ALLOC(l->rstd, (size_t)l->in.c * sizeof(float), "batch-norm statistics");
        }
    }
    ALLOC(m->gbuf[0], (size_t)B * widest * sizeof(float), "activation gradients");
    ALLOC(m->gbuf[1], (size_t)B * widest * sizeof(float), "activation gradients");
    int od = bl_model_output_dim(m);
    ALLOC(m->probs, (size_t)B * od * sizeof(float), "loss buffers");
    ALLOC(m->target, (size_t)B * od * sizeof(float), "loss buffers");
    if (m->ws_floats) ALLOC(m->ws, m->ws_floats * sizeof(float), "convolution workspace");
    if (!be->host_visible) {
        ALLOC(m->x_dev, (size_t)B * bl_shape_size(m->input) * sizeof(float), "input batch");
        ALLOC(m->y_dev, (size_t)B * sizeof(int32_t), "label batch");
    }
    bl_status st = mem_charge(&ctx->mem, z.blas, 0, err);
    if (!st) m->blas_bytes = z.blas;
    return st;
}

void bl_model_free(bl_model *m) {
    if (!m) return;
    if (m->ctx) {
        bl_mem *mem = &m->ctx->mem;
        bl_backend *be = m->be;
#define RELEASE(p) be->ops->release(be, mem, (p))
        RELEASE(m->params);
        RELEASE(m->grads);
        RELEASE(m->buffers);
        for (int i = 0; i < m->n_layers; i++) {
            bl_layer *l = &m->layers[i];
            RELEASE(l->out_buf);
            RELEASE(l->argmax);
            RELEASE(l->mask);
            RELEASE(l->mean);
            RELEASE(l->rstd);
        }
        RELEASE(m->gbuf[0]);
        RELEASE(m->gbuf[1]);
        RELEASE(m->probs);
        RELEASE(m->target);
        RELEASE(m->ws);
        RELEASE(m->x_dev);
        RELEASE(m->y_dev);
#undef RELEASE
        mem_charge(mem, m->blas_bytes, 1, NULL);
    }
    bl_free(m);
}

/* Transfer point: the initial weights are drawn on the host, in the order of the
 * seeded stream, and written in order from an offset of an arena through a small
 * host buffer: a few KiB at a time, never a second copy of the weights (which
 * the memory model does not count). */
typedef struct arena_writer {
    bl_model *m;
    bl_arena arena;
    size_t off, n; /* the buffer's first offset; floats in it */
    bl_status st;
    bl_error *err;
    float buf[2048];
} arena_writer;

static void writer_flush(arena_writer *w) {
    if (w->n && !w->st) w->st = bl_model_write(w->m, w->arena, w->off, w->n, w->buf, w->err);
    w->off += w->n;
    w->n = 0;
}
static void writer_seek(arena_writer *w, bl_arena arena, size_t off) {
    writer_flush(w);
    w->arena = arena, w->off = off;
}
static void writer_put(arena_writer *w, float v) {
    w->buf[w->n++] = v;
    if (w->n == sizeof w->buf / sizeof w->buf[0]) writer_flush(w);
}

bl_status bl_model_init(bl_model *m, uint64_t seed, bl_error *err) {
    arena_writer w = {.m = m, .err = err};
    bl_rng r;
    bl_rng_derive(&r, seed, 1);
    m->dropout_seed = seed;
    m->dropout_step = m->dropout_first = 0;
    for (int i = 0; i < m->n_layers; i++) {
        bl_layer *l = &m->layers[i];
        if (l->kind == BL_LAYER_DENSE || l->kind == BL_LAYER_CONV) {
            /* torch: kaiming_uniform(a=sqrt(5)) => U(-1/sqrt(fan_in), 1/sqrt(fan_in)) */
            size_t fan_in = l->w_n / l->b_n;
            float bound = 1.0f / sqrtf((float)fan_in);
            writer_seek(&w, BL_ARENA_PARAMS, l->w_off);
            for (size_t j = 0; j < l->w_n; j++)
                writer_put(&w, bound * (2.0f * bl_rng_uniform(&r) - 1.0f));
            writer_seek(&w, BL_ARENA_PARAMS, l->b_off);
            for (size_t j = 0; j < l->b_n; j++)
                writer_put(&w, bound * (2.0f * bl_rng_uniform(&r) - 1.0f));
        } else if (l->kind == BL_LAYER_BN) {
            writer_seek(&w, BL_ARENA_PARAMS, l->w_off);
            for (size_t j = 0; j < l->w_n; j++) writer_put(&w, 1.0f);
            writer_seek(&w, BL_ARENA_PARAMS, l->b_off);
            for (size_t j = 0; j < l->b_n; j++) writer_put(&w, 0.0f);
            writer_seek(&w, BL_ARENA_BUFFERS, l->buf_off); /* running mean 0, var 1 */
            for (size_t j = 0; j < 2 * l->w_n; j++) writer_put(&w, j < l->w_n ? 0.0f : 1.0f);
        }
    }
    writer_flush(&w);
    return w.st ? w.st : bl_model_zero_grad(m, err);
}

const char *bl_model_spec(const bl_model *m) { return m->spec; }
bl_backend *bl_model_backend(const bl_model *m) { return m->be; }
bl_shape bl_model_input_shape(const bl_model *m) { return m->input; }
int bl_model_output_dim(const bl_model *m) {
    return (int)bl_shape_size(m->layers[m->n_layers - 1].out);
}
int bl_model_max_batch(const bl_model *m) { return m->max_batch; }
size_t bl_model_num_params(const bl_model *m) { return m->n_params; }
size_t bl_model_num_buffers(const bl_model *m) { return m->n_buffers; }
int bl_model_num_tensors(const bl_model *m) { return m->n_info; }
const bl_param_info *bl_model_tensor(const bl_model *m, int i) {
    return i >= 0 && i < m->n_info ? &m->info[i] : NULL;
}
float *bl_model_params(bl_model *m) { return m->params; }
float *bl_model_grads(bl_model *m) { return m->grads; }
float *bl_model_buffers(bl_model *m) { return m->buffers; }
void bl_model_set_dropout_position(bl_model *m, long step, size_t first_sample) {
    m->dropout_step = (uint64_t)step;
    m->dropout_first = first_sample;
}

bl_status bl_model_zero_grad(bl_model *m, bl_error *err) {
    bl_status st = m->be->ops->fill(m->be, m->grads, m->n_params, 0.0f);
    return st ? bl_backend_fail(err, st, m->be, "zeroing the gradients") : BL_OK;
}

bl_status bl_model_grad_sumsq(bl_model *m, double *out, bl_error *err) {
    bl_status st = m->be->ops->sumsq(m->be, out, m->grads, m->n_params);
    return st ? bl_backend_fail(err, st, m->be, "the gradient norm") : BL_OK;
}

static float *arena(bl_model *m, bl_arena a, size_t *n) {
    *n = a == BL_ARENA_PARAMS || a == BL_ARENA_GRADS ? m->n_params : m->n_buffers;
    return a == BL_ARENA_PARAMS ? m->params : a == BL_ARENA_GRADS ? m->grads : m->buffers;
}

bl_status bl_model_read(bl_model *m, bl_arena a, size_t off, size_t n, float *host, bl_error *err) {
    size_t len;
    float *base = arena(m, a, &len);
    if (off > len || n > len - off)
        return bl_fail(err, BL_ERR_ARG, "model arena read [%zu, %zu) is outside its %zu floats",
                       off, off + n, len);
    bl_status st = n ? m->be->ops->download(m->be, host, base + off, n * sizeof(float)) : BL_OK;
    return st ? bl_backend_fail(err, st, m->be, "reading the model") : BL_OK;
}

bl_status bl_model_write(bl_model *m, bl_arena a, size_t off, size_t n, const float *host,
                         bl_error *err) {
    size_t len;
    float *base = arena(m, a, &len);
    if (off > len || n > len - off)
        return bl_fail(err, BL_ERR_ARG, "model arena write [%zu, %zu) is outside its %zu floats",
                       off, off + n, len);
    bl_status st = n ? m->be->ops->upload(m->be, base + off, host, n * sizeof(float)) : BL_OK;
    return st ? bl_backend_fail(err, st, m->be, "writing the model") : BL_OK;
}

bl_status bl_model_copy_state(bl_model *dst, const bl_model *src, bl_error *err) {
    if (dst->be != src->be || dst->n_params != src->n_params || dst->n_buffers != src->n_buffers)
        return bl_fail(err, BL_ERR_ARG, "model copy: the models differ (%zu and %zu parameters)",
                       src->n_params, dst->n_params);
    bl_backend *be = dst->be;
    bl_status st = be->ops->copy(be, dst->params, src->params, dst->n_params * sizeof(float));
    if (!st && dst->n_buffers)
        st = be->ops->copy(be, dst->buffers, src->buffers, dst->n_buffers * sizeof(float));
    return st ? bl_backend_fail(err, st, be, "copying the model") : BL_OK;
}
