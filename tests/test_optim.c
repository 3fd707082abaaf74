/* Optimizers, schedules and lr scaling.
 *
 * Each optimizer runs several steps through bl_optim_step on the CPU backend
 * with a fixed gradient sequence and a varying lr, and after every step is
 * compared with a plain double-precision transcription of the textbook
 * formulas written below (not the library's code path). Golden comparisons
 * against PyTorch itself live with the golden tests. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "batchlab/backend.h"
#include "batchlab/optim.h"
#include "test_util.h"

#define N 37 /* not a multiple of any vector width, so loop tails run too */
#define STEPS 6

/* ---- reference implementations, double precision ------------------------- */

typedef struct ref_state {
    double p[N], buf[N], m[N], v[N];
    long t;
} ref_state;

/* torch.optim.SGD with dampening 0. */
static void ref_sgd(ref_state *s, const double *g, double lr, double mom, int nesterov, double wd) {
    for (int i = 0; i < N; i++) {
        double d = g[i] + wd * s->p[i];
        if (mom != 0.0) {
            s->buf[i] = s->t == 0 ? d : mom * s->buf[i] + d;
            d = nesterov ? d + mom * s->buf[i] : s->buf[i];
        }
        s->p[i] -= lr * d;
    }
    s->t++;
}

/* Adam (Kingma & Ba, eps outside the root) with L2 decay, or AdamW (Loshchilov &
 * Hutter) with decoupled decay. */
static void ref_adam(ref_state *s, const double *g_in, double lr, double b1, double b2, double eps,
                     double wd, int decoupled) {
    s->t++;
    for (int i = 0; i < N; i++) {
        double g = g_in[i];
        if (decoupled)
            s->p[i] *= 1.0 - lr * wd;
        else
            g += wd * s->p[i];
        s->m[i] = b1 * s->m[i] + (1.0 - b1) * g;
        s->v[i] = b2 * s->v[i] + (1.0 - b2) * g * g;
        double mhat = s->m[i] / (1.0 - pow(b1, (double)s->t));
        double vhat = s->v[i] / (1.0 - pow(b2, (double)s->t));
        s->p[i] -= lr * mhat / (sqrt(vhat) + eps);
    }
}

/* ---- the comparison harness ---------------------------------------------- */

/* The backend the test runs on: BATCHLAB_DEVICE's (cpu when unset). */
static bl_backend *test_backend(void) {
    bl_backend *be;
    bl_error err = {0};
    if (bl_backend_get(&be, getenv("BATCHLAB_DEVICE"), &err)) fail_msg("%s", err.msg);
    return be;
}

/* n floats of backend memory holding host[0..n). */
static float *to_backend(bl_backend *be, const float *host, size_t n) {
    void *p;
    bl_error err = {0};
    if (be->ops->alloc(be, NULL, n * sizeof(float), BL_BUFFER_DEVICE, "test", &p, &err) ||
        be->ops->upload(be, p, host, n * sizeof(float)))
        fail_msg("backend %s: cannot place %zu floats: %s", be->name, n, err.msg);
    return p;
}

static void to_host(bl_backend *be, float *host, const float *dev, size_t n) {
    if (be->ops->download(be, host, dev, n * sizeof(float)))
        fail_msg("backend %s: download failed", be->name);
}

static double init_param(int i) {
    return 0.5 * cos(1.1 * i) + 0.2;
}
static double grad_at(int i, int t) {
    return sin(0.9 * i + 1.7 * t) + 0.05 * (i - 3);
}

