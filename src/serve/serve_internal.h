/* Internals shared by the files of src/serve/: the metrics struct (updated with atomics
 * from the HTTP threads and the batcher thread, read by /metrics without a lock). */
#ifndef BL_SERVE_INTERNAL_H
#define BL_SERVE_INTERNAL_H

#include <stdatomic.h>
#include "batchlab/serve.h"

#define PROM_MAX_BUCKETS 24

/* A Prometheus histogram over integer observations (ns or samples); bounds are the
 * inclusive upper edges in the same integer unit, and unit_scale converts to the
 * exposed unit (1e-9 for seconds). */
typedef struct prom_hist {
    int nb;
    uint64_t bounds[PROM_MAX_BUCKETS];
    double unit_scale;
    atomic_uint_fast64_t counts[PROM_MAX_BUCKETS + 1]; /* last: above every bound (+Inf) */
    atomic_uint_fast64_t sum;
} prom_hist;

struct bl_serve_metrics {
    atomic_uint_fast64_t success, failure[BL_FAIL_KINDS];
    atomic_uint_fast64_t inferences, executions;
    atomic_uint_fast64_t caller_executions; /* of executions, run by the submitting thread */
    prom_hist queue_time, compute_time, request_latency, batch_size;
    atomic_long queue_requests, queue_samples;
    atomic_int max_batch;
    atomic_long delay_us;
    /* adaptive */
    int adaptive;
    double slo_ms;
    atomic_uint_fast64_t window_p99_ns;
    atomic_long decisions[4];
};

void metrics_init(bl_serve_metrics *m, int max_batch_cap, int adaptive, double slo_ms);
void metrics_observe_batch(bl_serve_metrics *m, int size, uint64_t compute_ns);
void metrics_observe_queue_time(bl_serve_metrics *m, uint64_t queue_ns);
void metrics_publish_aimd(bl_serve_metrics *m, const bl_aimd *a);

/* json_floats.c: when the JSON text s has exactly one "data" key and its value is a
 * (possibly nested) array of numbers, parse it into *out (malloc'ed), set [*begin, *end)
 * to the array's span and return the count; otherwise -1 (use the general parser). */
long json_data_floats(const char *s, size_t len, size_t *begin, size_t *end, float **out);

#endif
