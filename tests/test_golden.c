/* Golden tests: batchlab against PyTorch on small models.
 *
 * tests/golden/make_golden.py (run with Debian's /usr/bin/python3, which has
 * torch) wrote one safetensors file per case: the input batch, every initial
 * parameter and buffer under its torch state_dict name ("init.0.weight"), the
 * train-mode logits, the mean loss, every gradient ("grad.*"), and the
 * parameters and buffers after 5 SGD-momentum and 5 Adam steps on the same
 * batch ("sgd.*", "adam.*"). Here the same spec is built with bl_model_create,
 * loaded with those initial values, and run through forward, loss, backward
 * and the optimizer; every tensor must agree within float32 tolerance. This
 * makes "the layers are right" a fact checked in CI without torch.
 *
 * One known wrinkle, documented in make_golden.py: a bias that feeds straight
 * into batch norm has an exact gradient of zero, so both sides compute
 * rounding noise for it, and Adam turns that noise into +-lr steps of random
 * sign. After Adam such a bias is only bounded, and the batch norm's
 * running_mean (which sees the bias through the batch mean) is compared after
 * removing the difference between the two bias trajectories. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "batchlab/core.h"
#include "batchlab/io.h"
#include "batchlab/model.h"
#include "test_util.h"
#include "batchlab/optim.h"

/* Must match make_golden.py. */
#define GOLDEN_STEPS 5
#define SGD_LR 0.1f
#define SGD_MOMENTUM 0.9f
#define ADAM_LR 0.01f
#define BN_MOMENTUM 0.1 /* torch default; batchlab's bn layer uses the same */

/* Forward values and one backward: float32 rounding only. */
#define TOL_ATOL 1e-5
#define TOL_RTOL 1e-4
/* After 5 optimizer steps rounding has compounded a little, but torch float32
 * against torch float64 stays within 0.1 of this on every case (and batchlab
 * within 0.13), so it keeps the same bounds. */
#define STEP_ATOL 1e-5
#define STEP_RTOL 1e-4

typedef struct golden {
    const char *name;
    bl_safetensors st;
    bl_ctx ctx;
    bl_model *m;
    int B, K;
    bl_loss_kind loss;
    float *x;   /* (B, in_dim), own copy */
    int32_t *y; /* (B) */
    char bias_before_bn[256];
} golden;

/* ---- comparison -------------------------------------------------------- */

static float ref_at(const bl_tensor *t, size_t i) {
    float v;
    memcpy(&v, (const uint8_t *)t->data + 4 * i, 4);
    return v;
}

/* Max over i of |ours-ref| / (atol + rtol |ref|); <= 1 means within tolerance.
 * NaN counts as the worst possible. */
static double worst_err(const float *ours, const bl_tensor *ref, size_t n, double atol, double rtol,
                        size_t *worst_i, size_t *n_bad) {
    double worst = 0;
    *worst_i = 0;
    *n_bad = 0;
    for (size_t i = 0; i < n; i++) {
        double r = ref_at(ref, i);
        double e = fabs((double)ours[i] - r) / (atol + rtol * fabs(r));
        if (!(e <= 1)) (*n_bad)++;
        if (!(e <= worst)) {
            worst = isnan(e) ? INFINITY : e;
            *worst_i = i;
        }
    }
    return worst;
}

static void check_close(const golden *g, const char *what, const float *ours, const bl_tensor *ref,
                        size_t n, double atol, double rtol) {
    size_t wi, bad;
    double w = worst_err(ours, ref, n, atol, rtol, &wi, &bad);
    if (getenv("GOLDEN_VERBOSE")) fprintf(stderr, "  %-5s %-22s %.3g\n", g->name, what, w);
    if (!(w <= 1))
        fail_msg("%s: %s differs from torch in %zu of %zu elements; worst [%zu]: batchlab %.9g, "
                 "torch %.9g (%.3g x tolerance, atol %g rtol %g)",
                 g->name, what, bad, n, wi, (double)ours[wi], (double)ref_at(ref, wi), w, atol,
                 rtol);
}

/* ---- loading ----------------------------------------------------------- */

static const bl_tensor *need(const golden *g, const char *key) {
    const bl_tensor *t = bl_safetensors_find(&g->st, key);
    if (!t) fail_msg("%s: the golden dump has no tensor \"%s\"", g->name, key);
    if (t->dtype != BL_DT_F32) fail_msg("%s: golden \"%s\" is not F32", g->name, key);
    return t;
}