static void run_against_reference(const bl_optim_config *cfg, double lr0) {
    bl_mem mem = {0};
    bl_error err = {0};
    bl_optim o;
    bl_backend *be = test_backend();
    assert_int_equal(bl_optim_init(&o, cfg, N, be, &mem, &err), BL_OK);

    float p[N], g[N];
    ref_state ref;
    memset(&ref, 0, sizeof ref);
    for (int i = 0; i < N; i++) {
        ref.p[i] = (float)init_param(i);
        p[i] = (float)ref.p[i];
    }
    for (int t = 0; t < STEPS; t++) {
        double gd[N];
        for (int i = 0; i < N; i++) {
            g[i] = (float)grad_at(i, t);
            gd[i] = g[i];
        }
        float lr = (float)(lr0 * (1.0 + 0.25 * t)); /* as a schedule would vary it */
        float *dp = to_backend(be, p, N), *dg = to_backend(be, g, N);
        assert_int_equal(bl_optim_step(&o, dp, dg, lr, &err), BL_OK);
        to_host(be, p, dp, N);
        be->ops->release(be, NULL, dp);
        be->ops->release(be, NULL, dg);
        if (cfg->kind == BL_OPT_SGD)
            ref_sgd(&ref, gd, lr, cfg->momentum, cfg->nesterov, cfg->weight_decay);
        else
            ref_adam(&ref, gd, lr, cfg->beta1, cfg->beta2, cfg->eps, cfg->weight_decay,
                     cfg->kind == BL_OPT_ADAMW);
        float want[N];
        for (int i = 0; i < N; i++)
            want[i] = (float)ref.p[i];
        double e = tu_max_rel_err(p, want, N, 1e-7, 1e-6);
        if (e > 1.0)
            fail_msg("%s: step %d differs from the reference (err %.3g)", bl_optim_name(cfg), t, e);
    }
    double moved = 0; /* the test means something only if the parameters moved */
    for (int i = 0; i < N; i++)
        moved += fabs(ref.p[i] - (float)init_param(i));
    assert_true(moved > 1e-3 * N);
    assert_int_equal(o.t, STEPS);
    bl_optim_free(&o, &mem);
    assert_int_equal(mem.cur_bytes, 0);
}

static void sgd_plain_matches_reference(void **state) {
    bl_optim_config c;
    bl_optim_config_default(&c, BL_OPT_SGD);
    run_against_reference(&c, 0.1);
}

static void sgd_momentum_matches_reference(void **state) {
    bl_optim_config c;
    bl_optim_config_default(&c, BL_OPT_SGD);
    c.momentum = 0.9f;
    run_against_reference(&c, 0.05);
}

static void sgd_nesterov_matches_reference(void **state) {
    bl_optim_config c;
    bl_optim_config_default(&c, BL_OPT_SGD);
    c.momentum = 0.8f;
    c.nesterov = 1;
    run_against_reference(&c, 0.05);
}

static void sgd_weight_decay_matches_reference(void **state) {
    bl_optim_config c;
    bl_optim_config_default(&c, BL_OPT_SGD);
    c.weight_decay = 0.05f;
    run_against_reference(&c, 0.1);
    c.momentum = 0.9f;
    run_against_reference(&c, 0.05);
    c.nesterov = 1;
    run_against_reference(&c, 0.05);
}

static void adam_matches_reference(void **state) {
    bl_optim_config c;
    bl_optim_config_default(&c, BL_OPT_ADAM);
    run_against_reference(&c, 0.01);
    c.weight_decay = 0.1f; /* L2 added to the gradient */
    run_against_reference(&c, 0.01);
    c.beta1 = 0.5f;
    c.beta2 = 0.9f;
    c.eps = 1e-3f;
    run_against_reference(&c, 0.02);
}

static void adamw_matches_reference(void **state) {
    bl_optim_config c;
    bl_optim_config_default(&c, BL_OPT_ADAMW);
    assert_true(c.weight_decay == 0.01f);
    run_against_reference(&c, 0.01);
    c.weight_decay = 0.5f;
    run_against_reference(&c, 0.05);
}

/* With weight decay 0, Adam and AdamW are the same update, bit for bit. */
static void adamw_equals_adam_without_decay(void **state) {
    bl_backend *be = test_backend();
    float pa[N], pw[N], g[N];
    for (int i = 0; i < N; i++) {
        pa[i] = pw[i] = (float)init_param(i);
        g[i] = (float)grad_at(i, 0);
    }
    bl_optim_config ca, cw;
    bl_optim_config_default(&ca, BL_OPT_ADAM);
    bl_optim_config_default(&cw, BL_OPT_ADAMW);
    cw.weight_decay = 0.0f;
    bl_optim a, w;
    assert_int_equal(bl_optim_init(&a, &ca, N, be, NULL, NULL), BL_OK);
    assert_int_equal(bl_optim_init(&w, &cw, N, be, NULL, NULL), BL_OK);
    float *da = to_backend(be, pa, N), *dw = to_backend(be, pw, N), *dg = to_backend(be, g, N);
    for (int t = 0; t < 3; t++) {
        assert_int_equal(bl_optim_step(&a, da, dg, 0.01f, NULL), BL_OK);
        assert_int_equal(bl_optim_step(&w, dw, dg, 0.01f, NULL), BL_OK);
    }
    to_host(be, pa, da, N);
    to_host(be, pw, dw, N);
    be->ops->release(be, NULL, da);
    be->ops->release(be, NULL, dw);
    be->ops->release(be, NULL, dg);
    assert_memory_equal(pa, pw, sizeof pa);
    bl_optim_free(&a, NULL);
    bl_optim_free(&w, NULL);
}

