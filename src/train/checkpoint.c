/* Checkpoints as safetensors. Tensors: every model parameter and buffer under
 * its torch-style name, "optim.state" (momentum or Adam moments as one flat
 * arena), "rng.noise" (the noise-measurement RNG state), and the input
 * normalisation ("norm.scale", optional "norm.mean"). Metadata strings hold the
 * spec, input shape, counters and data position, so a resumed run continues
 * bit-identically: the data order is a function of (seed, epoch) alone, and the
 * dropout masks of (seed, step). Checkpoints from before counter-based dropout
 * also hold "rng.dropout"; it is ignored, so they load and resume, with the masks
 * of the new scheme from the resumed step on. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "batchlab/dist.h"
#include "batchlab/io.h"
#include "core/alloc.h"
#include "train/checkpoint_state.h"

#define MAX_CKPT_TENSORS (3 * 64 + 8)
#define CKPT_FORMAT "batchlab-checkpoint-1"

static const char *norm_name(bl_norm_kind k) {
    return k == BL_NORM_UNIT ? "unit" : k == BL_NORM_STANDARD ? "standard" : "none";
}

static void add_tensor(bl_tensor *ts, int *n, const char *name, bl_dtype dt, const void *data,
                       int64_t count) {
    bl_tensor *t = &ts[(*n)++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->dtype = dt;
    t->ndim = 1;
    t->shape[0] = count;
    t->data = data;
    t->nbytes = (size_t)count * bl_dtype_size(dt);
}

/* Transfer point: what a checkpoint holds, as host pointers, after the NaN check on
 * the backend. Where the backend's memory is host memory the arenas are used in
 * place; otherwise params, buffers and optimizer state are downloaded into one
 * host copy (owned, freed by the caller). */
typedef struct snapshot {
    const float *params, *buffers, *state;
    float *owned;
} snapshot;

static bl_status take_snapshot(bl_trainer *t, const char *path, snapshot *s, bl_error *err) {
    bl_model *m = t->model;
    bl_backend *be = t->ctx->be;
    size_t np = bl_model_num_params(m), nb = bl_model_num_buffers(m), ns = t->opt.state_n;
    int finite = 1, state_finite = 1;
    memset(s, 0, sizeof *s);
    bl_status st = be->ops->all_finite(be, &finite, bl_model_params(m), np);
    if (!st && ns) st = be->ops->all_finite(be, &state_finite, t->opt.state, ns);
    if (st) return bl_backend_fail(err, st, be, "the NaN check");
    if (!finite || !state_finite)
        return bl_fail(err, BL_ERR_NUMERIC,
                       "%s: not written: the parameters hold NaN or Inf (the previous "
                       "checkpoint, if any, is kept)",
                       path);
    if (be->host_visible) {
        s->params = bl_model_params(m), s->buffers = bl_model_buffers(m), s->state = t->opt.state;
        return BL_OK;
    }
    float *h = bl_malloc((np + nb + ns + 1) * sizeof(float));
    if (!h) return bl_fail(err, BL_ERR_NOMEM, "%s: out of memory", path);
    st = bl_model_read(m, BL_ARENA_PARAMS, 0, np, h, err);
    if (!st) st = bl_model_read(m, BL_ARENA_BUFFERS, 0, nb, h + np, err);
    if (!st && ns && (st = be->ops->download(be, h + np + nb, t->opt.state, ns * sizeof(float))))
        bl_backend_fail(err, st, be, "reading the optimizer state");
    if (st) {
        bl_free(h);
        return st;
    }
    *s = (snapshot){.params = h, .buffers = h + np, .state = h + np + nb, .owned = h};
    return BL_OK;
}