static size_t numel(const bl_tensor *t) {
    size_t n = 1;
    for (int d = 0; d < t->ndim; d++)
        n *= (size_t)t->shape[d];
    return n;
}

/* The golden tensor prefix.name, which must have the model tensor's shape. */
static const bl_tensor *need_like(const golden *g, const char *prefix, const bl_param_info *info) {
    char key[256];
    snprintf(key, sizeof key, "%s.%s", prefix, info->name);
    const bl_tensor *t = need(g, key);
    int same = t->ndim == info->ndim && numel(t) == info->count;
    for (int d = 0; same && d < t->ndim; d++)
        same = t->shape[d] == info->shape[d];
    if (!same)
        fail_msg("%s: %s has %d dims [%lld %lld %lld %lld] (%zu floats) in batchlab, %d dims "
                 "[%lld %lld %lld %lld] (%zu floats) in torch",
                 g->name, key, info->ndim, (long long)info->shape[0],
                 (long long)(info->ndim > 1 ? info->shape[1] : 0),
                 (long long)(info->ndim > 2 ? info->shape[2] : 0),
                 (long long)(info->ndim > 3 ? info->shape[3] : 0), info->count, t->ndim,
                 (long long)t->shape[0], (long long)(t->ndim > 1 ? t->shape[1] : 0),
                 (long long)(t->ndim > 2 ? t->shape[2] : 0),
                 (long long)(t->ndim > 3 ? t->shape[3] : 0), numel(t));
    return t;
}

static bl_arena arena_of(const bl_param_info *info) {
    return info->is_buffer ? BL_ARENA_BUFFERS : BL_ARENA_PARAMS;
}

/* Copy prefix.<name> into the model for every parameter and buffer. */
static void load_weights(golden *g, const char *prefix) {
    for (int i = 0; i < bl_model_num_tensors(g->m); i++) {
        const bl_param_info *info = bl_model_tensor(g->m, i);
        const bl_tensor *t = need_like(g, prefix, info);
        bl_error err = {0};
        if (bl_model_write(g->m, arena_of(info), info->offset, info->count, t->data, &err))
            fail_msg("%s: %s: %s", g->name, info->name, err.msg);
    }
}

static const char *meta(const golden *g, const char *key) {
    const char *v = bl_safetensors_meta(&g->st, key);
    if (!v) fail_msg("%s: the golden dump has no metadata \"%s\"", g->name, key);
    return v;
}

static void golden_open(golden *g, const char *name) {
    char path[1024];
    bl_error err = {0};
    memset(g, 0, sizeof *g);
    g->name = name;
    snprintf(path, sizeof path, "%s/%s.safetensors", BL_GOLDEN_DIR, name);
    if (bl_safetensors_read(&g->st, path, &err) != BL_OK) fail_msg("%s: %s", path, err.msg);

    const char *spec = meta(g, "spec");
    g->B = atoi(meta(g, "batch"));
    g->K = atoi(meta(g, "n_classes"));
    const char *loss = meta(g, "loss");
    assert_true(strcmp(loss, "xent") == 0 || strcmp(loss, "mse") == 0);
    g->loss = strcmp(loss, "mse") == 0 ? BL_LOSS_MSE : BL_LOSS_XENT;
    snprintf(g->bias_before_bn, sizeof g->bias_before_bn, "%s", meta(g, "bias_before_bn"));

    const bl_tensor *x = need(g, "x");
    const bl_tensor *y = bl_safetensors_find(&g->st, "y");
    assert_non_null(y);
    assert_int_equal(y->dtype, BL_DT_I32);
    assert_int_equal(x->ndim, 4);
    assert_int_equal(x->shape[0], g->B);
    assert_int_equal(y->shape[0], g->B);
    bl_shape in = {(int)x->shape[1], (int)x->shape[2], (int)x->shape[3]};

    g->x = malloc(x->nbytes);
    g->y = malloc(y->nbytes);
    assert_non_null(g->x);
    assert_non_null(g->y);
    memcpy(g->x, x->data, x->nbytes);
    memcpy(g->y, y->data, y->nbytes);

    bl_ctx_init(&g->ctx, 1);
    if (bl_model_create(&g->m, spec, in, g->K, &err) != BL_OK)
        fail_msg("%s: bl_model_create(\"%s\"): %s", name, spec, err.msg);
    if (bl_model_alloc(g->m, &g->ctx, g->B, &err) != BL_OK)
        fail_msg("%s: bl_model_alloc: %s", name, err.msg);
    assert_int_equal(bl_model_output_dim(g->m), g->K);

    /* Both sides must have the same set of tensors: every model tensor has an
     * init.* (load_weights checks), and there are no init.* left over. */
    int n_init = 0;
    for (int i = 0; i < g->st.n; i++)
        n_init += strncmp(g->st.tensors[i].name, "init.", 5) == 0;
    if (n_init != bl_model_num_tensors(g->m))
        fail_msg("%s: torch has %d parameter/buffer tensors, batchlab %d", name, n_init,
                 bl_model_num_tensors(g->m));
    load_weights(g, "init");
}

