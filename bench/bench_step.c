/* Training-step throughput of the ANCHORS presets against the sgemm limit.
 *
 * For each model and batch size B it measures (shared/ANCHORS.md method:
 * median of 5 timed runs, each >= 0.3 s, after a warm-up of >= 0.3 s):
 *   - the training step: zero grads, forward, loss, backward, SGD momentum
 *     0.9, on synthetic N(0,1) inputs with random labels, all through the
 *     public API;
 *   - the same step's BLAS calls replayed bare as sgemm (gemm_trace.c records
 *     the exact shapes of one step, then replays each as the sgemm of the same
 *     product on scratch buffers): the step time if everything but the GEMMs
 *     were free and sgemm did them, i.e. the limit of an im2col+GEMM design.
 *     Its rate is "the sgemm rate on the step's shapes", and replay time /
 *     step time is the fraction of that limit reached (above 1 where the step
 *     uses a better routine than sgemm: sgemv/sger at B = 1);
 *   - the share of the step's wall time spent inside BLAS calls;
 * and forward-only (eval mode) latency per call at a few batch sizes.
 *
 * Two flop counts. The model's: ANCHORS.md's 6 x the forward multiply-adds per
 * sample (11.2 MFLOP for mlp, 97.7 for cnn; presets only), which is what the
 * GFLOP/s column reports, so that it compares with PyTorch and across
 * algorithms. The executed one: the GEMM flops the step really runs (2 M N K
 * per call), which the sgemm rate is measured in; it is lower, because the
 * first layer's input gradient is never computed and Winograd convolution
 * needs 2.25x fewer multiplies than direct convolution. "limit samples/s" is
 * B / replay time: the throughput if everything but the GEMMs were free.
 *
 * Output: tab-separated records, one per line, meant for bench/step_bench.sh
 * (which joins them with bench/peer_torch.py's and prints the table):
 *   env     threads  blas_core  isa_level
 *   step    model B  step_s  samples_per_s  model_gflops  gemm_gflop_per_step  sgemm_gflops
 *           limit_samples_per_s  frac  blas_share
 *   latency model B  us_per_call
 *   gemm    model B  transposes M N K calls share_of_replay gflops   (--detail only)
 *   mem     model B  accounted_peak_bytes                    (--mem only)
 *   skip    model B  step|latency  reason    (--cap or --keep-going only)
 * Usage: bench_step [--models mlp,cnn] [--batches 1,8,32,128,512,2048]
 *                   [--latency 1,8,64] [--threads N] [--min-time S] [--runs N] [--no-sgemm]
 *                   [--clock wall|cpu] [--pool-threads N (the backend's own threads only)]
 *                   [--detail (per-shape sgemm profile)]
 *                   [--device NAME (cpu, opaque, cuda, cuda:N; default: $BATCHLAB_DEVICE)]
 *                   [--tf32 (CUDA: TF32 tensor cores for fp32 matmuls and convolutions)]
 *                   [--cap S (skip a row whose first call takes longer)]
 *                   [--keep-going (a row that cannot be set up is skipped, not fatal)]
 *                   [--mem (print each step row's accounted peak memory)]
 *
 * Asynchronous devices: every clock read that ends a measured interval comes
 * after the backend's synchronize, so queued work is counted (a no-op on the
 * CPU backends). Forward latency synchronizes after every call (a served
 * request needs its result); the training step reads the loss back, which
 * orders it anyway. With --device, env gets a 5th field, the backend's name. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "batchlab/backend.h"
#include "batchlab/model.h"
#include "batchlab/optim.h"
#include "gemm_trace.h"

extern char *openblas_get_corename(void);

static double min_time = 0.3;
static int runs = 5;
static int cpu_clock; /* --clock cpu: process CPU time instead of wall time */
static double cap_s;  /* --cap: skip a row whose first call takes longer (0: never) */
static bl_backend *dev; /* the context's backend, for synchronize */

/* Wait for the device's queued work; a device error ends the benchmark. */
static void sync_dev(void) {
    bl_status st = dev->ops->synchronize(dev);
    if (st) {
        bl_error err = {0};
        bl_backend_fail(&err, st, dev, "synchronize");
        fprintf(stderr, "bench_step: %s\n", err.msg);
        exit(1);
    }
}