bl_status bl_trainer_save(bl_trainer *t, const char *path, const bl_norm *norm, bl_error *err) {
    bl_model *m = t->model;
    snapshot snap;
    bl_status st = take_snapshot(t, path, &snap, err);
    if (st) return st;
    bl_tensor ts[MAX_CKPT_TENSORS];
    int n = 0;
    for (int i = 0; i < bl_model_num_tensors(m); i++) {
        const bl_param_info *p = bl_model_tensor(m, i);
        const float *base = p->is_buffer ? snap.buffers : snap.params;
        add_tensor(ts, &n, p->name, BL_DT_F32, base + p->offset, (int64_t)p->count);
        ts[n - 1].ndim = p->ndim;
        memcpy(ts[n - 1].shape, p->shape, sizeof p->shape);
    }
    if (t->opt.state_n)
        add_tensor(ts, &n, "optim.state", BL_DT_F32, snap.state, (int64_t)t->opt.state_n);
    add_tensor(ts, &n, "rng.noise", BL_DT_U8, t->noise_rng.s, 32);
    if (norm && norm->kind != BL_NORM_NONE) {
        add_tensor(ts, &n, "norm.scale", BL_DT_F32, norm->scale, (int64_t)norm->dim);
        if (norm->mean) add_tensor(ts, &n, "norm.mean", BL_DT_F32, norm->mean, (int64_t)norm->dim);
    }
    bl_shape in = bl_model_input_shape(m);
    char shape[64], ncls[16], step[32], epoch[32], pos[32], seen[32], seed[32], optt[32], batch[16],
        micro[16], lr[32], world[16];
    snprintf(shape, sizeof shape, "%d,%d,%d", in.c, in.h, in.w);
    snprintf(ncls, sizeof ncls, "%d", t->n_classes);
    snprintf(step, sizeof step, "%ld", t->step);
    snprintf(epoch, sizeof epoch, "%ld", t->loader.epoch);
    snprintf(pos, sizeof pos, "%zu", t->loader.pos);
    snprintf(seen, sizeof seen, "%ld", t->samples_seen);
    snprintf(seed, sizeof seed, "%" PRIu64, t->cfg.seed);
    snprintf(optt, sizeof optt, "%ld", t->opt.t);
    snprintf(batch, sizeof batch, "%d", t->cfg.batch);
    snprintf(micro, sizeof micro, "%d", t->cfg.micro_batch);
    snprintf(lr, sizeof lr, "%.9g", (double)t->cfg.lr);
    snprintf(world, sizeof world, "%d", bl_dist_size(t->ctx->dist));
    bl_meta_kv meta[17 + CKPT_STATE_N_META] = {
        {"format", CKPT_FORMAT},
        {"spec", bl_model_spec(m)},
        {"input_shape", shape},
        {"n_classes", ncls},
        {"loss", bl_loss_name(t->cfg.loss)},
        {"optimizer", bl_optim_name(&t->opt.cfg)},
        {"optim_t", optt},
        {"step", step},
        {"epoch", epoch},
        {"epoch_pos", pos},
        {"samples_seen", seen},
        {"seed", seed},
        {"batch", batch},
        {"micro_batch", micro},
        {"lr", lr},
        {"norm", norm ? norm_name(norm->kind) : "none"},
        {"world_size", world},
    };
    ckpt_state_text text;
    int n_meta = 17 + ckpt_state_meta(t, &text, meta + 17);
    st = text.history ? bl_safetensors_write(path, ts, n, meta, n_meta, err)
                      : bl_fail(err, BL_ERR_NOMEM, "%s: out of memory", path);
    ckpt_state_text_free(&text);
    bl_free(snap.owned);
    return st;
}

static bl_status meta_long(const bl_safetensors *st, const char *path, const char *key, long *out,
                           bl_error *err) {
    const char *v = bl_safetensors_meta(st, key);
    char *end;
    if (!v || !*v)
        return bl_fail(err, BL_ERR_FORMAT, "%s: checkpoint metadata has no '%s'", path, key);
    long x = strtol(v, &end, 10);
    if (*end || x < 0)
        return bl_fail(err, BL_ERR_FORMAT,
                       "%s: checkpoint metadata '%s' = '%s' is not a "
                       "non-negative integer",
                       path, key, v);
    *out = x;
    return BL_OK;
}

