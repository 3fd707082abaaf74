/* Optimizer objects over the flat parameter arena.
 *
 * An optimizer is a config, a step counter and one flat state arena (SGD
 * momentum buffer, or Adam m followed by v). The arithmetic lives in the
 * backend's sgd_step/adam_step kernels, so a CUDA backend updates its own
 * arenas without this file changing, and checkpointing the state is a single
 * tensor. Configuration is validated once in bl_optim_init, so the step itself
 * cannot fail. */
#include <stdint.h>
#include <string.h>
#include "batchlab/backend.h"
#include "batchlab/optim.h"

void bl_optim_config_default(bl_optim_config *c, bl_opt_kind kind) {
    memset(c, 0, sizeof *c);
    c->kind = kind;
    c->momentum = 0.0f;
    c->nesterov = 0;
    c->beta1 = 0.9f;
    c->beta2 = 0.999f;
    c->eps = 1e-8f;
    c->weight_decay = kind == BL_OPT_ADAMW ? 0.01f : 0.0f;
}

bl_status bl_optim_parse(bl_optim_config *c, const char *name, bl_error *err) {
    if (!name) name = "";
    if (strcmp(name, "sgd") == 0) {
        bl_optim_config_default(c, BL_OPT_SGD);
    } else if (strcmp(name, "momentum") == 0) {
        bl_optim_config_default(c, BL_OPT_SGD);
        c->momentum = 0.9f;
    } else if (strcmp(name, "nesterov") == 0) {
        bl_optim_config_default(c, BL_OPT_SGD);
        c->momentum = 0.9f;
        c->nesterov = 1;
    } else if (strcmp(name, "adam") == 0) {
        bl_optim_config_default(c, BL_OPT_ADAM);
    } else if (strcmp(name, "adamw") == 0) {
        bl_optim_config_default(c, BL_OPT_ADAMW);
    } else {
        return bl_fail(err, BL_ERR_ARG,
                       "optimizer: unknown name '%s' (choose sgd, momentum, nesterov, adam or "
                       "adamw)",
                       name);
    }
    return BL_OK;
}

const char *bl_optim_name(const bl_optim_config *c) {
    switch (c->kind) {
    case BL_OPT_SGD:
        if (c->momentum == 0.0f) return "sgd";
        return c->nesterov ? "nesterov" : "momentum";
    case BL_OPT_ADAM:
        return "adam";
    case BL_OPT_ADAMW:
        return "adamw";
    }
    return "unknown";
}

/* Rejects what torch.optim rejects, naming the field. */
static bl_status validate_config(const bl_optim_config *c, bl_error *err) {
    const char *name = bl_optim_name(c);
    if (c->kind != BL_OPT_SGD && c->kind != BL_OPT_ADAM && c->kind != BL_OPT_ADAMW)
        return bl_fail(err, BL_ERR_ARG, "optimizer: kind %d is not a known optimizer",
                       (int)c->kind);
    if (!(c->weight_decay >= 0.0f))
        return bl_fail(err, BL_ERR_ARG, "optimizer %s: weight_decay %g must be >= 0", name,
                       (double)c->weight_decay);
    if (c->kind == BL_OPT_SGD) {
        if (!(c->momentum >= 0.0f))
            return bl_fail(err, BL_ERR_ARG, "optimizer %s: momentum %g must be >= 0", name,
                           (double)c->momentum);
        if (c->nesterov && c->momentum == 0.0f)
            return bl_fail(err, BL_ERR_ARG, "optimizer %s: nesterov needs momentum > 0", name);
        return BL_OK;
    }
    if (!(c->beta1 >= 0.0f && c->beta1 < 1.0f))
        return bl_fail(err, BL_ERR_ARG, "optimizer %s: beta1 %g must be in [0, 1)", name,
                       (double)c->beta1);
    if (!(c->beta2 >= 0.0f && c->beta2 < 1.0f))
        return bl_fail(err, BL_ERR_ARG, "optimizer %s: beta2 %g must be in [0, 1)", name,
                       (double)c->beta2);
    if (!(c->eps >= 0.0f))
        return bl_fail(err, BL_ERR_ARG, "optimizer %s: eps %g must be >= 0", name, (double)c->eps);
    return BL_OK;
}

static size_t state_floats(const bl_optim_config *c, size_t n) {
    if (c->kind == BL_OPT_SGD) return c->momentum != 0.0f ? n : 0;
    return 2 * n;
}

size_t bl_optim_state_bytes(const bl_optim_config *c, size_t n_params) {
    return state_floats(c, n_params) * sizeof(float);
}

bl_status bl_optim_init(bl_optim *o, const bl_optim_config *c, size_t n_params, bl_backend *be,
                        bl_mem *mem, bl_error *err) {
    memset(o, 0, sizeof *o);
    bl_status st = validate_config(c, err);
    if (st != BL_OK) return st;
    if (n_params > SIZE_MAX / (2 * sizeof(float)))
        return bl_fail(err, BL_ERR_NOMEM, "optimizer %s: state for %zu parameters overflows",
                       bl_optim_name(c), n_params);
    size_t sn = state_floats(c, n_params);
    o->be = be;
    if (sn) {
        void *p;
        st = be->ops->alloc(be, mem, bl_optim_state_bytes(c, n_params), BL_BUFFER_DEVICE,
                            "optimizer state", &p, err);
        if (st) return st;
        o->state = p;
    }
    o->cfg = *c;
    o->n = n_params;
    o->state_n = sn;
    o->t = 0;
    return BL_OK;
}

bl_status bl_optim_step(bl_optim *o, float *params, const float *grads, float lr, bl_error *err) {
    const bl_optim_config *c = &o->cfg;
    bl_backend *be = o->be;
    bl_status st;
    if (c->kind == BL_OPT_SGD) {
        st = be->ops->sgd_step(be, params, o->state, grads, o->n, lr, c->momentum, c->nesterov,
                               c->weight_decay, o->t == 0);
    } else {
        float *m = o->state, *v = o->state ? o->state + o->n : NULL;
        st = be->ops->adam_step(be, params, m, v, grads, o->n, lr, c->beta1, c->beta2, c->eps,
                                c->weight_decay, c->kind == BL_OPT_ADAMW, o->t + 1);
    }
    if (st) return bl_backend_fail(err, st, be, "the optimizer update");
    o->t++;
    return BL_OK;
}

void bl_optim_free(bl_optim *o, bl_mem *mem) {
    if (!o) return;
    if (o->be) o->be->ops->release(o->be, mem, o->state);
    o->state = NULL;
    o->state_n = 0;
    o->n = 0;
    o->t = 0;
}