/* Seconds on the chosen clock. CPU time is a profiling aid for A/B
 * comparisons with --threads 1 on a busy machine (another process sharing
 * the core does not inflate it); the table is always wall time. */
static double now_s(void) {
    if (!cpu_clock) return bl_now_sec();
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef void (*bench_fn)(void *arg);

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median seconds per call: warm up for >= min_time (at least one call), then
 * `runs` timed runs of enough calls to last >= min_time each. *blas_share
 * (if not NULL) gets the fraction of the timed runs' wall time spent in BLAS.
 * Returns -1 (nothing timed) when --cap is set and the first call took longer. */
static double median_seconds(bench_fn fn, void *arg, double *blas_share) {
    double t0 = now_s(), t;
    long calls = 0;
    do {
        fn(arg);
        sync_dev(); /* the warm-up's time per call sizes the timed runs */
        calls++;
        t = now_s() - t0;
        if (calls == 1 && cap_s > 0 && t > cap_s) return -1;
    } while (t < min_time);
    long reps = (long)(min_time / (t / calls)) + 1;
    double per[64], total = 0;
    int n = runs < 64 ? runs : 64;
    gemm_timing_seconds();
    gemm_timing(blas_share != NULL);
    for (int k = 0; k < n; k++) {
        double s = now_s();
        for (long i = 0; i < reps; i++)
            fn(arg);
        sync_dev();
        double e = now_s() - s;
        per[k] = e / reps;
        total += e;
    }
    gemm_timing(0);
    if (blas_share) *blas_share = gemm_timing_seconds() / total;
    qsort(per, (size_t)n, sizeof per[0], cmp_double);
    return per[n / 2];
}

typedef struct {
    bl_ctx *ctx;
    bl_model *m;
    bl_optim opt;
    float *x;
    int32_t *labels;
    int B;
} step_arg;

/* Forward multiply-adds per sample of the presets (shared/ANCHORS.md); 0 = unknown. */
static double preset_macs(const char *model) {
    if (!strcmp(model, "mlp")) return 784.0 * 1024 + 1024.0 * 1024 + 1024.0 * 10;
    if (!strcmp(model, "cnn")) /* conv 1->32, conv 32->64 on 28x28, dense 12544->128->10 */
        return 32.0 * 9 * 784 + 64.0 * 32 * 9 * 784 + 12544.0 * 128 + 128.0 * 10;
    return 0;
}

static void train_step(void *p) {
    step_arg *a = p;
    double sum;
    bl_model_zero_grad(a->m, NULL);
    bl_model_forward(a->m, a->x, a->B, 1, NULL);
    bl_model_loss(a->m, a->labels, BL_LOSS_XENT, &sum, NULL, NULL);
    bl_model_backward(a->m, 1.0f / (float)a->B, NULL);
    bl_optim_step(&a->opt, bl_model_params(a->m), bl_model_grads(a->m), 0.01f, NULL);
}

static void infer(void *p) {
    step_arg *a = p;
    bl_model_forward(a->m, a->x, a->B, 0, NULL);
    sync_dev(); /* latency: the result is there */
}

static void replay(void *p) {
    gemm_replay_run(p);
}

typedef struct {
    gemm_replay *r;
    int j;
} shape_arg;

static void replay_shape(void *p) {
    shape_arg *a = p;
    gemm_replay_run_shape(a->r, a->j);
}

/* One line per distinct GEMM shape of the step: calls, share of the replay
 * time and rate. Where the limit itself is low, this says which GEMM. */
static void print_detail(const char *model, int B, gemm_replay *r, double replay_s) {
    for (int j = 0; j < gemm_replay_shapes(r); j++) {
        int count;
        const gemm_call *c = gemm_replay_shape(r, j, &count);
        shape_arg a = {r, j};
        double s = median_seconds(replay_shape, &a, NULL);
        double f = 2.0 * c->M * c->N * c->K * count;
        printf("gemm\t%s\t%d\t%c%c\t%d\t%d\t%d\t%d\t%.4f\t%.1f\n", model, B, c->ta ? 'T' : 'N',
               c->tb ? 'T' : 'N', c->M, c->N, c->K, count, s / replay_s, f / s * 1e-9);
    }
}

/* Model, optimizer and a synthetic batch at B; 0 on success. */
static int setup(step_arg *a, bl_ctx *ctx, const char *model, int B) {
    bl_error err = {0};
    memset(a, 0, sizeof *a);
    a->ctx = ctx, a->B = B;
    bl_shape in = {1, 28, 28};
    bl_optim_config oc;
    if (bl_model_create(&a->m, model, in, 10, &err) || bl_model_alloc(a->m, ctx, B, &err) ||
        bl_optim_parse(&oc, "momentum", &err) ||
        bl_optim_init(&a->opt, &oc, bl_model_num_params(a->m), ctx->be, &ctx->mem, &err) ||
        bl_model_init(a->m, 42, &err)) {
        fprintf(stderr, "bench_step: %s at B=%d: %s\n", model, B, err.msg);
        return 1;
    }
    size_t n = (size_t)B * bl_shape_size(in);
    a->x = malloc(n * sizeof *a->x);
    a->labels = malloc((size_t)B * sizeof *a->labels);
    if (!a->x || !a->labels) return 1;
    bl_rng r;
    bl_rng_seed(&r, 7 + (uint64_t)B);
    for (size_t i = 0; i < n; i++)
        a->x[i] = bl_rng_normal(&r);
    for (int b = 0; b < B; b++)
        a->labels[b] = (int32_t)bl_rng_below(&r, 10);
    return 0;
}

static void teardown(step_arg *a) {
    bl_optim_free(&a->opt, &a->ctx->mem);
    bl_model_free(a->m);
    free(a->x), free(a->labels);
}

static int detail, keep_going, print_mem;

/* A row that was not measured: fatal (1) unless --keep-going / --cap made it a skip (0). */
static int skip_row(const char *model, int B, const char *kind, const char *why, int fatal) {
    if (fatal && !keep_going) return 1;
    printf("skip\t%s\t%d\t%s\t%s\n", model, B, kind, why);
    fflush(stdout);
    return 0;
}

static int bench_train(bl_ctx *ctx, const char *model, int B, int with_sgemm) {
    step_arg a;
    ctx->mem.peak_bytes = ctx->mem.cur_bytes; /* this row's peak (--mem) */
    if (setup(&a, ctx, model, B)) {
        teardown(&a);
        return skip_row(model, B, "step", "setup failed (see stderr)", 1);
    }
    double share = 0;
    double step_s = median_seconds(train_step, &a, &share);
    if (step_s < 0) {
        teardown(&a);
        return skip_row(model, B, "step", "first step slower than --cap", 0);
    }
    const gemm_call *calls;
    gemm_trace_start();
    train_step(&a);
    int n = gemm_trace_stop(&calls);
    double flops = gemm_trace_flops(calls, n), replay_s = 0;
    if (with_sgemm && n > 0) { /* no BLAS calls (a GPU backend): nothing to replay */
        gemm_replay *r = gemm_replay_create(calls, n, 1234);
        if (!r) {
            fprintf(stderr, "bench_step: out of memory for the sgemm replay\n");
        } else {
            replay_s = median_seconds(replay, r, NULL);
            if (detail) print_detail(model, B, r, replay_s);
            gemm_replay_free(r);
        }
    }
    const double model_flops = 6 * preset_macs(model) * B;
    printf("step\t%s\t%d\t%.6g\t%.6g\t%.6g\t%.6g\t%.6g\t%.6g\t%.4f\t%.4f\n", model, B, step_s,
           B / step_s, model_flops / step_s * 1e-9, flops * 1e-9,
           replay_s > 0 ? flops / replay_s * 1e-9 : 0.0, replay_s > 0 ? B / replay_s : 0.0,
           replay_s > 0 ? replay_s / step_s : 0.0, share);
    if (print_mem) printf("mem\t%s\t%d\t%zu\n", model, B, ctx->mem.peak_bytes);
    fflush(stdout);
    teardown(&a);
    return 0;
}

static int bench_latency(bl_ctx *ctx, const char *model, int B) {
    step_arg a;
    if (setup(&a, ctx, model, B)) {
        teardown(&a);
        return skip_row(model, B, "latency", "setup failed (see stderr)", 1);
    }
    double s = median_seconds(infer, &a, NULL);
    if (s < 0) {
        teardown(&a);
        return skip_row(model, B, "latency", "first call slower than --cap", 0);
    }
    printf("latency\t%s\t%d\t%.2f\n", model, B, s * 1e6);
    fflush(stdout);
    teardown(&a);
    return 0;
}

/* "1,8,32" into v (at most cap values); returns the count. */
static int parse_list(const char *s, int *v, int cap) {
    int n = 0;
    while (*s && n < cap) {
        char *end;
        long x = strtol(s, &end, 10);
        if (end == s || x <= 0) return -1;
        v[n++] = (int)x;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') return -1;
    }
    return n;
}

int main(int argc, char **argv) {
    const char *models = "mlp,cnn";
    int batches[16] = {1, 8, 32, 128, 512, 2048}, nb = 6;
    int lat[16] = {1, 8, 64}, nl = 3, threads = 0, pool_threads = 0, with_sgemm = 1;
    const char *device = NULL;
    int tf32 = 0;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(o, "--no-sgemm") || !strcmp(o, "--detail")) {
            with_sgemm = o[2] == 'd' ? with_sgemm : 0;
            detail |= o[2] == 'd';
            continue;
        }
        if (!strcmp(o, "--tf32")) {
            tf32 = 1;
            continue;
        }
        if (!strcmp(o, "--keep-going") || !strcmp(o, "--mem")) {
            keep_going |= o[2] == 'k';
            print_mem |= o[2] == 'm';
            continue;
        }
        if (!v) {
            fprintf(stderr, "bench_step: %s needs a value (see the comment at the top)\n", o);
            return 2;
        }
        i++;
        if (!strcmp(o, "--models"))
            models = v;
        else if (!strcmp(o, "--batches"))
            nb = strcmp(v, "none") ? parse_list(v, batches, 16) : 0;
        else if (!strcmp(o, "--latency"))
            nl = strcmp(v, "none") ? parse_list(v, lat, 16) : 0;
        else if (!strcmp(o, "--threads"))
            threads = atoi(v);
        else if (!strcmp(o, "--pool-threads"))
            pool_threads = atoi(v);
        else if (!strcmp(o, "--min-time"))
            min_time = atof(v);
        else if (!strcmp(o, "--runs"))
            runs = atoi(v);
        else if (!strcmp(o, "--clock"))
            cpu_clock = !strcmp(v, "cpu");
        else if (!strcmp(o, "--device"))
            device = v;
        else if (!strcmp(o, "--cap"))
            cap_s = atof(v);
        else {
            fprintf(stderr, "bench_step: unknown option %s\n", o);
            return 2;
        }
        if (nb < 0 || nl < 0 || runs < 1) {
            fprintf(stderr, "bench_step: bad value '%s' for %s\n", v, o);
            return 2;
        }
    }
    bl_ctx ctx;
    bl_ctx_init(&ctx, threads);
    if (device) {
        bl_error err = {0};
        if (bl_ctx_set_device(&ctx, device, &err)) {
            fprintf(stderr, "bench_step: --device %s: %s\n", device, err.msg);
            bl_ctx_free(&ctx);
            return 2;
        }
    }
    bl_error terr = {0};
    if (bl_ctx_set_tf32(&ctx, tf32, &terr)) {
        fprintf(stderr, "bench_step: --tf32: %s\n", terr.msg);
        bl_ctx_free(&ctx);
        return 2;
    }
    dev = ctx.be;
    if (pool_threads > 0) /* experiment: BLAS keeps its count */
        bl_cpu_pool_set_threads(ctx.be->pool, pool_threads);
    printf("env\t%d\t%s\t%s", ctx.threads, openblas_get_corename(),
           bl_cpu_isa_name(bl_cpu_isa_selected(NULL)));
    if (device) printf("\t%s", ctx.be->name);
    printf("\n");
    char list[256];
    snprintf(list, sizeof list, "%s", models);
    for (char *save = NULL, *m = strtok_r(list, ",", &save); m; m = strtok_r(NULL, ",", &save)) {
        for (int i = 0; i < nb; i++)
            if (bench_train(&ctx, m, batches[i], with_sgemm)) return bl_ctx_free(&ctx), 1;
        for (int i = 0; i < nl; i++)
            if (bench_latency(&ctx, m, lat[i])) return bl_ctx_free(&ctx), 1;
    }
    bl_ctx_free(&ctx);
    return 0;
}