static void golden_close(golden *g) {
    bl_model_free(g->m);
    bl_ctx_free(&g->ctx);
    bl_safetensors_free(&g->st);
    free(g->x);
    free(g->y);
}

/* 1 if name is listed in the comma-separated set. */
static int in_list(const char *list, const char *name) {
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && strncmp(p, name, n) == 0) return 1;
        if (!e) break;
        p = e + 1;
    }
    return 0;
}

/* ---- forward, loss, backward ------------------------------------------- */

static int argmax_row(const bl_tensor *logits, int b, int K) {
    int best = 0;
    for (int k = 1; k < K; k++)
        if (ref_at(logits, (size_t)b * K + k) > ref_at(logits, (size_t)b * K + best)) best = k;
    return best;
}

static void forward_loss_backward(void **state) {
    golden g;
    golden_open(&g, (const char *)*state);
    const bl_tensor *logits_ref = need(&g, "logits");
    assert_int_equal(numel(logits_ref), (size_t)g.B * g.K);

    float *logits = malloc((size_t)g.B * g.K * sizeof *logits);
    assert_non_null(logits);
    tu_forward(g.m, g.x, g.B, 1, logits);
    check_close(&g, "logits", logits, logits_ref, (size_t)g.B * g.K, TOL_ATOL, TOL_RTOL);

    int correct = 0, correct_ref = 0;
    double loss = tu_loss(g.m, g.y, g.loss, &correct) / g.B;
    float loss_f = (float)loss;
    check_close(&g, "loss", &loss_f, need(&g, "loss"), 1, TOL_ATOL, TOL_RTOL);
    for (int b = 0; b < g.B; b++)
        correct_ref += argmax_row(logits_ref, b, g.K) == g.y[b];
    assert_int_equal(correct, correct_ref);

    tu_zero_grad(g.m);
    bl_error err = {0};
    assert_int_equal(bl_model_backward(g.m, 1.0f / g.B, &err), BL_OK);
    float *grads = tu_arena(g.m, BL_ARENA_GRADS);
    int n_grads = 0;
    for (int i = 0; i < bl_model_num_tensors(g.m); i++) {
        const bl_param_info *info = bl_model_tensor(g.m, i);
        if (info->is_buffer) continue;
        char what[160];
        snprintf(what, sizeof what, "grad.%s", info->name);
        check_close(&g, what, grads + info->offset, need_like(&g, "grad", info), info->count,
                    TOL_ATOL, TOL_RTOL);
        n_grads++;
    }
    assert_true(n_grads > 0);
    free(grads);
    free(logits);
    golden_close(&g);
}

/* ---- optimizer steps ---------------------------------------------------- */

/* Run GOLDEN_STEPS updates from init.* and compare against prefix.* ("sgd" or
 * "adam"). momentum only matters for SGD; the sanity test passes a wrong one. */