/* The named F32 tensor of exactly count floats. */
static bl_status find_f32(const bl_safetensors *st, const char *path, const char *name,
                          size_t count, const bl_tensor **out, bl_error *err) {
    const bl_tensor *t = bl_safetensors_find(st, name);
    if (!t) return bl_fail(err, BL_ERR_FORMAT, "%s: checkpoint has no tensor '%s'", path, name);
    if (t->dtype != BL_DT_F32 || t->nbytes != count * sizeof(float))
        return bl_fail(err, BL_ERR_SHAPE,
                       "%s: tensor '%s' has %zu bytes of %s but the model needs %zu floats", path,
                       name, t->nbytes, bl_dtype_name(t->dtype), count);
    *out = t;
    return BL_OK;
}

/* Copy a named F32 tensor of exactly count floats into host memory dst. */
static bl_status load_f32(const bl_safetensors *st, const char *path, const char *name, float *dst,
                          size_t count, bl_error *err) {
    const bl_tensor *t = NULL;
    bl_status s = find_f32(st, path, name, count, &t, err);
    if (!s) memcpy(dst, t->data, t->nbytes);
    return s;
}

/* Transfer point: the checkpoint's tensors uploaded into the model's arenas. */
static bl_status load_model_tensors(bl_model *m, const bl_safetensors *st, const char *path,
                                    bl_error *err) {
    for (int i = 0; i < bl_model_num_tensors(m); i++) {
        const bl_param_info *p = bl_model_tensor(m, i);
        const bl_tensor *t = NULL;
        bl_status s = find_f32(st, path, p->name, p->count, &t, err);
        if (!s)
            s = bl_model_write(m, p->is_buffer ? BL_ARENA_BUFFERS : BL_ARENA_PARAMS, p->offset,
                               p->count, t->data, err);
        if (s) return s;
    }
    return BL_OK;
}

static bl_status load_norm(bl_norm *norm, bl_ctx *ctx, const bl_safetensors *st, const char *path,
                           size_t dim, bl_error *err) {
    memset(norm, 0, sizeof *norm);
    const char *kind = bl_safetensors_meta(st, "norm");
    if (!kind || !strcmp(kind, "none")) return BL_OK;
    bl_status s = bl_norm_parse(&norm->kind, kind, err);
    if (s) return bl_error_prefix(err, "%s: metadata 'norm'", path);
    norm->dim = dim;
    norm->scale = bl_mem_alloc(&ctx->mem, dim * sizeof(float), "normalisation", err);
    if (!norm->scale) return err ? err->code : BL_ERR_NOMEM;
    s = load_f32(st, path, "norm.scale", norm->scale, dim, err);
    if (s) return s;
    if (bl_safetensors_find(st, "norm.mean")) {
        norm->mean = bl_mem_alloc(&ctx->mem, dim * sizeof(float), "normalisation", err);
        if (!norm->mean) return err ? err->code : BL_ERR_NOMEM;
        s = load_f32(st, path, "norm.mean", norm->mean, dim, err);
    }
    return s;
}

static bl_status check_format(const bl_safetensors *st, const char *path, bl_error *err) {
    const char *f = bl_safetensors_meta(st, "format");
    if (!f || strcmp(f, CKPT_FORMAT))
        return bl_fail(err, BL_ERR_FORMAT,
                       "%s: not a batchlab checkpoint (metadata 'format' is %s%s%s)", path,
                       f ? "'" : "", f ? f : "missing", f ? "'" : "");
    return BL_OK;
}