static void state_arena_sizes(void **state) {
    bl_mem mem = {0};
    bl_error err = {0};
    bl_optim_config c;
    bl_optim o;

    bl_optim_config_default(&c, BL_OPT_SGD);
    assert_int_equal(bl_optim_init(&o, &c, 1000, test_backend(), &mem, &err), BL_OK);
    assert_int_equal(o.state_n, 0);
    assert_null(o.state);
    assert_int_equal(mem.cur_bytes, 0);
    bl_optim_free(&o, &mem);

    c.momentum = 0.9f;
    assert_int_equal(bl_optim_init(&o, &c, 1000, test_backend(), &mem, &err), BL_OK);
    assert_int_equal(o.state_n, 1000);
    assert_int_equal(mem.cur_bytes, 1000 * sizeof(float));
    bl_optim_free(&o, &mem);

    bl_optim_config_default(&c, BL_OPT_ADAM);
    assert_int_equal(bl_optim_init(&o, &c, 1000, test_backend(), &mem, &err), BL_OK);
    assert_int_equal(o.state_n, 2000);
    assert_int_equal(mem.cur_bytes, 2000 * sizeof(float));
    float *st = malloc(o.state_n * sizeof *st); /* the state is backend memory */
    assert_non_null(st);
    to_host(o.be, st, o.state, o.state_n);
    for (size_t i = 0; i < o.state_n; i++)
        assert_true(st[i] == 0.0f);
    free(st);
    bl_optim_free(&o, &mem);
    bl_optim_free(&o, &mem); /* twice is harmless */
    assert_int_equal(mem.cur_bytes, 0);

    /* the budget applies to the state arena */
    mem.limit_bytes = 4000;
    assert_int_equal(bl_optim_init(&o, &c, 1000, test_backend(), &mem, &err), BL_ERR_NOMEM);
    assert_non_null(strstr(err.msg, "optimizer state"));
    assert_null(o.state);
}

static void invalid_configs_are_rejected(void **state) {
    bl_error err = {0};
    bl_optim_config c;
    bl_optim o;

    bl_optim_config_default(&c, BL_OPT_SGD);
    c.nesterov = 1;
    assert_int_equal(bl_optim_init(&o, &c, 10, test_backend(), NULL, &err), BL_ERR_ARG);
    assert_non_null(strstr(err.msg, "nesterov"));

    bl_optim_config_default(&c, BL_OPT_SGD);
    c.momentum = -0.5f;
    assert_int_equal(bl_optim_init(&o, &c, 10, test_backend(), NULL, &err), BL_ERR_ARG);
    assert_non_null(strstr(err.msg, "momentum"));

    bl_optim_config_default(&c, BL_OPT_ADAM);
    c.beta1 = 1.0f;
    assert_int_equal(bl_optim_init(&o, &c, 10, test_backend(), NULL, &err), BL_ERR_ARG);
    assert_non_null(strstr(err.msg, "beta1"));

    bl_optim_config_default(&c, BL_OPT_ADAMW);
    c.beta2 = NAN;
    assert_int_equal(bl_optim_init(&o, &c, 10, test_backend(), NULL, &err), BL_ERR_ARG);
    assert_non_null(strstr(err.msg, "beta2"));

    bl_optim_config_default(&c, BL_OPT_ADAMW);
    c.weight_decay = -1.0f;
    assert_int_equal(bl_optim_init(&o, &c, 10, test_backend(), NULL, &err), BL_ERR_ARG);
    assert_non_null(strstr(err.msg, "weight_decay"));
}

