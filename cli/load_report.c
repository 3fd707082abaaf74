/* What `batchlab load` reports of a run (see load_report.h). */
#include "load_report.h"
#include <stdio.h>
#include <string.h>

static double ms(uint64_t ns) {
    return (double)ns * 1e-6;
}

void load_to_point(const bl_load_result *r, bl_load_sweep_point *p) {
    memset(p, 0, sizeof *p);
    p->offered_rps = r->offered_rps;
    p->throughput_rps = r->throughput_rps;
    p->p50_ms = ms(bl_latency_hist_percentile(&r->latency, 50));
    p->p90_ms = ms(bl_latency_hist_percentile(&r->latency, 90));
    p->p99_ms = ms(bl_latency_hist_percentile(&r->latency, 99));
    p->p999_ms = ms(bl_latency_hist_percentile(&r->latency, 99.9));
    p->max_ms = ms(r->latency.max ? r->latency.max : 0);
    p->ok = r->ok;
    p->failed = r->failed;
}

cJSON *load_result_json(const bl_load_result *r, const bl_load_sweep_point *p, int per_request) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "offered_rps", r->offered_rps);
    cJSON_AddNumberToObject(j, "throughput_rps", r->throughput_rps);
    cJSON_AddNumberToObject(j, "samples_per_s", r->throughput_rps * per_request);
    cJSON_AddNumberToObject(j, "elapsed_s", r->elapsed_s);
    cJSON_AddNumberToObject(j, "sent", (double)r->sent);
    cJSON_AddNumberToObject(j, "ok", (double)r->ok);
    cJSON_AddNumberToObject(j, "failed", (double)r->failed);
    cJSON_AddNumberToObject(j, "http_4xx", (double)r->http_4xx);
    cJSON_AddNumberToObject(j, "http_503", (double)r->http_503);
    cJSON_AddNumberToObject(j, "http_5xx", (double)r->http_5xx);
    cJSON_AddNumberToObject(j, "transport", (double)r->transport);
    cJSON_AddNumberToObject(j, "unsent", (double)r->unsent);
    cJSON *l = cJSON_AddObjectToObject(j, "latency_ms");
    cJSON_AddNumberToObject(l, "p50", p->p50_ms);
    cJSON_AddNumberToObject(l, "p90", p->p90_ms);
    cJSON_AddNumberToObject(l, "p99", p->p99_ms);
    cJSON_AddNumberToObject(l, "p999", p->p999_ms);
    cJSON_AddNumberToObject(l, "max", p->max_ms);
    cJSON_AddNumberToObject(l, "mean", bl_latency_hist_mean(&r->latency) * 1e-6);
    cJSON *s = cJSON_AddObjectToObject(j, "send_lag_ms");
    cJSON_AddNumberToObject(s, "p50", ms(bl_latency_hist_percentile(&r->send_lag, 50)));
    cJSON_AddNumberToObject(s, "p99", ms(bl_latency_hist_percentile(&r->send_lag, 99)));
    if (p->avg_batch > 0) cJSON_AddNumberToObject(j, "server_avg_batch", p->avg_batch);
    if (p->max_batch > 0) cJSON_AddNumberToObject(j, "server_max_batch", p->max_batch);
    if (r->last_error[0]) cJSON_AddStringToObject(j, "last_error", r->last_error);
    return j;
}

void load_print_result(const bl_load_result *r, const bl_load_sweep_point *p, int per_request) {
    printf("sent %ld, ok %ld, failed %ld (4xx %ld, 503 %ld, other 5xx %ld, transport %ld), "
           "unsent %ld\n",
           r->sent, r->ok, r->failed, r->http_4xx, r->http_503, r->http_5xx, r->transport,
           r->unsent);
    printf("throughput %.1f req/s (%.1f samples/s) over %.2f s\n", r->throughput_rps,
           r->throughput_rps * per_request, r->elapsed_s);
    printf("latency ms (from intended send): p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  "
           "mean %.3f\n",
           p->p50_ms, p->p90_ms, p->p99_ms, p->p999_ms, p->max_ms,
           bl_latency_hist_mean(&r->latency) * 1e-6);
    printf("send lag ms: p50 %.3f  p99 %.3f\n", ms(bl_latency_hist_percentile(&r->send_lag, 50)),
           ms(bl_latency_hist_percentile(&r->send_lag, 99)));
    if (p->avg_batch > 0)
        printf("server: average batch %.2f during the run, max batch now %.0f\n", p->avg_batch,
               p->max_batch);
    if (r->last_error[0]) printf("last error: %s\n", r->last_error);
}
