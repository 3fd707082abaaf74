/* The memory finder (see include/batchlab/find.h): closed-form prediction from
 * the exact footprint, then real trials under an enforced budget. A trial
 * allocates exactly what training allocates, through a bl_mem whose limit is
 * the budget, and runs one real step on synthetic data, so "fits" means a step
 * ran inside the budget. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "batchlab/find.h"
#include "batchlab/model.h"

bl_status bl_train_memory_bytes(const char *spec, bl_shape input, int n_classes,
                                const bl_optim_config *opt, int batch, const bl_backend *be,
                                size_t *bytes, bl_error *err) {
    bl_model *m;
    bl_status st = bl_model_create(&m, spec, input, n_classes, err);
    if (st) return st;
    /* + the trainer's copy of the batch-norm statistics (undone after a failed step) */
    *bytes = bl_model_memory_bytes_on(m, be, batch) +
             bl_optim_state_bytes(opt, bl_model_num_params(m)) +
             bl_loader_batch_bytes(bl_shape_size(input), batch) +
             bl_model_num_buffers(m) * sizeof(float);
    bl_model_free(m);
    return BL_OK;
}

/* One real trial: allocate everything under the limit and run a training step.
 * Returns 1 if it fitted, 0 if an allocation hit the budget, -1 on other errors. */
static int trial(const bl_find_memory_config *c, size_t limit, int batch, double *step_s,
                 bl_error *err) {
    bl_ctx ctx;
    bl_ctx_init(&ctx, c->threads);
    ctx.mem.limit_bytes = limit;
    bl_error e = {0};
    if (c->device && bl_ctx_set_device(&ctx, c->device, &e)) {
        if (err) *err = e;
        bl_ctx_free(&ctx);
        return -1;
    }
    bl_model *m = NULL;
    bl_optim opt = {0};
    float *x = NULL;
    int32_t *y = NULL;
    int result = 1;
    bl_status st = bl_model_create(&m, c->spec, c->input, c->n_classes, &e);
    if (!st) st = bl_model_alloc(m, &ctx, batch, &e);
    if (!st) st = bl_optim_init(&opt, &c->opt, bl_model_num_params(m), ctx.be, &ctx.mem, &e);
    size_t dim = bl_shape_size(c->input);
    if (!st)
        x = bl_mem_alloc(
            &ctx.mem, bl_loader_batch_bytes(dim, batch) + bl_model_num_buffers(m) * sizeof(float),
            "input batches", &e);
    if (!st && !x) st = e.code;
    if (!st) {
        y = (int32_t *)(x + (size_t)batch * dim);
        bl_rng r;
        bl_rng_seed(&r, 1);
        for (size_t i = 0; i < (size_t)batch * dim; i++)
            x[i] = bl_rng_normal(&r);
        for (int i = 0; i < batch; i++)
            y[i] = (int32_t)bl_rng_below(&r, (uint32_t)c->n_classes);
        st = bl_model_init(m, 1, &e);
        double t0 = bl_now_sec(), loss = 0;
        if (!st) st = bl_model_zero_grad(m, &e);
        if (!st) st = bl_model_forward(m, x, batch, 1, &e);
        if (!st) st = bl_model_loss(m, y, BL_LOSS_XENT, &loss, NULL, &e);
        if (!st) st = bl_model_backward(m, 1.0f / batch, &e);
        if (!st) st = bl_optim_step(&opt, bl_model_params(m), bl_model_grads(m), 0.01f, &e);
        *step_s = bl_now_sec() - t0;
    }
    if (st == BL_ERR_NOMEM)
        result = 0;
    else if (st) {
        result = -1;
        if (err) *err = e;
    }
    bl_mem_free(&ctx.mem, x);
    bl_optim_free(&opt, &ctx.mem);
    bl_model_free(m);
    bl_ctx_free(&ctx);
    return result;
}

/* The footprint the trials on backend be will have at batch. */
static bl_status footprint(const bl_find_memory_config *c, const bl_backend *be, size_t batch,
                           size_t *bytes, bl_error *err) {
    return bl_train_memory_bytes(c->spec, c->input, c->n_classes, &c->opt, (int)batch, be, bytes,
                                 err);
}

static int record(const bl_find_memory_config *c, const bl_backend *be, bl_find_memory_result *r,
                  int batch, bl_error *err) {
    bl_find_trial *t = r->n_trials < BL_FIND_MAX_TRIALS ? &r->trials[r->n_trials++] : NULL;
    double step_s = 0;
    int fits = trial(c, r->limit_bytes, batch, &step_s, err);
    if (t) {
        t->batch = batch;
        t->fits = fits > 0;
        t->bytes = 0;
        bl_error e2 = {0};
        footprint(c, be, (size_t)batch, &t->bytes, &e2);
        t->step_s = fits > 0 ? step_s : 0;
    }
    return fits;
}

/* What the trials have shown: the largest batch known to fit, the smallest known not to. */
typedef struct bracket {
    int lo, hi; /* 0 = none yet */
} bracket;