static void parse_names(void **state) {
    bl_error err = {0};
    bl_optim_config c;
    static const char *names[] = {"sgd", "momentum", "nesterov", "adam", "adamw"};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(bl_optim_parse(&c, names[i], &err), BL_OK);
        assert_string_equal(bl_optim_name(&c), names[i]);
    }
    assert_int_equal(bl_optim_parse(&c, "nesterov", &err), BL_OK);
    assert_int_equal(c.kind, BL_OPT_SGD);
    assert_true(c.momentum == 0.9f);
    assert_true(c.nesterov);
    assert_int_equal(bl_optim_parse(&c, "adam", &err), BL_OK);
    assert_true(c.beta1 == 0.9f && c.beta2 == 0.999f && c.eps == 1e-8f && c.weight_decay == 0);

    assert_int_equal(bl_optim_parse(&c, "rmsprop", &err), BL_ERR_ARG);
    assert_int_equal(err.code, BL_ERR_ARG);
    assert_non_null(strstr(err.msg, "rmsprop"));
    assert_non_null(strstr(err.msg, "adamw"));
    assert_non_null(strstr(err.msg, "nesterov"));

    bl_sched_kind k;
    assert_int_equal(bl_schedule_parse(&k, "cosine", &err), BL_OK);
    assert_int_equal(k, BL_SCHED_COSINE);
    assert_int_equal(bl_schedule_parse(&k, "step", &err), BL_OK);
    assert_int_equal(k, BL_SCHED_STEP);
    assert_int_equal(bl_schedule_parse(&k, "constant", &err), BL_OK);
    assert_int_equal(k, BL_SCHED_CONSTANT);
    assert_int_equal(bl_schedule_parse(&k, "linear", &err), BL_ERR_ARG);
    assert_non_null(strstr(err.msg, "'linear'"));
    assert_non_null(strstr(err.msg, "constant, step or cosine"));
    assert_int_equal(bl_schedule_parse(&k, NULL, &err), BL_ERR_ARG);

    bl_lr_scale_rule r;
    assert_int_equal(bl_lr_scale_parse(&r, "none", &err), BL_OK);
    assert_int_equal(r, BL_LR_SCALE_NONE);
    assert_int_equal(bl_lr_scale_parse(&r, "linear", &err), BL_OK);
    assert_int_equal(r, BL_LR_SCALE_LINEAR);
    assert_int_equal(bl_lr_scale_parse(&r, "sqrt", &err), BL_OK);
    assert_int_equal(r, BL_LR_SCALE_SQRT);
    assert_int_equal(bl_lr_scale_parse(&r, "Linear", &err), BL_ERR_ARG);
    assert_non_null(strstr(err.msg, "none, linear or sqrt"));
}

/* ---- schedules ----------------------------------------------------------- */

#define assert_close(a, b) assert_true(fabs((double)(a) - (double)(b)) <= 1e-6 * (1 + fabs(b)))

static void schedule_constant_and_warmup(void **state) {
    bl_schedule s = {.kind = BL_SCHED_CONSTANT, .base_lr = 0.4f};
    assert_close(bl_schedule_lr(&s, 0), 0.4);
    assert_close(bl_schedule_lr(&s, 100000), 0.4);
    s.warmup_steps = 4;
    assert_close(bl_schedule_lr(&s, 0), 0.1);
    assert_close(bl_schedule_lr(&s, 1), 0.2);
    assert_close(bl_schedule_lr(&s, 2), 0.3);
    assert_close(bl_schedule_lr(&s, 3), 0.4);
    assert_close(bl_schedule_lr(&s, 4), 0.4);
    assert_close(bl_schedule_lr(&s, 50), 0.4);
    assert_close(bl_schedule_lr(&s, -3), 0.1); /* counts as step 0 */
}