bl_status bl_checkpoint_load_model(bl_model **out, bl_norm *norm, bl_ctx *ctx, const char *path,
                                   int max_batch, bl_error *err) {
    *out = NULL;
    memset(norm, 0, sizeof *norm);
    bl_safetensors st;
    bl_status s = bl_safetensors_read(&st, path, err);
    if (s) return s;
    s = check_format(&st, path, err);
    const char *spec = bl_safetensors_meta(&st, "spec");
    const char *shape = bl_safetensors_meta(&st, "input_shape");
    long ncls = 0;
    bl_shape in = {0, 0, 0};
    if (!s && (!spec || !shape || sscanf(shape, "%d,%d,%d", &in.c, &in.h, &in.w) != 3))
        s = bl_fail(err, BL_ERR_FORMAT,
                    "%s: checkpoint metadata lacks a valid 'spec' or "
                    "'input_shape'",
                    path);
    if (!s) s = meta_long(&st, path, "n_classes", &ncls, err);
    bl_model *m = NULL;
    if (!s) {
        s = bl_model_create(&m, spec, in, (int)ncls, err);
        if (s) bl_error_prefix(err, "%s", path);
    }
    if (!s) s = bl_model_alloc(m, ctx, max_batch, err);
    if (!s) s = load_model_tensors(m, &st, path, err);
    if (!s) s = load_norm(norm, ctx, &st, path, bl_shape_size(in), err);
    bl_safetensors_free(&st);
    if (s) {
        bl_model_free(m);
        bl_norm_free(norm, &ctx->mem);
        return s;
    }
    *out = m;
    return BL_OK;
}

bl_status bl_trainer_resume(bl_trainer *t, const char *path, bl_error *err) {
    bl_safetensors st;
    bl_status s = bl_safetensors_read(&st, path, err);
    if (s) return s;
    bl_model *m = t->model;
    s = check_format(&st, path, err);
    const char *spec = bl_safetensors_meta(&st, "spec");
    if (!s && (!spec || strcmp(spec, bl_model_spec(m))))
        s = bl_fail(err, BL_ERR_ARG, "%s: the checkpoint's model '%s' differs from this run's '%s'",
                    path, spec ? spec : "?", bl_model_spec(m));
    const char *opt = bl_safetensors_meta(&st, "optimizer");
    if (!s && (!opt || strcmp(opt, bl_optim_name(&t->opt.cfg))))
        s = bl_fail(err, BL_ERR_ARG,
                    "%s: the checkpoint was trained with optimizer '%s', this run uses '%s'", path,
                    opt ? opt : "?", bl_optim_name(&t->opt.cfg));
    const char *seed = bl_safetensors_meta(&st, "seed");
    char myseed[32];
    snprintf(myseed, sizeof myseed, "%" PRIu64, t->cfg.seed);
    if (!s && (!seed || strcmp(seed, myseed)))
        s = bl_fail(err, BL_ERR_ARG,
                    "%s: the checkpoint was trained with --seed %s; resume with the same seed "
                    "(this run has %s) so the data order continues",
                    path, seed ? seed : "?", myseed);
    long step = 0, epoch = 0, pos = 0, seen = 0, optt = 0, world = 1;
    if (!s) s = meta_long(&st, path, "step", &step, err);
    if (!s) s = meta_long(&st, path, "epoch", &epoch, err);
    if (!s) s = meta_long(&st, path, "epoch_pos", &pos, err);
    if (!s) s = meta_long(&st, path, "samples_seen", &seen, err);
    if (!s) s = meta_long(&st, path, "optim_t", &optt, err);
    if (!s && bl_safetensors_meta(&st, "world_size"))
        s = meta_long(&st, path, "world_size", &world, err);
    if (!s && (size_t)pos > t->train->n)
        s = bl_fail(err, BL_ERR_ARG, "%s: data position %ld is beyond this dataset's %zu samples",
                    path, pos, t->train->n);
    if (!s) s = load_model_tensors(m, &st, path, err);
    const bl_tensor *os;
    if (!s && t->opt.state_n &&
        !(s = find_f32(&st, path, "optim.state", t->opt.state_n, &os, err)) &&
        (s = t->ctx->be->ops->upload(t->ctx->be, t->opt.state, os->data, os->nbytes)))
        bl_backend_fail(err, s, t->ctx->be, "loading the optimizer state");
    if (!s) s = ckpt_state_restore(t, &st, path, err);
    bl_safetensors_free(&st);
    if (s) return s;
    t->step = step;
    t->resumed_step = step;
    t->samples_seen = seen;
    t->opt.t = optt;
    t->resumed_world = (int)world;
    bl_loader_seek(&t->loader, epoch, (size_t)pos);
    return BL_OK;
}
