/* Serving metrics and their Prometheus text exposition.
 *
 * Every counter, gauge and histogram bucket is a C11 atomic, so the HTTP threads and
 * the batcher thread update them without a lock and /metrics reads them without
 * stopping anyone. A scrape may see a request counted in one series and not yet in
 * another; Prometheus tolerates that, and a histogram's _count is computed from its
 * own buckets so each histogram is internally consistent.
 *
 * Names follow Prometheus conventions (base units, _total for counters) and mirror
 * Triton's set: inference_count / execution_count give the average batch size. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "serve_internal.h"
#include "core/alloc.h"

static const char *fail_names[BL_FAIL_KINDS] = {
    "bad_request", "not_found", "method_not_allowed", "too_large",    "queue_full",
    "shutdown",    "timeout",   "internal",           "read_timeout",
};

const char *bl_fail_kind_name(bl_fail_kind k) {
    return k >= 0 && k < BL_FAIL_KINDS ? fail_names[k] : "?";
}

/* Latency bucket edges in seconds. */
static const double time_bounds_s[] = {50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3,
                                       5e-3,  10e-3,  25e-3,  50e-3,  0.1,  0.25,
                                       0.5,   1.0,    2.5,    5.0,    10.0};

static void hist_init_time(prom_hist *h) {
    memset(h, 0, sizeof *h);
    h->nb = (int)(sizeof time_bounds_s / sizeof time_bounds_s[0]);
    for (int i = 0; i < h->nb; i++)
        h->bounds[i] = (uint64_t)(time_bounds_s[i] * 1e9 + 0.5);
    h->unit_scale = 1e-9;
}

static void hist_init_pow2(prom_hist *h, int cap) {
    memset(h, 0, sizeof *h);
    h->unit_scale = 1.0;
    uint64_t b = 1;
    while (h->nb < PROM_MAX_BUCKETS) {
        h->bounds[h->nb++] = b;
        if (b >= (uint64_t)cap) break;
        b *= 2;
    }
}