static double run_steps(golden *g, bl_opt_kind kind, float momentum, int fail_on_mismatch) {
    bl_error err = {0};
    bl_optim_config cfg;
    bl_optim o;
    const char *prefix = kind == BL_OPT_SGD ? "sgd" : "adam";
    float lr = kind == BL_OPT_SGD ? SGD_LR : ADAM_LR;
    bl_optim_config_default(&cfg, kind);
    cfg.kind = kind;
    if (kind == BL_OPT_SGD) cfg.momentum = momentum;
    load_weights(g, "init");
    if (bl_optim_init(&o, &cfg, bl_model_num_params(g->m), g->ctx.be, &g->ctx.mem, &err) != BL_OK)
        fail_msg("%s: bl_optim_init: %s", g->name, err.msg);

    /* Our own trajectory of each bias that feeds batch norm (see the top). */
    int nt = bl_model_num_tensors(g->m);
    float *trace = calloc((size_t)GOLDEN_STEPS * bl_model_num_params(g->m), sizeof(float));
    assert_non_null(trace);

    for (int step = 0; step < GOLDEN_STEPS; step++) {
        if (bl_model_read(g->m, BL_ARENA_PARAMS, 0, bl_model_num_params(g->m),
                          trace + step * bl_model_num_params(g->m), &err))
            fail_msg("%s: step %d: %s", g->name, step, err.msg);
        tu_zero_grad(g->m);
        tu_step(g->m, g->x, g->y, g->B, g->loss, 1.0f / g->B, NULL);
        if (bl_optim_step(&o, bl_model_params(g->m), bl_model_grads(g->m), lr, &err))
            fail_msg("%s: step %d: %s", g->name, step, err.msg);
    }
    float *arenas[2] = {tu_arena(g->m, BL_ARENA_PARAMS), tu_arena(g->m, BL_ARENA_BUFFERS)};

    double worst = 0;
    for (int i = 0; i < nt; i++) {
        const bl_param_info *info = bl_model_tensor(g->m, i);
        const bl_tensor *ref = need_like(g, prefix, info);
        const float *ours = arenas[info->is_buffer] + info->offset;
        char what[160];
        snprintf(what, sizeof what, "%s.%s", prefix, info->name);

        if (kind != BL_OPT_SGD && in_list(g->bias_before_bn, info->name)) {
            /* Noise-driven: only bound the distance from init (at most ~lr a step,
             * 3 lr allows for Adam's ratio exceeding 1 on erratic gradients). */
            const bl_tensor *init = need_like(g, "init", info);
            for (size_t j = 0; j < info->count; j++)
                if (!(fabs(ours[j] - ref_at(init, j)) <= 3.0 * GOLDEN_STEPS * lr))
                    fail_msg("%s: %s[%zu] moved from %g to %g in %d Adam steps of lr %g", g->name,
                             what, j, (double)ref_at(init, j), (double)ours[j], GOLDEN_STEPS,
                             (double)lr);
            if (getenv("GOLDEN_VERBOSE")) {
                size_t wi, bad;
                fprintf(stderr, "  %-5s %-22s %.3g (noise-driven, bounded only)\n", g->name, what,
                        worst_err(ours, ref, info->count, STEP_ATOL, STEP_RTOL, &wi, &bad));
            }
            continue;
        }

        const float *cmp = ours;
        float *corrected = NULL;
        if (kind != BL_OPT_SGD && info->is_buffer && strstr(info->name, ".running_mean") != NULL) {
            /* running_mean of a batch norm right after a noise-driven bias: the
             * batch mean of step s contains that bias, so remove
             * sum_s m (1-m)^(S-1-s) (ours_s - torch_s). */
            char bias[160];
            int idx = atoi(info->name);
            snprintf(bias, sizeof bias, "%d.bias", idx - 1);
            if (in_list(g->bias_before_bn, bias)) {
                const bl_param_info *binfo = NULL;
                for (int k = 0; k < nt; k++)
                    if (strcmp(bl_model_tensor(g->m, k)->name, bias) == 0)
                        binfo = bl_model_tensor(g->m, k);
                assert_non_null(binfo);
                assert_int_equal(binfo->count, info->count);
                char key[200];
                snprintf(key, sizeof key, "trace_adam.%s", bias);
                const bl_tensor *tt = need(g, key);
                assert_int_equal(numel(tt), (size_t)GOLDEN_STEPS * info->count);
                corrected = malloc(info->count * sizeof(float));
                assert_non_null(corrected);
                for (size_t j = 0; j < info->count; j++) {
                    double c = ours[j];
                    for (int s = 0; s < GOLDEN_STEPS; s++) {
                        double w = BN_MOMENTUM * pow(1 - BN_MOMENTUM, GOLDEN_STEPS - 1 - s);
                        double b_ours =
                            trace[(size_t)s * bl_model_num_params(g->m) + binfo->offset + j];
                        c -= w * (b_ours - ref_at(tt, (size_t)s * info->count + j));
                    }
                    corrected[j] = (float)c;
                }
                cmp = corrected;
                if (getenv("GOLDEN_VERBOSE")) {
                    size_t wi, bad;
                    fprintf(stderr, "  %-5s %-22s %.3g before the bias correction\n", g->name, what,
                            worst_err(ours, ref, info->count, STEP_ATOL, STEP_RTOL, &wi, &bad));
                }
            }
        }
        if (fail_on_mismatch) check_close(g, what, cmp, ref, info->count, STEP_ATOL, STEP_RTOL);
        size_t wi, bad;
        double w = worst_err(cmp, ref, info->count, STEP_ATOL, STEP_RTOL, &wi, &bad);
        if (!(w <= worst)) worst = w;
        free(corrected);
    }
    free(trace);
    free(arenas[0]);
    free(arenas[1]);
    bl_optim_free(&o, &g->ctx.mem);
    return worst;
}