/* Trial at `batch`, narrowing k; a trial that failed for another reason is an error. */
static bl_status probe(const bl_find_memory_config *c, const bl_backend *be,
                       bl_find_memory_result *r, int batch, bracket *k, bl_error *err) {
    int fits = record(c, be, r, batch, err);
    if (fits < 0) return err ? err->code : BL_ERR_ARG;
    if (fits)
        k->lo = batch > k->lo ? batch : k->lo;
    else if (!k->hi || batch < k->hi)
        k->hi = batch;
    return BL_OK;
}

bl_status bl_find_memory(const bl_find_memory_config *c, bl_find_memory_result *r, bl_error *err) {
    memset(r, 0, sizeof *r);
    if (!(c->margin >= 0 && c->margin < 1))
        return bl_fail(err, BL_ERR_ARG, "memory margin %g must be in [0, 1)", c->margin);
    if (c->budget_bytes == 0) return bl_fail(err, BL_ERR_ARG, "memory budget must be > 0");
    r->limit_bytes = (size_t)((double)c->budget_bytes * (1 - c->margin));
    /* The backend the trials will get (bl_ctx_init's choice, or c->device). */
    bl_ctx probe_ctx;
    bl_ctx_init(&probe_ctx, c->threads);
    bl_status st = c->device ? bl_ctx_set_device(&probe_ctx, c->device, err) : BL_OK;
    bl_backend sizing = *probe_ctx.be; /* only asked for sizes: no threads */
    sizing.pool = NULL;
    bl_ctx_free(&probe_ctx);
    const bl_backend *be = &sizing;
    size_t b1, b2;
    if (!st) st = footprint(c, be, 1, &b1, err);
    if (!st) st = footprint(c, be, 4097, &b2, err);
    if (st) return st;
    /* Summary line for people: growth per sample at large B, and what B = 0 would need. */
    r->per_sample_bytes = (b2 - b1) / 4096;
    r->fixed_bytes = b1 > r->per_sample_bytes ? b1 - r->per_sample_bytes : 0;
    if (b1 > r->limit_bytes)
        return bl_fail(err, BL_ERR_NOMEM,
                       "even batch 1 needs %.1f MB, more than the %.1f MB budget allows "
                       "(%.0f%% of %.1f MB)",
                       b1 / 1e6, r->limit_bytes / 1e6, 100 * (1 - c->margin),
                       c->budget_bytes / 1e6);
    /* The footprint is monotone in B (affine, except the conv workspace, which stops
     * growing once a GEMM group is full): binary search on the exact value. */
    size_t lo_b = 1, hi_b = 2;
    for (size_t bytes = 0;; hi_b *= 2) {
        if ((st = footprint(c, be, hi_b, &bytes, err))) return st;
        if (bytes > r->limit_bytes || hi_b >= (1u << 30)) break;
        lo_b = hi_b;
    }
    while (hi_b - lo_b > 1) {
        size_t mid = lo_b + (hi_b - lo_b) / 2, bytes;
        if ((st = footprint(c, be, mid, &bytes, err))) return st;
        if (bytes <= r->limit_bytes)
            lo_b = mid;
        else
            hi_b = mid;
    }
    size_t pred = lo_b;
    int cap = c->max_batch > 0 ? c->max_batch : 1 << 30;
    int target = (int)pred < cap ? (int)pred : cap;
    r->capped = target == cap && (int)pred > cap;
    if (c->mode == BL_FIND_POWER) {
        int p = 1;
        while (p * 2 <= target)
            p *= 2;
        target = p;
    }
    r->predicted = target;
    /* Confirm: the answer fits, and (unless capped) the next candidate does not. If a
     * trial disagrees with the model, fall back to a real search between the bounds. */
    bracket k = {0, 0};
    if ((st = probe(c, be, r, target, &k, err))) return st;
    long next = c->mode == BL_FIND_POWER ? 2L * target : target + 1L;
    if (k.lo && !r->capped && next <= cap && (st = probe(c, be, r, (int)next, &k, err))) return st;
    while (!k.hi && k.lo < cap && r->n_trials < BL_FIND_MAX_TRIALS) /* upwards */
        if ((st = probe(c, be, r, 2L * k.lo <= cap ? 2 * k.lo : cap, &k, err))) return st;
    while (!k.lo && k.hi > 1 && r->n_trials < BL_FIND_MAX_TRIALS) /* downwards */
        if ((st = probe(c, be, r, k.hi / 2, &k, err))) return st;
    while (c->mode == BL_FIND_BINSEARCH && k.hi && k.hi - k.lo > 1 &&
           r->n_trials < BL_FIND_MAX_TRIALS)
        if ((st = probe(c, be, r, k.lo + (k.hi - k.lo) / 2, &k, err))) return st;
    int lo = k.lo;
    if (!lo)
        return bl_fail(err, BL_ERR_NOMEM, "no batch size fits the %.1f MB budget",
                       r->limit_bytes / 1e6);
    r->found = lo;
    return BL_OK;
}

int bl_find_micro_batch(int total, int max_fit) {
    if (total <= max_fit) return 0;
    for (int m = max_fit; m >= 1; m--)
        if (total % m == 0) return m;
    return 1;
}