static void hist_observe(prom_hist *h, uint64_t v) {
    int i = 0;
    while (i < h->nb && v > h->bounds[i])
        i++;
    atomic_fetch_add_explicit(&h->counts[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum, v, memory_order_relaxed);
}

void metrics_init(bl_serve_metrics *m, int max_batch_cap, int adaptive, double slo_ms) {
    memset(m, 0, sizeof *m);
    hist_init_time(&m->queue_time);
    hist_init_time(&m->compute_time);
    hist_init_time(&m->request_latency);
    hist_init_pow2(&m->batch_size, max_batch_cap);
    m->adaptive = adaptive;
    m->slo_ms = slo_ms;
}

void metrics_observe_batch(bl_serve_metrics *m, int size, uint64_t compute_ns) {
    atomic_fetch_add_explicit(&m->executions, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->inferences, (uint64_t)size, memory_order_relaxed);
    hist_observe(&m->batch_size, (uint64_t)size);
    hist_observe(&m->compute_time, compute_ns);
}

void metrics_observe_queue_time(bl_serve_metrics *m, uint64_t queue_ns) {
    hist_observe(&m->queue_time, queue_ns);
}

void metrics_publish_delay_ctl(bl_serve_metrics *m, const bl_delay_ctl *a) {
    atomic_store(&m->max_batch, a->max_batch);
    atomic_store(&m->delay_us, a->delay_us);
    atomic_store(&m->window_p99_ns, a->last_p99_ns);
    for (int i = 0; i < 4; i++)
        atomic_store(&m->decisions[i], a->decisions[i]);
}

void bl_metrics_count_success(bl_serve_metrics *m, uint64_t latency_ns) {
    atomic_fetch_add_explicit(&m->success, 1, memory_order_relaxed);
    hist_observe(&m->request_latency, latency_ns);
}

void bl_metrics_count_failure(bl_serve_metrics *m, bl_fail_kind k) {
    if (k >= 0 && k < BL_FAIL_KINDS)
        atomic_fetch_add_explicit(&m->failure[k], 1, memory_order_relaxed);
}

uint64_t bl_metrics_inferences(const bl_serve_metrics *m) {
    return atomic_load(&m->inferences);
}
uint64_t bl_metrics_executions(const bl_serve_metrics *m) {
    return atomic_load(&m->executions);
}
uint64_t bl_metrics_caller_executions(const bl_serve_metrics *m) {
    return atomic_load(&m->caller_executions);
}
uint64_t bl_metrics_successes(const bl_serve_metrics *m) {
    return atomic_load(&m->success);
}
uint64_t bl_metrics_failures(const bl_serve_metrics *m, bl_fail_kind k) {
    return k >= 0 && k < BL_FAIL_KINDS ? atomic_load(&m->failure[k]) : 0;
}

static void head(FILE *f, const char *name, const char *type, const char *help) {
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void render_hist(FILE *f, const prom_hist *h, const char *name, const char *model,
                        const char *help) {
    head(f, name, "histogram", help);
    uint64_t cum = 0;
    for (int i = 0; i < h->nb; i++) {
        cum += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
        fprintf(f, "%s_bucket{model=\"%s\",le=\"%.9g\"} %llu\n", name, model,
                (double)h->bounds[i] * h->unit_scale, (unsigned long long)cum);
    }
    cum += atomic_load_explicit(&h->counts[h->nb], memory_order_relaxed);
    fprintf(f, "%s_bucket{model=\"%s\",le=\"+Inf\"} %llu\n", name, model, (unsigned long long)cum);
    fprintf(f, "%s_sum{model=\"%s\"} %.9g\n", name, model,
            (double)atomic_load_explicit(&h->sum, memory_order_relaxed) * h->unit_scale);
    fprintf(f, "%s_count{model=\"%s\"} %llu\n", name, model, (unsigned long long)cum);
}

bl_status bl_metrics_render(const bl_serve_metrics *m, const char *model, char **out, size_t *len,
                            bl_error *err) {
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    if (!f) return bl_fail(err, BL_ERR_NOMEM, "metrics: out of memory (open_memstream)");
#define ULL(x) ((unsigned long long)atomic_load(&(x)))
    head(f, "batchlab_request_success_total", "counter", "Inference requests answered with 200.");
    fprintf(f, "batchlab_request_success_total{model=\"%s\"} %llu\n", model, ULL(m->success));
    head(f, "batchlab_request_failure_total", "counter",
         "Requests answered with an error, by reason.");
    for (int k = 0; k < BL_FAIL_KINDS; k++)
        fprintf(f, "batchlab_request_failure_total{model=\"%s\",reason=\"%s\"} %llu\n", model,
                fail_names[k], ULL(m->failure[k]));
    head(f, "batchlab_inference_count_total", "counter",
         "Samples computed (inference_count / execution_count = average batch size).");
    fprintf(f, "batchlab_inference_count_total{model=\"%s\"} %llu\n", model, ULL(m->inferences));
    head(f, "batchlab_execution_count_total", "counter", "Batches computed (model executions).");
    fprintf(f, "batchlab_execution_count_total{model=\"%s\"} %llu\n", model, ULL(m->executions));
    head(f, "batchlab_caller_execution_count_total", "counter",
         "Of those, batches run by the thread that received the request (idle model, no "
         "hand-off to the batcher thread).");
    fprintf(f, "batchlab_caller_execution_count_total{model=\"%s\"} %llu\n", model,
            ULL(m->caller_executions));
    render_hist(f, &m->queue_time, "batchlab_queue_time_seconds", model,
                "Time from queueing to the start of the request's first batch.");
    render_hist(f, &m->compute_time, "batchlab_compute_time_seconds", model,
                "Model time per batch (normalisation + forward).");
    render_hist(f, &m->request_latency, "batchlab_request_latency_seconds", model,
                "Server-side latency of successful infer requests, first byte to response.");
    render_hist(f, &m->batch_size, "batchlab_batch_size", model, "Samples per executed batch.");
    head(f, "batchlab_queue_depth_requests", "gauge", "Requests waiting in the batcher queue.");
    fprintf(f, "batchlab_queue_depth_requests{model=\"%s\"} %ld\n", model,
            atomic_load(&m->queue_requests));
    head(f, "batchlab_queue_depth_samples", "gauge", "Samples waiting in the batcher queue.");
    fprintf(f, "batchlab_queue_depth_samples{model=\"%s\"} %ld\n", model,
            atomic_load(&m->queue_samples));
    head(f, "batchlab_max_batch", "gauge", "Current max batch (moved at run time when adaptive).");
    fprintf(f, "batchlab_max_batch{model=\"%s\"} %d\n", model, atomic_load(&m->max_batch));
    head(f, "batchlab_max_delay_seconds", "gauge", "Current batching delay.");
    fprintf(f, "batchlab_max_delay_seconds{model=\"%s\"} %.9g\n", model,
            (double)atomic_load(&m->delay_us) * 1e-6);
    head(f, "batchlab_adaptive_enabled", "gauge",
         "1 when an --slo-p99-ms objective drives batching.");
    fprintf(f, "batchlab_adaptive_enabled{model=\"%s\"} %d\n", model, m->adaptive);
    if (m->adaptive) {
        head(f, "batchlab_slo_p99_seconds", "gauge", "The p99 latency objective.");
        fprintf(f, "batchlab_slo_p99_seconds{model=\"%s\"} %.9g\n", model, m->slo_ms * 1e-3);
        head(f, "batchlab_adaptive_window_p99_seconds", "gauge",
             "p99 of queue+compute latency in the controller's last window.");
        fprintf(f, "batchlab_adaptive_window_p99_seconds{model=\"%s\"} %.9g\n", model,
                (double)atomic_load(&m->window_p99_ns) * 1e-9);
        head(f, "batchlab_adaptive_decisions_total", "counter",
             "Delay controller decisions by kind.");
        for (int a = 0; a < 4; a++)
            fprintf(f, "batchlab_adaptive_decisions_total{model=\"%s\",decision=\"%s\"} %ld\n",
                    model, bl_delay_ctl_action_name((bl_delay_ctl_action)a),
                    atomic_load(&m->decisions[a]));
    }
#undef ULL
    if (fclose(f) != 0 || !buf) {
        bl_free(buf);
        return bl_fail(err, BL_ERR_NOMEM, "metrics: out of memory while rendering");
    }
    *out = buf;
    if (len) *len = n;
    return BL_OK;
}