static void sgd_momentum_steps(void **state) {
    golden g;
    golden_open(&g, (const char *)*state);
    run_steps(&g, BL_OPT_SGD, SGD_MOMENTUM, 1);
    golden_close(&g);
}

static void adam_steps(void **state) {
    golden g;
    golden_open(&g, (const char *)*state);
    run_steps(&g, BL_OPT_ADAM, 0, 1);
    golden_close(&g);
}

/* ---- the comparisons are live ------------------------------------------- */

/* A small change to one weight, or to the SGD momentum, must be caught: the
 * tests above would otherwise pass on a comparison that checks nothing. */
static void perturbations_are_detected(void **state) {
    (void)state;
    golden g;
    size_t wi, bad;
    golden_open(&g, "cnn");
    const bl_tensor *logits_ref = need(&g, "logits");
    size_t n = (size_t)g.B * g.K;

    float *logits = malloc(n * sizeof *logits);
    assert_non_null(logits);
    tu_forward(g.m, g.x, g.B, 1, logits);
    assert_true(worst_err(logits, logits_ref, n, TOL_ATOL, TOL_RTOL, &wi, &bad) <= 1);

    /* Nudge the first weight of the last dense layer by 1e-2 (1e-3 already
     * moves the logits ~16x past tolerance, but its gradient only ~0.5x). */
    const bl_param_info *last = NULL;
    for (int i = 0; i < bl_model_num_tensors(g.m); i++) {
        const bl_param_info *info = bl_model_tensor(g.m, i);
        if (!info->is_buffer && strstr(info->name, ".weight") && info->ndim == 2) last = info;
    }
    assert_non_null(last);
    bl_error err = {0};
    float w0;
    assert_int_equal(bl_model_read(g.m, BL_ARENA_PARAMS, last->offset, 1, &w0, &err), BL_OK);
    w0 += 1e-2f;
    assert_int_equal(bl_model_write(g.m, BL_ARENA_PARAMS, last->offset, 1, &w0, &err), BL_OK);
    tu_forward(g.m, g.x, g.B, 1, logits);
    double lw = worst_err(logits, logits_ref, n, TOL_ATOL, TOL_RTOL, &wi, &bad);
    assert_true(lw > 1);

    /* Gradients of the perturbed model no longer match either. */
    tu_loss(g.m, g.y, g.loss, NULL);
    tu_zero_grad(g.m);
    assert_int_equal(bl_model_backward(g.m, 1.0f / g.B, &err), BL_OK);
    float *grads = tu_arena(g.m, BL_ARENA_GRADS);
    double gw = worst_err(grads + last->offset, need_like(&g, "grad", last), last->count, TOL_ATOL,
                          TOL_RTOL, &wi, &bad);
    free(grads);
    free(logits);
    assert_true(gw > 1);

    /* Momentum 0.89 instead of 0.9 is visible after 5 steps; 0.9 is not. */
    assert_true(run_steps(&g, BL_OPT_SGD, 0.89f, 0) > 1);
    assert_true(run_steps(&g, BL_OPT_SGD, SGD_MOMENTUM, 0) <= 1);
    golden_close(&g);
}

#define GOLDEN(case, fn)                                                                           \
    {case ": " #fn, fn, NULL, NULL, (void *)case}

int main(void) {
    const struct CMUnitTest tests[] = {
        GOLDEN("mlp", forward_loss_backward),
        GOLDEN("mlp", sgd_momentum_steps),
        GOLDEN("mlp", adam_steps),
        GOLDEN("cnn", forward_loss_backward),
        GOLDEN("cnn", sgd_momentum_steps),
        GOLDEN("cnn", adam_steps),
        GOLDEN("cnn2", forward_loss_backward),
        GOLDEN("cnn2", sgd_momentum_steps),
        GOLDEN("cnn2", adam_steps),
        GOLDEN("mse", forward_loss_backward),
        GOLDEN("mse", sgd_momentum_steps),
        GOLDEN("mse", adam_steps),
        cmocka_unit_test(perturbations_are_detected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