static void schedule_cosine(void **state) {
    const double pi = 3.14159265358979323846;
    bl_schedule s = {.kind = BL_SCHED_COSINE, .base_lr = 1.0f, .total_steps = 100};
    assert_close(bl_schedule_lr(&s, 0), 1.0);
    assert_close(bl_schedule_lr(&s, 25), 0.5 * (1 + cos(pi / 4)));
    assert_close(bl_schedule_lr(&s, 50), 0.5);
    assert_close(bl_schedule_lr(&s, 100), 0.0);
    assert_close(bl_schedule_lr(&s, 150), 0.0);

    /* with warm-up and a floor: decay runs over steps 10..110 */
    s.warmup_steps = 10;
    s.total_steps = 110;
    s.min_lr = 0.1f;
    assert_close(bl_schedule_lr(&s, 0), 0.1);
    assert_close(bl_schedule_lr(&s, 4), 0.5);
    assert_close(bl_schedule_lr(&s, 9), 1.0);
    assert_close(bl_schedule_lr(&s, 10), 1.0);
    assert_close(bl_schedule_lr(&s, 60), 0.55);
    assert_close(bl_schedule_lr(&s, 110), 0.1);
    assert_close(bl_schedule_lr(&s, 1000), 0.1);
    /* monotone after warm-up */
    for (long t = 11; t <= 110; t++)
        assert_true(bl_schedule_lr(&s, t) <= bl_schedule_lr(&s, t - 1));

    /* no room after warm-up: sits at the end point */
    s.total_steps = 10;
    assert_close(bl_schedule_lr(&s, 10), 0.1);
}

static void schedule_step_decay(void **state) {
    bl_schedule s = {.kind = BL_SCHED_STEP, .base_lr = 1.0f, .step_size = 30, .gamma = 0.1f};
    assert_close(bl_schedule_lr(&s, 0), 1.0);
    assert_close(bl_schedule_lr(&s, 29), 1.0);
    assert_close(bl_schedule_lr(&s, 30), 0.1);
    assert_close(bl_schedule_lr(&s, 59), 0.1);
    assert_close(bl_schedule_lr(&s, 60), 0.01);
    s.warmup_steps = 5; /* boundaries move by the warm-up */
    assert_close(bl_schedule_lr(&s, 0), 0.2);
    assert_close(bl_schedule_lr(&s, 5), 1.0);
    assert_close(bl_schedule_lr(&s, 34), 1.0);
    assert_close(bl_schedule_lr(&s, 35), 0.1);
    assert_close(bl_schedule_lr(&s, 64), 0.1);
    assert_close(bl_schedule_lr(&s, 65), 0.01);
    s.step_size = 0; /* disables decay */
    assert_close(bl_schedule_lr(&s, 1000), 1.0);
}

static void lr_scaling_rules(void **state) {
    assert_close(bl_lr_scale(BL_LR_SCALE_LINEAR, 0.1f, 256, 128), 0.2);
    assert_close(bl_lr_scale(BL_LR_SCALE_SQRT, 0.1f, 256, 128), 0.1 * sqrt(2.0));
    assert_close(bl_lr_scale(BL_LR_SCALE_NONE, 0.1f, 256, 128), 0.1);
    assert_close(bl_lr_scale(BL_LR_SCALE_LINEAR, 0.1f, 32, 128), 0.025);
    assert_close(bl_lr_scale(BL_LR_SCALE_SQRT, 0.1f, 32, 128), 0.05);
    assert_close(bl_lr_scale(BL_LR_SCALE_LINEAR, 0.1f, 128, 128), 0.1);
    assert_close(bl_lr_scale(BL_LR_SCALE_LINEAR, 0.1f, 128, 0), 0.1); /* no base: unchanged */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sgd_plain_matches_reference),
        cmocka_unit_test(sgd_momentum_matches_reference),
        cmocka_unit_test(sgd_nesterov_matches_reference),
        cmocka_unit_test(sgd_weight_decay_matches_reference),
        cmocka_unit_test(adam_matches_reference),
        cmocka_unit_test(adamw_matches_reference),
        cmocka_unit_test(adamw_equals_adam_without_decay),
        cmocka_unit_test(state_arena_sizes),
        cmocka_unit_test(invalid_configs_are_rejected),
        cmocka_unit_test(parse_names),
        cmocka_unit_test(schedule_constant_and_warmup),
        cmocka_unit_test(schedule_cosine),
        cmocka_unit_test(schedule_step_decay),
        cmocka_unit_test(lr_scaling_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
